#pragma once
// Communicator: tagged point-to-point messages and collectives among the compute parties
// (ranks 0..world_size-1) plus, optionally, a dealer endpoint (rank world_size). Statistics are
// always on and are kept here, in the base class, so every backend counts identically.
//
// Round convention: a round is a maximal run of consecutive communication calls (send or recv)
// made by one party under the same tag. Protocols give every communication step its own tag
// ("<op>#<id>" or "<op>#<id>/<step>"), so an exchange in which every party sends and then
// receives under one tag costs one round. Messages to or from the dealer are counted in
// CommStats::dealer and by_op, never in CommStats::total (the online cost).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace veil::comm {

using Bytes = std::vector<std::byte>;

/// Counters of one party.
struct OpStats {
  int64_t rounds = 0;
  int64_t messages_sent = 0;
  int64_t messages_received = 0;
  int64_t bytes_sent = 0;
  int64_t bytes_received = 0;

  OpStats& operator+=(const OpStats& o);
  OpStats operator-(const OpStats& o) const;
  bool operator==(const OpStats&) const = default;
};

/// All counters of one party. `by_op` is keyed by the tag's op name (the part before '#').
struct CommStats {
  OpStats total;   ///< party-to-party traffic (the online cost)
  OpStats dealer;  ///< traffic with the dealer endpoint (offline / preprocessing)
  std::map<std::string, OpStats> by_op;

  /// Difference of two snapshots (this - earlier), for measuring one operation.
  CommStats operator-(const CommStats& earlier) const;
};

/// Reduction for all_reduce over ring64 tensors.
enum class ReduceOp : uint8_t { kSum /* mod 2^64 */, kXor };

/// The op name of a tag: "mul#12/open" -> "mul".
std::string tag_op(std::string_view tag);

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  /// This endpoint's rank: 0..world_size-1 for parties, world_size for the dealer.
  int rank() const { return rank_; }
  /// Number of compute parties (the dealer is not counted).
  int world_size() const { return world_size_; }
  /// Whether a dealer endpoint exists; its rank is dealer_rank() == world_size().
  bool has_dealer() const { return has_dealer_; }
  int dealer_rank() const { return world_size_; }
  bool is_dealer() const { return rank_ == world_size_; }

  /// Receive timeout (default 60 s). A recv that waits longer throws CommError naming the peer,
  /// the tag and the timeout.
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds t);

  // ---- point to point --------------------------------------------------------------------------
  /// Sends `data` to endpoint `to` under `tag`. Never blocks on the receiver.
  /// Throws ValueError for a bad rank, CommError when the session was aborted.
  void send(int to, std::string_view tag, std::span<const std::byte> data);
  /// Receives the next message from `from`. Throws ProtocolError when its tag differs from `tag`
  /// or, when expected_bytes >= 0, its size differs; CommError on timeout or abort.
  Bytes recv(int from, std::string_view tag, int64_t expected_bytes = -1);
  /// Sends a tensor's bytes (made contiguous first).
  void send_tensor(int to, std::string_view tag, const core::Tensor& t);
  /// Receives a tensor of the given shape and dtype (size checked).
  core::Tensor recv_tensor(int from, std::string_view tag, const core::Shape& shape,
                           core::DType dtype);

  // ---- collectives over the compute parties (the dealer must not call them) -------------------
  /// Element-wise reduction of a ring64 tensor over all parties; every party gets the result.
  /// Cost: 1 round; each party sends (world_size-1) * nbytes.
  core::Tensor all_reduce(std::string_view tag, const core::Tensor& t,
                          ReduceOp op = ReduceOp::kSum);
  /// Every party's tensor (same shape and dtype everywhere), indexed by rank.
  /// Cost: 1 round; each party sends (world_size-1) * nbytes.
  std::vector<core::Tensor> all_gather(std::string_view tag, const core::Tensor& t);
  /// root's tensor on every party; non-roots pass an undefined tensor plus shape and dtype.
  /// Cost: 1 round; root sends (world_size-1) * nbytes, the others nothing.
  core::Tensor broadcast(std::string_view tag, const core::Tensor& t, int root,
                         const core::Shape& shape, core::DType dtype);
  /// Returns once every party has entered the barrier. Cost: 1 round, world_size-1 empty messages.
  void barrier(std::string_view tag);

  // ---- failure ---------------------------------------------------------------------------------
  /// Marks the session failed and makes every endpoint's pending and future calls throw
  /// CommError("party <rank> aborted: <reason>"). Idempotent; never throws.
  void abort(const std::string& reason) noexcept;

  // ---- stats -----------------------------------------------------------------------------------
  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; last_tag_.clear(); }

 protected:
  Communicator(int rank, int world_size, bool has_dealer);

  /// Backend hooks. send_bytes must not block on the receiver; recv_bytes waits at most
  /// `timeout` for the next message from `from` and returns its tag and payload, throwing
  /// CommError on timeout or abort.
  struct Message {
    std::string tag;
    Bytes payload;
  };
  virtual void send_bytes(int to, std::string_view tag, std::span<const std::byte> data) = 0;
  virtual Message recv_bytes(int from, std::chrono::milliseconds timeout) = 0;
  virtual void abort_impl(const std::string& reason) noexcept = 0;

 private:
  void count(int peer, std::string_view tag, int64_t bytes, bool sent);
  void check_peer(int peer, const char* op) const;

  int rank_;
  int world_size_;
  bool has_dealer_;
  std::chrono::milliseconds timeout_{60000};
  CommStats stats_;
  std::string last_tag_;
};

}  // namespace veil::comm
