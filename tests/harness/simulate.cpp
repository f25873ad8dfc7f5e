#include "tests/harness/simulate.h"

#include <algorithm>

namespace veil::testing {

crypto::LaunchOptions test_options(int n, crypto::ProviderKind kind) {
  crypto::LaunchOptions o;
  o.world_size = n;
  o.party.provider = kind;
  o.party.insecure = kind == crypto::ProviderKind::kTrustedFirstParty;
  o.party.timeout = std::chrono::milliseconds(5000);
  o.threads_per_party = 1;
  return o;
}

core::Tensor uniform(const core::Shape& shape, double lo, double hi, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  core::Tensor t = core::Tensor::empty(shape, core::DType::kFloat64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    p[i] = dist(gen);
  }
  return t;
}

double max_abs_diff(const core::Tensor& a, const core::Tensor& b) {
  const auto va = a.to_vector<double>();
  const auto vb = b.to_vector<double>();
  VEIL_CHECK(va.size() == vb.size(), "[max_abs_diff] sizes differ: {} vs {}", va.size(), vb.size());
  double m = 0;
  for (std::size_t i = 0; i < va.size(); ++i) {
    m = std::max(m, std::abs(va[i] - vb[i]));
  }
  return m;
}

double max_mixed_err(const core::Tensor& a, const core::Tensor& b) {
  const auto va = a.to_vector<double>();
  const auto vb = b.to_vector<double>();
  VEIL_CHECK(va.size() == vb.size(), "[max_mixed_err] sizes differ: {} vs {}", va.size(),
             vb.size());
  double m = 0;
  for (std::size_t i = 0; i < va.size(); ++i) {
    m = std::max(m, std::abs(va[i] - vb[i]) / std::max(std::abs(vb[i]), 1.0));
  }
  return m;
}

}  // namespace veil::testing
