// Compiled instead of kernels/cuda/* when VEIL_WITH_CUDA resolves to OFF.
#include "kernels/cuda_backend.h"
#include "kernels/error.h"

namespace veil::kernels::cuda {

bool compiled() {
  return false;
}

int device_count() {
  return 0;
}

void ring_gemm(int64_t, int64_t, int64_t, const uint64_t*, const uint64_t*, uint64_t*) {
  throw NotCompiledError(
      "[cuda::ring_gemm] veil was built without CUDA; reconfigure with -DVEIL_WITH_CUDA=ON "
      "(needs nvcc)");
}

}  // namespace veil::kernels::cuda
