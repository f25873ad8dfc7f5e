#include "models/private_training.h"

#include <chrono>
#include <limits>

#include "autograd/autograd.h"
#include "core/ops.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"
#include "models/mlp.h"
#include "models/plaintext_mlp.h"
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
                            const std::function<core::Tensor(int64_t, int64_t)>& rows_of) {
  core::Shape shape = row_shape;
  shape.insert(shape.begin(), n);
  core::Tensor table = crypto::zero_share(party, shape);
  const RowRange mine = partition_rows(n, party.world_size(), party.rank());
  if (mine.size() > 0) {
    core::Tensor block = table.slice(0, mine.begin, mine.end);
    const core::Tensor enc = party.encoder().encode(rows_of(mine.begin, mine.end), "share");
    VEIL_CHECK(enc.shape() == block.shape(), "[share] expected owner rows of shape {}, got {}",
               core::shape_str(block.shape()), core::shape_str(enc.shape()));
    core::add_(block, enc);
  }
  return MpcTensor::from_secret({table, party.frac_bits()}, party);
}

MpcTensor select_rows(const MpcTensor& x, const std::vector<int64_t>& rows) {
  const crypto::AShare s = x.ashare();
  return MpcTensor::from_secret({s.data.index_select0(rows), s.frac_bits}, x.party());
}

}  // namespace

core::Tensor preprocess(const core::Tensor& images, const TrainOptions& options) {
  if (!options.standardize) {
    return images;
  }
  return core::mul_scalar(core::add_scalar(images, -kFashionMnistMean), 1.0 / kFashionMnistStd);
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
  VEIL_CHECK(options.batch_size > 0 && options.epochs >= 0 && options.eval_batch > 0,
             "[train_private_mlp] expected batch_size > 0, epochs >= 0, eval_batch > 0, got {}, "
             "{}, {}",
             options.batch_size, options.epochs, options.eval_batch);
  VEIL_CHECK(train.size() > 0, "[train_private_mlp] the training set is empty");
  const int64_t classes = options.sizes.back();
  PartyReport report;
  auto& comm = party.comm();

  // ---- input sharing: every owner shares its own rows (no communication) ----------------------
  auto t0 = Clock::now();
  const int64_t n = train.size();
  const int64_t features = train.images.size(1);
  const MpcTensor x_all = share_partitioned(party, n, {features}, [&](int64_t lo, int64_t hi) {
    return preprocess(train.images.slice(0, lo, hi), options);
  });
  const MpcTensor y_all = share_partitioned(party, n, {classes}, [&](int64_t lo, int64_t hi) {
    return core::one_hot(train.labels.slice(0, lo, hi).contiguous(), classes);
  });
  report.share_seconds = seconds_since(t0);

  // ---- model from public initial weights, encrypted by party 0 ---------------------------------
  Mlp model(options.sizes);
  const auto [w0, b0] = init_mlp_weights(options.sizes, options.seed);
  model->load_weights(w0, b0);
  model->encrypt(0);
  optim::SGD opt(
      model->parameters(),
      optim::SGDOptions(options.lr).momentum(options.momentum).weight_decay(options.weight_decay));

  // ---- training
  // ----------------------------------------------------------------------------------
  const BatchOrder order(n, options.batch_size, options.seed, /*shuffle=*/true);
  const auto stats0 = comm.stats();
  t0 = Clock::now();
  int64_t seen = 0;
  const int64_t total = n * options.epochs;
  for (int64_t e = 0; e < options.epochs; ++e) {
    const auto batches = order.epoch(e);
    double loss_sum = 0;
    int64_t loss_count = 0;
    for (std::size_t b = 0; b < batches.size(); ++b) {
      const MpcTensor xb = select_rows(x_all, batches[b]);
      const MpcTensor yb = select_rows(y_all, batches[b]);
      opt.zero_grad();
      const MpcTensor loss = veil::cross_entropy(model(xb), yb);
      loss.backward();
      opt.step();
      seen += static_cast<int64_t>(batches[b].size());
      const bool last = b + 1 == batches.size();
      if (options.progress_every > 0 &&
          (b % static_cast<std::size_t>(options.progress_every) == 0 || last)) {
        const double l = loss.reveal().item<double>();  // disclosed: one batch-mean loss
        report.losses.push_back(l);
        loss_sum += l;
        ++loss_count;
      }
      if (options.on_progress && party.rank() == 0 &&
          (last || (options.progress_every > 0 &&
                    b % static_cast<std::size_t>(options.progress_every) == 0))) {
        const double el = seconds_since(t0);
        TrainProgress pr;
        pr.epoch = e;
        pr.epochs = options.epochs;
        pr.batch = static_cast<int64_t>(b) + 1;
        pr.batches = static_cast<int64_t>(batches.size());
        pr.loss = loss_count > 0 ? loss_sum / static_cast<double>(loss_count)
                                 : std::numeric_limits<double>::quiet_NaN();
        pr.samples_per_second = el > 0 ? static_cast<double>(seen) / el : 0.0;
        pr.eta_seconds = pr.samples_per_second > 0
                             ? static_cast<double>(total - seen) / pr.samples_per_second
                             : 0.0;
        options.on_progress(pr);
      }
    }
  }
  report.train_seconds = seconds_since(t0);
  report.train_stats = comm.stats() - stats0;

  // ---- encrypted inference: test rows shared by their owners, only labels revealed -------------
  if (test.size() > 0) {
    const auto stats1 = comm.stats();
    t0 = Clock::now();
    NoGradGuard no_grad;
    model->eval();
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
      const MpcTensor logits = model(select_rows(xt, rows));
      const auto am = crypto::max_lastdim(party, logits.ashare());
      const core::Tensor labels = crypto::reveal(party, am.indices);  // disclosed: labels only
      const uint64_t* pl = labels.data<uint64_t>();
      for (int64_t i = 0; i < labels.numel(); ++i) {
        report.predictions.push_back(static_cast<int64_t>(pl[i]));
      }
    }
    report.eval_seconds = seconds_since(t0);
    report.eval_stats = comm.stats() - stats1;
  }
  return report;
}

PlaintextReport train_plaintext_twin(const Dataset& train,
                                     const Dataset& test,
                                     const TrainOptions& options) {
  PlaintextReport report;
  const auto [w0, b0] = init_mlp_weights(options.sizes, options.seed);
  PlaintextMlp mlp(w0, b0);
  const core::Tensor x = preprocess(train.images, options);
  const BatchOrder order(train.size(), options.batch_size, options.seed, /*shuffle=*/true);
  SgdConfig cfg;
  cfg.lr = options.lr;
  cfg.momentum = options.momentum;
  cfg.weight_decay = options.weight_decay;
  const auto t0 = Clock::now();
  for (int64_t e = 0; e < options.epochs; ++e) {
    for (const auto& rows : order.epoch(e)) {
      report.losses.push_back(
          mlp.train_step(x.index_select0(rows), train.labels.index_select0(rows), cfg));
    }
  }
  report.train_seconds = seconds_since(t0);
  if (test.size() > 0) {
    Dataset t = test;
    t.images = preprocess(test.images, options);
    report.test_accuracy = mlp.accuracy(t);
  }
  return report;
}

}  // namespace veil::models
