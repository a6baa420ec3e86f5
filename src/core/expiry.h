// Session expiry policy: absolute lifetime, optional idle timeout, rolling renewal.
#pragma once

#include "envelope.h"

#include <limits>

namespace sess {

namespace expiry_detail {
// a + b, clamped at the largest time instead of wrapping (timestamps are authenticated, but a
// huge policy value must not turn "far future" into "long ago").
inline uint64_t sat_add(uint64_t a, uint64_t b) noexcept {
  return b > std::numeric_limits<uint64_t>::max() - a ? std::numeric_limits<uint64_t>::max()
                                                      : a + b;
}
}  // namespace expiry_detail

class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t now() const noexcept = 0;  // unix seconds
};

struct ExpiryPolicy {
  uint64_t lifetime = 31 * 86400;  // session_lifetime
  uint64_t idle = 0;               // session_idle_timeout, 0 = off
  uint64_t renew = 60;             // session_renew
  uint64_t max_skew = 60;          // timestamps further in the future are rejected
};

enum class Verdict : uint8_t { Valid, Expired, FutureDated };

// Unix time the session ends: min(created + lifetime, refreshed + idle when idle is on).
inline uint64_t expiry_expires_at(const ExpiryPolicy& p, const Times& t) noexcept {
  uint64_t at = expiry_detail::sat_add(t.created, p.lifetime);
  if (p.idle != 0) {
    uint64_t idle_at = expiry_detail::sat_add(t.refreshed, p.idle);
    if (idle_at < at) at = idle_at;
  }
  return at;
}

// Valid while now < expires_at(); FutureDated if created or refreshed is more than max_skew ahead
// of now, or refreshed < created. (Inline, as expiry_needs_renew: on every request.)
inline Verdict expiry_check(const ExpiryPolicy& p, const Times& t, const Clock& clock) noexcept {
  const uint64_t now = clock.now();
  const uint64_t horizon = expiry_detail::sat_add(now, p.max_skew);
  if (t.created > horizon || t.refreshed > horizon || t.refreshed < t.created) {
    return Verdict::FutureDated;
  }
  return now < expiry_expires_at(p, t) ? Verdict::Valid : Verdict::Expired;
}

// Seconds left (0 if expired): the TTL of the server-side record.
uint64_t expiry_ttl(const ExpiryPolicy& p, const Times& t, const Clock& clock) noexcept;

// TTL of a server-side record: expiry_ttl for a logged-in session; a record without a logged-in
// user (an anonymous session_set) lives at most the idle timeout when one is set, else at most
// kAnonymousRenewFactor * renew (at least kAnonymousMinTtl), so that anonymous traffic cannot
// fill Redis with month-long records. Renewal extends it like any session while it is used.
constexpr uint64_t kAnonymousRenewFactor = 10;
constexpr uint64_t kAnonymousMinTtl = 600;
uint64_t expiry_record_ttl(const ExpiryPolicy& p, const Times& t, const Clock& clock,
                           bool logged_in) noexcept;

// True when the cookie should be re-issued: now - refreshed >= renew.
inline bool expiry_needs_renew(const ExpiryPolicy& p, const Times& t, const Clock& clock) noexcept {
  const uint64_t now = clock.now();
  // A refresh time slightly ahead of this clock (allowed skew) is as fresh as it gets.
  return now >= t.refreshed && now - t.refreshed >= p.renew;
}

}  // namespace sess
