// Every protocol against a plaintext float64 (or exact integer) reference, for 2 and 3 parties
// and both providers. Tolerances are multiples of the fixed-point unit 2^-16.

#include <cmath>

#include <catch2/catch.hpp>

#include "core/elementwise.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"
#include "crypto/protocols/nonlinear.h"
#include "crypto/providers/correlations.h"
#include "tests/harness/protocols.h"
#include "tests/harness/simulate.h"

using veil::core::DType;
using veil::core::Tensor;
using veil::crypto::AShare;
using veil::crypto::Party;
using veil::crypto::ProviderKind;
namespace crypto = veil::crypto;
namespace core = veil::core;
namespace vt = veil::testing;

namespace {

using vt::run_binary_op;
using vt::run_unary_op;
using vt::Setting;

std::vector<Setting> settings() {
  return vt::all_settings();
}

Tensor map_double(const Tensor& x, double (*f)(double)) {
  return core::map<double, double>(x, f);
}

}  // namespace

TEST_CASE("share and reveal round trip, reveal_to opens to one party only", "[crypto]") {
  for (auto s : settings()) {
    // GIVEN values across the fixed-point range, including negatives
    const Tensor x = vt::uniform({7, 5}, -1000, 1000, 1);
    // WHEN party 0 shares and everyone reveals
    const Tensor got = run_unary_op(s, x, [](Party&, const AShare& a) { return a; });
    // THEN the round trip error is at most half a unit
    CHECK(vt::max_abs_diff(got, x) <= vt::ulp() / 2);
    auto to = crypto::launch<Tensor>(vt::test_options(s.n, s.kind), [&](Party& p) {
      const AShare xs = crypto::share(p, p.rank() == 1 ? x : Tensor(), 1, x.shape());
      const Tensor r = crypto::reveal_to(p, xs, 0);
      return r.defined() ? p.encoder().decode(r) : Tensor();
    });
    REQUIRE(to[0].defined());
    CHECK(vt::max_abs_diff(to[0], x) <= vt::ulp() / 2);
    for (int r = 1; r < s.n; ++r) {
      CHECK_FALSE(to[static_cast<std::size_t>(r)].defined());
    }
  }
}

TEST_CASE("shares look random: no single party's share equals the secret", "[crypto]") {
  const Tensor x = vt::uniform({64}, -5, 5, 2);
  auto shares = crypto::launch<Tensor>(vt::test_options(2), [&](Party& p) {
    return crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, x.shape()).data;
  });
  crypto::FixedPointEncoder enc(16);
  const Tensor ex = enc.encode(x);
  int equal = 0;
  for (int64_t i = 0; i < 64; ++i) {
    equal += shares[0].data<uint64_t>()[i] == ex.data<uint64_t>()[i] ? 1 : 0;
  }
  CHECK(equal == 0);
}

TEST_CASE("Beaver mul, broadcast mul and matmul match float64", "[crypto]") {
  for (auto s : settings()) {
    const Tensor x = vt::uniform({6, 9}, -10, 10, 3);
    const Tensor y = vt::uniform({6, 9}, -10, 10, 4);
    const Tensor got = run_binary_op(
        s, x, y, [](Party& p, const AShare& a, const AShare& b) { return crypto::mul(p, a, b); });
    // product of two values with |v| <= 10, each off by <= ulp/2, then truncation (+-1 ulp)
    CHECK(vt::max_abs_diff(got, core::mul(x, y)) <= 12 * vt::ulp());

    const Tensor row = vt::uniform({9}, -3, 3, 5);
    const Tensor gb = run_binary_op(
        s, x, row, [](Party& p, const AShare& a, const AShare& b) { return crypto::mul(p, a, b); });
    CHECK(vt::max_abs_diff(gb, core::mul(x, row)) <= 8 * vt::ulp());

    const Tensor w = vt::uniform({9, 4}, -1, 1, 6);
    const Tensor gm = run_binary_op(s, x, w, [](Party& p, const AShare& a, const AShare& b) {
      return crypto::matmul(p, a, b);
    });
    // k = 9 products, each within (|x| + |w|) ulp/2, plus one truncation
    CHECK(vt::max_abs_diff(gm, core::matmul(x, w)) <= 9 * 11 * vt::ulp() / 2 + 2 * vt::ulp());
  }
}

TEST_CASE("streamed triples: the keystream words are a valid triple, in step with beaver()",
          "[crypto]") {
  for (auto s : settings()) {
    INFO("parties " << s.n << ", provider " << crypto::provider_name(s.kind));
    // GIVEN streamed and materialised triples requested alternately, of 70,001 elements (several
    // chunks of the parallel passes and a partial block) and of a square
    constexpr int64_t kN = 70001;
    struct Opened {
      std::vector<Tensor> a, b, c;
    };
    auto got = crypto::launch<Opened>(vt::test_options(s.n, s.kind), [&](Party& p) {
      const core::AtLeastThreads threads(3);
      auto words = [](const crypto::StreamedTriple& t, uint64_t at) {
        crypto::Prg reader = t.stream.fork_at(at);
        return reader.ring({kN});
      };
      Opened out;
      auto open = [&](const Tensor& a, const Tensor& b, const Tensor& c) {
        out.a.push_back(crypto::reveal(p, {a, 0}));
        out.b.push_back(crypto::reveal(p, {b, 0}));
        out.c.push_back(crypto::reveal(p, {c, 0}));
      };
      for (const auto& op :
           {crypto::BilinearOp::mul({kN}, {kN}), crypto::BilinearOp::square({kN})}) {
        auto st = p.provider().streamed_beaver(op);
        REQUIRE(st.has_value());
        CHECK(st->square == op.is_square());
        CHECK(st->c.defined() == (p.rank() == 0));
        const Tensor a = words(*st, st->a_at);
        open(a, op.is_square() ? a : words(*st, st->b_at),
             p.rank() == 0 ? st->c : words(*st, st->c_at));
        const auto t = p.provider().beaver(op);
        open(t.a, t.b, t.c);
      }
      return out;
    });
    // THEN every opened c is a b in the ring, bit for bit (a stream position off by one word
    // anywhere breaks this for every later triple), and fresh triples differ
    const Opened& o = got[0];
    REQUIRE(o.c.size() == 4);
    for (std::size_t i = 0; i < o.c.size(); ++i) {
      INFO("triple " << i);
      CHECK(o.c[i].to_vector<uint64_t>() == core::mul(o.a[i], o.b[i]).to_vector<uint64_t>());
    }
    CHECK(o.b[2].to_vector<uint64_t>() == o.a[2].to_vector<uint64_t>());
    CHECK(o.a[0].to_vector<uint64_t>() != o.a[1].to_vector<uint64_t>());
  }
  // bad input: only elementwise products stream
  auto bad = crypto::launch<int>(vt::test_options(2), [](Party& p) {
    CHECK_THROWS_WITH(p.provider().streamed_beaver(crypto::BilinearOp::matmul({2, 3}, {3, 4})),
                      Catch::Contains("elementwise"));
    return 0;
  });
  CHECK(bad.size() == 2);
}

TEST_CASE("square pairs: c = a^2 from every provider, and square matches float64", "[crypto]") {
  for (auto s : settings()) {
    INFO("parties " << s.n << ", provider " << crypto::provider_name(s.kind));
    // GIVEN a square pair drawn twice (the second draw must differ: fresh randomness)
    struct Opened {
      Tensor a, c, a2;
      bool b_is_a = false;
    };
    auto got = crypto::launch<Opened>(vt::test_options(s.n, s.kind), [&](Party& p) {
      const auto t = p.provider().beaver(crypto::BilinearOp::square({3, 67}));
      const auto t2 = p.provider().beaver(crypto::BilinearOp::square({3, 67}));
      return Opened{crypto::reveal(p, {t.a, 0}), crypto::reveal(p, {t.c, 0}),
                    crypto::reveal(p, {t2.a, 0}), t.b.shares_storage_with(t.a)};
    });
    // THEN the opened c is the opened a squared in the ring, bit for bit, and b is a
    const Tensor a = got[0].a;
    CHECK(got[0].b_is_a);
    CHECK(got[0].c.to_vector<uint64_t>() == core::mul(a, a).to_vector<uint64_t>());
    CHECK(a.to_vector<uint64_t>() != got[0].a2.to_vector<uint64_t>());
    // AND square() of a secret matches float64 like mul does
    const Tensor x = vt::uniform({6, 9}, -10, 10, 3);
    const Tensor sq =
        run_unary_op(s, x, [](Party& p, const AShare& v) { return crypto::square(p, v); });
    CHECK(vt::max_abs_diff(sq, core::mul(x, x)) <= 12 * vt::ulp());
    // AND inside a batch, after an ordinary product of other operands
    const Tensor y = vt::uniform({6, 9}, -10, 10, 4);
    const Tensor b2 = run_binary_op(s, x, y, [](Party& p, const AShare& v, const AShare& w) {
      const auto z = crypto::beaver_batch(
          p, {crypto::BilinearOp::mul(v.shape(), w.shape()), crypto::BilinearOp::square(w.shape())},
          {v, w}, {w, w});
      return crypto::rescale(p, z[1], w.frac_bits);
    });
    CHECK(vt::max_abs_diff(b2, core::mul(y, y)) <= 12 * vt::ulp());
  }
  // bad input: an undefined operand names the op
  auto bad = crypto::launch<int>(vt::test_options(2), [](Party& p) {
    CHECK_THROWS_WITH(crypto::square(p, AShare{}), Catch::Contains("[square]"));
    return 0;
  });
  CHECK(bad.size() == 2);
}

TEST_CASE("public operands: add_public, mul_public, matmul_public", "[crypto]") {
  for (auto s : settings()) {
    const Tensor x = vt::uniform({4, 3}, -10, 10, 7);
    const Tensor c = vt::uniform({3, 2}, -2, 2, 8);
    const Tensor got = run_unary_op(s, x, [&](Party& p, const AShare& a) {
      return crypto::matmul_public(p, crypto::add_public(p, crypto::mul_public(p, a, 0.5), 1.25),
                                   c);
    });
    const Tensor ref = core::matmul(core::add_scalar(core::mul_scalar(x, 0.5), 1.25), c);
    CHECK(vt::max_abs_diff(got, ref) <= 20 * vt::ulp());
  }
}

TEST_CASE("truncation divides by 2^d within one unit", "[crypto]") {
  for (auto s : settings()) {
    const Tensor x = vt::uniform({1000}, -30000, 30000, 9);
    const Tensor got =
        run_unary_op(s, x, [](Party& p, const AShare& a) { return crypto::div_pow2(p, a, 5); });
    CHECK(vt::max_abs_diff(got, core::mul_scalar(x, 1.0 / 32)) <= 2 * vt::ulp());
  }
}

TEST_CASE("truncation is exact on multiples of 2^d and rounds without bias otherwise", "[crypto]") {
  for (auto s : settings()) {
    INFO("parties " << s.n << ", provider " << crypto::provider_name(s.kind));
    // GIVEN 200,000 ring values k 2^d + t with d = 8: first t = 0 (exact multiples), then
    // t = 2^d / 4 (a quarter unit above k)
    constexpr int64_t kN = 200000;
    constexpr int kBits = 8;
    std::vector<uint64_t> exact(kN);
    std::vector<uint64_t> quarter(kN);
    for (int64_t i = 0; i < kN; ++i) {
      const auto k = static_cast<uint64_t>((i % 2001) - 1000);  // -1000 .. 1000
      exact[static_cast<std::size_t>(i)] = k << kBits;
      quarter[static_cast<std::size_t>(i)] = (k << kBits) + (uint64_t{1} << (kBits - 2));
    }
    const Tensor ex = Tensor::from_vector(exact, {kN});
    const Tensor qu = Tensor::from_vector(quarter, {kN});
    // WHEN each is shared as raw ring values (frac_bits d) and truncated by d bits
    auto out = crypto::launch<std::vector<Tensor>>(vt::test_options(s.n, s.kind), [&](Party& p) {
      auto trunc = [&](const Tensor& v) {
        const AShare a = crypto::share_ring(p, p.rank() == 0 ? v : Tensor(), 0, {kN}, kBits);
        return crypto::reveal(p, crypto::truncate(p, a, kBits));
      };
      return std::vector<Tensor>{trunc(ex), trunc(qu)};
    });
    // THEN the multiples come out exactly k (the N > 2 protocol used to add one unit whenever
    // the dealer's r had d zero low bits: about 780 of these 200,000), and the others are k or
    // k + 1, k + 1 about a quarter of the time (4 sigma of a binomial: +-0.004; the 2-party local
    // truncation rounds the same way: floor of one share plus ceiling of the other)
    const auto e = out[0][0].to_vector<uint64_t>();
    const auto q = out[0][1].to_vector<uint64_t>();
    int64_t up = 0;
    for (int64_t i = 0; i < kN; ++i) {
      const auto k = static_cast<uint64_t>((i % 2001) - 1000);
      REQUIRE(e[static_cast<std::size_t>(i)] == k);
      const uint64_t got = q[static_cast<std::size_t>(i)];
      REQUIRE((got == k || got == k + 1));
      up += static_cast<int64_t>(got == k + 1);
    }
    const double frac_up = static_cast<double>(up) / static_cast<double>(kN);
    INFO("rounded up: " << frac_up);
    CHECK(std::abs(frac_up - 0.25) <= 0.004);
  }
}

TEST_CASE("A2B gives the two's complement bits, ltz and b2a agree with plaintext", "[crypto]") {
  for (auto s : settings()) {
    const Tensor x = vt::uniform({200}, -1e6, 1e6, 10);
    crypto::FixedPointEncoder enc(16);
    const Tensor ex = enc.encode(x);
    auto out = crypto::launch<std::vector<Tensor>>(vt::test_options(s.n, s.kind), [&](Party& p) {
      const AShare xs = crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, x.shape());
      const crypto::BShare b = crypto::a2b(p, xs);
      const Tensor bits = crypto::reveal_binary(p, b);
      const Tensor neg = crypto::reveal(p, crypto::b2a_bit(p, crypto::ltz(p, xs)));
      const Tensor back = crypto::reveal(p, crypto::b2a(p, b, 16));
      return std::vector<Tensor>{bits, neg, back};
    });
    const auto& r = out[0];
    for (int64_t i = 0; i < 200; ++i) {
      const uint64_t v = ex.data<uint64_t>()[i];
      REQUIRE(r[0].data<uint64_t>()[i] == v);
      REQUIRE(r[1].data<uint64_t>()[i] == (x.data<double>()[i] < 0 ? 1U : 0U));
      REQUIRE(r[2].data<uint64_t>()[i] == v);
    }
  }
}

TEST_CASE("ReLU and its [x >= 0] bit", "[crypto]") {
  for (auto s : settings()) {
    const Tensor x = vt::uniform({300}, -50, 50, 11);
    auto out = crypto::launch<std::vector<Tensor>>(vt::test_options(s.n, s.kind), [&](Party& p) {
      const AShare xs = crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, x.shape());
      const auto r = crypto::relu(p, xs);
      return std::vector<Tensor>{crypto::reveal_float(p, r.out),
                                 crypto::reveal_float(p, r.positive)};
    });
    CHECK(vt::max_abs_diff(out[0][0], core::relu(x)) <= vt::ulp());
    for (int64_t i = 0; i < 300; ++i) {
      REQUIRE(out[0][1].data<double>()[i] == (x.data<double>()[i] >= 0 ? 1.0 : 0.0));
    }
  }
}

TEST_CASE("exp: relative error <= 3e-3 on [-10, 10] (reference target 1e-2)", "[crypto]") {
  for (auto s : settings()) {
    const Tensor x = vt::uniform({400}, -10, 10, 12);
    const Tensor got =
        run_unary_op(s, x, [](Party& p, const AShare& a) { return crypto::exp(p, a); });
    const Tensor ref = map_double(x, [](double v) { return std::exp(v); });
    const auto g = got.to_vector<double>();
    const auto r = ref.to_vector<double>();
    double worst = 0;
    for (std::size_t i = 0; i < g.size(); ++i) {
      // relative where the value is representable well; absolute (2^-14) for tiny values
      worst = std::max(worst, std::abs(g[i] - r[i]) / std::max(r[i], 4 * vt::ulp() / 3e-3));
    }
    CHECK(worst <= 3e-3);
  }
}

TEST_CASE("reciprocal: mixed error <= 1e-3 on [0.01, 100] and with a known range", "[crypto]") {
  for (auto s : settings()) {
    Tensor x = vt::uniform({200}, -2, 2, 13);
    x = map_double(x, [](double v) { return std::pow(10.0, v); });  // log-uniform in [0.01, 100]
    const Tensor got =
        run_unary_op(s, x, [](Party& p, const AShare& a) { return crypto::reciprocal(p, a); });
    const Tensor ref = map_double(x, [](double v) { return 1.0 / v; });
    CHECK(vt::max_mixed_err(got, ref) <= 1e-3);

    const Tensor y = vt::uniform({100}, 1, 10, 14);
    const Tensor gr = run_unary_op(s, y, [](Party& p, const AShare& a) {
      return crypto::reciprocal(p, a, std::make_pair(1.0, 10.0));
    });
    CHECK(vt::max_abs_diff(gr, map_double(y, [](double v) { return 1.0 / v; })) <= 1e-4);
  }
}

TEST_CASE("log: absolute error <= 3e-3 on [1, 20] (reference target 1e-2)", "[crypto]") {
  for (auto s : settings()) {
    const Tensor x = vt::uniform({100}, 1, 20, 15);
    const Tensor got =
        run_unary_op(s, x, [](Party& p, const AShare& a) { return crypto::log(p, a); });
    CHECK(vt::max_abs_diff(got, map_double(x, [](double v) { return std::log(v); })) <= 3e-3);
  }
}

TEST_CASE("softmax over 10 classes within 1e-3, max and argmax exact", "[crypto]") {
  for (auto s : settings()) {
    const Tensor x = vt::uniform({32, 10}, -8, 8, 16);
    auto out = crypto::launch<std::vector<Tensor>>(vt::test_options(s.n, s.kind), [&](Party& p) {
      const AShare xs = crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, x.shape());
      const auto m = crypto::max_lastdim(p, xs);
      return std::vector<Tensor>{crypto::reveal_float(p, crypto::softmax(p, xs)),
                                 crypto::reveal_float(p, m.values), crypto::reveal(p, m.indices)};
    });
    const Tensor mx = core::max(x, 1, true);
    Tensor e = core::exp(core::sub(x, mx));
    const Tensor ref = core::div(e, core::sum(e, 1, true));
    CHECK(vt::max_abs_diff(out[0][0], ref) <= 1e-3);
    CHECK(vt::max_abs_diff(out[0][1], core::max(x, 1)) <= vt::ulp());
    const Tensor am = core::argmax(x, 1);
    for (int64_t i = 0; i < 32; ++i) {
      REQUIRE(static_cast<int64_t>(out[0][2].data<uint64_t>()[i]) == am.data<int64_t>()[i]);
    }
  }
}

TEST_CASE("bad input gives clear errors", "[crypto]") {
  const Tensor x = vt::uniform({3, 4}, -1, 1, 17);
  const Tensor y = vt::uniform({5, 2}, -1, 1, 18);
  // mismatched shapes in mul and matmul
  try {
    run_binary_op({2, ProviderKind::kDealer}, x, y,
                  [](Party& p, const AShare& a, const AShare& b) { return crypto::mul(p, a, b); });
    FAIL("expected an exception");
  } catch (const veil::ValueError& e) {
    CHECK_THAT(e.what(), Catch::Contains("[mul]") && Catch::Contains("[3, 4]"));
  }
  try {
    run_binary_op({2, ProviderKind::kDealer}, x, y, [](Party& p, const AShare& a, const AShare& b) {
      return crypto::matmul(p, a, b);
    });
    FAIL("expected an exception");
  } catch (const veil::ValueError& e) {
    CHECK_THAT(e.what(), Catch::Contains("[matmul]"));
  }
  // NaN to encode, value outside the fixed-point range, wrong dtype
  Tensor bad = x.clone();
  bad.data<double>()[5] = std::nan("");
  CHECK_THROWS_AS(
      run_unary_op({2, ProviderKind::kDealer}, bad, [](Party&, const AShare& a) { return a; }),
      veil::ValueError);
  Tensor huge = x.clone();
  huge.data<double>()[0] = 1e300;
  CHECK_THROWS_AS(
      run_unary_op({2, ProviderKind::kDealer}, huge, [](Party&, const AShare& a) { return a; }),
      veil::ValueError);
  // wrong dtype: an integer tensor where a float tensor is expected
  const Tensor ints = Tensor::full<int64_t>({3, 4}, 7);
  try {
    run_unary_op({2, ProviderKind::kDealer}, ints, [](Party&, const AShare& a) { return a; });
    FAIL("expected an exception");
  } catch (const veil::ValueError& e) {
    CHECK_THAT(e.what(), Catch::Contains("int64"));
  }
  // the insecure provider needs the explicit flag
  auto o = vt::test_options(2, ProviderKind::kTrustedFirstParty);
  o.party.insecure = false;
  CHECK_THROWS_AS(crypto::launch(o, [](Party&) {}), veil::ValueError);
}

TEST_CASE("dealer requests round trip and malformed ones are protocol errors", "[crypto]") {
  crypto::CorrelationRequest req;
  req.kind = crypto::CorrelationRequest::Kind::kBeaver;
  req.op = crypto::BilinearOp::matmul({128, 784}, {784, 128});
  const auto bytes = req.serialize();
  const auto back = crypto::CorrelationRequest::deserialize(bytes);
  CHECK(back.op.str() == req.op.str());
  CHECK(back.correction_shape() == veil::core::Shape{128, 128});
  // a square pair round trips; a square whose two operand shapes differ is refused
  crypto::CorrelationRequest sq;
  sq.op = crypto::BilinearOp::square({5, 7});
  const auto sq_back = crypto::CorrelationRequest::deserialize(sq.serialize());
  CHECK(sq_back.op.is_square());
  CHECK(sq_back.op.str() == "square [5, 7] x [5, 7]");
  crypto::BilinearOp odd = crypto::BilinearOp::square({5, 7});
  odd.y_shape = {7, 5};
  crypto::CorrelationRequest odd_req;
  odd_req.op = odd;
  CHECK_THROWS_AS(crypto::CorrelationRequest::deserialize(odd_req.serialize()),
                  veil::ProtocolError);
  // truncated, trailing bytes, unknown kind
  CHECK_THROWS_AS(crypto::CorrelationRequest::deserialize(
                      std::span<const std::byte>(bytes).first(bytes.size() - 3)),
                  veil::ProtocolError);
  auto longer = bytes;
  longer.push_back(std::byte{1});
  CHECK_THROWS_AS(crypto::CorrelationRequest::deserialize(longer), veil::ProtocolError);
  auto unknown = bytes;
  unknown[0] = std::byte{42};
  CHECK_THROWS_AS(crypto::CorrelationRequest::deserialize(unknown), veil::ProtocolError);
}
