#pragma once
// Activation layers (PyTorch names and defaults); each forwards to the differentiable op of
// autograd/functions.h, where its cost, accuracy and backward are documented.

#include <cstdint>

#include "autograd/mpc_tensor.h"
#include "nn/module.h"

namespace veil::nn {

/// max(x, 0) elementwise (veil::relu: secret input costs 9 rounds, ~63 bytes per element for
/// N = 2; backward one Beaver mul with the saved [x >= 0] bit, no truncation).
class ReLUImpl : public Module {
 public:
  ReLUImpl() = default;
  /// x: any shape -> same shape.
  MpcTensor forward(const MpcTensor& x);
};

VEIL_MODULE(ReLU);

/// veil::sigmoid as a layer. x: any shape -> same shape.
class SigmoidImpl : public Module {
 public:
  SigmoidImpl() = default;
  MpcTensor forward(const MpcTensor& x);
};
VEIL_MODULE(Sigmoid);

/// veil::tanh as a layer. x: any shape -> same shape.
class TanhImpl : public Module {
 public:
  TanhImpl() = default;
  MpcTensor forward(const MpcTensor& x);
};
VEIL_MODULE(Tanh);

/// veil::gelu (exact erf form) as a layer. x: any shape -> same shape.
class GELUImpl : public Module {
 public:
  GELUImpl() = default;
  MpcTensor forward(const MpcTensor& x);
};
VEIL_MODULE(GELU);

/// Softmax along a dimension as a layer (torch.nn.Softmax(dim)): veil::softmax(x, dim); secret
/// cost, accuracy and backward there (max tree, exp, reciprocal on [1, C]).
class SoftmaxImpl : public Module {
 public:
  /// `dim` may be negative (counts from the end); checked against the input in forward.
  explicit SoftmaxImpl(int64_t dim) : dim_(dim) {}
  /// x: any shape -> same shape, each slice along dim sums to 1. Throws ValueError
  /// "[softmax] ..." for dim out of range or an empty dimension.
  MpcTensor forward(const MpcTensor& x);
  /// The dimension normalised over.
  int64_t dim() const { return dim_; }

 private:
  int64_t dim_;
};
VEIL_MODULE(Softmax);

/// log(softmax(x)) along a dimension as a layer (torch.nn.LogSoftmax(dim)):
/// veil::log_softmax(x, dim) (secret: C = x.size(dim) <= kLogSoftmaxMaxClasses).
class LogSoftmaxImpl : public Module {
 public:
  /// `dim` may be negative.
  explicit LogSoftmaxImpl(int64_t dim) : dim_(dim) {}
  /// x: any shape -> same shape. Throws ValueError "[log_softmax] ..." as veil::log_softmax.
  MpcTensor forward(const MpcTensor& x);
  /// The dimension normalised over.
  int64_t dim() const { return dim_; }

 private:
  int64_t dim_;
};
VEIL_MODULE(LogSoftmax);

/// min(max(x, 0), 6) as a layer (torch.nn.ReLU6): veil::relu6, exact on the encoded values.
class ReLU6Impl : public Module {
 public:
  ReLU6Impl() = default;
  /// x: any shape -> same shape.
  MpcTensor forward(const MpcTensor& x);
};
VEIL_MODULE(ReLU6);

/// x for x > 0, negative_slope * x otherwise, as a layer (torch.nn.LeakyReLU):
/// veil::leaky_relu.
class LeakyReLUImpl : public Module {
 public:
  /// Throws ValueError "[LeakyReLU] ..." for a non-finite slope.
  explicit LeakyReLUImpl(double negative_slope = 0.01);
  /// x: any shape -> same shape.
  MpcTensor forward(const MpcTensor& x);
  /// The slope applied to negative inputs.
  double negative_slope() const { return negative_slope_; }

 private:
  double negative_slope_;
};
VEIL_MODULE(LeakyReLU);

/// Clamp to [min_val, max_val] as a layer (torch.nn.Hardtanh): veil::hardtanh, exact on the
/// encoded values.
class HardtanhImpl : public Module {
 public:
  /// Throws ValueError "[Hardtanh] ..." unless min_val < max_val (both finite).
  explicit HardtanhImpl(double min_val = -1.0, double max_val = 1.0);
  /// x: any shape -> same shape.
  MpcTensor forward(const MpcTensor& x);
  /// The lower clamp bound.
  double min_val() const { return min_val_; }
  /// The upper clamp bound.
  double max_val() const { return max_val_; }

 private:
  double min_val_;
  double max_val_;
};
VEIL_MODULE(Hardtanh);

}  // namespace veil::nn
