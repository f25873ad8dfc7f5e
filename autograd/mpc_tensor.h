#pragma once
// MpcTensor: the one user-facing tensor type (architecture decisions A and B). A shallow handle
// (copies share the value and the autograd metadata, like torch::Tensor) to either
//   * a public value: a ring64 fixed-point tensor that is identical on every party, or
//   * a secret value: this party's additive share (crypto::AShare) of a fixed-point tensor,
// plus autograd metadata: requires_grad, the accumulated gradient (itself an MpcTensor: secret as
// soon as anything it depends on was secret) and the graph node that produced it.
//
// Every value belongs to one crypto::Party. Only reveal() / reveal_to() open secrets (decision I).
// The differentiable ops on MpcTensor live in autograd/functions.h; the tape in autograd/node.h.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "crypto/party.h"
#include "crypto/share.h"

namespace veil {

/// Re-export: the party a value belongs to.
using Party = crypto::Party;

namespace autograd {
struct Node;
}  // namespace autograd

/// A public or secret fixed-point tensor with autograd metadata. See the file comment.
class MpcTensor {
 public:
  /// An undefined handle (defined() == false), e.g. the grad of a tensor before backward.
  MpcTensor() = default;

  // ---- factories --------------------------------------------------------------------------------

  /// Public value: encodes the float64/float32 tensor `values` (the same on every party) with the
  /// party's frac_bits. No communication. Throws ValueError for NaN/inf or |x| >= 2^(62-f).
  static MpcTensor from_public(const core::Tensor& values, Party& party = crypto::current_party());
  /// Public value from an already encoded ring64 tensor with `frac_bits` fractional bits
  /// (frac_bits 0 for integers such as one-hot labels and masks). Throws ValueError on a dtype
  /// other than ring64.
  static MpcTensor from_public_ring(const core::Tensor& ring,
                                    int frac_bits,
                                    Party& party = crypto::current_party());
  /// Secret value from this party's share (frac_bits taken from the share). Throws ValueError for
  /// an undefined or non-ring64 share.
  static MpcTensor from_secret(crypto::AShare share, Party& party = crypto::current_party());
  /// A secret whose value is computed by `compute` only when first needed (reveal, use as an
  /// operand, ...); shape, frac_bits and autograd metadata are available before. Every party
  /// forces it at the same point of the program (it does what its program does), so the
  /// communication sequence stays identical. Used for loss values, which backward does not need:
  /// the protocols behind them run only if the program reveals the loss.
  static MpcTensor deferred_secret(const core::Shape& shape,
                                   int frac_bits,
                                   Party& party,
                                   std::function<crypto::AShare()> compute);
  /// Secret-shares the float tensor `x` held by party `src` (others pass an undefined tensor);
  /// every party passes the same `shape`. PRZS input sharing: 0 rounds, 0 bytes. Throws ValueError
  /// on a shape mismatch at src, NaN/inf, range, or src out of [0, world_size).
  static MpcTensor share(const core::Tensor& x,
                         int src,
                         const core::Shape& shape,
                         Party& party = crypto::current_party());
  /// Public zeros of `shape` (frac_bits of the party).
  static MpcTensor zeros(const core::Shape& shape, Party& party = crypto::current_party());

  // ---- value ------------------------------------------------------------------------------------

  /// False for a default-constructed handle.
  bool defined() const { return impl_ != nullptr; }
  /// True for additive shares, false for a public value. Throws ValueError when undefined.
  bool is_secret() const;
  /// !is_secret().
  bool is_public() const { return !is_secret(); }
  /// Shape of the value (the shape of the share for secrets).
  const core::Shape& shape() const;
  /// Number of elements.
  int64_t numel() const;
  /// Number of dimensions.
  int64_t dim() const;
  /// Extent of dimension d (negative counts from the end). ValueError when out of range.
  int64_t size(int64_t d) const;
  /// Fixed-point fractional bits of the value (the party's frac_bits except for integer values).
  int frac_bits() const;
  /// The party this value belongs to.
  Party& party() const;
  /// This party's share of a secret value. Throws ValueError for a public value.
  crypto::AShare ashare() const;
  /// The encoded ring64 tensor of a public value. Throws ValueError for a secret value.
  const core::Tensor& public_ring() const;
  /// The raw ring64 tensor: the public encoding or this party's share.
  const core::Tensor& ring() const;

  /// Decodes the value to float64 on every party. Public: local. Secret: opens it to everyone,
  /// 1 round, 8(N-1) bytes per element per party.
  core::Tensor reveal() const;
  /// Opens the value to party `rank` only (float64 there, undefined tensor elsewhere). Secret:
  /// 1 round, 8 bytes per element from every other party; public: local. ValueError on a bad rank.
  core::Tensor reveal_to(int rank) const;

  /// Turns a public value into a secret one in place on this handle (every copy of the handle sees
  /// it), shared from party `src`'s copy of the value: 0 rounds, 0 bytes (PRZS). A no-op for a
  /// value that is already secret. Keeps requires_grad and grad. Throws ValueError for a non-leaf
  /// (a tensor produced by a recorded op) or src out of range.
  void encrypt(int src = 0);
  /// A new handle to the same value with no autograd history and requires_grad false.
  MpcTensor detach() const;
  /// Replaces the value of this handle in place (visibility, shape and frac_bits come from
  /// `value`), keeping requires_grad and grad; not recorded. Used by optimizers and weight loading.
  /// Throws ValueError for a non-leaf or when `value` is undefined or belongs to another party.
  void assign_(const MpcTensor& value);

  // ---- autograd ---------------------------------------------------------------------------------

  /// Whether gradients are computed for this tensor (leaves: set by the user; results of recorded
  /// ops: true when any input requires grad).
  bool requires_grad() const;
  /// Marks a leaf as requiring grad (or not). Throws ValueError on a non-leaf. Returns *this.
  MpcTensor& set_requires_grad(bool requires_grad = true);
  /// True when the tensor was not produced by a recorded op.
  bool is_leaf() const;
  /// Accumulated gradient (undefined before the first backward or after zero_grad()). Same shape
  /// as the tensor; secret when anything it depends on was secret.
  MpcTensor grad() const;
  /// Replaces the gradient (undefined clears it). ValueError on a shape mismatch.
  void set_grad(const MpcTensor& grad);
  /// Clears the gradient (PyTorch's set_to_none semantics).
  void zero_grad();
  /// The node that produced this tensor (nullptr for leaves).
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  /// Attaches the producing node (used by autograd::record; marks the tensor requires_grad).
  void set_grad_fn(std::shared_ptr<autograd::Node> node);

  /// Backpropagates from this single-element tensor (the loss): seeds its gradient with public
  /// 1.0 (or `grad`, same shape), runs every node of its graph once in decreasing sequence number
  /// (the same order on every party) and accumulates gradients into leaves that require grad.
  /// Frees the graph's saved values unless retain_graph. Cost: the sum of the backward rules.
  /// Throws ValueError "[backward] ..." for a tensor with more than one element, one that does not
  /// require grad, or a graph already freed.
  void backward(const MpcTensor& grad = {}, bool retain_graph = false) const;

  // ---- convenience (same as the free functions in autograd/functions.h) -------------------------

  /// reshape(*this, shape).
  MpcTensor reshape(const core::Shape& shape) const;
  /// transpose(*this) of a 2-D tensor.
  MpcTensor t() const;
  /// sum(*this) over all elements -> 0-d.
  MpcTensor sum() const;
  /// sum(*this, dim, keepdim).
  MpcTensor sum(int64_t dim, bool keepdim = false) const;
  /// mean(*this) over all elements -> 0-d.
  MpcTensor mean() const;

  /// "MpcTensor(secret, [2, 3], frac 16)" — never values.
  std::string str() const;
  /// True when both handles point to the same value object.
  bool is_same(const MpcTensor& other) const { return impl_ == other.impl_; }

 private:
  struct Impl;
  Impl& impl(const char* op) const;

  std::shared_ptr<Impl> impl_;
};

}  // namespace veil
