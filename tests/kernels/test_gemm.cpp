// Blocked CPU GEMM (kernels/cpu/gemm) against a naive triple loop: ring64 bit-exact (with
// wrap-around), float64/float32 within a bound derived from k and machine epsilon; every ISA the
// CPU supports; odd sizes, K above 4096, strided/transposed operands, accumulate, empty shapes.

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include "kernels/cpu/gemm.h"
#include "kernels/error.h"

namespace {

using veil::kernels::cpu::GemmIsa;

std::vector<GemmIsa> isas_to_test() {
  std::vector<GemmIsa> out{GemmIsa::kPortable};
  if (veil::kernels::cpu::gemm_isa_supported(GemmIsa::kAvx512)) {
    out.push_back(GemmIsa::kAvx512);
  }
  return out;
}

template <class T>
std::vector<T> random_values(std::size_t count, std::mt19937_64& rng) {
  std::vector<T> v(count);
  if constexpr (std::is_same_v<T, uint64_t>) {
    for (auto& x : v) {
      x = rng();  // full 64-bit values: products and sums wrap mod 2^64
    }
  } else {
    std::uniform_real_distribution<T> dist(T{-1}, T{1});
    for (auto& x : v) {
      x = dist(rng);
    }
  }
  return v;
}

// A strided matrix view over a buffer: element (i, j) at data[i * rs + j * cs].
template <class T>
struct View {
  const T* data;
  int64_t rs;
  int64_t cs;
  T at(int64_t i, int64_t j) const { return data[i * rs + j * cs]; }
};

// Reference: naive triple loop; for floats accumulates in long double.
template <class T>
std::vector<T> naive_gemm(int64_t m, int64_t n, int64_t k, View<T> a, View<T> b) {
  std::vector<T> c(static_cast<std::size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      if constexpr (std::is_same_v<T, uint64_t>) {
        uint64_t acc = 0;
        for (int64_t p = 0; p < k; ++p) {
          acc += a.at(i, p) * b.at(p, j);
        }
        c[static_cast<std::size_t>(i * n + j)] = acc;
      } else {
        long double acc = 0;
        for (int64_t p = 0; p < k; ++p) {
          acc += static_cast<long double>(a.at(i, p)) * static_cast<long double>(b.at(p, j));
        }
        c[static_cast<std::size_t>(i * n + j)] = static_cast<T>(acc);
      }
    }
  }
  return c;
}

// |sum_p a_ip b_pj| bound for floats: the blocked sum and the exact sum differ by at most
// gamma_k * sum_p |a_ip b_pj| with gamma_k = k eps / (1 - k eps); we allow twice that plus the
// final rounding.
template <class T>
double float_tolerance(int64_t i, int64_t j, int64_t k, View<T> a, View<T> b) {
  const double eps = std::numeric_limits<T>::epsilon();
  double abs_sum = 0;
  for (int64_t p = 0; p < k; ++p) {
    abs_sum += std::fabs(static_cast<double>(a.at(i, p)) * static_cast<double>(b.at(p, j)));
  }
  const double kd = static_cast<double>(k);
  return 2.0 * (kd * eps / (1.0 - kd * eps)) * abs_sum + eps * abs_sum;
}

template <class T>
void call_gemm(int64_t m,
               int64_t n,
               int64_t k,
               View<T> a,
               View<T> b,
               T* c,
               int64_t ldc,
               bool accumulate,
               GemmIsa isa) {
  if constexpr (std::is_same_v<T, uint64_t>) {
    veil::kernels::cpu::ring_gemm(m, n, k, a.data, a.rs, a.cs, b.data, b.rs, b.cs, c, ldc,
                                  accumulate, isa);
  } else if constexpr (std::is_same_v<T, double>) {
    veil::kernels::cpu::gemm_f64(m, n, k, a.data, a.rs, a.cs, b.data, b.rs, b.cs, c, ldc,
                                 accumulate, isa);
  } else {
    veil::kernels::cpu::gemm_f32(m, n, k, a.data, a.rs, a.cs, b.data, b.rs, b.cs, c, ldc,
                                 accumulate, isa);
  }
}

enum class Layout { kRowMajor, kColMajor, kStrided };

// Storage for an r x c matrix in the given layout; kStrided uses row stride 3c+1 and column
// stride 3.
template <class T>
View<T> make_view(std::vector<T>& buf, int64_t r, int64_t c, Layout layout, std::mt19937_64& rng) {
  int64_t rs = c;
  int64_t cs = 1;
  std::size_t size = static_cast<std::size_t>(r * c);
  if (layout == Layout::kColMajor) {
    rs = 1;
    cs = r;
  } else if (layout == Layout::kStrided) {
    cs = 3;
    rs = 3 * c + 1;
    size = static_cast<std::size_t>(std::max<int64_t>(r * rs, 1));
  }
  buf = random_values<T>(std::max<std::size_t>(size, 1), rng);
  return {buf.data(), rs, cs};
}

// Runs C (+)= A B with C in a buffer of row stride ldc = n + 5 (padding must stay untouched) and
// compares every element with the naive reference.
template <class T>
int64_t gemm_mismatches(int64_t m,
                        int64_t n,
                        int64_t k,
                        Layout la,
                        Layout lb,
                        bool accumulate,
                        GemmIsa isa,
                        uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<T> abuf;
  std::vector<T> bbuf;
  const View<T> a = make_view<T>(abuf, m, k, la, rng);
  const View<T> b = make_view<T>(bbuf, k, n, lb, rng);
  const int64_t ldc = n + 5;
  std::vector<T> c = random_values<T>(static_cast<std::size_t>(std::max<int64_t>(m * ldc, 1)), rng);
  const std::vector<T> c0 = c;

  call_gemm<T>(m, n, k, a, b, c.data(), ldc, accumulate, isa);

  const std::vector<T> ref = naive_gemm<T>(m, n, k, a, b);
  int64_t mismatches = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const auto ci = static_cast<std::size_t>(i * ldc + j);
      if (j >= n) {
        mismatches += c[ci] == c0[ci] ? 0 : 1;  // padding untouched
        continue;
      }
      T want = ref[static_cast<std::size_t>(i * n + j)];
      if (accumulate) {
        want = static_cast<T>(want + c0[ci]);
      }
      if constexpr (std::is_same_v<T, uint64_t>) {
        mismatches += c[ci] == want ? 0 : 1;
      } else {
        double tol = float_tolerance<T>(i, j, k, a, b);
        if (accumulate) {
          tol += 2.0 * std::numeric_limits<T>::epsilon() * std::fabs(static_cast<double>(c0[ci]));
        }
        mismatches +=
            std::fabs(static_cast<double>(c[ci]) - static_cast<double>(want)) <= tol ? 0 : 1;
      }
    }
  }
  return mismatches;
}

template <class T>
void check_gemm(int64_t m,
                int64_t n,
                int64_t k,
                Layout la,
                Layout lb,
                bool accumulate,
                GemmIsa isa,
                uint64_t seed) {
  INFO("m=" << m << " n=" << n << " k=" << k << " la=" << static_cast<int>(la)
            << " lb=" << static_cast<int>(lb) << " accumulate=" << accumulate
            << " isa=" << veil::kernels::cpu::gemm_isa_name(isa));
  CHECK(gemm_mismatches<T>(m, n, k, la, lb, accumulate, isa, seed) == 0);
}

// Runs fn on a new thread, so that the kernel's thread-local packing scratch starts empty and is
// sized by this call alone (an overrun of it then corrupts the heap instead of hiding in slack).
template <class F>
int64_t on_fresh_thread(F fn) {
  int64_t result = -1;
  std::thread t([&] { result = fn(); });
  t.join();
  return result;
}

template <class T>
void check_size_matrix(uint64_t seed) {
  const int64_t sizes[] = {1, 7, 33, 129};
  for (const GemmIsa isa : isas_to_test()) {
    for (const int64_t m : sizes) {
      for (const int64_t n : sizes) {
        for (const int64_t k : sizes) {
          check_gemm<T>(m, n, k, Layout::kRowMajor, Layout::kRowMajor, false, isa, seed++);
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("ring_gemm matches the naive loop bit for bit on odd sizes", "[gemm][ring]") {
  // GIVEN full 64-bit random A, B (products wrap mod 2^64) WHEN multiplied THEN exact equality
  check_size_matrix<uint64_t>(1);
}

TEST_CASE("gemm_f64 matches the naive loop within k*eps on odd sizes", "[gemm][f64]") {
  check_size_matrix<double>(1000);
}

TEST_CASE("gemm_f32 matches the naive loop within k*eps", "[gemm][f32]") {
  for (const GemmIsa isa : isas_to_test()) {
    check_gemm<float>(33, 129, 7, Layout::kRowMajor, Layout::kRowMajor, false, isa, 7);
    check_gemm<float>(129, 33, 300, Layout::kColMajor, Layout::kStrided, true, isa, 8);
    check_gemm<float>(5, 50, 1, Layout::kStrided, Layout::kColMajor, false, isa, 9);
  }
}

TEST_CASE("gemm handles K above 4096 (several K panels)", "[gemm]") {
  for (const GemmIsa isa : isas_to_test()) {
    check_gemm<uint64_t>(9, 17, 4100, Layout::kRowMajor, Layout::kRowMajor, false, isa, 11);
    check_gemm<uint64_t>(17, 9, 4097, Layout::kColMajor, Layout::kColMajor, true, isa, 12);
    check_gemm<double>(9, 17, 4100, Layout::kRowMajor, Layout::kRowMajor, false, isa, 13);
  }
}

TEST_CASE("gemm handles M and N beyond one cache block", "[gemm]") {
  // M past MC (several A blocks), N past NC (several B panels), with edge tiles.
  for (const GemmIsa isa : isas_to_test()) {
    check_gemm<uint64_t>(401, 9, 20, Layout::kRowMajor, Layout::kRowMajor, false, isa, 21);
    check_gemm<uint64_t>(9, 4200, 3, Layout::kRowMajor, Layout::kRowMajor, true, isa, 22);
    check_gemm<double>(401, 2100, 2, Layout::kStrided, Layout::kRowMajor, false, isa, 23);
    // full-size K and N panels, with NC not a multiple of every NR, each on fresh scratch
    CHECK(on_fresh_thread([isa] {
            return gemm_mismatches<double>(9, 2100, 600, Layout::kRowMajor, Layout::kRowMajor,
                                           false, isa, 24);
          }) == 0);
    CHECK(on_fresh_thread([isa] {
            return gemm_mismatches<uint64_t>(200, 2100, 530, Layout::kRowMajor, Layout::kColMajor,
                                             true, isa, 25);
          }) == 0);
    CHECK(on_fresh_thread([isa] {
            return gemm_mismatches<float>(9, 2100, 600, Layout::kColMajor, Layout::kRowMajor, false,
                                          isa, 26);
          }) == 0);
  }
}

TEST_CASE("gemm reads transposed and strided operands without copies by the caller", "[gemm]") {
  const Layout layouts[] = {Layout::kRowMajor, Layout::kColMajor, Layout::kStrided};
  uint64_t seed = 100;
  for (const GemmIsa isa : isas_to_test()) {
    for (const Layout la : layouts) {
      for (const Layout lb : layouts) {
        check_gemm<uint64_t>(37, 45, 70, la, lb, false, isa, seed++);
        check_gemm<uint64_t>(37, 45, 70, la, lb, true, isa, seed++);
        check_gemm<double>(37, 45, 70, la, lb, true, isa, seed++);
      }
    }
  }
}

TEST_CASE("gemm reads broadcast operands (stride 0)", "[gemm]") {
  // GIVEN A whose rows are all the same vector (row stride 0) and B with column stride 0
  std::mt19937_64 rng(31);
  const int64_t m = 19;
  const int64_t n = 21;
  const int64_t k = 40;
  const std::vector<uint64_t> arow = random_values<uint64_t>(static_cast<std::size_t>(k), rng);
  const std::vector<uint64_t> bcol = random_values<uint64_t>(static_cast<std::size_t>(k), rng);
  for (const GemmIsa isa : isas_to_test()) {
    std::vector<uint64_t> c(static_cast<std::size_t>(m * n), 7);
    veil::kernels::cpu::ring_gemm(m, n, k, arow.data(), 0, 1, bcol.data(), 1, 0, c.data(), n, false,
                                  isa);
    // THEN every element is the dot product of the two vectors (mod 2^64)
    uint64_t dot = 0;
    for (std::size_t p = 0; p < arow.size(); ++p) {
      dot += arow[p] * bcol[p];
    }
    int64_t mismatches = 0;
    for (const uint64_t x : c) {
      mismatches += x == dot ? 0 : 1;
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("gemm with empty shapes", "[gemm]") {
  std::mt19937_64 rng(41);
  const std::vector<uint64_t> a = random_values<uint64_t>(64, rng);
  const std::vector<uint64_t> b = random_values<uint64_t>(64, rng);
  for (const GemmIsa isa : isas_to_test()) {
    // k = 0 stores zeros, or leaves C unchanged when accumulating
    std::vector<uint64_t> c(12, 5);
    veil::kernels::cpu::ring_gemm(3, 4, 0, a.data(), 0, 1, b.data(), 4, 1, c.data(), 4, true, isa);
    CHECK(c == std::vector<uint64_t>(12, 5));
    veil::kernels::cpu::ring_gemm(3, 4, 0, a.data(), 0, 1, b.data(), 4, 1, c.data(), 4, false, isa);
    CHECK(c == std::vector<uint64_t>(12, 0));
    // m = 0 or n = 0 touch nothing
    std::vector<double> cd(4, 2.5);
    const std::vector<double> ad(8, 1.0);
    veil::kernels::cpu::gemm_f64(0, 4, 2, ad.data(), 2, 1, ad.data(), 4, 1, cd.data(), 4, false,
                                 isa);
    veil::kernels::cpu::gemm_f64(2, 0, 2, ad.data(), 2, 1, ad.data(), 0, 1, cd.data(), 0, false,
                                 isa);
    CHECK(cd == std::vector<double>(4, 2.5));
  }
}

TEST_CASE("gemm isa queries", "[gemm]") {
  CHECK(veil::kernels::cpu::gemm_isa_supported(GemmIsa::kAuto));
  CHECK(veil::kernels::cpu::gemm_isa_supported(GemmIsa::kPortable));
  const GemmIsa best = veil::kernels::cpu::gemm_best_isa();
  CHECK(best != GemmIsa::kAuto);
  CHECK(veil::kernels::cpu::gemm_isa_supported(best));
  CHECK(std::string(veil::kernels::cpu::gemm_isa_name(GemmIsa::kAuto)) ==
        veil::kernels::cpu::gemm_isa_name(best));
  if (!veil::kernels::cpu::gemm_isa_supported(GemmIsa::kAvx512)) {
    // an ISA the CPU lacks is refused, never executed
    uint64_t x = 1;
    CHECK_THROWS_AS(
        veil::kernels::cpu::ring_gemm(1, 1, 1, &x, 1, 1, &x, 1, 1, &x, 1, false, GemmIsa::kAvx512),
        veil::Error);
  }
}
