// Keys, MAC and AEAD for session cookies (OpenSSL 3).
//
// Each secret line of session_secret_file becomes one Key: HKDF-SHA256 (salt
// "ngx_http_session_module/v1") derives independent sub-keys with info "mac", "enc" and "csrf",
// plus a one-byte hint (info "hint") written into envelopes so that verification tries only the
// keys that can match. The first key signs and encrypts; every key verifies.
//
// The OpenSSL contexts are prepared once (key schedule, HMAC pads) and reused; a KeyRing is
// therefore not thread-safe: one per nginx worker/config, used from the event loop only.
#pragma once

#include "common.h"

#include <memory>
#include <vector>

namespace sess {

// Fills buf with n bytes from the CSPRNG (RAND_bytes). Returns false on failure.
bool random_bytes(void* buf, size_t n) noexcept;

// Frees the calling thread's OpenSSL state (its error queue, its random generators and their
// registration for the thread's end): OPENSSL_thread_stop. For the threads of nginx's thread pools,
// at the end of every task: nginx ends those threads without joining them (the worker goes on to
// exit() as soon as each has said it is leaving), so OpenSSL's state would be freed by the
// thread's own exit while the worker's exit runs OpenSSL's atexit cleanup, which frees every
// thread's registration without taking its lock: now and then a double free and a worker killed
// by SIGABRT (or SIGSEGV) at a graceful shutdown. The thread may use OpenSSL again afterwards.
void release_thread_crypto_state() noexcept;

enum class KeyUse : uint8_t { Cookie, Csrf };

class KeyRing {
 public:
  static constexpr size_t kMinSecretLen = 32;
  static constexpr size_t kMacLen = 32;      // HMAC-SHA256
  static constexpr size_t kNonceLen = 12;    // AES-256-GCM
  static constexpr size_t kTagLen = 16;

  KeyRing();
  ~KeyRing();
  KeyRing(const KeyRing&) = delete;
  KeyRing& operator=(const KeyRing&) = delete;

  // Derives the keys of one secret and appends them. Returns false if the secret is shorter than
  // kMinSecretLen or OpenSSL fails.
  bool add_secret(std::string_view secret);
  size_t size() const noexcept;
  uint8_t hint(size_t key) const noexcept;

  // A number no other KeyRing of this process has had (counting from 1): what a cache of
  // verified values is keyed by, since a ring's address can be reused after it is freed.
  uint64_t id() const noexcept { return id_; }

  // HMAC-SHA256 with key `key` for `use` over the concatenation of parts[0..n). out: kMacLen bytes.
  bool mac(size_t key, KeyUse use, const std::string_view* parts, size_t n,
           unsigned char* out) const noexcept;

  // AES-256-GCM with key `key`. seal writes pt.size() bytes of ciphertext to ct and kTagLen
  // bytes to tag; open writes ct.size() bytes to pt and returns false if the tag does not verify.
  bool seal(size_t key, const unsigned char* nonce, std::string_view aad, std::string_view pt,
            unsigned char* ct, unsigned char* tag) const noexcept;
  bool open(size_t key, const unsigned char* nonce, std::string_view aad, std::string_view ct,
            const unsigned char* tag, unsigned char* pt) const noexcept;

 private:
  struct Key;
  std::vector<std::unique_ptr<Key>> keys_;
  uint64_t id_;
};

}  // namespace sess
