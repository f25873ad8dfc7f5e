#pragma once
// Bilinear-op descriptors: the one Beaver code path (crypto/protocols/arithmetic.h) multiplies
// secrets for any op f that is bilinear over Z_2^64 (f(x + x', y) = f(x, y) + f(x', y), same in
// y). The provider makes triples (a, b, f(a, b)) for a descriptor; the protocol applies the same
// descriptor to the opened masks. Elementwise mul (with numpy broadcasting), 2-D matmul and 2-D
// convolution (its masks are the input and kernel themselves, never the im2col matrices), and the
// two gradients of a convolution (input and kernel), so conv backward uses the same Beaver path.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/conv.h"
#include "core/tensor.h"

namespace veil::crypto {

struct BilinearOp {
  /// Wire codes 0..5 in this order.
  enum class Kind : uint8_t {
    kMul,
    kMatmul,
    kConv2d,
    kConv2dInputGrad,
    kConv2dWeightGrad,
    kSquare
  };
  Kind kind = Kind::kMul;
  core::Shape x_shape;        ///< shape of the left operand
  core::Shape y_shape;        ///< shape of the right operand
  core::Conv2dParams conv{};  ///< the three conv kinds only (defaults otherwise)
  /// kConv2dInputGrad: the forward input extents {H, W}; kConv2dWeightGrad: the kernel extents
  /// {kh, kw}; empty for the other kinds.
  core::Shape spatial;

  /// Elementwise product x * y with broadcasting. Throws ValueError when shapes do not broadcast.
  static BilinearOp mul(const core::Shape& x, const core::Shape& y);
  /// Elementwise square x * x (x_shape == y_shape == shape). Its correlation is a square pair
  /// (a, a^2): the triple's b is its a, so the protocol opens only x - a (8(N-1) bytes per element
  /// instead of 16(N-1)) and every party draws one mask instead of two. Source: the square pairs
  /// of SPDZ-style preprocessing (Damgard et al., CRYPTO 2012, §2).
  static BilinearOp square(const core::Shape& shape);
  /// Matrix product x [m, k] @ y [k, n]. Throws ValueError on a shape mismatch.
  static BilinearOp matmul(const core::Shape& x, const core::Shape& y);

  /// 2-D convolution x [N, C_in, H, W] (*) w [C_out, C_in/groups, kh, kw] -> [N, C_out, H', W']
  /// (core/conv.h). Throws ValueError "[conv2d] ..." naming expected and got shapes.
  static BilinearOp conv2d(const core::Shape& x,
                           const core::Shape& w,
                           const core::Conv2dParams& params);

  /// Input gradient of a 2-D convolution: dy [N, C_out, H', W'] and w [C_out, C_in/groups, kh, kw]
  /// -> dx [N, C_in, H, W] with input_hw = {H, W} (core::conv2d_input_grad). Throws ValueError
  /// "[conv2d_input_grad] ..." on a shape or parameter mismatch.
  static BilinearOp conv2d_input_grad(const core::Shape& dy,
                                      const core::Shape& w,
                                      const core::Conv2dParams& params,
                                      const core::Shape& input_hw);
  /// Kernel gradient of a 2-D convolution: x [N, C_in, H, W] and dy [N, C_out, H', W'] ->
  /// dw [C_out, C_in/groups, kh, kw] with kernel_hw = {kh, kw} (core::conv2d_weight_grad). Throws
  /// ValueError "[conv2d_weight_grad] ..." on a shape or parameter mismatch.
  static BilinearOp conv2d_weight_grad(const core::Shape& x,
                                       const core::Shape& dy,
                                       const core::Conv2dParams& params,
                                       const core::Shape& kernel_hw);

  /// Shape of f(x, y).
  core::Shape out_shape() const;
  /// f(x, y) on ring64 tensors (mod 2^64). x and y may be strided views.
  core::Tensor apply(const core::Tensor& x, const core::Tensor& y) const;
  /// True for kSquare: the operands are one value, and its triple has b == a.
  bool is_square() const { return kind == Kind::kSquare; }
  /// True for the elementwise products of equal shapes (kMul without broadcasting, kSquare),
  /// which the fused elementwise paths serve.
  bool is_elementwise() const {
    return kind == Kind::kSquare || (kind == Kind::kMul && x_shape == y_shape);
  }
  /// "mul", "matmul", "conv2d", "conv2d_input_grad", "conv2d_weight_grad" or "square": the op
  /// part of protocol tags.
  const char* name() const;
  /// "matmul [128, 784] x [784, 128]".
  std::string str() const;

  /// Compact encoding for requests to the dealer, and its inverse (ProtocolError on bad bytes):
  /// u64 kind, x_shape, y_shape, and for kConv2d seven u64 params (stride_h, stride_w, pad_h,
  /// pad_w, dilation_h, dilation_w, groups) appended; kConv2dInputGrad (kind 3) and
  /// kConv2dWeightGrad (kind 4) append the same seven params and then the two u64 of `spatial`;
  /// mul, matmul and square (kind 5) carry no params.
  std::vector<std::byte> serialize() const;
  static BilinearOp deserialize(std::span<const std::byte> bytes);
};

}  // namespace veil::crypto
