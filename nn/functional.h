#pragma once
// Functional forms of the layers (veil::nn::functional, like torch::nn::functional). They are the
// differentiable ops of autograd/functions.h; see there for encodings, costs and errors.

#include "autograd/functions.h"
#include "autograd/mpc_tensor.h"
#include "core/tensor.h"

namespace veil::nn::functional {

/// max(x, 0) (veil::relu).
inline MpcTensor relu(const MpcTensor& x) {
  return veil::relu(x);
}

/// Softmax along the last dimension (veil::softmax).
inline MpcTensor softmax(const MpcTensor& x) {
  return veil::softmax(x);
}

/// Softmax along `dim` (veil::softmax).
inline MpcTensor softmax(const MpcTensor& x, int64_t dim) {
  return veil::softmax(x, dim);
}

/// log(softmax(x)) along `dim` (veil::log_softmax).
inline MpcTensor log_softmax(const MpcTensor& x, int64_t dim) {
  return veil::log_softmax(x, dim);
}

/// Inverted dropout with a public mask from the common PRG (veil::dropout; the draws of
/// nn::Dropout).
inline MpcTensor dropout(const MpcTensor& x, double p = 0.5, bool training = true) {
  return veil::dropout(x, p, training);
}

/// x [N, in] @ weight [in, out] (+ bias [out] when defined) -> [N, out]. Note the weight layout
/// [in, out] (see nn::Linear).
inline MpcTensor linear(const MpcTensor& x, const MpcTensor& weight, const MpcTensor& bias = {}) {
  MpcTensor y = veil::matmul(x, weight);
  return bias.defined() ? veil::add(y, bias) : y;
}

/// Mean softmax cross-entropy against a one-hot target [N, C] (veil::cross_entropy).
inline MpcTensor cross_entropy(const MpcTensor& logits, const MpcTensor& target) {
  return veil::cross_entropy(logits, target);
}

/// Mean softmax cross-entropy against public int64 class indices [N].
inline MpcTensor cross_entropy(const MpcTensor& logits, const core::Tensor& target) {
  return veil::cross_entropy(logits, target);
}

}  // namespace veil::nn::functional
