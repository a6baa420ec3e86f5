// Redis keys, the commands the session store sends, and what their replies mean. Pure: the
// glue (and the connection layer that replaces it) only transports these.
//
// Records are plain strings under <prefix><32 hex digits of the id>.
//   lookup : GETRANGE key 0 kMaxRecordLen      (a larger record comes back as kMaxRecordLen+1
//                                               bytes and is refused: never buffered whole)
//   create : SET key value EX ttl NX           (a new id; never overwrites)
//   update : SET key value EX ttl XX           (only while the record exists: a logout that
//                                               deleted it is final)
//   touch  : EXPIRE key ttl                    (renewal; 0 = the record is gone)
//   delete : DEL key
//   move   : EVAL <script> 2 old new value ttl   (session_regenerate: only while the old record
//                                               exists, SET new NX EX and DEL old, atomically;
//                                               a logout that deleted the old id is final)
#pragma once

#include "common.h"

#include <vector>

namespace sess {

constexpr size_t kMaxPrefixLen = 256;
constexpr size_t kMaxRecordLen = 64 * 1024;

using RedisArgs = std::pmr::vector<pstring>;

// Appends <prefix><hex(id)> to out (lowercase hex, 2 * id_len digits).
void redis_key(std::string_view prefix, const unsigned char* id, size_t id_len, pstring& out);

// Each replaces out with the command's arguments. ttl > 0 (the caller deletes instead of
// writing a record with no time left).
void redis_cmd_lookup(std::string_view key, RedisArgs& out);
void redis_cmd_create(std::string_view key, std::string_view value, uint64_t ttl, RedisArgs& out);
void redis_cmd_update(std::string_view key, std::string_view value, uint64_t ttl, RedisArgs& out);
void redis_cmd_touch(std::string_view key, uint64_t ttl, RedisArgs& out);
void redis_cmd_delete(std::string_view key, RedisArgs& out);
void redis_cmd_move(std::string_view old_key, std::string_view new_key, std::string_view value,
                    uint64_t ttl, RedisArgs& out);

// A reply as the transport saw it (independent of hiredis).
enum class ReplyType : uint8_t { None /* no reply: connection lost or timed out */, Status,
                                 Error, Integer, String, Nil, Array };
struct RedisReplyView {
  ReplyType type = ReplyType::None;
  std::string_view str;   // Status, Error, String
  int64_t integer = 0;    // Integer
};

enum class LookupOutcome : uint8_t {
  Found,      // a non-empty value of at most kMaxRecordLen bytes
  Missing,    // empty (GETRANGE of a missing key is ""; an empty record is not a session)
  TooLarge,   // more than kMaxRecordLen bytes
  WrongType,  // WRONGTYPE: the key holds something else
  Failed,     // no reply or another error: the store is unavailable
};
LookupOutcome redis_lookup_outcome(const RedisReplyView& r) noexcept;

enum class WriteOutcome : uint8_t {
  Done,       // the write happened (OK; DEL/EXPIRE with 1)
  Gone,       // update/touch of a record that no longer exists (nil / 0): nothing was written
  Exists,     // create of an id that exists (nil): nothing was written
  Refused,    // Redis said no (OOM, READONLY, MISCONF, NOPERM, ...): nothing was written
  Failed,     // no reply (timeout, connection lost): unknown
};
enum class WriteKind : uint8_t { Create, Update, Touch, Delete, Move };
// DEL of a missing key (0) is Done: the record is gone either way.
WriteOutcome redis_write_outcome(WriteKind k, const RedisReplyView& r) noexcept;

}  // namespace sess
