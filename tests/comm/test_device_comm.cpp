// Device tensors through the communicators: send_tensor / recv_tensor onto a device, all_reduce,
// all_gather and broadcast of CUDA ring tensors give the host results bit for bit and count the
// same bytes. Parties share one GPU as threads of one process (in-process transport). The GPU
// cases print "SKIPPED: no CUDA device" without a device. NcclCommunicator: refused cleanly without
// CUDA, without a device and on one shared GPU; the same exchange over NCCL with 2+ GPUs.

#include <cstdio>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "comm/communicator.h"
#include "comm/in_process.h"
#include "comm/nccl_communicator.h"
#include "core/tensor.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_nccl.h"
#include "tests/harness/watchdog.h"

namespace {

using veil::comm::Communicator;
using veil::comm::InProcessHub;
using veil::comm::ReduceOp;
using veil::core::Device;
using veil::core::DType;
using veil::core::Tensor;

Tensor random_ring(const veil::core::Shape& shape, uint64_t seed) {
  std::mt19937_64 gen(seed);
  Tensor t = Tensor::empty(shape, DType::kRing64);
  for (int64_t i = 0; i < t.numel(); ++i) {
    t.data<uint64_t>()[i] = gen() | 1U;  // never zero
  }
  return t;
}

struct Outcome {
  std::vector<std::vector<uint64_t>> values;
  int64_t bytes_sent = 0;
  bool on_device = true;  // every result came back on the requested device
};

// Every collective and a point-to-point exchange on `device`, returning the results on the host.
Outcome exchange(Communicator& c, Device device) {
  const int n = c.world_size();
  const int r = c.rank();
  Outcome o;
  auto keep = [&](const Tensor& t) {
    o.on_device = o.on_device && t.device() == device;
    o.values.push_back(t.to(Device::cpu()).to_vector<uint64_t>());
  };
  const Tensor mine = random_ring({3, 1001}, 100 + static_cast<uint64_t>(r)).to(device);
  keep(c.all_reduce("sum", mine, ReduceOp::kSum));
  keep(c.all_reduce("xor", mine, ReduceOp::kXor));
  for (const Tensor& t : c.all_gather("gather", mine.slice(1, 5, 700))) {  // a strided view
    keep(t);
  }
  keep(c.broadcast("bcast", r == 1 ? mine : Tensor(), 1, mine.shape(), DType::kRing64, device));
  c.send_tensor((r + 1) % n, "ring", mine.transpose(0, 1));
  keep(c.recv_tensor((r + n - 1) % n, "ring", {1001, 3}, DType::kRing64, device));
  keep(c.all_reduce("empty", Tensor::empty({0}, DType::kRing64, device)));
  o.bytes_sent = c.stats().total.bytes_sent;
  return o;
}

// The exchange on n party threads; over NcclCommunicator (bootstrapped in-process) when `nccl`.
std::vector<Outcome> run(int n, const std::function<Device(int)>& device_of, bool nccl = false) {
  InProcessHub hub(n, false);
  std::vector<std::future<Outcome>> results;
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    std::packaged_task<Outcome()> task([&hub, r, &device_of, nccl] {
      if (nccl) {
        veil::comm::NcclCommunicator c(hub.communicator(r),
                                       veil::comm::NcclOptions{.device = device_of(r).index});
        return exchange(c, device_of(r));
      }
      return exchange(hub.communicator(r), device_of(r));
    });
    results.push_back(task.get_future());
    threads.emplace_back(std::move(task));
  }
  veil::testing::join_with_watchdog(results, threads, std::chrono::milliseconds(60000),
                                    [&] { hub.communicator(0).abort("watchdog"); });
  std::vector<Outcome> out;
  for (auto& f : results) {
    out.push_back(f.get());
  }
  return out;
}

}  // namespace

TEST_CASE("CUDA tensors cross the in-process transport like host tensors", "[comm][cuda]") {
  if (veil::kernels::cuda::device_count() == 0) {
    std::puts("SKIPPED: no CUDA device");
    return;
  }
  for (int n : {2, 3}) {
    INFO("parties: " << n);
    // GIVEN the same exchange with host tensors, all parties on cuda:0, and a mixed session
    const auto host = run(n, [](int) { return Device::cpu(); });
    const auto gpu = run(n, [](int) { return Device::cuda(0); });
    const auto mixed = run(n, [](int r) { return r % 2 == 0 ? Device::cuda(0) : Device::cpu(); });
    for (int r = 0; r < n; ++r) {
      const auto i = static_cast<std::size_t>(r);
      // THEN every result is bit-identical, stays on the party's device, and costs the same bytes
      CHECK(gpu[i].values == host[i].values);
      CHECK(mixed[i].values == host[i].values);
      CHECK(gpu[i].on_device);
      CHECK(mixed[i].on_device);
      CHECK(gpu[i].bytes_sent == host[i].bytes_sent);
      CHECK(mixed[i].bytes_sent == host[i].bytes_sent);
    }
  }
}

TEST_CASE("receiving onto a CUDA device without one fails clearly", "[comm]") {
  // GIVEN a message waiting for a party that asks for it on a device it cannot have
  InProcessHub hub(2, false);
  const Tensor t = random_ring({4}, 1);
  hub.communicator(0).send_tensor(1, "x", t);
  const int missing = veil::kernels::cuda::device_count();  // one past the last device
  // WHEN it receives onto cuda:<missing>
  // THEN it throws NotCompiledError (no CUDA in this build) or CudaError naming the device
  try {
    (void)hub.communicator(1).recv_tensor(0, "x", {4}, DType::kRing64, Device::cuda(missing));
    FAIL("expected an error");
  } catch (const veil::NotCompiledError& e) {
    CHECK_FALSE(veil::kernels::cuda::compiled());
    CHECK(std::string(e.what()).find("VEIL_WITH_CUDA") != std::string::npos);
  } catch (const veil::Error& e) {
    CHECK(veil::kernels::cuda::compiled());
    CHECK(std::string(e.what()).find(std::to_string(missing)) != std::string::npos);
  }
}

TEST_CASE("NCCL is refused cleanly where it cannot run", "[comm][nccl]") {
  const int devices = veil::kernels::cuda::device_count();
  if (!veil::kernels::cuda::compiled()) {
    CHECK_FALSE(veil::kernels::cuda::nccl_available());
  }
  if (devices >= 2) {
    std::puts("SKIPPED: this machine can run NCCL (see the 2-GPU case)");
    return;
  }
  if (devices == 0) {
    // GIVEN no device: the raw communicator throws instead of calling NCCL or hanging
    const veil::kernels::cuda::NcclId id{};
    try {
      veil::kernels::cuda::NcclComm comm(id, 2, 0, 0, std::chrono::milliseconds(2000));
      FAIL("expected an error");
    } catch (const veil::NotCompiledError& e) {
      CHECK_FALSE(veil::kernels::cuda::compiled());
      CHECK(std::string(e.what()).find("VEIL_WITH_CUDA=ON") != std::string::npos);
    } catch (const veil::kernels::cuda::CudaError&) {
      CHECK(veil::kernels::cuda::compiled());
    }
  }
  // GIVEN two party threads on the only device (or none) WHEN they build NcclCommunicators
  // THEN every party throws the same kind of error: NotCompiledError without CUDA, CudaError
  // without a device, ValueError naming the shared GPU and the way out with one device
  InProcessHub hub(2, false);
  hub.communicator(0).set_timeout(std::chrono::milliseconds(10000));
  hub.communicator(1).set_timeout(std::chrono::milliseconds(10000));
  std::vector<std::future<std::string>> results;
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    std::packaged_task<std::string()> task([&hub, r]() -> std::string {
      try {
        veil::comm::NcclCommunicator c(hub.communicator(r), veil::comm::NcclOptions{.device = 0});
        return "constructed";
      } catch (const veil::NotCompiledError& e) {
        return std::string("NotCompiledError: ") + e.what();
      } catch (const veil::kernels::cuda::CudaError& e) {
        return std::string("CudaError: ") + e.what();
      } catch (const veil::ValueError& e) {
        return std::string("ValueError: ") + e.what();
      } catch (const std::exception& e) {
        return std::string("other: ") + e.what();
      }
    });
    results.push_back(task.get_future());
    threads.emplace_back(std::move(task));
  }
  veil::testing::join_with_watchdog(results, threads, std::chrono::milliseconds(30000),
                                    [&] { hub.communicator(0).abort("watchdog"); });
  for (auto& f : results) {
    const std::string what = f.get();
    INFO(what);
    if (!veil::kernels::cuda::compiled()) {
      CHECK(what.rfind("NotCompiledError: ", 0) == 0);
      CHECK(what.find("VEIL_WITH_CUDA=ON") != std::string::npos);
    } else if (devices == 0) {
      CHECK(what.rfind("CudaError: ", 0) == 0);
    } else {
      CHECK(what.rfind("ValueError: ", 0) == 0);
      CHECK(what.find("same GPU") != std::string::npos);
      CHECK(what.find("in-process or gRPC") != std::string::npos);
    }
  }
}

TEST_CASE("CUDA tensors cross NCCL like host tensors", "[comm][nccl][cuda]") {
  const int devices = veil::kernels::cuda::device_count();
  if (devices < 2) {
    std::puts("SKIPPED: needs 2 CUDA devices");
    return;
  }
  REQUIRE(veil::kernels::cuda::nccl_available());
  for (int n = 2; n <= std::min(devices, 3); ++n) {
    INFO("parties: " << n);
    // GIVEN the exchange with host tensors, and over NCCL with party r on cuda:r
    const auto host = run(n, [](int) { return Device::cpu(); });
    const auto gpu = run(
        n, [](int r) { return Device::cuda(r); }, /*nccl=*/true);
    for (int r = 0; r < n; ++r) {
      const auto i = static_cast<std::size_t>(r);
      // THEN results are bit-identical, stay on the GPU, and count the same bytes
      CHECK(gpu[i].values == host[i].values);
      CHECK(gpu[i].on_device);
      CHECK(gpu[i].bytes_sent == host[i].bytes_sent);
    }
  }
}
