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
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/allocator.h"
#include "core/tensor.h"

namespace veil::comm {

using Bytes = std::vector<std::byte, core::HostPoolAllocator<std::byte>>;

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

/// The op name of a tag: the part before the first '#' or '/' ("mul#12/open" -> "mul",
/// "barrier" -> "barrier").
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
  /// Rank of the dealer endpoint (== world_size(); meaningful only when has_dealer()).
  int dealer_rank() const { return world_size_; }
  /// Whether this endpoint is the dealer.
  bool is_dealer() const { return rank_ == world_size_; }

  /// Receive timeout (default 60 s). A recv that waits longer throws CommError naming the peer,
  /// the tag and the timeout.
  std::chrono::milliseconds timeout() const { return timeout_; }
  /// Sets the receive timeout. Throws ValueError unless t > 0.
  void set_timeout(std::chrono::milliseconds t);

  // ---- point to point --------------------------------------------------------------------------
  // Any endpoint may talk to any other endpoint (parties to parties, parties to and from the
  // dealer), never to itself. Messages between one pair of endpoints arrive in send order.

  /// Sends `data` to endpoint `to` under `tag`. Never blocks on the receiver.
  /// Cost: one message of data.size() bytes; a new round when `tag` differs from this endpoint's
  /// previous call's tag.
  /// Throws ValueError for a bad rank (out of range, or this endpoint itself) or an empty tag,
  /// CommError when the session was aborted.
  void send(int to, std::string_view tag, std::span<const std::byte> data);
  /// Receives the next message from `from`. Throws ValueError for a bad rank or an empty tag;
  /// ProtocolError when the message's tag differs from `tag` or, when expected_bytes >= 0, its
  /// size differs (the message is consumed either way); CommError on timeout or abort.
  /// Only successfully received messages are counted in the stats.
  Bytes recv(int from, std::string_view tag, int64_t expected_bytes = -1);
  /// Sends a tensor's bytes (made contiguous first; a CUDA tensor is staged through a pinned host
  /// buffer of the calling thread). Cost: one message of t.nbytes() bytes, the same for host and
  /// device tensors. Throws ValueError for an undefined tensor, otherwise as send().
  void send_tensor(int to, std::string_view tag, const core::Tensor& t);
  /// As send_tensor, for a tensor the caller gives up: over the in-process transport a contiguous
  /// host tensor that nothing else references is handed to the receiver without the copy. Same
  /// cost, counting and errors.
  void send_tensor(int to, std::string_view tag, core::Tensor&& t);
  /// Receives a tensor of the given shape and dtype onto `device` (default: host memory; protocol
  /// code passes the device its shares live on, e.g. `mine.device()`), whatever device the sender's
  /// tensor was on (size checked: ProtocolError when the sender's byte count differs). Cost: as
  /// recv() of nbytes, the same for every device. Throws as recv(), and NotCompiledError /
  /// CudaError when `device` is a CUDA device this build or machine does not have.
  core::Tensor recv_tensor(int from,
                           std::string_view tag,
                           const core::Shape& shape,
                           core::DType dtype,
                           core::Device device = {});

  // ---- collectives over the compute parties (the dealer must not call them) -------------------
  // Every party must call the same collective with the same tag, shape and dtype. Results are
  // fresh contiguous tensors (never views of the input) on the input's device. CUDA tensors go
  // through the backend's device transport where it has one (NcclCommunicator); otherwise they are
  // staged through a pinned host buffer of the calling thread, and all_reduce reduces on the host:
  // one copy down and one up (2 * nbytes over PCIe), where uploading the peers' parts to reduce
  // on the device would move N * nbytes. Messages and counted bytes are those of host tensors. With
  // world_size 1 they communicate nothing and cost 0 rounds. All throw ValueError when called by
  // the dealer, and CommError / ProtocolError as send() and recv().

  /// Element-wise reduction of a ring64 tensor over all parties; every party gets the result.
  /// Every party sends its tensor to every other party and reduces the tensors in rank order, so
  /// all parties get bit-identical results.
  /// Cost: 1 round; each party sends (world_size-1) * nbytes in world_size-1 messages and
  /// receives as much. Throws ValueError when t is not a defined ring64 tensor.
  core::Tensor all_reduce(std::string_view tag,
                          const core::Tensor& t,
                          ReduceOp op = ReduceOp::kSum);
  /// The same for a tensor the caller gives up: a contiguous host tensor with no other reference
  /// is handed to in-process peers without the copy a send otherwise makes (they only read it).
  /// Same result, messages and counted bytes as the overload above.
  core::Tensor all_reduce(std::string_view tag, core::Tensor&& t, ReduceOp op = ReduceOp::kSum);
  /// Every party's part of a host ring64 all-reduce, in rank order (this party's among them):
  /// word spans valid only during the call that passes them.
  using RingParts = std::span<const std::span<const uint64_t>>;
  /// all_reduce's exchange without its reduction: sends this party's part t to every peer (as the
  /// overload above, without a copy in-process) and calls combine with the world_size parts, so
  /// that the caller folds the sum into the pass that consumes it (the Beaver output) instead of
  /// writing the sum and reading it back. Same messages, round and counted bytes as all_reduce.
  /// Throws ValueError for an undefined, non-ring64 or CUDA tensor (a device reduction belongs to
  /// the device transport: use all_reduce) and when called by the dealer; CommError /
  /// ProtocolError as recv(). An exception from combine propagates after every message is in.
  void all_reduce_with(std::string_view tag,
                       core::Tensor&& t,
                       const std::function<void(RingParts)>& combine);
  /// Every party's tensor (same shape and dtype everywhere), indexed by rank.
  /// Cost: 1 round; each party sends (world_size-1) * nbytes in world_size-1 messages and
  /// receives as much. Throws ValueError for an undefined tensor.
  std::vector<core::Tensor> all_gather(std::string_view tag, const core::Tensor& t);
  /// root's tensor on every party; non-roots pass an undefined tensor plus shape and dtype.
  /// Cost: 1 round; root sends (world_size-1) * nbytes, the others nothing (each receives nbytes).
  /// Throws ValueError when root is not a party or when root's tensor does not have the given
  /// shape and dtype.
  /// Non-roots receive onto `device`.
  core::Tensor broadcast(std::string_view tag,
                         const core::Tensor& t,
                         int root,
                         const core::Shape& shape,
                         core::DType dtype,
                         core::Device device = {});
  /// Returns once every party has entered the barrier.
  /// Cost: 1 round; each party sends world_size-1 empty messages and receives as many.
  void barrier(std::string_view tag);

  // ---- failure ---------------------------------------------------------------------------------
  /// Marks the session failed and makes every endpoint's pending and future calls (this one's
  /// included) throw CommError("party <rank> aborted: <reason>") ("the dealer aborted: <reason>"
  /// when the dealer aborted). Idempotent; the first abort's reason wins; never throws. May be
  /// called from any thread. `reason` must not contain secret values.
  void abort(const std::string& reason) noexcept;

  // ---- stats -----------------------------------------------------------------------------------
  /// This endpoint's counters since construction or the last reset_stats().
  /// Observer called before every send with the peer and the tag (never the payload): for
  /// tracing and for fault-injection tests. Empty by default.
  void set_send_observer(std::function<void(int to, std::string_view tag)> observer) {
    send_observer_ = std::move(observer);
  }

  const CommStats& stats() const { return stats_; }
  /// Zeroes the counters; the next call starts a new round.
  void reset_stats() {
    stats_ = {};
    last_tag_.clear();
  }

 protected:
  Communicator(int rank, int world_size, bool has_dealer);

  /// Backend hooks, called with validated ranks. send_bytes must not block on the receiver and
  /// throws CommError after an abort; recv_bytes waits at most `timeout` for the next message
  /// from `from` and returns its tag and payload, throwing CommError on timeout or abort
  /// (`expected_tag` is only for that error message: "[recv] no data from party 1 after 200 ms
  /// (tag 'mul#3')"); abort_impl implements abort() and must be safe to call from any thread while
  /// other endpoints (or this one's own thread) are inside send_bytes / recv_bytes.
  struct Message {
    std::string tag;
    Bytes payload;
    /// Instead of `payload`: a contiguous tensor handed over whole (send_whole_tensor), in host
    /// memory or, from a sender whose backend accepts_device_tensors(), on a CUDA device; the
    /// receiver owns it exclusively, except in all_reduce(Tensor&&), whose receivers only read
    /// it (check sole_owner() before writing to a received tensor). Its bytes are the message.
    core::Tensor tensor;
  };
  virtual void send_bytes(int to, std::string_view tag, std::span<const std::byte> data) = 0;
  virtual Message recv_bytes(int from,
                             std::string_view expected_tag,
                             std::chrono::milliseconds timeout) = 0;
  virtual void abort_impl(const std::string& reason) noexcept = 0;

  /// Optional hand-over of whole tensors (the in-process transport). When accepts_host_tensors()
  /// is true, send_tensor and the collectives pass send_whole_tensor a private contiguous copy of
  /// a host tensor (the one copy a send makes anyway), which the backend delivers as
  /// Message::tensor; recv_tensor then returns it without copying it again. When
  /// accepts_device_tensors() is true, the same goes for a CUDA tensor: the private copy is made
  /// on its device and is complete before the send returns (the sender's stream is
  /// synchronized), so it never goes through host memory; a receiver expecting a tensor on that
  /// device adopts it, any other receiver copies it (to the host, or through the host to another
  /// device). Same messages and counted bytes as send_bytes. send_whole_tensor must not block on
  /// the receiver and throws as send_bytes.
  virtual bool accepts_host_tensors() const { return false; }
  virtual bool accepts_device_tensors() const { return false; }
  virtual void send_whole_tensor(int /*to*/, std::string_view /*tag*/, core::Tensor /*t*/) {}

  /// Optional device transport (NcclCommunicator). The base calls these for CUDA tensors after
  /// validating the peer and tag; a backend that moves device memory itself does so and returns
  /// true, otherwise returns false and the base stages the bytes through pinned host memory and
  /// send_bytes / recv_bytes. Either way the base counts the same messages and bytes as for a host
  /// tensor, so CommStats do not depend on where tensors live or how they travel.
  /// send_device: `t` (any layout, on any CUDA device) to party `to`; must not block on the
  /// receiver. recv_device: fills the contiguous CUDA tensor `out` from `from`, throwing
  /// ProtocolError (tag or size mismatch) and CommError as recv_bytes. all_reduce_device: reduces
  /// the contiguous CUDA ring tensor `inout` over all parties in place (world_size >= 2), with
  /// the same result as the host path. flush_device: called when a collective's sends must be on
  /// their way before it returns (the root of a broadcast).
  virtual bool send_device(int /*to*/, std::string_view /*tag*/, const core::Tensor& /*t*/) {
    return false;
  }
  virtual bool recv_device(int /*from*/, std::string_view /*tag*/, core::Tensor& /*out*/) {
    return false;
  }
  virtual bool all_reduce_device(std::string_view /*tag*/,
                                 core::Tensor& /*inout*/,
                                 ReduceOp /*op*/) {
    return false;
  }
  virtual void flush_device() {}

  /// "party 1", or "the dealer" for the dealer endpoint, for error messages.
  std::string peer_name(int rank) const;

 private:
  // recv_bytes with the tag and size checks of recv() and the count; the message's bytes are its
  // payload or its tensor (message_bytes). A CUDA tensor message is copied to the host unless
  // keep_device (the caller takes the device tensor itself).
  Message recv_checked(int from,
                       std::string_view tag,
                       int64_t expected_bytes,
                       bool keep_device = false);
  static std::span<const std::byte> message_bytes(const Message& m);
  void count(int peer, std::string_view tag, int64_t bytes, bool sent);
  void check_peer(int peer, const char* op) const;
  // Peer and tag checks plus the send observer, shared by send() and the tensor paths.
  void begin_send(int to, std::string_view tag, bool observe = true);
  // Sends tensor `t` to `to`: through send_device when the backend takes it, else its host bytes,
  // staged once into (keep, staged) and reused for further peers.
  // The reduction of all_reduce after this party's sends: its own part `mine` (t's bytes) and
  // every peer's message, in rank order, into a fresh tensor on t's device.
  core::Tensor reduce_received(std::string_view tag,
                               const core::Tensor& t,
                               std::span<const std::byte> mine,
                               ReduceOp op);
  // Receives every peer's n-word part under tag and calls combine with all world_size parts in
  // rank order (`mine` at this party's rank).
  void with_received(std::string_view tag,
                     int64_t n,
                     std::span<const std::byte> mine,
                     const std::function<void(RingParts)>& combine);
  void send_tensor_once(int to,
                        std::string_view tag,
                        const core::Tensor& t,
                        core::Tensor& keep,
                        std::span<const std::byte>& staged,
                        bool observe = true);

  int rank_;
  int world_size_;
  bool has_dealer_;
  std::chrono::milliseconds timeout_{60000};
  CommStats stats_;
  std::function<void(int, std::string_view)> send_observer_;
  std::string last_tag_;
};

}  // namespace veil::comm
