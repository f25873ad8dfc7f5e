#pragma once
// Private training of the reference MLP on horizontally partitioned data: party i owns rows
// partition_rows(n, N, i) of the training set and secret-shares them (zero-sharing: no
// communication); the model starts from public initial weights (init_mlp_weights(seed)),
// is encrypted from party 0, trained with SGD on secret data, labels, weights and gradients, and
// evaluated by encrypted inference on the test set, revealing only the predicted labels.
//
// Disclosed to every party: the predicted test labels, and (when progress_every > 0) the mean
// training loss of every progress_every-th batch. Nothing else is revealed.

#include <functional>
#include <vector>

#include "comm/communicator.h"
#include "crypto/party.h"
#include "models/data.h"

namespace veil::models {

/// Public statistics of Fashion-MNIST's training images (pixels scaled to [0, 1]), used to
/// standardise inputs: (x - mean) / std.
inline constexpr double kFashionMnistMean = 0.2860;
inline constexpr double kFashionMnistStd = 0.3530;

struct TrainProgress {
  int64_t epoch = 0;  ///< 0-based
  int64_t epochs = 0;
  int64_t batch = 0;    ///< batches done in this epoch
  int64_t batches = 0;  ///< batches per epoch
  double loss = 0;  ///< running mean of the revealed batch losses this epoch (NaN: none revealed)
  double samples_per_second = 0;
  double eta_seconds = 0;
};

struct TrainOptions {
  std::vector<int64_t> sizes{784, 128, 10};
  int64_t epochs = 1;
  int64_t batch_size = 128;
  double lr = 0.1;
  double momentum = 0.0;
  double weight_decay = 0.0;
  uint64_t seed = 1;            ///< public seed: initial weights and batch order
  bool standardize = true;      ///< (x - kFashionMnistMean) / kFashionMnistStd
  int64_t eval_batch = 1000;    ///< rows per encrypted-inference batch
  int64_t progress_every = 10;  ///< reveal the batch loss every k batches (0: never)
  /// Called on party 0 after each revealed loss and at the end of each epoch.
  std::function<void(const TrainProgress&)> on_progress;
};

/// What one party measured.
struct PartyReport {
  double train_seconds = 0;  ///< the training loop alone (after input sharing)
  double eval_seconds = 0;
  double share_seconds = 0;     ///< input sharing
  comm::CommStats train_stats;  ///< communication during the training loop
  comm::CommStats eval_stats;
  std::vector<int64_t> predictions;  ///< revealed predicted test labels
  std::vector<double> losses;        ///< revealed batch losses
};

/// Applies the options' preprocessing to images [N, 784] in [0, 1] (a copy).
core::Tensor preprocess(const core::Tensor& images, const TrainOptions& options);

/// Runs on every party (e.g. under crypto::launch). `train` and `test` are the full datasets for
/// convenience; each party reads only its own partition of them. Throws on any failure.
PartyReport train_private_mlp(crypto::Party& party,
                              const Dataset& train,
                              const Dataset& test,
                              const TrainOptions& options);

/// The plaintext float64 twin: same initial weights, same batch order, same preprocessing.
struct PlaintextReport {
  double train_seconds = 0;
  double test_accuracy = 0;
  std::vector<double> losses;
};
PlaintextReport train_plaintext_twin(const Dataset& train,
                                     const Dataset& test,
                                     const TrainOptions& options);

/// Fraction of predictions equal to the labels (int64 [N]).
double accuracy(const std::vector<int64_t>& predictions, const core::Tensor& labels);

}  // namespace veil::models
