#include "models/plaintext_mlp.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/ops.h"
#include "crypto/prg.h"

namespace veil::models {

namespace {

// Mean softmax cross-entropy of logits [B, C] against labels [B]; when `dlogits` is non-null it
// receives (softmax(logits) - onehot(labels)) / B as a new float64 [B, C] tensor.
double softmax_cross_entropy(const core::Tensor& logits,
                             const core::Tensor& labels,
                             core::Tensor* dlogits) {
  const core::Tensor z = logits.contiguous();
  const int64_t b = z.size(0);
  const int64_t c = z.size(1);
  const double* zp = z.data<double>();
  const auto lv = labels.to_vector<int64_t>();
  double* dp = nullptr;
  if (dlogits != nullptr) {
    *dlogits = core::Tensor::empty({b, c}, core::DType::kFloat64);
    dp = dlogits->data<double>();
  }
  const double inv_b = 1.0 / static_cast<double>(b);
  double total = 0.0;
  for (int64_t i = 0; i < b; ++i) {
    const double* row = zp + i * c;
    const double m = *std::max_element(row, row + c);
    double s = 0.0;
    for (int64_t j = 0; j < c; ++j) {
      s += std::exp(row[j] - m);
    }
    const double lse = m + std::log(s);
    const int64_t y = lv[static_cast<std::size_t>(i)];
    total += lse - row[y];
    if (dp != nullptr) {
      for (int64_t j = 0; j < c; ++j) {
        dp[i * c + j] = (std::exp(row[j] - lse) - (j == y ? 1.0 : 0.0)) * inv_b;
      }
    }
  }
  return total * inv_b;
}

// PyTorch SGD on one parameter tensor (contiguous float64), velocity created on first use.
void sgd_update(core::Tensor& w,
                const core::Tensor& grad,
                core::Tensor& velocity,
                const SgdConfig& cfg) {
  const core::Tensor g = grad.contiguous();
  const int64_t n = w.numel();
  double* wp = w.data<double>();
  const double* gp = g.data<double>();
  const bool use_momentum = cfg.momentum != 0.0;
  const bool first = !velocity.defined();
  if (use_momentum && first) {
    velocity = core::Tensor::empty(w.shape(), core::DType::kFloat64);
  }
  double* vp = use_momentum ? velocity.data<double>() : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    double d = gp[i] + cfg.weight_decay * wp[i];
    if (use_momentum) {
      vp[i] = first ? d : cfg.momentum * vp[i] + d;
      d = vp[i];
    }
    wp[i] -= cfg.lr * d;
  }
}

}  // namespace

std::pair<std::vector<core::Tensor>, std::vector<core::Tensor>> init_mlp_weights(
    const std::vector<int64_t>& sizes, uint64_t seed) {
  VEIL_CHECK(sizes.size() >= 2, "[init_mlp_weights] expected at least 2 layer sizes, got {}",
             sizes.size());
  for (const int64_t s : sizes) {
    VEIL_CHECK(s >= 1, "[init_mlp_weights] expected layer sizes >= 1, got {}", sizes);
  }
  std::vector<core::Tensor> weights;
  std::vector<core::Tensor> biases;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    const int64_t in = sizes[l];
    const int64_t out = sizes[l + 1];
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    crypto::Prg prg(crypto::Prg::public_seed(seed, 1000 + static_cast<uint64_t>(l)));
    core::Tensor w = core::Tensor::empty({in, out}, core::DType::kFloat64);
    core::Tensor b = core::Tensor::empty({out}, core::DType::kFloat64);
    // Weights first, then biases: the order is part of the contract with the private model.
    for (core::Tensor* t : {&w, &b}) {
      double* p = t->data<double>();
      for (int64_t i = 0; i < t->numel(); ++i) {
        p[i] = (2.0 * prg.uniform_double() - 1.0) * bound;
      }
    }
    weights.push_back(std::move(w));
    biases.push_back(std::move(b));
  }
  return {std::move(weights), std::move(biases)};
}

PlaintextMlp::PlaintextMlp(std::vector<core::Tensor> weights, std::vector<core::Tensor> biases) {
  VEIL_CHECK(!weights.empty() && weights.size() == biases.size(),
             "[PlaintextMlp] expected equally many (>= 1) weights and biases, got {} and {}",
             weights.size(), biases.size());
  for (std::size_t l = 0; l < weights.size(); ++l) {
    const core::Tensor& w = weights[l];
    const core::Tensor& b = biases[l];
    VEIL_CHECK(w.defined() && b.defined() && w.dtype() == core::DType::kFloat64 &&
                   b.dtype() == core::DType::kFloat64 && w.dim() == 2 && b.dim() == 1 &&
                   b.size(0) == w.size(1),
               "[PlaintextMlp] layer {}: expected float64 w [in, out] and b [out], got {} and {}",
               l, w.defined() ? w.str() : "undefined", b.defined() ? b.str() : "undefined");
    if (l > 0) {
      VEIL_CHECK(w.size(0) == weights[l - 1].size(1),
                 "[PlaintextMlp] layer {} takes {} inputs but layer {} gives {} outputs", l,
                 w.size(0), l - 1, weights[l - 1].size(1));
    }
    weights_.push_back(w.clone());
    biases_.push_back(b.clone());
  }
  weight_velocity_.resize(weights_.size());
  bias_velocity_.resize(biases_.size());
}

PlaintextMlp PlaintextMlp::from_seed(const std::vector<int64_t>& sizes, uint64_t seed) {
  auto [w, b] = init_mlp_weights(sizes, seed);
  return PlaintextMlp(std::move(w), std::move(b));
}

std::vector<int64_t> PlaintextMlp::sizes() const {
  std::vector<int64_t> s{weights_.front().size(0)};
  for (const core::Tensor& w : weights_) {
    s.push_back(w.size(1));
  }
  return s;
}

void PlaintextMlp::check_input(const core::Tensor& x, const char* op) const {
  VEIL_CHECK(x.defined() && x.dtype() == core::DType::kFloat64 && x.dim() == 2 &&
                 x.size(1) == weights_.front().size(0),
             "[{}] expected float64 x [B, {}], got {}", op, weights_.front().size(0),
             x.defined() ? x.str() : "undefined");
}

std::vector<core::Tensor> PlaintextMlp::forward_all(const core::Tensor& x) const {
  std::vector<core::Tensor> acts{x};
  for (std::size_t l = 0; l < weights_.size(); ++l) {
    core::Tensor z = core::add(core::matmul(acts.back(), weights_[l]), biases_[l]);
    acts.push_back(l + 1 < weights_.size() ? core::relu(z) : z);
  }
  return acts;
}

core::Tensor PlaintextMlp::forward(const core::Tensor& x) const {
  check_input(x, "PlaintextMlp::forward");
  return forward_all(x).back();
}

namespace {

void check_labels(const core::Tensor& labels, int64_t batch, int64_t classes, const char* op) {
  VEIL_CHECK(labels.defined() && labels.dtype() == core::DType::kInt64 && labels.dim() == 1 &&
                 labels.size(0) == batch,
             "[{}] expected int64 labels [{}], got {}", op, batch,
             labels.defined() ? labels.str() : "undefined");
  VEIL_CHECK(batch >= 1, "[{}] expected a non-empty batch", op);
  const auto lv = labels.to_vector<int64_t>();
  for (std::size_t i = 0; i < lv.size(); ++i) {
    VEIL_CHECK(lv[i] >= 0 && lv[i] < classes, "[{}] label {} at row {} outside [0, {})", op, lv[i],
               i, classes);
  }
}

}  // namespace

double PlaintextMlp::loss(const core::Tensor& x, const core::Tensor& labels) const {
  check_input(x, "PlaintextMlp::loss");
  check_labels(labels, x.size(0), weights_.back().size(1), "PlaintextMlp::loss");
  return softmax_cross_entropy(forward_all(x).back(), labels, nullptr);
}

MlpGradients PlaintextMlp::gradients(const core::Tensor& x, const core::Tensor& labels) const {
  check_input(x, "PlaintextMlp::gradients");
  check_labels(labels, x.size(0), weights_.back().size(1), "PlaintextMlp::gradients");
  const std::vector<core::Tensor> acts = forward_all(x);
  const std::size_t layers = weights_.size();

  MlpGradients g;
  g.weights.resize(layers);
  g.biases.resize(layers);
  core::Tensor dz;  // d loss / d z_l, [B, out_l]
  g.loss = softmax_cross_entropy(acts.back(), labels, &dz);
  for (std::size_t l = layers; l-- > 0;) {
    const core::Tensor& h = acts[l];  // input of layer l, [B, in_l]
    g.weights[l] = core::matmul(h.t(), dz);
    g.biases[l] = core::sum(dz, 0);
    if (l > 0) {
      // h = relu(z_{l-1}), so relu'(z_{l-1}) = step(h).
      dz = core::mul(core::matmul(dz, weights_[l].t()), core::step(h));
    }
  }
  return g;
}

double PlaintextMlp::train_step(const core::Tensor& x,
                                const core::Tensor& labels,
                                const SgdConfig& cfg) {
  const MlpGradients g = gradients(x, labels);
  for (std::size_t l = 0; l < weights_.size(); ++l) {
    sgd_update(weights_[l], g.weights[l], weight_velocity_[l], cfg);
    sgd_update(biases_[l], g.biases[l], bias_velocity_[l], cfg);
  }
  return g.loss;
}

core::Tensor PlaintextMlp::predict(const core::Tensor& x) const {
  return core::argmax(forward(x), 1);
}

double PlaintextMlp::accuracy(const Dataset& data, int64_t batch) const {
  return batched_accuracy(
      data, batch, [this](const core::Tensor& x) { return predict(x); }, "PlaintextMlp::accuracy");
}

}  // namespace veil::models
