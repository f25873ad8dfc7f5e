// Fine-tuning API of nn::Module: requires_grad_ (freeze / unfreeze recursively, public and secret
// parameters), trainable_parameters, get_submodule, replace_module (Sequential, ModuleList,
// ModuleDict, member holders, dotted names, errors), optimizer steps that leave frozen parameters
// bit-identical, and the cost of a frozen public Linear / Conv2d on secret inputs (only
// public·secret products: no Beaver triple, no dealer traffic, no weight gradient) compared with
// the same layer trainable, from the communicator's counters.

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "core/conv.h"
#include "core/error.h"
#include "crypto/launch.h"
#include "nn/nn.h"
#include "optim/sgd.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
namespace nn = veil::nn;
using Catch::Matchers::Contains;
using veil::MpcTensor;
using veil::Party;
using veil::core::Tensor;

namespace {

using Names = std::vector<std::string>;

Names names_of(const std::vector<std::pair<std::string, MpcTensor>>& list) {
  Names out;
  for (const auto& [name, t] : list) {
    out.push_back(name);
  }
  return out;
}

struct NetImpl : nn::Module {
  NetImpl() {
    features = register_module(
        "features", nn::Sequential(nn::Linear(nn::LinearOptions(4, 3).seed(1)), nn::ReLU()));
    fc = register_module("fc", nn::Linear(nn::LinearOptions(3, 2).seed(2)));
  }
  MpcTensor forward(const MpcTensor& x) { return fc(features(x)); }
  nn::Sequential features{nullptr};
  nn::Linear fc{nullptr};
};
VEIL_MODULE(Net);

// The error message of fn run on 2 parties ("" when it does not throw).
std::string error_of(const std::function<void(Party&)>& fn) {
  try {
    veil::crypto::launch(vt::test_options(2), fn);
  } catch (const veil::ValueError& e) {
    return e.what();
  }
  return "";
}

// float64 reference of x @ w + b.
Tensor affine_ref(const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t n = x.size(0);
  const int64_t k = x.size(1);
  const int64_t m = w.size(1);
  Tensor y = Tensor::zeros({n, m}, veil::core::DType::kFloat64);
  const auto xv = x.to_vector<double>();
  const auto wv = w.to_vector<double>();
  const auto bv = b.to_vector<double>();
  double* out = y.data<double>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      double s = bv[static_cast<std::size_t>(j)];
      for (int64_t l = 0; l < k; ++l) {
        s += xv[static_cast<std::size_t>(i * k + l)] * wv[static_cast<std::size_t>(l * m + j)];
      }
      out[i * m + j] = s;
    }
  }
  return y;
}

Tensor relu_ref(const Tensor& x) {
  Tensor out = x.contiguous().clone();
  double* p = out.data<double>();
  for (int64_t i = 0; i < out.numel(); ++i) {
    p[i] = std::max(p[i], 0.0);
  }
  return out;
}

std::vector<uint64_t> ring_of(const MpcTensor& t) {
  return t.ring().to_vector<uint64_t>();
}

}  // namespace

TEST_CASE("finetune: requires_grad_ freezes and unfreezes recursively", "[nn][finetune]") {
  struct Out {
    Names trainable_public, trainable_none, trainable_all, trainable_secret;
    bool frozen_secret = false;
    bool buffers_untouched = false;
  };
  const auto out = veil::crypto::launch<Out>(vt::test_options(2), [](Party&) {
    Out o;
    // GIVEN a model with features (a Sequential), a head and a BatchNorm with buffers
    Net net;
    net->register_module("bn", nn::BatchNorm1d(2));
    // WHEN the features are frozen (public parameters)
    net->get_submodule("features")->requires_grad_(false);
    o.trainable_public = names_of(net->named_trainable_parameters());
    // THEN only the head and the norm train; freezing everything and unfreezing everything work
    o.trainable_none = names_of(net->requires_grad_(false).named_trainable_parameters());
    o.trainable_all = names_of(net->requires_grad_(true).named_trainable_parameters());
    // AND on secret parameters
    net->encrypt(0);
    net->features->requires_grad_(false);
    o.trainable_secret = names_of(net->named_trainable_parameters());
    o.frozen_secret = net->features->ptr(0)->parameters()[0].is_secret() &&
                      !net->features->ptr(0)->parameters()[0].requires_grad();
    o.buffers_untouched = net->trainable_parameters().size() == o.trainable_secret.size();
    for (const MpcTensor& b : net->buffers()) {
      o.buffers_untouched = o.buffers_untouched && !b.requires_grad();
    }
    return o;
  });
  const Names head_and_bn{"fc.weight", "fc.bias", "bn.weight", "bn.bias"};
  const Names all{"features.0.weight", "features.0.bias", "fc.weight",
                  "fc.bias",           "bn.weight",       "bn.bias"};
  for (const Out& o : out) {
    CHECK(o.trainable_public == head_and_bn);
    CHECK(o.trainable_none.empty());
    CHECK(o.trainable_all == all);
    CHECK(o.trainable_secret == head_and_bn);
    CHECK(o.frozen_secret);
    CHECK(o.buffers_untouched);
  }
}

TEST_CASE("finetune: replace_module swaps a head and keeps order and names", "[nn][finetune]") {
  struct Out {
    Names seq_names, net_names;
    veil::core::Shape head_shape, y_shape;
    double err = 1e9;
    bool same_ptr = false, member_assigned = false, list_ok = false, dict_ok = false;
  };
  const auto out = veil::crypto::launch<Out>(vt::test_options(2), [](Party& p) {
    Out o;
    // GIVEN Sequential(Linear, ReLU, Linear)
    nn::Sequential seq(nn::Linear(nn::LinearOptions(4, 3).seed(5)), nn::ReLU(),
                       nn::Linear(nn::LinearOptions(3, 2).seed(6)));
    // WHEN its head "2" is replaced by a Linear(3, 5)
    nn::Linear head = seq->replace_module("2", nn::Linear(nn::LinearOptions(3, 5).seed(7)));
    // THEN names and order are kept, and forward runs the new head (checked against float64)
    o.seq_names = names_of(seq->named_parameters());
    o.head_shape = seq->named_parameters()[2].second.shape();
    o.same_ptr = seq->ptr(2) == head.ptr();
    const Tensor x = vt::uniform({6, 4}, -1, 1, 11);
    const MpcTensor y = seq(MpcTensor::from_public(x, p));
    o.y_shape = y.shape();
    auto* first = dynamic_cast<nn::LinearImpl*>(seq->ptr(0).get());
    const Tensor ref =
        affine_ref(relu_ref(affine_ref(x, first->weight.reveal(), first->bias.reveal())),
                   head->weight.reveal(), head->bias.reveal());
    o.err = vt::max_abs_diff(y.reveal(), ref);
    // AND in a model with member holders and dotted paths
    Net net;
    net->fc = net->replace_module("fc", nn::Linear(3, 6));
    o.member_assigned = net->get_submodule("fc") == net->fc.ptr() && net->fc->weight.size(1) == 6;
    net->replace_module("features.0", nn::Linear(4, 3));
    o.net_names = names_of(net->named_parameters());
    // AND ModuleList / ModuleDict return the new module
    nn::ModuleList list(nn::Linear(2, 2), nn::ReLU());
    auto fresh = std::make_shared<nn::LinearImpl>(2, 7);
    list->replace_module("0", fresh);
    o.list_ok = (*list)[0] == fresh && list->named_parameters()[0].second.size(1) == 7;
    nn::ModuleDict dict;
    dict->insert("a", nn::Linear(2, 2));
    nn::Linear repl(2, 9);
    dict->replace_module("a", repl);
    o.dict_ok = (*dict)["a"] == repl.ptr();
    return o;
  });
  for (const Out& o : out) {
    CHECK(o.seq_names == Names{"0.weight", "0.bias", "2.weight", "2.bias"});
    CHECK(o.head_shape == veil::core::Shape{3, 5});
    CHECK(o.same_ptr);
    CHECK(o.y_shape == veil::core::Shape{6, 5});
    // public fixed-point: inputs and weights within 2^-17, <= 3 truncations per output
    CHECK(o.err <= 16 * vt::ulp());
    CHECK(o.member_assigned);
    CHECK(o.net_names == Names{"features.0.weight", "features.0.bias", "fc.weight", "fc.bias"});
    CHECK(o.list_ok);
    CHECK(o.dict_ok);
  }
}

TEST_CASE("finetune: replace_module and get_submodule errors", "[nn][finetune]") {
  CHECK_THAT(error_of([](Party&) { Net().ptr()->replace_module("head", nn::Linear(3, 2)); }),
             Contains("[replace_module] no submodule 'head' to replace (its submodules are "
                      "'features', 'fc')"));
  CHECK_THAT(error_of([](Party&) { Net().ptr()->replace_module("features.9", nn::Linear(3, 2)); }),
             Contains("no submodule 'features.9' to replace (its submodules are '0', '1')"));
  CHECK_THAT(error_of([](Party&) { Net().ptr()->replace_module("nope.0", nn::Linear(3, 2)); }),
             Contains("[replace_module] cannot replace 'nope.0': [get_submodule] no submodule "
                      "'nope' in the root module"));
  CHECK_THAT(error_of([](Party&) { Net().ptr()->replace_module("fc", nn::Linear(nullptr)); }),
             Contains("[replace_module] the module for 'fc' is empty"));
  CHECK_THAT(error_of([](Party&) { Net().ptr()->get_submodule("features.0.x"); }),
             Contains("[get_submodule] no submodule 'x' in 'features.0' (it has no submodules)"));
  CHECK_THAT(error_of([](Party&) { Net().ptr()->get_submodule(""); }),
             Contains("[get_submodule] expected a dotted path"));
  // a Sequential entry needs a unary forward; the Sequential is unchanged after the error
  bool unchanged = false;
  const std::string msg = error_of([&unchanged](Party&) {
    nn::Sequential seq(nn::Linear(2, 2), nn::ReLU());
    const auto relu = seq->ptr(1);
    try {
      seq->replace_module("1", nn::ModuleList());
    } catch (const veil::ValueError&) {
      unchanged = seq->ptr(1) == relu && seq->named_children()[1].second == relu;
      throw;
    }
  });
  CHECK_THAT(msg, Contains("[replace_module] Sequential entry '1' needs a module with forward"));
  CHECK(unchanged);
}

TEST_CASE("finetune: optimizer steps leave frozen parameters bit-identical",
          "[nn][finetune][optim]") {
  for (int n : {2, 3}) {
    INFO("parties " << n);
    struct Out {
      bool frozen_same = false, head_changed = false, frozen_no_grad = false;
      double loss0 = 0, loss1 = 0;
    };
    const auto out = veil::crypto::launch<Out>(vt::test_options(n), [](Party& p) {
      Out o;
      // GIVEN a secret model with frozen features and a trainable head
      Net net;
      net->encrypt(0);
      net->features->requires_grad_(false);
      std::vector<std::vector<uint64_t>> before;
      for (const MpcTensor& t : net->features->parameters()) {
        before.push_back(ring_of(t));
      }
      const auto head_before = ring_of(net->fc->weight);
      // WHEN SGD with momentum and weight decay over ALL parameters takes two steps
      veil::optim::SGD opt(net->parameters(),
                           veil::optim::SGDOptions(0.5).momentum(0.9).weight_decay(0.1));
      const Tensor x = vt::uniform({8, 4}, -1, 1, 3);
      const Tensor target = vt::uniform({8, 2}, -1, 1, 4);
      const MpcTensor xs = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
      const MpcTensor ts =
          MpcTensor::share(p.rank() == 1 ? target : Tensor(), 1, target.shape(), p);
      for (int step = 0; step < 2; ++step) {
        opt.zero_grad();
        MpcTensor loss = veil::mse_loss(net(xs), ts);
        loss.backward();
        (step == 0 ? o.loss0 : o.loss1) = loss.reveal().item<double>();
        o.frozen_no_grad = !net->features->parameters()[0].grad().defined() &&
                           !net->features->parameters()[1].grad().defined();
        opt.step();
      }
      // THEN the frozen shares did not change by a single bit; the head did
      o.frozen_same = true;
      const auto frozen = net->features->parameters();
      for (std::size_t i = 0; i < frozen.size(); ++i) {
        o.frozen_same = o.frozen_same && ring_of(frozen[i]) == before[i];
      }
      o.head_changed = ring_of(net->fc->weight) != head_before;
      return o;
    });
    for (const Out& o : out) {
      CHECK(o.frozen_same);
      CHECK(o.head_changed);
      CHECK(o.frozen_no_grad);
      CHECK(o.loss1 < o.loss0);  // the head learns (lr 0.5 on a convex problem in the head)
    }
  }
}

namespace {

struct Cost {
  int64_t rounds = 0;
  int64_t bytes = 0;   // sent by party 1 (online)
  int64_t dealer = 0;  // received by party 0 from the dealer
};

struct LayerCosts {
  Cost forward, backward;
  bool weight_grad = false, input_grad = false;
  double err = 1e9;
};

Cost delta(const veil::comm::CommStats& d) {
  return {d.total.rounds, d.total.bytes_sent, d.dealer.bytes_received};
}

// Forward and backward of `layer` on a secret input x (requires grad) with the loss sum(y * s),
// s secret; the layer's weight is public and trainable or frozen. Returns party 1's online
// counters and party 0's dealer counters of the layer's forward and of the whole backward.
template <class MakeLayer, class Ref>
LayerCosts layer_costs(int n, bool frozen, const Tensor& x, MakeLayer make, Ref ref) {
  const auto out = veil::crypto::launch<LayerCosts>(vt::test_options(n), [&](Party& p) {
    auto layer = make();
    layer->requires_grad_(!frozen);
    MpcTensor xs = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
    xs.set_requires_grad(true);
    LayerCosts c;
    auto before = p.comm().stats();
    const MpcTensor y = layer(xs);
    c.forward = delta(p.comm().stats() - before);
    c.err = vt::max_abs_diff(y.reveal(), ref(*layer));
    const Tensor sv = vt::uniform(y.shape(), -1, 1, 9);
    const MpcTensor s = MpcTensor::share(p.rank() == 1 ? sv : Tensor(), 1, sv.shape(), p);
    const MpcTensor loss = veil::sum(y * s);
    before = p.comm().stats();
    loss.backward();
    c.backward = delta(p.comm().stats() - before);
    c.weight_grad = layer->weight.grad().defined();
    c.input_grad = xs.grad().defined();
    return c;
  });
  LayerCosts c = out[1];
  c.forward.dealer = out[0].forward.dealer;
  c.backward.dealer = out[0].backward.dealer;
  return c;
}

}  // namespace

TEST_CASE("finetune: a frozen public layer on secret input costs only public*secret",
          "[nn][finetune][cost]") {
  const Tensor x_lin = vt::uniform({4, 16}, -1, 1, 21);
  const Tensor x_conv = vt::uniform({2, 2, 5, 5}, -1, 1, 22);
  auto make_linear = [] {
    return nn::Linear(nn::LinearOptions(16, 8).seed(3));
  };
  auto make_conv = [] {
    return nn::Conv2d(nn::Conv2dOptions(2, 3, 3).seed(4));
  };
  auto ref_linear = [&x_lin](nn::LinearImpl& l) {
    return affine_ref(x_lin, l.weight.reveal(), l.bias.reveal());
  };
  auto ref_conv = [&x_conv](nn::Conv2dImpl& c) {
    // float64 direct convolution, stride 1, no padding: [2, 2, 5, 5] * [3, 2, 3, 3] -> [2, 3, 3, 3]
    const auto w = c.weight.reveal().to_vector<double>();
    const auto b = c.bias.reveal().to_vector<double>();
    const auto xv = x_conv.to_vector<double>();
    Tensor y = Tensor::zeros({2, 3, 3, 3}, veil::core::DType::kFloat64);
    double* py = y.data<double>();
    for (int ni = 0; ni < 2; ++ni) {
      for (int o = 0; o < 3; ++o) {
        for (int i = 0; i < 3; ++i) {
          for (int j = 0; j < 3; ++j) {
            double s = b[static_cast<std::size_t>(o)];
            for (int ci = 0; ci < 2; ++ci) {
              for (int ki = 0; ki < 3; ++ki) {
                for (int kj = 0; kj < 3; ++kj) {
                  s += xv[static_cast<std::size_t>(((ni * 2 + ci) * 5 + i + ki) * 5 + j + kj)] *
                       w[static_cast<std::size_t>(((o * 2 + ci) * 3 + ki) * 3 + kj)];
                }
              }
            }
            py[((ni * 3 + o) * 3 + i) * 3 + j] = s;
          }
        }
      }
    }
    return y;
  };
  for (int n : {2, 3}) {
    INFO("parties " << n);
    for (const bool conv : {false, true}) {
      INFO((conv ? "Conv2d" : "Linear"));
      // GIVEN the same public layer frozen and trainable, applied to a secret input
      const LayerCosts frozen = conv ? layer_costs(n, true, x_conv, make_conv, ref_conv)
                                     : layer_costs(n, true, x_lin, make_linear, ref_linear);
      const LayerCosts train = conv ? layer_costs(n, false, x_conv, make_conv, ref_conv)
                                    : layer_costs(n, false, x_lin, make_linear, ref_linear);
      const int64_t y_numel = conv ? 2 * 3 * 3 * 3 : 4 * 8;
      const int64_t x_numel = conv ? x_conv.numel() : x_lin.numel();
      // Truncations of public*secret products: N = 2 local; N > 2 one round each, in which
      // party 1 sends 8 bytes per element, and a dealer pair (r, r >> f) whose correction is 8
      // bytes per element to party 0. A Beaver triple would add dealer traffic beyond that.
      auto trunc_rounds = [n](int64_t steps) {
        return n == 2 ? 0 : steps;
      };
      auto trunc_bytes = [n](int64_t elements) {
        return n == 2 ? 0 : 8 * elements;
      };
      // THEN the forward is public*secret: only the truncation of y, no triple
      for (const LayerCosts* c : {&frozen, &train}) {
        CHECK(c->forward.rounds == trunc_rounds(1));
        CHECK(c->forward.bytes == trunc_bytes(y_numel));
        CHECK(c->forward.dealer == trunc_bytes(y_numel));
        CHECK(c->err <= 8 * vt::ulp());  // x within 2^-17, weights exact, one truncation
        CHECK(c->input_grad);
      }
      // AND the frozen backward computes no weight gradient: only the truncations of the two
      // public*secret products g = 1 * s (|y|) and g @ W^T (|x|), no triple
      CHECK_FALSE(frozen.weight_grad);
      CHECK(frozen.backward.rounds == trunc_rounds(2));
      CHECK(frozen.backward.bytes == trunc_bytes(y_numel + x_numel));
      CHECK(frozen.backward.dealer == trunc_bytes(y_numel + x_numel));
      // while the trainable layer's weight gradient x^T g is a secret*secret Beaver product:
      // one more round opening x and g, and a triple from the dealer
      CHECK(train.weight_grad);
      CHECK(train.backward.dealer > frozen.backward.dealer);
      CHECK(train.backward.rounds >= frozen.backward.rounds + 1);
      CHECK(train.backward.bytes >= frozen.backward.bytes + 8 * (n - 1) * (x_numel + y_numel));
      UNSCOPED_INFO("frozen backward: "
                    << frozen.backward.rounds << " rounds, " << frozen.backward.bytes
                    << " B; trainable: " << train.backward.rounds << " rounds, "
                    << train.backward.bytes << " B, dealer " << train.backward.dealer << " B");
    }
  }
}
