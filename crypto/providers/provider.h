#pragma once
// Providers of correlated randomness (the preprocessing of Beaver-style protocols).

#include <memory>

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
  SeededProvider(comm::Communicator& comm,
                 ProviderKind kind,
                 const Prg::Seed& seed,
                 const std::vector<Prg::Seed>& mirrors,
                 core::Device device = {});

  BeaverTriple beaver(const BilinearOp& op) override;
  BinaryTriple binary_triple(const core::Shape& shape) override;
  TruncPair trunc_pair(const core::Shape& shape, int bits) override;
  RandomBits random_bits(const core::Shape& shape) override;
  CircuitCorrelation circuit(const CircuitSpec& spec, int64_t n) override;
  void finish() override;

 private:
  std::vector<core::Tensor> request(const CorrelationRequest& req);
  static bool on_device(const CorrelationRequest& req);
  core::Tensor dealer_correction(uint64_t seq, const CorrelationRequest& req);
  void send_ack(uint64_t seq, bool hit, std::span<const std::byte> request);

  comm::Communicator& comm_;
  ProviderKind kind_;
  Prg prg_;
  std::vector<Prg> mirrors_;
  uint64_t seq_ = 0;
  bool finished_ = false;
  core::Device device_;
};

/// The dealer endpoint's service loop. Receives the parties' fingerprints and seeds, then serves
/// party 0 until it sends a shutdown.
///
/// Push protocol: for request number k the dealer pushes to party 0, unasked, its prediction of
/// the request (the one that followed request k-1 last time: training repeats the same sequence
/// every step) together with the matching correction. Party 0 compares it with its real request
/// and acknowledges (without waiting); on a miss it sends the real request and waits for the
/// answer. The dealer computes push k+1 as soon as ack k arrives, while the parties compute, so a
/// correct prediction costs party 0 no round trip. PRG positions advance only for requests
/// actually answered, so answers never depend on predictions. Cost per request: an ack of a few
/// dozen bytes from party 0; a push (or, on a miss, an answer) of 8 |correction| bytes to it.
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

}  // namespace veil::crypto
