#pragma once
// Convolution and pooling layers (PyTorch semantics, NCHW / NCL): Conv1d, Conv2d,
// ConvTranspose2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d.

#include <array>
#include <cstdint>
#include <optional>

#include "autograd/mpc_tensor.h"
#include "core/conv.h"
#include "core/tensor.h"
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

/// Options of Conv1d, with fluent setters:
/// Conv1dOptions(2, 8, 3).stride(1).padding(1).dilation(1).groups(1).bias(true).
class Conv1dOptions {
 public:
  /// in_channels, out_channels and kernel_size >= 1 (checked by Conv1dImpl).
  Conv1dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_(in_channels), out_(out_channels), kernel_(kernel_size) {}

  /// Stride (default 1).
  Conv1dOptions& stride(int64_t s) {
    stride_ = s;
    return *this;
  }
  /// Zero padding on each side (default 0).
  Conv1dOptions& padding(int64_t p) {
    padding_ = p;
    return *this;
  }
  /// Kernel dilation (default 1).
  Conv1dOptions& dilation(int64_t d) {
    dilation_ = d;
    return *this;
  }
  /// Channel groups; must divide in and out channels (default 1).
  Conv1dOptions& groups(int64_t g) {
    groups_ = g;
    return *this;
  }
  /// Whether the layer has a bias [out_channels] (default true).
  Conv1dOptions& bias(bool on) {
    bias_ = on;
    return *this;
  }
  /// Public seed for the initial weights (as Conv2dOptions::seed); default: the party's common
  /// PRG.
  Conv1dOptions& seed(uint64_t s) {
    seed_ = s;
    return *this;
  }
  /// Stream of the public seed (default 0).
  Conv1dOptions& stream(uint64_t s) {
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
  /// The core::Conv1dParams of these options.
  core::Conv1dParams params() const;

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

/// y = conv1d(x, weight) + bias (veil::conv1d; bias broadcast over N and L').
class Conv1dImpl : public Module {
 public:
  /// Conv1dOptions(in_channels, out_channels, kernel_size) with the current party.
  Conv1dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size);
  /// Creates public parameters initialised like torch.nn.Conv1d (kaiming-uniform with a = sqrt 5,
  /// i.e. uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)], fan_in = in_channels/groups * k, for the
  /// weight and the bias; drawn as Conv2d's: weights in row-major order of [out, in/groups, k],
  /// then the bias). Call encrypt() to make them secret. Throws ValueError "[Conv1d] ..." for
  /// sizes < 1, groups not dividing the channel counts, stride or dilation < 1 or padding < 0.
  explicit Conv1dImpl(const Conv1dOptions& options, Party& party = crypto::current_party());

  /// x: [N, in_channels, L] -> [N, out_channels, L'] (public or secret; see veil::conv1d for
  /// costs). Throws ValueError "[conv1d] ..." when x is not [N, in_channels, L] or the kernel does
  /// not fit.
  MpcTensor forward(const MpcTensor& x);

  /// Replaces the parameters with public float64 values: w [out, in/groups, k], b [out] (ignored
  /// when the layer has no bias). Throws ValueError on a shape or dtype mismatch or when the
  /// parameters are already secret.
  void load_weights(const core::Tensor& w, const core::Tensor& b = {});

  const Conv1dOptions& options() const { return options_; }

  /// [out_channels, in_channels/groups, kernel_size].
  MpcTensor weight;
  /// [out_channels]; undefined when options().bias() is false.
  MpcTensor bias;

 private:
  Conv1dOptions options_;
};

VEIL_MODULE(Conv1d);

/// Options of ConvTranspose2d, with fluent setters: ConvTranspose2dOptions(8, 4, 3).stride(2)
/// .padding(1).output_padding(1).groups(1).bias(true).dilation(1).
class ConvTranspose2dOptions {
 public:
  /// in_channels, out_channels >= 1 and a square kernel_size >= 1 (checked by the layer).
  ConvTranspose2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_(in_channels), out_(out_channels), kernel_(kernel_size) {}

  /// Stride in both spatial dimensions (default 1).
  ConvTranspose2dOptions& stride(int64_t s) {
    stride_ = s;
    return *this;
  }
  /// dilation (kernel_size - 1) - padding zero padding of the input (PyTorch), i.e. `padding`
  /// rows/columns removed from each side of the output (default 0).
  ConvTranspose2dOptions& padding(int64_t p) {
    padding_ = p;
    return *this;
  }
  /// Extra rows/columns at the bottom/right of the output (default 0; smaller than the stride or
  /// the dilation).
  ConvTranspose2dOptions& output_padding(int64_t p) {
    output_padding_ = p;
    return *this;
  }
  /// Channel groups; must divide in and out channels (default 1).
  ConvTranspose2dOptions& groups(int64_t g) {
    groups_ = g;
    return *this;
  }
  /// Whether the layer has a bias [out_channels] (default true).
  ConvTranspose2dOptions& bias(bool on) {
    bias_ = on;
    return *this;
  }
  /// Kernel dilation, both spatial dimensions (default 1).
  ConvTranspose2dOptions& dilation(int64_t d) {
    dilation_ = d;
    return *this;
  }
  /// Public seed for the initial weights (as Conv2dOptions::seed).
  ConvTranspose2dOptions& seed(uint64_t s) {
    seed_ = s;
    return *this;
  }
  /// Stream of the public seed (default 0).
  ConvTranspose2dOptions& stream(uint64_t s) {
    stream_ = s;
    return *this;
  }

  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }
  int64_t kernel_size() const { return kernel_; }
  int64_t stride() const { return stride_; }
  int64_t padding() const { return padding_; }
  int64_t output_padding() const { return output_padding_; }
  int64_t groups() const { return groups_; }
  bool bias() const { return bias_; }
  int64_t dilation() const { return dilation_; }
  std::optional<uint64_t> seed() const { return seed_; }
  uint64_t stream() const { return stream_; }
  /// The core::ConvTranspose2dParams of these options.
  core::ConvTranspose2dParams params() const;

 private:
  int64_t in_;
  int64_t out_;
  int64_t kernel_;
  int64_t stride_ = 1;
  int64_t padding_ = 0;
  int64_t output_padding_ = 0;
  int64_t groups_ = 1;
  bool bias_ = true;
  int64_t dilation_ = 1;
  std::optional<uint64_t> seed_;
  uint64_t stream_ = 0;
};

/// y = conv_transpose2d(x, weight) + bias (veil::conv_transpose2d; bias broadcast over N, H, W).
class ConvTranspose2dImpl : public Module {
 public:
  /// ConvTranspose2dOptions(in_channels, out_channels, kernel_size) with the current party.
  ConvTranspose2dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size);
  /// Creates public parameters initialised like torch.nn.ConvTranspose2d: kaiming-uniform with
  /// a = sqrt 5, i.e. weight and bias uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] with PyTorch's
  /// fan_in of the weight [in, out/groups, k, k]: fan_in = out_channels/groups * k^2 (weights in
  /// row-major order first, then the bias, from the options' public PRG). Call encrypt() to make
  /// them secret. Throws ValueError "[ConvTranspose2d] ..." for sizes < 1, groups not dividing
  /// the channel counts, stride or dilation < 1, padding < 0, or an output padding not smaller
  /// than the stride or the dilation.
  explicit ConvTranspose2dImpl(const ConvTranspose2dOptions& options,
                               Party& party = crypto::current_party());

  /// x: [N, in_channels, H, W] -> [N, out_channels, H_o, W_o] (public or secret; see
  /// veil::conv_transpose2d for costs). Throws ValueError "[conv_transpose2d] ..." when x is not
  /// [N, in_channels, H, W] or the output would be empty.
  MpcTensor forward(const MpcTensor& x);

  /// Replaces the parameters with public float64 values: w [in, out/groups, k, k], b [out].
  /// Throws ValueError on a shape or dtype mismatch or when the parameters are already secret.
  void load_weights(const core::Tensor& w, const core::Tensor& b = {});

  const ConvTranspose2dOptions& options() const { return options_; }

  /// [in_channels, out_channels/groups, kernel_size, kernel_size] (PyTorch's layout).
  MpcTensor weight;
  /// [out_channels]; undefined when options().bias() is false.
  MpcTensor bias;

 private:
  ConvTranspose2dOptions options_;
};

VEIL_MODULE(ConvTranspose2d);

/// A pair of spatial extents {height, width} (PyTorch's ExpandingArray<2>).
using Size2 = std::array<int64_t, 2>;

/// Options of MaxPool2d, with fluent setters:
/// MaxPool2dOptions(3).stride(2).padding(1), MaxPool2dOptions({3, 2}).stride({2, 1}).
class MaxPool2dOptions {
 public:
  /// A square kernel x kernel window.
  explicit MaxPool2dOptions(int64_t kernel) : kernel_{kernel, kernel} {}
  /// A kernel[0] x kernel[1] window.
  explicit MaxPool2dOptions(Size2 kernel) : kernel_(kernel) {}
  /// Stride (default: the kernel, i.e. non-overlapping windows).
  MaxPool2dOptions& stride(int64_t s) { return stride(Size2{s, s}); }
  MaxPool2dOptions& stride(Size2 s) {
    stride_ = s;
    return *this;
  }
  /// Implicit padding on each side (default 0; at most half the kernel). Padded positions never
  /// win the maximum (PyTorch pads with -inf).
  MaxPool2dOptions& padding(int64_t p) { return padding(Size2{p, p}); }
  MaxPool2dOptions& padding(Size2 p) {
    padding_ = p;
    return *this;
  }
  /// Spacing between window elements (default 1).
  MaxPool2dOptions& dilation(int64_t d) { return dilation(Size2{d, d}); }
  MaxPool2dOptions& dilation(Size2 d) {
    dilation_ = d;
    return *this;
  }

  Size2 kernel_size() const { return kernel_; }
  Size2 stride() const { return stride_.value_or(kernel_); }
  Size2 padding() const { return padding_; }
  Size2 dilation() const { return dilation_; }
  /// The core::Pool2dParams of these options.
  core::Pool2dParams params() const;

 private:
  Size2 kernel_;
  std::optional<Size2> stride_;
  Size2 padding_{0, 0};
  Size2 dilation_{1, 1};
};

/// veil::max_pool2d (autograd/conv_ops.h) as a layer. x: [N, C, H, W] -> [N, C, H', W'].
class MaxPool2dImpl : public Module {
 public:
  /// Square window, no padding; stride defaults to kernel (non-overlapping windows). ValueError
  /// for kernel or stride < 1.
  explicit MaxPool2dImpl(int64_t kernel, std::optional<int64_t> stride = std::nullopt);
  /// Any window (see MaxPool2dOptions). Throws ValueError "[MaxPool2d] ..." for a kernel, stride
  /// or dilation < 1 or a padding < 0 or above half the kernel.
  explicit MaxPool2dImpl(const MaxPool2dOptions& options);
  /// Secret or public x; cost and backward as veil::max_pool2d(x, core::Pool2dParams).
  MpcTensor forward(const MpcTensor& x);
  /// Kernel and stride along H (the only ones for a square window).
  int64_t kernel() const { return options_.kernel_size()[0]; }
  int64_t stride() const { return options_.stride()[0]; }
  const MaxPool2dOptions& options() const { return options_; }

 private:
  MaxPool2dOptions options_;
};

VEIL_MODULE(MaxPool2d);

/// Options of AvgPool2d, with fluent setters: AvgPool2dOptions(3).stride(2).padding(1)
/// .count_include_pad(false).
class AvgPool2dOptions {
 public:
  /// A square kernel x kernel window.
  explicit AvgPool2dOptions(int64_t kernel) : kernel_{kernel, kernel} {}
  /// A kernel[0] x kernel[1] window.
  explicit AvgPool2dOptions(Size2 kernel) : kernel_(kernel) {}
  /// Stride (default: the kernel).
  AvgPool2dOptions& stride(int64_t s) { return stride(Size2{s, s}); }
  AvgPool2dOptions& stride(Size2 s) {
    stride_ = s;
    return *this;
  }
  /// Zero padding on each side (default 0; at most half the kernel).
  AvgPool2dOptions& padding(int64_t p) { return padding(Size2{p, p}); }
  AvgPool2dOptions& padding(Size2 p) {
    padding_ = p;
    return *this;
  }
  /// Whether the padding zeros count in the divisor (default true, as PyTorch): true divides
  /// every window by kernel_h kernel_w, false by the number of its positions inside the input.
  AvgPool2dOptions& count_include_pad(bool on) {
    count_include_pad_ = on;
    return *this;
  }

  Size2 kernel_size() const { return kernel_; }
  Size2 stride() const { return stride_.value_or(kernel_); }
  Size2 padding() const { return padding_; }
  bool count_include_pad() const { return count_include_pad_; }
  /// The core::Pool2dParams of these options.
  core::Pool2dParams params() const;

 private:
  Size2 kernel_;
  std::optional<Size2> stride_;
  Size2 padding_{0, 0};
  bool count_include_pad_ = true;
};

/// veil::avg_pool2d (autograd/conv_ops.h) as a layer. x: [N, C, H, W] -> [N, C, H', W'].
class AvgPool2dImpl : public Module {
 public:
  /// Square window, no padding; stride defaults to kernel. ValueError for kernel or stride < 1.
  explicit AvgPool2dImpl(int64_t kernel, std::optional<int64_t> stride = std::nullopt);
  /// Any window (see AvgPool2dOptions). Throws ValueError "[AvgPool2d] ..." for a kernel or stride
  /// < 1 or a padding < 0 or above half the kernel.
  explicit AvgPool2dImpl(const AvgPool2dOptions& options);
  /// Secret or public x; cost (one truncation) and backward as veil::avg_pool2d.
  MpcTensor forward(const MpcTensor& x);
  /// Kernel and stride along H (the only ones for a square window).
  int64_t kernel() const { return options_.kernel_size()[0]; }
  int64_t stride() const { return options_.stride()[0]; }
  const AvgPool2dOptions& options() const { return options_; }

 private:
  AvgPool2dOptions options_;
};

VEIL_MODULE(AvgPool2d);

/// veil::adaptive_avg_pool2d as a layer: x [N, C, H, W] -> [N, C, oh, ow] (PyTorch's window rule;
/// AdaptiveAvgPool2d(1) is global average pooling). Cost: one truncation.
class AdaptiveAvgPool2dImpl : public Module {
 public:
  /// Square output size x size. ValueError "[AdaptiveAvgPool2d] ..." for extents < 1.
  explicit AdaptiveAvgPool2dImpl(int64_t output_size);
  /// Output oh x ow.
  AdaptiveAvgPool2dImpl(int64_t oh, int64_t ow);
  /// Output {oh, ow}.
  explicit AdaptiveAvgPool2dImpl(Size2 output_size);
  MpcTensor forward(const MpcTensor& x);
  Size2 output_size() const { return output_size_; }

 private:
  Size2 output_size_;
};

VEIL_MODULE(AdaptiveAvgPool2d);

/// veil::adaptive_max_pool2d as a layer: x [N, C, H, W] -> [N, C, oh, ow]. Exact; cost as
/// max_pool2d over the largest window.
class AdaptiveMaxPool2dImpl : public Module {
 public:
  /// Square output size x size. ValueError "[AdaptiveMaxPool2d] ..." for extents < 1.
  explicit AdaptiveMaxPool2dImpl(int64_t output_size);
  /// Output oh x ow.
  AdaptiveMaxPool2dImpl(int64_t oh, int64_t ow);
  /// Output {oh, ow}.
  explicit AdaptiveMaxPool2dImpl(Size2 output_size);
  MpcTensor forward(const MpcTensor& x);
  Size2 output_size() const { return output_size_; }

 private:
  Size2 output_size_;
};

VEIL_MODULE(AdaptiveMaxPool2d);

}  // namespace veil::nn
