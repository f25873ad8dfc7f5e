// Failure behaviour of launch(): a party that throws mid-protocol makes every party fail with a
// clear error within the timeout; nothing hangs (each case runs under a watchdog).

#include <chrono>
#include <future>

#include <catch2/catch.hpp>

#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"
#include "tests/harness/simulate.h"

using veil::core::Tensor;
using veil::crypto::AShare;
using veil::crypto::Party;
namespace crypto = veil::crypto;
namespace vt = veil::testing;

namespace {

struct Outcome {
  bool threw = false;
  std::string what;
  double seconds = 0;
};

// Runs `fn` under launch() in a separate thread and waits at most `watchdog`.
Outcome run_with_watchdog(const crypto::LaunchOptions& o,
                          std::function<void(Party&)> fn,
                          std::chrono::seconds watchdog) {
  auto fut = std::async(std::launch::async, [o, fn] {
    Outcome out;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      crypto::launch(o, fn);
    } catch (const std::exception& e) {
      out.threw = true;
      out.what = e.what();
    }
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
  });
  if (fut.wait_for(watchdog) != std::future_status::ready) {
    FAIL("watchdog: launch() did not return within the deadline (a hang)");
  }
  return fut.get();
}

}  // namespace

TEST_CASE("a party that throws mid-protocol fails the whole session quickly", "[crypto][failure]") {
  for (int n : {2, 3}) {
    for (int failing : {0, n - 1}) {
      auto o = vt::test_options(n);
      o.party.timeout = std::chrono::milliseconds(2000);
      std::vector<std::string> errors(static_cast<std::size_t>(n));
      // GIVEN a session where one party throws between two ReLUs while the others go on
      const Outcome out = run_with_watchdog(
          o,
          [&](Party& p) {
            try {
              const Tensor x = vt::uniform({64}, -1, 1, 3);
              AShare xs = crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, x.shape());
              xs = crypto::relu(p, xs).out;
              if (p.rank() == failing) {
                throw veil::ValueError("[test] injected failure in party code");
              }
              xs = crypto::relu(p, xs).out;
              crypto::reveal(p, xs);
            } catch (const std::exception& e) {
              errors[static_cast<std::size_t>(p.rank())] = e.what();
              throw;
            }
          },
          std::chrono::seconds(20));
      // THEN launch rethrows the original failure, every other party saw a CommError naming the
      // failing party, and it all happened well within the receive timeout
      REQUIRE(out.threw);
      CHECK_THAT(out.what, Catch::Contains("injected failure"));
      CHECK(out.seconds < 2.0);
      for (int r = 0; r < n; ++r) {
        if (r != failing) {
          CHECK_THAT(errors[static_cast<std::size_t>(r)],
                     Catch::Contains(fmt::format("party {} aborted", failing)));
        }
      }
    }
  }
}

TEST_CASE("a party that stops communicating makes the others time out", "[crypto][failure]") {
  auto o = vt::test_options(2);
  o.party.timeout = std::chrono::milliseconds(300);
  // GIVEN party 1 skipping a reveal (it returns early) while party 0 waits for its share
  const Outcome out = run_with_watchdog(
      o,
      [](Party& p) {
        const Tensor x = vt::uniform({8}, -1, 1, 4);
        const AShare xs = crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, x.shape());
        if (p.rank() == 1) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1500));
          return;
        }
        crypto::reveal(p, xs);
      },
      std::chrono::seconds(20));
  // THEN party 0 raises a receive timeout naming the peer and the tag
  REQUIRE(out.threw);
  CHECK_THAT(out.what, Catch::Contains("no data from party 1") && Catch::Contains("reveal#"));
  CHECK(out.seconds < 5.0);
}
