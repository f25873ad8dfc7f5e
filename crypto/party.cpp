#include "crypto/party.h"

#include <cstring>

#include <fmt/format.h>

#include "core/log.h"

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

Prg make_next_prg(comm::Communicator& comm, Prg::Seed& mine) {
  VEIL_CHECK(!comm.is_dealer(), "[Party] the dealer endpoint (rank {}) cannot be a party",
             comm.rank());
  VEIL_CHECK(comm.world_size() >= 2, "[Party] expected world_size >= 2, got {}", comm.world_size());
  mine = Prg::os_seed();
  return Prg(mine);
}
}  // namespace

Party::Party(comm::Communicator& comm, const PartyOptions& options)
    : comm_(comm),
      options_(options),
      encoder_(options.frac_bits),
      own_prg_(Prg::os_seed()),
      next_prg_(Prg::os_seed()),
      prev_prg_(Prg::os_seed()),
      common_prg_(Prg::os_seed()) {
  Prg::Seed next_seed{};
  next_prg_ = make_next_prg(comm_, next_seed);
  const bool tfp = options_.provider == ProviderKind::kTrustedFirstParty;
  VEIL_CHECK(!tfp || options_.insecure,
             "[Party] the trusted-first-party provider is insecure (party 0 learns every mask); "
             "expected PartyOptions::insecure = true to enable it");
  VEIL_CHECK(tfp || comm_.has_dealer(),
             "[Party] the dealer provider needs a dealer endpoint, but the communicator has none");
  comm_.set_timeout(options_.timeout);
  if (tfp && rank() == 0) {
    core::log_warning(
        "INSECURE: trusted-first-party provider: party 0 generates (and learns) all correlated "
        "randomness. Use only for benchmarks.");
  }
  const int n = world_size();
  const int next = (rank() + 1) % n;
  const int prev = (rank() + n - 1) % n;
  // Pairwise zero-sharing keys: send ours to the successor, receive the predecessor's.
  comm_.send(next, "setup#przs", as_bytes(next_seed));
  prev_prg_ = Prg(to_seed(comm_.recv(prev, "setup#przs", sizeof(Prg::Seed)), "przs seed"));
  // Common public key: xor of everyone's contribution.
  Prg::Seed contrib = Prg::os_seed();
  core::Tensor t = core::Tensor::empty({2}, core::DType::kRing64);
  std::memcpy(t.data<uint64_t>(), contrib.data(), contrib.size());
  core::Tensor common = comm_.all_reduce("setup#common", t, comm::ReduceOp::kXor);
  Prg::Seed common_seed{};
  std::memcpy(common_seed.data(), common.data<uint64_t>(), common_seed.size());
  common_prg_ = Prg(common_seed);
  // Seed shared with the dealer (or, insecurely, with party 0).
  const Prg::Seed dealer_seed = Prg::os_seed();
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
  provider_ = std::make_unique<SeededProvider>(comm_, options_.provider, dealer_seed, mirrors);
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
