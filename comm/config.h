#pragma once
// Session configuration for parties as processes: from a JSON file or from environment variables
// (for launchers such as veil-run, mpirun or a scheduler).
//
// JSON:
//   { "world_size": 2,
//     "parties": ["10.0.0.1:50051", "10.0.0.2:50051"],
//     "dealer": "10.0.0.3:50051",                 // omit for providers without a dealer
//     "tls_dir": "/etc/veil/tls",                 // or per-endpoint "tls": {ca_cert, cert, key}
//     "timeout_ms": 60000, "connect_timeout_ms": 30000,
//     "insecure_plaintext": false }
//   Relative paths are resolved against the file's directory; unknown fields are refused (typos);
//   //-comments are allowed.
// Environment: RANK (this endpoint; the dealer's rank is WORLD_SIZE), WORLD_SIZE,
//   VEIL_PEERS="host:port,host:port,...", VEIL_DEALER="host:port", VEIL_TLS_DIR, VEIL_TIMEOUT_MS,
//   VEIL_CONNECT_TIMEOUT_MS, VEIL_INSECURE_PLAINTEXT=1, VEIL_CONFIG=<path to the JSON file>.
//   WORLD_SIZE may be left out (it is then the number of VEIL_PEERS); VEIL_INSECURE_PLAINTEXT
//   takes 1/0, true/false, yes/no, on/off. veil-run sets all of these for its children.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "comm/grpc/grpc_communicator.h"

namespace veil::comm {

struct SessionConfig {
  int world_size = 0;
  std::vector<std::string> parties;   ///< host:port per party rank
  std::optional<std::string> dealer;  ///< host:port of the dealer
  std::string tls_dir;                ///< layout of comm/tls.h; empty with insecure_plaintext
  /// This endpoint's own TLS files (JSON "tls"), instead of tls_dir.
  std::optional<TlsFiles> tls;
  std::chrono::milliseconds timeout{60000};
  std::chrono::milliseconds connect_timeout{30000};
  bool insecure_plaintext = false;

  /// Parses a JSON file. Throws IoError (unreadable) or ValueError naming the bad field.
  static SessionConfig from_json_file(const std::string& path);
  /// Reads VEIL_CONFIG (a JSON file) if set, else the variables above; checks RANK's range when
  /// RANK is set. Throws ValueError naming the missing or malformed variable (IoError when
  /// VEIL_CONFIG names an unreadable file).
  static SessionConfig from_env();
  /// The transport options for endpoint `rank` (0..world_size-1, or world_size for the dealer).
  /// Throws ValueError when the configuration is invalid or rank is out of range.
  GrpcOptions grpc_options(int rank) const;
  /// Checks world_size >= 2, one host:port per party (port 1..65535), no address used twice,
  /// positive timeouts, and TLS files unless insecure_plaintext. Throws ValueError naming the
  /// field.
  void validate() const;
};

/// RANK from the environment, or nullopt when unset. Throws ValueError when malformed.
std::optional<int> rank_from_env();

}  // namespace veil::comm
