#pragma once
// Learning-rate schedules with PyTorch's semantics (torch.optim.lr_scheduler): call step() once
// per epoch after the optimizer's steps; the schedule sets the optimizer's public learning rate.
// Learning rates are public, so schedules cost no communication.

#include <cstdint>

#include "optim/optimizer.h"

namespace veil::optim {

/// Base class: remembers the optimizer's initial learning rate and the epoch count.
class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  /// Advances one epoch and sets the optimizer's learning rate for it.
  void step();
  /// The learning rate of the current epoch.
  double get_lr() const { return optimizer_.lr(); }
  /// Epochs stepped so far.
  int64_t last_epoch() const { return epoch_; }

 protected:
  /// The learning rate for `epoch` (0 is the initial one).
  virtual double lr_at(int64_t epoch) const = 0;
  double base_lr() const { return base_lr_; }

 private:
  Optimizer& optimizer_;
  double base_lr_;
  int64_t epoch_ = 0;
};

/// lr = base_lr * gamma^(epoch / step_size) (integer division).
/// Throws ValueError for step_size < 1 or gamma <= 0.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(int64_t epoch) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

/// lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / t_max)) / 2 (the closed form of
/// torch.optim.lr_scheduler.CosineAnnealingLR; periodic beyond t_max).
/// Throws ValueError for t_max < 1 or eta_min < 0.
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double eta_min = 0.0);

 protected:
  double lr_at(int64_t epoch) const override;

 private:
  int64_t t_max_;
  double eta_min_;
};

}  // namespace veil::optim
