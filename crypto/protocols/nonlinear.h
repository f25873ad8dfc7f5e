#pragma once
// Non-linear functions on arithmetic shares: ReLU, max/argmax, exp, reciprocal, log, softmax.
// Accuracy figures assume frac_bits f = 16 and inputs inside the stated domain; costs are for
// N = 2 parties (each truncation adds 1 round for N > 2).
//
// relu(x) = x - x [x < 0]: one ltz_mul (binary.h): the masked-open comparison (3 rounds) and its
//   conversion round, which also yields x [x < 0] since x is already masked by the comparison's
//   r. 4 rounds for any N, no truncation; 8(N-1)(n + 39 ceil(n/64)) bytes (2 parties: ~12.9 per
//   element; CrypTen 9 rounds / 232 B).
// max/argmax along the last dim (size C), candidates m = C at first:
//   m = 2: pair level, d = a - b, t = [d < 0]: max = a - d t, index = ia - t (ia - ib), all in
//     one ltz_mul: 4 rounds, ltz_mul bytes per pair (+ 8(N-1) per pair for a secret index).
//   3 <= m <= 16: one all-pairs level: the m(m-1)/2 differences of a row in one ltz (3 rounds);
//     candidate i wins when it beats every later one (>=) and every earlier one (>): an AND of
//     m - 1 bits (ceil(log4(m - 1)) rounds, and_lastdim_mul), whose conversion round also gives
//     v_i w_i (and idx_i w_i), summed: 3 + ceil(log4(m - 1)) + 1 rounds (5 for m <= 5, 6 for
//     m <= 16). Bytes for R rows: ltz of R m(m-1)/2 values, the AND levels' planes and the
//     injection of the R m candidates, with 8(N-1) R m for the values (and as much for a
//     secret index). C = 10, 2 parties: ~670 bytes per row.
//   m > 16: levels of groups of 4 (5 rounds each, 1.5 comparisons per candidate) until m <= 16.
//   C = 10: 6 rounds (CrypTen 57); max_pool2d 2x2: 5, 3x3: 6. Ties give the first maximum.
// exp(x) = p(x / 2^8)^(2^8) with p the degree-4 Taylor polynomial of exp, evaluated with 2 extra
//   fractional bits: 2 rounds for y^2, y^3, y^4 and 8 squarings: 10 rounds, 11 Beaver products
//   (16(N-1) bytes per element each). Relative error <= 3e-3 on [-10, 10] (absolute <= 2^-14
//   where exp(x) < 0.06); valid for x in [-600, 10]. Larger x risks overflow of the 2-party local
//   truncation (probability ~ exp(2x) 2^(2f-63) per element).
// reciprocal(x) without a range (x of either sign and unknown scale): signed normalization
//   (range.h) x = sign m 4^kappa, m in [1, 4), from 43 comparisons in one batch (C rounds, the
//   rounds of one comparison: 4 today); 1/m by Goldschmidt at f + 2 bits from the minimax line
//   y0 = 40/41 - 8/41 m (|1 - m y0| <= 9/41): y0 (1 + e)(1 + e^2)(1 + e^4), 4 rounds, relative
//   error 5.4e-6; then the exact scaling sign 4^-kappa (1 round): C + 1 + 4 + 1 = C + 6 rounds
//   (10 today). With a range [lo, hi] (0 < lo, or hi < 0 via -1/(-x)): Newton-Raphson
//   y <- y (2 - x y) from y0 = 2 / (lo + hi), 2 rounds per iteration, while
//   ((hi - lo)/(hi + lo))^(2^n) <= 2^-(f+2) needs n <= 5 iterations (e.g. [1, 2]: 4, [1, 4]: 5);
//   wider ranges use the normalized path on the range's unsigned grid (fewer comparisons).
// log(x): unsigned normalization (21 comparisons), t = (2m - 5)/3 in [-1, 1] at f + 2 bits, a
//   degree-8 Chebyshev interpolant of log((3t + 5)/2) (interpolation error 2.1e-5; powers of t in
//   3 rounds) plus the exact table kappa log 4: C + 1 + 3 = C + 4 rounds (8 today).
// softmax along the last dim: max, exp(x - max) in (0, 1], sum s in [1, C], reciprocal with the
//   range [1, C], one broadcast mul: max + 10 + recip + 1 rounds (C = 10: 6 + 10 + 10 + 1 = 27).
//   Absolute error <= 1e-3.
// Sources: CrypTen (Knott et al. 2021, §3/App. C) for the Newton and limit methods; Taylor with
// squaring is standard range reduction; SecureML for the relu construction; normalization and
// Goldschmidt: Catrina & Saxena (FC 2010); log by normalization and a polynomial: Aly & Smart
// (ACNS 2019); Chebyshev interpolation: Trefethen, Approximation Theory and Approximation
// Practice (2013), ch. 4.

#include <optional>
#include <utility>

#include "crypto/party.h"
#include "crypto/share.h"

namespace veil::crypto {

/// ReLU and the [x >= 0] bit it used (an integer share, frac_bits 0), kept for backward.
struct ReluResult {
  AShare out;
  AShare positive;
};
/// max(x, 0) elementwise, any shape, any frac_bits (out keeps x.frac_bits; positive is an
/// integer 0/1 share). Cost: 4 rounds for any N; 8(N-1)(n + 39 ceil(n/64)) bytes per party
/// (2 parties: ~12.9 per element); dealer: 8(3n + 265 ceil(n/64)), ~57 bytes per element, to
/// party 0. Exact (no truncation). Throws ValueError for an undefined or non-ring64 share.
/// Source: masked-open comparison with fused bit injection (see binary.h).
ReluResult relu(Party& p, const AShare& x);

/// Max along the last dimension and the index (integer share) where it is attained.
/// x: [..., C] -> values and indices [...] (keepdim false).
struct MaxResult {
  AShare values;
  AShare indices;
};
/// Ties give the first maximum (as core::argmax). Cost (see the header): 4 rounds for C = 2,
/// 5 for C = 3..5, 6 for C = 6..16, then + 5 per level of groups of 4 (10 for C = 17..20, 11
/// for C = 21..64); for N > 2 the same (no truncation). Exact. Throws ValueError for an
/// undefined share, a 0-d input or an empty last dimension.
MaxResult max_lastdim(Party& p, const AShare& x);

/// x / 2^k for k >= 0 keeping x's scale (a truncation by k bits).
AShare div_pow2(Party& p, const AShare& x, int k);

/// e^x. x: secret, frac_bits <= f (rescaled to f) -> secret at f. Cost: 10 rounds (N > 2: 24,
/// one more per truncation), 11 Beaver products: 176(N-1) bytes per element (+ 112 for N > 2).
/// Accuracy: relative error <= 3e-3 on [-10, 10] (measured 2.1e-3 on a dense grid), absolute
/// <= 2^-14 where e^x < 0.02; valid on [-600, 10]. Throws ValueError for frac_bits above f.
AShare exp(Party& p, const AShare& x);

/// 1 / x. x: secret, any shape, frac_bits f -> same.
/// Without `range`: any sign and scale (see the header); |x| is saturated to [2^-16, 2^24]
/// (1/0 gives 2^16). Cost: C + 6 rounds (10 today; N > 2 adds 9 truncation rounds), bytes per
/// element 43 c_cmp(N) + 192(N-1) (+ 8 per truncated value, 11 per element, for N > 2) with
/// c_cmp(N) the bytes of one comparison (2 parties: ~13); measured N = 2: ~750 B. Accuracy:
/// mixed error |err| / max(|1/x|, 1) <= 1e-3 on +-[1e-4, 1e4] (measured 3e-5).
/// With `range` = (lo, hi), lo > 0 or hi < 0: Newton (2 rounds, 32(N-1) bytes per iteration) when
/// it needs <= 5 iterations, else the normalized path on the range's grid; accuracy <= 1e-4 on
/// the range (measured 1.5e-5). Throws ValueError for another frac_bits or a range that is not
/// finite, has lo > hi or contains 0.
AShare reciprocal(Party& p,
                  const AShare& x,
                  std::optional<std::pair<double, double>> range = std::nullopt);

/// Natural logarithm. x: secret, any shape, frac_bits f -> same. Cost: C + 4 rounds (8 today;
/// N > 2 adds 7 truncation rounds), bytes per element 21 c_cmp(N) + 160(N-1) (N > 2: + 88);
/// measured N = 2: ~435 B. Accuracy: mixed error |err| / max(|log x|, 1) <= 1e-2 on [1e-4, 250]
/// (the MPC_REFERENCE target; measured 3.4e-5 on [1e-4, 1.6e7]); x is saturated to
/// [2^-16, 2^24] (x <= 0 gives log 2^-16 = -11.09). Throws ValueError for another frac_bits.
AShare log(Party& p, const AShare& x);

/// Softmax along the last dimension. x: [..., C] -> [..., C]. Cost: max_lastdim + exp (10) +
/// reciprocal on [1, C] + 1 rounds (27 for C = 10 with 4-round comparisons). Absolute error
/// <= 1e-3.
AShare softmax(Party& p, const AShare& x);

}  // namespace veil::crypto
