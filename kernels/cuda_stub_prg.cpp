// Compiled instead of kernels/cuda/prg.cu when VEIL_WITH_CUDA resolves to OFF: the GPU keystream
// throws NotCompiledError naming the CMake option.
#include <cstdint>
#include <string>

#include "kernels/cuda_prg.h"
#include "kernels/error.h"

namespace veil::kernels::cuda {

void aes128_ctr_keystream(const uint8_t*, uint64_t, uint8_t*, int64_t, int) {
  throw NotCompiledError(
      "[cuda::aes128_ctr_keystream] veil was built without CUDA; reconfigure with "
      "-DVEIL_WITH_CUDA=ON (needs nvcc)");
}

}  // namespace veil::kernels::cuda
