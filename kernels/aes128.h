#pragma once
// AES-128 (FIPS-197) for the PRG keystream, written once for the host and the GPU (VEIL_HD): the
// key expansion to 11 round keys, single-block encryption in two independent formulations, and
// the counter-mode (CTR) keystream with a 128-bit big-endian block counter as OpenSSL's
// EVP_aes_128_ctr increments it.
//
// - encrypt_block_bytes: the byte-oriented cipher of FIPS-197 §5.1 (SubBytes, ShiftRows,
//   MixColumns, AddRoundKey on a 4x4 byte state). Slow; the independent reference of the tests.
// - encrypt_block_words: the 32-bit T-table formulation (Daemen & Rijmen, "AES Proposal:
//   Rijndael", §5.2.1): each of rounds 1..9 is 16 table lookups and XORs, the last round takes
//   the S-box bytes out of the same tables. The tables are an argument, so the GPU kernel passes
//   copies in shared memory (kernels/cuda/prg.cu) and the host passes host_ttables(); this is the
//   code path the device runs, exercised on the CPU by tests/kernels/test_aes128.cpp.
//
// The S-box is computed from its definition (multiplicative inverse in GF(2^8) modulo
// x^8 + x^4 + x^3 + x + 1 followed by the affine map of FIPS-197 §5.1.1), not typed in as a
// table, so the FIPS-197 Appendix C.1 vector checks the whole chain.
//
// Security: this is a table-based AES; table lookups indexed by key-dependent data are not
// constant time (cache/shared-memory bank timing). veil uses it only to expand PRG seeds into
// keystream inside one party's own process and device. Round keys are key material: callers
// wipe them (secure_wipe) when done and never log them.
//
// C++17 (this header is also compiled by nvcc for the .cu files); no OpenSSL, no CUDA headers.

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/cuda/hd.h"

namespace veil::kernels::aes {

/// The 44 words w[0..43] of the AES-128 key schedule (FIPS-197 §5.2): round key r is
/// w[4r..4r+3], each word the big-endian packing of 4 key-schedule bytes.
struct RoundKeys {
  uint32_t w[44];
};

/// A 128-bit counter block value: the cipher input is hi (bytes 0..7) then lo (bytes 8..15), both
/// big-endian.
struct Counter128 {
  uint64_t hi = 0;
  uint64_t lo = 0;
};

/// The four T-tables of the round function (4 KiB). te[t][x] = rotr(T0(x), 8t) with
/// T0(x) = (2 S(x), S(x), S(x), 3 S(x)) as big-endian bytes.
struct TTables {
  uint32_t te[4][256];
};

// ---- GF(2^8) and the S-box ----------------------------------------------------------------------

/// Multiplication by x in GF(2^8) mod x^8 + x^4 + x^3 + x + 1 (FIPS-197 §4.2.1).
VEIL_HD constexpr uint8_t xtime(uint8_t a) {
  return static_cast<uint8_t>((a << 1) ^ ((a >> 7) * 0x1b));
}

/// Product in GF(2^8) (shift-and-add).
VEIL_HD constexpr uint8_t gf_mul(uint8_t a, uint8_t b) {
  uint8_t r = 0;
  for (int i = 0; i < 8; ++i) {
    if ((b & 1) != 0) {
      r = static_cast<uint8_t>(r ^ a);
    }
    a = xtime(a);
    b = static_cast<uint8_t>(b >> 1);
  }
  return r;
}

/// Multiplicative inverse in GF(2^8) as a^254 (0 maps to 0, as FIPS-197 §5.1.1 specifies).
VEIL_HD constexpr uint8_t gf_inv(uint8_t a) {
  // a^254 = a^(2+4+8+16+32+64+128): square repeatedly, multiply the squares in.
  uint8_t result = 1;
  uint8_t square = a;
  for (int i = 1; i < 8; ++i) {
    square = gf_mul(square, square);  // a^(2^i)
    result = gf_mul(result, square);
  }
  return result;
}

/// The AES S-box value S(x): inverse, then b ^ rotl(b,1) ^ rotl(b,2) ^ rotl(b,3) ^ rotl(b,4) ^
/// 0x63.
VEIL_HD constexpr uint8_t sbox(uint8_t x) {
  const unsigned b = gf_inv(x);
  unsigned s = b;
  for (int i = 1; i <= 4; ++i) {
    s ^= ((b << i) | (b >> (8 - i))) & 0xffu;
  }
  return static_cast<uint8_t>(s ^ 0x63u);
}

/// Entry x of T-table t (0..3).
VEIL_HD constexpr uint32_t te_entry(int t, uint8_t x) {
  const uint8_t s = sbox(x);
  const uint8_t s2 = xtime(s);
  const uint32_t w = (uint32_t{s2} << 24) | (uint32_t{s} << 16) | (uint32_t{s} << 8) |
                     uint32_t{static_cast<uint8_t>(s2 ^ s)};
  const int r = 8 * (t & 3);
  return r == 0 ? w : (w >> r) | (w << (32 - r));
}

/// Writes entry x of all four T-tables (one S-box evaluation; tables 1..3 are rotations of 0).
/// The GPU kernel calls it once per thread to build its shared-memory tables.
VEIL_HD inline void set_ttable_entries(uint8_t x, uint32_t (*te)[256]) {
  const uint32_t e = te_entry(0, x);
  te[0][x] = e;
  te[1][x] = (e >> 8) | (e << 24);
  te[2][x] = (e >> 16) | (e << 16);
  te[3][x] = (e >> 24) | (e << 8);
}

/// The T-tables in host memory, computed once (thread-safe static initialisation). Host only.
inline const TTables& host_ttables() {
  static const TTables tables = [] {
    TTables t{};
    for (int x = 0; x < 256; ++x) {
      set_ttable_entries(static_cast<uint8_t>(x), t.te);
    }
    return t;
  }();
  return tables;
}

// ---- key schedule -------------------------------------------------------------------------------

/// Expands a 16-byte key into the 11 round keys (FIPS-197 §5.2, Nk = 4, Nr = 10).
VEIL_HD constexpr void expand_key(const uint8_t* key, RoundKeys& rk) {
  for (int i = 0; i < 4; ++i) {
    rk.w[i] = (uint32_t{key[4 * i]} << 24) | (uint32_t{key[4 * i + 1]} << 16) |
              (uint32_t{key[4 * i + 2]} << 8) | uint32_t{key[4 * i + 3]};
  }
  uint8_t rcon = 1;
  for (int i = 4; i < 44; ++i) {
    uint32_t t = rk.w[i - 1];
    if (i % 4 == 0) {
      t = (t << 8) | (t >> 24);                                    // RotWord
      t = (uint32_t{sbox(static_cast<uint8_t>(t >> 24))} << 24) |  // SubWord
          (uint32_t{sbox(static_cast<uint8_t>(t >> 16))} << 16) |
          (uint32_t{sbox(static_cast<uint8_t>(t >> 8))} << 8) |
          uint32_t{sbox(static_cast<uint8_t>(t))};
      t ^= uint32_t{rcon} << 24;
      rcon = xtime(rcon);
    }
    rk.w[i] = rk.w[i - 4] ^ t;
  }
}

/// Overwrites n bytes at p with zeros through a volatile pointer, so that the compiler cannot drop
/// the stores as dead (used for round keys and key copies).
inline void secure_wipe(void* p, std::size_t n) {
  volatile unsigned char* v = static_cast<volatile unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = 0;
  }
}

// ---- byte-oriented reference cipher -------------------------------------------------------------

/// Encrypts one 16-byte block (FIPS-197 §5.1, byte by byte). in and out may alias.
VEIL_HD constexpr void encrypt_block_bytes(const RoundKeys& rk, const uint8_t* in, uint8_t* out) {
  // state[r + 4c] = byte of row r, column c; input byte i goes to row i % 4, column i / 4.
  uint8_t s[16] = {};
  for (int i = 0; i < 16; ++i) {
    s[i] = static_cast<uint8_t>(in[i] ^ (rk.w[i / 4] >> (24 - 8 * (i % 4))));
  }
  for (int round = 1; round <= 10; ++round) {
    uint8_t t[16] = {};
    // SubBytes + ShiftRows: row r moves left by r columns.
    for (int c = 0; c < 4; ++c) {
      for (int r = 0; r < 4; ++r) {
        t[r + 4 * c] = sbox(s[r + 4 * ((c + r) % 4)]);
      }
    }
    if (round < 10) {  // MixColumns
      for (int c = 0; c < 4; ++c) {
        const uint8_t a0 = t[4 * c];
        const uint8_t a1 = t[4 * c + 1];
        const uint8_t a2 = t[4 * c + 2];
        const uint8_t a3 = t[4 * c + 3];
        t[4 * c] = static_cast<uint8_t>(gf_mul(a0, 2) ^ gf_mul(a1, 3) ^ a2 ^ a3);
        t[4 * c + 1] = static_cast<uint8_t>(a0 ^ gf_mul(a1, 2) ^ gf_mul(a2, 3) ^ a3);
        t[4 * c + 2] = static_cast<uint8_t>(a0 ^ a1 ^ gf_mul(a2, 2) ^ gf_mul(a3, 3));
        t[4 * c + 3] = static_cast<uint8_t>(gf_mul(a0, 3) ^ a1 ^ a2 ^ gf_mul(a3, 2));
      }
    }
    for (int i = 0; i < 16; ++i) {  // AddRoundKey
      s[i] = static_cast<uint8_t>(t[i] ^ (rk.w[4 * round + i / 4] >> (24 - 8 * (i % 4))));
    }
  }
  for (int i = 0; i < 16; ++i) {
    out[i] = s[i];
  }
}

// ---- T-table cipher (the device path) -----------------------------------------------------------

/// Encrypts the block held as 4 big-endian words (in[c] = column c) with the T-tables `te`
/// (host_ttables() on the host, a shared-memory copy on the device). out may alias in.
VEIL_HD inline void encrypt_block_words(const RoundKeys& rk,
                                        const uint32_t (*te)[256],
                                        const uint32_t* in,
                                        uint32_t* out) {
  uint32_t s0 = in[0] ^ rk.w[0];
  uint32_t s1 = in[1] ^ rk.w[1];
  uint32_t s2 = in[2] ^ rk.w[2];
  uint32_t s3 = in[3] ^ rk.w[3];
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 1; r < 10; ++r) {
    const uint32_t t0 = te[0][s0 >> 24] ^ te[1][(s1 >> 16) & 0xff] ^ te[2][(s2 >> 8) & 0xff] ^
                        te[3][s3 & 0xff] ^ rk.w[4 * r];
    const uint32_t t1 = te[0][s1 >> 24] ^ te[1][(s2 >> 16) & 0xff] ^ te[2][(s3 >> 8) & 0xff] ^
                        te[3][s0 & 0xff] ^ rk.w[4 * r + 1];
    const uint32_t t2 = te[0][s2 >> 24] ^ te[1][(s3 >> 16) & 0xff] ^ te[2][(s0 >> 8) & 0xff] ^
                        te[3][s1 & 0xff] ^ rk.w[4 * r + 2];
    const uint32_t t3 = te[0][s3 >> 24] ^ te[1][(s0 >> 16) & 0xff] ^ te[2][(s1 >> 8) & 0xff] ^
                        te[3][s2 & 0xff] ^ rk.w[4 * r + 3];
    s0 = t0;
    s1 = t1;
    s2 = t2;
    s3 = t3;
  }
  // Last round: SubBytes + ShiftRows + AddRoundKey. te[2] holds S(x) in its top byte, te[3] in
  // byte 2, te[0] in byte 1, te[1] in byte 0.
  out[0] = (te[2][s0 >> 24] & 0xff000000u) ^ (te[3][(s1 >> 16) & 0xff] & 0x00ff0000u) ^
           (te[0][(s2 >> 8) & 0xff] & 0x0000ff00u) ^ (te[1][s3 & 0xff] & 0x000000ffu) ^ rk.w[40];
  out[1] = (te[2][s1 >> 24] & 0xff000000u) ^ (te[3][(s2 >> 16) & 0xff] & 0x00ff0000u) ^
           (te[0][(s3 >> 8) & 0xff] & 0x0000ff00u) ^ (te[1][s0 & 0xff] & 0x000000ffu) ^ rk.w[41];
  out[2] = (te[2][s2 >> 24] & 0xff000000u) ^ (te[3][(s3 >> 16) & 0xff] & 0x00ff0000u) ^
           (te[0][(s0 >> 8) & 0xff] & 0x0000ff00u) ^ (te[1][s1 & 0xff] & 0x000000ffu) ^ rk.w[42];
  out[3] = (te[2][s3 >> 24] & 0xff000000u) ^ (te[3][(s0 >> 16) & 0xff] & 0x00ff0000u) ^
           (te[0][(s1 >> 8) & 0xff] & 0x0000ff00u) ^ (te[1][s2 & 0xff] & 0x000000ffu) ^ rk.w[43];
}

// ---- counter mode -------------------------------------------------------------------------------

/// c + k mod 2^128 (the carry out of lo goes into hi, as OpenSSL's CTR increment does).
VEIL_HD constexpr Counter128 counter_add(Counter128 c, uint64_t k) {
  Counter128 r;
  r.lo = c.lo + k;
  r.hi = c.hi + (r.lo < c.lo ? 1u : 0u);
  return r;
}

/// The counter block as the cipher's 4 big-endian input words.
VEIL_HD constexpr void counter_words(Counter128 c, uint32_t* w) {
  w[0] = static_cast<uint32_t>(c.hi >> 32);
  w[1] = static_cast<uint32_t>(c.hi);
  w[2] = static_cast<uint32_t>(c.lo >> 32);
  w[3] = static_cast<uint32_t>(c.lo);
}

/// Byte i (0..15) of a block held as 4 big-endian words.
VEIL_HD constexpr uint8_t block_byte(const uint32_t* w, int i) {
  return static_cast<uint8_t>(w[i / 4] >> (24 - 8 * (i % 4)));
}

/// Bytes 4j..4j+3 of a block as the little-endian uint32 a 4-byte store writes (byte swap of w[j]).
VEIL_HD constexpr uint32_t block_le32(const uint32_t* w, int j) {
  const uint32_t x = w[j];
  return (x >> 24) | ((x >> 8) & 0x0000ff00u) | ((x << 8) & 0x00ff0000u) | (x << 24);
}

/// Bytes 8j..8j+7 of a block as the little-endian uint64 an 8-byte store writes.
VEIL_HD constexpr uint64_t block_le64(const uint32_t* w, int j) {
  return uint64_t{block_le32(w, 2 * j)} | (uint64_t{block_le32(w, 2 * j + 1)} << 32);
}

/// The widest store (16, 8, 4 or 1 bytes) that is aligned for every whole block of a keystream
/// written to `out` when output byte 0 is byte `skip` (0..15) of the first block: block j starts
/// at out - skip + 16 j, whose residue mod 16 does not depend on j.
VEIL_HD inline int widest_store(const uint8_t* out, int skip) {
  const auto residue =
      (reinterpret_cast<std::uintptr_t>(out) - static_cast<std::uintptr_t>(skip)) % 16u;
  if (residue == 0) {
    return 16;
  }
  if (residue % 8 == 0) {
    return 8;
  }
  return residue % 4 == 0 ? 4 : 1;
}

/// Stores the keystream block `w` whose byte 0 belongs at output index `start` (may be negative
/// or run past nbytes: only bytes inside [0, nbytes) are written). A block wholly inside takes
/// `store_bytes`-wide stores (from widest_store for this output and skip); edge blocks are
/// written byte by byte. The per-thread store of the GPU kernel.
VEIL_HD inline void store_block(
    const uint32_t* w, int64_t start, int64_t nbytes, int store_bytes, uint8_t* out) {
  if (start >= 0 && start + 16 <= nbytes && store_bytes > 1) {
    uint8_t* dst = out + start;
    if (store_bytes == 16) {
      struct alignas(16) Quad {
        uint32_t v[4];
      };
      const Quad q{{block_le32(w, 0), block_le32(w, 1), block_le32(w, 2), block_le32(w, 3)}};
#if defined(__CUDA_ARCH__)
      *reinterpret_cast<Quad*>(dst) = q;
#else
      std::memcpy(dst, &q, sizeof(q));
#endif
    } else if (store_bytes == 8) {
      const uint64_t d[2] = {block_le64(w, 0), block_le64(w, 1)};
#if defined(__CUDA_ARCH__)
      reinterpret_cast<uint64_t*>(dst)[0] = d[0];
      reinterpret_cast<uint64_t*>(dst)[1] = d[1];
#else
      std::memcpy(dst, d, sizeof(d));
#endif
    } else {
      for (int q = 0; q < 4; ++q) {
        const uint32_t v = block_le32(w, q);
#if defined(__CUDA_ARCH__)
        reinterpret_cast<uint32_t*>(dst)[q] = v;
#else
        std::memcpy(dst + 4 * q, &v, sizeof(v));
#endif
      }
    }
    return;
  }
  for (int i = 0; i < 16; ++i) {
    const int64_t at = start + i;
    if (at >= 0 && at < nbytes) {
      out[at] = block_byte(w, i);
    }
  }
}

/// Host keystream: writes bytes [skip, skip + nbytes) of the stream that starts at counter block
/// `first` (block first, first + 1, ... mod 2^128) to out; skip < 16 is not required. The host
/// twin of kernels::cuda::aes128_ctr_keystream, used by tests and as a CPU reference.
inline void ctr_keystream_host(
    const RoundKeys& rk, Counter128 first, uint64_t skip, uint8_t* out, std::size_t nbytes) {
  const TTables& t = host_ttables();
  Counter128 block = counter_add(first, skip / 16);
  std::size_t offset = static_cast<std::size_t>(skip % 16);
  std::size_t done = 0;
  while (done < nbytes) {
    uint32_t in[4];
    uint32_t ks[4];
    counter_words(block, in);
    encrypt_block_words(rk, t.te, in, ks);
    for (std::size_t i = offset; i < 16 && done < nbytes; ++i) {
      out[done++] = block_byte(ks, static_cast<int>(i));
    }
    offset = 0;
    block = counter_add(block, 1);
  }
}

/// Host keystream bytes [position, position + nbytes) of the stream that starts at block 0 (the
/// crypto::Prg stream of the key behind rk).
inline void ctr_keystream_host(const RoundKeys& rk,
                               uint64_t position,
                               uint8_t* out,
                               std::size_t nbytes) {
  ctr_keystream_host(rk, Counter128{}, position, out, nbytes);
}

/// The GPU kernel's work split run serially on the host: block j = 0 .. nblocks-1 of counter
/// first_block + j, stored with store_block at output index 16 j - skip. Same output as
/// ctr_keystream_host; exists so the CPU tests cover the kernel's indexing and stores.
inline void ctr_keystream_kernel_emulation(const RoundKeys& rk,
                                           uint64_t position,
                                           uint8_t* out,
                                           int64_t nbytes) {
  if (nbytes <= 0) {
    return;
  }
  const TTables& t = host_ttables();
  const int skip = static_cast<int>(position % 16);
  const uint64_t nblocks = (static_cast<uint64_t>(skip) + static_cast<uint64_t>(nbytes) + 15) / 16;
  const int store_bytes = widest_store(out, skip);
  for (uint64_t j = 0; j < nblocks; ++j) {
    uint32_t w[4];
    counter_words(Counter128{0, position / 16 + j}, w);
    encrypt_block_words(rk, t.te, w, w);
    store_block(w, static_cast<int64_t>(16 * j) - skip, nbytes, store_bytes, out);
  }
}

}  // namespace veil::kernels::aes
