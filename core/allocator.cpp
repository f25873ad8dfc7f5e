#include "core/allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>

namespace veil::core {
namespace {

std::size_t size_class(std::size_t bytes) {
  std::size_t pow2 = 64;
  while (pow2 < bytes) {
    pow2 <<= 1;
  }
  const std::size_t step = std::max<std::size_t>(64, pow2 / 16);  // classes at 1/8 of pow2/2..pow2
  return (bytes + step - 1) / step * step;
}

std::size_t limit_from_env() {
  const char* v = std::getenv("VEIL_HOST_CACHE_MB");
  if (v == nullptr || *v == '\0') {
    return std::size_t{4} << 30;
  }
  try {
    return static_cast<std::size_t>(std::stoull(v)) << 20;
  } catch (...) {
    return std::size_t{4} << 30;
  }
}

struct Pool {
  std::mutex mu;
  std::multimap<std::size_t, void*> free_blocks;  // size class -> block
  std::size_t cached = 0;
  std::size_t limit = limit_from_env();
  int64_t hits = 0;
  int64_t misses = 0;

  ~Pool() {
    for (auto& [size, ptr] : free_blocks) {
      std::free(ptr);  // NOLINT(cppcoreguidelines-no-malloc)
    }
  }
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may be freed during static destruction
  return *p;
}

void* system_alloc(std::size_t bytes) {
  void* p = std::aligned_alloc(64, std::max<std::size_t>(64, (bytes + 63) / 64 * 64));
  if (p == nullptr) {
    throw std::bad_alloc();
  }
  return p;
}

}  // namespace

void* host_alloc(std::size_t bytes) {
  if (bytes < kCacheMinBytes) {
    return system_alloc(bytes);
  }
  const std::size_t cls = size_class(bytes);
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    auto it = p.free_blocks.find(cls);
    if (it != p.free_blocks.end()) {
      void* ptr = it->second;
      p.free_blocks.erase(it);
      p.cached -= cls;
      ++p.hits;
      return ptr;
    }
    ++p.misses;
  }
  return system_alloc(cls);
}

void host_free(void* ptr, std::size_t bytes) noexcept {
  if (ptr == nullptr) {
    return;
  }
  if (bytes < kCacheMinBytes) {
    std::free(ptr);  // NOLINT(cppcoreguidelines-no-malloc)
    return;
  }
  const std::size_t cls = size_class(bytes);
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.cached + cls <= p.limit) {
      try {
        p.free_blocks.emplace(cls, ptr);
        p.cached += cls;
        return;
      } catch (...) {  // fall through: free it
      }
    }
  }
  std::free(ptr);  // NOLINT(cppcoreguidelines-no-malloc)
}

HostCacheStats host_cache_stats() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  return {p.hits, p.misses, static_cast<int64_t>(p.cached)};
}

void host_cache_release() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  for (auto& [size, ptr] : p.free_blocks) {
    std::free(ptr);  // NOLINT(cppcoreguidelines-no-malloc)
  }
  p.free_blocks.clear();
  p.cached = 0;
}

std::size_t host_cache_limit() {
  return pool().limit;
}

}  // namespace veil::core
