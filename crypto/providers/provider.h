#pragma once
// Providers of correlated randomness (the preprocessing of Beaver-style protocols).

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "core/tensor.h"
#include "crypto/bilinear.h"
#include "crypto/prg.h"
#include "crypto/providers/correlations.h"

namespace veil::crypto {

/// Which provider a session uses.
enum class ProviderKind : uint8_t {
  /// Trusted third party: a separate dealer endpoint that never sees data (default, secure in the
  /// semi-honest model with a non-colluding dealer).
  kDealer,
  /// INSECURE: party 0 generates all correlated randomness and therefore learns every party's
  /// masks. Only for benchmarking the online phase; requires PartyOptions::insecure.
  kTrustedFirstParty,
};

/// "dealer" / "tfp".
const char* provider_name(ProviderKind k);
/// Parses "dealer" / "ttp" / "tfp" / "trusted_first_party"; throws ValueError otherwise.
ProviderKind parse_provider(std::string_view s);

/// This party's shares of one Beaver triple: c = op(a, b) after summing over parties.
struct BeaverTriple {
  core::Tensor a, b, c;
};
/// This party's share of an elementwise Beaver triple (or square pair) of n elements left in its
/// keystream instead of memory: its a, b and c are the n ring words at keystream bytes a_at, b_at
/// and c_at of `stream` (for a square b_at == a_at), exactly the words beaver() would have
/// returned. Party 0's c is the corrected component instead, held in `c` (host memory); the other
/// parties' `c` is undefined. A protocol draws the words block by block inside its own passes
/// (Prg::fork_at, one fork per range of elements), so the triple is never written to memory and
/// read back: 24 bytes per element less memory traffic per pass for a keystream draw per pass.
struct StreamedTriple {
  Prg stream;
  uint64_t a_at = 0;
  uint64_t b_at = 0;
  uint64_t c_at = 0;
  core::Tensor c;
  bool square = false;
};
/// This party's XOR shares of a binary triple: c = a & b after xoring over parties.
struct BinaryTriple {
  core::Tensor a, b, c;
};
/// Shares of r (uniform in the ring) and of r >> bits (arithmetic shift).
struct TruncPair {
  core::Tensor r, r_shifted;
};
/// Shares of random bits r in {0, 1}: XOR shares in bit 0 of `binary` and additive shares in
/// `arith` (frac_bits 0).
struct RandomBits {
  core::Tensor arith, binary;
};

/// This party's parts of a circuit correlation (crypto/providers/bit_circuit.h): the random part
/// R and the corrected part K, laid out as CircuitLayout says.
struct CircuitCorrelation {
  core::Tensor random, corrected;
};

/// Interface used by the protocols. All parties must make the same calls in the same order.
class Provider {
 public:
  virtual ~Provider() = default;
  Provider() = default;
  Provider(const Provider&) = delete;
  Provider& operator=(const Provider&) = delete;

  virtual BeaverTriple beaver(const BilinearOp& op) = 0;
  /// The triple of an elementwise `op` (BilinearOp::is_elementwise) for operands in host memory,
  /// left in the keystream (StreamedTriple), or nullopt when this provider cannot do that (then
  /// the caller uses beaver(); nothing was drawn). Same values, dealer traffic and stream positions
  /// as beaver(op), so parties may mix the two calls.
  virtual std::optional<StreamedTriple> streamed_beaver(const BilinearOp& /*op*/) {
    return std::nullopt;
  }
  virtual BinaryTriple binary_triple(const core::Shape& shape) = 0;
  virtual TruncPair trunc_pair(const core::Shape& shape, int bits) = 0;
  virtual RandomBits random_bits(const core::Shape& shape) = 0;
  /// Masks and products for evaluating `spec` on n elements. Dealer traffic: 8 *
  /// CircuitLayout(spec, n).corrected_words bytes to party 0.
  virtual CircuitCorrelation circuit(const CircuitSpec& spec, int64_t n) = 0;
  /// Ends the session with the provider (party 0 releases the dealer). Collective.
  virtual void finish() {}
};

/// Party side of the seed-based providers. Party i draws its components from PRG(seed_i); party
/// 0 obtains the corrected component either from the dealer endpoint (kDealer: one request
/// message and one reply of |correction| * 8 bytes per call, counted in CommStats::dealer) or by
/// replaying every party's PRG itself (kTrustedFirstParty: `mirrors` holds the other parties'
/// dealer seeds, which is what makes that mode insecure).
class SeededProvider : public Provider {
 public:
  /// `seed` is this party's seed shared with the dealer; `mirrors` is empty except for party 0
  /// in trusted-first-party mode, where mirrors[j] is party j's seed (mirrors[0] unused).
  /// `device`: where the arithmetic correlations (Beaver triples, truncation pairs) are drawn:
  /// this party's share of them comes from the PRG on that device (the GPU PRG gives the same
  /// stream), and party 0's correction is copied there.
  /// `position` and `mirror_positions` (empty: all 0) are the stream positions to start at: a
  /// resumed session continues the streams of its checkpoint (crypto/session_state.h).
  SeededProvider(comm::Communicator& comm,
                 ProviderKind kind,
                 const Prg::Seed& seed,
                 const std::vector<Prg::Seed>& mirrors,
                 core::Device device = {},
                 uint64_t position = 0,
                 const std::vector<uint64_t>& mirror_positions = {});

  BeaverTriple beaver(const BilinearOp& op) override;
  /// Party i's a, b (and c for i >= 1) stay in PRG(seed_i); party 0's c comes from the dealer or
  /// its replay as for beaver(). Throws ValueError for an op that is not elementwise.
  std::optional<StreamedTriple> streamed_beaver(const BilinearOp& op) override;
  BinaryTriple binary_triple(const core::Shape& shape) override;
  TruncPair trunc_pair(const core::Shape& shape, int bits) override;
  RandomBits random_bits(const core::Shape& shape) override;
  CircuitCorrelation circuit(const CircuitSpec& spec, int64_t n) override;
  void finish() override;

  /// Position of this party's stream shared with the dealer (keystream bytes drawn so far): what
  /// a checkpoint records and the dealer seeks to when the session resumes.
  uint64_t position() const { return prg_.position(); }

 private:
  std::vector<core::Tensor> request(const CorrelationRequest& req);
  static bool on_device(const CorrelationRequest& req);
  core::Tensor dealer_correction(uint64_t seq, const CorrelationRequest& req);
  /// Trusted first party: the corrected c of an elementwise triple, replaying every party's
  /// stream; party 0's own a and b are read from `own` (positioned at their start).
  core::Tensor replayed_mul_correction(const CorrelationRequest& req,
                                       Prg* own,
                                       const uint64_t* a0,
                                       const uint64_t* b0);
  void send_ack(uint64_t seq, bool hit, std::span<const std::byte> request);

  comm::Communicator& comm_;
  ProviderKind kind_;
  Prg prg_;
  std::vector<Prg> mirrors_;
  uint64_t seq_ = 0;
  bool finished_ = false;
  core::Device device_;
};

/// The dealer endpoint's service loop. Receives the parties' fingerprints and their streams (seed
/// and start position: a resumed session continues where its checkpoint stopped, so the dealer
/// itself keeps no state across restarts), then serves party 0 until it sends a shutdown.
///
/// Push protocol: for request number k the dealer pushes to party 0, unasked, its prediction of
/// the request (the one that followed request k-1 last time: training repeats the same sequence
/// every step) together with the matching correction. Party 0 compares it with its real request
/// and acknowledges (without waiting); on a miss it sends the real request and waits for the
/// answer. The dealer computes push k+1 as soon as ack k arrives, while the parties compute, so a
/// correct prediction costs party 0 no round trip. PRG positions advance only for requests
/// actually answered, so answers never depend on predictions. Cost per request: an ack of a few
/// dozen bytes from party 0; a push (or, on a miss, an answer) of 8 |correction| bytes to it.
/// Party 0 ends the session with a shutdown request in place of an ack and does not wait for the
/// push already on its way; a push that fails because party 0 has closed right after its shutdown
/// ends the session normally.
class DealerService {
 public:
  explicit DealerService(comm::Communicator& comm, bool lookahead = true);
  /// Runs until shutdown. Throws CommError / ProtocolError on failure.
  void serve();
  /// Number of requests answered so far, and how many were answered by a correct push.
  uint64_t requests() const { return seq_; }
  uint64_t predicted() const { return hits_; }

 private:
  /// The correction for `req`, drawing party j's components from keystream position
  /// positions[j] (updated to the position after the draws).
  core::Tensor compute(const CorrelationRequest& req, std::vector<uint64_t>& positions) const;

  comm::Communicator& comm_;
  bool lookahead_;
  std::vector<Prg::Seed> seeds_;
  std::vector<uint64_t> positions_;
  uint64_t seq_ = 0;
  uint64_t hits_ = 0;
};

/// Tag of the dealer message with sequence number `seq`.
std::string dealer_tag(uint64_t seq);
/// Tag under which parties send their dealer seeds at setup.
inline constexpr const char* kDealerSeedTag = "setup#dealer_seed";

/// Bytes of the setup message under kDealerSeedTag: the 16-byte key, then the stream position as
/// 8 little-endian bytes (0 in a fresh session; a resumed one continues its checkpoint's stream).
inline constexpr std::size_t kDealerStreamBytes = sizeof(Prg::Seed) + sizeof(uint64_t);

/// The setup message announcing a dealer stream: key then position (kDealerStreamBytes bytes).
std::vector<std::byte> encode_dealer_stream(const Prg::Seed& key, uint64_t position);
/// Decodes encode_dealer_stream()'s message. Throws ProtocolError for a message of another size.
std::pair<Prg::Seed, uint64_t> decode_dealer_stream(std::span<const std::byte> message);

}  // namespace veil::crypto
