// MpcTensor basics and the backward engine: factories, visibility, reveal/reveal_to, encrypt,
// detach/assign_, gradient accumulation, NoGradGuard, retain_graph, public mode equal to a
// fixed-point emulation, and error messages.

#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/autograd/autograd_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::agtest::kUlp;
using veil::agtest::Tensor;

Tensor q_uniform(const veil::core::Shape& s, double lo, double hi, uint64_t seed) {
  return veil::agtest::quantize(veil::testing::uniform(s, lo, hi, seed));
}

// Message of the exception fn throws inside a 2-party run ("no exception" when none).
std::string error_of(const std::function<void(Party&)>& fn) {
  try {
    veil::crypto::launch(veil::testing::test_options(2), fn);
  } catch (const veil::ValueError& e) {
    return std::string("ValueError: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("other: ") + e.what();
  }
  return "no exception";
}

// Fixed-point emulation of the public-mode product: floor((a * b) / 2^16) on int64 encodings.
int64_t enc(double x) {
  return static_cast<int64_t>(std::llround(std::ldexp(x, 16)));
}
double dec(int64_t v) {
  return std::ldexp(static_cast<double>(v), -16);
}
int64_t fx_mul(int64_t a, int64_t b) {
  const auto prod = static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
  return prod >> 16;  // arithmetic shift: floor
}

}  // namespace

TEST_CASE("MpcTensor: factories, visibility and reveal", "[autograd][mpc_tensor]") {
  const Tensor x = q_uniform({2, 3}, -5, 5, 1);
  for (int n : {2, 3}) {
    const auto all = veil::agtest::run_all(n, [&](Party& p) {
      // GIVEN a public tensor, a secret shared from party 1, and a public one encrypted in place
      const MpcTensor pub = MpcTensor::from_public(x, p);
      const MpcTensor sec = MpcTensor::share(p.rank() == 1 ? x : Tensor(), 1, {2, 3}, p);
      MpcTensor enc_t = MpcTensor::from_public(x, p);
      MpcTensor alias = enc_t;  // a handle copy sees the in-place change
      enc_t.encrypt(0);
      const Tensor to1 = sec.reveal_to(1);
      std::vector<double> flags{pub.is_secret() ? 1.0 : 0.0, sec.is_secret() ? 1.0 : 0.0,
                                alias.is_secret() ? 1.0 : 0.0, to1.defined() ? 1.0 : 0.0,
                                static_cast<double>(sec.frac_bits())};
      return std::vector<Tensor>{pub.reveal(), sec.reveal(), alias.reveal(),
                                 Tensor::from_vector(flags, {5}), sec.ring()};
    });
    for (int r = 0; r < n; ++r) {
      const auto& got = all[static_cast<std::size_t>(r)];
      // THEN every party decodes the same values
      CHECK(veil::testing::max_abs_diff(got[0], x) == 0);
      CHECK(veil::testing::max_abs_diff(got[1], x) == 0);
      CHECK(veil::testing::max_abs_diff(got[2], x) == 0);
      const auto f = got[3].to_vector<double>();
      CHECK(f[0] == 0.0);
      CHECK(f[1] == 1.0);
      CHECK(f[2] == 1.0);
      CHECK(f[3] == (r == 1 ? 1.0 : 0.0));  // reveal_to(1): only party 1 gets a value
      CHECK(f[4] == 16.0);
    }
    // AND a share alone is not the encoding of x (it is masked by the zero-sharing)
    const Tensor encoded = veil::crypto::FixedPointEncoder(16).encode(x);
    CHECK(all[0][4].to_vector<uint64_t>() != encoded.to_vector<uint64_t>());
  }
}

TEST_CASE("MpcTensor: public mode equals a fixed-point emulation bit for bit",
          "[autograd][mpc_tensor]") {
  // GIVEN public x [2, 3], w [3, 2] and the expression relu(x @ w) * 0.75 + b
  const Tensor x = q_uniform({2, 3}, -2, 2, 2);
  const Tensor w = q_uniform({3, 2}, -2, 2, 3);
  const Tensor b = q_uniform({2}, -1, 1, 4);
  const auto got = veil::agtest::run(2, [&](Party& p) {
    const MpcTensor y =
        veil::relu(veil::matmul(MpcTensor::from_public(x, p), MpcTensor::from_public(w, p))) *
            0.75 +
        MpcTensor::from_public(b, p);
    return std::vector<Tensor>{y.reveal(),
                               y.is_secret() ? Tensor::scalar(1.0) : Tensor::scalar(0.0)};
  });
  // THEN it equals the int64 emulation: sum of products, floor shift, relu, scalar mul, add
  const auto vx = x.to_vector<double>();
  const auto vw = w.to_vector<double>();
  const auto vb = b.to_vector<double>();
  const auto vy = got[0].to_vector<double>();
  CHECK(got[1].item<double>() == 0.0);
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      uint64_t acc = 0;
      for (int k = 0; k < 3; ++k) {
        acc += static_cast<uint64_t>(enc(vx[static_cast<std::size_t>(i * 3 + k)])) *
               static_cast<uint64_t>(enc(vw[static_cast<std::size_t>(k * 2 + j)]));
      }
      int64_t h = static_cast<int64_t>(acc) >> 16;
      h = h < 0 ? 0 : h;
      const int64_t y = fx_mul(h, enc(0.75)) + enc(vb[static_cast<std::size_t>(j)]);
      CHECK(vy[static_cast<std::size_t>(i * 2 + j)] == dec(y));
    }
  }
}

TEST_CASE("MpcTensor: secret results match public mode within truncation error",
          "[autograd][mpc_tensor]") {
  const Tensor x = q_uniform({3, 4}, -2, 2, 5);
  const Tensor w = q_uniform({4, 2}, -2, 2, 6);
  auto model = [&](Party& p, bool secret) {
    MpcTensor xs = MpcTensor::from_public(x, p);
    MpcTensor ws = MpcTensor::from_public(w, p);
    ws.set_requires_grad();
    if (secret) {
      xs.encrypt(0);
      ws.encrypt(1);
    }
    const MpcTensor loss = veil::mean(veil::relu(veil::matmul(xs, ws)) * 0.5);
    loss.backward();
    return std::vector<Tensor>{loss.reveal(), ws.grad().reveal()};
  };
  for (int n : {2, 3}) {
    const auto pub = veil::agtest::run(n, [&](Party& p) { return model(p, false); });
    const auto sec = veil::agtest::run(n, [&](Party& p) { return model(p, true); });
    CHECK(std::abs(pub[0].item<double>() - sec[0].item<double>()) <= 4 * kUlp);
    CHECK(veil::testing::max_abs_diff(pub[1], sec[1]) <= 8 * kUlp);
  }
}

TEST_CASE("backward: accumulation, leaves, NoGradGuard, retain_graph", "[autograd][engine]") {
  const Tensor x = q_uniform({2, 2}, -1, 1, 7);
  const auto got = veil::agtest::run(2, [&](Party& p) {
    MpcTensor a = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, {2, 2}, p);
    a.set_requires_grad();
    // GIVEN a used twice: loss = sum(a * a + a)  => d/da = 2a + 1
    const MpcTensor loss = veil::sum(a * a + a);
    loss.backward(MpcTensor(), /*retain_graph=*/true);
    const Tensor g1 = a.grad().reveal();
    // a second backward accumulates into .grad
    loss.backward();
    const Tensor g2 = a.grad().reveal();
    // zero_grad clears; NoGradGuard records nothing
    a.zero_grad();
    double recorded = 0;
    {
      veil::NoGradGuard guard;
      const MpcTensor y = a * 2.0;
      recorded = y.requires_grad() ? 1.0 : 0.0;
    }
    const MpcTensor z = a * 2.0;
    const double cleared = a.grad().defined() ? 1.0 : 0.0;
    const double is_leaf = a.is_leaf() && !z.is_leaf() ? 1.0 : 0.0;
    return std::vector<Tensor>{
        g1, g2, Tensor::from_vector(std::vector<double>{recorded, cleared, is_leaf}, {3})};
  });
  const Tensor want = veil::core::add_scalar(veil::core::mul_scalar(x, 2.0), 1.0);
  CHECK(veil::testing::max_abs_diff(got[0], want) <= 4 * kUlp);
  CHECK(veil::testing::max_abs_diff(got[1], veil::core::mul_scalar(want, 2.0)) <= 8 * kUlp);
  const auto f = got[2].to_vector<double>();
  CHECK(f[0] == 0.0);
  CHECK(f[1] == 0.0);
  CHECK(f[2] == 1.0);
}

TEST_CASE("backward: errors", "[autograd][engine][errors]") {
  // non-scalar loss
  CHECK_THAT(error_of([](Party& p) {
               MpcTensor a = MpcTensor::zeros({2, 3}, p);
               a.set_requires_grad();
               (a * 2.0).backward();
             }),
             Catch::Contains("ValueError: [backward] expected a single-element tensor") &&
                 Catch::Contains("[2, 3]"));
  // nothing requires grad
  CHECK_THAT(error_of([](Party& p) { veil::sum(MpcTensor::zeros({2}, p)).backward(); }),
             Catch::StartsWith("ValueError: [backward]"));
  // backward twice without retain_graph
  CHECK_THAT(error_of([](Party& p) {
               MpcTensor a = MpcTensor::zeros({2}, p);
               a.set_requires_grad();
               const MpcTensor l = veil::sum(a * 3.0);
               l.backward();
               l.backward();
             }),
             Catch::Contains("ValueError: [backward]") && Catch::Contains("already freed"));
}

TEST_CASE("ops: shape errors name the op", "[autograd][errors]") {
  CHECK(error_of([](Party& p) {
          (void)veil::matmul(MpcTensor::zeros({32, 20}, p), MpcTensor::zeros({16, 10}, p));
        }) == "ValueError: [matmul] inner dimensions differ: x is [32, 20], w is [16, 10]");
  CHECK_THAT(error_of([](Party& p) {
               const MpcTensor a = MpcTensor::zeros({3, 4}, p);
               const Tensor z = Tensor::zeros({3, 5}, veil::core::DType::kFloat64);
               const MpcTensor s = MpcTensor::share(p.rank() == 0 ? z : Tensor(), 0, {3, 5}, p);
               (void)(a + s);
             }),
             Catch::StartsWith("ValueError: [add]") && Catch::Contains("[3, 4]") &&
                 Catch::Contains("[3, 5]"));
  CHECK_THAT(error_of([](Party& p) {
               (void)(MpcTensor::zeros({2, 3}, p) * MpcTensor::zeros({3, 2}, p));
             }),
             Catch::StartsWith("ValueError: [mul]"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::cross_entropy(MpcTensor::zeros({2, 3}, p),
                                         Tensor::from_vector(std::vector<int64_t>{0, 3}, {2}));
             }),
             Catch::StartsWith("ValueError: [cross_entropy] class index 3"));
  CHECK_THAT(error_of([](Party& p) {
               MpcTensor logits = MpcTensor::zeros({2, 4097}, p);
               logits.encrypt(0);
               (void)veil::cross_entropy(logits, MpcTensor::zeros({2, 4097}, p));
             }),
             Catch::StartsWith("ValueError: [cross_entropy] secret logits support at most 4096"));
  CHECK_THAT(error_of([](Party&) { (void)MpcTensor().reveal(); }),
             Catch::StartsWith("ValueError: [reveal]"));
}
