// Placeholder: naive matmul; replaced by the blocked, multithreaded kernels (kernels/cpu/gemm).
#include "core/ops.h"

namespace veil::core {

Tensor matmul(const Tensor& a, const Tensor& b) {
  VEIL_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
             "[matmul] expected [m, k] @ [k, n], got {} @ {}", shape_str(a.shape()),
             shape_str(b.shape()));
  VEIL_CHECK(a.dtype() == b.dtype(), "[matmul] expected equal dtypes, got {} and {}",
             dtype_name(a.dtype()), dtype_name(b.dtype()));
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  Tensor ac = a.contiguous(), bc = b.contiguous();
  Tensor out = Tensor::zeros({m, n}, a.dtype());
  auto run = [&]<class T>() {
    const T* pa = ac.data<T>();
    const T* pb = bc.data<T>();
    T* po = out.data<T>();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < n; ++j) po[i * n + j] += pa[i * k + p] * pb[p * n + j];
  };
  if (a.dtype() == DType::kRing64) run.operator()<uint64_t>();
  else if (a.dtype() == DType::kFloat64) run.operator()<double>();
  else run.operator()<float>();
  return out;
}

}  // namespace veil::core
