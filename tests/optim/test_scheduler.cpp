// Learning-rate schedules against their closed-form formulas (PyTorch semantics).

#include <cmath>
#include <numbers>

#include <catch2/catch.hpp>

#include "optim/scheduler.h"
#include "optim/sgd.h"
#include "tests/harness/simulate.h"

namespace optim = veil::optim;
namespace vt = veil::testing;

TEST_CASE("StepLR and CosineAnnealingLR follow their formulas and drive SGD's lr",
          "[optim][scheduler]") {
  auto out = veil::crypto::launch<std::vector<double>>(vt::test_options(2), [](veil::Party& p) {
    auto w = veil::MpcTensor::from_public(vt::uniform({2, 2}, -1, 1, 1), p);
    w.set_requires_grad(true);
    std::vector<double> lrs;
    {
      optim::SGD opt({w}, optim::SGDOptions(0.1));
      optim::StepLR sched(opt, /*step_size=*/3, /*gamma=*/0.5);
      for (int e = 0; e < 7; ++e) {
        lrs.push_back(opt.lr());
        sched.step();
      }
    }
    {
      optim::SGD opt({w}, optim::SGDOptions(0.2));
      optim::CosineAnnealingLR sched(opt, /*t_max=*/4, /*eta_min=*/0.02);
      for (int e = 0; e < 5; ++e) {
        lrs.push_back(sched.get_lr());
        sched.step();
      }
    }
    return lrs;
  });
  const auto& lrs = out[0];
  REQUIRE(lrs.size() == 12);
  // GIVEN StepLR(3, 0.5) from 0.1 THEN epochs 0..6 use 0.1 x 3, 0.05 x 3, 0.025
  const double step_ref[] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025};
  for (int e = 0; e < 7; ++e) {
    CHECK(lrs[static_cast<std::size_t>(e)] == Approx(step_ref[e]).epsilon(1e-12));
  }
  // GIVEN cosine(4, 0.02) from 0.2 THEN eta_min + (0.2 - eta_min)(1 + cos(pi e / 4)) / 2
  for (int e = 0; e < 5; ++e) {
    const double ref = 0.02 + 0.18 * (1 + std::cos(std::numbers::pi * e / 4.0)) / 2;
    CHECK(lrs[static_cast<std::size_t>(7 + e)] == Approx(ref).epsilon(1e-12));
  }
}

TEST_CASE("schedulers reject bad arguments", "[optim][scheduler]") {
  auto errors = veil::crypto::launch<int>(vt::test_options(2), [](veil::Party& p) {
    auto w = veil::MpcTensor::from_public(vt::uniform({2}, -1, 1, 2), p);
    optim::SGD opt({w}, optim::SGDOptions(0.1));
    int n = 0;
    try {
      optim::StepLR bad(opt, 0);
    } catch (const veil::ValueError&) {
      ++n;
    }
    try {
      optim::CosineAnnealingLR bad(opt, 10, 0.5);
    } catch (const veil::ValueError&) {
      ++n;
    }
    try {
      opt.set_lr(-1);
    } catch (const veil::ValueError&) {
      ++n;
    }
    return n;
  });
  CHECK(errors[0] == 3);
}
