// Session state export / resume (crypto/session_state.h): a session resumed from its exported
// state, with new OS keys elsewhere, a new dealer and a new hub, continues every stream (own,
// pairwise, common, dealer) bit for bit; mismatched resumes are refused at setup.

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "crypto/digest.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/session_state.h"
#include "tests/harness/errors.h"
#include "tests/harness/simulate.h"

using veil::core::Tensor;
using veil::crypto::AShare;
using veil::crypto::Party;
using veil::crypto::SessionState;
namespace crypto = veil::crypto;
namespace vt = veil::testing;

namespace {

// One "step" that touches every stream: PRZS input sharing (next/prev), a Beaver matmul with a
// truncation pair and a comparison circuit (dealer stream), a public shuffle (common) and a
// private draw (own). Returns this party's raw shares, the revealed ring values and the draws.
std::vector<uint64_t> workload_step(Party& p, int s) {
  const int n = p.world_size();
  const Tensor xv = vt::uniform({6, 5}, -2, 2, 100 + static_cast<uint64_t>(s));
  const Tensor yv = vt::uniform({5, 4}, -2, 2, 200 + static_cast<uint64_t>(s));
  const AShare x = crypto::share(p, p.rank() == 0 ? xv : Tensor(), 0, xv.shape());
  const AShare y = crypto::share(p, p.rank() == n - 1 ? yv : Tensor(), n - 1, yv.shape());
  const AShare z = crypto::matmul(p, x, y);
  const AShare c = crypto::sign(p, z);
  std::vector<int64_t> perm = {0, 1, 2, 3, 4, 5, 6, 7};
  p.common_prg().shuffle(perm);
  std::vector<uint64_t> out = z.data.to_vector<uint64_t>();
  const auto cs = c.data.to_vector<uint64_t>();
  out.insert(out.end(), cs.begin(), cs.end());
  const auto r = crypto::reveal(p, z).to_vector<uint64_t>();
  out.insert(out.end(), r.begin(), r.end());
  for (int64_t v : perm) {
    out.push_back(static_cast<uint64_t>(v));
  }
  out.push_back(p.own_prg().next_u64());
  return out;
}

struct Run {
  std::vector<std::vector<uint64_t>> after;  // per rank: outputs of steps k..total-1
  std::vector<SessionState> states;          // per rank: the state exported before step k
};

// Steps 0..total-1 in one session, exporting each party's state before step k.
Run uninterrupted(const crypto::LaunchOptions& o, int k, int total) {
  struct PerParty {
    std::vector<uint64_t> after;
    SessionState state;
  };
  auto per = crypto::launch<PerParty>(o, [&](Party& p) {
    PerParty r;
    for (int s = 0; s < total; ++s) {
      if (s == k) {
        r.state = p.session_state();
      }
      auto v = workload_step(p, s);
      if (s >= k) {
        r.after.insert(r.after.end(), v.begin(), v.end());
      }
    }
    return r;
  });
  Run run;
  for (auto& r : per) {
    run.after.push_back(std::move(r.after));
    run.states.push_back(r.state);
  }
  return run;
}

// A new session (new hub, new dealer) resumed from `states`, running steps k..total-1. When
// `rebuild` is set, each party first draws from its local streams (as building a model does) and
// then rewinds them with restore_streams.
std::vector<std::vector<uint64_t>> resumed(crypto::LaunchOptions o,
                                           const std::vector<SessionState>& states,
                                           int k,
                                           int total,
                                           bool rebuild) {
  const crypto::PartyOptions base = o.party;
  o.party_for_rank = [&, base](int rank) {
    crypto::PartyOptions po = base;
    po.resume = states[static_cast<std::size_t>(rank)];
    return po;
  };
  return crypto::launch<std::vector<uint64_t>>(o, [&](Party& p) {
    if (rebuild) {
      (void)p.common_prg().ring({40});
      (void)crypto::zero_share(p, {7, 3});
      (void)p.own_prg().next_u64();
      p.restore_streams(states[static_cast<std::size_t>(p.rank())]);
    }
    std::vector<uint64_t> after;
    for (int s = k; s < total; ++s) {
      auto v = workload_step(p, s);
      after.insert(after.end(), v.begin(), v.end());
    }
    return after;
  });
}

using veil::testing::error_of;

}  // namespace

TEST_CASE("a resumed session continues every stream bit for bit", "[crypto][session]") {
  for (auto kind : {crypto::ProviderKind::kDealer, crypto::ProviderKind::kTrustedFirstParty}) {
    for (int n : {2, 3}) {
      // GIVEN an uninterrupted session of 5 steps whose parties export their state before step k
      constexpr int kTotal = 5;
      std::mt19937 gen(static_cast<unsigned>(17 + n));
      const int k = std::uniform_int_distribution<int>(1, kTotal - 1)(gen);
      INFO("provider " << crypto::provider_name(kind) << ", " << n << " parties, k = " << k);
      const auto o = vt::test_options(n, kind);
      const Run full = uninterrupted(o, k, kTotal);
      // WHEN a new session (OS keys for nothing: every key restored) resumes from the states
      const auto again = resumed(o, full.states, k, kTotal, /*rebuild=*/false);
      const auto rebuilt = resumed(o, full.states, k, kTotal, /*rebuild=*/true);
      // THEN every party's shares, the revealed values and the public/private draws are identical
      for (int r = 0; r < n; ++r) {
        const auto i = static_cast<std::size_t>(r);
        REQUIRE(!full.after[i].empty());
        CHECK(again[i] == full.after[i]);
        CHECK(rebuilt[i] == full.after[i]);
      }
      // AND a fresh session (new keys) gives other shares: the equality above is not trivial
      const Run other = uninterrupted(o, k, kTotal);
      CHECK(other.after[0] != full.after[0]);
      CHECK(other.states[0].run_id != full.states[0].run_id);
    }
  }
}

TEST_CASE("the exported state: fields, run id and resume point", "[crypto][session]") {
  const auto o = vt::test_options(3);
  const auto states = crypto::launch<SessionState>(o, [](Party& p) {
    (void)workload_step(p, 0);
    return p.session_state();
  });
  for (int r = 0; r < 3; ++r) {
    const SessionState& s = states[static_cast<std::size_t>(r)];
    CHECK(s.rank == r);
    CHECK(s.world_size == 3);
    CHECK(s.frac_bits == 16);
    CHECK(s.provider == crypto::ProviderKind::kDealer);
    CHECK(s.run_id == states[0].run_id);
    CHECK(s.run_id == crypto::run_id_for(s.common.key));
    CHECK(s.resume_point() == states[0].resume_point());
    // the pairwise key this party generated is its successor's "prev"
    CHECK(s.next.key == states[static_cast<std::size_t>((r + 1) % 3)].prev.key);
    CHECK(s.next.position == states[static_cast<std::size_t>((r + 1) % 3)].prev.position);
    CHECK(s.dealer.position > 0);
    CHECK(s.op_counter > 0);
    // text round trip
    const auto back = SessionState::from_fields(s.to_fields());
    CHECK(back.to_fields() == s.to_fields());
    CHECK(back.own == s.own);
    CHECK(back.dealer == s.dealer);
  }
}

TEST_CASE("malformed session state fields are refused without their values", "[crypto][session]") {
  SessionState s;
  s.rank = 1;
  s.world_size = 2;
  s.run_id = "0123456789abcdef";
  s.own.key.fill(0xab);
  auto f = s.to_fields();
  CHECK(SessionState::from_fields(f).own == s.own);
  auto missing = f;
  missing.erase("dealer.position");
  CHECK_THROWS_WITH(SessionState::from_fields(missing),
                    Catch::Contains("[SessionState]") && Catch::Contains("'dealer.position'"));
  auto bad_key = f;
  bad_key["own.key"] = std::string(31, 'a') + "z";
  const std::string what = error_of([&] { (void)SessionState::from_fields(bad_key); });
  CHECK_THAT(what, Catch::Contains("'own.key'"));
  CHECK_THAT(what, !Catch::Contains("aaaa"));  // never the (secret) value
  auto version = f;
  version["format"] = "99";
  CHECK_THROWS_WITH(SessionState::from_fields(version), Catch::Contains("format version"));
  auto provider = f;
  provider["provider"] = "oracle";
  CHECK_THROWS_AS(SessionState::from_fields(provider), veil::ValueError);
  // mismatches lists the differing setup fields
  const auto d = s.mismatches(0, 3, 16, crypto::ProviderKind::kDealer);
  REQUIRE(d.size() == 2);
  CHECK_THAT(d[0], Catch::Contains("rank: 1 in the state, 0 expected"));
  CHECK_THAT(d[1], Catch::Contains("world_size: 2 in the state, 3 expected"));
}

TEST_CASE("the dealer stream message carries key and position", "[crypto][session]") {
  crypto::Prg::Seed key{};
  key.fill(7);
  const auto msg = crypto::encode_dealer_stream(key, 0x0102030405060708ULL);
  REQUIRE(msg.size() == crypto::kDealerStreamBytes);
  const auto [k, pos] = crypto::decode_dealer_stream(msg);
  CHECK(k == key);
  CHECK(pos == 0x0102030405060708ULL);
  const std::vector<std::byte> short_msg(16);
  CHECK_THROWS_AS(crypto::decode_dealer_stream(short_msg), veil::ProtocolError);
}

TEST_CASE("mismatched resumes are refused at setup with a clear message", "[crypto][session]") {
  const auto o = vt::test_options(2);
  // GIVEN states exported by both parties before steps 1 and 2 of one run, and by another run
  auto states = crypto::launch<std::vector<SessionState>>(o, [](Party& p) {
    std::vector<SessionState> out;
    for (int s = 0; s < 2; ++s) {
      (void)workload_step(p, s);
      out.push_back(p.session_state());
    }
    return out;
  });
  const auto other_run = crypto::launch<SessionState>(o, [](Party& p) {
    (void)workload_step(p, 0);
    return p.session_state();
  });
  auto launch_with = [&](std::function<std::optional<SessionState>(int)> pick, int n = 2) {
    auto lo = vt::test_options(n);
    lo.party_for_rank = [pick, base = lo.party](int rank) {
      crypto::PartyOptions po = base;
      po.resume = pick(rank);
      return po;
    };
    return error_of([&] { crypto::launch(lo, [](Party&) {}); });
  };
  // WHEN party 1 starts fresh while party 0 resumes THEN the fingerprints differ in "resume"
  std::string what = launch_with([&](int r) -> std::optional<SessionState> {
    if (r == 0) {
      return states[0][0];
    }
    return std::nullopt;
  });
  CHECK_THAT(what, Catch::Contains("fingerprints differ") && Catch::Contains("resume"));
  // WHEN the parties resume different steps of the same run THEN refused the same way
  what = launch_with([&](int r) { return states[static_cast<std::size_t>(r)][r == 0 ? 0 : 1]; });
  CHECK_THAT(what, Catch::Contains("fingerprints differ") && Catch::Contains("resume"));
  // WHEN party 1 resumes a state of another run THEN refused
  what = launch_with([&](int r) { return r == 0 ? states[0][0] : other_run[1]; });
  CHECK_THAT(what, Catch::Contains("fingerprints differ") && Catch::Contains("resume"));
  // WHEN the ranks' states are swapped THEN each party names the rank field
  what = launch_with([&](int r) { return states[static_cast<std::size_t>(1 - r)][0]; });
  CHECK_THAT(what, Catch::Contains("[Party] the resume state does not fit this party") &&
                       (Catch::Contains("rank: 1 in the state, 0 expected") ||
                        Catch::Contains("rank: 0 in the state, 1 expected")));
  // WHEN a 2-party state is resumed in a 3-party session THEN the world size is named
  what = launch_with([&](int r) { return states[static_cast<std::size_t>(r % 2)][0]; }, 3);
  CHECK_THAT(what, Catch::Contains("world_size: 2 in the state, 3 expected"));
  // WHEN a state's pairwise key was tampered with (same run id and step) THEN the successor
  // refuses: the keys it restored and received differ
  what = launch_with([&](int r) {
    SessionState s = states[static_cast<std::size_t>(r)][0];
    if (r == 1) {
      s.prev.key[0] ^= 1;
    }
    return s;
  });
  CHECK_THAT(what, Catch::Contains("pairwise key of party 0 differs"));
}

TEST_CASE("restore_streams refuses another session or a session that already communicated",
          "[crypto][session]") {
  const auto o = vt::test_options(2);
  auto both = crypto::launch<std::vector<SessionState>>(o, [](Party& p) {
    std::vector<SessionState> out;
    for (int s = 0; s < 2; ++s) {
      (void)workload_step(p, s);
      out.push_back(p.session_state());
    }
    return out;
  });
  const std::vector<SessionState> states = {both[0][0], both[1][0]};
  // GIVEN a fresh session: its keys differ from the state's
  const auto fresh = crypto::launch<std::string>(o, [&](Party& p) {
    return error_of([&] { p.restore_streams(states[static_cast<std::size_t>(p.rank())]); });
  });
  CHECK_THAT(fresh[0], Catch::Contains("belongs to another session"));
  // GIVEN a resumed session that runs a protocol before restoring
  auto ro = o;
  ro.party_for_rank = [&, base = o.party](int rank) {
    crypto::PartyOptions po = base;
    po.resume = states[static_cast<std::size_t>(rank)];
    return po;
  };
  const auto late = crypto::launch<std::vector<std::string>>(ro, [&](Party& p) {
    const auto r = static_cast<std::size_t>(p.rank());
    std::vector<std::string> e = {p.resumed_from(), p.run_id()};
    // the state of another step of the same run is not the one this session resumed
    e.push_back(error_of([&] { p.restore_streams(both[r][1]); }));
    (void)workload_step(p, 1);
    e.push_back(error_of([&] { p.restore_streams(states[r]); }));
    return e;
  });
  for (const auto& e : late) {
    CHECK(e[0] == states[0].resume_point());
    CHECK(e[1] == states[0].run_id);
    CHECK_THAT(e[2], Catch::Contains("expected the state this session was resumed from"));
    CHECK_THAT(e[3], Catch::Contains("expected no communication"));
  }
}

TEST_CASE("sha256 and hex helpers", "[crypto][session]") {
  // FIPS 180-2 test vector "abc"
  const std::string abc = "abc";
  CHECK(crypto::sha256_hex(std::as_bytes(std::span<const char>(abc))) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  crypto::Sha256 h;
  h.update("a").update("bc");
  const auto d = h.digest();
  CHECK(crypto::to_hex(d) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK_THROWS_AS(h.update("x"), veil::ValueError);
}

TEST_CASE("setup cost of a resumed session: no common-key round, the resume point to the dealer",
          "[crypto][session][cost]") {
  for (int n : {2, 3}) {
    INFO(n << " parties");
    const auto o = vt::test_options(n);
    struct Setup {
      veil::comm::CommStats stats;
      SessionState state;
    };
    // GIVEN the setup traffic of a fresh session (stats right after the constructor)
    const auto fresh = crypto::launch<Setup>(o, [](Party& p) {
      Setup s{p.comm().stats(), {}};
      (void)workload_step(p, 0);
      s.state = p.session_state();
      return s;
    });
    // WHEN a session is resumed from the exported states
    auto ro = o;
    ro.party_for_rank = [&, base = o.party](int rank) {
      crypto::PartyOptions po = base;
      po.resume = fresh[static_cast<std::size_t>(rank)].state;
      return po;
    };
    const auto resumed =
        crypto::launch<veil::comm::CommStats>(ro, [](Party& p) { return p.comm().stats(); });
    // THEN it skips the common-key all_reduce (one round less), sends the same pairwise keys,
    // and tells the dealer the same 24-byte stream message; the fingerprint grows by the resume
    // point ("resume=no" before)
    for (int r = 0; r < n; ++r) {
      const auto i = static_cast<std::size_t>(r);
      const auto& f = fresh[i].stats;
      const auto& s = resumed[i];
      CHECK(s.total.rounds == f.total.rounds - 1);
      CHECK(s.by_op.count("setup") == 1);
      const auto longer = static_cast<int64_t>(fresh[i].state.resume_point().size()) - 2;
      // what the fresh session's all_reduce of the 16-byte key contributions sent
      const auto common_bytes = f.total.bytes_sent - s.total.bytes_sent + (n - 1) * longer;
      CHECK(common_bytes == 16 * (n - 1));
      CHECK(s.dealer.bytes_sent - f.dealer.bytes_sent == longer);
      CHECK(f.dealer.messages_sent == 2);  // fingerprint, then the dealer stream (key + position)
      CHECK(s.dealer.messages_sent == 2);
    }
  }
}
