// Cost contract: the communicator's stats deltas equal the documented formulas
// (crypto/protocols/*.h) for mul, matmul, ReLU, A2B, reveal, for 2 and 3 parties.

#include <catch2/catch.hpp>

#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"
#include "crypto/protocols/nonlinear.h"
#include "tests/harness/simulate.h"

using veil::core::Tensor;
using veil::crypto::AShare;
using veil::crypto::Party;
namespace crypto = veil::crypto;
namespace vt = veil::testing;

namespace {
// Runs `fn` on shared inputs and returns party 1's online stats delta (rounds, bytes sent).
template <class F>
std::pair<int64_t, int64_t> cost(int n,
                                 const veil::core::Shape& xs,
                                 const veil::core::Shape& ys,
                                 F fn) {
  auto out = crypto::launch<std::pair<int64_t, int64_t>>(vt::test_options(n), [&](Party& p) {
    const Tensor x = vt::uniform(xs, -2, 2, 1);
    const Tensor y = vt::uniform(ys, -2, 2, 2);
    const AShare a = crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, xs);
    const AShare b = crypto::share(p, p.rank() == 0 ? y : Tensor(), 0, ys);
    const auto before = p.comm().stats();
    fn(p, a, b);
    const auto d = p.comm().stats() - before;
    return std::make_pair(d.total.rounds, d.total.bytes_sent);
  });
  return out[1];
}
}  // namespace

TEST_CASE("cost of mul, matmul, reveal, a2b, ltz and relu matches the formulas", "[crypto][cost]") {
  for (int n : {2, 3}) {
    const int64_t peers = n - 1;
    const int64_t trunc_rounds = n == 2 ? 0 : 1;
    const int64_t trunc_bytes_per_elem = n == 2 ? 0 : 8;  // party 1 sends to party 0
    // mul of m elements: 1 round, 8(N-1)(m + m) bytes, + truncation
    const int64_t m = 37;
    auto c =
        cost(n, {m}, {m}, [](Party& p, const AShare& a, const AShare& b) { crypto::mul(p, a, b); });
    CHECK(c.first == 1 + trunc_rounds);
    CHECK(c.second == 8 * peers * 2 * m + trunc_bytes_per_elem * m);
    // matmul [5, 7] @ [7, 3]: 8(N-1)(35 + 21) bytes
    c = cost(n, {5, 7}, {7, 3},
             [](Party& p, const AShare& a, const AShare& b) { crypto::matmul(p, a, b); });
    CHECK(c.first == 1 + trunc_rounds);
    CHECK(c.second == 8 * peers * (35 + 21) + trunc_bytes_per_elem * 15);
    // reveal: 1 round, 8(N-1) per element
    c = cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::reveal(p, a); });
    CHECK(c.first == 1);
    CHECK(c.second == 8 * peers * m);
    // a2b: 7 + (N-2) rounds; (N-1)(192 + 16(N-2)) bytes per element
    c = cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::a2b(p, a); });
    CHECK(c.first == 7 + (n - 2));
    CHECK(c.second == peers * (192 + 16 * (n - 2)) * m);
    // ltz: carry-save layers (full words) + 7 packed AND layers; an AND layer with k useful bits
    // per element opens 2 * ceil(k m / 64) words per operand pair (e and f)
    auto words = [](int64_t bits) {
      return (bits + 63) / 64;
    };
    int64_t ltz_bytes = 16 * peers * (n - 2) * m;
    ltz_bytes += 8 * peers * 2 * words(63 * m);
    for (int64_t k : {32, 16, 8, 4, 2}) {
      ltz_bytes += 8 * peers * 2 * words(2 * k * m);
    }
    ltz_bytes += 8 * peers * 2 * words(m);
    c = cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::ltz(p, a); });
    CHECK(c.first == 7 + (n - 2));
    CHECK(c.second == ltz_bytes);
    // relu: ltz + b2a (1 round, packed bits) + mul by a bit (1 round, 16(N-1), no truncation)
    c = cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::relu(p, a); });
    CHECK(c.first == 7 + (n - 2) + 2);
    CHECK(c.second == ltz_bytes + 8 * peers * words(m) + 16 * peers * m);
  }
}
