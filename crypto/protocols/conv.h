#pragma once
// Convolutions and pooling on arithmetic shares.
//
//   conv2d (both secret): one Beaver triple for the bilinear op f = conv2d (crypto/bilinear.h):
//       open e = x - a, d = w - b in one round; z_i = c_i + f(e, b_i + [i = 0] d) + f(a_i, d),
//       then rescale by frac_bits. The opened masks are the input and kernel themselves, not the
//       im2col matrices: 8(N-1)(|x| + |w|) bytes instead of 8(N-1)(C_in kh kw H' W' N + |w|).
//   conv1d: conv2d on [N, C, 1, L] and [C_out, C_in/groups, 1, k] (the same opened elements).
//   conv_transpose2d: f = conv2d_input_grad (BilinearOp kind kConv2dInputGrad), the adjoint of a
//       conv2d in its input: y = T(x, w) with <T(x, w), g> = <x, conv2d(g, w)>. One Beaver triple
//       on (x, w) as above; x is zero-extended only when an output pad reaches its stride.
//   conv2d_public_weight: z_i = f(x_i, encode(w)) locally, then one truncation.
//   pooling over a window table (core::WindowTable, public: built from shapes only):
//       windows gathered locally into [..., k]; average: s = sum of the window, z = s * encode(1/d)
//       with the window's public divisor d (one truncation); max: crypto::max_lastdim over k (4
//       rounds for k = 2, 5-6 for k <= 16, see nonlinear.h). Positions outside the input are zeros
//       (average) or copies of an input element of the same window (max: padding never wins).
//   adaptive pooling: the same with PyTorch's adaptive windows
//       [floor(i H / oh), ceil((i + 1) H / oh)) (and likewise along W).
//
// Costs per party, N parties (8 bytes per ring element; "trunc" is 0 rounds / 0 B for N = 2 and
// 1 round / 8|out| B from each party except P0 for N > 2, see arithmetic.h):
//   conv2d, conv1d, conv_transpose2d:  1 round, 8(N-1)(|x| + |w|) B + trunc
//                                      (+ dealer: P0 receives 8|out| B)
//   conv2d_public_weight:              trunc only
//   avg_pool2d, adaptive_avg_pool2d:   trunc only
//   max_pool2d, adaptive_max_pool2d:   max_lastdim over the k window elements (rounds and
//                                      bytes as stated in nonlinear.h: 5 rounds for 2x2, 6 for
//                                      3x3), nothing else
// Security: semi-honest, dealer non-colluding; shapes and hyper-parameters are public.
// Source: Beaver (CRYPTO'91); MPC_REFERENCE §2 (conv2d opens masked input and kernel); CrypTen
// (Knott et al. 2021) for the semantics; PyTorch's documentation of ConvTranspose2d and
// AdaptiveAvgPool2d for the shapes and the adaptive window rule.

#include <cstdint>

#include "core/conv.h"
#include "core/tensor.h"
#include "crypto/party.h"
#include "crypto/protocols/nonlinear.h"
#include "crypto/share.h"

namespace veil::crypto {

/// Secret 2-D convolution (PyTorch Conv2d semantics, zero padding, no bias).
/// Shapes: x [N, C_in, H, W], w [C_out, C_in/groups, kh, kw] -> [N, C_out, H', W'].
/// Encoding: secret in and out; result rescaled to max(x.frac_bits, w.frac_bits).
/// Cost: 1 round, 8(N-1)(|x| + |w|) bytes (+ 1 round, 8|out| bytes from parties != 0 for N > 2).
/// Accuracy: the fixed-point error of each product term adds up over the reduction length
/// K = C_in/groups * kh * kw: |err| <~ K * max|x|, max|w| * 2^-f + 1 ulp.
/// Errors: ValueError "[conv2d] ..." for shape or parameter mismatches (core::conv2d_out_shape).
AShare conv2d(Party& p, const AShare& x, const AShare& w, const core::Conv2dParams& params);

/// 2-D convolution of a secret x with a public float64 kernel w_float (encoded with
/// p.frac_bits()). Shapes as conv2d. Result rescaled to max(x.frac_bits, p.frac_bits()).
/// Cost: one truncation (0 rounds for N = 2). Errors: as conv2d, and ValueError for a non-float
/// kernel or one outside the fixed-point range.
AShare conv2d_public_weight(Party& p,
                            const AShare& x,
                            const core::Tensor& w_float,
                            const core::Conv2dParams& params);

/// Average pooling with a square k x k window, zero padding counted in the divisor
/// (count_include_pad). x [N, C, H, W] -> [N, C, H', W'], H' = (H + 2 padding - k) / stride + 1.
/// Cost: one truncation (0 rounds for N = 2). Accuracy: 1/k^2 is encoded with frac_bits, so the
/// relative error of the divisor is <= 2^-(f+1) k^2, plus 1 ulp of truncation.
/// Errors: ValueError "[avg_pool2d] ..." for a bad rank, kernel/stride < 1, padding < 0 or a
/// window larger than the padded input.
AShare avg_pool2d(Party& p, const AShare& x, int64_t kernel, int64_t stride, int64_t padding = 0);

/// Max pooling with a square k x k window, no padding. x [N, C, H, W] -> [N, C, H', W'].
/// Exact (no truncation). Cost: crypto::max_lastdim over the k^2 window elements (5 rounds
/// for 2x2, 6 for 3x3 with N = 2; see nonlinear.h). Errors: ValueError "[max_pool2d] ..." as for
/// avg_pool2d.
AShare max_pool2d(Party& p, const AShare& x, int64_t kernel, int64_t stride);

/// Secret 1-D convolution (PyTorch Conv1d semantics, zero padding, no bias): x [N, C_in, L],
/// w [C_out, C_in/groups, k] -> [N, C_out, L'] (core::conv1d_out_shape). Secret in and out,
/// rescaled to max(x.frac_bits, w.frac_bits). Cost: as conv2d: 1 round, 8(N-1)(|x| + |w|) bytes
/// + one truncation. Accuracy: as conv2d with K = C_in/groups k. Errors: ValueError
/// "[conv1d] ..." for shape or parameter mismatches.
AShare conv1d(Party& p, const AShare& x, const AShare& w, const core::Conv1dParams& params);

/// Secret transposed 2-D convolution (PyTorch ConvTranspose2d semantics, no bias): x
/// [N, C_in, H, W], w [C_in, C_out/groups, kh, kw] -> [N, C_out, H_o, W_o]
/// (core::conv_transpose2d_out_shape), as the Beaver bilinear op conv2d_input_grad with the forward
/// convolution params.conv(). Secret in and out, rescaled to max(x.frac_bits, w.frac_bits).
/// Cost: 1 round, 8(N-1)(|x'| + |w|) bytes + one truncation of |out| elements, where x' = x
/// (x zero-extended to core::conv_transpose2d_input_shape when an output pad is >= its stride).
/// Accuracy: each output sums at most K = C_in/groups ceil(kh/s_h) ceil(kw/s_w) products:
/// |err| <~ K (max|x| + max|w|) 2^-(f+1) + 1 ulp. Errors: ValueError "[conv_transpose2d] ...".
AShare conv_transpose2d(Party& p,
                        const AShare& x,
                        const AShare& w,
                        const core::ConvTranspose2dParams& params);

/// Window sums of x [N, C, H, W] per the table times the public 1/divisor of each window:
/// -> [N, C, out_h, out_w], frac_bits max(x.frac_bits, p.frac_bits()). Cost: one truncation.
/// Accuracy: 1/d is encoded with f bits (error <= 2^-(f+1)), so |err| <= d max|x| 2^-(f+1) + 1 ulp.
/// Errors: ValueError "[op] ..." when x's shape is not the table's.
AShare window_avg(Party& p, const AShare& x, const core::WindowTable& t, const char* op = "pool2d");

/// Maximum of every window of x [N, C, H, W] per the table -> values [N, C, out_h, out_w]
/// (x.frac_bits) and the secret integer position in [0, t.k) of a maximum inside its window
/// (frac_bits 0). Exact. Cost: max_lastdim over t.k elements. Errors: as window_avg.
MaxResult window_max(Party& p,
                     const AShare& x,
                     const core::WindowTable& t,
                     const char* op = "pool2d");

/// Average pooling with core::Pool2dParams (non-square kernels, strides, zero padding with
/// count_include_pad as documented there, dilation). x [N, C, H, W] -> [N, C, H', W'].
/// Cost: one truncation (0 rounds for N = 2). Accuracy: as window_avg with d = kh kw (or the
/// in-input count). Errors: ValueError "[avg_pool2d] ..." (core::pool2d_windows).
AShare avg_pool2d(Party& p, const AShare& x, const core::Pool2dParams& params);

/// Max pooling with core::Pool2dParams; padded positions never win (they repeat an input element
/// of their window). Exact. Cost: max_lastdim over kh kw elements (see nonlinear.h). Errors:
/// ValueError "[max_pool2d] ..." (core::pool2d_windows).
AShare max_pool2d(Party& p, const AShare& x, const core::Pool2dParams& params);

/// Adaptive average pooling to output_hw = {oh, ow}: window (i, j) covers rows
/// [floor(i H / oh), ceil((i + 1) H / oh)) and columns likewise, and its sum is multiplied by the
/// public 1/size of that window. {1, 1} is global average pooling. x [N, C, H, W] ->
/// [N, C, oh, ow]. Cost: one truncation. Accuracy: as window_avg. Errors: ValueError
/// "[adaptive_avg_pool2d] ..." for a rank other than 4 or extents < 1.
AShare adaptive_avg_pool2d(Party& p, const AShare& x, const core::Shape& output_hw);

/// Adaptive max pooling to output_hw = {oh, ow} with the windows of adaptive_avg_pool2d. Exact.
/// Cost: max_lastdim over the largest window's k elements. Errors: ValueError
/// "[adaptive_max_pool2d] ...".
AShare adaptive_max_pool2d(Party& p, const AShare& x, const core::Shape& output_hw);

}  // namespace veil::crypto
