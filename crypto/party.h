#pragma once
// Party: everything one participant needs to run protocols — rank, communicator, PRGs (own,
// pairwise for zero-sharing, common), fixed-point encoder, provider, and the op counter that gives
// every communication step the same tag on every party.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "comm/communicator.h"
#include "crypto/fixed_point.h"
#include "crypto/prg.h"
#include "crypto/providers/provider.h"
#include "crypto/session_state.h"

namespace veil::crypto {

struct PartyOptions {
  /// Fixed-point fractional bits f (values are round(x * 2^f)).
  int frac_bits = 16;
  /// Correlated-randomness provider; the dealer (a separate, data-less endpoint) by default.
  ProviderKind provider = ProviderKind::kDealer;
  /// Must be true to use ProviderKind::kTrustedFirstParty; a warning is printed when used.
  bool insecure = false;
  /// Receive timeout for every communication call.
  std::chrono::milliseconds timeout{60000};
  /// Program/model identifier compared at setup (parties running different programs are
  /// refused before any protocol runs).
  std::string program_id;
  /// Where this party keeps its shares: the CPU (default) or a CUDA device. Parties may differ
  /// (results are bit-identical either way). On a CUDA device the arithmetic protocols (share,
  /// reveal, add, mul, matmul, truncation) run there and shares leave it only to be sent; the
  /// correlated randomness of those protocols is drawn there by the GPU PRG.
  core::Device device{};
  /// INSECURE, for reproducibility tests only (requires `insecure`): derive every key (pairwise,
  /// common, dealer, own) from this public seed instead of the OS, so two runs of a program give
  /// bit-identical results whatever the transport. Anyone knowing the seed learns every share.
  std::optional<uint64_t> insecure_seed;
  /// Resume a checkpointed session (crypto/session_state.h, models/checkpoint.h): instead of new
  /// keys from the OS, setup restores this party's keys and stream positions from the state, sends
  /// the dealer (or, in trusted-first-party mode, party 0) its stream's key and position, and
  /// continues the op and node counters, so the session goes on bit for bit like the one that
  /// exported the state. Every party must resume a state exported at the same point of the same
  /// run (compared at setup as the fingerprint field "resume"); a fresh party and a resumed one,
  /// or states of different runs or steps, are refused before any protocol runs. The state must
  /// have this party's rank, world size, frac_bits and provider (ValueError listing the fields).
  /// Takes precedence over insecure_seed. The state holds secret keys: see session_state.h.
  std::optional<SessionState> resume;
};

class Party {
 public:
  /// Collective setup over `comm` (all parties, and the dealer service when provider == kDealer):
  /// the setup fingerprint (crypto/fingerprint.h, plus the field "resume": "no" or the resume
  /// point of PartyOptions::resume) sent to every peer and the dealer and compared (ValueError
  /// listing the differing fields on a mismatch), pairwise PRZS keys (each party sends 16 bytes to
  /// its successor), a common public key (one XOR all_reduce of 16 bytes, 16(N-1) bytes sent;
  /// skipped when resuming: the key is restored), and the dealer stream (24 bytes: key and start
  /// position, to the dealer; in trusted-first-party mode to party 0 instead). Cost: 3 rounds (2
  /// when resuming), a few hundred bytes per party (tags "setup#..."). Throws ValueError for
  /// world_size < 2, the dealer endpoint, a missing dealer, trusted-first-party without `insecure`,
  /// a resume state of another rank, world size, frac_bits or provider, and ProtocolError when a
  /// resumed party's pairwise key differs from the one its predecessor restored (checkpoints of
  /// different runs).
  Party(comm::Communicator& comm, const PartyOptions& options);
  ~Party();
  Party(const Party&) = delete;
  Party& operator=(const Party&) = delete;

  int rank() const { return comm_.rank(); }
  int world_size() const { return comm_.world_size(); }
  comm::Communicator& comm() { return comm_; }
  const PartyOptions& options() const { return options_; }
  const FixedPointEncoder& encoder() const { return encoder_; }
  /// The device this party's shares live on (PartyOptions::device).
  core::Device device() const { return options_.device; }
  int frac_bits() const { return encoder_.frac_bits(); }

  /// Private randomness of this party (never shared).
  Prg& own_prg() { return own_prg_; }
  /// Key shared with party rank+1 (mod N) and with party rank-1 (mod N): zero-sharing.
  Prg& next_prg() { return next_prg_; }
  Prg& prev_prg() { return prev_prg_; }
  /// Public randomness identical on every party (not secret from any party).
  Prg& common_prg() { return common_prg_; }
  Provider& provider() { return *provider_; }

  /// "<op>#<n>" with n counting every tag this party made; identical on every party as long as
  /// all parties run the same program (architecture decision D).
  std::string next_tag(std::string_view op);

  /// Next sequence number for an autograd graph node (0, 1, 2, ... per party). Backward runs
  /// nodes in decreasing sequence number, which is the same order on every party as long as all
  /// parties run the same program (architecture decision D). Local; no communication.
  uint64_t next_node_sequence() { return node_counter_++; }

  /// Ends the session: party 0 releases the dealer. Call once after the last protocol.
  void finish();

  // ---- checkpoints (crypto/session_state.h) ----------------------------------------------------

  /// This party's session state now: keys, stream positions, op and node counters. Export it at
  /// the same point of the program on every party (e.g. between training steps, with no pending
  /// deferred value that the continuation would force). Local; the result is secret (keys).
  SessionState session_state() const;
  /// Rewinds the local streams (own, next, prev, common) and the node counter to `state`, which
  /// must be the state this session was resumed from (PartyOptions::resume): building the model
  /// again in the resumed program draws initial weights and masks from those streams, and this
  /// discards the draws (the checkpoint's values then replace whatever was built from them). The
  /// discarded draws never left this party, so replaying them reveals nothing. Throws ValueError
  /// when the state belongs to another session (run id or keys differ), is not the one this
  /// session was resumed from (another step, or a fresh session), or when this party ran a
  /// protocol or drew correlated randomness since setup (op counter or dealer stream position
  /// moved: load the checkpoint before running any protocol). Local; no communication.
  void restore_streams(const SessionState& state);
  /// Identifier of the run (16 hex digits, the same on every party, kept across resumes).
  const std::string& run_id() const { return run_id_; }
  /// The resume point this session was set up from (SessionState::resume_point()), or "" for a
  /// fresh session.
  const std::string& resumed_from() const { return resumed_from_; }
  /// Tags made so far (the op counter of next_tag).
  uint64_t op_count() const { return op_counter_; }

 private:
  comm::Communicator& comm_;
  PartyOptions options_;
  FixedPointEncoder encoder_;
  Prg own_prg_;
  Prg next_prg_;
  Prg prev_prg_;
  Prg common_prg_;
  // The keys of the streams above (secret; wiped by the destructor), for session_state().
  Prg::Seed own_key_{};
  Prg::Seed next_key_{};
  Prg::Seed prev_key_{};
  Prg::Seed common_key_{};
  Prg::Seed dealer_key_{};
  std::unique_ptr<SeededProvider> provider_;
  uint64_t op_counter_ = 0;
  uint64_t node_counter_ = 0;
  std::string run_id_;
  std::string resumed_from_;
};

/// The party of the calling thread (set by launch() or a CurrentPartyGuard). Throws ValueError
/// when none is set.
Party& current_party();
/// Whether the calling thread has a current party.
bool has_current_party();

/// Sets the calling thread's current party for its lifetime and restores the previous one.
class CurrentPartyGuard {
 public:
  explicit CurrentPartyGuard(Party& party);
  ~CurrentPartyGuard();
  CurrentPartyGuard(const CurrentPartyGuard&) = delete;
  CurrentPartyGuard& operator=(const CurrentPartyGuard&) = delete;

 private:
  Party* previous_;
};

}  // namespace veil::crypto
