#pragma once
// Internal building blocks of the optimizers and gradient clipping (namespace veil::optim::detail).
// Every helper accepts a public or a secret MpcTensor with the party's frac_bits f and dispatches:
// public values use plain ring arithmetic on the encodings (deterministic, so public mode is a
// fixed-point emulation), secret values use the protocols of crypto/. None records a graph.
// Costs are per party for N parties and n elements; "t" is one truncation of n elements:
// 0 rounds for N = 2, 1 round and 8n bytes (every party but P0) for N > 2.

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "core/tensor.h"
#include "crypto/share.h"

namespace veil::optim::detail {

/// Fractional bits f_c used to encode a public coefficient c in mul_coef: f_c = 14 -
/// floor(log2 |c|) clamped to [f, 40], so that c keeps 15 significant bits (relative encoding error
/// <= 2^-15) while the product before truncation stays below |x| 2^(f + 15) for |c| < 2^(f - 14).
int coef_frac_bits(double c, int frac_bits);

/// The value mul_coef really multiplies by: c rounded to coef_frac_bits(c, f) fractional bits.
/// Used to keep public bookkeeping (bias corrections) consistent with the secret arithmetic.
double coef_value(double c, int frac_bits);

/// x * c for a public real c encoded with coef_frac_bits(c, f) bits (more precise than the f-bit
/// encoding of mul(x, double) for small c such as 1 - beta2 or lr * weight_decay).
/// x: any shape, frac_bits f -> same shape and visibility. Cost: secret: one truncation by f_c
/// bits (local for N = 2; 1 round, 8n bytes for N > 2); public: local.
/// Accuracy: |err| <= 1 ulp (2^-f) + |x c| 2^-15. The 2-party truncation fails with probability
/// about |x c| 2^(f + f_c - 63) per element (<= |x| 2^-32 for |c| < 4).
MpcTensor mul_coef(const MpcTensor& x, double c);

/// This party's additive share of x: the share of a secret, or for a public value its encoding at
/// party 0 and zeros elsewhere (a valid sharing; local).
crypto::AShare share_of(const MpcTensor& x);

/// x scaled by 2^bits exactly (a left shift of the ring value or of every share; 0 <= bits < 40).
/// Local. Overflows only when |x| 2^(f + bits) >= 2^63.
MpcTensor shift_left(const MpcTensor& x, int bits);

/// The tensors flattened and concatenated into one vector [sum numel]: public when all are
/// public, otherwise secret (a public piece becomes a share held by party 0: local). Lets the
/// elementwise protocols of an optimizer step run once for all parameters (the rounds of one
/// tensor). Throws ValueError for an empty list, undefined tensors or different frac_bits.
MpcTensor flat_cat(const std::vector<MpcTensor>& xs, const char* op);

/// The inverse of flat_cat: consecutive slices of `flat` reshaped to `shapes` (local).
std::vector<MpcTensor> split(const MpcTensor& flat, const std::vector<core::Shape>& shapes);

/// min(max(x, lo), hi) elementwise for public lo <= hi, at frac_bits f.
/// Secret: the bits l = [x < lo] and h = [x > hi] from one crypto::lt on the 2n-element
/// concatenation (x - lo, hi - x) against 0, then x - (l + h) x + lo l + hi h with one Beaver
/// product of the integer l + h and x (no truncation). Cost: R_lt(2n) + 1 rounds,
/// B_lt(2n) + 16(N-1)n bytes (R_lt, B_lt: the rounds and bytes of crypto::lt). Exact.
/// Public: exact on the ring. Throws ValueError naming `op` for lo > hi.
MpcTensor clamp(const MpcTensor& x, double lo, double hi, const char* op);

/// 1 / sqrt(x) elementwise. Secret: crypto::inv_sqrt (its domain and accuracy); public: float64 of
/// the decoded value, encoded (ValueError for x <= 0).
MpcTensor inv_sqrt(const MpcTensor& x);

/// 1 / x elementwise for x in the public range [lo, hi], 0 < lo. Secret: crypto::reciprocal with
/// the range (Newton from 2 / (lo + hi), 2 rounds per iteration); public: float64, encoded.
MpcTensor reciprocal(const MpcTensor& x, double lo, double hi);

}  // namespace veil::optim::detail
