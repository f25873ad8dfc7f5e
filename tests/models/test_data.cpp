#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/idx.h"
#include "models/data.h"

namespace fs = std::filesystem;
using veil::core::Tensor;
using veil::models::BatchOrder;
using veil::models::partition_rows;
using veil::models::RowRange;
using veil::models::Split;

namespace {

bool have_fashion_mnist() {
  const fs::path dir = veil::models::fashion_mnist_dir();
  return fs::exists(dir / "train-images-idx3-ubyte.gz") &&
         fs::exists(dir / "t10k-images-idx3-ubyte.gz");
}

bool is_permutation_of_range(std::vector<int64_t> v, int64_t n) {
  std::sort(v.begin(), v.end());
  std::vector<int64_t> want(static_cast<std::size_t>(n));
  std::iota(want.begin(), want.end(), int64_t{0});
  return v == want;
}

}  // namespace

TEST_CASE("load_fashion_mnist reads the full training and test sets", "[data][fashion]") {
  if (!have_fashion_mnist()) {
    std::cout << "SKIPPED: Fashion-MNIST not found in " << veil::models::fashion_mnist_dir()
              << " (apt-get install dataset-fashion-mnist)\n";
    return;
  }
  // GIVEN the installed dataset  WHEN the training split is loaded
  const auto train = veil::models::load_fashion_mnist(Split::kTrain);
  // THEN it has 60000 rows of 784 pixels in [0, 1] and 6000 labels of each class
  CHECK(train.images.shape() == veil::core::Shape{60000, 784});
  CHECK(train.images.dtype() == veil::core::DType::kFloat64);
  CHECK(train.labels.shape() == veil::core::Shape{60000});
  CHECK(train.labels.dtype() == veil::core::DType::kInt64);
  const double* p = train.images.data<double>();
  const auto [lo, hi] = std::minmax_element(p, p + train.images.numel());
  CHECK(*lo == 0.0);
  CHECK(*hi == 1.0);
  std::array<int64_t, 10> hist{};
  int64_t out_of_range = 0;
  for (const int64_t y : train.labels.to_vector<int64_t>()) {
    if (y < 0 || y > 9) {
      ++out_of_range;
      continue;
    }
    ++hist[static_cast<std::size_t>(y)];
  }
  CHECK(out_of_range == 0);
  for (const int64_t c : hist) {
    CHECK(c == 6000);
  }
  // Pixel values are multiples of 1/255.
  for (int64_t i = 0; i < 784 * 3; ++i) {
    const double v = p[i] * 255.0;
    CHECK(v == Approx(std::round(v)).margin(1e-9));
  }

  // The test split has 10000 rows; limit keeps the first rows.
  const auto test = veil::models::load_fashion_mnist(Split::kTest);
  CHECK(test.images.shape() == veil::core::Shape{10000, 784});
  CHECK(test.labels.shape() == veil::core::Shape{10000});
  const auto head =
      veil::models::load_fashion_mnist(veil::models::fashion_mnist_dir(), Split::kTest, 100);
  CHECK(head.images.shape() == veil::core::Shape{100, 784});
  CHECK(head.labels.to_vector<int64_t>() == test.labels.slice(0, 0, 100).to_vector<int64_t>());
  CHECK(head.images.to_vector<double>() == test.images.slice(0, 0, 100).to_vector<double>());
  CHECK_THROWS_AS(veil::models::load_fashion_mnist(Split::kTest, -2), veil::ValueError);
}

TEST_CASE("load_fashion_mnist: a missing directory is an IoError with the path and a hint",
          "[data]") {
  try {
    veil::models::load_fashion_mnist("/nonexistent-veil-data", Split::kTrain);
    FAIL("expected IoError");
  } catch (const veil::IoError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("/nonexistent-veil-data/train-images-idx3-ubyte.gz") != std::string::npos);
    CHECK(msg.find("apt-get install dataset-fashion-mnist") != std::string::npos);
  }
}

TEST_CASE("load_fashion_mnist validates counts and label range", "[data]") {
  // GIVEN a tiny uncompressed dataset written with write_idx
  const fs::path dir = fs::temp_directory_path() /
                       ("veil_test_data_small_" + std::to_string(std::random_device{}()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<uint8_t> pixels(3 * 2 * 2);
  std::iota(pixels.begin(), pixels.end(), uint8_t{0});
  pixels[5] = 255;
  veil::core::write_idx((dir / "t10k-images-idx3-ubyte").string(),
                        Tensor::from_vector<uint8_t>(pixels, {3, 2, 2}));
  veil::core::write_idx((dir / "t10k-labels-idx1-ubyte").string(),
                        Tensor::from_vector<uint8_t>({9, 0, 4}, {3}));
  // WHEN loaded THEN images are flattened and scaled, labels widened
  const auto ds = veil::models::load_fashion_mnist(dir.string(), Split::kTest);
  CHECK(ds.images.shape() == veil::core::Shape{3, 4});
  CHECK(ds.images.to_vector<double>()[5] == 1.0);
  CHECK(ds.images.to_vector<double>()[3] == Approx(3.0 / 255.0));
  CHECK(ds.labels.to_vector<int64_t>() == std::vector<int64_t>{9, 0, 4});
  CHECK(ds.rows(1, 3).labels.to_vector<int64_t>() == std::vector<int64_t>{0, 4});
  CHECK_THROWS_AS(ds.rows(2, 4), veil::ValueError);
  // A limit above the row count gives every row.
  CHECK(veil::models::load_fashion_mnist(dir.string(), Split::kTest, 10).size() == 3);

  // Count mismatch -> ValueError
  veil::core::write_idx((dir / "t10k-labels-idx1-ubyte").string(),
                        Tensor::from_vector<uint8_t>({1, 2}, {2}));
  CHECK_THROWS_AS(veil::models::load_fashion_mnist(dir.string(), Split::kTest), veil::ValueError);
  // Label out of range -> ValueError
  veil::core::write_idx((dir / "t10k-labels-idx1-ubyte").string(),
                        Tensor::from_vector<uint8_t>({1, 10, 2}, {3}));
  CHECK_THROWS_AS(veil::models::load_fashion_mnist(dir.string(), Split::kTest), veil::ValueError);
  fs::remove_all(dir);
}

TEST_CASE("partition_rows covers every row exactly once in contiguous near-equal blocks",
          "[data][partition]") {
  for (const int64_t n : {0, 1, 2, 7, 10, 999, 60000}) {
    for (const int world : {1, 2, 3, 4, 7}) {
      INFO("n=" << n << " world=" << world);
      std::vector<int> owner(static_cast<std::size_t>(n), 0);
      int64_t expected_begin = 0;
      for (int r = 0; r < world; ++r) {
        const RowRange range = partition_rows(n, world, r);
        CHECK(range.begin == expected_begin);
        CHECK(range.size() >= n / world);
        CHECK(range.size() <= n / world + 1);
        for (int64_t i = range.begin; i < range.end; ++i) {
          ++owner[static_cast<std::size_t>(i)];
        }
        expected_begin = range.end;
      }
      CHECK(expected_begin == n);
      CHECK(std::all_of(owner.begin(), owner.end(), [](int c) { return c == 1; }));
    }
  }
  CHECK(partition_rows(10, 3, 0) == RowRange{0, 4});
  CHECK(partition_rows(10, 3, 1) == RowRange{4, 7});
  CHECK(partition_rows(10, 3, 2) == RowRange{7, 10});
  CHECK_THROWS_AS(partition_rows(-1, 2, 0), veil::ValueError);
  CHECK_THROWS_AS(partition_rows(10, 0, 0), veil::ValueError);
  CHECK_THROWS_AS(partition_rows(10, 2, 2), veil::ValueError);
  CHECK_THROWS_AS(partition_rows(10, 2, -1), veil::ValueError);
}

TEST_CASE("BatchOrder is reproducible, differs per epoch and permutes the rows", "[data][batch]") {
  // GIVEN two orders with the same seed and one with another seed
  const BatchOrder a(1000, 128, 42, true);
  const BatchOrder b(1000, 128, 42, true);
  const BatchOrder c(1000, 128, 43, true);
  CHECK(a.num_batches() == 8);
  // THEN the same seed gives the same batches, epochs and seeds differ
  CHECK(a.epoch(0) == b.epoch(0));
  CHECK(a.epoch(3) == b.epoch(3));
  CHECK(a.permutation(0) != a.permutation(1));
  CHECK(a.permutation(0) != c.permutation(0));
  for (const int64_t e : {0, 1, 2}) {
    const auto batches = a.epoch(e);
    REQUIRE(batches.size() == 8);
    std::vector<int64_t> all;
    for (std::size_t i = 0; i < batches.size(); ++i) {
      CHECK(batches[i].size() == (i + 1 < batches.size() ? 128U : 1000U - 7U * 128U));
      all.insert(all.end(), batches[i].begin(), batches[i].end());
    }
    CHECK(all == a.permutation(e));
    CHECK(is_permutation_of_range(all, 1000));
  }
  // Without shuffling every epoch is the identity; drop_last drops the short batch.
  const BatchOrder plain(10, 4, 7, false);
  CHECK(plain.epoch(5) == std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}});
  const BatchOrder dropped(10, 4, 7, false, true);
  CHECK(dropped.num_batches() == 2);
  CHECK(dropped.epoch(0) == std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}});
  CHECK(BatchOrder(0, 4, 1, true).epoch(0).empty());
  CHECK_THROWS_AS(BatchOrder(10, 0, 1, true), veil::ValueError);
  CHECK_THROWS_AS(BatchOrder(-1, 4, 1, true), veil::ValueError);
  CHECK_THROWS_AS(a.epoch(-1), veil::ValueError);
}
