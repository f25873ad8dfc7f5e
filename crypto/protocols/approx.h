#pragma once
// Comparisons and further non-linear approximations on arithmetic shares, built only from the
// protocols of arithmetic.h, binary.h and nonlinear.h. All functions are elementwise.
// Costs are online rounds for N = 2 parties with f = 16 (for N > 2 every truncation adds a round
// and every ltz N - 2); they are checked by tests/crypto/test_approx.cpp.
//
//   comparisons: [x < y] = msb(x - y) via ltz (7 rounds) and b2a_bit (1 round) = 8 rounds.
//       eq/ne run [x < y] and [y < x] as one ltz on the concatenation (still 8 rounds):
//       [x = y] = 1 - [x < y] - [y < x].
//   sign(x) = 1 - 2[x < 0]; abs(x) = x * sign(x) (one Beaver mul with an integer, no truncation).
//   clamped |x|: the three bits n = [x < 0], l = [x < -B], h = [x > B] come from one ltz; since
//       l implies n and h implies not n, sign(x)(1 - l - h) = 1 - 2n + l - h is linear in the
//       bits, so min(|x|, B) = x (1 - 2n + l - h) + B (l + h) costs one mul: 9 rounds.
//   e^-z for z in [0, 16] (internal): q(-z / 2^6)^(2^6), q the degree-6 Taylor polynomial, at
//       f + 2 fractional bits; every intermediate is in (0, 1], so the precision can stay high:
//       3 rounds for the powers + 6 squarings = 9 rounds, relative error ~ 2.5e-4 (4x below exp()).
//   sigmoid(x): a = min(|x|, 16); s = 1 / (1 + e^-a) with e^-a in (0, 1], so the reciprocal has
//       the known range [1, 2] (4 Newton steps); sigmoid(x) = s + n (1 - 2s).
//       9 + 9 + 8 + 1 = 27 rounds. tanh(x) = 2 sigmoid(2x) - 1.
//   erf(x): Abramowitz & Stegun 7.1.26 on a = min(|x|, 4): t = 1 / (1 + 0.3275911 a) (range
//       [1, 2.31], 4 Newton steps), erf(a) = 1 - t (a1 + t (a2 + ...)) e^{-a^2} (formula error
//       <= 1.5e-7), then erf(x) = sign(x) erf(a). gelu(x) = x (1 + erf(x / sqrt 2)) / 2.
//   inv_sqrt(x): a piecewise-constant start y0 = 2^{-(k + 1/2)/2} on [2^k, 2^{k+1}) built
//       linearly from 13 threshold bits [x >= 2^k], k = -6..6 (one ltz, 8 rounds), so that
//       y0 sqrt(x) is in [2^-1/4, 2^1/4]; then 4 Newton steps y <- y (3 - x y^2) / 2
//       (3 rounds each): 20 rounds. sqrt(x): s = x inv_sqrt(x), then one Newton step
//       s (3 - s y) / 2 with the same y removes y's relative error to first order: 23 rounds.
//   pow(x, k): square-and-multiply from the low bit; the running square and the running product
//       are computed in one batched Beaver round per bit of k: floor(log2 k) rounds, plus
//       one when k is not a power of two (k = 0, 1: 0 rounds; k = 7: 3). Negative k:
//       pow(reciprocal(x, range), -k).
// Sources: CrypTen (Knott et al. 2021, App. C) for Newton iterations and the comparison
// construction; Abramowitz & Stegun, Handbook of Mathematical Functions (1964), 7.1.26; SecureML
// (Mohassel & Zhang 2017) for sign-based abs/relu.

#include <optional>
#include <utility>

#include "crypto/party.h"
#include "crypto/share.h"

namespace veil::crypto {

// ---- comparisons ------------------------------------------------------------------------------

/// [x < y] elementwise. x, y: same shape, secret, equal frac_bits -> secret integer 0/1
/// (frac_bits 0). Cost: 8 rounds (ltz + b2a_bit), ~47(N-1) + 1 bytes per element.
/// Exact for |x - y| < 2^63 ulp. Throws ValueError on a shape or frac_bits mismatch.
AShare lt(Party& p, const AShare& x, const AShare& y);
/// [x > y] = [y < x]. Same encoding, cost and errors as lt.
AShare gt(Party& p, const AShare& x, const AShare& y);
/// [x <= y] = 1 - [x > y]. Same encoding, cost and errors as lt.
AShare le(Party& p, const AShare& x, const AShare& y);
/// [x >= y] = 1 - [x < y]. Same encoding, cost and errors as lt.
AShare ge(Party& p, const AShare& x, const AShare& y);
/// [x == y] = 1 - [x < y] - [y < x], both comparisons in one ltz on 2n elements.
/// Cost: 8 rounds, twice lt's bytes. Exact (compares the fixed-point ring values).
AShare eq(Party& p, const AShare& x, const AShare& y);
/// [x != y] = [x < y] + [y < x]. Same cost as eq.
AShare ne(Party& p, const AShare& x, const AShare& y);

/// 1 - 2[x < 0] in {-1, 1} (note sign(0) = 1). x: secret, any frac_bits -> secret integer
/// (frac_bits 0). Cost: 8 rounds.
AShare sign(Party& p, const AShare& x);
/// |x| = x * sign(x), same frac_bits as x. Cost: 9 rounds (sign + one Beaver mul with an
/// integer share, no truncation). Exact.
AShare abs(Party& p, const AShare& x);
/// cond ? a : b = b + cond (a - b). cond: secret integer 0/1 (frac_bits 0); a, b: same shape and
/// frac_bits -> that frac_bits. Cost: 1 round, no truncation. Exact for cond in {0, 1}.
/// Throws ValueError when cond is not an integer share or shapes/frac_bits differ.
AShare where(Party& p, const AShare& cond, const AShare& a, const AShare& b);

// ---- sigmoid / tanh ----------------------------------------------------------------------------

/// Logistic 1 / (1 + e^-x). x: secret, frac_bits f = p.frac_bits() -> same. Cost: 27 rounds
/// (N = 2). Accuracy: absolute error <= 2e-3 on [-10, 10] (measured 1e-4); |x| is clamped at 16 so
/// the output saturates (error <= 2e-3) for every representable x. Throws ValueError for another
/// frac_bits.
AShare sigmoid(Party& p, const AShare& x);
/// tanh(x) = 2 sigmoid(2x) - 1. Same encoding and cost as sigmoid; absolute error <= 4e-3 on
/// [-10, 10] (measured 2e-4), saturating outside.
AShare tanh(Party& p, const AShare& x);

// ---- erf / gelu --------------------------------------------------------------------------------

/// Error function by Abramowitz & Stegun 7.1.26 on min(|x|, 4) (see header). x: secret,
/// frac_bits f -> same. Cost: 9 + 1 + 9 + 8 + 5 + 1 = 33 rounds (N = 2). Accuracy: absolute
/// error <= 1e-3 on [-3, 3] (measured 2.5e-4), saturating to +-1 (error <= 1e-3) outside. Throws
/// ValueError for another frac_bits.
AShare erf(Party& p, const AShare& x);
/// GELU x (1 + erf(x / sqrt 2)) / 2 (the exact form, not the tanh approximation). Same encoding;
/// cost erf + 1 = 34 rounds. Absolute error <= 3e-3 on [-6, 6] (measured 6e-5) (<= |x| erf error /
/// 2 + ulp).
AShare gelu(Party& p, const AShare& x);

// ---- sqrt / inv_sqrt ---------------------------------------------------------------------------

/// 1 / sqrt(x). x: secret, frac_bits f -> same. Cost: 20 rounds (N = 2). Domain [0.01, 100]
/// (the start covers [2^-7, 2^7]; Newton still converges, slower, up to x < 270): absolute error
/// <= 1e-2 there (measured 2.8e-3, mostly the encoding error of x near 0.01). Throws ValueError for
/// another frac_bits.
AShare inv_sqrt(Party& p, const AShare& x);
/// sqrt(x) from s = x * inv_sqrt(x) refined by one Newton step (see header). Same encoding and
/// domain; cost 23 rounds; absolute error <= 1e-2 (measured 7e-5).
AShare sqrt(Party& p, const AShare& x);

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
