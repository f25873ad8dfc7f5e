#include "models/private_training.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

#include "autograd/autograd.h"
#include "core/ops.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"
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
    return std::make_unique<optim::Adam>(std::move(params),
                                         optim::AdamOptions(options.lr)
                                             .betas({options.beta1, options.beta2})
                                             .eps(options.adam_eps)
                                             .weight_decay(options.weight_decay)
                                             .grad_scale_bits(options.adam_grad_scale_bits));
  }
  return std::make_unique<optim::SGD>(
      std::move(params),
      optim::SGDOptions(options.lr).momentum(options.momentum).weight_decay(options.weight_decay));
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
  const PrivateModel model = build_model(options, party);
  model.module->encrypt(0);
  std::vector<MpcTensor> params = model.module->parameters();
  const std::unique_ptr<optim::Optimizer> opt = build_optimizer(options, params);

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
      opt->zero_grad();
      const MpcTensor loss = veil::cross_entropy(model.forward(xb), yb);
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
  const core::Tensor x = preprocess(train.images, options);
  const BatchOrder order(train.size(), options.batch_size, options.seed, /*shuffle=*/true);
  Dataset t = test;
  if (test.size() > 0) {
    t.images = preprocess(test.images, options);
  }
  PlaintextOptimizer opt(optimizer_config(options));
  const auto t0 = Clock::now();
  if (options.model == ModelKind::kLeNet) {
    PlaintextLeNet net = PlaintextLeNet::from_seed(options.lenet, options.seed);
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
