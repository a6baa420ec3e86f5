// ngx_http_session_module: the session write - what the header filter (ngx_http_session_filter.cpp)
// has decided a response writes (core/write_plan.h), applied.
//
// The session cookie's Set-Cookie lines (chunked where chunks= says, stale chunks expired). With
// the Redis store, the record write and the user index kept around it (core/user_index.h), as a
// chain of commands each sent when the one before was confirmed (drive, write_done, index_done,
// end_user_done), the response - header and body - held meanwhile; a refused write becomes a 503
// with no Set-Cookie. And the Set-Cookie helpers the handlers share (add_set_cookie,
// delete_cookie, session_attrs).

#include "ngx_http_session_write.h"
#include "ngx_http_session_metrics.h"

namespace ngx_session {

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
// The write

// The data the response writes: the actions' copy, or the session as loaded (renewal).
const sess::SessionData* data_to_write(ngx_http_request_t* r, ctx_t* ctx) {
  if (ctx->next != nullptr) return ctx->next;
  // (Only a loaded valid session is decoded, as everywhere else: a session not loaded yet keeps
  // its constructor's state, which load() relies on.)
  if (ctx->s.status == sess::LoadStatus::Valid) ensure_decoded(r, &ctx->s);
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

}  // namespace

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

namespace {

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

}  // namespace

// Sends the held response on (or the 503 that replaced it) and wakes the request's writer.
// Marks held buffers as sent (their producer may reuse them) without sending them.
void drop(ngx_chain_t* cl) {
  for (; cl; cl = cl->next) {
    cl->buf->pos = cl->buf->last;
    cl->buf->file_pos = cl->buf->file_last;
  }
}

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

}  // namespace ngx_session
