#pragma once
// Dropout and Flatten layers.

#include "autograd/mpc_tensor.h"
#include "nn/module.h"

namespace veil::nn {

/// Inverted dropout: in training mode each element is kept with probability 1 - p and scaled by
/// 1 / (1 - p); in eval mode the identity. The mask is drawn from the parties' common PRG: it is
/// public (independent of the data, so it discloses nothing) and identical on every party, which
/// makes dropout of a secret tensor a public·secret product: no Beaver triple, one truncation
/// (local for 2 parties). Backward multiplies by the same scaled mask.
/// x: any shape -> same shape. Throws ValueError for p outside [0, 1).
class DropoutImpl : public Module {
 public:
  explicit DropoutImpl(double p = 0.5);
  MpcTensor forward(const MpcTensor& x);
  double p() const { return p_; }

 private:
  double p_;
};
VEIL_MODULE(Dropout);

/// Flattens dimensions start_dim..end of x into one: [N, C, H, W] -> [N, C*H*W] for start_dim 1.
/// Local (a reshape); differentiable. Throws ValueError for start_dim outside [0, x.dim()).
class FlattenImpl : public Module {
 public:
  explicit FlattenImpl(int64_t start_dim = 1) : start_dim_(start_dim) {}
  MpcTensor forward(const MpcTensor& x);
  /// The first flattened dimension.
  int64_t start_dim() const { return start_dim_; }

 private:
  int64_t start_dim_;
};
VEIL_MODULE(Flatten);

}  // namespace veil::nn
