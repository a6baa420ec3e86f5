// libFuzzer target: cross-origin checks for login and logout (src/core/origin.h).
//
// Input: "HOST\nORIGIN\nFETCH-SITE", split at the first two LFs. Without a second part Origin is
// absent, without a third Sec-Fetch-Site is absent (an empty part is a present, empty header).
// Properties:
//   origin_parse       - agrees with an independent reference parser (it splits the port at the
//                        last ':' instead of the first); the views lie inside the input and put
//                        together again give the input back.
//   login_origin_check - agrees with a reference built on that parser; a refusing Sec-Fetch-Site
//                        always refuses; with neither header everything passes; when HOST is a
//                        plausible host[:port], "http://" + HOST, "https://" + HOST and the same
//                        with the host upper-cased are Allow, and a different host is refused;
//                        the host with a default port (spelled out or not) is Allow exactly when
//                        HOST has no port or that port.
//   logout_origin_check - CrossOrigin exactly for Sec-Fetch-Site "cross-site" (case, blanks).
#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "origin.h"

#include "fuzz_check.h"

namespace {

using sess::OriginVerdict;

bool within(std::string_view outer, std::string_view inner) {
  if (inner.empty()) return true;
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

std::string uppered(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

bool ref_v6(std::string_view bracketed, unsigned char* out) {
  if (bracketed.size() < 3 || bracketed.size() > 47 || bracketed.front() != '[' ||
      bracketed.back() != ']') {
    return false;
  }
  const std::string inner(bracketed.substr(1, bracketed.size() - 2));
  if (inner.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) return false;
  return inet_pton(AF_INET6, inner.c_str(), out) == 1;
}

bool ref_name(std::string_view h) {
  if (h.empty() || h.size() > 255) return false;
  return h.find_first_not_of(
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") ==
         std::string_view::npos;
}

bool ref_port(std::string_view p) {
  if (p.empty() || p.size() > 5 || p[0] == '0') return false;
  if (p.find_first_not_of("0123456789") != std::string_view::npos) return false;
  return std::stoul(std::string(p)) <= 65535;
}

// host[:port]: the port is what follows the last ':' unless the authority ends in ']'.
bool ref_authority(std::string_view a, std::string_view* host, std::string_view* port) {
  std::string_view h = a;
  std::string_view p;
  const size_t colon = a.rfind(':');
  if (colon != std::string_view::npos && a.back() != ']') {
    h = a.substr(0, colon);
    p = a.substr(colon + 1);
    if (!ref_port(p)) return false;
  }
  unsigned char buf[16];
  if (!h.empty() && h[0] == '[') {
    if (!ref_v6(h, buf)) return false;
  } else if (!ref_name(h)) {
    return false;
  }
  *host = h;
  *port = p;
  return true;
}

bool ref_parse(std::string_view o, std::string_view* scheme, std::string_view* host,
               std::string_view* port) {
  if (o.size() > 512) return false;
  const size_t sep = o.find("://");
  if (sep == std::string_view::npos || sep == 0 || sep > 32) return false;
  const std::string_view s = o.substr(0, sep);
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return false;
  if (s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") !=
      std::string_view::npos) {
    return false;
  }
  *scheme = s;
  return ref_authority(o.substr(sep + 3), host, port);
}

bool ref_same_host(std::string_view a, std::string_view b) {
  unsigned char x[16], y[16];
  if (a[0] == '[' && b[0] == '[') return ref_v6(a, x) && ref_v6(b, y) && !std::memcmp(x, y, 16);
  if (a[0] == '[' || b[0] == '[') return false;
  return lowered(a) == lowered(b);
}

OriginVerdict ref_login(std::string_view host, const std::string_view* origin,
                        const std::string_view* site) {
  if (site) {
    std::string s = lowered(*site);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(0, 1);
    if (s == "cross-site" || s == "same-site") return OriginVerdict::CrossOrigin;
  }
  if (!origin) return OriginVerdict::Allow;
  std::string_view scheme, oh, op, hh, hp;
  if (!ref_parse(*origin, &scheme, &oh, &op)) return OriginVerdict::CrossOrigin;
  const std::string sch = lowered(scheme);
  std::string eff;  // the Origin's port, defaults spelled out
  if (sch == "http") {
    eff = op.empty() ? "80" : std::string(op);
  } else if (sch == "https") {
    eff = op.empty() ? "443" : std::string(op);
  } else {
    return OriginVerdict::CrossOrigin;
  }
  if (!ref_authority(host, &hh, &hp)) return OriginVerdict::CrossOrigin;
  if (!ref_same_host(oh, hh)) return OriginVerdict::CrossOrigin;
  // A Host without a port equals an Origin on its scheme's default port (spelled out or not).
  const std::string dflt = sch == "http" ? "80" : "443";
  const bool ports = hp.empty() ? eff == dflt : eff == hp;
  return ports ? OriginVerdict::Allow : OriginVerdict::CrossOrigin;
}

OriginVerdict login(std::string_view host, const std::string& origin) {
  const std::string_view o = origin;
  return sess::login_origin_check(host, &o, nullptr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t lf1 = in.find('\n');
  const std::string_view host = in.substr(0, lf1);
  std::string_view origin, site;
  bool has_origin = false, has_site = false;
  if (lf1 != std::string_view::npos) {
    has_origin = true;
    const std::string_view rest = in.substr(lf1 + 1);
    const size_t lf2 = rest.find('\n');
    origin = rest.substr(0, lf2);
    if (lf2 != std::string_view::npos) {
      has_site = true;
      site = rest.substr(lf2 + 1);
    }
  }
  const std::string_view* o = has_origin ? &origin : nullptr;
  const std::string_view* s = has_site ? &site : nullptr;

  // --- origin_parse, on ORIGIN and on the whole input -------------------------------------------
  for (const std::string_view text : {origin, in, host}) {
    std::string_view sc = "unset", h = "unset", p = "unset";
    const bool ok = sess::origin_parse(text, &sc, &h, &p);
    std::string_view rs, rh, rp;
    FUZZ_CHECK(ok == ref_parse(text, &rs, &rh, &rp));
    FUZZ_CHECK(sess::origin_parse(text, nullptr, nullptr, nullptr) == ok);
    if (!ok) {
      FUZZ_CHECK(sc == "unset" && h == "unset" && p == "unset");
      continue;
    }
    FUZZ_CHECK(sc == rs && h == rh && p == rp);
    FUZZ_CHECK(within(text, sc) && within(text, h) && within(text, p));
    FUZZ_CHECK(!sc.empty() && !h.empty() && sc.data() == text.data());
    std::string again = std::string(sc) + "://" + std::string(h);
    if (!p.empty()) again += ":" + std::string(p);
    FUZZ_CHECK(again == text);
  }

  // --- login_origin_check ---------------------------------------------------------------------
  const OriginVerdict v = sess::login_origin_check(host, o, s);
  FUZZ_CHECK(v == ref_login(host, o, s));
  FUZZ_CHECK(v == sess::login_origin_check(host, o, s));
  if (s != nullptr) {
    const std::string t = lowered(*s);
    if (t == "cross-site" || t == "same-site") FUZZ_CHECK(v == OriginVerdict::CrossOrigin);
  }
  FUZZ_CHECK(sess::login_origin_check(host, nullptr, nullptr) == OriginVerdict::Allow);

  // An Origin made from a plausible Host is this server's own; another host never is.
  std::string_view hh, hp;
  if (ref_authority(host, &hh, &hp)) {
    for (const char* scheme : {"http://", "https://", "HTTP://"}) {
      FUZZ_CHECK(login(host, scheme + std::string(host)) == OriginVerdict::Allow);
      FUZZ_CHECK(login(host, scheme + uppered(host)) == OriginVerdict::Allow);
    }
    const std::string other = hh[0] == '[' ? "[::abcd:1234]" : "x" + std::string(hh);
    if (!ref_same_host(other, hh)) {
      FUZZ_CHECK(login(host, "https://" + other) == OriginVerdict::CrossOrigin);
    }
    // Default ports, spelled out or not.
    const std::string name(hh);
    const auto allow = [](bool yes) { return yes ? OriginVerdict::Allow : OriginVerdict::CrossOrigin; };
    FUZZ_CHECK(login(host, "http://" + name) == allow(hp.empty() || hp == "80"));
    FUZZ_CHECK(login(host, "https://" + name) == allow(hp.empty() || hp == "443"));
    FUZZ_CHECK(login(host, "http://" + name + ":80") == allow(hp.empty() || hp == "80"));
    FUZZ_CHECK(login(host, "https://" + name + ":443") == allow(hp.empty() || hp == "443"));
    FUZZ_CHECK(login(host, "http://" + name + ":81") == allow(hp == "81"));
    FUZZ_CHECK(login(host, "null") == OriginVerdict::CrossOrigin);
    FUZZ_CHECK(login(host, "https://" + std::string(host) + "/") == OriginVerdict::CrossOrigin);
  }

  // --- logout_origin_check --------------------------------------------------------------------
  const OriginVerdict lv = sess::logout_origin_check(s);
  std::string t = s ? lowered(*s) : std::string();
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.erase(0, 1);
  FUZZ_CHECK((lv == OriginVerdict::CrossOrigin) == (s != nullptr && t == "cross-site"));
  return 0;
}
