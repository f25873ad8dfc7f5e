// core/safetensors: bit-exact round trips of every dtype (0-d, empty, strided), the exact bytes
// of the format built by hand, widened dtypes read from hand-made files, atomic writes, and every
// kind of malformed file refused with an IoError naming the file and the tensor.

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "tests/harness/temp_dir.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using veil::core::DType;
using veil::core::Tensor;

namespace {

using Named = std::vector<std::pair<std::string, Tensor>>;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream os(path, std::ios::binary);
  os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(os.good());
}

std::string le64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xFFU);
  }
  return out;
}

// A safetensors file from a header text and a data buffer, built by hand (no padding).
std::string raw_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

template <class T>
std::string raw_data(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// The bytes of a contiguous tensor, for bit-exact comparisons (NaN payloads included).
std::string tensor_bytes(const Tensor& t) {
  const Tensor c = t.contiguous();
  const auto b = c.bytes();
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Every supported dtype, with awkward values: NaN payloads, infinities, denormals, extremes.
Named every_dtype() {
  const double nan_payload = std::bit_cast<double>(uint64_t{0x7FF8'0000'DEAD'BEEF});
  return {
      {"f64",
       Tensor::from_vector<double>({1.5, -0.0, nan_payload, std::numeric_limits<double>::infinity(),
                                    std::numeric_limits<double>::denorm_min(), -3e300},
                                   {2, 3})},
      {"f32", Tensor::from_vector<float>({0.25F, -7.0F, std::numeric_limits<float>::quiet_NaN(),
                                          std::numeric_limits<float>::denorm_min()},
                                         {4})},
      {"i64", Tensor::from_vector<int64_t>(
                  {std::numeric_limits<int64_t>::min(), -1, 0, std::numeric_limits<int64_t>::max()},
                  {2, 1, 2})},
      {"u8", Tensor::from_vector<uint8_t>({0, 1, 127, 128, 255}, {5})},
      {"ring", Tensor::from_vector<uint64_t>({0, 1, uint64_t{1} << 63, ~uint64_t{0}}, {2, 2})},
      {"scalar", Tensor::scalar<int64_t>(7)},
      {"empty", Tensor::zeros({0, 3}, DType::kFloat32)},
  };
}

}  // namespace

TEST_CASE("safetensors: every dtype round-trips bit for bit", "[core][safetensors]") {
  // GIVEN tensors of every dtype, a 0-d and an empty one, and metadata
  veil::testing::TempDir dir("veil_st");
  const Named in = every_dtype();
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "é ü"}};
  // WHEN written and read back
  veil::core::write_safetensors(dir.file("a.safetensors"), in, meta);
  const auto got = veil::core::read_safetensors(dir.file("a.safetensors"));
  // THEN names, order, dtypes, shapes and bytes are identical
  REQUIRE(got.tensors.size() == in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    INFO(in[i].first);
    CHECK(got.tensors[i].name == in[i].first);
    CHECK(got.tensors[i].tensor.dtype() == in[i].second.dtype());
    CHECK(got.tensors[i].tensor.shape() == in[i].second.shape());
    CHECK(got.tensors[i].stored_dtype == veil::core::safetensors_dtype_name(in[i].second.dtype()));
    CHECK(tensor_bytes(got.tensors[i].tensor) == tensor_bytes(in[i].second));
  }
  CHECK(got.metadata == meta);
  CHECK(got.find("ring") == &got.tensors[4]);
  CHECK(got.find("nope") == nullptr);
  // AND writing the same content again gives the same bytes (deterministic output)
  veil::core::write_safetensors(dir.file("b.safetensors"), in, meta);
  CHECK(read_bytes(dir.file("a.safetensors")) == read_bytes(dir.file("b.safetensors")));
}

TEST_CASE("safetensors: the bytes follow the format (built by hand)", "[core][safetensors]") {
  // GIVEN a strided view (a transpose) and an int64 scalar
  veil::testing::TempDir dir("veil_st");
  const Tensor m = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor mt = m.t();  // [3, 2]: 1 4 2 5 3 6 in row-major order
  // WHEN written
  veil::core::write_safetensors(dir.file("f.safetensors"),
                                {{"w", mt}, {"n", Tensor::scalar<int64_t>(-2)}});
  // THEN: u64 header length, compact JSON in the given order padded with spaces to 8, row-major
  // little-endian data
  std::string header = R"({"w":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]},)"
                       R"("n":{"dtype":"I64","shape":[],"data_offsets":[24,32]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::string expected =
      le64(header.size()) + header + raw_data<float>({1, 4, 2, 5, 3, 6}) + raw_data<int64_t>({-2});
  CHECK(read_bytes(dir.file("f.safetensors")) == expected);
}

TEST_CASE("safetensors: narrower dtypes are widened exactly on read", "[core][safetensors]") {
  // GIVEN a hand-made file with F16, BF16, I32, I16, I8, U32, U16 and BOOL tensors
  veil::testing::TempDir dir("veil_st");
  // F16: 1.0, -2.5, 65504 (max), 2^-24 (smallest subnormal), -0, inf
  const std::vector<uint16_t> f16{0x3C00, 0xC100, 0x7BFF, 0x0001, 0x8000, 0x7C00};
  // BF16: 1.0, -3.0, 2^-126 * 1.5
  const std::vector<uint16_t> bf16{0x3F80, 0xC040, 0x00C0};
  const std::vector<int32_t> i32{-2147483647 - 1, 5};
  const std::vector<int16_t> i16{-32768, 300};
  const std::vector<int8_t> i8{-128, 127};
  const std::vector<uint32_t> u32{4294967295U};
  const std::vector<uint16_t> u16{65535};
  const std::vector<uint8_t> b{1, 0, 1};
  std::string data;
  std::string header = "{";
  auto add = [&](const std::string& name, const std::string& dt, std::size_t n,
                 const std::string& bytes) {
    if (header.size() > 1) {
      header += ',';
    }
    header += fmt::format(R"("{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})", name, dt,
                          n, data.size(), data.size() + bytes.size());
    data += bytes;
  };
  add("h", "F16", f16.size(), raw_data(f16));
  add("bh", "BF16", bf16.size(), raw_data(bf16));
  add("i32", "I32", i32.size(), raw_data(i32));
  add("i16", "I16", i16.size(), raw_data(i16));
  add("i8", "I8", i8.size(), raw_data(i8));
  add("u32", "U32", u32.size(), raw_data(u32));
  add("u16", "U16", u16.size(), raw_data(u16));
  add("b", "BOOL", b.size(), raw_data(b));
  header += "}";
  write_bytes(dir.file("w.safetensors"), raw_file(header, data));
  // WHEN read
  const auto got = veil::core::read_safetensors(dir.file("w.safetensors"));
  // THEN floats become float32 with the exact values, integers int64, BOOL uint8
  const auto h = got.find("h")->tensor.to_vector<float>();
  CHECK(h == std::vector<float>{1.0F, -2.5F, 65504.0F, std::ldexp(1.0F, -24), -0.0F,
                                std::numeric_limits<float>::infinity()});
  CHECK(std::signbit(h[4]));
  CHECK(got.find("h")->stored_dtype == "F16");
  CHECK(got.find("bh")->tensor.to_vector<float>() ==
        std::vector<float>{1.0F, -3.0F, 1.5F * std::ldexp(1.0F, -126)});
  CHECK(got.find("i32")->tensor.to_vector<int64_t>() == std::vector<int64_t>{-2147483648LL, 5});
  CHECK(got.find("i16")->tensor.to_vector<int64_t>() == std::vector<int64_t>{-32768, 300});
  CHECK(got.find("i8")->tensor.to_vector<int64_t>() == std::vector<int64_t>{-128, 127});
  CHECK(got.find("u32")->tensor.to_vector<int64_t>() == std::vector<int64_t>{4294967295LL});
  CHECK(got.find("u16")->tensor.to_vector<int64_t>() == std::vector<int64_t>{65535});
  CHECK(got.find("b")->tensor.dtype() == DType::kUInt8);
  CHECK(got.find("b")->tensor.to_vector<uint8_t>() == std::vector<uint8_t>{1, 0, 1});
}

TEST_CASE("safetensors: malformed files are refused naming the file and the tensor",
          "[core][safetensors]") {
  veil::testing::TempDir dir("veil_st");
  const std::string path = dir.file("bad.safetensors");
  const std::string w8 = raw_data<float>({1, 2});  // 8 bytes of F32 [2]
  auto entry = [](const std::string& name, const std::string& dt, const std::string& shape,
                  uint64_t b, uint64_t e) {
    return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})", name, dt,
                       shape, b, e);
  };
  // "{" + a + "," + b + "}" without operator+ on literals (GCC 12's -Wrestrict false positive)
  auto obj = [](std::initializer_list<std::string> parts) {
    std::string out = "{";
    for (const std::string& p : parts) {
      if (out.size() > 1) {
        out += ',';
      }
      out += p;
    }
    out += '}';
    return out;
  };
  struct Case {
    const char* what;
    std::string bytes;
    std::string message;
  };
  const std::string good = raw_file(obj({entry("w", "F32", "[2]", 0, 8)}), w8);
  const std::vector<Case> cases = {
      {"too short", "abc", "too few for the 8-byte header length"},
      {"header beyond the file", le64(1000) + "{}", "header length 1000 is invalid"},
      {"zero header length", le64(0) + w8, "header length 0 is invalid"},
      {"not JSON", raw_file("{\"w\": [1, 2", ""), "not valid JSON"},
      {"not starting with {", raw_file(" [1, 2]", ""), "does not start with '{'"},
      {"repeated name",
       raw_file(obj({entry("w", "F32", "[1]", 0, 4), entry("w", "F32", "[1]", 4, 8)}), w8),
       "names 'w' more than once"},
      {"unknown dtype", raw_file(obj({entry("w", "F8_E9", "[2]", 0, 8)}), w8),
       "tensor 'w': unsupported dtype 'F8_E9'"},
      {"negative extent", raw_file(obj({entry("w", "F32", "[-2]", 0, 8)}), w8),
       "tensor 'w': expected non-negative integers in \"shape\""},
      {"fractional offset",
       raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8.5]}})", w8),
       "tensor 'w': expected non-negative integers in \"data_offsets\""},
      {"missing field", raw_file(R"({"w":{"dtype":"F32","shape":[2]}})", w8),
       "tensor 'w': the entry has no \"data_offsets\""},
      {"size differs from the shape", raw_file(obj({entry("w", "F32", "[3]", 0, 8)}), w8),
       "tensor 'w': data_offsets [0, 8] span 8 bytes, but shape [3] of F32 needs 12"},
      {"offsets beyond the buffer", raw_file(obj({entry("w", "F32", "[4]", 0, 16)}), w8),
       "tensor 'w': data_offsets [0, 16] reach beyond the 8-byte data buffer"},
      {"end before begin", raw_file(obj({entry("w", "F32", "[0]", 8, 0)}), w8),
       "tensor 'w': data_offsets [8, 0] end before they begin"},
      {"overlap",
       raw_file(obj({entry("a", "F32", "[2]", 0, 8), entry("b", "F32", "[1]", 4, 8)}), w8),
       "tensor 'b' (data_offsets [4, 8]) overlaps tensor 'a'"},
      {"hole", raw_file(obj({entry("a", "F32", "[1]", 4, 8)}), w8),
       "bytes [0, 4) of the data buffer belong to no tensor (before tensor 'a')"},
      {"trailing bytes", good + "xy", "trailing bytes after the last tensor"},
      {"truncated data", good.substr(0, good.size() - 3), "reach beyond the 5-byte data buffer"},
      {"metadata not strings", raw_file(R"({"__metadata__":{"a":1}})", ""),
       "\"__metadata__\" entry 'a' is a JSON number, expected a string"},
      {"entry not an object", raw_file(R"({"w":[1]})", ""), "tensor 'w': expected an object"},
      {"bool not 0/1", raw_file(obj({entry("m", "BOOL", "[2]", 0, 2)}), std::string("\x01\x02", 2)),
       "tensor 'm' (BOOL): element 1 is neither 0 nor 1"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    // GIVEN a file with one defect; WHEN read; THEN IoError naming the path and the defect
    write_bytes(path, c.bytes);
    REQUIRE_THROWS_AS(veil::core::read_safetensors(path), veil::IoError);
    REQUIRE_THROWS_WITH(veil::core::read_safetensors(path),
                        Contains("[read_safetensors] '" + path + "'") && Contains(c.message));
  }
  // the well-formed variant of the same file reads fine
  write_bytes(path, good);
  CHECK(veil::core::read_safetensors(path).tensors.at(0).tensor.to_vector<float>() ==
        std::vector<float>{1, 2});
  // a missing file
  REQUIRE_THROWS_WITH(veil::core::read_safetensors(dir.file("none.safetensors")),
                      Contains("cannot open") && Contains("none.safetensors"));
}

TEST_CASE("safetensors: writes are atomic and refuse bad input", "[core][safetensors]") {
  veil::testing::TempDir dir("veil_st");
  const std::string path = dir.file("m.safetensors");
  const Tensor x = Tensor::from_vector<double>({1, 2, 3}, {3});
  // GIVEN an existing file; WHEN overwritten; THEN the new content is there and no temp file
  // is left in the directory
  veil::core::write_safetensors(path, {{"old", x}});
  veil::core::write_safetensors(path, {{"new", x}});
  CHECK(veil::core::read_safetensors(path).tensors.at(0).name == "new");
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  CHECK(files == 1);
  // bad names and tensors: ValueError, and the old file is untouched
  REQUIRE_THROWS_WITH(veil::core::write_safetensors(path, {{"a", x}, {"a", x}}),
                      Contains("[write_safetensors]") && Contains("'a' is repeated"));
  REQUIRE_THROWS_WITH(veil::core::write_safetensors(path, {{"__metadata__", x}}),
                      Contains("not '__metadata__'"));
  REQUIRE_THROWS_WITH(veil::core::write_safetensors(path, {{"", x}}), Contains("non-empty"));
  REQUIRE_THROWS_WITH(veil::core::write_safetensors(path, {{"u", Tensor()}}),
                      Contains("tensor 'u' is undefined"));
  CHECK(veil::core::read_safetensors(path).tensors.at(0).name == "new");
  // a directory that does not exist: IoError naming the path
  const std::string nowhere = dir.file("no/such/dir/m.safetensors");
  REQUIRE_THROWS_AS(veil::core::write_safetensors(nowhere, {{"a", x}}), veil::IoError);
  REQUIRE_THROWS_WITH(veil::core::write_safetensors(nowhere, {{"a", x}}),
                      Contains("[write_safetensors] cannot create") && Contains(nowhere));
}
