#pragma once
// Cryptographically secure pseudo-random generator: the AES-128-CTR keystream (libgcrypt) of a
// 128-bit key, counter starting at 0. Parties that share a key draw identical streams; this is how
// pairwise seeds, zero-sharing (PRZS), dealer-derived shares and public randomness cost no
// communication. Keys come from the OS through OpenSSL's RAND_bytes.
//
// Security: AES-128 in counter mode is a PRF-based stream; outputs are indistinguishable from
// uniform for up to 2^64 blocks per key. Keys are never logged or put in exception messages.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/tensor.h"

namespace veil::crypto {

class Prg {
 public:
  using Seed = std::array<uint8_t, 16>;

  /// A fresh 128-bit key from the OS CSPRNG (OpenSSL RAND_bytes). Throws Error on failure.
  static Seed os_seed();
  /// A key derived from a public 64-bit seed (for public randomness that must be reproducible from
  /// a user-given --seed, e.g. weight initialisation and shuffles). Not secret.
  /// key = SHA-256("veil-public-seed" || le64(seed) || le64(stream))[0:16] (label without a
  /// terminator); distinct (seed, stream) pairs give independent keys.
  static Seed public_seed(uint64_t seed, uint64_t stream = 0);

  /// The keystream of `key`, counter block 0 first. Throws Error when libgcrypt fails.
  explicit Prg(const Seed& key);
  ~Prg();
  /// Moves continue the stream where the source was; a moved-from Prg throws ValueError when used.
  Prg(Prg&&) noexcept;
  Prg& operator=(Prg&&) noexcept;
  Prg(const Prg&) = delete;
  Prg& operator=(const Prg&) = delete;

  /// Next bytes of the keystream. The stream depends only on (key, position), not on how
  /// requests are split into calls.
  void fill(std::span<std::byte> out);
  /// Next n uniform ring elements (8 keystream bytes each, little-endian).
  void fill_ring(uint64_t* out, std::size_t n);
  /// A contiguous ring64 tensor of uniform elements.
  core::Tensor ring(const core::Shape& shape);
  /// The same draw on `device`: a contiguous ring64 tensor whose elements are the next
  /// 8 * numel(shape) keystream bytes (little-endian), exactly what ring(shape) would return on the
  /// CPU. On a CUDA device the keystream is generated there (kernels/cuda_prg.h) and the stream
  /// position moves past it, so CPU and GPU draws interleave into one stream: ring(s, cuda) then
  /// ring(s) equals two CPU draws. Device::cpu() is ring(shape).
  /// Errors: ValueError for a negative extent or a moved-from Prg; NotCompiledError for a CUDA
  /// device without the CUDA backend; CudaError for a missing device or a failed launch.
  core::Tensor ring(const core::Shape& shape, core::Device device);
  /// Next n uniform ring elements written to device memory `out_device` on CUDA device `device`
  /// (asynchronous on the calling thread's stream; the position advances by 8 n at once, so the
  /// next draw on any device continues the stream). Does not advance the position when it throws.
  /// Errors: ValueError when 8 n exceeds 2^63 - 1 or the Prg was moved from; NotCompiledError
  /// without CUDA; CudaError from the device.
  void fill_ring_device(uint64_t* out_device, std::size_t n, int device);
  uint64_t next_u64();
  /// Uniform integer in [0, n), n >= 1, without modulo bias (rejection sampling).
  uint64_t uniform_int(uint64_t n);
  /// Uniform double in [0, 1) with 53 random bits.
  double uniform_double();
  /// Standard normal sample (Box–Muller on two uniform_double()).
  double normal();
  /// Fisher–Yates shuffle driven by uniform_int.
  void shuffle(std::vector<int64_t>& v);
  /// Moves to keystream byte `position` (forward or back): the next draw returns the bytes a fresh
  /// Prg of the same key would return after `position` bytes. Used by the dealer to draw ahead.
  void seek(uint64_t position);
  /// Keystream bytes consumed so far (the stream position).
  uint64_t position() const { return position_; }
  /// A second Prg of the same key standing at keystream byte `position`; this one is unchanged.
  /// Only reads the key, so several threads may fork one Prg at once (while nobody draws from
  /// or seeks it): each draws its own part of the stream in parallel. The fork holds a copy of
  /// the secret key, wiped when it dies. Cost: one AES key schedule.
  /// Errors: ValueError for a moved-from Prg; Error when libgcrypt fails.
  Prg fork_at(uint64_t position) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t position_ = 0;
};

}  // namespace veil::crypto
