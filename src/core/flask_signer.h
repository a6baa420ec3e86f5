// Flask's signed session cookie and Flask-Session's signed id, as itsdangerous 2.x makes them.
//
//   Flask cookie (URLSafeTimedSerializer, salt "cookie-session", key derivation "hmac", SHA-1):
//     token     = payload "." b64(timestamp) "." b64(signature)
//     payload   = b64(json)  |  "." b64(zlib(json))      (zlib only if >= 2 bytes shorter)
//     timestamp = unix seconds, big-endian, leading zero bytes stripped (0-8 bytes)
//     signature = HMAC-SHA1(key, payload "." b64(timestamp)),  key = HMAC-SHA1(secret, salt)
//   Flask-Session id (Signer, salt "flask-session", same derivation, no timestamp):
//     token     = sid "." b64(HMAC-SHA1(key, sid))
//   b64 = base64url without padding.
//
// In: the secrets (FlaskKeys: the first added signs, all verify), the token, the clock and the
// lifetime (Flask's PERMANENT_SESSION_LIFETIME, counted from the last signing). Out: the JSON
// text (or the id). Refused, in itsdangerous' order: a token that is not three base64url parts
// (Malformed, no crypto), a signature no key makes (BadSignature), a timestamp longer than 8
// bytes (Malformed), a timestamp older than the lifetime or in the future (Expired), a payload
// that does not decode or inflates past the bound (Malformed). Nothing here throws: allocation
// failure is Error.
#pragma once

#include "common.h"

#include <array>
#include <vector>

namespace sess {

constexpr std::string_view kFlaskCookieSalt = "cookie-session";
constexpr std::string_view kFlaskSessionSignerSalt = "flask-session";

// The derived keys of one salt: HMAC-SHA1(secret, salt) per secret (itsdangerous' "hmac" key
// derivation). Any secret length is accepted, as itsdangerous does (the glue warns on short
// ones).
class FlaskKeys {
 public:
  static constexpr size_t kKeyLen = 20;  // SHA-1
  explicit FlaskKeys(std::string_view salt) noexcept : salt_(salt) {}
  // Derives and appends the key of one secret. False on allocation or OpenSSL failure.
  bool add_secret(std::string_view secret) noexcept;
  size_t size() const noexcept { return keys_.size(); }
  std::string_view salt() const noexcept { return salt_; }
  // HMAC-SHA1 with key k over data; out: kKeyLen bytes.
  bool sign(size_t k, std::string_view data, unsigned char* out) const noexcept;

 private:
  std::string_view salt_;  // a constant (kFlask*Salt)
  std::vector<std::array<unsigned char, kKeyLen>> keys_;
};

enum class FlaskTokenResult : uint8_t {
  Ok,
  Malformed,     // not the token syntax, timestamp longer than 8 bytes, payload not base64url,
                 // not zlib, or inflating past max_json
  BadSignature,  // no key verifies it (tampered, truncated, wrong key)
  Expired,       // signed more than max_age seconds before now, or after now
  Error,         // allocation or OpenSSL failure
};

struct FlaskCookieLimits {
  size_t max_token = 8192;   // longer tokens are Malformed before any crypto
  size_t max_json = 65536;   // the (decompressed) JSON text may not be longer
};

// Verifies a Flask session cookie value and sets *json to its JSON text and *signed_at to its
// timestamp. now and max_age in seconds (Flask passes max_age always). On anything but Ok,
// *json is empty. *authentic (if given) is set when a key verified the signature, whatever
// the result (an app reading the cookie would accept it as its own).
FlaskTokenResult flask_cookie_open(const FlaskKeys& keys, std::string_view token, uint64_t now,
                                   uint64_t max_age, pstring* json, uint64_t* signed_at,
                                   const FlaskCookieLimits& limits = FlaskCookieLimits(),
                                   bool* authentic = nullptr) noexcept;

// Appends the cookie value Flask would write for json at time now (key 0 signs): zlib at
// level 6 kept only when at least 2 bytes shorter, as itsdangerous does. False (out as it was)
// on failure or without keys.
bool flask_cookie_seal(const FlaskKeys& keys, std::string_view json, uint64_t now,
                       pstring& out) noexcept;

// Flask-Session's SESSION_USE_SIGNER: appends sid "." b64(sig) (key 0 signs).
bool flask_sid_sign(const FlaskKeys& keys, std::string_view sid, pstring& out) noexcept;
// Verifies sid "." b64(sig) (the last '.' separates) and sets *sid. Malformed: no '.', an empty
// id, a signature that is not base64url or longer than max_len in all; BadSignature: no key
// verifies it. The id's charset is the caller's check.
FlaskTokenResult flask_sid_unsign(const FlaskKeys& keys, std::string_view token, pstring* sid,
                                  size_t max_len = 512) noexcept;

// zlib as itsdangerous uses it (exposed for the tests and the fuzz target).
// Appends zlib.compress(in) (level 6) to out.
bool flask_zlib_compress(std::string_view in, pstring& out) noexcept;
// Appends zlib.decompress(in) to out: false on a corrupt or truncated stream, trailing bytes
// after the stream, or more than max_out bytes of output (checked while inflating: a small
// bomb costs at most max_out bytes).
bool flask_zlib_decompress(std::string_view in, size_t max_out, pstring& out) noexcept;

}  // namespace sess
