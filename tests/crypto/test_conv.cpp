// 2-D convolution and pooling: core::conv2d (float64 and ring64) against a naive 7-loop
// reference, the conv2d Beaver descriptor's wire encoding, secret conv2d / pooling for 2 and 3
// parties against float64 with tolerances derived from 2^-16, and the cost formula.

#include <algorithm>
#include <cmath>
#include <random>

#include <catch2/catch.hpp>

#include "core/conv.h"
#include "core/ops.h"
#include "crypto/bilinear.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/conv.h"
#include "crypto/protocols/nonlinear.h"
#include "crypto/providers/correlations.h"
#include "tests/harness/protocols.h"
#include "tests/harness/simulate.h"

using veil::core::Conv2dParams;
using veil::core::DType;
using veil::core::Shape;
using veil::core::Tensor;
using veil::crypto::AShare;
using veil::crypto::Party;
using veil::crypto::ProviderKind;
namespace crypto = veil::crypto;
namespace core = veil::core;
namespace vt = veil::testing;

namespace {

Conv2dParams make_params(
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups) {
  Conv2dParams c;
  c.stride_h = sh;
  c.stride_w = sw;
  c.pad_h = ph;
  c.pad_w = pw;
  c.dilation_h = dh;
  c.dilation_w = dw;
  c.groups = groups;
  return c;
}

// Naive 7-loop convolution written from the definition (independent of im2col + matmul).
template <class T>
Tensor naive_conv2d(const Tensor& x, const Tensor& w, const Conv2dParams& p) {
  const Shape& xs = x.shape();
  const Shape& ws = w.shape();
  const int64_t n_batch = xs[0];
  const int64_t c_in = xs[1];
  const int64_t h = xs[2];
  const int64_t wd = xs[3];
  const int64_t c_out = ws[0];
  const int64_t cg = ws[1];
  const int64_t kh = ws[2];
  const int64_t kw = ws[3];
  const int64_t oh = (h + 2 * p.pad_h - p.dilation_h * (kh - 1) - 1) / p.stride_h + 1;
  const int64_t ow = (wd + 2 * p.pad_w - p.dilation_w * (kw - 1) - 1) / p.stride_w + 1;
  const int64_t cog = c_out / p.groups;
  const auto vx = x.to_vector<T>();
  const auto vw = w.to_vector<T>();
  std::vector<T> out(static_cast<std::size_t>(n_batch * c_out * oh * ow), T{0});
  auto at = [](int64_t i) {
    return static_cast<std::size_t>(i);
  };
  for (int64_t n = 0; n < n_batch; ++n) {
    for (int64_t o = 0; o < c_out; ++o) {
      const int64_t g = o / cog;
      for (int64_t i = 0; i < oh; ++i) {
        for (int64_t j = 0; j < ow; ++j) {
          T acc{0};
          for (int64_t c = 0; c < cg; ++c) {
            for (int64_t u = 0; u < kh; ++u) {
              for (int64_t v = 0; v < kw; ++v) {
                const int64_t y = i * p.stride_h - p.pad_h + u * p.dilation_h;
                const int64_t z = j * p.stride_w - p.pad_w + v * p.dilation_w;
                if (y < 0 || y >= h || z < 0 || z >= wd) {
                  continue;
                }
                const int64_t ci = g * cg + c;
                acc += vx[at(((n * c_in + ci) * h + y) * wd + z)] *
                       vw[at(((o * cg + c) * kh + u) * kw + v)];
              }
            }
          }
          out[at(((n * c_out + o) * oh + i) * ow + j)] = acc;
        }
      }
    }
  }
  return Tensor::from_vector<T>(out, {n_batch, c_out, oh, ow});
}

// Naive pooling reference over float64: average (zeros of the padding counted) or max.
Tensor naive_pool(const Tensor& x, int64_t k, int64_t stride, int64_t pad, bool is_max) {
  const Shape& xs = x.shape();
  const int64_t oh = (xs[2] + 2 * pad - k) / stride + 1;
  const int64_t ow = (xs[3] + 2 * pad - k) / stride + 1;
  const auto vx = x.to_vector<double>();
  std::vector<double> out;
  for (int64_t pl = 0; pl < xs[0] * xs[1]; ++pl) {
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j) {
        double acc = is_max ? -1e300 : 0.0;
        for (int64_t u = 0; u < k; ++u) {
          for (int64_t v = 0; v < k; ++v) {
            const int64_t y = i * stride - pad + u;
            const int64_t z = j * stride - pad + v;
            const bool inside = y >= 0 && y < xs[2] && z >= 0 && z < xs[3];
            const double e =
                inside ? vx[static_cast<std::size_t>((pl * xs[2] + y) * xs[3] + z)] : 0.0;
            acc = is_max ? std::max(acc, e) : acc + e;
          }
        }
        out.push_back(is_max ? acc : acc / static_cast<double>(k * k));
      }
    }
  }
  return Tensor::from_vector<double>(out, {xs[0], xs[1], oh, ow});
}

Tensor random_ring(const Shape& shape, uint64_t seed) {
  std::mt19937_64 gen(seed);
  Tensor t = Tensor::empty(shape, DType::kRing64);
  uint64_t* p = t.data<uint64_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    p[i] = gen();
  }
  return t;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) {
    m = std::max(m, std::abs(v));
  }
  return m;
}

using vt::Setting;

}  // namespace

TEST_CASE("core::conv2d matches a naive 7-loop reference in float64 and ring64", "[crypto][conv]") {
  struct Case {
    Shape x;
    Shape w;
    Conv2dParams p;
  };
  const std::vector<Case> cases = {
      // stride 2, padding 1, dilation 2, groups 2, odd sizes
      {{2, 4, 9, 7}, {6, 2, 3, 3}, make_params(2, 2, 1, 1, 2, 2, 2)},
      // anisotropic stride/pad/kernel, one group
      {{1, 3, 8, 5}, {5, 3, 3, 2}, make_params(1, 2, 2, 0, 1, 1, 1)},
      // depthwise (groups = C_in), 1x1 output rows
      {{3, 3, 5, 5}, {3, 1, 5, 3}, make_params(1, 1, 0, 1, 1, 2, 3)},
  };
  uint64_t seed = 10;
  for (const auto& c : cases) {
    // GIVEN random float64 and ring64 operands
    const Tensor xf = vt::uniform(c.x, -3, 3, seed++);
    const Tensor wf = vt::uniform(c.w, -1, 1, seed++);
    const Tensor xr = random_ring(c.x, seed++);
    const Tensor wr = random_ring(c.w, seed++);
    // WHEN convolved with im2col + GEMM
    const Tensor yf = core::conv2d(xf, wf, c.p);
    const Tensor yr = core::conv2d(xr, wr, c.p);
    // THEN float64 agrees to rounding and ring64 is bit-exact mod 2^64
    const Tensor rf = naive_conv2d<double>(xf, wf, c.p);
    REQUIRE(yf.shape() == rf.shape());
    REQUIRE(yf.shape() == core::conv2d_out_shape(c.x, c.w, c.p));
    CHECK(vt::max_abs_diff(yf, rf) <= 1e-12);
    const Tensor rr = naive_conv2d<uint64_t>(xr, wr, c.p);
    REQUIRE(yr.shape() == rr.shape());
    CHECK(yr.to_vector<uint64_t>() == rr.to_vector<uint64_t>());
    // a strided (non-contiguous) view gives the same result
    const Tensor xt = xf.transpose(2, 3).contiguous().transpose(2, 3);
    CHECK(vt::max_abs_diff(core::conv2d(xt, wf, c.p), rf) <= 1e-12);
  }
}

TEST_CASE("conv2d Beaver descriptor: out shape, wire round trip, old kinds unchanged",
          "[crypto][conv]") {
  // GIVEN a conv2d descriptor with non-default parameters
  const Conv2dParams prm = make_params(2, 1, 1, 2, 2, 1, 2);
  const auto op = crypto::BilinearOp::conv2d({2, 4, 9, 7}, {6, 2, 3, 3}, prm);
  CHECK(op.kind == crypto::BilinearOp::Kind::kConv2d);
  CHECK(std::string(op.name()) == "conv2d");
  CHECK(op.out_shape() == core::conv2d_out_shape({2, 4, 9, 7}, {6, 2, 3, 3}, prm));
  // WHEN serialized and read back, directly and inside a dealer request
  const auto back = crypto::BilinearOp::deserialize(op.serialize());
  crypto::CorrelationRequest req;
  req.kind = crypto::CorrelationRequest::Kind::kBeaver;
  req.op = op;
  const auto bytes = req.serialize();
  const auto req_back = crypto::CorrelationRequest::deserialize(bytes);
  // THEN every field survives
  CHECK(back.kind == op.kind);
  CHECK(back.x_shape == op.x_shape);
  CHECK(back.y_shape == op.y_shape);
  CHECK(back.conv == prm);
  CHECK(req_back.op.conv == prm);
  CHECK(req_back.correction_shape() == op.out_shape());
  CHECK(req_back.op.str() == op.str());
  // mul and matmul keep their encoding: kind + two shapes, no parameters
  CHECK(crypto::BilinearOp::matmul({3, 4}, {4, 5}).serialize().size() == 8 * (1 + 3 + 3));
  CHECK(crypto::BilinearOp::mul({3}, {3}).serialize().size() == 8 * (1 + 2 + 2));
  // conv appends seven parameters
  CHECK(op.serialize().size() == 8 * (1 + 5 + 5 + 7));
  // malformed: truncated, trailing, invalid parameters -> ProtocolError
  const auto raw = op.serialize();
  CHECK_THROWS_AS(
      crypto::BilinearOp::deserialize(std::span<const std::byte>(raw).first(raw.size() - 8)),
      veil::ProtocolError);
  auto longer = raw;
  longer.push_back(std::byte{0});
  CHECK_THROWS_AS(crypto::BilinearOp::deserialize(longer), veil::ProtocolError);
  auto bad_groups = raw;
  bad_groups[raw.size() - 8] = std::byte{3};  // groups 3 divides neither 4 nor 6
  CHECK_THROWS_AS(crypto::BilinearOp::deserialize(bad_groups), veil::ProtocolError);
}

TEST_CASE("secret conv2d matches float64 for 2 and 3 parties", "[crypto][conv]") {
  const std::vector<Setting> settings = {{2, ProviderKind::kDealer},
                                         {3, ProviderKind::kDealer},
                                         {2, ProviderKind::kTrustedFirstParty}};
  struct Case {
    Shape x;
    Shape w;
    Conv2dParams p;
  };
  const std::vector<Case> cases = {
      {{2, 3, 7, 6}, {4, 3, 3, 3}, make_params(1, 1, 1, 1, 1, 1, 1)},
      {{1, 4, 9, 7}, {6, 2, 3, 3}, make_params(2, 2, 1, 1, 2, 2, 2)},
  };
  for (auto s : settings) {
    uint64_t seed = 40;
    for (const auto& c : cases) {
      // GIVEN a secret input and a secret kernel
      const Tensor x = vt::uniform(c.x, -2, 2, seed++);
      const Tensor w = vt::uniform(c.w, -1, 1, seed++);
      // WHEN convolved with one Beaver triple
      const Tensor got = vt::run_binary_op(
          s, x, w,
          [&](Party& p, const AShare& a, const AShare& b) { return crypto::conv2d(p, a, b, c.p); });
      // THEN each of the K = C_in/groups kh kw products carries the encoding errors of its
      // operands (half a unit each, scaled by the other operand), plus one unit of truncation
      const Tensor ref = core::conv2d(x, w, c.p);
      const double k = static_cast<double>(c.w[1] * c.w[2] * c.w[3]);
      const double tol = (k * (max_abs(x) + max_abs(w)) / 2 + 2) * vt::ulp();
      REQUIRE(got.shape() == ref.shape());
      CHECK(vt::max_abs_diff(got, ref) <= tol);
    }
  }
}

TEST_CASE("conv2d with a public kernel matches float64", "[crypto][conv]") {
  const Conv2dParams prm = make_params(1, 2, 1, 0, 1, 1, 1);
  const Tensor x = vt::uniform({2, 3, 6, 7}, -2, 2, 70);
  const Tensor w = vt::uniform({4, 3, 3, 3}, -1, 1, 71);
  for (int n : {2, 3}) {
    const Tensor got = vt::run_unary_op(
        {n, ProviderKind::kDealer}, x,
        [&](Party& p, const AShare& a) { return crypto::conv2d_public_weight(p, a, w, prm); });
    const Tensor ref = core::conv2d(x, w, prm);
    const double tol = (27.0 * (max_abs(x) + max_abs(w)) / 2 + 2) * vt::ulp();
    CHECK(vt::max_abs_diff(got, ref) <= tol);
  }
}

TEST_CASE("cost of secret conv2d: 1 round, 8(N-1)(|x| + |w|) bytes (+ truncation)",
          "[crypto][conv]") {
  const Shape xs{2, 3, 7, 6};
  const Shape ws{4, 3, 3, 3};
  const Conv2dParams prm = make_params(1, 1, 1, 1, 1, 1, 1);
  const int64_t nx = core::shape_numel(xs);
  const int64_t nw = core::shape_numel(ws);
  const int64_t nout = core::shape_numel(core::conv2d_out_shape(xs, ws, prm));
  for (int n : {2, 3}) {
    // GIVEN shared x and w; WHEN conv2d runs; THEN party 1's stats delta matches the formula
    auto out = crypto::launch<std::pair<int64_t, int64_t>>(vt::test_options(n), [&](Party& p) {
      const AShare a =
          crypto::share(p, p.rank() == 0 ? vt::uniform(xs, -2, 2, 1) : Tensor(), 0, xs);
      const AShare b =
          crypto::share(p, p.rank() == 0 ? vt::uniform(ws, -1, 1, 2) : Tensor(), 0, ws);
      const auto before = p.comm().stats();
      (void)crypto::conv2d(p, a, b, prm);
      const auto d = p.comm().stats() - before;
      return std::make_pair(d.total.rounds, d.total.bytes_sent);
    });
    const int64_t peers = n - 1;
    const auto [rounds, bytes] = out[1];
    CHECK(rounds == 1 + (n > 2 ? 1 : 0));
    CHECK(bytes == 8 * peers * (nx + nw) + (n > 2 ? 8 * nout : 0));
  }
  // max_pool2d is max_lastdim over the k^2 window elements: the same rounds and bytes as
  // max_lastdim on the gathered windows [1, 2, 6/k, 6/k, k^2]
  for (int64_t k : {2, 3}) {
    auto costs = crypto::launch<std::vector<int64_t>>(vt::test_options(2), [&](Party& p) {
      const Shape ps{1, 2, 6, 6};
      const Shape win_shape{1, 2, 6 / k, 6 / k, k * k};
      const AShare a =
          crypto::share(p, p.rank() == 0 ? vt::uniform(ps, -2, 2, 3) : Tensor(), 0, ps);
      const AShare b = crypto::share(p, p.rank() == 0 ? vt::uniform(win_shape, -2, 2, 4) : Tensor(),
                                     0, win_shape);
      const auto s0 = p.comm().stats();
      (void)crypto::max_pool2d(p, a, k, k);
      const auto s1 = p.comm().stats();
      (void)crypto::max_lastdim(p, b);
      const auto s2 = p.comm().stats();
      return std::vector<int64_t>{(s1 - s0).total.rounds, (s1 - s0).total.bytes_sent,
                                  (s2 - s1).total.rounds, (s2 - s1).total.bytes_sent};
    });
    CHECK(costs[1][0] == costs[1][2]);
    CHECK(costs[1][1] == costs[1][3]);
    CHECK(costs[1][0] > 0);
  }
}

TEST_CASE("avg_pool2d and max_pool2d match float64", "[crypto][conv]") {
  const Tensor x = vt::uniform({2, 2, 7, 6}, -4, 4, 90);
  for (int n : {2, 3}) {
    const Setting s{n, ProviderKind::kDealer};
    // average 3x3, stride 2, padding 1 (padding counted in the divisor)
    Tensor got = vt::run_unary_op(
        s, x, [](Party& p, const AShare& a) { return crypto::avg_pool2d(p, a, 3, 2, 1); });
    Tensor ref = naive_pool(x, 3, 2, 1, false);
    REQUIRE(got.shape() == ref.shape());
    // encoding error of x (1/2 unit) and of 1/9 (1/2 unit times the window sum) + truncation
    CHECK(vt::max_abs_diff(got, ref) <= (0.5 * 9 * max_abs(x) + 2) * vt::ulp());
    // max 3x3 stride 2 and 2x2 stride 2: exact up to the input encoding
    for (int64_t k : {2, 3}) {
      got = vt::run_unary_op(
          s, x, [k](Party& p, const AShare& a) { return crypto::max_pool2d(p, a, k, 2); });
      ref = naive_pool(x, k, 2, 0, true);
      REQUIRE(got.shape() == ref.shape());
      CHECK(vt::max_abs_diff(got, ref) <= vt::ulp() / 2 + 1e-12);
    }
  }
}

TEST_CASE("conv2d and pooling reject bad shapes with [conv2d] / [pool] errors", "[crypto][conv]") {
  const Conv2dParams one;
  auto expect_conv_error = [](const Shape& x, const Shape& w, const Conv2dParams& p,
                              const std::string& shape_text) {
    try {
      (void)crypto::BilinearOp::conv2d(x, w, p);
      FAIL("expected a ValueError");
    } catch (const veil::ValueError& e) {
      CHECK_THAT(e.what(), Catch::Contains("[conv2d]") && Catch::Contains(shape_text));
    }
  };
  // channel mismatch: w expects 2 input channels, x has 3
  expect_conv_error({1, 3, 5, 5}, {2, 2, 3, 3}, one, "[2, 2, 3, 3]");
  // groups 2 does not divide C_in = 3
  expect_conv_error({1, 3, 5, 5}, {4, 1, 3, 3}, make_params(1, 1, 0, 0, 1, 1, 2), "[1, 3, 5, 5]");
  // kernel (dilated 5x5) larger than the padded input 4x4
  expect_conv_error({1, 1, 3, 3}, {1, 1, 3, 3}, make_params(1, 1, 0, 0, 2, 2, 1), "[1, 1, 3, 3]");
  expect_conv_error({1, 1, 3, 3}, {1, 1, 5, 5}, one, "[1, 1, 5, 5]");
  // wrong rank, bad stride
  expect_conv_error({3, 5, 5}, {1, 3, 3, 3}, one, "[3, 5, 5]");
  expect_conv_error({1, 1, 5, 5}, {1, 1, 3, 3}, make_params(0, 1, 0, 0, 1, 1, 1), "stride 0x1");
  // dtype mismatch in the plaintext op
  CHECK_THROWS_AS(
      core::conv2d(vt::uniform({1, 1, 3, 3}, 0, 1, 1), random_ring({1, 1, 2, 2}, 2), one),
      veil::ValueError);
  // the secret protocol surfaces the same error through launch
  try {
    vt::run_binary_op({2, ProviderKind::kDealer}, vt::uniform({1, 3, 5, 5}, -1, 1, 3),
                      vt::uniform({2, 2, 3, 3}, -1, 1, 4),
                      [](Party& p, const AShare& a, const AShare& b) {
                        return crypto::conv2d(p, a, b, Conv2dParams{});
                      });
    FAIL("expected a ValueError");
  } catch (const veil::ValueError& e) {
    CHECK_THAT(e.what(), Catch::Contains("[conv2d]") && Catch::Contains("[2, 2, 3, 3]"));
  }
  // pooling window larger than the input
  CHECK_THROWS_WITH(
      vt::run_unary_op({2, ProviderKind::kDealer}, vt::uniform({1, 1, 2, 2}, -1, 1, 5),
                       [](Party& p, const AShare& a) { return crypto::max_pool2d(p, a, 3, 1); }),
      Catch::Contains("[max_pool2d]"));
  CHECK_THROWS_WITH(
      vt::run_unary_op({2, ProviderKind::kDealer}, vt::uniform({1, 1, 2, 2}, -1, 1, 6),
                       [](Party& p, const AShare& a) { return crypto::avg_pool2d(p, a, 2, 0, 0); }),
      Catch::Contains("[avg_pool2d]"));
}
