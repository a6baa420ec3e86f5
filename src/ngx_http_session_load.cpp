// Loading the session: which cookie is the session (candidates, chunks, cookie tossing), its
// verification (through the worker's verified-cookie table), and, for the Redis store, the
// record's lookup (session_redis_cache first, then the non-blocking read, v1 records migrated).
// In: the request's Cookie headers under a location's configuration. Out: the request's
// loaded_t (status, times, payload or record, decoded on first use), the variables' and
// session_require's view of it (current_session, logged_in). Rejected cookies are one
// rate-limited info line each and a metric.

#include "ngx_http_session.h"

#include "ngx_http_session_metrics.h"

#include "core/verified_cache.h"

#include <cstring>
#include <memory>

namespace ngx_session {

namespace {

const ngx_clock clock_now;


// A subrequest whose location makes sessions under another configuration than the main
// request's keeps its own (read-only) session.
struct sub_ctx_t {
  pool_resource mr;
  loaded_t s;
  explicit sub_ctx_t(ngx_pool_t* pool) : mr(pool), s(&mr) {}
};

void sub_ctx_cleanup(void* data) noexcept { static_cast<sub_ctx_t*>(data)->~sub_ctx_t(); }

}  // namespace

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

// A hold in a pool cleanup of its own (a request's second one, or one without a ctx).
[[gnu::noinline]] bool hold_in_cleanup(ngx_http_request_t* r,
                                       const sess::VerifiedCache::Entry* hit) {
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(shared_hold_t));
  if (cln == nullptr) return false;
  new (cln->data) shared_hold_t(hit->shared.share());
  cln->handler = release_shared_hold;
  return true;
}

inline bool hold_until_request_ends(ngx_http_request_t* r,
                                    const sess::VerifiedCache::Entry* hit) {
  // Usually the one hold of the request: in its ctx, released with it (no cleanup of its own).
  ctx_t* ctx = get_ctx(r, false);
  if (ctx != nullptr && !ctx->hold_used) {
    ctx->hold_used = 1;
    ctx->hold = hit->shared.share();
    return true;
  }
  return hold_in_cleanup(r, hit);
}

sess::VerifiedBinding verified_binding(const loc_conf_t* lcf) {
  return sess::VerifiedBinding{lcf->secrets->ring->id(), cookie_kind(lcf), sv(lcf->cookie.name)};
}

}  // namespace

bool decode_session(ngx_http_request_t* r, loaded_t* s) {
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

// s->kept_cookie as a cache entry keeps it (the proof of an id cookie naming s->id, under s's
// binding; c's proof is in *e); false if there is none.
bool kept_cookie_of(const loaded_t* s, sess::IdEnvelope* e, cache_cookie_t* c) {
  if (s->kept_cookie.empty() || !sess::envelope_peek_id(s->kept_cookie, e) ||
      std::memcmp(e->id, s->id, sess::kSessionIdLen) != 0) {
    return false;
  }
  c->ring = s->conf->secrets->ring->id();
  c->name = sv(s->conf->cookie.name);
  c->proof = e->proof;
  return true;
}

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
    cache_cookie_t cookie;
    sess::IdEnvelope e;  // (the cookie's proof)
    return redis_cache_read(r, s->conf, key, lookup_done, s, &kLookupLimits,
                            kept_cookie_of(s, &e, &cookie) ? &cookie : nullptr);
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
    case sess::RecordRead::Failed:
      lookup_failed(r, s, reply, lookup_log_limit);
      break;
  }
  if (s->status != sess::LoadStatus::Valid) s->data.clear();
  lookup_resume(r, s);
}

}  // namespace

void lookup_failed(ngx_http_request_t* r, loaded_t* s, const sess::RespValue* reply,
                   sess::LogLimiter& limit) {
  s->status = sess::LoadStatus::Error;
  s->store_error = 1;
  uint64_t more = 0;
  if (!limit.allow(static_cast<uint64_t>(ngx_time()), &more)) return;
  std::string_view why = reply == nullptr ? std::string_view("no answer")
                         : reply->type == sess::RespType::Error
                             ? std::string_view(reply->str)
                             : std::string_view("an unexpected reply");
  ngx_str_t msg = log_safe(r, why, 240);
  ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                "session redis \"%V\": lookup failed: %V (%uL more since the last such line)",
                redis_name(s->conf), &msg, more);
}

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

// A verified-table hit becomes the session's payload (held until the request ends, with its
// decoded data if the entry has it), or for the Redis store the id it holds (copied: nothing
// held; *id_taken). The entry must be the one just found (nothing inserted since).
[[gnu::always_inline]] inline bool take_hit(ngx_http_request_t* r, loaded_t* s,
                                            const loc_conf_t* lcf,
                                            const sess::VerifiedCache::Entry* hit,
                                            bool* id_taken) {
  if (lcf->store == STORE_REDIS && hit->payload().size() == sess::kSessionIdLen) {
    ngx_memcpy(s->id, hit->payload().data(), sess::kSessionIdLen);
    *id_taken = true;
    return true;
  }
  if (!hold_until_request_ends(r, hit)) return false;
  s->shared_payload = &hit->payload();
  if (hit->data() != nullptr && lcf->store != STORE_REDIS) {
    s->shared = hit->data();
    s->decoded = 1;
  }
  return true;
}

// A cache hit: the record is in s->data (the id in s->id).
void cache_hit(loaded_t* s) {
  s->has_id = 1;
  s->payload.clear();
  s->shared_payload = nullptr;
  s->retried = 0;
  s->cache_status = static_cast<unsigned>(sess::CacheStatus::Hit);
  metric(sess::Metric::CacheLookups, static_cast<size_t>(sess::CacheStatus::Hit) - 1);
  s->status = sess::LoadStatus::Valid;
  s->decoded = 1;  // the record's fields are the data
}

// The rest of a load whose cookie is valid (s->status): for the Redis store, the session id and
// its record (from the cache, or a lookup started: NGX_AGAIN). id_taken: s->id is set already.
// keep: s->kept_cookie was verified by envelope_open just now, and a cache hit's entry keeps it
// (replacing the one it kept: the cookie was renewed, or another of the session's is in use).
ngx_int_t load_valid(ngx_http_request_t* r, loaded_t* s, const loc_conf_t* lcf, bool id_taken,
                     bool keep = false) {
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
    cache_cookie_t cookie;
    sess::IdEnvelope e;  // (the cookie's proof)
    keep = keep && kept_cookie_of(s, &e, &cookie);
    auto st = static_cast<sess::CacheStatus>(
        redis_cache_lookup(r, lcf, key, &s->data, keep ? &cookie : nullptr, keep));
    if (st == sess::CacheStatus::Hit) {
      cache_hit(s);
      return NGX_OK;
    }
    s->cache_status = static_cast<unsigned>(st);
    metric(sess::Metric::CacheLookups, static_cast<size_t>(st) - 1);  // (Miss, Bypass)
    s->cache_miss = st == sess::CacheStatus::Miss;
  }
  return read_sent(r, s, start_read(r, s, false));
}

// The Redis store with session_redis_cache, one cookie that this worker's verified-cookie table
// does not hold: if the zone's entry for the session its value names keeps that value's proof
// (header and MAC) under this binding, as a worker verified it (see redis_cache_lookup), the
// cookie is valid without checking its HMAC again - with thousands of sessions in turn the table
// cannot hold them, the zone can. Its times and id are what the value says (envelope_peek_id:
// with the id and the proof equal, the value is the one verified); the expiry is checked as
// always. True if that made the load (s: a cache hit); false
// (s untouched) for the usual way, which tells an expired or forged cookie from a valid one.
bool load_kept(ngx_http_request_t* r, loaded_t* s, const loc_conf_t* lcf, std::string_view value,
               const sess::ExpiryPolicy& policy) {
  cache_cookie_t cookie;
  sess::IdEnvelope e;
  if (!sess::envelope_peek_id(value, &e) ||
      sess::expiry_check(policy, e.times, clock_now) != sess::Verdict::Valid) {
    return false;
  }
  char buf[sess::kMaxPrefixLen + 2 * sess::kSessionIdLen];
  std::string_view key(buf, sess::redis_key_to(sv(lcf->prefix), e.id, sess::kSessionIdLen, buf));
  cookie.ring = lcf->secrets->ring->id();
  cookie.name = sv(lcf->cookie.name);
  cookie.proof = e.proof;
  if (static_cast<sess::CacheStatus>(redis_cache_lookup(r, lcf, key, &s->data, &cookie)) !=
      sess::CacheStatus::Hit) {
    return false;
  }
  ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                 "session: cookie is the one the cache entry keeps as verified");
  s->times = e.times;
  ngx_memcpy(s->id, e.id, sess::kSessionIdLen);
  cache_hit(s);
  return true;
}

// The candidates of a load that the fast path in load did not settle (several cookies of the
// name, a chunk head, or one cookie this worker's table does not hold as valid: only is its
// entry there, if any), each verified in turn. Out of line: its frame (verdicts, the scratch
// payload, the chunks) is not built on every request.
[[gnu::noinline]] ngx_int_t load_candidates(ngx_http_request_t* r, loaded_t* s,
                                            const loc_conf_t* lcf,
                                            const sess::CookieCandidates& acc,
                                            const sess::VerifiedCache::Entry* only) {
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
  bool opened = false;    // the valid cookie was verified here (envelope_open), not chunked
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
    // (acc.count 1 and not chunked: this is the one cookie the fast path looked up.)
    const sess::VerifiedCache::Entry* hit = chunked           ? nullptr
                                            : acc.count == 1 ? only
                                                             : cache->find(binding, value);
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
          if (hit != nullptr) {
            if (!take_hit(r, s, lcf, hit, &id_taken)) return NGX_ERROR;
          } else {
            s->payload.swap(payload);
            opened = !chunked;
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

  if (opened && acc.count == 1 && lcf->redis_cache != nullptr) {
    // The zone's entry keeps the cookie just verified (or the fill that a miss starts stores it
    // with the record): the next request with it, in any worker, is checked against that
    // (load_kept).
    s->kept_cookie = acc.values[0];
    return load_valid(r, s, lcf, id_taken, true);
  }
  return load_valid(r, s, lcf, id_taken);
}

// Reads and verifies the session cookie(s) of r under lcf into s. For the Redis store, starts the
// lookup (NGX_AGAIN).
// (Inlined into load_session, its one caller: one frame less on every request.)
[[gnu::always_inline]] inline ngx_int_t load(ngx_http_request_t* r, loaded_t* s,
                                             const loc_conf_t* lcf) {
  if (lcf->format == FORMAT_FLASK) return flask_load(r, s, lcf);  // src/ngx_http_session_flask.cpp
  // Never loaded (conf is set here and by reset only): every field is still as the constructor
  // made it, so the reset is skipped (~20 instructions a request).
  if (s->conf != nullptr) {
    s->reset(lcf);
  } else {
    s->conf = lcf;
  }
  sess::CookieCandidates acc;
  collect_cookie(r, sv(lcf->cookie.name), acc);
  if (acc.count == 0) return NGX_OK;
  s->had_cookie = 1;
  // One cookie, not a chunk head: the table's entry for it, looked up once (load_candidates
  // takes it from here: nothing is inserted before).
  const sess::VerifiedCache::Entry* only = nullptr;
  if (acc.count == 1 && !sess::chunk_head_like(acc.values[0])) {
    // The usual request: one cookie, verified before and still valid (anything else, a miss
    // included, takes load_candidates).
    only = verified_cache()->find(verified_binding(lcf), acc.values[0]);
    const sess::ExpiryPolicy policy = policy_of(lcf);
    if (only != nullptr &&
        sess::expiry_check(policy, only->times, clock_now) == sess::Verdict::Valid) {
      bool id_taken = false;  // (Redis store: the id copied out of the entry, nothing held)
      s->times = only->times;
      if (!take_hit(r, s, lcf, only, &id_taken)) return NGX_ERROR;
      s->cached_value = acc.values[0];
      s->status = sess::LoadStatus::Valid;
      // (A miss's fill stores it with the record; a hit's entry is not changed.)
      if (lcf->redis_cache != nullptr) s->kept_cookie = acc.values[0];
      return load_valid(r, s, lcf, id_taken);
    }
    if (only == nullptr && lcf->redis_cache != nullptr && lcf->store == STORE_REDIS &&
        load_kept(r, s, lcf, acc.values[0], policy)) {
      return NGX_OK;
    }
  }
  return load_candidates(r, s, lcf, acc, only);
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

}  // namespace ngx_session
