#pragma once
// Activation layers.

#include "autograd/mpc_tensor.h"
#include "nn/module.h"

namespace veil::nn {

/// max(x, 0) elementwise (veil::relu: secret input costs 9 rounds, ~63 bytes per element for
/// N = 2; backward one Beaver mul with the saved [x >= 0] bit, no truncation).
class ReLUImpl : public Module {
 public:
  ReLUImpl() = default;
  /// x: any shape -> same shape.
  MpcTensor forward(const MpcTensor& x);
};

VEIL_MODULE(ReLU);

/// veil::sigmoid as a layer. x: any shape -> same shape.
class SigmoidImpl : public Module {
 public:
  SigmoidImpl() = default;
  MpcTensor forward(const MpcTensor& x);
};
VEIL_MODULE(Sigmoid);

/// veil::tanh as a layer. x: any shape -> same shape.
class TanhImpl : public Module {
 public:
  TanhImpl() = default;
  MpcTensor forward(const MpcTensor& x);
};
VEIL_MODULE(Tanh);

/// veil::gelu (exact erf form) as a layer. x: any shape -> same shape.
class GELUImpl : public Module {
 public:
  GELUImpl() = default;
  MpcTensor forward(const MpcTensor& x);
};
VEIL_MODULE(GELU);

}  // namespace veil::nn
