#include <cstring>
#include <deque>
#include <map>
#include <span>
#include <utility>

#include "core/parallel.h"
#include "crypto/fingerprint.h"
#include "crypto/providers/provider.h"
#include "crypto/wire.h"

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

std::vector<std::byte> encode_dealer_stream(const Prg::Seed& key, uint64_t position) {
  std::vector<std::byte> out(kDealerStreamBytes);
  std::memcpy(out.data(), key.data(), key.size());
  for (std::size_t i = 0; i < sizeof(uint64_t); ++i) {
    out[key.size() + i] = static_cast<std::byte>(position >> (8 * i));
  }
  return out;
}

std::pair<Prg::Seed, uint64_t> decode_dealer_stream(std::span<const std::byte> message) {
  VEIL_CHECK_WITH(ProtocolError, message.size() == kDealerStreamBytes,
                  "[setup] expected a dealer stream message of {} bytes, got {}",
                  kDealerStreamBytes, message.size());
  Prg::Seed key{};
  std::memcpy(key.data(), message.data(), key.size());
  uint64_t position = 0;
  for (std::size_t i = 0; i < sizeof(uint64_t); ++i) {
    position |= static_cast<uint64_t>(message[key.size() + i]) << (8 * i);
  }
  return {key, position};
}

SeededProvider::SeededProvider(comm::Communicator& comm,
                               ProviderKind kind,
                               const Prg::Seed& seed,
                               const std::vector<Prg::Seed>& mirrors,
                               core::Device device,
                               uint64_t position,
                               const std::vector<uint64_t>& mirror_positions)
    : comm_(comm), kind_(kind), prg_(seed), device_(device) {
  VEIL_INTERNAL_ASSERT(mirror_positions.empty() || mirror_positions.size() == mirrors.size(),
                       "one start position per mirrored stream");
  prg_.seek(position);
  for (std::size_t j = 0; j < mirrors.size(); ++j) {
    mirrors_.emplace_back(mirrors[j]);
    mirrors_.back().seek(mirror_positions.empty() ? 0 : mirror_positions[j]);
  }
  VEIL_INTERNAL_ASSERT(kind_ == ProviderKind::kDealer || comm_.rank() != 0 ||
                           static_cast<int>(mirrors_.size()) == comm_.world_size(),
                       "trusted-first-party provider needs every party's seed");
}

std::vector<core::Tensor> SeededProvider::request(const CorrelationRequest& req) {
  VEIL_CHECK(!finished_, "[provider] {} requested after the session finished", req.str());
  const int rank = comm_.rank();
  const core::Device dev = on_device(req) ? device_ : core::Device::cpu();
  std::vector<core::Tensor> mine = draw_correlation(req, prg_, rank, dev);
  const uint64_t seq = seq_++;
  if (rank != 0) {
    return mine;
  }
  const std::size_t k = correction_index(req);
  if (kind_ == ProviderKind::kDealer) {
    mine[k] = dealer_correction(seq, req).to(dev);
    return mine;
  }
  // Trusted first party: replay every party's draws locally (this is the insecure part). The
  // replay runs on the host; a device party copies its own draws over for it (benchmark mode).
  // It is the dealer's work, done while the other parties wait for party 0's first message, so it
  // may use every core of the process.
  const core::AtLeastThreads all_cores(core::hardware_threads());
  if (dev != core::Device::cpu()) {
    std::vector<std::vector<core::Tensor>> all(mirrors_.size());
    for (const core::Tensor& t : mine) {
      all[0].push_back(t.defined() ? t.to(core::Device::cpu()) : t);
    }
    for (std::size_t j = 1; j < mirrors_.size(); ++j) {
      all[j] = draw_correlation(req, mirrors_[j], static_cast<int>(j));
    }
    mine[k] = correlation_correction(req, all).to(dev);
    return mine;
  }
  if (is_streamable_mul(req)) {
    mine[k] = replayed_mul_correction(req, nullptr, mine[0].data<uint64_t>(),
                                      req.op.is_square() ? nullptr : mine[1].data<uint64_t>());
    return mine;
  }
  std::vector<std::vector<core::Tensor>> all(mirrors_.size());
  all[0] = mine;
  for (std::size_t j = 1; j < mirrors_.size(); ++j) {
    all[j] = draw_correlation(req, mirrors_[j], static_cast<int>(j));
  }
  mine[k] = correlation_correction(req, all);
  return mine;
}

core::Tensor SeededProvider::replayed_mul_correction(const CorrelationRequest& req,
                                                     Prg* own,
                                                     const uint64_t* a0,
                                                     const uint64_t* b0) {
  std::vector<Prg*> prgs(mirrors_.size(), nullptr);
  prgs[0] = own;
  for (std::size_t j = 1; j < mirrors_.size(); ++j) {
    prgs[j] = &mirrors_[j];
  }
  return streamed_mul_correction(core::shape_numel(req.op.out_shape()), prgs, a0, b0,
                                 req.op.is_square());
}

std::optional<StreamedTriple> SeededProvider::streamed_beaver(const BilinearOp& op) {
  VEIL_CHECK(op.is_elementwise(), "[provider] expected an elementwise product to stream, got {}",
             op.str());
  CorrelationRequest req;
  req.kind = Kind::kBeaver;
  req.op = op;
  VEIL_CHECK(!finished_, "[provider] {} requested after the session finished", req.str());
  const int rank = comm_.rank();
  // draw_correlation's layout: a, then b (not for a square), then c (not for party 0)
  const uint64_t n = static_cast<uint64_t>(core::shape_numel(op.out_shape()));
  const uint64_t start = prg_.position();
  const uint64_t operands = op.is_square() ? 1 : 2;
  StreamedTriple t{.stream = prg_.fork_at(start),
                   .a_at = start,
                   .b_at = op.is_square() ? start : start + 8 * n,
                   .c_at = start + 8 * n * operands,
                   .c = core::Tensor(),
                   .square = op.is_square()};
  prg_.seek(start + 8 * n * (operands + (rank == 0 ? 0 : 1)));
  const uint64_t seq = seq_++;
  if (rank != 0) {
    return t;
  }
  if (kind_ == ProviderKind::kDealer) {
    t.c = dealer_correction(seq, req).to(core::Device::cpu());
    return t;
  }
  const core::AtLeastThreads all_cores(core::hardware_threads());
  Prg own = prg_.fork_at(start);
  t.c = replayed_mul_correction(req, &own, nullptr, nullptr);
  return t;
}

bool SeededProvider::on_device(const CorrelationRequest& req) {
  // Beaver triples, truncation pairs and the comparison circuits' correlations follow the party's
  // shares to its device; binary triples and random bits (a2b, b2a) are used on the host.
  return req.kind == Kind::kBeaver || req.kind == Kind::kTruncPair || req.kind == Kind::kCircuit;
}

BeaverTriple SeededProvider::beaver(const BilinearOp& op) {
  CorrelationRequest req;
  req.kind = Kind::kBeaver;
  req.op = op;
  auto t = request(req);
  return {t[0], op.is_square() ? t[0] : t[1], t[2]};
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

CircuitCorrelation SeededProvider::circuit(const CircuitSpec& spec, int64_t n) {
  spec.validate();
  VEIL_CHECK(n >= 0, "[provider] expected a non-negative element count, got {}", n);
  CorrelationRequest req;
  req.kind = Kind::kCircuit;
  req.circuit = spec;
  req.shape = {n};
  auto t = request(req);
  return {t[0], t[1]};
}

void SeededProvider::finish() {
  if (finished_) {
    return;
  }
  finished_ = true;
  if (kind_ == ProviderKind::kDealer && comm_.rank() == 0) {
    // The dealer's push for seq_ may be in flight; it is dropped with the connection.
    CorrelationRequest req;
    req.kind = Kind::kShutdown;
    send_ack(seq_, /*hit=*/false, req.serialize());
  }
}

namespace {
std::string to_string(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
std::span<const std::byte> to_bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s));
}
}  // namespace

// Party 0's side of the push protocol (see DealerService): the dealer has pushed, for request
// number seq, its prediction of the request and the matching correction. A correct prediction is
// used at once; otherwise party 0 sends the real request and waits for the answer.
core::Tensor SeededProvider::dealer_correction(uint64_t seq, const CorrelationRequest& req) {
  const int dealer = comm_.dealer_rank();
  const std::string tag = dealer_tag(seq);
  const std::string mine = to_string(req.serialize());
  const std::string predicted = to_string(comm_.recv(dealer, tag + "/push"));
  core::Tensor pushed;
  if (!predicted.empty()) {
    const CorrelationRequest p = CorrelationRequest::deserialize(to_bytes(predicted));
    pushed =
        comm_.recv_tensor(dealer, tag + "/push_data", p.correction_shape(), core::DType::kRing64);
  }
  const bool hit = !predicted.empty() && predicted == mine;
  send_ack(seq, hit, to_bytes(mine));
  if (hit) {
    return pushed;
  }
  return comm_.recv_tensor(dealer, tag + "/answer", req.correction_shape(), core::DType::kRing64);
}

void SeededProvider::send_ack(uint64_t seq, bool hit, std::span<const std::byte> request) {
  WireWriter w;
  w.u64(hit ? 1 : 0);
  std::vector<std::byte> out = w.take();
  out.insert(out.end(), request.begin(), request.end());
  comm_.send(comm_.dealer_rank(), dealer_tag(seq) + "/ack", out);
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
  if (is_streamable_mul(req)) {
    std::vector<Prg> prgs;
    prgs.reserve(n);
    std::vector<Prg*> ptrs;
    for (std::size_t j = 0; j < n; ++j) {
      prgs.emplace_back(seeds_[j]);
      prgs.back().seek(positions[j]);
      ptrs.push_back(&prgs.back());
    }
    core::Tensor c0 = streamed_mul_correction(core::shape_numel(req.op.out_shape()), ptrs, nullptr,
                                              nullptr, req.op.is_square());
    for (std::size_t j = 0; j < n; ++j) {
      positions[j] = prgs[j].position();
    }
    return c0;
  }
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
    const auto d = fingerprint_diff(mine, SetupFingerprint::parse(to_string(raw)),
                                    fmt::format("party {}", j), /*only_mine_keys=*/true);
    diffs.insert(diffs.end(), d.begin(), d.end());
  }
  VEIL_CHECK(diffs.empty(), "[setup] the dealer refuses the session: setup fingerprints differ: {}",
             fmt::join(diffs, "; "));
  // Each party's stream: its key and where to start (0, or a resumed checkpoint's position).
  seeds_.clear();
  positions_.clear();
  for (int j = 0; j < n; ++j) {
    const auto bytes = comm_.recv(j, kDealerSeedTag, static_cast<int64_t>(kDealerStreamBytes));
    const auto [seed, position] = decode_dealer_stream(bytes);
    seeds_.push_back(seed);
    positions_.push_back(position);
  }
  // Learned request order: the request that followed a context of the last kContext requests
  // (one request alone is ambiguous: the same triple shape recurs at several places of a step).
  constexpr std::size_t kContext = 4;
  std::map<std::string, std::string> successor;
  std::deque<std::string> history;
  std::string previous;                    // the current context, joined
  std::vector<uint64_t> pushed_positions;  // PRG positions after the pushed prediction
  auto push = [&](uint64_t seq) {
    const std::string tag = dealer_tag(seq);
    const auto next = successor.find(previous);
    if (!lookahead_ || seq == 0 || next == successor.end()) {
      comm_.send(0, tag + "/push", {});
      return;
    }
    const CorrelationRequest predicted = CorrelationRequest::deserialize(to_bytes(next->second));
    pushed_positions = positions_;
    core::Tensor correction = compute(predicted, pushed_positions);
    comm_.send(0, tag + "/push", to_bytes(next->second));
    comm_.send_tensor(0, tag + "/push_data", std::move(correction));
  };
  // Party 0 shuts down by sending a shutdown request as its last ack and then closing its stream,
  // without waiting for the next push. If that push is sent after the close, the send fails; the
  // shutdown is then the next message waiting, and the session ends normally.
  auto push_unless_shut_down = [&](uint64_t seq) {
    try {
      push(seq);
      return true;
    } catch (const CommError&) {
      const auto raw = comm_.recv(0, dealer_tag(seq) + "/ack");
      WireReader r(raw, "dealer");
      (void)r.u64();
      if (CorrelationRequest::deserialize(r.rest()).kind == CorrelationRequest::Kind::kShutdown) {
        return false;
      }
      throw;
    }
  };
  if (!push_unless_shut_down(0)) {
    return;
  }
  for (;;) {
    const std::string tag = dealer_tag(seq_);
    const auto raw = comm_.recv(0, tag + "/ack");
    WireReader r(raw, "dealer");
    const bool hit = r.u64() == 1;
    const std::string actual = to_string(r.rest());
    const CorrelationRequest req = CorrelationRequest::deserialize(to_bytes(actual));
    if (req.kind == CorrelationRequest::Kind::kShutdown) {
      return;
    }
    if (hit) {
      positions_ = pushed_positions;
      ++hits_;
    } else {
      comm_.send_tensor(0, tag + "/answer", compute(req, positions_));
    }
    if (!previous.empty()) {
      successor[previous] = actual;
    }
    history.push_back(actual);
    if (history.size() > kContext) {
      history.pop_front();
    }
    previous.clear();
    for (const auto& h : history) {
      previous += std::to_string(h.size());
      previous += ':';
      previous += h;
    }
    ++seq_;
    if (!push_unless_shut_down(seq_)) {
      return;
    }
  }
}

}  // namespace veil::crypto
