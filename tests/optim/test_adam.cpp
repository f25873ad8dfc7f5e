// Adam and AdamW: several steps on secret (and public) parameters and gradients against a float64
// implementation of PyTorch's formulas; the state accessors and set_state; a secret linear
// regression tracked against float64 Adam; a small secret network that converges; the cost of a
// step against its formula; option validation.

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "tests/autograd/autograd_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::agtest::kUlp;
using veil::agtest::Tensor;
namespace optim = veil::optim;
namespace vt = veil::testing;

// Relative accuracy of crypto::inv_sqrt on its domain (its contract: 1e-3 on [1e-4, 1e4]; the tests
// keep the second moments inside [0.01, 100]).
constexpr double kInvSqrtRel = 1e-3;

struct Hyper {
  double lr;
  double b1 = 0.9;
  double b2 = 0.999;
  double eps = 1e-8;
  double wd = 0.0;
  bool decoupled = false;
  int scale_bits = 10;
};

// float64 torch.optim.Adam / AdamW on one flat parameter; records max |m_hat / (sqrt(v_hat) + eps)|
// and min v_hat of every step.
struct AdamRef {
  std::vector<double> p, m, v;
  int t = 0;
  std::vector<double> max_ratio, min_vhat;

  void step(const std::vector<double>& g_in, const Hyper& h) {
    if (m.empty()) {
      m.assign(p.size(), 0.0);
      v.assign(p.size(), 0.0);
    }
    ++t;
    const double bc1 = 1 - std::pow(h.b1, t);
    const double bc2 = 1 - std::pow(h.b2, t);
    double mr = 0;
    double mv = 1e300;
    for (std::size_t i = 0; i < p.size(); ++i) {
      double g = g_in[i];
      if (h.decoupled) {
        p[i] -= h.lr * h.wd * p[i];
      } else {
        g += h.wd * p[i];
      }
      m[i] = h.b1 * m[i] + (1 - h.b1) * g;
      v[i] = h.b2 * v[i] + (1 - h.b2) * g * g;
      const double mhat = m[i] / bc1;
      const double vhat = v[i] / bc2;
      const double r = mhat / (std::sqrt(vhat) + h.eps);
      mr = std::max(mr, std::abs(r));
      mv = std::min(mv, vhat);
      p[i] -= h.lr * r;
    }
    max_ratio.push_back(mr);
    min_vhat.push_back(mv);
  }

  // Bound on |p_mpc - p_ref| after the recorded steps: per step, lr times the ratio's error
  // (inv_sqrt's relative error, t + 2 ulp of the moments (G units) times 1 / sqrt(V)) plus the
  // truncations of the update (3 ulp).
  double tolerance(const Hyper& h, double extra_rel = 0) const {
    double tol = 0;
    for (std::size_t k = 0; k < max_ratio.size(); ++k) {
      const double scale = std::ldexp(1.0, h.scale_bits);
      const double y_max = 1 / std::sqrt(min_vhat[k] * scale * scale);
      const double ratio_err =
          max_ratio[k] * (kInvSqrtRel + extra_rel) + static_cast<double>(k + 3) * kUlp * y_max;
      tol += h.lr * ratio_err + 3 * kUlp;
    }
    return tol;
  }
};

// Gradients of magnitude [5e-4, 8e-3] (|g| 2^10 in [0.5, 8]) with random signs, on the fixed-point
// grid.
Tensor gradient(const veil::core::Shape& shape, uint64_t seed) {
  Tensor mag = vt::uniform(shape, 5e-4, 8e-3, seed);
  const Tensor sgn = vt::uniform(shape, -1, 1, seed + 1000);
  double* pm = mag.data<double>();
  const double* ps = sgn.data<double>();
  for (int64_t i = 0; i < mag.numel(); ++i) {
    pm[i] = ps[i] < 0 ? -pm[i] : pm[i];
  }
  return veil::agtest::quantize(mag);
}

std::vector<double> concat(const std::vector<Tensor>& ts) {
  std::vector<double> out;
  for (const Tensor& t : ts) {
    const auto v = t.to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

std::unique_ptr<optim::AdamBase> make_adam(std::vector<MpcTensor> params, const Hyper& h) {
  if (h.decoupled) {
    return std::make_unique<optim::AdamW>(std::move(params), optim::AdamWOptions(h.lr)
                                                                 .betas({h.b1, h.b2})
                                                                 .eps(h.eps)
                                                                 .weight_decay(h.wd)
                                                                 .grad_scale_bits(h.scale_bits));
  }
  return std::make_unique<optim::Adam>(std::move(params), optim::AdamOptions(h.lr)
                                                              .betas({h.b1, h.b2})
                                                              .eps(h.eps)
                                                              .weight_decay(h.wd)
                                                              .grad_scale_bits(h.scale_bits));
}

// Steps Adam on two parameters (and a third without gradient) with the given gradients
// (grads[step][param]); returns the parameters after the last step, the untouched parameter, the
// state (exp_avg, exp_avg_sq of parameter 0) and [step count of parameter 0, of the untouched one,
// secret-ness of parameter 0].
std::vector<Tensor> run_adam(int n,
                             bool secret,
                             const std::vector<Tensor>& p0,
                             const std::vector<std::vector<Tensor>>& grads,
                             const Hyper& h) {
  return veil::agtest::run(n, [&](Party& p) {
    std::vector<MpcTensor> params;
    for (std::size_t j = 0; j < p0.size(); ++j) {
      MpcTensor w = MpcTensor::from_public(p0[j], p);
      w.set_requires_grad();
      if (secret) {
        w.encrypt(static_cast<int>(j) % p.world_size());
      }
      params.push_back(w);
    }
    MpcTensor untouched = MpcTensor::from_public(p0[0], p);
    untouched.set_requires_grad();
    std::vector<MpcTensor> all = params;
    all.push_back(untouched);
    auto opt = make_adam(all, h);
    for (const auto& step_grads : grads) {
      opt->zero_grad();
      for (std::size_t j = 0; j < params.size(); ++j) {
        const Tensor& g = step_grads[j];
        params[j].set_grad(secret ? MpcTensor::share(p.rank() == 1 ? g : Tensor(), 1, g.shape(), p)
                                  : MpcTensor::from_public(g, p));
      }
      opt->step();
    }
    std::vector<Tensor> out;
    for (const MpcTensor& w : params) {
      out.push_back(w.reveal());
    }
    out.push_back(untouched.reveal());
    out.push_back(opt->exp_avg(0).reveal());
    out.push_back(opt->exp_avg_sq(0).reveal());
    out.push_back(Tensor::from_vector(
        std::vector<double>{static_cast<double>(opt->step_count(0)),
                            static_cast<double>(opt->step_count(all.size() - 1)),
                            params[0].is_secret() ? 1.0 : 0.0},
        {3}));
    return out;
  });
}

}  // namespace

TEST_CASE("Adam and AdamW track float64 PyTorch over several steps", "[optim][adam]") {
  // GIVEN two parameters and five steps of gradients of typical magnitude (1e-3)
  const std::vector<Tensor> p0{veil::agtest::quantize(vt::uniform({3, 4}, -1, 1, 11)),
                               veil::agtest::quantize(vt::uniform({5}, -1, 1, 12))};
  std::vector<std::vector<Tensor>> grads;
  for (uint64_t s = 0; s < 5; ++s) {
    grads.push_back({gradient({3, 4}, 100 + 2 * s), gradient({5}, 101 + 2 * s)});
  }
  struct Case {
    const char* name;
    Hyper h;
  };
  const std::vector<Case> cases{
      {"adam", {.lr = 0.01}},
      {"adam+l2", {.lr = 0.01, .b1 = 0.8, .b2 = 0.99, .wd = 1e-4}},
      {"adamw", {.lr = 0.01, .wd = 0.05, .decoupled = true}},
      {"eps term", {.lr = 0.02, .eps = 1e-3}},
  };
  for (const Case& c : cases) {
    AdamRef ref;
    ref.p = concat(p0);
    for (const auto& g : grads) {
      ref.step(concat(g), c.h);
    }
    const double tol = ref.tolerance(c.h);
    AdamRef ref1;
    ref1.p = concat(p0);
    ref1.step(concat(grads[0]), c.h);
    for (int n : {2, 3}) {
      for (bool secret : {true, false}) {
        INFO(c.name << ", " << n << " parties, " << (secret ? "secret" : "public"));
        // WHEN five steps run
        const auto got = run_adam(n, secret, p0, grads, c.h);
        // THEN the parameters follow the float64 reference within the derived tolerance
        const std::vector<double> p = concat({got[0], got[1]});
        double err = 0;
        for (std::size_t i = 0; i < p.size(); ++i) {
          err = std::max(err, std::abs(p[i] - ref.p[i]));
        }
        CHECK(err <= tol);
        // AND the state is the bias-corrected moments scaled by 2^s and 2^2s
        const double s = std::ldexp(1.0, c.h.scale_bits);
        const double bc1 = 1 - std::pow(c.h.b1, 5);
        const double bc2 = 1 - std::pow(c.h.b2, 5);
        const auto m = got[3].to_vector<double>();
        const auto v = got[4].to_vector<double>();
        for (std::size_t i = 0; i < m.size(); ++i) {
          CHECK(std::abs(m[i] - ref.m[i] / bc1 * s) <= 8 * kUlp + std::abs(m[i]) * 1e-4);
          CHECK(std::abs(v[i] - ref.v[i] / bc2 * s * s) <= 8 * kUlp + std::abs(v[i]) * 1e-4);
        }
        const auto meta = got[5].to_vector<double>();
        CHECK(meta[0] == 5);
        CHECK(meta[1] == 0);  // no gradient: no step
        CHECK(meta[2] == (secret ? 1.0 : 0.0));
        CHECK(vt::max_abs_diff(got[2], p0[0]) == 0);
        // AND one step pins the bias correction: p - lr sign(g) (up to eps)
        const auto got1 = run_adam(n, secret, p0, {grads[0]}, c.h);
        const std::vector<double> q = concat({got1[0], got1[1]});
        double err1 = 0;
        for (std::size_t i = 0; i < q.size(); ++i) {
          err1 = std::max(err1, std::abs(q[i] - ref1.p[i]));
        }
        CHECK(err1 <= ref1.tolerance(c.h));
      }
    }
    // AND the tolerance is meaningful: the parameters moved far more than it
    double moved = 0;
    const auto p0v = concat(p0);
    for (std::size_t i = 0; i < p0v.size(); ++i) {
      moved = std::max(moved, std::abs(ref.p[i] - p0v[i]));
    }
    CHECK(moved > 20 * tol);
  }
}

TEST_CASE("Adam's clamp of the second moment follows the documented rule", "[optim][adam]") {
  // GIVEN one step (M = G, V = G^2, G = g 2^10) with gradients in every region of the range
  // normalization: zero (V < delta), one ulp (V = delta), V < 1/4, 1/4 <= V <= 64, V > 64 and
  // V > 2^14 (clamped)
  const std::vector<double> gv{
      0.0, std::ldexp(1.0, -16), 1e-4, -3e-4, 1e-3, -4e-3, 0.02, -0.05, 0.13, -0.13};
  const auto n_elem = static_cast<int64_t>(gv.size());
  const Tensor g = veil::agtest::quantize(Tensor::from_vector(gv, {n_elem}));
  const Tensor p0 = veil::agtest::quantize(vt::uniform({n_elem}, -1, 1, 81));
  const double lr = 0.01;
  const double delta = std::ldexp(1.0, -12);
  const double v_max = 16384;
  for (int n : {2, 3}) {
    for (bool secret : {true, false}) {
      INFO(n << " parties, " << (secret ? "secret" : "public"));
      const auto got = run_adam(n, secret, {p0}, {{g}}, Hyper{.lr = lr});
      const auto pv = got[0].to_vector<double>();
      const auto p0v = p0.to_vector<double>();
      const auto gq = g.to_vector<double>();
      for (std::size_t i = 0; i < gq.size(); ++i) {
        // THEN r = G / sqrt(clamp(G^2, delta, 2^14)): +-1 like PyTorch inside, smaller below the
        // floor, |G| / 128 above the ceiling
        const double big_g = gq[i] * 1024;
        const double r = big_g / std::sqrt(std::clamp(big_g * big_g, delta, v_max));
        INFO("g = " << gq[i] << ", r = " << r);
        CHECK(std::abs(pv[i] - (p0v[i] - lr * r)) <= lr * std::abs(r) * kInvSqrtRel + 4 * kUlp);
      }
    }
  }
}

TEST_CASE("Adam: set_state restores a run, lr schedules apply", "[optim][adam]") {
  const Tensor p0 = veil::agtest::quantize(vt::uniform({6}, -1, 1, 21));
  const std::vector<Tensor> g{gradient({6}, 22), gradient({6}, 24), gradient({6}, 26)};
  const auto got = veil::agtest::run(2, [&](Party& p) {
    MpcTensor a = MpcTensor::from_public(p0, p);
    a.set_requires_grad();
    a.encrypt(0);
    MpcTensor b = MpcTensor::from_public(p0, p);
    b.set_requires_grad();
    b.encrypt(0);
    optim::Adam first({a}, optim::AdamOptions(0.01));
    optim::StepLR schedule(first, 1, 0.5);
    auto set = [&](MpcTensor& w, const Tensor& gv) {
      w.set_grad(MpcTensor::share(p.rank() == 1 ? gv : Tensor(), 1, gv.shape(), p));
    };
    for (int k = 0; k < 2; ++k) {
      set(a, g[static_cast<std::size_t>(k)]);
      first.step();
      schedule.step();
    }
    // a second optimizer on a copy of the parameter, restored from the first one's state
    b.assign_(a.detach());
    optim::Adam second({b}, optim::AdamOptions(first.lr()));
    second.set_state(0, first.exp_avg(0), first.exp_avg_sq(0), first.step_count(0));
    set(a, g[2]);
    set(b, g[2]);
    first.step();
    second.step();
    return std::vector<Tensor>{a.reveal(), b.reveal(), Tensor::scalar(first.lr()),
                               Tensor::scalar(static_cast<double>(second.step_count(0)))};
  });
  // THEN both runs take the same third step (the state carries everything), within 2 ulp
  // (independent truncations)
  CHECK(vt::max_abs_diff(got[0], got[1]) <= 2 * kUlp);
  CHECK(vt::max_abs_diff(got[0], p0) > 0.01);
  CHECK(got[2].item<double>() == Approx(0.0025));
  CHECK(got[3].item<double>() == 3);
}

TEST_CASE("Adam on a secret linear regression tracks float64 Adam", "[optim][adam]") {
  // GIVEN y = X w* (secret X from party 0, y from party 1) and w0 = w* + d with |d| >= 0.2,
  // so that every gradient component stays away from 0 for the few steps below
  const int64_t rows = 16;
  const Tensor x = veil::agtest::quantize(vt::uniform({rows, 3}, -1, 1, 31));
  const std::vector<double> w_star{0.5, -0.25, 0.75};
  const std::vector<double> w0v{0.7, -0.55, 1.0};
  std::vector<double> yv(rows);
  const auto xv = x.to_vector<double>();
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      yv[static_cast<std::size_t>(i)] +=
          xv[static_cast<std::size_t>(i * 3 + j)] * w_star[static_cast<std::size_t>(j)];
    }
  }
  const Tensor y = veil::agtest::quantize(Tensor::from_vector(yv, {rows, 1}));
  const Tensor w0 = veil::agtest::quantize(Tensor::from_vector(w0v, {3, 1}));
  const Hyper h{.lr = 5e-3, .scale_bits = 6};  // gradients ~0.1: |g| 2^6 ~ 6
  const int steps = 5;
  // float64 Adam with exact gradients 2/n X^T (X w - y)
  AdamRef ref;
  ref.p = w0.to_vector<double>();
  double min_grad = 1e300;
  const auto yq = y.to_vector<double>();
  for (int k = 0; k < steps; ++k) {
    std::vector<double> grad(3, 0.0);
    for (int64_t i = 0; i < rows; ++i) {
      double res = -yq[static_cast<std::size_t>(i)];
      for (int64_t j = 0; j < 3; ++j) {
        res += xv[static_cast<std::size_t>(i * 3 + j)] * ref.p[static_cast<std::size_t>(j)];
      }
      for (int64_t j = 0; j < 3; ++j) {
        grad[static_cast<std::size_t>(j)] +=
            2.0 / rows * xv[static_cast<std::size_t>(i * 3 + j)] * res;
      }
    }
    for (double gj : grad) {
      min_grad = std::min(min_grad, std::abs(gj));
    }
    ref.step(grad, h);
  }
  for (int n : {2, 3}) {
    const auto got = veil::agtest::run(n, [&](Party& p) {
      const MpcTensor xs = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
      const MpcTensor ys = MpcTensor::share(p.rank() == 1 ? y : Tensor(), 1, y.shape(), p);
      MpcTensor w = MpcTensor::from_public(w0, p);
      w.set_requires_grad();
      w.encrypt(0);
      optim::Adam opt({w}, optim::AdamOptions(h.lr).grad_scale_bits(h.scale_bits));
      for (int k = 0; k < steps; ++k) {
        opt.zero_grad();
        veil::mse_loss(veil::matmul(xs, w), ys, veil::Reduction::kSum)
            .backward(MpcTensor::from_public(Tensor::scalar(1.0 / rows), p));
        opt.step();
      }
      return std::vector<Tensor>{w.reveal()};
    });
    // THEN w follows float64 Adam: the MPC gradient is off by at most ~16 ulp (encodings of X
    // and y, the truncations of two matmuls), i.e. relatively 16 ulp / min|g|; the Adam ratio
    // moves by at most twice that
    const double grad_rel = 16 * kUlp / min_grad;
    const double tol = ref.tolerance(h, 2 * grad_rel);
    const auto wv = got[0].to_vector<double>();
    for (std::size_t j = 0; j < 3; ++j) {
      INFO(n << " parties, w[" << j << "] = " << wv[j] << " vs " << ref.p[j]);
      CHECK(std::abs(wv[j] - ref.p[j]) <= tol);
      CHECK(std::abs(wv[j] - w0v[j]) > 10 * tol);
    }
  }
}

TEST_CASE("Adam trains a small secret network", "[optim][adam]") {
  // GIVEN two Gaussian-like clusters in 2-D (secret inputs, public labels) and a 2-8-2 MLP
  const int64_t rows = 16;
  Tensor x = vt::uniform({rows, 2}, -0.6, 0.6, 41);
  std::vector<int64_t> labels(rows);
  double* px = x.data<double>();
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t c = i % 2;
    labels[static_cast<std::size_t>(i)] = c;
    px[i * 2] += c == 0 ? -1.0 : 1.0;
    px[i * 2 + 1] += c == 0 ? 0.5 : -0.5;
  }
  x = veil::agtest::quantize(x);
  const Tensor y = Tensor::from_vector(labels, {rows});
  const int steps = 12;
  const auto got = veil::agtest::run(2, [&](Party& p) {
    veil::nn::Sequential net(veil::nn::Linear(veil::nn::LinearOptions(2, 8).seed(7)),
                             veil::nn::ReLU(),
                             veil::nn::Linear(veil::nn::LinearOptions(8, 2).seed(7).stream(1)));
    net->encrypt(0);
    const MpcTensor xs = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
    optim::Adam opt(net->parameters(), optim::AdamOptions(0.05).grad_scale_bits(6));
    std::vector<double> losses;
    for (int k = 0; k < steps; ++k) {
      opt.zero_grad();
      const MpcTensor loss = veil::cross_entropy(net(xs), y);
      loss.backward();
      opt.step();
      losses.push_back(loss.reveal().item<double>());
    }
    return std::vector<Tensor>{Tensor::from_vector(losses, {steps})};
  });
  // THEN the loss falls well below its start (ln 2 ~ 0.69 for an untrained net)
  const auto l = got[0].to_vector<double>();
  INFO("first loss " << l.front() << ", last loss " << l.back());
  CHECK(l.back() < 0.5 * l.front());
  CHECK(l.back() < 0.2);
}

TEST_CASE("Adam step cost matches its formula", "[optim][adam][cost]") {
  const int64_t n_elems = 7 + 5;
  for (int n : {2, 3}) {
    const auto got = veil::crypto::launch<std::vector<int64_t>>(vt::test_options(n), [&](Party& p) {
      auto secret = [&](const veil::core::Shape& s, uint64_t seed) {
        const Tensor v = gradient(s, seed);
        return MpcTensor::share(p.rank() == 0 ? v : Tensor(), 0, s, p);
      };
      // the components, measured on this setup: lt on 4n elements, inv_sqrt on n
      auto cost = [&](const std::function<void()>& fn) {
        const auto before = p.comm().stats();
        fn();
        const auto d = p.comm().stats() - before;
        return std::make_pair(d.total.rounds, d.total.bytes_sent);
      };
      const MpcTensor probe = secret({n_elems}, 5);
      const auto lt4 = cost([&] {
        const veil::crypto::AShare a = probe.ashare();
        const veil::crypto::AShare four{veil::core::cat({a.data, a.data, a.data, a.data}, 0),
                                        a.frac_bits};
        veil::crypto::lt(p, four, four);
      });
      const auto isq = cost(
          [&] { veil::crypto::inv_sqrt(p, veil::crypto::add_public(p, probe.ashare(), 1.0)); });
      MpcTensor a = MpcTensor::from_public(Tensor::zeros({7}, veil::core::DType::kFloat64), p);
      MpcTensor b = MpcTensor::from_public(Tensor::zeros({5}, veil::core::DType::kFloat64), p);
      a.set_requires_grad();
      b.set_requires_grad();
      a.encrypt(0);
      b.encrypt(1);
      optim::Adam opt({a, b}, optim::AdamOptions(0.01));
      a.set_grad(secret({7}, 1));
      b.set_grad(secret({5}, 3));
      const auto step1 = cost([&] { opt.step(); });
      const auto step2 = cost([&] { opt.step(); });
      return std::vector<int64_t>{lt4.first,   lt4.second,   isq.first,   isq.second,
                                  step1.first, step1.second, step2.first, step2.second};
    })[1];
    const int64_t peers = n - 1;
    const int64_t trunc = n == 2 ? 0 : 1;
    // G^2 (a square pair: 8(N-1) bytes per element); V mu and M kappa; M kappa y: 16(N-1) each
    const int64_t products = (8 + 3 * 16) * peers * n_elems;
    INFO(n << " parties: lt " << got[0] << " rounds, inv_sqrt " << got[2] << " rounds, steps "
           << got[4] << " / " << got[6] << " rounds");
    // step 1: truncation stages G^2, W, M kappa y, lr
    CHECK(got[4] == 3 + got[0] + got[2] + 4 * trunc);
    CHECK(got[5] == products + got[1] + got[3] + 4 * trunc * 8 * n_elems);
    // later steps: also the two moment updates
    CHECK(got[6] == 3 + got[0] + got[2] + 6 * trunc);
    CHECK(got[7] == products + got[1] + got[3] + 6 * trunc * 8 * n_elems);
  }
}

TEST_CASE("Adam and AdamW validate their options and inputs", "[optim][adam][errors]") {
  auto error_of = [](const std::function<void()>& fn) -> std::string {
    try {
      fn();
    } catch (const veil::ValueError& e) {
      return e.what();
    }
    return "no exception";
  };
  CHECK_THAT(error_of([] { optim::Adam({}, optim::AdamOptions(0.0)); }),
             Catch::StartsWith("[Adam] expected lr > 0"));
  CHECK_THAT(error_of([] {
               optim::Adam({}, optim::AdamOptions(0.1).betas({0.9, 1.0}));
             }),
             Catch::StartsWith("[Adam] expected betas in [0, 1)"));
  CHECK_THAT(error_of([] { optim::AdamW({}, optim::AdamWOptions(0.1).eps(-1)); }),
             Catch::StartsWith("[AdamW] expected eps >= 0"));
  CHECK_THAT(error_of([] { optim::AdamW({}, optim::AdamWOptions(0.1).weight_decay(-0.1)); }),
             Catch::StartsWith("[AdamW] expected weight_decay >= 0"));
  CHECK_THAT(error_of([] { optim::Adam({}, optim::AdamOptions(0.1).grad_scale_bits(15)); }),
             Catch::StartsWith("[Adam] expected grad_scale_bits in [0, 14]"));
  CHECK(error_of([] { optim::AdamW({}, optim::AdamWOptions(0.1)); }) == "no exception");
  CHECK(optim::AdamWOptions(0.1).weight_decay() == 0.01);
  CHECK(optim::AdamOptions(0.1).weight_decay() == 0.0);
  CHECK(optim::AdamOptions(0.1).betas().second == 0.999);
  CHECK_THROWS_AS(optim::Adam({MpcTensor()}, optim::AdamOptions(0.1)), veil::ValueError);
  // an integer-encoded gradient, a bad lr, a bad state
  const auto msgs =
      veil::crypto::launch<std::vector<std::string>>(vt::test_options(2), [&](Party& p) {
        MpcTensor w = MpcTensor::from_public(Tensor::zeros({3}, veil::core::DType::kFloat64), p);
        w.set_requires_grad();
        optim::Adam opt({w}, optim::AdamOptions(0.1));
        w.set_grad(
            MpcTensor::from_public_ring(Tensor::zeros({3}, veil::core::DType::kRing64), 0, p));
        std::vector<std::string> out;
        out.push_back(error_of([&] { opt.step(); }));
        out.push_back(error_of([&] { opt.set_lr(-1); }));
        out.push_back(error_of([&] { opt.set_state(0, w, MpcTensor(), 2); }));
        out.push_back(error_of([&] {
          const MpcTensor z = MpcTensor::zeros({4}, p);
          opt.set_state(0, z, z, 1);
        }));
        return out;
      })[0];
  CHECK_THAT(msgs[0],
             Catch::StartsWith("[Adam] expected parameter 0 and its gradient with frac_bits"));
  CHECK_THAT(msgs[1], Catch::StartsWith("[Adam::set_lr]"));
  CHECK_THAT(msgs[2], Catch::StartsWith("[Adam::set_state] expected both moments"));
  CHECK_THAT(msgs[3], Catch::StartsWith("[Adam::set_state] expected moments of shape [3]"));
}
