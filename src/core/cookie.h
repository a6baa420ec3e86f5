// Cookie request-header parsing and Set-Cookie building (RFC 6265).
#pragma once

#include "common.h"

namespace sess {

// A cookie pair's value as the scanners report it: trimmed of SP/HTAB, a DQUOTEd value
// unwrapped.
inline std::string_view cookie_pair_value(std::string_view raw) noexcept {
  std::string_view value = trim_wsp(raw);
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
    value = value.substr(1, value.size() - 2);
  }
  return value;
}

// Calls f(name, value) for every cookie pair of one Cookie header value: pairs split on ';', name
// and value trimmed of SP/HTAB, pairs without '=' ignored, a DQUOTEd value unwrapped. The views
// point into header.
template <typename F>
void cookie_for_each_pair(std::string_view header, F&& f) noexcept {
  size_t pos = 0;
  const size_t n = header.size();
  while (pos <= n) {
    size_t semi = header.find(';', pos);
    if (semi == std::string_view::npos) semi = n;
    std::string_view pair = header.substr(pos, semi - pos);
    pos = semi + 1;

    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;  // no '=': not a cookie pair, ignored
    f(trim_wsp(pair.substr(0, eq)), cookie_pair_value(pair.substr(eq + 1)));
  }
}

// Accumulates the occurrences of one cookie name across all Cookie header lines of a request.
struct CookieLookup {
  unsigned count = 0;        // occurrences of the name
  bool conflicting = false;  // occurrences with different values
  std::string_view value;    // the first occurrence, DQUOTEs stripped
};

// Scans one Cookie header value ("a=1; b=2", tolerating missing spaces, extra whitespace, empty
// pairs and pairs without '=') for `name` (exact, case-sensitive) and updates acc. Values in
// DQUOTEs are returned without them. Returned views point into header.
void cookie_find(std::string_view header, std::string_view name, CookieLookup& acc) noexcept;

// Every distinct value of one cookie name across all Cookie header lines of a request (a browser
// sends duplicates when several cookies of that name match: a parent-domain cookie planted by a
// sibling site, another path). Values are kept in order of appearance, DQUOTEs stripped, equal
// values once; at most kMax distinct values are kept (`overflow` says more were seen).
struct CookieCandidates {
  static constexpr size_t kMax = 8;
  union {  // (only values[0 .. count) are ever set or read: not zeroed on every request)
    std::string_view values[kMax];
  };
  CookieCandidates() noexcept {}
  size_t count = 0;        // distinct values kept
  size_t occurrences = 0;  // occurrences of the name
  bool overflow = false;
};

// Like cookie_find, for all occurrences of name in one Cookie header value.
void cookie_collect(std::string_view header, std::string_view name,
                    CookieCandidates& acc) noexcept;

// True if name is one of the cookies the session module owns for a session cookie called
// session_name: the session cookie itself, its CSRF cookie (<session_name>_csrf) and its chunks
// (<session_name>_<digits>). cookie_set and cookie_delete never write these.
bool cookie_is_session_own(std::string_view session_name, std::string_view name) noexcept;

// Why a session cookie called other cannot be configured beside the session cookie called name,
// or nullptr when both can be: other would be name's CSRF cookie, or one of its chunk names
// (<name>_1 .. <name>_15), which a write of name expires or overwrites - with chunks=1 too (a
// request may carry chunks from a larger chunks= before, or planted ones).
const char* session_cookie_clash(std::string_view name, std::string_view other) noexcept;

// RFC 6265 cookie-name: a non-empty HTTP token.
bool cookie_name_valid(std::string_view name) noexcept;

// RFC 6265 cookie-value (cookie-octets only, no DQUOTE, no '%'-escaping needed).
bool cookie_value_valid(std::string_view value) noexcept;

// Appends value to out with every byte that is not a cookie-octet, and '%', percent-encoded
// (%XX, upper case), so that the result is always a valid cookie-value.
void cookie_value_encode(std::string_view value, pstring& out);

enum class SameSite : uint8_t { Unset, Strict, Lax, None };

struct CookieAttrs {
  std::string_view path;      // empty: no Path
  std::string_view domain;    // empty: no Domain
  int64_t max_age = -1;       // < 0: no Max-Age
  int64_t expires = -1;       // unix time; < 0: no Expires
  bool secure = false;
  bool httponly = false;
  SameSite samesite = SameSite::Unset;
  bool partitioned = false;
};

// Appends "name=value; Path=/; Domain=d; Max-Age=n; Expires=<IMF-fixdate>; Secure; HttpOnly;
// SameSite=Lax; Partitioned" (attributes in that order, only those set) to out. name and value
// must already be valid (see above).
void cookie_build(std::string_view name, std::string_view value, const CookieAttrs& a,
                  pstring& out);

// Formats unix time t as an IMF-fixdate ("Thu, 01 Jan 1970 00:00:00 GMT") into out.
void http_date(int64_t t, pstring& out);

// Browsers refuse Set-Cookie headers longer than this (name, value and attributes).
constexpr size_t kMaxSetCookieLen = 4096;

}  // namespace sess
