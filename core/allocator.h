#pragma once
// Host memory for tensor storage: a caching allocator. Secret-shared training allocates and frees
// the same large buffers (shares, masks, opened values) at every step; returning them to the OS
// and faulting fresh zeroed pages back in cost more than the arithmetic on them (the kernel's
// page-fault and page-clearing time was ~25% of a 1M-element Beaver multiplication). Blocks of at
// least kCacheMinBytes are therefore kept in a free pool after release and handed out again for
// requests of the same size class; smaller blocks go straight to aligned_alloc / free.
//
// Size classes: a request is rounded up to a multiple of 1/8 of its power of two (at most 12.5%
// waste), so repeated shapes hit the same class. The pool holds at most host_cache_limit() bytes
// (default 4 GiB, VEIL_HOST_CACHE_MB overrides; 0 disables caching); beyond it released blocks
// are freed. Thread-safe (one mutex; large blocks only, so contention is negligible).
// Memory handed out is uninitialized and may hold a previous tensor's contents of this process.

#include <cstddef>
#include <cstdint>
#include <new>

namespace veil::core {

/// Blocks smaller than this bypass the pool.
inline constexpr std::size_t kCacheMinBytes = std::size_t{1} << 16;

/// 64-byte aligned block of at least `bytes` bytes (never nullptr; throws std::bad_alloc).
void* host_alloc(std::size_t bytes);
/// Returns a block from host_alloc(bytes) (the same `bytes`).
void host_free(void* ptr, std::size_t bytes) noexcept;

/// Counters of the pool, for benchmarks and tests.
struct HostCacheStats {
  int64_t hits = 0;          ///< large requests served from the pool
  int64_t misses = 0;        ///< large requests that went to the system allocator
  int64_t cached_bytes = 0;  ///< bytes currently held in the pool
};
HostCacheStats host_cache_stats();
/// Frees every pooled block (e.g. before measuring peak memory).
void host_cache_release();
/// The pool's byte limit.
std::size_t host_cache_limit();

/// A standard allocator over host_alloc / host_free, so containers of large buffers (message
/// payloads: comm::Bytes) reuse pooled blocks instead of faulting in fresh pages every time.
template <class T>
struct HostPoolAllocator {
  using value_type = T;
  HostPoolAllocator() = default;
  template <class U>
  explicit HostPoolAllocator(const HostPoolAllocator<U>& /*other*/) noexcept {}
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    return static_cast<T*>(bytes < kCacheMinBytes ? ::operator new(bytes) : host_alloc(bytes));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kCacheMinBytes) {
      ::operator delete(p);
    } else {
      host_free(p, bytes);
    }
  }
  template <class U>
  bool operator==(const HostPoolAllocator<U>& /*other*/) const noexcept {
    return true;
  }
};

}  // namespace veil::core
