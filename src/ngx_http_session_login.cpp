// ngx_http_session_module: the login and logout endpoints.
//
// GET /login renders session_login_page (an SSI template) by internal redirect, after setting a
// short-lived CSRF cookie. POST /login refuses cross-origin requests (core/origin.h), reads the
// form without blocking (from memory or from nginx's temporary file), checks the double-submit
// CSRF token (core/csrf.h), asks session_login_limit (ngx_http_session_login_limit.cpp) whether
// the client or user name is banned (429 with the page), then checks the password: in a thread
// pool against
// session_login_user_file (core/users.h: bcrypt is slow on purpose, the event loop must not wait
// for it, and unknown users cost what known ones do), or by a session_login_auth subrequest.
// Success starts a new, empty session (new id: no fixation, nothing carried over) holding the
// user, and answers 303 to a safe `next` once the session is stored; failure answers 401 with
// the page and $session_login_error. The header filter writes the cookie (write_plan.h). The
// two credential checks' ends (the subrequest, the user file's thread) are in
// ngx_http_session_login_auth.cpp.

#include "ngx_http_session_login.h"
#include "ngx_http_session_metrics.h"

#include "core/base64url.h"
#include "core/csrf.h"
#include "core/form.h"
#include "core/origin.h"
#include "core/redirect.h"

namespace ngx_session {


namespace {

constexpr size_t kMaxFormBody = 16 * 1024;
constexpr size_t kMaxUserLen = 256;
constexpr size_t kMaxPasswordLen = 1024;

const char* const kBadCredentials = "invalid username or password";
const char* const kLimited = "too many failed logins, please try again later";

sess::LogLimiter form_log_limit;

login_t* login_of(ngx_http_request_t* r, ctx_t* ctx) {
  if (ctx->login != nullptr) return ctx->login;
  ctx->login = static_cast<login_t*>(ngx_pcalloc(r->pool, sizeof(login_t)));
  return ctx->login;
}

// The CSRF cookie's name: "<session cookie>_csrf".
std::string_view csrf_cookie_name(ngx_http_request_t* r, const loc_conf_t* lcf) {
  static const char suffix[] = "_csrf";
  size_t len = lcf->cookie.name.len + sizeof(suffix) - 1;
  auto* p = static_cast<u_char*>(ngx_pnalloc(r->pool, len));
  if (p == nullptr) return {};
  ngx_memcpy(ngx_cpymem(p, lcf->cookie.name.data, lcf->cookie.name.len), suffix,
             sizeof(suffix) - 1);
  return {reinterpret_cast<char*>(p), len};
}

sess::CookieAttrs csrf_attrs(ngx_http_request_t* r, const loc_conf_t* lcf) {
  sess::CookieAttrs a = session_attrs(r, lcf);
  a.max_age = static_cast<int64_t>(sess::kCsrfLifetime);
  a.httponly = true;
  a.samesite = sess::SameSite::Strict;
  return a;
}

uint64_t now_sec() { return static_cast<uint64_t>(ngx_time()); }

// Makes sure the response carries a CSRF cookie and sets the page's token.
bool prepare_csrf(ngx_http_request_t* r, ctx_t* ctx, login_t* L, const loc_conf_t* lcf) {
  std::string_view name = csrf_cookie_name(r, lcf);
  if (name.empty()) return false;
  sess::CookieCandidates acc;
  collect_cookie(r, name, acc);
  sess::pstring raw(&ctx->mr);
  bool fresh = false;
  for (size_t i = 0; i < acc.count && !fresh; i++) {
    fresh = sess::csrf_cookie_fresh(acc.values[i], now_sec(), raw);
  }
  if (!fresh) {
    sess::pstring value(&ctx->mr);
    if (!sess::csrf_new_cookie(now_sec(), value) ||
        !sess::csrf_cookie_fresh(value, now_sec(), raw)) {
      return false;
    }
    sess::pstring buf(&ctx->mr);
    if (!add_set_cookie(r, name, value, csrf_attrs(r, lcf), buf)) return false;
  }
  sess::pstring token(&ctx->mr);
  if (!sess::csrf_token(*lcf->secrets->ring, 0, name, raw, token)) return false;
  return pool_str(r->pool, token, &L->csrf_token);
}

bool check_csrf(ngx_http_request_t* r, const loc_conf_t* lcf, const sess::pstring* token) {
  if (token == nullptr || token->empty()) return false;
  std::string_view name = csrf_cookie_name(r, lcf);
  if (name.empty()) return false;
  sess::CookieCandidates acc;
  collect_cookie(r, name, acc);
  return sess::csrf_verify(*lcf->secrets->ring, name, acc.values, acc.count, *token, now_sec());
}

ngx_int_t no_store_headers(ngx_http_request_t* r) {
  if (push_header(r, "Cache-Control", "no-store") == nullptr ||
      push_header(r, "X-Frame-Options", "DENY") == nullptr ||
      push_header(r, "Content-Security-Policy", "frame-ancestors 'none'") == nullptr) {
    return NGX_ERROR;
  }
  return NGX_OK;
}

// One fixed form per line for fail2ban, whatever the connection is doing ("while sending ...").
void log_login(ngx_http_request_t* r, bool ok, ngx_str_t user) {
  ngx_str_t safe = log_safe(r, sv(user));
  char* action = r->connection->log->action;
  r->connection->log->action = nullptr;
  if (ok) {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "session login: user \"%V\" logged in",
                  &safe);
  } else {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "session login failed: user \"%V\"",
                  &safe);
  }
  r->connection->log->action = action;
}

// Renders the login page (status: 0 keeps the template's 200).
ngx_int_t render_page(ngx_http_request_t* r, ctx_t* ctx, login_t* L, const loc_conf_t* lcf,
                      ngx_uint_t status, const char* error) {
  if (error != nullptr) {
    L->error.data = reinterpret_cast<u_char*>(const_cast<char*>(error));
    L->error.len = ngx_strlen(error);
  }
  L->page_status = status;
  L->password.len = 0;
  if (!prepare_csrf(r, ctx, L, lcf)) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  if (r->method != NGX_HTTP_HEAD) {
    r->method = NGX_HTTP_GET;
    r->method_name = ngx_http_core_get_method;
  }
  ctx->login_page = 1;  // the page's location is not subject to session_require for this request
  ngx_str_t uri = lcf->login_page;
  ngx_str_t args = ngx_null_string;
  return ngx_http_internal_redirect(r, &uri, &args);
}

ngx_int_t unavailable(ngx_http_request_t* r, const char* why) {
  // A 303 without a stored session would look like a login that silently failed.
  ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "session login: %s", why);
  if (push_header(r, "Retry-After", "1") == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  return NGX_HTTP_SERVICE_UNAVAILABLE;
}

// The new session: empty, then the user and the auth service's keys.
bool prepare_session(ngx_http_request_t* r, ctx_t* ctx, login_t* L) {
  void* mem = ngx_palloc(r->pool, sizeof(sess::SessionData));
  if (mem == nullptr) return false;
  auto* data = new (mem) sess::SessionData(&ctx->mr);
  if (L->auth_keys != nullptr) {
    auto* kv = static_cast<ngx_keyval_t*>(L->auth_keys->elts);
    for (ngx_uint_t i = 0; i < L->auth_keys->nelts; i++) {
      data->set_string(sv(kv[i].key), sv(kv[i].value));
    }
  }
  sess::set_session_user(*data, sv(loc_conf(r)->user_key), sv(L->user));
  ctx->next = data;
  return true;
}

ngx_int_t login_response(ngx_http_request_t* r, ctx_t* ctx, login_t* L, const loc_conf_t* lcf) {
  log_login(r, true, L->user);
  metric_login(r, sess::LoginResult::Success);
  L->succeeded = 1;
  // The CSRF cookie has done its job.
  std::string_view name = csrf_cookie_name(r, lcf);
  sess::pstring buf(&ctx->mr);
  if (!name.empty()) delete_cookie(r, name, csrf_attrs(r, lcf), buf);
  return send_redirect(r, NGX_HTTP_SEE_OTHER, L->next.len ? L->next : lcf->login_redirect);
}

// The new session could not be indexed (core/user_index.h): a logout-all would miss it, so the
// login fails; its record is deleted again (no cookie names it either way).
void unindexed_deleted(ngx_http_request_t* r, void*, const sess::RespValue*, bool) {
  metric_login(r, sess::LoginResult::StoreError);
  ngx_int_t rc = guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR, [&]() {
    return unavailable(r, "the new session could not be added to its user's index");
  });
  ngx_http_finalize_request(r, rc);
}

void indexed(ngx_http_request_t* r, void* data, bool ok) {
  auto* L = static_cast<login_t*>(data);
  ctx_t* ctx = get_ctx(r, false);
  ngx_int_t rc = guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  [&]() -> ngx_int_t {
    if (ok) return login_response(r, ctx, L, loc_conf(r));
    L->stored = 0;
    const loc_conf_t* lcf = loc_conf(r);
    bool sent;
    if (flask_records(lcf)) {
      sent = flask_record_send(r, ctx, lcf, sess::RecordWriteKind::Delete, true, nullptr,
                               unindexed_deleted, L);
    } else {
      sess::pstring key(&ctx->mr);
      sess::RedisArgs args(&ctx->mr);
      sent = redis_key_of(r, lcf, ctx->new_id, key) &&
             (sess::redis_cmd_delete(key, args),
              redis_send(r, lcf, args, key, unindexed_deleted, L) != nullptr);
    }
    if (sent) return NGX_AGAIN;
    metric_login(r, sess::LoginResult::StoreError);
    return unavailable(r, "the new session could not be added to its user's index");
  });
  if (rc == NGX_AGAIN) return;
  ngx_http_finalize_request(r, rc);
}

void store_done(ngx_http_request_t* r, void* data, const sess::RespValue* reply, bool) {
  auto* L = static_cast<login_t*>(data);
  sess::WriteOutcome o = sess::record_write_outcome(sess::RecordWriteKind::Create, reply);
  if (o == sess::WriteOutcome::Done) {
    L->stored = 1;
  } else if (o == sess::WriteOutcome::Refused) {
    ngx_str_t msg = log_safe(r, reply->str, 240);
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "session login: the store refused the new session: %V", &msg);
  }
  if (!L->stored) metric_login(r, sess::LoginResult::StoreError);
  ctx_t* ctx = get_ctx(r, false);
  ngx_int_t rc = guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  [&]() -> ngx_int_t {
    if (!L->stored) return unavailable(r, "the session store did not confirm the new session");
    const loc_conf_t* lcf = loc_conf(r);
    if (!index_enabled(r, lcf)) return login_response(r, ctx, L, lcf);
    // The new session joins its user's index once its record is confirmed (a logout-all
    // running now either saw neither or sees both).
    ngx_str_t member;
    sess::Times t;
    t.created = t.refreshed = now_sec();
    if (!index_member_of(r, lcf, ctx->new_id, ctx->flask_new_sid, &member)) {
      return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (index_add(r, lcf, sv(L->user), sv(member), index_ttl(lcf, t), true, indexed, L)) {
      return NGX_AGAIN;
    }
    indexed(r, L, false);
    return NGX_DONE;
  });
  if (rc == NGX_AGAIN || rc == NGX_DONE) return;
  ngx_http_finalize_request(r, rc);
}

// Credentials accepted: store the new session (Redis: and wait for Redis to confirm it before
// answering, so the redirect never carries a cookie for a session that is not there).
ngx_int_t login_success(ngx_http_request_t* r, ctx_t* ctx, login_t* L, const loc_conf_t* lcf) {
  if (L->stored) return login_response(r, ctx, L, lcf);
  if (!prepare_session(r, ctx, L)) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  if (lcf->store != STORE_REDIS) {
    if (!login_cookie_fits(r, ctx, lcf)) {
      metric_login(r, sess::LoginResult::Error);
      return unavailable(r, chunks_of(lcf) > 1
                                ? "the new session does not fit in the cookies chunks= allows "
                                  "(see \"session_store redis\")"
                                : "the new session does not fit in one cookie (see "
                                  "\"session_cookie ... chunks=\" and \"session_store redis\")");
    }
    return login_response(r, ctx, L, lcf);
  }
  if (flask_records(lcf)) {  // a Flask-Session record (src/ngx_http_session_flask.cpp)
    if (!flask_record_send(r, ctx, lcf, sess::RecordWriteKind::Create, true, ctx->next,
                           store_done, L)) {
      return unavailable(r, "the session store is unavailable");
    }
    r->write_event_handler = ngx_http_request_empty_handler;
    return NGX_AGAIN;
  }
  if (!sess::random_bytes(ctx->new_id, sess::kSessionIdLen)) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  sess::Times t;
  t.created = t.refreshed = now_sec();
  ngx_clock clock;
  uint64_t ttl = sess::expiry_record_ttl(policy_of(lcf), t, clock, true);
  sess::pstring key(&ctx->mr);
  if (!redis_key_of(r, lcf, ctx->new_id, key)) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  sess::RedisArgs args(&ctx->mr);
  sess::record_cmd_create(key, *ctx->next, ttl, args);
  if (redis_send(r, lcf, args, key, store_done, L) == nullptr) {
    metric_login(r, sess::LoginResult::StoreError);
    return unavailable(r, "the session store is unavailable");
  }
  r->write_event_handler = ngx_http_request_empty_handler;
  return NGX_AGAIN;
}

ngx_int_t login_failure(ngx_http_request_t* r, ctx_t* ctx, login_t* L, const loc_conf_t* lcf) {
  log_login(r, false, L->user);
  metric_login(r, sess::LoginResult::Failure);
  login_limit_finish(r, &L->limit, LOGIN_FAILED, L->user);
  return render_page(r, ctx, L, lcf, NGX_HTTP_UNAUTHORIZED, kBadCredentials);
}

// session_login_limit refused the attempt: 429 with the page, before any password check.
ngx_int_t login_limited(ngx_http_request_t* r, ctx_t* ctx, login_t* L, const loc_conf_t* lcf,
                        uint64_t retry_after) {
  metric_login(r, sess::LoginResult::Limited);
  u_char buf[NGX_INT64_LEN];
  u_char* end = ngx_sprintf(buf, "%uL", retry_after);
  sess::pstring value(reinterpret_cast<const char*>(buf), end - buf, &ctx->mr);
  if (push_header(r, "Retry-After", value) == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  return render_page(r, ctx, L, lcf, NGX_HTTP_TOO_MANY_REQUESTS, kLimited);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The POST

void login_resume(ngx_http_request_t* r) noexcept {
  ctx_t* ctx = get_ctx(r, false);
  if (ctx == nullptr || ctx->login == nullptr || !ctx->login->auth_done) return;
  login_t* L = ctx->login;
  loc_conf_t* lcf = loc_conf(r);
  r->write_event_handler = ngx_http_request_empty_handler;
  ngx_int_t rc = guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  [&]() -> ngx_int_t {
    if (L->auth_status >= NGX_HTTP_OK && L->auth_status < 300) {
      login_limit_finish(r, &L->limit, LOGIN_SUCCEEDED, L->user);
      return login_success(r, ctx, L, lcf);
    }
    if (L->auth_status == NGX_HTTP_UNAUTHORIZED || L->auth_status == NGX_HTTP_FORBIDDEN) {
      return login_failure(r, ctx, L, lcf);
    }
    login_limit_finish(r, &L->limit, LOGIN_NO_VERDICT, L->user);
    metric_login(r, sess::LoginResult::Error);
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "session login: credential check failed (status %i)", L->auth_status);
    return NGX_HTTP_SERVICE_UNAVAILABLE;
  });
  // NGX_AGAIN: waiting for Redis to store the session. (NGX_DONE, from the internal redirect
  // that renders the page, must be finalized like any other result.)
  if (rc == NGX_AGAIN) return;
  ngx_http_finalize_request(r, rc);
}

namespace {

// Copies the whole form body (at most kMaxFormBody), from memory or from the temporary file
// nginx wrote it to. NGX_DECLINED if it is too large.
ngx_int_t read_body(ngx_http_request_t* r, ngx_str_t* out) {
  out->len = 0;
  out->data = nullptr;
  if (r->request_body == nullptr || r->request_body->bufs == nullptr) return NGX_OK;
  // Buffers are in memory, or in the temporary file, or special (flush, last) with no data.
  auto in_file = [](const ngx_buf_t* b) { return b->in_file && !ngx_buf_in_memory(b); };
  size_t len = 0;
  for (ngx_chain_t* cl = r->request_body->bufs; cl; cl = cl->next) {
    const ngx_buf_t* b = cl->buf;
    if (ngx_buf_in_memory(b)) {
      len += static_cast<size_t>(b->last - b->pos);
    } else if (in_file(b)) {
      len += static_cast<size_t>(b->file_last - b->file_pos);
    }
    if (len > kMaxFormBody) return NGX_DECLINED;
  }
  out->data = static_cast<u_char*>(ngx_pnalloc(r->pool, len ? len : 1));
  if (out->data == nullptr) return NGX_ERROR;
  u_char* p = out->data;
  for (ngx_chain_t* cl = r->request_body->bufs; cl; cl = cl->next) {
    ngx_buf_t* b = cl->buf;
    if (ngx_buf_in_memory(b)) {
      if (b->last > b->pos) p = ngx_cpymem(p, b->pos, b->last - b->pos);
      continue;
    }
    if (!in_file(b)) continue;
    // A local temporary file of at most 16 KiB, just written by nginx (page cache).
    size_t n = static_cast<size_t>(b->file_last - b->file_pos);
    ssize_t got = ngx_read_file(b->file, p, n, b->file_pos);
    if (got != static_cast<ssize_t>(n)) return NGX_ERROR;
    p += n;
  }
  out->len = p - out->data;
  return NGX_OK;
}

bool is_form(ngx_http_request_t* r) {
  if (r->headers_in.content_type == nullptr) return false;
  const ngx_str_t& v = r->headers_in.content_type->value;
  static const char type[] = "application/x-www-form-urlencoded";
  size_t n = sizeof(type) - 1;
  return v.len >= n && ngx_strncasecmp(v.data, (u_char*)type, n) == 0 &&
         (v.len == n || v.data[n] == ';' || v.data[n] == ' ');
}

bool set_next(ngx_http_request_t* r, login_t* L, std::string_view next) {
  if (next.empty() || !sess::redirect_is_safe(next)) return true;
  return pool_str(r->pool, next, &L->next);
}

void log_bad_form(ngx_http_request_t* r, const char* what) {
  uint64_t more = 0;
  if (!form_log_limit.allow(now_sec(), &more)) return;
  ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                "session login: %s (%uL more since the last such line)", what, more);
}

// The credential check could not start: 500, and the attempt is not counted.
ngx_int_t no_verdict(ngx_http_request_t* r, login_t* L) {
  metric_login(r, sess::LoginResult::Error);
  login_limit_finish(r, &L->limit, LOGIN_NO_VERDICT, L->user);
  return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

ngx_int_t process_post(ngx_http_request_t* r, ctx_t* ctx, login_t* L, loc_conf_t* lcf) {
  if (!is_form(r)) return NGX_HTTP_UNSUPPORTED_MEDIA_TYPE;
  ngx_str_t body;
  ngx_int_t rc = read_body(r, &body);
  if (rc == NGX_DECLINED) return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
  if (rc != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;

  sess::FormFields fields(&ctx->mr);
  if (sess::form_decode(sv(body), fields) != sess::FormResult::Ok) {
    log_bad_form(r, "malformed form body");
    return NGX_HTTP_BAD_REQUEST;
  }
  const sess::pstring* next = sess::form_get(fields, "next");
  if (next != nullptr && !set_next(r, L, *next)) return NGX_HTTP_INTERNAL_SERVER_ERROR;

  if (!check_csrf(r, lcf, sess::form_get(fields, "csrf_token"))) {
    log_bad_form(r, "missing or mismatched CSRF token");
    metric_login(r, sess::LoginResult::Csrf);
    return render_page(r, ctx, L, lcf, NGX_HTTP_FORBIDDEN,
                       "the form has expired, please try again");
  }

  const sess::pstring* user = sess::form_get(fields, "username");
  const sess::pstring* password = sess::form_get(fields, "password");
  if (user == nullptr || password == nullptr || user->empty()) {
    metric_login(r, sess::LoginResult::BadForm);
    return render_page(r, ctx, L, lcf, NGX_HTTP_UNAUTHORIZED, "enter a username and a password");
  }
  if (!pool_str(r->pool, *user, &L->user)) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  // Credentials that cannot be valid (control bytes could also break the headers of the auth
  // subrequest) are checked all the same (same cost), against no user.
  // A name that is not UTF-8 would be stored (and read back by every later request) as another
  // name, with U+FFFD in place of its bytes: maybe another user's.
  L->plausible = !(user->size() > kMaxUserLen || password->size() > kMaxPasswordLen ||
                   sess::has_ctl(*user) || sess::has_ctl(*password) ||
                   user->find(':') != sess::pstring::npos || !sess::utf8_well_formed(*user));

  // session_login_limit: a banned client or user name is refused here, before any hash runs;
  // whether the user exists plays no part. Only attempts that reach this point count: a bad
  // form, a CSRF failure or a cross-origin POST checks no password (and a forged cross-site
  // POST must not count against the user name it names).
  uint64_t retry_after = 0;
  rc = login_limit_begin(r, lcf, L->user, &L->limit, &retry_after);
  if (rc == NGX_DECLINED) return login_limited(r, ctx, L, lcf, retry_after);
  if (rc != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;

  if (lcf->login_auth.len) {
    if (!L->plausible) return login_failure(r, ctx, L, lcf);
    if (!pool_str(r->pool, *password, &L->password)) return no_verdict(r, L);
    rc = start_auth_subrequest(r, L, lcf);
    if (rc != NGX_AGAIN) metric_login(r, sess::LoginResult::Error);
    if (rc != NGX_AGAIN) login_limit_finish(r, &L->limit, LOGIN_NO_VERDICT, L->user);
    return rc;
  }
  ngx_str_t pw;
  if (!pool_str(r->pool, *password, &pw)) return no_verdict(r, L);
  rc = users_check_async(r, lcf, L->plausible ? L->user : ngx_str_t{0, nullptr}, pw,
                         user_file_done);
  if (rc == NGX_DECLINED) {
    metric_login(r, sess::LoginResult::Error);
    login_limit_finish(r, &L->limit, LOGIN_NO_VERDICT, L->user);
    return unavailable(r, "the login thread pool is busy");
  }
  if (rc != NGX_AGAIN) return no_verdict(r, L);
  r->write_event_handler = ngx_http_request_empty_handler;
  return NGX_AGAIN;
}

void body_read(ngx_http_request_t* r) noexcept {
  ngx_int_t rc = guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  [&]() -> ngx_int_t {
    ctx_t* ctx = get_ctx(r, true);
    login_t* L = ctx ? login_of(r, ctx) : nullptr;
    return L ? process_post(r, ctx, L, loc_conf(r)) : NGX_HTTP_INTERNAL_SERVER_ERROR;
  });
  if (rc == NGX_AGAIN) return;  // the password check is running: resumed by login_resume
  if (rc == 400 || rc == 413 || rc == 415) metric_login(r, sess::LoginResult::BadForm);
  ngx_http_finalize_request(r, rc);
}

// Origin and Sec-Fetch-Site as the core wants them (nullptr: absent).
const std::string_view* header_view(ngx_http_request_t* r, std::string_view name,
                                    std::string_view* storage) {
  const ngx_str_t* h = request_header(r, name);
  if (h == nullptr) return nullptr;
  *storage = sv(*h);
  return storage;
}

}  // namespace

// (Out of the anonymous namespace: is_session_endpoint compares a content handler with these.)
ngx_int_t login_handler(ngx_http_request_t* r) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR, [&]() -> ngx_int_t {
    if (r != r->main) return NGX_HTTP_FORBIDDEN;  // a login is a browser's own request
    loc_conf_t* lcf = loc_conf(r);
    ctx_t* ctx = get_ctx(r, true);
    login_t* L = ctx ? login_of(r, ctx) : nullptr;
    if (L == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    if (no_store_headers(r) != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;

    if (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD)) {
      if (ngx_http_discard_request_body(r) != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
      ngx_str_t next;
      if (ngx_http_arg(r, (u_char*)"next", 4, &next) == NGX_OK) {
        sess::pstring decoded(&ctx->mr);
        if (sess::percent_decode(sv(next), decoded) && !set_next(r, L, decoded)) {
          return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
      }
      return render_page(r, ctx, L, lcf, 0, nullptr);
    }
    if (r->method != NGX_HTTP_POST) return NGX_HTTP_NOT_ALLOWED;

    // Cross-origin POSTs (login CSRF from a page elsewhere, or from a sibling that can plant
    // cookies) are refused before anything else.
    std::string_view host_v, origin_v, site_v;
    const ngx_str_t* host = request_header(r, "host");
    if (host != nullptr) host_v = sv(*host);
    if (sess::login_origin_check(host_v, header_view(r, "origin", &origin_v),
                                 header_view(r, "sec-fetch-site", &site_v)) !=
        sess::OriginVerdict::Allow) {
      log_bad_form(r, "cross-origin login refused");
      metric_login(r, sess::LoginResult::CrossOrigin);
      if (ngx_http_discard_request_body(r) != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
      return render_page(r, ctx, L, lcf, NGX_HTTP_FORBIDDEN,
                         "cross-site login refused: open the login page and try again");
    }
    if (r->headers_in.content_length_n > static_cast<off_t>(kMaxFormBody)) {
      metric_login(r, sess::LoginResult::BadForm);
      return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    ngx_int_t rc = ngx_http_read_client_request_body(r, body_read);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) return rc;
    return NGX_DONE;
  });
}

ngx_int_t logout_handler(ngx_http_request_t* r) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR, [&]() -> ngx_int_t {
    // Not from a subrequest (SSI include, auth_request): its Set-Cookie would be lost while the
    // record is deleted.
    if (r != r->main) return NGX_HTTP_FORBIDDEN;
    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD | NGX_HTTP_POST))) {
      return NGX_HTTP_NOT_ALLOWED;
    }
    if (ngx_http_discard_request_body(r) != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    std::string_view site_v;
    if (sess::logout_origin_check(header_view(r, "sec-fetch-site", &site_v)) !=
        sess::OriginVerdict::Allow) {
      ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                    "session logout: cross-site request refused");
      return NGX_HTTP_FORBIDDEN;  // the session stays
    }
    loc_conf_t* lcf = loc_conf(r);
    ctx_t* ctx = get_ctx(r, true);
    if (ctx == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    loaded_t* s = &ctx->s;
    if (s->status == sess::LoadStatus::Valid && ensure_decoded(r, s)) {
      const sess::SessionValue* u = sess::session_user(s->view(), sv(lcf->user_key));
      if (u != nullptr) {
        ngx_str_t user = log_safe(r, u->text);
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "session logout: user \"%V\"", &user);
      }
    }
    // The header filter deletes the record (waiting for Redis) and expires the cookie, also
    // when the store is down.
    ctx->logout = 1;
    if (push_header(r, "Cache-Control", "no-store") == nullptr) {
      return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    return send_redirect(r, NGX_HTTP_SEE_OTHER, lcf->logout_uri);
  });
}

bool login_succeeded_slow(ctx_t* ctx) { return ctx->login->succeeded; }
bool login_stored_slow(ctx_t* ctx) { return ctx->login->stored; }

char* login_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->login != NGX_CONF_UNSET) return const_cast<char*>("is duplicate");
  lcf->login = 1;
  auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
      ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
  clcf->handler = login_handler;
  return NGX_CONF_OK;
}

char* logout_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->logout != NGX_CONF_UNSET) return const_cast<char*>("is duplicate");
  lcf->logout = 1;
  // session_logout [uri] [all]; (a uri is a local path: it never reads "all")
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
    if (sv(value[i]) == "all" && i == cf->args->nelts - 1) {
      lcf->logout_all = 1;
      continue;
    }
    if (i != 1 || !sess::redirect_is_safe(sv(value[i]))) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"%V\": \"%V\" must be a local path such as / (not //host, /\\host "
                         "or a URL), or \"all\" last",
                         &cmd->name, &value[i]);
      return static_cast<char*>(NGX_CONF_ERROR);
    }
    lcf->logout_uri = value[i];
  }
  auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
      ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
  clcf->handler = logout_handler;
  return NGX_CONF_OK;
}

bool login_merge(ngx_conf_t* cf, loc_conf_t* conf) noexcept {
  if (conf->login_redirect.len && !sess::redirect_is_safe(sv(conf->login_redirect))) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_login_redirect\" \"%V\" must be a local path such as / (not "
                       "//host, /\\host or a URL)",
                       &conf->login_redirect);
    return false;
  }
  if (conf->login != 1) return true;
#if !(NGX_THREADS)
  if (conf->login_user_file.len) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_login_user_file\" needs nginx built --with-threads");
    return false;
  }
#endif
  if (conf->login_page.len == 0 || conf->login_page.data[0] != '/') {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_login\" requires \"session_login_page\" (a local URI of an "
                       "SSI template)");
    return false;
  }
  if ((conf->login_user_file.len != 0) == (conf->login_auth.len != 0)) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_login\" requires exactly one of \"session_login_user_file\" "
                       "and \"session_login_auth\"");
    return false;
  }
  if (conf->login_auth.len && conf->login_auth.data[0] != '/') {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"session_login_auth\" must be a local URI");
    return false;
  }
#if (NGX_THREADS)
  if (conf->login_user_file.len) {
    ngx_str_t* pool_name = conf->login_thread_pool.len ? &conf->login_thread_pool : nullptr;
    conf->login_pool = ngx_thread_pool_add(cf, pool_name);
    if (conf->login_pool == nullptr) return false;
    if (conf->users == nullptr && (conf->users = users_open(cf, conf->login_user_file)) == nullptr) {
      return false;
    }
  }
#endif
  return true;
}

void login_header_filter(ngx_http_request_t* r, ctx_t* ctx) noexcept {
  login_t* L = ctx->login;
  if (L->page_status && r->headers_out.status == NGX_HTTP_OK) {
    r->headers_out.status = L->page_status;
    r->headers_out.status_line.len = 0;
  }
}

ngx_int_t var_csrf_token(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  ctx_t* ctx = get_ctx(r, false);
  if (ctx == nullptr || ctx->login == nullptr || ctx->login->csrf_token.len == 0) {
    v->not_found = 1;
    return NGX_OK;
  }
  set_var(v, ctx->login->csrf_token.data, ctx->login->csrf_token.len);
  return NGX_OK;
}

ngx_int_t var_login_str(ngx_http_request_t* r, ngx_http_variable_value_t* v,
                        uintptr_t which) noexcept {
  ctx_t* ctx = get_ctx(r, false);
  const ngx_str_t* s = nullptr;
  if (ctx != nullptr && ctx->login != nullptr) {
    login_t* L = ctx->login;
    switch (which) {
      case LOGIN_VAR_ERROR: s = &L->error; break;
      case LOGIN_VAR_NEXT: s = &L->next; break;
      case LOGIN_VAR_USERNAME: s = &L->user; break;
      case LOGIN_VAR_PASSWORD: s = &L->password; break;
      default: break;
    }
  }
  if (s == nullptr || s->len == 0) {
    set_var(v, reinterpret_cast<const u_char*>(""), 0);
    return NGX_OK;
  }
  set_var(v, s->data, s->len);
  return NGX_OK;
}

}  // namespace ngx_session
