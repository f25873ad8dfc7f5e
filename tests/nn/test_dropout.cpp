// Dropout (public mask from the common PRG) and Flatten against float64 references.

#include <catch2/catch.hpp>

#include "core/ops.h"
#include "nn/nn.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
using veil::core::Tensor;

TEST_CASE("Dropout keeps about 1-p of the elements, scales them, and is the identity in eval",
          "[nn][dropout]") {
  const Tensor x = vt::uniform({64, 32}, -2, 2, 5);
  auto out = veil::crypto::launch<std::vector<Tensor>>(vt::test_options(2), [&](veil::Party& p) {
    auto xs = veil::MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
    xs.set_requires_grad(true);
    veil::nn::Dropout drop(0.25);
    auto y = drop(xs);
    veil::sum(y).backward();
    const Tensor yv = y.reveal();
    const Tensor gv = xs.grad().reveal();
    drop->eval();
    const Tensor ev = drop(xs).reveal();
    return std::vector<Tensor>{yv, gv, ev};
  });
  const auto yv = out[0][0].to_vector<double>();
  const auto gv = out[0][1].to_vector<double>();
  const auto xv = x.to_vector<double>();
  int kept = 0;
  for (std::size_t i = 0; i < xv.size(); ++i) {
    // THEN each element is either dropped (0, gradient 0) or scaled by 1/(1-p) (gradient 1/(1-p))
    const bool dropped = gv[i] == 0.0;
    if (dropped) {
      CHECK(std::abs(yv[i]) <= 4 * vt::ulp());
    } else {
      ++kept;
      CHECK(std::abs(gv[i] - 1.0 / 0.75) <= 4 * vt::ulp());
      CHECK(std::abs(yv[i] - xv[i] / 0.75) <= 8 * vt::ulp());
    }
  }
  // 2048 Bernoulli(0.75) draws: mean 1536, sd ~19.6
  CHECK(kept > 1536 - 100);
  CHECK(kept < 1536 + 100);
  // both parties used the same public mask (identical revealed outputs)
  CHECK(vt::max_abs_diff(out[0][0], out[1][0]) == 0.0);
  CHECK(vt::max_abs_diff(out[0][2], x) <= vt::ulp());
}

TEST_CASE("Flatten reshapes [N, C, H, W] to [N, C*H*W], bad p and start_dim throw",
          "[nn][dropout]") {
  auto shapes = veil::crypto::launch<int64_t>(vt::test_options(2), [](veil::Party& p) {
    auto x = veil::MpcTensor::from_public(vt::uniform({2, 3, 4, 5}, -1, 1, 3), p);
    veil::nn::Flatten flat;
    const auto y = flat(x);
    int errors = 0;
    try {
      veil::nn::Dropout bad(1.0);
    } catch (const veil::ValueError&) {
      ++errors;
    }
    try {
      veil::nn::Flatten bad_dim(7);
      bad_dim(x);
    } catch (const veil::ValueError&) {
      ++errors;
    }
    return y.size(1) * 10 + errors;
  });
  CHECK(shapes[0] == 60 * 10 + 2);
}

TEST_CASE("state_dict round trip into a second model, bad entries are named", "[nn][state_dict]") {
  auto out =
      veil::crypto::launch<std::vector<std::string>>(vt::test_options(2), [](veil::Party& p) {
        veil::nn::Sequential a(veil::nn::Linear(4, 3), veil::nn::ReLU(), veil::nn::Linear(3, 2));
        veil::nn::Sequential b(veil::nn::Linear(4, 3), veil::nn::ReLU(), veil::nn::Linear(3, 2));
        a->encrypt(0);
        b->encrypt(0);
        b->load_state_dict(a->state_dict());
        const auto x = veil::MpcTensor::from_public(vt::uniform({5, 4}, -1, 1, 9), p);
        const double diff = vt::max_abs_diff(a(x).reveal(), b(x).reveal());
        // same weights: equal up to the random +-1 unit of each truncation
        std::vector<std::string> res{diff <= 8 * vt::ulp() ? "same" : "different"};
        for (const auto& [name, t] : a->state_dict()) {
          res.push_back(name);
        }
        try {
          auto sd = a->state_dict();
          sd[0].second = veil::MpcTensor::from_public(vt::uniform({7}, 0, 1, 1), p);
          b->load_state_dict(sd);
        } catch (const veil::ValueError& e) {
          res.emplace_back(e.what());
        }
        return res;
      });
  const auto& r = out[0];
  REQUIRE(r.size() == 6);
  CHECK(r[0] == "same");
  CHECK(r[1] == "0.weight");
  CHECK(r[4] == "2.bias");
  CHECK_THAT(r[5], Catch::Contains("'0.weight'") && Catch::Contains("[7]"));
}
