// Data-movement ops (autograd/shape_ops.h): forward against naive float64 index loops and exact
// equality (they move encodings, so public and secret results are the quantised inputs exactly),
// gradients against the exact Jacobian of the reference, 2 and 3 parties, public, secret and
// mixed inputs; zero communication; one bad input per op.

#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "tests/autograd/tensorops_test_util.h"

namespace {

using veil::MpcTensor;
using veil::Party;
using veil::core::Shape;
using veil::tensorops_test::check_all;
using veil::tensorops_test::error_of;
using veil::tensorops_test::MV;
using veil::tensorops_test::OpCase;
using veil::tensorops_test::q_uniform;
using veil::tensorops_test::Tensor;
using veil::tensorops_test::TV;
using Index = std::vector<int64_t>;

// ---- naive float64 references: out[i] = f(i) over every multi-index i -------------------------

Tensor build(const Shape& shape, const std::function<double(const Index&)>& f) {
  Tensor out = Tensor::zeros(shape, veil::core::DType::kFloat64);
  double* po = out.data<double>();
  Index i(shape.size(), 0);
  for (int64_t flat = 0; flat < out.numel(); ++flat) {
    po[flat] = f(i);
    for (std::size_t k = shape.size(); k-- > 0;) {
      if (++i[k] < shape[k]) {
        break;
      }
      i[k] = 0;
    }
  }
  return out;
}

double at(const Tensor& x, const Index& i) {
  const Tensor c = x.contiguous();
  int64_t off = 0;
  for (std::size_t k = 0; k < i.size(); ++k) {
    off = off * x.shape()[k] + i[k];
  }
  return c.data<double>()[off];
}

}  // namespace

TEST_CASE("flatten, squeeze, unsqueeze keep the elements in order", "[autograd][shape_ops]") {
  // GIVEN x [2, 1, 3, 2]
  const Tensor x = q_uniform({2, 1, 3, 2}, -2, 2, 1);
  // flatten(1, 2) -> [2, 3, 2]; squeeze(1) -> [2, 3, 2]; unsqueeze(-1) -> [2, 3, 2, 1]; squeeze()
  // -> [2, 3, 2]; flatten() -> [12]
  check_all({"flatten_squeeze",
             {x},
             {true},
             [](const MV& v) {
               const MpcTensor a = veil::flatten(v[0], 1, 2);
               const MpcTensor b = veil::unsqueeze(veil::squeeze(v[0], 1), -1);
               return veil::flatten(a) + veil::flatten(veil::squeeze(b));
             },
             [](const TV& v) {
               const Tensor f = v[0].contiguous().reshape({12});
               return veil::core::add(f, f);
             },
             0.0,
             0.0});
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::flatten(MpcTensor::zeros({2, 3}, p), 1, 0);
             }),
             Catch::StartsWith("ValueError: [flatten] start_dim 1 comes after end_dim 0"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::unsqueeze(MpcTensor::zeros({2, 3}, p), 3);
             }),
             Catch::StartsWith("ValueError: [unsqueeze] dim 3 out of range"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::squeeze(MpcTensor::zeros({2, 3}, p), -3);
             }),
             Catch::StartsWith("ValueError: [squeeze] dim -3 out of range"));
}

TEST_CASE("permute and transpose of any rank", "[autograd][shape_ops]") {
  // GIVEN x [2, 3, 4]
  const Tensor x = q_uniform({2, 3, 4}, -2, 2, 2);
  check_all(
      {"permute",
       {x},
       {true},
       [](const MV& v) {
         return veil::permute(v[0], {2, 0, -2});
       },
       [](const TV& v) {
         return build({4, 2, 3}, [&](const Index& i) { return at(v[0], {i[1], i[2], i[0]}); });
       },
       0.0,
       0.0});
  check_all(
      {"transpose",
       {x},
       {true},
       [](const MV& v) { return veil::transpose(v[0], 0, -1); },
       [](const TV& v) {
         return build({4, 3, 2}, [&](const Index& i) { return at(v[0], {i[2], i[1], i[0]}); });
       },
       0.0,
       0.0});
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::permute(MpcTensor::zeros({2, 3}, p), {0, 0});
             }),
             Catch::StartsWith("ValueError: [permute] dim 0 repeated"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::transpose(MpcTensor::zeros({2, 3}, p), 0, 2);
             }),
             Catch::StartsWith("ValueError: [transpose] dim 2 out of range"));
}

TEST_CASE("cat and stack mix public and secret inputs", "[autograd][shape_ops]") {
  // GIVEN a [2, 3], b [2, 1], c [2, 2] (mixed: a secret, b and c public)
  const Tensor a = q_uniform({2, 3}, -2, 2, 3);
  const Tensor b = q_uniform({2, 1}, -2, 2, 4);
  const Tensor c = q_uniform({2, 2}, -2, 2, 5);
  check_all({"cat",
             {a, b, c},
             {true, true, false},
             [](const MV& v) {
               return veil::cat({v[0], v[1], v[2]}, -1);
             },
             [](const TV& v) {
               return build({2, 6}, [&](const Index& i) {
                 if (i[1] < 3) {
                   return at(v[0], {i[0], i[1]});
                 }
                 return i[1] < 4 ? at(v[1], {i[0], 0}) : at(v[2], {i[0], i[1] - 4});
               });
             },
             0.0,
             0.0});
  const Tensor d = q_uniform({2, 3}, -2, 2, 6);
  check_all({"stack",
             {a, d},
             {true, true},
             [](const MV& v) {
               return veil::stack({v[0], v[1], v[0]}, 1);
             },
             [](const TV& v) {
               return build({2, 3, 3}, [&](const Index& i) {
                 return at(v[i[1] == 1 ? 1 : 0], {i[0], i[2]});
               });
             },
             0.0,
             0.0});
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::cat({MpcTensor::zeros({2, 3}, p), MpcTensor::zeros({3, 3}, p)}, 1);
             }),
             Catch::StartsWith("ValueError: [cat]") && Catch::Contains("[2, 3]") &&
                 Catch::Contains("[3, 3]"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::stack({MpcTensor::zeros({2, 3}, p), MpcTensor::zeros({3, 2}, p)});
             }),
             Catch::StartsWith("ValueError: [stack] expected tensors of equal shape"));
  CHECK_THAT(error_of([](Party&) { (void)veil::cat({}, 0); }),
             Catch::StartsWith("ValueError: [cat] expected at least one tensor"));
}

TEST_CASE("cat of a secret and an integer public tensor aligns frac_bits",
          "[autograd][shape_ops]") {
  // GIVEN a secret fixed-point x and a public integer tensor (frac_bits 0, e.g. labels)
  const Tensor x = q_uniform({3}, -2, 2, 7);
  for (int n : {2, 3}) {
    const auto got = veil::agtest::run(n, [&](Party& p) {
      const MpcTensor xs = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
      const Tensor ints = Tensor::from_vector(std::vector<uint64_t>{2, ~uint64_t{0}}, {2});
      const MpcTensor out = veil::cat({xs, MpcTensor::from_public_ring(ints, 0, p)}, 0);
      return TV{out.reveal(), Tensor::scalar<double>(out.frac_bits())};
    });
    // THEN the integers are lifted exactly to 16 fractional bits
    CHECK(got[1].item<double>() == 16);
    CHECK(got[0].to_vector<double>() ==
          std::vector<double>{at(x, {0}), at(x, {1}), at(x, {2}), 2.0, -1.0});
  }
}

TEST_CASE("slice with steps, narrow and select", "[autograd][shape_ops]") {
  // GIVEN x [3, 7]
  const Tensor x = q_uniform({3, 7}, -2, 2, 8);
  // slice(-1, 1, 100, 3) -> columns 1, 4; slice(0, -2, 3) -> rows 1, 2 (Python clamping)
  check_all(
      {"slice",
       {x},
       {true},
       [](const MV& v) { return veil::slice(veil::slice(v[0], 1, 1, 100, 3), 0, -2, 3); },
       [](const TV& v) {
         return build({2, 2}, [&](const Index& i) { return at(v[0], {i[0] + 1, 1 + 3 * i[1]}); });
       },
       0.0,
       0.0});
  check_all({"narrow_select",
             {x},
             {true},
             [](const MV& v) {
               return veil::narrow(v[0], 1, -4, 2) + veil::unsqueeze(veil::select(v[0], 1, -1), 1);
             },
             [](const TV& v) {
               return build({3, 2}, [&](const Index& i) {
                 return at(v[0], {i[0], 3 + i[1]}) + at(v[0], {i[0], 6});
               });
             },
             0.0,
             0.0});
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::slice(MpcTensor::zeros({3, 7}, p), 1, 0, 5, 0);
             }),
             Catch::StartsWith("ValueError: [slice] expected step >= 1, got 0"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::narrow(MpcTensor::zeros({3, 7}, p), 1, 5, 3);
             }),
             Catch::StartsWith("ValueError: [narrow] start 5 + length 3 exceeds"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::select(MpcTensor::zeros({3, 7}, p), 0, 3);
             }),
             Catch::StartsWith("ValueError: [select] index 3 out of range"));
}

TEST_CASE("gather and index_select with repeated indices", "[autograd][shape_ops]") {
  // GIVEN x [3, 4] and public int64 indices (with repeats, so the backward accumulates)
  const Tensor x = q_uniform({3, 4}, -2, 2, 9);
  const Tensor gidx = Tensor::from_vector(std::vector<int64_t>{3, 0, 0, 2, 1, 1}, {2, 3});
  check_all({"gather",
             {x},
             {true},
             [gidx](const MV& v) { return veil::gather(v[0], 1, gidx); },
             [gidx](const TV& v) {
               return build({2, 3}, [&](const Index& i) {
                 return at(
                     v[0],
                     {i[0], gidx.to_vector<int64_t>()[static_cast<std::size_t>(i[0] * 3 + i[1])]});
               });
             },
             0.0,
             0.0});
  const std::vector<int64_t> rows{2, 0, 2, 2};
  const Tensor sidx = Tensor::from_vector(rows, {4});
  check_all({"index_select",
             {x},
             {true},
             [sidx](const MV& v) { return veil::index_select(v[0], -2, sidx); },
             [rows](const TV& v) {
               return build({4, 4}, [&](const Index& i) {
                 return at(v[0], {rows[static_cast<std::size_t>(i[0])], i[1]});
               });
             },
             0.0,
             0.0});
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::gather(MpcTensor::zeros({3, 4}, p), 1,
                                  Tensor::from_vector(std::vector<int64_t>{4}, {1, 1}));
             }),
             Catch::StartsWith("ValueError: [gather] index 4 out of range"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::gather(MpcTensor::zeros({3, 4}, p), 1,
                                  Tensor::zeros({5, 1}, veil::core::DType::kInt64));
             }),
             Catch::StartsWith("ValueError: [gather] index [5, 1] is larger than x [3, 4]"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::index_select(MpcTensor::zeros({3, 4}, p), 0,
                                        Tensor::zeros({2}, veil::core::DType::kFloat64));
             }),
             Catch::StartsWith("ValueError: [index_select] expected a 0-d or 1-D int64 index"));
}

TEST_CASE("pad with torch's last-dims-first convention, crops and a value",
          "[autograd][shape_ops]") {
  // GIVEN x [2, 3, 4]; pads (1, 2) on the last dim, (-1, 1) on the middle one, value 0.75
  const Tensor x = q_uniform({2, 3, 4}, -2, 2, 10);
  check_all({"pad",
             {x},
             {true},
             [](const MV& v) {
               return veil::pad(v[0], {1, 2, -1, 1}, 0.75);
             },
             [](const TV& v) {
               return build({2, 3, 7}, [&](const Index& i) {
                 const int64_t r = i[1] + 1;  // row in x (one row cropped on the left)
                 const int64_t c = i[2] - 1;  // column in x (one column padded on the left)
                 if (r >= 3 || c < 0 || c >= 4) {
                   return 0.75;
                 }
                 return at(v[0], {i[0], r, c});
               });
             },
             0.0,
             0.0});
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::pad(MpcTensor::zeros({2, 3}, p), {1, 1, 1});
             }),
             Catch::StartsWith("ValueError: [pad] expected an even number of pads"));
  CHECK_THAT(error_of([](Party& p) {
               (void)veil::pad(MpcTensor::zeros({2, 3}, p), {-2, -2});
             }),
             Catch::StartsWith("ValueError: [pad] pads (-2, -2) crop more than the extent 3"));
}

TEST_CASE("shape ops communicate nothing", "[autograd][shape_ops][cost]") {
  // GIVEN secret inputs; WHEN every shape op and its backward run; THEN no bytes, no rounds
  const Tensor x = q_uniform({2, 3, 4}, -2, 2, 11);
  for (int n : {2, 3}) {
    const auto got = veil::agtest::run(n, [&](Party& p) {
      MpcTensor xs = MpcTensor::share(p.rank() == 0 ? x : Tensor(), 0, x.shape(), p);
      xs.set_requires_grad();
      const auto before = p.comm().stats();
      const Tensor idx = Tensor::zeros({2, 3, 1}, veil::core::DType::kInt64);
      MpcTensor y = veil::flatten(veil::permute(xs, {1, 0, 2}), 1);                  // [3, 8]
      y = veil::cat({y, veil::slice(y, 1, 0, 8, 2), veil::pad(y, {0, 1}, 1.0)}, 1);  // [3, 21]
      y = veil::stack({veil::select(y, 1, 2), veil::narrow(y, 1, 3, 3).sum(1)}, 0);
      y = y.sum() + veil::gather(xs, 2, idx).sum() +
          veil::index_select(veil::transpose(xs, 0, 2), 0,
                             Tensor::zeros({1}, veil::core::DType::kInt64))
              .sum() +
          veil::squeeze(veil::unsqueeze(xs, 0)).sum();
      y.backward();
      const auto d = p.comm().stats() - before;
      return TV{Tensor::scalar<double>(static_cast<double>(d.total.rounds)),
                Tensor::scalar<double>(static_cast<double>(d.total.bytes_sent)),
                Tensor::scalar<double>(static_cast<double>(d.dealer.bytes_sent))};
    });
    CHECK(got[0].item<double>() == 0);
    CHECK(got[1].item<double>() == 0);
    CHECK(got[2].item<double>() == 0);
  }
}
