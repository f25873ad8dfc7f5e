#pragma once
// Running one protocol on shared inputs for a (parties, provider) setting and revealing the
// result, for the protocol tests.

#include <vector>

#include "crypto/protocols/arithmetic.h"
#include "tests/harness/simulate.h"

namespace veil::testing {

struct Setting {
  int n;
  crypto::ProviderKind kind;
};

/// 2 and 3 parties, each with the dealer and with the trusted first party.
inline std::vector<Setting> all_settings() {
  return {{2, crypto::ProviderKind::kDealer},
          {3, crypto::ProviderKind::kDealer},
          {2, crypto::ProviderKind::kTrustedFirstParty},
          {3, crypto::ProviderKind::kTrustedFirstParty}};
}

/// Runs fn(party, x_share, y_share) on secrets shared by party 0 (x) and the last party (y);
/// returns party 0's revealed float64 result.
template <class F>
core::Tensor run_binary_op(Setting s, const core::Tensor& x, const core::Tensor& y, F fn) {
  auto out = crypto::launch<core::Tensor>(test_options(s.n, s.kind), [&](crypto::Party& p) {
    const crypto::AShare xs = crypto::share(p, p.rank() == 0 ? x : core::Tensor(), 0, x.shape());
    const int last = p.world_size() - 1;
    const crypto::AShare ys =
        crypto::share(p, p.rank() == last ? y : core::Tensor(), last, y.shape());
    return crypto::reveal_float(p, fn(p, xs, ys));
  });
  return out[0];
}

/// Runs fn(party, x_share) on x shared by party 0; returns party 0's revealed float64 result.
template <class F>
core::Tensor run_unary_op(Setting s, const core::Tensor& x, F fn) {
  auto out = crypto::launch<core::Tensor>(test_options(s.n, s.kind), [&](crypto::Party& p) {
    const crypto::AShare xs = crypto::share(p, p.rank() == 0 ? x : core::Tensor(), 0, x.shape());
    return crypto::reveal_float(p, fn(p, xs));
  });
  return out[0];
}

}  // namespace veil::testing
