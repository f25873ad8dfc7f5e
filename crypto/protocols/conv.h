#pragma once
// 2-D convolution and pooling on arithmetic shares.
//
//   conv2d (both secret): one Beaver triple for the bilinear op f = conv2d (crypto/bilinear.h):
//       open e = x - a, d = w - b in one round; z_i = c_i + f(e, b_i + [i = 0] d) + f(a_i, d),
//       then rescale by frac_bits. The opened masks are the input and kernel themselves, not the
//       im2col matrices: 8(N-1)(|x| + |w|) bytes instead of 8(N-1)(C_in kh kw H' W' N + |w|).
//   conv2d_public_weight: z_i = f(x_i, encode(w)) locally, then one truncation.
//   avg_pool2d (count_include_pad): s_i = sum of each k x k window of x_i (local), then
//       z = s * encode(1 / k^2) with one truncation.
//   max_pool2d: gather windows into [..., k^2] (local) and take crypto::max_lastdim, a tree of
//       ceil(log2 k^2) comparison levels.
//
// Costs per party, N parties (8 bytes per ring element; "trunc" is 0 rounds / 0 B for N = 2 and
// 1 round / 8|out| B from each party except P0 for N > 2, see arithmetic.h):
//   conv2d:               1 round, 8(N-1)(|x| + |w|) B  + trunc  (+ dealer: P0 gets 8|out|)
//   conv2d_public_weight: trunc only
//   avg_pool2d:           trunc only
//   max_pool2d:           as max_lastdim over k^2 elements: 9 ceil(log2 k^2) rounds for N = 2
// Security: semi-honest, dealer non-colluding; shapes and hyper-parameters are public.
// Source: Beaver (CRYPTO'91); MPC_REFERENCE §2 (conv2d opens masked input and kernel); CrypTen
// (Knott et al. 2021) for the semantics.

#include <cstdint>

#include "core/conv.h"
#include "core/tensor.h"
#include "crypto/party.h"
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
/// Exact (no truncation). Cost: crypto::max_lastdim over k^2 elements: 9 ceil(log2 k^2) rounds
/// for N = 2 (36 rounds for 3 x 3, 18 for 2 x 2). Errors: ValueError "[max_pool2d] ..." as for
/// avg_pool2d.
AShare max_pool2d(Party& p, const AShare& x, int64_t kernel, int64_t stride);

}  // namespace veil::crypto
