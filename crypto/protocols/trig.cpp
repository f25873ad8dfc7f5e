// sin / cos by the angle-addition identity on the additive shares (see trig.h).

#include "crypto/protocols/trig.h"

#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "crypto/bilinear.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/arithmetic.h"

namespace veil::crypto {

namespace {

// round(2^64 / (2 pi)): one turn per 2^64. Integer arithmetic keeps C identical on every party.
constexpr uint64_t kTurn64 = 0x28BE60DB9391054AULL;

// z_a * z_b for complex shares stored as [2, n] (row 0 cos, row 1 sin) at frac f:
// one broadcast Beaver product [2, 1, n] x [1, 2, n] -> P[i][j], then
// cos = P00 - P11, sin = P10 + P01, truncated once.
std::vector<AShare> complex_products(Party& p,
                                     const std::vector<AShare>& a,
                                     const std::vector<AShare>& b) {
  std::vector<BilinearOp> ops;
  std::vector<AShare> lhs;
  std::vector<AShare> rhs;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const int64_t n = a[i].data.size(1);
    lhs.push_back({a[i].data.reshape({2, 1, n}), a[i].frac_bits});
    rhs.push_back({b[i].data.reshape({1, 2, n}), b[i].frac_bits});
    ops.push_back(BilinearOp::mul(lhs.back().shape(), rhs.back().shape()));
  }
  const auto prods = beaver_batch(p, ops, lhs, rhs);
  std::vector<core::Tensor> parts;
  for (const AShare& z : prods) {
    const int64_t n = z.data.size(2);
    const core::Tensor q = z.data.reshape({4, n});
    // rows: 0 = c_a c_b, 1 = c_a s_b, 2 = s_a c_b, 3 = s_a s_b
    core::Tensor c = core::sub(q.slice(0, 0, 1), q.slice(0, 3, 4));
    core::Tensor s = core::add(q.slice(0, 2, 3), q.slice(0, 1, 2));
    parts.push_back(core::cat({c, s}, 0).reshape({2 * n}));
  }
  // One truncation for every product of this level.
  const int raw_frac = prods.front().frac_bits;
  const int out_frac = a.front().frac_bits;
  const AShare all = rescale(p, {core::cat(parts, 0), raw_frac}, out_frac);
  std::vector<AShare> out;
  int64_t at = 0;
  for (const AShare& z : a) {
    const int64_t len = z.numel();
    out.push_back({all.data.slice(0, at, at + len).contiguous().reshape(z.shape()), out_frac});
    at += len;
  }
  return out;
}

}  // namespace

SinCos sincos(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.defined() && x.frac_bits >= 0 && x.frac_bits <= 40,
             "[sincos] expected a defined share with frac_bits in [0, 40], got {}", x.frac_bits);
  const int f = p.frac_bits();
  const int64_t n = x.numel();
  // C = round(2^(64 - frac) / (2 pi)) from the 64-bit constant (exact integer rounding).
  const int xf = x.frac_bits;
  const uint64_t c = xf == 0 ? kTurn64 : (kTurn64 >> xf) + ((kTurn64 >> (xf - 1)) & 1U);
  // This party's private angle: (cos, sin) of 2 pi int64(x_i C) / 2^64, encoded as [2, n]. It is
  // formed on the party's CPU (a GPU party's own share makes a round trip through its memory), so
  // that the float64 cos/sin, and with them the shares, are the same on every device.
  const core::Tensor xi = x.data.contiguous().reshape({n}).to(core::Device::cpu());
  const uint64_t* px = xi.data<uint64_t>();
  core::Tensor mine = core::Tensor::empty({2, n}, core::DType::kFloat64);
  double* pm = mine.data<double>();
  for (int64_t i = 0; i < n; ++i) {
    const auto turns = static_cast<int64_t>(px[i] * c);  // wraps mod 2^64: one turn
    const double theta = 2.0 * std::numbers::pi * std::ldexp(static_cast<double>(turns), -64);
    pm[i] = std::cos(theta);
    pm[n + i] = std::sin(theta);
  }
  const core::Tensor enc = p.encoder().encode(mine, "sincos").to(x.data.device());
  // Every party's unit complex number as a secret (PRZS input sharing: no communication).
  std::vector<AShare> level;
  for (int src = 0; src < p.world_size(); ++src) {
    level.push_back(share_ring(p, p.rank() == src ? enc : core::Tensor(), src, {2, n}, f));
  }
  while (level.size() > 1) {
    std::vector<AShare> a;
    std::vector<AShare> b;
    for (std::size_t i = 0; i + 1 < level.size(); i += 2) {
      a.push_back(level[i]);
      b.push_back(level[i + 1]);
    }
    std::vector<AShare> next = complex_products(p, a, b);
    if (level.size() % 2 == 1) {
      next.push_back(level.back());
    }
    level = std::move(next);
  }
  const core::Tensor& z = level.front().data;
  return {{z.slice(0, 1, 2).contiguous().reshape(x.shape()), f},
          {z.slice(0, 0, 1).contiguous().reshape(x.shape()), f}};
}

AShare sin(Party& p, const AShare& x) {
  return sincos(p, x).sin;
}

AShare cos(Party& p, const AShare& x) {
  return sincos(p, x).cos;
}

}  // namespace veil::crypto
