#include "crypto/party.h"

#include <cstring>
#include <span>

#include <fmt/format.h>

#include "core/log.h"
#include "crypto/digest.h"
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
// refuses to go on when any field differs. Resumed sessions add their resume point, so parties
// resuming different checkpoints (or a fresh party among resumed ones) are refused.
void exchange_fingerprints(comm::Communicator& comm,
                           const PartyOptions& options,
                           bool with_dealer) {
  SetupFingerprint mine = party_fingerprint(options, comm.world_size());
  mine.fields["resume"] = options.resume ? options.resume->resume_point() : "no";
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
      own_prg_(Prg::Seed{}),
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
  // The resume state (if any) is this party's; it must fit the setup. Its keys replace the OS's.
  const SessionState* resume = options_.resume ? &*options_.resume : nullptr;
  if (resume != nullptr) {
    const auto diffs =
        resume->mismatches(rank(), world_size(), options_.frac_bits, options_.provider);
    VEIL_CHECK(diffs.empty(), "[Party] the resume state does not fit this party: {}",
               fmt::join(diffs, "; "));
  }
  auto key = [&](KeyUse use, const PrgState SessionState::*stream) {
    return resume != nullptr ? (resume->*stream).key : make_key(options_, rank(), use);
  };
  auto start = [&](Prg& prg, const PrgState SessionState::*stream) {
    if (resume != nullptr) {
      prg.seek((resume->*stream).position);
    }
  };
  own_key_ = key(KeyUse::kOwn, &SessionState::own);
  own_prg_ = Prg(own_key_);
  start(own_prg_, &SessionState::own);
  comm_.set_timeout(options_.timeout);
  if (rank() == 0 && tfp) {
    core::log_warning(
        "INSECURE: trusted-first-party provider: party 0 generates (and learns) all correlated "
        "randomness. Use only for benchmarks.");
  }
  if (rank() == 0 && options_.insecure_seed && resume == nullptr) {
    core::log_warning(
        "INSECURE: every key is derived from a public seed (reproducibility runs only); anyone "
        "who knows the seed learns every share.");
  }
  exchange_fingerprints(comm_, options_, !tfp);
  const int n = world_size();
  const int next = (rank() + 1) % n;
  const int prev = (rank() + n - 1) % n;
  // Pairwise zero-sharing keys: send ours to the successor, receive the predecessor's. A resumed
  // party sends its restored key again, so its successor can check that both resume one run.
  next_key_ = key(KeyUse::kPairwise, &SessionState::next);
  next_prg_ = Prg(next_key_);
  start(next_prg_, &SessionState::next);
  comm_.send(next, "setup#przs", as_bytes(next_key_));
  prev_key_ = to_seed(comm_.recv(prev, "setup#przs", sizeof(Prg::Seed)), "przs seed");
  if (resume != nullptr) {
    VEIL_CHECK_WITH(ProtocolError, prev_key_ == resume->prev.key,
                    "[setup] party {} refuses to resume: the pairwise key of party {} differs "
                    "from the one in this party's resume state (the parties resume checkpoints "
                    "of different runs)",
                    rank(), prev);
  }
  prev_prg_ = Prg(prev_key_);
  start(prev_prg_, &SessionState::prev);
  // Common public key: xor of everyone's contribution (restored when resuming; the fingerprint
  // exchange above has checked that every party resumes the same run, hence the same key).
  if (resume == nullptr) {
    Prg::Seed contrib = make_key(options_, rank(), KeyUse::kCommon);
    core::Tensor t = core::Tensor::empty({2}, core::DType::kRing64);
    std::memcpy(t.data<uint64_t>(), contrib.data(), contrib.size());
    core::Tensor common = comm_.all_reduce("setup#common", t, comm::ReduceOp::kXor);
    std::memcpy(common_key_.data(), common.data<uint64_t>(), common_key_.size());
  } else {
    common_key_ = resume->common.key;
  }
  common_prg_ = Prg(common_key_);
  start(common_prg_, &SessionState::common);
  run_id_ = run_id_for(common_key_);
  if (resume != nullptr) {
    VEIL_CHECK(run_id_ == resume->run_id,
               "[Party] the resume state is inconsistent: its run id '{}' does not belong to its "
               "common key (edited or corrupt state)",
               resume->run_id);
    op_counter_ = resume->op_counter;
    node_counter_ = resume->node_counter;
    resumed_from_ = resume->resume_point();
  }
  // Stream shared with the dealer (or, insecurely, with party 0): key and start position.
  dealer_key_ = key(KeyUse::kDealer, &SessionState::dealer);
  const uint64_t dealer_position = resume != nullptr ? resume->dealer.position : 0;
  std::vector<Prg::Seed> mirrors;
  std::vector<uint64_t> mirror_positions;
  if (!tfp) {
    comm_.send(comm_.dealer_rank(), kDealerSeedTag,
               encode_dealer_stream(dealer_key_, dealer_position));
  } else if (rank() != 0) {
    comm_.send(0, kDealerSeedTag, encode_dealer_stream(dealer_key_, dealer_position));
  } else {
    mirrors.resize(static_cast<std::size_t>(n));
    mirror_positions.resize(static_cast<std::size_t>(n));
    mirrors[0] = dealer_key_;
    mirror_positions[0] = dealer_position;
    for (int j = 1; j < n; ++j) {
      const auto [seed, position] = decode_dealer_stream(
          comm_.recv(j, kDealerSeedTag, static_cast<int64_t>(kDealerStreamBytes)));
      mirrors[static_cast<std::size_t>(j)] = seed;
      mirror_positions[static_cast<std::size_t>(j)] = position;
    }
  }
  provider_ = std::make_unique<SeededProvider>(comm_, options_.provider, dealer_key_, mirrors,
                                               options_.device, dealer_position, mirror_positions);
  for (Prg::Seed& m : mirrors) {
    secure_wipe(std::span<uint8_t>(m));
  }
  // Keep no second copy of the restored keys in the options.
  if (options_.resume) {
    secure_wipe(*options_.resume);
    options_.resume.reset();
  }
}

Party::~Party() {
  if (tl_current_party == this) {
    tl_current_party = nullptr;
  }
  for (Prg::Seed* k : {&own_key_, &next_key_, &prev_key_, &common_key_, &dealer_key_}) {
    secure_wipe(std::span<uint8_t>(*k));
  }
}

std::string Party::next_tag(std::string_view op) {
  return fmt::format("{}#{}", op, op_counter_++);
}

void Party::finish() {
  provider_->finish();
}

SessionState Party::session_state() const {
  SessionState s;
  s.rank = rank();
  s.world_size = world_size();
  s.frac_bits = frac_bits();
  s.provider = options_.provider;
  s.run_id = run_id_;
  s.own = {own_key_, own_prg_.position()};
  s.next = {next_key_, next_prg_.position()};
  s.prev = {prev_key_, prev_prg_.position()};
  s.common = {common_key_, common_prg_.position()};
  s.dealer = {dealer_key_, provider_->position()};
  s.op_counter = op_counter_;
  s.node_counter = node_counter_;
  return s;
}

void Party::restore_streams(const SessionState& state) {
  const auto diffs = state.mismatches(rank(), world_size(), frac_bits(), options_.provider);
  VEIL_CHECK(diffs.empty(), "[Party::restore_streams] the state does not fit this party: {}",
             fmt::join(diffs, "; "));
  const bool same_keys = state.own.key == own_key_ && state.next.key == next_key_ &&
                         state.prev.key == prev_key_ && state.common.key == common_key_ &&
                         state.dealer.key == dealer_key_;
  VEIL_CHECK(state.run_id == run_id_ && same_keys,
             "[Party::restore_streams] the state belongs to another session (run '{}', this "
             "session is run '{}'{}): resume the session from it first (PartyOptions::resume)",
             state.run_id, run_id_, state.run_id == run_id_ ? " with other keys" : "");
  VEIL_CHECK(state.resume_point() == resumed_from_,
             "[Party::restore_streams] expected the state this session was resumed from (resume "
             "point '{}'), got one of resume point '{}'",
             resumed_from_.empty() ? std::string("none: a fresh session") : resumed_from_,
             state.resume_point());
  VEIL_CHECK(state.op_counter == op_counter_ && state.dealer.position == provider_->position(),
             "[Party::restore_streams] expected no communication and no correlated randomness "
             "since the state was exported or the session resumed (op counter {} in the state, "
             "{} now; dealer stream at byte {} in the state, {} now): restore before running any "
             "protocol",
             state.op_counter, op_counter_, state.dealer.position, provider_->position());
  own_prg_.seek(state.own.position);
  next_prg_.seek(state.next.position);
  prev_prg_.seek(state.prev.position);
  common_prg_.seek(state.common.position);
  node_counter_ = state.node_counter;
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
