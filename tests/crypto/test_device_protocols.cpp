// Protocols with shares on a CUDA device (PartyOptions::device): share, reveal, public ops, the
// Beaver mul and matmul, square pairs, truncation, and the comparisons with what is built on them
// (ReLU, lt/eq, max, sigmoid, softmax; their bit circuits run on the party's CPU). A device run
// must equal the CPU run bit for bit (same keys via the insecure reproducibility seed), for all
// parties on one GPU as threads and for a party on the GPU next to one on the CPU. The GPU cases
// skip without a device.

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <catch2/catch.hpp>

#include "core/ops.h"
#include "crypto/launch.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"
#include "crypto/protocols/nonlinear.h"
#include "crypto/protocols/trig.h"
#include "kernels/cuda_backend.h"
#include "tests/harness/simulate.h"

namespace {

using veil::core::Device;
using veil::core::Tensor;
namespace crypto = veil::crypto;
namespace vt = veil::testing;

bool have_gpu() {
  if (veil::kernels::cuda::device_count() == 0) {
    std::puts("SKIPPED: no CUDA device");
    return false;
  }
  return true;
}

// The compared values of n elements: uniform in [-3, 3] with exact zeros and repeats every third
// element, so eqz sees both outcomes.
std::vector<double> circuit_input(int64_t n) {
  std::vector<double> xv =
      vt::uniform({n}, -3.0, 3.0, 100 + static_cast<uint64_t>(n)).to_vector<double>();
  for (std::size_t i = 0; i < xv.size(); i += 3) {
    xv[i] = i % 2 == 0 ? 0.0 : 1.5;
  }
  return xv;
}

// The comparison circuits on their own, for sizes around the 64-element blocks (and none): every
// output of ltz, eqz and their conversion rounds with products, revealed.
std::vector<std::vector<uint64_t>> circuits(crypto::Party& p) {
  std::vector<std::vector<uint64_t>> revealed;
  std::vector<uint64_t> on_party_device;
  for (int64_t n : {0, 1, 63, 64, 65, 4097, 70001}) {
    const Tensor x = Tensor::from_vector<double>(circuit_input(n), {n});
    const Tensor y = vt::uniform({n}, -2.0, 2.0, 200 + static_cast<uint64_t>(n));
    const auto sx = crypto::share(p, x, 0, x.shape());
    const auto sy = crypto::share(p, y, p.world_size() - 1, y.shape());
    std::vector<crypto::AShare> outs;
    const crypto::BitProducts lm = crypto::ltz_mul(p, sx, true, {sy});
    outs.push_back(lm.bit);
    outs.push_back(lm.x_times_bit);
    outs.push_back(lm.products[0]);
    const crypto::BitProducts em = crypto::eqz_mul(p, sx, {sy, sx});
    outs.push_back(em.bit);
    outs.push_back(em.products[0]);
    outs.push_back(em.products[1]);
    for (const auto& b : {crypto::ltz(p, sx), crypto::eqz(p, sx)}) {
      const Tensor r = crypto::reveal_binary(p, b);
      on_party_device.push_back(b.data.device() == p.device() ? 1 : 0);
      revealed.push_back(r.to(Device::cpu()).to_vector<uint64_t>());
    }
    for (const auto& o : outs) {
      const Tensor r = crypto::reveal(p, o);
      on_party_device.push_back(o.data.device() == p.device() ? 1 : 0);
      revealed.push_back(r.to(Device::cpu()).to_vector<uint64_t>());
    }
  }
  revealed.push_back(on_party_device);
  return revealed;
}

// Every revealed ring result of a small program: public and secret operations, a batch of
// elementwise products, a matmul, and an N-party truncation.
std::vector<std::vector<uint64_t>> program(crypto::Party& p) {
  const Tensor x = vt::uniform({37}, -4.0, 4.0, 11);
  const Tensor y = vt::uniform({37}, -4.0, 4.0, 12);
  const Tensor a = vt::uniform({5, 9}, -2.0, 2.0, 13);
  const Tensor b = vt::uniform({9, 3}, -2.0, 2.0, 14);
  const auto sx = crypto::share(p, x, 0, x.shape());
  const auto sy = crypto::share(p, y, p.world_size() - 1, y.shape());
  const auto sa = crypto::share(p, a, 0, a.shape());
  const auto sb = crypto::share(p, b, 1, b.shape());
  std::vector<crypto::AShare> outs;
  outs.push_back(crypto::mul(p, sx, sy));
  outs.push_back(crypto::matmul(p, sa, sb));
  outs.push_back(crypto::add_public(p, crypto::sub(sx, sy), 0.75));
  outs.push_back(crypto::mul_public(p, sx, -1.5));
  outs.push_back(crypto::beaver(p, crypto::BilinearOp::mul(sx.shape(), sy.shape()), sx, sy));
  outs.push_back(crypto::truncate(p, outs.back(), 16));
  outs.push_back(crypto::square(p, sx));
  outs.push_back(crypto::relu(p, sx).out);
  outs.push_back(crypto::lt(p, sx, sy));
  outs.push_back(crypto::eq(p, sx, sx));
  const crypto::MaxResult mx = crypto::max_lastdim(p, sa);
  outs.push_back(mx.values);
  outs.push_back(mx.indices);
  outs.push_back(crypto::sigmoid(p, sx));
  outs.push_back(crypto::softmax(p, sa));
  const Tensor pos = vt::uniform({37}, 0.05, 40.0, 15);
  const auto sp = crypto::share(p, pos, 0, pos.shape());
  outs.push_back(crypto::reciprocal(p, sp));
  outs.push_back(crypto::log(p, sp));
  outs.push_back(crypto::inv_sqrt(p, sp));
  outs.push_back(crypto::erf(p, sx));
  outs.push_back(crypto::cos(p, sx));
  std::vector<std::vector<uint64_t>> revealed;
  std::vector<uint64_t> on_party_device;  // checked on the main thread (Catch2 is not thread-safe)
  for (const auto& o : outs) {
    const Tensor r = crypto::reveal(p, o);
    on_party_device.push_back(o.data.device() == p.device() && r.device() == p.device() ? 1 : 0);
    revealed.push_back(r.to(Device::cpu()).to_vector<uint64_t>());
  }
  revealed.push_back(on_party_device);
  return revealed;
}

using Program = std::vector<std::vector<uint64_t>> (*)(crypto::Party&);

std::vector<std::vector<uint64_t>> run(int n,
                                       crypto::ProviderKind kind,
                                       const std::function<Device(int)>& device_of,
                                       Program prog = program) {
  auto o = vt::test_options(n, kind);
  o.party.insecure = true;
  o.party.insecure_seed = 2026;
  o.party_for_rank = [o, device_of](int rank) {
    crypto::PartyOptions po = o.party;
    po.device = device_of(rank);
    return po;
  };
  const auto all = crypto::launch<std::vector<std::vector<uint64_t>>>(o, prog);
  for (std::size_t rank = 0; rank < all.size(); ++rank) {
    // every output and its reveal stayed on the party's device
    CHECK(all[rank].back() == std::vector<uint64_t>(all[rank].size() - 1, 1));
    REQUIRE(std::equal(all[rank].begin(), all[rank].end() - 1, all[0].begin()));
  }
  auto values = all[0];
  values.pop_back();
  return values;
}

}  // namespace

TEST_CASE("a CUDA party without CUDA is refused at setup with the way out", "[device][crypto]") {
  // GIVEN parties asking for cuda:0 on a build or machine that cannot give it
  if (veil::kernels::cuda::compiled() && veil::kernels::cuda::device_count() > 0) {
    std::puts("note: a CUDA device is present; the refusal is tested with an index past it");
  }
  auto o = vt::test_options(2);
  o.party.device = Device::cuda(veil::kernels::cuda::device_count());
  // WHEN they set up
  // THEN setup throws before any communication, naming the device and the fix
  try {
    crypto::launch(o, [](crypto::Party&) {});
    FAIL("expected an error");
  } catch (const veil::NotCompiledError& e) {
    CHECK_FALSE(veil::kernels::cuda::compiled());
    CHECK(std::string(e.what()).find("VEIL_WITH_CUDA") != std::string::npos);
  } catch (const veil::ValueError& e) {
    CHECK(veil::kernels::cuda::compiled());
    CHECK(std::string(e.what()).find("[Party] PartyOptions::device is cuda:") != std::string::npos);
  }
}

TEST_CASE("shares on a GPU give the CPU run's results bit for bit", "[device][crypto][cuda]") {
  if (!have_gpu()) {
    return;
  }
  for (int n : {2, 3}) {
    for (auto kind : {crypto::ProviderKind::kDealer, crypto::ProviderKind::kTrustedFirstParty}) {
      INFO("parties " << n << ", provider " << crypto::provider_name(kind));
      // GIVEN the same program and keys on the CPU and with every party on cuda:0
      const auto cpu = run(n, kind, [](int) { return Device::cpu(); });
      const auto gpu = run(n, kind, [](int) { return Device::cuda(0); });
      // THEN every revealed ring element agrees
      REQUIRE(cpu.size() == gpu.size());
      for (std::size_t i = 0; i < cpu.size(); ++i) {
        INFO("output " << i);
        CHECK(cpu[i] == gpu[i]);
      }
      // AND a mixed session (party 0 on the GPU, the others on the CPU) agrees too
      const auto mixed =
          run(n, kind, [](int r) { return r == 0 ? Device::cuda(0) : Device::cpu(); });
      CHECK(mixed == cpu);
    }
  }
}

TEST_CASE("GPU shares: the products are right against float64", "[device][crypto][cuda]") {
  if (!have_gpu()) {
    return;
  }
  const auto r = run(2, crypto::ProviderKind::kDealer, [](int) { return Device::cuda(0); });
  const Tensor x = vt::uniform({37}, -4.0, 4.0, 11);
  const Tensor y = vt::uniform({37}, -4.0, 4.0, 12);
  const auto xs = x.to_vector<double>();
  const auto ys = y.to_vector<double>();
  // mul: the 2-party truncation is within one unit of the product (plus the inputs' encoding)
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double got = static_cast<double>(static_cast<int64_t>(r[0][i])) * vt::ulp();
    CHECK(std::abs(got - xs[i] * ys[i]) <= 12 * vt::ulp());
  }
}

TEST_CASE("GPU comparison circuits equal the CPU's for sizes around a block and empty inputs",
          "[device][crypto][cuda]") {
  if (!have_gpu()) {
    return;
  }
  for (int n : {2, 3}) {
    for (auto kind : {crypto::ProviderKind::kDealer, crypto::ProviderKind::kTrustedFirstParty}) {
      INFO("parties " << n << ", provider " << crypto::provider_name(kind));
      // GIVEN ltz, eqz and their products on n = 0, 1, 63, 64, 65, 4097, 70001 elements
      const auto cpu = run(
          n, kind, [](int) { return Device::cpu(); }, circuits);
      const auto gpu = run(
          n, kind, [](int) { return Device::cuda(0); }, circuits);
      // THEN the GPU run reveals the CPU run's values bit for bit
      REQUIRE(cpu.size() == gpu.size());
      for (std::size_t i = 0; i < cpu.size(); ++i) {
        INFO("output " << i);
        CHECK(cpu[i] == gpu[i]);
      }
      // AND the CPU run is right: [x < 0] and [x == 0] against the plaintext (8 outputs per size)
      std::size_t at = 0;
      for (int64_t size : {0, 1, 63, 64, 65, 4097, 70001}) {
        const std::vector<double> xv = circuit_input(size);
        for (std::size_t i = 0; i < xv.size(); ++i) {
          const uint64_t enc = static_cast<uint64_t>(std::llround(xv[i] / vt::ulp()));
          CHECK((cpu[at][i] & 1U) == (static_cast<int64_t>(enc) < 0 ? 1U : 0U));
          CHECK((cpu[at + 1][i] & 1U) == (enc == 0 ? 1U : 0U));
        }
        at += 8;
      }
    }
  }
}
