#pragma once
// Device dispatch of core's Tensor ops onto the CUDA kernels (kernels/cuda_backend.h,
// kernels/cuda_gemm.h). core/ops.cpp, core/linalg.cpp and core/tensor.cpp validate shapes and
// dtypes exactly as on the CPU and then call one of these for CUDA tensors; the mapping from a
// Tensor to the kernels' raw view (element type, device pointer, strided Layout) lives here and
// nowhere else.
//
// Layouts: a view's dimensions of extent 1 are dropped and neighbouring dimensions that are
// contiguous with each other in every operand are merged, so a contiguous tensor of any rank
// reaches the kernels as one flat dimension; broadcast dimensions keep stride 0. After merging at
// most kernels::cuda::kMaxDims (8) dimensions may remain (ValueError otherwise).
//
// Every function here expects its tensors on one CUDA device (the callers check) and launches on
// the calling thread's stream; results are new contiguous tensors on that device. Nothing here
// reads tensor values on the host.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "kernels/cuda_backend.h"

namespace veil::core {

/// "cpu" or "cuda:<index>", for messages.
std::string device_str(Device d);
/// The inverse of device_str: "cpu", "cuda" (cuda:0) or "cuda:N". Throws ValueError naming the
/// accepted forms for anything else (whether the device exists is checked where it is used).
Device parse_device(std::string_view s);

/// Throws ValueError "[op] expected tensors on one device, got cpu and cuda:0" unless a and b live
/// on the same device; returns true when that device is a CUDA device.
bool same_device(const Tensor& a, const Tensor& b, const char* op);

namespace cuda_ops {

namespace kc = kernels::cuda;

/// The kernels' element type of a dtype.
kc::Elem elem(DType t);
/// Device pointer to the first element of t (storage + offset); never dereferenced on the host.
const void* ptr(const Tensor& t);
void* ptr(Tensor& t);

/// Layouts of views that share the logical shape `shape` (each given by its strides, already
/// broadcast to `shape`), with extent-1 dimensions dropped and jointly contiguous dimensions
/// merged. Writes strides.size() layouts to out (offset 0: pass ptr() of each view). Throws
/// ValueError naming `op` when more than kMaxDims dimensions remain.
void layouts(const Shape& shape,
             std::initializer_list<const Shape*> strides,
             kc::Layout* out,
             const char* op);
/// The layout of one view.
kc::Layout layout(const Tensor& t, const char* op);

/// a op b with numpy broadcasting into a new contiguous tensor of a's dtype.
Tensor binary(kc::BinaryOp op, const Tensor& a, const Tensor& b, const char* name);
/// a = a op b in place; b broadcasts to a; a must be contiguous (same checks and messages as
/// core::zip_).
void binary_(kc::BinaryOp op, Tensor& a, const Tensor& b, const char* name);
/// f(a) into a new contiguous tensor of a's dtype (kNot on uint8 is the logical not of a 0/1 mask,
/// as core::bitwise_not).
Tensor unary(kc::UnaryOp op, const Tensor& a, const kc::UnaryParams& p, const char* name);
/// Reduction of a along dim d into a tensor of `out_shape` and `out_dtype` (kArgmax: int64).
/// An empty reduced dimension gives zeros for kSum (callers reject it for kMax/kArgmax).
Tensor reduce(kc::ReduceOp op, const Tensor& a, int64_t d, const Shape& out_shape, DType out_dtype);
/// view += src element by element, in place through a strided view (as_strided) of a device
/// tensor that maps no two indices to one element; src has the view's shape and dtype (any
/// strides). The scatter-add of col2im and of the pooling windows' fold, one kernel offset per
/// call. Throws ValueError for a shape or dtype mismatch, for a uint8 view, and for a view whose
/// dimensions overlap (a zero stride or a stride inside the span of the smaller ones).
void add_into_view(Tensor& view, const Tensor& src, const char* name);
/// out = src (contiguous, on a device, read as [outer, len, inner]) gathered along its middle
/// dimension by a public index (entries in [-1, len), checked by the caller; -1 gives zeros) into
/// out ([outer, index.size(), inner] elements, contiguous, same dtype and device): the index is
/// uploaded (8 bytes per entry), then one kernel (kernels::cuda::gather_index). With `reuse`
/// the device copy of the index is kept for later calls with the same index on the same device
/// (the windows of a pooling layer and the pairs of a max recur every training step, and an
/// upload waits for the party's stream): at most 64 lists and 16 MiB per thread, least recently
/// used dropped first. index_select0's batch rows change every step and are not kept.
void gather_index(const Tensor& src,
                  int64_t outer,
                  int64_t len,
                  int64_t inner,
                  const std::vector<int64_t>& index,
                  Tensor& out,
                  bool reuse = true);
/// Concatenation of validated inputs along d into a tensor of `shape`.
Tensor cat(const std::vector<Tensor>& xs, int64_t d, const Shape& shape);
/// a [m, k] @ b [k, n]: ring64 on the tensor-core ring GEMM, float32/float64 through cuBLAS.
/// Row-major or transposed views are passed as they are (leading dimension + transpose flag);
/// other strides are made contiguous first.
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace cuda_ops
}  // namespace veil::core
