#pragma once
// Comparisons and further non-linear approximations on arithmetic shares, built only from the
// protocols of arithmetic.h, binary.h and nonlinear.h. All functions are elementwise.
// Costs are online rounds for N = 2 parties with f = 16 (for N > 2 every truncation adds a round;
// the comparisons cost the same rounds for every N); they are checked by
// tests/crypto/test_approx.cpp and tests/crypto/test_costs.cpp.
//
//   comparisons: [x < y] = msb(x - y) by the masked-open comparison with its conversion round
//       (binary.h ltz_arith): 4 rounds, 8(N-1)(n + 39 ceil(n/64)) bytes (~12.9 per element for
//       2 parties). eq/ne: [x - y == 0] by the equality circuit (binary.h eqz_mul): 4 rounds,
//       8(N-1)(n + 21 ceil(n/64)) bytes (~10.6 per element). Several comparisons of one shape
//       share the rounds (concatenated).
//   sign(x) = 1 - 2[x < 0]; abs(x) = x - 2 x [x < 0] with x [x < 0] from the conversion round
//       (binary.h ltz_mul): 4 rounds each, no truncation.
//   clamped |x|: two comparisons in sequence, each with its product fused into its conversion
//       round: n = [x < 0] and x n give |x| = x - 2 x n; then h = [|x| > B] and z h for
//       z = B - |x| give min(|x|, B) = |x| + z h: 8 rounds, 2 comparisons' bytes per element.
//       (Three comparisons [x < 0], [x < -B], [x > B] side by side take 4 rounds but 1.5x the
//       bytes; the comparison dominates the time, so the sequential form is ~1.5x faster.)
//   sigmoid(x): z = min(|x|, 12), n = [x < 0]; sigmoid(x) = n + (1 - 2n) g(z) with g the
//       degree-12 minimax polynomial of sigmoid on [0, 12] (error 3.5e-5; e^-12 = 6e-6 beyond)
//       in t = z/6 - 1 in [-1, 1] at f + 2 fractional bits, evaluated as A0 + t^4 (A1 + t^4 A2)
//       (A0, A1 of degree 3, A2 of degree 4 in t): t^2 | t^3, t^4 | t^4 A2 | t^4 (A1 + ...) |
//       n g: 8 + 5 = 13 rounds, 6 products (2 of them square pairs). No exponential and no
//       reciprocal: one polynomial on the bounded half-line does the work of e^-|x| and
//       1 / (1 + e). tanh(x) = 2 sigmoid(2x) - 1.
//   erf(x) = (1 - 2n) E(z), z = min(|x|, 4), E the degree-10 minimax polynomial of erf on
//       [0, 4] in t = z/2 - 1 (error 4.0e-5): 8 + 2 + 2 + 1 = 13 rounds. Its derivative's
//       Gaussian e^(-z^2) is a second polynomial in the same powers (no extra round).
//   gelu(x) = x Phi(x) = relu(x) - h(z), z = min(|x|, 5), h(z) = z Phi(-z) as a degree-12
//       minimax polynomial in t = z/2.5 - 1 (error 6.4e-6; h(5) = 1.4e-6), relu(x) = x - x n
//       from the clamp: 8 + 2 + 2 = 12 rounds; gelu'(x) = [x > 0] - (1 - 2n) h'(z), one more
//       polynomial and one round.
//   inv_sqrt(x), sqrt(x): normalization (crypto/protocols/range.h) x = m 4^kappa with m in
//       [1, 4) (21 thresholds 4^j, j = -8..12, in one ltz; |x| saturated to [2^-16, 2^24]),
//       t = (2m - 5)/3, degree-8 Chebyshev interpolants of m^-1/2 and m^1/2 in t (powers in 3
//       rounds), then an exact scaling by 2^-kappa resp. 2^kappa (1 round): C + 1 + 3 + 1 rounds
//       with C the rounds of one comparison (C + 5 = 9 today); both together cost the same.
//   pow(x, k): square-and-multiply from the low bit; the running square and the running product
//       are computed in one batched Beaver round per bit of k: floor(log2 k) rounds, plus
//       one when k is not a power of two (k = 0, 1: 0 rounds; k = 7: 3). Negative k:
//       pow(reciprocal(x, range), -k).
// Sources: CrypTen (Knott et al. 2021, App. C) for Newton iterations and the comparison
// construction; minimax polynomials by the Remez exchange (Remez 1934; coefficients from
// scripts/fit_minimax.py) evaluated Paterson & Stockmeyer style (1973); SecureML (Mohassel &
// Zhang 2017) for sign-based abs/relu.

#include <optional>
#include <utility>

#include "crypto/party.h"
#include "crypto/share.h"

namespace veil::crypto {

// ---- comparisons ------------------------------------------------------------------------------

/// [x < y] elementwise. x, y: same shape, secret, equal frac_bits -> secret integer 0/1
/// (frac_bits 0). Cost: 4 rounds for any N (ltz_arith of x - y); 8(N-1)(n + 39 ceil(n/64))
/// bytes, ~12.9 per element for 2 parties. Exact for
/// |x - y| < 2^63 ulp. Throws ValueError on a shape or frac_bits mismatch.
/// Source: masked-open comparison (binary.h; Escudero et al. CRYPTO 2020, Makri et al. FC 2021).
AShare lt(Party& p, const AShare& x, const AShare& y);
/// [x > y] = [y < x]. Same encoding, cost and errors as lt.
AShare gt(Party& p, const AShare& x, const AShare& y);
/// [x <= y] = 1 - [x > y]. Same encoding, cost and errors as lt.
AShare le(Party& p, const AShare& x, const AShare& y);
/// [x >= y] = 1 - [x < y]. Same encoding, cost and errors as lt.
AShare ge(Party& p, const AShare& x, const AShare& y);
/// [x == y] = [x - y == 0] by the equality circuit (binary.h eqz_mul). Cost: 4 rounds for any N;
/// 8(N-1)(n + 21 ceil(n/64)) bytes, ~10.6 per element for 2 parties.
/// Exact (compares the fixed-point ring values). Errors as lt.
AShare eq(Party& p, const AShare& x, const AShare& y);
/// [x != y] = 1 - [x == y]. Same cost as eq.
AShare ne(Party& p, const AShare& x, const AShare& y);

/// 1 - 2[x < 0] in {-1, 1} (note sign(0) = 1). x: secret, any frac_bits -> secret integer
/// (frac_bits 0). Cost: as lt (4 rounds, ~12.9 bytes per element for 2 parties). Throws
/// ValueError for an undefined share.
AShare sign(Party& p, const AShare& x);
/// |x| = x - 2 x [x < 0], same frac_bits as x, the product fused into the comparison's
/// conversion round (binary.h ltz_mul). Cost: as lt (4 rounds, no truncation). Exact. Throws
/// ValueError for an undefined share.
AShare abs(Party& p, const AShare& x);
/// cond ? a : b = b + cond (a - b). cond: secret integer 0/1 (frac_bits 0); a, b: same shape and
/// frac_bits -> that frac_bits. Cost: 1 round, no truncation. Exact for cond in {0, 1}.
/// Throws ValueError when cond is not an integer share or shapes/frac_bits differ.
AShare where(Party& p, const AShare& cond, const AShare& a, const AShare& b);

// ---- sigmoid / tanh ----------------------------------------------------------------------------

/// Logistic 1 / (1 + e^-x). x: secret, frac_bits f = p.frac_bits() -> same. Cost: 13 rounds
/// (N = 2; CrypTen: 23): clamped |x| 8 (2 comparisons), then the degree-12 polynomial in
/// t = min(|x|, 12)/6 - 1 5 (powers t^2..t^4, two products with t^4, the sign product n g); bytes
/// 2 x 8(N-1)(n + 39 ceil(n/64)) for the comparisons + 8(N-1) n per square pair (2) + 16(N-1) n
/// per product (4): ~106 per element for 2 parties (CrypTen: 752). For N > 2 the truncations add
/// rounds (arithmetic.h). Accuracy: absolute error <= 1e-4 everywhere (measured 5.2e-5 on
/// [-10, 10], 2 and 3 parties; target 2e-3): the polynomial's error 3.5e-5 on [0, 12], the
/// coefficients' encoding at most 2.5e-5, and e^-12 = 6e-6 where |x| is clamped, so the output
/// saturates for every representable x. Source: minimax approximation by the Remez exchange;
/// Paterson & Stockmeyer (1973) for the evaluation. Throws ValueError for another frac_bits.
AShare sigmoid(Party& p, const AShare& x);
/// tanh(x) = 2 sigmoid(2x) - 1. Same encoding and cost as sigmoid; absolute error <= 2e-4
/// everywhere (measured 1.2e-4; target 4e-3 on [-10, 10]), saturating outside. Throws ValueError
/// for another frac_bits.
AShare tanh(Party& p, const AShare& x);

// ---- erf / gelu --------------------------------------------------------------------------------

/// Error function. x: secret, frac_bits f -> same. erf(x) = (1 - 2n) E(z) with z = min(|x|, 4),
/// n = [x < 0] and E the degree-10 minimax polynomial of erf on [0, 4] in t = z/2 - 1 (see the
/// header). Cost: 13 rounds (N = 2; clamp 8, powers 2, polynomial 2, sign 1; CrypTen's Taylor
/// series: 8 rounds but broken beyond |x| ~ 1); bytes 2 x 8(N-1)(n + 39 ceil(n/64)) for the
/// comparisons + 8(N-1)n per square pair (2) + 16(N-1)n per product (4): ~106 per element for 2
/// parties. Accuracy: absolute error <= 1e-4 everywhere (polynomial 4.0e-5, coefficient encoding
/// <= 11 x 2^-(f+3) = 2.1e-5, 1 - erf(4) = 1.5e-8 beyond the clamp; measured ~5e-5 on [-3, 3];
/// target 1e-3), saturating to +-1 outside. Source: minimax approximation (Remez exchange),
/// Paterson & Stockmeyer (1973). Throws ValueError for another frac_bits.
AShare erf(Party& p, const AShare& x);
/// erf(x) and the Gaussian factor g = e^(-min(|x|, 4)^2) for d erf / dx = 2 / sqrt(pi) g: g is
/// a second polynomial (degree 12, error 2.8e-5) in the same powers and rounds, so it costs 2
/// more products (32 bytes per element for 2 parties) and no round. Absolute error of g <= 1e-4
/// (measured 4.5e-5); for |x| > 4 the true e^(-x^2) < 1.2e-7 is replaced by g(4). Same
/// encoding, rounds and errors as erf.
struct ErfResult {
  AShare value;
  AShare gaussian;
};
ErfResult erf_with_gaussian(Party& p, const AShare& x);
/// GELU x Phi(x) (the exact form, not the tanh approximation) = relu(x) - h(z) with
/// z = min(|x|, 5), h(z) = z Phi(-z) (h(5) = 1.4e-6) as a degree-12 minimax polynomial in
/// t = z/2.5 - 1, relu(x) = x - x n from the clamp's first comparison. x: secret, frac_bits f ->
/// same. Cost: 12 rounds (N = 2; clamp 8, powers 2, polynomial 2; no sign product), ~90 bytes
/// per element for 2 parties. Accuracy: absolute error <= 5e-5 everywhere (polynomial 6.4e-6,
/// coefficient encoding <= 2.5e-5, h(5) beyond the clamp), target 3e-3 on [-6, 6]. Throws
/// ValueError for another frac_bits.
AShare gelu(Party& p, const AShare& x);
/// gelu(x) and its derivative Phi(x) + x phi(x) = [x > 0] - (1 - 2n) h'(z) with h'(z) =
/// Phi(-z) - z phi(z) (degree 12 in the same powers, error 1.2e-5): 2 more products in the
/// polynomial's rounds and one round for the sign product (13 rounds). Same encoding and errors.
struct GeluResult {
  AShare value;
  AShare derivative;
};
GeluResult gelu_with_derivative(Party& p, const AShare& x);

// ---- sqrt / inv_sqrt ---------------------------------------------------------------------------

/// 1 / sqrt(x) for x > 0 of unknown scale (normalization, see the header). x: secret, any
/// shape, frac_bits f -> same. Cost per party: C + 5 rounds (9 with today's 4-round comparison;
/// N > 2 adds 7 truncation rounds: 17 for N = 3); bytes per element 21 c_cmp(N) + 192(N-1)
/// (+ 96 for N > 2), c_cmp(N) the bytes of one comparison: measured N = 2: 466 B, N = 3: 1028 B.
/// Accuracy on [1e-4, 1e4] against 1/sqrt of the encoded input: |err| <= 1e-3 |ref| + 2^-16
/// (measured: 3e-5 relative beyond the final rounding unit; relative <= 4e-4 where the result
/// is >= 2^-5). The interpolant's relative error is 2.6e-5; the last rounding to f bits is
/// stochastic (< 1 unit). |x| is saturated to [2^-16, 2^24] (x <= 0 gives 256). Throws
/// ValueError for another frac_bits.
AShare inv_sqrt(Party& p, const AShare& x);
/// sqrt(x) for x >= 0 of unknown scale: sqrt(m) 2^kappa (see the header). Same encoding, cost,
/// domain and accuracy statement as inv_sqrt (measured 1.2e-5 relative beyond the rounding
/// unit; interpolant 2.8e-6); x <= 0 gives 2^-8 (the saturation to 2^-16).
AShare sqrt(Party& p, const AShare& x);
/// Both sqrt(x) and 1/sqrt(x) from one normalization and one set of powers: the rounds of one of
/// them (N > 2: one more truncation round), 32(N-1) bytes per element more (+ 16 for N > 2).
/// Used by autograd sqrt, whose backward needs 1/sqrt(x).
struct SqrtResult {
  AShare sqrt;
  AShare inv_sqrt;
};
SqrtResult sqrt_and_inv_sqrt(Party& p, const AShare& x);

// ---- pow ---------------------------------------------------------------------------------------

/// x^k for an integer public k by square-and-multiply. x: secret, frac_bits f -> same.
/// k >= 0: floor(log2 k) + [k not a power of 2] rounds (0 for k <= 1), relative error ~ k 2^-f
/// while |x^k| and every intermediate power stay below 2^(63 - 2f) / 2 (the 2-party truncation
/// bound). k < 0 needs `range` = (lo, hi), 0 < lo <= x <= hi: pow(reciprocal(x, range), -k) (plus
/// the reciprocal's rounds). Throws ValueError for |k| > 64, k < 0 without a range, or another
/// frac_bits.
AShare pow(Party& p,
           const AShare& x,
           int k,
           std::optional<std::pair<double, double>> range = std::nullopt);

}  // namespace veil::crypto
