#include "nn/dropout.h"

#include "autograd/functions.h"
#include "crypto/party.h"

namespace veil::nn {

DropoutImpl::DropoutImpl(double p) : p_(p) {
  VEIL_CHECK(p >= 0 && p < 1, "[Dropout] expected 0 <= p < 1, got {}", p);
}

MpcTensor DropoutImpl::forward(const MpcTensor& x) {
  if (!is_training() || p_ == 0) {
    return x;
  }
  crypto::Prg& prg = x.party().common_prg();
  core::Tensor mask = core::Tensor::empty(x.shape(), core::DType::kFloat64);
  double* m = mask.data<double>();
  const double keep_scale = 1.0 / (1.0 - p_);
  for (int64_t i = 0; i < mask.numel(); ++i) {
    m[i] = prg.uniform_double() < p_ ? 0.0 : keep_scale;
  }
  return mul(x, MpcTensor::from_public(mask, x.party()));
}

MpcTensor FlattenImpl::forward(const MpcTensor& x) {
  VEIL_CHECK(start_dim_ >= 0 && start_dim_ < x.dim(),
             "[Flatten] start_dim {} out of range for a {}-d input {}", start_dim_, x.dim(),
             core::shape_str(x.shape()));
  core::Shape shape(x.shape().begin(), x.shape().begin() + start_dim_);
  shape.push_back(-1);
  return reshape(x, shape);
}

}  // namespace veil::nn
