// SGD: steps with momentum, weight decay, dampening and Nesterov on secret parameters and
// gradients against the float64 PyTorch formula; public parameters with public gradients; skipped
// parameters without gradients; zero_grad; option validation.

#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "optim/optim.h"
#include "tests/autograd/autograd_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::agtest::kUlp;
using veil::agtest::Tensor;
namespace optim = veil::optim;

// torch.optim.SGD on one tensor for the given gradients (one per step), in float64.
Tensor sgd_reference(Tensor p, const std::vector<Tensor>& grads, const optim::SGDOptions& o) {
  p = p.clone();
  Tensor buf;
  for (const Tensor& grad : grads) {
    Tensor g = veil::core::add(grad, veil::core::mul_scalar(p, o.weight_decay()));
    if (o.momentum() != 0) {
      buf = buf.defined() ? veil::core::add(veil::core::mul_scalar(buf, o.momentum()),
                                            veil::core::mul_scalar(g, 1.0 - o.dampening()))
                          : g;
      g = o.nesterov() ? veil::core::add(g, veil::core::mul_scalar(buf, o.momentum())) : buf;
    }
    p = veil::core::sub(p, veil::core::mul_scalar(g, o.lr()));
  }
  return p;
}

// Runs `steps` SGD steps on a secret (or public) parameter whose gradient is set directly.
std::vector<Tensor> run_sgd(int n,
                            bool secret,
                            const Tensor& p0,
                            const std::vector<Tensor>& grads,
                            const optim::SGDOptions& o) {
  return veil::agtest::run(n, [&](Party& p) {
    MpcTensor w = MpcTensor::from_public(p0, p);
    w.set_requires_grad();
    MpcTensor alias = w;  // the optimizer updates the handle in place
    MpcTensor untouched = MpcTensor::from_public(p0, p);
    untouched.set_requires_grad();
    if (secret) {
      w.encrypt(0);
      untouched.encrypt(1);
    }
    optim::SGD opt({w, untouched}, o);
    for (const Tensor& g : grads) {
      opt.zero_grad();
      w.set_grad(secret ? MpcTensor::share(p.rank() == 1 ? g : Tensor(), 1, g.shape(), p)
                        : MpcTensor::from_public(g, p));
      opt.step();
    }
    const double vis = alias.is_secret() ? 1.0 : 0.0;
    return std::vector<Tensor>{alias.reveal(), untouched.reveal(), Tensor::scalar(vis)};
  });
}

}  // namespace

TEST_CASE("SGD: momentum and weight decay match the float64 formula", "[optim][sgd]") {
  const Tensor p0 = veil::agtest::quantize(veil::testing::uniform({3, 4}, -1, 1, 31));
  std::vector<Tensor> grads;
  for (uint64_t s = 0; s < 3; ++s) {
    grads.push_back(veil::agtest::quantize(veil::testing::uniform({3, 4}, -1, 1, 40 + s)));
  }
  struct Case {
    const char* name;
    optim::SGDOptions options;
  };
  const std::vector<Case> cases{
      {"plain", optim::SGDOptions(0.1)},
      {"momentum+wd", optim::SGDOptions(0.05).momentum(0.9).weight_decay(0.01)},
      {"dampening", optim::SGDOptions(0.05).momentum(0.8).dampening(0.3).weight_decay(0.02)},
      {"nesterov", optim::SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(1e-3)},
  };
  for (const Case& c : cases) {
    const Tensor want = sgd_reference(p0, grads, c.options);
    // the one-step case pins the first-step rule buf = g
    const Tensor want1 = sgd_reference(p0, {grads[0]}, c.options);
    for (int n : {2, 3}) {
      for (bool secret : {true, false}) {
        INFO(c.name << ", " << n << " parties, " << (secret ? "secret" : "public"));
        const auto got = run_sgd(n, secret, p0, grads, c.options);
        // a handful of truncations per step (plus scalar encodings, error <= 2^-17 each)
        CHECK(veil::testing::max_abs_diff(got[0], want) <= 12 * kUlp);
        // the parameter without a gradient is skipped
        CHECK(veil::testing::max_abs_diff(got[1], p0) == 0);
        CHECK(got[2].item<double>() == (secret ? 1.0 : 0.0));
        const auto got1 = run_sgd(n, secret, p0, {grads[0]}, c.options);
        CHECK(veil::testing::max_abs_diff(got1[0], want1) <= 6 * kUlp);
      }
    }
    // AND the tolerance is meaningful: the update is far larger than it
    CHECK(veil::testing::max_abs_diff(want, p0) > 100 * 12 * kUlp);
  }
}

TEST_CASE("SGD: a training step on a secret model lowers the loss", "[optim][sgd]") {
  const Tensor x = veil::agtest::quantize(veil::testing::uniform({6, 3}, -1, 1, 51));
  const Tensor w0 = veil::agtest::quantize(veil::testing::uniform({3, 2}, -1, 1, 52));
  const Tensor y = Tensor::from_vector(std::vector<int64_t>{0, 1, 1, 0, 1, 0}, {6});
  const auto got = veil::agtest::run(2, [&](Party& p) {
    MpcTensor w = MpcTensor::from_public(w0, p);
    w.set_requires_grad();
    w.encrypt(0);
    const MpcTensor xs = MpcTensor::share(p.rank() == 1 ? x : Tensor(), 1, {6, 3}, p);
    optim::SGD opt({w}, optim::SGDOptions(0.5).momentum(0.5));
    std::vector<double> losses;
    for (int i = 0; i < 4; ++i) {
      opt.zero_grad();
      const MpcTensor loss = veil::cross_entropy(veil::matmul(xs, w), y);
      loss.backward();
      opt.step();
      losses.push_back(loss.reveal().item<double>());
    }
    return std::vector<Tensor>{Tensor::from_vector(losses, {4})};
  });
  const auto l = got[0].to_vector<double>();
  CHECK(l[3] < l[0] - 0.01);
}

TEST_CASE("SGD: option validation", "[optim][sgd][errors]") {
  auto error_of = [](const optim::SGDOptions& o) -> std::string {
    try {
      optim::SGD opt({}, o);
    } catch (const veil::ValueError& e) {
      return e.what();
    }
    return "no exception";
  };
  CHECK_THAT(error_of(optim::SGDOptions(0.0)), Catch::StartsWith("[SGD] expected lr > 0"));
  CHECK_THAT(error_of(optim::SGDOptions(0.1).nesterov(true)),
             Catch::StartsWith("[SGD] Nesterov momentum requires"));
  CHECK_THAT(error_of(optim::SGDOptions(0.1).momentum(-1)),
             Catch::StartsWith("[SGD] expected momentum >= 0"));
  CHECK(error_of(optim::SGDOptions(0.1).momentum(0.9).nesterov(true)) == "no exception");
  CHECK_THROWS_AS(optim::SGD({MpcTensor()}, optim::SGDOptions(0.1)), veil::ValueError);
}
