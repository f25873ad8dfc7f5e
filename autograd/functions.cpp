// Differentiable ops: each forward with its backward rule next to it (shape comments: g is the
// gradient of the op's output). The raw_* helpers compute values without recording; backward
// rules use them (the engine runs with grad mode off anyway).

#include "autograd/functions.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/internal.h"
#include "autograd/node.h"
#include "autograd/shape_ops.h"
#include "core/conv.h"
#include "core/elementwise.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/bilinear.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"

namespace veil {

namespace autograd::detail {

Party& party_of(const MpcTensor& x, const char* op) {
  VEIL_CHECK(x.defined(), "[{}] expected a defined operand, got an undefined MpcTensor", op);
  return x.party();
}

Party& party_of(const MpcTensor& x, const MpcTensor& y, const char* op) {
  Party& p = party_of(x, op);
  VEIL_CHECK(&party_of(y, op) == &p, "[{}] the operands belong to different parties", op);
  return p;
}

// An exact change of scale from `from` to `to` >= from fractional bits (a left shift).
core::Tensor lift(const core::Tensor& ring, int from, int to) {
  return to == from ? ring : core::shift_left(ring, to - from);
}

MpcTensor make(Party& p, bool secret, core::Tensor value, int frac_bits) {
  return secret ? MpcTensor::from_secret({std::move(value), frac_bits}, p)
                : MpcTensor::from_public_ring(value, frac_bits, p);
}

MpcTensor like(const MpcTensor& ref, core::Tensor value) {
  return make(ref.party(), ref.is_secret(), std::move(value), ref.frac_bits());
}

core::Tensor decode(const MpcTensor& x) {
  return crypto::FixedPointEncoder(x.frac_bits()).decode(x.public_ring()).contiguous();
}

PublicMax public_max_lastdim(const core::Tensor& windows, const core::Shape& out_shape) {
  const core::Tensor v = windows.contiguous();
  const int64_t k = v.shape().back();
  core::Tensor o = core::Tensor::empty(out_shape, core::DType::kRing64);
  core::Tensor m = core::Tensor::zeros(v.shape(), core::DType::kRing64);
  const uint64_t* pv = v.data<uint64_t>();
  uint64_t* po = o.data<uint64_t>();
  uint64_t* pm = m.data<uint64_t>();
  for (int64_t r = 0; r < o.numel(); ++r) {
    int64_t best = 0;
    for (int64_t j = 1; j < k; ++j) {
      if (static_cast<int64_t>(pv[r * k + j]) > static_cast<int64_t>(pv[r * k + best])) {
        best = j;
      }
    }
    po[r] = pv[r * k + best];
    pm[r * k + best] = 1;
  }
  return {o, m};
}

core::Tensor share_ring(const MpcTensor& x) {
  if (x.is_secret() || x.party().rank() == 0) {
    return x.ring();
  }
  return core::Tensor::zeros(x.shape(), core::DType::kRing64);
}

// ---- raw values (no recording) ------------------------------------------------------------------

MpcTensor raw_add(const MpcTensor& x, const MpcTensor& y, const char* op) {
  Party& p = party_of(x, y, op);
  (void)core::broadcast_shapes(x.shape(), y.shape(), op);
  const int f = std::max(x.frac_bits(), y.frac_bits());
  const core::Tensor a = lift(x.ring(), x.frac_bits(), f);
  const core::Tensor b = lift(y.ring(), y.frac_bits(), f);
  if (x.is_secret() == y.is_secret()) {
    return make(p, x.is_secret(), core::add(a, b), f);
  }
  // public + secret: party 0 adds the public value to its share (local).
  const core::Tensor& s = x.is_secret() ? a : b;
  const core::Tensor& c = x.is_secret() ? b : a;
  return MpcTensor::from_secret(crypto::add_public(p, {s, f}, c), p);
}

MpcTensor raw_neg(const MpcTensor& x, const char* op) {
  Party& p = party_of(x, op);
  return make(p, x.is_secret(), core::neg(x.ring()), x.frac_bits());
}

MpcTensor raw_sub(const MpcTensor& x, const MpcTensor& y, const char* op) {
  return raw_add(x, raw_neg(y, op), op);
}

// Product with frac_bits max(f_x, f_y): the raw product carries f_x + f_y bits and is truncated by
// min(f_x, f_y) (nothing for an integer operand).
MpcTensor raw_mul(const MpcTensor& x, const MpcTensor& y, const char* op) {
  Party& p = party_of(x, y, op);
  (void)core::broadcast_shapes(x.shape(), y.shape(), op);
  const int out_frac = std::max(x.frac_bits(), y.frac_bits());
  const int shift = std::min(x.frac_bits(), y.frac_bits());
  if (x.is_public() && y.is_public()) {
    core::Tensor v = core::mul(x.ring(), y.ring());
    return make(p, false, shift > 0 ? core::shift_right_arith(v, shift) : v, out_frac);
  }
  if (x.is_secret() && y.is_secret()) {
    return MpcTensor::from_secret(crypto::mul(p, x.ashare(), y.ashare()), p);
  }
  const MpcTensor& s = x.is_secret() ? x : y;
  const MpcTensor& c = x.is_secret() ? y : x;
  const crypto::AShare raw = crypto::mul_public_raw(s.ashare(), c.public_ring(), c.frac_bits());
  return MpcTensor::from_secret(crypto::rescale(p, raw, out_frac), p);
}

MpcTensor raw_square(const MpcTensor& x, const char* op) {
  Party& p = party_of(x, op);
  return x.is_secret() ? MpcTensor::from_secret(crypto::square(p, x.ashare()), p)
                       : raw_mul(x, x, op);
}

MpcTensor raw_mul_scalar(const MpcTensor& x, double c, const char* op) {
  Party& p = party_of(x, op);
  if (x.is_secret()) {
    return MpcTensor::from_secret(crypto::mul_public(p, x.ashare(), c), p);
  }
  const int f = p.frac_bits();
  const core::Tensor v = core::mul_scalar(x.ring(), p.encoder().encode_scalar(c, op));
  const int shift = std::min(x.frac_bits(), f);
  return make(p, false, shift > 0 ? core::shift_right_arith(v, shift) : v,
              std::max(x.frac_bits(), f));
}

MpcTensor raw_matmul(const MpcTensor& x, const MpcTensor& w, const char* op) {
  Party& p = party_of(x, w, op);
  VEIL_CHECK(x.dim() == 2 && w.dim() == 2, "[{}] expected 2-D operands, got x {} and w {}", op,
             core::shape_str(x.shape()), core::shape_str(w.shape()));
  VEIL_CHECK(x.size(1) == w.size(0), "[{}] inner dimensions differ: x is {}, w is {}", op,
             core::shape_str(x.shape()), core::shape_str(w.shape()));
  const int out_frac = std::max(x.frac_bits(), w.frac_bits());
  const int shift = std::min(x.frac_bits(), w.frac_bits());
  if (x.is_secret() && w.is_secret()) {
    return MpcTensor::from_secret(crypto::matmul(p, x.ashare(), w.ashare()), p);
  }
  const core::Tensor v = core::matmul(x.ring(), w.ring());
  if (x.is_public() && w.is_public()) {
    return make(p, false, shift > 0 ? core::shift_right_arith(v, shift) : v, out_frac);
  }
  // One operand public: the product of a share with a public matrix is a share of the product.
  const crypto::AShare raw{v, x.frac_bits() + w.frac_bits()};
  return MpcTensor::from_secret(crypto::rescale(p, raw, out_frac), p);
}

// f(x, y) for a bilinear op (conv2d and its gradients) with frac_bits max(f_x, f_y): Beaver +
// rescale when both are secret, a local product + rescale with one public operand, plain ring
// arithmetic with an arithmetic shift when both are public.
MpcTensor raw_bilinear(const crypto::BilinearOp& bop,
                       const MpcTensor& x,
                       const MpcTensor& y,
                       const char* op) {
  Party& p = party_of(x, y, op);
  const int out_frac = std::max(x.frac_bits(), y.frac_bits());
  const int shift = std::min(x.frac_bits(), y.frac_bits());
  if (x.is_secret() && y.is_secret()) {
    const crypto::AShare z = crypto::beaver(p, bop, x.ashare(), y.ashare());
    return MpcTensor::from_secret(crypto::rescale(p, z, out_frac), p);
  }
  const core::Tensor v = bop.apply(x.ring(), y.ring());
  if (x.is_public() && y.is_public()) {
    return make(p, false, shift > 0 ? core::shift_right_arith(v, shift) : v, out_frac);
  }
  const crypto::AShare raw{v, x.frac_bits() + y.frac_bits()};
  return MpcTensor::from_secret(crypto::rescale(p, raw, out_frac), p);
}

MpcTensor raw_transpose(const MpcTensor& x, const char* op) {
  Party& p = party_of(x, op);
  VEIL_CHECK(x.dim() == 2, "[{}] expected a 2-D tensor, got {}", op, core::shape_str(x.shape()));
  return make(p, x.is_secret(), x.ring().t(), x.frac_bits());
}

MpcTensor raw_reshape(const MpcTensor& x, const core::Shape& shape, const char* op) {
  Party& p = party_of(x, op);
  return make(p, x.is_secret(), x.ring().reshape(shape), x.frac_bits());
}

MpcTensor raw_sum(const MpcTensor& x, int64_t dim, bool keepdim, const char* op) {
  Party& p = party_of(x, op);
  return make(p, x.is_secret(), core::sum(x.ring(), dim, keepdim), x.frac_bits());
}

// g [reduced shape] -> [shape]: repeats g along `dim` (the backward of a sum).
MpcTensor expand_back(const MpcTensor& g, const core::Shape& shape, int64_t dim, bool keepdim) {
  core::Shape kept = shape;
  kept[static_cast<std::size_t>(dim)] = 1;
  core::Tensor v = keepdim ? g.ring() : g.ring().reshape(kept);
  return make(g.party(), g.is_secret(), v.expand(shape).contiguous(), g.frac_bits());
}

int64_t normalize_dim(const MpcTensor& x, int64_t dim, const char* op) {
  const int64_t n = x.dim();
  VEIL_CHECK(dim >= -n && dim < n, "[{}] dim {} out of range for shape {}", op, dim,
             core::shape_str(x.shape()));
  return dim < 0 ? dim + n : dim;
}

}  // namespace autograd::detail

namespace {
using namespace autograd::detail;  // NOLINT(google-build-using-namespace): internal helpers
using autograd::record;
using Grads = std::vector<MpcTensor>;
using Needs = std::vector<bool>;
}  // namespace

// ---- elementwise
// ----------------------------------------------------------------------------------

MpcTensor add(const MpcTensor& x, const MpcTensor& y) {
  // x: Sx, y: Sy -> out: broadcast(Sx, Sy)
  MpcTensor out = raw_add(x, y, "add");
  return record("add", std::move(out), {x, y},
                [sx = x.shape(), sy = y.shape()](const MpcTensor& g, const Needs& needs) {
                  // dx = sum_to(g, Sx), dy = sum_to(g, Sy)
                  return Grads{needs[0] ? sum_to(g, sx) : MpcTensor(),
                               needs[1] ? sum_to(g, sy) : MpcTensor()};
                });
}

MpcTensor sub(const MpcTensor& x, const MpcTensor& y) {
  // x: Sx, y: Sy -> out: broadcast(Sx, Sy)
  MpcTensor out = raw_sub(x, y, "sub");
  return record("sub", std::move(out), {x, y},
                [sx = x.shape(), sy = y.shape()](const MpcTensor& g, const Needs& needs) {
                  // dx = sum_to(g, Sx), dy = -sum_to(g, Sy)
                  return Grads{needs[0] ? sum_to(g, sx) : MpcTensor(),
                               needs[1] ? raw_neg(sum_to(g, sy), "sub") : MpcTensor()};
                });
}

MpcTensor neg(const MpcTensor& x) {
  MpcTensor out = raw_neg(x, "neg");
  return record("neg", std::move(out), {x}, [](const MpcTensor& g, const Needs&) {
    return Grads{raw_neg(g, "neg")};  // dx = -g
  });
}

MpcTensor mul(const MpcTensor& x, const MpcTensor& y) {
  // x: Sx, y: Sy -> out: broadcast(Sx, Sy)
  MpcTensor out = raw_mul(x, y, "mul");
  return record("mul", std::move(out), {x, y},
                [xs = x.detach(), ys = y.detach()](const MpcTensor& g, const Needs& needs) {
                  // dx = sum_to(g * y, Sx), dy = sum_to(g * x, Sy)
                  return Grads{needs[0] ? sum_to(raw_mul(g, ys, "mul"), xs.shape()) : MpcTensor(),
                               needs[1] ? sum_to(raw_mul(g, xs, "mul"), ys.shape()) : MpcTensor()};
                });
}

MpcTensor square(const MpcTensor& x) {
  // x: S -> x * x: S
  constexpr const char* kOp = "square";
  MpcTensor out = raw_square(x, kOp);  // first: it names the op for an undefined x
  return record(kOp, std::move(out), {x}, [xs = x.detach()](const MpcTensor& g, const Needs&) {
    const MpcTensor gx = raw_mul(g, xs, kOp);  // dx = 2 g x
    return Grads{raw_add(gx, gx, kOp)};
  });
}

MpcTensor mul(const MpcTensor& x, double c) {
  MpcTensor out = raw_mul_scalar(x, c, "mul");
  return record("mul_scalar", std::move(out), {x}, [c](const MpcTensor& g, const Needs&) {
    return Grads{raw_mul_scalar(g, c, "mul")};  // dx = g * c
  });
}

MpcTensor add(const MpcTensor& x, double c) {
  Party& p = party_of(x, "add");
  const MpcTensor cs = MpcTensor::from_public_ring(
      core::Tensor::scalar<uint64_t>(p.encoder().encode_scalar(c, "add")), p.frac_bits(), p);
  MpcTensor out = raw_add(x, cs, "add");
  return record("add_scalar", std::move(out), {x},
                [](const MpcTensor& g, const Needs&) { return Grads{g}; });  // dx = g
}

MpcTensor div(const MpcTensor& x, double c) {
  party_of(x, "div");
  VEIL_CHECK(std::isfinite(c) && c != 0.0, "[div] expected a finite non-zero divisor, got {}", c);
  return mul(x, 1.0 / c);  // records mul_scalar: dx = g / c
}

MpcTensor operator+(const MpcTensor& x, const MpcTensor& y) {
  return add(x, y);
}
MpcTensor operator-(const MpcTensor& x, const MpcTensor& y) {
  return sub(x, y);
}
MpcTensor operator*(const MpcTensor& x, const MpcTensor& y) {
  return mul(x, y);
}
MpcTensor operator-(const MpcTensor& x) {
  return neg(x);
}
MpcTensor operator*(const MpcTensor& x, double c) {
  return mul(x, c);
}
MpcTensor operator*(double c, const MpcTensor& x) {
  return mul(x, c);
}
MpcTensor operator+(const MpcTensor& x, double c) {
  return add(x, c);
}
MpcTensor operator-(const MpcTensor& x, double c) {
  return add(x, -c);
}
MpcTensor operator/(const MpcTensor& x, double c) {
  return div(x, c);
}

// ---- linear algebra
// -------------------------------------------------------------------------------

namespace {

core::Shape batch_of(const MpcTensor& t) {
  return {t.shape().begin(), t.shape().end() - 2};
}

core::Shape with_matrix(core::Shape batch, int64_t rows, int64_t cols) {
  batch.push_back(rows);
  batch.push_back(cols);
  return batch;
}

// The transpose of the last two dims (a view).
MpcTensor mT(const MpcTensor& t) {
  return like(t, t.ring().transpose(-2, -1));
}

// x [..., m, k] @ w [..., k, n] -> [broadcast(...), m, n] (both of rank >= 2), frac_bits
// max(f_x, f_w), one truncation of the whole output. A 2-D operand is folded into one 2-D product;
// otherwise one 2-D Beaver descriptor per broadcast batch entry, all opened in one round.
MpcTensor raw_bmatmul(const MpcTensor& x, const MpcTensor& w, const char* op) {
  Party& p = party_of(x, w, op);
  VEIL_CHECK(x.dim() >= 2 && w.dim() >= 2 && x.size(-1) == w.size(-2),
             "[{}] inner dimensions differ: x is {}, w is {}", op, core::shape_str(x.shape()),
             core::shape_str(w.shape()));
  if (x.dim() == 2 && w.dim() == 2) {
    return raw_matmul(x, w, op);
  }
  const int64_t m = x.size(-2);
  const int64_t k = x.size(-1);
  const int64_t n = w.size(-1);
  const core::Shape bx = batch_of(x);
  const core::Shape bw = batch_of(w);
  for (std::size_t i = 1; i <= std::min(bx.size(), bw.size()); ++i) {
    const int64_t a = bx[bx.size() - i];
    const int64_t b = bw[bw.size() - i];
    VEIL_CHECK(a == b || a == 1 || b == 1, "[{}] batch dims do not broadcast: x is {}, w is {}", op,
               core::shape_str(x.shape()), core::shape_str(w.shape()));
  }
  const core::Shape batch = core::broadcast_shapes(bx, bw, op);
  const int64_t nb = core::shape_numel(batch);
  if (w.dim() == 2) {
    // rows of every batch entry stacked: [B m, k] @ [k, n]
    const MpcTensor r = raw_matmul(raw_reshape(x, {nb * m, k}, op), w, op);
    return raw_reshape(r, with_matrix(batch, m, n), op);
  }
  if (x.dim() == 2) {
    // columns of every batch entry side by side: [m, k] @ [k, B n], then [m, B, n] -> [B, m, n]
    const core::Tensor wk = w.ring().reshape({nb, k, n}).transpose(0, 1).reshape({k, nb * n});
    const MpcTensor r = raw_matmul(x, like(w, wk), op);
    const core::Tensor bmn = r.ring().reshape({m, nb, n}).transpose(0, 1).contiguous();
    return like(r, bmn.reshape(with_matrix(batch, m, n)));
  }
  // batched against batched: materialise the broadcast batch, one 2-D product per entry
  const core::Tensor xb =
      x.ring().expand(with_matrix(batch, m, k)).contiguous().reshape({nb, m, k});
  const core::Tensor wb =
      w.ring().expand(with_matrix(batch, k, n)).contiguous().reshape({nb, k, n});
  const int out_frac = std::max(x.frac_bits(), w.frac_bits());
  const int shift = std::min(x.frac_bits(), w.frac_bits());
  std::vector<core::Tensor> parts;
  parts.reserve(static_cast<std::size_t>(nb));
  if (x.is_secret() && w.is_secret()) {
    const crypto::BilinearOp bop = crypto::BilinearOp::matmul({m, k}, {k, n});
    std::vector<crypto::BilinearOp> ops(static_cast<std::size_t>(nb), bop);
    std::vector<crypto::AShare> xs;
    std::vector<crypto::AShare> ws;
    for (int64_t b = 0; b < nb; ++b) {
      xs.push_back({xb.slice(0, b, b + 1).reshape({m, k}), x.frac_bits()});
      ws.push_back({wb.slice(0, b, b + 1).reshape({k, n}), w.frac_bits()});
    }
    for (const crypto::AShare& z : crypto::beaver_batch(p, ops, xs, ws)) {
      parts.push_back(z.data.reshape({1, m, n}));
    }
  } else {
    for (int64_t b = 0; b < nb; ++b) {
      parts.push_back(
          core::matmul(xb.slice(0, b, b + 1).reshape({m, k}), wb.slice(0, b, b + 1).reshape({k, n}))
              .reshape({1, m, n}));
    }
  }
  const core::Tensor v = core::cat(parts, 0).reshape(with_matrix(batch, m, n));
  if (x.is_public() && w.is_public()) {
    return make(p, false, shift > 0 ? core::shift_right_arith(v, shift) : v, out_frac);
  }
  const crypto::AShare raw{v, x.frac_bits() + w.frac_bits()};
  return MpcTensor::from_secret(crypto::rescale(p, raw, out_frac), p);
}

// Batched matmul node (at least one operand of rank > 2, both of rank >= 2).
MpcTensor batched_matmul(const MpcTensor& x, const MpcTensor& w) {
  // x: [Bx.., m, k], w: [Bw.., k, n] -> out: [B.., m, n]
  MpcTensor out = raw_bmatmul(x, w, "matmul");
  return record(
      "matmul", std::move(out), {x, w},
      [xs = x.detach(), ws = w.detach()](const MpcTensor& g, const Needs& needs) {
        const int64_t m = xs.size(-2);
        const int64_t k = xs.size(-1);
        const int64_t n = ws.size(-1);
        MpcTensor dx;
        MpcTensor dw;
        if (needs[0]) {
          if (xs.dim() == 2) {
            // dx = sum_b g_b @ w_b^T = [g_0 | g_1 | ..] [m, B n] @ [w_0^T; w_1^T; ..] [B n, k]
            const int64_t nb = g.numel() / (m * n);
            const core::Tensor gm =
                g.ring().reshape({nb, m, n}).transpose(0, 1).reshape({m, nb * n});
            const core::Tensor wt = mT(ws).ring().reshape({nb * n, k});
            dx = raw_matmul(like(g, gm), like(ws, wt), "matmul");
          } else {
            dx = sum_to(raw_bmatmul(g, mT(ws), "matmul"), xs.shape());  // g @ w^T
          }
        }
        if (needs[1]) {
          if (ws.dim() == 2) {
            // dw = sum_b x_b^T @ g_b = [x_0; x_1; ..]^T [k, B m] @ [g_0; g_1; ..] [B m, n]
            const int64_t nb = g.numel() / (m * n);
            const core::Tensor xk = xs.ring().reshape({nb * m, k});
            dw = raw_matmul(like(xs, xk.t()), raw_reshape(g, {nb * m, n}, "matmul"), "matmul");
          } else {
            dw = sum_to(raw_bmatmul(mT(xs), g, "matmul"), ws.shape());  // x^T @ g
          }
        }
        return Grads{dx, dw};
      });
}

}  // namespace

MpcTensor matmul(const MpcTensor& x, const MpcTensor& w) {
  party_of(x, w, "matmul");
  VEIL_CHECK(x.dim() >= 1 && w.dim() >= 1,
             "[matmul] expected operands of rank >= 1, got x {} and w {}",
             core::shape_str(x.shape()), core::shape_str(w.shape()));
  if (x.dim() == 1 || w.dim() == 1) {
    // promote [k] to [1, k] (left) or [k, 1] (right) and drop the added dim afterwards
    MpcTensor r = matmul(x.dim() == 1 ? unsqueeze(x, 0) : x, w.dim() == 1 ? unsqueeze(w, 1) : w);
    if (w.dim() == 1) {
      r = squeeze(r, -1);
    }
    if (x.dim() == 1) {
      r = squeeze(r, w.dim() == 1 ? -1 : -2);
    }
    return r;
  }
  if (x.dim() > 2 || w.dim() > 2) {
    return batched_matmul(x, w);
  }
  // x: [m, k], w: [k, n] -> out: [m, n]
  MpcTensor out = raw_matmul(x, w, "matmul");
  return record(
      "matmul", std::move(out), {x, w},
      [xs = x.detach(), ws = w.detach()](const MpcTensor& g, const Needs& needs) {
        // g: [m, n];  dx = g @ w^T: [m, k];  dw = x^T @ g: [k, n]
        return Grads{needs[0] ? raw_matmul(g, raw_transpose(ws, "matmul"), "matmul") : MpcTensor(),
                     needs[1] ? raw_matmul(raw_transpose(xs, "matmul"), g, "matmul") : MpcTensor()};
      });
}

MpcTensor transpose(const MpcTensor& x) {
  // x: [m, n] -> out: [n, m]
  MpcTensor out = raw_transpose(x, "transpose");
  return record("transpose", std::move(out), {x}, [](const MpcTensor& g, const Needs&) {
    return Grads{raw_transpose(g, "transpose")};  // dx = g^T
  });
}

MpcTensor t(const MpcTensor& x) {
  return transpose(x);
}

// ---- convolution and pooling
// ---------------------------------------------------------------------

MpcTensor conv2d(const MpcTensor& x, const MpcTensor& w, const core::Conv2dParams& params) {
  // x: [N, C_in, H, W], w: [C_out, C_in/g, kh, kw] -> out: [N, C_out, H', W']
  party_of(x, w, "conv2d");
  const crypto::BilinearOp op = crypto::BilinearOp::conv2d(x.shape(), w.shape(), params);
  MpcTensor out = raw_bilinear(op, x, w, "conv2d");
  return record("conv2d", std::move(out), {x, w},
                [xs = x.detach(), ws = w.detach(), params](const MpcTensor& g, const Needs& needs) {
                  // g: [N, C_out, H', W'];  dx = conv2d_input_grad(g, w): [N, C_in, H, W];
                  // dw = conv2d_weight_grad(x, g): [C_out, C_in/g, kh, kw]
                  MpcTensor dx;
                  MpcTensor dw;
                  if (needs[0]) {
                    const core::Shape hw{xs.size(2), xs.size(3)};
                    dx = raw_bilinear(
                        crypto::BilinearOp::conv2d_input_grad(g.shape(), ws.shape(), params, hw), g,
                        ws, "conv2d");
                  }
                  if (needs[1]) {
                    const core::Shape khw{ws.size(2), ws.size(3)};
                    dw = raw_bilinear(
                        crypto::BilinearOp::conv2d_weight_grad(xs.shape(), g.shape(), params, khw),
                        xs, g, "conv2d");
                  }
                  return Grads{dx, dw};
                });
}

namespace {

core::Conv2dParams pool_params(int64_t stride) {
  core::Conv2dParams c;
  c.stride_h = c.stride_w = stride;
  return c;
}

// g [N, C, H', W'] repeated over the k^2 positions of each window -> [N, C, H', W', k^2].
MpcTensor spread(const MpcTensor& g, int64_t kk) {
  core::Shape s5 = g.shape();
  s5.push_back(1);
  core::Shape full = g.shape();
  full.push_back(kk);
  return make(g.party(), g.is_secret(), g.ring().reshape(s5).expand(full).contiguous(),
              g.frac_bits());
}

// fold_windows on the ring values of w [N, C, H', W', k^2] -> [N, C, H, W] (local, linear).
MpcTensor fold(
    const MpcTensor& w, const core::Shape& hw, int64_t kernel, int64_t stride, const char* op) {
  return make(w.party(), w.is_secret(),
              core::fold_windows(w.ring(), hw, kernel, kernel, pool_params(stride), op),
              w.frac_bits());
}

}  // namespace

MpcTensor max_pool2d(const MpcTensor& x, int64_t kernel, int64_t stride) {
  // x: [N, C, H, W] -> out: [N, C, H', W']; one-hot of the argmax [N, C, H', W', k^2] saved
  constexpr const char* kOp = "max_pool2d";
  Party& p = party_of(x, kOp);
  VEIL_CHECK(stride >= 1, "[{}] expected stride >= 1, got {}", kOp, stride);
  const core::Tensor win =
      core::extract_windows(x.ring(), kernel, kernel, pool_params(stride), kOp);
  const int64_t kk = kernel * kernel;
  core::Shape out_shape(win.shape().begin(), win.shape().end() - 1);
  MpcTensor out;
  MpcTensor onehot;
  if (x.is_secret()) {
    const crypto::MaxResult m = crypto::max_lastdim(p, {win, x.frac_bits()});
    out = MpcTensor::from_secret(m.values, p);
    // [idx == j] for the public positions j = 0..k^2-1 (held by party 0): one eq on |out| k^2.
    core::Tensor pos = core::Tensor::zeros(win.shape(), core::DType::kRing64);
    if (p.rank() == 0) {
      uint64_t* pp = pos.data<uint64_t>();
      for (int64_t i = 0; i < pos.numel(); ++i) {
        pp[i] = static_cast<uint64_t>(i % kk);
      }
    }
    core::Shape s5 = out_shape;
    s5.push_back(1);
    const crypto::AShare idx{m.indices.data.reshape(s5).expand(win.shape()).contiguous(), 0};
    onehot = MpcTensor::from_secret(crypto::eq(p, idx, {pos, 0}), p);
  } else {
    const PublicMax pm = public_max_lastdim(win, out_shape);
    out = MpcTensor::from_public_ring(pm.values, x.frac_bits(), p);
    onehot = MpcTensor::from_public_ring(pm.onehot, 0, p);
  }
  return record(kOp, std::move(out), {x},
                [onehot, hw = core::Shape{x.size(2), x.size(3)}, kernel, stride, kk](
                    const MpcTensor& g, const Needs&) {
                  // dx = fold(spread(g) * one-hot): g scattered to the argmax of each window
                  const MpcTensor sel = raw_mul(spread(g, kk), onehot, "max_pool2d");
                  return Grads{fold(sel, hw, kernel, stride, "max_pool2d")};
                });
}

MpcTensor avg_pool2d(const MpcTensor& x, int64_t kernel, int64_t stride) {
  // x: [N, C, H, W] -> out: [N, C, H', W']
  constexpr const char* kOp = "avg_pool2d";
  Party& p = party_of(x, kOp);
  VEIL_CHECK(stride >= 1, "[{}] expected stride >= 1, got {}", kOp, stride);
  const core::Tensor win =
      core::extract_windows(x.ring(), kernel, kernel, pool_params(stride), kOp);
  const int64_t kk = kernel * kernel;
  const double inv = 1.0 / static_cast<double>(kk);
  const MpcTensor s = make(p, x.is_secret(), core::sum(win, -1), x.frac_bits());
  MpcTensor out = raw_mul_scalar(s, inv, kOp);
  return record(kOp, std::move(out), {x},
                [hw = core::Shape{x.size(2), x.size(3)}, kernel, stride, kk, inv](
                    const MpcTensor& g, const Needs&) {
                  // dx = fold(spread(g / k^2))
                  const MpcTensor gs = raw_mul_scalar(g, inv, "avg_pool2d");
                  return Grads{fold(spread(gs, kk), hw, kernel, stride, "avg_pool2d")};
                });
}

// ---- shape and reductions
// -------------------------------------------------------------------------

MpcTensor reshape(const MpcTensor& x, const core::Shape& shape) {
  MpcTensor out = raw_reshape(x, shape, "reshape");
  return record("reshape", std::move(out), {x}, [sx = x.shape()](const MpcTensor& g, const Needs&) {
    return Grads{raw_reshape(g, sx, "reshape")};  // dx = g viewed as Sx
  });
}

MpcTensor sum(const MpcTensor& x, int64_t dim, bool keepdim) {
  // x: [..., n_dim, ...] -> out: [..., (1), ...]
  party_of(x, "sum");
  const int64_t d = normalize_dim(x, dim, "sum");
  MpcTensor out = raw_sum(x, d, keepdim, "sum");
  return record("sum", std::move(out), {x},
                [sx = x.shape(), d, keepdim](const MpcTensor& g, const Needs&) {
                  return Grads{expand_back(g, sx, d, keepdim)};  // dx = g repeated along d
                });
}

MpcTensor sum(const MpcTensor& x) {
  party_of(x, "sum");
  return sum(reshape(x, {x.numel()}), 0);
}

MpcTensor mean(const MpcTensor& x, int64_t dim, bool keepdim) {
  party_of(x, "mean");
  const int64_t d = normalize_dim(x, dim, "mean");
  VEIL_CHECK(x.size(d) > 0, "[mean] empty dimension {} in {}", d, core::shape_str(x.shape()));
  return mul(sum(x, d, keepdim), 1.0 / static_cast<double>(x.size(d)));
}

MpcTensor mean(const MpcTensor& x) {
  party_of(x, "mean");
  VEIL_CHECK(x.numel() > 0, "[mean] empty tensor {}", core::shape_str(x.shape()));
  return mul(sum(x), 1.0 / static_cast<double>(x.numel()));
}

MpcTensor sum_to(const MpcTensor& g, const core::Shape& shape) {
  Party& p = party_of(g, "sum_to");
  VEIL_CHECK(core::broadcast_shapes(shape, g.shape(), "sum_to") == g.shape(),
             "[sum_to] shape {} does not broadcast to {}", core::shape_str(shape),
             core::shape_str(g.shape()));
  if (g.shape() == shape) {
    return g;
  }
  core::Tensor v = g.ring();
  const std::size_t lead = g.shape().size() - shape.size();
  for (std::size_t i = 0; i < lead; ++i) {
    v = core::sum(v, 0, false);
  }
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1 && v.shape()[i] != 1) {
      v = core::sum(v, static_cast<int64_t>(i), true);
    }
  }
  return make(p, g.is_secret(), v, g.frac_bits());
}

// ---- non-linear
// -----------------------------------------------------------------------------------

namespace {

// relu(y) = y [y >= 0] and the bit [y >= 0] (integer, frac_bits 0) for one flat batch of values
// of one visibility: secret: crypto::relu; public: the same on the ring (sign bit clear).
std::pair<MpcTensor, MpcTensor> raw_relu(const MpcTensor& y) {
  Party& p = y.party();
  if (y.is_secret()) {
    const crypto::ReluResult r = crypto::relu(p, y.ashare());
    return {MpcTensor::from_secret(r.out, p), MpcTensor::from_secret(r.positive, p)};
  }
  const core::Tensor v = y.ring().contiguous();
  core::Tensor m = core::Tensor::empty(v.shape(), core::DType::kRing64);
  core::Tensor o = core::Tensor::empty(v.shape(), core::DType::kRing64);
  const uint64_t* pv = v.data<uint64_t>();
  uint64_t* pm = m.data<uint64_t>();
  uint64_t* po = o.data<uint64_t>();
  for (int64_t i = 0; i < v.numel(); ++i) {
    const bool positive = (pv[i] >> 63) == 0;  // two's complement sign bit clear: y >= 0
    pm[i] = positive ? 1 : 0;
    po[i] = positive ? pv[i] : 0;
  }
  return {MpcTensor::from_public_ring(o, y.frac_bits(), p), MpcTensor::from_public_ring(m, 0, p)};
}

MpcTensor ring_scalar(Party& p, uint64_t v, int frac_bits) {
  return MpcTensor::from_public_ring(core::Tensor::scalar<uint64_t>(v), frac_bits, p);
}

}  // namespace

MpcTensor relu(const MpcTensor& x) {
  // x: S -> out: S; the mask [x >= 0] (integer, frac_bits 0) is saved for backward.
  party_of(x, "relu");
  auto [out, mask] = raw_relu(x.detach());
  return record("relu", std::move(out), {x}, [mask](const MpcTensor& g, const Needs&) {
    return Grads{raw_mul(g, mask, "relu")};  // dx = g * [x >= 0] (no truncation: integer mask)
  });
}

MpcTensor hardtanh(const MpcTensor& x, double min_val, double max_val) {
  // x: S -> out: S; the mask m = [lo < x < hi] (integer) is saved for backward
  constexpr const char* kOp = "hardtanh";
  Party& p = party_of(x, kOp);
  VEIL_CHECK(min_val < max_val, "[hardtanh] expected min_val < max_val, got {} and {}", min_val,
             max_val);
  const crypto::FixedPointEncoder enc(x.frac_bits());
  const MpcTensor lo = ring_scalar(p, enc.encode_scalar(min_val, kOp), x.frac_bits());
  const MpcTensor hi = ring_scalar(p, enc.encode_scalar(max_val, kOp), x.frac_bits());
  const MpcTensor xd = x.detach();
  // one ReLU on the 2n values (lo - x, x - hi): r1 = relu(lo - x) with bit [x <= lo] and
  // r2 = relu(x - hi) with bit [x >= hi]
  const int64_t n = x.numel();
  const MpcTensor below = raw_reshape(raw_sub(lo, xd, kOp), {n}, kOp);
  const MpcTensor above = raw_reshape(raw_sub(xd, hi, kOp), {n}, kOp);
  const auto [r, bits] = raw_relu(like(below, core::cat({below.ring(), above.ring()}, 0)));
  auto half = [&x, n](const MpcTensor& t, int64_t k) {
    return like(t, t.ring().slice(0, k * n, (k + 1) * n).reshape(x.shape()));
  };
  // out = x + relu(lo - x) - relu(x - hi): exact, no truncation
  MpcTensor out = raw_sub(raw_add(xd, half(r, 0), kOp), half(r, 1), kOp);
  // m = 1 - [x <= lo] - [x >= hi]
  const MpcTensor m =
      raw_sub(raw_sub(ring_scalar(p, 1, 0), half(bits, 0), kOp), half(bits, 1), kOp);
  return record(kOp, std::move(out), {x}, [m](const MpcTensor& g, const Needs&) {
    return Grads{raw_mul(g, m, "hardtanh")};  // dx = g [lo < x < hi]
  });
}

MpcTensor relu6(const MpcTensor& x) {
  return hardtanh(x, 0.0, 6.0);
}

MpcTensor leaky_relu(const MpcTensor& x, double negative_slope) {
  // x: S -> out: S; the bit [x <= 0] (integer) is saved for backward
  constexpr const char* kOp = "leaky_relu";
  Party& p = party_of(x, kOp);
  (void)p.encoder().encode_scalar(negative_slope, kOp);  // range check of the slope
  const double k = 1.0 - negative_slope;
  (void)p.encoder().encode_scalar(k, kOp);
  // out = x + (1 - slope) relu(-x); relu(-x) = 0 exactly for x > 0
  const auto [r, nonpos] = raw_relu(raw_neg(x.detach(), kOp));
  MpcTensor out = raw_add(x.detach(), raw_mul_scalar(r, k, kOp), kOp);
  return record(kOp, std::move(out), {x}, [nonpos, k](const MpcTensor& g, const Needs&) {
    // dx = g - (1 - slope) g [x <= 0]
    const MpcTensor gn = raw_mul(g, nonpos, "leaky_relu");
    return Grads{raw_sub(g, raw_mul_scalar(gn, k, "leaky_relu"), "leaky_relu")};
  });
}

MpcTensor dropout(const MpcTensor& x, double p, bool training) {
  // x: S -> out: S
  Party& party = party_of(x, "dropout");
  VEIL_CHECK(p >= 0 && p < 1, "[dropout] expected 0 <= p < 1, got {}", p);
  if (!training || p == 0) {
    return x;
  }
  // The same draws as nn::Dropout: one uniform double per element from the common PRG.
  crypto::Prg& prg = party.common_prg();
  core::Tensor mask = core::Tensor::empty(x.shape(), core::DType::kFloat64);
  double* pm = mask.data<double>();
  const double keep_scale = 1.0 / (1.0 - p);
  for (int64_t i = 0; i < mask.numel(); ++i) {
    pm[i] = prg.uniform_double() < p ? 0.0 : keep_scale;
  }
  return mul(x, MpcTensor::from_public(mask, party));
}

namespace {
// Public-mode softmax over rows of length c of a contiguous float64 tensor, in place; writes
// max + log(sum exp(x - max)) of each row to lse when given.
void softmax_rows_inplace(core::Tensor& v, int64_t c, double* lse) {
  double* pv = v.data<double>();
  for (int64_t r = 0; r < v.numel() / c; ++r) {
    double* row = pv + r * c;
    const double m = *std::max_element(row, row + c);
    double total = 0;
    for (int64_t j = 0; j < c; ++j) {
      row[j] = std::exp(row[j] - m);
      total += row[j];
    }
    for (int64_t j = 0; j < c; ++j) {
      row[j] /= total;
    }
    if (lse != nullptr) {
      lse[r] = m + std::log(total);
    }
  }
}
}  // namespace

MpcTensor softmax(const MpcTensor& x) {
  // x: [..., C] -> s: [..., C]
  Party& p = party_of(x, "softmax");
  VEIL_CHECK(x.dim() >= 1 && x.size(-1) > 0,
             "[softmax] expected a non-empty last dimension, got {}", core::shape_str(x.shape()));
  MpcTensor s;
  if (x.is_secret()) {
    s = MpcTensor::from_secret(crypto::softmax(p, x.ashare()), p);
  } else {
    core::Tensor v = decode(x);
    softmax_rows_inplace(v, x.size(-1), nullptr);
    s = MpcTensor::from_public(v, p);
  }
  return record("softmax", s.detach(), {x}, [s](const MpcTensor& g, const Needs&) {
    // dx = s * (g - sum(g * s, -1, keepdim))
    const MpcTensor gs = raw_sum(raw_mul(g, s, "softmax"), -1, true, "softmax");
    return Grads{raw_mul(s, raw_sub(g, gs, "softmax"), "softmax")};
  });
}

MpcTensor softmax(const MpcTensor& x, int64_t dim) {
  party_of(x, "softmax");
  const int64_t d = normalize_dim(x, dim, "softmax");
  if (d == x.dim() - 1) {
    return softmax(x);
  }
  // the rows are independent: swap dim with the last one and back (local views)
  return transpose(softmax(transpose(x, d, -1)), d, -1);
}

namespace {

MpcTensor log_softmax_last(const MpcTensor& x) {
  // x: [..., C] -> out: [..., C]
  constexpr const char* kOp = "log_softmax";
  Party& p = x.party();
  const int64_t c = x.size(-1);
  VEIL_CHECK(c > 0, "[log_softmax] expected a non-empty dimension, got {}",
             core::shape_str(x.shape()));
  core::Shape keep = x.shape();
  keep.back() = 1;
  MpcTensor out;
  // For backward: secret: exp(z) [..., C] and s = sum exp(z) [..., 1]; public: the softmax.
  MpcTensor e;
  MpcTensor s;
  if (x.is_secret()) {
    VEIL_CHECK(c <= kLogSoftmaxMaxClasses,
               "[log_softmax] secret inputs support at most {} classes (crypto::log's domain "
               "bounds sum(exp(x - max)) in [1, C]), got C = {}",
               kLogSoftmaxMaxClasses, c);
    VEIL_CHECK(x.frac_bits() == p.frac_bits(), "[log_softmax] expected frac_bits {}, got {}",
               p.frac_bits(), x.frac_bits());
    const crypto::AShare xs = x.ashare();
    const crypto::MaxResult m = crypto::max_lastdim(p, xs);
    const crypto::AShare z = crypto::sub(xs, {m.values.data.reshape(keep), m.values.frac_bits});
    const crypto::AShare ez = crypto::exp(p, z);             // (0, 1]
    const crypto::AShare total = crypto::sum(ez, -1, true);  // [1, C]
    out = MpcTensor::from_secret(crypto::sub(z, crypto::log(p, total)), p);
    e = MpcTensor::from_secret(ez, p);
    s = MpcTensor::from_secret(total, p);
  } else {
    core::Tensor v = decode(x);
    core::Tensor lse = core::Tensor::empty({v.numel() / c, 1}, core::DType::kFloat64);
    const core::Tensor xv = v.clone();
    softmax_rows_inplace(v, c, lse.data<double>());
    out = MpcTensor::from_public(core::sub(xv, lse.reshape(keep)), p);
    e = MpcTensor::from_public(v, p);  // the softmax itself
  }
  return record(kOp, std::move(out), {x}, [e, s, c](const MpcTensor& g, const Needs&) {
    // g: [..., C];  dx = g - softmax * sum(g, -1)
    MpcTensor sm = e;
    if (e.is_secret()) {
      Party& party = e.party();
      const crypto::AShare inv =
          crypto::reciprocal(party, s.ashare(), std::make_pair(1.0, static_cast<double>(c)));
      sm = MpcTensor::from_secret(crypto::mul(party, e.ashare(), inv), party);
    }
    const MpcTensor gs = raw_sum(g, g.dim() - 1, true, "log_softmax");
    return Grads{raw_sub(g, raw_mul(sm, gs, "log_softmax"), "log_softmax")};
  });
}

}  // namespace

MpcTensor log_softmax(const MpcTensor& x, int64_t dim) {
  party_of(x, "log_softmax");
  const int64_t d = normalize_dim(x, dim, "log_softmax");
  if (d == x.dim() - 1) {
    return log_softmax_last(x);
  }
  return transpose(log_softmax_last(transpose(x, d, -1)), d, -1);
}

namespace {
// Elementwise float64 function of a public value, encoded back (public mode).
MpcTensor public_map(const MpcTensor& x, double (*f)(double)) {
  return MpcTensor::from_public(core::map<double, double>(decode(x), f), x.party());
}
MpcTensor public_full(const MpcTensor& like, double v) {
  return MpcTensor::from_public(core::Tensor::full<double>(like.shape(), v), like.party());
}
}  // namespace

MpcTensor sigmoid(const MpcTensor& x) {
  // x: S -> s: S
  Party& p = party_of(x, "sigmoid");
  const MpcTensor s = x.is_secret()
                          ? MpcTensor::from_secret(crypto::sigmoid(p, x.ashare()), p)
                          : public_map(x, [](double v) { return 1.0 / (1.0 + std::exp(-v)); });
  return record("sigmoid", s.detach(), {x}, [s](const MpcTensor& g, const Needs&) {
    // dx = g * s * (1 - s)
    const MpcTensor ds = raw_mul(s, raw_sub(public_full(s, 1.0), s, "sigmoid"), "sigmoid");
    return Grads{raw_mul(g, ds, "sigmoid")};
  });
}

MpcTensor tanh(const MpcTensor& x) {
  // x: S -> t: S
  Party& p = party_of(x, "tanh");
  const MpcTensor t = x.is_secret() ? MpcTensor::from_secret(crypto::tanh(p, x.ashare()), p)
                                    : public_map(x, [](double v) { return std::tanh(v); });
  return record("tanh", t.detach(), {x}, [t](const MpcTensor& g, const Needs&) {
    // dx = g * (1 - t^2)
    const MpcTensor dt = raw_sub(public_full(t, 1.0), raw_mul(t, t, "tanh"), "tanh");
    return Grads{raw_mul(g, dt, "tanh")};
  });
}

MpcTensor gelu(const MpcTensor& x) {
  // x: S -> x Phi(x): S; the derivative Phi(x) + x phi(x) saved (secret: computed with the value
  // when a gradient will be needed, from the same clamp and powers: one round more)
  Party& p = party_of(x, "gelu");
  if (x.is_secret()) {
    const bool need_grad = GradMode::is_enabled() && x.requires_grad();
    if (!need_grad) {
      return MpcTensor::from_secret(crypto::gelu(p, x.ashare()), p);
    }
    const crypto::GeluResult r = crypto::gelu_with_derivative(p, x.ashare());
    const MpcTensor d = MpcTensor::from_secret(r.derivative, p);
    return record("gelu", MpcTensor::from_secret(r.value, p), {x},
                  [d](const MpcTensor& g, const Needs&) { return Grads{raw_mul(g, d, "gelu")}; });
  }
  const MpcTensor out =
      public_map(x, [](double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); });
  const MpcTensor d = public_map(x, [](double v) {
    return 0.5 * std::erfc(-v / std::sqrt(2.0)) +
           v * std::exp(-0.5 * v * v) / std::sqrt(2.0 * std::numbers::pi);
  });
  return record("gelu", out, {x},
                [d](const MpcTensor& g, const Needs&) { return Grads{raw_mul(g, d, "gelu")}; });
}

MpcTensor abs(const MpcTensor& x) {
  // x: S -> |x|: S; sign(x) in {-1, 1} (integer, frac_bits 0) saved for backward
  Party& p = party_of(x, "abs");
  MpcTensor sgn;
  if (x.is_secret()) {
    sgn = MpcTensor::from_secret(crypto::sign(p, x.ashare()), p);
  } else {
    const core::Tensor v = x.ring().contiguous();
    sgn = MpcTensor::from_public_ring(
        core::map<uint64_t, uint64_t>(
            v, [](uint64_t e) { return (e >> 63) != 0 ? ~uint64_t{0} : uint64_t{1}; }),
        0, p);
  }
  MpcTensor out = raw_mul(x.detach(), sgn, "abs");  // integer factor: no truncation
  return record("abs", std::move(out), {x},
                [sgn](const MpcTensor& g, const Needs&) { return Grads{raw_mul(g, sgn, "abs")}; });
}

MpcTensor mse_loss(const MpcTensor& x, const MpcTensor& y) {
  VEIL_CHECK(x.shape() == y.shape(), "[mse_loss] expected equal shapes, got {} and {}",
             core::shape_str(x.shape()), core::shape_str(y.shape()));
  const MpcTensor d = sub(x, y);
  return mean(mul(d, d));
}

MpcTensor l1_loss(const MpcTensor& x, const MpcTensor& y) {
  VEIL_CHECK(x.shape() == y.shape(), "[l1_loss] expected equal shapes, got {} and {}",
             core::shape_str(x.shape()), core::shape_str(y.shape()));
  return mean(abs(sub(x, y)));
}

// ---- losses
// ---------------------------------------------------------------------------------------

MpcTensor cross_entropy(const MpcTensor& logits, const MpcTensor& target) {
  // logits: [N, C], target: [N, C] -> loss: []
  constexpr const char* kOp = "cross_entropy";
  Party& p = party_of(logits, target, kOp);
  VEIL_CHECK(logits.dim() == 2 && logits.size(0) > 0 && logits.size(1) > 0,
             "[cross_entropy] expected logits [N, C] with N, C >= 1, got {}",
             core::shape_str(logits.shape()));
  VEIL_CHECK(target.shape() == logits.shape(),
             "[cross_entropy] expected a one-hot target of shape {} (the logits' shape), got {}",
             core::shape_str(logits.shape()), core::shape_str(target.shape()));
  const int64_t n = logits.size(0);
  const int64_t c = logits.size(1);
  MpcTensor sm;  // [N, C]: softmax, saved for backward
  // mean_i (lse_i - <x_i, t_i>) with lse = max + log sum exp(x - max)
  auto loss_of = [kOp, n](const MpcTensor& lse, const MpcTensor& x, const MpcTensor& t) {
    const MpcTensor xt = raw_sum(raw_mul(x, t, kOp), -1, false, kOp);  // [N]
    return raw_mul_scalar(raw_sum(raw_sub(lse, xt, kOp), 0, false, kOp),
                          1.0 / static_cast<double>(n), kOp);
  };
  MpcTensor loss;
  if (logits.is_secret()) {
    VEIL_CHECK(c <= kLogSoftmaxMaxClasses,
               "[cross_entropy] secret logits support at most {} classes, got C = {}",
               kLogSoftmaxMaxClasses, c);
    VEIL_CHECK(logits.frac_bits() == p.frac_bits(),
               "[cross_entropy] expected logits with frac_bits {}, got {}", p.frac_bits(),
               logits.frac_bits());
    const crypto::AShare x = logits.ashare();
    const crypto::MaxResult m = crypto::max_lastdim(p, x);  // [N]
    const crypto::AShare mcol{m.values.data.reshape({n, 1}), m.values.frac_bits};
    const crypto::AShare e = crypto::exp(p, crypto::sub(x, mcol));      // [N, C] in (0, 1]
    const crypto::AShare total = crypto::sum(e, -1, /*keepdim=*/true);  // [N, 1] in [1, C]
    const crypto::AShare inv =
        crypto::reciprocal(p, total, std::make_pair(1.0, static_cast<double>(c)));
    sm = MpcTensor::from_secret(crypto::mul(p, e, inv), p);
    // The loss value (a log and one product) is only computed if the program uses it, e.g.
    // reveals it for a progress line; backward needs only the softmax.
    loss = MpcTensor::deferred_secret(
        {}, p.frac_bits(), p,
        [&p, loss_of, mv = m.values, total, x_detached = logits.detach(),
         t_detached = target.detach(), n]() {
          const crypto::AShare log_total = crypto::log(p, total);  // [N, 1]
          const MpcTensor lse = MpcTensor::from_secret(
              crypto::add(mv, {log_total.data.reshape({n}), log_total.frac_bits}), p);
          return loss_of(lse, x_detached, t_detached).ashare();
        });
  } else {
    core::Tensor v = decode(logits);
    core::Tensor l = core::Tensor::empty({n}, core::DType::kFloat64);
    softmax_rows_inplace(v, c, l.data<double>());
    sm = MpcTensor::from_public(v, p);
    loss = loss_of(MpcTensor::from_public(l, p), logits, target);
  }
  return record(kOp, std::move(loss), {logits, target},
                [sm, tg = target.detach(), n](const MpcTensor& g, const Needs& needs) {
                  if (!needs[0]) {
                    return Grads{MpcTensor(), MpcTensor()};
                  }
                  // g: [];  d logits = (softmax - target) * g / N: [N, C]
                  const MpcTensor d = raw_sub(sm, tg, "cross_entropy");
                  const double inv_n = 1.0 / static_cast<double>(n);
                  if (g.is_public()) {
                    const double gv = decode(g).item<double>();
                    return Grads{raw_mul_scalar(d, gv * inv_n, "cross_entropy"), MpcTensor()};
                  }
                  return Grads{
                      raw_mul_scalar(raw_mul(d, g, "cross_entropy"), inv_n, "cross_entropy"),
                      MpcTensor()};
                });
}

MpcTensor cross_entropy(const MpcTensor& logits, const core::Tensor& target) {
  Party& p = party_of(logits, "cross_entropy");
  VEIL_CHECK(logits.dim() == 2, "[cross_entropy] expected logits [N, C], got {}",
             core::shape_str(logits.shape()));
  const int64_t n = logits.size(0);
  const int64_t c = logits.size(1);
  VEIL_CHECK(target.defined() && target.dtype() == core::DType::kInt64 && target.dim() == 1 &&
                 target.size(0) == n,
             "[cross_entropy] expected int64 class indices of shape [{}], got {}", n,
             target.defined() ? target.str() : std::string("an undefined tensor"));
  const std::vector<int64_t> labels = target.to_vector<int64_t>();
  core::Tensor onehot = core::Tensor::zeros({n, c}, core::DType::kRing64);
  uint64_t* po = onehot.data<uint64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = labels[static_cast<std::size_t>(i)];
    VEIL_CHECK(y >= 0 && y < c, "[cross_entropy] class index {} at row {} out of range [0, {})", y,
               i, c);
    po[i * c + y] = 1;
  }
  return cross_entropy(logits, MpcTensor::from_public_ring(onehot, 0, p));
}

}  // namespace veil
