#include <gtest/gtest.h>

#include <limits>

#include "expiry.h"

using sess::Clock;
using sess::expiry_check;
using sess::expiry_expires_at;
using sess::expiry_needs_renew;
using sess::expiry_record_ttl;
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

TEST(ExpiryRecordTtl, LoggedInIsTheSessionTtl) {
  FakeClock c(kT0 + 100);
  for (const ExpiryPolicy& p : {policy(31 * 86400), policy(86400, 1800), policy(3600, 0, 1)}) {
    for (const Times& t : {Times{kT0, kT0}, Times{kT0, kT0 + 100}, Times{kT0 - 5000, kT0}}) {
      EXPECT_EQ(expiry_record_ttl(p, t, c, true), expiry_ttl(p, t, c));
    }
  }
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400), Times{kT0 + 100, kT0 + 100}, c, true),
            31u * 86400);
}

TEST(ExpiryRecordTtl, AnonymousWithIdleTimeoutLivesAtMostTheIdleTimeout) {
  const Times t{kT0, kT0};
  FakeClock c(kT0);
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 1800), t, c, false), 1800u);
  // Idle timeout above 10 x renew: the idle timeout, not the renew bound, applies.
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 7200, 60), t, c, false), 7200u);
  // Idle timeout below the anonymous minimum: still only the idle timeout.
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 30, 60), t, c, false), 30u);
  // Refreshed ahead of this clock (allowed skew): never more than the idle timeout from now.
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 1800), Times{kT0, kT0 + 50}, c, false), 1800u);
  // Some idle time used up: what is left.
  c.set(kT0 + 800);
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 1800), t, c, false), 1000u);
}

TEST(ExpiryRecordTtl, AnonymousWithoutIdleTimeoutLivesTenRenewals) {
  const Times t{kT0, kT0};
  FakeClock c(kT0);
  EXPECT_EQ(sess::kAnonymousRenewFactor, 10u);
  EXPECT_EQ(sess::kAnonymousMinTtl, 600u);
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 0, 300), t, c, false), 3000u);
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 0, 60), t, c, false), 600u);  // 10 x 60
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 0, 61), t, c, false), 610u);
  // At least kAnonymousMinTtl: short or zero renew intervals.
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 0, 59), t, c, false), 600u);
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 0, 1), t, c, false), 600u);
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 0, 0), t, c, false), 600u);
  // The bound counts from now (renewal extends it while the session is used).
  c.set(kT0 + 100000);
  EXPECT_EQ(expiry_record_ttl(policy(31 * 86400, 0, 60), t, c, false), 600u);
}

TEST(ExpiryRecordTtl, AnonymousIsCappedByTheLifetime) {
  FakeClock c(kT0 + 3500);
  const Times t{kT0, kT0 + 3500};
  EXPECT_EQ(expiry_record_ttl(policy(3600, 0, 60), t, c, false), 100u);     // not 600
  EXPECT_EQ(expiry_record_ttl(policy(3600, 1800, 60), t, c, false), 100u);  // not 1800
  EXPECT_EQ(expiry_record_ttl(policy(100, 0, 60), Times{kT0, kT0}, FakeClock(kT0), false),
            100u);
  // Expired: no time left either way.
  c.set(kT0 + 3600);
  EXPECT_EQ(expiry_record_ttl(policy(3600, 0, 60), t, c, false), 0u);
  EXPECT_EQ(expiry_record_ttl(policy(3600, 0, 60), t, c, true), 0u);
}

TEST(ExpiryRecordTtl, NoOverflow) {
  FakeClock c(kT0);
  const Times t{kT0, kT0};
  // 10 x renew would wrap: saturates instead of becoming a tiny bound.
  EXPECT_EQ(expiry_record_ttl(policy(kMax, 0, kMax / 4), t, c, false), kMax - kT0);
  EXPECT_EQ(expiry_record_ttl(policy(1000, 0, kMax), t, c, false), 1000u);
  EXPECT_EQ(expiry_record_ttl(policy(kMax, kMax, 60), t, c, false), kMax - kT0);
}
