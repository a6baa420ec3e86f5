// src/core/jwt.h: JSON building, the DER -> r||s conversion, thumbprints and JWKS, key loading
// (keys made here with OpenSSL), tokens verified with the public key, and the per-worker cache's
// "reuse or re-sign" decision with a fake clock.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "base64url.h"
#include "jwt.h"
#include "session_data.h"

using sess::JwkPublic;
using sess::JwtAlg;
using sess::JwtCache;
using sess::JwtClaim;
using sess::JwtIssue;
using sess::JwtKey;
using sess::JwtKeyError;
using sess::JwtRequest;
using sess::pstring;

namespace {

std::string s(const pstring& p) { return std::string(p); }

std::string b64(std::string_view raw) {
  pstring out;
  sess::base64url_encode(raw, out);
  return s(out);
}

std::string unb64(std::string_view in) {
  pstring out;
  EXPECT_TRUE(sess::base64url_decode(in, out)) << in;
  return s(out);
}

std::string unhex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// Unix seconds t plus ms milliseconds.
struct FakeClock {
  uint64_t t = 1700000000;
  uint64_t ms = 0;
  uint64_t now_ms() const noexcept { return t * 1000 + ms; }
};

// A PEM private key made with OpenSSL: type "EC" (with a curve) / "ED25519" / "RSA".
std::string make_pem(const char* type, const char* curve = nullptr, bool pkcs8 = true) {
  EVP_PKEY* pkey = nullptr;
  if (std::string_view(type) == "EC") {
    pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve);
  } else if (std::string_view(type) == "RSA") {
    pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(1024));
  } else {
    pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, type);
  }
  EXPECT_NE(pkey, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  if (pkcs8) {
    EXPECT_EQ(PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr), 1);
  } else {
    EXPECT_EQ(PEM_write_bio_PrivateKey_traditional(bio, pkey, nullptr, nullptr, 0, nullptr,
                                                   nullptr),
              1);
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(pkey);
  return pem;
}

std::unique_ptr<JwtKey> load(const std::string& pem) {
  JwtKeyError err = JwtKeyError::Internal;
  std::string detail;
  auto key = JwtKey::from_pem(pem, &err, &detail);
  EXPECT_NE(key, nullptr) << static_cast<int>(err) << " " << detail;
  EXPECT_EQ(err, JwtKeyError::None);
  return key;
}

JwtKeyError load_error(const std::string& pem, std::string* detail = nullptr) {
  JwtKeyError err = JwtKeyError::None;
  std::string d;
  auto key = JwtKey::from_pem(pem, &err, &d);
  EXPECT_EQ(key, nullptr);
  if (detail) *detail = d;
  return err;
}

std::vector<std::string> split_token(const std::string& t) {
  std::vector<std::string> parts;
  size_t b = 0;
  for (;;) {
    size_t e = t.find('.', b);
    parts.push_back(t.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return parts;
}

// ---------------------------------------------------------------------------------------------
// DER -> raw r||s

std::string der_of(const BIGNUM* r, const BIGNUM* s) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_dup(r), BN_dup(s));
  unsigned char* der = nullptr;
  int n = i2d_ECDSA_SIG(sig, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  return out;
}

std::string raw_of(std::string_view der, size_t n = 32, bool* ok = nullptr) {
  std::string out(2 * n, '\0');
  bool good = sess::jwt_ecdsa_der_to_raw(der, n, reinterpret_cast<unsigned char*>(out.data()));
  if (ok) *ok = good;
  return good ? out : std::string();
}

TEST(JwtDer, FullWidthIntegers) {
  // r and s with the top bit set: DER adds a 0x00 sign byte, the raw form drops it.
  std::string rb(32, '\xff');
  std::string sb = unhex("8000000000000000000000000000000000000000000000000000000000000001");
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(rb.data()), 32, nullptr);
  BIGNUM* sn = BN_bin2bn(reinterpret_cast<const unsigned char*>(sb.data()), 32, nullptr);
  std::string der = der_of(r, sn);
  EXPECT_EQ(der.size(), 2u + 2 * (2 + 33));
  EXPECT_EQ(raw_of(der), rb + sb);
  BN_free(r);
  BN_free(sn);
}

TEST(JwtDer, ShortIntegersAreLeftPadded) {
  BIGNUM* r = nullptr;
  BIGNUM* sn = nullptr;
  BN_dec2bn(&r, "1");
  BN_hex2bn(&sn, "00ABCDEF");
  std::string raw = raw_of(der_of(r, sn));
  ASSERT_EQ(raw.size(), 64u);
  EXPECT_EQ(raw.substr(0, 32), std::string(31, '\0') + "\x01");
  EXPECT_EQ(raw.substr(32), std::string(29, '\0') + "\xab\xcd\xef");
  BN_free(r);
  BN_free(sn);
}

TEST(JwtDer, RefusesWhatIsNotOneSignature) {
  BIGNUM* r = nullptr;
  BIGNUM* sn = nullptr;
  BN_dec2bn(&r, "12345");
  BN_dec2bn(&sn, "67890");
  std::string der = der_of(r, sn);
  bool ok = true;
  raw_of(der + "x", 32, &ok);  // trailing bytes
  EXPECT_FALSE(ok);
  raw_of(der.substr(0, der.size() - 1), 32, &ok);  // truncated
  EXPECT_FALSE(ok);
  raw_of("", 32, &ok);
  EXPECT_FALSE(ok);
  raw_of("garbage-not-der", 32, &ok);
  EXPECT_FALSE(ok);
  // An integer wider than n bytes does not fit.
  BIGNUM* big = nullptr;
  BN_hex2bn(&big, "01000000000000000000000000000000000000000000000000000000000000000000");
  raw_of(der_of(big, sn), 32, &ok);
  EXPECT_FALSE(ok);
  raw_of(der, 32, &ok);
  EXPECT_TRUE(ok);
  BN_free(r);
  BN_free(sn);
  BN_free(big);
}

// ---------------------------------------------------------------------------------------------
// Thumbprints, JWKS, header

TEST(JwtJwk, Rfc8037Ed25519Thumbprint) {
  // RFC 8037 appendix A.2/A.3: the Ed25519 public key and its RFC 7638 thumbprint.
  JwkPublic k;
  k.alg = JwtAlg::EdDSA;
  k.x = unb64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
  pstring input;
  sess::jwk_thumbprint_input(k, input);
  EXPECT_EQ(s(input),
            R"({"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})");
  pstring kid;
  ASSERT_TRUE(sess::jwk_thumbprint(k, kid));
  EXPECT_EQ(s(kid), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
}

TEST(JwtJwk, EcThumbprintInputIsCanonical) {
  JwkPublic k;
  k.alg = JwtAlg::ES256;
  k.x = std::string(31, '\0') + "\x01";  // leading zero bytes are kept (32 bytes)
  k.y = std::string(32, '\xff');
  pstring input;
  sess::jwk_thumbprint_input(k, input);
  EXPECT_EQ(s(input), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" + b64(k.x) + "\",\"y\":\"" +
                          b64(k.y) + "\"}");
  EXPECT_EQ(b64(k.x).size(), 43u);
  pstring kid;
  ASSERT_TRUE(sess::jwk_thumbprint(k, kid));
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), md, &len, EVP_sha256(), nullptr);
  EXPECT_EQ(s(kid), b64(std::string_view(reinterpret_cast<char*>(md), len)));
  EXPECT_EQ(kid.size(), 43u);
}

TEST(JwtJwk, Documents) {
  JwkPublic ec;
  ec.alg = JwtAlg::ES256;
  ec.x = std::string(32, 'a');
  ec.y = std::string(32, 'b');
  pstring doc;
  sess::jwks_document(ec, "KID", doc);
  EXPECT_EQ(s(doc), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + b64(ec.x) +
                        "\",\"y\":\"" + b64(ec.y) +
                        "\",\"kid\":\"KID\",\"use\":\"sig\",\"alg\":\"ES256\"}]}");
  JwkPublic ed;
  ed.alg = JwtAlg::EdDSA;
  ed.x = std::string(32, 'c');
  doc.clear();
  sess::jwks_document(ed, "K2", doc);
  EXPECT_EQ(s(doc), "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" + b64(ed.x) +
                        "\",\"kid\":\"K2\",\"use\":\"sig\",\"alg\":\"EdDSA\"}]}");
}

TEST(JwtJson, Header) {
  pstring h;
  sess::jwt_header_json(JwtAlg::ES256, "abc", h);
  EXPECT_EQ(s(h), R"({"alg":"ES256","typ":"JWT","kid":"abc"})");
  h.clear();
  sess::jwt_header_json(JwtAlg::EdDSA, "x_-y", h);
  EXPECT_EQ(s(h), R"({"alg":"EdDSA","typ":"JWT","kid":"x_-y"})");
}

// ---------------------------------------------------------------------------------------------
// Claims and payload

TEST(JwtJson, IdentityEscapes) {
  pstring out;
  sess::jwt_identity_json("example.com", "al\"ice\\\n\x01", out);
  EXPECT_EQ(s(out), R"("iss":"example.com","sub":"al\"ice\\\u000a\u0001")");
  out.clear();
  sess::jwt_identity_json("", "caf\xc3\xa9", out);
  EXPECT_EQ(s(out), "\"iss\":\"\",\"sub\":\"caf\xc3\xa9\"");
}

TEST(JwtJson, ClaimsFromSession) {
  sess::SessionData d;
  ASSERT_TRUE(d.decode(R"({"user":"alice","role":"admin","n":42,)"
                       R"("big":123456789012345678901234567890,"ok":true,"nothing":null,)"
                       R"("obj":{"a":[1, 2, {"b":"x"}]},"q":"say \"hi\""})"));
  std::vector<JwtClaim> c = {{"role", d.get("role")},   {"n", d.get("n")},
                             {"missing", d.get("zz")},  {"big", d.get("big")},
                             {"ok", d.get("ok")},       {"nothing", d.get("nothing")},
                             {"obj", d.get("obj")},     {"q", d.get("q")}};
  pstring out;
  sess::jwt_claims_json(c.data(), c.size(), out);
  EXPECT_EQ(s(out), R"(,"role":"admin","n":42,"big":123456789012345678901234567890,"ok":true,)"
                    R"("nothing":null,"obj":{"a":[1,2,{"b":"x"}]},"q":"say \"hi\"")");
}

TEST(JwtJson, ClaimsThatAreNotStrictJsonAreLeftOut) {
  // Flask keeps floats as Python writes them: NaN and Infinity are not JSON.
  sess::SessionValue nan(std::pmr::get_default_resource());
  nan.key = "f";
  nan.text = "NaN";
  nan.is_string = false;
  sess::SessionValue inf = nan;
  inf.text = "[1,Infinity]";
  sess::SessionValue tagged = nan;
  tagged.text = R"({" t":[1,2]})";  // a Flask tuple: JSON, kept as such
  std::vector<JwtClaim> c = {{"a", &nan}, {"b", &inf}, {"c", &tagged}};
  pstring out;
  sess::jwt_claims_json(c.data(), c.size(), out);
  EXPECT_EQ(s(out), R"(,"c":{" t":[1,2]})");
}

TEST(JwtJson, ClaimsWithControlBytesAreLeftOut) {
  sess::SessionData d;
  ASSERT_TRUE(d.decode(R"({"a":"x\u0000y","b":"ok","c":["ok","x\ny"],"d":{"k\u001b":1},)"
                       R"("e":{"k":{"l":"\u007f"}},"f":"tab\there","g":["caf\u00e9"]})"));
  std::vector<JwtClaim> c = {{"a", d.get("a")}, {"b", d.get("b")}, {"c", d.get("c")},
                             {"d", d.get("d")}, {"e", d.get("e")}, {"f", d.get("f")},
                             {"g", d.get("g")}};
  pstring out;
  sess::JwtOmitted omitted;
  sess::jwt_claims_json(c.data(), c.size(), out, &omitted);
  EXPECT_EQ(s(out), ",\"b\":\"ok\",\"g\":[\"caf\xc3\xa9\"]");
  EXPECT_EQ(omitted.count, 5u);
  EXPECT_EQ(omitted.name, "a");
  EXPECT_EQ(omitted.reason, sess::JwtClaimOmit::ControlByte);
}

TEST(JwtJson, ClaimsWithDuplicateMembersAreLeftOut) {
  auto value = [](const char* json) {
    sess::SessionValue v(std::pmr::get_default_resource());
    v.text = json;
    v.is_string = false;
    return v;
  };
  struct Case {
    const char* json;
    sess::JwtClaimOmit want;
  } cases[] = {
      {R"({"admin":false,"admin":true})", sess::JwtClaimOmit::DuplicateMember},
      {R"({"a":1,"\u0061":2})", sess::JwtClaimOmit::DuplicateMember},  // the same once decoded
      {R"([1,{"x":{"y":1,"z":2,"y":3}}])", sess::JwtClaimOmit::DuplicateMember},
      {R"({"a":{"k":1},"b":{"k":1}})", sess::JwtClaimOmit::None},  // one name in two objects
      {R"({"a":{"a":{"a":1}}})", sess::JwtClaimOmit::None},        // nested, not siblings
      {R"({"k":1,"K":2,"k ":3})", sess::JwtClaimOmit::None},
      {R"([{"k":1},{"k":2}])", sess::JwtClaimOmit::None},
      {R"({})", sess::JwtClaimOmit::None},
      {R"({"a":NaN})", sess::JwtClaimOmit::NotJson},
  };
  for (const Case& c : cases) {
    sess::SessionValue v = value(c.json);
    pstring json;
    EXPECT_EQ(sess::jwt_claim_check(v, json), c.want) << c.json;
    if (c.want != sess::JwtClaimOmit::None) {
      EXPECT_EQ(s(json), "") << c.json;
    }
  }
  // Many members: sorted, not compared pairwise.
  std::string many = "{";
  for (int i = 0; i < 20000; i++) many += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  std::string unique = many;
  unique.back() = '}';
  many += "\"k19999\":0}";
  sess::SessionValue u = value(unique.c_str());
  sess::SessionValue m = value(many.c_str());
  pstring json;
  EXPECT_EQ(sess::jwt_claim_check(u, json), sess::JwtClaimOmit::None);
  EXPECT_EQ(s(json), unique);
  json.clear();
  EXPECT_EQ(sess::jwt_claim_check(m, json), sess::JwtClaimOmit::DuplicateMember);
  // In the token: left out, the rest kept.
  sess::SessionValue dup = value(R"({"admin":false,"admin":true})");
  sess::SessionValue ok = value(R"({"admin":true})");
  std::vector<JwtClaim> c = {{"perm", &dup}, {"perm2", &ok}};
  pstring out;
  sess::JwtOmitted omitted;
  sess::jwt_claims_json(c.data(), c.size(), out, &omitted);
  EXPECT_EQ(s(out), R"(,"perm2":{"admin":true})");
  EXPECT_EQ(omitted.count, 1u);
  EXPECT_EQ(omitted.name, "perm");
  EXPECT_EQ(omitted.reason, sess::JwtClaimOmit::DuplicateMember);
}

TEST(JwtJson, Payload) {
  pstring id;
  sess::jwt_identity_json("srv", "bob", id);
  pstring out;
  sess::jwt_payload_json(id, 100, 160, "", out);
  EXPECT_EQ(s(out), R"({"iss":"srv","sub":"bob","iat":100,"exp":160})");
  out.clear();
  sess::jwt_payload_json(id, 0, 18446744073709551615ull, R"(,"r":"x")", out);
  EXPECT_EQ(s(out), R"({"iss":"srv","sub":"bob","iat":0,"exp":18446744073709551615,"r":"x"})");
}

// ---------------------------------------------------------------------------------------------
// Keys

TEST(JwtKeys, LoadsP256AndEd25519) {
  for (bool pkcs8 : {true, false}) {
    auto ec = load(make_pem("EC", "P-256", pkcs8));
    ASSERT_NE(ec, nullptr);
    EXPECT_EQ(ec->alg(), JwtAlg::ES256);
    EXPECT_EQ(ec->pub().x.size(), 32u);
    EXPECT_EQ(ec->pub().y.size(), 32u);
  }
  auto ed = load(make_pem("ED25519"));
  ASSERT_NE(ed, nullptr);
  EXPECT_EQ(ed->alg(), JwtAlg::EdDSA);
  EXPECT_EQ(ed->pub().x.size(), 32u);
  EXPECT_TRUE(ed->pub().y.empty());
}

TEST(JwtKeys, KidHeaderAndJwksAgree) {
  for (const char* type : {"EC", "ED25519"}) {
    auto key = load(make_pem(type, "P-256"));
    ASSERT_NE(key, nullptr);
    pstring kid;
    ASSERT_TRUE(sess::jwk_thumbprint(key->pub(), kid));
    EXPECT_EQ(std::string(key->kid()), s(kid));
    pstring header;
    sess::jwt_header_json(key->alg(), kid, header);
    EXPECT_EQ(unb64(key->header_b64()), s(header));
    pstring doc;
    sess::jwks_document(key->pub(), kid, doc);
    EXPECT_EQ(std::string(key->jwks()), s(doc));
    EXPECT_EQ(std::string(key->jwks()).find("\"d\""), std::string::npos);  // no private part
  }
}

TEST(JwtKeys, TheSameKeyHasTheSameKidAndAnotherId) {
  std::string pem = make_pem("ED25519");
  auto a = load(pem);
  auto b = load(pem);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->kid(), b->kid());
  EXPECT_NE(a->id(), b->id());
  EXPECT_NE(a->id(), 0u);
}

TEST(JwtKeys, Refusals) {
  std::string detail;
  EXPECT_EQ(load_error(make_pem("RSA"), &detail), JwtKeyError::UnsupportedType);
  EXPECT_EQ(detail, "RSA");
  EXPECT_EQ(load_error(make_pem("EC", "P-384"), &detail), JwtKeyError::UnsupportedCurve);
  EXPECT_EQ(detail, "secp384r1");
  EXPECT_EQ(load_error(make_pem("EC", "secp256k1"), &detail), JwtKeyError::UnsupportedCurve);
  EXPECT_EQ(detail, "secp256k1");
  EXPECT_EQ(load_error(make_pem("ED448"), &detail), JwtKeyError::UnsupportedType);
  EXPECT_EQ(detail, "ED448");
  EXPECT_EQ(load_error("garbage\n"), JwtKeyError::NotPrivateKey);
  EXPECT_EQ(load_error(""), JwtKeyError::NotPrivateKey);
  EXPECT_EQ(load_error("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            JwtKeyError::NotPrivateKey);
}

TEST(JwtKeys, PublicKeyAndEncryptedKeyAreRefused) {
  EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  ASSERT_NE(pkey, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, pkey);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  EXPECT_EQ(load_error(std::string(data, static_cast<size_t>(n))), JwtKeyError::NotPrivateKey);
  BIO_free(bio);

  bio = BIO_new(BIO_s_mem());
  static char pass[] = "passphrase";
  ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_256_cbc(), pass, sizeof(pass) - 1,
                                          nullptr, nullptr),
            1);
  n = BIO_get_mem_data(bio, &data);
  EXPECT_EQ(load_error(std::string(data, static_cast<size_t>(n))), JwtKeyError::Encrypted);
  BIO_free(bio);
  EVP_PKEY_free(pkey);
}

TEST(JwtKeys, SignaturesVerify) {
  for (const char* type : {"EC", "ED25519"}) {
    auto key = load(make_pem(type, "P-256"));
    ASSERT_NE(key, nullptr);
    pstring sig_b64;
    ASSERT_TRUE(key->sign("hello", sig_b64));
    EXPECT_EQ(sig_b64.size(), 86u);  // 64 bytes
    std::string sig = unb64(sig_b64);
    EXPECT_TRUE(key->verify("hello", sig));
    EXPECT_FALSE(key->verify("hellO", sig));
    sig[10] ^= 1;
    EXPECT_FALSE(key->verify("hello", sig));
    EXPECT_FALSE(key->verify("hello", sig.substr(1)));
  }
}

// ---------------------------------------------------------------------------------------------
// Issuing and the cache

struct Issued {
  JwtIssue how;
  std::string token;
};

Issued issue(JwtCache& cache, const JwtKey& key, const FakeClock& clock, std::string_view sub,
             uint64_t lifetime = 60, std::string_view iss = "example.com",
             const std::vector<JwtClaim>& claims = {}) {
  JwtRequest req;
  req.key = &key;
  req.lifetime = lifetime;
  req.iss = iss;
  req.sub = sub;
  req.claims = claims.data();
  req.nclaims = claims.size();
  pstring out;
  JwtIssue how = sess::jwt_issue(cache, req, clock.now_ms(), out);
  return {how, s(out)};
}

TEST(JwtIssueTest, TokenIsAVerifiableCompactJws) {
  for (const char* type : {"EC", "ED25519"}) {
    auto key = load(make_pem(type, "P-256"));
    ASSERT_NE(key, nullptr);
    JwtCache cache(7);
    FakeClock clock;
    sess::SessionData d;
    ASSERT_TRUE(d.decode(R"({"user":"alice","role":"admin","n":3})"));
    Issued t = issue(cache, *key, clock, "alice", 60, "example.com",
                     {{"role", d.get("role")}, {"n", d.get("n")}});
    ASSERT_EQ(t.how, JwtIssue::Signed);
    auto parts = split_token(t.token);
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(parts[0], std::string(key->header_b64()));
    EXPECT_EQ(t.token.find('='), std::string::npos);
    std::string alg = key->alg() == JwtAlg::ES256 ? "ES256" : "EdDSA";
    EXPECT_EQ(unb64(parts[0]), "{\"alg\":\"" + alg + "\",\"typ\":\"JWT\",\"kid\":\"" +
                                   std::string(key->kid()) + "\"}");
    EXPECT_EQ(unb64(parts[1]), R"({"iss":"example.com","sub":"alice","iat":1700000000,)"
                               R"("exp":1700000060,"role":"admin","n":3})");
    std::string sig = unb64(parts[2]);
    EXPECT_EQ(sig.size(), 64u);
    EXPECT_TRUE(key->verify(parts[0] + "." + parts[1], sig));
    // Another payload under the same signature does not verify.
    pstring other;
    sess::base64url_encode(R"({"iss":"example.com","sub":"mallory","iat":1700000000,)"
                           R"("exp":1700000060,"role":"admin","n":3})", other);
    EXPECT_FALSE(key->verify(parts[0] + "." + s(other), sig));
  }
}

TEST(JwtIssueTest, ReusedUntilHalfTheLifetimeThenSignedAgain) {
  auto key = load(make_pem("ED25519"));
  ASSERT_NE(key, nullptr);
  JwtCache cache(1);
  FakeClock clock;
  const uint64_t t0 = clock.t;
  Issued a = issue(cache, *key, clock, "alice", 60);
  ASSERT_EQ(a.how, JwtIssue::Signed);
  Issued b = issue(cache, *key, clock, "alice", 60);
  EXPECT_EQ(b.how, JwtIssue::Cached);
  EXPECT_EQ(b.token, a.token);
  clock.t = t0 + 29;
  Issued c = issue(cache, *key, clock, "alice", 60);
  EXPECT_EQ(c.how, JwtIssue::Cached);
  EXPECT_EQ(c.token, a.token);
  clock.t = t0 + 30;  // exactly half the lifetime left: still this one
  EXPECT_EQ(issue(cache, *key, clock, "alice", 60).token, a.token);
  clock.ms = 1;       // less than half left: a new one
  Issued d = issue(cache, *key, clock, "alice", 60);
  EXPECT_EQ(d.how, JwtIssue::Signed);
  EXPECT_NE(d.token, a.token);
  EXPECT_NE(unb64(split_token(d.token)[1]).find("\"iat\":1700000030,\"exp\":1700000090"),
            std::string::npos);
  Issued e = issue(cache, *key, clock, "alice", 60);
  EXPECT_EQ(e.how, JwtIssue::Cached);
  EXPECT_EQ(e.token, d.token);
  EXPECT_EQ(cache.size(), 1u);  // replaced in place
}

TEST(JwtIssueTest, ClockGoingBackSignsAgain) {
  auto key = load(make_pem("ED25519"));
  JwtCache cache(1);
  FakeClock clock;
  Issued a = issue(cache, *key, clock, "alice");
  clock.ms = 0;
  clock.t -= 1;
  Issued b = issue(cache, *key, clock, "alice");
  EXPECT_EQ(b.how, JwtIssue::Signed);
  EXPECT_NE(a.token, b.token);
}

TEST(JwtIssueTest, EveryPartOfTheKeyCounts) {
  auto key = load(make_pem("EC", "P-256"));
  auto key2 = load(make_pem("EC", "P-256"));
  JwtCache cache(3);
  FakeClock clock;
  sess::SessionData d1, d2;
  ASSERT_TRUE(d1.decode(R"({"role":"admin"})"));
  ASSERT_TRUE(d2.decode(R"({"role":"user"})"));
  std::vector<std::string> tokens;
  auto fresh = [&](const Issued& t) {
    EXPECT_EQ(t.how, JwtIssue::Signed);
    for (const auto& o : tokens) EXPECT_NE(o, t.token);
    tokens.push_back(t.token);
  };
  fresh(issue(cache, *key, clock, "alice"));
  fresh(issue(cache, *key, clock, "bob"));                      // another user
  fresh(issue(cache, *key, clock, "alice", 61));                // another lifetime
  fresh(issue(cache, *key, clock, "alice", 60, "other.org"));   // another issuer
  fresh(issue(cache, *key2, clock, "alice"));                   // another key
  fresh(issue(cache, *key, clock, "alice", 60, "example.com", {{"role", d1.get("role")}}));
  fresh(issue(cache, *key, clock, "alice", 60, "example.com", {{"role", d2.get("role")}}));
  fresh(issue(cache, *key, clock, "alice", 60, "example.com", {{"rolf", d2.get("role")}}));
  // ... and each of them is now cached.
  EXPECT_EQ(issue(cache, *key, clock, "bob").how, JwtIssue::Cached);
  EXPECT_EQ(issue(cache, *key2, clock, "alice").how, JwtIssue::Cached);
  EXPECT_EQ(issue(cache, *key, clock, "alice", 60, "example.com", {{"role", d2.get("role")}}).how,
            JwtIssue::Cached);
}

TEST(JwtCacheTest, ReusableBoundaries) {
  // Signed at 100.000 s: iat 100, exp 160; reusable while at least 30 s are left.
  EXPECT_TRUE(JwtCache::reusable(100000, 60, 100000));
  EXPECT_TRUE(JwtCache::reusable(100000, 60, 129999));
  EXPECT_TRUE(JwtCache::reusable(100000, 60, 130000));    // exactly half left
  EXPECT_FALSE(JwtCache::reusable(100000, 60, 130001));
  EXPECT_FALSE(JwtCache::reusable(100000, 60, 1000000));
  EXPECT_FALSE(JwtCache::reusable(100000, 60, 99999));    // signed in the future
  // Signed at 100.999 s: iat is still 100, so exp is 160 and the window ends at 130.000, not
  // at 130.999 (counted from the whole-second iat, not from the signing moment).
  EXPECT_TRUE(JwtCache::reusable(100999, 60, 130000));
  EXPECT_FALSE(JwtCache::reusable(100999, 60, 130001));
  // Odd lifetimes: 3 s from iat 100 -> exp 103, at least 1.5 s left until 101.500.
  EXPECT_TRUE(JwtCache::reusable(100000, 3, 101500));
  EXPECT_FALSE(JwtCache::reusable(100000, 3, 101501));
  EXPECT_FALSE(JwtCache::reusable(100900, 3, 101600));    // (was reused to 101.999 before)
  // The shortest lifetime: 2 s, signed late in its second, still has > 1 s left.
  EXPECT_TRUE(JwtCache::reusable(100999, 2, 100999));
  EXPECT_FALSE(JwtCache::reusable(100999, 2, 101001));
  // Lifetimes outside the bounds are never reused; no overflow near the top of the clock.
  EXPECT_FALSE(JwtCache::reusable(100000, 1, 100000));
  EXPECT_FALSE(JwtCache::reusable(100000, sess::kJwtMaxLifetime + 1, 100000));
  EXPECT_TRUE(JwtCache::reusable(100000, sess::kJwtMaxLifetime, 100000));
  EXPECT_FALSE(JwtCache::reusable(UINT64_MAX - 10, 60, UINT64_MAX));
  EXPECT_FALSE(JwtCache::reusable(0, 10, UINT64_MAX));
}

// Every token handed out, at any millisecond, has at least half of its lifetime left until its
// exp (as the README promises), for every accepted lifetime.
TEST(JwtIssueTest, EveryTokenHasAtLeastHalfItsLifetimeLeft) {
  auto key = load(make_pem("ED25519"));
  ASSERT_NE(key, nullptr);
  for (uint64_t lifetime : {2, 3, 5, 60, 61}) {
    JwtCache cache(11);
    const uint64_t start = 1700000000ull * 1000 + 777;
    size_t signed_n = 0;
    for (uint64_t now = start; now < start + 3 * lifetime * 1000; now += 7) {
      JwtRequest req;
      req.key = key.get();
      req.lifetime = lifetime;
      req.iss = "example.com";
      req.sub = "alice";
      pstring out;
      JwtIssue how = sess::jwt_issue(cache, req, now, out);
      ASSERT_TRUE(how == JwtIssue::Cached || how == JwtIssue::Signed);
      signed_n += how == JwtIssue::Signed;
      std::string payload = unb64(split_token(s(out))[1]);
      const size_t e = payload.find("\"exp\":");
      ASSERT_NE(e, std::string::npos);
      const uint64_t exp = std::stoull(payload.substr(e + 6));
      const size_t i = payload.find("\"iat\":");
      const uint64_t iat = std::stoull(payload.substr(i + 6));
      ASSERT_EQ(exp - iat, lifetime);
      ASSERT_LE(iat * 1000, now) << "iat in the future";
      ASSERT_GE(2 * (exp * 1000 - now), lifetime * 1000)
          << "lifetime " << lifetime << " at " << now - start << " ms";
    }
    // ... and tokens are still reused: a signature per half lifetime, at most two a second
    // for the shortest (a token signed late in its second is reused only until the next).
    EXPECT_LE(signed_n, std::max<uint64_t>(3 * 2 + 2, 2 * 3 * lifetime + 2)) << lifetime;
  }
}

TEST(JwtLifetimeTest, Bounds) {
  EXPECT_EQ(sess::jwt_lifetime_check(0), sess::JwtLifetime::TooShort);
  EXPECT_EQ(sess::jwt_lifetime_check(1), sess::JwtLifetime::TooShort);
  EXPECT_EQ(sess::jwt_lifetime_check(2), sess::JwtLifetime::Ok);
  EXPECT_EQ(sess::jwt_lifetime_check(60), sess::JwtLifetime::Ok);
  EXPECT_EQ(sess::jwt_lifetime_check(365 * 86400), sess::JwtLifetime::Ok);
  EXPECT_EQ(sess::jwt_lifetime_check(365 * 86400 + 1), sess::JwtLifetime::TooLong);
  EXPECT_EQ(sess::jwt_lifetime_check(UINT64_MAX), sess::JwtLifetime::TooLong);
}

TEST(JwtIssueTest, LifetimeOutsideTheBoundsSignsNothing) {
  auto key = load(make_pem("ED25519"));
  JwtCache cache(1);
  FakeClock clock;
  EXPECT_EQ(issue(cache, *key, clock, "alice", 1).how, JwtIssue::Failed);
  EXPECT_EQ(issue(cache, *key, clock, "alice", sess::kJwtMaxLifetime + 1).how, JwtIssue::Failed);
  EXPECT_EQ(issue(cache, *key, clock, "alice", UINT64_MAX).how, JwtIssue::Failed);
  Issued t = issue(cache, *key, clock, "alice", sess::kJwtMaxLifetime);
  ASSERT_EQ(t.how, JwtIssue::Signed);
  EXPECT_NE(unb64(split_token(t.token)[1]).find("\"exp\":1731536000"), std::string::npos);
}

TEST(JwtIssueTest, NoTokenForASubjectWithAControlByte) {
  auto key = load(make_pem("EC", "P-256"));
  JwtCache cache(1);
  FakeClock clock;
  for (std::string_view sub : {std::string_view("admin\0evil", 10), std::string_view("a\nb"),
                               std::string_view("a\rb"), std::string_view("a\tb"),
                               std::string_view("\x1b[31m"), std::string_view("a\x7f"),
                               std::string_view("")}) {
    Issued t = issue(cache, *key, clock, sub);
    EXPECT_EQ(t.how, JwtIssue::NoSubject) << sub;
    EXPECT_EQ(t.token, "");
  }
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(issue(cache, *key, clock, "caf\xc3\xa9 \xe2\x80\xa8").how, JwtIssue::Signed);
}

TEST(JwtJson, SubjectIsTheUserSessionUserShows) {
  sess::SessionData d;
  ASSERT_TRUE(d.decode(R"({"a":"alice","b":"admin\u0000x","c":"x\ny","d":"","e":5,)"
                       R"("f":null,"g":"caf\u00e9","h":"tab\there","i":"del\u007f"})"));
  EXPECT_TRUE(sess::jwt_subject_ok(sess::session_user(d, "a")));
  EXPECT_TRUE(sess::jwt_subject_ok(sess::session_user(d, "g")));
  for (const char* k : {"b", "c", "d", "e", "f", "h", "i", "zz"}) {
    EXPECT_FALSE(sess::jwt_subject_ok(sess::session_user(d, k))) << k;
  }
  EXPECT_FALSE(sess::jwt_subject_ok(nullptr));
  sess::SessionData amb;  // two keys that differ only in case: nobody
  ASSERT_TRUE(amb.decode(R"({"user":"alice","USER":"bob"})"));
  EXPECT_FALSE(sess::jwt_subject_ok(sess::session_user(amb, "user")));
}

TEST(JwtCacheTest, BoundedWithLeastRecentlyUsedEviction) {
  JwtCache cache(5, 1);  // one set of kWays entries
  ASSERT_EQ(cache.capacity(), JwtCache::kWays);
  for (size_t i = 0; i < JwtCache::kWays; i++) {
    EXPECT_TRUE(cache.insert(1, 60, "k" + std::to_string(i), 100, "t" + std::to_string(i)));
  }
  EXPECT_EQ(cache.size(), JwtCache::kWays);
  ASSERT_NE(cache.find(1, 60, "k0", 100), nullptr);  // k0 used: k1 is now the oldest
  EXPECT_TRUE(cache.insert(1, 60, "new", 100, "tn"));
  EXPECT_EQ(cache.size(), JwtCache::kWays);
  EXPECT_EQ(cache.find(1, 60, "k1", 100), nullptr);
  ASSERT_NE(cache.find(1, 60, "k0", 100), nullptr);
  EXPECT_EQ(*cache.find(1, 60, "new", 100), "tn");
  EXPECT_EQ(*cache.find(1, 60, "k2", 100), "t2");
  // Many distinct keys: never more than the capacity.
  JwtCache big(9, 8);
  for (int i = 0; i < 10000; i++) {
    big.insert(1, 60, "user-" + std::to_string(i), 100, "token-" + std::to_string(i));
  }
  EXPECT_EQ(big.size(), big.capacity());
  big.clear();
  EXPECT_EQ(big.size(), 0u);
}

TEST(JwtCacheTest, ExactMatchOnly) {
  JwtCache cache(5, 1);
  ASSERT_TRUE(cache.insert(1, 60, "abc", 100000, "T"));
  EXPECT_NE(cache.find(1, 60, "abc", 100000), nullptr);
  EXPECT_EQ(cache.find(1, 60, "abd", 100000), nullptr);
  EXPECT_EQ(cache.find(1, 60, "ab", 100000), nullptr);
  EXPECT_EQ(cache.find(2, 60, "abc", 100000), nullptr);
  EXPECT_EQ(cache.find(1, 61, "abc", 100000), nullptr);
  EXPECT_NE(cache.find(1, 60, "abc", 130000), nullptr);  // half left
  EXPECT_EQ(cache.find(1, 60, "abc", 130001), nullptr);  // stale
}

TEST(JwtCacheTest, OversizedEntriesAreNotCached) {
  JwtCache cache(5);
  EXPECT_FALSE(cache.insert(1, 60, std::string(JwtCache::kMaxClaims + 1, 'c'), 100, "t"));
  EXPECT_FALSE(cache.insert(1, 60, "c", 100, std::string(JwtCache::kMaxToken + 1, 't')));
  EXPECT_FALSE(cache.insert(0, 60, "c", 100, "t"));  // key id 0 is never a key
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_TRUE(cache.insert(1, 60, std::string(JwtCache::kMaxClaims, 'c'), 100,
                           std::string(JwtCache::kMaxToken, 't')));
}

TEST(JwtIssueTest, LargeClaimsAreSignedEveryTime) {
  auto key = load(make_pem("ED25519"));
  JwtCache cache(5);
  FakeClock clock;
  std::string big(JwtCache::kMaxClaims, 'u');
  Issued a = issue(cache, *key, clock, big);
  Issued b = issue(cache, *key, clock, big);
  EXPECT_EQ(a.how, JwtIssue::Signed);
  EXPECT_EQ(b.how, JwtIssue::Signed);
  EXPECT_EQ(cache.size(), 0u);
  // Ed25519 is deterministic: the same input gives the same token.
  EXPECT_EQ(a.token, b.token);
}

}  // namespace
