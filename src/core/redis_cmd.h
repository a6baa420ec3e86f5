// Redis keys and the plain commands the session store sends besides the record scripts of
// record.h, and what a write's reply means. Pure: the connection layer (src/redis/) only
// transports these.
//
// Records live under <prefix><32 hex digits of the id> (record.h says what they hold).
//   delete : DEL key
//   v1 read: GETRANGE key 0 kMaxRecordLen      (a v1 record larger than the limit comes back as
//                                               kMaxRecordLen+1 bytes and is refused: never
//                                               buffered whole)
#pragma once

#include "common.h"

#include <vector>

namespace sess {

constexpr size_t kMaxPrefixLen = 256;
constexpr size_t kMaxRecordLen = 64 * 1024;

using RedisArgs = std::pmr::vector<pstring>;

// Appends <prefix><hex(id)> to out (lowercase hex, 2 * id_len digits).
void redis_key(std::string_view prefix, const unsigned char* id, size_t id_len, pstring& out);
// The same key written to buf (room for prefix.size() + 2 * id_len bytes): its length.
size_t redis_key_to(std::string_view prefix, const unsigned char* id, size_t id_len, char* buf);

// Each replaces out with the command's arguments (renewals are record_cmd_touch: a script that
// knows session_regenerate's marker).
void redis_cmd_lookup(std::string_view key, RedisArgs& out);
void redis_cmd_delete(std::string_view key, RedisArgs& out);

enum class WriteOutcome : uint8_t {
  Done,       // the write happened (OK; DEL/EXPIRE with 1)
  Gone,       // update/touch of a record that no longer exists (nil / 0): nothing was written
  Exists,     // create of an id that exists (nil): nothing was written
  Moved,      // update/touch of an id that session_regenerate replaced: nothing was written
  Changed,    // session_regenerate's claim of a record another request changed: nothing written
  Refused,    // Redis said no (OOM, READONLY, MISCONF, NOPERM, ...): nothing was written
  Failed,     // no reply (timeout, connection lost): unknown
};

}  // namespace sess
