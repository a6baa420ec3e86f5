// libFuzzer target: the cookie attribute grammar (src/core/cookie_attrs.h) and durations
// (src/core/duration.h).
//
// Input: words separated by NUL bytes or spaces (empty words dropped). The first word is the
// cookie name (for cookie_attrs_check), the others are the attributes; they are parsed under each
// directive kind (session_cookie, cookie_set, cookie_delete).
// Properties:
//   cookie_attrs_parse - never crashes; accepts exactly what an independent reference accepts,
//                   with the same values; on success every has_* attribute was given exactly once
//                   (case-insensitively) and absent ones not at all, the path starts with '/',
//                   path and domain have no ';' and are views into the words; parsing the same
//                   words again gives the same result; on failure err.index < n and the message
//                   is printable text. Across kinds: what cookie_delete accepts, cookie_set and
//                   session_cookie accept alike; cookie_set without expires= agrees with
//                   session_cookie without secure=auto and chunks=; chunks= (1..16, canonical
//                   decimal) only for session_cookie.
//   cookie_attrs_check - agrees with a reference of the prefix / samesite / partitioned rules.
//   parse_duration - on every word and every value: accepts exactly what a transcription of
//                   nginx's ngx_parse_time(is_sec=1) accepts minus nginx's lax forms (spaces, a
//                   unit without a number, a bare number after 's'), with the same value.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cookie_attrs.h"
#include "duration.h"

#include "fuzz_check.h"

namespace {

using sess::CookieAttrError;
using sess::CookieAttrSpec;
using sess::CookieDirective;
using sess::SameSite;
using sess::Secure;

// ---- nginx's ngx_parse_time(line, is_sec=1), transcribed from src/core/ngx_parse.c -------------
// (NGX_MAX_INT_T_VALUE = INT64_MAX on 64-bit). Returns -1 for NGX_ERROR.
int64_t ngx_parse_time_sec(std::string_view line) {
  const int64_t kMaxInt = std::numeric_limits<int64_t>::max();
  enum { st_start, st_year, st_month, st_week, st_day, st_hour, st_min, st_sec, st_msec, st_last };
  int64_t value = 0, total = 0, scale = 1, max = 0;
  const int64_t cutoff = kMaxInt / 10, cutlim = kMaxInt % 10;
  bool valid = false;
  int step = st_start;
  const char* p = line.data();
  const char* last = p + line.size();
  while (p < last) {
    if (*p >= '0' && *p <= '9') {
      if (value >= cutoff && (value > cutoff || *p - '0' > cutlim)) return -1;
      value = value * 10 + (*p++ - '0');
      valid = true;
      continue;
    }
    switch (*p++) {
      case 'y':
        if (step > st_start) return -1;
        step = st_year; max = kMaxInt / (60 * 60 * 24 * 365); scale = 60 * 60 * 24 * 365;
        break;
      case 'M':
        if (step >= st_month) return -1;
        step = st_month; max = kMaxInt / (60 * 60 * 24 * 30); scale = 60 * 60 * 24 * 30;
        break;
      case 'w':
        if (step >= st_week) return -1;
        step = st_week; max = kMaxInt / (60 * 60 * 24 * 7); scale = 60 * 60 * 24 * 7;
        break;
      case 'd':
        if (step >= st_day) return -1;
        step = st_day; max = kMaxInt / (60 * 60 * 24); scale = 60 * 60 * 24;
        break;
      case 'h':
        if (step >= st_hour) return -1;
        step = st_hour; max = kMaxInt / (60 * 60); scale = 60 * 60;
        break;
      case 'm':
        if (p < last && *p == 's') return -1;  // is_sec
        if (step >= st_min) return -1;
        step = st_min; max = kMaxInt / 60; scale = 60;
        break;
      case 's':
        if (step >= st_sec) return -1;
        step = st_sec; max = kMaxInt; scale = 1;
        break;
      case ' ':
        if (step >= st_sec) return -1;
        step = st_last; max = kMaxInt; scale = 1;
        break;
      default:
        return -1;
    }
    if (value > max) return -1;
    value *= scale;
    if (total > kMaxInt - value) return -1;
    total += value;
    value = 0;
    while (p < last && *p == ' ') p++;
  }
  if (!valid) return -1;
  if (total > kMaxInt - value) return -1;
  return total + value;
}

// Where nginx accepts by accident and parse_duration refuses on purpose (duration.cpp).
bool nginx_lax(std::string_view s) {
  if (s.find(' ') != std::string_view::npos) return true;
  for (size_t i = 0; i < s.size(); i++) {
    const bool unit = std::strchr("yMwdhms", s[i]) != nullptr && s[i] != '\0';
    if (unit && (i == 0 || s[i - 1] < '0' || s[i - 1] > '9')) return true;  // "1hm", "h"
  }
  const size_t last_s = s.rfind('s');
  if (last_s != std::string_view::npos && last_s + 1 < s.size()) return true;  // "1s30"
  return false;
}

void check_duration(std::string_view s) {
  int64_t got = -7;
  const bool ok = sess::parse_duration(s, &got);
  const int64_t ref = ngx_parse_time_sec(s);
  // Accepted exactly where nginx accepts and is not lax, with nginx's value.
  FUZZ_CHECK(ok == (ref >= 0 && !nginx_lax(s)));
  FUZZ_CHECK(ok ? got == ref : got == -7);
}

// ---- reference grammar --------------------------------------------------------------------------

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return r;
}

bool ref_path(std::string_view p) {
  if (p.size() < 1 || p.size() > 1024 || p[0] != '/') return false;
  for (unsigned char c : p) {
    if (c <= ' ' || c >= 0x7f || c == ';' || c == ',') return false;
  }
  return true;
}

bool ref_domain(std::string_view d) {
  if (d.size() < 1 || d.size() > 253) return false;
  std::string_view h = d;
  if (h[0] == '.') h.remove_prefix(1);
  if (h.empty() || h[0] == '.' || h[h.size() - 1] == '.') return false;
  if (h.find("..") != std::string_view::npos) return false;
  for (unsigned char c : h) {
    if (!std::isalnum(c) && c != '-' && c != '.') return false;
  }
  return true;
}

// Reference: true and *out if the words are a valid attribute list for d.
bool ref_parse(CookieDirective d, const std::vector<std::string_view>& w, CookieAttrSpec* out) {
  *out = CookieAttrSpec{};
  const bool del = d == CookieDirective::CookieDelete;
  std::vector<std::string> seen;
  for (std::string_view word : w) {
    const size_t eq = word.find('=');
    const std::string key = lower(word.substr(0, eq));
    const bool hv = eq != std::string_view::npos;
    const std::string_view v = hv ? word.substr(eq + 1) : std::string_view();
    const std::string lv = lower(v);
    for (const auto& s : seen) {
      if (s == key) return false;
    }
    seen.push_back(key);
    if (key == "path" && hv && ref_path(v)) {
      out->path = v; out->has_path = true;
    } else if (key == "domain" && hv && ref_domain(v)) {
      out->domain = v; out->has_domain = true;
    } else if (key == "max_age" && !del && hv && sess::parse_duration(v, &out->max_age)) {
      out->has_max_age = true;
    } else if (key == "expires" && d == CookieDirective::CookieSet && hv &&
               sess::parse_duration(v, &out->expires)) {
      out->has_expires = true;
    } else if (key == "secure" && (!hv || lv == "on")) {
      out->secure = Secure::On; out->has_secure = true;
    } else if (key == "secure" && hv && lv == "off") {
      out->secure = Secure::Off; out->has_secure = true;
    } else if (key == "secure" && hv && lv == "auto" && d == CookieDirective::SessionCookie) {
      out->secure = Secure::Auto; out->has_secure = true;
    } else if (key == "httponly" && !del && (!hv || lv == "on" || lv == "off")) {
      out->httponly = !hv || lv == "on"; out->has_httponly = true;
    } else if (key == "samesite" && !del && hv &&
               (lv == "strict" || lv == "lax" || lv == "none" || lv == "off")) {
      out->samesite = lv == "strict" ? SameSite::Strict
                      : lv == "lax"  ? SameSite::Lax
                      : lv == "none" ? SameSite::None
                                     : SameSite::Unset;
      out->has_samesite = true;
    } else if (key == "partitioned" && !del && !hv) {
      out->partitioned = true; out->has_partitioned = true;
    } else if (key == "chunks" && d == CookieDirective::SessionCookie && hv && !v.empty() &&
               v.size() <= 2 && v[0] >= '1' && v[0] <= '9' &&
               (v.size() == 1 || (v[1] >= '0' && v[1] <= '9')) &&
               std::stoul(std::string(v)) <= 16) {
      out->chunks = std::stoul(std::string(v)); out->has_chunks = true;
    } else {
      return false;
    }
  }
  return true;
}

bool ref_check_ok(std::string_view name, const CookieAttrSpec& e) {
  const std::string ln = lower(name);
  const bool on = e.secure == Secure::On;
  if (ln.rfind("__host-", 0) == 0 && (!on || !e.domain.empty() || e.has_domain || e.path != "/")) {
    return false;
  }
  if (ln.rfind("__secure-", 0) == 0 && !on) return false;
  if (e.samesite == SameSite::None && !on) return false;
  if (e.partitioned && !on) return false;
  return true;
}

bool same(const CookieAttrSpec& a, const CookieAttrSpec& b) {
  return a.path.data() == b.path.data() && a.path.size() == b.path.size() &&
         a.domain.data() == b.domain.data() && a.domain.size() == b.domain.size() &&
         a.max_age == b.max_age && a.expires == b.expires && a.secure == b.secure &&
         a.httponly == b.httponly && a.samesite == b.samesite && a.partitioned == b.partitioned &&
         a.has_path == b.has_path && a.has_domain == b.has_domain &&
         a.has_max_age == b.has_max_age && a.has_expires == b.has_expires &&
         a.has_secure == b.has_secure && a.has_httponly == b.has_httponly &&
         a.has_samesite == b.has_samesite && a.has_partitioned == b.has_partitioned &&
         a.chunks == b.chunks && a.has_chunks == b.has_chunks;
}

bool within(std::string_view outer, std::string_view inner) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

size_t count_key(const std::vector<std::string_view>& w, std::string_view key) {
  size_t n = 0;
  for (std::string_view word : w) {
    if (lower(word.substr(0, word.find('='))) == key) n++;
  }
  return n;
}

struct Result {
  bool ok;
  CookieAttrSpec spec;
  CookieAttrError err;
};

Result run(CookieDirective d, const std::vector<std::string_view>& args, std::string_view in) {
  Result r{};
  r.ok = sess::cookie_attrs_parse(d, args.data(), args.size(), &r.spec, &r.err);

  // Again: the same result.
  CookieAttrSpec again;
  CookieAttrError err2;
  const bool ok2 = sess::cookie_attrs_parse(d, args.data(), args.size(), &again, &err2);
  FUZZ_CHECK(ok2 == r.ok);

  CookieAttrSpec ref;
  FUZZ_CHECK(ref_parse(d, args, &ref) == r.ok);
  if (r.ok) {
    FUZZ_CHECK(same(again, r.spec));
    FUZZ_CHECK(same(ref, r.spec));
    const CookieAttrSpec& s = r.spec;
    const struct {
      bool has;
      const char* key;
    } given[] = {{s.has_path, "path"},         {s.has_domain, "domain"},
                 {s.has_max_age, "max_age"},   {s.has_expires, "expires"},
                 {s.has_secure, "secure"},     {s.has_httponly, "httponly"},
                 {s.has_samesite, "samesite"}, {s.has_partitioned, "partitioned"},
                 {s.has_chunks, "chunks"}};
    size_t total = 0;
    for (const auto& g : given) {
      FUZZ_CHECK(count_key(args, g.key) == (g.has ? 1u : 0u));
      total += g.has;
    }
    FUZZ_CHECK(total == args.size());
    if (s.has_path) {
      FUZZ_CHECK(!s.path.empty() && s.path[0] == '/' && s.path.size() <= 1024);
      FUZZ_CHECK(s.path.find(';') == std::string_view::npos);
      FUZZ_CHECK(within(in, s.path));
    } else {
      FUZZ_CHECK(s.path.empty());
    }
    if (s.has_domain) {
      FUZZ_CHECK(!s.domain.empty() && s.domain.size() <= 253);
      FUZZ_CHECK(s.domain.find(';') == std::string_view::npos);
      FUZZ_CHECK(within(in, s.domain));
    } else {
      FUZZ_CHECK(s.domain.empty());
    }
    FUZZ_CHECK(s.has_max_age ? s.max_age >= 0 : s.max_age == -1);
    FUZZ_CHECK(s.has_expires ? s.expires >= 0 : s.expires == -1);
    FUZZ_CHECK(s.has_chunks ? s.chunks >= 1 && s.chunks <= 16 : s.chunks == 1);
    if (d != CookieDirective::SessionCookie) FUZZ_CHECK(!s.has_chunks);
    if (d == CookieDirective::CookieDelete) {
      FUZZ_CHECK(!s.has_max_age && !s.has_expires && !s.has_httponly && !s.has_samesite &&
                 !s.has_partitioned);
    }
    if (d != CookieDirective::SessionCookie) FUZZ_CHECK(s.secure != Secure::Auto);
    if (d != CookieDirective::CookieSet) FUZZ_CHECK(!s.has_expires);
  } else {
    FUZZ_CHECK(err2.index == r.err.index && err2.message == r.err.message);
    FUZZ_CHECK(r.err.index < args.size());
    FUZZ_CHECK(r.err.message != nullptr && r.err.message[0] != '\0');
    for (const char* m = r.err.message; *m != '\0'; m++) FUZZ_CHECK(*m >= 0x20 && *m < 0x7f);
    // The words before the offending one are a valid list on their own.
    const std::vector<std::string_view> prefix(args.begin(), args.begin() + r.err.index);
    CookieAttrSpec pspec;
    CookieAttrError perr;
    FUZZ_CHECK(sess::cookie_attrs_parse(d, prefix.data(), prefix.size(), &pspec, &perr));
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> words;
  size_t start = 0;
  for (size_t i = 0; i <= size; i++) {
    if (i == size || in[i] == '\0' || in[i] == ' ') {
      if (i > start) words.push_back(in.substr(start, i - start));
      start = i + 1;
    }
  }
  if (words.size() > 64) words.resize(64);

  // parse_duration against nginx, on every word and every value.
  for (std::string_view w : words) {
    check_duration(w);
    const size_t eq = w.find('=');
    if (eq != std::string_view::npos) check_duration(w.substr(eq + 1));
  }
  if (size <= 64) check_duration(in);  // with spaces and NULs inside

  const std::string_view name = words.empty() ? std::string_view() : words[0];
  const std::vector<std::string_view> args(words.empty() ? words.begin() : words.begin() + 1,
                                           words.end());
  const Result session = run(CookieDirective::SessionCookie, args, in);
  const Result set = run(CookieDirective::CookieSet, args, in);
  const Result del = run(CookieDirective::CookieDelete, args, in);

  // Across kinds.
  if (del.ok) {
    FUZZ_CHECK(set.ok && same(set.spec, del.spec));
    FUZZ_CHECK(session.ok && same(session.spec, del.spec));
  }
  if (set.ok && !set.spec.has_expires) FUZZ_CHECK(session.ok && same(session.spec, set.spec));
  if (session.ok && session.spec.secure != Secure::Auto && !session.spec.has_chunks) {
    FUZZ_CHECK(set.ok && same(set.spec, session.spec));
  }

  // cookie_attrs_check on the effective attributes (session_cookie's defaults applied) and on
  // the bare parse of cookie_set.
  if (session.ok) {
    CookieAttrSpec e = session.spec;
    if (!e.has_path) e.path = "/";
    if (!e.has_secure) e.secure = Secure::Auto;
    if (!e.has_httponly) e.httponly = true;
    if (!e.has_samesite) e.samesite = SameSite::Lax;
    const char* m = sess::cookie_attrs_check(name, e);
    FUZZ_CHECK((m == nullptr) == ref_check_ok(name, e));
    if (m != nullptr) {
      for (const char* c = m; *c != '\0'; c++) FUZZ_CHECK(*c >= 0x20 && *c < 0x7f);
    }
  }
  if (set.ok) {
    const char* m = sess::cookie_attrs_check(name, set.spec);
    FUZZ_CHECK((m == nullptr) == ref_check_ok(name, set.spec));
  }
  return 0;
}
