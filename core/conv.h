#pragma once
// Plaintext 2-D convolution and window extraction (im2col) for float64 and ring64 tensors.
//
// conv2d(x, w)[n, o, i, j] = sum_{c, u, v} x_pad[n, g*Cg + c, i*sh + u*dh, j*sw + v*dw]
//                                          * w[o, c, u, v],    g = o / (C_out / groups)
// with x_pad the input padded by pad_h / pad_w zeros on each side. Computed as im2col (one
// [Cg*kh*kw, N*H'*W'] column matrix per group) followed by core::matmul, so ring64 results are
// exact mod 2^64 and float64 results are the plaintext twin of the ring computation.
// Output extents: H' = (H + 2 pad_h - dh (kh - 1) - 1) / sh + 1 (same for W').
//
// Devices (both operands on one device): on CUDA, conv2d and its kernel gradient are im2col (a
// strided view of the zero-padded input, gathered on the device) and one GEMM per group through
// core::matmul (ring64: the tensor-core ring GEMM); the input gradient's GEMMs run on the device
// and its col2im scatter-add on the host. conv1d and conv_transpose2d follow. The pooling window
// tables (extract/fold/gather/scatter windows) make a round trip through host memory.
//
// Built on it: conv1d (conv2d with H = 1), conv_transpose2d (the input gradient of a conv2d,
// PyTorch's ConvTranspose2d), and pooling window tables (regular windows with padding, dilation
// and non-square kernels, and PyTorch's adaptive windows) with a gather and its adjoint scatter.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

// ---- 1-D convolution ------------------------------------------------------------------------

/// Hyper-parameters of a 1-D convolution (PyTorch's Conv1d semantics, zero padding).
struct Conv1dParams {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t groups = 1;

  bool operator==(const Conv1dParams&) const = default;
  /// The same convolution on [N, C, 1, L] maps: stride, padding and dilation along W, 1 along H.
  Conv2dParams as_2d() const;
};

/// Output shape of conv1d: x [N, C_in, L], w [C_out, C_in/groups, k] -> [N, C_out, L'],
/// L' = (L + 2 padding - dilation (k - 1) - 1) / stride + 1. Throws ValueError "[conv1d] ..."
/// naming both shapes when a rank is not 3, groups does not divide C_in and C_out, w[1] is not
/// C_in/groups, a stride/dilation/groups is < 1 or the padding < 0, or the dilated kernel is
/// longer than the padded input.
Shape conv1d_out_shape(const Shape& x, const Shape& w, const Conv1dParams& p);

/// 1-D convolution (cross-correlation, PyTorch Conv1d without bias) of x [N, C_in, L] with
/// w [C_out, C_in/groups, k] -> [N, C_out, L']: conv2d on x viewed as [N, C_in, 1, L] and w as
/// [C_out, C_in/groups, 1, k]. float64 or ring64 (exact mod 2^64), equal dtypes. Errors: as
/// conv1d_out_shape, and ValueError on a dtype mismatch.
Tensor conv1d(const Tensor& x, const Tensor& w, const Conv1dParams& p);

// ---- transposed 2-D convolution -------------------------------------------------------------

/// Hyper-parameters of a transposed 2-D convolution (PyTorch's ConvTranspose2d semantics).
/// `pad_*` removes that many rows/columns from each side of the full output; `output_pad_*` adds
/// rows/columns at the bottom/right (PyTorch requires output_pad < max(stride, dilation)).
struct ConvTranspose2dParams {
  int64_t stride_h = 1;
  int64_t stride_w = 1;
  int64_t pad_h = 0;
  int64_t pad_w = 0;
  int64_t output_pad_h = 0;
  int64_t output_pad_w = 0;
  int64_t dilation_h = 1;
  int64_t dilation_w = 1;
  int64_t groups = 1;

  bool operator==(const ConvTranspose2dParams&) const = default;
  /// The forward convolution whose input gradient this transposed convolution is (same stride,
  /// padding, dilation and groups).
  Conv2dParams conv() const;
};

/// "stride 2x2, pad 1x1, output_pad 1x1, dilation 1x1, groups 1" for messages.
std::string conv_transpose2d_params_str(const ConvTranspose2dParams& p);

/// Output shape of conv_transpose2d: x [N, C_in, H, W], w [C_in, C_out/groups, kh, kw] ->
/// [N, C_out, H_o, W_o], H_o = (H - 1) stride_h - 2 pad_h + dilation_h (kh - 1) + output_pad_h + 1
/// (same for W_o). Throws ValueError "[conv_transpose2d] ..." naming both shapes when a rank is
/// not 4, groups does not divide C_in (= w[0]), a stride/dilation/groups is < 1, a pad or output
/// pad is < 0, an output pad is not smaller than its stride or its dilation, or an output extent
/// is < 1.
Shape conv_transpose2d_out_shape(const Shape& x, const Shape& w, const ConvTranspose2dParams& p);

/// The shape x is zero-extended to (rows/columns appended at the bottom/right) so that it is
/// exactly the output shape of the forward convolution p.conv() on [N, C_out, H_o, W_o]: x's own
/// shape unless an output pad is >= its stride (possible when the dilation is larger), where the
/// forward convolution covers floor(output_pad / stride) more rows. Errors: as
/// conv_transpose2d_out_shape.
Shape conv_transpose2d_input_shape(const Shape& x, const Shape& w, const ConvTranspose2dParams& p);

/// Transposed 2-D convolution (PyTorch ConvTranspose2d without bias): x [N, C_in, H, W],
/// w [C_in, C_out/groups, kh, kw] -> [N, C_out, H_o, W_o]; with C_ig = C_in / groups and
/// C_og = C_out / groups, every input element scatters its products into the output:
///   y[n, g C_og + o, i s_h - p_h + u d_h, j s_w - p_w + v d_w]
///       += x[n, g C_ig + c, i, j] * w[g C_ig + c, o, u, v]   (in-range output positions only).
/// Computed as conv2d_input_grad(x zero-extended to conv_transpose2d_input_shape, w, p.conv(),
/// {H_o, W_o}), so float64 and ring64 (exact mod 2^64) share the conv2d code. Errors: as
/// conv_transpose2d_out_shape, and ValueError on a dtype mismatch.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const ConvTranspose2dParams& p);

/// x [N, C, H, W] -> [N, C, h, w] with h >= H, w >= W: x in the top-left corner, zeros appended at
/// the bottom and right (a copy; x itself when the extents are equal). float64, int64 or ring64.
/// Throws ValueError "[op] ..." for a rank other than 4, a smaller extent or another dtype.
Tensor zero_extend_hw(const Tensor& x, int64_t h, int64_t w, const char* op = "zero_extend_hw");

// ---- pooling windows ------------------------------------------------------------------------

/// Hyper-parameters of a 2-D pooling window (PyTorch's MaxPool2d / AvgPool2d semantics, floor
/// mode only). count_include_pad is used by average pooling only: true divides every window sum
/// by kernel_h kernel_w (padding counted as zeros, PyTorch's default), false by the number of
/// window positions inside the input.
struct Pool2dParams {
  int64_t kernel_h = 1;
  int64_t kernel_w = 1;
  int64_t stride_h = 1;
  int64_t stride_w = 1;
  int64_t pad_h = 0;
  int64_t pad_w = 0;
  int64_t dilation_h = 1;
  int64_t dilation_w = 1;
  bool count_include_pad = true;

  bool operator==(const Pool2dParams&) const = default;
  /// A square kernel x kernel window, stride defaulting to kernel (PyTorch), padding on all sides.
  static Pool2dParams square(int64_t kernel,
                             std::optional<int64_t> stride = std::nullopt,
                             int64_t padding = 0);
};

/// "kernel 3x3, stride 2x2, pad 1x1, dilation 1x1" for messages.
std::string pool2d_params_str(const Pool2dParams& p);

/// What a window position outside the input holds in gather_windows.
enum class WindowFill {
  kZero,    ///< zero (average pooling: padding counted as zeros)
  kRepeat,  ///< a copy of the first input element of the same window (max pooling: padding never
            ///< changes the maximum, and its gradient goes to that element)
};

/// The windows of a pooling over [H, W] planes, the same for every (n, c): window o (row-major
/// over [out_h, out_w]) reads the k in-plane offsets index[o k .. o k + k - 1] (y W + x, or -1 for
/// a zero). divisor[o] is the count average pooling divides window o by.
struct WindowTable {
  int64_t in_h = 0;
  int64_t in_w = 0;
  int64_t out_h = 0;
  int64_t out_w = 0;
  int64_t k = 0;
  std::vector<int64_t> index;
  std::vector<int64_t> divisor;
};

/// Windows of a 2-D pooling with params p on [h, w] planes: out_h = (h + 2 pad_h - dilation_h
/// (kernel_h - 1) - 1) / stride_h + 1 (same for w), k = kernel_h kernel_w, entries in row-major
/// (u, v) order; divisor = kernel_h kernel_w when p.count_include_pad, else the in-input count.
/// Throws ValueError "[op] ..." when a kernel/stride/dilation is < 1, a pad is < 0 or larger than
/// half its kernel (PyTorch's limit), the dilated window does not fit in the padded input, or
/// (kRepeat) a window holds no input element.
WindowTable pool2d_windows(
    int64_t h, int64_t w, const Pool2dParams& p, WindowFill fill, const char* op = "pool2d");

/// Windows of adaptive pooling from [h, w] to [out_h, out_w] (PyTorch's rule): output row i reads
/// input rows [floor(i h / out_h), ceil((i + 1) h / out_h)), columns likewise (windows may
/// differ in size and overlap); k = the largest window's size, smaller windows are completed per
/// `fill`; divisor = the window's own size. Throws ValueError "[op] ..." when an extent is < 1.
WindowTable adaptive_pool2d_windows(
    int64_t h, int64_t w, int64_t out_h, int64_t out_w, WindowFill fill, const char* op);

/// x [N, C, H, W] -> [N, C, out_h, out_w, k]: every window's entries per the table (zero where the
/// index is -1). float64, int64 or ring64, any strides. Throws ValueError "[op] ..." when x is not
/// 4-D or its spatial extents are not the table's.
Tensor gather_windows(const Tensor& x, const WindowTable& t, const char* op = "pool2d");

/// The adjoint of gather_windows: win [N, C, out_h, out_w, k] -> [N, C, in_h, in_w], every entry
/// added to the input position it was read from (entries with index -1 dropped). float64, int64
/// or ring64 (wrapping). Throws ValueError "[op] ..." on a shape that is not the table's.
Tensor scatter_windows(const Tensor& win, const WindowTable& t, const char* op = "pool2d");

}  // namespace veil::core
