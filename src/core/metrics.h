// Prometheus metrics of the module (session_metrics): the registry, the text exposition and the
// classifications the glue counts by.
//
// In:  one uint64_t per slot (kMetricSlots of them), every worker's counters summed. A family
//      owns a fixed run of slots starting at metric_base(family): a counter one slot per label
//      value (two labels: first × second, the second varying fastest), a histogram one slot per
//      bucket (not cumulative: the first bound >= the value), one for +Inf and one for the sum in
//      microseconds.
// Out: the text exposition format 0.0.4 - for every family "# HELP", "# TYPE" and every series,
//      zeros included, in a fixed order; names prefixed nginx_session_, counters ending in
//      _total, durations in seconds, cumulative `le` buckets, _sum and _count.
// Refused: nothing at run time. Label values are a fixed set (no user names, ids or paths: the
//      cardinality is what this table says); the unit tests check the table.
#pragma once

#include "candidates.h"
#include "common.h"
#include "write_plan.h"

namespace sess {

enum class MetricType : uint8_t { Counter, Histogram };

// The families, in exposition order.
enum class Metric : uint8_t {
  Requests,            // {status}
  CookiesRejected,     // {reason}
  Events,              // {event}
  RequireDenials,      // {answer}
  StoreRefusals,
  Logins,              // {result}
  LoginDuration,       // histogram
  RedisCommands,       // {command, result}
  RedisDuration,       // histogram
  RedisConnections,
  RedisReconnects,
  RedisFailovers,
  RedisRedirects,      // {type}
  CacheLookups,        // {result}
  CacheStores,
  CacheInvalidations,
  CacheEvictions,
  CacheFlushes,
  UserLogouts,         // {source, result}
  UserSessionsEnded,
  UserIndexPruned,
  kCount
};

// Label values, by index (the order is the exposition's).
enum class RejectReason : uint8_t {
  Malformed,       // not base64url, too short, wrong version or kind
  Signature,       // a key of the ring should verify it but none does (tampered, another name)
  UnknownKey,      // no key of the ring has its key hint (a retired key, or forged)
  Expired,
  FutureDated,
  CookieTossing,   // two different valid cookies of the name
  TooManyCookies,
  BadId,           // Redis store: the cookie's payload is not a session id
  BadData,         // the verified data is not a JSON object
  NotInStore,      // Redis store: no such record
  BadRecord,       // Redis store: the record is not a session (or empty, or too large)
  kCount
};
enum class SessionEvent : uint8_t { Created, Renewed, Updated, Regenerated, Destroyed, kCount };
enum class Denial : uint8_t { Redirect, Unauthorized, kCount };
enum class LoginResult : uint8_t {
  Success, Failure, Csrf, Limited, CrossOrigin, StoreError, BadForm, Error, kCount
};
enum class RedisCommand : uint8_t { Read, Ttl, Write, Delete, Other, kCount };
enum class RedisResult : uint8_t { Ok, Error, Timeout, kCount };
enum class RedirectType : uint8_t { Moved, Ask, kCount };
enum class CacheLookup : uint8_t { Hit, Miss, Bypass, kCount };
enum class UserLogoutSource : uint8_t { LogoutAll, DestroyUser, kCount };
enum class UserLogoutResult : uint8_t { Ok, Failed, kCount };

// Histogram upper bounds in microseconds (the +Inf bucket follows).
constexpr uint64_t kLoginBoundsUs[] = {5000,   10000,   25000,   50000,   100000, 250000,
                                       500000, 1000000, 2500000, 5000000, 10000000};
constexpr uint64_t kRedisBoundsUs[] = {250,   500,    1000,   2500,   5000,   10000,
                                       25000, 50000, 100000, 250000, 500000, 1000000};
constexpr size_t kLoginBounds = sizeof(kLoginBoundsUs) / sizeof(kLoginBoundsUs[0]);
constexpr size_t kRedisBounds = sizeof(kRedisBoundsUs) / sizeof(kRedisBoundsUs[0]);

// Slots of each family (kept equal to the descriptions in metrics.cpp by the unit tests).
constexpr uint16_t kFamilySlots[] = {
    5,                                              // Requests: LoadStatus
    static_cast<uint16_t>(RejectReason::kCount),    // CookiesRejected
    static_cast<uint16_t>(SessionEvent::kCount),    // Events
    static_cast<uint16_t>(Denial::kCount),          // RequireDenials
    1,                                              // StoreRefusals
    static_cast<uint16_t>(LoginResult::kCount),     // Logins
    kLoginBounds + 2,                               // LoginDuration
    static_cast<uint16_t>(static_cast<size_t>(RedisCommand::kCount) *
                          static_cast<size_t>(RedisResult::kCount)),  // RedisCommands
    kRedisBounds + 2,                               // RedisDuration
    1, 1, 1,                                        // RedisConnections, Reconnects, Failovers
    static_cast<uint16_t>(RedirectType::kCount),    // RedisRedirects
    static_cast<uint16_t>(CacheLookup::kCount),     // CacheLookups
    1, 1, 1, 1,                                     // CacheStores .. CacheFlushes
    static_cast<uint16_t>(static_cast<size_t>(UserLogoutSource::kCount) *
                          static_cast<size_t>(UserLogoutResult::kCount)),  // UserLogouts
    1, 1,                                           // UserSessionsEnded, UserIndexPruned
};
static_assert(sizeof(kFamilySlots) / sizeof(kFamilySlots[0]) ==
                  static_cast<size_t>(Metric::kCount),
              "one slot count per family");

// The first slot of each family (and the total past the last), computed once at compile time:
// a sum at every call would be a loop on the request path (too long for the compiler to unroll).
struct MetricBases {
  size_t base[static_cast<size_t>(Metric::kCount) + 1] = {};
  constexpr MetricBases() {
    for (size_t i = 0; i < static_cast<size_t>(Metric::kCount); i++) {
      base[i + 1] = base[i] + kFamilySlots[i];
    }
  }
};
inline constexpr MetricBases kMetricBases{};

// The first slot of a family.
constexpr size_t metric_base(Metric m) { return kMetricBases.base[static_cast<size_t>(m)]; }
constexpr size_t kMetricSlots = metric_base(Metric::kCount);

// The slot of a counter's series: its family's base + the label index (two labels: a * n_b + b).
constexpr size_t metric_slot(Metric m, size_t index = 0) { return metric_base(m) + index; }
constexpr size_t user_logout_slot(UserLogoutSource s, UserLogoutResult r) {
  return metric_base(Metric::UserLogouts) +
         static_cast<size_t>(s) * static_cast<size_t>(UserLogoutResult::kCount) +
         static_cast<size_t>(r);
}
constexpr size_t redis_command_slot(RedisCommand c, RedisResult r) {
  return metric_base(Metric::RedisCommands) +
         static_cast<size_t>(c) * static_cast<size_t>(RedisResult::kCount) +
         static_cast<size_t>(r);
}

// A histogram observation: the slot of its bucket (the +Inf one past the last bound), and the
// slot of the family's sum (in microseconds). m must be a histogram.
size_t histogram_bucket_slot(Metric m, uint64_t value_us) noexcept;
size_t histogram_sum_slot(Metric m) noexcept;

// What a family is, for the exposition and for the tests.
struct MetricLabel {
  std::string_view name;              // empty: no label
  const std::string_view* values;
  size_t count;
};
struct MetricFamily {
  std::string_view name;              // as exposed (counters with _total; histograms: the base)
  std::string_view help;
  MetricType type;
  MetricLabel labels[2];
  const uint64_t* bounds_us;          // histograms
  size_t bounds;
};
const MetricFamily& metric_family(Metric m) noexcept;

// Appends the exposition of the summed counters (kMetricSlots of them) to out.
void metrics_format(const uint64_t* sums, pstring& out);

// A number that changes whenever the layout does (families, labels, slots): a shared zone kept
// across a reload by a module of another layout starts from zero instead of misreading counters.
uint64_t metrics_layout_signature() noexcept;

// ---------------------------------------------------------------------------------------------
// What the glue counts by

// The reason of a rejected candidate (hint_known: a key of the ring has the envelope's key hint;
// only asked for BadMac).
RejectReason reject_reason(CandidateVerdict v, bool hint_known) noexcept;

// What a response that wrote the session (its plan carried out) did to it. was_valid: a valid
// session was loaded; changed/regenerate: the request's actions. False: nothing to count (the
// plan writes nothing, or ends a session that did not exist).
bool session_event(const WritePlan& p, bool was_valid, bool changed, bool regenerate,
                   SessionEvent* out) noexcept;

// The kind of a command from its RESP bytes (*N $len NAME ...): HGETALL, GETRANGE read; PTTL
// ttl; EVAL, EVALSHA write (the record scripts); DEL, UNLINK delete; anything else other.
RedisCommand redis_command_of(std::string_view resp) noexcept;

// How an operation ended: a reply (an error reply: error), none because its deadline passed
// (timeout), or none for another reason - the connection was lost, the reply too large (error).
RedisResult redis_result_of(bool has_reply, bool error_reply, bool too_large,
                            bool deadline_passed) noexcept;

}  // namespace sess
