// veil-bench: throughput benchmarks. Each subcommand lives in its own add_<name>_command(CLI::App&)
// function below; to add one (e.g. an MPC training-epoch benchmark), write such a function and
// call it from main().
//
//   veil-bench gemm --sizes 256,512,1024 --threads 2 --reps 5 --json gemm.json

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/cpu/gemm.h"

#include "tools/bench_exchange.h"
#include "tools/bench_gpu.h"
#include "tools/bench_ops.h"
#include "tools/bench_train_epoch.h"

namespace {

// ---- shared helpers ----------------------------------------------------------------------------

/// Median wall time in seconds of `reps` calls of fn, after one untimed warm-up call.
template <class F>
double median_seconds(int reps, F&& fn) {
  fn();
  std::vector<double> times;
  times.reserve(static_cast<std::size_t>(reps));
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const auto t1 = std::chrono::steady_clock::now();
    times.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  std::sort(times.begin(), times.end());
  const std::size_t mid = times.size() / 2;
  return times.size() % 2 == 1 ? times[mid] : 0.5 * (times[mid - 1] + times[mid]);
}

int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream out(path);
  if (!out) {
    throw std::runtime_error(fmt::format("cannot open '{}' for writing", path));
  }
  out << j.dump(2) << '\n';
}

// ---- gemm --------------------------------------------------------------------------------------

struct GemmBenchOptions {
  std::vector<int64_t> sizes{256, 512, 1024, 2048};
  int threads = 0;  // 0: all hardware threads
  int reps = 5;
  std::string json_path;
};

veil::core::Tensor random_ring(int64_t rows, int64_t cols, std::mt19937_64& rng) {
  std::vector<uint64_t> v(static_cast<std::size_t>(rows * cols));
  for (auto& x : v) {
    x = rng();
  }
  return veil::core::Tensor::from_vector(v, {rows, cols});
}

veil::core::Tensor random_f64(int64_t rows, int64_t cols, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(static_cast<std::size_t>(rows * cols));
  for (auto& x : v) {
    x = dist(rng);
  }
  return veil::core::Tensor::from_vector(v, {rows, cols});
}

void run_gemm_bench(const GemmBenchOptions& opt) {
  if (opt.reps < 1) {
    throw CLI::ValidationError("--reps", "must be >= 1");
  }
  const int max_threads = opt.threads > 0 ? opt.threads : hardware_threads();
  std::vector<int> thread_counts{1};
  if (max_threads > 1) {
    thread_counts.push_back(max_threads);
  }
  const char* isa = veil::kernels::cpu::gemm_isa_name(veil::kernels::cpu::GemmIsa::kAuto);
  fmt::print(
      "veil-bench gemm: square [n, n] @ [n, n], median of {} reps after a warm-up; "
      "kernel isa {}, hardware threads {}\n",
      opt.reps, isa, hardware_threads());
  fmt::print("{:>6} {:>7} | {:>10} {:>12} {:>14} | {:>10} {:>10} {:>14}\n", "n", "threads",
             "ring ms", "ring GMAC/s", "GMAC/s/core", "f64 ms", "f64 GFLOP/s", "GFLOP/s/core");

  nlohmann::json results = nlohmann::json::array();
  std::mt19937_64 rng(20240601);
  for (const int64_t n : opt.sizes) {
    if (n < 1) {
      throw CLI::ValidationError("--sizes", fmt::format("sizes must be >= 1, got {}", n));
    }
    const veil::core::Tensor ra = random_ring(n, n, rng);
    const veil::core::Tensor rb = random_ring(n, n, rng);
    const veil::core::Tensor fa = random_f64(n, n, rng);
    const veil::core::Tensor fb = random_f64(n, n, rng);
    const double macs = static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
    double ring_single = 0.0;
    double f64_single = 0.0;
    for (const int t : thread_counts) {
      veil::core::set_num_threads(t);
      const double ring_s = median_seconds(opt.reps, [&] { (void)veil::core::matmul(ra, rb); });
      const double f64_s = median_seconds(opt.reps, [&] { (void)veil::core::matmul(fa, fb); });
      if (t == 1) {
        ring_single = ring_s;
        f64_single = f64_s;
      }
      const double ring_gmacs = macs / ring_s * 1e-9;
      const double f64_gflops = 2.0 * macs / f64_s * 1e-9;
      fmt::print("{:>6} {:>7} | {:>10.3f} {:>12.2f} {:>14.2f} | {:>10.3f} {:>10.2f} {:>14.2f}\n", n,
                 t, ring_s * 1e3, ring_gmacs, ring_gmacs / t, f64_s * 1e3, f64_gflops,
                 f64_gflops / t);
      results.push_back({{"n", n},
                         {"threads", t},
                         {"ring_seconds", ring_s},
                         {"ring_macs_per_second", ring_gmacs * 1e9},
                         {"ring_macs_per_second_per_core", ring_gmacs * 1e9 / t},
                         {"ring_speedup_vs_1_thread", ring_single / ring_s},
                         {"f64_seconds", f64_s},
                         {"f64_flops_per_second", f64_gflops * 1e9},
                         {"f64_flops_per_second_per_core", f64_gflops * 1e9 / t},
                         {"f64_speedup_vs_1_thread", f64_single / f64_s}});
    }
    if (thread_counts.size() > 1) {
      const auto& last = results.back();
      fmt::print("{:>6} speedup {} vs 1 thread: ring {:.2f}x, f64 {:.2f}x\n", n, max_threads,
                 last["ring_speedup_vs_1_thread"].get<double>(),
                 last["f64_speedup_vs_1_thread"].get<double>());
    }
  }
  if (!opt.json_path.empty()) {
    write_json(opt.json_path, {{"benchmark", "gemm"},
                               {"isa", isa},
                               {"hardware_threads", hardware_threads()},
                               {"reps", opt.reps},
                               {"results", results}});
    fmt::print("wrote {}\n", opt.json_path);
  }
}

/// Adds `gemm`: ring64 and float64 matmul throughput for square sizes, 1 vs N threads.
void add_gemm_command(CLI::App& app) {
  auto opt = std::make_shared<GemmBenchOptions>();
  CLI::App* cmd =
      app.add_subcommand("gemm", "ring64 (mod 2^64) and float64 matmul throughput, 1 vs N threads");
  cmd->add_option("--sizes", opt->sizes, "square matrix sizes, comma separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--threads", opt->threads, "threads for the multithreaded run (0: all hardware)")
      ->capture_default_str();
  cmd->add_option("--reps", opt->reps, "timed repetitions per measurement (median reported)")
      ->capture_default_str();
  cmd->add_option("--json", opt->json_path, "also write the results as JSON to this path");
  cmd->callback([opt] { run_gemm_bench(*opt); });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"veil-bench: veil throughput benchmarks"};
  app.require_subcommand(1);
  add_gemm_command(app);
  veil::bench::add_train_epoch_command(app);
  veil::bench::add_exchange_command(app);
  veil::bench::add_ops_command(app);
  veil::bench::add_gpu_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "veil-bench: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
