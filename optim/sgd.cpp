#include "optim/sgd.h"

#include <cmath>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/error.h"

namespace veil::optim {

SGD::SGD(std::vector<MpcTensor> params, const SGDOptions& options)
    : Optimizer(std::move(params)), options_(options), buffers_(params_.size()) {
  VEIL_CHECK(options.lr() > 0, "[SGD] expected lr > 0, got {}", options.lr());
  VEIL_CHECK(options.momentum() >= 0, "[SGD] expected momentum >= 0, got {}", options.momentum());
  VEIL_CHECK(options.weight_decay() >= 0, "[SGD] expected weight_decay >= 0, got {}",
             options.weight_decay());
  VEIL_CHECK(!options.nesterov() || (options.momentum() > 0 && options.dampening() == 0),
             "[SGD] Nesterov momentum requires momentum > 0 and dampening 0, got momentum {} and "
             "dampening {}",
             options.momentum(), options.dampening());
}

void SGD::step() {
  NoGradGuard no_grad;
  const double lr = options_.lr();
  const double m = options_.momentum();
  const double d = options_.dampening();
  const double wd = options_.weight_decay();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    MpcTensor& p = params_[i];
    if (!p.grad().defined()) {
      continue;
    }
    MpcTensor g = p.grad();
    if (wd != 0) {
      g = g + p.detach() * wd;  // g = grad + wd * p
    }
    if (m != 0) {
      MpcTensor& buf = buffers_[i];
      if (!buf.defined()) {
        buf = g.detach();  // first step: buf = g
      } else {
        buf = buf * m + (d == 0 ? g : g * (1.0 - d));  // buf = m buf + (1 - d) g
      }
      g = options_.nesterov() ? g + buf * m : buf;
    }
    p.assign_(p.detach() - g * lr);  // p -= lr g
  }
}

void SGD::set_state(std::size_t i, const MpcTensor& momentum_buffer) {
  VEIL_CHECK(i < params_.size(), "[SGD::set_state] parameter index {} out of range [0, {})", i,
             params_.size());
  if (momentum_buffer.defined()) {
    const core::Shape& shape = params_[i].shape();
    VEIL_CHECK(momentum_buffer.shape() == shape,
               "[SGD::set_state] expected a momentum buffer of shape {} (parameter {}), got {}",
               core::shape_str(shape), i, core::shape_str(momentum_buffer.shape()));
  }
  buffers_[i] = momentum_buffer.defined() ? momentum_buffer.detach() : MpcTensor();
}

void SGD::set_lr(double lr) {
  VEIL_CHECK(lr > 0 && std::isfinite(lr), "[SGD::set_lr] expected a positive finite lr, got {}",
             lr);
  options_.lr(lr);
}

}  // namespace veil::optim
