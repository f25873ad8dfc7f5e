// The README's example, compiled and run: it must train (the loss on a fixed batch goes down).

#include <catch2/catch.hpp>

#include "core/ops.h"
#include "tests/harness/simulate.h"

#include "veil.h"

namespace vt = veil::testing;

TEST_CASE("README example: two parties train an encrypted MLP on secret data", "[models]") {
  // GIVEN a learnable batch: noise plus a bright band of pixels whose position is the label
  veil::core::Tensor images = vt::uniform({128, 784}, 0, 0.2, 7);
  std::vector<int64_t> labels_v(128);
  for (std::size_t i = 0; i < labels_v.size(); ++i) {
    labels_v[i] = static_cast<int64_t>(i % 10);
    for (int64_t j = 0; j < 78; ++j) {
      images.data<double>()[static_cast<int64_t>(i) * 784 + labels_v[i] * 78 + j] += 1.0;
    }
  }
  const veil::core::Tensor one_hot =
      veil::core::one_hot(veil::core::Tensor::from_vector(labels_v, {128}), 10);

  veil::crypto::LaunchOptions options;  // 2 parties + the dealer, as threads
  options.party.timeout = std::chrono::milliseconds(10000);
  auto losses = veil::crypto::launch<std::vector<double>>(options, [&](veil::Party& party) {
    // --- README snippet starts ---
    // Every party runs the same program; party 0 owns the images, party 1 the labels.
    auto x =
        veil::MpcTensor::share(party.rank() == 0 ? images : veil::core::Tensor(), 0, {128, 784});
    auto y =
        veil::MpcTensor::share(party.rank() == 1 ? one_hot : veil::core::Tensor(), 1, {128, 10});
    veil::models::Mlp model(std::vector<int64_t>{784, 128, 10});
    model->encrypt(/*src=*/0);
    veil::optim::SGD opt(model->parameters(), veil::optim::SGDOptions(0.1).momentum(0.9));
    std::vector<double> seen;
    for (int step = 0; step < 6; ++step) {
      opt.zero_grad();
      auto loss = veil::cross_entropy(model(x), y);
      loss.backward();
      opt.step();
      seen.push_back(loss.reveal().item<double>());  // reveal only what you mean to disclose
    }
    // --- README snippet ends ---
    return seen;
  });
  // THEN every party saw the same revealed losses, and training drives the loss down
  REQUIRE(losses[0].size() == 6);
  CHECK(losses[0] == losses[1]);
  CHECK(losses[0].front() > 2.0);  // ~log(10) at the start
  CHECK(losses[0].back() < losses[0].front() - 0.5);
}
