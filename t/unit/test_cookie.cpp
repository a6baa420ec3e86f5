// Unit tests for cookie.h: Cookie header parsing, value validation/encoding, Set-Cookie building.
#include "cookie.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>
#include <utility>
#include <vector>

using sess::CookieAttrs;
using sess::CookieCandidates;
using sess::CookieLookup;
using sess::pstring;
using sess::SameSite;

namespace {

CookieLookup find(std::string_view header, std::string_view name) {
  CookieLookup acc;
  sess::cookie_find(header, name, acc);
  return acc;
}

CookieCandidates collect(std::string_view header, std::string_view name) {
  CookieCandidates acc;
  sess::cookie_collect(header, name, acc);
  return acc;
}

std::vector<std::string> values(const CookieCandidates& c) {
  return std::vector<std::string>(c.values, c.values + c.count);
}

using Values = std::vector<std::string>;

std::string encode(std::string_view v) {
  pstring out;
  sess::cookie_value_encode(v, out);
  return std::string(out);
}

std::string build(std::string_view name, std::string_view value, const CookieAttrs& a) {
  pstring out;
  sess::cookie_build(name, value, a, out);
  return std::string(out);
}

std::string date(int64_t t) {
  pstring out;
  sess::http_date(t, out);
  return std::string(out);
}

// Percent-decodes a cookie_value_encode() result (test helper, independent of the code under test).
std::string pct_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '%') {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// cookie_find

TEST(CookieFind, SimplePairs) {
  auto r = find("a=1; b=2; session=xyz", "session");
  EXPECT_EQ(r.count, 1u);
  EXPECT_FALSE(r.conflicting);
  EXPECT_EQ(r.value, "xyz");
  EXPECT_EQ(find("a=1; b=2", "a").value, "1");
  EXPECT_EQ(find("a=1; b=2", "b").value, "2");
}

TEST(CookieFind, NoSpaceAfterSemicolon) {
  auto r = find("a=1;b=2", "b");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "2");
}

TEST(CookieFind, WhitespaceAroundNameAndValueIsTrimmed) {
  auto r = find("  a = 1 ;", "a");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "1");
  r = find("\tx\t=\tv w\t; y=2", "x");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "v w");  // inner whitespace kept
}

TEST(CookieFind, EmptyPairsAndPairsWithoutEquals) {
  auto r = find(";; a=1 ;;; ; b=2;;", "b");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "2");
  r = find("session; other=1", "session");  // no '=': not a cookie
  EXPECT_EQ(r.count, 0u);
  EXPECT_TRUE(r.value.empty());
  r = find("session ;session=ok", "session");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "ok");
  EXPECT_EQ(find("", "a").count, 0u);
  EXPECT_EQ(find(";", "a").count, 0u);
  EXPECT_EQ(find("   ", "a").count, 0u);
}

TEST(CookieFind, EmptyValue) {
  auto r = find("a=; b=2", "a");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "");
  r = find("a=\"\"", "a");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "");
}

TEST(CookieFind, QuotedValueIsUnquoted) {
  auto r = find("a=\"hello\"; b=2", "a");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "hello");
  r = find("a = \"hello\" ", "a");
  EXPECT_EQ(r.value, "hello");
  // A lone DQUOTE is not a quoted value.
  EXPECT_EQ(find("a=\"", "a").value, "\"");
  EXPECT_EQ(find("a=\"abc", "a").value, "\"abc");
}

TEST(CookieFind, NamesArePrefixesOfOtherNames) {
  auto r = find("session2=x; session=y", "session");
  EXPECT_EQ(r.count, 1u);
  EXPECT_FALSE(r.conflicting);
  EXPECT_EQ(r.value, "y");
  r = find("xsession=1; session_old=2; sessio=3", "session");
  EXPECT_EQ(r.count, 0u);
  r = find("session=y; session2=x", "session2");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "x");
}

TEST(CookieFind, NamesAreCaseSensitive) {
  EXPECT_EQ(find("Session=1; SESSION=2", "session").count, 0u);
  EXPECT_EQ(find("Session=1; session=2", "session").value, "2");
}

TEST(CookieFind, EqualsInsideValue) {
  auto r = find("a=b=c; d=e", "a");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "b=c");
  EXPECT_EQ(find("tok=abc==", "tok").value, "abc==");
  EXPECT_EQ(find("b=c", "b=c").count, 0u);  // the name ends at the first '='
}

TEST(CookieFind, DuplicatesWithSameValue) {
  auto r = find("s=1; a=2; s=1", "s");
  EXPECT_EQ(r.count, 2u);
  EXPECT_FALSE(r.conflicting);
  EXPECT_EQ(r.value, "1");
  r = find("s=1; s=\"1\"", "s");  // same value once unquoted
  EXPECT_EQ(r.count, 2u);
  EXPECT_FALSE(r.conflicting);
}

TEST(CookieFind, DuplicatesWithDifferentValues) {
  auto r = find("s=first; s=second", "s");
  EXPECT_EQ(r.count, 2u);
  EXPECT_TRUE(r.conflicting);
  EXPECT_EQ(r.value, "first");
  r = find("s=1; s=1; s=2; s=1", "s");
  EXPECT_EQ(r.count, 4u);
  EXPECT_TRUE(r.conflicting);
  EXPECT_EQ(r.value, "1");
}

TEST(CookieFind, AccumulatesAcrossHeaderLines) {
  CookieLookup acc;
  sess::cookie_find("a=1; s=v", "s", acc);
  sess::cookie_find("b=2", "s", acc);
  EXPECT_EQ(acc.count, 1u);
  EXPECT_FALSE(acc.conflicting);
  sess::cookie_find("s=v", "s", acc);
  EXPECT_EQ(acc.count, 2u);
  EXPECT_FALSE(acc.conflicting);
  sess::cookie_find("s=w", "s", acc);
  EXPECT_EQ(acc.count, 3u);
  EXPECT_TRUE(acc.conflicting);
  EXPECT_EQ(acc.value, "v");
}

TEST(CookieFind, ViewPointsIntoHeader) {
  const std::string header = "x=1; session=abcdef; y=2";
  auto r = find(header, "session");
  ASSERT_EQ(r.value, "abcdef");
  EXPECT_GE(r.value.data(), header.data());
  EXPECT_LE(r.value.data() + r.value.size(), header.data() + header.size());
  EXPECT_EQ(r.value.data(), header.data() + header.find("abcdef"));
}

TEST(CookieFind, EmptyNameNeverMatches) {
  EXPECT_EQ(find("=abc; a=1", "").count, 0u);
}

TEST(CookieFind, CommaIsNotASeparator) {
  auto r = find("a=1, b=2", "a");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "1, b=2");
  EXPECT_EQ(find("a=1, b=2", "b").count, 0u);
}

TEST(CookieFind, BinaryAndNulBytesDoNotConfuseTheScan) {
  static const char raw[] = "a=\0x; s=ok\xff; z=1";
  const std::string header(raw, sizeof(raw) - 1);
  auto r = find(header, "s");
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.value, "ok\xff");
}

// ---------------------------------------------------------------------------------------------
// cookie_collect

TEST(CookieCollect, NoneOneAndMany) {
  auto c = collect("a=1; b=2", "s");
  EXPECT_EQ(c.count, 0u);
  EXPECT_EQ(c.occurrences, 0u);
  EXPECT_FALSE(c.overflow);
  c = collect("a=1; s=xyz; b=2", "s");
  EXPECT_EQ(values(c), (Values{"xyz"}));
  EXPECT_EQ(c.occurrences, 1u);
  c = collect("s=planted; a=1; s=mine", "s");
  EXPECT_EQ(values(c), (Values{"planted", "mine"}));  // order of appearance
  EXPECT_EQ(c.occurrences, 2u);
  EXPECT_FALSE(c.overflow);
}

TEST(CookieCollect, EqualValuesOnce) {
  auto c = collect("s=1; s=2; s=1; s=\"1\"; s= 2 ", "s");
  EXPECT_EQ(values(c), (Values{"1", "2"}));
  EXPECT_EQ(c.occurrences, 5u);
}

TEST(CookieCollect, SameParsingAsCookieFind) {
  // Trimming, DQUOTEs, pairs without '=', prefixes of names, case and ',' as cookie_find.
  const char* header = "  s = \"q\" ;s;session=x;S=up;s=a, b;;s=;s=b=c";
  auto c = collect(header, "s");
  EXPECT_EQ(values(c), (Values{"q", "a, b", "", "b=c"}));
  EXPECT_EQ(c.occurrences, 4u);
  EXPECT_EQ(find(header, "s").count, c.occurrences);
  EXPECT_EQ(find(header, "s").value, c.values[0]);
  EXPECT_EQ(collect("=abc; a=1", "").count, 0u);  // an empty name never matches
  EXPECT_EQ(collect("", "s").occurrences, 0u);
}

TEST(CookieCollect, ViewsPointIntoTheHeader) {
  const std::string header = "s=one; x=1; s=\"two\"";
  auto c = collect(header, "s");
  ASSERT_EQ(c.count, 2u);
  EXPECT_EQ(c.values[0].data(), header.data() + header.find("one"));
  EXPECT_EQ(c.values[1].data(), header.data() + header.find("two"));
}

TEST(CookieCollect, AccumulatesAcrossHeaderLines) {
  CookieCandidates acc;
  sess::cookie_collect("a=1; s=v", "s", acc);
  sess::cookie_collect("b=2", "s", acc);
  sess::cookie_collect("s=v; s=w", "s", acc);
  sess::cookie_collect("s=w", "s", acc);
  EXPECT_EQ(values(acc), (Values{"v", "w"}));
  EXPECT_EQ(acc.occurrences, 4u);
  EXPECT_FALSE(acc.overflow);
}

TEST(CookieCollect, AtMostKMaxDistinctValues) {
  std::string header;
  for (size_t i = 0; i < CookieCandidates::kMax; i++) header += "s=v" + std::to_string(i) + ";";
  auto c = collect(header, "s");
  EXPECT_EQ(c.count, CookieCandidates::kMax);
  EXPECT_FALSE(c.overflow);  // exactly kMax: nothing was left out
  // Repeats of kept values are no overflow.
  const std::string repeats = header + "s=v0; s=v7";  // the views point into it
  c = collect(repeats, "s");
  EXPECT_EQ(c.count, CookieCandidates::kMax);
  EXPECT_EQ(c.occurrences, CookieCandidates::kMax + 2);
  EXPECT_FALSE(c.overflow);
  // One more distinct value is.
  const std::string more = header + "s=extra; s=v0";
  c = collect(more, "s");
  EXPECT_EQ(c.count, CookieCandidates::kMax);
  EXPECT_EQ(c.occurrences, CookieCandidates::kMax + 2);
  EXPECT_TRUE(c.overflow);
  EXPECT_EQ(c.values[0], "v0");
  EXPECT_EQ(c.values[CookieCandidates::kMax - 1], "v7");  // the first kMax are kept
  // Across header lines too.
  CookieCandidates acc;
  sess::cookie_collect(header, "s", acc);
  EXPECT_FALSE(acc.overflow);
  sess::cookie_collect("s=late", "s", acc);
  EXPECT_TRUE(acc.overflow);
  EXPECT_EQ(acc.count, CookieCandidates::kMax);
}

// ---------------------------------------------------------------------------------------------
// cookie_name_valid / cookie_value_valid

TEST(CookieName, Valid) {
  for (const char* n : {"session", "a", "__Host-session", "__Secure-id", "A.B_C-D", "x!#$%&'*+-.^_`|~9"}) {
    EXPECT_TRUE(sess::cookie_name_valid(n)) << n;
  }
}

TEST(CookieName, Invalid) {
  for (std::string n : {"", "a b", "a=b", "a;b", "a,b", "a\"b", "(a)", "a<b>", "a@b", "a:b",
                        "a/b", "a[b]", "a?b", "a{b}", "a\\b", "a\tb", "a\rb", "a\nb", "a\x7f",
                        "caf\xc3\xa9"}) {
    EXPECT_FALSE(sess::cookie_name_valid(n)) << n;
  }
  EXPECT_FALSE(sess::cookie_name_valid(std::string_view("a\0b", 3)));
}

TEST(CookieValue, Valid) {
  EXPECT_TRUE(sess::cookie_value_valid(""));
  EXPECT_TRUE(sess::cookie_value_valid("abcXYZ019"));
  EXPECT_TRUE(sess::cookie_value_valid("!#$%&'()*+-./:<=>?@[]^_`{|}~"));
  EXPECT_TRUE(sess::cookie_value_valid("base64url-_AAA.sig"));
}

TEST(CookieValue, EveryByteAgainstTheGrammar) {
  for (int c = 0; c < 256; c++) {
    const bool expected = c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
                          (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
    const char ch = static_cast<char>(c);
    EXPECT_EQ(sess::cookie_value_valid(std::string_view(&ch, 1)), expected) << c;
    std::string v = "ab";
    v.insert(1, 1, ch);
    EXPECT_EQ(sess::cookie_value_valid(v), expected) << c;
  }
}

TEST(CookieValue, Invalid) {
  for (std::string v : {"a b", "a;b", "a,b", "\"quoted\"", "a\\b", "a\rb", "a\nb", "a\r\nSet-Cookie: x=1",
                        "a\tb", "\x7f", "\x80", "caf\xc3\xa9"}) {
    EXPECT_FALSE(sess::cookie_value_valid(v)) << v;
  }
  EXPECT_FALSE(sess::cookie_value_valid(std::string_view("a\0b", 3)));
}

// ---------------------------------------------------------------------------------------------
// cookie_value_encode

TEST(CookieEncode, SafeBytesUnchanged) {
  EXPECT_EQ(encode(""), "");
  EXPECT_EQ(encode("abc-DEF_123.~!"), "abc-DEF_123.~!");
}

TEST(CookieEncode, SpecificBytes) {
  EXPECT_EQ(encode("a\rb"), "a%0Db");
  EXPECT_EQ(encode("a\nb"), "a%0Ab");
  EXPECT_EQ(encode("a;b"), "a%3Bb");
  EXPECT_EQ(encode("a,b"), "a%2Cb");
  EXPECT_EQ(encode("a b"), "a%20b");
  EXPECT_EQ(encode("a\"b"), "a%22b");
  EXPECT_EQ(encode("a\\b"), "a%5Cb");
  EXPECT_EQ(encode("100%"), "100%25");
  EXPECT_EQ(encode("%41"), "%2541");
  EXPECT_EQ(encode(std::string_view("\0", 1)), "%00");
  EXPECT_EQ(encode("\t\x7f"), "%09%7F");
  EXPECT_EQ(encode("\x80\xff"), "%80%FF");
  EXPECT_EQ(encode("caf\xc3\xa9"), "caf%C3%A9");
  EXPECT_EQ(encode("x\r\nSet-Cookie: evil=1"), "x%0D%0ASet-Cookie:%20evil=1");
}

TEST(CookieEncode, AllBytesGiveValidValueAndDecodeBack) {
  std::string all;
  for (int c = 0; c < 256; c++) all.push_back(static_cast<char>(c));
  const std::string enc = encode(all);
  EXPECT_TRUE(sess::cookie_value_valid(enc));
  EXPECT_EQ(pct_decode(enc), all);
  // Every escape is upper-case hex.
  for (size_t i = 0; i < enc.size(); i++) {
    if (enc[i] == '%') {
      ASSERT_LT(i + 2, enc.size());
      EXPECT_TRUE(std::isxdigit(static_cast<unsigned char>(enc[i + 1])));
      EXPECT_FALSE(std::islower(static_cast<unsigned char>(enc[i + 1])));
      EXPECT_FALSE(std::islower(static_cast<unsigned char>(enc[i + 2])));
    }
  }
}

TEST(CookieEncode, Appends) {
  pstring out = "prefix:";
  sess::cookie_value_encode("a b", out);
  EXPECT_EQ(out, "prefix:a%20b");
}

// ---------------------------------------------------------------------------------------------
// cookie_build / http_date

TEST(CookieBuild, NameValueOnly) {
  EXPECT_EQ(build("a", "1", CookieAttrs{}), "a=1");
  EXPECT_EQ(build("a", "", CookieAttrs{}), "a=");
}

TEST(CookieBuild, EveryAttributeInOrder) {
  CookieAttrs a;
  a.path = "/";
  a.domain = "example.com";
  a.max_age = 3600;
  a.expires = 0;
  a.secure = true;
  a.httponly = true;
  a.samesite = SameSite::Lax;
  a.partitioned = true;
  EXPECT_EQ(build("session", "abc", a),
            "session=abc; Path=/; Domain=example.com; Max-Age=3600; "
            "Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax; Partitioned");
}

TEST(CookieBuild, SingleAttributes) {
  CookieAttrs a;
  a.path = "/app";
  EXPECT_EQ(build("n", "v", a), "n=v; Path=/app");
  a = CookieAttrs{};
  a.domain = ".example.org";
  EXPECT_EQ(build("n", "v", a), "n=v; Domain=.example.org");
  a = CookieAttrs{};
  a.max_age = 0;
  EXPECT_EQ(build("n", "v", a), "n=v; Max-Age=0");
  a.max_age = 2678400;
  EXPECT_EQ(build("n", "v", a), "n=v; Max-Age=2678400");
  a.max_age = INT64_MAX;
  EXPECT_EQ(build("n", "v", a), "n=v; Max-Age=9223372036854775807");
  a = CookieAttrs{};
  a.expires = 784111777;
  EXPECT_EQ(build("n", "v", a), "n=v; Expires=Sun, 06 Nov 1994 08:49:37 GMT");
  a = CookieAttrs{};
  a.secure = true;
  EXPECT_EQ(build("n", "v", a), "n=v; Secure");
  a = CookieAttrs{};
  a.httponly = true;
  EXPECT_EQ(build("n", "v", a), "n=v; HttpOnly");
  a = CookieAttrs{};
  a.samesite = SameSite::Strict;
  EXPECT_EQ(build("n", "v", a), "n=v; SameSite=Strict");
  a.samesite = SameSite::Lax;
  EXPECT_EQ(build("n", "v", a), "n=v; SameSite=Lax");
  a.samesite = SameSite::None;
  EXPECT_EQ(build("n", "v", a), "n=v; SameSite=None");
  a = CookieAttrs{};
  a.partitioned = true;
  EXPECT_EQ(build("n", "v", a), "n=v; Partitioned");
}

TEST(CookieBuild, DeletionCookie) {
  CookieAttrs a;
  a.path = "/";
  a.max_age = 0;
  a.expires = 0;
  a.secure = true;
  a.httponly = true;
  a.samesite = SameSite::None;
  EXPECT_EQ(build("__Host-s", "", a),
            "__Host-s=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; "
            "HttpOnly; SameSite=None");
}

TEST(CookieBuild, NegativeMeansUnset) {
  CookieAttrs a;
  a.max_age = -5;
  a.expires = -1;
  EXPECT_EQ(build("n", "v", a), "n=v");
}

TEST(CookieBuild, Appends) {
  pstring out = "Set-Cookie: ";
  CookieAttrs a;
  a.httponly = true;
  sess::cookie_build("a", "b", a, out);
  EXPECT_EQ(out, "Set-Cookie: a=b; HttpOnly");
}

TEST(HttpDate, KnownDates) {
  EXPECT_EQ(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");   // RFC 7231 example
  EXPECT_EQ(date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");   // leap day, 400-year rule
  EXPECT_EQ(date(978307199), "Sun, 31 Dec 2000 23:59:59 GMT");
  EXPECT_EQ(date(1709164800), "Thu, 29 Feb 2024 00:00:00 GMT");
  EXPECT_EQ(date(2147483647), "Tue, 19 Jan 2038 03:14:07 GMT");
  EXPECT_EQ(date(2147483648), "Tue, 19 Jan 2038 03:14:08 GMT");
  EXPECT_EQ(date(4102444800), "Fri, 01 Jan 2100 00:00:00 GMT");  // 2100 is not a leap year
  EXPECT_EQ(date(4107542400), "Mon, 01 Mar 2100 00:00:00 GMT");
  EXPECT_EQ(date(253402300799), "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST(HttpDate, ClampsToFourDigitYears) {
  EXPECT_EQ(date(-1), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(date(INT64_MIN), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(date(253402300800), "Fri, 31 Dec 9999 23:59:59 GMT");
  EXPECT_EQ(date(INT64_MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST(HttpDate, MatchesGmtimeR) {
  std::mt19937_64 rng(12345);
  std::uniform_int_distribution<int64_t> dist(0, 253402300799);
  for (int i = 0; i < 20000; i++) {
    const int64_t t = i < 1000 ? static_cast<int64_t>(i) * 86399 * 37 : dist(rng);
    const time_t tt = static_cast<time_t>(t);
    struct tm tm {};
    ASSERT_NE(gmtime_r(&tt, &tm), nullptr);
    static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char expected[64];
    snprintf(expected, sizeof(expected), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
             tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    ASSERT_EQ(date(t), expected) << t;
  }
}

TEST(HttpDate, Appends) {
  pstring out = "x";
  sess::http_date(0, out);
  EXPECT_EQ(out, "xThu, 01 Jan 1970 00:00:00 GMT");
}

TEST(CookieOwn, TheSessionCookieItsCsrfCookieAndChunks) {
  struct Case { const char* session; const char* name; bool own; };
  const Case cases[] = {
      {"session", "session", true},       {"session", "session_csrf", true},
      {"session", "session_1", true},     {"session", "session_12", true},
      {"session", "session_", false},     {"session", "session_x", false},
      {"session", "session_1x", false},   {"session", "sessionx", false},
      {"session", "Session", false},      {"session", "sess", false},
      {"session", "", false},             {"__Host-s", "__Host-s_csrf", true},
      {"sid", "session", false},          {"", "session", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(sess::cookie_is_session_own(c.session, c.name), c.own) << c.session << " " << c.name;
  }
}

// Two session cookies configured side by side: one may not be the other's CSRF cookie, nor one
// of its chunk names (_1 .. _15; a write expires or overwrites those, chunked or not).
TEST(CookieSessionClash, CsrfAndChunkNames) {
  EXPECT_STREQ(sess::session_cookie_clash("session", "session_csrf"), "the CSRF cookie");
  EXPECT_STREQ(sess::session_cookie_clash("session", "session_1"), "a chunk name");
  EXPECT_STREQ(sess::session_cookie_clash("session", "session_15"), "a chunk name");
  EXPECT_EQ(sess::session_cookie_clash("session", "session_16"), nullptr);
  EXPECT_EQ(sess::session_cookie_clash("session", "session_99"), nullptr);
  EXPECT_EQ(sess::session_cookie_clash("session", "session_01"), nullptr);
  EXPECT_EQ(sess::session_cookie_clash("session", "session_0"), nullptr);
  EXPECT_EQ(sess::session_cookie_clash("session", "session_123"), nullptr);
  EXPECT_EQ(sess::session_cookie_clash("session", "session"), nullptr);
  EXPECT_EQ(sess::session_cookie_clash("session", "session_x"), nullptr);
  EXPECT_EQ(sess::session_cookie_clash("session", "sessions_1"), nullptr);
  EXPECT_EQ(sess::session_cookie_clash("session_1", "session"), nullptr);
  EXPECT_EQ(sess::session_cookie_clash("sid", "session_1"), nullptr);
}

// The pair scanner under cookie_find/cookie_collect and the chunk collector (chunks.h).
TEST(CookieForEachPair, NamesAndValuesAsScanned) {
  std::vector<std::pair<std::string, std::string>> got;
  sess::cookie_for_each_pair(" a=1;b = \"2\" ;; noeq ; =x;c=;\td\t=\t4 ",
                             [&](std::string_view n, std::string_view v) {
                               got.emplace_back(std::string(n), std::string(v));
                             });
  const std::vector<std::pair<std::string, std::string>> want = {
      {"a", "1"}, {"b", "2"}, {"", "x"}, {"c", ""}, {"d", "4"}};
  EXPECT_EQ(got, want);
}
