// In-process backend: one FIFO mailbox per ordered pair of endpoints (from, to), each guarded by
// its own mutex and condition variable. send copies the payload into the receiver's mailbox once
// and never blocks on the receiver; recv waits on its mailbox until a message arrives, the timeout
// passes, or the hub is aborted, and moves the payload out. abort marks the hub failed and wakes
// every mailbox's waiter.

#include "comm/in_process.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <utility>

#include "core/error.h"

namespace veil::comm {

struct InProcessHub::State {
  struct Envelope {
    std::string tag;
    Bytes payload;
    core::Tensor tensor;  // instead of payload: a host tensor handed over whole
  };
  struct Mailbox {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<Envelope> queue;  // guarded by mutex
  };

  State(int world_size_in, bool with_dealer_in, bool device_handover_in)
      : world_size(world_size_in),
        with_dealer(with_dealer_in),
        device_handover(device_handover_in),
        endpoints(world_size_in + (with_dealer_in ? 1 : 0)) {}

  Mailbox& mailbox(int from, int to) {
    return *mailboxes[static_cast<std::size_t>(from) * static_cast<std::size_t>(endpoints) +
                      static_cast<std::size_t>(to)];
  }

  /// Marks the hub failed by `rank` (first call wins) and wakes every waiter.
  void abort(int rank, const std::string& reason) noexcept;

  /// Throws CommError("party <rank> aborted: <reason>"). Only after `aborted` was seen true.
  [[noreturn]] void throw_aborted();

  const int world_size;
  const bool with_dealer;
  const bool device_handover;
  const int endpoints;
  std::vector<std::unique_ptr<Mailbox>> mailboxes;   // [from * endpoints + to]
  std::vector<std::unique_ptr<Communicator>> comms;  // [rank]
  std::atomic<bool> aborted{false};                  // set once, under abort_mutex
  std::mutex abort_mutex;
  int abort_rank = -1;       // guarded by abort_mutex
  std::string abort_reason;  // guarded by abort_mutex
};

void InProcessHub::State::abort(int rank, const std::string& reason) noexcept {
  {
    // std::mutex::lock may throw std::system_error in theory; abort must not throw.
    try {
      std::lock_guard<std::mutex> lock(abort_mutex);
      if (aborted.load(std::memory_order_relaxed)) {
        return;  // the first abort's reason wins
      }
      abort_rank = rank;
      try {
        abort_reason = reason;
      } catch (...) {
        abort_reason.clear();  // out of memory: keep the rank, lose the reason
      }
      aborted.store(true, std::memory_order_release);
    } catch (...) {
      aborted.store(true, std::memory_order_release);
    }
  }
  // Taking each mailbox's mutex before notifying closes the window between a waiter's predicate
  // check and its wait, so no waiter misses the wake-up.
  for (auto& mb : mailboxes) {
    try {
      std::lock_guard<std::mutex> lock(mb->mutex);
    } catch (...) {
      // notify anyway; the waiter's timeout bounds any missed wake-up
    }
    mb->ready.notify_all();
  }
}

void InProcessHub::State::throw_aborted() {
  int rank = -1;
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(abort_mutex);
    rank = abort_rank;
    reason = abort_reason;
  }
  if (with_dealer && rank == world_size) {
    throw CommError(fmt::format("the dealer aborted: {}", reason));
  }
  throw CommError(fmt::format("party {} aborted: {}", rank, reason));
}

namespace {

class InProcessCommunicator final : public Communicator {
  using Envelope = InProcessHub::State::Envelope;
  using Mailbox = InProcessHub::State::Mailbox;

 public:
  InProcessCommunicator(int rank, InProcessHub::State& state)
      : Communicator(rank, state.world_size, state.with_dealer), state_(state) {}

 protected:
  void send_bytes(int to, std::string_view tag, std::span<const std::byte> data) override {
    if (state_.aborted.load(std::memory_order_acquire)) {
      state_.throw_aborted();
    }
    // The one copy of the payload, made outside the lock.
    post(to, Envelope{std::string(tag), Bytes(data.begin(), data.end()), {}});
  }

  // Tensors travel whole, host and device ones alike: the base made the receiver's own copy, so
  // recv_tensor copies nothing (a device tensor stays on its GPU: parties sharing one GPU as
  // threads exchange shares without a round trip through host memory).
  bool accepts_host_tensors() const override { return true; }
  bool accepts_device_tensors() const override { return state_.device_handover; }
  void send_whole_tensor(int to, std::string_view tag, core::Tensor t) override {
    if (state_.aborted.load(std::memory_order_acquire)) {
      state_.throw_aborted();
    }
    post(to, Envelope{std::string(tag), {}, std::move(t)});
  }

  void post(int to, Envelope e) {
    Mailbox& mb = state_.mailbox(rank(), to);
    {
      std::lock_guard<std::mutex> lock(mb.mutex);
      if (state_.aborted.load(std::memory_order_acquire)) {
        state_.throw_aborted();
      }
      mb.queue.push_back(std::move(e));
    }
    mb.ready.notify_one();
  }

  Message recv_bytes(int from,
                     std::string_view expected_tag,
                     std::chrono::milliseconds timeout) override {
    Mailbox& mb = state_.mailbox(from, rank());
    std::unique_lock<std::mutex> lock(mb.mutex);
    const bool arrived = mb.ready.wait_for(lock, timeout, [&] {
      return state_.aborted.load(std::memory_order_acquire) || !mb.queue.empty();
    });
    if (state_.aborted.load(std::memory_order_acquire)) {
      lock.unlock();
      state_.throw_aborted();
    }
    if (!arrived) {
      throw CommError(fmt::format("[recv] no data from {} after {} ms (tag '{}')", peer_name(from),
                                  timeout.count(), expected_tag));
    }
    Envelope e = std::move(mb.queue.front());
    mb.queue.pop_front();
    return Message{std::move(e.tag), std::move(e.payload), std::move(e.tensor)};
  }

  void abort_impl(const std::string& reason) noexcept override { state_.abort(rank(), reason); }

 private:
  InProcessHub::State& state_;
};

}  // namespace

InProcessHub::InProcessHub(int world_size, bool with_dealer, bool device_handover) {
  VEIL_CHECK(world_size >= 1, "[InProcessHub] expected world_size >= 1, got {}", world_size);
  state_ = std::make_shared<State>(world_size, with_dealer, device_handover);
  const auto n = static_cast<std::size_t>(state_->endpoints);
  state_->mailboxes.reserve(n * n);
  for (std::size_t i = 0; i < n * n; ++i) {
    state_->mailboxes.push_back(std::make_unique<State::Mailbox>());
  }
  // Created eagerly so that communicator() is a plain lookup, safe from any thread.
  state_->comms.reserve(n);
  for (int r = 0; r < state_->endpoints; ++r) {
    state_->comms.push_back(std::make_unique<InProcessCommunicator>(r, *state_));
  }
}

InProcessHub::~InProcessHub() = default;

int InProcessHub::world_size() const {
  return state_->world_size;
}

bool InProcessHub::with_dealer() const {
  return state_->with_dealer;
}

Communicator& InProcessHub::communicator(int rank) {
  VEIL_CHECK(rank >= 0 && rank < state_->endpoints,
             "[InProcessHub::communicator] rank {} out of range: world_size {}{}", rank,
             state_->world_size, state_->with_dealer ? " (+ dealer)" : "");
  return *state_->comms[static_cast<std::size_t>(rank)];
}

}  // namespace veil::comm
