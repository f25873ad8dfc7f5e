#pragma once
// SessionState: what a party must keep to continue a secure session bit for bit in a new process
// (checkpoint / resume). A session's randomness is a set of AES-CTR streams (crypto/prg.h), each a
// 128-bit key plus a position; a resumed party restores the keys instead of drawing new ones from
// the OS and continues every stream where the checkpoint left it:
//   own     this party's private stream;
//   next    the zero-sharing (PRZS) key shared with party rank+1 (this party generated it);
//   prev    the PRZS key shared with party rank-1 (received from it at setup);
//   common  the public stream shared by all parties (dropout masks, shuffles, initialisation);
//   dealer  the stream shared with the dealer (or, in trusted-first-party mode, with party 0):
//           this party's components of every correlation. The dealer keeps no state of its own:
//           a resumed party sends it the key and the position at setup (Party's constructor) and
//           the dealer replays from there.
// plus the op counter (communication tags) and the autograd node counter, which make the resumed
// run's message sequence identical to the uninterrupted one.
//
// Security: the state holds this party's keys. Anyone who reads it learns every PRZS mask and
// correlation component of this party, so it must be protected exactly like the party's shares
// (a checkpoint file is that party's secret). Resuming replays randomness: the steps the
// interrupted run executed after the checkpoint are executed again with the same masks. That is
// safe only when the continuation computes on the same inputs (every message then repeats one
// already sent); resuming one checkpoint twice with different data or a different program reuses
// one-time masks (a Beaver opening x - a then reveals x - x'). To change data or program, start a
// fresh session (new keys) and load only the shares.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "crypto/prg.h"
#include "crypto/providers/provider.h"

namespace veil::crypto {

/// One PRG stream: its key and the number of keystream bytes consumed.
struct PrgState {
  Prg::Seed key{};
  uint64_t position = 0;

  bool operator==(const PrgState&) const = default;
};

/// A party's session state (see the file comment). Exported by Party::session_state(), restored
/// through PartyOptions::resume and Party::restore_streams().
struct SessionState {
  /// Version of the field layout written by to_fields().
  static constexpr int kFormatVersion = 1;

  int rank = -1;
  int world_size = 0;
  int frac_bits = 16;
  ProviderKind provider = ProviderKind::kDealer;
  /// Identifier of the run, the same on every party: 16 hex digits of SHA-256 of a label and the
  /// common key (reveals nothing about the key). Kept across resumes.
  std::string run_id;
  PrgState own;
  PrgState next;
  PrgState prev;
  PrgState common;
  PrgState dealer;
  /// Party::next_tag's counter and the autograd node counter at export.
  uint64_t op_counter = 0;
  uint64_t node_counter = 0;

  /// "<run_id>@<op_counter>/<common position>": identical on every party that exported its
  /// state at the same point of the same run (parties compare it at setup when resuming).
  std::string resume_point() const;

  /// The state as text fields ("rank", "own.key" (32 hex digits), "own.position", ...; keys are
  /// secret: see the file comment). Version "format" = kFormatVersion.
  std::map<std::string, std::string> to_fields() const;
  /// Parses to_fields()'s output. Throws ValueError naming the first missing or malformed field
  /// (never its value), or an unsupported format version.
  static SessionState from_fields(const std::map<std::string, std::string>& fields);

  /// "field: value here, value expected" for each of rank, world_size, frac_bits and provider
  /// that differs from the given setup (empty when the state fits). Keys are not compared.
  std::vector<std::string> mismatches(int expected_rank,
                                      int expected_world_size,
                                      int expected_frac_bits,
                                      ProviderKind expected_provider) const;
};

/// Overwrites every key of `state` with zeros (crypto/digest.h secure_wipe); positions are kept.
void secure_wipe(SessionState& state);

/// The run id of a session whose common key is `common_key` (see SessionState::run_id).
std::string run_id_for(const Prg::Seed& common_key);

}  // namespace veil::crypto
