// Host ring loops (kernels/cpu/ring_blocks) against scalar formulas written out here, on full
// 64-bit random words (every product and sum wraps): lengths around the vector widths, in-place
// use, both parties' Beaver outputs with and without the 2-party truncation, and squares (a == b).
// The loader runs the widest clone this CPU supports; every clone must give these exact bits.

#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "kernels/cpu/ring_blocks.h"

namespace {

namespace kc = veil::kernels::cpu;

std::vector<uint64_t> words(std::size_t n, std::mt19937_64& rng) {
  std::vector<uint64_t> v(n);
  for (auto& x : v) {
    x = rng();
  }
  return v;
}

// The truncation of SecureML's 2-party protocol, written with division on the int64 value so that
// it does not share code with the kernel: floor(z / 2^bits) for party 0, -floor(-z / 2^bits) for
// party 1 (mod 2^64).
uint64_t floor_shift(uint64_t z, int bits) {
  const auto s = static_cast<int64_t>(z);
  const int64_t d = int64_t{1} << bits;
  int64_t q = s / d;
  if (s % d != 0 && s < 0) {
    --q;
  }
  return static_cast<uint64_t>(q);
}

uint64_t reference_beaver(
    bool first, uint64_t e, uint64_t d, uint64_t a, uint64_t b, uint64_t c, int bits) {
  uint64_t z = c + e * b + a * d;
  if (first) {
    z += e * d;
  }
  if (bits == 0) {
    return z;
  }
  return first ? floor_shift(z, bits) : uint64_t{0} - floor_shift(uint64_t{0} - z, bits);
}

const std::vector<int64_t> kLengths = {0, 1, 3, 7, 8, 9, 16, 31, 512, 1000};

}  // namespace

TEST_CASE("ring_sub, ring_add, ring_mul match the scalar ring operations", "[kernels][ring]") {
  std::mt19937_64 rng(11);
  for (int64_t n : kLengths) {
    const auto un = static_cast<std::size_t>(n);
    const auto x = words(un, rng);
    const auto y = words(un, rng);
    std::vector<uint64_t> out(un + 1, 0x5a5a);  // one guard word past the end
    kc::ring_sub(n, x.data(), y.data(), out.data());
    for (std::size_t i = 0; i < un; ++i) {
      REQUIRE(out[i] == x[i] - y[i]);
    }
    REQUIRE(out[un] == 0x5a5a);
    kc::ring_add(n, x.data(), y.data(), out.data());
    for (std::size_t i = 0; i < un; ++i) {
      REQUIRE(out[i] == x[i] + y[i]);
    }
    kc::ring_mul(n, x.data(), y.data(), out.data());
    for (std::size_t i = 0; i < un; ++i) {
      REQUIRE(out[i] == x[i] * y[i]);
    }
    REQUIRE(out[un] == 0x5a5a);
    // in place: out is the first operand
    std::vector<uint64_t> acc = x;
    kc::ring_add(n, acc.data(), y.data(), acc.data());
    kc::ring_sub(n, acc.data(), x.data(), acc.data());
    REQUIRE(acc == y);
  }
}

TEST_CASE("beaver_output matches c + e(b + [first]d) + ad with the 2-party truncation",
          "[kernels][ring]") {
  std::mt19937_64 rng(12);
  for (int64_t n : kLengths) {
    const auto un = static_cast<std::size_t>(n);
    const auto e = words(un, rng);
    const auto d = words(un, rng);
    const auto a = words(un, rng);
    const auto b = words(un, rng);
    const auto c = words(un, rng);
    for (bool first : {true, false}) {
      for (int bits : {0, 1, 16, 63}) {
        for (bool square : {false, true}) {
          const std::vector<uint64_t>& bb = square ? a : b;
          std::vector<uint64_t> z(un + 1, 0x77);
          kc::beaver_output(n, first, e.data(), d.data(), a.data(), bb.data(), c.data(), bits,
                            z.data());
          for (std::size_t i = 0; i < un; ++i) {
            INFO("n " << n << " i " << i << " first " << first << " bits " << bits);
            REQUIRE(z[i] == reference_beaver(first, e[i], d[i], a[i], bb[i], c[i], bits));
          }
          REQUIRE(z[un] == 0x77);
        }
      }
    }
  }
}

TEST_CASE("beaver_output of two parties reconstructs x y (truncated within one unit)",
          "[kernels][ring]") {
  // x = a + e, y = b + d with a = a0 + a1, b = b0 + b1, c0 + c1 = a b: z0 + z1 = x y, and after
  // the local truncation by f bits the sum is within 1 of (x y) >> f for |x y| far below 2^63
  // (a wrap of the shares, probability about |x y| / 2^63, would break it: here |x y| <= 2^40).
  std::mt19937_64 rng(13);
  std::uniform_int_distribution<int64_t> small(-(int64_t{1} << 20), int64_t{1} << 20);
  constexpr int64_t kN = 777;
  constexpr int kBits = 16;
  std::vector<uint64_t> e(kN), d(kN), a0(kN), a1(kN), b0(kN), b1(kN), c0(kN), c1(kN);
  std::vector<int64_t> x(kN), y(kN);
  for (int64_t i = 0; i < kN; ++i) {
    const auto u = static_cast<std::size_t>(i);
    x[u] = small(rng);
    y[u] = small(rng);
    a0[u] = rng();
    a1[u] = rng();
    b0[u] = rng();
    b1[u] = rng();
    c1[u] = rng();
    c0[u] = (a0[u] + a1[u]) * (b0[u] + b1[u]) - c1[u];
    e[u] = static_cast<uint64_t>(x[u]) - (a0[u] + a1[u]);
    d[u] = static_cast<uint64_t>(y[u]) - (b0[u] + b1[u]);
  }
  std::vector<uint64_t> z0(kN), z1(kN);
  kc::beaver_output(kN, true, e.data(), d.data(), a0.data(), b0.data(), c0.data(), 0, z0.data());
  kc::beaver_output(kN, false, e.data(), d.data(), a1.data(), b1.data(), c1.data(), 0, z1.data());
  for (std::size_t i = 0; i < static_cast<std::size_t>(kN); ++i) {
    REQUIRE(static_cast<int64_t>(z0[i] + z1[i]) == x[i] * y[i]);
  }
  kc::beaver_output(kN, true, e.data(), d.data(), a0.data(), b0.data(), c0.data(), kBits,
                    z0.data());
  kc::beaver_output(kN, false, e.data(), d.data(), a1.data(), b1.data(), c1.data(), kBits,
                    z1.data());
  int exact = 0;
  for (std::size_t i = 0; i < static_cast<std::size_t>(kN); ++i) {
    const int64_t want = (x[i] * y[i]) >> kBits;
    const auto got = static_cast<int64_t>(z0[i] + z1[i]);
    REQUIRE(got - want >= -1);
    REQUIRE(got - want <= 1);
    exact += static_cast<int>(got == want);
  }
  REQUIRE(exact > kN / 2);  // the off-by-one is rare, not the rule
}

TEST_CASE("circuit_inject matches the injection formulas on any element range", "[kernels][ring]") {
  // With the opened bit e of each element (bit e % 64 of plane word e / 64): the arithmetic bit
  // b = [first] e + (1 - 2e) s, (c - r) b = c b - e r - (1 - 2e) rs, and for each extra
  // multiplicand y b = d b + e a + (1 - 2e) as, all mod 2^64.
  std::mt19937_64 rng(14);
  constexpr int64_t kN = 300;  // not a multiple of 64
  constexpr int kExtras = 2;
  const auto planes = words((kN + 63) / 64, rng);
  const auto s = words(kN, rng);
  const auto c = words(kN, rng);
  const auto r = words(kN, rng);
  const auto rs = words(kN, rng);
  const auto d = words(kExtras * kN, rng);
  const auto a = words(kExtras * kN, rng);
  const auto as = words(kExtras * kN, rng);
  auto opened = [&](int64_t e) {
    return (planes[static_cast<std::size_t>(e / 64)] >> (e % 64)) & 1U;
  };
  const std::vector<std::pair<int64_t, int64_t>> ranges = {{0, kN},   {0, 0},     {5, 70},
                                                           {64, 128}, {127, 129}, {200, kN}};
  for (bool first : {true, false}) {
    for (bool times_masked : {true, false}) {
      for (int extras : {0, 1, kExtras}) {
        for (const auto& [lo, hi] : ranges) {
          std::vector<uint64_t> bit(kN, 7), xb(kN, 7), prod(kExtras * kN, 7);
          veil::kernels::circuit::InjectArgs args;
          args.n = kN;
          args.extras = extras;
          args.first = first;
          args.e_planes = planes.data();
          args.s = s.data();
          args.c = times_masked ? c.data() : nullptr;
          args.r = r.data();
          args.rs = rs.data();
          args.d = d.data();
          args.a = a.data();
          args.as = as.data();
          args.bit = bit.data();
          args.x_times_bit = xb.data();
          args.product = prod.data();
          kc::circuit_inject(args, lo, hi);
          for (int64_t e = 0; e < kN; ++e) {
            const auto u = static_cast<std::size_t>(e);
            INFO("first " << first << " times_masked " << times_masked << " extras " << extras
                          << " range " << lo << ".." << hi << " e " << e);
            if (e < lo || e >= hi) {  // untouched outside the range
              REQUIRE(bit[u] == 7);
              REQUIRE(xb[u] == 7);
              continue;
            }
            const uint64_t ev = opened(e);
            const uint64_t sign = uint64_t{1} - 2 * ev;  // 1 - 2e mod 2^64
            const uint64_t b = (first ? ev : 0) + sign * s[u];
            REQUIRE(bit[u] == b);
            REQUIRE(xb[u] == (times_masked ? c[u] * b - ev * r[u] - sign * rs[u] : 7));
            for (int j = 0; j < kExtras; ++j) {
              const std::size_t i = static_cast<std::size_t>(j) * kN + u;
              REQUIRE(prod[i] == (j < extras ? d[i] * b + ev * a[i] + sign * as[i] : 7));
            }
          }
        }
      }
    }
  }
}
