// Unit tests for cookie_attrs.h: the attribute grammar of session_cookie, cookie_set and
// cookie_delete, and the cross-attribute rules.
#include "cookie_attrs.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

using sess::CookieAttrError;
using sess::CookieAttrSpec;
using sess::CookieDirective;
using sess::SameSite;
using sess::Secure;

namespace {

constexpr CookieDirective kSession = CookieDirective::SessionCookie;
constexpr CookieDirective kSet = CookieDirective::CookieSet;
constexpr CookieDirective kDelete = CookieDirective::CookieDelete;
constexpr CookieDirective kAll[] = {kSession, kSet, kDelete};

struct Parsed {
  bool ok = false;
  CookieAttrSpec spec;  // views into *words
  CookieAttrError err;
  std::unique_ptr<std::vector<std::string>> words;
};

Parsed parse(CookieDirective d, std::vector<std::string> words) {
  Parsed p;
  p.words = std::make_unique<std::vector<std::string>>(std::move(words));
  std::vector<std::string_view> args(p.words->begin(), p.words->end());
  p.ok = sess::cookie_attrs_parse(d, args.data(), args.size(), &p.spec, &p.err);
  return p;
}

const char* name_of(CookieDirective d) {
  switch (d) {
    case CookieDirective::SessionCookie: return "session_cookie";
    case CookieDirective::CookieSet: return "cookie_set";
    case CookieDirective::CookieDelete: return "cookie_delete";
  }
  return "?";
}

std::string show(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += "[" + w + "]";
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Accepted words and what they set

TEST(CookieAttrs, NothingGiven) {
  for (CookieDirective d : kAll) {
    Parsed p = parse(d, {});
    ASSERT_TRUE(p.ok) << name_of(d);
    EXPECT_FALSE(p.spec.has_path || p.spec.has_domain || p.spec.has_max_age ||
                 p.spec.has_expires || p.spec.has_secure || p.spec.has_httponly ||
                 p.spec.has_samesite || p.spec.has_partitioned);
    EXPECT_EQ(p.spec.max_age, -1);
    EXPECT_EQ(p.spec.expires, -1);
  }
}

TEST(CookieAttrs, EveryAttributeOfCookieSet) {
  Parsed p = parse(kSet, {"path=/app", "domain=.example.com", "max_age=1h", "expires=2d",
                          "secure", "httponly", "samesite=strict", "partitioned"});
  ASSERT_TRUE(p.ok) << p.err.message;
  EXPECT_TRUE(p.spec.has_path);
  EXPECT_EQ(p.spec.path, "/app");
  EXPECT_TRUE(p.spec.has_domain);
  EXPECT_EQ(p.spec.domain, ".example.com");
  EXPECT_TRUE(p.spec.has_max_age);
  EXPECT_EQ(p.spec.max_age, 3600);
  EXPECT_TRUE(p.spec.has_expires);
  EXPECT_EQ(p.spec.expires, 2 * 86400);
  EXPECT_TRUE(p.spec.has_secure);
  EXPECT_EQ(p.spec.secure, Secure::On);
  EXPECT_TRUE(p.spec.has_httponly);
  EXPECT_TRUE(p.spec.httponly);
  EXPECT_TRUE(p.spec.has_samesite);
  EXPECT_EQ(p.spec.samesite, SameSite::Strict);
  EXPECT_TRUE(p.spec.has_partitioned);
  EXPECT_TRUE(p.spec.partitioned);
}

TEST(CookieAttrs, Chunks) {
  Parsed p = parse(kSession, {});
  ASSERT_TRUE(p.ok);
  EXPECT_FALSE(p.spec.has_chunks);
  EXPECT_EQ(p.spec.chunks, 1u);  // the default: one cookie
  for (const char* w : {"chunks=1", "chunks=3", "Chunks=16"}) {
    p = parse(kSession, {"path=/", w, "secure"});
    ASSERT_TRUE(p.ok) << w << ": " << p.err.message;
    EXPECT_TRUE(p.spec.has_chunks);
    EXPECT_EQ(p.spec.chunks, static_cast<size_t>(std::stoi(std::string(w).substr(7))));
    EXPECT_TRUE(p.spec.has_path && p.spec.has_secure);
  }
}

TEST(CookieAttrs, ViewsPointIntoTheArguments) {
  const std::string words[] = {"path=/x", "domain=a.b"};
  const std::string_view args[] = {words[0], words[1]};
  CookieAttrSpec spec;
  CookieAttrError err;
  ASSERT_TRUE(sess::cookie_attrs_parse(kSet, args, 2, &spec, &err));
  EXPECT_EQ(spec.path.data(), words[0].data() + 5);
  EXPECT_EQ(spec.domain.data(), words[1].data() + 7);
}

struct ValueCase {
  CookieDirective d;
  const char* word;
  Secure secure;
  bool httponly;
  SameSite samesite;
};

TEST(CookieAttrs, KeywordValues) {
  const ValueCase cases[] = {
      {kSession, "secure", Secure::On, false, SameSite::Unset},
      {kSession, "secure=on", Secure::On, false, SameSite::Unset},
      {kSession, "secure=off", Secure::Off, false, SameSite::Unset},
      {kSession, "secure=auto", Secure::Auto, false, SameSite::Unset},
      {kSet, "secure=off", Secure::Off, false, SameSite::Unset},
      {kDelete, "secure", Secure::On, false, SameSite::Unset},
      {kDelete, "secure=on", Secure::On, false, SameSite::Unset},
      {kSession, "httponly", Secure::Off, true, SameSite::Unset},
      {kSession, "httponly=on", Secure::Off, true, SameSite::Unset},
      {kSet, "httponly=off", Secure::Off, false, SameSite::Unset},
      {kSet, "samesite=strict", Secure::Off, false, SameSite::Strict},
      {kSet, "samesite=lax", Secure::Off, false, SameSite::Lax},
      {kSet, "samesite=none", Secure::Off, false, SameSite::None},
      {kSet, "samesite=off", Secure::Off, false, SameSite::Unset},
      // Case-insensitive names and keywords, as nginx's proxy_cookie_flags.
      {kSession, "SameSite=Lax", Secure::Off, false, SameSite::Lax},
      {kSession, "SAMESITE=NONE", Secure::Off, false, SameSite::None},
      {kSession, "Secure", Secure::On, false, SameSite::Unset},
      {kSession, "Secure=Auto", Secure::Auto, false, SameSite::Unset},
      {kSession, "HttpOnly", Secure::Off, true, SameSite::Unset},
      {kSession, "HTTPONLY=OFF", Secure::Off, false, SameSite::Unset},
  };
  for (const auto& c : cases) {
    Parsed p = parse(c.d, {c.word});
    ASSERT_TRUE(p.ok) << name_of(c.d) << " " << c.word << ": " << p.err.message;
    EXPECT_EQ(p.spec.secure, c.secure) << c.word;
    EXPECT_EQ(p.spec.httponly, c.httponly) << c.word;
    EXPECT_EQ(p.spec.samesite, c.samesite) << c.word;
    const std::string w = c.word;
    const std::string key = w.substr(0, w.find('='));
    EXPECT_EQ(p.spec.has_secure, key == "secure" || key == "Secure") << c.word;
    EXPECT_EQ(p.spec.has_samesite, key == "samesite" || key == "SameSite" || key == "SAMESITE");
  }
}

TEST(CookieAttrs, Durations) {
  Parsed p = parse(kSession, {"max_age=0"});
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.spec.has_max_age);
  EXPECT_EQ(p.spec.max_age, 0);
  p = parse(kSet, {"max_age=1h30m", "expires=31d"});
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.spec.max_age, 5400);
  EXPECT_EQ(p.spec.expires, 31 * 86400);
  p = parse(kSet, {"MAX_AGE=10"});
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.spec.max_age, 10);
}

// ---------------------------------------------------------------------------------------------
// Path and domain boundaries

TEST(CookieAttrs, PathBoundaries) {
  const std::string p1024 = "/" + std::string(1023, 'a');
  const std::string p1025 = "/" + std::string(1024, 'a');
  EXPECT_TRUE(parse(kSet, {"path=" + p1024}).ok);
  EXPECT_FALSE(parse(kSet, {"path=" + p1025}).ok);
  Parsed p = parse(kSet, {"path=" + p1024});
  EXPECT_EQ(p.spec.path.size(), 1024u);

  // Every visible ASCII byte except ';' and ',' is allowed.
  std::string all = "/";
  for (int c = 0x21; c <= 0x7e; c++) {
    if (c != ';' && c != ',') all.push_back(static_cast<char>(c));
  }
  EXPECT_TRUE(parse(kSet, {"path=" + all}).ok);
  EXPECT_TRUE(parse(kSet, {"path=/"}).ok);
  EXPECT_TRUE(parse(kSet, {"path=/a=b"}).ok);  // '=' after the first is part of the value
  EXPECT_EQ(parse(kSet, {"path=/a=b"}).spec.path, "/a=b");

  for (int c = 0; c < 256; c++) {
    if (c >= 0x21 && c <= 0x7e && c != ';' && c != ',') continue;
    const std::string bad = std::string("path=/a") + static_cast<char>(c) + "b";
    Parsed r = parse(kSet, {bad});
    EXPECT_FALSE(r.ok) << "byte " << c;
  }
}

TEST(CookieAttrs, DomainBoundaries) {
  // 253 bytes: 63 + '.' + 63 + '.' + 63 + '.' + 61.
  std::string d253 = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                     std::string(63, 'c') + "." + std::string(61, 'd');
  ASSERT_EQ(d253.size(), 253u);
  EXPECT_TRUE(parse(kSet, {"domain=" + d253}).ok);
  EXPECT_FALSE(parse(kSet, {"domain=" + d253 + "e"}).ok);
  // The leading dot counts.
  const std::string dot253 = "." + d253.substr(1);
  EXPECT_TRUE(parse(kSet, {"domain=" + dot253}).ok);
  EXPECT_FALSE(parse(kSet, {"domain=." + d253}).ok);

  const char* good[] = {"example.com", ".example.com", "a", "localhost", "a-b.c-d.e",
                        "EXAMPLE.COM", "1.2.3.4", "xn--bcher-kva.example"};
  for (const char* g : good) {
    Parsed p = parse(kSet, {std::string("domain=") + g});
    EXPECT_TRUE(p.ok) << g;
    EXPECT_EQ(p.spec.domain, g);
  }
  const char* bad[] = {"", ".", "..", "..example.com", "a..b", "example.com.", "example..com",
                       "exa mple.com", "example.com;", "example.com,x", "ex_ample.com",
                       "[::1]", "a:80", "user@a", "a/b", "é.com", "*.example.com"};
  for (const char* b : bad) {
    EXPECT_FALSE(parse(kSet, {std::string("domain=") + b}).ok) << b;
  }
  EXPECT_FALSE(parse(kSet, {std::string("domain=a\0b", 10)}).ok);
}

// ---------------------------------------------------------------------------------------------
// Refusals: which word, which message

struct Refusal {
  CookieDirective d;
  std::vector<std::string> words;
  size_t index;
  const char* message_part;  // a substring of the message
};

TEST(CookieAttrs, Refusals) {
  const Refusal cases[] = {
      // Unknown words.
      {kSession, {"foo=bar"}, 0, "unknown attribute"},
      {kSession, {"hostonly"}, 0, "unknown attribute"},
      {kSet, {""}, 0, "unknown attribute"},
      {kSet, {"="}, 0, "unknown attribute"},
      {kSet, {"=/"}, 0, "unknown attribute"},
      {kSet, {"path"}, 0, "invalid path"},
      {kSet, {" path=/"}, 0, "unknown attribute"},
      {kSet, {"path =/"}, 0, "unknown attribute"},
      {kSet, {"maxage=1"}, 0, "unknown attribute"},
      {kSet, {"max-age=1"}, 0, "unknown attribute"},
      {kSet, {"Max-Age=1"}, 0, "unknown attribute"},
      {kSet, {"nosecure"}, 0, "unknown attribute"},
      {kSet, {"secure;"}, 0, "unknown attribute"},
      {kSet, {"httponly\n"}, 0, "unknown attribute"},
      {kSet, {std::string("secure\0", 7)}, 0, "unknown attribute"},
      {kSet, {"path=/", "secure", "bogus"}, 2, "unknown attribute"},
      // Duplicates, also under another spelling.
      {kSession, {"secure", "secure"}, 1, "duplicate attribute"},
      {kSession, {"secure", "secure=off"}, 1, "duplicate attribute"},
      {kSession, {"secure=on", "Secure"}, 1, "duplicate attribute"},
      {kSession, {"httponly", "httponly=off"}, 1, "duplicate attribute"},
      {kSet, {"path=/a", "path=/b"}, 1, "duplicate attribute"},
      {kSet, {"path=/a", "path=/a"}, 1, "duplicate attribute"},
      {kSet, {"domain=a.b", "DOMAIN=a.b"}, 1, "duplicate attribute"},
      {kSet, {"max_age=1", "max_age=2"}, 1, "duplicate attribute"},
      {kSet, {"expires=1", "expires=1"}, 1, "duplicate attribute"},
      {kSet, {"samesite=lax", "samesite=strict"}, 1, "duplicate attribute"},
      {kSet, {"partitioned", "secure", "partitioned"}, 2, "duplicate attribute"},
      {kDelete, {"path=/", "domain=x.y", "path=/"}, 2, "duplicate attribute"},
      // Bad values.
      {kSet, {"path="}, 0, "invalid path"},
      {kSet, {"path=app"}, 0, "invalid path"},
      {kSet, {"path=/a;b"}, 0, "invalid path"},
      {kSet, {"path=/a,b"}, 0, "invalid path"},
      {kSet, {"path=/a b"}, 0, "invalid path"},
      {kSet, {"path=/a\r\nSet-Cookie: x=1"}, 0, "invalid path"},
      {kSet, {"domain="}, 0, "invalid domain"},
      {kSet, {"domain"}, 0, "invalid domain"},
      {kSet, {"domain=a;b"}, 0, "invalid domain"},
      {kSet, {"max_age="}, 0, "invalid time"},
      {kSet, {"max_age"}, 0, "invalid time"},
      {kSet, {"max_age=soon"}, 0, "invalid time"},
      {kSet, {"max_age=-1"}, 0, "invalid time"},
      {kSet, {"max_age=100ms"}, 0, "invalid time"},
      {kSet, {"max_age=1h 30m"}, 0, "invalid time"},
      {kSet, {"max_age=99999999999999999999"}, 0, "invalid time"},
      {kSet, {"expires=tomorrow"}, 0, "invalid time"},
      {kSet, {"expires="}, 0, "invalid time"},
      {kSession, {"secure="}, 0, "invalid secure value"},
      {kSession, {"secure=yes"}, 0, "invalid secure value"},
      {kSession, {"secure=1"}, 0, "invalid secure value"},
      {kSet, {"httponly="}, 0, "invalid httponly value"},
      {kSet, {"httponly=auto"}, 0, "invalid httponly value"},
      {kSet, {"samesite"}, 0, "invalid samesite value"},
      {kSet, {"samesite="}, 0, "invalid samesite value"},
      {kSet, {"samesite=bogus"}, 0, "invalid samesite value"},
      {kSet, {"samesite=lax;"}, 0, "invalid samesite value"},
      {kSet, {"samesite=unset"}, 0, "invalid samesite value"},
      {kSet, {"partitioned=on"}, 0, "partitioned takes no value"},
      {kSet, {"partitioned="}, 0, "partitioned takes no value"},
      // Attributes outside their directive.
      {kSession, {"expires=1h"}, 0, "only for cookie_set"},
      {kDelete, {"expires=1h"}, 0, "cookie_delete takes only"},
      {kDelete, {"max_age=1h"}, 0, "cookie_delete takes only"},
      {kDelete, {"httponly"}, 0, "cookie_delete takes only"},
      {kDelete, {"samesite=lax"}, 0, "cookie_delete takes only"},
      {kDelete, {"partitioned"}, 0, "cookie_delete takes only"},
      {kDelete, {"path=/", "max_age=0"}, 1, "cookie_delete takes only"},
      {kSet, {"secure=auto"}, 0, "secure=auto is only for session_cookie"},
      {kDelete, {"secure=auto"}, 0, "secure=auto is only for session_cookie"},
      {kSet, {"chunks=2"}, 0, "chunks= is only for session_cookie"},
      {kDelete, {"chunks=2"}, 0, "chunks= is only for session_cookie"},
      // chunks=: 1..16 cookies.
      {kSession, {"chunks=0"}, 0, "invalid chunks value (a number of cookies, 1 to 16)"},
      {kSession, {"chunks=17"}, 0, "invalid chunks value"},
      {kSession, {"chunks=abc"}, 0, "invalid chunks value"},
      {kSession, {"chunks="}, 0, "invalid chunks value"},
      {kSession, {"chunks"}, 0, "invalid chunks value"},
      {kSession, {"chunks=03"}, 0, "invalid chunks value"},
      {kSession, {"chunks=-1"}, 0, "invalid chunks value"},
      {kSession, {"chunks=2", "CHUNKS=3"}, 1, "duplicate attribute"},
      // A word not allowed here is reported as such even when repeated.
      {kDelete, {"httponly", "httponly"}, 0, "cookie_delete takes only"},
  };
  for (const auto& c : cases) {
    Parsed p = parse(c.d, c.words);
    ASSERT_FALSE(p.ok) << name_of(c.d) << " " << show(c.words);
    EXPECT_EQ(p.err.index, c.index) << name_of(c.d) << " " << show(c.words);
    ASSERT_NE(p.err.message, nullptr);
    EXPECT_NE(std::string(p.err.message).find(c.message_part), std::string::npos)
        << name_of(c.d) << " " << show(c.words) << ": " << p.err.message;
  }
}

// The first bad word wins; a later one is not looked at.
TEST(CookieAttrs, FirstErrorWins) {
  Parsed p = parse(kSet, {"path=/", "bogus", "path=/x"});
  ASSERT_FALSE(p.ok);
  EXPECT_EQ(p.err.index, 1u);
  EXPECT_STREQ(p.err.message, "unknown attribute");
}

// Messages are printed by nginx: printable ASCII, no line breaks.
TEST(CookieAttrs, MessagesArePrintable) {
  const std::vector<std::vector<std::string>> bad = {
      {"x"}, {"path=x"}, {"domain=."}, {"max_age=x"}, {"expires=x"}, {"secure=x"},
      {"httponly=x"}, {"samesite=x"}, {"partitioned=x"}, {"secure", "secure"}};
  for (CookieDirective d : kAll) {
    for (const auto& words : bad) {
      Parsed p = parse(d, words);
      ASSERT_FALSE(p.ok);
      ASSERT_NE(p.err.message, nullptr);
      for (const char* m = p.err.message; *m != '\0'; m++) {
        EXPECT_TRUE(*m >= 0x20 && *m < 0x7f) << p.err.message;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// cookie_attrs_check

namespace {

CookieAttrSpec spec(Secure secure, std::string_view path = "/", std::string_view domain = {},
                    SameSite samesite = SameSite::Unset, bool partitioned = false) {
  CookieAttrSpec s;
  s.secure = secure;
  s.path = path;
  s.has_path = !path.empty();
  s.domain = domain;
  s.has_domain = !domain.empty();
  s.samesite = samesite;
  s.partitioned = partitioned;
  return s;
}

struct CheckCase {
  const char* name;
  CookieAttrSpec effective;
  const char* message_part;  // nullptr: accepted
};

}  // namespace

TEST(CookieAttrsCheck, Rules) {
  const CheckCase cases[] = {
      {"sid", spec(Secure::Off), nullptr},
      {"sid", spec(Secure::Auto), nullptr},
      {"sid", spec(Secure::On, "/app", "example.com"), nullptr},
      {"sid", spec(Secure::On, "/", {}, SameSite::None), nullptr},
      {"sid", spec(Secure::On, "/", {}, SameSite::None, true), nullptr},
      {"sid", spec(Secure::Off, "/", {}, SameSite::Lax), nullptr},
      {"sid", spec(Secure::Off, "/", {}, SameSite::Strict), nullptr},
      {"sid", spec(Secure::Off, "/", {}, SameSite::None), "samesite=none requires \"secure\""},
      {"sid", spec(Secure::Auto, "/", {}, SameSite::None), "secure=auto is not enough"},
      {"sid", spec(Secure::Off, "/", {}, SameSite::Unset, true), "partitioned requires"},
      {"sid", spec(Secure::Auto, "/", {}, SameSite::Unset, true), "partitioned requires"},
      // __Host-
      {"__Host-sid", spec(Secure::On), nullptr},
      {"__Host-sid", spec(Secure::Off), "\"__Host-\" cookie requires \"secure\""},
      {"__Host-sid", spec(Secure::Auto), "secure=auto is not enough"},
      {"__Host-sid", spec(Secure::On, "/", "example.com"), "cannot have a domain"},
      {"__Host-sid", spec(Secure::On, "/app"), "requires path=/"},
      {"__Host-sid", spec(Secure::On, "//"), "requires path=/"},
      {"__Host-sid", spec(Secure::On, ""), "requires path=/"},  // no Path: browsers drop it
      {"__host-sid", spec(Secure::Off), "\"__Host-\" cookie requires"},  // any case
      {"__HOST-sid", spec(Secure::On, "/x"), "requires path=/"},
      {"__Host-", spec(Secure::Off), "\"__Host-\" cookie requires"},
      // __Secure-
      {"__Secure-sid", spec(Secure::On, "/app", "example.com"), nullptr},
      {"__Secure-sid", spec(Secure::Off), "\"__Secure-\" cookie requires \"secure\""},
      {"__Secure-sid", spec(Secure::Auto), "secure=auto is not enough"},
      {"__secure-sid", spec(Secure::Off), "\"__Secure-\" cookie requires"},
      // Look-alikes are ordinary names.
      {"_Host-sid", spec(Secure::Off, "/x", "a.b"), nullptr},
      {"__Host_sid", spec(Secure::Off, "/x", "a.b"), nullptr},
      {"__Hostsid", spec(Secure::Off, "/x", "a.b"), nullptr},
      {"x__Secure-sid", spec(Secure::Off), nullptr},
      {"__Secure", spec(Secure::Off), nullptr},
      {"", spec(Secure::Off), nullptr},
  };
  for (const auto& c : cases) {
    const char* m = sess::cookie_attrs_check(c.name, c.effective);
    if (c.message_part == nullptr) {
      EXPECT_EQ(m, nullptr) << c.name << ": " << (m ? m : "");
    } else {
      ASSERT_NE(m, nullptr) << c.name;
      EXPECT_NE(std::string(m).find(c.message_part), std::string::npos) << c.name << ": " << m;
    }
  }
}

// The parser and the check together, as the glue uses them: session_cookie applies its defaults
// (path=/ secure=auto httponly samesite=lax), cookie_set has none.
TEST(CookieAttrsCheck, WithTheParser) {
  struct Case {
    CookieDirective d;
    std::vector<std::string> words;
    const char* name;
    bool accepted;
  };
  const Case cases[] = {
      {kSession, {"secure"}, "__Host-sid", true},
      {kSession, {}, "__Host-sid", false},               // secure=auto by default
      {kSession, {"secure", "path=/app"}, "__Host-sid", false},
      {kSession, {"samesite=None"}, "sid", false},       // secure=auto by default
      {kSession, {"samesite=None", "secure=auto"}, "sid", false},
      {kSession, {"samesite=none", "secure"}, "sid", true},
      {kSession, {"partitioned"}, "sid", false},
      {kSet, {"secure"}, "__Host-x", false},              // no Path: browsers drop it
      {kSet, {"secure", "path=/"}, "__Host-x", true},
      {kSet, {"secure", "path=/", "domain=example.com"}, "__Host-x", false},
      {kSet, {"secure", "path=/", "domain=example.com"}, "__Secure-x", true},
      {kSet, {"samesite=none"}, "x", false},
      {kSet, {}, "x", true},
      {kDelete, {"path=/", "secure"}, "__Host-x", true},
      {kDelete, {"path=/"}, "__Secure-x", false},
  };
  for (const auto& c : cases) {
    Parsed p = parse(c.d, c.words);
    ASSERT_TRUE(p.ok) << show(c.words);
    CookieAttrSpec e = p.spec;
    if (c.d == kSession) {
      if (!e.has_path) e.path = "/";
      if (!e.has_secure) e.secure = Secure::Auto;
      if (!e.has_httponly) e.httponly = true;
      if (!e.has_samesite) e.samesite = SameSite::Lax;
    }
    EXPECT_EQ(sess::cookie_attrs_check(c.name, e) == nullptr, c.accepted)
        << name_of(c.d) << " " << c.name << " " << show(c.words);
  }
}
