#pragma once
// Boolean circuits evaluated on masked openings: the comparison engine of veil. One description,
// used by the dealer (which makes the correlated randomness: crypto/providers/correlations.cpp)
// and by the parties (which evaluate it: crypto/protocols/binary.cpp).
//
// Masked gates. A gate reads k <= 8 XOR-shared bits v and outputs XORs of products of them. The
// dealer draws mask bits a and the parties open o = v ^ a. A product of the now affine inputs
// v_i = o_i ^ a_i expands over the subsets U of its inputs,
//     prod_{i in S} (o_i ^ a_i) = XOR_{U subset of S} (prod_{i in S \ U} o_i) (prod_{i in U} a_i),
// so with XOR shares of every mask product a_U (|U| >= 2) from the dealer, each party's share
// of the output is a sum of public coefficients times its shares: one opening serves every AND
// of the gate, and a 4-way carry combine (products of up to 4 inputs) costs one round.
//
// Local gates. Level 0 of a comparison opens nothing: the parties open c = x + r (r uniform in
// Z_2^64, from the dealer in arithmetic and in XOR-of-bits form), and the generate and equality
// bits of position i, g_i = ~c_i & r_i and p_i = ~c_i ^ r_i, are affine in r_i with public
// coefficients, so products of them expand the same way over the products of r's bits, which the
// dealer shares within each group of 4 positions.
//
// Bit slicing: elements are processed in blocks of 64; every bit-level quantity (r's bits, masks,
// products, opened bits, wires) is stored as planes, one 64-bit word per block whose bit e
// belongs to element 64 b + e. A gate then costs a few word operations per 64 elements.
//
// Circuits (per element):
//   kLessThanZero: msb(c - r) = c_63 ^ r_63 ^ [c mod 2^63 < r mod 2^63], the borrow by a
//     radix-4 prefix over bits 0..62: level 0 (local) gives (G, P) of 16 groups (4 bits; 3 for
//     bits 60..62; G only for group 0) with G = "r > c on the group", P = "r == c on the group";
//     level 1 combines 4 groups (31 opened bits), level 2 the last 4 (7 opened bits).
//     Dealer products: 169 + 81 + 15 = 265 bits.
//   kEqualZero: [c == r] (= [x == 0]): level 0 ANDs the 4 equality bits of 16 groups (local);
//     levels 1 and 2 are AND gates of 4: 16 + 4 = 20 opened bits; 176 + 44 + 11 = 231 products.
//   kAnd(width w): AND of w input bits by a tree of AND gates of fan-in <= 4, ceil(log4 w)
//     levels of balanced gates.
// Optional bit injection (one more round): the dealer adds a random bit s (XOR and arithmetic
// shares), shares of r s and, for each extra multiplicand y_k, a random arithmetic mask a_k with
// shares of a_k s. Opening e = out ^ s (1 bit) and y_k - a_k gives out as an arithmetic bit and
// the products (c - r) out and y_k out (crypto/protocols/binary.h).
//
// Sources: comparison by a masked opening against random bits known in both sharings (edaBits:
// Escudero et al., CRYPTO 2020; Rabbit: Makri et al., FC 2021); unbounded fan-in products from a
// single opening with shared products of the masks (the idea of Beaver's triples extended to
// fan-in k, as in the constant-round comparison of Damgård et al., TCC 2006); the radix-4
// carry-lookahead prefix of Brent & Kung (1982).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/bit_circuit_eval.h"

namespace veil::crypto {

/// Which circuit a masked-open evaluation runs.
enum class CircuitKind : uint8_t {
  kLessThanZero = 0,  ///< [c - r < 0] (two's complement), c public, r the dealer's mask
  kEqualZero = 1,     ///< [c - r == 0]
  kAnd = 2,           ///< AND of `width` input bits per element
};

/// A circuit evaluation request: the circuit and what the conversion round adds.
struct CircuitSpec {
  CircuitKind kind = CircuitKind::kLessThanZero;
  int width = 0;              ///< kAnd: input bits per element (1..64); 0 otherwise
  bool inject = false;        ///< add the bit-injection round (arithmetic result, products)
  bool times_masked = false;  ///< inject: also (c - r) * out (needs a circuit with r)
  int extras = 0;             ///< inject: number of extra multiplicands y_k (0..64)

  bool operator==(const CircuitSpec&) const = default;
  /// "ltz+inject(x,2)" for logs and errors.
  std::string str() const;
  /// Throws ValueError ("[circuit] ...") for an inconsistent spec.
  void validate() const;
};

/// A literal of a product: an affine function of one secret input bit x (a mask bit, or a bit of
/// r) whose coefficients come from the public bit q of the same input (the opened bit, or c's
/// bit): kMasked: v = q ^ x; kGenerate: g = ~q & x; kEqual: p = ~q ^ x.
struct Literal {
  enum class Kind : uint8_t { kMasked, kGenerate, kEqual };
  Kind kind = Kind::kMasked;
  int input = 0;
};

/// A gate type: `inputs` bits, each output an XOR of products of literals over distinct inputs.
struct GateType {
  int inputs = 0;
  std::vector<std::vector<std::vector<Literal>>> outputs;  ///< [output][term][literal]
  /// The dealer-shared products: subsets (bit masks over the inputs) of two or more inputs that
  /// occur in some expansion, in increasing order.
  std::vector<uint32_t> products;
  /// [subset mask] -> index in `products`, or -1.
  std::vector<int> product_index;
  /// [output][term][u]: the monomial that subset u of the term's literals (bit l = literal l)
  /// multiplies: -1 the constant, 0..inputs-1 a secret input, inputs + j product j.
  std::vector<std::vector<std::vector<int>>> monomial_of;

  /// The expansion of every output as straight-line code, compiled by make_gate so that the
  /// evaluator (kernels/bit_circuit_eval.h) interprets no literal kinds and looks up no subsets.
  /// A term starts with its temporary 0 set to all ones; each step ANDs temporary `src` with a
  /// public input bit (XOR `flip`: all ones for a complemented literal) into temporary `dst`;
  /// each sum XORs temporary `slot` AND monomial `monomial` (numbered as in monomial_of) into the
  /// output. Term ends index the output's own steps and sums here; BitCircuit's flat program
  /// makes them absolute.
  using Step = kernels::circuit::Step;
  using Sum = kernels::circuit::Sum;
  using TermCode = kernels::circuit::Term;
  struct OutputCode {
    std::vector<TermCode> terms;
    std::vector<Step> steps;
    std::vector<Sum> sums;
  };
  std::vector<OutputCode> code;  ///< [output]

  int product_count() const { return static_cast<int>(products.size()); }
  int output_count() const { return static_cast<int>(outputs.size()); }
};

/// One gate of a level: its type, and its inputs as the consecutive wires [first, first + k) of
/// the previous level (level 0 of a circuit with r: the bit positions of c and r).
struct GateInstance {
  const GateType* type = nullptr;
  int first = 0;
  int product_offset = 0;  ///< offset of its product planes in the block's product record
};

struct CircuitLevel {
  std::vector<GateInstance> gates;
  int in_width = 0;     ///< input wires (the gates cover [0, in_width) in order)
  int out_width = 0;    ///< output wires (the gates' outputs, in order)
  bool local = false;   ///< level 0 of a circuit with r: nothing is opened
  int mask_offset = 0;  ///< masked levels: offset of the mask planes in the block's mask record
};

/// A circuit and its per-block layout of correlated randomness.
class BitCircuit {
 public:
  /// The circuit for (kind, width), built once and cached. Throws ValueError for a bad width.
  static const BitCircuit& get(CircuitKind kind, int width = 0);

  bool uses_r() const { return uses_r_; }
  /// Input wires of the first level (63 or 64 bit positions, or `width` input bits for kAnd).
  int input_width() const { return input_width_; }
  const std::vector<CircuitLevel>& levels() const { return levels_; }
  /// Opened mask bits per element (mask planes per block), over all masked levels.
  int mask_bits() const { return mask_bits_; }
  /// Dealer-shared product bits per element (product planes per block), over all levels.
  int product_bits() const { return product_bits_; }
  /// Number of levels that open something (the rounds of the circuit after c is opened).
  int masked_levels() const;
  /// Level `li`'s compiled program (kernels/bit_circuit_eval.h) in host memory, or on a CUDA
  /// device (uploaded at the first request for that device, a few KB, and kept for the process;
  /// thread-safe). Throws InternalError for a level index out of range and CudaError when the
  /// upload fails.
  kernels::circuit::Level program(std::size_t li, core::Device device = core::Device::cpu()) const;

 private:
  BitCircuit() = default;
  void finish_layout();
  void compile_program();

  bool uses_r_ = false;
  int input_width_ = 0;
  std::vector<CircuitLevel> levels_;
  int mask_bits_ = 0;
  int product_bits_ = 0;
  // The flat program: one buffer of sections [gates][outputs][terms][steps][sums] (byte offsets
  // in section_), level li's gates at level_gates_[li].
  std::vector<uint64_t> program_;
  std::size_t section_[5] = {};
  std::vector<std::pair<int32_t, int32_t>> level_gates_;  ///< (first gate, count)
  mutable std::mutex device_mu_;
  mutable std::map<int, core::Tensor> device_program_;  ///< device index -> program_ copy
};

/// Offsets (in ring words) of the parts of a circuit correlation for n elements in
/// blocks = ceil(n / 64) blocks. Every party draws the random part R uniformly; the corrected part
/// K is drawn by parties 1..N-1 and made consistent by the dealer's correction for party 0.
///   R = [r planes: 64 per block, if r] [a_k: n each extra] [mask planes: mask_planes per block]
///   K = [r_A: n if r] [s_A: n if inject] [rs: n if times_masked] [a_k s: n each]
///       [product planes: product_planes per block]
/// A block's mask record holds the masked levels' planes (mask_offset) and then s (inject).
struct CircuitLayout {
  CircuitLayout(const CircuitSpec& spec, int64_t n);

  int64_t n;
  int64_t blocks;
  int mask_planes;     ///< per block: mask_bits() + [inject]
  int product_planes;  ///< per block: product_bits()
  // R
  int64_t r_planes, extra_masks, mask_stream, random_words;
  // K
  int64_t r_arith, s_arith, rs, extra_products, product_stream, corrected_words;
};

/// The dealer's side: party 0's corrected part K for this request, from every party's draws
/// (draws[j] = {R_j, K_j}; K_0 unused). Throws InternalError on inconsistent sizes.
core::Tensor circuit_correction(const CircuitSpec& spec,
                                int64_t n,
                                const std::vector<std::vector<core::Tensor>>& draws);

}  // namespace veil::crypto
