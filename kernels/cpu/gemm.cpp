// Cache-blocked GEMM for the ring Z_2^64, float64 and float32 (see gemm.h for the scheme).
//
// Blocking (measured on Sapphire Rapids, L1d 48 KiB, L2 2 MiB per core): the packed MC x KC block
// of A stays in L2 and each MR x KC panel of it is streamed through L1 by the microkernel; the
// KC x NR micro-panel of B is reused across the MC / MR row panels; the packed KC x NC panel of B
// lives in L2/L3. The ring microkernel is bound by vpmullq (3 uops) + vpaddq on ports 0 and 5:
// 8 multiply-adds per 2 cycles.

#include "kernels/cpu/gemm.h"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>

#include "kernels/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VEIL_GEMM_X86 1
#else
#define VEIL_GEMM_X86 0
#endif

namespace veil::kernels::cpu {
namespace {

// ---- microkernel table -------------------------------------------------------------------------

// Computes the MR x NR tile  C (+)= Apanel * Bpanel  where Apanel is MR x kc stored column by
// column (a[p * MR + i]) and Bpanel is kc x NR stored row by row (b[p * NR + j]); C row stride ldc.
template <class T>
using MicroFn = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, bool add);

template <class T>
struct Micro {
  MicroFn<T> fn;
  int64_t mr;  // rows of the register tile
  int64_t nr;  // columns of the register tile
  int64_t mc;  // rows of the packed A block (L2)
  int64_t kc;  // depth of a packed panel (L1: kc * nr * sizeof(T) bytes of B)
  int64_t nc;  // columns of the packed B panel
};

constexpr int64_t kMaxTile = 32 * 32;  // max mr * nr of any microkernel (edge-tile scratch)

// ---- portable microkernels ---------------------------------------------------------------------

template <class T, int MR, int NR>
void micro_portable(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, bool add) {
  T acc[static_cast<std::size_t>(MR)][static_cast<std::size_t>(NR)] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a[i];
      for (int j = 0; j < NR; ++j) {
        acc[i][j] += ai * b[j];
      }
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < MR; ++i) {
    T* ci = c + i * ldc;
    for (int j = 0; j < NR; ++j) {
      ci[j] = add ? static_cast<T>(ci[j] + acc[i][j]) : acc[i][j];
    }
  }
}

// ---- AVX-512 microkernels ----------------------------------------------------------------------

#if VEIL_GEMM_X86

// Ring: MR x (8 * NV) tile in MR * NV zmm accumulators; vpmullq (AVX512DQ) gives the low 64 bits
// of each product, i.e. the product mod 2^64.
template <int MR, int NV>
__attribute__((target("avx512f,avx512dq"))) void micro_ring_avx512(
    int64_t kc, const uint64_t* a, const uint64_t* b, uint64_t* c, int64_t ldc, bool add) {
  __m512i acc[static_cast<std::size_t>(MR)][static_cast<std::size_t>(NV)];
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 8 * v), _MM_HINT_T0);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) {
      acc[i][v] = _mm512_setzero_si512();
    }
  }
  for (int64_t p = 0; p < kc; ++p) {
    __m512i bv[static_cast<std::size_t>(NV)];
    for (int v = 0; v < NV; ++v) {
      bv[v] = _mm512_load_si512(b + 8 * v);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512i ai = _mm512_set1_epi64(static_cast<long long>(a[i]));
      for (int v = 0; v < NV; ++v) {
        acc[i][v] = _mm512_add_epi64(acc[i][v], _mm512_mullo_epi64(ai, bv[v]));
      }
    }
    a += MR;
    b += 8 * NV;
  }
  for (int i = 0; i < MR; ++i) {
    uint64_t* ci = c + i * ldc;
    for (int v = 0; v < NV; ++v) {
      __m512i r = acc[i][v];
      if (add) {
        r = _mm512_add_epi64(r, _mm512_loadu_si512(ci + 8 * v));
      }
      _mm512_storeu_si512(ci + 8 * v, r);
    }
  }
}

// Float64: MR x (8 * NV) tile, vfmadd231pd.
template <int MR, int NV>
__attribute__((target("avx512f"))) void micro_f64_avx512(
    int64_t kc, const double* a, const double* b, double* c, int64_t ldc, bool add) {
  __m512d acc[static_cast<std::size_t>(MR)][static_cast<std::size_t>(NV)];
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 8 * v), _MM_HINT_T0);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) {
      acc[i][v] = _mm512_setzero_pd();
    }
  }
  for (int64_t p = 0; p < kc; ++p) {
    __m512d bv[static_cast<std::size_t>(NV)];
    for (int v = 0; v < NV; ++v) {
      bv[v] = _mm512_load_pd(b + 8 * v);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512d ai = _mm512_set1_pd(a[i]);
      for (int v = 0; v < NV; ++v) {
        acc[i][v] = _mm512_fmadd_pd(ai, bv[v], acc[i][v]);
      }
    }
    a += MR;
    b += 8 * NV;
  }
  for (int i = 0; i < MR; ++i) {
    double* ci = c + i * ldc;
    for (int v = 0; v < NV; ++v) {
      __m512d r = acc[i][v];
      if (add) {
        r = _mm512_add_pd(r, _mm512_loadu_pd(ci + 8 * v));
      }
      _mm512_storeu_pd(ci + 8 * v, r);
    }
  }
}

// Float32: MR x (16 * NV) tile, vfmadd231ps.
template <int MR, int NV>
__attribute__((target("avx512f"))) void micro_f32_avx512(
    int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool add) {
  __m512 acc[static_cast<std::size_t>(MR)][static_cast<std::size_t>(NV)];
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * v), _MM_HINT_T0);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) {
      acc[i][v] = _mm512_setzero_ps();
    }
  }
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[static_cast<std::size_t>(NV)];
    for (int v = 0; v < NV; ++v) {
      bv[v] = _mm512_load_ps(b + 16 * v);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      for (int v = 0; v < NV; ++v) {
        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
      }
    }
    a += MR;
    b += 16 * NV;
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    for (int v = 0; v < NV; ++v) {
      __m512 r = acc[i][v];
      if (add) {
        r = _mm512_add_ps(r, _mm512_loadu_ps(ci + 16 * v));
      }
      _mm512_storeu_ps(ci + 16 * v, r);
    }
  }
}

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  return has;
}

#else

bool cpu_has_avx512() {
  return false;
}

#endif

GemmIsa resolve(GemmIsa isa, const char* op) {
  if (isa == GemmIsa::kAuto) {
    return gemm_best_isa();
  }
  if (!gemm_isa_supported(isa)) {
    throw Error(std::string("[") + op + "] expected an instruction set this CPU supports, got " +
                gemm_isa_name(isa));
  }
  return isa;
}

// Block sizes, tuned on Sapphire Rapids (1 core: ring 8x16 tile ~10.5 GMAC/s of an 11.5 GMAC/s
// vpmullq-bound peak; float64 8x24 tile ~37 GFMA/s of 46): mc * kc * sizeof(T) = 768 KiB of A in
// L2; kc = 512 amortises the C tile update, the KC x NR micro-panel of B streams from L1/L2.
template <class T>
Micro<T> select_micro(GemmIsa isa) {
#if VEIL_GEMM_X86
  if (isa == GemmIsa::kAvx512) {
    if constexpr (std::is_same_v<T, uint64_t>) {
      return {&micro_ring_avx512<8, 2>, 8, 16, 192, 512, 2048};
    } else if constexpr (std::is_same_v<T, double>) {
      return {&micro_f64_avx512<8, 3>, 8, 24, 192, 512, 2048};
    } else {
      return {&micro_f32_avx512<8, 3>, 8, 48, 192, 512, 2048};
    }
  }
#endif
  if constexpr (std::is_same_v<T, uint64_t>) {
    return {&micro_portable<uint64_t, 4, 4>, 4, 4, 192, 256, 2048};
  } else if constexpr (std::is_same_v<T, double>) {
    return {&micro_portable<double, 4, 8>, 4, 8, 192, 256, 2048};
  } else {
    return {&micro_portable<float, 4, 16>, 4, 16, 192, 256, 2048};
  }
}

// ---- per-thread packing scratch ----------------------------------------------------------------

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }  // NOLINT(cppcoreguidelines-no-malloc)

  // At least `bytes` bytes, 64-byte aligned; contents undefined.
  void* get(std::size_t bytes) {
    if (bytes > capacity_) {
      std::free(data_);  // NOLINT(cppcoreguidelines-no-malloc)
      data_ = nullptr;
      capacity_ = 0;
      const std::size_t rounded = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, rounded);
      if (data_ == nullptr) {
        throw std::bad_alloc();
      }
      capacity_ = rounded;
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

struct Scratch {
  AlignedBuffer a;
  AlignedBuffer b;
};

Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

// ---- packing -----------------------------------------------------------------------------------

// Packs the mb x kb block of A (element (i, p) at a[i * rs + p * cs]) into ceil(mb / mr) panels of
// mr x kb, each stored column by column; rows past mb are zero.
template <class T>
void pack_a(int64_t mb, int64_t kb, const T* a, int64_t rs, int64_t cs, int64_t mr, T* dst) {
  for (int64_t ir = 0; ir < mb; ir += mr) {
    const int64_t me = std::min(mr, mb - ir);
    const T* src = a + ir * rs;
    if (cs == 1 && rs != 1) {
      // rows are contiguous: read along rows
      for (int64_t i = 0; i < me; ++i) {
        const T* row = src + i * rs;
        for (int64_t p = 0; p < kb; ++p) {
          dst[p * mr + i] = row[p];
        }
      }
      for (int64_t i = me; i < mr; ++i) {
        for (int64_t p = 0; p < kb; ++p) {
          dst[p * mr + i] = T{0};
        }
      }
    } else {
      for (int64_t p = 0; p < kb; ++p) {
        const T* col = src + p * cs;
        T* d = dst + p * mr;
        for (int64_t i = 0; i < me; ++i) {
          d[i] = col[i * rs];
        }
        for (int64_t i = me; i < mr; ++i) {
          d[i] = T{0};
        }
      }
    }
    dst += mr * kb;
  }
}

// Packs the kb x nb block of B (element (p, j) at b[p * rs + j * cs]) into ceil(nb / nr) panels of
// kb x nr, each stored row by row; columns past nb are zero.
template <class T>
void pack_b(int64_t kb, int64_t nb, const T* b, int64_t rs, int64_t cs, int64_t nr, T* dst) {
  for (int64_t jr = 0; jr < nb; jr += nr) {
    const int64_t ne = std::min(nr, nb - jr);
    const T* src = b + jr * cs;
    if (rs == 1 && cs != 1) {
      // columns are contiguous (B is a transposed view): read along columns
      for (int64_t j = 0; j < ne; ++j) {
        const T* col = src + j * cs;
        for (int64_t p = 0; p < kb; ++p) {
          dst[p * nr + j] = col[p];
        }
      }
      for (int64_t j = ne; j < nr; ++j) {
        for (int64_t p = 0; p < kb; ++p) {
          dst[p * nr + j] = T{0};
        }
      }
    } else {
      for (int64_t p = 0; p < kb; ++p) {
        const T* row = src + p * rs;
        T* d = dst + p * nr;
        if (cs == 1) {
          std::memcpy(d, row, static_cast<std::size_t>(ne) * sizeof(T));
        } else {
          for (int64_t j = 0; j < ne; ++j) {
            d[j] = row[j * cs];
          }
        }
        for (int64_t j = ne; j < nr; ++j) {
          d[j] = T{0};
        }
      }
    }
    dst += nr * kb;
  }
}

// ---- driver ------------------------------------------------------------------------------------

template <class T>
void gemm_blocked(const Micro<T>& uk,
                  int64_t m,
                  int64_t n,
                  int64_t k,
                  const T* a,
                  int64_t a_rs,
                  int64_t a_cs,
                  const T* b,
                  int64_t b_rs,
                  int64_t b_cs,
                  T* c,
                  int64_t ldc,
                  bool accumulate) {
  if (m <= 0 || n <= 0) {
    return;
  }
  if (k <= 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < m; ++i) {
        std::fill_n(c + i * ldc, n, T{0});
      }
    }
    return;
  }
  const int64_t mr = uk.mr;
  const int64_t nr = uk.nr;
  // Block extents are whole numbers of register tiles, so packed panels never exceed the scratch.
  const int64_t mc = std::max(mr, uk.mc / mr * mr);
  const int64_t nc = std::max(nr, uk.nc / nr * nr);
  const int64_t kc = std::max<int64_t>(1, uk.kc);
  const int64_t kc_max = std::min(kc, k);
  const int64_t mc_max = std::min(mc, (m + mr - 1) / mr * mr);
  const int64_t nc_max = std::min(nc, (n + nr - 1) / nr * nr);
  Scratch& scratch = thread_scratch();
  T* ap = static_cast<T*>(scratch.a.get(static_cast<std::size_t>(mc_max * kc_max) * sizeof(T)));
  T* bp = static_cast<T*>(scratch.b.get(static_cast<std::size_t>(kc_max * nc_max) * sizeof(T)));
  alignas(64) T tile[kMaxTile];

  for (int64_t jc = 0; jc < n; jc += nc) {
    const int64_t nb = std::min(nc, n - jc);
    for (int64_t pc = 0; pc < k; pc += kc) {
      const int64_t kb = std::min(kc, k - pc);
      const bool add = accumulate || pc > 0;
      pack_b(kb, nb, b + pc * b_rs + jc * b_cs, b_rs, b_cs, nr, bp);
      for (int64_t ic = 0; ic < m; ic += mc) {
        const int64_t mb = std::min(mc, m - ic);
        pack_a(mb, kb, a + ic * a_rs + pc * a_cs, a_rs, a_cs, mr, ap);
        for (int64_t jr = 0; jr < nb; jr += nr) {
          const int64_t ne = std::min(nr, nb - jr);
          const T* b_panel = bp + jr * kb;
          for (int64_t ir = 0; ir < mb; ir += mr) {
            const int64_t me = std::min(mr, mb - ir);
            const T* a_panel = ap + ir * kb;
            T* c_tile = c + (ic + ir) * ldc + jc + jr;
            if (me == mr && ne == nr) {
              uk.fn(kb, a_panel, b_panel, c_tile, ldc, add);
            } else {
              uk.fn(kb, a_panel, b_panel, tile, nr, false);
              for (int64_t i = 0; i < me; ++i) {
                T* ci = c_tile + i * ldc;
                const T* ti = tile + i * nr;
                for (int64_t j = 0; j < ne; ++j) {
                  ci[j] = add ? static_cast<T>(ci[j] + ti[j]) : ti[j];
                }
              }
            }
          }
        }
      }
    }
  }
}

template <class T>
void gemm_dispatch(const char* op,
                   int64_t m,
                   int64_t n,
                   int64_t k,
                   const T* a,
                   int64_t a_rs,
                   int64_t a_cs,
                   const T* b,
                   int64_t b_rs,
                   int64_t b_cs,
                   T* c,
                   int64_t ldc,
                   bool accumulate,
                   GemmIsa isa) {
  const Micro<T> uk = select_micro<T>(resolve(isa, op));
  gemm_blocked<T>(uk, m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, accumulate);
}

}  // namespace

bool gemm_isa_supported(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::kAuto:
    case GemmIsa::kPortable:
      return true;
    case GemmIsa::kAvx512:
      return cpu_has_avx512();
  }
  return false;
}

GemmIsa gemm_best_isa() {
  return cpu_has_avx512() ? GemmIsa::kAvx512 : GemmIsa::kPortable;
}

const char* gemm_isa_name(GemmIsa isa) {
  if (isa == GemmIsa::kAuto) {
    isa = gemm_best_isa();
  }
  return isa == GemmIsa::kAvx512 ? "avx512" : "portable";
}

void ring_gemm(int64_t m,
               int64_t n,
               int64_t k,
               const uint64_t* a,
               int64_t a_rs,
               int64_t a_cs,
               const uint64_t* b,
               int64_t b_rs,
               int64_t b_cs,
               uint64_t* c,
               int64_t ldc,
               bool accumulate,
               GemmIsa isa) {
  gemm_dispatch<uint64_t>("ring_gemm", m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, accumulate,
                          isa);
}

void gemm_f64(int64_t m,
              int64_t n,
              int64_t k,
              const double* a,
              int64_t a_rs,
              int64_t a_cs,
              const double* b,
              int64_t b_rs,
              int64_t b_cs,
              double* c,
              int64_t ldc,
              bool accumulate,
              GemmIsa isa) {
  gemm_dispatch<double>("gemm_f64", m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, accumulate, isa);
}

void gemm_f32(int64_t m,
              int64_t n,
              int64_t k,
              const float* a,
              int64_t a_rs,
              int64_t a_cs,
              const float* b,
              int64_t b_rs,
              int64_t b_cs,
              float* c,
              int64_t ldc,
              bool accumulate,
              GemmIsa isa) {
  gemm_dispatch<float>("gemm_f32", m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, accumulate, isa);
}

}  // namespace veil::kernels::cpu
