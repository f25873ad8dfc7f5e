#include "crypto/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/error.h"

namespace veil::crypto {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
    throw Error("[Sha256] OpenSSL could not set up SHA-256");
  }
}

Sha256::~Sha256() = default;

Sha256& Sha256::update(std::span<const std::byte> bytes) {
  VEIL_CHECK(!done_, "[Sha256] update after digest()");
  if (!bytes.empty() && EVP_DigestUpdate(impl_->ctx, bytes.data(), bytes.size()) != 1) {
    throw Error("[Sha256] OpenSSL digest update failed");
  }
  return *this;
}

Sha256& Sha256::update(std::string_view text) {
  return update(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

Sha256& Sha256::update_u64(uint64_t v) {
  std::array<std::byte, 8> le{};
  for (std::size_t i = 0; i < le.size(); ++i) {
    le[i] = static_cast<std::byte>(v >> (8 * i));
  }
  return update(le);
}

Sha256::Digest Sha256::digest() {
  VEIL_CHECK(!done_, "[Sha256] digest() called twice");
  done_ = true;
  Digest out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, out.data(), &len) != 1 || len != out.size()) {
    throw Error("[Sha256] OpenSSL digest finalisation failed");
  }
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

std::string sha256_hex(std::span<const std::byte> bytes) {
  Sha256 h;
  h.update(bytes);
  const Sha256::Digest d = h.digest();
  return to_hex(d);
}

void secure_wipe(std::span<uint8_t> bytes) {
  if (!bytes.empty()) {
    OPENSSL_cleanse(bytes.data(), bytes.size());
  }
}

}  // namespace veil::crypto
