// hardtanh, relu6, leaky_relu, softmax/log_softmax along any dim, dropout, div by a public
// scalar and broadcasting matmul: forward against float64 (public: bit for bit against the
// fixed-point emulation where the op truncates), gradients against analytic float64 gradients,
// 2 and 3 parties, public/secret/mixed inputs; costs against the communicator's stats; one bad
// input per op.

#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "core/elementwise.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"
#include "tests/autograd/tensorops_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::core::Shape;
using veil::tensorops_test::check_all;
using veil::tensorops_test::dec;
using veil::tensorops_test::enc;
using veil::tensorops_test::error_of;
using veil::tensorops_test::fmul;
using veil::tensorops_test::kUlp;
using veil::tensorops_test::MV;
using veil::tensorops_test::OpCase;
using veil::tensorops_test::q_uniform;
using veil::tensorops_test::Tensor;
using veil::tensorops_test::TV;
namespace crypto = veil::crypto;

std::size_t at(int64_t i) {
  return static_cast<std::size_t>(i);
}

Tensor map(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> v = x.to_vector<double>();
  for (double& e : v) {
    e = f(e);
  }
  return Tensor::from_vector(v, x.shape());
}

Tensor zip(const Tensor& a, const Tensor& b, const std::function<double(double, double)>& f) {
  std::vector<double> va = a.to_vector<double>();
  const std::vector<double> vb = b.to_vector<double>();
  for (std::size_t i = 0; i < va.size(); ++i) {
    va[i] = f(va[i], vb[i]);
  }
  return Tensor::from_vector(va, a.shape());
}

MpcTensor secret(const Tensor& x, Party& p) {
  return MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
}

// Party 1's (rounds, bytes sent) for fn.
std::pair<int64_t, int64_t> cost_of(int n, const std::function<void(Party&)>& fn) {
  const auto all = veil::agtest::run_all(n, [&](Party& p) {
    const auto before = p.comm().stats();
    fn(p);
    const auto d = p.comm().stats() - before;
    return TV{Tensor::scalar<double>(static_cast<double>(d.total.rounds)),
              Tensor::scalar<double>(static_cast<double>(d.total.bytes_sent))};
  });
  return {static_cast<int64_t>(all[1][0].item<double>()),
          static_cast<int64_t>(all[1][1].item<double>())};
}

// Values of a grid in [lo, hi] including the given points exactly.
Tensor with_points(
    const Shape& s, double lo, double hi, uint64_t seed, const std::vector<double>& pts) {
  Tensor x = q_uniform(s, lo, hi, seed);
  double* px = x.data<double>();
  for (std::size_t i = 0; i < pts.size(); ++i) {
    px[i] = pts[i];
  }
  return x;
}

}  // namespace

TEST_CASE("hardtanh and relu6 clamp exactly, the gradient vanishes at and outside the bounds",
          "[autograd][activations_ext]") {
  // GIVEN x [4, 6] in [-3, 8] including the bounds themselves
  const Tensor x = with_points({4, 6}, -3, 8, 1, {-1.0, 1.0, 0.0, 6.0, -0.5, 0.5});
  auto clamp_ref = [](double lo, double hi) {
    return [lo, hi](const TV& v) {
      return map(v[0], [=](double e) { return std::min(std::max(e, lo), hi); });
    };
  };
  auto clamp_grad = [](double lo, double hi) {
    return [lo, hi](const TV& v, const Tensor& r) {
      return TV{zip(v[0], r, [=](double e, double g) { return e > lo && e < hi ? g : 0.0; })};
    };
  };
  OpCase c{"hardtanh",       {x}, {true}, [](const MV& v) { return veil::hardtanh(v[0]); },
           clamp_ref(-1, 1), 0.0, 0.0};
  c.grad_ref = clamp_grad(-1, 1);
  check_all(c);
  OpCase c6{"relu6",         {x}, {true}, [](const MV& v) { return veil::relu6(v[0]); },
            clamp_ref(0, 6), 0.0, 0.0};
  c6.grad_ref = clamp_grad(0, 6);
  check_all(c6);
  OpCase c2{"hardtanh(-0.25, 2.5)",
            {x},
            {true},
            [](const MV& v) { return veil::hardtanh(v[0], -0.25, 2.5); },
            clamp_ref(-0.25, 2.5),
            0.0,
            0.0};
  c2.grad_ref = clamp_grad(-0.25, 2.5);
  check_all(c2);
  CHECK_THAT(error_of([](Party& p) { (void)veil::hardtanh(MpcTensor::zeros({2}, p), 1.0, 1.0); }),
             Catch::StartsWith("ValueError: [hardtanh] expected min_val < max_val"));
}

TEST_CASE("square: x * x from a square pair, gradient 2 g x, half the bytes of mul",
          "[autograd][square]") {
  const Tensor x = with_points({5, 7}, -6, 6, 12, {0.0, -1.0, 1.0});
  OpCase c{"square",
           {x},
           {true},
           [](const MV& v) { return veil::square(v[0]); },
           [](const TV& v) { return map(v[0], [](double e) { return e * e; }); },
           // inputs on the grid: the product is exact before its one truncation
           2 * kUlp,
           // g x with |r| <= 1 and |x| <= 6: the product's truncation, doubled
           8 * kUlp};
  c.grad_ref = [](const TV& v, const Tensor& r) {
    return TV{zip(v[0], r, [](double e, double g) { return 2 * e * g; })};
  };
  // public: exactly floor(enc(x)^2 / 2^16), as x * x
  c.emulate = [](const TV& v) {
    return map(v[0], [](double e) { return dec(fmul(enc(e), enc(e))); });
  };
  check_all(c);
  // cost: one round and 8(N-1) bytes per element for 2 parties; mul(x, x) sends 16
  for (int n : {2, 3}) {
    const auto sq = cost_of(n, [&](Party& p) { (void)veil::square(secret(x, p)); });
    const auto mul = cost_of(n, [&](Party& p) {
      const MpcTensor s = secret(x, p);
      (void)veil::mul(s, s);
    });
    const int64_t t = n > 2 ? 1 : 0;  // the truncation round (N > 2), 8 bytes per element
    CHECK(sq.first == 1 + t);
    CHECK(sq.second == 8 * (n - 1) * x.numel() + 8 * t * x.numel());
    CHECK(mul.second == 16 * (n - 1) * x.numel() + 8 * t * x.numel());
  }
  CHECK_THAT(error_of([](Party&) { (void)veil::square(MpcTensor()); }),
             Catch::StartsWith("ValueError: [square]"));
}

TEST_CASE("leaky_relu is exact for x > 0 and one truncation below", "[autograd][activations_ext]") {
  const Tensor x = with_points({4, 6}, -3, 3, 2, {0.0, -1.0, 1.0});
  const double slope = 0.1;
  OpCase c{
      "leaky_relu",
      {x},
      {true},
      [slope](const MV& v) { return veil::leaky_relu(v[0], slope); },
      [slope](const TV& v) { return map(v[0], [=](double e) { return e > 0 ? e : slope * e; }); },
      // the slope's encoding error (<= 2^-17 |x|) and one truncation
      3 * kUlp,
      3 * kUlp};
  c.grad_ref = [slope](const TV& v, const Tensor& r) {
    return TV{zip(v[0], r, [=](double e, double g) { return e > 0 ? g : slope * g; })};
  };
  // public: out = x + floor(relu(-x) enc(1 - slope) / 2^16)
  c.emulate = [slope](const TV& v) {
    return map(v[0], [=](double e) {
      const int64_t xe = enc(e);
      return dec(xe + fmul(xe < 0 ? -xe : 0, enc(1 - slope)));
    });
  };
  check_all(c);
  CHECK_THAT(error_of([](Party& p) { (void)veil::leaky_relu(MpcTensor::zeros({2}, p), NAN); }),
             Catch::StartsWith("ValueError: [leaky_relu]"));
}

namespace {

// Softmax of a [rows, c] float64 tensor along its last dim.
std::vector<std::vector<double>> softmax_rows(const Tensor& x) {
  const int64_t c = x.size(-1);
  const auto v = x.contiguous().to_vector<double>();
  std::vector<std::vector<double>> out;
  for (std::size_t r = 0; r * at(c) < v.size(); ++r) {
    double m = -1e300;
    for (int64_t j = 0; j < c; ++j) {
      m = std::max(m, v[r * at(c) + at(j)]);
    }
    double s = 0;
    std::vector<double> row;
    for (int64_t j = 0; j < c; ++j) {
      row.push_back(std::exp(v[r * at(c) + at(j)] - m));
      s += row.back();
    }
    for (double& e : row) {
      e /= s;
    }
    out.push_back(row);
  }
  return out;
}

// f over rows of x along `dim` of a 2-D tensor: rows are x (dim 1) or x^T (dim 0).
Tensor along(const Tensor& x, int64_t dim, const std::function<Tensor(const Tensor&)>& f) {
  if (dim == 1) {
    return f(x);
  }
  return f(x.t().contiguous()).t().contiguous();
}

Tensor softmax_ref(const Tensor& x) {
  std::vector<double> out;
  for (const auto& row : softmax_rows(x)) {
    out.insert(out.end(), row.begin(), row.end());
  }
  return Tensor::from_vector(out, x.shape());
}

Tensor log_softmax_ref(const Tensor& x) {
  return map(softmax_ref(x), [](double e) { return std::log(e); });
}

// d/dx sum(softmax(x) r) = s (r - <r, s>);  d/dx sum(log_softmax(x) r) = r - s sum(r)
Tensor softmax_grad(const Tensor& x, const Tensor& r, bool log) {
  const int64_t c = x.size(-1);
  const auto rr = r.contiguous().to_vector<double>();
  std::vector<double> g;
  std::size_t row_i = 0;
  for (const auto& s : softmax_rows(x)) {
    double dot = 0;
    double total = 0;
    for (int64_t j = 0; j < c; ++j) {
      dot += rr[row_i * at(c) + at(j)] * s[at(j)];
      total += rr[row_i * at(c) + at(j)];
    }
    for (int64_t j = 0; j < c; ++j) {
      const double rj = rr[row_i * at(c) + at(j)];
      g.push_back(log ? rj - s[at(j)] * total : s[at(j)] * (rj - dot));
    }
    ++row_i;
  }
  return Tensor::from_vector(g, x.shape());
}

}  // namespace

TEST_CASE("softmax and log_softmax along any dim", "[autograd][activations_ext]") {
  // GIVEN x [4, 5] with logits in [-3, 3]
  const Tensor x = q_uniform({4, 5}, -3, 3, 3);
  for (int64_t dim : {0, 1}) {
    OpCase s{"softmax dim " + std::to_string(dim),
             {x},
             {true},
             [dim](const MV& v) { return veil::softmax(v[0], dim - 2); },  // negative dims
             [dim](const TV& v) { return along(v[0], dim, softmax_ref); },
             2 * kUlp,
             8 * kUlp};
    s.grad_ref = [dim](const TV& v, const Tensor& r) {
      return TV{along(v[0], dim, [&](const Tensor& xr) {
        return softmax_grad(xr, dim == 1 ? r : r.t().contiguous(), false);
      })};
    };
    s.secret_out_tol = 2e-3;  // crypto::softmax
    s.secret_grad_tol = 4e-3;
    check_all(s);
    OpCase l{"log_softmax dim " + std::to_string(dim),
             {x},
             {true},
             [dim](const MV& v) { return veil::log_softmax(v[0], dim); },
             [dim](const TV& v) { return along(v[0], dim, log_softmax_ref); },
             kUlp,
             8 * kUlp};
    l.grad_ref = [dim](const TV& v, const Tensor& r) {
      return TV{along(v[0], dim, [&](const Tensor& xr) {
        return softmax_grad(xr, dim == 1 ? r : r.t().contiguous(), true);
      })};
    };
    l.secret_out_tol = 6e-3;   // crypto::log (3e-3 on [1, 20]) and exp's error inside the sum
    l.secret_grad_tol = 6e-3;  // the softmax (1e-3) times sum |r| <= 5
    check_all(l);
  }
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::softmax(MpcTensor::zeros({2, 3}, p), 2);
             }),
             Catch::StartsWith("ValueError: [softmax] dim 2 out of range"));
  CHECK_THAT(
      error_of([](Party& p) {
        MpcTensor logits = MpcTensor::zeros({2, 4097}, p);
        logits.encrypt(0);
        (void)veil::log_softmax(logits, 1);
      }),
      Catch::StartsWith("ValueError: [log_softmax] secret inputs support at most 4096 classes"));
}

TEST_CASE("log_softmax accuracy over the class range", "[autograd][activations_ext]") {
  // GIVEN secret logits [16, 20] spread over [-8, 8] (sum exp in [1, 20]: the whole log domain)
  const Tensor x = q_uniform({16, 20}, -8, 8, 4);
  const auto got = veil::agtest::run(
      2, [&](Party& p) { return TV{veil::log_softmax(secret(x, p), 1).reveal()}; });
  const double err = veil::testing::max_abs_diff(got[0], log_softmax_ref(x));
  INFO("max abs error " << err);
  CHECK(err <= 6e-3);
}

TEST_CASE("dropout keeps or zeroes with the common mask, identically on every party",
          "[autograd][activations_ext]") {
  // GIVEN a secret x [40, 50] of non-zero values and p = 0.25
  const Tensor x = map(q_uniform({40, 50}, 0.25, 2, 5), [](double e) { return e; });
  for (int n : {2, 3}) {
    const auto got = veil::agtest::run_all(n, [&](Party& p) {
      MpcTensor xs = secret(x, p);
      xs.set_requires_grad();
      const MpcTensor out = veil::dropout(xs, 0.25);
      out.sum().backward();
      const MpcTensor same = veil::dropout(xs, 0.25, /*training=*/false);
      return TV{out.reveal(), xs.grad().reveal(), Tensor::scalar<double>(same.is_same(xs) ? 1 : 0)};
    });
    const auto out = got[0][0].to_vector<double>();
    const auto grad = got[0][1].to_vector<double>();
    const auto xv = x.to_vector<double>();
    int64_t kept = 0;
    bool ok = true;
    for (std::size_t i = 0; i < out.size(); ++i) {
      // 1 / (1 - p) = 4/3 is encoded with error <= 2^-17: out is 0 or x * 4/3 (+- 2 ulp)
      const bool keep = out[i] != 0.0;
      kept += keep ? 1 : 0;
      ok = ok && (keep ? std::abs(out[i] - xv[i] * 4.0 / 3.0) <= 2 * kUlp : true);
      ok = ok && std::abs(grad[i] - (keep ? 4.0 / 3.0 : 0.0)) <= kUlp;
    }
    CHECK(ok);
    // THEN about 75% are kept (binomial, 2000 draws: 5 sigma ~ 0.048)
    CHECK(std::abs(static_cast<double>(kept) / 2000.0 - 0.75) <= 0.05);
    CHECK(got[0][2].item<double>() == 1.0);
    for (int r = 1; r < n; ++r) {
      CHECK(veil::testing::max_abs_diff(got[static_cast<std::size_t>(r)][0], got[0][0]) == 0.0);
    }
  }
  CHECK_THAT(error_of([](Party& p) { (void)veil::dropout(MpcTensor::zeros({2}, p), 1.0); }),
             Catch::StartsWith("ValueError: [dropout] expected 0 <= p < 1"));
}

TEST_CASE("div by a public scalar", "[autograd][activations_ext]") {
  const Tensor x = q_uniform({3, 4}, -4, 4, 6);
  for (double c : {4.0, -3.0}) {
    OpCase d{"div",
             {x},
             {true},
             [c](const MV& v) { return v[0] / c; },
             [c](const TV& v) { return map(v[0], [=](double e) { return e / c; }); },
             // |x| |1/c - enc(1/c)| <= 4 * 2^-17 and one truncation
             3 * kUlp,
             2 * kUlp};
    d.grad_ref = [c](const TV& v, const Tensor& r) {
      (void)v;
      return TV{map(r, [=](double e) { return e / c; })};
    };
    d.emulate = [c](const TV& v) {
      return map(v[0], [=](double e) { return dec(fmul(enc(e), enc(1.0 / c))); });
    };
    check_all(d);
  }
  CHECK_THAT(error_of([](Party& p) { (void)veil::div(MpcTensor::zeros({2}, p), 0.0); }),
             Catch::StartsWith("ValueError: [div] expected a finite non-zero divisor"));
}

namespace {

// torch.matmul semantics in float64, with naive loops over the broadcast batch.
Tensor matmul_ref(const Tensor& x_in, const Tensor& w_in) {
  Tensor x = x_in.dim() == 1 ? x_in.reshape({1, x_in.size(0)}) : x_in;
  Tensor w = w_in.dim() == 1 ? w_in.reshape({w_in.size(0), 1}) : w_in;
  const Shape bx(x.shape().begin(), x.shape().end() - 2);
  const Shape bw(w.shape().begin(), w.shape().end() - 2);
  const Shape b = veil::core::broadcast_shapes(bx, bw, "ref");
  const int64_t m = x.size(-2);
  const int64_t k = x.size(-1);
  const int64_t n = w.size(-1);
  Shape xs = b;
  xs.push_back(m);
  xs.push_back(k);
  Shape ws = b;
  ws.push_back(k);
  ws.push_back(n);
  const auto xv = x.expand(xs).contiguous().to_vector<double>();
  const auto wv = w.expand(ws).contiguous().to_vector<double>();
  const int64_t nb = veil::core::shape_numel(b);
  std::vector<double> out;
  for (int64_t t = 0; t < nb; ++t) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t l = 0; l < k; ++l) {
          s += xv[at(t * m * k + i * k + l)] * wv[at(t * k * n + l * n + j)];
        }
        out.push_back(s);
      }
    }
  }
  Shape os = b;
  if (x_in.dim() > 1) {
    os.push_back(m);
  }
  if (w_in.dim() > 1) {
    os.push_back(n);
  }
  return Tensor::from_vector(out, os);
}

// The public path bit for bit: the exact ring sum of products, then one floor shift.
Tensor matmul_emulate(const Tensor& x, const Tensor& w) {
  const Tensor exact = matmul_ref(map(x, [](double e) { return static_cast<double>(enc(e)); }),
                                  map(w, [](double e) { return static_cast<double>(enc(e)); }));
  return map(exact, [](double e) { return dec(static_cast<int64_t>(std::floor(e / 65536.0))); });
}

}  // namespace

TEST_CASE("matmul broadcasts like torch.matmul", "[autograd][matmul_broadcast]") {
  const std::vector<std::pair<Shape, Shape>> shapes{{{4}, {4, 3}},       {{2, 4}, {4}},
                                                    {{4}, {4}},          {{2, 3, 4}, {4, 5}},
                                                    {{3, 4}, {2, 4, 5}}, {{2, 1, 3, 4}, {3, 4, 2}},
                                                    {{5}, {2, 5, 3}},    {{2, 3, 4}, {2, 4, 1}}};
  uint64_t seed = 10;
  for (const auto& [sx, sw] : shapes) {
    OpCase c{"matmul " + veil::core::shape_str(sx) + " @ " + veil::core::shape_str(sw),
             {q_uniform(sx, -1, 1, seed), q_uniform(sw, -1, 1, seed + 1)},
             {true, true},
             [](const MV& v) { return veil::matmul(v[0], v[1]); },
             [](const TV& v) { return matmul_ref(v[0], v[1]); },
             // exact products, one truncation (+-1 ulp); gradients sum up to 6 broadcast entries
             2 * kUlp,
             8 * kUlp};
    c.emulate = [](const TV& v) {
      return matmul_emulate(v[0], v[1]);
    };
    check_all(c);
    seed += 2;
  }
  CHECK(error_of([](Party& p) {
          (void)veil::matmul(MpcTensor::zeros({2, 3, 4}, p), MpcTensor::zeros({2, 5, 3}, p));
        }) == "ValueError: [matmul] inner dimensions differ: x is [2, 3, 4], w is [2, 5, 3]");
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::matmul(MpcTensor::zeros({2, 3, 4}, p), MpcTensor::zeros({3, 4, 5}, p));
             }),
             Catch::StartsWith("ValueError: [matmul] batch dims do not broadcast") &&
                 Catch::Contains("[2, 3, 4]") && Catch::Contains("[3, 4, 5]"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::matmul(MpcTensor::zeros({}, p), MpcTensor::zeros({3}, p));
             }),
             Catch::StartsWith("ValueError: [matmul] expected operands of rank >= 1"));
}

TEST_CASE("batched matmul costs one round and 8(N-1)(|x| + |w|) bytes",
          "[autograd][matmul_broadcast][cost]") {
  for (int n : {2, 3}) {
    const int64_t peers = n - 1;
    const int64_t trunc_rounds = n == 2 ? 0 : 1;
    const int64_t trunc_bytes = n == 2 ? 0 : 8;  // per output element, party 1 -> party 0
    struct Case {
      Shape x;
      Shape w;
      int64_t opened;  // elements opened by each party
      int64_t out;
    };
    const std::vector<Case> cases{
        {{2, 3, 4}, {4, 5}, 24 + 20, 30},             // rows folded into one 2-D product
        {{3, 4}, {2, 4, 5}, 12 + 40, 30},             // columns folded
        {{2, 3, 4}, {2, 4, 5}, 24 + 40, 30},          // equal batches: |x| + |w|
        {{2, 1, 3, 4}, {3, 4, 2}, 6 * (12 + 8), 36},  // broadcast batch of 6: reused operands
        {{4}, {4, 3}, 4 + 12, 3}};
    for (const Case& c : cases) {
      INFO(n << " parties, " << veil::core::shape_str(c.x) << " @ " << veil::core::shape_str(c.w));
      const auto [rounds, bytes] = cost_of(n, [&](Party& p) {
        const MpcTensor x = secret(q_uniform(c.x, -1, 1, 1), p);
        const MpcTensor w = secret(q_uniform(c.w, -1, 1, 2), p);
        (void)veil::matmul(x, w);
      });
      CHECK(rounds == 1 + trunc_rounds);
      CHECK(bytes == 8 * peers * c.opened + trunc_bytes * c.out);
    }
  }
}

TEST_CASE("hardtanh costs one ReLU on 2n values, leaky_relu one ReLU and a truncation",
          "[autograd][activations_ext][cost]") {
  const int64_t m = 37;
  const Tensor x = q_uniform({m}, -2, 2, 3);
  const Tensor x2 = q_uniform({2 * m}, -2, 2, 4);
  for (int n : {2, 3}) {
    const auto relu2 = cost_of(n, [&](Party& p) { (void)crypto::relu(p, secret(x2, p).ashare()); });
    const auto relu1 = cost_of(n, [&](Party& p) { (void)crypto::relu(p, secret(x, p).ashare()); });
    CHECK(cost_of(n, [&](Party& p) { (void)veil::hardtanh(secret(x, p)); }) == relu2);
    // backward with a public upstream gradient: a public * secret integer product, local
    CHECK(cost_of(n, [&](Party& p) {
            MpcTensor s = secret(x, p);
            s.set_requires_grad();
            veil::relu6(s).sum().backward();
          }) == relu2);
    const int64_t trunc_rounds = n == 2 ? 0 : 1;
    const int64_t trunc_bytes = n == 2 ? 0 : 8 * m;
    const auto lr = cost_of(n, [&](Party& p) { (void)veil::leaky_relu(secret(x, p)); });
    CHECK(lr.first == relu1.first + trunc_rounds);
    CHECK(lr.second == relu1.second + trunc_bytes);
  }
}
