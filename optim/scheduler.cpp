#include "optim/scheduler.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace veil::optim {

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer), base_lr_(optimizer.lr()) {}

void LRScheduler::step() {
  ++epoch_;
  optimizer_.set_lr(lr_at(epoch_));
}

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  VEIL_CHECK(step_size >= 1, "[StepLR] expected step_size >= 1, got {}", step_size);
  VEIL_CHECK(gamma > 0, "[StepLR] expected gamma > 0, got {}", gamma);
}

double StepLR::lr_at(int64_t epoch) const {
  return base_lr() * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double eta_min)
    : LRScheduler(optimizer), t_max_(t_max), eta_min_(eta_min) {
  VEIL_CHECK(t_max >= 1, "[CosineAnnealingLR] expected t_max >= 1, got {}", t_max);
  VEIL_CHECK(eta_min >= 0 && eta_min < base_lr(),
             "[CosineAnnealingLR] expected 0 <= eta_min < the initial lr ({}), got {}", base_lr(),
             eta_min);
}

double CosineAnnealingLR::lr_at(int64_t epoch) const {
  const double t = static_cast<double>(epoch) / static_cast<double>(t_max_);
  return eta_min_ + (base_lr() - eta_min_) * (1 + std::cos(std::numbers::pi * t)) / 2;
}

}  // namespace veil::optim
