// Cost contract: the communicator's stats deltas equal the documented formulas
// (crypto/protocols/*.h) for mul, matmul, reveal, A2B, the masked-open comparisons (ltz, ltz_mul,
// eqz), ReLU, lt/eq, max over 10 classes and sigmoid, for 2 and 3 parties.

#include <catch2/catch.hpp>

#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"
#include "crypto/protocols/nonlinear.h"
#include "crypto/providers/bit_circuit.h"
#include "tests/harness/simulate.h"

using veil::core::Tensor;
using veil::crypto::AShare;
using veil::crypto::Party;
namespace crypto = veil::crypto;
namespace vt = veil::testing;

namespace {

struct Cost {
  int64_t rounds = 0;
  int64_t bytes = 0;         ///< sent by party 1 to the other parties
  int64_t dealer_bytes = 0;  ///< received by party 0 from the dealer
};

// Runs `fn` on shared inputs and returns party 1's online stats delta and party 0's dealer
// traffic.
template <class F>
Cost cost(int n, const veil::core::Shape& xs, const veil::core::Shape& ys, F fn) {
  auto out = crypto::launch<Cost>(vt::test_options(n), [&](Party& p) {
    const Tensor x = vt::uniform(xs, -2, 2, 1);
    const Tensor y = vt::uniform(ys, -2, 2, 2);
    const AShare a = crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, xs);
    const AShare b = crypto::share(p, p.rank() == 0 ? y : Tensor(), 0, ys);
    const auto before = p.comm().stats();
    fn(p, a, b);
    const auto d = p.comm().stats() - before;
    return Cost{d.total.rounds, d.total.bytes_sent, d.dealer.bytes_received};
  });
  return {out[1].rounds, out[1].bytes, out[0].dealer_bytes};
}

int64_t words(int64_t bits) {
  return (bits + 63) / 64;
}

// Documented bytes sent per party (binary.h), N parties, n elements.
// (opened bits go as bit planes: one word per 64 elements per opened bit)
int64_t ltz_bytes(int n, int64_t m) {
  return 8 * (n - 1) * (m + (31 + 7) * words(m));
}
int64_t eqz_bytes(int n, int64_t m) {
  return 8 * (n - 1) * (m + (16 + 4) * words(m));
}
int64_t inject_bytes(int n, int64_t m, int64_t extras) {
  return 8 * (n - 1) * (words(m) + extras * m);
}

}  // namespace

TEST_CASE("cost of mul, matmul, reveal and a2b matches the formulas", "[crypto][cost]") {
  for (int n : {2, 3}) {
    const int64_t peers = n - 1;
    const int64_t trunc_rounds = n == 2 ? 0 : 1;
    const int64_t trunc_bytes_per_elem = n == 2 ? 0 : 8;  // party 1 sends to party 0
    // mul of m elements: 1 round, 8(N-1)(m + m) bytes, + truncation
    const int64_t m = 37;
    auto c =
        cost(n, {m}, {m}, [](Party& p, const AShare& a, const AShare& b) { crypto::mul(p, a, b); });
    CHECK(c.rounds == 1 + trunc_rounds);
    CHECK(c.bytes == 8 * peers * 2 * m + trunc_bytes_per_elem * m);
    // matmul [5, 7] @ [7, 3]: 8(N-1)(35 + 21) bytes
    c = cost(n, {5, 7}, {7, 3},
             [](Party& p, const AShare& a, const AShare& b) { crypto::matmul(p, a, b); });
    CHECK(c.rounds == 1 + trunc_rounds);
    CHECK(c.bytes == 8 * peers * (35 + 21) + trunc_bytes_per_elem * 15);
    // reveal: 1 round, 8(N-1) per element
    c = cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::reveal(p, a); });
    CHECK(c.rounds == 1);
    CHECK(c.bytes == 8 * peers * m);
    // a2b: 7 + (N-2) rounds; (N-1)(192 + 16(N-2)) bytes per element
    c = cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::a2b(p, a); });
    CHECK(c.rounds == 7 + (n - 2));
    CHECK(c.bytes == peers * (192 + 16 * (n - 2)) * m);
  }
}

TEST_CASE("cost of the masked-open comparisons, relu, lt, eq matches the formulas",
          "[crypto][cost][binary]") {
  for (int n : {2, 3}) {
    INFO("parties " << n);
    for (int64_t m : {37, 300}) {
      INFO("elements " << m);
      // ltz: 3 rounds for any N
      auto c =
          cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::ltz(p, a); });
      CHECK(c.rounds == 3);
      CHECK(c.bytes == ltz_bytes(n, m));
      // dealer: party 0's corrected part, r_A and 265 product planes per 64 elements
      const crypto::CircuitLayout lay({}, m);
      CHECK(lay.corrected_words == m + 265 * words(m));
      CHECK(c.dealer_bytes >= 8 * lay.corrected_words);
      CHECK(c.dealer_bytes <= 8 * lay.corrected_words + 512);  // + the request/ack framing
      // ltz_mul with x and one extra multiplicand: + 1 round, the bit and the masked extra
      c = cost(n, {m}, {m}, [](Party& p, const AShare& a, const AShare& b) {
        crypto::ltz_mul(p, a, true, {b});
      });
      CHECK(c.rounds == 4);
      CHECK(c.bytes == ltz_bytes(n, m) + inject_bytes(n, m, 1));
      // relu = ltz_mul(x, with_x): 4 rounds, no Beaver mul, no truncation
      c = cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::relu(p, a); });
      CHECK(c.rounds == 4);
      CHECK(c.bytes == ltz_bytes(n, m) + inject_bytes(n, m, 0));
      if (n == 2) {
        // the target: ReLU <= 7 rounds and <= 64 bytes per element for 2 parties (bit planes
        // are padded to 64 elements: ~12.9 bytes per element for large m)
        const double per_elem = static_cast<double>(c.bytes) / static_cast<double>(m);
        CHECK(per_elem <= 64.0);
        CHECK((m < 256 || per_elem <= 13.5));
      }
      // lt / ge: ltz_arith of the difference, 4 rounds
      c = cost(n, {m}, {m},
               [](Party& p, const AShare& a, const AShare& b) { crypto::ge(p, a, b); });
      CHECK(c.rounds == 4);
      CHECK(c.bytes == ltz_bytes(n, m) + inject_bytes(n, m, 0));
      // eqz and eq
      c = cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::eqz(p, a); });
      CHECK(c.rounds == 3);
      CHECK(c.bytes == eqz_bytes(n, m));
      c = cost(n, {m}, {m},
               [](Party& p, const AShare& a, const AShare& b) { crypto::eq(p, a, b); });
      CHECK(c.rounds == 4);
      CHECK(c.bytes == eqz_bytes(n, m) + inject_bytes(n, m, 0));
      // abs and sign: one ltz_mul / ltz_arith
      c = cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::abs(p, a); });
      CHECK(c.rounds == 4);
      CHECK(c.bytes == ltz_bytes(n, m) + inject_bytes(n, m, 0));
    }
  }
}

TEST_CASE("cost of a square: half the bytes of a product", "[crypto][cost]") {
  for (int n : {2, 3}) {
    INFO("parties " << n);
    const int64_t m = 301;
    const Cost sq =
        cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::square(p, a); });
    const Cost mul =
        cost(n, {m}, {m}, [](Party& p, const AShare& a, const AShare& b) { crypto::mul(p, a, b); });
    // one round (N > 2: + the truncation round, 8 bytes per element from party 1 to party 0)
    CHECK(sq.rounds == (n == 2 ? 1 : 2));
    CHECK(sq.bytes == 8 * (n - 1) * m + (n > 2 ? 8 * m : 0));
    CHECK(mul.bytes == 16 * (n - 1) * m + (n > 2 ? 8 * m : 0));
    // the dealer sends party 0 its c correction (and, N > 2, the truncation pair's r_d): m words
    // each, plus the request framing
    const int64_t corrections = n > 2 ? 2 : 1;
    CHECK(sq.dealer_bytes >= 8 * m * corrections);
    CHECK(sq.dealer_bytes <= 8 * m * corrections + 1024);
  }
}

TEST_CASE("cost of max over 10 classes, softmax and sigmoid", "[crypto][cost][binary]") {
  for (int n : {2, 3}) {
    INFO("parties " << n);
    const int64_t rows = 12;
    const int64_t classes = 10;
    // max over 10: one all-pairs level: 45 comparisons per row (3 rounds), an AND of 9 bits per
    // candidate (2 levels: 9 then 3 opened bits), the injection with the candidate's value
    // (indices are public at the first level): 6 rounds
    auto c = cost(n, {rows, classes}, {1},
                  [](Party& p, const AShare& a, const AShare&) { crypto::max_lastdim(p, a); });
    const int64_t cand = rows * classes;
    CHECK(c.rounds == 6);
    CHECK(c.bytes ==
          ltz_bytes(n, rows * 45) + 8 * (n - 1) * (9 + 3) * words(cand) + inject_bytes(n, cand, 1));
    // max over 2 (pair level: ltz_mul with x) and over 40 (groups of 4 to 10, then 10 to 1)
    c = cost(n, {rows, 2}, {1},
             [](Party& p, const AShare& a, const AShare&) { crypto::max_lastdim(p, a); });
    CHECK(c.rounds == 4);
    CHECK(c.bytes == ltz_bytes(n, rows) + inject_bytes(n, rows, 0));
    c = cost(n, {rows, 40}, {1},
             [](Party& p, const AShare& a, const AShare&) { crypto::max_lastdim(p, a); });
    CHECK(c.rounds == 5 + 6);
    // softmax over 10 classes stays within the 60-round budget
    c = cost(n, {rows, classes}, {1},
             [](Party& p, const AShare& a, const AShare&) { crypto::softmax(p, a); });
    CHECK(c.rounds <= 60);
    if (n == 2) {
      // sigmoid and tanh: clamped |x| 8 (two comparisons in sequence) + the powers t^2 | t^3,
      // t^4 of t = min(|x|, 12) / 6 - 1 (2 rounds) + the two products with t^4 (2) + n g (1)
      const int64_t m = 37;
      c = cost(n, {m}, {1},
               [](Party& p, const AShare& a, const AShare&) { crypto::sigmoid(p, a); });
      CHECK(c.rounds == 13);
      // 2 comparisons, then t^2 and t^4 from square pairs (2 x 8 bytes), t^3, the two
      // products with t^4 and n g (4 x 16)
      CHECK(c.bytes == 2 * (ltz_bytes(n, m) + inject_bytes(n, m, 0)) + (2 * 8 + 4 * 16) * m);
      c = cost(n, {37}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::tanh(p, a); });
      CHECK(c.rounds == 13);
      // erf: the same structure (clamp at 4, degree 10, the sign product); gelu: no sign
      // product (relu(x) - h(|x|)), 12 rounds
      c = cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::erf(p, a); });
      CHECK(c.rounds == 13);
      CHECK(c.bytes == 2 * (ltz_bytes(n, m) + inject_bytes(n, m, 0)) + (2 * 8 + 4 * 16) * m);
      c = cost(n, {m}, {1}, [](Party& p, const AShare& a, const AShare&) { crypto::gelu(p, a); });
      CHECK(c.rounds == 12);
      CHECK(c.bytes == 2 * (ltz_bytes(n, m) + inject_bytes(n, m, 0)) + (2 * 8 + 3 * 16) * m);
    }
  }
}
