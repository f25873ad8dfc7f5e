// NCCL transport between parties with one GPU each (kernels/cuda_nccl.h). Without CUDA or without a
// device the entry points fail with a clear error, never a crash or a hang; with two GPUs, send /
// recv and the ring all-reduce move device buffers exactly.

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "kernels/cuda_backend.h"
#include "kernels/cuda_nccl.h"
#include "kernels/error.h"

namespace cuda = veil::kernels::cuda;

TEST_CASE("NCCL without CUDA or without a device fails clearly", "[kernels][nccl]") {
  if (!cuda::compiled()) {
    // GIVEN a build without CUDA: NCCL is unavailable and naming the way out
    CHECK_FALSE(cuda::nccl_available());
    try {
      cuda::NcclComm comm(cuda::NcclId{}, 2, 0, 0);
      FAIL("expected NotCompiledError");
    } catch (const veil::NotCompiledError& e) {
      CHECK(std::string(e.what()).find("[cuda::NcclComm]") != std::string::npos);
      CHECK(std::string(e.what()).find("VEIL_WITH_CUDA") != std::string::npos);
    }
    return;
  }
  // GIVEN a CUDA build: a rank outside the world is refused before NCCL is touched
  try {
    cuda::NcclComm comm(cuda::NcclId{}, 2, 2, 0);
    FAIL("expected an error");
  } catch (const veil::Error& e) {
    CHECK(std::string(e.what()).find("rank 2 of 2") != std::string::npos);
  }
  if (cuda::device_count() == 0) {
    // AND without a device the communicator cannot be made, with a CudaError (no hang)
    CHECK_THROWS_AS(cuda::NcclComm(cuda::NcclId{}, 1, 0, 0), cuda::CudaError);
  }
}

TEST_CASE("NCCL send, recv and ring all-reduce between two GPUs", "[kernels][nccl][cuda]") {
  if (cuda::device_count() < 2 || !cuda::nccl_available()) {
    std::puts("SKIPPED: needs 2 CUDA devices and libnccl");
    return;
  }
  setenv("NCCL_SOCKET_IFNAME", "lo", 0);  // bootstrap over loopback only
  const cuda::NcclId id = cuda::nccl_make_id();
  constexpr std::size_t kN = 100003;
  std::vector<std::vector<uint64_t>> host(2, std::vector<uint64_t>(kN));
  std::mt19937_64 gen(7);
  for (auto& h : host) {
    for (auto& v : h) {
      v = gen() | 1U;
    }
  }
  std::vector<std::vector<uint64_t>> received(2, std::vector<uint64_t>(kN));
  std::vector<std::vector<uint64_t>> reduced(2, std::vector<uint64_t>(kN));
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(2);
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      const auto ri = static_cast<std::size_t>(r);
      try {
        cuda::NcclComm comm(id, 2, r, r);
        const std::size_t bytes = kN * sizeof(uint64_t);
        auto* buf = static_cast<uint64_t*>(cuda::device_alloc(bytes, r));
        auto* in = static_cast<uint64_t*>(cuda::device_alloc(bytes, r));
        cuda::copy_to_device(buf, host[ri].data(), bytes, r);
        if (r == 0) {
          comm.send(buf, bytes, 1);
          comm.recv(in, bytes, 1);
        } else {
          comm.recv(in, bytes, 0);
          comm.send(buf, bytes, 0);
        }
        cuda::copy_to_host(received[ri].data(), in, bytes, r);
        comm.all_reduce_sum_u64(buf, static_cast<int64_t>(kN));
        cuda::copy_to_host(reduced[ri].data(), buf, bytes, r);
        cuda::device_free(buf, r);
        cuda::device_free(in, r);
      } catch (...) {
        errors[ri] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (const auto& e : errors) {
    if (e) {
      std::rethrow_exception(e);
    }
  }
  // THEN each rank got the other's buffer, and both hold the sum mod 2^64
  CHECK(received[0] == host[1]);
  CHECK(received[1] == host[0]);
  for (std::size_t i = 0; i < kN; ++i) {
    const uint64_t want = host[0][i] + host[1][i];
    if (reduced[0][i] != want || reduced[1][i] != want) {
      FAIL("all-reduce differs at element " << i);
    }
  }
}
