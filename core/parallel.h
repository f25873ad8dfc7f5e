#pragma once
// Intra-op parallelism: parallel_for over a range, executed by a shared worker pool plus the
// calling thread. Several parties running as threads in one process may call it concurrently:
// the caller always works on its own range too, so progress never depends on a free worker.

#include <cstdint>
#include <functional>

namespace veil::core {

/// Number of threads (including the caller) that parallel_for uses on this thread. Defaults to
/// the number of hardware threads. Thread-local, so each party thread can set its own.
int num_threads();
/// Sets num_threads() for the calling thread; n >= 1 (throws ValueError otherwise).
void set_num_threads(int n);
/// The number of hardware threads (at least 1).
int hardware_threads();

/// Raises num_threads() of the calling thread to at least n for its lifetime, then restores it:
/// for work that runs while the other parties of the process wait for its result.
class AtLeastThreads {
 public:
  explicit AtLeastThreads(int n);
  ~AtLeastThreads();
  AtLeastThreads(const AtLeastThreads&) = delete;
  AtLeastThreads& operator=(const AtLeastThreads&) = delete;

 private:
  int before_;  // the thread's setting before (0: the default)
};

/// Calls fn(lo, hi) on disjoint chunks covering [begin, end), each at least `grain` long (except
/// possibly the last), on up to num_threads() threads. Runs inline when the range is small.
/// Rethrows the first exception a chunk threw, after every chunk has finished.
void parallel_for(int64_t begin,
                  int64_t end,
                  int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace veil::core
