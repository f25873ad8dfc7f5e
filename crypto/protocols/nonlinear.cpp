#include "crypto/protocols/nonlinear.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <numbers>
#include <vector>

#include "core/elementwise.h"
#include "core/ops.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"
#include "crypto/protocols/range.h"

namespace veil::crypto {

ReluResult relu(Party& p, const AShare& x) {
  // relu(x) = x - x [x < 0]; the comparison's conversion round also gives x [x < 0] (x is
  // already masked by the comparison's r), so the whole ReLU is one ltz_mul: 4 rounds.
  VEIL_CHECK(x.data.defined() && x.data.dtype() == core::DType::kRing64,
             "[relu] expected a ring64 share, got {}", x.data.str());
  const BitProducts t = ltz_mul(p, x, /*with_x=*/true);
  return {sub(x, t.x_times_bit), one_minus(p, t.bit)};
}

namespace {

// Running state of max_lastdim: the candidates [rows, m] and their indices, public (the column
// numbers, identical on every party) before the first level and secret after it.
struct MaxState {
  AShare vals;
  AShare idx;
  core::Tensor idx_pub;
  bool idx_public = true;
};

AShare max_cols(const AShare& s, int64_t lo, int64_t hi) {
  return {s.data.slice(1, lo, hi).contiguous(), s.frac_bits};
}

// A public ring tensor as an integer share (party 0 holds it).
AShare public_share(Party& p, const core::Tensor& t) {
  return {p.rank() == 0 ? t.contiguous()
                        : core::Tensor::zeros(t.shape(), core::DType::kRing64, t.device()),
          0};
}

// Pair level: column j against column j + h (h = m / 2; an odd last column passes through).
// With d = a - b and t = [d < 0], max = a - d t and index = ia - t (ia - ib), fused into the
// comparison's conversion round (d is masked by the comparison already). 4 rounds.
MaxState max_pairs(Party& p, const MaxState& st) {
  const int64_t m = st.vals.data.size(1);
  const int64_t h = m / 2;
  const AShare a = max_cols(st.vals, 0, h);
  const AShare d = sub(a, max_cols(st.vals, h, 2 * h));
  std::vector<AShare> ys;
  if (!st.idx_public) {
    ys.push_back(sub(max_cols(st.idx, 0, h), max_cols(st.idx, h, 2 * h)));
  }
  const BitProducts t = ltz_mul(p, d, /*with_x=*/true, ys);
  MaxState out;
  out.idx_public = false;
  out.vals = sub(a, t.x_times_bit);
  if (st.idx_public) {
    // ib - ia = h for every pair
    out.idx = add_public(p, mul_public_int(t.bit, h), st.idx_pub.slice(1, 0, h).contiguous());
  } else {
    out.idx = sub(max_cols(st.idx, 0, h), t.products[0]);
  }
  if (m % 2 == 1) {
    const AShare last_idx =
        st.idx_public ? public_share(p, st.idx_pub.slice(1, m - 1, m)) : max_cols(st.idx, m - 1, m);
    out.vals = {core::cat({out.vals.data, st.vals.data.slice(1, m - 1, m)}, 1), st.vals.frac_bits};
    out.idx = {core::cat({out.idx.data, last_idx.data}, 1), 0};
  }
  return out;
}

// Group level: groups of g >= 3 consecutive columns (the last group padded with copies of its
// first column, which lose every tie). All g(g-1)/2 pairs of a group are compared at once (ltz,
// 3 rounds); element i wins its group when it beats every j > i ([v_i >= v_j]) and every j < i
// ([v_j < v_i]): an AND of g - 1 bits (ceil(log4(g-1)) rounds) whose conversion round also gives
// v_i w_i and idx_i w_i, summed over the group. 3 + ceil(log4(g - 1)) + 1 rounds.
MaxState max_groups(Party& p, const MaxState& st, int64_t g) {
  const int64_t rows = st.vals.data.size(0);
  const int64_t m = st.vals.data.size(1);
  const int64_t groups = (m + g - 1) / g;
  const int64_t cells = rows * groups;
  auto pad = [&](const core::Tensor& t) {
    std::vector<core::Tensor> parts{t};
    const int64_t first = (groups - 1) * g;
    for (int64_t k = m; k < groups * g; ++k) {
      parts.push_back(t.slice(1, first, first + 1));
    }
    return (parts.size() == 1 ? t : core::cat(parts, 1)).contiguous();
  };
  const core::Tensor v = pad(st.vals.data);
  const core::Tensor ix = st.idx_public ? pad(st.idx_pub) : pad(st.idx.data);
  // Pair k = (first[k], second[k]), i < j, in the order (0,1), (0,2), ..., (1,2), ...; pair_at
  // maps (i, j) back to k.
  std::vector<int64_t> first;
  std::vector<int64_t> second;
  std::vector<int64_t> pair_at(static_cast<std::size_t>(g * g), -1);
  for (int64_t i = 0; i < g; ++i) {
    for (int64_t j = i + 1; j < g; ++j) {
      pair_at[static_cast<std::size_t>(i * g + j)] = static_cast<int64_t>(first.size());
      first.push_back(i);
      second.push_back(j);
    }
  }
  const auto pairs = static_cast<int64_t>(first.size());
  // Candidate i's g - 1 bits, j != i in order: [v_j < v_i] for j < i, and for j > i
  // [v_i >= v_j] = NOT [v_i < v_j] (party 0 flips its share): pair pick[i (g-1) + col], flipped
  // where flip is 1.
  std::vector<int64_t> pick;
  std::vector<uint64_t> flip;
  for (int64_t i = 0; i < g; ++i) {
    for (int64_t j = 0; j < g; ++j) {
      if (j != i) {
        pick.push_back(pair_at[static_cast<std::size_t>(std::min(i, j) * g + std::max(i, j))]);
        flip.push_back(j > i && p.rank() == 0 ? 1U : 0U);
      }
    }
  }
  // The pairs and the candidate bits are gathered along the last dimension where the values live
  // (core::gather_last: a loop on the host, one kernel on a GPU).
  const core::Tensor v2 = v.reshape({cells, g});
  const core::Tensor diff = core::sub(core::gather_last(v2, first), core::gather_last(v2, second));
  const BShare less = ltz(p, {diff, st.vals.frac_bits});  // [v_i < v_j], [cells, pairs]
  core::Tensor f = core::Tensor::empty({1, g * (g - 1)}, core::DType::kRing64);
  std::copy(flip.begin(), flip.end(), f.data<uint64_t>());
  const core::Tensor win =
      core::bitwise_xor(core::gather_last(less.data.reshape({cells, pairs}), pick),
                        f.to(v.device()))
          .reshape({cells * g, g - 1});
  std::vector<AShare> ys{{v.reshape({cells * g}), st.vals.frac_bits}};
  if (!st.idx_public) {
    ys.push_back({ix.reshape({cells * g}), 0});
  }
  const BitProducts w = and_lastdim_mul(p, {win}, ys);
  MaxState out;
  out.idx_public = false;
  out.vals = {core::sum(w.products[0].data.reshape({rows, groups, g}), 2), st.vals.frac_bits};
  const core::Tensor idx_terms =
      st.idx_public ? core::mul(w.bit.data, ix.reshape({cells * g})) : w.products[1].data;
  out.idx = {core::sum(idx_terms.reshape({rows, groups, g}), 2), 0};
  return out;
}

}  // namespace

MaxResult max_lastdim(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.defined() && x.data.dtype() == core::DType::kRing64,
             "[max] expected a ring64 share, got {}", x.data.str());
  VEIL_CHECK(x.data.dim() >= 1 && x.data.size(-1) > 0,
             "[max] expected a tensor with a non-empty last dimension, got {}", x.data.str());
  const int64_t c = x.data.size(-1);
  const core::Shape lead(x.shape().begin(), x.shape().end() - 1);
  const int64_t rows = core::shape_numel(lead);
  MaxState st;
  st.vals = {x.data.reshape({rows, c}).contiguous(), x.frac_bits};
  core::Tensor columns = core::Tensor::empty({rows, c}, core::DType::kRing64);
  uint64_t* pi = columns.data<uint64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < c; ++j) {
      pi[r * c + j] = static_cast<uint64_t>(j);
    }
  }
  st.idx_pub = columns.to(x.data.device());
  // Up to 16 candidates: one all-pairs level (4 rounds for 2, 5 for 3..5, 6 for 6..16); more:
  // groups of 4 (5 rounds per level, 1.5 comparisons per candidate) until 16 are left.
  for (int64_t m = c; m > 1; m = st.vals.data.size(1)) {
    st = m == 2 ? max_pairs(p, st) : max_groups(p, st, m <= 16 ? m : 4);
  }
  const AShare idx = st.idx_public ? public_share(p, st.idx_pub) : st.idx;
  return {{st.vals.data.reshape(lead), st.vals.frac_bits}, {idx.data.reshape(lead), 0}};
}

AShare div_pow2(Party& p, const AShare& x, int k) {
  VEIL_CHECK(k >= 0 && k <= x.frac_bits, "[div_pow2] expected 0 <= k <= frac_bits ({}), got {}",
             x.frac_bits, k);
  AShare t = truncate(p, x, k);
  t.frac_bits = x.frac_bits;
  return t;
}

AShare exp(Party& p, const AShare& x_in) {
  // exp(x) = p(y)^(2^K), y = x / 2^K, with p the degree-4 Taylor polynomial. The base and the
  // first K - 4 squarings run at F = f + 2 fractional bits (their error is amplified 2^K-fold);
  // the last 4 squarings, where values may grow to e^10, run at f. F is kept small because the
  // truncation of a product fails with probability ~ |product| / 2^64 (SecureML): products at
  // scale 2F = 36 bits keep that near 2^-28 per element.
  constexpr int kSquarings = 8;
  constexpr int kExtraBits = 2;
  const int f = p.frac_bits();
  const int big_f = f + kExtraBits;
  const AShare x = rescale(p, x_in, std::min(x_in.frac_bits, f));
  VEIL_CHECK(x.frac_bits == f, "[exp] expected a fixed-point input with frac_bits {}, got {}", f,
             x_in.frac_bits);
  // x at scale f is x / 2^K at scale f + K; drop K - kExtraBits bits to reach scale F.
  const AShare y = truncate(p, {x.data, f + kSquarings}, kSquarings - kExtraBits);
  const AShare y2 = rescale(p, beaver(p, BilinearOp::square(y.shape()), y, y), big_f);
  const auto y34 =
      beaver_batch(p, {BilinearOp::mul(y.shape(), y2.shape()), BilinearOp::square(y2.shape())},
                   {y, y2}, {y2, y2});
  const AShare y3 = rescale(p, y34[0], big_f);
  const AShare y4 = rescale(p, y34[1], big_f);
  // u = p(y) - 1 = y + y^2/2 + y^3/6 + y^4/24 accumulated at scale 2F, truncated once to F.
  const FixedPointEncoder enc(big_f);
  AShare acc{core::mul_scalar(y2.data, enc.encode_scalar(0.5)), 2 * big_f};
  core::add_(acc.data, core::mul_scalar(y3.data, enc.encode_scalar(1.0 / 6.0)));
  core::add_(acc.data, core::mul_scalar(y4.data, enc.encode_scalar(1.0 / 24.0)));
  core::add_(acc.data, core::shift_left(y.data, big_f));
  AShare u = rescale(p, acc, big_f);
  // The squarings at F carry u = v - 1 instead of v (v = p(y)^(2^i) = e^(x 2^(i-K)), near 1 for
  // |x| << 2^(K-i)): (1 + u)^2 - 1 = 2u + u^2, the same values and rounding, but the product that
  // is truncated is u^2 rather than v^2, which for the x <= 0 of softmax's exp(x - max) is up to
  // ~100x smaller, and the truncation fails with probability ~ |product| / 2^64.
  for (int i = 0; i < kSquarings - 4; ++i) {
    u = add(mul_public_int(u, 2), square(p, u));
  }
  AShare v = rescale(p, add_public(p, u, 1.0), f);
  for (int i = 0; i < 4; ++i) {
    v = square(p, v);
  }
  return v;
}

namespace {

// Extra fractional bits of the mantissa stages (all values there are O(1), so products stay near
// 2^(2f + 4) before their truncation).
constexpr int kExtraBits = 2;
// A known range uses Newton from a constant while it needs at most this many iterations (2 rounds
// each); beyond, the normalized path (C + 6 = 10 rounds with 4-round comparisons) is cheaper.
constexpr int kMaxNewtonIterations = 5;

// Chebyshev interpolant of degree 8 of log((3t + 5)/2) on t in [-1, 1] (m = (3t + 5)/2 in
// [1, 4]) in the monomial basis; interpolation error 2.1e-5.
constexpr double kLogCoeffs[9] = {
    0.9162907318741553,    0.5999152795258729,   -0.17995360515501005,
    0.07310399540321638,   -0.03300436550579104, 0.011818942072530297,
    -0.005734346174556815, 0.008295407161562653, -0.004443767037453108};

// 1/m for m in [1, 4] (scale f) by Goldschmidt's iteration at scale F = f + 2: y0 = 40/41 - 8/41 m
// (the minimax line, |e| = |1 - m y0| <= 9/41), then y0 (1 + e)(1 + e^2)(1 + e^4) = (1 - e^8) / m:
// relative error (9/41)^8 = 5.4e-6. e: 1 round; (e^2, y1): 1; (e^4, y2): 1; y3: 1 => 4 rounds.
AShare reciprocal_mantissa(Party& p, const AShare& m) {
  const int big_f = m.frac_bits + kExtraBits;
  const AShare mf{core::shift_left(m.data, kExtraBits), big_f};
  const FixedPointEncoder enc(big_f);
  const AShare y0 = add_public(
      p, rescale(p, {core::mul_scalar(mf.data, enc.encode_scalar(-8.0 / 41.0)), 2 * big_f}, big_f),
      40.0 / 41.0);
  AShare e = add_public(p, neg(mul(p, mf, y0)), 1.0);
  AShare y = y0;
  for (int i = 0; i < 3; ++i) {
    const AShare one_plus = add_public(p, e, 1.0);
    const auto op = BilinearOp::mul(m.shape(), m.shape());
    if (i < 2) {
      const auto prods = rescale_batch(p, beaver_batch(p, {op, op}, {y, e}, {one_plus, e}), big_f);
      y = prods[0];
      e = prods[1];
    } else {
      y = mul(p, y, one_plus);
    }
  }
  return y;
}

// 1/x by normalization on `grid` (signed or not): x = sign m 4^kappa, 1/x = sign (1/m) 4^-kappa.
AShare reciprocal_normalized(Party& p, const AShare& x, const ExponentGrid& grid) {
  const Normalized n = normalize(p, x, grid);
  const AShare r = reciprocal_mantissa(p, n.mantissa);
  const int s = grid.step_bits;
  return scale_by_pow2(p, n, {{r, [s](int k) { return -s * k; }, true, p.frac_bits()}})[0];
}

}  // namespace

AShare reciprocal(Party& p, const AShare& x, std::optional<std::pair<double, double>> range) {
  const int f = p.frac_bits();
  VEIL_CHECK(x.data.defined() && x.frac_bits == f, "[reciprocal] expected frac_bits {}, got {}", f,
             x.frac_bits);
  if (!range) {
    return reciprocal_normalized(p, x, default_grid(f, /*is_signed=*/true));
  }
  const auto [lo, hi] = *range;
  VEIL_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi && (lo > 0 || hi < 0),
             "[reciprocal] expected a range [lo, hi] with lo <= hi that excludes 0, got [{}, {}]",
             lo, hi);
  if (hi < 0) {
    return neg(reciprocal(p, neg(x), std::make_pair(-hi, -lo)));
  }
  const double e0 = (hi - lo) / (hi + lo);
  int iterations = 0;
  for (double e = e0; e > std::ldexp(1.0, -f - 2) && iterations <= kMaxNewtonIterations;
       e = e * e) {
    ++iterations;
  }
  if (iterations > kMaxNewtonIterations) {
    return reciprocal_normalized(p, x, grid_for_range(lo, hi, f));
  }
  // Newton y <- y (2 - x y) from the midpoint reciprocal.
  AShare y = constant_share(p, x.shape(), 2.0 / (lo + hi), f);
  for (int i = 0; i < iterations; ++i) {
    const AShare xy = mul(p, x, y);
    const AShare two_minus = add_public(p, neg(xy), 2.0);
    y = mul(p, y, two_minus);
  }
  return y;
}

AShare log(Party& p, const AShare& x) {
  const int f = p.frac_bits();
  VEIL_CHECK(x.data.defined() && x.frac_bits == f, "[log] expected frac_bits {}, got {}", f,
             x.frac_bits);
  // x = m 4^kappa: log x = log m + kappa log 4, log m = P(t) with t = (2m - 5)/3 in [-1, 1].
  const ExponentGrid grid = default_grid(f);
  const Normalized n = normalize(p, x, grid);
  const AShare t = mantissa_unit(p, n, kExtraBits);
  const std::vector<double> coeffs(std::begin(kLogCoeffs), std::end(kLogCoeffs));
  const AShare log_m = polynomial(p, powers(p, t, 8), coeffs, f);
  const double ln_base = grid.step_bits * std::numbers::ln2;
  return add(log_m, n.table(
                        p, [ln_base](int k) { return ln_base * k; }, f));
}

AShare softmax(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.dim() >= 1 && x.data.size(-1) > 0,
             "[softmax] expected a non-empty last dimension, got {}", x.data.str());
  const int64_t c = x.data.size(-1);
  core::Shape keep = x.shape();
  keep.back() = 1;
  const MaxResult m = max_lastdim(p, x);
  const AShare shifted = sub(x, {m.values.data.reshape(keep), m.values.frac_bits});
  const AShare e = exp(p, shifted);
  const AShare s = sum(e, -1, /*keepdim=*/true);
  const AShare r = reciprocal(p, s, std::make_pair(1.0, static_cast<double>(c)));
  return mul(p, e, r);
}

}  // namespace veil::crypto
