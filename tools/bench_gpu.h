#pragma once
// veil-bench gpu: GPU throughput of veil's ring GEMM and elementwise protocol kernels.
//
//   veil-bench gpu --device cuda [--sizes 4096,8192] [--reps 5] [--warmup 2] [--json gpu.json]
//
// For each square size n (m = n = k): the ring GEMM mod 2^64 on INT8 tensor cores
// (kernels/cuda_gemm.h), the SIMT uint64 kernel, CrypTen's float64 method (4 x 16-bit limbs, 10
// cuBLAS DGEMMs), and cuBLAS FP32 and TF32 SGEMM; each is checked against the CPU on a sample of
// output entries before it is timed (CUDA events, median of --reps after --warmup runs), and
// reported as multiply-adds per second (m n k / s). Then the elementwise bandwidth check:
// device-to-device copy vs the fused Beaver output kernel and ring addition, in bytes moved per
// second. Goals of the GPU issue: >= 20 T ring MAC/s on H100, elementwise >= 70% of copy.
// Without a CUDA device it prints "SKIPPED: no CUDA device" and exits 0.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kernels/cuda_backend.h"
#include "kernels/cuda_dnn.h"
#include "kernels/cuda_gemm.h"

namespace veil::bench {

namespace gpu_detail {

namespace kc = kernels::cuda;

inline double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 == 1 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

/// Device memory for the benchmark (freed at scope exit).
class DeviceBuffer {
 public:
  DeviceBuffer(std::size_t bytes, int device)
      : device_(device), bytes_(bytes), ptr_(kc::device_alloc(bytes, device)) {}
  ~DeviceBuffer() { kc::device_free(ptr_, device_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  void upload(const void* src) { kc::copy_to_device(ptr_, src, bytes_, device_); }

 private:
  int device_;
  std::size_t bytes_;
  void* ptr_;
};

/// Element (i, j) of a row-major device matrix with row length ld.
template <class T>
T fetch(const T* dev, int64_t i, int64_t j, int64_t ld, int device) {
  T v{};
  kc::copy_to_host(&v, dev + i * ld + j, sizeof(T), device);
  return v;
}

struct Sample {
  int64_t i;
  int64_t j;
};

inline std::vector<Sample> sample_points(int64_t m, int64_t n, int count, std::mt19937_64& rng) {
  std::vector<Sample> s{{0, 0}, {m - 1, n - 1}};
  for (int t = 0; t < count; ++t) {
    s.push_back({static_cast<int64_t>(rng() % static_cast<uint64_t>(m)),
                 static_cast<int64_t>(rng() % static_cast<uint64_t>(n))});
  }
  return s;
}

struct Options {
  std::string device = "cuda";
  std::vector<int64_t> sizes{4096, 8192};
  int reps = 5;
  int warmup = 2;
  int64_t elements = int64_t{1} << 26;
  std::string json_path;
};

struct Record {
  std::string name;
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  double seconds = 0;
  double rate = 0;  // MAC/s for GEMMs, bytes/s for elementwise
  bool verified = false;
};

inline void run(const Options& opt) {
  if (opt.reps < 1 || opt.warmup < 0) {
    throw CLI::ValidationError("--reps/--warmup", "need reps >= 1 and warmup >= 0");
  }
  if (kc::device_count() == 0) {
    fmt::print("SKIPPED: no CUDA device{}\n",
               kc::compiled() ? "" : " (veil built without CUDA: -DVEIL_WITH_CUDA=ON)");
    return;
  }
  const int dev = 0;
  const kc::DeviceInfo info = kc::device_info(dev);
  const std::string device_name =
      fmt::format("{} (cc {}.{})", info.name, info.cc_major, info.cc_minor);
  fmt::print(
      "veil-bench gpu: {}, compute capability {}.{}, {} SMs, {:.1f} GiB, driver {}, runtime {}\n",
      info.name, info.cc_major, info.cc_minor, info.sm_count,
      static_cast<double>(info.total_bytes) / (1024.0 * 1024.0 * 1024.0), info.driver_version,
      info.runtime_version);
  const bool tc = kc::ring_gemm_effective_algo(dev) == kc::RingGemmAlgo::kTensorCore;
  fmt::print("ring GEMM tensor-core path: {}; median of {} reps after {} warm-up runs\n",
             tc ? "INT8 tensor cores (cuBLASLt)" : "unavailable (SIMT fallback)", opt.reps,
             opt.warmup);
  fmt::print("float64 convolutions: {}\n", kc::dnn_available()
                                               ? "cuDNN (libcudnn.so.9)"
                                               : "im2col + cuBLAS (cuDNN not loadable)");
  std::vector<Record> records;
  std::mt19937_64 rng(20250101);
  auto time_s = [&](const std::function<void()>& fn) {
    return median_of(kc::time_gpu_ms(dev, opt.warmup, opt.reps, fn)) * 1e-3;
  };
  auto report = [&](const Record& r, const char* unit, double scale) {
    fmt::print("{:<22} {:>6}x{:<6}x{:<6} {:>10.3f} ms {:>10.2f} {} {}\n", r.name, r.m, r.n, r.k,
               r.seconds * 1e3, r.rate * scale, unit, r.verified ? "verified" : "MISMATCH");
    records.push_back(r);
  };

  bool all_ok = true;
  for (const int64_t n : opt.sizes) {
    if (n < 1) {
      throw CLI::ValidationError("--sizes", fmt::format("sizes must be >= 1, got {}", n));
    }
    const auto count = static_cast<std::size_t>(n * n);
    const double macs = static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
    const auto samples = sample_points(n, n, 62, rng);
    // ---- ring GEMMs ----
    {
      std::vector<uint64_t> a(count);
      std::vector<uint64_t> b(count);
      for (auto& x : a) {
        x = rng();
      }
      for (auto& x : b) {
        x = rng();
      }
      std::vector<uint64_t> want;
      for (const Sample& s : samples) {
        uint64_t acc = 0;
        for (int64_t p = 0; p < n; ++p) {
          acc +=
              a[static_cast<std::size_t>(s.i * n + p)] * b[static_cast<std::size_t>(p * n + s.j)];
        }
        want.push_back(acc);
      }
      DeviceBuffer da(count * 8, dev);
      DeviceBuffer db(count * 8, dev);
      DeviceBuffer dc(count * 8, dev);
      da.upload(a.data());
      db.upload(b.data());
      a.clear();
      a.shrink_to_fit();
      b.clear();
      b.shrink_to_fit();
      struct RingCase {
        const char* name;
        std::function<void()> fn;
      };
      const std::vector<RingCase> cases = {
          {"ring_tensor_core",
           [&] {
             kc::ring_gemm_ex(kc::RingGemmAlgo::kTensorCore, n, n, n, da.as<uint64_t>(), n, false,
                              db.as<uint64_t>(), n, false, dc.as<uint64_t>(), n, dev);
           }},
          {"ring_simt",
           [&] {
             kc::ring_gemm_ex(kc::RingGemmAlgo::kSimt, n, n, n, da.as<uint64_t>(), n, false,
                              db.as<uint64_t>(), n, false, dc.as<uint64_t>(), n, dev);
           }},
          {"ring_f64_limbs_crypten",
           [&] {
             kc::limb_f64_ring_gemm(n, n, n, da.as<uint64_t>(), db.as<uint64_t>(),
                                    dc.as<uint64_t>(), dev);
           }},
      };
      for (const RingCase& rc : cases) {
        kc::zero(dc.as<void>(), count * 8, dev);
        rc.fn();
        bool ok = true;
        for (std::size_t t = 0; t < samples.size(); ++t) {
          ok = ok && fetch(dc.as<uint64_t>(), samples[t].i, samples[t].j, n, dev) == want[t];
        }
        all_ok = all_ok && ok;
        Record r{rc.name, n, n, n, 0, 0, ok};
        r.seconds = time_s(rc.fn);
        r.rate = macs / r.seconds;
        report(r, "T MAC/s", 1e-12);
      }
    }
    // ---- float GEMMs ----
    {
      std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
      std::vector<float> a(count);
      std::vector<float> b(count);
      for (auto& x : a) {
        x = dist(rng);
      }
      for (auto& x : b) {
        x = dist(rng);
      }
      std::vector<double> want;
      for (const Sample& s : samples) {
        double acc = 0;
        for (int64_t p = 0; p < n; ++p) {
          acc += static_cast<double>(a[static_cast<std::size_t>(s.i * n + p)]) *
                 static_cast<double>(b[static_cast<std::size_t>(p * n + s.j)]);
        }
        want.push_back(acc);
      }
      DeviceBuffer da(count * 4, dev);
      DeviceBuffer db(count * 4, dev);
      DeviceBuffer dc(count * 4, dev);
      da.upload(a.data());
      db.upload(b.data());
      for (const bool tf32 : {false, true}) {
        auto fn = [&] {
          kc::float_gemm(static_cast<int>(kc::Elem::kF32), tf32, n, n, n, da.as<float>(), n, false,
                         db.as<float>(), n, false, dc.as<float>(), n, dev);
        };
        fn();
        // |sum| <= n; FP32 error ~ n 2^-24, TF32 ~ sqrt(n) 2^-11 per output (inputs rounded).
        const double tol = tf32 ? 4e-3 * std::sqrt(static_cast<double>(n)) + 1e-3
                                : 1e-6 * static_cast<double>(n) + 1e-5;
        bool ok = true;
        for (std::size_t t = 0; t < samples.size(); ++t) {
          const double got = fetch(dc.as<float>(), samples[t].i, samples[t].j, n, dev);
          ok = ok && std::abs(got - want[t]) <= tol;
        }
        all_ok = all_ok && ok;
        Record r{tf32 ? "tf32_sgemm" : "fp32_sgemm", n, n, n, 0, 0, ok};
        r.seconds = time_s(fn);
        r.rate = macs / r.seconds;
        report(r, "T MAC/s", 1e-12);
      }
    }
  }

  // ---- elementwise bandwidth ----
  {
    const int64_t ne = opt.elements;
    const auto bytes = static_cast<std::size_t>(ne) * 8;
    std::vector<uint64_t> host(static_cast<std::size_t>(ne));
    std::vector<std::unique_ptr<DeviceBuffer>> buf;
    std::vector<std::vector<uint64_t>> samples_in;  // first 64 elements of each input
    for (int t = 0; t < 6; ++t) {
      for (auto& x : host) {
        x = rng();
      }
      buf.push_back(std::make_unique<DeviceBuffer>(bytes, dev));
      buf.back()->upload(host.data());
      samples_in.emplace_back(host.begin(), host.begin() + std::min<int64_t>(ne, 64));
    }
    host.clear();
    host.shrink_to_fit();
    uint64_t* e = buf[0]->as<uint64_t>();
    uint64_t* d = buf[1]->as<uint64_t>();
    uint64_t* a = buf[2]->as<uint64_t>();
    uint64_t* b = buf[3]->as<uint64_t>();
    uint64_t* c = buf[4]->as<uint64_t>();
    uint64_t* z = buf[5]->as<uint64_t>();
    kc::Layout flat;
    flat.ndim = 1;
    flat.shape[0] = ne;
    flat.stride[0] = 1;
    auto copy = [&] {
      kc::copy_device_to_device(z, e, bytes, dev);
    };
    auto beaver = [&] {
      kc::beaver_output(ne, true, e, d, a, b, c, 0, z, dev);
    };
    auto add = [&] {
      kc::binary(kc::BinaryOp::kAdd, kc::Elem::kU64, ne, a, flat, b, flat, z, dev);
    };
    auto check_first = [&](const std::function<uint64_t(std::size_t)>& f) {
      std::vector<uint64_t> got(samples_in[0].size());
      kc::copy_to_host(got.data(), z, got.size() * 8, dev);
      bool ok = true;
      for (std::size_t i = 0; i < got.size(); ++i) {
        ok = ok && got[i] == f(i);
      }
      return ok;
    };
    const auto& si = samples_in;
    copy();
    const bool copy_ok = check_first([&](std::size_t i) { return si[0][i]; });
    beaver();
    const bool beaver_ok = check_first([&](std::size_t i) {
      return si[4][i] + si[0][i] * (si[3][i] + si[1][i]) + si[2][i] * si[1][i];
    });
    add();
    const bool add_ok = check_first([&](std::size_t i) { return si[2][i] + si[3][i]; });
    all_ok = all_ok && copy_ok && beaver_ok && add_ok;
    struct Ew {
      const char* name;
      std::function<void()> fn;
      double bytes_moved;
      bool ok;
    };
    const std::vector<Ew> ews = {
        {"copy_device_to_device", copy, 2.0 * static_cast<double>(bytes), copy_ok},
        {"beaver_output", beaver, 6.0 * static_cast<double>(bytes), beaver_ok},
        {"binary_add_u64", add, 3.0 * static_cast<double>(bytes), add_ok}};
    double copy_rate = 0;
    fmt::print("elementwise, {} ring elements (bytes moved = reads + writes):\n", ne);
    for (const Ew& w : ews) {
      Record r{w.name, ne, 0, 0, 0, 0, w.ok};
      r.seconds = time_s(w.fn);
      r.rate = w.bytes_moved / r.seconds;
      if (copy_rate == 0) {
        copy_rate = r.rate;
      }
      fmt::print("{:<22} {:>10.3f} ms {:>10.1f} GB/s {:>6.1f}% of copy {}\n", r.name,
                 r.seconds * 1e3, r.rate * 1e-9, 100.0 * r.rate / copy_rate,
                 r.verified ? "verified" : "MISMATCH");
      records.push_back(r);
    }
  }

  if (!opt.json_path.empty()) {
    nlohmann::json arr = nlohmann::json::array();
    double copy_rate = 0;
    for (const Record& r : records) {
      nlohmann::json j{{"name", r.name},
                       {"seconds", r.seconds},
                       {"device", device_name},
                       {"verified", r.verified}};
      if (r.n > 0) {
        j["m"] = r.m;
        j["n"] = r.n;
        j["k"] = r.k;
        j["macs_per_second"] = r.rate;
      } else {
        if (copy_rate == 0) {
          copy_rate = r.rate;
        }
        j["elements"] = r.m;
        j["bytes_per_second"] = r.rate;
        j["fraction_of_copy_bandwidth"] = r.rate / copy_rate;
      }
      arr.push_back(j);
    }
    std::ofstream out(opt.json_path);
    if (!out) {
      throw std::runtime_error(fmt::format("cannot open '{}' for writing", opt.json_path));
    }
    out << nlohmann::json{{"benchmark", "gpu"},
                          {"device", device_name},
                          {"reps", opt.reps},
                          {"warmup", opt.warmup},
                          {"results", arr}}
               .dump(2)
        << '\n';
    fmt::print("wrote {}\n", opt.json_path);
  }
  if (!all_ok) {
    throw std::runtime_error("a GPU result differed from the CPU reference (see MISMATCH above)");
  }
}

}  // namespace gpu_detail

/// Adds `gpu`: ring GEMM (tensor cores, SIMT, float64 limbs) vs cuBLAS FP32/TF32 throughput and
/// elementwise bandwidth on the first CUDA device.
inline void add_gpu_command(CLI::App& app) {
  auto opt = std::make_shared<gpu_detail::Options>();
  CLI::App* cmd = app.add_subcommand(
      "gpu", "GPU ring GEMM (INT8 tensor cores, SIMT, float64 limbs) vs cuBLAS, and bandwidth");
  cmd->add_option("--device", opt->device, "device kind (only cuda)")
      ->check(CLI::IsMember({"cuda"}))
      ->capture_default_str();
  cmd->add_option("--sizes", opt->sizes, "square GEMM sizes (m = n = k), comma separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--reps", opt->reps, "timed repetitions (median reported)")
      ->capture_default_str();
  cmd->add_option("--warmup", opt->warmup, "untimed runs before timing")->capture_default_str();
  cmd->add_option("--elements", opt->elements, "ring elements for the bandwidth check")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 32))
      ->capture_default_str();
  cmd->add_option("--json", opt->json_path, "also write the results as JSON to this path");
  cmd->callback([opt] { gpu_detail::run(*opt); });
}

}  // namespace veil::bench
