#include "nn/loss.h"

#include "autograd/functions.h"

namespace veil::nn {

MpcTensor CrossEntropyLossImpl::forward(const MpcTensor& logits, const MpcTensor& target) {
  return cross_entropy(logits, target);
}

MpcTensor CrossEntropyLossImpl::forward(const MpcTensor& logits, const core::Tensor& target) {
  return cross_entropy(logits, target);
}

MpcTensor MSELossImpl::forward(const MpcTensor& input, const MpcTensor& target) {
  return mse_loss(input, target);
}

MpcTensor L1LossImpl::forward(const MpcTensor& input, const MpcTensor& target) {
  return l1_loss(input, target);
}

}  // namespace veil::nn
