#include "core/cuda_dispatch.h"

#include <algorithm>
#include <list>

#include "core/elementwise.h"
#include "kernels/cuda_gemm.h"

namespace veil::core {

std::string device_str(Device d) {
  return d.type == Device::Type::kCPU ? std::string("cpu") : fmt::format("cuda:{}", d.index);
}

Device parse_device(std::string_view s) {
  if (s == "cpu") {
    return Device::cpu();
  }
  if (s == "cuda") {
    return Device::cuda(0);
  }
  if (s.starts_with("cuda:") && s.size() > 5 && s.size() <= 8 &&
      std::all_of(s.begin() + 5, s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Device::cuda(std::stoi(std::string(s.substr(5))));
  }
  throw ValueError(fmt::format("[device] expected 'cpu', 'cuda' or 'cuda:N', got '{}'", s));
}

bool same_device(const Tensor& a, const Tensor& b, const char* op) {
  VEIL_CHECK(a.device() == b.device(), "[{}] expected tensors on one device, got {} and {}", op,
             device_str(a.device()), device_str(b.device()));
  return a.is_cuda();
}

namespace cuda_ops {

kc::Elem elem(DType t) {
  switch (t) {
    case DType::kFloat32:
      return kc::Elem::kF32;
    case DType::kFloat64:
      return kc::Elem::kF64;
    case DType::kInt64:
      return kc::Elem::kI64;
    case DType::kRing64:
      return kc::Elem::kU64;
    case DType::kUInt8:
      return kc::Elem::kU8;
  }
  VEIL_INTERNAL_ASSERT(false, "unknown dtype {}", static_cast<int>(t));
}

const void* ptr(const Tensor& t) {
  return t.device_ptr();
}

void* ptr(Tensor& t) {
  return t.device_ptr();
}

void layouts(const Shape& shape,
             std::initializer_list<const Shape*> strides,
             kc::Layout* out,
             const char* op) {
  const std::size_t k = strides.size();
  // Merged extents and per-operand strides, outermost first.
  std::vector<int64_t> ext;
  std::vector<std::vector<int64_t>> st(k);
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) {
      continue;
    }
    bool merge = !ext.empty();
    std::size_t j = 0;
    for (const Shape* s : strides) {
      merge = merge && st[j].back() == (*s)[d] * shape[d];
      ++j;
    }
    j = 0;
    if (merge) {
      ext.back() *= shape[d];
      for (const Shape* s : strides) {
        st[j++].back() = (*s)[d];
      }
    } else {
      ext.push_back(shape[d]);
      for (const Shape* s : strides) {
        st[j++].push_back((*s)[d]);
      }
    }
  }
  VEIL_CHECK(ext.size() <= static_cast<std::size_t>(kc::kMaxDims),
             "[{}] CUDA kernels take views of at most {} dimensions after merging contiguous ones, "
             "got shape {} ({} dimensions remain); make the operands contiguous first",
             op, kc::kMaxDims, shape_str(shape), ext.size());
  for (std::size_t j = 0; j < k; ++j) {
    kc::Layout l;
    l.ndim = static_cast<int>(ext.size());
    for (std::size_t d = 0; d < ext.size(); ++d) {
      l.shape[d] = ext[d];
      l.stride[d] = st[j][d];
    }
    l.offset = 0;
    out[j] = l;
  }
}

kc::Layout layout(const Tensor& t, const char* op) {
  kc::Layout l;
  layouts(t.shape(), {&t.strides()}, &l, op);
  return l;
}

Tensor binary(kc::BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  const Shape shape =
      a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  if (out.numel() == 0) {
    return out;
  }
  const Tensor ea = a.expand(shape);
  const Tensor eb = b.expand(shape);
  kc::Layout l[2];
  layouts(shape, {&ea.strides(), &eb.strides()}, l, name);
  kc::binary(op, elem(a.dtype()), out.numel(), ptr(ea), l[0], ptr(eb), l[1], ptr(out),
             a.device().index);
  return out;
}

void binary_(kc::BinaryOp op, Tensor& a, const Tensor& b, const char* name) {
  VEIL_CHECK(a.is_contiguous(), "[{}] in-place target must be contiguous, got {}", name, a.str());
  if (a.shape() != b.shape()) {
    VEIL_CHECK(broadcast_shapes(a.shape(), b.shape(), name) == a.shape(),
               "[{}] cannot broadcast {} into the in-place target {}", name, shape_str(b.shape()),
               shape_str(a.shape()));
  }
  if (a.numel() == 0) {
    return;
  }
  const Tensor eb = b.expand(a.shape());
  kc::Layout l[2];
  layouts(a.shape(), {&a.strides(), &eb.strides()}, l, name);
  // Elementwise with out == a: each element is read before it is written, by the same thread.
  kc::binary(op, elem(a.dtype()), a.numel(), ptr(a), l[0], ptr(eb), l[1], ptr(a), a.device().index);
}

namespace {

// True when some two indices of the view reach one element: sorted by stride, each dimension of
// extent > 1 must step past everything the smaller ones span (a sufficient test).
bool overlapping(const Tensor& v) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, extent)
  for (int64_t d = 0; d < v.dim(); ++d) {
    if (v.size(d) > 1) {
      dims.emplace_back(v.strides()[static_cast<std::size_t>(d)], v.size(d));
    }
  }
  std::sort(dims.begin(), dims.end());
  int64_t span = 1;  // elements reached by the dimensions so far, from the first
  for (const auto& [stride, extent] : dims) {
    if (stride < span) {
      return true;
    }
    span = stride * (extent - 1) + span;
  }
  return false;
}

}  // namespace

namespace {

Tensor upload_index(const std::vector<int64_t>& index, Device device) {
  Tensor host_index = Tensor::empty({static_cast<int64_t>(index.size())}, DType::kInt64);
  std::copy(index.begin(), index.end(), host_index.data<int64_t>());
  return host_index.to(device);
}

/// Device copies of recently used index lists (see gather_index), most recently used first. One
/// cache per thread: an entry is used and dropped by the thread that uploaded it, so its memory
/// is freed on that thread's stream after every kernel that read it (a cache shared by parties'
/// threads could free a list while another thread's kernel still reads it).
class IndexCache {
 public:
  Tensor get(const std::vector<int64_t>& index, Device device) {
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->device == device && it->index == index) {
        entries_.splice(entries_.begin(), entries_, it);
        return entries_.front().on_device;
      }
    }
    Tensor up = upload_index(index, device);
    const std::size_t bytes = index.size() * sizeof(int64_t);
    if (bytes > kMaxBytes) {
      return up;
    }
    entries_.push_front({device, index, up});
    bytes_ += bytes;
    while (entries_.size() > kMaxEntries || bytes_ > kMaxBytes) {
      bytes_ -= entries_.back().index.size() * sizeof(int64_t);
      entries_.pop_back();
    }
    return up;
  }

 private:
  static constexpr std::size_t kMaxEntries = 64;
  static constexpr std::size_t kMaxBytes = std::size_t{16} << 20U;
  struct Entry {
    Device device;
    std::vector<int64_t> index;
    Tensor on_device;
  };
  std::list<Entry> entries_;
  std::size_t bytes_ = 0;
};

IndexCache& index_cache() {
  thread_local IndexCache cache;
  return cache;
}

}  // namespace

void gather_index(const Tensor& src,
                  int64_t outer,
                  int64_t len,
                  int64_t inner,
                  const std::vector<int64_t>& index,
                  Tensor& out,
                  bool reuse) {
  if (out.numel() == 0) {
    return;
  }
  const auto n = static_cast<int64_t>(index.size());
  const Tensor dev_index =
      reuse ? index_cache().get(index, src.device()) : upload_index(index, src.device());
  kc::gather_index(elem(src.dtype()), outer, len, inner, ptr(src), n,
                   static_cast<const int64_t*>(ptr(dev_index)), ptr(out), src.device().index);
}

void add_into_view(Tensor& view, const Tensor& src, const char* name) {
  VEIL_CHECK(
      view.shape() == src.shape() && view.dtype() == src.dtype() && view.dtype() != DType::kUInt8,
      "[{}] expected an arithmetic view and a source of its shape and dtype, got {} and {}", name,
      view.str(), src.str());
  VEIL_CHECK(!overlapping(view),
             "[{}] expected a view that reaches each element once, got strides {} for shape {}",
             name, shape_str(view.strides()), shape_str(view.shape()));
  if (view.numel() == 0) {
    return;
  }
  kc::Layout l[2];
  layouts(view.shape(), {&src.strides(), &view.strides()}, l, name);
  kc::add_into_strided(elem(view.dtype()), view.numel(), ptr(src), l[0], ptr(view), l[1],
                       view.device().index);
}

Tensor unary(kc::UnaryOp op, const Tensor& a, const kc::UnaryParams& p, const char* name) {
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  if (out.numel() == 0) {
    return out;
  }
  kc::unary(op, elem(a.dtype()), a.numel(), ptr(a), layout(a, name), ptr(out), p, a.device().index);
  return out;
}

Tensor reduce(
    kc::ReduceOp op, const Tensor& a, int64_t d, const Shape& out_shape, DType out_dtype) {
  Tensor out = Tensor::empty(out_shape, out_dtype, a.device());
  if (out.numel() == 0) {
    return out;
  }
  const int64_t len = a.shape()[static_cast<std::size_t>(d)];
  if (len == 0) {  // only kSum gets here: an empty sum is zero
    kc::zero(ptr(out), out.nbytes(), a.device().index);
    return out;
  }
  int64_t outer = 1;
  int64_t inner = 1;
  for (int64_t i = 0; i < d; ++i) {
    outer *= a.shape()[static_cast<std::size_t>(i)];
  }
  for (int64_t i = d + 1; i < a.dim(); ++i) {
    inner *= a.shape()[static_cast<std::size_t>(i)];
  }
  const Tensor c = a.contiguous();
  kc::reduce(op, elem(a.dtype()), outer, len, inner, ptr(c), ptr(out), a.device().index);
  return out;
}

Tensor cat(const std::vector<Tensor>& xs, int64_t d, const Shape& shape) {
  const Device dev = xs[0].device();
  const DType dt = xs[0].dtype();
  int64_t outer = 1;
  for (int64_t i = 0; i < d; ++i) {
    outer *= shape[static_cast<std::size_t>(i)];
  }
  Tensor out = Tensor::empty(shape, dt, dev);
  if (out.numel() == 0) {
    return out;
  }
  // When nothing precedes dim d, every input fills one contiguous block of `out`; otherwise fill
  // the contiguous tensor out' = out with dims 0 and d swapped, slab by slab, then transpose back
  // with one strided gather.
  Tensor dst = outer == 1 ? out : Tensor::empty(out.transpose(0, d).shape(), dt, dev);
  int64_t at = 0;
  for (const auto& x : xs) {
    const int64_t len = x.size(d);
    if (len > 0 && x.numel() > 0) {
      if (outer == 1) {
        Tensor block = out.slice(d, at, at + len);
        block.copy_(x);
      } else {
        Tensor block = dst.slice(0, at, at + len);
        block.copy_(x.transpose(0, d));
      }
    }
    at += len;
  }
  if (outer != 1) {
    out.copy_(dst.transpose(0, d));
  }
  return out;
}

namespace {

// A GEMM operand [rows, cols] as the GEMM takes it: storage, leading dimension, transpose flag.
struct GemmOperand {
  Tensor t;
  int64_t ld = 1;
  bool trans = false;
};

GemmOperand gemm_operand(const Tensor& x) {
  const int64_t r = x.size(0);
  const int64_t c = x.size(1);
  const int64_t rs = x.strides()[0];
  const int64_t cs = x.strides()[1];
  // Row-major: element (i, j) at i * ld + j.
  if ((c <= 1 || cs == 1) && (r <= 1 || rs >= std::max<int64_t>(c, 1))) {
    return {x, r <= 1 ? std::max<int64_t>(c, 1) : rs, false};
  }
  // Transposed (stored [cols, rows] row-major): element (i, j) at j * ld + i.
  if ((r <= 1 || rs == 1) && (c <= 1 || cs >= std::max<int64_t>(r, 1))) {
    return {x, c <= 1 ? std::max<int64_t>(r, 1) : cs, true};
  }
  return {x.contiguous(), std::max<int64_t>(c, 1), false};
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  const int64_t m = a.size(0);
  const int64_t k = a.size(1);
  const int64_t n = b.size(1);
  const int dev = a.device().index;
  if (m == 0 || n == 0 || k == 0) {
    return Tensor::zeros({m, n}, a.dtype(), a.device());
  }
  Tensor out = Tensor::empty({m, n}, a.dtype(), a.device());
  const GemmOperand oa = gemm_operand(a);
  const GemmOperand ob = gemm_operand(b);
  if (a.dtype() == DType::kRing64) {
    kc::ring_gemm_ex(kc::RingGemmAlgo::kTensorCore, m, n, k, oa.t.device_data<uint64_t>(), oa.ld,
                     oa.trans, ob.t.device_data<uint64_t>(), ob.ld, ob.trans,
                     out.device_data<uint64_t>(), n, dev);
  } else {
    kc::float_gemm(static_cast<int>(elem(a.dtype())), false, m, n, k, ptr(oa.t), oa.ld, oa.trans,
                   ptr(ob.t), ob.ld, ob.trans, ptr(out), n, dev);
  }
  return out;
}

}  // namespace cuda_ops
}  // namespace veil::core
