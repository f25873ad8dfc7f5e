#pragma once
// veil-bench exchange: the cost of moving shares between two parties. Two endpoints run as threads
// of this process and talk over gRPC with mutual TLS on 127.0.0.1 (a throw-away PKI in a temp
// directory), next to the in-process backend:
//   * round latency: ping-pong of an 8-byte tagged message, median of --pings round trips;
//   * one share exchange (what a 2-party all_reduce does): both parties send a ring64 tensor of n
//     bytes to each other (send_tensor), then receive it (recv_tensor), as the protocols do;
//     median of the reps; throughput = n / time per direction.
//
//   veil-bench exchange --sizes 8,4096,1048576,67108864 --reps 20 [--plaintext] [--json f.json]

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "comm/communicator.h"
#include "comm/grpc/grpc_communicator.h"
#include "comm/in_process.h"
#include "comm/tls.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace veil::bench {

namespace exchange_detail {

using Clock = std::chrono::steady_clock;

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

/// Two free TCP ports on 127.0.0.1.
inline std::vector<int> free_ports(int n) {
  std::vector<int> fds;
  std::vector<int> ports;
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot find a free port on 127.0.0.1");
    }
    ports.push_back(ntohs(addr.sin_port));
    fds.push_back(fd);
  }
  for (const int fd : fds) {
    ::close(fd);
  }
  return ports;
}

struct Measurement {
  double latency_us = 0;                 // median round trip
  std::vector<double> exchange_seconds;  // per size
};

/// The measurement loop of one endpoint; rank 0's timings are the result.
inline Measurement measure(comm::Communicator& c,
                           const std::vector<int64_t>& sizes,
                           int pings,
                           int reps) {
  Measurement m;
  const int other = 1 - c.rank();
  const comm::Bytes ping(8);
  std::vector<double> rtts;
  for (int i = -10; i < pings; ++i) {  // 10 warm-up round trips
    const auto t0 = Clock::now();
    if (c.rank() == 0) {
      c.send(other, "ping", ping);
      (void)c.recv(other, "pong", 8);
    } else {
      (void)c.recv(other, "ping", 8);
      c.send(other, "pong", ping);
    }
    if (i >= 0) {
      rtts.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  m.latency_us = median(rtts) * 1e6;
  for (const int64_t n : sizes) {
    const core::Tensor share =
        core::Tensor::full<uint64_t>({n / 8}, 0x5a5a5a5a5a5a5a5aULL);  // n is a multiple of 8
    // At most ~1 GiB per size and direction, at least 3 reps.
    const int r =
        std::clamp(static_cast<int>((int64_t{1} << 30) / std::max<int64_t>(n, 1)), 3, reps);
    std::vector<double> times;
    for (int i = -1; i < r; ++i) {  // one warm-up exchange
      const auto t0 = Clock::now();
      c.send_tensor(other, "open#1", share);
      (void)c.recv_tensor(other, "open#1", share.shape(), core::DType::kRing64);
      if (i >= 0) {
        times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
    }
    m.exchange_seconds.push_back(median(times));
  }
  return m;
}

inline Measurement run_in_process(const std::vector<int64_t>& sizes, int pings, int reps) {
  comm::InProcessHub hub(2, false);
  auto f1 = std::async(std::launch::async,
                       [&] { return measure(hub.communicator(1), sizes, pings, reps); });
  Measurement m0 = measure(hub.communicator(0), sizes, pings, reps);
  (void)f1.get();
  return m0;
}

inline Measurement run_grpc(const std::vector<int64_t>& sizes,
                            int pings,
                            int reps,
                            bool plaintext,
                            std::size_t chunk_bytes,
                            const std::string& tls_dir) {
  const std::vector<int> ports = free_ports(2);
  auto options = [&](int rank) {
    comm::GrpcOptions o;
    o.rank = rank;
    o.world_size = 2;
    o.has_dealer = false;
    o.addresses = {fmt::format("127.0.0.1:{}", ports[0]), fmt::format("127.0.0.1:{}", ports[1])};
    if (plaintext) {
      o.insecure_plaintext = true;
    } else {
      o.tls = comm::tls_files_in(tls_dir, rank, 2);
    }
    o.chunk_bytes = chunk_bytes;
    o.connect_timeout = std::chrono::milliseconds(10000);
    o.timeout = std::chrono::milliseconds(120000);
    return o;
  };
  auto f1 = std::async(std::launch::async, [&] {
    auto c = comm::connect_grpc(options(1));
    return measure(*c, sizes, pings, reps);
  });
  Measurement m0;
  {
    auto c = comm::connect_grpc(options(0));
    try {
      m0 = measure(*c, sizes, pings, reps);
    } catch (...) {
      c->abort("benchmark failed");
      (void)f1.get();
      throw;
    }
  }
  (void)f1.get();
  return m0;
}

inline std::string size_str(int64_t n) {
  if (n >= (int64_t{1} << 20) && n % (int64_t{1} << 20) == 0) {
    return fmt::format("{} MiB", n >> 20);
  }
  if (n >= 1024 && n % 1024 == 0) {
    return fmt::format("{} KiB", n >> 10);
  }
  return fmt::format("{} B", n);
}

}  // namespace exchange_detail

/// Adds `exchange`: round latency and share-exchange throughput, gRPC+TLS vs in-process.
inline void add_exchange_command(CLI::App& app) {
  struct Args {
    std::vector<int64_t> sizes{8,      64,      512,     4096,     32768,
                               262144, 1048576, 4194304, 16777216, 67108864};
    int reps = 20;
    int pings = 2000;
    int chunk_kib = 1024;
    bool plaintext = false;
    std::string json;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "exchange", "2-party round latency and share-exchange throughput: gRPC+TLS vs in-process");
  cmd->add_option("--sizes", args->sizes, "share sizes in bytes (multiples of 8), comma separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--reps", args->reps, "exchanges per size (median reported)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_option("--pings", args->pings, "ping-pong round trips (median reported)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--chunk-kib", args->chunk_kib, "gRPC chunk size in KiB (4..4096)")
      ->check(CLI::Range(4, 4096))
      ->capture_default_str();
  cmd->add_flag("--plaintext", args->plaintext,
                "also measure gRPC without TLS (INSECURE; to see what TLS costs)");
  cmd->add_option("--json", args->json, "write the results as JSON to this path");
  cmd->callback([args] {
    namespace d = exchange_detail;
    for (const int64_t n : args->sizes) {
      if (n < 8 || n > (int64_t{1} << 31) || n % 8 != 0) {
        throw CLI::ValidationError(
            "--sizes", fmt::format("sizes must be multiples of 8 bytes in [8, 2 GiB], got {}", n));
      }
    }
    std::random_device rd;
    const auto dir = std::filesystem::temp_directory_path() /
                     fmt::format("veil-bench-exchange-{:08x}{:08x}", rd(), rd());
    struct Cleanup {
      std::filesystem::path p;
      ~Cleanup() {
        std::error_code ec;
        std::filesystem::remove_all(p, ec);
      }
    } cleanup{dir};
    comm::generate_test_pki(dir.string(), 2, false);
    const std::size_t chunk = static_cast<std::size_t>(args->chunk_kib) << 10U;

    const auto local = d::run_in_process(args->sizes, args->pings, args->reps);
    const auto tls = d::run_grpc(args->sizes, args->pings, args->reps, false, chunk, dir.string());
    d::Measurement plain;
    if (args->plaintext) {
      plain = d::run_grpc(args->sizes, args->pings, args->reps, true, chunk, dir.string());
    }

    fmt::print(
        "veil-bench exchange: 2 endpoints on 127.0.0.1 (threads of one process), gRPC chunk "
        "{} KiB, {} hardware threads\n",
        args->chunk_kib, std::thread::hardware_concurrency());
    fmt::print(
        "round latency (8-byte ping-pong, median of {}): in-process {:.1f} us, gRPC+TLS "
        "{:.1f} us{}\n",
        args->pings, local.latency_us, tls.latency_us,
        args->plaintext ? fmt::format(", gRPC plaintext {:.1f} us", plain.latency_us)
                        : std::string());
    fmt::print("share exchange (both send n bytes, then receive; per-direction throughput):\n");
    fmt::print("{:>10} | {:>11} {:>10} | {:>11} {:>10} {:>9}{}\n", "n", "in-proc us", "MB/s",
               "gRPC+TLS us", "MB/s", "vs local",
               args->plaintext ? fmt::format(" | {:>11} {:>10}", "plain us", "MB/s") : "");
    nlohmann::json rows = nlohmann::json::array();
    for (std::size_t i = 0; i < args->sizes.size(); ++i) {
      const auto n = static_cast<double>(args->sizes[i]);
      const double tl = local.exchange_seconds[i];
      const double tt = tls.exchange_seconds[i];
      std::string extra;
      nlohmann::json row = {{"bytes", args->sizes[i]},
                            {"in_process_seconds", tl},
                            {"grpc_tls_seconds", tt},
                            {"in_process_mb_per_s", n / tl * 1e-6},
                            {"grpc_tls_mb_per_s", n / tt * 1e-6}};
      if (args->plaintext) {
        const double tp = plain.exchange_seconds[i];
        extra = fmt::format(" | {:>11.1f} {:>10.1f}", tp * 1e6, n / tp * 1e-6);
        row["grpc_plaintext_seconds"] = tp;
        row["grpc_plaintext_mb_per_s"] = n / tp * 1e-6;
      }
      fmt::print("{:>10} | {:>11.1f} {:>10.1f} | {:>11.1f} {:>10.1f} {:>8.1f}x{}\n",
                 d::size_str(args->sizes[i]), tl * 1e6, n / tl * 1e-6, tt * 1e6, n / tt * 1e-6,
                 tt / tl, extra);
      rows.push_back(row);
    }
    if (!args->json.empty()) {
      nlohmann::json j = {
          {"benchmark", "exchange"},
          {"chunk_kib", args->chunk_kib},
          {"latency_us", {{"in_process", local.latency_us}, {"grpc_tls", tls.latency_us}}},
          {"results", rows}};
      if (args->plaintext) {
        j["latency_us"]["grpc_plaintext"] = plain.latency_us;
      }
      std::ofstream out(args->json);
      out << j.dump(2) << '\n';
      fmt::print("wrote {}\n", args->json);
    }
  });
}

}  // namespace veil::bench
