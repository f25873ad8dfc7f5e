// Fixed-point encoding: encode(x) = round_half_away(x * 2^f) as int64, stored as its two's
// complement uint64; decode(v) = int64(v) * 2^-f. Validation and rounding share one pass; on the
// rare invalid input a serial rescan finds the lowest bad index so the message is deterministic.

#include "crypto/fixed_point.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/elementwise.h"
#include "core/error.h"

namespace veil::crypto {
namespace {

constexpr int kMinFracBits = 0;
constexpr int kMaxFracBits = 40;

// round(y) with ties away from zero (std::llround semantics) for finite |y| <= 2^62. The cast
// truncates toward zero; y - trunc(y) is exact in binary floating point, so comparing it with
// +-0.5 decides the rounding without the double rounding of "y + 0.5".
inline int64_t round_half_away(double y) {
  const auto t = static_cast<int64_t>(y);
  const double frac = y - static_cast<double>(t);
  return t + static_cast<int64_t>(frac >= 0.5) - static_cast<int64_t>(frac <= -0.5);
}

// Explicit signed -> ring conversion (two's complement, defined since C++20).
inline uint64_t to_ring(int64_t v) {
  return static_cast<uint64_t>(v);
}
inline int64_t from_ring(uint64_t v) {
  return static_cast<int64_t>(v);
}

// Why element x cannot be encoded, "" when it can.
std::string invalid_reason(double x, double max_abs, int frac_bits) {
  if (std::isnan(x)) {
    return "is NaN; expected finite values";
  }
  if (std::isinf(x)) {
    return std::string(x > 0 ? "is +inf" : "is -inf") + "; expected finite values";
  }
  if (!(std::fabs(x) <= max_abs)) {
    return fmt::format("is outside the fixed-point range |x| <= 2^{} ({:.1e}, frac_bits {})",
                       62 - frac_bits, max_abs, frac_bits);
  }
  return {};
}

template <class T>
core::Tensor encode_typed(
    const core::Tensor& x, double scale, double max_abs, int frac_bits, const char* op) {
  std::atomic<bool> bad{false};
  core::Tensor out = core::map<uint64_t, T>(x, [&](T value) -> uint64_t {
    const auto v = static_cast<double>(value);
    if (!(std::fabs(v) <= max_abs)) [[unlikely]] {
      bad.store(true, std::memory_order_relaxed);
      return 0;
    }
    return to_ring(round_half_away(v * scale));
  });
  if (bad.load(std::memory_order_relaxed)) {
    // Report the first invalid element in row-major order (its index, never any value).
    const core::Tensor c = x.contiguous();
    const T* p = c.data<T>();
    for (int64_t i = 0; i < c.numel(); ++i) {
      const std::string why = invalid_reason(static_cast<double>(p[i]), max_abs, frac_bits);
      if (!why.empty()) {
        throw ValueError(fmt::format("[{}] element {} {}", op, i, why));
      }
    }
    throw InternalError(fmt::format("[{}] an invalid element was flagged but not found", op));
  }
  return out;
}

}  // namespace

FixedPointEncoder::FixedPointEncoder(int frac_bits) : frac_bits_(frac_bits) {
  VEIL_CHECK(frac_bits >= kMinFracBits && frac_bits <= kMaxFracBits,
             "[FixedPointEncoder] expected frac_bits in [{}, {}], got {}", kMinFracBits,
             kMaxFracBits, frac_bits);
}

double FixedPointEncoder::max_abs() const {
  return std::ldexp(1.0, 62 - frac_bits_);
}

core::Tensor FixedPointEncoder::encode(const core::Tensor& x, const char* op) const {
  VEIL_CHECK(x.defined(), "[{}] expected a defined tensor", op);
  VEIL_CHECK(x.device() == core::Device::cpu(), "[{}] expected a CPU tensor, got {}", op, x.str());
  const double scale = std::ldexp(1.0, frac_bits_);
  switch (x.dtype()) {
    case core::DType::kFloat64:
      return encode_typed<double>(x, scale, max_abs(), frac_bits_, op);
    case core::DType::kFloat32:
      return encode_typed<float>(x, scale, max_abs(), frac_bits_, op);
    default:
      throw ValueError(fmt::format("[{}] expected a float64 or float32 tensor, got {}", op,
                                   core::dtype_name(x.dtype())));
  }
}

core::Tensor FixedPointEncoder::decode(const core::Tensor& v) const {
  VEIL_CHECK(v.defined(), "[decode] expected a defined tensor");
  VEIL_CHECK(v.dtype() == core::DType::kRing64, "[decode] expected a ring64 tensor, got {}",
             core::dtype_name(v.dtype()));
  VEIL_CHECK(v.device() == core::Device::cpu(), "[decode] expected a CPU tensor, got {}", v.str());
  const double inv_scale = std::ldexp(1.0, -frac_bits_);  // exact power of two
  return core::map<double, uint64_t>(
      v, [inv_scale](uint64_t e) { return static_cast<double>(from_ring(e)) * inv_scale; });
}

uint64_t FixedPointEncoder::encode_scalar(double x, const char* op) const {
  const std::string why = invalid_reason(x, max_abs(), frac_bits_);
  if (!why.empty()) {
    throw ValueError(fmt::format("[{}] the value {}", op, why));
  }
  return to_ring(round_half_away(std::ldexp(x, frac_bits_)));
}

double FixedPointEncoder::decode_scalar(uint64_t v) const {
  return std::ldexp(static_cast<double>(from_ring(v)), -frac_bits_);
}

}  // namespace veil::crypto
