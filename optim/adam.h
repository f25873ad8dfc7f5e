#pragma once
// Adam and AdamW with PyTorch's semantics (torch.optim.Adam / AdamW, amsgrad off) on public or
// secret gradients, with the optimizer state secret whenever the gradients are.
//
// PyTorch, per parameter p with gradient g at step t = 1, 2, ...:
//   Adam:  g <- g + wd p                      AdamW: p <- p - lr wd p
//   m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
//   p <- p - lr m_hat / (sqrt(v_hat) + eps),   m_hat = m / (1 - b1^t),   v_hat = v / (1 - b2^t)
//
// The fixed-point scheme (frac_bits f = 16, resolution 2^-16 ~ 1.5e-5). Typical gradients are
// 1e-5..1e-2, so g^2 (1e-10..1e-4) and the early, un-corrected v = (1 - b2) g^2 underflow. veil
// therefore keeps, for a public scale s (grad_scale_bits, default 10):
//   * G = g 2^s, an exact left shift of the ring value (no error, no communication);
//   * the bias-corrected moments of G instead of the raw ones: M = m_hat 2^s, V = v_hat 2^(2s).
//     Because (1 - b^t) = b (1 - b^(t-1)) + (1 - b), they obey exponential averages with public,
//     step-dependent weights k1 = (1 - b1) / (1 - b1^t), k2 = (1 - b2) / (1 - b2^t):
//       M <- M + k1 (G - M),   V <- V + k2 (G^2 - V)          (k = 1 at t = 1: M = G, V = G^2)
//     so M and V have the magnitude of G and G^2 from the first step on (no 1000-fold
//     amplification of rounding errors by 1 / (1 - b2^t)); the weights are encoded with 15
//     significant bits (detail::mul_coef) and the truncations round stochastically (2 parties),
//     so the averages are unbiased;
//   * the scale cancels in the update: m_hat / (sqrt(v_hat) + eps) = M / (sqrt(V) + eps 2^s).
//     With y = 1 / sqrt(W), W = clamp(V, delta, w_max):
//       r = M y                             when eps 2^s / sqrt(delta) <= 2^-10 (the eps term
//                                           changes the update by < 0.1%, below the inv_sqrt
//                                           error: the default eps = 1e-8 is such a case),
//       r = M y / (1 + eps 2^s y)           otherwise (a reciprocal on a known range);
//     p <- p - lr r  (AdamW also - lr wd p). delta = max(2^(2(s - f)), 2^-12) is the square of a
//     one-ulp gradient scaled by 2^s (every non-zero gradient lies above it for s >= 10) and
//     w_max = 2^14. The clamp departs from PyTorch only for |g| < 2^-6 2^-s (= 2^-f at s = 10,
//     below the gradient's own resolution; there it acts like an eps of that size) or
//     |g| > 128 2^-s (= 0.125 at s = 10: the step is then lr |M| / 128 instead of about lr; lower
//     grad_scale_bits or clip the gradients for such data);
//   * range normalization, so crypto::inv_sqrt only sees [1/16, 64] (where any version of it is
//     accurate and 1/sqrt keeps >= 13 significant bits): the comparisons l = [V < delta], h = [V >
//     w_max], u = [V > 64] and d = [V < 1/4] come from ONE crypto::lt on 4n values; then, linear in
//     the bits,
//       W = V ((1 - l - h) + 255 (d - l) - (255/256)(u - h)) + 256 delta l + (w_max / 256) h
//     (V times 256, 1 or 1/256, or a clamped end) and 1 / sqrt(clamp(V)) = kappa inv_sqrt(W) with
//     kappa = 1 + 15 d - (15/16) u. The two multipliers are integer shares with 8 and 4 extra
//     fractional bits, so V mu and M kappa are one Beaver round, and the final M kappa y costs no
//     extra truncation. This also keeps the clamp robust to a failed truncation (any garbage V
//     lands in [1/16, 64]).
//
// Choosing s: |g| 2^s should be about 0.02..100 for most elements; s = 10 suits gradients
// 1e-5..1e-2 and covers 2^-16..0.125. Overflow is no concern (|G| 2^f < 2^63 up to
// |g| = 2^(47 - s)); the 2-party local truncation of the square fails with probability about
// G^2 2^(2f - 63) = g^2 2^(2s - 31) per element and step (2^-31 for |G| = 1), every other product
// (the weights k and lr with 15-bit coefficients, V mu) about 2^-32 |value| or less.
//
// Cost per step, all parameters with a gradient batched into one vector of n elements (the rounds
// do not grow with the number of tensors), for secret gradients and N parties:
//   rounds (N = 2) = 1 (G^2) + R_lt(4n) + 1 (V mu, M kappa) + R_isq(n) + 1 (M kappa y)
//   bytes          = 56(N-1)n + B_lt(4n) + B_isq(n)   (G^2 from a square pair: 8(N-1)n)
// where R_lt/B_lt are the rounds/bytes of crypto::lt and R_isq/B_isq those of crypto::inv_sqrt
// (measured by tests/optim/test_adam.cpp: 4 + 9 + 3 = 16 rounds and 578 bytes per element for
// N = 2 with 4-round comparisons; 8 + 20 + 3 = 31 rounds with the 8-round ones). With the eps
// term: + 1 (kappa y) + R_rec + 1 rounds (the M kappa product moves after the reciprocal). For
// N > 2 each truncation stage adds 1 round and 8n bytes (every party but P0): G^2, W, M kappa y,
// lr; also M and V after the first step and the weight decay (Adam with wd: 1; AdamW: 1).
// Parameters with the same step count form one batch (normally all); public gradients (with public
// state) run the same recurrences on public encodings, locally, with W's inverse square root in
// float64.
//
// Security: nothing is opened; lr, betas, eps, s and the step counts are public.
// Sources: Kingma & Ba, "Adam" (ICLR 2015, arXiv 1412.6980) Alg. 1 and §2 (bias correction);
// Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019, arXiv 1711.05101),
// Alg. 2; PyTorch's torch.optim.Adam/AdamW for the placement of eps and the weight decays.

#include <cstdint>
#include <utility>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "optim/optimizer.h"

namespace veil::optim {

/// Hyper-parameters shared by AdamOptions and AdamWOptions (fluent setters returning the concrete
/// options type).
template <class Derived>
class AdamOptionsBase {
 public:
  /// Learning rate (> 0).
  Derived& lr(double v) {
    lr_ = v;
    return self();
  }
  double lr() const { return lr_; }
  /// Coefficients (b1, b2) of the running averages of g and g^2, each in [0, 1)
  /// (default (0.9, 0.999)).
  Derived& betas(std::pair<double, double> v) {
    betas_ = v;
    return self();
  }
  std::pair<double, double> betas() const { return betas_; }
  /// Term added to sqrt(v_hat) (>= 0, default 1e-8); see the file comment for when it matters.
  Derived& eps(double v) {
    eps_ = v;
    return self();
  }
  double eps() const { return eps_; }
  /// Weight decay (>= 0): L2 penalty added to the gradient (Adam, default 0) or decoupled decay
  /// p <- p - lr wd p (AdamW, default 1e-2).
  Derived& weight_decay(double v) {
    weight_decay_ = v;
    return self();
  }
  double weight_decay() const { return weight_decay_; }
  /// The public scale s: the moments are kept for g 2^s (0 <= s <= 14, default 10); see the file
  /// comment for how to choose it.
  Derived& grad_scale_bits(int v) {
    grad_scale_bits_ = v;
    return self();
  }
  int grad_scale_bits() const { return grad_scale_bits_; }

 protected:
  AdamOptionsBase(double lr, double weight_decay) : lr_(lr), weight_decay_(weight_decay) {}

 private:
  Derived& self() { return static_cast<Derived&>(*this); }

  double lr_;
  std::pair<double, double> betas_{0.9, 0.999};
  double eps_ = 1e-8;
  double weight_decay_;
  int grad_scale_bits_ = 10;
};

/// Adam hyper-parameters: AdamOptions(1e-3).betas({0.9, 0.999}).eps(1e-8).weight_decay(0).
class AdamOptions : public AdamOptionsBase<AdamOptions> {
 public:
  /// Learning rate lr; weight_decay defaults to 0 (PyTorch's default).
  explicit AdamOptions(double lr) : AdamOptionsBase(lr, 0.0) {}
};

/// AdamW hyper-parameters: AdamWOptions(1e-3).betas({0.9, 0.999}).eps(1e-8).weight_decay(1e-2).
class AdamWOptions : public AdamOptionsBase<AdamWOptions> {
 public:
  /// Learning rate lr; weight_decay defaults to 1e-2 (PyTorch's default).
  explicit AdamWOptions(double lr) : AdamOptionsBase(lr, 1e-2) {}
};

/// The algorithm shared by Adam and AdamW (see the file comment); use those two classes.
class AdamBase : public Optimizer {
 public:
  /// One update of every parameter with a defined gradient (no graph is recorded); parameters
  /// without a gradient are skipped and keep their step count. A public parameter with a secret
  /// gradient becomes secret. Throws ValueError for a gradient whose frac_bits differ from the
  /// party's. Cost and accuracy: see the file comment.
  void step() override;
  double lr() const override { return lr_; }
  /// Throws ValueError for a non-positive or non-finite lr.
  void set_lr(double lr) override;

  /// The first moment of parameter i as kept by veil: the bias-corrected m_hat scaled by 2^s,
  /// i.e. PyTorch's exp_avg = exp_avg(i) (1 - b1^t) 2^-s (undefined before its first step;
  /// secret when its gradients were). Same shape as the parameter.
  const MpcTensor& exp_avg(std::size_t i) const { return exp_avg_.at(i); }
  /// The second moment: v_hat scaled by 2^(2s) (PyTorch's exp_avg_sq = exp_avg_sq(i)
  /// (1 - b2^t) 2^(-2s)).
  const MpcTensor& exp_avg_sq(std::size_t i) const { return exp_avg_sq_.at(i); }
  /// Steps taken by parameter i (PyTorch's state["step"]).
  int64_t step_count(std::size_t i) const { return steps_.at(i); }
  /// Restores the state of parameter i (checkpoints): the tensors as returned by exp_avg(i) and
  /// exp_avg_sq(i) under the same grad_scale_bits, and its step count (0 with undefined tensors).
  /// Throws ValueError for an index out of range, a negative step, shapes other than the
  /// parameter's, or tensors defined exactly when step == 0 is not the case.
  void set_state(std::size_t i,
                 const MpcTensor& exp_avg,
                 const MpcTensor& exp_avg_sq,
                 int64_t step);

 protected:
  /// Validates the hyper-parameters; `name` ("Adam", "AdamW") prefixes error messages. Throws
  /// ValueError for lr <= 0, betas outside [0, 1), eps < 0, weight_decay < 0 or
  /// grad_scale_bits outside [0, 14].
  AdamBase(std::vector<MpcTensor> params,
           double lr,
           std::pair<double, double> betas,
           double eps,
           double weight_decay,
           int grad_scale_bits,
           bool decoupled,
           const char* name);

  double lr_;
  std::pair<double, double> betas_;
  double eps_;
  double weight_decay_;
  int grad_scale_bits_;

 private:
  // Updates the parameters `idx`, which all take their step number t.
  void update_group(const std::vector<std::size_t>& idx, int64_t t);

  bool decoupled_;
  const char* name_;
  std::vector<MpcTensor> exp_avg_;
  std::vector<MpcTensor> exp_avg_sq_;
  std::vector<int64_t> steps_;
};

/// Adam (L2 weight decay added to the gradient). See the file comment.
class Adam : public AdamBase {
 public:
  /// Throws ValueError for lr <= 0, betas outside [0, 1), eps < 0, weight_decay < 0,
  /// grad_scale_bits outside [0, 14], or an undefined parameter.
  Adam(std::vector<MpcTensor> params, const AdamOptions& options);
  /// The hyper-parameters (with the current lr).
  AdamOptions options() const;
};

/// AdamW (decoupled weight decay p <- p - lr wd p before the Adam step). See the file comment.
class AdamW : public AdamBase {
 public:
  /// Same errors as Adam.
  AdamW(std::vector<MpcTensor> params, const AdamWOptions& options);
  /// The hyper-parameters (with the current lr).
  AdamWOptions options() const;
};

}  // namespace veil::optim
