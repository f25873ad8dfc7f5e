#pragma once
// The reference multi-layer perceptron: Linear layers with ReLU between them (none after the
// last), e.g. sizes {784, 128, 10}. Parameters are named "fc1.weight", "fc1.bias", "fc2.weight",
// ... (weight [in, out], bias [out]).

#include <vector>

#include "nn/nn.h"

namespace veil::models {

class MlpImpl : public nn::Module {
 public:
  /// sizes: layer widths, at least 2 entries, all positive (ValueError otherwise).
  explicit MlpImpl(const std::vector<int64_t>& sizes);
  /// x: [N, sizes.front()] -> logits [N, sizes.back()]. Public or secret; the output is secret
  /// when x or the parameters are. Cost per layer: one matmul (Beaver when both are secret) and
  /// one ReLU (see crypto/protocols/nonlinear.h).
  MpcTensor forward(const MpcTensor& x);
  /// Sets every layer's plaintext weights (all parties, before encrypt()): w_l [in, out], b_l
  /// [out] float64, e.g. from models::init_mlp_weights so the plaintext twin starts identical.
  void load_weights(const std::vector<core::Tensor>& weights,
                    const std::vector<core::Tensor>& biases);
  const std::vector<int64_t>& sizes() const { return sizes_; }

  std::vector<nn::Linear> layers;

 private:
  std::vector<int64_t> sizes_;
};
VEIL_MODULE(Mlp);

}  // namespace veil::models
