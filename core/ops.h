#pragma once
// Validated plaintext ops on Tensors. Arithmetic on kRing64 is mod 2^64 (unsigned wrap-around);
// "signed" ring ops interpret elements as two's complement int64. Binary ops broadcast (numpy
// rules) and require equal dtypes; errors name the op and the shapes/dtypes involved.
//
// Devices: every op runs where its inputs live. CUDA tensors go to the kernels of
// kernels/cuda_backend.h through core/cuda_dispatch.h (same validation and messages as on the
// CPU; results bit-identical for integer dtypes, float sums and GEMMs may round differently);
// inputs on different devices throw ValueError "[op] expected tensors on one device, got cpu and
// cuda:0". one_hot on a CUDA tensor reads the labels to the host (they are range-checked there).

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace veil::core {

// ---- arithmetic (float32, float64, int64, ring64) ----------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
/// Floating point only.
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& a);
/// a += b in place (b broadcasts to a; a contiguous).
void add_(Tensor& a, const Tensor& b);
void sub_(Tensor& a, const Tensor& b);

/// a * s for a ring64 tensor and a ring scalar (mod 2^64).
Tensor mul_scalar(const Tensor& a, uint64_t s);
/// a + s for a ring64 tensor and a ring scalar (mod 2^64).
Tensor add_scalar(const Tensor& a, uint64_t s);
/// a * s and a + s for floating tensors.
Tensor mul_scalar(const Tensor& a, double s);
Tensor add_scalar(const Tensor& a, double s);

// ---- bit ops (ring64, int64, uint8) ------------------------------------------------------------
Tensor bitwise_xor(const Tensor& a, const Tensor& b);
Tensor bitwise_and(const Tensor& a, const Tensor& b);
Tensor bitwise_not(const Tensor& a);
/// Left shift of ring elements (mod 2^64); 0 <= bits < 64.
Tensor shift_left(const Tensor& a, int bits);
/// Arithmetic right shift of ring elements read as int64 (floor division by 2^bits).
Tensor shift_right_arith(const Tensor& a, int bits);
/// Logical right shift of ring elements.
Tensor shift_right_logical(const Tensor& a, int bits);

// ---- floating point math -----------------------------------------------------------------------
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
/// max(a, 0).
Tensor relu(const Tensor& a);
/// 1 where a > 0 else 0, same dtype as a.
Tensor step(const Tensor& a);

// ---- reductions --------------------------------------------------------------------------------
/// Sum along dim (negative counts from the end). Ring sums wrap mod 2^64.
Tensor sum(const Tensor& a, int64_t dim, bool keepdim = false);
/// Sum of all elements, as a 0-d tensor.
Tensor sum_all(const Tensor& a);
/// Maximum along dim (float32/float64/int64; ring64 compared as int64).
Tensor max(const Tensor& a, int64_t dim, bool keepdim = false);
/// Index (int64) of the first maximum along dim.
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);

// ---- construction ------------------------------------------------------------------------------
/// Concatenation along dim; all inputs share dtype and the other extents.
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
/// One-hot encoding of int64 class indices [N] into float64 [N, classes].
Tensor one_hot(const Tensor& labels, int64_t classes);
/// out[..., i] = index[i] >= 0 ? a[..., index[i]] : 0: a gather along the last dimension by a
/// public index (entries in [-1, size(-1)); -1 gives a zero), into a new contiguous tensor
/// [..., index.size()] of a's dtype and device. Bit copies. On a CUDA device one kernel
/// (kernels::cuda::gather_index; the index is uploaded, 8 bytes per entry). Throws ValueError
/// for a 0-d tensor or an entry out of range.
Tensor gather_last(const Tensor& a, const std::vector<int64_t>& index);

// ---- linear algebra (core/linalg.cpp) ----------------------------------------------------------
/// Matrix product of 2-D tensors: a [m, k] @ b [k, n] -> [m, n]. dtypes float64, float32 or ring64
/// (mod 2^64), equal for both; any strides (transposed views need no copy by the caller).
/// Cache-blocked and multithreaded over num_threads(). Throws ValueError on shape/dtype mismatch.
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace veil::core
