// Cookie request-header parsing and Set-Cookie building (RFC 6265, RFC 7230, RFC 7231).
#include "cookie.h"

#include "chunks.h"

#include <charconv>
#include <cstring>

namespace sess {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

// RFC 7230 tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" /
// "|" / "~" / DIGIT / ALPHA.
bool is_tchar(unsigned char c) noexcept {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

// RFC 6265 cookie-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
// (US-ASCII excluding CTLs, whitespace, DQUOTE, comma, semicolon and backslash).
bool is_cookie_octet(unsigned char c) noexcept {
  return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\';
}

void append_int(int64_t v, pstring& out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

// Days since 1970-01-01 to a proleptic Gregorian civil date (the classic era-of-400-years
// computation; valid for the whole clamped range used below).
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) noexcept {
  z += 719468;  // shift the epoch to 0000-03-01
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);                 // [0, 146096]
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;   // [0, 399]
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                 // [0, 365]
  const unsigned mp = (5 * doy + 2) / 153;                                      // [0, 11]
  d = doy - (153 * mp + 2) / 5 + 1;                                             // [1, 31]
  m = mp < 10 ? mp + 3 : mp - 9;                                                // [1, 12]
  y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
}

inline bool is_wsp(char c) noexcept { return c == ' ' || c == '\t'; }

// Calls f(value) for every occurrence of name in one Cookie header value, exactly as
// cookie_for_each_pair would report it (name == the pair's trimmed name), without splitting
// pairs that are not name's: a pair is name's iff, after SP/HTAB, it starts with name followed by
// SP/HTAB and '=' - when name has no '=' or ';' and no SP/HTAB at either end (the pair's first
// '=' is then the one after it). A name that cannot be a trimmed pair name never matches. One
// memchr per pair (the session cookie's path runs this on every request).
template <typename F>
void for_each_value(std::string_view header, std::string_view name, F&& f) noexcept {
  if (name.empty() || header.empty()) return;
  // (A name with a leading SP/HTAB or a ';' never matches the bytes compared below; one with a
  // trailing SP/HTAB or an '=' could, and is refused when it does.)
  auto impossible = [name]() noexcept {
    return is_wsp(name.back()) || has_byte(name, '=');
  };
  const char* p = header.data();
  const size_t n = header.size();
  size_t pos = 0;
  while (pos <= n) {
    const char* semi_p = static_cast<const char*>(std::memchr(p + pos, ';', n - pos));
    const size_t semi = semi_p != nullptr ? static_cast<size_t>(semi_p - p) : n;
    size_t i = pos;
    while (i < semi && is_wsp(p[i])) i++;
    if (semi - i > name.size() && bytes_equal(p + i, name.data(), name.size())) {
      i += name.size();
      while (i < semi && is_wsp(p[i])) i++;
      if (i < semi && p[i] == '=') {
        if (impossible()) return;
        f(cookie_pair_value(std::string_view(p + i + 1, semi - i - 1)));
      }
    }
    pos = semi + 1;
  }
}

}  // namespace

void cookie_find(std::string_view header, std::string_view name, CookieLookup& acc) noexcept {
  for_each_value(header, name, [&acc](std::string_view value) noexcept {
    if (acc.count == 0) {
      acc.value = value;
    } else if (value != acc.value) {
      acc.conflicting = true;
    }
    if (acc.count != ~0u) acc.count++;
  });
}

void cookie_collect(std::string_view header, std::string_view name,
                    CookieCandidates& acc) noexcept {
  for_each_value(header, name, [&acc](std::string_view value) noexcept {
    acc.occurrences++;
    for (size_t i = 0; i < acc.count; i++) {
      if (acc.values[i] == value) return;
    }
    if (acc.count < CookieCandidates::kMax) {
      acc.values[acc.count++] = value;
    } else {
      acc.overflow = true;
    }
  });
}

bool cookie_name_valid(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

bool cookie_value_valid(std::string_view value) noexcept {
  for (unsigned char c : value) {
    if (!is_cookie_octet(c)) return false;
  }
  return true;
}

void cookie_value_encode(std::string_view value, pstring& out) {
  size_t extra = 0;
  for (unsigned char c : value) {
    if (!is_cookie_octet(c) || c == '%') extra += 2;
  }
  out.reserve(out.size() + value.size() + extra);
  size_t run = 0;  // start of the pending run of bytes copied verbatim
  for (size_t i = 0; i < value.size(); i++) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (is_cookie_octet(c) && c != '%') continue;
    out.append(value.data() + run, i - run);
    out.push_back('%');
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0x0f]);
    run = i + 1;
  }
  out.append(value.data() + run, value.size() - run);
}

void cookie_build(std::string_view name, std::string_view value, const CookieAttrs& a,
                  pstring& out) {
  size_t len = name.size() + 1 + value.size();
  if (!a.path.empty()) len += 7 + a.path.size();
  if (!a.domain.empty()) len += 9 + a.domain.size();
  if (a.max_age >= 0) len += 10 + 20;
  if (a.expires >= 0) len += 10 + 29;
  len += 8 + 10 + 17 + 13;
  out.reserve(out.size() + len);

  out.append(name.data(), name.size());
  out.push_back('=');
  out.append(value.data(), value.size());
  if (!a.path.empty()) {
    out.append("; Path=");
    out.append(a.path.data(), a.path.size());
  }
  if (!a.domain.empty()) {
    out.append("; Domain=");
    out.append(a.domain.data(), a.domain.size());
  }
  if (a.max_age >= 0) {
    out.append("; Max-Age=");
    append_int(a.max_age, out);
  }
  if (a.expires >= 0) {
    out.append("; Expires=");
    http_date(a.expires, out);
  }
  if (a.secure) out.append("; Secure");
  if (a.httponly) out.append("; HttpOnly");
  switch (a.samesite) {
    case SameSite::Strict: out.append("; SameSite=Strict"); break;
    case SameSite::Lax: out.append("; SameSite=Lax"); break;
    case SameSite::None: out.append("; SameSite=None"); break;
    case SameSite::Unset: break;
  }
  if (a.partitioned) out.append("; Partitioned");
}

void http_date(int64_t t, pstring& out) {
  // IMF-fixdate has a four-digit year: clamp to 1970-01-01 .. 9999-12-31T23:59:59.
  constexpr int64_t kMax = 253402300799;
  if (t < 0) t = 0;
  if (t > kMax) t = kMax;

  static constexpr char kDays[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
  static constexpr char kMonths[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const int64_t days = t / 86400;
  const auto secs = static_cast<unsigned>(t % 86400);
  int64_t year = 0;
  unsigned month = 0, mday = 0;
  civil_from_days(days, year, month, mday);
  const auto y = static_cast<unsigned>(year);

  char buf[29];  // "Thu, 01 Jan 1970 00:00:00 GMT"
  const char* wd = kDays[days % 7];
  const char* mo = kMonths[month - 1];
  buf[0] = wd[0]; buf[1] = wd[1]; buf[2] = wd[2]; buf[3] = ','; buf[4] = ' ';
  buf[5] = static_cast<char>('0' + mday / 10); buf[6] = static_cast<char>('0' + mday % 10);
  buf[7] = ' ';
  buf[8] = mo[0]; buf[9] = mo[1]; buf[10] = mo[2]; buf[11] = ' ';
  buf[12] = static_cast<char>('0' + y / 1000); buf[13] = static_cast<char>('0' + y / 100 % 10);
  buf[14] = static_cast<char>('0' + y / 10 % 10); buf[15] = static_cast<char>('0' + y % 10);
  buf[16] = ' ';
  const unsigned hh = secs / 3600, mm = secs / 60 % 60, ss = secs % 60;
  buf[17] = static_cast<char>('0' + hh / 10); buf[18] = static_cast<char>('0' + hh % 10);
  buf[19] = ':';
  buf[20] = static_cast<char>('0' + mm / 10); buf[21] = static_cast<char>('0' + mm % 10);
  buf[22] = ':';
  buf[23] = static_cast<char>('0' + ss / 10); buf[24] = static_cast<char>('0' + ss % 10);
  buf[25] = ' '; buf[26] = 'G'; buf[27] = 'M'; buf[28] = 'T';
  out.append(buf, sizeof(buf));
}

bool cookie_is_session_own(std::string_view session_name, std::string_view name) noexcept {
  if (session_name.empty() || name.size() < session_name.size() ||
      name.substr(0, session_name.size()) != session_name) {
    return false;
  }
  std::string_view rest = name.substr(session_name.size());
  if (rest.empty() || rest == "_csrf") return true;
  if (rest.size() < 2 || rest[0] != '_') return false;
  for (char c : rest.substr(1)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

const char* session_cookie_clash(std::string_view name, std::string_view other) noexcept {
  if (other == name || !cookie_is_session_own(name, other)) return nullptr;
  std::string_view rest = other.substr(name.size());
  if (rest == "_csrf") return "the CSRF cookie";
  // Chunk names are <name>_1 .. <name>_15 (chunks.h): the ones a write may expire or overwrite.
  std::string_view digits = rest.substr(1);
  if (digits.size() > 2 || digits[0] == '0') return nullptr;
  unsigned n = 0;
  for (char c : digits) n = n * 10 + static_cast<unsigned>(c - '0');
  return n >= 1 && n < kMaxChunks ? "a chunk name" : nullptr;
}

}  // namespace sess
