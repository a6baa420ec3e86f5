// Cross-origin checks for login and logout (see origin.h).
#include "origin.h"

#include <arpa/inet.h>

#include <cstring>

namespace sess {

namespace {

constexpr size_t kMaxOriginLen = 512;
constexpr size_t kMaxSchemeLen = 32;
constexpr size_t kMaxHostLen = 255;      // a DNS name, with a trailing dot
constexpr size_t kMaxIpv6TextLen = 45;   // INET6_ADDRSTRLEN without the NUL
constexpr size_t kIpv6Len = 16;

bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

bool iequal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), bounded.
bool scheme_valid(std::string_view s) noexcept {
  if (s.empty() || s.size() > kMaxSchemeLen || !is_alpha(s[0])) return false;
  for (char c : s) {
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

// A host name or IPv4 address as browsers serialize it (ASCII, IDNs in punycode): letters,
// digits, '-', '.', and '_' (found in container and intranet names).
bool name_valid(std::string_view h) noexcept {
  if (h.empty() || h.size() > kMaxHostLen) return false;
  for (char c : h) {
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_') return false;
  }
  return true;
}

// The 16 bytes of "[v6]" (brackets included); false unless inet_pton accepts the inside.
bool ipv6_bytes(std::string_view bracketed, unsigned char* out) noexcept {
  if (bracketed.size() < 2 || bracketed.front() != '[' || bracketed.back() != ']') return false;
  const std::string_view inner = bracketed.substr(1, bracketed.size() - 2);
  if (inner.empty() || inner.size() > kMaxIpv6TextLen) return false;
  // Only what an address can contain (no zone id, and no NUL that would end the C string early).
  for (char c : inner) {
    if (hex_value(c) < 0 && c != ':' && c != '.') return false;
  }
  char buf[kMaxIpv6TextLen + 1];
  std::memcpy(buf, inner.data(), inner.size());
  buf[inner.size()] = '\0';
  return inet_pton(AF_INET6, buf, out) == 1;
}

// 1 to 5 digits without a leading zero, 1..65535: one spelling per port, so ports compare as text.
bool port_valid(std::string_view p) noexcept {
  if (p.empty() || p.size() > 5 || p[0] == '0') return false;
  uint32_t v = 0;
  for (char c : p) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v <= 65535;
}

// "host[:port]" with an IPv6 host in brackets (kept in *host). An empty port is absent.
bool parse_authority(std::string_view a, std::string_view* host, std::string_view* port) noexcept {
  std::string_view h;
  std::string_view rest;
  if (!a.empty() && a[0] == '[') {
    const size_t close = a.find(']');
    if (close == std::string_view::npos) return false;
    h = a.substr(0, close + 1);
    rest = a.substr(close + 1);
    unsigned char bytes[kIpv6Len];
    if (!ipv6_bytes(h, bytes)) return false;
  } else {
    const size_t colon = a.find(':');
    h = a.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : a.substr(colon);
    if (!name_valid(h)) return false;
  }
  std::string_view p;
  if (!rest.empty()) {
    if (rest[0] != ':') return false;
    p = rest.substr(1);
    if (!port_valid(p)) return false;
  }
  *host = h;
  *port = p;
  return true;
}

// Hosts from parse_authority: IPv6 literals by address, names without regard to ASCII case.
bool same_host(std::string_view a, std::string_view b) noexcept {
  const bool a6 = a[0] == '[';
  const bool b6 = b[0] == '[';
  if (a6 != b6) return false;
  if (!a6) return iequal(a, b);
  unsigned char x[kIpv6Len];
  unsigned char y[kIpv6Len];
  return ipv6_bytes(a, x) && ipv6_bytes(b, y) && std::memcmp(x, y, kIpv6Len) == 0;
}

// The default port of a scheme whose pages this server can serve, or empty for any other.
std::string_view default_port(std::string_view scheme) noexcept {
  if (iequal(scheme, "http")) return "80";
  if (iequal(scheme, "https")) return "443";
  return {};
}

bool fetch_site_is(const std::string_view* fetch_site, std::string_view value) noexcept {
  return fetch_site != nullptr && iequal(trim_wsp(*fetch_site), value);
}

}  // namespace

bool origin_parse(std::string_view origin, std::string_view* scheme, std::string_view* host,
                  std::string_view* port) noexcept {
  if (origin.size() > kMaxOriginLen) return false;
  const size_t colon = origin.find(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view s = origin.substr(0, colon);
  const std::string_view rest = origin.substr(colon);
  if (!scheme_valid(s) || rest.substr(0, 3) != "://") return false;
  std::string_view h;
  std::string_view p;
  if (!parse_authority(rest.substr(3), &h, &p)) return false;
  if (scheme) *scheme = s;
  if (host) *host = h;
  if (port) *port = p;
  return true;
}

OriginVerdict login_origin_check(std::string_view host, const std::string_view* origin,
                                 const std::string_view* fetch_site) noexcept {
  if (fetch_site_is(fetch_site, "cross-site") || fetch_site_is(fetch_site, "same-site")) {
    return OriginVerdict::CrossOrigin;
  }
  if (origin == nullptr) return OriginVerdict::Allow;

  // "null" and anything else that is not scheme://host[:port] fail here.
  std::string_view scheme, ohost, oport;
  if (!origin_parse(*origin, &scheme, &ohost, &oport)) return OriginVerdict::CrossOrigin;
  const std::string_view dport = default_port(scheme);
  if (dport.empty()) return OriginVerdict::CrossOrigin;
  if (oport == dport) oport = {};  // "https://h:443" is "https://h"

  std::string_view hhost, hport;
  if (!parse_authority(host, &hhost, &hport)) return OriginVerdict::CrossOrigin;
  if (!same_host(ohost, hhost)) return OriginVerdict::CrossOrigin;
  // Same digits (or both without a port), or an Origin on its scheme's default port and a Host
  // that names that port.
  if (oport == hport || (oport.empty() && hport == dport)) return OriginVerdict::Allow;
  return OriginVerdict::CrossOrigin;
}

OriginVerdict logout_origin_check(const std::string_view* fetch_site) noexcept {
  return fetch_site_is(fetch_site, "cross-site") ? OriginVerdict::CrossOrigin
                                                  : OriginVerdict::Allow;
}

}  // namespace sess
