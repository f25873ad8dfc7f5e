// Reductions: variance, product tree, cumulative sum, max/min tournaments. Each reduction works
// on the last dim; the public entry points move the requested dim last with a recorded permute
// (local) and restore keepdim with unsqueeze. Shape comments: g is the gradient of the output.

#include "autograd/reduce_ops.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/internal.h"
#include "autograd/node.h"
#include "autograd/shape_ops.h"
#include "core/elementwise.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"

namespace veil {

namespace {

using namespace autograd::detail;  // NOLINT(google-build-using-namespace): internal helpers
using autograd::record;

// x with dim d moved last, the other dims in order (a recorded permute; x itself when d is last).
MpcTensor to_last(const MpcTensor& x, int64_t d) {
  const int64_t n = x.dim();
  if (d == n - 1) {
    return x;
  }
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < n; ++i) {
    if (i != d) {
      perm.push_back(i);
    }
  }
  perm.push_back(d);
  return permute(x, perm);
}

// Leading shape of x (all dims but the last) and its element count.
core::Shape lead_shape(const MpcTensor& x) {
  return {x.shape().begin(), x.shape().end() - 1};
}

// ---- variance -----------------------------------------------------------------------------------

// Variance over the last dim of x [..., n] -> [...].
MpcTensor var_last(const MpcTensor& x, int64_t correction) {
  const int64_t last = x.dim() - 1;
  const int64_t n = x.size(last);
  const double inv_dof = 1.0 / static_cast<double>(n - correction);
  const MpcTensor mean =
      raw_mul_scalar(raw_sum(x, last, true, "var"), 1.0 / static_cast<double>(n), "var");
  const MpcTensor d = raw_sub(x, mean, "var");  // [..., n]
  MpcTensor out = raw_mul_scalar(raw_sum(raw_square(d, "var"), last, false, "var"), inv_dof, "var");
  return record("var", std::move(out), {x}, [d, last, inv_dof](const MpcTensor& g, const Needs&) {
    // g: [...];  dx = (2 / (n - c)) g * d  (g broadcast along the last dim)
    const MpcTensor g2 = raw_mul_scalar(g, 2.0 * inv_dof, "var");
    return Grads{raw_mul(expand_back(g2, d.shape(), last, false), d, "var")};
  });
}

// ---- product tree -------------------------------------------------------------------------------

MpcTensor cols(const MpcTensor& t, int64_t lo, int64_t hi) {
  return like(t, t.ring().slice(1, lo, hi));
}

// Product over the last dim of x [..., n] -> [...]; n >= 1.
MpcTensor prod_last(const MpcTensor& x) {
  const core::Shape lead = lead_shape(x);
  const int64_t n = x.size(-1);
  const int64_t rows = core::shape_numel(lead);
  std::vector<MpcTensor> levels;  // the factors entering each level: [rows, n_l]
  MpcTensor cur = raw_reshape(x.detach(), {rows, n}, "prod");
  while (cur.size(1) > 1) {
    const int64_t m = cur.size(1);
    const int64_t h = m / 2;
    levels.push_back(cur);
    MpcTensor next = raw_mul(cols(cur, 0, h), cols(cur, h, 2 * h), "prod");
    if (m % 2 == 1) {
      next = cat({next, cols(cur, m - 1, m)}, 1);
    }
    cur = next;
  }
  MpcTensor out = raw_reshape(cur, lead, "prod");
  return record("prod", std::move(out), {x},
                [levels, rows, shape = x.shape()](const MpcTensor& g, const Needs&) {
                  // g: [...];  o = g at the root; going down, a child gets its parent's o times
                  // its sibling's value, so the leaves get g * prod_{j != i} x_j.
                  MpcTensor o = raw_reshape(g, {rows, 1}, "prod");
                  for (std::size_t k = levels.size(); k-- > 0;) {
                    const MpcTensor& lv = levels[k];
                    const int64_t m = lv.size(1);
                    const int64_t h = m / 2;
                    const MpcTensor oh = cols(o, 0, h);
                    const MpcTensor sib = cat({cols(lv, h, 2 * h), cols(lv, 0, h)}, 1);
                    MpcTensor next = raw_mul(cat({oh, oh}, 1), sib, "prod");
                    if (m % 2 == 1) {
                      next = cat({next, cols(o, h, h + 1)}, 1);
                    }
                    o = next;
                  }
                  return Grads{raw_reshape(o, shape, "prod")};
                });
}

// ---- cumulative sum -----------------------------------------------------------------------------

// Inclusive (or, with reverse, suffix) running sums along dim d of a ring tensor.
core::Tensor cumsum_ring(const core::Tensor& t, int64_t d, bool reverse) {
  core::Tensor out = t.contiguous().clone();
  int64_t outer = 1;
  int64_t inner = 1;
  for (int64_t i = 0; i < out.dim(); ++i) {
    if (i < d) {
      outer *= out.size(i);
    } else if (i > d) {
      inner *= out.size(i);
    }
  }
  const int64_t n = out.size(d);
  uint64_t* p = out.data<uint64_t>();
  for (int64_t o = 0; o < outer; ++o) {
    uint64_t* base = p + o * n * inner;
    for (int64_t step = 1; step < n; ++step) {
      const int64_t i = reverse ? n - 1 - step : step;
      const int64_t prev = reverse ? i + 1 : i - 1;
      for (int64_t k = 0; k < inner; ++k) {
        base[i * inner + k] += base[prev * inner + k];
      }
    }
  }
  return out;
}

// ---- max tournament -----------------------------------------------------------------------------

// Max of public ring values [rows, c] (compared as int64) and the first position attaining it,
// like torch.max. Returns values and indices [rows].
std::pair<core::Tensor, core::Tensor> public_max(const core::Tensor& v, int64_t c) {
  const core::Tensor src = v.contiguous();
  const int64_t rows = src.numel() / c;
  core::Tensor vals = core::Tensor::empty({rows}, core::DType::kRing64);
  core::Tensor inds = core::Tensor::empty({rows}, core::DType::kRing64);
  const uint64_t* ps = src.data<uint64_t>();
  uint64_t* pv = vals.data<uint64_t>();
  uint64_t* pi = inds.data<uint64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    int64_t best = 0;
    for (int64_t j = 1; j < c; ++j) {
      if (static_cast<int64_t>(ps[r * c + j]) > static_cast<int64_t>(ps[r * c + best])) {
        best = j;
      }
    }
    pv[r] = ps[r * c + best];
    pi[r] = static_cast<uint64_t>(best);
  }
  return {vals, inds};
}

// Max over the last dim of x [..., c] -> values and indices [...]. Records the values' node
// when `differentiable`.
ValuesIndices max_last(const MpcTensor& x, bool differentiable) {
  Party& p = x.party();
  const core::Shape lead = lead_shape(x);
  const int64_t c = x.size(-1);
  MpcTensor values;
  MpcTensor indices;
  if (x.is_secret()) {
    const crypto::MaxResult m = crypto::max_lastdim(p, x.ashare());
    values = MpcTensor::from_secret(m.values, p);
    indices = MpcTensor::from_secret(m.indices, p);
  } else {
    auto [v, i] = public_max(x.ring(), c);
    values = MpcTensor::from_public_ring(v.reshape(lead), x.frac_bits(), p);
    indices = MpcTensor::from_public_ring(i.reshape(lead), 0, p);
  }
  if (!differentiable) {
    return {values, indices};
  }
  // The one-hot of the index [..., c] is built on the first backward and kept for later ones.
  auto onehot = std::make_shared<MpcTensor>();
  values =
      record("max", std::move(values), {x},
             [onehot, indices, c, shape = x.shape()](const MpcTensor& g, const Needs&) {
               const int64_t last = static_cast<int64_t>(shape.size()) - 1;
               if (!onehot->defined()) {
                 Party& party = indices.party();
                 core::Shape col = indices.shape();
                 col.push_back(1);
                 const core::Tensor idx = indices.ring().reshape(col).expand(shape).contiguous();
                 core::Tensor pos = core::Tensor::zeros(shape, core::DType::kRing64);
                 if (indices.is_public() || party.rank() == 0) {
                   uint64_t* pp = pos.data<uint64_t>();
                   for (int64_t i = 0; i < pos.numel(); ++i) {
                     pp[i] = static_cast<uint64_t>(i % c);
                   }
                 }
                 if (indices.is_secret()) {
                   // [index == j] for the public positions j = 0..c-1 (party 0 holds them)
                   *onehot = MpcTensor::from_secret(crypto::eq(party, {idx, 0}, {pos, 0}), party);
                 } else {
                   *onehot = MpcTensor::from_public_ring(
                       core::zip<uint64_t, uint64_t, uint64_t>(
                           idx, pos, [](uint64_t a, uint64_t b) { return uint64_t{a == b}; }),
                       0, party);
                 }
               }
               // g: [...];  dx = g (broadcast along the last dim) * onehot: an integer product
               return Grads{raw_mul(expand_back(g, shape, last, false), *onehot, "max")};
             });
  return {values, indices};
}

// max/min along dim with the dim handling shared by every entry point.
ValuesIndices max_min(const MpcTensor& x, int64_t dim, bool keepdim, bool minimum, bool grad) {
  const char* op = minimum ? "min" : "max";
  party_of(x, op);
  const int64_t d = normalize_dim(x, dim, op);
  VEIL_CHECK(x.size(d) > 0, "[{}] expected a non-empty dim {} in {}", op, d,
             core::shape_str(x.shape()));
  MpcTensor xt = to_last(x, d);
  if (minimum) {
    xt = neg(xt);
  }
  ValuesIndices r = max_last(xt, grad);
  if (minimum) {
    r.values = neg(r.values);
  }
  if (keepdim) {
    r.values = unsqueeze(r.values, d);
    r.indices = unsqueeze(r.indices, d);
  }
  return r;
}

}  // namespace

// ---- variance -----------------------------------------------------------------------------------

MpcTensor var(const MpcTensor& x, int64_t dim, bool keepdim, int64_t correction) {
  // x: [..., n, ...] -> [..., ...]
  party_of(x, "var");
  const int64_t d = normalize_dim(x, dim, "var");
  VEIL_CHECK(correction >= 0 && x.size(d) - correction > 0,
             "[var] expected 0 <= correction < n, got correction {} for dim {} of {}", correction,
             d, core::shape_str(x.shape()));
  MpcTensor out = var_last(to_last(x, d), correction);
  return keepdim ? unsqueeze(out, d) : out;
}

MpcTensor var(const MpcTensor& x,
              const std::vector<int64_t>& dims,
              bool keepdim,
              int64_t correction) {
  // x: S -> S without dims (keepdim: extent 1 there)
  party_of(x, "var");
  const int64_t nd = x.dim();
  std::vector<bool> reduced(at(nd), dims.empty());
  for (int64_t dm : dims) {
    const int64_t d = normalize_dim(x, dm, "var");
    VEIL_CHECK(!reduced[at(d)], "[var] dim {} repeated in {}", dm, dims);
    reduced[at(d)] = true;
  }
  std::vector<int64_t> perm;
  core::Shape kept_shape;
  core::Shape keep_shape;
  int64_t n = 1;
  for (int64_t i = 0; i < nd; ++i) {
    if (!reduced[at(i)]) {
      perm.push_back(i);
      kept_shape.push_back(x.size(i));
    }
    keep_shape.push_back(reduced[at(i)] ? 1 : x.size(i));
  }
  for (int64_t i = 0; i < nd; ++i) {
    if (reduced[at(i)]) {
      perm.push_back(i);
      n *= x.size(i);
    }
  }
  VEIL_CHECK(correction >= 0 && n - correction > 0,
             "[var] expected 0 <= correction < n, got correction {} for {} elements of {}",
             correction, n, core::shape_str(x.shape()));
  core::Shape flat = kept_shape;
  flat.push_back(n);
  const MpcTensor xt = nd == 0 ? reshape(x, {1}) : reshape(permute(x, perm), flat);
  const MpcTensor out = var_last(xt, correction);
  return keepdim ? reshape(out, keep_shape) : out;
}

MpcTensor var(const MpcTensor& x) {
  return var(x, std::vector<int64_t>{}, false, 1);
}

// ---- product ------------------------------------------------------------------------------------

MpcTensor prod(const MpcTensor& x, int64_t dim, bool keepdim) {
  party_of(x, "prod");
  const int64_t d = normalize_dim(x, dim, "prod");
  VEIL_CHECK(x.size(d) > 0, "[prod] expected a non-empty dim {} in {}", d,
             core::shape_str(x.shape()));
  MpcTensor out = prod_last(to_last(x, d));
  return keepdim ? unsqueeze(out, d) : out;
}

MpcTensor prod(const MpcTensor& x) {
  party_of(x, "prod");
  VEIL_CHECK(x.numel() > 0, "[prod] expected a non-empty tensor, got {}",
             core::shape_str(x.shape()));
  return prod_last(reshape(x, {x.numel()}));
}

// ---- cumulative sum -----------------------------------------------------------------------------

MpcTensor cumsum(const MpcTensor& x, int64_t dim) {
  // x: S -> S
  party_of(x, "cumsum");
  const int64_t d = normalize_dim(x, dim, "cumsum");
  MpcTensor out = like(x, cumsum_ring(x.ring(), d, false));
  return record("cumsum", std::move(out), {x}, [d](const MpcTensor& g, const Needs&) {
    return Grads{like(g, cumsum_ring(g.ring(), d, true))};  // dx_i = sum_{j >= i} g_j
  });
}

// ---- max / min ----------------------------------------------------------------------------------

ValuesIndices max(const MpcTensor& x, int64_t dim, bool keepdim) {
  return max_min(x, dim, keepdim, false, true);
}

ValuesIndices min(const MpcTensor& x, int64_t dim, bool keepdim) {
  return max_min(x, dim, keepdim, true, true);
}

MpcTensor max(const MpcTensor& x) {
  party_of(x, "max");
  VEIL_CHECK(x.numel() > 0, "[max] expected a non-empty tensor, got {}",
             core::shape_str(x.shape()));
  return max_min(reshape(x, {x.numel()}), 0, false, false, true).values;
}

MpcTensor min(const MpcTensor& x) {
  party_of(x, "min");
  VEIL_CHECK(x.numel() > 0, "[min] expected a non-empty tensor, got {}",
             core::shape_str(x.shape()));
  return max_min(reshape(x, {x.numel()}), 0, false, true, true).values;
}

MpcTensor argmax(const MpcTensor& x, int64_t dim, bool keepdim) {
  NoGradGuard no_grad;
  return max_min(x, dim, keepdim, false, false).indices;
}

MpcTensor argmin(const MpcTensor& x, int64_t dim, bool keepdim) {
  NoGradGuard no_grad;
  return max_min(x, dim, keepdim, true, false).indices;
}

MpcTensor argmax(const MpcTensor& x) {
  party_of(x, "argmax");
  NoGradGuard no_grad;
  return max_min(reshape(x, {x.numel()}), 0, false, false, false).indices;
}

MpcTensor argmin(const MpcTensor& x) {
  party_of(x, "argmin");
  NoGradGuard no_grad;
  return max_min(reshape(x, {x.numel()}), 0, false, true, false).indices;
}

}  // namespace veil
