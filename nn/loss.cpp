#include "nn/loss.h"

#include "autograd/functions.h"

namespace veil::nn {

MpcTensor CrossEntropyLossImpl::forward(const MpcTensor& logits, const MpcTensor& target) {
  return cross_entropy(logits, target);
}

MpcTensor CrossEntropyLossImpl::forward(const MpcTensor& logits, const core::Tensor& target) {
  return cross_entropy(logits, target);
}

}  // namespace veil::nn
