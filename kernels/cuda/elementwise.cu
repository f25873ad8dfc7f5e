// Elementwise, cast, fixed-point, reduction and protocol-epilogue kernels of the CUDA backend
// (kernels/cuda_backend.h). The per-element arithmetic is kernels/cuda/elementwise_ops.h (shared
// with the CPU tests); this file holds the launch plumbing only.
//
// Every kernel is a grid-stride loop on the calling thread's per-thread stream. Dense operands
// (a strided view that walks memory contiguously after dropping size-1 dimensions and merging
// mergeable ones) take a fast path that moves 16 bytes per load/store when all pointers are
// 16-byte aligned; other views decompose the row-major index into offsets (<= kMaxDims
// divisions). Outputs may alias an input exactly (same pointer, dense), never partially.
// Kernels are templated on the element type only; the op is a run-time argument whose
// switch is uniform across a warp (the kernels are memory bound).
#include <cstdint>
#include <string>
#include <type_traits>

#include <cuda_runtime.h>

#include "kernels/cuda/arg_checks.h"
#include "kernels/cuda/elementwise_ops.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda_backend.h"
#include "kernels/error.h"

namespace veil::kernels::cuda {
namespace {

using detail::check_launch;
using detail::grid_for;
using detail::kBlock;
using detail::n_str;
using detail::use_device;

// ---- helpers ------------------------------------------------------------------------------------

/// K elements of T moved as one aligned load/store.
template <class T, int K>
struct alignas(sizeof(T) * K) Pack {
  T v[K];
};

__device__ __forceinline__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t thread_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

bool aligned(const void* p, std::size_t a) {
  return reinterpret_cast<std::uintptr_t>(p) % a == 0;
}

using checks::elem_name;
using checks::unsupported;

/// Calls f(T{}) with T the C++ type of t.
template <class F>
void dispatch(Elem t, F&& f) {
  switch (t) {
    case Elem::kF32:
      f(float{});
      return;
    case Elem::kF64:
      f(double{});
      return;
    case Elem::kI64:
      f(int64_t{});
      return;
    case Elem::kU64:
      f(uint64_t{});
      return;
    case Elem::kU8:
      f(uint8_t{});
      return;
  }
}

/// Calls f(U{}) with U an unsigned type of t's size (for bit copies).
template <class F>
void dispatch_bits(Elem t, F&& f) {
  switch (ops::elem_size(t)) {
    case 1:
      f(uint8_t{});
      return;
    case 4:
      f(uint32_t{});
      return;
    default:
      f(uint64_t{});
      return;
  }
}

// ---- functors -----------------------------------------------------------------------------------

template <class T>
struct UnaryF {
  UnaryOp op;
  UnaryParams p;
  __device__ T operator()(T x) const { return ops::unary_elem<T>(op, x, p); }
};

template <class T>
struct IdentityF {
  __device__ T operator()(T x) const { return x; }
};

template <class To, class From>
struct CastF {
  __device__ To operator()(From x) const { return ops::cast_elem<To, From>(x); }
};

template <class From>
struct EncodeF {
  double scale;
  __device__ uint64_t operator()(From x) const {
    return ops::encode_elem(static_cast<double>(x), scale);
  }
};

template <class To>
struct DecodeF {
  double inv_scale;
  __device__ To operator()(uint64_t v) const {
    return static_cast<To>(ops::decode_elem(v, inv_scale));
  }
};

// ---- elementwise kernels ------------------------------------------------------------------------

/// out[i] = f(a[i]) for dense a and out; `vec` when both are aligned to their K-element packs.
template <class Out, class In, class F>
__global__ void map_dense(int64_t n, const In* a, Out* out, F f, bool vec) {
  constexpr int K = 16 / (sizeof(In) > sizeof(Out) ? sizeof(In) : sizeof(Out));
  const int64_t tid = thread_index();
  const int64_t step = thread_stride();
  int64_t head = 0;
  if (vec) {
    const int64_t nv = n / K;
    const auto* pa = reinterpret_cast<const Pack<In, K>*>(a);
    auto* po = reinterpret_cast<Pack<Out, K>*>(out);
    for (int64_t i = tid; i < nv; i += step) {
      const Pack<In, K> x = pa[i];
      Pack<Out, K> r;
#pragma unroll
      for (int k = 0; k < K; ++k) {
        r.v[k] = f(x.v[k]);
      }
      po[i] = r;
    }
    head = nv * K;
  }
  for (int64_t i = head + tid; i < n; i += step) {
    out[i] = f(a[i]);
  }
}

/// out[i] = f(a[offset of i in la]) for a strided view la and dense out.
template <class Out, class In, class F>
__global__ void map_strided(int64_t n, const In* a, Layout la, Out* out, F f) {
  for (int64_t i = thread_index(); i < n; i += thread_stride()) {
    out[i] = f(a[ops::layout_offset(la, i)]);
  }
}

template <class T>
__global__ void zip_dense(int64_t n, const T* a, const T* b, T* out, BinaryOp op, bool vec) {
  constexpr int K = 16 / sizeof(T);
  const int64_t tid = thread_index();
  const int64_t step = thread_stride();
  int64_t head = 0;
  if (vec) {
    const int64_t nv = n / K;
    const auto* pa = reinterpret_cast<const Pack<T, K>*>(a);
    const auto* pb = reinterpret_cast<const Pack<T, K>*>(b);
    auto* po = reinterpret_cast<Pack<T, K>*>(out);
    for (int64_t i = tid; i < nv; i += step) {
      const Pack<T, K> x = pa[i];
      const Pack<T, K> y = pb[i];
      Pack<T, K> r;
#pragma unroll
      for (int k = 0; k < K; ++k) {
        r.v[k] = ops::binary_elem<T>(op, x.v[k], y.v[k]);
      }
      po[i] = r;
    }
    head = nv * K;
  }
  for (int64_t i = head + tid; i < n; i += step) {
    out[i] = ops::binary_elem<T>(op, a[i], b[i]);
  }
}

template <class T>
__global__ void zip_strided(
    int64_t n, const T* a, Layout la, const T* b, Layout lb, T* out, BinaryOp op) {
  for (int64_t i = thread_index(); i < n; i += thread_stride()) {
    int64_t oa = 0;
    int64_t ob = 0;
    ops::layout_offset2(la, lb, i, oa, ob);
    out[i] = ops::binary_elem<T>(op, a[oa], b[ob]);
  }
}

/// dst[ld(i)] += src[ls(i)]; ld maps no two indices to one element (checked by the caller).
template <class T>
__global__ void add_into_kernel(int64_t n, const T* src, Layout ls, T* dst, Layout ld) {
  for (int64_t i = thread_index(); i < n; i += thread_stride()) {
    int64_t os = 0;
    int64_t od = 0;
    ops::layout_offset2(ls, ld, i, os, od);
    dst[od] = ops::binary_elem<T>(BinaryOp::kAdd, dst[od], src[os]);
  }
}

/// dst[o, i, c] = index[i] >= 0 ? src[o, index[i], c] : 0, one thread per output element.
template <class U>
__global__ void gather_index_kernel(int64_t total,
                                    int64_t src_len,
                                    int64_t inner,
                                    const U* src,
                                    int64_t n_index,
                                    const int64_t* index,
                                    U* dst) {
  for (int64_t e = thread_index(); e < total; e += thread_stride()) {
    const int64_t r = e / inner;
    const int64_t c = e - r * inner;
    const int64_t o = r / n_index;
    const int64_t j = index[r - o * n_index];
    dst[e] = j >= 0 ? src[(o * src_len + j) * inner + c] : U{0};
  }
}

template <class T>
__global__ void fill_kernel(int64_t n, T value, T* out, bool vec) {
  constexpr int K = 16 / sizeof(T);
  const int64_t tid = thread_index();
  const int64_t step = thread_stride();
  int64_t head = 0;
  if (vec) {
    const int64_t nv = n / K;
    Pack<T, K> r;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      r.v[k] = value;
    }
    auto* po = reinterpret_cast<Pack<T, K>*>(out);
    for (int64_t i = tid; i < nv; i += step) {
      po[i] = r;
    }
    head = nv * K;
  }
  for (int64_t i = head + tid; i < n; i += step) {
    out[i] = value;
  }
}

__global__ void beaver_kernel(int64_t n,
                              bool first,
                              const uint64_t* e,
                              const uint64_t* d,
                              const uint64_t* a,
                              const uint64_t* b,
                              const uint64_t* c,
                              int trunc_bits,
                              uint64_t* z,
                              bool vec) {
  using P = Pack<uint64_t, 2>;
  const int64_t tid = thread_index();
  const int64_t step = thread_stride();
  int64_t head = 0;
  if (vec) {
    const int64_t nv = n / 2;
    for (int64_t i = tid; i < nv; i += step) {
      const P ve = reinterpret_cast<const P*>(e)[i];
      const P vd = reinterpret_cast<const P*>(d)[i];
      const P va = reinterpret_cast<const P*>(a)[i];
      const P vb = reinterpret_cast<const P*>(b)[i];
      const P vc = reinterpret_cast<const P*>(c)[i];
      P r;
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        r.v[k] = ops::beaver_elem(first, ve.v[k], vd.v[k], va.v[k], vb.v[k], vc.v[k], trunc_bits);
      }
      reinterpret_cast<P*>(z)[i] = r;
    }
    head = nv * 2;
  }
  for (int64_t i = head + tid; i < n; i += step) {
    z[i] = ops::beaver_elem(first, e[i], d[i], a[i], b[i], c[i], trunc_bits);
  }
}

// ---- reductions ---------------------------------------------------------------------------------

/// Running state of one reduction: the sum, or the best value and its index along len.
template <class T>
struct Acc {
  T v;
  int64_t i;
};

/// Folds element (x, j) into acc; elements arrive in increasing j within one thread.
template <class T>
__device__ __forceinline__ void fold(ReduceOp op, Acc<T>& acc, T x, int64_t j) {
  if (op == ReduceOp::kSum) {
    acc.v = ops::binary_elem<T>(BinaryOp::kAdd, acc.v, x);
  } else if (acc.i < 0 || ops::greater(x, acc.v)) {
    acc.v = x;
    acc.i = j;
  }
}

/// Combines two partial states; for max/argmax the lower index wins ties (first maximum).
template <class T>
__device__ __forceinline__ void combine(ReduceOp op, Acc<T>& acc, const Acc<T>& o) {
  if (op == ReduceOp::kSum) {
    acc.v = ops::binary_elem<T>(BinaryOp::kAdd, acc.v, o.v);
  } else if (o.i >= 0 && (acc.i < 0 || ops::greater(o.v, acc.v) || (o.v == acc.v && o.i < acc.i))) {
    acc = o;
  }
}

template <class T>
__device__ __forceinline__ void store(ReduceOp op, const Acc<T>& acc, void* dst, int64_t o) {
  if (op == ReduceOp::kArgmax) {
    static_cast<int64_t*>(dst)[o] = acc.i < 0 ? 0 : acc.i;
  } else {
    static_cast<T*>(dst)[o] = acc.v;
  }
}

/// One thread per output (o = i * inner + k), looping over len in order (the CPU's order).
template <class T>
__global__ void reduce_columns(
    ReduceOp op, int64_t outer, int64_t len, int64_t inner, const T* src, void* dst) {
  const int64_t outputs = outer * inner;
  for (int64_t o = thread_index(); o < outputs; o += thread_stride()) {
    const int64_t i = o / inner;
    const int64_t k = o - i * inner;
    const T* p = src + i * len * inner + k;
    Acc<T> acc{T{0}, -1};
    for (int64_t j = 0; j < len; ++j) {
      fold(op, acc, p[j * inner], j);
    }
    store(op, acc, dst, o);
  }
}

/// One block per output: thread t folds j = t, t + kBlock, ..., then a fixed shared-memory tree
/// combines the kBlock partial states (deterministic for a given len).
template <class T>
__global__ void reduce_rows(
    ReduceOp op, int64_t outer, int64_t len, int64_t inner, const T* src, void* dst) {
  __shared__ T sv[kBlock];
  __shared__ int64_t si[kBlock];
  const int64_t outputs = outer * inner;
  const int t = static_cast<int>(threadIdx.x);
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    const int64_t i = o / inner;
    const int64_t k = o - i * inner;
    const T* p = src + i * len * inner + k;
    Acc<T> acc{T{0}, -1};
    for (int64_t j = t; j < len; j += kBlock) {
      fold(op, acc, p[j * inner], j);
    }
    sv[t] = acc.v;
    si[t] = acc.i;
    __syncthreads();
    for (int w = kBlock / 2; w > 0; w /= 2) {
      if (t < w) {
        Acc<T> mine{sv[t], si[t]};
        const Acc<T> other{sv[t + w], si[t + w]};
        combine(op, mine, other);
        sv[t] = mine.v;
        si[t] = mine.i;
      }
      __syncthreads();
    }
    if (t == 0) {
      store(op, Acc<T>{sv[0], si[0]}, dst, o);
    }
    __syncthreads();
  }
}

// ---- host-side walks ----------------------------------------------------------------------------

/// Launches out[i] = f(a[la(i)]) over n elements: dense (vectorized when aligned) or strided.
template <class Out, class In, class F>
void launch_map(const char* op, int64_t n, const In* a, Layout la, Out* out, F f, int device) {
  ops::coalesce(&la, 1);
  if (ops::is_dense(la)) {
    const In* pa = a + la.offset;
    constexpr std::size_t K = 16 / (sizeof(In) > sizeof(Out) ? sizeof(In) : sizeof(Out));
    const bool vec = aligned(pa, K * sizeof(In)) && aligned(out, K * sizeof(Out));
    const int64_t work = vec ? n / static_cast<int64_t>(K) + 1 : n;
    map_dense<Out, In, F>
        <<<grid_for(work, device), kBlock, 0, cudaStreamPerThread>>>(n, pa, out, f, vec);
  } else {
    map_strided<Out, In, F>
        <<<grid_for(n, device), kBlock, 0, cudaStreamPerThread>>>(n, a, la, out, f);
  }
  check_launch(op, n_str(n));
}

template <class Out, class In, class F>
void launch_dense(const char* op, int64_t n, const void* src, void* dst, F f, int device) {
  Layout l;
  l.ndim = 1;
  l.shape[0] = n;
  l.stride[0] = 1;
  launch_map<Out, In, F>(op, n, static_cast<const In*>(src), l, static_cast<Out*>(dst), f, device);
}

template <class From>
void cast_from(Elem to, int64_t n, const void* src, void* dst, int device) {
  dispatch(to, [&](auto tag) {
    using To = decltype(tag);
    launch_dense<To, From>("cast", n, src, dst, CastF<To, From>{}, device);
  });
}

}  // namespace

// ---- elementwise --------------------------------------------------------------------------------

void binary(BinaryOp op,
            Elem t,
            int64_t n,
            const void* a,
            const Layout& la,
            const void* b,
            const Layout& lb,
            void* out,
            int device) {
  if (!ops::binary_supported(op, t)) {
    unsupported("binary", static_cast<int>(op), t);
  }
  if (n <= 0) {
    return;
  }
  use_device(device, "binary");
  Layout ls[2] = {la, lb};
  ops::coalesce(ls, 2);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    T* po = static_cast<T*>(out);
    if (ops::is_dense(ls[0]) && ops::is_dense(ls[1])) {
      pa += ls[0].offset;
      pb += ls[1].offset;
      const bool vec = aligned(pa, 16) && aligned(pb, 16) && aligned(po, 16);
      const int64_t work = vec ? n / static_cast<int64_t>(16 / sizeof(T)) + 1 : n;
      zip_dense<T>
          <<<grid_for(work, device), kBlock, 0, cudaStreamPerThread>>>(n, pa, pb, po, op, vec);
    } else {
      zip_strided<T><<<grid_for(n, device), kBlock, 0, cudaStreamPerThread>>>(n, pa, ls[0], pb,
                                                                              ls[1], po, op);
    }
  });
  check_launch("binary", n_str(n));
}

void unary(UnaryOp op,
           Elem t,
           int64_t n,
           const void* a,
           const Layout& la,
           void* out,
           const UnaryParams& p,
           int device) {
  if (!ops::unary_supported(op, t)) {
    unsupported("unary", static_cast<int>(op), t);
  }
  checks::unary_bits(op, p);
  if (n <= 0) {
    return;
  }
  use_device(device, "unary");
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    launch_map<T, T>("unary", n, static_cast<const T*>(a), la, static_cast<T*>(out),
                     UnaryF<T>{op, p}, device);
  });
}

void copy_strided(Elem t, int64_t n, const void* src, const Layout& ls, void* dst, int device) {
  if (n <= 0) {
    return;
  }
  use_device(device, "copy_strided");
  dispatch_bits(t, [&](auto tag) {
    using U = decltype(tag);
    launch_map<U, U>("copy_strided", n, static_cast<const U*>(src), ls, static_cast<U*>(dst),
                     IdentityF<U>{}, device);
  });
}

void add_into_strided(
    Elem t, int64_t n, const void* src, const Layout& ls, void* dst, const Layout& ld, int device) {
  if (!ops::binary_supported(BinaryOp::kAdd, t)) {
    unsupported("add_into_strided", static_cast<int>(BinaryOp::kAdd), t);
  }
  if (n <= 0) {
    return;
  }
  use_device(device, "add_into_strided");
  Layout l[2] = {ls, ld};
  ops::coalesce(l, 2);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    add_into_kernel<T><<<grid_for(n, device), kBlock, 0, cudaStreamPerThread>>>(
        n, static_cast<const T*>(src), l[0], static_cast<T*>(dst), l[1]);
  });
  check_launch("add_into_strided", n_str(n));
}

void gather_index(Elem t,
                  int64_t outer,
                  int64_t src_len,
                  int64_t inner,
                  const void* src,
                  int64_t n_index,
                  const int64_t* index,
                  void* dst,
                  int device) {
  const int64_t total = outer * n_index * inner;
  if (total <= 0) {
    return;
  }
  use_device(device, "gather_index");
  dispatch_bits(t, [&](auto tag) {
    using U = decltype(tag);
    gather_index_kernel<U><<<grid_for(total, device), kBlock, 0, cudaStreamPerThread>>>(
        total, src_len, inner, static_cast<const U*>(src), n_index, index, static_cast<U*>(dst));
  });
  check_launch("gather_index", n_str(total));
}

void cast(Elem from, Elem to, int64_t n, const void* src, void* dst, int device) {
  if (n <= 0) {
    return;
  }
  use_device(device, "cast");
  if (from == to) {
    copy_device_to_device(dst, src, static_cast<std::size_t>(n) * ops::elem_size(from), device);
    return;
  }
  dispatch(from, [&](auto tag) {
    using From = decltype(tag);
    cast_from<From>(to, n, src, dst, device);
  });
}

void fill(Elem t, int64_t n, uint64_t value_bits, void* dst, int device) {
  if (n <= 0) {
    return;
  }
  use_device(device, "fill");
  const bool vec = aligned(dst, 16);
  dispatch_bits(t, [&](auto tag) {
    using U = decltype(tag);
    const int64_t work = vec ? n / static_cast<int64_t>(16 / sizeof(U)) + 1 : n;
    fill_kernel<U><<<grid_for(work, device), kBlock, 0, cudaStreamPerThread>>>(
        n, static_cast<U>(value_bits), static_cast<U*>(dst), vec);
  });
  check_launch("fill", n_str(n));
}

void encode_fixed(Elem from, int64_t n, const void* src, int frac_bits, uint64_t* dst, int device) {
  if (!ops::is_float(from)) {
    throw Error(std::string("[cuda::encode_fixed] expected float32 or float64 input, got ") +
                elem_name(from));
  }
  checks::frac_bits("encode_fixed", frac_bits);
  if (n <= 0) {
    return;
  }
  use_device(device, "encode_fixed");
  const double scale = static_cast<double>(uint64_t{1} << frac_bits);
  if (from == Elem::kF32) {
    launch_dense<uint64_t, float>("encode_fixed", n, src, dst, EncodeF<float>{scale}, device);
  } else {
    launch_dense<uint64_t, double>("encode_fixed", n, src, dst, EncodeF<double>{scale}, device);
  }
}

void decode_fixed(int64_t n, const uint64_t* src, int frac_bits, Elem to, void* dst, int device) {
  if (!ops::is_float(to)) {
    throw Error(std::string("[cuda::decode_fixed] expected float32 or float64 output, got ") +
                elem_name(to));
  }
  checks::frac_bits("decode_fixed", frac_bits);
  if (n <= 0) {
    return;
  }
  use_device(device, "decode_fixed");
  const double inv_scale = 1.0 / static_cast<double>(uint64_t{1} << frac_bits);
  if (to == Elem::kF32) {
    launch_dense<float, uint64_t>("decode_fixed", n, src, dst, DecodeF<float>{inv_scale}, device);
  } else {
    launch_dense<double, uint64_t>("decode_fixed", n, src, dst, DecodeF<double>{inv_scale}, device);
  }
}

// ---- reductions ---------------------------------------------------------------------------------

void reduce(ReduceOp op,
            Elem t,
            int64_t outer,
            int64_t len,
            int64_t inner,
            const void* src,
            void* dst,
            int device) {
  if (!ops::reduce_supported(op, t)) {
    unsupported("reduce", static_cast<int>(op), t);
  }
  if (outer < 0 || len < 0 || inner < 0) {
    throw Error("[cuda::reduce] expected non-negative sizes, got [" + std::to_string(outer) + ", " +
                std::to_string(len) + ", " + std::to_string(inner) + "]");
  }
  const int64_t outputs = outer * inner;
  if (outputs == 0) {
    return;
  }
  use_device(device, "reduce");
  // Rows (a block per output) when each output has many terms and there are few outputs or the
  // terms are adjacent in memory; otherwise a thread per output.
  const bool rows = len >= 64 && (inner == 1 || outputs < 4096);
  dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, uint8_t>) {
      return;  // rejected above (reduce_supported)
    } else {
      const T* p = static_cast<const T*>(src);
      if (rows) {
        const int64_t cap = static_cast<int64_t>(detail::sm_count(device)) * 8;
        const auto grid = static_cast<unsigned>(outputs < cap ? outputs : cap);
        reduce_rows<T><<<grid, kBlock, 0, cudaStreamPerThread>>>(op, outer, len, inner, p, dst);
      } else {
        reduce_columns<T><<<grid_for(outputs, device), kBlock, 0, cudaStreamPerThread>>>(
            op, outer, len, inner, p, dst);
      }
    }
  });
  check_launch("reduce", "[" + std::to_string(outer) + ", " + std::to_string(len) + ", " +
                             std::to_string(inner) + "]");
}

// ---- protocol epilogues -------------------------------------------------------------------------

void ring_mask(int64_t n, const uint64_t* x, const uint64_t* a, uint64_t* out, int device) {
  if (n <= 0) {
    return;
  }
  use_device(device, "ring_mask");
  const bool vec = aligned(x, 16) && aligned(a, 16) && aligned(out, 16);
  zip_dense<uint64_t><<<grid_for(vec ? n / 2 + 1 : n, device), kBlock, 0, cudaStreamPerThread>>>(
      n, x, a, out, BinaryOp::kSub, vec);
  check_launch("ring_mask", n_str(n));
}

void beaver_output(int64_t n,
                   bool first,
                   const uint64_t* e,
                   const uint64_t* d,
                   const uint64_t* a,
                   const uint64_t* b,
                   const uint64_t* c,
                   int trunc_bits,
                   uint64_t* z,
                   int device) {
  checks::trunc_bits("beaver_output", trunc_bits);
  if (n <= 0) {
    return;
  }
  use_device(device, "beaver_output");
  const bool vec = aligned(e, 16) && aligned(d, 16) && aligned(a, 16) && aligned(b, 16) &&
                   aligned(c, 16) && aligned(z, 16);
  beaver_kernel<<<grid_for(vec ? n / 2 + 1 : n, device), kBlock, 0, cudaStreamPerThread>>>(
      n, first, e, d, a, b, c, trunc_bits, z, vec);
  check_launch("beaver_output", n_str(n));
}

}  // namespace veil::kernels::cuda
