#pragma once
// Throw-away public-key infrastructure for veil sessions (OpenSSL API): a CA, and for every
// endpoint a key and a certificate that binds its identity ("veil-party-<rank>" or "veil-dealer")
// as the subject common name and as a DNS subjectAltName. Used by tests and by veil-run for local
// runs; real deployments bring their own CA and certificates in the same layout.
//
// Layout of a TLS directory:  ca.pem, party-<rank>.pem, party-<rank>.key, dealer.pem, dealer.key.
// Keys are written with mode 0600, every file atomically (temp file + rename).

#include <string>

namespace veil::comm {

/// PEM file paths of one endpoint.
struct TlsFiles {
  std::string ca_cert;  ///< CA certificate that signed every peer
  std::string cert;     ///< this endpoint's certificate
  std::string key;      ///< this endpoint's private key
};

/// "veil-party-<rank>" for rank < world_size, "veil-dealer" for rank == world_size.
std::string endpoint_identity(int rank, int world_size);

/// Paths of endpoint `rank`'s files inside `dir` (the layout above).
TlsFiles tls_files_in(const std::string& dir, int rank, int world_size);

/// Creates `dir` (if needed) and writes a fresh CA plus certificates for world_size parties and,
/// when with_dealer, the dealer. Keys: ECDSA P-256; validity 7 days; `ca_name` is the CA's
/// subject CN (tests use a second CA name to build "wrong CA" cases). Throws IoError / Error
/// (with OpenSSL's reason) on failure. Never logs key material.
void generate_test_pki(const std::string& dir,
                       int world_size,
                       bool with_dealer,
                       const std::string& ca_name = "veil test CA");

}  // namespace veil::comm
