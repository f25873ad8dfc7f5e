#pragma once
// Range reduction by a secret power of two, shared by log, reciprocal, sqrt and inv_sqrt.
//
//   Grid (public): base b = 2^s (s = step_bits), thresholds t_j = b^j for j = lo .. hi + 1.
//   Bits:   c_j = [|x| >= t_j] from ONE batched comparison (crypto::ltz_arith: the comparison
//           with its conversion round, on the concatenation of the x - t_j): the rounds of a
//           single comparison. A signed grid also
//           compares -x against the thresholds and x against 0: c+_j = [x >= t_j],
//           c-_j = [x <= -t_j], n = [x < 0]; then c_j = c+_j + c-_j.
//   Bucket: k = lo - 1 + sum_j c_j in [lo - 1, hi + 1]. Bucket lo - 1 holds |x| < b^lo
//           ("underflow", including 0), bucket hi + 1 holds |x| >= b^(hi+1) ("overflow").
//           Effective exponent kappa = clamp(k, lo, hi + 1); mantissa
//             m = |x| b^-k in [1, b)  for k in [lo, hi],   m = 1 in the two outer buckets,
//           i.e. |x| is saturated to [b^lo, b^(hi+1)] and x_sat = sign(x) m b^kappa.
//   Tables: any public g(kappa) is linear in the bits (telescoping):
//             g(kappa) = g(lo) + sum_{j > lo} c_j (g(j) - g(j - 1)),
//           and sign(x) g(kappa) uses c+_j - c-_j and 1 - 2n instead: both local (0 rounds).
//   Exact power-of-two scaling y * 2^e(kappa) (e a public integer function): split the buckets by
//           e >= 0 (factor A = 2^e, an integer table: the product needs no truncation) and chunks
//           of L = 16 negative exponents, -(c+1)L <= e < -cL (factor B_c = 2^(e + (c+1)L) applied
//           to y truncated by cL bits, then truncated by L). Each product's ring value stays
//           below |y 2^e| 2^(f + L), so the truncation error model of SecureML holds, and all the
//           products are opened in one Beaver round.
//   m itself is such a scaling of x (e = -s k, zero tables in the outer buckets) plus the table
//           [k outside [lo, hi]] (= 1 there).
//
// Costs per party (n elements, T = hi - lo + 2 thresholds, or 2T + 1 for a signed grid; C and
// c_cmp(N): rounds and bytes per element of one comparison ltz_arith, 4 rounds and ~13 B for
// N = 2 today; N > 2: every truncation adds a round and 8 bytes per truncated value):
//   normalize:       C rounds for the bits + 1 Beaver round for m; bytes T c_cmp(N) + 16(N-1) P_m
//                    with P_m = 1 + #chunks of negative exponents (P_m = 3 for the default grid:
//                    48(N-1)); N > 2: 2 truncations (the second chunk's input and the chunk sum).
//                    Measured (default grid, T = 21): N = 2: C + 1 = 5 rounds, 322 B; the 21
//                    comparisons alone 274 B (N = 3: 548 B).
//   scale_by_pow2:   1 round, 16(N-1) P bytes per element per request, P = 1 + #chunks.
//   powers(t, d):    ceil(log2 d) rounds, 16(N-1)(d - 1) bytes per element.
//   polynomial:      local (one truncation).
//   table:           local.
// Security: only comparison bits, Beaver openings and truncations: nothing is disclosed; the
// grid and the tables are public.
// Source: normalization by a secret power of two before Newton/Goldschmidt or a polynomial is
// the range reduction of Catrina & Saxena, "Secure computation with fixed-point numbers"
// (FC 2010), and Aly & Smart, "Benchmarking privacy preserving scientific operations" (ACNS
// 2019); here the exponent comes from one batched comparison against public thresholds and
// linear table look-ups instead of a bit decomposition.

#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "crypto/party.h"
#include "crypto/share.h"

namespace veil::crypto {

/// The public exponent grid of normalize(): buckets [b^k, b^(k+1)), b = 2^step_bits, for
/// k = lo..hi, plus the underflow and overflow buckets (see the file comment).
struct ExponentGrid {
  int step_bits = 2;       ///< log2 of the base b (1 or 2)
  int lo = -8;             ///< lowest regular bucket: [b^lo, b^(lo+1))
  int hi = 11;             ///< highest regular bucket: [b^hi, b^(hi+1))
  bool is_signed = false;  ///< also handle x < 0 (twice the comparisons, plus one)

  /// Number of thresholds per sign: hi - lo + 2.
  int thresholds() const { return hi - lo + 2; }
};

/// The default grid for fixed-point values with `frac_bits` f: base 4 from 2^-f (one unit) to
/// 2^24: lo = -floor(f/2), hi = 11. For f = 16: 21 thresholds (43 when signed).
ExponentGrid default_grid(int frac_bits, bool is_signed = false);
/// The smallest base-4 grid whose regular buckets cover [lo, hi] (0 < lo <= hi), unsigned,
/// clipped to [2^-frac_bits, 2^40] (values beyond saturate). Throws ValueError for a bad range.
ExponentGrid grid_for_range(double lo, double hi, int frac_bits = 16);

/// What normalize() returns: the comparison bits (integer 0/1 shares of x's shape), the
/// mantissa, and table look-ups / exact power-of-two scalings by functions of the exponent.
struct Normalized {
  ExponentGrid grid;
  /// [x >= b^j] for j = lo..hi+1 (index j - lo), integer shares.
  std::vector<AShare> ge;
  /// [x <= -b^j] for j = lo..hi+1 (signed grids only).
  std::vector<AShare> le;
  /// [x < 0] (signed grids only; undefined otherwise).
  AShare negative;
  /// m = |x| b^-kappa in [1, b) at frac_bits f (1 outside the grid), see the file comment.
  AShare mantissa;

  /// Share of g(kappa) (odd: sign(x) g(kappa); sign(0) = 1) encoded with `frac_bits`, for the
  /// public function g of the effective exponent kappa in [lo, hi + 1]. Local (0 rounds). Exact:
  /// equals the encoding round(g(kappa) 2^frac_bits). Throws ValueError when a value is outside
  /// the fixed-point range.
  AShare table(Party& p,
               const std::function<double(int)>& g,
               int frac_bits,
               bool odd = false) const;
  /// Same for an integer function (frac_bits 0), e.g. kappa itself.
  AShare int_table(Party& p, const std::function<int64_t(int)>& g, bool odd = false) const;
};

/// Normalizes x (secret, any shape, frac_bits f = p.frac_bits()) on `grid`. Cost: see the file
/// comment (C + 1 rounds). Exact up to the truncation of m for k > 0 (error < 2^-f).
/// Throws ValueError for another frac_bits or a grid with step_bits outside {1, 2}, lo > hi or
/// thresholds outside the fixed-point range.
Normalized normalize(Party& p, const AShare& x, const ExponentGrid& grid);

/// One request for scale_by_pow2: y * 2^exponent(kappa), times sign(x) when odd, rescaled to
/// out_frac_bits (<= y.frac_bits; the default -1 keeps p.frac_bits()).
struct Pow2Scaling {
  AShare y;
  std::function<int(int)> exponent;
  bool odd = false;
  int out_frac_bits = -1;
};
/// Several exact power-of-two scalings by the secret exponent of `n`, all opened in one Beaver
/// round (N = 2; N > 2 adds a round per truncation). y: same shape as the normalized x.
/// Cost: 16(N-1) P bytes per element per request, P = 1 + #chunks of 16 negative exponents.
/// Error: < 1 unit of out_frac_bits (one truncation of the exact product). The caller keeps
/// |y 2^e| 2^(out_frac + 16) well below 2^63 (SecureML truncation bound).
std::vector<AShare> scale_by_pow2(Party& p,
                                  const Normalized& n,
                                  const std::vector<Pow2Scaling>& requests);

/// Rescales several shares of equal frac_bits to `frac_bits` (-1: p.frac_bits()) with one
/// truncation of their concatenation: local for N = 2, 1 round and 8 bytes per element (from each
/// party but P0) for N > 2. Throws ValueError for different frac_bits or a target above them.
std::vector<AShare> rescale_batch(Party& p, const std::vector<AShare>& xs, int frac_bits);

/// t^1 .. t^degree (index i - 1) at t's frac_bits: round r computes t^(2^(r-1) + 1) .. t^(2^r)
/// as t^(2^(r-1)) t^i in one batched Beaver round. Cost: ceil(log2 degree) rounds,
/// 16(N-1)(degree - 1) bytes per element (+ one truncation per round for N > 2). Each power
/// carries about i units of rounding error relative to |t|^(i-1). Throws ValueError for
/// degree < 1.
std::vector<AShare> powers(Party& p, const AShare& t, int degree);

/// The mantissa mapped affinely onto [-1, 1]: t = (2m - (b + 1)) / (b - 1) for m in [1, b]
/// (b = 2^step_bits), at frac_bits f + extra_bits (for polynomials in t). One truncation (local
/// for N = 2) for b = 4; exact for b = 2. Error <= 2^-(f + extra_bits) (b = 4).
AShare mantissa_unit(Party& p, const Normalized& n, int extra_bits);

/// sum_i c_i t^i (c_0 the constant) from powers() of t, with every coefficient encoded at
/// t's frac_bits F, accumulated at 2F and truncated once to `out_frac_bits` (<= F). Local for
/// N = 2 (N > 2: one truncation round). Throws ValueError when coeffs has more entries than
/// powers + 1.
AShare polynomial(Party& p,
                  const std::vector<AShare>& powers,
                  const std::vector<double>& coeffs,
                  int out_frac_bits);

}  // namespace veil::crypto
