// Frame encoding and decoding (see frame.h). Protobuf wire format: a field key is the varint
// (field_number << 3 | wire_type); Frame.header is field 1 and Frame.data field 2, both
// length-delimited (wire type 2): key, varint length, bytes.

#include "comm/grpc/frame.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include <grpc/slice.h>

namespace veil::comm::grpc_transport {

namespace {

constexpr uint8_t kHeaderKey = (1U << 3U) | 2U;  // field 1, length-delimited
constexpr uint8_t kDataKey = (2U << 3U) | 2U;    // field 2, length-delimited
constexpr std::size_t kMaxVarintBytes = 10;

std::size_t put_varint(uint8_t* out, uint64_t v) {
  std::size_t n = 0;
  while (v >= 0x80U) {
    out[n++] = static_cast<uint8_t>(v | 0x80U);
    v >>= 7U;
  }
  out[n++] = static_cast<uint8_t>(v);
  return n;
}

std::size_t varint_size(uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80U) {
    v >>= 7U;
    ++n;
  }
  return n;
}

/// A mutable slice of `len` uninitialised bytes.
grpc_slice alloc_slice(std::size_t len) {
  return grpc_slice_malloc(len);
}

/// Writes key + length + serialized header (+ data key + data length when with_data) to `out`;
/// returns the bytes written. `out` must hold prefix_bound(header_size).
std::size_t put_prefix(uint8_t* out,
                       const wire::Header& header,
                       std::size_t header_size,
                       bool with_data,
                       std::size_t data_size) {
  std::size_t n = 0;
  out[n++] = kHeaderKey;
  n += put_varint(out + n, header_size);
  header.SerializeWithCachedSizesToArray(out + n);
  n += header_size;
  if (with_data) {
    out[n++] = kDataKey;
    n += put_varint(out + n, data_size);
  }
  return n;
}

std::size_t prefix_bound(std::size_t header_size) {
  return 2 * (1 + kMaxVarintBytes) + header_size;
}

/// Sequential reader over a message's slices.
class SliceCursor {
 public:
  explicit SliceCursor(const std::vector<grpc::Slice>& slices) : slices_(slices) { skip_empty(); }

  bool at_end() const { return index_ == slices_.size(); }
  std::size_t index() const { return index_; }
  std::size_t offset() const { return offset_; }

  bool read_byte(uint8_t& b) {
    if (at_end()) {
      return false;
    }
    b = slices_[index_].begin()[offset_];
    advance(1);
    return true;
  }

  bool read_varint(uint64_t& v) {
    v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      uint8_t b = 0;
      if (!read_byte(b)) {
        return false;
      }
      v |= static_cast<uint64_t>(b & 0x7FU) << shift;
      if ((b & 0x80U) == 0) {
        return true;
      }
    }
    return false;  // more than 10 bytes
  }

  /// Copies n bytes into out (appending). False when fewer remain.
  bool read_string(std::size_t n, std::string& out) {
    while (n > 0) {
      if (at_end()) {
        return false;
      }
      const grpc::Slice& s = slices_[index_];
      const std::size_t take = std::min(n, s.size() - offset_);
      out.append(reinterpret_cast<const char*>(s.begin() + offset_), take);
      advance(take);
      n -= take;
    }
    return true;
  }

  /// Skips n bytes. False when fewer remain.
  bool skip(std::size_t n) {
    while (n > 0) {
      if (at_end()) {
        return false;
      }
      const std::size_t take = std::min(n, slices_[index_].size() - offset_);
      advance(take);
      n -= take;
    }
    return true;
  }

 private:
  void advance(std::size_t n) {
    offset_ += n;
    if (offset_ == slices_[index_].size()) {
      ++index_;
      offset_ = 0;
      skip_empty();
    }
  }
  void skip_empty() {
    while (index_ < slices_.size() && slices_[index_].size() == 0) {
      ++index_;
    }
  }

  const std::vector<grpc::Slice>& slices_;
  std::size_t index_ = 0;
  std::size_t offset_ = 0;
};

}  // namespace

grpc::Slice copy_to_slice(std::span<const std::byte> data) {
  grpc_slice s = alloc_slice(data.size());
  if (!data.empty()) {
    std::memcpy(GRPC_SLICE_START_PTR(s), data.data(), data.size());
  }
  return grpc::Slice(s, grpc::Slice::STEAL_REF);
}

grpc::ByteBuffer make_frame(const wire::Header& header,
                            const grpc::Slice* data,
                            std::size_t begin,
                            std::size_t end) {
  const std::size_t header_size = header.ByteSizeLong();
  const bool with_data = data != nullptr;
  const std::size_t data_size = with_data ? end - begin : 0;
  uint8_t buf[256];
  std::vector<uint8_t> big;
  uint8_t* out = buf;
  if (prefix_bound(header_size) > sizeof(buf)) {  // a long tag or abort reason
    big.resize(prefix_bound(header_size));
    out = big.data();
  }
  const std::size_t n = put_prefix(out, header, header_size, with_data, data_size);
  grpc::Slice parts[2] = {grpc::Slice(out, n), grpc::Slice()};
  if (with_data && data_size > 0) {
    parts[1] = data->sub(begin, end);
    return grpc::ByteBuffer(parts, 2);
  }
  return grpc::ByteBuffer(parts, 1);
}

grpc::ByteBuffer make_small_frame(const wire::Header& header, std::span<const std::byte> data) {
  const std::size_t header_size = header.ByteSizeLong();
  const std::size_t prefix = 2 + varint_size(header_size) + header_size + varint_size(data.size());
  grpc_slice s = alloc_slice(prefix + data.size());
  uint8_t* out = GRPC_SLICE_START_PTR(s);
  const std::size_t n = put_prefix(out, header, header_size, /*with_data=*/true, data.size());
  if (!data.empty()) {
    std::memcpy(out + n, data.data(), data.size());
  }
  grpc::Slice slice(s, grpc::Slice::STEAL_REF);
  return grpc::ByteBuffer(&slice, 1);
}

namespace {
// Calls put(pointer, bytes) for each piece of the frame's data, in order.
template <class Put>
void for_each_data_piece(const DecodedFrame& f, Put&& put) {
  std::size_t left = f.data_size;
  std::size_t offset = f.data_offset;
  for (std::size_t i = f.data_slice; left > 0 && i < f.slices.size(); ++i) {
    const grpc::Slice& s = f.slices[i];
    const std::size_t take = std::min(left, s.size() - offset);
    put(reinterpret_cast<const std::byte*>(s.begin() + offset), take);
    left -= take;
    offset = 0;
  }
}
}  // namespace

void DecodedFrame::append_data_to(Bytes& out) const {
  for_each_data_piece(*this,
                      [&](const std::byte* p, std::size_t n) { out.insert(out.end(), p, p + n); });
}

void DecodedFrame::copy_data_to(std::byte* dst) const {
  for_each_data_piece(*this, [&](const std::byte* p, std::size_t n) {
    std::memcpy(dst, p, n);
    dst += n;
  });
}

bool decode_frame(grpc::ByteBuffer& buffer, DecodedFrame& out, std::string& error) {
  out = DecodedFrame{};
  if (!buffer.Dump(&out.slices).ok()) {
    error = "unreadable message buffer";
    return false;
  }
  buffer.Clear();
  SliceCursor cur(out.slices);
  bool have_data = false;
  while (!cur.at_end()) {
    uint64_t key = 0;
    if (!cur.read_varint(key)) {
      error = "truncated field key";
      return false;
    }
    const uint64_t field = key >> 3U;
    const uint64_t wire_type = key & 7U;
    if (wire_type == 0) {  // varint: an unknown scalar field, skipped
      uint64_t ignored = 0;
      if (!cur.read_varint(ignored)) {
        error = "truncated varint field";
        return false;
      }
      continue;
    }
    if (wire_type == 1 || wire_type == 5) {  // fixed64 / fixed32: unknown, skipped
      if (!cur.skip(wire_type == 1 ? 8 : 4)) {
        error = "truncated fixed-size field";
        return false;
      }
      continue;
    }
    if (wire_type != 2) {
      error = "unsupported wire type " + std::to_string(wire_type);
      return false;
    }
    uint64_t len = 0;
    if (!cur.read_varint(len)) {
      error = "truncated field length";
      return false;
    }
    if (field == 1) {
      if (out.has_header || have_data) {
        error = out.has_header ? "repeated header field" : "header after the data field";
        return false;
      }
      std::string bytes;
      if (len > (1U << 20U) || !cur.read_string(static_cast<std::size_t>(len), bytes)) {
        error = "truncated or oversized header";
        return false;
      }
      if (!out.header.ParseFromString(bytes)) {
        error = "unparsable header";
        return false;
      }
      out.has_header = true;
    } else if (field == 2) {
      if (have_data) {
        error = "repeated data field";
        return false;
      }
      have_data = true;
      out.data_slice = cur.index();
      out.data_offset = cur.offset();
      out.data_size = static_cast<std::size_t>(len);
      if (!cur.skip(out.data_size)) {
        error = "data field shorter than its length";
        return false;
      }
    } else if (!cur.skip(static_cast<std::size_t>(len))) {  // unknown field
      error = "truncated field";
      return false;
    }
  }
  if (!out.has_header) {
    error = "frame without header";
    return false;
  }
  return true;
}

}  // namespace veil::comm::grpc_transport
