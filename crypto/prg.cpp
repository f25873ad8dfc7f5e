// AES-128-CTR keystream through libgcrypt (its VAES code path encrypts twice as fast as OpenSSL
// 3.0's AES-NI CTR on this project's CPUs: 14 against 7 GB/s per core, the same bytes; see
// docs/benchmarks.md). OpenSSL provides the OS randomness (RAND_bytes) and SHA-256. The stream is a
// pure function of (key, position): byte i of the stream is byte (i mod 16) of AES_k(i / 16) with
// the block index as a 128-bit big-endian counter (IV = 0). Small requests are served from a 4 KiB
// buffer of keystream; large ones are encrypted straight into the caller's memory. Either way the
// bytes handed out are the next bytes of the same stream, so the split of requests into calls never
// changes the output. Device draws (ring on a CUDA device, fill_ring_device) generate the same
// bytes on the GPU from the key kept in Impl (kernels/cuda_prg.h) and then seek past them.

#include "crypto/prg.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <string>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/error.h"
#include "kernels/cuda_prg.h"

#include <gcrypt.h>

namespace veil::crypto {
namespace {

// Keystream buffered for small requests (next_u64, uniform_int, ...).
constexpr std::size_t kBufferBytes = 4096;
// Requests at least this long (after draining the buffer) are encrypted into the output directly.
constexpr std::size_t kDirectThreshold = 1024;
// Chunk of zero plaintext encrypted per gcry_cipher_encrypt call on the direct path.
constexpr std::size_t kZeroChunk = 64 * 1024;

// Read-only zero plaintext: AES-CTR of zero bytes is the keystream itself.
const std::array<unsigned char, kZeroChunk>& zero_plaintext() {
  static const std::array<unsigned char, kZeroChunk> zeros{};
  return zeros;
}

// The most recent OpenSSL error as text (no key material is ever part of OpenSSL's error queue).
std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  if (code == 0) {
    return "no OpenSSL error code";
  }
  std::array<char, 256> buf{};
  ERR_error_string_n(code, buf.data(), buf.size());
  ERR_clear_error();
  return std::string(buf.data());
}

// libgcrypt must be initialised once before any other call; an application that initialised it
// itself keeps its settings. Keys live in ordinary memory (wiped by Prg), so no secure memory pool.
void init_gcrypt() {
  static const bool done = [] {
    if (gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P) == 0) {
      if (gcry_check_version(GCRYPT_VERSION) == nullptr) {
        throw Error(
            fmt::format("[Prg] libgcrypt older than the {} it was built against", GCRYPT_VERSION));
      }
      gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
      gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
    }
    return true;
  }();
  (void)done;
}

std::string gcrypt_error(gcry_error_t err) {
  return fmt::format("{} ({})", gcry_strerror(err), gcry_strsource(err));
}

struct CipherDeleter {
  void operator()(gcry_cipher_hd_t h) const { gcry_cipher_close(h); }
};
using CipherPtr = std::unique_ptr<std::remove_pointer_t<gcry_cipher_hd_t>, CipherDeleter>;

}  // namespace

struct Prg::Impl {
  CipherPtr cipher;
  // The key itself, for device draws (kernels/cuda_prg.h expands it for each launch). Secret:
  // never logged; wiped when the Prg dies.
  Seed key{};
  std::array<unsigned char, kBufferBytes> buffer{};
  std::size_t buffer_pos = kBufferBytes;  // next unread byte of `buffer`; == size: empty

  std::size_t buffered() const { return kBufferBytes - buffer_pos; }

  // Writes the next n keystream bytes of the cipher (bypassing the buffer) into out.
  void keystream(unsigned char* out, std::size_t n) {
    const unsigned char* zeros = zero_plaintext().data();
    while (n > 0) {
      const std::size_t chunk = std::min(n, kZeroChunk);
      const gcry_error_t err = gcry_cipher_encrypt(cipher.get(), out, chunk, zeros, chunk);
      if (err != 0) {
        throw Error("[Prg] AES-128-CTR keystream generation failed: " + gcrypt_error(err));
      }
      out += chunk;
      n -= chunk;
    }
  }

  void refill() {
    keystream(buffer.data(), kBufferBytes);
    buffer_pos = 0;
  }

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    OPENSSL_cleanse(key.data(), key.size());
    OPENSSL_cleanse(buffer.data(), buffer.size());
  }
};

Prg::Seed Prg::os_seed() {
  Seed seed{};
  if (RAND_bytes(seed.data(), static_cast<int>(seed.size())) != 1) {
    throw Error("[Prg::os_seed] RAND_bytes failed: " + openssl_error());
  }
  return seed;
}

// key = SHA-256("veil-public-seed" || le64(seed) || le64(stream))[0:16]. The label (16 ASCII
// bytes, no terminator) separates this use of SHA-256 from any other in veil.
Prg::Seed Prg::public_seed(uint64_t seed, uint64_t stream) {
  static constexpr char kLabel[] = "veil-public-seed";
  constexpr std::size_t kLabelBytes = sizeof(kLabel) - 1;
  std::array<unsigned char, kLabelBytes + 16> msg{};
  std::memcpy(msg.data(), kLabel, kLabelBytes);
  for (std::size_t i = 0; i < 8; ++i) {
    msg[kLabelBytes + i] = static_cast<unsigned char>(seed >> (8 * i));
    msg[kLabelBytes + 8 + i] = static_cast<unsigned char>(stream >> (8 * i));
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_len = 0;
  if (EVP_Digest(msg.data(), msg.size(), digest.data(), &digest_len, EVP_sha256(), nullptr) != 1) {
    throw Error("[Prg::public_seed] SHA-256 failed: " + openssl_error());
  }
  if (digest_len != 32) {
    throw InternalError("[Prg::public_seed] SHA-256 returned an unexpected digest length");
  }
  Seed key{};
  std::copy_n(digest.begin(), key.size(), key.begin());
  return key;
}

Prg::Prg(const Seed& key) : impl_(std::make_unique<Impl>()) {
  init_gcrypt();
  impl_->key = key;
  gcry_cipher_hd_t h = nullptr;
  gcry_error_t err = gcry_cipher_open(&h, GCRY_CIPHER_AES128, GCRY_CIPHER_MODE_CTR, 0);
  if (err != 0) {
    throw Error("[Prg] opening an AES-128-CTR cipher failed: " + gcrypt_error(err));
  }
  impl_->cipher.reset(h);
  err = gcry_cipher_setkey(h, key.data(), key.size());
  if (err != 0) {
    throw Error("[Prg] setting the AES-128 key failed: " + gcrypt_error(err));
  }
  const std::array<unsigned char, 16> ctr{};  // counter block 0
  err = gcry_cipher_setctr(h, ctr.data(), ctr.size());
  if (err != 0) {
    throw Error("[Prg] setting the CTR counter failed: " + gcrypt_error(err));
  }
}

Prg::~Prg() = default;
Prg::Prg(Prg&&) noexcept = default;
Prg& Prg::operator=(Prg&&) noexcept = default;

void Prg::seek(uint64_t position) {
  if (!impl_) {
    throw ValueError("[Prg::seek] this Prg was moved from");
  }
  // Counter block b encrypts keystream bytes [16b, 16b + 16): restart the cipher at block
  // position / 16 (big-endian 128-bit counter, as CTR mode increments it), then drop the
  // bytes before `position` inside that block.
  std::array<unsigned char, 16> iv{};
  const uint64_t block = position / 16;
  for (int i = 0; i < 8; ++i) {
    iv[static_cast<std::size_t>(15 - i)] = static_cast<unsigned char>(block >> (8 * i));
  }
  const gcry_error_t err = gcry_cipher_setctr(impl_->cipher.get(), iv.data(), iv.size());
  if (err != 0) {
    throw Error("[Prg::seek] setting the CTR counter failed: " + gcrypt_error(err));
  }
  impl_->buffer_pos = kBufferBytes;
  position_ = block * 16;
  std::array<std::byte, 16> skip{};
  fill(std::span<std::byte>(skip.data(), static_cast<std::size_t>(position % 16)));
}

Prg Prg::fork_at(uint64_t position) const {
  if (!impl_) {
    throw ValueError("[Prg::fork_at] this Prg was moved from");
  }
  Prg fork(impl_->key);
  fork.seek(position);
  return fork;
}

void Prg::fill(std::span<std::byte> out) {
  if (!impl_) {
    throw ValueError("[Prg::fill] this Prg was moved from");
  }
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  std::size_t n = out.size();
  position_ += n;
  // 1. Serve from the buffered keystream first (it precedes the cipher's position).
  const std::size_t take = std::min(n, impl_->buffered());
  if (take > 0) {
    std::memcpy(dst, impl_->buffer.data() + impl_->buffer_pos, take);
    impl_->buffer_pos += take;
    dst += take;
    n -= take;
  }
  if (n == 0) {
    return;
  }
  // 2. The buffer is now empty, so the cipher stands exactly at the requested position.
  if (n >= kDirectThreshold) {
    impl_->keystream(dst, n);
    return;
  }
  impl_->refill();
  std::memcpy(dst, impl_->buffer.data(), n);
  impl_->buffer_pos = n;
}

void Prg::fill_ring(uint64_t* out, std::size_t n) {
  fill(std::as_writable_bytes(std::span<uint64_t>(out, n)));
  if constexpr (std::endian::native == std::endian::big) {
    for (std::size_t i = 0; i < n; ++i) {
      out[i] = __builtin_bswap64(out[i]);
    }
  }
}

core::Tensor Prg::ring(const core::Shape& shape) {
  core::Tensor t = core::Tensor::empty(shape, core::DType::kRing64);
  fill_ring(t.data<uint64_t>(), static_cast<std::size_t>(t.numel()));
  return t;
}

core::Tensor Prg::ring(const core::Shape& shape, core::Device device) {
  if (device.type == core::Device::Type::kCPU) {
    return ring(shape);
  }
  if (!impl_) {
    throw ValueError("[Prg::ring] this Prg was moved from");
  }
  core::Tensor t = core::Tensor::empty(shape, core::DType::kRing64, device);
  fill_ring_device(t.device_data<uint64_t>(), static_cast<std::size_t>(t.numel()), device.index);
  return t;
}

void Prg::fill_ring_device(uint64_t* out_device, std::size_t n, int device) {
  if (!impl_) {
    throw ValueError("[Prg::fill_ring_device] this Prg was moved from");
  }
  constexpr auto kMaxElems = static_cast<std::size_t>(std::numeric_limits<int64_t>::max() / 8);
  VEIL_CHECK(n <= kMaxElems, "[Prg::fill_ring_device] expected at most {} elements, got {}",
             kMaxElems, n);
  const uint64_t bytes = 8 * static_cast<uint64_t>(n);
  // The keystream bytes [position_, position_ + bytes) land on the device; the device is
  // little-endian, so element i is bytes 8i..8i+7 read as the CPU's fill_ring reads them.
  kernels::cuda::aes128_ctr_keystream(impl_->key.data(), position_,
                                      reinterpret_cast<uint8_t*>(out_device),
                                      static_cast<int64_t>(bytes), device);
  if (bytes > 0) {
    seek(position_ + bytes);
  }
}

uint64_t Prg::next_u64() {
  uint64_t v = 0;
  fill_ring(&v, 1);
  return v;
}

uint64_t Prg::uniform_int(uint64_t n) {
  VEIL_CHECK(n >= 1, "[Prg::uniform_int] expected n >= 1, got {}", n);
  // Reject the lowest 2^64 mod n values: the remaining 2^64 - (2^64 mod n) draws are a multiple
  // of n, so r mod n is exactly uniform. Acceptance probability > 1/2 for every n.
  const uint64_t reject_below = (uint64_t{0} - n) % n;
  for (;;) {
    const uint64_t r = next_u64();
    if (r >= reject_below) {
      return r % n;
    }
  }
}

double Prg::uniform_double() {
  constexpr double kInv2Pow53 = 1.0 / 9007199254740992.0;  // 2^-53
  return static_cast<double>(next_u64() >> 11) * kInv2Pow53;
}

double Prg::normal() {
  const double u1 = uniform_double();
  const double u2 = uniform_double();
  // 1 - u1 lies in (0, 1], so the logarithm is finite.
  const double radius = std::sqrt(-2.0 * std::log(1.0 - u1));
  return radius * std::cos(2.0 * std::numbers::pi * u2);
}

void Prg::shuffle(std::vector<int64_t>& v) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(uniform_int(static_cast<uint64_t>(i)));
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace veil::crypto
