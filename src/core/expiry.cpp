#include "expiry.h"

#include <limits>

namespace sess {

namespace {

// a + b, clamped at the largest time instead of wrapping (timestamps are authenticated, but a
// huge policy value must not turn "far future" into "long ago").
uint64_t sat_add(uint64_t a, uint64_t b) noexcept {
  return b > std::numeric_limits<uint64_t>::max() - a ? std::numeric_limits<uint64_t>::max()
                                                      : a + b;
}

uint64_t sat_mul(uint64_t a, uint64_t b) noexcept {
  return a != 0 && b > std::numeric_limits<uint64_t>::max() / a
             ? std::numeric_limits<uint64_t>::max()
             : a * b;
}

}  // namespace

uint64_t expiry_expires_at(const ExpiryPolicy& p, const Times& t) noexcept {
  uint64_t at = sat_add(t.created, p.lifetime);
  if (p.idle != 0) {
    uint64_t idle_at = sat_add(t.refreshed, p.idle);
    if (idle_at < at) at = idle_at;
  }
  return at;
}

Verdict expiry_check(const ExpiryPolicy& p, const Times& t, const Clock& clock) noexcept {
  const uint64_t now = clock.now();
  const uint64_t horizon = sat_add(now, p.max_skew);
  if (t.created > horizon || t.refreshed > horizon || t.refreshed < t.created) {
    return Verdict::FutureDated;
  }
  return now < expiry_expires_at(p, t) ? Verdict::Valid : Verdict::Expired;
}

uint64_t expiry_ttl(const ExpiryPolicy& p, const Times& t, const Clock& clock) noexcept {
  const uint64_t now = clock.now();
  const uint64_t at = expiry_expires_at(p, t);
  return at > now ? at - now : 0;
}

uint64_t expiry_record_ttl(const ExpiryPolicy& p, const Times& t, const Clock& clock,
                           bool logged_in) noexcept {
  const uint64_t ttl = expiry_ttl(p, t, clock);
  if (logged_in) return ttl;
  uint64_t cap = p.idle;
  if (cap == 0) {
    cap = sat_mul(kAnonymousRenewFactor, p.renew);
    if (cap < kAnonymousMinTtl) cap = kAnonymousMinTtl;
  }
  return ttl < cap ? ttl : cap;
}

bool expiry_needs_renew(const ExpiryPolicy& p, const Times& t, const Clock& clock) noexcept {
  const uint64_t now = clock.now();
  // A refresh time slightly ahead of this clock (allowed skew) is as fresh as it gets.
  return now >= t.refreshed && now - t.refreshed >= p.renew;
}

}  // namespace sess
