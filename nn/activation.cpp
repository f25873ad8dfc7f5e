#include "nn/activation.h"

#include "autograd/functions.h"

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

}  // namespace veil::nn
