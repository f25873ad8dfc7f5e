// veil-train: the main job. Trains a 784-128-10 MLP (or, with --model lenet, a LeNet-5 with
// BatchNorm) privately on Fashion-MNIST with N parties (threads of this process, in-process
// transport, or one process per party), each owning its own training rows, with SGD or Adam;
// evaluates by encrypted inference on the test set (only predicted labels revealed); trains the
// float64 plaintext twin with identical initial weights and batch order for comparison.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "comm/config.h"
#include "core/cuda_dispatch.h"
#include "core/file_io.h"
#include "core/parallel.h"
#include "crypto/launch.h"
#include "crypto/process.h"
#include "models/checkpoint.h"
#include "models/data.h"
#include "models/private_training.h"

#include <unistd.h>

namespace {

void write_json_atomically(const std::string& path, const nlohmann::json& j) {
  veil::core::write_file_atomically(path, j.dump(2) + "\n", "veil-train");
}

// FNV-1a over the predicted labels: a compact way to compare runs bit for bit.
std::string predictions_digest(const std::vector<int64_t>& predictions) {
  uint64_t h = 1469598103934665603ULL;
  for (int64_t p : predictions) {
    h = (h ^ static_cast<uint64_t>(p)) * 1099511628211ULL;
  }
  return fmt::format("{:016x}", h);
}

std::string fmt_seconds(double s) {
  if (s >= 60) {
    return fmt::format("{}m{:02d}s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  }
  return fmt::format("{:.1f}s", s);
}

// "6,16,120,84" -> the LeNet's widths. Throws ValueError for another form.
veil::models::LeNetConfig parse_lenet_widths(const std::string& text) {
  std::vector<int64_t> v;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      std::size_t used = 0;
      v.push_back(std::stoll(item, &used));
      if (used != item.size()) {
        v.clear();
        break;
      }
    } catch (const std::exception&) {
      v.clear();
      break;
    }
  }
  if (v.size() != 4) {
    throw veil::ValueError(fmt::format(
        "[veil-train] --lenet-widths expects four integers c1,c2,h1,h2 (e.g. 6,16,120,84), got "
        "'{}'",
        text));
  }
  veil::models::LeNetConfig c;
  c.conv1_channels = v[0];
  c.conv2_channels = v[1];
  c.fc1_features = v[2];
  c.fc2_features = v[3];
  c.validate("veil-train");
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "veil-train: private training of an MLP or a LeNet on Fashion-MNIST (secret-shared data, "
      "model and gradients)"};
  int parties = 2;
  int64_t epochs = 1;
  int64_t batch_size = 128;
  double lr = 0.1;
  double momentum = 0.0;
  double weight_decay = 0.0;
  int64_t samples = 60000;
  int64_t test_samples = 10000;
  std::string provider = "dealer";
  bool insecure = false;
  uint64_t seed = 1;
  int threads = 0;
  int frac_bits = 16;
  int64_t progress_every = 10;
  bool no_twin = false;
  std::optional<uint64_t> insecure_seed;
  std::string metrics_json;
  std::string data_dir = veil::models::fashion_mnist_dir();
  std::string model_arg = "mlp";
  std::string optimizer_arg = "sgd";
  std::string lenet_widths = "6,16,120,84";
  double beta1 = 0.9;
  double beta2 = 0.999;
  double adam_eps = 1e-8;
  int64_t eval_batch = 1000;
  int loss_scale_bits = 0;
  int adam_grad_scale_bits = 10;
  bool guard_flag = false;
  bool no_guard_flag = false;
  app.add_option("--parties", parties, "number of parties (>= 2)")->check(CLI::Range(2, 64));
  app.add_option("--epochs", epochs, "training epochs")
      ->check(CLI::Range(int64_t{0}, int64_t{1000}));
  app.add_option("--batch-size", batch_size, "batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--model", model_arg, "network: 'mlp' (784-128-10, default) or 'lenet'")
      ->check(CLI::IsMember({"mlp", "lenet"}));
  app.add_option("--optimizer", optimizer_arg, "update rule: 'sgd' (default) or 'adam'")
      ->check(CLI::IsMember({"sgd", "adam"}));
  app.add_option("--lr", lr, "learning rate (default 0.1 for SGD, 0.001 for Adam)")
      ->check(CLI::PositiveNumber);
  app.add_option("--momentum", momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0));
  app.add_option("--weight-decay", weight_decay, "SGD/Adam weight decay (L2 penalty)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--beta1", beta1, "Adam's first-moment coefficient")
      ->check(CLI::Range(0.0, 0.9999));
  app.add_option("--beta2", beta2, "Adam's second-moment coefficient")
      ->check(CLI::Range(0.0, 0.99999));
  app.add_option("--adam-eps", adam_eps, "Adam's eps")->check(CLI::PositiveNumber);
  app.add_option("--lenet-widths", lenet_widths,
                 "LeNet widths c1,c2,h1,h2: conv channels and hidden features (default "
                 "6,16,120,84)");
  app.add_option("--loss-scale-bits", loss_scale_bits,
                 "private backward starts from 2^k (gradients unscaled before the step); default "
                 "10 for the LeNet, 0 for the MLP")
      ->check(CLI::Range(0, 16));
  app.add_option("--adam-grad-scale-bits", adam_grad_scale_bits,
                 "Adam keeps its moments for g 2^s; default 7 for the LeNet, 10 for the MLP")
      ->check(CLI::Range(0, 20));
  app.add_flag("--guard", guard_flag,
               "divergence guard: reveal whether each batch loss is in (-1, 100) and re-run the "
               "last two steps when not (default: on for the LeNet, off for the MLP)");
  app.add_flag("--no-guard", no_guard_flag, "turn the divergence guard off")->excludes("--guard");
  app.add_option("--eval-batch", eval_batch,
                 "test rows per encrypted-inference batch (default 1000 for the MLP, 250 for the "
                 "LeNet)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--samples", samples, "training rows used (the first N of the 60,000)")
      ->check(CLI::Range(int64_t{1}, int64_t{60000}));
  app.add_option("--test-samples", test_samples, "test rows evaluated (the first N of 10,000)")
      ->check(CLI::Range(int64_t{0}, int64_t{10000}));
  app.add_option("--provider", provider,
                 "correlated randomness: 'dealer' (trusted third party, default) or 'tfp' "
                 "(INSECURE trusted first party; needs --insecure)");
  app.add_flag("--insecure", insecure, "allow insecure shortcuts (the tfp provider)");
  app.add_option("--seed", seed, "public seed: initial weights and batch order");
  std::string device_arg = "cpu";
  app.add_option("--device", device_arg,
                 "where every party keeps its shares: 'cpu' (default), 'cuda' or 'cuda:N' (all "
                 "parties on that GPU as threads; under veil-run each process's own)");
  app.add_option("--threads", threads,
                 "intra-op threads per party (0: parties in one process share its cores; a party "
                 "process uses all)")
      ->check(CLI::Range(0, 256));
  app.add_option("--frac-bits", frac_bits, "fixed-point fractional bits")->check(CLI::Range(8, 32));
  app.add_option("--progress-every", progress_every,
                 "reveal and print the batch loss every k batches (0: never reveal the loss)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  app.add_flag("--no-twin", no_twin, "skip the plaintext float64 twin");
  app.add_option("--insecure-seed", insecure_seed,
                 "INSECURE (needs --insecure): derive every key from this public seed, so runs "
                 "are bit-identical across transports (reproducibility tests)");
  app.add_option("--data-dir", data_dir, "directory with the Fashion-MNIST IDX files");
  app.add_option("--metrics-json", metrics_json, "write the run's figures to this JSON file");
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;
  bool resume_latest = false;
  int64_t resume_step = -1;
  int64_t max_steps = -1;
  app.add_option("--checkpoint-dir", checkpoint_dir,
                 "each party writes its checkpoints here (step-<n>.rank<r>.ckpt)");
  app.add_option("--checkpoint-every", checkpoint_every, "checkpoint after every k steps")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--resume", resume_latest,
               "continue from the newest step of --checkpoint-dir that every party saved");
  app.add_option("--resume-step", resume_step, "continue from this step's checkpoints")
      ->check(CLI::NonNegativeNumber)
      ->excludes("--resume");
  app.add_option("--max-steps", max_steps, "stop after this many steps (no evaluation)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  try {
    using veil::models::Split;
    const veil::crypto::ProviderKind kind = veil::crypto::parse_provider(provider);
    if (insecure_seed && !insecure) {
      throw veil::ValueError(
          "[veil-train] --insecure-seed makes every share predictable; add --insecure to use it");
    }
    if (kind == veil::crypto::ProviderKind::kTrustedFirstParty && !insecure) {
      throw veil::ValueError(
          "[veil-train] --provider tfp is insecure (party 0 learns every mask); add --insecure to "
          "use it for benchmarks");
    }
    const auto train = veil::models::load_fashion_mnist(data_dir, Split::kTrain, samples);
    const auto test = veil::models::load_fashion_mnist(data_dir, Split::kTest, test_samples);
    veil::models::TrainOptions opts;
    opts.model = veil::models::parse_model(model_arg);
    opts.optimizer = veil::models::parse_optimizer(optimizer_arg);
    if (opts.optimizer == veil::models::OptimizerKind::kAdam && app.count("--lr") == 0) {
      lr = 1e-3;  // torch.optim.Adam's default
    }
    if (opts.model == veil::models::ModelKind::kLeNet) {
      opts.lenet = parse_lenet_widths(lenet_widths);
      if (app.count("--eval-batch") == 0) {
        eval_batch = 250;  // peak memory about 2.5 GB for 2 parties (1000 rows: about 5 GB)
      }
    }
    if (app.count("--loss-scale-bits") > 0) {
      opts.loss_scale_bits = loss_scale_bits;
    }
    loss_scale_bits = veil::models::effective_loss_scale_bits(opts);
    if (app.count("--adam-grad-scale-bits") > 0) {
      opts.adam_grad_scale_bits = adam_grad_scale_bits;
    }
    adam_grad_scale_bits = veil::models::effective_adam_grad_scale_bits(opts);
    if (guard_flag || no_guard_flag) {
      opts.guard = guard_flag;
    }
    const bool guard_on = veil::models::effective_guard(opts);
    opts.beta1 = beta1;
    opts.beta2 = beta2;
    opts.adam_eps = adam_eps;
    opts.eval_batch = eval_batch;
    opts.epochs = epochs;
    opts.batch_size = batch_size;
    opts.lr = lr;
    opts.momentum = momentum;
    opts.weight_decay = weight_decay;
    opts.seed = seed;
    opts.progress_every = progress_every;
    opts.checkpoint_dir = checkpoint_dir;
    opts.checkpoint_every = checkpoint_every;
    opts.max_steps = max_steps;
    const bool tty = isatty(fileno(stdout)) != 0;
    opts.on_progress = [tty](const veil::models::TrainProgress& p) {
      const std::string loss =
          std::isnan(p.loss) ? std::string("not revealed") : fmt::format("{:.4f}", p.loss);
      const std::string line = fmt::format(
          "epoch {}/{}  batch {}/{}  loss {}  {:.0f} samples/s  ETA {}", p.epoch + 1, p.epochs,
          p.batch, p.batches, loss, p.samples_per_second, fmt_seconds(p.eta_seconds));
      if (tty) {
        fmt::print("\r{:<90}", line);
        if (p.batch == p.batches) {
          fmt::print("\n");
        }
      } else {
        fmt::print("{}\n", line);
      }
      std::fflush(stdout);
    };

    veil::crypto::PartyOptions party_opts;
    party_opts.device = veil::core::parse_device(device_arg);
    party_opts.provider = kind;
    party_opts.insecure = insecure;
    party_opts.frac_bits = frac_bits;
    party_opts.program_id =
        fmt::format("veil-train mlp 784-128-10 samples={} batch={} lr={} seed={}", samples,
                    batch_size, lr, seed);
    if (opts.model != veil::models::ModelKind::kMlp ||
        opts.optimizer != veil::models::OptimizerKind::kSgd) {
      party_opts.program_id =
          fmt::format("veil-train {} samples={} batch={} lr={} seed={} optimizer={}",
                      opts.model == veil::models::ModelKind::kLeNet ? opts.lenet.str()
                                                                    : std::string("mlp 784-128-10"),
                      samples, batch_size, lr, seed, veil::models::optimizer_name(opts.optimizer));
    }
    if (loss_scale_bits != 0) {
      party_opts.program_id += fmt::format(" loss_scale_bits={}", loss_scale_bits);
    }
    if (guard_on) {
      party_opts.program_id += " guard";
    }
    if (insecure_seed) {
      party_opts.insecure_seed = *insecure_seed;
    }
    // Parties as processes (veil-run, mpirun, a scheduler): RANK and the session configuration
    // come from the environment, and this process runs one party. Otherwise all parties run as
    // threads of this process.
    const bool as_process = veil::crypto::launched_as_process();
    int my_rank = 0;
    if (as_process) {
      const auto config = veil::comm::SessionConfig::from_env();
      my_rank = *veil::comm::rank_from_env();
      parties = config.world_size;
      if (threads > 0) {
        veil::core::set_num_threads(threads);
      }
    }
    fmt::print(
        "veil-train: {} parties ({}), provider {}, {} training rows ({} per party), {} epoch(s), "
        "batch {}, lr {}\n",
        parties, as_process ? fmt::format("process of rank {}", my_rank) : "threads",
        veil::crypto::provider_name(kind), train.size(), train.size() / parties, epochs, batch_size,
        lr);
    if (opts.model != veil::models::ModelKind::kMlp ||
        opts.optimizer != veil::models::OptimizerKind::kSgd) {
      fmt::print("model {}, optimizer {}, loss scale 2^{}, guard {}\n",
                 opts.model == veil::models::ModelKind::kLeNet ? opts.lenet.str()
                                                               : std::string("mlp 784-128-10"),
                 veil::models::optimizer_name(opts.optimizer), loss_scale_bits,
                 guard_on ? "on" : "off");
    }
    if (my_rank != 0) {
      opts.on_progress = nullptr;
    }
    // resuming: every party restores its keys and stream positions at setup
    if (resume_latest || resume_step >= 0) {
      if (checkpoint_dir.empty()) {
        throw veil::ValueError("[veil-train] --resume needs --checkpoint-dir");
      }
      opts.resume_step = resume_latest
                             ? veil::models::latest_checkpoint_step(checkpoint_dir, parties)
                             : resume_step;
      if (opts.resume_step < 0) {
        throw veil::ValueError(fmt::format(
            "[veil-train] no step in '{}' has a checkpoint of every one of the {} parties",
            checkpoint_dir, parties));
      }
      fmt::print("resuming from step {} ({})\n", opts.resume_step,
                 veil::models::checkpoint_path(checkpoint_dir, opts.resume_step, my_rank));
    }
    const auto options_of_rank = [&](int rank) {
      veil::crypto::PartyOptions o = party_opts;
      if (opts.resume_step >= 0) {
        o.resume = veil::models::read_checkpoint_session(
            veil::models::checkpoint_path(checkpoint_dir, opts.resume_step, rank));
      }
      return o;
    };
    const auto t_all = std::chrono::steady_clock::now();
    std::vector<veil::models::PartyReport> reports;
    if (as_process) {
      veil::models::PartyReport mine;
      veil::crypto::run_party_process(veil::comm::SessionConfig::from_env(), my_rank,
                                      options_of_rank(my_rank), [&](veil::crypto::Party& p) {
                                        mine = veil::models::train_private(p, train, test, opts);
                                      });
      reports.push_back(std::move(mine));
    } else {
      veil::crypto::LaunchOptions lo;
      lo.world_size = parties;
      lo.party = party_opts;
      lo.party_for_rank = options_of_rank;
      lo.threads_per_party = threads;
      reports = veil::crypto::launch<veil::models::PartyReport>(lo, [&](veil::crypto::Party& p) {
        return veil::models::train_private(p, train, test, opts);
      });
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_all).count();
    if (my_rank != 0) {
      const auto& r = reports[0];
      fmt::print("party {} done: training {:.2f} s, {:.1f} MB sent, {} rounds\n", my_rank,
                 r.train_seconds, static_cast<double>(r.train_stats.total.bytes_sent) / 1e6,
                 r.train_stats.total.rounds);
      return 0;
    }
    const auto& r0 = reports[0];
    if (max_steps >= 0) {
      fmt::print("stopped after step {} as asked (--max-steps): no evaluation{}\n", max_steps,
                 checkpoint_dir.empty() ? "" : "; resume with --resume");
      return 0;
    }
    const double acc = test.size() > 0 ? veil::models::accuracy(r0.predictions, test.labels) : 0.0;
    double mb_sent = 0;
    int64_t rounds = 0;
    double dealer_mb = 0;
    for (const auto& r : reports) {
      mb_sent = std::max(mb_sent, static_cast<double>(r.train_stats.total.bytes_sent) / 1e6);
      rounds = std::max(rounds, r.train_stats.total.rounds);
      dealer_mb += static_cast<double>(r.train_stats.dealer.bytes_received) / 1e6;
    }
    fmt::print(
        "private training: {:.2f} s ({:.0f} samples/s); input sharing {:.2f} s; total "
        "wall {:.2f} s\n",
        r0.train_seconds, static_cast<double>(train.size() * epochs) / r0.train_seconds,
        r0.share_seconds, wall);
    fmt::print(
        "communication per party (training): {:.1f} MB sent, {} rounds; dealer -> party 0: "
        "{:.1f} MB\n",
        mb_sent, rounds, dealer_mb);
    if (guard_on) {
      fmt::print("divergence guard: {} failed check(s), each followed by a re-run\n",
                 r0.guard_retries);
    }
    fmt::print(
        "encrypted inference on {} test images: accuracy {:.2f}% ({:.2f} s, {:.1f} MB sent "
        "per party)\n",
        test.size(), 100 * acc, r0.eval_seconds,
        static_cast<double>(r0.eval_stats.total.bytes_sent) / 1e6);
    veil::models::PlaintextReport twin;
    if (!no_twin) {
      twin = veil::models::train_plaintext_twin(train, test, opts);
      fmt::print("plaintext float64 twin: accuracy {:.2f}% (difference {:+.2f} points), {:.2f} s\n",
                 100 * twin.test_accuracy, 100 * (acc - twin.test_accuracy), twin.train_seconds);
    }
    if (!metrics_json.empty()) {
      nlohmann::json j;
      j["model"] = std::string(veil::models::model_name(opts.model));
      j["optimizer"] = std::string(veil::models::optimizer_name(opts.optimizer));
      j["loss_scale_bits"] = loss_scale_bits;
      j["guard"] = guard_on;
      j["guard_retries"] = r0.guard_retries;
      if (opts.optimizer == veil::models::OptimizerKind::kAdam) {
        j["adam_grad_scale_bits"] = adam_grad_scale_bits;
      }
      if (opts.model == veil::models::ModelKind::kLeNet) {
        j["lenet_widths"] = {opts.lenet.conv1_channels, opts.lenet.conv2_channels,
                             opts.lenet.fc1_features, opts.lenet.fc2_features};
      }
      j["test_accuracy"] = acc;
      j["plaintext_test_accuracy"] =
          no_twin ? nlohmann::json(nullptr) : nlohmann::json(twin.test_accuracy);
      j["train_seconds"] = r0.train_seconds;
      j["plaintext_train_seconds"] =
          no_twin ? nlohmann::json(nullptr) : nlohmann::json(twin.train_seconds);
      j["parties"] = parties;
      j["samples"] = train.size();
      j["test_samples"] = test.size();
      j["epochs"] = epochs;
      j["batch_size"] = batch_size;
      j["lr"] = lr;
      j["provider"] = veil::crypto::provider_name(kind);
      j["mb_sent_per_party"] = mb_sent;
      j["rounds"] = rounds;
      j["dealer_mb_to_party0"] = dealer_mb;
      j["eval_seconds"] = r0.eval_seconds;
      j["frac_bits"] = frac_bits;
      j["threads_per_party"] = threads;
      j["transport"] = as_process ? "grpc" : "in-process";
      j["losses"] = r0.losses;
      j["predictions_digest"] = predictions_digest(r0.predictions);
      j["resumed_from_step"] =
          opts.resume_step >= 0 ? nlohmann::json(opts.resume_step) : nlohmann::json(nullptr);
      write_json_atomically(metrics_json, j);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "veil-train: error: %s\n", e.what());
    return 1;
  }
}
