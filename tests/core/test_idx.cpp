#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/idx.h"
#include "core/tensor.h"

#include <zlib.h>

namespace fs = std::filesystem;
using veil::core::DType;
using veil::core::Tensor;

namespace {

// A fresh empty directory under the system temp dir, removed when the object dies.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() /
           ("veil_test_idx_" + name + "_" + std::to_string(std::random_device{}()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// The IDX bytes of a uint8 tensor, built independently of write_idx.
std::vector<unsigned char> idx_bytes_u8(const std::vector<uint32_t>& dims,
                                        const std::vector<unsigned char>& data) {
  std::vector<unsigned char> out{0, 0, 0x08, static_cast<unsigned char>(dims.size())};
  for (const uint32_t d : dims) {
    out.push_back(static_cast<unsigned char>(d >> 24));
    out.push_back(static_cast<unsigned char>(d >> 16));
    out.push_back(static_cast<unsigned char>(d >> 8));
    out.push_back(static_cast<unsigned char>(d));
  }
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void write_raw(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream os(path, std::ios::binary);
  os.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(os.good());
}

void write_gzip(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile g = gzopen(path.c_str(), "wb");
  REQUIRE(g != nullptr);
  const int n = gzwrite(g, bytes.data(), static_cast<unsigned>(bytes.size()));
  REQUIRE(n == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(g) == Z_OK);
}

std::vector<unsigned char> read_raw(const std::string& path) {
  std::ifstream is(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(is), std::istreambuf_iterator<char>()};
}

std::vector<unsigned char> pattern(std::size_t n) {
  std::vector<unsigned char> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = static_cast<unsigned char>((i * 37 + 11) % 256);
  }
  return v;
}

}  // namespace

TEST_CASE("write_idx produces the IDX bytes and read_idx reads them back", "[idx]") {
  // GIVEN a uint8 tensor [3, 4, 5]
  TempDir dir("roundtrip");
  const auto data = pattern(60);
  const Tensor t =
      Tensor::from_vector<uint8_t>(std::vector<uint8_t>(data.begin(), data.end()), {3, 4, 5});
  // WHEN it is written and read back
  const std::string path = dir.file("a-idx3-ubyte");
  veil::core::write_idx(path, t);
  // THEN the file holds exactly the reference IDX bytes, no temp file is left, and it reads back
  CHECK(read_raw(path) == idx_bytes_u8({3, 4, 5}, data));
  CHECK_FALSE(fs::exists(path + ".tmp"));
  const Tensor r = veil::core::read_idx(path);
  CHECK(r.dtype() == DType::kUInt8);
  CHECK(r.shape() == veil::core::Shape{3, 4, 5});
  CHECK(r.to_vector<uint8_t>() == t.to_vector<uint8_t>());
}

TEST_CASE("read_idx reads gzip-compressed IDX detected by magic bytes", "[idx]") {
  // GIVEN the same IDX bytes gzip-compressed, once with a .gz name and once without
  TempDir dir("gzip");
  const auto data = pattern(7 * 9);
  const auto bytes = idx_bytes_u8({7, 9}, data);
  for (const std::string name : {"b-idx2-ubyte.gz", "b-idx2-ubyte-no-suffix"}) {
    const std::string path = dir.file(name);
    write_gzip(path, bytes);
    // WHEN read  THEN the contents match
    const Tensor r = veil::core::read_idx(path);
    CHECK(r.shape() == veil::core::Shape{7, 9});
    CHECK(r.to_vector<uint8_t>() == std::vector<uint8_t>(data.begin(), data.end()));
  }
}

TEST_CASE("IDX round trip of int64, float32 and float64 tensors", "[idx]") {
  TempDir dir("types");
  // int64 -> int32 on disk
  const Tensor i = Tensor::from_vector<int64_t>({-5, 0, 7, 2147483647, -2147483648LL, 42}, {2, 3});
  veil::core::write_idx(dir.file("i"), i);
  const Tensor ri = veil::core::read_idx(dir.file("i"));
  CHECK(ri.dtype() == DType::kInt64);
  CHECK(ri.shape() == i.shape());
  CHECK(ri.to_vector<int64_t>() == i.to_vector<int64_t>());
  // float32 / float64 bit-exact, including a non-contiguous (transposed) input
  const Tensor f = Tensor::from_vector<float>({1.5f, -0.25f, 3e7f, 1e-30f}, {4});
  veil::core::write_idx(dir.file("f"), f);
  CHECK(veil::core::read_idx(dir.file("f")).to_vector<float>() == f.to_vector<float>());
  const Tensor d = Tensor::from_vector<double>({0.1, -2.0, 1e300, 3.0, 4.0, 5.0}, {2, 3}).t();
  veil::core::write_idx(dir.file("d"), d);
  const Tensor rd = veil::core::read_idx(dir.file("d"));
  CHECK(rd.shape() == veil::core::Shape{3, 2});
  CHECK(rd.to_vector<double>() == d.to_vector<double>());
  // int64 outside int32 and ring64 are rejected
  CHECK_THROWS_AS(
      veil::core::write_idx(dir.file("x"), Tensor::from_vector<int64_t>({1LL << 40}, {1})),
      veil::ValueError);
  CHECK_THROWS_AS(veil::core::write_idx(dir.file("x"), Tensor::from_vector<uint64_t>({1}, {1})),
                  veil::ValueError);
}

TEST_CASE("read_idx: a missing file is an IoError naming the path", "[idx]") {
  const std::string path = "/nonexistent-veil-dir/y.gz";
  try {
    veil::core::read_idx(path);
    FAIL("expected IoError");
  } catch (const veil::IoError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("[read_idx] cannot open '/nonexistent-veil-dir/y.gz'") != std::string::npos);
    CHECK(msg.find("No such file or directory") != std::string::npos);
  }
}

TEST_CASE("read_idx: truncated data is an IoError with expected and got sizes", "[idx]") {
  // GIVEN a header for [10, 10] ubyte but only 60 data bytes, raw and gzip
  TempDir dir("trunc");
  const auto full = idx_bytes_u8({10, 10}, pattern(100));
  const std::vector<unsigned char> cut(full.begin(), full.end() - 40);
  write_raw(dir.file("raw"), cut);
  write_gzip(dir.file("z.gz"), cut);
  for (const std::string name : {"raw", "z.gz"}) {
    const std::string path = dir.file(name);
    try {
      veil::core::read_idx(path);
      FAIL("expected IoError");
    } catch (const veil::IoError& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find(path) != std::string::npos);
      CHECK(msg.find("expected 100 data bytes") != std::string::npos);
      CHECK(msg.find("got 60") != std::string::npos);
    }
  }
  // A gzip stream cut in the middle of the compressed bytes is an IoError too.
  auto gz = read_raw(dir.file("z.gz"));
  gz.resize(gz.size() / 2);
  write_raw(dir.file("half.gz"), gz);
  CHECK_THROWS_AS(veil::core::read_idx(dir.file("half.gz")), veil::IoError);
  // Trailing bytes after the data are rejected.
  auto longer = full;
  longer.push_back(0);
  write_raw(dir.file("long"), longer);
  CHECK_THROWS_AS(veil::core::read_idx(dir.file("long")), veil::IoError);
}

TEST_CASE("read_idx: bad magic and implausible dimensions are IoErrors", "[idx]") {
  TempDir dir("magic");
  // GIVEN a PNG-like header
  write_raw(dir.file("bad"), {0x89, 'P', 'N', 'G', 0, 0, 0, 0});
  try {
    veil::core::read_idx(dir.file("bad"));
    FAIL("expected IoError");
  } catch (const veil::IoError& e) {
    const std::string msg = e.what();
    CHECK(msg.find(dir.file("bad")) != std::string::npos);
    CHECK(msg.find("not an IDX file") != std::string::npos);
  }
  // unknown type code
  write_raw(dir.file("type"), {0, 0, 0x42, 1, 0, 0, 0, 1, 7});
  CHECK_THROWS_AS(veil::core::read_idx(dir.file("type")), veil::IoError);
  // a file shorter than the magic number
  write_raw(dir.file("tiny"), {0, 0});
  CHECK_THROWS_AS(veil::core::read_idx(dir.file("tiny")), veil::IoError);
  // zero dimensions, too many dimensions, an extent >= 2^31, and a huge product of extents
  write_raw(dir.file("d0"), {0, 0, 0x08, 0});
  CHECK_THROWS_AS(veil::core::read_idx(dir.file("d0")), veil::IoError);
  write_raw(dir.file("d9"), {0, 0, 0x08, 9});
  CHECK_THROWS_AS(veil::core::read_idx(dir.file("d9")), veil::IoError);
  write_raw(dir.file("big"), {0, 0, 0x08, 1, 0x80, 0, 0, 0});
  CHECK_THROWS_AS(veil::core::read_idx(dir.file("big")), veil::IoError);
  write_raw(dir.file("prod"), {0, 0, 0x08, 3, 0x7f, 0, 0, 0, 0x7f, 0, 0, 0, 0x7f, 0, 0, 0});
  try {
    veil::core::read_idx(dir.file("prod"));
    FAIL("expected IoError");
  } catch (const veil::IoError& e) {
    CHECK(std::string(e.what()).find("implausible") != std::string::npos);
  }
  // a header cut inside the extents
  write_raw(dir.file("hdr"), {0, 0, 0x08, 3, 0, 0, 0, 1});
  CHECK_THROWS_AS(veil::core::read_idx(dir.file("hdr")), veil::IoError);
}
