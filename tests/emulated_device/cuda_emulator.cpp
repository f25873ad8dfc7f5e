// The emulated CUDA device of the test suite (see cuda_emulator.h): kernels::cuda's API of
// kernels/cuda_backend.h, cuda_gemm.h, cuda_prg.h, cuda_circuit.h and cuda_dnn.h on host memory.
//
// How it is linked. The emulator's object file comes before veil's static libraries on the link
// line, so the linker takes every kernels::cuda function from here and never extracts the archive
// members that define them (the CUDA sources of a GPU build, the stubs of a CPU build). A function
// the emulator lacks pulls its whole archive member in and the link fails on duplicate symbols:
// the emulator must implement each member's API completely (kernels/cuda/device_query.cu,
// elementwise.cu, ring_gemm.cu, prg.cu, circuit.cu, dnn.cpp). NCCL (kernels/cuda_nccl.h) is not
// emulated: the build's own nccl object or stub answers, and NCCL is unavailable.
//
// What it checks that a GPU would not report as clearly: every pointer a kernel reads or writes
// must lie inside a live block from device_alloc (a host pointer handed to a kernel, or a read past
// the end of a block, throws CudaError naming the op and the argument); copies must go host to
// device and device to host as named; device blocks start filled with 0xA5 bytes (device memory is
// not zeroed); device indices other than 0 are invalid. Arguments are validated with the
// messages of the real kernels.
//
// What it does not do: streams and asynchrony (every call completes before it returns), the
// launch geometry and memory access patterns of the kernels, cuBLAS/cuBLASLt/cuDNN (the GEMMs and
// convolutions are plain loops: float results may differ from a GPU's in the last bits). Integer
// and ring results equal a GPU's bit for bit by construction (the same element functions).

#include "tests/emulated_device/cuda_emulator.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/aes128.h"
#include "kernels/bit_circuit_eval.h"
#include "kernels/cuda/arg_checks.h"
#include "kernels/cuda/elementwise_ops.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_circuit.h"
#include "kernels/cuda_dnn.h"
#include "kernels/cuda_gemm.h"
#include "kernels/cuda_prg.h"

namespace veil::testing::emulated_device {
namespace {

using kernels::cuda::CudaError;

constexpr std::size_t kDeviceAlignment = 256;
constexpr unsigned char kFreshByte = 0xA5;

/// The live device blocks (start -> requested bytes).
struct Registry {
  std::mutex mu;
  std::map<uintptr_t, std::size_t> blocks;
  std::size_t live_bytes = 0;
};

/// The calling thread's counters (parties run as threads: each sees its own work).
thread_local Stats t_stats;

/// The process's counters.
struct ProcessCounters {
  std::atomic<uint64_t> kernel_calls{0}, copies_to_device{0}, copies_to_host{0}, bytes_to_device{0},
      bytes_to_host{0};
};
ProcessCounters& process_counters() {
  static auto* c = new ProcessCounters;  // never destroyed: read by the exit report
  return *c;
}

void report_at_exit() {
  const Stats s = process_stats();
  std::fprintf(stderr,
               "veil emulated CUDA device: %llu kernel calls, %llu copies to the device (%llu "
               "bytes), %llu copies to the host (%llu bytes)\n",
               static_cast<unsigned long long>(s.kernel_calls),
               static_cast<unsigned long long>(s.copies_to_device),
               static_cast<unsigned long long>(s.bytes_to_device),
               static_cast<unsigned long long>(s.copies_to_host),
               static_cast<unsigned long long>(s.bytes_to_host));
}

/// Never destroyed: device tensors held by static caches are freed during static destruction.
Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

void note_warning_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::fputs("veil: EMULATED CUDA device (host memory, for tests only; this is not a GPU run)\n",
               stderr);
    const char* report = std::getenv("VEIL_EMULATED_REPORT");
    if (report != nullptr && std::strcmp(report, "0") != 0) {
      std::atexit(report_at_exit);
    }
  });
}

void use_device(int device, const char* op) {
  note_warning_once();
  if (device != 0) {
    throw CudaError(std::string("[cuda::") + op + "] invalid device ordinal " +
                    std::to_string(device) + " (the emulated device is 0)");
  }
}

void count_kernel() {
  ++t_stats.kernel_calls;
  process_counters().kernel_calls.fetch_add(1, std::memory_order_relaxed);
}

/// Whether [p, p + bytes) lies inside one live device block.
bool in_device_block(const void* p, std::size_t bytes) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  const auto at = reinterpret_cast<uintptr_t>(p);
  auto it = r.blocks.upper_bound(at);
  if (it == r.blocks.begin()) {
    return false;
  }
  --it;
  return at >= it->first && at - it->first <= it->second && bytes <= it->second - (at - it->first);
}

/// Throws CudaError unless `bytes` (> 0) bytes at p are device memory.
void require_device(const void* p, std::size_t bytes, const char* op, const char* arg) {
  if (bytes == 0 || in_device_block(p, bytes)) {
    return;
  }
  ++t_stats.rejected_pointers;
  throw CudaError(std::string("[cuda::") + op + "] " + arg + ": " + std::to_string(bytes) +
                  " bytes are not inside one block of device memory (emulated device)");
}

/// Throws CudaError when p is device memory (a host pointer was expected).
void require_host(const void* p, std::size_t bytes, const char* op, const char* arg) {
  if (bytes != 0 && in_device_block(p, 1)) {
    throw CudaError(std::string("[cuda::") + op + "] " + arg +
                    " is device memory where host memory was expected (emulated device)");
  }
}

/// Checks that every element of the strided view l (of n elements of `size` bytes) at p is device
/// memory.
void require_device_layout(const void* p,
                           const kernels::cuda::Layout& l,
                           int64_t n,
                           int size,
                           const char* op,
                           const char* arg) {
  if (n <= 0) {
    return;
  }
  int64_t lo = l.offset;
  int64_t hi = l.offset;
  for (int d = 0; d < l.ndim; ++d) {
    const int64_t span = (l.shape[d] - 1) * l.stride[d];
    (span < 0 ? lo : hi) += span;
  }
  const auto* base = static_cast<const unsigned char*>(p) + lo * size;
  require_device(base, static_cast<std::size_t>((hi - lo + 1) * size), op, arg);
}

template <class T>
std::size_t bytes_of(int64_t n) {
  return n > 0 ? static_cast<std::size_t>(n) * sizeof(T) : 0;
}

}  // namespace

Stats stats() {
  Stats s = t_stats;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  s.live_allocations = r.blocks.size();
  return s;
}

void reset_stats() {
  t_stats = {};
}

Stats process_stats() {
  const ProcessCounters& c = process_counters();
  Stats s;
  s.kernel_calls = c.kernel_calls.load();
  s.copies_to_device = c.copies_to_device.load();
  s.copies_to_host = c.copies_to_host.load();
  s.bytes_to_device = c.bytes_to_device.load();
  s.bytes_to_host = c.bytes_to_host.load();
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  s.live_allocations = r.blocks.size();
  return s;
}

bool active() {
  return true;
}

}  // namespace veil::testing::emulated_device

namespace veil::kernels::cuda {

namespace emu = veil::testing::emulated_device;
using emu::require_device;
using emu::require_device_layout;
using emu::use_device;

namespace {

/// Calls f.template operator()<T>() with T the C++ type of t.
template <class F>
void with_elem(Elem t, F&& f) {
  switch (t) {
    case Elem::kF32:
      f.template operator()<float>();
      return;
    case Elem::kF64:
      f.template operator()<double>();
      return;
    case Elem::kI64:
      f.template operator()<int64_t>();
      return;
    case Elem::kU64:
      f.template operator()<uint64_t>();
      return;
    case Elem::kU8:
      f.template operator()<uint8_t>();
      return;
  }
}

/// Bytes of n elements of type t (0 for n <= 0).
std::size_t elem_bytes(Elem t, int64_t n) {
  return n > 0 ? static_cast<std::size_t>(n) * static_cast<std::size_t>(ops::elem_size(t)) : 0;
}

using checks::unsupported;

}  // namespace

// ---- device and memory (kernels/cuda/device_query.cu) -------------------------------------------

bool compiled() {
  return true;
}

int device_count() {
  return 1;
}

DeviceInfo device_info(int device) {
  use_device(device, "device_info");
  DeviceInfo info;
  info.name = "veil emulated CUDA device (host memory)";
  info.cc_major = 9;
  info.cc_minor = 0;
  info.sm_count = 1;
  return info;
}

void synchronize(int device) {
  use_device(device, "synchronize");
}

void* device_alloc(std::size_t bytes, int device) {
  use_device(device, "device_alloc");
  if (bytes == 0) {
    return nullptr;
  }
  const std::size_t rounded =
      (bytes + emu::kDeviceAlignment - 1) / emu::kDeviceAlignment * emu::kDeviceAlignment;
  void* p = std::aligned_alloc(emu::kDeviceAlignment, rounded);
  if (p == nullptr) {
    throw CudaError("[cuda::device_alloc] out of memory allocating " + std::to_string(bytes) +
                    " bytes (emulated device)");
  }
  std::memset(p, emu::kFreshByte, rounded);
  emu::Registry& r = emu::registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.blocks[reinterpret_cast<uintptr_t>(p)] = bytes;
  r.live_bytes += bytes;
  return p;
}

void device_free(void* ptr, int /*device*/) noexcept {
  if (ptr == nullptr) {
    return;
  }
  emu::Registry& r = emu::registry();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    const auto it = r.blocks.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == r.blocks.end()) {
      std::fputs("veil emulated CUDA device: device_free of a pointer that is not a live block\n",
                 stderr);
      std::abort();
    }
    r.live_bytes -= it->second;
    r.blocks.erase(it);
  }
  std::free(ptr);
}

void* pinned_alloc(std::size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  if (p == nullptr) {
    throw CudaError("[cuda::pinned_alloc] out of memory allocating " + std::to_string(bytes) +
                    " bytes (emulated device)");
  }
  return p;
}

void pinned_free(void* ptr) noexcept {
  std::free(ptr);
}

namespace {
/// A copy between host and device memory (to_device: host src, device dst; else the reverse),
/// counted for the calling thread and the process.
void copy_across(void* dst, const void* src, std::size_t bytes, int device, bool to_device) {
  const char* op = to_device ? "copy_to_device" : "copy_to_host";
  use_device(device, op);
  require_device(to_device ? dst : src, bytes, op, to_device ? "dst" : "src");
  emu::require_host(to_device ? src : dst, bytes, op, to_device ? "src" : "dst");
  if (bytes != 0) {
    std::memcpy(dst, src, bytes);
  }
  emu::Stats& t = emu::t_stats;
  emu::ProcessCounters& c = emu::process_counters();
  (to_device ? t.bytes_to_device : t.bytes_to_host) += bytes;
  ++(to_device ? t.copies_to_device : t.copies_to_host);
  (to_device ? c.bytes_to_device : c.bytes_to_host).fetch_add(bytes, std::memory_order_relaxed);
  (to_device ? c.copies_to_device : c.copies_to_host).fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

void copy_to_device(void* dst, const void* src, std::size_t bytes, int device) {
  copy_across(dst, src, bytes, device, /*to_device=*/true);
}

void copy_to_host(void* dst, const void* src, std::size_t bytes, int device) {
  copy_across(dst, src, bytes, device, /*to_device=*/false);
}

void copy_device_to_device(void* dst, const void* src, std::size_t bytes, int device) {
  use_device(device, "copy_device_to_device");
  require_device(dst, bytes, "copy_device_to_device", "dst");
  require_device(src, bytes, "copy_device_to_device", "src");
  if (bytes != 0) {
    std::memmove(dst, src, bytes);
  }
  emu::count_kernel();
}

void zero(void* dst, std::size_t bytes, int device) {
  use_device(device, "zero");
  require_device(dst, bytes, "zero", "dst");
  if (bytes != 0) {
    std::memset(dst, 0, bytes);
  }
  emu::count_kernel();
}

MemoryStats memory_stats(int device) {
  use_device(device, "memory_stats");
  emu::Registry& r = emu::registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return MemoryStats{r.live_bytes, r.live_bytes};
}

// ---- elementwise, reductions, protocol epilogues (kernels/cuda/elementwise.cu) ------------------

void binary(BinaryOp op,
            Elem t,
            int64_t n,
            const void* a,
            const Layout& la,
            const void* b,
            const Layout& lb,
            void* out,
            int device) {
  if (!ops::binary_supported(op, t)) {
    unsupported("binary", static_cast<int>(op), t);
  }
  if (n <= 0) {
    return;
  }
  use_device(device, "binary");
  const int size = ops::elem_size(t);
  require_device_layout(a, la, n, size, "binary", "a");
  require_device_layout(b, lb, n, size, "binary", "b");
  require_device(out, elem_bytes(t, n), "binary", "out");
  with_elem(t, [&]<class T>() {
    const auto* pa = static_cast<const T*>(a);
    const auto* pb = static_cast<const T*>(b);
    auto* po = static_cast<T*>(out);
    for (int64_t i = 0; i < n; ++i) {
      int64_t oa = 0;
      int64_t ob = 0;
      ops::layout_offset2(la, lb, i, oa, ob);
      po[i] = ops::binary_elem<T>(op, pa[oa], pb[ob]);
    }
  });
  emu::count_kernel();
}

void unary(UnaryOp op,
           Elem t,
           int64_t n,
           const void* a,
           const Layout& la,
           void* out,
           const UnaryParams& p,
           int device) {
  if (!ops::unary_supported(op, t)) {
    unsupported("unary", static_cast<int>(op), t);
  }
  const bool shift = op == UnaryOp::kShl || op == UnaryOp::kShrArith || op == UnaryOp::kShrLogical;
  if (shift && (p.bits < 0 || p.bits > 63)) {
    throw Error("[cuda::unary] expected 0 <= bits <= 63, got " + std::to_string(p.bits));
  }
  if (n <= 0) {
    return;
  }
  use_device(device, "unary");
  const int size = ops::elem_size(t);
  require_device_layout(a, la, n, size, "unary", "a");
  require_device(out, elem_bytes(t, n), "unary", "out");
  with_elem(t, [&]<class T>() {
    const auto* pa = static_cast<const T*>(a);
    auto* po = static_cast<T*>(out);
    for (int64_t i = 0; i < n; ++i) {
      po[i] = ops::unary_elem<T>(op, pa[ops::layout_offset(la, i)], p);
    }
  });
  emu::count_kernel();
}

void copy_strided(Elem t, int64_t n, const void* src, const Layout& ls, void* dst, int device) {
  if (n <= 0) {
    return;
  }
  use_device(device, "copy_strided");
  const int size = ops::elem_size(t);
  require_device_layout(src, ls, n, size, "copy_strided", "src");
  require_device(dst, elem_bytes(t, n), "copy_strided", "dst");
  const auto* s = static_cast<const unsigned char*>(src);
  auto* d = static_cast<unsigned char*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(d + i * size, s + ops::layout_offset(ls, i) * size, static_cast<std::size_t>(size));
  }
  emu::count_kernel();
}

void add_into_strided(
    Elem t, int64_t n, const void* src, const Layout& ls, void* dst, const Layout& ld, int device) {
  if (t == Elem::kU8) {
    throw Error("[cuda::add_into_strided] expected an arithmetic element type, got uint8");
  }
  if (n <= 0) {
    return;
  }
  use_device(device, "add_into_strided");
  const int size = ops::elem_size(t);
  require_device_layout(src, ls, n, size, "add_into_strided", "src");
  require_device_layout(dst, ld, n, size, "add_into_strided", "dst");
  with_elem(t, [&]<class T>() {
    const auto* s = static_cast<const T*>(src);
    auto* d = static_cast<T*>(dst);
    for (int64_t i = 0; i < n; ++i) {
      int64_t os = 0;
      int64_t od = 0;
      ops::layout_offset2(ls, ld, i, os, od);
      d[od] = ops::binary_elem<T>(BinaryOp::kAdd, d[od], s[os]);
    }
  });
  emu::count_kernel();
}

void gather_index(Elem t,
                  int64_t outer,
                  int64_t src_len,
                  int64_t inner,
                  const void* src,
                  int64_t n_index,
                  const int64_t* index,
                  void* dst,
                  int device) {
  if (outer <= 0 || n_index <= 0 || inner <= 0) {
    return;
  }
  use_device(device, "gather_index");
  const std::size_t size = static_cast<std::size_t>(ops::elem_size(t));
  require_device(src, static_cast<std::size_t>(outer * src_len * inner) * size, "gather_index",
                 "src");
  require_device(index, emu::bytes_of<int64_t>(n_index), "gather_index", "index");
  require_device(dst, static_cast<std::size_t>(outer * n_index * inner) * size, "gather_index",
                 "dst");
  const auto* s = static_cast<const unsigned char*>(src);
  auto* d = static_cast<unsigned char*>(dst);
  for (int64_t i = 0; i < n_index; ++i) {
    if (index[i] >= src_len) {
      throw CudaError("[cuda::gather_index] index " + std::to_string(index[i]) +
                      " out of range for " + std::to_string(src_len) + " rows (emulated device)");
    }
  }
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < n_index; ++i) {
      unsigned char* row = d + static_cast<std::size_t>((o * n_index + i) * inner) * size;
      const std::size_t row_bytes = static_cast<std::size_t>(inner) * size;
      if (index[i] < 0) {
        std::memset(row, 0, row_bytes);
      } else {
        std::memcpy(row, s + static_cast<std::size_t>((o * src_len + index[i]) * inner) * size,
                    row_bytes);
      }
    }
  }
  emu::count_kernel();
}

void cast(Elem from, Elem to, int64_t n, const void* src, void* dst, int device) {
  if (n <= 0) {
    return;
  }
  use_device(device, "cast");
  require_device(src, elem_bytes(from, n), "cast", "src");
  require_device(dst, elem_bytes(to, n), "cast", "dst");
  with_elem(from, [&]<class F>() {
    with_elem(to, [&]<class T>() {
      const auto* s = static_cast<const F*>(src);
      auto* d = static_cast<T*>(dst);
      for (int64_t i = 0; i < n; ++i) {
        d[i] = ops::cast_elem<T, F>(s[i]);
      }
    });
  });
  emu::count_kernel();
}

void fill(Elem t, int64_t n, uint64_t value_bits, void* dst, int device) {
  if (n <= 0) {
    return;
  }
  use_device(device, "fill");
  const int size = ops::elem_size(t);
  require_device(dst, elem_bytes(t, n), "fill", "dst");
  auto* d = static_cast<unsigned char*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(d + i * size, &value_bits, static_cast<std::size_t>(size));  // little endian
  }
  emu::count_kernel();
}

void encode_fixed(Elem from, int64_t n, const void* src, int frac_bits, uint64_t* dst, int device) {
  if (!ops::is_float(from)) {
    throw Error(std::string("[cuda::encode_fixed] expected float32 or float64 input, got ") +
                checks::elem_name(from));
  }
  checks::frac_bits("encode_fixed", frac_bits);
  if (n <= 0) {
    return;
  }
  use_device(device, "encode_fixed");
  require_device(src, elem_bytes(from, n), "encode_fixed", "src");
  require_device(dst, emu::bytes_of<uint64_t>(n), "encode_fixed", "dst");
  const double scale = static_cast<double>(uint64_t{1} << frac_bits);
  for (int64_t i = 0; i < n; ++i) {
    const double x = from == Elem::kF32 ? static_cast<double>(static_cast<const float*>(src)[i])
                                        : static_cast<const double*>(src)[i];
    dst[i] = ops::encode_elem(x, scale);
  }
  emu::count_kernel();
}

void decode_fixed(int64_t n, const uint64_t* src, int frac_bits, Elem to, void* dst, int device) {
  if (!ops::is_float(to)) {
    throw Error(std::string("[cuda::decode_fixed] expected float32 or float64 output, got ") +
                checks::elem_name(to));
  }
  checks::frac_bits("decode_fixed", frac_bits);
  if (n <= 0) {
    return;
  }
  use_device(device, "decode_fixed");
  require_device(src, emu::bytes_of<uint64_t>(n), "decode_fixed", "src");
  require_device(dst, elem_bytes(to, n), "decode_fixed", "dst");
  const double inv_scale = 1.0 / static_cast<double>(uint64_t{1} << frac_bits);
  for (int64_t i = 0; i < n; ++i) {
    const double v = ops::decode_elem(src[i], inv_scale);
    if (to == Elem::kF32) {
      static_cast<float*>(dst)[i] = static_cast<float>(v);
    } else {
      static_cast<double*>(dst)[i] = v;
    }
  }
  emu::count_kernel();
}

void reduce(ReduceOp op,
            Elem t,
            int64_t outer,
            int64_t len,
            int64_t inner,
            const void* src,
            void* dst,
            int device) {
  if (!ops::reduce_supported(op, t)) {
    unsupported("reduce", static_cast<int>(op), t);
  }
  if (outer < 0 || len < 0 || inner < 0) {
    throw Error("[cuda::reduce] expected non-negative sizes, got [" + std::to_string(outer) + ", " +
                std::to_string(len) + ", " + std::to_string(inner) + "]");
  }
  if (outer * inner == 0) {
    return;
  }
  use_device(device, "reduce");
  require_device(src, elem_bytes(t, outer * len * inner), "reduce", "src");
  require_device(dst,
                 op == ReduceOp::kArgmax ? elem_bytes(Elem::kI64, outer * inner)
                                         : elem_bytes(t, outer * inner),
                 "reduce", "dst");
  with_elem(t, [&]<class T>() {
    if constexpr (!std::is_same_v<T, uint8_t>) {
      const auto* p = static_cast<const T*>(src);
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t c = 0; c < inner; ++c) {
          T acc{0};
          int64_t arg = 0;
          for (int64_t j = 0; j < len; ++j) {
            const T v = p[(o * len + j) * inner + c];
            if (op == ReduceOp::kSum) {
              acc = ops::binary_elem<T>(BinaryOp::kAdd, acc, v);
            } else if (j == 0 || ops::greater(v, acc)) {
              acc = v;
              arg = j;
            }
          }
          if (op == ReduceOp::kArgmax) {
            static_cast<int64_t*>(dst)[o * inner + c] = arg;
          } else {
            static_cast<T*>(dst)[o * inner + c] = acc;
          }
        }
      }
    }
  });
  emu::count_kernel();
}

void ring_mask(int64_t n, const uint64_t* x, const uint64_t* a, uint64_t* out, int device) {
  if (n <= 0) {
    return;
  }
  use_device(device, "ring_mask");
  for (const uint64_t* p : {x, a, static_cast<const uint64_t*>(out)}) {
    require_device(p, emu::bytes_of<uint64_t>(n), "ring_mask", "an operand");
  }
  for (int64_t i = 0; i < n; ++i) {
    out[i] = ops::mask_elem(x[i], a[i]);
  }
  emu::count_kernel();
}

void beaver_output(int64_t n,
                   bool first,
                   const uint64_t* e,
                   const uint64_t* d,
                   const uint64_t* a,
                   const uint64_t* b,
                   const uint64_t* c,
                   int trunc_bits,
                   uint64_t* z,
                   int device) {
  checks::trunc_bits("beaver_output", trunc_bits);
  if (n <= 0) {
    return;
  }
  use_device(device, "beaver_output");
  for (const uint64_t* p : {e, d, a, b, c, static_cast<const uint64_t*>(z)}) {
    require_device(p, emu::bytes_of<uint64_t>(n), "beaver_output", "an operand");
  }
  for (int64_t i = 0; i < n; ++i) {
    z[i] = ops::beaver_elem(first, e[i], d[i], a[i], b[i], c[i], trunc_bits);
  }
  emu::count_kernel();
}

// ---- GEMMs (kernels/cuda/ring_gemm.cu) ----------------------------------------------------------

namespace {

/// C = op(A) op(B) with T arithmetic (wrapping for uint64), after the operands' device checks.
template <class T>
void gemm_loops(const char* op,
                int64_t m,
                int64_t n,
                int64_t k,
                const T* a,
                int64_t lda,
                bool trans_a,
                const T* b,
                int64_t ldb,
                bool trans_b,
                T* c,
                int64_t ldc) {
  require_device(c, static_cast<std::size_t>((m - 1) * ldc + n) * sizeof(T), op, "C");
  if (k > 0) {
    const int64_t rows_a = trans_a ? k : m;
    const int64_t cols_a = trans_a ? m : k;
    const int64_t rows_b = trans_b ? n : k;
    const int64_t cols_b = trans_b ? k : n;
    require_device(a, static_cast<std::size_t>((rows_a - 1) * lda + cols_a) * sizeof(T), op, "A");
    require_device(b, static_cast<std::size_t>((rows_b - 1) * ldb + cols_b) * sizeof(T), op, "B");
  }
  std::vector<T> row(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < m; ++i) {
    std::fill(row.begin(), row.end(), T{0});
    for (int64_t p = 0; p < k; ++p) {
      const T x = trans_a ? a[p * lda + i] : a[i * lda + p];
      for (int64_t j = 0; j < n; ++j) {
        const T y = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        row[static_cast<std::size_t>(j)] += x * y;  // uint64: mod 2^64
      }
    }
    std::copy(row.begin(), row.end(), c + i * ldc);
  }
  emu::count_kernel();
}

}  // namespace

void ring_gemm_ex(RingGemmAlgo /*algo*/,
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
  use_device(device, "ring_gemm");
  gemm_loops<uint64_t>("ring_gemm", m, n, k, a, lda, trans_a, b, ldb, trans_b, c, ldc);
}

void ring_gemm(int64_t m, int64_t n, int64_t k, const uint64_t* a, const uint64_t* b, uint64_t* c) {
  ring_gemm_ex(RingGemmAlgo::kTensorCore, m, n, k, a, k, false, b, n, false, c, n, 0);
}

RingGemmAlgo ring_gemm_effective_algo(int device) {
  use_device(device, "ring_gemm_effective_algo");
  return RingGemmAlgo::kTensorCore;
}

void float_gemm(int elem,
                bool /*tf32*/,
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
  if (elem != 0 && elem != 1) {
    throw Error("[cuda::float_gemm] expected float32 (0) or float64 (1), got " +
                std::to_string(elem));
  }
  checks::gemm("float_gemm", m, n, k, a, lda, trans_a, b, ldb, trans_b, c, ldc);
  if (m == 0 || n == 0) {
    return;
  }
  use_device(device, "float_gemm");
  if (elem == 0) {
    gemm_loops<float>("float_gemm", m, n, k, static_cast<const float*>(a), lda, trans_a,
                      static_cast<const float*>(b), ldb, trans_b, static_cast<float*>(c), ldc);
  } else {
    gemm_loops<double>("float_gemm", m, n, k, static_cast<const double*>(a), lda, trans_a,
                       static_cast<const double*>(b), ldb, trans_b, static_cast<double*>(c), ldc);
  }
}

void limb_f64_ring_gemm(int64_t m,
                        int64_t n,
                        int64_t k,
                        const uint64_t* a,
                        const uint64_t* b,
                        uint64_t* c,
                        int device) {
  if (k > (int64_t{1} << 21)) {
    throw Error("[cuda::limb_f64_ring_gemm] expected k <= 2^21 (exact float64 sums), got " +
                checks::sizes3(m, n, k));
  }
  ring_gemm_ex(RingGemmAlgo::kSimt, m, n, k, a, k, false, b, n, false, c, n, device);
}

std::vector<double> time_gpu_ms(int device, int warmup, int reps, const std::function<void()>& fn) {
  use_device(device, "time_gpu_ms");
  for (int i = 0; i < warmup; ++i) {
    fn();
  }
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return ms;
}

// ---- PRG keystream (kernels/cuda/prg.cu) --------------------------------------------------------

void aes128_ctr_keystream(
    const uint8_t* key, uint64_t position, uint8_t* out, int64_t nbytes, int device) {
  if (!checks::keystream(key, position, out, nbytes)) {
    return;
  }
  use_device(device, "aes128_ctr_keystream");
  require_device(out, static_cast<std::size_t>(nbytes), "aes128_ctr_keystream", "out");
  aes::RoundKeys rk{};
  aes::expand_key(key, rk);
  aes::ctr_keystream_kernel_emulation(rk, position, out, nbytes);
  aes::secure_wipe(&rk, sizeof(rk));
  emu::count_kernel();
}

// ---- masked-open circuits (kernels/cuda/circuit.cu) ---------------------------------------------

void circuit_local_level(const circuit::Level& l0,
                         int64_t n,
                         const uint64_t* c,
                         const uint64_t* r_planes,
                         const uint64_t* products,
                         int64_t product_stride,
                         uint64_t constant,
                         uint64_t* wires,
                         uint64_t* c_top,
                         int device) {
  if (n <= 0) {
    return;
  }
  use_device(device, "circuit_local_level");
  const int64_t blocks = (n + 63) / 64;
  require_device(c, emu::bytes_of<uint64_t>(n), "circuit_local_level", "c");
  require_device(r_planes, emu::bytes_of<uint64_t>(64 * blocks), "circuit_local_level", "r_planes");
  require_device(products, emu::bytes_of<uint64_t>(product_stride * blocks), "circuit_local_level",
                 "products");
  require_device(wires, emu::bytes_of<uint64_t>(l0.out_width * blocks), "circuit_local_level",
                 "wires");
  require_device(c_top, emu::bytes_of<uint64_t>(blocks), "circuit_local_level", "c_top");
  for (int64_t blk = 0; blk < blocks; ++blk) {
    circuit::local_level_block(l0, n, blk, c, r_planes + 64 * blk, products + product_stride * blk,
                               constant, wires + blk * l0.out_width, c_top + blk);
  }
  emu::count_kernel();
}

void circuit_mask(int64_t blocks,
                  int w,
                  const uint64_t* wires,
                  const uint64_t* masks,
                  int64_t mask_stride,
                  uint64_t* out,
                  int device) {
  if (blocks <= 0 || w <= 0) {
    return;
  }
  use_device(device, "circuit_mask");
  require_device(wires, emu::bytes_of<uint64_t>(blocks * w), "circuit_mask", "wires");
  require_device(masks, emu::bytes_of<uint64_t>((blocks - 1) * mask_stride + w), "circuit_mask",
                 "masks");
  require_device(out, emu::bytes_of<uint64_t>(blocks * w), "circuit_mask", "out");
  for (int64_t i = 0; i < blocks * w; ++i) {
    out[i] = circuit::masked_wire(i, w, wires, masks, mask_stride);
  }
  emu::count_kernel();
}

void circuit_level(const circuit::Level& level,
                   int64_t blocks,
                   const uint64_t* opened,
                   const uint64_t* masks,
                   int64_t mask_stride,
                   const uint64_t* products,
                   int64_t product_stride,
                   uint64_t constant,
                   uint64_t* out,
                   int device) {
  if (blocks <= 0) {
    return;
  }
  use_device(device, "circuit_level");
  require_device(opened, emu::bytes_of<uint64_t>(blocks * level.in_width), "circuit_level",
                 "opened");
  require_device(masks, emu::bytes_of<uint64_t>((blocks - 1) * mask_stride + level.in_width),
                 "circuit_level", "masks");
  require_device(products, emu::bytes_of<uint64_t>(blocks * product_stride), "circuit_level",
                 "products");
  require_device(out, emu::bytes_of<uint64_t>(blocks * level.out_width), "circuit_level", "out");
  for (int64_t blk = 0; blk < blocks; ++blk) {
    circuit::evaluate_level(level, opened + blk * level.in_width, masks + blk * mask_stride,
                            products + blk * product_stride, constant, out + blk * level.out_width);
  }
  emu::count_kernel();
}

void circuit_output(int64_t blocks,
                    bool less_than_zero,
                    const uint64_t* wires,
                    const uint64_t* r_top,
                    int64_t r_stride,
                    const uint64_t* c_top,
                    uint64_t constant,
                    uint64_t* out,
                    int device) {
  if (blocks <= 0) {
    return;
  }
  use_device(device, "circuit_output");
  require_device(wires, emu::bytes_of<uint64_t>(blocks), "circuit_output", "wires");
  require_device(out, emu::bytes_of<uint64_t>(blocks), "circuit_output", "out");
  if (less_than_zero) {
    require_device(r_top, emu::bytes_of<uint64_t>((blocks - 1) * r_stride + 1), "circuit_output",
                   "r_top");
    require_device(c_top, emu::bytes_of<uint64_t>(blocks), "circuit_output", "c_top");
  }
  for (int64_t blk = 0; blk < blocks; ++blk) {
    out[blk] = circuit::output_plane(less_than_zero, wires[blk],
                                     less_than_zero ? r_top[blk * r_stride] : 0,
                                     less_than_zero ? c_top[blk] : 0, constant);
  }
  emu::count_kernel();
}

void circuit_bits(int64_t n, const uint64_t* planes, uint64_t* out, int device) {
  if (n <= 0) {
    return;
  }
  use_device(device, "circuit_bits");
  require_device(planes, emu::bytes_of<uint64_t>((n + 63) / 64), "circuit_bits", "planes");
  require_device(out, emu::bytes_of<uint64_t>(n), "circuit_bits", "out");
  for (int64_t e = 0; e < n; ++e) {
    out[e] = circuit::plane_bit(planes, e);
  }
  emu::count_kernel();
}

void circuit_inject(const circuit::InjectArgs& args, int device) {
  if (args.n <= 0) {
    return;
  }
  use_device(device, "circuit_inject");
  const std::size_t n = emu::bytes_of<uint64_t>(args.n);
  const std::size_t extras = n * static_cast<std::size_t>(args.extras);
  require_device(args.e_planes, emu::bytes_of<uint64_t>((args.n + 63) / 64), "circuit_inject",
                 "e_planes");
  require_device(args.s, n, "circuit_inject", "s");
  require_device(args.bit, n, "circuit_inject", "bit");
  if (args.c != nullptr) {
    for (const uint64_t* p :
         {args.c, args.r, args.rs, static_cast<const uint64_t*>(args.x_times_bit)}) {
      require_device(p, n, "circuit_inject", "x_times_bit operands");
    }
  }
  if (args.extras > 0) {
    for (const uint64_t* p :
         {args.d, args.a, args.as, static_cast<const uint64_t*>(args.product)}) {
      require_device(p, extras, "circuit_inject", "extra operands");
    }
  }
  for (int64_t e = 0; e < args.n; ++e) {
    circuit::inject_element(args, e);
  }
  emu::count_kernel();
}

// ---- float64 convolutions (kernels/cuda/dnn.cpp): plain loops instead of cuDNN ------------------

namespace {

/// Calls f(x index, w index, y index) for every multiply-add of the convolution g.
template <class F>
void for_each_tap(const ConvGeometry& g, F&& f) {
  const int64_t cg = g.c / g.groups;
  const int64_t kg = g.k / g.groups;
  for (int64_t img = 0; img < g.n; ++img) {
    for (int64_t oc = 0; oc < g.k; ++oc) {
      const int64_t group = oc / kg;
      for (int64_t i = 0; i < g.p; ++i) {
        for (int64_t j = 0; j < g.q; ++j) {
          const int64_t yi = ((img * g.k + oc) * g.p + i) * g.q + j;
          for (int64_t ic = 0; ic < cg; ++ic) {
            for (int64_t u = 0; u < g.r; ++u) {
              const int64_t row = i * g.stride_h + u * g.dilation_h - g.pad_h;
              if (row < 0 || row >= g.h) {
                continue;
              }
              for (int64_t v = 0; v < g.s; ++v) {
                const int64_t col = j * g.stride_w + v * g.dilation_w - g.pad_w;
                if (col < 0 || col >= g.w) {
                  continue;
                }
                const int64_t xi = ((img * g.c + group * cg + ic) * g.h + row) * g.w + col;
                const int64_t wi = ((oc * cg + ic) * g.r + u) * g.s + v;
                f(xi, wi, yi);
              }
            }
          }
        }
      }
    }
  }
}

/// One emulated cuDNN call `op`: checks that x, w and y are device memory of g's sizes, zeroes
/// `out` (one of them, `out_len` elements) and calls tap(x index, w index, y index) for every
/// multiply-add.
template <class Tap>
void emulate_conv(const char* op,
                  const ConvGeometry& g,
                  const double* x,
                  const double* w,
                  const double* y,
                  double* out,
                  int64_t out_len,
                  int device,
                  Tap&& tap) {
  use_device(device, op);
  require_device(x, emu::bytes_of<double>(g.n * g.c * g.h * g.w), op, "x");
  require_device(w, emu::bytes_of<double>(g.k * (g.c / g.groups) * g.r * g.s), op, "w");
  require_device(y, emu::bytes_of<double>(g.n * g.k * g.p * g.q), op, "y");
  std::fill(out, out + out_len, 0.0);
  for_each_tap(g, tap);
  emu::count_kernel();
}

}  // namespace

/// True unless VEIL_EMULATED_CUDNN=0, which lets a test take core's fallback (im2col + GEMM).
bool dnn_available() {
  const char* env = std::getenv("VEIL_EMULATED_CUDNN");
  return env == nullptr || std::strcmp(env, "0") != 0;
}

void dnn_conv2d(const ConvGeometry& g, const double* x, const double* w, double* y, int device) {
  emulate_conv("dnn_conv2d", g, x, w, y, y, g.n * g.k * g.p * g.q, device,
               [&](int64_t xi, int64_t wi, int64_t yi) { y[yi] += x[xi] * w[wi]; });
}

void dnn_conv2d_input_grad(
    const ConvGeometry& g, const double* w, const double* dy, double* dx, int device) {
  emulate_conv("dnn_conv2d_input_grad", g, dx, w, dy, dx, g.n * g.c * g.h * g.w, device,
               [&](int64_t xi, int64_t wi, int64_t yi) { dx[xi] += dy[yi] * w[wi]; });
}

void dnn_conv2d_weight_grad(
    const ConvGeometry& g, const double* x, const double* dy, double* dw, int device) {
  emulate_conv("dnn_conv2d_weight_grad", g, x, dw, dy, dw, g.k * (g.c / g.groups) * g.r * g.s,
               device, [&](int64_t xi, int64_t wi, int64_t yi) { dw[wi] += dy[yi] * x[xi]; });
}

}  // namespace veil::kernels::cuda
