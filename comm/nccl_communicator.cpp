// NcclCommunicator (comm/nccl_communicator.h). Bootstrap messages between parties carry one
// leading kind byte: kHost (the payload follows), kDevice (a u64 byte count: the payload follows
// over NCCL) or kCollective (u64 byte count and the reduce op of a device all_reduce). Messages
// with the dealer are passed through unframed.

#include "comm/nccl_communicator.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "core/error.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_nccl.h"

namespace veil::comm {

namespace kc = veil::kernels::cuda;

namespace {

enum Kind : uint8_t { kHost = 0, kDevice = 1, kCollective = 2 };

Bytes header(Kind kind, uint64_t nbytes, uint8_t op = 0) {
  Bytes b(kind == kCollective ? 10 : 9);
  b[0] = static_cast<std::byte>(kind);
  std::memcpy(b.data() + 1, &nbytes, sizeof(nbytes));
  if (kind == kCollective) {
    b[9] = static_cast<std::byte>(op);
  }
  return b;
}

uint64_t header_bytes(const Bytes& b) {
  uint64_t n = 0;
  std::memcpy(&n, b.data() + 1, sizeof(n));
  return n;
}

kc::Layout flat(int64_t n) {
  kc::Layout l;
  l.ndim = 1;
  l.shape[0] = n;
  l.stride[0] = 1;
  return l;
}

}  // namespace

struct NcclCommunicator::State {
  std::unique_ptr<kc::NcclComm> nccl;
  struct Pending {
    core::Tensor data;  // contiguous device snapshot
    int peer = 0;
  };
  std::vector<Pending> pending;
};

NcclCommunicator::NcclCommunicator(Communicator& bootstrap, const NcclOptions& options)
    : Communicator(bootstrap.rank(), bootstrap.world_size(), bootstrap.has_dealer()),
      boot_(bootstrap),
      device_(options.device),
      probe_(options.probe),
      state_(std::make_unique<State>()) {
  VEIL_CHECK(!bootstrap.is_dealer(),
             "[NcclCommunicator] the dealer has no NCCL rank; it keeps using its bootstrap "
             "communicator");
  VEIL_CHECK(options.probe.count() > 0, "[NcclCommunicator] expected a positive probe, got {} ms",
             options.probe.count());
  set_timeout(bootstrap.timeout());
  // 1. Local checks (NotCompiledError is the same on every party of one build: thrown at once).
  std::array<uint8_t, 16> uuid{};
  std::string device_error;
  try {
    uuid = kc::device_uuid(options.device);
  } catch (const NotCompiledError&) {
    throw;
  } catch (const Error& e) {
    device_error = e.what();
  }
  const bool have_nccl = kc::nccl_available();
  // 2. Every party learns every party's GPU (or that it has none usable) before anyone calls
  // NCCL, so all of them refuse alike and nobody waits for a party that will not come.
  // Record: 16 bytes of UUID, device usable, libnccl loadable.
  core::Tensor mine = core::Tensor::zeros({18}, core::DType::kUInt8);
  std::memcpy(mine.data<uint8_t>(), uuid.data(), uuid.size());
  mine.data<uint8_t>()[16] = device_error.empty() ? 1 : 0;
  mine.data<uint8_t>()[17] = have_nccl ? 1 : 0;
  const std::vector<core::Tensor> all = boot_.all_gather("nccl/setup", mine);
  if (!device_error.empty()) {
    throw kc::CudaError(device_error);
  }
  for (int p = 0; p < world_size(); ++p) {
    const uint8_t* rec = all[static_cast<std::size_t>(p)].data<uint8_t>();
    if (rec[16] == 0) {
      throw kc::CudaError(
          fmt::format("[NcclCommunicator] party {} has no usable CUDA device; no party joins", p));
    }
    for (int q = 0; q < p; ++q) {
      if (std::memcmp(rec, all[static_cast<std::size_t>(q)].data<uint8_t>(), 16) == 0) {
        throw ValueError(fmt::format(
            "[NcclCommunicator] parties {} and {} are on the same GPU; NCCL needs one GPU per "
            "party: use the in-process or gRPC communicator, which stage device tensors through "
            "pinned host memory",
            q, p));
      }
    }
  }
  for (int p = 0; p < world_size(); ++p) {
    if (all[static_cast<std::size_t>(p)].data<uint8_t>()[17] == 0) {
      throw kc::CudaError(fmt::format(
          "[NcclCommunicator] party {} cannot load libnccl.so.2 (is NCCL installed and on "
          "LD_LIBRARY_PATH?); no party joins",
          p));
    }
  }
  // 3. Rank 0's NCCL id to everyone, then the collective join.
  kc::NcclId id{};
  if (rank() == 0) {
    id = kc::nccl_make_id();
  }
  core::Tensor id_t = core::Tensor::empty({128}, core::DType::kUInt8);
  std::memcpy(id_t.data<uint8_t>(), id.data(), id.size());
  id_t = boot_.broadcast("nccl/id", rank() == 0 ? id_t : core::Tensor(), 0, {128},
                         core::DType::kUInt8);
  std::memcpy(id.data(), id_t.data<uint8_t>(), id.size());
  state_->nccl =
      std::make_unique<kc::NcclComm>(id, world_size(), rank(), options.device, timeout());
}

NcclCommunicator::~NcclCommunicator() {
  try {
    flush();
  } catch (...) {
    // the peers learn of it by their own timeout
  }
}

void NcclCommunicator::flush() {
  if (state_->pending.empty()) {
    return;
  }
  std::vector<kc::NcclComm::P2p> ops;
  for (auto& p : state_->pending) {
    ops.push_back({true, p.data.device_ptr(), p.data.nbytes(), p.peer});
  }
  state_->nccl->set_timeout(timeout());
  try {
    state_->nccl->group(ops);
  } catch (const kc::CudaError& e) {
    state_->pending.clear();
    throw CommError(e.what());
  }
  state_->pending.clear();
}

void NcclCommunicator::nccl_recv(int from, void* buf, std::size_t bytes) {
  if (bytes == 0) {
    return;
  }
  std::vector<kc::NcclComm::P2p> ops;
  for (auto& p : state_->pending) {
    ops.push_back({true, p.data.device_ptr(), p.data.nbytes(), p.peer});
  }
  ops.push_back({false, buf, bytes, from});
  state_->nccl->set_timeout(timeout());
  try {
    state_->nccl->group(ops);
  } catch (const kc::CudaError& e) {
    state_->pending.clear();
    throw CommError(e.what());
  }
  state_->pending.clear();
}

Bytes NcclCommunicator::next_message(int from,
                                     std::string_view tag,
                                     std::chrono::milliseconds timeout) {
  if (!state_->pending.empty()) {
    boot_.set_timeout(std::min(probe_, timeout));
    try {
      Bytes b = boot_.recv(from, tag);
      boot_.set_timeout(timeout);
      return b;
    } catch (const CommError& e) {
      boot_.set_timeout(timeout);
      if (std::string_view(e.what()).rfind("[recv] no data", 0) != 0) {
        throw;  // an abort or a disconnect, not the probe's timeout
      }
    } catch (...) {
      boot_.set_timeout(timeout);
      throw;
    }
    flush();  // nothing yet: the peer may be waiting for these sends
  }
  boot_.set_timeout(timeout);
  return boot_.recv(from, tag);
}

void NcclCommunicator::send_bytes(int to, std::string_view tag, std::span<const std::byte> data) {
  if (!is_party(to)) {
    boot_.send(to, tag, data);
    return;
  }
  Bytes framed(data.size() + 1);
  framed[0] = static_cast<std::byte>(kHost);
  std::ranges::copy(data, framed.begin() + 1);
  boot_.send(to, tag, framed);
}

Communicator::Message NcclCommunicator::recv_bytes(int from,
                                                   std::string_view expected_tag,
                                                   std::chrono::milliseconds timeout) {
  if (!is_party(from)) {
    boot_.set_timeout(timeout);
    return Message{std::string(expected_tag), boot_.recv(from, expected_tag), {}};
  }
  Bytes b = next_message(from, expected_tag, timeout);
  VEIL_CHECK_WITH(ProtocolError, !b.empty(), "[recv] empty frame from {} (tag '{}')",
                  peer_name(from), expected_tag);
  const auto kind = static_cast<uint8_t>(b[0]);
  if (kind == kHost) {
    return Message{std::string(expected_tag), Bytes(b.begin() + 1, b.end()), {}};
  }
  VEIL_CHECK_WITH(ProtocolError, kind == kDevice && b.size() == 9,
                  "[recv] {} entered a device collective under tag '{}' while this party "
                  "expects a message",
                  peer_name(from), expected_tag);
  const uint64_t nbytes = header_bytes(b);
  core::Tensor tmp = core::Tensor::empty({static_cast<int64_t>(nbytes)}, core::DType::kUInt8,
                                         core::Device::cuda(device_));
  if (nbytes > 0) {
    nccl_recv(from, tmp.device_ptr(), nbytes);
  }
  Bytes payload(nbytes);
  kc::copy_to_host(payload.data(), tmp.device_ptr(), nbytes, device_);
  return Message{std::string(expected_tag), std::move(payload), {}};
}

void NcclCommunicator::abort_impl(const std::string& reason) noexcept {
  if (state_ && state_->nccl) {
    state_->nccl->request_abort();
  }
  boot_.abort(reason);
}

bool NcclCommunicator::send_device(int to, std::string_view tag, const core::Tensor& t) {
  if (!is_party(to) || t.device() != core::Device::cuda(device_)) {
    return false;  // the dealer, or a tensor on another GPU: staged through the host
  }
  // A snapshot: the caller may overwrite t before the NCCL send is posted.
  core::Tensor snap = t.is_contiguous() ? t.clone() : t.contiguous();
  boot_.send(to, tag, header(kDevice, snap.nbytes()));
  if (snap.nbytes() > 0) {
    state_->pending.push_back({std::move(snap), to});
  }
  return true;
}

bool NcclCommunicator::recv_device(int from, std::string_view tag, core::Tensor& out) {
  if (!is_party(from) || out.device() != core::Device::cuda(device_)) {
    return false;
  }
  const Bytes b = next_message(from, tag, timeout());
  VEIL_CHECK_WITH(ProtocolError, !b.empty(), "[recv] empty frame from {} (tag '{}')",
                  peer_name(from), tag);
  const auto kind = static_cast<uint8_t>(b[0]);
  VEIL_CHECK_WITH(ProtocolError, kind == kHost || (kind == kDevice && b.size() == 9),
                  "[recv] {} entered a device collective under tag '{}' while this party "
                  "expects a message",
                  peer_name(from), tag);
  const uint64_t got = kind == kHost ? b.size() - 1 : header_bytes(b);
  VEIL_CHECK_WITH(ProtocolError, got == out.nbytes(),
                  "[recv] expected {} bytes under tag '{}' from {}, got {}", out.nbytes(), tag,
                  peer_name(from), got);
  if (kind == kHost) {
    kc::copy_to_device(out.device_ptr(), b.data() + 1, got, device_);
  } else {
    nccl_recv(from, out.device_ptr(), got);
  }
  return true;
}

bool NcclCommunicator::all_reduce_device(std::string_view tag, core::Tensor& inout, ReduceOp op) {
  if (inout.device() != core::Device::cuda(device_)) {
    return false;
  }
  flush();
  const uint64_t nbytes = inout.nbytes();
  const Bytes mine = header(kCollective, nbytes, static_cast<uint8_t>(op));
  for (int p = 0; p < world_size(); ++p) {
    if (p != rank()) {
      boot_.send(p, tag, mine);
    }
  }
  for (int p = 0; p < world_size(); ++p) {
    if (p == rank()) {
      continue;
    }
    const Bytes b = next_message(p, tag, timeout());
    VEIL_CHECK_WITH(ProtocolError, b.size() == mine.size() && b[0] == mine[0],
                    "[all_reduce] {} did not pass a tensor on its GPU under tag '{}'; with "
                    "NcclCommunicator every party's all_reduce operand must be on its GPU or "
                    "every one in host memory",
                    peer_name(p), tag);
    VEIL_CHECK_WITH(ProtocolError, b == mine,
                    "[all_reduce] {} reduces {} bytes (op {}) under tag '{}', this party {} "
                    "(op {})",
                    peer_name(p), header_bytes(b), static_cast<int>(b[9]), tag, nbytes,
                    static_cast<int>(op));
  }
  const int64_t n = inout.numel();
  if (n == 0) {
    return true;
  }
  state_->nccl->set_timeout(timeout());
  try {
    if (op == ReduceOp::kSum) {
      state_->nccl->all_reduce_sum_u64(inout.device_data<uint64_t>(), n);
      return true;
    }
    // XOR (no NCCL op): every party's part to every other, then XORed on the device.
    core::Tensor parts = core::Tensor::empty({world_size() - 1, n}, core::DType::kRing64,
                                             core::Device::cuda(device_));
    std::vector<kc::NcclComm::P2p> ops;
    int row = 0;
    for (int p = 0; p < world_size(); ++p) {
      if (p == rank()) {
        continue;
      }
      ops.push_back({true, inout.device_ptr(), nbytes, p});
      ops.push_back({false, parts.device_data<uint64_t>() + row * n, nbytes, p});
      ++row;
    }
    state_->nccl->group(ops);
    for (int r = 0; r < row; ++r) {
      kc::binary(kc::BinaryOp::kXor, kc::Elem::kU64, n, inout.device_ptr(), flat(n),
                 parts.device_data<uint64_t>() + r * n, flat(n), inout.device_ptr(), device_);
    }
  } catch (const kc::CudaError& e) {
    throw CommError(e.what());
  }
  return true;
}

}  // namespace veil::comm
