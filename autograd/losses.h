#pragma once
// Differentiable losses with a reduction (PyTorch's torch.nn.functional semantics), on public or
// secret inputs. The mean-only mse_loss, l1_loss and cross_entropy of autograd/functions.h stay;
// the overloads here take a Reduction.
//
// Conventions for every loss below:
//   * input and target have equal shapes unless stated; the result is 0-d for kMean and kSum and
//     has the per-element (per-row for nll_loss / cross_entropy) shape for kNone;
//   * encodings: fixed point with the party's frac_bits f = 16 (targets may also be integer
//     encoded, frac_bits 0, e.g. one-hot labels or 0/1 labels: their products need no truncation);
//     the result is secret when any operand is secret;
//   * kMean divides by the number of elements (rows for nll_loss / cross_entropy) with the public
//     coefficient 1/n encoded with 15 significant bits, so the relative error of the mean is
//     2^-15 (not n 2^-17 as an f-bit encoding of 1/n would give); kSum and kNone are exact sums;
//   * the target receives no gradient (training never needs one), except in mse_loss and l1_loss;
//   * costs are per party for N = 2 parties; n = number of elements; "t" is a truncation (local for
//     N = 2; 1 round and 8 bytes per element for N > 2); R_op / B_op are the rounds / bytes of the
//     crypto protocol op (crypto/protocols/), so the formulas stay true as those improve;
//   * where a loss value needs an expensive function (log) that backward does not, the value is
//     deferred (MpcTensor::deferred_secret): it is computed only if the program uses it (e.g.
//     reveals it), so a training loop that never looks at its loss never pays for the log;
//   * errors: ValueError "[op] ..." for shape mismatches, undefined operands, operands of
//     different parties and the op-specific cases listed.

#include <cstdint>

#include "autograd/mpc_tensor.h"
#include "core/tensor.h"

namespace veil {

/// How a loss reduces its per-element (per-row) values: mean, sum, or none.
enum class Reduction { kMean, kSum, kNone };

/// Squared error (x - y)^2, reduced. Cost when secret: one Beaver square (1 round, 16(N-1)n bytes,
/// + t) and, for kMean, one t. Backward (fused): dx = 2 (x - y) g' with g' = g / n (kMean), g
/// (kSum) or g elementwise (kNone): one truncation when g is public (the usual seed; the
/// coefficient 2 g / n has 15 significant bits), a Beaver product + t when g is secret;
/// dy = -dx. Accuracy: 1 ulp per element (value and gradient), and the 2^-15 relative error of
/// 1/n (kMean).
MpcTensor mse_loss(const MpcTensor& input, const MpcTensor& target, Reduction reduction);

/// Absolute error |x - y|, reduced. Cost when secret: abs (crypto::sign + one integer product:
/// R_lt + 1 rounds) and, for kMean, one t. Backward: dx = sign(x - y) g' (sign(0) = 1; an integer
/// product, no truncation), dy = -dx; for kMean g' = g / n is a public tensor on the f-bit grid
/// (error <= 1 ulp). Exact but for the mean coefficient.
MpcTensor l1_loss(const MpcTensor& input, const MpcTensor& target, Reduction reduction);

/// Binary cross-entropy -(t log p + (1 - t) log(1 - p)) of probabilities p (input) against
/// targets t in [0, 1]. p is first clamped into [eps, 1 - eps], eps = 1e-4 (encoded 7 2^-16 ~
/// 1.07e-4), the fixed-point form of PyTorch's clamping of log at -100: each log term is then
/// >= log(eps) ~ -9.14 and p = 0 or 1 give finite losses.
/// Secret p: the clamp costs one crypto::lt on 2n elements and one integer product (R_lt + 1
/// rounds, B_lt(2n) + 16n bytes, exact). The value (deferred): crypto::log on the 2n values
/// (p_c, 1 - p_c) in [eps, 1] and the product t (log p_c - log(1 - p_c)) (Beaver if t is secret,
/// a truncation if t is public fixed point, nothing if t is integer): R_log + 1 rounds.
/// Backward: dp = (-t / p_c + (1 - t) / (1 - p_c)) g' (PyTorch's (p - t) / (p (1 - p)) with p
/// clamped; |dp| <= 1 / eps ~ 9362 g'): one crypto::reciprocal of the 2n values with the range
/// [eps, 1] (R_rec rounds), one product with t and one with g'. Accuracy: the loss has
/// crypto::log's error on [eps, 1] per term (its contract: 1e-2 mixed); the gradient the
/// reciprocal's relative error (contract 1e-4 on the range) times 1/p_c + 1/(1 - p_c), plus a few
/// ulp. The 2-party truncation of the product t / p_c (up to 9362 2^32 before the shift) fails
/// with probability up to 2^-18 per element when p sits at the clamp; keep probabilities away
/// from 0 and 1 or use binary_cross_entropy_with_logits. Public p: float64 with the same clamp,
/// encoded.
/// Errors: shapes differ, or p without the party's frac_bits.
MpcTensor binary_cross_entropy(const MpcTensor& input,
                               const MpcTensor& target,
                               Reduction reduction = Reduction::kMean);

/// Binary cross-entropy of logits x (sigmoid applied inside), computed stably:
///   loss = max(x, 0) - x t + log(1 + e^-|x|)
/// Secret x, the value (deferred): [x < 0] by crypto::lt (R_lt), |x| and max(x, 0) from one integer
/// product (1 round), crypto::exp(-|x|) in (0, 1] (R_exp), crypto::log on [1, 2] (R_log) and the
/// product x t (1 round; Beaver if t is secret): R_lt + R_exp + R_log + 2 rounds.
/// Backward: dx = (sigmoid(x) - t) g' with crypto::sigmoid (R_sigmoid rounds), computed when
/// backward runs, and one product with g' (a truncation when g is public).
/// Accuracy: per element the error of crypto::log on [1, 2] plus e^-|x| / 2 times the relative
/// error of crypto::exp (<= 3e-3), a few ulp; gradient: crypto::sigmoid's error (<= 2e-3)
/// + 1 ulp. Valid for |x| <= 600 (crypto::exp's domain). Public x: float64, encoded.
/// Errors: shapes differ, or x without the party's frac_bits.
MpcTensor binary_cross_entropy_with_logits(const MpcTensor& input,
                                           const MpcTensor& target,
                                           Reduction reduction = Reduction::kMean);

/// Negative log-likelihood of log-probabilities [N, C] (e.g. from a log-softmax) at public class
/// indices target int64 [N]: loss_i = -log_probs[i, target_i]; kMean divides by N. The target is
/// turned into an integer one-hot, so picking costs no truncation: secret log_probs cost nothing
/// but the mean's t. Backward: d log_probs = -onehot g' (local for public g). Exact but for the
/// mean coefficient. Errors: log_probs not 2-D, target not int64 [N], an index outside [0, C).
MpcTensor nll_loss(const MpcTensor& log_probs,
                   const core::Tensor& target,
                   Reduction reduction = Reduction::kMean);

/// Softmax cross-entropy of logits [N, C] against a one-hot (or probability) target [N, C], with
/// a reduction over the rows: loss_i = max_j x_ij + log sum_j e^(x_ij - max) - <x_i, t_i>.
/// kMean is veil::cross_entropy (autograd/functions.h). kSum and kNone: the same protocols (secret
/// logits: crypto::max_lastdim, crypto::exp, crypto::reciprocal on [1, C] for the softmax, saved
/// for backward; the value, deferred: crypto::log of the row sums on [1, C]); the secret path
/// accepts C <= kLogSoftmaxMaxClasses (4096), like veil::cross_entropy. Backward: d logits =
/// (softmax - target) g (g a scalar for kSum, g_i per row for kNone): one product (a truncation
/// when g is public). Accuracy: the softmax's (<= 1e-3 absolute) and crypto::log's errors per row;
/// kSum adds the rows' errors. Errors: logits not 2-D with N, C >= 1, a target of another shape,
/// secret logits with C > kLogSoftmaxMaxClasses or another frac_bits.
MpcTensor cross_entropy(const MpcTensor& logits, const MpcTensor& target, Reduction reduction);

/// Same with public int64 class indices [N] (an integer one-hot). Errors as nll_loss's target.
MpcTensor cross_entropy(const MpcTensor& logits, const core::Tensor& target, Reduction reduction);

}  // namespace veil
