#pragma once
// Tensor: a shallow-copy handle to reference-counted storage plus shape, strides (in elements),
// offset, dtype and device. Copies share storage (like torch::Tensor); clone() copies data.

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace veil::core {

using Shape = std::vector<int64_t>;

/// "[2, 3]" for error messages.
std::string shape_str(const Shape& s);
/// Product of the extents (1 for a 0-d shape). Throws ValueError on a negative extent.
int64_t shape_numel(const Shape& s);
/// Row-major (C-contiguous) strides of a shape.
Shape contiguous_strides(const Shape& s);

/// Raw byte storage on one device: host memory (64-byte aligned, core/allocator.h) or CUDA device
/// memory (kernels/cuda_backend.h device_alloc). Throws NotCompiledError for CUDA without the CUDA
/// backend, CudaError when the device allocation fails.
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() { return data_; }
  const void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
};

/// Maps a C++ element type to its dtype (uint64_t is the ring type).
template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) {
    return DType::kFloat32;
  } else if constexpr (std::is_same_v<T, double>) {
    return DType::kFloat64;
  } else if constexpr (std::is_same_v<T, int64_t>) {
    return DType::kInt64;
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    return DType::kRing64;
  } else {
    static_assert(std::is_same_v<T, uint8_t>, "unsupported element type");
    return DType::kUInt8;
  }
}

class Tensor {
 public:
  /// An undefined tensor (defined() == false).
  Tensor() = default;

  /// Uninitialised contiguous tensor.
  static Tensor empty(const Shape& shape, DType dtype, Device device = {});
  /// Zero-filled contiguous tensor.
  static Tensor zeros(const Shape& shape, DType dtype, Device device = {});
  /// Contiguous tensor holding a copy of `values`; numel(shape) must equal values.size().
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
    Tensor t = empty(shape, dtype_of<T>());
    VEIL_CHECK(static_cast<int64_t>(values.size()) == t.numel(),
               "[Tensor::from_vector] expected {} values for shape {}, got {}", t.numel(),
               shape_str(shape), values.size());
    std::copy(values.begin(), values.end(), t.data<T>());
    return t;
  }
  /// Contiguous tensor with every element equal to `value`, on `device` (on a GPU: one fill
  /// kernel, no host copy).
  template <class T>
  static Tensor full(const Shape& shape, T value, Device device = {}) {
    if (device.is_cuda()) {
      uint64_t bits = 0;
      std::memcpy(&bits, &value, sizeof(T));
      return full_bits(shape, dtype_of<T>(), bits, device);
    }
    Tensor t = empty(shape, dtype_of<T>());
    std::fill_n(t.data<T>(), t.numel(), value);
    return t;
  }
  /// full() on a CUDA device: every element's bit pattern is the low bytes of `bits`.
  static Tensor full_bits(const Shape& shape, DType dtype, uint64_t bits, Device device);
  /// 0-d tensor.
  template <class T>
  static Tensor scalar(T value) {
    return full<T>({}, value);
  }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  /// Extent of dimension d; negative d counts from the end. Throws ValueError when out of range.
  int64_t size(int64_t d) const;
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * dtype_size(dtype_); }
  bool is_contiguous() const;
  /// True when both tensors view the same storage.
  bool shares_storage_with(const Tensor& other) const { return storage_ == other.storage_; }
  /// True when this handle is the only one referencing its storage (no other tensor, view or
  /// copy can observe a write to it).
  bool sole_owner() const { return storage_ != nullptr && storage_.use_count() == 1; }

  /// Host pointer to the first element (storage + offset). Throws ValueError when T does not match
  /// the dtype, and for tensors on a CUDA device (the message says to use .to(Device::cpu()) or
  /// device_data). For non-contiguous tensors index with strides().
  template <class T>
  T* data() {
    check_access(dtype_of<T>(), "data");
    check_host("data");
    return static_cast<T*>(storage_->data()) + offset_;
  }
  template <class T>
  const T* data() const {
    check_access(dtype_of<T>(), "data");
    check_host("data");
    return static_cast<const T*>(storage_->data()) + offset_;
  }
  /// Pointer to the first element on the tensor's own device (a device pointer for CUDA tensors;
  /// for handing to kernels, never to be dereferenced on the host). Throws ValueError when T does
  /// not match the dtype.
  template <class T>
  T* device_data() {
    check_access(dtype_of<T>(), "device_data");
    return static_cast<T*>(storage_->data()) + offset_;
  }
  template <class T>
  const T* device_data() const {
    check_access(dtype_of<T>(), "device_data");
    return static_cast<const T*>(storage_->data()) + offset_;
  }
  /// device_data without a type: the first element's address on the tensor's device.
  void* device_ptr() {
    check_access(dtype_, "device_ptr");
    return static_cast<std::byte*>(storage_->data()) +
           static_cast<std::size_t>(offset_) * dtype_size(dtype_);
  }
  const void* device_ptr() const {
    check_access(dtype_, "device_ptr");
    return static_cast<const std::byte*>(storage_->data()) +
           static_cast<std::size_t>(offset_) * dtype_size(dtype_);
  }
  bool is_cuda() const { return device_.type == Device::Type::kCUDA; }
  /// A copy on `device` (this tensor itself when it is already there; the copy is contiguous).
  /// Throws NotCompiledError for a CUDA device without the CUDA backend, CudaError when there is
  /// no such device or the copy fails.
  Tensor to(Device device) const;
  /// Bytes of a contiguous host tensor (throws ValueError for non-contiguous and CUDA tensors).
  std::span<const std::byte> bytes() const;
  std::span<std::byte> mutable_bytes();

  /// Copy of the elements in row-major order (a read-out: CUDA tensors are copied to the host).
  template <class T>
  std::vector<T> to_vector() const {
    Tensor c = is_cuda() ? to(Device::cpu()) : contiguous();
    const T* p = c.data<T>();
    return std::vector<T>(p, p + numel_);
  }
  /// The single element of a one-element tensor (copied to the host for CUDA tensors).
  template <class T>
  T item() const {
    VEIL_CHECK(numel_ == 1, "[Tensor::item] expected a tensor with one element, got shape {}",
               shape_str(shape_));
    return *(is_cuda() ? to(Device::cpu()) : contiguous()).data<T>();
  }

  /// Deep copy into new contiguous storage.
  Tensor clone() const;
  /// This tensor when already contiguous, else a contiguous copy.
  Tensor contiguous() const;
  /// Same elements in row-major order with a new shape (one extent may be -1). A view when the
  /// tensor is contiguous, a copy otherwise. Throws ValueError when the element counts differ.
  Tensor reshape(Shape shape) const;
  /// View with dimensions d0 and d1 swapped (no copy).
  Tensor transpose(int64_t d0, int64_t d1) const;
  /// transpose(0, 1) of a 2-D tensor.
  Tensor t() const;
  /// View of elements [start, end) along dim (no copy).
  Tensor slice(int64_t dim, int64_t start, int64_t end) const;
  /// View with any shape and non-negative strides (in elements), starting `offset` elements after
  /// this tensor's first element; windows may overlap (im2col). Throws ValueError when a stride is
  /// negative, the ranks differ, or the view would reach outside the storage.
  Tensor as_strided(Shape shape, Shape strides, int64_t offset = 0) const;
  /// Rows (along dim 0) picked by `index` (int64 values in [0, size(0))), copied. On a CUDA
  /// device: one gather kernel (kernels::cuda::gather_index) after uploading the index (8 bytes
  /// per row); a strided view is made contiguous first.
  Tensor index_select0(const std::vector<int64_t>& index) const;
  /// View that repeats size-1 dimensions to `shape` with stride 0 (numpy broadcasting rules).
  Tensor expand(const Shape& shape) const;
  /// Converts the elements to another dtype (numeric cast; ring64 <-> int64 reinterprets the bits;
  /// ring64 <-> float goes through int64, i.e. ring elements read as two's complement).
  Tensor to(DType dtype) const;
  /// Copies `src` (same shape and dtype; may be a strided view) into this tensor's elements.
  void copy_(const Tensor& src);

  /// "Tensor(ring64, [2, 3])", or "Tensor(ring64, [2, 3], cuda:0)" on a GPU — never the values.
  std::string str() const;

 private:
  void check_access(DType want, const char* op) const;
  void check_host(const char* op) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  int64_t numel_ = 0;
  DType dtype_ = DType::kFloat32;
  Device device_;
};

}  // namespace veil::core
