#pragma once
// Loss modules.

#include "autograd/mpc_tensor.h"
#include "core/tensor.h"
#include "nn/module.h"

namespace veil::nn {

/// Mean softmax cross-entropy (veil::cross_entropy): logits [N, C] against a one-hot MpcTensor
/// [N, C] or public int64 class indices [N] -> 0-d loss. See veil::cross_entropy for encodings,
/// cost, accuracy (secret logits: C <= 20) and errors.
class CrossEntropyLossImpl : public Module {
 public:
  CrossEntropyLossImpl() = default;
  /// One-hot target (public or secret).
  MpcTensor forward(const MpcTensor& logits, const MpcTensor& target);
  /// Public class indices.
  MpcTensor forward(const MpcTensor& logits, const core::Tensor& target);
};

VEIL_MODULE(CrossEntropyLoss);

/// Mean squared error (veil::mse_loss): input and target of equal shape -> 0-d loss.
class MSELossImpl : public Module {
 public:
  MSELossImpl() = default;
  MpcTensor forward(const MpcTensor& input, const MpcTensor& target);
};
VEIL_MODULE(MSELoss);

/// Mean absolute error (veil::l1_loss): input and target of equal shape -> 0-d loss.
class L1LossImpl : public Module {
 public:
  L1LossImpl() = default;
  MpcTensor forward(const MpcTensor& input, const MpcTensor& target);
};
VEIL_MODULE(L1Loss);

}  // namespace veil::nn
