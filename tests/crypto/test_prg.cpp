// Tests of crypto/prg: the AES-128-CTR keystream against independent references, determinism
// under any split of requests, and the derived samplers (uniform_int, uniform_double, normal,
// shuffle, public_seed).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <set>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <openssl/evp.h>

#include "core/error.h"
#include "crypto/prg.h"

namespace {

using veil::crypto::Prg;

std::vector<uint8_t> draw(Prg& prg, std::size_t n) {
  std::vector<uint8_t> out(n);
  prg.fill(std::as_writable_bytes(std::span<uint8_t>(out)));
  return out;
}

std::vector<uint8_t> from_hex(const char* hex) {
  std::vector<uint8_t> out;
  for (const char* p = hex; p[0] != '\0' && p[1] != '\0'; p += 2) {
    auto nibble = [](char c) {
      return static_cast<uint8_t>(c <= '9' ? c - '0' : c - 'a' + 10);
    };
    out.push_back(static_cast<uint8_t>(nibble(p[0]) << 4 | nibble(p[1])));
  }
  return out;
}

// Independent reference: AES-128-ECB of the big-endian counter blocks 0, 1, 2, ... under key.
std::vector<uint8_t> ecb_counter_reference(const Prg::Seed& key, std::size_t blocks) {
  std::vector<uint8_t> in(16 * blocks, 0);
  for (std::size_t b = 0; b < blocks; ++b) {
    for (std::size_t i = 0; i < 8; ++i) {
      in[16 * b + 15 - i] = static_cast<uint8_t>(static_cast<uint64_t>(b) >> (8 * i));
    }
  }
  std::vector<uint8_t> out(in.size() + 16);
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      &EVP_CIPHER_CTX_free);
  REQUIRE(ctx != nullptr);
  REQUIRE(EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_ecb(), nullptr, key.data(), nullptr) == 1);
  REQUIRE(EVP_CIPHER_CTX_set_padding(ctx.get(), 0) == 1);
  int len = 0;
  REQUIRE(EVP_EncryptUpdate(ctx.get(), out.data(), &len, in.data(), static_cast<int>(in.size())) ==
          1);
  REQUIRE(len == static_cast<int>(in.size()));
  out.resize(in.size());
  return out;
}

Prg::Seed seed_of(uint8_t first) {
  Prg::Seed s{};
  for (std::size_t i = 0; i < s.size(); ++i) {
    s[i] = static_cast<uint8_t>(first + i);
  }
  return s;
}

}  // namespace

TEST_CASE("Prg: known answer for the all-zero key", "[prg]") {
  // GIVEN the all-zero key. AES-128_0(counter 0) = 66e94bd4..., AES-128_0(counter 1) = 58e2fcce...
  // and AES-128_0(counter 2) = 0388dace...: GCM specification (McGrew & Viega), test cases 1-2
  // (H = E(K, 0^128), E(K, Y0), and C for a zero plaintext block).
  const Prg::Seed key{};
  Prg prg(key);
  // WHEN three keystream blocks are drawn THEN they equal the published values.
  const auto got = draw(prg, 48);
  const auto want = from_hex(
      "66e94bd4ef8a2c3b884cfa59ca342b2e"
      "58e2fccefa7e3061367f1d57a4e7455a"
      "0388dace60b6a392f328c2b971b2fe78");
  CHECK(got == want);
  CHECK(prg.position() == 48);
}

TEST_CASE("Prg: keystream equals AES-128-ECB of counter blocks", "[prg]") {
  // GIVEN the FIPS-197 key 000102...0f and a random-looking key
  for (uint8_t first : {uint8_t{0}, uint8_t{0x5a}}) {
    const Prg::Seed key = seed_of(first);
    constexpr std::size_t kBlocks = 5000;  // crosses the internal buffer and the direct path
    const auto want = ecb_counter_reference(key, kBlocks);
    // WHEN drawn in one call and in small calls THEN both equal the ECB reference
    Prg one(key);
    CHECK(draw(one, want.size()) == want);
    Prg small(key);
    std::vector<uint8_t> pieces;
    while (pieces.size() < want.size()) {
      const auto part = draw(small, std::min<std::size_t>(13, want.size() - pieces.size()));
      pieces.insert(pieces.end(), part.begin(), part.end());
    }
    CHECK(pieces == want);
  }
}

TEST_CASE("Prg: the stream does not depend on how requests are split", "[prg]") {
  const Prg::Seed key = seed_of(7);
  const std::vector<std::size_t> splits = {5,    11,   1,     4095, 3,      1023,
                                           1024, 5000, 70000, 8,    200001, 17};
  const std::size_t total = std::accumulate(splits.begin(), splits.end(), std::size_t{0});
  // GIVEN one fill of everything
  Prg whole(key);
  const auto want = draw(whole, total);
  // WHEN the same bytes are drawn in pieces of varying size
  Prg split(key);
  std::vector<uint8_t> got;
  for (std::size_t n : splits) {
    const auto part = draw(split, n);
    got.insert(got.end(), part.begin(), part.end());
  }
  // THEN the streams are identical and positions agree
  CHECK(got == want);
  CHECK(split.position() == total);
  CHECK(whole.position() == total);

  SECTION("fill of 5 then 11 equals fill of 16") {
    Prg a(key);
    Prg b(key);
    auto x = draw(a, 5);
    const auto y = draw(a, 11);
    x.insert(x.end(), y.begin(), y.end());
    CHECK(x == draw(b, 16));
  }
  SECTION("next_u64 and fill_ring read little-endian words of the same stream") {
    Prg a(key);
    Prg b(key);
    const auto bytes = draw(a, 24);
    std::array<uint64_t, 2> ring{};
    const uint64_t first = b.next_u64();
    b.fill_ring(ring.data(), ring.size());
    const std::array<uint64_t, 3> words = {first, ring[0], ring[1]};
    for (std::size_t w = 0; w < 3; ++w) {
      uint64_t expect = 0;
      for (std::size_t i = 0; i < 8; ++i) {
        expect |= static_cast<uint64_t>(bytes[8 * w + i]) << (8 * i);
      }
      CHECK(words[w] == expect);
    }
  }
  SECTION("ring() tensors continue the stream") {
    Prg a(key);
    Prg b(key);
    const veil::core::Tensor t = a.ring({3, 5});
    CHECK(t.dtype() == veil::core::DType::kRing64);
    std::vector<uint64_t> ref(15);
    b.fill_ring(ref.data(), ref.size());
    CHECK(t.to_vector<uint64_t>() == ref);
    CHECK(a.position() == 15 * 8);
  }
  SECTION("a moved-to Prg continues where the source was") {
    Prg a(key);
    Prg b(key);
    (void)draw(a, 100);
    Prg c(std::move(a));
    (void)draw(b, 100);
    CHECK(draw(c, 50) == draw(b, 50));
    CHECK(c.position() == 150);
  }
}

TEST_CASE("Prg: different keys give different streams", "[prg]") {
  Prg a(seed_of(1));
  Prg b(seed_of(2));
  Prg c(Prg::os_seed());
  Prg d(Prg::os_seed());
  const auto sa = draw(a, 64);
  const auto sb = draw(b, 64);
  const auto sc = draw(c, 64);
  const auto sd = draw(d, 64);
  CHECK(sa != sb);
  CHECK(sc != sd);
  CHECK(sa != sc);
  CHECK(Prg::os_seed() != Prg::os_seed());
}

TEST_CASE("Prg: public_seed is deterministic and distinct per (seed, stream)", "[prg]") {
  // Reference values: SHA-256("veil-public-seed" || le64(seed) || le64(stream))[0:16], computed
  // with Python's hashlib.
  const auto expect = [](const char* hex) {
    Prg::Seed s{};
    const auto v = from_hex(hex);
    std::copy(v.begin(), v.end(), s.begin());
    return s;
  };
  CHECK(Prg::public_seed(0, 0) == expect("d3a59267f30932edcd618097e7209da6"));
  CHECK(Prg::public_seed(42) == expect("56aeda1d0a2ba6df93dbe6a0a6aa64d3"));
  CHECK(Prg::public_seed(42, 1) == expect("6de862738b3da4ef2f7c7249cafd720a"));
  CHECK(Prg::public_seed(0x0123456789abcdefULL, 7) == expect("6884603f7bb2876ca52ec62dc472dd43"));

  std::set<Prg::Seed> seen;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    for (uint64_t stream = 0; stream < 16; ++stream) {
      CHECK(Prg::public_seed(seed, stream) == Prg::public_seed(seed, stream));
      seen.insert(Prg::public_seed(seed, stream));
    }
  }
  CHECK(seen.size() == 256);
  // Swapping seed and stream gives a different key.
  CHECK(Prg::public_seed(1, 2) != Prg::public_seed(2, 1));
}

TEST_CASE("Prg: uniform_int stays in range and is unbiased", "[prg]") {
  Prg prg(Prg::public_seed(2024));
  SECTION("range") {
    for (uint64_t n : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{7}, uint64_t{1000},
                       (uint64_t{1} << 63) + 1, ~uint64_t{0}}) {
      for (int i = 0; i < 2000; ++i) {
        CHECK(prg.uniform_int(n) < n);
      }
    }
    CHECK_THROWS_AS(prg.uniform_int(0), veil::ValueError);
  }
  SECTION("chi-square over 10 buckets") {
    constexpr int kDraws = 100000;
    std::array<int, 10> counts{};
    for (int i = 0; i < kDraws; ++i) {
      ++counts[static_cast<std::size_t>(prg.uniform_int(10))];
    }
    double chi2 = 0;
    for (int c : counts) {
      const double e = kDraws / 10.0;
      chi2 += (c - e) * (c - e) / e;
    }
    // 9 degrees of freedom: P(chi2 > 40) ~ 1e-5; a biased or broken sampler lands far above.
    CHECK(chi2 < 40.0);
  }
  SECTION("no modulo bias for n = 3 * 2^62") {
    // r mod n without rejection maps [n, 2^64) onto [0, 2^62), doubling the mass there: half of
    // the draws would fall below 2^62 instead of a third.
    const uint64_t n = uint64_t{3} << 62;
    constexpr int kDraws = 20000;
    int below = 0;
    for (int i = 0; i < kDraws; ++i) {
      below += prg.uniform_int(n) < (uint64_t{1} << 62) ? 1 : 0;
    }
    CHECK(std::abs(below / static_cast<double>(kDraws) - 1.0 / 3) < 0.02);
  }
}

TEST_CASE("Prg: uniform_double and normal have the right moments", "[prg]") {
  Prg prg(Prg::public_seed(5));
  constexpr int kDraws = 200000;
  double sum = 0;
  double sum_sq = 0;
  for (int i = 0; i < kDraws; ++i) {
    const double u = prg.uniform_double();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    sum += u;
    sum_sq += u * u;
  }
  // Mean 1/2 and variance 1/12; standard errors ~6.5e-4 and ~2e-4.
  CHECK(std::abs(sum / kDraws - 0.5) < 0.005);
  CHECK(std::abs(sum_sq / kDraws - sum * sum / kDraws / kDraws - 1.0 / 12) < 0.002);

  sum = 0;
  sum_sq = 0;
  double sum_4 = 0;
  for (int i = 0; i < kDraws; ++i) {
    const double z = prg.normal();
    REQUIRE(std::isfinite(z));
    sum += z;
    sum_sq += z * z;
    sum_4 += z * z * z * z;
  }
  // Mean 0, variance 1, fourth moment 3 (standard errors ~2.2e-3, ~3.2e-3, ~2.2e-2).
  CHECK(std::abs(sum / kDraws) < 0.02);
  CHECK(std::abs(sum_sq / kDraws - 1.0) < 0.03);
  CHECK(std::abs(sum_4 / kDraws - 3.0) < 0.2);
}

TEST_CASE("Prg: shuffle is a deterministic permutation", "[prg]") {
  std::vector<int64_t> base(1000);
  std::iota(base.begin(), base.end(), 0);
  auto shuffled = [&](const Prg::Seed& key) {
    Prg prg(key);
    std::vector<int64_t> v = base;
    prg.shuffle(v);
    return v;
  };
  const auto a = shuffled(Prg::public_seed(1));
  const auto b = shuffled(Prg::public_seed(1));
  const auto c = shuffled(Prg::public_seed(2));
  // THEN a permutation of the input, the same for the same key, different for another key
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == base);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != base);

  SECTION("every arrangement of 3 elements appears about equally often") {
    Prg prg(Prg::public_seed(3));
    std::array<int, 6> counts{};
    constexpr int kDraws = 30000;
    for (int i = 0; i < kDraws; ++i) {
      std::vector<int64_t> v = {0, 1, 2};
      prg.shuffle(v);
      // Lehmer code of the permutation.
      const int code = static_cast<int>(v[0]) * 2 + (v[1] > v[2] ? 1 : 0);
      ++counts[static_cast<std::size_t>(code)];
    }
    for (int c6 : counts) {
      CHECK(std::abs(c6 - kDraws / 6) < 400);  // ~6 standard deviations
    }
  }
  SECTION("empty and single-element vectors are left alone") {
    Prg prg(Prg::public_seed(4));
    std::vector<int64_t> empty;
    prg.shuffle(empty);
    CHECK(empty.empty());
    std::vector<int64_t> one = {42};
    prg.shuffle(one);
    CHECK(one == std::vector<int64_t>{42});
  }
}

TEST_CASE("Prg: a moved-from Prg throws instead of crashing", "[prg]") {
  Prg a(Prg::public_seed(9));
  Prg b(std::move(a));
  CHECK_THROWS_AS(a.next_u64(), veil::ValueError);  // NOLINT(bugprone-use-after-move)
  CHECK_NOTHROW(b.next_u64());
}

TEST_CASE("Prg::seek reproduces the stream from any position", "[prg]") {
  const veil::crypto::Prg::Seed key = veil::crypto::Prg::public_seed(42, 7);
  veil::crypto::Prg ref(key);
  std::vector<std::byte> stream(5000);
  ref.fill(stream);
  for (uint64_t pos :
       {0ULL, 1ULL, 15ULL, 16ULL, 17ULL, 1000ULL, 4095ULL, 4096ULL, 4097ULL, 4999ULL}) {
    veil::crypto::Prg p(key);
    std::vector<std::byte> junk(3001);
    p.fill(junk);  // move somewhere else first, then seek (also backwards)
    p.seek(pos);
    CHECK(p.position() == pos);
    std::vector<std::byte> got(5000 - pos);
    p.fill(got);
    CHECK(std::equal(got.begin(), got.end(), stream.begin() + static_cast<std::ptrdiff_t>(pos)));
  }
}

TEST_CASE("Prg::fork_at: a second reader of the same stream, from any position", "[prg]") {
  // GIVEN a stream of 70,000 bytes drawn in one piece (the reference), and a Prg standing
  // somewhere in the middle of it
  const Prg::Seed key = Prg::public_seed(5, 3);
  Prg ref(key);
  const std::vector<uint8_t> stream = draw(ref, 70000);
  Prg src(key);
  const std::vector<uint8_t> head = draw(src, 1234);
  REQUIRE(std::equal(head.begin(), head.end(), stream.begin()));
  // WHEN forks are taken at positions across AES blocks, from several threads at once
  const std::vector<uint64_t> positions = {0, 1, 15, 16, 17, 4095, 4097, 65536, 65537, 69999};
  std::vector<std::vector<uint8_t>> got(positions.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    threads.emplace_back([&, i] {
      Prg fork = src.fork_at(positions[i]);
      got[i] = draw(fork, 70000 - positions[i]);
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  // THEN each fork reads the stream from its position, and the source is where it was
  for (std::size_t i = 0; i < positions.size(); ++i) {
    INFO("position " << positions[i]);
    CHECK(std::equal(got[i].begin(), got[i].end(),
                     stream.begin() + static_cast<std::ptrdiff_t>(positions[i])));
  }
  CHECK(src.position() == 1234);
  const std::vector<uint8_t> next = draw(src, 100);
  CHECK(std::equal(next.begin(), next.end(), stream.begin() + 1234));
  // AND a moved-from Prg cannot be forked
  Prg moved(std::move(src));
  CHECK_THROWS_AS(src.fork_at(0), veil::ValueError);  // NOLINT(bugprone-use-after-move)
}
