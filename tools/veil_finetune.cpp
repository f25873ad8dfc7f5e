// veil-finetune: private fine-tuning of a pretrained model (issue 6's example).
//
//   1. Party 0 pretrains a LeNet (models/lenet.h, 5-class head) on Fashion-MNIST classes 0-4 with
//      veil in public mode, on its own, and saves it as safetensors (PyTorch names and layouts)
//      and ONNX. Nobody else sees these files.
//   2. Parties 0, 1 and 2 fine-tune it privately: party 0 shares the pretrained weights from its
//      file (models/weights.h load_pretrained: the others never read it), the 5-class head is
//      replaced by a fresh 10-class one, parties 1 and 2 share their private images of classes
//      5-9 and party 0 a small replay set of its own classes 0-4 (without it the model forgets
//      classes 0-4: nothing in the new data says they still exist). Optionally the convolution
//      blocks are frozen. Everything is secret: weights, images, labels, gradients.
//   3. The fine-tuned weights are opened to party 0 only (save_revealed_to) and written as
//      safetensors; party 0 checks the delivered file by plaintext-mode inference.
//   4. For comparison, the float64 plaintext twin fine-tunes from the same pretrained values with
//      the same rows, batch order and optimizer.
// Prints accuracy on the 10-class test set before (the pretrained model) and after, and the
// twin's; --metrics-json writes accuracy_before, accuracy_after, plaintext_accuracy_after,
// seconds (the private fine-tuning session) and more.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "autograd/autograd.h"
#include "core/file_io.h"
#include "core/ops.h"
#include "crypto/launch.h"
#include "models/data.h"
#include "models/lenet.h"
#include "models/onnx_export.h"
#include "models/private_training.h"
#include "models/weights.h"
#include "optim/sgd.h"

namespace {

using Clock = std::chrono::steady_clock;
using veil::MpcTensor;
using veil::core::Tensor;
using veil::models::Dataset;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void write_json_atomically(const std::string& path, const nlohmann::json& j) {
  veil::core::write_file_atomically(path, j.dump(2) + "\n", "veil-finetune");
}

// The rows of `data` whose label lies in [lo, hi), in order, at most `limit` (-1: all).
Dataset select_classes(const Dataset& data, int64_t lo, int64_t hi, int64_t limit) {
  std::vector<int64_t> rows;
  const auto* labels = data.labels.data<int64_t>();
  for (int64_t i = 0; i < data.size() && (limit < 0 || std::ssize(rows) < limit); ++i) {
    if (labels[i] >= lo && labels[i] < hi) {
      rows.push_back(i);
    }
  }
  return {data.images.index_select0(rows), data.labels.index_select0(rows)};
}

Dataset concat(const std::vector<Dataset>& parts) {
  std::vector<Tensor> images;
  std::vector<Tensor> labels;
  for (const Dataset& d : parts) {
    images.push_back(d.images);
    labels.push_back(d.labels);
  }
  return {veil::core::cat(images, 0), veil::core::cat(labels, 0)};
}

// Fraction of rows of `test` a PUBLIC LeNet classifies correctly (veil's public mode: fixed-point
// arithmetic, no communication).
double public_accuracy(veil::models::LeNet& net,
                       const Dataset& test,
                       const veil::models::TrainOptions& options,
                       veil::crypto::Party& party) {
  veil::NoGradGuard no_grad;
  net->eval();
  int64_t correct = 0;
  const auto* labels = test.labels.data<int64_t>();
  for (int64_t lo = 0; lo < test.size(); lo += 500) {
    const int64_t hi = std::min(test.size(), lo + 500);
    const MpcTensor x = MpcTensor::from_public(
        veil::models::preprocess(test.images.slice(0, lo, hi), options), party);
    const Tensor pred = veil::core::argmax(net(x).reveal(), 1);  // public: decoded locally
    const auto* p = pred.data<int64_t>();
    for (int64_t i = 0; i < hi - lo; ++i) {
      correct += p[i] == labels[lo + i] ? 1 : 0;
    }
  }
  net->train();
  return static_cast<double>(correct) / static_cast<double>(test.size());
}

struct PretrainResult {
  double seconds = 0;
  double accuracy_10 = 0;            // on the whole test set (classes 5-9 are never right)
  double accuracy_5 = 0;             // on the test images of classes 0-4
  veil::models::NamedTensors state;  // parameters and buffers, float64, veil layout
};

// Party 0's own work: trains the 5-class LeNet in public mode (every value public, so nothing
// is communicated) and writes it as safetensors and ONNX.
PretrainResult pretrain_public(veil::crypto::Party& party,
                               const Dataset& train,
                               const Dataset& test,
                               const veil::models::TrainOptions& options,
                               const std::string& dir) {
  PretrainResult r;
  veil::models::LeNet net(options.lenet, party);
  net->load_parameters(veil::models::init_lenet_parameters(options.lenet, options.seed));
  veil::optim::SGD opt(net->parameters(),
                       veil::optim::SGDOptions(options.lr).momentum(options.momentum));
  const int k = veil::models::effective_loss_scale_bits(options);
  const MpcTensor scale = MpcTensor::from_public(Tensor::scalar<double>(std::ldexp(1.0, k)), party);
  const veil::models::BatchOrder order(train.size(), options.batch_size, options.seed, true);
  const auto t0 = Clock::now();
  for (int64_t e = 0; e < options.epochs; ++e) {
    for (const auto& rows : order.epoch(e)) {
      const MpcTensor x = MpcTensor::from_public(
          veil::models::preprocess(train.images.index_select0(rows), options), party);
      const MpcTensor y = MpcTensor::from_public(
          veil::core::one_hot(train.labels.index_select0(rows), options.lenet.classes), party);
      opt.zero_grad();
      const MpcTensor loss = veil::cross_entropy(net(x), y);
      loss.backward(scale);  // loss scaling, as in private training (TrainOptions)
      veil::NoGradGuard no_grad;
      for (MpcTensor& prm : net->parameters()) {
        if (prm.grad().defined()) {
          prm.set_grad(veil::mul(prm.grad(), std::ldexp(1.0, -k)));
        }
      }
      opt.step();
    }
  }
  r.seconds = seconds_since(t0);
  r.accuracy_10 = public_accuracy(net, test, options, party);
  r.accuracy_5 = public_accuracy(net, select_classes(test, 0, 5, -1), options, party);
  for (const auto& [name, t] : net->state_dict()) {
    r.state.emplace_back(name, t.reveal());  // public: decoded locally
  }
  std::filesystem::create_directories(dir);
  veil::models::save_safetensors(*net, dir + "/pretrained.safetensors");
  veil::models::export_onnx(net, dir + "/pretrained.onnx");
  return r;
}

// Party 0's check of the delivered file: loads it into a public LeNet and evaluates it.
double delivered_accuracy(veil::crypto::Party& party,
                          const Dataset& test,
                          const veil::models::TrainOptions& options,
                          const std::string& path) {
  veil::models::LeNet net(options.lenet, party);
  veil::models::load_safetensors_into(*net, path);
  return public_accuracy(net, test, options, party);
}

// Runs fn as party 0 of a 2-party in-process session in which party 1 does nothing: party 0's
// local work in public mode (a Party needs a session; public ops never communicate).
template <class T>
T party0_alone(const std::function<T(veil::crypto::Party&)>& fn) {
  veil::crypto::LaunchOptions lo;
  lo.world_size = 2;
  T out{};
  veil::crypto::launch(lo, [&](veil::crypto::Party& p) {
    if (p.rank() == 0) {
      out = fn(p);
    }
  });
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"veil-finetune: private fine-tuning of a pretrained LeNet on Fashion-MNIST"};
  int64_t pretrain_samples = -1;
  int64_t finetune_samples = -1;
  int64_t replay = 3000;
  int64_t pretrain_epochs = 1;
  int64_t epochs = 1;
  int64_t batch_size = 128;
  double lr = 0.1;
  double momentum = 0.0;
  bool freeze = false;
  uint64_t seed = 1;
  int64_t test_samples = -1;
  int64_t eval_batch = 250;
  std::string out_dir = "out/finetune";
  std::string metrics_json;
  std::string data_dir = veil::models::fashion_mnist_dir();
  app.add_option("--pretrain-samples", pretrain_samples,
                 "party 0's pretraining images of classes 0-4 (-1: all ~30,000)");
  app.add_option("--finetune-samples", finetune_samples,
                 "images of classes 5-9, split between parties 1 and 2 (-1: all ~30,000)");
  app.add_option("--replay", replay,
                 "images of classes 0-4 that party 0 adds to the fine-tuning data");
  app.add_option("--pretrain-epochs", pretrain_epochs, "epochs of public-mode pretraining");
  app.add_option("--epochs", epochs, "epochs of private fine-tuning");
  app.add_option("--batch-size", batch_size, "rows per batch");
  app.add_option("--lr", lr, "SGD learning rate (pretraining and fine-tuning)");
  app.add_option("--momentum", momentum, "SGD momentum");
  app.add_flag("--freeze-features", freeze,
               "freeze conv1, bn1, conv2, bn2 (train only the fully connected layers)");
  app.add_option("--seed", seed, "public seed: initial weights, the new head, batch order");
  app.add_option("--test-samples", test_samples, "test images (-1: all 10,000)");
  app.add_option("--eval-batch", eval_batch, "rows per encrypted-inference batch");
  app.add_option("--out-dir", out_dir, "where each party's files go (<out-dir>/party<r>/)");
  app.add_option("--metrics-json", metrics_json, "write the metrics to this JSON file");
  app.add_option("--data-dir", data_dir, "Fashion-MNIST directory");
  CLI11_PARSE(app, argc, argv);

  try {
    const auto t_all = Clock::now();
    const Dataset train = veil::models::load_fashion_mnist(data_dir, veil::models::Split::kTrain);
    const Dataset test =
        veil::models::load_fashion_mnist(data_dir, veil::models::Split::kTest, test_samples);
    // party 0's pretraining data, and the fine-tuning rows in owner order: party 0's replay of
    // its own classes 0-4, then the images of classes 5-9 of party 1, then those of party 2
    const Dataset pre = select_classes(train, 0, 5, pretrain_samples);
    const Dataset late = select_classes(train, 5, 10, finetune_samples);
    VEIL_CHECK(replay >= 0 && replay <= pre.size(),
               "[veil-finetune] expected --replay in [0, {}] (party 0's images), got {}",
               pre.size(), replay);
    VEIL_CHECK(late.size() >= 4, "[veil-finetune] expected at least 4 images of classes 5-9");
    const int64_t n1 = late.size() / 2;
    const int64_t n2 = late.size() - n1;
    const Dataset ft = concat({pre.rows(0, replay), late});

    veil::models::TrainOptions pre_opts;
    pre_opts.model = veil::models::ModelKind::kLeNet;
    pre_opts.lenet.classes = 5;
    pre_opts.epochs = pretrain_epochs;
    pre_opts.batch_size = batch_size;
    pre_opts.lr = lr;
    pre_opts.momentum = momentum;
    pre_opts.seed = seed;

    // ---- 1. party 0 pretrains, alone, in public mode
    // ---------------------------------------------
    const std::string dir0 = out_dir + "/party0";
    fmt::print(
        "veil-finetune: party 0 pretrains a LeNet on {} images of classes 0-4 (public "
        "mode, {} epoch(s))\n",
        pre.size(), pretrain_epochs);
    const PretrainResult pretrained = party0_alone<PretrainResult>(
        [&](veil::crypto::Party& p) { return pretrain_public(p, pre, test, pre_opts, dir0); });
    fmt::print("  {:.1f} s; test accuracy {:.2f}% on classes 0-4, {:.2f}% on all 10 classes\n",
               pretrained.seconds, 100 * pretrained.accuracy_5, 100 * pretrained.accuracy_10);
    fmt::print("  wrote {0}/pretrained.safetensors and {0}/pretrained.onnx\n", dir0);

    // ---- 2. private fine-tuning, 3 parties
    // --------------------------------------------------------
    veil::models::TrainOptions ft_opts = pre_opts;
    ft_opts.lenet.classes = 10;
    ft_opts.epochs = epochs;
    ft_opts.eval_batch = eval_batch;
    ft_opts.seed = seed + 1;  // the new head's initial weights and the fine-tuning batch order
    ft_opts.rows_per_party = {replay, n1, n2};
    if (freeze) {
      ft_opts.frozen_prefixes = {"conv1.", "bn1.", "conv2.", "bn2."};
    }
    const std::string pretrained_file = dir0 + "/pretrained.safetensors";
    const std::string delivered_file = dir0 + "/finetuned.safetensors";
    ft_opts.prepare_model = [&](veil::nn::Module& model, veil::crypto::Party& p) {
      // only party 0 reads its file; the old 5-class head (fc3.*) is not loaded: the new head
      // keeps its fresh initial weights
      veil::models::PretrainedOptions po;
      po.exclude_prefixes = {"fc3."};
      veil::models::load_pretrained(model, p.rank() == 0 ? pretrained_file : std::string(), 0, p,
                                    po);
    };
    ft_opts.after_training = [&](veil::nn::Module& model, veil::crypto::Party& p) {
      veil::models::save_revealed_to(model, 0, delivered_file, p);
    };
    ft_opts.on_progress = [](const veil::models::TrainProgress& pr) {
      fmt::print("  batch {}/{}  loss {:.4f}  {:.1f} samples/s\n", pr.batch, pr.batches, pr.loss,
                 pr.samples_per_second);
      std::fflush(stdout);
    };
    ft_opts.progress_every = 50;
    fmt::print(
        "veil-finetune: 3 parties fine-tune it privately on {} images (party 0: {} replay "
        "images of classes 0-4; parties 1, 2: {} and {} of classes 5-9){}\n",
        ft.size(), replay, n1, n2, freeze ? ", conv blocks frozen" : "");
    veil::crypto::LaunchOptions lo;
    lo.world_size = 3;
    lo.party.program_id = "veil-finetune";
    const auto t_ft = Clock::now();
    const auto reports = veil::crypto::launch<veil::models::PartyReport>(
        lo,
        [&](veil::crypto::Party& p) { return veil::models::train_private(p, ft, test, ft_opts); });
    const double ft_seconds = seconds_since(t_ft);
    const double acc_after = veil::models::accuracy(reports[0].predictions, test.labels);
    const double acc_after_late = veil::models::accuracy(
        [&] {
          std::vector<int64_t> p;
          const auto* l = test.labels.data<int64_t>();
          for (int64_t i = 0; i < test.size(); ++i) {
            if (l[i] >= 5) {
              p.push_back(reports[0].predictions[static_cast<std::size_t>(i)]);
            }
          }
          return p;
        }(),
        select_classes(test, 5, 10, -1).labels);
    fmt::print(
        "  {:.1f} s (training {:.1f} s, inference {:.1f} s), {:.1f} MB sent by party 0, "
        "{} guard retries\n",
        ft_seconds, reports[0].train_seconds, reports[0].eval_seconds,
        static_cast<double>(reports[0].train_stats.total.bytes_sent +
                            reports[0].eval_stats.total.bytes_sent) /
            1e6,
        reports[0].guard_retries);

    // ---- 3. party 0 checks the delivered weights
    // --------------------------------------------------
    const double acc_delivered = party0_alone<double>([&](veil::crypto::Party& p) {
      return delivered_accuracy(p, test, ft_opts, delivered_file);
    });

    // ---- 4. the plaintext twin fine-tunes the same pretrained values
    // -----------------------------
    veil::models::TrainOptions twin_opts = ft_opts;
    for (const auto& [name, t] : pretrained.state) {
      if (!name.starts_with("fc3.") && !name.ends_with("num_batches_tracked")) {
        twin_opts.twin_initial_state.emplace_back(name, t);
      }
    }
    const auto twin = veil::models::train_plaintext_twin(ft, test, twin_opts);

    fmt::print("\naccuracy on the {} test images (10 classes)\n", test.size());
    fmt::print("  before (pretrained, 5-class head):   {:6.2f}%\n", 100 * pretrained.accuracy_10);
    fmt::print("  after private fine-tuning:           {:6.2f}%  (classes 5-9: {:.2f}%)\n",
               100 * acc_after, 100 * acc_after_late);
    fmt::print("  after plaintext fine-tuning (twin):  {:6.2f}%  (difference {:+.2f} points)\n",
               100 * twin.test_accuracy, 100 * (acc_after - twin.test_accuracy));
    fmt::print("  delivered to party 0 ({}), checked by party 0: {:.2f}%\n", delivered_file,
               100 * acc_delivered);
    fmt::print("total {:.1f} s\n", seconds_since(t_all));
    if (!metrics_json.empty()) {
      nlohmann::json j;
      j["accuracy_before"] = pretrained.accuracy_10;
      j["accuracy_after"] = acc_after;
      j["plaintext_accuracy_after"] = twin.test_accuracy;
      j["seconds"] = ft_seconds;
      j["pretrain_seconds"] = pretrained.seconds;
      j["pretrain_accuracy_classes_0_4"] = pretrained.accuracy_5;
      j["accuracy_after_classes_5_9"] = acc_after_late;
      j["delivered_accuracy"] = acc_delivered;
      j["train_seconds"] = reports[0].train_seconds;
      j["eval_seconds"] = reports[0].eval_seconds;
      j["twin_train_seconds"] = twin.train_seconds;
      j["rows_per_party"] = ft_opts.rows_per_party;
      j["test_samples"] = test.size();
      j["freeze_features"] = freeze;
      j["epochs"] = epochs;
      j["bytes_sent_party0"] =
          reports[0].train_stats.total.bytes_sent + reports[0].eval_stats.total.bytes_sent;
      j["rounds_party0"] = reports[0].train_stats.total.rounds + reports[0].eval_stats.total.rounds;
      j["guard_retries"] = reports[0].guard_retries;
      write_json_atomically(metrics_json, j);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "veil-finetune: %s\n", e.what());
    return 1;
  }
}
