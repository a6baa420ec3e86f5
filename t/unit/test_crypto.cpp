#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <string>
#include <thread>

#include "crypto.h"

using sess::KeyRing;
using sess::KeyUse;

namespace {

const std::string kSecretA = "secret-A-0123456789abcdefghijklmnopqrstuvwxyz";
const std::string kSecretB = "secret-B-0123456789abcdefghijklmnopqrstuvwxyz";
const std::string kSalt = "ngx_http_session_module/v1";

std::string hex(std::string_view s) {
  static const char* const d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

std::string unhex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// Reference HMAC-SHA256 through OpenSSL's one-shot API (a fresh context every time).
std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[32];
  size_t len = 0;
  EXPECT_NE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                      reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
                      sizeof(out), &len),
            nullptr);
  EXPECT_EQ(len, 32u);
  return std::string(reinterpret_cast<char*>(out), len);
}

// Reference HKDF-SHA256 written out from RFC 5869 section 2 on top of HMAC.
std::string hkdf_sha256(std::string_view salt, std::string_view ikm, std::string_view info,
                        size_t len) {
  const std::string prk = hmac_sha256(salt, ikm);
  std::string okm, t;
  for (unsigned char i = 1; okm.size() < len; i++) {
    t = hmac_sha256(prk, t + std::string(info) + static_cast<char>(i));
    okm += t;
  }
  return okm.substr(0, len);
}

// Reference AES-256-GCM encryption with a freshly initialised context.
std::string gcm_seal(std::string_view key, std::string_view nonce, std::string_view aad,
                     std::string_view pt, std::string* tag) {
  EVP_CIPHER* aes = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  std::string ct(pt.size(), '\0');
  int len = 0;
  auto u = [](std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  EXPECT_EQ(EVP_EncryptInit_ex2(ctx, aes, u(key), u(nonce), nullptr), 1);
  EXPECT_EQ(EVP_EncryptUpdate(ctx, nullptr, &len, u(aad), static_cast<int>(aad.size())), 1);
  EXPECT_EQ(EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(ct.data()), &len, u(pt),
                              static_cast<int>(pt.size())),
            1);
  unsigned char fin[16];
  EXPECT_EQ(EVP_EncryptFinal_ex(ctx, fin, &len), 1);
  tag->assign(16, '\0');
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag->data(), 16),
      OSSL_PARAM_construct_end(),
  };
  EXPECT_EQ(EVP_CIPHER_CTX_get_params(ctx, params), 1);
  EVP_CIPHER_CTX_free(ctx);
  EVP_CIPHER_free(aes);
  return ct;
}

std::string ring_mac(const KeyRing& ring, size_t key, KeyUse use,
                     std::initializer_list<std::string_view> parts) {
  unsigned char out[KeyRing::kMacLen];
  EXPECT_TRUE(ring.mac(key, use, parts.begin(), parts.size(), out));
  return std::string(reinterpret_cast<char*>(out), sizeof(out));
}

const unsigned char* u8(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

TEST(Crypto, RandomBytes) {
  unsigned char a[32] = {}, b[32] = {};
  ASSERT_TRUE(sess::random_bytes(a, sizeof(a)));
  ASSERT_TRUE(sess::random_bytes(b, sizeof(b)));
  EXPECT_NE(std::string(reinterpret_cast<char*>(a), 32),
            std::string(reinterpret_cast<char*>(b), 32));
  EXPECT_NE(std::string(reinterpret_cast<char*>(a), 32), std::string(32, '\0'));
  EXPECT_TRUE(sess::random_bytes(a, 0));
}

// Validates the test's own HKDF against RFC 5869 test case 1 before it is used as the oracle.
// A pool thread's OpenSSL state is gone after release_thread_crypto_state (its error queue is the
// visible part: an error raised before is no longer there), and the thread can use OpenSSL again.
TEST(Crypto, ReleaseThreadCryptoStateFreesTheThreadsState) {
  bool raised = false, gone = false, usable = false, gone_again = false;
  std::thread t([&] {
    unsigned char b[16];
    (void)sess::random_bytes(b, sizeof(b));  // per-thread random generators
    ERR_raise(ERR_LIB_USER, ERR_R_PASSED_NULL_PARAMETER);
    raised = ERR_peek_error() != 0;
    sess::release_thread_crypto_state();
    gone = ERR_peek_error() == 0;
    usable = sess::random_bytes(b, sizeof(b));
    ERR_raise(ERR_LIB_USER, ERR_R_PASSED_NULL_PARAMETER);
    sess::release_thread_crypto_state();
    gone_again = ERR_peek_error() == 0;
    sess::release_thread_crypto_state();  // nothing left: a no-op
  });
  t.join();
  EXPECT_TRUE(raised);
  EXPECT_TRUE(gone);
  EXPECT_TRUE(usable);
  EXPECT_TRUE(gone_again);
}

TEST(Crypto, ReferenceHkdfMatchesRfc5869Case1) {
  const std::string ikm(22, '\x0b');
  const std::string salt = unhex("000102030405060708090a0b0c");
  const std::string info = unhex("f0f1f2f3f4f5f6f7f8f9");
  EXPECT_EQ(hex(hmac_sha256(salt, ikm)),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
  EXPECT_EQ(hex(hkdf_sha256(salt, ikm, info, 42)),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

TEST(Crypto, AddSecretLengthLimit) {
  KeyRing ring;
  EXPECT_FALSE(ring.add_secret(""));
  EXPECT_FALSE(ring.add_secret(std::string(KeyRing::kMinSecretLen - 1, 'x')));
  EXPECT_EQ(ring.size(), 0u);
  EXPECT_TRUE(ring.add_secret(std::string(KeyRing::kMinSecretLen, 'x')));
  EXPECT_EQ(ring.size(), 1u);
  EXPECT_TRUE(ring.add_secret(kSecretA));
  EXPECT_EQ(ring.size(), 2u);
}

TEST(Crypto, HintIsHkdfOfSecret) {
  KeyRing ring;
  ASSERT_TRUE(ring.add_secret(kSecretA));
  ASSERT_TRUE(ring.add_secret(kSecretB));
  EXPECT_EQ(ring.hint(0), static_cast<uint8_t>(hkdf_sha256(kSalt, kSecretA, "hint", 1)[0]));
  EXPECT_EQ(ring.hint(1), static_cast<uint8_t>(hkdf_sha256(kSalt, kSecretB, "hint", 1)[0]));
}

TEST(Crypto, MacKeysAreHkdfDerived) {
  KeyRing ring;
  ASSERT_TRUE(ring.add_secret(kSecretA));
  ASSERT_TRUE(ring.add_secret(kSecretB));
  const std::string msg("session\0payload", 15);
  for (size_t k = 0; k < 2; k++) {
    const std::string& secret = k == 0 ? kSecretA : kSecretB;
    EXPECT_EQ(hex(ring_mac(ring, k, KeyUse::Cookie, {msg})),
              hex(hmac_sha256(hkdf_sha256(kSalt, secret, "mac", 32), msg)));
    EXPECT_EQ(hex(ring_mac(ring, k, KeyUse::Csrf, {msg})),
              hex(hmac_sha256(hkdf_sha256(kSalt, secret, "csrf", 32), msg)));
  }
}

// The MAC (SHA-256 midstates after the key pads) equals OpenSSL's HMAC for every message length
// around SHA-256's 64-byte blocks and its 55/56-byte padding edge, in one part and in three.
TEST(Crypto, MacMatchesReferenceAtEveryLength) {
  KeyRing ring;
  ASSERT_TRUE(ring.add_secret(kSecretA));
  const std::string key = hkdf_sha256(kSalt, kSecretA, "mac", 32);
  std::string msg;
  for (size_t n = 0; n <= 300; n++) {
    const std::string want = hex(hmac_sha256(key, msg));
    ASSERT_EQ(hex(ring_mac(ring, 0, KeyUse::Cookie, {msg})), want) << n;
    std::string_view v(msg);
    ASSERT_EQ(hex(ring_mac(ring, 0, KeyUse::Cookie, {v.substr(0, n / 3), v.substr(n / 3, n / 3),
                                                      v.substr(2 * (n / 3))})),
              want)
        << n;
    msg.push_back(static_cast<char>(n * 37 + 11));
  }
}

TEST(Crypto, MacPartsAreConcatenated) {
  KeyRing ring;
  ASSERT_TRUE(ring.add_secret(kSecretA));
  const std::string msg = "the quick brown fox jumps over the lazy dog";
  const std::string whole = ring_mac(ring, 0, KeyUse::Cookie, {msg});
  for (size_t i = 0; i <= msg.size(); i++) {
    std::string_view v(msg);
    EXPECT_EQ(ring_mac(ring, 0, KeyUse::Cookie, {v.substr(0, i), v.substr(i)}), whole) << i;
  }
  EXPECT_EQ(ring_mac(ring, 0, KeyUse::Cookie, {}),
            hmac_sha256(hkdf_sha256(kSalt, kSecretA, "mac", 32), ""));
}

TEST(Crypto, MacContextReuseIsStable) {
  // The prepared contexts are re-initialised per call: results must not depend on history.
  KeyRing ring;
  ASSERT_TRUE(ring.add_secret(kSecretA));
  ASSERT_TRUE(ring.add_secret(kSecretB));
  const std::string a0 = ring_mac(ring, 0, KeyUse::Cookie, {"x"});
  const std::string b0 = ring_mac(ring, 1, KeyUse::Csrf, {"x"});
  for (int i = 0; i < 100; i++) {
    ring_mac(ring, i % 2, i % 3 ? KeyUse::Cookie : KeyUse::Csrf, {std::to_string(i)});
    ASSERT_EQ(ring_mac(ring, 0, KeyUse::Cookie, {"x"}), a0);
    ASSERT_EQ(ring_mac(ring, 1, KeyUse::Csrf, {"x"}), b0);
  }
}

TEST(Crypto, SameSecretSameKeysDifferentSecretsDiffer) {
  KeyRing r1, r2, r3;
  ASSERT_TRUE(r1.add_secret(kSecretA));
  ASSERT_TRUE(r2.add_secret(kSecretA));
  ASSERT_TRUE(r3.add_secret(kSecretB));
  EXPECT_EQ(r1.hint(0), r2.hint(0));
  EXPECT_EQ(ring_mac(r1, 0, KeyUse::Cookie, {"m"}), ring_mac(r2, 0, KeyUse::Cookie, {"m"}));
  EXPECT_EQ(ring_mac(r1, 0, KeyUse::Csrf, {"m"}), ring_mac(r2, 0, KeyUse::Csrf, {"m"}));
  EXPECT_NE(ring_mac(r1, 0, KeyUse::Cookie, {"m"}), ring_mac(r3, 0, KeyUse::Cookie, {"m"}));
  EXPECT_NE(ring_mac(r1, 0, KeyUse::Cookie, {"m"}), ring_mac(r1, 0, KeyUse::Csrf, {"m"}));
  // One differing byte of the secret changes everything.
  std::string a2 = kSecretA;
  a2.back() ^= 1;
  KeyRing r4;
  ASSERT_TRUE(r4.add_secret(a2));
  EXPECT_NE(ring_mac(r1, 0, KeyUse::Cookie, {"m"}), ring_mac(r4, 0, KeyUse::Cookie, {"m"}));
}

TEST(Crypto, OutOfRangeKey) {
  KeyRing ring;
  unsigned char out[KeyRing::kMacLen];
  std::string_view part = "x";
  EXPECT_FALSE(ring.mac(0, KeyUse::Cookie, &part, 1, out));
  ASSERT_TRUE(ring.add_secret(kSecretA));
  EXPECT_TRUE(ring.mac(0, KeyUse::Cookie, &part, 1, out));
  EXPECT_FALSE(ring.mac(1, KeyUse::Cookie, &part, 1, out));
  unsigned char nonce[KeyRing::kNonceLen] = {}, tag[KeyRing::kTagLen], ct[1];
  EXPECT_FALSE(ring.seal(1, nonce, "", "x", ct, tag));
  EXPECT_FALSE(ring.open(1, nonce, "", "x", tag, ct));
}

TEST(Crypto, AeadMatchesReferenceWithHkdfKey) {
  KeyRing ring;
  ASSERT_TRUE(ring.add_secret(kSecretB));
  ASSERT_TRUE(ring.add_secret(kSecretA));
  const std::string key = hkdf_sha256(kSalt, kSecretA, "enc", 32);
  const std::string nonce = unhex("000102030405060708090a0b");
  const std::string aad = std::string("session") + '\0' + "header";
  for (size_t n : {0, 1, 15, 16, 17, 100, 1000}) {
    std::string pt(n, '\0');
    for (size_t i = 0; i < n; i++) pt[i] = static_cast<char>(i * 7 + 3);
    std::string ref_tag;
    const std::string ref_ct = gcm_seal(key, nonce, aad, pt, &ref_tag);

    std::string ct(n, '\0'), tag(KeyRing::kTagLen, '\0');
    ASSERT_TRUE(ring.seal(1, u8(nonce), aad, pt, reinterpret_cast<unsigned char*>(ct.data()),
                          reinterpret_cast<unsigned char*>(tag.data())));
    EXPECT_EQ(hex(ct), hex(ref_ct)) << n;
    EXPECT_EQ(hex(tag), hex(ref_tag)) << n;

    std::string back(n, '\0');
    ASSERT_TRUE(ring.open(1, u8(nonce), aad, ref_ct, u8(ref_tag),
                          reinterpret_cast<unsigned char*>(back.data())));
    EXPECT_EQ(back, pt);
    // Key 0 (another secret) must not open it.
    EXPECT_FALSE(ring.open(0, u8(nonce), aad, ref_ct, u8(ref_tag),
                           reinterpret_cast<unsigned char*>(back.data())));
  }
}

TEST(Crypto, AeadRejectsAnyTamperAndWipesOutput) {
  KeyRing ring;
  ASSERT_TRUE(ring.add_secret(kSecretA));
  std::string nonce(KeyRing::kNonceLen, '\x42');
  const std::string aad = "aad-bytes";
  const std::string pt = "attack at dawn, bring snacks";
  std::string ct(pt.size(), '\0'), tag(KeyRing::kTagLen, '\0');
  ASSERT_TRUE(ring.seal(0, u8(nonce), aad, pt, reinterpret_cast<unsigned char*>(ct.data()),
                        reinterpret_cast<unsigned char*>(tag.data())));
  EXPECT_EQ(ct.find("attack"), std::string::npos);

  auto try_open = [&](const std::string& n, const std::string& a, const std::string& c,
                      const std::string& t) {
    std::string out(c.size(), '\0');
    bool ok = ring.open(0, u8(n), a, c, u8(t), reinterpret_cast<unsigned char*>(out.data()));
    if (ok) {
      EXPECT_EQ(out, pt);
    } else {
      EXPECT_EQ(out, std::string(c.size(), '\0')) << "unauthenticated plaintext left behind";
    }
    return ok;
  };
  ASSERT_TRUE(try_open(nonce, aad, ct, tag));
  auto flips = [](std::string s, size_t bit) {
    s[bit / 8] = static_cast<char>(s[bit / 8] ^ (1 << (bit % 8)));
    return s;
  };
  for (size_t b = 0; b < nonce.size() * 8; b++) {
    EXPECT_FALSE(try_open(flips(nonce, b), aad, ct, tag));
  }
  for (size_t b = 0; b < aad.size() * 8; b++) {
    EXPECT_FALSE(try_open(nonce, flips(aad, b), ct, tag));
  }
  for (size_t b = 0; b < ct.size() * 8; b++) {
    EXPECT_FALSE(try_open(nonce, aad, flips(ct, b), tag));
  }
  for (size_t b = 0; b < tag.size() * 8; b++) {
    EXPECT_FALSE(try_open(nonce, aad, ct, flips(tag, b)));
  }
  EXPECT_FALSE(try_open(nonce, aad + "x", ct, tag));
  EXPECT_FALSE(try_open(nonce, aad, ct.substr(1), tag));
  // The decrypt context recovers after failures.
  EXPECT_TRUE(try_open(nonce, aad, ct, tag));
}

TEST(Crypto, SealContextReuseWithFreshNonces) {
  KeyRing ring;
  ASSERT_TRUE(ring.add_secret(kSecretA));
  const std::string key = hkdf_sha256(kSalt, kSecretA, "enc", 32);
  for (int i = 0; i < 50; i++) {
    std::string nonce(KeyRing::kNonceLen, static_cast<char>(i));
    std::string pt = "payload-" + std::to_string(i);
    std::string ct(pt.size(), '\0'), tag(KeyRing::kTagLen, '\0');
    ASSERT_TRUE(ring.seal(0, u8(nonce), "a", pt, reinterpret_cast<unsigned char*>(ct.data()),
                          reinterpret_cast<unsigned char*>(tag.data())));
    std::string ref_tag;
    ASSERT_EQ(ct, gcm_seal(key, nonce, "a", pt, &ref_tag));
    ASSERT_EQ(tag, ref_tag);
  }
}
