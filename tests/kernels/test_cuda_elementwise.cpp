// The CUDA elementwise backend (kernels/cuda_backend.h without ring_gemm).
//
// 1. Per-element logic (kernels/cuda/elementwise_ops.h, the VEIL_HD functions the kernels run) on
//    the CPU against independent formulas: 128-bit products, floor division, llround, the CPU
//    fixed-point encoder, odometer walks of strided layouts, plaintext Beaver products.
// 2. The build's behaviour without a device: NotCompiledError naming VEIL_WITH_CUDA (no CUDA) or
//    CudaError "[cuda::...]" (CUDA compiled, no GPU).
// 3. GPU kernels against CPU references on random inputs (odd sizes, empty, strided, broadcast,
//    misaligned); skipped with "SKIPPED: no CUDA device" where no GPU is visible.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include "crypto/fixed_point.h"
#include "kernels/cuda/elementwise_ops.h"
#include "kernels/cuda_backend.h"
#include "kernels/error.h"

namespace {

namespace cuda = veil::kernels::cuda;
namespace ops = veil::kernels::cuda::ops;
using cuda::BinaryOp;
using cuda::Elem;
using cuda::Layout;
using cuda::ReduceOp;
using cuda::UnaryOp;
using cuda::UnaryParams;

__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 i128;

constexpr uint64_t kNonZero = 0x9e3779b97f4a7c15ULL;

uint64_t nonzero(uint64_t v) {
  return v == 0 ? kNonZero : v;
}

template <class T>
constexpr Elem elem_of() {
  if constexpr (std::is_same_v<T, float>) {
    return Elem::kF32;
  } else if constexpr (std::is_same_v<T, double>) {
    return Elem::kF64;
  } else if constexpr (std::is_same_v<T, int64_t>) {
    return Elem::kI64;
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    return Elem::kU64;
  } else {
    return Elem::kU8;
  }
}

// Random non-zero values: full 64-bit patterns for integers, 1..255 for uint8, +-[0.1, 4) floats.
template <class T>
std::vector<T> random_values(std::size_t n, std::mt19937_64& rng) {
  std::vector<T> v(n);
  for (auto& x : v) {
    if constexpr (std::is_floating_point_v<T>) {
      std::uniform_real_distribution<double> mag(0.1, 4.0);
      const double m = mag(rng);
      x = static_cast<T>((rng() & 1U) != 0 ? m : -m);
    } else if constexpr (std::is_same_v<T, uint8_t>) {
      x = static_cast<uint8_t>(1 + rng() % 255);
    } else {
      x = static_cast<T>(nonzero(rng()));
    }
  }
  return v;
}

Layout make_layout(std::vector<int64_t> shape, std::vector<int64_t> stride, int64_t offset) {
  Layout l;
  l.ndim = static_cast<int>(shape.size());
  for (std::size_t d = 0; d < shape.size(); ++d) {
    l.shape[d] = shape[d];
    l.stride[d] = stride[d];
  }
  l.offset = offset;
  return l;
}

Layout dense_layout(int64_t n) {
  return make_layout({n}, {1}, 0);
}

// Row-major offsets of every element of l, by an odometer over the multi-index (no division).
std::vector<int64_t> odometer_offsets(const Layout& l) {
  int64_t n = 1;
  for (int d = 0; d < l.ndim; ++d) {
    n *= l.shape[d];
  }
  std::vector<int64_t> out;
  out.reserve(static_cast<std::size_t>(n));
  std::vector<int64_t> idx(static_cast<std::size_t>(l.ndim), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = l.offset;
    for (int d = 0; d < l.ndim; ++d) {
      off += idx[static_cast<std::size_t>(d)] * l.stride[d];
    }
    out.push_back(off);
    for (int d = l.ndim - 1; d >= 0; --d) {
      auto& v = idx[static_cast<std::size_t>(d)];
      if (++v < l.shape[d]) {
        break;
      }
      v = 0;
    }
  }
  return out;
}

// floor(x / 2^bits) for int64 x (the arithmetic shift), via 128-bit division.
int64_t floor_div_pow2(int64_t x, int bits) {
  const i128 p = static_cast<i128>(1) << bits;
  i128 q = static_cast<i128>(x) / p;
  if (static_cast<i128>(x) % p != 0 && x < 0) {
    q -= 1;
  }
  return static_cast<int64_t>(q);
}

// ---- 1. per-element logic on the CPU ------------------------------------------------------------

TEST_CASE("cuda ops: ring and int64 binary elements match 128-bit arithmetic",
          "[kernels][cuda][cpu]") {
  std::mt19937_64 rng(11);
  for (int it = 0; it < 2000; ++it) {
    const uint64_t x = nonzero(rng());
    const uint64_t y = nonzero(rng());
    CHECK(ops::binary_elem<uint64_t>(BinaryOp::kAdd, x, y) ==
          static_cast<uint64_t>((static_cast<u128>(x) + y) % (static_cast<u128>(1) << 64)));
    CHECK(ops::binary_elem<uint64_t>(BinaryOp::kSub, x, y) ==
          static_cast<uint64_t>((static_cast<u128>(1) << 64) + x - y));
    CHECK(ops::binary_elem<uint64_t>(BinaryOp::kMul, x, y) ==
          static_cast<uint64_t>(static_cast<u128>(x) * y));
    const auto sx = static_cast<int64_t>(x);
    const auto sy = static_cast<int64_t>(y);
    const i128 prod = static_cast<i128>(sx) * sy;
    CHECK(static_cast<uint64_t>(ops::binary_elem<int64_t>(BinaryOp::kMul, sx, sy)) ==
          static_cast<uint64_t>(static_cast<u128>(prod)));
    CHECK(static_cast<uint64_t>(ops::binary_elem<int64_t>(BinaryOp::kAdd, sx, sy)) ==
          static_cast<uint64_t>(static_cast<u128>(static_cast<i128>(sx) + sy)));
    CHECK(ops::binary_elem<uint64_t>(BinaryOp::kXor, x, y) == ((x | y) & ~(x & y)));
    CHECK(ops::binary_elem<uint64_t>(BinaryOp::kAnd, x, y) == (x & y));
    CHECK(ops::binary_elem<uint64_t>(BinaryOp::kOr, x, y) == (x | y));
    const auto bx = static_cast<uint8_t>(x);
    const auto by = static_cast<uint8_t>(y);
    CHECK(ops::binary_elem<uint8_t>(BinaryOp::kXor, bx, by) == static_cast<uint8_t>(bx ^ by));
  }
  const double a = 1.75;
  const double b = -0.3;
  CHECK(ops::binary_elem<double>(BinaryOp::kDiv, a, b) == a / b);
  CHECK(ops::binary_elem<float>(BinaryOp::kSub, 1.5F, 0.25F) == 1.25F);
}

TEST_CASE("cuda ops: unary elements match explicit formulas", "[kernels][cuda][cpu]") {
  std::mt19937_64 rng(12);
  for (int it = 0; it < 2000; ++it) {
    const uint64_t x = nonzero(rng());
    UnaryParams p;
    p.bits = static_cast<int>(rng() % 64);
    p.scalar_bits = nonzero(rng());
    const u128 two64 = static_cast<u128>(1) << 64;
    CHECK(ops::unary_elem<uint64_t>(UnaryOp::kNeg, x, p) == static_cast<uint64_t>(two64 - x));
    CHECK(ops::unary_elem<uint64_t>(UnaryOp::kNot, x, p) == UINT64_MAX - x);
    CHECK(ops::unary_elem<uint64_t>(UnaryOp::kShl, x, p) ==
          static_cast<uint64_t>((static_cast<u128>(x) << p.bits) % two64));
    CHECK(ops::unary_elem<uint64_t>(UnaryOp::kShrLogical, x, p) ==
          static_cast<uint64_t>(static_cast<u128>(x) / (static_cast<u128>(1) << p.bits)));
    CHECK(ops::unary_elem<uint64_t>(UnaryOp::kShrArith, x, p) ==
          static_cast<uint64_t>(floor_div_pow2(static_cast<int64_t>(x), p.bits)));
    CHECK(ops::unary_elem<uint64_t>(UnaryOp::kAddScalar, x, p) ==
          static_cast<uint64_t>((static_cast<u128>(x) + p.scalar_bits) % two64));
    CHECK(ops::unary_elem<uint64_t>(UnaryOp::kMulScalar, x, p) ==
          static_cast<uint64_t>(static_cast<u128>(x) * p.scalar_bits));
    const auto sx = static_cast<int64_t>(x);
    CHECK(ops::unary_elem<int64_t>(UnaryOp::kShrArith, sx, p) == floor_div_pow2(sx, p.bits));
  }
  UnaryParams p;
  p.scalar = 0.1;
  CHECK(ops::unary_elem<uint8_t>(UnaryOp::kNot, uint8_t{1}, p) == 0);
  CHECK(ops::unary_elem<uint8_t>(UnaryOp::kNot, uint8_t{0}, p) == 1);
  CHECK(ops::unary_elem<float>(UnaryOp::kAddScalar, 1.0F, p) ==
        static_cast<float>(1.0 + 0.1));  // applied in double, rounded once
  CHECK(ops::unary_elem<double>(UnaryOp::kMulScalar, 3.0, p) == 3.0 * 0.1);
  CHECK(ops::unary_elem<double>(UnaryOp::kExp, 0.7, p) == std::exp(0.7));
  CHECK(ops::unary_elem<float>(UnaryOp::kLog, 2.5F, p) == std::log(2.5F));
  CHECK(ops::unary_elem<double>(UnaryOp::kRelu, -2.0, p) == 0.0);
  CHECK(ops::unary_elem<double>(UnaryOp::kRelu, 2.0, p) == 2.0);
  CHECK(ops::unary_elem<float>(UnaryOp::kStep, 0.0F, p) == 0.0F);
  CHECK(ops::unary_elem<float>(UnaryOp::kStep, 1e-30F, p) == 1.0F);
  CHECK(!std::signbit(ops::unary_elem<double>(UnaryOp::kNeg, 0.0, p)));  // 0 - x, as core::neg
  CHECK(ops::unary_elem<double>(UnaryOp::kNeg, 1.5, p) == -1.5);
}

TEST_CASE("cuda ops: supported (op, type) tables follow core's dtype dispatch",
          "[kernels][cuda][cpu]") {
  CHECK(ops::binary_supported(BinaryOp::kDiv, Elem::kF32));
  CHECK_FALSE(ops::binary_supported(BinaryOp::kDiv, Elem::kU64));
  CHECK_FALSE(ops::binary_supported(BinaryOp::kXor, Elem::kF64));
  CHECK_FALSE(ops::binary_supported(BinaryOp::kAdd, Elem::kU8));
  CHECK(ops::binary_supported(BinaryOp::kAnd, Elem::kU8));
  CHECK(ops::unary_supported(UnaryOp::kShrArith, Elem::kU64));
  CHECK_FALSE(ops::unary_supported(UnaryOp::kShl, Elem::kF32));
  CHECK_FALSE(ops::unary_supported(UnaryOp::kExp, Elem::kU64));
  CHECK(ops::unary_supported(UnaryOp::kNot, Elem::kU8));
  CHECK_FALSE(ops::reduce_supported(ReduceOp::kSum, Elem::kU8));
  CHECK(ops::greater<uint64_t>(1, UINT64_MAX));  // 1 > -1 as int64
  CHECK_FALSE(ops::greater<uint64_t>(uint64_t{1} << 63, 0));
}

TEST_CASE("cuda ops: casts follow Tensor::to", "[kernels][cuda][cpu]") {
  std::mt19937_64 rng(13);
  for (int it = 0; it < 1000; ++it) {
    const uint64_t r = nonzero(rng());
    // ring -> float through the signed value: -(2^64 - r) for r >= 2^63
    const double signed_r = r >= (uint64_t{1} << 63) ? -static_cast<double>(UINT64_MAX - r + 1)
                                                     : static_cast<double>(r);
    CHECK(ops::cast_elem<double, uint64_t>(r) == signed_r);
    const float signed_f = r >= (uint64_t{1} << 63) ? -static_cast<float>(UINT64_MAX - r + 1)
                                                    : static_cast<float>(r);  // one rounding
    CHECK(ops::cast_elem<float, uint64_t>(r) == signed_f);
    int64_t as_int = 0;
    std::memcpy(&as_int, &r, sizeof r);
    CHECK(ops::cast_elem<int64_t, uint64_t>(r) == as_int);
    CHECK(ops::cast_elem<uint64_t, int64_t>(as_int) == r);
    CHECK(ops::cast_elem<uint8_t, uint64_t>(r) == static_cast<uint8_t>(r % 256));
    std::uniform_real_distribution<double> dist(-1e6, 1e6);
    const double f = dist(rng);
    const double t = std::trunc(f);
    CHECK(static_cast<double>(ops::cast_elem<int64_t, double>(f)) == t);
    CHECK(ops::cast_elem<uint64_t, double>(f) ==
          (t < 0 ? UINT64_MAX - static_cast<uint64_t>(-t) + 1 : static_cast<uint64_t>(t)));
    CHECK(ops::cast_elem<float, double>(f) == static_cast<float>(f));
    const double small = std::fabs(f) / 1e6 * 255.0;
    CHECK(ops::cast_elem<uint8_t, double>(small) == static_cast<uint8_t>(std::trunc(small)));
  }
}

TEST_CASE("cuda ops: fixed-point encode/decode match llround and the CPU encoder",
          "[kernels][cuda][cpu]") {
  std::mt19937_64 rng(14);
  for (const int f : {0, 8, 16, 24}) {
    const veil::crypto::FixedPointEncoder enc(f);
    const double scale = std::ldexp(1.0, f);
    std::uniform_real_distribution<double> dist(-1000.0, 1000.0);
    std::vector<double> xs;
    for (int i = 0; i < 1000; ++i) {
      xs.push_back(dist(rng));
    }
    for (const double half : {0.5, 1.5, 2.5, -0.5, -2.5, 1e6 + 0.5}) {
      xs.push_back(std::ldexp(half, -f));  // exact ties at this scale
    }
    for (const double x : xs) {
      const uint64_t v = ops::encode_elem(x, scale);
      CHECK(static_cast<int64_t>(v) == std::llround(std::ldexp(x, f)));
      CHECK(v == enc.encode_scalar(x));
      CHECK(ops::decode_elem(v, std::ldexp(1.0, -f)) == enc.decode_scalar(v));
      const auto xf = static_cast<float>(x);  // float inputs widen to double first
      CHECK(static_cast<int64_t>(ops::encode_elem(static_cast<double>(xf), scale)) ==
            std::llround(std::ldexp(static_cast<double>(xf), f)));
    }
  }
}

TEST_CASE("cuda ops: Beaver output reconstructs x*y and truncates within one unit",
          "[kernels][cuda][cpu]") {
  std::mt19937_64 rng(15);
  const int f = 16;
  const veil::crypto::FixedPointEncoder enc(f);
  std::uniform_real_distribution<double> dist(-100.0, 100.0);
  for (int it = 0; it < 2000; ++it) {
    const double xr = dist(rng);
    const double yr = dist(rng);
    const uint64_t x = enc.encode_scalar(xr);
    const uint64_t y = enc.encode_scalar(yr);
    for (const int parties : {2, 3}) {
      // triple (a, b, c = a b) and shares of x, y, a, b, c over `parties` parties
      const uint64_t a = nonzero(rng());
      const uint64_t b = nonzero(rng());
      const auto c = static_cast<uint64_t>(static_cast<u128>(a) * b);
      auto split = [&](uint64_t v) {
        std::vector<uint64_t> s(static_cast<std::size_t>(parties));
        uint64_t acc = 0;
        for (int i = 1; i < parties; ++i) {
          s[static_cast<std::size_t>(i)] = rng();
          acc += s[static_cast<std::size_t>(i)];
        }
        s[0] = v - acc;
        return s;
      };
      const auto xs = split(x);
      const auto ys = split(y);
      const auto as = split(a);
      const auto bs = split(b);
      const auto cs = split(c);
      uint64_t e = 0;
      uint64_t d = 0;
      for (std::size_t i = 0; i < xs.size(); ++i) {
        e += ops::mask_elem(xs[i], as[i]);
        d += ops::mask_elem(ys[i], bs[i]);
      }
      uint64_t z = 0;
      for (std::size_t i = 0; i < xs.size(); ++i) {
        z += ops::beaver_elem(i == 0, e, d, as[i], bs[i], cs[i], 0);
      }
      const auto xy = static_cast<uint64_t>(static_cast<u128>(x) * y);
      CHECK(z == xy);
      if (parties == 2) {
        const uint64_t zt = ops::beaver_elem(true, e, d, as[0], bs[0], cs[0], f) +
                            ops::beaver_elem(false, e, d, as[1], bs[1], cs[1], f);
        const int64_t want = floor_div_pow2(static_cast<int64_t>(xy), f);
        const int64_t got = static_cast<int64_t>(zt);
        CHECK(std::llabs(got - want) <= 1);
        // encoding errors (2^-(f+1) per operand, times the other) plus the truncation's unit
        CHECK(std::fabs(enc.decode_scalar(zt) - xr * yr) <=
              (std::fabs(xr) + std::fabs(yr) + 2.0) * std::ldexp(1.0, -f));
      }
    }
  }
  // trunc_bits == 0 leaves z untouched, party 1's truncation is -((-z) >> bits)
  CHECK(ops::trunc2_elem(false, 5, 0) == 5);
  const uint64_t z = uint64_t{0} - 12345;
  CHECK(ops::trunc2_elem(false, z, 4) ==
        uint64_t{0} - static_cast<uint64_t>(floor_div_pow2(12345, 4)));
  CHECK(ops::trunc2_elem(true, z, 4) == static_cast<uint64_t>(floor_div_pow2(-12345, 4)));
}

TEST_CASE("cuda ops: layout offsets and coalescing match an odometer walk",
          "[kernels][cuda][cpu]") {
  std::mt19937_64 rng(16);
  for (int it = 0; it < 300; ++it) {
    const int nd = static_cast<int>(rng() % 6);
    std::vector<int64_t> shape;
    for (int d = 0; d < nd; ++d) {
      shape.push_back(static_cast<int64_t>(1 + rng() % 4));
    }
    // a: row-major of a random permutation-ish; b: some broadcast (stride 0) dims
    std::vector<int64_t> sa(shape.size());
    std::vector<int64_t> sb(shape.size());
    int64_t acc = 1;
    for (int d = nd - 1; d >= 0; --d) {
      const auto du = static_cast<std::size_t>(d);
      sa[du] = (rng() % 3 == 0) ? acc * 2 : acc;  // occasionally a gap
      acc = sa[du] * shape[du];
      sb[du] = (rng() % 2 == 0) ? 0 : static_cast<int64_t>(1 + rng() % 5);
    }
    const Layout la = make_layout(shape, sa, static_cast<int64_t>(rng() % 7));
    const Layout lb = make_layout(shape, sb, 3);
    const auto wa = odometer_offsets(la);
    const auto wb = odometer_offsets(lb);
    Layout both[2] = {la, lb};
    ops::coalesce(both, 2);
    CHECK(both[0].ndim <= la.ndim);
    CHECK(ops::layout_numel(both[0]) == ops::layout_numel(la));
    for (std::size_t i = 0; i < wa.size(); ++i) {
      const auto ii = static_cast<int64_t>(i);
      CHECK(ops::layout_offset(la, ii) == wa[i]);
      CHECK(ops::layout_offset(both[0], ii) == wa[i]);
      int64_t oa = 0;
      int64_t ob = 0;
      ops::layout_offset2(both[0], both[1], ii, oa, ob);
      CHECK(oa == wa[i]);
      CHECK(ob == wb[i]);
    }
  }
  // a row-major [3, 4, 5] view coalesces to one dense dimension; its transpose does not
  Layout rm = make_layout({3, 4, 5}, {20, 5, 1}, 0);
  ops::coalesce(&rm, 1);
  CHECK(ops::is_dense(rm));
  Layout tr = make_layout({5, 4}, {1, 5}, 0);
  ops::coalesce(&tr, 1);
  CHECK_FALSE(ops::is_dense(tr));
  Layout ones = make_layout({1, 1}, {7, 9}, 2);
  ops::coalesce(&ones, 1);
  CHECK(ops::is_dense(ones));
  CHECK(ops::layout_offset(ones, 0) == 2);
}

// ---- 2. builds without a device -----------------------------------------------------------------

// Calls every backend entry point except the device query with harmless arguments (n = 1).
std::vector<std::pair<const char*, std::function<void()>>> every_entry_point() {
  static uint64_t host[4] = {1, 2, 3, 4};
  void* p = host;
  auto* u = host;
  const Layout l = dense_layout(1);
  return {
      {"device_info",
       [] {
         (void)cuda::device_info(0);
       }},
      {"synchronize",
       [] {
         cuda::synchronize(0);
       }},
      {"device_alloc",
       [] {
         (void)cuda::device_alloc(64, 0);
       }},
      {"pinned_alloc",
       [] {
         (void)cuda::pinned_alloc(64);
       }},
      {"copy_to_device",
       [=] {
         cuda::copy_to_device(p, p, 8, 0);
       }},
      {"copy_to_host",
       [=] {
         cuda::copy_to_host(p, p, 8, 0);
       }},
      {"copy_device_to_device",
       [=] {
         cuda::copy_device_to_device(p, p, 8, 0);
       }},
      {"zero",
       [=] {
         cuda::zero(p, 8, 0);
       }},
      {"memory_stats",
       [] {
         (void)cuda::memory_stats(0);
       }},
      {"binary",
       [=] {
         cuda::binary(BinaryOp::kAdd, Elem::kU64, 1, p, l, p, l, p, 0);
       }},
      {"unary",
       [=] {
         cuda::unary(UnaryOp::kNeg, Elem::kU64, 1, p, l, p, UnaryParams{}, 0);
       }},
      {"copy_strided",
       [=] {
         cuda::copy_strided(Elem::kU64, 1, p, l, p, 0);
       }},
      {"cast",
       [=] {
         cuda::cast(Elem::kU64, Elem::kF64, 1, p, p, 0);
       }},
      {"fill",
       [=] {
         cuda::fill(Elem::kU64, 1, 7, p, 0);
       }},
      {"encode_fixed",
       [=] {
         cuda::encode_fixed(Elem::kF64, 1, p, 16, u, 0);
       }},
      {"decode_fixed",
       [=] {
         cuda::decode_fixed(1, u, 16, Elem::kF64, p, 0);
       }},
      {"reduce",
       [=] {
         cuda::reduce(ReduceOp::kSum, Elem::kU64, 1, 1, 1, p, p, 0);
       }},
      {"ring_mask",
       [=] {
         cuda::ring_mask(1, u, u, u, 0);
       }},
      {"beaver_output",
       [=] {
         cuda::beaver_output(1, true, u, u, u, u, u, 0, u, 0);
       }},
  };
}

TEST_CASE("cuda backend without a device fails with a named error, never a crash",
          "[kernels][cuda]") {
  if (cuda::compiled() && cuda::device_count() > 0) {
    return;  // covered by the GPU tests below
  }
  // GIVEN a build without CUDA, or with CUDA but no visible device
  CHECK(cuda::device_count() == 0);
  for (const auto& [name, call] : every_entry_point()) {
    INFO(name);
    const std::string tag = std::string("[cuda::") + name + "]";
    if (!cuda::compiled()) {
      // THEN every entry point throws NotCompiledError naming itself and the CMake option
      try {
        call();
        FAIL("expected NotCompiledError");
      } catch (const veil::NotCompiledError& e) {
        const std::string what = e.what();
        CHECK(what.find(tag) != std::string::npos);
        CHECK(what.find("VEIL_WITH_CUDA") != std::string::npos);
      }
    } else {
      // THEN every entry point throws CudaError "[cuda::<op>] ..."
      try {
        call();
        FAIL("expected CudaError");
      } catch (const cuda::CudaError& e) {
        const std::string what = e.what();
        CHECK(what.find(tag) != std::string::npos);
      }
    }
  }
  // freeing null or with no device is a no-op, and empty requests need no device
  cuda::device_free(nullptr, 0);
  cuda::pinned_free(nullptr);
  if (cuda::compiled()) {
    CHECK(cuda::device_alloc(0, 0) == nullptr);
  }
}

TEST_CASE("cuda backend rejects undefined (op, type) pairs before touching the device",
          "[kernels][cuda]") {
  if (!cuda::compiled()) {
    return;  // the stub reports NotCompiledError first
  }
  uint64_t host[2] = {1, 2};
  const Layout l = dense_layout(1);
  REQUIRE_THROWS_WITH(cuda::binary(BinaryOp::kDiv, Elem::kU64, 1, host, l, host, l, host, 0),
                      Catch::Contains("[cuda::binary]") && Catch::Contains("ring64"));
  REQUIRE_THROWS_WITH(cuda::unary(UnaryOp::kExp, Elem::kI64, 1, host, l, host, UnaryParams{}, 0),
                      Catch::Contains("[cuda::unary]") && Catch::Contains("int64"));
  UnaryParams p;
  p.bits = 64;
  REQUIRE_THROWS_WITH(cuda::unary(UnaryOp::kShl, Elem::kU64, 1, host, l, host, p, 0),
                      Catch::Contains("[cuda::unary]") && Catch::Contains("bits"));
  REQUIRE_THROWS_WITH(cuda::encode_fixed(Elem::kU64, 1, host, 16, host, 0),
                      Catch::Contains("[cuda::encode_fixed]"));
  REQUIRE_THROWS_WITH(cuda::beaver_output(1, true, host, host, host, host, host, 63, host, 0),
                      Catch::Contains("[cuda::beaver_output]"));
}

// ---- 3. GPU kernels against CPU references ------------------------------------------------------

bool no_device() {
  if (cuda::device_count() == 0) {
    std::puts("SKIPPED: no CUDA device");
    return true;
  }
  return false;
}

// Owned device memory on device 0.
class DevBuf {
 public:
  explicit DevBuf(std::size_t bytes) : p_(cuda::device_alloc(bytes, 0)) {}
  ~DevBuf() { cuda::device_free(p_, 0); }
  DevBuf(DevBuf&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf& operator=(DevBuf&&) = delete;
  void* get() const { return p_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_;
};

template <class T>
DevBuf upload(const std::vector<T>& v) {
  DevBuf b(std::max<std::size_t>(v.size(), 1) * sizeof(T));
  cuda::copy_to_device(b.get(), v.data(), v.size() * sizeof(T), 0);
  return b;
}

template <class T>
std::vector<T> download(const DevBuf& b, std::size_t n) {
  std::vector<T> v(n);
  cuda::copy_to_host(v.data(), b.get(), n * sizeof(T), 0);
  return v;
}

// Output buffer pre-filled with a sentinel, so unwritten elements show.
template <class T>
DevBuf sentinel_out(std::size_t n) {
  std::vector<T> s(n);
  std::memset(s.data(), 0xA5, n * sizeof(T));
  return upload(s);
}

const std::vector<int64_t> kSizes = {0, 1, 7, 1000003};

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Strided cases over a [37, 53] logical shape (n = 1961): transposed, broadcast, sliced.
struct StridedCase {
  const char* name;
  Layout la;
  Layout lb;
  int64_t a_len;  // buffer elements needed
  int64_t b_len;
};

std::vector<StridedCase> strided_cases() {
  return {
      {"transposed a, dense b", make_layout({37, 53}, {1, 37}, 0),
       make_layout({37, 53}, {53, 1}, 0), 37 * 53, 37 * 53},
      {"row broadcast b", make_layout({37, 53}, {53, 1}, 0), make_layout({37, 53}, {0, 1}, 0),
       37 * 53, 53},
      {"scalar broadcast b, offset a", make_layout({37, 53}, {53, 1}, 5),
       make_layout({37, 53}, {0, 0}, 2), 37 * 53 + 5, 3},
      {"sliced a (step 2), column broadcast b", make_layout({37, 53}, {212, 2}, 1),
       make_layout({37, 53}, {1, 0}, 0), 37 * 212 + 1, 37},
      {"misaligned dense (offset 1)", make_layout({37, 53}, {53, 1}, 1),
       make_layout({37, 53}, {53, 1}, 1), 37 * 53 + 1, 37 * 53 + 1},
  };
}

template <class T>
std::vector<BinaryOp> binary_ops() {
  std::vector<BinaryOp> out;
  for (const BinaryOp op : {BinaryOp::kAdd, BinaryOp::kSub, BinaryOp::kMul, BinaryOp::kDiv,
                            BinaryOp::kXor, BinaryOp::kAnd, BinaryOp::kOr}) {
    if (ops::binary_supported(op, elem_of<T>())) {
      out.push_back(op);
    }
  }
  return out;
}

// Independent reference of one binary element (plain C++ on the natural types).
template <class T>
T binary_reference(BinaryOp op, T x, T y) {
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case BinaryOp::kAdd:
        return x + y;
      case BinaryOp::kSub:
        return x - y;
      case BinaryOp::kMul:
        return x * y;
      default:
        return x / y;
    }
  } else {
    const auto ux = static_cast<uint64_t>(x);
    const auto uy = static_cast<uint64_t>(y);
    switch (op) {
      case BinaryOp::kAdd:
        return static_cast<T>(ux + uy);
      case BinaryOp::kSub:
        return static_cast<T>(ux - uy);
      case BinaryOp::kMul:
        return static_cast<T>(static_cast<u128>(ux) * uy);
      case BinaryOp::kXor:
        return static_cast<T>(ux ^ uy);
      case BinaryOp::kAnd:
        return static_cast<T>(ux & uy);
      default:
        return static_cast<T>(ux | uy);
    }
  }
}

template <class T>
void check_binary_type() {
  std::mt19937_64 rng(100 + static_cast<uint64_t>(elem_of<T>()));
  const Elem t = elem_of<T>();
  for (const BinaryOp op : binary_ops<T>()) {
    for (const int64_t n : kSizes) {
      INFO("elem " << static_cast<int>(t) << " op " << static_cast<int>(op) << " n " << n);
      const auto un = static_cast<std::size_t>(n);
      const auto a = random_values<T>(un, rng);
      const auto b = random_values<T>(un, rng);
      std::vector<T> want(un);
      for (std::size_t i = 0; i < un; ++i) {
        want[i] = binary_reference(op, a[i], b[i]);
      }
      const DevBuf da = upload(a);
      const DevBuf db = upload(b);
      const DevBuf dout = sentinel_out<T>(un);
      cuda::binary(op, t, n, da.get(), dense_layout(n), db.get(), dense_layout(n), dout.get(), 0);
      CHECK(same_bits(download<T>(dout, un), want));
    }
    for (const auto& sc : strided_cases()) {
      INFO("elem " << static_cast<int>(t) << " op " << static_cast<int>(op) << " " << sc.name);
      const auto a = random_values<T>(static_cast<std::size_t>(sc.a_len), rng);
      const auto b = random_values<T>(static_cast<std::size_t>(sc.b_len), rng);
      const auto oa = odometer_offsets(sc.la);
      const auto ob = odometer_offsets(sc.lb);
      std::vector<T> want(oa.size());
      for (std::size_t i = 0; i < oa.size(); ++i) {
        want[i] = binary_reference(op, a[static_cast<std::size_t>(oa[i])],
                                   b[static_cast<std::size_t>(ob[i])]);
      }
      const DevBuf da = upload(a);
      const DevBuf db = upload(b);
      const DevBuf dout = sentinel_out<T>(oa.size());
      cuda::binary(op, t, static_cast<int64_t>(oa.size()), da.get(), sc.la, db.get(), sc.lb,
                   dout.get(), 0);
      CHECK(same_bits(download<T>(dout, oa.size()), want));
    }
  }
}

TEST_CASE("cuda binary: every type and op, bit-exact vs CPU on dense, strided, broadcast views",
          "[kernels][cuda][gpu]") {
  if (no_device()) {
    return;
  }
  check_binary_type<uint64_t>();
  check_binary_type<int64_t>();
  check_binary_type<float>();
  check_binary_type<double>();
  check_binary_type<uint8_t>();
}

template <class T>
std::vector<UnaryOp> unary_ops() {
  std::vector<UnaryOp> out;
  for (const UnaryOp op : {UnaryOp::kNeg, UnaryOp::kNot, UnaryOp::kShl, UnaryOp::kShrArith,
                           UnaryOp::kShrLogical, UnaryOp::kAddScalar, UnaryOp::kMulScalar,
                           UnaryOp::kExp, UnaryOp::kLog, UnaryOp::kRelu, UnaryOp::kStep}) {
    if (ops::unary_supported(op, elem_of<T>())) {
      out.push_back(op);
    }
  }
  return out;
}

template <class T>
void check_unary_type() {
  std::mt19937_64 rng(200 + static_cast<uint64_t>(elem_of<T>()));
  const Elem t = elem_of<T>();
  UnaryParams p;
  p.bits = 13;
  p.scalar_bits = nonzero(rng());
  p.scalar = 0.3;
  for (const UnaryOp op : unary_ops<T>()) {
    const bool approx = op == UnaryOp::kExp || op == UnaryOp::kLog;  // libm vs CUDA math: ulps
    auto run = [&](std::vector<T> a, const Layout& la, int64_t n) {
      if constexpr (std::is_floating_point_v<T>) {
        if (op == UnaryOp::kLog) {
          for (auto& x : a) {
            x = std::fabs(x);  // log's domain
          }
        }
      }
      INFO("elem " << static_cast<int>(t) << " op " << static_cast<int>(op) << " n " << n);
      const auto offs = odometer_offsets(la);
      std::vector<T> want(offs.size());
      for (std::size_t i = 0; i < offs.size(); ++i) {
        want[i] = ops::unary_elem<T>(op, a[static_cast<std::size_t>(offs[i])], p);
      }
      const DevBuf da = upload(a);
      const DevBuf dout = sentinel_out<T>(offs.size());
      cuda::unary(op, t, n, da.get(), la, dout.get(), p, 0);
      const auto got = download<T>(dout, offs.size());
      if (approx) {
        for (std::size_t i = 0; i < got.size(); ++i) {
          const double tol = std::is_same_v<T, float> ? 4e-7 : 4e-16;
          CHECK(std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i])) <=
                tol * std::fabs(static_cast<double>(want[i])));
        }
      } else {
        CHECK(same_bits(got, want));
      }
    };
    for (const int64_t n : kSizes) {
      run(random_values<T>(static_cast<std::size_t>(n), rng), dense_layout(n), n);
    }
    for (const auto& sc : strided_cases()) {
      run(random_values<T>(static_cast<std::size_t>(sc.a_len), rng), sc.la, 37 * 53);
      run(random_values<T>(static_cast<std::size_t>(sc.b_len), rng), sc.lb, 37 * 53);
    }
  }
}

TEST_CASE("cuda unary: every type and op vs CPU (bit-exact except exp/log within ulps)",
          "[kernels][cuda][gpu]") {
  if (no_device()) {
    return;
  }
  check_unary_type<uint64_t>();
  check_unary_type<int64_t>();
  check_unary_type<float>();
  check_unary_type<double>();
  check_unary_type<uint8_t>();
}

template <class T>
void check_copy_strided_type() {
  std::mt19937_64 rng(300 + static_cast<uint64_t>(elem_of<T>()));
  for (const auto& sc : strided_cases()) {
    for (const auto& [l, len] : {std::pair{sc.la, sc.a_len}, std::pair{sc.lb, sc.b_len}}) {
      const auto a = random_values<T>(static_cast<std::size_t>(len), rng);
      const auto offs = odometer_offsets(l);
      std::vector<T> want(offs.size());
      for (std::size_t i = 0; i < offs.size(); ++i) {
        want[i] = a[static_cast<std::size_t>(offs[i])];
      }
      const DevBuf da = upload(a);
      const DevBuf dout = sentinel_out<T>(offs.size());
      cuda::copy_strided(elem_of<T>(), static_cast<int64_t>(offs.size()), da.get(), l, dout.get(),
                         0);
      CHECK(same_bits(download<T>(dout, offs.size()), want));
    }
  }
  // empty and dense odd sizes
  for (const int64_t n : kSizes) {
    const auto a = random_values<T>(static_cast<std::size_t>(n), rng);
    const DevBuf da = upload(a);
    const DevBuf dout = sentinel_out<T>(static_cast<std::size_t>(n));
    cuda::copy_strided(elem_of<T>(), n, da.get(), dense_layout(n), dout.get(), 0);
    CHECK(same_bits(download<T>(dout, static_cast<std::size_t>(n)), a));
  }
}

TEST_CASE("cuda copy_strided gathers every view bit for bit", "[kernels][cuda][gpu]") {
  if (no_device()) {
    return;
  }
  check_copy_strided_type<uint64_t>();
  check_copy_strided_type<float>();
  check_copy_strided_type<uint8_t>();
}

template <class To, class From>
void check_cast_pair(std::mt19937_64& rng) {
  for (const int64_t n : kSizes) {
    INFO("cast " << static_cast<int>(elem_of<From>()) << " -> " << static_cast<int>(elem_of<To>())
                 << " n " << n);
    std::vector<From> a = random_values<From>(static_cast<std::size_t>(n), rng);
    if constexpr (std::is_floating_point_v<From>) {
      // defined domain of Tensor::to: uint8 targets need [0, 256), integers |x| < 2^63
      for (auto& x : a) {
        x = std::is_same_v<To, uint8_t> ? std::fabs(x) * From{60} : x * From{1e5};
      }
    }
    std::vector<To> want(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      want[i] = ops::cast_elem<To, From>(a[i]);
    }
    const DevBuf da = upload(a);
    const DevBuf dout = sentinel_out<To>(a.size());
    cuda::cast(elem_of<From>(), elem_of<To>(), n, da.get(), dout.get(), 0);
    CHECK(same_bits(download<To>(dout, a.size()), want));
  }
}

template <class From>
void check_cast_from(std::mt19937_64& rng) {
  check_cast_pair<float, From>(rng);
  check_cast_pair<double, From>(rng);
  check_cast_pair<int64_t, From>(rng);
  check_cast_pair<uint64_t, From>(rng);
  check_cast_pair<uint8_t, From>(rng);
}

TEST_CASE("cuda cast: all 25 type pairs bit-exact vs the CPU rules", "[kernels][cuda][gpu]") {
  if (no_device()) {
    return;
  }
  std::mt19937_64 rng(400);
  check_cast_from<float>(rng);
  check_cast_from<double>(rng);
  check_cast_from<int64_t>(rng);
  check_cast_from<uint64_t>(rng);
  check_cast_from<uint8_t>(rng);
}

TEST_CASE("cuda fill, encode_fixed and decode_fixed vs the CPU encoder", "[kernels][cuda][gpu]") {
  if (no_device()) {
    return;
  }
  std::mt19937_64 rng(500);
  const veil::crypto::FixedPointEncoder enc(16);
  for (const int64_t n : kSizes) {
    const auto un = static_cast<std::size_t>(n);
    // fill: each element size
    const DevBuf d8 = sentinel_out<uint64_t>(un);
    cuda::fill(Elem::kU64, n, kNonZero, d8.get(), 0);
    CHECK(same_bits(download<uint64_t>(d8, un), std::vector<uint64_t>(un, kNonZero)));
    const DevBuf d4 = sentinel_out<float>(un);
    uint32_t bits = 0;
    const float v = -2.75F;
    std::memcpy(&bits, &v, 4);
    cuda::fill(Elem::kF32, n, bits, d4.get(), 0);
    CHECK(same_bits(download<float>(d4, un), std::vector<float>(un, v)));
    const DevBuf d1 = sentinel_out<uint8_t>(un);
    cuda::fill(Elem::kU8, n, 0x1234, d1.get(), 0);
    CHECK(same_bits(download<uint8_t>(d1, un), std::vector<uint8_t>(un, 0x34)));
    // encode / decode
    std::vector<double> x = random_values<double>(un, rng);
    for (auto& e : x) {
      e *= 1000.0;
    }
    if (n > 2) {
      x[0] = std::ldexp(2.5, -16);  // ties
      x[1] = std::ldexp(-2.5, -16);
    }
    std::vector<uint64_t> want(un);
    for (std::size_t i = 0; i < un; ++i) {
      want[i] = enc.encode_scalar(x[i]);
    }
    const DevBuf dx = upload(x);
    const DevBuf dv = sentinel_out<uint64_t>(un);
    cuda::encode_fixed(Elem::kF64, n, dx.get(), 16, dv.as<uint64_t>(), 0);
    CHECK(same_bits(download<uint64_t>(dv, un), want));
    std::vector<float> xf(un);
    std::vector<uint64_t> want_f(un);
    for (std::size_t i = 0; i < un; ++i) {
      xf[i] = static_cast<float>(x[i]);
      want_f[i] = enc.encode_scalar(static_cast<double>(xf[i]));
    }
    const DevBuf dxf = upload(xf);
    cuda::encode_fixed(Elem::kF32, n, dxf.get(), 16, dv.as<uint64_t>(), 0);
    CHECK(same_bits(download<uint64_t>(dv, un), want_f));
    const DevBuf dw = upload(want);
    std::vector<double> dec(un);
    std::vector<float> dec_f(un);
    for (std::size_t i = 0; i < un; ++i) {
      dec[i] = enc.decode_scalar(want[i]);
      dec_f[i] = static_cast<float>(dec[i]);
    }
    const DevBuf dd = sentinel_out<double>(un);
    cuda::decode_fixed(n, dw.as<uint64_t>(), 16, Elem::kF64, dd.get(), 0);
    CHECK(same_bits(download<double>(dd, un), dec));
    const DevBuf ddf = sentinel_out<float>(un);
    cuda::decode_fixed(n, dw.as<uint64_t>(), 16, Elem::kF32, ddf.get(), 0);
    CHECK(same_bits(download<float>(ddf, un), dec_f));
  }
}

// CPU reduction in core's order (sum: j outer loop; max/argmax: first maximum).
template <class T>
std::vector<T> cpu_reduce(ReduceOp op,
                          int64_t outer,
                          int64_t len,
                          int64_t inner,
                          const std::vector<T>& src,
                          std::vector<int64_t>& arg) {
  std::vector<T> out(static_cast<std::size_t>(outer * inner), T{0});
  arg.assign(out.size(), 0);
  for (int64_t i = 0; i < outer; ++i) {
    for (int64_t k = 0; k < inner; ++k) {
      const auto o = static_cast<std::size_t>(i * inner + k);
      for (int64_t j = 0; j < len; ++j) {
        const T v = src[static_cast<std::size_t>((i * len + j) * inner + k)];
        if (op == ReduceOp::kSum) {
          out[o] = binary_reference(BinaryOp::kAdd, out[o], v);
        } else if (j == 0 || ops::greater(v, out[o])) {
          out[o] = v;
          arg[o] = j;
        }
      }
    }
  }
  return out;
}

template <class T>
void check_reduce_type() {
  std::mt19937_64 rng(600 + static_cast<uint64_t>(elem_of<T>()));
  const Elem t = elem_of<T>();
  const std::vector<std::vector<int64_t>> shapes = {{1, 1000003, 1}, {5, 7, 3},  {2, 100, 3},
                                                    {3, 1, 5},       {1, 1, 1},  {0, 5, 3},
                                                    {4, 0, 2},       {7, 65, 1}, {3, 513, 4001}};
  for (const auto& s : shapes) {
    for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kArgmax}) {
      if (s[1] == 0 && op != ReduceOp::kSum) {
        continue;  // max of nothing is undefined (core rejects it)
      }
      INFO("elem " << static_cast<int>(t) << " op " << static_cast<int>(op) << " shape [" << s[0]
                   << ", " << s[1] << ", " << s[2] << "]");
      const auto total = static_cast<std::size_t>(s[0] * s[1] * s[2]);
      auto src = random_values<T>(total, rng);
      if (op != ReduceOp::kSum) {
        // few distinct values, so ties (first maximum) happen
        for (auto& x : src) {
          x = static_cast<T>(static_cast<T>(rng() % 9) - static_cast<T>(4));
        }
      }
      std::vector<int64_t> arg;
      const auto want = cpu_reduce<T>(op, s[0], s[1], s[2], src, arg);
      const DevBuf dsrc = upload(src);
      const std::size_t outputs = want.size();
      if (op == ReduceOp::kArgmax) {
        const DevBuf dout = sentinel_out<int64_t>(outputs);
        cuda::reduce(op, t, s[0], s[1], s[2], dsrc.get(), dout.get(), 0);
        CHECK(download<int64_t>(dout, outputs) == arg);
        continue;
      }
      const DevBuf dout = sentinel_out<T>(outputs);
      cuda::reduce(op, t, s[0], s[1], s[2], dsrc.get(), dout.get(), 0);
      const auto got = download<T>(dout, outputs);
      if (std::is_floating_point_v<T> && op == ReduceOp::kSum) {
        // a fixed order: deterministic, and within the worst-case error of its order against
        // the exact sum: (terms summed in sequence + tree depth) * eps * sum |x|, where a block
        // reduction (len >= 64 with inner == 1 or few outputs) sums ceil(len / 256) terms per
        // thread and a tree of depth 8
        const DevBuf dout2 = sentinel_out<T>(outputs);
        cuda::reduce(op, t, s[0], s[1], s[2], dsrc.get(), dout2.get(), 0);
        CHECK(same_bits(download<T>(dout2, outputs), got));
        const bool rows = s[1] >= 64 && (s[2] == 1 || static_cast<int64_t>(outputs) < 4096);
        const double depth =
            rows ? static_cast<double>((s[1] + 255) / 256 + 8) : static_cast<double>(s[1]);
        for (int64_t i = 0; i < s[0]; ++i) {
          for (int64_t k = 0; k < s[2]; ++k) {
            long double exact = 0;
            long double abs_sum = 0;
            for (int64_t j = 0; j < s[1]; ++j) {
              const auto v = static_cast<long double>(
                  src[static_cast<std::size_t>((i * s[1] + j) * s[2] + k)]);
              exact += v;
              abs_sum += v < 0 ? -v : v;
            }
            const double tol = depth * static_cast<double>(std::numeric_limits<T>::epsilon()) *
                               static_cast<double>(abs_sum);
            const auto o = static_cast<std::size_t>(i * s[2] + k);
            CHECK(std::fabs(static_cast<double>(got[o]) - static_cast<double>(exact)) <= tol);
          }
        }
      } else {
        CHECK(same_bits(got, want));
      }
    }
  }
}

TEST_CASE("cuda reduce: sum/max/argmax, ring and int bit-exact, floats deterministic",
          "[kernels][cuda][gpu]") {
  if (no_device()) {
    return;
  }
  check_reduce_type<uint64_t>();
  check_reduce_type<int64_t>();
  check_reduce_type<float>();
  check_reduce_type<double>();
}

// Runs ring_mask and beaver_output on n elements (pointers shifted by `shift` elements to hit the
// unaligned path) and compares with the per-element formulas written out directly.
void check_epilogues(int64_t n, int shift, std::mt19937_64& rng) {
  const auto un = static_cast<std::size_t>(n);
  const auto us = static_cast<std::size_t>(shift);
  std::vector<std::vector<uint64_t>> in(5);
  for (auto& v : in) {
    v = random_values<uint64_t>(un + us, rng);
  }
  std::vector<DevBuf> dev;
  dev.reserve(5);
  for (const auto& v : in) {
    dev.emplace_back(std::max<std::size_t>(v.size(), 1) * 8);
    cuda::copy_to_device(dev.back().get(), v.data(), v.size() * 8, 0);
  }
  auto at = [&](int k) {
    return dev[static_cast<std::size_t>(k)].as<uint64_t>() + shift;
  };
  const auto& [e, d, a, b, c] = std::tie(in[0], in[1], in[2], in[3], in[4]);
  DevBuf out((un + us + 1) * 8);
  uint64_t* pout = out.as<uint64_t>() + shift;
  cuda::ring_mask(n, at(0), at(2), pout, 0);
  std::vector<uint64_t> got(un);
  cuda::copy_to_host(got.data(), pout, un * 8, 0);
  for (std::size_t i = 0; i < un; ++i) {
    if (got[i] != e[i + us] - a[i + us]) {
      FAIL("ring_mask differs at " << i);
    }
  }
  for (const bool first : {true, false}) {
    for (const int bits : {0, 16, 1, 62}) {
      cuda::beaver_output(n, first, at(0), at(1), at(2), at(3), at(4), bits, pout, 0);
      cuda::copy_to_host(got.data(), pout, un * 8, 0);
      for (std::size_t i = 0; i < un; ++i) {
        const std::size_t j = i + us;
        const u128 zz = static_cast<u128>(c[j]) +
                        static_cast<u128>(e[j]) * (static_cast<u128>(b[j]) + (first ? d[j] : 0)) +
                        static_cast<u128>(a[j]) * d[j];
        const auto z = static_cast<uint64_t>(zz);
        uint64_t want = z;
        if (bits > 0) {
          want = first ? static_cast<uint64_t>(floor_div_pow2(static_cast<int64_t>(z), bits))
                       : uint64_t{0} - static_cast<uint64_t>(floor_div_pow2(
                                           static_cast<int64_t>(uint64_t{0} - z), bits));
        }
        if (got[i] != want) {
          FAIL("beaver_output differs at " << i << " (first " << first << ", bits " << bits
                                           << ", n " << n << ")");
        }
      }
    }
  }
  // in place: z may alias c exactly
  cuda::beaver_output(n, true, at(0), at(1), at(2), at(3), at(4), 0, at(4), 0);
  cuda::copy_to_host(got.data(), at(4), un * 8, 0);
  for (std::size_t i = 0; i < un; ++i) {
    const std::size_t j = i + us;
    if (got[i] != c[j] + e[j] * (b[j] + d[j]) + a[j] * d[j]) {
      FAIL("in-place beaver_output differs at " << i);
    }
  }
}

TEST_CASE("cuda ring_mask and beaver_output bit-exact vs the formulas", "[kernels][cuda][gpu]") {
  if (no_device()) {
    return;
  }
  std::mt19937_64 rng(700);
  for (const int64_t n : kSizes) {
    check_epilogues(n, 0, rng);
    check_epilogues(n, 1, rng);
  }
}

TEST_CASE("cuda memory: round trips, zero, pinned staging, pool caching", "[kernels][cuda][gpu]") {
  if (no_device()) {
    return;
  }
  const cuda::DeviceInfo info = cuda::device_info(0);
  CHECK(!info.name.empty());
  CHECK(info.sm_count > 0);
  CHECK(info.total_bytes > 0);
  REQUIRE_THROWS_AS(cuda::device_info(cuda::device_count()), cuda::CudaError);
  CHECK(cuda::device_alloc(0, 0) == nullptr);
  cuda::device_free(nullptr, 0);
  std::mt19937_64 rng(800);
  for (const std::size_t bytes : {std::size_t{1}, std::size_t{7}, std::size_t{1000003}}) {
    std::vector<uint8_t> h(bytes);
    for (auto& x : h) {
      x = static_cast<uint8_t>(1 + rng() % 255);
    }
    DevBuf a(bytes);
    DevBuf b(bytes);
    cuda::copy_to_device(a.get(), h.data(), bytes, 0);
    cuda::copy_device_to_device(b.get(), a.get(), bytes, 0);
    CHECK(download<uint8_t>(b, bytes) == h);
    cuda::zero(b.get(), bytes, 0);
    CHECK(download<uint8_t>(b, bytes) == std::vector<uint8_t>(bytes, 0));
    // through pinned memory
    auto* pin = static_cast<uint8_t*>(cuda::pinned_alloc(bytes));
    REQUIRE(pin != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(pin) % 64 == 0);
    std::memcpy(pin, h.data(), bytes);
    cuda::copy_to_device(b.get(), pin, bytes, 0);
    std::memset(pin, 0, bytes);  // allowed: copy_to_device returned
    cuda::copy_to_host(pin, b.get(), bytes, 0);
    CHECK(std::memcmp(pin, h.data(), bytes) == 0);
    cuda::pinned_free(pin);
  }
  // pool: a freed block stays reserved and the next allocation of that size reuses it
  const std::size_t big = std::size_t{64} << 20;
  cuda::synchronize(0);
  {
    DevBuf first(big);
    CHECK(reinterpret_cast<std::uintptr_t>(first.get()) % 256 == 0);
    const cuda::MemoryStats s = cuda::memory_stats(0);
    CHECK(s.used_bytes >= big);
    CHECK(s.reserved_bytes >= s.used_bytes);
  }
  cuda::synchronize(0);
  const cuda::MemoryStats after_free = cuda::memory_stats(0);
  CHECK(after_free.reserved_bytes >= big);  // cached, not returned to the driver
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) {
    DevBuf again(big);
  }
  cuda::synchronize(0);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("cuda pool: 1000 alloc/free of 64 MiB in %.2f ms\n", ms);
  CHECK(ms < 200.0);
  CHECK(cuda::memory_stats(0).reserved_bytes == after_free.reserved_bytes);
}

TEST_CASE("cuda: two threads use the device at once on their own streams", "[kernels][cuda][gpu]") {
  if (no_device()) {
    return;
  }
  std::vector<int> failures(2, 0);
  auto worker = [&](int id) {
    std::mt19937_64 rng(900 + static_cast<uint64_t>(id));
    const int64_t n = 300007;
    const auto un = static_cast<std::size_t>(n);
    const auto x = random_values<uint64_t>(un, rng);
    const auto y = random_values<uint64_t>(un, rng);
    const DevBuf dx = upload(x);
    const DevBuf dy = upload(y);
    const DevBuf dz = sentinel_out<uint64_t>(un);
    for (int rep = 0; rep < 20; ++rep) {
      cuda::binary(BinaryOp::kMul, Elem::kU64, n, dx.get(), dense_layout(n), dy.get(),
                   dense_layout(n), dz.get(), 0);
      cuda::beaver_output(n, id == 0, dx.as<uint64_t>(), dy.as<uint64_t>(), dx.as<uint64_t>(),
                          dy.as<uint64_t>(), dz.as<uint64_t>(), 0, dz.as<uint64_t>(), 0);
      const auto got = download<uint64_t>(dz, un);
      for (std::size_t i = 0; i < un; ++i) {
        const uint64_t c = x[i] * y[i];
        const uint64_t want = c + x[i] * (y[i] + (id == 0 ? y[i] : 0)) + x[i] * y[i];
        if (got[i] != want) {
          ++failures[static_cast<std::size_t>(id)];
          break;
        }
      }
    }
    cuda::synchronize(0);
  };
  std::thread t0(worker, 0);
  std::thread t1(worker, 1);
  t0.join();
  t1.join();
  CHECK(failures[0] == 0);
  CHECK(failures[1] == 0);
}

}  // namespace
