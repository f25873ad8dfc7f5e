#pragma once
// Setup fingerprint: everything the endpoints of a session must agree on before any protocol
// runs — veil version, ring, fixed-point frac_bits, world size, provider, the protocol suite, and
// a program/model identifier. Exchanged at connect (Party's constructor, DealerService::serve);
// a mismatch is refused with the differing fields, instead of producing garbage later.

#include <map>
#include <string>
#include <vector>

namespace veil::crypto {

struct PartyOptions;

/// Ordered key/value fields, serialised as "key=value\n" lines.
struct SetupFingerprint {
  std::map<std::string, std::string> fields;

  std::string serialize() const;
  /// Throws ProtocolError on malformed text.
  static SetupFingerprint parse(const std::string& text);
};

/// Identifier of the protocol algorithms whose outputs parties must compute alike.
inline constexpr const char* kProtocolSuite =
    "beaver/bilinear-1;trunc=securml2|dealer-pair-unbiased;a2b=csa+kogge-stone;"
    "cmp=masked-open-radix4+inject;max=allpairs;exp=taylor4x2^8+2bits;"
    "range=normalize4^k;recip=goldschmidt|newton;log=cheb8;sqrt=cheb8;trig=share-angles";

/// The fingerprint of a party with these options in a session of `world_size` parties.
SetupFingerprint party_fingerprint(const PartyOptions& options, int world_size);

/// The fields the dealer checks: version, ring, world size, provider, protocol suite.
SetupFingerprint dealer_fingerprint(int world_size);

/// "frac_bits: 16 here, 20 at party 1" for every field that differs (over the keys of `mine`
/// only, when `only_mine_keys`); empty when they agree.
std::vector<std::string> fingerprint_diff(const SetupFingerprint& mine,
                                          const SetupFingerprint& theirs,
                                          const std::string& who,
                                          bool only_mine_keys = false);

}  // namespace veil::crypto
