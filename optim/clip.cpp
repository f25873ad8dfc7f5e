#include "optim/clip.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "autograd/grad_mode.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/bilinear.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"
#include "optim/detail.h"

namespace veil::optim {

namespace {

// Range levels of clip_grad_norm_: S' is divided by 2^(12k), k = 0..2, so that inv_sqrt sees
// (kLevelTop 2^-12, kLevelTop] whenever S' > kLevelTop.
constexpr int kLevelBits = 12;
constexpr double kLevelTop = 64.0;

// The parameters that have a gradient, checked for frac_bits.
std::vector<MpcTensor> with_grad(const std::vector<MpcTensor>& params, const char* op) {
  std::vector<MpcTensor> out;
  for (std::size_t i = 0; i < params.size(); ++i) {
    VEIL_CHECK(params[i].defined(), "[{}] parameter {} is undefined", op, i);
    const MpcTensor g = params[i].grad();
    if (!g.defined()) {
      continue;
    }
    const int f = params[i].party().frac_bits();
    VEIL_CHECK(g.frac_bits() == f,
               "[{}] expected the gradient of parameter {} with frac_bits {}, got {}", op, i, f,
               g.frac_bits());
    out.push_back(params[i]);
  }
  return out;
}

}  // namespace

MpcTensor clip_grad_norm_(const std::vector<MpcTensor>& params, double max_norm) {
  constexpr const char* kOp = "clip_grad_norm_";
  VEIL_CHECK(max_norm > 0 && std::isfinite(max_norm), "[{}] expected max_norm > 0, got {}", kOp,
             max_norm);
  NoGradGuard no_grad;
  const std::vector<MpcTensor> ps = with_grad(params, kOp);
  if (ps.empty()) {
    Party& party = params.empty() ? crypto::current_party() : params.front().party();
    return MpcTensor::zeros({}, party);
  }
  Party& p = ps.front().party();
  const int f = p.frac_bits();
  std::vector<MpcTensor> grads;
  std::vector<core::Shape> shapes;
  bool secret = false;
  for (const MpcTensor& param : ps) {
    grads.push_back(param.grad());
    shapes.push_back(param.shape());
    secret = secret || grads.back().is_secret();
  }

  if (!secret) {
    // float64 on the public encodings, PyTorch's formula
    const crypto::FixedPointEncoder enc(f);
    double total = 0;
    for (const MpcTensor& g : grads) {
      for (double v : enc.decode(g.ring()).contiguous().to_vector<double>()) {
        total += v * v;
      }
    }
    const double norm = std::sqrt(total);
    const double scale = std::min(1.0, max_norm / (norm + 1e-6));
    if (scale < 1) {
      for (std::size_t i = 0; i < ps.size(); ++i) {
        MpcTensor param = ps[i];
        param.set_grad(detail::mul_coef(grads[i], scale));
      }
    }
    return MpcTensor::from_public(core::Tensor::scalar(norm), p);
  }

  const MpcTensor flat = detail::flat_cat(grads, kOp);
  const int64_t n = flat.numel();
  const crypto::AShare x = flat.ashare();
  // S' = <g, g> 2^(2a), computed at 2f bits and truncated once by f - 2a
  const int a = std::clamp(static_cast<int>(std::lround(-std::log2(max_norm))), -8, 8);
  const crypto::AShare raw =
      crypto::beaver(p, crypto::BilinearOp::matmul({1, n}, {n, 1}), {x.data.reshape({1, n}), f},
                     {x.data.reshape({n, 1}), f});
  const crypto::AShare s0{crypto::truncate(p, {raw.data.reshape({1}), 2 * f}, f - 2 * a).data, f};
  // candidates S_k = S' 2^(-12k), k = 0, 1, 2 (truncations of S'; relabelled since the shift may
  // exceed f), and S_k 2^(6k), whose selection is W 2^(6k) = sqrt(S') sqrt(W)
  auto shifted = [&](const crypto::AShare& v, int bits) {
    return crypto::AShare{crypto::truncate(p, {v.data, 62}, bits).data, f};
  };
  const crypto::AShare s1 = shifted(s0, kLevelBits);
  const crypto::AShare s2 = shifted(s0, 2 * kLevelBits);
  const double kappa = std::ldexp(max_norm, a);  // in [0.7, 1.42]
  // c = [S' > kappa^2], b1 = [S_0 > T], b2 = [S_1 > T] from one lt on 3 values
  const crypto::AShare diffs{core::cat({crypto::add_public(p, crypto::neg(s0), kappa * kappa).data,
                                        crypto::add_public(p, crypto::neg(s0), kLevelTop).data,
                                        crypto::add_public(p, crypto::neg(s1), kLevelTop).data},
                                       0),
                             f};
  const crypto::AShare bits =
      crypto::lt(p, diffs, {core::Tensor::zeros({3}, core::DType::kRing64), f});
  auto bit = [&](int64_t k) {
    return crypto::AShare{bits.data.slice(0, k, k + 1).contiguous(), 0};
  };
  const crypto::AShare c = bit(0);
  const crypto::AShare b1 = bit(1);
  const crypto::AShare b2 = bit(2);
  // one-hot level: sel = (1 - b1, b1 - b2, b2); W = <sel, S>, P = <sel, S 2^(6k)>, c sel
  const crypto::AShare sel{
      core::cat({crypto::one_minus(p, b1).data, crypto::sub(b1, b2).data, b2.data}, 0), 0};
  const crypto::AShare cand_w{core::cat({s0.data, s1.data, s2.data}, 0), f};
  const crypto::AShare cand_p{core::cat({s0.data, core::shift_left(s1.data, kLevelBits / 2),
                                         core::shift_left(s2.data, kLevelBits)},
                                        0),
                              f};
  const crypto::AShare c3{core::cat({c.data, c.data, c.data}, 0), 0};
  const auto op3 = crypto::BilinearOp::mul({3}, {3});
  const auto op1 = crypto::BilinearOp::mul({1}, {1});
  const std::vector<crypto::AShare> picked =
      crypto::beaver_batch(p, {op3, op3, op3}, {sel, sel, c3}, {cand_w, cand_p, sel});
  const crypto::AShare w = crypto::sum(picked[0], 0, true);   // [1], in (T 2^-12, T] or S'
  const crypto::AShare pw = crypto::sum(picked[1], 0, true);  // [1]
  const crypto::AShare& csel = picked[2];                     // [3] integer
  const crypto::AShare y = crypto::inv_sqrt(p, w);
  // q_k = kappa y 2^(-6k): the scale max_norm / norm at level k
  const crypto::AShare ky = detail::mul_coef(MpcTensor::from_secret(y, p), kappa).ashare();
  const crypto::AShare q{core::cat({ky.data, crypto::truncate(p, ky, kLevelBits / 2).data,
                                    crypto::truncate(p, ky, kLevelBits).data},
                                   0),
                         f};
  // c q = <c sel, q> and norm = P y 2^-a, in one round
  const std::vector<crypto::AShare> last = crypto::beaver_batch(p, {op3, op1}, {csel, pw}, {q, y});
  const crypto::AShare cq = crypto::sum(last[0], 0, true);          // integer * fixed: f bits
  const crypto::AShare norm = crypto::truncate(p, last[1], f + a);  // 2f -> f - a: times 2^-a
  // scale = 1 - c + c q
  const crypto::AShare scale =
      crypto::add_public(p, crypto::sub(cq, {core::shift_left(c.data, f), f}), 1.0);
  // g <- g scale (broadcast of one element)
  const crypto::AShare scaled =
      crypto::rescale(p, crypto::beaver(p, crypto::BilinearOp::mul({n}, {1}), x, scale), f);
  const std::vector<MpcTensor> parts = detail::split(MpcTensor::from_secret(scaled, p), shapes);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    MpcTensor param = ps[i];
    param.set_grad(parts[i]);
  }
  return MpcTensor::from_secret({norm.data.reshape({}), f}, p);
}

void clip_grad_value_(const std::vector<MpcTensor>& params, double clip_value) {
  constexpr const char* kOp = "clip_grad_value_";
  VEIL_CHECK(clip_value >= 0 && std::isfinite(clip_value), "[{}] expected clip_value >= 0, got {}",
             kOp, clip_value);
  NoGradGuard no_grad;
  const std::vector<MpcTensor> ps = with_grad(params, kOp);
  std::vector<MpcTensor> secret_params;
  std::vector<MpcTensor> secret_grads;
  std::vector<core::Shape> shapes;
  for (const MpcTensor& param : ps) {
    MpcTensor handle = param;
    const MpcTensor g = param.grad();
    if (g.is_public()) {
      handle.set_grad(detail::clamp(g, -clip_value, clip_value, kOp));
    } else {
      secret_params.push_back(param);
      secret_grads.push_back(g);
      shapes.push_back(g.shape());
    }
  }
  if (secret_grads.empty()) {
    return;
  }
  const MpcTensor clamped =
      detail::clamp(detail::flat_cat(secret_grads, kOp), -clip_value, clip_value, kOp);
  const std::vector<MpcTensor> parts = detail::split(clamped, shapes);
  for (std::size_t i = 0; i < secret_params.size(); ++i) {
    secret_params[i].set_grad(parts[i]);
  }
}

}  // namespace veil::optim
