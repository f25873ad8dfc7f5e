// Gradient clipping: clip_grad_norm_ and clip_grad_value_ on secret, public and mixed gradients
// against float64 PyTorch formulas, 2 and 3 parties; their cost against the documented formulas;
// bad inputs.

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "optim/optim.h"
#include "tests/autograd/autograd_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::agtest::kUlp;
using veil::agtest::Tensor;
namespace optim = veil::optim;
namespace vt = veil::testing;

// Relative accuracy of crypto::inv_sqrt (its contract: 1e-3).
constexpr double kInvSqrtRel = 1e-3;

enum class Mode { kSecret, kPublic, kMixed };

// Parameters whose gradients are g[j] (secret, public, or the first secret and the others
// public), a parameter without gradient, then fn(params) on them. Returns the gradients after fn,
// the returned norm (or 0) and [norm is secret, the last gradient is undefined].
std::vector<Tensor> run_clip(int n,
                             Mode mode,
                             const std::vector<Tensor>& g,
                             const std::function<MpcTensor(std::vector<MpcTensor>&)>& fn) {
  return veil::agtest::run(n, [&](Party& p) {
    std::vector<MpcTensor> params;
    for (std::size_t j = 0; j < g.size(); ++j) {
      MpcTensor w =
          MpcTensor::from_public(Tensor::zeros(g[j].shape(), veil::core::DType::kFloat64), p);
      w.set_requires_grad();
      const bool secret = mode == Mode::kSecret || (mode == Mode::kMixed && j == 0);
      w.set_grad(secret ? MpcTensor::share(p.rank() == 1 ? g[j] : Tensor(), 1, g[j].shape(), p)
                        : MpcTensor::from_public(g[j], p));
      params.push_back(w);
    }
    MpcTensor none = MpcTensor::from_public(Tensor::zeros({2}, veil::core::DType::kFloat64), p);
    none.set_requires_grad();
    params.push_back(none);
    const MpcTensor norm = fn(params);
    std::vector<Tensor> out;
    for (std::size_t j = 0; j < g.size(); ++j) {
      out.push_back(params[j].grad().reveal());
    }
    out.push_back(norm.defined() ? norm.reveal() : Tensor::scalar(0.0));
    out.push_back(
        Tensor::from_vector(std::vector<double>{norm.defined() && norm.is_secret() ? 1.0 : 0.0,
                                                none.grad().defined() ? 0.0 : 1.0},
                            {2}));
    return out;
  });
}

double total_norm(const std::vector<Tensor>& g) {
  double s = 0;
  for (const Tensor& t : g) {
    for (double v : t.to_vector<double>()) {
      s += v * v;
    }
  }
  return std::sqrt(s);
}

}  // namespace

TEST_CASE("clip_grad_norm_ matches PyTorch's formula", "[optim][clip]") {
  // GIVEN gradients of total norm ~2.5 (two tensors) and ~0.04 (small gradients)
  const std::vector<Tensor> big{veil::agtest::quantize(vt::uniform({4, 5}, -1, 1, 61)),
                                veil::agtest::quantize(vt::uniform({6}, -1, 1, 62))};
  const std::vector<Tensor> small{veil::agtest::quantize(vt::uniform({4, 5}, -0.01, 0.01, 63)),
                                  veil::agtest::quantize(vt::uniform({6}, -0.01, 0.01, 64))};
  const std::vector<Tensor> huge{veil::agtest::quantize(vt::uniform({4, 5}, -30, 30, 65)),
                                 veil::agtest::quantize(vt::uniform({6}, -30, 30, 66))};
  struct Case {
    const std::vector<Tensor>* g;
    double max_norm;
  };
  // clipping by ~3x, no clipping, clipping tiny gradients (a = 7: S scaled by 2^14)
  // and exploding gradients: norm 300 and 9000 times max_norm (range levels 1 and 2)
  const std::vector<Case> cases{
      {&big, 1.0}, {&big, 5.0}, {&small, 0.01}, {&big, 0.01}, {&huge, 0.01}};
  for (const Case& c : cases) {
    const double norm = total_norm(*c.g);
    const double scale = std::min(1.0, c.max_norm / (norm + 1e-6));
    for (int n : {2, 3}) {
      for (Mode mode : {Mode::kSecret, Mode::kPublic, Mode::kMixed}) {
        INFO(n << " parties, mode " << static_cast<int>(mode) << ", max_norm " << c.max_norm
               << ", norm " << norm);
        // WHEN clipping
        const auto got = run_clip(n, mode, *c.g, [&](std::vector<MpcTensor>& ps) {
          return optim::clip_grad_norm_(ps, c.max_norm);
        });
        // THEN the norm and the gradients follow float64, with inv_sqrt's relative error
        const bool secret = mode != Mode::kPublic;
        const double norm_tol = secret ? norm * kInvSqrtRel + 4 * kUlp : kUlp;
        CHECK(std::abs(got[2].item<double>() - norm) <= norm_tol);
        for (std::size_t j = 0; j < c.g->size(); ++j) {
          const auto want = (*c.g)[j].to_vector<double>();
          const auto have = got[j].to_vector<double>();
          for (std::size_t i = 0; i < want.size(); ++i) {
            // the scale's relative error, and (secret) the scale itself is a fixed-point number:
            // |g| 2^-(f+1) more
            const double tol =
                (secret && scale < 1 ? std::abs(want[i]) * (scale * kInvSqrtRel + kUlp / 2) : 0) +
                2 * kUlp;
            CHECK(std::abs(have[i] - want[i] * scale) <= tol);
          }
        }
        const auto meta = got[3].to_vector<double>();
        CHECK(meta[0] == (secret ? 1.0 : 0.0));
        CHECK(meta[1] == 1.0);  // the parameter without a gradient is skipped
      }
    }
  }
}

TEST_CASE("clip_grad_value_ clamps every gradient element", "[optim][clip]") {
  const std::vector<Tensor> g{veil::agtest::quantize(vt::uniform({3, 7}, -2, 2, 71)),
                              veil::agtest::quantize(vt::uniform({9}, -2, 2, 72))};
  const double clip = 0.75;
  for (int n : {2, 3}) {
    for (Mode mode : {Mode::kSecret, Mode::kPublic, Mode::kMixed}) {
      INFO(n << " parties, mode " << static_cast<int>(mode));
      const auto got = run_clip(n, mode, g, [&](std::vector<MpcTensor>& ps) {
        optim::clip_grad_value_(ps, clip);
        return MpcTensor();
      });
      int clipped = 0;
      for (std::size_t j = 0; j < g.size(); ++j) {
        const auto want = g[j].to_vector<double>();
        const auto have = got[j].to_vector<double>();
        for (std::size_t i = 0; i < want.size(); ++i) {
          clipped += std::abs(want[i]) > clip ? 1 : 0;
          CHECK(have[i] == std::clamp(want[i], -clip, clip));  // exact
        }
      }
      CHECK(clipped > 5);
      CHECK(got[3].to_vector<double>()[1] == 1.0);
    }
  }
}

TEST_CASE("clipping costs match their formulas", "[optim][clip][cost]") {
  const int64_t m = 11 + 6;
  for (int n : {2, 3}) {
    const auto got = veil::crypto::launch<std::vector<int64_t>>(vt::test_options(n), [&](Party& p) {
      auto cost = [&](const std::function<void()>& fn) {
        const auto before = p.comm().stats();
        fn();
        const auto d = p.comm().stats() - before;
        return std::make_pair(d.total.rounds, d.total.bytes_sent);
      };
      auto secret = [&](const veil::core::Shape& s, uint64_t seed) {
        const Tensor v = vt::uniform(s, -1, 1, seed);
        return MpcTensor::share(p.rank() == 0 ? v : Tensor(), 0, s, p);
      };
      const veil::crypto::AShare probe = secret({2 * m}, 1).ashare();
      const auto lt2 = cost([&] { veil::crypto::lt(p, probe, probe); });
      const veil::crypto::AShare one = secret({1}, 2).ashare();
      const veil::crypto::AShare three = secret({3}, 3).ashare();
      const auto lt3 = cost([&] { veil::crypto::lt(p, three, three); });
      const auto isq1 =
          cost([&] { veil::crypto::inv_sqrt(p, veil::crypto::add_public(p, one, 2.0)); });
      std::vector<MpcTensor> ps;
      for (int64_t size : {11, 6}) {
        MpcTensor w = MpcTensor::zeros({size}, p);
        w.set_requires_grad();
        w.set_grad(secret({size}, static_cast<uint64_t>(size)));
        ps.push_back(w);
      }
      const auto value = cost([&] { optim::clip_grad_value_(ps, 0.5); });
      const auto norm = cost([&] { optim::clip_grad_norm_(ps, 1.0); });
      return std::vector<int64_t>{lt2.first,   lt2.second,  lt3.first,    lt3.second, isq1.first,
                                  isq1.second, value.first, value.second, norm.first, norm.second};
    })[1];
    const int64_t peers = n - 1;
    const int64_t trunc = n == 2 ? 0 : 1;
    INFO(n << " parties: clip_grad_value_ " << got[6] << " rounds / " << got[7]
           << " B, clip_grad_norm_ " << got[8] << " rounds / " << got[9] << " B");
    // clip_grad_value_: R_lt(2m) + 1 rounds, B_lt(2m) + 16(N-1)m bytes, no truncation
    CHECK(got[6] == got[0] + 1);
    CHECK(got[7] == got[1] + 16 * peers * m);
    // clip_grad_norm_: R_lt(3) + R_isq(1) + 4 rounds (+8 truncations for N > 2);
    // 24(N-1)m + 216(N-1) bytes + B_lt(3) + B_isq(1) (+ 8(m + 7) for N > 2)
    CHECK(got[8] == got[2] + got[4] + 4 + 8 * trunc);
    CHECK(got[9] == 24 * peers * m + 216 * peers + got[3] + got[5] + trunc * 8 * (m + 7));
  }
}

TEST_CASE("clipping rejects bad arguments", "[optim][clip][errors]") {
  const auto msgs =
      veil::crypto::launch<std::vector<std::string>>(vt::test_options(2), [](Party& p) {
        MpcTensor w = MpcTensor::zeros({3}, p);
        w.set_requires_grad();
        w.set_grad(MpcTensor::zeros({3}, p));
        std::vector<std::string> out;
        auto error_of = [&](const std::function<void()>& fn) -> std::string {
          try {
            fn();
          } catch (const veil::ValueError& e) {
            return e.what();
          }
          return "no exception";
        };
        out.push_back(error_of([&] { optim::clip_grad_norm_({w}, 0.0); }));
        out.push_back(error_of([&] { optim::clip_grad_value_({w}, -1.0); }));
        w.set_grad(
            MpcTensor::from_public_ring(Tensor::zeros({3}, veil::core::DType::kRing64), 0, p));
        out.push_back(error_of([&] { optim::clip_grad_value_({w}, 1.0); }));
        // no gradients at all: norm 0
        MpcTensor v = MpcTensor::zeros({2}, p);
        out.push_back(std::to_string(optim::clip_grad_norm_({v}, 1.0).reveal().item<double>()));
        return out;
      })[0];
  CHECK_THAT(msgs[0], Catch::StartsWith("[clip_grad_norm_] expected max_norm > 0"));
  CHECK_THAT(msgs[1], Catch::StartsWith("[clip_grad_value_] expected clip_value >= 0"));
  CHECK_THAT(msgs[2], Catch::StartsWith("[clip_grad_value_] expected the gradient of parameter 0"));
  CHECK(std::stod(msgs[3]) == 0.0);
}
