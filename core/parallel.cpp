#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"

namespace veil::core {
namespace {

int default_threads() {
  return hardware_threads();
}

thread_local int tl_num_threads = 0;

// Process-wide worker pool (the one shared resource of core; like libtorch's intra-op pool).
// Workers pull tasks from a queue; tasks never block on other tasks.
class WorkerPool {
 public:
  static WorkerPool& instance() {
    static WorkerPool pool(std::max(default_threads(), 2) * 2);
    return pool;
  }
  void submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      t.join();
    }
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

 private:
  explicit WorkerPool(int n) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this] { run(); });
    }
  }
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
        if (stop_ && tasks_.empty()) {
          return;
        }
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

}  // namespace

int num_threads() {
  return tl_num_threads > 0 ? tl_num_threads : default_threads();
}

void set_num_threads(int n) {
  VEIL_CHECK(n >= 1, "[set_num_threads] expected n >= 1, got {}", n);
  tl_num_threads = n;
}

int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

AtLeastThreads::AtLeastThreads(int n) : before_(tl_num_threads) {
  if (n > num_threads()) {
    set_num_threads(n);
  }
}

AtLeastThreads::~AtLeastThreads() {
  tl_num_threads = before_;
}

void parallel_for(int64_t begin,
                  int64_t end,
                  int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (end <= begin) {
    return;
  }
  grain = std::max<int64_t>(grain, 1);
  const int64_t n = end - begin;
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int64_t threads = std::min<int64_t>(num_threads(), max_chunks);
  if (threads <= 1) {
    fn(begin, end);
    return;
  }
  // Split into `threads` near-equal chunks; the caller takes chunk 0 and any unclaimed chunks.
  struct Shared {
    std::atomic<int64_t> next{0};
    std::mutex mu;
    std::condition_variable cv;
    int64_t done = 0;
    std::exception_ptr error;
  };
  auto shared = std::make_shared<Shared>();
  const int64_t chunks = threads;
  auto work = [shared, chunks, begin, n, &fn] {
    for (;;) {
      const int64_t c = shared->next.fetch_add(1);
      if (c >= chunks) {
        return;
      }
      const int64_t lo = begin + n * c / chunks;
      const int64_t hi = begin + n * (c + 1) / chunks;
      std::exception_ptr err;
      try {
        fn(lo, hi);
      } catch (...) {
        err = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(shared->mu);
      if (err && !shared->error) {
        shared->error = err;
      }
      if (++shared->done == chunks) {
        shared->cv.notify_all();
      }
    }
  };
  auto& pool = WorkerPool::instance();
  for (int64_t i = 1; i < threads; ++i) {
    pool.submit(work);
  }
  work();
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->cv.wait(lock, [&] { return shared->done == chunks; });
  if (shared->error) {
    std::rethrow_exception(shared->error);
  }
}

}  // namespace veil::core
