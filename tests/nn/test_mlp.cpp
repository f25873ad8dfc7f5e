// Linear + ReLU + Linear + cross-entropy, forward and backward, against a float64 reference written
// here (independent of veil's ops), for secret and public models with 2 and 3 parties, and the
// same network built as a Sequential and with nn::functional.

#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "nn/nn.h"
#include "tests/autograd/autograd_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::agtest::kUlp;
using veil::agtest::Tensor;
namespace nn = veil::nn;

constexpr int64_t kN = 8;
constexpr int64_t kIn = 6;
constexpr int64_t kHidden = 5;
constexpr int64_t kOut = 4;

using Mat = std::vector<std::vector<double>>;

Mat to_mat(const Tensor& t) {
  const auto v = t.to_vector<double>();
  const int64_t r = t.dim() == 2 ? t.size(0) : 1;
  const int64_t c = t.size(-1);
  Mat m(static_cast<std::size_t>(r), std::vector<double>(static_cast<std::size_t>(c)));
  for (int64_t i = 0; i < r; ++i) {
    for (int64_t j = 0; j < c; ++j) {
      m[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)] =
          v[static_cast<std::size_t>(i * c + j)];
    }
  }
  return m;
}

Tensor to_tensor(const Mat& m, bool vector = false) {
  std::vector<double> v;
  for (const auto& row : m) {
    v.insert(v.end(), row.begin(), row.end());
  }
  const auto r = static_cast<int64_t>(m.size());
  const auto c = static_cast<int64_t>(m[0].size());
  return vector ? Tensor::from_vector(v, {c}) : Tensor::from_vector(v, {r, c});
}

// Plain loops: a [r, k] @ b [k, c].
Mat mm(const Mat& a, const Mat& b, bool ta = false, bool tb = false) {
  const std::size_t r = ta ? a[0].size() : a.size();
  const std::size_t k = ta ? a.size() : a[0].size();
  const std::size_t c = tb ? b.size() : b[0].size();
  Mat out(r, std::vector<double>(c, 0.0));
  for (std::size_t i = 0; i < r; ++i) {
    for (std::size_t j = 0; j < c; ++j) {
      for (std::size_t q = 0; q < k; ++q) {
        out[i][j] += (ta ? a[q][i] : a[i][q]) * (tb ? b[j][q] : b[q][j]);
      }
    }
  }
  return out;
}

struct Reference {
  double loss = 0;
  Tensor logits, w1, b1, w2, b2;  // logits and gradients
};

Reference reference(const Tensor& x,
                    const std::vector<int64_t>& y,
                    const Tensor& w1,
                    const Tensor& b1,
                    const Tensor& w2,
                    const Tensor& b2) {
  const Mat X = to_mat(x), W1 = to_mat(w1), B1 = to_mat(b1), W2 = to_mat(w2), B2 = to_mat(b2);
  Mat z1 = mm(X, W1);
  Mat h = z1;
  for (std::size_t i = 0; i < z1.size(); ++i) {
    for (std::size_t j = 0; j < z1[i].size(); ++j) {
      z1[i][j] += B1[0][j];
      h[i][j] = std::max(z1[i][j], 0.0);
    }
  }
  Mat z2 = mm(h, W2);
  Mat dz2 = z2;
  Reference r;
  const auto n = static_cast<double>(z2.size());
  for (std::size_t i = 0; i < z2.size(); ++i) {
    double m = -1e300;
    for (std::size_t j = 0; j < z2[i].size(); ++j) {
      z2[i][j] += B2[0][j];
      m = std::max(m, z2[i][j]);
    }
    double s = 0;
    for (double v : z2[i]) {
      s += std::exp(v - m);
    }
    const auto yi = static_cast<std::size_t>(y[i]);
    r.loss += (m + std::log(s) - z2[i][yi]) / n;
    for (std::size_t j = 0; j < z2[i].size(); ++j) {
      dz2[i][j] = (std::exp(z2[i][j] - m) / s - (j == yi ? 1.0 : 0.0)) / n;
    }
  }
  const Mat dw2 = mm(h, dz2, /*ta=*/true);
  Mat dh = mm(dz2, W2, false, /*tb=*/true);
  Mat db2(1, std::vector<double>(dz2[0].size(), 0.0));
  Mat db1(1, std::vector<double>(dh[0].size(), 0.0));
  for (std::size_t i = 0; i < dh.size(); ++i) {
    for (std::size_t j = 0; j < dz2[i].size(); ++j) {
      db2[0][j] += dz2[i][j];
    }
    for (std::size_t j = 0; j < dh[i].size(); ++j) {
      dh[i][j] = z1[i][j] > 0 ? dh[i][j] : 0.0;
      db1[0][j] += dh[i][j];
    }
  }
  r.logits = to_tensor(z2);
  r.w1 = to_tensor(mm(X, dh, /*ta=*/true));
  r.b1 = to_tensor(db1, true);
  r.w2 = to_tensor(dw2);
  r.b2 = to_tensor(db2, true);
  return r;
}

struct Data {
  Tensor x;
  std::vector<int64_t> y;
  Tensor w1, b1, w2, b2;
};

Data make_data() {
  Data d;
  d.x = veil::agtest::quantize(veil::testing::uniform({kN, kIn}, -1, 1, 21));
  d.y = {0, 3, 1, 2, 2, 0, 1, 3};
  d.w1 = veil::agtest::quantize(veil::testing::uniform({kIn, kHidden}, -0.8, 0.8, 22));
  d.b1 = veil::agtest::quantize(veil::testing::uniform({kHidden}, -0.3, 0.3, 23));
  d.w2 = veil::agtest::quantize(veil::testing::uniform({kHidden, kOut}, -0.8, 0.8, 24));
  d.b2 = veil::agtest::quantize(veil::testing::uniform({kOut}, -0.3, 0.3, 25));
  return d;
}

struct MlpImpl : nn::Module {
  MlpImpl()
      : fc1(register_module("fc1", nn::Linear(kIn, kHidden))),
        fc2(register_module("fc2", nn::Linear(kHidden, kOut))) {}
  MpcTensor forward(const MpcTensor& x) { return fc2(veil::relu(fc1(x))); }
  nn::Linear fc1;
  nn::Linear fc2;
};
VEIL_MODULE(Mlp);

// Runs forward/backward; returns {loss, logits, dW1, db1, dW2, db2}.
std::vector<Tensor> run_model(const Data& d, int n, bool secret, int variant) {
  return veil::agtest::run(n, [&](Party& p) {
    const Tensor labels = Tensor::from_vector(d.y, {kN});
    MpcTensor x = MpcTensor::share(p.rank() == n - 1 ? d.x : Tensor(), n - 1, {kN, kIn}, p);
    if (!secret) {
      x = MpcTensor::from_public(d.x, p);
    }
    std::vector<MpcTensor> params;
    MpcTensor logits;
    MpcTensor loss;
    if (variant == 0) {
      // a user module
      Mlp model;
      model->fc1->load_weights(d.w1, d.b1);
      model->fc2->load_weights(d.w2, d.b2);
      if (secret) {
        model->encrypt(0);
      }
      logits = model(x);
      loss = nn::CrossEntropyLoss()(logits, labels);
      params = model->parameters();
    } else if (variant == 1) {
      // a Sequential, one-hot secret labels
      nn::Sequential seq(nn::Linear(kIn, kHidden), nn::ReLU(), nn::Linear(kHidden, kOut));
      std::static_pointer_cast<nn::LinearImpl>(seq->ptr(0))->load_weights(d.w1, d.b1);
      std::static_pointer_cast<nn::LinearImpl>(seq->ptr(2))->load_weights(d.w2, d.b2);
      if (secret) {
        seq->encrypt(1 % n);
      }
      const Tensor onehot = veil::core::one_hot(labels, kOut);
      const MpcTensor target =
          secret ? MpcTensor::share(p.rank() == 0 ? onehot : Tensor(), 0, {kN, kOut}, p)
                 : MpcTensor::from_public(onehot, p);
      logits = seq(x);
      loss = nn::functional::cross_entropy(logits, target);
      params = seq->parameters();
    } else {
      // nn::functional on raw parameters
      for (const Tensor* t : {&d.w1, &d.b1, &d.w2, &d.b2}) {
        MpcTensor q = MpcTensor::from_public(*t, p);
        if (secret) {
          q.encrypt(0);
        }
        params.push_back(q.set_requires_grad());
      }
      namespace F = nn::functional;
      logits = F::linear(F::relu(F::linear(x, params[0], params[1])), params[2], params[3]);
      loss = F::cross_entropy(logits, labels);
    }
    loss.backward();
    std::vector<Tensor> out{loss.reveal(), logits.reveal()};
    for (const MpcTensor& q : params) {
      out.push_back(q.grad().reveal());
    }
    const bool secrets = loss.is_secret() && params[0].grad().is_secret();
    out.push_back(Tensor::scalar(secrets ? 1.0 : 0.0));
    return out;
  });
}

}  // namespace

TEST_CASE("MLP: Linear+ReLU+Linear+cross_entropy matches float64 forward and backward",
          "[nn][mlp]") {
  const Data d = make_data();
  const Reference ref = reference(d.x, d.y, d.w1, d.b1, d.w2, d.b2);
  for (int variant : {0, 1, 2}) {
    for (int n : {2, 3}) {
      for (bool secret : {true, false}) {
        INFO("variant " << variant << ", " << n << " parties, " << (secret ? "secret" : "public"));
        const auto got = run_model(d, n, secret, variant);
        // secret: crypto::log/exp/softmax approximations (~1e-3); public: truncation only
        const double loss_tol = secret ? 3e-3 : 16 * kUlp;
        const double grad_tol = secret ? 2e-3 : 32 * kUlp;
        CHECK(std::abs(got[0].item<double>() - ref.loss) <= loss_tol);
        CHECK(veil::testing::max_abs_diff(got[1], ref.logits) <= 16 * kUlp);
        CHECK(veil::testing::max_abs_diff(got[2], ref.w1) <= grad_tol);
        CHECK(veil::testing::max_abs_diff(got[3], ref.b1) <= grad_tol);
        CHECK(veil::testing::max_abs_diff(got[4], ref.w2) <= grad_tol);
        CHECK(veil::testing::max_abs_diff(got[5], ref.b2) <= grad_tol);
        CHECK(got[6].item<double>() == (secret ? 1.0 : 0.0));
      }
    }
  }
}
