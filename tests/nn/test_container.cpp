// ModuleList and ModuleDict: registration order, PyTorch state_dict names, indexing, iteration,
// typed access, train/eval and encrypt propagation, bad indices and keys.

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "tests/autograd/autograd_test_util.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
namespace nn = veil::nn;
using veil::MpcTensor;
using veil::Party;
using veil::core::Tensor;

namespace {

std::vector<std::string> names(const std::vector<std::pair<std::string, MpcTensor>>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) {
    out.push_back(e.first);
  }
  return out;
}

// A model holding a ModuleList of blocks and a ModuleDict of heads.
struct TowerImpl : nn::Module {
  TowerImpl() {
    layers = register_module("layers", nn::ModuleList());
    layers->push_back(nn::Linear(nn::LinearOptions(4, 8).seed(1)));
    layers->push_back(nn::BatchNorm1d(8));
    layers->push_back(nn::ReLU());
    layers->push_back(nn::Linear(nn::LinearOptions(8, 8).seed(2)));
    heads = register_module("heads", nn::ModuleDict());
    heads->insert("cls", nn::Linear(nn::LinearOptions(8, 3).seed(3)));
    heads->insert("reg", nn::Linear(nn::LinearOptions(8, 1).bias(false).seed(4)));
  }
  MpcTensor forward(const MpcTensor& x, const std::string& head) {
    MpcTensor y = x;
    for (std::size_t i = 0; i < layers->size(); ++i) {
      if (auto lin = std::dynamic_pointer_cast<nn::LinearImpl>((*layers)[i])) {
        y = lin->forward(y);
      } else if (auto bn = std::dynamic_pointer_cast<nn::BatchNorm1dImpl>((*layers)[i])) {
        y = bn->forward(y);
      } else {
        y = layers->at<nn::ReLUImpl>(i).forward(y);
      }
    }
    return heads->at<nn::LinearImpl>(head).forward(y);
  }
  nn::ModuleList layers;
  nn::ModuleDict heads;
};

}  // namespace

TEST_CASE("ModuleList and ModuleDict name children like PyTorch", "[nn][container]") {
  veil::agtest::run(2, [](Party& p) {
    if (p.rank() != 0) {
      return std::vector<Tensor>{};  // local checks, Catch assertions on one thread only
    }
    // GIVEN a model with a ModuleList "layers" and a ModuleDict "heads"
    TowerImpl tower;
    // THEN state_dict names follow PyTorch: parameters then buffers, "layers.<i>.<name>"
    CHECK(names(tower.state_dict()) ==
          std::vector<std::string>{"layers.0.weight", "layers.0.bias", "layers.1.weight",
                                   "layers.1.bias", "layers.3.weight", "layers.3.bias",
                                   "heads.cls.weight", "heads.cls.bias", "heads.reg.weight",
                                   "layers.1.running_mean", "layers.1.running_var",
                                   "layers.1.num_batches_tracked"});
    // indexing, size, iteration and typed access
    CHECK(tower.layers->size() == 4);
    CHECK_FALSE(tower.layers->is_empty());
    std::size_t count = 0;
    for (const auto& m : *tower.layers) {
      CHECK(m == (*tower.layers)[count]);
      ++count;
    }
    CHECK(count == 4);
    CHECK(tower.layers->at<nn::LinearImpl>(3).options().in_features() == 8);
    CHECK(tower.layers->ptr<nn::BatchNorm1dImpl>(1)->options().num_features() == 8);
    CHECK(tower.heads->keys() == std::vector<std::string>{"cls", "reg"});
    CHECK(tower.heads->contains("reg"));
    CHECK_FALSE(tower.heads->contains("box"));
    CHECK(tower.heads->values().size() == 2);
    CHECK((*tower.heads)["cls"] == tower.heads->items()[0].second);
    // a list built from several modules at once, and extend
    nn::ModuleList list(nn::Linear(2, 2), nn::ReLU());
    nn::ModuleList more{nn::Tanh()};
    list->extend(*more);
    CHECK(list->size() == 3);
    CHECK(list->named_children().back().first == "2");
    nn::ModuleDict dict(
        nn::ModuleDictImpl::Items{{"a", nn::Linear(2, 2).ptr()}, {"b", nn::ReLU().ptr()}});
    CHECK(names(dict->named_parameters()) == std::vector<std::string>{"a.weight", "a.bias"});
    // train/eval reaches the contained modules
    tower.eval();
    CHECK_FALSE(tower.layers->ptr(1)->is_training());
    CHECK_FALSE((*tower.heads)["cls"]->is_training());
    return std::vector<Tensor>{};
  });
}

TEST_CASE("a model with containers runs encrypted and loads its state by name", "[nn][container]") {
  const Tensor x = vt::uniform({16, 4}, -4, 4, 5);
  for (int n : {2, 3}) {
    // WHEN the same weights run public (reference) and encrypted, and the encrypted model's
    // state is loaded into a fresh model by name
    auto out = veil::agtest::run(n, [&](Party& p) {
      TowerImpl plain;
      TowerImpl secret;
      secret.load_state_dict(plain.state_dict());
      secret.encrypt();
      const MpcTensor xs = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
      const MpcTensor y_plain = plain.forward(MpcTensor::from_public(x, p), "cls");
      const MpcTensor y_secret = secret.forward(xs, "cls");
      TowerImpl copy;
      copy.load_state_dict(secret.state_dict());
      return std::vector<Tensor>{
          y_plain.reveal(), y_secret.reveal(),
          copy.layers->at<nn::BatchNorm1dImpl>(1).running_mean.reveal(),
          plain.layers->at<nn::BatchNorm1dImpl>(1).running_mean.reveal(),
          Tensor::scalar<double>(copy.heads->at<nn::LinearImpl>("reg").weight.is_secret() ? 1.0
                                                                                          : 0.0)};
    });
    // THEN the encrypted run matches the public one and the loaded copy holds the secret state
    CHECK(vt::max_abs_diff(out[0], out[1]) <= 5e-3);
    CHECK(vt::max_abs_diff(out[2], out[3]) <= 1e-3);
    CHECK(out[4].item<double>() == 1.0);
  }
}

TEST_CASE("ModuleList and ModuleDict reject bad indices and keys", "[nn][container]") {
  using Catch::Matchers::Contains;
  veil::agtest::run(2, [](Party& p) {
    if (p.rank() != 0) {
      return std::vector<Tensor>{};
    }
    nn::ModuleList list{nn::ReLU()};
    CHECK_THROWS_WITH((*list)[1], Contains("[ModuleList] index 1 out of range for 1 modules"));
    CHECK_THROWS_WITH(list->at<nn::LinearImpl>(0), Contains("[ModuleList] module 0 is not"));
    CHECK_THROWS_WITH(list->push_back(nn::Linear(nullptr)),
                      Contains("[ModuleList] expected a module"));
    nn::ModuleDict dict;
    dict->insert("relu", nn::ReLU());
    CHECK_THROWS_WITH(dict->insert("relu", nn::Tanh()),
                      Contains("[ModuleDict] key 'relu' is already present"));
    CHECK_THROWS_WITH((*dict)["tanh"], Contains("[ModuleDict] no module under key 'tanh'"));
    CHECK_THROWS_WITH(dict->insert("a.b", nn::Tanh()), Contains("without '.'"));
    return std::vector<Tensor>{};
  });
}
