#include "crypto/protocols/binary.h"

#include <algorithm>
#include <bit>
#include <functional>

#include "core/elementwise.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/providers/bit_circuit.h"

#include <immintrin.h>

namespace veil::crypto {

BShare bxor(const BShare& x, const BShare& y) {
  return {core::bitwise_xor(x.data, y.data)};
}

BShare bxor_public(Party& p, const BShare& x, const core::Tensor& c) {
  if (p.rank() != 0) {
    return x;
  }
  return {core::bitwise_xor(x.data, c)};
}

BShare bshift_left(const BShare& x, int bits) {
  return {core::shift_left(x.data, bits)};
}

BShare bshift_right(const BShare& x, int bits) {
  return {core::shift_right_logical(x.data, bits)};
}

BShare band_public(const BShare& x, uint64_t mask) {
  return {core::map<uint64_t, uint64_t>(x.data, [mask](uint64_t v) { return v & mask; })};
}

std::vector<BShare> band_batch(Party& p,
                               const std::vector<BShare>& xs,
                               const std::vector<BShare>& ys) {
  VEIL_INTERNAL_ASSERT(xs.size() == ys.size(), "band_batch sizes");
  int64_t total = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    VEIL_CHECK(xs[i].shape() == ys[i].shape(), "[and] expected equal shapes, got {} and {}",
               core::shape_str(xs[i].shape()), core::shape_str(ys[i].shape()));
    total += xs[i].numel();
  }
  const BinaryTriple t = p.provider().binary_triple({total});
  const uint64_t* a = t.a.data<uint64_t>();
  const uint64_t* b = t.b.data<uint64_t>();
  const uint64_t* c = t.c.data<uint64_t>();
  core::Tensor masked = core::Tensor::empty({2 * total}, core::DType::kRing64);
  uint64_t* m = masked.data<uint64_t>();
  int64_t at = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const core::Tensor xc = xs[i].data.contiguous();
    const core::Tensor yc = ys[i].data.contiguous();
    const uint64_t* px = xc.data<uint64_t>();
    const uint64_t* py = yc.data<uint64_t>();
    for (int64_t j = 0; j < xc.numel(); ++j) {
      m[at + j] = px[j] ^ a[at + j];
      m[total + at + j] = py[j] ^ b[at + j];
    }
    at += xc.numel();
  }
  const core::Tensor opened = p.comm().all_reduce(p.next_tag("and"), masked, comm::ReduceOp::kXor);
  const uint64_t* e = opened.data<uint64_t>();
  const uint64_t* f = e + total;
  const bool first = p.rank() == 0;
  std::vector<BShare> out;
  out.reserve(xs.size());
  at = 0;
  for (const auto& x : xs) {
    core::Tensor z = core::Tensor::empty(x.shape(), core::DType::kRing64);
    uint64_t* pz = z.data<uint64_t>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      const int64_t k = at + j;
      uint64_t v = c[k] ^ (e[k] & b[k]) ^ (a[k] & f[k]);
      if (first) {
        v ^= e[k] & f[k];
      }
      pz[j] = v;
    }
    at += x.numel();
    out.push_back({z});
  }
  return out;
}

BShare band(Party& p, const BShare& x, const BShare& y) {
  return band_batch(p, {x}, {y})[0];
}

namespace {

// ---- bit packing: the bits of each word selected by `mask`, concatenated over all words ------

__attribute__((target("bmi2"))) uint64_t pext_bmi2(uint64_t v, uint64_t m) {
  return _pext_u64(v, m);
}
__attribute__((target("bmi2"))) uint64_t pdep_bmi2(uint64_t v, uint64_t m) {
  return _pdep_u64(v, m);
}
uint64_t pext_portable(uint64_t v, uint64_t m) {
  uint64_t out = 0;
  int k = 0;
  for (; m != 0; m &= m - 1) {
    out |= ((v >> __builtin_ctzll(m)) & 1U) << k++;
  }
  return out;
}
uint64_t pdep_portable(uint64_t v, uint64_t m) {
  uint64_t out = 0;
  for (; m != 0; m &= m - 1) {
    out |= (v & 1U) << __builtin_ctzll(m);
    v >>= 1;
  }
  return out;
}
bool have_bmi2() {
  static const bool yes = __builtin_cpu_supports("bmi2") != 0;
  return yes;
}

// Packs the masked bits of every word of `xs` (in order) into a ring64 tensor of
// ceil(total / 64) words.
core::Tensor pack_bits(const std::vector<BShare>& xs, uint64_t mask) {
  const int k = __builtin_popcountll(mask);
  int64_t words = 0;
  for (const auto& x : xs) {
    words += x.numel();
  }
  const int64_t nbits = words * k;
  core::Tensor out = core::Tensor::zeros({(nbits + 63) / 64}, core::DType::kRing64);
  uint64_t* po = out.data<uint64_t>();
  const bool bmi2 = have_bmi2();
  int64_t pos = 0;
  for (const auto& x : xs) {
    const core::Tensor xc = x.data.contiguous();
    const uint64_t* px = xc.data<uint64_t>();
    for (int64_t i = 0; i < xc.numel(); ++i, pos += k) {
      const uint64_t v = bmi2 ? pext_bmi2(px[i], mask) : pext_portable(px[i], mask);
      const auto w = static_cast<std::size_t>(pos / 64);
      const int off = static_cast<int>(pos % 64);
      po[w] |= v << off;
      if (off + k > 64) {
        po[w + 1] |= v >> (64 - off);
      }
    }
  }
  return out;
}

// Inverse of pack_bits: words of the given shapes with the masked bits from `packed` and zeros
// elsewhere.
std::vector<BShare> unpack_bits(const core::Tensor& packed,
                                uint64_t mask,
                                const std::vector<BShare>& like) {
  const int k = __builtin_popcountll(mask);
  const uint64_t low = k == 64 ? ~uint64_t{0} : (uint64_t{1} << k) - 1;
  const uint64_t* pp = packed.data<uint64_t>();
  const bool bmi2 = have_bmi2();
  std::vector<BShare> out;
  int64_t pos = 0;
  for (const auto& x : like) {
    core::Tensor z = core::Tensor::empty(x.shape(), core::DType::kRing64);
    uint64_t* pz = z.data<uint64_t>();
    for (int64_t i = 0; i < z.numel(); ++i, pos += k) {
      const auto w = static_cast<std::size_t>(pos / 64);
      const int off = static_cast<int>(pos % 64);
      uint64_t v = pp[w] >> off;
      if (off + k > 64) {
        v |= pp[w + 1] << (64 - off);
      }
      v &= low;
      pz[i] = bmi2 ? pdep_bmi2(v, mask) : pdep_portable(v, mask);
    }
    out.push_back({z});
  }
  return out;
}

}  // namespace

std::vector<BShare> band_batch_masked(Party& p,
                                      const std::vector<BShare>& xs,
                                      const std::vector<BShare>& ys,
                                      uint64_t mask) {
  VEIL_INTERNAL_ASSERT(xs.size() == ys.size(), "band_batch_masked sizes");
  for (std::size_t i = 0; i < xs.size(); ++i) {
    VEIL_CHECK(xs[i].shape() == ys[i].shape(), "[and] expected equal shapes, got {} and {}",
               core::shape_str(xs[i].shape()), core::shape_str(ys[i].shape()));
  }
  if (mask == ~uint64_t{0}) {
    return band_batch(p, xs, ys);
  }
  // AND of the packed bit streams (one binary triple per packed word), then unpacked.
  const auto z = band_batch(p, {{pack_bits(xs, mask)}}, {{pack_bits(ys, mask)}});
  return unpack_bits(z[0].data, mask, xs);
}

namespace {

// Party j's arithmetic share as a binary sharing of itself (others hold 0).
BShare own_share_as_binary(Party& p, const AShare& x, int j) {
  if (p.rank() == j) {
    return {x.data.contiguous()};
  }
  return {core::Tensor::zeros(x.shape(), core::DType::kRing64)};
}

// Kogge–Stone sum of two binary-shared words.
BShare kogge_stone_add(Party& p, const BShare& x, const BShare& y) {
  const BShare prop0 = bxor(x, y);
  BShare g = band(p, x, y);
  BShare prop = prop0;
  for (int k = 1; k < 64; k *= 2) {
    if (k < 32) {
      auto r = band_batch(p, {prop, prop}, {bshift_left(g, k), bshift_left(prop, k)});
      g = bxor(g, r[0]);
      prop = r[1];
    } else {
      g = bxor(g, band(p, prop, bshift_left(g, k)));
    }
  }
  return bxor(prop0, bshift_left(g, 1));
}

}  // namespace

namespace {
// Carry-save reduction of the parties' addends to two (one AND round per layer).
std::pair<BShare, BShare> reduce_to_two(Party& p, const AShare& x) {
  std::vector<BShare> addends;
  for (int j = 0; j < p.world_size(); ++j) {
    addends.push_back(own_share_as_binary(p, x, j));
  }
  while (addends.size() > 2) {
    const BShare a = addends[addends.size() - 3];
    const BShare b = addends[addends.size() - 2];
    const BShare c = addends[addends.size() - 1];
    addends.resize(addends.size() - 3);
    const BShare s = bxor(bxor(a, b), c);
    const BShare maj = bxor(band(p, bxor(a, c), bxor(b, c)), c);
    addends.push_back(s);
    addends.push_back(bshift_left(maj, 1));
  }
  return {addends[0], addends[1]};
}
}  // namespace

BShare a2b(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.defined() && x.data.dtype() == core::DType::kRing64,
             "[a2b] expected a ring64 share, got {}", x.data.str());
  const auto [a, b] = reduce_to_two(p, x);
  return kogge_stone_add(p, a, b);
}

// ---- masked-open circuits (crypto/providers/bit_circuit.h) ------------------------------------

namespace {

// Runs fn(lo, hi) over the blocks [0, blocks) in parallel chunks.
void for_blocks(int64_t blocks, const std::function<void(int64_t, int64_t)>& fn) {
  core::parallel_for(0, blocks, 16, fn);
}

struct CircuitRun {
  CircuitLayout lay;
  CircuitCorrelation corr;
  core::Tensor c;             ///< opened x + r, [n] (circuits with r)
  std::vector<uint64_t> out;  ///< this party's share of the output bit, one plane per block
};

// Evaluates `spec` on n elements: on the value z (circuits with r: [n] ring64 arithmetic shares)
// or on input planes (kAnd: `width` planes per block, this party's XOR shares). Rounds: 1 to
// open c (circuits with r) and one per masked level; everything else is local, 64 elements per
// word operation.
CircuitRun run_circuit(Party& p,
                       const CircuitSpec& spec,
                       const char* op,
                       int64_t n,
                       const core::Tensor& z,
                       const std::vector<uint64_t>& input_planes) {
  const BitCircuit& circuit = BitCircuit::get(spec.kind, spec.width);
  CircuitRun run{CircuitLayout(spec, n), p.provider().circuit(spec, n), {}, {}};
  const CircuitLayout& lay = run.lay;
  const int64_t blocks = lay.blocks;
  const uint64_t* rnd = run.corr.random.data<uint64_t>();
  const uint64_t* cor = run.corr.corrected.data<uint64_t>();
  const uint64_t constant = p.rank() == 0 ? ~uint64_t{0} : 0;
  auto masks_of = [&](int64_t b) {
    return rnd + lay.mask_stream + lay.mask_planes * b;
  };
  auto products_of = [&](int64_t b) {
    return cor + lay.product_stream + lay.product_planes * b;
  };
  std::vector<uint64_t> wires;
  int width = circuit.input_width();
  std::vector<uint64_t> c63(static_cast<std::size_t>(blocks), 0);
  std::size_t first_level = 0;
  if (circuit.uses_r()) {
    // open c = x + r, then level 0 on c's bit planes and the shares of r's bit planes
    const core::Tensor zc = z.contiguous();
    const uint64_t* pz = zc.data<uint64_t>();
    core::Tensor masked = core::Tensor::empty({n}, core::DType::kRing64);
    uint64_t* pm = masked.data<uint64_t>();
    for (int64_t e = 0; e < n; ++e) {
      pm[e] = pz[e] + cor[lay.r_arith + e];
    }
    run.c = p.comm().all_reduce(p.next_tag(op), masked, comm::ReduceOp::kSum);
    const uint64_t* pc = run.c.data<uint64_t>();
    const CircuitLevel& l0 = circuit.levels()[0];
    wires.assign(static_cast<std::size_t>(blocks * l0.out_width), 0);
    for_blocks(blocks, [&](int64_t lo, int64_t hi) {
      uint64_t planes[64];
      for (int64_t b = lo; b < hi; ++b) {
        const int64_t count = std::min<int64_t>(64, n - 64 * b);
        std::fill(planes, planes + 64, 0);
        std::copy(pc + 64 * b, pc + 64 * b + count, planes);
        transpose64(planes);
        c63[static_cast<std::size_t>(b)] = planes[63];
        evaluate_level(l0, planes, rnd + lay.r_planes + 64 * b, products_of(b), constant,
                       wires.data() + b * l0.out_width);
      }
    });
    width = l0.out_width;
    first_level = 1;
  } else {
    wires = input_planes;
  }
  for (std::size_t li = first_level; li < circuit.levels().size(); ++li) {
    const CircuitLevel& level = circuit.levels()[li];
    const int w = level.in_width;
    core::Tensor open = core::Tensor::empty({blocks * w}, core::DType::kRing64);
    uint64_t* po = open.data<uint64_t>();
    for (int64_t b = 0; b < blocks; ++b) {
      const uint64_t* a = masks_of(b) + level.mask_offset;
      for (int i = 0; i < w; ++i) {
        po[b * w + i] = wires[static_cast<std::size_t>(b * w + i)] ^ a[i];
      }
    }
    const core::Tensor opened = p.comm().all_reduce(p.next_tag(op), open, comm::ReduceOp::kXor);
    const uint64_t* pe = opened.data<uint64_t>();
    std::vector<uint64_t> next(static_cast<std::size_t>(blocks * level.out_width), 0);
    for_blocks(blocks, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        evaluate_level(level, pe + b * w, masks_of(b) + level.mask_offset, products_of(b), constant,
                       next.data() + b * level.out_width);
      }
    });
    wires = std::move(next);
    width = level.out_width;
  }
  VEIL_INTERNAL_ASSERT(width == 1, "circuit output width");
  run.out.assign(static_cast<std::size_t>(blocks), 0);
  for (int64_t b = 0; b < blocks; ++b) {
    uint64_t v = wires[static_cast<std::size_t>(b)];
    if (spec.kind == CircuitKind::kLessThanZero) {
      // msb(c - r) = c_63 ^ r_63 ^ [c mod 2^63 < r mod 2^63]
      v ^= rnd[lay.r_planes + 64 * b + 63] ^ (c63[static_cast<std::size_t>(b)] & constant);
    }
    run.out[static_cast<std::size_t>(b)] = v;
  }
  return run;
}

// The output bits as a ring tensor of 0/1 words (bit 0 of a binary share).
core::Tensor out_bits(const CircuitRun& run) {
  core::Tensor t = core::Tensor::empty({run.lay.n}, core::DType::kRing64);
  uint64_t* pt = t.data<uint64_t>();
  for (int64_t e = 0; e < run.lay.n; ++e) {
    pt[e] = (run.out[static_cast<std::size_t>(e >> 6)] >> (e & 63)) & 1U;
  }
  return t;
}

// The injection round: opens e = out ^ s (one plane per block) and y_k - a_k in one message, and
// returns the output as an arithmetic bit b, (c - r) b (times_masked) and y_k b.
//   b = e + s - 2es:      b_i = [i = 0] e + (1 - 2e) s_i
//   (c - r) b:            c b_i - e r_i - (1 - 2e) (rs)_i
//   y b = (d + a) b:      d b_i + e a_i + (1 - 2e) (as)_i
BitProducts inject(Party& p,
                   const CircuitSpec& spec,
                   const char* op,
                   const CircuitRun& run,
                   const core::Shape& shape,
                   int x_frac,
                   const std::vector<AShare>& ys) {
  const CircuitLayout& lay = run.lay;
  const int64_t n = lay.n;
  const int64_t blocks = lay.blocks;
  const auto k = static_cast<int64_t>(ys.size());
  const BitCircuit& circuit = BitCircuit::get(spec.kind, spec.width);
  const uint64_t* rnd = run.corr.random.data<uint64_t>();
  const uint64_t* cor = run.corr.corrected.data<uint64_t>();
  core::Tensor msg = core::Tensor::empty({blocks + k * n}, core::DType::kRing64);
  uint64_t* pm = msg.data<uint64_t>();
  for (int64_t b = 0; b < blocks; ++b) {
    const uint64_t s = rnd[lay.mask_stream + lay.mask_planes * b + circuit.mask_bits()];
    pm[b] = run.out[static_cast<std::size_t>(b)] ^ s;
  }
  for (int64_t j = 0; j < k; ++j) {
    const core::Tensor yc = ys[static_cast<std::size_t>(j)].data.contiguous();
    const uint64_t* py = yc.data<uint64_t>();
    const uint64_t* pa = rnd + lay.extra_masks + j * n;
    for (int64_t e = 0; e < n; ++e) {
      pm[blocks + j * n + e] = py[e] - pa[e];
    }
  }
  // Bits are XOR-opened and the masked multiplicands summed: one message per peer, one round.
  std::vector<core::Tensor> parts = p.comm().all_gather(p.next_tag(op), msg);
  // Accumulate into a peer's message when it is this party's own copy (handed over in-process),
  // else into a copy of the first part (XOR and + commute).
  std::size_t acc = 0;
  bool handed_over = false;
  for (std::size_t r = 0; r < parts.size() && !handed_over; ++r) {
    handed_over =
        static_cast<int>(r) != p.rank() && parts[r].sole_owner() && parts[r].is_contiguous();
    acc = handed_over ? r : 0;
  }
  core::Tensor opened = handed_over ? std::move(parts[acc]) : parts[acc].clone();
  uint64_t* po = opened.data<uint64_t>();
  for (std::size_t r = 0; r < parts.size(); ++r) {
    if (r == acc) {
      continue;
    }
    const uint64_t* q = parts[r].data<uint64_t>();
    for (int64_t i = 0; i < blocks; ++i) {
      po[i] ^= q[i];
    }
    for (int64_t i = blocks; i < blocks + k * n; ++i) {
      po[i] += q[i];
    }
  }
  auto e_of = [po](int64_t e) {
    return (po[e >> 6] >> (e & 63)) & 1U;
  };
  const bool first = p.rank() == 0;
  BitProducts res;
  core::Tensor b = core::Tensor::empty({n}, core::DType::kRing64);
  uint64_t* pb = b.data<uint64_t>();
  for (int64_t e = 0; e < n; ++e) {
    const uint64_t ev = e_of(e);
    const uint64_t sa = cor[lay.s_arith + e];
    pb[e] = (ev != 0 ? uint64_t{0} - sa : sa) + (first ? ev : 0);
  }
  if (spec.times_masked) {
    const uint64_t* pc = run.c.data<uint64_t>();
    core::Tensor zb = core::Tensor::empty({n}, core::DType::kRing64);
    uint64_t* pz = zb.data<uint64_t>();
    for (int64_t e = 0; e < n; ++e) {
      const uint64_t rs = cor[lay.rs + e];
      pz[e] = e_of(e) != 0 ? pc[e] * pb[e] - cor[lay.r_arith + e] + rs : pc[e] * pb[e] - rs;
    }
    res.x_times_bit = {zb.reshape(shape), x_frac};
  }
  for (int64_t j = 0; j < k; ++j) {
    const uint64_t* pd = po + blocks + j * n;
    const uint64_t* pa = rnd + lay.extra_masks + j * n;
    const uint64_t* pas = cor + lay.extra_products + j * n;
    core::Tensor yb = core::Tensor::empty({n}, core::DType::kRing64);
    uint64_t* py = yb.data<uint64_t>();
    for (int64_t e = 0; e < n; ++e) {
      py[e] = e_of(e) != 0 ? pd[e] * pb[e] + pa[e] - pas[e] : pd[e] * pb[e] + pas[e];
    }
    const auto& y = ys[static_cast<std::size_t>(j)];
    res.products.push_back({yb.reshape(y.shape()), y.frac_bits});
  }
  res.bit = {b.reshape(shape), 0};
  return res;
}

void check_ring(const AShare& x, const char* op) {
  VEIL_CHECK(x.data.defined() && x.data.dtype() == core::DType::kRing64,
             "[{}] expected a ring64 share, got {}", op, x.data.str());
}

// The bit-sliced circuits run on the party's CPU: a share on a GPU is copied to the party's host
// memory for the circuit, and the circuit's results are copied back to that GPU. Only the party's
// own memory is involved: the messages, the dealer's correlation and the results are those of a
// CPU party, bit for bit.
std::vector<AShare> host_copies(const std::vector<AShare>& xs) {
  std::vector<AShare> out;
  out.reserve(xs.size());
  for (const AShare& x : xs) {
    out.push_back(host_copy(x));
  }
  return out;
}
BitProducts products_to_device(BitProducts r, core::Device device) {
  r.bit = to_device(r.bit, device);
  r.x_times_bit = to_device(r.x_times_bit, device);
  for (AShare& a : r.products) {
    a = to_device(a, device);
  }
  return r;
}

void check_products(int64_t n, const std::vector<AShare>& ys, const char* op) {
  for (const AShare& y : ys) {
    check_ring(y, op);
    VEIL_CHECK(y.numel() == n,
               "[{}] expected every multiplicand to have {} elements like the compared value, got "
               "{}",
               op, n, y.data.str());
  }
}

BitProducts compare_mul(Party& p,
                        CircuitKind kind,
                        const char* op,
                        const AShare& x,
                        bool with_x,
                        const std::vector<AShare>& ys) {
  check_ring(x, op);
  check_products(x.numel(), ys, op);
  if (x.data.is_cuda()) {
    const Party::HostScope host(p);
    return products_to_device(compare_mul(p, kind, op, host_copy(x), with_x, host_copies(ys)),
                              x.data.device());
  }
  CircuitSpec spec{
      .kind = kind, .inject = true, .times_masked = with_x, .extras = static_cast<int>(ys.size())};
  const CircuitRun run = run_circuit(p, spec, op, x.numel(), x.data.reshape({x.numel()}), {});
  return inject(p, spec, op, run, x.shape(), x.frac_bits, host_copies(ys));
}

}  // namespace

BShare ltz(Party& p, const AShare& x) {
  check_ring(x, "ltz");
  const CircuitSpec spec{.kind = CircuitKind::kLessThanZero};
  const Party::HostScope host(p);
  const CircuitRun run =
      run_circuit(p, spec, "ltz", x.numel(), host_copy(x).data.reshape({x.numel()}), {});
  return {out_bits(run).reshape(x.shape()).to(x.data.device())};
}

BitProducts ltz_mul(Party& p, const AShare& x, bool with_x, const std::vector<AShare>& ys) {
  return compare_mul(p, CircuitKind::kLessThanZero, "ltz", x, with_x, ys);
}

AShare ltz_arith(Party& p, const AShare& x) {
  return ltz_mul(p, x, false).bit;
}

BShare eqz(Party& p, const AShare& x) {
  check_ring(x, "eqz");
  const CircuitSpec spec{.kind = CircuitKind::kEqualZero};
  const Party::HostScope host(p);
  const CircuitRun run =
      run_circuit(p, spec, "eqz", x.numel(), host_copy(x).data.reshape({x.numel()}), {});
  return {out_bits(run).reshape(x.shape()).to(x.data.device())};
}

BitProducts eqz_mul(Party& p, const AShare& x, const std::vector<AShare>& ys) {
  return compare_mul(p, CircuitKind::kEqualZero, "eqz", x, false, ys);
}

BitProducts and_lastdim_mul(Party& p, const BShare& bits, const std::vector<AShare>& ys) {
  VEIL_CHECK(
      bits.data.defined() && bits.data.dtype() == core::DType::kRing64 && bits.data.dim() >= 1,
      "[and] expected ring64 bits with a last dimension, got {}", bits.data.str());
  const int64_t w = bits.data.size(-1);
  VEIL_CHECK(w >= 1 && w <= 64, "[and] expected 1..64 bits along the last dimension, got {}", w);
  const core::Shape lead(bits.shape().begin(), bits.shape().end() - 1);
  const int64_t n = core::shape_numel(lead);
  check_products(n, ys, "and");
  if (bits.data.is_cuda()) {
    const Party::HostScope host(p);
    return products_to_device(
        and_lastdim_mul(p, {bits.data.to(core::Device::cpu())}, host_copies(ys)),
        bits.data.device());
  }
  // The w input bits as planes: word (block b, bit j) holds bit j of the block's 64 elements.
  const core::Tensor bc = bits.data.contiguous();
  const uint64_t* pb = bc.data<uint64_t>();
  const int64_t blocks = (n + 63) / 64;
  std::vector<uint64_t> planes(static_cast<std::size_t>(blocks * w), 0);
  for (int64_t e = 0; e < n; ++e) {
    for (int64_t j = 0; j < w; ++j) {
      planes[static_cast<std::size_t>((e >> 6) * w + j)] |= (pb[e * w + j] & 1U) << (e & 63);
    }
  }
  const CircuitSpec spec{.kind = CircuitKind::kAnd,
                         .width = static_cast<int>(w),
                         .inject = true,
                         .extras = static_cast<int>(ys.size())};
  const CircuitRun run = run_circuit(p, spec, "and", n, core::Tensor(), planes);
  return inject(p, spec, "and", run, lead, 0, ys);
}

AShare b2a_bit(Party& p, const BShare& bit) {
  const RandomBits r = p.provider().random_bits(bit.shape());
  const core::Tensor masked = core::zip<uint64_t, uint64_t, uint64_t>(
      bit.data, r.binary, [](uint64_t b, uint64_t rb) { return (b ^ rb) & 1U; }, "b2a");
  // Open c = b ^ r with 64 elements per word.
  const core::Tensor opened =
      p.comm().all_reduce(p.next_tag("b2a"), pack_bits({{masked}}, 1U), comm::ReduceOp::kXor);
  const core::Tensor c = unpack_bits(opened, 1U, {{masked}})[0].data;
  const bool first = p.rank() == 0;
  core::Tensor z = core::zip<uint64_t, uint64_t, uint64_t>(
      c, r.arith,
      [first](uint64_t cv, uint64_t ra) {
        // (1 - 2c) r_i + [i = 0] c
        const uint64_t v = cv != 0 ? uint64_t{0} - ra : ra;
        return first ? v + cv : v;
      },
      "b2a");
  return {z, 0};
}

AShare b2a(Party& p, const BShare& x, int frac_bits) {
  // Spread the 64 bits into a [n, 64] tensor of single bits, convert them in one round, and
  // recombine sum_j 2^j b_j.
  const core::Tensor xc = x.data.contiguous();
  const int64_t n = xc.numel();
  core::Tensor bits = core::Tensor::empty({n, 64}, core::DType::kRing64);
  const uint64_t* px = xc.data<uint64_t>();
  uint64_t* pb = bits.data<uint64_t>();
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < 64; ++j) {
      pb[i * 64 + j] = (px[i] >> j) & 1U;
    }
  }
  const AShare a = b2a_bit(p, {bits});
  core::Tensor out = core::Tensor::empty(x.shape(), core::DType::kRing64);
  const uint64_t* pa = a.data.data<uint64_t>();
  uint64_t* po = out.data<uint64_t>();
  for (int64_t i = 0; i < n; ++i) {
    uint64_t acc = 0;
    for (int j = 0; j < 64; ++j) {
      acc += pa[i * 64 + j] << j;
    }
    po[i] = acc;
  }
  return {out, frac_bits};
}

core::Tensor reveal_binary(Party& p, const BShare& x) {
  return p.comm().all_reduce(p.next_tag("reveal_binary"), x.data, comm::ReduceOp::kXor);
}

}  // namespace veil::crypto
