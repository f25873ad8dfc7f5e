// sigmoid, tanh and GELU: secret forward and backward against float64 formulas, 2 and 3 parties;
// public mode against the same formulas.

#include <cmath>
#include <numbers>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "core/elementwise.h"
#include "nn/nn.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
using veil::core::Tensor;

namespace {

struct Ref {
  double (*f)(double);
  double (*df)(double);
};

double sig(double v) {
  return 1.0 / (1.0 + std::exp(-v));
}
double dsig(double v) {
  return sig(v) * (1 - sig(v));
}
double dtanh(double v) {
  return 1 - std::tanh(v) * std::tanh(v);
}
double phi(double v) {
  return 0.5 * (1 + std::erf(v / std::numbers::sqrt2));
}
double gelu(double v) {
  return v * phi(v);
}
double dgelu(double v) {
  return phi(v) + v * std::exp(-v * v / 2) / std::sqrt(2 * std::numbers::pi);
}

// Forward values and gradients of sum(f(x)) for a secret (or public) x, revealed on party 0.
std::pair<Tensor, Tensor> run(int n, bool secret, const Tensor& x, int which) {
  auto out =
      veil::crypto::launch<std::pair<Tensor, Tensor>>(vt::test_options(n), [&](veil::Party& p) {
        auto xs = secret ? veil::MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p)
                         : veil::MpcTensor::from_public(x, p);
        xs.set_requires_grad(true);
        veil::MpcTensor y;
        if (which == 0) {
          y = veil::nn::Sigmoid()(xs);
        } else if (which == 1) {
          y = veil::nn::Tanh()(xs);
        } else {
          y = veil::nn::GELU()(xs);
        }
        veil::sum(y).backward();
        return std::make_pair(y.reveal(), xs.grad().reveal());
      });
  return out[0];
}

}  // namespace

TEST_CASE("sigmoid, tanh and GELU forward and backward match float64", "[autograd][activations]") {
  const Ref refs[] = {{sig, dsig}, {[](double v) { return std::tanh(v); }, dtanh}, {gelu, dgelu}};
  const double fwd_tol[] = {2e-3, 4e-3, 3e-3};
  const Tensor x = vt::uniform({64}, -5, 5, 21);
  for (int which = 0; which < 3; ++which) {
    const Tensor f = veil::core::map<double, double>(x, refs[which].f);
    const Tensor df = veil::core::map<double, double>(x, refs[which].df);
    for (int n : {2, 3}) {
      const auto [y, g] = run(n, /*secret=*/true, x, which);
      CHECK(vt::max_abs_diff(y, f) <= fwd_tol[which]);
      // the derivative combines the forward error with a few products and truncations
      CHECK(vt::max_abs_diff(g, df) <= 3 * fwd_tol[which] + 16 * vt::ulp());
    }
    const auto [yp, gp] = run(2, /*secret=*/false, x, which);
    // public: exact float64 values, encoded (GELU adds one fixed-point product, |x| <= 5)
    CHECK(vt::max_abs_diff(yp, f) <= 6 * vt::ulp());
    CHECK(vt::max_abs_diff(gp, df) <= 1e-3);
  }
}
