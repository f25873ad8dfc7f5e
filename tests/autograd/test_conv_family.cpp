// Differentiable conv1d, conv_transpose2d and general / adaptive pooling (autograd/conv_ops.h):
// forward and input/weight gradients against float64 references written from the PyTorch
// definitions (tests/harness/conv_reference.h), secret (2 and 3 parties), public (bit-exact
// fixed point) and mixed; backward costs read from the communicator; bad inputs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "core/conv.h"
#include "core/error.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"
#include "tests/autograd/autograd_test_util.h"
#include "tests/harness/conv_reference.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
namespace ag = veil::agtest;
namespace core = veil::core;
using core::DType;
using core::Shape;
using core::Tensor;
using veil::MpcTensor;

namespace {

core::ConvTranspose2dParams tparams(int64_t s, int64_t pad, int64_t opad, int64_t d, int64_t g) {
  core::ConvTranspose2dParams p;
  p.stride_h = p.stride_w = s;
  p.pad_h = p.pad_w = pad;
  p.output_pad_h = p.output_pad_w = opad;
  p.dilation_h = p.dilation_w = d;
  p.groups = g;
  return p;
}

// y = op(x, w) with inputs placed per `vis`, seeded with the upstream gradient g through
// sum(y * g); returns {y, dx, dw} revealed.
template <class Op>
std::vector<Tensor> run_bilinear(
    int n, ag::Vis vis, const Tensor& x, const Tensor& w, const Tensor& g, Op op) {
  return ag::run(n, [&](veil::Party& party) {
    MpcTensor xs = ag::place(x, vis, 0, party);
    MpcTensor ws = ag::place(w, vis, 1, party);
    const MpcTensor gs = ag::place(g, vis, 2, party);
    xs.set_requires_grad(true);
    ws.set_requires_grad(true);
    const MpcTensor y = op(xs, ws);
    veil::sum(veil::mul(y, gs)).backward();
    return std::vector<Tensor>{y.reveal(), xs.grad().reveal(), ws.grad().reveal()};
  });
}

}  // namespace

TEST_CASE(
    "conv_transpose2d forward and gradients match float64 (secret 2/3 parties, public, mixed)",
    "[autograd][conv]") {
  struct Case {
    Shape x;
    Shape w;
    core::ConvTranspose2dParams p;
  };
  const std::vector<Case> cases = {
      {{2, 4, 3, 4}, {4, 3, 3, 3}, tparams(2, 1, 1, 1, 2)},
      {{1, 2, 3, 3}, {2, 2, 2, 3}, tparams(1, 1, 2, 3, 1)},  // output pad >= stride
  };
  uint64_t seed = 10;
  for (const Case& c : cases) {
    const Shape ys = core::conv_transpose2d_out_shape(c.x, c.w, c.p);
    const Tensor x = vt::uniform(c.x, -1, 1, seed++);
    const Tensor w = vt::uniform(c.w, -1, 1, seed++);
    const Tensor g = vt::uniform(ys, -1, 1, seed++);
    const vt::BilinearRef ref = vt::naive_conv_transpose2d<double>(x, w, c.p, g);
    // reduction lengths: y sums <= C_in/groups kh kw products, dx C_out/groups kh kw, dw
    // N H W; operands in [-1, 1] are encoded with error <= 2^-17 and the seeded gradient is off by
    // <= 1 ulp, so a sum of K products is off by <= 1.5 K ulp, plus truncations
    const double k_y = static_cast<double>(c.x[1] / c.p.groups * c.w[2] * c.w[3]);
    const double k_dx = static_cast<double>(c.w[1] * c.w[2] * c.w[3]);
    const double k_dw = static_cast<double>(c.x[0] * c.x[2] * c.x[3]);
    auto op = [&](const MpcTensor& a, const MpcTensor& b) {
      return veil::conv_transpose2d(a, b, c.p);
    };
    for (int n : {2, 3}) {
      for (ag::Vis vis : {ag::Vis::kSecret, ag::Vis::kPublic, ag::Vis::kMixed}) {
        if (vis != ag::Vis::kSecret && n == 3) {
          continue;
        }
        INFO(core::conv_transpose2d_params_str(c.p)
             << ", parties " << n << ", " << ag::vis_name(vis));
        const auto r = run_bilinear(n, vis, x, w, g, op);
        REQUIRE(r[0].shape() == ref.y.shape());
        CHECK(vt::max_abs_diff(r[0], ref.y) <= (2 * k_y + 4) * vt::ulp());
        CHECK(vt::max_abs_diff(r[1], ref.dx) <= (2 * k_dx + 4) * vt::ulp());
        CHECK(vt::max_abs_diff(r[2], ref.dw) <= (2 * k_dw + 4) * vt::ulp());
      }
    }
  }
}

TEST_CASE("public conv_transpose2d is bit-exact fixed point", "[autograd][conv]") {
  // GIVEN operands on the fixed-point grid; THEN the public result is floor(ring product / 2^f)
  const core::ConvTranspose2dParams p = tparams(2, 1, 1, 1, 1);
  const Tensor x = ag::quantize(vt::uniform({1, 2, 3, 3}, -1, 1, 21));
  const Tensor w = ag::quantize(vt::uniform({2, 3, 3, 3}, -1, 1, 22));
  const auto r = ag::run(2, [&](veil::Party& party) {
    const MpcTensor y = veil::conv_transpose2d(MpcTensor::from_public(x, party),
                                               MpcTensor::from_public(w, party), p);
    return std::vector<Tensor>{y.public_ring()};
  });
  const veil::crypto::FixedPointEncoder enc(16);
  const Tensor raw = core::conv_transpose2d(enc.encode(x, "test"), enc.encode(w, "test"), p);
  CHECK(r[0].to_vector<uint64_t>() == core::shift_right_arith(raw, 16).to_vector<uint64_t>());
}

TEST_CASE("conv_transpose2d backward opens both products in one round", "[autograd][conv]") {
  const core::ConvTranspose2dParams p = tparams(2, 1, 1, 1, 1);
  const Shape xs{2, 3, 3, 3};
  const Shape ws{3, 2, 3, 3};
  const Shape ys = core::conv_transpose2d_out_shape(xs, ws, p);
  const int64_t nx = core::shape_numel(xs);
  const int64_t nw = core::shape_numel(ws);
  const int64_t ny = core::shape_numel(ys);
  for (int n : {2, 3}) {
    INFO("parties " << n);
    const auto stats =
        veil::crypto::launch<std::vector<int64_t>>(vt::test_options(n), [&](veil::Party& party) {
          MpcTensor x = ag::place(vt::uniform(xs, -1, 1, 1), ag::Vis::kSecret, 0, party);
          MpcTensor w = ag::place(vt::uniform(ws, -1, 1, 2), ag::Vis::kSecret, 1, party);
          const MpcTensor g = ag::place(vt::uniform(ys, -1, 1, 3), ag::Vis::kSecret, 0, party);
          x.set_requires_grad(true);
          w.set_requires_grad(true);
          const auto s0 = party.comm().stats();
          const MpcTensor y = veil::conv_transpose2d(x, w, p);
          const auto s1 = party.comm().stats();
          const MpcTensor loss = veil::sum(veil::mul(y, g));
          const auto s2 = party.comm().stats();
          loss.backward();  // y's upstream gradient: g * 1 (one truncation)
          const auto s3 = party.comm().stats();
          const auto f = s1 - s0;
          const auto b = s3 - s2;
          return std::vector<int64_t>{f.total.rounds, f.total.bytes_sent, b.total.rounds,
                                      b.total.bytes_sent};
        })[1];
    const int64_t peers = n - 1;
    const int64_t trunc = n > 2 ? 1 : 0;
    // forward: 1 round, 8(N-1)(|x| + |w|) + truncation of |y|
    CHECK(stats[0] == 1 + trunc);
    CHECK(stats[1] == 8 * peers * (nx + nw) + trunc * 8 * ny);
    // backward: the truncation of g * 1 (N > 2), then dx = conv2d(g, w) and dw =
    // weight_grad(g, x) in one Beaver round, then their truncations in one round (N > 2)
    CHECK(stats[2] == 1 + 2 * trunc);
    CHECK(stats[3] == 8 * peers * (2 * ny + nw + nx) + trunc * 8 * (ny + nx + nw));
  }
}

TEST_CASE("conv1d forward and gradients match float64 (secret 2/3 parties, public)",
          "[autograd][conv]") {
  const core::Conv1dParams p{2, 1, 2, 2};
  const Shape xs{2, 4, 11};
  const Shape ws{6, 2, 3};
  const Shape ys = core::conv1d_out_shape(xs, ws, p);
  const Tensor x = vt::uniform(xs, -1, 1, 31);
  const Tensor w = vt::uniform(ws, -1, 1, 32);
  const Tensor g = vt::uniform(ys, -1, 1, 33);
  const vt::BilinearRef ref = vt::naive_conv1d<double>(x, w, p, g);
  const double k_y = 2 * 3;
  const double k_dx = 3 * 3;
  const double k_dw = static_cast<double>(ys[0] * ys[2]);
  auto op = [&](const MpcTensor& a, const MpcTensor& b) {
    return veil::conv1d(a, b, p);
  };
  for (int n : {2, 3}) {
    for (ag::Vis vis : {ag::Vis::kSecret, ag::Vis::kPublic}) {
      if (vis == ag::Vis::kPublic && n == 3) {
        continue;
      }
      INFO("parties " << n << ", " << ag::vis_name(vis));
      const auto r = run_bilinear(n, vis, x, w, g, op);
      REQUIRE(r[0].shape() == ref.y.shape());
      CHECK(vt::max_abs_diff(r[0], ref.y) <= (2 * k_y + 4) * vt::ulp());
      CHECK(vt::max_abs_diff(r[1], ref.dx) <= (2 * k_dx + 4) * vt::ulp());
      CHECK(vt::max_abs_diff(r[2], ref.dw) <= (2 * k_dw + 4) * vt::ulp());
    }
  }
}

namespace {

struct PoolCase {
  const char* name;
  bool is_max;
  bool adaptive;
  core::Pool2dParams p;
  Shape out_hw;
};

std::vector<PoolCase> pool_cases() {
  core::Pool2dParams rect;  // 3x2 window, stride 2x1, pad 1x1, dilation 1x2
  rect.kernel_h = 3;
  rect.kernel_w = 2;
  rect.stride_h = 2;
  rect.stride_w = 1;
  rect.pad_h = 1;
  rect.pad_w = 1;
  rect.dilation_w = 2;
  core::Pool2dParams exclude = core::Pool2dParams::square(3, 2, 1);
  exclude.count_include_pad = false;
  return {
      {"max 3x3 s2 p1", true, false, core::Pool2dParams::square(3, 2, 1), {}},
      {"max 2x2 s1 p1", true, false, core::Pool2dParams::square(2, 1, 1), {}},
      {"max rect", true, false, rect, {}},
      {"avg 3x3 s2 p1", false, false, core::Pool2dParams::square(3, 2, 1), {}},
      {"avg 3x3 s2 p1 exclude pad", false, false, exclude, {}},
      {"avg rect", false, false, rect, {}},
      {"adaptive avg 3x4", false, true, {}, {3, 4}},
      {"adaptive avg global", false, true, {}, {1, 1}},
      {"adaptive max 3x4", true, true, {}, {3, 4}},
      {"adaptive max 8x5", true, true, {}, {8, 5}},
  };
}

}  // namespace

TEST_CASE("padded, non-square and adaptive pooling: forward and gradient match float64",
          "[autograd][pool]") {
  const int64_t h = 7;
  const int64_t w = 6;
  const Tensor x = ag::quantize(vt::uniform({2, 2, h, w}, -2, 2, 41));
  uint64_t seed = 50;
  for (const PoolCase& c : pool_cases()) {
    const std::vector<vt::RefWindow> windows =
        c.adaptive ? vt::ref_adaptive_windows(h, w, c.out_hw[0], c.out_hw[1])
                   : vt::ref_pool_windows(h, w, c.p);
    const int64_t oh =
        c.adaptive
            ? c.out_hw[0]
            : (h + 2 * c.p.pad_h - c.p.dilation_h * (c.p.kernel_h - 1) - 1) / c.p.stride_h + 1;
    const int64_t ow = static_cast<int64_t>(windows.size()) / oh;
    const Tensor g = ag::quantize(vt::uniform({2, 2, oh, ow}, -1, 1, seed++));
    const vt::PoolRef ref = vt::ref_pool(x, windows, oh, ow, c.is_max, g);
    if (c.is_max) {
      // inputs on the fixed-point grid are compared exactly: without ties every run picks the
      // same maxima
      REQUIRE(ref.max_gap > vt::ulp() / 2);
    }
    double max_div = 0;
    for (const auto& win : windows) {
      max_div = std::max(max_div, win.divisor);
    }
    for (int n : {2, 3}) {
      for (ag::Vis vis : {ag::Vis::kSecret, ag::Vis::kPublic}) {
        if (vis == ag::Vis::kPublic && n == 3) {
          continue;
        }
        INFO(c.name << ", parties " << n << ", " << ag::vis_name(vis));
        const auto r = ag::run(n, [&](veil::Party& party) {
          MpcTensor xs = ag::place(x, vis, 0, party);
          const MpcTensor gs = ag::place(g, vis, 1, party);
          xs.set_requires_grad(true);
          MpcTensor y;
          if (c.adaptive) {
            y = c.is_max ? veil::adaptive_max_pool2d(xs, c.out_hw)
                         : veil::adaptive_avg_pool2d(xs, c.out_hw);
          } else {
            y = c.is_max ? veil::max_pool2d(xs, c.p) : veil::avg_pool2d(xs, c.p);
          }
          veil::sum(veil::mul(y, gs)).backward();
          return std::vector<Tensor>{y.reveal(), xs.grad().reveal()};
        });
        REQUIRE(r[0].shape() == ref.y.shape());
        // max: selection only (inputs on the grid), but the upstream 1.0 * g is truncated once,
        // off by one unit with probability 2^-16 per element for N > 2, and an element can win
        // several overlapping windows; avg: 1/d encoded with 16 bits
        // (relative 2^-17 d) times a window sum <= 2 d, plus truncations; the gradient g / d
        // spreads to at most ceil(k/s) windows per element
        const double tol = c.is_max ? 4.01 * vt::ulp() : (4.0 * max_div + 8) * vt::ulp();
        CHECK(vt::max_abs_diff(r[0], ref.y) <= tol);
        CHECK(vt::max_abs_diff(r[1], ref.dx) <= tol);
      }
    }
  }
}

TEST_CASE("generic pooling equals the square unpadded pooling of functions.h", "[autograd][pool]") {
  // GIVEN square unpadded windows; THEN the table-based ops give bit-identical values and gradients
  const Tensor x = ag::quantize(vt::uniform({1, 2, 6, 6}, -2, 2, 61));
  const Tensor g = ag::quantize(vt::uniform({1, 2, 3, 3}, -1, 1, 62));
  for (bool is_max : {true, false}) {
    const auto r = ag::run(2, [&](veil::Party& party) {
      std::vector<Tensor> out;
      for (bool generic : {false, true}) {
        MpcTensor xs = ag::place(x, ag::Vis::kSecret, 0, party);
        xs.set_requires_grad(true);
        const core::Pool2dParams p = core::Pool2dParams::square(2);
        const MpcTensor y =
            generic ? (is_max ? veil::max_pool2d(xs, p) : veil::avg_pool2d(xs, p))
                    : (is_max ? veil::max_pool2d(xs, 2, 2) : veil::avg_pool2d(xs, 2, 2));
        veil::sum(veil::mul(y, MpcTensor::from_public(g, party))).backward();
        out.push_back(y.reveal());
        out.push_back(xs.grad().reveal());
      }
      return out;
    });
    INFO((is_max ? "max" : "avg"));
    CHECK(vt::max_abs_diff(r[0], r[2]) <= 2 * vt::ulp());
    CHECK(vt::max_abs_diff(r[1], r[3]) <= 2 * vt::ulp());
  }
}

TEST_CASE("max pooling computes the argmax one-hot only when a gradient is needed",
          "[autograd][pool]") {
  // GIVEN a secret input; WHEN max-pooled without grad; THEN the cost is max_lastdim's alone
  const Tensor x = vt::uniform({1, 2, 6, 6}, -2, 2, 71);
  const auto r =
      veil::crypto::launch<std::vector<int64_t>>(vt::test_options(2), [&](veil::Party& party) {
        MpcTensor xs = ag::place(x, ag::Vis::kSecret, 0, party);
        const core::Pool2dParams p = core::Pool2dParams::square(3, 2, 1);
        auto s0 = party.comm().stats();
        (void)veil::max_pool2d(xs, p);  // does not require grad
        auto s1 = party.comm().stats();
        const Shape ws{1, 2, 3, 3, 9};  // the same windows as a [.., k] tensor
        (void)veil::crypto::max_lastdim(
            party, veil::crypto::share(
                       party, party.rank() == 0 ? vt::uniform(ws, -2, 2, 72) : Tensor(), 0, ws));
        auto s2 = party.comm().stats();
        xs.set_requires_grad(true);
        (void)veil::max_pool2d(xs, p);
        auto s3 = party.comm().stats();
        return std::vector<int64_t>{(s1 - s0).total.rounds, (s2 - s1).total.rounds,
                                    (s3 - s2).total.rounds};
      })[0];
  CHECK(r[0] == r[1]);
  CHECK(r[2] > r[1]);  // + the eq of the one-hot
}

TEST_CASE("conv family and pooling reject bad inputs", "[autograd][conv]") {
  ag::run(2, [&](veil::Party& party) {
    if (party.rank() != 0) {
      return std::vector<Tensor>{};  // Catch assertions on one thread only (all local)
    }
    const MpcTensor x4 = MpcTensor::from_public(vt::uniform({1, 3, 5, 5}, -1, 1, 1), party);
    const MpcTensor x3 = MpcTensor::from_public(vt::uniform({1, 3, 8}, -1, 1, 2), party);
    const MpcTensor w4 = MpcTensor::from_public(vt::uniform({2, 3, 3, 3}, -1, 1, 3), party);
    const MpcTensor w3 = MpcTensor::from_public(vt::uniform({4, 3, 3}, -1, 1, 4), party);
    // conv1d on a 4-D input
    CHECK_THROWS_WITH(veil::conv1d(x4, w3), Catch::Contains("[conv1d]"));
    // conv_transpose2d: w[0] must be C_in = 3
    CHECK_THROWS_WITH(veil::conv_transpose2d(x4, w4),
                      Catch::Contains("[conv_transpose2d]") && Catch::Contains("[2, 3, 3, 3]"));
    // output padding not below the stride nor the dilation
    CHECK_THROWS_WITH(veil::conv_transpose2d(
                          x4, MpcTensor::from_public(vt::uniform({3, 2, 3, 3}, -1, 1, 5), party),
                          tparams(1, 0, 1, 1, 1)),
                      Catch::Contains("[conv_transpose2d]"));
    // pooling: pad above half the kernel, 3-D input, bad adaptive size
    CHECK_THROWS_WITH(veil::max_pool2d(x4, core::Pool2dParams::square(2, 2, 2)),
                      Catch::Contains("[max_pool2d]"));
    CHECK_THROWS_WITH(veil::avg_pool2d(x3, core::Pool2dParams::square(2)),
                      Catch::Contains("[avg_pool2d]"));
    CHECK_THROWS_WITH(veil::adaptive_avg_pool2d(x4, {2}), Catch::Contains("[adaptive_avg_pool2d]"));
    CHECK_THROWS_WITH(veil::adaptive_max_pool2d(x4, {0, 1}),
                      Catch::Contains("[adaptive_max_pool2d]"));
    return std::vector<Tensor>{};
  });
}
