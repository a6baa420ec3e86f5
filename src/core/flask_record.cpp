// Flask-Session records (see flask_record.h).
#include "flask_record.h"

#include "base64url.h"
#include "crypto.h"
#include "flask_json.h"
#include "flask_msgpack.h"
#include "flask_pickle.h"
#include "flask_value.h"

#include <charconv>

namespace sess {

namespace {

void push(RedisArgs& out, std::string_view s) { out.emplace_back(s.data(), s.size()); }

void push_uint(RedisArgs& out, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.emplace_back(buf, static_cast<size_t>(r.ptr - buf));
}

void eval_head(std::string_view script, std::string_view key, RedisArgs& out) {
  out.clear();
  push(out, "EVAL");
  push(out, script);
  push(out, "1");
  push(out, key);
}

// SET ... NX answers nil (false in Lua) when the key exists.
constexpr std::string_view kCreateScript =
    "if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end return 0";

// Compare-and-set against the bytes the request read (a GET of another type is WRONGTYPE: an
// error reply, nothing written).
constexpr std::string_view kUpdateScript =
    "local v = redis.call('GET', KEYS[1]) "
    "if not v then return 0 end "
    "if v ~= ARGV[1] then return -2 end "
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1";

constexpr std::string_view kClaimScript =
    "local v = redis.call('GET', KEYS[1]) "
    "if not v then return 0 end "
    "if v ~= ARGV[1] then return -2 end "
    "redis.call('DEL', KEYS[1]) return 1";

bool sid_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

FlaskRecordRead from_tree(const FlaskValue& tree, SessionData& out) {
  if (tree.type != FlaskValue::Type::Dict || tree.items.empty()) return FlaskRecordRead::Invalid;
  if (!flask_session_from_tree(tree, false, out)) return FlaskRecordRead::Invalid;
  return FlaskRecordRead::Ok;
}

FlaskRecordRead read_pickle(std::string_view bytes, SessionData& out) {
  FlaskValue tree;
  switch (flask_pickle_read(bytes, tree)) {
    case PickleResult::Ok: return from_tree(tree, out);
    case PickleResult::Forbidden: return FlaskRecordRead::Forbidden;
    case PickleResult::TooLarge: return FlaskRecordRead::TooLarge;
    case PickleResult::Error: return FlaskRecordRead::Error;
    default: return FlaskRecordRead::Invalid;
  }
}

FlaskRecordRead read_msgpack(std::string_view bytes, SessionData& out) {
  FlaskValue tree;
  switch (flask_msgpack_read(bytes, tree)) {
    case MsgpackResult::Ok: return from_tree(tree, out);
    case MsgpackResult::TooLarge: return FlaskRecordRead::TooLarge;
    case MsgpackResult::Error: return FlaskRecordRead::Error;
    default: return FlaskRecordRead::Invalid;
  }
}

FlaskRecordRead read_json(std::string_view bytes, SessionData& out) {
  if (!flask_session_from_plain_json(bytes, out)) return FlaskRecordRead::Invalid;
  if (out.empty()) return FlaskRecordRead::Invalid;
  return FlaskRecordRead::Ok;
}

}  // namespace

bool flask_sid_valid(std::string_view sid) noexcept {
  if (sid.size() < kFlaskSidMinLen || sid.size() > kFlaskSidMaxLen) return false;
  for (char c : sid) {
    if (!sid_char(c)) return false;
  }
  return true;
}

void flask_sid_from_random(FlaskSerializer ser, const unsigned char* rnd, pstring& out) {
  out.clear();
  if (ser != FlaskSerializer::Pickle) {
    base64url_encode(std::string_view(reinterpret_cast<const char*>(rnd), 32), out);
    return;
  }
  static constexpr char hex[] = "0123456789abcdef";
  unsigned char b[16];
  for (size_t i = 0; i < 16; i++) b[i] = rnd[i];
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  for (size_t i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(hex[b[i] >> 4]);
    out.push_back(hex[b[i] & 0x0f]);
  }
}

bool flask_sid_new(FlaskSerializer ser, pstring& out) noexcept {
  unsigned char rnd[32];
  if (!random_bytes(rnd, sizeof(rnd))) return false;
  try {
    flask_sid_from_random(ser, rnd, out);
  } catch (...) {
    return false;
  }
  return true;
}

FlaskRecordRead flask_record_decode(FlaskSerializer ser, std::string_view bytes,
                                    SessionData& out) noexcept {
  try {
    FlaskRecordRead (*order[3])(std::string_view, SessionData&) = {read_pickle, nullptr, nullptr};
    switch (ser) {
      case FlaskSerializer::Pickle: break;
      case FlaskSerializer::Msgpack:
        order[0] = read_msgpack, order[1] = read_json, order[2] = read_pickle;
        break;
      case FlaskSerializer::Json:
        order[0] = read_json, order[1] = read_msgpack, order[2] = read_pickle;
        break;
    }
    // The first decoder that takes it; else the most telling refusal (an object in a pickle).
    FlaskRecordRead worst = FlaskRecordRead::Invalid;
    for (auto* read : order) {
      if (read == nullptr) break;
      out.clear();
      FlaskRecordRead res = read(bytes, out);
      if (res == FlaskRecordRead::Ok || res == FlaskRecordRead::Error) {
        if (res != FlaskRecordRead::Ok) out.clear();
        return res;
      }
      if (res == FlaskRecordRead::Forbidden && read == read_pickle &&
          ser != FlaskSerializer::Pickle && (bytes.empty() || bytes[0] != '\x80')) {
        res = FlaskRecordRead::Invalid;  // a fallback: only what starts as a pickle is one
      }
      if (res == FlaskRecordRead::Forbidden ||
          (res == FlaskRecordRead::TooLarge && worst == FlaskRecordRead::Invalid)) {
        worst = res;
      }
    }
    out.clear();
    return worst;
  } catch (...) {
    out.clear();
    return FlaskRecordRead::Error;
  }
}

bool flask_record_encode(FlaskSerializer ser, const SessionData& data, bool permanent,
                         pstring& out) noexcept {
  try {
    const bool add = permanent && data.get("_permanent") == nullptr;
    if (ser == FlaskSerializer::Json) {
      if (!add) return flask_session_to_plain_json(data, out);
      SessionData d(out.get_allocator().resource());
      d.reserve(data.size() + 1);
      d.append("_permanent", "true", false);
      for (const SessionValue& v : data.values()) d.append(v.key, v.text, v.is_string);
      return flask_session_to_plain_json(d, out);
    }
    FlaskValue tree;
    if (!flask_session_to_tree(data, tree)) return false;
    if (add) {
      FlaskValue t(FlaskValue::Type::Bool);
      t.b = true;
      tree.keys.insert(tree.keys.begin(), "_permanent");
      tree.items.insert(tree.items.begin(), std::move(t));
    }
    return ser == FlaskSerializer::Pickle ? flask_pickle_write(tree, out)
                                          : flask_msgpack_write(tree, out);
  } catch (...) {
    return false;
  }
}

bool flask_apply_changes(const SessionChanges& changes, SessionData& data) noexcept {
  try {
    if (changes.cleared()) data.clear();
    for (const auto& k : changes.unsets()) data.erase(k);
    for (const auto& [k, json] : changes.sets()) {
      SessionValue v(std::pmr::new_delete_resource());
      if (!decode_session_value(json, v)) return false;
      if (v.is_string) {
        data.set_string(k, v.text);
      } else {
        data.set_json(k, json);
      }
    }
    return true;
  } catch (...) {
    return false;
  }
}

// A missing key is a nil GET (Lua false) and PTTL -2; another type is GET's WRONGTYPE error.
constexpr std::string_view kReadScript =
    "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}";

void flask_cmd_read(std::string_view key, RedisArgs& out) { eval_head(kReadScript, key, out); }

void flask_cmd_get(std::string_view key, RedisArgs& out) {
  out.clear();
  push(out, "GET");
  push(out, key);
}

void flask_read_reply(const RespValue& reply, const RespValue** value, int64_t* pttl_ms) noexcept {
  if (reply.type == RespType::Array && reply.elements.size() == 2 &&
      reply.elements[1].type == RespType::Integer) {
    *value = &reply.elements[0];
    *pttl_ms = reply.elements[1].integer;
    return;
  }
  if (reply.type == RespType::Array && reply.elements.size() == 1) {
    *value = &reply.elements[0];  // (a Lua table ending in nil: cannot happen, PTTL is a number)
    *pttl_ms = -1;
    return;
  }
  *value = &reply;
  *pttl_ms = -1;
}

uint64_t flask_record_written_at(uint64_t now, uint64_t lifetime_s, int64_t pttl_ms) noexcept {
  const uint64_t lifetime_ms = lifetime_s * 1000;
  if (pttl_ms <= 0 || static_cast<uint64_t>(pttl_ms) >= lifetime_ms) return now;
  const uint64_t age = (lifetime_ms - static_cast<uint64_t>(pttl_ms)) / 1000;
  return age >= now ? 0 : now - age;
}

void flask_cmd_create(std::string_view key, std::string_view value, uint64_t ttl_ms,
                      RedisArgs& out) {
  eval_head(kCreateScript, key, out);
  push(out, value);
  push_uint(out, ttl_ms);
}

void flask_cmd_update(std::string_view key, std::string_view expected, std::string_view value,
                      uint64_t ttl_ms, RedisArgs& out) {
  eval_head(kUpdateScript, key, out);
  push(out, expected);
  push(out, value);
  push_uint(out, ttl_ms);
}

void flask_cmd_touch(std::string_view key, uint64_t ttl_ms, RedisArgs& out) {
  out.clear();
  push(out, "PEXPIRE");
  push(out, key);
  push_uint(out, ttl_ms);
}

void flask_cmd_claim(std::string_view key, std::string_view expected, RedisArgs& out) {
  eval_head(kClaimScript, key, out);
  push(out, expected);
}

}  // namespace sess
