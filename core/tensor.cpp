#include "core/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/allocator.h"
#include "core/cuda_dispatch.h"
#include "kernels/cuda_backend.h"

namespace veil::core {

std::string shape_str(const Shape& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t e : s) {
    VEIL_CHECK(e >= 0, "[shape] expected non-negative extents, got {}", shape_str(s));
    n *= e;
  }
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (std::size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

namespace kc = kernels::cuda;

namespace {
// Visible CUDA devices, asked once (the set cannot change while the process runs).
int cuda_device_count() {
  static const int count = kc::device_count();
  return count;
}
}  // namespace

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (device.type == Device::Type::kCPU) {
    data_ = host_alloc(bytes);
    return;
  }
  VEIL_CHECK_WITH(NotCompiledError, kc::compiled(),
                  "[Storage] cuda:{} tensors need the CUDA backend, which this build of veil does "
                  "not contain (configure with -DVEIL_WITH_CUDA=ON), or use Device::cpu()",
                  device.index);
  const int count = cuda_device_count();
  VEIL_CHECK_WITH(kc::CudaError, device.index >= 0 && device.index < count,
                  "[Storage] expected a CUDA device index in [0, device_count() = {}), got cuda:{}",
                  count, device.index);
  data_ = kc::device_alloc(bytes, device.index);
}

Storage::~Storage() {
  if (device_.type == Device::Type::kCPU) {
    host_free(data_, bytes_);
  } else if (data_ != nullptr) {
    kc::device_free(data_, device_.index);
  }
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ =
      std::make_shared<Storage>(static_cast<std::size_t>(t.numel_) * dtype_size(dtype), device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (t.is_cuda()) {
    if (t.nbytes() > 0) {
      kc::zero(t.storage_->data(), t.nbytes(), device.index);
    }
    return t;
  }
  std::memset(t.storage_->data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full_bits(const Shape& shape, DType dtype, uint64_t bits, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (t.numel() > 0) {
    kc::fill(cuda_ops::elem(dtype), t.numel(), bits, t.storage_->data(), device.index);
  }
  return t;
}

int64_t Tensor::size(int64_t d) const {
  const int64_t nd = dim();
  VEIL_CHECK(d >= -nd && d < nd, "[Tensor::size] dimension {} out of range for shape {}", d,
             shape_str(shape_));
  return shape_[static_cast<std::size_t>(d < 0 ? d + nd : d)];
}

bool Tensor::is_contiguous() const {
  if (numel_ == 0) {
    return true;  // no element to misplace (a fresh [4, 0, 3] has strides [3, 3, 1])
  }
  int64_t expect = 1;
  for (std::size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] != 1 && strides_[i] != expect) {
      return false;
    }
    expect *= shape_[i];
  }
  return true;
}

void Tensor::check_access(DType want, const char* op) const {
  VEIL_CHECK(defined(), "[Tensor::{}] tensor is undefined", op);
  VEIL_CHECK(want == dtype_, "[Tensor::{}] expected element type {}, tensor is {}", op,
             dtype_name(want), dtype_name(dtype_));
}

void Tensor::check_host(const char* op) const {
  VEIL_CHECK(device_.type == Device::Type::kCPU,
             "[Tensor::{}] expected a tensor in host memory, got one on cuda:{}; copy it with "
             ".to(Device::cpu()) or hand device_data() to a kernel",
             op, device_.index);
}

std::span<const std::byte> Tensor::bytes() const {
  VEIL_CHECK(defined() && is_contiguous(), "[Tensor::bytes] expected a contiguous tensor, got {}",
             str());
  check_host("bytes");
  return {static_cast<const std::byte*>(storage_->data()) +
              static_cast<std::size_t>(offset_) * dtype_size(dtype_),
          nbytes()};
}

std::span<std::byte> Tensor::mutable_bytes() {
  VEIL_CHECK(defined() && is_contiguous(),
             "[Tensor::mutable_bytes] expected a contiguous tensor, got {}", str());
  check_host("mutable_bytes");
  return {static_cast<std::byte*>(storage_->data()) +
              static_cast<std::size_t>(offset_) * dtype_size(dtype_),
          nbytes()};
}

namespace {

// Calls f(src_offset, dst_index) for every element of `t` in row-major order.
template <class F>
void for_each_offset(const Shape& shape, const Shape& strides, int64_t offset, F&& f) {
  const int64_t n = shape_numel(shape);
  if (n == 0) {
    return;
  }
  const std::size_t nd = shape.size();
  if (nd == 0) {
    f(offset, 0);
    return;
  }
  std::vector<int64_t> idx(nd, 0);
  int64_t off = offset;
  const int64_t inner = shape[nd - 1];
  const int64_t inner_stride = strides[nd - 1];
  for (int64_t i = 0; i < n; i += inner) {
    for (int64_t j = 0; j < inner; ++j) {
      f(off + j * inner_stride, i + j);
    }
    // advance the outer index
    for (std::size_t d = nd - 1; d-- > 0;) {
      off += strides[d];
      if (++idx[d] < shape[d]) {
        break;
      }
      off -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

// dst = src when either lives on a CUDA device (shapes and dtypes already checked; dst
// contiguous). A strided source is gathered on its own device first, except within one device,
// where the gather writes straight into dst.
void copy_with_device(Tensor& dst, const Tensor& src) {
  const std::size_t bytes = dst.nbytes();
  if (bytes == 0) {
    return;
  }
  void* d = cuda_ops::ptr(dst);
  const Device dd = dst.device();
  const Device sd = src.device();
  if (dd == sd) {
    if (src.is_contiguous()) {
      kc::copy_device_to_device(d, cuda_ops::ptr(src), bytes, dd.index);
    } else {
      kc::copy_strided(cuda_ops::elem(src.dtype()), src.numel(), cuda_ops::ptr(src),
                       cuda_ops::layout(src, "Tensor::copy_"), d, dd.index);
    }
    return;
  }
  const Tensor s = src.contiguous();
  if (!src.is_cuda()) {
    kc::copy_to_device(d, cuda_ops::ptr(s), bytes, dd.index);
  } else if (!dst.is_cuda()) {
    kc::copy_to_host(d, cuda_ops::ptr(s), bytes, sd.index);
  } else {
    // Between two GPUs: dst's memory was allocated in order on dst's stream and src's data is
    // written in order on src's; finish both before the peer copy, and the copy before returning.
    kc::synchronize(dd.index);
    kc::synchronize(sd.index);
    kc::copy_device_to_device(d, cuda_ops::ptr(s), bytes, sd.index);
    kc::synchronize(sd.index);
  }
}

}  // namespace

Tensor Tensor::to(Device device) const {
  VEIL_CHECK(defined(), "[Tensor::to] tensor is undefined");
  if (device == device_) {
    return *this;
  }
  Tensor out = empty(shape_, dtype_, device);
  out.copy_(*this);
  return out;
}

void Tensor::copy_(const Tensor& src) {
  VEIL_CHECK(src.shape_ == shape_ && src.dtype_ == dtype_,
             "[Tensor::copy_] expected source {}, got {}", str(), src.str());
  VEIL_CHECK(is_contiguous(), "[Tensor::copy_] destination must be contiguous, got {}", str());
  if (is_cuda() || src.is_cuda()) {
    copy_with_device(*this, src);
    return;
  }
  const std::size_t es = dtype_size(dtype_);
  auto* dst = static_cast<std::byte*>(storage_->data()) + static_cast<std::size_t>(offset_) * es;
  const auto* sp = static_cast<const std::byte*>(src.storage_->data());
  if (src.is_contiguous()) {
    std::memmove(dst, sp + static_cast<std::size_t>(src.offset_) * es, nbytes());
    return;
  }
  for_each_offset(src.shape_, src.strides_, src.offset_, [&](int64_t so, int64_t di) {
    std::memcpy(dst + static_cast<std::size_t>(di) * es, sp + static_cast<std::size_t>(so) * es,
                es);
  });
}

Tensor Tensor::clone() const {
  VEIL_CHECK(defined(), "[Tensor::clone] tensor is undefined");
  Tensor out = empty(shape_, dtype_, device_);
  out.copy_(*this);
  return out;
}

Tensor Tensor::contiguous() const {
  VEIL_CHECK(defined(), "[Tensor::contiguous] tensor is undefined");
  return is_contiguous() ? *this : clone();
}

Tensor Tensor::reshape(Shape shape) const {
  VEIL_CHECK(defined(), "[Tensor::reshape] tensor is undefined");
  int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      VEIL_CHECK(infer < 0, "[reshape] only one extent may be -1, got {}", shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      VEIL_CHECK(shape[i] >= 0, "[reshape] invalid extent in {}", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    VEIL_CHECK(known > 0 && numel_ % known == 0, "[reshape] cannot reshape {} into {}",
               shape_str(shape_), shape_str(shape));
    shape[static_cast<std::size_t>(infer)] = numel_ / known;
    known *= shape[static_cast<std::size_t>(infer)];
  }
  VEIL_CHECK(known == numel_, "[reshape] cannot reshape {} ({} elements) into {} ({} elements)",
             shape_str(shape_), numel_, shape_str(shape), known);
  Tensor out = contiguous();
  out.shape_ = std::move(shape);
  out.strides_ = contiguous_strides(out.shape_);
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  const int64_t nd = dim();
  VEIL_CHECK(d0 >= -nd && d0 < nd && d1 >= -nd && d1 < nd,
             "[transpose] dimensions ({}, {}) out of range for shape {}", d0, d1,
             shape_str(shape_));
  auto a = static_cast<std::size_t>(d0 < 0 ? d0 + nd : d0);
  auto b = static_cast<std::size_t>(d1 < 0 ? d1 + nd : d1);
  Tensor out = *this;
  std::swap(out.shape_[a], out.shape_[b]);
  std::swap(out.strides_[a], out.strides_[b]);
  return out;
}

Tensor Tensor::t() const {
  VEIL_CHECK(dim() == 2, "[t] expected a 2-D tensor, got shape {}", shape_str(shape_));
  return transpose(0, 1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end) const {
  const int64_t nd = dim();
  VEIL_CHECK(d >= -nd && d < nd, "[slice] dimension {} out of range for shape {}", d,
             shape_str(shape_));
  auto k = static_cast<std::size_t>(d < 0 ? d + nd : d);
  VEIL_CHECK(0 <= start && start <= end && end <= shape_[k],
             "[slice] expected 0 <= start <= end <= {} along dim {}, got [{}, {})", shape_[k], d,
             start, end);
  Tensor out = *this;
  out.offset_ += start * strides_[k];
  out.shape_[k] = end - start;
  out.numel_ = shape_numel(out.shape_);
  return out;
}

Tensor Tensor::as_strided(Shape shape, Shape strides, int64_t offset) const {
  VEIL_CHECK(defined(), "[as_strided] tensor is undefined");
  VEIL_CHECK(shape.size() == strides.size(),
             "[as_strided] expected one stride per dimension, got "
             "shape {} and {} strides",
             shape_str(shape), strides.size());
  VEIL_CHECK(offset >= 0, "[as_strided] expected a non-negative offset, got {}", offset);
  int64_t last = offset_ + offset;  // the furthest element the view reaches
  bool empty_view = false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    VEIL_CHECK(shape[i] >= 0 && strides[i] >= 0,
               "[as_strided] expected non-negative extents and strides, got shape {}",
               shape_str(shape));
    empty_view = empty_view || shape[i] == 0;
    last += shape[i] > 0 ? (shape[i] - 1) * strides[i] : 0;
  }
  const auto capacity =
      static_cast<int64_t>(storage_->bytes() / static_cast<std::size_t>(dtype_size(dtype_)));
  VEIL_CHECK(empty_view || last < capacity,
             "[as_strided] the view {} reaches element {} of a storage of {}", shape_str(shape),
             last, capacity);
  Tensor out = *this;
  out.shape_ = std::move(shape);
  out.strides_ = std::move(strides);
  out.offset_ = offset_ + offset;
  out.numel_ = shape_numel(out.shape_);
  return out;
}

Tensor Tensor::index_select0(const std::vector<int64_t>& index) const {
  VEIL_CHECK(dim() >= 1, "[index_select] expected at least 1 dimension, got a 0-d tensor");
  Shape out_shape = shape_;
  out_shape[0] = static_cast<int64_t>(index.size());
  Tensor out = empty(out_shape, dtype_, device_);
  const int64_t rows = shape_[0];
  if (is_cuda()) {
    // One gather kernel for all the rows (a shuffled batch is not many copies), the public index
    // uploaded as int64.
    for (int64_t idx : index) {
      VEIL_CHECK(idx >= 0 && idx < rows,
                 "[index_select] index {} out of range for dimension 0 of size {}", idx, rows);
    }
    if (out.numel() == 0) {
      return out;
    }
    cuda_ops::gather_index(contiguous(), 1, rows, numel_ / rows, index, out, /*reuse=*/false);
    return out;
  }
  for (std::size_t i = 0; i < index.size(); ++i) {
    VEIL_CHECK(index[i] >= 0 && index[i] < rows,
               "[index_select] index {} out of range for dimension 0 of size {}", index[i], rows);
    out.slice(0, static_cast<int64_t>(i), static_cast<int64_t>(i) + 1)
        .copy_(slice(0, index[i], index[i] + 1));
  }
  return out;
}

Tensor Tensor::expand(const Shape& shape) const {
  VEIL_CHECK(shape.size() >= shape_.size(), "[expand] cannot expand {} to fewer dimensions {}",
             shape_str(shape_), shape_str(shape));
  Tensor out = *this;
  const std::size_t lead = shape.size() - shape_.size();
  out.shape_ = shape;
  out.strides_.assign(shape.size(), 0);
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      continue;
    }
    const int64_t have = shape_[i - lead];
    if (have == shape[i]) {
      out.strides_[i] = strides_[i - lead];
    } else {
      VEIL_CHECK(have == 1, "[expand] cannot broadcast {} to {}", shape_str(shape_),
                 shape_str(shape));
    }
  }
  out.numel_ = shape_numel(shape);
  return out;
}

namespace {
template <class Dst, class Src>
void convert(const Tensor& src, Tensor& dst) {
  const Src* s = src.data<Src>();
  Dst* d = dst.data<Dst>();
  const int64_t n = src.numel();
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<Dst, uint64_t> && std::is_floating_point_v<Src>) {
      d[i] = static_cast<uint64_t>(static_cast<int64_t>(s[i]));  // via int64: negatives wrap
    } else if constexpr (std::is_floating_point_v<Dst> && std::is_same_v<Src, uint64_t>) {
      d[i] = static_cast<Dst>(static_cast<int64_t>(s[i]));  // two's complement, as above
    } else {
      d[i] = static_cast<Dst>(s[i]);
    }
  }
}

template <class Src>
void convert_from(const Tensor& src, Tensor& dst) {
  switch (dst.dtype()) {
    case DType::kFloat32:
      convert<float, Src>(src, dst);
      break;
    case DType::kFloat64:
      convert<double, Src>(src, dst);
      break;
    case DType::kInt64:
      convert<int64_t, Src>(src, dst);
      break;
    case DType::kRing64:
      convert<uint64_t, Src>(src, dst);
      break;
    case DType::kUInt8:
      convert<uint8_t, Src>(src, dst);
      break;
  }
}
}  // namespace

Tensor Tensor::to(DType dtype) const {
  VEIL_CHECK(defined(), "[Tensor::to] tensor is undefined");
  if (dtype == dtype_) {
    return *this;
  }
  Tensor src = contiguous();
  Tensor out = empty(shape_, dtype, device_);
  if (is_cuda()) {
    if (numel_ > 0) {
      kc::cast(cuda_ops::elem(dtype_), cuda_ops::elem(dtype), numel_, cuda_ops::ptr(src),
               cuda_ops::ptr(out), device_.index);
    }
    return out;
  }
  switch (dtype_) {
    case DType::kFloat32:
      convert_from<float>(src, out);
      break;
    case DType::kFloat64:
      convert_from<double>(src, out);
      break;
    case DType::kInt64:
      convert_from<int64_t>(src, out);
      break;
    case DType::kRing64:
      convert_from<uint64_t>(src, out);
      break;
    case DType::kUInt8:
      convert_from<uint8_t>(src, out);
      break;
  }
  return out;
}

std::string Tensor::str() const {
  if (!defined()) {
    return "Tensor(undefined)";
  }
  if (is_cuda()) {
    return fmt::format("Tensor({}, {}, {})", dtype_name(dtype_), shape_str(shape_),
                       device_str(device_));
  }
  return fmt::format("Tensor({}, {})", dtype_name(dtype_), shape_str(shape_));
}

}  // namespace veil::core
