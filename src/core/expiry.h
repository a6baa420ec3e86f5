// Session expiry policy: absolute lifetime, optional idle timeout, rolling renewal.
#pragma once

#include "envelope.h"

namespace sess {

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

// Valid while now < expires_at(); FutureDated if created or refreshed is more than max_skew ahead
// of now, or refreshed < created.
Verdict expiry_check(const ExpiryPolicy& p, const Times& t, const Clock& clock) noexcept;

// Unix time the session ends: min(created + lifetime, refreshed + idle when idle is on).
uint64_t expiry_expires_at(const ExpiryPolicy& p, const Times& t) noexcept;

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
bool expiry_needs_renew(const ExpiryPolicy& p, const Times& t, const Clock& clock) noexcept;

}  // namespace sess
