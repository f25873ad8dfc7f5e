#pragma once
// Shared plumbing of the CUDA backend's translation units (include from .cu files only: it pulls in
// cuda_runtime.h). Error checking, the per-thread current device, per-device one-time setup and
// launch sizing; defined in kernels/cuda/device_query.cu.

#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda_runtime.h>

#include "kernels/cuda_backend.h"

namespace veil::kernels::cuda::detail {

/// Throws CudaError "[cuda::<op>] <cudaGetErrorString(err)> (<what>)" unless err is cudaSuccess.
/// Clears the thread's last-error state first so that a later check does not report it again.
void check(cudaError_t err, const char* op, const std::string& what = {});

/// Checks the launch of the kernel just queued on this thread (cudaGetLastError).
inline void check_launch(const char* op, const std::string& what) {
  check(cudaGetLastError(), op, what);
}

/// Makes `device` the calling thread's current device (cudaSetDevice only when it differs) and runs
/// the device's one-time setup: the default memory pool keeps freed blocks cached (release
/// threshold UINT64_MAX) and the SM count is recorded. Throws CudaError for an invalid device or
/// a missing driver.
void use_device(int device, const char* op);

/// Number of streaming multiprocessors of `device` (use_device must have run for it).
int sm_count(int device);

/// Threads per block of the elementwise kernels.
inline constexpr int kBlock = 256;

/// Blocks for a grid-stride loop over `work` items: enough to fill the device (32 blocks of kBlock
/// threads per SM at most), never more than the work needs, at least 1.
inline unsigned grid_for(int64_t work, int device) {
  const int64_t need = (work + kBlock - 1) / kBlock;
  const int64_t cap = static_cast<int64_t>(sm_count(device)) * 32;
  const int64_t g = need < cap ? need : cap;
  return static_cast<unsigned>(g < 1 ? 1 : g);
}

/// Scratch from the stream-ordered pool (device_alloc), returned at scope exit: after the work
/// queued on the thread's stream, so kernels and library calls may still be using it.
class Scratch {
 public:
  Scratch(std::size_t bytes, int device)
      : device_(device), ptr_(bytes > 0 ? device_alloc(bytes, device) : nullptr) {}
  ~Scratch() { device_free(ptr_, device_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  char* get() const { return static_cast<char*>(ptr_); }

 private:
  int device_;
  void* ptr_;
};

/// "n=<n>" for error messages.
inline std::string n_str(int64_t n) {
  return "n=" + std::to_string(n);
}

}  // namespace veil::kernels::cuda::detail
