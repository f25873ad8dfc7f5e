// Conv2d, MaxPool2d and AvgPool2d layers: parameters and init, a small
// Conv2d -> ReLU -> MaxPool2d -> Flatten -> Linear network forward and backward (secret, 2 and 3
// parties, and public) against a float64 reference computed here, and bad inputs.

#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "core/conv.h"
#include "core/error.h"
#include "crypto/launch.h"
#include "nn/nn.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
using veil::MpcTensor;
using veil::core::DType;
using veil::core::Shape;
using veil::core::Tensor;

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

// float64 reference of conv(+bias) -> relu -> maxpool 2x2 -> flatten -> linear and its gradients
// for the upstream gradient g [N, out]. Also reports the smallest |pre-activation| and the
// smallest gap between the max and the runner-up of a pooling window (the test needs margins
// well above the fixed-point error so that the secret run takes the same branches).
struct NetRef {
  Tensor y, dx, dw, db, dwl, dbl;
  double relu_margin = 1e9;
  double pool_margin = 1e9;
};

NetRef net_ref(const Tensor& x,
               const Tensor& w,
               const Tensor& b,
               const Tensor& wl,
               const Tensor& bl,
               const Tensor& g,
               const veil::core::Conv2dParams& prm) {
  NetRef r;
  Tensor z = veil::core::conv2d(x, w, prm).contiguous().clone();  // [N, C, H, W]
  const Shape zs = z.shape();
  const int64_t nb = zs[0], ch = zs[1], h = zs[2], wd = zs[3];
  double* pz = z.data<double>();
  const std::vector<double> vb = b.to_vector<double>();
  for (int64_t i = 0; i < z.numel(); ++i) {
    pz[i] += vb[static_cast<std::size_t>((i / (h * wd)) % ch)];
    r.relu_margin = std::min(r.relu_margin, std::abs(pz[i]));
  }
  // relu + maxpool 2x2 stride 2
  const int64_t oh = h / 2, ow = wd / 2;
  const int64_t feat = ch * oh * ow;
  std::vector<double> f(static_cast<std::size_t>(nb * feat));
  std::vector<int64_t> arg(f.size());
  for (int64_t pl = 0; pl < nb * ch; ++pl) {
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j) {
        std::vector<std::pair<double, int64_t>> vals;
        for (int64_t u = 0; u < 2; ++u) {
          for (int64_t v = 0; v < 2; ++v) {
            const int64_t idx = (pl * h + 2 * i + u) * wd + 2 * j + v;
            vals.emplace_back(std::max(pz[idx], 0.0), idx);
          }
        }
        std::stable_sort(vals.begin(), vals.end(),
                         [](const auto& a, const auto& c) { return a.first > c.first; });
        const auto o = static_cast<std::size_t>((pl * oh + i) * ow + j);
        f[o] = vals[0].first;
        arg[o] = vals[0].second;
        if (vals[0].first > 0) {  // among zeros (all negative) the choice does not matter
          r.pool_margin = std::min(r.pool_margin, vals[0].first - vals[1].first);
        }
      }
    }
  }
  // linear: y = f @ wl + bl
  const int64_t out = wl.shape()[1];
  const std::vector<double> vwl = wl.to_vector<double>();
  const std::vector<double> vbl = bl.to_vector<double>();
  const std::vector<double> vg = g.to_vector<double>();
  r.y = Tensor::zeros({nb, out}, DType::kFloat64);
  r.dwl = Tensor::zeros({feat, out}, DType::kFloat64);
  r.dbl = Tensor::zeros({out}, DType::kFloat64);
  std::vector<double> df(f.size(), 0.0);
  for (int64_t n = 0; n < nb; ++n) {
    for (int64_t o = 0; o < out; ++o) {
      double acc = vbl[static_cast<std::size_t>(o)];
      const double gv = vg[static_cast<std::size_t>(n * out + o)];
      for (int64_t k = 0; k < feat; ++k) {
        const auto fi = static_cast<std::size_t>(n * feat + k);
        const auto wi = static_cast<std::size_t>(k * out + o);
        acc += f[fi] * vwl[wi];
        r.dwl.data<double>()[wi] += f[fi] * gv;
        df[fi] += gv * vwl[wi];
      }
      r.y.data<double>()[n * out + o] = acc;
      r.dbl.data<double>()[o] += gv;
    }
  }
  // back through maxpool and relu
  Tensor dz = Tensor::zeros(zs, DType::kFloat64);
  for (std::size_t o = 0; o < f.size(); ++o) {
    const int64_t idx = arg[o];
    if (pz[idx] > 0) {
      dz.data<double>()[idx] += df[o];
    }
  }
  r.dw = veil::core::conv2d_weight_grad(x, dz, prm, {w.shape()[2], w.shape()[3]});
  r.dx = veil::core::conv2d_input_grad(dz, w, prm, {x.shape()[2], x.shape()[3]});
  r.db = Tensor::zeros({ch}, DType::kFloat64);
  for (int64_t i = 0; i < dz.numel(); ++i) {
    r.db.data<double>()[(i / (h * wd)) % ch] += dz.data<double>()[i];
  }
  return r;
}

}  // namespace

TEST_CASE("Conv2d parameters, init bounds and options", "[nn][conv]") {
  run(2, [](veil::Party& p) {
    if (p.rank() != 0) {
      return std::vector<Tensor>{};  // Catch assertions on one thread only (all local)
    }
    veil::nn::Conv2d conv(veil::nn::Conv2dOptions(4, 6, 3).groups(2).padding(1).stride(2), p);
    const auto params = conv->named_parameters();
    REQUIRE(params.size() == 2);
    CHECK(params[0].first == "weight");
    CHECK(params[0].second.shape() == Shape{6, 2, 3, 3});
    CHECK(params[1].second.shape() == Shape{6});
    const double bound = 1.0 / std::sqrt(18.0);
    for (const auto& [name, t] : params) {
      const Tensor v = t.reveal();
      for (double e : v.to_vector<double>()) {
        CHECK(std::abs(e) <= bound + 1e-4);
      }
    }
    veil::nn::Conv2d nob(veil::nn::Conv2dOptions(1, 2, 2).bias(false), p);
    CHECK(nob->named_parameters().size() == 1);
    const MpcTensor x = MpcTensor::from_public(vt::uniform({2, 4, 7, 7}, -1, 1, 3), p);
    CHECK(conv->forward(x).shape() == Shape{2, 6, 4, 4});
    CHECK(veil::nn::MaxPool2d(2)->forward(x).shape() == Shape{2, 4, 3, 3});
    CHECK(veil::nn::AvgPool2d(3, 2)->forward(x).shape() == Shape{2, 4, 3, 3});
    return std::vector<Tensor>{};
  });
}

TEST_CASE("Conv2d -> ReLU -> MaxPool2d -> Flatten -> Linear matches float64", "[nn][conv]") {
  const Tensor x = quantize(vt::uniform({2, 2, 6, 6}, -1, 1, 11));
  const Tensor g = quantize(vt::uniform({2, 3}, -1, 1, 8));
  for (int n : {2, 3}) {
    for (bool secret : {true, false}) {
      if (!secret && n == 3) {
        continue;
      }
      INFO("parties " << n << (secret ? " secret" : " public"));
      const auto r = run(n, [&](veil::Party& p) {
        veil::nn::Conv2d conv(veil::nn::Conv2dOptions(2, 4, 3).padding(1).seed(5), p);
        veil::nn::ReLU relu;
        veil::nn::MaxPool2d pool(2);
        veil::nn::Flatten flat;
        veil::nn::Linear lin(veil::nn::LinearOptions(36, 3).seed(6), p);
        // the public initial parameters (on the fixed-point grid) for the reference
        std::vector<Tensor> res{conv->weight.reveal(), conv->bias.reveal(), lin->weight.reveal(),
                                lin->bias.reveal()};
        if (secret) {
          conv->encrypt(0);
          lin->encrypt(0);
        }
        const MpcTensor xs = place(x, secret, p);
        const MpcTensor y =
            lin->forward(flat->forward(pool->forward(relu->forward(conv->forward(xs)))));
        veil::sum(veil::mul(y, place(g, secret, p))).backward();  // upstream gradient g
        for (const MpcTensor& t :
             {y, conv->weight.grad(), conv->bias.grad(), lin->weight.grad(), lin->bias.grad()}) {
          res.push_back(t.reveal());
        }
        return res;
      });
      veil::core::Conv2dParams prm;
      prm.pad_h = prm.pad_w = 1;
      const NetRef ref = net_ref(x, r[0], r[1], r[2], r[3], g, prm);
      // the fixed-point error of a pre-activation is ~ 20 ulp; the branches must agree
      REQUIRE(ref.relu_margin > 1e-3);
      REQUIRE(ref.pool_margin > 1e-3);
      // reduction lengths: conv 18, linear 36, dw over N H W = 72 positions: <= (K + 4) ulp of
      // encoding and truncation per layer, compounded through the two layers
      const double tol = 200 * vt::ulp();
      CHECK(vt::max_abs_diff(r[4], ref.y) <= tol);
      CHECK(vt::max_abs_diff(r[5], ref.dw) <= tol);
      CHECK(vt::max_abs_diff(r[6], ref.db) <= tol);
      CHECK(vt::max_abs_diff(r[7], ref.dwl) <= tol);
      CHECK(vt::max_abs_diff(r[8], ref.dbl) <= tol);
    }
  }
}

TEST_CASE("Conv2d and pooling layers reject bad inputs", "[nn][conv]") {
  run(2, [](veil::Party& p) {
    if (p.rank() != 0) {
      return std::vector<Tensor>{};  // Catch assertions on one thread only (all local)
    }
    veil::nn::Conv2d conv(veil::nn::Conv2dOptions(3, 4, 3), p);
    const MpcTensor x = MpcTensor::from_public(vt::uniform({1, 2, 5, 5}, -1, 1, 1), p);
    CHECK_THROWS_AS(conv->forward(x), veil::ValueError);  // 2 channels, expected 3
    CHECK_THROWS_AS(veil::nn::Conv2d(veil::nn::Conv2dOptions(3, 4, 3).groups(2), p),
                    veil::ValueError);
    CHECK_THROWS_AS(veil::nn::MaxPool2d(0), veil::ValueError);
    CHECK_THROWS_AS(
        veil::nn::AvgPool2d(2)->forward(MpcTensor::from_public(vt::uniform({4, 4}, -1, 1, 2), p)),
        veil::ValueError);
    return std::vector<Tensor>{};
  });
}
