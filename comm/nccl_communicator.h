#pragma once
// NCCL transport: a Communicator for parties that hold one GPU each in one cluster. Device tensor
// payloads travel over NCCL, GPU to GPU, without host staging; everything else (control messages,
// host tensors, traffic with the dealer) and a small header per device message go over a bootstrap
// Communicator that it wraps (the gRPC one across machines, the in-process one in tests).
//
// How device messages move. send_tensor of a CUDA tensor on this party's GPU sends a header (tag,
// byte count) over the bootstrap at once and keeps a device snapshot of the payload; the NCCL send
// is posted in one NCCL group together with this party's next NCCL receive or collective, so the
// usual round (every party sends, then every party receives) moves all payloads concurrently and
// never deadlocks. A receive that finds no message within NcclOptions::probe first posts the
// pending sends (the peer may be waiting for them), then waits. Every NCCL wait is bounded by
// timeout() and abort() stops it (ncclCommAbort): a failure ends in CommError, never in a hang.
// Receives take whatever the sender used: a host message received onto the GPU is uploaded, a
// device message received into host memory is downloaded, so protocol code runs unchanged.
// all_reduce of CUDA tensors uses ncclAllReduce for the sum (NCCL's ring: 2 (N-1)/N * nbytes
// sent per party) and grouped NCCL send/recv plus an on-device XOR for kXor; every party must
// then pass a CUDA tensor (a party with a host tensor makes every party throw ProtocolError).
//
// Statistics (CommStats) count the same messages and bytes as any other backend for the same
// program (the contract of comm/communicator.h, e.g. all_reduce: (N-1) * nbytes sent per party),
// not NCCL's physical traffic; the headers show up only in the bootstrap's own stats.
//
// Limitation: a party that has sent a peer a device tensor and then waits, longer than the probe,
// for a message that this peer only sends after receiving the tensor is served once the probe
// passes (one probe of latency); two parties that send each other device tensors and then both
// wait for something else than those tensors may both post their sends before either receives,
// which ends in CommError after timeout(). The patterns protocols use (send then receive within a
// round, collectives) do not do that.

#include <chrono>
#include <memory>

#include "comm/communicator.h"

namespace veil::comm {

struct NcclOptions {
  /// This party's CUDA device; every party must name a different physical GPU.
  int device = 0;
  /// How long a receive with pending device sends waits for a message before posting the sends.
  /// Keep it above the bootstrap's one-way latency.
  std::chrono::milliseconds probe{5};
};

class NcclCommunicator final : public Communicator {
 public:
  /// Collective over the compute parties of `bootstrap` (which must outlive this object and is not
  /// used directly while it exists). Every party checks its device, the parties exchange their
  /// GPUs' UUIDs over the bootstrap, rank 0 makes the NCCL id and sends it to the others, and all
  /// join the NCCL communicator. Rank, world size, dealer and timeout are the bootstrap's; traffic
  /// with the dealer goes over the bootstrap unchanged (the dealer keeps using its bootstrap
  /// communicator directly).
  /// Cost at construction: 2 bootstrap rounds (18 bytes to every peer, then 128 bytes from rank 0).
  /// Throws NotCompiledError without CUDA; ValueError when called by the dealer or when two
  /// parties name the same GPU (NCCL needs one GPU per party: use the in-process or gRPC
  /// communicator, which stage device tensors through host memory); CudaError when a party's
  /// device or libnccl is unusable or NCCL fails to join (on every party, no hang); CommError as
  /// the bootstrap.
  NcclCommunicator(Communicator& bootstrap, const NcclOptions& options);
  /// Posts pending device sends (bounded by timeout()), then leaves the NCCL communicator.
  ~NcclCommunicator() override;

  int device() const { return device_; }
  /// Posts the pending device sends now and waits until the peers have received them. Throws
  /// CommError on timeout or abort.
  void flush();

 protected:
  void send_bytes(int to, std::string_view tag, std::span<const std::byte> data) override;
  Message recv_bytes(int from,
                     std::string_view expected_tag,
                     std::chrono::milliseconds timeout) override;
  void abort_impl(const std::string& reason) noexcept override;
  bool send_device(int to, std::string_view tag, const core::Tensor& t) override;
  bool recv_device(int from, std::string_view tag, core::Tensor& out) override;
  bool all_reduce_device(std::string_view tag, core::Tensor& inout, ReduceOp op) override;
  void flush_device() override { flush(); }

 private:
  struct State;
  bool is_party(int rank) const { return rank >= 0 && rank < world_size(); }
  Bytes next_message(int from, std::string_view tag, std::chrono::milliseconds timeout);
  // Receives `bytes` bytes over NCCL from `from` into device memory `buf`, in one group with the
  // pending sends.
  void nccl_recv(int from, void* buf, std::size_t bytes);

  Communicator& boot_;
  int device_;
  std::chrono::milliseconds probe_;
  std::unique_ptr<State> state_;
};

}  // namespace veil::comm
