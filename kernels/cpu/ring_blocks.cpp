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

// One loop: `first` and `trunc_bits` are loop invariants, so the compiler unswitches it into a
// branch-free vectorised loop per case.
VEIL_RING_CLONES void beaver_output(int64_t n,
                                    bool first,
                                    const uint64_t* e,
                                    const uint64_t* d,
                                    const uint64_t* a,
                                    const uint64_t* b,
                                    const uint64_t* c,
                                    int trunc_bits,
                                    uint64_t* __restrict z) {
  for (int64_t i = 0; i < n; ++i) {
    z[i] = kernels::cuda::ops::beaver_elem(first, e[i], d[i], a[i], b[i], c[i], trunc_bits);
  }
}

namespace {

// f(e, opened bit of e) for e in [lo, hi), one plane word (64 elements) at a time, so that the
// inner loop shifts one word by a vector of lane offsets instead of gathering words.
template <class F>
inline __attribute__((always_inline)) void for_each_opened(const uint64_t* planes,
                                                           int64_t lo,
                                                           int64_t hi,
                                                           F&& f) {
  for (int64_t w0 = lo & ~int64_t{63}; w0 < hi; w0 += 64) {
    const uint64_t word = planes[w0 >> 6];
    const int64_t k0 = w0 < lo ? lo - w0 : 0;
    const int64_t k1 = hi - w0 < 64 ? hi - w0 : 64;
    for (int64_t k = k0; k < k1; ++k) {
      f(w0 + k, (word >> k) & 1U);
    }
  }
}

}  // namespace

// One pass per output (the bit, then each product from it), each vectorisable.
VEIL_RING_CLONES void circuit_inject(const circuit::InjectArgs& a, int64_t lo, int64_t hi) {
  namespace kc = kernels::circuit;
  const uint64_t* planes = a.e_planes;
  const uint64_t* __restrict s = a.s;
  uint64_t* __restrict bit = a.bit;
  if (a.first) {
    for_each_opened(planes, lo, hi,
                    [&](int64_t e, uint64_t ev) { bit[e] = kc::inject_bit(ev, s[e], true); });
  } else {
    for_each_opened(planes, lo, hi,
                    [&](int64_t e, uint64_t ev) { bit[e] = kc::inject_bit(ev, s[e], false); });
  }
  if (a.c != nullptr) {
    const uint64_t* __restrict c = a.c;
    const uint64_t* __restrict r = a.r;
    const uint64_t* __restrict rs = a.rs;
    uint64_t* __restrict out = a.x_times_bit;
    for_each_opened(planes, lo, hi, [&](int64_t e, uint64_t ev) {
      out[e] = kc::inject_times_masked(ev, c[e], bit[e], r[e], rs[e]);
    });
  }
  for (int j = 0; j < a.extras; ++j) {
    const int64_t o = j * a.n;
    const uint64_t* __restrict d = a.d + o;
    const uint64_t* __restrict am = a.a + o;
    const uint64_t* __restrict as = a.as + o;
    uint64_t* __restrict out = a.product + o;
    for_each_opened(planes, lo, hi, [&](int64_t e, uint64_t ev) {
      out[e] = kc::inject_product(ev, d[e], bit[e], am[e], as[e]);
    });
  }
}

}  // namespace veil::kernels::cpu
