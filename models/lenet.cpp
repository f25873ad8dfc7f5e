#include "models/lenet.h"

#include <algorithm>
#include <set>
#include <string>

#include "autograd/autograd.h"
#include "core/error.h"

namespace veil::models {

LeNetImpl::LeNetImpl(const LeNetConfig& config, Party& party) : config_(config) {
  config.validate("LeNet");
  const int64_t c1 = config.conv1_channels;
  const int64_t c2 = config.conv2_channels;
  conv1 = register_module("conv1",
                          nn::Conv2d(nn::Conv2dOptions(1, c1, 5).padding(2).bias(false), party));
  bn1 = register_module(
      "bn1", nn::BatchNorm2d(
                 nn::BatchNormOptions(c1).eps(config.bn_eps).momentum(config.bn_momentum), party));
  conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(c1, c2, 5).bias(false), party));
  bn2 = register_module(
      "bn2", nn::BatchNorm2d(
                 nn::BatchNormOptions(c2).eps(config.bn_eps).momentum(config.bn_momentum), party));
  fc1 = register_module(
      "fc1", nn::Linear(nn::LinearOptions(config.flat_features(), config.fc1_features), party));
  fc2 = register_module(
      "fc2", nn::Linear(nn::LinearOptions(config.fc1_features, config.fc2_features), party));
  fc3 = register_module("fc3",
                        nn::Linear(nn::LinearOptions(config.fc2_features, config.classes), party));
  pool = register_module("pool", nn::MaxPool2d(2));
}

MpcTensor LeNetImpl::forward(const MpcTensor& x) {
  VEIL_CHECK(
      x.defined() && ((x.dim() == 2 && x.size(1) == 784) ||
                      (x.dim() == 4 && x.size(1) == 1 && x.size(2) == 28 && x.size(3) == 28)),
      "[LeNet] expected input [B, 784] or [B, 1, 28, 28], got {}",
      x.defined() ? core::shape_str(x.shape()) : std::string("an undefined tensor"));
  const int64_t b = x.size(0);
  MpcTensor h = reshape(x, {b, 1, 28, 28});
  // max pooling commutes with ReLU (both monotone): relu(pool(y)) = pool(relu(y)), with the same
  // gradient except where a window's maximum is exactly 0; pooling first runs 4x fewer ReLUs
  h = veil::relu(pool(bn1(conv1(h))));  // [B, c1, 14, 14]
  h = veil::relu(pool(bn2(conv2(h))));  // [B, c2, 5, 5]
  h = reshape(h, {b, config_.flat_features()});
  h = veil::relu(fc1(h));
  h = veil::relu(fc2(h));
  return fc3(h);
}

void LeNetImpl::load_parameters(const NamedTensors& parameters) {
  const auto mine = named_parameters();
  std::set<std::string> given;
  for (const auto& [name, t] : parameters) {
    VEIL_CHECK(given.insert(name).second, "[LeNet::load_parameters] '{}' given twice", name);
  }
  std::vector<std::pair<std::string, MpcTensor>> state;
  for (const auto& [name, p] : mine) {
    VEIL_CHECK(given.count(name) == 1, "[LeNet::load_parameters] missing parameter '{}'", name);
    VEIL_CHECK(p.is_public(),
               "[LeNet::load_parameters] '{}' is already secret; load parameters before "
               "encrypt()",
               name);
  }
  for (const auto& [name, t] : parameters) {
    const auto it = std::find_if(mine.begin(), mine.end(),
                                 [&](const auto& entry) { return entry.first == name; });
    VEIL_CHECK(it != mine.end(), "[LeNet::load_parameters] unknown parameter '{}'", name);
    VEIL_CHECK(t.defined() && t.dtype() == core::DType::kFloat64 && t.shape() == it->second.shape(),
               "[LeNet::load_parameters] '{}': expected float64 {}, got {}", name,
               core::shape_str(it->second.shape()), t.defined() ? t.str() : "undefined");
    state.emplace_back(name, MpcTensor::from_public(t, it->second.party()));
  }
  load_state_dict(state, /*strict=*/false);
}

}  // namespace veil::models
