// Plaintext ops (core/ops) and matmul (core/linalg): each result is compared with an independent
// loop over plain vectors; ring results bit-exact (including wrap-around), floats within a bound
// derived from k and machine epsilon.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include "core/ops.h"
#include "core/parallel.h"
#include "core/tensor.h"

namespace {

using veil::core::DType;
using veil::core::Shape;
using veil::core::Tensor;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

uint64_t ring(int64_t v) {
  return static_cast<uint64_t>(v);
}

// Restores the calling thread's num_threads() when the test ends.
class ThreadsGuard {
 public:
  explicit ThreadsGuard(int n) : saved_(veil::core::num_threads()) {
    veil::core::set_num_threads(n);
  }
  ~ThreadsGuard() { veil::core::set_num_threads(saved_); }
  ThreadsGuard(const ThreadsGuard&) = delete;
  ThreadsGuard& operator=(const ThreadsGuard&) = delete;

 private:
  int saved_;
};

template <class T>
Tensor random_tensor(int64_t rows, int64_t cols, std::mt19937_64& rng) {
  std::vector<T> v(static_cast<std::size_t>(rows * cols));
  if constexpr (std::is_same_v<T, uint64_t>) {
    for (auto& x : v) {
      x = rng();  // full 64-bit values
    }
  } else {
    std::uniform_real_distribution<T> dist(T{-1}, T{1});
    for (auto& x : v) {
      x = dist(rng);
    }
  }
  return Tensor::from_vector(v, {rows, cols});
}

// Naive reference over to_vector() copies (independent of strides and the blocked kernel).
template <class T>
std::vector<T> naive_matmul(const Tensor& a, const Tensor& b) {
  const int64_t m = a.size(0);
  const int64_t k = a.size(1);
  const int64_t n = b.size(1);
  const std::vector<T> av = a.to_vector<T>();
  const std::vector<T> bv = b.to_vector<T>();
  std::vector<T> c(static_cast<std::size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      if constexpr (std::is_same_v<T, uint64_t>) {
        uint64_t acc = 0;
        for (int64_t p = 0; p < k; ++p) {
          acc += av[static_cast<std::size_t>(i * k + p)] * bv[static_cast<std::size_t>(p * n + j)];
        }
        c[static_cast<std::size_t>(i * n + j)] = acc;
      } else {
        long double acc = 0;
        for (int64_t p = 0; p < k; ++p) {
          acc += static_cast<long double>(av[static_cast<std::size_t>(i * k + p)]) *
                 static_cast<long double>(bv[static_cast<std::size_t>(p * n + j)]);
        }
        c[static_cast<std::size_t>(i * n + j)] = static_cast<T>(acc);
      }
    }
  }
  return c;
}

// Number of elements of matmul(a, b) that differ from the naive reference (bit-exact for ring;
// for floats beyond 3 k eps sum_p |a_ip b_pj|).
template <class T>
int64_t matmul_mismatches(const Tensor& a, const Tensor& b, const Tensor& got) {
  const std::vector<T> ref = naive_matmul<T>(a, b);
  const std::vector<T> out = got.to_vector<T>();
  if (got.shape() != Shape{a.size(0), b.size(1)} || out.size() != ref.size()) {
    return -1;
  }
  int64_t bad = 0;
  if constexpr (std::is_same_v<T, uint64_t>) {
    for (std::size_t i = 0; i < ref.size(); ++i) {
      bad += out[i] == ref[i] ? 0 : 1;
    }
  } else {
    const int64_t k = a.size(1);
    const int64_t n = b.size(1);
    const std::vector<T> av = a.to_vector<T>();
    const std::vector<T> bv = b.to_vector<T>();
    const double eps = std::numeric_limits<T>::epsilon();
    for (std::size_t idx = 0; idx < ref.size(); ++idx) {
      const auto i = static_cast<int64_t>(idx) / std::max<int64_t>(n, 1);
      const auto j = static_cast<int64_t>(idx) % std::max<int64_t>(n, 1);
      double abs_sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        abs_sum += std::fabs(static_cast<double>(av[static_cast<std::size_t>(i * k + p)]) *
                             static_cast<double>(bv[static_cast<std::size_t>(p * n + j)]));
      }
      const double tol = 3.0 * static_cast<double>(k + 1) * eps * abs_sum;
      bad +=
          std::fabs(static_cast<double>(out[idx]) - static_cast<double>(ref[idx])) <= tol ? 0 : 1;
    }
  }
  return bad;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const veil::ValueError& e) {
    return e.what();
  }
  return "(no ValueError)";
}

}  // namespace

// ---- elementwise -------------------------------------------------------------------------------

TEST_CASE("add/sub/mul broadcast like numpy", "[ops]") {
  // GIVEN a [2, 3] and b [3] / c [2, 1]
  const Tensor a = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = Tensor::from_vector<double>({10, 20, 30}, {3});
  const Tensor c = Tensor::from_vector<double>({100, 200}, {2, 1});
  CHECK(veil::core::add(a, b).to_vector<double>() == std::vector<double>{11, 22, 33, 14, 25, 36});
  CHECK(veil::core::sub(b, a).to_vector<double>() == std::vector<double>{9, 18, 27, 6, 15, 24});
  CHECK(veil::core::mul(a, c).to_vector<double>() ==
        std::vector<double>{100, 200, 300, 800, 1000, 1200});
  // [2, 1] + [3] -> [2, 3]
  const Tensor outer = veil::core::add(c, b);
  CHECK(outer.shape() == Shape{2, 3});
  CHECK(outer.to_vector<double>() == std::vector<double>{110, 120, 130, 210, 220, 230});
  // non-contiguous operands
  CHECK(veil::core::add(a.t(), a.t()).to_vector<double>() ==
        std::vector<double>{2, 8, 4, 10, 6, 12});
  CHECK(veil::core::div(a, b).to_vector<double>()[0] == 0.1);
  CHECK(veil::core::neg(a).to_vector<double>()[5] == -6);
  CHECK_THROWS_AS(veil::core::add(a, Tensor::from_vector<double>({1, 2}, {2})), veil::ValueError);
  CHECK_THROWS_AS(veil::core::add(a, a.to(DType::kFloat32)), veil::ValueError);
  CHECK_THROWS_AS(veil::core::div(a.to(DType::kRing64), a.to(DType::kRing64)), veil::ValueError);
  CHECK(error_of([&] {
          (void)veil::core::add(a, Tensor::from_vector<double>({1, 2}, {2}));
        }) == "[add] shapes [2, 3] and [2] do not broadcast");
}

TEST_CASE("ring and int64 arithmetic wrap mod 2^64", "[ops]") {
  const Tensor x = Tensor::from_vector<uint64_t>({kMax, kMax - 1, 5}, {3});
  const Tensor y = Tensor::from_vector<uint64_t>({2, kMax, 7}, {3});
  CHECK(veil::core::add(x, y).to_vector<uint64_t>() == std::vector<uint64_t>{1, kMax - 2, 12});
  CHECK(veil::core::sub(Tensor::from_vector<uint64_t>({1}, {1}), y.slice(0, 2, 3))
            .to_vector<uint64_t>() == std::vector<uint64_t>{ring(-6)});
  CHECK(veil::core::mul(x, y).to_vector<uint64_t>() ==
        std::vector<uint64_t>{kMax * 2, (kMax - 1) * kMax, 35});
  CHECK(veil::core::neg(y).to_vector<uint64_t>() == std::vector<uint64_t>{ring(-2), 1, ring(-7)});
  const Tensor big = Tensor::from_vector<int64_t>({std::numeric_limits<int64_t>::max()}, {1});
  CHECK(veil::core::add(big, Tensor::from_vector<int64_t>({1}, {1})).to_vector<int64_t>()[0] ==
        std::numeric_limits<int64_t>::min());
  CHECK(veil::core::mul_scalar(x, uint64_t{3}).to_vector<uint64_t>() ==
        std::vector<uint64_t>{kMax * 3, (kMax - 1) * 3, 15});
  CHECK(veil::core::add_scalar(x, uint64_t{2}).to_vector<uint64_t>() ==
        std::vector<uint64_t>{1, 0, 7});
  CHECK_THROWS_AS(veil::core::mul_scalar(x.to(DType::kFloat64), uint64_t{3}), veil::ValueError);
  CHECK(veil::core::mul_scalar(Tensor::from_vector<double>({1.5}, {1}), 2.0).item<double>() == 3.0);
}

TEST_CASE("in-place add_/sub_ broadcast into the target only", "[ops]") {
  Tensor a = Tensor::from_vector<uint64_t>({1, 2, 3, 4}, {2, 2});
  veil::core::add_(a, Tensor::from_vector<uint64_t>({10, 20}, {2}));
  CHECK(a.to_vector<uint64_t>() == std::vector<uint64_t>{11, 22, 13, 24});
  veil::core::sub_(a, Tensor::from_vector<uint64_t>({12}, {1}));
  CHECK(a.to_vector<uint64_t>() == std::vector<uint64_t>{kMax, 10, 1, 12});
  Tensor small = Tensor::from_vector<uint64_t>({1, 2}, {2});
  CHECK_THROWS_AS(veil::core::add_(small, a), veil::ValueError);
  Tensor view = a.t();
  CHECK_THROWS_AS(veil::core::add_(view, a), veil::ValueError);
}

TEST_CASE("shifts: arithmetic vs logical on negative ring values", "[ops]") {
  const Tensor x = Tensor::from_vector<uint64_t>({ring(-8), ring(-7), 12}, {3});
  CHECK(veil::core::shift_right_arith(x, 1).to_vector<uint64_t>() ==
        std::vector<uint64_t>{ring(-4), ring(-4), 6});  // floor(-7 / 2) = -4
  CHECK(veil::core::shift_right_logical(x, 1).to_vector<uint64_t>() ==
        std::vector<uint64_t>{ring(-8) >> 1, ring(-7) >> 1, 6});
  CHECK(veil::core::shift_right_logical(x, 1).to_vector<uint64_t>()[0] == 0x7FFFFFFFFFFFFFFCull);
  CHECK(veil::core::shift_left(x, 62).to_vector<uint64_t>() ==
        std::vector<uint64_t>{0, 0x4000000000000000ull, 0});
  CHECK(veil::core::shift_right_arith(x, 0).to_vector<uint64_t>() == x.to_vector<uint64_t>());
  CHECK_THROWS_AS(veil::core::shift_left(x, 64), veil::ValueError);
  CHECK_THROWS_AS(veil::core::shift_right_arith(x, -1), veil::ValueError);
  CHECK_THROWS_AS(veil::core::shift_left(x.to(DType::kInt64), 1), veil::ValueError);
}

TEST_CASE("bit ops", "[ops]") {
  const Tensor a = Tensor::from_vector<uint64_t>({0xF0F0, kMax}, {2});
  const Tensor b = Tensor::from_vector<uint64_t>({0xFF00, 1}, {2});
  CHECK(veil::core::bitwise_xor(a, b).to_vector<uint64_t>() ==
        std::vector<uint64_t>{0x0FF0, kMax - 1});
  CHECK(veil::core::bitwise_and(a, b).to_vector<uint64_t>() == std::vector<uint64_t>{0xF000, 1});
  CHECK(veil::core::bitwise_not(a).to_vector<uint64_t>() ==
        std::vector<uint64_t>{~uint64_t{0xF0F0}, 0});
  CHECK_THROWS_AS(veil::core::bitwise_xor(a.to(DType::kFloat64), b.to(DType::kFloat64)),
                  veil::ValueError);
}

TEST_CASE("float math", "[ops]") {
  const Tensor x = Tensor::from_vector<double>({-1.0, 0.0, 2.0}, {3});
  CHECK(veil::core::relu(x).to_vector<double>() == std::vector<double>{0, 0, 2});
  CHECK(veil::core::step(x).to_vector<double>() == std::vector<double>{0, 0, 1});
  CHECK(veil::core::exp(x).to_vector<double>()[2] == Approx(std::exp(2.0)));
  CHECK(veil::core::log(veil::core::exp(x)).to_vector<double>()[0] == Approx(-1.0));
  CHECK_THROWS_AS(veil::core::exp(x.to(DType::kRing64)), veil::ValueError);
}

// ---- reductions --------------------------------------------------------------------------------

TEST_CASE("sum along dims, with keepdim and ring wrap-around", "[ops]") {
  // x [2, 3, 2] = 0..11
  std::vector<int64_t> v(12);
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<int64_t>(i);
  }
  const Tensor x = Tensor::from_vector(v, {2, 3, 2});
  CHECK(veil::core::sum(x, 0).to_vector<int64_t>() == std::vector<int64_t>{6, 8, 10, 12, 14, 16});
  CHECK(veil::core::sum(x, 1).to_vector<int64_t>() == std::vector<int64_t>{6, 9, 24, 27});
  const Tensor s2 = veil::core::sum(x, -1, true);
  CHECK(s2.shape() == Shape{2, 3, 1});
  CHECK(s2.to_vector<int64_t>() == std::vector<int64_t>{1, 5, 9, 13, 17, 21});
  // non-contiguous input: xt[i][j][k] = x[k][j][i] = 6k + 2j + i, summed over k: 4j + 2i + 6
  CHECK(veil::core::sum(x.transpose(0, 2), 2).to_vector<int64_t>() ==
        std::vector<int64_t>{6, 10, 14, 8, 12, 16});
  const Tensor r = Tensor::from_vector<uint64_t>({kMax, 3, kMax, 5}, {2, 2});
  CHECK(veil::core::sum(r, 0).to_vector<uint64_t>() == std::vector<uint64_t>{kMax - 1, 8});
  CHECK(veil::core::sum_all(r).item<uint64_t>() == 6);
  CHECK_THROWS_AS(veil::core::sum(x, 3), veil::ValueError);
}

TEST_CASE("max/argmax: first maximum, ring compared as signed", "[ops]") {
  const Tensor x = Tensor::from_vector<double>({1, 5, 5, -2, 7, 0}, {2, 3});
  CHECK(veil::core::max(x, 1).to_vector<double>() == std::vector<double>{5, 7});
  CHECK(veil::core::argmax(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 1});
  CHECK(veil::core::argmax(x, 0).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0});
  CHECK(veil::core::argmax(x, 0, true).shape() == Shape{1, 3});
  CHECK(veil::core::max(x.t(), 0).to_vector<double>() == std::vector<double>{5, 7});
  // -1 (all ones) is smaller than 1 when the ring is read as two's complement
  const Tensor r = Tensor::from_vector<uint64_t>({kMax, 1, ring(-5)}, {3});
  CHECK(veil::core::max(r, 0).item<uint64_t>() == 1);
  CHECK(veil::core::argmax(r, 0).item<int64_t>() == 1);
  CHECK_THROWS_AS(veil::core::max(Tensor::zeros({2, 0}, DType::kFloat64), 1), veil::ValueError);
  CHECK_THROWS_AS(veil::core::argmax(x, 2), veil::ValueError);
}

// ---- construction ------------------------------------------------------------------------------

TEST_CASE("cat along every dim", "[ops]") {
  const Tensor a = Tensor::from_vector<double>({1, 2, 3, 4}, {2, 2});
  const Tensor b = Tensor::from_vector<double>({5, 6}, {1, 2});
  const Tensor c = Tensor::from_vector<double>({7, 8}, {2, 1});
  CHECK(veil::core::cat({a, b}, 0).to_vector<double>() == std::vector<double>{1, 2, 3, 4, 5, 6});
  const Tensor ac = veil::core::cat({a, c, a}, 1);
  CHECK(ac.shape() == Shape{2, 5});
  CHECK(ac.to_vector<double>() == std::vector<double>{1, 2, 7, 1, 2, 3, 4, 8, 3, 4});
  CHECK(veil::core::cat({a.t(), c}, -1).to_vector<double>() ==
        std::vector<double>{1, 3, 7, 2, 4, 8});
  // 3-D along the middle dim
  const Tensor x = Tensor::from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7}, {2, 2, 2});
  const Tensor y = Tensor::from_vector<int64_t>({8, 9, 10, 11}, {2, 1, 2});
  CHECK(veil::core::cat({x, y}, 1).to_vector<int64_t>() ==
        std::vector<int64_t>{0, 1, 2, 3, 8, 9, 4, 5, 6, 7, 10, 11});
  CHECK_THROWS_AS(veil::core::cat({a, b}, 1), veil::ValueError);
  CHECK_THROWS_AS(veil::core::cat({a, a.to(DType::kFloat32)}, 0), veil::ValueError);
  CHECK_THROWS_AS(veil::core::cat({}, 0), veil::ValueError);
}

TEST_CASE("one_hot", "[ops]") {
  const Tensor labels = Tensor::from_vector<int64_t>({2, 0, 1}, {3});
  const Tensor oh = veil::core::one_hot(labels, 3);
  CHECK(oh.shape() == Shape{3, 3});
  CHECK(oh.dtype() == DType::kFloat64);
  CHECK(oh.to_vector<double>() == std::vector<double>{0, 0, 1, 1, 0, 0, 0, 1, 0});
  CHECK_THROWS_AS(veil::core::one_hot(Tensor::from_vector<int64_t>({3}, {1}), 3), veil::ValueError);
  CHECK_THROWS_AS(veil::core::one_hot(Tensor::from_vector<int64_t>({-1}, {1}), 3),
                  veil::ValueError);
  CHECK_THROWS_AS(veil::core::one_hot(labels.to(DType::kFloat64), 3), veil::ValueError);
}

TEST_CASE("gather_last picks entries of the last dimension, -1 gives zero", "[ops]") {
  std::mt19937_64 rng(5);
  // repeats, reversed order, a gap and zeros; a strided (transposed) source
  const std::vector<int64_t> index{6, 0, 0, -1, 3, 2, 1, 6, -1};
  for (const DType t :
       {DType::kRing64, DType::kInt64, DType::kFloat64, DType::kFloat32, DType::kUInt8}) {
    Tensor base = Tensor::empty({7, 3, 5}, t);  // viewed as [5, 3, 7] below
    for (std::byte& b : base.mutable_bytes()) {
      b = static_cast<std::byte>(rng() | 1U);  // never an all-zero element
    }
    const Tensor a = base.transpose(0, 2);
    const Tensor got = veil::core::gather_last(a, index);
    REQUIRE(got.shape() == Shape{5, 3, static_cast<int64_t>(index.size())});
    const Tensor ac = a.contiguous();
    const auto esize = static_cast<std::size_t>(veil::core::dtype_size(t));
    const std::span<const std::byte> src = ac.bytes();
    const std::span<const std::byte> out = got.bytes();
    for (std::size_t row = 0; row < 15; ++row) {
      for (std::size_t i = 0; i < index.size(); ++i) {
        for (std::size_t b = 0; b < esize; ++b) {
          const std::byte want =
              index[i] < 0 ? std::byte{0}
                           : src[(row * 7 + static_cast<std::size_t>(index[i])) * esize + b];
          REQUIRE(out[(row * index.size() + i) * esize + b] == want);
        }
      }
    }
  }
  // bad input: an entry outside [-1, size(-1)), a 0-d tensor
  const Tensor x = Tensor::zeros({2, 4}, DType::kRing64);
  CHECK_THROWS_WITH(veil::core::gather_last(x, {0, 4}),
                    Catch::Contains("[gather_last] index 4 at position 1 outside [-1, 4)"));
  CHECK_THROWS_WITH(veil::core::gather_last(x, {-2}), Catch::Contains("[gather_last]"));
  CHECK_THROWS_AS(veil::core::gather_last(Tensor::zeros({}, DType::kRing64), {0}),
                  veil::ValueError);
}

// ---- matmul ------------------------------------------------------------------------------------

TEST_CASE("matmul ring64 is bit-exact on odd sizes", "[ops][matmul]") {
  // GIVEN full 64-bit random matrices (products wrap mod 2^64)
  std::mt19937_64 rng(7);
  const int64_t sizes[] = {1, 7, 33, 129};
  int64_t bad = 0;
  for (const int64_t m : sizes) {
    for (const int64_t n : sizes) {
      for (const int64_t k : sizes) {
        const Tensor a = random_tensor<uint64_t>(m, k, rng);
        const Tensor b = random_tensor<uint64_t>(k, n, rng);
        bad += matmul_mismatches<uint64_t>(a, b, veil::core::matmul(a, b)) == 0 ? 0 : 1;
      }
    }
  }
  CHECK(bad == 0);
  // K above 4096: several K panels accumulate into the output
  const Tensor a = random_tensor<uint64_t>(9, 4200, rng);
  const Tensor b = random_tensor<uint64_t>(4200, 17, rng);
  CHECK(matmul_mismatches<uint64_t>(a, b, veil::core::matmul(a, b)) == 0);
}

TEST_CASE("matmul float64 and float32 within k*eps", "[ops][matmul]") {
  std::mt19937_64 rng(8);
  for (const int64_t s : {1, 7, 33, 129}) {
    const Tensor a = random_tensor<double>(s, s + 3, rng);
    const Tensor b = random_tensor<double>(s + 3, 2 * s, rng);
    CHECK(matmul_mismatches<double>(a, b, veil::core::matmul(a, b)) == 0);
    const Tensor af = random_tensor<float>(s + 1, s, rng);
    const Tensor bf = random_tensor<float>(s, s + 5, rng);
    CHECK(matmul_mismatches<float>(af, bf, veil::core::matmul(af, bf)) == 0);
  }
  // K above 4096
  const Tensor a = random_tensor<double>(5, 4200, rng);
  const Tensor b = random_tensor<double>(4200, 9, rng);
  CHECK(matmul_mismatches<double>(a, b, veil::core::matmul(a, b)) == 0);
}

TEST_CASE("matmul on transposed, sliced and broadcast views", "[ops][matmul]") {
  std::mt19937_64 rng(9);
  const Tensor at = random_tensor<uint64_t>(40, 30, rng);  // a = at.t() is [30, 40]
  const Tensor bt = random_tensor<uint64_t>(50, 40, rng);  // b = bt.t() is [40, 50]
  CHECK(matmul_mismatches<uint64_t>(at.t(), bt.t(), veil::core::matmul(at.t(), bt.t())) == 0);
  // column slices (row stride > row length) and row slices with an offset
  const Tensor wide = random_tensor<uint64_t>(30, 100, rng);
  const Tensor a = wide.slice(1, 17, 57);  // [30, 40]
  const Tensor b = random_tensor<uint64_t>(60, 45, rng).slice(0, 11, 51);
  CHECK(matmul_mismatches<uint64_t>(a, b, veil::core::matmul(a, b)) == 0);
  // stride-0 (expanded) operands
  const Tensor row = random_tensor<uint64_t>(1, 40, rng).expand({30, 40});
  CHECK(matmul_mismatches<uint64_t>(row, b, veil::core::matmul(row, b)) == 0);
  const Tensor ad = random_tensor<double>(64, 33, rng);
  const Tensor bd = random_tensor<double>(70, 64, rng);
  CHECK(matmul_mismatches<double>(ad.t(), bd.t(), veil::core::matmul(ad.t(), bd.t())) == 0);
}

TEST_CASE("matmul multithreaded split over M and over N equals the naive loop", "[ops][matmul]") {
  const ThreadsGuard guard(2);
  std::mt19937_64 rng(10);
  // tall: split over rows
  const Tensor a = random_tensor<uint64_t>(201, 150, rng);
  const Tensor b = random_tensor<uint64_t>(150, 97, rng);
  CHECK(matmul_mismatches<uint64_t>(a, b, veil::core::matmul(a, b)) == 0);
  // short and wide: split over columns
  const Tensor a2 = random_tensor<uint64_t>(3, 400, rng);
  const Tensor b2 = random_tensor<uint64_t>(400, 1001, rng);
  CHECK(matmul_mismatches<uint64_t>(a2, b2, veil::core::matmul(a2, b2)) == 0);
  const Tensor a3 = random_tensor<double>(3, 400, rng);
  const Tensor b3 = random_tensor<double>(400, 1001, rng);
  CHECK(matmul_mismatches<double>(a3, b3, veil::core::matmul(a3, b3)) == 0);
  // same result with one thread, bit for bit
  veil::core::set_num_threads(1);
  CHECK(veil::core::matmul(a, b).to_vector<uint64_t>() == naive_matmul<uint64_t>(a, b));
}

TEST_CASE("matmul called concurrently from several party threads", "[ops][matmul]") {
  // GIVEN 3 threads (like MPC parties), each using 2 intra-op threads
  constexpr int kParties = 3;
  std::vector<Tensor> as;
  std::vector<Tensor> bs;
  std::mt19937_64 rng(11);
  for (int p = 0; p < kParties; ++p) {
    as.push_back(random_tensor<uint64_t>(130, 120, rng));
    bs.push_back(random_tensor<uint64_t>(120, 110, rng));
  }
  std::vector<std::vector<Tensor>> results(kParties);
  std::vector<std::string> errors(kParties);
  std::vector<std::thread> threads;
  for (int p = 0; p < kParties; ++p) {
    threads.emplace_back([&, p] {
      try {
        veil::core::set_num_threads(2);
        for (int rep = 0; rep < 4; ++rep) {
          results[static_cast<std::size_t>(p)].push_back(
              veil::core::matmul(as[static_cast<std::size_t>(p)], bs[static_cast<std::size_t>(p)]));
        }
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(p)] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  // THEN every result equals the naive product (assertions on the main thread)
  for (std::size_t p = 0; p < kParties; ++p) {
    CHECK(errors[p].empty());
    REQUIRE(results[p].size() == 4);
    const std::vector<uint64_t> ref = naive_matmul<uint64_t>(as[p], bs[p]);
    for (const Tensor& r : results[p]) {
      CHECK(r.to_vector<uint64_t>() == ref);
    }
  }
}

TEST_CASE("matmul with empty shapes", "[ops][matmul]") {
  const Tensor z = veil::core::matmul(Tensor::zeros({0, 5}, DType::kRing64),
                                      Tensor::zeros({5, 3}, DType::kRing64));
  CHECK(z.shape() == Shape{0, 3});
  // k = 0: zeros, even in freshly allocated (uninitialised) output
  const Tensor k0 = veil::core::matmul(Tensor::zeros({4, 0}, DType::kFloat64),
                                       Tensor::zeros({0, 3}, DType::kFloat64));
  CHECK(k0.shape() == Shape{4, 3});
  CHECK(k0.to_vector<double>() == std::vector<double>(12, 0.0));
  const Tensor r0 =
      veil::core::matmul(Tensor::full<uint64_t>({4, 0}, 1), Tensor::full<uint64_t>({0, 300}, 1));
  CHECK(r0.to_vector<uint64_t>() == std::vector<uint64_t>(1200, 0));
  CHECK(veil::core::matmul(Tensor::zeros({4, 5}, DType::kFloat32),
                           Tensor::zeros({5, 0}, DType::kFloat32))
            .shape() == Shape{4, 0});
}

TEST_CASE("matmul rejects bad shapes and dtypes", "[ops][matmul]") {
  const Tensor a = Tensor::zeros({32, 20}, DType::kRing64);
  const Tensor b = Tensor::zeros({16, 10}, DType::kRing64);
  CHECK(error_of([&] { (void)veil::core::matmul(a, b); }) ==
        "[matmul] inner dimensions differ: a is [32, 20], b is [16, 10]");
  CHECK_THROWS_AS(veil::core::matmul(a, Tensor::zeros({20, 4}, DType::kFloat64)), veil::ValueError);
  CHECK_THROWS_AS(veil::core::matmul(Tensor::zeros({2, 2}, DType::kInt64),
                                     Tensor::zeros({2, 2}, DType::kInt64)),
                  veil::ValueError);
  CHECK_THROWS_AS(veil::core::matmul(Tensor::zeros({20}, DType::kRing64), b), veil::ValueError);
  CHECK_THROWS_AS(veil::core::matmul(a, Tensor::zeros({20, 2, 2}, DType::kRing64)),
                  veil::ValueError);
  CHECK_THROWS_AS(veil::core::matmul(Tensor(), b), veil::ValueError);
}

TEST_CASE("AtLeastThreads raises a thread's intra-op threads and restores them",
          "[ops][parallel]") {
  std::vector<int> seen;
  std::thread t([&] {
    const int hw = veil::core::hardware_threads();
    seen.push_back(veil::core::num_threads());  // the default: every hardware thread
    veil::core::set_num_threads(1);
    {
      const veil::core::AtLeastThreads all(hw + 3);
      seen.push_back(veil::core::num_threads());
      {
        const veil::core::AtLeastThreads fewer(1);  // never lowers
        seen.push_back(veil::core::num_threads());
      }
      seen.push_back(veil::core::num_threads());
    }
    seen.push_back(veil::core::num_threads());
    seen.push_back(hw);
  });
  t.join();
  REQUIRE(seen.size() == 6);
  const int hw = seen[5];
  CHECK(seen[0] == hw);
  CHECK(seen[1] == hw + 3);
  CHECK(seen[2] == hw + 3);
  CHECK(seen[3] == hw + 3);
  CHECK(seen[4] == 1);
  // a thread on the default setting returns to it
  int after = 0;
  std::thread u([&] {
    { const veil::core::AtLeastThreads all(veil::core::hardware_threads() + 1); }
    after = veil::core::num_threads();
  });
  u.join();
  CHECK(after == hw);
}
