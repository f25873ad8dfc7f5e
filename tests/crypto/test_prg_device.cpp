// The PRG on the GPU: kernels::cuda::aes128_ctr_keystream against crypto::Prg's OpenSSL stream,
// Prg::ring on a CUDA device against the CPU draw, CPU and GPU draws interleaving into one stream,
// and the errors (which run in every build). Tests that need a device print
// "SKIPPED: no CUDA device" and return when none is visible.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/tensor.h"
#include "crypto/prg.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_prg.h"
#include "kernels/error.h"

namespace cuda = veil::kernels::cuda;
using Catch::Matchers::Contains;
using veil::core::Device;
using veil::core::DType;
using veil::core::Tensor;
using veil::crypto::Prg;

namespace {

bool no_device() {
  if (cuda::device_count() == 0) {
    std::puts("SKIPPED: no CUDA device");
    return true;
  }
  return false;
}

std::vector<uint8_t> cpu_stream(const Prg::Seed& key, uint64_t position, std::size_t n) {
  Prg prg(key);
  prg.seek(position);
  std::vector<uint8_t> out(n);
  prg.fill(std::as_writable_bytes(std::span<uint8_t>(out)));
  return out;
}

// Device buffer of `bytes` + 32 guard bytes filled with a pattern; the keystream goes to
// base + offset (offset 0..15) and the guard bytes must stay untouched.
struct GuardedBuffer {
  std::size_t bytes;
  uint8_t* base;
  explicit GuardedBuffer(std::size_t n) : bytes(n + 32) {
    base = static_cast<uint8_t*>(cuda::device_alloc(bytes, 0));
    const std::vector<uint8_t> pattern(bytes, 0x5a);
    cuda::copy_to_device(base, pattern.data(), bytes, 0);
  }
  ~GuardedBuffer() { cuda::device_free(base, 0); }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  std::vector<uint8_t> host() const {
    std::vector<uint8_t> h(bytes);
    cuda::copy_to_host(h.data(), base, bytes, 0);
    return h;
  }
};

}  // namespace

TEST_CASE("prg device: GPU keystream equals the CPU Prg at random positions, lengths, alignments",
          "[prg][cuda]") {
  if (no_device()) {
    return;
  }
  std::mt19937_64 rng(5);
  const std::size_t fixed[] = {0, 1, 15, 16, 17, 4096 + 3, 100000 + 7};
  for (int trial = 0; trial < 28; ++trial) {
    const Prg::Seed key = Prg::os_seed();
    uint64_t position = rng() % 1000000;
    if (trial % 3 == 1) {
      position = (uint64_t{1} << 36) + rng() % (uint64_t{1} << 40);  // beyond 2^32 blocks
    }
    if (trial % 4 == 0) {
      position -= position % 16;
    }
    const std::size_t n = trial < 7 ? fixed[trial] : static_cast<std::size_t>(rng() % 5000);
    const std::size_t offset = static_cast<std::size_t>(trial) % 16;
    GuardedBuffer buf(n);
    cuda::aes128_ctr_keystream(key.data(), position, buf.base + offset, static_cast<int64_t>(n), 0);
    const auto got = buf.host();
    const auto ref = cpu_stream(key, position, n);
    REQUIRE(std::vector<uint8_t>(got.begin() + static_cast<std::ptrdiff_t>(offset),
                                 got.begin() + static_cast<std::ptrdiff_t>(offset + n)) == ref);
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (i < offset || i >= offset + n) {
        REQUIRE(got[i] == 0x5a);
      }
    }
  }
}

TEST_CASE("prg device: carry across block 2^32 and a 64 MB draw", "[prg][cuda]") {
  if (no_device()) {
    return;
  }
  const Prg::Seed key = Prg::os_seed();
  {
    const uint64_t position = 16 * ((uint64_t{1} << 32) - 2) + 3;
    const std::size_t n = 80;
    GuardedBuffer buf(n);
    cuda::aes128_ctr_keystream(key.data(), position, buf.base, static_cast<int64_t>(n), 0);
    const auto got = buf.host();
    REQUIRE(std::vector<uint8_t>(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(n)) ==
            cpu_stream(key, position, n));
  }
  const std::size_t n = std::size_t{64} << 20;
  const uint64_t position = 12345;
  auto* out = static_cast<uint8_t*>(cuda::device_alloc(n, 0));
  cuda::aes128_ctr_keystream(key.data(), position, out, static_cast<int64_t>(n), 0);
  std::vector<uint8_t> got(n);
  cuda::copy_to_host(got.data(), out, n, 0);
  cuda::device_free(out, 0);
  REQUIRE(got == cpu_stream(key, position, n));
}

TEST_CASE("prg device: ring on CUDA equals ring on the CPU for the same key", "[prg][cuda]") {
  if (no_device()) {
    return;
  }
  const Prg::Seed key = Prg::os_seed();
  for (const auto& shape : {veil::core::Shape{3, 5}, veil::core::Shape{0}, veil::core::Shape{},
                            veil::core::Shape{257, 33}}) {
    Prg gpu(key);
    Prg cpu(key);
    const Tensor on_gpu = gpu.ring(shape, Device::cuda(0));
    REQUIRE(on_gpu.is_cuda());
    REQUIRE(on_gpu.dtype() == DType::kRing64);
    REQUIRE(on_gpu.shape() == shape);
    const Tensor back = on_gpu.to(Device::cpu());
    const Tensor ref = cpu.ring(shape);
    REQUIRE(gpu.position() == cpu.position());
    const uint64_t* a = back.data<uint64_t>();
    const uint64_t* b = ref.data<uint64_t>();
    REQUIRE(std::vector<uint64_t>(a, a + back.numel()) ==
            std::vector<uint64_t>(b, b + ref.numel()));
  }
}

TEST_CASE("prg device: interleaved CPU and GPU draws equal one CPU stream", "[prg][cuda]") {
  if (no_device()) {
    return;
  }
  const Prg::Seed key = Prg::os_seed();
  Prg mixed(key);
  Prg pure(key);
  std::mt19937_64 rng(17);
  for (int step = 0; step < 24; ++step) {
    const int64_t rows = static_cast<int64_t>(rng() % 40);
    const veil::core::Shape shape{rows, 3};
    const Device device = step % 2 == 0 ? Device::cuda(0) : Device::cpu();
    Tensor t = mixed.ring(shape, device).to(Device::cpu());
    Tensor r = pure.ring(shape);
    REQUIRE(std::vector<uint64_t>(t.data<uint64_t>(), t.data<uint64_t>() + t.numel()) ==
            std::vector<uint64_t>(r.data<uint64_t>(), r.data<uint64_t>() + r.numel()));
    if (step % 3 == 0) {  // unaligned positions: odd byte draws and small samplers in between
      std::vector<std::byte> odd(static_cast<std::size_t>(rng() % 13));
      std::vector<std::byte> odd_ref(odd.size());
      mixed.fill(odd);
      pure.fill(odd_ref);
      REQUIRE(odd == odd_ref);
      REQUIRE(mixed.next_u64() == pure.next_u64());
    }
    REQUIRE(mixed.position() == pure.position());
  }
}

TEST_CASE("prg device: errors", "[prg][cuda]") {
  const Prg::Seed key = Prg::os_seed();
  // Negative length: veil::Error naming the op before any device work (NotCompiledError when the
  // build has no CUDA backend).
  uint8_t dummy = 0;
  if (cuda::compiled()) {
    REQUIRE_THROWS_WITH(cuda::aes128_ctr_keystream(key.data(), 0, &dummy, -1, 0),
                        Contains("[cuda::aes128_ctr_keystream] expected nbytes >= 0"));
    REQUIRE_THROWS_WITH(cuda::aes128_ctr_keystream(
                            key.data(), std::numeric_limits<uint64_t>::max() - 3, &dummy, 8, 0),
                        Contains("position + nbytes"));
  } else {
    REQUIRE_THROWS_AS(cuda::aes128_ctr_keystream(key.data(), 0, &dummy, -1, 0),
                      veil::NotCompiledError);
    REQUIRE_THROWS_WITH(cuda::aes128_ctr_keystream(key.data(), 0, &dummy, 16, 0),
                        Contains("-DVEIL_WITH_CUDA=ON"));
  }

  // A draw too long to express in bytes: ValueError before dispatch, position unchanged.
  Prg prg(key);
  (void)prg.next_u64();
  REQUIRE_THROWS_AS(prg.fill_ring_device(nullptr, std::numeric_limits<std::size_t>::max() / 4, 0),
                    veil::ValueError);
  REQUIRE(prg.position() == 8);

  // Prg::ring on a CUDA device in a build without CUDA: NotCompiledError, position unchanged, and
  // the stream goes on as if nothing had been asked.
  if (!cuda::compiled()) {
    REQUIRE_THROWS_AS(prg.ring({4, 4}, Device::cuda(0)), veil::NotCompiledError);
    REQUIRE_THROWS_AS(prg.fill_ring_device(nullptr, 4, 0), veil::NotCompiledError);
    REQUIRE(prg.position() == 8);
  } else if (cuda::device_count() == 0) {
    REQUIRE_THROWS_AS(prg.ring({4, 4}, Device::cuda(0)), veil::Error);
    REQUIRE(prg.position() == 8);
  }
  Prg ref(key);
  (void)ref.next_u64();
  REQUIRE(prg.next_u64() == ref.next_u64());

  // A moved-from Prg refuses device draws with ValueError.
  Prg moved(key);
  Prg taker(std::move(moved));
  REQUIRE_THROWS_AS(moved.ring({2}, Device::cuda(0)),
                    veil::ValueError);  // NOLINT(bugprone-use-after-move)
}
