#pragma once
// Element types and devices.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace veil::core {

/// Element type of a Tensor. kRing64 is uint64 arithmetic mod 2^64 (shares and fixed-point
/// encodings); kInt64 is a signed integer (labels, indices); kUInt8 holds bytes (raw images, 0/1
/// masks).
enum class DType : uint8_t { kFloat32, kFloat64, kInt64, kRing64, kUInt8 };

/// Bytes per element.
constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32:
      return 4;
    case DType::kUInt8:
      return 1;
    default:
      return 8;
  }
}

/// Lower-case name used in error messages ("float64", "ring64", ...).
constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat64:
      return "float64";
    case DType::kInt64:
      return "int64";
    case DType::kRing64:
      return "ring64";
    case DType::kUInt8:
      return "uint8";
  }
  return "?";
}

/// C++ type that holds one element of a dtype: float, double, int64_t, uint64_t, uint8_t.
template <DType T>
struct DTypeTraits;
template <>
struct DTypeTraits<DType::kFloat32> {
  using type = float;
};
template <>
struct DTypeTraits<DType::kFloat64> {
  using type = double;
};
template <>
struct DTypeTraits<DType::kInt64> {
  using type = int64_t;
};
template <>
struct DTypeTraits<DType::kRing64> {
  using type = uint64_t;
};
template <>
struct DTypeTraits<DType::kUInt8> {
  using type = uint8_t;
};

/// Device that holds a tensor's storage.
struct Device {
  enum class Type : uint8_t { kCPU, kCUDA };
  Type type = Type::kCPU;
  int index = 0;
  bool operator==(const Device&) const = default;
  bool is_cuda() const { return type == Type::kCUDA; }
  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {Type::kCUDA, index}; }
};

}  // namespace veil::core
