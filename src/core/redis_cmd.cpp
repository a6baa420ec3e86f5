// Redis keys and command argument vectors (see redis_cmd.h).
#include "redis_cmd.h"

#include <cstring>

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

}  // namespace

// The two hex digits of every byte value (the key of every request with the Redis store).
struct HexPairs {
  char pair[256][2];
  constexpr HexPairs() : pair() {
    for (int i = 0; i < 256; i++) {
      pair[i][0] = kHexLower[i >> 4];
      pair[i][1] = kHexLower[i & 0x0f];
    }
  }
};
constexpr HexPairs kHexPairs;

size_t redis_key_to(std::string_view prefix, const unsigned char* id, size_t id_len, char* buf) {
  char* p = buf;
  if (!prefix.empty()) std::memcpy(p, prefix.data(), prefix.size());
  p += prefix.size();
  for (size_t i = 0; i < id_len; i++, p += 2) std::memcpy(p, kHexPairs.pair[id[i]], 2);
  return static_cast<size_t>(p - buf);
}

void redis_key(std::string_view prefix, const unsigned char* id, size_t id_len, pstring& out) {
  const size_t start = out.size();
  out.resize(start + prefix.size() + 2 * id_len);
  redis_key_to(prefix, id, id_len, out.data() + start);
}

void redis_cmd_lookup(std::string_view key, RedisArgs& out) {
  out.clear();
  out.reserve(4);
  push(out, "GETRANGE");
  push(out, key);
  push(out, "0");
  push_uint(out, kMaxRecordLen);  // inclusive end: kMaxRecordLen + 1 bytes at most
}

void redis_cmd_delete(std::string_view key, RedisArgs& out) {
  out.clear();
  out.reserve(2);
  push(out, "DEL");
  push(out, key);
}

}  // namespace sess
