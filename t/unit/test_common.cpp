// src/core/common.h: the byte helpers of the request path, against their plain definitions.
#include <gtest/gtest.h>

#include <string>

#include "common.h"

namespace {

// eq agrees with std::string_view equality for every length 0..max_len (the word loads overlap
// differently per length) and a one-bit difference, low and high, at every position.
template <typename Eq>
void expect_equality(Eq eq, size_t max_len) {
  for (size_t n = 0; n <= max_len; n++) {
    std::string a(n, 'x');
    for (size_t i = 0; i < n; i++) a[i] = static_cast<char>('a' + (i * 7) % 26);
    std::string b = a;
    EXPECT_TRUE(eq(a, b)) << n;
    for (size_t i = 0; i < n; i++) {
      std::string c = a;
      c[i] = static_cast<char>(c[i] ^ 0x01);
      EXPECT_FALSE(eq(a, c)) << n << " at " << i;
      c[i] = static_cast<char>(a[i] ^ 0x80);
      EXPECT_FALSE(eq(a, c)) << n << " at " << i << " (high bit)";
    }
    EXPECT_FALSE(eq(a, a + "y")) << n;
    EXPECT_FALSE(eq(a + "y", a)) << n;
  }
}

TEST(BytesEqual, AgreesWithStringViewEquality) {
  expect_equality([](const std::string& x, const std::string& y) {
    return sess::bytes_equal(x, y);
  }, 40);
  expect_equality([](const std::string& x, const std::string& y) {
    return x.size() == y.size() && sess::bytes_equal(x.data(), y.data(), x.size());
  }, 40);
}

// ct_equal (constant time): short, word tails and 32-byte rounds.
TEST(CtEqual, AgreesWithStringViewEquality) {
  expect_equality([](const std::string& x, const std::string& y) {
    return sess::ct_equal(x, y);
  }, 160);
}

// has_byte: exactly the strings with that byte, for every target byte, every length 0..24
// (bytes, half words, overlapping words), every byte value at every position, among fills that
// sit next to the target (c - 1, c + 1, c ^ 0x80) where a word test would borrow wrongly.
TEST(HasByte, ExactlyTheStringsWithIt) {
  EXPECT_FALSE(sess::has_byte("", '='));
  EXPECT_TRUE(sess::has_byte("a=b", '='));
  EXPECT_FALSE(sess::has_byte("session", '='));
  for (int target : {0, int{'='}, 0x7f, 0x80, 0xff, 1}) {
    const auto t = static_cast<unsigned char>(target);
    for (int f : {target - 1, target + 1, target ^ 0x80, int{'a'}}) {
      const char fill = static_cast<char>(f & 0xff);
      if (static_cast<unsigned char>(fill) == t) continue;
      for (size_t n = 0; n <= 24; n++) {
        const std::string clean(n, fill);
        ASSERT_FALSE(sess::has_byte(clean, t)) << n << " fill " << f << " target " << target;
        for (size_t pos = 0; pos < n; pos++) {
          for (int c = 0; c < 256; c++) {
            std::string s = clean;
            s[pos] = static_cast<char>(c);
            ASSERT_EQ(sess::has_byte(s, t), c == target)
                << n << " fill " << f << " byte " << c << " at " << pos << " target " << target;
          }
        }
      }
    }
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
