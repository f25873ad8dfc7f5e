#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <vector>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "crypto/prg.h"
#include "models/data.h"
#include "models/plaintext_mlp.h"

using veil::core::Tensor;
using veil::models::PlaintextMlp;
using veil::models::SgdConfig;

namespace {

Tensor random_tensor(const veil::core::Shape& shape, uint64_t seed, double scale) {
  veil::crypto::Prg prg(veil::crypto::Prg::public_seed(seed, 7));
  Tensor t = Tensor::empty(shape, veil::core::DType::kFloat64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    p[i] = scale * prg.normal();
  }
  return t;
}

// Naive reference forward pass with plain loops: x [B, in] -> logits [B, out].
std::vector<double> reference_forward(const std::vector<Tensor>& ws,
                                      const std::vector<Tensor>& bs,
                                      const Tensor& x) {
  const int64_t batch = x.size(0);
  std::vector<double> h = x.to_vector<double>();
  int64_t width = x.size(1);
  for (std::size_t l = 0; l < ws.size(); ++l) {
    const int64_t out = ws[l].size(1);
    const auto w = ws[l].to_vector<double>();
    const auto b = bs[l].to_vector<double>();
    std::vector<double> z(static_cast<std::size_t>(batch * out));
    for (int64_t i = 0; i < batch; ++i) {
      for (int64_t j = 0; j < out; ++j) {
        double s = b[static_cast<std::size_t>(j)];
        for (int64_t k = 0; k < width; ++k) {
          s +=
              h[static_cast<std::size_t>(i * width + k)] * w[static_cast<std::size_t>(k * out + j)];
        }
        z[static_cast<std::size_t>(i * out + j)] = l + 1 < ws.size() ? std::max(s, 0.0) : s;
      }
    }
    h = std::move(z);
    width = out;
  }
  return h;
}

bool have_fashion_mnist() {
  const std::filesystem::path dir = veil::models::fashion_mnist_dir();
  return std::filesystem::exists(dir / "train-images-idx3-ubyte.gz") &&
         std::filesystem::exists(dir / "t10k-images-idx3-ubyte.gz");
}

}  // namespace

TEST_CASE("init_mlp_weights follows nn.Linear's bound and is reproducible", "[mlp][init]") {
  // GIVEN layer sizes and a seed
  const std::vector<int64_t> sizes{784, 128, 10};
  auto [w, b] = veil::models::init_mlp_weights(sizes, 1);
  auto [w2, b2] = veil::models::init_mlp_weights(sizes, 1);
  auto [w3, b3] = veil::models::init_mlp_weights(sizes, 2);
  // THEN shapes are [in, out] / [out], values lie within 1/sqrt(in) and fill the interval
  REQUIRE(w.size() == 2);
  CHECK(w[0].shape() == veil::core::Shape{784, 128});
  CHECK(b[0].shape() == veil::core::Shape{128});
  CHECK(w[1].shape() == veil::core::Shape{128, 10});
  CHECK(b[1].shape() == veil::core::Shape{10});
  for (std::size_t l = 0; l < 2; ++l) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(sizes[l]));
    const auto v = w[l].to_vector<double>();
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    CHECK(*lo >= -bound);
    CHECK(*hi <= bound);
    CHECK(*lo < -0.95 * bound);
    CHECK(*hi > 0.95 * bound);
    double mean = 0.0;
    for (const double x : v) {
      mean += x;
    }
    mean /= static_cast<double>(v.size());
    CHECK(std::abs(mean) < 0.05 * bound);
    for (const double x : b[l].to_vector<double>()) {
      CHECK(std::abs(x) <= bound);
    }
    CHECK(w[l].to_vector<double>() == w2[l].to_vector<double>());
    CHECK(b[l].to_vector<double>() == b2[l].to_vector<double>());
    CHECK(w[l].to_vector<double>() != w3[l].to_vector<double>());
  }
  CHECK_THROWS_AS(veil::models::init_mlp_weights({784}, 1), veil::ValueError);
  CHECK_THROWS_AS(veil::models::init_mlp_weights({784, 0, 10}, 1), veil::ValueError);
}

TEST_CASE("PlaintextMlp forward matches a loop reference and clones its inputs", "[mlp]") {
  const std::vector<int64_t> sizes{6, 5, 4, 3};
  auto [w, b] = veil::models::init_mlp_weights(sizes, 9);
  const PlaintextMlp mlp(w, b);
  CHECK(mlp.sizes() == sizes);
  const Tensor x = random_tensor({7, 6}, 3, 1.0);
  const auto logits = mlp.forward(x);
  CHECK(logits.shape() == veil::core::Shape{7, 3});
  const auto want = reference_forward(w, b, x);
  const auto got = logits.to_vector<double>();
  for (std::size_t i = 0; i < want.size(); ++i) {
    CHECK(got[i] == Approx(want[i]).epsilon(1e-12).margin(1e-14));
  }
  // predict is the argmax of the logits
  const auto pred = mlp.predict(x).to_vector<int64_t>();
  for (int64_t i = 0; i < 7; ++i) {
    const auto row = got.begin() + i * 3;
    CHECK(pred[static_cast<std::size_t>(i)] == std::max_element(row, row + 3) - row);
  }
  // Mismatched shapes are ValueErrors.
  CHECK_THROWS_AS(mlp.forward(random_tensor({2, 5}, 1, 1.0)), veil::ValueError);
  CHECK_THROWS_AS(PlaintextMlp({w[0], w[2]}, {b[0], b[2]}), veil::ValueError);
  CHECK_THROWS_AS(PlaintextMlp({w[0]}, {b[1]}), veil::ValueError);
}

TEST_CASE("PlaintextMlp gradients match central finite differences", "[mlp][grad]") {
  // GIVEN a small 3-layer MLP with non-trivial weights and a batch
  const std::vector<int64_t> sizes{6, 5, 4, 3};
  auto [w0, b0] = veil::models::init_mlp_weights(sizes, 5);
  PlaintextMlp mlp(w0, b0);
  const Tensor x = random_tensor({8, 6}, 11, 1.0);
  const Tensor y = Tensor::from_vector<int64_t>({0, 1, 2, 2, 1, 0, 1, 2}, {8});
  // WHEN the analytic gradients are computed
  const auto g = mlp.gradients(x, y);
  CHECK(g.loss == Approx(mlp.loss(x, y)).epsilon(1e-14));
  // THEN each entry equals (L(p + h) - L(p - h)) / 2h
  const double h = 1e-6;
  double max_err = 0.0;
  auto check_param = [&](Tensor param, const Tensor& grad) {
    double* p = param.data<double>();
    const auto gv = grad.to_vector<double>();
    REQUIRE(static_cast<int64_t>(gv.size()) == param.numel());
    for (int64_t i = 0; i < param.numel(); ++i) {
      const double saved = p[i];
      p[i] = saved + h;
      const double up = mlp.loss(x, y);
      p[i] = saved - h;
      const double down = mlp.loss(x, y);
      p[i] = saved;
      const double fd = (up - down) / (2 * h);
      max_err = std::max(max_err, std::abs(fd - gv[static_cast<std::size_t>(i)]));
      CHECK(gv[static_cast<std::size_t>(i)] == Approx(fd).margin(1e-7));
    }
  };
  for (std::size_t l = 0; l < 3; ++l) {
    check_param(mlp.weights()[l], g.weights[l]);
    check_param(mlp.biases()[l], g.biases[l]);
  }
  CHECK(max_err < 1e-7);
  // The caller's initial tensors were not aliased.
  CHECK(mlp.weights()[0].to_vector<double>() == w0[0].to_vector<double>());
  CHECK_FALSE(mlp.weights()[0].shares_storage_with(w0[0]));
}

TEST_CASE("PlaintextMlp train_step applies PyTorch SGD with momentum and weight decay",
          "[mlp][sgd]") {
  const std::vector<int64_t> sizes{4, 3, 2};
  auto [w, b] = veil::models::init_mlp_weights(sizes, 21);
  PlaintextMlp mlp(w, b);
  const Tensor x1 = random_tensor({5, 4}, 1, 1.0);
  const Tensor y1 = Tensor::from_vector<int64_t>({0, 1, 1, 0, 1}, {5});
  const Tensor x2 = random_tensor({5, 4}, 2, 1.0);
  const Tensor y2 = Tensor::from_vector<int64_t>({1, 1, 0, 0, 0}, {5});
  const SgdConfig cfg{0.05, 0.9, 0.01};

  // Reference: torch.optim.SGD's update written out on flat vectors.
  const auto g1 = mlp.gradients(x1, y1);
  std::vector<std::vector<double>> p0;
  std::vector<std::vector<double>> grads1;
  for (std::size_t l = 0; l < 2; ++l) {
    p0.push_back(mlp.weights()[l].to_vector<double>());
    p0.push_back(mlp.biases()[l].to_vector<double>());
    grads1.push_back(g1.weights[l].to_vector<double>());
    grads1.push_back(g1.biases[l].to_vector<double>());
  }
  const double loss1 = mlp.train_step(x1, y1, cfg);
  CHECK(loss1 == Approx(g1.loss).epsilon(1e-14));
  std::vector<std::vector<double>> p1 = p0;
  std::vector<std::vector<double>> v1 = p0;
  for (std::size_t k = 0; k < p0.size(); ++k) {
    for (std::size_t i = 0; i < p0[k].size(); ++i) {
      v1[k][i] = grads1[k][i] + cfg.weight_decay * p0[k][i];
      p1[k][i] = p0[k][i] - cfg.lr * v1[k][i];
    }
  }
  for (std::size_t l = 0; l < 2; ++l) {
    const auto wl = mlp.weights()[l].to_vector<double>();
    const auto bl = mlp.biases()[l].to_vector<double>();
    for (std::size_t i = 0; i < wl.size(); ++i) {
      CHECK(wl[i] == Approx(p1[2 * l][i]).epsilon(1e-14));
    }
    for (std::size_t i = 0; i < bl.size(); ++i) {
      CHECK(bl[i] == Approx(p1[2 * l + 1][i]).epsilon(1e-14));
    }
  }

  // Second step: v = momentum * v + (g + wd * w).
  const auto g2 = mlp.gradients(x2, y2);
  mlp.train_step(x2, y2, cfg);
  for (std::size_t l = 0; l < 2; ++l) {
    const auto gw = g2.weights[l].to_vector<double>();
    const auto wl = mlp.weights()[l].to_vector<double>();
    for (std::size_t i = 0; i < wl.size(); ++i) {
      const double v2 = cfg.momentum * v1[2 * l][i] + gw[i] + cfg.weight_decay * p1[2 * l][i];
      CHECK(wl[i] == Approx(p1[2 * l][i] - cfg.lr * v2).epsilon(1e-14));
    }
  }
  CHECK_THROWS_AS(mlp.train_step(x1, Tensor::from_vector<int64_t>({0, 1, 2, 0, 1}, {5}), cfg),
                  veil::ValueError);
}

TEST_CASE("PlaintextMlp learns Fashion-MNIST: 1 epoch on 2000 rows beats 60% test accuracy",
          "[mlp][fashion]") {
  if (!have_fashion_mnist()) {
    std::cout << "SKIPPED: Fashion-MNIST not found in " << veil::models::fashion_mnist_dir()
              << " (apt-get install dataset-fashion-mnist)\n";
    return;
  }
  // GIVEN 2000 training rows and 1000 test rows, a {784, 128, 10} MLP and a shuffled order
  const auto train = veil::models::load_fashion_mnist(veil::models::Split::kTrain, 2000);
  const auto test = veil::models::load_fashion_mnist(veil::models::Split::kTest, 1000);
  PlaintextMlp mlp = PlaintextMlp::from_seed({784, 128, 10}, 1);
  const double before = mlp.accuracy(test);
  const veil::models::BatchOrder order(train.size(), 32, 1, true);
  const SgdConfig cfg{0.1, 0.9, 0.0};
  // WHEN trained for one epoch
  double first_loss = 0.0;
  double last_loss = 0.0;
  for (const auto& idx : order.epoch(0)) {
    const double l =
        mlp.train_step(train.images.index_select0(idx), train.labels.index_select0(idx), cfg);
    if (first_loss == 0.0) {
      first_loss = l;
    }
    last_loss = l;
  }
  // THEN the test accuracy exceeds 60% (chance is 10%)
  const double after = mlp.accuracy(test);
  INFO("accuracy before " << before << " after " << after << "; loss " << first_loss << " -> "
                          << last_loss);
  CHECK(before < 0.3);
  CHECK(after > 0.60);
  CHECK(last_loss < first_loss);
}
