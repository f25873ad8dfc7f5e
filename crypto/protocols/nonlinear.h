#pragma once
// Non-linear functions on arithmetic shares: ReLU, max/argmax, exp, reciprocal, log, softmax.
// Accuracy figures assume frac_bits f = 16 and inputs inside the stated domain; costs are for
// N = 2 parties (each truncation adds 1 round for N > 2).
//
// relu(x) = x * [x >= 0]: ltz (a2b) + b2a_bit + one Beaver mul with an integer bit (no
//   truncation). 9 rounds, ~47 + 1/8 + 16 ~ 63 bytes per element (packed comparison bits).
// max/argmax along the last dim (size C): a tree of ceil(log2 C) levels; each level compares
//   pairs (ltz of the difference, b2a) and selects value and index with one batched Beaver mul:
//   9 rounds per level (36 for C = 10). Ties pick the lower-index element of each pair.
// exp(x) = p(x / 2^8)^(2^8) with p the degree-4 Taylor polynomial of exp, evaluated with 2 extra
//   fractional bits: 2 rounds for y^2, y^3, y^4 and 8 squarings: 10 rounds, 10 Beaver products
//   (16(N-1) bytes per element each). Relative error <= 3e-3 on [-10, 10] (absolute <= 2^-14
//   where exp(x) < 0.06); valid for x in [-600, 10]. Larger x risks overflow of the 2-party local
//   truncation (probability ~ exp(2x) 2^(2f-63) per element).
// reciprocal(x) for x in a known range [lo, hi], 0 < lo: Newton–Raphson y <- y (2 - x y) from
//   y0 = 2 / (lo + hi), with the iteration count chosen so that ((hi-lo)/(hi+lo))^(2^n) <= 2^-f:
//   2 rounds per iteration. Without a range, CrypTen's start 3 exp(1 - 2x) + 0.003 and 10
//   iterations (valid on [0.01, 100] per MPC_REFERENCE §3; 28 rounds).
// log(x) for x in [1, 20]: Newton on e^y = x, y <- y - 1 + x exp(-y), 4 iterations from the
//   linear start y0 = 0.3 + 0.15 x; 4 * (10 + 1) = 44 rounds. Absolute error <= 3e-3.
// softmax along the last dim: max, exp(x - max) in (0, 1], sum s in [1, C], reciprocal with the
//   range [1, C], one broadcast mul: 36 + 10 + 12 + 1 = 59 rounds for C = 10.
//   Absolute error <= 1e-3.
// Sources: CrypTen (Knott et al. 2021, §3/App. C) for the Newton and limit methods; Taylor with
// squaring is standard range reduction; SecureML for the relu construction.

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
/// max(x, 0) elementwise, any shape. Cost and accuracy: see the header comment (9 rounds).
ReluResult relu(Party& p, const AShare& x);

/// Max along the last dimension and the index (integer share) where it is attained.
/// x: [..., C] -> values and indices [...] (keepdim false).
struct MaxResult {
  AShare values;
  AShare indices;
};
/// Throws ValueError for a 0-d input or an empty last dimension.
MaxResult max_lastdim(Party& p, const AShare& x);

/// x / 2^k for k >= 0 keeping x's scale (a truncation by k bits).
AShare div_pow2(Party& p, const AShare& x, int k);

/// e^x, rescaled to p.frac_bits(). See the header comment for domain and error.
AShare exp(Party& p, const AShare& x);

/// 1 / x for positive x. With `range` = (lo, hi) uses the range-fitted start; otherwise the
/// generic start (domain [0.01, 100]). Throws ValueError for a bad range.
AShare reciprocal(Party& p,
                  const AShare& x,
                  std::optional<std::pair<double, double>> range = std::nullopt);

/// Natural log for x in [1, 20] (documented above).
AShare log(Party& p, const AShare& x);

/// Softmax along the last dimension. x: [..., C] -> [..., C].
AShare softmax(Party& p, const AShare& x);

}  // namespace veil::crypto
