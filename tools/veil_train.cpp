// veil-train: the main job. Trains a 784-128-10 MLP privately on Fashion-MNIST with N parties
// (threads of this process, in-process transport), each owning its own training rows; evaluates
// by encrypted inference on the test set (only predicted labels revealed); trains the float64
// plaintext twin with identical initial weights and batch order for comparison.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "comm/config.h"
#include "core/parallel.h"
#include "crypto/launch.h"
#include "crypto/process.h"
#include "models/data.h"
#include "models/private_training.h"

#include <unistd.h>

namespace {

void write_json_atomically(const std::string& path, const nlohmann::json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) {
      throw veil::IoError(fmt::format("[veil-train] cannot write '{}'", tmp));
    }
    out << j.dump(2) << "\n";
    if (!out.flush()) {
      throw veil::IoError(fmt::format("[veil-train] write to '{}' failed", tmp));
    }
  }
  std::filesystem::rename(tmp, path);
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "veil-train: private training of an MLP on Fashion-MNIST (secret-shared data, "
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
  app.add_option("--parties", parties, "number of parties (>= 2)")->check(CLI::Range(2, 64));
  app.add_option("--epochs", epochs, "training epochs")
      ->check(CLI::Range(int64_t{0}, int64_t{1000}));
  app.add_option("--batch-size", batch_size, "batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--lr", lr, "SGD learning rate")->check(CLI::PositiveNumber);
  app.add_option("--momentum", momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0));
  app.add_option("--weight-decay", weight_decay, "SGD weight decay")->check(CLI::NonNegativeNumber);
  app.add_option("--samples", samples, "training rows used (the first N of the 60,000)")
      ->check(CLI::Range(int64_t{1}, int64_t{60000}));
  app.add_option("--test-samples", test_samples, "test rows evaluated (the first N of 10,000)")
      ->check(CLI::Range(int64_t{0}, int64_t{10000}));
  app.add_option("--provider", provider,
                 "correlated randomness: 'dealer' (trusted third party, default) or 'tfp' "
                 "(INSECURE trusted first party; needs --insecure)");
  app.add_flag("--insecure", insecure, "allow insecure shortcuts (the tfp provider)");
  app.add_option("--seed", seed, "public seed: initial weights and batch order");
  app.add_option("--threads", threads, "intra-op threads per party (0: all cores)")
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
    opts.epochs = epochs;
    opts.batch_size = batch_size;
    opts.lr = lr;
    opts.momentum = momentum;
    opts.weight_decay = weight_decay;
    opts.seed = seed;
    opts.progress_every = progress_every;
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
    party_opts.provider = kind;
    party_opts.insecure = insecure;
    party_opts.frac_bits = frac_bits;
    party_opts.program_id =
        fmt::format("veil-train mlp 784-128-10 samples={} batch={} lr={} seed={}", samples,
                    batch_size, lr, seed);
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
    if (my_rank != 0) {
      opts.on_progress = nullptr;
    }
    const auto t_all = std::chrono::steady_clock::now();
    std::vector<veil::models::PartyReport> reports;
    if (as_process) {
      veil::models::PartyReport mine;
      veil::crypto::run_party_process(
          veil::comm::SessionConfig::from_env(), my_rank, party_opts, [&](veil::crypto::Party& p) {
            mine = veil::models::train_private_mlp(p, train, test, opts);
          });
      reports.push_back(std::move(mine));
    } else {
      veil::crypto::LaunchOptions lo;
      lo.world_size = parties;
      lo.party = party_opts;
      lo.threads_per_party = threads;
      reports = veil::crypto::launch<veil::models::PartyReport>(lo, [&](veil::crypto::Party& p) {
        return veil::models::train_private_mlp(p, train, test, opts);
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
      write_json_atomically(metrics_json, j);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "veil-train: error: %s\n", e.what());
    return 1;
  }
}
