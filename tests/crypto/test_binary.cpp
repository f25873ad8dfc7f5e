// Masked-open comparisons (crypto/protocols/binary.h, crypto/providers/bit_circuit.h): ltz, eqz,
// the fused bit injection (ltz_mul, eqz_mul), AND trees, ReLU and max/argmax, against exact
// integer references on raw ring values, for 2..5 parties and both providers; the dealer's
// request wire format; bad inputs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/ops.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"
#include "crypto/protocols/nonlinear.h"
#include "crypto/providers/bit_circuit.h"
#include "crypto/providers/correlations.h"
#include "kernels/bit_circuit_eval.h"
#include "tests/harness/protocols.h"
#include "tests/harness/simulate.h"

using veil::core::DType;
using veil::core::Tensor;
using veil::crypto::AShare;
using veil::crypto::BShare;
using veil::crypto::Party;
using veil::crypto::ProviderKind;
namespace crypto = veil::crypto;
namespace core = veil::core;
namespace vt = veil::testing;

namespace {

// 2..5 parties with the dealer, and 2 and 3 with the trusted first party.
std::vector<vt::Setting> wide_settings() {
  auto s = vt::all_settings();
  s.push_back({4, ProviderKind::kDealer});
  s.push_back({5, ProviderKind::kDealer});
  return s;
}

// Ring values that stress the borrow chain: the extremes, 0, +-1, values around 2^k, and
// uniform 64-bit words.
std::vector<uint64_t> ring_values(std::size_t n, uint64_t seed) {
  std::vector<uint64_t> v = {0,
                             1,
                             ~uint64_t{0},
                             uint64_t{1} << 63,
                             (uint64_t{1} << 63) - 1,
                             (uint64_t{1} << 63) + 1,
                             uint64_t{1} << 62,
                             uint64_t{0} - (uint64_t{1} << 62)};
  for (int k = 0; k < 63; k += 7) {
    v.push_back(uint64_t{1} << k);
    v.push_back((uint64_t{1} << k) - 1);
    v.push_back(uint64_t{0} - (uint64_t{1} << k));
  }
  std::mt19937_64 gen(seed);
  while (v.size() < n) {
    const uint64_t w = gen();
    // mix full-width words with small magnitudes of either sign
    v.push_back(v.size() % 3 == 0 ? w : (v.size() % 3 == 1 ? w >> (w % 60) : 0 - (w >> (w % 60))));
  }
  v.resize(n);
  return v;
}

Tensor ring_tensor(const std::vector<uint64_t>& v) {
  return Tensor::from_vector<uint64_t>(v, {static_cast<int64_t>(v.size())});
}

bool negative(uint64_t v) {
  return (v >> 63) != 0;
}

// Runs fn on x (ring values) shared by party 0 and y by the last party; returns party 0's result.
template <class T, class F>
T run_ring(vt::Setting s, const Tensor& x, const Tensor& y, F fn) {
  auto out = crypto::launch<T>(vt::test_options(s.n, s.kind), [&](Party& p) {
    const AShare xs = crypto::share_ring(p, p.rank() == 0 ? x : Tensor(), 0, x.shape(), 16);
    const int last = p.world_size() - 1;
    const AShare ys = crypto::share_ring(p, p.rank() == last ? y : Tensor(), last, y.shape(), 16);
    return fn(p, xs, ys);
  });
  return out[0];
}

}  // namespace

TEST_CASE("binary: ltz and eqz are exact on the whole ring for 2..5 parties", "[crypto][binary]") {
  // GIVEN ring values at the extremes, around powers of two, and uniform words, with ties
  const auto v = ring_values(300, 1);
  std::vector<uint64_t> zeros = v;
  for (std::size_t i = 0; i < zeros.size(); i += 4) {
    zeros[i] = 0;
  }
  const Tensor x = ring_tensor(v);
  const Tensor z = ring_tensor(zeros);
  for (auto s : wide_settings()) {
    INFO("parties " << s.n << ", provider " << crypto::provider_name(s.kind));
    // WHEN the sign bit and the zero test run on shares (binary and arithmetic forms)
    const auto got =
        run_ring<std::vector<Tensor>>(s, x, z, [](Party& p, const AShare& a, const AShare& b) {
          return std::vector<Tensor>{crypto::reveal_binary(p, crypto::ltz(p, a)),
                                     crypto::reveal(p, crypto::ltz_arith(p, a)),
                                     crypto::reveal_binary(p, crypto::eqz(p, b)),
                                     crypto::reveal(p, crypto::eqz_mul(p, b).bit)};
        });
    // THEN each equals the plaintext predicate on the ring value
    for (std::size_t i = 0; i < v.size(); ++i) {
      const auto k = static_cast<int64_t>(i);
      REQUIRE(got[0].data<uint64_t>()[k] == (negative(v[i]) ? 1U : 0U));
      REQUIRE(got[1].data<uint64_t>()[k] == (negative(v[i]) ? 1U : 0U));
      REQUIRE(got[2].data<uint64_t>()[k] == (zeros[i] == 0 ? 1U : 0U));
      REQUIRE(got[3].data<uint64_t>()[k] == (zeros[i] == 0 ? 1U : 0U));
    }
  }
}

TEST_CASE("binary: ltz_mul fuses x [x < 0] and y [x < 0] exactly", "[crypto][binary]") {
  const auto v = ring_values(200, 2);
  std::vector<uint64_t> w(v.size());
  std::mt19937_64 gen(3);
  for (auto& e : w) {
    e = gen();
  }
  const Tensor x = ring_tensor(v);
  const Tensor y = ring_tensor(w);
  for (auto s : wide_settings()) {
    INFO("parties " << s.n << ", provider " << crypto::provider_name(s.kind));
    // WHEN [x < 0], x [x < 0], y [x < 0] and 2y [x < 0] come from one ltz_mul (2-d shapes)
    const auto got =
        run_ring<std::vector<Tensor>>(s, x, y, [](Party& p, const AShare& a, const AShare& b) {
          const AShare a2{a.data.reshape({10, 20}), 16};
          const AShare b2{b.data.reshape({20, 10}), 3};
          const auto r = crypto::ltz_mul(p, a2, true, {b2, crypto::mul_public_int(b2, 2)});
          // shapes and scales, as a small tensor (assertions stay on the main thread)
          const bool layout = r.bit.shape() == core::Shape{10, 20} && r.bit.frac_bits == 0 &&
                              r.x_times_bit.frac_bits == 16 &&
                              r.products[0].shape() == core::Shape{20, 10} &&
                              r.products[1].frac_bits == 3;
          return std::vector<Tensor>{crypto::reveal(p, r.bit), crypto::reveal(p, r.x_times_bit),
                                     crypto::reveal(p, r.products[0]),
                                     crypto::reveal(p, r.products[1]),
                                     Tensor::full<uint64_t>({1}, layout ? 1U : 0U)};
        });
    // THEN the outputs keep the operands' shapes and scales
    CHECK(got[4].data<uint64_t>()[0] == 1U);
    // THEN every product is exact mod 2^64 (no truncation)
    for (std::size_t i = 0; i < v.size(); ++i) {
      const auto k = static_cast<int64_t>(i);
      const uint64_t b = negative(v[i]) ? 1U : 0U;
      REQUIRE(got[0].data<uint64_t>()[k] == b);
      REQUIRE(got[1].data<uint64_t>()[k] == v[i] * b);
      REQUIRE(got[2].data<uint64_t>()[k] == w[i] * b);
      REQUIRE(got[3].data<uint64_t>()[k] == 2 * w[i] * b);
    }
  }
}

TEST_CASE("binary: AND of 1..64 bits along the last dimension, with products", "[crypto][binary]") {
  std::mt19937_64 gen(4);
  for (int width : {1, 2, 3, 4, 5, 7, 9, 16, 17, 33, 64}) {
    // GIVEN rows of bits, most of them all-ones so that the AND is often 1
    const int64_t rows = 40;
    std::vector<uint64_t> bits(static_cast<std::size_t>(rows * width));
    for (int64_t r = 0; r < rows; ++r) {
      const bool all = r % 2 == 0;
      for (int j = 0; j < width; ++j) {
        bits[static_cast<std::size_t>(r * width + j)] = all ? 1U : (gen() % 4 != 0 ? 1U : 0U);
      }
    }
    std::vector<uint64_t> y(static_cast<std::size_t>(rows));
    for (auto& e : y) {
      e = gen();
    }
    for (vt::Setting s :
         {vt::Setting{2, ProviderKind::kDealer}, vt::Setting{3, ProviderKind::kDealer},
          vt::Setting{3, ProviderKind::kTrustedFirstParty}}) {
      INFO("width " << width << ", parties " << s.n);
      auto got = crypto::launch<std::vector<Tensor>>(vt::test_options(s.n, s.kind), [&](Party& p) {
        // XOR-share the bits: party 0 holds bits ^ mask, party 1 the mask, others 0 (plus junk
        // in the upper bits, which must be ignored)
        Tensor share = Tensor::empty({rows, width}, DType::kRing64);
        std::mt19937_64 g2(99);
        for (int64_t i = 0; i < share.numel(); ++i) {
          const uint64_t m = g2();
          const uint64_t b = bits[static_cast<std::size_t>(i)];
          share.data<uint64_t>()[i] = p.rank() == 0 ? (m ^ b) : p.rank() == 1 ? m : 0;
        }
        const AShare ys =
            crypto::share_ring(p, p.rank() == 0 ? ring_tensor(y) : Tensor(), 0, {rows}, 5);
        const auto r = crypto::and_lastdim_mul(p, BShare{share}, {ys});
        return std::vector<Tensor>{crypto::reveal(p, r.bit), crypto::reveal(p, r.products[0])};
      });
      for (int64_t r = 0; r < rows; ++r) {
        uint64_t a = 1;
        for (int j = 0; j < width; ++j) {
          a &= bits[static_cast<std::size_t>(r * width + j)];
        }
        REQUIRE(got[0][0].data<uint64_t>()[r] == a);
        REQUIRE(got[0][1].data<uint64_t>()[r] == y[static_cast<std::size_t>(r)] * a);
      }
    }
  }
}

TEST_CASE("binary: relu and max/argmax are exact for 2..5 parties", "[crypto][binary]") {
  for (auto s : wide_settings()) {
    INFO("parties " << s.n << ", provider " << crypto::provider_name(s.kind));
    // GIVEN values with ties (quantised to 0.5) in rows of every class count 1..20
    const Tensor x = vt::uniform({150}, -40, 40, 5);
    const Tensor relu =
        vt::run_unary_op(s, x, [](Party& p, const AShare& a) { return crypto::relu(p, a).out; });
    // THEN relu is exact on the encoded value (the input encoding loses <= ulp/2)
    CHECK(vt::max_abs_diff(relu, core::relu(x)) <= vt::ulp() / 2);
    for (int64_t c : {1, 2, 3, 4, 5, 9, 10, 16, 17, 20}) {
      INFO("classes " << c);
      Tensor m = vt::uniform({3, 2, c}, -4, 4, static_cast<uint64_t>(c));
      for (int64_t i = 0; i < m.numel(); ++i) {
        m.data<double>()[i] = std::round(m.data<double>()[i] * 2) / 2;
      }
      auto got = crypto::launch<std::vector<Tensor>>(vt::test_options(s.n, s.kind), [&](Party& p) {
        const AShare xs = crypto::share(p, p.rank() == 0 ? m : Tensor(), 0, m.shape());
        const auto r = crypto::max_lastdim(p, xs);
        return std::vector<Tensor>{crypto::reveal_float(p, r.values), crypto::reveal(p, r.indices)};
      });
      CHECK(got[0][0].shape() == core::Shape{3, 2});
      CHECK(vt::max_abs_diff(got[0][0], core::max(m, 2)) == 0);
      // argmax is the first maximum, as core::argmax
      const Tensor am = core::argmax(m, 2);
      for (int64_t i = 0; i < 6; ++i) {
        REQUIRE(static_cast<int64_t>(got[0][1].data<uint64_t>()[i]) == am.data<int64_t>()[i]);
      }
    }
  }
}

TEST_CASE("binary: sizes off the 64-bit packing and over several parallel blocks",
          "[crypto][binary]") {
  // Sizes that are not multiples of 64 and span several parallel blocks of the bit streams.
  auto o = vt::test_options(2);
  o.threads_per_party = 2;
  for (int64_t n : {1, 63, 65, 4097}) {
    const Tensor x = vt::uniform({n}, -3, 3, static_cast<uint64_t>(n));
    auto got = crypto::launch<Tensor>(o, [&](Party& p) {
      const AShare xs = crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, x.shape());
      return crypto::reveal_float(p, crypto::relu(p, xs).out);
    });
    CHECK(vt::max_abs_diff(got[0], core::relu(x)) <= vt::ulp() / 2);
  }
}

TEST_CASE("binary: strided views and empty tensors", "[crypto][binary]") {
  // GIVEN a transposed (non-contiguous) share and an empty one
  const Tensor x = vt::uniform({5, 7}, -3, 3, 8);
  auto got = crypto::launch<std::vector<Tensor>>(vt::test_options(3), [&](Party& p) {
    const AShare xs = crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, x.shape());
    const AShare xt{xs.data.transpose(0, 1), 16};
    const AShare empty{Tensor::zeros({0, 4}, DType::kRing64), 16};
    const auto r0 = crypto::relu(p, empty);
    const auto m0 = crypto::ltz_mul(p, empty, true);
    const bool empty_ok =
        r0.out.shape() == core::Shape{0, 4} && m0.bit.shape() == core::Shape{0, 4};
    return std::vector<Tensor>{crypto::reveal_float(p, crypto::relu(p, xt).out),
                               crypto::reveal_float(p, crypto::max_lastdim(p, xt).values),
                               Tensor::full<uint64_t>({1}, empty_ok ? 1U : 0U)};
  });
  CHECK(got[0][2].data<uint64_t>()[0] == 1U);
  // THEN the results follow the view's logical layout
  const Tensor xt = x.transpose(0, 1).contiguous();
  CHECK(vt::max_abs_diff(got[0][0], core::relu(xt)) <= vt::ulp() / 2);
  CHECK(vt::max_abs_diff(got[0][1], core::max(xt, 1)) <= vt::ulp() / 2);
}

TEST_CASE("binary: circuit requests round trip, malformed ones are protocol errors",
          "[crypto][binary]") {
  crypto::CorrelationRequest req;
  req.kind = crypto::CorrelationRequest::Kind::kCircuit;
  req.circuit = {.kind = crypto::CircuitKind::kAnd, .width = 9, .inject = true, .extras = 2};
  req.shape = {1000};
  const auto bytes = req.serialize();
  const auto back = crypto::CorrelationRequest::deserialize(bytes);
  CHECK(back.kind == req.kind);
  CHECK(back.circuit == req.circuit);
  CHECK(back.shape == req.shape);
  CHECK(back.str() == "circuit(and(9)+inject(2), [1000])");
  const crypto::CircuitLayout lay(req.circuit, 1000);
  CHECK(back.correction_shape() == core::Shape{lay.corrected_words});
  // THEN a bad circuit kind, width, flags or shape is refused
  auto corrupt = [&](std::size_t word, uint64_t value) {
    auto b = bytes;
    std::memcpy(b.data() + 8 * word, &value, 8);
    return b;
  };
  CHECK_THROWS_AS(crypto::CorrelationRequest::deserialize(corrupt(1, 7)), veil::ProtocolError);
  CHECK_THROWS_AS(crypto::CorrelationRequest::deserialize(corrupt(2, 65)), veil::ProtocolError);
  CHECK_THROWS_AS(crypto::CorrelationRequest::deserialize(corrupt(3, 4)), veil::ProtocolError);
  CHECK_THROWS_AS(crypto::CorrelationRequest::deserialize(corrupt(2, 0)), veil::ProtocolError);
  CHECK_THROWS_AS(crypto::CorrelationRequest::deserialize(
                      std::span<const std::byte>(bytes).first(bytes.size() - 8)),
                  veil::ProtocolError);
  // products without the injection round are inconsistent
  crypto::CircuitSpec bad{.kind = crypto::CircuitKind::kLessThanZero, .times_masked = true};
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("[circuit]"));
}

TEST_CASE("binary: transpose64 turns words into bit planes and back", "[crypto][binary]") {
  std::mt19937_64 gen(7);
  uint64_t a[64];
  uint64_t t[64];
  for (auto& w : a) {
    w = gen();
  }
  std::copy(a, a + 64, t);
  veil::kernels::circuit::transpose64(t);
  for (int i = 0; i < 64; ++i) {
    for (int j = 0; j < 64; ++j) {
      REQUIRE(((t[i] >> j) & 1U) == ((a[j] >> i) & 1U));
    }
  }
  veil::kernels::circuit::transpose64(t);
  CHECK(std::equal(a, a + 64, t));
}

TEST_CASE("binary: the circuit layout matches the documented per-element sizes",
          "[crypto][binary]") {
  const auto& lt = crypto::BitCircuit::get(crypto::CircuitKind::kLessThanZero);
  CHECK(lt.mask_bits() == 31 + 7);
  CHECK(lt.product_bits() == 265);
  CHECK(lt.masked_levels() == 2);
  const auto& eq = crypto::BitCircuit::get(crypto::CircuitKind::kEqualZero);
  CHECK(eq.mask_bits() == 16 + 4);
  CHECK(eq.product_bits() == 231);
  const auto& a9 = crypto::BitCircuit::get(crypto::CircuitKind::kAnd, 9);
  CHECK(a9.masked_levels() == 2);
  CHECK(a9.mask_bits() == 9 + 3);
  CHECK(crypto::BitCircuit::get(crypto::CircuitKind::kAnd, 1).masked_levels() == 0);
  CHECK(crypto::BitCircuit::get(crypto::CircuitKind::kAnd, 64).masked_levels() == 3);
}

TEST_CASE("binary: bad inputs throw ValueError naming the operation", "[crypto][binary]") {
  const vt::Setting s{2, ProviderKind::kDealer};
  const Tensor x = vt::uniform({6}, -1, 1, 6);
  auto run = [&](auto fn) {
    return vt::run_unary_op(s, x, fn);
  };
  // a float tensor where a ring share is expected
  CHECK_THROWS_WITH(
      run([](Party& p, const AShare& a) {
        return crypto::ltz_arith(p, AShare{core::Tensor::zeros({6}, DType::kFloat64), a.frac_bits});
      }),
      Catch::Contains("[ltz]"));
  CHECK_THROWS_WITH(run([](Party& p, const AShare&) {
                      crypto::eqz(p, AShare{});
                      return AShare{};
                    }),
                    Catch::Contains("[eqz]"));
  // a multiplicand with a different element count
  CHECK_THROWS_WITH(run([](Party& p, const AShare& a) {
                      const AShare y{a.data.slice(0, 0, 5).contiguous(), 16};
                      return crypto::ltz_mul(p, a, false, {y}).bit;
                    }),
                    Catch::Contains("[ltz]") && Catch::Contains("elements"));
  // AND over more than 64 bits, relu and max on undefined or empty inputs
  CHECK_THROWS_WITH(
      run([](Party& p, const AShare&) {
        return crypto::and_lastdim_mul(p, BShare{core::Tensor::zeros({2, 65}, DType::kRing64)}).bit;
      }),
      Catch::Contains("[and]"));
  CHECK_THROWS_WITH(run([](Party& p, const AShare&) { return crypto::relu(p, AShare{}).out; }),
                    Catch::Contains("[relu]"));
  CHECK_THROWS_WITH(
      run([](Party& p, const AShare& a) {
        return crypto::max_lastdim(p, {a.data.reshape({6, 1}).slice(1, 0, 0), 16}).values;
      }),
      Catch::Contains("[max]"));
}
