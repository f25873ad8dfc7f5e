#pragma once
// SHA-256 (FIPS 180-4) through OpenSSL's EVP API, for integrity checks and identifiers that must
// not reveal what they are derived from (checkpoint checksums, session run ids). Not a MAC: it
// detects accidental corruption and mix-ups, not a deliberate forger who can rewrite the file.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace veil::crypto {

/// Incremental SHA-256: update() any number of times, then digest() once.
class Sha256 {
 public:
  using Digest = std::array<uint8_t, 32>;

  /// Throws Error when OpenSSL cannot set up the digest.
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  /// Appends bytes to the message. Throws ValueError after digest().
  Sha256& update(std::span<const std::byte> bytes);
  /// Appends the characters of `text` (no terminator).
  Sha256& update(std::string_view text);
  /// Appends v as 8 little-endian bytes.
  Sha256& update_u64(uint64_t v);
  /// The digest of everything appended; the object cannot be updated afterwards (ValueError).
  Digest digest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool done_ = false;
};

/// Lower-case hexadecimal of bytes ("00ff...").
std::string to_hex(std::span<const uint8_t> bytes);

/// SHA-256 of `bytes` as 64 hexadecimal characters.
std::string sha256_hex(std::span<const std::byte> bytes);

/// Overwrites `bytes` with zeros in a way the compiler cannot drop (OPENSSL_cleanse): for keys
/// that are no longer needed.
void secure_wipe(std::span<uint8_t> bytes);

}  // namespace veil::crypto
