// Differentiable elementary functions (autograd/elementary.h): forward values and gradients
// against float64 (the function and its analytic derivative at the encoded inputs) over dense
// grids of each domain, public and secret, 2 and 3 parties; rounds for 2 parties; bad inputs.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numbers>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "core/error.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"
#include "tests/autograd/autograd_test_util.h"

using veil::MpcTensor;
using veil::Party;
using veil::agtest::Vis;
using veil::core::Tensor;
namespace agtest = veil::agtest;
namespace vt = veil::testing;

namespace {

using Op = std::function<MpcTensor(const MpcTensor&)>;
using Fn = std::function<double(double)>;

Tensor from(const std::vector<double>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

std::vector<double> logspace(double lo, double hi, int n) {
  std::vector<double> v;
  for (int i = 0; i < n; ++i) {
    v.push_back(lo * std::pow(hi / lo, static_cast<double>(i) / (n - 1)));
  }
  return v;
}

std::vector<double> linspace(double lo, double hi, int n) {
  std::vector<double> v;
  for (int i = 0; i < n; ++i) {
    v.push_back(lo + (hi - lo) * static_cast<double>(i) / (n - 1));
  }
  return v;
}

std::vector<double> mirrored(const std::vector<double>& v) {
  std::vector<double> out = v;
  for (double e : v) {
    out.push_back(-e);
  }
  return out;
}

// Public weights in [0.5, 1.5] with alternating signs: loss = sum(w * f(x)), so dx = w f'(x).
Tensor weights(int64_t n) {
  Tensor w = vt::uniform({n}, 0.5, 1.5, 77);
  double* pw = w.data<double>();
  for (int64_t i = 0; i < n; i += 2) {
    pw[i] = -pw[i];
  }
  return w;
}

struct Outcome {
  double forward = 0;  // max mixed error of f(x)
  double grad = 0;     // max mixed error of dx
};

// Runs loss = sum(w * op(x)) with x and w placed by `vis` (w secret from the last party when
// secret), backward, and compares with f and df at the encoded x and w (mixed error).
Outcome check_op(
    int n, Vis vis, const std::vector<double>& xs, const Op& op, const Fn& f, const Fn& df) {
  const Tensor x = from(xs);
  const Tensor w = weights(x.numel());
  const auto r = agtest::run(n, [&](Party& p) {
    MpcTensor xt = agtest::place(x, vis, 0, p);
    xt.set_requires_grad(true);
    const MpcTensor wt = agtest::place(w, vis == Vis::kMixed ? Vis::kPublic : vis,
                                       static_cast<std::size_t>(p.world_size() - 1), p);
    const MpcTensor out = op(xt);
    MpcTensor loss = veil::sum(veil::mul(out, wt));
    loss.backward();
    return std::vector<Tensor>{out.reveal(), xt.grad().reveal()};
  });
  const auto xq = agtest::quantize(x).to_vector<double>();
  const auto wq = agtest::quantize(w).to_vector<double>();
  const auto got = r[0].to_vector<double>();
  const auto grad = r[1].to_vector<double>();
  Outcome o;
  for (std::size_t i = 0; i < xq.size(); ++i) {
    const double fr = f(xq[i]);
    const double gr = wq[i] * df(xq[i]);
    o.forward = std::max(o.forward, std::abs(got[i] - fr) / std::max(std::abs(fr), 1.0));
    o.grad = std::max(o.grad, std::abs(grad[i] - gr) / std::max(std::abs(gr), 1.0));
  }
  return o;
}

struct Case {
  std::string name;
  Op op;
  Fn f;
  Fn df;
  std::vector<double> dense;  // dense grid of the domain (2 parties, secret)
  double forward_tol;         // mixed error bound of the forward
  double grad_tol;            // mixed error bound of the gradient
};

// Each op on its dense grid with 2 parties (secret), then on every 5th point with 3 parties
// (secret), with public inputs (2 parties; float64 forward, fixed-point backward), and mixed
// (secret x, public w).
void run_case(const Case& c) {
  std::vector<double> sparse;
  for (std::size_t i = 0; i < c.dense.size(); i += 5) {
    sparse.push_back(c.dense[i]);
  }
  struct Run {
    int n;
    Vis vis;
    const std::vector<double>* xs;
  };
  for (const Run& run : {Run{2, Vis::kSecret, &c.dense}, Run{3, Vis::kSecret, &sparse},
                         Run{2, Vis::kPublic, &sparse}, Run{3, Vis::kMixed, &sparse}}) {
    const Outcome o = check_op(run.n, run.vis, *run.xs, c.op, c.f, c.df);
    std::printf("%-12s n=%d %-6s: %4zu points, forward mixed err %.3g, grad %.3g\n", c.name.c_str(),
                run.n, agtest::vis_name(run.vis), run.xs->size(), o.forward, o.grad);
    INFO(c.name << " n = " << run.n << " " << agtest::vis_name(run.vis));
    CHECK(o.forward <= c.forward_tol);
    CHECK(o.grad <= c.grad_tol);
  }
}

}  // namespace

TEST_CASE("elementary autograd: exp", "[autograd][elementary]") {
  // e^x within 3e-3 relative (mixed here); dx = w e^x. The grid stops at 6 so that w e^x stays
  // far from the truncation bound.
  run_case({"exp", [](const MpcTensor& x) { return veil::exp(x); },
            [](double a) { return std::exp(a); }, [](double a) { return std::exp(a); },
            linspace(-10, 6, 600), 3e-3, 4e-3});
}

TEST_CASE("elementary autograd: log on [1e-4, 250]", "[autograd][elementary]") {
  // target: forward mixed <= 1e-2; dx = w / x through the positive reciprocal (<= 1e-3)
  run_case({"log", [](const MpcTensor& x) { return veil::log(x); },
            [](double a) { return std::log(a); }, [](double a) { return 1.0 / a; },
            logspace(1e-4, 250, 600), 1e-2, 1e-3});
}

TEST_CASE("elementary autograd: reciprocal and div", "[autograd][elementary]") {
  // 1/x of either sign (target mixed 1e-3); the gradient -w / x^2 is kept below ~2^15 (|x| >=
  // 0.05) so that the backward products stay inside the truncation bound
  run_case({"reciprocal", [](const MpcTensor& x) { return veil::reciprocal(x); },
            [](double a) { return 1.0 / a; }, [](double a) { return -1.0 / (a * a); },
            mirrored(logspace(0.05, 100, 300)), 1e-3, 2e-3});
  // div: secret / secret, secret / public, public / secret, against x / y and its gradients
  const Tensor x = vt::uniform({60}, -3, 3, 31);
  Tensor y = from(mirrored(logspace(0.2, 20, 30)));
  const Tensor w = weights(60);
  for (int n : {2, 3}) {
    for (int mode = 0; mode < 3; ++mode) {
      const auto r = agtest::run(n, [&](Party& p) {
        MpcTensor xt = agtest::place(x, mode == 2 ? Vis::kPublic : Vis::kSecret, 0, p);
        MpcTensor yt = agtest::place(y, mode == 1 ? Vis::kPublic : Vis::kSecret, 1, p);
        xt.set_requires_grad(true);
        yt.set_requires_grad(true);
        const MpcTensor out = veil::div(xt, yt);
        MpcTensor loss = veil::sum(veil::mul(out, MpcTensor::from_public(w, p)));
        loss.backward();
        return std::vector<Tensor>{out.reveal(), xt.grad().reveal(), yt.grad().reveal()};
      });
      const auto xq = agtest::quantize(x).to_vector<double>();
      const auto yq = agtest::quantize(y).to_vector<double>();
      const auto wq = agtest::quantize(w).to_vector<double>();
      double ef = 0;
      double ex = 0;
      double ey = 0;
      auto mixed = [](double g, double r0) {
        return std::abs(g - r0) / std::max(std::abs(r0), 1.0);
      };
      for (std::size_t i = 0; i < xq.size(); ++i) {
        ef = std::max(ef, mixed(r[0].to_vector<double>()[i], xq[i] / yq[i]));
        ex = std::max(ex, mixed(r[1].to_vector<double>()[i], wq[i] / yq[i]));
        ey = std::max(ey, mixed(r[2].to_vector<double>()[i], -wq[i] * xq[i] / (yq[i] * yq[i])));
      }
      std::printf("div n=%d mode %d: forward %.3g, dx %.3g, dy %.3g\n", n, mode, ef, ex, ey);
      INFO("n = " << n << ", mode " << mode);
      CHECK(ef <= 2e-3);
      CHECK(ex <= 2e-3);
      CHECK(ey <= 3e-3);
    }
  }
}

TEST_CASE("elementary autograd: sqrt and rsqrt", "[autograd][elementary]") {
  // sqrt on [1e-4, 1e4] (relative 1e-3 + one unit), dx = w / (2 sqrt x)
  run_case({"sqrt", [](const MpcTensor& x) { return veil::sqrt(x); },
            [](double a) { return std::sqrt(a); }, [](double a) { return 0.5 / std::sqrt(a); },
            logspace(1e-4, 1e4, 600), 1e-3, 1e-3});
  // rsqrt on [1e-2, 1e4] (the gradient -w x^-1.5 / 2 reaches 500 at 0.01)
  run_case({"rsqrt", [](const MpcTensor& x) { return veil::rsqrt(x); },
            [](double a) { return 1.0 / std::sqrt(a); },
            [](double a) { return -0.5 / (a * std::sqrt(a)); }, logspace(1e-2, 1e4, 600), 1e-3,
            2e-3});
}

TEST_CASE("elementary autograd: pow for every integer exponent", "[autograd][elementary]") {
  const std::vector<double> grid = mirrored(linspace(0.5, 2, 40));
  for (int k : {0, 1, 2, 3, 4, 5, 7, -1, -2, -3}) {
    run_case({"pow k=" + std::to_string(k), [k](const MpcTensor& x) { return veil::pow(x, k); },
              [k](double a) { return std::pow(a, k); },
              [k](double a) { return k == 0 ? 0.0 : k * std::pow(a, k - 1); }, grid, 2e-3, 3e-3});
  }
}

TEST_CASE("elementary autograd: cos and sin (periodic)", "[autograd][elementary]") {
  std::vector<double> grid = linspace(-std::numbers::pi, std::numbers::pi, 500);
  for (double v : linspace(-200, 200, 100)) {
    grid.push_back(v);
  }
  run_case({"cos", [](const MpcTensor& x) { return veil::cos(x); },
            [](double a) { return std::cos(a); }, [](double a) { return -std::sin(a); }, grid, 1e-4,
            3e-4});
  run_case({"sin", [](const MpcTensor& x) { return veil::sin(x); },
            [](double a) { return std::sin(a); }, [](double a) { return std::cos(a); }, grid, 1e-4,
            3e-4});
}

TEST_CASE("elementary autograd: erf", "[autograd][elementary]") {
  // forward: absolute 1e-3 on [-3, 3] and saturation beyond; dx = w 2/sqrt(pi) e^(-x^2)
  std::vector<double> grid = linspace(-3, 3, 400);
  grid.insert(grid.end(), {-5, -4.5, 4.5, 5, 8});
  run_case({"erf", [](const MpcTensor& x) { return veil::erf(x); },
            [](double a) { return std::erf(a); },
            [](double a) { return 2.0 / std::sqrt(std::numbers::pi) * std::exp(-a * a); }, grid,
            1e-3, 1e-3});
}

TEST_CASE("elementary autograd: rounds of forward and backward (2 parties)",
          "[autograd][elementary][cost]") {
  const Tensor x = from(logspace(0.5, 4, 8));
  const Tensor w = weights(8);
  // (forward, backward) online rounds with a secret x and a secret upstream gradient w
  auto rounds = [&](const Op& op) {
    auto out = veil::crypto::launch<std::vector<int64_t>>(vt::test_options(2), [&](Party& p) {
      MpcTensor xt = agtest::place(x, Vis::kSecret, 0, p);
      xt.set_requires_grad(true);
      const MpcTensor wt = agtest::place(w, Vis::kSecret, 1, p);
      const auto s0 = p.comm().stats();
      const MpcTensor y = op(xt);
      const auto s1 = p.comm().stats();
      MpcTensor loss = veil::sum(veil::mul(y, wt));
      const auto s2 = p.comm().stats();
      loss.backward();
      const auto s3 = p.comm().stats();
      return std::vector<int64_t>{(s1 - s0).total.rounds, (s3 - s2).total.rounds};
    });
    return std::make_pair(out[1][0], out[1][1]);
  };
  // c: the rounds of one batched comparison (ltz + b2a_bit, 8 today)
  const int64_t c = veil::crypto::launch<int64_t>(vt::test_options(2), [&](Party& p) {
    const MpcTensor xt = agtest::place(x, Vis::kSecret, 0, p);
    const auto s0 = p.comm().stats();
    veil::crypto::b2a_bit(p, veil::crypto::ltz(p, xt.ashare()));
    return (p.comm().stats() - s0).total.rounds;
  })[1];
  using P = std::pair<int64_t, int64_t>;
  CHECK(rounds([](const MpcTensor& v) { return veil::exp(v); }) == P{10, 1});
  CHECK(rounds([](const MpcTensor& v) { return veil::log(v); }) == P{c + 4, c + 7});
  CHECK(rounds([](const MpcTensor& v) { return veil::reciprocal(v); }) == P{c + 6, 2});
  CHECK(rounds([](const MpcTensor& v) { return veil::sqrt(v); }) == P{c + 5, 1});
  CHECK(rounds([](const MpcTensor& v) { return veil::rsqrt(v); }) == P{c + 5, 3});
  CHECK(rounds([](const MpcTensor& v) { return veil::pow(v, 3); }) == P{2, 2});
  CHECK(rounds([](const MpcTensor& v) { return veil::pow(v, -2); }) == P{c + 7, 2});
  CHECK(rounds([](const MpcTensor& v) { return veil::cos(v); }) == P{1, 1});
  CHECK(rounds([](const MpcTensor& v) { return veil::sin(v); }) == P{1, 1});
  // erf: the forward is crypto::erf's (its comparisons belong to approx.h); the backward reuses
  // the Gaussian factor of the forward: one mul
  const P erf_rounds = rounds([](const MpcTensor& v) { return veil::erf(v); });
  std::printf("rounds (N = 2): comparison %lld, erf forward %lld\n", static_cast<long long>(c),
              static_cast<long long>(erf_rounds.first));
  CHECK(erf_rounds.second == 1);
}

TEST_CASE("elementary autograd: bad inputs throw ValueError naming the op",
          "[autograd][elementary]") {
  const Tensor x = from({0.5, 1.0, 2.0});
  auto throws_in = [&](const std::string& name, const std::function<MpcTensor(Party&)>& fn) {
    INFO(name);
    CHECK_THROWS_WITH(agtest::run(2, [&](Party& p) { return std::vector<Tensor>{fn(p).reveal()}; }),
                      Catch::Contains("[" + name + "]"));
  };
  // a secret operand with integer frac_bits (0) where fixed point is required
  auto as_int = [&](Party& p) {
    const MpcTensor s = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
    return MpcTensor::from_secret({s.ashare().data, 0}, p);
  };
  const std::vector<std::pair<std::string, Op>> unary = {{"exp",
                                                          [](const MpcTensor& v) {
                                                            return veil::exp(v);
                                                          }},
                                                         {"log",
                                                          [](const MpcTensor& v) {
                                                            return veil::log(v);
                                                          }},
                                                         {"reciprocal",
                                                          [](const MpcTensor& v) {
                                                            return veil::reciprocal(v);
                                                          }},
                                                         {"sqrt",
                                                          [](const MpcTensor& v) {
                                                            return veil::sqrt(v);
                                                          }},
                                                         {"rsqrt",
                                                          [](const MpcTensor& v) {
                                                            return veil::rsqrt(v);
                                                          }},
                                                         {"pow",
                                                          [](const MpcTensor& v) {
                                                            return veil::pow(v, 2);
                                                          }},
                                                         {"cos",
                                                          [](const MpcTensor& v) {
                                                            return veil::cos(v);
                                                          }},
                                                         {"sin",
                                                          [](const MpcTensor& v) {
                                                            return veil::sin(v);
                                                          }},
                                                         {"erf", [](const MpcTensor& v) {
                                                            return veil::erf(v);
                                                          }}};
  for (const auto& [name, op] : unary) {
    throws_in(name, [&, op = op](Party& p) { return op(as_int(p)); });
  }
  throws_in("div", [&](Party& p) { return veil::div(MpcTensor::from_public(x, p), as_int(p)); });
  // public inputs outside the domain
  auto pub = [](Party& p, std::vector<double> v) {
    return MpcTensor::from_public(from(v), p);
  };
  throws_in("log", [&](Party& p) { return veil::log(pub(p, {1.0, 0.0})); });
  throws_in("sqrt", [&](Party& p) { return veil::sqrt(pub(p, {1.0, -1.0})); });
  throws_in("rsqrt", [&](Party& p) { return veil::rsqrt(pub(p, {0.0})); });
  throws_in("reciprocal", [&](Party& p) { return veil::reciprocal(pub(p, {0.0, 2.0})); });
  throws_in("pow", [&](Party& p) { return veil::pow(pub(p, {0.0}), -1); });
  throws_in("div", [&](Party& p) { return veil::div(pub(p, {1.0, 2.0}), pub(p, {1.0, 0.0})); });
  throws_in("exp", [&](Party& p) { return veil::exp(pub(p, {100.0})); });  // e^100: out of range
  // exponents
  throws_in("pow", [&](Party& p) { return veil::pow(pub(p, {1.0}), 65); });
  throws_in("pow", [&](Party& p) { return veil::pow(as_int(p), -65); });
  // shapes that do not broadcast
  throws_in("div", [&](Party& p) {
    return veil::div(pub(p, {1.0, 2.0}), pub(p, {1.0, 2.0, 3.0}));
  });
}
