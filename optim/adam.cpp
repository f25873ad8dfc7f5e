#include "optim/adam.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/bilinear.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "optim/detail.h"

namespace veil::optim {

namespace {

// W = clamp(V, delta, kVMax) is brought into [1/16, 64] before crypto::inv_sqrt: values below
// kScaleUpBelow are multiplied by 256 (so 1/sqrt gains a factor 16 back), values above
// kScaleDownAbove divided by 256 (factor 1/16).
constexpr double kVMax = 16384.0;          // 2^14: |G| <= 128
constexpr double kVFloorMin = 1.0 / 4096;  // 2^-12: 256 delta >= 1/16
constexpr double kScaleUpBelow = 0.25;
constexpr double kScaleDownAbove = 64.0;
// The eps term is dropped when it changes the update by at most this factor.
constexpr double kEpsNegligible = 1.0 / 1024;

// The lower clamp of V for grad_scale_bits s: the square of a one-ulp gradient scaled by 2^s, at
// least 2^-12.
double v_floor(int s, int f) {
  return std::max(std::ldexp(1.0, 2 * (s - f)), kVFloorMin);
}

// y = 1 / sqrt(clamp(V, delta, kVMax)) for a secret V [n] (see the header); returns M y when
// times_m, else y.
//   bits  l = [V < delta], h = [V > kVMax], u = [V > 64], d = [V < 1/4]     (one lt on 4n values)
//   mu = (1 - l - h) + 255 (d - l) - (255/256)(u - h)   (256, 1, 1/256 or 0; 8 extra bits)
//   W  = V mu + 256 delta l + (kVMax / 256) h  in [1/16, 64]
//   kappa = 1 + 15 d - (15/16) u                         (16, 1 or 1/16; 4 extra bits)
//   1 / sqrt(clamp(V)) = kappa inv_sqrt(W)
// V mu and M kappa (integer multipliers, no truncation for the product itself) share one round.
crypto::AShare secret_inv_sqrt_ratio(
    Party& p, const crypto::AShare& m, const crypto::AShare& v, double delta, bool times_m) {
  const int f = v.frac_bits;
  const int64_t n = v.numel();
  const crypto::AShare neg_v = crypto::neg(v);
  const crypto::AShare diffs{
      core::cat({crypto::add_public(p, v, -delta).data, crypto::add_public(p, neg_v, kVMax).data,
                 crypto::add_public(p, neg_v, kScaleDownAbove).data,
                 crypto::add_public(p, v, -kScaleUpBelow).data},
                0),
      f};
  const crypto::AShare bits =
      crypto::lt(p, diffs, {core::Tensor::zeros({4 * n}, core::DType::kRing64), f});
  auto bit = [&](int64_t k) {
    return crypto::AShare{bits.data.slice(0, k * n, (k + 1) * n).contiguous(), 0};
  };
  const crypto::AShare l = bit(0);
  const crypto::AShare h = bit(1);
  const crypto::AShare u = bit(2);
  const crypto::AShare d = bit(3);
  // 256 mu = 256 - 65536 l - h + 65280 d - 255 u;  16 kappa = 16 + 240 d - 15 u
  crypto::AShare mu8 =
      crypto::add(crypto::mul_public_int(l, -65536), crypto::mul_public_int(h, -1));
  mu8 = crypto::add(mu8,
                    crypto::add(crypto::mul_public_int(d, 65280), crypto::mul_public_int(u, -255)));
  mu8 = crypto::add_public(p, mu8, 256.0);
  const crypto::AShare kappa4 = crypto::add_public(
      p, crypto::add(crypto::mul_public_int(d, 240), crypto::mul_public_int(u, -15)), 16.0);
  const auto op = crypto::BilinearOp::mul({n}, {n});
  std::vector<crypto::AShare> prods = times_m
                                          ? crypto::beaver_batch(p, {op, op}, {v, m}, {mu8, kappa4})
                                          : crypto::beaver_batch(p, {op}, {v}, {mu8});
  // W = V mu (drop the 8 extra bits) + the clamped ends
  crypto::AShare w = crypto::truncate(p, {prods[0].data, f + 8}, 8);
  const crypto::FixedPointEncoder enc(f);
  core::add_(w.data, core::mul_scalar(l.data, enc.encode_scalar(256 * delta, "Adam")));
  core::add_(w.data, core::mul_scalar(h.data, enc.encode_scalar(kVMax / 256, "Adam")));
  const crypto::AShare y = crypto::inv_sqrt(p, w);  // W in [1/16, 64]
  if (times_m) {
    // (16 kappa M) y at 2f bits, truncated by f + 4: M kappa y at f bits
    const crypto::AShare raw = crypto::beaver(p, op, prods[1], y);
    return {crypto::truncate(p, raw, f + 4).data, f};
  }
  // kappa y: (16 kappa) y at f bits, truncated by 4
  const crypto::AShare ky = crypto::beaver(p, op, kappa4, y);
  return crypto::truncate(p, {ky.data, f + 4}, 4);
}

}  // namespace

AdamBase::AdamBase(std::vector<MpcTensor> params,
                   double lr,
                   std::pair<double, double> betas,
                   double eps,
                   double weight_decay,
                   int grad_scale_bits,
                   bool decoupled,
                   const char* name)
    : Optimizer(std::move(params)),
      lr_(lr),
      betas_(betas),
      eps_(eps),
      weight_decay_(weight_decay),
      grad_scale_bits_(grad_scale_bits),
      decoupled_(decoupled),
      name_(name),
      exp_avg_(params_.size()),
      exp_avg_sq_(params_.size()),
      steps_(params_.size(), 0) {
  VEIL_CHECK(lr > 0 && std::isfinite(lr), "[{}] expected lr > 0, got {}", name, lr);
  VEIL_CHECK(betas.first >= 0 && betas.first < 1 && betas.second >= 0 && betas.second < 1,
             "[{}] expected betas in [0, 1), got ({}, {})", name, betas.first, betas.second);
  VEIL_CHECK(eps >= 0 && std::isfinite(eps), "[{}] expected eps >= 0, got {}", name, eps);
  VEIL_CHECK(weight_decay >= 0 && std::isfinite(weight_decay),
             "[{}] expected weight_decay >= 0, got {}", name, weight_decay);
  VEIL_CHECK(grad_scale_bits >= 0 && grad_scale_bits <= 14,
             "[{}] expected grad_scale_bits in [0, 14], got {}", name, grad_scale_bits);
}

void AdamBase::set_lr(double lr) {
  VEIL_CHECK(lr > 0 && std::isfinite(lr), "[{}::set_lr] expected a positive finite lr, got {}",
             name_, lr);
  lr_ = lr;
}

void AdamBase::set_state(std::size_t i,
                         const MpcTensor& exp_avg,
                         const MpcTensor& exp_avg_sq,
                         int64_t step) {
  VEIL_CHECK(i < params_.size(), "[{}::set_state] parameter index {} out of range [0, {})", name_,
             i, params_.size());
  VEIL_CHECK(step >= 0, "[{}::set_state] expected step >= 0, got {}", name_, step);
  const bool defined = exp_avg.defined() && exp_avg_sq.defined();
  VEIL_CHECK(defined == (step > 0) && exp_avg.defined() == exp_avg_sq.defined(),
             "[{}::set_state] expected both moments defined exactly when step > 0 (step {})", name_,
             step);
  if (defined) {
    const core::Shape& shape = params_[i].shape();
    VEIL_CHECK(exp_avg.shape() == shape && exp_avg_sq.shape() == shape,
               "[{}::set_state] expected moments of shape {} (parameter {}), got {} and {}", name_,
               core::shape_str(shape), i, core::shape_str(exp_avg.shape()),
               core::shape_str(exp_avg_sq.shape()));
  }
  exp_avg_[i] = defined ? exp_avg.detach() : MpcTensor();
  exp_avg_sq_[i] = defined ? exp_avg_sq.detach() : MpcTensor();
  steps_[i] = step;
}

void AdamBase::step() {
  NoGradGuard no_grad;
  // Batches keyed by (step number, whether the arithmetic is secret); std::map iterates in key
  // order, which is public and the same on every party.
  std::map<std::pair<int64_t, bool>, std::vector<std::size_t>> groups;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const MpcTensor g = params_[i].grad();
    if (!g.defined()) {
      continue;
    }
    const int f = params_[i].party().frac_bits();
    VEIL_CHECK(g.frac_bits() == f && params_[i].frac_bits() == f,
               "[{}] expected parameter {} and its gradient with frac_bits {}, got {} and {}",
               name_, i, f, params_[i].frac_bits(), g.frac_bits());
    const bool secret = g.is_secret() || (exp_avg_[i].defined() && exp_avg_[i].is_secret()) ||
                        (exp_avg_sq_[i].defined() && exp_avg_sq_[i].is_secret()) ||
                        (!decoupled_ && weight_decay_ != 0 && params_[i].is_secret());
    groups[{steps_[i] + 1, secret}].push_back(i);
  }
  for (const auto& [key, idx] : groups) {
    update_group(idx, key.first);
  }
}

void AdamBase::update_group(const std::vector<std::size_t>& idx, int64_t t) {
  using detail::mul_coef;
  Party& party = params_[idx.front()].party();
  const int f = party.frac_bits();
  const int s = grad_scale_bits_;
  const double scale = std::ldexp(1.0, s);

  std::vector<MpcTensor> grads;
  std::vector<MpcTensor> params;
  std::vector<core::Shape> shapes;
  for (std::size_t i : idx) {
    grads.push_back(params_[i].grad());
    params.push_back(params_[i].detach());
    shapes.push_back(params_[i].shape());
  }
  const MpcTensor p = detail::flat_cat(params, name_);
  // G = (g + wd p) 2^s: the shift is exact; the L2 term is one product with wd 2^s
  MpcTensor g = detail::shift_left(detail::flat_cat(grads, name_), s);
  if (!decoupled_ && weight_decay_ != 0) {
    g = g + mul_coef(p, weight_decay_ * scale);
  }

  // Bias-corrected moments of G: M <- M + k1 (G - M), V <- V + k2 (G^2 - V); M = G, V = G^2 at t =
  // 1
  const MpcTensor g2 = square(g);  // a square pair: half the bytes of g * g
  MpcTensor m;
  MpcTensor v;
  if (t == 1) {
    m = g;
    v = g2;
  } else {
    // k = (1 - b) / (1 - b^t), encoded afresh each step with 15 significant bits (mul_coef)
    const double k1 = (1 - betas_.first) / (1 - std::pow(betas_.first, static_cast<double>(t)));
    const double k2 = (1 - betas_.second) / (1 - std::pow(betas_.second, static_cast<double>(t)));
    std::vector<MpcTensor> ms;
    std::vector<MpcTensor> vs;
    for (std::size_t i : idx) {
      ms.push_back(exp_avg_[i]);
      vs.push_back(exp_avg_sq_[i]);
    }
    const MpcTensor m_old = detail::flat_cat(ms, name_);
    const MpcTensor v_old = detail::flat_cat(vs, name_);
    m = m_old + mul_coef(g - m_old, k1);
    v = v_old + mul_coef(g2 - v_old, k2);
  }

  // r = M / (sqrt(W) + eps 2^s), W = clamp(V, delta, kVMax)
  const double delta = v_floor(s, f);
  const double e = eps_ * scale;
  const double y_max = 1 / std::sqrt(delta);
  const bool eps_term = e * y_max > kEpsNegligible;
  MpcTensor r;
  MpcTensor y;
  if (m.is_secret() || v.is_secret()) {
    const crypto::AShare out =
        secret_inv_sqrt_ratio(party, detail::share_of(m), detail::share_of(v), delta, !eps_term);
    (eps_term ? y : r) = MpcTensor::from_secret(out, party);
  } else {
    y = detail::inv_sqrt(detail::clamp(v, delta, kVMax, name_));
    if (!eps_term) {
      r = m * y;
    }
  }
  if (eps_term) {
    // 1 / (sqrt(W) + e) = y / (1 + e y), with 1 + e y in [1, 1 + e y_max] (5% margin for y's error)
    const MpcTensor den = mul_coef(y, e) + 1.0;
    r = m * (y * detail::reciprocal(den, 1.0, 1.0 + 1.05 * e * y_max));
  }

  // p <- p - lr r  (AdamW: also - lr wd p)
  MpcTensor p_new = p - mul_coef(r, lr_);
  if (decoupled_ && weight_decay_ != 0) {
    p_new = p_new - mul_coef(p, lr_ * weight_decay_);
  }

  const std::vector<MpcTensor> p_parts = detail::split(p_new, shapes);
  const std::vector<MpcTensor> m_parts = detail::split(m, shapes);
  const std::vector<MpcTensor> v_parts = detail::split(v, shapes);
  for (std::size_t j = 0; j < idx.size(); ++j) {
    const std::size_t i = idx[j];
    params_[i].assign_(p_parts[j]);
    exp_avg_[i] = m_parts[j];
    exp_avg_sq_[i] = v_parts[j];
    steps_[i] = t;
  }
}

Adam::Adam(std::vector<MpcTensor> params, const AdamOptions& options)
    : AdamBase(std::move(params),
               options.lr(),
               options.betas(),
               options.eps(),
               options.weight_decay(),
               options.grad_scale_bits(),
               /*decoupled=*/false,
               "Adam") {}

AdamOptions Adam::options() const {
  return AdamOptions(lr_)
      .betas(betas_)
      .eps(eps_)
      .weight_decay(weight_decay_)
      .grad_scale_bits(grad_scale_bits_);
}

AdamW::AdamW(std::vector<MpcTensor> params, const AdamWOptions& options)
    : AdamBase(std::move(params),
               options.lr(),
               options.betas(),
               options.eps(),
               options.weight_decay(),
               options.grad_scale_bits(),
               /*decoupled=*/true,
               "AdamW") {}

AdamWOptions AdamW::options() const {
  return AdamWOptions(lr_)
      .betas(betas_)
      .eps(eps_)
      .weight_decay(weight_decay_)
      .grad_scale_bits(grad_scale_bits_);
}

}  // namespace veil::optim
