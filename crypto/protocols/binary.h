#pragma once
// Binary (XOR) sharing protocols and conversions.
//
//   and:   binary Beaver triple (a, b, c = a & b): open e = x ^ a, f = y ^ b in one round;
//          z_i = c_i ^ (e & b_i) ^ (a_i & f) ^ [i = 0](e & f).
//   A2B:   party i's arithmetic share x_i is a binary sharing by itself (P_i holds x_i, the others
//          0). N > 2: carry-save adders (one AND round each, maj(x,y,z) = ((x^z) & (y^z)) ^ z)
//          reduce N addends to 2; then a Kogge–Stone adder: g = x & y, p = x ^ y, and for
//          k = 1, 2, 4, ..., 32: g ^= p & (g << k), p &= p << k (the last step skips p);
//          sum = x ^ y ^ (g << 1). (Kogge & Stone 1973; CrypTen/ABY for the MPC use.)
//   B2A of a bit: random bit r as ([r]_B, [r]_A) from the provider; open c = b ^ r;
//          b = c + r - 2cr, i.e. z_i = [i = 0] c + (1 - 2c) r_i.
//
// Costs per party, n elements, N parties (64-bit words):
//   and:      1 round, 16(N-1)n bytes
//   a2b:      7 + (N - 2) rounds; (N - 1)(192 + 16(N - 2)) n bytes: the first AND and the
//             last KS step send 16(N-1)n each, the five middle KS steps 32(N-1)n each (2 ANDs),
//             each carry-save layer 16(N-1)n. N = 2: 7 rounds, 192 bytes per element
//   ltz:      carry into bit 63 only (Brent–Kung up-sweep, packed ANDs): 7 + (N - 2) rounds,
//             (N-1) * 2 * ceil(k n / 64) * 8 bytes per AND layer with k = 63, 64, 32, 16, 8, 4, 1
//             useful bits per element: ~47(N-1) bytes per element (+ carry-save layers)
//   b2a_bit:  1 round, 8(N-1) ceil(n / 64) bytes (the opened bits are packed)

#include "crypto/party.h"
#include "crypto/share.h"

namespace veil::crypto {

/// Local XOR of two binary shares.
BShare bxor(const BShare& x, const BShare& y);
/// XOR with a public ring tensor (party 0 applies it).
BShare bxor_public(Party& p, const BShare& x, const core::Tensor& c);
/// Shift of every share word (local): left or logical right.
BShare bshift_left(const BShare& x, int bits);
BShare bshift_right(const BShare& x, int bits);
/// AND with a public mask (local).
BShare band_public(const BShare& x, uint64_t mask);

/// ANDs of only the bits selected by `mask` in every word (others come out 0): the selected bits
/// of all operands are packed 64 to a word, so the cost is that of ceil(popcount(mask) * words /
/// 64) word ANDs: 1 round, 16(N-1) bytes per packed word.
std::vector<BShare> band_batch_masked(Party& p,
                                      const std::vector<BShare>& xs,
                                      const std::vector<BShare>& ys,
                                      uint64_t mask);
/// Secret AND of two binary shares of equal shape. Cost: 1 round, 16(N-1) bytes per element.
BShare band(Party& p, const BShare& x, const BShare& y);
/// Several ANDs in one round.
std::vector<BShare> band_batch(Party& p,
                               const std::vector<BShare>& xs,
                               const std::vector<BShare>& ys);

/// Arithmetic to binary: the 64-bit two's complement bits of the shared value.
/// Cost: see above (7 rounds for 2 parties).
BShare a2b(Party& p, const AShare& x);
/// Most significant bit of the shared value as a binary share in bit 0: [x < 0]. Computes only
/// the carry into bit 63 (Brent–Kung up-sweep on packed bits, see binary.cpp).
/// Cost: 7 + (N-2) rounds; per element (N-1) * (376 bits of opened ANDs, packed) ~ 47(N-1)
/// bytes, plus 16(N-1)(N-2) bytes for the carry-save layers.
BShare ltz(Party& p, const AShare& x);
/// Bit 0 of a binary share as an arithmetic share of 0/1 (frac_bits 0). Cost: 1 round,
/// 8(N-1) ceil(n / 64) bytes (opened bits packed 64 to a word).
AShare b2a_bit(Party& p, const BShare& bit);
/// Binary to arithmetic for full 64-bit words: 64 bit conversions in one round.
/// Cost: 1 round, 512(N-1) bytes per element.
AShare b2a(Party& p, const BShare& x, int frac_bits);
/// Opens a binary share to all parties (XOR all_reduce). Cost: 1 round, 8(N-1) bytes/element.
core::Tensor reveal_binary(Party& p, const BShare& x);

}  // namespace veil::crypto
