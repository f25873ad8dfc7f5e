// veil-dealer: the trusted-third-party provider as its own process. It never sees data: parties
// send it PRG seeds; it answers party 0's requests with the one correction share per Beaver
// triple / truncation pair / random-bit batch, computing the predicted next request ahead of use.
// Configured like a party (RANK = WORLD_SIZE, VEIL_PEERS, VEIL_DEALER, VEIL_TLS_DIR, ... or
// --config FILE); veil-run starts it for you.

#include <cstdio>

#include <CLI/CLI.hpp>

#include "comm/config.h"
#include "crypto/process.h"

int main(int argc, char** argv) {
  CLI::App app{
      "veil-dealer: trusted-third-party dealer of correlated randomness for a veil session"};
  std::string config_path;
  bool no_lookahead = false;
  app.add_option("--config", config_path,
                 "session JSON file (default: VEIL_CONFIG or environment)");
  app.add_flag("--no-lookahead", no_lookahead, "answer requests only when asked (no precompute)");
  CLI11_PARSE(app, argc, argv);
  try {
    const veil::comm::SessionConfig config =
        config_path.empty() ? veil::comm::SessionConfig::from_env()
                            : veil::comm::SessionConfig::from_json_file(config_path);
    veil::crypto::run_dealer_process(config, !no_lookahead);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "veil-dealer: error: %s\n", e.what());
    return 1;
  }
}
