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
};

class Party {
 public:
  /// Collective setup over `comm` (all parties, and the dealer service when provider == kDealer):
  /// the setup fingerprint (crypto/fingerprint.h) sent to every peer and the dealer and compared
  /// (ValueError listing the differing fields on a mismatch), pairwise PRZS keys (each party sends
  /// 16 bytes to its successor), a common public key (one all_gather of 16 bytes), and the dealer
  /// seed (16 bytes to the dealer; in trusted-first-party mode to party 0 instead). Cost: 3 rounds,
  /// a few hundred bytes per party (tags "setup#..."). Throws ValueError for world_size < 2, the
  /// dealer endpoint, a missing dealer, or trusted-first-party without `insecure`.
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

 private:
  comm::Communicator& comm_;
  PartyOptions options_;
  FixedPointEncoder encoder_;
  Prg own_prg_;
  Prg next_prg_;
  Prg prev_prg_;
  Prg common_prg_;
  std::unique_ptr<Provider> provider_;
  uint64_t op_counter_ = 0;
  uint64_t node_counter_ = 0;
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
