// The write decision: what one response does to the session cookie and the server-side record.
// The glue gathers the inputs (how the session loaded, what the request's actions or the
// login/logout flow did, whether the gate lets this response write) and applies the plan.
//
// Rules (DESIGN.md v1 + "Sessions are trusted only where they were made"):
//   - logout always expires the cookie and deletes the record it knows of, also when the store
//     failed (a failed delete is logged, the 303 still expires the cookie); a logout-all
//     (session_logout ... all), whose answer says that every session of the user ended, is
//     refused (503, the cookie kept) when its own record's delete is not confirmed;
//   - a response the gate closes (refused, subrequest, before the location) writes nothing;
//   - a store failure leaves everything as it is (nobody is logged out by an outage); a login,
//     which starts from an empty session and does not depend on the lookup, is planned as usual;
//   - requests that only read the session never write: an invalid, expired or duplicated
//     cookie, or a missing record, is reported in $session_status and the cookie is left alone;
//   - session_destroy, and changes that leave the session empty, delete the record and expire
//     the cookie that was sent;
//   - a login starts a new session: new id, lifetime from now; the old record is deleted only
//     after the new one is confirmed;
//   - changes of an existing session update its record only while it exists (never re-create it);
//     a new session gets a new id; session_regenerate moves the data to a new id, atomically and
//     only while the old record exists (a logout meanwhile is final);
//   - with the store unavailable (session_store_fail open), changes that cannot be made refuse
//     the response (503) rather than claim them;
//   - a valid session past session_renew is re-issued (and its record's TTL refreshed);
//   - a response that writes the session cookie is private to its user (Cache-Control).
#pragma once

#include "candidates.h"
#include "common.h"
#include "redis_cmd.h"

namespace sess {

struct WriteInputs {
  LoadStatus status = LoadStatus::None;
  bool had_cookie = false;        // a session cookie was received (any candidate)
  bool server_store = false;      // Redis: the cookie carries an id
  bool has_id = false;            // the id of a Valid session is known
  bool writes_allowed = false;    // gate.h
  bool store_error = false;       // the lookup could not be made (store unavailable)
  bool changed = false;           // actions set, unset or cleared keys
  bool empty_after = false;       // the data is empty after the changes
  bool destroy = false;           // session_destroy
  bool regenerate = false;        // session_regenerate
  bool login = false;             // a successful login
  bool login_stored = false;      // ... whose new record the login handler already confirmed
  bool logout = false;            // the logout endpoint
  bool logout_all = false;        // ... session_logout ... all, once the user's other sessions
                                  // are ended: this one must end too, or the answer is 503
  bool renew_due = false;         // a valid session whose last refresh is older than renew
};

enum class CookieWrite : uint8_t { Keep, Set, Expire };
enum class RecordWrite : uint8_t { None, Create, Update, Touch, Delete, Move };

struct WritePlan {
  CookieWrite cookie = CookieWrite::Keep;
  RecordWrite record = RecordWrite::None;
  bool new_id = false;            // a fresh id (Create)
  bool delete_old = false;        // after the new record is confirmed, delete the old id
  bool restart_lifetime = false;  // created = now
  bool logout = false;            // failures do not stop the response (see after_write)...
  bool logout_all = false;        // ... unless it is a logout-all: its session must end too
  bool refuse = false;            // the change cannot be made now: 503, nothing written
  bool cache_private = false;     // Cache-Control: private
};

namespace plan_detail {
inline WritePlan end_session(const WriteInputs& in) noexcept {
  WritePlan p;
  if (in.server_store && in.has_id && in.status == LoadStatus::Valid) {
    p.record = RecordWrite::Delete;
  }
  if (in.had_cookie) p.cookie = CookieWrite::Expire;
  return p;
}
}  // namespace plan_detail

// Whether plan_write's answer is the default plan (keep the cookie, no record write, nothing
// refused) whatever its other inputs: nothing was asked of the session - no login, logout,
// destroy, change or regenerate - and it is not a valid session due for renewal. The header
// filter asks this first on the read-only path and builds the inputs only when it is false
// (t/unit/test_write_plan.cpp checks it against plan_write over every input).
inline bool plan_keeps(bool asked, bool valid, bool renew_due) noexcept {
  return !asked && !(valid && renew_due);
}

// (Inline: the header filter asks it on every response.)
[[gnu::always_inline]] inline WritePlan plan_write(const WriteInputs& in) noexcept {
  WritePlan p;
  if (in.logout) {
    if (in.server_store && in.has_id) p.record = RecordWrite::Delete;
    p.cookie = CookieWrite::Expire;
    p.logout = true;
    p.logout_all = in.logout_all;
    p.cache_private = true;
    return p;
  }
  if (!in.writes_allowed) return p;
  // A failed lookup changes nothing, but a login does not depend on it: it starts from an empty
  // session, and its record write decides the response (after_write). Changes that need the
  // lost session are refused rather than claimed.
  if (in.store_error && !in.login) {
    p.refuse = in.changed || in.destroy || in.regenerate;
    return p;
  }

  const bool valid = in.status == LoadStatus::Valid;
  if (in.login) {
    p.cookie = CookieWrite::Set;
    p.restart_lifetime = true;
    p.new_id = in.server_store;
    if (in.server_store) {
      p.record = in.login_stored ? RecordWrite::None : RecordWrite::Create;
      p.delete_old = valid && in.has_id;
    }
  } else if (in.destroy || ((in.changed || in.regenerate) && in.empty_after)) {
    p = plan_detail::end_session(in);
  } else if (!valid) {
    if (in.changed) {  // actions on no (or a broken) session start a new one
      p.cookie = CookieWrite::Set;
      p.restart_lifetime = true;
      if (in.server_store) {
        p.record = RecordWrite::Create;
        p.new_id = true;
      }
    }
  } else if (in.regenerate) {
    p.cookie = CookieWrite::Set;
    if (in.server_store && in.has_id) {
      p.record = RecordWrite::Move;
      p.new_id = true;
    }
  } else if (in.changed) {
    p.cookie = CookieWrite::Set;
    if (in.server_store) p.record = RecordWrite::Update;
  } else if (in.renew_due) {
    p.cookie = CookieWrite::Set;
    if (in.server_store) p.record = RecordWrite::Touch;
  }
  p.cache_private = p.cookie != CookieWrite::Keep;
  return p;
}

// What the response does once Redis answered the plan's record write.
enum class AfterWrite : uint8_t {
  Proceed,     // send the response as planned
  DropCookie,  // send the response without the session Set-Cookie (nothing was written)
  Refuse,      // replace the response with 503 + Retry-After, no Set-Cookie
  RefuseExpire,  // 503 + Retry-After, the session cookie expired all the same: a logout-all
                 // that could not end every session claims nothing about the other devices,
                 // but this one is logged out (a logout always expires the cookie)
};
// others_failed: a logout-all could not end the user's other sessions (or not all of them).
AfterWrite after_write(const WritePlan& p, WriteOutcome o, bool others_failed = false) noexcept;

}  // namespace sess
