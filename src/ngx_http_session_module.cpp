// ngx_http_session_module: the module, its variables, the rewrite-phase handler that loads the
// session and enforces session_require, and the header filter that applies the actions and
// writes the session cookie.

#include "ngx_http_session.h"

#include "core/redirect.h"

namespace ngx_session {

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

void id_hex(const unsigned char* id, u_char* out) { ngx_hex_dump(out, const_cast<u_char*>(id), sess::kSessionIdLen); }

ngx_str_t log_safe(ngx_http_request_t* r, std::string_view in) {
  ngx_str_t out = ngx_null_string;
  size_t n = ngx_min(in.size(), 64);
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

loc_conf_t* loc_conf(ngx_http_request_t* r) {
  return static_cast<loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_session_module));
}

sess::ExpiryPolicy policy_of(const loc_conf_t* lcf) {
  sess::ExpiryPolicy p;
  p.lifetime = static_cast<uint64_t>(lcf->lifetime);
  p.idle = static_cast<uint64_t>(lcf->idle);
  p.renew = static_cast<uint64_t>(lcf->renew);
  return p;
}

namespace {

ngx_http_output_header_filter_pt next_header_filter;

const ngx_clock clock_now;

void ctx_cleanup(void* data) noexcept {
  auto* ctx = static_cast<ctx_t*>(data);
  if (ctx->op != nullptr) {
    redis_cancel(ctx->op);
    ctx->op = nullptr;
  }
  ctx->~ctx_t();
}

}  // namespace

ctx_t::ctx_t(ngx_http_request_t* req)
    : r(req), mr(req->pool), data(&mr), payload(&mr), times(), id(), old_id(), status(STATUS_NONE),
      op(nullptr), csrf_token(), login_next(), login_user(), login_password(), login_error(),
      login_status(0), auth_keys(nullptr), auth_status(0) {
  login = 0;
  auth_done = 0;
  login_plausible = 0;
  storing = 0;
  stored = 0;
  had_cookie = 0;
  loaded = 0;
  loading = 0;
  decoded = 0;
  store_error = 0;
  has_id = 0;
  dirty = 0;
  destroyed = 0;
  regenerate = 0;
  new_session = 0;
  filter_done = 0;
}

ctx_t* get_ctx(ngx_http_request_t* r, bool create) {
  r = r->main;
  auto* ctx = static_cast<ctx_t*>(ngx_http_get_module_ctx(r, ngx_http_session_module));
  if (ctx != nullptr) return ctx;
  // An internal redirect zeroes r->ctx; the pool cleanup still knows the ctx.
  for (ngx_pool_cleanup_t* c = r->pool->cleanup; c != nullptr; c = c->next) {
    if (c->handler == ctx_cleanup) {
      ctx = static_cast<ctx_t*>(c->data);
      ngx_http_set_ctx(r, ctx, ngx_http_session_module);
      return ctx;
    }
  }
  if (!create) return nullptr;
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(ctx_t));
  if (cln == nullptr) return nullptr;
  ctx = new (cln->data) ctx_t(r);
  cln->handler = ctx_cleanup;
  ngx_http_set_ctx(r, ctx, ngx_http_session_module);
  return ctx;
}

bool ensure_decoded(ngx_http_request_t* r, ctx_t* ctx) {
  if (ctx->decoded) return true;
  ctx->decoded = 1;
  if (ctx->status != STATUS_VALID || ctx->payload.empty()) return true;
  if (!ctx->data.decode(ctx->payload)) {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "session cookie \"%V\" rejected: the data is not a valid JSON object",
                  &loc_conf(r)->cookie.name);
    ctx->status = STATUS_INVALID;
    return false;
  }
  return true;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Loading

}  // namespace

void find_cookie(ngx_http_request_t* r, std::string_view name, sess::CookieLookup& acc) {
#if (nginx_version >= 1023000)
  for (ngx_table_elt_t* h = r->headers_in.cookie; h != nullptr; h = h->next) {
    sess::cookie_find(sv(h->value), name, acc);
  }
#else
  auto** h = static_cast<ngx_table_elt_t**>(r->headers_in.cookies.elts);
  for (ngx_uint_t i = 0; i < r->headers_in.cookies.nelts; i++) {
    sess::cookie_find(sv(h[i]->value), name, acc);
  }
#endif
}

namespace {

void reject(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf, ngx_uint_t status,
            const char* why) {
  ctx->status = status;
  ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "session cookie \"%V\" rejected: %s",
                &lcf->cookie.name, why);
}

sess::Kind cookie_kind(const loc_conf_t* lcf) {
  if (lcf->store == STORE_REDIS) return sess::Kind::Id;
  return lcf->encrypt ? sess::Kind::Sealed : sess::Kind::Signed;
}

// Reads and verifies the session cookie. For the Redis store, starts the lookup (NGX_AGAIN).
ngx_int_t load(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf) {
  ctx->loaded = 1;
  sess::CookieLookup acc;
  find_cookie(r, sv(lcf->cookie.name), acc);
  if (acc.count == 0) return NGX_OK;
  ctx->had_cookie = 1;
  if (acc.conflicting) {
    reject(r, ctx, lcf, STATUS_INVALID, "duplicated with different values");
    return NGX_OK;
  }

  sess::OpenResult res = sess::envelope_open(*lcf->secrets->ring, cookie_kind(lcf),
                                             sv(lcf->cookie.name), acc.value, &ctx->times,
                                             &ctx->payload);
  if (res == sess::OpenResult::Malformed) {
    reject(r, ctx, lcf, STATUS_INVALID, "malformed");
    return NGX_OK;
  }
  if (res != sess::OpenResult::Ok) {
    reject(r, ctx, lcf, STATUS_INVALID, "bad signature or unknown key");
    return NGX_OK;
  }
  switch (sess::expiry_check(policy_of(lcf), ctx->times, clock_now)) {
    case sess::Verdict::Valid:
      break;
    case sess::Verdict::Expired:
      reject(r, ctx, lcf, STATUS_EXPIRED, "expired");
      return NGX_OK;
    case sess::Verdict::FutureDated:
      reject(r, ctx, lcf, STATUS_INVALID, "timestamps in the future");
      return NGX_OK;
  }

  if (lcf->store != STORE_REDIS) {
    ctx->status = STATUS_VALID;
    return NGX_OK;
  }
  if (ctx->payload.size() != sess::kSessionIdLen) {
    reject(r, ctx, lcf, STATUS_INVALID, "bad session id");
    return NGX_OK;
  }
  ngx_memcpy(ctx->id, ctx->payload.data(), sess::kSessionIdLen);
  ctx->has_id = 1;
  ctx->payload.clear();
  return redis_lookup(r, ctx, lcf);
}

// The ctx to read variables from: loads the cookie store on demand (e.g. a variable used where
// the rewrite phase did not run). The Redis store is only read by the phase handler.
ctx_t* current_ctx(ngx_http_request_t* r) {
  loc_conf_t* lcf = loc_conf(r);
  ctx_t* ctx = get_ctx(r, false);
  if (ctx != nullptr && ctx->loaded) return ctx;
  if (lcf->secrets == nullptr || lcf->store == STORE_REDIS) return ctx;
  if (ctx == nullptr && (ctx = get_ctx(r, true)) == nullptr) return nullptr;
  load(r->main, ctx, lcf);
  return ctx;
}

bool logged_in(ngx_http_request_t* r, ctx_t* ctx) {
  if (ctx->status != STATUS_VALID || !ensure_decoded(r, ctx)) return false;
  const sess::SessionValue* v = ctx->data.get("user");
  return v != nullptr && !v->text.empty() && v->text != "null" && !(v->is_string == false && v->text == "false");
}

}  // namespace

ngx_table_elt_t* push_header(ngx_http_request_t* r, std::string_view key, std::string_view value) {
  ngx_table_elt_t* h = static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
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

namespace {

// Accept: ... text/html ... on a GET or HEAD: a browser navigating.
bool is_browser(ngx_http_request_t* r) {
  if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) return false;
  return find_header(&r->headers_in.headers, [](const ngx_table_elt_t& h) {
    return h.key.len == 6 && ngx_strncasecmp(h.key.data, (u_char*)"accept", 6) == 0 &&
           ngx_strlcasestrn(h.value.data, h.value.data + h.value.len, (u_char*)"text/html",
                            9 - 1) != nullptr;
  });
}

ngx_int_t deny(ngx_http_request_t* r, loc_conf_t* lcf) {
  if (lcf->require_uri.len == 0 || !is_browser(r)) {
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0, "session_require: 401");
    return NGX_HTTP_UNAUTHORIZED;
  }
  sess::pstring loc(std::pmr::new_delete_resource());
  loc.append(sv(lcf->require_uri));
  loc.append("?next=");
  sess::query_escape(sv(r->unparsed_uri), loc);
  ngx_http_complex_value_t cv;
  ngx_memzero(&cv, sizeof(cv));
  if (!pool_str(r->pool, loc, &cv.value)) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  return ngx_http_send_response(r, NGX_HTTP_MOVED_TEMPORARILY, nullptr, &cv);
}

// REWRITE phase, before the rewrite module's handler: load the session (waiting for Redis),
// apply the store failure policy and session_require.
ngx_int_t rewrite_handler(ngx_http_request_t* r) noexcept try {
  if (r != r->main) return NGX_DECLINED;
  loc_conf_t* lcf = loc_conf(r);
  if (lcf->secrets == nullptr) return NGX_DECLINED;
  ctx_t* ctx = get_ctx(r, true);
  if (ctx == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;

  if (ctx->loading) return NGX_DONE;
  if (!ctx->loaded) {
    ngx_int_t rc = load(r, ctx, lcf);
    if (rc == NGX_AGAIN) {
      // Resumed by the Redis adapter; a client that goes away meanwhile ends the request, and
      // the pool cleanup cancels the lookup.
      r->read_event_handler = ngx_http_test_reading;
      return NGX_DONE;
    }
  }
  if (r->read_event_handler == ngx_http_test_reading) {
    r->read_event_handler = ngx_http_block_reading;  // as it was before the lookup
  }

  if (ctx->store_error && lcf->fail == FAIL_CLOSED) {
    if (push_header(r, "Retry-After", "1") == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    return NGX_HTTP_SERVICE_UNAVAILABLE;
  }
  if (lcf->require == 1 && !logged_in(r, ctx)) return deny(r, lcf);
  return NGX_DECLINED;
} catch (const std::exception& e) {
  ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "session: %s", e.what());
  return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

// ---------------------------------------------------------------------------------------------
// Header filter: actions and the session cookie

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

namespace {

}  // namespace

bool add_set_cookie(ngx_http_request_t* r, std::string_view name, std::string_view value,
                    const sess::CookieAttrs& a, sess::pstring& buf) {
  buf.clear();
  sess::cookie_build(name, value, a, buf);
  if (buf.size() > sess::kMaxSetCookieLen) {
    ngx_str_t n = {name.size(), reinterpret_cast<u_char*>(const_cast<char*>(name.data()))};
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "cookie \"%V\" too large (%uz bytes, browsers accept %uz): not sent; keep "
                  "less data in it, or use \"session_store redis\"",
                  &n, buf.size(), sess::kMaxSetCookieLen);
    return false;
  }
  return push_header(r, "Set-Cookie", buf) != nullptr;
}

namespace {

}  // namespace

void delete_cookie(ngx_http_request_t* r, std::string_view name, sess::CookieAttrs a,
                   sess::pstring& buf) {
  a.max_age = 0;
  a.expires = 0;
  add_set_cookie(r, name, "", a, buf);
}

namespace {

void cookie_action(ngx_http_request_t* r, const action_t* a, sess::pstring& buf) {
  ngx_str_t name, value = ngx_null_string;
  if (ngx_http_complex_value(r, a->name, &name) != NGX_OK) return;
  if (!sess::cookie_name_valid(sv(name))) {
    ngx_str_t safe = log_safe(r, sv(name));
    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "cookie_set/cookie_delete: invalid cookie name \"%V\", not sent", &safe);
    return;
  }
  sess::CookieAttrs attrs;
  attrs.path = sv(a->path);
  attrs.domain = sv(a->domain);
  if (a->type == ACTION_COOKIE_DELETE) {
    delete_cookie(r, sv(name), attrs, buf);
    return;
  }
  if (ngx_http_complex_value(r, a->value, &value) != NGX_OK) return;
  attrs.max_age = a->max_age;
  attrs.expires = a->expires >= 0 ? ngx_time() + a->expires : -1;
  attrs.secure = a->secure;
  attrs.httponly = a->httponly;
  attrs.samesite = static_cast<sess::SameSite>(a->samesite);
  attrs.partitioned = a->partitioned;
  sess::pstring encoded(&get_ctx(r, false)->mr);
  sess::cookie_value_encode(sv(value), encoded);
  add_set_cookie(r, sv(name), encoded, attrs, buf);
}

void apply_actions(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf, sess::pstring& buf) {
  bool store_ok = !ctx->store_error;
  bool prepared = false;  // the data is decoded only if a session action needs it
  auto* a = static_cast<action_t*>(lcf->actions->elts);
  for (ngx_uint_t i = 0; i < lcf->actions->nelts; i++) {
    if (a[i].type == ACTION_COOKIE_SET || a[i].type == ACTION_COOKIE_DELETE) {
      cookie_action(r, &a[i], buf);
      continue;
    }
    if (!store_ok) continue;  // the store is unreachable: leave the session as it is
    if (!prepared) {
      prepared = true;
      ensure_decoded(r, ctx);
      if (ctx->status != STATUS_VALID) ctx->data.clear();  // actions start a new session
    }
    switch (a[i].type) {
      case ACTION_SET: {
        ngx_str_t v;
        if (ngx_http_complex_value(r, a[i].value, &v) != NGX_OK) break;
        if (sess::has_ctl(sv(v))) {
          ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                        "session_set \"%V\": value has a control byte, refused", &a[i].key);
          break;
        }
        if (ctx->data.size() >= sess::SessionData::kMaxKeys &&
            ctx->data.get(sv(a[i].key)) == nullptr) {
          ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                        "session_set \"%V\": the session already has %uz keys, refused",
                        &a[i].key, sess::SessionData::kMaxKeys);
          break;
        }
        ctx->data.set_string(sv(a[i].key), sv(v));
        ctx->dirty = 1;
        break;
      }
      case ACTION_UNSET:
        if (ctx->data.erase(sv(a[i].key))) ctx->dirty = 1;
        break;
      case ACTION_CLEAR:
        if (!ctx->data.empty()) ctx->dirty = 1;
        ctx->data.clear();
        break;
      case ACTION_DESTROY:
        ctx->destroyed = 1;
        ctx->data.clear();
        break;
      case ACTION_REGENERATE:
        ctx->regenerate = 1;
        break;
      default:
        break;
    }
  }
}

// Writes the session cookie (and the store) for this response.
void write_session(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf, sess::pstring& buf) {
  bool valid = ctx->status == STATUS_VALID;
  bool redis = lcf->store == STORE_REDIS;
  std::string_view name = sv(lcf->cookie.name);
  sess::CookieAttrs attrs = session_attrs(r, lcf);
  sess::ExpiryPolicy policy = policy_of(lcf);
  uint64_t now = clock_now.now();

  if (ctx->store_error) return;

  if (ctx->destroyed || ((ctx->dirty || ctx->regenerate) && ctx->data.empty())) {
    if (valid && redis && ctx->has_id) redis_delete(r, lcf, ctx->id);
    if (ctx->had_cookie) delete_cookie(r, name, attrs, buf);
    ctx->status = STATUS_NONE;
    ctx->has_id = 0;
    return;
  }

  if (redis && ctx->stored) {
    // The login stored the record and waited for Redis: only the cookie is left to send.
    sess::pstring value(&ctx->mr);
    std::string_view id(reinterpret_cast<const char*>(ctx->id), sess::kSessionIdLen);
    if (sess::envelope_seal(*lcf->secrets->ring, sess::Kind::Id, name, ctx->times, id, value)) {
      ctx->status = STATUS_VALID;
      add_set_cookie(r, name, value, attrs, buf);
    }
    return;
  }

  bool renew = valid && sess::expiry_needs_renew(policy, ctx->times, clock_now);
  if (!(ctx->dirty || ctx->regenerate || renew)) {
    if (ctx->had_cookie && (ctx->status == STATUS_INVALID || ctx->status == STATUS_EXPIRED)) {
      delete_cookie(r, name, attrs, buf);
    }
    return;
  }

  if (!valid || ctx->login) {
    // A new session, or a login: the lifetime starts now.
    ctx->times.created = now;
    ctx->new_session = !valid;
  }
  ctx->times.refreshed = now;

  sess::pstring value(&ctx->mr);
  if (redis) {
    bool new_id = !valid || !ctx->has_id || ctx->regenerate;
    if (new_id) {
      if (ctx->has_id) ngx_memcpy(ctx->old_id, ctx->id, sess::kSessionIdLen);
      bool had_old = valid && ctx->has_id;
      if (!sess::random_bytes(ctx->id, sess::kSessionIdLen)) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "session: RAND_bytes() failed");
        return;
      }
      ctx->has_id = 1;
      ensure_decoded(r, ctx);
      sess::pstring json(&ctx->mr);
      ctx->data.encode(json);
      if (redis_store(r, lcf, ctx->id, json, sess::expiry_ttl(policy, ctx->times, clock_now)) !=
          NGX_OK) {
        return;
      }
      if (had_old) redis_delete(r, lcf, ctx->old_id);
    } else if (ctx->dirty) {
      sess::pstring json(&ctx->mr);
      ctx->data.encode(json);
      if (redis_store(r, lcf, ctx->id, json, sess::expiry_ttl(policy, ctx->times, clock_now)) !=
          NGX_OK) {
        return;
      }
    } else {
      redis_expire(r, lcf, ctx->id, sess::expiry_ttl(policy, ctx->times, clock_now));
    }
    std::string_view id(reinterpret_cast<const char*>(ctx->id), sess::kSessionIdLen);
    if (!sess::envelope_seal(*lcf->secrets->ring, sess::Kind::Id, name, ctx->times, id, value)) {
      ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "session: sealing the cookie failed");
      return;
    }
  } else {
    if (ctx->dirty) {  // otherwise (renewal) the payload received is sealed again as it is
      ctx->payload.clear();
      ctx->data.encode(ctx->payload);
    }
    if (!sess::envelope_seal(*lcf->secrets->ring, cookie_kind(lcf), name, ctx->times,
                             ctx->payload, value)) {
      ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "session: sealing the cookie failed");
      return;
    }
  }
  ctx->status = STATUS_VALID;
  add_set_cookie(r, name, value, attrs, buf);
}

ngx_int_t header_filter(ngx_http_request_t* r) noexcept {
  if (r != r->main) return next_header_filter(r);
  loc_conf_t* lcf = loc_conf(r);
  if (lcf->secrets == nullptr) return next_header_filter(r);
  try {
    ctx_t* ctx = get_ctx(r, false);
    if (ctx == nullptr || !ctx->loaded) {
      // The rewrite phase did not run (an early error, say): the cookie store can still be read.
      if (lcf->store == STORE_REDIS) {
        if (lcf->actions != nullptr) {
          ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                        "session not loaded for this response, session actions skipped");
        }
        return next_header_filter(r);
      }
      ctx = current_ctx(r);
      if (ctx == nullptr) return next_header_filter(r);
    }
    if (ctx->filter_done || ctx->loading) return next_header_filter(r);
    ctx->filter_done = 1;
    login_header_filter(r, ctx);

    sess::pstring buf(&ctx->mr);
    if (lcf->actions != nullptr) apply_actions(r, ctx, lcf, buf);
    write_session(r, ctx, lcf, buf);
  } catch (const std::exception& e) {
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "session: %s", e.what());
  }
  return next_header_filter(r);
}

// ---------------------------------------------------------------------------------------------
// Variables

}  // namespace

void set_var(ngx_http_variable_value_t* v, const u_char* data, size_t len) {
  v->len = len;
  v->data = const_cast<u_char*>(data);
  v->valid = 1;
  v->no_cacheable = 1;
  v->not_found = 0;
}

namespace {

ngx_int_t not_found(ngx_http_variable_value_t* v) {
  v->not_found = 1;
  v->no_cacheable = 1;
  return NGX_OK;
}

ngx_int_t var_key(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t data) noexcept try {
  auto* name = reinterpret_cast<ngx_str_t*>(data);
  std::string_view key = sv(*name).substr(sizeof("session_") - 1);
  ctx_t* ctx = current_ctx(r);
  if (ctx == nullptr || ctx->status != STATUS_VALID || !ensure_decoded(r, ctx)) {
    return not_found(v);
  }
  const sess::SessionValue* val = ctx->data.get(key);
  if (val == nullptr) return not_found(v);
  if (sess::has_ctl(val->text)) {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "session key \"%V\" holds a control byte, $%V is empty", name, name);
    return not_found(v);
  }
  set_var(v, reinterpret_cast<const u_char*>(val->text.data()), val->text.size());
  return NGX_OK;
} catch (const std::exception& e) {
  ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "session: %s", e.what());
  return NGX_ERROR;
}

ngx_str_t status_names[] = {ngx_string("none"), ngx_string("valid"), ngx_string("expired"),
                            ngx_string("invalid"), ngx_string("error")};

ngx_int_t var_status(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  ctx_t* ctx = current_ctx(r);
  if (ctx != nullptr) ensure_decoded(r, ctx);  // undecodable data makes it "invalid"
  ngx_uint_t s = ctx ? ctx->status : STATUS_NONE;
  set_var(v, status_names[s].data, status_names[s].len);
  return NGX_OK;
}

ngx_int_t var_expires(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  ctx_t* ctx = current_ctx(r);
  if (ctx == nullptr || !ensure_decoded(r, ctx) || ctx->status != STATUS_VALID) {
    return not_found(v);
  }
  loc_conf_t* lcf = loc_conf(r);
  auto* p = static_cast<u_char*>(ngx_pnalloc(r->pool, NGX_TIME_T_LEN));
  if (p == nullptr) return NGX_ERROR;
  uint64_t t = sess::expiry_expires_at(policy_of(lcf), ctx->times);
  set_var(v, p, ngx_sprintf(p, "%uL", t) - p);
  return NGX_OK;
}

ngx_int_t var_id(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  ctx_t* ctx = current_ctx(r);
  if (ctx == nullptr || !ctx->has_id || ctx->status != STATUS_VALID) {
    set_var(v, reinterpret_cast<const u_char*>(""), 0);
    return NGX_OK;
  }
  auto* p = static_cast<u_char*>(ngx_pnalloc(r->pool, 2 * sess::kSessionIdLen));
  if (p == nullptr) return NGX_ERROR;
  id_hex(ctx->id, p);
  set_var(v, p, 2 * sess::kSessionIdLen);
  return NGX_OK;
}

ngx_http_variable_t variables[] = {
    {ngx_string("session_"), nullptr, var_key, 0,
     NGX_HTTP_VAR_NOCACHEABLE | NGX_HTTP_VAR_PREFIX, 0},
    {ngx_string("session_status"), nullptr, var_status, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_expires"), nullptr, var_expires, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_id"), nullptr, var_id, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_csrf_token"), nullptr, var_csrf_token, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
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
  // Pushed after the rewrite module's handler, so it runs before it (nginx runs the handlers of
  // one phase in reverse order of registration).
  auto* h = static_cast<ngx_http_handler_pt*>(
      ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers));
  if (h == nullptr) return NGX_ERROR;
  *h = rewrite_handler;

  next_header_filter = ngx_http_top_header_filter;
  ngx_http_top_header_filter = header_filter;
  return NGX_OK;
}

ngx_int_t init_process(ngx_cycle_t* cycle) noexcept { return redis_init_process(cycle); }

void exit_process(ngx_cycle_t* cycle) noexcept { redis_exit_process(cycle); }

ngx_http_module_t module_ctx = {
    preconfiguration,  postconfiguration, create_main_conf, nullptr,
    nullptr,           nullptr,           create_loc_conf,  merge_loc_conf,
};

}  // namespace
}  // namespace ngx_session

extern "C" {
__attribute__((visibility("default"))) ngx_module_t ngx_http_session_module = {
    NGX_MODULE_V1,
    &ngx_session::module_ctx,
    ngx_session::commands,
    NGX_HTTP_MODULE,
    nullptr,
    nullptr,
    ngx_session::init_process,
    nullptr,
    nullptr,
    ngx_session::exit_process,
    nullptr,
    NGX_MODULE_V1_PADDING,
};
}
