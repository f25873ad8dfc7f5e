// kernels/aes128.h on the host: the FIPS-197 vectors through both cipher formulations, the
// T-table path against the byte-oriented one, and the CTR keystream (the host twin of the GPU
// kernel, and a serial emulation of the kernel's work split and stores) against crypto::Prg
// (OpenSSL EVP aes-128-ctr) for random keys, positions and lengths, including counter carries.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include <catch2/catch.hpp>
#include <openssl/evp.h>

#include "crypto/prg.h"
#include "kernels/aes128.h"

namespace aes = veil::kernels::aes;
using veil::crypto::Prg;

namespace {

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

aes::RoundKeys expand(const Prg::Seed& key) {
  aes::RoundKeys rk{};
  aes::expand_key(key.data(), rk);
  return rk;
}

// crypto::Prg's keystream bytes [position, position + n).
std::vector<uint8_t> prg_stream(const Prg::Seed& key, uint64_t position, std::size_t n) {
  Prg prg(key);
  prg.seek(position);
  std::vector<uint8_t> out(n);
  prg.fill(std::as_writable_bytes(std::span<uint8_t>(out)));
  return out;
}

// OpenSSL's aes-128-ctr keystream starting at an arbitrary 128-bit counter block (hi, lo): an
// independent check of the carry into the upper 64 bits, which Prg::seek (byte positions below
// 2^64) cannot reach.
std::vector<uint8_t> openssl_ctr(const Prg::Seed& key, aes::Counter128 first, std::size_t n) {
  std::array<unsigned char, 16> iv{};
  for (int i = 0; i < 8; ++i) {
    iv[static_cast<std::size_t>(7 - i)] = static_cast<unsigned char>(first.hi >> (8 * i));
    iv[static_cast<std::size_t>(15 - i)] = static_cast<unsigned char>(first.lo >> (8 * i));
  }
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      &EVP_CIPHER_CTX_free);
  REQUIRE(ctx != nullptr);
  REQUIRE(EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_ctr(), nullptr, key.data(), iv.data()) == 1);
  const std::vector<uint8_t> zeros(n, 0);
  std::vector<uint8_t> out(n);
  int len = 0;
  REQUIRE(EVP_EncryptUpdate(ctx.get(), out.data(), &len, zeros.data(), static_cast<int>(n)) == 1);
  REQUIRE(len == static_cast<int>(n));
  return out;
}

}  // namespace

TEST_CASE("aes128: FIPS-197 S-box and key schedule examples", "[aes128]") {
  // FIPS-197 §5.1.1: S(0x53) = 0xed; S(0) = 0x63 (the inverse of 0 is taken as 0).
  CHECK(aes::sbox(0x53) == 0xed);
  CHECK(aes::sbox(0x00) == 0x63);
  // The S-box is a permutation.
  std::array<int, 256> seen{};
  for (int x = 0; x < 256; ++x) {
    ++seen[aes::sbox(static_cast<uint8_t>(x))];
  }
  for (int c : seen) {
    REQUIRE(c == 1);
  }
  // FIPS-197 Appendix A.1: key 2b7e1516 28aed2a6 abf71588 09cf4f3c expands to w[4] = a0fafe17 and
  // w[43] = b6630ca6.
  const auto key = from_hex("2b7e151628aed2a6abf7158809cf4f3c");
  aes::RoundKeys rk{};
  aes::expand_key(key.data(), rk);
  CHECK(rk.w[4] == 0xa0fafe17u);
  CHECK(rk.w[43] == 0xb6630ca6u);
}

TEST_CASE("aes128: FIPS-197 Appendix C.1 vector through both cipher formulations", "[aes128]") {
  const auto key = from_hex("000102030405060708090a0b0c0d0e0f");
  const auto plain = from_hex("00112233445566778899aabbccddeeff");
  const auto expected = from_hex("69c4e0d86a7b0430d8cdb78070b4c55a");
  aes::RoundKeys rk{};
  aes::expand_key(key.data(), rk);

  std::array<uint8_t, 16> out{};
  aes::encrypt_block_bytes(rk, plain.data(), out.data());
  CHECK(std::vector<uint8_t>(out.begin(), out.end()) == expected);

  uint32_t in_w[4];
  for (std::size_t c = 0; c < 4; ++c) {
    in_w[c] = (uint32_t{plain[4 * c]} << 24) | (uint32_t{plain[4 * c + 1]} << 16) |
              (uint32_t{plain[4 * c + 2]} << 8) | uint32_t{plain[4 * c + 3]};
  }
  uint32_t out_w[4];
  aes::encrypt_block_words(rk, aes::host_ttables().te, in_w, out_w);
  for (int i = 0; i < 16; ++i) {
    CHECK(aes::block_byte(out_w, i) == expected[static_cast<std::size_t>(i)]);
  }
}

TEST_CASE("aes128: T-table tables and cipher equal the byte-oriented cipher", "[aes128]") {
  const aes::TTables& t = aes::host_ttables();
  for (int table = 0; table < 4; ++table) {
    for (int x = 0; x < 256; ++x) {
      REQUIRE(t.te[table][x] == aes::te_entry(table, static_cast<uint8_t>(x)));
    }
  }
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const Prg::Seed key = Prg::os_seed();
    const aes::RoundKeys rk = expand(key);
    uint32_t in_w[4];
    std::array<uint8_t, 16> in_b{};
    for (int c = 0; c < 4; ++c) {
      in_w[c] = static_cast<uint32_t>(rng());
    }
    for (int i = 0; i < 16; ++i) {
      in_b[static_cast<std::size_t>(i)] = aes::block_byte(in_w, i);
    }
    std::array<uint8_t, 16> ref{};
    aes::encrypt_block_bytes(rk, in_b.data(), ref.data());
    uint32_t out_w[4];
    aes::encrypt_block_words(rk, t.te, in_w, out_w);
    for (int i = 0; i < 16; ++i) {
      REQUIRE(aes::block_byte(out_w, i) == ref[static_cast<std::size_t>(i)]);
    }
  }
}

TEST_CASE("aes128: little-endian store words match the block's byte order", "[aes128]") {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 100; ++trial) {
    uint32_t w[4];
    for (auto& x : w) {
      x = static_cast<uint32_t>(rng());
    }
    std::array<uint8_t, 16> by_byte{};
    for (int i = 0; i < 16; ++i) {
      by_byte[static_cast<std::size_t>(i)] = aes::block_byte(w, i);
    }
    std::array<uint8_t, 16> by_32{};
    std::array<uint8_t, 16> by_64{};
    for (int q = 0; q < 4; ++q) {
      const uint32_t v = aes::block_le32(w, q);
      for (int b = 0; b < 4; ++b) {
        by_32[static_cast<std::size_t>(4 * q + b)] = static_cast<uint8_t>(v >> (8 * b));
      }
    }
    for (int q = 0; q < 2; ++q) {
      const uint64_t v = aes::block_le64(w, q);
      for (int b = 0; b < 8; ++b) {
        by_64[static_cast<std::size_t>(8 * q + b)] = static_cast<uint8_t>(v >> (8 * b));
      }
    }
    REQUIRE(by_32 == by_byte);
    REQUIRE(by_64 == by_byte);
  }
}

TEST_CASE("aes128: host CTR keystream equals crypto::Prg at random positions and lengths",
          "[aes128]") {
  std::mt19937_64 rng(2024);
  const std::size_t fixed_lengths[] = {0, 1, 15, 16, 17, 4096 + 3};
  for (int trial = 0; trial < 40; ++trial) {
    const Prg::Seed key = Prg::os_seed();
    const aes::RoundKeys rk = expand(key);
    // Positions: aligned, unaligned, and large (beyond 2^32 blocks for a third of the trials).
    uint64_t position = rng() % 100000;
    if (trial % 3 == 1) {
      position = (uint64_t{1} << 40) + rng() % (uint64_t{1} << 40);
    } else if (trial % 3 == 2) {
      position = rng() >> 8;  // up to 2^56 bytes = 2^52 blocks
    }
    if (trial % 4 == 0) {
      position -= position % 16;
    }
    for (const std::size_t n : {fixed_lengths[static_cast<std::size_t>(trial) % 6],
                                static_cast<std::size_t>(rng() % 300)}) {
      const auto ref = prg_stream(key, position, n);
      std::vector<uint8_t> host(n, 0xa5);
      aes::ctr_keystream_host(rk, position, host.data(), n);
      REQUIRE(host == ref);
    }
  }
}

TEST_CASE("aes128: kernel work split and stores reproduce Prg for every output alignment",
          "[aes128]") {
  // The GPU kernel's per-block indexing and 16/8/4/1-byte stores, run serially on the host: the
  // output pointer takes every residue mod 16, the start every residue mod 16.
  std::mt19937_64 rng(99);
  const Prg::Seed key = Prg::os_seed();
  const aes::RoundKeys rk = expand(key);
  const std::size_t lengths[] = {0, 1, 15, 16, 17, 33, 64, 4096 + 3};
  std::vector<uint8_t> buffer(4096 + 64);
  for (int out_offset = 0; out_offset < 16; ++out_offset) {
    for (int skip = 0; skip < 16; ++skip) {
      const std::size_t n = lengths[rng() % 8];
      const uint64_t position = 16 * (rng() % 100000) + static_cast<uint64_t>(skip);
      const auto ref = prg_stream(key, position, n);
      std::fill(buffer.begin(), buffer.end(), uint8_t{0x5a});
      uint8_t* out = buffer.data() + out_offset;
      aes::ctr_keystream_kernel_emulation(rk, position, out, static_cast<int64_t>(n));
      REQUIRE(std::vector<uint8_t>(out, out + n) == ref);
      // Nothing outside [out, out + n) was touched.
      for (std::size_t i = 0; i < buffer.size(); ++i) {
        const bool inside = i >= static_cast<std::size_t>(out_offset) &&
                            i < static_cast<std::size_t>(out_offset) + n;
        if (!inside) {
          REQUIRE(buffer[i] == 0x5a);
        }
      }
    }
  }
  // The chosen store width follows the alignment of the block starts.
  alignas(16) std::array<uint8_t, 32> a{};
  CHECK(aes::widest_store(a.data(), 0) == 16);
  CHECK(aes::widest_store(a.data() + 3, 3) == 16);
  CHECK(aes::widest_store(a.data() + 8, 0) == 8);
  CHECK(aes::widest_store(a.data(), 8) == 8);
  CHECK(aes::widest_store(a.data() + 4, 0) == 4);
  CHECK(aes::widest_store(a.data() + 1, 0) == 1);
}

TEST_CASE("aes128: counter carries across 2^32 and 2^64 blocks match OpenSSL", "[aes128]") {
  const Prg::Seed key = Prg::os_seed();
  const aes::RoundKeys rk = expand(key);
  // Block index 2^32 - 1 -> 2^32 (carry between the counter's 32-bit words), via Prg::seek.
  const uint64_t block32 = (uint64_t{1} << 32) - 1;
  for (const uint64_t skip : {uint64_t{0}, uint64_t{5}, uint64_t{15}}) {
    const uint64_t position = 16 * block32 + skip;
    const std::size_t n = 48 + 7;
    const auto ref = prg_stream(key, position, n);
    std::vector<uint8_t> host(n);
    aes::ctr_keystream_host(rk, position, host.data(), n);
    REQUIRE(host == ref);
    std::vector<uint8_t> emulated(n);
    aes::ctr_keystream_kernel_emulation(rk, position, emulated.data(), static_cast<int64_t>(n));
    REQUIRE(emulated == ref);
  }
  // Block index 2^64 - 1 -> 2^64 (carry into the upper 64 bits) and 2^128 - 1 -> 0 (wrap), against
  // OpenSSL started at those counter blocks.
  const aes::Counter128 starts[] = {
      {0, ~uint64_t{0}}, {~uint64_t{0}, ~uint64_t{0}}, {3, ~uint64_t{0} - 1}};
  for (const aes::Counter128 first : starts) {
    const std::size_t n = 64 + 9;
    const auto ref = openssl_ctr(key, first, n);
    std::vector<uint8_t> host(n);
    aes::ctr_keystream_host(rk, first, 0, host.data(), n);
    REQUIRE(host == ref);
    // Starting mid-block (skip 21 bytes = one block + 5) continues the same stream.
    std::vector<uint8_t> shifted(n - 21);
    aes::ctr_keystream_host(rk, first, 21, shifted.data(), shifted.size());
    REQUIRE(std::vector<uint8_t>(ref.begin() + 21, ref.end()) == shifted);
  }
  CHECK(aes::counter_add({0, ~uint64_t{0}}, 1).hi == 1);
  CHECK(aes::counter_add({0, ~uint64_t{0}}, 1).lo == 0);
}
