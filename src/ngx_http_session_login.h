// ngx_http_session_module: what the login endpoint's files share (ngx_http_session_login.cpp:
// the endpoints, the form, the new session; ngx_http_session_login_auth.cpp: the credential
// checks by subrequest and by user file).
#pragma once

#include "ngx_http_session.h"

namespace ngx_session {

// The login flow's state, on the request's ctx.
struct login_t {
  ngx_str_t csrf_token;           // $session_csrf_token
  ngx_str_t next;                 // $session_login_next: the safe `next`, decoded
  ngx_str_t user;                 // $session_login_username
  ngx_str_t password;             // $session_login_password, only while the auth subrequest runs
  ngx_str_t error;                // $session_login_error
  ngx_uint_t page_status;         // status of the login page response (401, 403), 0 = as is
  login_limit_ticket_t limit;     // what session_login_limit charged for this attempt
  ngx_array_t* auth_keys;         // ngx_keyval_t from the auth subrequest's X-Session-* headers
  ngx_int_t auth_status;
  unsigned auth_done : 1;
  unsigned plausible : 1;         // the submitted credentials could be valid at all
  unsigned succeeded : 1;         // the credentials were accepted: a new session is written
  unsigned stored : 1;            // Redis store: its record is confirmed (ctx->new_id)
};

// Finishes a POST /login once its credential check has a verdict (L->auth_done; nothing
// before): the new session, the failure page, or 503 when there was no verdict.
void login_resume(ngx_http_request_t* r) noexcept;

// The credential check by session_login_auth: a subrequest (headers only, no body) whose 2xx
// accepts and whose X-Session-* headers become session keys. NGX_AGAIN once it is started
// (login_resume is called when it is done), else an HTTP status.
ngx_int_t start_auth_subrequest(ngx_http_request_t* r, login_t* L, const loc_conf_t* lcf);

// The session_login_user_file check's end (users_check_async's callback): result 1 accepted,
// 0 refused, negative no verdict (the file could not be read). Resumes the POST.
void user_file_done(ngx_http_request_t* r, int result);

}  // namespace ngx_session
