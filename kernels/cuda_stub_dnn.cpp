// Compiled instead of kernels/cuda/dnn.cpp when VEIL_WITH_CUDA resolves to OFF.
#include <string>

#include "kernels/cuda_backend.h"
#include "kernels/cuda_dnn.h"

namespace veil::kernels::cuda {

namespace {
[[noreturn]] void not_compiled(const char* op) {
  throw NotCompiledError(std::string("[cuda::") + op +
                         "] veil was built without CUDA; reconfigure with -DVEIL_WITH_CUDA=ON "
                         "(needs nvcc) to use cuDNN");
}
}  // namespace

bool dnn_available() {
  return false;
}

void dnn_conv2d(const ConvGeometry& /*g*/,
                const double* /*x*/,
                const double* /*w*/,
                double* /*y*/,
                int /*device*/) {
  not_compiled("dnn_conv2d");
}

void dnn_conv2d_input_grad(const ConvGeometry& /*g*/,
                           const double* /*w*/,
                           const double* /*dy*/,
                           double* /*dx*/,
                           int /*device*/) {
  not_compiled("dnn_conv2d_input_grad");
}

void dnn_conv2d_weight_grad(const ConvGeometry& /*g*/,
                            const double* /*x*/,
                            const double* /*dy*/,
                            double* /*dw*/,
                            int /*device*/) {
  not_compiled("dnn_conv2d_weight_grad");
}

}  // namespace veil::kernels::cuda
