#pragma once
// Per-element logic of the CUDA elementwise, cast, fixed-point and protocol-epilogue kernels,
// written once as VEIL_HD inline functions: nvcc compiles them into the kernels of
// kernels/cuda/*.cu and a host compiler sees plain inline C++, so
// tests/kernels/test_cuda_elementwise.cpp checks the exact arithmetic the GPU runs on machines
// without a GPU. No CUDA header is included here.
//
// Semantics follow the CPU ops of core/ops.cpp bit for bit: integer arithmetic wraps (int64 through
// uint64), uint8 "not" is the logical not of a 0/1 mask, ring elements compare and shift
// arithmetically as int64, float scalars are applied in double and rounded to the element type.

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/hd.h"
#include "kernels/cuda_backend.h"

namespace veil::kernels::cuda::ops {

// ---- element types ------------------------------------------------------------------------------

template <class T>
inline constexpr bool kIsFloat = std::is_same_v<T, float> || std::is_same_v<T, double>;

/// Size in bytes of one element of type t.
VEIL_HD constexpr int elem_size(Elem t) {
  return t == Elem::kF32 ? 4 : (t == Elem::kU8 ? 1 : 8);
}

VEIL_HD constexpr bool is_float(Elem t) {
  return t == Elem::kF32 || t == Elem::kF64;
}

/// Whether binary(op, t) is defined: arithmetic for f32/f64/i64/u64, kDiv for floats, bit ops for
/// i64/u64/u8 (core/ops.cpp's dispatch_arith, dispatch_float and dispatch_bits).
VEIL_HD constexpr bool binary_supported(BinaryOp op, Elem t) {
  switch (op) {
    case BinaryOp::kAdd:
    case BinaryOp::kSub:
    case BinaryOp::kMul:
      return t != Elem::kU8;
    case BinaryOp::kDiv:
      return is_float(t);
    case BinaryOp::kXor:
    case BinaryOp::kAnd:
    case BinaryOp::kOr:
      return !is_float(t);
  }
  return false;
}

/// Whether unary(op, t) is defined: kNeg/kAddScalar/kMulScalar for arithmetic types, kNot for
/// integer types, shifts for i64/u64, kExp/kLog/kRelu/kStep for floats.
VEIL_HD constexpr bool unary_supported(UnaryOp op, Elem t) {
  switch (op) {
    case UnaryOp::kNeg:
    case UnaryOp::kAddScalar:
    case UnaryOp::kMulScalar:
      return t != Elem::kU8;
    case UnaryOp::kNot:
      return !is_float(t);
    case UnaryOp::kShl:
    case UnaryOp::kShrArith:
    case UnaryOp::kShrLogical:
      return t == Elem::kI64 || t == Elem::kU64;
    case UnaryOp::kExp:
    case UnaryOp::kLog:
    case UnaryOp::kRelu:
    case UnaryOp::kStep:
      return is_float(t);
  }
  return false;
}

/// Whether reduce(op, t) is defined (the arithmetic types of core's sum/max/argmax).
VEIL_HD constexpr bool reduce_supported(ReduceOp /*op*/, Elem t) {
  return t != Elem::kU8;
}

// ---- math wrappers (host: <cmath>; device: CUDA's math library) ---------------------------------

VEIL_HD inline float hd_exp(float x) {
  return expf(x);
}
VEIL_HD inline double hd_exp(double x) {
  return exp(x);
}
VEIL_HD inline float hd_log(float x) {
  return logf(x);
}
VEIL_HD inline double hd_log(double x) {
  return log(x);
}

// ---- integer wrap-around helpers ----------------------------------------------------------------

/// x op y computed on the uint64 bit patterns and narrowed back to T (wraps for int64 and uint8).
template <class T>
VEIL_HD inline T wrap_add(T x, T y) {
  return static_cast<T>(static_cast<uint64_t>(x) + static_cast<uint64_t>(y));
}
template <class T>
VEIL_HD inline T wrap_sub(T x, T y) {
  return static_cast<T>(static_cast<uint64_t>(x) - static_cast<uint64_t>(y));
}
template <class T>
VEIL_HD inline T wrap_mul(T x, T y) {
  return static_cast<T>(static_cast<uint64_t>(x) * static_cast<uint64_t>(y));
}

// ---- elementwise ops ----------------------------------------------------------------------------

/// One element of binary(): x op y. Unsupported (op, T) pairs (see binary_supported) return 0;
/// the host rejects them before launching.
template <class T>
VEIL_HD inline T binary_elem(BinaryOp op, T x, T y) {
  if constexpr (kIsFloat<T>) {
    switch (op) {
      case BinaryOp::kAdd:
        return x + y;
      case BinaryOp::kSub:
        return x - y;
      case BinaryOp::kMul:
        return x * y;
      case BinaryOp::kDiv:
        return x / y;
      default:
        return T{0};
    }
  } else {
    switch (op) {
      case BinaryOp::kAdd:
        return wrap_add(x, y);
      case BinaryOp::kSub:
        return wrap_sub(x, y);
      case BinaryOp::kMul:
        return wrap_mul(x, y);
      case BinaryOp::kXor:
        return static_cast<T>(x ^ y);
      case BinaryOp::kAnd:
        return static_cast<T>(x & y);
      case BinaryOp::kOr:
        return static_cast<T>(x | y);
      default:
        return T{0};
    }
  }
}

/// One element of unary(). Unsupported (op, T) pairs return 0 (rejected on the host).
template <class T>
VEIL_HD inline T unary_elem(UnaryOp op, T x, const UnaryParams& p) {
  if constexpr (kIsFloat<T>) {
    switch (op) {
      case UnaryOp::kNeg:
        return T{0} - x;  // as core's neg: 0 - x (so -0.0 becomes +0.0)
      case UnaryOp::kAddScalar:
        return static_cast<T>(static_cast<double>(x) + p.scalar);
      case UnaryOp::kMulScalar:
        return static_cast<T>(static_cast<double>(x) * p.scalar);
      case UnaryOp::kExp:
        return hd_exp(x);
      case UnaryOp::kLog:
        return hd_log(x);
      case UnaryOp::kRelu:
        return x > T{0} ? x : T{0};
      case UnaryOp::kStep:
        return x > T{0} ? T{1} : T{0};
      default:
        return T{0};
    }
  } else {
    const auto u = static_cast<uint64_t>(x);
    switch (op) {
      case UnaryOp::kNeg:
        return wrap_sub(T{0}, x);
      case UnaryOp::kNot:
        if constexpr (std::is_same_v<T, uint8_t>) {
          return static_cast<T>(x == 0 ? 1 : 0);  // uint8 tensors are 0/1 masks
        } else {
          return static_cast<T>(~x);
        }
      case UnaryOp::kShl:
        return static_cast<T>(u << p.bits);
      case UnaryOp::kShrArith:
        return static_cast<T>(static_cast<uint64_t>(static_cast<int64_t>(u) >> p.bits));
      case UnaryOp::kShrLogical:
        return static_cast<T>(u >> p.bits);
      case UnaryOp::kAddScalar:
        return static_cast<T>(u + p.scalar_bits);
      case UnaryOp::kMulScalar:
        return static_cast<T>(u * p.scalar_bits);
      default:
        return T{0};
    }
  }
}

// ---- casts --------------------------------------------------------------------------------------

/// One element of cast() with core::Tensor::to's rules: ring <-> int64 reinterpret the bits, ring
/// -> float goes through int64 (two's complement), float -> ring/int64 truncates toward zero
/// through int64, float -> uint8 truncates toward zero (defined for values in [0, 256)), integer
/// narrowing keeps the low bits.
template <class To, class From>
VEIL_HD inline To cast_elem(From x) {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else if constexpr (kIsFloat<From> && !kIsFloat<To>) {
    return static_cast<To>(static_cast<uint64_t>(static_cast<int64_t>(x)));
  } else if constexpr (kIsFloat<To> && std::is_same_v<From, uint64_t>) {
    return static_cast<To>(static_cast<int64_t>(x));
  } else {
    return static_cast<To>(x);
  }
}

// ---- fixed point --------------------------------------------------------------------------------

/// round(y) with ties away from zero for |y| < 2^63, as the CPU FixedPointEncoder
/// (crypto/fixed_point.cpp): the truncation toward zero is exact, and so is y - trunc(y).
VEIL_HD inline int64_t round_half_away(double y) {
  const auto t = static_cast<int64_t>(y);
  const double frac = y - static_cast<double>(t);
  return t + static_cast<int64_t>(frac >= 0.5) - static_cast<int64_t>(frac <= -0.5);
}

/// Fixed-point encoding of one float: round_half_away(x * 2^frac_bits) as a ring element. `scale`
/// is 2^frac_bits (exact); float inputs are widened to double first, as on the CPU.
VEIL_HD inline uint64_t encode_elem(double x, double scale) {
  return static_cast<uint64_t>(round_half_away(x * scale));
}

/// Decoding of one ring element: int64(v) * 2^-frac_bits (`inv_scale` = 2^-frac_bits, exact).
VEIL_HD inline double decode_elem(uint64_t v, double inv_scale) {
  return static_cast<double>(static_cast<int64_t>(v)) * inv_scale;
}

// ---- protocol epilogues -------------------------------------------------------------------------

/// One element of ring_mask: x - a (mod 2^64).
VEIL_HD inline uint64_t mask_elem(uint64_t x, uint64_t a) {
  return x - a;
}

/// The 2-party local truncation of SecureML (Mohassel & Zhang, S&P 2017, §4.1) of one share:
/// party 0 keeps z >> bits (arithmetic), party 1 keeps -((-z) >> bits). bits == 0 returns z.
VEIL_HD inline uint64_t trunc2_elem(bool first, uint64_t z, int bits) {
  if (bits <= 0) {
    return z;
  }
  if (first) {
    return static_cast<uint64_t>(static_cast<int64_t>(z) >> bits);
  }
  return uint64_t{0} - static_cast<uint64_t>(static_cast<int64_t>(uint64_t{0} - z) >> bits);
}

/// One element of beaver_output: z = c + e (b + [first] d) + a d (mod 2^64), then trunc2_elem.
/// With x = a + e and y = b + d opened, sum over parties of z is x y (Beaver, CRYPTO 1991).
VEIL_HD inline uint64_t beaver_elem(
    bool first, uint64_t e, uint64_t d, uint64_t a, uint64_t b, uint64_t c, int trunc_bits) {
  const uint64_t z = c + e * (b + (first ? d : uint64_t{0})) + a * d;
  return trunc2_elem(first, z, trunc_bits);
}

// ---- reductions ---------------------------------------------------------------------------------

/// "v beats best" of core's max/argmax: ring elements compare as int64, others natively. A NaN
/// never beats anything (and so a leading NaN stays).
template <class T>
VEIL_HD inline bool greater(T v, T best) {
  if constexpr (std::is_same_v<T, uint64_t>) {
    return static_cast<int64_t>(v) > static_cast<int64_t>(best);
  } else {
    return v > best;
  }
}

// ---- layouts ------------------------------------------------------------------------------------

/// Number of elements of the logical shape of l (1 for a scalar).
VEIL_HD inline int64_t layout_numel(const Layout& l) {
  int64_t n = 1;
  for (int d = 0; d < l.ndim; ++d) {
    n *= l.shape[d];
  }
  return n;
}

/// Offset (in elements) of the row-major logical element i of l: the multi-index is recovered by
/// repeated division from the last dimension.
VEIL_HD inline int64_t layout_offset(const Layout& l, int64_t i) {
  int64_t off = l.offset;
  for (int d = l.ndim - 1; d >= 0; --d) {
    const int64_t s = l.shape[d];
    const int64_t q = i / s;
    off += (i - q * s) * l.stride[d];
    i = q;
  }
  return off;
}

/// Offsets of logical element i in two layouts of the same shape (one index decomposition).
VEIL_HD inline void layout_offset2(
    const Layout& la, const Layout& lb, int64_t i, int64_t& oa, int64_t& ob) {
  oa = la.offset;
  ob = lb.offset;
  for (int d = la.ndim - 1; d >= 0; --d) {
    const int64_t s = la.shape[d];
    const int64_t q = i / s;
    const int64_t r = i - q * s;
    oa += r * la.stride[d];
    ob += r * lb.stride[d];
    i = q;
  }
}

/// Simplifies `count` layouts of the same shape in place without changing any element's offset:
/// drops size-1 dimensions and merges a dimension into the next one when every layout steps
/// through both as one (stride[d] == stride[d+1] * shape[d+1]). A layout with a zero-size
/// dimension is left as is.
inline void coalesce(Layout* ls, int count) {
  const int nd = ls[0].ndim;
  for (int d = 0; d < nd; ++d) {
    if (ls[0].shape[d] == 0) {
      return;
    }
  }
  int out = 0;
  for (int d = 0; d < nd; ++d) {
    if (ls[0].shape[d] == 1) {
      continue;
    }
    bool merge = out > 0;
    for (int k = 0; k < count && merge; ++k) {
      merge = ls[k].stride[out - 1] == ls[k].stride[d] * ls[k].shape[d];
    }
    for (int k = 0; k < count; ++k) {
      if (merge) {
        ls[k].shape[out - 1] *= ls[k].shape[d];
        ls[k].stride[out - 1] = ls[k].stride[d];
      } else {
        ls[k].shape[out] = ls[k].shape[d];
        ls[k].stride[out] = ls[k].stride[d];
      }
    }
    if (!merge) {
      ++out;
    }
  }
  for (int k = 0; k < count; ++k) {
    for (int d = out; d < nd; ++d) {
      ls[k].shape[d] = 0;
      ls[k].stride[d] = 0;
    }
    ls[k].ndim = out;
  }
}

/// True when l walks its elements contiguously from l.offset (after coalesce: a scalar or one
/// dimension of stride 1).
inline bool is_dense(const Layout& l) {
  return l.ndim == 0 || (l.ndim == 1 && l.stride[0] == 1);
}

}  // namespace veil::kernels::cuda::ops
