// ngx_http_session_module: the module, the request's session state, loading (which cookie is
// the session, under which configuration), the phase handlers that enforce session_require and
// the store failure policy, and the variables. The header/body filters that write the session
// are in ngx_http_session_filter.cpp, the write itself in ngx_http_session_write.cpp.

#include "ngx_http_session.h"

#include "ngx_http_session_metrics.h"

#include "core/gate.h"
#include "core/redirect.h"
#include "core/verified_cache.h"

#include <memory>
#include <optional>

namespace ngx_session {

sess::PhaseLayout http_phases;

// ---------------------------------------------------------------------------------------------
// Boundary helpers

bool pool_str(ngx_pool_t* pool, std::string_view s, ngx_str_t* out) {
  out->len = s.size();
  out->data = static_cast<u_char*>(ngx_pnalloc(pool, s.size() ? s.size() : 1));
  if (out->data == nullptr) return false;
  if (!s.empty()) ngx_memcpy(out->data, s.data(), s.size());
  return true;
}

void* pool_resource::do_allocate(size_t bytes, size_t align) {
  void* p = align <= NGX_ALIGNMENT ? ngx_palloc(pool_, bytes) : ngx_pmemalign(pool_, bytes, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

// Memory is returned with the pool: header values may point into buffers of finished strings.
void pool_resource::do_deallocate(void*, size_t, size_t) {}

void id_hex(const unsigned char* id, u_char* out) {
  ngx_hex_dump(out, const_cast<u_char*>(id), sess::kSessionIdLen);
}

ngx_str_t log_safe(ngx_http_request_t* r, std::string_view in, size_t max) {
  ngx_str_t out = ngx_null_string;
  size_t n = ngx_min(in.size(), max);
  out.data = static_cast<u_char*>(ngx_pnalloc(r->pool, n * 4 + 1));
  if (out.data == nullptr) return out;
  u_char* p = out.data;
  for (size_t i = 0; i < n; i++) {
    auto c = static_cast<u_char>(in[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      p = ngx_sprintf(p, "\\x%02xd", c);
    } else {
      *p++ = c;
    }
  }
  out.len = p - out.data;
  return out;
}

const ngx_str_t* request_header(ngx_http_request_t* r, std::string_view name) {
  const ngx_str_t* found = nullptr;
  find_header(&r->headers_in.headers, [&](const ngx_table_elt_t& h) {
    if (h.key.len != name.size() ||
        ngx_strncasecmp(h.key.data, (u_char*)name.data(), name.size()) != 0) {
      return false;
    }
    found = &h.value;
    return true;
  });
  return found;
}

bool binding_equal(const loc_conf_t* a, const loc_conf_t* b) {
  return a->secrets == b->secrets && sv(a->cookie.name) == sv(b->cookie.name) &&
         cookie_kind(a) == cookie_kind(b) && a->store == b->store && a->redis == b->redis &&
         (a->store != STORE_REDIS || sv(a->prefix) == sv(b->prefix)) &&
         a->lifetime == b->lifetime && a->idle == b->idle && a->format == b->format &&
         chunks_of(a) == chunks_of(b) &&
         a->flask_serializer == b->flask_serializer && a->flask_signer == b->flask_signer;
}

namespace {

const ngx_clock clock_now;

void ctx_cleanup(void* data) noexcept {
  auto* ctx = static_cast<ctx_t*>(data);
  ctx->~ctx_t();
}

// A subrequest whose location makes sessions under another configuration than the main
// request's keeps its own (read-only) session.
struct sub_ctx_t {
  pool_resource mr;
  loaded_t s;
  explicit sub_ctx_t(ngx_pool_t* pool) : mr(pool), s(&mr) {}
};

void sub_ctx_cleanup(void* data) noexcept { static_cast<sub_ctx_t*>(data)->~sub_ctx_t(); }

}  // namespace

loaded_t::loaded_t(std::pmr::memory_resource* mr)
    : conf(nullptr), status(sess::LoadStatus::None), times(), id(), payload(mr),
      shared_payload(nullptr), data(mr), shared(nullptr), flask_sid(), op(nullptr),
      loader(nullptr), waiters(nullptr) {
  had_cookie = 0;
  has_id = 0;
  decoded = 0;
  decode_failed = 0;
  loading = 0;
  store_error = 0;
  reading_v1 = 0;
  retried = 0;
  cache_miss = 0;
  cache_status = 0;
  chunk_head = 0;
}

void loaded_t::reset(const loc_conf_t* binding) {
  conf = binding;
  status = sess::LoadStatus::None;
  times = sess::Times();
  ngx_memzero(id, sizeof(id));
  ngx_str_null(&flask_sid);
  payload.clear();
  shared_payload = nullptr;
  if (!data.empty()) data.clear();
  shared = nullptr;
  cached_value = std::string_view();
  had_cookie = 0;
  has_id = 0;
  decoded = 0;
  decode_failed = 0;
  loading = 0;
  store_error = 0;
  reading_v1 = 0;
  retried = 0;
  cache_miss = 0;
  cache_status = 0;
  chunk_head = 0;
}

ctx_t::ctx_t(ngx_http_request_t* req)
    : r(req), mr(req->pool), s(&mr), next(nullptr), changes(nullptr), destroy_user(),
      login(nullptr), w(nullptr), new_id(), flask_new_sid() {
  refused = 0;
  via_error_page = 0;
  in_rewrite = 0;
  login_page = 0;
  read = 0;
  vary_added = 0;
  filter_done = 0;
  changed = 0;
  destroy = 0;
  regenerate = 0;
  logout = 0;
  hold_used = 0;
}

ctx_t* get_ctx_slow(ngx_http_request_t* r, bool create) {
  r = r->main;
  // An internal redirect zeroes r->ctx; the pool cleanup still knows the ctx.
  for (ngx_pool_cleanup_t* c = r->pool->cleanup; c != nullptr; c = c->next) {
    if (c->handler == ctx_cleanup) {
      auto* ctx = static_cast<ctx_t*>(c->data);
      ngx_http_set_ctx(r, ctx, ngx_http_session_module);
      return ctx;
    }
  }
  if (!create) return nullptr;
  // The cleanup and the ctx in one allocation (what ngx_pool_cleanup_add does in two).
  struct cleanup_ctx_t {
    ngx_pool_cleanup_t cln;
    ctx_t ctx;
  };
  static_assert(alignof(cleanup_ctx_t) <= NGX_ALIGNMENT, "ngx_palloc's alignment");
  auto* mem = static_cast<cleanup_ctx_t*>(ngx_palloc(r->pool, sizeof(cleanup_ctx_t)));
  if (mem == nullptr) return nullptr;
  auto* ctx = new (&mem->ctx) ctx_t(r);
  mem->cln.handler = ctx_cleanup;
  mem->cln.data = ctx;
  mem->cln.next = r->pool->cleanup;
  r->pool->cleanup = &mem->cln;
  ngx_http_set_ctx(r, ctx, ngx_http_session_module);
  return ctx;
}

namespace {

// Cookie values this worker verified recently (src/core/verified_cache.h): a repeated cookie
// skips base64url, the MAC/AEAD and the JSON parse. Made on first use, in the worker, with a
// hash seed of its own.
std::unique_ptr<sess::VerifiedCache> verified_table;

sess::VerifiedCache* make_verified_cache() {
  uint64_t seed = 0;
  if (!sess::random_bytes(&seed, sizeof(seed))) seed = static_cast<uint64_t>(ngx_pid);
  verified_table = std::make_unique<sess::VerifiedCache>(seed);
  return verified_table.get();
}

inline sess::VerifiedCache* verified_cache() {
  sess::VerifiedCache* c = verified_table.get();
  return c != nullptr ? c : make_verified_cache();
}

// What a request took from the verified-cookie table stays alive until the request's pool is
// destroyed, as the data it decodes itself does (pool memory is never returned early): nginx
// keeps pointers into variable values (regex captures, cached variables) past a reload of
// the session under another binding, and the table may drop its own reference meanwhile.
void release_shared_hold(void* data) noexcept {
  static_cast<shared_hold_t*>(data)->~shared_hold_t();
}

bool hold_until_request_ends(ngx_http_request_t* r, const sess::VerifiedCache::Entry* hit) {
  // Usually the one hold of the request: in its ctx, released with it (no cleanup of its own).
  ctx_t* ctx = get_ctx(r, false);
  if (ctx != nullptr && !ctx->hold_used) {
    ctx->hold_used = 1;
    ctx->hold = hit->shared.share();
    return true;
  }
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(shared_hold_t));
  if (cln == nullptr) return false;
  new (cln->data) shared_hold_t(hit->shared.share());
  cln->handler = release_shared_hold;
  return true;
}

sess::VerifiedBinding verified_binding(const loc_conf_t* lcf) {
  return sess::VerifiedBinding{lcf->secrets->ring->id(), cookie_kind(lcf), sv(lcf->cookie.name)};
}

}  // namespace

bool ensure_decoded(ngx_http_request_t* r, loaded_t* s) {
  if (s->decoded) return !s->decode_failed;
  s->decoded = 1;
  if (s->status != sess::LoadStatus::Valid) return true;
  if (s->data.decode(s->payload_view())) {
    if (!s->cached_value.empty() && s->conf->store != STORE_REDIS) {
      verified_cache()->attach_data(verified_binding(s->conf), s->cached_value, s->data);
    }
  } else {
    metric(sess::Metric::CookiesRejected, sess::RejectReason::BadData);
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "session cookie \"%V\" rejected: the data is not a valid JSON object",
                  &s->conf->cookie.name);
    s->status = sess::LoadStatus::Invalid;
    s->decode_failed = 1;
    return false;
  }
  if (s->data.empty() && s->conf->store == STORE_REDIS) {
    metric(sess::Metric::CookiesRejected, sess::RejectReason::BadRecord);
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "session cookie \"%V\" rejected: the record in the store is empty",
                  &s->conf->cookie.name);
    s->status = sess::LoadStatus::Invalid;
    s->decode_failed = 1;
    return false;
  }
  return true;
}

bool logged_in(ngx_http_request_t* r, loaded_t* s) {
  if (s == nullptr || s->status != sess::LoadStatus::Valid || !ensure_decoded(r, s)) return false;
  return sess::session_user_logged_in(sess::session_user(s->view(), sv(loc_conf(r)->user_key)));
}

namespace {

// Calls f(value) for every Cookie header line of r.
template <typename F>
void for_each_cookie_header(ngx_http_request_t* r, F&& f) {
#if (nginx_version >= 1023000)
  for (ngx_table_elt_t* h = r->headers_in.cookie; h != nullptr; h = h->next) f(sv(h->value));
#else
  auto** h = static_cast<ngx_table_elt_t**>(r->headers_in.cookies.elts);
  for (ngx_uint_t i = 0; i < r->headers_in.cookies.nelts; i++) f(sv(h[i]->value));
#endif
}

}  // namespace

void collect_cookie(ngx_http_request_t* r, std::string_view name, sess::CookieCandidates& acc) {
  for_each_cookie_header(r, [&](std::string_view h) { sess::cookie_collect(h, name, acc); });
}

void collect_chunks(ngx_http_request_t* r, std::string_view name, sess::ChunkCookies& acc) {
  for_each_cookie_header(r, [&](std::string_view h) {
    sess::chunk_cookies_collect(h, name, acc);
  });
}

namespace {

// ---------------------------------------------------------------------------------------------
// Loading

// One info line per rejected cookie, at most 100 a second per worker (a client can send bad
// cookies as fast as it likes); the next line after a silence says how many were left out.
sess::LogLimiter reject_log_limit(1, 100);

void reject(ngx_http_request_t* r, const loc_conf_t* lcf, const char* why) {
  uint64_t more = 0;
  if (!reject_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) return;
  if (more) {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "session cookie \"%V\" rejected: %s (%uL more since the last such line)",
                  &lcf->cookie.name, why, more);
  } else {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "session cookie \"%V\" rejected: %s",
                  &lcf->cookie.name, why);
  }
}

}  // namespace

void reject_cookie(ngx_http_request_t* r, const loc_conf_t* lcf, const char* why) {
  reject(r, lcf, why);
}

namespace {

sess::RespLimits make_lookup_limits() {
  sess::RespLimits l;
  l.max_bulk = sess::kMaxRecordLen;
  l.max_total = sess::kMaxRecordLen;
  l.max_depth = 1;                                    // an array of fields and values
  l.max_elements = 2 * sess::SessionData::kMaxKeys + 2;
  return l;
}
const sess::RespLimits kLookupLimits = make_lookup_limits();

sess::LogLimiter lookup_log_limit;

void lookup_done(ngx_http_request_t* r, void* data, const sess::RespValue* reply,
                 bool too_large);

// Starts one read of s's record: v2 (HGETALL) or v1 (GETRANGE). False if it could not be sent.
bool start_read(ngx_http_request_t* r, loaded_t* s, bool v1) {
  sess::pstring key(s->payload.get_allocator().resource());
  if (!redis_key_of(r, s->conf, s->id, key)) return false;
  sess::RedisArgs args(s->payload.get_allocator().resource());
  if (v1) {
    sess::record_cmd_read_v1(key, args);
  } else {
    sess::record_cmd_read(key, args);
  }
  s->reading_v1 = v1;
  if (!v1 && s->cache_miss) {
    // The first read after a session_redis_cache miss (shared with the worker's other misses of
    // the key; a v1 record is not cached, its second read goes alone).
    s->cache_miss = 0;
    return redis_cache_read(r, s->conf, key, lookup_done, s, &kLookupLimits);
  }
  s->op = redis_send(r, s->conf, args, key, lookup_done, s, &kLookupLimits);
  return s->op != nullptr;
}

void migrated(ngx_http_request_t*, void*, const sess::RespValue*, bool) {}

// A v1 record was read: convert it to v2 (only if it still holds what was read), without waiting.
void migrate(ngx_http_request_t* r, loaded_t* s, const sess::pstring& json) {
  sess::pstring key(s->payload.get_allocator().resource());
  if (!redis_key_of(r, s->conf, s->id, key)) return;
  sess::RedisArgs args(s->payload.get_allocator().resource());
  sess::record_cmd_migrate(key, json, s->data, args);
  redis_send(r, s->conf, args, key, migrated, nullptr);
}

void lookup_done(ngx_http_request_t* r, void* data, const sess::RespValue* reply,
                 bool too_large) {
  auto* s = static_cast<loaded_t*>(data);
  s->op = nullptr;
  sess::RecordRead res;
  sess::pstring json(s->payload.get_allocator().resource());
  if (s->reading_v1) {
    res = sess::record_read_v1(reply, too_large, &s->data, &json);
    if (res == sess::RecordRead::Invalid && !s->retried) {
      // Another request may have converted it between the two reads: read it as v2 again.
      s->retried = 1;
      if (start_read(r, s, false)) return;
      res = sess::RecordRead::Failed;
    }
  } else {
    res = sess::record_read(reply, too_large, &s->data);
    if (res == sess::RecordRead::V1) {
      if (start_read(r, s, true)) return;
      res = sess::RecordRead::Failed;
    }
  }
  s->loading = 0;
  s->decoded = 1;  // the record's fields are the data
  switch (res) {
    case sess::RecordRead::Found:
      s->status = sess::LoadStatus::Valid;
      if (s->reading_v1) migrate(r, s, json);
      break;
    case sess::RecordRead::Missing:
      metric(sess::Metric::CookiesRejected, sess::RejectReason::NotInStore);
      reject(r, s->conf, "no such session in the store");
      s->status = sess::LoadStatus::Invalid;
      break;
    case sess::RecordRead::TooLarge:
      metric(sess::Metric::CookiesRejected, sess::RejectReason::BadRecord);
      reject(r, s->conf, "the record in the store is larger than 64 KiB");
      s->status = sess::LoadStatus::Invalid;
      break;
    case sess::RecordRead::Invalid:
    case sess::RecordRead::V1:
      metric(sess::Metric::CookiesRejected, sess::RejectReason::BadRecord);
      reject(r, s->conf, "the record in the store is not a session");
      s->status = sess::LoadStatus::Invalid;
      break;
    case sess::RecordRead::Failed: {
      s->status = sess::LoadStatus::Error;
      s->store_error = 1;
      uint64_t more = 0;
      if (lookup_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
        std::string_view why = reply == nullptr ? std::string_view("no answer")
                               : reply->type == sess::RespType::Error
                                   ? std::string_view(reply->str)
                                   : std::string_view("an unexpected reply");
        ngx_str_t msg = log_safe(r, why, 240);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "session redis \"%V\": lookup failed: %V (%uL more since the last such "
                      "line)",
                      redis_name(s->conf), &msg, more);
      }
      break;
    }
  }
  if (s->status != sess::LoadStatus::Valid) s->data.clear();
  lookup_resume(r, s);
}

}  // namespace

// Resume the phases where the request stopped (the main request or a subrequest), and those
// of the requests that waited for this lookup (other subrequests of the same session).
void lookup_resume(ngx_http_request_t* r, loaded_t* s) {
  if (ngx_http_post_request(r, nullptr) != NGX_OK) {
    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
  }
  if (s->waiters != nullptr) {
    auto** w = static_cast<ngx_http_request_t**>(s->waiters->elts);
    for (ngx_uint_t i = 0; i < s->waiters->nelts; i++) {
      if (ngx_http_post_request(w[i], nullptr) != NGX_OK) {
        ngx_http_finalize_request(w[i], NGX_HTTP_INTERNAL_SERVER_ERROR);
      }
    }
    s->waiters->nelts = 0;
  }
}

namespace {

// A request's chunk cookies and the buffer their heads are joined in: one per request that sends
// a chunk head (eight heads must not cost eight joined copies of the Cookie header), in its pool
// (a pstring's memory is the pool's: nothing to release).
struct ChunkScratch {
  sess::ChunkCookies cookies;
  sess::pstring joined;
  explicit ChunkScratch(std::pmr::memory_resource* mr) : joined(mr) {}
};

ChunkScratch* chunk_scratch(ngx_http_request_t* r, const loc_conf_t* lcf,
                            std::pmr::memory_resource* mr) {
  void* mem = ngx_palloc(r->pool, sizeof(ChunkScratch));
  if (mem == nullptr) return nullptr;
  auto* c = new (mem) ChunkScratch(mr);
  collect_chunks(r, sv(lcf->cookie.name), c->cookies);
  return c;
}

// Reads and verifies the session cookie(s) of r under lcf into s. For the Redis store, starts the
// lookup (NGX_AGAIN).
ngx_int_t load(ngx_http_request_t* r, loaded_t* s, const loc_conf_t* lcf) {
  if (lcf->format == FORMAT_FLASK) return flask_load(r, s, lcf);  // src/ngx_http_session_flask.cpp
  s->reset(lcf);
  sess::CookieCandidates acc;
  collect_cookie(r, sv(lcf->cookie.name), acc);
  if (acc.count == 0) return NGX_OK;
  s->had_cookie = 1;
  if (acc.overflow) {
    // More distinct cookies of this name than are tried: a valid one could hide among them.
    s->status = sess::LoadStatus::Invalid;
    metric(sess::Metric::CookiesRejected, sess::RejectReason::TooManyCookies);
    reject(r, lcf, "too many session cookies of this name (a cookie tossing attempt?)");
    return NGX_OK;
  }

  sess::CandidateVerdict verdicts[sess::CookieCandidates::kMax];
  const char* chunk_why = nullptr;  // why the first candidate's chunks did not join
  sess::Kind kind = cookie_kind(lcf);
  sess::ExpiryPolicy policy = policy_of(lcf);
  size_t valid = 0;
  bool id_taken = false;  // (Redis store: the id copied out of the table entry, nothing held)
  sess::Times times;
  sess::VerifiedCache* cache = verified_cache();
  const sess::VerifiedBinding binding = verified_binding(lcf);
  ChunkScratch* chunks = nullptr;  // made on the first chunk head
  // Scratch buffer reused by every candidate (pool memory is only returned with the request).
  // Payloads of later candidates are only needed until a second valid one shows up.
  sess::pstring payload(s->payload.get_allocator().resource());
  for (size_t i = 0; i < acc.count; i++) {
    std::string_view value = acc.values[i];
    // A chunk head ("<k>.", core/chunks.h): the value is the k cookies joined, verified as one
    // envelope. Joined values bypass the verified-cookie table (a plain value costs one compare).
    bool chunked = false;
    if (sess::chunk_head_like(value)) {
      s->chunk_head = 1;
      if (chunks == nullptr &&
          (chunks = chunk_scratch(r, lcf, payload.get_allocator().resource())) == nullptr) {
        return NGX_ERROR;
      }
      sess::ChunkRead cr = sess::chunk_assemble(value, chunks_of(lcf), chunks->cookies,
                                                chunks->joined);
      if (cr != sess::ChunkRead::Ok) {
        if (i == 0) chunk_why = sess::chunk_read_text(cr);
        verdicts[i] = sess::CandidateVerdict::Malformed;
        continue;
      }
      value = chunks->joined;
      chunked = true;
    }
    // A value verified before under this binding gives what envelope_open gave then (the table
    // only ever holds successes); expiry is checked below either way.
    const sess::VerifiedCache::Entry* hit = chunked ? nullptr : cache->find(binding, value);
    bool cached = hit != nullptr;
    sess::OpenResult res = sess::OpenResult::Ok;
    if (hit != nullptr) {
      times = hit->times;  // (the payload is taken below if this is the session)
    } else if (chunked) {
      res = sess::envelope_open(*lcf->secrets->ring, kind, sv(lcf->cookie.name), value, &times,
                                &payload, sess::kMaxChunkedValueLen);
    } else {
      res = sess::envelope_open(*lcf->secrets->ring, kind, sv(lcf->cookie.name), value, &times,
                                &payload);
      if (res == sess::OpenResult::Ok) cached = cache->insert(binding, value, times, payload);
    }
    if (res == sess::OpenResult::Malformed) {
      verdicts[i] = sess::CandidateVerdict::Malformed;
      continue;
    }
    if (res != sess::OpenResult::Ok) {
      verdicts[i] = sess::CandidateVerdict::BadMac;
      continue;
    }
    switch (sess::expiry_check(policy, times, clock_now)) {
      case sess::Verdict::Valid:
        verdicts[i] = sess::CandidateVerdict::Valid;
        if (valid++ == 0) {
          s->times = times;
          if (hit != nullptr && lcf->store == STORE_REDIS &&
              hit->payload().size() == sess::kSessionIdLen) {
            // (The entry found is still there: nothing was inserted since the find.)
            ngx_memcpy(s->id, hit->payload().data(), sess::kSessionIdLen);
            id_taken = true;
          } else if (hit != nullptr) {
            if (!hold_until_request_ends(r, hit)) return NGX_ERROR;
            s->shared_payload = &hit->payload();
            if (hit->data() != nullptr && lcf->store != STORE_REDIS) {
              s->shared = hit->data();
              s->decoded = 1;
            }
          } else {
            s->payload.swap(payload);
          }
          if (cached) s->cached_value = value;  // (never a joined value)
        }
        break;
      case sess::Verdict::Expired:
        verdicts[i] = sess::CandidateVerdict::Expired;
        break;
      case sess::Verdict::FutureDated:
        verdicts[i] = sess::CandidateVerdict::FutureDated;
        break;
    }
  }
  sess::Selection sel = sess::select_candidate(verdicts, acc.count);
  s->status = sel.status;
  if (sel.status != sess::LoadStatus::Valid) {
    s->payload.clear();
    s->shared_payload = nullptr;
    s->data.clear();
    s->shared = nullptr;
    s->decoded = 0;
    s->cached_value = std::string_view();
    if (sel.tossing) {
      metric(sess::Metric::CookiesRejected, sess::RejectReason::CookieTossing);
      reject(r, lcf, "two different valid session cookies (a cookie planted for a parent domain?)");
    } else if (sel.status == sess::LoadStatus::Expired) {
      metric(sess::Metric::CookiesRejected, sess::RejectReason::Expired);
      reject(r, lcf, "expired");
    } else {
      sess::CandidateVerdict v = verdicts[0];
      sess::ChunkHead head;  // (the key hint is at the start of the envelope, after a head)
      metric_rejected(lcf, v,
                      sess::chunk_head_parse(acc.values[0], &head) ? head.slice : acc.values[0]);
      reject(r, lcf, chunk_why != nullptr                       ? chunk_why
                     : v == sess::CandidateVerdict::Malformed   ? "malformed"
                     : v == sess::CandidateVerdict::FutureDated ? "timestamps in the future"
                                                                : "bad signature or unknown key");
    }
    return NGX_OK;
  }

  if (lcf->store != STORE_REDIS) return NGX_OK;
  if (!id_taken) {
    std::string_view id = s->payload_view();
    if (id.size() != sess::kSessionIdLen) {
      s->status = sess::LoadStatus::Invalid;
      metric(sess::Metric::CookiesRejected, sess::RejectReason::BadId);
      reject(r, lcf, "bad session id");
      return NGX_OK;
    }
    ngx_memcpy(s->id, id.data(), sess::kSessionIdLen);
  }
  s->has_id = 1;
  s->payload.clear();
  s->shared_payload = nullptr;
  s->retried = 0;
  if (lcf->redis_cache != nullptr) {
    // (The key on the stack: a hit builds nothing else. Prefixes are at most
    // kMaxPrefixLen, checked by nginx -t.)
    char buf[sess::kMaxPrefixLen + 2 * sess::kSessionIdLen];
    std::string_view key(buf, sess::redis_key_to(sv(lcf->prefix), s->id, sess::kSessionIdLen,
                                                 buf));
    auto st = static_cast<sess::CacheStatus>(redis_cache_lookup(r, lcf, key, &s->data));
    s->cache_status = static_cast<unsigned>(st);
    metric(sess::Metric::CacheLookups, static_cast<size_t>(st) - 1);  // (Hit, Miss, Bypass)
    if (st == sess::CacheStatus::Hit) {
      s->status = sess::LoadStatus::Valid;
      s->decoded = 1;  // the record's fields are the data
      return NGX_OK;
    }
    s->cache_miss = st == sess::CacheStatus::Miss;
  }
  if (!start_read(r, s, false)) {
    s->status = sess::LoadStatus::Error;
    s->store_error = 1;
    return NGX_OK;
  }
  s->loading = 1;
  s->loader = r;
  return NGX_AGAIN;
}

}  // namespace

ngx_int_t load_session(ngx_http_request_t* r, const loc_conf_t* lcf, loaded_t** out) {
  ctx_t* ctx = get_ctx(r, true);
  if (ctx == nullptr) return NGX_ERROR;
  loaded_t* s = &ctx->s;
  if (r != r->main && s->conf != nullptr && !same_binding(s->conf, lcf)) {
    // A subrequest under another configuration: a session of its own.
    auto* sub = static_cast<sub_ctx_t*>(ngx_http_get_module_ctx(r, ngx_http_session_module));
    if (sub == nullptr) {
      ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(sub_ctx_t));
      if (cln == nullptr) return NGX_ERROR;
      sub = new (cln->data) sub_ctx_t(r->pool);
      cln->handler = sub_ctx_cleanup;
      ngx_http_set_ctx(r, sub, ngx_http_session_module);
    }
    s = &sub->s;
  }
  *out = s;
  if (s->loading) {
    if (s->loader != r) {
      // Another request (a subrequest of the same page) is loading this session: wait for it.
      if (s->waiters == nullptr &&
          (s->waiters = ngx_array_create(r->pool, 2, sizeof(ngx_http_request_t*))) == nullptr) {
        return NGX_ERROR;
      }
      auto** w = static_cast<ngx_http_request_t**>(s->waiters->elts);
      bool known = false;
      for (ngx_uint_t i = 0; i < s->waiters->nelts; i++) known = known || w[i] == r;
      if (!known) {
        auto** slot = static_cast<ngx_http_request_t**>(ngx_array_push(s->waiters));
        if (slot == nullptr) return NGX_ERROR;
        *slot = r;
      }
    }
    return NGX_AGAIN;
  }
  if (s->conf != nullptr && same_binding(s->conf, lcf) &&
      !(s->store_error && lcf->redis_timeout > s->conf->redis_timeout)) {
    // (A lookup that failed under a shorter timeout - the server's - is tried again with this
    // location's longer one.)
    return NGX_OK;
  }
  return load(r, s, lcf);
}

namespace {

// The session was read for this response. Variables evaluated by filters that run after ours
// (add_header in static builds) still get their Vary: Cookie while the header is not sent.
void note_read(ngx_http_request_t* r, ctx_t* ctx) {
  ctx->read = 1;
  if (ctx->filter_done && !ctx->vary_added && r == r->main && !r->header_sent) {
    ctx->vary_added = 1;
    vary_cookie(r);
  }
}

}  // namespace

loaded_t* current_session(ngx_http_request_t* r) {
  loc_conf_t* lcf = loc_conf(r);
  if (lcf->secrets == nullptr) return nullptr;
  ctx_t* ctx = get_ctx(r, false);
  loaded_t* s = nullptr;
  if (ctx != nullptr) {
    s = &ctx->s;
    if (r != r->main) {
      auto* sub = static_cast<sub_ctx_t*>(ngx_http_get_module_ctx(r, ngx_http_session_module));
      if (sub != nullptr) s = &sub->s;
    }
    if (s->conf != nullptr && !s->loading && same_binding(s->conf, lcf)) {
      note_read(r, ctx);
      return s;
    }
  }
  if (lcf->store == STORE_REDIS) return nullptr;
  if (load_session(r, lcf, &s) != NGX_OK) return nullptr;
  note_read(r, get_ctx(r, false));
  return s;
}

namespace {

// ---------------------------------------------------------------------------------------------
// session_require and the store failure policy

// Accept: ... text/html ... on a GET or HEAD of a main request: a browser navigating.
bool is_browser(ngx_http_request_t* r) {
  if (r != r->main || !(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) return false;
  const ngx_str_t* accept = request_header(r, "accept");
  return accept != nullptr &&
         ngx_strlcasestrn(accept->data, accept->data + accept->len, (u_char*)"text/html",
                          9 - 1) != nullptr;
}

}  // namespace

ngx_int_t send_redirect(ngx_http_request_t* r, ngx_uint_t status, ngx_str_t to) {
  ngx_http_complex_value_t cv;
  ngx_memzero(&cv, sizeof(cv));
  cv.value = to;
  return ngx_http_send_response(r, status, nullptr, &cv);
}

// The answer to a request without a logged-in session in a protected location: 302 to the login
// page for browsers (main requests only), 401 otherwise (a subrequest's 302 would become a 500
// under auth_request).
ngx_int_t require_denial(ngx_http_request_t* r, const loc_conf_t* lcf, ngx_str_t* location) {
  if (lcf->require_uri.len == 0 || !is_browser(r)) return NGX_HTTP_UNAUTHORIZED;
  sess::pstring loc(std::pmr::new_delete_resource());
  loc.append(sv(lcf->require_uri));
  loc.append("?next=");
  sess::query_escape(sv(r->unparsed_uri), loc);
  if (!pool_str(r->pool, loc, location)) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  return NGX_HTTP_MOVED_TEMPORARILY;
}

namespace {

ngx_int_t deny(ngx_http_request_t* r, const loc_conf_t* lcf) {
  ngx_str_t location;
  ngx_int_t rc = require_denial(r, lcf, &location);
  metric_denied(rc);
  if (rc != NGX_HTTP_MOVED_TEMPORARILY) return rc;
  return send_redirect(r, NGX_HTTP_MOVED_TEMPORARILY, location);
}

ngx_int_t unavailable(ngx_http_request_t* r) {
  metric(sess::Metric::StoreRefusals);
  if (push_header(r, "Retry-After", "1") == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  return NGX_HTTP_SERVICE_UNAVAILABLE;
}

// SERVER_REWRITE phase, before the server-level rewrite directives: load the session under the
// server's configuration, so that they (`if ($session_user)`) see it with the Redis store too.
// A server-level `return` is checked against a server-level session_require by the header
// filter (which knows the response came from this phase): deciding here would also refuse the
// login page, whose location is not known yet.
ngx_int_t server_rewrite_handler(ngx_http_request_t* r) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR, [&]() -> ngx_int_t {
    loc_conf_t* lcf = loc_conf(r);
    if (lcf->secrets == nullptr || (lcf->store != STORE_REDIS && lcf->require != 1)) {
      return NGX_DECLINED;
    }
    loaded_t* s;
    ngx_int_t rc = load_session(r, lcf, &s);
    if (rc == NGX_AGAIN) return NGX_DONE;
    if (rc != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    return NGX_DECLINED;
  });
}

// REWRITE phase, before the rewrite module's handler (so that `return` and `if` come after):
// load the session under this location's configuration (again, if an internal redirect brought
// the request here from a location with another one), then apply the store failure policy and
// session_require. Subrequests are checked too.
ngx_int_t rewrite_handler(ngx_http_request_t* r) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR, [&]() -> ngx_int_t {
    loc_conf_t* lcf = loc_conf(r);
    ctx_t* ctx = get_ctx(r, false);
    if (ctx != nullptr && r == r->main && !ctx->in_rewrite) ctx->refused = 0;  // a new location
    if (r == r->main && (r->error_page || (r->internal && r->err_status >= NGX_HTTP_BAD_REQUEST))) {
      // An error page (any location, whether it has sessions or not): nothing is written.
      if (ctx == nullptr && (ctx = get_ctx(r, true)) == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
      }
      ctx->via_error_page = 1;
    }
    if (lcf->secrets == nullptr) return NGX_DECLINED;

    loaded_t* s;
    ngx_int_t rc = load_session(r, lcf, &s);
    if (rc == NGX_AGAIN) {
      if (r == r->main) {
        // Resumed when Redis answers; a client that goes away meanwhile ends the request, and
        // the pool cleanup cancels the lookup.
        get_ctx(r, false)->in_rewrite = 1;
        r->read_event_handler = ngx_http_test_reading;
      }
      return NGX_DONE;
    }
    if (rc != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    ctx = get_ctx(r, false);
    if (r == r->main && ctx->in_rewrite) {
      ctx->in_rewrite = 0;
      r->read_event_handler = ngx_http_block_reading;  // as it was before the lookup
    }

    // The login and logout endpoints themselves (by their content handler, so that a nested
    // location keeps its own session_require), the page the login renders, and session_jwks
    // (a public key, fetched server-to-server without a session).
    // (Asked only when there is something to refuse.)
    auto exempt = [&]() {
      return is_session_endpoint(r) || is_jwks_endpoint(r) || (r == r->main && ctx->login_page);
    };
    if (s->store_error && lcf->fail == FAIL_CLOSED && !exempt()) {
      if (r == r->main) ctx->refused = 1;
      return unavailable(r);
    }
    if (lcf->require == 1 && !exempt()) {
      ctx->read = 1;
      if (!logged_in(r, s)) {
        if (r == r->main) ctx->refused = 1;
        return deny(r, lcf);
      }
    }
    return NGX_DECLINED;
  });
}

// ---------------------------------------------------------------------------------------------
// Variables

ngx_int_t not_found(ngx_http_variable_value_t* v) {
  v->not_found = 1;
  v->no_cacheable = 1;
  return NGX_OK;
}

sess::LogLimiter ambiguous_log_limit(60);

ngx_int_t var_key(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t data) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_ERROR, [&]() -> ngx_int_t {
    auto* name = reinterpret_cast<ngx_str_t*>(data);
    std::string_view key = sv(*name).substr(sizeof("session_") - 1);
    const bool user = key == "user";
    if (user) key = sv(loc_conf(r)->user_key);  // session_user_key
    loaded_t* s = current_session(r);
    if (s == nullptr || s->status != sess::LoadStatus::Valid || !ensure_decoded(r, s)) {
      return not_found(v);
    }
    bool ambiguous = false;
    // $session_user is the user session_require checks: the exact key, no case variants.
    const sess::SessionValue* val =
        user ? sess::session_user(s->view(), key) : s->view().get_ci(key, &ambiguous);
    // ... and it is a user only as session_require counts one: a non-empty string (not a
    // Flask None, number, list or bytes shown as text).
    if (user && !sess::session_user_logged_in(val)) return not_found(v);
    if (ambiguous) {
      uint64_t more = 0;
      if (ambiguous_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "session has two keys that differ only in case for $%V: it is empty "
                      "(%uL more since the last such line)",
                      name, more);
      }
      return not_found(v);
    }
    if (val == nullptr) return not_found(v);
    if (s->conf->format == FORMAT_FLASK && !val->is_string) {
      // Flask's tagged values: tuple as a JSON array, bytes as base64, uuid as hex, ...
      sess::pstring text(&get_ctx(r, false)->mr);
      if (!flask_var_text(*val, text)) return not_found(v);
      if (sess::has_ctl(text)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "session key \"%V\" holds a control byte, $%V is empty", name, name);
        return not_found(v);
      }
      ngx_str_t copy;  // (text's bytes may be inside the string object itself)
      if (!pool_str(r->pool, text, &copy)) return NGX_ERROR;
      set_var(v, copy.data, copy.len);
      return NGX_OK;
    }
    if (sess::has_ctl(val->text)) {
      ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                    "session key \"%V\" holds a control byte, $%V is empty", name, name);
      return not_found(v);
    }
    set_var(v, reinterpret_cast<const u_char*>(val->text.data()), val->text.size());
    return NGX_OK;
  });
}

ngx_str_t status_names[] = {ngx_string("none"), ngx_string("valid"), ngx_string("expired"),
                            ngx_string("invalid"), ngx_string("error")};

ngx_int_t var_status(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_ERROR, [&]() -> ngx_int_t {
    loaded_t* s = current_session(r);
    if (s != nullptr) ensure_decoded(r, s);  // undecodable data makes it "invalid"
    auto st = static_cast<size_t>(s ? s->status : sess::LoadStatus::None);
    set_var(v, status_names[st].data, status_names[st].len);
    return NGX_OK;
  });
}

ngx_int_t var_expires(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_ERROR, [&]() -> ngx_int_t {
    loaded_t* s = current_session(r);
    if (s == nullptr || !ensure_decoded(r, s) || s->status != sess::LoadStatus::Valid) {
      return not_found(v);
    }
    auto* p = static_cast<u_char*>(ngx_pnalloc(r->pool, NGX_TIME_T_LEN));
    if (p == nullptr) return NGX_ERROR;
    uint64_t t = sess::expiry_expires_at(policy_of(s->conf), s->times);
    set_var(v, p, ngx_sprintf(p, "%uL", t) - p);
    return NGX_OK;
  });
}

ngx_int_t var_id(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_ERROR, [&]() -> ngx_int_t {
    loaded_t* s = current_session(r);
    if (s == nullptr || !s->has_id || s->status != sess::LoadStatus::Valid ||
        !ensure_decoded(r, s)) {
      set_var(v, reinterpret_cast<const u_char*>(""), 0);
      return NGX_OK;
    }
    if (s->conf->format == FORMAT_FLASK) {  // the Flask-Session id (checked: [A-Za-z0-9_-])
      set_var(v, s->flask_sid.data, s->flask_sid.len);
      return NGX_OK;
    }
    auto* p = static_cast<u_char*>(ngx_pnalloc(r->pool, 2 * sess::kSessionIdLen));
    if (p == nullptr) return NGX_ERROR;
    id_hex(s->id, p);
    set_var(v, p, 2 * sess::kSessionIdLen);
    return NGX_OK;
  });
}

ngx_http_variable_t variables[] = {
    {ngx_string("session_"), nullptr, var_key, 0,
     NGX_HTTP_VAR_NOCACHEABLE | NGX_HTTP_VAR_PREFIX, 0},
    {ngx_string("session_status"), nullptr, var_status, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_expires"), nullptr, var_expires, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_id"), nullptr, var_id, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_cache_status"), nullptr, var_cache_status, 0,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_csrf_token"), nullptr, var_csrf_token, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_jwt"), nullptr, var_session_jwt, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_login_error"), nullptr, var_login_str, LOGIN_VAR_ERROR,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_login_next"), nullptr, var_login_str, LOGIN_VAR_NEXT,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_login_username"), nullptr, var_login_str, LOGIN_VAR_USERNAME,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_login_password"), nullptr, var_login_str,
     LOGIN_VAR_PASSWORD, NGX_HTTP_VAR_NOCACHEABLE, 0},
    ngx_http_null_variable,
};

ngx_int_t preconfiguration(ngx_conf_t* cf) noexcept {
  for (ngx_http_variable_t* v = variables; v->name.len; v++) {
    ngx_http_variable_t* var = ngx_http_add_variable(cf, &v->name, v->flags);
    if (var == nullptr) return NGX_ERROR;
    var->get_handler = v->get_handler;
    var->data = v->data;
  }
  return NGX_OK;
}

ngx_int_t postconfiguration(ngx_conf_t* cf) noexcept {
  auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(
      ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
  // Pushed after the rewrite module's handlers, so they run before them (nginx runs the handlers
  // of one phase in reverse order of registration).
  auto* h = static_cast<ngx_http_handler_pt*>(
      ngx_array_push(&cmcf->phases[NGX_HTTP_SERVER_REWRITE_PHASE].handlers));
  if (h == nullptr) return NGX_ERROR;
  *h = server_rewrite_handler;
  h = static_cast<ngx_http_handler_pt*>(
      ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers));
  if (h == nullptr) return NGX_ERROR;
  *h = rewrite_handler;
  if (metrics_postconfiguration(cf) != NGX_OK) return NGX_ERROR;
  if (check_session_cookie_names(cf) != NGX_OK) return NGX_ERROR;
  return filter_init(cf);
}

// The phase engine is built after every module's postconfiguration: read its layout once.
ngx_int_t init_module(ngx_cycle_t* cycle) noexcept {
  if (cycle->conf_ctx[ngx_http_module.index] == nullptr) return NGX_OK;
  redis_cache_init_module(cycle);
  auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(
      ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module));
  size_t counts[sess::kPhaseCount];
  for (size_t i = 0; i < sess::kPhaseCount; i++) counts[i] = cmcf->phases[i].handlers.nelts;
  http_phases = sess::phase_layout(counts);
  if (http_phases.server_rewrite != cmcf->phase_engine.server_rewrite_index ||
      http_phases.rewrite != cmcf->phase_engine.location_rewrite_index) {
    ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                  "session: unexpected layout of nginx's request phases (this nginx version "
                  "is not supported)");
    return NGX_ERROR;
  }
  return NGX_OK;
}

ngx_int_t init_process(ngx_cycle_t* cycle) noexcept {
  metrics_init_process(cycle);
  return redis_init_process(cycle);
}

void exit_process(ngx_cycle_t* cycle) noexcept { redis_exit_process(cycle); }

ngx_http_module_t module_ctx = {
    preconfiguration,  postconfiguration, create_main_conf, nullptr,
    nullptr,           nullptr,           create_loc_conf,  merge_loc_conf,
};

}  // namespace

void set_var(ngx_http_variable_value_t* v, const u_char* data, size_t len) {
  v->len = len;
  v->data = const_cast<u_char*>(data);
  v->valid = 1;
  v->no_cacheable = 1;
  v->not_found = 0;
}

bool is_reserved_key(std::string_view key) {
  constexpr std::string_view prefix = "session_";
  for (ngx_http_variable_t* v = variables; v->name.len; v++) {
    std::string_view name = sv(v->name);
    if (name.size() <= prefix.size()) continue;  // the prefix variable itself
    std::string_view own = name.substr(prefix.size());
    if (own.size() == key.size() &&
        ngx_strncasecmp((u_char*)own.data(), (u_char*)key.data(), key.size()) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace ngx_session

extern "C" {
__attribute__((visibility("default"))) ngx_module_t ngx_http_session_module = {
    NGX_MODULE_V1,
    &ngx_session::module_ctx,
    ngx_session::commands,
    NGX_HTTP_MODULE,
    nullptr,
    ngx_session::init_module,
    ngx_session::init_process,
    nullptr,
    nullptr,
    ngx_session::exit_process,
    nullptr,
    NGX_MODULE_V1_PADDING,
};
}
