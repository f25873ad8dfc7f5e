// Public mode and mixed visibility (issue 4, "Modes"):
//  * a whole network run on public values — forward, backward and SGD steps — equals a plaintext
//    fixed-point emulation bit for bit (the emulator below is written independently of veil's
//    ops: uint64 ring arithmetic, a product of two f-bit values floored by an arithmetic shift,
//    constants encoded by rounding to nearest);
//  * a public model on secret data and a secret model on public data both train and cost less
//    than the all-secret run, measured with the communicator's stats.

#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "nn/nn.h"
#include "optim/sgd.h"
#include "tests/autograd/autograd_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::core::Tensor;
namespace nn = veil::nn;
namespace at = veil::agtest;

constexpr int kF = 16;

// ---- the emulator: row-major uint64 matrices, fixed point with kF fractional bits -------------

struct Mat {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint64_t> v;
  uint64_t& at(int64_t r, int64_t c) { return v[static_cast<std::size_t>(r * cols + c)]; }
  uint64_t at(int64_t r, int64_t c) const { return v[static_cast<std::size_t>(r * cols + c)]; }
};

Mat zeros(int64_t r, int64_t c) {
  return {r, c, std::vector<uint64_t>(static_cast<std::size_t>(r * c), 0)};
}

uint64_t floor_shift(uint64_t x, int bits) {
  return static_cast<uint64_t>(static_cast<int64_t>(x) >> bits);
}

uint64_t encode(double x) {
  return static_cast<uint64_t>(static_cast<int64_t>(std::llround(std::ldexp(x, kF))));
}

Mat from_ring(const Tensor& t) {
  const auto s = t.shape();
  const int64_t rows = s.size() == 2 ? s[0] : 1;
  const int64_t cols = s.size() == 2 ? s[1] : s[0];
  return {rows, cols, t.contiguous().to_vector<uint64_t>()};
}

// (a @ b) floored by kF bits.
Mat matmul_fx(const Mat& a, const Mat& b) {
  Mat out = zeros(a.rows, b.cols);
  for (int64_t i = 0; i < a.rows; ++i) {
    for (int64_t j = 0; j < b.cols; ++j) {
      uint64_t acc = 0;
      for (int64_t k = 0; k < a.cols; ++k) {
        acc += a.at(i, k) * b.at(k, j);
      }
      out.at(i, j) = floor_shift(acc, kF);
    }
  }
  return out;
}

Mat transpose(const Mat& a) {
  Mat out = zeros(a.cols, a.rows);
  for (int64_t i = 0; i < a.rows; ++i) {
    for (int64_t j = 0; j < a.cols; ++j) {
      out.at(j, i) = a.at(i, j);
    }
  }
  return out;
}

// a + row vector b broadcast over rows.
Mat add_rows(const Mat& a, const Mat& b) {
  Mat out = a;
  for (int64_t i = 0; i < a.rows; ++i) {
    for (int64_t j = 0; j < a.cols; ++j) {
      out.at(i, j) += b.v[static_cast<std::size_t>(j)];
    }
  }
  return out;
}

Mat column_sums(const Mat& a) {
  Mat out = zeros(1, a.cols);
  for (int64_t i = 0; i < a.rows; ++i) {
    for (int64_t j = 0; j < a.cols; ++j) {
      out.v[static_cast<std::size_t>(j)] += a.at(i, j);
    }
  }
  return out;
}

struct EmulatedMlp {
  Mat w1, b1, w2, b2;  // weights stored [in, out] as veil's Linear

  // One SGD step on the MSE loss of relu(x W1 + b1) W2 + b2 against y; returns the loss encoding.
  uint64_t step(const Mat& x, const Mat& y, double lr) {
    const Mat h = add_rows(matmul_fx(x, w1), b1);
    Mat mask = zeros(h.rows, h.cols);
    Mat a = h;
    for (std::size_t i = 0; i < h.v.size(); ++i) {
      const bool pos = static_cast<int64_t>(h.v[i]) >= 0;
      mask.v[i] = pos ? 1 : 0;
      a.v[i] = pos ? h.v[i] : 0;
    }
    const Mat o = add_rows(matmul_fx(a, w2), b2);
    Mat d = o;
    for (std::size_t i = 0; i < d.v.size(); ++i) {
      d.v[i] = o.v[i] - y.v[i];
    }
    uint64_t sum_sq = 0;
    for (const uint64_t e : d.v) {
      sum_sq += floor_shift(e * e, kF);
    }
    const uint64_t inv_n = encode(1.0 / static_cast<double>(d.v.size()));
    const uint64_t loss = floor_shift(sum_sq * inv_n, kF);
    // Backward: seed 1.0; mean -> g * (1/n); square -> g d + g d; linear layers; relu mask.
    const uint64_t g_mean = floor_shift(encode(1.0) * inv_n, kF);
    Mat g_o = d;
    for (std::size_t i = 0; i < d.v.size(); ++i) {
      const uint64_t part = floor_shift(g_mean * d.v[i], kF);
      g_o.v[i] = part + part;
    }
    const Mat g_b2 = column_sums(g_o);
    const Mat g_w2 = matmul_fx(transpose(a), g_o);
    Mat g_h = matmul_fx(g_o, transpose(w2));
    for (std::size_t i = 0; i < g_h.v.size(); ++i) {
      g_h.v[i] *= mask.v[i];
    }
    const Mat g_b1 = column_sums(g_h);
    const Mat g_w1 = matmul_fx(transpose(x), g_h);
    const uint64_t lr_enc = encode(lr);
    auto update = [lr_enc](Mat& p, const Mat& g) {
      for (std::size_t i = 0; i < p.v.size(); ++i) {
        p.v[i] -= floor_shift(g.v[i] * lr_enc, kF);
      }
    };
    update(w1, g_w1);
    update(b1, g_b1);
    update(w2, g_w2);
    update(b2, g_b2);
    return loss;
  }
};

struct Net : nn::Module {
  nn::Linear fc1{nullptr};
  nn::Linear fc2{nullptr};
  Net() {
    fc1 = register_module("fc1", nn::Linear(nn::LinearOptions(6, 5).seed(3)));
    fc2 = register_module("fc2", nn::Linear(nn::LinearOptions(5, 3).seed(4)));
  }
  MpcTensor forward(const MpcTensor& x) { return fc2(veil::relu(fc1(x))); }
};

}  // namespace

TEST_CASE("a network in public mode equals a fixed-point emulation bit for bit",
          "[autograd][public_mode]") {
  const Tensor x = veil::testing::uniform({8, 6}, -2, 2, 11);
  const Tensor y = veil::testing::uniform({8, 3}, -1, 1, 12);
  constexpr double kLr = 0.05;
  constexpr int kSteps = 3;
  for (int n : {2, 3}) {
    // veil: public parameters, public data; returns the parameters' ring values and the losses.
    auto out = at::run(n, [&](Party& p) {
      Net net;
      std::vector<Tensor> init;
      for (const auto& [name, t] : net.named_parameters()) {
        init.push_back(t.public_ring().clone());
      }
      veil::optim::SGD opt(net.parameters(), veil::optim::SGDOptions(kLr));
      const MpcTensor xs = MpcTensor::from_public(x, p);
      const MpcTensor ys = MpcTensor::from_public(y, p);
      std::vector<uint64_t> losses;
      for (int s = 0; s < kSteps; ++s) {
        opt.zero_grad();
        const MpcTensor loss = veil::mse_loss(net.forward(xs), ys);
        REQUIRE(loss.is_public());
        losses.push_back(loss.public_ring().to_vector<uint64_t>()[0]);
        loss.backward();
        opt.step();
      }
      std::vector<Tensor> result = init;
      for (const auto& [name, t] : net.named_parameters()) {
        REQUIRE(t.is_public());
        result.push_back(t.public_ring().clone());
      }
      result.push_back(Tensor::from_vector(losses, {kSteps}));
      return result;
    });
    REQUIRE(out.size() == 9);
    EmulatedMlp emu{from_ring(out[0]), from_ring(out[1]), from_ring(out[2]), from_ring(out[3])};
    Mat xm = from_ring(veil::crypto::FixedPointEncoder(kF).encode(x));
    Mat ym = from_ring(veil::crypto::FixedPointEncoder(kF).encode(y));
    const std::vector<uint64_t> losses = out[8].to_vector<uint64_t>();
    for (int s = 0; s < kSteps; ++s) {
      CHECK(emu.step(xm, ym, kLr) == losses[static_cast<std::size_t>(s)]);
    }
    CHECK(emu.w1.v == out[4].contiguous().to_vector<uint64_t>());
    CHECK(emu.b1.v == out[5].contiguous().to_vector<uint64_t>());
    CHECK(emu.w2.v == out[6].contiguous().to_vector<uint64_t>());
    CHECK(emu.b2.v == out[7].contiguous().to_vector<uint64_t>());
  }
}

TEST_CASE("a public model on secret data and a secret model on public data train and cost less",
          "[autograd][public_mode][cost]") {
  const Tensor x = veil::testing::uniform({16, 6}, -2, 2, 21);
  const Tensor y = veil::testing::uniform({16, 3}, -1, 1, 22);
  enum class Mode { kAllSecret, kPublicModel, kSecretModel };
  struct Result {
    int64_t rounds;
    int64_t bytes;
    double loss0;
    double loss1;
  };
  auto train = [&](int n, Mode mode) {
    auto out = veil::crypto::launch<Result>(veil::testing::test_options(n), [&](Party& p) {
      Net net;
      if (mode != Mode::kPublicModel) {
        net.encrypt(0);
      }
      veil::optim::SGD opt(net.parameters(), veil::optim::SGDOptions(0.05));
      const MpcTensor xs = mode == Mode::kSecretModel
                               ? MpcTensor::from_public(x, p)
                               : MpcTensor::share(p.rank() == 1 ? x : Tensor(), 1, x.shape(), p);
      const MpcTensor ys = mode == Mode::kSecretModel
                               ? MpcTensor::from_public(y, p)
                               : MpcTensor::share(p.rank() == 1 ? y : Tensor(), 1, y.shape(), p);
      const auto before = p.comm().stats();
      std::vector<double> losses;
      for (int s = 0; s < 4; ++s) {
        opt.zero_grad();
        const MpcTensor loss = veil::mse_loss(net.forward(xs), ys);
        loss.backward();
        opt.step();
        if (s == 0 || s == 3) {
          losses.push_back(loss.reveal().to_vector<double>()[0]);
        }
      }
      const auto d = p.comm().stats() - before;
      return Result{d.total.rounds, d.total.bytes_sent, losses[0], losses[1]};
    });
    return out[0];
  };
  for (int n : {2, 3}) {
    const Result all = train(n, Mode::kAllSecret);
    const Result pub_model = train(n, Mode::kPublicModel);
    const Result sec_model = train(n, Mode::kSecretModel);
    INFO("parties " << n << ": all-secret " << all.rounds << " rounds / " << all.bytes
                    << " B, public model " << pub_model.rounds << " / " << pub_model.bytes
                    << ", secret model " << sec_model.rounds << " / " << sec_model.bytes);
    // Every mode trains (the loss goes down over four steps) ...
    CHECK(all.loss1 < all.loss0);
    CHECK(pub_model.loss1 < pub_model.loss0);
    CHECK(sec_model.loss1 < sec_model.loss0);
    // ... and the mixed modes need fewer bytes than the all-secret run (no Beaver matmuls in the
    // forward of the public model; public inputs to the first layer of the secret model).
    CHECK(pub_model.bytes < all.bytes);
    CHECK(sec_model.bytes < all.bytes);
    CHECK(pub_model.rounds <= all.rounds);
    CHECK(sec_model.rounds <= all.rounds);
  }
}
