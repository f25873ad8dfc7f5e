// Gradient checks of every differentiable op: the forward (revealed) against a float64 reference
// and the backward (revealed grads) against central finite differences of the float64 reference,
// for public, secret and mixed inputs with 2 and 3 parties. The loss is sum(op(x) * R) for a random
// R (secret when the inputs are secret, so backward also runs with secret upstream gradients).
// Inputs are quantised to the fixed-point grid so that the tolerances are pure truncation /
// approximation errors, given in units of 2^-16.

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/autograd/autograd_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::agtest::kUlp;
using veil::agtest::Tensor;
using veil::agtest::Vis;
using MV = std::vector<MpcTensor>;
using TV = std::vector<Tensor>;

struct GradCase {
  std::string name;
  std::vector<Tensor> inputs;  // float64, quantised
  std::vector<bool> wants;     // which inputs require grad
  std::function<MpcTensor(const std::vector<MpcTensor>&)> op;
  std::function<Tensor(const std::vector<Tensor>&)> ref;  // float64 reference of op
  double out_tol;
  double grad_tol;
  // Tolerances for secret inputs (approximations), when different.
  double secret_out_tol = -1;
  double secret_grad_tol = -1;
};

Tensor q_uniform(const veil::core::Shape& s, double lo, double hi, uint64_t seed) {
  return veil::agtest::quantize(veil::testing::uniform(s, lo, hi, seed));
}

// Values in [lo, hi] with random signs kept away from 0 (for ReLU kinks).
Tensor away_from_zero(const veil::core::Shape& s, uint64_t seed) {
  Tensor x = q_uniform(s, 0.1, 1.5, seed);
  Tensor sign = veil::testing::uniform(s, -1, 1, seed + 1);
  double* px = x.data<double>();
  const double* ps = sign.data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    px[i] = ps[i] < 0 ? -px[i] : px[i];
  }
  return x;
}

void check_case(const GradCase& c, int n, Vis vis) {
  INFO(c.name << ", " << n << " parties, " << veil::agtest::vis_name(vis) << " inputs");
  const Tensor ref_out = c.ref(c.inputs);
  const Tensor r = q_uniform(ref_out.shape(), -1, 1, 99);
  const bool secret = vis != Vis::kPublic;
  // WHEN the op and loss = sum(op(x) * R) run under MPC and backward() is called
  const auto got = veil::agtest::run(n, [&](Party& p) {
    std::vector<MpcTensor> xs;
    for (std::size_t i = 0; i < c.inputs.size(); ++i) {
      MpcTensor x = veil::agtest::place(c.inputs[i], vis, i, p);
      x.set_requires_grad(c.wants[i]);
      xs.push_back(x);
    }
    const MpcTensor out = c.op(xs);
    const MpcTensor rw = vis == Vis::kSecret
                             ? MpcTensor::share(p.rank() == 0 ? r : Tensor(), 0, r.shape(), p)
                             : MpcTensor::from_public(r, p);
    const MpcTensor loss = veil::sum(out * rw);
    loss.backward();
    std::vector<Tensor> res{out.reveal()};
    std::vector<double> flags{out.is_secret() ? 1.0 : 0.0};
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (c.wants[i]) {
        res.push_back(xs[i].grad().reveal());
        flags.push_back(xs[i].grad().is_secret() ? 1.0 : 0.0);
      } else {
        flags.push_back(xs[i].grad().defined() ? 2.0 : 0.0);
      }
    }
    res.push_back(Tensor::from_vector(flags, {static_cast<int64_t>(flags.size())}));
    return res;
  });
  // THEN the forward matches the float64 reference
  const double out_tol = secret && c.secret_out_tol >= 0 ? c.secret_out_tol : c.out_tol;
  const double grad_tol = secret && c.secret_grad_tol >= 0 ? c.secret_grad_tol : c.grad_tol;
  REQUIRE(got[0].shape() == ref_out.shape());
  CHECK(veil::testing::max_abs_diff(got[0], ref_out) <= out_tol);
  // AND the gradients match finite differences of sum(ref(x) * R)
  auto loss = [&](const std::vector<Tensor>& xs) {
    return veil::agtest::dot(c.ref(xs), r);
  };
  const std::vector<double> flags = got.back().to_vector<double>();
  CHECK(flags[0] == (secret ? 1.0 : 0.0));
  std::size_t k = 1;
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    INFO("input " << i);
    if (!c.wants[i]) {
      CHECK(flags[i + 1] == 0.0);  // no gradient for inputs that do not require it
      continue;
    }
    const Tensor fd = veil::agtest::fd_grad(loss, c.inputs, i);
    REQUIRE(got[k].shape() == c.inputs[i].shape());
    CHECK(veil::testing::max_abs_diff(got[k], fd) <= grad_tol);
    // gradients are secret when everything is secret and public in public mode (with mixed
    // inputs it depends on the op: e.g. d(x + c)/dx with a public upstream gradient is public)
    if (vis != Vis::kMixed) {
      CHECK(flags[i + 1] == (secret ? 1.0 : 0.0));
    }
    ++k;
  }
}

void check_all(const GradCase& c) {
  for (int n : {2, 3}) {
    for (Vis vis : {Vis::kPublic, Vis::kSecret, Vis::kMixed}) {
      check_case(c, n, vis);
    }
  }
}

Tensor softmax_ref(const Tensor& x) {
  Tensor out = x.contiguous().clone();
  const int64_t c = x.size(-1);
  double* p = out.data<double>();
  for (int64_t r = 0; r < out.numel() / c; ++r) {
    double m = p[r * c];
    for (int64_t j = 1; j < c; ++j) {
      m = std::max(m, p[r * c + j]);
    }
    double s = 0;
    for (int64_t j = 0; j < c; ++j) {
      s += std::exp(p[r * c + j] - m);
    }
    for (int64_t j = 0; j < c; ++j) {
      p[r * c + j] = std::exp(p[r * c + j] - m) / s;
    }
  }
  return out;
}

// mean over rows of (logsumexp(x_i) - <x_i, t_i>)
Tensor cross_entropy_ref(const Tensor& x, const Tensor& t) {
  const int64_t n = x.size(0);
  const int64_t c = x.size(1);
  const auto vx = x.to_vector<double>();
  const auto vt = t.to_vector<double>();
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double m = vx[static_cast<std::size_t>(i * c)];
    for (int64_t j = 0; j < c; ++j) {
      m = std::max(m, vx[static_cast<std::size_t>(i * c + j)]);
    }
    double s = 0;
    double xt = 0;
    for (int64_t j = 0; j < c; ++j) {
      const auto k = static_cast<std::size_t>(i * c + j);
      s += std::exp(vx[k] - m);
      xt += vx[k] * vt[k];
    }
    total += m + std::log(s) - xt;
  }
  return Tensor::scalar<double>(total / static_cast<double>(n));
}

Tensor one_hot(const std::vector<int64_t>& labels, int64_t c) {
  return veil::core::one_hot(Tensor::from_vector(labels, {static_cast<int64_t>(labels.size())}), c);
}

}  // namespace

TEST_CASE("gradcheck: add with bias broadcasting", "[autograd][gradcheck]") {
  // GIVEN x [3, 4] and a bias [4]
  check_all({"add",
             {q_uniform({3, 4}, -2, 2, 1), q_uniform({4}, -2, 2, 2)},
             {true, true},
             [](const MV& x) { return x[0] + x[1]; },
             [](const TV& x) { return veil::core::add(x[0], x[1]); },
             1e-9,
             4 * kUlp});
}

TEST_CASE("gradcheck: sub with broadcasting and neg", "[autograd][gradcheck]") {
  check_all({"sub",
             {q_uniform({3, 4}, -2, 2, 3), q_uniform({3, 1}, -2, 2, 4)},
             {true, true},
             [](const MV& x) { return -(x[0] - x[1]); },
             [](const TV& x) { return veil::core::neg(veil::core::sub(x[0], x[1])); },
             1e-9,
             4 * kUlp});
}

TEST_CASE("gradcheck: elementwise mul with broadcasting", "[autograd][gradcheck]") {
  // one truncation per product: <= 2 ulp per element, sums over 3 broadcast rows for dy
  check_all({"mul",
             {q_uniform({3, 4}, -2, 2, 5), q_uniform({4}, -2, 2, 6)},
             {true, true},
             [](const MV& x) { return x[0] * x[1]; },
             [](const TV& x) { return veil::core::mul(x[0], x[1]); },
             3 * kUlp,
             10 * kUlp});
}

TEST_CASE("gradcheck: mul by a public scalar and add a scalar", "[autograd][gradcheck]") {
  // 0.37 is encoded with error <= 2^-17: |x| * 2^-17 + truncation
  check_all(
      {"mul_scalar",
       {q_uniform({2, 5}, -2, 2, 7)},
       {true},
       [](const MV& x) { return 0.37 * x[0] + 0.5; },
       [](const TV& x) { return veil::core::add_scalar(veil::core::mul_scalar(x[0], 0.37), 0.5); },
       4 * kUlp,
       6 * kUlp});
}

TEST_CASE("gradcheck: matmul", "[autograd][gradcheck]") {
  // exact products of grid values, then one truncation: a few ulp
  check_all({"matmul",
             {q_uniform({4, 5}, -1, 1, 8), q_uniform({5, 3}, -1, 1, 9)},
             {true, true},
             [](const MV& x) { return veil::matmul(x[0], x[1]); },
             [](const TV& x) { return veil::core::matmul(x[0], x[1]); },
             3 * kUlp,
             6 * kUlp});
}

TEST_CASE("gradcheck: matmul of transposed and reshaped operands", "[autograd][gradcheck]") {
  check_all({"matmul_t",
             {q_uniform({2, 6}, -1, 1, 10), q_uniform({2, 3}, -1, 1, 11)},
             {true, true},
             [](const MV& x) {
               return veil::matmul(x[0].reshape({3, 4}).t(), veil::t(x[1]));
             },
             [](const TV& x) {
               return veil::core::matmul(x[0].reshape({3, 4}).t(), x[1].t());
             },
             3 * kUlp,
             6 * kUlp});
}

TEST_CASE("gradcheck: relu", "[autograd][gradcheck]") {
  // GIVEN values away from the kink; the mask is an exact bit, so everything is exact except
  // the truncation-free products
  check_all({"relu",
             {away_from_zero({3, 5}, 12)},
             {true},
             [](const MV& x) { return veil::relu(x[0]); },
             [](const TV& x) { return veil::core::relu(x[0]); },
             1e-9,
             2 * kUlp});
}

TEST_CASE("gradcheck: sum and mean", "[autograd][gradcheck]") {
  check_all({"sum_dim",
             {q_uniform({4, 4}, -2, 2, 13)},
             {true},
             [](const MV& x) { return veil::sum(x[0], 1) + veil::sum(x[0], 0, true).t().sum(1); },
             [](const TV& x) {
               return veil::core::add(veil::core::sum(x[0], 1),
                                      veil::core::sum(veil::core::sum(x[0], 0, true).t(), 1));
             },
             1e-9,
             4 * kUlp});
  // 1/3 is encoded with error <= 2^-17
  check_all({"mean",
             {q_uniform({2, 3}, -2, 2, 14)},
             {true},
             [](const MV& x) { return veil::mean(x[0], -1) + veil::mean(x[0]); },
             [](const TV& x) {
               Tensor m = veil::core::mul_scalar(veil::core::sum(x[0], -1), 1.0 / 3.0);
               return veil::core::add_scalar(m, veil::core::sum_all(x[0]).item<double>() / 6.0);
             },
             6 * kUlp,
             6 * kUlp});
}

TEST_CASE("gradcheck: softmax", "[autograd][gradcheck]") {
  // secret: crypto::softmax has absolute error <= 1e-3
  GradCase c{"softmax",
             {q_uniform({3, 5}, -2, 2, 15)},
             {true},
             [](const MV& x) { return veil::softmax(x[0]); },
             [](const TV& x) { return softmax_ref(x[0]); },
             2 * kUlp,
             8 * kUlp};
  c.secret_out_tol = 2e-3;
  c.secret_grad_tol = 4e-3;
  check_all(c);
}

TEST_CASE("gradcheck: cross_entropy with a one-hot target", "[autograd][gradcheck]") {
  // GIVEN logits [4, 5] and a one-hot target (public in public mode, secret otherwise)
  GradCase c{"cross_entropy",
             {q_uniform({4, 5}, -3, 3, 16), one_hot({2, 0, 4, 1}, 5)},
             {true, false},
             [](const MV& x) { return veil::cross_entropy(x[0], x[1]); },
             [](const TV& x) { return cross_entropy_ref(x[0], x[1]); },
             4 * kUlp,
             4 * kUlp};
  // secret: log and exp approximations (<= 1e-3 each); the gradient uses the saved softmax
  c.secret_out_tol = 3e-3;
  c.secret_grad_tol = 1e-3;
  check_all(c);
}

TEST_CASE("gradcheck: cross_entropy with class indices", "[autograd][gradcheck]") {
  const std::vector<int64_t> labels{1, 3, 0};
  const Tensor idx = Tensor::from_vector(labels, {3});
  const Tensor onehot = one_hot(labels, 4);
  GradCase c{"cross_entropy_idx",
             {q_uniform({3, 4}, -3, 3, 17)},
             {true},
             [idx](const MV& x) { return veil::cross_entropy(x[0], idx); },
             [onehot](const TV& x) { return cross_entropy_ref(x[0], onehot); },
             8 * kUlp,
             4 * kUlp};
  c.secret_out_tol = 3e-3;
  c.secret_grad_tol = 1e-3;
  check_all(c);
}

TEST_CASE("cross_entropy backward is exactly (softmax - target) / N", "[autograd][gradcheck]") {
  // GIVEN secret logits and a secret one-hot target, loss.backward() with the default seed
  const Tensor x = q_uniform({4, 3}, -2, 2, 18);
  const Tensor t = one_hot({0, 2, 1, 1}, 3);
  for (int n : {2, 3}) {
    const auto got = veil::agtest::run(n, [&](Party& p) {
      MpcTensor logits = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
      logits.set_requires_grad();
      const MpcTensor target = MpcTensor::share(p.rank() == 1 ? t : Tensor(), 1, t.shape(), p);
      const MpcTensor loss = veil::cross_entropy(logits, target);
      loss.backward();
      // the softmax the forward used, computed the same way
      const MpcTensor sm = veil::softmax(logits.detach());
      return std::vector<Tensor>{loss.reveal(), logits.grad().reveal(), sm.reveal()};
    });
    // THEN grad = (softmax - t) / 4 within the softmax error, and the loss is a 0-d tensor
    CHECK(got[0].dim() == 0);
    const Tensor want = veil::core::mul_scalar(veil::core::sub(softmax_ref(x), t), 0.25);
    CHECK(veil::testing::max_abs_diff(got[1], want) <= 1e-3);
    const Tensor from_sm = veil::core::mul_scalar(veil::core::sub(got[2], t), 0.25);
    // (a recomputed softmax differs from the saved one by the random truncation errors, a few ulp
    // amplified by exp's squarings; far below the approximation error allowed above)
    CHECK(veil::testing::max_abs_diff(got[1], from_sm) <= 32 * kUlp);
    CHECK(std::abs(got[0].item<double>() - cross_entropy_ref(x, t).item<double>()) <= 3e-3);
  }
}
