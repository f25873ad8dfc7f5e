#pragma once
// Arithmetic-sharing protocols over Z_2^64.
//
//   share:     x_i = z_i + [i = src] * encode(x), with z_i = PRG(k_{i,i+1}) - PRG(k_{i-1,i})
//              (pseudo-random zero-sharing, PRZS): no communication.
//   reveal:    x = sum_i x_i (all_reduce).
//   beaver:    for bilinear f and triple (a, b, c = f(a, b)): open e = x - a, d = y - b in one
//              round; z_i = c_i + f(e, b_i + [i = 0] d) + f(a_i, d)   (Beaver, CRYPTO'91).
//   truncate:  2 parties: P0 computes x_0 >> d, P1 computes -((-x_1) >> d) (SecureML §4.1, local;
//              wrong by +-1 ulp, and with probability ~ |x| / 2^63 per element badly wrong).
//              N > 2: dealer pair (r, r >> d); parties send x_i + r_i to P0, who opens
//              z = x + r; party i keeps [i = 0] (z >> d) - (r >> d)_i (after ABY3 §5.1.1, which
//              opens x - r): x / 2^d rounded up with probability frac(x / 2^d), so unbiased, and
//              exact for multiples of 2^d. Same failure model (z wraps: ~ |x| / 2^64).
//
// Costs per party, N parties, n elements (8 bytes per ring element):
//   share 0 rounds / 0 B;  reveal 1 round / 8(N-1)n;  reveal_to 1 round / 8n (non-receivers);
//   beaver: 1 round / 8(N-1)(|x| + |y|)  (+ dealer traffic: P0 receives 8|f(x,y)|);
//   truncate: N = 2: 0 / 0;  N > 2: 1 round / 8n from each party except P0.
// Security: semi-honest, dealer non-colluding; only reveal()/reveal_to() disclose values.

#include "core/tensor.h"
#include "crypto/bilinear.h"
#include "crypto/party.h"
#include "crypto/share.h"

namespace veil::crypto {

// ---- input and output --------------------------------------------------------------------------

/// Zero-sharing of `shape` (sum over parties is 0). No communication; consumes the pairwise PRGs.
core::Tensor zero_share(Party& p, const core::Shape& shape);

/// Secret-shares the float64/float32 tensor `x` held by party `src` (others pass an undefined
/// tensor); every party gives the same `shape`. Encoded with the party's frac_bits.
/// Cost: 0 rounds, 0 bytes. Throws ValueError on a shape mismatch at src, NaN/inf or range.
AShare share(Party& p, const core::Tensor& x, int src, const core::Shape& shape);
/// Same for a ring64 tensor already encoded with `frac_bits` (labels, bits: frac_bits 0).
AShare share_ring(
    Party& p, const core::Tensor& x, int src, const core::Shape& shape, int frac_bits);

/// Opens a secret to every party: the ring64 value (decode with the encoder, or use
/// reveal_float). Cost: 1 round, 8(N-1) bytes per element per party.
core::Tensor reveal(Party& p, const AShare& x);
/// Opens a secret to party `dst` only; other parties get an undefined tensor.
/// Cost: 1 round, 8 bytes per element from each party except dst.
core::Tensor reveal_to(Party& p, const AShare& x, int dst);
/// reveal() then decode to float64 with x.frac_bits.
core::Tensor reveal_float(Party& p, const AShare& x);

// ---- local linear operations (0 rounds) ---------------------------------------------------------

/// x + y, x - y, -x on shares of equal frac_bits (broadcasting shapes). Local: 0 rounds, 0 bytes.
/// Throws ValueError for different frac_bits or shapes that do not broadcast.
AShare add(const AShare& x, const AShare& y);
AShare sub(const AShare& x, const AShare& y);
AShare neg(const AShare& x);
/// x + c for a public ring tensor c with the same frac_bits (party 0 adds it); broadcasts.
AShare add_public(Party& p, const AShare& x, const core::Tensor& c);
/// Encodes the public float c with x.frac_bits and adds it.
AShare add_public(Party& p, const AShare& x, double c);
/// x * c for a public ring integer (no scale change, no truncation).
AShare mul_public_int(const AShare& x, int64_t c);
/// x * c for a public ring tensor with `c_frac` fractional bits; the result has
/// x.frac_bits + c_frac bits (call truncate to rescale). Broadcasts.
AShare mul_public_raw(const AShare& x, const core::Tensor& c, int c_frac);
/// Elementwise x * c for a public fixed-point tensor/scalar, rescaled to p.frac_bits().
/// Cost: one truncation.
AShare mul_public(Party& p, const AShare& x, const core::Tensor& c_float);
AShare mul_public(Party& p, const AShare& x, double c);
/// x @ c (and c @ x) for a public float matrix, rescaled. Cost: one truncation.
AShare matmul_public(Party& p, const AShare& x, const core::Tensor& c_float);
AShare matmul_public_left(Party& p, const core::Tensor& c_float, const AShare& x);
/// A public constant c at scale frac_bits as a share (party 0 holds the encoding, the others
/// zero). Local; throws ValueError for a value outside the fixed-point range.
AShare constant_share(Party& p, const core::Shape& shape, double c, int frac_bits);
/// 1 - b for an integer share b (e.g. a bit: its complement). Local.
AShare one_minus(Party& p, const AShare& b);
/// Sum along dim (local).
AShare sum(const AShare& x, int64_t dim, bool keepdim = false);

// ---- multiplication ----------------------------------------------------------------------------

/// f(x, y) for the bilinear op `op` with one Beaver triple, no rescaling: the result has
/// x.frac_bits + y.frac_bits fractional bits. Cost: 1 round, 8(N-1)(|x| + |y|) bytes
/// (BilinearOp::square: 8(N-1)|x|; pass x as both operands).
AShare beaver(Party& p, const BilinearOp& op, const AShare& x, const AShare& y);
/// Several independent Beaver products opened in a single round.
std::vector<AShare> beaver_batch(Party& p,
                                 const std::vector<BilinearOp>& ops,
                                 const std::vector<AShare>& xs,
                                 const std::vector<AShare>& ys);

/// beaver_batch, then product i rescaled to rescale_to[i] fractional bits (as rescale). With 2
/// parties the truncation of an elementwise product is fused into the pass that forms it (same
/// result bit for bit, one pass over memory less). Cost: beaver_batch + the truncations.
std::vector<AShare> beaver_batch_rescaled(Party& p,
                                          const std::vector<BilinearOp>& ops,
                                          const std::vector<AShare>& xs,
                                          const std::vector<AShare>& ys,
                                          const std::vector<int>& rescale_to);

/// Divides by 2^bits (arithmetic shift of the shared value). See the error model above.
/// Cost: N = 2: local; N > 2: 1 round, 8 bytes per element per party except P0.
AShare truncate(Party& p, const AShare& x, int bits);
/// Rescales x to `frac_bits` fractional bits (truncates when x has more, never adds bits).
AShare rescale(Party& p, const AShare& x, int frac_bits);

/// Elementwise product with broadcasting. The result is rescaled to max(x.frac_bits,
/// y.frac_bits): two fixed-point operands cost one truncation, while an integer operand (frac 0,
/// e.g. a bit) needs none. Cost: beaver + truncation. Throws ValueError when shapes do not
/// broadcast.
AShare mul(Party& p, const AShare& x, const AShare& y);
/// Matrix product [m, k] @ [k, n], rescaled like mul. Cost: 1 round, 8(N-1)(mk + kn) bytes
/// (+ truncation for N > 2).
AShare matmul(Party& p, const AShare& x, const AShare& y);
/// x on `device` (itself when it is there already). Cost: at most one copy, no communication.
AShare to_device(const AShare& x, core::Device device);
/// x * x, rescaled to x.frac_bits, from a square pair (a, a^2): z = c + 2 a e + [i = 0] e^2 with
/// e = x - a opened. Cost: 1 round, 8(N-1) bytes per element (half of mul) + the truncation
/// (N > 2: 1 round); the dealer sends the same 8 bytes per element to P0, and every party draws
/// 2 words per element instead of 3. Accuracy as mul. Throws ValueError for an undefined share.
/// Source: square pairs in SPDZ-style preprocessing (Damgard et al., CRYPTO 2012).
AShare square(Party& p, const AShare& x);

}  // namespace veil::crypto
