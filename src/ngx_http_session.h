// ngx_http_session_module: declarations shared by the glue translation units.
//
// The glue is thin: configuration, nginx phases and filters, variables and the Redis adapter.
// Every decision about bytes (envelopes, cookies, JSON, forms, redirects, passwords) is made by
// the pure C++ core in src/core/.
#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <memory_resource>
#include <new>
#include <type_traits>

#include "core/cookie.h"
#include "core/crypto.h"
#include "core/envelope.h"
#include "core/expiry.h"
#include "core/session_data.h"

extern "C" {
extern ngx_module_t ngx_http_session_module;
}

namespace ngx_session {

// ---------------------------------------------------------------------------------------------
// Boundary helpers

inline std::string_view sv(const ngx_str_t& s) {
  return {reinterpret_cast<const char*>(s.data), s.len};
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

// Copies s into pool memory as an ngx_str_t. Returns false on allocation failure.
bool pool_str(ngx_pool_t* pool, std::string_view s, ngx_str_t* out);

// std::pmr resource over an nginx pool: request-lifetime strings of the core live in r->pool.
class pool_resource final : public std::pmr::memory_resource {
 public:
  explicit pool_resource(ngx_pool_t* pool) : pool_(pool) {}

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

struct secrets_t {
  sess::KeyRing* ring;
  ngx_str_t path;
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
};

enum action_type_e : ngx_uint_t {
  ACTION_SET,
  ACTION_UNSET,
  ACTION_CLEAR,
  ACTION_DESTROY,
  ACTION_REGENERATE,
  ACTION_COOKIE_SET,
  ACTION_COOKIE_DELETE,
};

struct action_t {
  ngx_uint_t type;
  ngx_str_t key;                    // session_set / session_unset
  ngx_http_complex_value_t* name;   // cookie_set / cookie_delete
  ngx_http_complex_value_t* value;  // session_set / cookie_set
  ngx_str_t path;
  ngx_str_t domain;
  time_t max_age;                   // -1: none
  time_t expires;                   // -1: none (relative seconds)
  ngx_flag_t secure;
  ngx_flag_t httponly;
  ngx_uint_t samesite;
  ngx_flag_t partitioned;
};

struct redis_conn_t;

// One Redis server named by session_redis (deduplicated). Addresses are resolved at config time.
struct redis_server_t {
  ngx_str_t name;         // as written, for logs
  ngx_str_t host;         // numeric address text, NUL-terminated; empty for unix
  int port;
  ngx_str_t unix_path;    // NUL-terminated; empty for TCP
  ngx_int_t db;
  ngx_str_t username;
  ngx_str_t password;
  redis_conn_t* conn;     // this worker's connection (init_process)
};

struct main_conf_t {
  ngx_array_t servers;    // of redis_server_t*
};

struct loc_conf_t {
  secrets_t* secrets;
  cookie_conf_t cookie;
  ngx_flag_t cookie_set;  // session_cookie given at this level
  ngx_uint_t store;
  ngx_flag_t encrypt;
  time_t lifetime;
  time_t idle;            // 0: off
  time_t renew;
  redis_server_t* redis;
  ngx_str_t prefix;
  ngx_msec_t redis_timeout;
  ngx_uint_t fail;
  ngx_array_t* actions;   // of action_t
  ngx_int_t require;      // 0 off, 1 on
  ngx_str_t require_uri;

  // login / logout (src/ngx_http_session_login.cpp)
  ngx_flag_t login;
  ngx_str_t login_page;
  ngx_str_t login_user_file;
  ngx_str_t login_auth;
  ngx_str_t login_redirect;
  ngx_flag_t logout;
  ngx_str_t logout_uri;
#if (NGX_THREADS)
  ngx_thread_pool_t* login_pool;  // password hashing runs off the event loop
#endif
};

// ---------------------------------------------------------------------------------------------
// Per-request state (kept on r->main, found again after internal redirects)

enum status_e : ngx_uint_t {
  STATUS_NONE,
  STATUS_VALID,
  STATUS_EXPIRED,
  STATUS_INVALID,
  STATUS_ERROR,
};

struct redis_op_t;

struct ctx_t {
  ngx_http_request_t* r;
  pool_resource mr;
  sess::SessionData data;
  sess::pstring payload;          // JSON as received (decoded into data on first use)
  sess::Times times;
  unsigned char id[sess::kSessionIdLen];
  unsigned char old_id[sess::kSessionIdLen];

  ngx_uint_t status;
  unsigned had_cookie : 1;        // a session cookie was received
  unsigned loaded : 1;
  unsigned loading : 1;           // a Redis lookup is in flight
  unsigned decoded : 1;           // data reflects payload
  unsigned store_error : 1;
  unsigned has_id : 1;
  unsigned dirty : 1;
  unsigned destroyed : 1;
  unsigned regenerate : 1;
  unsigned new_session : 1;
  unsigned filter_done : 1;

  redis_op_t* op;                 // pending lookup, cancelled if the request goes away

  // login / logout
  ngx_str_t csrf_token;           // $session_csrf_token
  ngx_str_t login_next;           // $session_login_next: the safe `next`, decoded
  ngx_str_t login_user;           // $session_login_username
  ngx_str_t login_password;       // $session_login_password (only for session_login_auth)
  ngx_str_t login_error;          // $session_login_error
  ngx_uint_t login_status;        // status of the login page response (401, 403), 0 = as is
  ngx_array_t* auth_keys;         // ngx_keyval_t from the auth subrequest's X-Session-* headers
  ngx_int_t auth_status;
  unsigned login : 1;             // a successful login: new session id, lifetime restarts
  unsigned auth_done : 1;
  unsigned login_plausible : 1;   // the submitted credentials could be valid at all
  unsigned storing : 1;           // the login's SET is in flight
  unsigned stored : 1;            // the record is in Redis already: only the cookie is left

  explicit ctx_t(ngx_http_request_t* req);
};

// Returns the request's ctx (on r->main), creating it if create is set. nullptr on allocation
// failure or when absent and !create.
ctx_t* get_ctx(ngx_http_request_t* r, bool create);

// Decodes ctx->payload into ctx->data once. False if the JSON is malformed (logged).
bool ensure_decoded(ngx_http_request_t* r, ctx_t* ctx);

// Current time for the core's expiry policy.
class ngx_clock final : public sess::Clock {
 public:
  uint64_t now() const noexcept override { return static_cast<uint64_t>(ngx_time()); }
};

sess::ExpiryPolicy policy_of(const loc_conf_t* lcf);

// Hex text of a session id (2 * kSessionIdLen bytes, no NUL).
void id_hex(const unsigned char* id, u_char* out);

// ---------------------------------------------------------------------------------------------
// Configuration handlers (src/ngx_http_session_conf.cpp)

extern ngx_command_t commands[];
void* create_main_conf(ngx_conf_t* cf) noexcept;
void* create_loc_conf(ngx_conf_t* cf) noexcept;
char* merge_loc_conf(ngx_conf_t* cf, void* parent, void* child) noexcept;

// ---------------------------------------------------------------------------------------------
// Redis adapter (src/ngx_http_session_redis.cpp)

ngx_int_t redis_init_process(ngx_cycle_t* cycle) noexcept;
void redis_exit_process(ngx_cycle_t* cycle) noexcept;

// Starts GET <prefix><id> for the request. NGX_AGAIN: the request is resumed (phases re-run)
// when the reply or a timeout arrives, with ctx->loading cleared; NGX_ERROR: the store is not
// usable now (ctx->store_error set).
ngx_int_t redis_lookup(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf) noexcept;

// Fire-and-forget writes, sent before the response leaves nginx. Pipelined on the worker's
// connection, so the client's next request is answered after them.
ngx_int_t redis_store(ngx_http_request_t* r, loc_conf_t* lcf, const unsigned char* id,
                      std::string_view json, uint64_t ttl) noexcept;
ngx_int_t redis_expire(ngx_http_request_t* r, loc_conf_t* lcf, const unsigned char* id,
                       uint64_t ttl) noexcept;
ngx_int_t redis_delete(ngx_http_request_t* r, loc_conf_t* lcf, const unsigned char* id) noexcept;

// Stores ctx->id's record and resumes the request through r->write_event_handler when Redis
// has answered (ctx->stored, or ctx->store_error). NGX_AGAIN or NGX_ERROR.
ngx_int_t redis_store_wait(ngx_http_request_t* r, ctx_t* ctx, loc_conf_t* lcf,
                           std::string_view json, uint64_t ttl) noexcept;

// True if a connection is up or being set up (not in reconnect backoff).
bool redis_ready(loc_conf_t* lcf) noexcept;

// Called from the request pool cleanup: the reply must not touch the request any more.
void redis_cancel(redis_op_t* op) noexcept;

// ---------------------------------------------------------------------------------------------
// Login / logout (src/ngx_http_session_login.cpp)

char* login_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* logout_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
// Validates the login settings of a merged location (nginx -t errors).
bool login_merge(ngx_conf_t* cf, loc_conf_t* conf) noexcept;
// The login page's status (401/403) replaces the template's 200.
void login_header_filter(ngx_http_request_t* r, ctx_t* ctx) noexcept;

ngx_int_t var_csrf_token(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept;
enum : uintptr_t { LOGIN_VAR_ERROR, LOGIN_VAR_NEXT, LOGIN_VAR_USERNAME, LOGIN_VAR_PASSWORD };
ngx_int_t var_login_str(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t which) noexcept;

// Shared by the login handlers.
ngx_table_elt_t* push_header(ngx_http_request_t* r, std::string_view key, std::string_view value);
bool add_set_cookie(ngx_http_request_t* r, std::string_view name, std::string_view value,
                    const sess::CookieAttrs& a, sess::pstring& buf);
void delete_cookie(ngx_http_request_t* r, std::string_view name, sess::CookieAttrs a,
                   sess::pstring& buf);
sess::CookieAttrs session_attrs(ngx_http_request_t* r, const loc_conf_t* lcf);
void find_cookie(ngx_http_request_t* r, std::string_view name, sess::CookieLookup& acc);
loc_conf_t* loc_conf(ngx_http_request_t* r);
// A printable-ASCII, quote-free copy (at most 64 bytes, others as \xHH) of client-supplied text
// for log lines, so that nobody can forge lines (or fail2ban matches) through it.
ngx_str_t log_safe(ngx_http_request_t* r, std::string_view in);
void set_var(ngx_http_variable_value_t* v, const u_char* data, size_t len);

}  // namespace ngx_session
