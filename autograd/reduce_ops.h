#pragma once
// Differentiable reductions on MpcTensor beyond sum/mean (autograd/functions.h): variance,
// product, cumulative sum, max/min with their arg-indices. Negative dims count from the end;
// keepdim keeps the reduced dim with extent 1 (PyTorch semantics).
//
// Costs are per party with N parties, n = number of input elements; "a truncation" is local for
// N = 2 and 1 round plus 8 bytes per element (from each party except P0) for N > 2. Public inputs
// use plain ring arithmetic with floor truncation (bit exact against a fixed-point emulation of
// the same algorithm) and never communicate. Errors: ValueError "[op] ..." naming the op and the
// shapes; never values.

#include <cstdint>
#include <vector>

#include "autograd/mpc_tensor.h"

namespace veil {

/// Variance along `dim` with a correction (Bessel's: correction 1 = unbiased, 0 = biased):
///   var = sum((x - mean)^2, dim) / (n - correction),  n = x.size(dim).
/// x: [..., n, ...] -> [..., ...] (keepdim: [..., 1, ...]), frac_bits f.
/// Two-pass (no cancellation): mean = sum * enc(1/n) (one truncation), d = x - mean (local),
/// d * d (secret: one Beaver mul, 1 round, 16(N-1) bytes per element, + a truncation), a local
/// sum and the scaling by enc(1/(n - correction)) (a truncation): 1 Beaver round + 3 truncations;
/// for N = 2: 1 round, 16 n bytes.
/// Accuracy: the mean's error cancels to first order (sum(d) = 0); the result carries the
/// encoding error of 1/(n - correction) (relative <= (n - correction) 2^-(f+1), as mean() with
/// 1/n) plus about 1 ulp: measured 40 ulp for n = 50 values in [-2, 2] (var ~ 1.3). Values must
/// keep sum(d^2) 2^(2f) far below 2^63 (the 2-party truncation failure probability is about
/// sum(d^2) 2^(2f-64) per row).
/// Backward: dx = g * d * 2 / (n - correction) (g broadcast along dim): one Beaver mul when g
/// and x are secret, and a truncation each. Errors: "[var] ..." for dim out of range or
/// n - correction <= 0, correction < 0.
MpcTensor var(const MpcTensor& x, int64_t dim, bool keepdim = false, int64_t correction = 1);
/// Variance over several dims at once (each listed once, any order, negative allowed), e.g. the
/// per-channel variance of [N, C, H, W] over {0, 2, 3}; n is the product of their extents.
/// Same algorithm, cost and backward as the single-dim form. An empty list reduces over all dims.
MpcTensor var(const MpcTensor& x,
              const std::vector<int64_t>& dims,
              bool keepdim = false,
              int64_t correction = 1);
/// Unbiased variance of all elements -> 0-d (for another correction use
/// var(x, std::vector<int64_t>{}, false, correction)).
MpcTensor var(const MpcTensor& x);

/// Product along `dim`: x [..., n, ...] -> [..., ...] (keepdim: [..., 1, ...]).
/// A log-depth tree: each level multiplies the first half of the remaining factors by the second
/// half elementwise (an odd last factor is carried up): ceil(log2 n) levels, each one Beaver mul
/// of n_l / 2 pairs + a truncation. Secret: ceil(log2 n) rounds (2 ceil(log2 n) for N > 2);
/// bytes per reduced row 16(N-1)(n - 1) (+ 8(n - 1) for N > 2: the tree has n - 1 products).
/// Public: the same tree with floor truncation, bit exact.
/// Accuracy: relative error about ceil(log2 n) * 2^-f / min|partial product| (measured 1.1e-4
/// for 16 factors in [0.7, 1.4]); every partial product must stay inside the fixed-point range
/// (|.| < 2^(62-2f) for the 2-party truncation to be reliable).
/// Backward (g broadcast along dim): dx_i = g prod_{j != i} x_j without division, by a top-down
/// pass over the saved tree levels (each child gets its parent's value times its sibling's):
/// ceil(log2 n) Beaver rounds (the top level is local when g is public), one mul of 2 x pairs
/// elements per level: 32(N-1)(n - 1) bytes per row (+ truncations).
/// Errors: "[prod] ..." for dim out of range or an empty dim.
MpcTensor prod(const MpcTensor& x, int64_t dim, bool keepdim = false);
/// Product of all elements -> 0-d (the tree over the flattened x).
MpcTensor prod(const MpcTensor& x);

/// Inclusive cumulative sum along `dim`: out[..., i, ...] = sum_{j <= i} x[..., j, ...].
/// Local, exact (ring additions). Backward: the reverse cumulative sum of g (local).
/// Errors: "[cumsum] ..." for dim out of range.
MpcTensor cumsum(const MpcTensor& x, int64_t dim);

/// Values and positions of a max/min along a dim.
struct ValuesIndices {
  /// The maxima (minima): differentiable, x's visibility and frac_bits.
  MpcTensor values;
  /// Their positions along the dim: integers (frac_bits 0), secret when x is secret (reveal()
  /// gives float64 integers); not differentiable.
  MpcTensor indices;
};

/// Max along `dim` with its index: x [..., C, ...] -> values, indices [..., ...] (keepdim:
/// [..., 1, ...]). Secret: crypto::max_lastdim on x with `dim` moved last (a local permute):
/// its tournament of comparisons with value and index selection fused in; its rounds and bytes
/// are this op's cost (crypto/protocols/nonlinear.h; measured in this tree for C = 10, N = 2:
/// 6 rounds, 67 bytes per input element). Exact (no truncation): the values are the encodings
/// of maximal elements. Public: plain int64 comparison of the encodings, bit exact. Ties: public
/// returns the first maximal position (like torch); secret returns a maximal position chosen by
/// the tournament, not necessarily the first.
/// Backward: g goes to the selected position only: dx = g * onehot(index), the one-hot computed
/// in the first backward (and kept) by crypto::eq of the secret index against the public
/// positions 0..C-1 (one comparison on 2C elements per row) and one mul with the integer
/// one-hot (a Beaver round when g is secret, local when public; no truncation): measured for
/// C = 10, N = 2: 4 rounds, ~11 bytes per input element. Public: the ring one-hot.
/// Errors: "[max] ..." for dim out of range or an empty dim.
ValuesIndices max(const MpcTensor& x, int64_t dim, bool keepdim = false);
/// Min along `dim`: max of -x, negated. Same cost, encoding, tie rule and backward as max.
/// Errors: "[min] ...".
ValuesIndices min(const MpcTensor& x, int64_t dim, bool keepdim = false);
/// Largest element of x -> 0-d (the tournament over the flattened x). Backward as max.
/// Errors: "[max] ..." for an empty x.
MpcTensor max(const MpcTensor& x);
/// Smallest element of x -> 0-d. Errors: "[min] ..." for an empty x.
MpcTensor min(const MpcTensor& x);
/// max(x, dim, keepdim).indices: a secret integer index (frac_bits 0) for a secret x.
/// Not differentiable. Cost: the tournament only (no one-hot).
MpcTensor argmax(const MpcTensor& x, int64_t dim, bool keepdim = false);
/// min(x, dim, keepdim).indices.
MpcTensor argmin(const MpcTensor& x, int64_t dim, bool keepdim = false);
/// Index of the largest element of the flattened x -> 0-d integer.
MpcTensor argmax(const MpcTensor& x);
/// Index of the smallest element of the flattened x -> 0-d integer.
MpcTensor argmin(const MpcTensor& x);

}  // namespace veil
