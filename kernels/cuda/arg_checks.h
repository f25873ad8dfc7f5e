#pragma once
// Argument checks of the CUDA kernel API, run on the host before any device work: one copy for
// the CUDA sources (kernels/cuda/*.cu) and the emulated device of the test suite
// (tests/emulated_device/), so the messages a caller sees are the same and the checks run in CI.
// Each throws veil::Error "[cuda::<op>] expected ..., got ..." and never mentions data.

#include <cstdint>
#include <string>

#include "kernels/cuda_backend.h"

namespace veil::kernels::cuda::checks {

inline const char* elem_name(Elem t) {
  switch (t) {
    case Elem::kF32:
      return "float32";
    case Elem::kF64:
      return "float64";
    case Elem::kI64:
      return "int64";
    case Elem::kU64:
      return "ring64";
    case Elem::kU8:
      return "uint8";
  }
  return "?";
}

/// An (op, element type) pair the kernels do not define.
[[noreturn]] inline void unsupported(const char* op, int code, Elem t) {
  throw Error(std::string("[cuda::") + op + "] op " + std::to_string(code) +
              " is not defined for element type " + elem_name(t));
}

/// Shift counts of unary's kShl, kShrArith and kShrLogical.
inline void unary_bits(UnaryOp op, const UnaryParams& p) {
  if ((op == UnaryOp::kShl || op == UnaryOp::kShrArith || op == UnaryOp::kShrLogical) &&
      (p.bits < 0 || p.bits > 63)) {
    throw Error("[cuda::unary] expected 0 <= bits <= 63, got " + std::to_string(p.bits));
  }
}

/// The fixed-point scale 2^frac_bits must be exact in a double and leave room for the sign.
inline void frac_bits(const char* op, int frac_bits) {
  if (frac_bits < 0 || frac_bits > 62) {
    throw Error(std::string("[cuda::") + op + "] expected 0 <= frac_bits <= 62, got " +
                std::to_string(frac_bits));
  }
}

inline void trunc_bits(const char* op, int trunc_bits) {
  if (trunc_bits < 0 || trunc_bits > 62) {
    throw Error(std::string("[cuda::") + op + "] expected 0 <= trunc_bits <= 62, got " +
                std::to_string(trunc_bits));
  }
}

inline std::string sizes3(int64_t m, int64_t n, int64_t k) {
  return "(m=" + std::to_string(m) + ", n=" + std::to_string(n) + ", k=" + std::to_string(k) + ")";
}

/// A GEMM C[m,n] = op(A) op(B) (kernels/cuda_gemm.h conventions). Sizes must be >= 0; when m and
/// n are positive, ldc >= n and C non-null; when k is positive too, lda and ldb large enough and A
/// and B non-null.
inline void gemm(const char* op,
                 int64_t m,
                 int64_t n,
                 int64_t k,
                 const void* a,
                 int64_t lda,
                 bool trans_a,
                 const void* b,
                 int64_t ldb,
                 bool trans_b,
                 const void* c,
                 int64_t ldc) {
  const std::string where = std::string("[cuda::") + op + "] ";
  if (m < 0 || n < 0 || k < 0) {
    throw Error(where + "expected sizes >= 0, got " + sizes3(m, n, k));
  }
  if (m == 0 || n == 0) {
    return;
  }
  const int64_t need_a = trans_a ? m : k;
  const int64_t need_b = trans_b ? k : n;
  if (ldc < n) {
    throw Error(where + "expected ldc >= n, got ldc=" + std::to_string(ldc) + " " +
                sizes3(m, n, k));
  }
  if (c == nullptr) {
    throw Error(where + "expected a device pointer for C, got null " + sizes3(m, n, k));
  }
  if (k == 0) {
    return;
  }
  if (lda < need_a || ldb < need_b) {
    throw Error(where + "expected lda >= " + std::to_string(need_a) +
                " and ldb >= " + std::to_string(need_b) + ", got lda=" + std::to_string(lda) +
                ", ldb=" + std::to_string(ldb) + " " + sizes3(m, n, k));
  }
  if (a == nullptr || b == nullptr) {
    throw Error(where + "expected device pointers for A and B, got null " + sizes3(m, n, k));
  }
}

/// aes128_ctr_keystream's arguments; returns false when there is nothing to draw (nbytes == 0).
inline bool keystream(const uint8_t* key, uint64_t position, const uint8_t* out, int64_t nbytes) {
  const std::string sizes =
      "(position=" + std::to_string(position) + ", nbytes=" + std::to_string(nbytes) + ")";
  if (nbytes < 0) {
    throw Error("[cuda::aes128_ctr_keystream] expected nbytes >= 0, got " + std::to_string(nbytes));
  }
  if (static_cast<uint64_t>(nbytes) > UINT64_MAX - position) {
    throw Error("[cuda::aes128_ctr_keystream] expected position + nbytes <= 2^64 - 1 " + sizes);
  }
  if (key == nullptr) {
    throw Error("[cuda::aes128_ctr_keystream] expected a host key, got null " + sizes);
  }
  if (nbytes == 0) {
    return false;
  }
  if (out == nullptr) {
    throw Error("[cuda::aes128_ctr_keystream] expected a device pointer for out, got null " +
                sizes);
  }
  return true;
}

}  // namespace veil::kernels::cuda::checks
