#pragma once
// Elementwise kernels over Tensors with numpy broadcasting, as templates so that every layer can
// write fused elementwise steps (e.g. a protocol epilogue) without temporaries. Contiguous inputs
// of equal shape take a flat, multithreaded loop; others go through a strided index walk.

#include <algorithm>
#include <array>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"

namespace veil::core {

/// Broadcast shape of a and b (numpy rules). Throws ValueError naming `op` when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

namespace detail {
constexpr int64_t kElementwiseGrain = 1 << 15;

// Visits every element of `shape` in row-major order, giving offsets into up to 3 strided
// operands (strides already broadcast to `shape`).
template <std::size_t K, class F>
void strided_walk(const Shape& shape,
                  const std::array<const Shape*, K>& strides,
                  std::array<int64_t, K> off,
                  F&& f) {
  const int64_t n = shape_numel(shape);
  if (n == 0) {
    return;
  }
  const std::size_t nd = shape.size();
  if (nd == 0) {
    f(int64_t{0}, off);
    return;
  }
  std::vector<int64_t> idx(nd, 0);
  const int64_t inner = shape[nd - 1];
  for (int64_t i = 0; i < n; i += inner) {
    std::array<int64_t, K> o = off;
    for (int64_t j = 0; j < inner; ++j) {
      f(i + j, o);
      for (std::size_t k = 0; k < K; ++k) {
        o[k] += (*strides[k])[nd - 1];
      }
    }
    for (std::size_t d = nd - 1; d-- > 0;) {
      for (std::size_t k = 0; k < K; ++k) {
        off[k] += (*strides[k])[d];
      }
      if (++idx[d] < shape[d]) {
        break;
      }
      for (std::size_t k = 0; k < K; ++k) {
        off[k] -= (*strides[k])[d] * shape[d];
      }
      idx[d] = 0;
    }
  }
}
}  // namespace detail

/// out[i] = f(x[i]) with output element type Out. x has element type In.
template <class Out, class In, class F>
Tensor map(const Tensor& x, F f) {
  Tensor out = Tensor::empty(x.shape(), dtype_of<Out>());
  Out* o = out.data<Out>();
  if (x.is_contiguous()) {
    const In* p = x.data<In>();
    parallel_for(0, x.numel(), detail::kElementwiseGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        o[i] = f(p[i]);
      }
    });
    return out;
  }
  const In* base = x.data<In>() - x.offset();
  detail::strided_walk<1>(
      x.shape(), {&x.strides()}, {x.offset()},
      [&](int64_t i, const std::array<int64_t, 1>& off) { o[i] = f(base[off[0]]); });
  return out;
}

/// out[i] = f(a[i], b[i]) with broadcasting; a: A elements, b: B elements, out: Out elements.
template <class Out, class A, class B, class F>
Tensor zip(const Tensor& a, const Tensor& b, F f, const char* op = "zip") {
  VEIL_CHECK(a.dtype() == dtype_of<A>() && b.dtype() == dtype_of<B>(),
             "[{}] expected element types ({}, {}), got ({}, {})", op, dtype_name(dtype_of<A>()),
             dtype_name(dtype_of<B>()), dtype_name(a.dtype()), dtype_name(b.dtype()));
  const Shape shape =
      a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = Tensor::empty(shape, dtype_of<Out>());
  Out* o = out.data<Out>();
  if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
    const A* pa = a.data<A>();
    const B* pb = b.data<B>();
    parallel_for(0, out.numel(), detail::kElementwiseGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        o[i] = f(pa[i], pb[i]);
      }
    });
    return out;
  }
  const Tensor ea = a.expand(shape);
  const Tensor eb = b.expand(shape);
  const A* ba = a.data<A>() - a.offset();
  const B* bb = b.data<B>() - b.offset();
  detail::strided_walk<2>(
      shape, {&ea.strides(), &eb.strides()}, {ea.offset(), eb.offset()},
      [&](int64_t i, const std::array<int64_t, 2>& off) { o[i] = f(ba[off[0]], bb[off[1]]); });
  return out;
}

/// In place: x[i] = f(x[i], y[i]); y broadcasts to x's shape; x must be contiguous.
template <class X, class Y, class F>
void zip_(Tensor& x, const Tensor& y, F f, const char* op = "zip_") {
  VEIL_CHECK(x.is_contiguous(), "[{}] in-place target must be contiguous, got {}", op, x.str());
  VEIL_CHECK(x.dtype() == dtype_of<X>() && y.dtype() == dtype_of<Y>(),
             "[{}] expected element types ({}, {}), got ({}, {})", op, dtype_name(dtype_of<X>()),
             dtype_name(dtype_of<Y>()), dtype_name(x.dtype()), dtype_name(y.dtype()));
  X* px = x.data<X>();
  if (x.shape() == y.shape() && y.is_contiguous()) {
    const Y* py = y.data<Y>();
    parallel_for(0, x.numel(), detail::kElementwiseGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        px[i] = f(px[i], py[i]);
      }
    });
    return;
  }
  VEIL_CHECK(broadcast_shapes(x.shape(), y.shape(), op) == x.shape(),
             "[{}] cannot broadcast {} into the in-place target {}", op, shape_str(y.shape()),
             shape_str(x.shape()));
  const Tensor ey = y.expand(x.shape());
  const Y* by = y.data<Y>() - y.offset();
  detail::strided_walk<1>(
      x.shape(), {&ey.strides()}, {ey.offset()},
      [&](int64_t i, const std::array<int64_t, 1>& off) { px[i] = f(px[i], by[off[0]]); });
}

}  // namespace veil::core
