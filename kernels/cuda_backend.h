#pragma once
// CUDA kernel backend entry points. With VEIL_WITH_CUDA off (or before the CUDA kernels exist) the
// functions that need kernels throw NotCompiledError; the device query always answers.

#include <cstdint>

namespace veil::kernels::cuda {

/// True when this build contains the CUDA backend (VEIL_WITH_CUDA resolved to ON).
bool compiled();

/// Number of CUDA devices visible to this process; 0 when none or when CUDA is not compiled in.
/// Never throws (a missing driver counts as no device).
int device_count();

/// Ring GEMM mod 2^64 on the GPU: C[m,n] = A[m,k] * B[k,n] (row-major, device pointers).
/// Throws NotCompiledError in this build: the CUDA ring kernels arrive with the GPU issue.
void ring_gemm(int64_t m, int64_t n, int64_t k, const uint64_t* a, const uint64_t* b, uint64_t* c);

}  // namespace veil::kernels::cuda
