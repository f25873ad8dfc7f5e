#pragma once
// CUDA kernel backend: device management, device memory, host<->device copies and the elementwise,
// reduction and protocol-epilogue kernels of the ring (uint64 mod 2^64) and float dtypes. Raw
// device pointers + sizes + POD parameters only; core/ builds Tensor dispatch on top of it.
//
// Builds: with VEIL_WITH_CUDA resolved to ON these are kernels/cuda/*.cu; otherwise
// kernels/cuda_stub*.cpp, where compiled() is false, device_count() is 0 and every other function
// throws NotCompiledError naming the CMake option.
//
// Streams: every launch and copy goes to the calling thread's per-thread default stream
// (cudaStreamPerThread), so parties that share one GPU as threads of one process never order each
// other's work. Kernels are asynchronous; copies to the host wait for the thread's earlier work.
// Device memory comes from CUDA's stream-ordered pool (cudaMallocAsync on that stream) with the
// release threshold raised so that freed blocks stay cached for reuse (a caching allocator without
// our own free lists).
//
// Errors: CUDA failures throw CudaError "[cuda::<op>] <cudaGetErrorString> (...)" naming the op and
// sizes, never data. Shapes are the caller's business (core/ checks them before dispatch); an
// (op, element type) pair that is not defined, or bits/frac_bits out of range, throws veil::Error
// "[cuda::<op>] ..." before any device work. Outputs may alias an input exactly (same pointer,
// dense), never partially. n == 0 is a no-op that needs no device.

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/error.h"

namespace veil::kernels::cuda {

/// A CUDA runtime or library call failed (out of memory, launch failure, no device, ...).
class CudaError : public Error {
 public:
  explicit CudaError(const std::string& what) : Error(what) {}
};

// ---- device -------------------------------------------------------------------------------------

/// True when this build contains the CUDA backend (VEIL_WITH_CUDA resolved to ON).
bool compiled();

/// Number of CUDA devices visible to this process; 0 when none or when CUDA is not compiled in.
/// Never throws (a missing driver counts as no device).
int device_count();

/// What benchmarks record about a device.
struct DeviceInfo {
  std::string name;  ///< e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0;  ///< compute capability
  int cc_minor = 0;
  int sm_count = 0;
  std::size_t total_bytes = 0;  ///< global memory
  int driver_version = 0;       ///< cudaDriverGetVersion
  int runtime_version = 0;      ///< cudaRuntimeGetVersion
};
/// Throws CudaError for an index outside [0, device_count()).
DeviceInfo device_info(int device);

/// Waits until the calling thread's stream on `device` has finished its work; throws CudaError
/// with the first asynchronous error (e.g. a failed kernel).
void synchronize(int device);

// ---- memory -------------------------------------------------------------------------------------

/// `bytes` of device memory on `device` (256-byte aligned; bytes == 0 gives nullptr). Stream
/// ordered on the calling thread's stream. Throws CudaError naming the size on exhaustion.
void* device_alloc(std::size_t bytes, int device);
/// Returns a block from device_alloc (stream ordered: work already queued on it completes first).
void device_free(void* ptr, int device) noexcept;
/// Page-locked host memory for staging transfers (64-byte aligned); throws CudaError.
void* pinned_alloc(std::size_t bytes);
void pinned_free(void* ptr) noexcept;

/// Copies. copy_to_host returns when dst holds the data; copy_to_device returns when src may be
/// reused (it waits for the thread's stream, so pinned sources are safe too); copy_device_to_device
/// returns when the copy is queued after the thread's earlier work.
void copy_to_device(void* dst, const void* src, std::size_t bytes, int device);
void copy_to_host(void* dst, const void* src, std::size_t bytes, int device);
void copy_device_to_device(void* dst, const void* src, std::size_t bytes, int device);
/// Sets `bytes` bytes at dst to zero.
void zero(void* dst, std::size_t bytes, int device);

/// Bytes held by the device pool (in use + cached), for tests and benchmarks.
struct MemoryStats {
  std::size_t used_bytes = 0;
  std::size_t reserved_bytes = 0;
};
MemoryStats memory_stats(int device);

// ---- element types and layouts ------------------------------------------------------------------

/// Element types, in the order of core::DType (kFloat32, kFloat64, kInt64, kRing64, kUInt8).
enum class Elem : uint8_t { kF32, kF64, kI64, kU64, kU8 };

/// Maximum rank of a strided operand.
inline constexpr int kMaxDims = 8;

/// A strided view in elements: element at index (i_0, ..., i_{ndim-1}) of the logical shape lives
/// at offset + sum_d i_d * stride[d]. Broadcast dimensions have stride 0. ndim == 0 is a scalar.
struct Layout {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t stride[kMaxDims] = {};
  int64_t offset = 0;
};

// ---- elementwise --------------------------------------------------------------------------------

/// out[i] = a[i] op b[i] over the row-major elements of the logical shape of `la` (== that of `lb`
/// after broadcasting), written contiguously to out (n elements). Ring (kU64) arithmetic wraps mod
/// 2^64; kDiv is for floats only; bit ops for kI64, kU64, kU8.
enum class BinaryOp : uint8_t { kAdd, kSub, kMul, kDiv, kXor, kAnd, kOr };
void binary(BinaryOp op,
            Elem t,
            int64_t n,
            const void* a,
            const Layout& la,
            const void* b,
            const Layout& lb,
            void* out,
            int device);

/// out[i] = f(a[i]) (same walk as binary). Parameters: kShl/kShrArith/kShrLogical use `bits`
/// (0..63; kShrArith reads ring elements as int64); kAddScalar/kMulScalar use `scalar_bits` for
/// integer types (the ring scalar mod 2^64) and `scalar` for floats; kExp/kLog/kRelu/kStep for
/// floats (kStep: 1 where a > 0 else 0).
enum class UnaryOp : uint8_t {
  kNeg,
  kNot,
  kShl,
  kShrArith,
  kShrLogical,
  kAddScalar,
  kMulScalar,
  kExp,
  kLog,
  kRelu,
  kStep,
};
struct UnaryParams {
  int bits = 0;
  uint64_t scalar_bits = 0;
  double scalar = 0.0;
};
void unary(UnaryOp op,
           Elem t,
           int64_t n,
           const void* a,
           const Layout& la,
           void* out,
           const UnaryParams& p,
           int device);

/// Gathers the strided view `ls` of src into contiguous dst (n elements of type t).
void copy_strided(Elem t, int64_t n, const void* src, const Layout& ls, void* dst, int device);

/// dst[offset of i in ld] += src[offset of i in ls] for i < n: the scatter-add of a (strided)
/// source into a strided view of dst, with binary's kAdd per element (ring and integers wrap mod
/// 2^bits, floats round once). ld must map no two indices to one element (no broadcast or
/// overlapping dimensions): each element of dst is then read and written by one thread. The
/// convolutions' col2im and the pooling windows' fold use it, one kernel offset at a time.
/// Throws Error for kU8 (no arithmetic) and CudaError as the other kernels.
void add_into_strided(
    Elem t, int64_t n, const void* src, const Layout& ls, void* dst, const Layout& ld, int device);

/// dst[o, i, c] = index[i] >= 0 ? src[o, index[i], c] : 0 for o < outer, i < n_index, c < inner:
/// a gather along the middle dimension of src [outer, src_len, inner] by a device array of int64
/// indices (each < src_len, or negative for a zero) into dst [outer, n_index, inner], both
/// contiguous. Bit copies, any element type. Rows of a table (outer = 1:
/// Tensor::index_select0) and the index-table windows of the adaptive poolings (inner = 1; their
/// scatter is a sum of such gathers). Throws CudaError as the other kernels.
void gather_index(Elem t,
                  int64_t outer,
                  int64_t src_len,
                  int64_t inner,
                  const void* src,
                  int64_t n_index,
                  const int64_t* index,
                  void* dst,
                  int device);

/// Contiguous dtype conversion with core::Tensor::to's rules (ring <-> int64 reinterpret; ring ->
/// float via int64; float -> integer truncates toward zero).
void cast(Elem from, Elem to, int64_t n, const void* src, void* dst, int device);

/// dst[i] = value for i < n; `value_bits` holds the element's bit pattern (low dtype-size bytes).
void fill(Elem t, int64_t n, uint64_t value_bits, void* dst, int device);

/// Fixed-point encoding of floats into the ring: dst[i] = (uint64) llround(src[i] * 2^frac_bits)
/// (round half away from zero, bit for bit as the CPU FixedPointEncoder; float32 inputs widen to
/// double first); |src * 2^f| must be < 2^63 (the caller checks range on the host; out-of-range
/// values give unspecified ring elements, never a trap). 0 <= frac_bits <= 62.
void encode_fixed(Elem from /* kF32 or kF64 */,
                  int64_t n,
                  const void* src,
                  int frac_bits,
                  uint64_t* dst,
                  int device);
/// Decoding: dst[i] = (double)(int64)src[i] / 2^frac_bits, written as kF32 or kF64.
void decode_fixed(int64_t n, const uint64_t* src, int frac_bits, Elem to, void* dst, int device);

// ---- reductions ---------------------------------------------------------------------------------

/// Reduction of a contiguous [outer, len, inner] array along the middle axis into [outer, inner].
/// kSum (ring sums wrap), kMax (kU64 compared as int64), kArgmax (first maximum; dst is int64).
/// Types f32/f64/i64/u64. Integer results equal the CPU's bit for bit; float sums are
/// deterministic (a fixed order for given sizes) but may differ from the CPU's sequential order in
/// the last bits. len == 0 gives 0 (sum) and is the caller's to reject for max/argmax.
enum class ReduceOp : uint8_t { kSum, kMax, kArgmax };
void reduce(ReduceOp op,
            Elem t,
            int64_t outer,
            int64_t len,
            int64_t inner,
            const void* src,
            void* dst,
            int device);

// ---- protocol epilogues (ring only, contiguous, n elements) -------------------------------------

/// The 2-operand mask of a Beaver multiplication: out[i] = x[i] - a[i].
void ring_mask(int64_t n, const uint64_t* x, const uint64_t* a, uint64_t* out, int device);

/// The elementwise Beaver output in one pass: z = c + e (b + [first] d) + a d (mod 2^64), where e,
/// d are the opened masked operands and (a, b, c) this party's triple shares. trunc_bits > 0 also
/// applies the 2-party local truncation of SecureML (Mohassel & Zhang, S&P 2017, §4.1): party 0
/// (first) keeps z >> bits (arithmetic), party 1 -((-z) >> bits); trunc_bits == 0 leaves z as is
/// (0 <= trunc_bits <= 62). z may be the same array as any input.
void beaver_output(int64_t n,
                   bool first,
                   const uint64_t* e,
                   const uint64_t* d,
                   const uint64_t* a,
                   const uint64_t* b,
                   const uint64_t* c,
                   int trunc_bits,
                   uint64_t* z,
                   int device);

// ---- ring GEMM (declared in kernels/cuda_gemm.h) and PRG (kernels/cuda_prg.h) -------------------

/// Ring GEMM mod 2^64 on the GPU, row-major contiguous device arrays: C[m,n] = A[m,k] * B[k,n].
/// The tensor-core path of kernels/cuda_gemm.h (ring_gemm_ex) with default options.
void ring_gemm(int64_t m, int64_t n, int64_t k, const uint64_t* a, const uint64_t* b, uint64_t* c);

}  // namespace veil::kernels::cuda
