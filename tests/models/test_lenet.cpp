// The private LeNet (models/lenet.h) against its float64 twin (models/plaintext_lenet.h): same
// parameter names, forward of one batch, gradients and BatchNorm running statistics after one
// step, in public mode and with 2 and 3 parties holding secret data and weights; bad inputs;
// a short private training run against the twin.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "autograd/autograd.h"
#include "core/ops.h"
#include "crypto/prg.h"
#include "models/data.h"
#include "models/lenet.h"
#include "models/plaintext_lenet.h"
#include "models/private_training.h"
#include "tests/harness/simulate.h"
#include "tests/harness/tools.h"

namespace models = veil::models;
namespace crypto = veil::crypto;
namespace vt = veil::testing;
using models::LeNetConfig;
using models::NamedTensors;
using veil::MpcTensor;
using veil::core::DType;
using veil::core::Tensor;

namespace {

Tensor normal_tensor(const veil::core::Shape& shape, uint64_t seed, double scale) {
  crypto::Prg prg(crypto::Prg::public_seed(seed, 13));
  Tensor t = Tensor::empty(shape, DType::kFloat64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    p[i] = scale * prg.normal();
  }
  return t;
}

LeNetConfig small_config() {
  LeNetConfig c;
  c.conv1_channels = 2;
  c.conv2_channels = 3;
  c.fc1_features = 8;
  c.fc2_features = 6;
  c.classes = 4;
  return c;
}

// init_lenet_parameters with BatchNorm affine parameters moved away from (1, 0).
NamedTensors test_parameters(const LeNetConfig& c, uint64_t seed) {
  NamedTensors p = models::init_lenet_parameters(c, seed);
  for (auto& [name, t] : p) {
    if (name.rfind("bn", 0) == 0) {
      t = veil::core::add(t, normal_tensor(t.shape(), seed + name.size(), 0.2));
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
  FAIL("no tensor named " << name);
  throw std::logic_error("unreachable");
}

// What one party reveals after one training forward/backward of the private LeNet.
struct StepResult {
  Tensor logits;
  double loss = 0;
  NamedTensors grads;    // revealed gradients, by parameter name
  NamedTensors buffers;  // revealed running statistics after the forward
  std::vector<std::string> names;
};

// The loss is multiplied by kLossScale before backward. Per-element gradients of a batch mean are
// small (|dL/dy| ~ 1e-4 inside the convolution blocks, a few ulps of 2^-16), so their rounding,
// summed over the n = B H W elements of a channel, would dominate the comparison; scaling the loss
// (the mixed-precision "loss scaling" trick) makes the test check the backward wiring with
// tolerances that can fail, while the unscaled precision is what the training runs measure.
constexpr double kLossScale = 64.0;

// One forward + backward of the private LeNet on x [B, 784] with one-hot labels, parameters
// `params`; `secret` encrypts the model and shares x and the labels from party 0.
StepResult private_step(crypto::Party& p,
                        const LeNetConfig& c,
                        const NamedTensors& params,
                        const Tensor& x,
                        const Tensor& labels,
                        bool secret) {
  models::LeNet net(c, p);
  net->load_parameters(params);
  const Tensor onehot = veil::core::one_hot(labels, c.classes);
  MpcTensor xs;
  MpcTensor ys;
  if (secret) {
    net->encrypt(0);
    xs = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
    ys = MpcTensor::share(p.rank() == 0 ? onehot : Tensor(), 0, onehot.shape(), p);
  } else {
    xs = MpcTensor::from_public(x, p);
    ys = MpcTensor::from_public(onehot, p);
  }
  StepResult r;
  const MpcTensor logits = net(xs);
  const MpcTensor loss = veil::cross_entropy(logits, ys);
  veil::mul(loss, kLossScale).backward();
  r.logits = logits.reveal();
  r.loss = loss.reveal().item<double>();
  for (const auto& [name, t] : net->named_parameters()) {
    r.names.push_back(name);
    r.grads.emplace_back(name, t.grad().reveal());
  }
  for (const auto& [name, t] : net->named_buffers()) {
    if (name.find("running_") != std::string::npos) {
      r.buffers.emplace_back(name, t.reveal());
    }
  }
  return r;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (const double v : t.to_vector<double>()) {
    m = std::max(m, std::abs(v));
  }
  return m;
}

bool have_data() {
  return veil::testing::have_fashion_mnist();
}

std::string veil_train() {
  return veil::testing::tool_path("veil-train");
}

int run_veil_train(const std::string& args) {
  return veil::testing::run_tool("veil-train", args);
}

}  // namespace

TEST_CASE("LeNet has the twin's parameter names and shapes and refuses bad inputs", "[lenet]") {
  const LeNetConfig c;
  auto out = crypto::launch<int>(vt::test_options(2), [&](crypto::Party& p) {
    // GIVEN the default private LeNet
    models::LeNet net(c, p);
    const NamedTensors init = models::init_lenet_parameters(c, 3);
    // THEN its parameters are named, ordered and shaped like init_lenet_parameters
    const auto named = net->named_parameters();
    REQUIRE(named.size() == init.size());
    for (std::size_t i = 0; i < named.size(); ++i) {
      CHECK(named[i].first == init[i].first);
      CHECK(named[i].second.shape() == init[i].second.shape());
    }
    // and load_parameters sets the values exactly (up to the fixed-point encoding)
    net->load_parameters(init);
    CHECK(vt::max_abs_diff(net->fc1->weight.reveal(), find(init, "fc1.weight")) <= vt::ulp());
    // bad inputs
    CHECK_THROWS_WITH(net(MpcTensor::from_public(Tensor::zeros({2, 783}, DType::kFloat64), p)),
                      Catch::Contains("[LeNet] expected input [B, 784] or [B, 1, 28, 28]"));
    NamedTensors missing(init.begin(), init.end() - 1);
    CHECK_THROWS_WITH(net->load_parameters(missing),
                      Catch::Contains("[LeNet::load_parameters] missing parameter 'fc3.bias'"));
    NamedTensors wrong = init;
    wrong[0].second = Tensor::zeros({6, 1, 3, 3}, DType::kFloat64);
    CHECK_THROWS_WITH(net->load_parameters(wrong),
                      Catch::Contains("[LeNet::load_parameters] 'conv1.weight'"));
    net->encrypt(0);
    CHECK_THROWS_WITH(net->load_parameters(init), Catch::Contains("already secret"));
    LeNetConfig bad;
    bad.classes = 1;
    CHECK_THROWS_WITH(models::LeNet(bad, p), Catch::Contains("[LeNet]"));
    return 0;
  });
  CHECK(out.size() == 2);
}

TEST_CASE("LeNet forward, gradients and running statistics track the float64 twin",
          "[lenet][private]") {
  // GIVEN a small LeNet, a batch of 4 standardised-like images and labels
  const LeNetConfig c = small_config();
  const NamedTensors params = test_parameters(c, 5);
  const Tensor x = normal_tensor({4, 784}, 17, 1.0);
  const Tensor labels = Tensor::from_vector<int64_t>({0, 3, 1, 2}, {4});
  // AND the twin's logits, gradients (training mode) and running statistics after one step
  models::PlaintextLeNet twin(c, params);
  const Tensor want_logits = twin.forward(x);
  const models::LeNetGradients want = twin.gradients(x, labels);
  models::OptimizerConfig oc;
  oc.lr = 1e-9;  // the step itself is irrelevant here; it updates the running statistics
  models::PlaintextOptimizer opt(oc);
  twin.train_step(x, labels, opt);

  struct Setting {
    int parties;
    bool secret;
  };
  for (const Setting s : {Setting{2, false}, Setting{2, true}, Setting{3, true}}) {
    INFO(s.parties << " parties, " << (s.secret ? "secret" : "public"));
    // WHEN the private LeNet runs one training forward and backward
    auto res = crypto::launch<StepResult>(vt::test_options(s.parties), [&](crypto::Party& p) {
      return private_step(p, c, params, x, labels, s.secret);
    });
    const StepResult& r = res[0];
    // THEN the logits agree with the twin's within the fixed-point error. Sources: encoding
    // (2^-17 per input and weight), one truncation per product (a few ulps per layer), BatchNorm's
    // inv_sqrt (relative error about 3e-4 near variance 1, on |x_hat| <= ~4) and the division by
    // the public n; the normalisations keep every layer's scale O(1), so the logits (|z| ~ 1) are
    // off by at most about 3e-4 * 4 = 1.2e-3 (observed: 2e-5 .. 4e-5).
    const double logit_err = vt::max_abs_diff(r.logits, want_logits);
    INFO("logit error " << logit_err);
    CHECK(logit_err <= 1.5e-3);
    CHECK(r.loss == Approx(want.loss).margin(1e-2));
    // and every (loss-scaled) gradient within 3% of that parameter's largest twin gradient
    // plus 64 ulps: the softmax approximation (1e-3 absolute per probability, times
    // kLossScale / B) and the rounding of the per-element gradients summed over a channel
    REQUIRE(r.names.size() == want.parameters.size());
    for (std::size_t i = 0; i < want.parameters.size(); ++i) {
      const auto& [name, g] = want.parameters[i];
      CHECK(r.names[i] == name);
      const Tensor scaled = veil::core::mul_scalar(g, kLossScale);
      const double err = vt::max_abs_diff(find(r.grads, name), scaled);
      INFO(name << ": gradient error " << err << ", scale " << max_abs(scaled));
      CHECK(err <= 0.03 * max_abs(scaled) + 64 * vt::ulp());
    }
    // and the running statistics follow PyTorch's update (mean; unbiased variance)
    for (const auto& [name, t] : twin.buffers()) {
      const double err = vt::max_abs_diff(find(r.buffers, name), t);
      INFO(name << ": error " << err);
      CHECK(err <= 1e-3);
    }
    // and every party revealed the same logits
    for (std::size_t k = 1; k < res.size(); ++k) {
      CHECK(res[k].logits.to_vector<double>() == r.logits.to_vector<double>());
    }
  }
}

TEST_CASE("LeNet eval mode uses the running statistics like the twin", "[lenet][private]") {
  // GIVEN a small LeNet whose running statistics moved by one training step
  const LeNetConfig c = small_config();
  const NamedTensors params = test_parameters(c, 8);
  const Tensor x = normal_tensor({4, 784}, 23, 1.0);
  const Tensor labels = Tensor::from_vector<int64_t>({1, 0, 3, 2}, {4});
  models::PlaintextLeNet twin(c, params);
  models::OptimizerConfig oc;
  oc.lr = 1e-9;
  models::PlaintextOptimizer opt(oc);
  twin.train_step(x, labels, opt);
  twin.eval();
  const Tensor x2 = normal_tensor({3, 784}, 29, 1.0);
  const Tensor want = twin.forward(x2);
  // WHEN the private model takes the same training forward, then evaluates 3 other images
  auto res = crypto::launch<Tensor>(vt::test_options(2), [&](crypto::Party& p) {
    models::LeNet net(c, p);
    net->load_parameters(params);
    net->encrypt(0);
    const auto xs = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
    {
      veil::NoGradGuard no_grad;
      net(xs);
    }
    net->eval();
    const auto x2s = MpcTensor::share(p.rank() == 1 ? x2 : Tensor(), 1, x2.shape(), p);
    return net(x2s).reveal();
  });
  // THEN the logits agree within the fixed-point error (as in training mode)
  const double err = vt::max_abs_diff(res[0], want);
  INFO("eval logit error " << err);
  CHECK(err <= 1.5e-3);
}

TEST_CASE("private LeNet training tracks the twin on Fashion-MNIST", "[lenet][training][slow]") {
  if (!have_data()) {
    std::puts("SKIPPED: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  // GIVEN 2000 training rows split over 2 parties, 500 test rows, a small LeNet
  const auto train = models::load_fashion_mnist(models::Split::kTrain, 2000);
  const auto test = models::load_fashion_mnist(models::Split::kTest, 500);
  models::TrainOptions opts;
  opts.model = models::ModelKind::kLeNet;
  opts.lenet.conv1_channels = 4;
  opts.lenet.conv2_channels = 8;
  opts.lenet.fc1_features = 32;
  opts.lenet.fc2_features = 16;
  opts.batch_size = 50;
  opts.eval_batch = 250;
  opts.progress_every = 1;  // reveal every batch loss, to compare the trajectories
  for (const auto kind : {models::OptimizerKind::kSgd, models::OptimizerKind::kAdam}) {
    opts.optimizer = kind;
    opts.lr = kind == models::OptimizerKind::kSgd ? 0.05 : 3e-3;
    opts.momentum = kind == models::OptimizerKind::kSgd ? 0.9 : 0.0;
    INFO(models::optimizer_name(kind));
    // WHEN the parties train one epoch privately and evaluate by encrypted inference
    auto reports = crypto::launch<models::PartyReport>(vt::test_options(2), [&](crypto::Party& p) {
      return models::train_private(p, train, test, opts);
    });
    const double acc = models::accuracy(reports[0].predictions, test.labels);
    const auto twin = models::train_plaintext_twin(train, test, opts);
    // THEN it learned (10 classes: chance is 10%, initial loss ln 10 = 2.30), its batch losses
    // follow the twin's (mean of the last 10 of 40 batches; the secret softmax and log are
    // accurate to ~1e-3), and its test accuracy is near the twin's. After only 40 steps both
    // sit on the steep part of the learning curve, where fixed-point noise moves accuracy by a
    // few points (and 500 test rows alone have a standard error of ~2 points), so the accuracy
    // bound is loose; the full-data comparison is the veil-train run in docs/getting-started.md.
    // The divergence guard may have restored the state after a 2-party truncation failure
    // (probability ~1/15 per run of this test) and re-run the previous step: the losses then
    // hold that step's loss once more per retry, and the last 10 entries are still the last
    // steps' losses.
    const auto& pl = reports[0].losses;
    const auto& tl = twin.losses;
    INFO("guard retries " << reports[0].guard_retries);
    REQUIRE(pl.size() >= tl.size());
    REQUIRE(pl.size() <= tl.size() + static_cast<std::size_t>(reports[0].guard_retries));
    double pm = 0;
    double tm = 0;
    for (std::size_t i = 0; i < 10; ++i) {
      pm += pl[pl.size() - 1 - i] / 10;
      tm += tl[tl.size() - 1 - i] / 10;
    }
    INFO("private " << acc << " (late loss " << pm << "), twin " << twin.test_accuracy
                    << " (late loss " << tm << ")");
    CHECK(pm <= 0.8 * std::log(10.0));
    CHECK(std::abs(pm - tm) <= 0.1);
    // Well above chance (10%); after 40 steps the twin itself lands near 50%, so a fixed 50%
    // bound failed about one run in four. The comparison with the twin is the real check.
    CHECK(acc >= 0.35);
    CHECK(std::abs(acc - twin.test_accuracy) <= 0.1);
    CHECK(reports[1].predictions == reports[0].predictions);
  }
}

TEST_CASE("the divergence guard restores and re-runs steps after a corrupted update",
          "[lenet][guard][slow]") {
  if (!have_data()) {
    std::puts("SKIPPED: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  // GIVEN a tiny LeNet, 400 training rows in 10 batches, and a hook that adds 1e4 (as a 2-party
  // truncation failure would add ~4e9) to the class-0 entry of fc3.bias once, after step `bad`
  const auto train = models::load_fashion_mnist(models::Split::kTrain, 400);
  const auto test = models::load_fashion_mnist(models::Split::kTest, 200);
  models::TrainOptions opts;
  opts.model = models::ModelKind::kLeNet;
  opts.lenet.conv1_channels = 2;
  opts.lenet.conv2_channels = 4;
  opts.lenet.fc1_features = 16;
  opts.lenet.fc2_features = 8;
  opts.batch_size = 40;
  opts.eval_batch = 200;
  opts.progress_every = 0;
  const auto twin = models::train_plaintext_twin(train, test, opts);
  for (const int64_t bad : {int64_t{3}, int64_t{9}}) {  // a middle step; the last step
    INFO("corrupted after step " << bad);
    std::vector<int> fired(2, 0);
    opts.after_step = [&](int64_t step, const std::vector<MpcTensor>& params) {
      int& f = fired[static_cast<std::size_t>(params[0].party().rank())];
      if (step == bad && f++ == 0) {
        MpcTensor bias = params.back();  // fc3.bias [classes]
        Tensor spike = Tensor::zeros(bias.shape(), DType::kFloat64);
        spike.data<double>()[0] = 1e4;
        bias.assign_(veil::add(bias, MpcTensor::from_public(spike, bias.party())));
      }
    };
    // WHEN the parties train with the guard (on by default for the LeNet)
    auto reports = crypto::launch<models::PartyReport>(vt::test_options(2), [&](crypto::Party& p) {
      return models::train_private(p, train, test, opts);
    });
    // THEN every party saw one failed check and recovered: the spike is gone (with it every
    // prediction would be class 0) and the run ends close to the twin
    const double acc = models::accuracy(reports[0].predictions, test.labels);
    const auto zeros = std::count(reports[0].predictions.begin(), reports[0].predictions.end(), 0);
    CHECK(zeros < 100);
    INFO("private " << acc << ", twin " << twin.test_accuracy);
    CHECK(reports[0].guard_retries == 1);
    CHECK(reports[1].guard_retries == 1);
    CHECK(std::abs(acc - twin.test_accuracy) <= 0.1);
    CHECK(reports[1].predictions == reports[0].predictions);
  }
  // AND a run that diverges for real (a huge learning rate) stops with an error
  opts.after_step = nullptr;
  opts.lr = 1e5;
  auto errors = crypto::launch<std::string>(vt::test_options(2), [&](crypto::Party& p) {
    std::string e;
    try {
      models::train_private(p, train, test, opts);
    } catch (const veil::ValueError& ex) {
      e = ex.what();
    }
    return e;
  });
  CHECK_THAT(errors[0], Catch::Contains("[train_private] the batch loss left (-1, 100)"));
  CHECK(errors[1] == errors[0]);
}

TEST_CASE("train_private refuses LeNet options it cannot run", "[lenet]") {
  models::Dataset d;
  d.images = Tensor::zeros({5, 784}, DType::kFloat64);
  d.labels = Tensor::zeros({5}, DType::kInt64);
  models::TrainOptions opts;
  opts.model = models::ModelKind::kLeNet;
  opts.batch_size = 4;  // 5 rows: the last batch has one row
  auto errors = crypto::launch<std::string>(vt::test_options(2), [&](crypto::Party& p) {
    std::string e;
    try {
      models::train_private(p, d, d, opts);
    } catch (const veil::ValueError& ex) {
      e = ex.what();
    }
    return e;
  });
  CHECK_THAT(errors[0], Catch::Contains("[train_private] every LeNet batch needs at least 2 rows"));
  opts.batch_size = 5;
  opts.loss_scale_bits = 17;
  errors = crypto::launch<std::string>(vt::test_options(2), [&](crypto::Party& p) {
    std::string e;
    try {
      models::train_private(p, d, d, opts);
    } catch (const veil::ValueError& ex) {
      e = ex.what();
    }
    return e;
  });
  CHECK_THAT(errors[0], Catch::Contains("[train_private] expected loss_scale_bits in [0, 16]"));
  CHECK(models::effective_loss_scale_bits(models::TrainOptions{}) == 0);
  opts.loss_scale_bits.reset();
  CHECK(models::effective_loss_scale_bits(opts) == 10);
  models::Dataset small = d;
  small.images = Tensor::zeros({5, 100}, DType::kFloat64);
  opts.batch_size = 5;
  CHECK_THROWS_WITH(models::train_plaintext_twin(small, small, opts),
                    Catch::Contains("[PlaintextLeNet::forward]"));
  CHECK(models::parse_model("lenet") == models::ModelKind::kLeNet);
  CHECK_THROWS_WITH(models::parse_model("resnet"), Catch::Contains("[model] expected"));
}

TEST_CASE("veil-train --model lenet --optimizer adam writes the new metrics",
          "[lenet][tools][slow]") {
  if (!std::filesystem::exists(veil_train()) || !have_data()) {
    std::puts("SKIPPED: veil-train or the Fashion-MNIST dataset is not available");
    return;
  }
  // GIVEN bad LeNet/optimizer arguments THEN veil-train refuses them
  CHECK(run_veil_train("--model resnet --samples 10") != 0);
  CHECK(run_veil_train("--optimizer rmsprop --samples 10") != 0);
  CHECK(run_veil_train("--model lenet --lenet-widths 6,16 --samples 10") != 0);
  CHECK(run_veil_train("--model lenet --lenet-widths 6,0,120,84 --samples 10") != 0);
  CHECK(run_veil_train("--model lenet --guard --no-guard --samples 10") != 0);
  // WHEN a tiny LeNet trains with Adam on 200 rows
  const auto path = std::filesystem::temp_directory_path() / "veil_test_lenet_metrics.json";
  std::filesystem::remove(path);
  REQUIRE(run_veil_train("--model lenet --optimizer adam --lenet-widths 2,4,16,8 --samples 200 "
                         "--test-samples 100 --batch-size 50 --metrics-json " +
                         path.string()) == 0);
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in);
  // THEN the metrics name the model and optimizer and the LeNet defaults
  CHECK(j["model"] == "lenet");
  CHECK(j["optimizer"] == "adam");
  CHECK(j["lr"].get<double>() == Approx(1e-3));
  CHECK(j["loss_scale_bits"] == 10);
  CHECK(j["adam_grad_scale_bits"] == 7);
  CHECK(j["guard"] == true);
  CHECK(j["guard_retries"].get<int64_t>() >= 0);
  CHECK(j["lenet_widths"] == nlohmann::json({2, 4, 16, 8}));
  CHECK(j["samples"] == 200);
  CHECK(j["test_accuracy"].get<double>() >= 0.0);
  CHECK(j["rounds"].get<int64_t>() > 0);
  std::filesystem::remove(path);
}
