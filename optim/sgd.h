#pragma once
// Stochastic gradient descent with PyTorch's semantics (torch.optim.SGD):
//   g = grad + weight_decay * p
//   momentum != 0:  buf = g on the first step, else buf = momentum * buf + (1 - dampening) * g;
//                   g = nesterov ? g + momentum * buf : buf
//   p = p - lr * g
// On secret values every product with a public scalar costs one truncation (local for N = 2,
// 1 round + 8 bytes per element for N > 2) and no Beaver triple; additions are local. Per
// parameter of n elements and step: 1 (lr) + [wd != 0] + [momentum != 0] (2 after the first step
// when dampening != 0) + [nesterov] truncations of n elements. Parameters whose gradient is
// undefined are skipped. A public parameter with a secret gradient becomes secret.

#include <vector>

#include "autograd/mpc_tensor.h"
#include "optim/optimizer.h"

namespace veil::optim {

/// SGD hyper-parameters with fluent setters: SGDOptions(0.1).momentum(0.9).weight_decay(5e-4).
class SGDOptions {
 public:
  /// Learning rate (> 0).
  explicit SGDOptions(double lr) : lr_(lr) {}
  SGDOptions& lr(double v) {
    lr_ = v;
    return *this;
  }
  double lr() const { return lr_; }
  /// Momentum factor (default 0: no momentum buffer).
  SGDOptions& momentum(double v) {
    momentum_ = v;
    return *this;
  }
  double momentum() const { return momentum_; }
  /// Dampening of the momentum (default 0).
  SGDOptions& dampening(double v) {
    dampening_ = v;
    return *this;
  }
  double dampening() const { return dampening_; }
  /// L2 penalty added to the gradient (default 0).
  SGDOptions& weight_decay(double v) {
    weight_decay_ = v;
    return *this;
  }
  double weight_decay() const { return weight_decay_; }
  /// Nesterov momentum (requires momentum > 0 and dampening 0).
  SGDOptions& nesterov(bool v) {
    nesterov_ = v;
    return *this;
  }
  bool nesterov() const { return nesterov_; }

 private:
  double lr_;
  double momentum_ = 0.0;
  double dampening_ = 0.0;
  double weight_decay_ = 0.0;
  bool nesterov_ = false;
};

/// SGD (see the file comment for the update rule and cost).
class SGD : public Optimizer {
 public:
  /// Throws ValueError for lr <= 0, negative momentum or weight decay, or Nesterov without
  /// momentum or with dampening.
  SGD(std::vector<MpcTensor> params, const SGDOptions& options);

  /// One update of every parameter with a defined gradient (no graph is recorded).
  void step() override;
  double lr() const override { return options_.lr(); }
  void set_lr(double lr) override;
  /// The hyper-parameters.
  const SGDOptions& options() const { return options_; }
  /// Mutable hyper-parameters (e.g. for a learning-rate schedule).
  SGDOptions& options() { return options_; }
  /// The momentum buffer of parameter i (undefined before its first step with momentum).
  const MpcTensor& momentum_buffer(std::size_t i) const { return buffers_.at(i); }
  /// Restores the momentum buffer of parameter i (checkpoints): a tensor as returned by
  /// momentum_buffer(i) (public or secret, kept as given, detached), or undefined for "no step
  /// taken yet" (the next step then starts the buffer from the gradient). Throws ValueError for an
  /// index out of range or a shape other than the parameter's.
  void set_state(std::size_t i, const MpcTensor& momentum_buffer);

 private:
  SGDOptions options_;
  std::vector<MpcTensor> buffers_;
};

}  // namespace veil::optim
