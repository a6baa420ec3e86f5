// The login form's CSRF cookie and token (see csrf.h).
#include "csrf.h"

#include "base64url.h"

namespace sess {

namespace {

// base64url of a raw cookie value and of a token: the only lengths that can be well formed.
constexpr size_t kCookieValueLen = (kCsrfRawLen * 4 + 2) / 3;
constexpr size_t kTokenLen = (KeyRing::kMacLen * 4 + 2) / 3;
static_assert(kCookieValueLen <= kCsrfMaxCookieLen, "a CSRF cookie must fit its own bound");

// True if issued lies in (now - kCsrfLifetime, now + kCsrfSkew], in signed terms.
bool fresh_at(uint64_t issued, uint64_t now) noexcept {
  if (issued > now) return issued - now <= kCsrfSkew;
  return now - issued < kCsrfLifetime;
}

// Writes the kTokenLen characters of the token for raw under key `key` to dst.
bool token_to(const KeyRing& ring, size_t key, std::string_view cookie_name, std::string_view raw,
              char* dst) noexcept {
  const std::string_view nul("\0", 1);
  const std::string_view parts[5] = {"login", nul, cookie_name, nul, raw};
  unsigned char mac[KeyRing::kMacLen];
  if (!ring.mac(key, KeyUse::Csrf, parts, 5, mac)) return false;
  base64url_encode_to(mac, sizeof mac, dst);
  return true;
}

}  // namespace

bool csrf_new_cookie(uint64_t now, pstring& value) {
  unsigned char raw[kCsrfRawLen];
  if (!random_bytes(raw, kCsrfNonceLen)) return false;
  put_be64(raw + kCsrfNonceLen, now);
  base64url_encode(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw), value);
  return true;
}

bool csrf_cookie_fresh(std::string_view value, uint64_t now, pstring& raw) {
  raw.clear();
  if (value.size() != kCookieValueLen || !base64url_decode(value, raw) ||
      raw.size() != kCsrfRawLen) {
    raw.clear();
    return false;
  }
  const uint64_t issued = get_be64(reinterpret_cast<const unsigned char*>(raw.data()) +
                                   kCsrfNonceLen);
  if (!fresh_at(issued, now)) {
    raw.clear();
    return false;
  }
  return true;
}

bool csrf_token(const KeyRing& ring, size_t key, std::string_view cookie_name,
                std::string_view raw, pstring& out) {
  char buf[kTokenLen];
  if (!token_to(ring, key, cookie_name, raw, buf)) return false;
  out.append(buf, sizeof buf);
  return true;
}

bool csrf_verify(const KeyRing& ring, std::string_view cookie_name,
                 const std::string_view* cookies, size_t n, std::string_view token,
                 uint64_t now) {
  if (token.size() != kTokenLen) return false;  // the length is public: no need to hide it
  // raw lives in a stack buffer: verification allocates nothing.
  char arena[128];
  std::pmr::monotonic_buffer_resource mr(arena, sizeof arena, std::pmr::null_memory_resource());
  pstring raw(&mr);
  raw.reserve(kCookieValueLen);
  for (size_t i = 0; i < n; i++) {
    if (!csrf_cookie_fresh(cookies[i], now, raw)) continue;
    for (size_t k = 0; k < ring.size(); k++) {
      char expect[kTokenLen];
      if (token_to(ring, k, cookie_name, raw, expect) &&
          ct_equal(std::string_view(expect, sizeof expect), token)) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace sess
