#include <cstring>
#include <future>
#include <map>
#include <span>

#include "crypto/fingerprint.h"
#include "crypto/providers/provider.h"

namespace veil::crypto {

using Kind = CorrelationRequest::Kind;

const char* provider_name(ProviderKind k) {
  return k == ProviderKind::kDealer ? "dealer" : "tfp";
}

ProviderKind parse_provider(std::string_view s) {
  if (s == "dealer" || s == "ttp") {
    return ProviderKind::kDealer;
  }
  if (s == "tfp" || s == "trusted_first_party") {
    return ProviderKind::kTrustedFirstParty;
  }
  throw ValueError(fmt::format("[provider] expected 'dealer' (alias 'ttp') or 'tfp', got '{}'", s));
}

std::string dealer_tag(uint64_t seq) {
  return fmt::format("dealer#{}", seq);
}

SeededProvider::SeededProvider(comm::Communicator& comm,
                               ProviderKind kind,
                               const Prg::Seed& seed,
                               const std::vector<Prg::Seed>& mirrors)
    : comm_(comm), kind_(kind), prg_(seed) {
  for (const auto& s : mirrors) {
    mirrors_.emplace_back(s);
  }
  VEIL_INTERNAL_ASSERT(kind_ == ProviderKind::kDealer || comm_.rank() != 0 ||
                           static_cast<int>(mirrors_.size()) == comm_.world_size(),
                       "trusted-first-party provider needs every party's seed");
}

std::vector<core::Tensor> SeededProvider::request(const CorrelationRequest& req) {
  VEIL_CHECK(!finished_, "[provider] {} requested after the session finished", req.str());
  const int rank = comm_.rank();
  std::vector<core::Tensor> mine = draw_correlation(req, prg_, rank);
  const uint64_t seq = seq_++;
  if (rank != 0) {
    return mine;
  }
  const std::size_t k = correction_index(req);
  if (kind_ == ProviderKind::kDealer) {
    const std::string tag = dealer_tag(seq);
    const auto bytes = req.serialize();
    comm_.send(comm_.dealer_rank(), tag, bytes);
    mine[k] =
        comm_.recv_tensor(comm_.dealer_rank(), tag, req.correction_shape(), core::DType::kRing64);
    return mine;
  }
  // Trusted first party: replay every party's draws locally (this is the insecure part).
  std::vector<std::vector<core::Tensor>> all(mirrors_.size());
  all[0] = mine;
  for (std::size_t j = 1; j < mirrors_.size(); ++j) {
    all[j] = draw_correlation(req, mirrors_[j], static_cast<int>(j));
  }
  mine[k] = correlation_correction(req, all);
  return mine;
}

BeaverTriple SeededProvider::beaver(const BilinearOp& op) {
  CorrelationRequest req;
  req.kind = Kind::kBeaver;
  req.op = op;
  auto t = request(req);
  return {t[0], t[1], t[2]};
}

BinaryTriple SeededProvider::binary_triple(const core::Shape& shape) {
  CorrelationRequest req;
  req.kind = Kind::kBinaryTriple;
  req.shape = shape;
  auto t = request(req);
  return {t[0], t[1], t[2]};
}

TruncPair SeededProvider::trunc_pair(const core::Shape& shape, int bits) {
  CorrelationRequest req;
  req.kind = Kind::kTruncPair;
  req.shape = shape;
  req.bits = bits;
  auto t = request(req);
  return {t[0], t[1]};
}

RandomBits SeededProvider::random_bits(const core::Shape& shape) {
  CorrelationRequest req;
  req.kind = Kind::kRandomBits;
  req.shape = shape;
  auto t = request(req);
  return {t[1], t[0]};
}

void SeededProvider::finish() {
  if (finished_) {
    return;
  }
  finished_ = true;
  if (kind_ == ProviderKind::kDealer && comm_.rank() == 0) {
    CorrelationRequest req;
    req.kind = Kind::kShutdown;
    comm_.send(comm_.dealer_rank(), dealer_tag(seq_), req.serialize());
  }
}

DealerService::DealerService(comm::Communicator& comm, bool lookahead)
    : comm_(comm), lookahead_(lookahead) {
  VEIL_CHECK(comm_.is_dealer(),
             "[DealerService] expected the dealer endpoint (rank {}), got rank {}",
             comm_.dealer_rank(), comm_.rank());
}

core::Tensor DealerService::compute(const CorrelationRequest& req,
                                    std::vector<uint64_t>& positions) const {
  const std::size_t n = seeds_.size();
  std::vector<std::vector<core::Tensor>> all(n);
  for (std::size_t j = 0; j < n; ++j) {
    Prg prg(seeds_[j]);
    prg.seek(positions[j]);
    all[j] = draw_correlation(req, prg, static_cast<int>(j));
    positions[j] = prg.position();
  }
  return correlation_correction(req, all);
}

void DealerService::serve() {
  const int n = comm_.world_size();
  // Every party's setup fingerprint must agree with what this dealer serves.
  const SetupFingerprint mine = dealer_fingerprint(n);
  std::vector<std::string> diffs;
  for (int j = 0; j < n; ++j) {
    const auto raw = comm_.recv(j, "setup#fingerprint");
    const auto d = fingerprint_diff(
        mine,
        SetupFingerprint::parse(std::string(reinterpret_cast<const char*>(raw.data()), raw.size())),
        fmt::format("party {}", j), /*only_mine_keys=*/true);
    diffs.insert(diffs.end(), d.begin(), d.end());
  }
  VEIL_CHECK(diffs.empty(), "[setup] the dealer refuses the session: setup fingerprints differ: {}",
             fmt::join(diffs, "; "));
  seeds_.clear();
  for (int j = 0; j < n; ++j) {
    const auto bytes = comm_.recv(j, kDealerSeedTag, sizeof(Prg::Seed));
    Prg::Seed seed{};
    std::memcpy(seed.data(), bytes.data(), seed.size());
    seeds_.push_back(seed);
  }
  positions_.assign(static_cast<std::size_t>(n), 0);
  struct Prepared {
    std::string request;
    core::Tensor correction;
    std::vector<uint64_t> positions_after;
  };
  // Learned request order, keyed by the serialized request.
  std::map<std::string, std::string> successor;
  std::string previous;
  std::future<Prepared> ahead;
  for (;;) {
    const std::string tag = dealer_tag(seq_);
    const std::vector<std::byte> raw = comm_.recv(0, tag);
    const CorrelationRequest req = CorrelationRequest::deserialize(raw);
    std::string bytes(reinterpret_cast<const char*>(raw.data()), raw.size());
    ++seq_;
    if (!previous.empty()) {
      successor[previous] = bytes;
    }
    previous = bytes;
    core::Tensor correction;
    if (ahead.valid()) {
      Prepared prepared = ahead.get();
      if (prepared.correction.defined() && prepared.request == bytes) {
        correction = std::move(prepared.correction);
        positions_ = std::move(prepared.positions_after);
        ++hits_;
      }
    }
    if (req.kind == CorrelationRequest::Kind::kShutdown) {
      return;
    }
    if (!correction.defined()) {
      correction = compute(req, positions_);
    }
    comm_.send_tensor(0, tag, correction);
    const auto next = successor.find(bytes);
    if (lookahead_ && next != successor.end()) {
      ahead = std::async(
          std::launch::async, [this, predicted = next->second, positions = positions_]() mutable {
            const CorrelationRequest r =
                CorrelationRequest::deserialize(std::as_bytes(std::span<const char>(predicted)));
            Prepared out;
            out.request = std::move(predicted);
            if (r.kind != CorrelationRequest::Kind::kShutdown) {
              out.correction = compute(r, positions);
              out.positions_after = std::move(positions);
            }
            return out;
          });
    }
  }
}

}  // namespace veil::crypto
