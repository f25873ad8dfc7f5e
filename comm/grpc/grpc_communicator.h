#pragma once
// gRPC transport: one bidirectional stream per pair of endpoints, mutual TLS by default.
// This header has no gRPC includes; the implementation lives in comm/grpc/*.cpp and is compiled
// when VEIL_WITH_GRPC resolves to ON (else connect_grpc throws NotCompiledError).
//
// Topology: every endpoint (parties 0..N-1, dealer N) listens on its own address; for each pair
// the higher rank dials the lower one. Each side checks the peer's certificate identity against
// the rank it expects ("veil-party-<rank>" / "veil-dealer"), so a certificate of another party,
// from another CA, or a plaintext peer is refused with a message saying why.
//
// Wire format and stream protocol: comm/grpc/veil.proto. Messages larger than
// GrpcOptions::chunk_bytes travel as several frames (chunks) and are reassembled by the receiver;
// the payload is copied once on each side (into a gRPC slice when sending, out of the received
// slices into the message buffer when receiving). Statistics are kept by the Communicator base
// class and are identical to those of the in-process backend for the same program.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/tls.h"

namespace veil::comm {

struct GrpcOptions {
  int rank = 0;
  int world_size = 2;
  bool has_dealer = true;
  /// host:port of every endpoint: parties 0..N-1, then the dealer when has_dealer.
  std::vector<std::string> addresses;
  /// Where this endpoint's server listens; default (empty): addresses[rank]. Set it (for example
  /// to "0.0.0.0:50051") when the advertised address is not a local interface (NAT, containers).
  std::string listen_address;
  /// Mutual TLS files of this endpoint. Required unless insecure_plaintext.
  std::optional<TlsFiles> tls;
  /// INSECURE: plaintext transport (prints a warning). Only for debugging.
  bool insecure_plaintext = false;
  /// How long to keep retrying to reach every peer before failing with CommError naming the
  /// unreachable party and its address.
  std::chrono::milliseconds connect_timeout{30000};
  /// Receive timeout (Communicator::set_timeout).
  std::chrono::milliseconds timeout{60000};
  /// Largest payload chunk per gRPC message (4 KiB .. 4 MiB). Larger messages are split.
  std::size_t chunk_bytes = std::size_t{1} << 20U;
};

/// Starts this endpoint's server, connects to every peer (retrying with backoff until
/// connect_timeout), and returns the communicator once a stream to every other endpoint is up.
///
/// Errors: ValueError for bad options (rank out of range, address count, missing TLS files
/// without insecure_plaintext, chunk_bytes out of range); CommError when the listen address
/// cannot be bound, a peer stays unreachable ("[connect] party 1 at 127.0.0.1:50052 unreachable
/// after 5000 ms: <reason>"), refuses this endpoint (its certificate identity does not match its
/// rank, TLS handshake failure: other CA, other identity, plaintext against TLS), or a higher
/// rank does not dial in within connect_timeout; NotCompiledError when built without gRPC.
///
/// The returned communicator: send never blocks on the receiver (frames are queued); recv waits
/// up to timeout() and throws CommError naming the peer and tag; a peer that closes its
/// communicator or dies makes pending and later recvs from it throw
/// CommError("party 1 disconnected: ...") once its earlier messages are consumed; abort() sends
/// the reason to every peer (they throw CommError("party <rank> aborted: <reason>")); a malformed
/// or unexpected frame (duplicate hello, unknown type, chunk out of order, size mismatch) makes
/// recvs from that peer throw ProtocolError. The destructor flushes queued messages (bounded by
/// the timeout), says goodbye to every peer and never hangs on peers that are gone.
///
/// Security: with TLS, both sides authenticate with certificates from the configured CA; the
/// listener accepts a dialer only when the certificate's identity matches the rank it claims,
/// and the dialer accepts the listener only when its certificate names the expected identity.
/// Neither payload bytes nor key material appear in messages or logs.
std::unique_ptr<Communicator> connect_grpc(const GrpcOptions& options);

/// Whether this build contains the gRPC transport.
bool grpc_compiled();

/// Malformed frame sequences for tests of the receiver's checks (never used by veil itself).
enum class GrpcFault : uint8_t {
  kDuplicateHello,    ///< a second HELLO on an established stream
  kUnknownFrameType,  ///< a frame whose type is not in veil.proto
  kChunkOutOfOrder,   ///< a message whose second frame says chunk 2
  kSizeMismatch,      ///< a message whose chunks add up to less than its declared size
};

/// FOR TESTS ONLY: sends the frames of `fault` to endpoint `to` over `comm`'s stream, bypassing
/// every check. The receiver then throws ProtocolError on its next recv from this endpoint.
/// Throws ValueError when `comm` is not a gRPC communicator or `to` is not a peer,
/// NotCompiledError when built without gRPC.
void inject_grpc_fault_for_testing(Communicator& comm, int to, GrpcFault fault);

}  // namespace veil::comm
