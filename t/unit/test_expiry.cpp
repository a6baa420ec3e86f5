#include <gtest/gtest.h>

#include <limits>

#include "expiry.h"

using sess::Clock;
using sess::expiry_check;
using sess::expiry_expires_at;
using sess::expiry_needs_renew;
using sess::expiry_ttl;
using sess::ExpiryPolicy;
using sess::Times;
using sess::Verdict;

namespace {

class FakeClock : public Clock {
 public:
  explicit FakeClock(uint64_t t) : t_(t) {}
  uint64_t now() const noexcept override { return t_; }
  void set(uint64_t t) { t_ = t; }

 private:
  uint64_t t_;
};

constexpr uint64_t kT0 = 1700000000;
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

ExpiryPolicy policy(uint64_t lifetime, uint64_t idle = 0, uint64_t renew = 60, uint64_t skew = 60) {
  ExpiryPolicy p;
  p.lifetime = lifetime;
  p.idle = idle;
  p.renew = renew;
  p.max_skew = skew;
  return p;
}

}  // namespace

TEST(Expiry, Defaults) {
  ExpiryPolicy p;
  EXPECT_EQ(p.lifetime, 31u * 86400);
  EXPECT_EQ(p.idle, 0u);
  EXPECT_EQ(p.renew, 60u);
  EXPECT_EQ(p.max_skew, 60u);
}

TEST(Expiry, LifetimeBoundary) {
  const ExpiryPolicy p = policy(3600);
  const Times t{kT0, kT0};
  EXPECT_EQ(expiry_expires_at(p, t), kT0 + 3600);
  FakeClock c(kT0);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Valid);
  EXPECT_EQ(expiry_ttl(p, t, c), 3600u);
  c.set(kT0 + 3599);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Valid);
  EXPECT_EQ(expiry_ttl(p, t, c), 1u);
  c.set(kT0 + 3600);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Expired);
  EXPECT_EQ(expiry_ttl(p, t, c), 0u);
  c.set(kT0 + 100000);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Expired);
  EXPECT_EQ(expiry_ttl(p, t, c), 0u);
}

TEST(Expiry, LifetimeCountsFromCreatedNotRefreshed) {
  const ExpiryPolicy p = policy(3600);
  const Times t{kT0, kT0 + 3000};  // refreshed recently, but created an hour ago
  EXPECT_EQ(expiry_expires_at(p, t), kT0 + 3600);
  FakeClock c(kT0 + 3600);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Expired);
}

TEST(Expiry, IdleTimeout) {
  const ExpiryPolicy p = policy(86400, 600);
  const Times t{kT0, kT0 + 1000};
  EXPECT_EQ(expiry_expires_at(p, t), kT0 + 1600);
  FakeClock c(kT0 + 1599);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Valid);
  EXPECT_EQ(expiry_ttl(p, t, c), 1u);
  c.set(kT0 + 1600);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Expired);
  EXPECT_EQ(expiry_ttl(p, t, c), 0u);
  // Idle off: only the lifetime counts.
  const ExpiryPolicy off = policy(86400, 0);
  EXPECT_EQ(expiry_check(off, t, c), Verdict::Valid);
  EXPECT_EQ(expiry_expires_at(off, t), kT0 + 86400);
}

TEST(Expiry, LifetimeWinsOverIdleWhenEarlier) {
  const ExpiryPolicy p = policy(1000, 600);
  const Times t{kT0, kT0 + 900};
  EXPECT_EQ(expiry_expires_at(p, t), kT0 + 1000);  // min(created+lifetime, refreshed+idle)
  FakeClock c(kT0 + 999);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Valid);
  c.set(kT0 + 1000);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Expired);
}

TEST(Expiry, ZeroLifetimeIsAlwaysExpired) {
  const ExpiryPolicy p = policy(0);
  const Times t{kT0, kT0};
  FakeClock c(kT0);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Expired);
  EXPECT_EQ(expiry_ttl(p, t, c), 0u);
}

TEST(Expiry, RenewBoundary) {
  const ExpiryPolicy p = policy(86400, 0, 60);
  const Times t{kT0, kT0 + 100};
  FakeClock c(kT0 + 100);
  EXPECT_FALSE(expiry_needs_renew(p, t, c));
  c.set(kT0 + 159);
  EXPECT_FALSE(expiry_needs_renew(p, t, c));
  c.set(kT0 + 160);
  EXPECT_TRUE(expiry_needs_renew(p, t, c));
  c.set(kT0 + 5000);
  EXPECT_TRUE(expiry_needs_renew(p, t, c));
  // Refreshed slightly ahead of this clock (within the skew): no renewal, no wrap-around.
  c.set(kT0 + 90);
  EXPECT_FALSE(expiry_needs_renew(p, t, c));
  // renew 0: every request re-issues.
  c.set(kT0 + 100);
  EXPECT_TRUE(expiry_needs_renew(policy(86400, 0, 0), t, c));
}

TEST(Expiry, FutureDated) {
  const ExpiryPolicy p = policy(86400, 0, 60, 60);
  FakeClock c(kT0);
  EXPECT_EQ(expiry_check(p, Times{kT0 + 60, kT0 + 60}, c), Verdict::Valid);  // at the limit
  EXPECT_EQ(expiry_check(p, Times{kT0 + 61, kT0 + 61}, c), Verdict::FutureDated);
  EXPECT_EQ(expiry_check(p, Times{kT0, kT0 + 61}, c), Verdict::FutureDated);
  EXPECT_EQ(expiry_check(p, Times{kMax, kMax}, c), Verdict::FutureDated);
  // No skew allowed.
  const ExpiryPolicy strict = policy(86400, 0, 60, 0);
  EXPECT_EQ(expiry_check(strict, Times{kT0, kT0}, c), Verdict::Valid);
  EXPECT_EQ(expiry_check(strict, Times{kT0, kT0 + 1}, c), Verdict::FutureDated);
}

TEST(Expiry, RefreshedBeforeCreated) {
  const ExpiryPolicy p = policy(86400);
  FakeClock c(kT0);
  EXPECT_EQ(expiry_check(p, Times{kT0 - 10, kT0 - 11}, c), Verdict::FutureDated);
  EXPECT_EQ(expiry_check(p, Times{kT0 - 10, kT0 - 10}, c), Verdict::Valid);
  // Checked even if the session would be expired anyway.
  EXPECT_EQ(expiry_check(p, Times{1000, 999}, c), Verdict::FutureDated);
}

TEST(Expiry, NoOverflow) {
  FakeClock c(kMax - 10);
  // created + lifetime would wrap: treated as "far future", not "long ago".
  const ExpiryPolicy p = policy(kMax, kMax, 60, kMax);
  const Times t{kMax - 20, kMax - 20};
  EXPECT_EQ(expiry_expires_at(p, t), kMax);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Valid);
  EXPECT_EQ(expiry_ttl(p, t, c), 10u);
  EXPECT_EQ(expiry_check(p, Times{kMax, kMax}, c), Verdict::Valid);
  c.set(kMax);
  EXPECT_EQ(expiry_check(p, t, c), Verdict::Expired);  // saturated expiry is still an end
}
