#pragma once
// Float64 optimizers of the plaintext twins (PlaintextMlp, PlaintextLeNet): SGD and Adam with
// PyTorch's update rules, applied in place to a list of parameter tensors. They are the reference
// the private optimizers (optim::SGD, optim::Adam) are compared against; nothing here touches
// shares.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace veil::models {

/// Which update rule a training run uses (veil-train --optimizer sgd|adam).
enum class OptimizerKind { kSgd, kAdam };

/// "sgd" or "adam".
std::string_view optimizer_name(OptimizerKind kind);
/// Inverse of optimizer_name. Throws ValueError "[optimizer] expected 'sgd' or 'adam', got ..."
/// for any other name.
OptimizerKind parse_optimizer(std::string_view name);

/// Hyper-parameters of both rules (the fields of the other rule are ignored).
///   SGD  (torch.optim.SGD, dampening 0, no Nesterov): g = grad + weight_decay * w;
///        v = g on the first step, else momentum * v + g (only when momentum != 0, else v = g);
///        w -= lr * v.
///   Adam (torch.optim.Adam, no amsgrad), step t = 1, 2, ...: g = grad + weight_decay * w;
///        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
///        w -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps).
/// Weight decay applies to every parameter (biases and BatchNorm affine parameters too), as with
/// torch.optim.*(model.parameters(), ...).
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  double lr = 0.1;
  double momentum = 0.0;  ///< SGD only
  double weight_decay = 0.0;
  double beta1 = 0.9;    ///< Adam only
  double beta2 = 0.999;  ///< Adam only
  double eps = 1e-8;     ///< Adam only

  /// Throws ValueError "[op] ..." when lr <= 0, momentum or weight_decay < 0, a beta outside
  /// [0, 1) or eps <= 0.
  void validate(const char* op) const;
};

/// Applies OptimizerConfig's rule to a fixed list of float64 parameter tensors, keeping the
/// per-parameter state (momentum buffer, or Adam's first and second moments) between steps.
class PlaintextOptimizer {
 public:
  /// Throws as OptimizerConfig::validate.
  explicit PlaintextOptimizer(const OptimizerConfig& config);

  /// One update: params[i] -= ... from grads[i] (same shapes, float64). The parameters are
  /// modified in place, so views of a model's own tensors update the model. The first call fixes
  /// the number of parameters and their shapes. Throws ValueError "[PlaintextOptimizer::step] ..."
  /// when the lists differ in length from each other or from the first call, or a tensor is not a
  /// contiguous float64 tensor of the matching shape.
  void step(const std::vector<core::Tensor>& params, const std::vector<core::Tensor>& grads);

  /// Steps taken so far.
  int64_t steps() const { return steps_; }
  const OptimizerConfig& config() const { return config_; }

 private:
  OptimizerConfig config_;
  int64_t steps_ = 0;
  std::vector<core::Tensor> state1_;  // SGD: momentum buffer; Adam: first moment m
  std::vector<core::Tensor> state2_;  // Adam: second moment v
};

}  // namespace veil::models
