// Ring loops compiled once per instruction set (see ring_blocks.h). Only GCC on x86-64 makes the
// clones; elsewhere each function is its plain loop.

#include "kernels/cpu/ring_blocks.h"

#include "kernels/cuda/elementwise_ops.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VEIL_RING_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define VEIL_RING_CLONES
#endif

namespace veil::kernels::cpu {

VEIL_RING_CLONES void ring_sub(int64_t n, const uint64_t* x, const uint64_t* y, uint64_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = x[i] - y[i];
  }
}

VEIL_RING_CLONES void ring_add(int64_t n, const uint64_t* x, const uint64_t* y, uint64_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = x[i] + y[i];
  }
}

VEIL_RING_CLONES void ring_mul(int64_t n, const uint64_t* x, const uint64_t* y, uint64_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = x[i] * y[i];
  }
}

// One loop per (first, truncating) case, so that each vectorises without a branch inside.
VEIL_RING_CLONES void beaver_output(int64_t n,
                                    bool first,
                                    const uint64_t* e,
                                    const uint64_t* d,
                                    const uint64_t* a,
                                    const uint64_t* b,
                                    const uint64_t* c,
                                    int trunc_bits,
                                    uint64_t* __restrict z) {
  namespace ops = kernels::cuda::ops;
  if (trunc_bits <= 0) {
    if (first) {
      for (int64_t i = 0; i < n; ++i) {
        z[i] = ops::beaver_elem(true, e[i], d[i], a[i], b[i], c[i], 0);
      }
    } else {
      for (int64_t i = 0; i < n; ++i) {
        z[i] = ops::beaver_elem(false, e[i], d[i], a[i], b[i], c[i], 0);
      }
    }
    return;
  }
  if (first) {
    for (int64_t i = 0; i < n; ++i) {
      z[i] = ops::beaver_elem(true, e[i], d[i], a[i], b[i], c[i], trunc_bits);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      z[i] = ops::beaver_elem(false, e[i], d[i], a[i], b[i], c[i], trunc_bits);
    }
  }
}

}  // namespace veil::kernels::cpu
