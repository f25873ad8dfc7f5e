// Compiled instead of kernels/cuda/circuit.cu when VEIL_WITH_CUDA resolves to OFF: the GPU circuit
// kernels throw NotCompiledError naming the CMake option.
#include <string>

#include "kernels/cuda_circuit.h"
#include "kernels/error.h"

namespace veil::kernels::cuda {

namespace {
[[noreturn]] void not_compiled(const char* op) {
  throw NotCompiledError(std::string("[cuda::") + op +
                         "] veil was built without CUDA; reconfigure with -DVEIL_WITH_CUDA=ON "
                         "(needs nvcc)");
}
}  // namespace

void circuit_local_level(const circuit::Level&,
                         int64_t,
                         const uint64_t*,
                         const uint64_t*,
                         const uint64_t*,
                         int64_t,
                         uint64_t,
                         uint64_t*,
                         uint64_t*,
                         int) {
  not_compiled("circuit_local_level");
}
void circuit_mask(int64_t, int, const uint64_t*, const uint64_t*, int64_t, uint64_t*, int) {
  not_compiled("circuit_mask");
}
void circuit_level(const circuit::Level&,
                   int64_t,
                   const uint64_t*,
                   const uint64_t*,
                   int64_t,
                   const uint64_t*,
                   int64_t,
                   uint64_t,
                   uint64_t*,
                   int) {
  not_compiled("circuit_level");
}
void circuit_output(int64_t,
                    bool,
                    const uint64_t*,
                    const uint64_t*,
                    int64_t,
                    const uint64_t*,
                    uint64_t,
                    uint64_t*,
                    int) {
  not_compiled("circuit_output");
}
void circuit_bits(int64_t, const uint64_t*, uint64_t*, int) {
  not_compiled("circuit_bits");
}
void circuit_inject(const circuit::InjectArgs&, int) {
  not_compiled("circuit_inject");
}

}  // namespace veil::kernels::cuda
