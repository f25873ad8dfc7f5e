// Power-of-two normalization (see range.h for the protocol and its costs).

#include "crypto/protocols/range.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>

#include "core/error.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "crypto/bilinear.h"
#include "crypto/fixed_point.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"

namespace veil::crypto {

namespace {

// Negative exponents are applied in chunks of this many bits (one truncation by kChunkBits per
// chunk), so that no product exceeds |result| 2^(f + kChunkBits) before its truncation.
constexpr int kChunkBits = 16;

int64_t buckets(const ExponentGrid& g) {
  return g.hi - g.lo + 3;  // lo - 1 .. hi + 1
}

void check_grid(const ExponentGrid& g, int frac_bits) {
  VEIL_CHECK(g.step_bits == 1 || g.step_bits == 2, "[normalize] expected step_bits 1 or 2, got {}",
             g.step_bits);
  VEIL_CHECK(g.lo <= g.hi, "[normalize] expected lo <= hi, got lo = {}, hi = {}", g.lo, g.hi);
  VEIL_CHECK(g.step_bits * g.lo >= -frac_bits && g.step_bits * (g.hi + 1) <= 40,
             "[normalize] thresholds 2^({} * [{}, {}]) must lie in [2^-{}, 2^40]", g.step_bits,
             g.lo, g.hi + 1, frac_bits);
}

// Flattened contiguous copy of a share's ring data.
core::Tensor flat(const AShare& x) {
  return x.data.contiguous().reshape({x.numel()});
}

// Share of the bucket table v (one int64 ring value per bucket lo-1..hi+1): v(lo-1) (times
// 1 - 2n when odd and signed) + sum_j c_j (v(j) - v(j-1)), c_j = [|x| >= t_j] (even) or
// [x >= t_j] - [x <= -t_j] (odd). Local.
AShare bucket_table(Party& p, const Normalized& n, const std::vector<int64_t>& v, bool odd) {
  const core::Shape& shape = n.ge.front().shape();
  const core::Device dev = n.ge.front().data.device();
  const auto base = static_cast<uint64_t>(v.front());
  core::Tensor acc = p.rank() == 0 ? core::Tensor::full<uint64_t>(shape, base, dev)
                                   : core::Tensor::zeros(shape, core::DType::kRing64, dev);
  const bool signed_odd = odd && n.grid.is_signed;
  if (signed_odd && base != 0) {
    core::sub_(acc, core::mul_scalar(n.negative.data, base * 2));
  }
  for (std::size_t j = 0; j < n.ge.size(); ++j) {
    const auto diff = static_cast<uint64_t>(v[j + 1] - v[j]);
    if (diff == 0) {
      continue;
    }
    core::add_(acc, core::mul_scalar(n.ge[j].data, diff));
    if (n.grid.is_signed) {
      const core::Tensor neg_part = core::mul_scalar(n.le[j].data, diff);
      if (odd) {
        core::sub_(acc, neg_part);
      } else {
        core::add_(acc, neg_part);
      }
    }
  }
  return {acc, 0};
}

// rescale_batch over groups of equal (frac_bits, target): one truncation per group.
std::vector<AShare> rescale_grouped(Party& p,
                                    const std::vector<AShare>& xs,
                                    const std::vector<int>& targets) {
  std::map<std::pair<int, int>, std::vector<std::size_t>> groups;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    groups[{xs[i].frac_bits, targets[i]}].push_back(i);
  }
  std::vector<AShare> out(xs.size());
  for (const auto& [key, idx] : groups) {
    std::vector<AShare> part;
    for (std::size_t i : idx) {
      part.push_back(xs[i]);
    }
    const auto done = rescale_batch(p, part, key.second);
    for (std::size_t k = 0; k < idx.size(); ++k) {
      out[idx[k]] = done[k];
    }
  }
  return out;
}

// Effective exponent of bucket k: clamp(k, lo, hi + 1).
int kappa_of(const ExponentGrid& g, int bucket) {
  return std::clamp(bucket, g.lo, g.hi + 1);
}

int64_t pow2_int(int e) {
  VEIL_INTERNAL_ASSERT(e >= 0 && e < 62, "pow2 exponent {} out of range", e);
  return int64_t{1} << e;
}

// One scaling request at bucket level: out = y 2^(e(k) - d) at out_frac (d = y.frac - out_frac),
// no factor where e(k) is empty.
struct BucketScaling {
  AShare y;
  std::vector<std::optional<int>> exponent;  // per bucket lo-1..hi+1
  bool odd;
  int out_frac;
};

std::vector<AShare> scale_buckets(Party& p,
                                  const Normalized& n,
                                  const std::vector<BucketScaling>& reqs) {
  const int64_t nb = buckets(n.grid);
  // Per request: the A factor (e' >= 0) and one factor per chunk c of negative e'.
  struct Plan {
    std::vector<int64_t> a;
    std::vector<std::vector<int64_t>> chunks;  // chunks[c][bucket]
  };
  std::vector<Plan> plans(reqs.size());
  int max_chunks = 0;
  for (std::size_t r = 0; r < reqs.size(); ++r) {
    const BucketScaling& q = reqs[r];
    VEIL_CHECK(q.out_frac <= q.y.frac_bits && q.out_frac >= 0,
               "[scale_by_pow2] expected 0 <= out_frac_bits <= y's frac_bits ({}), got {}",
               q.y.frac_bits, q.out_frac);
    VEIL_CHECK(q.y.shape() == n.ge.front().shape(),
               "[scale_by_pow2] expected y of the normalized shape {}, got {}",
               core::shape_str(n.ge.front().shape()), core::shape_str(q.y.shape()));
    const int d = q.y.frac_bits - q.out_frac;
    Plan& plan = plans[r];
    plan.a.assign(static_cast<std::size_t>(nb), 0);
    for (int64_t b = 0; b < nb; ++b) {
      const auto& e = q.exponent[static_cast<std::size_t>(b)];
      if (!e) {
        continue;
      }
      const int ep = *e - d;
      VEIL_CHECK(ep > -48 && ep < 48,
                 "[scale_by_pow2] expected exponents in (-48, 48) after the rescaling, got {}", ep);
      if (ep >= 0) {
        plan.a[static_cast<std::size_t>(b)] = pow2_int(ep);
        continue;
      }
      const int c = (-ep - 1) / kChunkBits;
      if (static_cast<int>(plan.chunks.size()) <= c) {
        plan.chunks.resize(static_cast<std::size_t>(c) + 1,
                           std::vector<int64_t>(static_cast<std::size_t>(nb), 0));
      }
      plan.chunks[static_cast<std::size_t>(c)][static_cast<std::size_t>(b)] =
          pow2_int(ep + (c + 1) * kChunkBits);
    }
    max_chunks = std::max(max_chunks, static_cast<int>(plan.chunks.size()));
  }
  auto any_nonzero = [](const std::vector<int64_t>& v) {
    return std::any_of(v.begin(), v.end(), [](int64_t e) { return e != 0; });
  };
  // y truncated by c * kChunkBits for the chunks c >= 1 (value y / 2^(cL) at y's scale).
  std::vector<std::vector<AShare>> y_chunk(reqs.size());
  for (std::size_t r = 0; r < reqs.size(); ++r) {
    y_chunk[r].push_back(reqs[r].y);
  }
  for (int c = 1; c < max_chunks; ++c) {
    std::vector<AShare> pre;
    std::vector<std::size_t> who;
    for (std::size_t r = 0; r < reqs.size(); ++r) {
      if (static_cast<int>(plans[r].chunks.size()) > c) {
        const AShare& y = reqs[r].y;
        pre.push_back({y.data, y.frac_bits + c * kChunkBits});
        who.push_back(r);
      }
    }
    std::vector<int> targets;
    for (std::size_t r : who) {
      targets.push_back(reqs[r].y.frac_bits);
    }
    const auto done = rescale_grouped(p, pre, targets);
    for (std::size_t i = 0; i < who.size(); ++i) {
      y_chunk[who[i]].resize(static_cast<std::size_t>(c) + 1);
      y_chunk[who[i]][static_cast<std::size_t>(c)] = done[i];
    }
  }
  // All products in one Beaver round.
  std::vector<BilinearOp> ops;
  std::vector<AShare> lhs;
  std::vector<AShare> rhs;
  struct Slot {
    std::size_t request;
    int chunk;  // -1: the A product
  };
  std::vector<Slot> slots;
  for (std::size_t r = 0; r < reqs.size(); ++r) {
    const BucketScaling& q = reqs[r];
    const core::Shape& shape = q.y.shape();
    if (any_nonzero(plans[r].a)) {
      ops.push_back(BilinearOp::mul(shape, shape));
      lhs.push_back(q.y);
      rhs.push_back(bucket_table(p, n, plans[r].a, q.odd));
      slots.push_back({r, -1});
    }
    for (std::size_t c = 0; c < plans[r].chunks.size(); ++c) {
      if (!any_nonzero(plans[r].chunks[c])) {
        continue;
      }
      ops.push_back(BilinearOp::mul(shape, shape));
      lhs.push_back(y_chunk[r][c]);
      rhs.push_back(bucket_table(p, n, plans[r].chunks[c], q.odd));
      slots.push_back({r, static_cast<int>(c)});
    }
  }
  std::vector<AShare> out(reqs.size());
  std::vector<AShare> chunk_sum(reqs.size());
  if (!ops.empty()) {
    const auto prods = beaver_batch(p, ops, lhs, rhs);
    for (std::size_t i = 0; i < slots.size(); ++i) {
      const BucketScaling& q = reqs[slots[i].request];
      // The integer factor keeps y's scale; reinterpret per the plan (see BucketScaling).
      if (slots[i].chunk < 0) {
        out[slots[i].request] = {prods[i].data, q.out_frac};
      } else {
        AShare& s = chunk_sum[slots[i].request];
        if (!s.data.defined()) {
          s = {prods[i].data, q.out_frac + kChunkBits};
        } else {
          core::add_(s.data, prods[i].data);
        }
      }
    }
  }
  // One truncation by kChunkBits for every chunk sum (N > 2: one round).
  std::vector<AShare> pending;
  std::vector<std::size_t> who;
  for (std::size_t r = 0; r < reqs.size(); ++r) {
    if (chunk_sum[r].data.defined()) {
      pending.push_back(chunk_sum[r]);
      who.push_back(r);
    }
  }
  if (!pending.empty()) {
    std::vector<int> targets;
    for (std::size_t r : who) {
      targets.push_back(reqs[r].out_frac);
    }
    const auto done = rescale_grouped(p, pending, targets);
    for (std::size_t i = 0; i < who.size(); ++i) {
      AShare& o = out[who[i]];
      o = o.data.defined() ? add(o, AShare{done[i].data, o.frac_bits}) : done[i];
    }
  }
  for (std::size_t r = 0; r < reqs.size(); ++r) {
    if (!out[r].data.defined()) {
      out[r] = {
          core::Tensor::zeros(reqs[r].y.shape(), core::DType::kRing64, reqs[r].y.data.device()),
          reqs[r].out_frac};
    }
  }
  return out;
}

}  // namespace

ExponentGrid default_grid(int frac_bits, bool is_signed) {
  ExponentGrid g;
  g.step_bits = 2;
  g.lo = -(frac_bits / 2);  // 4^lo >= 2^-frac_bits
  g.hi = 11;
  g.is_signed = is_signed;
  return g;
}

ExponentGrid grid_for_range(double lo, double hi, int frac_bits) {
  VEIL_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && hi >= lo,
             "[normalize] expected a range 0 < lo <= hi, got [{}, {}]", lo, hi);
  ExponentGrid g = default_grid(frac_bits);
  // Buckets [4^k, 4^(k+1)) with 4^lo <= 2^-frac_bits at the bottom and 4^(hi+1) <= 2^40 at the top.
  g.lo = std::clamp(static_cast<int>(std::floor(std::log2(lo) / 2)), g.lo, 19);
  g.hi = std::clamp(static_cast<int>(std::floor(std::log2(hi) / 2)), g.lo, 19);
  return g;
}

AShare Normalized::table(Party& p,
                         const std::function<double(int)>& g,
                         int frac_bits,
                         bool odd) const {
  const FixedPointEncoder enc(frac_bits);
  std::vector<int64_t> v;
  for (int b = grid.lo - 1; b <= grid.hi + 1; ++b) {
    v.push_back(static_cast<int64_t>(enc.encode_scalar(g(kappa_of(grid, b)), "normalize")));
  }
  AShare t = bucket_table(p, *this, v, odd);
  t.frac_bits = frac_bits;
  return t;
}

AShare Normalized::int_table(Party& p, const std::function<int64_t(int)>& g, bool odd) const {
  std::vector<int64_t> v;
  for (int b = grid.lo - 1; b <= grid.hi + 1; ++b) {
    v.push_back(g(kappa_of(grid, b)));
  }
  return bucket_table(p, *this, v, odd);
}

Normalized normalize(Party& p, const AShare& x, const ExponentGrid& grid) {
  const int f = p.frac_bits();
  VEIL_CHECK(x.data.defined() && x.frac_bits == f,
             "[normalize] expected a fixed-point share with frac_bits {}, got frac_bits {}", f,
             x.frac_bits);
  check_grid(grid, f);
  const int64_t n = x.numel();
  const int t = grid.thresholds();
  const int copies = grid.is_signed ? 2 * t + 1 : t;
  // One flat tensor of every difference: x - t_j (j = lo..hi+1), then -x - t_j and x (signed),
  // on x's device.
  const core::Tensor xf = flat(x);
  const core::Tensor neg_xf = grid.is_signed ? core::neg(xf) : core::Tensor();
  const FixedPointEncoder& enc = p.encoder();
  std::vector<core::Tensor> diffs;
  for (int c = 0; c < copies; ++c) {
    const bool negated = c >= t && c < 2 * t;
    uint64_t offset = 0;
    if (c < 2 * t && p.rank() == 0) {
      offset = enc.encode_scalar(std::ldexp(1.0, grid.step_bits * (grid.lo + c % t)), "normalize");
    }
    diffs.push_back(core::add_scalar(negated ? neg_xf : xf, uint64_t{0} - offset));
  }
  const AShare below = ltz_arith(p, {core::cat(diffs, 0), f});  // [difference < 0]
  auto part = [&](int c) {
    return core::Tensor(below.data.slice(0, c * n, (c + 1) * n).contiguous().reshape(x.shape()));
  };
  Normalized out;
  out.grid = grid;
  for (int j = 0; j < t; ++j) {
    out.ge.push_back(one_minus(p, {part(j), 0}));  // [x >= t_j] = 1 - [x < t_j]
  }
  if (grid.is_signed) {
    for (int j = 0; j < t; ++j) {
      out.le.push_back(one_minus(p, {part(t + j), 0}));  // [x <= -t_j] = 1 - [-x < t_j]
    }
    out.negative = {part(2 * t), 0};
  }
  // m = |x| b^-k for k in [lo, hi] (odd factor sign(x) b^-k), 1 in the outer buckets.
  BucketScaling req;
  req.y = x;
  req.odd = true;
  req.out_frac = f;
  for (int b = grid.lo - 1; b <= grid.hi + 1; ++b) {
    if (b >= grid.lo && b <= grid.hi) {
      req.exponent.emplace_back(-grid.step_bits * b);
    } else {
      req.exponent.emplace_back(std::nullopt);
    }
  }
  AShare m = scale_buckets(p, out, {req})[0];
  std::vector<int64_t> outer(static_cast<std::size_t>(buckets(grid)), 0);
  outer.front() = outer.back() = static_cast<int64_t>(enc.encode_scalar(1.0));
  out.mantissa = add(m, AShare{bucket_table(p, out, outer, false).data, f});
  return out;
}

std::vector<AShare> scale_by_pow2(Party& p,
                                  const Normalized& n,
                                  const std::vector<Pow2Scaling>& requests) {
  std::vector<BucketScaling> reqs;
  reqs.reserve(requests.size());
  for (const Pow2Scaling& r : requests) {
    BucketScaling q;
    q.y = r.y;
    q.odd = r.odd;
    q.out_frac = r.out_frac_bits < 0 ? p.frac_bits() : r.out_frac_bits;
    for (int b = n.grid.lo - 1; b <= n.grid.hi + 1; ++b) {
      q.exponent.emplace_back(r.exponent(kappa_of(n.grid, b)));
    }
    reqs.push_back(std::move(q));
  }
  return scale_buckets(p, n, reqs);
}

std::vector<AShare> rescale_batch(Party& p, const std::vector<AShare>& xs, int frac_bits) {
  if (xs.empty()) {
    return {};
  }
  const int target = frac_bits < 0 ? p.frac_bits() : frac_bits;
  const int from = xs.front().frac_bits;
  for (const AShare& x : xs) {
    VEIL_CHECK(x.frac_bits == from && from >= target,
               "[rescale_batch] expected equal frac_bits >= {}, got {} and {}", target, from,
               x.frac_bits);
  }
  if (from == target) {
    return xs;
  }
  if (xs.size() == 1) {
    return {rescale(p, xs.front(), target)};
  }
  std::vector<core::Tensor> parts;
  parts.reserve(xs.size());
  for (const AShare& x : xs) {
    parts.push_back(flat(x));
  }
  const AShare all = rescale(p, {core::cat(parts, 0), from}, target);
  std::vector<AShare> out;
  out.reserve(xs.size());
  int64_t at = 0;
  for (const AShare& x : xs) {
    out.push_back({all.data.slice(0, at, at + x.numel()).contiguous().reshape(x.shape()), target});
    at += x.numel();
  }
  return out;
}

std::vector<AShare> powers(Party& p, const AShare& t, int degree) {
  VEIL_CHECK(degree >= 1, "[powers] expected degree >= 1, got {}", degree);
  std::vector<AShare> pw{t};  // pw[i - 1] = t^i
  int have = 1;
  while (have < degree) {
    const int next = std::min(2 * have, degree);
    std::vector<BilinearOp> ops;
    std::vector<AShare> lhs;
    std::vector<AShare> rhs;
    for (int i = have + 1; i <= next; ++i) {
      ops.push_back(i == 2 * have ? BilinearOp::square(t.shape())
                                  : BilinearOp::mul(t.shape(), t.shape()));
      lhs.push_back(pw[static_cast<std::size_t>(have - 1)]);
      rhs.push_back(pw[static_cast<std::size_t>(i - have - 1)]);
    }
    const auto prods = rescale_batch(p, beaver_batch(p, ops, lhs, rhs), t.frac_bits);
    pw.insert(pw.end(), prods.begin(), prods.end());
    have = next;
  }
  return pw;
}

AShare polynomial(Party& p,
                  const std::vector<AShare>& powers,
                  const std::vector<double>& coeffs,
                  int out_frac_bits) {
  VEIL_CHECK(!powers.empty() && !coeffs.empty() && coeffs.size() <= powers.size() + 1,
             "[polynomial] expected at most {} coefficients, got {}", powers.size() + 1,
             coeffs.size());
  const int big_f = powers.front().frac_bits;
  const FixedPointEncoder enc(big_f);
  const core::Tensor& first = powers.front().data;
  const std::size_t terms = coeffs.size() - 1;
  bool fused = !first.is_cuda();
  for (std::size_t i = 0; i < terms; ++i) {
    const AShare& pw = powers[i];
    VEIL_CHECK(pw.frac_bits == big_f && pw.shape() == first.shape(),
               "[polynomial] expected powers of one shape and frac_bits, got {} at {} and {} at {}",
               pw.data.str(), pw.frac_bits, first.str(), big_f);
    fused = fused && !pw.data.is_cuda() && pw.data.is_contiguous();
  }
  AShare acc;
  if (fused) {
    // one pass on the host: c0 (party 0) + sum_k c_k p_k at scale 2F
    std::vector<const uint64_t*> src(terms);
    std::vector<uint64_t> k(terms);
    for (std::size_t i = 0; i < terms; ++i) {
      src[i] = powers[i].data.data<uint64_t>();
      k[i] = enc.encode_scalar(coeffs[i + 1]);
    }
    const uint64_t c0 =
        p.rank() == 0 ? FixedPointEncoder(2 * big_f).encode_scalar(coeffs[0], "polynomial") : 0;
    core::Tensor out = core::Tensor::empty(first.shape(), core::DType::kRing64);
    uint64_t* o = out.data<uint64_t>();
    core::parallel_for(0, first.numel(), int64_t{1} << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t e = lo; e < hi; ++e) {
        uint64_t sum = c0;
        for (std::size_t i = 0; i < terms; ++i) {
          sum += k[i] * src[i][e];
        }
        o[e] = sum;
      }
    });
    acc = {std::move(out), 2 * big_f};
  } else {
    acc = {core::Tensor::zeros(first.shape(), core::DType::kRing64, first.device()), 2 * big_f};
    for (std::size_t i = 1; i < coeffs.size(); ++i) {
      core::add_(acc.data, core::mul_scalar(powers[i - 1].data, enc.encode_scalar(coeffs[i])));
    }
    acc = add_public(p, acc, coeffs[0]);
  }
  return rescale(p, acc, out_frac_bits);
}

AShare mantissa_unit(Party& p, const Normalized& n, int extra_bits) {
  const int f = n.mantissa.frac_bits;
  const int big_f = f + extra_bits;
  const double b = std::ldexp(1.0, n.grid.step_bits);
  // 2m - (b + 1) is exact at scale f; dividing by b - 1 (= 1 or 3) costs one truncation.
  const AShare u = add_public(p, mul_public_int(n.mantissa, 2), -(b + 1.0));
  if (n.grid.step_bits == 1) {
    return {core::shift_left(u.data, extra_bits), big_f};
  }
  const uint64_t inv = FixedPointEncoder(big_f).encode_scalar(1.0 / (b - 1.0));
  return rescale(p, {core::mul_scalar(u.data, inv), f + big_f}, big_f);
}

}  // namespace veil::crypto
