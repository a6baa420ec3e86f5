// ngx_http_session_module: the module, the request's session state, the phase handlers that
// enforce session_require and the store failure policy, and the variables. Loading the session
// (which cookie is the session, under which configuration) is in ngx_http_session_load.cpp; the
// header/body filters are in ngx_http_session_filter.cpp, the write they apply in
// ngx_http_session_write.cpp.

#include "ngx_http_session.h"

#include "ngx_http_session_metrics.h"

#include "core/gate.h"
#include "core/redirect.h"

namespace ngx_session {

sess::PhaseLayout http_phases;

// ---------------------------------------------------------------------------------------------
// Boundary helpers

bool pool_str(ngx_pool_t* pool, std::string_view s, ngx_str_t* out) {
  out->len = s.size();
  out->data = static_cast<u_char*>(ngx_pnalloc(pool, s.size() ? s.size() : 1));
  if (out->data == nullptr) return false;
  if (!s.empty()) ngx_memcpy(out->data, s.data(), s.size());
  return true;
}

pool_resource::~pool_resource() = default;

void* pool_resource::do_allocate(size_t bytes, size_t align) {
  void* p = align <= NGX_ALIGNMENT ? ngx_palloc(pool_, bytes) : ngx_pmemalign(pool_, bytes, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

// Memory is returned with the pool: header values may point into buffers of finished strings.
void pool_resource::do_deallocate(void*, size_t, size_t) {}

void id_hex(const unsigned char* id, u_char* out) {
  ngx_hex_dump(out, const_cast<u_char*>(id), sess::kSessionIdLen);
}

ngx_str_t log_safe(ngx_http_request_t* r, std::string_view in, size_t max) {
  ngx_str_t out = ngx_null_string;
  size_t n = ngx_min(in.size(), max);
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

const ngx_str_t* request_header(ngx_http_request_t* r, std::string_view name) {
  const ngx_str_t* found = nullptr;
  find_header(&r->headers_in.headers, [&](const ngx_table_elt_t& h) {
    if (h.key.len != name.size() ||
        ngx_strncasecmp(h.key.data, (u_char*)name.data(), name.size()) != 0) {
      return false;
    }
    found = &h.value;
    return true;
  });
  return found;
}

bool binding_equal(const loc_conf_t* a, const loc_conf_t* b) {
  return a->secrets == b->secrets && sv(a->cookie.name) == sv(b->cookie.name) &&
         cookie_kind(a) == cookie_kind(b) && a->store == b->store && a->redis == b->redis &&
         (a->store != STORE_REDIS || sv(a->prefix) == sv(b->prefix)) &&
         a->lifetime == b->lifetime && a->idle == b->idle && a->format == b->format &&
         chunks_of(a) == chunks_of(b) &&
         a->flask_serializer == b->flask_serializer && a->flask_signer == b->flask_signer;
}

namespace {

void ctx_cleanup(void* data) noexcept {
  auto* ctx = static_cast<ctx_t*>(data);
  ctx->~ctx_t();
}

}  // namespace

loaded_t::loaded_t(std::pmr::memory_resource* mr)
    : conf(nullptr), status(sess::LoadStatus::None), times(), id(), payload(mr),
      shared_payload(nullptr), data(mr), shared(nullptr), flask_sid(), op(nullptr),
      loader(nullptr), waiters(nullptr) {
  had_cookie = 0;
  has_id = 0;
  decoded = 0;
  decode_failed = 0;
  loading = 0;
  store_error = 0;
  reading_v1 = 0;
  retried = 0;
  cache_miss = 0;
  cache_status = 0;
  chunk_head = 0;
}

void loaded_t::reset(const loc_conf_t* binding) {
  conf = binding;
  status = sess::LoadStatus::None;
  times = sess::Times();
  ngx_memzero(id, sizeof(id));
  ngx_str_null(&flask_sid);
  payload.clear();
  shared_payload = nullptr;
  if (!data.empty()) data.clear();
  shared = nullptr;
  cached_value = std::string_view();
  kept_cookie = std::string_view();
  had_cookie = 0;
  has_id = 0;
  decoded = 0;
  decode_failed = 0;
  loading = 0;
  store_error = 0;
  reading_v1 = 0;
  retried = 0;
  cache_miss = 0;
  cache_status = 0;
  chunk_head = 0;
}

namespace {

// &ctx->mr, out of clang's sight: its -Wuninitialized takes the anonymous union for a field of its
// own, never initialized, although mr (its member, declared before s) is initialized first.
std::pmr::memory_resource* resource_of(ctx_t* ctx) { return &ctx->mr; }

}  // namespace

ctx_t::ctx_t(ngx_http_request_t* req)
    : r(req), mr(req->pool), s(resource_of(this)), next(nullptr), changes(nullptr), destroy_user(),
      login(nullptr), w(nullptr), new_id(), flask_new_sid() {
  refused = 0;
  via_error_page = 0;
  in_rewrite = 0;
  login_page = 0;
  read = 0;
  vary_added = 0;
  filter_done = 0;
  changed = 0;
  destroy = 0;
  regenerate = 0;
  logout = 0;
  hold_used = 0;
}

ctx_t* get_ctx_slow(ngx_http_request_t* r, bool create) {
  r = r->main;
  // An internal redirect zeroes r->ctx; the pool cleanup still knows the ctx.
  for (ngx_pool_cleanup_t* c = r->pool->cleanup; c != nullptr; c = c->next) {
    if (c->handler == ctx_cleanup) {
      auto* ctx = static_cast<ctx_t*>(c->data);
      ngx_http_set_ctx(r, ctx, ngx_http_session_module);
      return ctx;
    }
  }
  if (!create) return nullptr;
  // The cleanup and the ctx in one allocation (what ngx_pool_cleanup_add does in two).
  struct cleanup_ctx_t {
    ngx_pool_cleanup_t cln;
    ctx_t ctx;
  };
  static_assert(alignof(cleanup_ctx_t) <= NGX_ALIGNMENT, "ngx_palloc's alignment");
  auto* mem = static_cast<cleanup_ctx_t*>(ngx_palloc(r->pool, sizeof(cleanup_ctx_t)));
  if (mem == nullptr) return nullptr;
  auto* ctx = new (&mem->ctx) ctx_t(r);
  mem->cln.handler = ctx_cleanup;
  mem->cln.data = ctx;
  mem->cln.next = r->pool->cleanup;
  r->pool->cleanup = &mem->cln;
  ngx_http_set_ctx(r, ctx, ngx_http_session_module);
  return ctx;
}


// ---------------------------------------------------------------------------------------------
// session_require and the store failure policy

bool logged_in(ngx_http_request_t* r, loaded_t* s) {
  if (s == nullptr || s->status != sess::LoadStatus::Valid || !ensure_decoded(r, s)) return false;
  return sess::session_user_logged_in(sess::session_user(s->view(), sv(loc_conf(r)->user_key)));
}

namespace {

// Accept: ... text/html ... on a GET or HEAD of a main request: a browser navigating.
bool is_browser(ngx_http_request_t* r) {
  if (r != r->main || !(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) return false;
  const ngx_str_t* accept = request_header(r, "accept");
  return accept != nullptr &&
         ngx_strlcasestrn(accept->data, accept->data + accept->len, (u_char*)"text/html",
                          9 - 1) != nullptr;
}

}  // namespace

ngx_int_t send_redirect(ngx_http_request_t* r, ngx_uint_t status, ngx_str_t to) {
  ngx_http_complex_value_t cv;
  ngx_memzero(&cv, sizeof(cv));
  cv.value = to;
  return ngx_http_send_response(r, status, nullptr, &cv);
}

// The answer to a request without a logged-in session in a protected location: 302 to the login
// page for browsers (main requests only), 401 otherwise (a subrequest's 302 would become a 500
// under auth_request).
ngx_int_t require_denial(ngx_http_request_t* r, const loc_conf_t* lcf, ngx_str_t* location) {
  if (lcf->require_uri.len == 0 || !is_browser(r)) return NGX_HTTP_UNAUTHORIZED;
  sess::pstring loc(std::pmr::new_delete_resource());
  loc.append(sv(lcf->require_uri));
  loc.append("?next=");
  sess::query_escape(sv(r->unparsed_uri), loc);
  if (!pool_str(r->pool, loc, location)) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  return NGX_HTTP_MOVED_TEMPORARILY;
}

namespace {

ngx_int_t deny(ngx_http_request_t* r, const loc_conf_t* lcf) {
  ngx_str_t location;
  ngx_int_t rc = require_denial(r, lcf, &location);
  metric_denied(rc);
  if (rc != NGX_HTTP_MOVED_TEMPORARILY) return rc;
  return send_redirect(r, NGX_HTTP_MOVED_TEMPORARILY, location);
}

ngx_int_t unavailable(ngx_http_request_t* r) {
  metric(sess::Metric::StoreRefusals);
  if (push_header(r, "Retry-After", "1") == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
  return NGX_HTTP_SERVICE_UNAVAILABLE;
}

// SERVER_REWRITE phase, before the server-level rewrite directives: load the session under the
// server's configuration, so that they (`if ($session_user)`) see it with the Redis store too.
// A server-level `return` is checked against a server-level session_require by the header
// filter (which knows the response came from this phase): deciding here would also refuse the
// login page, whose location is not known yet.
ngx_int_t server_rewrite_handler(ngx_http_request_t* r) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR, [&]() -> ngx_int_t {
    loc_conf_t* lcf = loc_conf(r);
    if (lcf->secrets == nullptr || (lcf->store != STORE_REDIS && lcf->require != 1)) {
      return NGX_DECLINED;
    }
    loaded_t* s;
    ngx_int_t rc = load_session(r, lcf, &s);
    if (rc == NGX_AGAIN) return NGX_DONE;
    if (rc != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    return NGX_DECLINED;
  });
}

// REWRITE phase, before the rewrite module's handler (so that `return` and `if` come after):
// load the session under this location's configuration (again, if an internal redirect brought
// the request here from a location with another one), then apply the store failure policy and
// session_require. Subrequests are checked too.
ngx_int_t rewrite_handler(ngx_http_request_t* r) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR, [&]() -> ngx_int_t {
    loc_conf_t* lcf = loc_conf(r);
    ctx_t* ctx = get_ctx(r, false);
    if (ctx != nullptr && r == r->main && !ctx->in_rewrite) ctx->refused = 0;  // a new location
    if (r == r->main && (r->error_page || (r->internal && r->err_status >= NGX_HTTP_BAD_REQUEST))) {
      // An error page (any location, whether it has sessions or not): nothing is written.
      if (ctx == nullptr && (ctx = get_ctx(r, true)) == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
      }
      ctx->via_error_page = 1;
    }
    if (lcf->secrets == nullptr) return NGX_DECLINED;

    loaded_t* s;
    ngx_int_t rc = load_session(r, lcf, &s);
    if (rc == NGX_AGAIN) {
      if (r == r->main) {
        // Resumed when Redis answers; a client that goes away meanwhile ends the request, and
        // the pool cleanup cancels the lookup.
        get_ctx(r, false)->in_rewrite = 1;
        r->read_event_handler = ngx_http_test_reading;
      }
      return NGX_DONE;
    }
    if (rc != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    ctx = get_ctx(r, false);
    if (r == r->main && ctx->in_rewrite) {
      ctx->in_rewrite = 0;
      r->read_event_handler = ngx_http_block_reading;  // as it was before the lookup
    }

    // The login and logout endpoints themselves (by their content handler, so that a nested
    // location keeps its own session_require), the page the login renders, and session_jwks
    // (a public key, fetched server-to-server without a session).
    // (Asked only when there is something to refuse.)
    auto exempt = [&]() {
      return is_session_endpoint(r) || is_jwks_endpoint(r) || (r == r->main && ctx->login_page);
    };
    if (s->store_error && lcf->fail == FAIL_CLOSED && !exempt()) {
      if (r == r->main) ctx->refused = 1;
      return unavailable(r);
    }
    if (lcf->require == 1 && !exempt()) {
      ctx->read = 1;
      if (!logged_in(r, s)) {
        if (r == r->main) ctx->refused = 1;
        return deny(r, lcf);
      }
    }
    return NGX_DECLINED;
  });
}

// ---------------------------------------------------------------------------------------------
// Variables

ngx_int_t not_found(ngx_http_variable_value_t* v) {
  v->not_found = 1;
  v->no_cacheable = 1;
  return NGX_OK;
}

sess::LogLimiter ambiguous_log_limit(60);

// $session_<key> (user == false: data is the variable's name) and $session_user (user == true).
template <bool user>
ngx_int_t var_value(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t data) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_ERROR, [&]() -> ngx_int_t {
    static ngx_str_t user_name = ngx_string("session_user");
    auto* name = user ? &user_name : reinterpret_cast<ngx_str_t*>(data);
    std::string_view key = user ? sv(loc_conf(r)->user_key)  // session_user_key
                                : sv(*name).substr(sizeof("session_") - 1);
    loaded_t* s = current_session(r);
    if (s == nullptr || s->status != sess::LoadStatus::Valid || !ensure_decoded(r, s)) {
      return not_found(v);
    }
    bool ambiguous = false;
    // $session_user is the user session_require checks: the exact key, no case variants.
    const sess::SessionValue* val =
        user ? sess::session_user(s->view(), key) : s->view().get_ci(key, &ambiguous);
    // ... and it is a user only as session_require counts one: a non-empty string (not a
    // Flask None, number, list or bytes shown as text).
    if (user && !sess::session_user_logged_in(val)) return not_found(v);
    if (ambiguous) {
      uint64_t more = 0;
      if (ambiguous_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "session has two keys that differ only in case for $%V: it is empty "
                      "(%uL more since the last such line)",
                      name, more);
      }
      return not_found(v);
    }
    if (val == nullptr) return not_found(v);
    if (s->conf->format == FORMAT_FLASK && !val->is_string) {
      // Flask's tagged values: tuple as a JSON array, bytes as base64, uuid as hex, ...
      sess::pstring text(&get_ctx(r, false)->mr);
      if (!flask_var_text(*val, text)) return not_found(v);
      if (sess::has_ctl(text)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "session key \"%V\" holds a control byte, $%V is empty", name, name);
        return not_found(v);
      }
      ngx_str_t copy;  // (text's bytes may be inside the string object itself)
      if (!pool_str(r->pool, text, &copy)) return NGX_ERROR;
      set_var(v, copy.data, copy.len);
      return NGX_OK;
    }
    if (sess::has_ctl(val->text)) {
      ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                    "session key \"%V\" holds a control byte, $%V is empty", name, name);
      return not_found(v);
    }
    set_var(v, reinterpret_cast<const u_char*>(val->text.data()), val->text.size());
    return NGX_OK;
  });
}

ngx_str_t status_names[] = {ngx_string("none"), ngx_string("valid"), ngx_string("expired"),
                            ngx_string("invalid"), ngx_string("error")};

ngx_int_t var_status(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_ERROR, [&]() -> ngx_int_t {
    loaded_t* s = current_session(r);
    if (s != nullptr) ensure_decoded(r, s);  // undecodable data makes it "invalid"
    auto st = static_cast<size_t>(s ? s->status : sess::LoadStatus::None);
    set_var(v, status_names[st].data, status_names[st].len);
    return NGX_OK;
  });
}

ngx_int_t var_expires(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_ERROR, [&]() -> ngx_int_t {
    loaded_t* s = current_session(r);
    if (s == nullptr || !ensure_decoded(r, s) || s->status != sess::LoadStatus::Valid) {
      return not_found(v);
    }
    auto* p = static_cast<u_char*>(ngx_pnalloc(r->pool, NGX_TIME_T_LEN));
    if (p == nullptr) return NGX_ERROR;
    uint64_t t = sess::expiry_expires_at(policy_of(s->conf), s->times);
    set_var(v, p, ngx_sprintf(p, "%uL", t) - p);
    return NGX_OK;
  });
}

ngx_int_t var_id(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_ERROR, [&]() -> ngx_int_t {
    loaded_t* s = current_session(r);
    if (s == nullptr || !s->has_id || s->status != sess::LoadStatus::Valid ||
        !ensure_decoded(r, s)) {
      set_var(v, reinterpret_cast<const u_char*>(""), 0);
      return NGX_OK;
    }
    if (s->conf->format == FORMAT_FLASK) {  // the Flask-Session id (checked: [A-Za-z0-9_-])
      set_var(v, s->flask_sid.data, s->flask_sid.len);
      return NGX_OK;
    }
    auto* p = static_cast<u_char*>(ngx_pnalloc(r->pool, 2 * sess::kSessionIdLen));
    if (p == nullptr) return NGX_ERROR;
    id_hex(s->id, p);
    set_var(v, p, 2 * sess::kSessionIdLen);
    return NGX_OK;
  });
}

ngx_http_variable_t variables[] = {
    {ngx_string("session_"), nullptr, var_value<false>, 0,
     NGX_HTTP_VAR_NOCACHEABLE | NGX_HTTP_VAR_PREFIX, 0},
    // (Its own variable only to skip reading the name on every request: it shows
    // session_user_key's value, so a key named "user" is not reserved. Changeable, as it was
    // under the prefix: `set $session_user` and `map ... $session_user` override it.)
    {ngx_string("session_user"), nullptr, var_value<true>, 0,
     NGX_HTTP_VAR_CHANGEABLE | NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_status"), nullptr, var_status, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_expires"), nullptr, var_expires, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_id"), nullptr, var_id, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_cache_status"), nullptr, var_cache_status, 0,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_csrf_token"), nullptr, var_csrf_token, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("session_jwt"), nullptr, var_session_jwt, 0, NGX_HTTP_VAR_NOCACHEABLE, 0},
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
  // Pushed after the rewrite module's handlers, so they run before them (nginx runs the handlers
  // of one phase in reverse order of registration).
  auto* h = static_cast<ngx_http_handler_pt*>(
      ngx_array_push(&cmcf->phases[NGX_HTTP_SERVER_REWRITE_PHASE].handlers));
  if (h == nullptr) return NGX_ERROR;
  *h = server_rewrite_handler;
  h = static_cast<ngx_http_handler_pt*>(
      ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers));
  if (h == nullptr) return NGX_ERROR;
  *h = rewrite_handler;
  if (metrics_postconfiguration(cf) != NGX_OK) return NGX_ERROR;
  if (check_session_cookie_names(cf) != NGX_OK) return NGX_ERROR;
  return filter_init(cf);
}

// The phase engine is built after every module's postconfiguration: read its layout once.
ngx_int_t init_module(ngx_cycle_t* cycle) noexcept {
  if (cycle->conf_ctx[ngx_http_module.index] == nullptr) return NGX_OK;
  redis_cache_init_module(cycle);
  auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(
      ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module));
  size_t counts[sess::kPhaseCount];
  for (size_t i = 0; i < sess::kPhaseCount; i++) counts[i] = cmcf->phases[i].handlers.nelts;
  http_phases = sess::phase_layout(counts);
  if (http_phases.server_rewrite != cmcf->phase_engine.server_rewrite_index ||
      http_phases.rewrite != cmcf->phase_engine.location_rewrite_index) {
    ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                  "session: unexpected layout of nginx's request phases (this nginx version "
                  "is not supported)");
    return NGX_ERROR;
  }
  return NGX_OK;
}

ngx_int_t init_process(ngx_cycle_t* cycle) noexcept {
  metrics_init_process(cycle);
  return redis_init_process(cycle);
}

void exit_process(ngx_cycle_t* cycle) noexcept { redis_exit_process(cycle); }

ngx_http_module_t module_ctx = {
    preconfiguration,  postconfiguration, create_main_conf, nullptr,
    nullptr,           nullptr,           create_loc_conf,  merge_loc_conf,
};

}  // namespace

void set_var(ngx_http_variable_value_t* v, const u_char* data, size_t len) {
  v->len = len;
  v->data = const_cast<u_char*>(data);
  v->valid = 1;
  v->no_cacheable = 1;
  v->not_found = 0;
}

bool is_reserved_key(std::string_view key) {
  constexpr std::string_view prefix = "session_";
  for (ngx_http_variable_t* v = variables; v->name.len; v++) {
    std::string_view name = sv(v->name);
    if (name.size() <= prefix.size()) continue;  // the prefix variable itself
    std::string_view own = name.substr(prefix.size());
    if (v->get_handler == var_value<true>) continue;  // $session_user: see above
    if (own.size() == key.size() &&
        ngx_strncasecmp((u_char*)own.data(), (u_char*)key.data(), key.size()) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace ngx_session

extern "C" {
__attribute__((visibility("default"))) ngx_module_t ngx_http_session_module = {
    NGX_MODULE_V1,
    &ngx_session::module_ctx,
    ngx_session::commands,
    NGX_HTTP_MODULE,
    nullptr,
    ngx_session::init_module,
    ngx_session::init_process,
    nullptr,
    nullptr,
    ngx_session::exit_process,
    nullptr,
    NGX_MODULE_V1_PADDING,
};
}
