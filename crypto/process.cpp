#include "crypto/process.h"

#include <csignal>
#include <cstdlib>
#include <string>

#include "comm/grpc/grpc_communicator.h"
#include "core/log.h"

namespace veil::crypto {

namespace {

// "<rank>:<point>" from VEIL_TEST_KILL_AT, when it names `rank`.
std::optional<std::string> kill_point(int rank) {
  const char* v = std::getenv("VEIL_TEST_KILL_AT");  // NOLINT(concurrency-mt-unsafe): read once
  if (v == nullptr) {
    return std::nullopt;
  }
  const std::string s(v);
  const auto colon = s.find(':');
  if (colon == std::string::npos || s.substr(0, colon) != std::to_string(rank)) {
    return std::nullopt;
  }
  return s.substr(colon + 1);
}

[[noreturn]] void kill_self() {
  std::raise(SIGKILL);
  std::_Exit(137);  // not reached
}

}  // namespace

bool launched_as_process() {
  return comm::rank_from_env().has_value();
}

void install_kill_hook_from_env(comm::Communicator* comm, int rank) {
  const auto point = kill_point(rank);
  if (!point || comm == nullptr) {
    return;
  }
  core::log_warning("fault injection: this process will kill itself at '" + *point + "'");
  comm->set_send_observer([p = *point](int, std::string_view tag) {
    if (comm::tag_op(tag) == p) {
      kill_self();
    }
  });
}

void run_party_process(const comm::SessionConfig& config,
                       int rank,
                       PartyOptions options,
                       const std::function<void(Party&)>& fn) {
  VEIL_CHECK(rank >= 0 && rank < config.world_size,
             "[run_party_process] rank {} out of range for world_size {}", rank, config.world_size);
  if (kill_point(rank) == "connect") {
    kill_self();
  }
  options.timeout = config.timeout;
  comm::GrpcOptions go = config.grpc_options(rank);
  go.has_dealer = options.provider == ProviderKind::kDealer;
  if (!go.has_dealer && go.addresses.size() > static_cast<std::size_t>(config.world_size)) {
    go.addresses.resize(static_cast<std::size_t>(config.world_size));
  }
  std::unique_ptr<comm::Communicator> comm = comm::connect_grpc(go);
  install_kill_hook_from_env(comm.get(), rank);
  try {
    Party party(*comm, options);
    CurrentPartyGuard guard(party);
    fn(party);
    party.finish();
  } catch (const std::exception& e) {
    comm->abort(e.what());
    throw;
  }
}

void run_dealer_process(const comm::SessionConfig& config, bool lookahead) {
  VEIL_CHECK(config.dealer.has_value(),
             "[run_dealer_process] the session configuration names no dealer address");
  comm::GrpcOptions go = config.grpc_options(config.world_size);
  go.has_dealer = true;
  std::unique_ptr<comm::Communicator> comm = comm::connect_grpc(go);
  // The dealer idles while parties compute locally; an abort still wakes it at once.
  comm->set_timeout(config.timeout * 10);
  try {
    DealerService dealer(*comm, lookahead);
    dealer.serve();
    core::log_info(fmt::format("dealer: served {} requests, {} from a correct prediction",
                               dealer.requests(), dealer.predicted()));
  } catch (const std::exception& e) {
    comm->abort(e.what());
    throw;
  }
}

}  // namespace veil::crypto
