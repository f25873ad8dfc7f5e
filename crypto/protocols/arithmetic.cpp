#include "crypto/protocols/arithmetic.h"

#include <initializer_list>
#include <utility>

#include "core/elementwise.h"
#include "core/ops.h"
#include "core/parallel.h"
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
  return {p.rank() == 0 ? core::Tensor::full<uint64_t>(shape, enc).to(p.device())
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

/// The elementwise (same-shape) Beaver output z = c + e (b + [first] d) + a d in one pass over
/// the five operands (the generic path needs five temporaries).
// Shares, masks and triples of one protocol step must live on one device (the party's).
void check_one_device(std::initializer_list<const core::Tensor*> ts, const char* op) {
  const core::Device dev = (*ts.begin())->device();
  for (const core::Tensor* t : ts) {
    VEIL_CHECK(t->device() == dev,
               "[{}] expected every operand and triple on one device, got {} and {}", op,
               (*ts.begin())->str(), t->str());
  }
}

core::Tensor elementwise_beaver_output(bool first,
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
  if (z.is_cuda()) {
    check_one_device({&ec, &dc, &ac, &bc, &cc}, "beaver");
    kernels::cuda::beaver_output(z.numel(), first, ec.device_data<uint64_t>(),
                                 dc.device_data<uint64_t>(), ac.device_data<uint64_t>(),
                                 bc.device_data<uint64_t>(), cc.device_data<uint64_t>(), trunc_bits,
                                 z.device_data<uint64_t>(), z.device().index);
    return z;
  }
  const uint64_t* pe = ec.data<uint64_t>();
  const uint64_t* pd = dc.data<uint64_t>();
  const uint64_t* pa = ac.data<uint64_t>();
  const uint64_t* pb = bc.data<uint64_t>();
  const uint64_t* pc = cc.data<uint64_t>();
  uint64_t* pz = z.data<uint64_t>();
  const uint64_t dmask = first ? ~uint64_t{0} : 0;
  if (trunc_bits == 0) {
    core::parallel_for(0, z.numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; ++j) {
        pz[j] = pc[j] + pe[j] * (pb[j] + (pd[j] & dmask)) + pa[j] * pd[j];
      }
    });
    return z;
  }
  // The 2-party local truncation of truncate(): P0 z >> bits, P1 -((-z) >> bits) (arithmetic).
  const uint64_t flip = first ? 0 : ~uint64_t{0};
  core::parallel_for(0, z.numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) {
      const uint64_t v = pc[j] + pe[j] * (pb[j] + (pd[j] & dmask)) + pa[j] * pd[j];
      // v ^ flip - flip... negation as (v ^ m) - m with m = 0 or all ones
      const auto s = static_cast<int64_t>((v ^ flip) - flip) >> trunc_bits;
      pz[j] = (static_cast<uint64_t>(s) ^ flip) - flip;
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
    BeaverTriple t = p.provider().beaver(ops[i]);
    // a GPU party's triples are drawn on its GPU; operands held on another device (a mixed
    // call) get copies there (no communication)
    const core::Device d = xs[i].data.device();
    if (t.a.device() != d) {
      t.a = t.a.to(d);
      t.b = ops[i].is_square() ? t.a : t.b.to(d);
      t.c = t.c.to(d);
    }
    triples.push_back(std::move(t));
    total += xs[i].numel() + (ops[i].is_square() ? 0 : ys[i].numel());
  }
  // Masked operands of every product, packed into one message: [e_0, d_0, e_1, d_1, ...].
  const core::Device device = m == 0 ? core::Device::cpu() : xs[0].data.device();
  core::Tensor masked = core::Tensor::empty({total}, core::DType::kRing64, device);
  uint64_t* out = masked.device_data<uint64_t>();
  auto pack = [&out](const core::Tensor& v, const core::Tensor& mask) {
    const core::Tensor vc = v.contiguous();
    if (vc.is_cuda()) {
      check_one_device({&vc, &mask}, "beaver");
      kernels::cuda::ring_mask(vc.numel(), vc.device_data<uint64_t>(), mask.device_data<uint64_t>(),
                               out, vc.device().index);
      out += vc.numel();
      return;
    }
    const uint64_t* pv = vc.data<uint64_t>();
    const uint64_t* pm = mask.data<uint64_t>();
    uint64_t* po = out;
    core::parallel_for(0, vc.numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; ++j) {
        po[j] = pv[j] - pm[j];
      }
    });
    out += vc.numel();
  };
  for (std::size_t i = 0; i < m; ++i) {
    pack(xs[i].data, triples[i].a);
    if (!ops[i].is_square()) {
      pack(ys[i].data, triples[i].b);
    }
  }
  const std::string tag = p.next_tag(m == 1 ? ops[0].name() : "beaver_batch");
  const core::Tensor opened = p.comm().all_reduce(tag, std::move(masked), comm::ReduceOp::kSum);
  std::vector<AShare> result;
  result.reserve(m);
  int64_t at = 0;
  for (std::size_t i = 0; i < m; ++i) {
    const core::Tensor e = opened.slice(0, at, at + xs[i].numel()).reshape(ops[i].x_shape);
    at += xs[i].numel();
    core::Tensor d = e;  // a square: the same opened value (its triple has b = a)
    if (!ops[i].is_square()) {
      d = opened.slice(0, at, at + ys[i].numel()).reshape(ops[i].y_shape);
      at += ys[i].numel();
    }
    const int frac = xs[i].frac_bits + ys[i].frac_bits;
    const int target = rescale_to.empty() ? frac : rescale_to[i];
    VEIL_CHECK(target <= frac, "[rescale] cannot raise frac_bits from {} to {}", frac, target);
    // z_i = c_i + f(e, b_i + [i = 0] d) + f(a_i, d)
    if (ops[i].is_elementwise()) {
      const int fused = p.world_size() == 2 ? frac - target : 0;
      result.push_back(rescale(
          p, {elementwise_beaver_output(p.rank() == 0, e, d, triples[i], fused), frac - fused},
          target));
      continue;
    }
    const core::Tensor b_plus = p.rank() == 0 ? core::add(triples[i].b, d) : triples[i].b;
    core::Tensor z = ops[i].apply(e, b_plus);
    core::add_(z, ops[i].apply(triples[i].a, d));
    core::add_(z, triples[i].c);
    result.push_back(rescale(p, {z, frac}, target));
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
        const auto neg = static_cast<int64_t>(uint64_t{0} - px[j]);
        po[j] = uint64_t{0} - static_cast<uint64_t>(neg >> bits);
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
  core::Tensor z = core::sub(x.data, pair.r);  // the masked value, a fresh tensor
  if (p.rank() != 0) {
    p.comm().send_tensor(0, tag, std::move(z));
    return {pair.r_shifted, x.frac_bits - bits};
  }
  for (int j = 1; j < p.world_size(); ++j) {
    core::add_(z, p.comm().recv_tensor(j, tag, x.shape(), core::DType::kRing64, z.device()));
  }
  // floor(z / 2^d) + floor(r / 2^d) averages x / 2^d - 1 (each floor drops a uniform fraction):
  // adding one unit makes the rounding unbiased, like the 2-party floor/ceil pair.
  core::Tensor out = core::add_scalar(core::shift_right_arith(z, bits), uint64_t{1});
  core::add_(out, pair.r_shifted);
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
