// ngx_http_session_module: the login and logout endpoints.
//
// GET /login renders session_login_page (an SSI template) by internal redirect, after setting a
// short-lived CSRF cookie. POST /login reads the form without blocking, checks the double-submit
// CSRF token (HMAC-bound to the cookie, so a cookie planted by a sibling domain is useless
// without the secret), then checks the password: in nginx's thread pool against
// session_login_user_file (bcrypt is slow on purpose; the event loop must not wait for it), or
// by a session_login_auth subrequest. Success starts a new session (new id: no fixation) and
// answers 303 to a safe `next`; failure answers 401 with the page and $session_login_error.

#include "ngx_http_session.h"

#include <cstdio>
#include <string>

#include "core/base64url.h"
#include "core/form.h"
#include "core/htpasswd.h"
#include "core/redirect.h"

extern "C" {
#include <unistd.h>
}

namespace ngx_session {
namespace {

constexpr size_t kMaxFormBody = 16 * 1024;
constexpr size_t kMaxUserLen = 256;
constexpr size_t kMaxPasswordLen = 1024;
constexpr uint64_t kCsrfLifetime = 3600;
constexpr size_t kCsrfNonceLen = 16;
constexpr size_t kCsrfRawLen = kCsrfNonceLen + 8;

const char* const kBadCredentials = "invalid username or password";

ngx_str_t csrf_suffix = ngx_string("_csrf");

// The CSRF cookie's name: "<session cookie>_csrf".
std::string_view csrf_cookie_name(ngx_http_request_t* r, loc_conf_t* lcf, ngx_str_t* out) {
  out->len = lcf->cookie.name.len + csrf_suffix.len;
  out->data = static_cast<u_char*>(ngx_pnalloc(r->pool, out->len));
  if (out->data == nullptr) return {};
  ngx_memcpy(ngx_cpymem(out->data, lcf->cookie.name.data, lcf->cookie.name.len), csrf_suffix.data,
             csrf_suffix.len);
  return sv(*out);
}

// token = base64url(HMAC(csrf key, "login" | 0 | cookie name | 0 | raw cookie bytes))
bool csrf_token_for(loc_conf_t* lcf, size_t key, std::string_view cookie_name,
                    std::string_view raw, sess::pstring& out) {
  std::string_view parts[5] = {"login", std::string_view("\0", 1), cookie_name,
                               std::string_view("\0", 1), raw};
  unsigned char mac[sess::KeyRing::kMacLen];
  if (!lcf->secrets->ring->mac(key, sess::KeyUse::Csrf, parts, 5, mac)) return false;
  sess::base64url_encode(std::string_view(reinterpret_cast<char*>(mac), sizeof(mac)), out);
  return true;
}

uint64_t get_be64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

void put_be64(unsigned char* p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = static_cast<unsigned char>(v);
    v >>= 8;
  }
}

// The raw bytes of a still-valid CSRF cookie of this request, or empty.
sess::pstring received_csrf(ngx_http_request_t* r, ctx_t* ctx, std::string_view name) {
  sess::CookieLookup acc;
  find_cookie(r, name, acc);
  sess::pstring raw(&ctx->mr);
  if (acc.count == 0 || acc.conflicting || acc.value.size() > 64 ||
      !sess::base64url_decode(acc.value, raw) || raw.size() != kCsrfRawLen) {
    raw.clear();
    return raw;
  }
  uint64_t issued = get_be64(reinterpret_cast<const unsigned char*>(raw.data()) + kCsrfNonceLen);
  uint64_t now = static_cast<uint64_t>(ngx_time());
  if (issued > now + 60 || now - issued >= kCsrfLifetime) raw.clear();
  return raw;
}

sess::CookieAttrs csrf_attrs(ngx_http_request_t* r, loc_conf_t* lcf) {
  sess::CookieAttrs a = session_attrs(r, lcf);
  a.max_age = static_cast<int64_t>(kCsrfLifetime);
  a.httponly = true;
  a.samesite = sess::SameSite::Strict;
  return a;
}

// Makes sure the response carries a CSRF cookie and sets ctx->csrf_token to its token.
bool prepare_csrf(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf) {
  ngx_str_t name_buf;
  std::string_view name = csrf_cookie_name(r, lcf, &name_buf);
  if (name.empty()) return false;
  sess::pstring raw = received_csrf(r, ctx, name);
  sess::pstring buf(&ctx->mr);
  if (raw.empty()) {
    unsigned char fresh[kCsrfRawLen];
    if (!sess::random_bytes(fresh, kCsrfNonceLen)) return false;
    put_be64(fresh + kCsrfNonceLen, static_cast<uint64_t>(ngx_time()));
    raw.assign(reinterpret_cast<char*>(fresh), sizeof(fresh));
    sess::pstring value(&ctx->mr);
    sess::base64url_encode(raw, value);
    if (!add_set_cookie(r, name, value, csrf_attrs(r, lcf), buf)) return false;
  }
  sess::pstring token(&ctx->mr);
  if (!csrf_token_for(lcf, 0, name, raw, token)) return false;
  return pool_str(r->pool, token, &ctx->csrf_token);
}

// True if the submitted token matches the CSRF cookie under any key of the ring.
bool check_csrf(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf, const sess::pstring* token) {
  if (token == nullptr || token->empty()) return false;
  ngx_str_t name_buf;
  std::string_view name = csrf_cookie_name(r, lcf, &name_buf);
  if (name.empty()) return false;
  sess::pstring raw = received_csrf(r, ctx, name);
  if (raw.empty()) return false;
  for (size_t k = 0; k < lcf->secrets->ring->size(); k++) {
    sess::pstring expect(&ctx->mr);
    if (csrf_token_for(lcf, k, name, raw, expect) && sess::ct_equal(expect, *token)) return true;
  }
  return false;
}

ngx_int_t no_store_headers(ngx_http_request_t* r) {
  if (push_header(r, "Cache-Control", "no-store") == nullptr ||
      push_header(r, "X-Frame-Options", "DENY") == nullptr ||
      push_header(r, "Content-Security-Policy", "frame-ancestors 'none'") == nullptr) {
    return NGX_ERROR;
  }
  return NGX_OK;
}

// Renders the login page (status: 0 keeps the template's 200).
ngx_int_t render_page(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf, ngx_uint_t status,
                      const char* error) {
  if (error != nullptr) {
    ctx->login_error.data = reinterpret_cast<u_char*>(const_cast<char*>(error));
    ctx->login_error.len = ngx_strlen(error);
  }
  ctx->login_status = status;
  if (!prepare_csrf(r, ctx, lcf)) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  if (r->method != NGX_HTTP_HEAD) {
    r->method = NGX_HTTP_GET;
    r->method_name = ngx_http_core_get_method;
  }
  ngx_str_t uri = lcf->login_page;
  ngx_str_t args = ngx_null_string;
  return ngx_http_internal_redirect(r, &uri, &args);
}

ngx_int_t store_unavailable(ngx_http_request_t* r) {
  // A 303 without a stored session would look like a login that silently failed.
  ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                "session login: the session store is unavailable");
  if (push_header(r, "Retry-After", "1") == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  return NGX_HTTP_SERVICE_UNAVAILABLE;
}

// Puts the user (and the auth service's keys) into the session; a login always starts a new
// session id and a new lifetime.
void prepare_login(ngx_http_request_t* r, ctx_t* ctx) {
  ensure_decoded(r, ctx);
  if (ctx->status != STATUS_VALID) ctx->data.clear();
  ctx->data.set_string("user", sv(ctx->login_user));
  if (ctx->auth_keys != nullptr) {
    auto* kv = static_cast<ngx_keyval_t*>(ctx->auth_keys->elts);
    for (ngx_uint_t i = 0; i < ctx->auth_keys->nelts; i++) {
      ctx->data.set_string(sv(kv[i].key), sv(kv[i].value));
    }
  }
  ctx->login = 1;
  ctx->regenerate = 1;
  ctx->dirty = 1;
}

void login_resume(ngx_http_request_t* r) noexcept;

// Redis store: write the new record and wait for Redis to confirm it before answering, so the
// redirect never carries a cookie for a session that is not there.
ngx_int_t login_store(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf) {
  if (ctx->status == STATUS_VALID && ctx->has_id) redis_delete(r, lcf, ctx->id);
  if (!sess::random_bytes(ctx->id, sess::kSessionIdLen)) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  ctx->has_id = 1;
  uint64_t now = static_cast<uint64_t>(ngx_time());
  ctx->times.created = now;
  ctx->times.refreshed = now;
  sess::pstring json(&ctx->mr);
  ctx->data.encode(json);
  ngx_clock clock;
  uint64_t ttl = sess::expiry_ttl(policy_of(lcf), ctx->times, clock);
  if (redis_store_wait(r, ctx, lcf, json, ttl) != NGX_AGAIN) return store_unavailable(r);
  r->write_event_handler = login_resume;
  return NGX_AGAIN;
}

ngx_int_t login_response(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf) {
  ngx_str_t user = log_safe(r, sv(ctx->login_user));
  char* action = r->connection->log->action;
  r->connection->log->action = nullptr;
  ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "session login: user \"%V\" logged in",
                &user);
  r->connection->log->action = action;

  // The CSRF cookie has done its job.
  ngx_str_t name_buf;
  std::string_view name = csrf_cookie_name(r, lcf, &name_buf);
  sess::pstring buf(&ctx->mr);
  if (!name.empty()) delete_cookie(r, name, csrf_attrs(r, lcf), buf);

  ngx_http_complex_value_t cv;
  ngx_memzero(&cv, sizeof(cv));
  cv.value = ctx->login_next.len ? ctx->login_next : lcf->login_redirect;
  return ngx_http_send_response(r, NGX_HTTP_SEE_OTHER, nullptr, &cv);
}

// Credentials accepted: store the session and answer.
ngx_int_t login_success(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf) {
  if (lcf->store != STORE_REDIS) {
    prepare_login(r, ctx);
    return login_response(r, ctx, lcf);
  }
  if (ctx->store_error) return store_unavailable(r);
  if (!ctx->stored) {
    prepare_login(r, ctx);
    return login_store(r, ctx, lcf);
  }
  return login_response(r, ctx, lcf);
}

ngx_int_t login_failure(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf) {
  ngx_str_t user = log_safe(r, sv(ctx->login_user));
  // One fixed form for fail2ban, whatever the connection is doing ("while sending ...").
  char* action = r->connection->log->action;
  r->connection->log->action = nullptr;
  ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "session login failed: user \"%V\"", &user);
  r->connection->log->action = action;
  return render_page(r, ctx, lcf, NGX_HTTP_UNAUTHORIZED, kBadCredentials);
}

// ---------------------------------------------------------------------------------------------
// Password check in the thread pool

struct user_file_task_t {
  ngx_http_request_t* r;
  ngx_str_t file;      // NUL-terminated
  ngx_str_t user;
  ngx_str_t password;
  int result;          // 1 match, 0 no match, -1 the file could not be read
  int err;
};

// Orders hashes by cost: bcrypt by its cost, then sha-crypt, apr1, SHA.
int hash_rank(std::string_view h) {
  switch (sess::htpasswd_hash_kind(h)) {
    case sess::HashKind::Bcrypt:
      if (h.size() >= 7 && h[4] >= '0' && h[4] <= '9' && h[5] >= '0' && h[5] <= '9') {
        return 100 + (h[4] - '0') * 10 + (h[5] - '0');
      }
      return 100;
    case sess::HashKind::Sha512Crypt:
      return 60;
    case sess::HashKind::Sha256Crypt:
      return 50;
    case sess::HashKind::Apr1:
      return 40;
    case sess::HashKind::Ssha:
    case sess::HashKind::Sha1:
      return 10;
    default:
      return 0;
  }
}

// Runs in a thread of the pool: no nginx pools or logs here.
void user_file_check(void* data, ngx_log_t*) {
  auto* t = static_cast<user_file_task_t*>(data);
  t->result = 0;
  try {
    FILE* f = std::fopen(reinterpret_cast<const char*>(t->file.data), "rb");
    if (f == nullptr) {
      t->err = errno;
      t->result = -1;
      return;
    }
    std::string text;
    char buf[8192];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0 && text.size() < (64u << 20)) {
      text.append(buf, n);
    }
    std::fclose(f);

    std::string_view hash;
    std::string_view user = sv(t->user);
    std::string_view password = sv(t->password);
    if (!user.empty() && sess::htpasswd_find(text, user, &hash)) {
      t->result = sess::htpasswd_verify(password, hash) ? 1 : 0;
      return;
    }
    // Unknown user: spend the time of a wrong password for the most expensive user of the
    // file, by checking the submitted password against that user's hash (same parameters,
    // same salt and password lengths) and ignoring the result.
    std::string_view like;
    int like_rank = -1;
    std::string_view rest(text);
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      std::string_view u, h;
      if (!sess::htpasswd_parse_line(line, &u, &h)) continue;
      int rank = hash_rank(h);
      if (rank > like_rank) {
        like = h;
        like_rank = rank;
      }
    }
    if (like.empty()) {
      (void)sess::htpasswd_verify(password, sess::htpasswd_dummy_hash(like));
    } else {
      (void)sess::htpasswd_verify(password, like);
    }
    t->result = 0;
  } catch (...) {
    t->result = -1;
  }
}

void user_file_done(ngx_event_t* ev) noexcept {
  auto* t = static_cast<user_file_task_t*>(ev->data);
  ngx_http_request_t* r = t->r;
  ngx_connection_t* c = r->connection;
  r->main->blocked--;
  r->aio = 0;
  ctx_t* ctx = get_ctx(r, false);
  if (ctx != nullptr) {
    ctx->auth_status = t->result == 1 ? NGX_HTTP_OK : t->result == 0 ? NGX_HTTP_UNAUTHORIZED : -1;
    ctx->auth_done = 1;
    if (t->result < 0) {
      loc_conf_t* lcf = loc_conf(r);
      ngx_log_error(NGX_LOG_ERR, c->log, t->err, "session_login_user_file \"%V\" cannot be read",
                    &lcf->login_user_file);
    }
  }
  r->write_event_handler(r);
  ngx_http_run_posted_requests(c);
}

ngx_int_t start_user_file_check(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf) {
#if (NGX_THREADS)
  ngx_thread_task_t* task = ngx_thread_task_alloc(r->pool, sizeof(user_file_task_t));
  if (task == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  auto* t = static_cast<user_file_task_t*>(task->ctx);
  t->r = r;
  t->user = ctx->login_plausible ? ctx->login_user : ngx_str_t{0, nullptr};
  t->password = ctx->login_password;
  t->file = lcf->login_user_file;  // NUL-terminated by login_merge
  task->handler = user_file_check;
  task->event.data = t;
  task->event.handler = user_file_done;
  if (ngx_thread_task_post(lcf->login_pool, task) != NGX_OK) {
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
  }
  r->main->blocked++;
  r->aio = 1;
  r->write_event_handler = login_resume;
  return NGX_AGAIN;
#else
  return NGX_HTTP_INTERNAL_SERVER_ERROR;
#endif
}

// ---------------------------------------------------------------------------------------------
// Credential check by subrequest (session_login_auth)

bool header_to_key(const ngx_str_t& name, ngx_str_t* key, ngx_pool_t* pool) {
  static const char prefix[] = "x-session-";
  size_t plen = sizeof(prefix) - 1;
  if (name.len <= plen || ngx_strncasecmp(name.data, (u_char*)prefix, plen) != 0) return false;
  key->len = name.len - plen;
  key->data = static_cast<u_char*>(ngx_pnalloc(pool, key->len));
  if (key->data == nullptr) return false;
  for (size_t i = 0; i < key->len; i++) {
    u_char c = ngx_tolower(name.data[plen + i]);
    key->data[i] = c == '-' ? '_' : c;
  }
  return sess::session_key_valid(sv(*key));
}

ngx_int_t auth_done(ngx_http_request_t* sr, void* data, ngx_int_t rc) noexcept {
  auto* ctx = static_cast<ctx_t*>(data);
  ngx_http_request_t* r = sr->main;
  ctx->auth_done = 1;
  ctx->auth_status = sr->headers_out.status ? static_cast<ngx_int_t>(sr->headers_out.status) : rc;
  if (ctx->auth_status < NGX_HTTP_OK || ctx->auth_status >= 300) return rc;

  // X-Session-<Key>: <value> response headers become session keys.
  bool failed = find_header(&sr->headers_out.headers, [&](const ngx_table_elt_t& h) {
    ngx_str_t key;
    if (h.hash == 0 || !header_to_key(h.key, &key, r->pool)) return false;
    if (sess::has_ctl(sv(h.value))) return false;
    if (sv(key) == "user") {
      // The auth service may canonicalise the user name.
      if (h.value.len) ctx->login_user = h.value;
      return false;
    }
    if (ctx->auth_keys == nullptr) {
      ctx->auth_keys = ngx_array_create(r->pool, 4, sizeof(ngx_keyval_t));
      if (ctx->auth_keys == nullptr) return true;
    }
    auto* kv = static_cast<ngx_keyval_t*>(ngx_array_push(ctx->auth_keys));
    if (kv == nullptr) return true;
    kv->key = key;
    return !pool_str(r->pool, sv(h.value), &kv->value);
  });
  if (failed) return NGX_ERROR;
  return rc;
}

ngx_int_t start_auth_subrequest(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf) {
  auto* ps = static_cast<ngx_http_post_subrequest_t*>(
      ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t)));
  if (ps == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  ps->handler = auth_done;
  ps->data = ctx;
  ngx_http_request_t* sr;
  ngx_str_t uri = lcf->login_auth;
  if (ngx_http_subrequest(r, &uri, nullptr, &sr, ps, NGX_HTTP_SUBREQUEST_WAITED) != NGX_OK) {
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
  }
  // Like auth_request: headers only, and no request body (the credentials are in
  // $session_login_username / $session_login_password).
  sr->request_body = static_cast<ngx_http_request_body_t*>(
      ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t)));
  if (sr->request_body == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  sr->header_only = 1;
  r->write_event_handler = login_resume;
  return NGX_AGAIN;
}

// ---------------------------------------------------------------------------------------------
// The POST

void login_resume(ngx_http_request_t* r) noexcept {
  ctx_t* ctx = get_ctx(r, false);
  if (ctx == nullptr || !ctx->auth_done || ctx->storing) return;
  loc_conf_t* lcf = loc_conf(r);
  r->write_event_handler = ngx_http_request_empty_handler;
  ngx_int_t rc;
  try {
    if (ctx->auth_status >= NGX_HTTP_OK && ctx->auth_status < 300) {
      rc = login_success(r, ctx, lcf);
    } else if (ctx->auth_status == NGX_HTTP_UNAUTHORIZED ||
               ctx->auth_status == NGX_HTTP_FORBIDDEN) {
      rc = login_failure(r, ctx, lcf);
    } else {
      ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                    "session login: credential check failed (status %i)", ctx->auth_status);
      rc = NGX_HTTP_SERVICE_UNAVAILABLE;
    }
  } catch (const std::exception& e) {
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "session login: %s", e.what());
    rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
  }
  // NGX_AGAIN: waiting for Redis to store the session. (NGX_DONE, from the internal redirect
  // that renders the page, must be finalized like any other result.)
  if (rc == NGX_AGAIN) return;
  ngx_http_finalize_request(r, rc);
}

// Copies the whole (small, in-memory) form body. NGX_DECLINED if it is too large.
ngx_int_t read_body(ngx_http_request_t* r, ngx_str_t* out) {
  out->len = 0;
  out->data = nullptr;
  if (r->request_body == nullptr || r->request_body->bufs == nullptr) return NGX_OK;
  size_t len = 0;
  for (ngx_chain_t* cl = r->request_body->bufs; cl; cl = cl->next) {
    if (cl->buf->in_file && !ngx_buf_in_memory(cl->buf)) return NGX_DECLINED;
    len += cl->buf->last - cl->buf->pos;
  }
  if (len > kMaxFormBody) return NGX_DECLINED;
  out->data = static_cast<u_char*>(ngx_pnalloc(r->pool, len ? len : 1));
  if (out->data == nullptr) return NGX_ERROR;
  u_char* p = out->data;
  for (ngx_chain_t* cl = r->request_body->bufs; cl; cl = cl->next) {
    if (cl->buf->last > cl->buf->pos) p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
  }
  out->len = len;
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

bool set_next(ngx_http_request_t* r, ctx_t* ctx, std::string_view next) {
  if (next.empty() || !sess::redirect_is_safe(next)) return true;
  return pool_str(r->pool, next, &ctx->login_next);
}

ngx_int_t process_post(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf) {
  if (!is_form(r)) return NGX_HTTP_UNSUPPORTED_MEDIA_TYPE;
  ngx_str_t body;
  ngx_int_t rc = read_body(r, &body);
  if (rc == NGX_DECLINED) return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
  if (rc != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;

  sess::FormFields fields(&ctx->mr);
  if (sess::form_decode(sv(body), fields) != sess::FormResult::Ok) {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "session login: malformed form body");
    return NGX_HTTP_BAD_REQUEST;
  }
  const sess::pstring* next = sess::form_get(fields, "next");
  if (next != nullptr && !set_next(r, ctx, *next)) return NGX_HTTP_INTERNAL_SERVER_ERROR;

  if (!check_csrf(r, ctx, lcf, sess::form_get(fields, "csrf_token"))) {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "session login: missing or mismatched CSRF token");
    return render_page(r, ctx, lcf, NGX_HTTP_FORBIDDEN,
                       "the form has expired, please try again");
  }

  const sess::pstring* user = sess::form_get(fields, "username");
  const sess::pstring* password = sess::form_get(fields, "password");
  if (user == nullptr || password == nullptr || user->empty()) {
    return render_page(r, ctx, lcf, NGX_HTTP_UNAUTHORIZED, "enter a username and a password");
  }
  if (!pool_str(r->pool, *user, &ctx->login_user) ||
      !pool_str(r->pool, *password, &ctx->login_password)) {
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
  }
  // Credentials that cannot be valid (control bytes could also break the headers of the auth
  // subrequest) are checked all the same (same cost), against no user.
  ctx->login_plausible = !(user->size() > kMaxUserLen || password->size() > kMaxPasswordLen ||
                           sess::has_ctl(*user) || sess::has_ctl(*password) ||
                           user->find(':') != sess::pstring::npos);

  if (lcf->login_auth.len) {
    if (!ctx->login_plausible) {
      ctx->login_password.len = 0;
      return login_failure(r, ctx, lcf);
    }
    return start_auth_subrequest(r, ctx, lcf);
  }
  return start_user_file_check(r, ctx, lcf);
}

void body_read(ngx_http_request_t* r) noexcept {
  ngx_int_t rc;
  try {
    ctx_t* ctx = get_ctx(r, true);
    rc = ctx ? process_post(r, ctx, loc_conf(r)) : NGX_HTTP_INTERNAL_SERVER_ERROR;
  } catch (const std::exception& e) {
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "session login: %s", e.what());
    rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
  }
  if (rc == NGX_AGAIN) return;  // the password check is running: resumed by login_resume
  ngx_http_finalize_request(r, rc);
}

ngx_int_t login_handler(ngx_http_request_t* r) noexcept try {
  loc_conf_t* lcf = loc_conf(r);
  ctx_t* ctx = get_ctx(r, true);
  if (ctx == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  if (no_store_headers(r) != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;

  if (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD)) {
    if (ngx_http_discard_request_body(r) != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    ngx_str_t next;
    if (ngx_http_arg(r, (u_char*)"next", 4, &next) == NGX_OK) {
      sess::pstring decoded(&ctx->mr);
      if (sess::percent_decode(sv(next), decoded) && !set_next(r, ctx, decoded)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
      }
    }
    return render_page(r, ctx, lcf, 0, nullptr);
  }
  if (r->method != NGX_HTTP_POST) return NGX_HTTP_NOT_ALLOWED;

  ngx_int_t rc = ngx_http_read_client_request_body(r, body_read);
  if (rc >= NGX_HTTP_SPECIAL_RESPONSE) return rc;
  return NGX_DONE;
} catch (const std::exception& e) {
  ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "session login: %s", e.what());
  return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

ngx_int_t logout_handler(ngx_http_request_t* r) noexcept try {
  if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD | NGX_HTTP_POST))) return NGX_HTTP_NOT_ALLOWED;
  if (ngx_http_discard_request_body(r) != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  loc_conf_t* lcf = loc_conf(r);
  ctx_t* ctx = get_ctx(r, true);
  if (ctx == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  if (ctx->status == STATUS_VALID && ensure_decoded(r, ctx)) {
    const sess::SessionValue* u = ctx->data.get("user");
    if (u != nullptr) {
      ngx_str_t raw = {u->text.size(), reinterpret_cast<u_char*>(const_cast<char*>(u->text.data()))};
      ngx_str_t user = log_safe(r, sv(raw));
      ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "session logout: user \"%V\"", &user);
    }
  }
  ctx->destroyed = 1;  // the header filter deletes the record and expires the cookie
  ctx->data.clear();
  if (push_header(r, "Cache-Control", "no-store") == nullptr) {
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
  }
  ngx_http_complex_value_t cv;
  ngx_memzero(&cv, sizeof(cv));
  cv.value = lcf->logout_uri;
  return ngx_http_send_response(r, NGX_HTTP_SEE_OTHER, nullptr, &cv);
} catch (const std::exception& e) {
  ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "session logout: %s", e.what());
  return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

bool local_uri(const ngx_str_t& s) { return s.len > 0 && s.data[0] == '/'; }

}  // namespace

char* login_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->login != NGX_CONF_UNSET) return const_cast<char*>("is duplicate");
  lcf->login = 1;
#if (NGX_THREADS)
  lcf->login_pool = ngx_thread_pool_add(cf, nullptr);
  if (lcf->login_pool == nullptr) return static_cast<char*>(NGX_CONF_ERROR);
#endif
  auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
      ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
  clcf->handler = login_handler;
  return NGX_CONF_OK;
}

char* logout_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->logout != NGX_CONF_UNSET) return const_cast<char*>("is duplicate");
  lcf->logout = 1;
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  if (cf->args->nelts == 2) {
    if (!local_uri(value[1])) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": \"%V\" must be a local path such as /",
                         &cmd->name, &value[1]);
      return static_cast<char*>(NGX_CONF_ERROR);
    }
    lcf->logout_uri = value[1];
  }
  auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
      ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
  clcf->handler = logout_handler;
  return NGX_CONF_OK;
}

bool login_merge(ngx_conf_t* cf, loc_conf_t* conf) noexcept {
  if (conf->login_redirect.len && !local_uri(conf->login_redirect)) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_login_redirect\" must be a local path such as /");
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
  if (!local_uri(conf->login_page)) {
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
  if (conf->login_auth.len && !local_uri(conf->login_auth)) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"session_login_auth\" must be a local URI");
    return false;
  }
  if (conf->login_user_file.len) {
    ngx_str_t path = conf->login_user_file;
    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) return false;  // NUL-terminates
    if (access(reinterpret_cast<const char*>(path.data), R_OK) != 0) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                         "\"session_login_user_file\" \"%V\" cannot be read", &path);
      return false;
    }
    conf->login_user_file = path;
  }
  return true;
}

void login_header_filter(ngx_http_request_t* r, ctx_t* ctx) noexcept {
  if (ctx->login_status && r->headers_out.status == NGX_HTTP_OK) {
    r->headers_out.status = ctx->login_status;
    r->headers_out.status_line.len = 0;
  }
}

ngx_int_t var_csrf_token(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  ctx_t* ctx = get_ctx(r, false);
  if (ctx == nullptr || ctx->csrf_token.len == 0) {
    v->not_found = 1;
    return NGX_OK;
  }
  set_var(v, ctx->csrf_token.data, ctx->csrf_token.len);
  return NGX_OK;
}

ngx_int_t var_login_str(ngx_http_request_t* r, ngx_http_variable_value_t* v,
                        uintptr_t which) noexcept {
  ctx_t* ctx = get_ctx(r, false);
  ngx_str_t* s = nullptr;
  if (ctx != nullptr) {
    switch (which) {
      case LOGIN_VAR_ERROR: s = &ctx->login_error; break;
      case LOGIN_VAR_NEXT: s = &ctx->login_next; break;
      case LOGIN_VAR_USERNAME: s = &ctx->login_user; break;
      case LOGIN_VAR_PASSWORD: s = &ctx->login_password; break;
      default: break;
    }
  }
  if (s == nullptr) {
    set_var(v, reinterpret_cast<const u_char*>(""), 0);
    return NGX_OK;
  }
  set_var(v, s->data ? s->data : reinterpret_cast<const u_char*>(""), s->len);
  return NGX_OK;
}

}  // namespace ngx_session
