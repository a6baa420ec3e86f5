// ngx_http_session_module: the header and body filters - the only place that writes a session
// (the write itself - Set-Cookie, the Redis record and user index - is ngx_http_session_write.cpp).
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
#include "ngx_http_session_write.h"

#include "core/gate.h"
#include "core/origin.h"
#include "core/user_index.h"

namespace ngx_session {

ngx_http_output_header_filter_pt next_header_filter;
ngx_http_output_body_filter_pt next_body_filter;

namespace {

const ngx_clock clock_now;

}  // namespace

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

ngx_int_t filter_init(ngx_conf_t*) noexcept {
  next_header_filter = ngx_http_top_header_filter;
  ngx_http_top_header_filter = header_filter;
  next_body_filter = ngx_http_top_body_filter;
  ngx_http_top_body_filter = body_filter;
  return NGX_OK;
}

}  // namespace ngx_session
