#pragma once
// The masked-open boolean circuits on the GPU (crypto/providers/bit_circuit.h,
// crypto/protocols/binary.cpp): a GPU party evaluates its comparisons' circuits where its shares
// are, and only the masked openings travel. Each function runs the per-block arithmetic of
// kernels/bit_circuit_eval.h (the code the CPU path runs) over every block of 64 elements, one
// thread per block (or per element), on the calling thread's per-thread default stream.
//
// Pointers are device pointers, except the Level's program, which must be a device copy too
// (crypto::BitCircuit::program(level, device)). Strides are in uint64 words. blocks == 0 / n == 0
// does nothing. Errors: veil::Error for negative sizes or widths beyond the evaluator's limits
// (checked before any device work); CudaError for a bad device or a failed launch;
// NotCompiledError without CUDA. No data (shares, masks) appears in an error message.
// Cost: memory bound: each kernel reads its inputs and writes its outputs once.
// Security: local computation on this party's shares and on public opened values only.

#include <cstdint>

#include "kernels/bit_circuit_eval.h"

namespace veil::kernels::cuda {

/// Level 0 of a circuit with r (circuit::local_level_block) for the ceil(n / 64) blocks of n
/// elements: c the opened values [n], r_planes the shares of r's bit planes (64 per block,
/// consecutive), products block b's product record at products + b * product_stride; writes
/// l0.out_width wire planes per block into wires and c's top plane per block into c_top.
void circuit_local_level(const circuit::Level& l0,
                         int64_t n,
                         const uint64_t* c,
                         const uint64_t* r_planes,
                         const uint64_t* products,
                         int64_t product_stride,
                         uint64_t constant,
                         uint64_t* wires,
                         uint64_t* c_top,
                         int device);

/// The opening of a masked level: out[b w + i] = wires[b w + i] ^ masks[b mask_stride + i] for
/// i < w, over `blocks` blocks.
void circuit_mask(int64_t blocks,
                  int w,
                  const uint64_t* wires,
                  const uint64_t* masks,
                  int64_t mask_stride,
                  uint64_t* out,
                  int device);

/// A masked level (circuit::evaluate_level) over `blocks` blocks: public inputs opened + b
/// in_width, secret inputs masks + b mask_stride, products + b product_stride; writes out_width
/// planes per block at out + b out_width.
void circuit_level(const circuit::Level& level,
                   int64_t blocks,
                   const uint64_t* opened,
                   const uint64_t* masks,
                   int64_t mask_stride,
                   const uint64_t* products,
                   int64_t product_stride,
                   uint64_t constant,
                   uint64_t* out,
                   int device);

/// The output planes (circuit::output_plane): out[b] from wires[b], r_top[b r_stride] and
/// c_top[b] (r_top, c_top unused unless less_than_zero).
void circuit_output(int64_t blocks,
                    bool less_than_zero,
                    const uint64_t* wires,
                    const uint64_t* r_top,
                    int64_t r_stride,
                    const uint64_t* c_top,
                    uint64_t constant,
                    uint64_t* out,
                    int device);

/// out[e] = bit e of the planes (0 or 1), for e < n.
void circuit_bits(int64_t n, const uint64_t* planes, uint64_t* out, int device);

/// The bit-injection outputs (circuit::inject_element) for the args.n elements.
void circuit_inject(const circuit::InjectArgs& args, int device);

}  // namespace veil::kernels::cuda
