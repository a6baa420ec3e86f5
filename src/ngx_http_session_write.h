// ngx_http_session_module: what the filters (ngx_http_session_filter.cpp) and the write
// (ngx_http_session_write.cpp) share - the write being confirmed, the responses the module answers
// instead, and the cache headers. Only those two files include it.
#pragma once

#include "ngx_http_session.h"

#include "core/user_index.h"

namespace ngx_session {

// A session write waiting for Redis, and the response held meanwhile.
struct write_t {
  sess::WritePlan plan;
  sess::IndexPlan ix;             // what it does to the user index (core/user_index.h)
  const loc_conf_t* lcf;
  sess::Times times;              // of the session being written
  uint64_t ttl;                   // of its record (seconds)
  unsigned char id[sess::kSessionIdLen];      // the id the cookie will carry
  unsigned char old_id[sess::kSessionIdLen];  // the id loaded (deleted after a new one is made)
  ngx_str_t user_before;          // the loaded session's user (whose index has the old id)
  ngx_str_t user_after;           // the user of the data written
  ngx_str_t end_user;             // every session of this user ends first (logout-all,
                                  // session_destroy_user); empty: none
  ngx_str_t end_except;           // ... but this index member (a logout-all's own session)
  sess::WriteOutcome outcome;     // of the record write
  ngx_chain_t* held;              // body buffers that arrived while holding
  unsigned holding : 1;
  unsigned replaced : 1;          // the response became a 503: its own body is dropped
  unsigned undo : 1;              // the new record is deleted again (STEP_UNDO_NEW)
  unsigned end_logout_all : 1;    // end_user is a logout-all's (else session_destroy_user's)
  unsigned end_failed : 1;        // ... and not every other session could be ended
  unsigned step : 4;              // what the reply being waited for answers (write_step_e)
};

// The next header and body filters (set by filter_init, ngx_http_session_filter.cpp).
extern ngx_http_output_header_filter_pt next_header_filter;
extern ngx_http_output_body_filter_pt next_body_filter;

// Turns the response into an empty one with `status` (and Location) (filter.cpp).
bool replace_response(ngx_http_request_t* r, ngx_uint_t status, const ngx_str_t* location);
// Cache-Control: private, without overwriting the response's own lines (filter.cpp).
bool make_private(ngx_http_request_t* r);
// Marks held buffers as sent (their producer may reuse them) without sending them (write.cpp).
void drop(ngx_chain_t* cl);
// Expires the request's chunk cookies a response writing `count` cookies leaves (write.cpp).
void expire_stale_chunks(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf,
                         const sess::CookieAttrs& attrs, size_t count, sess::pstring& buf);
// The user of a session's data, if it is logged in, as later requests read it back (write.cpp).
bool user_of(ctx_t* ctx, const loc_conf_t* lcf, const sess::SessionData* d, ngx_str_t* out);
// Writes the session per the plan: Set-Cookie; with Redis, the response held until confirmed.
ngx_int_t write_session(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf,
                        const sess::WritePlan& plan, ngx_str_t end_user, ngx_str_t end_except,
                        bool logout_all);

// An HTML response to a request that carried the session cookie may show the session through
// SSI, which reads variables only after the header is out: it varies on Cookie too.
inline bool html_with_session(ngx_http_request_t* r, ctx_t* ctx) {
  const ngx_str_t& t = r->headers_out.content_type;
  return ctx->s.had_cookie && t.len >= 9 && ngx_strncasecmp(t.data, (u_char*)"text/html", 9) == 0;
}

[[gnu::always_inline]] inline void cache_headers(ngx_http_request_t* r, ctx_t* ctx, bool wrote_cookie) {
  if (wrote_cookie) make_private(r);
  if (wrote_cookie || ctx->read || html_with_session(r, ctx)) {
    vary_cookie(r);
    ctx->vary_added = 1;
  }
}

}  // namespace ngx_session
