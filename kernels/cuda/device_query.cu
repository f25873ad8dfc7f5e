// Device query compiled with nvcc when VEIL_WITH_CUDA is on. Uses the runtime API only (never the
// driver library), so binaries start on machines without a GPU or driver.
#include <cuda_runtime.h>

#include "kernels/cuda_backend.h"
#include "kernels/error.h"

namespace veil::kernels::cuda {

bool compiled() {
  return true;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

void ring_gemm(int64_t, int64_t, int64_t, const uint64_t*, const uint64_t*, uint64_t*) {
  throw NotCompiledError(
      "[cuda::ring_gemm] the CUDA ring kernels are not implemented in this version of veil; "
      "use Device::kCPU");
}

}  // namespace veil::kernels::cuda
