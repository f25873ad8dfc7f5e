#pragma once
// NCCL point-to-point transport for parties that hold one GPU each in one cluster. Raw device
// buffers; comm/ builds the Communicator on top. Stub without CUDA (or without NCCL at configure
// time): nccl_available() is false and the rest throws NotCompiledError.

#include <array>
#include <cstddef>
#include <cstdint>

namespace veil::kernels::cuda {

/// True when this build links NCCL.
bool nccl_available();

/// The 128-byte identifier rank 0 creates and every rank needs to join (ncclUniqueId).
using NcclId = std::array<uint8_t, 128>;
NcclId nccl_make_id();

/// An NCCL communicator of world_size ranks, this one `rank` on `device`. Operations run on the
/// calling thread's per-thread default stream and return when the transfer has completed.
class NcclComm {
 public:
  /// Collective over all ranks (each calls it with the same id). Throws CudaError on failure,
  /// e.g. when two ranks name the same GPU (NCCL needs one GPU per rank).
  NcclComm(const NcclId& id, int world_size, int rank, int device);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  /// Sends/receives `bytes` bytes of device memory to/from `peer` (matched in call order).
  void send(const void* buf, std::size_t bytes, int peer);
  void recv(void* buf, std::size_t bytes, int peer);
  /// In-place sum mod 2^64 of n uint64 elements over all ranks.
  void all_reduce_sum_u64(uint64_t* buf, int64_t n);

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int device() const { return device_; }

 private:
  void* comm_ = nullptr;  // ncclComm_t
  int world_size_ = 0;
  int rank_ = 0;
  int device_ = 0;
};

}  // namespace veil::kernels::cuda
