#pragma once
// Differentiable data-movement ops on MpcTensor: views, concatenation, slicing, gathering and
// constant padding. They move ring elements (the public encoding or this party's share) without
// arithmetic, so every one is local: 0 rounds, 0 bytes, for public and secret values alike, and
// exact (the result holds the very encodings of the input; public mode is bit exact by
// construction). Backward rules are the adjoint data movements (reverse view, slice of g,
// scatter-add of g); they are local too and keep g's visibility.
//
// Conventions follow PyTorch (torch.flatten, permute, transpose, squeeze, unsqueeze, cat, stack,
// narrow, select, gather, index_select, torch.nn.functional.pad in constant mode): negative dims
// count from the end; index tensors are public core::Tensors of dtype int64 (identical on every
// party). Results are secret when any input is secret (cat, stack: a public input joins as the
// trivial sharing, party 0 holding its encoding) and take the largest frac_bits of the inputs
// (exact left shifts align the others). Errors: ValueError "[op] ..." naming the op, the shapes
// and the offending argument; never values.

#include <cstdint>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "core/tensor.h"

namespace veil {

/// Flattens dims start_dim..end_dim into one: [2, 3, 4, 5] with (1, 2) -> [2, 12, 5]. A 0-d x
/// becomes [1]. Local. Backward: reshape back. Errors: dims out of range or start after end.
MpcTensor flatten(const MpcTensor& x, int64_t start_dim = 0, int64_t end_dim = -1);

/// Reorders the dims: out.size(i) = x.size(dims[i]) (a strided view). Local. Backward: the
/// inverse permutation. Errors: "[permute] ..." when dims is not a permutation of 0..x.dim()-1.
MpcTensor permute(const MpcTensor& x, const std::vector<int64_t>& dims);

/// Swaps dims d0 and d1 of a tensor of any rank (a strided view). Local. Backward: the same swap.
/// (transpose(x) without dims is the 2-D transpose of autograd/functions.h.) Errors: dims out of
/// range.
MpcTensor transpose(const MpcTensor& x, int64_t d0, int64_t d1);

/// Removes dim `dim` when its extent is 1 (otherwise returns x unchanged, like torch). Local.
/// Backward: reshape back. Errors: dim out of range.
MpcTensor squeeze(const MpcTensor& x, int64_t dim);
/// Removes every dim of extent 1. Local. Backward: reshape back.
MpcTensor squeeze(const MpcTensor& x);
/// Inserts a dim of extent 1 at position `dim` in [-(x.dim() + 1), x.dim()]: [2, 3] with 1 ->
/// [2, 1, 3]. Local. Backward: reshape back. Errors: dim out of range.
MpcTensor unsqueeze(const MpcTensor& x, int64_t dim);

/// Concatenates tensors of equal rank along `dim` (the other extents equal). Public and secret
/// inputs may be mixed: the result is secret when any input is secret; frac_bits is the largest
/// of the inputs (others lifted by an exact shift). Local. Backward: the slice of g for each
/// input (a view). Errors: "[cat] ..." for no inputs, different ranks or extents, operands of
/// different parties.
MpcTensor cat(const std::vector<MpcTensor>& xs, int64_t dim = 0);
/// Stacks tensors of equal shape along a new dim `dim` in [-(r + 1), r] (r their rank): k inputs
/// [a, b] with dim 1 -> [a, k, b]. Same visibility rules, cost and backward as cat. Errors:
/// "[stack] ..." for no inputs or different shapes.
MpcTensor stack(const std::vector<MpcTensor>& xs, int64_t dim = 0);

/// Elements start, start + step, ... (< end) along `dim`, with Python slice semantics: negative
/// start/end count from the end, both are clamped to [0, size] (an empty range gives extent 0);
/// step >= 1. step 1 is a view, step > 1 a local copy. Backward: g scattered into zeros of x's
/// shape. Errors: "[slice] ..." for dim out of range or step < 1.
MpcTensor slice(const MpcTensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
/// x.slice(dim, start, start + length) with torch.narrow's checks: start in [-size, size]
/// (negative counts from the end), length >= 0 and start + length <= size. Errors: "[narrow] ...".
MpcTensor narrow(const MpcTensor& x, int64_t dim, int64_t start, int64_t length);
/// The sub-tensor at `index` along `dim`, dim removed: [2, 3, 4] with (1, -1) -> [2, 4].
/// index in [-size, size). Local. Backward: g placed at `index` of zeros. Errors: "[select] ...".
MpcTensor select(const MpcTensor& x, int64_t dim, int64_t index);

/// torch.gather: out[i][j][k] = x[index[i][j][k]][j][k] for dim 0 (and likewise for the other
/// dims). index: public int64 with x's rank, index.size(d) <= x.size(d) for d != dim, values in
/// [0, x.size(dim)) -> out has index's shape. Local. Backward: scatter-add of g into zeros of
/// x's shape (repeated indices accumulate). Errors: "[gather] ..." for a wrong dtype or rank,
/// extents larger than x's, or an index out of range.
MpcTensor gather(const MpcTensor& x, int64_t dim, const core::Tensor& index);
/// torch.index_select: the entries index[0], index[1], ... of `dim` (in that order, repeats
/// allowed). index: public int64, 0-d or 1-D, values in [0, x.size(dim)) -> x's shape with
/// extent index.numel() at dim. Local. Backward: index-add of g (repeats accumulate).
/// Errors: "[index_select] ..." for a wrong dtype or rank, or an index out of range.
MpcTensor index_select(const MpcTensor& x, int64_t dim, const core::Tensor& index);

/// Constant padding with torch.nn.functional.pad's convention: pads = {left, right} of the last
/// dim, then {left, right} of the second-to-last dim, ... (an even number of entries, at most
/// 2 x.dim()); negative entries crop. The padded positions hold `value` encoded with x's
/// frac_bits (for a secret x party 0 holds the encoding, the others 0: still local). Local.
/// Backward: the slice of g covering x (padded positions get no gradient; cropped ones 0).
/// Errors: "[pad] ..." for an odd or too long pads, a resulting extent < 0, or a value outside
/// the fixed-point range.
MpcTensor pad(const MpcTensor& x, const std::vector<int64_t>& pads, double value = 0.0);

}  // namespace veil
