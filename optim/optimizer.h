#pragma once
// Optimizer base: holds the parameter handles (std::vector<MpcTensor>, e.g. module->parameters())
// and updates them in place (MpcTensor::assign_), so the module sees the new values.

#include <vector>

#include "autograd/mpc_tensor.h"

namespace veil::optim {

/// Base class of optimizers.
class Optimizer {
 public:
  /// Takes the parameters to update. Throws ValueError for an undefined parameter.
  explicit Optimizer(std::vector<MpcTensor> params);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// Clears every parameter's gradient (set to undefined, like PyTorch's set_to_none).
  void zero_grad();
  /// One update of every parameter that has a gradient; runs without recording a graph.
  virtual void step() = 0;
  /// The parameters, in the order given.
  const std::vector<MpcTensor>& parameters() const { return params_; }
  /// The learning rate used by the next step() (public).
  virtual double lr() const = 0;
  /// Sets the learning rate (learning-rate schedules). Throws ValueError for lr <= 0.
  virtual void set_lr(double lr) = 0;

 protected:
  std::vector<MpcTensor> params_;
};

}  // namespace veil::optim
