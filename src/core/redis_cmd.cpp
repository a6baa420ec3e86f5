// Redis keys, command argument vectors and reply classification (see redis_cmd.h).
#include "redis_cmd.h"

#include <charconv>

namespace sess {

namespace {

constexpr char kHexLower[] = "0123456789abcdef";

void push(RedisArgs& out, std::string_view s) { out.emplace_back(s.data(), s.size()); }

void push_uint(RedisArgs& out, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.emplace_back(buf, static_cast<size_t>(r.ptr - buf));
}

// SET key value EX ttl NX|XX
void set_cmd(std::string_view key, std::string_view value, uint64_t ttl, std::string_view cond,
             RedisArgs& out) {
  out.clear();
  out.reserve(6);
  push(out, "SET");
  push(out, key);
  push(out, value);
  push(out, "EX");
  push_uint(out, ttl);
  push(out, cond);
}

bool starts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

void redis_key(std::string_view prefix, const unsigned char* id, size_t id_len, pstring& out) {
  out.reserve(out.size() + prefix.size() + 2 * id_len);
  out.append(prefix.data(), prefix.size());
  for (size_t i = 0; i < id_len; i++) {
    out.push_back(kHexLower[id[i] >> 4]);
    out.push_back(kHexLower[id[i] & 0x0f]);
  }
}

void redis_cmd_lookup(std::string_view key, RedisArgs& out) {
  out.clear();
  out.reserve(4);
  push(out, "GETRANGE");
  push(out, key);
  push(out, "0");
  push_uint(out, kMaxRecordLen);  // inclusive end: kMaxRecordLen + 1 bytes at most
}

void redis_cmd_create(std::string_view key, std::string_view value, uint64_t ttl,
                      RedisArgs& out) {
  set_cmd(key, value, ttl, "NX", out);
}

void redis_cmd_update(std::string_view key, std::string_view value, uint64_t ttl,
                      RedisArgs& out) {
  set_cmd(key, value, ttl, "XX", out);
}

void redis_cmd_touch(std::string_view key, uint64_t ttl, RedisArgs& out) {
  out.clear();
  out.reserve(3);
  push(out, "EXPIRE");
  push(out, key);
  push_uint(out, ttl);
}

void redis_cmd_delete(std::string_view key, RedisArgs& out) {
  out.clear();
  out.reserve(2);
  push(out, "DEL");
  push(out, key);
}

// KEYS[1] old, KEYS[2] new, ARGV[1] value, ARGV[2] ttl. 1: moved; 0: the old record is gone (or
// the new id exists), nothing written.
constexpr std::string_view kMoveScript =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
    "if not redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2], 'NX') then return 0 end "
    "redis.call('DEL', KEYS[1]) return 1";

void redis_cmd_move(std::string_view old_key, std::string_view new_key, std::string_view value,
                    uint64_t ttl, RedisArgs& out) {
  out.clear();
  out.reserve(7);
  push(out, "EVAL");
  push(out, kMoveScript);
  push(out, "2");
  push(out, old_key);
  push(out, new_key);
  push(out, value);
  push_uint(out, ttl);
}

LookupOutcome redis_lookup_outcome(const RedisReplyView& r) noexcept {
  switch (r.type) {
    case ReplyType::String:
      if (r.str.empty()) return LookupOutcome::Missing;
      return r.str.size() > kMaxRecordLen ? LookupOutcome::TooLarge : LookupOutcome::Found;
    case ReplyType::Nil:  // not what GETRANGE answers, but it means the same
      return LookupOutcome::Missing;
    case ReplyType::Error:
      return starts_with(r.str, "WRONGTYPE") ? LookupOutcome::WrongType : LookupOutcome::Failed;
    case ReplyType::None:
    case ReplyType::Status:
    case ReplyType::Integer:
    case ReplyType::Array:
    default:
      return LookupOutcome::Failed;
  }
}

WriteOutcome redis_write_outcome(WriteKind k, const RedisReplyView& r) noexcept {
  if (r.type == ReplyType::None) return WriteOutcome::Failed;
  if (r.type == ReplyType::Error) return WriteOutcome::Refused;
  switch (k) {
    case WriteKind::Create:
    case WriteKind::Update:
      if (r.type == ReplyType::Status && r.str == "OK") return WriteOutcome::Done;
      if (r.type == ReplyType::Nil) {
        return k == WriteKind::Create ? WriteOutcome::Exists : WriteOutcome::Gone;
      }
      break;
    case WriteKind::Touch:
      if (r.type == ReplyType::Integer && r.integer == 1) return WriteOutcome::Done;
      if (r.type == ReplyType::Integer && r.integer == 0) return WriteOutcome::Gone;
      break;
    case WriteKind::Delete:
      if (r.type == ReplyType::Integer && r.integer >= 0) return WriteOutcome::Done;
      break;
    case WriteKind::Move:
      if (r.type == ReplyType::Integer && r.integer == 1) return WriteOutcome::Done;
      if (r.type == ReplyType::Integer && r.integer == 0) return WriteOutcome::Gone;
      break;
  }
  return WriteOutcome::Failed;  // a reply the command cannot give: whether it wrote is unknown
}

}  // namespace sess
