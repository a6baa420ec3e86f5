#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "base64url.h"

using sess::base64url_decode;
using sess::base64url_encode;
using sess::base64url_encoded_len;
using sess::pstring;

namespace {

std::string enc(std::string_view in) {
  pstring out;
  base64url_encode(in, out);
  return std::string(out);
}

bool dec(std::string_view in, std::string* result = nullptr) {
  pstring out;
  bool ok = base64url_decode(in, out);
  if (result) *result = std::string(out);
  return ok;
}

// Independent bit-at-a-time reference encoder (RFC 4648 section 5, no padding).
std::string reference_encode(const std::string& in) {
  static const char* const kAlpha =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string bits;
  for (unsigned char c : in) {
    for (int b = 7; b >= 0; b--) bits.push_back((c >> b) & 1 ? '1' : '0');
  }
  while (bits.size() % 6 != 0) bits.push_back('0');
  std::string out;
  for (size_t i = 0; i < bits.size(); i += 6) {
    out.push_back(kAlpha[std::stoi(bits.substr(i, 6), nullptr, 2)]);
  }
  return out;
}

}  // namespace

TEST(Base64url, Rfc4648Vectors) {
  // RFC 4648 section 10, without the '=' padding.
  const std::pair<const char*, const char*> v[] = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : v) {
    EXPECT_EQ(enc(plain), encoded) << plain;
    std::string back;
    ASSERT_TRUE(dec(encoded, &back)) << encoded;
    EXPECT_EQ(back, plain);
  }
}

TEST(Base64url, UrlAlphabet) {
  // Standard base64 would give "+/8=" / "++++" / "////".
  EXPECT_EQ(enc("\xfb\xff"), "-_8");
  EXPECT_EQ(enc("\xfb\xef\xbe"), "----");
  EXPECT_EQ(enc("\xff\xff\xff"), "____");
  std::string back;
  ASSERT_TRUE(dec("-_8", &back));
  EXPECT_EQ(back, "\xfb\xff");
  ASSERT_TRUE(dec("____", &back));
  EXPECT_EQ(back, "\xff\xff\xff");
}

TEST(Base64url, WholeAlphabetDecodes) {
  const std::string alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string back;
  ASSERT_TRUE(dec(alpha, &back));
  ASSERT_EQ(back.size(), 48u);
  EXPECT_EQ(reference_encode(back), alpha);
  EXPECT_EQ(enc(back), alpha);
}

TEST(Base64url, AppendsToExistingOutput) {
  pstring out = "x=";
  base64url_encode("foo", out);
  EXPECT_EQ(out, "x=Zm9v");
  pstring d = "ab";
  ASSERT_TRUE(base64url_decode("Zm9v", d));
  EXPECT_EQ(d, "abfoo");
}

TEST(Base64url, EncodedLen) {
  for (size_t n = 0; n < 200; n++) {
    std::string in(n, 'a');
    EXPECT_EQ(base64url_encoded_len(n), enc(in).size()) << n;
  }
  EXPECT_EQ(base64url_encoded_len(0), 0u);
  EXPECT_EQ(base64url_encoded_len(1), 2u);
  EXPECT_EQ(base64url_encoded_len(2), 3u);
  EXPECT_EQ(base64url_encoded_len(3), 4u);
}

TEST(Base64url, RejectsPaddingAndStandardAlphabet) {
  EXPECT_FALSE(dec("Zg=="));
  EXPECT_FALSE(dec("Zm8="));
  EXPECT_FALSE(dec("Zg="));
  EXPECT_FALSE(dec("===="));
  EXPECT_FALSE(dec("++++"));
  EXPECT_FALSE(dec("////"));
  EXPECT_FALSE(dec("-_8/"));
  EXPECT_FALSE(dec("Zm9+"));
}

TEST(Base64url, RejectsEveryByteOutsideTheAlphabet) {
  const std::string alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (int c = 0; c < 256; c++) {
    bool in_alpha = alpha.find(static_cast<char>(c)) != std::string::npos;
    // Put the byte at every position of a 4-character group and in 2/3-character tails.
    for (int pos = 0; pos < 4; pos++) {
      std::string s = "AAAA";
      s[pos] = static_cast<char>(c);
      EXPECT_EQ(dec(s), in_alpha) << "byte " << c << " at " << pos;
      std::string s8 = "AAAAAAAA";
      s8[4 + pos] = static_cast<char>(c);
      EXPECT_EQ(dec(s8), in_alpha) << "byte " << c << " at " << 4 + pos;
    }
    std::string tail = "AAAAA" + std::string(1, static_cast<char>(c));  // 6 chars: 2-char tail
    if (!in_alpha) {
      EXPECT_FALSE(dec(tail)) << c;
    }
  }
}

TEST(Base64url, RejectsWhitespace) {
  EXPECT_FALSE(dec(" Zm9v"));
  EXPECT_FALSE(dec("Zm9v "));
  EXPECT_FALSE(dec("Zm 9v"));
  EXPECT_FALSE(dec("Zm9v\n"));
  EXPECT_FALSE(dec("Zm\r\n9v"));
  EXPECT_FALSE(dec("Zm\t9v"));
  EXPECT_FALSE(dec(std::string_view("Zm9v\0AAA", 8)));
}

TEST(Base64url, RejectsImpossibleLength) {
  for (size_t n = 1; n < 40; n += 4) {
    EXPECT_FALSE(dec(std::string(n, 'A'))) << n;
  }
  EXPECT_FALSE(dec("Zm9vY"));
  EXPECT_TRUE(dec(""));
}

TEST(Base64url, RejectsNonCanonicalTrailingBits) {
  const std::string alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (size_t v = 0; v < 64; v++) {
    // One byte tail: second character carries 2 data bits and 4 padding bits.
    std::string two = std::string("Zm9v") + "Z" + alpha[v];
    EXPECT_EQ(dec(two), (v & 0x0f) == 0) << two;
    // Two byte tail: third character carries 4 data bits and 2 padding bits.
    std::string three = std::string("Zm") + alpha[v];
    EXPECT_EQ(dec(three), (v & 0x03) == 0) << three;
  }
  EXPECT_TRUE(dec("Zg"));
  EXPECT_FALSE(dec("Zh"));
  EXPECT_TRUE(dec("Zm8"));
  EXPECT_FALSE(dec("Zm9"));
}

TEST(Base64url, RandomRoundTrips) {
  std::mt19937 rng(12345);
  for (size_t n = 0; n < 300; n++) {
    for (int rep = 0; rep < 4; rep++) {
      std::string in(n, '\0');
      for (auto& c : in) c = static_cast<char>(rng());
      std::string e = enc(in);
      ASSERT_EQ(e, reference_encode(in)) << n;
      ASSERT_EQ(e.size(), base64url_encoded_len(n));
      std::string back;
      ASSERT_TRUE(dec(e, &back)) << e;
      ASSERT_EQ(back, in);
    }
  }
}

TEST(Base64url, EncodeToRawBuffer) {
  const unsigned char in[] = {0xfb, 0xff, 0x00, 'f', 'o'};
  char buf[16];
  std::memset(buf, '#', sizeof(buf));
  sess::base64url_encode_to(in, sizeof(in), buf);
  EXPECT_EQ(std::string(buf, base64url_encoded_len(sizeof(in))),
            enc(std::string_view(reinterpret_cast<const char*>(in), sizeof(in))));
  EXPECT_EQ(buf[base64url_encoded_len(sizeof(in))], '#');  // nothing written past the end
}

// decode_to gives what decode gives, writes exactly decoded_len bytes, and refuses the same
// inputs (random strings over the alphabet, '=' and '*', every length up to 40).
TEST(Base64url, DecodeToRawBufferMatchesDecode) {
  std::mt19937 rng(99);
  const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=*";
  size_t ok = 0;
  for (size_t n = 0; n <= 40; n++) {
    for (int rep = 0; rep < 200; rep++) {
      std::string in(n, 'A');
      for (auto& c : in) c = chars[rng() % (rep % 2 == 0 ? 64 : chars.size())];
      std::string want;
      const bool good = dec(in, &want);
      if (n % 4 == 1) {
        ASSERT_FALSE(good);
        unsigned char tmp[64];
        EXPECT_FALSE(sess::base64url_decode_to(in, tmp));
        continue;
      }
      unsigned char buf[64];
      std::memset(buf, 0xa5, sizeof(buf));
      const size_t len = sess::base64url_decoded_len(n);
      ASSERT_EQ(sess::base64url_decode_to(in, buf), good) << in;
      EXPECT_EQ(buf[len], 0xa5) << in;  // nothing written past the end
      if (good) {
        ok++;
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf), len), want) << in;
      }
    }
  }
  EXPECT_GT(ok, 1000u);
}

// Long values (16 characters at a time on CPUs with SSSE3, the rest by groups): every byte value
// at every position of valid encodings of every length 16..100 is refused exactly when it is
// outside the alphabet, and what decodes is what a bit-at-a-time reference decoder gives.
TEST(Base64url, EveryByteAtEveryPositionOfLongValues) {
  const std::string alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  auto reference_decode = [&](const std::string& in) {
    std::string bits;
    for (char c : in) {
      const size_t v = alpha.find(c);
      for (int b = 5; b >= 0; b--) bits.push_back((v >> b) & 1 ? '1' : '0');
    }
    std::string out;
    for (size_t i = 0; i + 8 <= bits.size(); i += 8) {
      out.push_back(static_cast<char>(std::stoi(bits.substr(i, 8), nullptr, 2)));
    }
    return out;
  };
  std::mt19937 rng(2026);
  for (size_t raw = 12; raw <= 75; raw++) {
    std::string in(raw, '\0');
    for (auto& c : in) c = static_cast<char>(rng());
    const std::string e = enc(in);
    const size_t whole = e.size() - e.size() % 4;  // (tail characters carry canonical bits)
    for (size_t pos = 0; pos < e.size(); pos++) {
      for (int c = 0; c < 256; c++) {
        std::string s = e;
        s[pos] = static_cast<char>(c);
        const bool in_alpha = alpha.find(static_cast<char>(c)) != std::string::npos;
        std::string back;
        const bool ok = dec(s, &back);
        if (!in_alpha) {
          ASSERT_FALSE(ok) << raw << " byte " << c << " at " << pos;
        } else if (pos < whole) {
          ASSERT_TRUE(ok) << raw << " byte " << c << " at " << pos;
          ASSERT_EQ(back, reference_decode(s)) << raw << " byte " << c << " at " << pos;
        }
      }
    }
  }
}
