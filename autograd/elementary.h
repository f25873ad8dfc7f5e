#pragma once
// Differentiable elementary functions on MpcTensor: exp, log, reciprocal, div, sqrt, rsqrt, pow,
// cos, sin, erf. Elementwise; x: any shape -> the same shape (div broadcasts).
//
// Visibility: a secret input (frac_bits f = the party's) runs the protocol of crypto/protocols
// (nonlinear.h, approx.h, trig.h; normalization in range.h) and gives a secret result at f; a
// public input (any frac_bits) is decoded, evaluated in float64 (std:: functions, deterministic
// on every party) and encoded at f (round to nearest): public mode does not emulate the
// approximations. Gradients follow autograd/functions.h: they are secret when the upstream
// gradient or a saved value is secret.
//
// Costs: rounds for N = 2 parties, with C the rounds of one comparison (ltz + b2a_bit: 4 today;
// N > 2: each truncation adds a round); bytes per party per element are those of the crypto
// protocol named (formulas in its header, measured in tests/crypto/test_elementary.cpp); a "mul"
// in a backward rule is one Beaver product of two secrets (1 round, 16(N-1) bytes per element, +
// one truncation) or, with a public operand, a local product and a truncation (0 rounds for
// N = 2). Forward and backward rounds are checked by tests/autograd/test_elementary.cpp.
// Accuracy (f = 16, secret inputs; measured by tests/autograd/test_elementary.cpp over dense grids,
// gradients against the analytic float64 derivative at the encoded input): see each function.
//
// Errors: ValueError "[op] ..." for an undefined operand, a secret operand whose frac_bits is not
// the party's, operands of different parties, and for public inputs outside the function's
// domain (log of x <= 0, sqrt of x < 0, rsqrt/reciprocal of 0, ...); never with secret values.

#include "autograd/mpc_tensor.h"

namespace veil {

/// e^x. Secret: crypto::exp (degree-4 Taylor and 8 squarings; 10 rounds, 176 bytes per element
/// for N = 2): relative error <= 3e-3 on [-10, 10] (measured 2.1e-3; absolute <= 2^-14 where
/// e^x < 0.02), valid on [-600, 10]. Backward: dx = g e^x with the saved output (one mul); the
/// product must stay below ~2^15 (x <~ 10 for |g| <= 1).
MpcTensor exp(const MpcTensor& x);

/// Natural logarithm. Secret: crypto::log (normalization x = m 4^k, a degree-8 polynomial of m,
/// + k log 4: C + 4 = 8 rounds, ~435 bytes per element): mixed error |err| / max(|log x|, 1)
/// <= 1e-2 on [1e-4, 250] (measured 3e-5 on [1e-4, 1.6e7]); x is saturated to [2^-16, 2^24].
/// Backward: dx = g / x with 1/x from crypto::reciprocal on the positive grid [2^-16, 2^24]
/// (C + 6 rounds) and one mul: C + 7 = 11 rounds; gradient mixed error measured 3.4e-5.
MpcTensor log(const MpcTensor& x);

/// 1 / x for x != 0 of either sign and unknown scale. Secret: crypto::reciprocal without a range
/// (signed normalization, Goldschmidt on the mantissa: C + 6 = 10 rounds, ~750 bytes per
/// element): mixed error <= 1e-3 on +-[1e-4, 1e4] (measured 3e-5); |x| is saturated to
/// [2^-16, 2^24] (1/0 gives 2^16). Backward: dx = -g y^2 with the saved output y (two muls,
/// 2 rounds; valid while g y^2 stays below ~2^15, e.g. |x| >= 0.01 for |g| <= 1).
MpcTensor reciprocal(const MpcTensor& x);

/// x / y = x * reciprocal(y) (numpy broadcasting), for secret or public x and y. Secret y: as
/// reciprocal (C + 6 rounds) + one mul; public y: 1/y in float64 and a public product (a
/// truncation). Accuracy: that of reciprocal times |x|, plus one truncation. Backward (through
/// the recorded reciprocal and mul): dx = g / y, dy = -g x / y^2. Errors: "[div]" for a public
/// y with a zero element, shapes that do not broadcast, or a secret operand's frac_bits.
MpcTensor div(const MpcTensor& x, const MpcTensor& y);

/// sqrt(x) for x >= 0 of unknown scale. Secret: crypto::sqrt_and_inv_sqrt (normalization,
/// degree-8 polynomials, exact power-of-two scaling: C + 5 = 9 rounds, ~500 bytes per element)
/// also yields 1/sqrt(x) for the backward: |err| <= 1e-3 |sqrt x| + 2^-16 on [1e-4, 1e4]
/// (measured 1.2e-5 beyond the rounding unit); x saturated to [2^-16, 2^24]. Backward:
/// dx = g / (2 sqrt x) = g (0.5 rsqrt x) (one mul and a local truncation: 1 round).
MpcTensor sqrt(const MpcTensor& x);

/// 1 / sqrt(x) for x > 0 of unknown scale (BatchNorm/LayerNorm variances, Adam's second moments).
/// Secret: crypto::inv_sqrt (C + 5 = 9 rounds, ~466 bytes per element), same accuracy statement
/// as sqrt (measured 3e-5). Backward: dx = -g y^3 / 2 with the saved output y (three muls,
/// 3 rounds; valid while g y^3 stays below ~2^15, e.g. x >= 0.01 for |g| <= 1).
MpcTensor rsqrt(const MpcTensor& x);

/// x^k for an integer k with |k| <= 64. Secret: k >= 0: crypto::pow (square-and-multiply,
/// floor(log2 k) + [k not a power of 2] rounds; relative error ~ k 2^-16 while the powers stay
/// below ~2^15); k < 0: pow(reciprocal(x), -k) with the signed, range-free reciprocal (C + 6
/// rounds more; x != 0). Measured mixed error <= 1.3e-4 (gradient 1.8e-4) for k = -3..7 on
/// +-[0.5, 2]. Backward: dx = g k x^(k-1): k >= 2 recomputes x^(k-1) by crypto::pow; k < 0
/// uses g k out / x with the saved 1/x (two muls); k = 1 passes g; k = 0 gives zeros.
/// Errors: "[pow]" for |k| > 64; a public 0 with k < 0.
MpcTensor pow(const MpcTensor& x, int k);

/// cos(x) for any representable x (exact periodic reduction). Secret: crypto::sincos (angle
/// addition over the parties' shares: 1 round, 32 bytes per element for N = 2), which also
/// yields sin(x) for the backward: absolute error <= (N/sqrt 2 + sqrt 2 ceil(log2 N)) 2^-16
/// (measured 3e-5 for N = 2, 4.2e-5 for N = 3). Backward: dx = -g sin(x) (one mul).
MpcTensor cos(const MpcTensor& x);

/// sin(x); as cos. Backward: dx = g cos(x) with the saved cos (one mul).
MpcTensor sin(const MpcTensor& x);

/// Error function. Secret: crypto::erf_with_gaussian (Abramowitz & Stegun 7.1.26 on
/// min(|x|, 4); 32 rounds with today's comparisons): absolute error <= 1e-3 on [-3, 3]
/// (measured 2.2e-4), saturating to +-1 outside; it also yields e^(-min(|x|,4)^2). Backward:
/// dx = g (2 / sqrt pi) e^(-x^2) from that factor (one mul, no extra protocol; measured 4.5e-4).
MpcTensor erf(const MpcTensor& x);

}  // namespace veil
