#include "nn/activation.h"

#include <cmath>

#include "autograd/functions.h"
#include "core/error.h"

namespace veil::nn {

MpcTensor ReLUImpl::forward(const MpcTensor& x) {
  return relu(x);
}

MpcTensor SigmoidImpl::forward(const MpcTensor& x) {
  return sigmoid(x);
}

MpcTensor TanhImpl::forward(const MpcTensor& x) {
  return tanh(x);
}

MpcTensor GELUImpl::forward(const MpcTensor& x) {
  return gelu(x);
}

MpcTensor SoftmaxImpl::forward(const MpcTensor& x) {
  return softmax(x, dim_);
}

MpcTensor LogSoftmaxImpl::forward(const MpcTensor& x) {
  return log_softmax(x, dim_);
}

MpcTensor ReLU6Impl::forward(const MpcTensor& x) {
  return relu6(x);
}

LeakyReLUImpl::LeakyReLUImpl(double negative_slope) : negative_slope_(negative_slope) {
  VEIL_CHECK(std::isfinite(negative_slope), "[LeakyReLU] expected a finite negative_slope, got {}",
             negative_slope);
}

MpcTensor LeakyReLUImpl::forward(const MpcTensor& x) {
  return leaky_relu(x, negative_slope_);
}

HardtanhImpl::HardtanhImpl(double min_val, double max_val) : min_val_(min_val), max_val_(max_val) {
  VEIL_CHECK(std::isfinite(min_val) && std::isfinite(max_val) && min_val < max_val,
             "[Hardtanh] expected finite min_val < max_val, got {} and {}", min_val, max_val);
}

MpcTensor HardtanhImpl::forward(const MpcTensor& x) {
  return hardtanh(x, min_val_, max_val_);
}

}  // namespace veil::nn
