#pragma once
// Cache-blocked CPU matrix multiply on raw pointers: the ring Z_2^64 (uint64 arithmetic mod 2^64),
// float64 and float32. Single-threaded on the block it is given; callers (core::matmul) split the
// output into blocks and run them on several threads.
//
// Design (the BLIS/GotoBLAS scheme): B is packed into KC x NR column panels and A into MR x KC row
// panels, both contiguous and 64-byte aligned, in per-thread scratch; a register-blocked
// microkernel multiplies one A panel by one B panel into an MR x NR tile of C held in registers.
// Loops, outer to inner: N by NC, K by KC (pack B), M by MC (pack A), N by NR, M by MR.
// The microkernel is chosen at run time: AVX-512 (vpmullq for the ring, FMA for floats) when the
// CPU has AVX512F+AVX512DQ, else a portable C++ kernel. All kernels give bit-identical ring
// results.

#include <cstdint>

namespace veil::kernels::cpu {

/// Instruction set of the GEMM microkernels.
enum class GemmIsa : uint8_t {
  kAuto,      ///< the best one this CPU supports
  kPortable,  ///< plain C++ (whatever the compiler's baseline target vectorises)
  kAvx512,    ///< AVX512F + AVX512DQ
};

/// True when `isa` can run on this CPU (kAuto and kPortable always can). Never throws.
bool gemm_isa_supported(GemmIsa isa);

/// The ISA that kAuto resolves to on this CPU (kAvx512 or kPortable). Never throws.
GemmIsa gemm_best_isa();

/// "avx512", "portable" (kAuto is resolved first). Never throws.
const char* gemm_isa_name(GemmIsa isa);

/// Ring GEMM mod 2^64: C[i, j] = sum_p A[i, p] * B[p, j] (accumulate: C[i, j] += ...).
///
/// Shapes: A [m, k] with element (i, p) at a[i * a_rs + p * a_cs]; B [k, n] with element (p, j) at
/// b[p * b_rs + j * b_cs]; C [m, n] row-major with row stride ldc >= n (element (i, j) at
/// c[i * ldc + j]). Strides are in elements and may be anything >= 0 (transposed or broadcast views
/// need no copy). C must not overlap A or B. m, n or k may be 0 (k = 0 stores zeros unless
/// accumulate). Cost: m * n * k multiply-adds plus packing (k * n + m * k * ceil(n / NC) copies).
/// Thread-safe: scratch buffers are thread-local.
/// Errors: throws veil::Error when `isa` is not supported by this CPU.
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
               GemmIsa isa = GemmIsa::kAuto);

/// Float64 GEMM with the same layout and semantics as ring_gemm. The summation order (and FMA
/// use) differs from a naive loop: results agree within about k * eps * sum_p |A[i, p] B[p, j]|.
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
              GemmIsa isa = GemmIsa::kAuto);

/// Float32 GEMM with the same layout and semantics as ring_gemm (blocked, portable microkernel).
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
              GemmIsa isa = GemmIsa::kAuto);

}  // namespace veil::kernels::cpu
