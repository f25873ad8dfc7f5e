// Data-movement ops: each forward moves ring elements (encodings or shares) without arithmetic,
// each backward is the adjoint movement of g. Shape comments: g is the gradient of the output.

#include "autograd/shape_ops.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "autograd/functions.h"
#include "autograd/internal.h"
#include "autograd/node.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/fixed_point.h"

namespace veil {

namespace {

using namespace autograd::detail;  // NOLINT(google-build-using-namespace): internal helpers
using autograd::record;

// A view of t with out.size(i) = t.size(dims[i]) (a product of transposes, no copy).
core::Tensor permute_ring(core::Tensor t, const std::vector<int64_t>& dims) {
  std::vector<int64_t> cur(dims.size());
  for (std::size_t i = 0; i < cur.size(); ++i) {
    cur[i] = static_cast<int64_t>(i);
  }
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const auto j = static_cast<std::size_t>(
        std::find(cur.begin() + static_cast<std::ptrdiff_t>(i), cur.end(), dims[i]) - cur.begin());
    if (j != i) {
      t = t.transpose(static_cast<int64_t>(i), static_cast<int64_t>(j));
      std::swap(cur[i], cur[j]);
    }
  }
  return t;
}

// Pads dim d of t with `left` / `right` entries equal to `fill` (negative: crops). The caller
// checked that the crops fit.
core::Tensor pad_dim_ring(core::Tensor t, int64_t d, int64_t left, int64_t right, uint64_t fill) {
  if (left < 0) {
    t = t.slice(d, -left, t.size(d));
  }
  if (right < 0) {
    t = t.slice(d, 0, t.size(d) + right);
  }
  if (left <= 0 && right <= 0) {
    return t;
  }
  std::vector<core::Tensor> parts;
  core::Shape block = t.shape();
  if (left > 0) {
    block[at(d)] = left;
    parts.push_back(core::Tensor::full<uint64_t>(block, fill));
  }
  parts.push_back(t);
  if (right > 0) {
    block[at(d)] = right;
    parts.push_back(core::Tensor::full<uint64_t>(block, fill));
  }
  return core::cat(parts, d);
}

// torch.nn.functional.pad's layout: pads[2k], pads[2k + 1] apply to dim rank - 1 - k.
core::Tensor pad_ring(core::Tensor t, const std::vector<int64_t>& pads, uint64_t fill) {
  const int64_t rank = t.dim();
  for (std::size_t k = 0; 2 * k < pads.size(); ++k) {
    t = pad_dim_ring(t, rank - 1 - static_cast<int64_t>(k), pads[2 * k], pads[2 * k + 1], fill);
  }
  return t;
}

// Extents of t around dim d: {outer, n, inner} for a contiguous layout.
struct Split {
  int64_t outer = 1;
  int64_t n = 1;
  int64_t inner = 1;
};
Split split_at(const core::Shape& s, int64_t d) {
  Split r;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i) {
    if (i < d) {
      r.outer *= s[at(i)];
    } else if (i == d) {
      r.n = s[at(i)];
    } else {
      r.inner *= s[at(i)];
    }
  }
  return r;
}

// out[..., i, ...] = t[..., idx[i], ...] along dim d (indices already validated).
core::Tensor index_select_ring(const core::Tensor& t, int64_t d, const std::vector<int64_t>& idx) {
  const core::Tensor c = t.contiguous();
  const Split s = split_at(c.shape(), d);
  core::Shape shape = c.shape();
  shape[at(d)] = static_cast<int64_t>(idx.size());
  core::Tensor out = core::Tensor::empty(shape, core::DType::kRing64);
  const uint64_t* src = c.data<uint64_t>();
  uint64_t* dst = out.data<uint64_t>();
  const auto m = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < s.outer; ++o) {
    for (int64_t i = 0; i < m; ++i) {
      const uint64_t* from = src + (o * s.n + idx[at(i)]) * s.inner;
      std::copy(from, from + s.inner, dst + (o * m + i) * s.inner);
    }
  }
  return out;
}

// The adjoint of index_select_ring: zeros of `shape` with g[..., i, ...] added at idx[i].
core::Tensor index_add_ring(const core::Shape& shape,
                            int64_t d,
                            const std::vector<int64_t>& idx,
                            const core::Tensor& g) {
  const core::Tensor c = g.contiguous();
  const Split s = split_at(shape, d);
  core::Tensor out = core::Tensor::zeros(shape, core::DType::kRing64);
  const uint64_t* src = c.data<uint64_t>();
  uint64_t* dst = out.data<uint64_t>();
  const auto m = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < s.outer; ++o) {
    for (int64_t i = 0; i < m; ++i) {
      const uint64_t* from = src + (o * m + i) * s.inner;
      uint64_t* to = dst + (o * s.n + idx[at(i)]) * s.inner;
      for (int64_t k = 0; k < s.inner; ++k) {
        to[k] += from[k];
      }
    }
  }
  return out;
}

// Visits every position of `index_shape` (row-major), passing the flat position and the offset
// of the corresponding element of a contiguous tensor of shape `x_shape` with dim d replaced by
// the index value (indices already validated).
template <class F>
void for_each_gather(const core::Shape& x_shape, const core::Tensor& index, int64_t d, F&& f) {
  const core::Shape& is = index.shape();
  const core::Shape xs = core::contiguous_strides(x_shape);
  const int64_t* pi = index.data<int64_t>();
  std::vector<int64_t> pos(is.size(), 0);
  for (int64_t flat = 0; flat < index.numel(); ++flat) {
    int64_t off = 0;
    for (std::size_t k = 0; k < is.size(); ++k) {
      off += (static_cast<int64_t>(k) == d ? pi[flat] : pos[k]) * xs[k];
    }
    f(flat, off);
    for (std::size_t k = is.size(); k-- > 0;) {
      if (++pos[k] < is[k]) {
        break;
      }
      pos[k] = 0;
    }
  }
}

// Checks the int64 index values against [0, n) (public values: safe to name in the message).
std::vector<int64_t> checked_indices(const core::Tensor& index, int64_t n, const char* op) {
  std::vector<int64_t> v = index.to_vector<int64_t>();
  for (int64_t i : v) {
    VEIL_CHECK(i >= 0 && i < n, "[{}] index {} out of range for a dimension of size {}", op, i, n);
  }
  return v;
}

uint64_t fill_of(const MpcTensor& x, double value, const char* op) {
  const uint64_t enc = crypto::FixedPointEncoder(x.frac_bits()).encode_scalar(value, op);
  // For a secret x, party 0 holds the constant and the others 0 (the trivial sharing).
  return x.is_public() || x.party().rank() == 0 ? enc : uint64_t{0};
}

}  // namespace

// ---- views --------------------------------------------------------------------------------------

MpcTensor flatten(const MpcTensor& x, int64_t start_dim, int64_t end_dim) {
  // x: [a_0, ..., a_s, ..., a_e, ...] -> [a_0, ..., a_s * ... * a_e, ...]
  party_of(x, "flatten");
  if (x.dim() == 0) {
    return reshape(x, {1});
  }
  const int64_t s = normalize_dim(x, start_dim, "flatten");
  const int64_t e = normalize_dim(x, end_dim, "flatten");
  VEIL_CHECK(s <= e, "[flatten] start_dim {} comes after end_dim {} for shape {}", start_dim,
             end_dim, core::shape_str(x.shape()));
  core::Shape shape(x.shape().begin(), x.shape().begin() + s);
  int64_t merged = 1;
  for (int64_t i = s; i <= e; ++i) {
    merged *= x.size(i);
  }
  shape.push_back(merged);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, shape);
}

MpcTensor permute(const MpcTensor& x, const std::vector<int64_t>& dims) {
  // x: S -> out: [S[dims[0]], S[dims[1]], ...]
  party_of(x, "permute");
  const int64_t n = x.dim();
  VEIL_CHECK(static_cast<int64_t>(dims.size()) == n,
             "[permute] expected {} dims for shape {}, got {}", n, core::shape_str(x.shape()),
             dims.size());
  std::vector<int64_t> perm(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (std::size_t i = 0; i < dims.size(); ++i) {
    VEIL_CHECK(dims[i] >= -n && dims[i] < n, "[permute] dim {} out of range for shape {}", dims[i],
               core::shape_str(x.shape()));
    perm[i] = dims[i] < 0 ? dims[i] + n : dims[i];
    VEIL_CHECK(!seen[at(perm[i])], "[permute] dim {} repeated in {}", dims[i], dims);
    seen[at(perm[i])] = true;
  }
  std::vector<int64_t> inverse(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) {
    inverse[at(perm[i])] = static_cast<int64_t>(i);
  }
  MpcTensor out = like(x, permute_ring(x.ring(), perm));
  return record("permute", std::move(out), {x}, [inverse](const MpcTensor& g, const Needs&) {
    return Grads{like(g, permute_ring(g.ring(), inverse))};  // dx = g permuted back
  });
}

MpcTensor transpose(const MpcTensor& x, int64_t d0, int64_t d1) {
  // x: [.., a, .., b, ..] -> out: [.., b, .., a, ..]
  party_of(x, "transpose");
  const int64_t a = normalize_dim(x, d0, "transpose");
  const int64_t b = normalize_dim(x, d1, "transpose");
  MpcTensor out = like(x, x.ring().transpose(a, b));
  return record("transpose", std::move(out), {x}, [a, b](const MpcTensor& g, const Needs&) {
    return Grads{like(g, g.ring().transpose(a, b))};  // dx = g with the dims swapped back
  });
}

MpcTensor squeeze(const MpcTensor& x, int64_t dim) {
  party_of(x, "squeeze");
  const int64_t d = normalize_dim(x, dim, "squeeze");
  if (x.size(d) != 1) {
    return x;
  }
  core::Shape shape = x.shape();
  shape.erase(shape.begin() + d);
  return reshape(x, shape);
}

MpcTensor squeeze(const MpcTensor& x) {
  party_of(x, "squeeze");
  core::Shape shape;
  std::copy_if(x.shape().begin(), x.shape().end(), std::back_inserter(shape),
               [](int64_t e) { return e != 1; });
  return shape.size() == x.shape().size() ? x : reshape(x, shape);
}

MpcTensor unsqueeze(const MpcTensor& x, int64_t dim) {
  party_of(x, "unsqueeze");
  const int64_t n = x.dim();
  VEIL_CHECK(dim >= -(n + 1) && dim <= n, "[unsqueeze] dim {} out of range [{}, {}] for shape {}",
             dim, -(n + 1), n, core::shape_str(x.shape()));
  const int64_t d = dim < 0 ? dim + n + 1 : dim;
  core::Shape shape = x.shape();
  shape.insert(shape.begin() + d, 1);
  return reshape(x, shape);
}

// ---- concatenation ------------------------------------------------------------------------------

MpcTensor cat(const std::vector<MpcTensor>& xs, int64_t dim) {
  // xs[i]: [.., n_i, ..] -> out: [.., sum n_i, ..]
  VEIL_CHECK(!xs.empty(), "[cat] expected at least one tensor, got none");
  Party& p = party_of(xs[0], "cat");
  bool secret = false;
  int f = 0;
  for (const MpcTensor& x : xs) {
    party_of(xs[0], x, "cat");
    VEIL_CHECK(x.dim() == xs[0].dim() && x.dim() > 0,
               "[cat] expected tensors of equal rank >= 1, got {} and {}",
               core::shape_str(xs[0].shape()), core::shape_str(x.shape()));
    secret = secret || x.is_secret();
    f = std::max(f, x.frac_bits());
  }
  const int64_t d = normalize_dim(xs[0], dim, "cat");
  std::vector<core::Tensor> rings;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  int64_t offset = 0;
  for (const MpcTensor& x : xs) {
    rings.push_back(lift(secret ? share_ring(x) : x.ring(), x.frac_bits(), f));
    ranges.emplace_back(offset, offset + x.size(d));
    offset += x.size(d);
  }
  MpcTensor out = make(p, secret, core::cat(rings, d), f);
  return record("cat", std::move(out), xs, [d, ranges](const MpcTensor& g, const Needs& needs) {
    // dx_i = g[.., offset_i : offset_i + n_i, ..]
    Grads grads(needs.size());
    for (std::size_t i = 0; i < needs.size(); ++i) {
      if (needs[i]) {
        grads[i] = like(g, g.ring().slice(d, ranges[i].first, ranges[i].second));
      }
    }
    return grads;
  });
}

MpcTensor stack(const std::vector<MpcTensor>& xs, int64_t dim) {
  // xs[i]: S -> out: S with k inserted at dim
  VEIL_CHECK(!xs.empty(), "[stack] expected at least one tensor, got none");
  party_of(xs[0], "stack");
  const int64_t n = xs[0].dim();
  VEIL_CHECK(dim >= -(n + 1) && dim <= n, "[stack] dim {} out of range [{}, {}] for shape {}", dim,
             -(n + 1), n, core::shape_str(xs[0].shape()));
  std::vector<MpcTensor> parts;
  parts.reserve(xs.size());
  for (const MpcTensor& x : xs) {
    party_of(x, "stack");
    VEIL_CHECK(x.shape() == xs[0].shape(), "[stack] expected tensors of equal shape, got {} and {}",
               core::shape_str(xs[0].shape()), core::shape_str(x.shape()));
    parts.push_back(unsqueeze(x, dim));
  }
  return cat(parts, dim < 0 ? dim + n + 1 : dim);
}

// ---- slicing ------------------------------------------------------------------------------------

MpcTensor slice(const MpcTensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  // x: [.., n, ..] -> out: [.., ceil((end - start) / step), ..] (after clamping)
  party_of(x, "slice");
  const int64_t d = normalize_dim(x, dim, "slice");
  VEIL_CHECK(step >= 1, "[slice] expected step >= 1, got {}", step);
  const int64_t n = x.size(d);
  auto clamp = [n](int64_t v) {
    return std::clamp(v < 0 ? v + n : v, int64_t{0}, n);
  };
  const int64_t lo = clamp(start);
  const int64_t hi = std::max(lo, clamp(end));
  if (step == 1) {
    MpcTensor out = like(x, x.ring().slice(d, lo, hi));
    return record("slice", std::move(out), {x}, [d, lo, hi, n](const MpcTensor& g, const Needs&) {
      // dx = g padded with zeros to n along d
      return Grads{like(g, pad_dim_ring(g.ring(), d, lo, n - hi, 0))};
    });
  }
  std::vector<int64_t> idx;
  for (int64_t i = lo; i < hi; i += step) {
    idx.push_back(i);
  }
  MpcTensor out = like(x, index_select_ring(x.ring(), d, idx));
  return record("slice", std::move(out), {x},
                [d, idx, shape = x.shape()](const MpcTensor& g, const Needs&) {
                  // dx = zeros with g at positions lo, lo + step, ...
                  return Grads{like(g, index_add_ring(shape, d, idx, g.ring()))};
                });
}

MpcTensor narrow(const MpcTensor& x, int64_t dim, int64_t start, int64_t length) {
  party_of(x, "narrow");
  const int64_t d = normalize_dim(x, dim, "narrow");
  const int64_t n = x.size(d);
  VEIL_CHECK(start >= -n && start <= n, "[narrow] start {} out of range for a dimension of size {}",
             start, n);
  const int64_t s = start < 0 ? start + n : start;
  VEIL_CHECK(length >= 0 && s + length <= n,
             "[narrow] start {} + length {} exceeds dimension {} of size {}", s, length, d, n);
  return slice(x, d, s, s + length);
}

MpcTensor select(const MpcTensor& x, int64_t dim, int64_t index) {
  // x: [.., n, ..] -> out: [.., ..] (dim removed)
  party_of(x, "select");
  const int64_t d = normalize_dim(x, dim, "select");
  const int64_t n = x.size(d);
  VEIL_CHECK(index >= -n && index < n, "[select] index {} out of range for dimension {} of size {}",
             index, d, n);
  const int64_t i = index < 0 ? index + n : index;
  core::Shape shape = x.shape();
  shape.erase(shape.begin() + d);
  MpcTensor out = like(x, x.ring().slice(d, i, i + 1).reshape(shape));
  return record("select", std::move(out), {x},
                [d, i, n, kept = x.shape()](const MpcTensor& g, const Needs&) {
                  core::Shape one = kept;
                  one[at(d)] = 1;
                  // dx = zeros with g placed at index i along d
                  return Grads{like(g, pad_dim_ring(g.ring().reshape(one), d, i, n - i - 1, 0))};
                });
}

// ---- gathering ----------------------------------------------------------------------------------

MpcTensor gather(const MpcTensor& x, int64_t dim, const core::Tensor& index) {
  // x: S, index: I (same rank, I[k] <= S[k] for k != dim) -> out: I
  party_of(x, "gather");
  const int64_t d = normalize_dim(x, dim, "gather");
  VEIL_CHECK(index.defined() && index.dtype() == core::DType::kInt64 && index.dim() == x.dim(),
             "[gather] expected an int64 index with {} dims (x is {}), got {}", x.dim(),
             core::shape_str(x.shape()),
             index.defined() ? index.str() : std::string("an undefined tensor"));
  for (int64_t k = 0; k < x.dim(); ++k) {
    VEIL_CHECK(k == d || index.size(k) <= x.size(k),
               "[gather] index {} is larger than x {} outside dim {}",
               core::shape_str(index.shape()), core::shape_str(x.shape()), d);
  }
  const core::Tensor idx = index.contiguous();
  (void)checked_indices(idx, x.size(d), "gather");
  const core::Tensor src = x.ring().contiguous();
  core::Tensor outv = core::Tensor::empty(idx.shape(), core::DType::kRing64);
  const uint64_t* ps = src.data<uint64_t>();
  uint64_t* po = outv.data<uint64_t>();
  for_each_gather(x.shape(), idx, d, [&](int64_t flat, int64_t off) { po[flat] = ps[off]; });
  MpcTensor out = like(x, outv);
  return record(
      "gather", std::move(out), {x}, [d, idx, shape = x.shape()](const MpcTensor& g, const Needs&) {
        // dx = scatter_add(zeros(S), dim, index, g)
        const core::Tensor gc = g.ring().contiguous();
        core::Tensor dx = core::Tensor::zeros(shape, core::DType::kRing64);
        const uint64_t* pg = gc.data<uint64_t>();
        uint64_t* pd = dx.data<uint64_t>();
        for_each_gather(shape, idx, d, [&](int64_t flat, int64_t off) { pd[off] += pg[flat]; });
        return Grads{like(g, dx)};
      });
}

MpcTensor index_select(const MpcTensor& x, int64_t dim, const core::Tensor& index) {
  // x: [.., n, ..], index: [m] -> out: [.., m, ..]
  party_of(x, "index_select");
  const int64_t d = normalize_dim(x, dim, "index_select");
  VEIL_CHECK(index.defined() && index.dtype() == core::DType::kInt64 && index.dim() <= 1,
             "[index_select] expected a 0-d or 1-D int64 index, got {}",
             index.defined() ? index.str() : std::string("an undefined tensor"));
  const std::vector<int64_t> idx = checked_indices(index, x.size(d), "index_select");
  MpcTensor out = like(x, index_select_ring(x.ring(), d, idx));
  return record("index_select", std::move(out), {x},
                [d, idx, shape = x.shape()](const MpcTensor& g, const Needs&) {
                  // dx = index_add(zeros(S), dim, index, g)
                  return Grads{like(g, index_add_ring(shape, d, idx, g.ring()))};
                });
}

// ---- padding ------------------------------------------------------------------------------------

MpcTensor pad(const MpcTensor& x, const std::vector<int64_t>& pads, double value) {
  // x: S -> out: S with S[r-1-k] + pads[2k] + pads[2k+1]
  party_of(x, "pad");
  VEIL_CHECK(pads.size() % 2 == 0 && static_cast<int64_t>(pads.size()) <= 2 * x.dim(),
             "[pad] expected an even number of pads, at most 2 * {} for shape {}, got {}", x.dim(),
             core::shape_str(x.shape()), pads.size());
  for (std::size_t k = 0; 2 * k < pads.size(); ++k) {
    const int64_t n = x.size(x.dim() - 1 - static_cast<int64_t>(k));
    const int64_t l = pads[2 * k];
    const int64_t r = pads[2 * k + 1];
    VEIL_CHECK(n + std::min<int64_t>(l, 0) + std::min<int64_t>(r, 0) >= 0,
               "[pad] pads ({}, {}) crop more than the extent {} of dim {} in {}", l, r, n,
               x.dim() - 1 - static_cast<int64_t>(k), core::shape_str(x.shape()));
  }
  MpcTensor out = like(x, pad_ring(x.ring(), pads, fill_of(x, value, "pad")));
  std::vector<int64_t> back(pads.size());
  std::transform(pads.begin(), pads.end(), back.begin(), [](int64_t v) { return -v; });
  return record("pad", std::move(out), {x}, [back](const MpcTensor& g, const Needs&) {
    // dx = g cropped to x (and zero-padded where x was cropped): pad(g, -pads, 0)
    return Grads{like(g, pad_ring(g.ring(), back, 0))};
  });
}

}  // namespace veil
