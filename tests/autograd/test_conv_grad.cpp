// conv2d gradients: core::conv2d_input_grad / conv2d_weight_grad against naive loops (float64 and
// bit-exact ring64) and finite differences; the new Beaver descriptors; secret conv2d backward
// (2 and 3 parties) and max/avg pooling forward and backward against float64.

#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "core/conv.h"
#include "core/error.h"
#include "crypto/bilinear.h"
#include "tests/autograd/autograd_test_util.h"
#include "tests/harness/simulate.h"

namespace vt = veil::testing;
namespace ag = veil::agtest;
using veil::MpcTensor;
using veil::core::Conv2dParams;
using veil::core::DType;
using veil::core::Shape;
using veil::core::Tensor;

namespace {

Conv2dParams params(int64_t stride, int64_t pad, int64_t dilation, int64_t groups) {
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

// Naive gradients of conv2d by looping over every forward product: for y = conv2d(x, w),
// dx[n, c_in, y, x] += dy[n, o, i, j] w[o, c, u, v] and dw[o, c, u, v] += dy[n, o, i, j] x[...].
template <class T>
void naive_grads(const Tensor& x_in,
                 const Tensor& w_in,
                 const Tensor& dy_in,
                 const Conv2dParams& p,
                 Tensor& dx,
                 Tensor& dw) {
  const Tensor x = x_in.contiguous();
  const Tensor w = w_in.contiguous();
  const Tensor dy = dy_in.contiguous();
  const Shape& xs = x.shape();
  const Shape& ws = w.shape();
  const Shape& ys = dy.shape();
  dx = Tensor::zeros(xs, x.dtype());
  dw = Tensor::zeros(ws, x.dtype());
  const T* px = x.data<T>();
  const T* pw = w.data<T>();
  const T* pd = dy.data<T>();
  T* pdx = dx.data<T>();
  T* pdw = dw.data<T>();
  const int64_t cog = ws[0] / p.groups;
  for (int64_t n = 0; n < ys[0]; ++n) {
    for (int64_t o = 0; o < ys[1]; ++o) {
      const int64_t g = o / cog;
      for (int64_t i = 0; i < ys[2]; ++i) {
        for (int64_t j = 0; j < ys[3]; ++j) {
          const T d = pd[((n * ys[1] + o) * ys[2] + i) * ys[3] + j];
          for (int64_t c = 0; c < ws[1]; ++c) {
            const int64_t ci = g * ws[1] + c;
            for (int64_t u = 0; u < ws[2]; ++u) {
              const int64_t yy = i * p.stride_h + u * p.dilation_h - p.pad_h;
              for (int64_t v = 0; v < ws[3]; ++v) {
                const int64_t xx = j * p.stride_w + v * p.dilation_w - p.pad_w;
                if (yy < 0 || yy >= xs[2] || xx < 0 || xx >= xs[3]) {
                  continue;
                }
                const int64_t xi = ((n * xs[1] + ci) * xs[2] + yy) * xs[3] + xx;
                const int64_t wi = ((o * ws[1] + c) * ws[2] + u) * ws[3] + v;
                pdx[xi] += d * pw[wi];
                pdw[wi] += d * px[xi];
              }
            }
          }
        }
      }
    }
  }
}

Tensor random_ring(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::kRing64);
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
  uint64_t* p = t.data<uint64_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    p[i] = s;
  }
  return t;
}

bool ring_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector<uint64_t>() == b.to_vector<uint64_t>();
}

struct Case {
  Shape x;
  Shape w;
  Conv2dParams p;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {{2, 3, 5, 6}, {4, 3, 3, 3}, params(1, 0, 1, 1)},
      {{2, 4, 7, 6}, {6, 2, 3, 2}, params(2, 1, 1, 2)},
      {{1, 2, 8, 8}, {3, 2, 2, 3}, params(1, 2, 2, 1)},
      {{3, 6, 5, 5}, {3, 2, 1, 1}, params(2, 0, 1, 3)},
  };
  return c;
}

// Secret x and w on n parties; y = conv2d(x, w) seeded with the secret gradient g. Returns
// {y, dx, dw} revealed.
std::vector<Tensor> secret_conv(
    int n, const Tensor& x, const Tensor& w, const Tensor& g, const Conv2dParams& p) {
  return ag::run(n, [&](veil::Party& party) {
    MpcTensor xs = ag::place(x, ag::Vis::kSecret, 0, party);
    MpcTensor ws = ag::place(w, ag::Vis::kSecret, 1, party);
    const MpcTensor gs = ag::place(g, ag::Vis::kSecret, 2, party);
    xs.set_requires_grad(true);
    ws.set_requires_grad(true);
    const MpcTensor y = veil::conv2d(xs, ws, p);
    veil::sum(veil::mul(y, gs)).backward();  // the upstream gradient of y is g
    return std::vector<Tensor>{y.reveal(), xs.grad().reveal(), ws.grad().reveal()};
  });
}

}  // namespace

TEST_CASE("conv2d input and weight gradients match naive loops (float64, ring64 bit-exact)",
          "[autograd][conv]") {
  uint64_t seed = 1;
  for (const Case& c : cases()) {
    const Shape ys = veil::core::conv2d_out_shape(c.x, c.w, c.p);
    const Shape hw{c.x[2], c.x[3]};
    const Shape khw{c.w[2], c.w[3]};
    // float64 against the naive loop
    const Tensor x = vt::uniform(c.x, -1, 1, seed++);
    const Tensor w = vt::uniform(c.w, -1, 1, seed++);
    const Tensor dy = vt::uniform(ys, -1, 1, seed++);
    Tensor dx_ref;
    Tensor dw_ref;
    naive_grads<double>(x, w, dy, c.p, dx_ref, dw_ref);
    CHECK(vt::max_abs_diff(veil::core::conv2d_input_grad(dy, w, c.p, hw), dx_ref) < 1e-12);
    CHECK(vt::max_abs_diff(veil::core::conv2d_weight_grad(x, dy, c.p, khw), dw_ref) < 1e-12);
    // ring64: exact mod 2^64 on full-range random values
    const Tensor xr = random_ring(c.x, seed++);
    const Tensor wr = random_ring(c.w, seed++);
    const Tensor dyr = random_ring(ys, seed++);
    Tensor dxr;
    Tensor dwr;
    naive_grads<uint64_t>(xr, wr, dyr, c.p, dxr, dwr);
    CHECK(ring_equal(veil::core::conv2d_input_grad(dyr, wr, c.p, hw), dxr));
    CHECK(ring_equal(veil::core::conv2d_weight_grad(xr, dyr, c.p, khw), dwr));
  }
}

TEST_CASE("conv2d gradients match finite differences of core::conv2d", "[autograd][conv]") {
  const Case& c = cases()[1];
  const Shape ys = veil::core::conv2d_out_shape(c.x, c.w, c.p);
  const Tensor x = vt::uniform(c.x, -1, 1, 41);
  const Tensor w = vt::uniform(c.w, -1, 1, 42);
  const Tensor dy = vt::uniform(ys, -1, 1, 43);
  // L(x, w) = <conv2d(x, w), dy>: dL/dx = input_grad(dy, w), dL/dw = weight_grad(x, dy)
  auto loss = [&](const std::vector<Tensor>& v) {
    return ag::dot(veil::core::conv2d(v[0], v[1], c.p), dy);
  };
  const Tensor fx = ag::fd_grad(loss, {x, w}, 0);
  const Tensor fw = ag::fd_grad(loss, {x, w}, 1);
  CHECK(vt::max_abs_diff(veil::core::conv2d_input_grad(dy, w, c.p, {c.x[2], c.x[3]}), fx) < 1e-7);
  CHECK(vt::max_abs_diff(veil::core::conv2d_weight_grad(x, dy, c.p, {c.w[2], c.w[3]}), fw) < 1e-7);
}

TEST_CASE("conv2d gradient descriptors: shapes, wire round trip, errors", "[autograd][conv]") {
  namespace vc = veil::crypto;
  const Conv2dParams p = params(2, 1, 1, 2);
  const Shape x{2, 4, 7, 6};
  const Shape w{6, 2, 3, 2};
  const Shape y = veil::core::conv2d_out_shape(x, w, p);
  const auto in_op = vc::BilinearOp::conv2d_input_grad(y, w, p, {7, 6});
  const auto w_op = vc::BilinearOp::conv2d_weight_grad(x, y, p, {3, 2});
  CHECK(in_op.out_shape() == x);
  CHECK(w_op.out_shape() == w);
  CHECK(std::string(in_op.name()) == "conv2d_input_grad");
  CHECK(std::string(w_op.name()) == "conv2d_weight_grad");
  for (const auto& op : {in_op, w_op}) {
    const auto bytes = op.serialize();
    CHECK(bytes.size() == 8 * (1 + 5 + 5 + 7 + 2));
    const auto back = vc::BilinearOp::deserialize(bytes);
    CHECK(back.kind == op.kind);
    CHECK(back.x_shape == op.x_shape);
    CHECK(back.y_shape == op.y_shape);
    CHECK(back.conv == p);
    CHECK(back.spatial == op.spatial);
    CHECK(back.str() == op.str());
    auto shorter = bytes;
    shorter.pop_back();
    CHECK_THROWS_AS(vc::BilinearOp::deserialize(shorter), veil::ProtocolError);
  }
  // the existing kinds keep their encodings
  CHECK(vc::BilinearOp::conv2d(x, w, p).serialize().size() == 8 * (1 + 5 + 5 + 7));
  CHECK(vc::BilinearOp::matmul({3, 4}, {4, 5}).serialize().size() == 8 * (1 + 3 + 3));
  // a wrong input extent or kernel extent no longer matches dy
  CHECK_THROWS_AS(vc::BilinearOp::conv2d_input_grad(y, w, p, {9, 6}), veil::ValueError);
  CHECK_THROWS_AS(vc::BilinearOp::conv2d_weight_grad(x, y, p, {5, 2}), veil::ValueError);
  CHECK_THROWS_AS(veil::core::conv2d_input_grad(Tensor::zeros(y, DType::kFloat64),
                                                Tensor::zeros(w, DType::kRing64), p, {7, 6}),
                  veil::ValueError);
}

TEST_CASE("secret conv2d forward and backward match float64 (2 and 3 parties)",
          "[autograd][conv]") {
  for (std::size_t ci : {std::size_t{0}, std::size_t{1}}) {
    const Case& c = cases()[ci];
    const Shape ys = veil::core::conv2d_out_shape(c.x, c.w, c.p);
    const Tensor x = vt::uniform(c.x, -1, 1, 60 + ci);
    const Tensor w = vt::uniform(c.w, -1, 1, 70 + ci);
    const Tensor g = vt::uniform(ys, -1, 1, 80 + ci);
    const Tensor y_ref = veil::core::conv2d(x, w, c.p);
    Tensor dx_ref;
    Tensor dw_ref;
    naive_grads<double>(x, w, g, c.p, dx_ref, dw_ref);
    // reduction lengths K of y, dx and dw. Operands in [-1, 1] are encoded with error <= 2^-17
    // each and the seeded gradient (g * 1, truncated) is off by <= 1 ulp, so a sum of K products
    // is off by <= 1.5 K 2^-16, plus a few ulp of truncation.
    const double k_fwd = static_cast<double>(c.w[1] * c.w[2] * c.w[3]);
    const double k_dx = static_cast<double>(c.w[0] / c.p.groups * c.w[2] * c.w[3]);
    const double k_dw = static_cast<double>(ys[0] * ys[2] * ys[3]);
    for (int n : {2, 3}) {
      INFO("case " << ci << ", parties " << n);
      const auto r = secret_conv(n, x, w, g, c.p);
      CHECK(vt::max_abs_diff(r[0], y_ref) <= (2 * k_fwd + 4) * vt::ulp());
      CHECK(vt::max_abs_diff(r[1], dx_ref) <= (2 * k_dx + 4) * vt::ulp());
      CHECK(vt::max_abs_diff(r[2], dw_ref) <= (2 * k_dw + 4) * vt::ulp());
    }
  }
}

TEST_CASE("conv2d with public operands: public weight and fully public backward",
          "[autograd][conv]") {
  const Case& c = cases()[1];
  const Shape ys = veil::core::conv2d_out_shape(c.x, c.w, c.p);
  const Tensor x = ag::quantize(vt::uniform(c.x, -1, 1, 91));
  const Tensor w = ag::quantize(vt::uniform(c.w, -1, 1, 92));
  const Tensor g = ag::quantize(vt::uniform(ys, -1, 1, 93));
  Tensor dx_ref;
  Tensor dw_ref;
  naive_grads<double>(x, w, g, c.p, dx_ref, dw_ref);
  for (ag::Vis vis : {ag::Vis::kPublic, ag::Vis::kMixed}) {
    INFO(ag::vis_name(vis));
    const auto r = ag::run(2, [&](veil::Party& party) {
      MpcTensor xs = ag::place(x, vis, 0, party);
      MpcTensor ws = ag::place(w, vis, 1, party);
      xs.set_requires_grad(true);
      ws.set_requires_grad(true);
      const MpcTensor y = veil::conv2d(xs, ws, c.p);
      veil::sum(veil::mul(y, MpcTensor::from_public(g, party))).backward();
      return std::vector<Tensor>{y.reveal(), xs.grad().reveal(), ws.grad().reveal(),
                                 Tensor::scalar<double>(y.is_secret() ? 1.0 : 0.0)};
    });
    CHECK(r[3].item<double>() == (vis == ag::Vis::kMixed ? 1.0 : 0.0));
    CHECK(vt::max_abs_diff(r[0], veil::core::conv2d(x, w, c.p)) <= 2 * vt::ulp());
    CHECK(vt::max_abs_diff(r[1], dx_ref) <= 2 * vt::ulp());
    CHECK(vt::max_abs_diff(r[2], dw_ref) <= 2 * vt::ulp());
  }
}

namespace {

// float64 pooling reference: forward and dx for the upstream gradient g (max: first maximum).
void pool_ref(const Tensor& x_in,
              const Tensor& g_in,
              int64_t k,
              int64_t s,
              bool is_max,
              Tensor& y,
              Tensor& dx) {
  const Tensor x = x_in.contiguous();
  const Tensor g = g_in.contiguous();
  const Shape& xs = x.shape();
  const int64_t oh = (xs[2] - k) / s + 1;
  const int64_t ow = (xs[3] - k) / s + 1;
  y = Tensor::zeros({xs[0], xs[1], oh, ow}, DType::kFloat64);
  dx = Tensor::zeros(xs, DType::kFloat64);
  const double* px = x.data<double>();
  const double* pg = g.data<double>();
  double* py = y.data<double>();
  double* pdx = dx.data<double>();
  for (int64_t pl = 0; pl < xs[0] * xs[1]; ++pl) {
    const int64_t base = pl * xs[2] * xs[3];
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t o = (pl * oh + i) * ow + j;
        double acc = 0;
        int64_t best = -1;
        for (int64_t u = 0; u < k; ++u) {
          for (int64_t v = 0; v < k; ++v) {
            const int64_t idx = base + (i * s + u) * xs[3] + j * s + v;
            acc += px[idx];
            if (best < 0 || px[idx] > px[best]) {
              best = idx;
            }
          }
        }
        if (is_max) {
          py[o] = px[best];
          pdx[best] += pg[o];
        } else {
          py[o] = acc / static_cast<double>(k * k);
          for (int64_t u = 0; u < k; ++u) {
            for (int64_t v = 0; v < k; ++v) {
              pdx[base + (i * s + u) * xs[3] + j * s + v] += pg[o] / static_cast<double>(k * k);
            }
          }
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("max_pool2d and avg_pool2d forward and backward match float64", "[autograd][pool]") {
  const Tensor x = ag::quantize(vt::uniform({2, 3, 6, 6}, -2, 2, 101));
  struct PoolCase {
    int64_t k;
    int64_t s;
    bool is_max;
  };
  for (const PoolCase pc :
       {PoolCase{2, 2, true}, PoolCase{3, 2, true}, PoolCase{2, 2, false}, PoolCase{3, 1, false}}) {
    const int64_t oh = (6 - pc.k) / pc.s + 1;
    const Tensor g = ag::quantize(vt::uniform({2, 3, oh, oh}, -1, 1, 102));
    Tensor y_ref;
    Tensor dx_ref;
    pool_ref(x, g, pc.k, pc.s, pc.is_max, y_ref, dx_ref);
    for (int n : {2, 3}) {
      for (ag::Vis vis : {ag::Vis::kSecret, ag::Vis::kPublic}) {
        if (vis == ag::Vis::kPublic && n == 3) {
          continue;
        }
        INFO("k " << pc.k << " s " << pc.s << " max " << pc.is_max << " parties " << n << " "
                  << ag::vis_name(vis));
        const auto r = ag::run(n, [&](veil::Party& party) {
          MpcTensor xs = ag::place(x, vis, 0, party);
          const MpcTensor gs = ag::place(g, vis, 1, party);
          xs.set_requires_grad(true);
          const MpcTensor y =
              pc.is_max ? veil::max_pool2d(xs, pc.k, pc.s) : veil::avg_pool2d(xs, pc.k, pc.s);
          veil::sum(veil::mul(y, gs)).backward();
          return std::vector<Tensor>{y.reveal(), xs.grad().reveal()};
        });
        // max: selection only, but the upstream gradient d(y * g)/dy = 1.0 * g is truncated
        // once, which for N > 2 (dealer pair) is off by one unit with probability 2^-16 per
        // element; avg: 1/k^2 encoded with 16 bits (relative 2^-17 k^2) times a window sum
        // <= 2 k^2, plus a truncation
        const double tol =
            pc.is_max ? 1.01 * vt::ulp() : (4.0 * static_cast<double>(pc.k * pc.k) + 4) * vt::ulp();
        CHECK(vt::max_abs_diff(r[0], y_ref) <= tol);
        CHECK(vt::max_abs_diff(r[1], dx_ref) <= tol);
      }
    }
  }
}

TEST_CASE("conv2d and pooling reject bad inputs", "[autograd][conv]") {
  ag::run(2, [&](veil::Party& party) {
    if (party.rank() != 0) {
      return std::vector<Tensor>{};  // Catch assertions on one thread only (all local)
    }
    const MpcTensor x = MpcTensor::from_public(vt::uniform({1, 3, 5, 5}, -1, 1, 1), party);
    const MpcTensor w = MpcTensor::from_public(vt::uniform({4, 2, 3, 3}, -1, 1, 2), party);
    CHECK_THROWS_AS(veil::conv2d(x, w), veil::ValueError);  // channel mismatch 3 vs 2
    CHECK_THROWS_AS(veil::max_pool2d(x, 6, 1), veil::ValueError);
    CHECK_THROWS_AS(veil::avg_pool2d(x, 2, 0), veil::ValueError);
    const MpcTensor flat = MpcTensor::from_public(vt::uniform({3, 5}, -1, 1, 3), party);
    CHECK_THROWS_AS(veil::max_pool2d(flat, 2, 2), veil::ValueError);
    return std::vector<Tensor>{};
  });
}
