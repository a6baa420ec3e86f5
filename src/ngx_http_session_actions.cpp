// ngx_http_session_module: the actions (session_set, session_unset, session_clear,
// session_destroy, session_regenerate, cookie_set, cookie_delete, session_destroy_user),
// applied by the header filter to a copy of the session, so that variables keep showing the
// session as it was loaded. Whether a response may apply them at all is the filter's (the
// gate's) decision.

#include "ngx_http_session.h"

namespace ngx_session {
namespace {

sess::LogLimiter own_cookie_log_limit;

// Whether name is a session cookie of any location, one of its chunks or its CSRF cookie: the
// location's own session cookie first (the common case), then every other one configured.
bool is_any_session_own(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view name) {
  if (sess::cookie_is_session_own(sv(lcf->cookie.name), name)) return true;
  auto* mcf = static_cast<main_conf_t*>(ngx_http_get_module_main_conf(r, ngx_http_session_module));
  auto* u = static_cast<session_cookie_use_t*>(mcf->session_cookies.elts);
  for (ngx_uint_t i = 0; i < mcf->session_cookies.nelts; i++) {
    if (sess::cookie_is_session_own(sv(u[i].cookie->name), name)) return true;
  }
  return false;
}

void cookie_action(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf, const action_t* a,
                   sess::pstring& buf) {
  ngx_str_t name, value = ngx_null_string;
  if (ngx_http_complex_value(r, a->name, &name) != NGX_OK) return;
  // A link could otherwise plant a session or log the user out (cookie_set $arg_n $arg_v).
  bool own = is_any_session_own(r, lcf, sv(name));
  if (own || !sess::cookie_name_valid(sv(name))) {
    uint64_t more = 0;
    if (own_cookie_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
      ngx_str_t safe = log_safe(r, sv(name));
      ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                    "cookie_set/cookie_delete: %s \"%V\", not sent (%uL more since the last "
                    "such line)",
                    own ? "refused to write the session's own cookie" : "invalid cookie name",
                    &safe, more);
    }
    return;
  }
  sess::CookieAttrs attrs;
  attrs.path = sv(a->path);
  attrs.domain = sv(a->domain);
  attrs.secure = a->secure;  // deleting a __Secure- or __Host- cookie needs Secure
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
  sess::pstring encoded(&ctx->mr);
  sess::cookie_value_encode(sv(value), encoded);
  add_set_cookie(r, sv(name), encoded, attrs, buf);
}

// A copy of the loaded session's data that the actions change (from the pool).
sess::SessionData* writable_copy(ngx_http_request_t* r, ctx_t* ctx) {
  if (ctx->next != nullptr) return ctx->next;
  void* mem = ngx_palloc(r->pool, sizeof(sess::SessionData));
  if (mem == nullptr) throw std::bad_alloc();
  auto* next = new (mem) sess::SessionData(&ctx->mr);
  loaded_t* s = &ctx->s;
  if (s->status == sess::LoadStatus::Valid && ensure_decoded(r, s)) {
    for (const sess::SessionValue& v : s->view().values()) {
      if (v.is_string) {
        next->set_string(v.key, v.text);
      } else {
        next->set_json(v.key, v.text);
      }
    }
  }
  ctx->next = next;
  return next;
}

void changes_cleanup(void* data) noexcept { static_cast<sess::SessionChanges*>(data)->~SessionChanges(); }

// What the actions changed, key by key (the Redis store writes only that).
sess::SessionChanges* changes_of(ngx_http_request_t* r, ctx_t* ctx) {
  if (ctx->changes != nullptr) return ctx->changes;
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(sess::SessionChanges));
  if (cln == nullptr) throw std::bad_alloc();
  ctx->changes = new (cln->data) sess::SessionChanges();
  cln->handler = changes_cleanup;
  return ctx->changes;
}

// session_destroy_user: the header filter ends every session of the user (through the user
// index, src/ngx_http_session_index.cpp) before the response goes out.
void destroy_user_action(ngx_http_request_t* r, ctx_t* ctx, const action_t* a) {
  ngx_str_t user;
  if (ngx_http_complex_value(r, a->value, &user) != NGX_OK) return;
  if (user.len == 0) {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "session_destroy_user: the user name is empty, no session was ended");
    return;
  }
  // The name as sessions hold it (bytes that are not UTF-8 are stored as U+FFFD).
  if (!sess::utf8_well_formed(sv(user))) {
    sess::pstring stored(&ctx->mr);
    sess::utf8_as_stored(sv(user), stored);
    if (!pool_str(r->pool, stored, &user)) throw std::bad_alloc();
  }
  ctx->destroy_user = user;
}

}  // namespace

void apply_actions(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf, sess::pstring& buf) {
  ctx->read = 1;
  auto* a = static_cast<action_t*>(lcf->actions->elts);
  for (ngx_uint_t i = 0; i < lcf->actions->nelts; i++) {
    if (a[i].type == ACTION_COOKIE_SET || a[i].type == ACTION_COOKIE_DELETE) {
      cookie_action(r, ctx, lcf, &a[i], buf);
      continue;
    }
    if (a[i].type == ACTION_DESTROY_USER) {
      destroy_user_action(r, ctx, &a[i]);
      continue;
    }
    // With the store unreachable (session_store_fail open) the change is noted all the same:
    // the write plan refuses the response rather than claim it.
    sess::SessionData* next = writable_copy(r, ctx);
    switch (a[i].type) {
      case ACTION_SET: {
        ngx_str_t v;
        if (ngx_http_complex_value(r, a[i].value, &v) != NGX_OK) break;
        if (sess::has_ctl(sv(v))) {
          ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                        "session_set \"%V\": value has a control byte, refused", &a[i].key);
          break;
        }
        const sess::SessionValue* old = next->get(sv(a[i].key));
        if (old == nullptr && next->size() >= sess::SessionData::kMaxKeys) {
          ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                        "session_set \"%V\": the session already has %uz keys, refused",
                        &a[i].key, sess::SessionData::kMaxKeys);
          break;
        }
        if (old == nullptr || !old->is_string || old->text != sv(v)) {
          next->set_string(sv(a[i].key), sv(v));
          changes_of(r, ctx)->set_string(sv(a[i].key), sv(v));
          ctx->changed = 1;
        }
        break;
      }
      case ACTION_UNSET:
        if (next->erase(sv(a[i].key))) {
          changes_of(r, ctx)->unset(sv(a[i].key));
          ctx->changed = 1;
        }
        break;
      case ACTION_CLEAR:
        if (!next->empty()) ctx->changed = 1;
        next->clear();
        changes_of(r, ctx)->clear();
        break;
      case ACTION_DESTROY:
        ctx->destroy = 1;
        next->clear();
        break;
      case ACTION_REGENERATE:
        ctx->regenerate = 1;
        break;
      default:
        break;
    }
  }
}

}  // namespace ngx_session
