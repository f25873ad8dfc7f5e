#pragma once
// Bilinear-op descriptors: the one Beaver code path (crypto/protocols/arithmetic.h) multiplies
// secrets for any op f that is bilinear over Z_2^64 (f(x + x', y) = f(x, y) + f(x', y), same in
// y). The provider makes triples (a, b, f(a, b)) for a descriptor; the protocol applies the same
// descriptor to the opened masks. Elementwise mul (with numpy broadcasting) and 2-D matmul now;
// conv is the next kind.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace veil::crypto {

struct BilinearOp {
  enum class Kind : uint8_t { kMul, kMatmul };
  Kind kind = Kind::kMul;
  core::Shape x_shape;  ///< shape of the left operand
  core::Shape y_shape;  ///< shape of the right operand

  /// Elementwise product x * y with broadcasting. Throws ValueError when shapes do not broadcast.
  static BilinearOp mul(const core::Shape& x, const core::Shape& y);
  /// Matrix product x [m, k] @ y [k, n]. Throws ValueError on a shape mismatch.
  static BilinearOp matmul(const core::Shape& x, const core::Shape& y);

  /// Shape of f(x, y).
  core::Shape out_shape() const;
  /// f(x, y) on ring64 tensors (mod 2^64). x and y may be strided views.
  core::Tensor apply(const core::Tensor& x, const core::Tensor& y) const;
  /// "mul" or "matmul": the op part of protocol tags.
  const char* name() const;
  /// "matmul [128, 784] x [784, 128]".
  std::string str() const;

  /// Compact encoding for requests to the dealer, and its inverse (ProtocolError on bad bytes).
  std::vector<std::byte> serialize() const;
  static BilinearOp deserialize(std::span<const std::byte> bytes);
};

}  // namespace veil::crypto
