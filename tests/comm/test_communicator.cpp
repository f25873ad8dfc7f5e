// Tests for veil::comm: the Communicator base class (rank/tag/size checks, stats and round
// counting, collectives) over the in-process backend (mailboxes, timeouts, abort).
//
// Every endpoint runs on its own std::thread and returns its result through a future; all
// assertions run on the main thread. run_endpoints() is the watchdog: an endpoint that does not
// finish in time fails the test (after aborting the hub so blocked receivers unwind).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include "comm/communicator.h"
#include "comm/in_process.h"
#include "core/error.h"
#include "core/tensor.h"
#include "tests/harness/watchdog.h"

namespace Catch {
template <>
struct StringMaker<veil::comm::OpStats> {
  static std::string convert(const veil::comm::OpStats& s) {
    std::ostringstream os;
    os << "{rounds " << s.rounds << ", sent " << s.messages_sent << " msgs / " << s.bytes_sent
       << " B, received " << s.messages_received << " msgs / " << s.bytes_received << " B}";
    return os.str();
  }
};
}  // namespace Catch

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::Message;
using veil::CommError;
using veil::ProtocolError;
using veil::ValueError;
using veil::comm::CommStats;
using veil::comm::Communicator;
using veil::comm::InProcessHub;
using veil::comm::OpStats;
using veil::comm::ReduceOp;
using veil::core::DType;
using veil::core::Tensor;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Runs fn(communicator) on one thread per endpoint of `hub` (parties, then the dealer) and returns
// one ready future per endpoint (get() rethrows the endpoint's exception on the main thread).
// Watchdog: when an endpoint is not done after `limit`, the hub is aborted (which unblocks every
// recv), the threads are joined, and the test fails instead of hanging.
template <class Fn>
auto run_endpoints(const std::shared_ptr<InProcessHub>& hub,
                   Fn fn,
                   milliseconds limit = milliseconds(3000)) {
  using R = std::invoke_result_t<Fn&, Communicator&>;
  const int n = hub->world_size() + (hub->with_dealer() ? 1 : 0);
  std::vector<std::future<R>> results;
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    std::packaged_task<R()> task([hub, fn, r]() mutable { return fn(hub->communicator(r)); });
    results.push_back(task.get_future());
    threads.emplace_back(std::move(task));
  }
  veil::testing::join_with_watchdog(results, threads, limit,
                                    [&] { hub->communicator(0).abort("watchdog"); });
  return results;
}

using veil::testing::get_all;

std::vector<uint64_t> random_ring(std::size_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<uint64_t> v(n);
  for (auto& x : v) {
    x = gen();  // full 64-bit values
  }
  return v;
}

Tensor ring_tensor(const std::vector<uint64_t>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

int64_t ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
}

// What an endpoint saw when a call threw: message and time until the throw.
struct Failure {
  std::string what;
  int64_t elapsed_ms = -1;
};

}  // namespace

// ---- point to point
// ------------------------------------------------------------------------------

TEST_CASE("send_tensor and recv_tensor between 2 parties", "[comm]") {
  // GIVEN two parties; party 0 sends a ring64 matrix, a transposed (non-contiguous) view and a
  // float tensor after a short delay (so party 1 is already waiting), party 1 answers with int64.
  auto hub = std::make_shared<InProcessHub>(2, false);
  const std::vector<uint64_t> a = {1, 2, 3, 4, 5, 0xffffffffffffffffULL};
  const std::vector<float> f = {0.5F, -1.25F, 3.0F};
  struct Got {
    std::vector<uint64_t> a, at;
    std::vector<float> f;
    std::vector<int64_t> back;
  };
  auto results = run_endpoints(hub, [&](Communicator& c) {
    Got got;
    if (c.rank() == 0) {
      std::this_thread::sleep_for(milliseconds(20));
      const Tensor m = Tensor::from_vector(a, {2, 3});
      c.send_tensor(1, "x#1", m);
      c.send_tensor(1, "x#2", m.t());
      c.send_tensor(1, "x#3", Tensor::from_vector(f, {3}));
      got.back = c.recv_tensor(1, "y#4", {2}, DType::kInt64).to_vector<int64_t>();
    } else {
      got.a = c.recv_tensor(0, "x#1", {2, 3}, DType::kRing64).to_vector<uint64_t>();
      got.at = c.recv_tensor(0, "x#2", {3, 2}, DType::kRing64).to_vector<uint64_t>();
      got.f = c.recv_tensor(0, "x#3", {3}, DType::kFloat32).to_vector<float>();
      c.send_tensor(1 - c.rank(), "y#4", Tensor::from_vector(std::vector<int64_t>{-7, 9}, {2}));
    }
    return got;
  });
  auto got = get_all(results);
  // THEN the receiver has the values, the transposed view arrives in row-major order
  CHECK(got[1].a == a);
  CHECK(got[1].at == std::vector<uint64_t>{1, 4, 2, 5, 3, 0xffffffffffffffffULL});
  CHECK(got[1].f == f);
  CHECK(got[0].back == std::vector<int64_t>{-7, 9});
}

TEST_CASE("3 parties exchange tensors pairwise, in FIFO order", "[comm]") {
  // GIVEN 3 parties; each sends two tensors to each other party (values encode sender, receiver
  // and sequence number)
  auto hub = std::make_shared<InProcessHub>(3, false);
  auto code = [](int from, int to, int seq) {
    return static_cast<uint64_t>(100 * from + 10 * to + seq);
  };
  auto results = run_endpoints(hub, [&](Communicator& c) {
    const int me = c.rank();
    for (int seq = 0; seq < 2; ++seq) {
      for (int p = 0; p < 3; ++p) {
        if (p != me) {
          c.send_tensor(p, "x#" + std::to_string(seq), ring_tensor({code(me, p, seq)}));
        }
      }
    }
    std::vector<uint64_t> got;  // [from * 2 + seq], own slots 0
    for (int from = 0; from < 3; ++from) {
      for (int seq = 0; seq < 2; ++seq) {
        got.push_back(from == me
                          ? 0
                          : c.recv_tensor(from, "x#" + std::to_string(seq), {1}, DType::kRing64)
                                .item<uint64_t>());
      }
    }
    return got;
  });
  auto got = get_all(results);
  // THEN every party received each peer's messages, in send order
  for (int me = 0; me < 3; ++me) {
    for (int from = 0; from < 3; ++from) {
      for (int seq = 0; seq < 2; ++seq) {
        const uint64_t want = from == me ? 0 : code(from, me, seq);
        CHECK(got[static_cast<std::size_t>(me)][static_cast<std::size_t>(from * 2 + seq)] == want);
      }
    }
  }
}

// ---- collectives
// ---------------------------------------------------------------------------------

TEST_CASE("all_reduce sums mod 2^64 and XORs, bit-identical on every party", "[comm]") {
  const int n_parties = GENERATE(2, 3);
  const auto op = GENERATE(ReduceOp::kSum, ReduceOp::kXor);
  CAPTURE(n_parties, op == ReduceOp::kSum ? "sum" : "xor");
  // GIVEN each party's full 64-bit random vector
  const std::size_t n = 257;
  std::vector<std::vector<uint64_t>> inputs;
  for (int r = 0; r < n_parties; ++r) {
    inputs.push_back(random_ring(n, 1000 + static_cast<uint64_t>(r)));
  }
  // and the reference computed locally (unsigned arithmetic wraps mod 2^64)
  std::vector<uint64_t> want(n, 0);
  std::size_t wrapped = 0;
  for (std::size_t i = 0; i < n; ++i) {
    uint64_t sum = 0;
    bool carry = false;
    for (const auto& in : inputs) {
      want[i] = op == ReduceOp::kSum ? want[i] + in[i] : want[i] ^ in[i];
      sum += in[i];
      carry = carry || sum < in[i];  // the unsigned addition wrapped
    }
    wrapped += carry ? 1 : 0;
  }
  REQUIRE(wrapped > 0);  // the data exercises the wrap-around
  auto hub = std::make_shared<InProcessHub>(n_parties, false);
  // WHEN every party all_reduces its vector, kept (const&) or given up (&&: handed to the
  // in-process peers without a copy), twice in a row
  const bool give_up = GENERATE(false, true);
  CAPTURE(give_up);
  auto results = run_endpoints(hub, [&](Communicator& c) {
    std::vector<uint64_t> first;
    bool aliased = false;
    for (const char* tag : {"mul#1/open", "mul#2/open"}) {
      Tensor x = ring_tensor(inputs[static_cast<std::size_t>(c.rank())]);
      Tensor y;
      if (give_up) {
        REQUIRE(x.sole_owner());
        const uint64_t* storage = x.data<uint64_t>();
        y = c.all_reduce(tag, std::move(x), op);
        aliased = aliased || y.data<uint64_t>() == storage;
      } else {
        y = c.all_reduce(tag, x, op);
        aliased = aliased || x.shares_storage_with(y);
      }
      if (first.empty()) {
        first = y.to_vector<uint64_t>();
      } else {
        CHECK(y.to_vector<uint64_t>() == first);
      }
    }
    return std::make_pair(first, aliased);
  });
  auto got = get_all(results);
  // THEN every party holds the reference, in a fresh tensor
  for (const auto& [values, aliased] : got) {
    CHECK(values == want);
    CHECK_FALSE(aliased);
  }
}

TEST_CASE("all_reduce_with hands every party's part in rank order, at all_reduce's cost",
          "[comm]") {
  const int n_parties = GENERATE(1, 2, 3);
  // a view (not contiguous: sent as a copy) or a fresh tensor (handed over whole in-process)
  const bool view = GENERATE(false, true);
  CAPTURE(n_parties, view);
  const std::size_t n = 129;
  std::vector<std::vector<uint64_t>> inputs;
  for (int r = 0; r < n_parties; ++r) {
    inputs.push_back(random_ring(2 * n, 77 + static_cast<uint64_t>(r)));
  }
  auto hub = std::make_shared<InProcessHub>(n_parties, false);
  auto results = run_endpoints(hub, [&](Communicator& c) {
    const Tensor full = ring_tensor(inputs[static_cast<std::size_t>(c.rank())]);
    Tensor x = view ? full.as_strided({static_cast<int64_t>(n)}, {2})
                    : full.slice(0, 0, static_cast<int64_t>(n)).clone();
    const std::vector<uint64_t> mine = x.to_vector<uint64_t>();
    const auto before = c.stats();
    std::vector<std::vector<uint64_t>> seen;
    c.all_reduce_with("mul#1/open", std::move(x), [&](Communicator::RingParts parts) {
      for (const std::span<const uint64_t> part : parts) {
        seen.emplace_back(part.begin(), part.end());
      }
    });
    const auto with_cost = c.stats() - before;
    const auto mid = c.stats();
    const Tensor again = view ? full.as_strided({static_cast<int64_t>(n)}, {2})
                              : full.slice(0, 0, static_cast<int64_t>(n)).clone();
    (void)c.all_reduce("mul#2/open", again);
    const auto reduce_cost = c.stats() - mid;
    CHECK(with_cost.total.rounds == reduce_cost.total.rounds);
    CHECK(with_cost.total.bytes_sent == reduce_cost.total.bytes_sent);
    CHECK(with_cost.total.bytes_received == reduce_cost.total.bytes_received);
    CHECK(with_cost.total.bytes_sent ==
          static_cast<int64_t>(n_parties - 1) * static_cast<int64_t>(n * sizeof(uint64_t)));
    CHECK(seen[static_cast<std::size_t>(c.rank())] == mine);
    return seen;
  });
  // THEN party r's callback saw, at index q, exactly what party q sent
  for (const auto& seen : get_all(results)) {
    REQUIRE(seen.size() == static_cast<std::size_t>(n_parties));
    for (std::size_t q = 0; q < seen.size(); ++q) {
      for (std::size_t i = 0; i < n; ++i) {
        const uint64_t want = view ? inputs[q][2 * i] : inputs[q][i];
        REQUIRE(seen[q][i] == want);
      }
    }
  }
}

TEST_CASE("all_reduce_with rejects non-ring and undefined tensors", "[comm]") {
  InProcessHub hub(1, false);
  const auto ignore = [](Communicator::RingParts) {
  };
  CHECK_THROWS_AS(
      hub.communicator(0).all_reduce_with("s#1", Tensor::full<float>({2}, 1.0F), ignore),
      ValueError);
  CHECK_THROWS_AS(hub.communicator(0).all_reduce_with("s#1", Tensor(), ignore), ValueError);
}

TEST_CASE("all_reduce rejects non-ring tensors", "[comm]") {
  InProcessHub hub(1, false);
  CHECK_THROWS_AS(hub.communicator(0).all_reduce("s#1", Tensor::full<float>({2}, 1.0F)),
                  ValueError);
  CHECK_THROWS_AS(hub.communicator(0).all_reduce("s#1", Tensor()), ValueError);
}

TEST_CASE("collectives with one party return a copy and communicate nothing", "[comm]") {
  InProcessHub hub(1, false);
  Communicator& c = hub.communicator(0);
  const Tensor x = ring_tensor({5, 6});
  const Tensor y = c.all_reduce("s#1", x);
  CHECK(y.to_vector<uint64_t>() == std::vector<uint64_t>{5, 6});
  CHECK_FALSE(y.shares_storage_with(x));
  CHECK(c.all_gather("g#2", x).size() == 1);
  CHECK(c.broadcast("b#3", x, 0, {2}, DType::kRing64).to_vector<uint64_t>() ==
        std::vector<uint64_t>{5, 6});
  c.barrier("barrier#4");
  CHECK(c.stats().total == OpStats{});
}

TEST_CASE("all_gather returns every party's tensor indexed by rank", "[comm]") {
  // GIVEN 3 parties, each with an int64 [2, 2] tensor encoding its rank
  auto hub = std::make_shared<InProcessHub>(3, false);
  auto input = [](int r) {
    return std::vector<int64_t>{100 * r, 100 * r + 1, 100 * r + 2, -r};
  };
  auto results = run_endpoints(hub, [&](Communicator& c) {
    auto parts = c.all_gather("gather#1", Tensor::from_vector(input(c.rank()), {2, 2}));
    std::vector<std::vector<int64_t>> out;
    for (const auto& p : parts) {
      if (p.shape() != veil::core::Shape{2, 2} || p.dtype() != DType::kInt64) {
        throw std::runtime_error("all_gather returned " + p.str());  // checked by get()
      }
      out.push_back(p.to_vector<int64_t>());
    }
    return std::make_pair(out, c.stats().total);
  });
  auto got = get_all(results);
  // THEN each party's list is [input(0), input(1), input(2)]; cost: 1 round, 2 messages each way
  const OpStats cost{1, 2, 2, 2 * 32, 2 * 32};
  for (const auto& [parts, stats] : got) {
    REQUIRE(parts.size() == 3);
    for (int r = 0; r < 3; ++r) {
      CHECK(parts[static_cast<std::size_t>(r)] == input(r));
    }
    CHECK(stats == cost);
  }
}

TEST_CASE("broadcast delivers root's tensor, only root sends", "[comm]") {
  // GIVEN 3 parties; root 1 holds a float64 [3] tensor, the others pass an undefined tensor
  auto hub = std::make_shared<InProcessHub>(3, false);
  const std::vector<double> v = {3.5, -0.25, 1e300};
  auto results = run_endpoints(hub, [&](Communicator& c) {
    const Tensor t = c.rank() == 1 ? Tensor::from_vector(v, {3}) : Tensor();
    Tensor y = c.broadcast("bcast#1", t, 1, {3}, DType::kFloat64);
    return std::make_pair(y.to_vector<double>(), c.stats().total);
  });
  auto got = get_all(results);
  // THEN everyone has root's values; root sent 2 * 24 bytes, the others received 24
  for (int r = 0; r < 3; ++r) {
    const auto& [values, stats] = got[static_cast<std::size_t>(r)];
    CHECK(values == v);
    if (r == 1) {
      CHECK(stats == OpStats{1, 2, 0, 48, 0});
    } else {
      CHECK(stats == OpStats{1, 0, 1, 0, 24});
    }
  }
}

TEST_CASE("broadcast validates root and root's tensor", "[comm]") {
  InProcessHub hub(2, false);
  Communicator& c = hub.communicator(0);
  CHECK_THROWS_AS(c.broadcast("b#1", Tensor(), 2, {1}, DType::kRing64), ValueError);
  CHECK_THROWS_AS(c.broadcast("b#1", ring_tensor({1, 2}), 0, {3}, DType::kRing64), ValueError);
  CHECK_THROWS_AS(c.broadcast("b#1", ring_tensor({1, 2}), 0, {2}, DType::kInt64), ValueError);
  CHECK(c.stats().total == OpStats{});
}

TEST_CASE("barrier returns only after every party entered it", "[comm]") {
  // GIVEN 3 parties; party 2 enters the barrier late and flags its entry first
  auto hub = std::make_shared<InProcessHub>(3, false);
  std::atomic<bool> late_entered{false};
  auto results = run_endpoints(hub, [&](Communicator& c) {
    if (c.rank() == 2) {
      std::this_thread::sleep_for(milliseconds(50));
      late_entered.store(true);
    }
    c.barrier("barrier#1");
    // THEN nobody leaves before party 2 came in
    return std::make_pair(late_entered.load(), c.stats().total);
  });
  auto got = get_all(results);
  for (const auto& [seen, stats] : got) {
    CHECK(seen);
    CHECK(stats == OpStats{1, 2, 2, 0, 0});
  }
}

TEST_CASE("the dealer cannot call collectives", "[comm]") {
  InProcessHub hub(2, true);
  Communicator& d = hub.communicator(2);
  REQUIRE(d.is_dealer());
  CHECK_THROWS_AS(d.all_reduce("s#1", ring_tensor({1})), ValueError);
  CHECK_THROWS_AS(d.all_gather("g#1", ring_tensor({1})), ValueError);
  CHECK_THROWS_AS(d.broadcast("b#1", ring_tensor({1}), 0, {1}, DType::kRing64), ValueError);
  CHECK_THROWS_AS(d.barrier("barrier#1"), ValueError);
}

// ---- stats
// -----------------------------------------------------------------------------------------

TEST_CASE("tag_op and OpStats arithmetic", "[comm]") {
  CHECK(veil::comm::tag_op("mul#12/open") == "mul");
  CHECK(veil::comm::tag_op("barrier") == "barrier");
  CHECK(veil::comm::tag_op("a2b/step") == "a2b");
  const OpStats a{3, 4, 5, 6, 7};
  const OpStats b{1, 1, 2, 3, 5};
  OpStats s = b;
  s += OpStats{2, 3, 3, 3, 2};
  CHECK(s == a);
  CHECK(a - b == OpStats{2, 3, 3, 3, 2});
  // CommStats difference: per field, and by_op only for ops that changed
  CommStats later;
  later.total = a;
  later.dealer = OpStats{1, 0, 1, 0, 8};
  later.by_op = {{"mul", a}, {"triple", OpStats{1, 0, 1, 0, 8}}};
  CommStats earlier;
  earlier.total = b;
  earlier.by_op = {{"mul", b}, {"gone", OpStats{1, 1, 0, 0, 0}}};
  const CommStats d = later - earlier;
  CHECK(d.total == a - b);
  CHECK(d.dealer == OpStats{1, 0, 1, 0, 8});
  REQUIRE(d.by_op.size() == 3);
  CHECK(d.by_op.at("mul") == a - b);
  CHECK(d.by_op.at("triple") == OpStats{1, 0, 1, 0, 8});
  CHECK(d.by_op.at("gone") == OpStats{-1, -1, 0, 0, 0});
  CHECK((later - later).by_op.empty());
}

TEST_CASE("stats of a scripted session with a dealer", "[comm]") {
  // GIVEN 3 parties and a dealer running:
  //   triple#1      dealer -> every party, one ring64 [n] tensor each
  //   mul#2/open    all_reduce of a ring64 [n] tensor
  //   relu#3        party 0 -> party 1: two messages (16 and 24 bytes)
  //   relu#4        party 1 -> party 0: one message (8 bytes)
  //   barrier#5     barrier
  constexpr int64_t n = 10;
  constexpr int64_t nb = 8 * n;
  auto hub = std::make_shared<InProcessHub>(3, true);
  const std::vector<std::byte> b16(16), b24(24), b8(8);
  auto results = run_endpoints(hub, [&](Communicator& c) {
    if (c.is_dealer()) {
      for (int p = 0; p < 3; ++p) {
        c.send_tensor(p, "triple#1", ring_tensor(random_ring(n, 7)));
      }
      return c.stats();
    }
    const Tensor triple = c.recv_tensor(c.dealer_rank(), "triple#1", {n}, DType::kRing64);
    c.all_reduce("mul#2/open", triple);
    if (c.rank() == 0) {
      c.send(1, "relu#3", b16);
      c.send(1, "relu#3", b24);
      c.recv(1, "relu#4", 8);
    } else if (c.rank() == 1) {
      c.recv(0, "relu#3", 16);
      c.recv(0, "relu#3", 24);
      c.send(0, "relu#4", b8);
    }
    c.barrier("barrier#5");
    return c.stats();
  });
  auto got = get_all(results);

  // THEN dealer traffic is counted in `dealer` (and by_op), never in `total`
  const OpStats triple_recv{1, 0, 1, 0, nb};
  for (int p = 0; p < 3; ++p) {
    CAPTURE(p);
    CHECK(got[static_cast<std::size_t>(p)].dealer == triple_recv);
    CHECK(got[static_cast<std::size_t>(p)].by_op.at("triple") == triple_recv);
    CHECK(got[static_cast<std::size_t>(p)].by_op.at("mul") == OpStats{1, 2, 2, 2 * nb, 2 * nb});
    CHECK(got[static_cast<std::size_t>(p)].by_op.at("barrier") == OpStats{1, 2, 2, 0, 0});
  }
  const CommStats& dealer = got[3];
  CHECK(dealer.total == OpStats{});
  CHECK(dealer.dealer == OpStats{1, 3, 0, 3 * nb, 0});
  REQUIRE(dealer.by_op.size() == 1);
  CHECK(dealer.by_op.at("triple") == dealer.dealer);

  // AND party-to-party traffic has exact rounds / messages / bytes
  // party 0: mul (1 round), relu#3 sends (1), relu#4 recv (1), barrier (1)
  CHECK(got[0].by_op.at("relu") == OpStats{2, 2, 1, 40, 8});
  CHECK(got[0].total == OpStats{4, 2 + 2 + 2, 2 + 1 + 2, 2 * nb + 40, 2 * nb + 8});
  CHECK(got[1].by_op.at("relu") == OpStats{2, 1, 2, 8, 40});
  CHECK(got[1].total == OpStats{4, 2 + 1 + 2, 2 + 2 + 2, 2 * nb + 8, 2 * nb + 40});
  CHECK(got[2].by_op.count("relu") == 0);
  CHECK(got[2].total == OpStats{2, 4, 4, 2 * nb, 2 * nb});
  for (int p = 0; p < 3; ++p) {
    std::vector<std::string> keys;
    for (const auto& [op, s] : got[static_cast<std::size_t>(p)].by_op) {
      keys.push_back(op);
    }
    const std::vector<std::string> want =
        p == 2 ? std::vector<std::string>{"barrier", "mul", "triple"}
               : std::vector<std::string>{"barrier", "mul", "relu", "triple"};
    CHECK(keys == want);
  }
}

TEST_CASE("rounds: a new round whenever the tag changes, snapshot differences", "[comm]") {
  // GIVEN 2 parties; party 0 runs a#1 send, a#1 recv, b#2 send, a#1 send, then (after a snapshot)
  // one all_reduce of 4 elements
  auto hub = std::make_shared<InProcessHub>(2, false);
  const std::vector<std::byte> one(1);
  struct Out {
    CommStats before, after;
    int64_t rounds_after_reset = -1;
  };
  auto results = run_endpoints(hub, [&](Communicator& c) {
    Out out;
    const int peer = 1 - c.rank();
    if (c.rank() == 0) {
      c.send(peer, "a#1", one);
      c.recv(peer, "a#1", 1);
      c.send(peer, "b#2", one);
      c.send(peer, "a#1", one);
    } else {
      c.recv(peer, "a#1", 1);
      c.send(peer, "a#1", one);
      c.recv(peer, "b#2", 1);
      c.recv(peer, "a#1", 1);
    }
    out.before = c.stats();
    c.all_reduce("open#3", ring_tensor({1, 2, 3, 4}));
    out.after = c.stats();
    c.reset_stats();
    c.barrier("open#3");  // same tag as the last call, but a reset starts a new round
    out.rounds_after_reset = c.stats().total.rounds;
    return out;
  });
  auto got = get_all(results);
  // THEN tag a: 2 rounds; party 0 sent 2 and received 1 byte, party 1 the reverse
  CHECK(got[0].before.by_op.at("a") == OpStats{2, 2, 1, 2, 1});
  CHECK(got[1].before.by_op.at("a") == OpStats{2, 1, 2, 1, 2});
  for (const auto& out : got) {
    // AND 3 rounds (a, b, a) for 3 + 1 messages of 1 byte
    CHECK(out.before.total.rounds == 3);
    CHECK(out.before.total.messages_sent + out.before.total.messages_received == 4);
    CHECK(out.before.by_op.at("b").rounds == 1);
    // AND the snapshot difference is exactly the all_reduce's cost
    const CommStats d = out.after - out.before;
    CHECK(d.total == OpStats{1, 1, 1, 32, 32});
    CHECK(d.dealer == OpStats{});
    REQUIRE(d.by_op.size() == 1);
    CHECK(d.by_op.at("open") == d.total);
    CHECK(out.rounds_after_reset == 1);
  }
}

// ---- validation and protocol errors
// ----------------------------------------------------------------

TEST_CASE("send and recv validate ranks and tags", "[comm]") {
  InProcessHub hub(2, true);
  Communicator& c = hub.communicator(0);
  const std::vector<std::byte> data(4);
  CHECK_THROWS_MATCHES(c.send(5, "x#1", data), ValueError,
                       Message("[send] peer 5 out of range: world_size 2 (+ dealer)"));
  CHECK_THROWS_MATCHES(c.recv(-1, "x#1"), ValueError,
                       Message("[recv] peer -1 out of range: world_size 2 (+ dealer)"));
  CHECK_THROWS_WITH(c.send(0, "x#1", data), Contains("itself"));
  CHECK_THROWS_AS(c.recv(0, "x#1"), ValueError);
  CHECK_THROWS_AS(c.send(1, "", data), ValueError);
  CHECK_THROWS_AS(c.set_timeout(milliseconds(0)), ValueError);
  InProcessHub no_dealer(2, false);
  CHECK_THROWS_MATCHES(no_dealer.communicator(1).send(2, "x#1", data), ValueError,
                       Message("[send] peer 2 out of range: world_size 2"));
  CHECK_THROWS_AS(no_dealer.communicator(2), ValueError);
  CHECK_THROWS_AS(InProcessHub(0, false), ValueError);
  // nothing was sent or counted
  CHECK(c.stats().total == OpStats{});
  CHECK(c.stats().by_op.empty());
}

TEST_CASE("recv with the wrong tag throws ProtocolError", "[comm]") {
  // GIVEN party 0 sends under 'relu#4' while party 1 expects 'mul#3'
  auto hub = std::make_shared<InProcessHub>(2, false);
  auto results = run_endpoints(hub, [&](Communicator& c) {
    if (c.rank() == 0) {
      c.send(1, "relu#4", std::vector<std::byte>(8));
    } else {
      c.recv(0, "mul#3");
    }
  });
  results[0].get();
  // THEN party 1 gets a ProtocolError naming both tags and the peer
  CHECK_THROWS_MATCHES(results[1].get(), ProtocolError,
                       Message("[recv] expected tag 'mul#3' from party 0, got 'relu#4'"));
  CHECK(hub->communicator(1).stats().total.messages_received == 0);
}

TEST_CASE("recv of the wrong size throws ProtocolError", "[comm]") {
  // GIVEN party 0 sends 2 ring elements while party 1 expects a [3] ring64 tensor
  auto hub = std::make_shared<InProcessHub>(2, false);
  auto results = run_endpoints(hub, [&](Communicator& c) {
    if (c.rank() == 0) {
      c.send_tensor(1, "mul#3", ring_tensor({1, 2}));
    } else {
      c.recv_tensor(0, "mul#3", {3}, DType::kRing64);
    }
  });
  results[0].get();
  // THEN the error names the tag and both byte counts
  CHECK_THROWS_MATCHES(results[1].get(), ProtocolError,
                       Message("[recv] expected 24 bytes under tag 'mul#3' from party 0, got 16"));
}

// ---- timeout and abort
// -----------------------------------------------------------------------------

TEST_CASE("recv times out with CommError naming peer, timeout and tag", "[comm]") {
  // GIVEN one party and a dealer that never send; both wait 100 ms for each other
  auto hub = std::make_shared<InProcessHub>(1, true);
  auto results = run_endpoints(hub, [&](Communicator& c) {
    c.set_timeout(milliseconds(100));
    Failure f;
    const auto t0 = Clock::now();
    try {
      c.recv(c.is_dealer() ? 0 : c.dealer_rank(), "mul#3");
    } catch (const CommError& e) {
      f = {e.what(), ms_since(t0)};
    }
    return f;
  });
  auto got = get_all(results);
  // THEN both time out after about 100 ms (well under 2 s)
  CHECK(got[0].what == "[recv] no data from the dealer after 100 ms (tag 'mul#3')");
  CHECK(got[1].what == "[recv] no data from party 0 after 100 ms (tag 'mul#3')");
  for (const auto& f : got) {
    CHECK(f.elapsed_ms >= 100);
    CHECK(f.elapsed_ms < 2000);
  }
}

TEST_CASE("abort mid-protocol unblocks every peer with CommError", "[comm]") {
  // GIVEN 3 parties with a 10 s timeout; after one all_reduce party 0 fails, aborts and never
  // sends its part of the second all_reduce, on which parties 1 and 2 are blocked
  auto hub = std::make_shared<InProcessHub>(3, false);
  struct Out {
    Failure failure;
    std::string after_abort;  // what a later send on this endpoint throws
  };
  auto results = run_endpoints(hub, [&](Communicator& c) {
    c.set_timeout(milliseconds(10000));
    Out out;
    c.all_reduce("mul#1/open", ring_tensor({1, 2}));
    const auto t0 = Clock::now();
    try {
      if (c.rank() == 0) {
        std::this_thread::sleep_for(milliseconds(30));  // let the peers block in recv
        throw std::runtime_error("boom");
      }
      c.all_reduce("mul#2/open", ring_tensor({3, 4}));
    } catch (const std::exception& e) {
      out.failure = {e.what(), ms_since(t0)};
      c.abort(c.rank() == 0 ? e.what() : "secondary failure");  // only the first reason counts
    }
    try {
      c.send((c.rank() + 1) % 3, "later#3", std::vector<std::byte>(1));
    } catch (const CommError& e) {
      out.after_abort = e.what();
    }
    return out;
  });
  auto got = get_all(results);
  // THEN parties 1 and 2 get CommError("party 0 aborted: boom") long before their timeout
  CHECK(got[0].failure.what == "boom");
  for (int p = 1; p < 3; ++p) {
    CAPTURE(p);
    CHECK(got[static_cast<std::size_t>(p)].failure.what == "party 0 aborted: boom");
    CHECK(got[static_cast<std::size_t>(p)].failure.elapsed_ms < 2000);
  }
  // AND every endpoint, the aborting one included, keeps throwing with the first reason
  for (const auto& out : got) {
    CHECK(out.after_abort == "party 0 aborted: boom");
  }
}

TEST_CASE("abort fails queued messages too, is idempotent and names the dealer", "[comm]") {
  // GIVEN a message waiting in party 1's mailbox when party 0 aborts (single-threaded sequence)
  InProcessHub hub(2, true);
  Communicator& p0 = hub.communicator(0);
  Communicator& p1 = hub.communicator(1);
  const std::string reason = "stop";
  STATIC_REQUIRE(noexcept(p0.abort(reason)));
  p0.send(1, "x#1", std::vector<std::byte>(4));
  p0.abort(reason);
  p0.abort("again");
  hub.communicator(2).abort("dealer too");
  // THEN the pending recv fails, and so do new sends on any endpoint, with the first reason
  CHECK_THROWS_MATCHES(p1.recv(0, "x#1"), CommError, Message("party 0 aborted: stop"));
  CHECK_THROWS_MATCHES(hub.communicator(2).send(0, "y#2", std::vector<std::byte>(1)), CommError,
                       Message("party 0 aborted: stop"));

  // GIVEN a fresh hub where the dealer aborts
  InProcessHub hub2(1, true);
  hub2.communicator(1).abort("out of triples");
  CHECK_THROWS_MATCHES(hub2.communicator(0).recv(1, "triple#1"), CommError,
                       Message("the dealer aborted: out of triples"));
}
