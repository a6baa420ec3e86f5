// src/core/common.h: the byte helpers of the request path, against their plain definitions.
#include <gtest/gtest.h>

#include <string>

#include "common.h"

namespace {

// bytes_equal agrees with std::string_view equality for every length up to 40 and a difference
// at every position (the word loads overlap differently per length).
TEST(BytesEqual, AgreesWithStringViewEquality) {
  for (size_t n = 0; n <= 40; n++) {
    std::string a(n, 'x');
    for (size_t i = 0; i < n; i++) a[i] = static_cast<char>('a' + (i * 7) % 26);
    std::string b = a;
    EXPECT_TRUE(sess::bytes_equal(a, b)) << n;
    EXPECT_TRUE(sess::bytes_equal(a.data(), b.data(), n)) << n;
    for (size_t i = 0; i < n; i++) {
      std::string c = a;
      c[i] = static_cast<char>(c[i] ^ 0x01);
      EXPECT_FALSE(sess::bytes_equal(a, c)) << n << " at " << i;
      c[i] = static_cast<char>(a[i] ^ 0x80);
      EXPECT_FALSE(sess::bytes_equal(a, c)) << n << " at " << i << " (high bit)";
    }
    EXPECT_FALSE(sess::bytes_equal(a, a + "y")) << n;
  }
}

// ct_equal (constant time, word-wise): the same answer as ==, every length 0..100 (short, word
// tails, 32-byte rounds), a difference of one bit at every position, low and high.
TEST(CtEqual, AgreesWithStringViewEquality) {
  for (size_t n = 0; n <= 100; n++) {
    std::string a(n, 'x');
    for (size_t i = 0; i < n; i++) a[i] = static_cast<char>('a' + (i * 11) % 26);
    std::string b = a;
    EXPECT_TRUE(sess::ct_equal(a, b)) << n;
    for (size_t i = 0; i < n; i++) {
      std::string c = a;
      c[i] = static_cast<char>(c[i] ^ 0x01);
      EXPECT_FALSE(sess::ct_equal(a, c)) << n << " at " << i;
      c[i] = static_cast<char>(a[i] ^ 0x80);
      EXPECT_FALSE(sess::ct_equal(a, c)) << n << " at " << i << " (high bit)";
    }
    EXPECT_FALSE(sess::ct_equal(a, a + "y")) << n;
    EXPECT_FALSE(sess::ct_equal(a + "y", a)) << n;
  }
}

// has_ctl: exactly the bytes below 0x20 and DEL, at any position; bytes >= 0x80 (UTF-8) are not.
TEST(HasCtl, ExactlyC0AndDel) {
  for (int c = 0; c < 256; c++) {
    const bool ctl = c < 0x20 || c == 0x7f;
    for (size_t pos = 0; pos < 10; pos++) {
      std::string s(10, 'a');
      s[pos] = static_cast<char>(c);
      EXPECT_EQ(sess::has_ctl(s), ctl) << c << " at " << pos;
    }
  }
  EXPECT_FALSE(sess::has_ctl(""));
  EXPECT_FALSE(sess::has_ctl("alice \xc3\xa9"));
  // Every length 0..40 (bytes, half words, overlapping words), every byte value at every
  // position, among bytes that sit next to the thresholds (0x20, 0x7e, 0x80, 0xff).
  for (char fill : {' ', '~', '\x80', '\xff', 'a'}) {
    for (size_t n = 0; n <= 40; n++) {
      const std::string clean(n, fill);
      EXPECT_FALSE(sess::has_ctl(clean)) << n << " fill " << int(fill);
      for (size_t pos = 0; pos < n; pos++) {
        for (int c = 0; c < 256; c++) {
          std::string s = clean;
          s[pos] = static_cast<char>(c);
          ASSERT_EQ(sess::has_ctl(s), c < 0x20 || c == 0x7f)
              << n << " fill " << int(fill) << " byte " << c << " at " << pos;
        }
      }
    }
  }
}

}  // namespace
