// Matrix product on Tensors: validation, dtype dispatch and the split over threads. The blocked,
// single-threaded kernels live in kernels/cpu/gemm.
#include <algorithm>

#include "core/cuda_dispatch.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "kernels/cpu/gemm.h"

namespace veil::core {
namespace {

// Rows (or columns) per unit of parallel work: a multiple of every microkernel's MR (NR).
constexpr int64_t kRowUnit = 32;
constexpr int64_t kColUnit = 48;
// Below this many multiply-adds per chunk, splitting costs more than it saves.
constexpr int64_t kMinChunkMacs = int64_t{1} << 19;

template <class T>
void gemm_kernel(int64_t m,
                 int64_t n,
                 int64_t k,
                 const T* a,
                 int64_t a_rs,
                 int64_t a_cs,
                 const T* b,
                 int64_t b_rs,
                 int64_t b_cs,
                 T* c,
                 int64_t ldc) {
  if constexpr (std::is_same_v<T, uint64_t>) {
    kernels::cpu::ring_gemm(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, false);
  } else if constexpr (std::is_same_v<T, double>) {
    kernels::cpu::gemm_f64(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, false);
  } else {
    kernels::cpu::gemm_f32(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, false);
  }
}

// out [m, n] = a [m, k] @ b [k, n], split over threads along M (or along N when M is small).
template <class T>
void matmul_into(const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t m = a.size(0);
  const int64_t k = a.size(1);
  const int64_t n = b.size(1);
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* pc = out.data<T>();
  const int64_t a_rs = a.strides()[0];
  const int64_t a_cs = a.strides()[1];
  const int64_t b_rs = b.strides()[0];
  const int64_t b_cs = b.strides()[1];
  const int64_t threads = num_threads();
  const int64_t k_eff = std::max<int64_t>(k, 1);
  if (threads <= 1 || m * n * k_eff < 2 * kMinChunkMacs) {
    gemm_kernel<T>(m, n, k, pa, a_rs, a_cs, pb, b_rs, b_cs, pc, n);
    return;
  }
  const bool split_rows = m >= n || m >= kRowUnit * threads;
  if (split_rows) {
    const int64_t units = (m + kRowUnit - 1) / kRowUnit;
    const int64_t grain = std::max<int64_t>(1, kMinChunkMacs / (kRowUnit * n * k_eff));
    parallel_for(0, units, grain, [&](int64_t lo, int64_t hi) {
      const int64_t r0 = lo * kRowUnit;
      const int64_t r1 = std::min(m, hi * kRowUnit);
      gemm_kernel<T>(r1 - r0, n, k, pa + r0 * a_rs, a_rs, a_cs, pb, b_rs, b_cs, pc + r0 * n, n);
    });
  } else {
    const int64_t units = (n + kColUnit - 1) / kColUnit;
    const int64_t grain = std::max<int64_t>(1, kMinChunkMacs / (kColUnit * m * k_eff));
    parallel_for(0, units, grain, [&](int64_t lo, int64_t hi) {
      const int64_t c0 = lo * kColUnit;
      const int64_t c1 = std::min(n, hi * kColUnit);
      gemm_kernel<T>(m, c1 - c0, k, pa, a_rs, a_cs, pb + c0 * b_cs, b_rs, b_cs, pc + c0, n);
    });
  }
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  VEIL_CHECK(a.defined() && b.defined(), "[matmul] expected defined tensors, got {} and {}",
             a.str(), b.str());
  VEIL_CHECK(a.dim() == 2 && b.dim() == 2, "[matmul] expected 2-D tensors, got a {} and b {}",
             shape_str(a.shape()), shape_str(b.shape()));
  VEIL_CHECK(a.size(1) == b.size(0), "[matmul] inner dimensions differ: a is {}, b is {}",
             shape_str(a.shape()), shape_str(b.shape()));
  VEIL_CHECK(a.dtype() == b.dtype(), "[matmul] expected equal dtypes, got a {} and b {}",
             dtype_name(a.dtype()), dtype_name(b.dtype()));
  const bool cuda = same_device(a, b, "matmul");
  if (cuda) {
    VEIL_CHECK(
        a.dtype() == DType::kRing64 || a.dtype() == DType::kFloat64 || a.dtype() == DType::kFloat32,
        "[matmul] expected float64, float32 or ring64 tensors, got {}", dtype_name(a.dtype()));
    return cuda_ops::matmul(a, b);
  }
  Tensor out = Tensor::empty({a.size(0), b.size(1)}, a.dtype(), a.device());
  switch (a.dtype()) {
    case DType::kRing64:
      matmul_into<uint64_t>(a, b, out);
      break;
    case DType::kFloat64:
      matmul_into<double>(a, b, out);
      break;
    case DType::kFloat32:
      matmul_into<float>(a, b, out);
      break;
    default:
      throw ValueError(fmt::format("[matmul] expected float64, float32 or ring64 tensors, got {}",
                                   dtype_name(a.dtype())));
  }
  return out;
}

}  // namespace veil::core
