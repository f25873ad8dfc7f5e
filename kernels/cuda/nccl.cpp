// NCCL point-to-point and all-reduce between parties with one GPU each (kernels/cuda_nccl.h).
// libnccl is opened at first use (kernels/cuda/dynlib.h). The communicator is non-blocking
// (ncclConfig_t::blocking = 0): NCCL calls return ncclInProgress while they connect, and this file
// polls ncclCommGetAsyncError and cudaStreamQuery with a deadline instead of blocking, so that a
// peer that never shows up ends in ncclCommAbort and a CudaError, never in a hang.

#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include <cuda_runtime.h>

#include "kernels/cuda/dynlib.h"
#include "kernels/cuda_nccl.h"

#if __has_include(<nccl.h>)
#include <nccl.h>
#define VEIL_HAVE_NCCL_H 1
#else
#define VEIL_HAVE_NCCL_H 0
#endif

namespace veil::kernels::cuda {

namespace {

void check_cuda(cudaError_t e, const char* op, const std::string& what) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw CudaError(std::string("[cuda::") + op + "] " + cudaGetErrorString(e) + " (" + what + ")");
  }
}

}  // namespace

std::array<uint8_t, 16> device_uuid(int device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    count = 0;
  }
  if (device < 0 || device >= count) {
    throw CudaError("[cuda::device_uuid] expected a device index in [0, " + std::to_string(count) +
                    "), got " + std::to_string(device));
  }
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, device), "device_uuid",
             "device " + std::to_string(device));
  std::array<uint8_t, 16> out{};
  static_assert(sizeof(prop.uuid.bytes) == 16, "cudaUUID_t is 16 bytes");
  std::memcpy(out.data(), prop.uuid.bytes, out.size());
  return out;
}

#if VEIL_HAVE_NCCL_H

namespace {

struct NcclApi {
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRankConfig) init_rank_config = nullptr;
  decltype(&ncclCommGetAsyncError) async_error = nullptr;
  decltype(&ncclCommFinalize) finalize = nullptr;
  decltype(&ncclCommDestroy) destroy = nullptr;
  decltype(&ncclCommAbort) abort = nullptr;
  decltype(&ncclGroupStart) group_start = nullptr;
  decltype(&ncclGroupEnd) group_end = nullptr;
  decltype(&ncclSend) send = nullptr;
  decltype(&ncclRecv) recv = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
};

// The library's entry points, looked up once; throws CudaError when libnccl cannot be loaded.
const NcclApi& api() {
  static std::once_flag once;
  static NcclApi a;
  static std::string load_error;
  std::call_once(once, [] {
    try {
      void* lib = detail::open_library({"libnccl.so.2", "libnccl.so"}, "nccl");
      NcclApi t;
      t.get_unique_id = detail::symbol<decltype(ncclGetUniqueId)>(lib, "ncclGetUniqueId", "nccl");
      t.init_rank_config =
          detail::symbol<decltype(ncclCommInitRankConfig)>(lib, "ncclCommInitRankConfig", "nccl");
      t.async_error =
          detail::symbol<decltype(ncclCommGetAsyncError)>(lib, "ncclCommGetAsyncError", "nccl");
      t.finalize = detail::symbol<decltype(ncclCommFinalize)>(lib, "ncclCommFinalize", "nccl");
      t.destroy = detail::symbol<decltype(ncclCommDestroy)>(lib, "ncclCommDestroy", "nccl");
      t.abort = detail::symbol<decltype(ncclCommAbort)>(lib, "ncclCommAbort", "nccl");
      t.group_start = detail::symbol<decltype(ncclGroupStart)>(lib, "ncclGroupStart", "nccl");
      t.group_end = detail::symbol<decltype(ncclGroupEnd)>(lib, "ncclGroupEnd", "nccl");
      t.send = detail::symbol<decltype(ncclSend)>(lib, "ncclSend", "nccl");
      t.recv = detail::symbol<decltype(ncclRecv)>(lib, "ncclRecv", "nccl");
      t.all_reduce = detail::symbol<decltype(ncclAllReduce)>(lib, "ncclAllReduce", "nccl");
      t.error_string =
          detail::symbol<decltype(ncclGetErrorString)>(lib, "ncclGetErrorString", "nccl");
      a = t;
    } catch (const CudaError& e) {
      load_error = e.what();
    }
  });
  if (a.get_unique_id == nullptr) {
    throw CudaError(load_error.empty() ? "[cuda::nccl] libnccl failed to load" : load_error);
  }
  return a;
}

ncclComm_t as_comm(void* p) {
  return static_cast<ncclComm_t>(p);
}

constexpr const char* kOneGpuPerRank =
    "NCCL needs one GPU per rank: parties sharing a GPU use the in-process or gRPC transport, "
    "which stage device tensors through pinned host memory";

}  // namespace

bool nccl_available() {
  try {
    (void)api();
    return true;
  } catch (const CudaError&) {
    return false;
  }
}

NcclId nccl_make_id() {
  const NcclApi& a = api();
  ncclUniqueId id{};
  const ncclResult_t r = a.get_unique_id(&id);
  if (r != ncclSuccess) {
    throw CudaError(std::string("[cuda::nccl_make_id] ") + a.error_string(r));
  }
  NcclId out{};
  static_assert(sizeof(id) == sizeof(NcclId), "ncclUniqueId is 128 bytes");
  std::memcpy(out.data(), &id, out.size());
  return out;
}

void NcclComm::fail(const char* op, const std::string& why) {
  if (comm_ != nullptr) {
    // Stops kernels still waiting for a peer and releases the communicator's resources.
    (void)api().abort(as_comm(comm_));
    comm_ = nullptr;
  }
  (void)cudaGetLastError();
  throw CudaError(std::string("[cuda::") + op + "] " + why + " (rank " + std::to_string(rank_) +
                  " of " + std::to_string(world_size_) + " on device " + std::to_string(device_) +
                  ")");
}

void NcclComm::wait(const char* op, bool stream) {
  const NcclApi& a = api();
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (int spins = 0;; ++spins) {
    if (abort_requested_.load(std::memory_order_acquire)) {
      fail(op, "aborted");
    }
    ncclResult_t state = ncclSuccess;
    const ncclResult_t q = a.async_error(as_comm(comm_), &state);
    if (q != ncclSuccess) {
      fail(op, a.error_string(q));
    }
    if (state != ncclSuccess && state != ncclInProgress) {
      fail(op, a.error_string(state));
    }
    bool done = state == ncclSuccess;
    if (done && stream) {
      const cudaError_t e = cudaStreamQuery(cudaStreamPerThread);
      if (e != cudaSuccess && e != cudaErrorNotReady) {
        fail(op, cudaGetErrorString(e));
      }
      done = e == cudaSuccess;
    }
    if (done) {
      return;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      fail(op, "timed out after " + std::to_string(timeout_.count()) +
                   " ms waiting for the other ranks");
    }
    if (spins > 1000) {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    } else {
      std::this_thread::yield();
    }
  }
}

NcclComm::NcclComm(
    const NcclId& id, int world_size, int rank, int device, std::chrono::milliseconds timeout)
    : world_size_(world_size), rank_(rank), device_(device), timeout_(timeout) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    throw Error("[cuda::NcclComm] expected 0 <= rank < world_size, got rank " +
                std::to_string(rank) + " of " + std::to_string(world_size));
  }
  const NcclApi& a = api();
  check_cuda(cudaSetDevice(device), "NcclComm", "device " + std::to_string(device));
  ncclUniqueId uid{};
  std::memcpy(&uid, id.data(), id.size());
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  const ncclResult_t r = a.init_rank_config(&comm, world_size, uid, rank, &config);
  comm_ = comm;
  if (r != ncclSuccess && r != ncclInProgress) {
    // e.g. "Duplicate GPU detected" when two ranks name one GPU.
    fail("NcclComm", std::string(a.error_string(r)) + "; " + kOneGpuPerRank);
  }
  if (comm_ == nullptr) {
    fail("NcclComm", "ncclCommInitRankConfig returned no communicator");
  }
  try {
    wait("NcclComm", /*stream=*/false);
  } catch (const CudaError& e) {
    throw CudaError(std::string(e.what()) + "; " + kOneGpuPerRank);
  }
}

NcclComm::~NcclComm() {
  if (comm_ == nullptr) {
    return;
  }
  const NcclApi& a = api();
  // Finalize flushes work still queued; a rank that cannot finish within the timeout is aborted.
  (void)cudaSetDevice(device_);
  const ncclResult_t f = a.finalize(as_comm(comm_));
  if (f != ncclSuccess && f != ncclInProgress) {
    (void)a.abort(as_comm(comm_));
    comm_ = nullptr;
    return;
  }
  try {
    wait("~NcclComm", /*stream=*/false);
  } catch (const CudaError&) {
    return;  // fail() aborted the communicator
  }
  (void)a.destroy(as_comm(comm_));
  comm_ = nullptr;
}

void NcclComm::group(std::span<const P2p> ops) {
  if (comm_ == nullptr) {
    throw CudaError("[cuda::nccl_group] the NCCL communicator was aborted earlier");
  }
  if (ops.empty()) {
    return;
  }
  const NcclApi& a = api();
  check_cuda(cudaSetDevice(device_), "nccl_group", "device " + std::to_string(device_));
  std::size_t total = 0;
  ncclResult_t r = a.group_start();
  for (const P2p& op : ops) {
    if (r != ncclSuccess) {
      break;
    }
    total += op.bytes;
    r = op.send ? a.send(op.buf, op.bytes, ncclUint8, op.peer, as_comm(comm_), cudaStreamPerThread)
                : a.recv(op.buf, op.bytes, ncclUint8, op.peer, as_comm(comm_), cudaStreamPerThread);
  }
  const ncclResult_t end = a.group_end();
  if (r == ncclSuccess) {
    r = end;
  }
  if (r != ncclSuccess && r != ncclInProgress) {
    fail("nccl_group", std::string(a.error_string(r)) + ", " + std::to_string(ops.size()) +
                           " transfers, " + std::to_string(total) + " bytes");
  }
  wait("nccl_group", /*stream=*/true);
}

void NcclComm::send(const void* buf, std::size_t bytes, int peer) {
  const P2p op{true, const_cast<void*>(buf), bytes, peer};
  group(std::span<const P2p>(&op, 1));
}

void NcclComm::recv(void* buf, std::size_t bytes, int peer) {
  const P2p op{false, buf, bytes, peer};
  group(std::span<const P2p>(&op, 1));
}

void NcclComm::all_reduce_sum_u64(uint64_t* buf, int64_t n) {
  if (n < 0) {
    throw Error("[cuda::nccl_all_reduce] expected n >= 0, got " + std::to_string(n));
  }
  if (comm_ == nullptr) {
    throw CudaError("[cuda::nccl_all_reduce] the NCCL communicator was aborted earlier");
  }
  const NcclApi& a = api();
  check_cuda(cudaSetDevice(device_), "nccl_all_reduce", "device " + std::to_string(device_));
  // ncclUint64 sums wrap mod 2^64: the ring's addition.
  const ncclResult_t r = a.all_reduce(buf, buf, static_cast<size_t>(n), ncclUint64, ncclSum,
                                      as_comm(comm_), cudaStreamPerThread);
  if (r != ncclSuccess && r != ncclInProgress) {
    fail("nccl_all_reduce", std::string(a.error_string(r)) + ", n=" + std::to_string(n));
  }
  wait("nccl_all_reduce", /*stream=*/true);
}

#else  // no nccl.h at build time: the transport is absent, as without CUDA

namespace {
[[noreturn]] void no_nccl(const char* op) {
  throw NotCompiledError(std::string("[cuda::") + op +
                         "] veil was built without nccl.h; install NCCL's headers and reconfigure "
                         "with -DVEIL_WITH_CUDA=ON");
}
}  // namespace

bool nccl_available() {
  return false;
}
NcclId nccl_make_id() {
  no_nccl("nccl_make_id");
}
NcclComm::NcclComm(const NcclId&, int, int, int, std::chrono::milliseconds) {
  no_nccl("NcclComm");
}
NcclComm::~NcclComm() = default;
void NcclComm::group(std::span<const P2p>) {
  no_nccl("nccl_group");
}
void NcclComm::send(const void*, std::size_t, int) {
  no_nccl("nccl_send");
}
void NcclComm::recv(void*, std::size_t, int) {
  no_nccl("nccl_recv");
}
void NcclComm::all_reduce_sum_u64(uint64_t*, int64_t) {
  no_nccl("nccl_all_reduce");
}
void NcclComm::wait(const char*, bool) {}
void NcclComm::fail(const char* op, const std::string&) {
  no_nccl(op);
}

#endif

}  // namespace veil::kernels::cuda
