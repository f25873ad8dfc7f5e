// Activation modules Softmax, LogSoftmax, ReLU6, LeakyReLU, Hardtanh: forward and backward
// against float64 formulas for secret inputs (2 and 3 parties) and public inputs, PyTorch
// defaults, bad arguments.

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "tests/autograd/autograd_test_util.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
namespace nn = veil::nn;
using veil::MpcTensor;
using veil::Party;
using veil::agtest::quantize;
using veil::core::Shape;
using veil::core::Tensor;

namespace {

// Softmax of x [R, C] along dim (0 or 1) and its vector-Jacobian product with r, in float64.
// With log = true: log_softmax and its VJP.
std::pair<Tensor, Tensor> softmax_ref(const Tensor& x, const Tensor& r, int64_t dim, bool log) {
  const int64_t rows = x.size(0);
  const int64_t cols = x.size(1);
  const auto xv = x.to_vector<double>();
  const auto rv = r.to_vector<double>();
  std::vector<double> y(xv.size());
  std::vector<double> dx(xv.size());
  const int64_t outer = dim == 1 ? rows : cols;
  const int64_t len = dim == 1 ? cols : rows;
  auto idx = [&](int64_t o, int64_t k) {
    return static_cast<std::size_t>(dim == 1 ? o * cols + k : k * cols + o);
  };
  for (int64_t o = 0; o < outer; ++o) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < len; ++k) {
      m = std::max(m, xv[idx(o, k)]);
    }
    double total = 0;
    for (int64_t k = 0; k < len; ++k) {
      total += std::exp(xv[idx(o, k)] - m);
    }
    double sum_rs = 0;
    double sum_r = 0;
    for (int64_t k = 0; k < len; ++k) {
      const double s = std::exp(xv[idx(o, k)] - m) / total;
      sum_rs += rv[idx(o, k)] * s;
      sum_r += rv[idx(o, k)];
    }
    for (int64_t k = 0; k < len; ++k) {
      const std::size_t j = idx(o, k);
      const double s = std::exp(xv[j] - m) / total;
      y[j] = log ? std::log(s) : s;
      dx[j] = log ? rv[j] - s * sum_r : s * (rv[j] - sum_rs);
    }
  }
  return {Tensor::from_vector(y, x.shape()), Tensor::from_vector(dx, x.shape())};
}

// Elementwise f and f' applied with the upstream gradient r.
std::pair<Tensor, Tensor> pointwise_ref(const Tensor& x,
                                        const Tensor& r,
                                        const std::function<double(double)>& f,
                                        const std::function<double(double)>& df) {
  auto xv = x.to_vector<double>();
  auto rv = r.to_vector<double>();
  std::vector<double> y(xv.size());
  std::vector<double> dx(xv.size());
  for (std::size_t j = 0; j < xv.size(); ++j) {
    y[j] = f(xv[j]);
    dx[j] = rv[j] * df(xv[j]);
  }
  return {Tensor::from_vector(y, x.shape()), Tensor::from_vector(dx, x.shape())};
}

// Runs module(x) and backpropagates sum(y * r); returns {y, dx} revealed on party 0.
std::vector<Tensor> run_module(int n,
                               bool secret,
                               const Tensor& x,
                               const Tensor& r,
                               const std::function<MpcTensor(const MpcTensor&)>& module) {
  return veil::agtest::run(n, [&](Party& p) {
    MpcTensor xs = secret ? MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p)
                          : MpcTensor::from_public(x, p);
    xs.set_requires_grad(true);
    const MpcTensor y = module(xs);
    veil::sum(veil::mul(y, MpcTensor::from_public(r, p))).backward();
    return std::vector<Tensor>{y.reveal(), xs.grad().reveal()};
  });
}

struct Case {
  std::string name;
  std::function<MpcTensor(const MpcTensor&)> module;
  std::pair<Tensor, Tensor> ref;
  double fwd_tol;
  double grad_tol;
};

}  // namespace

TEST_CASE("activation modules match float64 forward and backward", "[nn][activation]") {
  // GIVEN inputs [5, 4] around the interesting points of each function
  const Tensor xs = quantize(vt::uniform({5, 4}, -4, 4, 1));  // softmax logits
  const Tensor xc = quantize(vt::uniform({5, 4}, -3, 8, 2));  // crosses 0 and 6
  const Tensor xl = quantize(vt::uniform({5, 4}, -3, 3, 3));  // leaky / hardtanh
  const Tensor r = quantize(vt::uniform({5, 4}, -1, 1, 4));
  const double slope = 0.2;
  const double ulp = vt::ulp();
  std::vector<Case> cases;
  cases.push_back({"Softmax(1)", [](const MpcTensor& x) { return nn::Softmax(1)(x); },
                   softmax_ref(xs, r, 1, false), 1e-3, 3e-3});
  cases.push_back({"Softmax(0)", [](const MpcTensor& x) { return nn::Softmax(0)(x); },
                   softmax_ref(xs, r, 0, false), 1e-3, 3e-3});
  cases.push_back({"LogSoftmax(-1)", [](const MpcTensor& x) { return nn::LogSoftmax(-1)(x); },
                   softmax_ref(xs, r, 1, true), 4e-3, 4e-3});
  cases.push_back({"ReLU6", [](const MpcTensor& x) { return nn::ReLU6()(x); },
                   pointwise_ref(
                       xc, r, [](double v) { return std::clamp(v, 0.0, 6.0); },
                       [](double v) { return v > 0 && v < 6 ? 1.0 : 0.0; }),
                   ulp, 2 * ulp});
  cases.push_back({"LeakyReLU(0.2)",
                   [slope](const MpcTensor& x) { return nn::LeakyReLU(slope)(x); },
                   pointwise_ref(
                       xl, r, [slope](double v) { return v > 0 ? v : slope * v; },
                       [slope](double v) { return v > 0 ? 1.0 : slope; }),
                   4 * ulp, 4 * ulp});
  cases.push_back({"Hardtanh(-0.5, 2)",
                   [](const MpcTensor& x) { return nn::Hardtanh(-0.5, 2.0)(x); },
                   pointwise_ref(
                       xl, r, [](double v) { return std::clamp(v, -0.5, 2.0); },
                       [](double v) { return v > -0.5 && v < 2 ? 1.0 : 0.0; }),
                   ulp, 2 * ulp});
  const Tensor* inputs[] = {&xs, &xs, &xs, &xc, &xl, &xl};
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    for (int n : {2, 3}) {
      for (bool secret : {true, false}) {
        if (!secret && n == 3) {
          continue;
        }
        // WHEN the module runs and sum(y * r) is backpropagated
        const auto out = run_module(n, secret, *inputs[i], r, c.module);
        INFO(c.name << ", " << (secret ? "secret" : "public") << ", " << n << " parties");
        // THEN value and gradient match float64
        CHECK(vt::max_abs_diff(out[0], c.ref.first) <= c.fwd_tol);
        CHECK(vt::max_abs_diff(out[1], c.ref.second) <= c.grad_tol);
      }
    }
  }
}

TEST_CASE("activation modules keep PyTorch defaults and reject bad arguments", "[nn][activation]") {
  using Catch::Matchers::Contains;
  veil::agtest::run(2, [](Party& p) {
    if (p.rank() != 0) {
      return std::vector<Tensor>{};  // local checks, Catch assertions on one thread only
    }
    CHECK(nn::LeakyReLU()->negative_slope() == 0.01);
    CHECK(nn::Hardtanh()->min_val() == -1.0);
    CHECK(nn::Hardtanh()->max_val() == 1.0);
    CHECK(nn::Softmax(-1)->dim() == -1);
    CHECK_THROWS_WITH(nn::Hardtanh(1.0, -1.0), Contains("[Hardtanh] expected finite min_val"));
    CHECK_THROWS_WITH(nn::LeakyReLU(std::nan("")),
                      Contains("[LeakyReLU] expected a finite negative_slope"));
    const MpcTensor x = MpcTensor::from_public(vt::uniform({2, 3}, -1, 1, 5), p);
    CHECK_THROWS_WITH(nn::Softmax(2)(x), Contains("[softmax]"));
    CHECK_THROWS_WITH(nn::LogSoftmax(-3)(x), Contains("[log_softmax]"));
    CHECK_THROWS_WITH(nn::ReLU6()(MpcTensor()), Contains("undefined"));
    return std::vector<Tensor>{};
  });
}
