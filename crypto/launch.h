#pragma once
// Runs N parties (and the dealer, when the provider needs one) as threads of this process over
// the in-process communicator. Each party thread gets its Party as current_party().
//
// Failure handling: when a party throws, it aborts the session, so every other party's next (or
// pending) communication throws CommError("party <r> aborted: ...") within its timeout; launch()
// joins every thread and rethrows the exception of the party that failed first.

#include <functional>
#include <optional>
#include <vector>

#include "crypto/party.h"

namespace veil::crypto {

struct LaunchOptions {
  int world_size = 2;
  PartyOptions party;
  /// Intra-op threads per party thread (core::set_num_threads); 0: default_threads_per_party.
  int threads_per_party = 0;
  /// Optional per-rank options (tests of mismatched setups); `party` when empty.
  std::function<PartyOptions(int rank)> party_for_rank;
  /// Parties on a GPU hand their device tensors to each other on the device (true), or stage
  /// them through host memory as over a process transport (false: tests and measurements of
  /// that path). comm::InProcessHub.
  bool device_handover = true;
};

/// The parties of one process share its cores: the hardware threads divided by world_size, at
/// least 1. (Measured on 2 cores, 2 parties: 1 intra-op thread per party instead of 2 made a
/// private training epoch 14-24% faster and sigmoid/softmax 13-22% faster, since both parties
/// compute at once and a second thread only adds hand-offs; docs/benchmarks.md.)
int default_threads_per_party(int world_size);

/// Runs fn on every party; returns when all have finished. Rethrows the first failure.
void launch(const LaunchOptions& options, const std::function<void(Party&)>& fn);

/// Same, collecting each party's return value (index = rank).
template <class T>
std::vector<T> launch(const LaunchOptions& options, const std::function<T(Party&)>& fn) {
  std::vector<std::optional<T>> results(static_cast<std::size_t>(options.world_size));
  launch(options, [&](Party& p) { results[static_cast<std::size_t>(p.rank())] = fn(p); });
  std::vector<T> out;
  out.reserve(results.size());
  for (auto& r : results) {
    out.push_back(std::move(*r));
  }
  return out;
}

}  // namespace veil::crypto
