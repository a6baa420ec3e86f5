// Unit tests for rate_limit.h: one log line per interval, with the count of suppressed events.
#include "rate_limit.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

using sess::LogLimiter;

namespace {

struct Step {
  uint64_t now;
  bool logged;
  uint64_t suppressed;  // checked only when logged
};

void run(LogLimiter& l, const std::vector<Step>& steps) {
  for (size_t i = 0; i < steps.size(); i++) {
    uint64_t suppressed = 12345;
    const bool logged = l.allow(steps[i].now, &suppressed);
    EXPECT_EQ(logged, steps[i].logged) << "step " << i << " at " << steps[i].now;
    if (logged) {
      EXPECT_EQ(suppressed, steps[i].suppressed) << "step " << i;
    } else {
      EXPECT_EQ(suppressed, 12345u) << "step " << i << ": untouched when silent";
    }
  }
}

}  // namespace

TEST(LogLimiter, OneLineASecond) {
  LogLimiter l;  // interval 1 s
  run(l, {
             {100, true, 0},   // the first event is logged
             {100, false, 0},
             {100, false, 0},
             {101, true, 2},   // next second: says how many were dropped
             {101, false, 0},
             {105, true, 1},
             {106, true, 0},   // nothing suppressed in between
         });
}

TEST(LogLimiter, FirstEventAtTimeZero) {
  LogLimiter l(10);
  run(l, {{0, true, 0}, {0, false, 0}, {9, false, 0}, {10, true, 2}});
}

TEST(LogLimiter, LongerInterval) {
  LogLimiter l(60);
  run(l, {
             {1000, true, 0},
             {1001, false, 0},
             {1059, false, 0},
             {1060, true, 2},   // exactly one interval later
             {1119, false, 0},
             {1120, true, 1},
         });
}

TEST(LogLimiter, ZeroIntervalLogsEverything) {
  LogLimiter l(0);
  run(l, {{5, true, 0}, {5, true, 0}, {5, true, 0}, {6, true, 0}});
}

TEST(LogLimiter, ClockSetBackDoesNotSilence) {
  LogLimiter l(60);
  run(l, {
             {10000, true, 0},
             {10001, false, 0},
             {500, true, 1},    // the clock went back: log at once
             {501, false, 0},
             {560, true, 1},
         });
}

TEST(LogLimiter, ManySuppressed) {
  LogLimiter l(1);
  uint64_t s = 0;
  ASSERT_TRUE(l.allow(1, &s));
  for (int i = 0; i < 100000; i++) ASSERT_FALSE(l.allow(1, &s));
  ASSERT_TRUE(l.allow(2, &s));
  EXPECT_EQ(s, 100000u);
}

TEST(LogLimiter, NullSuppressedPointer) {
  LogLimiter l(1);
  EXPECT_TRUE(l.allow(1, nullptr));
  EXPECT_FALSE(l.allow(1, nullptr));
  uint64_t s = 0;
  EXPECT_TRUE(l.allow(2, &s));
  EXPECT_EQ(s, 1u);
}

TEST(LogLimiter, FarFuture) {
  LogLimiter l(UINT64_MAX);
  uint64_t s = 0;
  EXPECT_TRUE(l.allow(UINT64_MAX - 1, &s));
  EXPECT_FALSE(l.allow(UINT64_MAX, &s));  // no overflow in now - last
  LogLimiter m(1);
  EXPECT_TRUE(m.allow(UINT64_MAX, &s));
  EXPECT_FALSE(m.allow(UINT64_MAX, &s));
}

TEST(LogLimiterBurst, UpToBurstLinesPerIntervalThenOneWithTheCount) {
  sess::LogLimiter l(1, 3);
  uint64_t more = 99;
  EXPECT_TRUE(l.allow(100, &more));
  EXPECT_EQ(more, 0u);
  EXPECT_TRUE(l.allow(100, &more));
  EXPECT_TRUE(l.allow(100, &more));
  EXPECT_FALSE(l.allow(100, &more));
  EXPECT_FALSE(l.allow(100, &more));
  EXPECT_TRUE(l.allow(101, &more));
  EXPECT_EQ(more, 2u);
  EXPECT_TRUE(l.allow(101, &more));
  EXPECT_EQ(more, 0u);
}
