// Losses with a reduction (autograd/losses.h): values and gradients against float64 formulas for
// every reduction, 2 and 3 parties, secret / mixed (secret input, public target) / public inputs;
// the BCE clamp; bad inputs.

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "tests/autograd/autograd_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::Reduction;
using veil::agtest::kUlp;
using veil::agtest::Tensor;
using veil::agtest::Vis;
namespace vt = veil::testing;

// Accuracy contracts of the protocols the losses use (crypto/protocols/*.h): crypto::log (1e-2
// mixed on its domain), crypto::exp (3e-3 relative), crypto::sigmoid (2e-3), softmax (1e-3).
constexpr double kLogErr = 1e-2;
constexpr double kExpRel = 3e-3;
constexpr double kSigmoidErr = 2e-3;
constexpr double kSoftmaxErr = 1e-3;
// crypto::reciprocal with a range: relative 1e-4 on the range.
constexpr double kRecipRel = 1e-4;
// The fixed-point encoding of the BCE clamp 1e-4.
const double kBceEps = std::round(1e-4 * 65536) / 65536;

// Per-element float64 reference: the loss terms and their derivatives.
struct Ref {
  std::vector<double> loss;
  std::vector<double> grad;
};

// Expected reduced value and gradient for reduction r (w: the public weights of kNone's
// sum(w * loss) backward).
struct Expect {
  std::vector<double> value;
  std::vector<double> grad;
};
Expect expect(const Ref& ref, Reduction r, const std::vector<double>& w, int64_t rows) {
  Expect e;
  const double n = static_cast<double>(rows);
  if (r == Reduction::kNone) {
    e.value = ref.loss;
  } else {
    double s = 0;
    for (double v : ref.loss) {
      s += v;
    }
    e.value = {r == Reduction::kMean ? s / n : s};
  }
  const std::size_t per_row = ref.grad.size() / static_cast<std::size_t>(rows);
  for (std::size_t i = 0; i < ref.grad.size(); ++i) {
    const double c = r == Reduction::kNone ? w[i / per_row] : (r == Reduction::kMean ? 1 / n : 1);
    e.grad.push_back(ref.grad[i] * c);
  }
  return e;
}

const char* name_of(Reduction r) {
  return r == Reduction::kMean ? "mean" : (r == Reduction::kSum ? "sum" : "none");
}

// Runs loss(x, t, r) with x placed per vis (input 0) and t (input 1), backward (kNone: through
// sum(w * loss)), returns {value, dx}.
std::vector<Tensor> run_loss(
    int n,
    Vis vis,
    const Tensor& x,
    const Tensor& t,
    Reduction r,
    const Tensor& w,
    const std::function<MpcTensor(const MpcTensor&, const MpcTensor&, Reduction)>& loss) {
  return veil::agtest::run(n, [&](Party& p) {
    MpcTensor xs = veil::agtest::place(x, vis, 0, p);
    const MpcTensor ts = veil::agtest::place(t, vis, 1, p);
    xs.set_requires_grad();
    const MpcTensor l = loss(xs, ts, r);
    if (r == Reduction::kNone) {
      veil::sum(veil::mul(l, MpcTensor::from_public(w, p))).backward();
    } else {
      l.backward();
    }
    return std::vector<Tensor>{l.reveal(), xs.grad().reveal()};
  });
}

// Checks one loss for every reduction, party count and visibility. value_tol(e, r, secret) and
// grad_tol(e, r, secret) give the tolerances.
void check_loss(const Tensor& x,
                const Tensor& t,
                const Ref& ref,
                int64_t rows,
                const std::function<MpcTensor(const MpcTensor&, const MpcTensor&, Reduction)>& loss,
                const std::function<double(Reduction, bool)>& value_tol,
                const std::function<double(Reduction, bool)>& grad_tol) {
  const Tensor w = veil::agtest::quantize(vt::uniform({rows}, 0.5, 2, 7));
  const auto wv = w.to_vector<double>();
  for (Reduction r : {Reduction::kMean, Reduction::kSum, Reduction::kNone}) {
    const Expect e = expect(ref, r, wv, rows);
    for (int n : {2, 3}) {
      for (Vis vis : {Vis::kSecret, Vis::kMixed, Vis::kPublic}) {
        INFO(name_of(r) << ", " << n << " parties, " << veil::agtest::vis_name(vis));
        const bool secret = vis != Vis::kPublic;
        const auto got = run_loss(n, vis, x, t, r, w, loss);
        const auto value = got[0].to_vector<double>();
        const auto grad = got[1].to_vector<double>();
        REQUIRE(value.size() == e.value.size());
        REQUIRE(grad.size() == e.grad.size());
        for (std::size_t i = 0; i < value.size(); ++i) {
          CHECK(std::abs(value[i] - e.value[i]) <= value_tol(r, secret));
        }
        for (std::size_t i = 0; i < grad.size(); ++i) {
          CHECK(std::abs(grad[i] - e.grad[i]) <= grad_tol(r, secret));
        }
      }
    }
  }
}

std::string error_of(const std::function<void(Party&)>& fn) {
  return veil::crypto::launch<std::string>(vt::test_options(2), [&](Party& p) {
    try {
      fn(p);
    } catch (const veil::ValueError& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  })[0];
}

}  // namespace

TEST_CASE("mse_loss and l1_loss with every reduction", "[autograd][losses]") {
  const int64_t rows = 6;
  const Tensor x = veil::agtest::quantize(vt::uniform({rows, 4}, -2, 2, 1));
  const Tensor y = veil::agtest::quantize(vt::uniform({rows, 4}, -2, 2, 2));
  const auto xv = x.to_vector<double>();
  const auto yv = y.to_vector<double>();
  // kNone returns per-element losses: weights per element, so treat every element as a "row"
  const int64_t n = rows * 4;
  Ref mse;
  Ref l1;
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const double d = xv[i] - yv[i];
    mse.loss.push_back(d * d);
    mse.grad.push_back(2 * d);
    l1.loss.push_back(std::abs(d));
    l1.grad.push_back(d >= 0 ? 1.0 : -1.0);
  }
  const Tensor xf = x.reshape({n});
  const Tensor yf = y.reshape({n});
  // values: 1 ulp per square (truncation), summed; the mean's coefficient 2^-15 relative
  check_loss(
      xf, yf, mse, n,
      [](const MpcTensor& a, const MpcTensor& b, Reduction r) { return veil::mse_loss(a, b, r); },
      [&](Reduction r, bool) {
        return r == Reduction::kSum ? n * kUlp : 2 * kUlp + 16 * std::ldexp(1.0, -15);
      },
      // fused backward: one truncation (kNone: two, then an exact doubling)
      [&](Reduction, bool) { return 3 * kUlp; });
  check_loss(
      xf, yf, l1, n,
      [](const MpcTensor& a, const MpcTensor& b, Reduction r) { return veil::l1_loss(a, b, r); },
      [&](Reduction, bool) { return 2 * kUlp + 4 * std::ldexp(1.0, -15); },
      [&](Reduction, bool) { return kUlp; });
}

TEST_CASE("binary_cross_entropy with every reduction", "[autograd][losses]") {
  // GIVEN probabilities in [0.3, 0.7] and soft targets
  const int64_t n = 12;
  const Tensor pr = veil::agtest::quantize(vt::uniform({n}, 0.3, 0.7, 11));
  const Tensor t = veil::agtest::quantize(vt::uniform({n}, 0, 1, 12));
  Ref ref;
  const auto pv = pr.to_vector<double>();
  const auto tv = t.to_vector<double>();
  for (std::size_t i = 0; i < pv.size(); ++i) {
    ref.loss.push_back(-(tv[i] * std::log(pv[i]) + (1 - tv[i]) * std::log(1 - pv[i])));
    ref.grad.push_back((pv[i] - tv[i]) / (pv[i] * (1 - pv[i])));
  }
  // secret: the log error per term (t + (1 - t) = 1 log error); public: 1 ulp per element
  check_loss(
      pr, t, ref, n,
      [](const MpcTensor& a, const MpcTensor& b, Reduction r) {
        return veil::binary_cross_entropy(a, b, r);
      },
      [&](Reduction r, bool secret) {
        const double per = secret ? kLogErr : 2 * kUlp;
        return (r == Reduction::kSum ? n * per : per) + 4 * kUlp;
      },
      // 1/p + 1/(1-p) <= 4.8 with the reciprocal's relative error, a few ulp for the products;
      // times the upstream factor (1/n, 1, or w <= 2)
      [&](Reduction r, bool secret) {
        const double coef = r == Reduction::kMean ? 1.0 / n : (r == Reduction::kSum ? 1.0 : 2.0);
        return coef * ((secret ? 4.8 * kRecipRel : 0) + 8 * kUlp) + 2 * kUlp;
      });
}

TEST_CASE("binary_cross_entropy clamps probabilities at 0 and 1", "[autograd][losses]") {
  // GIVEN probabilities at and beyond the clamp, integer 0/1 targets (frac_bits 0)
  const std::vector<double> pv{0.0, 1e-5, 0.5, 1.0, 0.99999, 0.25, 0.0, 1.0};
  const std::vector<uint64_t> tv{1, 1, 0, 0, 0, 1, 0, 1};
  const Tensor pr = veil::agtest::quantize(Tensor::from_vector(pv, {8}));
  const Tensor t = Tensor::from_vector(tv, {8});
  for (int n : {2, 3}) {
    for (bool secret : {true, false}) {
      const auto got = veil::agtest::run(n, [&](Party& p) {
        MpcTensor ps = secret ? MpcTensor::share(p.rank() == 0 ? pr : Tensor(), 0, {8}, p)
                              : MpcTensor::from_public(pr, p);
        ps.set_requires_grad();
        const MpcTensor ts = MpcTensor::from_public_ring(t, 0, p);
        const MpcTensor l = veil::binary_cross_entropy(ps, ts, Reduction::kSum);
        l.backward();
        return std::vector<Tensor>{ps.grad().reveal(), l.reveal()};
      });
      const auto g = got[0].to_vector<double>();
      double want_loss = 0;
      double log_tol = 0;  // crypto::log's contract: mixed 1e-2 per term
      const auto pq = pr.to_vector<double>();
      for (std::size_t i = 0; i < 8; ++i) {
        const double pc = std::clamp(pq[i], kBceEps, 1 - kBceEps);
        const double ti = static_cast<double>(tv[i]);
        const double want = -ti / pc + (1 - ti) / (1 - pc);
        INFO(n << " parties, " << (secret ? "secret" : "public") << ", p = " << pv[i]);
        // THEN the gradient is PyTorch's formula at the clamped p: finite, |dp| <= 1 / eps
        CHECK(std::abs(g[i] - want) <= std::abs(want) * 2 * kRecipRel + 8 * kUlp);
        const double term = ti * std::log(pc) + (1 - ti) * std::log(1 - pc);
        want_loss -= term;
        log_tol += kLogErr * std::max(std::abs(term), 1.0);
      }
      // AND the value is finite: each term >= log(eps) ~ -9.14
      INFO("loss " << got[1].item<double>() << " vs " << want_loss);
      CHECK(std::abs(got[1].item<double>() - want_loss) <= (secret ? log_tol : 0) + 8 * kUlp);
    }
  }
}

TEST_CASE("binary_cross_entropy_with_logits with every reduction", "[autograd][losses]") {
  const int64_t n = 16;
  const Tensor x = veil::agtest::quantize(vt::uniform({n}, -6, 6, 21));
  const Tensor t = veil::agtest::quantize(vt::uniform({n}, 0, 1, 22));
  Ref ref;
  const auto xv = x.to_vector<double>();
  const auto tv = t.to_vector<double>();
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const double v = xv[i];
    ref.loss.push_back(std::max(v, 0.0) - v * tv[i] + std::log1p(std::exp(-std::abs(v))));
    ref.grad.push_back(1 / (1 + std::exp(-v)) - tv[i]);
  }
  // secret: log on [1, 2] + exp's relative error times e^-|x| / (1 + e^-|x|) <= 1/2
  check_loss(
      x, t, ref, n,
      [](const MpcTensor& a, const MpcTensor& b, Reduction r) {
        return veil::binary_cross_entropy_with_logits(a, b, r);
      },
      [&](Reduction r, bool secret) {
        const double per = secret ? kLogErr + kExpRel / 2 : 2 * kUlp;
        return (r == Reduction::kSum ? n * per : per) + 4 * kUlp;
      },
      [&](Reduction r, bool secret) {
        const double per = secret ? kSigmoidErr : kUlp;
        return (r == Reduction::kMean ? per / n : per * 2) + 2 * kUlp;
      });
}

TEST_CASE("nll_loss and cross_entropy with every reduction", "[autograd][losses]") {
  const int64_t rows = 6;
  const int64_t c = 5;
  const Tensor logits = veil::agtest::quantize(vt::uniform({rows, c}, -4, 4, 31));
  const Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 3, 4, 1, 1, 2}, {rows});
  const auto lv = logits.to_vector<double>();
  const auto yv = labels.to_vector<int64_t>();
  Ref nll;
  Ref ce;
  for (int64_t i = 0; i < rows; ++i) {
    const double* row = lv.data() + i * c;
    const double mx = *std::max_element(row, row + c);
    double total = 0;
    for (int64_t j = 0; j < c; ++j) {
      total += std::exp(row[j] - mx);
    }
    const auto y = static_cast<int64_t>(yv[static_cast<std::size_t>(i)]);
    nll.loss.push_back(-row[y]);
    ce.loss.push_back(mx + std::log(total) - row[y]);
    for (int64_t j = 0; j < c; ++j) {
      nll.grad.push_back(j == y ? -1.0 : 0.0);
      ce.grad.push_back(std::exp(row[j] - mx) / total - (j == y ? 1.0 : 0.0));
    }
  }
  const Tensor w = veil::agtest::quantize(vt::uniform({rows}, 0.5, 2, 7));
  for (Reduction r : {Reduction::kMean, Reduction::kSum, Reduction::kNone}) {
    const Expect e_nll = expect(nll, r, w.to_vector<double>(), rows);
    const Expect e_ce = expect(ce, r, w.to_vector<double>(), rows);
    for (int n : {2, 3}) {
      for (bool secret : {true, false}) {
        INFO(name_of(r) << ", " << n << " parties, " << (secret ? "secret" : "public"));
        const auto got = veil::agtest::run(n, [&](Party& p) {
          MpcTensor xs = secret
                             ? MpcTensor::share(p.rank() == 0 ? logits : Tensor(), 0, {rows, c}, p)
                             : MpcTensor::from_public(logits, p);
          xs.set_requires_grad();
          const MpcTensor wt = MpcTensor::from_public(w, p);
          std::vector<Tensor> out;
          for (int which = 0; which < 2; ++which) {
            xs.zero_grad();
            const MpcTensor l =
                which == 0 ? veil::nll_loss(xs, labels, r) : veil::cross_entropy(xs, labels, r);
            if (r == Reduction::kNone) {
              veil::sum(veil::mul(l, wt)).backward();
            } else {
              l.backward();
            }
            out.push_back(l.reveal());
            out.push_back(xs.grad().reveal());
          }
          return out;
        });
        // nll: exact but for the mean's coefficient (2^-15) and the upstream 1/N on the f-bit grid
        const auto v0 = got[0].to_vector<double>();
        const auto g0 = got[1].to_vector<double>();
        for (std::size_t i = 0; i < v0.size(); ++i) {
          CHECK(std::abs(v0[i] - e_nll.value[i]) <= 4 * std::ldexp(1.0, -15) + kUlp);
        }
        for (std::size_t i = 0; i < g0.size(); ++i) {
          CHECK(std::abs(g0[i] - e_nll.grad[i]) <= 2 * kUlp);
        }
        // cross-entropy: per row the softmax (sum of exp: relative kExpRel) and the log
        const double per_row = secret ? kLogErr + kExpRel + kSoftmaxErr : 2 * kUlp;
        // kMean is veil::cross_entropy, whose mean multiplies by the f-bit encoding of 1/N
        const double vtol = r == Reduction::kSum    ? rows * per_row
                            : r == Reduction::kMean ? per_row + 5 * rows * std::ldexp(1.0, -17)
                                                    : per_row;
        const auto v1 = got[2].to_vector<double>();
        const auto g1 = got[3].to_vector<double>();
        for (std::size_t i = 0; i < v1.size(); ++i) {
          CHECK(std::abs(v1[i] - e_ce.value[i]) <= vtol + 4 * kUlp);
        }
        const double gtol = (secret ? kSoftmaxErr : 2 * kUlp) * (r == Reduction::kNone ? 2 : 1);
        for (std::size_t i = 0; i < g1.size(); ++i) {
          CHECK(std::abs(g1[i] - e_ce.grad[i]) <= gtol + 2 * kUlp);
        }
      }
    }
  }
}

TEST_CASE("losses reject bad inputs", "[autograd][losses][errors]") {
  auto a3 = [](Party& p) {
    return MpcTensor::from_public(vt::uniform({3}, 0.2, 0.8, 1), p);
  };
  auto b4 = [](Party& p) {
    return MpcTensor::from_public(vt::uniform({4}, 0.2, 0.8, 2), p);
  };
  CHECK_THAT(
      error_of([&](Party& p) { veil::mse_loss(a3(p), b4(p), Reduction::kSum); }),
      Catch::StartsWith("[mse_loss] expected input and target of equal shapes, got [3] and [4]"));
  CHECK_THAT(error_of([&](Party& p) { veil::l1_loss(a3(p), b4(p), Reduction::kNone); }),
             Catch::StartsWith("[l1_loss] expected input and target of equal shapes"));
  CHECK_THAT(error_of([&](Party& p) { veil::binary_cross_entropy(a3(p), b4(p)); }),
             Catch::StartsWith("[binary_cross_entropy] expected input and target of equal shapes"));
  CHECK_THAT(
      error_of([&](Party& p) {
        const MpcTensor ints =
            MpcTensor::from_public_ring(Tensor::zeros({3}, veil::core::DType::kRing64), 0, p);
        veil::binary_cross_entropy(ints, a3(p));
      }),
      Catch::StartsWith("[binary_cross_entropy] expected an input with frac_bits 16, got 0"));
  CHECK_THAT(error_of([&](Party& p) { veil::binary_cross_entropy_with_logits(b4(p), a3(p)); }),
             Catch::StartsWith("[binary_cross_entropy_with_logits] expected input and target"));
  const Tensor lp = vt::uniform({2, 3}, -3, 0, 3);
  CHECK_THAT(error_of([&](Party& p) {
               veil::nll_loss(MpcTensor::from_public(lp, p),
                              Tensor::from_vector(std::vector<int64_t>{0, 3}, {2}));
             }),
             Catch::StartsWith("[nll_loss] class index 3 at row 1 out of range [0, 3)"));
  CHECK_THAT(error_of([&](Party& p) {
               veil::nll_loss(MpcTensor::from_public(lp, p),
                              Tensor::from_vector(std::vector<double>{0, 1}, {2}));
             }),
             Catch::StartsWith("[nll_loss] expected int64 class indices of shape [2]"));
  CHECK_THAT(error_of([&](Party& p) {
               veil::nll_loss(a3(p), Tensor::from_vector(std::vector<int64_t>{0}, {1}));
             }),
             Catch::StartsWith("[nll_loss] expected log-probabilities [N, C]"));
  CHECK_THAT(error_of([&](Party& p) {
               const Tensor wide = vt::uniform({2, 4097}, -1, 1, 4);
               const MpcTensor xs =
                   MpcTensor::share(p.rank() == 0 ? wide : Tensor(), 0, wide.shape(), p);
               veil::cross_entropy(xs, Tensor::from_vector(std::vector<int64_t>{0, 1}, {2}),
                                   Reduction::kSum);
             }),
             Catch::StartsWith("[cross_entropy] secret logits support at most 4096 classes"));
  CHECK_THAT(error_of([&](Party& p) {
               veil::cross_entropy(MpcTensor::from_public(lp, p),
                                   MpcTensor::from_public(vt::uniform({2, 4}, 0, 1, 5), p),
                                   Reduction::kNone);
             }),
             Catch::StartsWith("[cross_entropy] expected a one-hot target of shape [2, 3]"));
}

TEST_CASE("secret loss values are deferred until used", "[autograd][losses]") {
  // GIVEN a secret BCE-with-logits loss that is only backpropagated
  const Tensor x = vt::uniform({8}, -3, 3, 41);
  const auto rounds =
      veil::crypto::launch<std::vector<int64_t>>(vt::test_options(2), [&](Party& p) {
        MpcTensor xs = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, {8}, p);
        xs.set_requires_grad();
        const MpcTensor t = MpcTensor::zeros({8}, p);
        const auto r0 = p.comm().stats().total.rounds;
        const MpcTensor l = veil::binary_cross_entropy_with_logits(xs, t, Reduction::kSum);
        const auto r1 = p.comm().stats().total.rounds;
        l.backward();
        const auto r2 = p.comm().stats().total.rounds;
        l.reveal();
        const auto r3 = p.comm().stats().total.rounds;
        return std::vector<int64_t>{r1 - r0, r2 - r1, r3 - r2};
      })[0];
  // THEN the forward communicates nothing, backward only the sigmoid, and the reveal pays the
  // exp and log (and its own round)
  CHECK(rounds[0] == 0);
  CHECK(rounds[1] > 0);
  CHECK(rounds[2] > 10);
}
