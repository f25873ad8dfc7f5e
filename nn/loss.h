#pragma once
// Loss modules (torch::nn loss semantics). Each takes a Reduction (default Reduction::kMean) and
// forwards to the functional loss of autograd/functions.h or autograd/losses.h, where the shapes,
// encodings, costs, accuracy and errors are documented.

#include "autograd/losses.h"
#include "autograd/mpc_tensor.h"
#include "core/tensor.h"
#include "nn/module.h"

namespace veil::nn {

/// Softmax cross-entropy: logits [N, C] against a one-hot MpcTensor [N, C] or public int64 class
/// indices [N] -> 0-d loss (kMean: veil::cross_entropy; kSum) or per-row losses [N] (kNone; see
/// veil::cross_entropy(logits, target, reduction)). Secret logits: C <= veil::kLogSoftmaxMaxClasses
/// (4096).
class CrossEntropyLossImpl : public Module {
 public:
  /// `reduction`: how the per-row losses are combined (default: mean).
  explicit CrossEntropyLossImpl(Reduction reduction = Reduction::kMean) : reduction_(reduction) {}
  /// One-hot target (public or secret).
  MpcTensor forward(const MpcTensor& logits, const MpcTensor& target);
  /// Public class indices.
  MpcTensor forward(const MpcTensor& logits, const core::Tensor& target);
  /// The reduction.
  Reduction reduction() const { return reduction_; }

 private:
  Reduction reduction_;
};

VEIL_MODULE(CrossEntropyLoss);

/// Squared error (veil::mse_loss): input and target of equal shape -> 0-d loss (kMean, kSum) or
/// elementwise (kNone).
class MSELossImpl : public Module {
 public:
  /// `reduction`: how the per-element losses are combined (default: mean).
  explicit MSELossImpl(Reduction reduction = Reduction::kMean) : reduction_(reduction) {}
  /// veil::mse_loss(input, target, reduction()).
  MpcTensor forward(const MpcTensor& input, const MpcTensor& target);
  /// The reduction.
  Reduction reduction() const { return reduction_; }

 private:
  Reduction reduction_;
};
VEIL_MODULE(MSELoss);

/// Absolute error (veil::l1_loss): input and target of equal shape -> 0-d loss (kMean, kSum) or
/// elementwise (kNone).
class L1LossImpl : public Module {
 public:
  /// `reduction`: how the per-element losses are combined (default: mean).
  explicit L1LossImpl(Reduction reduction = Reduction::kMean) : reduction_(reduction) {}
  /// veil::l1_loss(input, target, reduction()).
  MpcTensor forward(const MpcTensor& input, const MpcTensor& target);
  /// The reduction.
  Reduction reduction() const { return reduction_; }

 private:
  Reduction reduction_;
};
VEIL_MODULE(L1Loss);

/// Binary cross-entropy of probabilities (veil::binary_cross_entropy; p clamped into
/// [1e-4, 1 - 1e-4]): input and target of equal shape.
class BCELossImpl : public Module {
 public:
  /// `reduction`: how the per-element losses are combined (default: mean).
  explicit BCELossImpl(Reduction reduction = Reduction::kMean) : reduction_(reduction) {}
  /// veil::binary_cross_entropy(input, target, reduction()).
  MpcTensor forward(const MpcTensor& input, const MpcTensor& target);
  /// The reduction.
  Reduction reduction() const { return reduction_; }

 private:
  Reduction reduction_;
};
VEIL_MODULE(BCELoss);

/// Binary cross-entropy of logits (veil::binary_cross_entropy_with_logits, the stable form):
/// input and target of equal shape.
class BCEWithLogitsLossImpl : public Module {
 public:
  /// `reduction`: how the per-element losses are combined (default: mean).
  explicit BCEWithLogitsLossImpl(Reduction reduction = Reduction::kMean) : reduction_(reduction) {}
  /// veil::binary_cross_entropy_with_logits(input, target, reduction()).
  MpcTensor forward(const MpcTensor& input, const MpcTensor& target);
  /// The reduction.
  Reduction reduction() const { return reduction_; }

 private:
  Reduction reduction_;
};
VEIL_MODULE(BCEWithLogitsLoss);

/// Negative log-likelihood (veil::nll_loss): log-probabilities [N, C] and public int64 class
/// indices [N].
class NLLLossImpl : public Module {
 public:
  /// `reduction`: how the per-element losses are combined (default: mean).
  explicit NLLLossImpl(Reduction reduction = Reduction::kMean) : reduction_(reduction) {}
  /// veil::nll_loss(log_probs, target, reduction()).
  MpcTensor forward(const MpcTensor& log_probs, const core::Tensor& target);
  /// The reduction.
  Reduction reduction() const { return reduction_; }

 private:
  Reduction reduction_;
};
VEIL_MODULE(NLLLoss);

}  // namespace veil::nn
