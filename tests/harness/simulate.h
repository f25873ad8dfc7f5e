#pragma once
// Test harness: runs N parties as threads (crypto::launch) with short timeouts, and helpers for
// plaintext references. Party code returns values; assertions happen on the main thread.

#include <cmath>
#include <random>
#include <vector>

#include "core/tensor.h"
#include "crypto/launch.h"

namespace veil::testing {

/// Launch options for tests: `n` parties, the given provider, 5 s timeouts.
crypto::LaunchOptions test_options(int n,
                                   crypto::ProviderKind kind = crypto::ProviderKind::kDealer);

/// Uniform float64 tensor in [lo, hi) from a fixed seed.
core::Tensor uniform(const core::Shape& shape, double lo, double hi, uint64_t seed);

/// max_i |a_i - b_i| for float64 tensors of equal shape.
double max_abs_diff(const core::Tensor& a, const core::Tensor& b);

/// max_i |a_i - b_i| / max(|b_i|, 1) ("mixed" error).
double max_mixed_err(const core::Tensor& a, const core::Tensor& b);

/// One fixed-point unit for f fractional bits: 2^-f.
inline double ulp(int frac_bits = 16) {
  return std::ldexp(1.0, -frac_bits);
}

}  // namespace veil::testing
