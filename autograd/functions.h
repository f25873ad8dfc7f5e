#pragma once
// Differentiable ops on MpcTensor. Each records a node when grad mode is on and an input requires
// grad; the backward rules live next to the forwards in functions.cpp (the one place that lists
// every derivative).
//
// Visibility (architecture decision B). With f = frac_bits of the operands:
//   public ∘ public  plain ring arithmetic on the encodings; a product of two fixed-point values is
//                    truncated by an arithmetic shift (floor), the same algorithm as the secret
//                    path, so a network run in public mode matches a fixed-point emulation exactly.
//   public ∘ secret  local protocols (add_public, mul_public_raw / matmul with a public operand,
//                    then one truncation): no Beaver triple, no communication for N = 2.
//   secret ∘ secret  Beaver (crypto::mul / crypto::matmul) + one truncation.
// The result is secret when any operand is secret. Operands must belong to the same party.
// Gradients follow the same rule: a gradient computed only from public values (e.g. d(x + c)/dx
// with a public upstream gradient) stays public, which discloses nothing; in a network whose loss
// depends on secret data every parameter gradient is secret.
// A product of a fixed-point value (f bits) and an integer value (0 bits, e.g. a ReLU mask or a
// one-hot label) needs no truncation; additions align frac_bits by an exact left shift.
//
// Costs below are per party for N = 2 parties, n = number of output elements, 8-byte ring
// elements; with N > 2 every truncation of a secret adds 1 round and 8 bytes per element (from
// every party except P0), and Beaver bytes scale with N - 1. Public-only ops never communicate.
//
// Errors: ValueError "[op] ..." naming the op and the shapes for shape mismatches, undefined
// operands, operands of different parties.

#include <cstdint>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "core/conv.h"
#include "core/tensor.h"

namespace veil {

// ---- elementwise -------------------------------------------------------------------------------

/// x + y with numpy broadcasting (e.g. [N, out] + [out]). Local (0 rounds) for every visibility.
/// Backward: dx = sum_to(g, x.shape), dy = sum_to(g, y.shape).
MpcTensor add(const MpcTensor& x, const MpcTensor& y);
/// x - y with broadcasting. Local.
MpcTensor sub(const MpcTensor& x, const MpcTensor& y);
/// -x. Local.
MpcTensor neg(const MpcTensor& x);
/// Elementwise x * y with broadcasting; result frac_bits max(f_x, f_y).
/// Cost: secret*secret 1 round, 8(|x| + |y|) bytes (Beaver) + truncation; public*secret only a
/// truncation (local for N = 2); none when one operand is an integer (frac_bits 0).
/// Backward: dx = sum_to(g * y, x.shape), dy = sum_to(g * x, y.shape).
MpcTensor mul(const MpcTensor& x, const MpcTensor& y);
/// Elementwise x * x, same frac_bits as x. Secret: one square pair (crypto::square): 1 round,
/// 8(N-1)|x| bytes (half of mul(x, x)) + truncation; public: exactly x * x. Backward:
/// dx = 2 g x (one product, no extra truncation for the doubling).
MpcTensor square(const MpcTensor& x);
/// x * c for a public double c (encoded with the party's frac_bits): one truncation, no triple.
/// Backward: dx = g * c.
MpcTensor mul(const MpcTensor& x, double c);
/// x + c for a public double c. Local.
MpcTensor add(const MpcTensor& x, double c);
/// x / c for a public double c != 0: x * (1/c) with 1/c encoded with the party's frac_bits (pure
/// scaling, no secret divisor; for a secret divisor see autograd/elementary.h). Cost: one
/// truncation (local for N = 2; N > 2: 1 round, 8 bytes per element from each party but P0).
/// Public: floor((x * enc(1/c)) / 2^f), bit exact. Accuracy: |x| |1/c - enc(1/c)| + 1 ulp, i.e.
/// relative error <= 2^-(f+1) / |1/c| + 1 ulp (exact when 1/c is a multiple of 2^-f, e.g. c a
/// power of two up to 2^f). Backward: dx = g / c (same cost). Errors: ValueError "[div] ..." for
/// c = 0, a non-finite c, or 1/c outside the fixed-point range.
MpcTensor div(const MpcTensor& x, double c);

/// Operators: the functions above.
MpcTensor operator+(const MpcTensor& x, const MpcTensor& y);
MpcTensor operator-(const MpcTensor& x, const MpcTensor& y);
MpcTensor operator*(const MpcTensor& x, const MpcTensor& y);
MpcTensor operator-(const MpcTensor& x);
MpcTensor operator*(const MpcTensor& x, double c);
MpcTensor operator*(double c, const MpcTensor& x);
MpcTensor operator+(const MpcTensor& x, double c);
MpcTensor operator-(const MpcTensor& x, double c);
MpcTensor operator/(const MpcTensor& x, double c);

// ---- linear algebra ----------------------------------------------------------------------------

/// Matrix product with numpy/torch.matmul broadcasting; frac_bits max(f_x, f_w):
///   x [m, k] @ w [k, n] -> [m, n];   x [k] @ w [k, n] -> [n];   x [m, k] @ w [k] -> [m];
///   x [k] @ w [k] -> [] (dot product);
///   batched x [..., m, k] @ w [..., k, n] -> [broadcast(...), m, n] (batch dims broadcast; a 1-D
///   operand is promoted to [1, k] / [k, 1] and the added dim removed from the result).
/// Every case is one Beaver round through crypto::BilinearOp::matmul (batches use one 2-D
/// descriptor per batch entry, opened together in one crypto::beaver_batch round; a batch that
/// broadcasts against a 2-D operand is folded into one 2-D product) and one truncation of the
/// whole output. Cost, secret@secret: 1 round, 8(N-1)(|x| + |w|) bytes per party when no operand
/// entry is reused across the broadcast batch (2-D, 1-D, equal batch shapes, or one operand
/// without batch dims); when a batched operand broadcasts against another batched operand
/// (e.g. [2, 1, m, k] @ [1, 3, k, n]) the reused matrices are opened once per use:
/// 8(N-1) B (mk + kn) with B the broadcast batch size. Plus the truncation of |out| elements
/// (N = 2: local; N > 2: 1 round, 8|out| bytes from each party except P0). public@secret: the
/// local product and the truncation only; public@public: ring products and a floor shift (bit
/// exact fixed point). Backward: dx = sum_to(g @ w^T, x), dw = sum_to(x^T @ g, w) (transposes of
/// the last two dims; same costs with the shapes of those products; a 2-D operand's gradient is
/// one folded 2-D product). Accuracy: each output sums k exact products of the encodings, then
/// one truncation (+-1 ulp). Errors: "[matmul] inner dimensions differ: x is [32, 20], w is
/// [16, 10]"; a 0-d operand; batch dims that do not broadcast.
MpcTensor matmul(const MpcTensor& x, const MpcTensor& w);
/// Transpose of a 2-D tensor [m, n] -> [n, m] (a strided view, local). Backward: transpose.
MpcTensor transpose(const MpcTensor& x);
/// Same as transpose(x).
MpcTensor t(const MpcTensor& x);

// ---- convolution and pooling ------------------------------------------------------------------

/// 2-D convolution (PyTorch Conv2d semantics, zero padding, no bias):
/// x [N, C_in, H, W] (*) w [C_out, C_in/groups, kh, kw] -> [N, C_out, H', W'] (core/conv.h);
/// frac_bits max(f_x, f_w). One code path for every visibility, the bilinear op
/// crypto::BilinearOp::conv2d: secret (*) secret is crypto::beaver (1 round, 8(N-1)(|x| + |w|)
/// bytes) + one truncation of |out| elements (as crypto::conv2d); with one public operand the
/// op is applied locally to the share and the public encoding and truncated once (as
/// crypto::conv2d_public_weight, without re-encoding the kernel); public (*) public is plain ring
/// arithmetic with an arithmetic shift.
/// Backward (g [N, C_out, H', W']): dx = conv2d_input_grad(g, w) [N, C_in, H, W] and
/// dw = conv2d_weight_grad(x, g) [C_out, C_in/groups, kh, kw], each through its own BilinearOp on
/// the same path: secret: 1 round, 8(N-1)(|g| + |w|) resp. 8(N-1)(|x| + |g|) bytes + one
/// truncation. Accuracy: each output or gradient entry sums K products (K = C_in/groups kh kw for
/// the forward and dx's reduction C_out/groups kh kw, N H' W' for dw), so |err| <~ 1 ulp of
/// truncation + the encoding errors of the operands times the reduction length.
/// Errors: ValueError "[conv2d] ..." for ranks != 4, channel mismatches (w[1] != C_in/groups),
/// bad parameters or a kernel larger than the padded input; operands of different parties.
MpcTensor conv2d(const MpcTensor& x, const MpcTensor& w, const core::Conv2dParams& params = {});

/// Max pooling with a square kernel x kernel window, no padding:
/// x [N, C, H, W] -> [N, C, H', W'], H' = (H - kernel) / stride + 1. Exact (no truncation).
/// Secret: windows gathered locally ([..., k^2]) and crypto::max_lastdim (9 ceil(log2 k^2) rounds
/// for N = 2) which also yields the secret argmax index (integer share); the one-hot of that index
/// over the k^2 window positions is crypto::eq against the public positions 0..k^2-1: 8 rounds,
/// one ltz on 2 |out| k^2 elements. This one-hot is computed in the forward and saved.
/// Public: plain ring comparison (first maximum on ties).
/// Backward: dx = fold(g broadcast over each window * one-hot): one Beaver mul with an integer
/// one-hot, no truncation (1 round, 8(N-1)(|g| + |out| k^2) bytes when both are secret; local
/// when g is public), then a local scatter-add (core::fold_windows). Overlapping windows
/// (stride < kernel) accumulate. Errors: ValueError "[max_pool2d] ..." for a bad rank, kernel or
/// stride < 1, or a window larger than the input.
MpcTensor max_pool2d(const MpcTensor& x, int64_t kernel, int64_t stride);

/// Average pooling with a square kernel x kernel window, no padding:
/// x [N, C, H, W] -> [N, C, H', W']. Window sums are local; one multiplication by the public
/// scalar 1/k^2 (one truncation, as crypto::avg_pool2d). Backward: dx = fold(g * (1/k^2) broadcast
/// over each window): one truncation of |g| elements and a local scatter-add. Errors: ValueError
/// "[avg_pool2d] ..." as max_pool2d.
MpcTensor avg_pool2d(const MpcTensor& x, int64_t kernel, int64_t stride);

// ---- shape and reductions ----------------------------------------------------------------------

/// Same elements with a new shape (one extent may be -1). Local. Backward: reshape back.
MpcTensor reshape(const MpcTensor& x, const core::Shape& shape);
/// Sum along dim (negative counts from the end). Local. Backward: broadcast g back.
MpcTensor sum(const MpcTensor& x, int64_t dim, bool keepdim = false);
/// Sum of all elements -> 0-d tensor. Local.
MpcTensor sum(const MpcTensor& x);
/// Mean along dim: sum * (1/size), one truncation.
MpcTensor mean(const MpcTensor& x, int64_t dim, bool keepdim = false);
/// Mean of all elements -> 0-d tensor: one truncation.
MpcTensor mean(const MpcTensor& x);
/// Sums g over the broadcast dimensions so that it has `shape` (the reverse of broadcasting).
/// Local; not recorded (a helper of the backward rules). Throws ValueError when `shape` does not
/// broadcast to g's shape.
MpcTensor sum_to(const MpcTensor& g, const core::Shape& shape);

// ---- non-linear --------------------------------------------------------------------------------

/// max(x, 0). Secret: crypto::relu (N = 2: 9 rounds, ~63 bytes per element), which also yields
/// the bit [x >= 0] saved for backward; public: exact on the ring.
/// Backward: dx = g * [x >= 0] (an integer bit: a Beaver mul without truncation when either is
/// secret; 1 round, 16 bytes per element).
MpcTensor relu(const MpcTensor& x);
/// Softmax along the last dimension, [..., C] -> [..., C]. Secret: crypto::softmax (max tree,
/// exp, reciprocal on [1, C]; absolute error <= 1e-3; 59 rounds for C = 10). Public: computed
/// exactly in float64 and encoded (public mode does not emulate the approximations).
/// Backward: dx = s * (g - sum(g * s, -1)) with the saved softmax s (2 Beaver muls if secret).
MpcTensor softmax(const MpcTensor& x);
/// Softmax along `dim` (negative counts from the end): the last-dim softmax above applied with
/// `dim` moved last by local transposes (0 rounds); same cost, accuracy and backward. Errors:
/// ValueError "[softmax] ..." for dim out of range or an empty dimension.
MpcTensor softmax(const MpcTensor& x, int64_t dim);
/// log(softmax(x)) along `dim`, computed stably: z = x - max(x), out = z - log(sum exp(z)).
/// x: any shape, C = x.size(dim) -> same shape, frac_bits f.
/// Secret: crypto::max_lastdim, crypto::exp, a local sum s in [1, C], crypto::log(s), local
/// subtractions; rounds = those of max_lastdim + exp + log (N = 2 in this tree: 24 rounds for
/// C = 10; N = 3: 45). The sum s lies in [1, C], so C is limited by crypto::log's domain:
/// C <= kLogSoftmaxMaxClasses (4096; crypto::log is accurate to 1e-2 mixed error on [1e-4, 250]
/// and measured to 3.4e-5 up to 1.6e7). Accuracy: absolute error <= 6e-3 tested (log's error and
/// exp's relative error inside the sum); measured 4.8e-4 for C = 20, logits in [-8, 8]. Public:
/// float64 exact, encoded (round to nearest; public mode does not emulate the approximations).
/// Backward: dx = g - softmax(x) * sum(g, dim), with softmax = exp(z) * reciprocal(s) computed
/// in the backward from the saved exp(z) and s (crypto::reciprocal on [1, C] and one Beaver mul,
/// then one Beaver mul by the broadcast sum(g)); nothing is computed for it when no backward
/// runs. Errors: ValueError "[log_softmax] ..." for dim out of range, an empty dimension, secret
/// x with C > kLogSoftmaxMaxClasses or frac_bits other than the party's.
MpcTensor log_softmax(const MpcTensor& x, int64_t dim = -1);
/// Largest class count C that secret log_softmax and cross_entropy accept: sum(exp(x - max)) lies
/// in [1, C], which must stay inside the tested domain of crypto::log and crypto::reciprocal.
inline constexpr int64_t kLogSoftmaxMaxClasses = 4096;

/// min(max(x, min_val), max_val) elementwise (torch.nn.functional.hardtanh); requires
/// min_val < max_val. x: any shape, any frac_bits (the bounds lo, hi are encoded with x's
/// frac_bits) -> same. Computed as x + relu(lo - x) - relu(x - hi) with ONE crypto::relu on the
/// 2n values (lo - x, x - hi), whose bits [x <= lo] and [x >= hi] give the backward mask
/// m = 1 - [x <= lo] - [x >= hi] for free. Cost: that of crypto::relu on 2n elements (N = 2 with
/// the current comparison: 4 rounds, about 2 x 12.9 bytes per element; no truncation).
/// Exact on the encoded values. Public: the same formula on the ring, bit exact. Backward:
/// dx = g m (0 at x <= lo and x >= hi, like torch): an integer product, one Beaver round when g
/// and x are secret, local when g is public, no truncation. Errors: ValueError "[hardtanh] ..."
/// for min_val >= max_val or bounds outside the fixed-point range.
MpcTensor hardtanh(const MpcTensor& x, double min_val = -1.0, double max_val = 1.0);
/// min(max(x, 0), 6) = hardtanh(x, 0, 6) (same cost, exactness and backward).
MpcTensor relu6(const MpcTensor& x);
/// x for x > 0, negative_slope * x otherwise (torch.nn.functional.leaky_relu). x: any shape,
/// frac_bits f -> same. Computed as x + (1 - slope) relu(-x): one crypto::relu on n elements
/// (its bit is [x <= 0]) and one public scaling (a truncation). Cost: crypto::relu on n
/// elements (N = 2 today: 4 rounds, about 12.9 bytes per element) + a truncation (N > 2:
/// 1 round, 8 bytes per element). Accuracy: exact for x > 0 (relu(-x) is exactly 0); for x <= 0
/// |err| <= |x| 2^-(f+1) (encoding of 1 - slope) + 1 ulp (measured 3.4e-5 on [-4, 4] for
/// slope 0.01). Public: the same formula on the ring with floor truncation, bit exact.
/// Backward: dx = g - (1 - slope) g [x <= 0] (an integer product and one truncation; torch's
/// derivative, slope at 0). Errors: ValueError "[leaky_relu] ..." for a slope that is not finite
/// or outside the fixed-point range.
MpcTensor leaky_relu(const MpcTensor& x, double negative_slope = 0.01);
/// Inverted dropout (torch.nn.functional.dropout): with training, each element is kept with
/// probability 1 - p and scaled by 1 / (1 - p), else zeroed; the mask comes from the parties'
/// common PRG (public, identical on every party, independent of the data), drawn exactly as
/// nn::Dropout draws it (one uniform_double per element in row-major order). Without training
/// (or p = 0) returns x. Cost: a public * secret product, one truncation (local for N = 2),
/// no Beaver triple. Backward: dx = g * mask (same cost). Errors: ValueError "[dropout] ..." for
/// p outside [0, 1).
MpcTensor dropout(const MpcTensor& x, double p = 0.5, bool training = true);

/// 1 / (1 + e^-x) elementwise. Secret: crypto::sigmoid (21 rounds for N = 2; absolute error
/// <= 2e-3 on [-10, 10], saturating outside). Public: float64, encoded. Backward:
/// dx = g s (1 - s) with the saved output s (2 Beaver muls if secret).
MpcTensor sigmoid(const MpcTensor& x);
/// tanh elementwise. Secret: crypto::tanh (2 sigmoid(2x) - 1; 21 rounds; <= 4e-3 on [-10, 10]).
/// Backward: dx = g (1 - t^2) with the saved output t.
MpcTensor tanh(const MpcTensor& x);
/// GELU(x) = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2. Secret: crypto::erf (32 rounds) and
/// one mul; absolute error <= 3e-3 on [-6, 6]. Backward: dx = g (Phi(x) + x phi(x)) with
/// phi(x) = exp(-x^2 / 2) / sqrt(2 pi) (crypto::exp, 10 rounds, and 3 muls if secret).
MpcTensor gelu(const MpcTensor& x);
/// |x| elementwise. Secret: x * sign(x) with crypto::sign (ltz + B2A + one mul by an integer,
/// no truncation: 9 rounds for N = 2); sign(0) = 1. Backward: dx = g * sign(x) (one mul).
MpcTensor abs(const MpcTensor& x);
/// Mean squared error mean((x - y)^2) over all elements -> 0-d. Any visibility; x and y of equal
/// shape (ValueError otherwise). Cost when secret: one Beaver square (+ truncation). Accuracy:
/// like mean(), which multiplies by the fixed-point encoding of 1/n (relative error up to
/// n 2^-(f+1); exact when n is a power of two).
MpcTensor mse_loss(const MpcTensor& x, const MpcTensor& y);
/// Mean absolute error mean(|x - y|) -> 0-d. Cost when secret: abs (9 rounds for N = 2).
MpcTensor l1_loss(const MpcTensor& x, const MpcTensor& y);

// ---- losses ------------------------------------------------------------------------------------

/// Mean softmax cross-entropy of logits [N, C] against a one-hot target [N, C] (public or secret,
/// fixed-point or integer encoded; rows should sum to 1), computed stably:
///   loss = (1/N) sum_rows ( max_j x_ij + log sum_j exp(x_ij - max) - <x_i, t_i> )  -> 0-d.
/// Secret logits: crypto::max_lastdim, crypto::exp, crypto::reciprocal on [1, C] for the softmax
/// and crypto::log on [1, C] (requires C <= kLogSoftmaxMaxClasses = 4096; absolute error about
/// 1e-3); about 36 + 8 + 14 + 36 + a few rounds for C = 10. Public logits: float64 exact.
/// Backward: d logits = (softmax - target) * g / N using the softmax saved by the forward (no
/// recomputation); one truncation when g is public (the usual seed), a Beaver mul otherwise. The
/// target gets no gradient. Errors: ValueError for logits that are not 2-D, a target of another
/// shape, or secret logits with C > kLogSoftmaxMaxClasses.
MpcTensor cross_entropy(const MpcTensor& logits, const MpcTensor& target);
/// Same with class indices: target int64 [N] with values in [0, C), public (the same on every
/// party), turned into an integer one-hot so <x, t> needs no truncation.
/// Errors: ValueError for a wrong dtype/shape or an index out of range.
MpcTensor cross_entropy(const MpcTensor& logits, const core::Tensor& target);

}  // namespace veil
