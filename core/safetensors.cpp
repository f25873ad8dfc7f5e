#include "core/safetensors.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/file_io.h"

#include <fcntl.h>
#include <unistd.h>

namespace veil::core {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; veil assumes a little-endian host");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr const char* kMetadataKey = "__metadata__";

// A stored element type: its name, its width in the file and the dtype it is read into.
struct StoredType {
  std::string_view name;
  std::size_t width;
  DType dtype;
};

constexpr std::array<StoredType, 12> kStoredTypes = {{
    {"F64", 8, DType::kFloat64},
    {"F32", 4, DType::kFloat32},
    {"I64", 8, DType::kInt64},
    {"U8", 1, DType::kUInt8},
    {"U64", 8, DType::kRing64},
    {"F16", 2, DType::kFloat32},
    {"BF16", 2, DType::kFloat32},
    {"I32", 4, DType::kInt64},
    {"I16", 2, DType::kInt64},
    {"I8", 1, DType::kInt64},
    {"U32", 4, DType::kInt64},
    {"U16", 2, DType::kInt64},
}};
constexpr StoredType kBool = {"BOOL", 1, DType::kUInt8};

const StoredType* find_stored_type(std::string_view name) {
  if (name == kBool.name) {
    return &kBool;
  }
  for (const StoredType& t : kStoredTypes) {
    if (t.name == name) {
      return &t;
    }
  }
  return nullptr;
}

// IEEE 754 binary16 -> binary32 (exact: every half value is a float value).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000U) << 16;
  uint32_t exp = (h >> 10) & 0x1FU;
  uint32_t mant = h & 0x3FFU;
  uint32_t bits = 0;
  if (exp == 0x1F) {  // inf / NaN
    bits = sign | 0x7F800000U | (mant << 13);
  } else if (exp != 0) {  // normal
    bits = sign | ((exp + 112U) << 23) | (mant << 13);
  } else if (mant != 0) {  // subnormal: normalise
    exp = 113;
    while ((mant & 0x400U) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3FFU) << 13);
  } else {
    bits = sign;
  }
  return std::bit_cast<float>(bits);
}

template <class T>
T load_le(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Converts `n` elements stored as `type` at `src` into the tensor `out` of type.dtype.
void widen(const StoredType& type,
           const std::byte* src,
           std::size_t n,
           Tensor& out,
           const std::string& path,
           const std::string& name) {
  if (type.dtype == DType::kFloat32) {
    float* dst = out.data<float>();
    for (std::size_t i = 0; i < n; ++i) {
      const auto h = load_le<uint16_t>(src + 2 * i);
      dst[i] = type.name == "F16" ? half_to_float(h)
                                  : std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
    }
    return;
  }
  if (type.dtype == DType::kUInt8) {  // BOOL
    uint8_t* dst = out.data<uint8_t>();
    for (std::size_t i = 0; i < n; ++i) {
      const auto b = static_cast<uint8_t>(src[i]);
      if (b > 1) {
        throw IoError(fmt::format(
            "[read_safetensors] '{}': tensor '{}' (BOOL): element {} is neither 0 nor 1", path,
            name, i));
      }
      dst[i] = b;
    }
    return;
  }
  int64_t* dst = out.data<int64_t>();
  for (std::size_t i = 0; i < n; ++i) {
    if (type.name == "I32") {
      dst[i] = load_le<int32_t>(src + 4 * i);
    } else if (type.name == "I16") {
      dst[i] = load_le<int16_t>(src + 2 * i);
    } else if (type.name == "I8") {
      dst[i] = load_le<int8_t>(src + i);
    } else if (type.name == "U32") {
      dst[i] = load_le<uint32_t>(src + 4 * i);
    } else {  // U16
      dst[i] = load_le<uint16_t>(src + 2 * i);
    }
  }
}

// One parsed header entry before its data is read.
struct HeaderEntry {
  std::string name;
  const StoredType* type = nullptr;
  Shape shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw IoError(fmt::format("[read_safetensors] '{}': {}", path, what));
}

uint64_t json_uint(const nlohmann::json& v,
                   const std::string& path,
                   const std::string& name,
                   const char* field) {
  if (!v.is_number_unsigned()) {
    fail(path, fmt::format("tensor '{}': expected non-negative integers in \"{}\", got {}", name,
                           field, v.is_number() ? v.dump() : std::string(v.type_name())));
  }
  return v.get<uint64_t>();
}

HeaderEntry parse_entry(const std::string& name,
                        const nlohmann::json& info,
                        const std::string& path,
                        uint64_t buffer_bytes) {
  if (!info.is_object()) {
    fail(path, fmt::format("tensor '{}': expected an object with \"dtype\", \"shape\" and "
                           "\"data_offsets\", got a JSON {}",
                           name, info.type_name()));
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!info.contains(field)) {
      fail(path, fmt::format("tensor '{}': the entry has no \"{}\"", name, field));
    }
  }
  HeaderEntry e;
  e.name = name;
  const auto& dtype = info.at("dtype");
  if (!dtype.is_string()) {
    fail(path, fmt::format("tensor '{}': expected \"dtype\" to be a string, got a JSON {}", name,
                           dtype.type_name()));
  }
  e.type = find_stored_type(dtype.get<std::string>());
  if (e.type == nullptr) {
    fail(path, fmt::format("tensor '{}': unsupported dtype '{}' (supported: F64, F32, F16, BF16, "
                           "I64, I32, I16, I8, U64, U32, U16, U8, BOOL)",
                           name, dtype.get<std::string>()));
  }
  const auto& shape = info.at("shape");
  if (!shape.is_array() || shape.size() > 64) {
    fail(path,
         fmt::format("tensor '{}': expected \"shape\" to be an array of at most 64 extents", name));
  }
  // numel * width must not exceed the buffer; track it without overflow.
  uint64_t numel = 1;
  bool empty = false;
  for (const auto& d : shape) {
    const uint64_t extent = json_uint(d, path, name, "shape");
    if (extent > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(path, fmt::format("tensor '{}': extent {} is too large", name, extent));
    }
    e.shape.push_back(static_cast<int64_t>(extent));
    if (extent == 0) {
      empty = true;
    } else if (!empty) {
      if (numel > buffer_bytes / extent) {
        fail(path, fmt::format("tensor '{}': shape {} needs more bytes than the {}-byte data "
                               "buffer holds",
                               name, shape.dump(), buffer_bytes));
      }
      numel *= extent;
    }
  }
  if (empty) {
    numel = 0;
  }
  const auto& offsets = info.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2) {
    fail(path, fmt::format("tensor '{}': expected \"data_offsets\" to be [begin, end]", name));
  }
  e.begin = json_uint(offsets[0], path, name, "data_offsets");
  e.end = json_uint(offsets[1], path, name, "data_offsets");
  if (e.begin > e.end) {
    fail(path, fmt::format("tensor '{}': data_offsets [{}, {}] end before they begin", name,
                           e.begin, e.end));
  }
  if (e.end > buffer_bytes) {
    fail(path, fmt::format("tensor '{}': data_offsets [{}, {}] reach beyond the {}-byte data "
                           "buffer (truncated file?)",
                           name, e.begin, e.end, buffer_bytes));
  }
  if (numel > buffer_bytes / e.type->width || e.end - e.begin != numel * e.type->width) {
    fail(path, fmt::format("tensor '{}': data_offsets [{}, {}] span {} bytes, but shape {} of {} "
                           "needs {}",
                           name, e.begin, e.end, e.end - e.begin, shape.dump(), e.type->name,
                           numel * e.type->width));
  }
  return e;
}

// Parses the header, refusing repeated keys in any object (nlohmann keeps the last one).
nlohmann::json parse_header(const std::string& text, const std::string& path) {
  std::vector<std::set<std::string>> keys;
  std::string repeated;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) {
      keys.emplace_back();
    } else if (event == E::object_end) {
      if (!keys.empty()) {
        keys.pop_back();
      }
    } else if (event == E::key && !keys.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!keys.back().insert(key).second && repeated.empty()) {
        repeated = key;
      }
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, callback);
  } catch (const nlohmann::json::exception& e) {
    fail(path, fmt::format("the header is not valid JSON: {}", e.what()));
  }
  if (!repeated.empty()) {
    fail(path, fmt::format("the header names '{}' more than once", repeated));
  }
  if (!header.is_object()) {
    fail(path, fmt::format("the header is a JSON {}, expected an object", header.type_name()));
  }
  return header;
}

// Reads exactly n bytes at `offset`; IoError naming what was being read.
void read_at(std::ifstream& in,
             uint64_t offset,
             std::byte* dst,
             uint64_t n,
             const std::string& path,
             const std::string& what) {
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
  if (!in || static_cast<uint64_t>(in.gcount()) != n) {
    fail(path, fmt::format("could not read {} ({} bytes at offset {})", what, n, offset));
  }
}

}  // namespace

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (const SafetensorsEntry& e : tensors) {
    if (e.name == name) {
      return &e;
    }
  }
  return nullptr;
}

std::string safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat64:
      return "F64";
    case DType::kFloat32:
      return "F32";
    case DType::kInt64:
      return "I64";
    case DType::kUInt8:
      return "U8";
    case DType::kRing64:
      return "U64";
  }
  return "?";
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fail(path, fmt::format("cannot open: {}", std::strerror(errno)));
  }
  in.seekg(0, std::ios::end);
  const std::streamoff size_signed = in.tellg();
  if (size_signed < 0) {
    fail(path, "cannot determine the file size");
  }
  const auto file_size = static_cast<uint64_t>(size_signed);
  if (file_size < 8) {
    fail(path, fmt::format("the file has {} bytes, too few for the 8-byte header length (not a "
                           "safetensors file?)",
                           file_size));
  }
  std::array<std::byte, 8> len_bytes{};
  read_at(in, 0, len_bytes.data(), 8, path, "the header length");
  const auto header_len = load_le<uint64_t>(len_bytes.data());
  if (header_len == 0 || header_len > kMaxHeaderBytes || header_len > file_size - 8) {
    fail(path, fmt::format("header length {} is invalid for a {}-byte file (expected 1 to "
                           "min({}, file size - 8); not a safetensors file, or truncated?)",
                           header_len, file_size, kMaxHeaderBytes));
  }
  std::string text(header_len, '\0');
  read_at(in, 8, reinterpret_cast<std::byte*>(text.data()), header_len, path, "the header");
  if (text.front() != '{') {
    fail(path, "the header does not start with '{' (not a safetensors file?)");
  }
  const nlohmann::json header = parse_header(text, path);

  const uint64_t data_start = 8 + header_len;
  const uint64_t buffer_bytes = file_size - data_start;
  SafetensorsFile out;
  std::vector<HeaderEntry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == kMetadataKey) {
      if (!info.is_object()) {
        fail(path, fmt::format("\"__metadata__\" is a JSON {}, expected an object of strings",
                               info.type_name()));
      }
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) {
          fail(path, fmt::format("\"__metadata__\" entry '{}' is a JSON {}, expected a string", k,
                                 v.type_name()));
        }
        out.metadata.emplace(k, v.get<std::string>());
      }
      continue;
    }
    entries.push_back(parse_entry(name, info, path, buffer_bytes));
  }
  std::sort(entries.begin(), entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const HeaderEntry& e = entries[i];
    if (e.begin < expected) {
      fail(path, fmt::format("tensor '{}' (data_offsets [{}, {}]) overlaps tensor '{}' (ending "
                             "at {})",
                             e.name, e.begin, e.end, entries[i - 1].name, expected));
    }
    if (e.begin > expected) {
      fail(path, fmt::format("bytes [{}, {}) of the data buffer belong to no tensor (before "
                             "tensor '{}')",
                             expected, e.begin, e.name));
    }
    expected = e.end;
  }
  if (expected != buffer_bytes) {
    fail(path, fmt::format("the tensors cover {} bytes of the {}-byte data buffer (trailing "
                           "bytes after the last tensor)",
                           expected, buffer_bytes));
  }

  out.tensors.reserve(entries.size());
  std::vector<std::byte> scratch;
  for (const HeaderEntry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.type->dtype);
    const uint64_t n = e.end - e.begin;
    const std::string what = fmt::format("the data of tensor '{}'", e.name);
    if (n > 0) {
      if (dtype_size(e.type->dtype) == e.type->width && e.type != &kBool) {
        read_at(in, data_start + e.begin, t.mutable_bytes().data(), n, path, what);
      } else {
        scratch.resize(n);
        read_at(in, data_start + e.begin, scratch.data(), n, path, what);
        widen(*e.type, scratch.data(), static_cast<std::size_t>(t.numel()), t, path, e.name);
      }
    }
    out.tensors.push_back({e.name, std::move(t), std::string(e.type->name)});
  }
  return out;
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Validate and build the header.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) {
      meta[k] = v;
    }
    header[kMetadataKey] = std::move(meta);
  }
  std::set<std::string> names;
  std::vector<Tensor> hosts;
  hosts.reserve(tensors.size());
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    VEIL_CHECK(!name.empty() && name != kMetadataKey,
               "[write_safetensors] '{}': tensor names must be non-empty and not '__metadata__', "
               "got '{}'",
               path, name);
    VEIL_CHECK(names.insert(name).second, "[write_safetensors] '{}': tensor name '{}' is repeated",
               path, name);
    VEIL_CHECK(t.defined(), "[write_safetensors] '{}': tensor '{}' is undefined", path, name);
    Tensor host = t.is_cuda() ? t.to(Device::cpu()) : t.contiguous();
    const uint64_t n = host.nbytes();
    header[name] = {{"dtype", safetensors_dtype_name(host.dtype())},
                    {"shape", host.shape()},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
    hosts.push_back(std::move(host));
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(
        fmt::format("[write_safetensors] '{}': cannot encode the header (tensor names must be "
                    "valid UTF-8): {}",
                    path, e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  const auto header_len = static_cast<uint64_t>(text.size());

  std::array<std::byte, 8> len_bytes{};
  std::memcpy(len_bytes.data(), &header_len, 8);
  std::vector<std::span<const std::byte>> parts{
      len_bytes, std::as_bytes(std::span<const char>(text.data(), text.size()))};
  for (const Tensor& h : hosts) {
    if (h.numel() > 0) {
      parts.push_back(h.bytes());
    }
  }
  write_file_atomically(path, parts, "write_safetensors");
}

}  // namespace veil::core
