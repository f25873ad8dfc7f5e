// Compiled instead of kernels/cuda/ring_gemm.cu when VEIL_WITH_CUDA resolves to OFF: every GPU GEMM
// throws NotCompiledError naming the CMake option.
#include <string>

#include "kernels/cuda_backend.h"
#include "kernels/cuda_gemm.h"
#include "kernels/error.h"

namespace veil::kernels::cuda {

namespace {

[[noreturn]] void not_compiled(const char* op) {
  throw NotCompiledError(std::string("[cuda::") + op +
                         "] veil was built without CUDA; reconfigure with -DVEIL_WITH_CUDA=ON "
                         "(needs nvcc)");
}

}  // namespace

void ring_gemm(int64_t, int64_t, int64_t, const uint64_t*, const uint64_t*, uint64_t*) {
  not_compiled("ring_gemm");
}

void ring_gemm_ex(RingGemmAlgo,
                  int64_t,
                  int64_t,
                  int64_t,
                  const uint64_t*,
                  int64_t,
                  bool,
                  const uint64_t*,
                  int64_t,
                  bool,
                  uint64_t*,
                  int64_t,
                  int) {
  not_compiled("ring_gemm");
}

RingGemmAlgo ring_gemm_effective_algo(int) {
  not_compiled("ring_gemm");
}

void float_gemm(int,
                bool,
                int64_t,
                int64_t,
                int64_t,
                const void*,
                int64_t,
                bool,
                const void*,
                int64_t,
                bool,
                void*,
                int64_t,
                int) {
  not_compiled("float_gemm");
}

void limb_f64_ring_gemm(
    int64_t, int64_t, int64_t, const uint64_t*, const uint64_t*, uint64_t*, int) {
  not_compiled("limb_f64_ring_gemm");
}

std::vector<double> time_gpu_ms(int, int, int, const std::function<void()>&) {
  not_compiled("time_gpu_ms");
}

}  // namespace veil::kernels::cuda
