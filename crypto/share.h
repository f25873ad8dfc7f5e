#pragma once
// Share types. An AShare is this party's additive share of a secret over Z_2^64:
// x = sum_i x_i mod 2^64, read as a two's complement fixed-point number with `frac_bits`
// fractional bits (0 for integers and bits). A BShare is this party's XOR share: x = xor_i x_i,
// 64 bits per ring word (bit j of every word belongs to bit j of the element).

#include "core/tensor.h"

namespace veil::crypto {

/// Additive share over Z_2^64 of a fixed-point tensor.
struct AShare {
  core::Tensor data;  ///< ring64, this party's share
  int frac_bits = 0;  ///< fixed-point scale of the shared value (2^frac_bits)

  const core::Shape& shape() const { return data.shape(); }
  int64_t numel() const { return data.numel(); }
};

/// XOR share of 64-bit words.
struct BShare {
  core::Tensor data;  ///< ring64, this party's share

  const core::Shape& shape() const { return data.shape(); }
  int64_t numel() const { return data.numel(); }
};

}  // namespace veil::crypto
