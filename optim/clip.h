#pragma once
// Gradient clipping with PyTorch's semantics (torch.nn.utils.clip_grad_norm_ / clip_grad_value_)
// on public or secret gradients. Both replace each parameter's .grad in place (every handle of the
// parameter sees it); parameters without a gradient are skipped. Nothing is opened.

#include <vector>

#include "autograd/mpc_tensor.h"

namespace veil::optim {

/// Rescales the gradients so that their total 2-norm is at most max_norm:
///   norm = sqrt(sum over every gradient element of g^2),  g <- g min(1, max_norm / norm)
/// and returns norm (a 0-d MpcTensor, secret when any gradient is secret; public 0 when no
/// parameter has a gradient).
/// Secret algorithm (n gradient elements over all parameters, batched):
///   * S = <g, g> as one Beaver dot product kept at 2f fractional bits and truncated once (no
///     per-element underflow of g^2), scaled by the public 2^(2a), a = round(-log2 max_norm) in
///     [-8, 8]: S' = S 2^(2a) is about 1 where clipping starts;
///   * range levels, so that crypto::inv_sqrt only sees (1/64, 64] when clipping: the candidates
///     S_k = S' 2^(-12k), k = 0, 1, 2 (truncations), the bits c = [S' > (max_norm 2^a)^2],
///     b1 = [S_0 > 64], b2 = [S_1 > 64] from one crypto::lt on 3 values (c is exact, so the scale
///     is 1 whenever norm <= max_norm, whatever the inv_sqrt accuracy), and the one-hot level
///     sel = (1 - b1, b1 - b2, b2) select W = <sel, S_k> and P = <sel, S_k 2^(6k)> and form
///     c sel, all in one Beaver round (integer selectors: no truncation);
///   * y = inv_sqrt(W); q_k = max_norm 2^a y 2^(-6k) (the scale max_norm / norm at level k);
///     c q = <c sel, q> and norm = P y 2^-a in one round; scale = 1 - c + c q;
///   * g <- g scale (one Beaver product with the broadcast scalar).
/// PyTorch's + 1e-6 in the denominator is below the fixed-point resolution and omitted (it only
/// matters for norm ~ 0, where the scale is 1).
/// Cost (secret): rounds (N = 2) R_lt(3) + R_isq(1) + 4 (e.g. 4 + 9 + 4 = 17); bytes
/// 24(N-1)n + 216(N-1) + B_lt(3) + B_isq(1); N > 2 adds 8 truncation rounds and 8(n + 7) bytes
/// (every party but P0). Public gradients: float64, local.
/// Accuracy: the scale and the norm have crypto::inv_sqrt's relative error on (1/64, 64] (about
/// 1e-4 measured) plus a few 2^-f, for norms up to 2^15 max_norm (the dot product itself needs
/// S < 2^31 before the ring overflows); the returned norm is accurate for norm >= max_norm / 8
/// and keeps inv_sqrt's behaviour outside its domain below (the scale is 1 there). The scaled
/// gradients: one truncation (2^-f) and, since the scale is a fixed-point number with f bits,
/// |g| 2^-(f+1) (relative 2^-(f+1) / scale: 3e-4 when clipping by 25x). The 2-party truncation of S
/// fails with probability about S 2^(2f - 63) (one element). Source: Pascanu, Mikolov & Bengio, "On
/// the difficulty of training recurrent neural networks" (ICML 2013, arXiv 1211.5063) §3.2. Throws
/// ValueError for max_norm <= 0 or non-finite, or gradients with another frac_bits.
MpcTensor clip_grad_norm_(const std::vector<MpcTensor>& params, double max_norm);

/// Clamps every gradient element into [-clip_value, clip_value].
/// Secret (all secret gradients batched, n elements): detail::clamp, i.e. one crypto::lt on 2n
/// elements and one Beaver product of an integer and g (no truncation).
/// Cost (N parties): R_lt(2n) + 1 rounds, B_lt(2n) + 16(N-1)n bytes. Exact. Public gradients:
/// exact on the ring, local. Throws ValueError for clip_value < 0 or non-finite, or gradients with
/// another frac_bits.
void clip_grad_value_(const std::vector<MpcTensor>& params, double clip_value);

}  // namespace veil::optim
