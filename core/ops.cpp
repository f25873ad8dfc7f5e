#include "core/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/cuda_dispatch.h"
#include "core/elementwise.h"
#include "core/parallel.h"

namespace veil::core {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t nd = std::max(a.size(), b.size());
  Shape out(nd, 1);
  for (std::size_t i = 0; i < nd; ++i) {
    const int64_t ea = i < nd - a.size() ? 1 : a[i - (nd - a.size())];
    const int64_t eb = i < nd - b.size() ? 1 : b[i - (nd - b.size())];
    VEIL_CHECK(ea == eb || ea == 1 || eb == 1, "[{}] shapes {} and {} do not broadcast", op,
               shape_str(a), shape_str(b));
    out[i] = ea == 1 ? eb : ea;
  }
  return out;
}

namespace {

namespace kc = kernels::cuda;
using kc::BinaryOp;
using kc::UnaryOp;

kc::UnaryParams shift_params(int bits) {
  kc::UnaryParams p;
  p.bits = bits;
  return p;
}
kc::UnaryParams ring_scalar(uint64_t s) {
  kc::UnaryParams p;
  p.scalar_bits = s;
  return p;
}
kc::UnaryParams float_scalar(double s) {
  kc::UnaryParams p;
  p.scalar = s;
  return p;
}

// Calls f.template operator()<T>() for the arithmetic dtypes; throws for the others.
template <class F>
auto dispatch_arith(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::kFloat32:
      return f.template operator()<float>();
    case DType::kFloat64:
      return f.template operator()<double>();
    case DType::kInt64:
      return f.template operator()<int64_t>();
    case DType::kRing64:
      return f.template operator()<uint64_t>();
    default:
      throw ValueError(fmt::format("[{}] expected an arithmetic dtype, got {}", op, dtype_name(t)));
  }
}

template <class F>
auto dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::kFloat32:
      return f.template operator()<float>();
    case DType::kFloat64:
      return f.template operator()<double>();
    default:
      throw ValueError(fmt::format("[{}] expected a floating dtype (float32/float64), got {}", op,
                                   dtype_name(t)));
  }
}

template <class F>
auto dispatch_bits(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::kInt64:
      return f.template operator()<int64_t>();
    case DType::kRing64:
      return f.template operator()<uint64_t>();
    case DType::kUInt8:
      return f.template operator()<uint8_t>();
    default:
      throw ValueError(fmt::format("[{}] expected an integer dtype (ring64/int64/uint8), got {}",
                                   op, dtype_name(t)));
  }
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  VEIL_CHECK(a.defined() && b.defined(), "[{}] got an undefined tensor", op);
  VEIL_CHECK(a.dtype() == b.dtype(), "[{}] expected equal dtypes, got {} and {}", op,
             dtype_name(a.dtype()), dtype_name(b.dtype()));
}

// int64 arithmetic goes through uint64 so that overflow wraps instead of being undefined.
template <class T>
T wrap_add(T x, T y) {
  if constexpr (std::is_same_v<T, int64_t>) {
    return static_cast<int64_t>(static_cast<uint64_t>(x) + static_cast<uint64_t>(y));
  } else {
    return static_cast<T>(x + y);
  }
}
template <class T>
T wrap_sub(T x, T y) {
  if constexpr (std::is_same_v<T, int64_t>) {
    return static_cast<int64_t>(static_cast<uint64_t>(x) - static_cast<uint64_t>(y));
  } else {
    return static_cast<T>(x - y);
  }
}
template <class T>
T wrap_mul(T x, T y) {
  if constexpr (std::is_same_v<T, int64_t>) {
    return static_cast<int64_t>(static_cast<uint64_t>(x) * static_cast<uint64_t>(y));
  } else {
    return static_cast<T>(x * y);
  }
}

void check_shift(const Tensor& a, int bits, const char* op) {
  VEIL_CHECK(a.dtype() == DType::kRing64, "[{}] expected a ring64 tensor, got {}", op,
             dtype_name(a.dtype()));
  VEIL_CHECK(bits >= 0 && bits < 64, "[{}] expected 0 <= bits < 64, got {}", op, bits);
}

int64_t norm_dim(const Tensor& a, int64_t dim, const char* op) {
  const int64_t nd = a.dim();
  VEIL_CHECK(dim >= -nd && dim < nd, "[{}] dimension {} out of range for shape {}", op, dim,
             shape_str(a.shape()));
  return dim < 0 ? dim + nd : dim;
}

// Views a as [outer, n, inner] around dim and calls f(outer, n, inner, contiguous data).
template <class T, class F>
void reduce_view(const Tensor& a, int64_t d, F&& f) {
  Tensor c = a.contiguous();
  int64_t outer = 1;
  int64_t inner = 1;
  for (int64_t i = 0; i < d; ++i) {
    outer *= a.shape()[static_cast<std::size_t>(i)];
  }
  for (int64_t i = d + 1; i < a.dim(); ++i) {
    inner *= a.shape()[static_cast<std::size_t>(i)];
  }
  f(outer, a.shape()[static_cast<std::size_t>(d)], inner, c.data<T>());
}

Shape reduced_shape(const Tensor& a, int64_t d, bool keepdim) {
  Shape s = a.shape();
  if (keepdim) {
    s[static_cast<std::size_t>(d)] = 1;
  } else {
    s.erase(s.begin() + d);
  }
  return s;
}

template <class T>
bool greater(T x, T y) {
  if constexpr (std::is_same_v<T, uint64_t>) {
    return static_cast<int64_t>(x) > static_cast<int64_t>(y);
  } else {
    return x > y;
  }
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "add");
  const bool cuda = same_device(a, b, "add");
  return dispatch_arith(a.dtype(), "add", [&]<class T>() {
    if (cuda) {
      return cuda_ops::binary(BinaryOp::kAdd, a, b, "add");
    }
    return zip<T, T, T>(
        a, b, [](T x, T y) { return wrap_add(x, y); }, "add");
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "sub");
  const bool cuda = same_device(a, b, "sub");
  return dispatch_arith(a.dtype(), "sub", [&]<class T>() {
    if (cuda) {
      return cuda_ops::binary(BinaryOp::kSub, a, b, "sub");
    }
    return zip<T, T, T>(
        a, b, [](T x, T y) { return wrap_sub(x, y); }, "sub");
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "mul");
  const bool cuda = same_device(a, b, "mul");
  return dispatch_arith(a.dtype(), "mul", [&]<class T>() {
    if (cuda) {
      return cuda_ops::binary(BinaryOp::kMul, a, b, "mul");
    }
    return zip<T, T, T>(
        a, b, [](T x, T y) { return wrap_mul(x, y); }, "mul");
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "div");
  const bool cuda = same_device(a, b, "div");
  return dispatch_float(a.dtype(), "div", [&]<class T>() {
    if (cuda) {
      return cuda_ops::binary(BinaryOp::kDiv, a, b, "div");
    }
    return zip<T, T, T>(
        a, b, [](T x, T y) { return x / y; }, "div");
  });
}

Tensor neg(const Tensor& a) {
  return dispatch_arith(a.dtype(), "neg", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::unary(UnaryOp::kNeg, a, {}, "neg");
    }
    return map<T, T>(a, [](T x) { return wrap_sub(T{0}, x); });
  });
}

void add_(Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "add_");
  const bool cuda = same_device(a, b, "add_");
  dispatch_arith(a.dtype(), "add_", [&]<class T>() {
    if (cuda) {
      cuda_ops::binary_(BinaryOp::kAdd, a, b, "add_");
      return;
    }
    zip_<T, T>(
        a, b, [](T x, T y) { return wrap_add(x, y); }, "add_");
  });
}

void sub_(Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "sub_");
  const bool cuda = same_device(a, b, "sub_");
  dispatch_arith(a.dtype(), "sub_", [&]<class T>() {
    if (cuda) {
      cuda_ops::binary_(BinaryOp::kSub, a, b, "sub_");
      return;
    }
    zip_<T, T>(
        a, b, [](T x, T y) { return wrap_sub(x, y); }, "sub_");
  });
}

Tensor mul_scalar(const Tensor& a, uint64_t s) {
  VEIL_CHECK(a.dtype() == DType::kRing64, "[mul_scalar] expected ring64 with a ring scalar, got {}",
             dtype_name(a.dtype()));
  if (a.is_cuda()) {
    return cuda_ops::unary(UnaryOp::kMulScalar, a, ring_scalar(s), "mul_scalar");
  }
  return map<uint64_t, uint64_t>(a, [s](uint64_t x) { return x * s; });
}

Tensor add_scalar(const Tensor& a, uint64_t s) {
  VEIL_CHECK(a.dtype() == DType::kRing64, "[add_scalar] expected ring64 with a ring scalar, got {}",
             dtype_name(a.dtype()));
  if (a.is_cuda()) {
    return cuda_ops::unary(UnaryOp::kAddScalar, a, ring_scalar(s), "add_scalar");
  }
  return map<uint64_t, uint64_t>(a, [s](uint64_t x) { return x + s; });
}

Tensor mul_scalar(const Tensor& a, double s) {
  return dispatch_float(a.dtype(), "mul_scalar", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::unary(UnaryOp::kMulScalar, a, float_scalar(s), "mul_scalar");
    }
    return map<T, T>(a, [s](T x) { return static_cast<T>(x * s); });
  });
}

Tensor add_scalar(const Tensor& a, double s) {
  return dispatch_float(a.dtype(), "add_scalar", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::unary(UnaryOp::kAddScalar, a, float_scalar(s), "add_scalar");
    }
    return map<T, T>(a, [s](T x) { return static_cast<T>(x + s); });
  });
}

Tensor bitwise_xor(const Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "bitwise_xor");
  const bool cuda = same_device(a, b, "bitwise_xor");
  return dispatch_bits(a.dtype(), "bitwise_xor", [&]<class T>() {
    if (cuda) {
      return cuda_ops::binary(BinaryOp::kXor, a, b, "bitwise_xor");
    }
    return zip<T, T, T>(
        a, b, [](T x, T y) { return static_cast<T>(x ^ y); }, "bitwise_xor");
  });
}

Tensor bitwise_and(const Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "bitwise_and");
  const bool cuda = same_device(a, b, "bitwise_and");
  return dispatch_bits(a.dtype(), "bitwise_and", [&]<class T>() {
    if (cuda) {
      return cuda_ops::binary(BinaryOp::kAnd, a, b, "bitwise_and");
    }
    return zip<T, T, T>(
        a, b, [](T x, T y) { return static_cast<T>(x & y); }, "bitwise_and");
  });
}

Tensor bitwise_not(const Tensor& a) {
  return dispatch_bits(a.dtype(), "bitwise_not", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::unary(UnaryOp::kNot, a, {}, "bitwise_not");  // uint8: logical not
    }
    if constexpr (std::is_same_v<T, uint8_t>) {
      return map<T, T>(a, [](T x) { return static_cast<T>(x == 0 ? 1 : 0); });
    } else {
      return map<T, T>(a, [](T x) { return static_cast<T>(~x); });
    }
  });
}

Tensor shift_left(const Tensor& a, int bits) {
  check_shift(a, bits, "shift_left");
  if (a.is_cuda()) {
    return cuda_ops::unary(UnaryOp::kShl, a, shift_params(bits), "shift_left");
  }
  return map<uint64_t, uint64_t>(a, [bits](uint64_t x) { return x << bits; });
}

Tensor shift_right_arith(const Tensor& a, int bits) {
  check_shift(a, bits, "shift_right_arith");
  if (a.is_cuda()) {
    return cuda_ops::unary(UnaryOp::kShrArith, a, shift_params(bits), "shift_right_arith");
  }
  return map<uint64_t, uint64_t>(
      a, [bits](uint64_t x) { return static_cast<uint64_t>(static_cast<int64_t>(x) >> bits); });
}

Tensor shift_right_logical(const Tensor& a, int bits) {
  check_shift(a, bits, "shift_right_logical");
  if (a.is_cuda()) {
    return cuda_ops::unary(UnaryOp::kShrLogical, a, shift_params(bits), "shift_right_logical");
  }
  return map<uint64_t, uint64_t>(a, [bits](uint64_t x) { return x >> bits; });
}

Tensor exp(const Tensor& a) {
  return dispatch_float(a.dtype(), "exp", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::unary(UnaryOp::kExp, a, {}, "exp");
    }
    return map<T, T>(a, [](T x) { return std::exp(x); });
  });
}

Tensor log(const Tensor& a) {
  return dispatch_float(a.dtype(), "log", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::unary(UnaryOp::kLog, a, {}, "log");
    }
    return map<T, T>(a, [](T x) { return std::log(x); });
  });
}

Tensor relu(const Tensor& a) {
  return dispatch_float(a.dtype(), "relu", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::unary(UnaryOp::kRelu, a, {}, "relu");
    }
    return map<T, T>(a, [](T x) { return x > T{0} ? x : T{0}; });
  });
}

Tensor step(const Tensor& a) {
  return dispatch_float(a.dtype(), "step", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::unary(UnaryOp::kStep, a, {}, "step");
    }
    return map<T, T>(a, [](T x) { return x > T{0} ? T{1} : T{0}; });
  });
}

Tensor sum(const Tensor& a, int64_t dim, bool keepdim) {
  const int64_t d = norm_dim(a, dim, "sum");
  return dispatch_arith(a.dtype(), "sum", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::reduce(kc::ReduceOp::kSum, a, d, reduced_shape(a, d, keepdim), a.dtype());
    }
    Tensor out = Tensor::zeros(reduced_shape(a, d, keepdim), a.dtype());
    T* o = out.data<T>();
    reduce_view<T>(a, d, [&](int64_t outer, int64_t n, int64_t inner, const T* p) {
      for (int64_t i = 0; i < outer; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          const T* row = p + (i * n + j) * inner;
          T* orow = o + i * inner;
          for (int64_t k = 0; k < inner; ++k) {
            orow[k] = wrap_add(orow[k], row[k]);
          }
        }
      }
    });
    return out;
  });
}

Tensor sum_all(const Tensor& a) {
  return dispatch_arith(a.dtype(), "sum_all", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::reduce(kc::ReduceOp::kSum, a.reshape({a.numel()}), 0, {}, a.dtype());
    }
    Tensor c = a.contiguous();
    const T* p = c.data<T>();
    T acc{0};
    for (int64_t i = 0; i < c.numel(); ++i) {
      acc = wrap_add(acc, p[i]);
    }
    return Tensor::scalar<T>(acc);
  });
}

Tensor max(const Tensor& a, int64_t dim, bool keepdim) {
  const int64_t d = norm_dim(a, dim, "max");
  VEIL_CHECK(a.size(d) > 0, "[max] cannot reduce an empty dimension {} of {}", dim,
             shape_str(a.shape()));
  return dispatch_arith(a.dtype(), "max", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::reduce(kc::ReduceOp::kMax, a, d, reduced_shape(a, d, keepdim), a.dtype());
    }
    Tensor out = Tensor::empty(reduced_shape(a, d, keepdim), a.dtype());
    T* o = out.data<T>();
    reduce_view<T>(a, d, [&](int64_t outer, int64_t n, int64_t inner, const T* p) {
      for (int64_t i = 0; i < outer; ++i) {
        for (int64_t k = 0; k < inner; ++k) {
          T best = p[i * n * inner + k];
          for (int64_t j = 1; j < n; ++j) {
            const T v = p[(i * n + j) * inner + k];
            if (greater(v, best)) {
              best = v;
            }
          }
          o[i * inner + k] = best;
        }
      }
    });
    return out;
  });
}

Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) {
  const int64_t d = norm_dim(a, dim, "argmax");
  VEIL_CHECK(a.size(d) > 0, "[argmax] cannot reduce an empty dimension {} of {}", dim,
             shape_str(a.shape()));
  return dispatch_arith(a.dtype(), "argmax", [&]<class T>() {
    if (a.is_cuda()) {
      return cuda_ops::reduce(kc::ReduceOp::kArgmax, a, d, reduced_shape(a, d, keepdim),
                              DType::kInt64);
    }
    Tensor out = Tensor::empty(reduced_shape(a, d, keepdim), DType::kInt64);
    auto* o = out.data<int64_t>();
    reduce_view<T>(a, d, [&](int64_t outer, int64_t n, int64_t inner, const T* p) {
      for (int64_t i = 0; i < outer; ++i) {
        for (int64_t k = 0; k < inner; ++k) {
          T best = p[i * n * inner + k];
          int64_t arg = 0;
          for (int64_t j = 1; j < n; ++j) {
            const T v = p[(i * n + j) * inner + k];
            if (greater(v, best)) {
              best = v;
              arg = j;
            }
          }
          o[i * inner + k] = arg;
        }
      }
    });
    return out;
  });
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  VEIL_CHECK(!xs.empty(), "[cat] expected at least one tensor, got none");
  const int64_t d = norm_dim(xs[0], dim, "cat");
  Shape shape = xs[0].shape();
  int64_t total = 0;
  for (const auto& x : xs) {
    VEIL_CHECK(x.dtype() == xs[0].dtype() && x.dim() == xs[0].dim(),
               "[cat] expected {} tensors of {} dims, got {}", dtype_name(xs[0].dtype()),
               xs[0].dim(), x.str());
    same_device(xs[0], x, "cat");
    for (int64_t i = 0; i < x.dim(); ++i) {
      VEIL_CHECK(
          i == d || x.shape()[static_cast<std::size_t>(i)] == shape[static_cast<std::size_t>(i)],
          "[cat] shapes {} and {} differ outside dim {}", shape_str(shape), shape_str(x.shape()),
          d);
    }
    total += x.size(d);
  }
  shape[static_cast<std::size_t>(d)] = total;
  if (xs[0].is_cuda()) {
    return cuda_ops::cat(xs, d, shape);
  }
  Tensor out = Tensor::empty(shape, xs[0].dtype());
  int64_t at = 0;
  for (const auto& x : xs) {
    Tensor dst = out.slice(d, at, at + x.size(d));
    if (dst.is_contiguous()) {
      dst.copy_(x);
    } else {
      // copy through a transposed view so the destination is contiguous
      Tensor tmp = x.contiguous();
      Tensor dst_t = out.transpose(0, d).slice(0, at, at + x.size(d));
      Tensor src_t = tmp.transpose(0, d);
      for (int64_t r = 0; r < x.size(d); ++r) {
        // each slab dst_t[r] is contiguous only when d is the leading dim; fall back to elementwise
        Tensor ds = dst_t.slice(0, r, r + 1);
        Tensor ss = src_t.slice(0, r, r + 1).contiguous();
        const std::size_t es = dtype_size(x.dtype());
        const auto* sp = ss.bytes().data();
        auto* base = static_cast<std::byte*>(out.mutable_bytes().data());
        int64_t i = 0;
        detail::strided_walk<1>(ds.shape(), {&ds.strides()}, {ds.offset()},
                                [&](int64_t, const std::array<int64_t, 1>& off) {
                                  std::memcpy(base + static_cast<std::size_t>(off[0]) * es,
                                              sp + static_cast<std::size_t>(i) * es, es);
                                  ++i;
                                });
      }
    }
    at += x.size(d);
  }
  return out;
}

Tensor one_hot(const Tensor& labels, int64_t classes) {
  VEIL_CHECK(labels.dtype() == DType::kInt64 && labels.dim() == 1,
             "[one_hot] expected int64 labels of shape [N], got {}", labels.str());
  if (labels.is_cuda()) {
    // Labels are public and must be range-checked on the host anyway: a read-out of N indices,
    // then one upload of the [N, classes] result.
    return one_hot(labels.to(Device::cpu()), classes).to(labels.device());
  }
  const int64_t n = labels.size(0);
  Tensor out = Tensor::zeros({n, classes}, DType::kFloat64);
  const auto lv = labels.to_vector<int64_t>();
  double* o = out.data<double>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = lv[static_cast<std::size_t>(i)];
    VEIL_CHECK(c >= 0 && c < classes, "[one_hot] label {} at row {} outside [0, {})", c, i,
               classes);
    o[i * classes + c] = 1.0;
  }
  return out;
}

namespace {

template <class U>
void gather_last_host(
    int64_t outer, int64_t len, const U* src, const std::vector<int64_t>& index, U* dst) {
  const auto n = static_cast<int64_t>(index.size());
  parallel_for(0, outer, std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(n, 1)),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t o = lo; o < hi; ++o) {
                   const U* row = src + o * len;
                   U* out = dst + o * n;
                   for (int64_t i = 0; i < n; ++i) {
                     const int64_t j = index[static_cast<std::size_t>(i)];
                     out[i] = j >= 0 ? row[j] : U{0};
                   }
                 }
               });
}

}  // namespace

Tensor gather_last(const Tensor& a, const std::vector<int64_t>& index) {
  VEIL_CHECK(a.defined() && a.dim() >= 1, "[gather_last] expected a tensor of at least 1-D, got {}",
             a.str());
  const int64_t len = a.size(-1);
  for (std::size_t i = 0; i < index.size(); ++i) {
    VEIL_CHECK(index[i] >= -1 && index[i] < len,
               "[gather_last] index {} at position {} outside [-1, {})", index[i], i, len);
  }
  Shape shape = a.shape();
  shape.back() = static_cast<int64_t>(index.size());
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  if (out.numel() == 0) {
    return out;
  }
  const Tensor src = a.contiguous();
  const int64_t outer = src.numel() / len;
  if (a.is_cuda()) {
    cuda_ops::gather_index(src, outer, len, 1, index, out);
    return out;
  }
  switch (dtype_size(a.dtype())) {
    case 1:
      gather_last_host(outer, len, src.data<uint8_t>(), index, out.data<uint8_t>());
      break;
    case 4:
      gather_last_host(outer, len, reinterpret_cast<const uint32_t*>(src.bytes().data()), index,
                       reinterpret_cast<uint32_t*>(out.mutable_bytes().data()));
      break;
    default:
      gather_last_host(outer, len, reinterpret_cast<const uint64_t*>(src.bytes().data()), index,
                       reinterpret_cast<uint64_t*>(out.mutable_bytes().data()));
      break;
  }
  return out;
}

}  // namespace veil::core
