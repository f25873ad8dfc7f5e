#pragma once
// The float64 "plaintext twin" of the private MLP: the same architecture, initial weights, batch
// order and SGD rule computed in the clear, to measure how much accuracy the fixed-point MPC
// training loses. Not secure in any sense; it never touches shares.

#include <cstdint>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "models/data.h"

namespace veil::models {

/// SGD with PyTorch's semantics (torch.optim.SGD, dampening 0, no Nesterov):
///   g = grad + weight_decay * w;  v = g on the first step, else v = momentum * v + g
///   (only when momentum != 0, else v = g);  w -= lr * v.
/// Weight decay applies to biases too, as with torch.optim.SGD(model.parameters(), ...).
struct SgdConfig {
  double lr = 0.1;
  double momentum = 0.0;
  double weight_decay = 0.0;
};

/// Initial weights of an MLP with layer sizes `sizes` (e.g. {784, 128, 10}), PyTorch's nn.Linear
/// default: every weight and bias uniform in [-1/sqrt(in), 1/sqrt(in)] (kaiming_uniform_ with
/// a = sqrt(5) gives exactly this bound). Layer l draws from
/// crypto::Prg(Prg::public_seed(seed, 1000 + l)).uniform_double(): first the weights in row-major
/// order of w_l [in, out], then the biases b_l [out]; value = (2u - 1) / sqrt(in).
/// The private model uses this function, so both start from identical values.
/// Returns {weights w_l float64 [in, out], biases b_l float64 [out]}.
/// Errors: ValueError when sizes has fewer than 2 entries or an entry < 1.
std::pair<std::vector<core::Tensor>, std::vector<core::Tensor>> init_mlp_weights(
    const std::vector<int64_t>& sizes, uint64_t seed);

/// Gradients of the mean softmax cross-entropy loss of one batch.
struct MlpGradients {
  /// d loss / d w_l, float64 [in, out] per layer.
  std::vector<core::Tensor> weights;
  /// d loss / d b_l, float64 [out] per layer.
  std::vector<core::Tensor> biases;
  /// The batch's mean loss.
  double loss = 0.0;
};

/// Multi-layer perceptron in float64: z_l = h_{l-1} w_l + b_l, h_l = relu(z_l) between layers,
/// logits = z_L (no activation after the last layer).
class PlaintextMlp {
 public:
  /// Takes the initial parameters (cloned, so the caller's tensors are never modified):
  /// weights[l] float64 [in_l, out_l], biases[l] float64 [out_l], with in_{l+1} == out_l.
  /// Errors: ValueError when the lists are empty or differ in length, or a shape/dtype is off.
  PlaintextMlp(std::vector<core::Tensor> weights, std::vector<core::Tensor> biases);
  /// A model initialised by init_mlp_weights(sizes, seed).
  static PlaintextMlp from_seed(const std::vector<int64_t>& sizes, uint64_t seed);

  /// x float64 [B, in_0] -> logits float64 [B, out_L]. ValueError on a shape/dtype mismatch.
  core::Tensor forward(const core::Tensor& x) const;
  /// Mean softmax cross-entropy of the batch and its gradients with respect to every parameter
  /// (d loss / d logits = (softmax(logits) - onehot(labels)) / B); does not change the model.
  /// x float64 [B, in_0], labels int64 [B] in [0, out_L). ValueError on bad shapes or labels.
  MlpGradients gradients(const core::Tensor& x, const core::Tensor& labels) const;
  /// One SGD step on the batch (see SgdConfig); returns the batch's mean loss before the step.
  double train_step(const core::Tensor& x, const core::Tensor& labels, const SgdConfig& cfg);
  /// Mean softmax cross-entropy of the batch (no gradients).
  double loss(const core::Tensor& x, const core::Tensor& labels) const;
  /// x float64 [B, in_0] -> int64 [B], the argmax of the logits (first maximum on ties).
  core::Tensor predict(const core::Tensor& x) const;
  /// Fraction of rows of `data` whose prediction equals the label, evaluated `batch` rows at a
  /// time. ValueError when batch < 1 or the dataset is empty.
  double accuracy(const Dataset& data, int64_t batch = 1000) const;

  /// Layer sizes {in_0, out_0, out_1, ...}.
  std::vector<int64_t> sizes() const;
  /// The current parameters (views of the model's own tensors: modifying them modifies the model).
  const std::vector<core::Tensor>& weights() const { return weights_; }
  const std::vector<core::Tensor>& biases() const { return biases_; }

 private:
  void check_input(const core::Tensor& x, const char* op) const;
  // The input of every layer (x, relu(z_0), ..., relu(z_{L-1})) followed by the logits z_L.
  std::vector<core::Tensor> forward_all(const core::Tensor& x) const;

  std::vector<core::Tensor> weights_;
  std::vector<core::Tensor> biases_;
  // Momentum buffers (undefined until the first step with momentum != 0).
  std::vector<core::Tensor> weight_velocity_;
  std::vector<core::Tensor> bias_velocity_;
};

}  // namespace veil::models
