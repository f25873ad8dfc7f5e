#include "nn/norm.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/norm.h"
#include "core/error.h"

namespace veil::nn {

namespace {

MpcTensor public_full(const core::Shape& shape, double v, Party& party) {
  return MpcTensor::from_public(core::Tensor::full<double>(shape, v), party);
}

MpcTensor public_count(uint64_t v, Party& party) {
  return MpcTensor::from_public_ring(core::Tensor::scalar<uint64_t>(v), 0, party);
}

}  // namespace

// ---- BatchNorm ----------------------------------------------------------------------------------

BatchNormImplBase::BatchNormImplBase(const BatchNormOptions& options,
                                     Party& party,
                                     const char* name,
                                     std::vector<int64_t> ranks)
    : options_(options), name_(name), ranks_(std::move(ranks)) {
  const int64_t c = options.num_features();
  VEIL_CHECK(c >= 1, "[{}] expected num_features >= 1, got {}", name_, c);
  VEIL_CHECK(std::isfinite(options.eps()) && options.eps() >= 0,
             "[{}] expected a finite eps >= 0, got {}", name_, options.eps());
  const std::optional<double> m = options.momentum();
  VEIL_CHECK(!m || (std::isfinite(*m) && *m >= 0 && *m <= 1),
             "[{}] expected momentum in [0, 1] or none, got {}", name_, m.value_or(0.0));
  if (options.affine()) {
    weight = register_parameter("weight", public_full({c}, 1.0, party));
    bias = register_parameter("bias", public_full({c}, 0.0, party));
  }
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", public_full({c}, 0.0, party));
    running_var = register_buffer("running_var", public_full({c}, 1.0, party));
    num_batches_tracked = register_buffer("num_batches_tracked", public_count(0, party));
  }
}

void BatchNormImplBase::reset_running_stats() {
  if (!options_.track_running_stats()) {
    return;
  }
  Party& party = running_mean.party();
  const int64_t c = options_.num_features();
  running_mean.assign_(public_full({c}, 0.0, party));
  running_var.assign_(public_full({c}, 1.0, party));
  num_batches_tracked.assign_(public_count(0, party));
}

void BatchNormImplBase::reset_parameters() {
  reset_running_stats();
  if (options_.affine()) {
    Party& party = weight.party();
    const int64_t c = options_.num_features();
    weight.assign_(public_full({c}, 1.0, party));
    bias.assign_(public_full({c}, 0.0, party));
  }
}

MpcTensor BatchNormImplBase::forward(const MpcTensor& x) {
  VEIL_CHECK(x.defined() && std::find(ranks_.begin(), ranks_.end(), x.dim()) != ranks_.end(),
             "[{}] expected an input of rank {}, got {}", name_, fmt::join(ranks_, " or "),
             x.defined() ? core::shape_str(x.shape()) : std::string("an undefined tensor"));
  VEIL_CHECK(x.size(1) == options_.num_features(),
             "[{}] expected {} channels (dimension 1), got input {}", name_,
             options_.num_features(), core::shape_str(x.shape()));
  const bool track = options_.track_running_stats();
  double factor = options_.momentum().value_or(0.0);
  if (is_training() && track) {
    {
      NoGradGuard no_grad;
      num_batches_tracked.assign_(add(num_batches_tracked, public_count(1, x.party())));
    }
    if (!options_.momentum()) {
      VEIL_CHECK(num_batches_tracked.is_public(),
                 "[{}] momentum = none (cumulative average) needs a public num_batches_tracked, "
                 "got a secret one",
                 name_);
      factor = 1.0 / static_cast<double>(num_batches_tracked.public_ring().item<uint64_t>());
    }
  }
  // Without running statistics the layer always uses batch statistics (torch's bn_training).
  const bool batch_stats = is_training() || !track;
  return batch_norm(x, track ? running_mean : MpcTensor(), track ? running_var : MpcTensor(),
                    weight, bias, batch_stats, factor, options_.eps());
}

BatchNorm1dImpl::BatchNorm1dImpl(int64_t num_features)
    : BatchNorm1dImpl(BatchNormOptions(num_features)) {}

BatchNorm1dImpl::BatchNorm1dImpl(const BatchNormOptions& options, Party& party)
    : BatchNormImplBase(options, party, "BatchNorm1d", {2, 3}) {}

BatchNorm2dImpl::BatchNorm2dImpl(int64_t num_features)
    : BatchNorm2dImpl(BatchNormOptions(num_features)) {}

BatchNorm2dImpl::BatchNorm2dImpl(const BatchNormOptions& options, Party& party)
    : BatchNormImplBase(options, party, "BatchNorm2d", {4}) {}

// ---- LayerNorm ----------------------------------------------------------------------------------

LayerNormImpl::LayerNormImpl(std::vector<int64_t> normalized_shape)
    : LayerNormImpl(LayerNormOptions(std::move(normalized_shape))) {}

LayerNormImpl::LayerNormImpl(const LayerNormOptions& options, Party& party) : options_(options) {
  const std::vector<int64_t>& ns = options.normalized_shape();
  VEIL_CHECK(!ns.empty() && std::all_of(ns.begin(), ns.end(), [](int64_t e) { return e >= 1; }),
             "[LayerNorm] expected a non-empty normalized_shape with extents >= 1, got [{}]",
             fmt::join(ns, ", "));
  VEIL_CHECK(std::isfinite(options.eps()) && options.eps() >= 0,
             "[LayerNorm] expected a finite eps >= 0, got {}", options.eps());
  const core::Shape shape(ns.begin(), ns.end());
  if (options.elementwise_affine()) {
    weight = register_parameter("weight", public_full(shape, 1.0, party));
    if (options.bias()) {
      bias = register_parameter("bias", public_full(shape, 0.0, party));
    }
  }
}

MpcTensor LayerNormImpl::forward(const MpcTensor& x) {
  return layer_norm(x, options_.normalized_shape(), weight, bias, options_.eps());
}

void LayerNormImpl::reset_parameters() {
  if (weight.defined()) {
    weight.assign_(public_full(weight.shape(), 1.0, weight.party()));
  }
  if (bias.defined()) {
    bias.assign_(public_full(bias.shape(), 0.0, bias.party()));
  }
}

}  // namespace veil::nn
