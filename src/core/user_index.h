// The per-user index of sessions in Redis, for "logout everywhere" (session_logout ... all,
// session_destroy_user): its keys, commands and replies, and what each session write does to it.
// Pure: the glue (src/ngx_http_session_index.cpp) sends these and applies the decisions.
//
//   key    = <prefix>user:<user>      a Redis set; <user> is the user key's string, byte for byte
//   member = a record key without the prefix: the 32 hex digits of a native id, or a Flask-Session
//            sid ([A-Za-z0-9_-], never ':', so a member never names an index key)
//   TTL    = never shorter than the longest any member's record can still live: each add raises
//            it (in milliseconds: PTTL/PEXPIRE) to the new member's bound (created + session_lifetime; flask mode: a lifetime
//            from the write) and never lowers it, so it outlives its last session by at most one
//            session_lifetime.
//
// The index is kept a superset of the live sessions nginx made for the user, up to races with a
// logout-all that is running: an entry is added after its new record is confirmed (login,
// create, regenerate) - or before an existing record takes the user (session_set of the user
// key, and again after it) - and removed only after its record is gone, belongs to another user
// or moved (session_regenerate: the new id was added first). An entry whose record holds no user
// stays (a session_set of the user key may be on its way). A key of another type at the index's
// name (not written by nginx: a Flask app can be made to write one) lists no session: the add
// replaces it, and a logout-all reads it as an empty index. Entries whose
// record is gone (expired, deleted behind nginx) are pruned lazily: by a logout-all, and by each
// add of a new id, which checks a small sample of the other members (index_cmd_add returns it).
//
// Every command touches one key, so that all of this works across Redis Cluster slots (a user's
// index and the records hash to different nodes):
//   add  : EVAL <add script> 1 key member ttl_ms sample -> array: up to `sample` random members
//   del  : SREM key member...                          -> integer
//   scan : SSCAN key cursor COUNT n                    -> [cursor, [member...]]
//   check: EXISTS <record key>                         -> integer (a sampled member's record)
//   end  : EVAL <end script> 1 <record key> field json -> 1 deleted, 0 no record, -1 not the user's,
//                                                       -2 no user, 2 moved (EndOutcome)
// The end script deletes a native record only while its user field still holds the user (so a
// stale entry never ends another user's session), comparing decoded JSON values (any spelling of
// the name matches); Flask-Session records (field empty) cannot be checked in Redis and are
// deleted as they are.
#pragma once

#include "common.h"
#include "redis_cmd.h"
#include "resp.h"
#include "write_plan.h"

#include <string>
#include <vector>

namespace sess {

constexpr std::string_view kUserIndexInfix = "user:";
constexpr size_t kIndexMemberMaxLen = 128;
constexpr size_t kIndexSample = 4;        // members an add returns for checking
constexpr size_t kIndexScanCount = 256;   // SSCAN COUNT (also how many records one round ends)

// Appends <prefix>user:<user> to out.
void user_index_key(std::string_view prefix, std::string_view user, pstring& out);

// A member nginx could have written: 1..kIndexMemberMaxLen bytes of [A-Za-z0-9_-].
bool index_member_valid(std::string_view m) noexcept;

// The commands. ttl: seconds (at least 1; sent in milliseconds).
void index_cmd_add(std::string_view key, std::string_view member, uint64_t ttl, size_t sample,
                   RedisArgs& out);
void index_cmd_remove(std::string_view key, const std::string_view* members, size_t n,
                      RedisArgs& out);
void index_cmd_scan(std::string_view key, std::string_view cursor, size_t count, RedisArgs& out);
void index_cmd_exists(std::string_view record_key, RedisArgs& out);
// field: the user key's hash field (native), or empty (Flask-Session records); user_json: the
// user as the record holds it (append_json_string of the name).
void index_cmd_end(std::string_view record_key, std::string_view field, std::string_view user_json,
                   RedisArgs& out);
// Points an end command (index_cmd_end's) at another record, <prefix><member>, in place: a walk
// builds the command (and its copy of the script) once and reuses it for every member. (The
// record key stays cmd[3]: the key to route the command by.)
void index_cmd_end_key(std::string_view prefix, std::string_view member, RedisArgs& cmd);

// Replies. Done: *out holds what came; Refused: Redis said no (an error reply); WrongType: Redis
// said WRONGTYPE (the index key holds something else than a set); Failed: no reply, or one the
// command cannot give.
enum class IndexReply : uint8_t { Done, Refused, WrongType, Failed };
// The add: the sampled members (only valid ones are kept).
IndexReply index_add_reply(const RespValue* reply, std::vector<std::string>* sample);
// SSCAN: the next cursor ("0": done) and the members of this round (invalid ones go to *junk:
// they are removed from the index, not ended).
IndexReply index_scan_reply(const RespValue* reply, std::string* cursor,
                            std::vector<std::string>* members, std::vector<std::string>* junk);
// EXISTS: *exists.
IndexReply index_exists_reply(const RespValue* reply, bool* exists);
// SREM: any integer.
IndexReply index_remove_reply(const RespValue* reply);

enum class EndOutcome : uint8_t {
  Ended,      // the record was deleted
  Missing,    // there was no record (a stale entry: pruned)
  NotUsers,   // the record holds another user, or is not a session record (pruned, kept)
  NoUser,     // the record holds no user (no field, not a JSON string): kept, and so is its
              // entry (a session_set may be giving it the user: the next logout-all sees it)
  Moved,      // session_regenerate's marker: the session moved to a new id, already in the
              // index (pruned; the walk reads the index again to end the new id)
  Refused,    // Redis said no: unknown whether anything was deleted, the entry stays
  Failed,     // no reply: the same
};
EndOutcome index_end_outcome(const RespValue* reply) noexcept;
// The entry can leave the index after this outcome.
inline bool end_outcome_final(EndOutcome o) noexcept {
  return o == EndOutcome::Ended || o == EndOutcome::Missing || o == EndOutcome::NotUsers ||
         o == EndOutcome::Moved;
}

// A walk over the index (ending every session of a user), after each round. A session that
// moved (session_regenerate) while the walk ran had its new id added to the index before the old
// one was retired, perhaps behind the walk's cursor: the walk then reads the index once more from
// the start, at most kIndexMaxPasses times in all.
constexpr unsigned kIndexMaxPasses = 3;
enum class WalkNext : uint8_t {
  Round,    // SSCAN on from the cursor
  Pass,     // the pass is through and met a moved session: SSCAN again from cursor 0
  Done,     // through, nothing moved: the walk is over
  Moving,   // through, a session moved in the last pass allowed: over, and a failure (its new
            // id may not have been ended)
};
// cursor_done: SSCAN's cursor came back to 0; moved: this pass met EndOutcome::Moved; passes:
// the passes begun so far (1 for the first).
WalkNext index_walk_next(bool cursor_done, bool moved, unsigned passes) noexcept;

// ---------------------------------------------------------------------------------------------
// What a session write does to the index

struct IndexInputs {
  RecordWrite record = RecordWrite::None;  // the plan's record write
  bool login_stored = false;   // a login whose new record (and index entry) the login handler made
  bool delete_old = false;     // the plan deletes the previous id after the new record
  bool flask = false;          // Flask-Session records: every write resets the record's TTL
  bool user_before = false;    // the loaded session (valid, with an id) has a logged-in user
  bool user_after = false;     // the data written has a logged-in user
  bool same_user = false;      // ... and it is the same user
};

// Every step is optional: none of them is taken for a write that did not take place.
struct IndexPlan {
  bool add_before = false;  // before the record write: add (user after, id); a failure refuses
                            // the response (503) and nothing is written
  bool add_new = false;     // after the new record (create, regenerate) is confirmed: add (user
                            // after, new id) and check a sample; a failure undoes the new record
                            // and refuses the response
  bool refresh = false;     // after the record write: add (user after, id) again (renewal, a
                            // flask write, a change of user); a failure is logged only. Indexes
                            // sessions made before the index was kept, keeps the index's TTL
                            // ahead of the record's, and puts back an entry that a logout-all of
                            // the new user took out while the record still held another user
  bool remove_old = false;  // after the record is gone or changed users: remove (user before,
                            // old id); a failure is logged only (the entry is pruned later)
};

IndexPlan index_plan(const IndexInputs& in) noexcept;

// session_logout ... all: what the logout does about the user's other sessions.
enum class LogoutAll : uint8_t {
  Plain,    // no logged-in session: an ordinary logout (nothing else to end)
  End,      // end every session of the user (this one last, by the logout itself)
  Refuse,   // the session could not be read (store unavailable): 503, nothing is ended and the
            // cookie stays (the user can try again; a 303 would claim what did not happen)
};
LogoutAll logout_all_decision(LoadStatus status, bool store_error, bool logged_in) noexcept;

}  // namespace sess
