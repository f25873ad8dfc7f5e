#include "nn/loss.h"

#include "autograd/functions.h"
#include "autograd/losses.h"

namespace veil::nn {

MpcTensor CrossEntropyLossImpl::forward(const MpcTensor& logits, const MpcTensor& target) {
  return reduction_ == Reduction::kMean ? cross_entropy(logits, target)
                                        : cross_entropy(logits, target, reduction_);
}

MpcTensor CrossEntropyLossImpl::forward(const MpcTensor& logits, const core::Tensor& target) {
  return reduction_ == Reduction::kMean ? cross_entropy(logits, target)
                                        : cross_entropy(logits, target, reduction_);
}

MpcTensor MSELossImpl::forward(const MpcTensor& input, const MpcTensor& target) {
  return mse_loss(input, target, reduction_);
}

MpcTensor L1LossImpl::forward(const MpcTensor& input, const MpcTensor& target) {
  return l1_loss(input, target, reduction_);
}

MpcTensor BCELossImpl::forward(const MpcTensor& input, const MpcTensor& target) {
  return binary_cross_entropy(input, target, reduction_);
}

MpcTensor BCEWithLogitsLossImpl::forward(const MpcTensor& input, const MpcTensor& target) {
  return binary_cross_entropy_with_logits(input, target, reduction_);
}

MpcTensor NLLLossImpl::forward(const MpcTensor& log_probs, const core::Tensor& target) {
  return nll_loss(log_probs, target, reduction_);
}

}  // namespace veil::nn
