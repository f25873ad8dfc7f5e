#include "models/private_training.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include "autograd/autograd.h"
#include "core/ops.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/binary.h"
#include "crypto/protocols/nonlinear.h"
#include "models/checkpoint.h"
#include "models/lenet.h"
#include "models/mlp.h"
#include "models/plaintext_mlp.h"
#include "optim/adam.h"
#include "optim/sgd.h"

namespace veil::models {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Secret-shares a [n, ...] table whose row blocks are owned by the parties (party i owns
// partition_rows(n, N, i)): one pseudo-random zero-sharing of the whole table, and each owner adds
// the encoding of its own rows, read through `rows_of(begin, end)`. Equivalent to every owner
// sharing its block, with no communication and one pass over the table.
MpcTensor share_partitioned(crypto::Party& party,
                            int64_t n,
                            const core::Shape& row_shape,
                            const std::function<core::Tensor(int64_t, int64_t)>& rows_of,
                            const std::vector<int64_t>& rows_per_party = {}) {
  core::Shape shape = row_shape;
  shape.insert(shape.begin(), n);
  core::Tensor table = crypto::zero_share(party, shape);
  RowRange mine = partition_rows(n, party.world_size(), party.rank());
  if (!rows_per_party.empty()) {
    mine.begin = 0;
    for (int r = 0; r < party.rank(); ++r) {
      mine.begin += rows_per_party[static_cast<std::size_t>(r)];
    }
    mine.end = mine.begin + rows_per_party[static_cast<std::size_t>(party.rank())];
  }
  if (mine.size() > 0) {
    core::Tensor block = table.slice(0, mine.begin, mine.end);
    const core::Tensor enc = party.encoder().encode(rows_of(mine.begin, mine.end), "share");
    VEIL_CHECK(enc.shape() == block.shape(), "[share] expected owner rows of shape {}, got {}",
               core::shape_str(block.shape()), core::shape_str(enc.shape()));
    core::add_(block, enc.to(block.device()));  // the owner's rows join its share where it lives
  }
  return MpcTensor::from_secret({table, party.frac_bits()}, party);
}

MpcTensor select_rows(const MpcTensor& x, const std::vector<int64_t>& rows) {
  const crypto::AShare s = x.ashare();
  return MpcTensor::from_secret({s.data.index_select0(rows), s.frac_bits}, x.party());
}

// The private network of the options, from the public initial weights of `seed`, as a module and
// its forward function.
struct PrivateModel {
  std::shared_ptr<nn::Module> module;
  std::function<MpcTensor(const MpcTensor&)> forward;
};

PrivateModel build_model(const TrainOptions& options, crypto::Party& party) {
  if (options.model == ModelKind::kLeNet) {
    LeNet net(options.lenet, party);
    net->load_parameters(init_lenet_parameters(options.lenet, options.seed));
    return {net.ptr(), [net](const MpcTensor& x) {
              return net(x);
            }};
  }
  Mlp mlp(options.sizes);
  const auto [w0, b0] = init_mlp_weights(options.sizes, options.seed);
  mlp->load_weights(w0, b0);
  return {mlp.ptr(), [mlp](const MpcTensor& x) {
            return mlp(x);
          }};
}

std::unique_ptr<optim::Optimizer> build_optimizer(const TrainOptions& options,
                                                  std::vector<MpcTensor> params) {
  if (options.optimizer == OptimizerKind::kAdam) {
    return std::make_unique<optim::Adam>(
        std::move(params), optim::AdamOptions(options.lr)
                               .betas({options.beta1, options.beta2})
                               .eps(options.adam_eps)
                               .weight_decay(options.weight_decay)
                               .grad_scale_bits(effective_adam_grad_scale_bits(options)));
  }
  return std::make_unique<optim::SGD>(
      std::move(params),
      optim::SGDOptions(options.lr).momentum(options.momentum).weight_decay(options.weight_decay));
}

// Above this (or at or below -1) a batch loss means a corrupted computation (guard).
constexpr double kGuardLossLimit = 100.0;
// Failed guard checks in a row before train_private gives up.
constexpr int kGuardMaxRetries = 3;

// A private copy of a value (clones the share or the public encoding); undefined stays undefined.
MpcTensor copy_value(const MpcTensor& t) {
  if (!t.defined()) {
    return {};
  }
  if (t.is_secret()) {
    const crypto::AShare s = t.ashare();
    return MpcTensor::from_secret({s.data.clone(), s.frac_bits}, t.party());
  }
  return MpcTensor::from_public_ring(t.public_ring().clone(), t.frac_bits(), t.party());
}

std::vector<MpcTensor> copy_values(const std::vector<MpcTensor>& ts) {
  std::vector<MpcTensor> out;
  out.reserve(ts.size());
  for (const MpcTensor& t : ts) {
    out.push_back(copy_value(t));
  }
  return out;
}

// Sets every handle of `targets` (leaves) to a fresh copy of the matching value.
void assign_values(const std::vector<MpcTensor>& targets, const std::vector<MpcTensor>& values) {
  for (std::size_t i = 0; i < targets.size(); ++i) {
    MpcTensor target = targets[i];  // shares the value object with the module's handle
    target.assign_(copy_value(values[i]));
  }
}

// What one training step changes: parameters, module buffers (BatchNorm running statistics and
// batch counters) and the optimizer's state (SGD momentum buffers, Adam moments and step counts).
struct TrainState {
  std::vector<MpcTensor> params;
  std::vector<MpcTensor> buffers;
  std::vector<MpcTensor> state1;
  std::vector<MpcTensor> state2;
  std::vector<int64_t> steps;
};

TrainState capture_state(const std::vector<MpcTensor>& params,
                         const std::vector<MpcTensor>& buffers,
                         const optim::Optimizer& opt) {
  TrainState s;
  s.params = copy_values(params);
  s.buffers = copy_values(buffers);
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (const auto* adam = dynamic_cast<const optim::AdamBase*>(&opt)) {
      s.state1.push_back(copy_value(adam->exp_avg(i)));
      s.state2.push_back(copy_value(adam->exp_avg_sq(i)));
      s.steps.push_back(adam->step_count(i));
    } else if (const auto* sgd = dynamic_cast<const optim::SGD*>(&opt)) {
      s.state1.push_back(copy_value(sgd->momentum_buffer(i)));
    }
  }
  return s;
}

void restore_state(const TrainState& s,
                   const std::vector<MpcTensor>& params,
                   const std::vector<MpcTensor>& buffers,
                   optim::Optimizer& opt) {
  assign_values(params, s.params);
  assign_values(buffers, s.buffers);
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (auto* adam = dynamic_cast<optim::AdamBase*>(&opt)) {
      adam->set_state(i, copy_value(s.state1[i]), copy_value(s.state2[i]), s.steps[i]);
    } else if (auto* sgd = dynamic_cast<optim::SGD*>(&opt)) {
      MpcTensor buf = sgd->momentum_buffer(i);  // shares the optimizer's value object
      if (buf.defined()) {
        // Undefined in the snapshot (before the first step): zeros act the same, since the
        // first step sets buf = g and a zero buffer gives momentum * 0 + g (dampening 0).
        buf.assign_(
            s.state1[i].defined()
                ? copy_value(s.state1[i])
                : MpcTensor::from_public(core::Tensor::zeros(buf.shape(), core::DType::kFloat64),
                                         buf.party()));
      }
    }
  }
}

// Whether a 0-d loss lies in (-1, hi), revealing only that: [loss - hi < 0] and [-1 - loss < 0]
// by one secret comparison of two elements (crypto::ltz, 3 rounds) and the opening of the two
// bits (1 round). A public loss is checked directly.
bool loss_in_range(crypto::Party& party, const MpcTensor& loss, double hi) {
  if (loss.is_public()) {
    const double l = loss.reveal().item<double>();
    return l > -1.0 && l < hi;
  }
  const crypto::AShare l = loss.ashare();
  const crypto::AShare v{l.data.reshape({1}), l.frac_bits};
  const crypto::AShare a = crypto::add_public(party, v, -hi);
  const crypto::AShare b = crypto::add_public(party, crypto::neg(v), -1.0);
  const crypto::AShare both{core::cat({a.data, b.data}, 0), l.frac_bits};
  const core::Tensor bits =
      crypto::reveal_binary(party, crypto::ltz(party, both)).to(core::Device::cpu());
  const uint64_t* pb = bits.data<uint64_t>();
  return (pb[0] & 1U) == 1U && (pb[1] & 1U) == 1U;
}

}  // namespace

std::string_view model_name(ModelKind kind) {
  return kind == ModelKind::kLeNet ? "lenet" : "mlp";
}

ModelKind parse_model(std::string_view name) {
  if (name == "mlp") {
    return ModelKind::kMlp;
  }
  if (name == "lenet") {
    return ModelKind::kLeNet;
  }
  throw ValueError(fmt::format("[model] expected 'mlp' or 'lenet', got '{}'", name));
}

bool effective_guard(const TrainOptions& options) {
  return options.guard.value_or(options.model == ModelKind::kLeNet);
}

int effective_adam_grad_scale_bits(const TrainOptions& options) {
  return options.adam_grad_scale_bits.value_or(options.model == ModelKind::kLeNet ? 7 : 10);
}

int effective_loss_scale_bits(const TrainOptions& options) {
  return options.loss_scale_bits.value_or(options.model == ModelKind::kLeNet ? 10 : 0);
}

OptimizerConfig optimizer_config(const TrainOptions& options) {
  OptimizerConfig c;
  c.kind = options.optimizer;
  c.lr = options.lr;
  c.momentum = options.momentum;
  c.weight_decay = options.weight_decay;
  c.beta1 = options.beta1;
  c.beta2 = options.beta2;
  c.eps = options.adam_eps;
  return c;
}

core::Tensor preprocess(const core::Tensor& images, const TrainOptions& options) {
  if (!options.standardize) {
    return images;
  }
  return core::mul_scalar(core::add_scalar(images, -kFashionMnistMean), 1.0 / kFashionMnistStd);
}

std::string checkpoint_path(const std::string& dir, int64_t step, int rank) {
  return fmt::format("{}/step-{:08d}.rank{}.ckpt", dir, step, rank);
}

int64_t latest_checkpoint_step(const std::string& dir, int world_size) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return -1;
  }
  std::map<int64_t, int> ranks_of_step;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    long long step = 0;
    int rank = 0;
    int used = 0;
    // NOLINTNEXTLINE(cert-err34-c): the full match is checked through `used`
    if (std::sscanf(name.c_str(), "step-%8lld.rank%d.ckpt%n", &step, &rank, &used) == 2 &&
        static_cast<std::size_t>(used) == name.size() && rank >= 0 && rank < world_size &&
        name == std::filesystem::path(checkpoint_path(dir, step, rank)).filename().string()) {
      ++ranks_of_step[step];
    }
  }
  for (auto it = ranks_of_step.rbegin(); it != ranks_of_step.rend(); ++it) {
    if (it->second == world_size) {
      return it->first;
    }
  }
  return -1;
}

bool matches_prefix(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const std::string& p : prefixes) {
    if (name.starts_with(p)) {
      return true;
    }
  }
  return false;
}

double accuracy(const std::vector<int64_t>& predictions, const core::Tensor& labels) {
  const auto lv = labels.to_vector<int64_t>();
  VEIL_CHECK(lv.size() == predictions.size(), "[accuracy] {} predictions for {} labels",
             predictions.size(), lv.size());
  if (lv.empty()) {
    return 0.0;
  }
  int64_t ok = 0;
  for (std::size_t i = 0; i < lv.size(); ++i) {
    ok += predictions[i] == lv[i] ? 1 : 0;
  }
  return static_cast<double>(ok) / static_cast<double>(lv.size());
}

PartyReport train_private_mlp(crypto::Party& party,
                              const Dataset& train,
                              const Dataset& test,
                              const TrainOptions& options) {
  TrainOptions mlp = options;
  mlp.model = ModelKind::kMlp;
  return train_private(party, train, test, mlp);
}

PartyReport train_private(crypto::Party& party,
                          const Dataset& train,
                          const Dataset& test,
                          const TrainOptions& options) {
  VEIL_CHECK(options.batch_size > 0 && options.epochs >= 0 && options.eval_batch > 0,
             "[train_private] expected batch_size > 0, epochs >= 0, eval_batch > 0, got {}, "
             "{}, {}",
             options.batch_size, options.epochs, options.eval_batch);
  VEIL_CHECK(train.size() > 0, "[train_private] the training set is empty");
  optimizer_config(options).validate("train_private");
  const int loss_scale_bits = effective_loss_scale_bits(options);
  VEIL_CHECK(loss_scale_bits >= 0 && loss_scale_bits <= 16,
             "[train_private] expected loss_scale_bits in [0, 16], got {}", loss_scale_bits);
  const bool lenet = options.model == ModelKind::kLeNet;
  if (lenet) {
    options.lenet.validate("train_private");
    VEIL_CHECK(train.images.dim() == 2 && train.images.size(1) == 784 &&
                   (test.size() == 0 || (test.images.dim() == 2 && test.images.size(1) == 784)),
               "[train_private] the LeNet takes 28 x 28 images [N, 784], got {}",
               core::shape_str(train.images.shape()));
    // BatchNorm needs two rows per batch, also in the last (shorter) batch of an epoch.
    VEIL_CHECK(options.batch_size >= 2 && train.size() % options.batch_size != 1,
               "[train_private] every LeNet batch needs at least 2 rows (BatchNorm); batch_size "
               "{} with {} rows leaves a batch of 1",
               options.batch_size, train.size());
  }
  const int64_t classes = lenet ? options.lenet.classes : options.sizes.back();
  PartyReport report;
  auto& comm = party.comm();

  // ---- input sharing: every owner shares its own rows (no communication) ----------------------
  // A resumed run draws the input shares again from the positions of the run that wrote the
  // checkpoint (the same data under the same masks: the same shares); load_checkpoint then moves
  // every stream back to the checkpoint.
  const bool resuming = options.resume_step >= 0;
  const std::string resume_file =
      resuming ? checkpoint_path(options.checkpoint_dir, options.resume_step, party.rank()) : "";
  uint64_t input_next = party.next_prg().position();
  uint64_t input_prev = party.prev_prg().position();
  if (resuming) {
    const CheckpointInfo info = read_checkpoint_info(resume_file);
    const auto& extra = info.progress.extra;
    VEIL_CHECK(extra.contains("input_next") && extra.contains("input_prev"),
               "[train_private] '{}' was not written by train_private (no input positions)",
               resume_file);
    input_next = std::stoull(extra.at("input_next"));
    input_prev = std::stoull(extra.at("input_prev"));
    party.next_prg().seek(input_next);
    party.prev_prg().seek(input_prev);
  }
  auto t0 = Clock::now();
  const int64_t n = train.size();
  const int64_t features = train.images.size(1);
  if (!options.rows_per_party.empty()) {
    int64_t sum = 0;
    bool nonneg = true;
    for (const int64_t r : options.rows_per_party) {
      sum += r;
      nonneg = nonneg && r >= 0;
    }
    VEIL_CHECK(nonneg && sum == n &&
                   std::ssize(options.rows_per_party) == static_cast<int64_t>(party.world_size()),
               "[train_private] expected rows_per_party to hold {} non-negative counts summing to "
               "the {} training rows, got {} counts summing to {}",
               party.world_size(), n, options.rows_per_party.size(), sum);
  }
  const MpcTensor x_all = share_partitioned(
      party, n, {features},
      [&](int64_t lo, int64_t hi) { return preprocess(train.images.slice(0, lo, hi), options); },
      options.rows_per_party);
  const MpcTensor y_all = share_partitioned(
      party, n, {classes},
      [&](int64_t lo, int64_t hi) {
        return core::one_hot(train.labels.slice(0, lo, hi).contiguous(), classes);
      },
      options.rows_per_party);
  report.share_seconds = seconds_since(t0);

  // ---- model from public initial weights, encrypted by party 0 ---------------------------------
  const PrivateModel model = build_model(options, party);
  if (options.prepare_model) {
    options.prepare_model(*model.module, party);
  }
  model.module->encrypt(0);
  // the optimizer gets only the parameters that are trained
  std::vector<MpcTensor> params;
  for (auto& [name, prm] : model.module->named_parameters()) {
    if (matches_prefix(name, options.frozen_prefixes)) {
      prm.set_requires_grad(false);
    } else {
      params.push_back(prm);
    }
  }
  VEIL_CHECK(!params.empty(), "[train_private] every parameter is frozen (frozen_prefixes)");
  const std::unique_ptr<optim::Optimizer> opt = build_optimizer(options, params);
  VEIL_CHECK(options.checkpoint_every >= 0 &&
                 (options.checkpoint_every == 0 || !options.checkpoint_dir.empty()) &&
                 (!resuming || !options.checkpoint_dir.empty()),
             "[train_private] expected checkpoint_every >= 0 and a checkpoint_dir for writing or "
             "resuming checkpoints, got checkpoint_every {} and dir '{}'",
             options.checkpoint_every, options.checkpoint_dir);
  std::size_t first_step = 0;
  if (resuming) {
    const CheckpointProgress progress =
        load_checkpoint(resume_file, *model.module, opt.get(), party);
    first_step = static_cast<std::size_t>(progress.step);
  }

  // ---- training ---------------------------------------------------------------------------------
  // Every step of every epoch in order; with the guard a step may be run again (see TrainOptions).
  const BatchOrder order(n, options.batch_size, options.seed, /*shuffle=*/true);
  struct Step {
    int64_t epoch;
    std::size_t batch;
    std::size_t batches;
    std::vector<int64_t> rows;
  };
  std::vector<Step> steps;
  for (int64_t e = 0; e < options.epochs; ++e) {
    auto batches = order.epoch(e);
    for (std::size_t b = 0; b < batches.size(); ++b) {
      steps.push_back({e, b, batches.size(), std::move(batches[b])});
    }
  }
  const bool guard = effective_guard(options);
  const std::vector<MpcTensor> buffers = model.module->buffers();
  std::optional<TrainState> before_prev;  // state before steps[k - 1] (guard only)
  TrainState before_this;                 // state before steps[k] (guard only)
  int consecutive_failures = 0;           // since the guard last got past `furthest`
  std::size_t furthest = first_step;      // steps completed at most so far
  const auto stats0 = comm.stats();
  t0 = Clock::now();
  int64_t seen = 0;
  const int64_t total = n * options.epochs;
  double loss_sum = 0;
  int64_t loss_count = 0;
  VEIL_CHECK(first_step <= steps.size(),
             "[train_private] the checkpoint is at step {}, but this run has only {} steps",
             first_step, steps.size());
  if (options.max_steps >= 0 && static_cast<std::size_t>(options.max_steps) < steps.size()) {
    steps.resize(static_cast<std::size_t>(
        std::max<int64_t>(options.max_steps, static_cast<int64_t>(first_step))));
  }
  const bool stopped_early = options.max_steps >= 0;
  std::size_t k = first_step;
  for (std::size_t i = 0; i < first_step; ++i) {
    seen += static_cast<int64_t>(steps[i].rows.size());
  }
  while (k <= steps.size()) {
    if (k == steps.size()) {
      // after the last update: a forward pass on the last batch (no gradients, running
      // statistics restored afterwards) checks that the final parameters are sound
      if (!guard || steps.empty()) {
        break;
      }
      const std::vector<MpcTensor> saved = copy_values(buffers);
      bool ok = false;
      {
        NoGradGuard no_grad;
        ok = loss_in_range(party,
                           veil::cross_entropy(model.forward(select_rows(x_all, steps.back().rows)),
                                               select_rows(y_all, steps.back().rows)),
                           kGuardLossLimit);
      }
      assign_values(buffers, saved);
      if (ok) {
        break;
      }
    } else {
      const Step& st = steps[k];
      if (guard) {
        before_this = capture_state(params, buffers, *opt);
      }
      const MpcTensor xb = select_rows(x_all, st.rows);
      const MpcTensor yb = select_rows(y_all, st.rows);
      opt->zero_grad();
      const MpcTensor loss = veil::cross_entropy(model.forward(xb), yb);
      // disclosed with the guard: whether this batch's loss lies in (-1, kGuardLossLimit)
      if (!guard || loss_in_range(party, loss, kGuardLossLimit)) {
        if (loss_scale_bits == 0) {
          loss.backward();
        } else {
          // backward of 2^k * loss, then every parameter gradient times 2^-k (see TrainOptions)
          loss.backward(MpcTensor::from_public(
              core::Tensor::scalar<double>(std::ldexp(1.0, loss_scale_bits)), party));
          NoGradGuard no_grad;
          const double unscale = std::ldexp(1.0, -loss_scale_bits);
          for (MpcTensor& prm : params) {
            const MpcTensor g = prm.grad();
            if (g.defined()) {
              prm.set_grad(veil::mul(g, unscale));
            }
          }
        }
        opt->step();
        if (options.after_step) {
          options.after_step(static_cast<int64_t>(k), params);
        }
        if (st.batch == 0) {
          loss_sum = 0;
          loss_count = 0;
        }
        seen += static_cast<int64_t>(st.rows.size());
        const bool last = st.batch + 1 == st.batches;
        const bool reveal =
            options.progress_every > 0 &&
            (st.batch % static_cast<std::size_t>(options.progress_every) == 0 || last);
        if (reveal) {
          const double l = loss.reveal().item<double>();  // disclosed: one batch-mean loss
          report.losses.push_back(l);
          loss_sum += l;
          ++loss_count;
        }
        if (options.on_progress && party.rank() == 0 && (last || reveal)) {
          const double el = seconds_since(t0);
          TrainProgress pr;
          pr.epoch = st.epoch;
          pr.epochs = options.epochs;
          pr.batch = static_cast<int64_t>(st.batch) + 1;
          pr.batches = static_cast<int64_t>(st.batches);
          pr.loss = loss_count > 0 ? loss_sum / static_cast<double>(loss_count)
                                   : std::numeric_limits<double>::quiet_NaN();
          pr.samples_per_second = el > 0 ? static_cast<double>(seen) / el : 0.0;
          pr.eta_seconds = pr.samples_per_second > 0
                               ? static_cast<double>(total - seen) / pr.samples_per_second
                               : 0.0;
          options.on_progress(pr);
        }
        if (guard) {
          before_prev = std::move(before_this);
        }
        ++k;
        if (options.checkpoint_every > 0 &&
            k % static_cast<std::size_t>(options.checkpoint_every) == 0) {
          CheckpointProgress progress;
          progress.step = static_cast<int64_t>(k);
          progress.epoch = st.epoch;
          progress.extra["input_next"] = std::to_string(input_next);
          progress.extra["input_prev"] = std::to_string(input_prev);
          std::filesystem::create_directories(options.checkpoint_dir);
          save_checkpoint(
              checkpoint_path(options.checkpoint_dir, static_cast<int64_t>(k), party.rank()),
              *model.module, opt.get(), progress, party);
        }
        if (k > furthest) {
          furthest = k;
          consecutive_failures = 0;
        }
        continue;
      }
    }
    // The guard saw a loss outside (-1, kGuardLossLimit): the cause is this step's forward pass
    // or the previous update (its backward), both very likely a 2-party truncation failure.
    // Restore the state before the previous step and run both again with fresh randomness; a
    // deterministic divergence fails the same way again and stops the run.
    ++report.guard_retries;
    VEIL_CHECK(
        ++consecutive_failures <= kGuardMaxRetries,
        "[train_private] the batch loss left (-1, {}) {} times without progress past step {} "
        "of {}; training diverged (try a lower lr)",
        kGuardLossLimit, consecutive_failures, k, steps.size());
    if (before_prev && k > 0) {
      restore_state(*before_prev, params, buffers, *opt);
      --k;
      seen -= static_cast<int64_t>(steps[k].rows.size());
      before_prev.reset();
    } else {
      restore_state(before_this, params, buffers, *opt);
    }
  }
  report.train_seconds = seconds_since(t0);
  report.train_stats = comm.stats() - stats0;

  // ---- encrypted inference: test rows shared by their owners, only labels revealed -------------
  if (test.size() > 0 && !stopped_early) {
    const auto stats1 = comm.stats();
    t0 = Clock::now();
    NoGradGuard no_grad;
    model.module->eval();
    const MpcTensor xt = share_partitioned(
        party, test.size(), {features},
        [&](int64_t lo, int64_t hi) { return preprocess(test.images.slice(0, lo, hi), options); });
    report.predictions.reserve(static_cast<std::size_t>(test.size()));
    for (int64_t lo = 0; lo < test.size(); lo += options.eval_batch) {
      const int64_t hi = std::min(test.size(), lo + options.eval_batch);
      std::vector<int64_t> rows(static_cast<std::size_t>(hi - lo));
      for (int64_t i = lo; i < hi; ++i) {
        rows[static_cast<std::size_t>(i - lo)] = i;
      }
      const MpcTensor logits = model.forward(select_rows(xt, rows));
      const auto am = crypto::max_lastdim(party, logits.ashare());
      const core::Tensor labels =
          crypto::reveal(party, am.indices).to(core::Device::cpu());  // disclosed: labels only
      const uint64_t* pl = labels.data<uint64_t>();
      for (int64_t i = 0; i < labels.numel(); ++i) {
        report.predictions.push_back(static_cast<int64_t>(pl[i]));
      }
    }
    report.eval_seconds = seconds_since(t0);
    report.eval_stats = comm.stats() - stats1;
  }
  if (options.after_training) {
    options.after_training(*model.module, party);
  }
  return report;
}

PlaintextReport train_plaintext_twin(const Dataset& train,
                                     const Dataset& test,
                                     const TrainOptions& options) {
  PlaintextReport report;
  const core::Tensor x = preprocess(train.images, options);
  const BatchOrder order(train.size(), options.batch_size, options.seed, /*shuffle=*/true);
  Dataset t = test;
  if (test.size() > 0) {
    t.images = preprocess(test.images, options);
  }
  PlaintextOptimizer opt(optimizer_config(options));
  const auto t0 = Clock::now();
  if (options.model == ModelKind::kLeNet) {
    NamedTensors init = init_lenet_parameters(options.lenet, options.seed);
    NamedTensors buffers;
    for (const auto& [name, value] : options.twin_initial_state) {
      bool found = false;
      for (auto& [pname, pvalue] : init) {
        if (pname == name) {
          pvalue = value;
          found = true;
        }
      }
      if (!found) {
        buffers.emplace_back(name, value);
      }
    }
    PlaintextLeNet net(options.lenet, init);
    if (!buffers.empty()) {
      net.load_buffers(buffers);
    }
    net.set_frozen(options.frozen_prefixes);
    for (int64_t e = 0; e < options.epochs; ++e) {
      for (const auto& rows : order.epoch(e)) {
        report.losses.push_back(
            net.train_step(x.index_select0(rows), train.labels.index_select0(rows), opt));
      }
    }
    report.train_seconds = seconds_since(t0);
    if (test.size() > 0) {
      net.eval();
      report.test_accuracy = net.accuracy(t);
    }
    return report;
  }
  const auto [w0, b0] = init_mlp_weights(options.sizes, options.seed);
  PlaintextMlp mlp(w0, b0);
  SgdConfig cfg;
  cfg.lr = options.lr;
  cfg.momentum = options.momentum;
  cfg.weight_decay = options.weight_decay;
  std::vector<core::Tensor> params = mlp.weights();  // views: the optimizer updates the model
  params.insert(params.end(), mlp.biases().begin(), mlp.biases().end());
  for (int64_t e = 0; e < options.epochs; ++e) {
    for (const auto& rows : order.epoch(e)) {
      const core::Tensor xb = x.index_select0(rows);
      const core::Tensor yb = train.labels.index_select0(rows);
      if (options.optimizer == OptimizerKind::kSgd) {
        report.losses.push_back(mlp.train_step(xb, yb, cfg));
      } else {
        const MlpGradients g = mlp.gradients(xb, yb);
        std::vector<core::Tensor> grads = g.weights;
        grads.insert(grads.end(), g.biases.begin(), g.biases.end());
        opt.step(params, grads);
        report.losses.push_back(g.loss);
      }
    }
  }
  report.train_seconds = seconds_since(t0);
  if (test.size() > 0) {
    report.test_accuracy = mlp.accuracy(t);
  }
  return report;
}

}  // namespace veil::models
