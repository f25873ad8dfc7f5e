// Loss modules with a reduction (nn/loss.h): BCELoss, BCEWithLogitsLoss, NLLLoss and the
// reduction option of MSELoss, L1Loss, CrossEntropyLoss against float64 values, 2 and 3 parties;
// the default constructors keep the mean.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "nn/nn.h"
#include "tests/autograd/autograd_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::Reduction;
using veil::agtest::kUlp;
using veil::agtest::Tensor;
namespace nn = veil::nn;
namespace vt = veil::testing;

double sum_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) {
    s += x;
  }
  return s;
}

}  // namespace

TEST_CASE("loss modules apply their reduction", "[nn][losses]") {
  // GIVEN probabilities, logits, binary targets and class labels (secret inputs, public targets)
  const int64_t rows = 5;
  const int64_t c = 4;
  const Tensor prob = veil::agtest::quantize(vt::uniform({rows}, 0.3, 0.7, 51));
  const Tensor logit = veil::agtest::quantize(vt::uniform({rows}, -4, 4, 52));
  const Tensor target = veil::agtest::quantize(vt::uniform({rows}, 0, 1, 53));
  const Tensor scores = veil::agtest::quantize(vt::uniform({rows, c}, -3, 3, 54));
  const Tensor labels = Tensor::from_vector(std::vector<int64_t>{1, 0, 3, 2, 2}, {rows});
  // float64 per-element losses
  const auto pv = prob.to_vector<double>();
  const auto xv = logit.to_vector<double>();
  const auto tv = target.to_vector<double>();
  const auto sv = scores.to_vector<double>();
  const auto yv = labels.to_vector<int64_t>();
  std::vector<double> bce, bcel, nll, ce, mse, l1;
  for (std::size_t i = 0; i < static_cast<std::size_t>(rows); ++i) {
    bce.push_back(-(tv[i] * std::log(pv[i]) + (1 - tv[i]) * std::log(1 - pv[i])));
    bcel.push_back(std::max(xv[i], 0.0) - xv[i] * tv[i] + std::log1p(std::exp(-std::abs(xv[i]))));
    const double* row = sv.data() + i * static_cast<std::size_t>(c);
    const auto y = static_cast<std::size_t>(yv[i]);
    nll.push_back(-row[y]);
    const double mx = *std::max_element(row, row + c);
    double total = 0;
    for (int64_t j = 0; j < c; ++j) {
      total += std::exp(row[j] - mx);
    }
    ce.push_back(mx + std::log(total) - row[y]);
    mse.push_back((xv[i] - tv[i]) * (xv[i] - tv[i]));
    l1.push_back(std::abs(xv[i] - tv[i]));
  }
  const std::vector<std::vector<double>*> refs{&bce, &bcel, &nll, &ce, &mse, &l1};
  // per element: crypto::log's contract (1e-2) for bce/bcel/ce plus exp/softmax, a few ulp else
  const std::vector<double> per_tol{1e-2, 1.2e-2, 2 * kUlp, 1.5e-2, 4 * kUlp, 2 * kUlp};
  for (Reduction r : {Reduction::kMean, Reduction::kSum, Reduction::kNone}) {
    for (int n : {2, 3}) {
      INFO(n << " parties, reduction " << static_cast<int>(r));
      const auto got = veil::agtest::run(n, [&](Party& p) {
        const MpcTensor ps = MpcTensor::share(p.rank() == 0 ? prob : Tensor(), 0, {rows}, p);
        const MpcTensor xs = MpcTensor::share(p.rank() == 0 ? logit : Tensor(), 0, {rows}, p);
        const MpcTensor ss = MpcTensor::share(p.rank() == 1 ? scores : Tensor(), 1, {rows, c}, p);
        const MpcTensor ts = MpcTensor::from_public(target, p);
        return std::vector<Tensor>{
            nn::BCELoss(r)(ps, ts).reveal(),     nn::BCEWithLogitsLoss(r)(xs, ts).reveal(),
            nn::NLLLoss(r)(ss, labels).reveal(), nn::CrossEntropyLoss(r)(ss, labels).reveal(),
            nn::MSELoss(r)(xs, ts).reveal(),     nn::L1Loss(r)(xs, ts).reveal()};
      });
      for (std::size_t k = 0; k < refs.size(); ++k) {
        INFO("loss " << k);
        const std::vector<double>& ref = *refs[k];
        const auto v = got[k].to_vector<double>();
        if (r == Reduction::kNone) {
          REQUIRE(v.size() == ref.size());
          for (std::size_t i = 0; i < v.size(); ++i) {
            CHECK(std::abs(v[i] - ref[i]) <= per_tol[k]);
          }
        } else {
          REQUIRE(v.size() == 1);
          const double want = r == Reduction::kSum ? sum_of(ref) : sum_of(ref) / rows;
          const double tol = (r == Reduction::kSum ? rows : 1) * per_tol[k] + 4 * kUlp +
                             std::abs(want) * rows * std::ldexp(1.0, -17);
          CHECK(std::abs(v[0] - want) <= tol);
        }
      }
    }
  }
}

TEST_CASE("loss modules keep their defaults and give MSE's target a gradient", "[nn][losses]") {
  const Tensor x = veil::agtest::quantize(vt::uniform({4, 3}, -1, 1, 61));
  const Tensor y = veil::agtest::quantize(vt::uniform({4, 3}, -1, 1, 62));
  const auto got = veil::agtest::run(2, [&](Party& p) {
    MpcTensor xs = MpcTensor::from_public(x, p);
    MpcTensor ys = MpcTensor::from_public(y, p);
    xs.set_requires_grad();
    ys.set_requires_grad();
    nn::MSELoss mse;
    nn::CrossEntropyLoss ce;
    nn::BCELoss bce;
    const double defaults = mse->reduction() == Reduction::kMean &&
                                    ce->reduction() == Reduction::kMean &&
                                    bce->reduction() == Reduction::kMean &&
                                    nn::L1Loss()->reduction() == Reduction::kMean &&
                                    nn::NLLLoss()->reduction() == Reduction::kMean &&
                                    nn::BCEWithLogitsLoss()->reduction() == Reduction::kMean
                                ? 1.0
                                : 0.0;
    mse(xs, ys).backward();
    return std::vector<Tensor>{Tensor::scalar(defaults), xs.grad().reveal(), ys.grad().reveal()};
  });
  CHECK(got[0].item<double>() == 1.0);
  const auto gx = got[1].to_vector<double>();
  const auto gy = got[2].to_vector<double>();
  const auto xv = x.to_vector<double>();
  const auto yv = y.to_vector<double>();
  for (std::size_t i = 0; i < gx.size(); ++i) {
    CHECK(std::abs(gx[i] - 2 * (xv[i] - yv[i]) / 12) <= kUlp);
    CHECK(gy[i] == -gx[i]);
  }
}
