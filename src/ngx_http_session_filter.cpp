// ngx_http_session_module: the header and body filters - the only place that writes a session.
//
// For each main request's response the header filter
//   1. answers for a server-level session_require when the response came from the server's own
//      rewrite directives (a server-level `return`), which run before any location is chosen;
//   2. asks the gate (core/gate.h) whether this response may write at all: not if the access
//      phase refused the request, not for subrequests;
//   3. applies the location's actions to a copy of the session (variables keep showing the
//      session as loaded), and lets the core decide the write (core/write_plan.h);
//   4. with the Redis store, sends the write and holds the response - header and body - until
//      Redis has confirmed it: a refused write becomes a 503 with no Set-Cookie, never a
//      response that claims a change that did not happen;
//   5. marks responses that write the session cookie private (Cache-Control) and responses that
//      depended on the session with Vary: Cookie.
// nginx runs this filter before its headers filter (`expires`, `add_header`): static addon
// filters cannot be ordered after it. So "private" goes on a Cache-Control line of its own that
// `expires` does not overwrite, and a $session_* variable that add_header reads later adds its
// Vary: Cookie from the variable's handler (note_read).

#include "ngx_http_session.h"
#include "ngx_http_session_metrics.h"

#include "core/gate.h"
#include "core/origin.h"
#include "core/user_index.h"

namespace ngx_session {

// A session write waiting for Redis, and the response held meanwhile.
struct write_t {
  sess::WritePlan plan;
  sess::IndexPlan ix;             // what it does to the user index (core/user_index.h)
  const loc_conf_t* lcf;
  sess::Times times;              // of the session being written
  uint64_t ttl;                   // of its record (seconds)
  unsigned char id[sess::kSessionIdLen];      // the id the cookie will carry
  unsigned char old_id[sess::kSessionIdLen];  // the id loaded (deleted after a new one is made)
  ngx_str_t user_before;          // the loaded session's user (whose index has the old id)
  ngx_str_t user_after;           // the user of the data written
  ngx_str_t end_user;             // every session of this user ends first (logout-all,
                                  // session_destroy_user); empty: none
  ngx_str_t end_except;           // ... but this index member (a logout-all's own session)
  sess::WriteOutcome outcome;     // of the record write
  ngx_chain_t* held;              // body buffers that arrived while holding
  unsigned holding : 1;
  unsigned replaced : 1;          // the response became a 503: its own body is dropped
  unsigned undo : 1;              // the new record is deleted again (STEP_UNDO_NEW)
  unsigned end_logout_all : 1;    // end_user is a logout-all's (else session_destroy_user's)
  unsigned end_failed : 1;        // ... and not every other session could be ended
  unsigned step : 4;              // what the reply being waited for answers (write_step_e)
};

// The Redis commands of one write, in order; each is sent when the one before was confirmed,
// and a step that does not apply is skipped (drive). First the sessions a logout-all or
// session_destroy_user ends (all of the user's, through the user index). Then the record write
// (a create, update, touch or delete), with the user index kept around it (core/user_index.h:
// an entry is added before an existing record takes a user, after a new record is confirmed,
// and removed after a record is gone). For a login the DEL of the previous id follows; for
// session_regenerate the new record is created first, then the old one claimed (replaced by a
// marker, only if it still holds the data the new one was made from), and if a logout, another
// regenerate or a change was first the new record is deleted again - so a logout is final
// across Cluster slots too, and nothing changed meanwhile is lost.
enum write_step_e : unsigned {
  STEP_END_USER, STEP_INDEX_BEFORE, STEP_RECORD, STEP_INDEX_ADD, STEP_CLAIM_OLD,
  STEP_DELETE_OLD, STEP_INDEX_REMOVE, STEP_UNDO_NEW
};

namespace {

ngx_http_output_header_filter_pt next_header_filter;
ngx_http_output_body_filter_pt next_body_filter;

// r->buffered bit while a response is held (0x01-0x04 are nginx's SSI, sub and copy filters).
constexpr unsigned kBuffered = 0x08;

const ngx_clock clock_now;
sess::LogLimiter oversize_log_limit;

bool secure_for(ngx_http_request_t* r, ngx_uint_t secure) {
  if (secure == SECURE_ON) return true;
#if (NGX_HTTP_SSL)
  if (secure == SECURE_AUTO) return r->connection->ssl != nullptr;
#endif
  return false;
}

}  // namespace

sess::CookieAttrs session_attrs(ngx_http_request_t* r, const loc_conf_t* lcf) {
  sess::CookieAttrs a;
  a.path = sv(lcf->cookie.path);
  a.domain = sv(lcf->cookie.domain);
  a.max_age = lcf->cookie.max_age;
  a.secure = secure_for(r, lcf->cookie.secure);
  a.httponly = lcf->cookie.httponly;
  a.samesite = static_cast<sess::SameSite>(lcf->cookie.samesite);
  a.partitioned = lcf->cookie.partitioned;
  return a;
}

ngx_table_elt_t* push_header(ngx_http_request_t* r, std::string_view key, std::string_view value) {
  auto* h = static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
  if (h == nullptr) return nullptr;
  h->hash = 1;
  h->key.len = key.size();
  h->key.data = reinterpret_cast<u_char*>(const_cast<char*>(key.data()));
  if (!pool_str(r->pool, value, &h->value)) {
    h->hash = 0;
    return nullptr;
  }
#if (nginx_version >= 1023000)
  h->next = nullptr;
#endif
  return h;
}

bool add_set_cookie(ngx_http_request_t* r, std::string_view name, std::string_view value,
                    const sess::CookieAttrs& a, sess::pstring& buf) {
  buf.clear();
  sess::cookie_build(name, value, a, buf);
  if (buf.size() > sess::kMaxSetCookieLen) {
    uint64_t more = 0;
    if (oversize_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
      ngx_str_t n = log_safe(r, name);
      ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                    "cookie \"%V\" too large (%uz bytes, browsers accept %uz): not sent; keep "
                    "less data in it, or use \"session_store redis\" (%uL more since the last "
                    "such line)",
                    &n, buf.size(), sess::kMaxSetCookieLen, more);
    }
    return false;
  }
  return push_header(r, "Set-Cookie", buf) != nullptr;
}

void delete_cookie(ngx_http_request_t* r, std::string_view name, sess::CookieAttrs a,
                   sess::pstring& buf) {
  a.max_age = 0;
  a.expires = 0;
  add_set_cookie(r, name, "", a, buf);
}

namespace {

// ---------------------------------------------------------------------------------------------
// Responses the module answers instead

// Turns the response about to be sent into an empty one with `status` (and Location), dropping
// every header it had. Producers stop after the header (header_only); a held body is dropped.
bool replace_response(ngx_http_request_t* r, ngx_uint_t status, const ngx_str_t* location) {
  for (ngx_list_part_t* part = &r->headers_out.headers.part; part; part = part->next) {
    auto* h = static_cast<ngx_table_elt_t*>(part->elts);
    for (ngx_uint_t i = 0; i < part->nelts; i++) h[i].hash = 0;
  }
  r->headers_out.status = status;
  r->headers_out.status_line.len = 0;
  ngx_http_clear_content_length(r);
  ngx_http_clear_accept_ranges(r);
  ngx_http_clear_last_modified(r);
  ngx_http_clear_etag(r);
  ngx_http_clear_location(r);
  r->headers_out.content_type.len = 0;
  r->headers_out.content_type_len = 0;
  r->headers_out.content_type_lowcase = nullptr;
  r->headers_out.charset.len = 0;
  r->headers_out.content_length_n = 0;
  r->headers_out.content_encoding = nullptr;
  r->header_only = 1;
  r->allow_ranges = 0;
  if (location != nullptr) {
    ngx_table_elt_t* h = push_header(r, "Location", sv(*location));
    if (h == nullptr) return false;
    r->headers_out.location = h;
  }
  if (status == NGX_HTTP_SERVICE_UNAVAILABLE && push_header(r, "Retry-After", "1") == nullptr) {
    return false;
  }
  return true;
}

// Cache-Control: private. An upstream's public and s-maxage are removed from its lines; unless a
// line says private or no-store already, a line of our own says private. It is not registered as
// the response's cache_control header, so that `expires` (applied after this filter in static
// builds) sets max-age on a line of its own instead of overwriting ours.
bool make_private(ngx_http_request_t* r) {
  bool has_private = false;  // or no-store, which is stronger
  for (ngx_list_part_t* part = &r->headers_out.headers.part; part; part = part->next) {
    auto* h = static_cast<ngx_table_elt_t*>(part->elts);
    for (ngx_uint_t i = 0; i < part->nelts; i++) {
      if (h[i].hash == 0 || h[i].key.len != 13 ||
          ngx_strncasecmp(h[i].key.data, (u_char*)"cache-control", 13) != 0) {
        continue;
      }
      sess::pstring value(std::pmr::new_delete_resource());
      std::string_view rest = sv(h[i].value);
      bool dropped = false;
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::string_view d = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        d = sess::trim_wsp(d);
        if (d.empty()) continue;
        std::string_view name = sess::trim_wsp(d.substr(0, d.find('=')));
        auto is = [&](std::string_view w) {
          return name.size() == w.size() &&
                 ngx_strncasecmp((u_char*)name.data(), (u_char*)w.data(), w.size()) == 0;
        };
        if (is("public") || is("s-maxage")) {
          dropped = true;
          continue;
        }
        if (is("private") || is("no-store")) has_private = true;
        if (!value.empty()) value.append(", ");
        value.append(d);
      }
      if (!dropped) continue;
      if (value.empty()) {
        h[i].hash = 0;
      } else if (!pool_str(r->pool, value, &h[i].value)) {
        return false;
      }
    }
  }
  return has_private || push_header(r, "Cache-Control", "private") != nullptr;
}

}  // namespace

// Vary: Cookie, added to the response's Vary unless it lists Cookie (or *) already.
bool vary_cookie(ngx_http_request_t* r) {
  ngx_table_elt_t* vary = nullptr;
  bool listed = find_header(&r->headers_out.headers, [&](const ngx_table_elt_t& h) {
    if (h.hash == 0 || h.key.len != 4 || ngx_strncasecmp(h.key.data, (u_char*)"vary", 4) != 0) {
      return false;
    }
    vary = const_cast<ngx_table_elt_t*>(&h);
    return ngx_strlcasestrn(h.value.data, h.value.data + h.value.len, (u_char*)"cookie",
                            6 - 1) != nullptr ||
           (h.value.len == 1 && h.value.data[0] == '*');
  });
  if (listed) return true;
  if (vary == nullptr) {
    // (A constant value: nothing copies it, and nginx only ever replaces a header's value.)
    auto* h = static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr) return false;
    h->hash = 1;
    ngx_str_set(&h->key, "Vary");
    ngx_str_set(&h->value, "Cookie");
#if (nginx_version >= 1023000)
    h->next = nullptr;
#endif
    return true;
  }
  ngx_str_t v;
  v.len = vary->value.len + sizeof(", Cookie") - 1;
  v.data = static_cast<u_char*>(ngx_pnalloc(r->pool, v.len));
  if (v.data == nullptr) return false;
  ngx_memcpy(ngx_cpymem(v.data, vary->value.data, vary->value.len), ", Cookie", 8);
  vary->value = v;
  return true;
}

namespace {

// An HTML response to a request that carried the session cookie may show the session through
// SSI, which reads variables only after the header is out: it varies on Cookie too.
bool html_with_session(ngx_http_request_t* r, ctx_t* ctx) {
  const ngx_str_t& t = r->headers_out.content_type;
  return ctx->s.had_cookie && t.len >= 9 && ngx_strncasecmp(t.data, (u_char*)"text/html", 9) == 0;
}

[[gnu::always_inline]] inline void cache_headers(ngx_http_request_t* r, ctx_t* ctx, bool wrote_cookie) {
  if (wrote_cookie) make_private(r);
  if (wrote_cookie || ctx->read || html_with_session(r, ctx)) {
    vary_cookie(r);
    ctx->vary_added = 1;
  }
}

// ---------------------------------------------------------------------------------------------
// The write

// The data the response writes: the actions' copy, or the session as loaded (renewal).
const sess::SessionData* data_to_write(ngx_http_request_t* r, ctx_t* ctx) {
  if (ctx->next != nullptr) return ctx->next;
  ensure_decoded(r, &ctx->s);
  return &ctx->s.view();
}

bool seal_cookie(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf, write_t* w,
                 sess::pstring& value) {
  std::string_view name = sv(lcf->cookie.name);
  if (lcf->format == FORMAT_FLASK) return flask_seal_cookie(r, ctx, lcf, value);
  if (lcf->store == STORE_REDIS) {
    std::string_view id(reinterpret_cast<const char*>(w->id), sess::kSessionIdLen);
    return sess::envelope_seal(*lcf->secrets->ring, sess::Kind::Id, name, w->times, id, value);
  }
  sess::pstring json(&ctx->mr);
  if (ctx->next != nullptr) {
    ctx->next->encode(json);
  } else {
    json = ctx->s.payload_view();  // renewal: the payload received is sealed again as it is
  }
  return sess::envelope_seal(*lcf->secrets->ring, cookie_kind(lcf), name, w->times, json, value);
}

// Expires the request's chunk cookies NAME_i (core/chunks.h) that a response writing `count`
// cookies of the session (0: expiring it) does not rewrite, with the session cookie's path and
// domain. Looked for only where sessions are chunked (chunks=) or the request's cookie was a
// chunk head (chunks= lowered since): nothing to do for anyone else.
void expire_stale_chunks(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf,
                         const sess::CookieAttrs& attrs, size_t count, sess::pstring& buf) {
  if (chunks_of(lcf) <= 1 && !ctx->s.chunk_head) return;
  std::string_view name = sv(lcf->cookie.name);
  sess::ChunkCookies sent;
  collect_chunks(r, name, sent);
  uint32_t stale = sess::chunk_stale(sent.present, count);
  sess::pstring chunk(&ctx->mr);
  for (size_t i = 1; i < sess::kMaxChunks; i++) {
    if (!(stale & (1u << i))) continue;
    chunk.clear();
    sess::chunk_name(name, i, chunk);
    delete_cookie(r, chunk, attrs, buf);
  }
}

// The Set-Cookie lines of the session cookie with this value: NAME alone when its line fits in
// kMaxSetCookieLen (exactly as without chunks), else the fewest of NAME (the head), NAME_1, ...
// that chunks= allows, every line within kMaxSetCookieLen (core/chunks.h); then the request's
// chunks that are not rewritten are expired. All or nothing: a value that does not fit is not
// sent at all (one error line) and the cookies the browser has stay as they are.
bool set_session_cookie(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf,
                        std::string_view value, const sess::CookieAttrs& attrs,
                        sess::pstring& buf) {
  std::string_view name = sv(lcf->cookie.name);
  size_t max = chunks_of(lcf);
  if (max <= 1) {
    if (!add_set_cookie(r, name, value, attrs, buf)) return false;
    expire_stale_chunks(r, ctx, lcf, attrs, 1, buf);
    return true;
  }
  buf.clear();
  sess::cookie_build(name, "", attrs, buf);
  sess::ChunkSplit split = sess::chunk_split(value.size(), buf.size(), max);
  if (split.count == 0) {
    uint64_t more = 0;
    if (oversize_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
      ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                    "cookie \"%V\" too large (a value of %uz bytes, %uz cookies of %uz bytes "
                    "hold %uz): not sent; keep less data in it, raise chunks=, or use "
                    "\"session_store redis\" (%uL more since the last such line)",
                    &lcf->cookie.name, value.size(), max, sess::kMaxSetCookieLen,
                    split.capacity, more);
    }
    return false;
  }
  ngx_str_t lines[sess::kMaxChunks];
  sess::pstring chunk(&ctx->mr);
  sess::pstring chunk_val(&ctx->mr);
  for (size_t i = 0; i < split.count; i++) {
    chunk.clear();
    chunk_val.clear();
    if (i == 0) {
      chunk.append(name.data(), name.size());
    } else {
      sess::chunk_name(name, i, chunk);
    }
    sess::chunk_value(split, value, i, chunk_val);
    buf.clear();
    sess::cookie_build(chunk, chunk_val, attrs, buf);
    if (buf.size() > sess::kMaxSetCookieLen) {  // (chunk_split's arithmetic says never)
      ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                    "session: chunk %uz of cookie \"%V\" is %uz bytes: not sent", i,
                    &lcf->cookie.name, buf.size());
      return false;
    }
    if (!pool_str(r->pool, buf, &lines[i])) return false;
  }
  for (size_t i = 0; i < split.count; i++) {
    if (push_header(r, "Set-Cookie", sv(lines[i])) == nullptr) return false;
  }
  expire_stale_chunks(r, ctx, lcf, attrs, split.count, buf);
  return true;
}

// Adds the session cookie's Set-Cookie per the plan. True if a Set-Cookie was added.
bool write_cookie(ngx_http_request_t* r, ctx_t* ctx, write_t* w) {
  const loc_conf_t* lcf = w->lcf;
  sess::pstring buf(&ctx->mr);
  std::string_view name = sv(lcf->cookie.name);
  sess::CookieAttrs attrs = session_attrs(r, lcf);
  if (lcf->format == FORMAT_FLASK) flask_cookie_attrs(r, ctx, lcf, &attrs);
  if (w->plan.cookie == sess::CookieWrite::Expire) {
    delete_cookie(r, name, attrs, buf);
    expire_stale_chunks(r, ctx, lcf, attrs, 0, buf);
    return true;
  }
  if (w->plan.cookie != sess::CookieWrite::Set) return false;
  sess::pstring value(&ctx->mr);
  if (!seal_cookie(r, ctx, lcf, w, value)) {
    ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "session: sealing the cookie failed");
    return false;
  }
  return set_session_cookie(r, ctx, lcf, value, attrs, buf);
}

// Sends the held response on (or the 503 that replaced it) and wakes the request's writer.
// Marks held buffers as sent (their producer may reuse them) without sending them.
void drop(ngx_chain_t* cl) {
  for (; cl; cl = cl->next) {
    cl->buf->pos = cl->buf->last;
    cl->buf->file_pos = cl->buf->file_last;
  }
}

// Sends the held response on (or the 503 that replaced it) and wakes the request's writer.
ngx_int_t release(ngx_http_request_t* r, ctx_t* ctx, write_t* w, bool from_filter) {
  w->holding = 0;
  r->buffered &= ~kBuffered;
  ngx_int_t rc = next_header_filter(r);
  if (from_filter) return rc;
  // The later header filters saw the header only now. A response without a body (HEAD, 304,
  // 204, header_only) or one they refused must not get the body its producer sent meanwhile:
  // that would be read by the client as the next response.
  if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
    drop(w->held);
    w->replaced = 1;  // and whatever the producer still sends
    if (rc == NGX_ERROR || rc > NGX_OK) r->connection->error = 1;
  } else if (w->held != nullptr && !w->replaced) {
    rc = next_body_filter(r, w->held);
    if (rc == NGX_ERROR) r->connection->error = 1;
  }
  w->held = nullptr;
  ngx_post_event(r->connection->write, &ngx_posted_events);
  return rc;
}

ngx_int_t finish(ngx_http_request_t* r, ctx_t* ctx, write_t* w, sess::AfterWrite a,
                 bool from_filter) {
  bool wrote = false;
  switch (a) {
    case sess::AfterWrite::Proceed:
      wrote = write_cookie(r, ctx, w);
      if (wrote) metric_session_written(ctx, w->plan);
      break;
    case sess::AfterWrite::DropCookie:
      break;
    case sess::AfterWrite::Refuse:
    case sess::AfterWrite::RefuseExpire:
      metric(sess::Metric::StoreRefusals);
      if (!replace_response(r, NGX_HTTP_SERVICE_UNAVAILABLE, nullptr)) {
        return from_filter ? NGX_ERROR : (r->connection->error = 1, NGX_ERROR);
      }
      w->replaced = 1;
      drop(w->held);
      w->held = nullptr;
      if (a == sess::AfterWrite::RefuseExpire) wrote = write_cookie(r, ctx, w);
      break;
  }
  cache_headers(r, ctx, wrote);
  return release(r, ctx, w, from_filter);
}

sess::LogLimiter write_log_limit(1, 10);

void log_write_failure(ngx_http_request_t* r, const write_t* w, const char* what,
                       sess::WriteOutcome o, const sess::RespValue* reply) {
  uint64_t more = 0;
  if (o == sess::WriteOutcome::Done ||
      !write_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
    return;
  }
  if (more) {
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "session redis: %uL more failed writes since the last such line", more);
  }
  switch (o) {
    case sess::WriteOutcome::Done:
      return;
    case sess::WriteOutcome::Gone:
      ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                    "session redis: %s: the session ended meanwhile (logout?), not written", what);
      return;
    case sess::WriteOutcome::Moved:
      ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                    "session redis: %s: another request gave the session a new id meanwhile "
                    "(session_regenerate), not written", what);
      return;
    case sess::WriteOutcome::Changed:
      ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                    "session redis: %s: another request changed the session meanwhile, not "
                    "moved (the client may retry)", what);
      return;
    case sess::WriteOutcome::Refused: {
      // Redis's own words, long enough for an ACL refusal to name the command it refused.
      ngx_str_t msg = log_safe(r, reply != nullptr ? std::string_view(reply->str)
                                                    : std::string_view(), 240);
      ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                    "session redis \"%V\": %s refused: %V", redis_name(w->lcf), what, &msg);
      return;
    }
    case sess::WriteOutcome::Exists:
      ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                    "session redis \"%V\": %s: the new id exists already", redis_name(w->lcf),
                    what);
      return;
    case sess::WriteOutcome::Failed:
      ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                    "session redis \"%V\": %s not confirmed (no answer)", redis_name(w->lcf),
                    what);
      return;
  }
}

const char* record_what(const write_t* w) {
  if (w->plan.logout) return "logout: the session record could not be deleted;";
  switch (w->step) {
    case STEP_DELETE_OLD: return "deleting the previous session record";
    case STEP_CLAIM_OLD: return "taking over the previous session record";
    case STEP_UNDO_NEW: return "deleting the new session record again";
    default: break;
  }
  switch (w->plan.record) {
    case sess::RecordWrite::Create: return "creating the session record";
    case sess::RecordWrite::Update: return "updating the session record";
    case sess::RecordWrite::Touch: return "refreshing the session record's TTL";
    case sess::RecordWrite::Delete: return "deleting the session record";
    case sess::RecordWrite::Move: return "creating the session record under a new id";
    default: return "writing the session record";
  }
}

sess::RecordWriteKind write_kind(const write_t* w) {
  switch (w->step) {
    case STEP_DELETE_OLD:
    case STEP_UNDO_NEW: return sess::RecordWriteKind::Delete;
    case STEP_CLAIM_OLD: return sess::RecordWriteKind::Claim;
    default: break;
  }
  switch (w->plan.record) {
    case sess::RecordWrite::Create:
    case sess::RecordWrite::Move: return sess::RecordWriteKind::Create;
    case sess::RecordWrite::Update: return sess::RecordWriteKind::Update;
    case sess::RecordWrite::Touch: return sess::RecordWriteKind::Touch;
    default: return sess::RecordWriteKind::Delete;
  }
}

void write_done(ngx_http_request_t* r, void* data, const sess::RespValue* reply, bool);
void index_done(ngx_http_request_t* r, void* data, bool ok);
void end_user_done(ngx_http_request_t* r, void* data, const end_user_result_t& res);

void count_user_logout(const write_t* w, bool ok) {
  auto source = w->end_logout_all ? sess::UserLogoutSource::LogoutAll
                                  : sess::UserLogoutSource::DestroyUser;
  metric_add(sess::user_logout_slot(source, ok ? sess::UserLogoutResult::Ok
                                               : sess::UserLogoutResult::Failed));
}

const char* end_user_what(const write_t* w) {
  return w->end_logout_all ? "session logout all" : "session_destroy_user";
}

// Not every session of the user could be ended: the answer is 503, and nothing else is written.
void end_user_failed(ngx_http_request_t* r, write_t* w, uint64_t ended) {
  count_user_logout(w, false);
  ngx_str_t user = log_safe(r, sv(w->end_user));
  ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                "%s: user \"%V\": not every session could be ended (%uL were): 503",
                end_user_what(w), &user, ended);
  w->outcome = sess::WriteOutcome::Failed;
}

// Sends the next command of the write for one of its ids (DEL or claim). False if not sent.
bool send_step(ngx_http_request_t* r, ctx_t* ctx, write_t* w, write_step_e step,
               const unsigned char* id) {
  w->step = step;
  if (flask_records(w->lcf)) {  // Flask-Session records (src/ngx_http_session_flask.cpp)
    return flask_record_send(r, ctx, w->lcf, write_kind(w), step == STEP_UNDO_NEW,
                             &ctx->s.view(), write_done, w);
  }
  sess::pstring key(&ctx->mr);
  if (!redis_key_of(r, w->lcf, id, key)) return false;
  sess::RedisArgs args(&ctx->mr);
  if (step == STEP_CLAIM_OLD) {
    // Only while the old record is still the data the new one was made from.
    sess::record_cmd_claim(key, ctx->s.view(), args);
  } else {
    sess::redis_cmd_delete(key, args);
  }
  return redis_send(r, w->lcf, args, key, write_done, w) != nullptr;
}

// Sends the record write itself (create, update, touch or delete). False if not sent.
bool send_record(ngx_http_request_t* r, ctx_t* ctx, write_t* w) {
  const loc_conf_t* lcf = w->lcf;
  const sess::SessionData* data = data_to_write(r, ctx);
  sess::RecordWrite rw = w->plan.record;
  bool new_key = rw == sess::RecordWrite::Create || rw == sess::RecordWrite::Move;
  w->step = STEP_RECORD;
  if (flask_records(lcf)) {  // Flask-Session records (src/ngx_http_session_flask.cpp)
    return flask_record_send(r, ctx, lcf, write_kind(w), new_key, data, write_done, w);
  }
  sess::pstring key(&ctx->mr);
  if (!redis_key_of(r, lcf, new_key ? w->id : ctx->s.id, key)) return false;
  sess::RedisArgs args(&ctx->mr);
  switch (rw) {
    case sess::RecordWrite::Create:
    case sess::RecordWrite::Move:
      sess::record_cmd_create(key, *data, w->ttl, args);
      break;
    case sess::RecordWrite::Update:
      if (ctx->changes != nullptr) {
        sess::record_cmd_update(key, *ctx->changes, w->ttl, args);
      } else {
        sess::record_cmd_touch(key, w->ttl, args);
      }
      break;
    case sess::RecordWrite::Touch:
      sess::record_cmd_touch(key, w->ttl, args);
      break;
    default:
      sess::record_cmd_destroy(key, args);
      break;
  }
  return redis_send(r, lcf, args, key, write_done, w) != nullptr;
}

// The index change of the current step (user_index.h): the member of the new id (a create or
// regenerate) or of the loaded one, in the index of the user after or before the write.
bool send_index(ngx_http_request_t* r, ctx_t* ctx, write_t* w) {
  const loc_conf_t* lcf = w->lcf;
  bool fresh = w->step == STEP_INDEX_ADD && w->ix.add_new;
  ngx_str_t member;
  if (!index_member_of(r, lcf, fresh ? w->id : w->old_id,
                       fresh ? ctx->flask_new_sid : ctx->s.flask_sid, &member)) {
    return false;
  }
  if (w->step == STEP_INDEX_REMOVE) {
    return index_remove(r, lcf, sv(w->user_before), sv(member), index_done, w);
  }
  // (a refresh after a change of user - add_before - is for the user after the write)
  const ngx_str_t& user = w->step == STEP_INDEX_ADD && w->ix.refresh && !w->ix.add_before
                              ? w->user_before
                              : w->user_after;
  return index_add(r, lcf, sv(user), sv(member), index_ttl(lcf, w->times), fresh, index_done, w);
}

// Holds the response while Redis is asked (the later header filters see the header only when it
// has answered, but the producer goes on now). Decides what they would decide about the body,
// so that the producer sends none where the response must have none (nginx's header filter
// makes HEAD, 204 and 304 header-only), and serves the whole entity rather than a Range
// (206/416 are decided later).
ngx_int_t hold(ngx_http_request_t* r, write_t* w) {
  if (w->holding) return NGX_OK;
  ngx_uint_t status = r->headers_out.status;
  if (r->method == NGX_HTTP_HEAD || status == NGX_HTTP_NO_CONTENT ||
      status == NGX_HTTP_NOT_MODIFIED) {
    r->header_only = 1;
  }
  r->allow_ranges = 0;
  w->holding = 1;
  r->buffered |= kBuffered;
  return NGX_OK;
}

// Runs the write from `step` on: sends the first command that applies (its reply comes back
// through write_done, index_done or end_user_done, which go on from the step after it), or,
// with none left, lets the response go (finish). from_filter: the header filter itself calls
// (and returns what this returns); else a reply does.
ngx_int_t drive(ngx_http_request_t* r, ctx_t* ctx, write_t* w, unsigned step, bool from_filter) {
  for (;; step++) {
    w->step = step;
    switch (step) {
      case STEP_END_USER:
        if (w->end_user.len == 0) continue;
        if (index_end_user(r, w->lcf, sv(w->end_user), sv(w->end_except), end_user_done, w)) {
          return hold(r, w);
        }
        end_user_failed(r, w, 0);  // the store is unavailable
        if (w->end_logout_all) {   // 503 all the same, but this device's session ends too
          w->end_failed = 1;
          continue;
        }
        return finish(r, ctx, w, sess::AfterWrite::Refuse, from_filter);
      case STEP_INDEX_BEFORE:
        if (!w->ix.add_before) continue;
        if (send_index(r, ctx, w)) return hold(r, w);
        w->outcome = sess::WriteOutcome::Failed;  // nothing was written
        return finish(r, ctx, w, sess::AfterWrite::Refuse, from_filter);
      case STEP_RECORD:
        if (w->plan.record == sess::RecordWrite::None) continue;
        if (send_record(r, ctx, w)) return hold(r, w);
        w->outcome = sess::WriteOutcome::Failed;  // the store is unavailable: not written
        log_write_failure(r, w, record_what(w), w->outcome, nullptr);
        return finish(r, ctx, w, sess::after_write(w->plan, w->outcome, w->end_failed), from_filter);
      case STEP_INDEX_ADD:
        if (!w->ix.add_new && !w->ix.refresh) continue;
        if (send_index(r, ctx, w)) return hold(r, w);
        if (w->ix.add_new) {  // a session the index would miss: not made
          w->outcome = sess::WriteOutcome::Failed;
          w->undo = 1;
          step = STEP_UNDO_NEW - 1;
        }
        continue;
      case STEP_CLAIM_OLD:
        if (w->plan.record != sess::RecordWrite::Move) continue;
        if (send_step(r, ctx, w, STEP_CLAIM_OLD, w->old_id)) return hold(r, w);
        w->outcome = sess::WriteOutcome::Failed;
        w->undo = 1;
        step = STEP_UNDO_NEW - 1;
        continue;
      case STEP_DELETE_OLD:
        if (!w->plan.delete_old) continue;
        if (send_step(r, ctx, w, STEP_DELETE_OLD, w->old_id)) return hold(r, w);
        step = STEP_UNDO_NEW;  // the old record may be there still: it stays indexed
        continue;
      case STEP_INDEX_REMOVE:
        if (!w->ix.remove_old) continue;
        if (send_index(r, ctx, w)) return hold(r, w);
        continue;
      case STEP_UNDO_NEW:
        if (!w->undo) continue;
        if (send_step(r, ctx, w, STEP_UNDO_NEW, w->id)) return hold(r, w);
        continue;
      default:
        return finish(r, ctx, w, sess::after_write(w->plan, w->outcome, w->end_failed), from_filter);
    }
  }
}

// The reply to one record command of the write.
void write_done(ngx_http_request_t* r, void* data, const sess::RespValue* reply, bool) {
  auto* w = static_cast<write_t*>(data);
  ctx_t* ctx = get_ctx(r, false);
  guard_void(r->connection->log, [&]() {
    sess::WriteOutcome o = sess::record_write_outcome(write_kind(w), reply);
    if (o != sess::WriteOutcome::Done) log_write_failure(r, w, record_what(w), o, reply);
    switch (w->step) {
      case STEP_RECORD:
        w->outcome = o;
        if (o == sess::WriteOutcome::Done) {
          drive(r, ctx, w, STEP_INDEX_ADD, false);
          return;
        }
        break;
      case STEP_CLAIM_OLD:
        if (o == sess::WriteOutcome::Done) {
          drive(r, ctx, w, STEP_DELETE_OLD, false);
          return;
        }
        // A logout (Gone), another regenerate (Moved), a change (Changed) or a failure came
        // first: the new record must not outlive the old one, nor miss that change.
        w->outcome = sess::claim_failure_outcome(o);
        w->undo = 1;
        drive(r, ctx, w, STEP_UNDO_NEW, false);
        return;
      case STEP_DELETE_OLD:
        if (o == sess::WriteOutcome::Done) {
          drive(r, ctx, w, STEP_INDEX_REMOVE, false);
          return;
        }
        break;
      default:
        break;
    }
    finish(r, ctx, w, sess::after_write(w->plan, w->outcome, w->end_failed), false);
  });
}

// The reply to one change of the user index.
void index_done(ngx_http_request_t* r, void* data, bool ok) {
  auto* w = static_cast<write_t*>(data);
  ctx_t* ctx = get_ctx(r, false);
  guard_void(r->connection->log, [&]() {
    switch (w->step) {
      case STEP_INDEX_BEFORE:
        if (ok) {
          drive(r, ctx, w, STEP_RECORD, false);
        } else {  // the record was not written: the session would miss its index entry
          w->outcome = sess::WriteOutcome::Failed;
          finish(r, ctx, w, sess::AfterWrite::Refuse, false);
        }
        return;
      case STEP_INDEX_ADD:
        if (ok || !w->ix.add_new) {
          drive(r, ctx, w, STEP_CLAIM_OLD, false);
        } else {
          w->outcome = sess::WriteOutcome::Failed;
          w->undo = 1;
          drive(r, ctx, w, STEP_UNDO_NEW, false);
        }
        return;
      default:  // the removal: logged when it failed, the entry is pruned later
        drive(r, ctx, w, STEP_INDEX_REMOVE + 1, false);
        return;
    }
  });
}

// Every session of the user was ended (or not: 503, and nothing else is written).
void end_user_done(ngx_http_request_t* r, void* data, const end_user_result_t& res) {
  auto* w = static_cast<write_t*>(data);
  ctx_t* ctx = get_ctx(r, false);
  guard_void(r->connection->log, [&]() {
    if (!res.ok) {
      end_user_failed(r, w, res.ended);
      if (w->end_logout_all) {  // 503 all the same, but this device's session ends too
        w->end_failed = 1;
        drive(r, ctx, w, STEP_INDEX_BEFORE, false);
        return;
      }
      finish(r, ctx, w, sess::AfterWrite::Refuse, false);
      return;
    }
    count_user_logout(w, true);
    ngx_str_t user = log_safe(r, sv(w->end_user));
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "%s: user \"%V\": %uL %ssessions ended, %uL stale index entries removed",
                  end_user_what(w), &user, res.ended, w->end_logout_all ? "other " : "",
                  res.pruned);
    drive(r, ctx, w, STEP_INDEX_BEFORE, false);
  });
}

// The user of a session's data, if it is logged in (user_index.h indexes those), as every later
// request reads it back (data an action just set may hold bytes that are not UTF-8).
bool user_of(ctx_t* ctx, const loc_conf_t* lcf, const sess::SessionData* d, ngx_str_t* out) {
  const sess::SessionValue* v =
      d != nullptr ? sess::session_user(*d, sv(lcf->user_key)) : nullptr;
  if (!sess::session_user_logged_in(v)) return false;
  if (sess::utf8_well_formed(v->text)) {
    *out = ngx_str(v->text);
    return true;
  }
  sess::pstring stored(&ctx->mr);
  sess::utf8_as_stored(v->text, stored);
  out->data = static_cast<u_char*>(ngx_pnalloc(ctx->r->pool, stored.size()));
  if (out->data == nullptr) throw std::bad_alloc();
  ngx_memcpy(out->data, stored.data(), stored.size());
  out->len = stored.size();
  return true;
}

// What the write does to the user index, and the users it is about.
void plan_index(ngx_http_request_t* r, ctx_t* ctx, write_t* w, const sess::SessionData* data) {
  const loc_conf_t* lcf = w->lcf;
  if (!index_enabled(r, lcf)) return;
  loaded_t* s = &ctx->s;
  sess::IndexInputs in;
  in.record = w->plan.record;
  in.login_stored = login_stored(ctx);
  in.delete_old = w->plan.delete_old;
  in.flask = lcf->format == FORMAT_FLASK;
  in.user_before = s->status == sess::LoadStatus::Valid && s->has_id && ensure_decoded(r, s) &&
                   user_of(ctx, lcf, &s->view(), &w->user_before);
  in.user_after = w->plan.record != sess::RecordWrite::Delete &&
                  user_of(ctx, lcf, data, &w->user_after);
  in.same_user = in.user_before && in.user_after && sv(w->user_before) == sv(w->user_after);
  w->ix = sess::index_plan(in);
}

ngx_int_t write_session(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf,
                        const sess::WritePlan& plan, ngx_str_t end_user, ngx_str_t end_except,
                        bool logout_all) {
  void* mem = ngx_pcalloc(r->pool, sizeof(write_t));
  if (mem == nullptr) return NGX_ERROR;
  static_assert(std::is_trivially_destructible_v<write_t>, "write_t lives in the pool");
  auto* w = new (mem) write_t();
  w->plan = plan;
  w->lcf = lcf;
  w->end_user = end_user;
  w->end_except = end_except;
  w->end_logout_all = logout_all;
  w->outcome = sess::WriteOutcome::Done;
  ctx->w = w;
  ngx_http_set_ctx(r, ctx, ngx_http_session_module);  // for the body filter's fast path

  loaded_t* s = &ctx->s;
  uint64_t now = clock_now.now();
  w->times = s->times;
  if (plan.restart_lifetime || s->status != sess::LoadStatus::Valid) w->times.created = now;
  w->times.refreshed = now;
  ngx_memcpy(w->id, s->id, sess::kSessionIdLen);
  ngx_memcpy(w->old_id, s->id, sess::kSessionIdLen);
  if (plan.new_id) {
    if (login_stored(ctx)) {
      ngx_memcpy(w->id, ctx->new_id, sess::kSessionIdLen);
    } else if (!sess::random_bytes(w->id, sess::kSessionIdLen)) {
      ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "session: RAND_bytes() failed");
      return NGX_ERROR;
    }
  }

  const sess::SessionData* data = data_to_write(r, ctx);
  if (lcf->store == STORE_REDIS && plan.record != sess::RecordWrite::None &&
      plan.record != sess::RecordWrite::Delete) {
    bool user = sess::session_user_logged_in(sess::session_user(*data, sv(lcf->user_key)));
    w->ttl = sess::expiry_record_ttl(policy_of(lcf), w->times, clock_now, user);
    if (w->ttl == 0) w->plan.record = sess::RecordWrite::Delete;  // past its lifetime
  }
  if (lcf->store == STORE_REDIS) plan_index(r, ctx, w, data);
  return drive(r, ctx, w, STEP_END_USER, true);
}

// ---------------------------------------------------------------------------------------------
// The filters

// A response produced by the server-level rewrite directives (before any location): with a
// server-level session_require it is only for logged-in sessions, and with the store down and
// session_store_fail closed nobody gets it.
ngx_int_t server_level_response(ngx_http_request_t* r, const loc_conf_t* lcf) {
  bool closed = lcf->store == STORE_REDIS && lcf->fail == FAIL_CLOSED;
  if (lcf->require != 1 && !closed) return next_header_filter(r);
  loaded_t* s = nullptr;
  ngx_int_t rc = load_session(r, lcf, &s);  // loaded by the server-rewrite handler already
  bool store_down = rc != NGX_OK || s->store_error;
  ctx_t* ctx = get_ctx(r, false);
  if (ctx != nullptr) ctx->read = 1;
  ngx_int_t status = 0;
  ngx_str_t location = ngx_null_string;
  if (store_down && closed) {
    metric(sess::Metric::StoreRefusals);
    status = NGX_HTTP_SERVICE_UNAVAILABLE;
  } else if (lcf->require == 1 && (store_down || !logged_in(r, s))) {
    status = require_denial(r, lcf, &location);
    metric_denied(status);
    if (status == NGX_HTTP_INTERNAL_SERVER_ERROR) return NGX_ERROR;
  }
  if (status != 0) {
    if (ctx != nullptr && r == r->main) ctx->refused = 1;
    if (!replace_response(r, status, location.len ? &location : nullptr)) return NGX_ERROR;
  }
  if (ctx != nullptr && r == r->main) cache_headers(r, ctx, false);
  return next_header_filter(r);
}

sess::LogLimiter refuse_log_limit;

// A session change that cannot be made now (the store is unavailable, session_store_fail open):
// 503 rather than a response that claims it.
ngx_int_t refuse_response(ngx_http_request_t* r, ctx_t* ctx) {
  uint64_t more = 0;
  if (refuse_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "session store unavailable: the session change was not made, 503 (%uL more "
                  "since the last such line)",
                  more);
  }
  ctx->refused = 1;
  metric(sess::Metric::StoreRefusals);
  if (!replace_response(r, NGX_HTTP_SERVICE_UNAVAILABLE, nullptr)) return NGX_ERROR;
  cache_headers(r, ctx, false);
  return next_header_filter(r);
}

// A logout-all that could not even read its session: 503 (no session was ended), and this
// device's cookie expired all the same (a logout always expires it).
ngx_int_t refuse_expire_response(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf) {
  ctx->refused = 1;
  metric(sess::Metric::StoreRefusals);
  if (!replace_response(r, NGX_HTTP_SERVICE_UNAVAILABLE, nullptr)) return NGX_ERROR;
  sess::pstring buf(&ctx->mr);
  sess::CookieAttrs attrs = session_attrs(r, lcf);
  if (lcf->format == FORMAT_FLASK) flask_cookie_attrs(r, ctx, lcf, &attrs);
  delete_cookie(r, sv(lcf->cookie.name), attrs, buf);
  expire_stale_chunks(r, ctx, lcf, attrs, 0, buf);
  cache_headers(r, ctx, true);
  return next_header_filter(r);
}

// A location with session_destroy_user and a request that a browser says comes from another
// site (a link or form there): like a logout, refused.
bool destroy_user_cross_site(ngx_http_request_t* r, const loc_conf_t* lcf) {
  auto* a = static_cast<action_t*>(lcf->actions->elts);
  bool has = false;
  for (ngx_uint_t i = 0; i < lcf->actions->nelts && !has; i++) {
    has = a[i].type == ACTION_DESTROY_USER;
  }
  if (!has) return false;
  const ngx_str_t* h = request_header(r, "sec-fetch-site");
  std::string_view site = h != nullptr ? sv(*h) : std::string_view();
  return sess::logout_origin_check(h != nullptr ? &site : nullptr) != sess::OriginVerdict::Allow;
}

// 403 instead of the response, and none of the location's actions.
ngx_int_t refuse_cross_site(ngx_http_request_t* r, ctx_t* ctx) {
  ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                "session_destroy_user: cross-site request refused");
  ctx->refused = 1;
  if (!replace_response(r, NGX_HTTP_FORBIDDEN, nullptr)) return NGX_ERROR;
  cache_headers(r, ctx, false);
  return next_header_filter(r);
}

ngx_int_t subrequest_header(ngx_http_request_t* r, loc_conf_t* lcf) {
  if (lcf->actions != nullptr && !lcf->warned_subrequest_actions) {
    lcf->warned_subrequest_actions = 1;  // per worker: once per location
    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "session actions are not applied in subrequests (\"%V\" included by SSI or "
                  "another module): this location's actions were ignored",
                  &r->uri);
  }
  if (request_stage(r) == sess::Stage::ServerRewrite) return server_level_response(r, lcf);
  return next_header_filter(r);
}

ngx_int_t main_header(ngx_http_request_t* r, loc_conf_t* lcf) {
  sess::Stage stage = request_stage(r);
  if (stage == sess::Stage::ServerRewrite) return server_level_response(r, lcf);
  ctx_t* ctx = get_ctx(r, false);
  if (stage == sess::Stage::BeforeLocation || (ctx != nullptr && ctx->filter_done)) {
    return next_header_filter(r);  // nginx's own early errors: nothing was decided here
  }
  if (ctx == nullptr && lcf->actions == nullptr) return next_header_filter(r);
  if (ctx == nullptr && (ctx = get_ctx(r, true)) == nullptr) return NGX_ERROR;
  ctx->filter_done = 1;
  if (ctx->login != nullptr) login_header_filter(r, ctx);

  // The session of this location's configuration: the rewrite phase loaded it; the cookie store
  // can still be read now if it did not run.
  bool loaded = true;
  if (ctx->s.conf == nullptr || !same_binding(ctx->s.conf, lcf) || ctx->s.loading) {
    loaded_t* s;
    loaded = lcf->store != STORE_REDIS && load_session(r, lcf, &s) == NGX_OK;
  }
  // The read-only path: nothing was asked of the session (no actions here; no login, logout or
  // change from this or an earlier location), so the plan keeps the cookie and the record unless
  // a valid session is due for renewal (plan_keeps; otherwise the inputs are built below).
  const bool asked = lcf->actions != nullptr || ctx->login != nullptr || ctx->changed ||
                     ctx->destroy || ctx->regenerate || ctx->logout || ctx->destroy_user.len != 0;
  const bool valid = ctx->s.status == sess::LoadStatus::Valid;
  if (sess::plan_keeps(asked, valid,
                       valid && sess::expiry_needs_renew(policy_of(lcf), ctx->s.times,
                                                         clock_now))) {
    cache_headers(r, ctx, false);
    return next_header_filter(r);
  }

  // An error page (error_page after a refusal or a failure; with recursive_error_pages nginx
  // leaves r->error_page unset, but the redirected request keeps its error status) is not where
  // a session is made. (Not r->error_page itself: nginx sets it on every response it makes
  // itself - a login's 303, `return 302` - once any error_page is in scope.)
  bool error_page = ctx->via_error_page || (r->internal && r->err_status >= NGX_HTTP_BAD_REQUEST);
  // (session_jwks: actions inherited from the protected location around it are not applied.)
  bool allowed = loaded && sess::writes_allowed(stage, ctx->refused || error_page, false,
                                                is_jwks_endpoint(r));

  sess::pstring buf(&ctx->mr);
  if (allowed && lcf->actions != nullptr) {
    if (destroy_user_cross_site(r, lcf)) return refuse_cross_site(r, ctx);
    apply_actions(r, ctx, lcf, buf);
  }

  UpstreamSession upstream = UpstreamSession::None;
  if (lcf->format == FORMAT_FLASK && allowed && ctx->changed && !ctx->destroy &&
      !ctx->regenerate && !ctx->logout && ctx->login == nullptr) {
    upstream = flask_adopt_upstream_session(r, ctx, lcf);
    if (upstream == UpstreamSession::Ended) {
      ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                    "session: the app ended its session in this response: the changes of "
                    "this location's actions are dropped");
      ctx->changed = 0;
    }
  }
  loaded_t* s = &ctx->s;
  // session_logout ... all: every session of the user ends first, this one last (by the plan).
  ngx_str_t end_user = ctx->destroy_user;
  ngx_str_t end_except = ngx_null_string;
  bool logout_all = ctx->logout && lcf->logout_all;
  if (logout_all) {
    switch (sess::logout_all_decision(s->status, s->store_error, logged_in(r, s))) {
      case sess::LogoutAll::Refuse:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "session logout all: the session could not be read (the store is "
                      "unavailable): no session was ended");
        metric_add(sess::user_logout_slot(sess::UserLogoutSource::LogoutAll,
                                          sess::UserLogoutResult::Failed));
        return refuse_expire_response(r, ctx, lcf);
      case sess::LogoutAll::End:
        if (!user_of(ctx, lcf, &s->view(), &end_user) ||
            !index_member_of(r, lcf, s->id, s->flask_sid, &end_except)) {
          return NGX_ERROR;
        }
        break;
      case sess::LogoutAll::Plain:
        logout_all = false;
        break;
    }
  }

  sess::WriteInputs in;
  in.status = s->status;
  in.had_cookie = s->had_cookie;
  in.server_store = lcf->store == STORE_REDIS;
  in.has_id = s->has_id;
  in.writes_allowed = allowed;
  in.store_error = s->store_error;
  in.changed = ctx->changed;
  in.empty_after = ctx->next != nullptr && ctx->next->empty();
  in.destroy = ctx->destroy;
  in.regenerate = ctx->regenerate;
  in.login = login_succeeded(ctx);
  in.login_stored = login_stored(ctx);
  in.logout = ctx->logout;
  in.logout_all = logout_all;
  in.renew_due = s->status == sess::LoadStatus::Valid &&
                 sess::expiry_needs_renew(policy_of(lcf), s->times, clock_now) &&
                 ensure_decoded(r, s) &&
                 !(lcf->format == FORMAT_FLASK && flask_upstream_set_cookie(r, lcf));
  if (in.login || in.logout || ctx->destroy) ctx->read = 1;
  sess::WritePlan plan = sess::plan_write(in);
  if (plan.refuse) return refuse_response(r, ctx);
  if (upstream == UpstreamSession::Adopted && lcf->store == STORE_REDIS) {
    plan.cookie = sess::CookieWrite::Keep;  // the app's cookie names the record updated
  }
  if (plan.cookie == sess::CookieWrite::Keep && plan.record == sess::RecordWrite::None &&
      end_user.len == 0) {
    cache_headers(r, ctx, false);
    return next_header_filter(r);
  }
  return write_session(r, ctx, lcf, plan, end_user, end_except, logout_all);
}

ngx_int_t header_filter(ngx_http_request_t* r) noexcept {
  loc_conf_t* lcf = loc_conf(r);
  if (lcf->secrets == nullptr) return next_header_filter(r);
  return guard<ngx_int_t>(r->connection->log, NGX_ERROR, [&]() -> ngx_int_t {
    return r == r->main ? main_header(r, lcf) : subrequest_header(r, lcf);
  });
}

ngx_int_t body_filter(ngx_http_request_t* r, ngx_chain_t* in) noexcept {
  if (r != r->main) return next_body_filter(r, in);
  auto* ctx = static_cast<ctx_t*>(ngx_http_get_module_ctx(r, ngx_http_session_module));
  if (ctx == nullptr || ctx->w == nullptr) return next_body_filter(r, in);
  write_t* w = ctx->w;
  if (w->holding) {
    if (in != nullptr && ngx_chain_add_copy(r->pool, &w->held, in) != NGX_OK) return NGX_ERROR;
    return NGX_AGAIN;
  }
  if (w->replaced) {  // the 503 (or a bodiless response) has no body: drop this one
    drop(in);
    return NGX_OK;
  }
  return next_body_filter(r, in);
}

}  // namespace

// A login's cookie store session must fit in the session cookie - chunks= cookies of it - (checked
// before answering 303).
bool login_cookie_fits(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf) {
  write_t w{};
  w.lcf = lcf;
  w.times.created = w.times.refreshed = clock_now.now();
  sess::pstring value(&ctx->mr);
  if (!seal_cookie(r, ctx, lcf, &w, value)) return false;
  sess::pstring buf(&ctx->mr);
  sess::cookie_build(sv(lcf->cookie.name), "", session_attrs(r, lcf), buf);
  return sess::chunk_split(value.size(), buf.size(), chunks_of(lcf)).count != 0;
}

ngx_int_t filter_init(ngx_conf_t*) noexcept {
  next_header_filter = ngx_http_top_header_filter;
  ngx_http_top_header_filter = header_filter;
  next_body_filter = ngx_http_top_body_filter;
  ngx_http_top_body_filter = body_filter;
  return NGX_OK;
}

}  // namespace ngx_session
