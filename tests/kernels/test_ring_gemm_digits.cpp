// The tensor-core ring GEMM's arithmetic (kernels/ring_gemm_digits.h), checked on the CPU: the
// whole algorithm of kernels/cuda/ring_gemm.cu (signed digit split into the A8/B8 layout, one INT8
// x INT8 -> int32 GEMM per diagonal on sub-matrices, k-chunks, combination mod 2^64) is emulated
// with the same header functions and compared with a plain uint64 GEMM mod 2^64. Runs everywhere.

#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "kernels/cuda_gemm.h"
#include "kernels/ring_gemm_digits.h"

namespace rd = veil::kernels::ring_digits;

namespace {

using U64 = std::vector<uint64_t>;

/// Independent reference: C = A B mod 2^64, row-major, A [m, k], B [k, n].
U64 plain_gemm(int64_t m, int64_t n, int64_t k, const U64& a, const U64& b) {
  U64 c(static_cast<std::size_t>(m * n), 0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < k; ++p) {
      const uint64_t av = a[static_cast<std::size_t>(i * k + p)];
      for (int64_t j = 0; j < n; ++j) {
        c[static_cast<std::size_t>(i * n + j)] += av * b[static_cast<std::size_t>(p * n + j)];
      }
    }
  }
  return c;
}

struct EmulationStats {
  // Whether every int32 diagonal sum with d <= 3 equalled the exact (int64) sum.
  bool low_diagonals_exact = true;
};

/// cuBLASLt's "TN" INT8 GEMM as the GPU calls it (column-major, int32 output with wrap-around):
/// D[i + j ldd] = sum_q A'[q + i lda] B'[q + j ldb] for i < rows, j < cols, q < kd. The products
/// are summed in uint32 and reinterpreted (two's complement wrap-around without UB). `exact` gets
/// whether every int32 sum equalled the true (int64) sum.
void lt_tn_int8(int64_t rows,
                int64_t cols,
                int64_t kd,
                const int8_t* a,
                int64_t lda,
                const int8_t* b,
                int64_t ldb,
                int32_t* d,
                int64_t ldd,
                bool* exact) {
  for (int64_t j = 0; j < cols; ++j) {
    for (int64_t i = 0; i < rows; ++i) {
      uint32_t acc = 0;
      int64_t sum = 0;
      for (int64_t q = 0; q < kd; ++q) {
        const int32_t prod =
            static_cast<int32_t>(a[q + i * lda]) * static_cast<int32_t>(b[q + j * ldb]);
        acc += static_cast<uint32_t>(prod);
        sum += prod;
      }
      d[i + j * ldd] = static_cast<int32_t>(acc);
      if (static_cast<int64_t>(d[i + j * ldd]) != sum) {
        *exact = false;
      }
    }
  }
}

/// The GPU algorithm of kernels/cuda/ring_gemm.cu (tensor_core_gemm) on the CPU, with the same
/// index arithmetic: digit split of each k-chunk into A8 [m, 8 kp] and the transposed B digit
/// matrix [np, 8 kp] (store_digit_group, 4 k positions at a time, rows/positions beyond the data
/// zero), one TN INT8 GEMM per diagonal on sub-matrices (A' = B digits at diag_b_offset, B' = A8,
/// D [np, m] column-major = int32 plane d), and the combination of the 8 planes into C.
/// A is read at a[r a_rs + p a_cs], B at b[p b_rs + j b_cs]. chunk_k: rd::kChunkK normally; k
/// itself disables chunking (negative control).
U64 emulate_tensor_core_gemm(int64_t m,
                             int64_t n,
                             int64_t k,
                             const uint64_t* a,
                             int64_t a_rs,
                             int64_t a_cs,
                             const uint64_t* b,
                             int64_t b_rs,
                             int64_t b_cs,
                             int64_t chunk_k,
                             EmulationStats* stats) {
  U64 c(static_cast<std::size_t>(m * n), 0);
  const int64_t np = rd::padded_n(n);
  const int64_t chunks = k == 0 ? 0 : rd::num_chunks(k, chunk_k);
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t p0 = rd::chunk_begin(ch, chunk_k);
    const int64_t kc = rd::chunk_len(k, ch, chunk_k);
    const int64_t kp = rd::padded_k(kc);
    const int64_t ld8 = rd::kDigits * kp;
    std::vector<int8_t> a8(static_cast<std::size_t>(m * ld8), 99);  // junk: must be overwritten
    std::vector<int8_t> b8t(static_cast<std::size_t>(np * ld8), 99);
    // split_digits_kernel for A (rows m) and B (rows = output columns, np of them)
    auto split = [&](int64_t rows, int64_t rows_padded, const uint64_t* src, int64_t rs, int64_t cs,
                     int8_t* dst, bool reverse) {
      for (int64_t r = 0; r < rows_padded; ++r) {
        for (int64_t g = 0; g < kp / 4; ++g) {
          uint64_t x[4];
          for (int q = 0; q < 4; ++q) {
            const int64_t p = g * 4 + q;
            x[q] = (r < rows && p < kc) ? src[r * rs + p * cs] : 0;
          }
          rd::store_digit_group(x, dst + r * ld8, g, kp, reverse);
        }
      }
    };
    split(m, m, a + p0 * a_cs, a_rs, a_cs, a8.data(), false);
    split(n, np, b + p0 * b_rs, b_cs, b_rs, b8t.data(), true);
    const int64_t plane = m * np + 3;  // planes need not be adjacent
    std::vector<int32_t> cd(static_cast<std::size_t>(rd::kDigits * plane), 0);
    for (int d = 0; d < rd::kDigits; ++d) {
      bool exact = true;
      lt_tn_int8(np, m, rd::diag_k(d, kp), b8t.data() + rd::diag_b_offset(d, kp), ld8, a8.data(),
                 ld8, cd.data() + d * plane, np, &exact);
      if (d <= 3 && !exact) {
        stats->low_diagonals_exact = false;
      }
    }
    for (int64_t i = 0; i < m; ++i) {  // combine_kernel
      for (int64_t j = 0; j < n; ++j) {
        c[static_cast<std::size_t>(i * n + j)] +=
            rd::combine_diagonals(cd.data() + i * np + j, plane);
      }
    }
  }
  return c;
}

U64 emulate_tensor_core_gemm(int64_t m,
                             int64_t n,
                             int64_t k,
                             const U64& a,
                             const U64& b,
                             int64_t chunk_k,
                             EmulationStats* stats) {
  return emulate_tensor_core_gemm(m, n, k, a.data(), k, 1, b.data(), n, 1, chunk_k, stats);
}

/// Values that stress the digit split: 0, 1, 2^63, 2^64-1, all-digits -128 / 127 / 0x80 bytes,
/// and random bytes chosen from {0x00, 0x7F, 0x80, 0xFF, random}.
uint64_t edge_value(std::mt19937_64& rng) {
  static const uint64_t kFixed[] = {0,
                                    1,
                                    uint64_t{1} << 63,
                                    ~uint64_t{0},
                                    0x7F7F7F7F7F7F7F80ULL,  // every signed digit -128
                                    0x7F7F7F7F7F7F7F7FULL,  // every signed digit 127
                                    0x8080808080808080ULL,
                                    0xFF00FF00FF00FF00ULL};
  const uint64_t pick = rng() % 12;
  if (pick < 8) {
    return kFixed[pick];
  }
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) {
    static const uint64_t kBytes[] = {0x00, 0x7F, 0x80, 0xFF};
    const uint64_t r = rng();
    const uint64_t byte = (r & 4) != 0 ? (r >> 8) & 0xFF : kBytes[r & 3];
    x |= byte << (8 * i);
  }
  return x;
}

U64 random_matrix(int64_t count, std::mt19937_64& rng, bool edges) {
  U64 v(static_cast<std::size_t>(count));
  for (auto& x : v) {
    x = edges && (rng() & 1) != 0 ? edge_value(rng) : rng();
  }
  return v;
}

}  // namespace

TEST_CASE("signed base-256 digits reconstruct every uint64 and lie in [-128, 127]",
          "[kernels][ring_gemm_digits]") {
  std::mt19937_64 rng(71);
  std::vector<uint64_t> xs{0,
                           1,
                           127,
                           128,
                           255,
                           256,
                           uint64_t{1} << 63,
                           ~uint64_t{0},
                           0x7F7F7F7F7F7F7F80ULL,
                           0x8080808080808080ULL};
  for (int i = 0; i < 2000; ++i) {
    xs.push_back(i % 2 == 0 ? rng() : edge_value(rng));
  }
  for (const uint64_t x : xs) {
    int8_t s[rd::kDigits];
    rd::split_digits(x, s);
    CHECK(rd::join_digits(s) == x);
    for (int i = 0; i < rd::kDigits; ++i) {
      CHECK(rd::signed_digit(x, i) == s[i]);
    }
    // pack4_digit packs the same digit of four values little-endian.
    const uint32_t packed = rd::pack4_digit(x, 0, ~uint64_t{0}, x, 3);
    CHECK(static_cast<int8_t>(packed & 0xFF) == s[3]);
    CHECK(static_cast<int8_t>((packed >> 8) & 0xFF) == 0);
    CHECK(static_cast<int8_t>((packed >> 24) & 0xFF) == s[3]);
  }
  // Zero padding: the digits of 0 are all 0, so padded k positions add nothing.
  for (int i = 0; i < rd::kDigits; ++i) {
    CHECK(rd::signed_digit(0, i) == 0);
  }
  // Extremes: the all -128 pattern.
  for (int i = 0; i < rd::kDigits; ++i) {
    CHECK(rd::signed_digit(0x7F7F7F7F7F7F7F80ULL, i) == -128);
  }
}

TEST_CASE("chunking rule covers k exactly and keeps the low diagonals inside int32",
          "[kernels][ring_gemm_digits]") {
  STATIC_REQUIRE(rd::kChunkK == veil::kernels::cuda::kExactK);
  // (d + 1) * kp * 2^14 < 2^31 for d <= 3 at the largest (padded) chunk.
  STATIC_REQUIRE(4 * rd::kChunkK * (int64_t{1} << 14) < (int64_t{1} << 31));
  STATIC_REQUIRE(rd::kChunkK % rd::kPadK == 0);
  for (const int64_t k :
       {int64_t{0}, int64_t{1}, int64_t{8191}, int64_t{8192}, int64_t{8193}, int64_t{70000}}) {
    const int64_t chunks = rd::num_chunks(k);
    int64_t covered = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      CHECK(rd::chunk_begin(c) == covered);
      const int64_t len = rd::chunk_len(k, c);
      CHECK(len >= 1);
      CHECK(len <= rd::kChunkK);
      CHECK(rd::padded_k(len) <= rd::kChunkK);
      CHECK(rd::padded_k(len) % 4 == 0);
      covered += len;
    }
    CHECK(covered == k);
  }
  // Diagonal d's sub-matrices: A8 columns [0, (d+1) kp) meet B8 rows holding planes d..0.
  const int64_t kp = 32;
  for (int d = 0; d < rd::kDigits; ++d) {
    for (int i = 0; i <= d; ++i) {
      const int64_t b_row = rd::diag_b_offset(d, kp) + rd::a_plane_offset(i, kp);
      CHECK(b_row == rd::b_plane_offset(d - i, kp));
    }
    CHECK(rd::diag_b_offset(d, kp) + rd::diag_k(d, kp) == rd::kDigits * kp);
  }
}

TEST_CASE("emulated tensor-core ring GEMM equals the uint64 GEMM mod 2^64",
          "[kernels][ring_gemm_digits]") {
  std::mt19937_64 rng(2024);
  struct Shape {
    int64_t m, n, k;
  };
  const Shape shapes[] = {{1, 1, 1},  {3, 5, 7},  {4, 3, 0},    {2, 6, 5},
                          {5, 4, 13}, {7, 1, 33}, {2, 2, 70000}};
  for (const Shape& s : shapes) {
    for (const bool edges : {false, true}) {
      CAPTURE(s.m, s.n, s.k, edges);
      const U64 a = random_matrix(s.m * s.k, rng, edges);
      const U64 b = random_matrix(s.k * s.n, rng, edges);
      EmulationStats stats;
      const U64 got = emulate_tensor_core_gemm(s.m, s.n, s.k, a, b, rd::kChunkK, &stats);
      const U64 want = plain_gemm(s.m, s.n, s.k, a, b);
      CHECK(stats.low_diagonals_exact);
      CHECK(got == want);
      if (s.k == 0) {
        CHECK(got == U64(static_cast<std::size_t>(s.m * s.n), 0));
      }
    }
  }
}

TEST_CASE("emulated tensor-core ring GEMM reads transposed operands like the GPU kernels",
          "[kernels][ring_gemm_digits]") {
  std::mt19937_64 rng(2025);
  const int64_t m = 5;
  const int64_t n = 3;
  const int64_t k = 9;
  const U64 a = random_matrix(m * k, rng, true);
  const U64 b = random_matrix(k * n, rng, true);
  U64 at(a.size());  // A stored [k, m]
  U64 bt(b.size());  // B stored [n, k]
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < k; ++p) {
      at[static_cast<std::size_t>(p * m + i)] = a[static_cast<std::size_t>(i * k + p)];
    }
  }
  for (int64_t p = 0; p < k; ++p) {
    for (int64_t j = 0; j < n; ++j) {
      bt[static_cast<std::size_t>(j * k + p)] = b[static_cast<std::size_t>(p * n + j)];
    }
  }
  EmulationStats stats;
  // the strides ring_gemm.cu derives for trans_a (a_rs = 1, a_cs = lda) and trans_b (B element
  // (p, j) at b[j ldb + p])
  const U64 got =
      emulate_tensor_core_gemm(m, n, k, at.data(), 1, m, bt.data(), 1, k, rd::kChunkK, &stats);
  CHECK(got == plain_gemm(m, n, k, a, b));
}

TEST_CASE("k-chunking is necessary: without it the worst case overflows the exact diagonals",
          "[kernels][ring_gemm_digits]") {
  // GIVEN every digit -128 (products +2^14) and k = 70000 > 2^31 / (2 * 2^14)
  const int64_t m = 1;
  const int64_t n = 1;
  const int64_t k = 70000;
  const U64 a(static_cast<std::size_t>(k), 0x7F7F7F7F7F7F7F80ULL);
  const U64 b(static_cast<std::size_t>(k), 0x7F7F7F7F7F7F7F80ULL);
  const U64 want = plain_gemm(m, n, k, a, b);
  // WHEN the algorithm runs as one chunk of k
  EmulationStats unchunked;
  const U64 bad = emulate_tensor_core_gemm(m, n, k, a, b, k, &unchunked);
  // THEN an exact diagonal's int32 sum wraps and the product is wrong
  CHECK_FALSE(unchunked.low_diagonals_exact);
  CHECK(bad != want);
  // AND with chunks of kExactK it is exact
  EmulationStats chunked;
  const U64 good = emulate_tensor_core_gemm(m, n, k, a, b, rd::kChunkK, &chunked);
  CHECK(chunked.low_diagonals_exact);
  CHECK(good == want);
}
