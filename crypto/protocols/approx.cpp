#include "crypto/protocols/approx.h"

#include <cmath>
#include <cstdlib>
#include <iterator>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "crypto/bilinear.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"
#include "crypto/protocols/nonlinear.h"
#include "crypto/protocols/range.h"

namespace veil::crypto {

namespace {

void check_pair(const char* op, const AShare& x, const AShare& y) {
  VEIL_CHECK(x.data.defined() && y.data.defined(), "[{}] expected defined shares", op);
  VEIL_CHECK(x.shape() == y.shape(), "[{}] expected equal shapes, got {} and {}", op, x.data.str(),
             y.data.str());
  VEIL_CHECK(x.frac_bits == y.frac_bits, "[{}] expected equal frac_bits, got {} and {}", op,
             x.frac_bits, y.frac_bits);
}

void check_fixed(Party& p, const char* op, const AShare& x) {
  VEIL_CHECK(x.data.defined(), "[{}] expected a defined share", op);
  VEIL_CHECK(x.frac_bits == p.frac_bits(),
             "[{}] expected a fixed-point share with frac_bits {}, got frac_bits {}", op,
             p.frac_bits(), x.frac_bits);
}

// min(|x|, bound) (scale f) and [x < 0] (integer) from two comparisons in sequence, each with
// its product fused into its conversion round (no truncation): the first gives n = [x < 0] and
// x n, so |x| = x - 2 x n; the second, on z = B - |x|, gives h = [|x| > B] and z h, so
// min(|x|, B) = |x| + z h. 8 rounds for any N and two comparisons' bytes (the three comparisons
// [x < 0], [x < -B], [x > B] side by side take 4 rounds but 1.5x the bytes and the time).
struct ClampedAbs {
  AShare abs;
  AShare negative;
};
ClampedAbs clamped_abs(Party& p, const AShare& x, double bound) {
  const BitProducts s = ltz_mul(p, x, /*with_x=*/true);
  const AShare a = sub(x, mul_public_int(s.x_times_bit, 2));
  const BitProducts h = ltz_mul(p, add_public(p, neg(a), bound), /*with_x=*/true);
  return {add(a, h.x_times_bit), s.bit};
}

// x * y / 2 at x's scale (both at scale f): the /2 is folded into the truncation.
AShare mul_half(Party& p, const AShare& x, const AShare& y) {
  const AShare raw = beaver(p, BilinearOp::mul(x.shape(), y.shape()), x, y);
  return rescale(p, {raw.data, raw.frac_bits + 1}, x.frac_bits);
}

// e^-z for z in [0, 16] (every intermediate lies in [-1, 1]): e^-z = q(u)^8 with u = 1 - z/8 in
// [-1, 1] and q the degree-6 Chebyshev interpolant of e^(u - 1) on [-1, 1] (so q(u)^8 =
// e^(8u - 8)), at F = f + 2 fractional bits. Interpolation error 1.3e-6 absolute (7.7e-6
// relative), amplified 8-fold by the squarings: relative error <= 6.2e-5 plus ~8 units of 2^-F
// of rounding. Powers u^2 | u^3, u^4 | the product with u^4 take 3 rounds, the squarings 3:
// 6 rounds for N = 2, 7 products of which 5 are squares (8 bytes per element each).
constexpr double kExpNegCoeffs[7] = {
    0.36787944117144294, 0.36788762093019917,   0.18394073811175993,  0.06124791478529901,
    0.01532018107665545, 0.0031956378883656613, 0.0005271342802279991};
AShare exp_neg_bounded(Party& p, const AShare& z) {
  constexpr int kSquarings = 3;
  constexpr int kExtraBits = 2;
  const int f = z.frac_bits;
  const int big_f = f + kExtraBits;
  // -z at scale f is -z/8 at scale f + 3: one truncated bit gives scale F
  const AShare u =
      add_public(p, truncate(p, {neg(z).data, f + kSquarings}, kSquarings - kExtraBits), 1.0);
  // q = (c0 + c1 u + c2 u^2 + c3 u^3) + u^4 (c4 + c5 u + c6 u^2) (Paterson-Stockmeyer: the
  // product with u^4 is the third round, in place of u^5 and u^6)
  const auto& c = kExpNegCoeffs;
  const auto pw = powers(p, u, 4);
  const AShare high = mul(p, pw[3], polynomial(p, {pw[0], pw[1]}, {c[4], c[5], c[6]}, big_f));
  AShare q = add(polynomial(p, pw, {c[0], c[1], c[2], c[3]}, big_f), high);
  for (int i = 0; i < kSquarings; ++i) {
    q = square(p, q);
  }
  return rescale(p, q, f);
}

// sigmoid(z) for z in [0, 12]: the degree-12 minimax polynomial (Remez exchange,
// scripts/fit_minimax.py sigmoid --clamp 12 --degree 12) in
// t = z / 6 - 1 in [-1, 1], monomial basis of t; approximation error 3.5e-5. Encoding the 13
// coefficients at f + 2 bits adds at most 13 * 2^-(f+3) = 2.5e-5, and the powers' rounding is
// amplified at most by sum |c_k| = 3.3.
constexpr double kSigmoidHalfCoeffs[13] = {
    0.9975089841490807,   0.014403039446559088, -0.042581685207182335, 0.09859385265775475,
    -0.15208536543788279, 0.06126831504565995,  -0.003327174411049044, 0.3729823116162662,
    -0.3984767158074822,  -0.39373380786367446, 0.5182122520801578,    0.09644783274777784,
    -0.16925336745294314};

}  // namespace

// ---- comparisons ------------------------------------------------------------------------------

// x - y with y brought to x's device first: comparisons against constants that callers build on
// the host (thresholds, zeros, window positions) also serve a GPU party (a copy, no communication).
namespace {
AShare diff(const AShare& x, const AShare& y) {
  return sub(x, to_device(y, x.data.device()));
}
}  // namespace

AShare lt(Party& p, const AShare& x, const AShare& y) {
  check_pair("lt", x, y);
  return ltz_arith(p, diff(x, y));
}

AShare gt(Party& p, const AShare& x, const AShare& y) {
  check_pair("gt", x, y);
  return ltz_arith(p, neg(diff(x, y)));
}

AShare le(Party& p, const AShare& x, const AShare& y) {
  check_pair("le", x, y);
  return one_minus(p, ltz_arith(p, neg(diff(x, y))));
}

AShare ge(Party& p, const AShare& x, const AShare& y) {
  check_pair("ge", x, y);
  return one_minus(p, ltz_arith(p, diff(x, y)));
}

AShare eq(Party& p, const AShare& x, const AShare& y) {
  check_pair("eq", x, y);
  return eqz_mul(p, diff(x, y)).bit;
}

AShare ne(Party& p, const AShare& x, const AShare& y) {
  check_pair("ne", x, y);
  return one_minus(p, eqz_mul(p, diff(x, y)).bit);
}

AShare sign(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.defined(), "[sign] expected a defined share");
  return add_public(p, mul_public_int(ltz_arith(p, x), -2), 1.0);
}

AShare abs(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.defined(), "[abs] expected a defined share");
  // |x| = x - 2 x [x < 0], the product fused into the comparison's conversion round
  return sub(x, mul_public_int(ltz_mul(p, x, /*with_x=*/true).x_times_bit, 2));
}

AShare where(Party& p, const AShare& cond, const AShare& a, const AShare& b) {
  check_pair("where", a, b);
  VEIL_CHECK(cond.data.defined() && cond.frac_bits == 0,
             "[where] expected an integer 0/1 condition (frac_bits 0), got frac_bits {}",
             cond.frac_bits);
  VEIL_CHECK(cond.shape() == a.shape(), "[where] expected the condition's shape {} to equal {}",
             cond.data.str(), a.data.str());
  return add(b, mul(p, cond, sub(a, b)));
}

// ---- sigmoid / tanh ----------------------------------------------------------------------------

AShare sigmoid(Party& p, const AShare& x) {
  check_fixed(p, "sigmoid", x);
  constexpr double kClamp = 12.0;
  constexpr int kExtraBits = 2;
  const int f = x.frac_bits;
  const int big_f = f + kExtraBits;
  const ClampedAbs ca = clamped_abs(p, x, kClamp);  // z = min(|x|, 12), n = [x < 0]
  // t = z / 6 - 1 at scale F = f + 2 (one truncation), powers t^2 | t^3, t^4 in 2 rounds
  const AShare t = add_public(
      p,
      rescale(p,
              {core::mul_scalar(ca.abs.data, FixedPointEncoder(big_f).encode_scalar(1.0 / 6.0)),
               f + big_f},
              big_f),
      -1.0);
  const auto pw = powers(p, t, 4);
  // g(z) = A0 + t^4 (A1 + t^4 A2) with A0, A1 of degree 3 and A2 of degree 4 in t (Paterson-
  // Stockmeyer with Horner in t^4): rounds 3 and 4
  const auto& c = kSigmoidHalfCoeffs;
  const std::vector<AShare> low3{pw[0], pw[1], pw[2]};
  const AShare a2 = mul(p, pw[3], polynomial(p, pw, {c[8], c[9], c[10], c[11], c[12]}, big_f));
  const AShare a1 = add(polynomial(p, low3, {c[4], c[5], c[6], c[7]}, big_f), a2);
  const AShare g = add(polynomial(p, low3, {c[0], c[1], c[2], c[3]}, big_f), mul(p, pw[3], a1));
  // sigmoid(x) = n + (1 - 2n) g = n + g - 2 n g: n is an integer share, so n g needs no
  // truncation, and g - 2 n g is truncated once to scale f (round 5)
  const AShare ng = beaver(p, BilinearOp::mul(x.shape(), x.shape()), ca.negative, g);
  const AShare tail = rescale(p, sub(g, mul_public_int(ng, 2)), f);
  return add(mul_public_int({ca.negative.data, f}, int64_t{1} << f), tail);
}

AShare tanh(Party& p, const AShare& x) {
  check_fixed(p, "tanh", x);
  const AShare s = sigmoid(p, mul_public_int(x, 2));
  return add_public(p, mul_public_int(s, 2), -1.0);
}

// ---- erf / gelu --------------------------------------------------------------------------------

ErfResult erf_with_gaussian(Party& p, const AShare& x) {
  check_fixed(p, "erf", x);
  // Abramowitz & Stegun 7.1.26 coefficients.
  constexpr double kP = 0.3275911;
  constexpr double kA[5] = {0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429};
  constexpr double kClamp = 4.0;
  const ClampedAbs ca = clamped_abs(p, x, kClamp);
  const AShare e = exp_neg_bounded(p, square(p, ca.abs));
  const AShare t = reciprocal(p, add_public(p, mul_public(p, ca.abs, kP), 1.0),
                              std::make_pair(1.0, 1.0 + kP * kClamp));
  // q = t (a1 + t (a2 + t (a3 + t (a4 + a5 t)))) by Horner.
  AShare q = add_public(p, mul_public(p, t, kA[4]), kA[3]);
  for (int i = 2; i >= 0; --i) {
    q = add_public(p, mul(p, t, q), kA[i]);
  }
  q = mul(p, t, q);
  const AShare erf_abs = add_public(p, neg(mul(p, q, e)), 1.0);
  const AShare sgn = add_public(p, mul_public_int(ca.negative, -2), 1.0);
  return {mul(p, erf_abs, sgn), e};
}

AShare erf(Party& p, const AShare& x) {
  return erf_with_gaussian(p, x).value;
}

AShare gelu(Party& p, const AShare& x) {
  check_fixed(p, "gelu", x);
  const AShare r = erf(p, mul_public(p, x, 1.0 / std::sqrt(2.0)));
  return mul_half(p, x, add_public(p, r, 1.0));
}

// ---- sqrt / inv_sqrt ---------------------------------------------------------------------------

namespace {

// Chebyshev interpolants of degree 8 of sqrt(m) and 1/sqrt(m), m = (3t + 5)/2 in [1, 4], in the
// monomial basis of t in [-1, 1]; relative interpolation errors 2.8e-6 and 2.6e-5.
constexpr double kSqrtCoeffs[9] = {
    1.5811388300841898,     0.4743295444615362,    -0.07114494969310975,
    0.02150344883030127,    -0.008086715370157468, 0.0028241871049561086,
    -0.0012336338720733884, 0.0013409551924444447, -0.0006725528542396041};
constexpr double kInvSqrtCoeffs[9] = {
    0.6324555320336762,   -0.18963896476285058,  0.08532539898045255,
    -0.04396101549271237, 0.023141923147651115,  -0.007833718754936608,
    0.004206777703975619, -0.008550031601020672, 0.004860997819001511};
constexpr int kSqrtExtraBits = 2;

// x = m 4^kappa (saturated to [2^-f, 2^24]): sqrt x = sqrt(m) 2^kappa, 1/sqrt x = m^-1/2 2^-kappa,
// the mantissa functions as polynomials in t = (2m - 5)/3 sharing one set of powers; the wanted
// results are scaled in one round.
SqrtResult sqrt_family(Party& p, const AShare& x, bool want_sqrt, bool want_inv) {
  const int f = p.frac_bits();
  const Normalized n = normalize(p, x, default_grid(f));
  const AShare t = mantissa_unit(p, n, kSqrtExtraBits);
  const auto pw = powers(p, t, 8);
  const int big_f = t.frac_bits;
  std::vector<Pow2Scaling> req;
  if (want_sqrt) {
    const std::vector<double> c(std::begin(kSqrtCoeffs), std::end(kSqrtCoeffs));
    req.push_back({polynomial(p, pw, c, big_f), [](int k) { return k; }, false, f});
  }
  if (want_inv) {
    const std::vector<double> c(std::begin(kInvSqrtCoeffs), std::end(kInvSqrtCoeffs));
    req.push_back({polynomial(p, pw, c, big_f), [](int k) { return -k; }, false, f});
  }
  const auto out = scale_by_pow2(p, n, req);
  SqrtResult r;
  if (want_sqrt) {
    r.sqrt = out.front();
  }
  if (want_inv) {
    r.inv_sqrt = out.back();
  }
  return r;
}

}  // namespace

AShare inv_sqrt(Party& p, const AShare& x) {
  check_fixed(p, "inv_sqrt", x);
  return sqrt_family(p, x, false, true).inv_sqrt;
}

AShare sqrt(Party& p, const AShare& x) {
  check_fixed(p, "sqrt", x);
  return sqrt_family(p, x, true, false).sqrt;
}

SqrtResult sqrt_and_inv_sqrt(Party& p, const AShare& x) {
  check_fixed(p, "sqrt", x);
  return sqrt_family(p, x, true, true);
}

// ---- pow ---------------------------------------------------------------------------------------

AShare pow(Party& p, const AShare& x, int k, std::optional<std::pair<double, double>> range) {
  check_fixed(p, "pow", x);
  VEIL_CHECK(std::abs(k) <= 64, "[pow] expected |k| <= 64, got k = {}", k);
  if (k < 0) {
    VEIL_CHECK(range.has_value(),
               "[pow] a negative exponent k = {} needs the input range (lo, hi) with lo > 0", k);
    return pow(p, reciprocal(p, x, range), -k);
  }
  if (k == 0) {
    return constant_share(p, x.shape(), 1.0, x.frac_bits);
  }
  // Square-and-multiply from the low bit; the product and the next square share a round.
  std::optional<AShare> result;
  AShare base = x;
  auto rest = static_cast<unsigned>(k);
  while (rest != 0) {
    const bool take = (rest & 1U) != 0;
    rest >>= 1U;
    std::vector<BilinearOp> ops;
    std::vector<AShare> lhs;
    std::vector<AShare> rhs;
    const bool product = take && result.has_value();
    if (product) {
      ops.push_back(BilinearOp::mul(result->shape(), base.shape()));
      lhs.push_back(*result);
      rhs.push_back(base);
    } else if (take) {
      result = base;
    }
    if (rest != 0) {
      ops.push_back(BilinearOp::square(base.shape()));
      lhs.push_back(base);
      rhs.push_back(base);
    }
    if (ops.empty()) {
      break;
    }
    const auto prods = beaver_batch(p, ops, lhs, rhs);
    std::size_t j = 0;
    if (product) {
      result = rescale(p, prods[j++], x.frac_bits);
    }
    if (rest != 0) {
      base = rescale(p, prods[j], x.frac_bits);
    }
  }
  return *result;
}

}  // namespace veil::crypto
