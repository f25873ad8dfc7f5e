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
  AShare abs;               ///< min(|x|, B) at x's scale
  AShare negative;          ///< n = [x < 0] (integer)
  AShare x_times_negative;  ///< x n at x's scale (so relu(x) = x - x n)
};
ClampedAbs clamped_abs(Party& p, const AShare& x, double bound) {
  const BitProducts s = ltz_mul(p, x, /*with_x=*/true);
  const AShare a = sub(x, mul_public_int(s.x_times_bit, 2));
  const BitProducts h = ltz_mul(p, add_public(p, neg(a), bound), /*with_x=*/true);
  return {add(a, h.x_times_bit), s.bit, s.x_times_bit};
}

// t = z / half_width - 1 at scale f + kPolyExtraBits (z at scale f, in [0, 2 half_width]):
// a scale change when half_width is a power of two, otherwise one truncation.
constexpr int kPolyExtraBits = 2;
AShare unit_interval(Party& p, const AShare& z, double half_width) {
  const int f = z.frac_bits;
  const int big_f = f + kPolyExtraBits;
  const int log2_hw = std::ilogb(half_width);
  AShare scaled;
  if (std::ldexp(1.0, log2_hw) == half_width && log2_hw <= kPolyExtraBits) {
    // z / 2^k at scale F is z's ring value times 2^(F - f - k)
    scaled = {core::shift_left(z.data, kPolyExtraBits - log2_hw), big_f};
  } else {
    const uint64_t inv = FixedPointEncoder(big_f).encode_scalar(1.0 / half_width);
    scaled = rescale(p, {core::mul_scalar(z.data, inv), f + big_f}, big_f);
  }
  return add_public(p, scaled, -1.0);
}

// Polynomials of degree <= 12 in t from pw = {t, t^2, t^3, t^4} (scale F), each evaluated as
// A0 + t^4 (A1 + t^4 A2) with A0, A1 of degree 3 and A2 of degree 4 in t (Paterson-Stockmeyer,
// Horner in t^4). All polynomials share the two rounds (products with t^4, batched; a polynomial
// of degree <= 8 needs only the second, one of degree <= 4 none). Results at scale F.
std::vector<AShare> polynomials_deg12(Party& p,
                                      const std::vector<AShare>& pw,
                                      const std::vector<std::vector<double>>& coeffs) {
  const int big_f = pw.front().frac_bits;
  const std::vector<AShare> low3{pw[0], pw[1], pw[2]};
  // block j of a polynomial: coefficients [4j, 4j + 4), the last block up to 5 (it uses t^4)
  auto blocks = [](const std::vector<double>& c) {
    VEIL_CHECK(!c.empty() && c.size() <= 13, "[polynomial] expected 1 to 13 coefficients, got {}",
               c.size());
    return c.size() <= 5 ? 1 : c.size() <= 9 ? 2 : 3;
  };
  auto block = [&](const std::vector<double>& c, int j) {
    const auto from = static_cast<std::ptrdiff_t>(4 * j);
    const bool last = j == blocks(c) - 1;
    const auto to = last ? static_cast<std::ptrdiff_t>(c.size()) : from + 4;
    return polynomial(p, last ? pw : low3, std::vector<double>(c.begin() + from, c.begin() + to),
                      big_f);
  };
  // Horner in t^4 from the highest block: inner = t^4 (block j + inner), one batched round per
  // step; a polynomial joins the step of its own highest block
  const auto op = BilinearOp::mul(pw[3].shape(), pw[3].shape());
  std::vector<AShare> inner(coeffs.size());
  for (int j = 2; j >= 1; --j) {
    std::vector<std::size_t> who;
    std::vector<AShare> rhs;
    for (std::size_t i = 0; i < coeffs.size(); ++i) {
      if (blocks(coeffs[i]) > j) {
        const AShare b = block(coeffs[i], j);
        who.push_back(i);
        rhs.push_back(inner[i].data.defined() ? add(b, inner[i]) : b);
      }
    }
    if (who.empty()) {
      continue;
    }
    const auto prods = beaver_batch_rescaled(p, std::vector<BilinearOp>(who.size(), op),
                                             std::vector<AShare>(who.size(), pw[3]), rhs,
                                             std::vector<int>(who.size(), big_f));
    for (std::size_t k = 0; k < who.size(); ++k) {
      inner[who[k]] = prods[k];
    }
  }
  std::vector<AShare> out;
  for (std::size_t i = 0; i < coeffs.size(); ++i) {
    const AShare a0 = block(coeffs[i], 0);
    out.push_back(inner[i].data.defined() ? add(a0, inner[i]) : a0);
  }
  return out;
}

// (1 - 2n) g = g - 2 n g rescaled to `frac_bits`, for integer shares n in {0, 1} (so n g needs
// no truncation): 1 round, one product per pair, batched.
std::vector<AShare> times_sign(Party& p,
                               const AShare& n,
                               const std::vector<AShare>& gs,
                               int frac_bits) {
  const auto op = BilinearOp::mul(n.shape(), n.shape());
  const auto ngs = beaver_batch(p, std::vector<BilinearOp>(gs.size(), op),
                                std::vector<AShare>(gs.size(), n), gs);
  std::vector<AShare> out;
  for (std::size_t i = 0; i < gs.size(); ++i) {
    out.push_back(rescale(p, sub(gs[i], mul_public_int(ngs[i], 2)), frac_bits));
  }
  return out;
}

// Functions of |x| on a bounded half-line: z = min(|x|, bound) and n = [x < 0] (8 rounds), then
// polynomials of degree <= 12 in t = 2 z / bound - 1 (powers 2 rounds, polynomials 2), results
// at scale f + kPolyExtraBits.
struct HalfLine {
  ClampedAbs clamp;
  std::vector<AShare> values;
};
HalfLine on_half_line(Party& p,
                      const AShare& x,
                      double bound,
                      const std::vector<std::vector<double>>& coeffs) {
  HalfLine out{clamped_abs(p, x, bound), {}};
  const auto pw = powers(p, unit_interval(p, out.clamp.abs, bound / 2), 4);
  out.values = polynomials_deg12(p, pw, coeffs);
  return out;
}

template <std::size_t K>
std::vector<double> coeff_vector(const double (&c)[K]) {
  return {std::begin(c), std::end(c)};
}

// A function's coefficients, and its derivative's (or another factor's) when wanted.
template <std::size_t K1, std::size_t K2>
std::vector<std::vector<double>> coeff_lists(const double (&value)[K1],
                                             const double (&extra)[K2],
                                             bool want_extra) {
  std::vector<std::vector<double>> out{coeff_vector(value)};
  if (want_extra) {
    out.push_back(coeff_vector(extra));
  }
  return out;
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
  const int f = x.frac_bits;
  // z = min(|x|, 12), n = [x < 0], g(z) in t = z / 6 - 1: 12 rounds
  const HalfLine h = on_half_line(p, x, 12.0, {coeff_vector(kSigmoidHalfCoeffs)});
  const AShare& n = h.clamp.negative;
  // sigmoid(x) = n + (1 - 2n) g (round 13)
  return add(mul_public_int({n.data, f}, int64_t{1} << f), times_sign(p, n, h.values, f)[0]);
}

AShare tanh(Party& p, const AShare& x) {
  check_fixed(p, "tanh", x);
  const AShare s = sigmoid(p, mul_public_int(x, 2));
  return add_public(p, mul_public_int(s, 2), -1.0);
}

// ---- erf / gelu --------------------------------------------------------------------------------

namespace {

// erf(z), e^(-z^2) on [0, 4] and h(z) = z Phi(-z), h'(z) = Phi(-z) - z phi(z) on [0, 5]: minimax
// polynomials (scripts/fit_minimax.py) in t = z / 2 - 1 resp. z / 2.5 - 1, monomial basis.
// Errors: erf 4.0e-5 (degree 10), e^(-z^2) 2.8e-5 (12), h 6.4e-6 (12), h' 1.2e-5 (12).
constexpr double kErfHalfCoeffs[11] = {
    0.9952819431709133,  0.04135848433894551, -0.16255726435377782, 0.3848458277976524,
    -0.5821724977362285, 0.43110227561595627, 0.15677642903266623,  -0.4982535518783069,
    0.17173603464007361, 0.14098733226284887, -0.07906465246227583};
constexpr double kGaussHalfCoeffs[13] = {
    0.018340145569583632, -0.14635566521220034, 0.5106060138472889,  -0.9816906340324209,
    0.9617784848917073,   0.1150813862923774,   -1.5374415344923673, 1.3399709641677062,
    0.4535079686389374,   -1.1186679025947657,  0.19545682595550243, 0.29168945512733513,
    -0.10224784814306505};
constexpr double kGeluTailCoeffs[13] = {
    0.01552639733879288,  -0.09394768267420905, 0.2325978779117819,   -0.25910355434980203,
    -0.01657689565959116, 0.43637330166391897,  -0.49421033116825525, 0.016856700014539976,
    0.3518151764198658,   -0.1496547341183612,  -0.09831192568422505, 0.04948310052122498,
    0.009160417470560598};
constexpr double kGeluTailSlopeCoeffs[13] = {
    -0.037605248164807537, 0.186095968609657,   -0.3086674694251098, -0.026884273057160728,
    0.8420386911214495,    -1.1840686938419347, 0.19702469702333422, 1.1211800283069635,
    -0.864165212053227,    -0.3886882852143305, 0.5395212048384092,  0.042349826857341025,
    -0.1181502368130492};

ErfResult erf_impl(Party& p, const AShare& x, bool want_gaussian) {
  check_fixed(p, "erf", x);
  const HalfLine h =
      on_half_line(p, x, 4.0, coeff_lists(kErfHalfCoeffs, kGaussHalfCoeffs, want_gaussian));
  const int f = x.frac_bits;
  // erf is odd: 1 round
  ErfResult out{times_sign(p, h.clamp.negative, {h.values[0]}, f)[0], {}};
  if (want_gaussian) {
    out.gaussian = rescale(p, h.values[1], f);
  }
  return out;
}

GeluResult gelu_impl(Party& p, const AShare& x, bool want_derivative) {
  check_fixed(p, "gelu", x);
  // gelu(x) = x Phi(x) = relu(x) - h(|x|) with h(z) = z Phi(-z) (h(5) = 1.4e-6), and
  // gelu'(x) = [x > 0] - (1 - 2n) h'(|x|)
  const HalfLine h =
      on_half_line(p, x, 5.0, coeff_lists(kGeluTailCoeffs, kGeluTailSlopeCoeffs, want_derivative));
  const int f = x.frac_bits;
  const AShare& n = h.clamp.negative;
  GeluResult out{sub(sub(x, h.clamp.x_times_negative), rescale(p, h.values[0], f)), {}};
  if (want_derivative) {
    // 1 - n - (1 - 2n) h' (round 13)
    out.derivative = sub(add_public(p, mul_public_int({n.data, f}, -(int64_t{1} << f)), 1.0),
                         times_sign(p, n, {h.values[1]}, f)[0]);
  }
  return out;
}

}  // namespace

ErfResult erf_with_gaussian(Party& p, const AShare& x) {
  return erf_impl(p, x, /*want_gaussian=*/true);
}

AShare erf(Party& p, const AShare& x) {
  return erf_impl(p, x, /*want_gaussian=*/false).value;
}

GeluResult gelu_with_derivative(Party& p, const AShare& x) {
  return gelu_impl(p, x, /*want_derivative=*/true);
}

AShare gelu(Party& p, const AShare& x) {
  return gelu_impl(p, x, /*want_derivative=*/false).value;
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
