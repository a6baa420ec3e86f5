// Which responses may carry a location's actions and session writes.
//
// nginx runs a request through numbered phase handlers; the index of the handler that was
// running when the response header was sent says how far the request got. PhaseLayout turns the
// handler counts of the phases (ngx_http_core_main_conf_t.phases[*].handlers.nelts) into the
// index ranges that nginx's ngx_http_init_phase_handlers() lays out: one find-config handler,
// one post-rewrite handler when the rewrite phase has handlers, one post-access handler when the
// access phase has handlers.
//
// The rule (DESIGN.md "Sessions are trusted only where they were made"): actions and writes
// apply to a main request's response that was produced
//   - in the location's rewrite phase (a `return`), unless the module itself refused it there
//     (session_require, store failure), or
//   - after the access phase (pre-content, content: the request passed every access check).
// Responses produced earlier (server-level rewrite, find-config errors) or during the pre-access
// and access phases (limit_req, limit_conn, allow/deny, auth_basic, auth_request, satisfy) get
// none. Subrequests never write.
#pragma once

#include "common.h"

namespace sess {

// nginx's phase numbering (ngx_http_phases).
enum Phase : size_t {
  kPostRead = 0, kServerRewrite, kFindConfig, kRewrite, kPostRewrite, kPreaccess, kAccess,
  kPostAccess, kPrecontent, kContent, kPhaseCount
};

struct PhaseLayout {
  size_t server_rewrite = 0;   // first server-rewrite handler
  size_t find_config = 0;      // the find-config handler
  size_t rewrite = 0;          // first location-rewrite handler
  size_t preaccess = 0;        // first pre-access handler (after post-rewrite)
  size_t precontent = 0;       // first pre-content handler (after post-access)
};

// counts[i]: number of handlers registered for phase i (only those with their own handlers:
// the find-config, post-rewrite and post-access entries are added here as nginx does).
PhaseLayout phase_layout(const size_t* counts /* kPhaseCount */) noexcept;

enum class Stage : uint8_t {
  BeforeLocation,  // post-read, server rewrite, find config
  ServerRewrite,   // (a subset of BeforeLocation: the server-level rewrite directives)
  Rewrite,         // location rewrite phase (and post-rewrite)
  Access,          // pre-access, access, post-access
  Passed,          // pre-content and content
};

inline Stage stage_of(const PhaseLayout& l, size_t h) noexcept {
  if (h >= l.precontent) return Stage::Passed;
  if (h >= l.preaccess) return Stage::Access;
  if (h >= l.rewrite) return Stage::Rewrite;
  if (h >= l.server_rewrite && h < l.find_config) return Stage::ServerRewrite;
  return Stage::BeforeLocation;
}

// True if a response at this stage may carry actions and session writes. refused: the module
// itself answered with a refusal (session_require, store failure) in this location. public_key:
// the response is session_jwks's, which answers anyone without a session (exempt from
// session_require): never where a session is made or changed.
inline bool writes_allowed(Stage s, bool refused, bool subrequest,
                           bool public_key = false) noexcept {
  if (subrequest || public_key) return false;
  return (s == Stage::Rewrite || s == Stage::Passed) && !refused;
}

}  // namespace sess
