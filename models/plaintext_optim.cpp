#include "models/plaintext_optim.h"

#include <cmath>

#include "core/error.h"

namespace veil::models {

std::string_view optimizer_name(OptimizerKind kind) {
  return kind == OptimizerKind::kAdam ? "adam" : "sgd";
}

OptimizerKind parse_optimizer(std::string_view name) {
  if (name == "sgd") {
    return OptimizerKind::kSgd;
  }
  if (name == "adam") {
    return OptimizerKind::kAdam;
  }
  throw ValueError(fmt::format("[optimizer] expected 'sgd' or 'adam', got '{}'", name));
}

void OptimizerConfig::validate(const char* op) const {
  VEIL_CHECK(lr > 0 && momentum >= 0 && weight_decay >= 0,
             "[{}] expected lr > 0, momentum >= 0 and weight_decay >= 0, got {}, {} and {}", op, lr,
             momentum, weight_decay);
  VEIL_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0,
             "[{}] expected betas in [0, 1) and eps > 0, got ({}, {}) and {}", op, beta1, beta2,
             eps);
}

PlaintextOptimizer::PlaintextOptimizer(const OptimizerConfig& config) : config_(config) {
  config_.validate("PlaintextOptimizer");
}

void PlaintextOptimizer::step(const std::vector<core::Tensor>& params,
                              const std::vector<core::Tensor>& grads) {
  const char* op = "PlaintextOptimizer::step";
  VEIL_CHECK(params.size() == grads.size(), "[{}] got {} parameters but {} gradients", op,
             params.size(), grads.size());
  if (steps_ > 0) {
    VEIL_CHECK(params.size() == state1_.size(),
               "[{}] expected the {} parameters of the first step, got {}", op, state1_.size(),
               params.size());
  } else {
    state1_.clear();
    state2_.clear();
    for (const core::Tensor& p : params) {
      VEIL_CHECK(p.defined(), "[{}] got an undefined parameter", op);
      state1_.push_back(core::Tensor::zeros(p.shape(), core::DType::kFloat64));
      state2_.push_back(core::Tensor::zeros(p.shape(), core::DType::kFloat64));
    }
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    const core::Tensor& p = params[i];
    const core::Tensor& g = grads[i];
    VEIL_CHECK(p.defined() && g.defined() && p.dtype() == core::DType::kFloat64 &&
                   g.dtype() == core::DType::kFloat64 && p.is_contiguous() &&
                   p.shape() == state1_[i].shape() && g.shape() == p.shape(),
               "[{}] parameter {}: expected contiguous float64 tensors of shape {}, got {} and {}",
               op, i, core::shape_str(state1_[i].shape()), p.defined() ? p.str() : "undefined",
               g.defined() ? g.str() : "undefined");
  }
  ++steps_;
  const OptimizerConfig& c = config_;
  const double t = static_cast<double>(steps_);
  const double bc1 = 1.0 - std::pow(c.beta1, t);
  const double bc2 = 1.0 - std::pow(c.beta2, t);
  for (std::size_t i = 0; i < params.size(); ++i) {
    core::Tensor w = params[i];  // shares storage with the caller's tensor
    const core::Tensor gc = grads[i].contiguous();
    double* wp = w.data<double>();
    const double* gp = gc.data<double>();
    double* s1 = state1_[i].data<double>();
    double* s2 = state2_[i].data<double>();
    const int64_t n = w.numel();
    for (int64_t k = 0; k < n; ++k) {
      const double g = gp[k] + c.weight_decay * wp[k];
      if (c.kind == OptimizerKind::kSgd) {
        double d = g;
        if (c.momentum != 0.0) {
          s1[k] = steps_ == 1 ? g : c.momentum * s1[k] + g;
          d = s1[k];
        }
        wp[k] -= c.lr * d;
      } else {
        s1[k] = c.beta1 * s1[k] + (1.0 - c.beta1) * g;
        s2[k] = c.beta2 * s2[k] + (1.0 - c.beta2) * g * g;
        wp[k] -= c.lr * (s1[k] / bc1) / (std::sqrt(s2[k] / bc2) + c.eps);
      }
    }
  }
}

}  // namespace veil::models
