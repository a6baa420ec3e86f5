// ngx_http_session_module: the login endpoint's credential checks. session_login_auth asks a
// subrequest (like auth_request: headers only, the credentials in $session_login_username and
// $session_login_password, which exists only while it runs); a 2xx accepts and its
// X-Session-<Key> response headers become keys of the new session. session_login_user_file
// verifies the password in nginx's thread pool (ngx_http_session_users.cpp) and ends in
// user_file_done. Either way the POST goes on in login_resume (ngx_http_session_login.cpp).

#include "ngx_http_session_login.h"

namespace ngx_session {

namespace {

// "X-Session-<Key>" -> "<key>": lower case, '-' as '_'; false if it is not such a header or
// the key is not a valid session key.
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
  return guard<ngx_int_t>(sr->connection->log, NGX_ERROR, [&]() -> ngx_int_t {
    auto* L = static_cast<login_t*>(data);
    ngx_http_request_t* r = sr->main;
    L->auth_done = 1;
    L->password.len = 0;  // $session_login_password exists only while the subrequest runs
    L->auth_status = sr->headers_out.status ? static_cast<ngx_int_t>(sr->headers_out.status) : rc;
    if (L->auth_status < NGX_HTTP_OK || L->auth_status >= 300) return rc;

    // X-Session-<Key>: <value> response headers become session keys.
    bool failed = find_header(&sr->headers_out.headers, [&](const ngx_table_elt_t& h) {
      ngx_str_t key;
      if (h.hash == 0 || !header_to_key(h.key, &key, r->pool)) return false;
      if (sess::has_ctl(sv(h.value))) return false;
      if (sv(key) == "user") {
        // The auth service may canonicalise the user name (a name that is not UTF-8 would be
        // stored as another one, with U+FFFD in it: ignored, the typed name stays).
        if (h.value.len && sess::utf8_well_formed(sv(h.value))) L->user = h.value;
        return false;
      }
      if (L->auth_keys == nullptr) {
        L->auth_keys = ngx_array_create(r->pool, 4, sizeof(ngx_keyval_t));
        if (L->auth_keys == nullptr) return true;
      }
      auto* kv = static_cast<ngx_keyval_t*>(ngx_array_push(L->auth_keys));
      if (kv == nullptr) return true;
      kv->key = key;
      return !pool_str(r->pool, sv(h.value), &kv->value);
    });
    if (failed) return NGX_ERROR;
    return rc;
  });
}

}  // namespace

ngx_int_t start_auth_subrequest(ngx_http_request_t* r, login_t* L, const loc_conf_t* lcf) {
  auto* ps = static_cast<ngx_http_post_subrequest_t*>(
      ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t)));
  if (ps == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  ps->handler = auth_done;
  ps->data = L;
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

void user_file_done(ngx_http_request_t* r, int result) {
  ctx_t* ctx = get_ctx(r, false);
  if (ctx == nullptr || ctx->login == nullptr) return;
  login_t* L = ctx->login;
  L->auth_status = result == 1 ? NGX_HTTP_OK : result == 0 ? NGX_HTTP_UNAUTHORIZED : -1;
  L->auth_done = 1;
  if (result < 0) {
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "session_login_user_file \"%V\" cannot be read", &loc_conf(r)->login_user_file);
  }
  r->write_event_handler = login_resume;
  login_resume(r);
}

}  // namespace ngx_session
