#pragma once
// Elementwise ring (Z_2^64) loops of the host protocol passes, on raw pointers: the masking of
// operands, the sum of the parties' opened parts, the Beaver output with its 2-party truncation,
// the dealer's product correction, and the comparisons' bit-injection round. Each is compiled for
// AVX-512 (x86-64-v4: vpmullq, vpsraq on 8 lanes), AVX2 and the baseline target, and the loader
// picks the widest one this CPU runs (GCC function multi-versioning); every version gives the same
// bits, since ring arithmetic is exact. Callers hand blocks that stay in L1/L2 (a few KiB) or whole
// arrays; no threads here. Cost: one pass over the operands (local arithmetic, no communication).
//
// Pointers: `out` may equal an input (in-place use) but must not partly overlap one. n >= 0; n = 0
// does nothing. Never throws.

#include <cstdint>

#include "kernels/bit_circuit_eval.h"

namespace veil::kernels::cpu {

/// out[i] = x[i] - y[i] (mod 2^64), i < n: the masking x - a of a Beaver product.
void ring_sub(int64_t n, const uint64_t* x, const uint64_t* y, uint64_t* out);

/// out[i] = x[i] + y[i] (mod 2^64), i < n: two parties' parts of an opened value.
void ring_add(int64_t n, const uint64_t* x, const uint64_t* y, uint64_t* out);

/// out[i] = x[i] * y[i] (mod 2^64), i < n.
void ring_mul(int64_t n, const uint64_t* x, const uint64_t* y, uint64_t* out);

/// The elementwise Beaver output of one party for i < n (kernels::cuda::ops::beaver_elem):
/// z[i] = c[i] + e[i] (b[i] + [first] d[i]) + a[i] d[i] (mod 2^64), then, when trunc_bits > 0,
/// the 2-party local truncation of SecureML (Mohassel & Zhang, S&P 2017, §4.1): party 0 (`first`)
/// keeps z >> trunc_bits (arithmetic), party 1 keeps -((-z) >> trunc_bits). a may equal b (a
/// square); z must not overlap any input.
void beaver_output(int64_t n,
                   bool first,
                   const uint64_t* e,
                   const uint64_t* d,
                   const uint64_t* a,
                   const uint64_t* b,
                   const uint64_t* c,
                   int trunc_bits,
                   uint64_t* z);

/// The bit-injection outputs of elements [lo, hi) (kernels/bit_circuit_eval.h, InjectArgs and
/// inject_element), bit for bit: the arithmetic bit, its product with the masked input and with
/// each extra multiplicand. 0 <= lo <= hi <= a.n; the outputs must not overlap the inputs.
void circuit_inject(const circuit::InjectArgs& a, int64_t lo, int64_t hi);

}  // namespace veil::kernels::cpu
