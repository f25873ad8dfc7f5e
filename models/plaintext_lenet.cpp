#include "models/plaintext_lenet.h"

#include <algorithm>
#include <cmath>

#include "core/conv.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/prg.h"

namespace veil::models {

namespace {

using core::DType;
using core::Shape;
using core::Tensor;

constexpr int64_t kImage = 28;    // input height and width
constexpr int64_t kKernel = 5;    // both convolutions
constexpr int64_t kPooled1 = 14;  // after conv1 (padding 2) and the first pool
constexpr int64_t kConv2 = 10;    // after conv2 (no padding)
constexpr int64_t kPooled2 = 5;   // after the second pool

// Parameter positions in init_lenet_parameters' order.
enum Param : std::size_t {
  kConv1W,
  kBn1W,
  kBn1B,
  kConv2W,
  kBn2W,
  kBn2B,
  kFc1W,
  kFc1B,
  kFc2W,
  kFc2B,
  kFc3W,
  kFc3B,
  kNumParams
};
// Buffer positions.
enum Buffer : std::size_t { kBn1Mean, kBn1Var, kBn2Mean, kBn2Var, kNumBuffers };

core::Conv2dParams conv_params(int64_t pad) {
  core::Conv2dParams p;
  p.pad_h = p.pad_w = pad;
  return p;
}

std::vector<std::pair<std::string, Shape>> parameter_shapes(const LeNetConfig& c) {
  const int64_t c1 = c.conv1_channels;
  const int64_t c2 = c.conv2_channels;
  return {{"conv1.weight", {c1, 1, kKernel, kKernel}},
          {"bn1.weight", {c1}},
          {"bn1.bias", {c1}},
          {"conv2.weight", {c2, c1, kKernel, kKernel}},
          {"bn2.weight", {c2}},
          {"bn2.bias", {c2}},
          {"fc1.weight", {c.flat_features(), c.fc1_features}},
          {"fc1.bias", {c.fc1_features}},
          {"fc2.weight", {c.fc1_features, c.fc2_features}},
          {"fc2.bias", {c.fc2_features}},
          {"fc3.weight", {c.fc2_features, c.classes}},
          {"fc3.bias", {c.classes}}};
}

// Uniform (2u - 1) / sqrt(fan_in) fill of `tensors`, in order, from one public PRG stream.
void fill_fan_in_uniform(const std::vector<Tensor*>& tensors,
                         int64_t fan_in,
                         uint64_t seed,
                         uint64_t stream) {
  crypto::Prg prg(crypto::Prg::public_seed(seed, stream));
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  for (Tensor* t : tensors) {
    double* p = t->data<double>();
    for (int64_t i = 0; i < t->numel(); ++i) {
      p[i] = (2.0 * prg.uniform_double() - 1.0) * bound;
    }
  }
}

// ---- layers on contiguous float64 tensors ------------------------------------------------------

// Per-channel statistics and normalised values of x [B, C, S] (S = H W).
struct BatchNormOut {
  Tensor y;                  // gamma x_hat + beta, [B, C, S]
  Tensor xhat;               // [B, C, S]
  std::vector<double> istd;  // 1 / sqrt(var + eps) per channel
  std::vector<double> mean;  // batch mean per channel (training mode)
  std::vector<double> var;   // biased batch variance per channel (training mode)
};

BatchNormOut batch_norm_forward(const Tensor& x,
                                const Tensor& gamma,
                                const Tensor& beta,
                                const Tensor* running_mean,  // null: batch statistics
                                const Tensor* running_var,
                                double eps) {
  const int64_t b = x.size(0);
  const int64_t c = x.size(1);
  const int64_t s = x.numel() / (b * c);
  const double* xp = x.data<double>();
  const double* gp = gamma.data<double>();
  const double* bp = beta.data<double>();
  BatchNormOut out;
  out.y = Tensor::empty(x.shape(), DType::kFloat64);
  out.xhat = Tensor::empty(x.shape(), DType::kFloat64);
  out.istd.resize(static_cast<std::size_t>(c));
  out.mean.resize(static_cast<std::size_t>(c));
  out.var.resize(static_cast<std::size_t>(c));
  double* yp = out.y.data<double>();
  double* hp = out.xhat.data<double>();
  const double n = static_cast<double>(b * s);
  for (int64_t ch = 0; ch < c; ++ch) {
    const auto k = static_cast<std::size_t>(ch);
    double mean = 0;
    double var = 0;
    if (running_mean == nullptr) {
      for (int64_t i = 0; i < b; ++i) {
        const double* row = xp + (i * c + ch) * s;
        for (int64_t j = 0; j < s; ++j) {
          mean += row[j];
        }
      }
      mean /= n;
      for (int64_t i = 0; i < b; ++i) {
        const double* row = xp + (i * c + ch) * s;
        for (int64_t j = 0; j < s; ++j) {
          var += (row[j] - mean) * (row[j] - mean);
        }
      }
      var /= n;
    } else {
      mean = running_mean->data<double>()[ch];
      var = running_var->data<double>()[ch];
    }
    out.mean[k] = mean;
    out.var[k] = var;
    out.istd[k] = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < b; ++i) {
      const int64_t base = (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j) {
        const double h = (xp[base + j] - mean) * out.istd[k];
        hp[base + j] = h;
        yp[base + j] = gp[ch] * h + bp[ch];
      }
    }
  }
  return out;
}

// Backward of batch_norm_forward. Training mode (batch statistics):
//   dx = istd / n (n gh - sum gh - x_hat sum(gh x_hat)),  gh = g gamma;
// eval mode (constant statistics): dx = gh istd. dgamma = sum g x_hat, dbeta = sum g.
Tensor batch_norm_backward(const Tensor& g,
                           const BatchNormOut& fw,
                           const Tensor& gamma,
                           bool training,
                           Tensor& dgamma,
                           Tensor& dbeta) {
  const int64_t b = g.size(0);
  const int64_t c = g.size(1);
  const int64_t s = g.numel() / (b * c);
  const double* gp = g.data<double>();
  const double* hp = fw.xhat.data<double>();
  const double* gam = gamma.data<double>();
  Tensor dx = Tensor::empty(g.shape(), DType::kFloat64);
  dgamma = Tensor::empty({c}, DType::kFloat64);
  dbeta = Tensor::empty({c}, DType::kFloat64);
  double* dxp = dx.data<double>();
  const double n = static_cast<double>(b * s);
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum_g = 0;
    double sum_gh = 0;
    for (int64_t i = 0; i < b; ++i) {
      const int64_t base = (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j) {
        sum_g += gp[base + j];
        sum_gh += gp[base + j] * hp[base + j];
      }
    }
    dgamma.data<double>()[ch] = sum_gh;
    dbeta.data<double>()[ch] = sum_g;
    const double istd = fw.istd[static_cast<std::size_t>(ch)];
    for (int64_t i = 0; i < b; ++i) {
      const int64_t base = (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j) {
        const double gh = gp[base + j] * gam[ch];
        dxp[base + j] =
            training ? istd / n * (n * gh - gam[ch] * sum_g - hp[base + j] * gam[ch] * sum_gh)
                     : gh * istd;
      }
    }
  }
  return dx;
}

// 2x2 max pooling with stride 2 of x [B, C, H, W] (H, W even). `argmax` receives, per output,
// the flat input index of the first maximum in row-major window order.
Tensor max_pool2(const Tensor& x, std::vector<int64_t>& argmax) {
  const int64_t bc = x.size(0) * x.size(1);
  const int64_t h = x.size(2);
  const int64_t w = x.size(3);
  const int64_t oh = h / 2;
  const int64_t ow = w / 2;
  Tensor out = Tensor::empty({x.size(0), x.size(1), oh, ow}, DType::kFloat64);
  argmax.assign(static_cast<std::size_t>(out.numel()), 0);
  const double* xp = x.data<double>();
  double* op = out.data<double>();
  int64_t o = 0;
  for (int64_t m = 0; m < bc; ++m) {
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j, ++o) {
        int64_t best = m * h * w + 2 * i * w + 2 * j;
        for (int64_t u = 0; u < 2; ++u) {
          for (int64_t v = 0; v < 2; ++v) {
            const int64_t idx = m * h * w + (2 * i + u) * w + 2 * j + v;
            if (xp[idx] > xp[best]) {
              best = idx;
            }
          }
        }
        op[o] = xp[best];
        argmax[static_cast<std::size_t>(o)] = best;
      }
    }
  }
  return out;
}

// Adjoint of max_pool2: routes each output gradient to its window's maximum.
Tensor max_pool2_backward(const Tensor& g, const std::vector<int64_t>& argmax, const Shape& in) {
  Tensor dx = Tensor::zeros(in, DType::kFloat64);
  const double* gp = g.data<double>();
  double* dp = dx.data<double>();
  for (std::size_t o = 0; o < argmax.size(); ++o) {
    dp[argmax[o]] += gp[o];
  }
  return dx;
}

// g * [pre > 0] (ReLU backward from the pre-activation).
Tensor relu_backward(const Tensor& g, const Tensor& pre) {
  return core::mul(g, core::step(pre));
}

// Mean softmax cross-entropy of logits [B, C] against labels [B]; with dlogits non-null it
// receives (softmax - onehot) / B.
double softmax_cross_entropy(const Tensor& logits, const Tensor& labels, Tensor* dlogits) {
  const Tensor z = logits.contiguous();
  const int64_t b = z.size(0);
  const int64_t c = z.size(1);
  const double* zp = z.data<double>();
  const auto lv = labels.to_vector<int64_t>();
  double* dp = nullptr;
  if (dlogits != nullptr) {
    *dlogits = Tensor::empty({b, c}, DType::kFloat64);
    dp = dlogits->data<double>();
  }
  double total = 0;
  for (int64_t i = 0; i < b; ++i) {
    const double* row = zp + i * c;
    const double m = *std::max_element(row, row + c);
    double s = 0;
    for (int64_t j = 0; j < c; ++j) {
      s += std::exp(row[j] - m);
    }
    const double lse = m + std::log(s);
    const int64_t y = lv[static_cast<std::size_t>(i)];
    total += lse - row[y];
    if (dp != nullptr) {
      for (int64_t j = 0; j < c; ++j) {
        dp[i * c + j] = (std::exp(row[j] - lse) - (j == y ? 1.0 : 0.0)) / static_cast<double>(b);
      }
    }
  }
  return total / static_cast<double>(b);
}

void check_labels(const Tensor& labels, int64_t batch, int64_t classes, const char* op) {
  VEIL_CHECK(labels.defined() && labels.dtype() == DType::kInt64 && labels.dim() == 1 &&
                 labels.size(0) == batch,
             "[{}] expected int64 labels [{}], got {}", op, batch,
             labels.defined() ? labels.str() : "undefined");
  const auto lv = labels.to_vector<int64_t>();
  for (std::size_t i = 0; i < lv.size(); ++i) {
    VEIL_CHECK(lv[i] >= 0 && lv[i] < classes, "[{}] label at row {} outside [0, {})", op, i,
               classes);
  }
}

}  // namespace

// ---- configuration and initialisation
// ------------------------------------------------------------

std::string LeNetConfig::str() const {
  return fmt::format("lenet {}-{}-{}-{}-{}", conv1_channels, conv2_channels, fc1_features,
                     fc2_features, classes);
}

void LeNetConfig::validate(const char* op) const {
  VEIL_CHECK(conv1_channels >= 1 && conv2_channels >= 1 && fc1_features >= 1 && fc2_features >= 1 &&
                 classes >= 2,
             "[{}] expected widths >= 1 and classes >= 2, got {}", op, str());
  VEIL_CHECK(bn_eps > 0 && bn_momentum >= 0 && bn_momentum <= 1,
             "[{}] expected bn_eps > 0 and bn_momentum in [0, 1], got {} and {}", op, bn_eps,
             bn_momentum);
}

NamedTensors init_lenet_parameters(const LeNetConfig& config, uint64_t seed) {
  config.validate("init_lenet_parameters");
  NamedTensors params;
  for (const auto& [name, shape] : parameter_shapes(config)) {
    params.emplace_back(name, Tensor::zeros(shape, DType::kFloat64));
  }
  for (const std::size_t i : {kBn1W, kBn2W}) {
    params[i].second = Tensor::full<double>(params[i].second.shape(), 1.0);
  }
  fill_fan_in_uniform({&params[kConv1W].second}, kKernel * kKernel, seed, 2000);
  fill_fan_in_uniform({&params[kConv2W].second}, config.conv1_channels * kKernel * kKernel, seed,
                      2001);
  fill_fan_in_uniform({&params[kFc1W].second, &params[kFc1B].second}, config.flat_features(), seed,
                      2002);
  fill_fan_in_uniform({&params[kFc2W].second, &params[kFc2B].second}, config.fc1_features, seed,
                      2003);
  fill_fan_in_uniform({&params[kFc3W].second, &params[kFc3B].second}, config.fc2_features, seed,
                      2004);
  return params;
}

// ---- PlaintextLeNet
// --------------------------------------------------------------------------------

struct PlaintextLeNet::Cache {
  Tensor x0;  // [B, 1, 28, 28]
  Tensor z1;  // conv1 output [B, c1, 28, 28]
  BatchNormOut bn1;
  std::vector<int64_t> pool1;
  Tensor p1;  // [B, c1, 14, 14]
  BatchNormOut bn2;
  std::vector<int64_t> pool2;
  Tensor flat;  // [B, 25 c2]
  Tensor z3;    // fc1 pre-activation
  Tensor h1;    // relu(z3)
  Tensor z4;
  Tensor h2;
};

PlaintextLeNet::PlaintextLeNet(const LeNetConfig& config, const NamedTensors& parameters)
    : config_(config) {
  config.validate("PlaintextLeNet");
  const auto shapes = parameter_shapes(config);
  VEIL_CHECK(parameters.size() == shapes.size(), "[PlaintextLeNet] expected {} parameters, got {}",
             shapes.size(), parameters.size());
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const auto& [name, t] = parameters[i];
    VEIL_CHECK(name == shapes[i].first && t.defined() && t.dtype() == DType::kFloat64 &&
                   t.shape() == shapes[i].second,
               "[PlaintextLeNet] parameter {}: expected '{}' float64 {}, got '{}' {}", i,
               shapes[i].first, core::shape_str(shapes[i].second), name,
               t.defined() ? t.str() : "undefined");
    parameters_.emplace_back(name, t.contiguous().clone());
  }
  for (const auto& [bn, c] : {std::pair<std::string, int64_t>{"bn1", config.conv1_channels},
                              std::pair<std::string, int64_t>{"bn2", config.conv2_channels}}) {
    buffers_.emplace_back(bn + ".running_mean", Tensor::zeros({c}, DType::kFloat64));
    buffers_.emplace_back(bn + ".running_var", Tensor::full<double>({c}, 1.0));
  }
}

PlaintextLeNet PlaintextLeNet::from_seed(const LeNetConfig& config, uint64_t seed) {
  return PlaintextLeNet(config, init_lenet_parameters(config, seed));
}

Tensor PlaintextLeNet::run(const Tensor& x, Cache* cache) const {
  const char* op = "PlaintextLeNet::forward";
  VEIL_CHECK(x.defined() && x.dtype() == DType::kFloat64 &&
                 ((x.dim() == 2 && x.size(1) == kImage * kImage) ||
                  (x.dim() == 4 && x.size(1) == 1 && x.size(2) == kImage && x.size(3) == kImage)),
             "[{}] expected float64 x [B, 784] or [B, 1, 28, 28], got {}", op,
             x.defined() ? x.str() : "undefined");
  const int64_t b = x.size(0);
  VEIL_CHECK(b >= 1 && (!training_ || b >= 2), "[{}] expected at least {} rows in {} mode, got {}",
             op, training_ ? 2 : 1, training_ ? "training" : "eval", b);
  Cache local;
  Cache& c = cache != nullptr ? *cache : local;
  const Tensor* rm1 = training_ ? nullptr : &buffers_[kBn1Mean].second;
  const Tensor* rv1 = training_ ? nullptr : &buffers_[kBn1Var].second;
  const Tensor* rm2 = training_ ? nullptr : &buffers_[kBn2Mean].second;
  const Tensor* rv2 = training_ ? nullptr : &buffers_[kBn2Var].second;

  c.x0 = x.contiguous().reshape({b, 1, kImage, kImage});
  c.z1 = core::conv2d(c.x0, param(kConv1W), conv_params(2)).contiguous();
  c.bn1 = batch_norm_forward(c.z1, param(kBn1W), param(kBn1B), rm1, rv1, config_.bn_eps);
  c.p1 = max_pool2(core::relu(c.bn1.y), c.pool1);
  const Tensor z2 = core::conv2d(c.p1, param(kConv2W), conv_params(0)).contiguous();
  c.bn2 = batch_norm_forward(z2, param(kBn2W), param(kBn2B), rm2, rv2, config_.bn_eps);
  const Tensor p2 = max_pool2(core::relu(c.bn2.y), c.pool2);
  c.flat = p2.reshape({b, config_.flat_features()});
  c.z3 = core::add(core::matmul(c.flat, param(kFc1W)), param(kFc1B));
  c.h1 = core::relu(c.z3);
  c.z4 = core::add(core::matmul(c.h1, param(kFc2W)), param(kFc2B));
  c.h2 = core::relu(c.z4);
  return core::add(core::matmul(c.h2, param(kFc3W)), param(kFc3B));
}

Tensor PlaintextLeNet::forward(const Tensor& x) const {
  return run(x, nullptr);
}

double PlaintextLeNet::loss(const Tensor& x, const Tensor& labels) const {
  const Tensor logits = run(x, nullptr);
  check_labels(labels, logits.size(0), config_.classes, "PlaintextLeNet::loss");
  return softmax_cross_entropy(logits, labels, nullptr);
}

LeNetGradients PlaintextLeNet::gradients(const Tensor& x, const Tensor& labels) const {
  Cache c;
  return backward(x, labels, c);
}

LeNetGradients PlaintextLeNet::backward(const Tensor& x, const Tensor& labels, Cache& c) const {
  const Tensor logits = run(x, &c);
  const int64_t b = logits.size(0);
  check_labels(labels, b, config_.classes, "PlaintextLeNet::gradients");
  LeNetGradients out;
  std::vector<Tensor> g(kNumParams);
  Tensor dz;  // d loss / d logits, then back through the layers
  out.loss = softmax_cross_entropy(logits, labels, &dz);
  // fully connected part: z = h W + b  =>  dW = h^T dz, db = sum_rows dz, dh = dz W^T
  g[kFc3W] = core::matmul(c.h2.t(), dz);
  g[kFc3B] = core::sum(dz, 0);
  dz = relu_backward(core::matmul(dz, param(kFc3W).t()), c.z4);
  g[kFc2W] = core::matmul(c.h1.t(), dz);
  g[kFc2B] = core::sum(dz, 0);
  dz = relu_backward(core::matmul(dz, param(kFc2W).t()), c.z3);
  g[kFc1W] = core::matmul(c.flat.t(), dz);
  g[kFc1B] = core::sum(dz, 0);
  const Tensor dflat = core::matmul(dz, param(kFc1W).t());
  // block 2: pool <- relu <- bn <- conv
  const int64_t c2 = config_.conv2_channels;
  Tensor d = max_pool2_backward(dflat.contiguous(), c.pool2, {b, c2, kConv2, kConv2});
  d = relu_backward(d, c.bn2.y).contiguous();
  d = batch_norm_backward(d, c.bn2, param(kBn2W), training_, g[kBn2W], g[kBn2B]);
  g[kConv2W] = core::conv2d_weight_grad(c.p1, d, conv_params(0), {kKernel, kKernel});
  d = core::conv2d_input_grad(d, param(kConv2W), conv_params(0), {kPooled1, kPooled1});
  // block 1
  const int64_t c1 = config_.conv1_channels;
  d = max_pool2_backward(d.contiguous(), c.pool1, {b, c1, kImage, kImage});
  d = relu_backward(d, c.bn1.y).contiguous();
  d = batch_norm_backward(d, c.bn1, param(kBn1W), training_, g[kBn1W], g[kBn1B]);
  g[kConv1W] = core::conv2d_weight_grad(c.x0, d, conv_params(2), {kKernel, kKernel});
  for (std::size_t i = 0; i < kNumParams; ++i) {
    out.parameters.emplace_back(parameters_[i].first, g[i].contiguous());
  }
  static_assert(kPooled2 * kPooled2 == 25, "flat_features() assumes 5x5 maps after pool 2");
  return out;
}

double PlaintextLeNet::train_step(const Tensor& x,
                                  const Tensor& labels,
                                  PlaintextOptimizer& optimizer) {
  VEIL_CHECK(training_, "[PlaintextLeNet::train_step] the model is in eval mode; call train()");
  Cache c;
  const LeNetGradients g = backward(x, labels, c);
  // running statistics: r = (1 - m) r + m s, with the unbiased variance
  const double m = config_.bn_momentum;
  const auto update = [m](Tensor& mean_buf, Tensor& var_buf, const BatchNormOut& bn, double n) {
    double* mp = mean_buf.data<double>();
    double* vp = var_buf.data<double>();
    for (std::size_t ch = 0; ch < bn.mean.size(); ++ch) {
      mp[ch] = (1 - m) * mp[ch] + m * bn.mean[ch];
      vp[ch] = (1 - m) * vp[ch] + m * bn.var[ch] * n / (n - 1);
    }
  };
  const auto b = static_cast<double>(x.size(0));
  update(buffers_[kBn1Mean].second, buffers_[kBn1Var].second, c.bn1,
         b * static_cast<double>(kImage * kImage));
  update(buffers_[kBn2Mean].second, buffers_[kBn2Var].second, c.bn2,
         b * static_cast<double>(kConv2 * kConv2));
  std::vector<Tensor> params;
  std::vector<Tensor> grads;
  for (std::size_t i = 0; i < kNumParams; ++i) {
    if (frozen_.empty() || !frozen_[i]) {
      params.push_back(parameters_[i].second);
      grads.push_back(g.parameters[i].second);
    }
  }
  if (!params.empty()) {
    optimizer.step(params, grads);
  }
  return g.loss;
}

void PlaintextLeNet::load_buffers(const NamedTensors& buffers) {
  for (const auto& [name, value] : buffers) {
    auto it = std::ranges::find_if(buffers_, [&](const auto& b) { return b.first == name; });
    VEIL_CHECK(it != buffers_.end(), "[PlaintextLeNet::load_buffers] unknown buffer '{}'", name);
    VEIL_CHECK(value.dtype() == core::DType::kFloat64 && value.shape() == it->second.shape(),
               "[PlaintextLeNet::load_buffers] '{}': expected float64 {}, got {}", name,
               core::shape_str(it->second.shape()), value.str());
    it->second = value.contiguous().clone();
  }
}

void PlaintextLeNet::set_frozen(const std::vector<std::string>& prefixes) {
  frozen_.assign(parameters_.size(), false);
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    for (const std::string& p : prefixes) {
      if (parameters_[i].first.starts_with(p)) {
        frozen_[i] = true;
      }
    }
  }
}

Tensor PlaintextLeNet::predict(const Tensor& x) const {
  return core::argmax(forward(x), 1);
}

double PlaintextLeNet::accuracy(const Dataset& data, int64_t batch) const {
  return batched_accuracy(
      data, batch, [this](const core::Tensor& x) { return predict(x); },
      "PlaintextLeNet::accuracy");
}

}  // namespace veil::models
