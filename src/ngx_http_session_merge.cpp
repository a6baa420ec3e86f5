// ngx_http_session_module: configuration creation, merging (inheritance, defaults) and the
// checks that need a whole location or the whole configuration: a location's own cookies
// against cookie_set/cookie_delete, chunk headers, the user index, and session cookie names
// used with different chunk counts (postconfiguration). The directives are in
// ngx_http_session_conf.cpp.

#include "ngx_http_session.h"

#include "redis/redis.h"

namespace ngx_session {

void* create_main_conf(ngx_conf_t* cf) noexcept {
  auto* mcf = static_cast<main_conf_t*>(ngx_pcalloc(cf->pool, sizeof(main_conf_t)));
  if (mcf == nullptr) return nullptr;
  if (ngx_array_init(&mcf->bindings, cf->pool, 4, sizeof(loc_conf_t*)) != NGX_OK) {
    return nullptr;
  }
  if (ngx_array_init(&mcf->endpoints, cf->pool, 2, sizeof(redis_endpoint_t*)) != NGX_OK) {
    return nullptr;
  }
  if (ngx_array_init(&mcf->chunk_warnings, cf->pool, 2, sizeof(chunk_warning_t)) != NGX_OK ||
      ngx_array_init(&mcf->session_cookies, cf->pool, 2, sizeof(session_cookie_use_t)) !=
          NGX_OK ||
      ngx_array_init(&mcf->action_lists, cf->pool, 2, sizeof(ngx_array_t*)) != NGX_OK) {
    return nullptr;
  }
  return mcf;
}

void* create_loc_conf(ngx_conf_t* cf) noexcept {
  auto* conf = static_cast<loc_conf_t*>(ngx_pcalloc(cf->pool, sizeof(loc_conf_t)));
  if (conf == nullptr) return nullptr;
  // ngx_pcalloc() zeroed: cookie (name.data == NULL means unset), prefix, require_uri, the
  // login strings and user_key.
  conf->actions = static_cast<ngx_array_t*>(NGX_CONF_UNSET_PTR);
  conf->secrets = static_cast<secrets_t*>(NGX_CONF_UNSET_PTR);
  conf->store = NGX_CONF_UNSET_UINT;
  conf->encrypt = NGX_CONF_UNSET;
  conf->lifetime = NGX_CONF_UNSET;
  conf->idle = NGX_CONF_UNSET;
  conf->renew = NGX_CONF_UNSET;
  conf->redis_spec = static_cast<redis_spec_t*>(NGX_CONF_UNSET_PTR);
  conf->redis_tls.enable = NGX_CONF_UNSET;
  conf->redis_tls.verify = NGX_CONF_UNSET;
  conf->redis_timeout = NGX_CONF_UNSET_MSEC;
  conf->redis_cache = static_cast<redis_cache_t*>(NGX_CONF_UNSET_PTR);
  conf->fail = NGX_CONF_UNSET_UINT;
  conf->require = NGX_CONF_UNSET;
  conf->login = NGX_CONF_UNSET;
  conf->logout = NGX_CONF_UNSET;
  conf->logout_all = NGX_CONF_UNSET;
  conf->login_limit = static_cast<login_limit_t*>(NGX_CONF_UNSET_PTR);
  conf->format = NGX_CONF_UNSET_UINT;  // (flask_serializer, flask_signer: set with it)
  conf->jwt_key = static_cast<jwt_key_t*>(NGX_CONF_UNSET_PTR);
  conf->jwt_claims = static_cast<ngx_array_t*>(NGX_CONF_UNSET_PTR);
  conf->jwt_lifetime = NGX_CONF_UNSET;
  conf->jwks = NGX_CONF_UNSET;
  return conf;
}

namespace {

// cookie_set / cookie_delete must not write the session's own cookies: the session cookie, its
// CSRF cookie (<name>_csrf) and chunk names (<name>_<digits>). Names with variables are checked
// when the request runs.
bool check_own_cookies(ngx_conf_t* cf, const loc_conf_t* conf) {
  auto* a = static_cast<action_t*>(conf->actions->elts);
  for (ngx_uint_t i = 0; i < conf->actions->nelts; i++) {
    if (sess::cookie_is_session_own(sv(conf->cookie.name), sv(a[i].literal_name))) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"%s\" cannot write \"%V\": it is the session's own cookie "
                         "(use session_set / session_destroy)",
                         a[i].type == ACTION_COOKIE_SET ? "cookie_set" : "cookie_delete",
                         &a[i].literal_name);
      return false;
    }
  }
  return true;
}

bool has_action(const loc_conf_t* conf, ngx_uint_t type) {
  if (conf->actions == nullptr) return false;
  auto* a = static_cast<action_t*>(conf->actions->elts);
  for (ngx_uint_t i = 0; i < conf->actions->nelts; i++) {
    if (a[i].type == type) return true;
  }
  return false;
}

// session_logout ... all and session_destroy_user need the Redis store (the cookie store keeps
// no list of a user's sessions anywhere: they are ended only by expiring); with it, they turn on
// the user index for every session the configuration writes to Redis.
bool user_index_merge(ngx_conf_t* cf, const loc_conf_t* conf) {
  bool all = conf->logout == 1 && conf->logout_all == 1;
  bool destroy = has_action(conf, ACTION_DESTROY_USER);
  if (!all && !destroy) return true;
  const char* what = all ? "\"session_logout ... all\"" : "\"session_destroy_user\"";
  if (destroy && conf->logout == 1) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_destroy_user\" cannot be used in a \"session_logout\" "
                       "location (use \"session_logout ... all\")");
    return false;
  }
  if (conf->store != STORE_REDIS) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "%s requires \"session_store redis\" (the cookie store keeps no list of "
                       "a user's sessions: a cookie session ends only when it expires)",
                       what);
    return false;
  }
  auto* mcf = static_cast<main_conf_t*>(
      ngx_http_conf_get_module_main_conf(cf, ngx_http_session_module));
  mcf->user_index = 1;
  return true;
}

// A session of N chunks comes back as N cookies of up to 4096 bytes in one Cookie header line,
// which must fit in one large_client_header_buffers buffer of the server (HTTP/1.x; nginx answers
// 400 "Request Header Or Cookie Too Large" otherwise): nginx -t warns, once per session_cookie
// directive and server. The server's core configuration is merged before this module's (nginx
// merges module by module, the core first), and cf->ctx->srv_conf is the server being merged.
bool check_chunk_headers(ngx_conf_t* cf, const loc_conf_t* conf) {
  size_t chunks = chunks_of(conf);
  if (chunks <= 1) return true;
  auto* cscf = static_cast<ngx_http_core_srv_conf_t*>(
      ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module));
  if (cscf == nullptr) return true;
  size_t need = chunks * sess::kMaxSetCookieLen;
  size_t have = cscf->large_client_header_buffers.size;
  if (need <= have) return true;
  auto* mcf = static_cast<main_conf_t*>(
      ngx_http_conf_get_module_main_conf(cf, ngx_http_session_module));
  auto* w = static_cast<chunk_warning_t*>(mcf->chunk_warnings.elts);
  for (ngx_uint_t i = 0; i < mcf->chunk_warnings.nelts; i++) {
    if (w[i].cookie == conf->cookie.name.data && w[i].server == cscf) return true;
  }
  auto* slot = static_cast<chunk_warning_t*>(ngx_array_push(&mcf->chunk_warnings));
  if (slot == nullptr) return false;
  slot->cookie = conf->cookie.name.data;
  slot->server = cscf;
  static ngx_str_t unnamed = ngx_string("(no server_name)");
  ngx_str_t server = cscf->server_name.len != 0 ? cscf->server_name : unnamed;
  ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                "\"session_cookie %V ... chunks=%uz\": a session of %uz cookies comes back in "
                "one Cookie header line of up to %uz bytes, but \"large_client_header_buffers\" "
                "of server \"%V\" is %uz bytes: such requests get 400 \"Request Header Or Cookie "
                "Too Large\" (use e.g. \"large_client_header_buffers 4 %uzk;\", with room for "
                "the other cookies, or fewer chunks) in %V:%ui",
                &conf->cookie.name, chunks, chunks, need, &server, have,
                (need + sess::kMaxSetCookieLen) / 1024, &conf->cookie.file, conf->cookie.line);
  return true;
}

// What check_session_cookie_names looks at: the session cookie of every location with a session
// (a secret), and every location's actions.
bool note_session_cookie(main_conf_t* mcf, const loc_conf_t* conf) {
  if (conf->actions != nullptr) {
    auto** lists = static_cast<ngx_array_t**>(mcf->action_lists.elts);
    bool seen = false;
    for (ngx_uint_t i = 0; i < mcf->action_lists.nelts && !seen; i++) {
      seen = lists[i] == conf->actions;
    }
    if (!seen) {
      auto** slot = static_cast<ngx_array_t**>(ngx_array_push(&mcf->action_lists));
      if (slot == nullptr) return false;
      *slot = conf->actions;
    }
  }
  if (conf->secrets == nullptr) return true;
  size_t chunks = chunks_of(conf);
  auto* u = static_cast<session_cookie_use_t*>(mcf->session_cookies.elts);
  for (ngx_uint_t i = 0; i < mcf->session_cookies.nelts; i++) {
    if (sv(u[i].cookie->name) == sv(conf->cookie.name) && u[i].chunks == chunks) return true;
  }
  auto* slot = static_cast<session_cookie_use_t*>(ngx_array_push(&mcf->session_cookies));
  if (slot == nullptr) return false;
  slot->cookie = &conf->cookie;
  slot->chunks = chunks;
  return true;
}

ngx_str_t where(const ngx_str_t& file, ngx_uint_t line, ngx_pool_t* pool) {
  static ngx_str_t dflt = ngx_string("(the default session cookie)");
  if (file.data == nullptr) return dflt;
  ngx_str_t out;
  out.data = static_cast<u_char*>(ngx_pnalloc(pool, file.len + NGX_INT_T_LEN + 4));
  if (out.data == nullptr) return dflt;
  out.len = static_cast<size_t>(ngx_sprintf(out.data, "in %V:%ui", &file, line) - out.data);
  return out;
}

}  // namespace

// nginx -t, once every location is merged: two session cookies where one is the other's CSRF
// cookie or chunk (a write of one would expire or overwrite the other: users of one location
// logged out by another), a cookie_set / cookie_delete that names any location's session cookie,
// chunk or CSRF cookie (not only its own location's), and one name configured with different
// chunks= (where fewer are allowed, a longer session reads as invalid and a write replaces it).
ngx_int_t check_session_cookie_names(ngx_conf_t* cf) noexcept {
  auto* mcf = static_cast<main_conf_t*>(
      ngx_http_conf_get_module_main_conf(cf, ngx_http_session_module));
  auto* u = static_cast<session_cookie_use_t*>(mcf->session_cookies.elts);
  ngx_uint_t n = mcf->session_cookies.nelts;
  for (ngx_uint_t i = 0; i < n; i++) {
    const cookie_conf_t* a = u[i].cookie;
    for (ngx_uint_t j = 0; j < n; j++) {
      const cookie_conf_t* b = u[j].cookie;
      const char* why = sess::session_cookie_clash(sv(a->name), sv(b->name));
      if (why != nullptr) {
        ngx_str_t wa = where(a->file, a->line, cf->pool), wb = where(b->file, b->line, cf->pool);
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "session cookie \"%V\" %V is %s of session cookie \"%V\" %V: a write of "
                      "one would expire or overwrite the other (choose another name)",
                      &b->name, &wb, why, &a->name, &wa);
        return NGX_ERROR;
      }
      // (Entries are distinct by name and count: the same name here has another chunks=; one
      // directive inherited by a Redis-store location, where chunks do not apply, is not two.)
      if (j > i && sv(a->name) == sv(b->name) &&
          (a->file.data != nullptr || b->file.data != nullptr) &&
          (a->file.data != b->file.data || a->line != b->line)) {
        ngx_str_t wa = where(a->file, a->line, cf->pool), wb = where(b->file, b->line, cf->pool);
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "session cookie \"%V\" is split into up to %uz cookies %V but %uz %V: "
                      "where fewer are allowed, a longer session is read as invalid and a write "
                      "replaces it (give every \"session_cookie %V\" the same chunks=)",
                      &a->name, u[i].chunks, &wa, u[j].chunks, &wb, &a->name);
      }
    }
  }
  auto** lists = static_cast<ngx_array_t**>(mcf->action_lists.elts);
  for (ngx_uint_t l = 0; l < mcf->action_lists.nelts; l++) {
    auto* act = static_cast<action_t*>(lists[l]->elts);
    for (ngx_uint_t k = 0; k < lists[l]->nelts; k++) {
      if (act[k].literal_name.len == 0) continue;
      for (ngx_uint_t i = 0; i < n; i++) {
        const cookie_conf_t* c = u[i].cookie;
        if (!sess::cookie_is_session_own(sv(c->name), sv(act[k].literal_name))) continue;
        ngx_str_t wc = where(c->file, c->line, cf->pool);
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\" cannot write \"%V\": it is the session's own cookie (of session "
                      "cookie \"%V\" %V; use session_set / session_destroy) in %V:%ui",
                      act[k].type == ACTION_COOKIE_SET ? "cookie_set" : "cookie_delete",
                      &act[k].literal_name, &c->name, &wc, &act[k].file, act[k].line);
        return NGX_ERROR;
      }
    }
  }
  return NGX_OK;
}

char* merge_loc_conf(ngx_conf_t* cf, void* parent, void* child) noexcept {
  auto* prev = static_cast<loc_conf_t*>(parent);
  auto* conf = static_cast<loc_conf_t*>(child);

  ngx_conf_merge_ptr_value(conf->secrets, prev->secrets, nullptr);
  if (conf->cookie.name.data == nullptr) {
    if (prev->cookie.name.data != nullptr) {
      conf->cookie = prev->cookie;
    } else {
      ngx_str_set(&conf->cookie.name, "session");
      ngx_str_set(&conf->cookie.path, "/");
      conf->cookie.max_age = -1;
      conf->cookie.secure = SECURE_AUTO;
      conf->cookie.httponly = 1;
      conf->cookie.samesite = static_cast<ngx_uint_t>(sess::SameSite::Lax);
      conf->cookie.chunks = 1;
    }
  }
  ngx_conf_merge_uint_value(conf->store, prev->store, STORE_COOKIE);
  ngx_conf_merge_sec_value(conf->lifetime, prev->lifetime, 31 * 86400);
  ngx_conf_merge_sec_value(conf->idle, prev->idle, 0);
  ngx_conf_merge_sec_value(conf->renew, prev->renew, 60);
  // session_format, session_user_key, and session_encrypt's default, which depends on the format.
  if (!flask_merge(cf, conf, prev)) return static_cast<char*>(NGX_CONF_ERROR);
  if (conf->format == FORMAT_FLASK && conf->cookie.chunks > 1) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_cookie %V ... chunks=%ui\" cannot be used with "
                       "\"session_format flask\" (Flask reads its session from one cookie)",
                       &conf->cookie.name, conf->cookie.chunks);
    return static_cast<char*>(NGX_CONF_ERROR);
  }
  ngx_conf_merge_ptr_value(conf->redis_spec, prev->redis_spec, nullptr);
  ngx_conf_merge_value(conf->redis_tls.enable, prev->redis_tls.enable, 0);
  ngx_conf_merge_value(conf->redis_tls.verify, prev->redis_tls.verify, 1);
  ngx_conf_merge_str_value(conf->redis_tls.trusted_certificate,
                           prev->redis_tls.trusted_certificate, "");
  ngx_conf_merge_str_value(conf->redis_tls.name, prev->redis_tls.name, "");
  ngx_conf_merge_str_value(conf->redis_tls.certificate, prev->redis_tls.certificate, "");
  ngx_conf_merge_str_value(conf->redis_tls.certificate_key, prev->redis_tls.certificate_key, "");
  ngx_conf_merge_str_value(conf->prefix, prev->prefix, "session:");
  ngx_conf_merge_msec_value(conf->redis_timeout, prev->redis_timeout, 200);
  ngx_conf_merge_ptr_value(conf->redis_cache, prev->redis_cache, nullptr);
  ngx_conf_merge_uint_value(conf->fail, prev->fail, FAIL_CLOSED);
  ngx_conf_merge_ptr_value(conf->actions, prev->actions, nullptr);
  ngx_conf_merge_value(conf->require, prev->require, 0);
  ngx_conf_merge_str_value(conf->require_uri, prev->require_uri, "");
  // session_login / session_logout belong to their location (and its `if` blocks, which keep its
  // handler): a nested location is not an endpoint.
  if (conf->login == NGX_CONF_UNSET) conf->login = 0;
  if (conf->users == nullptr) conf->users = prev->users;
#if (NGX_THREADS)
  if (conf->login_pool == nullptr) conf->login_pool = prev->login_pool;
#endif
  ngx_conf_merge_str_value(conf->login_page, prev->login_page, "");
  ngx_conf_merge_str_value(conf->login_user_file, prev->login_user_file, "");
  ngx_conf_merge_str_value(conf->login_auth, prev->login_auth, "");
  ngx_conf_merge_str_value(conf->login_redirect, prev->login_redirect, "/");
  if (conf->logout == NGX_CONF_UNSET) conf->logout = 0;
  ngx_conf_merge_str_value(conf->logout_uri, prev->logout_uri, "/");
  ngx_conf_merge_value(conf->logout_all, prev->logout_all, 0);
  ngx_conf_merge_str_value(conf->login_thread_pool, prev->login_thread_pool, "");
  login_limit_merge(cf, conf, prev);
  if (!jwt_merge(cf, conf, prev)) return static_cast<char*>(NGX_CONF_ERROR);

  if (!redis_cache_merge(cf, conf)) return static_cast<char*>(NGX_CONF_ERROR);
  if (conf->actions != nullptr && !check_own_cookies(cf, conf)) {
    return static_cast<char*>(NGX_CONF_ERROR);
  }
  if (conf->secrets == nullptr) {
    const char* what = conf->actions ? "session_set/cookie_set actions"
                       : conf->require ? "\"session_require\""
                       : conf->login   ? "\"session_login\""
                       : conf->logout  ? "\"session_logout\""
                                       : nullptr;
    if (what != nullptr) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s require \"session_secret_file\"", what);
      return static_cast<char*>(NGX_CONF_ERROR);
    }
  } else if (!login_merge(cf, conf) || !user_index_merge(cf, conf)) {
    return static_cast<char*>(NGX_CONF_ERROR);
  } else if (conf->store != STORE_REDIS) {
    if (!check_chunk_headers(cf, conf)) return static_cast<char*>(NGX_CONF_ERROR);
  } else {
    if (conf->redis_spec == nullptr) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"session_store redis\" requires \"session_redis\"");
      return static_cast<char*>(NGX_CONF_ERROR);
    }
    conf->redis = redis_endpoint(cf, conf->redis_spec, &conf->redis_tls);
    if (conf->redis == nullptr) return static_cast<char*>(NGX_CONF_ERROR);
    redis_note_timeout(conf->redis, conf->redis_timeout);
    if (!redis_cache_attach(cf, conf)) return static_cast<char*>(NGX_CONF_ERROR);
  }
  auto* mcf = static_cast<main_conf_t*>(
      ngx_http_conf_get_module_main_conf(cf, ngx_http_session_module));
  if (!note_session_cookie(mcf, conf)) return static_cast<char*>(NGX_CONF_ERROR);
  // Interned: requests compare bindings several times each (same_binding).
  auto** known = static_cast<loc_conf_t**>(mcf->bindings.elts);
  for (ngx_uint_t i = 0; i < mcf->bindings.nelts && conf->binding == nullptr; i++) {
    if (binding_equal(known[i], conf)) conf->binding = known[i];
  }
  if (conf->binding == nullptr) {
    auto** slot = static_cast<loc_conf_t**>(ngx_array_push(&mcf->bindings));
    if (slot == nullptr) return static_cast<char*>(NGX_CONF_ERROR);
    *slot = conf;
    conf->binding = conf;
  }
  return NGX_CONF_OK;
}

}  // namespace ngx_session
