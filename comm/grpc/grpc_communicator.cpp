// gRPC transport (see grpc_communicator.h and veil.proto).
//
// Threads and ownership. gRPC's callback API runs every stream's reactions (OnReadDone,
// OnWriteDone, OnDone) on gRPC's own threads; there is no thread per stream of ours. Each stream
// is a Link: a ClientLink (this endpoint dialed a lower rank) or a ServerLink (a higher rank dialed
// this endpoint). A Link keeps one read outstanding at all times; each completed read is one
// frame, parsed and appended to the message being reassembled, and complete messages go to the
// peer's Mailbox (FIFO, mutex + condition variable), where recv_bytes waits with its timeout as in
// the in-process backend. send_bytes copies the payload once into a gRPC slice, cuts it into
// frames (chunks are sub-slices, not copies) and queues them on the Link; the Link writes one frame
// at a time (the callback API allows one outstanding write), so send never blocks on the receiver.
//
// Every Link is owned by the Session and freed only after gRPC has called its OnDone, so no
// reaction ever touches freed memory. gRPC operations are never started while a Link's mutex is
// held: gRPC may run reactions inline at the end of an operation call, and they take that mutex.
//
// Closing. A Link ends its write side once (ClientLink: WritesDone and release of the hold that
// keeps the call alive; ServerLink: Finish) when no write is in flight and (a) it was asked to
// close and its queue is drained, or (b) its read side ended, or (c) a write failed. The
// destructor sends BYE on every stream (after the queued messages), waits a bounded time for the
// streams to finish, then cancels what is left and shuts the server down.

#include "comm/grpc/grpc_communicator.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/client_callback.h>
#include <grpcpp/support/server_callback.h>
#include <openssl/crypto.h>

#include "comm/grpc/frame.h"
#include "comm/grpc/veil.grpc.pb.h"
#include "core/error.h"
#include "core/log.h"

namespace veil::comm {

namespace grpc_transport {

namespace {

using grpc::ByteBuffer;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kExchangeMethod = "/veil.comm.wire.Veil/Exchange";
/// Sanity bound on a message's declared size (a malformed header must not make us reserve TiBs).
constexpr uint64_t kMaxMessageBytes = uint64_t{1} << 40U;
/// At most this much is reserved up front for an incoming message; the buffer grows beyond.
constexpr uint64_t kMaxReserveBytes = uint64_t{1} << 30U;
/// Payloads up to this size travel in one slice together with their header (one allocation).
constexpr std::size_t kSmallMessageBytes = std::size_t{64} << 10U;
/// gRPC message size limit: the largest chunk (4 MiB) plus header room.
constexpr int kMaxGrpcMessageBytes = 8 << 20;
constexpr std::size_t kMinChunkBytes = std::size_t{4} << 10U;
constexpr std::size_t kMaxChunkBytes = std::size_t{4} << 20U;

/// A received message: its bytes in `tensor` (a ring64 tensor the receiver adopts without a
/// copy) when they are a whole number of words, else in `payload`.
struct Envelope {
  std::string tag;
  Bytes payload;
  core::Tensor tensor;
};

/// Messages of at least this many bytes (and a multiple of 8) are received into a ring64 tensor.
constexpr uint64_t kTensorMessageBytes = 4096;

enum class Closed : uint8_t { kOpen, kBye, kLost, kProtocol };

/// Complete messages from one peer, in arrival order.
struct Mailbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Envelope> queue;     // guarded by mu
  Closed closed = Closed::kOpen;  // guarded by mu; the first close wins
  std::string reason;             // guarded by mu
};

class Link;

/// State shared by the communicator and the reactions of its streams.
class Session {
 public:
  Session(int rank_in,
          int world_size_in,
          bool has_dealer_in,
          std::vector<std::string> addrs,
          bool tls_in)
      : rank(rank_in),
        world_size(world_size_in),
        has_dealer(has_dealer_in),
        endpoints(world_size_in + (has_dealer_in ? 1 : 0)),
        tls(tls_in),
        addresses(std::move(addrs)),
        links_(static_cast<std::size_t>(endpoints), nullptr) {
    for (int r = 0; r < endpoints; ++r) {
      mailboxes_.push_back(std::make_unique<Mailbox>());
    }
  }

  const int rank;
  const int world_size;
  const bool has_dealer;
  const int endpoints;
  const bool tls;
  const std::vector<std::string> addresses;

  /// "party 1" or "the dealer".
  std::string name(int r) const {
    if (has_dealer && r == world_size) {
      return "the dealer";
    }
    return fmt::format("party {}", r);
  }

  Mailbox& mailbox(int r) { return *mailboxes_[static_cast<std::size_t>(r)]; }

  void deliver(int from, Envelope e) {
    Mailbox& mb = mailbox(from);
    {
      std::lock_guard<std::mutex> lock(mb.mu);
      mb.queue.push_back(std::move(e));
    }
    mb.cv.notify_all();
  }

  /// Marks the stream from `from` closed (no more messages will come); the first close wins.
  void close_mailbox(int from, Closed kind, const std::string& reason) noexcept {
    if (from < 0 || from >= endpoints) {
      return;
    }
    Mailbox& mb = mailbox(from);
    try {
      std::lock_guard<std::mutex> lock(mb.mu);
      if (mb.closed == Closed::kOpen) {
        mb.closed = kind;
        mb.reason = reason;
      }
    } catch (...) {
      // out of memory for the reason string: the waiter's timeout still bounds its wait
    }
    mb.cv.notify_all();
  }

  /// Records that endpoint `by` aborted (the first abort wins) and wakes every waiting recv.
  /// Returns whether this call set the state.
  bool mark_aborted(int by, const std::string& reason) noexcept {
    bool first = false;
    try {
      std::lock_guard<std::mutex> lock(abort_mu_);
      if (!aborted_.load(std::memory_order_relaxed)) {
        abort_rank_ = by;
        try {
          abort_reason_ = reason;
        } catch (...) {
          abort_reason_.clear();
        }
        aborted_.store(true, std::memory_order_release);
        first = true;
      }
    } catch (...) {
      aborted_.store(true, std::memory_order_release);
    }
    for (auto& mb : mailboxes_) {
      try {
        std::lock_guard<std::mutex> lock(mb->mu);
      } catch (...) {
      }
      mb->cv.notify_all();
    }
    return first;
  }

  bool aborted() const { return aborted_.load(std::memory_order_acquire); }

  [[noreturn]] void throw_aborted() {
    int by = -1;
    std::string reason;
    {
      std::lock_guard<std::mutex> lock(abort_mu_);
      by = abort_rank_;
      reason = abort_reason_;
    }
    throw CommError(fmt::format("{} aborted: {}", name(by), reason));
  }

  // ---- links -------------------------------------------------------------------------------

  /// Takes ownership of a link (freed after its OnDone, by reap() or the destructor).
  Link* adopt(std::unique_ptr<Link> link) {
    std::lock_guard<std::mutex> lock(links_mu_);
    owned_.push_back(std::move(link));
    return owned_.back().get();
  }

  /// Registers an accepted incoming stream from `peer`. False (with `why`) for a duplicate or
  /// while closing.
  bool register_incoming(int peer, Link* link, std::string& why) {
    {
      std::lock_guard<std::mutex> lock(links_mu_);
      if (closing_) {
        why = fmt::format("{} is shutting down", name(rank));
        return false;
      }
      if (links_[static_cast<std::size_t>(peer)] != nullptr) {
        why = fmt::format("{} is already connected to {}", name(peer), name(rank));
        return false;
      }
      links_[static_cast<std::size_t>(peer)] = link;
    }
    links_cv_.notify_all();
    return true;
  }

  /// Registers an established outgoing stream to `peer`.
  void set_link(int peer, Link* link) {
    {
      std::lock_guard<std::mutex> lock(links_mu_);
      links_[static_cast<std::size_t>(peer)] = link;
    }
    links_cv_.notify_all();
  }

  /// The established link to `peer`, or nullptr.
  Link* link(int peer) {
    std::lock_guard<std::mutex> lock(links_mu_);
    return links_[static_cast<std::size_t>(peer)];
  }

  std::vector<Link*> established() {
    std::lock_guard<std::mutex> lock(links_mu_);
    std::vector<Link*> out;
    for (Link* l : links_) {
      if (l != nullptr) {
        out.push_back(l);
      }
    }
    return out;
  }

  std::vector<Link*> all_links() {
    std::lock_guard<std::mutex> lock(links_mu_);
    std::vector<Link*> out;
    for (auto& l : owned_) {
      out.push_back(l.get());
    }
    return out;
  }

  /// Waits until every endpoint in `ranks` has an established link; returns the missing ones.
  std::vector<int> wait_links(const std::vector<int>& ranks, Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(links_mu_);
    auto missing = [&] {
      std::vector<int> m;
      for (int r : ranks) {
        if (links_[static_cast<std::size_t>(r)] == nullptr) {
          m.push_back(r);
        }
      }
      return m;
    };
    links_cv_.wait_until(lock, deadline, [&] { return missing().empty(); });
    return missing();
  }

  void note_refusal(const std::string& why) {
    std::lock_guard<std::mutex> lock(links_mu_);
    last_refusal_ = why;
  }
  std::string last_refusal() {
    std::lock_guard<std::mutex> lock(links_mu_);
    return last_refusal_;
  }

  void begin_closing() {
    std::lock_guard<std::mutex> lock(links_mu_);
    closing_ = true;
  }
  bool closing() {
    std::lock_guard<std::mutex> lock(links_mu_);
    return closing_;
  }

  /// Frees links whose OnDone has run and that are not established.
  void reap();

 private:
  std::vector<std::unique_ptr<Mailbox>> mailboxes_;

  std::mutex abort_mu_;
  std::atomic<bool> aborted_{false};
  int abort_rank_ = -1;       // guarded by abort_mu_
  std::string abort_reason_;  // guarded by abort_mu_

  std::mutex links_mu_;
  std::condition_variable links_cv_;
  std::vector<Link*> links_;                  // [rank] established; guarded by links_mu_
  std::vector<std::unique_ptr<Link>> owned_;  // every link ever created; guarded by links_mu_
  std::string last_refusal_;                  // guarded by links_mu_
  bool closing_ = false;                      // guarded by links_mu_
};

wire::Header hello_header(const Session& s) {
  wire::Header h;
  h.set_type(wire::HELLO);
  h.set_rank(s.rank);
  h.set_world_size(s.world_size);
  h.set_has_dealer(s.has_dealer);
  return h;
}

ByteBuffer control_frame(wire::FrameType type, const std::string& reason = {}) {
  wire::Header h;
  h.set_type(type);
  if (!reason.empty()) {
    h.set_reason(reason);
  }
  return make_frame(h);
}

// ---- Link --------------------------------------------------------------------------------------

/// One bidirectional stream to one peer (the transport-independent half of a reactor).
class Link {
 public:
  Link(Session& session, int peer) : session_(session), peer_(peer) {}
  virtual ~Link() = default;
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  /// The peer's rank (-1 for an incoming stream before its HELLO was accepted).
  int peer() const { return peer_; }

  /// Queues `frames` (all of them, contiguously) and starts writing when idle. Throws CommError
  /// when the stream's write side has ended or is closing.
  void send(std::vector<ByteBuffer> frames) {
    std::unique_lock<std::mutex> lock(mu_);
    if (ended_ || closing_) {
      const std::string why =
          end_reason_.empty() ? std::string("the stream is closed") : end_reason_;
      lock.unlock();
      if (session_.aborted()) {
        session_.throw_aborted();
      }
      throw CommError(fmt::format("[send] {} disconnected: {}", session_.name(peer_), why));
    }
    for (auto& f : frames) {
      queue_.push_back(std::move(f));
    }
    pump(lock);
  }

  /// Queues `last` after the queued frames (or instead of them when drop_queued), then ends the
  /// write side. No-op when already closing or ended. Never throws.
  void close(ByteBuffer last, bool drop_queued) noexcept {
    try {
      std::unique_lock<std::mutex> lock(mu_);
      if (ended_ || closing_) {
        return;
      }
      if (drop_queued) {
        queue_.clear();
      }
      queue_.push_back(std::move(last));
      closing_ = true;
      if (end_reason_.empty()) {
        end_reason_ = "this endpoint closed the stream";
      }
      pump(lock);
    } catch (...) {
      cancel();
    }
  }

  /// Tears the stream down without waiting for queued frames. Never throws.
  virtual void cancel() noexcept = 0;

  /// Waits until gRPC has called OnDone (the reactor is then never touched by gRPC again).
  bool wait_done(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, deadline, [&] { return done_; });
  }
  bool done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }

 protected:
  virtual void start_read(ByteBuffer* buffer) = 0;
  virtual void start_write(const ByteBuffer* buffer) = 0;
  /// Ends the write side (called once, with no write in flight, without mu_ held).
  virtual void end_writes() = 0;
  /// Called when this side stops reading because of an error (without mu_ held).
  virtual void abandon() {}
  /// Handles the first frame of the stream; returns whether to keep reading.
  virtual bool handle_first(const wire::Header& header) = 0;

  /// Starts the next write, or ends the write side, as the state requires. Unlocks `lock`.
  void pump(std::unique_lock<std::mutex>& lock) {
    if (writing_ || ended_) {
      return;
    }
    if (!queue_.empty() && read_open_ && !write_failed_) {
      writing_ = true;
      in_flight_ = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      start_write(&in_flight_);
      return;
    }
    if ((closing_ && queue_.empty()) || !read_open_ || write_failed_) {
      ended_ = true;
      queue_.clear();
      lock.unlock();
      end_writes();
    }
  }

  void react_write(bool ok) {
    std::unique_lock<std::mutex> lock(mu_);
    writing_ = false;
    in_flight_.Clear();
    if (!ok) {
      write_failed_ = true;
      if (end_reason_.empty()) {
        end_reason_ = "the connection was lost";
      }
    }
    pump(lock);
  }

  void react_read(bool ok) {
    if (!ok) {
      read_ended();
      return;
    }
    bool keep = false;
    try {
      DecodedFrame f;
      std::string error;
      if (!decode_frame(read_buf_, f, error)) {
        keep = protocol_error(fmt::format("malformed frame ({})", error));
      } else if (!handshaken_) {
        keep = handle_first(f.header);
      } else {
        keep = handle_frame(f);
      }
    } catch (const std::exception& e) {
      keep = protocol_error(fmt::format("cannot process a frame: {}", e.what()));
    }
    if (keep) {
      start_read(&read_buf_);
      return;
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      read_open_ = false;
      pump(lock);
    }
    abandon();
  }

  /// The read side ended (peer closed, connection lost, or cancelled).
  void read_ended() {
    on_read_ended();
    std::unique_lock<std::mutex> lock(mu_);
    read_open_ = false;
    if (end_reason_.empty()) {
      end_reason_ = "the connection was closed";
    }
    pump(lock);
  }
  virtual void on_read_ended() {}

  /// Marks OnDone; must be the reactor's last action.
  void react_done() {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();  // under the lock: a waiter may free this link as soon as it sees done_
  }

  /// A protocol violation by the peer: later recvs from it throw ProtocolError. Returns false
  /// (stop reading).
  bool protocol_error(const std::string& what) {
    const std::string msg =
        fmt::format("[recv] protocol error from {}: {}", session_.name(peer_), what);
    session_.close_mailbox(peer_, Closed::kProtocol, msg);
    std::lock_guard<std::mutex> lock(mu_);
    if (end_reason_.empty()) {
      end_reason_ = "protocol error";
    }
    return false;
  }

  /// Handles a frame after the handshake; returns whether to keep reading.
  bool handle_frame(const DecodedFrame& f) {
    const wire::Header& h = f.header;
    switch (h.type()) {
      case wire::DATA:
        return handle_data(f);
      case wire::ABORT:
        session_.mark_aborted(peer_, h.reason());
        return true;
      case wire::BYE:
        if (partial_) {
          return protocol_error(fmt::format("BYE in the middle of message '{}' ({} of {} bytes)",
                                            partial_->tag, partial_filled_, partial_total_));
        }
        got_bye_ = true;
        session_.close_mailbox(peer_, Closed::kBye, "it closed its communicator");
        return true;
      case wire::HELLO:
        return protocol_error("duplicate HELLO frame");
      default:
        return protocol_error(fmt::format("unknown frame type {}", static_cast<int>(h.type())));
    }
  }

  bool handle_data(const DecodedFrame& f) {
    const wire::Header& h = f.header;
    if (got_bye_) {
      return protocol_error("DATA frame after BYE");
    }
    if (!partial_) {
      if (h.tag().empty()) {
        return protocol_error("DATA frame without a tag");
      }
      if (h.chunk_index() != 0) {
        return protocol_error(fmt::format("message '{}' starts with chunk {} (expected chunk 0)",
                                          h.tag(), h.chunk_index()));
      }
      if (h.total_size() > kMaxMessageBytes) {
        return protocol_error(fmt::format("message '{}' declares {} bytes (limit {})", h.tag(),
                                          h.total_size(), kMaxMessageBytes));
      }
      partial_.emplace();
      partial_->tag = h.tag();
      const uint64_t total = h.total_size();
      if (total >= kTensorMessageBytes && total % 8 == 0 && total <= kMaxReserveBytes) {
        partial_->tensor =
            core::Tensor::empty({static_cast<int64_t>(total / 8)}, core::DType::kRing64);
      } else {
        partial_->payload.reserve(static_cast<std::size_t>(std::min(total, kMaxReserveBytes)));
      }
      partial_total_ = total;
      partial_filled_ = 0;
      next_chunk_ = 0;
    } else if (h.tag() != partial_->tag || h.total_size() != partial_total_) {
      return protocol_error(
          fmt::format("chunk {} carries tag '{}' and size {} inside message '{}' of {} bytes",
                      h.chunk_index(), h.tag(), h.total_size(), partial_->tag, partial_total_));
    }
    if (h.chunk_index() != next_chunk_) {
      return protocol_error(fmt::format("chunk {} of message '{}' out of order (expected chunk {})",
                                        h.chunk_index(), partial_->tag, next_chunk_));
    }
    if (f.data_size > partial_total_ - partial_filled_) {
      return protocol_error(fmt::format("message '{}' exceeds its declared size of {} bytes",
                                        partial_->tag, partial_total_));
    }
    if (partial_->tensor.defined()) {
      f.copy_data_to(partial_->tensor.mutable_bytes().data() + partial_filled_);
    } else {
      f.append_data_to(partial_->payload);
    }
    partial_filled_ += f.data_size;
    ++next_chunk_;
    const bool complete = partial_filled_ == partial_total_;
    if (h.last() != complete) {
      return protocol_error(
          h.last() ? fmt::format("message '{}' ended after {} of its declared {} bytes",
                                 partial_->tag, partial_filled_, partial_total_)
                   : fmt::format("message '{}' continues past its declared {} bytes", partial_->tag,
                                 partial_total_));
    }
    if (complete) {
      session_.deliver(peer_, std::move(*partial_));
      partial_.reset();
    }
    return true;
  }

  Session& session_;
  int peer_;
  ByteBuffer read_buf_;      // the outstanding read's target (reactions only)
  bool handshaken_ = false;  // reactions only (and the constructor)
  bool got_bye_ = false;     // reactions only

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ByteBuffer> queue_;  // frames not yet handed to gRPC
  ByteBuffer in_flight_;          // the frame being written (valid until OnWriteDone)
  bool writing_ = false;
  bool closing_ = false;   // close() was called: end after the queue drains
  bool ended_ = false;     // end_writes() was (or is being) called
  bool read_open_ = true;  // the read side has not ended
  bool write_failed_ = false;
  bool done_ = false;       // OnDone ran
  std::string end_reason_;  // why sends fail after the end

 private:
  std::optional<Envelope> partial_;  // message being reassembled (reactions only)
  uint64_t partial_total_ = 0;
  uint64_t partial_filled_ = 0;  // bytes of partial_ received so far
  uint32_t next_chunk_ = 0;
};

void Session::reap() {
  std::vector<std::unique_ptr<Link>> dead;
  {
    std::lock_guard<std::mutex> lock(links_mu_);
    for (auto it = owned_.begin(); it != owned_.end();) {
      Link* l = it->get();
      const bool established = std::find(links_.begin(), links_.end(), l) != links_.end();
      if (!established && l->done()) {
        dead.push_back(std::move(*it));
        it = owned_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // freed outside links_mu_
}

// ---- ClientLink: this endpoint dialed the peer ------------------------------------------------

class ClientLink final : public grpc::ClientBidiReactor<ByteBuffer, ByteBuffer>, public Link {
 public:
  enum class Handshake : uint8_t { kPending, kOk, kFailed };

  ClientLink(Session& session, int peer, grpc::GenericStub& stub) : Link(session, peer) {
    ctx_.set_wait_for_ready(false);
    stub.PrepareBidiStreamingCall(&ctx_, kExchangeMethod, grpc::StubOptions(), this);
  }

  /// Sends HELLO and starts the call.
  void start() {
    AddHold();  // released by end_writes(): OnDone cannot run while we may still write
    start_read(&read_buf_);
    send({make_frame(hello_header(session_))});
    StartCall();
  }

  /// Waits for the listener's HELLO (kOk), a failure (kFailed: `error`, `code`) or the deadline
  /// (kPending).
  Handshake wait_handshake(Clock::time_point deadline, std::string& error, grpc::StatusCode& code) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return hs_ != Handshake::kPending; });
    error = hs_error_;
    code = hs_code_;
    return hs_;
  }

  void cancel() noexcept override { ctx_.TryCancel(); }

  void OnReadDone(bool ok) override { react_read(ok); }
  void OnWriteDone(bool ok) override { react_write(ok); }
  void OnDone(const grpc::Status& status) override {
    std::string why = status.ok()
                          ? std::string("it closed the stream")
                          : fmt::format("the connection ended ({}: {})",
                                        code_name(status.error_code()), status.error_message());
    if (handshaken_) {  // failed connection attempts never owned the mailbox
      session_.close_mailbox(peer_, Closed::kLost, why);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (hs_ == Handshake::kPending) {
        hs_ = Handshake::kFailed;
        hs_code_ = status.ok() ? grpc::StatusCode::UNAVAILABLE : status.error_code();
        hs_error_ = status.ok() ? std::string("the listener closed the stream during the handshake")
                                : fmt::format("{}: {}", code_name(status.error_code()),
                                              status.error_message());
      }
    }
    react_done();
  }

  static const char* code_name(grpc::StatusCode c) {
    switch (c) {
      case grpc::StatusCode::OK:
        return "OK";
      case grpc::StatusCode::CANCELLED:
        return "CANCELLED";
      case grpc::StatusCode::UNKNOWN:
        return "UNKNOWN";
      case grpc::StatusCode::INVALID_ARGUMENT:
        return "INVALID_ARGUMENT";
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        return "DEADLINE_EXCEEDED";
      case grpc::StatusCode::ALREADY_EXISTS:
        return "ALREADY_EXISTS";
      case grpc::StatusCode::PERMISSION_DENIED:
        return "PERMISSION_DENIED";
      case grpc::StatusCode::RESOURCE_EXHAUSTED:
        return "RESOURCE_EXHAUSTED";
      case grpc::StatusCode::FAILED_PRECONDITION:
        return "FAILED_PRECONDITION";
      case grpc::StatusCode::UNAVAILABLE:
        return "UNAVAILABLE";
      case grpc::StatusCode::UNAUTHENTICATED:
        return "UNAUTHENTICATED";
      default:
        return "error";
    }
  }

 protected:
  void start_read(ByteBuffer* buffer) override { StartRead(buffer); }
  void start_write(const ByteBuffer* buffer) override { StartWrite(buffer); }
  void end_writes() override {
    StartWritesDone();
    RemoveHold();
  }
  void abandon() override { ctx_.TryCancel(); }

  bool handle_first(const wire::Header& h) override {
    std::string error;
    if (h.type() != wire::HELLO) {
      error = fmt::format("expected a HELLO frame from the listener, got frame type {}",
                          static_cast<int>(h.type()));
    } else if (h.rank() != peer_ || h.world_size() != session_.world_size ||
               h.has_dealer() != session_.has_dealer) {
      error = fmt::format(
          "the listener says it is rank {} of world_size {}{}; this endpoint expects {} of "
          "world_size {}{}",
          h.rank(), h.world_size(), h.has_dealer() ? " (+ dealer)" : "", session_.name(peer_),
          session_.world_size, session_.has_dealer ? " (+ dealer)" : "");
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!error.empty()) {
      hs_ = Handshake::kFailed;
      hs_code_ = grpc::StatusCode::FAILED_PRECONDITION;
      hs_error_ = error;
      cv_.notify_all();
      return false;
    }
    handshaken_ = true;
    hs_ = Handshake::kOk;
    cv_.notify_all();
    return true;
  }

 private:
  grpc::ClientContext ctx_;
  Handshake hs_ = Handshake::kPending;  // guarded by mu_
  std::string hs_error_;                // guarded by mu_
  grpc::StatusCode hs_code_ = grpc::StatusCode::OK;
};

// ---- ServerLink: the peer dialed this endpoint --------------------------------------------------

class ServerLink final : public grpc::ServerBidiReactor<ByteBuffer, ByteBuffer>, public Link {
 public:
  ServerLink(Session& session, grpc::CallbackServerContext* ctx) : Link(session, -1), ctx_(ctx) {}

  /// Starts reading the dialer's HELLO (or refuses at once while closing).
  void start() {
    if (session_.closing()) {
      refuse(grpc::StatusCode::UNAVAILABLE,
             fmt::format("{} is shutting down", session_.name(session_.rank)));
      std::unique_lock<std::mutex> lock(mu_);
      read_open_ = false;
      pump(lock);
      return;
    }
    start_read(&read_buf_);
  }

  /// Ends the stream with a CANCELLED status as soon as no write is in flight.
  void cancel() noexcept override {
    try {
      std::unique_lock<std::mutex> lock(mu_);
      queue_.clear();
      write_failed_ = true;
      finish_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the listener closed the session");
      pump(lock);
    } catch (...) {
      // server Shutdown cancels the call in any case
    }
  }

  void OnReadDone(bool ok) override { react_read(ok); }
  void OnWriteDone(bool ok) override { react_write(ok); }
  void OnCancel() override {}
  void OnDone() override { react_done(); }

 protected:
  void start_read(ByteBuffer* buffer) override { StartRead(buffer); }
  void start_write(const ByteBuffer* buffer) override { StartWrite(buffer); }
  void end_writes() override {
    grpc::Status status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      status = finish_status_;
    }
    Finish(status);
  }
  void on_read_ended() override {
    if (peer_ >= 0 && !got_bye_) {
      session_.close_mailbox(peer_, Closed::kLost, "the connection was closed without BYE");
    }
  }

  bool handle_first(const wire::Header& h) override {
    if (h.type() != wire::HELLO) {
      return refuse(grpc::StatusCode::FAILED_PRECONDITION,
                    fmt::format("expected a HELLO frame first, got frame type {}",
                                static_cast<int>(h.type())));
    }
    const int claimed = h.rank();
    if (h.world_size() != session_.world_size || h.has_dealer() != session_.has_dealer) {
      return refuse(grpc::StatusCode::FAILED_PRECONDITION,
                    fmt::format("the dialer (rank {}) has world_size {}{}, {} has world_size {}{}",
                                claimed, h.world_size(), h.has_dealer() ? " (+ dealer)" : "",
                                session_.name(session_.rank), session_.world_size,
                                session_.has_dealer ? " (+ dealer)" : ""));
    }
    if (claimed <= session_.rank || claimed >= session_.endpoints) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT,
                    fmt::format("rank {} may not dial {} (the higher rank dials the lower one)",
                                claimed, session_.name(session_.rank)));
    }
    if (session_.tls) {
      std::string why;
      if (!identity_matches(claimed, why)) {
        return refuse(grpc::StatusCode::UNAUTHENTICATED, why);
      }
    }
    // The HELLO reply is queued before the link is published: once registered, the
    // communicator may queue DATA on it, which must follow the reply.
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(make_frame(hello_header(session_)));
    }
    std::string why;
    peer_ = claimed;
    if (!session_.register_incoming(claimed, this, why)) {
      peer_ = -1;
      {
        std::lock_guard<std::mutex> lock(mu_);
        queue_.clear();
      }
      return refuse(grpc::StatusCode::ALREADY_EXISTS, why);
    }
    handshaken_ = true;
    std::unique_lock<std::mutex> lock(mu_);
    pump(lock);
    return true;
  }

 private:
  /// Whether the verified client certificate names endpoint `claimed` (its DNS subjectAltName,
  /// or its subject common name when it has no subjectAltName).
  bool identity_matches(int claimed, std::string& why) const {
    const std::string expected = endpoint_identity(claimed, session_.world_size);
    const std::shared_ptr<const grpc::AuthContext> auth = ctx_->auth_context();
    if (!auth || !auth->IsPeerAuthenticated()) {
      why = fmt::format("the dialer claiming to be {} presented no verified certificate",
                        session_.name(claimed));
      return false;
    }
    auto values = auth->FindPropertyValues(GRPC_X509_SAN_PROPERTY_NAME);
    if (values.empty()) {
      values = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
    }
    std::vector<std::string> names;
    for (const auto& v : values) {
      names.emplace_back(v.data(), v.size());
    }
    if (std::find(names.begin(), names.end(), expected) != names.end()) {
      return true;
    }
    why = fmt::format("certificate identity '{}' does not match the claimed {} (expected '{}')",
                      fmt::join(names, "', '"), session_.name(claimed), expected);
    return false;
  }

  /// Ends the stream with `code` and a message saying why; returns false (stop reading).
  bool refuse(grpc::StatusCode code, const std::string& why) {
    const std::string msg =
        fmt::format("{} refused a connection: {}", session_.name(session_.rank), why);
    core::log_warning(fmt::format("[connect] {}", msg));
    session_.note_refusal(why);
    std::lock_guard<std::mutex> lock(mu_);
    finish_status_ = grpc::Status(code, why);
    return false;
  }

  grpc::CallbackServerContext* ctx_;
  grpc::Status finish_status_;  // guarded by mu_
};

// ---- service -------------------------------------------------------------------------------

class VeilService final : public wire::Veil::WithRawCallbackMethod_Exchange<wire::Veil::Service> {
 public:
  explicit VeilService(Session& session) : session_(session) {}

  grpc::ServerBidiReactor<ByteBuffer, ByteBuffer>* Exchange(
      grpc::CallbackServerContext* ctx) override {
    auto link = std::make_unique<ServerLink>(session_, ctx);
    ServerLink* raw = link.get();
    session_.adopt(std::move(link));
    raw->start();
    return raw;
  }

 private:
  Session& session_;
};

// ---- helpers -------------------------------------------------------------------------------

/// Transport tuning shared by the listener and the dialers: HTTP/2 DATA frames up to 16 MiB
/// (default 16 KiB) and an 8 MiB stream window, so a 1 MiB chunk is not cut into 64 frames and a
/// sender is rarely stalled on WINDOW_UPDATEs. (On the loaded 2-core development machine the
/// exchange benchmark showed no difference beyond noise; the settings cost nothing.)
template <class SetInt>
void tune_transport(SetInt&& set_int) {
  set_int(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, (1 << 24) - 1);
  set_int(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
}

/// Reads a PEM file. Throws ValueError naming the file and its role when it cannot be read.
std::string read_pem(const std::string& path, const char* role) {
  VEIL_CHECK(!path.empty(), "[connect_grpc] TLS {} file not set", role);
  std::ifstream in(path, std::ios::binary);
  VEIL_CHECK(in.good(), "[connect_grpc] cannot read the TLS {} file '{}'", role, path);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  VEIL_CHECK(!s.empty(), "[connect_grpc] the TLS {} file '{}' is empty", role, path);
  return s;
}

void cleanse(std::string& s) {
  if (!s.empty()) {
    OPENSSL_cleanse(s.data(), s.size());
  }
}

/// Whether a failed attempt's status means "refused" (retrying cannot help) rather than
/// "not reachable yet".
bool is_refusal(grpc::StatusCode code, const std::string& message) {
  switch (code) {
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::INVALID_ARGUMENT:
      return true;
    default:
      break;
  }
  // TLS handshake failures (certificate from another CA, wrong identity) do not heal by retrying.
  for (const char* needle : {"andshake", "certificate", "CERTIFICATE", "Peer name", "SSL_ERROR"}) {
    if (message.find(needle) != std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

// ---- the communicator ------------------------------------------------------------------------

class GrpcCommunicator final : public Communicator {
 public:
  explicit GrpcCommunicator(const GrpcOptions& o)
      : Communicator(o.rank, o.world_size, o.has_dealer), options_(o) {
    set_timeout(o.timeout);
    session_ = std::make_unique<Session>(o.rank, o.world_size, o.has_dealer, o.addresses,
                                         !o.insecure_plaintext);
    start_server();
  }

  ~GrpcCommunicator() override { shutdown(); }

  GrpcCommunicator(const GrpcCommunicator&) = delete;
  GrpcCommunicator& operator=(const GrpcCommunicator&) = delete;

  /// Dials every lower rank and waits for every higher rank to dial in.
  void connect() {
    const auto deadline = Clock::now() + options_.connect_timeout;
    for (int peer = 0; peer < rank(); ++peer) {
      dial(peer, deadline);
    }
    std::vector<int> higher;
    for (int peer = rank() + 1; peer < session_->endpoints; ++peer) {
      higher.push_back(peer);
    }
    const std::vector<int> missing = session_->wait_links(higher, deadline);
    if (!missing.empty()) {
      const std::string refusal = session_->last_refusal();
      throw CommError(fmt::format(
          "[connect] {} did not connect to {} at {} within {} ms{}", session_->name(missing[0]),
          session_->name(rank()), listen_address(), options_.connect_timeout.count(),
          refusal.empty() ? std::string() : fmt::format(" (last refused attempt: {})", refusal)));
    }
    session_->reap();
  }

  void inject_fault(int to, GrpcFault fault) {
    VEIL_CHECK(to >= 0 && to < session_->endpoints && to != rank(),
               "[inject_grpc_fault_for_testing] {} is not a peer of {}", to,
               session_->name(rank()));
    Link* link = session_->link(to);
    VEIL_CHECK(link != nullptr, "[inject_grpc_fault_for_testing] no stream to {}",
               session_->name(to));
    std::vector<ByteBuffer> frames;
    const std::byte four[4] = {};
    const Bytes eight(8);
    wire::Header h;
    switch (fault) {
      case GrpcFault::kDuplicateHello:
        frames.push_back(make_frame(hello_header(*session_)));
        break;
      case GrpcFault::kUnknownFrameType:
        h.set_type(static_cast<wire::FrameType>(77));
        frames.push_back(make_frame(h));
        break;
      case GrpcFault::kChunkOutOfOrder:
        h.set_type(wire::DATA);
        h.set_tag("fault#1");
        h.set_total_size(8);
        h.set_chunk_index(0);
        frames.push_back(make_small_frame(h, four));
        h.set_chunk_index(2);
        h.set_last(true);
        frames.push_back(make_small_frame(h, four));
        break;
      case GrpcFault::kSizeMismatch:
        h.set_type(wire::DATA);
        h.set_tag("fault#1");
        h.set_total_size(16);
        h.set_last(true);
        frames.push_back(make_small_frame(h, eight));
        break;
    }
    link->send(std::move(frames));
  }

 protected:
  void send_bytes(int to, std::string_view tag, std::span<const std::byte> data) override {
    Link* link = open_link(to, tag);
    if (data.size() <= std::min(options_.chunk_bytes, kSmallMessageBytes)) {
      send_small(link, tag, data);
      return;
    }
    send_chunks(link, tag, copy_to_slice(data));  // the one copy of the payload
  }

  // A host tensor handed over whole (the base made it this message's own, or it is only read
  // from now on): its storage travels as the frames' data, without another copy; the slice keeps
  // the tensor alive until gRPC has written the last frame.
  bool accepts_host_tensors() const override { return true; }
  void send_whole_tensor(int to, std::string_view tag, core::Tensor t) override {
    Link* link = open_link(to, tag);
    const std::span<const std::byte> data = t.bytes();
    if (data.size() <= std::min(options_.chunk_bytes, kSmallMessageBytes)) {
      send_small(link, tag, data);
      return;
    }
    auto holder = std::make_unique<core::Tensor>(std::move(t));
    const grpc::Slice all(
        const_cast<std::byte*>(data.data()), data.size(),
        [](void* p) { delete static_cast<core::Tensor*>(p); }, holder.get());
    holder.release();  // owned by the slice now
    send_chunks(link, tag, all);
  }

  Message recv_bytes(int from, std::string_view expected_tag, milliseconds timeout) override {
    Mailbox& mb = session_->mailbox(from);
    std::unique_lock<std::mutex> lock(mb.mu);
    const bool ready = mb.cv.wait_for(lock, timeout, [&] {
      return session_->aborted() || !mb.queue.empty() || mb.closed != Closed::kOpen;
    });
    if (session_->aborted()) {
      lock.unlock();
      session_->throw_aborted();
    }
    if (!mb.queue.empty()) {
      Envelope e = std::move(mb.queue.front());
      mb.queue.pop_front();
      return Message{std::move(e.tag), std::move(e.payload), std::move(e.tensor)};
    }
    if (ready && mb.closed == Closed::kProtocol) {
      throw ProtocolError(mb.reason);
    }
    if (ready) {
      throw CommError(fmt::format("{} disconnected: {} (recv, tag '{}')", session_->name(from),
                                  mb.reason, expected_tag));
    }
    throw CommError(fmt::format("[recv] no data from {} after {} ms (tag '{}')",
                                session_->name(from), timeout.count(), expected_tag));
  }

  void abort_impl(const std::string& reason) noexcept override {
    if (!session_->mark_aborted(rank(), reason)) {
      return;  // already aborted (by us or a peer): the first abort's reason wins
    }
    try {
      for (Link* link : session_->established()) {
        link->close(control_frame(wire::ABORT, reason), /*drop_queued=*/true);
      }
    } catch (...) {
      // out of memory building frames: peers still learn of the failure when we close
    }
  }

 private:
  /// The stream to `to`, checked open for a send of `tag`. Throws CommError.
  Link* open_link(int to, std::string_view tag) {
    if (session_->aborted()) {
      session_->throw_aborted();
    }
    Link* link = session_->link(to);
    if (link == nullptr) {
      throw CommError(fmt::format("[send] no stream to {}", session_->name(to)));
    }
    // A peer that said BYE, broke the protocol or lost its connection reads nothing more.
    Mailbox& mb = session_->mailbox(to);
    std::lock_guard<std::mutex> lock(mb.mu);
    if (mb.closed != Closed::kOpen) {
      throw CommError(fmt::format("[send] {} disconnected: {} (tag '{}')", session_->name(to),
                                  mb.closed == Closed::kProtocol ? "protocol error" : mb.reason,
                                  tag));
    }
    return link;
  }

  static wire::Header data_header(std::string_view tag, std::size_t total) {
    wire::Header h;
    h.set_type(wire::DATA);
    h.set_tag(std::string(tag));
    h.set_total_size(total);
    return h;
  }

  /// A message in one frame, header and data in one allocation.
  static void send_small(Link* link, std::string_view tag, std::span<const std::byte> data) {
    wire::Header h = data_header(tag, data.size());
    h.set_last(true);
    std::vector<ByteBuffer> frames;
    frames.push_back(make_small_frame(h, data));
    link->send(std::move(frames));
  }

  /// A message cut into frames of options_.chunk_bytes whose data are sub-slices of `all`.
  void send_chunks(Link* link, std::string_view tag, const grpc::Slice& all) {
    const std::size_t size = all.size();
    wire::Header h = data_header(tag, size);
    const std::size_t chunk = options_.chunk_bytes;
    std::vector<ByteBuffer> frames;
    frames.reserve((size + chunk - 1) / chunk);
    uint32_t index = 0;
    for (std::size_t begin = 0; begin < size; begin += chunk, ++index) {
      const std::size_t end = std::min(size, begin + chunk);
      h.set_chunk_index(index);
      h.set_last(end == size);
      frames.push_back(make_frame(h, &all, begin, end));
    }
    link->send(std::move(frames));
  }

  std::string listen_address() const {
    return options_.listen_address.empty() ? options_.addresses[static_cast<std::size_t>(rank())]
                                           : options_.listen_address;
  }

  void start_server() {
    std::shared_ptr<grpc::ServerCredentials> creds;
    if (options_.insecure_plaintext) {
      creds = grpc::InsecureServerCredentials();
    } else {
      grpc::SslServerCredentialsOptions ssl(
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
      ssl.pem_root_certs = read_pem(options_.tls->ca_cert, "CA certificate");
      grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
      pair.private_key = read_pem(options_.tls->key, "private key");
      pair.cert_chain = read_pem(options_.tls->cert, "certificate");
      ssl.pem_key_cert_pairs.push_back(pair);
      cleanse(pair.private_key);
      creds = grpc::SslServerCredentials(ssl);
      cleanse(ssl.pem_key_cert_pairs.front().private_key);
    }
    service_ = std::make_unique<VeilService>(*session_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(listen_address(), creds, &port);
    builder.RegisterService(service_.get());
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a taken port must fail, not share
    builder.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
    builder.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
    tune_transport([&](const char* key, int value) { builder.AddChannelArgument(key, value); });
    server_ = builder.BuildAndStart();
    if (!server_ || port == 0) {
      server_.reset();
      throw CommError(
          fmt::format("[connect] {} cannot listen on {} (port in use, or not a local "
                      "address?)",
                      session_->name(rank()), listen_address()));
    }
  }

  std::shared_ptr<grpc::Channel> make_channel(int peer) {
    const std::string& address = options_.addresses[static_cast<std::size_t>(peer)];
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // own connection per peer
    args.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
    args.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
    tune_transport([&](const char* key, int value) { args.SetInt(key, value); });
    std::shared_ptr<grpc::ChannelCredentials> creds;
    if (options_.insecure_plaintext) {
      creds = grpc::InsecureChannelCredentials();
    } else {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = read_pem(options_.tls->ca_cert, "CA certificate");
      ssl.pem_private_key = read_pem(options_.tls->key, "private key");
      ssl.pem_cert_chain = read_pem(options_.tls->cert, "certificate");
      creds = grpc::SslCredentials(ssl);
      cleanse(ssl.pem_private_key);
      // The listener's certificate must name the peer we mean to reach.
      args.SetSslTargetNameOverride(endpoint_identity(peer, world_size()));
    }
    return grpc::CreateCustomChannel(address, creds, args);
  }

  void dial(int peer, Clock::time_point deadline) {
    const std::string& address = options_.addresses[static_cast<std::size_t>(peer)];
    channels_.push_back(make_channel(peer));
    stubs_.push_back(std::make_unique<grpc::GenericStub>(channels_.back()));
    grpc::GenericStub& stub = *stubs_.back();
    std::string last_error;  // the latest failed attempt's reason
    milliseconds backoff(20);
    while (true) {
      auto owned = std::make_unique<ClientLink>(*session_, peer, stub);
      auto* link = static_cast<ClientLink*>(session_->adopt(std::move(owned)));
      link->start();
      std::string error;
      grpc::StatusCode code = grpc::StatusCode::OK;
      const auto result = link->wait_handshake(deadline, error, code);
      if (result == ClientLink::Handshake::kOk) {
        session_->set_link(peer, link);
        return;
      }
      link->cancel();
      if (result == ClientLink::Handshake::kFailed) {
        last_error = error;
        if (is_refusal(code, error)) {
          throw CommError(fmt::format("[connect] {} at {} refused {}: {}{}", session_->name(peer),
                                      address, session_->name(rank()), error, hint()));
        }
      } else if (last_error.empty()) {
        last_error = "no answer to HELLO";
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        break;
      }
      session_->reap();
      std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
      backoff = std::min(backoff * 2, milliseconds(500));
    }
    throw CommError(fmt::format("[connect] {} at {} unreachable after {} ms: {}{}",
                                session_->name(peer), address, options_.connect_timeout.count(),
                                last_error, hint()));
  }

  std::string hint() const {
    return options_.insecure_plaintext
               ? std::string(" (this endpoint speaks plaintext: a TLS peer refuses it)")
               : std::string();
  }

  /// Flushes and closes every stream (bounded), then stops the server. Never throws, never hangs.
  void shutdown() noexcept {
    try {
      session_->begin_closing();
      const std::vector<Link*> links = session_->established();
      // After an abort the ABORT frame is already queued (close is then a no-op); a peer's abort
      // makes queued data moot.
      const bool aborted = session_->aborted();
      for (Link* l : links) {
        l->close(control_frame(wire::BYE), /*drop_queued=*/aborted);
      }
      const auto grace = Clock::now() + std::min(timeout(), milliseconds(10000));
      for (Link* l : links) {
        l->wait_done(grace);
      }
      for (Link* l : session_->all_links()) {
        if (!l->done()) {
          l->cancel();
        }
      }
      if (server_) {
        server_->Shutdown(std::chrono::system_clock::now() + milliseconds(100));
      }
      const auto hard = Clock::now() + milliseconds(5000);
      bool all_done = true;
      for (Link* l : session_->all_links()) {
        all_done = l->wait_done(hard) && all_done;
      }
      if (!all_done) {
        // A reaction may still run: leak rather than free memory gRPC may touch.
        core::log_warning(
            "[GrpcCommunicator] streams did not finish within 5 s of cancellation; "
            "leaking their state");
        (void)session_.release();
        (void)service_.release();
        (void)server_.release();
        return;
      }
      server_.reset();
      session_.reset();
      service_.reset();
      stubs_.clear();
      channels_.clear();
    } catch (...) {
      // nothing sensible left to do in a destructor
    }
  }

  GrpcOptions options_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<VeilService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
};

}  // namespace grpc_transport

namespace {

void validate(const GrpcOptions& o) {
  VEIL_CHECK(o.world_size >= 1, "[connect_grpc] expected world_size >= 1, got {}", o.world_size);
  const int endpoints = o.world_size + (o.has_dealer ? 1 : 0);
  VEIL_CHECK(o.rank >= 0 && o.rank < endpoints,
             "[connect_grpc] rank {} out of range: world_size {}{}", o.rank, o.world_size,
             o.has_dealer ? " (+ dealer)" : "");
  VEIL_CHECK(static_cast<int>(o.addresses.size()) == endpoints,
             "[connect_grpc] expected {} addresses (parties{}), got {}", endpoints,
             o.has_dealer ? " then the dealer" : "", o.addresses.size());
  for (std::size_t i = 0; i < o.addresses.size(); ++i) {
    VEIL_CHECK(!o.addresses[i].empty() && o.addresses[i].find(':') != std::string::npos,
               "[connect_grpc] address {} must be host:port, got '{}'", i, o.addresses[i]);
  }
  VEIL_CHECK(o.connect_timeout.count() > 0 && o.timeout.count() > 0,
             "[connect_grpc] expected positive timeouts, got connect_timeout {} ms, timeout {} ms",
             o.connect_timeout.count(), o.timeout.count());
  VEIL_CHECK(o.chunk_bytes >= grpc_transport::kMinChunkBytes &&
                 o.chunk_bytes <= grpc_transport::kMaxChunkBytes,
             "[connect_grpc] chunk_bytes must be in [{}, {}], got {}",
             grpc_transport::kMinChunkBytes, grpc_transport::kMaxChunkBytes, o.chunk_bytes);
  VEIL_CHECK(o.insecure_plaintext || o.tls.has_value(),
             "[connect_grpc] TLS files are required (ca_cert, cert, key; see comm/tls.h) unless "
             "insecure_plaintext is set");
}

}  // namespace

std::unique_ptr<Communicator> connect_grpc(const GrpcOptions& options) {
  validate(options);
  if (options.insecure_plaintext) {
    core::log_warning(fmt::format(
        "[connect_grpc] INSECURE: {} uses plaintext transport: traffic is neither encrypted nor "
        "authenticated. Use only for debugging.",
        endpoint_identity(options.rank, options.world_size)));
  }
  auto comm = std::make_unique<grpc_transport::GrpcCommunicator>(options);
  comm->connect();
  return comm;
}

bool grpc_compiled() {
  return true;
}

void inject_grpc_fault_for_testing(Communicator& comm, int to, GrpcFault fault) {
  auto* g = dynamic_cast<grpc_transport::GrpcCommunicator*>(&comm);
  VEIL_CHECK(g != nullptr, "[inject_grpc_fault_for_testing] not a gRPC communicator");
  g->inject_fault(to, fault);
}

}  // namespace veil::comm
