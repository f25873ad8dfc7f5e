#include "crypto/providers/correlations.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

#include "core/ops.h"
#include "core/parallel.h"
#include "crypto/wire.h"
#include "kernels/cpu/ring_blocks.h"

namespace veil::crypto {

namespace {
using Kind = CorrelationRequest::Kind;

core::Tensor ring_sum(const std::vector<std::vector<core::Tensor>>& draws, std::size_t k) {
  core::Tensor acc = draws[0][k].clone();
  for (std::size_t j = 1; j < draws.size(); ++j) {
    core::add_(acc, draws[j][k]);
  }
  return acc;
}

core::Tensor xor_sum(const std::vector<std::vector<core::Tensor>>& draws, std::size_t k) {
  core::Tensor acc = draws[0][k];
  for (std::size_t j = 1; j < draws.size(); ++j) {
    acc = core::bitwise_xor(acc, draws[j][k]);
  }
  return acc;
}

// target - sum_{j != 0} draws[j][k]
core::Tensor minus_others(core::Tensor target,
                          const std::vector<std::vector<core::Tensor>>& draws,
                          std::size_t k) {
  for (std::size_t j = 1; j < draws.size(); ++j) {
    core::sub_(target, draws[j][k]);
  }
  return target;
}
}  // namespace

std::string CorrelationRequest::str() const {
  switch (kind) {
    case Kind::kBeaver:
      return fmt::format("beaver({})", op.str());
    case Kind::kBinaryTriple:
      return fmt::format("binary_triple({})", core::shape_str(shape));
    case Kind::kTruncPair:
      return fmt::format("trunc_pair({}, {} bits)", core::shape_str(shape), bits);
    case Kind::kRandomBits:
      return fmt::format("random_bits({})", core::shape_str(shape));
    case Kind::kShutdown:
      return "shutdown";
    case Kind::kCircuit:
      return fmt::format("circuit({}, {})", circuit.str(), core::shape_str(shape));
  }
  return "?";
}

core::Shape CorrelationRequest::correction_shape() const {
  if (kind == Kind::kCircuit) {
    return {CircuitLayout(circuit, shape.empty() ? 0 : shape[0]).corrected_words};
  }
  return kind == Kind::kBeaver ? op.out_shape() : shape;
}

std::size_t correction_index(const CorrelationRequest& req) {
  return req.kind == Kind::kBeaver || req.kind == Kind::kBinaryTriple ? 2 : 1;
}

std::vector<std::byte> CorrelationRequest::serialize() const {
  WireWriter w;
  w.u64(static_cast<uint64_t>(kind));
  if (kind == Kind::kBeaver) {
    w.append(op.serialize());
  } else if (kind == Kind::kCircuit) {
    w.u64(static_cast<uint64_t>(circuit.kind));
    w.u64(static_cast<uint64_t>(circuit.width));
    w.u64((circuit.inject ? 1U : 0U) | (circuit.times_masked ? 2U : 0U));
    w.u64(static_cast<uint64_t>(circuit.extras));
    w.shape(shape);
  } else {
    w.u64(static_cast<uint64_t>(bits));
    w.shape(shape);
  }
  return w.take();
}

CorrelationRequest CorrelationRequest::deserialize(std::span<const std::byte> bytes) {
  WireReader r(bytes, "dealer");
  const uint64_t k = r.u64();
  VEIL_CHECK_WITH(ProtocolError, k <= static_cast<uint64_t>(Kind::kCircuit),
                  "[dealer] unknown correlation kind {}", k);
  CorrelationRequest req;
  req.kind = static_cast<Kind>(k);
  if (req.kind == Kind::kBeaver) {
    req.op = BilinearOp::deserialize(r.rest());
    return req;
  }
  if (req.kind == Kind::kCircuit) {
    const uint64_t ck = r.u64();
    const uint64_t width = r.u64();
    const uint64_t flags = r.u64();
    const uint64_t extras = r.u64();
    VEIL_CHECK_WITH(
        ProtocolError,
        ck <= static_cast<uint64_t>(CircuitKind::kAnd) && width <= 64 && flags <= 3 && extras <= 64,
        "[dealer] malformed circuit request (kind {}, width {}, flags {}, extras {})", ck, width,
        flags, extras);
    req.circuit.kind = static_cast<CircuitKind>(ck);
    req.circuit.width = static_cast<int>(width);
    req.circuit.inject = (flags & 1U) != 0;
    req.circuit.times_masked = (flags & 2U) != 0;
    req.circuit.extras = static_cast<int>(extras);
    req.shape = r.shape();
    r.finish();
    VEIL_CHECK_WITH(ProtocolError, req.shape.size() == 1,
                    "[dealer] a circuit request needs a 1-d shape, got {}",
                    core::shape_str(req.shape));
    try {
      req.circuit.validate();
    } catch (const ValueError& e) {
      throw ProtocolError(fmt::format("[dealer] malformed circuit request: {}", e.what()));
    }
    return req;
  }
  const uint64_t bits = r.u64();
  VEIL_CHECK_WITH(ProtocolError, bits < 64, "[dealer] bad truncation width {}", bits);
  req.bits = static_cast<int>(bits);
  req.shape = r.shape();
  r.finish();
  return req;
}

std::vector<core::Tensor> draw_correlation(const CorrelationRequest& req,
                                           Prg& prg,
                                           int rank,
                                           core::Device device) {
  VEIL_INTERNAL_ASSERT(device == core::Device::cpu() || req.kind == Kind::kBeaver ||
                           req.kind == Kind::kTruncPair || req.kind == Kind::kCircuit,
                       "draw_correlation: binary triples and random bits are drawn on the CPU");
  std::vector<core::Tensor> out;
  switch (req.kind) {
    case Kind::kBeaver:
      // a square pair draws no b: its b is its a (undefined here)
      out.push_back(prg.ring(req.op.x_shape, device));
      out.push_back(req.op.is_square() ? core::Tensor() : prg.ring(req.op.y_shape, device));
      out.push_back(rank == 0 ? core::Tensor() : prg.ring(req.op.out_shape(), device));
      break;
    case Kind::kBinaryTriple:
      out.push_back(prg.ring(req.shape));
      out.push_back(prg.ring(req.shape));
      out.push_back(rank == 0 ? core::Tensor() : prg.ring(req.shape));
      break;
    case Kind::kTruncPair:
      out.push_back(prg.ring(req.shape, device));
      out.push_back(rank == 0 ? core::Tensor() : prg.ring(req.shape, device));
      break;
    case Kind::kRandomBits: {
      core::Tensor rb = prg.ring(req.shape);
      uint64_t* p = rb.data<uint64_t>();
      for (int64_t i = 0; i < rb.numel(); ++i) {
        p[i] &= 1U;
      }
      out.push_back(rb);
      out.push_back(rank == 0 ? core::Tensor() : prg.ring(req.shape));
      break;
    }
    case Kind::kCircuit: {
      const CircuitLayout lay(req.circuit, req.shape[0]);
      out.push_back(prg.ring({lay.random_words}, device));
      out.push_back(rank == 0 ? core::Tensor() : prg.ring({lay.corrected_words}, device));
      break;
    }
    case Kind::kShutdown:
      break;
  }
  return out;
}

bool is_streamable_mul(const CorrelationRequest& req) {
  return req.kind == Kind::kBeaver && req.op.is_elementwise();
}

core::Tensor streamed_mul_correction(
    int64_t n, const std::vector<Prg*>& prgs, const uint64_t* a0, const uint64_t* b0, bool square) {
  VEIL_INTERNAL_ASSERT(
      !prgs.empty() && (prgs[0] != nullptr || (a0 != nullptr && (square || b0 != nullptr))),
      "streamed_mul_correction: party 0's a and b");
  const std::size_t parties = prgs.size();
  const auto un = static_cast<uint64_t>(n);
  std::vector<uint64_t> start(parties, 0);
  for (std::size_t j = 0; j < parties; ++j) {
    VEIL_INTERNAL_ASSERT(j == 0 || prgs[j] != nullptr, "streamed_mul_correction: party draws");
    if (prgs[j] != nullptr) {
      start[j] = prgs[j]->position();
    }
  }
  // Party j's stream: a at start, b at start + 8n (not for a square), and (j >= 1) c after them.
  // Each range of elements reads its part of every stream through its own forks (Prg::fork_at),
  // so the ranges run in parallel.
  const uint64_t c_component = square ? 1 : 2;
  core::Tensor out = core::Tensor::empty({n}, core::DType::kRing64);
  uint64_t* po = out.data<uint64_t>();
  core::parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
    auto fork = [&](std::size_t j, uint64_t component) {
      return prgs[j]->fork_at(start[j] + 8 * (component * un + static_cast<uint64_t>(lo)));
    };
    std::vector<std::array<std::optional<Prg>, 3>> readers(parties);
    for (std::size_t j = 0; j < parties; ++j) {
      if (prgs[j] == nullptr) {
        continue;
      }
      readers[j][0].emplace(fork(j, 0));
      if (!square) {
        readers[j][1].emplace(fork(j, 1));
      }
      if (j >= 1) {
        readers[j][2].emplace(fork(j, c_component));
      }
    }
    constexpr int64_t kChunk = 2048;  // 3 x 16 KiB of scratch: stays in L1/L2
    std::vector<uint64_t> sa_buf(kChunk);
    std::vector<uint64_t> sb_buf(kChunk);
    std::vector<uint64_t> tmp_buf(kChunk);
    uint64_t* sa = sa_buf.data();
    uint64_t* sb = sb_buf.data();
    uint64_t* tmp = tmp_buf.data();
    for (int64_t at = lo; at < hi; at += kChunk) {
      const int64_t m = std::min(kChunk, hi - at);
      const auto um = static_cast<std::size_t>(m);
      if (prgs[0] == nullptr) {
        std::copy(a0 + at, a0 + at + m, sa);
        if (!square) {
          std::copy(b0 + at, b0 + at + m, sb);
        }
      } else {
        readers[0][0]->fill_ring(sa, um);
        if (!square) {
          readers[0][1]->fill_ring(sb, um);
        }
      }
      for (std::size_t j = 1; j < parties; ++j) {
        readers[j][0]->fill_ring(tmp, um);
        kernels::cpu::ring_add(m, sa, tmp, sa);
        if (!square) {
          readers[j][1]->fill_ring(tmp, um);
          kernels::cpu::ring_add(m, sb, tmp, sb);
        }
      }
      kernels::cpu::ring_mul(m, sa, square ? sa : sb, po + at);
      for (std::size_t j = 1; j < parties; ++j) {
        readers[j][2]->fill_ring(tmp, um);
        kernels::cpu::ring_sub(m, po + at, tmp, po + at);
      }
    }
  });
  for (std::size_t j = 0; j < parties; ++j) {
    if (prgs[j] != nullptr) {
      prgs[j]->seek(start[j] + 8 * (c_component + (j == 0 ? 0 : 1)) * un);
    }
  }
  return out;
}

core::Tensor correlation_correction(const CorrelationRequest& req,
                                    const std::vector<std::vector<core::Tensor>>& draws) {
  switch (req.kind) {
    case Kind::kBeaver: {
      const core::Tensor a = ring_sum(draws, 0);
      const core::Tensor c = req.op.apply(a, req.op.is_square() ? a : ring_sum(draws, 1));
      return minus_others(c, draws, 2);
    }
    case Kind::kBinaryTriple: {
      core::Tensor c = core::bitwise_and(xor_sum(draws, 0), xor_sum(draws, 1));
      for (std::size_t j = 1; j < draws.size(); ++j) {
        c = core::bitwise_xor(c, draws[j][2]);
      }
      return c;
    }
    case Kind::kTruncPair:
      return minus_others(core::shift_right_arith(ring_sum(draws, 0), req.bits), draws, 1);
    case Kind::kRandomBits:
      return minus_others(xor_sum(draws, 0).clone(), draws, 1);
    case Kind::kCircuit:
      return circuit_correction(req.circuit, req.shape[0], draws);
    case Kind::kShutdown:
      break;
  }
  throw InternalError("[dealer] no correction for a shutdown request");
}

}  // namespace veil::crypto
