// Is a request cross-origin? Browsers say so in Origin and Sec-Fetch-Site; this decides what a
// login POST and a logout do about it.
//
// The request's own origin is its Host header, port included (the scheme is not compared, so a
// TLS-terminating proxy in front does not break it). Host names compare without regard to ASCII
// case, IPv6 literals as addresses; a port is equal to the same digits, and an Origin without a
// port equals a Host without one; "https://h" also equals Host "h:443" and "http://h" Host
// "h:80" (and an Origin that spells out its default port, "https://h:443", is "https://h").
//
// Login POST: refused if Origin is present and is "null", malformed, not http(s), or names
// another host or port (or Host is malformed); or if Sec-Fetch-Site is "cross-site" or
// "same-site" (ASCII case and surrounding blanks ignored). Requests with neither header
// (non-browser clients) pass here (the CSRF token is still required).
// Logout: refused only if Sec-Fetch-Site is "cross-site" (a link from a sibling app, "same-site",
// still logs out).
#pragma once

#include "common.h"

namespace sess {

enum class OriginVerdict : uint8_t { Allow, CrossOrigin };

// origin / fetch_site: nullptr when the header is absent (an empty header is present and empty).
OriginVerdict login_origin_check(std::string_view host, const std::string_view* origin,
                                 const std::string_view* fetch_site) noexcept;

OriginVerdict logout_origin_check(const std::string_view* fetch_site) noexcept;

// Splits "scheme://host[:port]" (what browsers send in Origin: no path, no userinfo; IPv6 in
// brackets, kept in *host). False if malformed: longer than 512 bytes, a host other than an
// ASCII name (letters, digits, '-', '.', '_'; at most 255) or an IPv6 literal, a port other than
// 1..65535 written without leading zeros. Views point into origin; an absent port is empty; null
// out-pointers are allowed. A Host header must have the same host[:port] form.
bool origin_parse(std::string_view origin, std::string_view* scheme, std::string_view* host,
                  std::string_view* port) noexcept;

}  // namespace sess
