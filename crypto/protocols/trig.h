#pragma once
// Sine and cosine of secret values by the angle-addition identity on the additive shares.
//
//   x = sum_i x_i mod 2^64 (fixed point, frac_bits f). With the public integer
//   C = round(2^(64-f) / (2 pi)), party i reduces its own share locally: v_i = x_i C mod 2^64 and
//   rho_i = int64(v_i) / 2^64 in [-1/2, 1/2). Because sum_i v_i = x C mod 2^64, and 2^64 in
//   rho units is one full turn, sum_i rho_i = x / (2 pi) (mod 1) up to |x| 2^(f-64) pi: the
//   angle x (mod 2 pi) splits into private angles theta_i = 2 pi rho_i, exactly periodic for
//   every representable x. Each party computes (cos theta_i, sin theta_i) in float64, encodes
//   and secret-shares them (PRZS: 0 rounds), and the parties multiply the N unit complex numbers
//   z_i = cos theta_i + i sin theta_i in a binary tree: e^{ix} = prod_i z_i. One level is one
//   Beaver round of a broadcast product [2, 1, n] x [1, 2, n] (the four real products) and one
//   truncation.
//
// Cost per party (n elements): L = ceil(log2 N) levels, N - 1 complex products in all, each
//   opening 4n values: L rounds and 32(N-1)^2 n bytes; N > 2 adds L truncation rounds and 16 n
//   bytes per level (N = 2: 1 round, 32 B per element; N = 3: 4 rounds, 160 B).
// Accuracy (f = 16): each encoded component is within 2^-17 and each level truncates once, so
//   |err| <= (N / sqrt 2 + sqrt 2 L) 2^-16 (2.9 units for N = 2, 5 for N = 3; measured 3e-5 and
//   4.2e-5) for every |x| < 2^30 (the reduction adds about |x| 2^-46 rad); the target of
//   MPC_REFERENCE §3 is 1e-2 on [-pi, pi] (CrypTen: 3.8e-2).
// Security: theta_i is a function of party i's own share only (uniformly random, independent of
//   x), shared like a private input; only Beaver openings are sent.
// Source: the angle-addition identity applied to additive shares; compare the random
//   self-reducibility of sine and cosine used by Korzilius & Schoenmakers, "New approach for sine
//   and cosine in secure fixed-point arithmetic" (CSCML 2023), where a dealer supplies solved
//   random instances instead.

#include "crypto/party.h"
#include "crypto/share.h"

namespace veil::crypto {

/// sin(x) and cos(x) together (the cost of one). x: secret, any shape, any frac_bits ->
/// two secrets of x's shape at frac_bits p.frac_bits(). Cost: see the header (N = 2: 1 round,
/// 32 bytes per element). Accuracy: absolute error <= (N / sqrt 2 + sqrt 2 ceil(log2 N)) 2^-f for
/// |x| < 2^30 (no range restriction: the reduction mod 2 pi is exact). Throws ValueError for an
/// undefined share or frac_bits outside [0, 40].
struct SinCos {
  AShare sin;
  AShare cos;
};
SinCos sincos(Party& p, const AShare& x);
/// sin(x): sincos(p, x).sin (same cost).
AShare sin(Party& p, const AShare& x);
/// cos(x): sincos(p, x).cos (same cost).
AShare cos(Party& p, const AShare& x);

}  // namespace veil::crypto
