// Tensor views and copies (core/tensor): every result is compared with values computed by hand or
// by an independent index loop over the source vector.

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/cuda_dispatch.h"
#include "core/tensor.h"

namespace {

using veil::core::DType;
using veil::core::Shape;
using veil::core::Tensor;

// 0, 1, 2, ... as float64 in a contiguous tensor of `shape`.
Tensor iota(const Shape& shape) {
  const int64_t n = veil::core::shape_numel(shape);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    v[static_cast<std::size_t>(i)] = static_cast<double>(i);
  }
  return Tensor::from_vector(v, shape);
}

}  // namespace

TEST_CASE("shape helpers", "[tensor]") {
  CHECK(veil::core::shape_str({2, 3}) == "[2, 3]");
  CHECK(veil::core::shape_str({}) == "[]");
  CHECK(veil::core::shape_numel({2, 3, 4}) == 24);
  CHECK(veil::core::shape_numel({}) == 1);
  CHECK(veil::core::shape_numel({3, 0}) == 0);
  CHECK_THROWS_AS(veil::core::shape_numel({2, -1}), veil::ValueError);
  CHECK(veil::core::contiguous_strides({2, 3, 4}) == Shape{12, 4, 1});
}

TEST_CASE("construction, item, size and dtype checks", "[tensor]") {
  const Tensor t = Tensor::from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.dim() == 2);
  CHECK(t.size(0) == 2);
  CHECK(t.size(-1) == 3);
  CHECK(t.numel() == 6);
  CHECK(t.dtype() == DType::kInt64);
  CHECK(t.is_contiguous());
  CHECK(t.nbytes() == 48);
  CHECK_THROWS_AS(t.size(2), veil::ValueError);
  CHECK_THROWS_AS(t.size(-3), veil::ValueError);
  CHECK_THROWS_AS(t.data<double>(), veil::ValueError);
  CHECK_THROWS_AS(Tensor::from_vector<double>({1.0, 2.0}, {3}), veil::ValueError);
  CHECK(Tensor::scalar<double>(2.5).item<double>() == 2.5);
  CHECK(Tensor::scalar<double>(2.5).dim() == 0);
  CHECK_THROWS_AS(t.item<int64_t>(), veil::ValueError);
  CHECK(Tensor::full<uint64_t>({2, 2}, 7).to_vector<uint64_t>() == std::vector<uint64_t>(4, 7));
  CHECK(Tensor::zeros({3}, DType::kRing64).to_vector<uint64_t>() == std::vector<uint64_t>(3, 0));
  // str() names dtype and shape, never values
  CHECK(t.str() == "Tensor(int64, [2, 3])");
  CHECK(Tensor().str() == "Tensor(undefined)");
  CHECK_FALSE(Tensor().defined());
  CHECK_THROWS_AS(Tensor().contiguous(), veil::ValueError);
}

TEST_CASE("reshape keeps row-major order and infers -1", "[tensor]") {
  const Tensor t = iota({2, 3, 4});
  const Tensor r = t.reshape({4, -1});
  CHECK(r.shape() == Shape{4, 6});
  CHECK(r.shares_storage_with(t));  // contiguous source: a view
  CHECK(r.to_vector<double>() == t.to_vector<double>());
  CHECK_THROWS_AS(t.reshape({5, -1}), veil::ValueError);
  CHECK_THROWS_AS(t.reshape({-1, -1}), veil::ValueError);
  CHECK_THROWS_AS(t.reshape({7, 3}), veil::ValueError);
  // non-contiguous source: reshaped through a copy, in the transposed element order
  const Tensor tt = iota({2, 3}).t();  // [[0, 3], [1, 4], [2, 5]]
  const Tensor flat = tt.reshape({6});
  CHECK(flat.to_vector<double>() == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK_FALSE(flat.shares_storage_with(tt));
  // empty tensors reshape too
  CHECK(Tensor::zeros({0, 4}, DType::kFloat64).reshape({4, 0}).shape() == Shape{4, 0});
}

TEST_CASE("transpose is a strided view", "[tensor]") {
  const Tensor t = iota({2, 3, 4});
  const Tensor tr = t.transpose(0, 2);  // [4, 3, 2]
  CHECK(tr.shape() == Shape{4, 3, 2});
  CHECK(tr.strides() == Shape{1, 4, 12});
  CHECK_FALSE(tr.is_contiguous());
  CHECK(tr.shares_storage_with(t));
  const std::vector<double> v = tr.to_vector<double>();
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      for (int64_t k = 0; k < 2; ++k) {
        CHECK(v[static_cast<std::size_t>(i * 6 + j * 2 + k)] ==
              static_cast<double>(k * 12 + j * 4 + i));
      }
    }
  }
  CHECK(t.transpose(-1, 0).shape() == Shape{4, 3, 2});
  CHECK_THROWS_AS(t.transpose(0, 3), veil::ValueError);
  CHECK_THROWS_AS(t.t(), veil::ValueError);
}

TEST_CASE("devices parse from and print to cpu, cuda and cuda:N", "[tensor]") {
  using veil::core::Device;
  CHECK(veil::core::parse_device("cpu") == Device::cpu());
  CHECK(veil::core::parse_device("cuda") == Device::cuda(0));
  CHECK(veil::core::parse_device("cuda:3") == Device::cuda(3));
  CHECK(veil::core::parse_device(veil::core::device_str(Device::cuda(12))) == Device::cuda(12));
  for (const char* bad : {"", "gpu", "cuda:", "cuda:-1", "cuda:1x", "CPU", "cuda:123456"}) {
    INFO(bad);
    CHECK_THROWS_WITH(veil::core::parse_device(bad),
                      Catch::Contains("[device] expected 'cpu', 'cuda' or 'cuda:N'"));
  }
}

TEST_CASE("as_strided views overlapping windows and checks the storage bound", "[tensor]") {
  // GIVEN a 4x5 grid 0..19 viewed as its 2x2 windows at stride (1, 2): [3, 2, 2, 2]
  std::vector<int64_t> v(20);
  for (int64_t i = 0; i < 20; ++i) {
    v[static_cast<std::size_t>(i)] = i;
  }
  const Tensor g = Tensor::from_vector(v, {4, 5});
  const Tensor win = g.as_strided({3, 2, 2, 2}, {5, 2, 5, 1});
  // THEN element (i, j, u, t) is grid[i + u][2 j + t], and contiguous() gathers it
  const std::vector<int64_t> got = win.contiguous().to_vector<int64_t>();
  std::size_t at = 0;
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 2; ++j) {
      for (int64_t u = 0; u < 2; ++u) {
        for (int64_t t = 0; t < 2; ++t) {
          CHECK(got[at++] == (i + u) * 5 + 2 * j + t);
        }
      }
    }
  }
  // AND an offset is relative to the tensor's first element (here a slice starting at 5)
  CHECK(g.slice(0, 1, 4).as_strided({2}, {1}, 2).to_vector<int64_t>() ==
        std::vector<int64_t>{7, 8});
  // AND views past the storage, negative strides and rank mismatches are refused
  CHECK_THROWS_WITH(g.as_strided({2, 2}, {1, 19}), Catch::Contains("[as_strided] the view"));
  CHECK_THROWS_WITH(g.as_strided({2}, {-1}), Catch::Contains("non-negative"));
  CHECK_THROWS_WITH(g.as_strided({2, 2}, {1}), Catch::Contains("one stride per dimension"));
  CHECK(g.as_strided({0, 7}, {100, 100}).numel() == 0);
}

TEST_CASE("slice views a range and checks bounds", "[tensor]") {
  const Tensor t = iota({4, 5});
  const Tensor rows = t.slice(0, 1, 3);
  CHECK(rows.shape() == Shape{2, 5});
  CHECK(rows.is_contiguous());
  CHECK(rows.to_vector<double>() == std::vector<double>{5, 6, 7, 8, 9, 10, 11, 12, 13, 14});
  const Tensor cols = t.slice(1, 2, 4);
  CHECK(cols.shape() == Shape{4, 2});
  CHECK(cols.numel() == 8);
  CHECK_FALSE(cols.is_contiguous());
  CHECK(cols.shares_storage_with(t));
  CHECK(cols.to_vector<double>() == std::vector<double>{2, 3, 7, 8, 12, 13, 17, 18});
  // slice of a slice keeps the offset
  CHECK(cols.slice(0, 2, 4).slice(1, 1, 2).to_vector<double>() == std::vector<double>{13, 18});
  CHECK(t.slice(-1, 0, 0).numel() == 0);
  CHECK_THROWS_AS(t.slice(0, 2, 5), veil::ValueError);
  CHECK_THROWS_AS(t.slice(0, 3, 2), veil::ValueError);
  CHECK_THROWS_AS(t.slice(2, 0, 1), veil::ValueError);
}

TEST_CASE("index_select0 gathers rows, repeats allowed", "[tensor]") {
  const Tensor t = iota({4, 2});
  const Tensor s = t.index_select0({3, 0, 3});
  CHECK(s.shape() == Shape{3, 2});
  CHECK(s.to_vector<double>() == std::vector<double>{6, 7, 0, 1, 6, 7});
  CHECK(t.index_select0({}).shape() == Shape{0, 2});
  // from a non-contiguous source
  CHECK(t.t().index_select0({1}).to_vector<double>() == std::vector<double>{1, 3, 5, 7});
  CHECK_THROWS_AS(t.index_select0({4}), veil::ValueError);
  CHECK_THROWS_AS(t.index_select0({-1}), veil::ValueError);
}

TEST_CASE("expand repeats size-1 dimensions with stride 0", "[tensor]") {
  const Tensor col = Tensor::from_vector<double>({1, 2, 3}, {3, 1});
  const Tensor e = col.expand({2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.strides()[0] == 0);
  CHECK(e.strides()[2] == 0);
  CHECK(e.numel() == 24);
  const std::vector<double> v = e.to_vector<double>();
  for (std::size_t i = 0; i < v.size(); ++i) {
    CHECK(v[i] == static_cast<double>((i / 4) % 3 + 1));
  }
  CHECK_THROWS_AS(col.expand({2, 2}), veil::ValueError);
  CHECK_THROWS_AS(col.expand({3}), veil::ValueError);
}

TEST_CASE("contiguous and clone copy, copy_ checks shapes", "[tensor]") {
  const Tensor t = iota({3, 4});
  CHECK(t.contiguous().shares_storage_with(t));
  const Tensor c = t.t().contiguous();
  CHECK(c.is_contiguous());
  CHECK_FALSE(c.shares_storage_with(t));
  CHECK(c.to_vector<double>() == std::vector<double>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  Tensor cl = t.clone();
  cl.data<double>()[0] = 42;
  CHECK(t.to_vector<double>()[0] == 0);  // clone does not alias
  Tensor dst = Tensor::zeros({4, 3}, DType::kFloat64);
  dst.copy_(t.t());
  CHECK(dst.to_vector<double>() == c.to_vector<double>());
  CHECK_THROWS_AS(dst.copy_(t), veil::ValueError);
  CHECK_THROWS_AS(dst.copy_(t.t().to(DType::kFloat32)), veil::ValueError);
  Tensor view = t.t();
  CHECK_THROWS_AS(view.copy_(c), veil::ValueError);  // destination not contiguous
  CHECK(t.bytes().size() == 96);
  CHECK_THROWS_AS(t.t().bytes(), veil::ValueError);
}

TEST_CASE("to() converts dtypes, ring <-> signed values via two's complement", "[tensor]") {
  const Tensor f = Tensor::from_vector<double>({-3.0, 2.7, -2.7, 0.0}, {4});
  const std::vector<uint64_t> ring = f.to(DType::kRing64).to_vector<uint64_t>();
  CHECK(ring == std::vector<uint64_t>{std::numeric_limits<uint64_t>::max() - 2, 2,
                                      std::numeric_limits<uint64_t>::max() - 1, 0});
  // back to float: read as int64
  CHECK(f.to(DType::kRing64).to(DType::kFloat64).to_vector<double>() ==
        std::vector<double>{-3.0, 2.0, -2.0, 0.0});
  // ring <-> int64 reinterprets bits
  const Tensor r = Tensor::from_vector<uint64_t>({std::numeric_limits<uint64_t>::max(), 5}, {2});
  CHECK(r.to(DType::kInt64).to_vector<int64_t>() == std::vector<int64_t>{-1, 5});
  CHECK(r.to(DType::kInt64).to(DType::kRing64).to_vector<uint64_t>() == r.to_vector<uint64_t>());
  CHECK(Tensor::from_vector<int64_t>({-2, 7}, {2}).to(DType::kFloat32).to_vector<float>() ==
        std::vector<float>{-2.0f, 7.0f});
  CHECK(Tensor::from_vector<double>({1.5, 0.0}, {2}).to(DType::kUInt8).to_vector<uint8_t>() ==
        std::vector<uint8_t>{1, 0});
  // same dtype: no copy
  CHECK(f.to(DType::kFloat64).shares_storage_with(f));
  // non-contiguous source
  CHECK(iota({2, 2}).t().to(DType::kInt64).to_vector<int64_t>() ==
        std::vector<int64_t>{0, 2, 1, 3});
}
