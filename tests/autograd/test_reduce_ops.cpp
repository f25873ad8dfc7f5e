// Reductions (autograd/reduce_ops.h and sum/mean of autograd/functions.h): forward against
// float64, public forward bit for bit against a fixed-point emulation of the same algorithm,
// gradients against analytic float64 gradients, 2 and 3 parties, public/secret/mixed inputs;
// rounds against the documented counts; one bad input per op.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "crypto/protocols/approx.h"
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

std::size_t at(int64_t i) {
  return static_cast<std::size_t>(i);
}

// Rows of a [rows, n] float64 tensor as vectors.
std::vector<std::vector<double>> rows_of(const Tensor& x) {
  const int64_t n = x.size(-1);
  const std::vector<double> v = x.to_vector<double>();
  std::vector<std::vector<double>> rows;
  for (std::size_t r = 0; r * at(n) < v.size(); ++r) {
    rows.emplace_back(v.begin() + static_cast<std::ptrdiff_t>(r * at(n)),
                      v.begin() + static_cast<std::ptrdiff_t>((r + 1) * at(n)));
  }
  return rows;
}

Tensor vec(const std::vector<double>& v, const Shape& s) {
  return Tensor::from_vector(v, s);
}

// Values in [0.5, 1.5] with random signs (products stay in range and away from 0).
Tensor factors(const Shape& s, uint64_t seed) {
  Tensor x = q_uniform(s, 0.5, 1.5, seed);
  const Tensor sg = veil::testing::uniform(s, -1, 1, seed + 1);
  double* px = x.data<double>();
  const double* ps = sg.data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    px[i] = ps[i] < 0 ? -px[i] : px[i];
  }
  return x;
}

// Per-party online rounds of fn (party 1's stats).
int64_t rounds_of(int n, const std::function<void(Party&)>& fn) {
  const auto got = veil::agtest::run(n, [&](Party& p) {
    const auto before = p.comm().stats();
    fn(p);
    const auto d = p.comm().stats() - before;
    return TV{Tensor::scalar<double>(static_cast<double>(d.total.rounds))};
  });
  return static_cast<int64_t>(got[0].item<double>());
}

MpcTensor secret(const Tensor& x, Party& p) {
  return MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
}

}  // namespace

TEST_CASE("sum and mean along negative dims with keepdim", "[autograd][reduce_ops]") {
  // GIVEN x [2, 3, 4]; sum over -2 (kept) and mean over -1 (kept: 1/4 is exact)
  const Tensor x = q_uniform({2, 3, 4}, -2, 2, 1);
  OpCase c{"sum_mean",
           {x},
           {true},
           [](const MV& v) {
             return veil::sum(v[0], -2, true) + veil::mean(v[0], -1, true).sum(1, true);
           },
           [](const TV& v) {
             const Tensor s = veil::core::sum(v[0], 1, true);  // [2, 1, 4]
             const Tensor m = veil::core::mul_scalar(veil::core::sum(v[0], 2, true), 0.25);
             return veil::core::add(s, veil::core::sum(m, 1, true));  // [2, 1, 4] + [2, 1, 1]
           },
           4 * kUlp,
           4 * kUlp};
  check_all(c);
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::mean(MpcTensor::zeros({2, 3}, p), -3);
             }),
             Catch::StartsWith("ValueError: [mean] dim -3 out of range"));
}

TEST_CASE("var along a dim, over several dims and over all", "[autograd][reduce_ops]") {
  // GIVEN x [3, 5] (n = 5: 1/5 and 1/4 are not both exact, so the emulation must match the
  // encodings used)
  const Tensor x = q_uniform({3, 5}, -2, 2, 2);
  auto var_rows = [](const Tensor& t, int64_t corr) {
    std::vector<double> out;
    for (const auto& row : rows_of(t)) {
      double m = 0;
      for (double v : row) {
        m += v;
      }
      m /= static_cast<double>(row.size());
      double s = 0;
      for (double v : row) {
        s += (v - m) * (v - m);
      }
      out.push_back(s / static_cast<double>(static_cast<int64_t>(row.size()) - corr));
    }
    return out;
  };
  // fixed-point emulation of the public path: mean = floor(S enc(1/n)), d = x - mean,
  // var = floor(sum floor(d^2) * enc(1/(n - c)))
  auto emulate_rows = [](const Tensor& t, int64_t corr) {
    std::vector<double> out;
    for (const auto& row : rows_of(t)) {
      const auto n = static_cast<int64_t>(row.size());
      int64_t s = 0;
      for (double v : row) {
        s += enc(v);
      }
      const int64_t mean = fmul(s, enc(1.0 / static_cast<double>(n)));
      int64_t ss = 0;
      for (double v : row) {
        ss += fmul(enc(v) - mean, enc(v) - mean);
      }
      out.push_back(dec(fmul(ss, enc(1.0 / static_cast<double>(n - corr)))));
    }
    return out;
  };
  auto grad_rows = [](const Tensor& t, const Tensor& r, int64_t corr) {
    std::vector<double> g;
    const auto rr = r.to_vector<double>();
    std::size_t k = 0;
    for (const auto& row : rows_of(t)) {
      double m = 0;
      for (double v : row) {
        m += v;
      }
      m /= static_cast<double>(row.size());
      for (double v : row) {
        g.push_back(rr[k] * 2 * (v - m) /
                    static_cast<double>(static_cast<int64_t>(row.size()) - corr));
      }
      ++k;
    }
    return g;
  };
  OpCase c{"var_dim",
           {x},
           {true},
           [](const MV& v) { return veil::var(v[0], -1, false, 1); },
           [var_rows](const TV& v) { return vec(var_rows(v[0], 1), {3}); },
           8 * kUlp,
           8 * kUlp};
  c.grad_ref = [grad_rows](const TV& v, const Tensor& r) {
    return TV{vec(grad_rows(v[0], r, 1), {3, 5})};
  };
  c.emulate = [emulate_rows](const TV& v) {
    return vec(emulate_rows(v[0], 1), {3});
  };
  check_all(c);
  // over dims {0} of the transposed layout with keepdim and correction 0 (biased): x^T [5, 3]
  // reduced over dim 0 gives the same rows
  OpCase c2{"var_dims",
            {x},
            {true},
            [](const MV& v) {
              return veil::squeeze(veil::var(veil::t(v[0]), std::vector<int64_t>{0}, true, 0), 0);
            },
            [var_rows](const TV& v) { return vec(var_rows(v[0], 0), {3}); },
            8 * kUlp,
            8 * kUlp};
  c2.grad_ref = [grad_rows](const TV& v, const Tensor& r) {
    return TV{vec(grad_rows(v[0], r, 0), {3, 5})};
  };
  c2.emulate = [emulate_rows](const TV& v) {
    return vec(emulate_rows(v[0], 0), {3});
  };
  check_all(c2);
  // over all 15 elements (unbiased), as a 0-d tensor
  OpCase c3{"var_all",
            {x},
            {true},
            [](const MV& v) { return veil::var(v[0]); },
            [var_rows](const TV& v) {
              return Tensor::scalar<double>(var_rows(v[0].contiguous().reshape({1, 15}), 1)[0]);
            },
            8 * kUlp,
            8 * kUlp};
  c3.grad_ref = [grad_rows](const TV& v, const Tensor& r) {
    return TV{vec(grad_rows(v[0].contiguous().reshape({1, 15}), r.reshape({1}), 1), {3, 5})};
  };
  c3.emulate = [emulate_rows](const TV& v) {
    return Tensor::scalar<double>(emulate_rows(v[0].contiguous().reshape({1, 15}), 1)[0]);
  };
  check_all(c3);
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::var(MpcTensor::zeros({2, 1}, p), 1);
             }),
             Catch::StartsWith("ValueError: [var] expected 0 <= correction < n"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::var(MpcTensor::zeros({2, 3}, p), std::vector<int64_t>{1, -1});
             }),
             Catch::StartsWith("ValueError: [var] dim -1 repeated"));
}

TEST_CASE("prod by a log-depth tree, forward and backward", "[autograd][reduce_ops]") {
  // GIVEN x [3, 5] with |x| in [0.5, 1.5] (5 factors: an odd factor is carried up a level)
  const Tensor x = factors({3, 5}, 3);
  auto prod_rows = [](const Tensor& t) {
    std::vector<double> out;
    for (const auto& row : rows_of(t)) {
      double s = 1;
      for (double v : row) {
        s *= v;
      }
      out.push_back(s);
    }
    return out;
  };
  OpCase c{"prod",
           {x},
           {true},
           [](const MV& v) { return veil::prod(v[0], 1, true); },
           [prod_rows](const TV& v) {
             return vec(prod_rows(v[0]), {3, 1});
           },
           8 * kUlp,
           16 * kUlp};
  c.grad_ref = [](const TV& v, const Tensor& r) {
    std::vector<double> g;
    const auto rr = r.to_vector<double>();
    std::size_t k = 0;
    for (const auto& row : rows_of(v[0])) {
      for (std::size_t i = 0; i < row.size(); ++i) {
        double s = rr[k];
        for (std::size_t j = 0; j < row.size(); ++j) {
          s *= i == j ? 1.0 : row[j];
        }
        g.push_back(s);
      }
      ++k;
    }
    return TV{vec(g, {3, 5})};
  };
  // the tree on the encodings: level 1: (x0 x2), (x1 x3), x4; level 2: (x0 x2)(x4)... pairs
  // (j, j + h) with the odd last factor carried, floor truncation after each product
  c.emulate = [](const TV& v) {
    std::vector<double> out;
    for (const auto& row : rows_of(v[0])) {
      std::vector<int64_t> cur;
      for (double e : row) {
        cur.push_back(enc(e));
      }
      while (cur.size() > 1) {
        const std::size_t h = cur.size() / 2;
        std::vector<int64_t> next;
        for (std::size_t j = 0; j < h; ++j) {
          next.push_back(fmul(cur[j], cur[j + h]));
        }
        if (cur.size() % 2 == 1) {
          next.push_back(cur.back());
        }
        cur = next;
      }
      out.push_back(dec(cur[0]));
    }
    return vec(out, {3, 1});
  };
  check_all(c);
  // over all elements of a [2, 2] tensor -> 0-d
  check_all({"prod_all",
             {factors({2, 2}, 4)},
             {true},
             [](const MV& v) { return veil::prod(v[0]); },
             [prod_rows](const TV& v) {
               return Tensor::scalar<double>(prod_rows(v[0].contiguous().reshape({1, 4}))[0]);
             },
             8 * kUlp,
             16 * kUlp,
             [](const TV& v, const Tensor& r) {
               const auto e = v[0].to_vector<double>();
               const double g = r.item<double>();
               return TV{vec({g * e[1] * e[2] * e[3], g * e[0] * e[2] * e[3],
                              g * e[0] * e[1] * e[3], g * e[0] * e[1] * e[2]},
                             {2, 2})};
             }});
  // rounds (N = 2): ceil(log2 5) = 3 levels forward, + 1 for the product with a secret r, and
  // 3 levels backward (the product's backward with the public seed is local)
  CHECK(rounds_of(2, [&](Party& p) {
          MpcTensor xs = secret(x, p);
          xs.set_requires_grad();
          (veil::prod(xs, 1) * secret(q_uniform({3}, -1, 1, 9), p)).sum().backward();
        }) == 7);
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::prod(MpcTensor::zeros({2, 0}, p), 1);
             }),
             Catch::StartsWith("ValueError: [prod] expected a non-empty dim 1"));
}

TEST_CASE("cumsum is local and exact", "[autograd][reduce_ops]") {
  const Tensor x = q_uniform({3, 4}, -2, 2, 5);
  check_all({"cumsum",
             {x},
             {true},
             [](const MV& v) { return veil::cumsum(v[0], -2); },
             [](const TV& v) {
               std::vector<double> out = v[0].to_vector<double>();
               for (std::size_t i = 4; i < out.size(); ++i) {
                 out[i] += out[i - 4];
               }
               return vec(out, {3, 4});
             },
             0.0,
             0.0});
  CHECK(rounds_of(3, [&](Party& p) {
          MpcTensor xs = secret(x, p);
          xs.set_requires_grad();
          veil::cumsum(xs, 1).sum().backward();
        }) == 0);
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::cumsum(MpcTensor::zeros({2, 3}, p), 2);
             }),
             Catch::StartsWith("ValueError: [cumsum] dim 2 out of range"));
}

namespace {

// Max (or min) and its first index along rows of a [rows, n] tensor.
std::pair<std::vector<double>, std::vector<double>> extreme_rows(const Tensor& t, bool minimum) {
  std::vector<double> vals;
  std::vector<double> idx;
  for (const auto& row : rows_of(t)) {
    const auto it = minimum ? std::min_element(row.begin(), row.end())
                            : std::max_element(row.begin(), row.end());
    vals.push_back(*it);
    idx.push_back(static_cast<double>(it - row.begin()));
  }
  return {vals, idx};
}

}  // namespace

TEST_CASE("max and min along a dim route the gradient to the selected element",
          "[autograd][reduce_ops]") {
  // GIVEN x [2, 5, 3] (distinct values) reduced over dim 1 (moved last internally)
  const Tensor x = q_uniform({2, 5, 3}, -3, 3, 6);
  const Tensor xt = x.transpose(1, 2).contiguous();  // [2, 3, 5]: rows are the reduced vectors
  for (bool minimum : {false, true}) {
    OpCase c{minimum ? "min_dim" : "max_dim",
             {x},
             {true},
             [minimum](const MV& v) {
               return minimum ? veil::min(v[0], 1).values : veil::max(v[0], -2).values;
             },
             [minimum](const TV& v) {
               return vec(extreme_rows(v[0].transpose(1, 2).contiguous(), minimum).first, {2, 3});
             },
             0.0,
             0.0};
    c.grad_ref = [minimum](const TV& v, const Tensor& r) {
      const auto idx = extreme_rows(v[0].transpose(1, 2).contiguous(), minimum).second;
      const auto rr = r.to_vector<double>();
      Tensor g = Tensor::zeros({2, 5, 3}, veil::core::DType::kFloat64);
      double* pg = g.data<double>();
      for (int64_t b = 0; b < 2; ++b) {
        for (int64_t j = 0; j < 3; ++j) {
          const auto k = at(b * 3 + j);
          pg[b * 15 + static_cast<int64_t>(idx[k]) * 3 + j] = rr[k];
        }
      }
      return TV{g};
    };
    check_all(c);
  }
  // argmax/argmin (keepdim) are secret integers equal to the float64 positions
  const auto want_max = extreme_rows(xt, false).second;
  const auto want_min = extreme_rows(xt, true).second;
  for (int n : {2, 3}) {
    for (bool sec : {false, true}) {
      const auto got = veil::agtest::run(n, [&](Party& p) {
        const MpcTensor xs = sec ? secret(x, p) : MpcTensor::from_public(x, p);
        const MpcTensor am = veil::argmax(xs, 1, true);
        const MpcTensor an = veil::argmin(xs, 1);
        const veil::ValuesIndices mx = veil::max(xs, 1);
        return TV{am.reveal(), an.reveal(), mx.indices.reveal(),
                  Tensor::from_vector(std::vector<double>{am.is_secret() ? 1.0 : 0.0,
                                                          static_cast<double>(am.frac_bits())},
                                      {2})};
      });
      CHECK(got[0].shape() == Shape{2, 1, 3});
      CHECK(got[0].to_vector<double>() == want_max);
      CHECK(got[1].to_vector<double>() == want_min);
      CHECK(got[2].to_vector<double>() == want_max);
      CHECK(got[3].to_vector<double>() == std::vector<double>{sec ? 1.0 : 0.0, 0.0});
    }
  }
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::max(MpcTensor::zeros({2, 0}, p), 1);
             }),
             Catch::StartsWith("ValueError: [max] expected a non-empty dim 1"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::argmin(MpcTensor::zeros({2, 3}, p), 2);
             }),
             Catch::StartsWith("ValueError: [min] dim 2 out of range"));
}

TEST_CASE("max and min over all elements, and ties", "[autograd][reduce_ops]") {
  const Tensor x = q_uniform({3, 4}, -3, 3, 7);
  for (bool minimum : {false, true}) {
    OpCase c{minimum ? "min_all" : "max_all",
             {x},
             {true},
             [minimum](const MV& v) { return minimum ? veil::min(v[0]) : veil::max(v[0]); },
             [minimum](const TV& v) {
               return Tensor::scalar<double>(
                   extreme_rows(v[0].contiguous().reshape({1, 12}), minimum).first[0]);
             },
             0.0,
             0.0};
    c.grad_ref = [minimum](const TV& v, const Tensor& r) {
      const auto idx = extreme_rows(v[0].contiguous().reshape({1, 12}), minimum).second[0];
      Tensor g = Tensor::zeros({3, 4}, veil::core::DType::kFloat64);
      g.data<double>()[static_cast<int64_t>(idx)] = r.item<double>();
      return TV{g};
    };
    check_all(c);
  }
  // GIVEN rows with tied maxima: public mode picks the first maximal position (torch's rule),
  // secret mode some maximal position; either way the whole gradient goes to that one position
  const Tensor ties = vec({0, 2, 2, 0, 1, 1, 1, 1, -1, 3, 3, 3}, {3, 4});
  for (int n : {2, 3}) {
    const auto got = veil::agtest::run(n, [&](Party& p) {
      TV res;
      for (bool sec : {false, true}) {
        MpcTensor xs = sec ? secret(ties, p) : MpcTensor::from_public(ties, p);
        xs.set_requires_grad();
        const veil::ValuesIndices m = veil::max(xs, 1);
        m.values.sum().backward();
        res.push_back(m.values.reveal());
        res.push_back(m.indices.reveal());
        res.push_back(xs.grad().reveal());
        res.push_back(veil::argmax(xs).reveal());
      }
      return res;
    });
    const auto tv = ties.to_vector<double>();
    CHECK(got[1].to_vector<double>() == std::vector<double>{1, 0, 1});  // public: first maximum
    CHECK(got[3].item<double>() == 9.0);
    for (std::size_t mode = 0; mode < 2; ++mode) {
      CHECK(got[4 * mode].to_vector<double>() == std::vector<double>{2, 1, 3});
      const auto idx = got[4 * mode + 1].to_vector<double>();
      const auto grad = got[4 * mode + 2].to_vector<double>();
      for (std::size_t r = 0; r < 3; ++r) {
        const auto i = static_cast<std::size_t>(idx[r]);
        CHECK(tv[r * 4 + i] == got[0].to_vector<double>()[r]);  // a maximal position
        for (std::size_t j = 0; j < 4; ++j) {
          CHECK(grad[r * 4 + j] == (j == i ? 1.0 : 0.0));
        }
      }
      CHECK(tv[static_cast<std::size_t>(got[4 * mode + 3].item<double>())] == 3.0);
    }
  }
  CHECK_THAT(error_of([](Party& p) { (void)veil::min(MpcTensor::zeros({0}, p)); }),
             Catch::StartsWith("ValueError: [min] expected a non-empty tensor"));
}

TEST_CASE("max costs the tournament rounds, backward one eq and one mul",
          "[autograd][reduce_ops][cost]") {
  // GIVEN secret x [4, 6]: the forward costs exactly crypto::max_lastdim's rounds
  const Tensor x = q_uniform({4, 6}, -3, 3, 8);
  for (int n : {2, 3}) {
    const int64_t tournament =
        rounds_of(n, [&](Party& p) { (void)veil::crypto::max_lastdim(p, secret(x, p).ashare()); });
    const int64_t forward = rounds_of(n, [&](Party& p) {
      veil::NoGradGuard no_grad;
      (void)veil::max(secret(x, p), 1);
    });
    CHECK(forward == tournament);
    const int64_t eq = rounds_of(n, [&](Party& p) {
      const MpcTensor s = secret(x, p);
      (void)veil::crypto::eq(p, {s.ring(), 0}, {s.ring(), 0});
    });
    const int64_t both = rounds_of(n, [&](Party& p) {
      MpcTensor xs = secret(x, p);
      xs.set_requires_grad();
      const MpcTensor r = secret(q_uniform({4}, -1, 1, 9), p);
      (veil::max(xs, 1).values * r).sum().backward();
    });
    // forward + mul by r (1 Beaver + truncation); backward: g * r with a public g (a
    // truncation only), then the one-hot (eq) and one Beaver mul with it (no truncation)
    const int64_t trunc = n == 2 ? 0 : 1;
    CHECK(both == tournament + (1 + trunc) + trunc + eq + 1);
  }
}
