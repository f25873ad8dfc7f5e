// Shares on a GPU never leave it except to be sent (issue 5), checked on the emulated device
// (tests/emulated_device/cuda_emulator.h), which counts every host<->device copy per thread:
//  - parties sharing the GPU as threads (the in-process transport's device hand-over) copy nothing
//    to the host at all, and upload only the dealer's corrections and small public tables;
//  - when device tensors are staged through host memory (as over a process transport), a party
//    copies to the host exactly the bytes it sends and uploads at least what it receives (2
//    parties; with more, a tensor sent to several peers is staged once).
// An op that took a share through host memory for its own computation would copy more to the host.
// Uploads beyond the received bytes are public: the dealer's corrections, the compiled circuit
// programs (once per process and device) and index tables. (sin/cos are left out: their private
// angle is reduced on the host by design, see docs/protocols.md.) Only runs in
// veil_test_emulated.

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/conv.h"
#include "core/ops.h"
#include "crypto/launch.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"
#include "crypto/protocols/conv.h"
#include "crypto/protocols/nonlinear.h"
#include "crypto/protocols/trig.h"
#include "tests/emulated_device/cuda_emulator.h"
#include "tests/harness/simulate.h"

namespace {

using veil::core::Device;
using veil::core::Tensor;
namespace crypto = veil::crypto;
namespace emu = veil::testing::emulated_device;
namespace vt = veil::testing;

/// An op on shares of x [4, 6, 8, 8] in (-3, 3) and y [4, 6, 8, 8] in (0.05, 20).
using Op =
    std::function<crypto::AShare(crypto::Party&, const crypto::AShare&, const crypto::AShare&)>;

crypto::AShare reshaped(const crypto::AShare& s, veil::core::Shape shape) {
  return {s.data.reshape(std::move(shape)), s.frac_bits};
}

/// What one party's thread did during the op.
struct Traffic {
  uint64_t to_host = 0;
  uint64_t to_device = 0;
  int64_t sent = 0;             ///< to parties
  int64_t received = 0;         ///< from parties
  int64_t dealer_received = 0;  ///< from the dealer
  bool on_device = false;
};

std::vector<Traffic> run(int parties, const Op& op, bool handover) {
  auto o = vt::test_options(parties, crypto::ProviderKind::kDealer);
  o.device_handover = handover;
  o.party.insecure = true;
  o.party.insecure_seed = 7;
  o.party.device = Device::cuda(0);
  return crypto::launch<Traffic>(o, [&](crypto::Party& p) {
    const Tensor x = vt::uniform({4, 6, 8, 8}, -3.0, 3.0, 1);
    const Tensor y = vt::uniform({4, 6, 8, 8}, 0.05, 20.0, 2);
    const auto sx = crypto::share(p, x, 0, x.shape());
    const auto sy = crypto::share(p, y, p.world_size() - 1, y.shape());
    const veil::comm::CommStats before = p.comm().stats();
    emu::reset_stats();
    const crypto::AShare out = op(p, sx, sy);
    const emu::Stats s = emu::stats();
    const veil::comm::CommStats d = p.comm().stats() - before;
    return Traffic{s.bytes_to_host,         s.bytes_to_device,
                   d.total.bytes_sent,      d.total.bytes_received,
                   d.dealer.bytes_received, out.data.device() == p.device()};
  });
}

}  // namespace

TEST_CASE("device shares never reach host memory except to be sent", "[device][emulated]") {
  const veil::core::Conv2dParams pad1{1, 1, 1, 1, 1, 1, 1};
  const std::vector<std::pair<std::string, Op>> ops = {
      {"mul",
       [](auto& p, auto& x, auto& y) {
         return crypto::mul(p, x, y);
       }},
      {"square",
       [](auto& p, auto& x, auto&) {
         return crypto::square(p, x);
       }},
      {"matmul",
       [](auto& p, auto& x, auto& y) {
         return crypto::matmul(p, reshaped(x, {24, 64}), reshaped(y, {64, 24}));
       }},
      {"conv2d",
       [&](auto& p, auto& x, auto& y) {
         // the kernel: the first 768 elements of y as [8, 6, 4, 4] (a contiguous view)
         const crypto::AShare w{y.data.reshape({2, 768}).slice(0, 0, 1).reshape({8, 6, 4, 4}),
                                y.frac_bits};
         return crypto::conv2d(p, x, w, pad1);
       }},
      {"max_pool2d",
       [](auto& p, auto& x, auto&) {
         return crypto::max_pool2d(p, x, 2, 2);
       }},
      {"avg_pool2d",
       [](auto& p, auto& x, auto&) {
         return crypto::avg_pool2d(p, x, 2, 2);
       }},
      {"relu",
       [](auto& p, auto& x, auto&) {
         return crypto::relu(p, x).out;
       }},
      {"lt",
       [](auto& p, auto& x, auto& y) {
         return crypto::lt(p, x, y);
       }},
      {"eq",
       [](auto& p, auto& x, auto&) {
         return crypto::eq(p, x, x);
       }},
      {"max",
       [](auto& p, auto& x, auto&) {
         return crypto::max_lastdim(p, x).values;
       }},
      {"sigmoid",
       [](auto& p, auto& x, auto&) {
         return crypto::sigmoid(p, x);
       }},
      {"softmax",
       [](auto& p, auto& x, auto&) {
         return crypto::softmax(p, x);
       }},
      {"exp",
       [](auto& p, auto& x, auto&) {
         return crypto::exp(p, x);
       }},
      {"reciprocal",
       [](auto& p, auto&, auto& y) {
         return crypto::reciprocal(p, y);
       }},
      {"log",
       [](auto& p, auto&, auto& y) {
         return crypto::log(p, y);
       }},
      {"inv_sqrt",
       [](auto& p, auto&, auto& y) {
         return crypto::inv_sqrt(p, y);
       }},
      {"erf",
       [](auto& p, auto& x, auto&) {
         return crypto::erf(p, x);
       }},
  };
  const char* only = std::getenv("VEIL_RESIDENCY_OP");  // debugging: one op
  for (const bool handover : {true, false}) {
    for (const int parties : {2, 3}) {
      for (const auto& [name, op] : ops) {
        if (only != nullptr && name != only) {
          continue;
        }
        const std::vector<Traffic> all = run(parties, op, handover);
        for (std::size_t rank = 0; rank < all.size(); ++rank) {
          const Traffic& t = all[rank];
          INFO(name << ", " << parties << " parties, party " << rank
                    << (handover ? ", device hand-over: " : ", staged: ") << t.to_host
                    << " bytes to the host, " << t.sent << " sent; " << t.to_device
                    << " bytes to the device, " << t.received << " + " << t.dealer_received
                    << " received");
          CHECK(t.on_device);
          if (handover) {
            CHECK(t.to_host == 0);
            CHECK(t.to_device <= static_cast<uint64_t>(t.dealer_received) + 65536);
          } else if (parties == 2) {
            CHECK(t.to_host == static_cast<uint64_t>(t.sent));
            CHECK(t.to_device >= static_cast<uint64_t>(t.received));
          } else {
            CHECK(t.to_host <= static_cast<uint64_t>(t.sent));
          }
        }
      }
    }
  }
}

TEST_CASE("a gather's index list is uploaded once per thread and reused", "[device][emulated]") {
  const Tensor h = vt::uniform({6, 50}, -1.0, 1.0, 3);
  const Tensor d = h.to(Device::cuda(0));
  const std::vector<int64_t> cols{49, -1, 0, 7, 7, 23};
  emu::reset_stats();
  const Tensor first = veil::core::gather_last(d, cols);
  const uint64_t after_first = emu::stats().copies_to_device;
  const Tensor second = veil::core::gather_last(d, cols);
  // THEN the second gather finds the list on the device and gives the same values as the CPU
  CHECK(after_first == 1);
  CHECK(emu::stats().copies_to_device == 1);
  CHECK(second.to(Device::cpu()).to_vector<double>() ==
        veil::core::gather_last(h, cols).to_vector<double>());
  CHECK(first.to(Device::cpu()).to_vector<double>() ==
        second.to(Device::cpu()).to_vector<double>());
  // a different list is uploaded; index_select0's batch rows are uploaded on every call
  (void)veil::core::gather_last(d, {1, 2});
  CHECK(emu::stats().copies_to_device == 2);
  (void)d.index_select0({5, 0, 3});
  (void)d.index_select0({5, 0, 3});
  CHECK(emu::stats().copies_to_device == 4);
}
