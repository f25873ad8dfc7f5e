// Compiled instead of kernels/cuda/nccl.cpp when VEIL_WITH_CUDA resolves to OFF.
#include <string>

#include "kernels/cuda_backend.h"
#include "kernels/cuda_nccl.h"

namespace veil::kernels::cuda {

namespace {
[[noreturn]] void not_compiled(const char* op) {
  throw NotCompiledError(std::string("[cuda::") + op +
                         "] veil was built without CUDA; reconfigure with -DVEIL_WITH_CUDA=ON "
                         "(needs nvcc) to use NCCL");
}
}  // namespace

bool nccl_available() {
  return false;
}

NcclId nccl_make_id() {
  not_compiled("nccl_make_id");
}

std::array<uint8_t, 16> device_uuid(int) {
  not_compiled("device_uuid");
}

NcclComm::NcclComm(const NcclId&, int, int, int, std::chrono::milliseconds) {
  not_compiled("NcclComm");
}

NcclComm::~NcclComm() = default;

void NcclComm::group(std::span<const P2p>) {
  not_compiled("nccl_group");
}

void NcclComm::send(const void*, std::size_t, int) {
  not_compiled("nccl_send");
}

void NcclComm::recv(void*, std::size_t, int) {
  not_compiled("nccl_recv");
}

void NcclComm::all_reduce_sum_u64(uint64_t*, int64_t) {
  not_compiled("nccl_all_reduce");
}

void NcclComm::wait(const char*, bool) {}

void NcclComm::fail(const char* op, const std::string&) {
  not_compiled(op);
}

}  // namespace veil::kernels::cuda
