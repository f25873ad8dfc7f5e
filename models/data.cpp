#include "models/data.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "core/idx.h"
#include "crypto/prg.h"

namespace veil::models {

namespace {

// `dir/name.gz` when it exists, else `dir/name` when that exists; IoError naming the .gz path
// otherwise.
std::string find_idx_file(const std::string& dir, const std::string& name) {
  const std::filesystem::path base = std::filesystem::path(dir) / name;
  const std::string gz = base.string() + ".gz";
  std::error_code ec;
  if (std::filesystem::exists(gz, ec)) {
    return gz;
  }
  if (std::filesystem::exists(base, ec)) {
    return base.string();
  }
  throw IoError(fmt::format(
      "[load_fashion_mnist] missing file '{}' (nor '{}' uncompressed); install the dataset with "
      "`apt-get install dataset-fashion-mnist` or point VEIL_FASHION_MNIST_DIR at a directory "
      "holding the IDX files",
      gz, base.string()));
}

}  // namespace

Dataset Dataset::rows(int64_t begin, int64_t end) const {
  VEIL_CHECK(0 <= begin && begin <= end && end <= size(),
             "[Dataset::rows] range [{}, {}) outside [0, {})", begin, end, size());
  return {images.slice(0, begin, end), labels.slice(0, begin, end)};
}

std::string fashion_mnist_dir() {
  const char* env = std::getenv("VEIL_FASHION_MNIST_DIR");
  if (env != nullptr && env[0] != '\0') {
    return env;
  }
  return std::string(kFashionMnistDir);
}

Dataset load_fashion_mnist(const std::string& dir, Split split, int64_t limit) {
  VEIL_CHECK(limit >= -1, "[load_fashion_mnist] expected limit >= -1 (-1 = all rows), got {}",
             limit);
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  const std::string image_path = find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string label_path = find_idx_file(dir, prefix + "-labels-idx1-ubyte");

  const core::Tensor raw_images = core::read_idx(image_path);
  const core::Tensor raw_labels = core::read_idx(label_path);
  VEIL_CHECK(raw_images.dtype() == core::DType::kUInt8 && raw_images.dim() == 3,
             "[load_fashion_mnist] expected uint8 images [N, H, W] in '{}', got {}", image_path,
             raw_images.str());
  VEIL_CHECK(raw_labels.dtype() == core::DType::kUInt8 && raw_labels.dim() == 1,
             "[load_fashion_mnist] expected uint8 labels [N] in '{}', got {}", label_path,
             raw_labels.str());
  const int64_t total = raw_images.size(0);
  VEIL_CHECK(raw_labels.size(0) == total,
             "[load_fashion_mnist] '{}' holds {} images but '{}' holds {} labels", image_path,
             total, label_path, raw_labels.size(0));

  const int64_t n = limit == -1 ? total : std::min(limit, total);
  const int64_t features = raw_images.size(1) * raw_images.size(2);
  Dataset out;
  out.images = core::Tensor::empty({n, features}, core::DType::kFloat64);
  out.labels = core::Tensor::empty({n}, core::DType::kInt64);

  const uint8_t* lp = raw_labels.data<uint8_t>();
  auto* lo = out.labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    VEIL_CHECK(lp[i] <= 9, "[load_fashion_mnist] label {} at row {} of '{}' is outside 0..9", lp[i],
               i, label_path);
    lo[i] = lp[i];
  }
  const uint8_t* ip = raw_images.data<uint8_t>();
  auto* io = out.images.data<double>();
  const int64_t count = n * features;
  for (int64_t i = 0; i < count; ++i) {
    io[i] = static_cast<double>(ip[i]) / 255.0;
  }
  return out;
}

Dataset load_fashion_mnist(Split split, int64_t limit) {
  return load_fashion_mnist(fashion_mnist_dir(), split, limit);
}

RowRange partition_rows(int64_t n, int world_size, int rank) {
  VEIL_CHECK(n >= 0, "[partition_rows] expected n >= 0 rows, got {}", n);
  VEIL_CHECK(world_size >= 1, "[partition_rows] expected world_size >= 1, got {}", world_size);
  VEIL_CHECK(rank >= 0 && rank < world_size, "[partition_rows] rank {} outside [0, {})", rank,
             world_size);
  const int64_t base = n / world_size;
  const int64_t extra = n % world_size;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  const int64_t len = base + (rank < extra ? 1 : 0);
  return {begin, begin + len};
}

BatchOrder::BatchOrder(int64_t n, int64_t batch_size, uint64_t seed, bool shuffle, bool drop_last)
    : n_(n), batch_size_(batch_size), seed_(seed), shuffle_(shuffle), drop_last_(drop_last) {
  VEIL_CHECK(n >= 0, "[BatchOrder] expected n >= 0 rows, got {}", n);
  VEIL_CHECK(batch_size >= 1, "[BatchOrder] expected batch_size >= 1, got {}", batch_size);
}

int64_t BatchOrder::num_batches() const {
  return drop_last_ ? n_ / batch_size_ : (n_ + batch_size_ - 1) / batch_size_;
}

std::vector<int64_t> BatchOrder::permutation(int64_t e) const {
  VEIL_CHECK(e >= 0, "[BatchOrder::epoch] expected epoch >= 0, got {}", e);
  std::vector<int64_t> order(static_cast<std::size_t>(n_));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (shuffle_) {
    crypto::Prg prg(crypto::Prg::public_seed(seed_, static_cast<uint64_t>(e)));
    prg.shuffle(order);
  }
  return order;
}

std::vector<std::vector<int64_t>> BatchOrder::epoch(int64_t e) const {
  const std::vector<int64_t> order = permutation(e);
  const int64_t nb = num_batches();
  std::vector<std::vector<int64_t>> batches;
  batches.reserve(static_cast<std::size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) {
    const auto lo = static_cast<std::ptrdiff_t>(b * batch_size_);
    const auto hi = static_cast<std::ptrdiff_t>(std::min(n_, (b + 1) * batch_size_));
    batches.emplace_back(order.begin() + lo, order.begin() + hi);
  }
  return batches;
}

double batched_accuracy(const Dataset& data,
                        int64_t batch,
                        const std::function<core::Tensor(const core::Tensor&)>& predict,
                        std::string_view op) {
  VEIL_CHECK(batch >= 1, "[{}] expected batch >= 1, got {}", op, batch);
  const int64_t n = data.size();
  VEIL_CHECK(n >= 1, "[{}] got an empty dataset", op);
  int64_t correct = 0;
  for (int64_t lo = 0; lo < n; lo += batch) {
    const int64_t hi = std::min(n, lo + batch);
    const auto pred = predict(data.images.slice(0, lo, hi)).to_vector<int64_t>();
    const auto truth = data.labels.slice(0, lo, hi).to_vector<int64_t>();
    for (std::size_t i = 0; i < pred.size(); ++i) {
      correct += pred[i] == truth[i] ? 1 : 0;
    }
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

}  // namespace veil::models
