#pragma once
// Convolution and pooling layers: Conv2d, MaxPool2d, AvgPool2d (PyTorch semantics, NCHW).

#include <cstdint>
#include <optional>

#include "autograd/mpc_tensor.h"
#include "core/conv.h"
#include "nn/module.h"

namespace veil::nn {

/// Options of Conv2d, with fluent setters:
/// Conv2dOptions(1, 8, 3).stride(1).padding(1).dilation(1).groups(1).bias(true).
class Conv2dOptions {
 public:
  /// in_channels, out_channels >= 1 and a square kernel_size >= 1 (checked by Conv2dImpl).
  Conv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_(in_channels), out_(out_channels), kernel_(kernel_size) {}

  /// Stride in both spatial dimensions (default 1).
  Conv2dOptions& stride(int64_t s) {
    stride_ = s;
    return *this;
  }
  /// Zero padding on each side, both spatial dimensions (default 0).
  Conv2dOptions& padding(int64_t p) {
    padding_ = p;
    return *this;
  }
  /// Kernel dilation, both spatial dimensions (default 1).
  Conv2dOptions& dilation(int64_t d) {
    dilation_ = d;
    return *this;
  }
  /// Channel groups; must divide in and out channels (default 1).
  Conv2dOptions& groups(int64_t g) {
    groups_ = g;
    return *this;
  }
  /// Whether the layer has a bias [out_channels] (default true).
  Conv2dOptions& bias(bool on) {
    bias_ = on;
    return *this;
  }
  /// Public seed for the initial weights (as LinearOptions::seed); default: the party's common
  /// PRG.
  Conv2dOptions& seed(uint64_t s) {
    seed_ = s;
    return *this;
  }
  /// Stream of the public seed (default 0).
  Conv2dOptions& stream(uint64_t s) {
    stream_ = s;
    return *this;
  }

  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }
  int64_t kernel_size() const { return kernel_; }
  int64_t stride() const { return stride_; }
  int64_t padding() const { return padding_; }
  int64_t dilation() const { return dilation_; }
  int64_t groups() const { return groups_; }
  bool bias() const { return bias_; }
  std::optional<uint64_t> seed() const { return seed_; }
  uint64_t stream() const { return stream_; }
  /// The core::Conv2dParams of these options.
  core::Conv2dParams params() const;

 private:
  int64_t in_;
  int64_t out_;
  int64_t kernel_;
  int64_t stride_ = 1;
  int64_t padding_ = 0;
  int64_t dilation_ = 1;
  int64_t groups_ = 1;
  bool bias_ = true;
  std::optional<uint64_t> seed_;
  uint64_t stream_ = 0;
};

/// y = conv2d(x, weight) + bias (veil::conv2d; bias broadcast over N, H', W').
class Conv2dImpl : public Module {
 public:
  /// Conv2dOptions(in_channels, out_channels, kernel_size) with the current party.
  Conv2dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size);
  /// Creates public parameters initialised like torch.nn.Conv2d: weight and bias uniform in
  /// [-1/sqrt(fan_in), 1/sqrt(fan_in)], fan_in = in_channels/groups * k^2 (value
  /// (2u - 1) / sqrt(fan_in), u from the options' public PRG: weights in row-major order of
  /// [out, in/groups, k, k] first, then the bias). Call encrypt() to make them secret.
  /// Throws ValueError for sizes < 1, groups not dividing the channel counts, stride or
  /// dilation < 1 or padding < 0.
  explicit Conv2dImpl(const Conv2dOptions& options, Party& party = crypto::current_party());

  /// x: [N, in_channels, H, W] -> [N, out_channels, H', W'] (public or secret; see veil::conv2d
  /// for costs). Throws ValueError "[conv2d] ..." when x's channels are not in_channels, its rank
  /// is not 4 or the kernel does not fit.
  MpcTensor forward(const MpcTensor& x);

  /// Replaces the parameters with public float64 values: w [out, in/groups, k, k], b [out]
  /// (ignored when the layer has no bias). Throws ValueError on a shape or dtype mismatch or when
  /// the parameters are already secret.
  void load_weights(const core::Tensor& w, const core::Tensor& b = {});

  const Conv2dOptions& options() const { return options_; }

  /// [out_channels, in_channels/groups, kernel_size, kernel_size].
  MpcTensor weight;
  /// [out_channels]; undefined when options().bias() is false.
  MpcTensor bias;

 private:
  Conv2dOptions options_;
};

VEIL_MODULE(Conv2d);

/// veil::max_pool2d as a layer (square window, no padding). x: [N, C, H, W] -> [N, C, H', W'].
class MaxPool2dImpl : public Module {
 public:
  /// stride defaults to kernel (non-overlapping windows). ValueError for kernel or stride < 1.
  explicit MaxPool2dImpl(int64_t kernel, std::optional<int64_t> stride = std::nullopt);
  MpcTensor forward(const MpcTensor& x);
  int64_t kernel() const { return kernel_; }
  int64_t stride() const { return stride_; }

 private:
  int64_t kernel_;
  int64_t stride_;
};

VEIL_MODULE(MaxPool2d);

/// veil::avg_pool2d as a layer (square window, no padding). x: [N, C, H, W] -> [N, C, H', W'].
class AvgPool2dImpl : public Module {
 public:
  /// stride defaults to kernel. ValueError for kernel or stride < 1.
  explicit AvgPool2dImpl(int64_t kernel, std::optional<int64_t> stride = std::nullopt);
  MpcTensor forward(const MpcTensor& x);
  int64_t kernel() const { return kernel_; }
  int64_t stride() const { return stride_; }

 private:
  int64_t kernel_;
  int64_t stride_;
};

VEIL_MODULE(AvgPool2d);

}  // namespace veil::nn
