// Tests for the gRPC transport (comm/grpc/) and the throw-away PKI (comm/tls.h): endpoints run as
// threads of this process on 127.0.0.1 with ports picked free at run time and a PKI generated
// into a fresh temporary directory per test (removed afterwards; no key is ever committed).
//
// Every endpoint's code returns a value through a future; all assertions run on the main thread.
// run_grpc() is the watchdog: when an endpoint is not done in time it aborts every communicator
// (which unblocks their recvs), joins, and fails the test instead of hanging.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include "comm/communicator.h"
#include "comm/grpc/grpc_communicator.h"
#include "comm/in_process.h"
#include "comm/tls.h"
#include "core/error.h"
#include "core/tensor.h"
#include "tests/harness/watchdog.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using Catch::Matchers::Contains;
using veil::CommError;
using veil::ProtocolError;
using veil::ValueError;
using veil::comm::CommStats;
using veil::comm::Communicator;
using veil::comm::GrpcFault;
using veil::comm::GrpcOptions;
using veil::comm::OpStats;
using veil::comm::ReduceOp;
using veil::core::DType;
using veil::core::Tensor;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int64_t ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
}

/// `n` distinct free TCP ports on 127.0.0.1 (bound to port 0 together, then released).
std::vector<int> free_ports(int n) {
  std::vector<int> fds;
  std::vector<int> ports;
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    socklen_t len = sizeof(addr);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ports.push_back(ntohs(addr.sin_port));
    fds.push_back(fd);
  }
  for (const int fd : fds) {
    ::close(fd);
  }
  return ports;
}

/// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    const auto base = std::filesystem::temp_directory_path();
    for (int i = 0; i < 100; ++i) {
      const auto p = base / ("veil-grpc-test-" + std::to_string(rd()) + std::to_string(rd()));
      if (std::filesystem::create_directory(p)) {
        std::filesystem::permissions(p, std::filesystem::perms::owner_all);
        path_ = p;
        return;
      }
    }
    throw std::runtime_error("cannot create a temp dir");
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str(const std::string& sub = {}) const {
    return sub.empty() ? path_.string() : (path_ / sub).string();
  }

 private:
  std::filesystem::path path_;
};

/// A session of `world_size` parties (+ a dealer) on loopback with a fresh PKI.
struct Cluster {
  Cluster(int world_size_in, bool dealer_in) : world_size(world_size_in), dealer(dealer_in) {
    const int n = world_size + (dealer ? 1 : 0);
    for (const int port : free_ports(n)) {
      addresses.push_back("127.0.0.1:" + std::to_string(port));
    }
    veil::comm::generate_test_pki(pki.str("tls"), world_size, dealer);
  }
  int endpoints() const { return world_size + (dealer ? 1 : 0); }
  GrpcOptions options(int rank) const {
    GrpcOptions o;
    o.rank = rank;
    o.world_size = world_size;
    o.has_dealer = dealer;
    o.addresses = addresses;
    o.tls = veil::comm::tls_files_in(pki.str("tls"), rank, world_size);
    o.connect_timeout = milliseconds(2000);
    o.timeout = milliseconds(2000);
    return o;
  }
  std::vector<GrpcOptions> all_options() const {
    std::vector<GrpcOptions> v;
    for (int r = 0; r < endpoints(); ++r) {
      v.push_back(options(r));
    }
    return v;
  }

  int world_size;
  bool dealer;
  TempDir pki;
  std::vector<std::string> addresses;
};

/// Runs connect_grpc(opts[r]) and then fn(communicator) on one thread per entry of `opts`;
/// returns one ready future per endpoint (get() rethrows on the main thread). The communicator
/// is destroyed on its thread when fn returns.
template <class Fn>
auto run_grpc(const std::vector<GrpcOptions>& opts,
              Fn fn,
              milliseconds limit = milliseconds(3000)) {
  using R = std::invoke_result_t<Fn&, Communicator&>;
  struct Slot {
    std::mutex mu;
    Communicator* comm = nullptr;
  };
  auto slots = std::make_shared<std::vector<Slot>>(opts.size());
  std::vector<std::future<R>> results;
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < opts.size(); ++i) {
    std::packaged_task<R()> task([slots, fn, o = opts[i], i]() mutable -> R {
      auto comm = veil::comm::connect_grpc(o);
      {
        std::lock_guard<std::mutex> lock((*slots)[i].mu);
        (*slots)[i].comm = comm.get();
      }
      struct Unregister {
        Slot& slot;
        ~Unregister() {
          std::lock_guard<std::mutex> lock(slot.mu);
          slot.comm = nullptr;
        }
      } unregister{(*slots)[i]};
      return fn(*comm);
    });
    results.push_back(task.get_future());
    threads.emplace_back(std::move(task));
  }
  veil::testing::join_with_watchdog(
      results, threads, limit,
      [&] {
        for (auto& s : *slots) {
          std::lock_guard<std::mutex> lock(s.mu);
          if (s.comm != nullptr) {
            s.comm->abort("watchdog");
          }
        }
      },
      std::chrono::seconds(5));
  return results;
}

using veil::testing::get_all;

/// What an endpoint saw when a call threw: the message and the time until the throw.
struct Failure {
  std::string what;
  int64_t elapsed_ms = -1;
  bool protocol = false;
};

/// Runs fn, returning the exception it threw (empty `what` when it did not throw).
template <class Fn>
Failure failure_of(Fn&& fn) {
  const auto t0 = Clock::now();
  try {
    fn();
  } catch (const ProtocolError& e) {
    return Failure{e.what(), ms_since(t0), true};
  } catch (const std::exception& e) {
    return Failure{e.what(), ms_since(t0), false};
  }
  return Failure{};
}

std::vector<uint64_t> random_ring(std::size_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<uint64_t> v(n);
  for (auto& x : v) {
    x = gen();
  }
  return v;
}

Tensor ring_tensor(const std::vector<uint64_t>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

}  // namespace

// ---- PKI -------------------------------------------------------------------------------------

// A build without the gRPC transport (VEIL_WITH_GRPC=OFF) skips the transport's tests visibly.
static bool have_grpc() {
  if (!veil::comm::grpc_compiled()) {
    std::puts("SKIPPED: veil was built without the gRPC transport (VEIL_WITH_GRPC=OFF)");
    return false;
  }
  return true;
}

TEST_CASE("generate_test_pki writes the layout of comm/tls.h with private keys 0600",
          "[comm][tls]") {
  // GIVEN a fresh directory; WHEN a PKI for 2 parties and a dealer is generated
  TempDir dir;
  veil::comm::generate_test_pki(dir.str("tls"), 2, true);
  // THEN every file exists, keys are owner-only, certs are PEM, names follow the layout
  CHECK(veil::comm::endpoint_identity(0, 2) == "veil-party-0");
  CHECK(veil::comm::endpoint_identity(2, 2) == "veil-dealer");
  CHECK_THROWS_AS(veil::comm::endpoint_identity(3, 2), ValueError);
  for (int r = 0; r <= 2; ++r) {
    const auto f = veil::comm::tls_files_in(dir.str("tls"), r, 2);
    CHECK(f.ca_cert == dir.str("tls/ca.pem"));
    REQUIRE(std::filesystem::exists(f.cert));
    REQUIRE(std::filesystem::exists(f.key));
    struct stat st {};
    REQUIRE(::stat(f.key.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777U) == 0600U);
    std::ifstream in(f.cert);
    std::stringstream ss;
    ss << in.rdbuf();
    CHECK_THAT(ss.str(), Contains("-----BEGIN CERTIFICATE-----"));
  }
  CHECK(veil::comm::tls_files_in(dir.str("tls"), 2, 2).cert == dir.str("tls/dealer.pem"));
  CHECK(veil::comm::tls_files_in(dir.str("tls"), 1, 2).key == dir.str("tls/party-1.key"));
  // no temp files are left behind
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.str("tls"))) {
    ++files;
  }
  CHECK(files == 7);
}

TEST_CASE("connect_grpc validates its options", "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  GrpcOptions o;
  o.world_size = 2;
  o.has_dealer = false;
  o.addresses = {"127.0.0.1:1", "127.0.0.1:2"};
  // GIVEN no TLS files and no insecure flag THEN ValueError says TLS files are required
  CHECK_THROWS_WITH(veil::comm::connect_grpc(o), Contains("TLS files are required"));
  // GIVEN a wrong address count THEN ValueError
  o.insecure_plaintext = true;
  o.addresses = {"127.0.0.1:1"};
  CHECK_THROWS_AS(veil::comm::connect_grpc(o), ValueError);
  // GIVEN TLS files that do not exist THEN ValueError naming the file
  o.insecure_plaintext = false;
  o.addresses = {"127.0.0.1:1", "127.0.0.1:2"};
  o.tls = veil::comm::TlsFiles{"/nonexistent/ca.pem", "/nonexistent/c.pem", "/nonexistent/k.pem"};
  CHECK_THROWS_WITH(veil::comm::connect_grpc(o), Contains("/nonexistent/"));
}

// ---- data movement ---------------------------------------------------------------------------

TEST_CASE("gRPC: tensors and a 64 MiB payload round trip between 2 parties and the dealer",
          "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  // GIVEN 2 parties and a dealer over mutual TLS
  Cluster cl(2, true);
  const std::vector<uint64_t> a = {1, 2, 3, 4, 5, 0xffffffffffffffffULL};
  constexpr std::size_t kBig = std::size_t{64} << 20U;
  auto pattern = [](std::size_t i) {
    return static_cast<std::byte>((i * 131U + 7U) & 0xFFU);
  };
  struct Got {
    std::vector<uint64_t> a, at, from_dealer;
    bool big_ok = false;
    bool empty_ok = false;
  };
  // WHEN party 0 sends a matrix, its transpose and 64 MiB to party 1, which echoes the 64 MiB;
  // the dealer sends a tensor to each party, and party 1 sends an empty message
  auto results = run_grpc(
      cl.all_options(),
      [&](Communicator& c) {
        c.set_timeout(milliseconds(8000));  // 64 MiB over TLS is slow under sanitizers
        Got got;
        if (c.is_dealer()) {
          c.send_tensor(0, "triple#1", ring_tensor({10, 20}));
          c.send_tensor(1, "triple#1", ring_tensor({30, 40}));
          return got;
        }
        got.from_dealer = c.recv_tensor(2, "triple#1", {2}, DType::kRing64).to_vector<uint64_t>();
        if (c.rank() == 0) {
          const Tensor m = Tensor::from_vector(a, {2, 3});
          c.send_tensor(1, "x#1", m);
          c.send_tensor(1, "x#2", m.t());
          veil::comm::Bytes big(kBig);
          for (std::size_t i = 0; i < kBig; ++i) {
            big[i] = pattern(i);
          }
          c.send(1, "big#3", big);
          const veil::comm::Bytes back = c.recv(1, "big#4", static_cast<int64_t>(kBig));
          got.big_ok = back == big;
          got.empty_ok = c.recv(1, "empty#5", 0).empty();
        } else {
          got.a = c.recv_tensor(0, "x#1", {2, 3}, DType::kRing64).to_vector<uint64_t>();
          got.at = c.recv_tensor(0, "x#2", {3, 2}, DType::kRing64).to_vector<uint64_t>();
          veil::comm::Bytes big = c.recv(0, "big#3", static_cast<int64_t>(kBig));
          bool ok = big.size() == kBig;
          for (std::size_t i = 0; ok && i < kBig; ++i) {
            ok = big[i] == pattern(i);
          }
          got.big_ok = ok;
          c.send(0, "big#4", big);
          c.send(0, "empty#5", {});
        }
        return got;
      },
      milliseconds(10000));
  auto got = get_all(results);
  // THEN every message arrives intact and in order
  CHECK(got[1].a == a);
  CHECK(got[1].at == std::vector<uint64_t>{1, 4, 2, 5, 3, 0xffffffffffffffffULL});
  CHECK(got[1].big_ok);
  CHECK(got[0].big_ok);
  CHECK(got[0].empty_ok);
  CHECK(got[0].from_dealer == std::vector<uint64_t>{10, 20});
  CHECK(got[1].from_dealer == std::vector<uint64_t>{30, 40});
}

TEST_CASE("gRPC: large tensors travel without copies and arrive intact in every dtype",
          "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  // GIVEN 2 parties over mutual TLS and tensors on both sides of every receive path: large ring64
  // (received into a tensor and adopted; sent by reference to the storage, from a copy or given
  // up), a strided view, float64 (received as words, then copied into its dtype), uint8 of an
  // odd size (received as bytes), and a large all_reduce (the parts sent without a copy)
  Cluster cl(2, false);
  auto words = [](int64_t n, uint64_t salt) {
    std::vector<uint64_t> v(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < v.size(); ++i) {
      v[i] = (i + salt) * 0x9e3779b97f4a7c15ULL;
    }
    return v;
  };
  const std::vector<uint64_t> big = words(3 * 70000, 1);  // 1.6 MiB: two 1 MiB chunks
  const std::vector<uint64_t> mat = words(300 * 200, 2);
  std::vector<double> floats(1000);
  std::vector<uint8_t> bytes(5001);
  for (std::size_t i = 0; i < floats.size(); ++i) {
    floats[i] = static_cast<double>(i) * -0.25 + 3.0;
  }
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<uint8_t>(i * 7U);
  }
  struct Got {
    std::vector<uint64_t> big, big_moved, transposed, sum;
    std::vector<double> floats;
    std::vector<uint8_t> bytes;
  };
  auto results = run_grpc(
      cl.all_options(),
      [&](Communicator& c) {
        Got got;
        const Tensor part =
            Tensor::from_vector(words(200000, 10 + static_cast<uint64_t>(c.rank())), {200000});
        if (c.rank() == 0) {
          const Tensor b = Tensor::from_vector(big, {3, 70000});
          c.send_tensor(1, "big#1", b);
          c.send_tensor(1, "big#2", Tensor::from_vector(big, {3, 70000}));  // given up
          c.send_tensor(1, "mat#3", Tensor::from_vector(mat, {300, 200}).t());
          c.send_tensor(1, "f#4", Tensor::from_vector(floats, {1000}));
          c.send_tensor(1, "u#5", Tensor::from_vector(bytes, {5001}));
        } else {
          got.big = c.recv_tensor(0, "big#1", {3, 70000}, DType::kRing64).to_vector<uint64_t>();
          got.big_moved =
              c.recv_tensor(0, "big#2", {3, 70000}, DType::kRing64).to_vector<uint64_t>();
          got.transposed =
              c.recv_tensor(0, "mat#3", {200, 300}, DType::kRing64).to_vector<uint64_t>();
          got.floats = c.recv_tensor(0, "f#4", {1000}, DType::kFloat64).to_vector<double>();
          got.bytes = c.recv_tensor(0, "u#5", {5001}, DType::kUInt8).to_vector<uint8_t>();
        }
        Tensor mine = part.clone();
        got.sum = c.all_reduce("ar#6", std::move(mine)).to_vector<uint64_t>();
        return got;
      },
      milliseconds(10000));
  auto got = get_all(results);
  // THEN every value arrives as sent (the transposed view in its logical order) and both parties
  // hold the same sum mod 2^64 of the two parts
  CHECK(got[1].big == big);
  CHECK(got[1].big_moved == big);
  std::vector<uint64_t> want_t(mat.size());
  for (std::size_t r = 0; r < 200; ++r) {
    for (std::size_t col = 0; col < 300; ++col) {
      want_t[r * 300 + col] = mat[col * 200 + r];
    }
  }
  CHECK(got[1].transposed == want_t);
  CHECK(got[1].floats == floats);
  CHECK(got[1].bytes == bytes);
  const std::vector<uint64_t> p0 = words(200000, 10);
  const std::vector<uint64_t> p1 = words(200000, 11);
  std::vector<uint64_t> want_sum(p0.size());
  for (std::size_t i = 0; i < p0.size(); ++i) {
    want_sum[i] = p0[i] + p1[i];
  }
  CHECK(got[0].sum == want_sum);
  CHECK(got[1].sum == want_sum);
}

TEST_CASE("gRPC: all_reduce, all_gather, broadcast and barrier among 3 parties", "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  // GIVEN 3 parties (+ a dealer that only connects) with random ring tensors
  Cluster cl(3, true);
  constexpr std::size_t kN = 1000;
  std::vector<std::vector<uint64_t>> x;
  for (uint64_t r = 0; r < 3; ++r) {
    x.push_back(random_ring(kN, 100 + r));
  }
  struct Got {
    std::vector<uint64_t> sum, xr;
    std::vector<std::vector<uint64_t>> gathered;
    std::vector<uint64_t> bcast;
  };
  auto results = run_grpc(cl.all_options(), [&](Communicator& c) {
    Got got;
    if (c.is_dealer()) {
      return got;
    }
    const auto r = static_cast<std::size_t>(c.rank());
    const Tensor t = ring_tensor(x[r]);
    got.sum = c.all_reduce("ar#1", t).to_vector<uint64_t>();
    got.xr = c.all_reduce("ar#2", t, ReduceOp::kXor).to_vector<uint64_t>();
    for (const Tensor& g : c.all_gather("ag#3", t)) {
      got.gathered.push_back(g.to_vector<uint64_t>());
    }
    got.bcast = c.broadcast("bc#4", c.rank() == 2 ? t : Tensor(), 2, {static_cast<int64_t>(kN)},
                            DType::kRing64)
                    .to_vector<uint64_t>();
    c.barrier("barrier#5");
    return got;
  });
  auto got = get_all(results);
  // THEN every party has the plaintext sum / xor / list / root's tensor
  std::vector<uint64_t> sum(kN), xr(kN);
  for (std::size_t i = 0; i < kN; ++i) {
    sum[i] = x[0][i] + x[1][i] + x[2][i];
    xr[i] = x[0][i] ^ x[1][i] ^ x[2][i];
  }
  for (int r = 0; r < 3; ++r) {
    const auto& g = got[static_cast<std::size_t>(r)];
    CHECK(g.sum == sum);
    CHECK(g.xr == xr);
    CHECK(g.gathered == x);
    CHECK(g.bcast == x[2]);
  }
}

namespace {

/// A scripted exchange: point to point with the dealer, collectives, a large message.
void stats_script(Communicator& c) {
  if (c.is_dealer()) {
    for (int p = 0; p < c.world_size(); ++p) {
      c.send_tensor(p, "triple#1", ring_tensor(random_ring(33, 1)));
    }
    (void)c.recv(0, "done#9", 0);
    return;
  }
  (void)c.recv_tensor(c.dealer_rank(), "triple#1", {33}, DType::kRing64);
  const Tensor t = ring_tensor(random_ring(500, 2));
  (void)c.all_reduce("mul#2/open", t);
  (void)c.all_gather("ag#3", t);
  (void)c.broadcast("bc#4", c.rank() == 0 ? t : Tensor(), 0, {500}, DType::kRing64);
  if (c.rank() == 0) {
    c.send(1, "big#5", veil::comm::Bytes(3U << 20U));
  } else if (c.rank() == 1) {
    (void)c.recv(0, "big#5");
  }
  c.barrier("barrier#6");
  if (c.rank() == 0) {
    c.send(c.dealer_rank(), "done#9", {});
  }
}

}  // namespace

TEST_CASE("gRPC: the stats of a scripted exchange equal those of the in-process backend",
          "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  // GIVEN the same script on the in-process backend and over gRPC (3 parties + dealer)
  Cluster cl(3, true);
  auto grpc_results = run_grpc(cl.all_options(), [](Communicator& c) {
    stats_script(c);
    return c.stats();
  });
  auto grpc_stats = get_all(grpc_results);

  veil::comm::InProcessHub hub(3, true);
  std::vector<std::future<CommStats>> local;
  for (int r = 0; r < 4; ++r) {
    local.push_back(std::async(std::launch::async, [&hub, r] {
      hub.communicator(r).set_timeout(milliseconds(3000));
      stats_script(hub.communicator(r));
      return hub.communicator(r).stats();
    }));
  }
  for (auto& f : local) {
    REQUIRE(f.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  }
  // THEN every counter of every endpoint is identical
  for (std::size_t r = 0; r < 4; ++r) {
    const CommStats in_process = local[r].get();
    const CommStats& over_grpc = grpc_stats[r];
    INFO("endpoint " << r);
    CHECK(over_grpc.total == in_process.total);
    CHECK(over_grpc.dealer == in_process.dealer);
    CHECK(over_grpc.by_op == in_process.by_op);
    CHECK(over_grpc.total.bytes_sent + over_grpc.dealer.bytes_sent > 0);
  }
}

TEST_CASE("gRPC: insecure plaintext transport works when both sides opt in", "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  Cluster cl(2, false);
  auto opts = cl.all_options();
  for (auto& o : opts) {
    o.insecure_plaintext = true;
    o.tls.reset();
  }
  auto results = run_grpc(opts, [](Communicator& c) {
    return c.all_reduce("ar#1", ring_tensor({static_cast<uint64_t>(c.rank()) + 1}))
        .item<uint64_t>();
  });
  auto got = get_all(results);
  CHECK(got[0] == 3);
  CHECK(got[1] == 3);
}

// ---- security --------------------------------------------------------------------------------

namespace {

/// Connects every endpoint of `opts`; returns each one's failure (empty when it connected).
std::vector<Failure> connect_failures(const std::vector<GrpcOptions>& opts) {
  std::vector<std::future<Failure>> fs;
  for (const auto& o : opts) {
    fs.push_back(std::async(std::launch::async, [o] {
      return failure_of([&] { (void)veil::comm::connect_grpc(o); });
    }));
  }
  std::vector<Failure> out;
  for (auto& f : fs) {
    REQUIRE(f.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    out.push_back(f.get());
  }
  return out;
}

}  // namespace

TEST_CASE("gRPC TLS: a peer whose certificate comes from another CA is refused", "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  // GIVEN party 1 with a PKI of another CA (same identities)
  Cluster cl(2, false);
  TempDir other;
  veil::comm::generate_test_pki(other.str(), 2, false, "another CA");
  auto opts = cl.all_options();
  for (auto& o : opts) {
    o.connect_timeout = milliseconds(1000);
  }
  opts[1].tls = veil::comm::tls_files_in(other.str(), 1, 2);
  // WHEN both connect
  const auto f = connect_failures(opts);
  // THEN party 1 is refused with a TLS reason naming party 0 and its address; party 0 reports
  // that party 1 never connected
  INFO(f[1].what);
  CHECK_THAT(f[1].what, Contains("party 0 at " + cl.addresses[0]));
  CHECK_THAT(f[1].what, Contains("ertificate") || Contains("andshake"));
  CHECK_THAT(f[0].what, Contains("party 1 did not connect"));
}

TEST_CASE("gRPC TLS: a dialer presenting another party's certificate is refused", "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  // GIVEN 3 parties where party 2 presents party 1's certificate and key
  Cluster cl(3, false);
  auto opts = cl.all_options();
  for (auto& o : opts) {
    o.connect_timeout = milliseconds(1000);
  }
  const auto p1 = veil::comm::tls_files_in(cl.pki.str("tls"), 1, 3);
  opts[2].tls->cert = p1.cert;
  opts[2].tls->key = p1.key;
  const auto f = connect_failures(opts);
  // THEN party 2 is refused because its certificate names veil-party-1
  INFO(f[2].what);
  CHECK_THAT(f[2].what, Contains("refused"));
  CHECK_THAT(f[2].what, Contains("certificate identity 'veil-party-1' does not match the claimed "
                                 "party 2 (expected 'veil-party-2')"));
  CHECK_THAT(f[0].what, Contains("party 2 did not connect"));
}

TEST_CASE("gRPC TLS: a listener presenting another party's certificate is refused",
          "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  // GIVEN party 0 listening with party 1's certificate
  Cluster cl(2, false);
  auto opts = cl.all_options();
  for (auto& o : opts) {
    o.connect_timeout = milliseconds(1000);
  }
  const auto p1 = veil::comm::tls_files_in(cl.pki.str("tls"), 1, 2);
  opts[0].tls->cert = p1.cert;
  opts[0].tls->key = p1.key;
  const auto f = connect_failures(opts);
  // THEN party 1 refuses to talk to it (the certificate does not name veil-party-0)
  INFO(f[1].what);
  CHECK_THAT(f[1].what, Contains("party 0 at " + cl.addresses[0]));
  CHECK_THAT(f[1].what, Contains("refused"));
  CHECK(!f[0].what.empty());
}

TEST_CASE("gRPC TLS: a plaintext dialer is refused by a TLS listener", "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  // GIVEN party 1 speaking plaintext to party 0, which requires TLS
  Cluster cl(2, false);
  auto opts = cl.all_options();
  for (auto& o : opts) {
    o.connect_timeout = milliseconds(1000);
  }
  opts[1].insecure_plaintext = true;
  opts[1].tls.reset();
  const auto f = connect_failures(opts);
  // THEN party 1 fails naming party 0, its address and the plaintext mismatch
  INFO(f[1].what);
  CHECK_THAT(f[1].what, Contains("party 0 at " + cl.addresses[0]));
  CHECK_THAT(f[1].what, Contains("plaintext"));
  CHECK_THAT(f[0].what, Contains("party 1 did not connect"));
}

// ---- failures --------------------------------------------------------------------------------

TEST_CASE("gRPC: connecting to an address where nobody listens fails after connect_timeout",
          "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  // GIVEN party 1 alone: party 0's port is free and nobody listens there
  Cluster cl(2, false);
  auto o = cl.options(1);
  o.connect_timeout = milliseconds(1000);
  const auto f = failure_of([&] { (void)veil::comm::connect_grpc(o); });
  // THEN CommError naming party 0 and its address, after about 1 s
  INFO(f.what);
  CHECK_THAT(f.what,
             Contains("[connect] party 0 at " + cl.addresses[0] + " unreachable after 1000 ms"));
  CHECK(f.elapsed_ms >= 900);
  CHECK(f.elapsed_ms < 2500);
}

TEST_CASE("gRPC: a receive timeout names the peer and the tag", "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  Cluster cl(2, false);
  auto opts = cl.all_options();
  auto results = run_grpc(opts, [](Communicator& c) {
    Failure f;
    if (c.rank() == 0) {
      c.set_timeout(milliseconds(300));
      f = failure_of([&] { (void)c.recv(1, "mul#3"); });
      c.send(1, "done#4", {});
    } else {
      (void)c.recv(0, "done#4", 0);
    }
    return f;
  });
  auto got = get_all(results);
  CHECK(got[0].what == "[recv] no data from party 1 after 300 ms (tag 'mul#3')");
  CHECK(got[0].elapsed_ms >= 250);
}

TEST_CASE("gRPC: abort on one party makes every peer's recv throw with its reason",
          "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  // GIVEN 3 parties and a dealer; party 1 aborts while the others wait for it
  Cluster cl(3, true);
  auto results = run_grpc(cl.all_options(), [](Communicator& c) {
    Failure f;
    if (c.rank() == 1) {
      std::this_thread::sleep_for(milliseconds(50));
      c.abort("out of triples");
      f = failure_of([&] { c.send(0, "x#1", {}); });
    } else {
      f = failure_of([&] { (void)c.recv(1, "x#1"); });
    }
    return f;
  });
  auto got = get_all(results);
  // THEN everyone, the aborting party included, throws "party 1 aborted: out of triples" promptly
  for (const auto& f : got) {
    CHECK(f.what == "party 1 aborted: out of triples");
    CHECK(f.elapsed_ms < 1500);
  }
}

TEST_CASE("gRPC: a party that goes away makes its peers' recvs fail quickly with 'disconnected'",
          "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  // GIVEN party 1 that sends one message and then destroys its communicator without abort
  Cluster cl(2, false);
  auto results = run_grpc(cl.all_options(), [](Communicator& c) {
    Failure f;
    uint64_t first = 0;
    if (c.rank() == 0) {
      c.set_timeout(milliseconds(5000));
      first = c.recv_tensor(1, "x#1", {1}, DType::kRing64).item<uint64_t>();
      f = failure_of([&] { (void)c.recv(1, "x#2"); });
      // and sending to it fails too
      const Failure s = failure_of([&] { c.send(1, "x#3", {}); });
      if (s.what.empty()) {
        f.what += " | send did not fail";
      }
    } else {
      c.send_tensor(0, "x#1", ring_tensor({42}));
    }
    return std::make_pair(first, f);
  });
  auto got = get_all(results);
  // THEN party 0 gets the message sent before, then CommError "party 1 disconnected" well within
  // the 5 s timeout
  CHECK(got[0].first == 42);
  CHECK_THAT(got[0].second.what, Contains("party 1 disconnected"));
  CHECK_THAT(got[0].second.what, !Contains("send did not fail"));
  CHECK(got[0].second.elapsed_ms < 1500);
}

TEST_CASE("gRPC: malformed frames raise ProtocolError on the receiver", "[comm][grpc]") {
  if (!have_grpc()) {
    return;
  }
  const std::array<std::pair<GrpcFault, const char*>, 4> cases = {{
      {GrpcFault::kDuplicateHello, "duplicate HELLO"},
      {GrpcFault::kUnknownFrameType, "unknown frame type 77"},
      {GrpcFault::kChunkOutOfOrder, "chunk 2 of message 'fault#1' out of order (expected chunk 1)"},
      {GrpcFault::kSizeMismatch, "message 'fault#1' ended after 8 of its declared 16 bytes"},
  }};
  for (const auto& [fault, text] : cases) {
    // GIVEN party 1 sends a malformed frame sequence to party 0
    Cluster cl(2, false);
    auto results = run_grpc(cl.all_options(), [fault = fault](Communicator& c) {
      Failure f;
      if (c.rank() == 1) {
        veil::comm::inject_grpc_fault_for_testing(c, 0, fault);
      } else {
        f = failure_of([&] { (void)c.recv(1, "fault#1"); });
      }
      return f;
    });
    auto got = get_all(results);
    // THEN party 0's recv throws ProtocolError saying what was wrong
    INFO(text);
    CHECK(got[0].protocol);
    CHECK_THAT(got[0].what, Contains("protocol error from party 1"));
    CHECK_THAT(got[0].what, Contains(text));
  }
}
