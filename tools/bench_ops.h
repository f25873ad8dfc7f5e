#pragma once
// veil-bench ops: the per-operator table of MPC_REFERENCE §5 — time, rounds, bytes sent per party
// per element and max error against float64 for each secret-shared op, at the sizes CrypTen was
// measured with (1M-element mul and ReLU, 1000x100 sigmoid and softmax, 256^3 matmul), next to
// CrypTen's figures on the same 2-core machine kind, plus the other nonlinear ops for reference.
//
// Parties run as threads of this process (in-process transport) by default; under veil-run (RANK
// and the session in the environment) each process is one party over gRPC + mutual TLS, which is
// the setting CrypTen was measured in (2 processes, gloo):
//
//   veil-bench ops [--ops relu,sigmoid] [--providers dealer,tfp] [--reps 5] [--json ops.json]
//   veil-run -n 2 -- veil-bench ops --providers dealer --json ops-grpc.json
//
// Definitions (the --json record of one op): `seconds` is the median over --reps of party 0's
// wall time for the op alone (inputs are shared before, the result is revealed after, neither is
// timed); `rounds` and `bytes_sent_per_party_per_element` come from the communicator's stats of
// one run (bytes: the largest of the parties in thread mode, this party's in process mode,
// divided by the number of OUTPUT elements; dealer traffic is not included, as in CrypTen's
// counters); `max_abs_error` is the largest |revealed - float64 reference| over the outputs of
// the last rep, or of every rep with --check-every-rep (`outputs_checked` of them;
// `gross_errors` counts those off by more than 1, the signature of a failed probabilistic
// truncation: `veil-bench ops --ops softmax --reps 3000 --check-every-rep` measures its rate).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "comm/config.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "crypto/launch.h"
#include "crypto/process.h"
#include "crypto/protocols/approx.h"
#include "crypto/protocols/arithmetic.h"
#include "crypto/protocols/nonlinear.h"
#include "crypto/providers/provider.h"

#include <time.h>

namespace veil::bench {

namespace ops_detail {

using core::Shape;
using core::Tensor;

/// One benchmarked op: its inputs' shapes and domain, the protocol, and a float64 reference.
struct OpCase {
  std::string name;
  std::vector<Shape> inputs;  // every input is secret, shared by party 0
  double lo;                  // inputs uniform in [lo, hi]
  double hi;
  std::function<crypto::AShare(crypto::Party&, const std::vector<crypto::AShare>&)> run;
  std::function<Tensor(const std::vector<Tensor>&)> reference;
  // CrypTen 0.4 on the same workload and machine kind (MPC_REFERENCE §5); 0 when not measured.
  double crypten_dealer_s = 0;
  double crypten_tfp_s = 0;
  // Minimum speedup the issue asks for (10x; 2x for the GEMM-bound matmul).
  double target_speedup = 10;
};

inline Tensor map_f64(const Tensor& x, double (*f)(double)) {
  std::vector<double> v = x.to_vector<double>();
  for (double& e : v) {
    e = f(e);
  }
  return Tensor::from_vector(v, x.shape());
}

inline Tensor softmax_rows(const Tensor& x) {
  const int64_t cols = x.shape().back();
  std::vector<double> v = x.to_vector<double>();
  for (std::size_t r = 0; r < v.size(); r += static_cast<std::size_t>(cols)) {
    const auto b = v.begin() + static_cast<std::ptrdiff_t>(r);
    const double m = *std::max_element(b, b + cols);
    double s = 0;
    for (int64_t j = 0; j < cols; ++j) {
      b[j] = std::exp(b[j] - m);
      s += b[j];
    }
    for (int64_t j = 0; j < cols; ++j) {
      b[j] /= s;
    }
  }
  return Tensor::from_vector(v, x.shape());
}

inline Tensor max_rows(const Tensor& x) {
  const int64_t cols = x.shape().back();
  const std::vector<double> v = x.to_vector<double>();
  std::vector<double> out;
  for (std::size_t r = 0; r < v.size(); r += static_cast<std::size_t>(cols)) {
    const auto b = v.begin() + static_cast<std::ptrdiff_t>(r);
    out.push_back(*std::max_element(b, b + cols));
  }
  Shape s = x.shape();
  s.pop_back();
  return Tensor::from_vector(out, s);
}

inline double relu_f(double x) {
  return x > 0 ? x : 0.0;
}
inline double sigmoid_f(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
inline double gelu_f(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}
inline double recip_f(double x) {
  return 1.0 / x;
}
inline double inv_sqrt_f(double x) {
  return 1.0 / std::sqrt(x);
}

/// The table: CrypTen's sizes first, then the other nonlinear ops at 1000x100.
inline std::vector<OpCase> all_ops() {
  namespace c = crypto;
  using In = std::vector<c::AShare>;
  using Ref = std::vector<Tensor>;
  const Shape m1{1000000};
  const Shape t1k{1000, 100};
  const Shape sq{256, 256};
  std::vector<OpCase> ops;
  auto unary = [&](std::string name, Shape s, double lo, double hi,
                   c::AShare (*fn)(c::Party&, const c::AShare&), double (*ref)(double)) {
    OpCase op;
    op.name = std::move(name);
    op.inputs = {std::move(s)};
    op.lo = lo;
    op.hi = hi;
    op.run = [fn](c::Party& p, const In& in) {
      return fn(p, in[0]);
    };
    op.reference = [ref](const Ref& r) {
      return map_f64(r[0], ref);
    };
    return op;
  };
  {
    OpCase op;
    op.name = "mul";
    op.inputs = {m1, m1};
    op.lo = -4;
    op.hi = 4;
    op.run = [](c::Party& p, const In& in) {
      return c::mul(p, in[0], in[1]);
    };
    op.reference = [](const Ref& r) {
      return core::mul(r[0], r[1]);
    };
    op.crypten_dealer_s = 0.118;
    op.crypten_tfp_s = 0.115;
    ops.push_back(op);
  }
  {
    OpCase op;
    op.name = "matmul";
    op.inputs = {sq, sq};
    op.lo = -1;
    op.hi = 1;
    op.run = [](c::Party& p, const In& in) {
      return c::matmul(p, in[0], in[1]);
    };
    op.reference = [](const Ref& r) {
      return core::matmul(r[0], r[1]);
    };
    op.crypten_dealer_s = 0.036;
    op.crypten_tfp_s = 0.036;
    op.target_speedup = 2;
    ops.push_back(op);
  }
  {
    OpCase op = unary(
        "relu", m1, -5, 5, [](c::Party& p, const c::AShare& x) { return c::relu(p, x).out; },
        relu_f);
    op.crypten_dealer_s = 1.35;
    op.crypten_tfp_s = 2.03;
    ops.push_back(op);
  }
  {
    OpCase op = unary(
        "sigmoid", t1k, -10, 10, [](c::Party& p, const c::AShare& x) { return c::sigmoid(p, x); },
        sigmoid_f);
    op.crypten_dealer_s = 0.346;
    op.crypten_tfp_s = 0.287;
    ops.push_back(op);
  }
  {
    OpCase op;
    op.name = "softmax";
    op.inputs = {t1k};
    op.lo = -5;
    op.hi = 5;
    op.run = [](c::Party& p, const In& in) {
      return c::softmax(p, in[0]);
    };
    op.reference = [](const Ref& r) {
      return softmax_rows(r[0]);
    };
    op.crypten_dealer_s = 0.983;
    op.crypten_tfp_s = 0.645;
    ops.push_back(op);
  }
  {
    OpCase op;
    op.name = "lt";
    op.inputs = {m1, m1};
    op.lo = -5;
    op.hi = 5;
    op.run = [](c::Party& p, const In& in) {
      return c::lt(p, in[0], in[1]);
    };
    op.reference = [](const Ref& r) {
      std::vector<double> a = r[0].to_vector<double>();
      const std::vector<double> b = r[1].to_vector<double>();
      for (std::size_t i = 0; i < a.size(); ++i) {
        a[i] = a[i] < b[i] ? 1.0 : 0.0;
      }
      return Tensor::from_vector(a, r[0].shape());
    };
    ops.push_back(op);
  }
  {
    OpCase op;
    op.name = "max_dim10";
    op.inputs = {Shape{10000, 10}};
    op.lo = -5;
    op.hi = 5;
    op.run = [](c::Party& p, const In& in) {
      return c::max_lastdim(p, in[0]).values;
    };
    op.reference = [](const Ref& r) {
      return max_rows(r[0]);
    };
    ops.push_back(op);
  }
  ops.push_back(unary(
      "tanh", t1k, -10, 10, [](c::Party& p, const c::AShare& x) { return c::tanh(p, x); },
      [](double x) { return std::tanh(x); }));
  ops.push_back(unary(
      "exp", t1k, -4, 4, [](c::Party& p, const c::AShare& x) { return c::exp(p, x); },
      [](double x) { return std::exp(x); }));
  ops.push_back(unary(
      "log", t1k, 1, 20, [](c::Party& p, const c::AShare& x) { return c::log(p, x); },
      [](double x) { return std::log(x); }));
  ops.push_back(unary(
      "reciprocal", t1k, 0.1, 10,
      [](c::Party& p, const c::AShare& x) { return c::reciprocal(p, x); }, recip_f));
  ops.push_back(unary(
      "sqrt", t1k, 0.1, 100, [](c::Party& p, const c::AShare& x) { return c::sqrt(p, x); },
      [](double x) { return std::sqrt(x); }));
  ops.push_back(unary(
      "inv_sqrt", t1k, 0.1, 100, [](c::Party& p, const c::AShare& x) { return c::inv_sqrt(p, x); },
      inv_sqrt_f));
  ops.push_back(unary(
      "erf", t1k, -3, 3, [](c::Party& p, const c::AShare& x) { return c::erf(p, x); },
      [](double x) { return std::erf(x); }));
  ops.push_back(unary(
      "gelu", t1k, -6, 6, [](c::Party& p, const c::AShare& x) { return c::gelu(p, x); }, gelu_f));
  return ops;
}

/// Uniform [lo, hi] float64 values from a fixed seed (public: the same on every party).
inline Tensor uniform_input(const Shape& s, double lo, double hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  int64_t n = 1;
  for (const int64_t d : s) {
    n *= d;
  }
  std::vector<double> v(static_cast<std::size_t>(n));
  for (double& e : v) {
    e = dist(rng);
  }
  return Tensor::from_vector(v, s);
}

/// CPU time of this process (every thread), seconds.
inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// What one party measured for one op.
struct PartyMeasurement {
  double seconds = 0;      // median of the reps (party 0's clock is the one reported)
  double cpu_seconds = 0;  // process CPU time (all threads) during party 0's median rep
  int64_t rounds = 0;
  int64_t bytes_sent = 0;
  int64_t out_numel = 0;
  double max_abs_error = 0;
  int64_t elements_checked = 0;  // outputs compared with the reference (all reps' or the last's)
  int64_t gross_errors = 0;      // of those, outputs off by more than kGrossError
};

/// An output error far beyond every op's accuracy target: what a failed probabilistic
/// truncation (an error of about 2^(64 - 2f) in value) or a protocol bug produces.
constexpr double kGrossError = 1.0;

/// Runs `op` on party p: shares the inputs from party 0, reps timed runs, then reveals the last
/// output (or, with check_every_rep, every rep's output, outside the timed part) and compares it
/// with the float64 reference.
inline PartyMeasurement measure_op(crypto::Party& p,
                                   const OpCase& op,
                                   int reps,
                                   bool check_every_rep = false) {
  std::vector<Tensor> plain;
  std::vector<crypto::AShare> shares;
  uint64_t seed = 1;
  for (const Shape& s : op.inputs) {
    plain.push_back(uniform_input(s, op.lo, op.hi, seed++));
    shares.push_back(crypto::share(p, p.rank() == 0 ? plain.back() : Tensor(), 0, s));
  }
  PartyMeasurement m;
  std::vector<std::pair<double, double>> times;  // (wall, cpu)
  crypto::AShare out;
  std::vector<double> want;
  auto check = [&](const crypto::AShare& y) {
    const std::vector<double> got = crypto::reveal_float(p, y).to_vector<double>();
    if (want.empty()) {
      want = op.reference(plain).to_vector<double>();
    }
    for (std::size_t i = 0; i < got.size(); ++i) {
      const double err = std::abs(got[i] - want[i]);
      m.max_abs_error = std::max(m.max_abs_error, err);
      m.gross_errors += static_cast<int64_t>(!(err <= kGrossError));
    }
    m.elements_checked += static_cast<int64_t>(got.size());
  };
  for (int r = 0; r < reps; ++r) {
    const auto before = p.comm().stats();
    const double c0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    out = op.run(p, shares);
    const auto t1 = std::chrono::steady_clock::now();
    const double c1 = process_cpu_seconds();
    const auto d = p.comm().stats() - before;
    times.push_back({std::chrono::duration<double>(t1 - t0).count(), c1 - c0});
    m.rounds = d.total.rounds;
    m.bytes_sent = d.total.bytes_sent;
    if (check_every_rep) {
      check(out);
    }
  }
  std::sort(times.begin(), times.end());
  m.seconds = times[times.size() / 2].first;
  m.cpu_seconds = times[times.size() / 2].second;
  m.out_numel = out.numel();
  if (!check_every_rep) {
    check(out);
  }
  return m;
}

/// Single-thread ring GEMM multiply-adds per second at 256^3 (the local work of the matmul).
inline double ring_gemm_macs_per_core() {
  std::mt19937_64 rng(7);
  std::vector<uint64_t> a(256 * 256);
  std::vector<uint64_t> b(256 * 256);
  for (auto& x : a) {
    x = rng();
  }
  for (auto& x : b) {
    x = rng();
  }
  const Tensor ta = Tensor::from_vector(a, {256, 256});
  const Tensor tb = Tensor::from_vector(b, {256, 256});
  const int saved = core::num_threads();
  core::set_num_threads(1);
  std::vector<double> times;
  (void)core::matmul(ta, tb);
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    (void)core::matmul(ta, tb);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  core::set_num_threads(saved);
  std::sort(times.begin(), times.end());
  return 256.0 * 256.0 * 256.0 / times[times.size() / 2];
}

}  // namespace ops_detail

/// Adds `ops`: the per-op table (see the file comment).
inline void add_ops_command(CLI::App& app) {
  struct Args {
    int parties = 2;
    int reps = 5;
    int threads = 0;
    bool check_every_rep = false;
    std::string json;
    std::vector<std::string> providers{"dealer", "tfp"};
    std::vector<std::string> only;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "ops", "per-op time, rounds, bytes and max error at CrypTen's sizes, vs CrypTen");
  cmd->add_option("--parties", args->parties, "parties (threads; under veil-run: its -n)")
      ->check(CLI::Range(2, 16));
  cmd->add_option("--reps", args->reps, "timed repetitions per op (median reported)")
      ->check(CLI::Range(1, 100000));
  cmd->add_flag("--check-every-rep", args->check_every_rep,
                "reveal and check every rep's output (not only the last), counting outputs off by "
                "more than 1 (failed probabilistic truncations)");
  cmd->add_option("--threads", args->threads,
                  "intra-op threads per party (0: parties in one process share its cores; a party "
                  "process uses all)");
  cmd->add_option("--providers", args->providers, "providers: dealer, tfp")->delimiter(',');
  cmd->add_option("--ops", args->only, "only these ops (comma separated names)")->delimiter(',');
  cmd->add_option("--json", args->json, "write one record per (op, provider) to this file");
  cmd->callback([args] {
    using namespace ops_detail;
    std::vector<OpCase> ops;
    for (auto& op : all_ops()) {
      if (args->only.empty() ||
          std::find(args->only.begin(), args->only.end(), op.name) != args->only.end()) {
        ops.push_back(std::move(op));
      }
    }
    if (ops.empty()) {
      throw CLI::ValidationError("--ops", "no known op selected");
    }
    const bool as_process = crypto::launched_as_process();
    int my_rank = 0;
    int parties = args->parties;
    if (as_process) {
      my_rank = *comm::rank_from_env();
      parties = comm::SessionConfig::from_env().world_size;
      if (args->threads > 0) {
        core::set_num_threads(args->threads);
      }
    }
    const double gemm_rate = my_rank == 0 ? ring_gemm_macs_per_core() : 0.0;
    if (my_rank == 0) {
      fmt::print("veil-bench ops: {} parties as {}, median of {} reps\n", parties,
                 as_process ? "processes (gRPC + mutual TLS)" : "threads (in-process)", args->reps);
      fmt::print("{:<8} {:<11} {:>14} {:>10} {:>8} {:>7} {:>10} {:>10} {:>10} {:>9}\n", "provider",
                 "op", "shape", "seconds", "cpu_s", "rounds", "B/elem", "max_err", "CrypTen_s",
                 "speedup");
    }
    nlohmann::json records = nlohmann::json::array();
    for (const auto& name : args->providers) {
      const auto kind = crypto::parse_provider(name);
      crypto::PartyOptions po;
      po.provider = kind;
      po.insecure = kind == crypto::ProviderKind::kTrustedFirstParty;
      po.program_id = "veil-bench ops";
      // One session per provider runs every op in turn.
      auto run_all = [&](crypto::Party& p) {
        std::vector<PartyMeasurement> ms;
        for (const OpCase& op : ops) {
          ms.push_back(measure_op(p, op, args->reps, args->check_every_rep));
        }
        return ms;
      };
      std::vector<PartyMeasurement> mine;
      if (as_process) {
        crypto::run_party_process(comm::SessionConfig::from_env(), my_rank, po,
                                  [&](crypto::Party& p) { mine = run_all(p); });
      } else {
        crypto::LaunchOptions lo;
        lo.world_size = parties;
        lo.party = po;
        lo.threads_per_party = args->threads;
        const auto all = crypto::launch<std::vector<PartyMeasurement>>(lo, run_all);
        mine = all[0];
        for (const auto& other : all) {
          for (std::size_t i = 0; i < mine.size(); ++i) {
            mine[i].bytes_sent = std::max(mine[i].bytes_sent, other[i].bytes_sent);
            mine[i].rounds = std::max(mine[i].rounds, other[i].rounds);
          }
        }
      }
      for (std::size_t oi = 0; oi < ops.size(); ++oi) {
        const OpCase& op = ops[oi];
        const PartyMeasurement& m = mine[oi];
        if (my_rank != 0) {
          continue;
        }
        const double per_elem = static_cast<double>(m.bytes_sent) /
                                static_cast<double>(std::max<int64_t>(m.out_numel, 1));
        const double crypten =
            kind == crypto::ProviderKind::kDealer ? op.crypten_dealer_s : op.crypten_tfp_s;
        std::vector<std::string> parts;
        for (const Shape& in : op.inputs) {
          parts.push_back(fmt::format("{}", fmt::join(in, "x")));
        }
        const std::string shape = fmt::format("{}", fmt::join(parts, ","));
        fmt::print(
            "{:<8} {:<11} {:>14} {:>10.4f} {:>8.4f} {:>7} {:>10.2f} {:>10.2e} {:>10} {:>9}\n", name,
            op.name, shape, m.seconds, m.cpu_seconds, m.rounds, per_elem, m.max_abs_error,
            crypten > 0 ? fmt::format("{:.3f}", crypten) : "-",
            crypten > 0 ? fmt::format("{:.1f}x", crypten / m.seconds) : "-");
        if (args->check_every_rep) {
          fmt::print(
              "{:<8} {:<11} outputs checked {}, off by more than {}: {} ({:.2e} per output)\n",
              name, op.name, m.elements_checked, kGrossError, m.gross_errors,
              static_cast<double>(m.gross_errors) /
                  static_cast<double>(std::max<int64_t>(m.elements_checked, 1)));
        }
        nlohmann::json rec = {{"op", op.name},
                              {"shape", op.inputs},
                              {"parties", parties},
                              {"provider", name},
                              {"transport", as_process ? "grpc+tls" : "in-process"},
                              {"seconds", m.seconds},
                              {"cpu_seconds_all_parties", m.cpu_seconds},
                              {"rounds", m.rounds},
                              {"bytes_sent_per_party_per_element", per_elem},
                              {"max_abs_error", m.max_abs_error},
                              {"outputs_checked", m.elements_checked},
                              {"gross_errors", m.gross_errors},
                              {"input_domain", {op.lo, op.hi}}};
        if (crypten > 0) {
          rec["crypten_seconds"] = crypten;
          rec["speedup_vs_crypten"] = crypten / m.seconds;
          rec["target_speedup"] = op.target_speedup;
        }
        if (op.name == "matmul") {
          rec["ring_gemm_macs_per_second_per_core"] = gemm_rate;
        }
        records.push_back(rec);
      }
    }
    if (my_rank == 0) {
      fmt::print("ring GEMM 256^3, one core: {:.2f} G multiply-adds/s\n", gemm_rate * 1e-9);
    }
    if (!args->json.empty() && my_rank == 0) {
      const std::string tmp = args->json + ".tmp";
      {
        std::ofstream out(tmp);
        if (!out) {
          throw std::runtime_error(fmt::format("cannot open '{}' for writing", tmp));
        }
        out << records.dump(2) << "\n";
      }
      std::filesystem::rename(tmp, args->json);
      fmt::print("wrote {}\n", args->json);
    }
  });
}

}  // namespace veil::bench
