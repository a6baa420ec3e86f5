#include "write_plan.h"

namespace sess {

namespace {

WritePlan end_session(const WriteInputs& in) {
  WritePlan p;
  if (in.server_store && in.has_id && in.status == LoadStatus::Valid) {
    p.record = RecordWrite::Delete;
  }
  if (in.had_cookie) p.cookie = CookieWrite::Expire;
  return p;
}

}  // namespace

WritePlan plan_write(const WriteInputs& in) noexcept {
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
    p = end_session(in);
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

AfterWrite after_write(const WritePlan& p, WriteOutcome o, bool others_failed) noexcept {
  if (p.logout && p.logout_all && (others_failed || o != WriteOutcome::Done)) {
    return AfterWrite::RefuseExpire;
  }
  if (o == WriteOutcome::Done || p.logout) return AfterWrite::Proceed;
  switch (p.record) {
    case RecordWrite::Touch:
      return AfterWrite::DropCookie;  // not renewed: gone, moved, or Redis did not confirm
    case RecordWrite::Update:
    case RecordWrite::Move:
      // Gone: a logout came first, which is final. Moved: session_regenerate gave the session
      // another id meanwhile; the change cannot follow it (whoever holds the old id could write
      // into the new session) and is refused, not reported as made.
      return o == WriteOutcome::Gone ? AfterWrite::DropCookie : AfterWrite::Refuse;
    case RecordWrite::None:
      return AfterWrite::Proceed;
    case RecordWrite::Create:
    case RecordWrite::Delete:
    default:
      return AfterWrite::Refuse;
  }
}

}  // namespace sess
