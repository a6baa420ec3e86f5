#include "crypto.h"

// HMAC-SHA256 runs on SHA256_CTX midstates (see KeyRing::Key): OpenSSL 3 marks the low-level
// SHA-256 functions deprecated, but they are the only interface that can copy a digest state
// without an allocation.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <atomic>
#include <climits>

namespace sess {

namespace {

constexpr char kHkdfSalt[] = "ngx_http_session_module/v1";
constexpr size_t kSubKeyLen = 32;  // HMAC-SHA256 keys and the AES-256 key

// Owning wrappers for the OpenSSL objects used while deriving keys (config time only).
struct KdfFree {
  void operator()(EVP_KDF* p) const noexcept { EVP_KDF_free(p); }
};
struct CipherFree {
  void operator()(EVP_CIPHER* p) const noexcept { EVP_CIPHER_free(p); }
};

// HKDF-SHA256 (extract and expand) of the secret with the module's salt and the given info.
bool hkdf(EVP_KDF* kdf, std::string_view secret, const char* info, unsigned char* out,
          size_t len) noexcept {
  EVP_KDF_CTX* kctx = EVP_KDF_CTX_new(kdf);
  if (kctx == nullptr) return false;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(secret.data()),
                                        secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(kHkdfSalt),
                                        sizeof(kHkdfSalt) - 1),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info),
                                        std::char_traits<char>::length(info)),
      OSSL_PARAM_construct_end(),
  };
  bool ok = EVP_KDF_derive(kctx, out, len, params) == 1;
  EVP_KDF_CTX_free(kctx);
  return ok;
}

// Wipes a derived key from the stack when it goes out of scope.
struct SubKey {
  unsigned char b[kSubKeyLen];
  ~SubKey() { OPENSSL_cleanse(b, sizeof(b)); }
};

}  // namespace

bool random_bytes(void* buf, size_t n) noexcept {
  if (n > INT_MAX) return false;
  return RAND_bytes(static_cast<unsigned char*>(buf), static_cast<int>(n)) == 1;
}

void release_thread_crypto_state() noexcept { OPENSSL_thread_stop(); }

// The prepared per-key state. HMAC-SHA256 (RFC 2104) is kept as the SHA-256 states after the
// key's inner and outer pad blocks, so an operation copies a state (a struct assignment) and
// hashes only the message and the inner digest: OpenSSL 3.0's EVP_MAC HMAC duplicates its digest
// contexts through the provider on every init and final (two allocations; over a third of the
// instructions of verifying an id cookie). The AES-GCM contexts already hold their key schedule;
// an operation only re-initialises them with the IV (EVP_*Init_ex2), so no algorithm is fetched
// and no key is re-expanded per request. The cipher contexts change on every operation, hence
// mutable: KeyRing's const methods use them (single-threaded, see crypto.h).
static_assert(KeyRing::kMacLen == SHA256_DIGEST_LENGTH, "HMAC-SHA256");
static_assert(kSubKeyLen <= SHA256_CBLOCK, "a MAC key fits in one SHA-256 block");

struct KeyRing::Key {
  uint8_t hint = 0;
  SHA256_CTX mac_inner[2];  // indexed by KeyUse: SHA-256 after (key XOR ipad)
  SHA256_CTX mac_outer[2];  // ... after (key XOR opad)
  mutable EVP_CIPHER_CTX* enc = nullptr;
  mutable EVP_CIPHER_CTX* dec = nullptr;

  Key() = default;
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
  ~Key() {
    OPENSSL_cleanse(mac_inner, sizeof(mac_inner));  // (each is as good as the key)
    OPENSSL_cleanse(mac_outer, sizeof(mac_outer));
    EVP_CIPHER_CTX_free(enc);
    EVP_CIPHER_CTX_free(dec);
  }
};

namespace {
std::atomic<uint64_t> ring_ids{0};
}  // namespace

KeyRing::KeyRing() : id_(++ring_ids) {}
KeyRing::~KeyRing() = default;

bool KeyRing::add_secret(std::string_view secret) {
  if (secret.size() < kMinSecretLen) return false;

  // Fetched once per secret at configuration time; the contexts keep their own references.
  std::unique_ptr<EVP_KDF, KdfFree> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  std::unique_ptr<EVP_CIPHER, CipherFree> aes(EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr));
  if (!kdf || !aes) return false;

  SubKey mac_key, csrf_key, enc_key;
  unsigned char hint = 0;
  if (!hkdf(kdf.get(), secret, "mac", mac_key.b, kSubKeyLen) ||
      !hkdf(kdf.get(), secret, "csrf", csrf_key.b, kSubKeyLen) ||
      !hkdf(kdf.get(), secret, "enc", enc_key.b, kSubKeyLen) ||
      !hkdf(kdf.get(), secret, "hint", &hint, 1)) {
    return false;
  }

  auto key = std::make_unique<Key>();
  key->hint = hint;

  const unsigned char* mac_keys[2];
  mac_keys[static_cast<size_t>(KeyUse::Cookie)] = mac_key.b;
  mac_keys[static_cast<size_t>(KeyUse::Csrf)] = csrf_key.b;
  for (size_t u = 0; u < 2; u++) {
    // The key is shorter than SHA-256's block: zero-padded to it, XORed with the pads.
    unsigned char ipad[SHA256_CBLOCK], opad[SHA256_CBLOCK];
    for (size_t i = 0; i < SHA256_CBLOCK; i++) {
      unsigned char k = i < kSubKeyLen ? mac_keys[u][i] : 0;
      ipad[i] = static_cast<unsigned char>(k ^ 0x36);
      opad[i] = static_cast<unsigned char>(k ^ 0x5c);
    }
    bool ok = SHA256_Init(&key->mac_inner[u]) == 1 &&
              SHA256_Update(&key->mac_inner[u], ipad, sizeof(ipad)) == 1 &&
              SHA256_Init(&key->mac_outer[u]) == 1 &&
              SHA256_Update(&key->mac_outer[u], opad, sizeof(opad)) == 1;
    OPENSSL_cleanse(ipad, sizeof(ipad));
    OPENSSL_cleanse(opad, sizeof(opad));
    if (!ok) return false;
  }

  key->enc = EVP_CIPHER_CTX_new();
  key->dec = EVP_CIPHER_CTX_new();
  if (key->enc == nullptr || key->dec == nullptr ||
      EVP_EncryptInit_ex2(key->enc, aes.get(), enc_key.b, nullptr, nullptr) != 1 ||
      EVP_DecryptInit_ex2(key->dec, aes.get(), enc_key.b, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_get_iv_length(key->enc) != static_cast<int>(kNonceLen)) {
    return false;
  }

  keys_.push_back(std::move(key));
  return true;
}

size_t KeyRing::size() const noexcept { return keys_.size(); }

uint8_t KeyRing::hint(size_t key) const noexcept {
  return key < keys_.size() ? keys_[key]->hint : 0;
}

bool KeyRing::mac(size_t key, KeyUse use, const std::string_view* parts, size_t n,
                  unsigned char* out) const noexcept {
  auto u = static_cast<size_t>(use);
  if (key >= keys_.size() || u > 1) return false;
  const Key& k = *keys_[key];
  SHA256_CTX c = k.mac_inner[u];
  unsigned char inner[SHA256_DIGEST_LENGTH];
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++) {
    ok = SHA256_Update(&c, parts[i].data(), parts[i].size()) == 1;
  }
  ok = ok && SHA256_Final(inner, &c) == 1;
  if (ok) {
    c = k.mac_outer[u];
    ok = SHA256_Update(&c, inner, sizeof(inner)) == 1 && SHA256_Final(out, &c) == 1;
  }
  // (After a final, c holds only the digest; before it, a state as good as the key.)
  if (!ok) OPENSSL_cleanse(&c, sizeof(c));
  return ok;
}

bool KeyRing::seal(size_t key, const unsigned char* nonce, std::string_view aad,
                   std::string_view pt, unsigned char* ct, unsigned char* tag) const noexcept {
  if (key >= keys_.size() || aad.size() > INT_MAX || pt.size() > INT_MAX) return false;
  EVP_CIPHER_CTX* ctx = keys_[key]->enc;
  int len = 0;
  if (EVP_EncryptInit_ex2(ctx, nullptr, nullptr, nonce, nullptr) != 1 ||
      EVP_EncryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx, ct, &len, reinterpret_cast<const unsigned char*>(pt.data()),
                        static_cast<int>(pt.size())) != 1) {
    return false;
  }
  // GCM is a stream mode: Update wrote everything, Final writes nothing and computes the tag.
  int fin = 0;
  if (len != static_cast<int>(pt.size()) || EVP_EncryptFinal_ex(ctx, ct + len, &fin) != 1 ||
      fin != 0) {
    return false;
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, kTagLen),
      OSSL_PARAM_construct_end(),
  };
  return EVP_CIPHER_CTX_get_params(ctx, params) == 1;
}

bool KeyRing::open(size_t key, const unsigned char* nonce, std::string_view aad,
                   std::string_view ct, const unsigned char* tag,
                   unsigned char* pt) const noexcept {
  if (key >= keys_.size() || aad.size() > INT_MAX || ct.size() > INT_MAX) return false;
  EVP_CIPHER_CTX* ctx = keys_[key]->dec;
  // OpenSSL only reads the expected tag; the parameter type is merely non-const.
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, const_cast<unsigned char*>(tag),
                                        kTagLen),
      OSSL_PARAM_construct_end(),
  };
  int len = 0, fin = 0;
  bool ok =
      EVP_DecryptInit_ex2(ctx, nullptr, nullptr, nonce, nullptr) == 1 &&
      EVP_DecryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx, pt, &len, reinterpret_cast<const unsigned char*>(ct.data()),
                        static_cast<int>(ct.size())) == 1 &&
      len == static_cast<int>(ct.size()) && EVP_CIPHER_CTX_set_params(ctx, params) == 1 &&
      EVP_DecryptFinal_ex(ctx, pt + len, &fin) == 1 && fin == 0;
  // GCM decrypts before it can check the tag: never leave unauthenticated plaintext behind.
  if (!ok) OPENSSL_cleanse(pt, ct.size());
  return ok;
}

}  // namespace sess
