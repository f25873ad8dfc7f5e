#pragma once
// The private LeNet: the architecture of models/plaintext_lenet.h (LeNetConfig) built from veil's
// layers, so data, weights, BatchNorm statistics and gradients can all be secret.
//
//   x [B, 784] -> [B, 1, 28, 28]
//   conv1 (Conv2d(1, c1, 5, padding 2, no bias)) -> bn1 (BatchNorm2d(c1)) -> ReLU -> MaxPool2d(2)
//   conv2 (Conv2d(c1, c2, 5, no bias))           -> bn2 (BatchNorm2d(c2)) -> ReLU -> MaxPool2d(2)
//   Flatten -> fc1 (Linear(25 c2, h1)) -> ReLU -> fc2 (Linear(h1, h2)) -> ReLU
//   -> fc3 (Linear(h2, classes))
//
// The code applies each ReLU after its max pooling: both are monotone, so
// relu(maxpool(y)) = maxpool(relu(y)) and the gradients agree (except where a window's maximum is
// exactly 0); the secret ReLU then runs on a quarter of the elements.
//
// Parameters, in named_parameters() order: conv1.weight, bn1.weight, bn1.bias, conv2.weight,
// bn2.weight, bn2.bias, fc1.weight, fc1.bias, fc2.weight, fc2.bias, fc3.weight, fc3.bias
// (Linear weights [in, out]); buffers bn1.running_mean, bn1.running_var, ... (and whatever else
// nn::BatchNorm2d keeps). The same names as PlaintextLeNet, so init_lenet_parameters() feeds both.

#include "models/plaintext_lenet.h"
#include "nn/nn.h"
#include "nn/norm.h"

namespace veil::models {

class LeNetImpl : public nn::Module {
 public:
  /// Builds the layers with public parameters initialised by each layer's default (the party's
  /// common PRG); use load_parameters(init_lenet_parameters(config, seed)) to start from the
  /// twin's values. Throws as LeNetConfig::validate.
  explicit LeNetImpl(const LeNetConfig& config = {}, Party& party = crypto::current_party());

  /// x: [B, 784] or [B, 1, 28, 28] (public or secret, the party's frac_bits) -> logits
  /// [B, classes], secret when x or the parameters are. Training mode normalises with the batch
  /// statistics and updates the running ones (nn::BatchNorm2d); eval mode uses the running ones.
  /// Cost per image with secret x and weights (N = 2; B images per batch):
  ///   conv1: Beaver conv (1 round, 8(|x| + |w|/B) bytes, |x| = 784) + truncation of 784 c1;
  ///   bn1: veil::batch_norm on 784 c1 values (23 rounds per batch, see autograd/norm.h);
  ///   max pooling over 196 c1 windows of 4 (nn::MaxPool2d: a comparison tree and, for the
  ///   backward, the one-hot of the argmax), then ReLU on 196 c1;
  ///   conv2 (1 round, 8(196 c1 + 25 c1 c2 / B) bytes), bn2 on 100 c2, pooling over 25 c2
  ///   windows, ReLU on 25 c2; fc1..fc3: Beaver matmuls, ReLU on h1 + h2.
  ///   Rounds per training step do not depend on B; the secret comparisons (max pooling first,
  ///   then ReLU) dominate time and bytes. Measured figures: docs/getting-started.md.
  /// Errors: ValueError "[LeNet] expected input [B, 784] or [B, 1, 28, 28], got ..." for another
  /// shape; the layers' errors otherwise.
  MpcTensor forward(const MpcTensor& x);

  /// Replaces the parameters with public float64 values named and shaped as
  /// init_lenet_parameters(config(), seed) (all parties pass the same values; before encrypt()).
  /// Throws ValueError naming the entry for an unknown or missing name or a shape mismatch, or
  /// when the parameters are already secret.
  void load_parameters(const NamedTensors& parameters);

  const LeNetConfig& config() const { return config_; }

  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr};
  nn::Conv2d conv2{nullptr};
  nn::BatchNorm2d bn2{nullptr};
  nn::Linear fc1{nullptr};
  nn::Linear fc2{nullptr};
  nn::Linear fc3{nullptr};
  nn::MaxPool2d pool{nullptr};

 private:
  LeNetConfig config_;
};
VEIL_MODULE(LeNet);

}  // namespace veil::models
