#pragma once
// Little helpers to encode protocol messages (requests to the dealer, op descriptors) as
// little-endian 64-bit words, and to decode them with bounds checks (ProtocolError, never UB).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace veil::crypto {

/// Appends 64-bit words and shapes to a byte buffer.
class WireWriter {
 public:
  void u64(uint64_t v) {
    const std::size_t at = bytes_.size();
    bytes_.resize(at + sizeof(v));
    std::memcpy(bytes_.data() + at, &v, sizeof(v));
  }
  void shape(const core::Shape& s) {
    u64(s.size());
    for (int64_t e : s) {
      u64(static_cast<uint64_t>(e));
    }
  }
  void append(const std::vector<std::byte>& more) {
    bytes_.insert(bytes_.end(), more.begin(), more.end());
  }
  std::vector<std::byte> take() { return std::move(bytes_); }

 private:
  std::vector<std::byte> bytes_;
};

/// Reads what WireWriter wrote. Every read is bounds-checked; `what` names the message in errors.
class WireReader {
 public:
  WireReader(std::span<const std::byte> bytes, const char* what) : bytes_(bytes), what_(what) {}
  uint64_t u64() {
    VEIL_CHECK_WITH(ProtocolError, at_ + sizeof(uint64_t) <= bytes_.size(),
                    "[{}] truncated message ({} bytes)", what_, bytes_.size());
    uint64_t v = 0;
    std::memcpy(&v, bytes_.data() + at_, sizeof(v));
    at_ += sizeof(v);
    return v;
  }
  /// A shape of at most 8 dimensions with extents below 2^40.
  core::Shape shape() {
    const uint64_t n = u64();
    VEIL_CHECK_WITH(ProtocolError, n <= 8, "[{}] implausible rank {}", what_, n);
    core::Shape s(n);
    for (auto& e : s) {
      e = static_cast<int64_t>(u64());
      VEIL_CHECK_WITH(ProtocolError, e >= 0 && e < (int64_t{1} << 40), "[{}] implausible extent",
                      what_);
    }
    return s;
  }
  std::span<const std::byte> rest() const { return bytes_.subspan(at_); }
  void skip_all() { at_ = bytes_.size(); }
  /// Throws ProtocolError unless every byte was read.
  void finish() const {
    VEIL_CHECK_WITH(ProtocolError, at_ == bytes_.size(), "[{}] {} trailing bytes", what_,
                    bytes_.size() - at_);
  }

 private:
  std::span<const std::byte> bytes_;
  const char* what_;
  std::size_t at_ = 0;
};

}  // namespace veil::crypto
