// Unit tests for secret_file.h: session_secret_file parsing and base64_decode_any.
#include "secret_file.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

using sess::SecretFile;
using sess::SecretFileError;

namespace {

constexpr size_t kMin = 32;

const std::string k32 = "0123456789abcdef0123456789abcdef";          // 32 bytes
const std::string k40 = "a-forty-byte-secret-for-the-unit-tests!!";  // 40 bytes

SecretFile parse(std::string_view text, size_t min_len = kMin, bool allow_short = false) {
  SecretFile f;
  const bool ok = sess::secret_file_parse(text, min_len, allow_short, &f);
  EXPECT_EQ(ok, f.error == SecretFileError::None);
  EXPECT_EQ(f.secrets.size(), f.lines.size());
  if (!ok) {
    EXPECT_TRUE(f.secrets.empty());
  }
  return f;
}

// The secrets with their line numbers, to compare a whole result at once.
using Pairs = std::vector<std::pair<std::string, size_t>>;

Pairs pairs(const SecretFile& f) {
  Pairs p;
  for (size_t i = 0; i < f.secrets.size() && i < f.lines.size(); i++) {
    p.emplace_back(f.secrets[i], f.lines[i]);
  }
  return p;
}

std::string b64(std::string_view in) {
  // Test-side encoder (standard alphabet, padded), independent of the code under test.
  static const char kAlpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 |
                       uint8_t(in[i + 2]);
    out += {kAlpha[v >> 18], kAlpha[(v >> 12) & 63], kAlpha[(v >> 6) & 63], kAlpha[v & 63]};
  }
  if (in.size() - i == 1) {
    const uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    out += {kAlpha[v >> 18], kAlpha[(v >> 12) & 63], '=', '='};
  } else if (in.size() - i == 2) {
    const uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8;
    out += {kAlpha[v >> 18], kAlpha[(v >> 12) & 63], kAlpha[(v >> 6) & 63], '='};
  }
  return out;
}

std::string to_url(std::string s) {
  for (char& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return s;
}

std::string unpadded(std::string s) {
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// secret_file_parse: accepted files

TEST(SecretFile, OneSecret) {
  SecretFile f = parse(k32 + "\n");
  ASSERT_EQ(f.secrets.size(), 1u);
  EXPECT_EQ(f.secrets[0], k32);
  EXPECT_EQ(f.lines[0], 1u);
  EXPECT_EQ(f.short_lines, 0u);
  f = parse(k32);  // no final newline
  ASSERT_EQ(f.secrets.size(), 1u);
  EXPECT_EQ(f.secrets[0], k32);
}

TEST(SecretFile, RotationOrderAndLineNumbers) {
  EXPECT_EQ(pairs(parse("# current key first\n" + k40 + "\n\n" + k32 + "\n")),
            (Pairs{{k40, 2}, {k32, 4}}));
}

TEST(SecretFile, BlanksAreTrimmed) {
  const char* wrappers[][2] = {{"  ", ""}, {"", "  "}, {"\t", "\t"}, {" \t\v\f", "\f\v\t "},
                               {"", "\r"}, {"  ", " \r"}, {"", "\r\r"}};
  for (const auto& w : wrappers) {
    SecretFile f = parse(std::string(w[0]) + k32 + w[1] + "\n");
    ASSERT_EQ(f.secrets.size(), 1u) << int(w[0][0]);
    EXPECT_EQ(f.secrets[0], k32);
  }
  // Blanks inside are part of the secret.
  const std::string inner = "correct horse battery staple and more words";
  SecretFile f = parse("  " + inner + "  \n");
  ASSERT_EQ(f.secrets.size(), 1u);
  EXPECT_EQ(f.secrets[0], inner);
}

TEST(SecretFile, CrlfFile) {
  EXPECT_EQ(pairs(parse("# keys\r\n" + k40 + "\r\n\r\n   # old\r\n" + k32 + "\r\n")),
            (Pairs{{k40, 2}, {k32, 5}}));
  // A file with CRLF and a last line without any line end.
  EXPECT_EQ(pairs(parse(k40 + "\r\n" + k32)), (Pairs{{k40, 1}, {k32, 2}}));
}

TEST(SecretFile, CommentsNeverBecomeSecrets) {
  const std::string retired = "   # retired key 2023-01-01 (was in use until the rotation)";
  ASSERT_GE(retired.size(), 40u);
  const std::string lines[] = {
      retired,
      "#" + k40,
      "# " + k40,
      "\t#" + k40,
      " \t # " + k40,
      "\v#" + k40,
      "#",
      "##########################################",
      "# base64:" + b64(k40),
  };
  for (const auto& c : lines) {
    EXPECT_EQ(pairs(parse(c + "\n" + k32 + "\n")), (Pairs{{k32, 2}})) << c;
    EXPECT_EQ(pairs(parse(c + "\r\n" + k32 + "\r\n")), (Pairs{{k32, 2}})) << c;
    EXPECT_EQ(pairs(parse(c + "\n" + k32 + "\n", kMin, true)), (Pairs{{k32, 2}})) << c;
  }
  // A '#' that is not the first non-blank byte is part of the secret.
  const std::string hash_inside = k32 + "#not-a-comment";
  SecretFile f = parse(hash_inside + "\n");
  ASSERT_EQ(f.secrets.size(), 1u);
  EXPECT_EQ(f.secrets[0], hash_inside);
}

TEST(SecretFile, ByteOrderMarkIsIgnored) {
  EXPECT_EQ(pairs(parse("\xEF\xBB\xBF# keys, saved by an editor with a BOM\n" + k32 + "\n")),
            (Pairs{{k32, 2}}));
  EXPECT_EQ(pairs(parse("\xEF\xBB\xBF" + k32)), (Pairs{{k32, 1}}));
  // Only at the very start of the file.
  EXPECT_EQ(pairs(parse(k32 + "\n\xEF\xBB\xBF" + k32 + "\n")),
            (Pairs{{k32, 1}, {"\xEF\xBB\xBF" + k32, 2}}));
}

TEST(SecretFile, Base64Lines) {
  std::string raw(32, '\0');
  for (size_t i = 0; i < raw.size(); i++) raw[i] = static_cast<char>(i * 37 + 1);
  raw[3] = ' ';
  raw[0] = '\t';
  raw[31] = '\n';
  raw[10] = '#';
  const std::string enc = b64(raw);
  const std::string forms[] = {enc, unpadded(enc), to_url(enc), unpadded(to_url(enc))};
  for (const auto& e : forms) {
    SecretFile f = parse("  base64:" + e + " \r\n");
    ASSERT_EQ(f.secrets.size(), 1u) << e;
    EXPECT_EQ(f.secrets[0], raw) << e;
  }
  // Leading '#' after decoding is fine.
  SecretFile f = parse("base64:" + b64("#" + k32));
  ASSERT_EQ(f.secrets.size(), 1u);
  EXPECT_EQ(f.secrets[0], "#" + k32);
  // 24 random bytes (Flask's os.urandom(24)) need allow_short.
  f = parse("base64:" + b64(std::string(24, '\x9c')), kMin, true);
  ASSERT_EQ(f.secrets.size(), 1u);
  EXPECT_EQ(f.short_lines, 1u);
  // "base64:" is case-sensitive; another spelling is a literal secret.
  const std::string literal = "BASE64:" + b64(k32);
  f = parse(literal);
  ASSERT_EQ(f.secrets.size(), 1u);
  EXPECT_EQ(f.secrets[0], literal);
}

TEST(SecretFile, AllowShort) {
  SecretFile f = parse("short\n" + k32 + "\nalso short\n", kMin, true);
  ASSERT_EQ(f.secrets.size(), 3u);
  EXPECT_EQ(f.short_lines, 2u);
  EXPECT_EQ(f.secrets[0], "short");
  EXPECT_EQ(f.lines[2], 3u);
  // min_len 0: every non-empty secret is long enough.
  f = parse("x\n", 0, false);
  ASSERT_EQ(f.secrets.size(), 1u);
  EXPECT_EQ(f.short_lines, 0u);
}

TEST(SecretFile, LengthBoundaries) {
  EXPECT_EQ(parse(std::string(31, 'k')).error, SecretFileError::TooShort);
  EXPECT_EQ(parse(std::string(32, 'k')).error, SecretFileError::None);
  // Trimmed blanks do not count.
  EXPECT_EQ(parse("  " + std::string(31, 'k') + "  ").error, SecretFileError::TooShort);
  // The decoded length counts for base64:.
  EXPECT_EQ(parse("base64:" + b64(std::string(31, 'k'))).error, SecretFileError::TooShort);
  EXPECT_EQ(parse("base64:" + b64(std::string(32, 'k'))).error, SecretFileError::None);
  // A base64 text of 32+ characters that decodes to fewer bytes.
  const std::string enc24 = b64(std::string(24, 'k'));
  ASSERT_EQ(enc24.size(), 32u);
  EXPECT_EQ(parse("base64:" + enc24).error, SecretFileError::TooShort);
}

// ---------------------------------------------------------------------------------------------
// secret_file_parse: refused files

struct Refused {
  const char* what;
  std::string text;
  SecretFileError error;
  size_t line;
};

TEST(SecretFile, Refusals) {
  const Refused cases[] = {
      {"empty file", "", SecretFileError::NoSecret, 0},
      {"newlines", "\n\n\r\n", SecretFileError::NoSecret, 0},
      {"blanks", "   \n\t\n", SecretFileError::NoSecret, 0},
      {"only comments", "# one\n   # retired key 0123456789abcdef0123456789abcdef\n#\n",
       SecretFileError::NoSecret, 0},
      {"only a BOM", "\xEF\xBB\xBF", SecretFileError::NoSecret, 0},
      {"short first line", "short\n" + k32, SecretFileError::TooShort, 1},
      {"short later line", k32 + "\n# c\nshort\n", SecretFileError::TooShort, 3},
      {"one byte", "x", SecretFileError::TooShort, 1},
      {"NUL line", k32 + "\n" + std::string("0123456789abcdef\0" "0123456789abcdef", 33),
       SecretFileError::Binary, 2},
      {"NUL alone", std::string("\0", 1), SecretFileError::Binary, 1},
      {"NUL before short", std::string("ab\0", 3), SecretFileError::Binary, 1},
      {"ESC inside", k32 + "\x1b", SecretFileError::Binary, 1},
      {"DEL inside", k32 + "\x7f" + k32, SecretFileError::Binary, 1},
      {"CR inside", k32 + "\r" + k32, SecretFileError::Binary, 1},
      {"random bytes", std::string("\x9c\x01\xff\xfe\x80\x00\x13\x37" "abcdefghijklmnopqrstuvwx", 32),
       SecretFileError::Binary, 1},
      {"base64 empty", "base64:", SecretFileError::BadBase64, 1},
      {"base64 blank", "base64: ", SecretFileError::BadBase64, 1},
      {"base64 space inside", "base64:" + b64(k32).insert(8, " "), SecretFileError::BadBase64, 1},
      {"base64 blank after prefix", "base64: " + b64(k32), SecretFileError::BadBase64, 1},
      {"base64 bad char", "base64:" + b64(k32).replace(4, 1, "*"), SecretFileError::BadBase64, 1},
      {"base64 bad padding", "base64:" + unpadded(b64(k32)) + "==",
       SecretFileError::BadBase64, 1},
      {"base64 too much padding", "base64:" + b64(k32 + "x") + "=", SecretFileError::BadBase64,
       1},
      {"base64 padding inside", "base64:AAAA=AAA" + b64(k32), SecretFileError::BadBase64, 1},
      {"base64 bad length", "base64:" + b64(k32 + "xy").substr(0, 45), SecretFileError::BadBase64,
       1},
      {"base64 mixed alphabets", "base64:+/-_" + b64(k32), SecretFileError::BadBase64, 1},
      {"base64 second line", k32 + "\nbase64:!!!!\n", SecretFileError::BadBase64, 2},
      {"base64 NUL", "base64:" + b64(k32) + std::string("\0", 1), SecretFileError::BadBase64,
       1},
  };
  for (const auto& c : cases) {
    SecretFile f = parse(c.text);
    EXPECT_EQ(f.error, c.error) << c.what;
    EXPECT_EQ(f.error_line, c.line) << c.what;
    EXPECT_TRUE(f.secrets.empty()) << c.what;
    EXPECT_TRUE(f.lines.empty()) << c.what;
  }
}

TEST(SecretFile, BinaryIsRefusedEvenWithAllowShort) {
  SecretFile f = parse(std::string("ab\0cd", 5), kMin, true);
  EXPECT_EQ(f.error, SecretFileError::Binary);
  f = parse("base64:!!", kMin, true);
  EXPECT_EQ(f.error, SecretFileError::BadBase64);
}

TEST(SecretFile, ReusedResultIsReset) {
  SecretFile f;
  ASSERT_TRUE(sess::secret_file_parse(k32 + "\n" + k40, kMin, false, &f));
  ASSERT_EQ(f.secrets.size(), 2u);
  ASSERT_FALSE(sess::secret_file_parse("short", kMin, false, &f));
  EXPECT_TRUE(f.secrets.empty());
  EXPECT_EQ(f.error, SecretFileError::TooShort);
  ASSERT_TRUE(sess::secret_file_parse(k40, kMin, false, &f));
  EXPECT_EQ(f.error, SecretFileError::None);
  EXPECT_EQ(f.error_line, 0u);
  ASSERT_EQ(f.secrets.size(), 1u);
  EXPECT_EQ(f.secrets[0], k40);
}

// ---------------------------------------------------------------------------------------------
// base64_decode_any

namespace {

bool dec(std::string_view in, std::string* out) { return sess::base64_decode_any(in, out); }

}  // namespace

TEST(Base64DecodeAny, RoundTripsEveryLengthAndForm) {
  std::string data;
  for (int n = 0; n < 70; n++) {
    const std::string enc = b64(data);
    for (const auto& e : {enc, unpadded(enc), to_url(enc), unpadded(to_url(enc))}) {
      std::string out = "garbage";
      ASSERT_TRUE(dec(e, &out)) << e;
      EXPECT_EQ(out, data) << e;
    }
    data.push_back(static_cast<char>(n * 73 + 250));
  }
}

TEST(Base64DecodeAny, KnownVectors) {
  // RFC 4648 section 10.
  const char* vectors[][2] = {{"", ""},         {"Zg==", "f"},     {"Zm8=", "fo"},
                              {"Zm9v", "foo"},  {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"},
                              {"Zm9vYmFy", "foobar"}, {"Zg", "f"}, {"Zm8", "fo"},
                              {"-_-_", "\xfb\xff\xbf"}, {"+/+/", "\xfb\xff\xbf"}};
  for (const auto& v : vectors) {
    std::string out;
    ASSERT_TRUE(dec(v[0], &out)) << v[0];
    EXPECT_EQ(out, v[1]) << v[0];
  }
}

TEST(Base64DecodeAny, Refusals) {
  const char* bad[] = {
      "Z",         // impossible length
      "Zm9vY",     // 5 characters
      "Zg=",       // padding that does not complete the group
      "Zg===",     // too much padding
      "Zm9v=",     // padding after a full group
      "Zm9v====",  // a whole group of padding
      "====",
      "=",
      "==",
      "Z===",
      "Zm=8",      // padding inside
      "Zg==Zg==",  // padding inside (two values glued)
      "Zm8==",     // two '=' where one completes the group
      "Zh==",      // non-canonical trailing bits
      "Zm9=",      // non-canonical trailing bits
      "Zh",
      "+/-_",      // both alphabets
      "ab+_",
      "Zm9v Yg==",  // blanks
      " Zm9v",
      "Zm9v\n",
      "Zm9v\r",
      "Zm9v\t",
      "Zm9v.",
      "Zm9v*",
      "Zm9v%3D",
      "\xc3\xa9\xc3\xa9",
  };
  for (const char* b : bad) {
    std::string out;
    EXPECT_FALSE(dec(b, &out)) << b;
  }
  std::string out;
  EXPECT_FALSE(dec(std::string("Zm9v\0", 5), &out));
  EXPECT_FALSE(dec(std::string("Zm\0v", 4), &out));
}
