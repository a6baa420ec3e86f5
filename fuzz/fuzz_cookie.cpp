// libFuzzer target: Cookie request-header parsing and Set-Cookie building (src/core/cookie.h).
//
// Input: "NAME\nHEADER" (split at the first LF); without a LF the name is "session" and the whole
// input is the header. The raw input is also used as an arbitrary cookie value and as the source
// of attribute numbers.
// Properties:
//   cookie_find   - agrees with an independent reference (count, first value, conflicting); the
//                   value is a view into the header without ';'; scanning the same header twice
//                   doubles the count and keeps `conflicting`; an empty name never matches.
//   cookie_value_encode - always yields a valid cookie-value; percent_decode gives the input
//                   back; valid values without '%' are unchanged; appends to out.
//   round trip    - an encoded value placed between other cookies (plain and DQUOTEd) is found
//                   by cookie_find exactly once with exactly that value.
//   cookie_collect - agrees with a reference: the distinct values in order of appearance (the
//                   first kMax), count <= kMax, overflow iff more distinct values were seen,
//                   occurrences as cookie_find counts them, the first value cookie_find's; the
//                   same header line twice doubles the occurrences and adds no value.
//   cookie_name_valid - agrees with the RFC 7230 token definition.
//   cookie_build / http_date - no control bytes in the result, attributes in order; http_date
//                   agrees with gmtime_r + strftime on the clamped range.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "cookie.h"
#include "form.h"

#include "fuzz_check.h"

namespace {

bool within(std::string_view outer, std::string_view inner) {
  if (inner.empty()) return true;
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

std::string_view ref_trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Reference scan of one header: pairs split on ';', name and value trimmed of SP/HTAB, a value
// wrapped in DQUOTEs unwrapped, pairs without '=' ignored. Calls f(value) per occurrence.
template <typename F>
void ref_scan(std::string_view header, std::string_view name, F&& f) {
  if (name.empty()) return;
  std::string_view rest = header;
  for (;;) {
    const size_t semi = rest.find(';');
    const std::string_view pair = rest.substr(0, semi);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && ref_trim(pair.substr(0, eq)) == name) {
      std::string_view v = ref_trim(pair.substr(eq + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      f(v);
    }
    if (semi == std::string_view::npos) break;
    rest.remove_prefix(semi + 1);
  }
}

void ref_find(std::string_view header, std::string_view name, sess::CookieLookup& acc) {
  ref_scan(header, name, [&acc](std::string_view v) {
    if (acc.count == 0) {
      acc.value = v;
    } else if (v != acc.value) {
      acc.conflicting = true;
    }
    acc.count++;
  });
}

// Every distinct value, in order of appearance, and the number of occurrences.
void ref_collect(std::string_view header, std::string_view name,
                 std::vector<std::string_view>& distinct, size_t& occurrences) {
  ref_scan(header, name, [&](std::string_view v) {
    occurrences++;
    if (std::find(distinct.begin(), distinct.end(), v) == distinct.end()) distinct.push_back(v);
  });
}

bool ref_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

bool ref_octet(unsigned char c) {
  return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
         (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

int64_t read_i64(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < n; i++) v = v << 8 | p[i];
  int64_t r;
  std::memcpy(&r, &v, sizeof r);
  return r;
}

void check_http_date(int64_t t) {
  sess::pstring d("<");
  sess::http_date(t, d);
  FUZZ_CHECK(d.size() == 30 && d[0] == '<');
  const std::string_view got = std::string_view(d).substr(1);
  int64_t c = t < 0 ? 0 : t;
  if (c > 253402300799) c = 253402300799;
  const time_t tt = static_cast<time_t>(c);
  struct tm tm;
  FUZZ_CHECK(gmtime_r(&tt, &tm) != nullptr);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  FUZZ_CHECK(got == std::string_view(buf, n));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view name = "session";
  std::string_view header = in;
  const size_t lf = in.find('\n');
  if (lf != std::string_view::npos) {
    name = in.substr(0, lf);
    header = in.substr(lf + 1);
  }

  // --- cookie_find ----------------------------------------------------------------------------
  sess::CookieLookup acc;
  sess::cookie_find(header, name, acc);
  sess::CookieLookup ref;
  ref_find(header, name, ref);
  FUZZ_CHECK(acc.count == ref.count);
  FUZZ_CHECK(acc.conflicting == ref.conflicting);
  FUZZ_CHECK(acc.value == ref.value);
  if (name.empty()) FUZZ_CHECK(acc.count == 0);
  if (acc.count == 0) {
    FUZZ_CHECK(acc.value.empty() && !acc.conflicting);
  } else {
    FUZZ_CHECK(within(header, acc.value));
    FUZZ_CHECK(acc.value.find(';') == std::string_view::npos);
  }
  sess::CookieLookup twice = acc;  // a second Cookie header line with the same content
  sess::cookie_find(header, name, twice);
  FUZZ_CHECK(twice.count == 2 * acc.count);
  FUZZ_CHECK(twice.conflicting == acc.conflicting);
  FUZZ_CHECK(twice.value.data() == acc.value.data() && twice.value.size() == acc.value.size());

  // --- cookie_collect -------------------------------------------------------------------------
  sess::CookieCandidates cand;
  sess::cookie_collect(header, name, cand);
  std::vector<std::string_view> distinct;
  size_t occurrences = 0;
  ref_collect(header, name, distinct, occurrences);
  constexpr size_t kMax = sess::CookieCandidates::kMax;
  FUZZ_CHECK(cand.occurrences == occurrences && cand.occurrences == acc.count);
  FUZZ_CHECK(cand.count <= kMax);
  FUZZ_CHECK(cand.count == std::min(distinct.size(), kMax));
  FUZZ_CHECK(cand.overflow == (distinct.size() > kMax));
  for (size_t i = 0; i < cand.count; i++) {
    FUZZ_CHECK(cand.values[i] == distinct[i]);
    FUZZ_CHECK(within(header, cand.values[i]));
    for (size_t j = 0; j < i; j++) FUZZ_CHECK(cand.values[j] != cand.values[i]);
  }
  if (cand.count > 0) {  // the first candidate is what cookie_find reports
    FUZZ_CHECK(cand.values[0].data() == acc.value.data() && cand.values[0] == acc.value);
  }
  FUZZ_CHECK((cand.count > 1) == acc.conflicting);
  sess::CookieCandidates cand2 = cand;  // the same header line again adds no new value
  sess::cookie_collect(header, name, cand2);
  FUZZ_CHECK(cand2.occurrences == 2 * cand.occurrences && cand2.count == cand.count &&
             cand2.overflow == cand.overflow);
  for (size_t i = 0; i < cand.count; i++) {
    FUZZ_CHECK(cand2.values[i].data() == cand.values[i].data());
  }

  // --- cookie_name_valid / cookie_value_valid --------------------------------------------------
  bool ref_name = !name.empty();
  for (unsigned char c : name) ref_name = ref_name && ref_tchar(c);
  FUZZ_CHECK(sess::cookie_name_valid(name) == ref_name);
  bool ref_value = true;
  for (unsigned char c : in) ref_value = ref_value && ref_octet(c);
  FUZZ_CHECK(sess::cookie_value_valid(in) == ref_value);

  // --- cookie_value_encode round trip ---------------------------------------------------------
  sess::pstring enc("p=");
  sess::cookie_value_encode(in, enc);
  FUZZ_CHECK(enc.compare(0, 2, "p=") == 0);
  enc.erase(0, 2);
  FUZZ_CHECK(sess::cookie_value_valid(enc));
  if (ref_value && in.find('%') == std::string_view::npos) FUZZ_CHECK(enc == in);
  for (size_t i = 0; i < enc.size(); i++) {
    if (enc[i] != '%') continue;
    FUZZ_CHECK(i + 2 < enc.size() && std::isxdigit(static_cast<unsigned char>(enc[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(enc[i + 2])) &&
               !std::islower(static_cast<unsigned char>(enc[i + 1])) &&
               !std::islower(static_cast<unsigned char>(enc[i + 2])));
  }
  sess::pstring dec;
  FUZZ_CHECK(sess::percent_decode(enc, dec));
  FUZZ_CHECK(std::string_view(dec) == in);

  if (ref_name && name != "a" && name != "b") {
    const std::string n(name);
    const std::string e(enc);
    for (const std::string& h : {"a=1; " + n + "=" + e + ";b=2", n + "=\"" + e + "\"",
                                 "\ta=x;;" + n + " = " + e + " ; junk"}) {
      sess::CookieLookup l;
      sess::cookie_find(h, name, l);
      FUZZ_CHECK(l.count == 1 && !l.conflicting && l.value == e);
    }
    // The same name twice with different values is reported as conflicting.
    const std::string twice_h = n + "=" + e + "; " + n + "=" + e + "x";
    sess::CookieLookup l;
    sess::cookie_find(twice_h, name, l);
    FUZZ_CHECK(l.count == 2 && l.conflicting && l.value == e);
    sess::CookieCandidates c;
    sess::cookie_collect(twice_h, name, c);
    FUZZ_CHECK(c.count == 2 && c.occurrences == 2 && !c.overflow && c.values[0] == e &&
               c.values[1] == e + "x");

    // --- cookie_build ---------------------------------------------------------------------------
    sess::CookieAttrs a;
    a.path = enc;
    a.domain = enc.size() > 3 ? std::string_view(enc).substr(0, 3) : std::string_view();
    a.max_age = read_i64(data, size);
    a.expires = size > 8 ? read_i64(data + 8, size - 8) : -1;
    const unsigned flags = size > 0 ? data[size - 1] : 0;
    a.secure = flags & 1;
    a.httponly = flags & 2;
    a.samesite = static_cast<sess::SameSite>((flags >> 2) & 3);
    a.partitioned = flags & 16;
    sess::pstring sc;
    sess::cookie_build(name, enc, a, sc);
    FUZZ_CHECK(sc.compare(0, n.size() + 1 + e.size(), n + "=" + e) == 0);
    for (unsigned char c : sc) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
    FUZZ_CHECK(a.path.empty() == (sc.find("; Path=") == std::string::npos));
    FUZZ_CHECK(a.domain.empty() == (sc.find("; Domain=") == std::string::npos));
    // enc has no ';' or space, so attribute markers can only come from cookie_build itself.
    FUZZ_CHECK((a.max_age >= 0) == (sc.find("; Max-Age=") != std::string::npos));
    FUZZ_CHECK(a.secure == (sc.find("; Secure") != std::string::npos));
    FUZZ_CHECK(a.httponly == (sc.find("; HttpOnly") != std::string::npos));
    FUZZ_CHECK(a.partitioned == (sc.find("; Partitioned") != std::string::npos));
    FUZZ_CHECK((a.samesite != sess::SameSite::Unset) == (sc.find("; SameSite=") != std::string::npos));
    if (a.expires >= 0) {
      sess::pstring date;
      sess::http_date(a.expires, date);
      FUZZ_CHECK(sc.find("; Expires=" + std::string(date)) != std::string::npos);
    }
  }

  // --- http_date ------------------------------------------------------------------------------
  check_http_date(read_i64(data, size));
  if (size >= 4) {
    uint32_t small;
    std::memcpy(&small, data, sizeof small);
    check_http_date(small);  // the common range, with realistic dates
  }
  return 0;
}
