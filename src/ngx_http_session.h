// ngx_http_session_module: declarations shared by the glue translation units.
//
// The glue is thin: configuration, nginx phases and filters, variables and the Redis adapter.
// Every decision about bytes or trust (envelopes, cookies, JSON, forms, redirects, passwords,
// which cookie is the session, whether a response may write, what it writes) is made by the
// pure C++ core in src/core/; the glue gathers the inputs and applies the result.
#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <memory>
#include <memory_resource>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "core/candidates.h"
#include "core/chunks.h"
#include "core/cookie.h"
#include "core/crypto.h"
#include "core/envelope.h"
#include "core/expiry.h"
#include "core/gate.h"
#include "core/rate_limit.h"
#include "core/record.h"
#include "core/redis_cmd.h"
#include "core/resp.h"
#include "core/redis_cache.h"
#include "core/session_data.h"
#include "core/verified_cache.h"
#include "core/write_plan.h"

extern "C" {
extern ngx_module_t ngx_http_session_module;
}

namespace ngx_session {

// ---------------------------------------------------------------------------------------------
// Boundary helpers

inline std::string_view sv(const ngx_str_t& s) {
  return {reinterpret_cast<const char*>(s.data), s.len};
}

inline ngx_str_t ngx_str(std::string_view s) {
  return {s.size(), reinterpret_cast<u_char*>(const_cast<char*>(s.data()))};
}

// Runs f() and turns any exception (bad_alloc included) into `fallback` with one log line: every
// callback nginx calls goes through this, so no exception reaches std::terminate.
template <typename T, typename F>
T guard(ngx_log_t* log, T fallback, F&& f) noexcept {
  try {
    return f();
  } catch (const std::exception& e) {
    ngx_log_error(NGX_LOG_ERR, log, 0, "session: %s", e.what());
  } catch (...) {
    ngx_log_error(NGX_LOG_ERR, log, 0, "session: unknown exception");
  }
  return fallback;
}

template <typename F>
void guard_void(ngx_log_t* log, F&& f) noexcept {
  guard<int>(log, 0, [&]() {
    f();
    return 0;
  });
}

// Calls f(header) for every element of an nginx header list until f returns true; returns
// true if it did.
template <typename F>
bool find_header(ngx_list_t* list, F f) {
  for (ngx_list_part_t* part = &list->part; part != nullptr; part = part->next) {
    auto* h = static_cast<ngx_table_elt_t*>(part->elts);
    for (ngx_uint_t i = 0; i < part->nelts; i++) {
      if (f(h[i])) return true;
    }
  }
  return false;
}

// The value of the first request header named `name` (case-insensitive), or nullptr.
const ngx_str_t* request_header(ngx_http_request_t* r, std::string_view name);

// Copies s into pool memory as an ngx_str_t. Returns false on allocation failure.
bool pool_str(ngx_pool_t* pool, std::string_view s, ngx_str_t* out);

// std::pmr resource over an nginx pool: request-lifetime strings of the core live in r->pool.
class pool_resource final : public std::pmr::memory_resource {
 public:
  explicit pool_resource(ngx_pool_t* pool) : pool_(pool) {}
  ~pool_resource() override;  // (defined with do_allocate, where the vtable is: see ctx_t)

 private:
  void* do_allocate(size_t bytes, size_t align) override;
  void do_deallocate(void* p, size_t bytes, size_t align) override;
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
  ngx_pool_t* pool_;
};

// ---------------------------------------------------------------------------------------------
// Configuration

enum : ngx_uint_t { STORE_COOKIE = 1, STORE_REDIS = 2 };
enum : ngx_uint_t { FAIL_CLOSED = 1, FAIL_OPEN = 2 };
enum : ngx_uint_t { SECURE_OFF = 0, SECURE_ON = 1, SECURE_AUTO = 2 };
enum : ngx_uint_t { FORMAT_NATIVE = 1, FORMAT_FLASK = 2 };
// session_format flask serializer= (Flask-Session records); 0: not given.
enum : ngx_uint_t { FLASK_SER_NONE = 0, FLASK_SER_MSGPACK, FLASK_SER_JSON, FLASK_SER_PICKLE };

struct flask_keys_t;      // src/ngx_http_session_flask.cpp

struct secrets_t {
  sess::KeyRing* ring;
  ngx_str_t path;
  flask_keys_t* flask;    // the same secrets as Flask's SECRET_KEY (itsdangerous' derivation)
  size_t short_line;      // the first line shorter than KeyRing::kMinSecretLen (0: none)
  size_t short_count;     // ... and how many are
  ngx_flag_t short_reported;  // flask mode warned about them once
};

struct cookie_conf_t {
  ngx_str_t name;
  ngx_str_t path;
  ngx_str_t domain;
  time_t max_age;        // -1: none
  ngx_uint_t secure;     // SECURE_*
  ngx_flag_t httponly;
  ngx_uint_t samesite;   // sess::SameSite
  ngx_flag_t partitioned;
  ngx_uint_t chunks;     // chunks=: the most cookies a session is split into (core/chunks.h)
  ngx_str_t file;        // where the directive is (for the merge's large_client_header_buffers
  ngx_uint_t line;       // warning); file.data == NULL: the default cookie
};

enum action_type_e : ngx_uint_t {
  ACTION_SET,
  ACTION_UNSET,
  ACTION_CLEAR,
  ACTION_DESTROY,
  ACTION_REGENERATE,
  ACTION_COOKIE_SET,
  ACTION_COOKIE_DELETE,
  ACTION_DESTROY_USER,
};

struct action_t {
  ngx_uint_t type;
  ngx_str_t key;                    // session_set / session_unset
  ngx_http_complex_value_t* name;   // cookie_set / cookie_delete
  ngx_str_t literal_name;           // the name when it has no variables (checked at merge)
  ngx_http_complex_value_t* value;  // session_set / cookie_set / session_destroy_user
  ngx_str_t path;
  ngx_str_t domain;
  time_t max_age;                   // -1: none
  time_t expires;                   // -1: none (relative seconds)
  ngx_flag_t secure;
  ngx_flag_t httponly;
  ngx_uint_t samesite;
  ngx_flag_t partitioned;
  ngx_str_t file;                   // where the directive is (nginx -t messages)
  ngx_uint_t line;
};

struct redis_spec_t;       // src/redis/redis.h
struct redis_endpoint_t;

// The session_redis_tls* settings of a location.
struct redis_tls_conf_t {
  ngx_flag_t enable;
  ngx_str_t trusted_certificate;  // empty: the system's CA store
  ngx_flag_t verify;
  ngx_str_t name;                 // SNI and verification name; empty: the address's host
  ngx_str_t certificate;
  ngx_str_t certificate_key;
};

struct user_file_t;       // src/ngx_http_session_users.cpp
struct login_limit_t;     // src/ngx_http_session_login_limit.cpp
struct jwt_key_t;         // src/ngx_http_session_jwt.cpp

// session_redis_cache (src/redis/cache.cpp).
struct redis_cache_t {
  ngx_shm_zone_t* zone;
  ngx_msec_t max_age;
};

// nginx -t warned that a session_cookie's chunks do not fit a server's header buffer.
struct chunk_warning_t {
  const u_char* cookie;   // the session_cookie directive (its name's bytes)
  const void* server;     // the server's ngx_http_core_srv_conf_t
};

// A session cookie some location uses (merge_loc_conf): one per distinct name and chunk count.
struct session_cookie_use_t {
  const cookie_conf_t* cookie;
  size_t chunks;          // chunks_of() the location
};

struct main_conf_t {
  ngx_array_t endpoints;  // of redis_endpoint_t*: one Redis client per entry in each worker
  ngx_array_t bindings;   // of loc_conf_t*: one per distinct binding (loc_conf_t::binding)
  ngx_flag_t user_index;  // a location uses session_logout ... all or session_destroy_user: every
                          // Redis session written keeps its user's index (src/core/user_index.h)
  ngx_array_t chunk_warnings;  // of chunk_warning_t: nginx -t said it once
  ngx_array_t session_cookies;  // of session_cookie_use_t: every session cookie configured;
                                // cookie_set / cookie_delete write none of them, nor their
                                // chunks or CSRF cookies (check_session_cookie_names, run time)
  ngx_array_t action_lists;     // of ngx_array_t*: each location's actions, once
};

struct loc_conf_t {
  secrets_t* secrets;
  cookie_conf_t cookie;
  ngx_uint_t store;
  ngx_flag_t encrypt;
  time_t lifetime;
  time_t idle;            // 0: off
  time_t renew;
  redis_spec_t* redis_spec;       // session_redis
  redis_tls_conf_t redis_tls;     // session_redis_tls*
  redis_endpoint_t* redis;        // made at merge for locations with the Redis store
  ngx_str_t prefix;
  ngx_msec_t redis_timeout;
  redis_cache_t* redis_cache;     // session_redis_cache; nullptr: off
  const loc_conf_t* binding;      // the first merged conf with the same binding (same_binding:
                                  // one pointer compare); nullptr: not merged
  ngx_uint_t fail;
  ngx_uint_t format;      // FORMAT_*
  ngx_uint_t flask_serializer;    // FLASK_SER_*
  ngx_flag_t flask_signer;
  ngx_str_t user_key;     // session_user_key
  ngx_array_t* actions;   // of action_t
  ngx_int_t require;      // 0 off, 1 on
  ngx_str_t require_uri;

  // login / logout (src/ngx_http_session_login.cpp)
  ngx_flag_t login;
  ngx_str_t login_page;
  ngx_str_t login_user_file;
  user_file_t* users;     // the parsed user file (src/ngx_http_session_users.cpp)
  ngx_str_t login_auth;
  ngx_str_t login_redirect;
  ngx_flag_t logout;
  ngx_str_t logout_uri;
  ngx_flag_t logout_all;  // session_logout ... all (inherited like the uri, for `if` blocks)
  ngx_str_t login_thread_pool;
  login_limit_t* login_limit;     // session_login_limit; nullptr: none
#if (NGX_THREADS)
  ngx_thread_pool_t* login_pool;  // password hashing runs off the event loop
#endif

  // signed identity tokens (src/ngx_http_session_jwt.cpp)
  jwt_key_t* jwt_key;     // session_jwt_key; nullptr: none
  ngx_array_t* jwt_claims;  // session_jwt_claims: the keys besides the user (of ngx_str_t)
  time_t jwt_lifetime;    // session_jwt_lifetime
  ngx_flag_t jwks;        // session_jwks (this location only)

  // per worker: "actions in a subrequest are ignored" is logged once per location
  ngx_flag_t warned_subrequest_actions;
};

// ---------------------------------------------------------------------------------------------
// Per-request state

// A session as loaded under one configuration (its binding: secret ring, cookie name and kind,
// store, Redis server and prefix, expiry policy). Variables show it as loaded: actions write a
// copy (ctx_t::next) that takes effect from the next request.
struct redis_op_t;

struct loaded_t {
  const loc_conf_t* conf;         // the binding it was loaded under; nullptr: not loaded
  sess::LoadStatus status;
  sess::Times times;
  unsigned char id[sess::kSessionIdLen];
  sess::pstring payload;          // JSON as received (decoded into data on first use), or ...
  const std::string* shared_payload;  // ... the verified-cookie table's copy (kept alive by a
                                      // hold until the request ends: hold_until_request_ends)
  sess::SessionData data;         // decoded here, or ...
  const sess::SessionData* shared;   // ... the verified-cookie table's copy (held likewise)
  std::string_view cached_value;  // the cookie value, if the verified-cookie table holds it
                                  // (the decoded data is added to the entry on first use)
  std::string_view kept_cookie;   // Redis store with session_redis_cache: the one cookie, as
                                  // verified, for the zone's entry to keep (load_kept)
  ngx_str_t flask_sid;            // flask mode, Redis store: the Flask-Session id (pool)
  redis_op_t* op;                 // pending lookup, cancelled if the request goes away
  ngx_http_request_t* loader;     // the request that started it
  ngx_array_t* waiters;           // other requests waiting for it (ngx_http_request_t*)
  unsigned had_cookie : 1;        // a session cookie was received
  unsigned has_id : 1;            // a verified id (Redis store)
  unsigned decoded : 1;           // data reflects payload
  unsigned decode_failed : 1;     // ... and it was not a session (status is now invalid)
  unsigned loading : 1;           // a Redis lookup is in flight
  unsigned store_error : 1;       // the store could not be asked
  unsigned reading_v1 : 1;        // the lookup reads a v1 record (GETRANGE)
  unsigned retried : 1;           // ... and read it as v2 once more
  unsigned cache_miss : 1;        // session_redis_cache missed: the read fills the zone
  unsigned cache_status : 2;      // a sess::CacheStatus ($session_cache_status)
  unsigned chunk_head : 1;        // a cookie NAME came as a chunk head ("<k>.", core/chunks.h):
                                  // its chunks are expired when the session is written

  explicit loaded_t(std::pmr::memory_resource* mr);
  void reset(const loc_conf_t* binding);
  // The decoded data to read (after ensure_decoded).
  const sess::SessionData& view() const { return shared ? *shared : data; }
  // The payload as verified.
  std::string_view payload_view() const {
    return shared_payload ? std::string_view(*shared_payload) : std::string_view(payload);
  }
};

struct login_t;                   // src/ngx_http_session_login.cpp
struct write_t;                   // src/ngx_http_session_write.h

// A reference to a verified-cookie table entry's payload and decoded data, kept until the request
// ends (the table may drop its own meanwhile; see hold_until_request_ends).
using shared_hold_t = sess::VerifiedCache::Hold;

struct ctx_t {
  ngx_http_request_t* r;          // the main request
  // Never destroyed (a variant member: ~ctx_t leaves it): its destructor is
  // std::pmr::memory_resource's, which does nothing but is defined in libstdc++, a call into
  // another library's code on every request; what it hands out is the pool's, freed with it.
  // (It outlives the members below, which give their memory back through it as they go.)
  union {
    pool_resource mr;
  };
  loaded_t s;

  // How the request is being handled (reset for each location the request enters).
  unsigned refused : 1;           // the module refused it (session_require, store failure)
  unsigned via_error_page : 1;    // a location was entered through error_page (set before the
                                  // content phase: nginx also sets r->error_page on a response
                                  // it makes itself, a 303 say, once any error_page is in scope)
  unsigned in_rewrite : 1;        // suspended in the location rewrite phase (Redis lookup)
  unsigned login_page : 1;        // the login handler's redirect to its page: exempt
  unsigned read : 1;              // handling read the session: the response gets Vary: Cookie
  unsigned vary_added : 1;
  unsigned filter_done : 1;

  // What the request does to the session (applied by the header filter).
  sess::SessionData* next;        // the data to write; nullptr: unchanged
  sess::SessionChanges* changes;  // what the actions changed (Redis: written key by key)
  unsigned changed : 1;
  unsigned destroy : 1;
  unsigned regenerate : 1;
  unsigned logout : 1;

  ngx_str_t destroy_user;         // session_destroy_user: end every session of this user first
  login_t* login;                 // the login flow's state, if this is a login
  write_t* w;                     // a write being confirmed by Redis (the response is held)
  unsigned char new_id[sess::kSessionIdLen];  // the id a login stored its record under
  ngx_str_t flask_new_sid;        // flask mode, Redis store: the new Flask-Session id (pool)
  shared_hold_t hold;             // the request's first hold (others: pool cleanups)
  unsigned hold_used : 1;

  explicit ctx_t(ngx_http_request_t* req);
  ~ctx_t() {}  // (the members but mr, see above)
  ctx_t(const ctx_t&) = delete;
  ctx_t& operator=(const ctx_t&) = delete;
};

// Returns the main request's ctx, creating it if create is set. nullptr on allocation failure or
// when absent and !create. Survives internal redirects (found again through the pool cleanup).
// (Inline: it is asked several times per request; get_ctx_slow finds or makes it.)
ctx_t* get_ctx_slow(ngx_http_request_t* r, bool create);
inline ctx_t* get_ctx(ngx_http_request_t* r, bool create) {
  auto* ctx = static_cast<ctx_t*>(ngx_http_get_module_ctx(r->main, ngx_http_session_module));
  return ctx != nullptr ? ctx : get_ctx_slow(r, create);
}

inline loc_conf_t* loc_conf(ngx_http_request_t* r) {
  return static_cast<loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_session_module));
}

// True if both configurations make and read the same sessions (see loaded_t).
bool binding_equal(const loc_conf_t* a, const loc_conf_t* b);  // field by field
inline bool same_binding(const loc_conf_t* a, const loc_conf_t* b) {
  if (a == b) return true;
  if (a->binding != nullptr && b->binding != nullptr) return a->binding == b->binding;
  return binding_equal(a, b);
}

// The session of r under lcf: loads it if needed (cookie store: now; Redis store: starts the
// lookup and returns NGX_AGAIN, the request is resumed through its write_event_handler when the
// reply arrives). Subrequests whose binding differs from the main request's get a session of
// their own. *out is set on NGX_OK (and NGX_AGAIN). NGX_ERROR on allocation failure.
ngx_int_t load_session(ngx_http_request_t* r, const loc_conf_t* lcf, loaded_t** out);

// The end of a load that reads the record (a session id's, or a Flask-Session id's): with the
// read sent (sent), r waits for it (NGX_AGAIN); without, the session is a store error (NGX_OK).
inline ngx_int_t read_sent(ngx_http_request_t* r, loaded_t* s, bool sent) {
  if (!sent) {
    s->status = sess::LoadStatus::Error;
    s->store_error = 1;
    return NGX_OK;
  }
  s->loading = 1;
  s->loader = r;
  return NGX_AGAIN;
}

// The loaded session for variables: loads the cookie store on demand; the Redis store is read
// only by the phase handlers (nullptr if not loaded).
loaded_t* current_session(ngx_http_request_t* r);

// Decodes s->payload into s->data once. False if the JSON is malformed (logged; status becomes
// invalid). (Inline: every variable asks, and all but the first find it done.)
bool decode_session(ngx_http_request_t* r, loaded_t* s);
inline bool ensure_decoded(ngx_http_request_t* r, loaded_t* s) {
  return s->decoded ? !s->decode_failed : decode_session(r, s);
}

// The session's user key counts as logged in (core: session_user_logged_in).
bool logged_in(ngx_http_request_t* r, loaded_t* s);

// The answer for a request without a logged-in session where lcf requires one: 302 (with
// *location set) for a browser's main request when session_require names a login page, else 401.
ngx_int_t require_denial(ngx_http_request_t* r, const loc_conf_t* lcf, ngx_str_t* location);

// Current time for the core's expiry policy.
class ngx_clock final : public sess::Clock {
 public:
  uint64_t now() const noexcept override { return static_cast<uint64_t>(ngx_time()); }
};

inline sess::ExpiryPolicy policy_of(const loc_conf_t* lcf) {
  sess::ExpiryPolicy p;
  p.lifetime = static_cast<uint64_t>(lcf->lifetime);
  p.idle = static_cast<uint64_t>(lcf->idle);
  p.renew = static_cast<uint64_t>(lcf->renew);
  return p;
}

inline sess::Kind cookie_kind(const loc_conf_t* lcf) {
  if (lcf->store == STORE_REDIS) return sess::Kind::Id;
  return lcf->encrypt ? sess::Kind::Sealed : sess::Kind::Signed;
}

// The most cookies lcf's session cookie is split into: chunks= for the native cookie store, 1
// for the Redis store (the cookie holds only the id) and flask mode (refused by nginx -t).
inline size_t chunks_of(const loc_conf_t* lcf) {
  return lcf->store == STORE_REDIS || lcf->format == FORMAT_FLASK ? 1 : lcf->cookie.chunks;
}

// Hex text of a session id (2 * kSessionIdLen bytes, no NUL).
void id_hex(const unsigned char* id, u_char* out);

// The stage of the response being sent (gate.h), from r->phase_handle.
extern sess::PhaseLayout http_phases;  // set by postconfiguration
inline sess::Stage request_stage(ngx_http_request_t* r) {
  return sess::stage_of(http_phases, static_cast<size_t>(r->phase_handler));
}

// The module's own variable names after "session_" (status, id, ...): session keys of these names
// cannot be reached through $session_<key> (case-insensitive).
bool is_reserved_key(std::string_view key);

// ---------------------------------------------------------------------------------------------
// Configuration: the directives (src/ngx_http_session_conf.cpp); creating and merging
// (src/ngx_http_session_merge.cpp)

extern ngx_command_t commands[];
void* create_main_conf(ngx_conf_t* cf) noexcept;
void* create_loc_conf(ngx_conf_t* cf) noexcept;
char* merge_loc_conf(ngx_conf_t* cf, void* parent, void* child) noexcept;
ngx_int_t check_session_cookie_names(ngx_conf_t* cf) noexcept;  // postconfiguration

// ---------------------------------------------------------------------------------------------
// Flask bridge (src/ngx_http_session_flask.cpp)

char* session_format_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* session_user_key_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
// Derives Flask's keys of the secrets (at session_secret_file). False on failure (logged).
bool flask_secrets_init(ngx_conf_t* cf, secrets_t* secrets,
                        const std::vector<std::string>& raw);
// session_format, session_user_key and the secrets' lengths of a merged location (nginx -t
// errors and warnings). False on error.
bool flask_merge(ngx_conf_t* cf, loc_conf_t* conf, loc_conf_t* prev) noexcept;
// Reads Flask's session cookie of r under lcf into s (flask mode, cookie store).
ngx_int_t flask_load(ngx_http_request_t* r, loaded_t* s, const loc_conf_t* lcf);
// The cookie value of the session being written (flask mode): the data, with `_permanent` for a
// session nginx creates, as Flask's signed cookie stamped now. False on failure.
bool flask_seal_cookie(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf,
                       sess::pstring& value);
// Expires = now + session_lifetime for a permanent session (as Flask does), unless session_cookie
// has max_age=.
void flask_cookie_attrs(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf,
                        sess::CookieAttrs* attrs);
// The response (a Flask upstream) sets the session cookie itself: flask mode does not renew it.
bool flask_upstream_set_cookie(ngx_http_request_t* r, const loc_conf_t* lcf);
// A response that changes the session (an action) to which the app also wrote its own session
// cookie (a Flask view behind `session_set`): one session must come out, not two cookies of
// the name (the browser would keep one and the other write would be lost).
//   Adopted: the app's session (its cookie verified as a request's would be) is now this
//            request's: the Redis store updates the app's record with nginx's changes
//            (compare-and-set, merged) and keeps the app's cookie; the cookie store applies
//            nginx's changes to the app's data and writes the one cookie in its place.
//   Ended:   the app deleted its cookie (a logout, session.clear()): nginx's changes are
//            dropped, the app's deletion stands.
//   None:    no cookie from the app, or one nginx cannot verify: as before.
enum class UpstreamSession { None, Adopted, Ended };
UpstreamSession flask_adopt_upstream_session(ngx_http_request_t* r, ctx_t* ctx,
                                             const loc_conf_t* lcf);
// The text $session_<key> shows for a value of a Flask session (flask_value_text). False on
// failure.
bool flask_var_text(const sess::SessionValue& v, sess::pstring& out);

// A rejected session cookie: one info line, rate-limited (src/ngx_http_session_load.cpp).
void reject_cookie(ngx_http_request_t* r, const loc_conf_t* lcf, const char* why);
// A Redis lookup of s has ended: resumes r and the requests waiting for it (load.cpp).
void lookup_resume(ngx_http_request_t* r, loaded_t* s);
// A Redis lookup without a usable answer (none, an error, an unexpected reply): status error,
// store_error set (the failure policy decides), one error line as limit allows.
void lookup_failed(ngx_http_request_t* r, loaded_t* s, const sess::RespValue* reply,
                   sess::LogLimiter& limit);

// ---------------------------------------------------------------------------------------------
// Filters (src/ngx_http_session_filter.cpp) and the write (src/ngx_http_session_write.cpp)

ngx_int_t filter_init(ngx_conf_t* cf) noexcept;

// Applies the location's actions (src/ngx_http_session_actions.cpp): cookie_set/cookie_delete
// add their Set-Cookie lines, session actions change ctx->next (a copy of the loaded session).
void apply_actions(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf, sess::pstring& buf);

// Adds Vary: Cookie to the response unless it varies on Cookie already.
bool vary_cookie(ngx_http_request_t* r);

// Would the session cookie of ctx->next (a login's new session) fit in one Set-Cookie? (write)
bool login_cookie_fits(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf);

// ---------------------------------------------------------------------------------------------
// Redis client (src/redis/)

ngx_int_t redis_init_process(ngx_cycle_t* cycle) noexcept;
void redis_exit_process(ngx_cycle_t* cycle) noexcept;

// Called with the reply (nullptr: no reply - the location's timeout passed, or the connection
// was lost; too_large: the reply exceeded its limits and was dropped) from a posted event, and
// only while the request is alive.
using redis_done_pt = void (*)(ngx_http_request_t* r, void* data, const sess::RespValue* reply,
                               bool too_large);

// Sends one command of the core (redis_cmd.h, record.h) for the key `key` (which picks the
// Cluster node) with lcf's endpoint and timeout. Returns the operation, or nullptr when the store
// is unavailable now (done is then never called; logged, rate-limited). The operation is
// cancelled by r's pool cleanup. limits: the reply's (nullptr: the defaults). pool: where that
// cleanup is registered instead of r->pool (nullptr: r->pool) - a pool of the request's own that
// is destroyed before r's pool is (a logout-all's round), so that many operations in one request
// do not each leave their cleanup in r's pool; destroying it cancels those still in flight.
redis_op_t* redis_send(ngx_http_request_t* r, const loc_conf_t* lcf, const sess::RedisArgs& args,
                       std::string_view key, redis_done_pt done, void* data,
                       const sess::RespLimits* limits = nullptr,
                       ngx_pool_t* pool = nullptr) noexcept;

// A location uses the endpoint with this timeout (for its stall limit, src/redis/node.cpp).
void redis_note_timeout(redis_endpoint_t* ep, ngx_msec_t timeout);

// session_redis_cache (src/redis/cache.cpp): the directive, its nginx -t checks of a merged
// location, and $session_cache_status.
char* session_redis_cache_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
bool redis_cache_merge(ngx_conf_t* cf, loc_conf_t* conf) noexcept;
// A merged location with a cache and its endpoint (conf->redis): the endpoint keeps the zone, so
// its client in each worker keeps the invalidation link (src/redis/cache_link.cpp).
bool redis_cache_attach(ngx_conf_t* cf, loc_conf_t* conf) noexcept;
// A new configuration is in place: its zones start empty (src/redis/cache.cpp).
void redis_cache_init_module(ngx_cycle_t* cycle);
ngx_int_t var_cache_status(ngx_http_request_t* r, ngx_http_variable_value_t* v,
                           uintptr_t) noexcept;
// A session's id cookie as verified: envelope_open said Ok for a value with this proof
// (envelope_peek_id's: header and MAC) under the key ring ring (KeyRing::id(), never reused
// within the master's life; a reload empties the zones) and the cookie name name.
struct cache_cookie_t {
  uint64_t ring;
  std::string_view name;
  const unsigned char* proof;  // sess::kIdProofLen bytes, alive through the call given it
};
// The request path (src/redis/cache_link.cpp). redis_cache_lookup: the record of key in lcf's
// zone (lcf->redis_cache set): Hit fills *out (no Redis command); Miss: read it with
// redis_cache_read; Bypass: the cache cannot be trusted now (read with redis_send as without
// it). redis_cache_read reads the record for the zone (HGETALL and PTTL, pipelined, tracked);
// concurrent misses of one key in a worker share it; done gets the HGETALL reply as from
// redis_send. False when it could not be sent (done is then never called). cookie: the id cookie
// (verified, naming key's id) that the entry keeps if this read makes one (the first of the
// misses that share it: the others' are not kept).
//   cookie, keep: as redis_cache_zone_get's (src/redis/redis.h): with cookie and not keep, a Hit
// only if the entry keeps exactly that id cookie (else Miss, and the entry stays); with keep, a
// hit's entry keeps it from then on.
uint8_t redis_cache_lookup(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view key,
                           sess::SessionData* out, const cache_cookie_t* cookie = nullptr,
                           bool keep = false) noexcept;  // a sess::CacheStatus
bool redis_cache_read(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view key,
                      redis_done_pt done, void* data, const sess::RespLimits* limits,
                      const cache_cookie_t* cookie = nullptr) noexcept;

// The endpoint's name for log lines.
const ngx_str_t* redis_name(const loc_conf_t* lcf);

// The key of id under lcf's prefix, in r's pool.
bool redis_key_of(ngx_http_request_t* r, const loc_conf_t* lcf, const unsigned char* id,
                  sess::pstring& out);

// Flask-Session records (flask mode, Redis store): flask_load starts the GET. The filter's and
// the login's record writes go through flask_record_send: kind as the native write would be
// (new_key: the new id - a Create, Move, or the undo of one; else the loaded id), data what the
// record is to hold; done is called with a reply record_write_outcome classifies as for the
// native scripts. False if not sent (store unavailable; done is then never called).
bool flask_record_send(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf,
                       sess::RecordWriteKind kind, bool new_key, const sess::SessionData* data,
                       redis_done_pt done, void* done_data);
inline bool flask_records(const loc_conf_t* lcf) {
  return lcf->format == FORMAT_FLASK && lcf->store == STORE_REDIS;
}

// ---------------------------------------------------------------------------------------------
// The per-user session index (src/ngx_http_session_index.cpp, src/core/user_index.h)

// Sessions of lcf are indexed by user: the Redis store, and a location of the configuration uses
// session_logout ... all or session_destroy_user.
bool index_enabled(ngx_http_request_t* r, const loc_conf_t* lcf);
// The TTL an index entry needs for a session of these times (seconds, at least 1): until created
// + session_lifetime (flask mode: a lifetime from now, as every write resets the record's).
uint64_t index_ttl(const loc_conf_t* lcf, const sess::Times& t);
// The index member of a session: the hex of a native id, or the Flask-Session sid. False on
// allocation failure (or a flask session without a sid).
bool index_member_of(ngx_http_request_t* r, const loc_conf_t* lcf, const unsigned char* id,
                     const ngx_str_t& flask_sid, ngx_str_t* out);

// ok: Redis confirmed the change. Called from a posted event, only while r is alive.
using index_done_pt = void (*)(ngx_http_request_t* r, void* data, bool ok);
// Adds member to user's index, its TTL raised to at least ttl. prune: then checks a sample of
// the other members and removes those whose record is gone (failures there are ignored). False
// if not sent (done is then never called).
bool index_add(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view user,
               std::string_view member, uint64_t ttl, bool prune, index_done_pt done, void* data);
bool index_remove(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view user,
                  std::string_view member, index_done_pt done, void* data);

struct end_user_result_t {
  bool ok;            // every indexed session was ended (or found gone)
  uint64_t ended;     // records deleted
  uint64_t pruned;    // entries whose session had ended already (or was another user's)
};
using end_user_done_pt = void (*)(ngx_http_request_t* r, void* data, const end_user_result_t& res);
// Ends every session in user's index except the member `except` (may be empty). False if it could
// not start (done is then never called).
bool index_end_user(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view user,
                    std::string_view except, end_user_done_pt done, void* data);

// ---------------------------------------------------------------------------------------------
// Login / logout (src/ngx_http_session_login.cpp) and users (src/ngx_http_session_users.cpp)

char* login_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* logout_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
// Validates the login settings of a merged location (nginx -t errors).
bool login_merge(ngx_conf_t* cf, loc_conf_t* conf) noexcept;
// The login page's status (401/403) replaces the template's 200.
void login_header_filter(ngx_http_request_t* r, ctx_t* ctx) noexcept;
// A login's session data (empty session + user + auth keys), for the write path.
bool login_succeeded_slow(ctx_t* ctx);
inline bool login_succeeded(ctx_t* ctx) { return ctx->login != nullptr && login_succeeded_slow(ctx); }
// The content handlers of session_login and session_logout.
ngx_int_t login_handler(ngx_http_request_t* r) noexcept;
ngx_int_t logout_handler(ngx_http_request_t* r) noexcept;
// True if r's location is a session_login or session_logout endpoint. (Inline: session_require
// asks it on every request.)
inline bool is_session_endpoint(ngx_http_request_t* r) {
  return r->content_handler == login_handler || r->content_handler == logout_handler;
}
bool login_stored_slow(ctx_t* ctx);
inline bool login_stored(ctx_t* ctx) { return ctx->login != nullptr && login_stored_slow(ctx); }

ngx_int_t var_csrf_token(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept;
enum : uintptr_t { LOGIN_VAR_ERROR, LOGIN_VAR_NEXT, LOGIN_VAR_USERNAME, LOGIN_VAR_PASSWORD };
ngx_int_t var_login_str(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t which) noexcept;

// Loads a user file at configuration time (warns when it mixes hash formats). nullptr on error.
user_file_t* users_open(ngx_conf_t* cf, const ngx_str_t& path);
// Runs the password check in the login thread pool; calls done(r) on the event loop with
// result 1 (match), 0 (no match), -1 (the file could not be read). NGX_AGAIN, or NGX_DECLINED
// when the pool's queue is full, NGX_ERROR.
ngx_int_t users_check_async(ngx_http_request_t* r, loc_conf_t* lcf, ngx_str_t user,
                            ngx_str_t password, void (*done)(ngx_http_request_t*, int));

// ---------------------------------------------------------------------------------------------
// Failed-login regulation (src/ngx_http_session_login_limit.cpp)

char* login_limit_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
// Merges session_login_limit; nginx -t warns about one written in a location that has no
// session_login and no nested location (it regulates nothing).
void login_limit_merge(ngx_conf_t* cf, loc_conf_t* conf, const loc_conf_t* prev);

// What a login attempt charged to the zone, for its outcome.
struct login_limit_ticket_t {
  login_limit_t* zone;            // nullptr: nothing charged (or already finished)
  uint64_t token;                 // when it was charged (ms)
  unsigned char client[16];       // the ids it was charged under (sess::kLimitIdLen)
  unsigned char user[16];
  unsigned charged_client : 1;
  unsigned charged_user : 1;
};

enum login_outcome_e { LOGIN_FAILED, LOGIN_SUCCEEDED, LOGIN_NO_VERDICT };

// Before a credential check of `user` by r: NGX_OK (allowed; the attempt is charged as a failure
// in advance, *t says where), NGX_DECLINED (banned: *retry_after = seconds left), NGX_ERROR.
// Without session_login_limit: NGX_OK and nothing charged.
ngx_int_t login_limit_begin(ngx_http_request_t* r, const loc_conf_t* lcf, ngx_str_t user,
                            login_limit_ticket_t* t, uint64_t* retry_after);
// The check's outcome (once; later calls do nothing). A failure that completes a ban logs it.
void login_limit_finish(ngx_http_request_t* r, login_limit_ticket_t* t, login_outcome_e outcome,
                        ngx_str_t user);

// ---------------------------------------------------------------------------------------------
// Signed identity tokens (src/ngx_http_session_jwt.cpp)

char* session_jwt_key_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* session_jwt_claims_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* session_jwks_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
// session_jwt_lifetime's post handler: 2s to 365d.
extern ngx_conf_post_t jwt_lifetime_post;
// session_jwks's content handler.
ngx_int_t jwks_handler(ngx_http_request_t* r) noexcept;
// True if r's location is a session_jwks location (public: exempt from session_require).
inline bool is_jwks_endpoint(ngx_http_request_t* r) { return r->content_handler == jwks_handler; }
// Merges the session_jwt_* settings (nginx -t errors: session_jwks without a key). False on error.
bool jwt_merge(ngx_conf_t* cf, loc_conf_t* conf, const loc_conf_t* prev) noexcept;
// $session_jwt
ngx_int_t var_session_jwt(ngx_http_request_t* r, ngx_http_variable_value_t* v,
                          uintptr_t) noexcept;

// ---------------------------------------------------------------------------------------------
// Shared by the handlers and filters

ngx_table_elt_t* push_header(ngx_http_request_t* r, std::string_view key, std::string_view value);
bool add_set_cookie(ngx_http_request_t* r, std::string_view name, std::string_view value,
                    const sess::CookieAttrs& a, sess::pstring& buf);
void delete_cookie(ngx_http_request_t* r, std::string_view name, sess::CookieAttrs a,
                   sess::pstring& buf);
sess::CookieAttrs session_attrs(ngx_http_request_t* r, const loc_conf_t* lcf);
void collect_cookie(ngx_http_request_t* r, std::string_view name, sess::CookieCandidates& acc);
// The chunk cookies <name>_1 .. <name>_15 of r (core/chunks.h), from every Cookie header line.
void collect_chunks(ngx_http_request_t* r, std::string_view name, sess::ChunkCookies& acc);
// A printable-ASCII, quote-free copy (at most 64 bytes, others as \xHH) of client-supplied text
// for log lines, so that nobody can forge lines (or fail2ban matches) through it.
ngx_str_t log_safe(ngx_http_request_t* r, std::string_view in, size_t max = 64);
void set_var(ngx_http_variable_value_t* v, const u_char* data, size_t len);
// 303 to `to` (a local path), as ngx_http_send_response does.
ngx_int_t send_redirect(ngx_http_request_t* r, ngx_uint_t status, ngx_str_t to);

}  // namespace ngx_session
