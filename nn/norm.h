#pragma once
// Normalisation layers (PyTorch semantics and names): BatchNorm1d, BatchNorm2d, LayerNorm. They
// hold the parameters and buffers and call the fused ops of autograd/norm.h (see there for the
// math, costs and accuracy; secret inputs need per-statistic variances in crypto::inv_sqrt's
// domain, [0.01, 100] today).

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "nn/module.h"

namespace veil::nn {

/// Options of BatchNorm1d / BatchNorm2d, with fluent setters:
/// BatchNormOptions(64).eps(1e-3).momentum(0.01).affine(false).track_running_stats(true).
class BatchNormOptions {
 public:
  /// num_features = C, the channel count (>= 1, checked by the layer).
  BatchNormOptions(int64_t num_features)  // NOLINT(google-explicit-constructor): libtorch idiom
      : num_features_(num_features) {}

  /// Added to the variance before 1/sqrt (default 1e-5; encoded with frac_bits, so values below
  /// 2^-(f+1) round to 0).
  BatchNormOptions& eps(double e) {
    eps_ = e;
    return *this;
  }
  double eps() const { return eps_; }
  /// Weight of the new batch statistic in the running averages (default 0.1); std::nullopt
  /// gives the cumulative average 1 / num_batches_tracked (needs a public num_batches_tracked).
  BatchNormOptions& momentum(std::optional<double> m) {
    momentum_ = m;
    return *this;
  }
  std::optional<double> momentum() const { return momentum_; }
  /// Whether the layer has a weight (init 1) and a bias (init 0) of shape [C] (default true).
  BatchNormOptions& affine(bool on) {
    affine_ = on;
    return *this;
  }
  bool affine() const { return affine_; }
  /// Whether the layer keeps running_mean, running_var and num_batches_tracked buffers (default
  /// true). Without them it normalises with batch statistics in train and eval mode.
  BatchNormOptions& track_running_stats(bool on) {
    track_running_stats_ = on;
    return *this;
  }
  bool track_running_stats() const { return track_running_stats_; }
  int64_t num_features() const { return num_features_; }

 private:
  int64_t num_features_;
  double eps_ = 1e-5;
  std::optional<double> momentum_ = 0.1;
  bool affine_ = true;
  bool track_running_stats_ = true;
};

/// The shared implementation of BatchNorm1d and BatchNorm2d (torch's _BatchNorm).
///
/// Parameters (affine): weight [C] = 1, bias [C] = 0. Buffers (track_running_stats):
/// running_mean [C] = 0, running_var [C] = 1, num_batches_tracked [] = 0 (an integer, frac_bits
/// 0). All public at construction; Module::encrypt() makes them secret.
/// Training mode (is_training()) with running statistics: normalises with the batch statistics,
/// updates running_mean/running_var in place (secret when the input is secret) and adds 1 to
/// num_batches_tracked. Eval mode: normalises with the running statistics.
class BatchNormImplBase : public Module {
 public:
  /// x -> y of the same shape (veil::batch_norm; costs there). Throws ValueError "[<layer>] ..."
  /// for an input of the wrong rank or channel count, and "[batch_norm] ..." as batch_norm (e.g.
  /// one value per channel in training mode); for momentum = nullopt with a secret
  /// num_batches_tracked.
  MpcTensor forward(const MpcTensor& x);
  /// Running statistics back to 0 (mean), 1 (var), 0 (count), public.
  void reset_running_stats();
  /// reset_running_stats() and weight = 1, bias = 0 (public).
  void reset_parameters();
  /// The options the layer was built with.
  const BatchNormOptions& options() const { return options_; }

  /// [C] (affine only; undefined otherwise).
  MpcTensor weight;
  /// [C] (affine only).
  MpcTensor bias;
  /// [C] (track_running_stats only).
  MpcTensor running_mean;
  /// [C] (track_running_stats only).
  MpcTensor running_var;
  /// [] integer count of training batches (track_running_stats only).
  MpcTensor num_batches_tracked;

 protected:
  /// `name` is the layer name for messages; `ranks` the accepted input ranks.
  BatchNormImplBase(const BatchNormOptions& options,
                    Party& party,
                    const char* name,
                    std::vector<int64_t> ranks);

 private:
  BatchNormOptions options_;
  const char* name_;
  std::vector<int64_t> ranks_;
};

/// Batch normalisation of x [N, C] or [N, C, L] per channel (torch.nn.BatchNorm1d).
class BatchNorm1dImpl : public BatchNormImplBase {
 public:
  /// BatchNormOptions(num_features) with the current party.
  explicit BatchNorm1dImpl(int64_t num_features);
  /// Throws ValueError "[BatchNorm1d] ..." for num_features < 1, eps < 0 or momentum outside
  /// [0, 1].
  explicit BatchNorm1dImpl(const BatchNormOptions& options, Party& party = crypto::current_party());
};
VEIL_MODULE(BatchNorm1d);

/// Batch normalisation of x [N, C, H, W] per channel (torch.nn.BatchNorm2d).
class BatchNorm2dImpl : public BatchNormImplBase {
 public:
  /// BatchNormOptions(num_features) with the current party.
  explicit BatchNorm2dImpl(int64_t num_features);
  /// Throws ValueError "[BatchNorm2d] ..." as BatchNorm1dImpl.
  explicit BatchNorm2dImpl(const BatchNormOptions& options, Party& party = crypto::current_party());
};
VEIL_MODULE(BatchNorm2d);

/// Options of LayerNorm: LayerNormOptions({6}).eps(1e-6).elementwise_affine(false).
class LayerNormOptions {
 public:
  /// The trailing dimensions to normalise over (non-empty, each >= 1; checked by the layer).
  LayerNormOptions(std::vector<int64_t> normalized_shape)  // NOLINT(google-explicit-constructor)
      : normalized_shape_(std::move(normalized_shape)) {}

  /// Added to the variance before 1/sqrt (default 1e-5).
  LayerNormOptions& eps(double e) {
    eps_ = e;
    return *this;
  }
  double eps() const { return eps_; }
  /// Whether the layer has a weight (init 1) and, when bias(true), a bias (init 0) of shape
  /// normalized_shape (default true).
  LayerNormOptions& elementwise_affine(bool on) {
    elementwise_affine_ = on;
    return *this;
  }
  bool elementwise_affine() const { return elementwise_affine_; }
  /// Whether the affine transform has a bias (default true; torch's bias=).
  LayerNormOptions& bias(bool on) {
    bias_ = on;
    return *this;
  }
  bool bias() const { return bias_; }
  const std::vector<int64_t>& normalized_shape() const { return normalized_shape_; }

 private:
  std::vector<int64_t> normalized_shape_;
  double eps_ = 1e-5;
  bool elementwise_affine_ = true;
  bool bias_ = true;
};

/// Layer normalisation over the trailing normalized_shape dimensions (torch.nn.LayerNorm). Same
/// computation in train and eval mode.
class LayerNormImpl : public Module {
 public:
  /// LayerNormOptions(normalized_shape) with the current party.
  explicit LayerNormImpl(std::vector<int64_t> normalized_shape);
  /// Parameters weight = 1, bias = 0 of shape normalized_shape (public; elementwise_affine
  /// only). Throws ValueError "[LayerNorm] ..." for an empty normalized_shape, an extent < 1 or
  /// eps < 0.
  explicit LayerNormImpl(const LayerNormOptions& options, Party& party = crypto::current_party());

  /// x [*, normalized_shape...] -> same shape (veil::layer_norm; costs there). Throws
  /// ValueError "[layer_norm] ..." when x's trailing dimensions differ from normalized_shape.
  MpcTensor forward(const MpcTensor& x);
  /// weight = 1, bias = 0 (public).
  void reset_parameters();
  /// The options the layer was built with.
  const LayerNormOptions& options() const { return options_; }

  /// normalized_shape (elementwise_affine only; undefined otherwise).
  MpcTensor weight;
  /// normalized_shape (elementwise_affine and bias only).
  MpcTensor bias;

 private:
  LayerNormOptions options_;
};

/// Holder of LayerNormImpl; also constructible from a braced shape: LayerNorm({6}).
class LayerNorm : public ModuleHolder<LayerNormImpl> {
 public:
  using ModuleHolder<LayerNormImpl>::ModuleHolder;
  /// LayerNormImpl(normalized_shape) with the current party.
  explicit LayerNorm(std::vector<int64_t> normalized_shape)
      : ModuleHolder<LayerNormImpl>(std::make_shared<LayerNormImpl>(std::move(normalized_shape))) {}
};

}  // namespace veil::nn
