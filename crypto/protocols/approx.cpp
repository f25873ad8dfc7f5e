#include "crypto/protocols/approx.h"

#include <cmath>
#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "crypto/bilinear.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"
#include "crypto/protocols/nonlinear.h"

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

// [v_j < 0] for several same-shape shares with one ltz and one b2a_bit on their concatenation
// (8 rounds for N = 2 whatever their number). Returns integer shares of the input shape.
std::vector<AShare> ltz_many(Party& p, const std::vector<AShare>& vs) {
  const core::Shape shape = vs.front().shape();
  const int64_t n = vs.front().numel();
  std::vector<core::Tensor> flat;
  flat.reserve(vs.size());
  for (const AShare& v : vs) {
    flat.push_back(v.data.contiguous().reshape({n}));
  }
  const core::Tensor all = flat.size() == 1 ? flat[0] : core::cat(flat, 0);
  const AShare bits = b2a_bit(p, ltz(p, {all, vs.front().frac_bits}));
  std::vector<AShare> out;
  out.reserve(vs.size());
  for (std::size_t j = 0; j < vs.size(); ++j) {
    const auto lo = static_cast<int64_t>(j) * n;
    out.push_back({bits.data.slice(0, lo, lo + n).contiguous().reshape(shape), 0});
  }
  return out;
}

// min(|x|, bound) (scale f) and [x < 0] (integer): one ltz of three comparisons and one mul with
// the integer multiplier m = 1 - 2n + l - h (see the header): 9 rounds for N = 2.
struct ClampedAbs {
  AShare abs;
  AShare negative;
};
ClampedAbs clamped_abs(Party& p, const AShare& x, double bound) {
  const auto bits = ltz_many(p, {x, add_public(p, x, bound), add_public(p, neg(x), bound)});
  const AShare& n = bits[0];
  const AShare& l = bits[1];
  const AShare& h = bits[2];
  const AShare m = add_public(p, add(sub(l, h), mul_public_int(n, -2)), 1.0);
  const auto scaled_bound = static_cast<int64_t>(std::ldexp(bound, x.frac_bits));
  AShare out = mul(p, x, m);
  out = add(out, {mul_public_int(add(l, h), scaled_bound).data, x.frac_bits});
  return {out, n};
}

// x * y / 2 at x's scale (both at scale f): the /2 is folded into the truncation.
AShare mul_half(Party& p, const AShare& x, const AShare& y) {
  const AShare raw = beaver(p, BilinearOp::mul(x.shape(), y.shape()), x, y);
  return rescale(p, {raw.data, raw.frac_bits + 1}, x.frac_bits);
}

// e^-z for z in [0, 16] (so every intermediate lies in (0, 1]): e^-z = q(-z / 2^6)^(2^6) with q the
// degree-6 Taylor polynomial (truncation error <= 0.25^7 / 7! relative, amplified 64-fold: 1e-6),
// everything at F = f + 2 fractional bits. Powers y^2 | y^3, y^4 | y^5, y^6 take 3 rounds, then 6
// squarings: 9 rounds for N = 2. Relative error ~ 64 * 2^-F ~ 2.5e-4 (4x below exp()).
AShare exp_neg_bounded(Party& p, const AShare& z) {
  constexpr int kSquarings = 6;
  constexpr int kExtraBits = 2;
  const int f = z.frac_bits;
  const int big_f = f + kExtraBits;
  auto rescaled = [&](const AShare& v) {
    return rescale(p, v, big_f);
  };
  const AShare y = truncate(p, {neg(z).data, f + kSquarings}, kSquarings - kExtraBits);
  const auto op = BilinearOp::mul(y.shape(), y.shape());
  const AShare y2 = square(p, y);
  const auto y34 = beaver_batch(p, {op, op}, {y, y2}, {y2, y2});
  const AShare y3 = rescaled(y34[0]);
  const AShare y4 = rescaled(y34[1]);
  const auto y56 = beaver_batch(p, {op, op}, {y2, y3}, {y3, y3});
  const AShare y5 = rescaled(y56[0]);
  const AShare y6 = rescaled(y56[1]);
  const FixedPointEncoder enc(big_f);
  AShare acc{core::shift_left(y.data, big_f), 2 * big_f};
  const AShare* powers[5] = {&y2, &y3, &y4, &y5, &y6};
  double factorial = 1.0;
  for (int k = 2; k <= 6; ++k) {
    factorial *= k;
    core::add_(acc.data, core::mul_scalar(powers[k - 2]->data, enc.encode_scalar(1.0 / factorial)));
  }
  AShare q = rescaled(add_public(p, acc, 1.0));
  for (int i = 0; i < kSquarings; ++i) {
    q = square(p, q);
  }
  return rescale(p, q, f);
}

}  // namespace

// ---- comparisons ------------------------------------------------------------------------------

AShare lt(Party& p, const AShare& x, const AShare& y) {
  check_pair("lt", x, y);
  return ltz_many(p, {sub(x, y)})[0];
}

AShare gt(Party& p, const AShare& x, const AShare& y) {
  check_pair("gt", x, y);
  return ltz_many(p, {sub(y, x)})[0];
}

AShare le(Party& p, const AShare& x, const AShare& y) {
  check_pair("le", x, y);
  return one_minus(p, ltz_many(p, {sub(y, x)})[0]);
}

AShare ge(Party& p, const AShare& x, const AShare& y) {
  check_pair("ge", x, y);
  return one_minus(p, ltz_many(p, {sub(x, y)})[0]);
}

AShare eq(Party& p, const AShare& x, const AShare& y) {
  check_pair("eq", x, y);
  const auto bits = ltz_many(p, {sub(x, y), sub(y, x)});
  return one_minus(p, add(bits[0], bits[1]));
}

AShare ne(Party& p, const AShare& x, const AShare& y) {
  check_pair("ne", x, y);
  const auto bits = ltz_many(p, {sub(x, y), sub(y, x)});
  return add(bits[0], bits[1]);
}

AShare sign(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.defined(), "[sign] expected a defined share");
  return add_public(p, mul_public_int(ltz_many(p, {x})[0], -2), 1.0);
}

AShare abs(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.defined(), "[abs] expected a defined share");
  return mul(p, x, sign(p, x));
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
  constexpr double kClamp = 16.0;
  const ClampedAbs ca = clamped_abs(p, x, kClamp);
  const AShare e = exp_neg_bounded(p, ca.abs);  // in (0, 1]
  const AShare s = reciprocal(p, add_public(p, e, 1.0), std::make_pair(1.0, 2.0));
  // x < 0: 1 - s = s + (1 - 2s)
  const AShare flip = add_public(p, mul_public_int(s, -2), 1.0);
  return add(s, mul(p, ca.negative, flip));
}

AShare tanh(Party& p, const AShare& x) {
  check_fixed(p, "tanh", x);
  const AShare s = sigmoid(p, mul_public_int(x, 2));
  return add_public(p, mul_public_int(s, 2), -1.0);
}

// ---- erf / gelu --------------------------------------------------------------------------------

AShare erf(Party& p, const AShare& x) {
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
  return mul(p, erf_abs, sgn);
}

AShare gelu(Party& p, const AShare& x) {
  check_fixed(p, "gelu", x);
  const AShare r = erf(p, mul_public(p, x, 1.0 / std::sqrt(2.0)));
  return mul_half(p, x, add_public(p, r, 1.0));
}

// ---- sqrt / inv_sqrt ---------------------------------------------------------------------------

AShare inv_sqrt(Party& p, const AShare& x) {
  check_fixed(p, "inv_sqrt", x);
  constexpr int kLo = -6;
  constexpr int kHi = 6;
  constexpr int kIterations = 4;
  const int f = x.frac_bits;
  // c_k = 2^{-(k + 1/2)/2}: the start on [2^k, 2^{k+1}).
  auto c = [](int k) {
    return std::pow(2.0, -(k + 0.5) / 2.0);
  };
  std::vector<AShare> diffs;
  for (int k = kLo; k <= kHi; ++k) {
    diffs.push_back(add_public(p, x, -std::ldexp(1.0, k)));
  }
  const auto below = ltz_many(p, diffs);  // z_k = [x < 2^k]
  // y0 = c_kHi + sum_k z_k (c_{k-1} - c_k)
  AShare y = constant_share(p, x.shape(), c(kHi), f);
  const FixedPointEncoder enc(f);
  for (int k = kLo; k <= kHi; ++k) {
    const auto step = static_cast<int64_t>(enc.encode_scalar(c(k - 1) - c(k), "inv_sqrt"));
    y = add(y, {mul_public_int(below[static_cast<std::size_t>(k - kLo)], step).data, f});
  }
  for (int i = 0; i < kIterations; ++i) {
    const AShare xy2 = mul(p, x, square(p, y));
    y = mul_half(p, y, add_public(p, neg(xy2), 3.0));
  }
  return y;
}

AShare sqrt(Party& p, const AShare& x) {
  check_fixed(p, "sqrt", x);
  // s = x y carries y's relative error eta; one Newton step in s, s (3 - s y) / 2, with the
  // same y cancels it to O(eta^2) (s y = (1 + eta)^2).
  const AShare y = inv_sqrt(p, x);
  const AShare s = mul(p, x, y);
  return mul_half(p, s, add_public(p, neg(mul(p, s, y)), 3.0));
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
      ops.push_back(BilinearOp::mul(base.shape(), base.shape()));
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
