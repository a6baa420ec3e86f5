// Unit tests for write_plan.h: what one response does to the session cookie and the record.
//
// Each row reads as "given these inputs, the plan is ...". Inputs are words:
//   none|valid|expired|invalid|error  how the session loaded (LoadStatus)
//   cookie      a session cookie was received          redis   the Redis store (ids)
//   id          the id of a valid session is known      open    the gate lets this response write
//   down        the lookup failed (store unavailable)  changed actions changed keys
//   empty       the data is empty after the changes    destroy session_destroy
//   regenerate  session_regenerate                     login   a successful login
//   stored      ... whose record the login handler already confirmed
//   logout      the logout endpoint                    renew   the session is due for renewal
//   all         ... session_logout ... all (its other sessions were ended first)
// The plan is written the same way: cookie keep|set|expire, record none|create|update|touch|
// delete, then the flags that are set: new_id delete_old restart logout private.
#include "write_plan.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <sstream>
#include <string>

using sess::AfterWrite;
using sess::CookieWrite;
using sess::LoadStatus;
using sess::RecordWrite;
using sess::WriteInputs;
using sess::WriteOutcome;
using sess::WritePlan;

namespace {

WriteInputs inputs(const std::string& words) {
  WriteInputs in;
  std::istringstream ss(words);
  std::string w;
  while (ss >> w) {
    if (w == "none") in.status = LoadStatus::None;
    else if (w == "valid") in.status = LoadStatus::Valid;
    else if (w == "expired") in.status = LoadStatus::Expired;
    else if (w == "invalid") in.status = LoadStatus::Invalid;
    else if (w == "error") in.status = LoadStatus::Error;
    else if (w == "cookie") in.had_cookie = true;
    else if (w == "redis") in.server_store = true;
    else if (w == "id") in.has_id = true;
    else if (w == "open") in.writes_allowed = true;
    else if (w == "down") in.store_error = true;
    else if (w == "changed") in.changed = true;
    else if (w == "empty") in.empty_after = true;
    else if (w == "destroy") in.destroy = true;
    else if (w == "regenerate") in.regenerate = true;
    else if (w == "login") in.login = true;
    else if (w == "stored") in.login_stored = true;
    else if (w == "logout") in.logout = true;
    else if (w == "all") in.logout_all = true;
    else if (w == "renew") in.renew_due = true;
    else ADD_FAILURE() << "unknown input word: " << w;
  }
  return in;
}

std::string describe(const WritePlan& p) {
  std::string s;
  switch (p.cookie) {
    case CookieWrite::Keep: s = "keep"; break;
    case CookieWrite::Set: s = "set"; break;
    case CookieWrite::Expire: s = "expire"; break;
  }
  switch (p.record) {
    case RecordWrite::None: s += " none"; break;
    case RecordWrite::Create: s += " create"; break;
    case RecordWrite::Update: s += " update"; break;
    case RecordWrite::Touch: s += " touch"; break;
    case RecordWrite::Delete: s += " delete"; break;
    case RecordWrite::Move: s += " move"; break;
  }
  if (p.new_id) s += " new_id";
  if (p.delete_old) s += " delete_old";
  if (p.restart_lifetime) s += " restart";
  if (p.logout) s += " logout";
  if (p.logout_all) s += " all";
  if (p.cache_private) s += " private";
  if (p.refuse) s += " refuse";
  return s;
}

std::string plan(const std::string& words) { return describe(sess::plan_write(inputs(words))); }

struct Row {
  const char* rule;
  const char* in;
  const char* plan;
};

void check(std::initializer_list<Row> rows) {
  for (const Row& r : rows) {
    EXPECT_EQ(plan(r.in), r.plan) << r.rule << "\n  inputs: " << r.in;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// plan_write: one block per rule of the header, in its order.

TEST(WritePlan, LogoutAlwaysExpiresTheCookie) {
  check({
      // v1 defect: with the store down, logout answered without expiring the cookie.
      {"logout deletes the record and expires the cookie",
       "logout valid cookie redis id open", "expire delete logout private"},
      {"logout when the store failed (fail closed or open): still expires, still tries",
       "logout error cookie redis id open down", "expire delete logout private"},
      {"logout with the cookie store", "logout valid cookie open", "expire none logout private"},
      {"logout of a session whose record is missing: the cookie still goes",
       "logout invalid cookie redis open", "expire none logout private"},
      {"logout without any session cookie", "logout none open", "expire none logout private"},
      {"logout-all: the same, and its own delete must be confirmed (after_write)",
       "logout all valid cookie redis id open", "expire delete logout all private"},
  });
}

TEST(WritePlan, ClosedGateWritesNothing) {
  check({
      // v1 defect: an access-refused request (deny, auth_basic, auth_request, session_require)
      // still applied the location's actions.
      {"access refused, with actions", "valid cookie redis id changed", "keep none"},
      {"access refused, with session_set on no session", "none redis changed", "keep none"},
      {"access refused, session_destroy", "valid cookie redis id destroy", "keep none"},
      {"access refused, session_clear", "valid cookie redis id changed empty", "keep none"},
      {"access refused, session_regenerate", "valid cookie redis id regenerate", "keep none"},
      {"access refused, renewal due", "valid cookie redis id renew", "keep none"},
      {"access refused, cookie store", "valid cookie changed renew", "keep none"},
  });
}

TEST(WritePlan, StoreFailureLeavesEverythingAsItIs) {
  check({
      // session_store_fail open: the request has no session, but starting a new one would
      // replace the user's cookie (an outage must not log anybody out), and a change that
      // cannot be made is refused (503) rather than claimed.
      {"actions during an outage", "none cookie redis open down changed", "keep none refuse"},
      {"error status with actions", "error cookie redis open down changed", "keep none refuse"},
      {"session_destroy during an outage", "error cookie redis id open down destroy",
       "keep none refuse"},
      {"regenerate during an outage", "error cookie redis open down regenerate",
       "keep none refuse"},
      {"read-only during an outage", "error cookie redis open down", "keep none"},
      // A login does not depend on the failed lookup (it starts from an empty session): it is
      // planned as any login, and the after_write of its Create decides (503 if Redis refuses).
      {"login during an outage (fail open)", "none cookie redis open down login",
       "set create new_id restart private"},
      {"login whose record was confirmed after the lookup failed",
       "none cookie redis open down login stored", "set none new_id restart private"},
  });
}

TEST(WritePlan, ReadOnlyRequestsNeverWrite) {
  check({
      {"valid session, nothing due", "valid cookie redis id open", "keep none"},
      {"valid cookie-store session, nothing due", "valid cookie open", "keep none"},
      {"no session", "none open", "keep none"},
      // v1 defects: these expired the cookie.
      {"invalid cookie", "invalid cookie open", "keep none"},
      {"expired cookie", "expired cookie open", "keep none"},
      {"duplicated cookies (tossing: invalid)", "invalid cookie redis open", "keep none"},
      {"missing Redis record (invalid)", "invalid cookie redis open", "keep none"},
      {"missing Redis record (expired)", "expired cookie redis open", "keep none"},
      {"renewal is for valid sessions only", "expired cookie redis open renew", "keep none"},
      {"renewal is for valid sessions only (invalid)", "invalid cookie open renew", "keep none"},
  });
}

TEST(WritePlan, DestroyAndEmptyingEndTheSession) {
  check({
      {"session_destroy", "valid cookie redis id open destroy", "expire delete private"},
      {"session_destroy, cookie store", "valid cookie open destroy", "expire none private"},
      {"session_clear", "valid cookie redis id open changed empty", "expire delete private"},
      {"session_unset of the last key, cookie store", "valid cookie open changed empty",
       "expire none private"},
      {"session_destroy with changes too", "valid cookie redis id open changed destroy",
       "expire delete private"},
      {"session_destroy of an invalid cookie: expires the cookie that was sent",
       "invalid cookie redis open destroy", "expire none private"},
      {"session_destroy without a session cookie: nothing to expire", "none redis open destroy",
       "keep none"},
      {"session_regenerate without a session: nothing", "none redis open regenerate empty",
       "keep none"},
  });
}

TEST(WritePlan, LoginStartsANewSession) {
  check({
      // v1 defects: a login must always get a new id (fixation), and the old record may only
      // go once the new one is confirmed (delete_old), never before.
      {"login over a valid session: new id, the old one deleted after the new record",
       "valid cookie redis id open login", "set create new_id delete_old restart private"},
      {"login over a valid session, record already confirmed by the login handler",
       "valid cookie redis id open login stored", "set none new_id delete_old restart private"},
      {"login without a session", "none redis open login", "set create new_id restart private"},
      {"login over an expired session: its id is not known as valid",
       "expired cookie redis open login", "set create new_id restart private"},
      {"login over an invalid cookie", "invalid cookie redis open login",
       "set create new_id restart private"},
      {"login with the cookie store", "valid cookie open login", "set none restart private"},
      {"login with other actions in the location", "valid cookie redis id open login changed",
       "set create new_id delete_old restart private"},
  });
}

TEST(WritePlan, ChangesUpdateOnlyWhileTheRecordExists) {
  check({
      // v1 defect: changes were written as a new record, which re-created one a logout had
      // deleted. An existing session is updated (SET XX), never created.
      {"session_set on a valid session: Update (SET XX), same id",
       "valid cookie redis id open changed", "set update private"},
      {"session_set on a valid cookie-store session", "valid cookie open changed",
       "set none private"},
      {"session_set with no session: a new session", "none redis open changed",
       "set create new_id restart private"},
      {"session_set over an expired cookie: a new session", "expired cookie redis open changed",
       "set create new_id restart private"},
      {"session_set over an invalid cookie, cookie store", "invalid cookie open changed",
       "set none restart private"},
      // session_regenerate moves the record atomically, only while the old one exists: a
      // logout that deleted it meanwhile is final.
      {"session_regenerate: the data moves to a new id", "valid cookie redis id open regenerate",
       "set move new_id private"},
      {"session_regenerate with changes", "valid cookie redis id open regenerate changed",
       "set move new_id private"},
      {"session_regenerate, cookie store", "valid cookie open regenerate", "set none private"},
  });
}

TEST(WritePlan, RenewalIsATouch) {
  check({
      // The record's TTL is refreshed with EXPIRE (never rewritten, never re-created).
      {"valid session past session_renew: EXPIRE, cookie re-issued",
       "valid cookie redis id open renew", "set touch private"},
      {"cookie store: re-issued", "valid cookie open renew", "set none private"},
      {"changes and renewal: the update renews", "valid cookie redis id open changed renew",
       "set update private"},
  });
}

TEST(WritePlan, ResponsesThatWriteTheCookieArePrivate) {
  check({
      {"cookie set", "none open changed", "set none restart private"},
      {"cookie expired", "valid cookie open destroy", "expire none private"},
      {"cookie expired by logout", "logout valid cookie open", "expire none logout private"},
      {"cookie left alone: cacheable as far as the session goes", "valid cookie open",
       "keep none"},
  });
}

// Properties over every combination of the inputs (5 statuses x 2^13 flags).
TEST(WritePlan, EveryCombination) {
  const LoadStatus statuses[] = {LoadStatus::None, LoadStatus::Valid, LoadStatus::Expired,
                                 LoadStatus::Invalid, LoadStatus::Error};
  for (LoadStatus st : statuses) {
    for (unsigned bits = 0; bits < (1u << 14); bits++) {
      WriteInputs in;
      in.status = st;
      bool* flags[] = {&in.had_cookie, &in.server_store, &in.has_id,     &in.writes_allowed,
                       &in.store_error, &in.changed,     &in.empty_after, &in.destroy,
                       &in.regenerate,  &in.login,       &in.login_stored, &in.logout,
                       &in.renew_due,   &in.logout_all};
      for (size_t i = 0; i < 14; i++) *flags[i] = (bits >> i) & 1;
      const WritePlan p = sess::plan_write(in);
      const bool valid = st == LoadStatus::Valid;
      // The header filter's shortcut: when plan_keeps says so, the plan is the default one,
      // whatever the store, the gate, the cookie or the ids were.
      const bool asked = in.login || in.logout || in.destroy || in.changed || in.regenerate;
      if (sess::plan_keeps(asked, valid, in.renew_due)) {
        EXPECT_EQ(describe(p), "keep none");
        EXPECT_FALSE(p.refuse || p.logout || p.logout_all || p.new_id || p.delete_old ||
                     p.restart_lifetime || p.cache_private);
      }
      const bool acts = in.changed || in.destroy || in.regenerate || in.login;
      SCOPED_TRACE("status " + std::to_string(static_cast<int>(st)) + " bits " +
                   std::to_string(bits) + " -> " + describe(p));

      // A response that sets or expires the cookie is private to its user; others are not.
      EXPECT_EQ(p.cache_private, p.cookie != CookieWrite::Keep);
      // Logout always expires; it is the only thing that sets `logout`.
      EXPECT_EQ(p.logout, in.logout);
      if (in.logout) {
        EXPECT_EQ(p.cookie, CookieWrite::Expire);
        EXPECT_EQ(p.record, in.server_store && in.has_id ? RecordWrite::Delete
                                                         : RecordWrite::None);
        continue;
      }
      // A closed gate writes nothing.
      if (!in.writes_allowed) {
        EXPECT_EQ(describe(p), "keep none");
        continue;
      }
      // A store failure writes nothing but a login; changes are refused rather than claimed.
      if (in.store_error && !in.login) {
        EXPECT_EQ(describe(p), (in.changed || in.destroy || in.regenerate) ? "keep none refuse"
                                                                            : "keep none");
        continue;
      }
      // Read-only requests never write, whatever the cookie was.
      if (!acts && !(valid && in.renew_due)) {
        EXPECT_EQ(describe(p), "keep none");
      }
      // The cookie is only expired by session_destroy or changes that empty the session.
      if (p.cookie == CookieWrite::Expire) {
        EXPECT_TRUE(in.destroy || ((in.changed || in.regenerate) && in.empty_after));
        EXPECT_TRUE(in.had_cookie);
      }
      // Record writes only with the Redis store; each kind only where its rule says.
      if (!in.server_store) {
        EXPECT_EQ(p.record, RecordWrite::None);
      }
      if (p.record == RecordWrite::Update) {
        EXPECT_TRUE(valid && in.changed && !in.login);
      }
      if (p.record == RecordWrite::Touch) {
        EXPECT_TRUE(valid && in.renew_due && !in.changed);
      }
      if (p.record == RecordWrite::Delete) {
        EXPECT_TRUE(valid && in.has_id);
      }
      // A record is only ever created under a new id (an existing one is never re-created).
      if (p.record == RecordWrite::Create) {
        EXPECT_TRUE(p.new_id);
      }
      // The old id is deleted only after a new one exists, and only if it was known as valid.
      if (p.delete_old) {
        EXPECT_TRUE(p.new_id && valid && in.has_id);
      }
      // A login always starts a new session: new id (Redis), lifetime from now.
      if (in.login) {
        EXPECT_EQ(p.cookie, CookieWrite::Set);
        EXPECT_TRUE(p.restart_lifetime);
        EXPECT_EQ(p.new_id, in.server_store);
        if (in.server_store) {
          EXPECT_EQ(p.record, in.login_stored ? RecordWrite::None : RecordWrite::Create);
          EXPECT_EQ(p.delete_old, valid && in.has_id);
        }
      }
      if (HasFailure()) return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// after_write: one row per (plan, Redis outcome) rule.

TEST(AfterWrite, Table) {
  const struct {
    const char* rule;
    const char* in;  // plan_write inputs of the response
    WriteOutcome outcome;
    AfterWrite want;
  } rows[] = {
      // Renewal: a failed EXPIRE is no reason to refuse the page, but the cookie is not
      // re-issued (nothing was extended).
      {"touch done", "valid cookie redis id open renew", WriteOutcome::Done, AfterWrite::Proceed},
      {"touch of a record that is gone (logged out elsewhere)", "valid cookie redis id open renew",
       WriteOutcome::Gone, AfterWrite::DropCookie},
      {"touch refused", "valid cookie redis id open renew", WriteOutcome::Refused,
       AfterWrite::DropCookie},
      {"touch without reply", "valid cookie redis id open renew", WriteOutcome::Failed,
       AfterWrite::DropCookie},
      // Update: gone = a logout came first (final); refused/unknown = no success claimed.
      {"update done", "valid cookie redis id open changed", WriteOutcome::Done,
       AfterWrite::Proceed},
      {"update of a deleted record", "valid cookie redis id open changed", WriteOutcome::Gone,
       AfterWrite::DropCookie},
      {"update refused (OOM, READONLY)", "valid cookie redis id open changed",
       WriteOutcome::Refused, AfterWrite::Refuse},
      {"update without reply", "valid cookie redis id open changed", WriteOutcome::Failed,
       AfterWrite::Refuse},
      // Create (new session, login, regenerate).
      {"create done", "none redis open changed", WriteOutcome::Done, AfterWrite::Proceed},
      {"create refused", "none redis open changed", WriteOutcome::Refused, AfterWrite::Refuse},
      {"create without reply", "none redis open changed", WriteOutcome::Failed,
       AfterWrite::Refuse},
      {"create of an id that exists", "none redis open changed", WriteOutcome::Exists,
       AfterWrite::Refuse},
      {"login create refused: 503, never 303 without the cookie",
       "valid cookie redis id open login", WriteOutcome::Refused, AfterWrite::Refuse},
      {"login create without reply", "valid cookie redis id open login", WriteOutcome::Failed,
       AfterWrite::Refuse},
      {"regenerate move refused", "valid cookie redis id open regenerate",
       WriteOutcome::Refused, AfterWrite::Refuse},
      {"regenerate after a logout deleted the old id: no cookie",
       "valid cookie redis id open regenerate", WriteOutcome::Gone, AfterWrite::DropCookie},
      // Delete (session_destroy, session_clear).
      {"destroy done", "valid cookie redis id open destroy", WriteOutcome::Done,
       AfterWrite::Proceed},
      {"destroy refused", "valid cookie redis id open destroy", WriteOutcome::Refused,
       AfterWrite::Refuse},
      {"destroy without reply", "valid cookie redis id open destroy", WriteOutcome::Failed,
       AfterWrite::Refuse},
      {"clear refused", "valid cookie redis id open changed empty", WriteOutcome::Refused,
       AfterWrite::Refuse},
      // Logout: the cookie is expired whatever Redis said (the failure is logged).
      {"logout delete done", "logout valid cookie redis id open", WriteOutcome::Done,
       AfterWrite::Proceed},
      {"logout delete refused", "logout valid cookie redis id open", WriteOutcome::Refused,
       AfterWrite::Proceed},
      {"logout delete without reply", "logout valid cookie redis id open", WriteOutcome::Failed,
       AfterWrite::Proceed},
      {"logout with the store down", "logout error cookie redis id open down",
       WriteOutcome::Failed, AfterWrite::Proceed},
      // Logout-all: it answers that every session of the user ended, this one included.
      {"logout-all delete done", "logout all valid cookie redis id open", WriteOutcome::Done,
       AfterWrite::Proceed},
      // Not confirmed: 503 (nothing claimed), and this device's cookie expired all the same.
      {"logout-all delete refused: 503, the cookie expired",
       "logout all valid cookie redis id open", WriteOutcome::Refused, AfterWrite::RefuseExpire},
      {"logout-all delete without reply", "logout all valid cookie redis id open",
       WriteOutcome::Failed, AfterWrite::RefuseExpire},
      {"logout-all whose session moved meanwhile (regenerated): not known to be ended",
       "logout all valid cookie redis id open", WriteOutcome::Moved, AfterWrite::RefuseExpire},
      // No record write: nothing can fail.
      {"cookie store change", "valid cookie open changed", WriteOutcome::Failed,
       AfterWrite::Proceed},
      {"login already stored", "valid cookie redis id open login stored", WriteOutcome::Failed,
       AfterWrite::Proceed},
  };
  for (const auto& r : rows) {
    const WritePlan p = sess::plan_write(inputs(r.in));
    EXPECT_EQ(static_cast<int>(sess::after_write(p, r.outcome)), static_cast<int>(r.want))
        << r.rule << "\n  plan: " << describe(p);
  }
}

// A logout-all whose other sessions could not all be ended: 503 whatever its own delete gave,
// and this device's cookie expired; a plain logout never depends on it.
TEST(AfterWrite, LogoutAllWithOthersNotEndedRefusesAndExpires) {
  const WritePlan all = sess::plan_write(inputs("logout all valid cookie redis id open"));
  const WritePlan plain = sess::plan_write(inputs("logout valid cookie redis id open"));
  for (WriteOutcome o : {WriteOutcome::Done, WriteOutcome::Failed, WriteOutcome::Refused}) {
    EXPECT_EQ(sess::after_write(all, o, true), AfterWrite::RefuseExpire);
    EXPECT_EQ(sess::after_write(plain, o, true), AfterWrite::Proceed);
  }
  EXPECT_EQ(sess::after_write(all, WriteOutcome::Done, false), AfterWrite::Proceed);
}

TEST(AfterWrite, DoneAlwaysProceeds) {
  for (RecordWrite rw : {RecordWrite::None, RecordWrite::Create, RecordWrite::Update,
                         RecordWrite::Touch, RecordWrite::Delete}) {
    WritePlan p;
    p.record = rw;
    p.cookie = CookieWrite::Set;
    EXPECT_EQ(sess::after_write(p, WriteOutcome::Done), AfterWrite::Proceed);
    p.logout = true;
    EXPECT_EQ(sess::after_write(p, WriteOutcome::Done), AfterWrite::Proceed);
  }
}
