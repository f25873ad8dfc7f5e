#include "nn/conv.h"

#include <cmath>
#include <string>

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

MaxPool2dImpl::MaxPool2dImpl(int64_t kernel, std::optional<int64_t> stride)
    : kernel_(kernel), stride_(stride.value_or(kernel)) {
  VEIL_CHECK(kernel_ >= 1 && stride_ >= 1,
             "[MaxPool2d] expected kernel and stride >= 1, got {} and {}", kernel_, stride_);
}

MpcTensor MaxPool2dImpl::forward(const MpcTensor& x) {
  return max_pool2d(x, kernel_, stride_);
}

AvgPool2dImpl::AvgPool2dImpl(int64_t kernel, std::optional<int64_t> stride)
    : kernel_(kernel), stride_(stride.value_or(kernel)) {
  VEIL_CHECK(kernel_ >= 1 && stride_ >= 1,
             "[AvgPool2d] expected kernel and stride >= 1, got {} and {}", kernel_, stride_);
}

MpcTensor AvgPool2dImpl::forward(const MpcTensor& x) {
  return avg_pool2d(x, kernel_, stride_);
}

}  // namespace veil::nn
