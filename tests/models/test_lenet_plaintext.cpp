// The float64 LeNet twin and the float64 optimizers: forward against a naive loop reference,
// gradients against central finite differences, running statistics, SGD/Adam against
// independent formulas, bad inputs.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "crypto/prg.h"
#include "models/plaintext_lenet.h"
#include "models/plaintext_mlp.h"
#include "models/plaintext_optim.h"

using veil::core::DType;
using veil::core::Tensor;
using veil::models::LeNetConfig;
using veil::models::NamedTensors;
using veil::models::OptimizerConfig;
using veil::models::OptimizerKind;
using veil::models::PlaintextLeNet;
using veil::models::PlaintextOptimizer;

namespace {

Tensor normal_tensor(const veil::core::Shape& shape, uint64_t seed, double scale) {
  veil::crypto::Prg prg(veil::crypto::Prg::public_seed(seed, 11));
  Tensor t = Tensor::empty(shape, DType::kFloat64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    p[i] = scale * prg.normal();
  }
  return t;
}

Tensor labels_of(const std::vector<int64_t>& v) {
  return Tensor::from_vector<int64_t>(v, {static_cast<int64_t>(v.size())});
}

LeNetConfig small_config() {
  LeNetConfig c;
  c.conv1_channels = 2;
  c.conv2_channels = 3;
  c.fc1_features = 7;
  c.fc2_features = 5;
  c.classes = 4;
  return c;
}

// Non-trivial BatchNorm affine parameters, so their gradients are exercised.
NamedTensors perturbed_parameters(const LeNetConfig& c, uint64_t seed) {
  NamedTensors p = veil::models::init_lenet_parameters(c, seed);
  for (auto& [name, t] : p) {
    if (name.rfind("bn", 0) == 0) {
      const Tensor noise = normal_tensor(t.shape(), seed + name.size(), 0.3);
      double* tp = t.data<double>();
      for (int64_t i = 0; i < t.numel(); ++i) {
        tp[i] += noise.data<double>()[i];
      }
    }
  }
  return p;
}

const Tensor& find(const NamedTensors& ts, const std::string& name) {
  for (const auto& [n, t] : ts) {
    if (n == name) {
      return t;
    }
  }
  throw std::runtime_error("no tensor " + name);
}

// ---- naive loop reference of the LeNet forward pass
// -----------------------------------------------

using Vec = std::vector<double>;

double at(const Tensor& t, int64_t i) {
  return t.data<double>()[i];
}

// x [B, cin, h, w] (*) w [cout, cin, 5, 5], zero padding pad -> [B, cout, h', w'].
Vec ref_conv(const Vec& x,
             int64_t b,
             int64_t cin,
             int64_t h,
             int64_t w,
             const Tensor& k,
             int64_t pad,
             int64_t& oh) {
  const int64_t cout = k.size(0);
  oh = h + 2 * pad - 4;
  Vec y(static_cast<std::size_t>(b * cout * oh * oh), 0.0);
  for (int64_t n = 0; n < b; ++n) {
    for (int64_t o = 0; o < cout; ++o) {
      for (int64_t i = 0; i < oh; ++i) {
        for (int64_t j = 0; j < oh; ++j) {
          double s = 0;
          for (int64_t c = 0; c < cin; ++c) {
            for (int64_t u = 0; u < 5; ++u) {
              for (int64_t v = 0; v < 5; ++v) {
                const int64_t r = i + u - pad;
                const int64_t q = j + v - pad;
                if (r >= 0 && r < h && q >= 0 && q < w) {
                  s += x[static_cast<std::size_t>(((n * cin + c) * h + r) * w + q)] *
                       at(k, ((o * cin + c) * 5 + u) * 5 + v);
                }
              }
            }
          }
          y[static_cast<std::size_t>(((n * cout + o) * oh + i) * oh + j)] = s;
        }
      }
    }
  }
  return y;
}

// Batch statistics BatchNorm (or running statistics when given) then ReLU then 2x2 max pool.
Vec ref_bn_relu_pool(const Vec& x,
                     int64_t b,
                     int64_t c,
                     int64_t h,
                     const Tensor& gamma,
                     const Tensor& beta,
                     const Tensor* rmean,
                     const Tensor* rvar) {
  Vec y = x;
  const int64_t s = h * h;
  for (int64_t ch = 0; ch < c; ++ch) {
    double mean = 0;
    double var = 0;
    if (rmean == nullptr) {
      for (int64_t n = 0; n < b; ++n) {
        for (int64_t k = 0; k < s; ++k) {
          mean += x[static_cast<std::size_t>((n * c + ch) * s + k)];
        }
      }
      mean /= static_cast<double>(b * s);
      for (int64_t n = 0; n < b; ++n) {
        for (int64_t k = 0; k < s; ++k) {
          const double d = x[static_cast<std::size_t>((n * c + ch) * s + k)] - mean;
          var += d * d;
        }
      }
      var /= static_cast<double>(b * s);
    } else {
      mean = at(*rmean, ch);
      var = at(*rvar, ch);
    }
    for (int64_t n = 0; n < b; ++n) {
      for (int64_t k = 0; k < s; ++k) {
        auto& v = y[static_cast<std::size_t>((n * c + ch) * s + k)];
        v = std::max(0.0, at(gamma, ch) * (v - mean) / std::sqrt(var + 1e-5) + at(beta, ch));
      }
    }
  }
  const int64_t oh = h / 2;
  Vec p(static_cast<std::size_t>(b * c * oh * oh));
  for (int64_t m = 0; m < b * c; ++m) {
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < oh; ++j) {
        double best = -1e300;
        for (int64_t u = 0; u < 2; ++u) {
          for (int64_t v = 0; v < 2; ++v) {
            best = std::max(best, y[static_cast<std::size_t>((m * h + 2 * i + u) * h + 2 * j + v)]);
          }
        }
        p[static_cast<std::size_t>((m * oh + i) * oh + j)] = best;
      }
    }
  }
  return p;
}

Vec ref_linear(const Vec& x, int64_t b, const Tensor& w, const Tensor& bias, bool relu) {
  const int64_t in = w.size(0);
  const int64_t out = w.size(1);
  Vec y(static_cast<std::size_t>(b * out));
  for (int64_t n = 0; n < b; ++n) {
    for (int64_t o = 0; o < out; ++o) {
      double s = at(bias, o);
      for (int64_t k = 0; k < in; ++k) {
        s += x[static_cast<std::size_t>(n * in + k)] * at(w, k * out + o);
      }
      y[static_cast<std::size_t>(n * out + o)] = relu ? std::max(0.0, s) : s;
    }
  }
  return y;
}

Vec ref_forward(const NamedTensors& p,
                const NamedTensors* buffers,
                const Tensor& x,
                const LeNetConfig& c) {
  const int64_t b = x.size(0);
  int64_t h = 0;
  Vec v = ref_conv(x.to_vector<double>(), b, 1, 28, 28, find(p, "conv1.weight"), 2, h);
  v = ref_bn_relu_pool(v, b, c.conv1_channels, h, find(p, "bn1.weight"), find(p, "bn1.bias"),
                       buffers ? &find(*buffers, "bn1.running_mean") : nullptr,
                       buffers ? &find(*buffers, "bn1.running_var") : nullptr);
  v = ref_conv(v, b, c.conv1_channels, h / 2, h / 2, find(p, "conv2.weight"), 0, h);
  v = ref_bn_relu_pool(v, b, c.conv2_channels, h, find(p, "bn2.weight"), find(p, "bn2.bias"),
                       buffers ? &find(*buffers, "bn2.running_mean") : nullptr,
                       buffers ? &find(*buffers, "bn2.running_var") : nullptr);
  v = ref_linear(v, b, find(p, "fc1.weight"), find(p, "fc1.bias"), true);
  v = ref_linear(v, b, find(p, "fc2.weight"), find(p, "fc2.bias"), true);
  return ref_linear(v, b, find(p, "fc3.weight"), find(p, "fc3.bias"), false);
}

}  // namespace

TEST_CASE("init_lenet_parameters: names, shapes, PyTorch bounds, reproducible", "[lenet][init]") {
  // GIVEN the default LeNet
  const LeNetConfig c;
  const NamedTensors p = veil::models::init_lenet_parameters(c, 1);
  const NamedTensors p2 = veil::models::init_lenet_parameters(c, 1);
  const NamedTensors p3 = veil::models::init_lenet_parameters(c, 2);
  // THEN the names and shapes follow the architecture, values lie within 1/sqrt(fan_in)
  const std::vector<std::pair<std::string, veil::core::Shape>> want{{"conv1.weight", {6, 1, 5, 5}},
                                                                    {"bn1.weight", {6}},
                                                                    {"bn1.bias", {6}},
                                                                    {"conv2.weight", {16, 6, 5, 5}},
                                                                    {"bn2.weight", {16}},
                                                                    {"bn2.bias", {16}},
                                                                    {"fc1.weight", {400, 120}},
                                                                    {"fc1.bias", {120}},
                                                                    {"fc2.weight", {120, 84}},
                                                                    {"fc2.bias", {84}},
                                                                    {"fc3.weight", {84, 10}},
                                                                    {"fc3.bias", {10}}};
  REQUIRE(p.size() == want.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    CHECK(p[i].first == want[i].first);
    CHECK(p[i].second.shape() == want[i].second);
    CHECK(p[i].second.to_vector<double>() == p2[i].second.to_vector<double>());
  }
  const std::vector<std::pair<std::string, double>> fan_in{
      {"conv1.weight", 25}, {"conv2.weight", 150}, {"fc1.weight", 400}, {"fc1.bias", 400},
      {"fc2.weight", 120},  {"fc2.bias", 120},     {"fc3.weight", 84},  {"fc3.bias", 84}};
  for (const auto& [name, fan] : fan_in) {
    const double bound = 1.0 / std::sqrt(fan);
    const auto v = find(p, name).to_vector<double>();
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    CHECK(*lo >= -bound);
    CHECK(*hi <= bound);
    if (v.size() > 100) {
      CHECK(*lo < -0.9 * bound);
      CHECK(*hi > 0.9 * bound);
    }
    CHECK(v != find(p3, name).to_vector<double>());
  }
  for (const double v : find(p, "bn2.weight").to_vector<double>()) {
    CHECK(v == 1.0);
  }
  for (const double v : find(p, "bn2.bias").to_vector<double>()) {
    CHECK(v == 0.0);
  }
  LeNetConfig bad;
  bad.conv2_channels = 0;
  CHECK_THROWS_WITH(veil::models::init_lenet_parameters(bad, 1),
                    Catch::Contains("[init_lenet_parameters]"));
}

TEST_CASE("PlaintextLeNet forward matches a naive loop reference in both modes", "[lenet]") {
  // GIVEN a small LeNet with perturbed BatchNorm parameters and a batch of 3 images
  const LeNetConfig c = small_config();
  const NamedTensors params = perturbed_parameters(c, 5);
  PlaintextLeNet net(c, params);
  const Tensor x = normal_tensor({3, 784}, 9, 1.0);
  // WHEN it runs in training mode (batch statistics)
  const auto got = net.forward(x).to_vector<double>();
  const auto want = ref_forward(params, nullptr, x, c);
  // THEN it equals the reference to float64 rounding
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i] == Approx(want[i]).margin(1e-10));
  }
  // and the [B, 1, 28, 28] layout gives the same logits
  CHECK(net.forward(x.reshape({3, 1, 28, 28})).to_vector<double>() == got);
  // WHEN it runs in eval mode (running statistics: initially mean 0, var 1)
  net.eval();
  const auto got_eval = net.forward(x).to_vector<double>();
  const auto want_eval = ref_forward(params, &net.buffers(), x, c);
  for (std::size_t i = 0; i < got_eval.size(); ++i) {
    CHECK(got_eval[i] == Approx(want_eval[i]).margin(1e-10));
  }
  // predict is the row argmax
  const auto pred = net.predict(x).to_vector<int64_t>();
  for (std::size_t r = 0; r < 3; ++r) {
    const auto row = got_eval.begin() + static_cast<std::ptrdiff_t>(r * 4);
    CHECK(pred[r] == std::max_element(row, row + 4) - row);
  }
}

TEST_CASE("PlaintextLeNet gradients match central finite differences", "[lenet][grad]") {
  const LeNetConfig c = small_config();
  const Tensor x = normal_tensor({3, 784}, 21, 1.0);
  const Tensor y = labels_of({0, 3, 1});
  for (const bool training : {true, false}) {
    // GIVEN a small LeNet in training (batch statistics) or eval mode
    PlaintextLeNet net(c, perturbed_parameters(c, 7));
    net.train(training);
    // WHEN the analytic gradients are computed
    const auto g = net.gradients(x, y);
    CHECK(g.loss == Approx(net.loss(x, y)).epsilon(1e-12));
    REQUIRE(g.parameters.size() == net.parameters().size());
    // THEN a few entries of every parameter agree with (L(w + h) - L(w - h)) / 2h
    const double h = 1e-6;
    for (std::size_t pi = 0; pi < net.parameters().size(); ++pi) {
      Tensor w = net.parameters()[pi].second;  // shares the model's storage
      const auto& gw = g.parameters[pi];
      CHECK(gw.first == net.parameters()[pi].first);
      const int64_t n = w.numel();
      for (const int64_t k : {int64_t{0}, n / 2, n - 1}) {
        double* wp = w.data<double>();
        const double saved = wp[k];
        wp[k] = saved + h;
        const double up = net.loss(x, y);
        wp[k] = saved - h;
        const double down = net.loss(x, y);
        wp[k] = saved;
        const double fd = (up - down) / (2 * h);
        INFO(gw.first << "[" << k << "] training=" << training);
        CHECK(gw.second.data<double>()[k] == Approx(fd).epsilon(1e-4).margin(1e-7));
      }
    }
  }
}

TEST_CASE("PlaintextLeNet train_step updates running statistics like PyTorch", "[lenet]") {
  // GIVEN a small LeNet and one batch
  const LeNetConfig c = small_config();
  const NamedTensors params = perturbed_parameters(c, 3);
  PlaintextLeNet net(c, params);
  const Tensor x = normal_tensor({4, 784}, 4, 1.0);
  const Tensor y = labels_of({0, 1, 2, 3});
  // WHEN one SGD step is taken
  OptimizerConfig oc;
  oc.lr = 0.05;
  PlaintextOptimizer opt(oc);
  const auto g = net.gradients(x, y);
  const double loss = net.train_step(x, y, opt);
  // THEN the loss is the pre-step loss, parameters moved by -lr * grad, and bn1's running
  // statistics are 0.9 * init + 0.1 * (batch mean, unbiased batch variance) of conv1's output
  CHECK(loss == Approx(g.loss).epsilon(1e-12));
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto w0 = params[i].second.to_vector<double>();
    const auto w1 = net.parameters()[i].second.to_vector<double>();
    const auto gv = g.parameters[i].second.to_vector<double>();
    for (std::size_t k = 0; k < w0.size(); ++k) {
      CHECK(w1[k] == Approx(w0[k] - 0.05 * gv[k]).margin(1e-12));
    }
  }
  int64_t h = 0;
  const Vec z1 = ref_conv(x.to_vector<double>(), 4, 1, 28, 28, find(params, "conv1.weight"), 2, h);
  const auto rm = find(net.buffers(), "bn1.running_mean").to_vector<double>();
  const auto rv = find(net.buffers(), "bn1.running_var").to_vector<double>();
  const int64_t s = h * h;
  for (int64_t ch = 0; ch < c.conv1_channels; ++ch) {
    double mean = 0;
    double sq = 0;
    for (int64_t n = 0; n < 4; ++n) {
      for (int64_t k = 0; k < s; ++k) {
        mean += z1[static_cast<std::size_t>((n * c.conv1_channels + ch) * s + k)];
      }
    }
    const auto cnt = static_cast<double>(4 * s);
    mean /= cnt;
    for (int64_t n = 0; n < 4; ++n) {
      for (int64_t k = 0; k < s; ++k) {
        const double d = z1[static_cast<std::size_t>((n * c.conv1_channels + ch) * s + k)] - mean;
        sq += d * d;
      }
    }
    CHECK(rm[static_cast<std::size_t>(ch)] == Approx(0.1 * mean).margin(1e-12));
    CHECK(rv[static_cast<std::size_t>(ch)] == Approx(0.9 + 0.1 * sq / (cnt - 1)).epsilon(1e-12));
  }
  // and eval-mode train_step is refused
  net.eval();
  CHECK_THROWS_WITH(net.train_step(x, y, opt), Catch::Contains("[PlaintextLeNet::train_step]"));
}

TEST_CASE("PlaintextLeNet refuses bad inputs", "[lenet]") {
  const LeNetConfig c = small_config();
  PlaintextLeNet net = PlaintextLeNet::from_seed(c, 1);
  const Tensor x = normal_tensor({2, 784}, 1, 1.0);
  CHECK_THROWS_WITH(net.forward(normal_tensor({2, 783}, 1, 1.0)),
                    Catch::Contains("[PlaintextLeNet::forward]"));
  CHECK_THROWS_WITH(net.forward(normal_tensor({1, 784}, 1, 1.0)),
                    Catch::Contains("[PlaintextLeNet::forward] expected at least 2 rows"));
  CHECK_THROWS_WITH(net.gradients(x, labels_of({0, 4})),
                    Catch::Contains("[PlaintextLeNet::gradients] label at row 1"));
  NamedTensors p = veil::models::init_lenet_parameters(c, 1);
  p[3].second = Tensor::zeros({1}, DType::kFloat64);
  CHECK_THROWS_WITH(PlaintextLeNet(c, p), Catch::Contains("'conv2.weight'"));
  // one row is fine in eval mode
  net.eval();
  CHECK(net.forward(normal_tensor({1, 784}, 1, 1.0)).size(0) == 1);
}

TEST_CASE("PlaintextOptimizer: SGD equals PlaintextMlp's SGD, Adam follows torch's formula",
          "[lenet][optim]") {
  SECTION("SGD with momentum and weight decay, against PlaintextMlp::train_step") {
    // GIVEN two copies of an MLP and one batch
    const std::vector<int64_t> sizes{6, 5, 3};
    auto a = veil::models::PlaintextMlp::from_seed(sizes, 3);
    auto b = veil::models::PlaintextMlp::from_seed(sizes, 3);
    const Tensor x = normal_tensor({4, 6}, 2, 1.0);
    const Tensor y = labels_of({0, 1, 2, 1});
    veil::models::SgdConfig sc;
    sc.lr = 0.1;
    sc.momentum = 0.9;
    sc.weight_decay = 0.01;
    OptimizerConfig oc;
    oc.lr = sc.lr;
    oc.momentum = sc.momentum;
    oc.weight_decay = sc.weight_decay;
    PlaintextOptimizer opt(oc);
    // WHEN both take three steps, one with its own SGD, one with PlaintextOptimizer
    for (int s = 0; s < 3; ++s) {
      a.train_step(x, y, sc);
      const auto g = b.gradients(x, y);
      std::vector<Tensor> params = b.weights();
      params.insert(params.end(), b.biases().begin(), b.biases().end());
      std::vector<Tensor> grads = g.weights;
      grads.insert(grads.end(), g.biases.begin(), g.biases.end());
      opt.step(params, grads);
    }
    // THEN the weights agree
    CHECK(opt.steps() == 3);
    for (std::size_t l = 0; l < 2; ++l) {
      const auto wa = a.weights()[l].to_vector<double>();
      const auto wb = b.weights()[l].to_vector<double>();
      for (std::size_t k = 0; k < wa.size(); ++k) {
        CHECK(wb[k] == Approx(wa[k]).margin(1e-14));
      }
    }
  }
  SECTION("Adam, against a scalar recurrence; the first step moves by lr * sign(g)") {
    // GIVEN parameters and gradients of varying scale
    OptimizerConfig oc;
    oc.kind = OptimizerKind::kAdam;
    oc.lr = 0.01;
    oc.beta1 = 0.8;
    oc.beta2 = 0.95;
    oc.eps = 1e-6;
    oc.weight_decay = 0.1;
    PlaintextOptimizer opt(oc);
    Tensor w = Tensor::from_vector<double>({0.5, -1.0, 2.0}, {3});
    const std::vector<double> w0 = w.to_vector<double>();
    std::vector<double> ref = w0;
    std::vector<double> m(3, 0.0);
    std::vector<double> v(3, 0.0);
    for (int t = 1; t <= 4; ++t) {
      const std::vector<double> gv{0.3 * t, -1e-3, 5.0 / t};
      opt.step({w}, {Tensor::from_vector<double>(gv, {3})});
      for (std::size_t k = 0; k < 3; ++k) {
        const double g = gv[k] + 0.1 * ref[k];
        m[k] = 0.8 * m[k] + 0.2 * g;
        v[k] = 0.95 * v[k] + 0.05 * g * g;
        const double mh = m[k] / (1 - std::pow(0.8, t));
        const double vh = v[k] / (1 - std::pow(0.95, t));
        ref[k] -= 0.01 * mh / (std::sqrt(vh) + 1e-6);
      }
      // THEN every step matches
      const auto got = w.to_vector<double>();
      for (std::size_t k = 0; k < 3; ++k) {
        CHECK(got[k] == Approx(ref[k]).margin(1e-14));
      }
      if (t == 1) {
        CHECK(got[0] == Approx(w0[0] - 0.01).margin(1e-6));
        CHECK(got[2] == Approx(w0[2] - 0.01).margin(1e-6));
      }
    }
  }
  SECTION("bad configurations and mismatched lists are refused") {
    OptimizerConfig oc;
    oc.lr = 0;
    CHECK_THROWS_WITH(PlaintextOptimizer(oc), Catch::Contains("[PlaintextOptimizer]"));
    oc.lr = 0.1;
    oc.beta2 = 1.0;
    CHECK_THROWS_WITH(PlaintextOptimizer(oc), Catch::Contains("betas"));
    PlaintextOptimizer opt(OptimizerConfig{});
    Tensor w = Tensor::zeros({2}, DType::kFloat64);
    CHECK_THROWS_WITH(opt.step({w}, {}), Catch::Contains("[PlaintextOptimizer::step]"));
    CHECK_THROWS_WITH(opt.step({w}, {Tensor::zeros({3}, DType::kFloat64)}),
                      Catch::Contains("[PlaintextOptimizer::step]"));
    CHECK(veil::models::parse_optimizer("adam") == OptimizerKind::kAdam);
    CHECK(veil::models::optimizer_name(OptimizerKind::kSgd) == "sgd");
    CHECK_THROWS_WITH(veil::models::parse_optimizer("rmsprop"),
                      Catch::Contains("[optimizer] expected 'sgd' or 'adam'"));
  }
}
