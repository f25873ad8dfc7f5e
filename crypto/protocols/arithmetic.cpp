#include "crypto/protocols/arithmetic.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <optional>
#include <utility>

#include "core/elementwise.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "kernels/cpu/ring_blocks.h"
#include "kernels/cuda/elementwise_ops.h"
#include "kernels/cuda_backend.h"

namespace veil::crypto {

namespace {

void check_same_frac(const AShare& x, const AShare& y, const char* op) {
  VEIL_CHECK(x.frac_bits == y.frac_bits,
             "[{}] expected operands with equal frac_bits, got {} and {}", op, x.frac_bits,
             y.frac_bits);
}

void check_defined(const AShare& x, const char* op) {
  VEIL_CHECK(x.data.defined() && x.data.dtype() == core::DType::kRing64,
             "[{}] expected a ring64 share, got {}", op, x.data.str());
}

core::Tensor encode_public(Party& p, const core::Tensor& c, int frac_bits, const char* op) {
  VEIL_CHECK(c.dtype() == core::DType::kFloat64 || c.dtype() == core::DType::kFloat32,
             "[{}] expected a float public operand, got {}", op, c.str());
  if (frac_bits == p.frac_bits()) {
    return p.encoder().encode(c, op);
  }
  return FixedPointEncoder(frac_bits).encode(c, op);
}

}  // namespace

core::Tensor zero_share(Party& p, const core::Shape& shape) {
  core::Tensor z = p.next_prg().ring(shape, p.device());
  core::sub_(z, p.prev_prg().ring(shape, p.device()));
  return z;
}

AShare share_ring(
    Party& p, const core::Tensor& x, int src, const core::Shape& shape, int frac_bits) {
  VEIL_CHECK(src >= 0 && src < p.world_size(), "[share] source party {} out of range [0, {})", src,
             p.world_size());
  AShare out{zero_share(p, shape), frac_bits};
  if (p.rank() == src) {
    VEIL_CHECK(x.defined() && x.shape() == shape && x.dtype() == core::DType::kRing64,
               "[share] the source party's input must be ring64 of shape {}, got {}",
               core::shape_str(shape), x.str());
    core::add_(out.data, x.to(out.data.device()));
  }
  return out;
}

AShare share(Party& p, const core::Tensor& x, int src, const core::Shape& shape) {
  core::Tensor enc;
  if (p.rank() == src) {
    VEIL_CHECK(x.defined() && x.shape() == shape,
               "[share] the source party's input must have shape {}, got {}",
               core::shape_str(shape), x.str());
    enc = p.encoder().encode(x, "share");
  }
  return share_ring(p, enc, src, shape, p.frac_bits());
}

core::Tensor reveal(Party& p, const AShare& x) {
  check_defined(x, "reveal");
  return p.comm().all_reduce(p.next_tag("reveal"), x.data, comm::ReduceOp::kSum);
}

core::Tensor reveal_to(Party& p, const AShare& x, int dst) {
  check_defined(x, "reveal_to");
  VEIL_CHECK(dst >= 0 && dst < p.world_size(), "[reveal_to] party {} out of range [0, {})", dst,
             p.world_size());
  const std::string tag = p.next_tag("reveal_to");
  if (p.rank() != dst) {
    p.comm().send_tensor(dst, tag, x.data);
    return {};
  }
  core::Tensor acc = x.data.clone();
  for (int j = 0; j < p.world_size(); ++j) {
    if (j != dst) {
      core::add_(acc, p.comm().recv_tensor(j, tag, x.shape(), core::DType::kRing64, acc.device()));
    }
  }
  return acc;
}

core::Tensor reveal_float(Party& p, const AShare& x) {
  return FixedPointEncoder(x.frac_bits).decode(reveal(p, x).to(core::Device::cpu()));
}

AShare add(const AShare& x, const AShare& y) {
  check_same_frac(x, y, "add");
  return {core::add(x.data, y.data), x.frac_bits};
}

AShare sub(const AShare& x, const AShare& y) {
  check_same_frac(x, y, "sub");
  return {core::sub(x.data, y.data), x.frac_bits};
}

AShare neg(const AShare& x) {
  return {core::neg(x.data), x.frac_bits};
}

AShare add_public(Party& p, const AShare& x, const core::Tensor& c) {
  VEIL_CHECK(c.dtype() == core::DType::kRing64, "[add_public] expected a ring64 public, got {}",
             c.str());
  if (p.rank() != 0) {
    // keep the broadcast shape identical on every party
    const core::Shape shape = core::broadcast_shapes(x.shape(), c.shape(), "add_public");
    return {shape == x.shape() ? x.data : x.data.expand(shape).contiguous(), x.frac_bits};
  }
  return {core::add(x.data, c.to(x.data.device())), x.frac_bits};
}

AShare add_public(Party& p, const AShare& x, double c) {
  const uint64_t enc = FixedPointEncoder(x.frac_bits).encode_scalar(c, "add_public");
  if (p.rank() != 0) {
    return x;
  }
  return {core::add_scalar(x.data, enc), x.frac_bits};
}

AShare mul_public_int(const AShare& x, int64_t c) {
  return {core::mul_scalar(x.data, static_cast<uint64_t>(c)), x.frac_bits};
}

AShare mul_public_raw(const AShare& x, const core::Tensor& c, int c_frac) {
  VEIL_CHECK(c.dtype() == core::DType::kRing64, "[mul_public] expected a ring64 public, got {}",
             c.str());
  return {core::mul(x.data, c.to(x.data.device())), x.frac_bits + c_frac};
}

AShare mul_public(Party& p, const AShare& x, const core::Tensor& c_float) {
  const core::Tensor c = encode_public(p, c_float, p.frac_bits(), "mul_public");
  return rescale(p, mul_public_raw(x, c, p.frac_bits()), std::max(x.frac_bits, p.frac_bits()));
}

AShare mul_public(Party& p, const AShare& x, double c) {
  const uint64_t enc = p.encoder().encode_scalar(c, "mul_public");
  AShare raw{core::mul_scalar(x.data, enc), x.frac_bits + p.frac_bits()};
  return rescale(p, raw, std::max(x.frac_bits, p.frac_bits()));
}

AShare matmul_public(Party& p, const AShare& x, const core::Tensor& c_float) {
  const core::Tensor c = encode_public(p, c_float, p.frac_bits(), "matmul_public");
  AShare raw{core::matmul(x.data, c.to(x.data.device())), x.frac_bits + p.frac_bits()};
  return rescale(p, raw, std::max(x.frac_bits, p.frac_bits()));
}

AShare matmul_public_left(Party& p, const core::Tensor& c_float, const AShare& x) {
  const core::Tensor c = encode_public(p, c_float, p.frac_bits(), "matmul_public");
  AShare raw{core::matmul(c.to(x.data.device()), x.data), x.frac_bits + p.frac_bits()};
  return rescale(p, raw, std::max(x.frac_bits, p.frac_bits()));
}

AShare constant_share(Party& p, const core::Shape& shape, double c, int frac_bits) {
  const uint64_t enc = FixedPointEncoder(frac_bits).encode_scalar(c, "constant");
  return {p.rank() == 0 ? core::Tensor::full<uint64_t>(shape, enc, p.device())
                        : core::Tensor::zeros(shape, core::DType::kRing64, p.device()),
          frac_bits};
}

AShare one_minus(Party& p, const AShare& b) {
  return add_public(p, neg(b), 1.0);
}

AShare sum(const AShare& x, int64_t dim, bool keepdim) {
  return {core::sum(x.data, dim, keepdim), x.frac_bits};
}

namespace {

// Shares, masks and triples of one protocol step must live on one device (the party's).
void check_one_device(std::initializer_list<const core::Tensor*> ts, const char* op) {
  const core::Device dev = (*ts.begin())->device();
  for (const core::Tensor* t : ts) {
    VEIL_CHECK(t->device() == dev,
               "[{}] expected every operand and triple on one device, got {} and {}", op,
               (*ts.begin())->str(), t->str());
  }
}

// The elementwise (same-shape) Beaver output of a GPU party, z = c + e (b + [first] d) + a d
// (then the 2-party local truncation by trunc_bits), in one kernel over the five operands.
core::Tensor elementwise_beaver_output_cuda(bool first,
                                            const core::Tensor& e,
                                            const core::Tensor& d,
                                            const BeaverTriple& t,
                                            int trunc_bits) {
  const core::Tensor ec = e.contiguous();
  const core::Tensor dc = d.contiguous();
  const core::Tensor ac = t.a.contiguous();
  const core::Tensor bc = t.b.contiguous();
  const core::Tensor cc = t.c.contiguous();
  core::Tensor z = core::Tensor::empty(e.shape(), core::DType::kRing64, e.device());
  check_one_device({&ec, &dc, &ac, &bc, &cc, &z}, "beaver");
  kernels::cuda::beaver_output(z.numel(), first, ec.device_data<uint64_t>(),
                               dc.device_data<uint64_t>(), ac.device_data<uint64_t>(),
                               bc.device_data<uint64_t>(), cc.device_data<uint64_t>(), trunc_bits,
                               z.device_data<uint64_t>(), z.device().index);
  return z;
}

// out[j] = the sum over the parties' parts of word o + j, j < len.
void sum_parts(comm::Communicator::RingParts parts, int64_t o, int64_t len, uint64_t* out) {
  const uint64_t* p0 = parts[0].data() + o;
  if (parts.size() == 1) {
    std::copy(p0, p0 + len, out);
    return;
  }
  kernels::cpu::ring_add(len, p0, parts[1].data() + o, out);
  for (std::size_t k = 2; k < parts.size(); ++k) {
    kernels::cpu::ring_add(len, out, parts[k].data() + o, out);
  }
}

// The opened value at words [o, o + numel(shape)) of the parts: their sum, as a host tensor.
core::Tensor opened_from_parts(comm::Communicator::RingParts parts,
                               int64_t o,
                               const core::Shape& shape) {
  core::Tensor t = core::Tensor::empty(shape, core::DType::kRing64);
  uint64_t* pt = t.data<uint64_t>();
  core::parallel_for(0, t.numel(), 1 << 15,
                     [&](int64_t lo, int64_t hi) { sum_parts(parts, o + lo, hi - lo, pt + lo); });
  return t;
}

// Elements per block of a host party's fused Beaver passes: 5 x 4 KiB of opened words and
// triple words stay in L1.
constexpr int64_t kBlock = 512;

// One component (a, b or c) of a host party's elementwise triple, read block by block from
// element `lo` on: from memory (`data`), or drawn from the keystream at byte `at` of `stream`
// into a block of scratch (StreamedTriple: the same words, never written to memory).
class ComponentBlocks {
 public:
  ComponentBlocks(const uint64_t* data, const Prg* stream, uint64_t at, int64_t lo) : data_(data) {
    if (data_ == nullptr) {
      fork_.emplace(stream->fork_at(at + 8 * static_cast<uint64_t>(lo)));
    }
  }
  // Words [j0, j0 + len) of the component, len <= kBlock; successive calls continue where the
  // last one ended.
  const uint64_t* next(int64_t j0, int64_t len) {
    if (data_ != nullptr) {
      return data_ + j0;
    }
    fork_->fill_ring(buf_.data(), static_cast<std::size_t>(len));
    return buf_.data();
  }

 private:
  const uint64_t* data_;
  std::optional<Prg> fork_;
  std::array<uint64_t, kBlock> buf_{};
};

// A host party's elementwise triple: tensors from Provider::beaver, or a StreamedTriple.
struct HostTriple {
  const uint64_t* a = nullptr;  // all three null for a streamed triple
  const uint64_t* b = nullptr;
  const uint64_t* c = nullptr;
  const StreamedTriple* streamed = nullptr;

  ComponentBlocks a_blocks(int64_t lo) const {
    return {a, stream(), at(&StreamedTriple::a_at), lo};
  }
  ComponentBlocks b_blocks(int64_t lo) const {
    return {b, stream(), at(&StreamedTriple::b_at), lo};
  }
  ComponentBlocks c_blocks(int64_t lo) const {
    const uint64_t* data =
        streamed != nullptr && streamed->c.defined() ? streamed->c.data<uint64_t>() : c;
    return {data, stream(), at(&StreamedTriple::c_at), lo};
  }

 private:
  const Prg* stream() const { return streamed != nullptr ? &streamed->stream : nullptr; }
  uint64_t at(uint64_t StreamedTriple::*field) const {
    return streamed != nullptr ? streamed->*field : 0;
  }
};

// v - a (or v - b: `right`) of a host party's operand into `out`, the mask read block by block.
void mask_host(const core::Tensor& v, const HostTriple& t, bool right, uint64_t* out) {
  const core::Tensor vc = v.contiguous();
  const uint64_t* pv = vc.data<uint64_t>();
  core::parallel_for(0, vc.numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
    ComponentBlocks mask = right ? t.b_blocks(lo) : t.a_blocks(lo);
    for (int64_t j0 = lo; j0 < hi; j0 += kBlock) {
      const int64_t len = std::min(kBlock, hi - j0);
      kernels::cpu::ring_sub(len, pv + j0, mask.next(j0, len), out + j0);
    }
  });
}

// The elementwise Beaver output of a host party, z = c + e (b + [first] d) + a d, then the
// 2-party local truncation of truncate() by trunc_bits (the GPU kernel's element function,
// kernels::cuda::ops::beaver_elem), with the opened e and d summed from the parties' parts (words
// [oe, oe + n) and [od, od + n)) block by block on the stack: one pass over the parts, the triple
// and z, where reducing first would write the opened values and read them back.
core::Tensor elementwise_beaver_output(bool first,
                                       comm::Communicator::RingParts parts,
                                       int64_t oe,
                                       int64_t od,
                                       const core::Shape& shape,
                                       const HostTriple& t,
                                       int trunc_bits) {
  const bool square = t.streamed != nullptr ? t.streamed->square : t.a == t.b;
  core::Tensor z = core::Tensor::empty(shape, core::DType::kRing64);
  uint64_t* pz = z.data<uint64_t>();
  core::parallel_for(0, z.numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
    std::array<uint64_t, kBlock> e{};
    std::array<uint64_t, kBlock> d{};
    ComponentBlocks a_blocks = t.a_blocks(lo);
    std::optional<ComponentBlocks> b_blocks;
    if (!square) {
      b_blocks.emplace(t.b_blocks(lo));
    }
    ComponentBlocks c_blocks = t.c_blocks(lo);
    for (int64_t j0 = lo; j0 < hi; j0 += kBlock) {
      const int64_t len = std::min(kBlock, hi - j0);
      sum_parts(parts, oe + j0, len, e.data());
      sum_parts(parts, od + j0, len, d.data());
      const uint64_t* pa = a_blocks.next(j0, len);
      const uint64_t* pb = square ? pa : b_blocks->next(j0, len);
      const uint64_t* pc = c_blocks.next(j0, len);
      kernels::cpu::beaver_output(len, first, e.data(), d.data(), pa, pb, pc, trunc_bits, pz + j0);
    }
  });
  return z;
}

}  // namespace

std::vector<AShare> beaver_batch(Party& p,
                                 const std::vector<BilinearOp>& ops,
                                 const std::vector<AShare>& xs,
                                 const std::vector<AShare>& ys) {
  return beaver_batch_rescaled(p, ops, xs, ys, {});
}

std::vector<AShare> beaver_batch_rescaled(Party& p,
                                          const std::vector<BilinearOp>& ops,
                                          const std::vector<AShare>& xs,
                                          const std::vector<AShare>& ys,
                                          const std::vector<int>& rescale_to) {
  VEIL_INTERNAL_ASSERT(ops.size() == xs.size() && ops.size() == ys.size() &&
                           (rescale_to.empty() || rescale_to.size() == ops.size()),
                       "beaver_batch sizes");
  const std::size_t m = ops.size();
  std::vector<BeaverTriple> triples;
  triples.reserve(m);
  // an elementwise product of host operands keeps its triple in the keystream when the provider
  // can (StreamedTriple); hosts[i] reads either kind block by block
  std::vector<std::optional<StreamedTriple>> streamed(m);
  int64_t total = 0;
  for (std::size_t i = 0; i < m; ++i) {
    check_defined(xs[i], ops[i].name());
    check_defined(ys[i], ops[i].name());
    VEIL_CHECK(xs[i].shape() == ops[i].x_shape && ys[i].shape() == ops[i].y_shape,
               "[{}] operands {} and {} do not match {}", ops[i].name(),
               core::shape_str(xs[i].shape()), core::shape_str(ys[i].shape()), ops[i].str());
    // a square's right operand is its left one: only x - a is opened
    VEIL_INTERNAL_ASSERT(!ops[i].is_square() || (xs[i].data.shares_storage_with(ys[i].data) &&
                                                 xs[i].frac_bits == ys[i].frac_bits),
                         "square of two different operands");
    total += xs[i].numel() + (ops[i].is_square() ? 0 : ys[i].numel());
    const core::Device d = xs[i].data.device();
    if (ops[i].is_elementwise() && !d.is_cuda() && !ys[i].data.is_cuda()) {
      streamed[i] = p.provider().streamed_beaver(ops[i]);
      if (streamed[i]) {
        triples.emplace_back();
        continue;
      }
    }
    BeaverTriple t = p.provider().beaver(ops[i]);
    // a GPU party's triples are drawn on its GPU; operands held on another device (a mixed
    // call) get copies there (no communication)
    if (t.a.device() != d) {
      t.a = t.a.to(d);
      t.b = ops[i].is_square() ? t.a : t.b.to(d);
      t.c = t.c.to(d);
    }
    triples.push_back(std::move(t));
  }
  std::vector<HostTriple> hosts(m);
  for (std::size_t i = 0; i < m; ++i) {
    if (streamed[i]) {
      hosts[i].streamed = &*streamed[i];
    } else if (!triples[i].a.is_cuda()) {
      triples[i].a = triples[i].a.contiguous();
      triples[i].b = ops[i].is_square() ? triples[i].a : triples[i].b.contiguous();
      triples[i].c = triples[i].c.contiguous();
      hosts[i].a = triples[i].a.data<uint64_t>();
      hosts[i].b = triples[i].b.data<uint64_t>();
      hosts[i].c = triples[i].c.data<uint64_t>();
    }
  }
  // Masked operands of every product, packed into one message: [e_0, d_0, e_1, d_1, ...].
  const core::Device device = m == 0 ? core::Device::cpu() : xs[0].data.device();
  core::Tensor masked = core::Tensor::empty({total}, core::DType::kRing64, device);
  uint64_t* out = masked.device_data<uint64_t>();
  auto pack = [&out](const core::Tensor& v, const core::Tensor& mask, const HostTriple& host,
                     bool right) {
    if (v.is_cuda()) {
      const core::Tensor vc = v.contiguous();
      check_one_device({&vc, &mask}, "beaver");
      kernels::cuda::ring_mask(vc.numel(), vc.device_data<uint64_t>(), mask.device_data<uint64_t>(),
                               out, vc.device().index);
    } else {
      mask_host(v, host, right, out);
    }
    out += v.numel();
  };
  for (std::size_t i = 0; i < m; ++i) {
    pack(xs[i].data, triples[i].a, hosts[i], false);
    if (!ops[i].is_square()) {
      pack(ys[i].data, triples[i].b, hosts[i], true);
    }
  }
  const std::string tag = p.next_tag(m == 1 ? ops[0].name() : "beaver_batch");
  // frac_bits of each product before and after; with 2 parties an elementwise product's local
  // truncation is folded into its output pass
  std::vector<int> frac(m);
  std::vector<int> fused(m, 0);
  for (std::size_t i = 0; i < m; ++i) {
    frac[i] = xs[i].frac_bits + ys[i].frac_bits;
    const int target = rescale_to.empty() ? frac[i] : rescale_to[i];
    VEIL_CHECK(target <= frac[i], "[rescale] cannot raise frac_bits from {} to {}", frac[i],
               target);
    if (ops[i].is_elementwise() && p.world_size() == 2) {
      fused[i] = frac[i] - target;
    }
  }
  // The opened e = x - a and d = y - b of each product (d is e for a square), or, for a host
  // party's elementwise product, its output z already, computed from the parties' parts directly.
  std::vector<core::Tensor> es(m);
  std::vector<core::Tensor> ds(m);
  std::vector<core::Tensor> zs(m);
  if (masked.is_cuda()) {
    const core::Tensor opened = p.comm().all_reduce(tag, std::move(masked), comm::ReduceOp::kSum);
    int64_t at = 0;
    for (std::size_t i = 0; i < m; ++i) {
      es[i] = opened.slice(0, at, at + xs[i].numel()).reshape(ops[i].x_shape);
      at += xs[i].numel();
      ds[i] = es[i];
      if (!ops[i].is_square()) {
        ds[i] = opened.slice(0, at, at + ys[i].numel()).reshape(ops[i].y_shape);
        at += ys[i].numel();
      }
    }
  } else {
    p.comm().all_reduce_with(tag, std::move(masked), [&](comm::Communicator::RingParts parts) {
      int64_t at = 0;
      for (std::size_t i = 0; i < m; ++i) {
        const int64_t oe = at;
        at += xs[i].numel();
        int64_t od = oe;
        if (!ops[i].is_square()) {
          od = at;
          at += ys[i].numel();
        }
        if (ops[i].is_elementwise()) {
          zs[i] = elementwise_beaver_output(p.rank() == 0, parts, oe, od, ops[i].x_shape, hosts[i],
                                            fused[i]);
          continue;
        }
        es[i] = opened_from_parts(parts, oe, ops[i].x_shape);
        ds[i] = ops[i].is_square() ? es[i] : opened_from_parts(parts, od, ops[i].y_shape);
      }
    });
  }
  std::vector<AShare> result;
  result.reserve(m);
  for (std::size_t i = 0; i < m; ++i) {
    const int target = rescale_to.empty() ? frac[i] : rescale_to[i];
    // z_i = c_i + f(e, b_i + [i = 0] d) + f(a_i, d)
    if (ops[i].is_elementwise()) {
      core::Tensor z = zs[i].defined() ? zs[i]
                                       : elementwise_beaver_output_cuda(p.rank() == 0, es[i], ds[i],
                                                                        triples[i], fused[i]);
      result.push_back(rescale(p, {std::move(z), frac[i] - fused[i]}, target));
      continue;
    }
    const core::Tensor b_plus = p.rank() == 0 ? core::add(triples[i].b, ds[i]) : triples[i].b;
    core::Tensor z = ops[i].apply(es[i], b_plus);
    core::add_(z, ops[i].apply(triples[i].a, ds[i]));
    core::add_(z, triples[i].c);
    result.push_back(rescale(p, {z, frac[i]}, target));
  }
  return result;
}

AShare beaver(Party& p, const BilinearOp& op, const AShare& x, const AShare& y) {
  return beaver_batch(p, {op}, {x}, {y})[0];
}

AShare truncate(Party& p, const AShare& x, int bits) {
  check_defined(x, "truncate");
  VEIL_CHECK(bits >= 0 && bits < 63 && bits <= x.frac_bits,
             "[truncate] expected 0 <= bits <= frac_bits ({}), got {}", x.frac_bits, bits);
  if (bits == 0) {
    return x;
  }
  if (p.world_size() == 2) {
    if (p.rank() == 0) {
      return {core::shift_right_arith(x.data, bits), x.frac_bits - bits};
    }
    if (x.data.is_cuda()) {
      return {core::neg(core::shift_right_arith(core::neg(x.data), bits)), x.frac_bits - bits};
    }
    // -((-x) >> bits) in one pass.
    const core::Tensor xc = x.data.contiguous();
    core::Tensor out = core::Tensor::empty(x.shape(), core::DType::kRing64);
    const uint64_t* px = xc.data<uint64_t>();
    uint64_t* po = out.data<uint64_t>();
    core::parallel_for(0, out.numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; ++j) {
        po[j] = kernels::cuda::ops::trunc2_elem(false, px[j], bits);
      }
    });
    return {out, x.frac_bits - bits};
  }
  TruncPair pair = p.provider().trunc_pair(x.shape(), bits);
  if (pair.r.device() != x.data.device()) {  // as for Beaver triples: a host step of a GPU party
    pair.r = pair.r.to(x.data.device());
    pair.r_shifted = pair.r_shifted.to(x.data.device());
  }
  const std::string tag = p.next_tag("truncate");
  core::Tensor z = core::add(x.data, pair.r);  // the masked value, a fresh tensor
  if (p.rank() != 0) {
    p.comm().send_tensor(0, tag, std::move(z));
    return {core::neg(pair.r_shifted), x.frac_bits - bits};
  }
  for (int j = 1; j < p.world_size(); ++j) {
    core::add_(z, p.comm().recv_tensor(j, tag, x.shape(), core::DType::kRing64, z.device()));
  }
  // With x = k 2^d + t and r = q 2^d + u (0 <= t, u < 2^d): floor((x + r) / 2^d) - floor(r / 2^d)
  // = k + [t + u >= 2^d], i.e. x / 2^d rounded up with probability t / 2^d (unbiased), and
  // exactly k when x is a multiple of 2^d.
  core::Tensor out = core::shift_right_arith(z, bits);
  core::sub_(out, pair.r_shifted);
  return {out, x.frac_bits - bits};
}

AShare rescale(Party& p, const AShare& x, int frac_bits) {
  VEIL_CHECK(frac_bits <= x.frac_bits, "[rescale] cannot raise frac_bits from {} to {}",
             x.frac_bits, frac_bits);
  return truncate(p, x, x.frac_bits - frac_bits);
}

AShare mul(Party& p, const AShare& x, const AShare& y) {
  return beaver_batch_rescaled(p, {BilinearOp::mul(x.shape(), y.shape())}, {x}, {y},
                               {std::max(x.frac_bits, y.frac_bits)})[0];
}

AShare matmul(Party& p, const AShare& x, const AShare& y) {
  const AShare z = beaver(p, BilinearOp::matmul(x.shape(), y.shape()), x, y);
  return rescale(p, z, std::max(x.frac_bits, y.frac_bits));
}

AShare to_device(const AShare& x, core::Device device) {
  return x.data.defined() && x.data.device() != device ? AShare{x.data.to(device), x.frac_bits} : x;
}

AShare square(Party& p, const AShare& x) {
  return beaver_batch_rescaled(p, {BilinearOp::square(x.shape())}, {x}, {x}, {x.frac_bits})[0];
}

}  // namespace veil::crypto
