// The login form's CSRF defence: a double-submit cookie whose token is bound by HMAC.
//
//   cookie value = base64url(raw),  raw = nonce(16 random bytes) | issued(8 bytes, BE unix time)
//   token        = base64url(HMAC-SHA256(csrf key, "login" | 0x00 | cookie_name | 0x00 | raw))
//
// A cookie is fresh while issued is at most kCsrfSkew seconds in the future and less than
// kCsrfLifetime seconds in the past (a token issued a little ahead of this clock, by another
// server, is accepted: no unsigned underflow). The token is made with key 0 of the ring and
// verified against every key (rotation). Token comparison is constant time.
//
// What this does not stop: someone who can plant cookies for the site (a sibling subdomain,
// plain HTTP on the same host) can plant a cookie and its token; login.cpp also refuses
// cross-origin POSTs (origin.h) for that reason.
#pragma once

#include "common.h"
#include "crypto.h"

namespace sess {

constexpr uint64_t kCsrfLifetime = 3600;
constexpr uint64_t kCsrfSkew = 60;
constexpr size_t kCsrfNonceLen = 16;
constexpr size_t kCsrfRawLen = kCsrfNonceLen + 8;
constexpr size_t kCsrfMaxCookieLen = 64;   // longer values are not looked at

// A new cookie value (random nonce, issued = now). Appends to value. False if the CSPRNG fails.
bool csrf_new_cookie(uint64_t now, pstring& value);

// Decodes a received cookie value into raw (replaced) if it is well formed (exactly the
// base64url of kCsrfRawLen bytes) and fresh at now. On false raw is empty.
bool csrf_cookie_fresh(std::string_view value, uint64_t now, pstring& raw);

// Appends the token for raw under key `key` of the ring. False if the MAC fails.
bool csrf_token(const KeyRing& ring, size_t key, std::string_view cookie_name,
                std::string_view raw, pstring& out);

// True if token matches the token of any fresh cookie value in cookies[0..n) under any key.
bool csrf_verify(const KeyRing& ring, std::string_view cookie_name,
                 const std::string_view* cookies, size_t n, std::string_view token,
                 uint64_t now);

}  // namespace sess
