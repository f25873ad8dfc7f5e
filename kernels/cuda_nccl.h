#pragma once
// NCCL point-to-point transport for parties that hold one GPU each in one cluster. Raw device
// buffers; comm/nccl_communicator.h builds the Communicator on top. libnccl.so.2 is opened at first
// use (kernels/cuda/dynlib.h), never linked. Stub without CUDA (or when nccl.h was missing at build
// time): nccl_available() is false and the rest throws NotCompiledError naming -DVEIL_WITH_CUDA=ON.
//
// Every operation runs on the calling thread's per-thread default stream and returns when it has
// completed. The communicator is NCCL's non-blocking kind: every wait (joining, a group, an
// all-reduce) polls and is bounded by timeout(); when the timeout passes or request_abort() was
// called, the NCCL communicator is aborted (ncclCommAbort, which also stops kernels stuck waiting
// for a peer) and CudaError is thrown. After that the object is unusable (every call throws).

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace veil::kernels::cuda {

/// True when this build contains the NCCL transport and libnccl.so.2 can be loaded. Never throws.
bool nccl_available();

/// The 128-byte identifier rank 0 creates and every rank needs to join (ncclUniqueId).
using NcclId = std::array<uint8_t, 128>;
/// A fresh identifier (ncclGetUniqueId). Throws CudaError when libnccl cannot be loaded.
NcclId nccl_make_id();

/// The 16-byte UUID of CUDA device `device` (cudaDeviceProp::uuid): equal UUIDs mean the same
/// physical GPU, across processes too. Throws CudaError for an index outside [0, device_count()).
std::array<uint8_t, 16> device_uuid(int device);

/// An NCCL communicator of world_size ranks, this one `rank` on `device`.
class NcclComm {
 public:
  /// Collective over all ranks (each calls it with the same id); waits at most `timeout` for the
  /// others. Throws CudaError on failure or timeout, e.g. when two ranks name the same GPU (NCCL
  /// needs one GPU per rank: the message says to use the in-process or gRPC transport instead),
  /// veil::Error for a rank outside [0, world_size).
  NcclComm(const NcclId& id,
           int world_size,
           int rank,
           int device,
           std::chrono::milliseconds timeout = std::chrono::milliseconds(60000));
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  /// One point-to-point transfer of `bytes` bytes of device memory (`buf` is read for a send and
  /// written for a receive). Transfers between two ranks are matched in call order.
  struct P2p {
    bool send = true;
    void* buf = nullptr;
    std::size_t bytes = 0;
    int peer = 0;
  };
  /// Posts all of `ops` as one NCCL group (so sends and receives in both directions progress
  /// together and never deadlock on each other) and returns when all have completed.
  void group(std::span<const P2p> ops);
  /// A group of one transfer. A send completes only once `peer` has posted the matching receive.
  void send(const void* buf, std::size_t bytes, int peer);
  void recv(void* buf, std::size_t bytes, int peer);
  /// In-place sum mod 2^64 (ncclUint64 sums wrap) of n uint64 elements over all ranks. Every rank
  /// calls it with the same n. Physical traffic: NCCL's ring, 2 (N-1)/N * 8n bytes sent per rank.
  void all_reduce_sum_u64(uint64_t* buf, int64_t n);

  /// Bound of every later wait (> 0).
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  /// Makes the current wait (on any thread) and every later call fail with CudaError after
  /// aborting the NCCL communicator. Safe to call from any thread; never throws.
  void request_abort() noexcept { abort_requested_.store(true, std::memory_order_release); }

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int device() const { return device_; }

 private:
  // Polls until the communicator's pending host-side work and the thread's stream are done.
  void wait(const char* op, bool stream);
  [[noreturn]] void fail(const char* op, const std::string& why);

  void* comm_ = nullptr;  // ncclComm_t; nullptr once destroyed or aborted
  int world_size_ = 0;
  int rank_ = 0;
  int device_ = 0;
  std::chrono::milliseconds timeout_;
  std::atomic<bool> abort_requested_{false};
};

}  // namespace veil::kernels::cuda
