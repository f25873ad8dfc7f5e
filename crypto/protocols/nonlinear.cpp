#include "crypto/protocols/nonlinear.h"

#include <cmath>

#include "core/elementwise.h"
#include "core/ops.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"

namespace veil::crypto {

ReluResult relu(Party& p, const AShare& x) {
  const AShare negative = b2a_bit(p, ltz(p, x));
  const AShare positive = one_minus(p, negative);
  const AShare out = mul(p, x, positive);
  return {out, positive};
}

MaxResult max_lastdim(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.dim() >= 1 && x.data.size(-1) > 0,
             "[max] expected a tensor with a non-empty last dimension, got {}", x.data.str());
  const int64_t c = x.data.size(-1);
  const core::Shape lead(x.shape().begin(), x.shape().end() - 1);
  const int64_t rows = core::shape_numel(lead);
  AShare cur{x.data.reshape({rows, c}), x.frac_bits};
  // Indices start as the public 0..C-1 (held by party 0).
  core::Tensor idx0 = core::Tensor::zeros({rows, c}, core::DType::kRing64);
  if (p.rank() == 0) {
    uint64_t* pi = idx0.data<uint64_t>();
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < c; ++j) {
        pi[r * c + j] = static_cast<uint64_t>(j);
      }
    }
  }
  AShare idx{idx0, 0};
  int64_t n = c;
  while (n > 1) {
    const int64_t h = n / 2;
    auto cols = [](const AShare& s, int64_t lo, int64_t hi) {
      return AShare{s.data.slice(1, lo, hi).contiguous(), s.frac_bits};
    };
    const AShare a = cols(cur, 0, h);
    const AShare b = cols(cur, h, 2 * h);
    const AShare ia = cols(idx, 0, h);
    const AShare ib = cols(idx, h, 2 * h);
    const AShare diff = sub(a, b);
    const AShare ge = one_minus(p, b2a_bit(p, ltz(p, diff)));  // [a >= b]
    const auto sel = beaver_batch(
        p, {BilinearOp::mul(ge.shape(), diff.shape()), BilinearOp::mul(ge.shape(), ia.shape())},
        {ge, ge}, {diff, sub(ia, ib)});
    AShare vals = add(b, {sel[0].data, diff.frac_bits});
    AShare inds = add(ib, {sel[1].data, 0});
    if (n % 2 == 1) {
      vals = {core::cat({vals.data, cur.data.slice(1, n - 1, n)}, 1), vals.frac_bits};
      inds = {core::cat({inds.data, idx.data.slice(1, n - 1, n)}, 1), 0};
    }
    cur = vals;
    idx = inds;
    n = h + n % 2;
  }
  return {{cur.data.reshape(lead), cur.frac_bits}, {idx.data.reshape(lead), 0}};
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
  const AShare y2 = rescale(p, beaver(p, BilinearOp::mul(y.shape(), y.shape()), y, y), big_f);
  const auto y34 = beaver_batch(
      p, {BilinearOp::mul(y.shape(), y2.shape()), BilinearOp::mul(y2.shape(), y2.shape())}, {y, y2},
      {y2, y2});
  const AShare y3 = rescale(p, y34[0], big_f);
  const AShare y4 = rescale(p, y34[1], big_f);
  // p(y) = 1 + y + y^2/2 + y^3/6 + y^4/24 accumulated at scale 2F, truncated once to F.
  const FixedPointEncoder enc(big_f);
  AShare acc{core::mul_scalar(y2.data, enc.encode_scalar(0.5)), 2 * big_f};
  core::add_(acc.data, core::mul_scalar(y3.data, enc.encode_scalar(1.0 / 6.0)));
  core::add_(acc.data, core::mul_scalar(y4.data, enc.encode_scalar(1.0 / 24.0)));
  core::add_(acc.data, core::shift_left(y.data, big_f));
  AShare poly = rescale(p, add_public(p, acc, 1.0), big_f);
  for (int i = 0; i < kSquarings; ++i) {
    if (i == kSquarings - 4) {
      poly = rescale(p, poly, f);
    }
    poly = square(p, poly);
  }
  return poly;
}

AShare reciprocal(Party& p, const AShare& x, std::optional<std::pair<double, double>> range) {
  const int f = p.frac_bits();
  VEIL_CHECK(x.frac_bits == f, "[reciprocal] expected frac_bits {}, got {}", f, x.frac_bits);
  AShare y;
  int iterations = 10;
  if (range) {
    const auto [lo, hi] = *range;
    VEIL_CHECK(lo > 0 && hi >= lo && std::isfinite(hi),
               "[reciprocal] expected a range 0 < lo <= hi, got [{}, {}]", lo, hi);
    y = constant_share(p, x.shape(), 2.0 / (lo + hi), f);
    const double e0 = (hi - lo) / (hi + lo);
    iterations = 0;
    for (double e = e0; e > std::ldexp(1.0, -f - 2) && iterations < 30; e = e * e) {
      ++iterations;
    }
  } else {
    // 3 exp(1 - 2x) + 0.003
    AShare t = add_public(p, mul_public_int(x, -2), 1.0);
    y = add_public(p, mul_public_int(exp(p, t), 3), 0.003);
  }
  for (int i = 0; i < iterations; ++i) {
    const AShare xy = mul(p, x, y);
    const AShare two_minus = add_public(p, neg(xy), 2.0);
    y = mul(p, y, two_minus);
  }
  return y;
}

AShare log(Party& p, const AShare& x) {
  const int f = p.frac_bits();
  VEIL_CHECK(x.frac_bits == f, "[log] expected frac_bits {}, got {}", f, x.frac_bits);
  AShare y = add_public(p, mul_public(p, x, 0.15), 0.3);
  for (int i = 0; i < 4; ++i) {
    const AShare e = exp(p, neg(y));
    y = add(add_public(p, y, -1.0), mul(p, x, e));
  }
  return y;
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
