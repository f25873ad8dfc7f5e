#pragma once
// Datasets, horizontal partitioning of rows across parties, and the public batch order.
//
// Everything here is public (plaintext) bookkeeping: which rows a party owns and the order in
// which batches are visited. The batch order is derived from a public seed, so every party and
// the plaintext twin (models/plaintext_mlp.h) visit the same rows in the same order without
// communicating.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace veil::models {

/// A labelled image dataset in memory.
struct Dataset {
  /// float64 [N, H*W], pixel / 255 (so every value lies in [0, 1]).
  core::Tensor images;
  /// int64 [N], class indices.
  core::Tensor labels;

  /// Number of rows N.
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  /// Rows [begin, end) as a new dataset (views, no copy). Throws ValueError when out of range.
  Dataset rows(int64_t begin, int64_t end) const;
};

/// Which half of a dataset to load.
enum class Split { kTrain, kTest };

/// Where the Debian package dataset-fashion-mnist installs the four gzip IDX files.
inline constexpr std::string_view kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// The Fashion-MNIST directory to use: the environment variable VEIL_FASHION_MNIST_DIR when it is
/// set and non-empty, else kFashionMnistDir.
std::string fashion_mnist_dir();

/// Loads Fashion-MNIST (or MNIST: same file names and format) from `dir`:
/// {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (the uncompressed names without .gz are used
/// when the .gz file is absent).
/// Returns the first `limit` rows (all rows when limit is -1; a limit above the row count gives
/// all rows): images float64 [N, 784] in [0, 1], labels int64 [N] in 0..9.
/// Errors: IoError naming the missing path (and suggesting `apt-get install
/// dataset-fashion-mnist`) when a file is absent, and read_idx's IoErrors for a corrupt file;
/// ValueError when limit < -1, the images are not uint8 [N, H, W], the labels are not uint8 [N],
/// images and labels disagree in N, or a label lies outside 0..9.
Dataset load_fashion_mnist(const std::string& dir, Split split, int64_t limit = -1);
/// load_fashion_mnist(fashion_mnist_dir(), split, limit).
Dataset load_fashion_mnist(Split split, int64_t limit = -1);

/// A half-open range [begin, end) of row indices.
struct RowRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const RowRange&) const = default;
};

/// Horizontal partition of n rows among world_size parties: contiguous blocks in rank order that
/// cover [0, n) exactly once; the first n % world_size parties own one row more than the others.
/// Party `rank` owns the returned block.
/// Errors: ValueError when n < 0, world_size < 1 or rank is outside [0, world_size).
RowRange partition_rows(int64_t n, int world_size, int rank);

/// The order in which an epoch visits rows [0, n) in batches. With shuffling, epoch e is the
/// Fisher–Yates permutation drawn by crypto::Prg(Prg::public_seed(seed, e)): a public, reproducible
/// order that every party and the plaintext twin compute identically from the same seed.
/// Without shuffling every epoch is 0, 1, ..., n-1. Batches are consecutive slices of that order
/// of batch_size rows; the last one is shorter when batch_size does not divide n, unless
/// drop_last is set (then it is dropped).
class BatchOrder {
 public:
  /// Errors: ValueError when n < 0 or batch_size < 1.
  BatchOrder(int64_t n, int64_t batch_size, uint64_t seed, bool shuffle, bool drop_last = false);

  /// The row indices of each batch of epoch e (e >= 0; ValueError otherwise).
  std::vector<std::vector<int64_t>> epoch(int64_t e) const;
  /// The visiting order of epoch e: a permutation of [0, n).
  std::vector<int64_t> permutation(int64_t e) const;
  /// Batches per epoch.
  int64_t num_batches() const;

  int64_t rows() const { return n_; }
  int64_t batch_size() const { return batch_size_; }

 private:
  int64_t n_;
  int64_t batch_size_;
  uint64_t seed_;
  bool shuffle_;
  bool drop_last_;
};

/// Fraction of rows of `data` whose label equals predict(images of the rows), evaluated in
/// batches of `batch` rows (predict maps float64 [B, H*W] to int64 [B] class indices). Used by the
/// plaintext twins. Throws ValueError "[op] ..." for batch < 1 or an empty dataset.
double batched_accuracy(const Dataset& data,
                        int64_t batch,
                        const std::function<core::Tensor(const core::Tensor&)>& predict,
                        std::string_view op);

}  // namespace veil::models
