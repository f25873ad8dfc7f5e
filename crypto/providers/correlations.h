#pragma once
// Correlated randomness derived from seeds shared with a dealer, written once for both sides.
//
// Every party P_i shares a PRG key s_i with the dealer (or, in the insecure trusted-first-party
// mode, with P_0). For each request, P_i draws its share of every component from PRG(s_i); the
// dealer replays all N draws, computes the one component that makes the correlation hold and sends
// only that correction to P_0, who draws nothing for it. Cost: |correction| * 8 bytes from the
// dealer to P_0 per request and a small request message from P_0; nothing for P_1..P_{N-1}.
//
// Correlations (shares marked * are P_0's corrections):
//   beaver(op):     a, b, c*       with sum c = op(sum a, sum b)          (Beaver, CRYPTO'91)
//                   (op square: a, c* with sum c = (sum a)^2; no b is drawn, b = a)
//   binary_triple:  a, b, c*       with xor c = (xor a) & (xor b)
//   trunc_pair(d):  r, r_d*        with sum r_d = (sum r) >> d (arithmetic) (ABY3 §5.1.1)
//   random_bits:    r_B, r_A*      with r = xor r_B in {0,1} (bit 0) and sum r_A = r
//   circuit(spec):  R, K*          masks and products of a masked-open boolean circuit
//                                  (crypto/providers/bit_circuit.h: comparisons, AND trees)
// Source: MPC_REFERENCE §1 (dealer), CrypTen's TTP provider (semantics only).

#include <span>
#include <vector>

#include "core/tensor.h"
#include "crypto/bilinear.h"
#include "crypto/prg.h"
#include "crypto/providers/bit_circuit.h"

namespace veil::crypto {

/// One request for correlated randomness.
struct CorrelationRequest {
  /// Wire codes: kBeaver 0, kBinaryTriple 1, kTruncPair 2, kRandomBits 3, kShutdown 4,
  /// kCircuit 5.
  enum class Kind : uint8_t {
    kBeaver,
    kBinaryTriple,
    kTruncPair,
    kRandomBits,
    kShutdown,
    kCircuit
  };
  Kind kind = Kind::kBeaver;
  BilinearOp op;        ///< kBeaver
  core::Shape shape;    ///< kBinaryTriple, kTruncPair, kRandomBits; kCircuit: {n elements}
  int bits = 0;         ///< kTruncPair: shift
  CircuitSpec circuit;  ///< kCircuit

  /// "beaver(matmul [128, 784] x [784, 128])" for logs and errors (shapes only).
  std::string str() const;
  /// Shape of P_0's corrected component (kCircuit: {CircuitLayout::corrected_words}).
  core::Shape correction_shape() const;
  /// Wire format: u64 kind, then kBeaver: BilinearOp::serialize(); kCircuit: u64 circuit kind,
  /// u64 width, u64 flags (1 inject, 2 times_masked), u64 extras, shape {n}; the other kinds:
  /// u64 bits, shape.
  std::vector<std::byte> serialize() const;
  /// Throws ProtocolError on malformed bytes.
  static CorrelationRequest deserialize(std::span<const std::byte> bytes);
};

/// The components party `rank` draws from its dealer-seeded PRG for `req`, in a fixed order
/// (see above), on `device` (the same stream on either device). For rank 0 the corrected
/// component is left undefined. kRandomBits and kCircuit are drawn on the CPU only.
std::vector<core::Tensor> draw_correlation(const CorrelationRequest& req,
                                           Prg& prg,
                                           int rank,
                                           core::Device device = {});

/// P_0's corrected component, given every party's draws (indexed by rank).
core::Tensor correlation_correction(const CorrelationRequest& req,
                                    const std::vector<std::vector<core::Tensor>>& draws);

/// True for the requests that streamed_mul_correction serves: an elementwise Beaver product of
/// equal shapes (no broadcasting) or a square pair.
bool is_streamable_mul(const CorrelationRequest& req);

/// P_0's correction c_0 = (sum_j a_j)(sum_j b_j) - sum_{j>=1} c_j of an elementwise Beaver request
/// of n elements, without materialising the other parties' draws: party j's components are drawn
/// chunk by chunk (cache-sized) from forks of prgs[j] (Prg::fork_at; ranges of elements run on the
/// calling thread's intra-op threads), prgs[j] positioned at the start of its draws, and each
/// prgs[j] ends positioned after them, exactly as draw_correlation would leave it. prgs[j] ==
/// nullptr means party j's a and b are given instead (only j = 0: a0, b0, contiguous n elements;
/// the trusted-first-party mode). Same result as correlation_correction on full draws; about 5x
/// less memory traffic (1 write of n words instead of ~15 passes). `square`: a square pair
/// (no b drawn; c_0 = (sum_j a_j)^2 - sum_{j>=1} c_j; b0 is ignored).
core::Tensor streamed_mul_correction(int64_t n,
                                     const std::vector<Prg*>& prgs,
                                     const uint64_t* a0,
                                     const uint64_t* b0,
                                     bool square = false);

/// Index of the corrected component in the draw vector.
std::size_t correction_index(const CorrelationRequest& req);

}  // namespace veil::crypto
