#pragma once
// GEMMs on the GPU: the ring GEMM mod 2^64 on INT8 tensor cores (the centre of GPU-speed MPC: a
// Beaver matmul is 2 local ring GEMMs per party), its SIMT uint64 reference, and float GEMMs
// through cuBLAS for plaintext work. Device pointers; stream = the calling thread's per-thread
// default stream (kernels/cuda_backend.h). Stub without CUDA: NotCompiledError.
//
// Tensor-core ring GEMM (MPC_REFERENCE.md §5): each uint64 operand is split into 8 signed byte
// digits s_0..s_7 in [-128, 127] with x = sum_i 2^(8i) s_i (mod 2^64). Only digit pairs with
// i + j <= 7 reach the low 64 bits; grouped by diagonal d = i + j they are 8 INT8 GEMMs (int32
// accumulation) along a concatenated K of (d+1) k. Diagonals d <= 3 need exact int32 sums, which
// |s_i s_j| <= 2^14 guarantees for (d+1) * kchunk * 2^14 < 2^31, so k is split into chunks of at
// most kExactK; diagonals d >= 4 only need their low 64 - 8d <= 32 bits, which int32 wrap-around
// keeps. C = sum_d 2^(8d) C_d mod 2^64. Exact for every k.

#include <cstdint>
#include <functional>
#include <vector>

namespace veil::kernels::cuda {

/// Largest k per exact int32 chunk of the low diagonals (4 * 8192 * 2^14 = 2^29 < 2^31).
inline constexpr int64_t kExactK = 8192;

enum class RingGemmAlgo : uint8_t {
  kTensorCore,  ///< INT8 tensor cores through cuBLASLt (compute capability >= 7.5)
  kSimt,        ///< shared-memory tiled uint64 multiply-add kernel (reference and fallback)
};

/// C[m,n] = op(A) op(B) mod 2^64 for row-major device arrays with leading dimensions lda, ldb,
/// ldc (elements); trans_a: A is stored [k, m] (lda >= m), trans_b: B is stored [n, k]. m, n or
/// k == 0 is allowed (k == 0 zeroes C). Throws CudaError on failure, veil::Error "[cuda::ring_gemm]
/// ..." on bad sizes (negative, lda/ldb/ldc too small, null pointers with non-empty sizes).
/// Bit-identical to kernels::cpu::ring_gemm for every input and k.
/// kTensorCore (falls back to kSimt below compute capability 7.5): per k-chunk of kc <= kExactK
/// (kp = kc padded to 16, np = n padded to 4) two digit-split kernels, 8 cuBLASLt INT8 GEMMs of
/// np x m x (d+1) kp (36 m np kp int8 MACs in all) and one combine kernel; stream-ordered
/// workspace from device_alloc of 8 m kp + 8 np kp + 32 m np bytes + 32 MiB (cuBLASLt), e.g.
/// 3 GiB for m = n = k = 8192. cuBLASLt is opened at first use; one handle per (thread, device).
/// kSimt: one kernel, 64x64 output tiles, no workspace.
void ring_gemm_ex(RingGemmAlgo algo,
                  int64_t m,
                  int64_t n,
                  int64_t k,
                  const uint64_t* a,
                  int64_t lda,
                  bool trans_a,
                  const uint64_t* b,
                  int64_t ldb,
                  bool trans_b,
                  uint64_t* c,
                  int64_t ldc,
                  int device);

/// Which algorithm ring_gemm / ring_gemm_ex(kTensorCore) really runs on `device`: kTensorCore when
/// its compute capability is >= 7.5, else kSimt (the fallback). Throws CudaError for a bad device.
RingGemmAlgo ring_gemm_effective_algo(int device);

/// Float GEMM through cuBLAS, row-major: C[m,n] = op(A) op(B) (same conventions as ring_gemm_ex).
/// elem: kF32 or kF64 (kernels/cuda_backend.h Elem as its integer value 0 or 1); tf32 allows
/// TF32 tensor cores for float32.
void float_gemm(int elem,
                bool tf32,
                int64_t m,
                int64_t n,
                int64_t k,
                const void* a,
                int64_t lda,
                bool trans_a,
                const void* b,
                int64_t ldb,
                bool trans_b,
                void* c,
                int64_t ldc,
                int device);

// ---- benchmark support (tools/ cannot include CUDA headers) -------------------------------------

/// CrypTen's GPU ring GEMM, for comparison: each uint64 is split into 4 unsigned 16-bit limbs held
/// as doubles, the 10 limb-pair DGEMMs with i + j <= 3 run through cuBLAS (float_gemm, kF64), and
/// C = sum 2^(16(i+j)) A_i B_j mod 2^64 is accumulated by an elementwise kernel. Row-major
/// contiguous device arrays C[m,n] = A[m,k] B[k,n]. Exact while k 2^32 <= 2^53, i.e. k <= 2^21
/// (ValueError beyond). Workspace: 8 (4 m k + 4 k n + m n) bytes.
void limb_f64_ring_gemm(
    int64_t m, int64_t n, int64_t k, const uint64_t* a, const uint64_t* b, uint64_t* c, int device);

/// Times `fn` (which queues GPU work on the calling thread's stream) with CUDA events: `warmup`
/// untimed calls, then `reps` timed ones; returns each rep's milliseconds. Throws CudaError.
std::vector<double> time_gpu_ms(int device, int warmup, int reps, const std::function<void()>& fn);

}  // namespace veil::kernels::cuda
