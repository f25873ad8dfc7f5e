#include "crypto/protocols/binary.h"

#include "core/elementwise.h"
#include "core/ops.h"

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

// Positions i with (i + 1) % 2^level == 0: the top bit of every block of 2^level bits.
uint64_t block_tops(int level) {
  uint64_t m = 0;
  const int step = 1 << level;
  for (int i = step - 1; i < 64; i += step) {
    m |= uint64_t{1} << i;
  }
  return m;
}
}  // namespace

BShare a2b(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.defined() && x.data.dtype() == core::DType::kRing64,
             "[a2b] expected a ring64 share, got {}", x.data.str());
  const auto [a, b] = reduce_to_two(p, x);
  return kogge_stone_add(p, a, b);
}

BShare ltz(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.defined() && x.data.dtype() == core::DType::kRing64,
             "[ltz] expected a ring64 share, got {}", x.data.str());
  const auto [a, b] = reduce_to_two(p, x);
  // msb(a + b) = a_63 ^ b_63 ^ carry into bit 63. The carry is the group generate of bits
  // 0..62: a Brent–Kung up-sweep over (g, p) = (a & b, a ^ b) in which level j combines the
  // blocks of 2^(j-1) bits stored at their top bits; bit 63 is set to (g, p) = (0, 1) so that
  // the group of all 64 bits equals the group of bits 0..62. Only the bits a level needs are
  // opened (packed): 63 + 2 (32 + 16 + 8 + 4 + 2) + 1 = 188 ANDs per element in 7 rounds.
  constexpr uint64_t kTop = uint64_t{1} << 63;
  BShare g = band_batch_masked(p, {a}, {b}, ~kTop)[0];
  BShare prop = band_public(bxor(a, b), ~kTop);
  if (p.rank() == 0) {
    prop = {core::map<uint64_t, uint64_t>(prop.data, [](uint64_t v) { return v | kTop; })};
  }
  for (int level = 1; level <= 6; ++level) {
    const int s = 1 << (level - 1);
    const uint64_t m = block_tops(level);
    auto keep = [m](const BShare& old, const BShare& upd) {
      return BShare{core::zip<uint64_t, uint64_t, uint64_t>(
          old.data, upd.data, [m](uint64_t o, uint64_t u) { return (o & ~m) | (u & m); })};
    };
    if (level < 6) {
      const auto r =
          band_batch_masked(p, {prop, prop}, {bshift_left(g, s), bshift_left(prop, s)}, m);
      g = bxor(g, r[0]);  // r is zero outside m
      prop = keep(prop, r[1]);
    } else {
      g = bxor(g, band_batch_masked(p, {prop}, {bshift_left(g, s)}, m)[0]);
    }
  }
  // bit 0 of the result: a_63 ^ b_63 ^ g_63
  return bshift_right(bxor(bxor(a, b), g), 63);
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
