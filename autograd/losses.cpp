// Losses with a reduction: each forward with its backward rule next to it (g is the gradient of
// the loss: 0-d for kMean/kSum, the per-element shape for kNone).

#include "autograd/losses.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/elementwise.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"

namespace veil {

namespace {

using autograd::record;
using Grads = std::vector<MpcTensor>;
using Needs = std::vector<bool>;

// Probabilities are clamped into [kBceEps, 1 - kBceEps] (after encoding).
constexpr double kBceEps = 1e-4;
// The row sums of e^(x - max) lie in [1, C]; the same limit as veil::cross_entropy.
constexpr int64_t kMaxSecretClasses = kLogSoftmaxMaxClasses;

Party& party_of(const MpcTensor& x, const MpcTensor& y, const char* op) {
  VEIL_CHECK(x.defined() && y.defined(), "[{}] expected defined operands", op);
  VEIL_CHECK(&x.party() == &y.party(), "[{}] the operands belong to different parties", op);
  return x.party();
}

void check_same_shape(const MpcTensor& x, const MpcTensor& y, const char* op) {
  VEIL_CHECK(x.shape() == y.shape(),
             "[{}] expected input and target of equal shapes, got {} and {}", op,
             core::shape_str(x.shape()), core::shape_str(y.shape()));
}

void check_fixed(const MpcTensor& x, const char* op) {
  VEIL_CHECK(x.frac_bits() == x.party().frac_bits(),
             "[{}] expected an input with frac_bits {}, got {}", op, x.party().frac_bits(),
             x.frac_bits());
}

core::Tensor decode(const MpcTensor& x) {
  return crypto::FixedPointEncoder(x.frac_bits()).decode(x.ring()).contiguous();
}

MpcTensor public_map(const MpcTensor& x, double (*f)(double)) {
  return MpcTensor::from_public(core::map<double, double>(decode(x), f), x.party());
}

// x * c for a public c encoded with 15 significant bits (14 - floor(log2 |c|) fractional bits,
// at least f, at most 40): one truncation, not recorded.
MpcTensor scale_raw(const MpcTensor& x, double c) {
  Party& p = x.party();
  const int f = x.frac_bits();
  int fc = f;
  if (c != 0) {
    fc = std::clamp(14 - static_cast<int>(std::floor(std::log2(std::abs(c)))), f, 40);
  }
  const uint64_t enc = crypto::FixedPointEncoder(fc).encode_scalar(c, "loss");
  const core::Tensor raw = core::mul_scalar(x.ring(), enc);
  if (x.is_secret()) {
    return MpcTensor::from_secret(crypto::truncate(p, {raw, f + fc}, fc), p);
  }
  return MpcTensor::from_public_ring(core::shift_right_arith(raw, fc), f, p);
}

// Differentiable x * c (public c): dx = g * c.
MpcTensor scale(const MpcTensor& x, double c) {
  MpcTensor out = scale_raw(x.detach(), c);
  return record("scale", std::move(out), {x},
                [c](const MpcTensor& g, const Needs&) { return Grads{scale_raw(g, c)}; });
}

// Differentiable reduction of per-element losses.
MpcTensor reduce(const MpcTensor& x, Reduction r) {
  switch (r) {
    case Reduction::kNone:
      return x;
    case Reduction::kSum:
      return sum(x);
    case Reduction::kMean:
      return scale(sum(x), 1.0 / static_cast<double>(x.numel()));
  }
  return x;
}

// The same without recording (values of deferred losses).
MpcTensor reduce_raw(const MpcTensor& x, Reduction r) {
  NoGradGuard no_grad;
  return reduce(x.detach(), r);
}

// The gradient of a per-element term with local derivative factor * d, given the loss's gradient g:
// factor d g (kNone: g elementwise; kSum: g 0-d), factor d g / n (kMean). Public g: one truncation
// with the coefficient factor g / n encoded to 15 significant bits.
MpcTensor chain(const MpcTensor& d, const MpcTensor& g, Reduction r, int64_t n, double factor = 1) {
  const double c = (r == Reduction::kMean ? 1.0 / static_cast<double>(n) : 1.0) * factor;
  if (r != Reduction::kNone && g.is_public()) {
    return scale_raw(d, decode(g).item<double>() * c);
  }
  return c == 1.0 ? d * g : scale_raw(d * g, c);
}

// min(max(x, lo), hi) of a secret: [x < lo], [x > hi] from one lt on 2n elements, then one
// integer product: x - (l + h) x + lo l + hi h (exact).
crypto::AShare clamp_secret(Party& p, const crypto::AShare& x, double lo, double hi) {
  const int f = x.frac_bits;
  const int64_t n = x.numel();
  const core::Tensor flat = x.data.contiguous().reshape({n});
  const crypto::AShare below = crypto::add_public(p, {flat, f}, -lo);
  const crypto::AShare above = crypto::add_public(p, crypto::neg({flat, f}), hi);
  const crypto::AShare bits = crypto::lt(p, {core::cat({below.data, above.data}, 0), f},
                                         {core::Tensor::zeros({2 * n}, core::DType::kRing64), f});
  const crypto::AShare l{bits.data.slice(0, 0, n).contiguous(), 0};
  const crypto::AShare h{bits.data.slice(0, n, 2 * n).contiguous(), 0};
  const crypto::AShare lhx = crypto::mul(p, crypto::add(l, h), {flat, f});
  const crypto::FixedPointEncoder enc(f);
  core::Tensor out = core::sub(flat, lhx.data);
  core::add_(out, core::mul_scalar(l.data, enc.encode_scalar(lo, "clamp")));
  core::add_(out, core::mul_scalar(h.data, enc.encode_scalar(hi, "clamp")));
  return {out.reshape(x.shape()), f};
}

// (a, b) as one share [2n] and back.
crypto::AShare cat2(const crypto::AShare& a, const crypto::AShare& b) {
  const int64_t n = a.numel();
  return {core::cat({a.data.contiguous().reshape({n}), b.data.contiguous().reshape({n})}, 0),
          a.frac_bits};
}
std::pair<crypto::AShare, crypto::AShare> uncat2(const crypto::AShare& ab,
                                                 const core::Shape& shape) {
  const int64_t n = ab.numel() / 2;
  return {{ab.data.slice(0, 0, n).contiguous().reshape(shape), ab.frac_bits},
          {ab.data.slice(0, n, 2 * n).contiguous().reshape(shape), ab.frac_bits}};
}

// Integer one-hot [N, C] of public class indices [N].
MpcTensor one_hot(const core::Tensor& target, int64_t n, int64_t c, Party& p, const char* op) {
  VEIL_CHECK(target.defined() && target.dtype() == core::DType::kInt64 && target.dim() == 1 &&
                 target.size(0) == n,
             "[{}] expected int64 class indices of shape [{}], got {}", op, n,
             target.defined() ? target.str() : std::string("an undefined tensor"));
  const std::vector<int64_t> labels = target.contiguous().to_vector<int64_t>();
  core::Tensor onehot = core::Tensor::zeros({n, c}, core::DType::kRing64);
  uint64_t* po = onehot.data<uint64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = labels[static_cast<std::size_t>(i)];
    VEIL_CHECK(y >= 0 && y < c, "[{}] class index {} at row {} out of range [0, {})", op, y, i, c);
    po[i * c + y] = 1;
  }
  return MpcTensor::from_public_ring(onehot, 0, p);
}

}  // namespace

// ---- regression losses
// ---------------------------------------------------------------------------

MpcTensor mse_loss(const MpcTensor& input, const MpcTensor& target, Reduction reduction) {
  // x: S, y: S -> loss: [] (kMean, kSum) or S (kNone)
  constexpr const char* kOp = "mse_loss";
  party_of(input, target, kOp);
  check_same_shape(input, target, kOp);
  const int64_t n = input.numel();
  MpcTensor d;
  MpcTensor loss;
  {
    NoGradGuard no_grad;
    d = input.detach() - target.detach();
    loss = reduce_raw(square(d), reduction);  // a square pair: half the bytes of d * d
  }
  return record(kOp, std::move(loss), {input, target},
                [d, reduction, n](const MpcTensor& g, const Needs& needs) {
                  // dx = 2 (x - y) g' (one truncation for a public g), dy = -dx
                  const MpcTensor dx = chain(d, g, reduction, n, 2.0);
                  return Grads{dx, needs[1] ? neg(dx) : MpcTensor()};
                });
}

MpcTensor l1_loss(const MpcTensor& input, const MpcTensor& target, Reduction reduction) {
  party_of(input, target, "l1_loss");
  check_same_shape(input, target, "l1_loss");
  return reduce(abs(sub(input, target)), reduction);
}

// ---- binary cross-entropy
// ------------------------------------------------------------------------

MpcTensor binary_cross_entropy(const MpcTensor& input,
                               const MpcTensor& target,
                               Reduction reduction) {
  // p: S, t: S -> loss: [] (kMean, kSum) or S (kNone)
  constexpr const char* kOp = "binary_cross_entropy";
  Party& p = party_of(input, target, kOp);
  check_same_shape(input, target, kOp);
  check_fixed(input, kOp);
  const int f = p.frac_bits();
  const double eps = p.encoder().decode_scalar(p.encoder().encode_scalar(kBceEps, kOp));
  const MpcTensor t = target.detach();
  const int64_t n = input.numel();
  const core::Shape out_shape = reduction == Reduction::kNone ? input.shape() : core::Shape{};
  // -(t log p + (1 - t) log q) = -(log q + t (log p - log q))
  auto loss_of = [reduction, t](const MpcTensor& log_p, const MpcTensor& log_q) {
    NoGradGuard no_grad;
    return reduce_raw(neg(log_q + t * (log_p - log_q)), reduction);
  };
  MpcTensor pc;  // the clamped probabilities, saved for backward
  MpcTensor loss;
  if (input.is_secret()) {
    pc = MpcTensor::from_secret(clamp_secret(p, input.ashare(), eps, 1 - eps), p);
    loss = MpcTensor::deferred_secret(out_shape, f, p, [&p, pc, loss_of]() {
      const crypto::AShare qc = crypto::add_public(p, crypto::neg(pc.ashare()), 1.0);
      const auto [log_p, log_q] =
          uncat2(crypto::log(p, cat2(pc.ashare(), qc)), pc.shape());  // [eps, 1]
      return loss_of(MpcTensor::from_secret(log_p, p), MpcTensor::from_secret(log_q, p)).ashare();
    });
  } else {
    const core::Tensor v = core::map<double, double>(
        decode(input), [eps](double x) { return std::clamp(x, eps, 1 - eps); });
    pc = MpcTensor::from_public(v, p);
    loss = loss_of(MpcTensor::from_public(
                       core::map<double, double>(v, [](double x) { return std::log(x); }), p),
                   MpcTensor::from_public(
                       core::map<double, double>(v, [](double x) { return std::log1p(-x); }), p));
  }
  return record(kOp, std::move(loss), {input, target},
                [pc, t, reduction, n, eps](const MpcTensor& g, const Needs& needs) {
                  if (!needs[0]) {
                    return Grads{MpcTensor(), MpcTensor()};
                  }
                  // dp = (1 - t) / q - t / p = 1/q - t (1/p + 1/q), q = 1 - p (clamped values)
                  MpcTensor inv_p;
                  MpcTensor inv_q;
                  if (pc.is_secret()) {
                    Party& party = pc.party();
                    const crypto::AShare qc =
                        crypto::add_public(party, crypto::neg(pc.ashare()), 1.0);
                    const auto [rp, rq] = uncat2(
                        crypto::reciprocal(party, cat2(pc.ashare(), qc), std::make_pair(eps, 1.0)),
                        pc.shape());
                    inv_p = MpcTensor::from_secret(rp, party);
                    inv_q = MpcTensor::from_secret(rq, party);
                  } else {
                    inv_p = public_map(pc, [](double x) { return 1 / x; });
                    inv_q = public_map(pc, [](double x) { return 1 / (1 - x); });
                  }
                  const MpcTensor d = inv_q - t * (inv_p + inv_q);
                  return Grads{chain(d, g, reduction, n), MpcTensor()};
                });
}

MpcTensor binary_cross_entropy_with_logits(const MpcTensor& input,
                                           const MpcTensor& target,
                                           Reduction reduction) {
  // x: S, t: S -> loss: [] (kMean, kSum) or S (kNone)
  constexpr const char* kOp = "binary_cross_entropy_with_logits";
  Party& p = party_of(input, target, kOp);
  check_same_shape(input, target, kOp);
  check_fixed(input, kOp);
  const int f = p.frac_bits();
  const MpcTensor x = input.detach();
  const MpcTensor t = target.detach();
  const int64_t n = input.numel();
  const core::Shape out_shape = reduction == Reduction::kNone ? input.shape() : core::Shape{};
  MpcTensor loss;
  if (input.is_secret()) {
    loss = MpcTensor::deferred_secret(out_shape, f, p, [&p, x, t, reduction]() {
      NoGradGuard no_grad;
      const crypto::AShare xs = x.ashare();
      const crypto::AShare neg_bit =
          crypto::lt(p, xs, {core::Tensor::zeros(xs.shape(), core::DType::kRing64), xs.frac_bits});
      const crypto::AShare nx = crypto::mul(p, neg_bit, xs);  // integer bit: no truncation
      const crypto::AShare abs_x = crypto::sub(xs, crypto::mul_public_int(nx, 2));
      const crypto::AShare relu_x = crypto::sub(xs, nx);
      const crypto::AShare e = crypto::exp(p, crypto::neg(abs_x));                  // (0, 1]
      const crypto::AShare log1pe = crypto::log(p, crypto::add_public(p, e, 1.0));  // [1, 2]
      const MpcTensor base = MpcTensor::from_secret(crypto::add(relu_x, log1pe), p);
      return reduce_raw(base - x * t, reduction).ashare();
    });
  } else {
    const MpcTensor base = public_map(
        x, [](double v) { return std::max(v, 0.0) + std::log1p(std::exp(-std::abs(v))); });
    NoGradGuard no_grad;
    loss = reduce_raw(base - x * t, reduction);
  }
  return record(kOp, std::move(loss), {input, target},
                [x, t, reduction, n](const MpcTensor& g, const Needs& needs) {
                  if (!needs[0]) {
                    return Grads{MpcTensor(), MpcTensor()};
                  }
                  // dx = sigmoid(x) - t
                  MpcTensor s;
                  if (x.is_secret()) {
                    Party& party = x.party();
                    s = MpcTensor::from_secret(crypto::sigmoid(party, x.ashare()), party);
                  } else {
                    s = public_map(x, [](double v) { return 1.0 / (1.0 + std::exp(-v)); });
                  }
                  return Grads{chain(s - t, g, reduction, n), MpcTensor()};
                });
}

// ---- classification losses
// -----------------------------------------------------------------------

MpcTensor nll_loss(const MpcTensor& log_probs, const core::Tensor& target, Reduction reduction) {
  // log_probs: [N, C], target: [N] -> loss: [] or [N]
  constexpr const char* kOp = "nll_loss";
  VEIL_CHECK(log_probs.defined(), "[{}] expected defined log-probabilities", kOp);
  VEIL_CHECK(log_probs.dim() == 2 && log_probs.size(0) > 0 && log_probs.size(1) > 0,
             "[{}] expected log-probabilities [N, C] with N, C >= 1, got {}", kOp,
             core::shape_str(log_probs.shape()));
  const int64_t n = log_probs.size(0);
  const MpcTensor onehot = one_hot(target, n, log_probs.size(1), log_probs.party(), kOp);
  return reduce(neg(sum(mul(log_probs, onehot), -1)), reduction);  // integer one-hot: exact
}

MpcTensor cross_entropy(const MpcTensor& logits, const MpcTensor& target, Reduction reduction) {
  // logits: [N, C], target: [N, C] -> loss: [] (kMean, kSum) or [N] (kNone)
  constexpr const char* kOp = "cross_entropy";
  if (reduction == Reduction::kMean) {
    return cross_entropy(logits, target);
  }
  Party& p = party_of(logits, target, kOp);
  VEIL_CHECK(logits.dim() == 2 && logits.size(0) > 0 && logits.size(1) > 0,
             "[{}] expected logits [N, C] with N, C >= 1, got {}", kOp,
             core::shape_str(logits.shape()));
  VEIL_CHECK(target.shape() == logits.shape(),
             "[{}] expected a one-hot target of shape {} (the logits' shape), got {}", kOp,
             core::shape_str(logits.shape()), core::shape_str(target.shape()));
  const int64_t n = logits.size(0);
  const int64_t c = logits.size(1);
  const MpcTensor x = logits.detach();
  const MpcTensor t = target.detach();
  // rows: lse_i - <x_i, t_i>
  auto loss_of = [x, t, reduction](const MpcTensor& lse) {
    NoGradGuard no_grad;
    return reduce_raw(lse - sum(x * t, -1), reduction);
  };
  const core::Shape out_shape = reduction == Reduction::kNone ? core::Shape{n} : core::Shape{};
  MpcTensor sm;  // [N, C] softmax, saved for backward
  MpcTensor loss;
  if (logits.is_secret()) {
    VEIL_CHECK(c <= kMaxSecretClasses, "[{}] secret logits support at most {} classes, got C = {}",
               kOp, kMaxSecretClasses, c);
    check_fixed(logits, kOp);
    const crypto::AShare xs = x.ashare();
    const crypto::MaxResult m = crypto::max_lastdim(p, xs);  // [N]
    const crypto::AShare mcol{m.values.data.reshape({n, 1}), m.values.frac_bits};
    const crypto::AShare e = crypto::exp(p, crypto::sub(xs, mcol));     // [N, C] in (0, 1]
    const crypto::AShare total = crypto::sum(e, -1, /*keepdim=*/true);  // [N, 1] in [1, C]
    const crypto::AShare inv =
        crypto::reciprocal(p, total, std::make_pair(1.0, static_cast<double>(c)));
    sm = MpcTensor::from_secret(crypto::mul(p, e, inv), p);
    loss = MpcTensor::deferred_secret(
        out_shape, p.frac_bits(), p, [&p, loss_of, mv = m.values, total, n]() {
          const crypto::AShare log_total = crypto::log(p, total);
          const crypto::AShare lse =
              crypto::add(mv, {log_total.data.reshape({n}), log_total.frac_bits});
          return loss_of(MpcTensor::from_secret(lse, p)).ashare();
        });
  } else {
    core::Tensor v = decode(x);
    core::Tensor lse = core::Tensor::empty({n}, core::DType::kFloat64);
    double* pv = v.data<double>();
    double* pl = lse.data<double>();
    for (int64_t i = 0; i < n; ++i) {
      double* row = pv + i * c;
      const double mx = *std::max_element(row, row + c);
      double total = 0;
      for (int64_t j = 0; j < c; ++j) {
        row[j] = std::exp(row[j] - mx);
        total += row[j];
      }
      for (int64_t j = 0; j < c; ++j) {
        row[j] /= total;
      }
      pl[i] = mx + std::log(total);
    }
    sm = MpcTensor::from_public(v, p);
    loss = loss_of(MpcTensor::from_public(lse, p));
  }
  return record(kOp, std::move(loss), {logits, target},
                [sm, t, reduction, n](const MpcTensor& g, const Needs& needs) {
                  if (!needs[0]) {
                    return Grads{MpcTensor(), MpcTensor()};
                  }
                  // d logits = (softmax - target) g (kSum) or (softmax - target) g_i (kNone)
                  const MpcTensor d = sm - t;
                  if (reduction == Reduction::kNone) {
                    return Grads{d * reshape(g, {n, 1}), MpcTensor()};
                  }
                  return Grads{chain(d, g, reduction, n), MpcTensor()};
                });
}

MpcTensor cross_entropy(const MpcTensor& logits, const core::Tensor& target, Reduction reduction) {
  constexpr const char* kOp = "cross_entropy";
  VEIL_CHECK(logits.defined(), "[{}] expected defined logits", kOp);
  VEIL_CHECK(logits.dim() == 2, "[{}] expected logits [N, C], got {}", kOp,
             core::shape_str(logits.shape()));
  const MpcTensor onehot = one_hot(target, logits.size(0), logits.size(1), logits.party(), kOp);
  return cross_entropy(logits, onehot, reduction);
}

}  // namespace veil
