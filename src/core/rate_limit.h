// Log-line rate limiting for lines that clients (or an outage) can cause on every request:
// at most `burst` lines per interval (default one), and the first line after a silence says how
// many were suppressed.
#pragma once

#include "common.h"

namespace sess {

class LogLimiter {
 public:
  explicit LogLimiter(uint64_t interval = 1, uint64_t burst = 1) noexcept
      : interval_(interval), burst_(burst ? burst : 1) {}

  // Call for every event at unix time now. True: log now, *suppressed = events not logged since
  // the previous logged one (suppressed may be nullptr). False: count it and stay silent.
  // The first event is always logged; so is an event at a time before the last logged one (a
  // clock set back does not silence the log). An interval of 0 logs every event.
  bool allow(uint64_t now, uint64_t* suppressed) noexcept;

 private:
  uint64_t interval_;
  uint64_t burst_;
  uint64_t in_window_ = 0;  // lines logged in the current interval
  uint64_t last_ = 0;
  bool logged_ = false;
  uint64_t count_ = 0;
};

}  // namespace sess
