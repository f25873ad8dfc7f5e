#include "crypto/protocols/binary.h"

#include "core/elementwise.h"
#include "core/ops.h"

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

BShare a2b(Party& p, const AShare& x) {
  VEIL_CHECK(x.data.defined() && x.data.dtype() == core::DType::kRing64,
             "[a2b] expected a ring64 share, got {}", x.data.str());
  std::vector<BShare> addends;
  for (int j = 0; j < p.world_size(); ++j) {
    addends.push_back(own_share_as_binary(p, x, j));
  }
  // Carry-save reduction 3 -> 2 until two addends remain (one AND round each).
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
  return kogge_stone_add(p, addends[0], addends[1]);
}

BShare ltz(Party& p, const AShare& x) {
  return bshift_right(a2b(p, x), 63);
}

AShare b2a_bit(Party& p, const BShare& bit) {
  const RandomBits r = p.provider().random_bits(bit.shape());
  const core::Tensor masked = core::zip<uint64_t, uint64_t, uint64_t>(
      bit.data, r.binary, [](uint64_t b, uint64_t rb) { return (b ^ rb) & 1U; }, "b2a");
  const core::Tensor c = p.comm().all_reduce(p.next_tag("b2a"), masked, comm::ReduceOp::kXor);
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
