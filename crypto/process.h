#pragma once
// Parties as processes: one process per party (and one for the dealer), connected over the gRPC
// transport with mutual TLS, configured by a JSON file or by environment variables
// (comm/config.h) — as set by veil-run, mpirun or a scheduler.

#include <functional>
#include <optional>

#include "comm/config.h"
#include "crypto/party.h"

namespace veil::crypto {

/// True when the environment says this process is one endpoint of a multi-process session
/// (RANK is set, or VEIL_CONFIG together with RANK).
bool launched_as_process();

/// Runs this process's party: connects to every peer (retrying until the connect timeout),
/// performs the setup (fingerprint check, keys), runs fn, then releases the dealer. On any
/// failure it aborts the session — every peer then raises CommError naming this party — and
/// rethrows. `options.timeout` is taken from the config.
void run_party_process(const comm::SessionConfig& config,
                       int rank,
                       PartyOptions options,
                       const std::function<void(Party&)>& fn);

/// Runs the dealer endpoint (rank == world_size) until party 0 releases it. Throws on failure
/// (after aborting the session).
void run_dealer_process(const comm::SessionConfig& config, bool lookahead = true);

/// Test hook for fault injection (documented, off unless the variable is set): when
/// VEIL_TEST_KILL_AT="<rank>:<point>" names this rank, the process kills itself with SIGKILL at
/// `point`: "connect" (before connecting) or the op name of the first message it sends under
/// that op ("dealer", "matmul", "reveal", ...). Installed by run_party_process.
void install_kill_hook_from_env(comm::Communicator* comm, int rank);

}  // namespace veil::crypto
