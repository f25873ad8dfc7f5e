#include "crypto/party.h"

#include <cstring>
#include <span>

#include <fmt/format.h>

#include "core/log.h"
#include "crypto/fingerprint.h"
#include "kernels/cuda_backend.h"

namespace veil::crypto {

namespace {
thread_local Party* tl_current_party = nullptr;

Prg::Seed to_seed(const comm::Bytes& b, const char* what) {
  VEIL_CHECK_WITH(ProtocolError, b.size() == sizeof(Prg::Seed),
                  "[Party] {}: expected {} bytes, got {}", what, sizeof(Prg::Seed), b.size());
  Prg::Seed s{};
  std::memcpy(s.data(), b.data(), s.size());
  return s;
}

std::span<const std::byte> as_bytes(const Prg::Seed& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Keys come from the OS, or (insecure, reproducibility only) from a public seed with one stream
// per (rank, purpose).
enum class KeyUse : uint64_t { kOwn = 1, kPairwise = 2, kCommon = 3, kDealer = 4 };

Prg::Seed make_key(const PartyOptions& o, int rank, KeyUse use) {
  if (!o.insecure_seed) {
    return Prg::os_seed();
  }
  constexpr uint64_t kDomain = 0x7665696c2d646574ULL;  // separates these from other public seeds
  return Prg::public_seed(*o.insecure_seed ^ kDomain,
                          static_cast<uint64_t>(rank) * 16 + static_cast<uint64_t>(use));
}

void check_party_endpoint(const comm::Communicator& comm) {
  VEIL_CHECK(!comm.is_dealer(), "[Party] the dealer endpoint (rank {}) cannot be a party",
             comm.rank());
  VEIL_CHECK(comm.world_size() >= 2, "[Party] expected world_size >= 2, got {}", comm.world_size());
}

// Sends this party's fingerprint to every other party (and the dealer), receives theirs and
// refuses to go on when any field differs.
void exchange_fingerprints(comm::Communicator& comm,
                           const PartyOptions& options,
                           bool with_dealer) {
  const SetupFingerprint mine = party_fingerprint(options, comm.world_size());
  const std::string text = mine.serialize();
  const auto bytes = std::as_bytes(std::span<const char>(text));
  constexpr const char* kTag = "setup#fingerprint";
  for (int j = 0; j < comm.world_size(); ++j) {
    if (j != comm.rank()) {
      comm.send(j, kTag, bytes);
    }
  }
  if (with_dealer) {
    comm.send(comm.dealer_rank(), kTag, bytes);
  }
  std::vector<std::string> diffs;
  for (int j = 0; j < comm.world_size(); ++j) {
    if (j == comm.rank()) {
      continue;
    }
    const auto theirs = comm.recv(j, kTag);
    const auto d =
        fingerprint_diff(mine,
                         SetupFingerprint::parse(std::string(
                             reinterpret_cast<const char*>(theirs.data()), theirs.size())),
                         fmt::format("party {}", j));
    diffs.insert(diffs.end(), d.begin(), d.end());
  }
  VEIL_CHECK(diffs.empty(), "[setup] party {} refuses the session: setup fingerprints differ: {}",
             comm.rank(), fmt::join(diffs, "; "));
}
}  // namespace

Party::Party(comm::Communicator& comm, const PartyOptions& options)
    : comm_((check_party_endpoint(comm), comm)),
      options_(options),
      encoder_(options.frac_bits),
      own_prg_(make_key(options, comm.rank(), KeyUse::kOwn)),
      next_prg_(Prg::Seed{}),
      prev_prg_(Prg::Seed{}),
      common_prg_(Prg::Seed{}) {
  const bool tfp = options_.provider == ProviderKind::kTrustedFirstParty;
  VEIL_CHECK(!tfp || options_.insecure,
             "[Party] the trusted-first-party provider is insecure (party 0 learns every mask); "
             "expected PartyOptions::insecure = true to enable it");
  VEIL_CHECK(!options_.insecure_seed || options_.insecure,
             "[Party] deterministic keys from a public seed are insecure; expected "
             "PartyOptions::insecure = true to enable them");
  VEIL_CHECK(tfp || comm_.has_dealer(),
             "[Party] the dealer provider needs a dealer endpoint, but the communicator has none");
  if (options_.device.type == core::Device::Type::kCUDA) {
    VEIL_CHECK_WITH(NotCompiledError, kernels::cuda::compiled(),
                    "[Party] PartyOptions::device is cuda:{}, but veil was built without CUDA "
                    "(reconfigure with -DVEIL_WITH_CUDA=ON)",
                    options_.device.index);
    const int devices = kernels::cuda::device_count();
    VEIL_CHECK(options_.device.index >= 0 && options_.device.index < devices,
               "[Party] PartyOptions::device is cuda:{}, expected an index in [0, {}) (the CUDA "
               "devices visible to this process)",
               options_.device.index, devices);
  }
  comm_.set_timeout(options_.timeout);
  if (rank() == 0 && tfp) {
    core::log_warning(
        "INSECURE: trusted-first-party provider: party 0 generates (and learns) all correlated "
        "randomness. Use only for benchmarks.");
  }
  if (rank() == 0 && options_.insecure_seed) {
    core::log_warning(
        "INSECURE: every key is derived from a public seed (reproducibility runs only); anyone "
        "who knows the seed learns every share.");
  }
  exchange_fingerprints(comm_, options_, !tfp);
  const int n = world_size();
  const int next = (rank() + 1) % n;
  const int prev = (rank() + n - 1) % n;
  // Pairwise zero-sharing keys: send ours to the successor, receive the predecessor's.
  const Prg::Seed next_seed = make_key(options_, rank(), KeyUse::kPairwise);
  next_prg_ = Prg(next_seed);
  comm_.send(next, "setup#przs", as_bytes(next_seed));
  prev_prg_ = Prg(to_seed(comm_.recv(prev, "setup#przs", sizeof(Prg::Seed)), "przs seed"));
  // Common public key: xor of everyone's contribution.
  Prg::Seed contrib = make_key(options_, rank(), KeyUse::kCommon);
  core::Tensor t = core::Tensor::empty({2}, core::DType::kRing64);
  std::memcpy(t.data<uint64_t>(), contrib.data(), contrib.size());
  core::Tensor common = comm_.all_reduce("setup#common", t, comm::ReduceOp::kXor);
  Prg::Seed common_seed{};
  std::memcpy(common_seed.data(), common.data<uint64_t>(), common_seed.size());
  common_prg_ = Prg(common_seed);
  // Seed shared with the dealer (or, insecurely, with party 0).
  const Prg::Seed dealer_seed = make_key(options_, rank(), KeyUse::kDealer);
  std::vector<Prg::Seed> mirrors;
  if (!tfp) {
    comm_.send(comm_.dealer_rank(), kDealerSeedTag, as_bytes(dealer_seed));
  } else if (rank() != 0) {
    comm_.send(0, kDealerSeedTag, as_bytes(dealer_seed));
  } else {
    mirrors.resize(static_cast<std::size_t>(n));
    mirrors[0] = dealer_seed;
    for (int j = 1; j < n; ++j) {
      mirrors[static_cast<std::size_t>(j)] =
          to_seed(comm_.recv(j, kDealerSeedTag, sizeof(Prg::Seed)), "dealer seed");
    }
  }
  provider_ = std::make_unique<SeededProvider>(comm_, options_.provider, dealer_seed, mirrors,
                                               options_.device);
}

Party::~Party() {
  if (tl_current_party == this) {
    tl_current_party = nullptr;
  }
}

std::string Party::next_tag(std::string_view op) {
  return fmt::format("{}#{}", op, op_counter_++);
}

void Party::finish() {
  provider_->finish();
}

Party& current_party() {
  VEIL_CHECK(tl_current_party != nullptr,
             "[current_party] no party is set on this thread; run the code under veil::launch() "
             "or a CurrentPartyGuard");
  return *tl_current_party;
}

bool has_current_party() {
  return tl_current_party != nullptr;
}

CurrentPartyGuard::CurrentPartyGuard(Party& party) : previous_(tl_current_party) {
  tl_current_party = &party;
}

CurrentPartyGuard::~CurrentPartyGuard() {
  tl_current_party = previous_;
}

}  // namespace veil::crypto
