#pragma once
// In-process backend: parties (and the dealer) are threads of one process exchanging messages
// through shared mailboxes. Used by tests, benchmarks and single-machine runs.

#include <memory>

#include "comm/communicator.h"

namespace veil::comm {

class InProcessHub;

/// Creates the shared state for `world_size` parties (plus a dealer endpoint when `with_dealer`)
/// and hands out one Communicator per endpoint. Messages are kept in one FIFO mailbox per ordered
/// pair of endpoints: send copies the payload in once and never blocks; recv waits up to the
/// receiver's timeout. abort() on any endpoint fails the whole hub: every pending and later
/// send/recv on every endpoint throws CommError. Different endpoints may be used concurrently
/// from different threads. Throws ValueError for world_size < 1.
///
/// Device tensors: with `device_handover` (the default) a CUDA tensor travels as a device copy
/// that the receiver adopts (Communicator::accepts_device_tensors), so parties sharing a GPU
/// never move shares through host memory; without it, device tensors are staged through pinned
/// host memory as over a process transport (for tests of that path and for measuring it).
class InProcessHub {
 public:
  InProcessHub(int world_size, bool with_dealer, bool device_handover = true);
  ~InProcessHub();
  InProcessHub(const InProcessHub&) = delete;
  InProcessHub& operator=(const InProcessHub&) = delete;

  /// Number of compute parties.
  int world_size() const;
  /// Whether the hub has a dealer endpoint (rank world_size()).
  bool with_dealer() const;
  /// The communicator of endpoint `rank` (0..world_size-1, or world_size for the dealer).
  /// Each endpoint's communicator is created once and owned by the hub; it must be used by one
  /// thread at a time.
  Communicator& communicator(int rank);

  struct State;  // internal

 private:
  std::shared_ptr<State> state_;
};

}  // namespace veil::comm
