// Devices, device memory and copies of the CUDA backend (kernels/cuda_backend.h), compiled with
// nvcc when VEIL_WITH_CUDA is on. Runtime API only (statically linked cudart, never the driver
// library at link time), so binaries start on machines without a GPU or driver: there,
// device_count() is 0 and everything else throws CudaError.
//
// Memory is CUDA's stream-ordered allocator on the calling thread's per-thread stream, with the
// default pool's release threshold raised to UINT64_MAX once per device: freed blocks stay in the
// pool and the next cudaMallocAsync of a fitting size reuses them without a driver call.
#include <cstdint>
#include <mutex>
#include <string>

#include <cuda_runtime.h>

#include "kernels/cuda/runtime.h"
#include "kernels/cuda_backend.h"
#include "kernels/error.h"

namespace veil::kernels::cuda {
namespace detail {
namespace {

constexpr int kMaxDevices = 64;

struct DeviceState {
  std::once_flag once;
  int sms = 1;
};

DeviceState& state(int device) {
  static DeviceState states[kMaxDevices];
  return states[device];
}

std::string bytes_str(std::size_t bytes, int device) {
  return "bytes=" + std::to_string(bytes) + ", device " + std::to_string(device);
}

}  // namespace

void check(cudaError_t err, const char* op, const std::string& what) {
  if (err == cudaSuccess) {
    return;
  }
  (void)cudaGetLastError();  // reset the thread's (non-sticky) error state
  std::string msg = std::string("[cuda::") + op + "] " + cudaGetErrorString(err);
  if (!what.empty()) {
    msg += " (" + what + ")";
  }
  throw CudaError(msg);
}

void use_device(int device, const char* op) {
  if (device < 0 || device >= kMaxDevices) {
    throw CudaError(std::string("[cuda::") + op + "] device index " + std::to_string(device) +
                    " out of range");
  }
  int current = -1;
  const cudaError_t err = cudaGetDevice(&current);
  check(err, op, "device " + std::to_string(device));
  if (current != device) {
    check(cudaSetDevice(device), op, "device " + std::to_string(device));
  }
  DeviceState& s = state(device);
  std::call_once(s.once, [&] {
    cudaMemPool_t pool = nullptr;
    check(cudaDeviceGetDefaultMemPool(&pool, device), op, "default memory pool");
    uint64_t threshold = UINT64_MAX;
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold), op,
          "pool release threshold");
    int sms = 0;
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), op, "SM count");
    s.sms = sms > 0 ? sms : 1;
  });
}

int sm_count(int device) {
  return state(device).sms;
}

}  // namespace detail

using detail::check;
using detail::use_device;

// ---- device -------------------------------------------------------------------------------------

bool compiled() {
  return true;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

DeviceInfo device_info(int device) {
  const int count = device_count();
  if (device < 0 || device >= count) {
    throw CudaError("[cuda::device_info] device " + std::to_string(device) +
                    " out of range: " + std::to_string(count) + " CUDA device(s) visible");
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "device_info", "device " + std::to_string(device));
  DeviceInfo info;
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.sm_count = prop.multiProcessorCount;
  info.total_bytes = prop.totalGlobalMem;
  check(cudaDriverGetVersion(&info.driver_version), "device_info", "driver version");
  check(cudaRuntimeGetVersion(&info.runtime_version), "device_info", "runtime version");
  return info;
}

void synchronize(int device) {
  use_device(device, "synchronize");
  check(cudaStreamSynchronize(cudaStreamPerThread), "synchronize",
        "device " + std::to_string(device));
}

// ---- memory -------------------------------------------------------------------------------------

void* device_alloc(std::size_t bytes, int device) {
  if (bytes == 0) {
    return nullptr;
  }
  use_device(device, "device_alloc");
  void* p = nullptr;
  check(cudaMallocAsync(&p, bytes, cudaStreamPerThread), "device_alloc",
        detail::bytes_str(bytes, device));
  return p;
}

void device_free(void* ptr, int device) noexcept {
  if (ptr == nullptr) {
    return;
  }
  try {
    use_device(device, "device_free");
  } catch (...) {
    return;  // no device to return it to (the context is gone)
  }
  if (cudaFreeAsync(ptr, cudaStreamPerThread) != cudaSuccess) {
    (void)cudaGetLastError();
  }
}

void* pinned_alloc(std::size_t bytes) {
  if (bytes == 0) {
    return nullptr;
  }
  void* p = nullptr;
  check(cudaMallocHost(&p, bytes), "pinned_alloc", "bytes=" + std::to_string(bytes));
  return p;
}

void pinned_free(void* ptr) noexcept {
  if (ptr != nullptr && cudaFreeHost(ptr) != cudaSuccess) {
    (void)cudaGetLastError();
  }
}

void copy_to_device(void* dst, const void* src, std::size_t bytes, int device) {
  if (bytes == 0) {
    return;
  }
  use_device(device, "copy_to_device");
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cudaStreamPerThread),
        "copy_to_device", detail::bytes_str(bytes, device));
  // The source may be pinned (then the copy is truly asynchronous): wait, so that the caller may
  // reuse or free it on return.
  check(cudaStreamSynchronize(cudaStreamPerThread), "copy_to_device",
        detail::bytes_str(bytes, device));
}

void copy_to_host(void* dst, const void* src, std::size_t bytes, int device) {
  if (bytes == 0) {
    return;
  }
  use_device(device, "copy_to_host");
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cudaStreamPerThread),
        "copy_to_host", detail::bytes_str(bytes, device));
  check(cudaStreamSynchronize(cudaStreamPerThread), "copy_to_host",
        detail::bytes_str(bytes, device));
}

void copy_device_to_device(void* dst, const void* src, std::size_t bytes, int device) {
  if (bytes == 0) {
    return;
  }
  use_device(device, "copy_device_to_device");
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cudaStreamPerThread),
        "copy_device_to_device", detail::bytes_str(bytes, device));
}

void zero(void* dst, std::size_t bytes, int device) {
  if (bytes == 0) {
    return;
  }
  use_device(device, "zero");
  check(cudaMemsetAsync(dst, 0, bytes, cudaStreamPerThread), "zero",
        detail::bytes_str(bytes, device));
}

MemoryStats memory_stats(int device) {
  use_device(device, "memory_stats");
  cudaMemPool_t pool = nullptr;
  check(cudaDeviceGetDefaultMemPool(&pool, device), "memory_stats",
        "device " + std::to_string(device));
  uint64_t used = 0;
  uint64_t reserved = 0;
  check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used), "memory_stats",
        "used");
  check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved), "memory_stats",
        "reserved");
  MemoryStats s;
  s.used_bytes = static_cast<std::size_t>(used);
  s.reserved_bytes = static_cast<std::size_t>(reserved);
  return s;
}

}  // namespace veil::kernels::cuda
