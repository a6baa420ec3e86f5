#include "expiry.h"

#include <limits>

namespace sess {

namespace {

uint64_t sat_mul(uint64_t a, uint64_t b) noexcept {
  return a != 0 && b > std::numeric_limits<uint64_t>::max() / a
             ? std::numeric_limits<uint64_t>::max()
             : a * b;
}

}  // namespace

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

}  // namespace sess
