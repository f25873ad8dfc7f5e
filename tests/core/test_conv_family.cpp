// Plaintext conv1d, conv_transpose2d and pooling window tables (core/conv.h) against naive loops
// written from the PyTorch definitions (tests/harness/conv_reference.h): float64 to rounding,
// ring64 bit-exact, adjoint identities, PyTorch's output-size formulas, and bad inputs.

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/conv.h"
#include "core/error.h"
#include "core/ops.h"
#include "tests/harness/conv_reference.h"
#include "tests/harness/simulate.h"

namespace core = veil::core;
namespace vt = veil::testing;
using core::DType;
using core::Shape;
using core::Tensor;

namespace {

Tensor random_ring(const Shape& shape, uint64_t seed) {
  std::mt19937_64 gen(seed);
  Tensor t = Tensor::empty(shape, DType::kRing64);
  uint64_t* p = t.data<uint64_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    p[i] = gen();
  }
  return t;
}

bool ring_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector<uint64_t>() == b.to_vector<uint64_t>();
}

double dot(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector<double>();
  const auto vb = b.to_vector<double>();
  double s = 0;
  for (std::size_t i = 0; i < va.size(); ++i) {
    s += va[i] * vb[i];
  }
  return s;
}

uint64_t ring_dot(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector<uint64_t>();
  const auto vb = b.to_vector<uint64_t>();
  uint64_t s = 0;
  for (std::size_t i = 0; i < va.size(); ++i) {
    s += va[i] * vb[i];
  }
  return s;
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

struct TCase {
  Shape x;
  Shape w;
  core::ConvTranspose2dParams p;
};

std::vector<TCase> transpose_cases() {
  core::ConvTranspose2dParams aniso = tparams(2, 1, 1, 1, 1);
  aniso.stride_w = 3;
  aniso.pad_w = 0;
  aniso.output_pad_w = 2;
  return {
      {{2, 3, 4, 5}, {3, 2, 3, 3}, tparams(1, 0, 0, 1, 1)},  // plain
      {{1, 4, 3, 4}, {4, 3, 3, 3}, tparams(2, 1, 1, 1, 2)},  // stride 2, pad, output pad, groups
      {{2, 2, 3, 3}, {2, 2, 2, 3}, tparams(1, 1, 2, 3, 1)},  // output pad >= stride (< dilation)
      {{1, 2, 4, 3}, {2, 1, 3, 2}, aniso},                   // anisotropic
  };
}

}  // namespace

TEST_CASE("core::conv_transpose2d matches the scatter definition (float64, ring64 exact)",
          "[core][conv]") {
  uint64_t seed = 1;
  for (const TCase& c : transpose_cases()) {
    INFO(core::conv_transpose2d_params_str(c.p));
    // GIVEN random operands
    const Tensor x = vt::uniform(c.x, -1, 1, seed++);
    const Tensor w = vt::uniform(c.w, -1, 1, seed++);
    // WHEN computed through conv2d_input_grad; THEN equal to the naive scatter loop
    const Tensor y = core::conv_transpose2d(x, w, c.p);
    const vt::BilinearRef ref = vt::naive_conv_transpose2d<double>(x, w, c.p);
    REQUIRE(y.shape() == ref.y.shape());
    REQUIRE(y.shape() == core::conv_transpose2d_out_shape(c.x, c.w, c.p));
    CHECK(vt::max_abs_diff(y, ref.y) <= 1e-12);
    const Tensor xr = random_ring(c.x, seed++);
    const Tensor wr = random_ring(c.w, seed++);
    CHECK(ring_equal(core::conv_transpose2d(xr, wr, c.p),
                     vt::naive_conv_transpose2d<uint64_t>(xr, wr, c.p).y));
    // AND it is the adjoint of conv2d in its input: <T(x, w), g> = <x, conv2d(g, w)>
    const Tensor g = vt::uniform(y.shape(), -1, 1, seed++);
    const Tensor cg = core::conv2d(g, w, c.p.conv());
    const Tensor cg_crop = cg.slice(2, 0, c.x[2]).slice(3, 0, c.x[3]);
    CHECK(std::abs(dot(y, g) - dot(x, cg_crop)) <= 1e-10);
  }
}

TEST_CASE("conv_transpose2d output shape follows PyTorch's formula", "[core][conv]") {
  // H_o = (H - 1) s - 2 p + d (k - 1) + op + 1, e.g. the usual 2x upsampling k 4 s 2 p 1
  CHECK(core::conv_transpose2d_out_shape({1, 8, 5, 7}, {8, 3, 4, 4}, tparams(2, 1, 0, 1, 1)) ==
        Shape{1, 3, 10, 14});
  CHECK(core::conv_transpose2d_out_shape({2, 4, 3, 3}, {4, 2, 3, 3}, tparams(2, 1, 1, 1, 2)) ==
        Shape{2, 4, 6, 6});
  // the forward conv covers one more row when output_pad >= stride (stride 1, dilation 3)
  CHECK(core::conv_transpose2d_input_shape({2, 2, 3, 3}, {2, 2, 2, 3}, tparams(1, 1, 2, 3, 1)) ==
        Shape{2, 2, 5, 5});
  CHECK(core::conv_transpose2d_input_shape({2, 2, 3, 3}, {2, 2, 2, 3}, tparams(2, 1, 1, 1, 1)) ==
        Shape{2, 2, 3, 3});
}

TEST_CASE("core::conv1d matches the definition (float64, ring64 exact)", "[core][conv]") {
  struct Case {
    Shape x;
    Shape w;
    core::Conv1dParams p;
  };
  const std::vector<Case> cases = {
      {{2, 3, 11}, {4, 3, 3}, {1, 0, 1, 1}},
      {{1, 4, 13}, {6, 2, 3}, {2, 2, 2, 2}},
      {{3, 3, 7}, {3, 1, 5}, {1, 2, 1, 3}},  // depthwise
  };
  uint64_t seed = 20;
  for (const Case& c : cases) {
    const Tensor x = vt::uniform(c.x, -2, 2, seed++);
    const Tensor w = vt::uniform(c.w, -1, 1, seed++);
    const Tensor y = core::conv1d(x, w, c.p);
    const vt::BilinearRef ref = vt::naive_conv1d<double>(x, w, c.p);
    REQUIRE(y.shape() == ref.y.shape());
    REQUIRE(y.shape() == core::conv1d_out_shape(c.x, c.w, c.p));
    CHECK(vt::max_abs_diff(y, ref.y) <= 1e-12);
    const Tensor xr = random_ring(c.x, seed++);
    const Tensor wr = random_ring(c.w, seed++);
    CHECK(ring_equal(core::conv1d(xr, wr, c.p), vt::naive_conv1d<uint64_t>(xr, wr, c.p).y));
  }
}

TEST_CASE("pooling window tables match PyTorch's windows", "[core][pool]") {
  // GIVEN a plane of distinct values (its own offsets) so every gathered entry names its source
  const int64_t h = 7;
  const int64_t w = 6;
  Tensor x = Tensor::empty({1, 1, h, w}, DType::kInt64);
  for (int64_t i = 0; i < h * w; ++i) {
    x.data<int64_t>()[i] = i + 1;  // 0 is reserved for "zero padding"
  }
  auto check_table = [&](const core::WindowTable& t, const std::vector<vt::RefWindow>& ref,
                         core::WindowFill fill) {
    REQUIRE(static_cast<std::size_t>(t.out_h * t.out_w) == ref.size());
    const Tensor win = core::gather_windows(x, t);
    const int64_t* pw = win.data<int64_t>();
    for (std::size_t o = 0; o < ref.size(); ++o) {
      std::vector<int64_t> got;
      for (int64_t e = 0; e < t.k; ++e) {
        const int64_t v = pw[static_cast<int64_t>(o) * t.k + e];
        if (v != 0) {
          got.push_back(v - 1);
        }
      }
      std::vector<int64_t> want = ref[o].taps;
      // THEN the zero fill holds exactly the window's input elements (once each); the repeat fill
      // holds only elements of the window, each of them at least once, and no zero
      if (fill == core::WindowFill::kZero) {
        CHECK(got == want);
      } else {
        CHECK(static_cast<int64_t>(got.size()) == t.k);
        for (int64_t v : got) {
          CHECK(std::find(want.begin(), want.end(), v) != want.end());
        }
        for (int64_t v : want) {
          CHECK(std::find(got.begin(), got.end(), v) != got.end());
        }
      }
      CHECK(static_cast<double>(t.divisor[o]) == ref[o].divisor);
    }
  };
  core::Pool2dParams p = core::Pool2dParams::square(3, 2, 1);
  for (bool include : {true, false}) {
    p.count_include_pad = include;
    for (auto fill : {core::WindowFill::kZero, core::WindowFill::kRepeat}) {
      check_table(core::pool2d_windows(h, w, p, fill), vt::ref_pool_windows(h, w, p), fill);
    }
  }
  core::Pool2dParams q;  // non-square kernel, anisotropic stride, padding and dilation
  q.kernel_h = 2;
  q.kernel_w = 3;
  q.stride_h = 1;
  q.stride_w = 2;
  q.pad_h = 1;
  q.pad_w = 1;
  q.dilation_h = 2;
  check_table(core::pool2d_windows(h, w, q, core::WindowFill::kRepeat),
              vt::ref_pool_windows(h, w, q), core::WindowFill::kRepeat);
  // adaptive: shrinking with unequal windows, identity, growing (overlapping windows), global
  for (auto [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{{3, 4}, {7, 6}, {9, 8}, {1, 1}}) {
    INFO("adaptive " << oh << "x" << ow);
    for (auto fill : {core::WindowFill::kZero, core::WindowFill::kRepeat}) {
      check_table(core::adaptive_pool2d_windows(h, w, oh, ow, fill, "adaptive"),
                  vt::ref_adaptive_windows(h, w, oh, ow), fill);
    }
  }
}

TEST_CASE("scatter_windows is the adjoint of gather_windows", "[core][pool]") {
  const Tensor x = vt::uniform({2, 3, 7, 5}, -1, 1, 31);
  const std::vector<core::WindowTable> tables = {
      core::pool2d_windows(7, 5, core::Pool2dParams::square(3, 2, 1), core::WindowFill::kZero),
      core::pool2d_windows(7, 5, core::Pool2dParams::square(2, 1, 1), core::WindowFill::kRepeat),
      core::adaptive_pool2d_windows(7, 5, 3, 2, core::WindowFill::kRepeat, "adaptive"),
  };
  uint64_t seed = 40;
  for (const auto& t : tables) {
    const Tensor win = core::gather_windows(x, t);
    const Tensor y = vt::uniform(win.shape(), -1, 1, seed++);
    // <gather(x), y> = <x, scatter(y)>
    CHECK(std::abs(dot(win, y) - dot(x, core::scatter_windows(y, t))) <= 1e-10);
    // the same identity holds exactly mod 2^64 on ring64
    const Tensor xr = random_ring(x.shape(), seed++);
    const Tensor yr = random_ring(win.shape(), seed++);
    CHECK(ring_dot(core::gather_windows(xr, t), yr) == ring_dot(xr, core::scatter_windows(yr, t)));
  }
}

TEST_CASE("conv family and window tables reject bad inputs", "[core][conv]") {
  // conv1d: rank, channels
  CHECK_THROWS_WITH(core::conv1d_out_shape({1, 3, 5, 5}, {2, 3, 3}, {}),
                    Catch::Contains("[conv1d]") && Catch::Contains("[1, 3, 5, 5]"));
  CHECK_THROWS_WITH(core::conv1d_out_shape({1, 3, 5}, {2, 2, 3}, {}),
                    Catch::Contains("[conv1d]") && Catch::Contains("[2, 2, 3]"));
  CHECK_THROWS_WITH(core::conv1d_out_shape({1, 3, 2}, {2, 3, 3}, {}), Catch::Contains("[conv1d]"));
  // conv_transpose2d: output pad not below stride nor dilation; channel mismatch; empty output
  CHECK_THROWS_WITH(
      core::conv_transpose2d_out_shape({1, 2, 3, 3}, {2, 2, 3, 3}, tparams(2, 0, 2, 1, 1)),
      Catch::Contains("[conv_transpose2d]") && Catch::Contains("output_pad 2x2"));
  CHECK_THROWS_WITH(core::conv_transpose2d_out_shape({1, 3, 3, 3}, {2, 2, 3, 3}, {}),
                    Catch::Contains("[conv_transpose2d]") && Catch::Contains("[2, 2, 3, 3]"));
  CHECK_THROWS_WITH(
      core::conv_transpose2d_out_shape({1, 2, 1, 1}, {2, 2, 1, 1}, tparams(1, 1, 0, 1, 1)),
      Catch::Contains("[conv_transpose2d]"));
  CHECK_THROWS_AS(
      core::conv_transpose2d(vt::uniform({1, 2, 3, 3}, 0, 1, 1), random_ring({2, 2, 3, 3}, 2), {}),
      veil::ValueError);
  // pooling: pad above half the kernel, window larger than the input, adaptive size 0
  CHECK_THROWS_WITH(core::pool2d_windows(5, 5, core::Pool2dParams::square(2, 2, 2),
                                         core::WindowFill::kZero, "max_pool2d"),
                    Catch::Contains("[max_pool2d]") && Catch::Contains("at most half"));
  CHECK_THROWS_WITH(core::pool2d_windows(2, 2, core::Pool2dParams::square(3),
                                         core::WindowFill::kZero, "avg_pool2d"),
                    Catch::Contains("[avg_pool2d]"));
  CHECK_THROWS_WITH(
      core::adaptive_pool2d_windows(4, 4, 0, 2, core::WindowFill::kZero, "adaptive_avg_pool2d"),
      Catch::Contains("[adaptive_avg_pool2d]"));
  const auto t = core::pool2d_windows(4, 4, core::Pool2dParams::square(2), core::WindowFill::kZero);
  CHECK_THROWS_WITH(core::gather_windows(vt::uniform({1, 1, 5, 4}, 0, 1, 3), t, "max_pool2d"),
                    Catch::Contains("[max_pool2d]"));
}
