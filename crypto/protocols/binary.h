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
//   comparisons (masked opening, crypto/providers/bit_circuit.h): the dealer supplies r uniform in
//          Z_2^64 as arithmetic shares and as XOR shares of its bits; the parties open
//          c = x + r, so x = c - r and msb(x) = c_63 ^ r_63 ^ [c mod 2^63 < r mod 2^63]. The
//          borrow is a radix-4 prefix over the 63 low bit pairs (c_i public, r_i shared):
//          level 0 is local (the dealer shares the products of r's bits in each group of 4),
//          levels 1 and 2 combine 4 (generate, propagate) pairs each from one masked opening
//          of their inputs (multi-fan-in ANDs from dealer-shared monomials of the masks).
//          [x == 0] is the same with an AND of the 64 bit equalities [c_i == r_i].
//   bit injection (fused B2A and multiply): with a dealer bit s in both sharings, shares of
//          r s and, for each extra multiplicand y, a mask a with shares of a s, one round opens
//          e = b ^ s (1 bit) and y - a; then b = e + s - 2es, x b = c b - r b and y b = (y - a) b
//          + a b are local (x is already masked by r).
//
// Costs per party, n elements in B = ceil(n/64) blocks, N parties (8(N-1) bytes per opened
// word; the comparisons open bits as planes, one word per opened bit per block of 64 elements;
// dealer traffic, to party 0 only, counted apart):
//   and:      1 round, 16(N-1)n bytes
//   a2b:      7 + (N - 2) rounds; (N - 1)(192 + 16(N - 2)) n bytes: the first AND and the
//             last KS step send 16(N-1)n each, the five middle KS steps 32(N-1)n each (2 ANDs),
//             each carry-save layer 16(N-1)n. N = 2: 7 rounds, 192 bytes per element
//   ltz:      3 rounds for every N; 8(N-1)(n + 38B) bytes (c, then 31 and 7 opened bits;
//             ~12.75(N-1) per element). Dealer: 8(n + 265B) bytes.
//   ltz_mul:  ltz + 1 round: + 8(N-1)(B + k n) bytes for k extra multiplicands
//             (2 parties, no extras: 8(n + 39B), ~12.9 bytes per element, in 4 rounds).
//             Dealer: + 8n (s) + 8n (r s, with x) + 8kn (a s).
//   eqz:      3 rounds; 8(N-1)(n + 20B) bytes (~10.5(N-1) per element). Dealer: 8(n + 231B).
//             eqz_mul: + 1 round and bytes as ltz_mul.
//   and_lastdim_mul over w bits: ceil(log4 w) + 1 rounds; 8(N-1)(w + ceil(w/4) + ...) B for the
//             AND levels (the levels' input widths, down to one gate of 2..4) plus the injection.
//   b2a_bit:  1 round, 8(N-1) ceil(n / 64) bytes (the opened bits are packed)

#include <vector>

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
/// [x < 0] (the two's complement sign bit) as a binary share in bit 0 (other bits 0), any shape.
/// Masked opening c = x + r, then the radix-4 borrow circuit (see the header).
/// Cost: 3 rounds for any N; 8(N-1)(n + 38 ceil(n/64)) bytes (~12.75 per element for 2
/// parties); dealer: 8(n + 265 ceil(n/64)) bytes to party 0. Exact for every ring value. Throws
/// ValueError for an undefined or non-ring64 share. Security: c is uniform (r is), the opened level
/// bits are masked by fresh dealer bits. Source: masked-open comparison with edaBit-style masks
/// (Escudero et al., CRYPTO 2020; Makri et al., Rabbit, FC 2021), carry-lookahead prefix of Brent &
/// Kung (1982).
BShare ltz(Party& p, const AShare& x);

/// A comparison bit as an integer share and the products fused into its conversion round.
struct BitProducts {
  AShare bit;                    ///< the bit b in {0, 1} (frac_bits 0), the input's shape
  AShare x_times_bit;            ///< x * b at x.frac_bits (ltz_mul with with_x only)
  std::vector<AShare> products;  ///< ys[k] * b at ys[k].frac_bits, ys[k]'s shape
};

/// [x < 0] as an integer share, and (fused into the same round) x * [x < 0] when `with_x` and
/// ys[k] * [x < 0] for secret ys[k] with as many elements as x (any frac_bits; no truncation).
/// Cost: 4 rounds for any N; 8(N-1)(n + 39 ceil(n/64) + |ys| n) bytes (2 parties, no ys:
/// ~12.9 per element); dealer: 8(n (2 + [with_x] + 2|ys|) + 265 ceil(n/64)) bytes. Exact. Throws
/// ValueError for undefined shares or a multiplicand whose element count differs from x's.
BitProducts ltz_mul(Party& p, const AShare& x, bool with_x, const std::vector<AShare>& ys = {});
/// [x < 0] as an integer share (frac_bits 0): ltz_mul without products. Cost: 4 rounds,
/// 8(N-1)(n + 39 ceil(n/64)) bytes. Errors as ltz.
AShare ltz_arith(Party& p, const AShare& x);

/// [x == 0] (all 64 bits of the ring value) as a binary share in bit 0. Cost: 3 rounds for any
/// N; 8(N-1)(n + 20 ceil(n/64)) bytes (~10.5 per element for 2 parties); dealer:
/// 8(n + 231 ceil(n/64)). Exact.
/// Throws ValueError for an undefined or non-ring64 share.
BShare eqz(Party& p, const AShare& x);
/// [x == 0] as an integer share and ys[k] * [x == 0] fused into the conversion round.
/// Cost: 4 rounds; 8(N-1)(n + 21 ceil(n/64) + |ys| n) bytes. Errors as ltz_mul.
BitProducts eqz_mul(Party& p, const AShare& x, const std::vector<AShare>& ys = {});

/// AND of the w bits (bit 0 of each word) along the last dimension of `bits` [..., w] -> [...],
/// 1 <= w <= 64, as an integer share, with ys[k] * AND fused into the conversion round (ys[k]
/// with prod(...) elements). A tree of masked AND gates of fan-in <= 4.
/// Cost: ceil(log4 w) + 1 rounds; 8(N-1)((w_1 + w_2 + ... + 1) ceil(n/64) + |ys| n) bytes with
/// w_1 = w, w_{l+1} = ceil(w_l / 4) down to one gate (e.g. w = 9: 9 + 3 + 1). Exact. Throws
/// ValueError for a bad shape or more than 64 bits.
BitProducts and_lastdim_mul(Party& p, const BShare& bits, const std::vector<AShare>& ys = {});
/// Bit 0 of a binary share as an arithmetic share of 0/1 (frac_bits 0). Cost: 1 round,
/// 8(N-1) ceil(n / 64) bytes (opened bits packed 64 to a word).
AShare b2a_bit(Party& p, const BShare& bit);
/// Binary to arithmetic for full 64-bit words: 64 bit conversions in one round.
/// Cost: 1 round, 512(N-1) bytes per element.
AShare b2a(Party& p, const BShare& x, int frac_bits);
/// Opens a binary share to all parties (XOR all_reduce). Cost: 1 round, 8(N-1) bytes/element.
core::Tensor reveal_binary(Party& p, const BShare& x);

}  // namespace veil::crypto
