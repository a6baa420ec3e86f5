// ngx_http_session_module: session_metrics - the counters' shared-memory zone, the worker's
// slot, the request counting at the log phase, and the location handler that answers Prometheus.
//
//   location = /metrics { session_metrics; }
//
// One zone ("session:metrics", a name no directive of this module can give a zone of its own)
// is made when any location says session_metrics; a configuration without it counts nothing.
// It holds kSlots rows of counters, one per worker number (ngx_worker modulo kSlots), each
// starting on its own cache line. A reload that keeps the zone (nginx keeps a zone of the same
// name, size and owner) keeps the counters; one whose module has another layout of counters
// starts from zero (a dynamic module upgraded in place). The handler sums every row.

#include "ngx_http_session_metrics.h"

#include "redis/redis.h"

#include <ctime>

namespace ngx_session {

uint64_t* metric_counters = nullptr;

namespace {

constexpr size_t kSlots = 64;  // rows; workers beyond share them (the adds are atomic)
constexpr size_t kStride = (sess::kMetricSlots + 7) / 8 * 8;  // whole cache lines per row

struct metrics_shm_t {
  uint64_t signature;  // sess::metrics_layout_signature() of the module that made the counters
  uint64_t reserved[7];
  uint64_t rows[kSlots][kStride];
};

metrics_shm_t* shm = nullptr;  // this worker's view of the zone (init_process)

ngx_str_t zone_name = ngx_string("session:metrics");

size_t zone_size() {
  // The slab pool's own header and tables take a few pages in front of the counters.
  return ngx_align(sizeof(metrics_shm_t), ngx_pagesize) + 8 * ngx_pagesize;
}

ngx_int_t init_zone(ngx_shm_zone_t* zone, void* data) noexcept {
  auto* shpool = reinterpret_cast<ngx_slab_pool_t*>(zone->shm.addr);
  auto* m = static_cast<metrics_shm_t*>(data);  // the previous configuration's, if kept
  if (m == nullptr && zone->shm.exists) m = static_cast<metrics_shm_t*>(shpool->data);
  if (m == nullptr) {
    m = static_cast<metrics_shm_t*>(ngx_slab_calloc(shpool, sizeof(metrics_shm_t)));
    if (m == nullptr) return NGX_ERROR;
    shpool->data = m;
  }
  uint64_t sig = sess::metrics_layout_signature();
  if (m->signature != sig) {
    ngx_memzero(m->rows, sizeof(m->rows));
    m->signature = sig;
  }
  zone->data = m;
  return NGX_OK;
}

ngx_shm_zone_t* find_zone(ngx_cycle_t* cycle) {
  ngx_list_part_t* part = &cycle->shared_memory.part;
  auto* zones = static_cast<ngx_shm_zone_t*>(part->elts);
  for (ngx_uint_t i = 0;; i++) {
    if (i >= part->nelts) {
      if (part->next == nullptr) return nullptr;
      part = part->next;
      zones = static_cast<ngx_shm_zone_t*>(part->elts);
      i = 0;
    }
    if (zones[i].tag == &ngx_http_session_module && zones[i].init == init_zone) return &zones[i];
  }
}

ngx_int_t handler(ngx_http_request_t* r) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR, [&]() -> ngx_int_t {
    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
      if (push_header(r, "Allow", "GET, HEAD") == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
      return NGX_HTTP_NOT_ALLOWED;
    }
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) return rc;
    if (shm == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;  // (not a worker)

    uint64_t sums[sess::kMetricSlots] = {};
    for (size_t row = 0; row < kSlots; row++) {
      for (size_t i = 0; i < sess::kMetricSlots; i++) {
        sums[i] += __atomic_load_n(&shm->rows[row][i], __ATOMIC_RELAXED);
      }
    }
    pool_resource mr(r->pool);
    sess::pstring body(&mr);
    body.reserve(16384);
    sess::metrics_format(sums, body);

    static const char kType[] = "text/plain; version=0.0.4; charset=utf-8";
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type.data = reinterpret_cast<u_char*>(const_cast<char*>(kType));
    r->headers_out.content_type.len = sizeof(kType) - 1;
    r->headers_out.content_type_len = sizeof("text/plain") - 1;
    r->headers_out.content_type_lowcase = nullptr;
    r->headers_out.content_length_n = static_cast<off_t>(body.size());
    if (push_header(r, "Cache-Control", "no-store") == nullptr) {
      return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) return rc;

    auto* b = static_cast<ngx_buf_t*>(ngx_pcalloc(r->pool, sizeof(ngx_buf_t)));
    if (b == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    b->pos = reinterpret_cast<u_char*>(body.data());  // (pool memory: lives with the request)
    b->last = b->pos + body.size();
    b->memory = 1;
    b->last_buf = r == r->main ? 1 : 0;
    b->last_in_chain = 1;
    ngx_chain_t out = {b, nullptr};
    return ngx_http_output_filter(r, &out);
  });
}

// LOG phase: the request's session status, once per main request whose session was read.
ngx_int_t log_handler(ngx_http_request_t* r) noexcept {
  if (metric_counters == nullptr || r != r->main) return NGX_OK;
  auto* ctx = static_cast<ctx_t*>(ngx_http_get_module_ctx(r, ngx_http_session_module));
  if (ctx == nullptr && r->internal) ctx = get_ctx(r, false);  // (an internal redirect)
  if (ctx == nullptr || ctx->s.conf == nullptr || ctx->s.loading) return NGX_OK;
  metric(sess::Metric::Requests, ctx->s.status);
  return NGX_OK;
}

}  // namespace

void metric_observe(sess::Metric m, uint64_t us) noexcept {
  if (metric_counters == nullptr) return;
  metric_add(sess::histogram_bucket_slot(m, us));
  metric_add(sess::histogram_sum_slot(m), us);
}

uint64_t metric_now_us() noexcept {
  if (metric_counters == nullptr) return 0;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

void metric_rejected(const loc_conf_t* lcf, sess::CandidateVerdict v,
                     std::string_view value) noexcept {
  if (metric_counters == nullptr) return;
  bool hint_known = false;
  uint8_t hint = 0;
  if (v == sess::CandidateVerdict::BadMac && sess::envelope_key_hint(value, &hint)) {
    const sess::KeyRing& ring = *lcf->secrets->ring;
    for (size_t k = 0; k < ring.size() && !hint_known; k++) hint_known = ring.hint(k) == hint;
  }
  metric(sess::Metric::CookiesRejected, sess::reject_reason(v, hint_known));
}

void metric_denied(ngx_int_t status) noexcept {
  if (status == NGX_HTTP_MOVED_TEMPORARILY) {
    metric(sess::Metric::RequireDenials, sess::Denial::Redirect);
  } else if (status == NGX_HTTP_UNAUTHORIZED) {
    metric(sess::Metric::RequireDenials, sess::Denial::Unauthorized);
  }
}

void metric_session_written(const ctx_t* ctx, const sess::WritePlan& plan) noexcept {
  sess::SessionEvent e;
  if (metric_counters == nullptr ||
      !sess::session_event(plan, ctx->s.status == sess::LoadStatus::Valid, ctx->changed,
                           ctx->regenerate, &e)) {
    return;
  }
  metric(sess::Metric::Events, e);
}

void metric_login(ngx_http_request_t* r, sess::LoginResult result) noexcept {
  if (metric_counters == nullptr) return;
  metric(sess::Metric::Logins, result);
  if (result != sess::LoginResult::Success && result != sess::LoginResult::Failure) return;
  // nginx's cached time, in milliseconds: a login takes longer than that by far (a password
  // hash, an auth subrequest, a Redis write).
  ngx_time_t* tp = ngx_timeofday();
  ngx_msec_int_t ms = static_cast<ngx_msec_int_t>((tp->sec - r->start_sec) * 1000 +
                                                  (tp->msec - r->start_msec));
  metric_observe(sess::Metric::LoginDuration, ms > 0 ? static_cast<uint64_t>(ms) * 1000 : 0);
}

void metric_redis_op(const redis_op_t* op) noexcept {
  if (metric_counters == nullptr) return;
  bool error = op->has_reply && op->reply.type == sess::RespType::Error;
  bool late = static_cast<ngx_msec_int_t>(ngx_current_msec - op->deadline) >= 0;
  sess::RedisResult res = sess::redis_result_of(op->has_reply, error, op->too_large, late);
  metric_add(sess::redis_command_slot(sess::redis_command_of(op->command), res));
  uint64_t now = metric_now_us();
  if (op->started_us != 0 && now >= op->started_us) {
    metric_observe(sess::Metric::RedisDuration, now - op->started_us);
  }
}

void metric_redis_connected(bool before) noexcept {
  metric(sess::Metric::RedisConnections);
  if (before) metric(sess::Metric::RedisReconnects);
}

char* session_metrics_directive(ngx_conf_t* cf, ngx_command_t*, void*) noexcept {
  auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
      ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
  if (clcf->handler == handler) return const_cast<char*>("is duplicate");
  ngx_shm_zone_t* zone =
      ngx_shared_memory_add(cf, &zone_name, zone_size(), &ngx_http_session_module);
  if (zone == nullptr) return static_cast<char*>(NGX_CONF_ERROR);
  zone->init = init_zone;
  clcf->handler = handler;
  return NGX_CONF_OK;
}

ngx_int_t metrics_postconfiguration(ngx_conf_t* cf) noexcept {
  if (find_zone(cf->cycle) == nullptr) return NGX_OK;  // no session_metrics: nothing counted
  auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(
      ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
  auto* h = static_cast<ngx_http_handler_pt*>(
      ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers));
  if (h == nullptr) return NGX_ERROR;
  *h = log_handler;
  return NGX_OK;
}

void metrics_init_process(ngx_cycle_t* cycle) noexcept {
  ngx_shm_zone_t* zone = find_zone(cycle);
  shm = zone != nullptr ? static_cast<metrics_shm_t*>(zone->data) : nullptr;
  metric_counters = shm != nullptr ? shm->rows[ngx_worker % kSlots] : nullptr;
}

}  // namespace ngx_session
