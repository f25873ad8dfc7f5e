// NCCL point-to-point and all-reduce between parties with one GPU each (kernels/cuda_nccl.h).
// libnccl is opened at first use (kernels/cuda/dynlib.h); every call runs on the calling thread's
// per-thread default stream and waits for completion, so a returned send/recv has finished.

#include <cstring>
#include <mutex>
#include <string>

#include <cuda_runtime.h>
#include <nccl.h>

#include "kernels/cuda/dynlib.h"
#include "kernels/cuda_nccl.h"

namespace veil::kernels::cuda {

namespace {

struct NcclApi {
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) init_rank = nullptr;
  decltype(&ncclCommDestroy) destroy = nullptr;
  decltype(&ncclSend) send = nullptr;
  decltype(&ncclRecv) recv = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
};

// The library's entry points, looked up once; throws CudaError when libnccl cannot be loaded.
const NcclApi& api() {
  static std::once_flag once;
  static NcclApi a;
  std::call_once(once, [] {
    void* lib = detail::open_library({"libnccl.so.2", "libnccl.so"}, "nccl");
    a.get_unique_id = detail::symbol<ncclResult_t(ncclUniqueId*)>(lib, "ncclGetUniqueId", "nccl");
    a.init_rank = detail::symbol<ncclResult_t(ncclComm_t*, int, ncclUniqueId, int)>(
        lib, "ncclCommInitRank", "nccl");
    a.destroy = detail::symbol<ncclResult_t(ncclComm_t)>(lib, "ncclCommDestroy", "nccl");
    a.send = detail::symbol<ncclResult_t(const void*, size_t, ncclDataType_t, int, ncclComm_t,
                                         cudaStream_t)>(lib, "ncclSend", "nccl");
    a.recv =
        detail::symbol<ncclResult_t(void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t)>(
            lib, "ncclRecv", "nccl");
    a.all_reduce =
        detail::symbol<ncclResult_t(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t,
                                    ncclComm_t, cudaStream_t)>(lib, "ncclAllReduce", "nccl");
    a.error_string = detail::symbol<const char*(ncclResult_t)>(lib, "ncclGetErrorString", "nccl");
  });
  if (a.get_unique_id == nullptr) {
    throw CudaError("[cuda::nccl] libnccl failed to load earlier in this process");
  }
  return a;
}

void check_nccl(ncclResult_t r, const char* op, const std::string& what) {
  if (r != ncclSuccess) {
    throw CudaError(std::string("[cuda::") + op + "] " + api().error_string(r) + " (" + what + ")");
  }
}

void check_cuda(cudaError_t e, const char* op, const std::string& what) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw CudaError(std::string("[cuda::") + op + "] " + cudaGetErrorString(e) + " (" + what + ")");
  }
}

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
  ncclUniqueId id{};
  check_nccl(api().get_unique_id(&id), "nccl_make_id", "ncclGetUniqueId");
  NcclId out{};
  static_assert(sizeof(id) == out.size(), "ncclUniqueId is 128 bytes");
  std::memcpy(out.data(), &id, out.size());
  return out;
}

NcclComm::NcclComm(const NcclId& id, int world_size, int rank, int device)
    : world_size_(world_size), rank_(rank), device_(device) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    throw Error("[cuda::NcclComm] expected 0 <= rank < world_size, got rank " +
                std::to_string(rank) + " of " + std::to_string(world_size));
  }
  const NcclApi& a = api();
  check_cuda(cudaSetDevice(device), "NcclComm", "device " + std::to_string(device));
  ncclUniqueId uid{};
  std::memcpy(&uid, id.data(), id.size());
  ncclComm_t comm = nullptr;
  // NCCL refuses two ranks on one GPU ("Duplicate GPU detected"); its message is passed on with
  // the way out.
  const ncclResult_t r = a.init_rank(&comm, world_size, uid, rank);
  if (r != ncclSuccess) {
    throw CudaError(std::string("[cuda::NcclComm] ") + a.error_string(r) + " (rank " +
                    std::to_string(rank) + " of " + std::to_string(world_size) + " on device " +
                    std::to_string(device) +
                    "; NCCL needs one GPU per rank: parties sharing a GPU use the in-process or "
                    "gRPC transport, which stage device tensors through host memory)");
  }
  comm_ = comm;
}

NcclComm::~NcclComm() {
  if (comm_ != nullptr) {
    (void)api().destroy(static_cast<ncclComm_t>(comm_));
  }
}

void NcclComm::send(const void* buf, std::size_t bytes, int peer) {
  check_cuda(cudaSetDevice(device_), "nccl_send", "device " + std::to_string(device_));
  check_nccl(
      api().send(buf, bytes, ncclUint8, peer, static_cast<ncclComm_t>(comm_), cudaStreamPerThread),
      "nccl_send", std::to_string(bytes) + " bytes to rank " + std::to_string(peer));
  check_cuda(cudaStreamSynchronize(cudaStreamPerThread), "nccl_send", "synchronize");
}

void NcclComm::recv(void* buf, std::size_t bytes, int peer) {
  check_cuda(cudaSetDevice(device_), "nccl_recv", "device " + std::to_string(device_));
  check_nccl(
      api().recv(buf, bytes, ncclUint8, peer, static_cast<ncclComm_t>(comm_), cudaStreamPerThread),
      "nccl_recv", std::to_string(bytes) + " bytes from rank " + std::to_string(peer));
  check_cuda(cudaStreamSynchronize(cudaStreamPerThread), "nccl_recv", "synchronize");
}

void NcclComm::all_reduce_sum_u64(uint64_t* buf, int64_t n) {
  if (n < 0) {
    throw Error("[cuda::nccl_all_reduce] expected n >= 0, got " + std::to_string(n));
  }
  check_cuda(cudaSetDevice(device_), "nccl_all_reduce", "device " + std::to_string(device_));
  // ncclUint64 sums wrap mod 2^64: the ring's addition.
  check_nccl(api().all_reduce(buf, buf, static_cast<size_t>(n), ncclUint64, ncclSum,
                              static_cast<ncclComm_t>(comm_), cudaStreamPerThread),
             "nccl_all_reduce", "n=" + std::to_string(n));
  check_cuda(cudaStreamSynchronize(cudaStreamPerThread), "nccl_all_reduce", "synchronize");
}

}  // namespace veil::kernels::cuda
