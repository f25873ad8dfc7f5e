#pragma once
// Private training of the reference models (the MLP of models/mlp.h or the LeNet of
// models/lenet.h) on horizontally partitioned data: party i owns rows partition_rows(n, N, i) of
// the training set and secret-shares them (zero-sharing: no communication); the model starts
// from public initial weights (init_mlp_weights(seed) resp. init_lenet_parameters(seed)), is
// encrypted from party 0, trained with SGD or Adam on secret data, labels, weights and gradients,
// and evaluated by encrypted inference on the test set, revealing only the predicted labels.
//
// Disclosed to every party: the predicted test labels, (when progress_every > 0) the mean
// training loss of every progress_every-th batch, and (with the guard, see TrainOptions::guard)
// whether each batch loss lies in (-1, 100). Nothing else is revealed.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "comm/communicator.h"
#include "crypto/party.h"
#include "models/data.h"
#include "models/plaintext_lenet.h"
#include "models/plaintext_optim.h"
#include "nn/module.h"

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

/// Which network a training run uses (veil-train --model mlp|lenet).
enum class ModelKind { kMlp, kLeNet };
/// "mlp" or "lenet".
std::string_view model_name(ModelKind kind);
/// Inverse of model_name. Throws ValueError "[model] expected 'mlp' or 'lenet', got ..." for any
/// other name.
ModelKind parse_model(std::string_view name);

struct TrainOptions {
  ModelKind model = ModelKind::kMlp;
  std::vector<int64_t> sizes{784, 128, 10};  ///< the MLP's layer widths
  LeNetConfig lenet;                         ///< the LeNet's widths (inputs must be 28 x 28)
  OptimizerKind optimizer = OptimizerKind::kSgd;
  int64_t epochs = 1;
  int64_t batch_size = 128;
  double lr = 0.1;
  double momentum = 0.0;      ///< SGD only
  double weight_decay = 0.0;  ///< SGD and Adam (L2 penalty added to the gradient)
  double beta1 = 0.9;         ///< Adam only
  double beta2 = 0.999;       ///< Adam only
  double adam_eps = 1e-8;     ///< Adam only
  /// Adam only (private): optim::AdamOptions::grad_scale_bits s. Unset: 7 for the LeNet, 10 (the
  /// optimizer's default) for the MLP. The 2-party truncation of Adam's G^2 (G = g 2^s) fails
  /// with probability about G^2 2^-31 per element and step (optim/adam.h); summed over the
  /// twin's LeNet gradients of one epoch (conv weights reach |g| ~ 0.2) that is 1.03 expected
  /// failures at s = 10 and 2^-6 of it (0.016) at s = 7, while |G| = |g| 2^7 still covers
  /// inv_sqrt's domain for |g| in [8e-5, 0.8].
  std::optional<int> adam_grad_scale_bits;
  /// Loss scaling k in [0, 16] (private training only; a no-op in exact arithmetic, so the twin
  /// ignores it): backward starts from 2^k instead of 1, and every parameter gradient is
  /// multiplied by 2^-k (one truncation per parameter element; for N > 2 parties one round and
  /// 8 bytes per element per parameter tensor) before the optimizer step. Per-element gradients
  /// of a batch mean are about 1/B of the activations' scale: inside the LeNet's convolution
  /// blocks only a few ulps of 2^-frac_bits at B = 128, so without scaling their rounding swamps
  /// the weight gradients of conv1/bn1/conv2 (measured: update errors larger than the updates).
  /// With k = 10 the per-element gradients keep ~10 more bits; the largest backward value,
  /// d loss / d logits <= 2^k / B, stays far from the ring's limits. Unset: 10 for the LeNet, 0
  /// for the MLP (0 is the original MLP training, bit for bit). Source: Micikevicius et al.,
  /// "Mixed Precision Training", ICLR 2018 (arXiv:1710.03740), Sec. 3.2.
  std::optional<int> loss_scale_bits;
  /// The divergence guard (private training only). The 2-party local truncation fails with
  /// probability ~|v| 2^-32 per truncated value v (crypto/protocols/arithmetic.h), and a failure
  /// adds ~2^32 to one value; the LeNet truncates ~3 million values of magnitude ~1 per step at
  /// B = 128, so an epoch expects a few tenths of such failures, and one that survives a ReLU
  /// corrupts the weights for good (seen in a full Adam run). With the guard, every step reveals
  /// whether its batch loss lies in (-1, 100) (one crypto::ltz on 2 elements and a 2-bit
  /// opening: 4 rounds, ~26 bytes per party; plus computing the loss value, which is otherwise
  /// deferred), and keeps private copies of the parameters, buffers and optimizer state from
  /// before the previous and the current step. A loss outside the range restores the state
  /// before the previous step and runs both steps again (fresh randomness); after the last step
  /// one more forward pass on the last batch checks the final parameters. Three failures in a
  /// row throw ValueError (a real divergence). Unset: on for the LeNet, off for the MLP (whose
  /// run stays bit for bit as before).
  std::optional<bool> guard;
  uint64_t seed = 1;            ///< public seed: initial weights and batch order
  bool standardize = true;      ///< (x - kFashionMnistMean) / kFashionMnistStd
  int64_t eval_batch = 1000;    ///< rows per encrypted-inference batch
  int64_t progress_every = 10;  ///< reveal the batch loss every k batches (0: never)
  /// Called on party 0 after each revealed loss and at the end of each epoch.
  std::function<void(const TrainProgress&)> on_progress;
  /// Called on every party after each optimizer step with the step's index (0-based over all
  /// epochs; a step re-run by the guard comes again) and the parameter handles, for monitoring
  /// and tests (e.g. corrupting a value to exercise the guard). Anything it communicates, every
  /// party must do alike.
  std::function<void(int64_t step, const std::vector<MpcTensor>& params)> after_step;

  // ---- fine-tuning (veil-finetune; defaults leave the runs above unchanged)
  // ----------------------
  /// Training rows owned by each party, in rank order: party r owns the block after those of ranks
  /// 0..r-1 (a party may own none). Empty: partition_rows' even blocks. Must sum to the training
  /// set's size (ValueError otherwise).
  std::vector<int64_t> rows_per_party;
  /// Called on every party after the model is built with its public initial parameters and
  /// before it is encrypted from party 0 (tensors the hook made secret stay as they are): e.g.
  /// load a pretrained model shared from its owner (models/weights.h). Whatever it communicates,
  /// every party must do alike.
  std::function<void(nn::Module& model, crypto::Party& party)> prepare_model;
  /// Parameters that are not trained: every parameter whose dotted name starts with one of these
  /// prefixes ("conv1.", "bn1.") has requires_grad false, gets no gradient (backward skips the
  /// weight gradients of those layers) and is left bit for bit unchanged by the optimizer; the
  /// twin keeps the same ones fixed. BatchNorm layers still update their running statistics.
  std::vector<std::string> frozen_prefixes;
  /// Called on every party after training and evaluation, with the trained model (e.g. deliver
  /// it to one party: models/weights.h save_revealed_to). Every party must do alike.
  std::function<void(nn::Module& model, crypto::Party& party)> after_training;
  /// The twin only: initial parameters and buffers (float64, veil layout, names as
  /// init_lenet_parameters) that replace the seed's values for the names they contain (the LeNet
  /// only). Empty: the seed's values.
  NamedTensors twin_initial_state;

  // ---- checkpoints (models/checkpoint.h) -------------------------------------------------------
  /// Where every party writes its checkpoints, checkpoint_path(dir, step, rank) (empty: none).
  std::string checkpoint_dir;
  /// Write a checkpoint after every k-th optimizer step (0: never). With the guard, the state is
  /// saved after a step whose loss check passed; a resumed run cannot roll back past it.
  int64_t checkpoint_every = 0;
  /// Continue from the checkpoints of this step in checkpoint_dir (-1: start afresh). The session
  /// must have been set up with PartyOptions::resume = models::read_checkpoint_session(
  /// checkpoint_path(checkpoint_dir, resume_step, rank)); the run then continues bit for bit like
  /// the run that wrote the checkpoint (same data and options required: the checkpoint refuses
  /// another model or optimizer, and the input shares are re-drawn from the saved positions).
  int64_t resume_step = -1;
  /// Stop after this many optimizer steps in all (-1: run every epoch), skipping the evaluation:
  /// e.g. to end a run at a checkpoint.
  int64_t max_steps = -1;
};

/// "<dir>/step-<step, 8 digits>.rank<rank>.ckpt".
std::string checkpoint_path(const std::string& dir, int64_t step, int rank);
/// The largest step for which `dir` holds a checkpoint of every rank 0..world_size-1 (-1: none, or
/// no such directory).
int64_t latest_checkpoint_step(const std::string& dir, int world_size);

/// Whether `name` starts with one of `prefixes`.
bool matches_prefix(const std::string& name, const std::vector<std::string>& prefixes);

/// What one party measured.
struct PartyReport {
  double train_seconds = 0;  ///< the training loop alone (after input sharing)
  double eval_seconds = 0;
  double share_seconds = 0;     ///< input sharing
  comm::CommStats train_stats;  ///< communication during the training loop
  comm::CommStats eval_stats;
  std::vector<int64_t> predictions;  ///< revealed predicted test labels
  std::vector<double> losses;        ///< revealed batch losses (re-run batches again)
  int64_t guard_retries = 0;         ///< guard checks that failed (each restored the state)
};

/// Applies the options' preprocessing to images [N, 784] in [0, 1] (a copy).
core::Tensor preprocess(const core::Tensor& images, const TrainOptions& options);

/// options.loss_scale_bits, or its default for options.model (LeNet 10, MLP 0).
int effective_loss_scale_bits(const TrainOptions& options);
/// options.adam_grad_scale_bits, or its default for options.model (LeNet 7, MLP 10).
int effective_adam_grad_scale_bits(const TrainOptions& options);
/// options.guard, or its default for options.model (LeNet on, MLP off).
bool effective_guard(const TrainOptions& options);

/// The optimizer hyper-parameters of `options` (for the plaintext twin).
OptimizerConfig optimizer_config(const TrainOptions& options);

/// Runs on every party (e.g. under crypto::launch): trains options.model with options.optimizer.
/// `train` and `test` are the full datasets for convenience; each party reads only its own
/// partition of them. Throws on any failure; ValueError "[train_private] ..." for bad options
/// (batch_size < 1, epochs < 0, eval_batch < 1, an empty training set, images that are not
/// [N, 784] for the LeNet, a batch of one row with the LeNet (BatchNorm needs two), bad
/// optimizer hyper-parameters).
PartyReport train_private(crypto::Party& party,
                          const Dataset& train,
                          const Dataset& test,
                          const TrainOptions& options);
/// train_private with options.model = ModelKind::kMlp (the original entry point).
PartyReport train_private_mlp(crypto::Party& party,
                              const Dataset& train,
                              const Dataset& test,
                              const TrainOptions& options);

/// The plaintext float64 twin of options.model and options.optimizer: same initial weights, same
/// batch order, same preprocessing (PlaintextMlp / PlaintextLeNet, PlaintextOptimizer).
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
