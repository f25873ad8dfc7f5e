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

}  // namespace veil::nn
