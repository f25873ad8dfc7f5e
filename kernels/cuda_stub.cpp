// Compiled instead of kernels/cuda/* when VEIL_WITH_CUDA resolves to OFF: no device is visible and
// every other entry point of kernels/cuda_backend.h throws NotCompiledError naming the CMake option
// (ring_gemm's stub is kernels/cuda_stub_gemm.cpp).
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/cuda_backend.h"
#include "kernels/error.h"

namespace veil::kernels::cuda {
namespace {

[[noreturn]] void not_compiled(const char* op) {
  throw NotCompiledError(std::string("[cuda::") + op +
                         "] this build has no CUDA backend; reconfigure with -DVEIL_WITH_CUDA=ON "
                         "(needs the CUDA toolkit) or use Device::kCPU");
}

}  // namespace

bool compiled() {
  return false;
}

int device_count() {
  return 0;
}

DeviceInfo device_info(int /*device*/) {
  not_compiled("device_info");
}

void synchronize(int /*device*/) {
  not_compiled("synchronize");
}

void* device_alloc(std::size_t /*bytes*/, int /*device*/) {
  not_compiled("device_alloc");
}

void device_free(void* /*ptr*/, int /*device*/) noexcept {}

void* pinned_alloc(std::size_t /*bytes*/) {
  not_compiled("pinned_alloc");
}

void pinned_free(void* /*ptr*/) noexcept {}

void copy_to_device(void* /*dst*/, const void* /*src*/, std::size_t /*bytes*/, int /*device*/) {
  not_compiled("copy_to_device");
}

void copy_to_host(void* /*dst*/, const void* /*src*/, std::size_t /*bytes*/, int /*device*/) {
  not_compiled("copy_to_host");
}

void copy_device_to_device(void* /*dst*/,
                           const void* /*src*/,
                           std::size_t /*bytes*/,
                           int /*device*/) {
  not_compiled("copy_device_to_device");
}

void zero(void* /*dst*/, std::size_t /*bytes*/, int /*device*/) {
  not_compiled("zero");
}

MemoryStats memory_stats(int /*device*/) {
  not_compiled("memory_stats");
}

void binary(BinaryOp /*op*/,
            Elem /*t*/,
            int64_t /*n*/,
            const void* /*a*/,
            const Layout& /*la*/,
            const void* /*b*/,
            const Layout& /*lb*/,
            void* /*out*/,
            int /*device*/) {
  not_compiled("binary");
}

void unary(UnaryOp /*op*/,
           Elem /*t*/,
           int64_t /*n*/,
           const void* /*a*/,
           const Layout& /*la*/,
           void* /*out*/,
           const UnaryParams& /*p*/,
           int /*device*/) {
  not_compiled("unary");
}

void copy_strided(Elem /*t*/,
                  int64_t /*n*/,
                  const void* /*src*/,
                  const Layout& /*ls*/,
                  void* /*dst*/,
                  int /*device*/) {
  not_compiled("copy_strided");
}

void add_into_strided(Elem /*t*/,
                      int64_t /*n*/,
                      const void* /*src*/,
                      const Layout& /*ls*/,
                      void* /*dst*/,
                      const Layout& /*ld*/,
                      int /*device*/) {
  not_compiled("add_into_strided");
}

void gather_index(Elem /*t*/,
                  int64_t /*outer*/,
                  int64_t /*src_len*/,
                  int64_t /*inner*/,
                  const void* /*src*/,
                  int64_t /*n_index*/,
                  const int64_t* /*index*/,
                  void* /*dst*/,
                  int /*device*/) {
  not_compiled("gather_index");
}

void cast(
    Elem /*from*/, Elem /*to*/, int64_t /*n*/, const void* /*src*/, void* /*dst*/, int /*device*/) {
  not_compiled("cast");
}

void fill(Elem /*t*/, int64_t /*n*/, uint64_t /*value_bits*/, void* /*dst*/, int /*device*/) {
  not_compiled("fill");
}

void encode_fixed(Elem /*from*/,
                  int64_t /*n*/,
                  const void* /*src*/,
                  int /*frac_bits*/,
                  uint64_t* /*dst*/,
                  int /*device*/) {
  not_compiled("encode_fixed");
}

void decode_fixed(int64_t /*n*/,
                  const uint64_t* /*src*/,
                  int /*frac_bits*/,
                  Elem /*to*/,
                  void* /*dst*/,
                  int /*device*/) {
  not_compiled("decode_fixed");
}

void reduce(ReduceOp /*op*/,
            Elem /*t*/,
            int64_t /*outer*/,
            int64_t /*len*/,
            int64_t /*inner*/,
            const void* /*src*/,
            void* /*dst*/,
            int /*device*/) {
  not_compiled("reduce");
}

void ring_mask(int64_t /*n*/,
               const uint64_t* /*x*/,
               const uint64_t* /*a*/,
               uint64_t* /*out*/,
               int /*device*/) {
  not_compiled("ring_mask");
}

void beaver_output(int64_t /*n*/,
                   bool /*first*/,
                   const uint64_t* /*e*/,
                   const uint64_t* /*d*/,
                   const uint64_t* /*a*/,
                   const uint64_t* /*b*/,
                   const uint64_t* /*c*/,
                   int /*trunc_bits*/,
                   uint64_t* /*z*/,
                   int /*device*/) {
  not_compiled("beaver_output");
}

}  // namespace veil::kernels::cuda
