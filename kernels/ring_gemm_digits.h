#pragma once
// The arithmetic of the tensor-core ring GEMM (kernels/cuda_gemm.h), as plain inline functions that
// both the CUDA kernels (kernels/cuda/ring_gemm.cu) and the CPU emulation test
// (tests/kernels/test_ring_gemm_digits.cpp) call, so the algorithm is verified on machines without
// a GPU with the very code the GPU runs.
//
// Algorithm (MPC_REFERENCE.md §5): x in Z_2^64 is written with 8 signed base-256 digits
// s_0..s_7 in [-128, 127], x = sum_i 2^(8i) s_i (mod 2^64). Then
//   (A B)[r, c] = sum_p A[r,p] B[p,c] = sum_{d=0..7} 2^(8d) C_d[r, c]   (mod 2^64),
//   C_d = sum_{i+j=d} A_i B_j     (A_i: the matrix of digit i of A; pairs with i+j >= 8 vanish).
// Layout of one k-chunk of kp columns (kp = the chunk's length padded with zero digits):
//   A8 [m, 8 kp] int8, digit plane i in columns [i kp, (i+1) kp);
//   B8 [8 kp, n] int8, digit plane j in rows [(7-j) kp, (8-j) kp)   (planes in reverse order);
// so C_d = A8[:, 0:(d+1)kp] * B8[(7-d)kp : 8kp, :], one INT8 GEMM on sub-matrices per diagonal.
// Exactness: |s_i s_j| <= 2^14, so the int32 sum of C_d over (d+1) kp terms is exact when
// (d+1) kp 2^14 < 2^31; for d <= 3 and kp <= kExactK = 8192 that bound is 2^29. For d >= 4 only
// C_d mod 2^(64-8d) (at most 32 bits) matters, which int32 wrap-around preserves. The chunks'
// combined contributions are summed in uint64.

#include <cstdint>

#include "kernels/cuda/hd.h"

namespace veil::kernels::ring_digits {

/// Digits per uint64 (base 256).
inline constexpr int kDigits = 8;
/// Largest k per chunk for which the int32 sums of diagonals 0..3 are exact (4 * 8192 * 2^14 =
/// 2^29 < 2^31). Equal to kernels::cuda::kExactK.
inline constexpr int64_t kChunkK = 8192;
/// Chunk lengths are padded to a multiple of this (cuBLASLt's INT8 kernels want k, leading
/// dimensions and sub-matrix offsets in multiples of 4 bytes; 16 keeps them 16-byte aligned).
inline constexpr int64_t kPadK = 16;
/// Output columns (the GEMM's n) are padded to a multiple of this in the int32 scratch.
inline constexpr int64_t kPadN = 4;

/// Adding 0x80 to every byte turns the signed digits into the plain bytes of x + kDigitBias:
/// x = sum_i 2^(8i) (byte_i(x + kDigitBias) - 128) (mod 2^64).
inline constexpr uint64_t kDigitBias = 0x8080808080808080ULL;

/// Signed digit `i` (0..7) of x: in [-128, 127], with x = sum_i 2^(8i) digit(x, i) mod 2^64.
VEIL_HD inline int8_t signed_digit(uint64_t x, int i) {
  const uint64_t t = x + kDigitBias;
  const int byte = static_cast<int>((t >> (8 * i)) & 0xFFu);
  return static_cast<int8_t>(byte - 128);
}

/// All 8 signed digits of x, least significant first.
VEIL_HD inline void split_digits(uint64_t x, int8_t out[kDigits]) {
  const uint64_t t = x + kDigitBias;
  for (int i = 0; i < kDigits; ++i) {
    out[i] = static_cast<int8_t>(static_cast<int>((t >> (8 * i)) & 0xFFu) - 128);
  }
}

/// sum_i 2^(8i) s_i mod 2^64: the inverse of split_digits.
VEIL_HD inline uint64_t join_digits(const int8_t s[kDigits]) {
  uint64_t x = 0;
  for (int i = 0; i < kDigits; ++i) {
    x += static_cast<uint64_t>(static_cast<int64_t>(s[i])) << (8 * i);
  }
  return x;
}

/// Four consecutive digits of plane `i` packed little-endian into one 32-bit word (the split
/// kernel writes 4 k-positions at a time).
VEIL_HD inline uint32_t pack4_digit(uint64_t x0, uint64_t x1, uint64_t x2, uint64_t x3, int i) {
  const auto b = [i](uint64_t x) {
    return static_cast<uint32_t>(static_cast<uint8_t>(signed_digit(x, i)));
  };
  return b(x0) | (b(x1) << 8) | (b(x2) << 16) | (b(x3) << 24);
}

/// Stores the digits of 4 consecutive k positions (group g: positions 4g..4g+3) of one row of a
/// digit matrix (row length 8 kp): plane i as one 32-bit word at row[plane_offset(i) + 4 g], where
/// plane_offset is a_plane_offset, or b_plane_offset when `reverse` (the GPU keeps B's digit
/// matrix transposed, [np, 8 kp], so that both INT8 operands are k-contiguous). `row` must be
/// 4-byte aligned and kp a multiple of 4.
VEIL_HD inline void store_digit_group(
    const uint64_t x[4], int8_t* row, int64_t g, int64_t kp, bool reverse) {
  for (int i = 0; i < kDigits; ++i) {
    const int64_t off = (reverse ? static_cast<int64_t>(kDigits - 1 - i) : i) * kp + 4 * g;
    const uint32_t word = pack4_digit(x[0], x[1], x[2], x[3], i);
#if defined(__CUDA_ARCH__)
    *reinterpret_cast<uint32_t*>(row + off) = word;
#else
    for (int q = 0; q < 4; ++q) {
      row[off + q] = static_cast<int8_t>(static_cast<uint8_t>(word >> (8 * q)));
    }
#endif
  }
}

// ---- k-chunking ---------------------------------------------------------------------------------

/// Number of k-chunks: ceil(k / chunk_k) (0 for k == 0).
VEIL_HD inline int64_t num_chunks(int64_t k, int64_t chunk_k = kChunkK) {
  return (k + chunk_k - 1) / chunk_k;
}
/// First k index of chunk c.
VEIL_HD inline int64_t chunk_begin(int64_t c, int64_t chunk_k = kChunkK) {
  return c * chunk_k;
}
/// Length of chunk c of k.
VEIL_HD inline int64_t chunk_len(int64_t k, int64_t c, int64_t chunk_k = kChunkK) {
  const int64_t rest = k - c * chunk_k;
  return rest < chunk_k ? rest : chunk_k;
}
/// A chunk's length padded with zero digits to a multiple of kPadK.
VEIL_HD inline int64_t padded_k(int64_t kc) {
  return (kc + kPadK - 1) / kPadK * kPadK;
}
/// n padded to a multiple of kPadN.
VEIL_HD inline int64_t padded_n(int64_t n) {
  return (n + kPadN - 1) / kPadN * kPadN;
}

// ---- layout of the digit matrices ---------------------------------------------------------------

/// First column of digit plane i in A8 [m, 8 kp].
VEIL_HD inline int64_t a_plane_offset(int i, int64_t kp) {
  return static_cast<int64_t>(i) * kp;
}
/// First row of digit plane j in B8 [8 kp, n] (reverse order).
VEIL_HD inline int64_t b_plane_offset(int j, int64_t kp) {
  return static_cast<int64_t>(kDigits - 1 - j) * kp;
}
/// Diagonal d's GEMM: A8 columns [0, diag_k) times B8 rows [diag_b_offset, 8 kp).
VEIL_HD inline int64_t diag_k(int d, int64_t kp) {
  return static_cast<int64_t>(d + 1) * kp;
}
VEIL_HD inline int64_t diag_b_offset(int d, int64_t kp) {
  return static_cast<int64_t>(kDigits - 1 - d) * kp;
}

// ---- combination --------------------------------------------------------------------------------

/// One chunk's contribution sum_d 2^(8d) C_d mod 2^64 from its 8 int32 diagonal sums (cd[d *
/// stride]); C_d is sign-extended (exact for d <= 3, only its low 64-8d bits matter for d >= 4).
VEIL_HD inline uint64_t combine_diagonals(const int32_t* cd, int64_t stride) {
  uint64_t acc = 0;
  for (int d = 0; d < kDigits; ++d) {
    acc += static_cast<uint64_t>(static_cast<int64_t>(cd[d * stride])) << (8 * d);
  }
  return acc;
}

}  // namespace veil::kernels::ring_digits
