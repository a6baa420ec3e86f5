// The attribute grammar shared by `session_cookie`, `cookie_set` and `cookie_delete` (one parser
// for one syntax). Arguments are the directive's words after the cookie name (and value), e.g.
// {"path=/app", "max_age=1h", "secure", "samesite=strict"}.
//
// Grammar (each attribute once at most; a repeated attribute is an error, "secure" and
// "secure=on" included; attribute names and keyword values are ASCII case-insensitive, as in
// nginx's own proxy_cookie_flags; path and domain values are kept as written):
//   path=P         P starts with '/', 1..1024 bytes of 0x21..0x7e except ';' and ','
//   domain=D       1..253 bytes (a leading '.' counted) of [A-Za-z0-9.-], optionally one leading
//                  '.', then at least one byte; no "..", no trailing '.'
//   max_age=T      a duration (duration.h)                      not for cookie_delete
//   expires=T      a duration from now                          cookie_set only
//   secure | secure=on | secure=off | secure=auto               (auto: session_cookie only)
//   httponly | httponly=on | httponly=off                       not for cookie_delete
//   samesite=strict|lax|none|off                                not for cookie_delete
//   partitioned                                                 not for cookie_delete
//   chunks=N       1..16 cookies for a large session (chunks.h)  session_cookie only
// Then the cross-attribute rules (checked by cookie_attrs_check with the cookie name):
//   samesite=none and partitioned require secure=on (secure=auto is not enough: plain http
//   requests would get a cookie that browsers drop); a "__Host-" name requires secure=on,
//   path=/ and no domain; a "__Secure-" name requires secure=on (prefixes matched without
//   regard to case, as browsers do). The path must be "/" in `effective`: browsers keep a
//   __Host- cookie only with an explicit Path=/, so a caller that sends no Path by default
//   (cookie_set) gets the refusal, and session_cookie passes its default path "/".
// Defaults (what an absent attribute means) are the caller's: CookieAttrSpec says what was given.
#pragma once

#include "common.h"
#include "cookie.h"

namespace sess {

enum class CookieDirective : uint8_t { SessionCookie, CookieSet, CookieDelete };
enum class Secure : uint8_t { Off, On, Auto };

struct CookieAttrSpec {
  std::string_view path;        // views into the arguments
  std::string_view domain;
  int64_t max_age = -1;         // seconds
  int64_t expires = -1;         // seconds from now
  Secure secure = Secure::Off;
  bool httponly = false;
  SameSite samesite = SameSite::Unset;
  bool partitioned = false;
  size_t chunks = 1;            // session_cookie: the most cookies a session is split into
  // which attributes were given
  bool has_path = false, has_domain = false, has_max_age = false, has_expires = false,
       has_secure = false, has_httponly = false, has_samesite = false, has_partitioned = false,
       has_chunks = false;
};

struct CookieAttrError {
  size_t index = 0;             // the offending argument (for "unknown"/"invalid"/"duplicate")
  const char* message = "";     // static text, e.g. "unknown attribute", "duplicate
                                // attribute", "invalid samesite value (strict, lax, none or
                                // off)", "secure=auto is only for session_cookie"
};

// Parses args[0..n). On error returns false and fills err.
bool cookie_attrs_parse(CookieDirective d, const std::string_view* args, size_t n,
                        CookieAttrSpec* out, CookieAttrError* err) noexcept;

// The cross-attribute rules for a cookie named `name` with the effective attributes (after the
// caller applied its defaults). Returns nullptr if fine, else a static message naming the rule.
const char* cookie_attrs_check(std::string_view name, const CookieAttrSpec& effective) noexcept;

}  // namespace sess
