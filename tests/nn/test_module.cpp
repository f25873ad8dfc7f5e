// Module API: registration order and dotted names, buffers, children, train/eval, encrypt,
// zero_grad, module holders (nullptr, copies share), Sequential naming, Linear initialisation
// (PyTorch bound, reproducible seed equal to models::init_mlp_weights), load_weights and errors.

#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "models/plaintext_mlp.h"
#include "nn/nn.h"
#include "tests/autograd/autograd_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::agtest::Tensor;
namespace nn = veil::nn;

struct MlpImpl : nn::Module {
  MlpImpl(int64_t in, int64_t hidden, int64_t out)
      : fc1(register_module("fc1", nn::Linear(in, hidden))),
        fc2(register_module("fc2", nn::Linear(nn::LinearOptions(hidden, out).bias(false)))) {
    scale = register_buffer("scale", MpcTensor::from_public(Tensor::scalar(1.0)));
  }
  MpcTensor forward(const MpcTensor& x) { return fc2(veil::relu(fc1(x))); }
  nn::Linear fc1;
  nn::Linear fc2;
  MpcTensor scale;
};
VEIL_MODULE(Mlp);

struct Names {
  std::vector<std::string> params;
  std::vector<std::string> buffers;
};

std::string error_of(const std::function<void(Party&)>& fn) {
  try {
    veil::crypto::launch(veil::testing::test_options(2), fn);
  } catch (const veil::ValueError& e) {
    return std::string("ValueError: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("other: ") + e.what();
  }
  return "no exception";
}

}  // namespace

TEST_CASE("Module: named_parameters order, names, buffers, children", "[nn][module]") {
  const auto got = veil::crypto::launch<Names>(veil::testing::test_options(2), [](Party&) {
    // GIVEN an MLP with a bias-less second layer inside a Sequential with a ReLU
    nn::Sequential seq(Mlp(4, 3, 2), nn::ReLU());
    seq->push_back("head", nn::Linear(2, 2));
    Names n;
    for (const auto& [name, t] : seq->named_parameters()) {
      n.params.push_back(name);
    }
    for (const auto& [name, t] : seq->named_buffers()) {
      n.buffers.push_back(name);
    }
    n.params.push_back(std::to_string(seq->parameters().size()));
    n.params.push_back(std::to_string(seq->named_children().size()));
    n.params.push_back(std::to_string(seq->named_parameters(/*recurse=*/false).size()));
    return n;
  });
  // THEN the names are dotted, ordered by registration, children named by position
  const std::vector<std::string> want{
      "0.fc1.weight", "0.fc1.bias", "0.fc2.weight", "head.weight", "head.bias", "5", "3", "0"};
  CHECK(got[0].params == want);
  CHECK(got[0].buffers == std::vector<std::string>{"0.scale"});
  CHECK(got[1].params == want);
}

TEST_CASE("Module: shapes, train/eval, encrypt, zero_grad, holders", "[nn][module]") {
  const auto got = veil::agtest::run(2, [](Party& p) {
    Mlp model(4, 3, 2);
    std::vector<double> f;
    // parameters are public leaves that require grad; the buffer does not
    f.push_back(model->fc1->weight.shape() == veil::core::Shape{4, 3} ? 1 : 0);
    f.push_back(model->fc1->bias.shape() == veil::core::Shape{3} ? 1 : 0);
    f.push_back(model->fc2->bias.defined() ? 1 : 0);
    f.push_back(model->fc1->weight.is_public() && model->fc1->weight.requires_grad() ? 1 : 0);
    f.push_back(model->scale.requires_grad() ? 1 : 0);
    // train/eval propagate to children
    f.push_back(model->is_training() && model->fc1->is_training() ? 1 : 0);
    model->eval();
    f.push_back(!model->is_training() && !model->fc2->is_training() ? 1 : 0);
    model->train();
    f.push_back(model->fc2->is_training() ? 1 : 0);
    // encrypt: every parameter and buffer secret, seen through the member handles too
    const Tensor w_before = model->fc1->weight.reveal();
    model->encrypt(1);
    bool all_secret = model->scale.is_secret() && model->fc1->weight.is_secret();
    for (const MpcTensor& t : model->parameters()) {
      all_secret = all_secret && t.is_secret() && t.requires_grad();
    }
    f.push_back(all_secret ? 1 : 0);
    f.push_back(veil::testing::max_abs_diff(w_before, model->fc1->weight.reveal()) == 0 ? 1 : 0);
    // zero_grad clears gradients
    const Tensor x = veil::testing::uniform({5, 4}, -1, 1, 3);
    const MpcTensor loss = veil::sum(model(MpcTensor::from_public(x, p)));
    loss.backward();
    f.push_back(model->fc1->weight.grad().defined() ? 1 : 0);
    model->zero_grad();
    f.push_back(model->fc1->weight.grad().defined() ? 1 : 0);
    // holders: nullptr is empty; copies share the module
    nn::Linear empty{nullptr};
    f.push_back(empty.is_empty() ? 1 : 0);
    nn::Linear alias = model->fc1;
    f.push_back(alias.get() == model->fc1.get() ? 1 : 0);
    return std::vector<Tensor>{Tensor::from_vector(f, {static_cast<int64_t>(f.size())})};
  });
  const std::vector<double> want{1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1, 1};
  CHECK(got[0].to_vector<double>() == want);
}

TEST_CASE("Linear: initialisation and load_weights", "[nn][linear]") {
  const auto [ws, bs] = veil::models::init_mlp_weights({6, 5, 3}, 42);
  const auto got = veil::agtest::run(2, [&](Party& p) {
    // GIVEN layers seeded like init_mlp_weights layer l (stream 1000 + l)
    nn::Linear l0(nn::LinearOptions(6, 5).seed(42).stream(1000));
    nn::Linear l1(nn::LinearOptions(5, 3).seed(42).stream(1001));
    // AND a default layer (common PRG) and a layer loaded from float64 tensors
    nn::Linear d(nn::LinearOptions(100, 50), p);
    nn::Linear loaded(5, 3);
    loaded->load_weights(ws[1], bs[1]);
    return std::vector<Tensor>{l0->weight.reveal(),     l0->bias.reveal(),    l1->weight.reveal(),
                               l1->bias.reveal(),       d->weight.reveal(),   d->bias.reveal(),
                               loaded->weight.reveal(), loaded->bias.reveal()};
  });
  // THEN the seeded layers equal init_mlp_weights up to the encoding (2^-17)
  const double enc = 1.0 / 131072.0 + 1e-12;
  CHECK(veil::testing::max_abs_diff(got[0], ws[0]) <= enc);
  CHECK(veil::testing::max_abs_diff(got[1], bs[0]) <= enc);
  CHECK(veil::testing::max_abs_diff(got[2], ws[1]) <= enc);
  CHECK(veil::testing::max_abs_diff(got[3], bs[1]) <= enc);
  CHECK(veil::testing::max_abs_diff(got[6], ws[1]) <= enc);
  CHECK(veil::testing::max_abs_diff(got[7], bs[1]) <= enc);
  // AND the default initialisation is uniform in [-1/sqrt(100), 1/sqrt(100)]: bounded, spread
  const double bound = 0.1;
  CHECK(veil::agtest::max_abs(got[4]) <= bound + enc);
  CHECK(veil::agtest::max_abs(got[4]) > 0.9 * bound);
  CHECK(veil::agtest::max_abs(got[5]) <= bound + enc);
  const auto v = got[4].to_vector<double>();
  double mean = 0;
  for (double e : v) {
    mean += e;
  }
  mean /= static_cast<double>(v.size());
  CHECK(std::abs(mean) < 0.01);  // 5000 samples, sd of the mean ~ 0.0008
}

TEST_CASE("Module and Linear errors", "[nn][errors]") {
  CHECK_THAT(error_of([](Party&) {
               nn::Linear l(3, 2);
               l->register_parameter("weight", MpcTensor::zeros({1}));
             }),
             Catch::StartsWith("ValueError: [register_parameter] the name 'weight' is already"));
  CHECK_THAT(error_of([](Party&) {
               nn::Linear l(3, 2);
               l->register_buffer("a.b", MpcTensor::zeros({1}));
             }),
             Catch::StartsWith("ValueError: [register_buffer] expected a non-empty name"));
  CHECK_THAT(error_of([](Party&) {
               nn::Linear l(3, 2);
               (void)l(MpcTensor::zeros({4, 5}));
             }),
             Catch::Equals("ValueError: [Linear] expected input [N, 3], got [4, 5]"));
  CHECK_THAT(error_of([](Party&) {
               nn::Linear l{nullptr};
               (void)l(MpcTensor::zeros({4, 5}));
             }),
             Catch::StartsWith("ValueError: [ModuleHolder] accessing an empty module holder"));
  CHECK_THAT(error_of([](Party&) {
               nn::Linear l(3, 2);
               l->encrypt();
               l->load_weights(Tensor::zeros({3, 2}, veil::core::DType::kFloat64),
                               Tensor::zeros({2}, veil::core::DType::kFloat64));
             }),
             Catch::Contains("already secret"));
  CHECK_THAT(
      error_of([](Party&) {
        nn::Linear l(3, 2);
        l->load_weights(Tensor::zeros({2, 3}, veil::core::DType::kFloat64),
                        Tensor::zeros({2}, veil::core::DType::kFloat64));
      }),
      Catch::StartsWith("ValueError: [Linear::load_weights] expected a float64 weight [3, 2]"));
}
