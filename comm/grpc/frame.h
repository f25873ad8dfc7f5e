#pragma once
// Frames of the gRPC transport (wire format: comm/grpc/veil.proto). A frame is one gRPC message,
// encoded exactly like a protobuf `Frame { Header header = 1; bytes data = 2; }`, but assembled by
// hand from slices: a small slice with the serialized header and the data field's key and length,
// followed by the payload chunk (a sub-slice of the sender's single copy of the payload, so a
// chunk is never copied again). Decoding parses the header and leaves the data where it is: the
// caller appends it straight into the message buffer. Internal to comm/grpc/.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include "comm/communicator.h"
#include "comm/grpc/veil.pb.h"

namespace veil::comm::grpc_transport {

/// One copy of `data` in a gRPC-owned slice (uninitialised allocation + memcpy).
grpc::Slice copy_to_slice(std::span<const std::byte> data);

/// A frame carrying `header` and, when `data` is non-null, data bytes [begin, end) of *data as the
/// Frame.data field (a sub-slice: no copy).
grpc::ByteBuffer make_frame(const wire::Header& header,
                            const grpc::Slice* data = nullptr,
                            std::size_t begin = 0,
                            std::size_t end = 0);

/// A frame with header and data in one freshly allocated slice (one copy of `data`): cheaper than
/// two slices for small messages.
grpc::ByteBuffer make_small_frame(const wire::Header& header, std::span<const std::byte> data);

/// A received frame: its header and where its data bytes are.
struct DecodedFrame {
  wire::Header header;
  std::vector<grpc::Slice> slices;  ///< the message's slices (references, not copies)
  std::size_t data_slice = 0;       ///< index of the slice where the data starts
  std::size_t data_offset = 0;      ///< offset of the data in that slice
  std::size_t data_size = 0;        ///< data bytes (0 when the frame has no data field)
  bool has_header = false;

  /// Appends the data bytes to `out` (one copy, straight from the received slices).
  void append_data_to(Bytes& out) const;
  /// Copies the data bytes to dst (data_size bytes; one copy, straight from the slices).
  void copy_data_to(std::byte* dst) const;
};

/// Parses `buffer` (consumed: cleared afterwards). Returns false with `error` set (no payload
/// bytes in it) when the bytes are not a well-formed Frame: bad varint, truncated field, repeated
/// or late header, unknown wire type, or an unparsable header.
bool decode_frame(grpc::ByteBuffer& buffer, DecodedFrame& out, std::string& error);

}  // namespace veil::comm::grpc_transport
