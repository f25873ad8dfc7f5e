#pragma once
// Plaintext 2-D convolution and window extraction (im2col) for float64 and ring64 tensors.
//
// conv2d(x, w)[n, o, i, j] = sum_{c, u, v} x_pad[n, g*Cg + c, i*sh + u*dh, j*sw + v*dw]
//                                          * w[o, c, u, v],    g = o / (C_out / groups)
// with x_pad the input padded by pad_h / pad_w zeros on each side. Computed as im2col (one
// [Cg*kh*kw, N*H'*W'] column matrix per group) followed by core::matmul, so ring64 results are
// exact mod 2^64 and float64 results are the plaintext twin of the ring computation.
// Output extents: H' = (H + 2 pad_h - dh (kh - 1) - 1) / sh + 1 (same for W').

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace veil::core {

/// Hyper-parameters of a 2-D convolution (PyTorch's Conv2d semantics, zero padding).
struct Conv2dParams {
  int64_t stride_h = 1;
  int64_t stride_w = 1;
  int64_t pad_h = 0;
  int64_t pad_w = 0;
  int64_t dilation_h = 1;
  int64_t dilation_w = 1;
  int64_t groups = 1;

  bool operator==(const Conv2dParams&) const = default;
};

/// "stride 2x2, pad 1x1, dilation 1x1, groups 1" for messages.
std::string conv2d_params_str(const Conv2dParams& p);

/// Output shape of conv2d. x: [N, C_in, H, W], w: [C_out, C_in/groups, kh, kw]
/// -> [N, C_out, H', W']. Throws ValueError "[conv2d] ..." naming expected and got shapes when
/// ranks differ from 4, groups does not divide C_in and C_out, w's channel extent is not
/// C_in/groups, a stride/dilation/groups is < 1 or a pad < 0, or the dilated kernel is larger
/// than the padded input.
Shape conv2d_out_shape(const Shape& x, const Shape& w, const Conv2dParams& p);

/// 2-D convolution (cross-correlation, as in PyTorch) of x: [N, C_in, H, W] with
/// w: [C_out, C_in/groups, kh, kw] -> [N, C_out, H', W']. dtypes: float64 or ring64 (mod 2^64),
/// equal for both; any strides. Errors: as conv2d_out_shape, and ValueError on a dtype mismatch.
Tensor conv2d(const Tensor& x, const Tensor& w, const Conv2dParams& p);

/// Output shape of conv2d_input_grad: dy [N, C_out, H', W'] and w [C_out, C_in/groups, kh, kw]
/// with the forward input extents input_hw = {H, W} -> [N, C_in, H, W], C_in = w[1] * groups.
/// Throws ValueError "[conv2d_input_grad] ..." when the ranks are not 4, input_hw is not two
/// positive extents, or conv2d_out_shape([N, C_in, H, W], w, p) (checked as for conv2d) is not dy's
/// shape.
Shape conv2d_input_grad_shape(const Shape& dy,
                              const Shape& w,
                              const Conv2dParams& p,
                              const Shape& input_hw);

/// Output shape of conv2d_weight_grad: x [N, C_in, H, W] and dy [N, C_out, H', W'] with the
/// kernel extents kernel_hw = {kh, kw} -> [C_out, C_in/groups, kh, kw]. Throws ValueError
/// "[conv2d_weight_grad] ..." when the ranks are not 4, kernel_hw is not two positive extents,
/// groups does not divide C_in and C_out, or conv2d_out_shape(x, [C_out, C_in/groups, kh, kw], p)
/// is not dy's shape.
Shape conv2d_weight_grad_shape(const Shape& x,
                               const Shape& dy,
                               const Conv2dParams& p,
                               const Shape& kernel_hw);

/// Gradient of conv2d with respect to its input (the adjoint of x -> conv2d(x, w) for fixed w):
/// dy [N, C_out, H', W'], w [C_out, C_in/groups, kh, kw] -> dx [N, C_in, H, W] with
/// input_hw = {H, W}. Per group: cols = w_g^T [Cg kh kw, C_out/groups] @ dY_g [C_out/groups,
/// N H' W'] (core::matmul), then col2im scatter-adds every column entry to the input position it
/// was read from (padding positions are dropped). Bilinear in (dy, w); ring64 results are exact
/// mod 2^64. dtypes: float64 or ring64, equal for both; any strides. Errors: as
/// conv2d_input_grad_shape, and ValueError on a dtype mismatch.
Tensor conv2d_input_grad(const Tensor& dy,
                         const Tensor& w,
                         const Conv2dParams& p,
                         const Shape& input_hw);

/// Gradient of conv2d with respect to its kernel: x [N, C_in, H, W], dy [N, C_out, H', W'] ->
/// dw [C_out, C_in/groups, kh, kw] with kernel_hw = {kh, kw}. Per group: dw_g = dY_g
/// [C_out/groups, N H' W'] @ X_cols_g^T [N H' W', Cg kh kw] (im2col as conv2d, core::matmul).
/// Bilinear in (x, dy); ring64 exact mod 2^64. dtypes: float64 or ring64, equal; any strides.
/// Errors: as conv2d_weight_grad_shape, and ValueError on a dtype mismatch.
Tensor conv2d_weight_grad(const Tensor& x,
                          const Tensor& dy,
                          const Conv2dParams& p,
                          const Shape& kernel_hw);

/// The adjoint of extract_windows: win [N, C, H', W', kh*kw] -> [N, C, H, W] with
/// input_hw = {H, W}; every window element is added to the input position it was read from
/// (overlapping windows accumulate, padding positions are dropped). float64, int64 or ring64
/// (wrapping). Throws ValueError "[op] ..." when win's shape is not the windows shape of
/// [N, C, H, W] for (kh, kw, p).
Tensor fold_windows(const Tensor& win,
                    const Shape& input_hw,
                    int64_t kh,
                    int64_t kw,
                    const Conv2dParams& p,
                    const char* op = "pool2d");

/// Sliding windows of a 2-D map: x: [N, C, H, W] -> [N, C, H', W', kh*kw] (window elements in
/// row-major (u, v) order, padding positions are zero), with H', W' as for conv2d (p.groups is
/// ignored). Any 8-byte dtype. Throws ValueError "[op] ..." for a bad rank, parameter or a window
/// larger than the padded input.
Tensor extract_windows(
    const Tensor& x, int64_t kh, int64_t kw, const Conv2dParams& p, const char* op = "pool2d");

}  // namespace veil::core
