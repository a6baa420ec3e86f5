// Session records in Redis, v2: a hash per session, updated key by key.
//
//   key   = <prefix><32 hex digits of the id>            (as in v1)
//   value = a Redis hash: field = session key, value = that key's value as JSON text
//           ("\"alice\"" for the string alice, "3" for the number 3, "{...}" for an object)
//   TTL   = the session's record TTL (expiry_record_ttl, seconds), set with EXPIRE
//
// Two requests of one session that change different keys at the same time both keep their
// change: a request sends only what its actions changed (SessionChanges), applied by one script
// that runs only while the record exists (so a logout is final). v1 records (one JSON string,
// written by v1 of this module) are read as they are and converted to v2 on read.
//
// Reads: HGETALL key (an empty array: no such record; WRONGTYPE: a v1 string record, read with
// GETRANGE key 0 kMaxRecordLen). The transport's parser bounds the reply (RespLimits.max_total =
// kMaxRecordLen for lookups): a larger record is TooLarge, never buffered whole.
//
// Keys are what nginx can write (session_key_valid: 1-64 bytes of [A-Za-z0-9_]) in both forms,
// so every v1 record that reads as Found converts to a v2 record that reads as Found.
#pragma once

#include "common.h"
#include "redis_cmd.h"
#include "resp.h"
#include "session_data.h"

#include <string>
#include <vector>

namespace sess {

// What a request's actions did to the session, in order-independent form: after clear (if set),
// the keys in `set` hold their new JSON text and the keys in `unset` are gone. The last change of
// a key wins: a key is in at most one of the two lists. After clear, unset only drops a pending
// set (every key that is not set again is gone anyway).
class SessionChanges {
 public:
  void set_string(std::string_view key, std::string_view value);  // stored as JSON text
  void set_json(std::string_view key, std::string_view json_text);
  void unset(std::string_view key);
  void clear();  // forget earlier sets/unsets; remove every key first

  bool empty() const noexcept { return !clear_ && set_.empty() && unset_.empty(); }
  bool cleared() const noexcept { return clear_; }
  // (key, JSON text) pairs and keys, each key at most once, in first-change order.
  const std::vector<std::pair<std::string, std::string>>& sets() const noexcept { return set_; }
  const std::vector<std::string>& unsets() const noexcept { return unset_; }

 private:
  bool clear_ = false;
  std::vector<std::pair<std::string, std::string>> set_;
  std::vector<std::string> unset_;
};

// The lookup commands.
void record_cmd_read(std::string_view key, RedisArgs& out);     // HGETALL key
void record_cmd_read_v1(std::string_view key, RedisArgs& out);  // GETRANGE key 0 kMaxRecordLen

enum class RecordRead : uint8_t {
  Found,      // *out holds the session
  Missing,    // no record (an empty hash, an empty string)
  V1,         // HGETALL said WRONGTYPE: read it again with record_cmd_read_v1
  Invalid,    // a record that is not a session: a field value that is not JSON, a field name
              // that session_key_valid refuses (or twice), an odd number of elements or one that
              // is not a bulk string, more than SessionData::kMaxKeys fields; a v1 string that
              // is not a non-empty JSON object with valid keys; another type
  TooLarge,   // the parser refused it, or a v1 string longer than kMaxRecordLen
  Failed,     // no reply or another error: the store is unavailable
};

// The reply to record_cmd_read (too_large: the transport's parser reported TooLarge; reply
// nullptr: no reply). *out is empty unless Found.
RecordRead record_read(const RespValue* reply, bool too_large, SessionData* out);
// The reply to record_cmd_read_v1; *json (may be nullptr) is the v1 text (for
// record_cmd_migrate), empty unless Found. WRONGTYPE here is Invalid; it can also mean that
// another request converted the record between the two reads, so a caller that wants to be exact
// reads an Invalid once more with record_cmd_read.
RecordRead record_read_v1(const RespValue* reply, bool too_large, SessionData* out,
                          pstring* json);

// Converts a v1 record to v2, only if it still holds exactly v1_json (another writer may have
// been first), keeping its TTL. data is what record_read_v1 found (not empty). Reply: 1
// converted (Done), 0 not (Gone: already converted, changed or gone).
void record_cmd_migrate(std::string_view key, std::string_view v1_json, const SessionData& data,
                        RedisArgs& out);

// Writes (EVAL scripts on the one key). Replies are classified by record_write_outcome. ttl > 0
// and create's data is not empty (the caller deletes instead: Redis keeps no empty hash).
//   create : only if the key does not exist: HSET every key, EXPIRE.  1 done, 0 exists
//   update : only if the key is a hash: clear / HSET / HDEL, EXPIRE.   1 done, 0 gone, -1 moved
//   touch  : EXPIRE if the key is a session record.                    1 done, 0 gone, -1 moved
//   destroy: DEL unless the key is the marker.                         1/0 done, -1 moved
//   claim  : only if the key still holds exactly `loaded` (the data the new id was made
//            from), replace it by kRegeneratedMarker (the rest of its TTL, at most
//            kRegeneratedMarkerMaxMs).              1 done, 0 gone, -1 moved, -2 changed
// Other DELs (a login's previous id, undoing a new record) are redis_cmd_delete.
// (session_regenerate: create the new id, then claim the old one; if the claim does not take
// it - a logout, another regenerate or a change came first - delete the new one again. Each key
// is on its own in every command, so this works across Redis Cluster slots. A later change
// through the old id is refused - Moved - rather than applied to the new id: following it
// would let whoever holds the old id write into the regenerated session, which is what
// session_regenerate exists to prevent.)
constexpr std::string_view kRegeneratedMarker = "#session-regenerated";
constexpr uint64_t kRegeneratedMarkerMaxMs = 3600 * 1000;
void record_cmd_create(std::string_view key, const SessionData& data, uint64_t ttl,
                       RedisArgs& out);
void record_cmd_update(std::string_view key, const SessionChanges& changes, uint64_t ttl,
                       RedisArgs& out);
void record_cmd_touch(std::string_view key, uint64_t ttl, RedisArgs& out);
void record_cmd_destroy(std::string_view key, RedisArgs& out);
void record_cmd_claim(std::string_view key, const SessionData& loaded, RedisArgs& out);

enum class RecordWriteKind : uint8_t { Create, Update, Claim, Touch, Delete, Migrate };
// Done / Gone / Exists / Refused (an error reply) / Failed (no reply or an answer the command
// cannot give) as in redis_cmd.h.
WriteOutcome record_write_outcome(RecordWriteKind k, const RespValue* reply) noexcept;
// What session_regenerate's write comes to when the claim of the old id did not take it (the
// new record is then deleted again): a logout (Gone), another regenerate (Moved) or a change
// (Changed) came first - each answered as such by after_write - or the claim's fate is unknown
// (Failed: no reply, a refusal, a reply the script cannot give).
WriteOutcome claim_failure_outcome(WriteOutcome claim) noexcept;

}  // namespace sess
