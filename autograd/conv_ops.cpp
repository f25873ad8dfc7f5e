// Differentiable conv1d, conv_transpose2d and general/adaptive pooling: each forward with its
// backward rule next to it (g is the gradient of the op's output).

#include "autograd/conv_ops.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/internal.h"
#include "autograd/node.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/bilinear.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/conv.h"
#include "crypto/protocols/nonlinear.h"

namespace veil {

namespace {

using autograd::record;
using Grads = std::vector<MpcTensor>;
using Needs = std::vector<bool>;
using Table = std::shared_ptr<const core::WindowTable>;

Party& party_of(const MpcTensor& x, const char* op) {
  VEIL_CHECK(x.defined(), "[{}] expected a defined operand, got an undefined MpcTensor", op);
  return x.party();
}

Party& party_of(const MpcTensor& x, const MpcTensor& y, const char* op) {
  Party& p = party_of(x, op);
  VEIL_CHECK(&party_of(y, op) == &p, "[{}] the operands belong to different parties", op);
  return p;
}

MpcTensor make(Party& p, bool secret, core::Tensor value, int frac_bits) {
  return secret ? MpcTensor::from_secret({std::move(value), frac_bits}, p)
                : MpcTensor::from_public_ring(value, frac_bits, p);
}

// The same value with another ring tensor (a local, linear change such as a view or padding).
MpcTensor with_ring(const MpcTensor& x, core::Tensor value) {
  return make(x.party(), x.is_secret(), std::move(value), x.frac_bits());
}

// The shift that brings a product of f_x and f_y fractional bits to max(f_x, f_y).
int product_shift(const MpcTensor& x, const MpcTensor& y) {
  return std::min(x.frac_bits(), y.frac_bits());
}

// f(x, y) for a bilinear op, frac_bits max(f_x, f_y): plain ring arithmetic and an arithmetic
// shift when both are public, a local product and one truncation with one public operand.
// Secret-secret products go through beaver_batch in bilinear_batch.
MpcTensor bilinear_local(const crypto::BilinearOp& op, const MpcTensor& x, const MpcTensor& y) {
  Party& p = x.party();
  const int out_frac = std::max(x.frac_bits(), y.frac_bits());
  const int shift = product_shift(x, y);
  const core::Tensor v = op.apply(x.ring(), y.ring());
  if (x.is_public() && y.is_public()) {
    return make(p, false, shift > 0 ? core::shift_right_arith(v, shift) : v, out_frac);
  }
  const crypto::AShare raw{v, x.frac_bits() + y.frac_bits()};
  return MpcTensor::from_secret(crypto::rescale(p, raw, out_frac), p);
}

// Several bilinear products; those with two secret operands share one Beaver round and, when of
// one scale, one truncation.
std::vector<MpcTensor> bilinear_batch(const std::vector<crypto::BilinearOp>& ops,
                                      const std::vector<MpcTensor>& xs,
                                      const std::vector<MpcTensor>& ys) {
  std::vector<MpcTensor> out(ops.size());
  std::vector<crypto::BilinearOp> b_ops;
  std::vector<crypto::AShare> b_x;
  std::vector<crypto::AShare> b_y;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (xs[i].is_secret() && ys[i].is_secret()) {
      b_ops.push_back(ops[i]);
      b_x.push_back(xs[i].ashare());
      b_y.push_back(ys[i].ashare());
      where.push_back(i);
    } else {
      out[i] = bilinear_local(ops[i], xs[i], ys[i]);
    }
  }
  if (b_ops.empty()) {
    return out;
  }
  Party& p = xs[where[0]].party();
  const std::vector<crypto::AShare> z = crypto::beaver_batch(p, b_ops, b_x, b_y);
  std::vector<int> out_frac;
  bool same_scale = true;
  for (std::size_t j = 0; j < z.size(); ++j) {
    const std::size_t i = where[j];
    out_frac.push_back(std::max(xs[i].frac_bits(), ys[i].frac_bits()));
    same_scale = same_scale && z[j].frac_bits == z[0].frac_bits && out_frac[j] == out_frac[0];
  }
  if (z.size() == 1 || !same_scale) {
    for (std::size_t j = 0; j < z.size(); ++j) {
      out[where[j]] = MpcTensor::from_secret(crypto::rescale(p, z[j], out_frac[j]), p);
    }
    return out;
  }
  // Products of one scale: a single truncation of their concatenation (one round for N > 2).
  std::vector<core::Tensor> flat;
  flat.reserve(z.size());
  for (const crypto::AShare& zj : z) {
    flat.push_back(zj.data.reshape({zj.data.numel()}));
  }
  const crypto::AShare all = crypto::rescale(p, {core::cat(flat, 0), z[0].frac_bits}, out_frac[0]);
  int64_t offset = 0;
  for (std::size_t j = 0; j < z.size(); ++j) {
    const int64_t n = z[j].data.numel();
    const core::Tensor part = all.data.slice(0, offset, offset + n).reshape(z[j].shape());
    out[where[j]] = MpcTensor::from_secret({part, all.frac_bits}, p);
    offset += n;
  }
  return out;
}

MpcTensor bilinear(const crypto::BilinearOp& op, const MpcTensor& x, const MpcTensor& y) {
  return bilinear_batch({op}, {x}, {y})[0];
}

}  // namespace

// ---- conv1d ---------------------------------------------------------------------------------

MpcTensor conv1d(const MpcTensor& x, const MpcTensor& w, const core::Conv1dParams& params) {
  // x: [N, C_in, L], w: [C_out, C_in/g, k] -> out: [N, C_out, L'] as conv2d on [.., 1, L] views;
  // the backward is that of reshape and conv2d (autograd/functions.cpp).
  party_of(x, w, "conv1d");
  const core::Shape out = core::conv1d_out_shape(x.shape(), w.shape(), params);
  const MpcTensor x4 = reshape(x, {x.size(0), x.size(1), 1, x.size(2)});
  const MpcTensor w4 = reshape(w, {w.size(0), w.size(1), 1, w.size(2)});
  return reshape(conv2d(x4, w4, params.as_2d()), out);
}

// ---- conv_transpose2d -----------------------------------------------------------------------

MpcTensor conv_transpose2d(const MpcTensor& x,
                           const MpcTensor& w,
                           const core::ConvTranspose2dParams& params) {
  // x: [N, C_in, H, W], w: [C_in, C_out/g, kh, kw] -> out: [N, C_out, H_o, W_o]
  constexpr const char* kOp = "conv_transpose2d";
  party_of(x, w, kOp);
  const core::Shape out = core::conv_transpose2d_out_shape(x.shape(), w.shape(), params);
  const core::Shape in = core::conv_transpose2d_input_shape(x.shape(), w.shape(), params);
  const core::Conv2dParams fwd = params.conv();
  // x' = x zero-extended to the forward conv's output extents (x itself unless output_pad >=
  // stride)
  const MpcTensor xe = with_ring(x, core::zero_extend_hw(x.ring(), in[2], in[3], kOp));
  MpcTensor y =
      bilinear(crypto::BilinearOp::conv2d_input_grad(in, w.shape(), fwd, {out[2], out[3]}), xe, w);
  return record(
      kOp, std::move(y), {x, w},
      [xe, ws = w.detach(), fwd, hw = core::Shape{x.size(2), x.size(3)}](const MpcTensor& g,
                                                                         const Needs& needs) {
        // g: [N, C_out, H_o, W_o]
        // dx = conv2d(g, w): [N, C_in, H', W'] cropped to [N, C_in, H, W]
        // dw = conv2d_weight_grad(g, x'): [C_in, C_out/g, kh, kw]
        std::vector<crypto::BilinearOp> ops;
        std::vector<MpcTensor> lhs;
        std::vector<MpcTensor> rhs;
        if (needs[0]) {
          ops.push_back(crypto::BilinearOp::conv2d(g.shape(), ws.shape(), fwd));
          lhs.push_back(g);
          rhs.push_back(ws);
        }
        if (needs[1]) {
          ops.push_back(crypto::BilinearOp::conv2d_weight_grad(g.shape(), xe.shape(), fwd,
                                                               {ws.size(2), ws.size(3)}));
          lhs.push_back(g);
          rhs.push_back(xe);
        }
        const std::vector<MpcTensor> r = bilinear_batch(ops, lhs, rhs);
        MpcTensor dx;
        MpcTensor dw;
        std::size_t next = 0;
        if (needs[0]) {
          const MpcTensor& full = r[next++];
          dx =
              full.size(2) == hw[0] && full.size(3) == hw[1]
                  ? full
                  : with_ring(full, full.ring().slice(2, 0, hw[0]).slice(3, 0, hw[1]).contiguous());
        }
        if (needs[1]) {
          dw = r[next];
        }
        return Grads{dx, dw};
      });
}

// ---- pooling --------------------------------------------------------------------------------

namespace {

// g [N, C, H', W'] repeated over the k entries of each window -> [N, C, H', W', k].
core::Tensor spread(const core::Tensor& g, int64_t k) {
  core::Shape s5 = g.shape();
  s5.push_back(1);
  core::Shape full = g.shape();
  full.push_back(k);
  return g.reshape(s5).expand(full).contiguous();
}

// x [N, C, H, W] -> [N, C, H', W'] * 1/divisor of each window (public [H', W'] tensor):
// frac_bits max(f_x, f); public: ring product and an arithmetic shift; secret: one truncation.
MpcTensor scale_by_inverse_divisors(const MpcTensor& s,
                                    const core::WindowTable& t,
                                    const char* op) {
  Party& p = s.party();
  core::Tensor inv = core::Tensor::empty({t.out_h, t.out_w}, core::DType::kFloat64);
  double* pi = inv.data<double>();
  for (std::size_t o = 0; o < t.divisor.size(); ++o) {
    pi[o] = 1.0 / static_cast<double>(t.divisor[o]);
  }
  if (s.is_secret()) {
    return MpcTensor::from_secret(crypto::mul_public(p, s.ashare(), inv), p);
  }
  const int f = p.frac_bits();
  const core::Tensor v = core::mul(s.ring(), p.encoder().encode(inv, op));
  const int shift = std::min(s.frac_bits(), f);
  return make(p, false, shift > 0 ? core::shift_right_arith(v, shift) : v,
              std::max(s.frac_bits(), f));
}

// Product of g (fixed point) with an integer 0/1 tensor of the same shape: no truncation.
// Both secret: one Beaver mul (1 round, 8(N-1)(|g| + |m|) bytes); otherwise local.
MpcTensor mul_by_mask(const MpcTensor& g, const MpcTensor& m) {
  Party& p = g.party();
  if (g.is_secret() && m.is_secret()) {
    return MpcTensor::from_secret(crypto::mul(p, g.ashare(), m.ashare()), p);
  }
  if (g.is_public() && m.is_public()) {
    return make(p, false, core::mul(g.ring(), m.ring()), g.frac_bits());
  }
  const MpcTensor& s = g.is_secret() ? g : m;
  const MpcTensor& c = g.is_secret() ? m : g;
  return MpcTensor::from_secret(crypto::mul_public_raw(s.ashare(), c.public_ring(), c.frac_bits()),
                                p);
}

MpcTensor avg_over_windows(const MpcTensor& x, const Table& t, const char* op) {
  // x: [N, C, H, W] -> out: [N, C, H', W'] = (sum of each window) / divisor
  const MpcTensor s = with_ring(x, core::sum(core::gather_windows(x.ring(), *t, op), -1));
  MpcTensor out = scale_by_inverse_divisors(s, *t, op);
  return record(op, std::move(out), {x}, [t, op](const MpcTensor& g, const Needs&) {
    // dx = scatter(spread(g / divisor)): each input gets g / d of every window that reads it
    const MpcTensor gs = scale_by_inverse_divisors(g, *t, op);
    return Grads{with_ring(gs, core::scatter_windows(spread(gs.ring(), t->k), *t, op))};
  });
}

MpcTensor max_over_windows(const MpcTensor& x, const Table& t, const char* op) {
  // x: [N, C, H, W] -> out: [N, C, H', W']; one-hot of the argmax [N, C, H', W', k] saved
  Party& p = x.party();
  const core::Tensor win = core::gather_windows(x.ring(), *t, op);
  const int64_t k = t->k;
  const core::Shape out_shape{x.size(0), x.size(1), t->out_h, t->out_w};
  const bool need_grad = GradMode::is_enabled() && x.requires_grad();
  MpcTensor out;
  MpcTensor onehot;
  if (x.is_secret()) {
    const crypto::MaxResult m = crypto::max_lastdim(p, {win, x.frac_bits()});
    out = MpcTensor::from_secret(m.values, p);
    if (need_grad) {
      // [index == j] against the public positions j = 0..k-1 (held by party 0): one eq.
      core::Tensor pos = core::Tensor::zeros(win.shape(), core::DType::kRing64);
      if (p.rank() == 0) {
        uint64_t* pp = pos.data<uint64_t>();
        for (int64_t i = 0; i < pos.numel(); ++i) {
          pp[i] = static_cast<uint64_t>(i % k);
        }
      }
      const crypto::AShare idx{spread(m.indices.data.reshape(out_shape), k), 0};
      onehot = MpcTensor::from_secret(crypto::eq(p, idx, {pos.to(idx.data.device()), 0}), p);
    }
  } else {
    const autograd::detail::PublicMax pm = autograd::detail::public_max_lastdim(win, out_shape);
    out = MpcTensor::from_public_ring(pm.values, x.frac_bits(), p);
    onehot = MpcTensor::from_public_ring(pm.onehot, 0, p);
  }
  return record(op, std::move(out), {x}, [onehot, t, op](const MpcTensor& g, const Needs&) {
    // dx = scatter(spread(g) * one-hot): g goes to the input element that won each window
    const MpcTensor sel = mul_by_mask(with_ring(g, spread(g.ring(), t->k)), onehot);
    return Grads{with_ring(sel, core::scatter_windows(sel.ring(), *t, op))};
  });
}

void check_4d(const MpcTensor& x, const char* op) {
  party_of(x, op);
  VEIL_CHECK(x.dim() == 4, "[{}] expected x [N, C, H, W], got {}", op, core::shape_str(x.shape()));
}

Table pool_table(const MpcTensor& x,
                 const core::Pool2dParams& params,
                 core::WindowFill fill,
                 const char* op) {
  check_4d(x, op);
  return std::make_shared<const core::WindowTable>(
      core::pool2d_windows(x.size(2), x.size(3), params, fill, op));
}

Table adaptive_table(const MpcTensor& x,
                     const core::Shape& output_size,
                     core::WindowFill fill,
                     const char* op) {
  check_4d(x, op);
  VEIL_CHECK(output_size.size() == 2, "[{}] expected an output size {{oh, ow}}, got {}", op,
             core::shape_str(output_size));
  return std::make_shared<const core::WindowTable>(core::adaptive_pool2d_windows(
      x.size(2), x.size(3), output_size[0], output_size[1], fill, op));
}

}  // namespace

MpcTensor max_pool2d(const MpcTensor& x, const core::Pool2dParams& params) {
  constexpr const char* kOp = "max_pool2d";
  return max_over_windows(x, pool_table(x, params, core::WindowFill::kRepeat, kOp), kOp);
}

MpcTensor avg_pool2d(const MpcTensor& x, const core::Pool2dParams& params) {
  constexpr const char* kOp = "avg_pool2d";
  return avg_over_windows(x, pool_table(x, params, core::WindowFill::kZero, kOp), kOp);
}

MpcTensor adaptive_avg_pool2d(const MpcTensor& x, const core::Shape& output_size) {
  constexpr const char* kOp = "adaptive_avg_pool2d";
  return avg_over_windows(x, adaptive_table(x, output_size, core::WindowFill::kZero, kOp), kOp);
}

MpcTensor adaptive_max_pool2d(const MpcTensor& x, const core::Shape& output_size) {
  constexpr const char* kOp = "adaptive_max_pool2d";
  return max_over_windows(x, adaptive_table(x, output_size, core::WindowFill::kRepeat, kOp), kOp);
}

}  // namespace veil
