#pragma once
// The per-block arithmetic of veil's masked-open boolean circuits (crypto/providers/bit_circuit.h),
// written once for the CPU and the GPU: every function here is VEIL_HD, so the CPU protocol code
// and the CUDA kernels of kernels/cuda/circuit.cu run the same lines, and CPU tests check them.
//
// Data (bit slicing): elements are processed in blocks of 64; every bit-level quantity is stored as
// planes, one uint64 per block whose bit e belongs to element 64 b + e. A level of a circuit reads
// in_width input planes per block and writes out_width output planes per block.
//
// Program: a circuit is compiled (crypto/providers/bit_circuit.cpp) into flat arrays that live in
// one buffer, on the host or copied to a device: the gate instances of every level, and for each
// gate type the straight-line code of its outputs (Step: AND a temporary with a public input bit,
// possibly complemented; Sum: XOR a temporary AND a monomial plane into the output). A Level holds
// pointers into that buffer, so it can be passed by value to a kernel.

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/hd.h"

// GCC would turn the short copy loops below back into library memcpy calls (one per gate); and
// the host inlines the evaluator into callers compiled for wider vector units (target clones).
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define VEIL_CIRCUIT_NO_LIBCALLS \
  __attribute__((optimize("no-tree-loop-distribute-patterns"), always_inline))
#else
#define VEIL_CIRCUIT_NO_LIBCALLS
#endif

namespace veil::kernels::circuit {

inline constexpr int kMaxGateInputs = 8;
inline constexpr int kMaxGateProducts = 64;
/// Temporaries of one term (2^literals); the compiler checks every gate against it.
inline constexpr int kMaxTemporaries = 64;

/// tmp[dst] = tmp[src] & (pub[input] ^ flip).
struct Step {
  uint16_t dst = 0;
  uint16_t src = 0;
  uint16_t input = 0;
  uint16_t pad = 0;
  uint64_t flip = 0;
};
/// acc ^= tmp[slot] & monomial (-1: the constant plane, 0..inputs-1: a secret input plane,
/// inputs + j: product plane j of the gate).
struct Sum {
  uint16_t slot = 0;
  int16_t monomial = 0;
};
/// The end (absolute index) of a term's steps and sums; a term starts where the previous one of
/// its output ended, the first at the output's begin.
struct Term {
  uint32_t steps_end = 0;
  uint32_t sums_end = 0;
};
struct Output {
  uint32_t terms_begin = 0;
  uint32_t terms_end = 0;
  uint32_t steps_begin = 0;
  uint32_t sums_begin = 0;
};
/// One gate of a level: its inputs are planes [first, first + inputs) of the level's input, its
/// outputs planes [out_at, out_at + outputs_end - outputs_begin) of the level's output, its
/// products planes [product_offset, + products) of the block's product record.
struct Gate {
  uint32_t first = 0;
  uint32_t product_offset = 0;
  uint32_t out_at = 0;
  uint16_t inputs = 0;
  uint16_t products = 0;
  uint32_t outputs_begin = 0;
  uint32_t outputs_end = 0;
};

/// A level's program: pointers into a host or device buffer.
struct Level {
  const Gate* gates = nullptr;
  int32_t gate_count = 0;
  int32_t in_width = 0;
  int32_t out_width = 0;
  const Output* outputs = nullptr;
  const Term* terms = nullptr;
  const Step* steps = nullptr;
  const Sum* sums = nullptr;
};

/// Evaluates gate g of a level on L blocks side by side: pub the blocks' public input planes
/// (opened bits or c's bits), lane-major (plane p of block l at pub[p L + l]); sec this party's
/// shares of the secret input planes (masks or r's bits) and products the product records, block
/// l's at sec + l sec_stride and products + l product_stride; constant all ones at party 0 and 0
/// elsewhere. Writes the gate's output planes into out, lane-major. L = 1 is one block (the GPU
/// kernels run a block per thread); the CPU evaluates 8 blocks per pass, so the program is read
/// once per 8 blocks and each step is one vector operation.
template <int L>
VEIL_HD VEIL_CIRCUIT_NO_LIBCALLS inline void evaluate_gate_lanes(const Level& lv,
                                                                 int g,
                                                                 const uint64_t* pub,
                                                                 const uint64_t* sec,
                                                                 int64_t sec_stride,
                                                                 const uint64_t* products,
                                                                 int64_t product_stride,
                                                                 uint64_t constant,
                                                                 uint64_t* out) {
  constexpr int64_t kL = L;  // index arithmetic in int64_t
  constexpr auto kSize = static_cast<std::size_t>(L);
  const Gate& gate = lv.gates[g];
  const uint64_t* q = pub + gate.first * kL;
  // the monomial planes: constant, the secret inputs, then the products (plain loops: a library
  // memmove call per gate would cost more than the copy)
  uint64_t mono[(1 + kMaxGateInputs + kMaxGateProducts) * kSize];
  for (int l = 0; l < L; ++l) {
    mono[l] = constant;
  }
  const int k = gate.inputs;
  for (int i = 0; i < k; ++i) {
    for (int l = 0; l < L; ++l) {
      mono[(1 + i) * kL + l] = sec[l * sec_stride + gate.first + i];
    }
  }
  for (int i = 0; i < gate.products; ++i) {
    for (int l = 0; l < L; ++l) {
      mono[(1 + k + i) * kL + l] = products[l * product_stride + gate.product_offset + i];
    }
  }
  uint64_t tmp[kMaxTemporaries * kSize];
  uint32_t at = gate.out_at;
  for (uint32_t o = gate.outputs_begin; o < gate.outputs_end; ++o) {
    const Output& code = lv.outputs[o];
    uint64_t acc[kSize];
    for (int l = 0; l < L; ++l) {
      acc[l] = 0;
    }
    uint32_t step = code.steps_begin;
    uint32_t sum = code.sums_begin;
    for (uint32_t t = code.terms_begin; t < code.terms_end; ++t) {
      const Term& term = lv.terms[t];
      for (int l = 0; l < L; ++l) {
        tmp[l] = ~uint64_t{0};
      }
      for (; step < term.steps_end; ++step) {
        const Step& st = lv.steps[step];
        const uint64_t* src = tmp + st.src * kL;
        const uint64_t* in = q + st.input * kL;
        uint64_t v[kSize];  // through registers: dst may be src
        for (int l = 0; l < L; ++l) {
          v[l] = src[l] & (in[l] ^ st.flip);
        }
        uint64_t* dst = tmp + st.dst * kL;
        for (int l = 0; l < L; ++l) {
          dst[l] = v[l];
        }
      }
      for (; sum < term.sums_end; ++sum) {
        const Sum& sm = lv.sums[sum];
        const uint64_t* tv = tmp + sm.slot * kL;
        const uint64_t* mv = mono + (1 + sm.monomial) * kL;
        for (int l = 0; l < L; ++l) {
          acc[l] ^= tv[l] & mv[l];
        }
      }
    }
    for (int l = 0; l < L; ++l) {
      out[at * kL + l] = acc[l];
    }
    ++at;
  }
}

/// evaluate_gate_lanes for one block.
VEIL_HD inline void evaluate_gate(const Level& lv,
                                  int g,
                                  const uint64_t* pub,
                                  const uint64_t* sec,
                                  const uint64_t* products,
                                  uint64_t constant,
                                  uint64_t* out) {
  evaluate_gate_lanes<1>(lv, g, pub, sec, 0, products, 0, constant, out);
}

/// Every gate of a level on L blocks (arguments as evaluate_gate_lanes).
template <int L>
VEIL_HD VEIL_CIRCUIT_NO_LIBCALLS inline void evaluate_level_lanes(const Level& lv,
                                                                  const uint64_t* pub,
                                                                  const uint64_t* sec,
                                                                  int64_t sec_stride,
                                                                  const uint64_t* products,
                                                                  int64_t product_stride,
                                                                  uint64_t constant,
                                                                  uint64_t* out) {
  for (int g = 0; g < lv.gate_count; ++g) {
    evaluate_gate_lanes<L>(lv, g, pub, sec, sec_stride, products, product_stride, constant, out);
  }
}

/// Every gate of a level on one block (arguments as evaluate_gate).
VEIL_HD inline void evaluate_level(const Level& lv,
                                   const uint64_t* pub,
                                   const uint64_t* sec,
                                   const uint64_t* products,
                                   uint64_t constant,
                                   uint64_t* out) {
  evaluate_level_lanes<1>(lv, pub, sec, 0, products, 0, constant, out);
}

/// Transposes L 64 x 64 bit matrices in place, stored lane-major (word i of matrix l at
/// a[i L + l]): afterwards bit j of word i is what bit i of word j was. Turns 64 words into their
/// 64 bit planes and back (Hacker's Delight, 7-3: swap the off-diagonal blocks of sizes 32, 16,
/// ..., 1); the L matrices go through the same swaps side by side.
template <int L>
VEIL_HD inline void transpose64_lanes(uint64_t* a) {
  constexpr int64_t kL = L;
  uint64_t m = 0x00000000FFFFFFFFULL;
  for (int j = 32; j != 0; j >>= 1, m ^= m << j) {
    for (int k = 0; k < 64; k = (k + j + 1) & ~j) {
      uint64_t* lo = a + k * kL;
      uint64_t* hi = a + (k + j) * kL;
      for (int l = 0; l < L; ++l) {
        const uint64_t t = (lo[l] ^ (hi[l] << j)) & ~m;
        lo[l] ^= t;
        hi[l] ^= t >> j;
      }
    }
  }
}

/// Loads the 64-word records of L consecutive blocks lane-major into a (word i of block l at
/// a[i L + l]; src holds `count` words, the rest read as zero) and transposes them
/// (transpose64_lanes): the blocks' words become their bit planes, or planes their words.
template <int L>
VEIL_HD inline void load_transpose64_lanes(const uint64_t* src, int64_t count, uint64_t* a) {
  constexpr int64_t kL = L;
  for (int64_t i = 0; i < 64; ++i) {
    for (int64_t l = 0; l < kL; ++l) {
      const int64_t e = 64 * l + i;
      a[i * kL + l] = e < count ? src[e] : 0;
    }
  }
  transpose64_lanes<L>(a);
}

/// Blocks the host evaluates side by side (one AVX-512 vector of words).
inline constexpr int kHostLanes = 8;

/// One 64 x 64 bit matrix (transpose64_lanes).
VEIL_HD inline void transpose64(uint64_t* a) {
  transpose64_lanes<1>(a);
}

/// Level 0 of a circuit with r (local: nothing opened) on block b of n elements: the bit planes
/// of the opened c = x + r (c: n words), this party's shares of r's 64 bit planes of the block
/// (r_planes), the block's product record. Writes the level's output planes into wires and c's
/// top plane (bit 63 of the block's elements) into *c_top.
VEIL_HD VEIL_CIRCUIT_NO_LIBCALLS inline void local_level_block(const Level& l0,
                                                               int64_t n,
                                                               int64_t b,
                                                               const uint64_t* c,
                                                               const uint64_t* r_planes,
                                                               const uint64_t* products,
                                                               uint64_t constant,
                                                               uint64_t* wires,
                                                               uint64_t* c_top) {
  uint64_t planes[64];
  const int64_t first = 64 * b;
  const int64_t count = n - first < 64 ? n - first : 64;
  for (int i = 0; i < 64; ++i) {
    planes[i] = i < count ? c[first + i] : 0;
  }
  transpose64(planes);
  *c_top = planes[63];
  evaluate_level(l0, planes, r_planes, products, constant, wires);
}

/// The output plane of a block: the last level's wire, and for the less-than-zero circuit
/// msb(c - r) = c_63 ^ r_63 ^ [c mod 2^63 < r mod 2^63] (the wire is the bracket).
VEIL_HD inline uint64_t output_plane(
    bool less_than_zero, uint64_t wire, uint64_t r_top, uint64_t c_top, uint64_t constant) {
  return less_than_zero ? wire ^ r_top ^ (c_top & constant) : wire;
}

/// Bit e of the planes (element e's bit, 0 or 1).
VEIL_HD inline uint64_t plane_bit(const uint64_t* planes, int64_t e) {
  return (planes[e >> 6] >> (e & 63)) & 1U;
}

// ---- the bit-injection round (crypto/protocols/binary.cpp): with the opened bit e = out ^ s ----

/// The output as an arithmetic bit: b_i = [i = 0] e + (1 - 2e) s_i.
VEIL_HD inline uint64_t inject_bit(uint64_t e, uint64_t s_share, bool first) {
  return (e != 0 ? uint64_t{0} - s_share : s_share) + (first ? e : 0);
}
/// (c - r) b: c b_i - e r_i - (1 - 2e) (rs)_i.
VEIL_HD inline uint64_t inject_times_masked(
    uint64_t e, uint64_t c, uint64_t b_share, uint64_t r_share, uint64_t rs_share) {
  return e != 0 ? c * b_share - r_share + rs_share : c * b_share - rs_share;
}
/// y b for y = d + a (d opened): d b_i + e a_i + (1 - 2e) (as)_i.
VEIL_HD inline uint64_t inject_product(
    uint64_t e, uint64_t d, uint64_t b_share, uint64_t a_share, uint64_t as_share) {
  return e != 0 ? d * b_share + a_share - as_share : d * b_share + as_share;
}

/// Everything the injection outputs of n elements read and write (pointers on one device), e the
/// opened bits as planes: bit[e] = inject_bit(e, s[e]); when c is not null also
/// x_times_bit[e] = inject_times_masked(e, c[e], bit[e], r[e], rs[e]); and for j < extras,
/// product[j n + e] = inject_product(e, d[j n + e], bit[e], a[j n + e], as[j n + e]).
struct InjectArgs {
  int64_t n = 0;
  int extras = 0;
  bool first = false;
  const uint64_t* e_planes = nullptr;
  const uint64_t* s = nullptr;
  const uint64_t* c = nullptr;  ///< null: no x_times_bit
  const uint64_t* r = nullptr;
  const uint64_t* rs = nullptr;
  const uint64_t* d = nullptr;   ///< extras * n
  const uint64_t* a = nullptr;   ///< extras * n
  const uint64_t* as = nullptr;  ///< extras * n
  uint64_t* bit = nullptr;
  uint64_t* x_times_bit = nullptr;
  uint64_t* product = nullptr;  ///< extras * n
};

/// The injection outputs of element e (see InjectArgs).
VEIL_HD inline void inject_element(const InjectArgs& a, int64_t e) {
  const uint64_t ev = plane_bit(a.e_planes, e);
  const uint64_t b = inject_bit(ev, a.s[e], a.first);
  a.bit[e] = b;
  if (a.c != nullptr) {
    a.x_times_bit[e] = inject_times_masked(ev, a.c[e], b, a.r[e], a.rs[e]);
  }
  for (int j = 0; j < a.extras; ++j) {
    const int64_t i = j * a.n + e;
    a.product[i] = inject_product(ev, a.d[i], b, a.a[i], a.as[i]);
  }
}

/// Opened word i of a masked level: wires[i] ^ masks[b mask_stride + i - b w], b = i / w.
VEIL_HD inline uint64_t masked_wire(
    int64_t i, int w, const uint64_t* wires, const uint64_t* masks, int64_t mask_stride) {
  const int64_t b = i / w;
  return wires[i] ^ masks[b * mask_stride + (i - b * w)];
}

}  // namespace veil::kernels::circuit
