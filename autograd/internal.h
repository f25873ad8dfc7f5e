#pragma once
// Internal helpers of the differentiable ops (functions.cpp, shape_ops.cpp, reduce_ops.cpp):
// value-level arithmetic on MpcTensor that never records a node. Backward rules and composite
// forwards use them; they follow the visibility rules of autograd/functions.h (public ∘ public is
// plain ring arithmetic with floor truncation, public ∘ secret local protocols, secret ∘ secret
// Beaver). Not part of the public API: include only from autograd/*.cpp.

#include <cstdint>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "core/tensor.h"
#include "crypto/bilinear.h"

namespace veil::autograd::detail {

/// The party of a defined operand. ValueError "[op] ..." for an undefined one.
Party& party_of(const MpcTensor& x, const char* op);
/// The common party of two operands. ValueError when undefined or of different parties.
Party& party_of(const MpcTensor& x, const MpcTensor& y, const char* op);

/// An exact change of scale from `from` to `to` >= from fractional bits (a left shift).
core::Tensor lift(const core::Tensor& ring, int from, int to);
/// A public (encoding) or secret (share) MpcTensor from a ring64 tensor.
MpcTensor make(Party& p, bool secret, core::Tensor value, int frac_bits);
/// Same visibility, party and frac_bits as `ref`, with the ring tensor `value`.
MpcTensor like(const MpcTensor& ref, core::Tensor value);
/// A public value decoded to a contiguous float64 tensor.
core::Tensor decode(const MpcTensor& x);
/// dim in [-x.dim(), x.dim()) mapped to [0, x.dim()). ValueError "[op] dim ... out of range".
int64_t normalize_dim(const MpcTensor& x, int64_t dim, const char* op);

/// x + y (broadcasting; frac_bits aligned to the larger by an exact shift). Local.
MpcTensor raw_add(const MpcTensor& x, const MpcTensor& y, const char* op);
/// -x. Local.
MpcTensor raw_neg(const MpcTensor& x, const char* op);
/// x - y. Local.
MpcTensor raw_sub(const MpcTensor& x, const MpcTensor& y, const char* op);
/// x * y (broadcasting) with frac_bits max(f_x, f_y): truncation by min(f_x, f_y).
MpcTensor raw_mul(const MpcTensor& x, const MpcTensor& y, const char* op);
/// x * x with x's frac_bits: a secret x from a square pair (half the bytes of raw_mul(x, x)), a
/// public one exactly as raw_mul(x, x).
MpcTensor raw_square(const MpcTensor& x, const char* op);
/// x * c for a public double c encoded with the party's frac_bits (one truncation).
MpcTensor raw_mul_scalar(const MpcTensor& x, double c, const char* op);
/// 2-D matrix product with frac_bits max(f_x, f_w).
MpcTensor raw_matmul(const MpcTensor& x, const MpcTensor& w, const char* op);
/// f(x, y) for a bilinear op with frac_bits max(f_x, f_y).
MpcTensor raw_bilinear(const crypto::BilinearOp& bop,
                       const MpcTensor& x,
                       const MpcTensor& y,
                       const char* op);
/// Transpose of a 2-D tensor (a view).
MpcTensor raw_transpose(const MpcTensor& x, const char* op);
/// Reshape (a view when contiguous).
MpcTensor raw_reshape(const MpcTensor& x, const core::Shape& shape, const char* op);
/// Sum along a normalized dim. Local.
MpcTensor raw_sum(const MpcTensor& x, int64_t dim, bool keepdim, const char* op);
/// g [shape with `dim` reduced (kept as 1 when keepdim)] repeated along `dim` to `shape`.
MpcTensor expand_back(const MpcTensor& g, const core::Shape& shape, int64_t dim, bool keepdim);
/// This party's share of x: x's share when secret; for a public x the trivial sharing (party 0
/// holds the encoding, the others zeros). Used to mix public operands into secret results of
/// data-movement ops (cat, stack). Local.
core::Tensor share_ring(const MpcTensor& x);

/// Public max over the last dim of ring64 windows [..., k] (signed comparison; the first maximum
/// wins ties): `values` gets shape `out_shape` (the windows' shape without the last dim), `onehot`
/// the windows' shape with a 1 (integer) at each maximum. Local.
struct PublicMax {
  core::Tensor values;
  core::Tensor onehot;
};
PublicMax public_max_lastdim(const core::Tensor& windows, const core::Shape& out_shape);

/// Aliases and a cast shared by the op files.
using Grads = std::vector<MpcTensor>;
using Needs = std::vector<bool>;
inline std::size_t at(int64_t i) {
  return static_cast<std::size_t>(i);
}

}  // namespace veil::autograd::detail
