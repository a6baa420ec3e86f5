// Flask-Session records in Redis (session_format flask with session_store redis): the ids, the
// record bytes in each serializer's format, and the commands that read and write them.
//
//   key    = <session_redis_prefix><sid>             (Flask-Session's SESSION_KEY_PREFIX + sid)
//   value  = a Redis string: the session dict in the serializer's format
//              pickle  : pickle.dumps(dict(session))              (Flask-Session <= 0.6)
//              msgpack : msgspec.msgpack.Encoder().encode(...)      (>= 0.7, its default)
//              json    : msgspec.json.Encoder().encode(...)         (>= 0.7)
//   TTL    = session_lifetime (Flask-Session: SETEX with PERMANENT_SESSION_LIFETIME, reset by
//            every write)
//   cookie = sid, or with SESSION_USE_SIGNER sid "." signature (flask_sid_sign, no timestamp)
//
// Ids: Flask-Session <= 0.6 makes str(uuid4()) (36 characters), >= 0.7 secrets.token_urlsafe(32)
// (43 characters). An id from a cookie is accepted only if it is kFlaskSidMinLen to
// kFlaskSidMaxLen bytes of [A-Za-z0-9_-] - checked before any Redis I/O.
//
// Reads (GET) decode as the serializer's Flask-Session does: pickle reads pickle; msgpack tries
// msgpack, then plain JSON, then pickle; json tries JSON, then msgpack, then pickle (>= 0.7's
// fallbacks). A record no decoder takes - a pickle naming an object (Forbidden), msgspec's
// datetime extension, garbage - is never written over: the session is invalid.
//
// Writes are scripts that answer as record.h's do, so that record_write_outcome classifies them:
//   create : SET key value PX ttl NX                              1 done, 0 exists
//   update : only while the key still holds `expected` (the bytes read): SET ... PX ttl
//                                                                 1 done, 0 gone, -2 changed
//   touch  : PEXPIRE key ttl                                      1 done, 0 gone
//   claim  : only while the key still holds `expected`: DEL       1 done, 0 gone, -2 changed
//   delete : DEL key (redis_cmd_delete)
// An update answered "changed" (another writer was first: Flask itself rewrites the record on
// every response) is read again and the request's changes applied to what is there now
// (flask_apply_changes), so that a logout stays final and nobody's change is lost.
#pragma once

#include "common.h"
#include "record.h"
#include "resp.h"
#include "redis_cmd.h"
#include "session_data.h"

namespace sess {

enum class FlaskSerializer : uint8_t { Msgpack, Json, Pickle };

constexpr size_t kFlaskSidMinLen = 22;   // token_urlsafe(16): 128 bits
constexpr size_t kFlaskSidMaxLen = 128;

// An id as a cookie may carry it: length and charset (no Redis I/O before this).
bool flask_sid_valid(std::string_view sid) noexcept;

// A new id as the serializer's Flask-Session makes it: pickle -> str(uuid4()) (lowercase hex,
// 8-4-4-4-12, version 4, RFC 4122 variant); msgpack/json -> token_urlsafe(32). Replaces out.
// False if the CSPRNG failed.
bool flask_sid_new(FlaskSerializer ser, pstring& out) noexcept;
// The same from given random bytes (16 for uuid4, 32 for token_urlsafe): for the tests.
void flask_sid_from_random(FlaskSerializer ser, const unsigned char* rnd, pstring& out);

enum class FlaskRecordRead : uint8_t {
  Ok,
  Invalid,    // no decoder takes it (or not a dict of str keys, or an empty dict)
  Forbidden,  // a pickle opcode that names or builds an object: refused, nothing executed
  TooLarge,   // over a decoder's limits
  Error,      // allocation failure
};

// Decodes a record into out (the session's keys in the record's order).
FlaskRecordRead flask_record_decode(FlaskSerializer ser, std::string_view bytes,
                                    SessionData& out) noexcept;

// Appends the record of data in the serializer's format. permanent: a session nginx creates
// gets `_permanent: True` as its first key unless it has one (Flask-Session's new sessions).
// False if a value cannot be written in this format (see flask_pickle_write,
// flask_msgpack_write, flask_session_to_plain_json).
bool flask_record_encode(FlaskSerializer ser, const SessionData& data, bool permanent,
                         pstring& out) noexcept;

// Applies a request's changes (record.h) to data read again. False on a value that is not JSON.
bool flask_apply_changes(const SessionChanges& changes, SessionData& data) noexcept;

// The commands (replace out). ttl_ms > 0.
// The lookup: the record and its remaining TTL in one round trip (a script answering
// [GET key, PTTL key]), so that session_renew can tell when the app or nginx last wrote it.
void flask_cmd_read(std::string_view key, RedisArgs& out);
void flask_cmd_get(std::string_view key, RedisArgs& out);  // GET key (an update's re-read)
void flask_cmd_create(std::string_view key, std::string_view value, uint64_t ttl_ms,
                      RedisArgs& out);
void flask_cmd_update(std::string_view key, std::string_view expected, std::string_view value,
                      uint64_t ttl_ms, RedisArgs& out);
void flask_cmd_touch(std::string_view key, uint64_t ttl_ms, RedisArgs& out);
void flask_cmd_claim(std::string_view key, std::string_view expected, RedisArgs& out);

// The reply to flask_cmd_read: *value points at the GET part and *pttl_ms is the PTTL part
// (-2 no key, -1 no TTL). A reply of another shape (an error, say) is its own value with
// *pttl_ms = -1.
void flask_read_reply(const RespValue& reply, const RespValue** value, int64_t* pttl_ms) noexcept;

// When the record was last written, from its remaining TTL: Flask-Session and nginx write it
// with a TTL of the lifetime, so it was written lifetime - pttl ago. now (no renewal due) when
// the record has no TTL or one longer than the lifetime: a renewal never shortens a TTL.
uint64_t flask_record_written_at(uint64_t now, uint64_t lifetime_s, int64_t pttl_ms) noexcept;

}  // namespace sess
