// BatchNorm1d, BatchNorm2d and LayerNorm modules: PyTorch names, options, train/eval switching,
// running statistics over several steps against float64, encrypted modules, bad inputs.

#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "tests/autograd/autograd_test_util.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
namespace nn = veil::nn;
using veil::MpcTensor;
using veil::Party;
using veil::agtest::quantize;
using veil::core::Shape;
using veil::core::Tensor;

namespace {

// Per-channel statistics of x [N, C, *] over N and the spatial dims: mean, biased and unbiased
// variance.
struct ChannelStats {
  std::vector<double> mean, var, uvar;
};
ChannelStats channel_stats(const Tensor& x) {
  const int64_t nb = x.size(0);
  const int64_t c = x.size(1);
  const int64_t s = x.numel() / (nb * c);
  const auto v = x.contiguous().to_vector<double>();
  ChannelStats out;
  for (int64_t ch = 0; ch < c; ++ch) {
    double m = 0;
    double q = 0;
    for (int64_t i = 0; i < nb; ++i) {
      for (int64_t k = 0; k < s; ++k) {
        m += v[static_cast<std::size_t>((i * c + ch) * s + k)];
      }
    }
    const double n = static_cast<double>(nb * s);
    m /= n;
    for (int64_t i = 0; i < nb; ++i) {
      for (int64_t k = 0; k < s; ++k) {
        const double d = v[static_cast<std::size_t>((i * c + ch) * s + k)] - m;
        q += d * d;
      }
    }
    out.mean.push_back(m);
    out.var.push_back(q / n);
    out.uvar.push_back(q / (n - 1));
  }
  return out;
}

// (x - mean_c) / sqrt(var_c + eps) * w_c + b_c for x [N, C, *].
Tensor normalize_channels(const Tensor& x,
                          const std::vector<double>& mean,
                          const std::vector<double>& var,
                          const std::vector<double>& w,
                          const std::vector<double>& b,
                          double eps) {
  const int64_t nb = x.size(0);
  const int64_t c = x.size(1);
  const int64_t s = x.numel() / (nb * c);
  auto v = x.contiguous().to_vector<double>();
  for (std::size_t j = 0; j < v.size(); ++j) {
    const auto ch = static_cast<std::size_t>((static_cast<int64_t>(j) / s) % c);
    v[j] = (v[j] - mean[ch]) / std::sqrt(var[ch] + eps) * w[ch] + b[ch];
  }
  return Tensor::from_vector(v, x.shape());
}

// x [N, C, *] with channel c uniform of half-width 0.9 + 0.5 c around c - 1 (variances in
// [0.27, 2.9]), quantised.
Tensor channel_input(const Shape& shape, uint64_t seed) {
  Tensor x = vt::uniform(shape, -1, 1, seed).contiguous().clone();
  const int64_t c = shape[1];
  const int64_t s = x.numel() / (shape[0] * c);
  double* px = x.data<double>();
  for (int64_t j = 0; j < x.numel(); ++j) {
    const double ch = static_cast<double>((j / s) % c);
    px[j] = px[j] * (0.9 + 0.5 * ch) + (ch - 1.0);
  }
  return quantize(x);
}

std::vector<std::string> names(const std::vector<std::pair<std::string, MpcTensor>>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) {
    out.push_back(e.first);
  }
  return out;
}

struct NetImpl : nn::Module {
  explicit NetImpl(Party& p)
      : fc(register_module("fc", nn::Linear(nn::LinearOptions(4, 3).seed(1), p))),
        bn(register_module("bn", nn::BatchNorm1d(nn::BatchNormOptions(3), p))),
        ln(register_module("ln", nn::LayerNorm(nn::LayerNormOptions({3}), p))) {}
  nn::Linear fc;
  nn::BatchNorm1d bn;
  nn::LayerNorm ln;
};

// Tolerances (f = 16): the forward error is dominated by crypto::inv_sqrt's relative error
// (contract 1e-3 after its planned widening) times |x_hat| <= sqrt(3); running statistics only
// carry a few truncation ulps (64 ulps allowed).
constexpr double kFwdTol = 3e-3;
constexpr double kStatTol = 64.0 / 65536.0;

}  // namespace

TEST_CASE("normalisation layers use PyTorch names and options", "[nn][norm]") {
  veil::agtest::run(2, [](Party& p) {
    if (p.rank() != 0) {
      return std::vector<Tensor>{};  // local checks, Catch assertions on one thread only
    }
    // GIVEN a model with BatchNorm1d and LayerNorm children
    NetImpl net(p);
    // THEN state_dict lists parameters then buffers with PyTorch's dotted names
    CHECK(names(net.state_dict()) == std::vector<std::string>{"fc.weight", "fc.bias", "bn.weight",
                                                              "bn.bias", "ln.weight", "ln.bias",
                                                              "bn.running_mean", "bn.running_var",
                                                              "bn.num_batches_tracked"});
    // the constructor contract other layers rely on
    nn::BatchNorm2d bn2(8);
    CHECK(bn2->weight.shape() == Shape{8});
    CHECK(bn2->num_batches_tracked.shape() == Shape{});
    CHECK(bn2->options().eps() == 1e-5);
    CHECK(bn2->options().momentum() == 0.1);
    nn::BatchNorm2d custom(nn::BatchNormOptions(5).eps(1e-3).momentum(0.01).affine(false));
    CHECK(custom->options().eps() == 1e-3);
    CHECK(custom->parameters().empty());
    CHECK(custom->buffers().size() == 3);
    nn::BatchNorm1d untracked(nn::BatchNormOptions(5).track_running_stats(false));
    CHECK(untracked->buffers().empty());
    CHECK(untracked->parameters().size() == 2);
    nn::LayerNorm ln(std::vector<int64_t>{2, 3});
    CHECK(ln->weight.shape() == Shape{2, 3});
    CHECK(vt::max_abs_diff(ln->weight.reveal(), Tensor::full<double>({2, 3}, 1.0)) == 0);
    CHECK(vt::max_abs_diff(ln->bias.reveal(), Tensor::full<double>({2, 3}, 0.0)) == 0);
    nn::LayerNorm plain(nn::LayerNormOptions({3}).elementwise_affine(false));
    CHECK(plain->parameters().empty());
    // a Sequential accepts the layers
    nn::Sequential seq(nn::Linear(nn::LinearOptions(4, 3).seed(2), p), nn::BatchNorm1d(3),
                       nn::ReLU(), nn::LayerNorm({3}));
    CHECK(names(seq->named_parameters()).size() == 6);
    return std::vector<Tensor>{};
  });
}

TEST_CASE("BatchNorm2d tracks running statistics over steps and switches with train/eval",
          "[nn][norm]") {
  // GIVEN an encrypted BatchNorm2d(3) and two secret batches [4, 3, 2, 3]
  const Shape shape{4, 3, 2, 3};
  const Tensor x1 = channel_input(shape, 1);
  const Tensor x2 = channel_input(shape, 2);
  const Tensor x3 = channel_input(shape, 3);
  const double momentum = 0.2;
  const double eps = 1e-5;
  // float64 reference of the running statistics after two training steps
  std::vector<double> rm(3, 0.0);
  std::vector<double> rv(3, 1.0);
  for (const Tensor* x : {&x1, &x2}) {
    const ChannelStats st = channel_stats(*x);
    for (std::size_t c = 0; c < 3; ++c) {
      rm[c] = (1 - momentum) * rm[c] + momentum * st.mean[c];
      rv[c] = (1 - momentum) * rv[c] + momentum * st.uvar[c];
    }
  }
  const std::vector<double> ones(3, 1.0);
  const std::vector<double> zeros(3, 0.0);
  const ChannelStats st2 = channel_stats(x2);
  const Tensor train_ref = normalize_channels(x2, st2.mean, st2.var, ones, zeros, eps);
  const Tensor eval_ref = normalize_channels(x3, rm, rv, ones, zeros, eps);
  for (int n : {2, 3}) {
    // WHEN two batches run in training mode, then one in eval mode
    auto out = veil::agtest::run(n, [&](Party& p) {
      nn::BatchNorm2d bn(nn::BatchNormOptions(3).momentum(momentum), p);
      bn->encrypt();
      auto share = [&](const Tensor& x) {
        return MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
      };
      (void)bn(share(x1));
      const MpcTensor y2 = bn(share(x2));
      bn->eval();
      const MpcTensor y3 = bn(share(x3));
      return std::vector<Tensor>{y2.reveal(),
                                 y3.reveal(),
                                 bn->running_mean.reveal(),
                                 bn->running_var.reveal(),
                                 bn->num_batches_tracked.reveal(),
                                 Tensor::scalar<double>(bn->running_mean.is_secret() ? 1 : 0)};
    });
    INFO(n << " parties");
    // THEN training used batch statistics, eval the running ones, which match float64
    CHECK(vt::max_abs_diff(out[0], train_ref) <= kFwdTol);
    CHECK(vt::max_abs_diff(out[1], eval_ref) <= kFwdTol);
    CHECK(vt::max_abs_diff(out[2], Tensor::from_vector(rm, {3})) <= kStatTol);
    CHECK(vt::max_abs_diff(out[3], Tensor::from_vector(rv, {3})) <= kStatTol);
    CHECK(out[4].item<double>() == 2.0);
    CHECK(out[5].item<double>() == 1.0);
  }
}

TEST_CASE("BatchNorm1d: cumulative average, no running statistics, gradients of the affine",
          "[nn][norm]") {
  // GIVEN inputs [N, C] and [N, C, L]
  const Tensor a = channel_input({6, 3}, 11);
  const Tensor b = channel_input({6, 3, 4}, 12);
  const ChannelStats sa = channel_stats(a);
  const ChannelStats sb = channel_stats(b);
  // sum(y) over a batch-normalised input has gradient 0 w.r.t. x and sum(x_hat) = 0 for the
  // weight; use sum(y * r) with a public r instead
  const Tensor r = quantize(vt::uniform({6, 3}, -1, 1, 13));
  const std::vector<double> ones(3, 1.0);
  const std::vector<double> zeros(3, 0.0);
  const Tensor xhat = normalize_channels(a, sa.mean, sa.var, ones, zeros, 1e-5);
  std::vector<double> dw(3, 0.0);
  std::vector<double> db(3, 0.0);
  const auto xv = xhat.to_vector<double>();
  const auto rv = r.to_vector<double>();
  for (std::size_t j = 0; j < xv.size(); ++j) {
    dw[j % 3] += rv[j] * xv[j];
    db[j % 3] += rv[j];
  }
  for (int n : {2, 3}) {
    auto out = veil::agtest::run(n, [&](Party& p) {
      // WHEN a cumulative-average layer (momentum none, public buffers) sees both batches
      nn::BatchNorm1d cum(nn::BatchNormOptions(3).momentum(std::nullopt), p);
      auto share = [&](const Tensor& x) {
        return MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
      };
      (void)cum(MpcTensor::from_public(a, p));
      (void)cum(MpcTensor::from_public(b, p));
      // and a layer without running statistics runs in eval mode with secret parameters
      nn::BatchNorm1d untracked(nn::BatchNormOptions(3).track_running_stats(false), p);
      untracked->encrypt();
      untracked->eval();
      const MpcTensor y = untracked(share(a));
      veil::sum(veil::mul(y, MpcTensor::from_public(r, p))).backward();
      return std::vector<Tensor>{cum->running_mean.reveal(), cum->running_var.reveal(), y.reveal(),
                                 untracked->weight.grad().reveal(),
                                 untracked->bias.grad().reveal()};
    });
    INFO(n << " parties");
    // THEN the running statistics are the plain averages of the two batches' statistics
    std::vector<double> m(3);
    std::vector<double> v(3);
    for (std::size_t c = 0; c < 3; ++c) {
      m[c] = (sa.mean[c] + sb.mean[c]) / 2;
      v[c] = (sa.uvar[c] + sb.uvar[c]) / 2;
    }
    CHECK(vt::max_abs_diff(out[0], Tensor::from_vector(m, {3})) <= kStatTol);
    CHECK(vt::max_abs_diff(out[1], Tensor::from_vector(v, {3})) <= kStatTol);
    // and the untracked layer normalises with batch statistics even in eval mode
    CHECK(vt::max_abs_diff(out[2], xhat) <= kFwdTol);
    CHECK(vt::max_mixed_err(out[3], Tensor::from_vector(dw, {3})) <= 5e-3);
    CHECK(vt::max_mixed_err(out[4], Tensor::from_vector(db, {3})) <= 64 * vt::ulp());
  }
}

TEST_CASE("LayerNorm module matches float64 and keeps its computation in eval mode", "[nn][norm]") {
  const Tensor x = quantize(veil::core::mul_scalar(vt::uniform({5, 6}, -1, 1, 21), 1.5));
  const Tensor w = quantize(vt::uniform({6}, 0.5, 1.5, 22));
  const Tensor b = quantize(vt::uniform({6}, -0.5, 0.5, 23));
  // float64 reference
  const auto xv = x.to_vector<double>();
  const auto wv = w.to_vector<double>();
  const auto bv = b.to_vector<double>();
  std::vector<double> y(xv.size());
  for (std::size_t row = 0; row < 5; ++row) {
    double m = 0;
    double q = 0;
    for (std::size_t j = 0; j < 6; ++j) {
      m += xv[row * 6 + j] / 6;
    }
    for (std::size_t j = 0; j < 6; ++j) {
      q += (xv[row * 6 + j] - m) * (xv[row * 6 + j] - m) / 6;
    }
    for (std::size_t j = 0; j < 6; ++j) {
      y[row * 6 + j] = (xv[row * 6 + j] - m) / std::sqrt(q + 1e-5) * wv[j] + bv[j];
    }
  }
  const Tensor ref = Tensor::from_vector(y, {5, 6});
  for (int n : {2, 3}) {
    auto out = veil::agtest::run(n, [&](Party& p) {
      nn::LayerNorm ln(nn::LayerNormOptions({6}), p);
      ln->load_state_dict(
          {{"weight", MpcTensor::from_public(w, p)}, {"bias", MpcTensor::from_public(b, p)}});
      ln->encrypt();
      const MpcTensor xs = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
      const MpcTensor y_train = ln(xs);
      ln->eval();
      const MpcTensor y_eval = ln(xs);
      return std::vector<Tensor>{y_train.reveal(), y_eval.reveal()};
    });
    CHECK(vt::max_abs_diff(out[0], ref) <= kFwdTol);
    CHECK(vt::max_abs_diff(out[1], ref) <= kFwdTol);
  }
}

TEST_CASE("normalisation layers reject bad inputs", "[nn][norm]") {
  using Catch::Matchers::Contains;
  veil::agtest::run(2, [](Party& p) {
    if (p.rank() != 0) {
      return std::vector<Tensor>{};
    }
    nn::BatchNorm1d bn1(3);
    nn::BatchNorm2d bn2(3);
    const MpcTensor x4 = MpcTensor::from_public(vt::uniform({2, 3, 2, 2}, -1, 1, 1), p);
    const MpcTensor x2 = MpcTensor::from_public(vt::uniform({2, 4}, -1, 1, 2), p);
    CHECK_THROWS_WITH(bn1(x4), Contains("[BatchNorm1d] expected an input of rank 2 or 3"));
    CHECK_THROWS_WITH(bn1(x2), Contains("[BatchNorm1d] expected 3 channels"));
    CHECK_THROWS_WITH(bn2(x2), Contains("[BatchNorm2d] expected an input of rank 4"));
    CHECK_THROWS_WITH(nn::BatchNorm2d(0), Contains("[BatchNorm2d] expected num_features >= 1"));
    CHECK_THROWS_WITH(nn::BatchNorm1d(nn::BatchNormOptions(3).momentum(2.0)),
                      Contains("[BatchNorm1d] expected momentum in [0, 1]"));
    CHECK_THROWS_WITH(nn::LayerNorm(std::vector<int64_t>{}),
                      Contains("[LayerNorm] expected a non-empty normalized_shape"));
    nn::LayerNorm ln({5});
    CHECK_THROWS_WITH(ln(x2), Contains("[layer_norm] expected a non-empty input [*, 5]"));
    // cumulative average with an encrypted counter
    nn::BatchNorm1d cum(nn::BatchNormOptions(4).momentum(std::nullopt));
    cum->num_batches_tracked.encrypt();
    CHECK_THROWS_WITH(cum(x2), Contains("needs a public num_batches_tracked"));
    return std::vector<Tensor>{};
  });
}
