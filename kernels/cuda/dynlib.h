#pragma once
// CUDA libraries opened at first use. cuBLAS, cuBLASLt and NCCL are large (libcublasLt alone is
// ~540 MB): linking them would add ~150 ms to the start of every veil program, GPU or not. The
// kernels that need them open the library once with dlopen and look their functions up by name;
// the declarations (and so the function types) still come from the libraries' own headers.

#include <initializer_list>
#include <string>

#include "kernels/cuda_backend.h"

namespace veil::kernels::cuda::detail {

/// Handle of the first of `sonames` that dlopen accepts (opened once per process, never closed).
/// Throws CudaError "[cuda::<what>] cannot load <sonames>: <dlerror>" when none loads.
void* open_library(std::initializer_list<const char*> sonames, const char* what);

/// Address of `name` in `lib`; throws CudaError naming the symbol and `what` when absent.
void* find_symbol(void* lib, const char* name, const char* what);

/// Typed lookup: auto f = symbol<decltype(cublasCreate_v2)>(lib, "cublasCreate_v2", "gemm").
template <class F>
F* symbol(void* lib, const char* name, const char* what) {
  return reinterpret_cast<F*>(find_symbol(lib, name, what));
}

/// "libcublas.so.13" style names for this toolkit's major version.
std::string versioned_soname(const char* base);

}  // namespace veil::kernels::cuda::detail
