// The attribute grammar of session_cookie, cookie_set and cookie_delete (see cookie_attrs.h).
#include "cookie_attrs.h"

#include "chunks.h"
#include "duration.h"

namespace sess {

namespace {

constexpr size_t kMaxPath = 1024;
constexpr size_t kMaxDomain = 253;

// Messages (static: the glue prints them as "<directive>": <message> "<argument>").
constexpr const char* kUnknown = "unknown attribute";
constexpr const char* kDuplicate = "duplicate attribute";
constexpr const char* kDeleteOnly = "cookie_delete takes only path=, domain= and secure";
constexpr const char* kExpiresOnly = "expires= is only for cookie_set (use max_age=)";
constexpr const char* kAutoOnly = "secure=auto is only for session_cookie";
constexpr const char* kBadPath =
    "invalid path (\"/\" then visible ASCII without \";\" and \",\", at most 1024 bytes)";
constexpr const char* kBadDomain =
    "invalid domain (letters, digits, \"-\" and \".\", at most 253 bytes)";
constexpr const char* kBadTime = "invalid time (nginx units, e.g. 30m, 2h, 31d)";
constexpr const char* kBadSecure = "invalid secure value (on, off or auto)";
constexpr const char* kBadOnOff = "invalid httponly value (on or off)";
constexpr const char* kBadSameSite = "invalid samesite value (strict, lax, none or off)";
constexpr const char* kBadPartitioned = "partitioned takes no value";
constexpr const char* kBadChunks = "invalid chunks value (a number of cookies, 1 to 16)";
static_assert(kMaxChunks == 16, "kBadChunks names the bound");
constexpr const char* kChunksOnly = "chunks= is only for session_cookie";

enum Attr : unsigned {
  kPath,
  kDomain,
  kMaxAge,
  kExpires,
  kSecure,
  kHttpOnly,
  kSameSite,
  kPartitioned,
  kChunks,
  kAttrCount,
};

constexpr std::string_view kNames[kAttrCount] = {
    "path",     "domain",   "max_age",     "expires", "secure",
    "httponly", "samesite", "partitioned", "chunks",
};

char ascii_lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// ASCII case-insensitive equality (attribute names and keyword values, as nginx's own
// proxy_cookie_flags and userid_flags compare them).
bool ieq(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool path_valid(std::string_view p) noexcept {
  if (p.empty() || p.size() > kMaxPath || p[0] != '/') return false;
  for (unsigned char c : p) {
    if (c < 0x21 || c > 0x7e || c == ';' || c == ',') return false;
  }
  return true;
}

bool domain_valid(std::string_view d) noexcept {
  if (d.empty() || d.size() > kMaxDomain) return false;
  std::string_view host = d[0] == '.' ? d.substr(1) : d;
  if (host.empty() || host.front() == '.' || host.back() == '.') return false;
  char prev = 0;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.';
    if (!ok || (c == '.' && prev == '.')) return false;
    prev = c;
  }
  return true;
}

// True and *out if v names one of the choices (case-insensitive).
template <typename T, size_t N>
bool keyword(std::string_view v, const std::string_view (&names)[N], const T (&values)[N],
             T* out) noexcept {
  for (size_t i = 0; i < N; i++) {
    if (ieq(v, names[i])) {
      *out = values[i];
      return true;
    }
  }
  return false;
}

// nullptr if attribute a may appear in directive d, else why not.
const char* not_allowed(CookieDirective d, Attr a) noexcept {
  switch (a) {
    case kPath:
    case kDomain:
    case kSecure:
      return nullptr;
    case kExpires:
      if (d == CookieDirective::CookieSet) return nullptr;
      return d == CookieDirective::CookieDelete ? kDeleteOnly : kExpiresOnly;
    case kChunks:
      return d == CookieDirective::SessionCookie ? nullptr : kChunksOnly;
    case kMaxAge:
    case kHttpOnly:
    case kSameSite:
    case kPartitioned:
    case kAttrCount:
      break;
  }
  return d == CookieDirective::CookieDelete ? kDeleteOnly : nullptr;
}

// Parses the value of one attribute into out. nullptr on success, else the message.
const char* parse_value(CookieDirective d, Attr a, bool has_value, std::string_view v,
                        CookieAttrSpec* out) noexcept {
  static constexpr std::string_view kOnOff[] = {"on", "off"};
  static constexpr bool kOnOffValues[] = {true, false};
  switch (a) {
    case kPath:
      if (!has_value || !path_valid(v)) return kBadPath;
      out->path = v;
      out->has_path = true;
      return nullptr;
    case kDomain:
      if (!has_value || !domain_valid(v)) return kBadDomain;
      out->domain = v;
      out->has_domain = true;
      return nullptr;
    case kMaxAge:
      if (!has_value || !parse_duration(v, &out->max_age)) return kBadTime;
      out->has_max_age = true;
      return nullptr;
    case kExpires:
      if (!has_value || !parse_duration(v, &out->expires)) return kBadTime;
      out->has_expires = true;
      return nullptr;
    case kSecure: {
      static constexpr std::string_view kNames3[] = {"on", "off", "auto"};
      static constexpr Secure kValues3[] = {Secure::On, Secure::Off, Secure::Auto};
      Secure s = Secure::On;
      if (has_value && !keyword(v, kNames3, kValues3, &s)) return kBadSecure;
      if (s == Secure::Auto && d != CookieDirective::SessionCookie) return kAutoOnly;
      out->secure = s;
      out->has_secure = true;
      return nullptr;
    }
    case kHttpOnly: {
      bool on = true;
      if (has_value && !keyword(v, kOnOff, kOnOffValues, &on)) return kBadOnOff;
      out->httponly = on;
      out->has_httponly = true;
      return nullptr;
    }
    case kSameSite: {
      static constexpr std::string_view kNames4[] = {"strict", "lax", "none", "off"};
      static constexpr SameSite kValues4[] = {SameSite::Strict, SameSite::Lax, SameSite::None,
                                              SameSite::Unset};
      if (!has_value || !keyword(v, kNames4, kValues4, &out->samesite)) return kBadSameSite;
      out->has_samesite = true;
      return nullptr;
    }
    case kPartitioned:
      if (has_value) return kBadPartitioned;
      out->partitioned = true;
      out->has_partitioned = true;
      return nullptr;
    case kChunks:
      if (!has_value || !chunks_parse(v, &out->chunks)) return kBadChunks;
      out->has_chunks = true;
      return nullptr;
    case kAttrCount:
      break;
  }
  return kUnknown;
}

// True if name starts with prefix, ASCII case-insensitively (browsers match the cookie prefixes
// without regard to case, RFC 6265bis).
bool has_prefix(std::string_view name, std::string_view prefix) noexcept {
  return name.size() >= prefix.size() && ieq(name.substr(0, prefix.size()), prefix);
}

}  // namespace

bool cookie_attrs_parse(CookieDirective d, const std::string_view* args, size_t n,
                        CookieAttrSpec* out, CookieAttrError* err) noexcept {
  *out = CookieAttrSpec{};
  bool seen[kAttrCount] = {};
  for (size_t i = 0; i < n; i++) {
    const std::string_view word = args[i];
    const size_t eq = word.find('=');
    const std::string_view key = word.substr(0, eq);
    const bool has_value = eq != std::string_view::npos;
    const std::string_view value = has_value ? word.substr(eq + 1) : std::string_view();

    unsigned a = 0;
    while (a < kAttrCount && !ieq(key, kNames[a])) a++;
    const char* msg = nullptr;
    if (a == kAttrCount) {
      msg = kUnknown;
    } else if ((msg = not_allowed(d, static_cast<Attr>(a))) != nullptr) {
    } else if (seen[a]) {
      msg = kDuplicate;
    } else {
      seen[a] = true;
      msg = parse_value(d, static_cast<Attr>(a), has_value, value, out);
    }
    if (msg != nullptr) {
      err->index = i;
      err->message = msg;
      return false;
    }
  }
  return true;
}

const char* cookie_attrs_check(std::string_view name, const CookieAttrSpec& e) noexcept {
  const bool secure_on = e.secure == Secure::On;
  const bool is_auto = e.secure == Secure::Auto;
  if (has_prefix(name, "__Host-")) {
    if (!secure_on) {
      return is_auto ? "a \"__Host-\" cookie requires \"secure\" (secure=auto is not enough)"
                     : "a \"__Host-\" cookie requires \"secure\"";
    }
    if (e.has_domain || !e.domain.empty()) return "a \"__Host-\" cookie cannot have a domain";
    // Browsers keep a __Host- cookie only with an explicit "Path=/" (RFC 6265bis 5.4.7.1).
    if (e.path != "/") return "a \"__Host-\" cookie requires path=/";
  } else if (has_prefix(name, "__Secure-") && !secure_on) {
    return is_auto ? "a \"__Secure-\" cookie requires \"secure\" (secure=auto is not enough)"
                   : "a \"__Secure-\" cookie requires \"secure\"";
  }
  if (e.samesite == SameSite::None && !secure_on) {
    return is_auto ? "samesite=none requires \"secure\" (secure=auto is not enough)"
                   : "samesite=none requires \"secure\"";
  }
  if (e.partitioned && !secure_on) {
    return is_auto ? "partitioned requires \"secure\" (secure=auto is not enough)"
                   : "partitioned requires \"secure\"";
  }
  return nullptr;
}

}  // namespace sess
