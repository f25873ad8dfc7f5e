// Throw-away PKI for veil sessions, written with the OpenSSL 3 API: one EC P-256 CA and one EC
// P-256 key + certificate per endpoint. Every OpenSSL handle is owned by a unique_ptr with the
// matching free function; every OpenSSL failure becomes an exception carrying OpenSSL's reason
// (never key material). Files are written atomically: a temp file created with its final mode
// (0600 for keys, so a key is never readable by others, not even briefly), then rename().

#include "comm/tls.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/error.h"
#include "core/file_io.h"

namespace veil::comm {

namespace {

// ---- RAII over OpenSSL handles -----------------------------------------------------------------

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;

/// OpenSSL's queued error reasons ("error:...:reason"), emptying the queue. Error strings name
/// the failing routine and reason only; they never contain key material.
std::string openssl_errors() {
  std::string out;
  unsigned long code = 0;  // NOLINT(google-runtime-int): OpenSSL's type
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out.empty() ? std::string("no OpenSSL error queued") : out;
}

[[noreturn]] void throw_openssl(std::string_view step) {
  throw Error(fmt::format("[generate_test_pki] {} failed: {}", step, openssl_errors()));
}

void check_ssl(bool ok, std::string_view step) {
  if (!ok) {
    throw_openssl(step);
  }
}

PkeyPtr make_p256_key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  check_ssl(key != nullptr, "EC P-256 key generation");
  return key;
}

/// Adds one X509v3 extension given in OpenSSL's config syntax ("critical,CA:TRUE").
void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  check_ssl(ext != nullptr, fmt::format("creating extension {}", OBJ_nid2sn(nid)));
  check_ssl(X509_add_ext(cert, ext.get(), -1) == 1,
            fmt::format("adding extension {}", OBJ_nid2sn(nid)));
}

/// A certificate for `key` with subject CN = common_name, signed by issuer_key (issuer == nullptr:
/// self-signed). Validity: one hour in the past (clock skew between machines) to 7 days ahead.
X509Ptr make_certificate(
    EVP_PKEY* key, const std::string& common_name, X509* issuer, EVP_PKEY* issuer_key, bool is_ca) {
  X509Ptr cert(X509_new());
  check_ssl(cert != nullptr, "X509_new");
  check_ssl(X509_set_version(cert.get(), X509_VERSION_3) == 1, "X509_set_version");

  // A random positive 64-bit serial (RFC 5280 allows up to 20 octets).
  BnPtr serial(BN_new());
  check_ssl(
      serial != nullptr && BN_rand(serial.get(), 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1,
      "serial number generation");
  check_ssl(BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) != nullptr,
            "setting the serial number");

  check_ssl(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr, "notBefore");
  check_ssl(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600) != nullptr, "notAfter");
  check_ssl(X509_set_pubkey(cert.get(), key) == 1, "X509_set_pubkey");

  X509NamePtr name(X509_NAME_new());
  check_ssl(name != nullptr, "X509_NAME_new");
  check_ssl(
      X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("veil"), -1, -1, 0) == 1,
      "subject O");
  check_ssl(X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(common_name.c_str()),
                                       -1, -1, 0) == 1,
            "subject CN");
  check_ssl(X509_set_subject_name(cert.get(), name.get()) == 1, "X509_set_subject_name");
  X509* const signer = issuer != nullptr ? issuer : cert.get();
  check_ssl(X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) == 1,
            "X509_set_issuer_name");

  add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
  if (is_ca) {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature,keyAgreement");
    add_extension(cert.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth");
    const std::string san = "DNS:" + common_name;
    add_extension(cert.get(), signer, NID_subject_alt_name, san.c_str());
  }
  check_ssl(X509_sign(cert.get(), issuer_key, EVP_sha256()) > 0, "signing the certificate");
  return cert;
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);  // NOLINT(google-runtime-int): OpenSSL's type
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

std::string cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check_ssl(bio != nullptr && PEM_write_bio_X509(bio.get(), cert) == 1,
            "PEM-encoding a certificate");
  return bio_contents(bio.get());
}

/// Unencrypted PKCS#8 PEM. The caller must cleanse the returned string after use. The memory
/// BIO holding a copy of the key is a "secure" BIO_s_secmem when available; either way it is
/// freed (BIO_free clears BIO_s_secmem buffers) right after copying.
std::string key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  check_ssl(bio != nullptr, "BIO_new");
  check_ssl(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
            "PEM-encoding a private key");
  return bio_contents(bio.get());
}

/// Overwrites a string holding key material before it is freed.
struct Cleansed {
  std::string value;
  ~Cleansed() {
    if (!value.empty()) {
      OPENSSL_cleanse(value.data(), value.size());
    }
  }
};

void write_file_atomic(const std::filesystem::path& path, std::string_view content, unsigned mode) {
  core::write_file_atomically(path.string(), content, "generate_test_pki", mode);
}

}  // namespace

std::string endpoint_identity(int rank, int world_size) {
  VEIL_CHECK(world_size >= 1, "[endpoint_identity] expected world_size >= 1, got {}", world_size);
  VEIL_CHECK(rank >= 0 && rank <= world_size,
             "[endpoint_identity] rank {} out of range: world_size {} (+ dealer)", rank,
             world_size);
  return rank == world_size ? std::string("veil-dealer") : fmt::format("veil-party-{}", rank);
}

TlsFiles tls_files_in(const std::string& dir, int rank, int world_size) {
  (void)endpoint_identity(rank, world_size);  // validates rank and world_size
  const std::filesystem::path d(dir);
  const std::string stem =
      rank == world_size ? std::string("dealer") : fmt::format("party-{}", rank);
  return TlsFiles{(d / "ca.pem").string(), (d / (stem + ".pem")).string(),
                  (d / (stem + ".key")).string()};
}

void generate_test_pki(const std::string& dir,
                       int world_size,
                       bool with_dealer,
                       const std::string& ca_name) {
  VEIL_CHECK(world_size >= 1, "[generate_test_pki] expected world_size >= 1, got {}", world_size);
  VEIL_CHECK(!dir.empty(), "[generate_test_pki] expected a directory, got an empty path");
  VEIL_CHECK(!ca_name.empty(), "[generate_test_pki] expected a non-empty CA name");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw IoError(fmt::format("[generate_test_pki] cannot create '{}': {}", dir, ec.message()));
  }
  ERR_clear_error();

  const PkeyPtr ca_key = make_p256_key();
  const X509Ptr ca_cert = make_certificate(ca_key.get(), ca_name, nullptr, ca_key.get(), true);

  const int endpoints = world_size + (with_dealer ? 1 : 0);
  for (int r = 0; r < endpoints; ++r) {
    const TlsFiles files = tls_files_in(dir, r, world_size);
    const PkeyPtr key = make_p256_key();
    const X509Ptr cert = make_certificate(key.get(), endpoint_identity(r, world_size),
                                          ca_cert.get(), ca_key.get(), false);
    const Cleansed pem{key_pem(key.get())};
    write_file_atomic(files.key, pem.value, 0600);
    write_file_atomic(files.cert, cert_pem(cert.get()), 0644);
  }
  // The CA certificate last: a directory with ca.pem is complete.
  write_file_atomic(std::filesystem::path(dir) / "ca.pem", cert_pem(ca_cert.get()), 0644);
}

}  // namespace veil::comm
