// Unit tests for origin.h: is a login POST or a logout cross-origin?
#include "origin.h"

#include <gtest/gtest.h>

#include <string>

using sess::OriginVerdict;

namespace {

constexpr OriginVerdict kAllow = OriginVerdict::Allow;
constexpr OriginVerdict kCross = OriginVerdict::CrossOrigin;

// nullptr: the header is absent.
OriginVerdict login(const char* host, const char* origin, const char* fetch_site) {
  const std::string_view o = origin ? origin : "";
  const std::string_view f = fetch_site ? fetch_site : "";
  return sess::login_origin_check(host, origin ? &o : nullptr, fetch_site ? &f : nullptr);
}

OriginVerdict logout(const char* fetch_site) {
  const std::string_view f = fetch_site ? fetch_site : "";
  return sess::logout_origin_check(fetch_site ? &f : nullptr);
}

const char* name(OriginVerdict v) { return v == kAllow ? "Allow" : "CrossOrigin"; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// login_origin_check

struct LoginCase {
  const char* host;
  const char* origin;      // nullptr: absent
  const char* fetch_site;  // nullptr: absent
  OriginVerdict want;
};

TEST(LoginOriginCheck, Table) {
  const LoginCase cases[] = {
      // Neither header: a non-browser client (the CSRF token still applies).
      {"example.com", nullptr, nullptr, kAllow},
      {"", nullptr, nullptr, kAllow},

      // Same origin, with and without ports.
      {"example.com", "https://example.com", nullptr, kAllow},
      {"example.com", "http://example.com", nullptr, kAllow},  // scheme not compared
      {"example.com:8443", "https://example.com:8443", nullptr, kAllow},
      {"example.com:8080", "http://example.com:8080", nullptr, kAllow},
      {"example.com:8080", "https://example.com:8080", nullptr, kAllow},
      {"localhost:8080", "http://localhost:8080", nullptr, kAllow},
      {"127.0.0.1:8080", "http://127.0.0.1:8080", nullptr, kAllow},
      {"my_app:80", "http://my_app", nullptr, kAllow},

      // Default-port equivalences.
      {"example.com:443", "https://example.com", nullptr, kAllow},
      {"example.com:80", "http://example.com", nullptr, kAllow},
      {"example.com", "https://example.com:443", nullptr, kAllow},
      {"example.com", "http://example.com:80", nullptr, kAllow},
      {"example.com:443", "https://example.com:443", nullptr, kAllow},
      {"example.com:443", "http://example.com", nullptr, kCross},   // http's default is 80
      {"example.com:80", "https://example.com", nullptr, kCross},   // https's default is 443
      {"example.com", "https://example.com:8443", nullptr, kCross},
      {"example.com:8443", "https://example.com", nullptr, kCross},
      {"example.com:8080", "http://example.com:8081", nullptr, kCross},
      {"example.com:8080", "http://example.com:08080", nullptr, kCross},  // one spelling per port
      {"example.com:08080", "http://example.com:8080", nullptr, kCross},

      // ASCII case of host names and schemes.
      {"Example.COM", "https://example.com", nullptr, kAllow},
      {"example.com", "https://EXAMPLE.com", nullptr, kAllow},
      {"example.com", "HTTPS://example.com", nullptr, kAllow},
      {"example.com:443", "HTTPS://example.com", nullptr, kAllow},

      // Other hosts.
      {"example.com", "https://evil.com", nullptr, kCross},
      {"example.com", "https://app.example.com", nullptr, kCross},
      {"app.example.com", "https://example.com", nullptr, kCross},
      {"example.com", "https://example.com.evil.com", nullptr, kCross},
      {"example.com", "https://example.co", nullptr, kCross},
      {"example.com", "https://example.com.", nullptr, kCross},
      {"127.0.0.1", "http://localhost", nullptr, kCross},

      // IPv6 literals: compared as addresses, in brackets.
      {"[::1]:8080", "http://[::1]:8080", nullptr, kAllow},
      {"[::1]", "https://[::1]", nullptr, kAllow},
      {"[::1]:443", "https://[::1]", nullptr, kAllow},
      {"[2001:DB8::1]", "https://[2001:db8::1]", nullptr, kAllow},
      {"[2001:db8:0:0:0:0:0:1]", "https://[2001:db8::1]", nullptr, kAllow},
      {"[::ffff:127.0.0.1]", "http://[::ffff:7f00:1]", nullptr, kAllow},
      {"[::1]:8080", "http://[::1]:8081", nullptr, kCross},
      {"[::1]", "http://[::2]", nullptr, kCross},
      {"[::1]", "http://::1", nullptr, kCross},           // brackets required
      {"::1", "http://[::1]", nullptr, kCross},
      {"[::1]", "http://[::1", nullptr, kCross},
      {"[::1]", "http://[fe80::1%25eth0]", nullptr, kCross},  // no zone ids
      {"[::1]", "http://[1.2.3.4]", nullptr, kCross},
      {"localhost", "http://[::1]", nullptr, kCross},

      // "null" (sandboxed frames, file:, data:, redirects across origins) is foreign.
      {"example.com", "null", nullptr, kCross},
      {"example.com", "NULL", nullptr, kCross},
      {"null", "null", nullptr, kCross},

      // Malformed Origin: foreign.
      {"example.com", "", nullptr, kCross},
      {"example.com", " ", nullptr, kCross},
      {"example.com", "example.com", nullptr, kCross},
      {"example.com", "https://", nullptr, kCross},
      {"example.com", "https:example.com", nullptr, kCross},
      {"example.com", "https:/example.com", nullptr, kCross},
      {"example.com", "//example.com", nullptr, kCross},
      {"example.com", "https://example.com/", nullptr, kCross},
      {"example.com", "https://example.com/login", nullptr, kCross},
      {"example.com", "https://example.com?x", nullptr, kCross},
      {"example.com", "https://example.com#x", nullptr, kCross},
      {"example.com", "https://user@example.com", nullptr, kCross},
      {"example.com", "https://evil.com@example.com", nullptr, kCross},
      {"example.com", "https://example.com:", nullptr, kCross},
      {"example.com", "https://example.com:0", nullptr, kCross},
      {"example.com", "https://example.com:65536", nullptr, kCross},
      {"example.com", "https://example.com:443:443", nullptr, kCross},
      {"example.com", "https://example.com:+443", nullptr, kCross},
      {"example.com", "https://example.com ", nullptr, kCross},
      {"example.com", " https://example.com", nullptr, kCross},
      {"example.com", "https://example.com, https://example.com", nullptr, kCross},
      {"example.com", "https://exa mple.com", nullptr, kCross},
      {"example.com", "https://example.com\r\n", nullptr, kCross},
      {"example.com", "https://ex%61mple.com", nullptr, kCross},
      {"example.com", "https://\xc3\xa9xample.com", nullptr, kCross},

      // Schemes other than http(s) can never be this server's.
      {"example.com", "ftp://example.com", nullptr, kCross},
      {"example.com", "file://example.com", nullptr, kCross},
      {"abcdefghijklmnopqrstuvwxyz", "chrome-extension://abcdefghijklmnopqrstuvwxyz", nullptr,
       kCross},
      {"example.com", "1http://example.com", nullptr, kCross},

      // Malformed Host: nothing can match it.
      {"", "https://example.com", nullptr, kCross},
      {"example.com:", "https://example.com", nullptr, kCross},
      {"example.com:abc", "https://example.com", nullptr, kCross},
      {"example.com/x", "https://example.com", nullptr, kCross},
      {"user@example.com", "https://example.com", nullptr, kCross},
      {"https://example.com", "https://example.com", nullptr, kCross},

      // Sec-Fetch-Site alone.
      {"example.com", nullptr, "same-origin", kAllow},
      {"example.com", nullptr, "none", kAllow},  // typed into the address bar
      {"example.com", nullptr, "cross-site", kCross},
      {"example.com", nullptr, "same-site", kCross},  // a sibling subdomain
      {"example.com", nullptr, "Cross-Site", kCross},
      {"example.com", nullptr, " same-site ", kCross},
      {"example.com", nullptr, "", kAllow},
      {"example.com", nullptr, "something-new", kAllow},

      // Both headers: either refuses.
      {"example.com", "https://example.com", "same-origin", kAllow},
      {"example.com", "https://example.com", "none", kAllow},
      {"example.com", "https://example.com", "cross-site", kCross},
      {"example.com", "https://example.com", "same-site", kCross},
      {"example.com", "https://evil.com", "same-origin", kCross},
      {"example.com", "null", "same-origin", kCross},
  };
  for (const LoginCase& c : cases) {
    SCOPED_TRACE(std::string("Host \"") + c.host + "\" Origin " +
                 (c.origin ? "\"" + std::string(c.origin) + "\"" : "absent") +
                 " Sec-Fetch-Site " +
                 (c.fetch_site ? "\"" + std::string(c.fetch_site) + "\"" : "absent"));
    EXPECT_STREQ(name(login(c.host, c.origin, c.fetch_site)), name(c.want));
  }
}

TEST(LoginOriginCheck, Bounds) {
  // A 255-byte name is a host; a 256-byte one is not. An Origin over 512 bytes is malformed.
  const std::string h255(255, 'a');
  const std::string h256(256, 'a');
  EXPECT_EQ(login(h255.c_str(), ("https://" + h255).c_str(), nullptr), kAllow);
  EXPECT_EQ(login(h256.c_str(), ("https://" + h256).c_str(), nullptr), kCross);
  const std::string long_origin = "https://example.com:" + std::string(600, '1');
  EXPECT_EQ(login("example.com", long_origin.c_str(), nullptr), kCross);
  // An embedded NUL is never part of a host.
  const std::string_view nul_origin("https://example.com\0.evil", 25);
  EXPECT_EQ(sess::login_origin_check("example.com", &nul_origin, nullptr), kCross);
  const std::string_view nul_v6("http://[::1\0]", 13);
  EXPECT_EQ(sess::login_origin_check("[::1]", &nul_v6, nullptr), kCross);
}

// ---------------------------------------------------------------------------------------------
// logout_origin_check

TEST(LogoutOriginCheck, OnlyCrossSiteIsRefused) {
  const std::pair<const char*, OriginVerdict> cases[] = {
      {nullptr, kAllow},       {"same-origin", kAllow}, {"same-site", kAllow},
      {"none", kAllow},        {"", kAllow},            {"cross-site", kCross},
      {"CROSS-SITE", kCross},  {"\tcross-site ", kCross}, {"cross-site-x", kAllow},
  };
  for (const auto& [site, want] : cases) {
    SCOPED_TRACE(site ? site : "(absent)");
    EXPECT_STREQ(name(logout(site)), name(want));
  }
}

// ---------------------------------------------------------------------------------------------
// origin_parse

struct ParseCase {
  const char* origin;
  bool ok;
  const char* scheme;
  const char* host;
  const char* port;
};

TEST(OriginParse, Table) {
  const ParseCase cases[] = {
      {"https://example.com", true, "https", "example.com", ""},
      {"http://example.com:8080", true, "http", "example.com", "8080"},
      {"HTTP://Example.Com:1", true, "HTTP", "Example.Com", "1"},
      {"https://[::1]", true, "https", "[::1]", ""},
      {"https://[::1]:65535", true, "https", "[::1]", "65535"},
      {"chrome-extension://abc", true, "chrome-extension", "abc", ""},
      {"a+b.c-d://h", true, "a+b.c-d", "h", ""},
      {"https://a_b-c.d.", true, "https", "a_b-c.d.", ""},
      {"null", false, nullptr, nullptr, nullptr},
      {"", false, nullptr, nullptr, nullptr},
      {"https://", false, nullptr, nullptr, nullptr},
      {"://example.com", false, nullptr, nullptr, nullptr},
      {"-http://example.com", false, nullptr, nullptr, nullptr},
      {"https://example.com/", false, nullptr, nullptr, nullptr},
      {"https://example.com:65536", false, nullptr, nullptr, nullptr},
      {"https://example.com:00080", false, nullptr, nullptr, nullptr},
      {"https://example.com:123456", false, nullptr, nullptr, nullptr},
      {"https://[::1]x", false, nullptr, nullptr, nullptr},
      {"https://[::1]:", false, nullptr, nullptr, nullptr},
      {"https://[]", false, nullptr, nullptr, nullptr},
      {"https://[example.com]", false, nullptr, nullptr, nullptr},
      {"https://:443", false, nullptr, nullptr, nullptr},
  };
  for (const ParseCase& c : cases) {
    SCOPED_TRACE(c.origin);
    const std::string_view in = c.origin;
    std::string_view scheme = "unset", host = "unset", port = "unset";
    ASSERT_EQ(sess::origin_parse(in, &scheme, &host, &port), c.ok);
    EXPECT_EQ(sess::origin_parse(in, nullptr, nullptr, nullptr), c.ok);
    if (!c.ok) {
      EXPECT_EQ(host, "unset");  // outputs untouched on failure
      continue;
    }
    EXPECT_EQ(scheme, c.scheme);
    EXPECT_EQ(host, c.host);
    EXPECT_EQ(port, c.port);
    // Views into the input.
    EXPECT_EQ(scheme.data(), in.data());
    EXPECT_GE(host.data(), in.data());
    EXPECT_LE(host.data() + host.size(), in.data() + in.size());
    if (!port.empty()) {
      EXPECT_EQ(port.data() + port.size(), in.data() + in.size());
    }
  }
}
