#pragma once
// Helpers shared by the autograd, nn and optim tests: running parties, placing inputs as public or
// secret, quantising to the fixed-point grid, and float64 finite differences. Party code returns
// revealed float64 tensors; assertions happen on the main thread.

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "crypto/launch.h"
#include "tests/harness/simulate.h"

namespace veil::agtest {

using core::Tensor;

/// How a test places its inputs: every input public, every input secret, or the first secret and
/// the others public.
enum class Vis { kPublic, kSecret, kMixed };

inline const char* vis_name(Vis v) {
  switch (v) {
    case Vis::kPublic:
      return "public";
    case Vis::kSecret:
      return "secret";
    case Vis::kMixed:
      return "mixed";
  }
  return "?";
}

/// x rounded to the fixed-point grid of f fractional bits (what encode/decode gives back).
inline Tensor quantize(const Tensor& x, int f = 16) {
  Tensor out = x.contiguous().clone();
  double* p = out.data<double>();
  for (int64_t i = 0; i < out.numel(); ++i) {
    p[i] = std::ldexp(std::round(std::ldexp(p[i], f)), -f);
  }
  return out;
}

/// Input i as an MpcTensor with the given visibility; secrets are shared from party i % N.
inline MpcTensor place(const Tensor& x, Vis vis, std::size_t i, Party& p) {
  const bool secret = vis == Vis::kSecret || (vis == Vis::kMixed && i == 0);
  if (!secret) {
    return MpcTensor::from_public(x, p);
  }
  const int src = static_cast<int>(i) % p.world_size();
  return MpcTensor::share(p.rank() == src ? x : Tensor(), src, x.shape(), p);
}

/// Runs fn on n parties and returns party 0's result (revealed values are equal everywhere).
inline std::vector<Tensor> run(int n, const std::function<std::vector<Tensor>(Party&)>& fn) {
  return crypto::launch<std::vector<Tensor>>(testing::test_options(n), fn)[0];
}

/// Same, returning every party's result.
inline std::vector<std::vector<Tensor>> run_all(
    int n, const std::function<std::vector<Tensor>(Party&)>& fn) {
  return crypto::launch<std::vector<Tensor>>(testing::test_options(n), fn);
}

/// sum_i a_i * b_i for float64 tensors of equal numel.
inline double dot(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector<double>();
  const auto vb = b.to_vector<double>();
  double s = 0;
  for (std::size_t i = 0; i < va.size(); ++i) {
    s += va[i] * vb[i];
  }
  return s;
}

/// Central finite-difference gradient of the scalar function L with respect to xs[i] (float64).
inline Tensor fd_grad(const std::function<double(const std::vector<Tensor>&)>& loss,
                      const std::vector<Tensor>& xs,
                      std::size_t i,
                      double h = 1e-5) {
  std::vector<Tensor> work;
  for (const Tensor& x : xs) {
    work.push_back(x.contiguous().clone());
  }
  Tensor g = Tensor::zeros(xs[i].shape(), core::DType::kFloat64);
  double* pg = g.data<double>();
  double* px = work[i].data<double>();
  for (int64_t k = 0; k < g.numel(); ++k) {
    const double old = px[k];
    px[k] = old + h;
    const double up = loss(work);
    px[k] = old - h;
    const double down = loss(work);
    px[k] = old;
    pg[k] = (up - down) / (2 * h);
  }
  return g;
}

/// max |x_i|.
inline double max_abs(const Tensor& x) {
  double m = 0;
  for (double v : x.to_vector<double>()) {
    m = std::max(m, std::abs(v));
  }
  return m;
}

/// One fixed-point unit at 16 fractional bits.
constexpr double kUlp = 1.0 / 65536.0;

}  // namespace veil::agtest
