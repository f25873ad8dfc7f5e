#pragma once
// Library handles (cuBLAS, cuBLASLt, cuDNN) per (thread, device), shared by the backend's
// translation units. A thread's handles go back to a process-wide pool when it exits and are
// reused by later threads (parties are threads; tests start many); they are never destroyed
// (destroying library handles during process exit races the runtime's own teardown).

#include <map>
#include <mutex>
#include <vector>

namespace veil::kernels::cuda::detail {

template <class H>
class HandlePool {
 public:
  /// A pooled handle for `device`, or nullptr when none is free.
  H take(int device) {
    const std::lock_guard<std::mutex> lock(mu_);
    auto& v = free_[device];
    if (v.empty()) {
      return nullptr;
    }
    H h = v.back();
    v.pop_back();
    return h;
  }
  void give(int device, H h) {
    const std::lock_guard<std::mutex> lock(mu_);
    free_[device].push_back(h);
  }

 private:
  std::mutex mu_;
  std::map<int, std::vector<H>> free_;
};

template <class H>
HandlePool<H>& handle_pool() {
  static auto* pool = new HandlePool<H>();  // leaked on purpose (see above)
  return *pool;
}

/// A thread's handles by device (thread_local), returned to the pool when the thread exits.
template <class H>
struct ThreadHandles {
  std::map<int, H> by_device;
  ~ThreadHandles() {
    for (auto& [dev, h] : by_device) {
      handle_pool<H>().give(dev, h);
    }
  }
};

}  // namespace veil::kernels::cuda::detail
