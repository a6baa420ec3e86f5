// The session cookie value: a versioned, authenticated envelope, base64url encoded.
//
//   header  = version(1)=1 | kind(1) | key_hint(1) | created(8, BE) | refreshed(8, BE)   19 bytes
//   Signed  = header | payload | HMAC-SHA256(mac key, name | 0x00 | header | payload)
//   Sealed  = header | nonce(12) | AES-256-GCM(enc key, aad = name | 0x00 | header, payload) | tag(16)
//   Id      = like Signed, payload = the raw session id bytes (server-side store)
//
// The cookie name is bound into the MAC/AAD, so a value cannot be moved to another cookie. The
// timestamps are inside the authenticated data, so lifetime and idle timeout are enforced by the
// server, not by cookie expiry.
#pragma once

#include "common.h"
#include "crypto.h"

namespace sess {

enum class Kind : uint8_t { Signed = 1, Sealed = 2, Id = 3 };

struct Times {
  uint64_t created = 0;    // unix seconds: login / creation
  uint64_t refreshed = 0;  // unix seconds: last time the cookie was (re)issued
};

enum class OpenResult : uint8_t {
  Ok,
  Malformed,   // not base64url, too short, wrong version or kind
  BadMac,      // no key of the ring verifies it (tampered, truncated or wrong key)
};

constexpr size_t kEnvelopeHeaderLen = 19;
constexpr size_t kSessionIdLen = 16;  // 128 bits from the CSPRNG

// Appends the base64url cookie value to out. Uses key 0 of the ring. Returns false on failure.
bool envelope_seal(const KeyRing& ring, Kind kind, std::string_view cookie_name, const Times& t,
                   std::string_view payload, pstring& out);

// Verifies and opens a cookie value produced by envelope_seal with the same kind and cookie name.
// On Ok, *t and *payload are set (payload is replaced). Work is bounded: values longer than
// max_len are Malformed without any crypto.
OpenResult envelope_open(const KeyRing& ring, Kind kind, std::string_view cookie_name,
                         std::string_view value, Times* t, pstring* payload,
                         size_t max_len = 8192);

// The key hint of a cookie value (its third byte, from the first four base64url characters; no
// crypto, nothing verified): to tell a value no key of the ring could have made (BadMac with a
// hint no key has) from a tampered one, for the metrics. False if the value is too short or not
// base64url there.
bool envelope_key_hint(std::string_view value, uint8_t* hint) noexcept;

// What an Id envelope of a session id says, read without verifying anything: its times, the id,
// and its proof - the header and the MAC, which with the id are every byte of the envelope. Only
// for a value whose authenticity is known by other means: the session cache keeps, with each
// entry, the proof of an id cookie of its session that envelope_open verified (under a ring and
// a cookie name), and a value of that id with the same proof is that value. For a value that
// envelope_open accepts, times and id are what it gave (times, payload).
constexpr size_t kIdProofLen = kEnvelopeHeaderLen + KeyRing::kMacLen;
struct IdEnvelope {
  Times times;
  unsigned char id[kSessionIdLen];
  unsigned char proof[kIdProofLen];
};
// False unless the value is base64url of exactly the length of an Id envelope of kSessionIdLen
// bytes, with the right version and kind bytes.
bool envelope_peek_id(std::string_view value, IdEnvelope* out) noexcept;

// Length of the base64url value envelope_seal produces for a payload of n bytes.
size_t envelope_sealed_len(Kind kind, size_t n) noexcept;

}  // namespace sess
