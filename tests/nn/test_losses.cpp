// MSELoss and L1Loss (and |x|): values and gradients against float64, 2 and 3 parties.

#include <cmath>

#include <catch2/catch.hpp>

#include "nn/nn.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
using veil::core::Tensor;

TEST_CASE("MSELoss and L1Loss match float64 values and gradients", "[nn][losses]") {
  const Tensor x = vt::uniform({8, 5}, -3, 3, 41);
  const Tensor y = vt::uniform({8, 5}, -3, 3, 42);
  const auto xv = x.to_vector<double>();
  const auto yv = y.to_vector<double>();
  const double n = static_cast<double>(xv.size());
  double mse = 0;
  double l1 = 0;
  for (std::size_t i = 0; i < xv.size(); ++i) {
    mse += (xv[i] - yv[i]) * (xv[i] - yv[i]) / n;
    l1 += std::abs(xv[i] - yv[i]) / n;
  }
  for (int parties : {2, 3}) {
    auto out =
        veil::crypto::launch<std::vector<Tensor>>(vt::test_options(parties), [&](veil::Party& p) {
          auto xs = veil::MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
          auto ys = veil::MpcTensor::share(p.rank() == 1 ? y : Tensor(), 1, y.shape(), p);
          xs.set_requires_grad(true);
          auto a = veil::nn::MSELoss()(xs, ys);
          a.backward();
          const Tensor ga = xs.grad().reveal();
          xs.zero_grad();
          auto b = veil::nn::L1Loss()(xs, ys);
          b.backward();
          return std::vector<Tensor>{a.reveal(), ga, b.reveal(), xs.grad().reveal()};
        });
    const auto& r = out[0];
    // mean() multiplies by the fixed-point encoding of 1/n: relative error up to n * 2^-17
    const double rel = n * vt::ulp() / 2;
    CHECK(std::abs(r[0].item<double>() - mse) <= mse * rel + 40 * vt::ulp());
    CHECK(std::abs(r[2].item<double>() - l1) <= l1 * rel + 8 * vt::ulp());
    const auto ga = r[1].to_vector<double>();
    const auto gb = r[3].to_vector<double>();
    for (std::size_t i = 0; i < xv.size(); ++i) {
      CHECK(std::abs(ga[i] - 2 * (xv[i] - yv[i]) / n) <= 8 * vt::ulp());
      CHECK(std::abs(gb[i] - (xv[i] >= yv[i] ? 1.0 : -1.0) / n) <= 4 * vt::ulp());
    }
  }
}

TEST_CASE("losses reject mismatched shapes", "[nn][losses]") {
  auto msg = veil::crypto::launch<std::string>(vt::test_options(2), [](veil::Party& p) {
    auto a = veil::MpcTensor::from_public(vt::uniform({3}, 0, 1, 1), p);
    auto b = veil::MpcTensor::from_public(vt::uniform({4}, 0, 1, 2), p);
    try {
      veil::mse_loss(a, b);
    } catch (const veil::ValueError& e) {
      return std::string(e.what());
    }
    return std::string();
  });
  CHECK_THAT(msg[0], Catch::Contains("[mse_loss]") && Catch::Contains("[3]"));
}
