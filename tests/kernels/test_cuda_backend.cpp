// GPU GEMMs (kernels/cuda_gemm.h, kernels::cuda::ring_gemm): the tensor-core and SIMT ring GEMMs
// bit for bit against the CPU ring GEMM (kernels/cpu/gemm.h), float GEMMs against a float64 loop,
// and the stubs of a build without CUDA. Tests that need a device print "SKIPPED: no CUDA device"
// and return when none is visible; everything compiles with and without CUDA.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "kernels/cpu/gemm.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_gemm.h"
#include "kernels/error.h"

namespace cuda = veil::kernels::cuda;
using Catch::Matchers::Contains;

namespace {

bool no_device() {
  if (cuda::device_count() == 0) {
    std::puts("SKIPPED: no CUDA device");
    return true;
  }
  return false;
}

/// Device memory holding a copy of a host vector (or `count` elements of scratch).
template <class T>
class DeviceVec {
 public:
  explicit DeviceVec(const std::vector<T>& host) : count_(host.size()) {
    ptr_ = cuda::device_alloc(bytes(), 0);
    if (bytes() > 0) {
      cuda::copy_to_device(ptr_, host.data(), bytes(), 0);
    }
  }
  explicit DeviceVec(std::size_t count) : count_(count) { ptr_ = cuda::device_alloc(bytes(), 0); }
  ~DeviceVec() { cuda::device_free(ptr_, 0); }
  DeviceVec(const DeviceVec&) = delete;
  DeviceVec& operator=(const DeviceVec&) = delete;
  T* get() const { return static_cast<T*>(ptr_); }
  std::vector<T> to_host() const {
    std::vector<T> out(count_);
    if (bytes() > 0) {
      cuda::copy_to_host(out.data(), ptr_, bytes(), 0);
    }
    return out;
  }

 private:
  std::size_t bytes() const { return count_ * sizeof(T); }
  std::size_t count_;
  void* ptr_ = nullptr;
};

std::vector<uint64_t> random_ring(int64_t count, std::mt19937_64& rng) {
  std::vector<uint64_t> v(static_cast<std::size_t>(count));
  for (auto& x : v) {
    // a quarter extreme values (0, 1, 2^63, 2^64 - 1, all digits -128), the rest uniform
    const uint64_t r = rng();
    switch (r % 8) {
      case 0:
        x = (r >> 3) % 2 == 0 ? 0 : ~uint64_t{0};
        break;
      case 1:
        x = (r >> 3) % 3 == 0 ? 1 : ((r >> 3) % 3 == 1 ? uint64_t{1} << 63 : 0x7F7F7F7F7F7F7F80ULL);
        break;
      default:
        x = rng();
    }
  }
  return v;
}

struct GemmCase {
  int64_t m, n, k;
  bool ta, tb;
  int64_t pad;  // extra leading-dimension elements
};

/// CPU reference with the same storage conventions as ring_gemm_ex.
std::vector<uint64_t> cpu_ring(const GemmCase& g,
                               const std::vector<uint64_t>& a,
                               int64_t lda,
                               const std::vector<uint64_t>& b,
                               int64_t ldb,
                               int64_t ldc) {
  std::vector<uint64_t> c(static_cast<std::size_t>(g.m * ldc), 0);
  const int64_t a_rs = g.ta ? 1 : lda;
  const int64_t a_cs = g.ta ? lda : 1;
  const int64_t b_rs = g.tb ? 1 : ldb;
  const int64_t b_cs = g.tb ? ldb : 1;
  veil::kernels::cpu::ring_gemm(g.m, g.n, g.k, a.data(), a_rs, a_cs, b.data(), b_rs, b_cs, c.data(),
                                ldc, false);
  return c;
}

void check_ring_case(const GemmCase& g, cuda::RingGemmAlgo algo, std::mt19937_64& rng) {
  CAPTURE(g.m, g.n, g.k, g.ta, g.tb, g.pad, static_cast<int>(algo));
  const int64_t lda = (g.ta ? g.m : g.k) + g.pad;
  const int64_t ldb = (g.tb ? g.k : g.n) + g.pad;
  const int64_t ldc = g.n + g.pad;
  const int64_t a_rows = g.ta ? g.k : g.m;
  const int64_t b_rows = g.tb ? g.n : g.k;
  const auto a = random_ring(a_rows * lda, rng);
  const auto b = random_ring(b_rows * ldb, rng);
  const auto c0 = random_ring(g.m * ldc, rng);  // junk that must be overwritten (not padding)
  const DeviceVec<uint64_t> da(a);
  const DeviceVec<uint64_t> db(b);
  const DeviceVec<uint64_t> dc(c0);
  cuda::ring_gemm_ex(algo, g.m, g.n, g.k, da.get(), lda, g.ta, db.get(), ldb, g.tb, dc.get(), ldc,
                     0);
  const auto got = dc.to_host();
  const auto want = cpu_ring(g, a, lda, b, ldb, ldc);
  int64_t mismatches = 0;
  for (int64_t i = 0; i < g.m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const auto at = static_cast<std::size_t>(i * ldc + j);
      // outputs must match; the padding columns of C must be untouched
      const uint64_t expect = j < g.n ? want[at] : c0[at];
      mismatches += got[at] != expect ? 1 : 0;
    }
  }
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("GPU GEMMs without CUDA are explicit stubs that name the way out", "[kernels][cuda]") {
  if (cuda::compiled()) {
    if (cuda::device_count() == 0) {
      std::puts("note: CUDA compiled in, no CUDA device visible");
    }
    CHECK(cuda::device_count() >= 0);
    return;
  }
  // GIVEN a build without CUDA
  CHECK(cuda::device_count() == 0);
  // WHEN a GPU GEMM is asked for THEN NotCompiledError names the op and the CMake option
  REQUIRE_THROWS_MATCHES(cuda::ring_gemm(1, 1, 1, nullptr, nullptr, nullptr),
                         veil::NotCompiledError,
                         Catch::Matchers::Predicate<veil::NotCompiledError>([](const auto& e) {
                           const std::string w = e.what();
                           return w.find("[cuda::ring_gemm]") != std::string::npos &&
                                  w.find("-DVEIL_WITH_CUDA=ON") != std::string::npos;
                         }));
  REQUIRE_THROWS_WITH(cuda::ring_gemm_ex(cuda::RingGemmAlgo::kSimt, 1, 1, 1, nullptr, 1, false,
                                         nullptr, 1, false, nullptr, 1, 0),
                      Contains("[cuda::ring_gemm]") && Contains("-DVEIL_WITH_CUDA=ON"));
  REQUIRE_THROWS_WITH(
      cuda::float_gemm(0, false, 1, 1, 1, nullptr, 1, false, nullptr, 1, false, nullptr, 1, 0),
      Contains("[cuda::float_gemm]") && Contains("-DVEIL_WITH_CUDA=ON"));
}

TEST_CASE("ring_gemm_ex rejects bad sizes before touching the device", "[kernels][cuda]") {
  // Both builds: the stub throws NotCompiledError, the CUDA build veil::Error; both name the op.
  REQUIRE_THROWS_AS(cuda::ring_gemm_ex(cuda::RingGemmAlgo::kTensorCore, -1, 2, 2, nullptr, 2, false,
                                       nullptr, 2, false, nullptr, 2, 0),
                    veil::Error);
  REQUIRE_THROWS_WITH(cuda::ring_gemm_ex(cuda::RingGemmAlgo::kTensorCore, 2, 2, 2, nullptr, 1,
                                         false, nullptr, 2, false, nullptr, 2, 0),
                      Contains("[cuda::ring_gemm]"));
  REQUIRE_THROWS_WITH(
      cuda::float_gemm(7, false, 1, 1, 1, nullptr, 1, false, nullptr, 1, false, nullptr, 1, 0),
      Contains("[cuda::float_gemm]"));
}

TEST_CASE("tensor-core and SIMT ring GEMMs equal the CPU ring GEMM bit for bit",
          "[kernels][cuda][ring_gemm]") {
  if (no_device()) {
    return;
  }
  std::mt19937_64 rng(404);
  const std::vector<GemmCase> cases = {
      {1, 1, 1, false, false, 0},      {3, 5, 7, false, false, 0},
      {0, 4, 3, false, false, 0},      {4, 0, 3, false, false, 0},
      {4, 3, 0, false, false, 0},      {4, 3, 0, false, false, 2},
      {65, 33, 17, false, false, 0},   {64, 64, 64, false, false, 0},
      {129, 70, 200, false, false, 3}, {37, 19, 45, true, false, 0},
      {37, 19, 45, false, true, 1},    {37, 19, 45, true, true, 2},
      {2, 3, 70000, false, false, 0},  {5, 2, 70001, true, true, 0},
      {3, 4, 8193, false, true, 0},
  };
  for (const auto algo : {cuda::RingGemmAlgo::kTensorCore, cuda::RingGemmAlgo::kSimt}) {
    for (const GemmCase& g : cases) {
      check_ring_case(g, algo, rng);
    }
  }
  cuda::synchronize(0);
}

TEST_CASE("ring_gemm (contiguous, tensor cores) and the float64-limb GEMM match the CPU",
          "[kernels][cuda][ring_gemm]") {
  if (no_device()) {
    return;
  }
  std::mt19937_64 rng(405);
  const int64_t m = 33;
  const int64_t n = 21;
  const int64_t k = 300;
  const auto a = random_ring(m * k, rng);
  const auto b = random_ring(k * n, rng);
  const DeviceVec<uint64_t> da(a);
  const DeviceVec<uint64_t> db(b);
  const DeviceVec<uint64_t> dc(static_cast<std::size_t>(m * n));
  const DeviceVec<uint64_t> dl(static_cast<std::size_t>(m * n));
  cuda::ring_gemm(m, n, k, da.get(), db.get(), dc.get());
  cuda::limb_f64_ring_gemm(m, n, k, da.get(), db.get(), dl.get(), 0);
  const GemmCase g{m, n, k, false, false, 0};
  const auto want = cpu_ring(g, a, k, b, n, n);
  CHECK(dc.to_host() == want);
  CHECK(dl.to_host() == want);
  const auto times =
      cuda::time_gpu_ms(0, 1, 2, [&] { cuda::ring_gemm(m, n, k, da.get(), db.get(), dc.get()); });
  CHECK(times.size() == 2);
  CHECK(times[0] >= 0.0);
}

TEST_CASE("float_gemm (cuBLAS, row-major) matches a float64 loop", "[kernels][cuda][float_gemm]") {
  if (no_device()) {
    return;
  }
  std::mt19937_64 rng(406);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  struct FCase {
    int64_t m, n, k;
    bool ta, tb;
  };
  for (const FCase& f : {FCase{1, 1, 1, false, false}, FCase{17, 9, 33, false, false},
                         FCase{17, 9, 33, true, false}, FCase{17, 9, 33, false, true},
                         FCase{8, 12, 70, true, true}, FCase{5, 4, 0, false, false}}) {
    for (const int elem : {0, 1}) {
      for (const bool tf32 : {false, true}) {
        if (elem == 1 && tf32) {
          continue;
        }
        CAPTURE(f.m, f.n, f.k, f.ta, f.tb, elem, tf32);
        const int64_t lda = f.ta ? f.m : f.k;
        const int64_t ldb = f.tb ? f.k : f.n;
        std::vector<double> a(static_cast<std::size_t>(f.m * f.k));
        std::vector<double> b(static_cast<std::size_t>(f.k * f.n));
        for (auto& x : a) {
          x = dist(rng);
        }
        for (auto& x : b) {
          x = dist(rng);
        }
        std::vector<double> want(static_cast<std::size_t>(f.m * f.n), 0.0);
        for (int64_t i = 0; i < f.m; ++i) {
          for (int64_t j = 0; j < f.n; ++j) {
            double s = 0;
            for (int64_t p = 0; p < f.k; ++p) {
              const double av = a[static_cast<std::size_t>(f.ta ? p * lda + i : i * lda + p)];
              const double bv = b[static_cast<std::size_t>(f.tb ? j * ldb + p : p * ldb + j)];
              s += av * bv;
            }
            want[static_cast<std::size_t>(i * f.n + j)] = s;
          }
        }
        std::vector<double> got(want.size());
        if (elem == 1) {
          const DeviceVec<double> da(a);
          const DeviceVec<double> db(b);
          const DeviceVec<double> dc(std::vector<double>(want.size(), 7.0));
          cuda::float_gemm(1, false, f.m, f.n, f.k, da.get(), lda, f.ta, db.get(), ldb, f.tb,
                           dc.get(), f.n, 0);
          got = dc.to_host();
        } else {
          const std::vector<float> af(a.begin(), a.end());
          const std::vector<float> bf(b.begin(), b.end());
          const DeviceVec<float> da(af);
          const DeviceVec<float> db(bf);
          const DeviceVec<float> dc(std::vector<float>(want.size(), 7.0f));
          cuda::float_gemm(0, tf32, f.m, f.n, f.k, da.get(), lda, f.ta, db.get(), ldb, f.tb,
                           dc.get(), f.n, 0);
          const auto gf = dc.to_host();
          got.assign(gf.begin(), gf.end());
        }
        // float64: k eps; float32: inputs rounded to 2^-24 plus k eps32; TF32: 10-bit mantissa.
        const double eps = elem == 1 ? 1e-15 : (tf32 ? 1e-3 : 1e-6);
        const double tol = 4.0 * (static_cast<double>(f.k) + 1.0) * eps;
        double worst = 0;
        for (std::size_t i = 0; i < want.size(); ++i) {
          worst = std::max(worst, std::abs(got[i] - want[i]));
        }
        CHECK(worst <= tol);
      }
    }
  }
}
