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

/// Sliding windows of a 2-D map: x: [N, C, H, W] -> [N, C, H', W', kh*kw] (window elements in
/// row-major (u, v) order, padding positions are zero), with H', W' as for conv2d (p.groups is
/// ignored). Any 8-byte dtype. Throws ValueError "[op] ..." for a bad rank, parameter or a window
/// larger than the padded input.
Tensor extract_windows(
    const Tensor& x, int64_t kh, int64_t kw, const Conv2dParams& p, const char* op = "pool2d");

}  // namespace veil::core
