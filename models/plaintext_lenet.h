#pragma once
// LeNet-5 with BatchNorm for 28x28 grey-scale images, and its float64 "plaintext twin".
//
//   x [B, 784] -> [B, 1, 28, 28]
//   conv1: Conv2d(1, c1, 5, padding 2, no bias) -> bn1: BatchNorm2d(c1) -> ReLU -> MaxPool2d(2)
//   conv2: Conv2d(c1, c2, 5, no bias)           -> bn2: BatchNorm2d(c2) -> ReLU -> MaxPool2d(2)
//   Flatten [B, c2 * 5 * 5] -> fc1: Linear(25 c2, h1) -> ReLU -> fc2: Linear(h1, h2) -> ReLU
//   -> fc3: Linear(h2, classes) -> logits
//
// The convolutions have no bias: BatchNorm subtracts the per-channel batch mean right after, so a
// bias would cancel exactly (its gradient is zero) and only add work and rounding noise.
// LeNetConfig holds the widths; the default is LeCun et al.'s 6-16-120-84-10 (Gradient-based
// learning applied to document recognition, Proc. IEEE 1998, Sec. II.B), with BatchNorm (Ioffe &
// Szegedy, ICML 2015, arXiv:1502.03167, Alg. 1-2) after each convolution.
//
// PlaintextLeNet computes that network, its gradients and its updates in float64, to measure what
// accuracy the fixed-point private training (models/lenet.h) loses. Not secure in any sense.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "models/data.h"
#include "models/plaintext_optim.h"

namespace veil::models {

/// Tensors with their PyTorch-style dotted names ("conv1.weight", "bn1.running_mean").
using NamedTensors = std::vector<std::pair<std::string, core::Tensor>>;

/// Widths of the LeNet (image size fixed at 1 x 28 x 28).
struct LeNetConfig {
  int64_t conv1_channels = 6;
  int64_t conv2_channels = 16;
  int64_t fc1_features = 120;
  int64_t fc2_features = 84;
  int64_t classes = 10;
  /// BatchNorm2d's eps and momentum (PyTorch defaults).
  double bn_eps = 1e-5;
  double bn_momentum = 0.1;

  /// Inputs of fc1: conv2_channels * 5 * 5.
  int64_t flat_features() const { return conv2_channels * 25; }
  /// "lenet 6-16-120-84-10".
  std::string str() const;
  /// Throws ValueError "[op] ..." for a width < 1 (classes < 2), bn_eps <= 0 or bn_momentum
  /// outside [0, 1].
  void validate(const char* op) const;
};

/// Initial parameters, PyTorch's defaults, in the order of LeNetImpl::named_parameters():
/// conv1.weight [c1, 1, 5, 5], bn1.weight [c1], bn1.bias [c1], conv2.weight [c2, c1, 5, 5],
/// bn2.weight, bn2.bias [c2], fc1.weight [25 c2, h1], fc1.bias [h1], fc2.weight [h1, h2],
/// fc2.bias, fc3.weight [h2, classes], fc3.bias (float64; Linear weights are [in, out], veil's
/// layout). Convolution and Linear entries are uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)]
/// (torch's kaiming_uniform_ with a = sqrt(5)), fan_in = in * 25 resp. in: layer l (conv1,
/// conv2, fc1, fc2, fc3 = 0..4) draws (2u - 1) / sqrt(fan_in) with u from
/// crypto::Prg(Prg::public_seed(seed, 2000 + l)).uniform_double(), weight (row-major) then bias.
/// BatchNorm weights are 1 and biases 0. Throws as LeNetConfig::validate.
NamedTensors init_lenet_parameters(const LeNetConfig& config, uint64_t seed);

/// Gradients of the mean softmax cross-entropy of one batch.
struct LeNetGradients {
  /// d loss / d parameter, named and ordered like PlaintextLeNet::parameters().
  NamedTensors parameters;
  /// The batch's mean loss.
  double loss = 0.0;
};

/// The float64 LeNet. Training mode (the default) normalises with the batch's statistics (biased
/// variance) and train_step updates the running statistics with PyTorch's rule
/// r = (1 - momentum) r + momentum s (s = mean, resp. the unbiased variance n / (n - 1) var,
/// n = B H W); eval mode normalises with the running statistics.
class PlaintextLeNet {
 public:
  /// Takes initial parameters named and shaped as init_lenet_parameters (cloned); running means
  /// start at 0 and running variances at 1. Throws ValueError naming the entry when a name, shape
  /// or dtype differs, and as LeNetConfig::validate.
  PlaintextLeNet(const LeNetConfig& config, const NamedTensors& parameters);
  /// A model initialised by init_lenet_parameters(config, seed).
  static PlaintextLeNet from_seed(const LeNetConfig& config, uint64_t seed);

  /// Training (batch statistics) or eval (running statistics) mode.
  void train(bool on = true) { training_ = on; }
  void eval() { training_ = false; }
  bool is_training() const { return training_; }

  /// x float64 [B, 784] or [B, 1, 28, 28] -> logits float64 [B, classes]; the running statistics
  /// are not changed. ValueError "[PlaintextLeNet::forward] ..." on a bad shape or dtype, or a
  /// batch of one row in training mode (its variance is undefined).
  core::Tensor forward(const core::Tensor& x) const;
  /// Mean softmax cross-entropy of the batch and its gradient with respect to every parameter
  /// (in the current mode); does not change the model. labels int64 [B] in [0, classes).
  LeNetGradients gradients(const core::Tensor& x, const core::Tensor& labels) const;
  /// One training step: gradients (training mode only: ValueError otherwise), then the running
  /// statistics update, then optimizer.step on parameters(). Returns the batch's mean loss.
  double train_step(const core::Tensor& x,
                    const core::Tensor& labels,
                    PlaintextOptimizer& optimizer);
  /// Mean softmax cross-entropy of the batch (current mode, no gradients).
  double loss(const core::Tensor& x, const core::Tensor& labels) const;
  /// Argmax of the logits (first maximum on ties), int64 [B], in the current mode.
  core::Tensor predict(const core::Tensor& x) const;
  /// Fraction of rows of `data` predicted correctly, `batch` rows at a time, in the current mode
  /// (call eval() first for inference). ValueError when batch < 1 or the dataset is empty.
  double accuracy(const Dataset& data, int64_t batch = 1000) const;

  /// The parameters (views of the model's own tensors: modifying them modifies the model).
  const NamedTensors& parameters() const { return parameters_; }
  /// bn1.running_mean, bn1.running_var, bn2.running_mean, bn2.running_var.
  const NamedTensors& buffers() const { return buffers_; }
  const LeNetConfig& config() const { return config_; }
  /// Replaces running statistics by name (a subset of buffers(), float64 of the same shape; e.g. a
  /// pretrained model's). Throws ValueError naming the entry for an unknown name or a shape or
  /// dtype mismatch.
  void load_buffers(const NamedTensors& buffers);
  /// Parameters whose names start with one of `prefixes` are left unchanged by train_step (their
  /// gradients are still computed; the optimizer sees only the others, so its state is kept for
  /// those). Set it before the first train_step.
  void set_frozen(const std::vector<std::string>& prefixes);

 private:
  struct Cache;
  // Forward pass; fills `cache` (when non-null) with what backward needs.
  core::Tensor run(const core::Tensor& x, Cache* cache) const;
  // Forward into `cache`, then the gradients.
  LeNetGradients backward(const core::Tensor& x, const core::Tensor& labels, Cache& cache) const;
  const core::Tensor& param(std::size_t i) const { return parameters_[i].second; }

  LeNetConfig config_;
  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<bool> frozen_;
  bool training_ = true;
};

}  // namespace veil::models
