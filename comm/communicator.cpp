// Communicator base class: rank validation, tag and size checks, statistics, and the collectives
// built on send/recv. Backends only move bytes (send_bytes / recv_bytes / abort_impl).

#include "comm/communicator.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "kernels/cuda_backend.h"

namespace veil::comm {

namespace {

// Page-locked host memory through which device tensors are sent: one buffer per thread (parties
// that share a process are threads), grown on demand and kept, since pinning is costly.
class PinnedStaging {
 public:
  PinnedStaging() = default;
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;
  ~PinnedStaging() { kernels::cuda::pinned_free(data_); }

  std::span<std::byte> get(std::size_t bytes) {
    if (bytes > size_) {
      kernels::cuda::pinned_free(data_);
      data_ = nullptr;
      size_ = 0;
      data_ = static_cast<std::byte*>(kernels::cuda::pinned_alloc(bytes));
      size_ = bytes;
    }
    return {data_, bytes};
  }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// The bytes of a tensor in host memory: its own storage (made contiguous) for a host tensor, a
// pinned copy for a device tensor. `keep` holds the contiguous host tensor alive.
std::span<const std::byte> host_bytes(const core::Tensor& t, core::Tensor& keep) {
  if (!t.is_cuda()) {
    keep = t.contiguous();
    return keep.bytes();
  }
  thread_local PinnedStaging staging;
  keep = t.contiguous();
  const std::span<std::byte> buf = staging.get(keep.nbytes());
  kernels::cuda::copy_to_host(buf.data(), keep.device_ptr(), keep.nbytes(), keep.device().index);
  return buf;
}

}  // namespace

OpStats& OpStats::operator+=(const OpStats& o) {
  rounds += o.rounds;
  messages_sent += o.messages_sent;
  messages_received += o.messages_received;
  bytes_sent += o.bytes_sent;
  bytes_received += o.bytes_received;
  return *this;
}

OpStats OpStats::operator-(const OpStats& o) const {
  OpStats d;
  d.rounds = rounds - o.rounds;
  d.messages_sent = messages_sent - o.messages_sent;
  d.messages_received = messages_received - o.messages_received;
  d.bytes_sent = bytes_sent - o.bytes_sent;
  d.bytes_received = bytes_received - o.bytes_received;
  return d;
}

CommStats CommStats::operator-(const CommStats& earlier) const {
  CommStats d;
  d.total = total - earlier.total;
  d.dealer = dealer - earlier.dealer;
  // Ops present now: difference (kept only when non-zero). Ops that only exist in `earlier`
  // (stats were reset in between) appear negated so that earlier + d == *this still holds.
  for (const auto& [op, s] : by_op) {
    auto it = earlier.by_op.find(op);
    OpStats v = it == earlier.by_op.end() ? s : s - it->second;
    if (v != OpStats{}) {
      d.by_op.emplace(op, v);
    }
  }
  for (const auto& [op, s] : earlier.by_op) {
    if (!by_op.contains(op) && s != OpStats{}) {
      d.by_op.emplace(op, OpStats{} - s);
    }
  }
  return d;
}

std::string tag_op(std::string_view tag) {
  return std::string(tag.substr(0, tag.find_first_of("#/")));
}

Communicator::Communicator(int rank, int world_size, bool has_dealer)
    : rank_(rank), world_size_(world_size), has_dealer_(has_dealer) {
  VEIL_CHECK(world_size >= 1, "[Communicator] expected world_size >= 1, got {}", world_size);
  VEIL_CHECK(rank >= 0 && rank < world_size + (has_dealer ? 1 : 0),
             "[Communicator] rank {} out of range: world_size {}{}", rank, world_size,
             has_dealer ? " (+ dealer)" : "");
}

void Communicator::set_timeout(std::chrono::milliseconds t) {
  VEIL_CHECK(t.count() > 0, "[set_timeout] expected a positive timeout, got {} ms", t.count());
  timeout_ = t;
}

std::string Communicator::peer_name(int rank) const {
  if (has_dealer_ && rank == world_size_) {
    return "the dealer";
  }
  return fmt::format("party {}", rank);
}

void Communicator::check_peer(int peer, const char* op) const {
  const int endpoints = world_size_ + (has_dealer_ ? 1 : 0);
  VEIL_CHECK(peer >= 0 && peer < endpoints, "[{}] peer {} out of range: world_size {}{}", op, peer,
             world_size_, has_dealer_ ? " (+ dealer)" : "");
  VEIL_CHECK(peer != rank_, "[{}] {} cannot {} itself", op, peer_name(rank_),
             std::string_view(op) == "send" ? "send to" : "receive from");
}

void Communicator::count(int peer, std::string_view tag, int64_t bytes, bool sent) {
  const bool new_round = tag != last_tag_;
  if (new_round) {
    last_tag_.assign(tag);
  }
  OpStats delta;
  delta.rounds = new_round ? 1 : 0;
  if (sent) {
    delta.messages_sent = 1;
    delta.bytes_sent = bytes;
  } else {
    delta.messages_received = 1;
    delta.bytes_received = bytes;
  }
  const bool with_dealer = has_dealer_ && (is_dealer() || peer == dealer_rank());
  (with_dealer ? stats_.dealer : stats_.total) += delta;
  stats_.by_op[tag_op(tag)] += delta;
}

// ---- point to point
// ------------------------------------------------------------------------------

void Communicator::begin_send(int to, std::string_view tag, bool observe) {
  check_peer(to, "send");
  VEIL_CHECK(!tag.empty(), "[send] expected a non-empty tag (to {})", peer_name(to));
  if (observe && send_observer_) {
    send_observer_(to, tag);
  }
}

void Communicator::send(int to, std::string_view tag, std::span<const std::byte> data) {
  begin_send(to, tag);
  send_bytes(to, tag, data);
  count(to, tag, static_cast<int64_t>(data.size()), /*sent=*/true);
}

std::span<const std::byte> Communicator::message_bytes(const Message& m) {
  return m.tensor.defined() ? m.tensor.bytes() : std::span<const std::byte>(m.payload);
}

Communicator::Message Communicator::recv_checked(int from,
                                                 std::string_view tag,
                                                 int64_t expected_bytes,
                                                 bool keep_device) {
  check_peer(from, "recv");
  VEIL_CHECK(!tag.empty(), "[recv] expected a non-empty tag (from {})", peer_name(from));
  Message m = recv_bytes(from, tag, timeout_);
  VEIL_CHECK_WITH(ProtocolError, m.tag == tag, "[recv] expected tag '{}' from {}, got '{}'", tag,
                  peer_name(from), m.tag);
  const auto got = static_cast<int64_t>(m.tensor.defined() ? m.tensor.nbytes() : m.payload.size());
  VEIL_CHECK_WITH(ProtocolError, expected_bytes < 0 || got == expected_bytes,
                  "[recv] expected {} bytes under tag '{}' from {}, got {}", expected_bytes, tag,
                  peer_name(from), got);
  count(from, tag, got, /*sent=*/false);
  if (m.tensor.defined() && m.tensor.is_cuda() && !keep_device) {
    m.tensor = m.tensor.to(core::Device::cpu());  // a device hand-over read by a host path
  }
  return m;
}

Bytes Communicator::recv(int from, std::string_view tag, int64_t expected_bytes) {
  Message m = recv_checked(from, tag, expected_bytes);
  if (m.tensor.defined()) {
    const std::span<const std::byte> b = m.tensor.bytes();
    Bytes out(b.size());
    std::ranges::copy(b, out.begin());
    return out;
  }
  return std::move(m.payload);
}

void Communicator::send_tensor_once(int to,
                                    std::string_view tag,
                                    const core::Tensor& t,
                                    core::Tensor& keep,
                                    std::span<const std::byte>& staged,
                                    bool observe) {
  begin_send(to, tag, observe);
  if (t.is_cuda() && send_device(to, tag, t)) {
    count(to, tag, static_cast<int64_t>(t.nbytes()), /*sent=*/true);
    return;
  }
  if (t.is_cuda() ? accepts_device_tensors() : accepts_host_tensors()) {
    // the receiver's own copy (the sender may change t afterwards): the one copy of this send
    core::Tensor copy = t.is_contiguous() ? t.clone() : t.contiguous();
    if (copy.is_cuda()) {
      // complete before another thread's stream reads it
      kernels::cuda::synchronize(copy.device().index);
    }
    const auto nbytes = static_cast<int64_t>(copy.nbytes());
    send_whole_tensor(to, tag, std::move(copy));
    count(to, tag, nbytes, /*sent=*/true);
    return;
  }
  if (!keep.defined()) {
    staged = host_bytes(t, keep);
  }
  send_bytes(to, tag, staged);
  count(to, tag, static_cast<int64_t>(staged.size()), /*sent=*/true);
}

void Communicator::send_tensor(int to, std::string_view tag, const core::Tensor& t) {
  VEIL_CHECK(t.defined(), "[send_tensor] expected a defined tensor (tag '{}')", tag);
  core::Tensor keep;
  std::span<const std::byte> staged;
  send_tensor_once(to, tag, t, keep, staged);
}

void Communicator::send_tensor(int to, std::string_view tag, core::Tensor&& t) {
  VEIL_CHECK(t.defined(), "[send_tensor] expected a defined tensor (tag '{}')", tag);
  if (t.is_contiguous() && t.sole_owner() &&
      (t.is_cuda() ? accepts_device_tensors() : accepts_host_tensors())) {
    begin_send(to, tag, /*observe=*/true);
    const auto nbytes = static_cast<int64_t>(t.nbytes());
    if (t.is_cuda()) {
      kernels::cuda::synchronize(t.device().index);  // t is complete before the peer reads it
    }
    send_whole_tensor(to, tag, std::move(t));
    count(to, tag, nbytes, /*sent=*/true);
    return;
  }
  send_tensor(to, tag, static_cast<const core::Tensor&>(t));
}

core::Tensor Communicator::recv_tensor(int from,
                                       std::string_view tag,
                                       const core::Shape& shape,
                                       core::DType dtype,
                                       core::Device device) {
  const auto nbytes = core::shape_numel(shape) * static_cast<int64_t>(core::dtype_size(dtype));
  if (device.type == core::Device::Type::kCUDA) {
    check_peer(from, "recv");
    VEIL_CHECK(!tag.empty(), "[recv] expected a non-empty tag (from {})", peer_name(from));
    if (!accepts_device_tensors()) {
      core::Tensor t = core::Tensor::empty(shape, dtype, device);
      if (recv_device(from, tag, t)) {
        count(from, tag, nbytes, /*sent=*/false);
        return t;
      }
    }
    Message m = recv_checked(from, tag, nbytes, /*keep_device=*/true);
    if (m.tensor.defined() && m.tensor.is_cuda()) {
      if (m.tensor.device() == device && m.tensor.dtype() == dtype && m.tensor.is_contiguous()) {
        return m.tensor.reshape(shape);  // handed over on this device: no copy at all
      }
      m.tensor = m.tensor.to(core::Device::cpu());  // from another device: through the host
    }
    core::Tensor t = core::Tensor::empty(shape, dtype, device);
    const std::span<const std::byte> b = message_bytes(m);
    kernels::cuda::copy_to_device(t.device_ptr(), b.data(), b.size(), device.index);
    return t;
  }
  Message m = recv_checked(from, tag, nbytes);
  if (m.tensor.defined() && m.tensor.dtype() == dtype && m.tensor.is_contiguous()) {
    return m.tensor.reshape(shape);  // handed over: this receiver's own copy
  }
  core::Tensor t = core::Tensor::empty(shape, dtype);
  std::ranges::copy(message_bytes(m), t.mutable_bytes().begin());
  return t;
}

// ---- collectives
// ---------------------------------------------------------------------------------

namespace {

// Applies `op` element-wise: acc[i] = acc[i] op x[i] (mod 2^64 for the sum).
void reduce_into(std::span<uint64_t> acc, std::span<const uint64_t> x, ReduceOp op) {
  if (op == ReduceOp::kSum) {
    for (std::size_t i = 0; i < acc.size(); ++i) {
      acc[i] += x[i];
    }
  } else {
    for (std::size_t i = 0; i < acc.size(); ++i) {
      acc[i] ^= x[i];
    }
  }
}

// out = the element-wise reduction of every part (rank order; exact and order-free mod 2^64, so
// every party gets the same bits): the first two parts in one pass, later ones in place.
void reduce_parts(Communicator::RingParts parts, ReduceOp op, core::Tensor& out) {
  const std::span<uint64_t> acc(out.data<uint64_t>(), static_cast<std::size_t>(out.numel()));
  if (parts.size() == 1) {
    std::ranges::copy(parts[0], acc.begin());
    return;
  }
  const std::span<const uint64_t> x = parts[0];
  const std::span<const uint64_t> y = parts[1];
  for (std::size_t i = 0; i < acc.size(); ++i) {
    acc[i] = op == ReduceOp::kSum ? x[i] + y[i] : x[i] ^ y[i];
  }
  for (std::size_t k = 2; k < parts.size(); ++k) {
    reduce_into(acc, parts[k], op);
  }
}

}  // namespace

core::Tensor Communicator::all_reduce(std::string_view tag, const core::Tensor& t, ReduceOp op) {
  VEIL_CHECK(!is_dealer(), "[all_reduce] the dealer cannot take part in collectives (tag '{}')",
             tag);
  VEIL_CHECK(t.defined() && t.dtype() == core::DType::kRing64,
             "[all_reduce] expected a ring64 tensor, got {} (tag '{}')", t.str(), tag);
  const auto nbytes = static_cast<int64_t>(t.nbytes());
  if (t.is_cuda() && world_size_ > 1) {
    for (int p = 0; p < world_size_; ++p) {
      if (p != rank_ && send_observer_) {
        send_observer_(p, tag);  // once per peer, whichever path sends
      }
    }
    if (accepts_device_tensors()) {
      // Each peer gets its own device copy, and the parts are combined on this device: nothing
      // passes through host memory (peers on another device or the host copy what they get).
      // The sum mod 2^64 and the XOR do not depend on the order of the parts.
      core::Tensor src = t.is_contiguous() ? t : t.contiguous();
      std::vector<core::Tensor> copies;
      for (int p = 0; p < world_size_ - 1; ++p) {
        copies.push_back(src.clone());
      }
      kernels::cuda::synchronize(src.device().index);  // the copies are complete
      for (int p = 0; p < world_size_; ++p) {
        if (p != rank_) {
          begin_send(p, tag, /*observe=*/false);
          send_whole_tensor(p, tag, std::move(copies.back()));
          copies.pop_back();
          count(p, tag, nbytes, /*sent=*/true);
        }
      }
      core::Tensor out;
      for (int p = 0; p < world_size_; ++p) {
        if (p != rank_) {
          const core::Tensor part =
              recv_tensor(p, tag, t.shape(), core::DType::kRing64, t.device());
          const core::Tensor& acc = out.defined() ? out : src;
          out = op == ReduceOp::kSum ? core::add(acc, part) : core::bitwise_xor(acc, part);
        }
      }
      return out;
    }
    // A fresh contiguous copy on the device, reduced in place by a device transport if any.
    core::Tensor out = t.is_contiguous() ? t.clone() : t.contiguous();
    if (all_reduce_device(tag, out, op)) {
      for (int p = 0; p < world_size_; ++p) {
        if (p != rank_) {
          count(p, tag, nbytes, /*sent=*/true);
        }
      }
      for (int p = 0; p < world_size_; ++p) {
        if (p != rank_) {
          count(p, tag, nbytes, /*sent=*/false);
        }
      }
      return out;
    }
  }
  // Otherwise a device tensor is reduced on the host (one copy down, one up, whatever
  // world_size is: 2 nbytes over PCIe, where reducing on the device would upload the N-1 peers'
  // parts after downloading this party's, N nbytes) and the result returned on its device.
  core::Tensor keep;
  std::span<const std::byte> mine;
  for (int p = 0; p < world_size_; ++p) {
    if (p != rank_) {
      send_tensor_once(p, tag, t, keep, mine, /*observe=*/!t.is_cuda());
    }
  }
  if (!keep.defined()) {
    mine = host_bytes(t, keep);
  }
  return reduce_received(tag, t, mine, op);
}

core::Tensor Communicator::all_reduce(std::string_view tag, core::Tensor&& t, ReduceOp op) {
  if (is_dealer() || !t.defined() || t.is_cuda() || !t.is_contiguous() || !t.sole_owner() ||
      !accepts_host_tensors() || t.dtype() != core::DType::kRing64) {
    return all_reduce(tag, static_cast<const core::Tensor&>(t), op);
  }
  core::Tensor out = core::Tensor::empty(t.shape(), core::DType::kRing64);
  all_reduce_with(tag, std::move(t), [&](RingParts parts) { reduce_parts(parts, op, out); });
  return out;
}

void Communicator::all_reduce_with(std::string_view tag,
                                   core::Tensor&& t,
                                   const std::function<void(RingParts)>& combine) {
  VEIL_CHECK(!is_dealer(),
             "[all_reduce_with] the dealer cannot take part in collectives (tag '{}')", tag);
  VEIL_CHECK(t.defined() && t.dtype() == core::DType::kRing64 && !t.is_cuda(),
             "[all_reduce_with] expected a host ring64 tensor, got {} (tag '{}')", t.str(), tag);
  core::Tensor keep;
  std::span<const std::byte> mine;
  if (t.is_contiguous() && t.sole_owner() && accepts_host_tensors()) {
    // No other reference to t exists and every reader only reads it (this party, and each peer
    // inside its own reduction of this tag), so the peers get t's storage itself, not a copy.
    const auto nbytes = static_cast<int64_t>(t.nbytes());
    for (int p = 0; p < world_size_; ++p) {
      if (p != rank_) {
        begin_send(p, tag, /*observe=*/true);
        send_whole_tensor(p, tag, t);
        count(p, tag, nbytes, /*sent=*/true);
      }
    }
    mine = t.bytes();
  } else {
    for (int p = 0; p < world_size_; ++p) {
      if (p != rank_) {
        send_tensor_once(p, tag, t, keep, mine);
      }
    }
    if (!keep.defined()) {
      mine = host_bytes(t, keep);
    }
  }
  with_received(tag, t.numel(), mine, combine);
}

void Communicator::with_received(std::string_view tag,
                                 int64_t n,
                                 std::span<const std::byte> mine,
                                 const std::function<void(RingParts)>& combine) {
  const auto words = static_cast<std::size_t>(n);
  std::vector<Message> messages;
  messages.reserve(static_cast<std::size_t>(world_size_));
  std::vector<std::span<const uint64_t>> parts;
  parts.reserve(static_cast<std::size_t>(world_size_));
  for (int p = 0; p < world_size_; ++p) {
    std::span<const std::byte> b = mine;
    if (p != rank_) {
      messages.push_back(recv_checked(p, tag, n * static_cast<int64_t>(sizeof(uint64_t))));
      b = message_bytes(messages.back());
    }
    parts.emplace_back(reinterpret_cast<const uint64_t*>(b.data()), words);
  }
  combine(parts);
}

core::Tensor Communicator::reduce_received(std::string_view tag,
                                           const core::Tensor& t,
                                           std::span<const std::byte> mine,
                                           ReduceOp op) {
  core::Tensor out = core::Tensor::empty(t.shape(), core::DType::kRing64);
  with_received(tag, t.numel(), mine, [&](RingParts parts) { reduce_parts(parts, op, out); });
  return out.to(t.device());
}

std::vector<core::Tensor> Communicator::all_gather(std::string_view tag, const core::Tensor& t) {
  VEIL_CHECK(!is_dealer(), "[all_gather] the dealer cannot take part in collectives (tag '{}')",
             tag);
  VEIL_CHECK(t.defined(), "[all_gather] expected a defined tensor (tag '{}')", tag);
  core::Tensor keep;
  std::span<const std::byte> staged;
  for (int p = 0; p < world_size_; ++p) {
    if (p != rank_) {
      send_tensor_once(p, tag, t, keep, staged);
    }
  }
  std::vector<core::Tensor> parts(static_cast<std::size_t>(world_size_));
  for (int p = 0; p < world_size_; ++p) {
    parts[static_cast<std::size_t>(p)] =
        p == rank_ ? (t.is_contiguous() ? t.clone() : t.contiguous())
                   : recv_tensor(p, tag, t.shape(), t.dtype(), t.device());
  }
  return parts;
}

core::Tensor Communicator::broadcast(std::string_view tag,
                                     const core::Tensor& t,
                                     int root,
                                     const core::Shape& shape,
                                     core::DType dtype,
                                     core::Device device) {
  VEIL_CHECK(!is_dealer(), "[broadcast] the dealer cannot take part in collectives (tag '{}')",
             tag);
  VEIL_CHECK(root >= 0 && root < world_size_,
             "[broadcast] root {} out of range: world_size {} (tag '{}')", root, world_size_, tag);
  if (rank_ != root) {
    return recv_tensor(root, tag, shape, dtype, device);
  }
  VEIL_CHECK(t.defined() && t.shape() == shape && t.dtype() == dtype,
             "[broadcast] root's tensor must be {} {}, got {} (tag '{}')", core::dtype_name(dtype),
             core::shape_str(shape), t.str(), tag);
  core::Tensor keep;
  std::span<const std::byte> staged;
  for (int p = 0; p < world_size_; ++p) {
    if (p != rank_) {
      send_tensor_once(p, tag, t, keep, staged);
    }
  }
  if (t.is_cuda()) {
    flush_device();
  }
  return t.is_contiguous() ? t.clone() : t.contiguous();
}

void Communicator::barrier(std::string_view tag) {
  VEIL_CHECK(!is_dealer(), "[barrier] the dealer cannot take part in collectives (tag '{}')", tag);
  for (int p = 0; p < world_size_; ++p) {
    if (p != rank_) {
      send(p, tag, {});
    }
  }
  for (int p = 0; p < world_size_; ++p) {
    if (p != rank_) {
      recv(p, tag, 0);
    }
  }
}

void Communicator::abort(const std::string& reason) noexcept {
  abort_impl(reason);
}

}  // namespace veil::comm
