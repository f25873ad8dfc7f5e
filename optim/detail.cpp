#include "optim/detail.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/elementwise.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"

namespace veil::optim::detail {

namespace {

constexpr int kMaxCoefBits = 40;

MpcTensor make(Party& p, bool secret, core::Tensor ring, int frac_bits) {
  return secret ? MpcTensor::from_secret({std::move(ring), frac_bits}, p)
                : MpcTensor::from_public_ring(ring, frac_bits, p);
}

}  // namespace

crypto::AShare share_of(const MpcTensor& x) {
  if (x.is_secret()) {
    return x.ashare();
  }
  Party& p = x.party();
  return {p.rank() == 0 ? x.ring() : core::Tensor::zeros(x.shape(), core::DType::kRing64),
          x.frac_bits()};
}

namespace {

core::Tensor decode(const MpcTensor& x) {
  return crypto::FixedPointEncoder(x.frac_bits()).decode(x.ring()).contiguous();
}

}  // namespace

int coef_frac_bits(double c, int frac_bits) {
  if (c == 0 || !std::isfinite(c)) {
    return frac_bits;
  }
  const int bits = 14 - static_cast<int>(std::floor(std::log2(std::abs(c))));
  return std::clamp(bits, frac_bits, kMaxCoefBits);
}

double coef_value(double c, int frac_bits) {
  const crypto::FixedPointEncoder enc(coef_frac_bits(c, frac_bits));
  return enc.decode_scalar(enc.encode_scalar(c, "mul_coef"));
}

MpcTensor mul_coef(const MpcTensor& x, double c) {
  Party& p = x.party();
  const int f = x.frac_bits();
  const int fc = coef_frac_bits(c, f);
  const uint64_t enc = crypto::FixedPointEncoder(fc).encode_scalar(c, "mul_coef");
  const core::Tensor raw = core::mul_scalar(x.ring(), enc);  // f + fc fractional bits
  if (x.is_secret()) {
    return MpcTensor::from_secret(crypto::truncate(p, {raw, f + fc}, fc), p);
  }
  return MpcTensor::from_public_ring(core::shift_right_arith(raw, fc), f, p);
}

MpcTensor shift_left(const MpcTensor& x, int bits) {
  VEIL_CHECK(bits >= 0 && bits < kMaxCoefBits, "[shift_left] expected 0 <= bits < {}, got {}",
             kMaxCoefBits, bits);
  return make(x.party(), x.is_secret(), core::shift_left(x.ring(), bits), x.frac_bits());
}

MpcTensor flat_cat(const std::vector<MpcTensor>& xs, const char* op) {
  VEIL_CHECK(!xs.empty(), "[{}] expected at least one tensor to concatenate", op);
  bool secret = false;
  for (const MpcTensor& x : xs) {
    VEIL_CHECK(x.defined(), "[{}] expected defined tensors", op);
    VEIL_CHECK(x.frac_bits() == xs.front().frac_bits(),
               "[{}] expected equal frac_bits, got {} and {}", op, xs.front().frac_bits(),
               x.frac_bits());
    VEIL_CHECK(&x.party() == &xs.front().party(), "[{}] the tensors belong to different parties",
               op);
    secret = secret || x.is_secret();
  }
  std::vector<core::Tensor> parts;
  parts.reserve(xs.size());
  for (const MpcTensor& x : xs) {
    const core::Tensor& v = secret ? share_of(x).data : x.ring();
    parts.push_back(v.contiguous().reshape({x.numel()}));
  }
  core::Tensor all = parts.size() == 1 ? parts.front() : core::cat(parts, 0);
  return make(xs.front().party(), secret, std::move(all), xs.front().frac_bits());
}

std::vector<MpcTensor> split(const MpcTensor& flat, const std::vector<core::Shape>& shapes) {
  std::vector<MpcTensor> out;
  out.reserve(shapes.size());
  int64_t offset = 0;
  for (const core::Shape& shape : shapes) {
    int64_t n = 1;
    for (int64_t d : shape) {
      n *= d;
    }
    core::Tensor part = flat.ring().slice(0, offset, offset + n).contiguous().reshape(shape);
    out.push_back(make(flat.party(), flat.is_secret(), std::move(part), flat.frac_bits()));
    offset += n;
  }
  VEIL_INTERNAL_ASSERT(offset == flat.numel(), "[split] sizes do not add up");
  return out;
}

MpcTensor clamp(const MpcTensor& x, double lo, double hi, const char* op) {
  VEIL_CHECK(lo <= hi, "[{}] expected a clamp range lo <= hi, got [{}, {}]", op, lo, hi);
  Party& p = x.party();
  const int f = x.frac_bits();
  const crypto::FixedPointEncoder enc(f);
  const uint64_t lo_enc = enc.encode_scalar(lo, op);
  const uint64_t hi_enc = enc.encode_scalar(hi, op);
  if (x.is_public()) {
    const auto lo_v = static_cast<int64_t>(lo_enc);
    const auto hi_v = static_cast<int64_t>(hi_enc);
    core::Tensor out = core::map<uint64_t, uint64_t>(x.ring().contiguous(), [=](uint64_t e) {
      return static_cast<uint64_t>(std::clamp(static_cast<int64_t>(e), lo_v, hi_v));
    });
    return MpcTensor::from_public_ring(out, f, p);
  }
  const crypto::AShare xs = x.ashare();
  const int64_t n = x.numel();
  const core::Tensor flat = xs.data.contiguous().reshape({n});
  // (x - lo, hi - x) < 0  <=>  x < lo, x > hi
  const crypto::AShare below = crypto::add_public(p, {flat, f}, -lo);
  const crypto::AShare above = crypto::add_public(p, crypto::neg({flat, f}), hi);
  const crypto::AShare diffs{core::cat({below.data, above.data}, 0), f};
  const crypto::AShare zero{core::Tensor::zeros({2 * n}, core::DType::kRing64), f};
  const crypto::AShare bits = crypto::lt(p, diffs, zero);  // [2n] integer
  const crypto::AShare l{bits.data.slice(0, 0, n).contiguous(), 0};
  const crypto::AShare h{bits.data.slice(0, n, 2 * n).contiguous(), 0};
  // x - (l + h) x + lo l + hi h: one Beaver product of an integer and x, no truncation
  const crypto::AShare lhx = crypto::mul(p, crypto::add(l, h), {flat, f});
  core::Tensor out = core::sub(flat, lhx.data);
  core::add_(out, core::mul_scalar(l.data, lo_enc));
  core::add_(out, core::mul_scalar(h.data, hi_enc));
  return MpcTensor::from_secret({out.reshape(x.shape()), f}, p);
}

MpcTensor inv_sqrt(const MpcTensor& x) {
  Party& p = x.party();
  if (x.is_secret()) {
    return MpcTensor::from_secret(crypto::inv_sqrt(p, x.ashare()), p);
  }
  return MpcTensor::from_public(
      core::map<double, double>(decode(x), [](double v) { return 1.0 / std::sqrt(v); }), p);
}

MpcTensor reciprocal(const MpcTensor& x, double lo, double hi) {
  Party& p = x.party();
  if (x.is_secret()) {
    return MpcTensor::from_secret(crypto::reciprocal(p, x.ashare(), std::make_pair(lo, hi)), p);
  }
  return MpcTensor::from_public(
      core::map<double, double>(decode(x), [](double v) { return 1.0 / v; }), p);
}

}  // namespace veil::optim::detail
