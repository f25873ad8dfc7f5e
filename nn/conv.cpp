#include "nn/conv.h"

#include <cmath>
#include <string>

#include "autograd/conv_ops.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "crypto/prg.h"
#include "nn/init.h"

namespace veil::nn {

core::Conv2dParams Conv2dOptions::params() const {
  core::Conv2dParams p;
  p.stride_h = p.stride_w = stride_;
  p.pad_h = p.pad_w = padding_;
  p.dilation_h = p.dilation_w = dilation_;
  p.groups = groups_;
  return p;
}

Conv2dImpl::Conv2dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
    : Conv2dImpl(Conv2dOptions(in_channels, out_channels, kernel_size)) {}

Conv2dImpl::Conv2dImpl(const Conv2dOptions& options, Party& party) : options_(options) {
  const int64_t in = options.in_channels();
  const int64_t out = options.out_channels();
  const int64_t k = options.kernel_size();
  const int64_t g = options.groups();
  VEIL_CHECK(in >= 1 && out >= 1 && k >= 1 && g >= 1,
             "[Conv2d] expected in_channels, out_channels, kernel_size, groups >= 1, got {}, {}, "
             "{}, {}",
             in, out, k, g);
  VEIL_CHECK(in % g == 0 && out % g == 0,
             "[Conv2d] expected groups = {} to divide in_channels = {} and out_channels = {}", g,
             in, out);
  VEIL_CHECK(options.stride() >= 1 && options.dilation() >= 1 && options.padding() >= 0,
             "[Conv2d] expected stride, dilation >= 1 and padding >= 0, got {}",
             core::conv2d_params_str(options.params()));
  const int64_t fan_in = in / g * k * k;
  auto [w, b] = detail::fan_in_uniform({out, in / g, k, k}, options.bias() ? out : 0, fan_in,
                                       options.seed(), options.stream(), party);
  weight = register_parameter("weight", MpcTensor::from_public(w, party));
  if (options.bias()) {
    bias = register_parameter("bias", MpcTensor::from_public(b, party));
  }
}

MpcTensor Conv2dImpl::forward(const MpcTensor& x) {
  VEIL_CHECK(x.defined() && x.dim() == 4 && x.size(1) == options_.in_channels(),
             "[conv2d] expected input [N, {}, H, W], got {}", options_.in_channels(),
             x.defined() ? core::shape_str(x.shape()) : std::string("an undefined tensor"));
  MpcTensor y = conv2d(x, weight, options_.params());  // [N, out, H', W']
  if (!bias.defined()) {
    return y;
  }
  return add(y, reshape(bias, {options_.out_channels(), 1, 1}));  // + [out, 1, 1]
}

void Conv2dImpl::load_weights(const core::Tensor& w, const core::Tensor& b) {
  detail::load_weight_and_bias("Conv2d::load_weights", weight, bias, w, b);
}

// ---- Conv1d ---------------------------------------------------------------------------------

core::Conv1dParams Conv1dOptions::params() const {
  core::Conv1dParams p;
  p.stride = stride_;
  p.padding = padding_;
  p.dilation = dilation_;
  p.groups = groups_;
  return p;
}

Conv1dImpl::Conv1dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
    : Conv1dImpl(Conv1dOptions(in_channels, out_channels, kernel_size)) {}

Conv1dImpl::Conv1dImpl(const Conv1dOptions& options, Party& party) : options_(options) {
  const int64_t in = options.in_channels();
  const int64_t out = options.out_channels();
  const int64_t k = options.kernel_size();
  const int64_t g = options.groups();
  VEIL_CHECK(in >= 1 && out >= 1 && k >= 1 && g >= 1,
             "[Conv1d] expected in_channels, out_channels, kernel_size, groups >= 1, got {}, {}, "
             "{}, {}",
             in, out, k, g);
  VEIL_CHECK(in % g == 0 && out % g == 0,
             "[Conv1d] expected groups = {} to divide in_channels = {} and out_channels = {}", g,
             in, out);
  VEIL_CHECK(options.stride() >= 1 && options.dilation() >= 1 && options.padding() >= 0,
             "[Conv1d] expected stride, dilation >= 1 and padding >= 0, got stride {}, padding "
             "{}, dilation {}",
             options.stride(), options.padding(), options.dilation());
  auto [w, b] = detail::fan_in_uniform({out, in / g, k}, options.bias() ? out : 0, in / g * k,
                                       options.seed(), options.stream(), party);
  weight = register_parameter("weight", MpcTensor::from_public(w, party));
  if (options.bias()) {
    bias = register_parameter("bias", MpcTensor::from_public(b, party));
  }
}

MpcTensor Conv1dImpl::forward(const MpcTensor& x) {
  VEIL_CHECK(x.defined() && x.dim() == 3 && x.size(1) == options_.in_channels(),
             "[conv1d] expected input [N, {}, L], got {}", options_.in_channels(),
             x.defined() ? core::shape_str(x.shape()) : std::string("an undefined tensor"));
  MpcTensor y = conv1d(x, weight, options_.params());  // [N, out, L']
  if (!bias.defined()) {
    return y;
  }
  return add(y, reshape(bias, {options_.out_channels(), 1}));  // + [out, 1]
}

void Conv1dImpl::load_weights(const core::Tensor& w, const core::Tensor& b) {
  detail::load_weight_and_bias("Conv1d::load_weights", weight, bias, w, b);
}

// ---- ConvTranspose2d ------------------------------------------------------------------------

core::ConvTranspose2dParams ConvTranspose2dOptions::params() const {
  core::ConvTranspose2dParams p;
  p.stride_h = p.stride_w = stride_;
  p.pad_h = p.pad_w = padding_;
  p.output_pad_h = p.output_pad_w = output_padding_;
  p.dilation_h = p.dilation_w = dilation_;
  p.groups = groups_;
  return p;
}

ConvTranspose2dImpl::ConvTranspose2dImpl(int64_t in_channels,
                                         int64_t out_channels,
                                         int64_t kernel_size)
    : ConvTranspose2dImpl(ConvTranspose2dOptions(in_channels, out_channels, kernel_size)) {}

ConvTranspose2dImpl::ConvTranspose2dImpl(const ConvTranspose2dOptions& options, Party& party)
    : options_(options) {
  const int64_t in = options.in_channels();
  const int64_t out = options.out_channels();
  const int64_t k = options.kernel_size();
  const int64_t g = options.groups();
  VEIL_CHECK(in >= 1 && out >= 1 && k >= 1 && g >= 1,
             "[ConvTranspose2d] expected in_channels, out_channels, kernel_size, groups >= 1, got "
             "{}, {}, {}, {}",
             in, out, k, g);
  VEIL_CHECK(
      in % g == 0 && out % g == 0,
      "[ConvTranspose2d] expected groups = {} to divide in_channels = {} and out_channels = {}", g,
      in, out);
  const int64_t s = options.stride();
  const int64_t d = options.dilation();
  const int64_t op = options.output_padding();
  VEIL_CHECK(s >= 1 && d >= 1 && options.padding() >= 0 && op >= 0 && (op < s || op < d),
             "[ConvTranspose2d] expected stride, dilation >= 1, padding >= 0 and 0 <= "
             "output_padding < max(stride, dilation), got {}",
             core::conv_transpose2d_params_str(options.params()));
  // PyTorch's fan_in of a [in, out/groups, k, k] weight is its dim 1 times the kernel area.
  auto [w, b] = detail::fan_in_uniform({in, out / g, k, k}, options.bias() ? out : 0,
                                       out / g * k * k, options.seed(), options.stream(), party);
  weight = register_parameter("weight", MpcTensor::from_public(w, party));
  if (options.bias()) {
    bias = register_parameter("bias", MpcTensor::from_public(b, party));
  }
}

MpcTensor ConvTranspose2dImpl::forward(const MpcTensor& x) {
  VEIL_CHECK(x.defined() && x.dim() == 4 && x.size(1) == options_.in_channels(),
             "[conv_transpose2d] expected input [N, {}, H, W], got {}", options_.in_channels(),
             x.defined() ? core::shape_str(x.shape()) : std::string("an undefined tensor"));
  MpcTensor y = conv_transpose2d(x, weight, options_.params());  // [N, out, H_o, W_o]
  if (!bias.defined()) {
    return y;
  }
  return add(y, reshape(bias, {options_.out_channels(), 1, 1}));  // + [out, 1, 1]
}

void ConvTranspose2dImpl::load_weights(const core::Tensor& w, const core::Tensor& b) {
  detail::load_weight_and_bias("ConvTranspose2d::load_weights", weight, bias, w, b);
}

// ---- pooling --------------------------------------------------------------------------------

namespace {

core::Pool2dParams pool_params(Size2 kernel, Size2 stride, Size2 padding, Size2 dilation) {
  core::Pool2dParams p;
  p.kernel_h = kernel[0];
  p.kernel_w = kernel[1];
  p.stride_h = stride[0];
  p.stride_w = stride[1];
  p.pad_h = padding[0];
  p.pad_w = padding[1];
  p.dilation_h = dilation[0];
  p.dilation_w = dilation[1];
  return p;
}

void check_pool(const core::Pool2dParams& p, const char* layer) {
  VEIL_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1 &&
                 p.dilation_h >= 1 && p.dilation_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0 &&
                 2 * p.pad_h <= p.kernel_h && 2 * p.pad_w <= p.kernel_w,
             "[{}] expected kernel, stride and dilation >= 1 and 0 <= padding <= kernel / 2, got "
             "{}",
             layer, core::pool2d_params_str(p));
}

Size2 checked_output_size(Size2 s, const char* layer) {
  VEIL_CHECK(s[0] >= 1 && s[1] >= 1, "[{}] expected an output size of two extents >= 1, got {}x{}",
             layer, s[0], s[1]);
  return s;
}

}  // namespace

core::Pool2dParams MaxPool2dOptions::params() const {
  return pool_params(kernel_, stride(), padding_, dilation_);
}

core::Pool2dParams AvgPool2dOptions::params() const {
  core::Pool2dParams p = pool_params(kernel_, stride(), padding_, {1, 1});
  p.count_include_pad = count_include_pad_;
  return p;
}

MaxPool2dImpl::MaxPool2dImpl(int64_t kernel, std::optional<int64_t> stride)
    : MaxPool2dImpl(MaxPool2dOptions(kernel).stride(stride.value_or(kernel))) {}

MaxPool2dImpl::MaxPool2dImpl(const MaxPool2dOptions& options) : options_(options) {
  check_pool(options_.params(), "MaxPool2d");
}

MpcTensor MaxPool2dImpl::forward(const MpcTensor& x) {
  return max_pool2d(x, options_.params());
}

AvgPool2dImpl::AvgPool2dImpl(int64_t kernel, std::optional<int64_t> stride)
    : AvgPool2dImpl(AvgPool2dOptions(kernel).stride(stride.value_or(kernel))) {}

AvgPool2dImpl::AvgPool2dImpl(const AvgPool2dOptions& options) : options_(options) {
  check_pool(options_.params(), "AvgPool2d");
}

MpcTensor AvgPool2dImpl::forward(const MpcTensor& x) {
  return avg_pool2d(x, options_.params());
}

AdaptiveAvgPool2dImpl::AdaptiveAvgPool2dImpl(int64_t output_size)
    : AdaptiveAvgPool2dImpl(Size2{output_size, output_size}) {}

AdaptiveAvgPool2dImpl::AdaptiveAvgPool2dImpl(int64_t oh, int64_t ow)
    : AdaptiveAvgPool2dImpl(Size2{oh, ow}) {}

AdaptiveAvgPool2dImpl::AdaptiveAvgPool2dImpl(Size2 output_size)
    : output_size_(checked_output_size(output_size, "AdaptiveAvgPool2d")) {}

MpcTensor AdaptiveAvgPool2dImpl::forward(const MpcTensor& x) {
  return adaptive_avg_pool2d(x, {output_size_[0], output_size_[1]});
}

AdaptiveMaxPool2dImpl::AdaptiveMaxPool2dImpl(int64_t output_size)
    : AdaptiveMaxPool2dImpl(Size2{output_size, output_size}) {}

AdaptiveMaxPool2dImpl::AdaptiveMaxPool2dImpl(int64_t oh, int64_t ow)
    : AdaptiveMaxPool2dImpl(Size2{oh, ow}) {}

AdaptiveMaxPool2dImpl::AdaptiveMaxPool2dImpl(Size2 output_size)
    : output_size_(checked_output_size(output_size, "AdaptiveMaxPool2d")) {}

MpcTensor AdaptiveMaxPool2dImpl::forward(const MpcTensor& x) {
  return adaptive_max_pool2d(x, {output_size_[0], output_size_[1]});
}

}  // namespace veil::nn
