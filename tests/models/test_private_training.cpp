// End to end: private training of the MLP on real Fashion-MNIST rows reaches a stated accuracy and
// tracks the float64 twin trained from the same weights in the same order.

#include <cstdio>
#include <filesystem>

#include <catch2/catch.hpp>

#include "models/data.h"
#include "models/private_training.h"
#include "tests/harness/simulate.h"
#include "tests/harness/tools.h"

namespace models = veil::models;
namespace crypto = veil::crypto;
namespace vt = veil::testing;

namespace {
bool have_data() {
  return veil::testing::have_fashion_mnist();
}
}  // namespace

TEST_CASE("private MLP training reaches 70% and stays within 3 points of the plaintext twin",
          "[models][training][slow]") {
  if (!have_data()) {
    std::puts("SKIPPED: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  // GIVEN 3000 training rows split over the parties and 1000 test rows
  const auto train = models::load_fashion_mnist(models::Split::kTrain, 3000);
  const auto test = models::load_fashion_mnist(models::Split::kTest, 1000);
  models::TrainOptions opts;
  opts.batch_size = 64;
  opts.lr = 0.1;
  opts.progress_every = 0;
  for (int n : {2, 3}) {
    // WHEN the parties train one epoch privately and evaluate by encrypted inference
    auto reports = crypto::launch<models::PartyReport>(vt::test_options(n), [&](crypto::Party& p) {
      return models::train_private_mlp(p, train, test, opts);
    });
    const double acc = models::accuracy(reports[0].predictions, test.labels);
    const auto twin = models::train_plaintext_twin(train, test, opts);
    // THEN the private model is useful, every party got the same predictions, and it tracks the
    // plaintext twin (fixed-point rounding makes small differences)
    CHECK(acc >= 0.70);
    CHECK(std::abs(acc - twin.test_accuracy) <= 0.03);
    for (int r = 1; r < n; ++r) {
      CHECK(reports[static_cast<std::size_t>(r)].predictions == reports[0].predictions);
    }
    CHECK(reports[0].train_stats.total.rounds > 0);
  }
}
