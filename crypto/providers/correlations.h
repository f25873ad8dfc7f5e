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
//   binary_triple:  a, b, c*       with xor c = (xor a) & (xor b)
//   trunc_pair(d):  r, r_d*        with sum r_d = (sum r) >> d (arithmetic) (ABY3 §5.1.1)
//   random_bits:    r_B, r_A*      with r = xor r_B in {0,1} (bit 0) and sum r_A = r
// Source: MPC_REFERENCE §1 (dealer), CrypTen's TTP provider (semantics only).

#include <span>
#include <vector>

#include "core/tensor.h"
#include "crypto/bilinear.h"
#include "crypto/prg.h"

namespace veil::crypto {

/// One request for correlated randomness.
struct CorrelationRequest {
  enum class Kind : uint8_t { kBeaver, kBinaryTriple, kTruncPair, kRandomBits, kShutdown };
  Kind kind = Kind::kBeaver;
  BilinearOp op;      ///< kBeaver
  core::Shape shape;  ///< kBinaryTriple, kTruncPair, kRandomBits
  int bits = 0;       ///< kTruncPair: shift

  /// "beaver(matmul [128, 784] x [784, 128])" for logs and errors (shapes only).
  std::string str() const;
  core::Shape correction_shape() const;
  std::vector<std::byte> serialize() const;
  /// Throws ProtocolError on malformed bytes.
  static CorrelationRequest deserialize(std::span<const std::byte> bytes);
};

/// The components party `rank` draws from its dealer-seeded PRG for `req`, in a fixed order
/// (see above). For rank 0 the corrected component is left undefined.
std::vector<core::Tensor> draw_correlation(const CorrelationRequest& req, Prg& prg, int rank);

/// P_0's corrected component, given every party's draws (indexed by rank).
core::Tensor correlation_correction(const CorrelationRequest& req,
                                    const std::vector<std::vector<core::Tensor>>& draws);

/// Index of the corrected component in the draw vector.
std::size_t correction_index(const CorrelationRequest& req);

}  // namespace veil::crypto
