// Session records in Redis, v2 (see record.h): commands, scripts and what their replies mean.
#include "record.h"

#include <algorithm>
#include <charconv>

namespace sess {

namespace {

// The scripts. Each touches only KEYS[1] (so every command works on any Redis Cluster slot),
// writes nothing unless its condition holds, and answers 1 (done) or 0 (nothing written). Hash
// fields are written one HSET/HDEL at a time: no unpack() stack limit, and Redis before 4.0
// takes HSET with one pair only. Without a shebang line (which Redis before 7.0 refuses), Redis
// checks maxmemory at a script's first write only, and only if that command may grow memory
// (HSET, not DEL/HDEL/EXPIRE): a script refused with OOM has written nothing, one that passed
// its first write runs to the end.

// ARGV[1] ttl (seconds), then field/value pairs. 0: the key exists.
constexpr std::string_view kCreateScript =
    "local k = KEYS[1] "
    "if redis.call('EXISTS', k) == 1 then return 0 end "
    "for i = 2, #ARGV, 2 do redis.call('HSET', k, ARGV[i], ARGV[i + 1]) end "
    "redis.call('EXPIRE', k, ARGV[1]) "
    "return 1";

// ARGV[1] ttl, ARGV[2] '1' to remove every field first, ARGV[3] n, ARGV[4 .. 3+n] fields to
// remove, then field/value pairs. 0: the key is not a hash (gone, or a v1 string record); -1:
// session_regenerate moved the session to another id meanwhile (kRegeneratedMarker). The
// fields set and removed are distinct (SessionChanges), so HSET goes first: at maxmemory an
// update that sets a key is refused as a whole, like v1's SET. A change that empties the hash
// leaves no key (Redis keeps no empty hash): still 1.
constexpr std::string_view kUpdateScript =
    "local k = KEYS[1] "
    "local t = redis.call('TYPE', k).ok "
    "if t ~= 'hash' then "
    "if t == 'string' and redis.call('GET', k) == '#session-regenerated' then return -1 end "
    "return 0 end "
    "if ARGV[2] == '1' then redis.call('DEL', k) end "
    "local n = tonumber(ARGV[3]) "
    "for i = 4 + n, #ARGV, 2 do redis.call('HSET', k, ARGV[i], ARGV[i + 1]) end "
    "for i = 4, 3 + n do redis.call('HDEL', k, ARGV[i]) end "
    "redis.call('EXPIRE', k, ARGV[1]) "
    "return 1";

// ARGV[1] ttl. Renewal: 1 done, 0 gone, -1 regenerated meanwhile (its cookie must not be
// re-issued: the new id's cookie is on its way to the browser).
constexpr std::string_view kTouchScript =
    "local k = KEYS[1] "
    "local t = redis.call('TYPE', k).ok "
    "if t == 'none' then return 0 end "
    "if t == 'string' and redis.call('GET', k) == '#session-regenerated' then return -1 end "
    "redis.call('EXPIRE', k, ARGV[1]) "
    "return 1";

// ARGV[1] the longest the marker stays (ms), ARGV[2] n, then the n field/value pairs the
// regenerating request loaded. session_regenerate takes the old id over: the record is replaced
// by kRegeneratedMarker for the rest of its TTL (at most ARGV[1]), so that a request that
// loaded the old id and changes it later learns that the session moved (and is refused)
// instead of being told it ended. Only if the record is still what the new id was made from:
// a change that another request made meanwhile would otherwise be lost with the old record.
// The marker is not a session: a lookup of the old id finds no session, as before.
// 1 taken over, 0 gone (a logout came first), -1 already moved (another session_regenerate),
// -2 changed meanwhile (nothing written). DEL first: at maxmemory Redis lets a script whose
// first write frees memory run to its end.
constexpr std::string_view kClaimScript =
    "local k = KEYS[1] "
    "local t = redis.call('TYPE', k).ok "
    "if t == 'none' then return 0 end "
    "if t == 'string' and redis.call('GET', k) == '#session-regenerated' then return -1 end "
    "if t ~= 'hash' then return -2 end "
    "local n = tonumber(ARGV[2]) "
    "if redis.call('HLEN', k) ~= n then return -2 end "
    "for i = 3, 2 + 2 * n, 2 do "
    "if redis.call('HGET', k, ARGV[i]) ~= ARGV[i + 1] then return -2 end end "
    "local ttl = redis.call('PTTL', k) "
    "local cap = tonumber(ARGV[1]) "
    "if ttl == -1 or ttl > cap then ttl = cap end "
    "if ttl < 1 then ttl = 1 end "
    "redis.call('DEL', k) "
    "redis.call('SET', k, '#session-regenerated', 'PX', ttl) "
    "return 1";

// Ends a session (destroy, logout, a change that empties it): 1 deleted (or already gone: 0
// is folded into Done by the caller), -1 session_regenerate moved it meanwhile (the marker is
// kept: it still refuses late changes through this id).
constexpr std::string_view kDestroyScript =
    "local k = KEYS[1] "
    "if redis.call('TYPE', k).ok == 'string' and "
    "redis.call('GET', k) == '#session-regenerated' then return -1 end "
    "return redis.call('DEL', k)";

// ARGV[1] the v1 JSON text, then field/value pairs. 0: not a string, or not that text.
constexpr std::string_view kMigrateScript =
    "local k = KEYS[1] "
    "if redis.call('TYPE', k).ok ~= 'string' or redis.call('GET', k) ~= ARGV[1] then "
    "return 0 end "
    "local ttl = redis.call('PTTL', k) "
    "redis.call('DEL', k) "
    "for i = 2, #ARGV, 2 do redis.call('HSET', k, ARGV[i], ARGV[i + 1]) end "
    "if ttl > 0 then redis.call('PEXPIRE', k, ttl) end "
    "return 1";

void push(RedisArgs& out, std::string_view s) { out.emplace_back(s.data(), s.size()); }

void push_uint(RedisArgs& out, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.emplace_back(buf, static_cast<size_t>(r.ptr - buf));
}

// EVAL script 1 key
void eval_head(std::string_view script, std::string_view key, RedisArgs& out) {
  push(out, "EVAL");
  push(out, script);
  push(out, "1");
  push(out, key);
}

// Every key of data and its value's JSON text, as hash field/value pairs.
void push_fields(const SessionData& data, RedisArgs& out) {
  for (const auto& v : data.values()) {
    push(out, v.key);
    out.emplace_back();  // a pstring with out's resource
    encode_session_value(v, out.back());
  }
}

bool starts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.substr(0, prefix.size()) == prefix;
}

bool is_wrongtype(const RespValue& r) noexcept {
  return r.type == RespType::Error && starts_with(r.str, "WRONGTYPE");
}

// A v1 record holds only keys that nginx can write (session_key_valid), like a v2 hash.
bool keys_valid(const SessionData& d) noexcept {
  return std::all_of(d.values().begin(), d.values().end(),
                     [](const SessionValue& v) { return session_key_valid(v.key); });
}

template <typename Pairs>
auto find_key(Pairs& v, std::string_view key) {
  return std::find_if(v.begin(), v.end(), [&](const auto& p) { return p.first == key; });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SessionChanges

void SessionChanges::set_string(std::string_view key, std::string_view value) {
  pstring json;
  append_json_string(value, json);
  set_json(key, json);
}

void SessionChanges::set_json(std::string_view key, std::string_view json_text) {
  const auto u = std::find(unset_.begin(), unset_.end(), key);
  if (u != unset_.end()) unset_.erase(u);
  const auto s = find_key(set_, key);
  if (s != set_.end()) {
    s->second.assign(json_text.data(), json_text.size());
  } else {
    set_.emplace_back(std::string(key), std::string(json_text));
  }
}

void SessionChanges::unset(std::string_view key) {
  const auto s = find_key(set_, key);
  if (s != set_.end()) set_.erase(s);
  // After clear every key not set again is gone anyway.
  if (clear_ || std::find(unset_.begin(), unset_.end(), key) != unset_.end()) return;
  unset_.emplace_back(key);
}

void SessionChanges::clear() {
  clear_ = true;
  set_.clear();
  unset_.clear();
}

// ---------------------------------------------------------------------------------------------
// Reads

void record_cmd_read(std::string_view key, RedisArgs& out) {
  out.clear();
  out.reserve(2);
  push(out, "HGETALL");
  push(out, key);
}

void record_cmd_read_v1(std::string_view key, RedisArgs& out) { redis_cmd_lookup(key, out); }

RecordRead record_read(const RespValue* reply, bool too_large, SessionData* out) {
  out->clear();
  if (too_large) return RecordRead::TooLarge;
  if (reply == nullptr) return RecordRead::Failed;
  switch (reply->type) {
    case RespType::Array:
      break;
    case RespType::Nil:  // not what HGETALL answers, but it means the same as an empty hash
    case RespType::NilArray:
      return RecordRead::Missing;
    case RespType::Error:
      return is_wrongtype(*reply) ? RecordRead::V1 : RecordRead::Failed;
    case RespType::Status:
    case RespType::Integer:
    case RespType::Bulk:
    default:
      return RecordRead::Failed;
  }

  const std::vector<RespValue>& e = reply->elements;
  if (e.empty()) return RecordRead::Missing;
  if (e.size() % 2 != 0 || e.size() / 2 > SessionData::kMaxKeys) return RecordRead::Invalid;
  SessionValue value(out->values().get_allocator().resource());
  for (size_t i = 0; i < e.size(); i += 2) {
    const RespValue& k = e[i];
    const RespValue& v = e[i + 1];
    if (k.type != RespType::Bulk || v.type != RespType::Bulk || !session_key_valid(k.str) ||
        out->get(k.str) != nullptr || !decode_session_value(v.str, value)) {
      out->clear();
      return RecordRead::Invalid;
    }
    if (value.is_string) {
      out->set_string(k.str, value.text);
    } else {
      out->set_json(k.str, value.text);
    }
  }
  return RecordRead::Found;
}

RecordRead record_read_v1(const RespValue* reply, bool too_large, SessionData* out,
                          pstring* json) {
  out->clear();
  if (json != nullptr) json->clear();
  if (too_large) return RecordRead::TooLarge;
  if (reply == nullptr) return RecordRead::Failed;
  switch (reply->type) {
    case RespType::Bulk:
      break;
    case RespType::Nil:  // not what GETRANGE answers, but it means the same
    case RespType::NilArray:
      return RecordRead::Missing;
    case RespType::Error:
      // Neither a hash (HGETALL said so) nor a string: not a session.
      return is_wrongtype(*reply) ? RecordRead::Invalid : RecordRead::Failed;
    case RespType::Status:
    case RespType::Integer:
    case RespType::Array:
    default:
      return RecordRead::Failed;
  }

  const std::string& text = reply->str;
  // An id that session_regenerate replaced holds no session any more: as if deleted.
  if (text.empty() || text == kRegeneratedMarker) return RecordRead::Missing;
  if (text.size() > kMaxRecordLen) return RecordRead::TooLarge;
  if (!out->decode(text) || out->empty() || !keys_valid(*out)) {
    out->clear();
    return RecordRead::Invalid;
  }
  if (json != nullptr) json->assign(text.data(), text.size());
  return RecordRead::Found;
}

void record_cmd_migrate(std::string_view key, std::string_view v1_json, const SessionData& data,
                        RedisArgs& out) {
  out.clear();
  out.reserve(5 + 2 * data.size());
  eval_head(kMigrateScript, key, out);
  push(out, v1_json);
  push_fields(data, out);
}

// ---------------------------------------------------------------------------------------------
// Writes

void record_cmd_create(std::string_view key, const SessionData& data, uint64_t ttl,
                       RedisArgs& out) {
  out.clear();
  out.reserve(5 + 2 * data.size());
  eval_head(kCreateScript, key, out);
  push_uint(out, ttl);
  push_fields(data, out);
}

void record_cmd_update(std::string_view key, const SessionChanges& changes, uint64_t ttl,
                       RedisArgs& out) {
  out.clear();
  out.reserve(7 + changes.unsets().size() + 2 * changes.sets().size());
  eval_head(kUpdateScript, key, out);
  push_uint(out, ttl);
  push(out, changes.cleared() ? "1" : "0");
  push_uint(out, changes.unsets().size());
  for (const auto& k : changes.unsets()) push(out, k);
  for (const auto& [k, v] : changes.sets()) {
    push(out, k);
    push(out, v);
  }
}

void record_cmd_touch(std::string_view key, uint64_t ttl, RedisArgs& out) {
  out.clear();
  out.reserve(4);
  eval_head(kTouchScript, key, out);
  push_uint(out, ttl);
}

void record_cmd_claim(std::string_view key, const SessionData& loaded, RedisArgs& out) {
  out.clear();
  out.reserve(6 + 2 * loaded.size());
  eval_head(kClaimScript, key, out);
  push_uint(out, kRegeneratedMarkerMaxMs);
  push_uint(out, loaded.size());
  push_fields(loaded, out);
}

void record_cmd_destroy(std::string_view key, RedisArgs& out) {
  out.clear();
  out.reserve(3);
  eval_head(kDestroyScript, key, out);
}

WriteOutcome claim_failure_outcome(WriteOutcome claim) noexcept {
  switch (claim) {
    case WriteOutcome::Gone:
    case WriteOutcome::Moved:
    case WriteOutcome::Changed:
      return claim;
    default:
      return WriteOutcome::Failed;
  }
}

WriteOutcome record_write_outcome(RecordWriteKind k, const RespValue* reply) noexcept {
  if (reply == nullptr) return WriteOutcome::Failed;
  if (reply->type == RespType::Error) return WriteOutcome::Refused;
  if (reply->type != RespType::Integer) return WriteOutcome::Failed;
  const int64_t n = reply->integer;
  switch (k) {
    case RecordWriteKind::Create:
      if (n == 1) return WriteOutcome::Done;
      if (n == 0) return WriteOutcome::Exists;
      break;
    case RecordWriteKind::Claim:
      if (n == -2) return WriteOutcome::Changed;
      [[fallthrough]];
    case RecordWriteKind::Update:
    case RecordWriteKind::Touch:
      if (n == -1) return WriteOutcome::Moved;
      [[fallthrough]];
    case RecordWriteKind::Migrate:
      if (n == 1) return WriteOutcome::Done;
      if (n == 0) return WriteOutcome::Gone;
      break;
    case RecordWriteKind::Delete:
      if (n >= 0) return WriteOutcome::Done;  // DEL of a missing key: gone either way
      if (n == -1) return WriteOutcome::Moved;  // destroy of a regenerated id
      break;
  }
  return WriteOutcome::Failed;  // a reply the command cannot give: whether it wrote is unknown
}

}  // namespace sess
