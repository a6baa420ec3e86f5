// Unit tests for redirect.h: the open-redirect guard for `next` and query_escape.
#include "redirect.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using sess::pstring;

namespace {

std::string qe(std::string_view in) {
  pstring out;
  sess::query_escape(in, out);
  return std::string(out);
}

// Payloads that must never be accepted as a post-login redirect target.
const std::vector<std::string>& unsafe_corpus() {
  static const std::vector<std::string> corpus = {
      // Empty, relative, schemes.
      "",
      "evil.com",
      "app",
      "./app",
      "../app",
      "?next=/",
      "#/app",
      "javascript:alert(1)",
      "JavaScript:alert(1)",
      "javascript://%0aalert(1)",
      "/javascript:alert(1)\n",
      "data:text/html,<script>alert(1)</script>",
      "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
      "vbscript:msgbox(1)",
      "http://evil.com",
      "https://evil.com/",
      "HTTP://evil.com",
      "https:evil.com",
      "http:/evil.com",
      "http:\\\\evil.com",
      "ftp://evil.com",
      "file:///etc/passwd",
      "mailto:a@evil.com",
      // Scheme-relative and backslash variants.
      "//evil.com",
      "//evil.com/",
      "///evil.com",
      "////evil.com",
      "//user@evil.com",
      "//user:pass@evil.com/",
      "//evil.com@good.com",
      "//127.0.0.1",
      "//[::1]/",
      "//%65vil.com",
      "/\\evil.com",
      "/\\/evil.com",
      "\\\\evil.com",
      "\\/evil.com",
      "\\evil.com",
      "/app\\..\\..\\evil",
      "/a\\b",
      "//\\evil.com",
      // Percent-encoded slashes and backslashes (decoded once more by the check).
      "/%2f%2fevil.com",
      "/%2F%2Fevil.com",
      "/%2Fevil.com",
      "/%2fevil.com",
      "/%5cevil.com",
      "/%5Cevil.com",
      "/%2F%5Cevil.com",
      "/%5C%2Fevil.com",
      "/%5c%5cevil.com",
      "%2F%2Fevil.com",
      "%2f/evil.com",
      "/%2F/evil.com",
      "/%5C/evil.com",
      "/app%5c..%5cevil",
      "/a%5Cb",
      // Whitespace and control bytes, raw.
      " /app",
      "\t/app",
      "\n/app",
      "/app ",
      "/ /evil.com",
      "/\t/evil.com",
      "/\r/evil.com",
      "/\n/evil.com",
      "/app\r\nSet-Cookie: x=1",
      "/app\nLocation: http://evil.com",
      "/app\rx",
      std::string("/app\0evil", 9),
      std::string("\0//evil.com", 11),
      "/app\x7f",
      "/app\x01",
      "/app\x1b[31m",
      "/app\x0b",
      "/app\x0c",
      // Whitespace and control bytes, encoded.
      "/%20/evil.com",
      "/%20",
      "/%09/evil.com",
      "/%0d/evil.com",
      "/%0a/evil.com",
      "/%0D%0ASet-Cookie:%20x=1",
      "/%0d%0a",
      "/app%00",
      "/app%7f",
      "/%1b",
      "/app%0bx",
      // Non-ASCII, raw and encoded (full-width solidus, reverse solidus, dots, homoglyphs).
      "/\xef\xbc\x8f\xef\xbc\x8f" "evil.com",         // ／／evil.com
      "/\xef\xbc\xbc" "evil.com",                     // ＼evil.com
      "/evil\xef\xbc\x8e" "com",
      "/\xe3\x80\x82" "evil",                         // ideographic full stop
      "/\xe2\x81\x84" "evil",                         // fraction slash
      "/\xe2\x88\x95" "evil",                         // division slash
      "/caf\xc3\xa9",
      "/\xc0\xaf",
      "/\xff",
      "\xef\xbc\x8f\xef\xbc\x8f" "evil.com",
      // Broken or double escapes.
      "/%",
      "/%2",
      "/%2g",
      "/%g2",
      "/100%",
      "/%%2f",
      "/a%",
      // Things that are not a path at all.
      "@evil.com",
      ":evil.com",
      "evil.com/path",
      "%2F",
  };
  return corpus;
}

}  // namespace

TEST(RedirectIsSafe, UnsafeCorpus) {
  const auto& corpus = unsafe_corpus();
  ASSERT_GE(corpus.size(), 100u);
  for (const auto& next : corpus) {
    EXPECT_FALSE(sess::redirect_is_safe(next)) << "accepted: \"" << next << "\"";
  }
}

// Encoded non-ASCII stays encoded in the Location header, which browsers resolve as a path on
// this site: these are safe (a raw, unencoded non-ASCII byte is not).
TEST(RedirectIsSafe, EncodedNonAsciiIsAPath) {
  for (const char* next : {"/%EF%BC%8F%EF%BC%8Fevil.com", "/%ef%bc%8f%ef%bc%8fevil.com", "/%EF%BC%BCevil.com", "/evil%EF%BC%8Ecom", "/%E2%81%84evil", "/%E2%88%95%E2%88%95evil.com", "/caf%C3%A9", "/%C0%AF%C0%AFevil.com", "/%80", "/%ff"}) {
    EXPECT_TRUE(sess::redirect_is_safe(next)) << next;
  }
}

TEST(RedirectIsSafe, SafePaths) {
  for (const char* next :
       {"/", "/app", "/app/", "/app?x=1&y=%2F", "/a/b#frag", "/a/b?c=d#e", "/app/%7Euser", "/app%20x", "/private/a%20b",
        "/search?q=a%2Bb", "/x?next=%2Fapp", "/a/./b", "/a/../b", "/.well-known/x",
        "/path;params", "/@user", "/a//b", "/a/\\x"}) {
    const bool expected = std::string_view(next) != "/a/\\x";  // backslash anywhere is unsafe
    EXPECT_EQ(sess::redirect_is_safe(next), expected) << next;
  }
  EXPECT_TRUE(sess::redirect_is_safe("/%252F%252Fevil.com"));  // decodes to a plain path once
  EXPECT_TRUE(sess::redirect_is_safe("/%41pp"));
  EXPECT_TRUE(sess::redirect_is_safe("/a%2Fb"));  // encoded '/' after the first segment
  EXPECT_TRUE(sess::redirect_is_safe("/!$&'()*+,;=:@-._~"));
}

TEST(RedirectIsSafe, EveryRawByte) {
  for (int c = 0; c < 256; c++) {
    std::string next = "/a";
    next.push_back(static_cast<char>(c));
    const bool expected = c >= 0x21 && c <= 0x7e && c != '\\' && c != '%';  // lone '%': bad escape
    EXPECT_EQ(sess::redirect_is_safe(next), expected) << c;
  }
}

TEST(RedirectIsSafe, EveryEncodedByte) {
  static const char kHex[] = "0123456789ABCDEF";
  for (int c = 0; c < 256; c++) {
    std::string next = "/a%";
    next.push_back(kHex[c >> 4]);
    next.push_back(kHex[c & 15]);
    const bool printable = (c >= 0x21 && c <= 0x7e && c != '\\') || c >= 0x80;
    const bool expected = printable || c == ' ';  // a decoded space inside the path is fine
    EXPECT_EQ(sess::redirect_is_safe(next), expected) << c;
    // In the second position, '/' and '\' are scheme-relative after decoding.
    std::string second = "/%";
    second.push_back(kHex[c >> 4]);
    second.push_back(kHex[c & 15]);
    const bool expected2 = printable && c != '/';
    EXPECT_EQ(sess::redirect_is_safe(second + "x"), expected2) << c;
  }
}

TEST(RedirectIsSafe, LengthLimit) {
  std::string next = "/" + std::string(2047, 'a');
  EXPECT_TRUE(sess::redirect_is_safe(next));
  next.push_back('a');
  EXPECT_FALSE(sess::redirect_is_safe(next));
  EXPECT_FALSE(sess::redirect_is_safe("/" + std::string(100000, 'a')));
}

TEST(QueryEscape, KeepsUnreservedAndSlash) {
  EXPECT_EQ(qe(""), "");
  EXPECT_EQ(qe("/app/Path-1.2_x~"), "/app/Path-1.2_x~");
  EXPECT_EQ(qe("ABCXYZabcxyz0189"), "ABCXYZabcxyz0189");
}

TEST(QueryEscape, EscapesEverythingElse) {
  EXPECT_EQ(qe("/app?x=1&y=2"), "/app%3Fx%3D1%26y%3D2");
  EXPECT_EQ(qe("/a b"), "/a%20b");
  EXPECT_EQ(qe("/a+b"), "/a%2Bb");
  EXPECT_EQ(qe("/100%"), "/100%25");
  EXPECT_EQ(qe("/a#f"), "/a%23f");
  EXPECT_EQ(qe("/\r\n"), "/%0D%0A");
  EXPECT_EQ(qe("/\\"), "/%5C");
  EXPECT_EQ(qe("/caf\xc3\xa9"), "/caf%C3%A9");
  EXPECT_EQ(qe(std::string_view("\0\xff", 2)), "%00%FF");
}

TEST(QueryEscape, EveryByte) {
  for (int c = 0; c < 256; c++) {
    const char ch = static_cast<char>(c);
    const std::string out = qe(std::string_view(&ch, 1));
    const bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
    if (keep) {
      EXPECT_EQ(out, std::string(1, ch));
    } else {
      static const char kHex[] = "0123456789ABCDEF";
      EXPECT_EQ(out, (std::string{'%', kHex[c >> 4], kHex[c & 15]})) << c;
    }
  }
}

TEST(QueryEscape, EscapedNextIsStillSafeAfterTheLoginRoundTrip) {
  // session_require builds "uri?next=<escaped>"; the login form posts it back form-encoded
  // and form_decode yields the original; redirect_is_safe must then accept it.
  for (const char* uri : {"/app", "/app?x=1&y=%2F", "/a/b?q=a+b"}) {
    EXPECT_TRUE(sess::redirect_is_safe(uri)) << uri;
    const std::string escaped = qe(uri);
    EXPECT_EQ(escaped.find_first_of("?&=# +"), std::string::npos) << escaped;
  }
}

TEST(QueryEscape, Appends) {
  pstring out = "/login?next=";
  sess::query_escape("/a b", out);
  EXPECT_EQ(out, "/login?next=/a%20b");
}
