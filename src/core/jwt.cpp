#include "jwt.h"

#include "base64url.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <rapidjson/reader.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>

namespace sess {

namespace {

constexpr size_t kCoordLen = 32;     // P-256 field elements, Ed25519 public keys
constexpr size_t kMaxDerSig = 80;    // a DER P-256 signature is at most 72 bytes

std::atomic<uint64_t> key_ids{0};

void append_b64(std::string_view raw, pstring& out) { base64url_encode(raw, out); }

void append_uint(uint64_t v, pstring& out) {
  char buf[24];
  size_t n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) out.push_back(buf[--n]);
}

// A JSON member "name":"value" whose value is base64url or another plain ASCII token (never
// needs escaping).
void member(std::string_view name, std::string_view value, pstring& out) {
  out.push_back('"');
  out.append(name);
  out.append("\":\"");
  out.append(value);
  out.push_back('"');
}

void member_b64(std::string_view name, std::string_view raw, pstring& out) {
  out.push_back('"');
  out.append(name);
  out.append("\":\"");
  append_b64(raw, out);
  out.push_back('"');
}

std::string_view crv_of(const JwkPublic& k) { return k.alg == JwtAlg::ES256 ? "P-256" : "Ed25519"; }
std::string_view kty_of(const JwkPublic& k) { return k.alg == JwtAlg::ES256 ? "EC" : "OKP"; }

}  // namespace

std::string_view jwt_alg_name(JwtAlg alg) noexcept {
  return alg == JwtAlg::ES256 ? "ES256" : "EdDSA";
}

// ---------------------------------------------------------------------------------------------
// Encoding

bool jwt_ecdsa_der_to_raw(std::string_view der, size_t n, unsigned char* out) noexcept {
  if (der.empty() || der.size() > 1024 || n == 0) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (sig == nullptr) {
    ERR_clear_error();
    return false;
  }
  bool ok = p == reinterpret_cast<const unsigned char*>(der.data()) + der.size();  // all of it
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig, &r, &s);
  ok = ok && r != nullptr && s != nullptr && !BN_is_negative(r) && !BN_is_negative(s) &&
       BN_bn2binpad(r, out, static_cast<int>(n)) == static_cast<int>(n) &&
       BN_bn2binpad(s, out + n, static_cast<int>(n)) == static_cast<int>(n);
  ECDSA_SIG_free(sig);
  if (!ok) ERR_clear_error();
  return ok;
}

void jwk_thumbprint_input(const JwkPublic& k, pstring& out) {
  // Lexicographic order of the required members: crv, kty, x, y.
  out.push_back('{');
  member("crv", crv_of(k), out);
  out.push_back(',');
  member("kty", kty_of(k), out);
  out.push_back(',');
  member_b64("x", k.x, out);
  if (k.alg == JwtAlg::ES256) {
    out.push_back(',');
    member_b64("y", k.y, out);
  }
  out.push_back('}');
}

bool jwk_thumbprint(const JwkPublic& k, pstring& out) {
  pstring input(out.get_allocator().resource());
  jwk_thumbprint_input(k, input);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(input.data(), input.size(), md, &len, EVP_sha256(), nullptr) != 1 || len != 32) {
    ERR_clear_error();
    return false;
  }
  append_b64(std::string_view(reinterpret_cast<const char*>(md), len), out);
  return true;
}

void jwks_document(const JwkPublic& k, std::string_view kid, pstring& out) {
  out.append("{\"keys\":[{");
  member("kty", kty_of(k), out);
  out.push_back(',');
  member("crv", crv_of(k), out);
  out.push_back(',');
  member_b64("x", k.x, out);
  if (k.alg == JwtAlg::ES256) {
    out.push_back(',');
    member_b64("y", k.y, out);
  }
  out.push_back(',');
  member("kid", kid, out);
  out.push_back(',');
  member("use", "sig", out);
  out.push_back(',');
  member("alg", jwt_alg_name(k.alg), out);
  out.append("}]}");
}

void jwt_header_json(JwtAlg alg, std::string_view kid, pstring& out) {
  out.push_back('{');
  member("alg", jwt_alg_name(alg), out);
  out.push_back(',');
  member("typ", "JWT", out);
  out.push_back(',');
  out.append("\"kid\":");
  append_json_string(kid, out);
  out.push_back('}');
}

void jwt_identity_json(std::string_view iss, std::string_view sub, pstring& out) {
  out.append("\"iss\":");
  append_json_string(iss, out);
  out.append(",\"sub\":");
  append_json_string(sub, out);
}

bool jwt_subject_ok(const SessionValue* user) noexcept {
  return session_user_logged_in(user) && !has_ctl(user->text);
}

namespace {

// SAX handler over one JSON value: fails on a string or member name with a control byte
// (decoded: "\u0000" counts) and on an object with two members of the same (decoded) name. The
// names of the objects being read are views into the in-situ buffer, kept on one stack: an
// object's names are sorted and compared when it ends (n log n, whatever its size), then popped.
class ClaimChecker {
 public:
  using SizeType = rapidjson::SizeType;

  explicit ClaimChecker(std::pmr::memory_resource* mr) : names_(mr), starts_(mr) {}

  bool Null() { return true; }
  bool Bool(bool) { return true; }
  bool Int(int) { return true; }
  bool Uint(unsigned) { return true; }
  bool Int64(int64_t) { return true; }
  bool Uint64(uint64_t) { return true; }
  bool Double(double) { return true; }
  bool RawNumber(const char*, SizeType, bool) { return true; }
  bool String(const char* s, SizeType len, bool) { return text_ok(s, len); }
  bool Key(const char* s, SizeType len, bool) {
    if (!text_ok(s, len)) return false;
    names_.emplace_back(s, len);
    return true;
  }
  bool StartObject() {
    starts_.push_back(names_.size());
    return true;
  }
  bool EndObject(SizeType) {
    if (starts_.empty()) return false;
    const size_t from = starts_.back();
    starts_.pop_back();
    auto first = names_.begin() + static_cast<std::ptrdiff_t>(from);
    std::sort(first, names_.end());
    const bool dup = std::adjacent_find(first, names_.end()) != names_.end();
    names_.erase(first, names_.end());
    if (dup) duplicate = true;
    return !dup;
  }
  bool StartArray() { return true; }
  bool EndArray(SizeType) { return true; }

  bool control = false;
  bool duplicate = false;

 private:
  bool text_ok(const char* s, SizeType len) {
    if (has_ctl(std::string_view(s, len))) {
      control = true;
      return false;
    }
    return true;
  }

  std::pmr::vector<std::string_view> names_;
  std::pmr::vector<size_t> starts_;
};

}  // namespace

JwtClaimOmit jwt_claim_check(const SessionValue& v, pstring& json) {
  if (v.is_string) return has_ctl(v.text) ? JwtClaimOmit::ControlByte : JwtClaimOmit::None;
  // Other values are JSON text already; checked (strict JSON: a Flask float can be NaN) and
  // re-encoded compactly: the text that is signed.
  std::pmr::memory_resource* mr = json.get_allocator().resource();
  SessionValue parsed(mr);
  if (!decode_session_value(v.text, parsed) || parsed.text.empty()) return JwtClaimOmit::NotJson;
  pstring text(mr);
  encode_session_value(parsed, text);
  if (parsed.is_string) {  // (a JSON string given as JSON text)
    if (has_ctl(parsed.text)) return JwtClaimOmit::ControlByte;
  } else {
    // Walk what will be signed (the decoder keeps nested duplicates and writes control bytes
    // as escapes): an in-situ copy, NUL-terminated for rapidjson.
    pstring buf(text, mr);
    ClaimChecker checker(mr);
    rapidjson::InsituStringStream stream(buf.data());
    rapidjson::Reader reader(nullptr, 0);
    constexpr unsigned kFlags = rapidjson::kParseInsituFlag |
                                rapidjson::kParseValidateEncodingFlag |
                                rapidjson::kParseNumbersAsStringsFlag;
    if (text.size() >= std::numeric_limits<rapidjson::SizeType>::max() ||
        reader.Parse<kFlags>(stream, checker).IsError()) {
      if (checker.duplicate) return JwtClaimOmit::DuplicateMember;
      if (checker.control) return JwtClaimOmit::ControlByte;
      return JwtClaimOmit::NotJson;
    }
  }
  json.append(text);
  return JwtClaimOmit::None;
}

void jwt_claims_json(const JwtClaim* claims, size_t n, pstring& out, JwtOmitted* omitted) {
  pstring value(out.get_allocator().resource());
  for (size_t i = 0; i < n; i++) {
    const SessionValue* v = claims[i].value;
    if (v == nullptr) continue;
    value.clear();
    const JwtClaimOmit why = jwt_claim_check(*v, value);
    if (why != JwtClaimOmit::None) {
      if (omitted != nullptr && omitted->count++ == 0) {
        omitted->name = claims[i].name;
        omitted->reason = why;
      }
      continue;
    }
    out.push_back(',');
    append_json_string(claims[i].name, out);
    out.push_back(':');
    if (v->is_string) {
      append_json_string(v->text, out);
    } else {
      out.append(value);
    }
  }
}

void jwt_payload_json(std::string_view identity, uint64_t iat, uint64_t exp,
                      std::string_view claims, pstring& out) {
  out.push_back('{');
  out.append(identity);
  out.append(",\"iat\":");
  append_uint(iat, out);
  out.append(",\"exp\":");
  append_uint(exp, out);
  out.append(claims);
  out.push_back('}');
}

// ---------------------------------------------------------------------------------------------
// Lifetime

JwtLifetime jwt_lifetime_check(uint64_t seconds) noexcept {
  if (seconds < kJwtMinLifetime) return JwtLifetime::TooShort;
  if (seconds > kJwtMaxLifetime) return JwtLifetime::TooLong;
  return JwtLifetime::Ok;
}

// ---------------------------------------------------------------------------------------------
// Keys

struct JwtKey::Impl {
  EVP_PKEY* pkey = nullptr;
  ~Impl() { EVP_PKEY_free(pkey); }
};

JwtKey::JwtKey() : impl_(new Impl), id_(++key_ids) {}
JwtKey::~JwtKey() = default;

namespace {

// No passphrase prompt, ever (nginx -t on a terminal would otherwise ask for one).
int no_passphrase(char*, int, int, void*) { return -1; }

bool looks_encrypted(std::string_view pem) {
  return pem.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string_view::npos ||
         pem.find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos;
}

}  // namespace

std::unique_ptr<JwtKey> JwtKey::from_pem(std::string_view pem, JwtKeyError* err,
                                         std::string* detail) {
  *err = JwtKeyError::None;
  detail->clear();
  if (looks_encrypted(pem)) {
    *err = JwtKeyError::Encrypted;
    return nullptr;
  }
  if (pem.size() > static_cast<size_t>(INT32_MAX)) {
    *err = JwtKeyError::NotPrivateKey;
    return nullptr;
  }
  std::unique_ptr<JwtKey> key(new JwtKey());
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) {
    *err = JwtKeyError::Internal;
    return nullptr;
  }
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey_ex(bio, nullptr, no_passphrase, nullptr, nullptr,
                                              nullptr);
  BIO_free(bio);
  ERR_clear_error();
  if (pkey == nullptr) {
    *err = JwtKeyError::NotPrivateKey;
    return nullptr;
  }
  key->impl_->pkey = pkey;

  unsigned char buf[kCoordLen];
  if (EVP_PKEY_is_a(pkey, "EC")) {
    char group[80] = "";
    size_t glen = 0;
    if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) != 1) {
      ERR_clear_error();
      *err = JwtKeyError::UnsupportedCurve;
      *detail = "explicit curve parameters";
      return nullptr;
    }
    std::string_view g(group, glen);
    if (g != "prime256v1" && g != "P-256" && g != "secp256r1") {
      *err = JwtKeyError::UnsupportedCurve;
      *detail = std::string(g);
      return nullptr;
    }
    key->pub_.alg = JwtAlg::ES256;
    for (const char* name : {OSSL_PKEY_PARAM_EC_PUB_X, OSSL_PKEY_PARAM_EC_PUB_Y}) {
      BIGNUM* bn = nullptr;
      bool ok = EVP_PKEY_get_bn_param(pkey, name, &bn) == 1 &&
                BN_bn2binpad(bn, buf, static_cast<int>(kCoordLen)) ==
                    static_cast<int>(kCoordLen);
      BN_free(bn);
      if (!ok) {
        ERR_clear_error();
        *err = JwtKeyError::Internal;
        return nullptr;
      }
      (name == std::string_view(OSSL_PKEY_PARAM_EC_PUB_X) ? key->pub_.x : key->pub_.y)
          .assign(reinterpret_cast<const char*>(buf), kCoordLen);
    }
  } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
    key->pub_.alg = JwtAlg::EdDSA;
    size_t len = sizeof(buf);
    if (EVP_PKEY_get_raw_public_key(pkey, buf, &len) != 1 || len != kCoordLen) {
      ERR_clear_error();
      *err = JwtKeyError::Internal;
      return nullptr;
    }
    key->pub_.x.assign(reinterpret_cast<const char*>(buf), kCoordLen);
  } else {
    const char* name = EVP_PKEY_get0_type_name(pkey);
    *err = JwtKeyError::UnsupportedType;
    *detail = name != nullptr ? name : "unknown";
    return nullptr;
  }
  OPENSSL_cleanse(buf, sizeof(buf));

  pstring kid;
  if (!jwk_thumbprint(key->pub_, kid)) {
    *err = JwtKeyError::Internal;
    return nullptr;
  }
  key->kid_.assign(kid);
  pstring header;
  jwt_header_json(key->pub_.alg, kid, header);
  pstring header_b64;
  base64url_encode(header, header_b64);
  key->header_b64_.assign(header_b64);
  pstring jwks;
  jwks_document(key->pub_, kid, jwks);
  key->jwks_.assign(jwks);

  // Self-test: the private key signs what the public key verifies.
  static constexpr std::string_view kProbe = "ngx_http_session_module/jwt-self-test";
  pstring sig_b64;
  pstring sig;
  if (!key->sign(kProbe, sig_b64) || !base64url_decode(sig_b64, sig) || !key->verify(kProbe, sig)) {
    *err = JwtKeyError::Internal;
    return nullptr;
  }
  return key;
}

bool JwtKey::sign(std::string_view input, pstring& out) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return false;
  const bool ec = pub_.alg == JwtAlg::ES256;
  unsigned char sig[kMaxDerSig];
  size_t len = sizeof(sig);
  bool ok = EVP_DigestSignInit_ex(ctx, nullptr, ec ? "SHA256" : nullptr, nullptr, nullptr,
                                  impl_->pkey, nullptr) == 1 &&
            EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    ERR_clear_error();
    return false;
  }
  if (ec) {
    unsigned char raw[2 * kCoordLen];
    if (!jwt_ecdsa_der_to_raw(std::string_view(reinterpret_cast<const char*>(sig), len),
                              kCoordLen, raw)) {
      return false;
    }
    append_b64(std::string_view(reinterpret_cast<const char*>(raw), sizeof(raw)), out);
  } else {
    if (len != 2 * kCoordLen) return false;
    append_b64(std::string_view(reinterpret_cast<const char*>(sig), len), out);
  }
  return true;
}

bool JwtKey::verify(std::string_view input, std::string_view sig) const noexcept {
  if (sig.size() != 2 * kCoordLen) return false;
  const bool ec = pub_.alg == JwtAlg::ES256;
  unsigned char der[kMaxDerSig + 16];
  size_t der_len = 0;
  const unsigned char* s = reinterpret_cast<const unsigned char*>(sig.data());
  if (ec) {
    ECDSA_SIG* es = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(s, static_cast<int>(kCoordLen), nullptr);
    BIGNUM* ss = BN_bin2bn(s + kCoordLen, static_cast<int>(kCoordLen), nullptr);
    if (es == nullptr || r == nullptr || ss == nullptr || ECDSA_SIG_set0(es, r, ss) != 1) {
      ECDSA_SIG_free(es);
      BN_free(r);
      BN_free(ss);
      ERR_clear_error();
      return false;
    }
    int n = i2d_ECDSA_SIG(es, nullptr);
    if (n <= 0 || static_cast<size_t>(n) > sizeof(der)) {
      ECDSA_SIG_free(es);
      ERR_clear_error();
      return false;
    }
    unsigned char* p = der;
    der_len = static_cast<size_t>(i2d_ECDSA_SIG(es, &p));
    ECDSA_SIG_free(es);
    s = der;
  } else {
    der_len = sig.size();
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return false;
  bool ok = EVP_DigestVerifyInit_ex(ctx, nullptr, ec ? "SHA256" : nullptr, nullptr, nullptr,
                                    impl_->pkey, nullptr) == 1 &&
            EVP_DigestVerify(ctx, s, der_len, reinterpret_cast<const unsigned char*>(input.data()),
                             input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) ERR_clear_error();
  return ok;
}

// ---------------------------------------------------------------------------------------------
// The cache

struct JwtCache::Entry {
  uint64_t key_id = 0;   // 0: empty
  uint64_t lifetime = 0;
  uint64_t signed_ms = 0;
  uint64_t used = 0;     // tick of the last find hit or insert
  std::string claims;
  std::string token;
};

namespace {

inline uint64_t load64(const char* p) noexcept {
  uint64_t w;
  std::memcpy(&w, p, sizeof(w));
  return w;
}

inline uint64_t rotl(uint64_t x, int r) noexcept { return x << r | x >> (64 - r); }

constexpr uint64_t kMul = 0x9e3779b97f4a7c15ULL;

inline uint64_t step(uint64_t h, uint64_t w) noexcept { return rotl((h ^ w) * kMul, 29); }

}  // namespace

JwtCache::JwtCache(uint64_t seed, size_t sets)
    : seed_(seed), sets_(sets == 0 ? 1 : sets), entries_(new Entry[sets_ * kWays]) {}

JwtCache::~JwtCache() = default;

bool JwtCache::reusable(uint64_t signed_ms, uint64_t lifetime, uint64_t now_ms) noexcept {
  if (now_ms < signed_ms || jwt_lifetime_check(lifetime) != JwtLifetime::Ok) return false;
  // exp in milliseconds; no overflow: the lifetime is bounded and signed_ms / 1000 * 1000 does
  // not exceed signed_ms.
  const uint64_t iat_ms = signed_ms / 1000 * 1000;
  const uint64_t life_ms = lifetime * 1000;
  if (iat_ms > UINT64_MAX - life_ms) return false;
  const uint64_t exp_ms = iat_ms + life_ms;
  if (now_ms >= exp_ms) return false;
  return exp_ms - now_ms >= life_ms - life_ms / 2;  // at least half the lifetime left
}

size_t JwtCache::set_of(uint64_t key_id, uint64_t lifetime,
                        std::string_view claims) const noexcept {
  // Every byte of the claims (the user is in there): a seeded multiply-rotate mix. A collision
  // only shares a set.
  uint64_t h = step(seed_, key_id);
  h = step(h, lifetime);
  h = step(h, claims.size());
  size_t i = 0;
  for (; i + 8 <= claims.size(); i += 8) h = step(h, load64(claims.data() + i));
  if (i < claims.size()) {
    char buf[8] = {};
    std::memcpy(buf, claims.data() + i, claims.size() - i);
    h = step(h, load64(buf));
  }
  h ^= h >> 32;
  return static_cast<size_t>(h % sets_);
}

const std::string* JwtCache::find(uint64_t key_id, uint64_t lifetime, std::string_view claims,
                                  uint64_t now_ms) noexcept {
  if (key_id == 0 || claims.size() > kMaxClaims) return nullptr;
  Entry* set = &entries_[set_of(key_id, lifetime, claims) * kWays];
  for (size_t w = 0; w < kWays; w++) {
    Entry& e = set[w];
    if (e.key_id != key_id || e.lifetime != lifetime || !ct_equal(e.claims, claims)) continue;
    if (!reusable(e.signed_ms, e.lifetime, now_ms)) return nullptr;
    e.used = ++tick_;
    return &e.token;
  }
  return nullptr;
}

bool JwtCache::insert(uint64_t key_id, uint64_t lifetime, std::string_view claims,
                      uint64_t signed_ms, std::string_view token) {
  if (key_id == 0 || claims.size() > kMaxClaims || token.size() > kMaxToken) return false;
  Entry* set = &entries_[set_of(key_id, lifetime, claims) * kWays];
  Entry* slot = nullptr;
  for (size_t w = 0; w < kWays && slot == nullptr; w++) {  // the same key: replaced
    Entry& e = set[w];
    if (e.key_id == key_id && e.lifetime == lifetime && ct_equal(e.claims, claims)) slot = &e;
  }
  for (size_t w = 0; w < kWays && slot == nullptr; w++) {
    if (set[w].key_id == 0) slot = &set[w];
  }
  if (slot == nullptr) {
    slot = &set[0];
    for (size_t w = 1; w < kWays; w++) {
      if (set[w].used < slot->used) slot = &set[w];
    }
  }
  slot->key_id = 0;  // (empty until complete: assign may throw)
  slot->claims.assign(claims.data(), claims.size());
  slot->token.assign(token.data(), token.size());
  slot->lifetime = lifetime;
  slot->signed_ms = signed_ms;
  slot->used = ++tick_;
  slot->key_id = key_id;
  return true;
}

void JwtCache::clear() noexcept {
  for (size_t i = 0; i < sets_ * kWays; i++) {
    Entry& e = entries_[i];
    e.key_id = 0;
    std::string().swap(e.claims);
    std::string().swap(e.token);
  }
}

size_t JwtCache::size() const noexcept {
  size_t n = 0;
  for (size_t i = 0; i < sets_ * kWays; i++) n += entries_[i].key_id != 0;
  return n;
}

size_t JwtCache::capacity() const noexcept { return sets_ * kWays; }

// ---------------------------------------------------------------------------------------------
// Issuing

JwtIssue jwt_issue(JwtCache& cache, const JwtRequest& req, uint64_t now_ms, pstring& out,
                   JwtOmitted* omitted) {
  if (req.sub.empty() || has_ctl(req.sub)) return JwtIssue::NoSubject;
  if (req.key == nullptr || jwt_lifetime_check(req.lifetime) != JwtLifetime::Ok) {
    return JwtIssue::Failed;
  }
  std::pmr::memory_resource* mr = out.get_allocator().resource();
  // The cache key: identity and claims, the payload without its times.
  pstring what(mr);
  jwt_identity_json(req.iss, req.sub, what);
  const size_t identity_len = what.size();
  jwt_claims_json(req.claims, req.nclaims, what, omitted);
  if (const std::string* t = cache.find(req.key->id(), req.lifetime, what, now_ms)) {
    out.append(*t);
    return JwtIssue::Cached;
  }
  const uint64_t now = now_ms / 1000;
  std::string_view w(what);
  pstring payload(mr);
  jwt_payload_json(w.substr(0, identity_len), now, now + req.lifetime, w.substr(identity_len),
                   payload);
  pstring token(mr);
  token.reserve(req.key->header_b64().size() + 1 + base64url_encoded_len(payload.size()) + 1 +
                base64url_encoded_len(64));
  token.append(req.key->header_b64());
  token.push_back('.');
  base64url_encode(payload, token);
  const size_t input_len = token.size();
  token.push_back('.');
  if (!req.key->sign(std::string_view(token).substr(0, input_len), token)) {
    return JwtIssue::Failed;
  }
  cache.insert(req.key->id(), req.lifetime, what, now_ms, token);
  out.append(token);
  return JwtIssue::Signed;
}

}  // namespace sess
