// Log-line rate limiting (see rate_limit.h).
#include "rate_limit.h"

namespace sess {

bool LogLimiter::allow(uint64_t now, uint64_t* suppressed) noexcept {
  // A clock that went backwards (now < last_) logs at once rather than staying silent until it
  // catches up again.
  if (logged_ && now >= last_ && now - last_ < interval_) {
    if (in_window_ < burst_) {  // more lines allowed in this interval
      in_window_++;
      if (suppressed != nullptr) *suppressed = 0;
      return true;
    }
    if (count_ != UINT64_MAX) count_++;
    return false;
  }
  if (suppressed != nullptr) *suppressed = count_;
  count_ = 0;
  last_ = now;
  in_window_ = 1;
  logged_ = true;
  return true;
}

}  // namespace sess
