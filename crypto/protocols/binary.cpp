#include "crypto/protocols/binary.h"

#include <algorithm>
#include <bit>
#include <functional>

#include "core/elementwise.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/providers/bit_circuit.h"
#include "kernels/bit_circuit_eval.h"
#include "kernels/cpu/ring_blocks.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_circuit.h"

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
  const core::Tensor opened =
      p.comm().all_reduce(p.next_tag("and"), std::move(masked), comm::ReduceOp::kXor);
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

namespace kc = kernels::circuit;

// The host evaluates a level on kLanes blocks side by side (kernels/bit_circuit_eval.h:
// evaluate_level_lanes), so the program is read once per kLanes blocks and each of its steps is
// one vector operation; the public planes are gathered into lane-major scratch and the outputs
// scattered back (the secret records are read in place).
constexpr int kLanes = kc::kHostLanes;

// The records (stride words apart, `width` words read from each) of the `lanes` blocks of a
// group at src, as kLanes records: src itself for a full group, else a zero-padded copy in
// scratch (the padding lanes' results are dropped). Only the words read are copied: the last
// record may end where the array does.
const uint64_t* padded(
    const uint64_t* src, int64_t stride, int64_t width, int lanes, std::vector<uint64_t>& scratch) {
  if (lanes == kLanes) {
    return src;
  }
  scratch.assign(static_cast<std::size_t>(stride * kLanes), 0);
  std::copy(src, src + stride * (lanes - 1) + width, scratch.begin());
  return scratch.data();
}

// evaluate_level_lanes<kLanes> compiled for the host's widest vector unit (a step of 8 lanes is
// one AVX-512 operation, two AVX2 or four SSE2 ones).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void level_lanes(const kc::Level& lv,
                 const uint64_t* pub,
                 const uint64_t* sec,
                 int64_t sec_stride,
                 const uint64_t* products,
                 int64_t product_stride,
                 uint64_t constant,
                 uint64_t* out) {
  kc::evaluate_level_lanes<kLanes>(lv, pub, sec, sec_stride, products, product_stride, constant,
                                   out);
}

// dst[p kLanes + l] = src[l stride + p] for p < width (lanes from `lanes` on: zero).
void to_lanes(const uint64_t* src, int64_t stride, int width, int lanes, uint64_t* dst) {
  for (int p = 0; p < width; ++p) {
    for (int l = 0; l < kLanes; ++l) {
      dst[p * kLanes + l] = l < lanes ? src[l * stride + p] : 0;
    }
  }
}

// dst[l stride + p] = src[p kLanes + l] for p < width, l < lanes.
void from_lanes(const uint64_t* src, int width, int lanes, uint64_t* dst, int64_t stride) {
  for (int l = 0; l < lanes; ++l) {
    for (int p = 0; p < width; ++p) {
      dst[l * stride + p] = src[p * kLanes + l];
    }
  }
}

// One worker's lane-major planes of a group of kLanes blocks, and the padded records of a last
// group.
struct LaneScratch {
  std::vector<uint64_t> pub, out, sec, products;
};

// Runs fn(b0, lanes, scratch) for the groups of kLanes blocks of [0, blocks) in parallel; the
// scratch holds in_planes public planes and out_planes per lane.
void for_lane_groups(int64_t blocks,
                     int64_t in_planes,
                     int64_t out_planes,
                     const std::function<void(int64_t, int, LaneScratch&)>& fn) {
  const int64_t groups = (blocks + kLanes - 1) / kLanes;
  core::parallel_for(0, groups, 4, [&](int64_t lo, int64_t hi) {
    LaneScratch ls;
    auto size = [](int64_t planes) {
      return static_cast<std::size_t>(planes * kLanes);
    };
    ls.pub.resize(size(in_planes));
    ls.out.resize(size(out_planes));
    for (int64_t g = lo; g < hi; ++g) {
      const int64_t b0 = g * kLanes;
      fn(b0, static_cast<int>(std::min<int64_t>(kLanes, blocks - b0)), ls);
    }
  });
}

// Level lv on the group of `lanes` blocks from b0: its public planes lane-major in ls.pub, block
// b's secret planes at sec + b sec_stride (lv.in_width of them read) and its product record at
// products + b product_stride; block b's output planes go to out + b lv.out_width.
void evaluate_group(const kc::Level& lv,
                    int64_t b0,
                    int lanes,
                    LaneScratch& ls,
                    const uint64_t* sec,
                    int64_t sec_stride,
                    const uint64_t* products,
                    int64_t product_stride,
                    uint64_t constant,
                    uint64_t* out) {
  level_lanes(
      lv, ls.pub.data(), padded(sec + b0 * sec_stride, sec_stride, lv.in_width, lanes, ls.sec),
      sec_stride,
      padded(products + b0 * product_stride, product_stride, product_stride, lanes, ls.products),
      product_stride, constant, ls.out.data());
  from_lanes(ls.out.data(), lv.out_width, lanes, out + b0 * lv.out_width, lv.out_width);
}

// The steps of a circuit evaluation on this party's memory: host memory (parallel over blocks) or
// its GPU (kernels/cuda_circuit.h). Either way the arithmetic is that of
// kernels/bit_circuit_eval.h, so a GPU party's shares, messages and results equal a CPU party's.
// Arguments as the kernels'.
namespace circuit_steps {

void local_level(core::Device dev,
                 const kc::Level& l0,
                 int64_t n,
                 const uint64_t* c,
                 const uint64_t* r_planes,
                 const uint64_t* products,
                 int64_t product_stride,
                 uint64_t constant,
                 uint64_t* wires,
                 uint64_t* c_top) {
  if (dev.is_cuda()) {
    kernels::cuda::circuit_local_level(l0, n, c, r_planes, products, product_stride, constant,
                                       wires, c_top, dev.index);
    return;
  }
  const int64_t blocks = (n + 63) / 64;
  for_lane_groups(blocks, 64, l0.out_width, [&](int64_t b0, int lanes, LaneScratch& ls) {
    // c's words of the group, lane-major, then their planes (elements past n: zero)
    uint64_t* planes = ls.pub.data();
    kc::load_transpose64_lanes<kLanes>(c + 64 * b0, n - 64 * b0, planes);
    std::copy(planes + 63 * kLanes, planes + 63 * kLanes + lanes, c_top + b0);
    evaluate_group(l0, b0, lanes, ls, r_planes, 64, products, product_stride, constant, wires);
  });
}

void mask(core::Device dev,
          int64_t blocks,
          int w,
          const uint64_t* wires,
          const uint64_t* masks,
          int64_t mask_stride,
          uint64_t* out) {
  if (dev.is_cuda()) {
    kernels::cuda::circuit_mask(blocks, w, wires, masks, mask_stride, out, dev.index);
    return;
  }
  core::parallel_for(0, blocks * w, 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      out[i] = kc::masked_wire(i, w, wires, masks, mask_stride);
    }
  });
}

void level(core::Device dev,
           const kc::Level& lv,
           int64_t blocks,
           const uint64_t* opened,
           const uint64_t* masks,
           int64_t mask_stride,
           const uint64_t* products,
           int64_t product_stride,
           uint64_t constant,
           uint64_t* out) {
  if (dev.is_cuda()) {
    kernels::cuda::circuit_level(lv, blocks, opened, masks, mask_stride, products, product_stride,
                                 constant, out, dev.index);
    return;
  }
  for_lane_groups(blocks, lv.in_width, lv.out_width, [&](int64_t b0, int lanes, LaneScratch& ls) {
    to_lanes(opened + b0 * lv.in_width, lv.in_width, lv.in_width, lanes, ls.pub.data());
    evaluate_group(lv, b0, lanes, ls, masks, mask_stride, products, product_stride, constant, out);
  });
}

void output(core::Device dev,
            int64_t blocks,
            bool less_than_zero,
            const uint64_t* wires,
            const uint64_t* r_top,
            int64_t r_stride,
            const uint64_t* c_top,
            uint64_t constant,
            uint64_t* out) {
  if (dev.is_cuda()) {
    kernels::cuda::circuit_output(blocks, less_than_zero, wires, r_top, r_stride, c_top, constant,
                                  out, dev.index);
    return;
  }
  for (int64_t b = 0; b < blocks; ++b) {
    out[b] = kc::output_plane(less_than_zero, wires[b], less_than_zero ? r_top[b * r_stride] : 0,
                              less_than_zero ? c_top[b] : 0, constant);
  }
}

void bits(core::Device dev, int64_t n, const uint64_t* planes, uint64_t* out) {
  if (dev.is_cuda()) {
    kernels::cuda::circuit_bits(n, planes, out, dev.index);
    return;
  }
  core::parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t e = lo; e < hi; ++e) {
      out[e] = kc::plane_bit(planes, e);
    }
  });
}

// out = y - a (n words)
void masked(core::Device dev, int64_t n, const uint64_t* y, const uint64_t* a, uint64_t* out) {
  if (dev.is_cuda()) {
    kernels::cuda::ring_mask(n, y, a, out, dev.index);
    return;
  }
  core::parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t e = lo; e < hi; ++e) {
      out[e] = y[e] - a[e];
    }
  });
}

void inject(core::Device dev, const kc::InjectArgs& a) {
  if (dev.is_cuda()) {
    kernels::cuda::circuit_inject(a, dev.index);
    return;
  }
  core::parallel_for(0, a.n, 1 << 14,
                     [&](int64_t lo, int64_t hi) { kernels::cpu::circuit_inject(a, lo, hi); });
}

}  // namespace circuit_steps

struct CircuitRun {
  CircuitLayout lay;
  CircuitCorrelation corr;
  core::Tensor c;    ///< opened x + r, [n] (circuits with r)
  core::Tensor out;  ///< this party's share of the output bit, one plane per block
};

core::Tensor ring_empty(int64_t n, core::Device dev) {
  return core::Tensor::empty({n}, core::DType::kRing64, dev);
}

// Evaluates `spec` on n elements: on the value z (circuits with r: [n] ring64 arithmetic shares)
// or on input planes (kAnd: `width` planes per block, this party's XOR shares), where they live
// (host or GPU). Rounds: 1 to open c (circuits with r) and one per masked level; everything else
// is local, 64 elements per word operation.
CircuitRun run_circuit(Party& p,
                       const CircuitSpec& spec,
                       const char* op,
                       int64_t n,
                       const core::Tensor& z,
                       const core::Tensor& input_planes) {
  const BitCircuit& circuit = BitCircuit::get(spec.kind, spec.width);
  const core::Device dev = circuit.uses_r() ? z.device() : input_planes.device();
  CircuitRun run{CircuitLayout(spec, n), p.provider().circuit(spec, n), {}, {}};
  // the correlation is drawn on the party's device; a circuit run on its host gets host copies
  if (run.corr.random.device() != dev) {
    run.corr.random = run.corr.random.to(dev);
    run.corr.corrected = run.corr.corrected.to(dev);
  }
  const CircuitLayout& lay = run.lay;
  const int64_t blocks = lay.blocks;
  const uint64_t* rnd = run.corr.random.device_data<uint64_t>();
  const uint64_t* cor = run.corr.corrected.device_data<uint64_t>();
  const uint64_t constant = p.rank() == 0 ? ~uint64_t{0} : 0;
  const uint64_t* products = cor + lay.product_stream;
  const uint64_t* masks = rnd + lay.mask_stream;
  core::Tensor wires;
  core::Tensor c_top = ring_empty(blocks, dev);
  std::size_t first_level = 0;
  if (circuit.uses_r()) {
    // open c = x + r, then level 0 on c's bit planes and the shares of r's bit planes
    core::Tensor masked = core::add(z, run.corr.corrected.slice(0, lay.r_arith, lay.r_arith + n));
    run.c = p.comm().all_reduce(p.next_tag(op), std::move(masked), comm::ReduceOp::kSum);
    const kc::Level l0 = circuit.program(0, dev);
    wires = ring_empty(blocks * l0.out_width, dev);
    circuit_steps::local_level(dev, l0, n, run.c.device_data<uint64_t>(), rnd + lay.r_planes,
                               products, lay.product_planes, constant,
                               wires.device_data<uint64_t>(), c_top.device_data<uint64_t>());
    first_level = 1;
  } else {
    wires = input_planes.contiguous();
  }
  for (std::size_t li = first_level; li < circuit.levels().size(); ++li) {
    const CircuitLevel& level = circuit.levels()[li];
    const kc::Level lv = circuit.program(li, dev);
    const int w = level.in_width;
    core::Tensor open = ring_empty(blocks * w, dev);
    circuit_steps::mask(dev, blocks, w, wires.device_data<uint64_t>(), masks + level.mask_offset,
                        lay.mask_planes, open.device_data<uint64_t>());
    const core::Tensor opened =
        p.comm().all_reduce(p.next_tag(op), std::move(open), comm::ReduceOp::kXor);
    core::Tensor next = ring_empty(blocks * level.out_width, dev);
    circuit_steps::level(dev, lv, blocks, opened.device_data<uint64_t>(), masks + level.mask_offset,
                         lay.mask_planes, products, lay.product_planes, constant,
                         next.device_data<uint64_t>());
    wires = std::move(next);
  }
  VEIL_INTERNAL_ASSERT(wires.numel() == blocks, "circuit output width");
  run.out = ring_empty(blocks, dev);
  const bool ltz = spec.kind == CircuitKind::kLessThanZero;
  circuit_steps::output(
      dev, blocks, ltz, wires.device_data<uint64_t>(), ltz ? rnd + lay.r_planes + 63 : nullptr, 64,
      ltz ? c_top.device_data<uint64_t>() : nullptr, constant, run.out.device_data<uint64_t>());
  return run;
}

// The output bits as a ring tensor of 0/1 words (bit 0 of a binary share), on the run's device.
core::Tensor out_bits(const CircuitRun& run) {
  core::Tensor t = ring_empty(run.lay.n, run.out.device());
  circuit_steps::bits(run.out.device(), run.lay.n, run.out.device_data<uint64_t>(),
                      t.device_data<uint64_t>());
  return t;
}

// The injection round: opens e = out ^ s (one plane per block) and y_k - a_k in one message, and
// returns the output as an arithmetic bit b, (c - r) b (times_masked) and y_k b
// (kernels/bit_circuit_eval.h: inject_bit, inject_times_masked, inject_product).
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
  const core::Device dev = run.out.device();
  const uint64_t* rnd = run.corr.random.device_data<uint64_t>();
  const uint64_t* cor = run.corr.corrected.device_data<uint64_t>();
  core::Tensor msg = ring_empty(blocks + k * n, dev);
  uint64_t* pm = msg.device_data<uint64_t>();
  circuit_steps::mask(dev, blocks, 1, run.out.device_data<uint64_t>(),
                      rnd + lay.mask_stream + circuit.mask_bits(), lay.mask_planes, pm);
  std::vector<core::Tensor> held;  // the multiplicands' contiguous copies, while masked
  for (int64_t j = 0; j < k; ++j) {
    held.push_back(to_device(ys[static_cast<std::size_t>(j)], dev).data.contiguous());
    circuit_steps::masked(dev, n, held.back().device_data<uint64_t>(),
                          rnd + lay.extra_masks + j * n, pm + blocks + j * n);
  }
  // Bits are XOR-opened and the masked multiplicands summed: one message per peer, one round.
  std::vector<core::Tensor> parts = p.comm().all_gather(p.next_tag(op), msg);
  // Accumulate into a peer's message when it is this party's own copy (handed over in-process,
  // or received into a fresh device tensor), else into a copy of the first part (XOR and +
  // commute): the masked multiplicands in place, the few bit planes into a new tensor.
  std::size_t acc = 0;
  bool handed_over = false;
  for (std::size_t r = 0; r < parts.size() && !handed_over; ++r) {
    handed_over =
        static_cast<int>(r) != p.rank() && parts[r].sole_owner() && parts[r].is_contiguous();
    acc = handed_over ? r : 0;
  }
  core::Tensor opened = handed_over ? std::move(parts[acc]) : parts[acc].clone();
  core::Tensor opened_e = opened.slice(0, 0, blocks);
  core::Tensor opened_d = opened.slice(0, blocks, blocks + k * n);
  for (std::size_t r = 0; r < parts.size(); ++r) {
    if (r != acc) {
      opened_e = core::bitwise_xor(opened_e, parts[r].slice(0, 0, blocks));
      core::add_(opened_d, parts[r].slice(0, blocks, blocks + k * n));
    }
  }
  core::Tensor b = ring_empty(n, dev);
  core::Tensor zb = spec.times_masked ? ring_empty(n, dev) : core::Tensor();
  core::Tensor yb = ring_empty(k * n, dev);
  kc::InjectArgs args;
  args.n = n;
  args.extras = static_cast<int>(k);
  args.first = p.rank() == 0;
  args.e_planes = opened_e.device_data<uint64_t>();
  args.s = cor + lay.s_arith;
  if (spec.times_masked) {
    args.c = run.c.device_data<uint64_t>();
    args.r = cor + lay.r_arith;
    args.rs = cor + lay.rs;
    args.x_times_bit = zb.device_data<uint64_t>();
  }
  args.d = opened_d.device_data<uint64_t>();
  args.a = rnd + lay.extra_masks;
  args.as = cor + lay.extra_products;
  args.bit = b.device_data<uint64_t>();
  args.product = yb.device_data<uint64_t>();
  circuit_steps::inject(dev, args);
  BitProducts res;
  res.bit = {b.reshape(shape), 0};
  if (spec.times_masked) {
    res.x_times_bit = {zb.reshape(shape), x_frac};
  }
  for (int64_t j = 0; j < k; ++j) {
    const auto& y = ys[static_cast<std::size_t>(j)];
    res.products.push_back({yb.slice(0, j * n, (j + 1) * n).reshape(y.shape()), y.frac_bits});
  }
  return res;
}

void check_ring(const AShare& x, const char* op) {
  VEIL_CHECK(x.data.defined() && x.data.dtype() == core::DType::kRing64,
             "[{}] expected a ring64 share, got {}", op, x.data.str());
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
  // runs where x lives (the party's host or GPU); multiplicands elsewhere are copied there
  CircuitSpec spec{
      .kind = kind, .inject = true, .times_masked = with_x, .extras = static_cast<int>(ys.size())};
  const CircuitRun run =
      run_circuit(p, spec, op, x.numel(), x.data.contiguous().reshape({x.numel()}), {});
  return inject(p, spec, op, run, x.shape(), x.frac_bits, ys);
}

}  // namespace

BShare ltz(Party& p, const AShare& x) {
  check_ring(x, "ltz");
  const CircuitSpec spec{.kind = CircuitKind::kLessThanZero};
  const CircuitRun run =
      run_circuit(p, spec, "ltz", x.numel(), x.data.contiguous().reshape({x.numel()}), {});
  return {out_bits(run).reshape(x.shape())};
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
  const CircuitRun run =
      run_circuit(p, spec, "eqz", x.numel(), x.data.contiguous().reshape({x.numel()}), {});
  return {out_bits(run).reshape(x.shape())};
}

BitProducts eqz_mul(Party& p, const AShare& x, const std::vector<AShare>& ys) {
  return compare_mul(p, CircuitKind::kEqualZero, "eqz", x, false, ys);
}

namespace {

// The w input bits of n elements ([n, w], bit 0 of each word) as planes: word (block b, bit j)
// holds bit j of the block's 64 elements in bit e mod 64, on the bits' device.
core::Tensor bit_planes(const core::Tensor& bits) {
  const int64_t n = bits.size(0);
  const int64_t w = bits.size(1);
  const int64_t blocks = (n + 63) / 64;
  if (bits.is_cuda() && n > 0) {
    // (bit & 1) << (e mod 64), summed over each block (disjoint bits: the sum is the OR)
    const core::Device dev = bits.device();
    core::Tensor b = bits;
    if (blocks * 64 > n) {
      b = core::cat({b, core::Tensor::zeros({blocks * 64 - n, w}, core::DType::kRing64, dev)}, 0);
    }
    core::Tensor weight = core::Tensor::empty({1, 64, 1}, core::DType::kRing64);
    for (int k = 0; k < 64; ++k) {
      weight.data<uint64_t>()[k] = uint64_t{1} << k;
    }
    const core::Tensor one = core::Tensor::full<uint64_t>({1, 1, 1}, 1U, dev);
    const core::Tensor spread =
        core::mul(core::bitwise_and(b.reshape({blocks, 64, w}), one), weight.to(dev));
    return core::sum(spread, 1).reshape({blocks * w});
  }
  const core::Tensor bc = bits.to(core::Device::cpu());
  const uint64_t* pb = bc.data<uint64_t>();
  core::Tensor planes = core::Tensor::zeros({blocks * w}, core::DType::kRing64);
  uint64_t* pp = planes.data<uint64_t>();
  for (int64_t e = 0; e < n; ++e) {
    for (int64_t j = 0; j < w; ++j) {
      pp[(e >> 6) * w + j] |= (pb[e * w + j] & 1U) << (e & 63);
    }
  }
  return planes.to(bits.device());
}

}  // namespace

BitProducts and_lastdim_mul(Party& p, const BShare& bits, const std::vector<AShare>& ys) {
  VEIL_CHECK(
      bits.data.defined() && bits.data.dtype() == core::DType::kRing64 && bits.data.dim() >= 1,
      "[and] expected ring64 bits with a last dimension, got {}", bits.data.str());
  const int64_t w = bits.data.size(-1);
  VEIL_CHECK(w >= 1 && w <= 64, "[and] expected 1..64 bits along the last dimension, got {}", w);
  const core::Shape lead(bits.shape().begin(), bits.shape().end() - 1);
  const int64_t n = core::shape_numel(lead);
  check_products(n, ys, "and");
  const CircuitSpec spec{.kind = CircuitKind::kAnd,
                         .width = static_cast<int>(w),
                         .inject = true,
                         .extras = static_cast<int>(ys.size())};
  const CircuitRun run = run_circuit(p, spec, "and", n, core::Tensor(),
                                     bit_planes(bits.data.contiguous().reshape({n, w})));
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
