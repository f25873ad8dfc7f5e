// Secret conv1d, conv_transpose2d, padded / non-square / adaptive pooling (crypto/protocols/conv.h)
// for 2 and 3 parties and both providers against float64 references written from the PyTorch
// definitions, with tolerances derived from 2^-16, and their costs read from the communicator.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "core/conv.h"
#include "core/ops.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/conv.h"
#include "crypto/protocols/nonlinear.h"
#include "tests/harness/conv_reference.h"
#include "tests/harness/protocols.h"
#include "tests/harness/simulate.h"

namespace core = veil::core;
namespace crypto = veil::crypto;
namespace vt = veil::testing;
using core::Shape;
using core::Tensor;
using crypto::AShare;
using crypto::Party;
using crypto::ProviderKind;

namespace {

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) {
    m = std::max(m, std::abs(v));
  }
  return m;
}

core::ConvTranspose2dParams tparams(int64_t s, int64_t pad, int64_t opad, int64_t d, int64_t g) {
  core::ConvTranspose2dParams p;
  p.stride_h = p.stride_w = s;
  p.pad_h = p.pad_w = pad;
  p.output_pad_h = p.output_pad_w = opad;
  p.dilation_h = p.dilation_w = d;
  p.groups = g;
  return p;
}

// (rounds, bytes sent) of party `rank` while fn runs on shares of x (from party 0) and w (from the
// last party).
template <class F>
std::pair<int64_t, int64_t> measure(int n, const Tensor& x, const Tensor& w, F fn, int rank = 1) {
  auto out = crypto::launch<std::pair<int64_t, int64_t>>(vt::test_options(n), [&](Party& p) {
    const AShare a = crypto::share(p, p.rank() == 0 ? x : Tensor(), 0, x.shape());
    const int last = p.world_size() - 1;
    const AShare b = crypto::share(p, p.rank() == last ? w : Tensor(), last, w.shape());
    const auto before = p.comm().stats();
    (void)fn(p, a, b);
    const auto d = p.comm().stats() - before;
    return std::make_pair(d.total.rounds, d.total.bytes_sent);
  });
  return out[static_cast<std::size_t>(rank)];
}

}  // namespace

TEST_CASE("secret conv_transpose2d and conv1d match float64 (2 and 3 parties, both providers)",
          "[crypto][conv]") {
  struct TCase {
    Shape x;
    Shape w;
    core::ConvTranspose2dParams p;
  };
  const std::vector<TCase> tcases = {
      {{2, 4, 3, 4}, {4, 3, 3, 3}, tparams(2, 1, 1, 1, 2)},
      {{1, 2, 3, 3}, {2, 2, 2, 3}, tparams(1, 1, 2, 3, 1)},  // x zero-extended (output pad 2)
  };
  for (const vt::Setting s : vt::all_settings()) {
    INFO("parties " << s.n << (s.kind == ProviderKind::kDealer ? " dealer" : " tfp"));
    uint64_t seed = 100;
    for (const TCase& c : tcases) {
      // GIVEN a secret input and a secret kernel
      const Tensor x = vt::uniform(c.x, -2, 2, seed++);
      const Tensor w = vt::uniform(c.w, -1, 1, seed++);
      // WHEN transposed-convolved with one Beaver triple
      const Tensor got =
          vt::run_binary_op(s, x, w, [&](Party& p, const AShare& a, const AShare& b) {
            return crypto::conv_transpose2d(p, a, b, c.p);
          });
      // THEN every output sums at most K = C_in/groups kh kw products, each off by the encoding
      // errors of its operands (half a unit scaled by the other operand), plus a truncation
      const Tensor ref = vt::naive_conv_transpose2d<double>(x, w, c.p).y;
      const double k = static_cast<double>(c.x[1] / c.p.groups * c.w[2] * c.w[3]);
      REQUIRE(got.shape() == ref.shape());
      CHECK(vt::max_abs_diff(got, ref) <= (k * (max_abs(x) + max_abs(w)) / 2 + 2) * vt::ulp());
    }
    // conv1d: stride 2, padding 2, dilation 2, groups 2
    const core::Conv1dParams p1{2, 2, 2, 2};
    const Tensor x = vt::uniform({2, 4, 13}, -2, 2, seed++);
    const Tensor w = vt::uniform({6, 2, 3}, -1, 1, seed++);
    const Tensor got = vt::run_binary_op(s, x, w, [&](Party& p, const AShare& a, const AShare& b) {
      return crypto::conv1d(p, a, b, p1);
    });
    const Tensor ref = vt::naive_conv1d<double>(x, w, p1).y;
    REQUIRE(got.shape() == ref.shape());
    CHECK(vt::max_abs_diff(got, ref) <= (6 * (max_abs(x) + max_abs(w)) / 2 + 2) * vt::ulp());
  }
}

TEST_CASE("cost of conv_transpose2d and conv1d: 1 round, 8(N-1)(|x| + |w|) bytes + truncation",
          "[crypto][conv]") {
  struct Case {
    Tensor x;
    Tensor w;
    int64_t out;  // |out|
    bool transpose;
    core::ConvTranspose2dParams tp;
  };
  const core::ConvTranspose2dParams tp = tparams(2, 1, 1, 1, 1);
  const std::vector<Case> cases = {
      {vt::uniform({2, 3, 4, 4}, -1, 1, 1), vt::uniform({3, 2, 3, 3}, -1, 1, 2),
       core::shape_numel(core::conv_transpose2d_out_shape({2, 3, 4, 4}, {3, 2, 3, 3}, tp)), true,
       tp},
      {vt::uniform({2, 3, 10}, -1, 1, 3), vt::uniform({4, 3, 3}, -1, 1, 4),
       core::shape_numel(core::conv1d_out_shape({2, 3, 10}, {4, 3, 3}, {})), false, tp},
  };
  for (const Case& c : cases) {
    for (int n : {2, 3}) {
      INFO((c.transpose ? "conv_transpose2d" : "conv1d") << ", parties " << n);
      const auto [rounds, bytes] =
          measure(n, c.x, c.w, [&](Party& p, const AShare& a, const AShare& b) {
            return c.transpose ? crypto::conv_transpose2d(p, a, b, c.tp)
                               : crypto::conv1d(p, a, b, core::Conv1dParams{});
          });
      const int64_t peers = n - 1;
      CHECK(rounds == 1 + (n > 2 ? 1 : 0));
      CHECK(bytes == 8 * peers * (c.x.numel() + c.w.numel()) + (n > 2 ? 8 * c.out : 0));
    }
  }
}

TEST_CASE("padded, non-square and adaptive pooling match float64 (2 and 3 parties)",
          "[crypto][pool]") {
  const Tensor x = vt::uniform({2, 2, 7, 6}, -4, 4, 90);
  core::Pool2dParams rect;  // 3x2 window, stride 2x1, pad 1x1, dilation 1x2
  rect.kernel_h = 3;
  rect.kernel_w = 2;
  rect.stride_h = 2;
  rect.stride_w = 1;
  rect.pad_h = 1;
  rect.pad_w = 1;
  rect.dilation_w = 2;
  core::Pool2dParams nopad_count = core::Pool2dParams::square(3, 2, 1);
  nopad_count.count_include_pad = false;
  struct Case {
    const char* name;
    bool is_max;
    bool adaptive;
    core::Pool2dParams p;
    Shape out_hw;
  };
  const std::vector<Case> cases = {
      {"max 3x3 s2 p1", true, false, core::Pool2dParams::square(3, 2, 1), {}},
      {"max rect", true, false, rect, {}},
      {"avg 3x3 s2 p1 include pad", false, false, core::Pool2dParams::square(3, 2, 1), {}},
      {"avg 3x3 s2 p1 exclude pad", false, false, nopad_count, {}},
      {"avg rect", false, false, rect, {}},
      {"adaptive avg 3x4", false, true, {}, {3, 4}},
      {"adaptive avg global", false, true, {}, {1, 1}},
      {"adaptive max 3x4", true, true, {}, {3, 4}},
      {"adaptive max 4x5", true, true, {}, {4, 5}},
  };
  for (const Case& c : cases) {
    const std::vector<vt::RefWindow> windows =
        c.adaptive ? vt::ref_adaptive_windows(7, 6, c.out_hw[0], c.out_hw[1])
                   : vt::ref_pool_windows(7, 6, c.p);
    const int64_t oh =
        c.adaptive
            ? c.out_hw[0]
            : (7 + 2 * c.p.pad_h - c.p.dilation_h * (c.p.kernel_h - 1) - 1) / c.p.stride_h + 1;
    const int64_t ow = static_cast<int64_t>(windows.size()) / oh;
    const vt::PoolRef ref = vt::ref_pool(x, windows, oh, ow, c.is_max,
                                         Tensor::zeros({2, 2, oh, ow}, core::DType::kFloat64));
    double max_div = 0;
    for (const auto& win : windows) {
      max_div = std::max(max_div, win.divisor);
    }
    for (int n : {2, 3}) {
      INFO(c.name << ", parties " << n);
      const Tensor got =
          vt::run_unary_op({n, ProviderKind::kDealer}, x, [&](Party& p, const AShare& a) -> AShare {
            if (c.adaptive) {
              return c.is_max ? crypto::adaptive_max_pool2d(p, a, c.out_hw)
                              : crypto::adaptive_avg_pool2d(p, a, c.out_hw);
            }
            return c.is_max ? crypto::max_pool2d(p, a, c.p) : crypto::avg_pool2d(p, a, c.p);
          });
      REQUIRE(got.shape() == ref.y.shape());
      // max: exact up to the input encoding; avg: x's encoding (1/2 unit) plus the encoding of
      // 1/d (1/2 unit times a window sum of at most d max|x|) plus a truncation
      const double tol =
          c.is_max ? vt::ulp() / 2 + 1e-12 : (0.5 * max_div * max_abs(x) + 2) * vt::ulp();
      CHECK(vt::max_abs_diff(got, ref.y) <= tol);
    }
  }
}

TEST_CASE("cost of pooling: average = one truncation, max = max_lastdim over the window",
          "[crypto][pool]") {
  const Tensor x = vt::uniform({1, 2, 6, 7}, -2, 2, 7);
  const Tensor none = vt::uniform({1}, 0, 1, 8);
  for (int n : {2, 3}) {
    INFO("parties " << n);
    // average (padded) and adaptive average: 0 rounds for N = 2; N > 2: 1 round, 8 |out| bytes
    const core::Pool2dParams avg = core::Pool2dParams::square(3, 2, 1);
    const int64_t avg_out = 2 * 3 * 4;
    auto [r1, b1] = measure(n, x, none, [&](Party& p, const AShare& a, const AShare&) {
      return crypto::avg_pool2d(p, a, avg);
    });
    CHECK(r1 == (n > 2 ? 1 : 0));
    CHECK(b1 == (n > 2 ? 8 * avg_out : 0));
    auto [r2, b2] = measure(n, x, none, [&](Party& p, const AShare& a, const AShare&) {
      return crypto::adaptive_avg_pool2d(p, a, {4, 3});
    });
    CHECK(r2 == (n > 2 ? 1 : 0));
    CHECK(b2 == (n > 2 ? 8 * 2 * 4 * 3 : 0));
    // max with padding, and adaptive max: exactly the cost of max_lastdim over [.., k]
    auto lastdim = [&](const Shape& s) {
      return measure(n, vt::uniform(s, -2, 2, 9), none,
                     [&](Party& p, const AShare& a, const AShare&) {
                       return crypto::max_lastdim(p, a).values;
                     });
    };
    auto [r3, b3] = measure(n, x, none, [&](Party& p, const AShare& a, const AShare&) {
      return crypto::max_pool2d(p, a, avg);  // 3x3 windows, 3x4 outputs
    });
    CHECK(std::make_pair(r3, b3) == lastdim({1, 2, 3, 4, 9}));
    // 6x7 -> 4x3: windows of 2 rows and 3 columns
    auto [r4, b4] = measure(n, x, none, [&](Party& p, const AShare& a, const AShare&) {
      return crypto::adaptive_max_pool2d(p, a, {4, 3});
    });
    CHECK(std::make_pair(r4, b4) == lastdim({1, 2, 4, 3, 6}));
  }
}

TEST_CASE("secret conv family and pooling reject bad inputs", "[crypto][conv]") {
  const vt::Setting s{2, ProviderKind::kDealer};
  // conv_transpose2d: w's first extent must be C_in
  CHECK_THROWS_WITH(
      vt::run_binary_op(s, vt::uniform({1, 3, 4, 4}, -1, 1, 1), vt::uniform({2, 3, 3, 3}, -1, 1, 2),
                        [](Party& p, const AShare& a, const AShare& b) {
                          return crypto::conv_transpose2d(p, a, b, {});
                        }),
      Catch::Contains("[conv_transpose2d]") && Catch::Contains("[2, 3, 3, 3]"));
  // conv1d on a 4-D input
  CHECK_THROWS_WITH(
      vt::run_binary_op(
          s, vt::uniform({1, 3, 4, 4}, -1, 1, 3), vt::uniform({2, 3, 3}, -1, 1, 4),
          [](Party& p, const AShare& a, const AShare& b) { return crypto::conv1d(p, a, b, {}); }),
      Catch::Contains("[conv1d]"));
  // max pooling with a pad above half the kernel; adaptive pooling to a 0 extent
  CHECK_THROWS_WITH(vt::run_unary_op(s, vt::uniform({1, 1, 5, 5}, -1, 1, 5),
                                     [](Party& p, const AShare& a) {
                                       return crypto::max_pool2d(
                                           p, a, core::Pool2dParams::square(2, 2, 2));
                                     }),
                    Catch::Contains("[max_pool2d]"));
  CHECK_THROWS_WITH(vt::run_unary_op(s, vt::uniform({1, 1, 5, 5}, -1, 1, 6),
                                     [](Party& p, const AShare& a) {
                                       return crypto::adaptive_avg_pool2d(p, a, {0, 2});
                                     }),
                    Catch::Contains("[adaptive_avg_pool2d]"));
}
