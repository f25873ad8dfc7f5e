#pragma once
// Linear layer y = x @ W + b. Note the weight layout: W is stored as [in_features, out_features]
// (the transpose of torch.nn.Linear's [out, in]), so forward is one matmul with no transpose and
// the layout matches models::init_mlp_weights / PlaintextMlp. Files in PyTorch's layout go through
// to_torch_layout / from_torch_layout (models/weights.h).

#include <cstdint>
#include <optional>
#include <string>

#include "autograd/mpc_tensor.h"
#include "core/tensor.h"
#include "nn/module.h"

namespace veil::nn {

/// Options of Linear, with fluent setters: LinearOptions(784, 128).bias(false).seed(7).
class LinearOptions {
 public:
  /// in_features, out_features >= 1 (checked by LinearImpl).
  LinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}

  /// Whether the layer has a bias (default true).
  LinearOptions& bias(bool on) {
    bias_ = on;
    return *this;
  }
  bool bias() const { return bias_; }
  /// Public seed for the initial weights: with a seed, the layer draws from
  /// crypto::Prg(Prg::public_seed(seed, stream)), reproducibly; without one (default), from the
  /// party's common PRG (public, identical on every party, different in every session).
  LinearOptions& seed(uint64_t s) {
    seed_ = s;
    return *this;
  }
  std::optional<uint64_t> seed() const { return seed_; }
  /// Stream of the public seed (default 0). Layer l of models::init_mlp_weights(sizes, seed) is
  /// LinearOptions(in, out).seed(seed).stream(1000 + l).
  LinearOptions& stream(uint64_t s) {
    stream_ = s;
    return *this;
  }
  uint64_t stream() const { return stream_; }
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

 private:
  int64_t in_features_;
  int64_t out_features_;
  bool bias_ = true;
  std::optional<uint64_t> seed_;
  uint64_t stream_ = 0;
};

/// y = x @ weight + bias.
class LinearImpl : public Module {
 public:
  /// LinearOptions(in_features, out_features) with the current party.
  LinearImpl(int64_t in_features, int64_t out_features);
  /// Creates public parameters initialised like torch.nn.Linear: every weight and bias uniform in
  /// [-1/sqrt(in), 1/sqrt(in)] (value (2u - 1) / sqrt(in), u from the public PRG of the options:
  /// weights in row-major order of [in, out] first, then the bias). Call encrypt() to make them
  /// secret. Throws ValueError for sizes < 1.
  explicit LinearImpl(const LinearOptions& options, Party& party = crypto::current_party());

  /// x: [N, in] -> [N, out] (public or secret; see veil::matmul and veil::add for costs).
  /// Throws ValueError when x is not [N, in_features].
  MpcTensor forward(const MpcTensor& x);

  /// Replaces the parameters with public values (the same on every party): w float64
  /// [in, out], b float64 [out] (ignored, and may be undefined, when the layer has no bias).
  /// Use before encrypt(), e.g. with models::init_mlp_weights. Throws ValueError on a shape or
  /// dtype mismatch or when the parameters are already secret.
  void load_weights(const core::Tensor& w, const core::Tensor& b = {});

  /// The options the layer was built with.
  const LinearOptions& options() const { return options_; }

  /// PyTorch layout of "weight": the transpose, [in, out] -> [out, in] (a view); other names
  /// unchanged. Used by models::save_safetensors / load_safetensors_into.
  core::Tensor to_torch_layout(const std::string& name, const core::Tensor& value) const override;
  /// veil layout of "weight" from PyTorch's [out, in]: the transpose (a view); others unchanged.
  core::Tensor from_torch_layout(const std::string& name, const core::Tensor& value) const override;

  /// [in_features, out_features].
  MpcTensor weight;
  /// [out_features]; undefined when options().bias() is false.
  MpcTensor bias;

 private:
  LinearOptions options_;
};

VEIL_MODULE(Linear);

}  // namespace veil::nn
