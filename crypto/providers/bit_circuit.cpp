#include "crypto/providers/bit_circuit.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>

#include "core/error.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/cuda_backend.h"

namespace veil::crypto {

namespace {

using Lit = Literal;
using Term = std::vector<Literal>;

// Compiles each term's expansion into GateType::code. The product of a term's literals
// (alpha_l ^ beta_l x_l) expands over the subsets u of its literals into the coefficients
// prod_{l not in u} alpha_l * prod_{l in u} beta_l of the monomials x_u, with alpha_l = q_l,
// beta_l = 1 for a masked literal, alpha_l = ~q_l, beta_l = 1 for an equal literal and
// alpha_l = 0, beta_l = ~q_l for a generate literal (q: the public bits). Literal l doubles the
// live entries: the entry that puts l into u keeps its temporary (beta = 1), the one that leaves
// it out gets a new temporary ANDed with alpha; a generate literal keeps only the entries with l
// in u, ANDed with ~q_l in place. The structure depends only on the literal kinds, so it is fixed
// per gate type; evaluate_level supplies the bits.
void compile_gate(GateType& g) {
  for (std::size_t o = 0; o < g.outputs.size(); ++o) {
    GateType::OutputCode& out = g.code.emplace_back();
    for (std::size_t ti = 0; ti < g.outputs[o].size(); ++ti) {
      const Term& t = g.outputs[o][ti];
      struct Entry {
        uint16_t slot;
        uint32_t subset;
      };
      std::vector<Entry> live{{0, 0}};
      uint16_t next_slot = 1;
      for (std::size_t l = 0; l < t.size(); ++l) {
        const auto input = static_cast<uint16_t>(t[l].input);
        const uint32_t bit = 1U << l;
        if (t[l].kind == Lit::Kind::kGenerate) {
          for (Entry& e : live) {
            out.steps.push_back({e.slot, e.slot, input, 0, ~uint64_t{0}});
            e.subset |= bit;
          }
          continue;
        }
        const uint64_t flip = t[l].kind == Lit::Kind::kEqual ? ~uint64_t{0} : 0;
        const std::size_t before = live.size();
        for (std::size_t i = 0; i < before; ++i) {
          const uint16_t slot = next_slot++;
          out.steps.push_back({slot, live[i].slot, input, 0, flip});
          live.push_back({slot, live[i].subset});
          live[i].subset |= bit;
        }
      }
      VEIL_INTERNAL_ASSERT(next_slot <= 256, "gate term with more than 256 temporaries");
      for (const Entry& e : live) {
        out.sums.push_back({e.slot, static_cast<int16_t>(g.monomial_of[o][ti][e.subset])});
      }
      out.terms.push_back(
          {static_cast<uint32_t>(out.steps.size()), static_cast<uint32_t>(out.sums.size())});
    }
  }
}

// A gate type from its outputs (XORs of products of literals); the dealer's products are every
// subset of two or more inputs of some term (the monomials of the expansion, see the header).
GateType make_gate(int k, std::vector<std::vector<Term>> outputs) {
  VEIL_INTERNAL_ASSERT(k >= 1 && k <= 8, "gates have 1..8 inputs");
  GateType g;
  g.inputs = k;
  g.outputs = std::move(outputs);
  const uint32_t size = 1U << k;
  std::vector<bool> used(size, false);
  for (const auto& out : g.outputs) {
    for (const Term& t : out) {
      uint32_t s = 0;
      for (const Lit& l : t) {
        VEIL_INTERNAL_ASSERT((s >> l.input & 1U) == 0, "a term repeats an input");
        s |= 1U << l.input;
      }
      for (uint32_t u = s;; u = (u - 1) & s) {  // every subset of s
        used[u] = true;
        if (u == 0) {
          break;
        }
      }
    }
  }
  g.product_index.assign(size, -1);
  for (uint32_t u = 0; u < size; ++u) {
    if (used[u] && std::popcount(u) >= 2) {
      g.product_index[u] = static_cast<int>(g.products.size());
      g.products.push_back(u);
    }
  }
  VEIL_INTERNAL_ASSERT(g.products.size() <= 64, "gate with more than 64 products");
  for (const auto& out : g.outputs) {
    auto& per_term = g.monomial_of.emplace_back();
    for (const Term& t : out) {
      auto& per_subset = per_term.emplace_back();
      for (uint32_t u = 0; u < (1U << t.size()); ++u) {
        uint32_t mask = 0;
        for (std::size_t l = 0; l < t.size(); ++l) {
          if ((u >> l) & 1U) {
            mask |= 1U << t[l].input;
          }
        }
        per_subset.push_back(mask == 0                  ? -1
                             : std::popcount(mask) == 1 ? std::countr_zero(mask)
                                                        : k + g.product_index[mask]);
      }
    }
  }
  compile_gate(g);
  return g;
}

// G = g_{k-1} ^ p_{k-1} (g_{k-2} ^ p_{k-2} (... g_0)), the terms g_i p_{i+1} ... p_{k-1} (they
// exclude each other, so XOR is OR); P = p_0 ... p_{k-1}. gen(i) and eq(i) give the literals.
template <class Gen, class Eq>
std::vector<Term> generate_terms(int k, int lowest, Gen gen, Eq eq) {
  std::vector<Term> terms;
  for (int i = lowest; i < k; ++i) {
    Term t{gen(i)};
    for (int j = i + 1; j < k; ++j) {
      t.push_back(eq(j));
    }
    terms.push_back(t);
  }
  return terms;
}

// Level 0 of [c < r] on k bit positions: G = "r > c on the group" and, if with_p, P = "r == c".
GateType local_less_gate(int k, bool with_p) {
  auto gen = [](int i) {
    return Lit{Lit::Kind::kGenerate, i};
  };
  auto eq = [](int i) {
    return Lit{Lit::Kind::kEqual, i};
  };
  std::vector<std::vector<Term>> outs{generate_terms(k, 0, gen, eq)};
  if (with_p) {
    Term p;
    for (int i = 0; i < k; ++i) {
      p.push_back(eq(i));
    }
    outs.push_back({p});
  }
  return make_gate(k, outs);
}

// Level 0 of [c == r] on 4 positions: AND of the equality bits.
GateType local_equal_gate() {
  Term p;
  for (int i = 0; i < 4; ++i) {
    p.push_back(Lit{Lit::Kind::kEqual, i});
  }
  return make_gate(4, {{p}});
}

// Masked 4-way combine of (G, P) pairs, lowest group first. with_p0: inputs G0 P0 G1 P1 G2 P2
// G3 P3, outputs G and P; otherwise inputs G0 G1 P1 G2 P2 G3 P3, output G.
GateType combine_gate(bool with_p0) {
  auto g_at = [with_p0](int i) {
    return with_p0 ? 2 * i : (i == 0 ? 0 : 2 * i - 1);
  };
  auto gen = [&](int i) {
    return Lit{Lit::Kind::kMasked, g_at(i)};
  };
  auto eq = [&](int i) {
    return Lit{Lit::Kind::kMasked, g_at(i) + 1};
  };
  std::vector<std::vector<Term>> outs{generate_terms(4, 0, gen, eq)};
  if (with_p0) {
    Term p;
    for (int i = 0; i < 4; ++i) {
      p.push_back(eq(i));
    }
    outs.push_back({p});
  }
  return make_gate(with_p0 ? 8 : 7, outs);
}

// Masked AND of k bits.
GateType and_gate(int k) {
  Term t;
  for (int i = 0; i < k; ++i) {
    t.push_back(Lit{Lit::Kind::kMasked, i});
  }
  return make_gate(k, {{t}});
}

struct GateTypes {
  GateType less4 = local_less_gate(4, true);
  GateType less4_g = local_less_gate(4, false);
  GateType less3 = local_less_gate(3, true);
  GateType equal4 = local_equal_gate();
  GateType combine8 = combine_gate(true);
  GateType combine7 = combine_gate(false);
  GateType and2 = and_gate(2);
  GateType and3 = and_gate(3);
  GateType and4 = and_gate(4);

  const GateType& and_of(int k) const { return k == 2 ? and2 : k == 3 ? and3 : and4; }
};

const GateTypes& gate_types() {
  static const GateTypes types;
  return types;
}

CircuitLevel make_level(int in_width, int out_width, bool local) {
  CircuitLevel l;
  l.in_width = in_width;
  l.out_width = out_width;
  l.local = local;
  return l;
}

}  // namespace

// ---- circuits ---------------------------------------------------------------------------------

int BitCircuit::masked_levels() const {
  return static_cast<int>(std::count_if(levels_.begin(), levels_.end(),
                                        [](const CircuitLevel& l) { return !l.local; }));
}

void BitCircuit::finish_layout() {
  int mask = 0;
  int prod = 0;
  int width = input_width_;
  for (auto& level : levels_) {
    VEIL_INTERNAL_ASSERT(level.in_width == width, "circuit level widths");
    int at = 0;
    int outs = 0;
    for (auto& g : level.gates) {
      VEIL_INTERNAL_ASSERT(g.first == at, "circuit gates must cover their inputs in order");
      at += g.type->inputs;
      outs += g.type->output_count();
      g.product_offset = prod;
      prod += g.type->product_count();
    }
    VEIL_INTERNAL_ASSERT(at == level.in_width && outs == level.out_width && outs <= 64,
                         "circuit level layout");
    if (!level.local) {
      level.mask_offset = mask;
      mask += level.in_width;
    }
    width = level.out_width;
  }
  VEIL_INTERNAL_ASSERT(width == 1, "a circuit ends in one wire");
  mask_bits_ = mask;
  product_bits_ = prod;
  compile_program();
}

const BitCircuit& BitCircuit::get(CircuitKind kind, int width) {
  VEIL_CHECK(kind == CircuitKind::kAnd ? (width >= 1 && width <= 64) : width == 0,
             "[circuit] bad width {} for circuit kind {}", width, static_cast<int>(kind));
  static std::mutex mu;
  static std::map<std::pair<int, int>, std::unique_ptr<BitCircuit>> cache;
  const std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[{static_cast<int>(kind), width}];
  if (slot) {
    return *slot;
  }
  const GateTypes& t = gate_types();
  auto c = std::unique_ptr<BitCircuit>(new BitCircuit());
  switch (kind) {
    case CircuitKind::kLessThanZero: {
      c->uses_r_ = true;
      c->input_width_ = 63;  // bits 0..62 of c and r; bit 63 enters the output directly
      CircuitLevel l0 = make_level(63, 31, true);
      l0.gates.push_back({&t.less4_g, 0});
      for (int j = 1; j < 15; ++j) {
        l0.gates.push_back({&t.less4, 4 * j});
      }
      l0.gates.push_back({&t.less3, 60});
      CircuitLevel l1 = make_level(31, 7, false);
      l1.gates.push_back({&t.combine7, 0});
      for (int s = 1; s < 4; ++s) {
        l1.gates.push_back({&t.combine8, 7 + 8 * (s - 1)});
      }
      CircuitLevel l2 = make_level(7, 1, false);
      l2.gates.push_back({&t.combine7, 0});
      c->levels_ = {l0, l1, l2};
      break;
    }
    case CircuitKind::kEqualZero: {
      c->uses_r_ = true;
      c->input_width_ = 64;
      CircuitLevel l0 = make_level(64, 16, true);
      for (int j = 0; j < 16; ++j) {
        l0.gates.push_back({&t.equal4, 4 * j});
      }
      CircuitLevel l1 = make_level(16, 4, false);
      for (int s = 0; s < 4; ++s) {
        l1.gates.push_back({&t.and4, 4 * s});
      }
      CircuitLevel l2 = make_level(4, 1, false);
      l2.gates.push_back({&t.and4, 0});
      c->levels_ = {l0, l1, l2};
      break;
    }
    case CircuitKind::kAnd: {
      c->input_width_ = width;
      // ceil(w / 4) gates of balanced sizes (2..4 inputs each) per level; width 1: no level
      for (int w = width; w > 1; w = (w + 3) / 4) {
        const int gates = (w + 3) / 4;
        CircuitLevel l = make_level(w, gates, false);
        int at = 0;
        for (int g = 0; g < gates; ++g) {
          const int size = w / gates + (g < w % gates ? 1 : 0);
          l.gates.push_back({&t.and_of(size), at});
          at += size;
        }
        c->levels_.push_back(l);
      }
      break;
    }
  }
  c->finish_layout();
  slot = std::move(c);
  return *slot;
}

// ---- the flat program (kernels/bit_circuit_eval.h)
// -----------------------------------------------

namespace {
template <class T>
std::size_t append_section(std::vector<uint64_t>& blob, const std::vector<T>& items) {
  static_assert(std::is_trivially_copyable_v<T> && alignof(T) <= alignof(uint64_t));
  const std::size_t offset = blob.size() * sizeof(uint64_t);
  const std::size_t bytes = items.size() * sizeof(T);
  blob.resize(blob.size() + (bytes + sizeof(uint64_t) - 1) / sizeof(uint64_t), 0);
  if (bytes != 0) {
    std::memcpy(reinterpret_cast<std::byte*>(blob.data()) + offset, items.data(), bytes);
  }
  return offset;
}
}  // namespace

void BitCircuit::compile_program() {
  namespace kc = kernels::circuit;
  std::vector<kc::Gate> gates;
  std::vector<kc::Output> outputs;
  std::vector<kc::Term> terms;
  std::vector<kc::Step> steps;
  std::vector<kc::Sum> sums;
  std::map<const GateType*, std::pair<uint32_t, uint32_t>> code_of;  // its outputs' range
  auto size32 = [](std::size_t v) {
    return static_cast<uint32_t>(v);
  };
  for (const CircuitLevel& level : levels_) {
    level_gates_.emplace_back(static_cast<int32_t>(gates.size()),
                              static_cast<int32_t>(level.gates.size()));
    uint32_t out_at = 0;
    for (const GateInstance& g : level.gates) {
      const GateType& t = *g.type;
      VEIL_INTERNAL_ASSERT(
          t.inputs <= kc::kMaxGateInputs && t.product_count() <= kc::kMaxGateProducts,
          "gate type beyond the evaluator's limits");
      auto [it, fresh] = code_of.try_emplace(g.type);
      if (fresh) {
        it->second.first = size32(outputs.size());
        for (const GateType::OutputCode& oc : t.code) {
          const uint32_t step0 = size32(steps.size());
          const uint32_t sum0 = size32(sums.size());
          kc::Output o{size32(terms.size()), 0, step0, sum0};
          for (const GateType::Step& st : oc.steps) {
            VEIL_INTERNAL_ASSERT(st.dst < kc::kMaxTemporaries,
                                 "gate term with too many temporaries");
            steps.push_back(st);
          }
          for (const GateType::Sum& sm : oc.sums) {
            sums.push_back(sm);
          }
          for (const GateType::TermCode& tc : oc.terms) {
            terms.push_back({step0 + tc.steps_end, sum0 + tc.sums_end});
          }
          o.terms_end = size32(terms.size());
          outputs.push_back(o);
        }
        it->second.second = size32(outputs.size());
      }
      gates.push_back({static_cast<uint32_t>(g.first), static_cast<uint32_t>(g.product_offset),
                       out_at, static_cast<uint16_t>(t.inputs),
                       static_cast<uint16_t>(t.product_count()), it->second.first,
                       it->second.second});
      out_at += static_cast<uint32_t>(t.output_count());
    }
  }
  section_[0] = append_section(program_, gates);
  section_[1] = append_section(program_, outputs);
  section_[2] = append_section(program_, terms);
  section_[3] = append_section(program_, steps);
  section_[4] = append_section(program_, sums);
}

kernels::circuit::Level BitCircuit::program(std::size_t li, core::Device device) const {
  namespace kc = kernels::circuit;
  VEIL_INTERNAL_ASSERT(li < levels_.size(), "circuit level index");
  const std::byte* base = reinterpret_cast<const std::byte*>(program_.data());
  if (device.type == core::Device::Type::kCUDA) {
    const std::lock_guard<std::mutex> lock(device_mu_);
    auto& t = device_program_[device.index];
    if (!t.defined()) {
      t = core::Tensor::from_vector<uint64_t>(program_, {static_cast<int64_t>(program_.size())})
              .to(device);
      // every party thread's stream reads it: wait for the upload on this thread's stream
      kernels::cuda::synchronize(device.index);
    }
    base = reinterpret_cast<const std::byte*>(t.device_data<uint64_t>());
  }
  kc::Level l;
  l.gates = reinterpret_cast<const kc::Gate*>(base + section_[0]) + level_gates_[li].first;
  l.gate_count = level_gates_[li].second;
  l.in_width = levels_[li].in_width;
  l.out_width = levels_[li].out_width;
  l.outputs = reinterpret_cast<const kc::Output*>(base + section_[1]);
  l.terms = reinterpret_cast<const kc::Term*>(base + section_[2]);
  l.steps = reinterpret_cast<const kc::Step*>(base + section_[3]);
  l.sums = reinterpret_cast<const kc::Sum*>(base + section_[4]);
  return l;
}

// ---- spec and layout --------------------------------------------------------------------------

std::string CircuitSpec::str() const {
  const char* name = kind == CircuitKind::kLessThanZero ? "ltz"
                     : kind == CircuitKind::kEqualZero  ? "eqz"
                                                        : "and";
  const std::string w = kind == CircuitKind::kAnd ? fmt::format("({})", width) : "";
  const std::string inj =
      inject ? fmt::format("+inject({}{})", times_masked ? "x," : "", extras) : "";
  return fmt::format("{}{}{}", name, w, inj);
}

void CircuitSpec::validate() const {
  VEIL_CHECK(kind == CircuitKind::kAnd ? (width >= 1 && width <= 64) : width == 0,
             "[circuit] bad width {} for {}", width, str());
  VEIL_CHECK(extras >= 0 && extras <= 64, "[circuit] expected 0..64 extra multiplicands, got {}",
             extras);
  VEIL_CHECK(inject || (!times_masked && extras == 0),
             "[circuit] products need the injection round ({})", str());
  VEIL_CHECK(!times_masked || kind != CircuitKind::kAnd,
             "[circuit] the AND circuit has no masked input to multiply ({})", str());
}

CircuitLayout::CircuitLayout(const CircuitSpec& spec, int64_t n_elems)
    : n(n_elems), blocks((n_elems + 63) / 64) {
  const BitCircuit& c = BitCircuit::get(spec.kind, spec.width);
  mask_planes = c.mask_bits() + (spec.inject ? 1 : 0);
  product_planes = c.product_bits();
  int64_t at = 0;
  r_planes = at;
  at += c.uses_r() ? 64 * blocks : 0;
  extra_masks = at;
  at += spec.extras * n;
  mask_stream = at;
  at += mask_planes * blocks;
  random_words = at;
  at = 0;
  r_arith = at;
  at += c.uses_r() ? n : 0;
  s_arith = at;
  at += spec.inject ? n : 0;
  rs = at;
  at += spec.times_masked ? n : 0;
  extra_products = at;
  at += spec.extras * n;
  product_stream = at;
  at += product_planes * blocks;
  corrected_words = at;
}

// ---- the dealer's correction ------------------------------------------------------------------

core::Tensor circuit_correction(const CircuitSpec& spec,
                                int64_t n,
                                const std::vector<std::vector<core::Tensor>>& draws) {
  const CircuitLayout lay(spec, n);
  const BitCircuit& c = BitCircuit::get(spec.kind, spec.width);
  const std::size_t parties = draws.size();
  for (std::size_t j = 0; j < parties; ++j) {
    VEIL_INTERNAL_ASSERT(draws[j].size() == 2 && draws[j][0].numel() == lay.random_words &&
                             (j == 0 || draws[j][1].numel() == lay.corrected_words),
                         "circuit correlation draws");
  }
  // The secrets: XOR (planes) and sums (arithmetic masks) of every party's random part.
  // (one pass per further party over three ranges: planes XOR, arithmetic masks add, mask planes
  // XOR; the first party's draw is read, not copied, by the second's pass)
  core::Tensor rnd = parties == 1 ? draws[0][0].clone()
                                  : core::Tensor::empty({lay.random_words}, core::DType::kRing64);
  uint64_t* pr = rnd.data<uint64_t>();
  for (std::size_t j = 1; j < parties; ++j) {
    const uint64_t* a = j == 1 ? draws[0][0].data<uint64_t>() : pr;
    const uint64_t* q = draws[j][0].data<uint64_t>();
    core::parallel_for(0, lay.random_words, 1 << 16, [&](int64_t lo, int64_t hi) {
      const int64_t x_end = std::clamp(lay.extra_masks, lo, hi);
      const int64_t a_end = std::clamp(lay.mask_stream, x_end, hi);
      for (int64_t i = lo; i < x_end; ++i) {
        pr[i] = a[i] ^ q[i];
      }
      for (int64_t i = x_end; i < a_end; ++i) {
        pr[i] = a[i] + q[i];
      }
      for (int64_t i = a_end; i < hi; ++i) {
        pr[i] = a[i] ^ q[i];
      }
    });
  }
  // The true corrected part, then minus (XOR) the other parties' draws.
  // Every word is written below (r and r s for all n elements when the circuit uses r, which
  // every circuit with times_masked does; s and the extra products for all n with the injection
  // round; all product planes of every block, whose offsets tile [0, product_bits)), so no fill.
  VEIL_INTERNAL_ASSERT(!spec.times_masked || c.uses_r(), "r s needs r");
  core::Tensor k = core::Tensor::empty({lay.corrected_words}, core::DType::kRing64);
  uint64_t* pk = k.data<uint64_t>();
  const int sbit = c.mask_bits();
  // Groups of kGroup blocks: the gates' products are formed for the group's blocks side by side
  // (the subset walk is paid once per group), and r's planes are turned into words group-wise.
  constexpr int kGroup = kernels::circuit::kHostLanes;
  const int64_t groups = (lay.blocks + kGroup - 1) / kGroup;
  core::parallel_for(0, groups, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t grp = lo; grp < hi; ++grp) {
      const int64_t b0 = grp * kGroup;
      const int lanes = static_cast<int>(std::min<int64_t>(kGroup, lay.blocks - b0));
      if (c.uses_r()) {
        // lane-major: word i of block b0 + l at r[i kGroup + l] (planes -> the words r)
        uint64_t r[64 * kGroup];
        kernels::circuit::load_transpose64_lanes<kGroup>(pr + lay.r_planes + 64 * b0, 64 * lanes,
                                                         r);
        for (int l = 0; l < lanes; ++l) {
          const int64_t b = b0 + l;
          // the injection mask's plane (present only with the injection round)
          const uint64_t s_plane =
              spec.times_masked ? pr[lay.mask_stream + lay.mask_planes * b + sbit] : 0;
          const int64_t e0 = 64 * b;
          const int64_t count = std::min<int64_t>(64, n - e0);
          uint64_t* r_arith = pk + lay.r_arith + e0;
          for (int64_t e = 0; e < count; ++e) {
            r_arith[e] = r[e * kGroup + l];
          }
          if (spec.times_masked) {
            // r s without a branch on the (random) bit s
            uint64_t* rs = pk + lay.rs + e0;
            for (int64_t e = 0; e < count; ++e) {
              rs[e] = r_arith[e] & (uint64_t{0} - ((s_plane >> e) & 1U));
            }
          }
        }
      }
      for (int l = 0; l < lanes && spec.inject; ++l) {
        const int64_t b = b0 + l;
        const uint64_t s_plane = pr[lay.mask_stream + lay.mask_planes * b + sbit];
        const int64_t e0 = 64 * b;
        const int64_t count = std::min<int64_t>(64, n - e0);
        // s and its products, without a branch on the (random) bit s
        uint64_t* s_arith = pk + lay.s_arith + e0;
        for (int64_t e = 0; e < count; ++e) {
          s_arith[e] = (s_plane >> e) & 1U;
        }
        for (int x = 0; x < spec.extras; ++x) {
          uint64_t* product = pk + lay.extra_products + x * n + e0;
          const uint64_t* mask = pr + lay.extra_masks + x * n + e0;
          for (int64_t e = 0; e < count; ++e) {
            product[e] = mask[e] & (uint64_t{0} - s_arith[e]);
          }
        }
      }
      for (const CircuitLevel& level : c.levels()) {
        // the level's secret inputs and products of block b0 + l: sec0 + l sec_stride and
        // prod0 + l product_planes
        const uint64_t* sec0 =
            level.local ? pr + lay.r_planes + 64 * b0
                        : pr + lay.mask_stream + lay.mask_planes * b0 + level.mask_offset;
        const int64_t sec_stride = level.local ? 64 : lay.mask_planes;
        uint64_t* prod0 = pk + lay.product_stream + lay.product_planes * b0;
        for (const GateInstance& g : level.gates) {
          const GateType& t = *g.type;
          // products in increasing subset order: u = (u without its lowest input) & that input,
          // where the smaller subset is a single input or an earlier product
          for (int i = 0; i < t.product_count(); ++i) {
            const uint32_t u = t.products[static_cast<std::size_t>(i)];
            const uint32_t rest = u & (u - 1);
            const int64_t low = g.first + std::countr_zero(u);
            const bool pair = (rest & (rest - 1)) == 0;
            const int64_t other =
                pair ? g.first + std::countr_zero(rest) : g.product_offset + t.product_index[rest];
            const int64_t dst = g.product_offset + i;
            for (int l = 0; l < lanes; ++l) {
              const uint64_t* sec = sec0 + l * sec_stride;
              uint64_t* pg = prod0 + l * lay.product_planes;
              pg[dst] = sec[low] & (pair ? sec[other] : pg[other]);
            }
          }
        }
      }
    }
  });
  for (std::size_t j = 1; j < parties; ++j) {
    const uint64_t* q = draws[j][1].data<uint64_t>();
    core::parallel_for(0, lay.corrected_words, 1 << 16, [&](int64_t lo, int64_t hi) {
      const int64_t a_end = std::clamp(lay.product_stream, lo, hi);
      for (int64_t i = lo; i < a_end; ++i) {
        pk[i] -= q[i];
      }
      for (int64_t i = a_end; i < hi; ++i) {
        pk[i] ^= q[i];
      }
    });
  }
  return k;
}

}  // namespace veil::crypto
