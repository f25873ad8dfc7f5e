#include "nn/linear.h"

#include <cmath>

#include "autograd/functions.h"
#include "crypto/prg.h"
#include "nn/init.h"

namespace veil::nn {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features)
    : LinearImpl(LinearOptions(in_features, out_features)) {}

LinearImpl::LinearImpl(const LinearOptions& options, Party& party) : options_(options) {
  const int64_t in = options.in_features();
  const int64_t out = options.out_features();
  VEIL_CHECK(in >= 1 && out >= 1, "[Linear] expected in_features, out_features >= 1, got {}, {}",
             in, out);
  auto [w, b] = detail::fan_in_uniform({in, out}, options.bias() ? out : 0, in, options.seed(),
                                       options.stream(), party);
  weight = register_parameter("weight", MpcTensor::from_public(w, party));
  if (options.bias()) {
    bias = register_parameter("bias", MpcTensor::from_public(b, party));
  }
}

MpcTensor LinearImpl::forward(const MpcTensor& x) {
  VEIL_CHECK(x.defined() && x.dim() == 2 && x.size(1) == options_.in_features(),
             "[Linear] expected input [N, {}], got {}", options_.in_features(),
             x.defined() ? core::shape_str(x.shape()) : std::string("an undefined tensor"));
  MpcTensor y = matmul(x, weight);           // [N, in] @ [in, out] -> [N, out]
  return bias.defined() ? add(y, bias) : y;  // + [out] broadcast over rows
}

void LinearImpl::load_weights(const core::Tensor& w, const core::Tensor& b) {
  detail::load_weight_and_bias("Linear::load_weights", weight, bias, w, b);
}

core::Tensor LinearImpl::to_torch_layout(const std::string& name, const core::Tensor& value) const {
  return name == "weight" && value.dim() == 2 ? value.t() : value;
}

core::Tensor LinearImpl::from_torch_layout(const std::string& name,
                                           const core::Tensor& value) const {
  return name == "weight" && value.dim() == 2 ? value.t() : value;
}

}  // namespace veil::nn
