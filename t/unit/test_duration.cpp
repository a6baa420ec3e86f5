// Unit tests for duration.h: nginx-style durations in seconds (ngx_parse_time with is_sec=1).
#include "duration.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace {

constexpr int64_t kMinute = 60;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kWeek = 7 * kDay;
constexpr int64_t kMonth = 30 * kDay;
constexpr int64_t kYear = 365 * kDay;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

struct Accepted {
  const char* text;
  int64_t seconds;
};

// Every form nginx's ngx_parse_time(is_sec=1) accepts that is not one of its accidents.
const Accepted kAccepted[] = {
    {"0", 0},
    {"1", 1},
    {"30", 30},
    {"007", 7},
    {"0s", 0},
    {"30s", 30},
    {"10m", 10 * kMinute},
    {"2h", 2 * kHour},
    {"31d", 31 * kDay},
    {"1w", kWeek},
    {"1M", kMonth},
    {"1y", kYear},
    {"1h30m", kHour + 30 * kMinute},
    {"1h30", kHour + 30},  // a bare number after larger units is seconds
    {"1m30", kMinute + 30},
    {"1d12h", kDay + 12 * kHour},
    {"1y1M1w1d1h1m1s", kYear + kMonth + kWeek + kDay + kHour + kMinute + 1},
    {"1y1s", kYear + 1},
    {"2w3", 2 * kWeek + 3},
    {"90m", 90 * kMinute},  // no carry rule: 90 minutes is fine
    {"0h0m0s", 0},
    {"9223372036854775807", kMax},
    {"9223372036854775807s", kMax},
};

TEST(Duration, Accepted) {
  for (const auto& c : kAccepted) {
    int64_t out = -42;
    EXPECT_TRUE(sess::parse_duration(c.text, &out)) << c.text;
    EXPECT_EQ(out, c.seconds) << c.text;
  }
}

// Every refused form, and the places where nginx is lax and this parser is not.
const char* const kRefused[] = {
    "",
    " ",
    "s",
    "m",
    "h30m",    // a unit without digits
    "1hm",     // nginx: 3600 (a unit without digits after another group)
    "1h 30m",  // nginx: 5400 (spaces after a unit are skipped)
    "30 ",     // nginx: 30 (a space after digits ends the value)
    " 30",
    "1 h",
    "1s30",    // nginx: 31 (a bare number after seconds)
    "1s1",
    "100ms",   // milliseconds are not seconds
    "1ms",
    "1h1ms",
    "ms",
    "1m1ms",
    "1s1s",    // repeated
    "1h1h",
    "1m1h",    // out of order
    "1s1m",
    "1d1w",
    "1M1y",
    "1h1d",
    "1w1M",
    "-1",      // no sign
    "+1",
    "-1s",
    "1x",      // unknown units
    "1Y",
    "1D",
    "1H",
    "1S",
    "1mo",
    "1min",
    "1sec",
    "1.5h",
    "1,5h",
    "0x10",
    "1e3",
    "1h\n",
    "1h\t",
    "\t1h",
    "1h;",
    "off",
    "forever",
    "9223372036854775808",          // > INT64_MAX
    "99999999999999999999",
    "9223372036854775808s",
    "9223372036854775807m",         // * 60 overflows
    "153722867280912931m",          // 153722867280912931 * 60 > INT64_MAX
    "106751991167301d",             // * 86400 > INT64_MAX
    "292471208678y",                // * 31536000 > INT64_MAX
    "9223372036854775807s1",        // refused for the order anyway
    "1y9223372036854775807",        // the sum overflows
    "292471208677y1000d",           // the sum overflows
};

TEST(Duration, Refused) {
  for (const char* text : kRefused) {
    int64_t out = -42;
    EXPECT_FALSE(sess::parse_duration(text, &out)) << "\"" << text << "\"";
    EXPECT_EQ(out, -42) << "out must be untouched for \"" << text << "\"";
  }
  const std::string nul("1h\0", 3);
  int64_t out = -42;
  EXPECT_FALSE(sess::parse_duration(nul, &out));
  EXPECT_FALSE(sess::parse_duration(std::string_view(), &out));
}

TEST(Duration, OverflowBoundaries) {
  int64_t out = 0;
  // The largest multiple that fits, and one more.
  const int64_t max_min = kMax / 60;
  EXPECT_TRUE(sess::parse_duration(std::to_string(max_min) + "m", &out));
  EXPECT_EQ(out, max_min * 60);
  EXPECT_FALSE(sess::parse_duration(std::to_string(max_min + 1) + "m", &out));
  const int64_t max_year = kMax / kYear;
  EXPECT_TRUE(sess::parse_duration(std::to_string(max_year) + "y", &out));
  EXPECT_EQ(out, max_year * kYear);
  EXPECT_FALSE(sess::parse_duration(std::to_string(max_year + 1) + "y", &out));
  // A sum that reaches INT64_MAX exactly, and one past it.
  const int64_t rest = kMax - max_year * kYear;
  EXPECT_TRUE(sess::parse_duration(std::to_string(max_year) + "y" + std::to_string(rest), &out));
  EXPECT_EQ(out, kMax);
  EXPECT_FALSE(
      sess::parse_duration(std::to_string(max_year) + "y" + std::to_string(rest + 1), &out));
}

// Every pair of units: accepted exactly when the first is larger than the second.
TEST(Duration, UnitOrder) {
  const char units[] = "yMwdhms";
  const int64_t scale[] = {kYear, kMonth, kWeek, kDay, kHour, kMinute, 1};
  for (int a = 0; a < 7; a++) {
    for (int b = 0; b < 7; b++) {
      const std::string text = std::string("2") + units[a] + "3" + units[b];
      int64_t out = -1;
      const bool ok = sess::parse_duration(text, &out);
      EXPECT_EQ(ok, a < b) << text;
      if (ok) {
        EXPECT_EQ(out, 2 * scale[a] + 3 * scale[b]) << text;
      }
    }
  }
}

}  // namespace
