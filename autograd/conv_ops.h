#pragma once
// Differentiable convolutions beyond conv2d, and general and adaptive pooling, on MpcTensor
// (namespace veil). conv2d and the square, unpadded max_pool2d / avg_pool2d live in
// autograd/functions.h; the ops here reuse the same Beaver bilinear path (crypto/bilinear.h) and
// the pooling protocols of crypto/protocols/conv.h.
//
// Visibility as in autograd/functions.h: public ∘ public is plain ring arithmetic with an
// arithmetic shift (bit-exact fixed point), one public operand costs a local product and one
// truncation, secret ∘ secret one Beaver triple and one truncation. The result is secret when any
// operand is secret.
//
// Costs are per party, N parties, 8-byte ring elements; "trunc" is a truncation of the result:
// 0 rounds for N = 2, 1 round and 8 bytes per element from every party except P0 for N > 2.
//
// Errors: ValueError "[op] ..." naming the op, the shapes and the parameters; operands of
// different parties or undefined operands.

#include "autograd/mpc_tensor.h"
#include "core/conv.h"
#include "core/tensor.h"

namespace veil {

/// 1-D convolution (PyTorch Conv1d semantics, zero padding, no bias):
/// x [N, C_in, L] (*) w [C_out, C_in/groups, k] -> [N, C_out, L'],
/// L' = (L + 2 padding - dilation (k - 1) - 1) / stride + 1; frac_bits max(f_x, f_w).
/// Computed as veil::conv2d on x viewed as [N, C_in, 1, L] and w as [C_out, C_in/groups, 1, k]
/// (views are local), so cost, accuracy and backward are conv2d's: secret (*) secret 1 round,
/// 8(N-1)(|x| + |w|) bytes + trunc; backward dx 1 round, 8(N-1)(|g| + |w|) bytes + trunc, dw 1
/// round, 8(N-1)(|x| + |g|) bytes + trunc. Accuracy: |err| <~ K (max|x| + max|w|) 2^-17 + 1 ulp
/// with K = C_in/groups k.
/// Errors: ValueError "[conv1d] ..." for ranks != 3, channel mismatches, bad parameters or a
/// kernel longer than the padded input; operands of different parties.
MpcTensor conv1d(const MpcTensor& x, const MpcTensor& w, const core::Conv1dParams& params = {});

/// Transposed 2-D convolution (PyTorch ConvTranspose2d semantics, no bias):
/// x [N, C_in, H, W] (*)^T w [C_in, C_out/groups, kh, kw] -> [N, C_out, H_o, W_o],
/// H_o = (H - 1) stride - 2 pad + dilation (kh - 1) + output_pad + 1 (core/conv.h);
/// frac_bits max(f_x, f_w). It is the input gradient of conv2d with params.conv(): the Beaver
/// bilinear op BilinearOp::conv2d_input_grad on (x, w), opening the masked input and kernel.
/// Cost: secret (*) secret 1 round, 8(N-1)(|x| + |w|) bytes + trunc of |out| elements (x is
/// zero-extended first in the rare case output_pad >= stride, see
/// core::conv_transpose2d_input_shape); one public operand: trunc only.
/// Backward (g [N, C_out, H_o, W_o]): dx = conv2d(g, w, params.conv()) [N, C_in, H, W] and
/// dw = conv2d_weight_grad(g, x) [C_in, C_out/groups, kh, kw] (the forward conv's weight gradient
/// with the roles of input and output swapped). When both are needed and every operand is
/// secret, the two Beaver products share one round: 1 round, 8(N-1)(2|g| + |w| + |x|) bytes +
/// trunc of |x| + |w| elements; otherwise each is 1 round (or local) + trunc.
/// Accuracy: each output sums at most K = C_in/groups ceil(kh/stride_h) ceil(kw/stride_w)
/// products: |err| <~ K (max|x| + max|w|) 2^-17 + 1 ulp.
/// Errors: ValueError "[conv_transpose2d] ..." for ranks != 4, w[0] != C_in, groups not dividing
/// C_in, bad parameters, an output pad not smaller than its stride or dilation, or an empty output.
MpcTensor conv_transpose2d(const MpcTensor& x,
                           const MpcTensor& w,
                           const core::ConvTranspose2dParams& params = {});

/// Max pooling with core::Pool2dParams (non-square kernels and strides, padding, dilation; floor
/// mode): x [N, C, H, W] -> [N, C, H', W'], H' = (H + 2 pad_h - dilation_h (kernel_h - 1) - 1) /
/// stride_h + 1. Padded positions never win: they hold a copy of an input element of their
/// window (core::WindowFill::kRepeat). Exact (no truncation).
/// Secret: windows gathered locally, crypto::max_lastdim over k = kernel_h kernel_w (5 rounds
/// for 2x2, 6 for 3x3 with N = 2, see crypto/protocols/nonlinear.h), which also yields the secret
/// in-window argmax; only when x requires grad and grad mode is on, its one-hot over the k window
/// positions is computed with crypto::eq against the public positions (one comparison on 2 |out| k
/// elements) and saved, so inference pays for the maximum alone.
/// Public: plain ring comparison (first maximum on ties).
/// Backward: dx = scatter(g spread over each window * one-hot) (core::scatter_windows): one Beaver
/// mul with the integer one-hot, no truncation (1 round, 16(N-1) |out| k bytes when g is secret;
/// local when g is public), then a local scatter-add.
/// Errors: ValueError "[max_pool2d] ..." for a rank other than 4, a kernel/stride/dilation < 1, a
/// pad < 0 or above half its kernel, or a window larger than the padded input.
MpcTensor max_pool2d(const MpcTensor& x, const core::Pool2dParams& params);

/// Average pooling with core::Pool2dParams: window sums (local; padding counts as zeros) times the
/// public 1/d of each window, d = kernel_h kernel_w when params.count_include_pad (PyTorch's
/// default) or the number of window positions inside the input otherwise. x [N, C, H, W] ->
/// [N, C, H', W']. Cost: trunc (0 rounds for N = 2). Accuracy: 1/d is encoded with f bits, so
/// |err| <= d max|x| 2^-17 + 1 ulp. Backward: dx = scatter(g / d spread over each window): one
/// trunc of |g| elements and a local scatter-add. Errors: ValueError "[avg_pool2d] ..." as
/// max_pool2d.
MpcTensor avg_pool2d(const MpcTensor& x, const core::Pool2dParams& params);

/// Adaptive average pooling to output_size = {oh, ow} (PyTorch's AdaptiveAvgPool2d): output (i, j)
/// averages input rows [floor(i H / oh), ceil((i + 1) H / oh)) and columns
/// [floor(j W / ow), ceil((j + 1) W / ow)); windows may differ in size and each sum is multiplied
/// by its own public 1/size. {1, 1} is global average pooling. x [N, C, H, W] -> [N, C, oh, ow].
/// Cost, accuracy and backward as avg_pool2d (d = the window's size). Errors: ValueError
/// "[adaptive_avg_pool2d] ..." for a rank other than 4 or an output size that is not two extents
/// >= 1.
MpcTensor adaptive_avg_pool2d(const MpcTensor& x, const core::Shape& output_size);

/// Adaptive max pooling to output_size = {oh, ow} with the windows of adaptive_avg_pool2d
/// (windows smaller than the largest one, k entries, repeat one of their elements). Exact.
/// Cost and backward as max_pool2d with k = the largest window's size. Errors: ValueError
/// "[adaptive_max_pool2d] ..." as adaptive_avg_pool2d.
MpcTensor adaptive_max_pool2d(const MpcTensor& x, const core::Shape& output_size);

}  // namespace veil
