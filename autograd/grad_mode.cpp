#include "autograd/grad_mode.h"

namespace veil {

namespace {
thread_local bool grad_mode_enabled = true;
}  // namespace

bool GradMode::is_enabled() {
  return grad_mode_enabled;
}

void GradMode::set_enabled(bool enabled) {
  grad_mode_enabled = enabled;
}

NoGradGuard::NoGradGuard() : previous_(GradMode::is_enabled()) {
  GradMode::set_enabled(false);
}

NoGradGuard::~NoGradGuard() {
  GradMode::set_enabled(previous_);
}

}  // namespace veil
