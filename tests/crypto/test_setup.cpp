// Session setup: the fingerprint check refuses mismatched setups with the differing fields, and
// deterministic (insecure) keys make two runs bit-identical.

#include <catch2/catch.hpp>

#include "crypto/fingerprint.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"
#include "tests/harness/simulate.h"

using veil::core::Tensor;
using veil::crypto::AShare;
using veil::crypto::Party;
namespace crypto = veil::crypto;
namespace vt = veil::testing;

TEST_CASE("a setup fingerprint mismatch is refused with the differing fields", "[crypto][setup]") {
  for (int n : {2, 3}) {
    // GIVEN party 1 running another program with another frac_bits
    auto o = vt::test_options(n);
    o.party_for_rank = [base = o.party](int rank) {
      crypto::PartyOptions p = base;
      p.program_id = rank == 1 ? "mlp-v2" : "mlp-v1";
      p.frac_bits = rank == 1 ? 20 : 16;
      return p;
    };
    // WHEN the session starts THEN it is refused before any protocol, naming both fields
    try {
      crypto::launch(o, [](Party&) { FAIL("setup should have been refused"); });
      FAIL("expected an exception");
    } catch (const veil::Error& e) {
      const std::string what = e.what();
      CHECK_THAT(what, Catch::Contains("fingerprints differ"));
      CHECK_THAT(what, Catch::Contains("frac_bits"));
      CHECK_THAT(what, Catch::Contains("program"));
    }
  }
}

TEST_CASE("fingerprint text round trip and diff", "[crypto][setup]") {
  crypto::PartyOptions o;
  const auto fp = crypto::party_fingerprint(o, 3);
  const auto back = crypto::SetupFingerprint::parse(fp.serialize());
  CHECK(back.fields == fp.fields);
  CHECK(crypto::fingerprint_diff(fp, back, "party 1").empty());
  auto other = fp;
  other.fields.insert_or_assign("world_size", std::string(1, '2'));
  const auto d = crypto::fingerprint_diff(fp, other, "party 1");
  REQUIRE(d.size() == 1);
  CHECK(d[0] == "world_size: '3' here, '2' at party 1");
  CHECK_THROWS_AS(crypto::SetupFingerprint::parse("no equals sign\n"), veil::ProtocolError);
}

TEST_CASE("insecure deterministic keys make runs bit-identical, they need the flag",
          "[crypto][setup]") {
  const Tensor x = vt::uniform({16, 10}, -4, 4, 3);
  auto run = [&](uint64_t seed) {
    auto o = vt::test_options(2);
    o.party.insecure = true;
    o.party.insecure_seed = seed;
    return crypto::launch<std::vector<uint64_t>>(o, [&](Party& p) {
      const AShare xs = crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, x.shape());
      const AShare s = crypto::softmax(p, xs);
      auto v = s.data.to_vector<uint64_t>();  // this party's raw share
      const auto r = crypto::reveal(p, s).to_vector<uint64_t>();
      v.insert(v.end(), r.begin(), r.end());
      return v;
    });
  };
  const auto a = run(7);
  const auto b = run(7);
  const auto c = run(8);
  CHECK(a == b);        // same shares and same revealed bits
  CHECK(a[0] != c[0]);  // another seed, other shares
  auto o = vt::test_options(2);
  o.party.insecure_seed = 7;  // without insecure = true
  CHECK_THROWS_AS(crypto::launch(o, [](Party&) {}), veil::ValueError);
}
