#include "core/idx.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <system_error>
#include <vector>

#include "core/file_io.h"

#include <zlib.h>

namespace veil::core {

namespace {

constexpr uint8_t kTypeUInt8 = 0x08;
constexpr uint8_t kTypeInt8 = 0x09;
constexpr uint8_t kTypeInt16 = 0x0B;
constexpr uint8_t kTypeInt32 = 0x0C;
constexpr uint8_t kTypeFloat32 = 0x0D;
constexpr uint8_t kTypeFloat64 = 0x0E;

constexpr int kMaxDims = 8;
constexpr uint64_t kMaxExtent = (uint64_t{1} << 31) - 1;
constexpr uint64_t kMaxDataBytes = uint64_t{1} << 34;  // 16 GiB
constexpr std::size_t kChunk = std::size_t{1} << 20;

// A byte source over either a raw file or a gzip stream. read() returns the number of bytes read
// (less than asked only at the end of the data) and throws IoError on a read error.
class Source {
 public:
  virtual ~Source() = default;
  virtual std::size_t read(void* buf, std::size_t n) = 0;
};

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

class RawSource : public Source {
 public:
  RawSource(std::unique_ptr<std::FILE, FileCloser> f, std::string path)
      : f_(std::move(f)), path_(std::move(path)) {}
  std::size_t read(void* buf, std::size_t n) override {
    const std::size_t got = std::fread(buf, 1, n, f_.get());
    if (got < n && std::ferror(f_.get()) != 0) {
      throw IoError(fmt::format("[read_idx] read error in '{}': {}", path_, std::strerror(errno)));
    }
    return got;
  }

 private:
  std::unique_ptr<std::FILE, FileCloser> f_;
  std::string path_;
};

struct GzCloser {
  void operator()(gzFile g) const { gzclose(g); }
};

class GzSource : public Source {
 public:
  GzSource(gzFile g, std::string path) : g_(g), path_(std::move(path)) {}
  std::size_t read(void* buf, std::size_t n) override {
    auto* p = static_cast<unsigned char*>(buf);
    std::size_t total = 0;
    while (total < n) {
      const auto want = static_cast<unsigned>(std::min(n - total, kChunk));
      const int got = gzread(g_.get(), p + total, want);
      if (got < 0) {
        int code = 0;
        const char* msg = gzerror(g_.get(), &code);
        throw IoError(fmt::format("[read_idx] corrupt gzip data in '{}': {}", path_,
                                  msg != nullptr ? msg : "unknown zlib error"));
      }
      if (got == 0) {
        // gzread reports a truncated stream as a short read plus an error state.
        int code = 0;
        const char* msg = gzerror(g_.get(), &code);
        if (code != Z_OK && code != Z_BUF_ERROR) {
          throw IoError(fmt::format("[read_idx] corrupt gzip data in '{}': {}", path_,
                                    msg != nullptr ? msg : "unknown zlib error"));
        }
        break;
      }
      total += static_cast<std::size_t>(got);
    }
    return total;
  }

 private:
  std::unique_ptr<gzFile_s, GzCloser> g_;
  std::string path_;
};

// Opens `path`, sniffing the first two bytes for the gzip magic 1f 8b.
std::unique_ptr<Source> open_source(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    throw IoError(fmt::format("[read_idx] cannot open '{}': {}", path, std::strerror(errno)));
  }
  std::array<unsigned char, 2> head{};
  const std::size_t n = std::fread(head.data(), 1, head.size(), f.get());
  const bool gzip = n == 2 && head[0] == 0x1f && head[1] == 0x8b;
  if (!gzip) {
    std::rewind(f.get());
    return std::make_unique<RawSource>(std::move(f), path);
  }
  f.reset();
  gzFile g = gzopen(path.c_str(), "rb");
  if (g == nullptr) {
    throw IoError(fmt::format("[read_idx] cannot open '{}' as gzip: {}", path,
                              errno != 0 ? std::strerror(errno) : "out of memory"));
  }
  gzbuffer(g, 1U << 18);
  return std::make_unique<GzSource>(g, path);
}

std::size_t read_full(Source& src, void* buf, std::size_t n) {
  auto* p = static_cast<unsigned char*>(buf);
  std::size_t total = 0;
  while (total < n) {
    const std::size_t got = src.read(p + total, std::min(n - total, kChunk));
    if (got == 0) {
      break;
    }
    total += got;
  }
  return total;
}

uint32_t load_be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void store_be32(unsigned char* p, uint32_t v) {
  p[0] = static_cast<unsigned char>(v >> 24);
  p[1] = static_cast<unsigned char>(v >> 16);
  p[2] = static_cast<unsigned char>(v >> 8);
  p[3] = static_cast<unsigned char>(v);
}

// Reverses the byte order of each `width`-byte element when the host is little-endian
// (IDX data is big-endian).
void big_endian_inplace(unsigned char* p, std::size_t count, std::size_t width) {
  if constexpr (std::endian::native == std::endian::little) {
    for (std::size_t i = 0; i < count; ++i) {
      std::reverse(p + i * width, p + (i + 1) * width);
    }
  }
}

}  // namespace

Tensor read_idx(const std::string& path) {
  std::unique_ptr<Source> src = open_source(path);

  std::array<unsigned char, 4> magic{};
  const std::size_t mgot = read_full(*src, magic.data(), magic.size());
  if (mgot < magic.size() || magic[0] != 0 || magic[1] != 0) {
    throw IoError(fmt::format(
        "[read_idx] '{}' is not an IDX file: expected a magic number 0x0000TTDD, got {}", path,
        mgot < magic.size()
            ? fmt::format("{} bytes", mgot)
            : fmt::format("0x{:02x}{:02x}{:02x}{:02x}", magic[0], magic[1], magic[2], magic[3])));
  }
  const uint8_t type = magic[2];
  const int ndims = magic[3];
  DType dtype = DType::kUInt8;
  std::size_t width = 1;
  switch (type) {
    case kTypeUInt8:
      break;
    case kTypeInt32:
      dtype = DType::kInt64;
      width = 4;
      break;
    case kTypeFloat32:
      dtype = DType::kFloat32;
      width = 4;
      break;
    case kTypeFloat64:
      dtype = DType::kFloat64;
      width = 8;
      break;
    case kTypeInt8:
    case kTypeInt16:
      throw NotImplementedError(fmt::format(
          "[read_idx] '{}': IDX type code 0x{:02x} (int8/int16) is not supported", path, type));
    default:
      throw IoError(
          fmt::format("[read_idx] '{}' is not an IDX file: unknown type code 0x{:02x} "
                      "in magic number 0x0000{:02x}{:02x}",
                      path, type, type, magic[3]));
  }
  if (ndims < 1 || ndims > kMaxDims) {
    throw IoError(
        fmt::format("[read_idx] '{}': implausible number of dimensions {} (expected 1..{})", path,
                    ndims, kMaxDims));
  }

  std::vector<unsigned char> dim_bytes(static_cast<std::size_t>(ndims) * 4);
  const std::size_t dgot = read_full(*src, dim_bytes.data(), dim_bytes.size());
  if (dgot < dim_bytes.size()) {
    throw IoError(
        fmt::format("[read_idx] '{}' is truncated: expected {} header bytes for {} "
                    "dimensions, got {}",
                    path, dim_bytes.size(), ndims, dgot));
  }
  Shape shape;
  uint64_t numel = 1;
  bool too_big = false;
  for (int d = 0; d < ndims; ++d) {
    const uint32_t e = load_be32(dim_bytes.data() + 4 * d);
    if (e > kMaxExtent) {
      throw IoError(
          fmt::format("[read_idx] '{}': implausible extent {} in dimension {}", path, e, d));
    }
    shape.push_back(static_cast<int64_t>(e));
    if (e != 0 && numel > kMaxDataBytes / e) {
      too_big = true;  // checked before multiplying, so the product never overflows
    } else {
      numel *= e;
    }
  }
  if (too_big || numel * width > kMaxDataBytes) {
    throw IoError(fmt::format("[read_idx] '{}': implausible dimensions (more than {} data bytes)",
                              path, kMaxDataBytes));
  }
  const auto nbytes = static_cast<std::size_t>(numel * width);

  // Raw elements land in `buf`: the tensor itself when the on-disk width equals the dtype's.
  Tensor out = Tensor::empty(shape, dtype);
  std::vector<unsigned char> staging;
  unsigned char* buf = nullptr;
  if (width == dtype_size(dtype)) {
    buf = reinterpret_cast<unsigned char*>(out.mutable_bytes().data());
  } else {
    staging.resize(nbytes);
    buf = staging.data();
  }
  const std::size_t got = read_full(*src, buf, nbytes);
  if (got < nbytes) {
    throw IoError(
        fmt::format("[read_idx] '{}' is truncated: expected {} data bytes for shape {}, "
                    "got {}",
                    path, nbytes, shape_str(shape), got));
  }
  unsigned char extra = 0;
  if (read_full(*src, &extra, 1) != 0) {
    throw IoError(
        fmt::format("[read_idx] '{}' has bytes after the {} data bytes of shape {} (wrong header?)",
                    path, nbytes, shape_str(shape)));
  }

  const auto count = static_cast<std::size_t>(numel);
  if (width > 1) {
    big_endian_inplace(buf, count, width);
  }
  if (type == kTypeInt32) {
    auto* o = out.data<int64_t>();
    for (std::size_t i = 0; i < count; ++i) {
      int32_t v = 0;
      std::memcpy(&v, buf + 4 * i, 4);
      o[i] = v;
    }
  }
  return out;
}

void write_idx(const std::string& path, const Tensor& t) {
  VEIL_CHECK(t.defined(), "[write_idx] got an undefined tensor");
  VEIL_CHECK(t.dim() >= 1 && t.dim() <= 255,
             "[write_idx] expected 1..255 dimensions, got a tensor of shape {}",
             shape_str(t.shape()));
  uint8_t type = 0;
  std::size_t width = 0;
  switch (t.dtype()) {
    case DType::kUInt8:
      type = kTypeUInt8;
      width = 1;
      break;
    case DType::kInt64:
      type = kTypeInt32;
      width = 4;
      break;
    case DType::kFloat32:
      type = kTypeFloat32;
      width = 4;
      break;
    case DType::kFloat64:
      type = kTypeFloat64;
      width = 8;
      break;
    default:
      throw ValueError(
          fmt::format("[write_idx] IDX cannot hold dtype {} (uint8, int64, float32, "
                      "float64 only)",
                      dtype_name(t.dtype())));
  }
  for (const int64_t e : t.shape()) {
    VEIL_CHECK(e >= 0 && static_cast<uint64_t>(e) <= kMaxExtent,
               "[write_idx] extent {} of shape {} does not fit IDX's uint32 dimensions", e,
               shape_str(t.shape()));
  }

  const Tensor c = t.contiguous();
  const auto count = static_cast<std::size_t>(c.numel());
  std::vector<unsigned char> bytes(4 + 4 * static_cast<std::size_t>(t.dim()) + count * width);
  bytes[0] = 0;
  bytes[1] = 0;
  bytes[2] = type;
  bytes[3] = static_cast<unsigned char>(t.dim());
  for (int64_t d = 0; d < t.dim(); ++d) {
    store_be32(bytes.data() + 4 + 4 * d, static_cast<uint32_t>(t.size(d)));
  }
  unsigned char* data = bytes.data() + 4 + 4 * t.dim();
  if (t.dtype() == DType::kInt64) {
    const auto* p = c.data<int64_t>();
    for (std::size_t i = 0; i < count; ++i) {
      VEIL_CHECK(p[i] >= std::numeric_limits<int32_t>::min() &&
                     p[i] <= std::numeric_limits<int32_t>::max(),
                 "[write_idx] int64 element {} is outside int32 (IDX stores int32)", i);
      const auto v = static_cast<int32_t>(p[i]);
      std::memcpy(data + 4 * i, &v, 4);
    }
  } else if (count > 0) {
    std::memcpy(data, c.bytes().data(), count * width);
  }
  if (width > 1) {
    big_endian_inplace(data, count, width);
  }

  write_file_atomically(path,
                        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                        "write_idx");
}

}  // namespace veil::core
