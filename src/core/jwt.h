// Signed identity tokens for upstreams ($session_jwt, session_jwks): compact JWS (RFC 7515) with
// ES256 (ECDSA P-256 + SHA-256, RFC 7518) or EdDSA (Ed25519, RFC 8037), and the public key as a
// JWKS document (RFC 7517) whose kid is its RFC 7638 thumbprint.
//
//   token   = base64url(header) "." base64url(payload) "." base64url(signature), no padding
//   header  = {"alg":"ES256"|"EdDSA","typ":"JWT","kid":<thumbprint>}
//   payload = {"iss":<server name>,"sub":<user>,"iat":<now>,"exp":<iat + lifetime>, claims...}
//
// OpenSSL (3.x EVP) does the key parsing and the signing; this file builds the JSON, converts
// ECDSA's DER signature to JWS's raw r||s, and decides when a worker may hand out a token it
// signed before (JwtCache): signing costs tens of microseconds, so tokens are cached per worker
// by what they say and reused while at least half their lifetime is left.
//
// Not thread-safe: one cache per nginx worker, used from the event loop only. A JwtKey is
// immutable after loading and may be shared.
#pragma once

#include "common.h"
#include "session_data.h"

#include <memory>
#include <string>

namespace sess {

enum class JwtAlg : uint8_t { ES256, EdDSA };

// "ES256" / "EdDSA".
std::string_view jwt_alg_name(JwtAlg alg) noexcept;

// ---------------------------------------------------------------------------------------------
// Encoding (pure)

// ECDSA's DER signature (ECDSA-Sig-Value: SEQUENCE { r INTEGER, s INTEGER }) as JWS wants it:
// r and s as big-endian unsigned integers, each left-padded to n bytes, r first (out: 2n bytes;
// n = 32 for P-256). False if der is not exactly one such DER value or r or s does not fit.
bool jwt_ecdsa_der_to_raw(std::string_view der, size_t n, unsigned char* out) noexcept;

// The public half of a signing key: EC P-256 (x, y: 32 bytes each, big-endian, left-padded) or
// Ed25519 (x: the 32-byte public key, y empty).
struct JwkPublic {
  JwtAlg alg = JwtAlg::ES256;
  std::string x;
  std::string y;
};

// The RFC 7638 thumbprint input: the key's required members in lexicographic order, no
// whitespace - {"crv":"P-256","kty":"EC","x":..,"y":..} or {"crv":"Ed25519","kty":"OKP","x":..}.
void jwk_thumbprint_input(const JwkPublic& k, pstring& out);

// Appends base64url(SHA-256(jwk_thumbprint_input(k))). False if hashing failed.
bool jwk_thumbprint(const JwkPublic& k, pstring& out);

// Appends the JWKS document of the one key: {"keys":[{"kty":..,"crv":..,"x":..[,"y":..],
// "kid":..,"use":"sig","alg":..}]}. Never any private member.
void jwks_document(const JwkPublic& k, std::string_view kid, pstring& out);

// Appends the JOSE header {"alg":..,"typ":"JWT","kid":..}.
void jwt_header_json(JwtAlg alg, std::string_view kid, pstring& out);

// One claim copied from the session: the session key's name (the claim's name) and its value
// (nullptr: the session has no such key, the claim is left out).
struct JwtClaim {
  std::string_view name;
  const SessionValue* value = nullptr;
};

// Appends "iss":<iss>,"sub":<sub> (JSON strings).
void jwt_identity_json(std::string_view iss, std::string_view sub, pstring& out);

// Whether the session user may be the token's sub: exactly the user $session_user shows - a
// logged-in user (session_user_logged_in: a non-empty JSON string) without a control byte
// (has_ctl: "a stored value that contains a control byte reads as empty"). user is what
// session_user() found (nullptr: none, or ambiguous).
bool jwt_subject_ok(const SessionValue* user) noexcept;

// Why a claim with a value was left out of the token.
enum class JwtClaimOmit : uint8_t {
  None,
  NotJson,          // not strict JSON (a Flask float written as NaN or Infinity)
  ControlByte,      // a string (a member name, at any depth) holds a control byte
  DuplicateMember,  // an object (at any depth) has two members of the same name
};

// What jwt_claims_json left out: how many claims, and the first one's name and reason.
struct JwtOmitted {
  size_t count = 0;
  std::string_view name;
  JwtClaimOmit reason = JwtClaimOmit::None;
};

// The check jwt_claims_json applies to one value: None if v may be signed. For a non-string
// value, the compact JSON text of it as it will be signed is appended to json (else json is left
// as it was).
JwtClaimOmit jwt_claim_check(const SessionValue& v, pstring& json);

// Appends ,"<name>":<value> for every claim with a value: strings as JSON strings, other values
// as their JSON text (re-encoded compactly). Claims without a value are left out, and so are
// claims jwt_claim_check refuses: a value that is not strict JSON, that holds a control byte in
// any string (as $session_<key> reads such a value as empty; a C upstream would cut "admin\0x"
// to "admin"), or whose objects have duplicate member names (parsers disagree on which one
// counts: one signed claim, two meanings). omitted (optional) says what was left out.
void jwt_claims_json(const JwtClaim* claims, size_t n, pstring& out,
                     JwtOmitted* omitted = nullptr);

// Appends the payload: {<identity>,"iat":iat,"exp":exp<claims>} where identity and claims are
// what jwt_identity_json and jwt_claims_json appended.
void jwt_payload_json(std::string_view identity, uint64_t iat, uint64_t exp,
                      std::string_view claims, pstring& out);

// ---------------------------------------------------------------------------------------------
// Lifetime

// session_jwt_lifetime's bounds, in seconds. At least 2 s: iat and exp are whole seconds, so a
// token signed late in a second has up to 1 s less than its lifetime left; from 2 s on, a fresh
// token always has more than half of its lifetime left. At most a year: a token is a
// non-revocable bearer credential, and exp stays a small integer (far below 2^53).
constexpr uint64_t kJwtMinLifetime = 2;
constexpr uint64_t kJwtMaxLifetime = 365 * 86400;

enum class JwtLifetime : uint8_t { Ok, TooShort, TooLong };
JwtLifetime jwt_lifetime_check(uint64_t seconds) noexcept;

// ---------------------------------------------------------------------------------------------
// Keys

enum class JwtKeyError : uint8_t {
  None,
  NotPrivateKey,     // no PEM private key in the text (garbage, a public key, a certificate)
  Encrypted,         // a passphrase-protected key
  UnsupportedType,   // RSA, Ed448, DSA, X25519, ... (detail: OpenSSL's type name)
  UnsupportedCurve,  // an EC key on another curve than P-256 (detail: the curve's name)
  Internal,          // OpenSSL failed (allocation, the signing self-test)
};

class JwtKey {
 public:
  // Loads an EC P-256 (ES256) or Ed25519 (EdDSA) private key from PEM text (PKCS#8 or the
  // traditional "EC PRIVATE KEY" form). Never prompts for a passphrase. nullptr on failure with
  // *err set and, for the unsupported kinds, *detail naming the type or curve. The key signs and
  // verifies a test message before it is accepted.
  static std::unique_ptr<JwtKey> from_pem(std::string_view pem, JwtKeyError* err,
                                          std::string* detail);
  ~JwtKey();
  JwtKey(const JwtKey&) = delete;
  JwtKey& operator=(const JwtKey&) = delete;

  JwtAlg alg() const noexcept { return pub_.alg; }
  const JwkPublic& pub() const noexcept { return pub_; }
  // A number no other JwtKey of this process has had (counting from 1): what cached tokens are
  // keyed by, since a key's address can be reused after it is freed.
  uint64_t id() const noexcept { return id_; }
  std::string_view kid() const noexcept { return kid_; }
  std::string_view header_b64() const noexcept { return header_b64_; }  // base64url(header)
  std::string_view jwks() const noexcept { return jwks_; }

  // Appends base64url(signature over input) as JWS wants it (ES256: raw r||s, 64 bytes).
  // False if OpenSSL failed (out unchanged).
  bool sign(std::string_view input, pstring& out) const;

  // Verifies a JWS signature (raw form) over input with the public key. For tests and the
  // load-time self-test.
  bool verify(std::string_view input, std::string_view sig) const noexcept;

 private:
  JwtKey();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  JwkPublic pub_;
  uint64_t id_;
  std::string kid_;
  std::string header_b64_;
  std::string jwks_;
};

// ---------------------------------------------------------------------------------------------
// The per-worker token cache

// Tokens by what they say: the signing key (JwtKey::id), the lifetime and the identity + claims
// JSON (jwt_identity_json followed by jwt_claims_json) - not by session: the cookie store has no
// session id, and two sessions of one user with the same claims get the same token.
//
// Bounded: kSets sets of kWays entries (a seeded hash of the key picks the set; the least
// recently used entry of a full set is replaced). Claims longer than kMaxClaims or tokens longer
// than kMaxToken are not cached (they are signed every time), so the table never holds more than
// kSets * kWays * (kMaxClaims + kMaxToken) bytes of strings plus fixed overhead. Entries are
// compared in full (claims in constant time): a hash collision only evicts.
class JwtCache {
 public:
  static constexpr size_t kWays = 4;
  static constexpr size_t kSets = 512;        // 2048 entries
  static constexpr size_t kMaxClaims = 2048;
  static constexpr size_t kMaxToken = 4096;

  // seed: the hash key (the glue passes CSPRNG bytes, tests a fixed value); sets: for tests.
  explicit JwtCache(uint64_t seed, size_t sets = kSets);
  ~JwtCache();

  // Whether a token signed at signed_ms (unix milliseconds; its iat is the whole second
  // signed_ms / 1000, its exp iat + lifetime seconds) may still be handed out at now_ms: while at
  // least half of its lifetime is left until exp (2 * (exp * 1000 - now_ms) >= lifetime * 1000),
  // never before it was signed (a clock that went back), never with a lifetime outside
  // [kJwtMinLifetime, kJwtMaxLifetime].
  static bool reusable(uint64_t signed_ms, uint64_t lifetime, uint64_t now_ms) noexcept;

  // The cached token for exactly (key_id, lifetime, claims) if it is reusable at now_ms, else
  // nullptr. Valid until the next insert or clear.
  const std::string* find(uint64_t key_id, uint64_t lifetime, std::string_view claims,
                          uint64_t now_ms) noexcept;

  // Stores token, signed at signed_ms, for (key_id, lifetime, claims), replacing an entry of the
  // same key, else an empty one, else the set's least recently used. False (nothing stored) when
  // claims or token are over the bounds or key_id is 0.
  bool insert(uint64_t key_id, uint64_t lifetime, std::string_view claims, uint64_t signed_ms,
              std::string_view token);

  void clear() noexcept;
  size_t size() const noexcept;      // entries in use
  size_t capacity() const noexcept;  // sets * kWays

 private:
  struct Entry;
  size_t set_of(uint64_t key_id, uint64_t lifetime, std::string_view claims) const noexcept;

  uint64_t seed_;
  size_t sets_;
  uint64_t tick_ = 0;
  std::unique_ptr<Entry[]> entries_;
};

// ---------------------------------------------------------------------------------------------
// Issuing

struct JwtRequest {
  const JwtKey* key = nullptr;
  uint64_t lifetime = 60;       // seconds: exp = iat + lifetime
  std::string_view iss;
  std::string_view sub;
  const JwtClaim* claims = nullptr;
  size_t nclaims = 0;
};

enum class JwtIssue : uint8_t {
  Cached,
  Signed,
  NoSubject,  // sub is empty or holds a control byte: no token (out unchanged)
  Failed,     // no key, a lifetime outside the bounds, or signing failed (out unchanged)
};

// Appends the token for req to out: the cached one while JwtCache::reusable at now_ms (unix
// milliseconds), else a new one (iat = now_ms / 1000, exp = iat + lifetime), which is then
// cached. So every token handed out has at least half of its lifetime left until exp, measured
// at now_ms. omitted (optional): the claims jwt_claims_json left out.
JwtIssue jwt_issue(JwtCache& cache, const JwtRequest& req, uint64_t now_ms, pstring& out,
                   JwtOmitted* omitted = nullptr);

}  // namespace sess
