// nn::init: identical public values on every party, PyTorch's gains and fans, bounds and moments
// of each distribution, reproducibility from an explicit seed, Linear's default init unchanged,
// bad inputs.

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "crypto/prg.h"
#include "nn/nn.h"
#include "tests/autograd/autograd_test_util.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
namespace nn = veil::nn;
namespace init = veil::nn::init;
using veil::MpcTensor;
using veil::Party;
using veil::core::Shape;
using veil::core::Tensor;

namespace {

struct Moments {
  double mean, var, max_abs, min, max;
};
Moments moments(const Tensor& t) {
  const auto v = t.contiguous().to_vector<double>();
  Moments m{0, 0, 0, v[0], v[0]};
  for (double e : v) {
    m.mean += e;
    m.max_abs = std::max(m.max_abs, std::abs(e));
    m.min = std::min(m.min, e);
    m.max = std::max(m.max, e);
  }
  m.mean /= static_cast<double>(v.size());
  for (double e : v) {
    m.var += (e - m.mean) * (e - m.mean);
  }
  m.var /= static_cast<double>(v.size() - 1);
  return m;
}

// Initialisers under test, each on a fresh public [64, 48] tensor: fan_in 48, fan_out 64.
const Shape kShape{64, 48};
constexpr double kFanIn = 48;
constexpr double kFanOut = 64;
constexpr double kN = 64.0 * 48.0;

std::vector<Tensor> draw_all(Party& p, veil::crypto::Prg* gen) {
  std::vector<Tensor> out;
  auto fresh = [&p]() {
    return MpcTensor::zeros(kShape, p).set_requires_grad(true);
  };
  out.push_back(init::uniform_(fresh(), -2.0, 3.0, gen).reveal());
  out.push_back(init::normal_(fresh(), 0.5, 2.0, gen).reveal());
  out.push_back(init::xavier_uniform_(fresh(), 2.0, gen).reveal());
  out.push_back(init::xavier_normal_(fresh(), 1.0, gen).reveal());
  out.push_back(
      init::kaiming_uniform_(fresh(), 0.0, init::FanMode::kFanIn, init::Nonlinearity::kReLU, gen)
          .reveal());
  out.push_back(init::kaiming_normal_(fresh(), 0.2, init::FanMode::kFanOut,
                                      init::Nonlinearity::kLeakyReLU, gen)
                    .reveal());
  return out;
}

}  // namespace

TEST_CASE("init: every party draws the same public values", "[nn][init]") {
  for (int n : {2, 3}) {
    // WHEN every party initialises the same tensors from the common PRG and from a seed
    auto all = veil::agtest::run_all(n, [](Party& p) {
      std::vector<Tensor> out = draw_all(p, nullptr);
      veil::crypto::Prg gen(veil::crypto::Prg::public_seed(7, 1));
      for (const Tensor& t : draw_all(p, &gen)) {
        out.push_back(t);
      }
      return out;
    });
    // THEN the values are bit-identical on every party
    for (int r = 1; r < n; ++r) {
      for (std::size_t i = 0; i < all[0].size(); ++i) {
        CHECK(vt::max_abs_diff(all[0][i], all[static_cast<std::size_t>(r)][i]) == 0.0);
      }
    }
  }
}

TEST_CASE("init: bounds and moments follow PyTorch's formulas", "[nn][init]") {
  const auto out = veil::agtest::run(2, [](Party& p) { return draw_all(p, nullptr); });
  const double half_ulp = vt::ulp() / 2;
  // 5 standard errors for the mean; relative error of the sample variance <= 15 % (about 5
  // standard errors at 3072 samples)
  auto check_moments = [&](const Tensor& t, double mean, double var) {
    const Moments m = moments(t);
    INFO("mean " << m.mean << " (expected " << mean << "), var " << m.var << " (expected " << var
                 << ")");
    CHECK(std::abs(m.mean - mean) <= 5 * std::sqrt(var / kN));
    CHECK(std::abs(m.var / var - 1) <= 0.15);
  };
  auto check_bound = [&](const Tensor& t, double lo, double hi) {
    const Moments m = moments(t);
    CHECK(m.min >= lo - half_ulp);
    CHECK(m.max <= hi + half_ulp);
    // the extremes come close to the bounds (3072 uniform draws)
    CHECK(m.min <= lo + 0.01 * (hi - lo));
    CHECK(m.max >= hi - 0.01 * (hi - lo));
  };
  // uniform_(-2, 3)
  check_bound(out[0], -2, 3);
  check_moments(out[0], 0.5, 25.0 / 12);
  // normal_(0.5, 2)
  check_moments(out[1], 0.5, 4.0);
  // xavier_uniform_(gain 2): b = 2 sqrt(6 / (48 + 64))
  const double bx = 2 * std::sqrt(6 / (kFanIn + kFanOut));
  check_bound(out[2], -bx, bx);
  check_moments(out[2], 0, bx * bx / 3);
  // xavier_normal_: std = sqrt(2 / (48 + 64))
  check_moments(out[3], 0, 2 / (kFanIn + kFanOut));
  // kaiming_uniform_(relu, fan_in): b = sqrt(3) sqrt(2) / sqrt(48)
  const double bk = std::sqrt(3.0) * std::sqrt(2.0) / std::sqrt(kFanIn);
  check_bound(out[4], -bk, bk);
  check_moments(out[4], 0, bk * bk / 3);
  // kaiming_normal_(a = 0.2, leaky relu, fan_out): std = sqrt(2 / 1.04) / sqrt(64)
  check_moments(out[5], 0, 2 / (1 + 0.04) / kFanOut);
}

TEST_CASE("init: explicit seeds reproduce values, the common PRG differs per session",
          "[nn][init]") {
  auto session = [](std::optional<uint64_t> seed) {
    return veil::agtest::run(2, [seed](Party& p) {
      if (seed) {
        veil::crypto::Prg gen(veil::crypto::Prg::public_seed(*seed));
        return std::vector<Tensor>{init::uniform_(MpcTensor::zeros({32}, p), -1, 1, &gen).reveal()};
      }
      return std::vector<Tensor>{init::uniform_(MpcTensor::zeros({32}, p), -1, 1).reveal()};
    })[0];
  };
  // same seed in two sessions: same values; another seed, or the session's common PRG: others
  CHECK(vt::max_abs_diff(session(3), session(3)) == 0.0);
  CHECK(vt::max_abs_diff(session(3), session(4)) > 0.1);
  CHECK(vt::max_abs_diff(session(std::nullopt), session(std::nullopt)) > 0.1);
  // the values are the documented transform of the generator's uniforms
  veil::crypto::Prg gen(veil::crypto::Prg::public_seed(3));
  std::vector<double> expect(32);
  for (double& e : expect) {
    e = -1 + 2 * gen.uniform_double();
  }
  CHECK(vt::max_abs_diff(session(3), Tensor::from_vector(expect, {32})) <= vt::ulp() / 2);
}

TEST_CASE("init: gains, fans, constants, and Linear's default init", "[nn][init]") {
  // gains (torch.nn.init.calculate_gain)
  CHECK(init::calculate_gain(init::Nonlinearity::kLinear) == 1.0);
  CHECK(init::calculate_gain(init::Nonlinearity::kConv2D) == 1.0);
  CHECK(init::calculate_gain(init::Nonlinearity::kSigmoid) == 1.0);
  CHECK(init::calculate_gain(init::Nonlinearity::kTanh) == Approx(5.0 / 3.0));
  CHECK(init::calculate_gain(init::Nonlinearity::kReLU) == Approx(std::sqrt(2.0)));
  CHECK(init::calculate_gain(init::Nonlinearity::kLeakyReLU) ==
        Approx(std::sqrt(2.0 / (1 + 0.01 * 0.01))));
  CHECK(init::calculate_gain(init::Nonlinearity::kLeakyReLU, 0.5) == Approx(std::sqrt(2.0 / 1.25)));
  CHECK(init::calculate_gain(init::Nonlinearity::kSELU) == 0.75);
  // fans: dim 1 is fan_in, dim 0 fan_out, times the receptive field
  CHECK(init::calculate_fan_in_and_fan_out({8, 3, 5, 5}) == std::pair<int64_t, int64_t>{75, 200});
  CHECK(init::calculate_fan_in_and_fan_out({10, 20}) == std::pair<int64_t, int64_t>{20, 10});
  auto out = veil::agtest::run(2, [](Party& p) {
    // constants keep the handle (the module registry sees them) and requires_grad
    nn::Linear lin(nn::LinearOptions(3, 2).seed(9), p);
    init::ones_(lin->weight);
    init::constant_(lin->bias, 0.25);
    const MpcTensor registered = lin->named_parameters()[0].second;
    const Tensor w = registered.reveal();
    const Tensor b = lin->bias.reveal();
    const double keeps_grad = lin->weight.requires_grad() ? 1 : 0;
    init::zeros_(lin->bias);
    // Linear's default init: (2u - 1) / sqrt(in) from PRG(public_seed(seed, stream)), weight
    // [in, out] then bias
    nn::Linear fresh(nn::LinearOptions(3, 2).seed(9).stream(4), p);
    return std::vector<Tensor>{w,
                               b,
                               Tensor::scalar<double>(keeps_grad),
                               lin->bias.reveal(),
                               fresh->weight.reveal(),
                               fresh->bias.reveal()};
  });
  CHECK(vt::max_abs_diff(out[0], Tensor::full<double>({3, 2}, 1.0)) == 0);
  CHECK(vt::max_abs_diff(out[1], Tensor::full<double>({2}, 0.25)) == 0);
  CHECK(out[2].item<double>() == 1.0);
  CHECK(vt::max_abs_diff(out[3], Tensor::full<double>({2}, 0.0)) == 0);
  veil::crypto::Prg gen(veil::crypto::Prg::public_seed(9, 4));
  std::vector<double> w(6);
  std::vector<double> b(2);
  for (double& e : w) {
    e = (2 * gen.uniform_double() - 1) / std::sqrt(3.0);
  }
  for (double& e : b) {
    e = (2 * gen.uniform_double() - 1) / std::sqrt(3.0);
  }
  CHECK(vt::max_abs_diff(out[4], Tensor::from_vector(w, {3, 2})) <= vt::ulp() / 2);
  CHECK(vt::max_abs_diff(out[5], Tensor::from_vector(b, {2})) <= vt::ulp() / 2);
}

TEST_CASE("init rejects secret tensors and bad shapes", "[nn][init]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(init::calculate_fan_in_and_fan_out({5}), Contains("at least 2 dimensions"));
  veil::agtest::run(2, [](Party& p) {
    if (p.rank() != 0) {
      return std::vector<Tensor>{};
    }
    MpcTensor secret = MpcTensor::zeros({4, 4}, p);
    secret.encrypt();
    CHECK_THROWS_WITH(init::uniform_(secret), Contains("[init.uniform_] expected a public tensor"));
    CHECK_THROWS_WITH(init::kaiming_normal_(secret),
                      Contains("[init.kaiming_normal_] expected a public tensor"));
    CHECK_THROWS_WITH(init::xavier_uniform_(MpcTensor::zeros({4}, p)),
                      Contains("at least 2 dimensions"));
    CHECK_THROWS_WITH(init::uniform_(MpcTensor::zeros({4}, p), 1.0, 0.0),
                      Contains("[init.uniform_] expected finite bounds a <= b"));
    CHECK_THROWS_WITH(init::normal_(MpcTensor::zeros({4}, p), 0.0, -1.0),
                      Contains("[init.normal_] expected a finite mean and std >= 0"));
    return std::vector<Tensor>{};
  });
}
