// Unit tests for metrics.h: the registry's layout, the exposition text (checked line by line,
// and for the conventions Prometheus expects: names, _total, le buckets, HELP/TYPE once per
// family), and the classifications the glue counts by.
#include "metrics.h"

#include "base64url.h"
#include "crypto.h"
#include "envelope.h"
#include "redis_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using sess::Metric;
using sess::MetricType;

namespace {

std::string format(const std::vector<uint64_t>& sums) {
  sess::pstring out;
  sess::metrics_format(sums.data(), out);
  return std::string(out);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// name{labels} -> value, for the sample lines.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  for (const std::string& l : lines_of(text)) {
    if (l.empty() || l[0] == '#') continue;
    size_t sp = l.rfind(' ');
    out[l.substr(0, sp)] = l.substr(sp + 1);
  }
  return out;
}

constexpr size_t kFamilies = static_cast<size_t>(Metric::kCount);

}  // namespace

TEST(Metrics, LayoutMatchesTheDescriptions) {
  size_t base = 0;
  for (size_t m = 0; m < kFamilies; m++) {
    const sess::MetricFamily& f = sess::metric_family(static_cast<Metric>(m));
    EXPECT_EQ(sess::metric_base(static_cast<Metric>(m)), base) << f.name;
    size_t slots;
    if (f.type == MetricType::Histogram) {
      EXPECT_EQ(f.labels[0].count, 0u) << f.name;
      slots = f.bounds + 2;
    } else {
      slots = (f.labels[0].count ? f.labels[0].count : 1) *
              (f.labels[1].count ? f.labels[1].count : 1);
      if (f.labels[1].count) {
        EXPECT_GT(f.labels[0].count, 0u) << f.name;
      }
    }
    EXPECT_EQ(sess::kFamilySlots[m], slots) << f.name;
    base += slots;
  }
  EXPECT_EQ(base, sess::kMetricSlots);
  // The enums the glue passes as label indexes are the label lists, in order.
  const auto& status = sess::metric_family(Metric::Requests).labels[0];
  ASSERT_EQ(status.count, 5u);
  EXPECT_EQ(status.values[static_cast<size_t>(sess::LoadStatus::Valid)], "valid");
  EXPECT_EQ(status.values[static_cast<size_t>(sess::LoadStatus::Error)], "error");
  const auto& reasons = sess::metric_family(Metric::CookiesRejected).labels[0];
  ASSERT_EQ(reasons.count, static_cast<size_t>(sess::RejectReason::kCount));
  EXPECT_EQ(reasons.values[static_cast<size_t>(sess::RejectReason::UnknownKey)], "unknown_key");
  EXPECT_EQ(reasons.values[static_cast<size_t>(sess::RejectReason::BadRecord)], "bad_record");
  const auto& logins = sess::metric_family(Metric::Logins).labels[0];
  EXPECT_EQ(logins.values[static_cast<size_t>(sess::LoginResult::CrossOrigin)], "cross_origin");
  EXPECT_EQ(logins.values[static_cast<size_t>(sess::LoginResult::StoreError)], "store_error");
  const auto& lookups = sess::metric_family(Metric::CacheLookups).labels[0];
  // (load() passes CacheStatus - 1: Hit, Miss, Bypass.)
  EXPECT_EQ(lookups.values[static_cast<size_t>(sess::CacheStatus::Hit) - 1], "hit");
  EXPECT_EQ(lookups.values[static_cast<size_t>(sess::CacheStatus::Bypass) - 1], "bypass");
  const auto& redirects = sess::metric_family(Metric::RedisRedirects).labels[0];
  EXPECT_EQ(redirects.values[0], "moved");
  EXPECT_EQ(redirects.values[1], "ask");
}

TEST(Metrics, NamesFollowPrometheusConventions) {
  const std::regex name("nginx_session_[a-z][a-z0-9_]*[a-z0-9]");
  const std::regex label("[a-z][a-z0-9_]*");
  std::set<std::string> seen;
  for (size_t m = 0; m < kFamilies; m++) {
    const sess::MetricFamily& f = sess::metric_family(static_cast<Metric>(m));
    std::string n(f.name);
    EXPECT_TRUE(std::regex_match(n, name)) << n;
    EXPECT_TRUE(seen.insert(n).second) << n;
    EXPECT_FALSE(f.help.empty()) << n;
    EXPECT_EQ(f.help.find('\n'), std::string_view::npos) << n;
    EXPECT_EQ(f.help.find('\\'), std::string_view::npos) << n;
    if (f.type == MetricType::Counter) {
      EXPECT_EQ(n.substr(n.size() - 6), "_total") << n;
    } else {
      EXPECT_EQ(n.substr(n.size() - 8), "_seconds") << n;
      for (size_t i = 1; i < f.bounds; i++) EXPECT_LT(f.bounds_us[i - 1], f.bounds_us[i]) << n;
    }
    for (const auto& l : f.labels) {
      if (l.count == 0) continue;
      EXPECT_TRUE(std::regex_match(std::string(l.name), label)) << n;
      EXPECT_NE(l.name, "le");
      std::set<std::string_view> values;
      for (size_t i = 0; i < l.count; i++) {
        EXPECT_TRUE(std::regex_match(std::string(l.values[i]), label)) << n << " " << l.values[i];
        EXPECT_TRUE(values.insert(l.values[i]).second) << n << " " << l.values[i];
      }
    }
  }
}

TEST(Metrics, ExpositionWithNothingCounted) {
  std::vector<uint64_t> zero(sess::kMetricSlots, 0);
  std::string text = format(zero);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::vector<std::string> lines = lines_of(text);
  // HELP then TYPE, once per family, before its samples.
  size_t help = 0, type = 0;
  std::string current;
  for (const std::string& l : lines) {
    if (l.rfind("# HELP ", 0) == 0) {
      help++;
      current = l.substr(7, l.find(' ', 7) - 7);
    } else if (l.rfind("# TYPE ", 0) == 0) {
      type++;
      EXPECT_EQ(l.substr(7, current.size()), current);
    } else {
      EXPECT_EQ(l.rfind(current, 0), 0u) << l;
      EXPECT_EQ(l.substr(l.rfind(' ') + 1), "0") << l;
    }
  }
  EXPECT_EQ(help, kFamilies);
  EXPECT_EQ(type, kFamilies);
  auto s = samples(text);
  EXPECT_EQ(s.count("nginx_session_requests_total{status=\"none\"}"), 1u);
  EXPECT_EQ(s.count("nginx_session_redis_commands_total{command=\"write\",result=\"timeout\"}"),
            1u);
  EXPECT_EQ(s.count("nginx_session_login_duration_seconds_bucket{le=\"+Inf\"}"), 1u);
  EXPECT_EQ(s.count("nginx_session_login_duration_seconds_sum"), 1u);
  EXPECT_EQ(s.count("nginx_session_cache_flushes_total"), 1u);
  EXPECT_NE(text.find("# TYPE nginx_session_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE nginx_session_redis_command_duration_seconds histogram\n"),
            std::string::npos);
}

TEST(Metrics, CountersAndTwoLabels) {
  std::vector<uint64_t> v(sess::kMetricSlots, 0);
  v[sess::metric_slot(Metric::Requests, static_cast<size_t>(sess::LoadStatus::Invalid))] = 7;
  v[sess::redis_command_slot(sess::RedisCommand::Write, sess::RedisResult::Error)] = 3;
  v[sess::redis_command_slot(sess::RedisCommand::Read, sess::RedisResult::Ok)] =
      18446744073709551615ull;
  v[sess::metric_slot(Metric::CacheEvictions)] = 12;
  auto s = samples(format(v));
  EXPECT_EQ(s["nginx_session_requests_total{status=\"invalid\"}"], "7");
  EXPECT_EQ(s["nginx_session_requests_total{status=\"valid\"}"], "0");
  EXPECT_EQ(s["nginx_session_redis_commands_total{command=\"write\",result=\"error\"}"], "3");
  EXPECT_EQ(s["nginx_session_redis_commands_total{command=\"write\",result=\"ok\"}"], "0");
  EXPECT_EQ(s["nginx_session_redis_commands_total{command=\"read\",result=\"ok\"}"],
            "18446744073709551615");
  EXPECT_EQ(s["nginx_session_cache_evictions_total"], "12");
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  std::vector<uint64_t> v(sess::kMetricSlots, 0);
  auto observe = [&](Metric m, uint64_t us) {
    v[sess::histogram_bucket_slot(m, us)]++;
    v[sess::histogram_sum_slot(m)] += us;
  };
  observe(Metric::LoginDuration, 0);         // first bucket (0.005)
  observe(Metric::LoginDuration, 5000);      // le is inclusive: still 0.005
  observe(Metric::LoginDuration, 5001);      // 0.01
  observe(Metric::LoginDuration, 300000);    // 0.5
  observe(Metric::LoginDuration, 60000000);  // +Inf
  auto s = samples(format(v));
  const std::string b = "nginx_session_login_duration_seconds_bucket{le=\"";
  EXPECT_EQ(s[b + "0.005\"}"], "2");
  EXPECT_EQ(s[b + "0.01\"}"], "3");
  EXPECT_EQ(s[b + "0.25\"}"], "3");
  EXPECT_EQ(s[b + "0.5\"}"], "4");
  EXPECT_EQ(s[b + "10\"}"], "4");
  EXPECT_EQ(s[b + "+Inf\"}"], "5");
  EXPECT_EQ(s["nginx_session_login_duration_seconds_count"], "5");
  EXPECT_EQ(s["nginx_session_login_duration_seconds_sum"], "60.310001");
  // The Redis histogram's bounds, as written.
  std::vector<uint64_t> zero(sess::kMetricSlots, 0);
  std::string text = format(zero);
  for (const char* le : {"0.00025", "0.0005", "0.001", "0.0025", "0.1", "1", "+Inf"}) {
    EXPECT_NE(text.find(std::string("nginx_session_redis_command_duration_seconds_bucket{le=\"") +
                        le + "\"} 0\n"),
              std::string::npos)
        << le;
  }
  // Sums: whole seconds without a point, fractions without trailing zeros.
  v.assign(sess::kMetricSlots, 0);
  v[sess::histogram_sum_slot(Metric::RedisDuration)] = 2000000;
  EXPECT_EQ(samples(format(v))["nginx_session_redis_command_duration_seconds_sum"], "2");
  v[sess::histogram_sum_slot(Metric::RedisDuration)] = 1500;
  EXPECT_EQ(samples(format(v))["nginx_session_redis_command_duration_seconds_sum"], "0.0015");
}

TEST(Metrics, LayoutSignatureIsStable) {
  EXPECT_EQ(sess::metrics_layout_signature(), sess::metrics_layout_signature());
  EXPECT_NE(sess::metrics_layout_signature(), 0u);
}

TEST(Metrics, RejectReasons) {
  using V = sess::CandidateVerdict;
  using R = sess::RejectReason;
  EXPECT_EQ(sess::reject_reason(V::Malformed, false), R::Malformed);
  EXPECT_EQ(sess::reject_reason(V::BadMac, true), R::Signature);
  EXPECT_EQ(sess::reject_reason(V::BadMac, false), R::UnknownKey);
  EXPECT_EQ(sess::reject_reason(V::FutureDated, true), R::FutureDated);
  EXPECT_EQ(sess::reject_reason(V::Expired, true), R::Expired);
}

TEST(Metrics, EnvelopeKeyHint) {
  sess::KeyRing ring;
  ASSERT_TRUE(ring.add_secret(std::string(40, 'a')));
  sess::pstring v;
  sess::Times t{1, 2};
  ASSERT_TRUE(sess::envelope_seal(ring, sess::Kind::Signed, "session", t, "{}", v));
  uint8_t hint = 0;
  ASSERT_TRUE(sess::envelope_key_hint(v, &hint));
  EXPECT_EQ(hint, ring.hint(0));
  EXPECT_FALSE(sess::envelope_key_hint("abc", &hint));
  EXPECT_FALSE(sess::envelope_key_hint("a*cd", &hint));
  EXPECT_FALSE(sess::envelope_key_hint("", &hint));
  // Another ring's value: its hint (almost surely) is not this ring's.
  sess::KeyRing other;
  ASSERT_TRUE(other.add_secret(std::string(40, 'b')));
  if (other.hint(0) != ring.hint(0)) {
    sess::pstring w;
    ASSERT_TRUE(sess::envelope_seal(other, sess::Kind::Signed, "session", t, "{}", w));
    ASSERT_TRUE(sess::envelope_key_hint(w, &hint));
    EXPECT_NE(hint, ring.hint(0));
  }
}

// Plans as write_plan.cpp makes them, and what each counts as.
TEST(Metrics, SessionEvents) {
  using E = sess::SessionEvent;
  struct Row {
    const char* what;
    sess::WriteInputs in;
    bool counted;
    E event;
  };
  auto in = [](sess::LoadStatus st, bool redis) {
    sess::WriteInputs i;
    i.status = st;
    i.had_cookie = st != sess::LoadStatus::None;
    i.server_store = redis;
    i.has_id = redis && st == sess::LoadStatus::Valid;
    i.writes_allowed = true;
    return i;
  };
  std::vector<Row> rows;
  for (bool redis : {false, true}) {
    sess::WriteInputs i = in(sess::LoadStatus::None, redis);
    rows.push_back({"nothing happens", i, false, E::Created});
    i.login = true;
    rows.push_back({"login", i, true, E::Created});
    i = in(sess::LoadStatus::Valid, redis);
    i.login = true;
    rows.push_back({"login over a session", i, true, E::Created});
    i = in(sess::LoadStatus::None, redis);
    i.changed = true;
    rows.push_back({"first change", i, true, E::Created});
    i = in(sess::LoadStatus::Valid, redis);
    i.changed = true;
    rows.push_back({"change", i, true, E::Updated});
    i = in(sess::LoadStatus::Valid, redis);
    i.renew_due = true;
    rows.push_back({"renewal", i, true, E::Renewed});
    i = in(sess::LoadStatus::Valid, redis);
    i.regenerate = true;
    rows.push_back({"regenerate", i, true, E::Regenerated});
    i = in(sess::LoadStatus::Valid, redis);
    i.destroy = true;
    rows.push_back({"destroy", i, true, E::Destroyed});
    i = in(sess::LoadStatus::Valid, redis);
    i.changed = i.empty_after = true;
    rows.push_back({"emptied", i, true, E::Destroyed});
    i = in(sess::LoadStatus::Valid, redis);
    i.logout = true;
    rows.push_back({"logout", i, true, E::Destroyed});
    i = in(sess::LoadStatus::None, redis);
    i.logout = true;
    rows.push_back({"logout without a session", i, false, E::Created});
    i = in(sess::LoadStatus::Invalid, redis);
    i.logout = true;
    rows.push_back({"logout with a bad cookie", i, false, E::Created});
    i = in(sess::LoadStatus::Invalid, redis);
    rows.push_back({"a bad cookie is left alone", i, false, E::Created});
  }
  for (const Row& row : rows) {
    sess::WritePlan p = sess::plan_write(row.in);
    sess::SessionEvent got = E::kCount;
    bool counted = sess::session_event(p, row.in.status == sess::LoadStatus::Valid,
                                       row.in.changed, row.in.regenerate, &got);
    EXPECT_EQ(counted, row.counted) << row.what << (row.in.server_store ? " (redis)" : "");
    if (row.counted) {
      EXPECT_EQ(got, row.event) << row.what << (row.in.server_store ? " (redis)" : "");
    }
  }
}

TEST(Metrics, RedisCommandKinds) {
  using C = sess::RedisCommand;
  auto resp = [](std::initializer_list<std::string> args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return out;
  };
  EXPECT_EQ(sess::redis_command_of(resp({"HGETALL", "s:1"})), C::Read);
  EXPECT_EQ(sess::redis_command_of(resp({"GETRANGE", "s:1", "0", "-1"})), C::Read);
  EXPECT_EQ(sess::redis_command_of(resp({"PTTL", "s:1"})), C::Ttl);
  EXPECT_EQ(sess::redis_command_of(resp({"EVAL", "return 1", "1", "s:1"})), C::Write);
  EXPECT_EQ(sess::redis_command_of(resp({"evalsha", "abc", "0"})), C::Write);
  EXPECT_EQ(sess::redis_command_of(resp({"DEL", "s:1"})), C::Delete);
  EXPECT_EQ(sess::redis_command_of(resp({"UNLINK", "s:1"})), C::Delete);
  EXPECT_EQ(sess::redis_command_of(resp({"PING"})), C::Other);
  EXPECT_EQ(sess::redis_command_of(resp({"HGETALLX", "k"})), C::Other);
  EXPECT_EQ(sess::redis_command_of(""), C::Other);
  EXPECT_EQ(sess::redis_command_of("*1\r\n"), C::Other);
  EXPECT_EQ(sess::redis_command_of("*1\r\n$7\r\nHGET"), C::Other);
  EXPECT_EQ(sess::redis_command_of("*1\r\n$x\r\nDEL\r\n"), C::Other);
  EXPECT_EQ(sess::redis_command_of("*1\r\n$999999999999\r\nDEL\r\n"), C::Other);
  EXPECT_EQ(sess::redis_command_of("+OK\r\n"), C::Other);
}

TEST(Metrics, RedisResults) {
  using R = sess::RedisResult;
  EXPECT_EQ(sess::redis_result_of(true, false, false, false), R::Ok);
  EXPECT_EQ(sess::redis_result_of(true, false, false, true), R::Ok);  // answered in time
  EXPECT_EQ(sess::redis_result_of(true, true, false, false), R::Error);
  EXPECT_EQ(sess::redis_result_of(false, false, false, true), R::Timeout);
  EXPECT_EQ(sess::redis_result_of(false, false, false, false), R::Error);  // connection lost
  EXPECT_EQ(sess::redis_result_of(false, false, true, false), R::Error);   // too large
}
