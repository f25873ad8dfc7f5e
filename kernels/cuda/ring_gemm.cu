// GEMMs on the GPU (kernels/cuda_gemm.h): the ring GEMM mod 2^64 on INT8 tensor cores through
// cuBLASLt (digit split, 8 diagonal INT8 GEMMs per k-chunk, combine), the SIMT uint64 reference
// kernel, float GEMMs through cuBLAS, and the benchmark helpers (CrypTen's float64-limb ring GEMM,
// event timing). cuBLAS and cuBLASLt are opened at first use (kernels/cuda/dynlib.h). All work goes
// to cudaStreamPerThread.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels/cuda/arg_checks.h"
#include "kernels/cuda/dynlib.h"
#include "kernels/cuda/handles.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_gemm.h"
#include "kernels/error.h"
#include "kernels/ring_gemm_digits.h"

namespace veil::kernels::cuda {

namespace rd = ::veil::kernels::ring_digits;
static_assert(rd::kChunkK == kExactK, "ring_gemm_digits.h and cuda_gemm.h disagree on kExactK");

namespace {

#define VEIL_GEMM_STREAM cudaStreamPerThread  // every launch, copy and library call of this file

using checks::sizes3;

void check_cuda(cudaError_t err, const char* op, const std::string& detail) {
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    throw CudaError(std::string("[cuda::") + op + "] " + cudaGetErrorString(err) + " " + detail);
  }
}

/// Makes `device` current for the scope; restores the previous device.
class DeviceScope {
 public:
  DeviceScope(int device, const char* op) {
    check_cuda(cudaGetDevice(&prev_), op, "(cudaGetDevice)");
    if (prev_ != device) {
      check_cuda(cudaSetDevice(device), op, "(device " + std::to_string(device) + ")");
      changed_ = true;
    }
  }
  ~DeviceScope() {
    if (changed_) {
      (void)cudaSetDevice(prev_);
    }
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int prev_ = 0;
  bool changed_ = false;
};

using detail::Scratch;

std::size_t align256(std::size_t x) {
  return (x + 255) / 256 * 256;
}

unsigned blocks_for(int64_t work, int threads) {
  const int64_t b = (work + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

// ---- libraries ----------------------------------------------------------------------------------

struct LtApi {
  decltype(&cublasLtCreate) create;
  decltype(&cublasLtMatmulDescCreate) desc_create;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set;
  decltype(&cublasLtMatrixLayoutCreate) layout_create;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic;
  decltype(&cublasLtMatmul) matmul;
};

const LtApi& lt_api() {
  static const LtApi api = [] {
    const std::string so = detail::versioned_soname("libcublasLt");
    void* lib = detail::open_library({so.c_str(), "libcublasLt.so"}, "ring_gemm");
    const char* w = "ring_gemm";
    LtApi a{};
    a.create = detail::symbol<decltype(cublasLtCreate)>(lib, "cublasLtCreate", w);
    a.desc_create =
        detail::symbol<decltype(cublasLtMatmulDescCreate)>(lib, "cublasLtMatmulDescCreate", w);
    a.desc_set = detail::symbol<decltype(cublasLtMatmulDescSetAttribute)>(
        lib, "cublasLtMatmulDescSetAttribute", w);
    a.layout_create =
        detail::symbol<decltype(cublasLtMatrixLayoutCreate)>(lib, "cublasLtMatrixLayoutCreate", w);
    a.pref_create = detail::symbol<decltype(cublasLtMatmulPreferenceCreate)>(
        lib, "cublasLtMatmulPreferenceCreate", w);
    a.pref_set = detail::symbol<decltype(cublasLtMatmulPreferenceSetAttribute)>(
        lib, "cublasLtMatmulPreferenceSetAttribute", w);
    a.heuristic = detail::symbol<decltype(cublasLtMatmulAlgoGetHeuristic)>(
        lib, "cublasLtMatmulAlgoGetHeuristic", w);
    a.matmul = detail::symbol<decltype(cublasLtMatmul)>(lib, "cublasLtMatmul", w);
    return a;
  }();
  return api;
}

struct BlasApi {
  decltype(&cublasCreate_v2) create;
  decltype(&cublasSetStream_v2) set_stream;
  decltype(&cublasSetMathMode) set_math;
  decltype(&cublasSgemm_v2) sgemm;
  decltype(&cublasDgemm_v2) dgemm;
};

const BlasApi& blas_api() {
  static const BlasApi api = [] {
    const std::string so = detail::versioned_soname("libcublas");
    void* lib = detail::open_library({so.c_str(), "libcublas.so"}, "float_gemm");
    const char* w = "float_gemm";
    BlasApi a{};
    a.create = detail::symbol<decltype(cublasCreate_v2)>(lib, "cublasCreate_v2", w);
    a.set_stream = detail::symbol<decltype(cublasSetStream_v2)>(lib, "cublasSetStream_v2", w);
    a.set_math = detail::symbol<decltype(cublasSetMathMode)>(lib, "cublasSetMathMode", w);
    a.sgemm = detail::symbol<decltype(cublasSgemm_v2)>(lib, "cublasSgemm_v2", w);
    a.dgemm = detail::symbol<decltype(cublasDgemm_v2)>(lib, "cublasDgemm_v2", w);
    return a;
  }();
  return api;
}

cublasLtHandle_t lt_handle(int device) {
  thread_local detail::ThreadHandles<cublasLtHandle_t> mine;
  auto it = mine.by_device.find(device);
  if (it != mine.by_device.end()) {
    return it->second;
  }
  cublasLtHandle_t h = detail::handle_pool<cublasLtHandle_t>().take(device);
  if (h == nullptr) {
    const cublasStatus_t st = lt_api().create(&h);
    if (st != CUBLAS_STATUS_SUCCESS) {
      throw CudaError("[cuda::ring_gemm] cublasLtCreate failed with status " + std::to_string(st));
    }
  }
  mine.by_device.emplace(device, h);
  return h;
}

cublasHandle_t blas_handle(int device) {
  thread_local detail::ThreadHandles<cublasHandle_t> mine;
  auto it = mine.by_device.find(device);
  cublasHandle_t h = nullptr;
  if (it != mine.by_device.end()) {
    h = it->second;
  } else {
    h = detail::handle_pool<cublasHandle_t>().take(device);
    if (h == nullptr) {
      const cublasStatus_t st = blas_api().create(&h);
      if (st != CUBLAS_STATUS_SUCCESS) {
        throw CudaError("[cuda::float_gemm] cublasCreate failed with status " + std::to_string(st));
      }
    }
    mine.by_device.emplace(device, h);
  }
  const cublasStatus_t st = blas_api().set_stream(h, VEIL_GEMM_STREAM);
  if (st != CUBLAS_STATUS_SUCCESS) {
    throw CudaError("[cuda::float_gemm] cublasSetStream failed with status " + std::to_string(st));
  }
  return h;
}

// ---- kernels ------------------------------------------------------------------------------------

/// Writes the signed digit planes of one k-chunk of a [rows, kc] operand view (element (r, p) at
/// src[r * rs + p * cs]) into dst [rows_padded, 8 kp] int8: plane i of row r at columns
/// a_plane_offset(i) (or b_plane_offset(i) when `reverse`). Rows >= rows and p >= kc get zero
/// digits. Each thread handles 4 consecutive k positions of one row. rows_fast: consecutive
/// threads take consecutive rows (coalesced reads when rs == 1).
__global__ void split_digits_kernel(int64_t rows,
                                    int64_t rows_padded,
                                    int64_t kc,
                                    int64_t kp,
                                    const uint64_t* __restrict__ src,
                                    int64_t rs,
                                    int64_t cs,
                                    int8_t* __restrict__ dst,
                                    bool reverse,
                                    bool rows_fast) {
  const int64_t groups = kp / 4;
  const int64_t total = rows_padded * groups;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t r;
    int64_t g;
    if (rows_fast) {
      r = idx % rows_padded;
      g = idx / rows_padded;
    } else {
      g = idx % groups;
      r = idx / groups;
    }
    uint64_t x[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t p = g * 4 + q;
      // Zero padding must give zero DIGITS: x = 0 has all digits 0.
      x[q] = (r < rows && p < kc) ? src[r * rs + p * cs] : 0;
    }
    rd::store_digit_group(x, dst + r * (rd::kDigits * kp), g, kp, reverse);
  }
}

/// C[i, j] (+)= sum_d 2^(8d) cd[d plane + i np + j] (8 int32 planes [m, np], `plane` apart).
__global__ void combine_kernel(int64_t m,
                               int64_t n,
                               int64_t np,
                               int64_t plane,
                               const int32_t* __restrict__ cd,
                               uint64_t* __restrict__ c,
                               int64_t ldc,
                               bool accumulate) {
  const int64_t total = m * n;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / n;
    const int64_t j = idx - i * n;
    const uint64_t v = rd::combine_diagonals(cd + i * np + j, plane);
    uint64_t* out = c + i * ldc + j;
    *out = accumulate ? *out + v : v;
  }
}

constexpr int kSimtTile = 64;
constexpr int kSimtTk = 16;
constexpr int kSimtThreads = 256;

/// Shared-memory tiled uint64 GEMM: a 64x64 tile of C per block of 256 threads, each thread 4x4
/// outputs (rows ty + 16 i, columns tx + 16 j), k in steps of 16.
__global__ void __launch_bounds__(kSimtThreads)
    simt_ring_gemm_kernel(int64_t m,
                          int64_t n,
                          int64_t k,
                          int64_t row_tile0,
                          const uint64_t* __restrict__ a,
                          int64_t lda,
                          bool ta,
                          const uint64_t* __restrict__ b,
                          int64_t ldb,
                          bool tb,
                          uint64_t* __restrict__ c,
                          int64_t ldc) {
  __shared__ uint64_t as[kSimtTk][kSimtTile];
  __shared__ uint64_t bs[kSimtTk][kSimtTile];
  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % 16;
  const int ty = tid / 16;
  const int64_t row0 = (row_tile0 + blockIdx.y) * kSimtTile;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kSimtTile;
  uint64_t acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      acc[i][j] = 0;
    }
  }
  for (int64_t p0 = 0; p0 < k; p0 += kSimtTk) {
#pragma unroll
    for (int e = tid; e < kSimtTile * kSimtTk; e += kSimtThreads) {
      int r;
      int p;
      if (ta) {  // A stored [k, m]: consecutive threads read consecutive rows i
        r = e % kSimtTile;
        p = e / kSimtTile;
      } else {
        p = e % kSimtTk;
        r = e / kSimtTk;
      }
      const int64_t gi = row0 + r;
      const int64_t gp = p0 + p;
      as[p][r] = (gi < m && gp < k) ? (ta ? a[gp * lda + gi] : a[gi * lda + gp]) : 0;
    }
#pragma unroll
    for (int e = tid; e < kSimtTile * kSimtTk; e += kSimtThreads) {
      int j;
      int p;
      if (tb) {  // B stored [n, k]
        p = e % kSimtTk;
        j = e / kSimtTk;
      } else {
        j = e % kSimtTile;
        p = e / kSimtTile;
      }
      const int64_t gj = col0 + j;
      const int64_t gp = p0 + p;
      bs[p][j] = (gj < n && gp < k) ? (tb ? b[gj * ldb + gp] : b[gp * ldb + gj]) : 0;
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < kSimtTk; ++p) {
      uint64_t av[4];
      uint64_t bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        av[i] = as[p][ty + 16 * i];
        bv[i] = bs[p][tx + 16 * i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          acc[i][j] += av[i] * bv[j];
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t gi = row0 + ty + 16 * i;
    if (gi >= m) {
      continue;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t gj = col0 + tx + 16 * j;
      if (gj < n) {
        c[gi * ldc + gj] = acc[i][j];
      }
    }
  }
}

/// dst[l][e] = (double) 16-bit limb l of src[e], for 4 limbs (planes of `count` doubles).
__global__ void split_limbs_kernel(int64_t count,
                                   const uint64_t* __restrict__ src,
                                   double* __restrict__ dst) {
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < count;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t x = src[idx];
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      dst[l * count + idx] = static_cast<double>((x >> (16 * l)) & 0xFFFFu);
    }
  }
}

/// c[e] (+)= (uint64) d[e] << shift; d holds exact non-negative integers below 2^53.
__global__ void limb_accumulate_kernel(int64_t count,
                                       const double* __restrict__ d,
                                       int shift,
                                       bool accumulate,
                                       uint64_t* __restrict__ c) {
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < count;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t v = static_cast<uint64_t>(d[idx]) << shift;
    c[idx] = accumulate ? c[idx] + v : v;
  }
}

// ---- checks -------------------------------------------------------------------------------------

void zero_matrix(uint64_t* c, int64_t m, int64_t n, int64_t ldc, const char* op) {
  check_cuda(
      cudaMemset2DAsync(c, static_cast<std::size_t>(ldc) * 8, 0, static_cast<std::size_t>(n) * 8,
                        static_cast<std::size_t>(m), VEIL_GEMM_STREAM),
      op, "(zeroing C for k == 0)");
}

// ---- SIMT ---------------------------------------------------------------------------------------

void simt_gemm(int64_t m,
               int64_t n,
               int64_t k,
               const uint64_t* a,
               int64_t lda,
               bool ta,
               const uint64_t* b,
               int64_t ldb,
               bool tb,
               uint64_t* c,
               int64_t ldc) {
  const int64_t col_tiles = (n + kSimtTile - 1) / kSimtTile;
  const int64_t row_tiles = (m + kSimtTile - 1) / kSimtTile;
  if (col_tiles > INT_MAX) {
    throw Error("[cuda::ring_gemm] n too large for the SIMT kernel " + sizes3(m, n, k));
  }
  for (int64_t t0 = 0; t0 < row_tiles; t0 += 65535) {
    const int64_t rows = row_tiles - t0 < 65535 ? row_tiles - t0 : 65535;
    const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(rows));
    simt_ring_gemm_kernel<<<grid, kSimtThreads, 0, VEIL_GEMM_STREAM>>>(m, n, k, t0, a, lda, ta, b,
                                                                       ldb, tb, c, ldc);
    check_cuda(cudaGetLastError(), "ring_gemm", "(SIMT launch " + sizes3(m, n, k) + ")");
  }
}

// ---- tensor cores -------------------------------------------------------------------------------

constexpr std::size_t kLtWorkspace = 32u << 20;

/// One cached INT8 GEMM configuration: D[np, m] (col-major, int32) = A'^T B' with A' [kd, np] and
/// B' [kd, m] col-major int8, leading dimension ld8 for both.
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr;
  cublasLtMatrixLayout_t b = nullptr;
  cublasLtMatrixLayout_t d = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

void check_lt(cublasStatus_t st, const char* what, const std::string& detail) {
  if (st != CUBLAS_STATUS_SUCCESS) {
    throw CudaError(std::string("[cuda::ring_gemm] ") + what + " failed with cuBLAS status " +
                    std::to_string(static_cast<int>(st)) + " " + detail);
  }
}

/// a_align: the byte alignment of A' (its offset inside the digit buffer); B', C and D are
/// 256-byte aligned. The heuristic must know it: by default it assumes 256 for every operand.
const LtPlan& lt_plan(int device,
                      cublasLtHandle_t h,
                      int64_t np,
                      int64_t m,
                      int64_t kd,
                      int64_t ld8,
                      uint32_t a_align) {
  using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, uint32_t>;
  static std::mutex mu;
  static auto* cache = new std::map<Key, LtPlan>();  // descriptors live for the process
  const Key key{device, np, m, kd, ld8, a_align};
  const std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(key);
  if (it != cache->end()) {
    return it->second;
  }
  const LtApi& api = lt_api();
  const std::string detail =
      "(INT8 GEMM " + std::to_string(np) + "x" + std::to_string(m) + "x" + std::to_string(kd) + ")";
  LtPlan p;
  check_lt(api.desc_create(&p.desc, CUBLAS_COMPUTE_32I, CUDA_R_32I), "cublasLtMatmulDescCreate",
           detail);
  const cublasOperation_t op_t = CUBLAS_OP_T;
  const cublasOperation_t op_n = CUBLAS_OP_N;
  check_lt(api.desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof(op_t)),
           "cublasLtMatmulDescSetAttribute", detail);
  check_lt(api.desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof(op_n)),
           "cublasLtMatmulDescSetAttribute", detail);
  check_lt(
      api.layout_create(&p.a, CUDA_R_8I, static_cast<uint64_t>(kd), static_cast<uint64_t>(np), ld8),
      "cublasLtMatrixLayoutCreate", detail);
  check_lt(
      api.layout_create(&p.b, CUDA_R_8I, static_cast<uint64_t>(kd), static_cast<uint64_t>(m), ld8),
      "cublasLtMatrixLayoutCreate", detail);
  check_lt(
      api.layout_create(&p.d, CUDA_R_32I, static_cast<uint64_t>(np), static_cast<uint64_t>(m), np),
      "cublasLtMatrixLayoutCreate", detail);
  cublasLtMatmulPreference_t pref = nullptr;
  check_lt(api.pref_create(&pref), "cublasLtMatmulPreferenceCreate", detail);
  const uint64_t ws = kLtWorkspace;
  check_lt(api.pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
           "cublasLtMatmulPreferenceSetAttribute", detail);
  check_lt(
      api.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a_align, sizeof(a_align)),
      "cublasLtMatmulPreferenceSetAttribute", detail);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  check_lt(api.heuristic(h, p.desc, p.a, p.b, p.d, p.d, pref, 1, &result, &found),
           "cublasLtMatmulAlgoGetHeuristic", detail);
  // (the preference, a few bytes of host state, is not needed after the heuristic; kept, like the
  // cached descriptors, for the life of the process)
  if (found == 0) {
    throw CudaError("[cuda::ring_gemm] cuBLASLt offers no INT8 tensor-core algorithm " + detail);
  }
  p.algo = result.algo;
  return cache->emplace(key, p).first->second;
}

void tensor_core_gemm(int device,
                      int64_t m,
                      int64_t n,
                      int64_t k,
                      const uint64_t* a,
                      int64_t lda,
                      bool ta,
                      const uint64_t* b,
                      int64_t ldb,
                      bool tb,
                      uint64_t* c,
                      int64_t ldc) {
  const int64_t np = rd::padded_n(n);
  const int64_t chunks = rd::num_chunks(k);
  const int64_t kp_max = rd::padded_k(rd::chunk_len(k, 0));
  const std::size_t a8_bytes = align256(static_cast<std::size_t>(m * rd::kDigits * kp_max));
  const std::size_t b8_bytes = align256(static_cast<std::size_t>(np * rd::kDigits * kp_max));
  // One 256-byte aligned int32 [m, np] plane per diagonal.
  const std::size_t plane_bytes = align256(static_cast<std::size_t>(m * np) * 4);
  const auto plane_stride = static_cast<int64_t>(plane_bytes / 4);
  const std::size_t cd_bytes = static_cast<std::size_t>(rd::kDigits) * plane_bytes;
  Scratch scratch(a8_bytes + b8_bytes + cd_bytes + kLtWorkspace, device);
  auto* a8 = reinterpret_cast<int8_t*>(scratch.get());
  auto* b8 = reinterpret_cast<int8_t*>(scratch.get() + a8_bytes);
  auto* cd = reinterpret_cast<int32_t*>(scratch.get() + a8_bytes + b8_bytes);
  void* lt_ws = scratch.get() + a8_bytes + b8_bytes + cd_bytes;

  const LtApi& api = lt_api();
  cublasLtHandle_t h = lt_handle(device);
  const int32_t alpha = 1;
  const int32_t beta = 0;
  // A element (r, p): a[r lda + p] or (trans) a[p lda + r]. B "row" j (output column), k index p:
  // b[p ldb + j] or (trans) b[j ldb + p].
  const int64_t a_rs = ta ? 1 : lda;
  const int64_t a_cs = ta ? lda : 1;
  const int64_t b_rs = tb ? ldb : 1;
  const int64_t b_cs = tb ? 1 : ldb;
  constexpr int kThreads = 256;
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t p0 = rd::chunk_begin(ch);
    const int64_t kc = rd::chunk_len(k, ch);
    const int64_t kp = rd::padded_k(kc);
    const int64_t ld8 = rd::kDigits * kp;
    const std::string detail = "(chunk " + std::to_string(ch) + " of " + sizes3(m, n, k) + ")";
    split_digits_kernel<<<blocks_for(m * (kp / 4), kThreads), kThreads, 0, VEIL_GEMM_STREAM>>>(
        m, m, kc, kp, a + p0 * a_cs, a_rs, a_cs, a8, false, a_rs == 1 && a_cs != 1);
    check_cuda(cudaGetLastError(), "ring_gemm", "(digit split of A " + detail + ")");
    split_digits_kernel<<<blocks_for(np * (kp / 4), kThreads), kThreads, 0, VEIL_GEMM_STREAM>>>(
        n, np, kc, kp, b + p0 * b_cs, b_rs, b_cs, b8, true, b_rs == 1 && b_cs != 1);
    check_cuda(cudaGetLastError(), "ring_gemm", "(digit split of B " + detail + ")");
    for (int d = 0; d < rd::kDigits; ++d) {
      const int64_t kd = rd::diag_k(d, kp);
      const int64_t a_off = rd::diag_b_offset(d, kp);
      const uint32_t a_align =
          a_off == 0 ? 256u : static_cast<uint32_t>(std::min<int64_t>(256, a_off & -a_off));
      const LtPlan& plan = lt_plan(device, h, np, m, kd, ld8, a_align);
      // D[np, m] col-major = (B8^T rows [diag_b_offset, 8kp))^T-as-stored x A8 columns [0, kd):
      // A' is the B digit matrix stored [np, 8kp] row-major (= col-major [8kp, np]).
      const int8_t* a_prime = b8 + a_off;
      const int8_t* b_prime = a8;
      int32_t* dd = cd + static_cast<int64_t>(d) * plane_stride;
      check_lt(api.matmul(h, plan.desc, &alpha, a_prime, plan.a, b_prime, plan.b, &beta, dd, plan.d,
                          dd, plan.d, &plan.algo, lt_ws, kLtWorkspace, VEIL_GEMM_STREAM),
               "cublasLtMatmul", "(diagonal " + std::to_string(d) + " " + detail + ")");
    }
    combine_kernel<<<blocks_for(m * n, kThreads), kThreads, 0, VEIL_GEMM_STREAM>>>(
        m, n, np, plane_stride, cd, c, ldc, ch > 0);
    check_cuda(cudaGetLastError(), "ring_gemm", "(combine " + detail + ")");
  }
}

int current_device() {
  int d = 0;
  check_cuda(cudaGetDevice(&d), "ring_gemm", "(cudaGetDevice)");
  return d;
}

}  // namespace

// ---- public API ---------------------------------------------------------------------------------

RingGemmAlgo ring_gemm_effective_algo(int device) {
  int major = 0;
  int minor = 0;
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "ring_gemm",
             "(device " + std::to_string(device) + ")");
  check_cuda(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), "ring_gemm",
             "(device " + std::to_string(device) + ")");
  return major * 10 + minor >= 75 ? RingGemmAlgo::kTensorCore : RingGemmAlgo::kSimt;
}

void ring_gemm_ex(RingGemmAlgo algo,
                  int64_t m,
                  int64_t n,
                  int64_t k,
                  const uint64_t* a,
                  int64_t lda,
                  bool trans_a,
                  const uint64_t* b,
                  int64_t ldb,
                  bool trans_b,
                  uint64_t* c,
                  int64_t ldc,
                  int device) {
  checks::gemm("ring_gemm", m, n, k, a, lda, trans_a, b, ldb, trans_b, c, ldc);
  if (m == 0 || n == 0) {
    return;
  }
  const DeviceScope scope(device, "ring_gemm");
  if (k == 0) {
    zero_matrix(c, m, n, ldc, "ring_gemm");
    return;
  }
  if (algo == RingGemmAlgo::kTensorCore &&
      ring_gemm_effective_algo(device) == RingGemmAlgo::kTensorCore) {
    tensor_core_gemm(device, m, n, k, a, lda, trans_a, b, ldb, trans_b, c, ldc);
  } else {
    simt_gemm(m, n, k, a, lda, trans_a, b, ldb, trans_b, c, ldc);
  }
}

void ring_gemm(int64_t m, int64_t n, int64_t k, const uint64_t* a, const uint64_t* b, uint64_t* c) {
  ring_gemm_ex(RingGemmAlgo::kTensorCore, m, n, k, a, k, false, b, n, false, c, n,
               current_device());
}

void float_gemm(int elem,
                bool tf32,
                int64_t m,
                int64_t n,
                int64_t k,
                const void* a,
                int64_t lda,
                bool trans_a,
                const void* b,
                int64_t ldb,
                bool trans_b,
                void* c,
                int64_t ldc,
                int device) {
  if (elem != static_cast<int>(Elem::kF32) && elem != static_cast<int>(Elem::kF64)) {
    throw Error("[cuda::float_gemm] expected elem kF32 (0) or kF64 (1), got " +
                std::to_string(elem));
  }
  checks::gemm("float_gemm", m, n, k, a, lda, trans_a, b, ldb, trans_b, c, ldc);
  if (m == 0 || n == 0) {
    return;
  }
  for (const int64_t v : {m, n, k, lda, ldb, ldc}) {
    if (v > INT_MAX) {
      throw Error("[cuda::float_gemm] sizes above 2^31-1 are not supported, got " +
                  sizes3(m, n, k));
    }
  }
  const DeviceScope scope(device, "float_gemm");
  const std::size_t esize = elem == static_cast<int>(Elem::kF32) ? 4 : 8;
  if (k == 0) {
    check_cuda(cudaMemset2DAsync(c, static_cast<std::size_t>(ldc) * esize, 0,
                                 static_cast<std::size_t>(n) * esize, static_cast<std::size_t>(m),
                                 VEIL_GEMM_STREAM),
               "float_gemm", "(zeroing C for k == 0)");
    return;
  }
  const BlasApi& api = blas_api();
  cublasHandle_t h = blas_handle(device);
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: a row-major [r, c] array is
  // the column-major [c, r] array of its transpose, so B goes first and A second.
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int im = static_cast<int>(n);
  const int in = static_cast<int>(m);
  const int ik = static_cast<int>(k);
  const int ilda = static_cast<int>(ldb < 1 ? 1 : ldb);
  const int ildb = static_cast<int>(lda < 1 ? 1 : lda);
  const int ildc = static_cast<int>(ldc);
  cublasStatus_t st;
  if (esize == 4) {
    st = api.set_math(h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    if (st == CUBLAS_STATUS_SUCCESS) {
      const float alpha = 1.0f;
      const float beta = 0.0f;
      st = api.sgemm(h, op_b, op_a, im, in, ik, &alpha, static_cast<const float*>(b), ilda,
                     static_cast<const float*>(a), ildb, &beta, static_cast<float*>(c), ildc);
    }
  } else {
    st = api.set_math(h, CUBLAS_DEFAULT_MATH);
    if (st == CUBLAS_STATUS_SUCCESS) {
      const double alpha = 1.0;
      const double beta = 0.0;
      st = api.dgemm(h, op_b, op_a, im, in, ik, &alpha, static_cast<const double*>(b), ilda,
                     static_cast<const double*>(a), ildb, &beta, static_cast<double*>(c), ildc);
    }
  }
  if (st != CUBLAS_STATUS_SUCCESS) {
    throw CudaError("[cuda::float_gemm] cuBLAS " + std::string(esize == 4 ? "SGEMM" : "DGEMM") +
                    " failed with status " + std::to_string(static_cast<int>(st)) + " " +
                    sizes3(m, n, k));
  }
}

void limb_f64_ring_gemm(int64_t m,
                        int64_t n,
                        int64_t k,
                        const uint64_t* a,
                        const uint64_t* b,
                        uint64_t* c,
                        int device) {
  checks::gemm("limb_f64_ring_gemm", m, n, k, a, k, false, b, n, false, c, n);
  if (k > (int64_t{1} << 21)) {
    throw Error("[cuda::limb_f64_ring_gemm] expected k <= 2^21 (exact float64 sums), got " +
                sizes3(m, n, k));
  }
  if (m == 0 || n == 0) {
    return;
  }
  const DeviceScope scope(device, "limb_f64_ring_gemm");
  if (k == 0) {
    zero_matrix(c, m, n, n, "limb_f64_ring_gemm");
    return;
  }
  const std::size_t al = align256(static_cast<std::size_t>(4 * m * k) * 8);
  const std::size_t bl = align256(static_cast<std::size_t>(4 * k * n) * 8);
  const std::size_t dl = align256(static_cast<std::size_t>(m * n) * 8);
  Scratch scratch(al + bl + dl, device);
  auto* alimbs = reinterpret_cast<double*>(scratch.get());
  auto* blimbs = reinterpret_cast<double*>(scratch.get() + al);
  auto* dbuf = reinterpret_cast<double*>(scratch.get() + al + bl);
  constexpr int kThreads = 256;
  split_limbs_kernel<<<blocks_for(m * k, kThreads), kThreads, 0, VEIL_GEMM_STREAM>>>(m * k, a,
                                                                                     alimbs);
  split_limbs_kernel<<<blocks_for(k * n, kThreads), kThreads, 0, VEIL_GEMM_STREAM>>>(k * n, b,
                                                                                     blimbs);
  check_cuda(cudaGetLastError(), "limb_f64_ring_gemm", "(limb split " + sizes3(m, n, k) + ")");
  bool first = true;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; i + j < 4; ++j) {
      float_gemm(static_cast<int>(Elem::kF64), false, m, n, k, alimbs + i * m * k, k, false,
                 blimbs + j * k * n, n, false, dbuf, n, device);
      limb_accumulate_kernel<<<blocks_for(m * n, kThreads), kThreads, 0, VEIL_GEMM_STREAM>>>(
          m * n, dbuf, 16 * (i + j), !first, c);
      check_cuda(cudaGetLastError(), "limb_f64_ring_gemm", "(accumulate " + sizes3(m, n, k) + ")");
      first = false;
    }
  }
}

std::vector<double> time_gpu_ms(int device, int warmup, int reps, const std::function<void()>& fn) {
  const DeviceScope scope(device, "time_gpu_ms");
  for (int i = 0; i < warmup; ++i) {
    fn();
  }
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  check_cuda(cudaEventCreate(&start), "time_gpu_ms", "(event)");
  check_cuda(cudaEventCreate(&stop), "time_gpu_ms", "(event)");
  std::vector<double> out;
  try {
    for (int r = 0; r < reps; ++r) {
      check_cuda(cudaEventRecord(start, VEIL_GEMM_STREAM), "time_gpu_ms", "(record)");
      fn();
      check_cuda(cudaEventRecord(stop, VEIL_GEMM_STREAM), "time_gpu_ms", "(record)");
      check_cuda(cudaEventSynchronize(stop), "time_gpu_ms", "(synchronize)");
      float ms = 0.0f;
      check_cuda(cudaEventElapsedTime(&ms, start, stop), "time_gpu_ms", "(elapsed)");
      out.push_back(static_cast<double>(ms));
    }
  } catch (...) {
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    throw;
  }
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  return out;
}

}  // namespace veil::kernels::cuda
