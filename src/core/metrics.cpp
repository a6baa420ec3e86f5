#include "metrics.h"

namespace sess {

namespace {

using sv = std::string_view;

constexpr sv kStatus[] = {"none", "valid", "expired", "invalid", "error"};
constexpr sv kReasons[] = {"malformed",      "signature",        "unknown_key", "expired",
                           "future_dated",   "cookie_tossing",   "too_many_cookies",
                           "bad_id",         "bad_data",         "not_in_store", "bad_record"};
constexpr sv kEvents[] = {"created", "renewed", "updated", "regenerated", "destroyed"};
constexpr sv kAnswers[] = {"redirect", "unauthorized"};
constexpr sv kLoginResults[] = {"success",      "failure",     "csrf",    "limited",
                                "cross_origin", "store_error", "bad_form", "error"};
constexpr sv kCommands[] = {"read", "ttl", "write", "delete", "other"};
constexpr sv kResults[] = {"ok", "error", "timeout"};
constexpr sv kRedirects[] = {"moved", "ask"};
constexpr sv kLookups[] = {"hit", "miss", "bypass"};
constexpr sv kLogoutSources[] = {"logout_all", "destroy_user"};
constexpr sv kLogoutResults[] = {"ok", "failed"};

template <size_t N>
constexpr MetricLabel label(sv name, const sv (&values)[N]) {
  return MetricLabel{name, values, N};
}
constexpr MetricLabel kNone{sv(), nullptr, 0};

constexpr MetricFamily counter(sv name, sv help, MetricLabel a = kNone, MetricLabel b = kNone) {
  return MetricFamily{name, help, MetricType::Counter, {a, b}, nullptr, 0};
}
template <size_t N>
constexpr MetricFamily histogram(sv name, sv help, const uint64_t (&bounds)[N]) {
  return MetricFamily{name, help, MetricType::Histogram, {kNone, kNone}, bounds, N};
}

const MetricFamily kFamilies[] = {
    counter("nginx_session_requests_total",
            "Requests in locations with a session configuration, by $session_status at the end of "
            "the request.",
            label("status", kStatus)),
    counter("nginx_session_cookies_rejected_total",
            "Session cookies (or the records they name) that did not give a valid session, by "
            "reason.",
            label("reason", kReasons)),
    counter("nginx_session_events_total",
            "Sessions written by responses: created (a login or a first change), renewed "
            "(session_renew), updated, regenerated, destroyed (logout, session_destroy, emptied).",
            label("event", kEvents)),
    counter("nginx_session_require_denials_total",
            "Requests session_require refused: a redirect to the login page or 401.",
            label("answer", kAnswers)),
    counter("nginx_session_store_refusals_total",
            "Responses replaced by 503 because the session store could not be used "
            "(session_store_fail closed, or a change that could not be made)."),
    counter("nginx_session_logins_total", "Login form submissions (POST), by result.",
            label("result", kLoginResults)),
    histogram("nginx_session_login_duration_seconds",
              "Time from a login POST's arrival to its answer, for logins whose credentials were "
              "checked (success or failure).",
              kLoginBoundsUs),
    counter("nginx_session_redis_commands_total",
            "Redis commands sent for requests and the session cache, by kind and result "
            "(timeout: session_redis_timeout passed).",
            label("command", kCommands), label("result", kResults)),
    histogram("nginx_session_redis_command_duration_seconds",
              "Time from sending a Redis command to its reply (or failure, or timeout).",
              kRedisBoundsUs),
    counter("nginx_session_redis_connections_total",
            "Connections to Redis nodes established (and their handshake started)."),
    counter("nginx_session_redis_reconnects_total",
            "Connections established again to a Redis node that had been connected before."),
    counter("nginx_session_redis_failovers_total",
            "Sentinel master changes followed (each worker follows a switch on its own)."),
    counter("nginx_session_redis_cluster_redirects_total",
            "Redis Cluster redirections followed, by type.", label("type", kRedirects)),
    counter("nginx_session_cache_lookups_total",
            "session_redis_cache lookups, by result (bypass: the cache could not be trusted "
            "then, Redis was read directly).",
            label("result", kLookups)),
    counter("nginx_session_cache_stores_total",
            "Records stored in a session_redis_cache zone after a read."),
    counter("nginx_session_cache_invalidations_total",
            "Keys Redis reported changed to the session cache (one per key and per worker "
            "whose connection had read it)."),
    counter("nginx_session_cache_evictions_total",
            "session_redis_cache entries evicted to make room (least recently used first)."),
    counter("nginx_session_cache_flushes_total",
            "session_redis_cache zones emptied at once (FLUSHALL/FLUSHDB, a lost invalidation "
            "link, a failover or a cluster MOVED)."),
    counter("nginx_session_user_logouts_total",
            "Requests that ended every session of a user (session_logout ... all, "
            "session_destroy_user), by source and result (failed: some sessions could not be "
            "ended, the response was 503).",
            label("source", kLogoutSources), label("result", kLogoutResults)),
    counter("nginx_session_user_sessions_ended_total",
            "Sessions ended through the user index (by session_logout ... all and "
            "session_destroy_user; the logout's own session is counted as a destroyed event)."),
    counter("nginx_session_user_index_pruned_total",
            "Entries removed from user indexes because their session had ended already "
            "(expired, or deleted behind nginx)."),
};
static_assert(sizeof(kFamilies) / sizeof(kFamilies[0]) == static_cast<size_t>(Metric::kCount),
              "one description per family");

void append_uint(pstring& out, uint64_t v) {
  char buf[20];
  size_t n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) out.push_back(buf[--n]);
}

// Microseconds as seconds: "0", "0.25", "12.000001" (no exponent, no trailing zeros).
void append_seconds(pstring& out, uint64_t us) {
  append_uint(out, us / 1000000);
  uint64_t frac = us % 1000000;
  if (frac == 0) return;
  char digits[6];
  for (int i = 5; i >= 0; i--) {
    digits[i] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  size_t n = 6;
  while (n > 0 && digits[n - 1] == '0') n--;
  out.push_back('.');
  out.append(digits, n);
}

void append_label(pstring& out, sv name, sv value) {
  out.append(name);
  out.append("=\"");
  out.append(value);  // (fixed values: nothing to escape)
  out.push_back('"');
}

void counter_lines(const MetricFamily& f, const uint64_t* v, pstring& out) {
  const MetricLabel& a = f.labels[0];
  const MetricLabel& b = f.labels[1];
  size_t na = a.count ? a.count : 1;
  size_t nb = b.count ? b.count : 1;
  for (size_t i = 0; i < na; i++) {
    for (size_t j = 0; j < nb; j++) {
      out.append(f.name);
      if (a.count) {
        out.push_back('{');
        append_label(out, a.name, a.values[i]);
        if (b.count) {
          out.push_back(',');
          append_label(out, b.name, b.values[j]);
        }
        out.push_back('}');
      }
      out.push_back(' ');
      append_uint(out, v[i * nb + j]);
      out.push_back('\n');
    }
  }
}

void histogram_lines(const MetricFamily& f, const uint64_t* v, pstring& out) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= f.bounds; i++) {
    cumulative += v[i];
    out.append(f.name);
    out.append("_bucket{le=\"");
    if (i < f.bounds) {
      append_seconds(out, f.bounds_us[i]);
    } else {
      out.append("+Inf");
    }
    out.append("\"} ");
    append_uint(out, cumulative);
    out.push_back('\n');
  }
  out.append(f.name);
  out.append("_sum ");
  append_seconds(out, v[f.bounds + 1]);
  out.push_back('\n');
  out.append(f.name);
  out.append("_count ");
  append_uint(out, cumulative);
  out.push_back('\n');
}

bool iequals(sv a, sv b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    char c = a[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != b[i]) return false;
  }
  return true;
}

}  // namespace

const MetricFamily& metric_family(Metric m) noexcept {
  return kFamilies[static_cast<size_t>(m)];
}

size_t histogram_bucket_slot(Metric m, uint64_t value_us) noexcept {
  const MetricFamily& f = metric_family(m);
  size_t i = 0;
  while (i < f.bounds && value_us > f.bounds_us[i]) i++;
  return metric_base(m) + i;
}

size_t histogram_sum_slot(Metric m) noexcept {
  return metric_base(m) + metric_family(m).bounds + 1;
}

void metrics_format(const uint64_t* sums, pstring& out) {
  for (size_t m = 0; m < static_cast<size_t>(Metric::kCount); m++) {
    const MetricFamily& f = kFamilies[m];
    out.append("# HELP ");
    out.append(f.name);
    out.push_back(' ');
    out.append(f.help);
    out.append("\n# TYPE ");
    out.append(f.name);
    out.append(f.type == MetricType::Counter ? " counter\n" : " histogram\n");
    const uint64_t* v = sums + metric_base(static_cast<Metric>(m));
    if (f.type == MetricType::Counter) {
      counter_lines(f, v, out);
    } else {
      histogram_lines(f, v, out);
    }
  }
}

uint64_t metrics_layout_signature() noexcept {
  uint64_t h = 14695981039346656037ull;  // FNV-1a
  auto mix = [&h](sv s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  for (size_t m = 0; m < static_cast<size_t>(Metric::kCount); m++) {
    const MetricFamily& f = kFamilies[m];
    mix(f.name);
    for (const MetricLabel& l : f.labels) {
      mix(l.name);
      for (size_t i = 0; i < l.count; i++) mix(l.values[i]);
    }
    for (size_t i = 0; i < f.bounds; i++) h = (h ^ f.bounds_us[i]) * 1099511628211ull;
    h = (h ^ kFamilySlots[m]) * 1099511628211ull;
  }
  return h;
}

RejectReason reject_reason(CandidateVerdict v, bool hint_known) noexcept {
  switch (v) {
    case CandidateVerdict::Malformed: return RejectReason::Malformed;
    case CandidateVerdict::BadMac:
      return hint_known ? RejectReason::Signature : RejectReason::UnknownKey;
    case CandidateVerdict::FutureDated: return RejectReason::FutureDated;
    case CandidateVerdict::Expired: return RejectReason::Expired;
    case CandidateVerdict::Valid: break;
  }
  return RejectReason::Signature;  // (not asked for a valid one)
}

bool session_event(const WritePlan& p, bool was_valid, bool changed, bool regenerate,
                   SessionEvent* out) noexcept {
  if (p.cookie == CookieWrite::Expire || p.record == RecordWrite::Delete) {
    if (!was_valid) return false;  // a logout without a session ends none
    *out = SessionEvent::Destroyed;
    return true;
  }
  if (p.cookie != CookieWrite::Set) return false;
  if (p.restart_lifetime) {
    *out = SessionEvent::Created;
  } else if (p.record == RecordWrite::Move || regenerate) {
    *out = SessionEvent::Regenerated;
  } else if (changed) {
    *out = SessionEvent::Updated;
  } else {
    *out = SessionEvent::Renewed;
  }
  return true;
}

RedisCommand redis_command_of(std::string_view resp) noexcept {
  // *<n>\r\n$<len>\r\n<NAME>\r\n
  size_t crlf = resp.find("\r\n");
  if (resp.empty() || resp[0] != '*' || crlf == sv::npos) return RedisCommand::Other;
  sv rest = resp.substr(crlf + 2);
  crlf = rest.find("\r\n");
  if (rest.empty() || rest[0] != '$' || crlf == sv::npos || crlf < 2 || crlf > 8) {
    return RedisCommand::Other;
  }
  size_t len = 0;
  for (size_t i = 1; i < crlf; i++) {
    if (rest[i] < '0' || rest[i] > '9') return RedisCommand::Other;
    len = len * 10 + static_cast<size_t>(rest[i] - '0');
  }
  if (len > 16 || rest.size() < crlf + 2 + len) return RedisCommand::Other;
  sv name = rest.substr(crlf + 2, len);
  if (iequals(name, "HGETALL") || iequals(name, "GETRANGE")) return RedisCommand::Read;
  if (iequals(name, "PTTL")) return RedisCommand::Ttl;
  if (iequals(name, "EVAL") || iequals(name, "EVALSHA")) return RedisCommand::Write;
  if (iequals(name, "DEL") || iequals(name, "UNLINK")) return RedisCommand::Delete;
  return RedisCommand::Other;
}

RedisResult redis_result_of(bool has_reply, bool error_reply, bool too_large,
                            bool deadline_passed) noexcept {
  if (has_reply && !too_large) return error_reply ? RedisResult::Error : RedisResult::Ok;
  if (!has_reply && !too_large && deadline_passed) return RedisResult::Timeout;
  return RedisResult::Error;
}

}  // namespace sess
