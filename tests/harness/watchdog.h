#pragma once
// Watchdog for tests that run endpoints on threads: wait for every result until `limit`; on
// expiry call `abort_all` (which must unblock every endpoint, e.g. by aborting communicators),
// give the threads `unwind` to finish, and fail the test instead of hanging.

#include <chrono>
#include <functional>
#include <future>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace veil::testing {

template <class R>
void join_with_watchdog(std::vector<std::future<R>>& results,
                        std::vector<std::thread>& threads,
                        std::chrono::milliseconds limit,
                        const std::function<void()>& abort_all,
                        std::chrono::milliseconds unwind = std::chrono::milliseconds(2000)) {
  using Clock = std::chrono::steady_clock;
  auto all_ready = [&](Clock::time_point deadline) {
    bool ready = true;
    for (auto& f : results) {
      ready = f.wait_until(deadline) == std::future_status::ready && ready;
    }
    return ready;
  };
  if (!all_ready(Clock::now() + limit)) {
    abort_all();
    const bool unwound = all_ready(Clock::now() + unwind);
    for (auto& t : threads) {
      if (unwound) {
        t.join();
      } else {
        t.detach();  // stuck outside any recv; the threads own what they use
      }
    }
    FAIL("watchdog: endpoints still running after " << limit.count() << " ms"
                                                    << (unwound ? "" : " and after abort"));
  }
  for (auto& t : threads) {
    t.join();
  }
}

/// The value of every future, in order (rethrows an endpoint's exception on this thread).
template <class R>
std::vector<R> get_all(std::vector<std::future<R>>& results) {
  std::vector<R> out;
  for (auto& f : results) {
    out.push_back(f.get());
  }
  return out;
}

}  // namespace veil::testing
