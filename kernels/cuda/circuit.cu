// GPU kernels of the masked-open boolean circuits (kernels/cuda_circuit.h). Each kernel is a
// grid-stride loop over blocks of 64 elements (or over elements) around the VEIL_HD functions of
// kernels/bit_circuit_eval.h, which the CPU path runs too.
#include <cstdint>
#include <string>

#include <cuda_runtime.h>

#include "kernels/bit_circuit_eval.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda_circuit.h"
#include "kernels/error.h"

namespace veil::kernels::cuda {

namespace {

using detail::check_launch;
using detail::n_str;
using detail::use_device;

// The circuit kernels keep ~1.6 KB of planes and temporaries per thread in local memory: smaller
// thread blocks than the elementwise kernels.
constexpr int kCircuitBlock = 128;

unsigned circuit_grid(int64_t work, int device) {
  const int64_t need = (work + kCircuitBlock - 1) / kCircuitBlock;
  const int64_t cap = static_cast<int64_t>(detail::sm_count(device)) * 16;
  const int64_t g = need < cap ? need : cap;
  return static_cast<unsigned>(g < 1 ? 1 : g);
}

__device__ inline int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t thread_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

__global__ void local_level_kernel(circuit::Level l0,
                                   int64_t n,
                                   int64_t blocks,
                                   const uint64_t* c,
                                   const uint64_t* r_planes,
                                   const uint64_t* products,
                                   int64_t product_stride,
                                   uint64_t constant,
                                   uint64_t* wires,
                                   uint64_t* c_top) {
  for (int64_t b = thread_index(); b < blocks; b += thread_stride()) {
    circuit::local_level_block(l0, n, b, c, r_planes + 64 * b, products + product_stride * b,
                               constant, wires + b * l0.out_width, c_top + b);
  }
}

__global__ void mask_kernel(int64_t blocks,
                            int w,
                            const uint64_t* wires,
                            const uint64_t* masks,
                            int64_t mask_stride,
                            uint64_t* out) {
  const int64_t total = blocks * w;
  for (int64_t i = thread_index(); i < total; i += thread_stride()) {
    out[i] = circuit::masked_wire(i, w, wires, masks, mask_stride);
  }
}

__global__ void level_kernel(circuit::Level level,
                             int64_t blocks,
                             const uint64_t* opened,
                             const uint64_t* masks,
                             int64_t mask_stride,
                             const uint64_t* products,
                             int64_t product_stride,
                             uint64_t constant,
                             uint64_t* out) {
  for (int64_t b = thread_index(); b < blocks; b += thread_stride()) {
    circuit::evaluate_level(level, opened + b * level.in_width, masks + b * mask_stride,
                            products + b * product_stride, constant, out + b * level.out_width);
  }
}

__global__ void output_kernel(int64_t blocks,
                              bool less_than_zero,
                              const uint64_t* wires,
                              const uint64_t* r_top,
                              int64_t r_stride,
                              const uint64_t* c_top,
                              uint64_t constant,
                              uint64_t* out) {
  for (int64_t b = thread_index(); b < blocks; b += thread_stride()) {
    out[b] =
        circuit::output_plane(less_than_zero, wires[b], less_than_zero ? r_top[b * r_stride] : 0,
                              less_than_zero ? c_top[b] : 0, constant);
  }
}

__global__ void bits_kernel(int64_t n, const uint64_t* planes, uint64_t* out) {
  for (int64_t e = thread_index(); e < n; e += thread_stride()) {
    out[e] = circuit::plane_bit(planes, e);
  }
}

__global__ void inject_kernel(circuit::InjectArgs a) {
  for (int64_t e = thread_index(); e < a.n; e += thread_stride()) {
    circuit::inject_element(a, e);
  }
}

void check_sizes(const char* op, int64_t count, int width = 1) {
  if (count < 0 || width < 0 || width > 64) {
    throw Error(std::string("[cuda::") + op +
                "] expected a non-negative size and 0..64 planes, got " + n_str(count) +
                " width=" + std::to_string(width));
  }
}

}  // namespace

void circuit_local_level(const circuit::Level& l0,
                         int64_t n,
                         const uint64_t* c,
                         const uint64_t* r_planes,
                         const uint64_t* products,
                         int64_t product_stride,
                         uint64_t constant,
                         uint64_t* wires,
                         uint64_t* c_top,
                         int device) {
  check_sizes("circuit_local_level", n, l0.out_width);
  if (n == 0) {
    return;
  }
  use_device(device, "circuit_local_level");
  const int64_t blocks = (n + 63) / 64;
  local_level_kernel<<<circuit_grid(blocks, device), kCircuitBlock, 0, cudaStreamPerThread>>>(
      l0, n, blocks, c, r_planes, products, product_stride, constant, wires, c_top);
  check_launch("circuit_local_level", n_str(n));
}

void circuit_mask(int64_t blocks,
                  int w,
                  const uint64_t* wires,
                  const uint64_t* masks,
                  int64_t mask_stride,
                  uint64_t* out,
                  int device) {
  check_sizes("circuit_mask", blocks, w);
  if (blocks == 0 || w == 0) {
    return;
  }
  use_device(device, "circuit_mask");
  mask_kernel<<<detail::grid_for(blocks * w, device), detail::kBlock, 0, cudaStreamPerThread>>>(
      blocks, w, wires, masks, mask_stride, out);
  check_launch("circuit_mask", n_str(blocks * w));
}

void circuit_level(const circuit::Level& level,
                   int64_t blocks,
                   const uint64_t* opened,
                   const uint64_t* masks,
                   int64_t mask_stride,
                   const uint64_t* products,
                   int64_t product_stride,
                   uint64_t constant,
                   uint64_t* out,
                   int device) {
  check_sizes("circuit_level", blocks, level.in_width);
  if (blocks == 0) {
    return;
  }
  use_device(device, "circuit_level");
  level_kernel<<<circuit_grid(blocks, device), kCircuitBlock, 0, cudaStreamPerThread>>>(
      level, blocks, opened, masks, mask_stride, products, product_stride, constant, out);
  check_launch("circuit_level", n_str(blocks));
}

void circuit_output(int64_t blocks,
                    bool less_than_zero,
                    const uint64_t* wires,
                    const uint64_t* r_top,
                    int64_t r_stride,
                    const uint64_t* c_top,
                    uint64_t constant,
                    uint64_t* out,
                    int device) {
  check_sizes("circuit_output", blocks);
  if (blocks == 0) {
    return;
  }
  use_device(device, "circuit_output");
  output_kernel<<<detail::grid_for(blocks, device), detail::kBlock, 0, cudaStreamPerThread>>>(
      blocks, less_than_zero, wires, r_top, r_stride, c_top, constant, out);
  check_launch("circuit_output", n_str(blocks));
}

void circuit_bits(int64_t n, const uint64_t* planes, uint64_t* out, int device) {
  check_sizes("circuit_bits", n);
  if (n == 0) {
    return;
  }
  use_device(device, "circuit_bits");
  bits_kernel<<<detail::grid_for(n, device), detail::kBlock, 0, cudaStreamPerThread>>>(n, planes,
                                                                                       out);
  check_launch("circuit_bits", n_str(n));
}

void circuit_inject(const circuit::InjectArgs& args, int device) {
  check_sizes("circuit_inject", args.n, args.extras);
  if (args.n == 0) {
    return;
  }
  use_device(device, "circuit_inject");
  inject_kernel<<<detail::grid_for(args.n, device), detail::kBlock, 0, cudaStreamPerThread>>>(args);
  check_launch("circuit_inject", n_str(args.n));
}

}  // namespace veil::kernels::cuda
