// ngx_http_session_module: session_metrics - counting (src/ngx_http_session_metrics.cpp).
//
// Each worker counts into its own slot of one shared-memory zone (made when a location says
// session_metrics; without one, counting is a single compare): a relaxed atomic add on a cache
// line only that worker writes - no lock, no contention. Workers of a previous configuration that
// are still finishing requests share slot numbers with the new ones, which the atomic add makes
// harmless. The handler sums the slots when scraped. What is counted and where is listed in the
// README ("Metrics"); the registry and the exposition are the core's (core/metrics.h).
#pragma once

#include "ngx_http_session.h"

#include "core/metrics.h"

namespace ngx_session {

// This worker's counters (sess::kMetricSlots of them); nullptr: nothing is counted.
extern uint64_t* metric_counters;

inline void metric_add(size_t slot, uint64_t n = 1) noexcept {
  if (metric_counters != nullptr) __atomic_fetch_add(&metric_counters[slot], n, __ATOMIC_RELAXED);
}

// One more of family m's series `label` (a label enum or an index).
template <typename L = size_t>
inline void metric(sess::Metric m, L label = 0) noexcept {
  metric_add(sess::metric_slot(m, static_cast<size_t>(label)));
}

// A histogram observation in microseconds.
void metric_observe(sess::Metric m, uint64_t us) noexcept;

// A monotonic clock in microseconds when counting (0 otherwise): for durations finer than
// nginx's cached millisecond time.
uint64_t metric_now_us() noexcept;

// Call-site helpers, so that counting stays one line where it happens.
// A rejected cookie: lcf's cookie, the verdict of the candidate reported, its value.
void metric_rejected(const loc_conf_t* lcf, sess::CandidateVerdict v,
                     std::string_view value) noexcept;
// session_require answered with status (302 or 401; others are not denials).
void metric_denied(ngx_int_t status) noexcept;
// A response wrote the session as plan said.
void metric_session_written(const ctx_t* ctx, const sess::WritePlan& plan) noexcept;
// A login POST's result (success and failure also observe its duration).
void metric_login(ngx_http_request_t* r, sess::LoginResult result) noexcept;
// A Redis operation completed (src/redis/client.cpp): its command, result and duration.
void metric_redis_op(const redis_op_t* op) noexcept;
// A connection to a Redis node was established (before: it had been connected before).
void metric_redis_connected(bool before) noexcept;

// The directive, the log-phase counting of requests, and the worker's slot.
char* session_metrics_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
ngx_int_t metrics_postconfiguration(ngx_conf_t* cf) noexcept;
void metrics_init_process(ngx_cycle_t* cycle) noexcept;

}  // namespace ngx_session
