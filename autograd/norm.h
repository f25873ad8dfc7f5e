#pragma once
// Fused, differentiable normalisation ops: batch_norm and layer_norm (PyTorch semantics). Each is
// one graph node whose backward uses the closed-form gradient of the normalisation instead of
// differentiating the dozen elementary ops of the forward.
//
// Math (R = the reduction set of one statistic, n = |R|; g = dL/dy, g_hat = g * weight):
//   mean = (1/n) sum_R x,  var = (1/n) sum_R (x - mean)^2 (biased),  inv_std = 1/sqrt(var + eps)
//   x_hat = (x - mean) inv_std,  y = x_hat * weight + bias
//   dx = inv_std (g_hat - (1/n) sum_R g_hat - x_hat (1/n) sum_R (g_hat x_hat))
//   dweight = sum over the other axes of g x_hat,  dbias = sum over the other axes of g
// (Ioffe & Szegedy, "Batch Normalization", ICML 2015, §3, for batch statistics; Ba, Kiros &
// Hinton, "Layer Normalization", arXiv 1607.06450, §3, for per-sample statistics.)
//
// Secret evaluation (f = frac_bits; every operand fixed point with f bits):
//   * sums are local; products of two secrets are Beaver products, several independent ones
//     batched in one round (crypto::beaver_batch) and their truncations in one truncation;
//   * the square (x - mean)^2 and g x_hat are summed over R before they are truncated (one
//     truncation per statistic instead of one per element, and no accumulated rounding);
//   * division by the public n: s / n = (s / 2^k) * (2^k / n) with k = ceil(log2 n): a
//     truncation by k bits, then a product with the encoding of 2^k / n in [1, 2) and a
//     truncation by f. Error <= 3 * 2^-f + |s / n| 2^-(f+1); a plain product with encode(1/n)
//     would have a relative error up to n 2^-(f+1) (50 % for n = 65536);
//   * 1/sqrt(var + eps) is crypto::inv_sqrt (crypto/protocols/approx.h): 20 rounds for N = 2,
//     domain [0.01, 100] today (being widened to relative 1e-3 on [1e-4, 1e4], same signature).
//     var + eps must lie in that domain: inputs whose per-statistic variance is in about
//     [0.01, 100]. eps is encoded with f bits (1e-5 becomes 2^-16).
// Public inputs run the same fixed-point algorithm on the encodings (exact ring arithmetic with
// arithmetic shifts), except 1/sqrt, computed in float64 and encoded.
//
// Costs per party, N parties, secret input and secret affine parameters, X = number of input
// elements; Beaver bytes are 8(N-1) per opened element; with N > 2 each batch of truncations is
// one more round in which every party but P0 sends 8 bytes per truncated element (P0 sends 0).
// ISQ(K) = the rounds and bytes of crypto::inv_sqrt on K elements (20 rounds for N = 2 today).
// Exact formulas per op below; tests/autograd/test_norm.cpp checks every one of them against the
// communicator's counters for 2 and 3 parties. Measured, x [6, 3, 5] (X = 90, C = 3), party 1:
//   batch_norm training forward   N = 2: 23 rounds, 5,384 B (inv_sqrt: 20, 2,456 B)
//                                 N = 3: 42 rounds, 13,888 B (inv_sqrt: 33, 6,448 B)
//   batch_norm training backward  N = 2: 3 rounds, 2,976 B;  N = 3: 8 rounds, 7,536 B
// Accuracy (f = 16, secret, 2 and 3 parties, variances in [0.27, 2.9], |x_hat| <= 1.8):
// measured max errors y 1.3e-4, dx 1.4e-4 (batch_norm) / 2.4e-4 (layer_norm), dweight 1.3e-4
// (mixed), dbias exact, running statistics 2e-5; all come from inv_sqrt's error.

#include <cstdint>
#include <vector>

#include "autograd/mpc_tensor.h"

namespace veil {

/// Batch normalisation over the batch and spatial axes, per channel (torch.nn.functional.batch_norm
/// semantics).
///
/// Shapes: x [N, C] or [N, C, *] -> y of x's shape; running_mean, running_var, weight, bias: [C]
/// (each may be undefined: no running statistics, weight 1, bias 0). Statistics over n = N *
/// prod(*) values per channel. Modes:
///   training = true: normalises with the batch mean and the biased batch variance; when the
///     running buffers are defined updates them in place (MpcTensor::assign_, not recorded):
///     running_mean <- (1 - momentum) running_mean + momentum mean,
///     running_var  <- (1 - momentum) running_var + momentum var * n / (n - 1) (unbiased).
///     A buffer becomes secret when x is secret.
///   training = false: normalises with running_mean and running_var (both required).
/// Encoding: x, weight, bias, buffers public or secret with the party's frac_bits; y is secret
/// when any input is secret (public inputs are computed on the encodings, 1/sqrt in float64).
/// Cost (x and weight secret, X = |x|, T = [N > 2]; bytes per party, truncation bytes from
/// parties other than P0):
///   training forward: 3 + 6T rounds + ISQ(C);
///     bytes 8(N-1)(3X + 2C) + ISQ(C) + T 8(2X + 6C): the square (x - mean)^2 (a square pair: X
///     opened), x_hat
///     (X + C) and the affine product (X + C); the truncation batches: mean and var (two each,
///     2C), x_hat with the running-statistics update (X + 2C), affine (X). Without running
///     buffers T 8(2X + 4C); with a public weight the affine is local: 8(N-1)(2X + C).
///   training backward: 3 + 5T rounds; bytes 8(N-1)(4X + 4C) + T 8(2X + 6C): round 1 opens
///     g x_hat and inv_std weight, round 2 x_hat mean(g x_hat), round 3 the product with
///     inv_std weight. Local where g (e.g. the seed of sum(y)) or the operands are public.
///   eval forward: 2 + 2T rounds + ISQ(C) (no inv_sqrt when running_var is public: 1/sqrt in
///     float64); bytes 8(N-1)(2X + 2C) + T 16X.
///   eval backward: 2 + 2T rounds; bytes 8(N-1)(3X + 3C) + T 8(X + 2C).
/// Errors: ValueError "[batch_norm] ..." for an input with fewer than 2 dimensions or no
/// elements, parameters or buffers not of shape [C], only one running buffer defined, eval mode
/// without running buffers, training with n = 1 value per channel, momentum outside [0, 1],
/// eps < 0, frac_bits other than the party's, non-leaf running buffers, operands of different
/// parties.
/// Accuracy (f = 16, secret, channel variances in inv_sqrt's domain): the mean and variance are
/// within 3 ulps + 2^-17 relative (see the file comment); y and the gradients inherit
/// inv_sqrt's relative error times |x_hat| |weight|: measured <= 1.4e-4 for variances in
/// [0.27, 2.9] (tests allow 3e-3 forward, 5e-3 gradients, for inv_sqrt's coming 1e-3 contract).
/// Source: Ioffe & Szegedy, ICML 2015, §3 and Algorithm 1 (forward) and §3 (gradients).
MpcTensor batch_norm(const MpcTensor& x,
                     const MpcTensor& running_mean,
                     const MpcTensor& running_var,
                     const MpcTensor& weight = {},
                     const MpcTensor& bias = {},
                     bool training = false,
                     double momentum = 0.1,
                     double eps = 1e-5);

/// Layer normalisation over the last dimensions (torch.nn.functional.layer_norm semantics).
///
/// Shapes: x [*, normalized_shape...] -> y of x's shape; weight, bias: normalized_shape (each may
/// be undefined: weight 1, bias 0). Statistics (mean, biased variance) over the n =
/// prod(normalized_shape) trailing values of each of the M = |x| / n rows.
/// Encoding: as batch_norm.
/// Cost (x and weight secret, X = |x|, M rows, P = n parameters, T = [N > 2]):
///   forward: 3 + 6T rounds + ISQ(M); bytes 8(N-1)(3X + M + P) + ISQ(M) + T 8(2X + 4M)
///     (square pair, x_hat, affine; truncations as batch_norm).
///   backward: 3 + 5T rounds; bytes 8(N-1)(7X + P + 2M) + T 8(3X + P + 4M): round 1 opens
///     g weight, g (x_hat weight) (the saved forward product) and g x_hat in one batch; round 2
///     x_hat mean(g_hat x_hat); round 3 the product with inv_std.
/// Errors: ValueError "[layer_norm] ..." for an empty normalized_shape, x whose trailing
/// dimensions differ from it, weight/bias of another shape, eps < 0, frac_bits other than the
/// party's, operands of different parties.
/// Accuracy: as batch_norm, with per-row variances in inv_sqrt's domain (measured y 1.1e-4,
/// dx 2.4e-4).
/// Source: Ba, Kiros & Hinton, "Layer Normalization", arXiv 1607.06450, §3.
MpcTensor layer_norm(const MpcTensor& x,
                     const std::vector<int64_t>& normalized_shape,
                     const MpcTensor& weight = {},
                     const MpcTensor& bias = {},
                     double eps = 1e-5);

}  // namespace veil
