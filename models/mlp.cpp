#include "models/mlp.h"

#include <string>

namespace veil::models {

MlpImpl::MlpImpl(const std::vector<int64_t>& sizes) : sizes_(sizes) {
  VEIL_CHECK(sizes.size() >= 2, "[Mlp] expected at least 2 layer sizes, got {}", sizes.size());
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    VEIL_CHECK(sizes[l] > 0 && sizes[l + 1] > 0, "[Mlp] expected positive layer sizes, got {}",
               fmt::join(sizes, ", "));
    layers.push_back(register_module("fc" + std::to_string(l + 1),
                                     nn::Linear(nn::LinearOptions(sizes[l], sizes[l + 1]))));
  }
}

MpcTensor MlpImpl::forward(const MpcTensor& x) {
  MpcTensor h = x;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    h = layers[l](h);
    if (l + 1 < layers.size()) {
      h = veil::relu(h);
    }
  }
  return h;
}

void MlpImpl::load_weights(const std::vector<core::Tensor>& weights,
                           const std::vector<core::Tensor>& biases) {
  VEIL_CHECK(weights.size() == layers.size() && biases.size() == layers.size(),
             "[Mlp::load_weights] expected {} weight and bias tensors, got {} and {}",
             layers.size(), weights.size(), biases.size());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    layers[l]->load_weights(weights[l], biases[l]);
  }
}

}  // namespace veil::models
