// batch_norm and layer_norm: forward on the shares with batched Beaver products and truncations,
// and the closed-form backward (see autograd/norm.h for the math and the costs). Shape comments:
// BN works on x viewed as [N, C, S] with statistics [1, C, 1]; LN on x viewed as [M, n] with
// statistics [M, 1] and parameters [1, n].

#include "autograd/norm.h"

#include <bit>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/elementwise.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/bilinear.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"

namespace veil {

namespace {

using Grads = std::vector<MpcTensor>;
using Needs = std::vector<bool>;
using Pair = std::pair<MpcTensor, MpcTensor>;

MpcTensor make(Party& p, bool secret, core::Tensor value, int frac_bits) {
  return secret ? MpcTensor::from_secret({std::move(value), frac_bits}, p)
                : MpcTensor::from_public_ring(value, frac_bits, p);
}

// The same ring value read with another number of fractional bits (value / 2^(to - from)).
MpcTensor relabel(const MpcTensor& x, int frac_bits) {
  return make(x.party(), x.is_secret(), x.ring(), frac_bits);
}

// Raw products x_k * y_k (broadcasting) with f_x + f_y fractional bits, not truncated. Every
// secret * secret pair is opened in one Beaver round (crypto::beaver_batch); products with a
// public factor are local.
std::vector<MpcTensor> mul_raw_batch(Party& p, const std::vector<Pair>& pairs) {
  std::vector<MpcTensor> out(pairs.size());
  std::vector<crypto::BilinearOp> ops;
  std::vector<crypto::AShare> xs;
  std::vector<crypto::AShare> ys;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const auto& [a, b] = pairs[i];
    const int frac = a.frac_bits() + b.frac_bits();
    if (a.is_secret() && b.is_secret()) {
      ops.push_back(crypto::BilinearOp::mul(a.shape(), b.shape()));
      xs.push_back(a.ashare());
      ys.push_back(b.ashare());
      where.push_back(i);
    } else {
      // A share times a public value is a share of the product; public * public is public.
      (void)core::broadcast_shapes(a.shape(), b.shape(), "mul");
      out[i] = make(p, a.is_secret() || b.is_secret(), core::mul(a.ring(), b.ring()), frac);
    }
  }
  if (!ops.empty()) {
    std::vector<crypto::AShare> z = crypto::beaver_batch(p, ops, xs, ys);
    for (std::size_t k = 0; k < where.size(); ++k) {
      out[where[k]] = MpcTensor::from_secret(std::move(z[k]), p);
    }
  }
  return out;
}

// d * d with 2 f_d fractional bits, not truncated; a secret d from a square pair (one round,
// 8(N-1) bytes per element: half of mul_raw_batch's product of two operands).
MpcTensor square_raw(Party& p, const MpcTensor& d) {
  if (!d.is_secret()) {
    return mul_raw_batch(p, {{d, d}})[0];
  }
  const crypto::AShare a = d.ashare();
  return MpcTensor::from_secret(crypto::beaver(p, crypto::BilinearOp::square(a.shape()), a, a), p);
}

// Rescales every value to f fractional bits: public ones by an arithmetic shift, secret ones by
// crypto::truncate; for N > 2 all secrets with the same shift share one truncation (one round).
std::vector<MpcTensor> rescale_all(Party& p, std::vector<MpcTensor> xs, int f) {
  std::map<int, std::vector<std::size_t>> groups;  // shift -> secret entries (ordered: same
                                                   // sequence on every party)
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const int bits = xs[i].frac_bits() - f;
    VEIL_INTERNAL_ASSERT(bits >= 0, "rescale_all: frac_bits {} below {}", xs[i].frac_bits(), f);
    if (bits == 0) {
      continue;
    }
    if (xs[i].is_public()) {
      xs[i] = make(p, false, core::shift_right_arith(xs[i].ring(), bits), f);
    } else if (p.world_size() == 2) {
      xs[i] = MpcTensor::from_secret(crypto::truncate(p, xs[i].ashare(), bits), p);
    } else {
      groups[bits].push_back(i);
    }
  }
  for (const auto& [bits, idx] : groups) {
    std::vector<core::Tensor> flat;
    for (std::size_t i : idx) {
      flat.push_back(xs[i].ring().reshape({xs[i].numel()}));
    }
    const core::Tensor all = flat.size() == 1 ? flat[0] : core::cat(flat, 0);
    const crypto::AShare t = crypto::truncate(p, {all, f + bits}, bits);
    int64_t at = 0;
    for (std::size_t i : idx) {
      const int64_t len = xs[i].numel();
      xs[i] = MpcTensor::from_secret({t.data.slice(0, at, at + len).reshape(xs[i].shape()), f}, p);
      at += len;
    }
  }
  return xs;
}

// x_k * y_k rescaled to f bits: one Beaver round for the secret pairs and one truncation batch.
std::vector<MpcTensor> mul_batch(Party& p, const std::vector<Pair>& pairs) {
  return rescale_all(p, mul_raw_batch(p, pairs), p.frac_bits());
}

int ceil_log2(int64_t n) {
  return static_cast<int>(std::bit_width(static_cast<uint64_t>(n - 1)));
}

// Division of a sum s (any frac_bits >= f) by the public count n, in two rescaling stages so that
// callers can batch truncations: stage 1 reads s as s / 2^k (k = ceil(log2 n)) and must be
// rescaled to f bits; stage 2 multiplies that by the encoding of 2^k / n in [1, 2) (local) and
// must be rescaled to f bits again.
MpcTensor div_stage1(const MpcTensor& s, int64_t n) {
  return relabel(s, s.frac_bits() + ceil_log2(n));
}
MpcTensor div_stage2(const MpcTensor& r, int64_t n) {
  Party& p = r.party();
  const double ratio = std::ldexp(1.0, ceil_log2(n)) / static_cast<double>(n);
  const uint64_t c = p.encoder().encode_scalar(ratio, "div");
  return make(p, r.is_secret(), core::mul_scalar(r.ring(), c), r.frac_bits() + p.frac_bits());
}
// x (f bits) read exactly with 2f bits (a left shift), so that stage 1 of a division shifts by
// f + k for f-bit and 2f-bit sums alike and they share one truncation batch.
MpcTensor lift_to_raw(const MpcTensor& x) {
  const int f = x.party().frac_bits();
  if (x.frac_bits() == 2 * f) {
    return x;
  }
  return make(x.party(), x.is_secret(), core::shift_left(x.ring(), 2 * f - x.frac_bits()), 2 * f);
}
// s / n for each s (two truncation batches).
std::vector<MpcTensor> div_n_all(Party& p, const std::vector<MpcTensor>& sums, int64_t n) {
  std::vector<MpcTensor> a;
  for (const MpcTensor& s : sums) {
    a.push_back(div_stage1(s, n));
  }
  a = rescale_all(p, std::move(a), p.frac_bits());
  std::vector<MpcTensor> b;
  for (const MpcTensor& r : a) {
    b.push_back(div_stage2(r, n));
  }
  return rescale_all(p, std::move(b), p.frac_bits());
}

// c * x with c encoded with f bits, not truncated (frac_bits f_x + f). Local.
MpcTensor scale_raw(const MpcTensor& x, double c) {
  Party& p = x.party();
  return make(p, x.is_secret(), core::mul_scalar(x.ring(), p.encoder().encode_scalar(c, "scale")),
              x.frac_bits() + p.frac_bits());
}

// 1 / sqrt(v) elementwise: crypto::inv_sqrt for a secret v, float64 for a public one.
MpcTensor inv_sqrt_of(const MpcTensor& v, const char* op) {
  Party& p = v.party();
  if (v.is_secret()) {
    return MpcTensor::from_secret(crypto::inv_sqrt(p, v.ashare()), p);
  }
  const core::Tensor d = crypto::FixedPointEncoder(v.frac_bits()).decode(v.public_ring());
  for (double e : d.contiguous().to_vector<double>()) {
    VEIL_CHECK(e > 0, "[{}] expected a positive variance + eps, got a non-positive public value",
               op);
  }
  return MpcTensor::from_public(
      core::map<double, double>(d, [](double e) { return 1.0 / std::sqrt(e); }), p);
}

std::string describe(const MpcTensor& t) {
  return t.defined() ? core::shape_str(t.shape()) : std::string("undefined");
}

void check_operand(const MpcTensor& t, Party& p, const char* what, const char* op) {
  if (!t.defined()) {
    return;
  }
  VEIL_CHECK(&t.party() == &p, "[{}] {} belongs to another party than the input", op, what);
  VEIL_CHECK(t.frac_bits() == p.frac_bits(),
             "[{}] expected {} with frac_bits {} (fixed point), got frac_bits {}", op, what,
             p.frac_bits(), t.frac_bits());
}

void check_params(double eps, const char* op) {
  VEIL_CHECK(std::isfinite(eps) && eps >= 0, "[{}] expected a finite eps >= 0, got {}", op, eps);
}

// sum over the batch and spatial axes of t [N, C, S] -> [1, C, 1] (local).
MpcTensor sum_ns(const MpcTensor& t) {
  return sum(sum(t, 0, true), 2, true);
}

}  // namespace

// ---- batch_norm ---------------------------------------------------------------------------------

MpcTensor batch_norm(const MpcTensor& x,
                     const MpcTensor& running_mean,
                     const MpcTensor& running_var,
                     const MpcTensor& weight,
                     const MpcTensor& bias,
                     bool training,
                     double momentum,
                     double eps) {
  constexpr const char* kOp = "batch_norm";
  VEIL_CHECK(x.defined(), "[batch_norm] expected a defined input, got an undefined MpcTensor");
  Party& p = x.party();
  VEIL_CHECK(x.dim() >= 2 && x.numel() > 0,
             "[batch_norm] expected a non-empty input [N, C] or [N, C, *], got {}",
             core::shape_str(x.shape()));
  const int64_t n_batch = x.size(0);
  const int64_t c = x.size(1);
  const int64_t s = x.numel() / (n_batch * c);
  const int64_t n = n_batch * s;  // values per channel
  const core::Shape cshape{c};
  check_operand(x, p, "the input", kOp);
  const std::pair<const MpcTensor*, const char*> per_channel[] = {{&running_mean, "running_mean"},
                                                                  {&running_var, "running_var"},
                                                                  {&weight, "weight"},
                                                                  {&bias, "bias"}};
  for (const auto& [t, what] : per_channel) {
    check_operand(*t, p, what, kOp);
    VEIL_CHECK(!t->defined() || t->shape() == cshape,
               "[batch_norm] expected {} of shape [{}] (C of input {}), got {}", what, c,
               core::shape_str(x.shape()), describe(*t));
  }
  VEIL_CHECK(running_mean.defined() == running_var.defined(),
             "[batch_norm] expected running_mean and running_var both defined or both undefined, "
             "got {} and {}",
             describe(running_mean), describe(running_var));
  const bool running = running_mean.defined();
  VEIL_CHECK(training || running,
             "[batch_norm] eval mode (training = false) needs running_mean and running_var");
  VEIL_CHECK(!running || (running_mean.is_leaf() && running_var.is_leaf()),
             "[batch_norm] expected leaf running buffers (they are updated in place)");
  VEIL_CHECK(!training || n > 1,
             "[batch_norm] expected more than 1 value per channel when training, got input {}",
             core::shape_str(x.shape()));
  VEIL_CHECK(std::isfinite(momentum) && momentum >= 0 && momentum <= 1,
             "[batch_norm] expected momentum in [0, 1], got {}", momentum);
  check_params(eps, kOp);

  const int f = p.frac_bits();
  const core::Shape stat_shape{1, c, 1};
  MpcTensor x_hat;    // [N, C, S]
  MpcTensor inv_std;  // [1, C, 1]
  MpcTensor w3;       // [1, C, 1] or undefined
  MpcTensor out;
  {
    NoGradGuard no_grad;
    const MpcTensor x3 = reshape(x.detach(), {n_batch, c, s});
    MpcTensor mean;  // [1, C, 1]
    MpcTensor var;   // [1, C, 1], biased
    MpcTensor d;     // x - mean
    if (training) {
      mean = div_n_all(p, {sum_ns(x3)}, n)[0];
      d = sub(x3, mean);
      const MpcTensor sq = square_raw(p, d);  // 2f bits, summed before truncation
      var = div_n_all(p, {sum_ns(sq)}, n)[0];
    } else {
      mean = reshape(running_mean.detach(), stat_shape);
      var = reshape(running_var.detach(), stat_shape);
      d = sub(x3, mean);
    }
    inv_std = inv_sqrt_of(add(var, eps), kOp);
    // x_hat = d inv_std; the running statistics share its truncation batch.
    std::vector<MpcTensor> raw = mul_raw_batch(p, {{d, inv_std}});
    if (training && running) {
      const double unbiased = static_cast<double>(n) / static_cast<double>(n - 1);
      raw.push_back(add(scale_raw(running_mean.detach(), 1.0 - momentum),
                        scale_raw(reshape(mean, cshape), momentum)));
      raw.push_back(add(scale_raw(running_var.detach(), 1.0 - momentum),
                        scale_raw(reshape(var, cshape), momentum * unbiased)));
    }
    raw = rescale_all(p, std::move(raw), f);
    x_hat = raw[0];
    if (training && running) {
      MpcTensor rm = running_mean;
      MpcTensor rv = running_var;
      rm.assign_(raw[1]);
      rv.assign_(raw[2]);
    }
    MpcTensor y = x_hat;
    if (weight.defined()) {
      w3 = reshape(weight.detach(), stat_shape);
      y = mul_batch(p, {{x_hat, w3}})[0];
    }
    if (bias.defined()) {
      y = add(y, reshape(bias.detach(), stat_shape));
    }
    out = reshape(y, x.shape());
  }
  return autograd::record(
      kOp, std::move(out), {x, weight, bias},
      [x_hat, inv_std, w3, training, n, xs = x.shape(), c, cshape](const MpcTensor& g_out,
                                                                   const Needs& needs) {
        Party& party = g_out.party();
        const bool need_dx = needs[0];
        const bool need_dw = needs[1];
        const MpcTensor g = reshape(g_out, x_hat.shape());  // [N, C, S]
        // Round 1: P = g x_hat (raw, summed before truncation) and s = inv_std weight.
        std::vector<Pair> pairs;
        const bool want_p = need_dw || (need_dx && training);
        if (want_p) {
          pairs.emplace_back(g, x_hat);
        }
        const bool want_s = need_dx && w3.defined();
        if (want_s) {
          pairs.emplace_back(inv_std, w3);
        }
        std::vector<MpcTensor> raw = mul_raw_batch(party, pairs);
        const MpcTensor b_raw = want_p ? sum_ns(raw[0]) : MpcTensor();  // [1, C, 1], 2f bits
        const MpcTensor a = sum_ns(g);                                  // [1, C, 1]
        // One truncation batch: s, dweight, and stage 1 of mean(g), mean(g x_hat).
        std::vector<MpcTensor> batch;
        if (want_s) {
          batch.push_back(raw[want_p ? 1 : 0]);
        }
        if (need_dw) {
          batch.push_back(b_raw);
        }
        if (need_dx && training) {
          batch.push_back(div_stage1(lift_to_raw(a), n));
          batch.push_back(div_stage1(b_raw, n));
        }
        batch = rescale_all(party, std::move(batch), party.frac_bits());
        std::size_t at = 0;
        const MpcTensor scale = want_s ? batch[at++] : inv_std;  // [1, C, 1]
        MpcTensor dw;
        if (need_dw) {
          dw = reshape(batch[at++], cshape);
        }
        const MpcTensor db = needs[2] ? reshape(a, cshape) : MpcTensor();
        MpcTensor dx;
        if (need_dx) {
          MpcTensor u = g;  // eval: the statistics are constants, dx = g s
          if (training) {
            const std::vector<MpcTensor> means = rescale_all(
                party, {div_stage2(batch[at], n), div_stage2(batch[at + 1], n)}, party.frac_bits());
            // Round 2: u = g - mean(g) - x_hat mean(g x_hat)
            const MpcTensor t = mul_batch(party, {{x_hat, means[1]}})[0];
            u = sub(sub(g, means[0]), t);
          }
          // Round 3: dx = u inv_std weight
          dx = reshape(mul_batch(party, {{u, scale}})[0], xs);
        }
        return Grads{dx, dw, db};
      });
}

// ---- layer_norm ---------------------------------------------------------------------------------

MpcTensor layer_norm(const MpcTensor& x,
                     const std::vector<int64_t>& normalized_shape,
                     const MpcTensor& weight,
                     const MpcTensor& bias,
                     double eps) {
  constexpr const char* kOp = "layer_norm";
  VEIL_CHECK(x.defined(), "[layer_norm] expected a defined input, got an undefined MpcTensor");
  Party& p = x.party();
  const core::Shape ns(normalized_shape.begin(), normalized_shape.end());
  const auto k = static_cast<int64_t>(ns.size());
  bool match = !ns.empty() && x.dim() >= k;
  int64_t n = 1;
  for (int64_t i = 0; match && i < k; ++i) {
    match = ns[static_cast<std::size_t>(i)] >= 1 &&
            x.size(x.dim() - k + i) == ns[static_cast<std::size_t>(i)];
    n *= ns[static_cast<std::size_t>(i)];
  }
  VEIL_CHECK(match && x.numel() > 0,
             "[layer_norm] expected a non-empty input [*, {}] (normalized_shape as trailing "
             "dimensions), got {}",
             fmt::join(ns, ", "), core::shape_str(x.shape()));
  const int64_t m = x.numel() / n;  // rows
  check_operand(x, p, "the input", kOp);
  for (const auto& [t, what] : {std::pair{&weight, "weight"}, std::pair{&bias, "bias"}}) {
    check_operand(*t, p, what, kOp);
    VEIL_CHECK(!t->defined() || t->shape() == ns, "[layer_norm] expected {} of shape {}, got {}",
               what, core::shape_str(ns), describe(*t));
  }
  check_params(eps, kOp);

  MpcTensor x_hat;    // [M, n]
  MpcTensor inv_std;  // [M, 1]
  MpcTensor w2;       // [1, n] or undefined
  MpcTensor y_lin;    // x_hat w [M, n] (saved for backward when w is defined)
  MpcTensor out;
  {
    NoGradGuard no_grad;
    const MpcTensor x2 = reshape(x.detach(), {m, n});
    const MpcTensor mean = div_n_all(p, {sum(x2, 1, true)}, n)[0];  // [M, 1]
    const MpcTensor d = sub(x2, mean);
    const MpcTensor sq = square_raw(p, d);  // 2f bits
    const MpcTensor var = div_n_all(p, {sum(sq, 1, true)}, n)[0];
    inv_std = inv_sqrt_of(add(var, eps), kOp);
    x_hat = mul_batch(p, {{d, inv_std}})[0];
    MpcTensor y = x_hat;
    if (weight.defined()) {
      w2 = reshape(weight.detach(), {1, n});
      y_lin = mul_batch(p, {{x_hat, w2}})[0];
      y = y_lin;
    }
    if (bias.defined()) {
      y = add(y, reshape(bias.detach(), {1, n}));
    }
    out = reshape(y, x.shape());
  }
  return autograd::record(
      kOp, std::move(out), {x, weight, bias},
      [x_hat, inv_std, w2, y_lin, n, xs = x.shape(), ns](const MpcTensor& g_out,
                                                         const Needs& needs) {
        Party& party = g_out.party();
        const bool need_dx = needs[0];
        const bool need_dw = needs[1];
        const MpcTensor g = reshape(g_out, x_hat.shape());  // [M, n]
        const bool affine = w2.defined();
        // Round 1: g_hat = g w, q = g (x_hat w) = g_hat x_hat, P = g x_hat (raw).
        std::vector<Pair> pairs;
        const bool want_p = need_dw || (need_dx && !affine);
        const bool want_gw = need_dx && affine;
        if (want_p) {
          pairs.emplace_back(g, x_hat);
        }
        if (want_gw) {
          pairs.emplace_back(g, w2);
          pairs.emplace_back(g, y_lin);
        }
        std::vector<MpcTensor> raw = mul_raw_batch(party, pairs);
        const MpcTensor p_raw = want_p ? raw[0] : MpcTensor();
        const MpcTensor gh_raw = want_gw ? raw[want_p ? 1 : 0] : MpcTensor();
        const MpcTensor q_raw = want_gw ? raw[want_p ? 2 : 1] : p_raw;
        std::vector<MpcTensor> batch;
        if (need_dw) {
          batch.push_back(sum(p_raw, 0, false));  // [n], 2f bits
        }
        if (need_dx) {
          // [M, 1] each, 2f bits
          batch.push_back(div_stage1(lift_to_raw(sum(affine ? gh_raw : g, 1, true)), n));
          batch.push_back(div_stage1(sum(q_raw, 1, true), n));
          if (affine) {
            batch.push_back(gh_raw);
          }
        }
        batch = rescale_all(party, std::move(batch), party.frac_bits());
        std::size_t at = 0;
        MpcTensor dw;
        if (need_dw) {
          dw = reshape(batch[at++], ns);
        }
        const MpcTensor db = needs[2] ? reshape(sum(g, 0, false), ns) : MpcTensor();
        MpcTensor dx;
        if (need_dx) {
          const std::vector<MpcTensor> means = rescale_all(
              party, {div_stage2(batch[at], n), div_stage2(batch[at + 1], n)}, party.frac_bits());
          const MpcTensor g_hat = affine ? batch[at + 2] : g;
          // Round 2: u = g_hat - mean(g_hat) - x_hat mean(g_hat x_hat)
          const MpcTensor t = mul_batch(party, {{x_hat, means[1]}})[0];
          const MpcTensor u = sub(sub(g_hat, means[0]), t);
          // Round 3: dx = u inv_std
          dx = reshape(mul_batch(party, {{u, inv_std}})[0], xs);
        }
        return Grads{dx, dw, db};
      });
}

}  // namespace veil
