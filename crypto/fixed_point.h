#pragma once
// Fixed-point encoding of reals in the ring Z_2^64: x -> round(x * 2^f) mod 2^64, read back as a
// two's complement int64 divided by 2^f. Rounds to nearest (ties away from zero) and decodes
// negative values exactly (unlike CrypTen's truncating encoder and its off-by-one decode).

#include <cstdint>

#include "core/tensor.h"

namespace veil::crypto {

class FixedPointEncoder {
 public:
  /// frac_bits f in [0, 40]; default 16 (resolution 2^-16 ~ 1.5e-5). Throws ValueError otherwise.
  explicit FixedPointEncoder(int frac_bits = 16);

  int frac_bits() const { return frac_bits_; }
  /// 2^f as a ring element.
  uint64_t scale() const { return uint64_t{1} << frac_bits_; }
  /// Largest |x| that encode() accepts: 2^(62 - f). Products of two encodings need
  /// |x * y| < 2^(62 - 2f) before truncation (about 2^30 for f = 16).
  double max_abs() const;

  /// float64/float32 tensor -> ring64 tensor of the same shape. Throws ValueError naming `op` for
  /// a NaN or infinite element, or |x| > max_abs() (message gives the index, never the value of
  /// other elements). Error: |decode(encode(x)) - x| <= 2^-(f+1).
  core::Tensor encode(const core::Tensor& x, const char* op = "encode") const;
  /// ring64 tensor (any strides) -> float64 tensor: int64(v) / 2^f, exact whenever
  /// |int64(v)| < 2^53 (always for encodings of |x| < 2^(53 - f)); otherwise rounded to nearest.
  /// Throws ValueError for another dtype.
  core::Tensor decode(const core::Tensor& v) const;
  uint64_t encode_scalar(double x, const char* op = "encode") const;
  double decode_scalar(uint64_t v) const;

 private:
  int frac_bits_;
};

}  // namespace veil::crypto
