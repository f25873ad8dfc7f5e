// Conv1d, ConvTranspose2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d and the padding options of
// MaxPool2d / AvgPool2d: parameter names, shapes and PyTorch's default init bounds; small
// networks forward and backward (secret 2 and 3 parties, public) against float64 references
// computed here (tests/harness/conv_reference.h); bad inputs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "core/conv.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/launch.h"
#include "nn/nn.h"
#include "tests/harness/conv_reference.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
namespace nn = veil::nn;
namespace core = veil::core;
using core::DType;
using core::Shape;
using core::Tensor;
using veil::MpcTensor;

namespace {

std::vector<Tensor> run(int n, const std::function<std::vector<Tensor>(veil::Party&)>& fn) {
  return veil::crypto::launch<std::vector<Tensor>>(vt::test_options(n), fn)[0];
}

MpcTensor place(const Tensor& x, bool secret, veil::Party& p) {
  return secret ? MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p)
                : MpcTensor::from_public(x, p);
}

Tensor quantize(const Tensor& x) {
  Tensor out = x.contiguous().clone();
  double* p = out.data<double>();
  for (int64_t i = 0; i < out.numel(); ++i) {
    p[i] = std::ldexp(std::round(std::ldexp(p[i], 16)), -16);
  }
  return out;
}

// t [N, C, ...] + b [C] (float64).
Tensor add_channel_bias(const Tensor& t_in, const Tensor& b) {
  Tensor t = t_in.contiguous().clone();
  const int64_t c = t.size(1);
  const int64_t inner = t.numel() / (t.size(0) * c);
  const std::vector<double> vb = b.to_vector<double>();
  double* pt = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    pt[i] += vb[static_cast<std::size_t>((i / inner) % c)];
  }
  return t;
}

// sum of t [N, C, ...] over every dim but 1 -> [C].
Tensor channel_sum(const Tensor& t_in) {
  const Tensor t = t_in.contiguous();
  const int64_t c = t.size(1);
  const int64_t inner = t.numel() / (t.size(0) * c);
  Tensor out = Tensor::zeros({c}, DType::kFloat64);
  for (int64_t i = 0; i < t.numel(); ++i) {
    out.data<double>()[(i / inner) % c] += t.data<double>()[i];
  }
  return out;
}

void check_bound(const MpcTensor& t, double bound) {
  double m = 0;
  const std::vector<double> v = t.reveal().to_vector<double>();
  for (double e : v) {
    m = std::max(m, std::abs(e));
  }
  CHECK(m <= bound + 1e-4);
  // uniform over [-bound, bound], not a narrower range: n uniform draws all stay below q bound
  // with probability q^n, so q = 1e-6^(1/n) fails once in a million runs (6 draws: q = 0.1)
  const double q = std::pow(1e-6, 1.0 / static_cast<double>(v.size()));
  CHECK(m >= q * bound);
}

}  // namespace

TEST_CASE("Conv1d and ConvTranspose2d parameters, PyTorch default init and shapes", "[nn][conv]") {
  run(2, [](veil::Party& p) {
    if (p.rank() != 0) {
      return std::vector<Tensor>{};  // Catch assertions on one thread only (all local)
    }
    // Conv1d: weight [out, in/groups, k], fan_in = in/groups * k
    nn::Conv1d c1(nn::Conv1dOptions(4, 6, 3).groups(2).padding(1).stride(2), p);
    auto params = c1->named_parameters();
    REQUIRE(params.size() == 2);
    CHECK(params[0].first == "weight");
    CHECK(params[1].first == "bias");
    CHECK(params[0].second.shape() == Shape{6, 2, 3});
    CHECK(params[1].second.shape() == Shape{6});
    check_bound(c1->weight, 1.0 / std::sqrt(6.0));
    check_bound(c1->bias, 1.0 / std::sqrt(6.0));
    CHECK(c1->forward(MpcTensor::from_public(vt::uniform({2, 4, 9}, -1, 1, 1), p)).shape() ==
          Shape{2, 6, 5});
    // ConvTranspose2d: weight [in, out/groups, k, k], fan_in = out/groups * k^2 (PyTorch)
    nn::ConvTranspose2d ct(
        nn::ConvTranspose2dOptions(4, 6, 3).groups(2).stride(2).padding(1).output_padding(1), p);
    params = ct->named_parameters();
    REQUIRE(params.size() == 2);
    CHECK(params[0].first == "weight");
    CHECK(params[0].second.shape() == Shape{4, 3, 3, 3});
    CHECK(params[1].second.shape() == Shape{6});
    check_bound(ct->weight, 1.0 / std::sqrt(27.0));
    check_bound(ct->bias, 1.0 / std::sqrt(27.0));
    CHECK(ct->forward(MpcTensor::from_public(vt::uniform({2, 4, 5, 5}, -1, 1, 2), p)).shape() ==
          Shape{2, 6, 10, 10});
    nn::ConvTranspose2d nob(nn::ConvTranspose2dOptions(2, 2, 2).bias(false), p);
    CHECK(nob->named_parameters().size() == 1);
    // pooling layers: legacy constructors and the options
    const MpcTensor x = MpcTensor::from_public(vt::uniform({2, 3, 7, 6}, -1, 1, 3), p);
    CHECK(nn::MaxPool2d(2)->kernel() == 2);
    CHECK(nn::MaxPool2d(3, 1)->stride() == 1);
    CHECK(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1))->forward(x).shape() ==
          Shape{2, 3, 4, 3});
    CHECK(nn::AvgPool2d(nn::AvgPool2dOptions({3, 2}).padding({1, 0}))->forward(x).shape() ==
          Shape{2, 3, 3, 3});
    CHECK(nn::AdaptiveAvgPool2d(1)->forward(x).shape() == Shape{2, 3, 1, 1});
    CHECK(nn::AdaptiveMaxPool2d(4, 5)->forward(x).shape() == Shape{2, 3, 4, 5});
    CHECK(nn::AdaptiveAvgPool2d(nn::Size2{3, 2})->output_size() == nn::Size2{3, 2});
    return std::vector<Tensor>{};
  });
}

TEST_CASE("pooling layer options map to PyTorch's windows", "[nn][pool]") {
  // GIVEN public inputs on the fixed-point grid; THEN each layer equals the float64 reference of
  // the same PyTorch parameters (max exactly; average within the encoding of 1/d)
  const Tensor x = quantize(vt::uniform({1, 2, 7, 6}, -2, 2, 5));
  core::Pool2dParams mp;
  mp.kernel_h = 3;
  mp.kernel_w = 2;
  mp.stride_h = 2;
  mp.stride_w = 1;
  mp.pad_h = 1;
  mp.pad_w = 1;
  mp.dilation_w = 2;
  core::Pool2dParams ap = core::Pool2dParams::square(3, 2, 1);
  ap.count_include_pad = false;
  const auto r = run(2, [&](veil::Party& p) {
    const MpcTensor xs = MpcTensor::from_public(x, p);
    nn::MaxPool2d maxp(
        nn::MaxPool2dOptions({3, 2}).stride({2, 1}).padding({1, 1}).dilation({1, 2}));
    nn::AvgPool2d avgp(nn::AvgPool2dOptions(3).stride(2).padding(1).count_include_pad(false));
    return std::vector<Tensor>{maxp->forward(xs).reveal(), avgp->forward(xs).reveal(),
                               nn::AdaptiveAvgPool2d(3, 4)->forward(xs).reveal(),
                               nn::AdaptiveMaxPool2d(2)->forward(xs).reveal()};
  });
  auto ref = [&](const std::vector<vt::RefWindow>& w, int64_t oh, bool is_max) {
    const int64_t ow = static_cast<int64_t>(w.size()) / oh;
    return vt::ref_pool(x, w, oh, ow, is_max, Tensor::zeros({1, 2, oh, ow}, DType::kFloat64)).y;
  };
  CHECK(vt::max_abs_diff(r[0], ref(vt::ref_pool_windows(7, 6, mp), 4, true)) == 0.0);
  CHECK(vt::max_abs_diff(r[1], ref(vt::ref_pool_windows(7, 6, ap), 4, false)) <= 20 * vt::ulp());
  CHECK(vt::max_abs_diff(r[2], ref(vt::ref_adaptive_windows(7, 6, 3, 4), 3, false)) <=
        20 * vt::ulp());
  CHECK(vt::max_abs_diff(r[3], ref(vt::ref_adaptive_windows(7, 6, 2, 2), 2, true)) == 0.0);
}

TEST_CASE("ConvTranspose2d -> AdaptiveAvgPool2d -> Flatten -> Linear matches float64",
          "[nn][conv]") {
  const Tensor x = quantize(vt::uniform({2, 2, 4, 4}, -1, 1, 11));
  const Tensor g = quantize(vt::uniform({2, 2}, -1, 1, 12));
  core::ConvTranspose2dParams tp;
  tp.stride_h = tp.stride_w = 2;
  tp.pad_h = tp.pad_w = 1;
  tp.output_pad_h = tp.output_pad_w = 1;
  for (int n : {2, 3}) {
    for (bool secret : {true, false}) {
      if (!secret && n == 3) {
        continue;
      }
      INFO("parties " << n << (secret ? " secret" : " public"));
      const auto r = run(n, [&](veil::Party& p) {
        nn::ConvTranspose2d ct(
            nn::ConvTranspose2dOptions(2, 3, 3).stride(2).padding(1).output_padding(1).seed(5), p);
        nn::AdaptiveAvgPool2d pool(2);
        nn::Flatten flat;
        nn::Linear lin(nn::LinearOptions(12, 2).seed(6), p);
        std::vector<Tensor> res{ct->weight.reveal(), ct->bias.reveal(), lin->weight.reveal(),
                                lin->bias.reveal()};
        if (secret) {
          ct->encrypt(0);
          lin->encrypt(0);
        }
        MpcTensor xs = place(x, secret, p);
        xs.set_requires_grad(true);
        const MpcTensor y = lin->forward(flat->forward(pool->forward(ct->forward(xs))));
        veil::sum(veil::mul(y, place(g, secret, p))).backward();
        for (const MpcTensor& t : {y, xs.grad(), ct->weight.grad(), ct->bias.grad(),
                                   lin->weight.grad(), lin->bias.grad()}) {
          res.push_back(t.reveal());
        }
        return res;
      });
      // float64 reference with the revealed initial parameters (on the fixed-point grid)
      const Tensor& w = r[0];
      const Tensor& b = r[1];
      const Tensor& wl = r[2];
      const Tensor& bl = r[3];
      const Tensor z = add_channel_bias(vt::naive_conv_transpose2d<double>(x, w, tp).y, b);
      REQUIRE(z.shape() == Shape{2, 3, 8, 8});
      const auto windows = vt::ref_adaptive_windows(8, 8, 2, 2);
      const Tensor a =
          vt::ref_pool(z, windows, 2, 2, false, Tensor::zeros({2, 3, 2, 2}, DType::kFloat64)).y;
      const Tensor f = a.reshape({2, 12});
      Tensor y = core::matmul(f, wl);
      Tensor df = core::matmul(g, wl.t());
      for (int64_t i = 0; i < 2; ++i) {
        for (int64_t o = 0; o < 2; ++o) {
          y.data<double>()[i * 2 + o] += bl.data<double>()[o];
        }
      }
      const Tensor dwl = core::matmul(f.t(), g);
      const Tensor dbl = core::sum(g, 0);
      const Tensor dz = vt::ref_pool(z, windows, 2, 2, false, df.reshape({2, 3, 2, 2})).dx;
      const vt::BilinearRef ct = vt::naive_conv_transpose2d<double>(x, w, tp, dz);
      // errors: the transposed conv sums <= 2 * 9 products per output and its gradients up to
      // 3 * 9 (dx) and 2 * 16 (dw) products, each ~1 ulp; the pool divides by 16 (exact) and the
      // linear layer sums 12 products, compounded through two layers
      const double tol = 120 * vt::ulp();
      CHECK(vt::max_abs_diff(r[4], y) <= tol);
      CHECK(vt::max_abs_diff(r[5], ct.dx) <= tol);
      CHECK(vt::max_abs_diff(r[6], ct.dw) <= tol);
      CHECK(vt::max_abs_diff(r[7], channel_sum(dz)) <= tol);
      CHECK(vt::max_abs_diff(r[8], dwl) <= tol);
      CHECK(vt::max_abs_diff(r[9], dbl) <= tol);
    }
  }
}

TEST_CASE("Conv1d forward and backward match float64", "[nn][conv]") {
  const Tensor x = quantize(vt::uniform({2, 3, 10}, -1, 1, 21));
  const core::Conv1dParams cp{2, 1, 1, 1};
  const Tensor g = quantize(vt::uniform({2, 4, 5}, -1, 1, 22));
  for (int n : {2, 3}) {
    INFO("parties " << n);
    const auto r = run(n, [&](veil::Party& p) {
      nn::Conv1d conv(nn::Conv1dOptions(3, 4, 3).stride(2).padding(1).seed(9), p);
      std::vector<Tensor> res{conv->weight.reveal(), conv->bias.reveal()};
      conv->encrypt(0);
      MpcTensor xs = place(x, true, p);
      xs.set_requires_grad(true);
      const MpcTensor y = conv->forward(xs);
      veil::sum(veil::mul(y, place(g, true, p))).backward();
      for (const MpcTensor& t : {y, xs.grad(), conv->weight.grad(), conv->bias.grad()}) {
        res.push_back(t.reveal());
      }
      return res;
    });
    const vt::BilinearRef ref = vt::naive_conv1d<double>(x, r[0], cp, g);
    // reductions: 9 products (y), <= 8 (dx), 10 (dw), 10 (db); ~1.5 ulp each plus truncations
    const double tol = 30 * vt::ulp();
    CHECK(vt::max_abs_diff(r[2], add_channel_bias(ref.y, r[1])) <= tol);
    CHECK(vt::max_abs_diff(r[3], ref.dx) <= tol);
    CHECK(vt::max_abs_diff(r[4], ref.dw) <= tol);
    CHECK(vt::max_abs_diff(r[5], channel_sum(g)) <= tol);
  }
}

TEST_CASE("conv and pooling modules reject bad inputs", "[nn][conv]") {
  run(2, [](veil::Party& p) {
    if (p.rank() != 0) {
      return std::vector<Tensor>{};  // Catch assertions on one thread only (all local)
    }
    nn::Conv1d c1(nn::Conv1dOptions(3, 4, 3), p);
    CHECK_THROWS_WITH(c1->forward(MpcTensor::from_public(vt::uniform({1, 3, 5, 5}, -1, 1, 1), p)),
                      Catch::Contains("[conv1d]") && Catch::Contains("[1, 3, 5, 5]"));
    CHECK_THROWS_WITH(nn::Conv1d(nn::Conv1dOptions(3, 4, 3).groups(2), p),
                      Catch::Contains("[Conv1d]"));
    CHECK_THROWS_WITH(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(2, 2, 3).output_padding(1), p),
                      Catch::Contains("[ConvTranspose2d]") && Catch::Contains("output_pad 1x1"));
    nn::ConvTranspose2d ct(nn::ConvTranspose2dOptions(2, 2, 3), p);
    CHECK_THROWS_WITH(ct->forward(MpcTensor::from_public(vt::uniform({1, 3, 4, 4}, -1, 1, 2), p)),
                      Catch::Contains("[conv_transpose2d]"));
    CHECK_THROWS_WITH(nn::MaxPool2d(nn::MaxPool2dOptions(2).padding(2)),
                      Catch::Contains("[MaxPool2d]"));
    CHECK_THROWS_WITH(nn::AvgPool2d(nn::AvgPool2dOptions({3, 2}).stride(0)),
                      Catch::Contains("[AvgPool2d]"));
    CHECK_THROWS_WITH(nn::AdaptiveAvgPool2d(0), Catch::Contains("[AdaptiveAvgPool2d]"));
    CHECK_THROWS_WITH(nn::AdaptiveMaxPool2d(2, -1), Catch::Contains("[AdaptiveMaxPool2d]"));
    CHECK_THROWS_WITH(
        nn::AdaptiveMaxPool2d(2)->forward(MpcTensor::from_public(vt::uniform({4, 4}, -1, 1, 3), p)),
        Catch::Contains("[adaptive_max_pool2d]"));
    return std::vector<Tensor>{};
  });
}
