// Redis keys and command argument vectors (see redis_cmd.h).
#include "redis_cmd.h"

#include <cstring>

#include <charconv>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

#if defined(__SSE2__)
namespace {

// 16 bytes as 32 lowercase hex digits, with SSE2 (every x86-64 CPU): the high and low nibbles
// interleaved, then '0' + n, plus 'a' - '0' - 10 where n > 9. A session id is 16 bytes, so the
// key of a Redis store's request is made in one go (about 20 instructions instead of 16 table
// copies).
void hex16(const unsigned char* in, char* out) noexcept {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in));
  const __m128i low4 = _mm_set1_epi8(0x0f);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), low4);
  const __m128i lo = _mm_and_si128(x, low4);
  const __m128i nine = _mm_set1_epi8(9);
  const __m128i zero = _mm_set1_epi8('0');
  const __m128i letters = _mm_set1_epi8('a' - '0' - 10);
  auto ascii = [&](__m128i n) {
    return _mm_add_epi8(_mm_add_epi8(n, zero), _mm_and_si128(_mm_cmpgt_epi8(n, nine), letters));
  };
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), ascii(_mm_unpacklo_epi8(hi, lo)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), ascii(_mm_unpackhi_epi8(hi, lo)));
}

}  // namespace
#endif

size_t redis_key_to(std::string_view prefix, const unsigned char* id, size_t id_len, char* buf) {
  char* p = buf;
  if (!prefix.empty()) std::memcpy(p, prefix.data(), prefix.size());
  p += prefix.size();
  size_t i = 0;
#if defined(__SSE2__)
  for (; i + 16 <= id_len; i += 16, p += 32) hex16(id + i, p);
#endif
  for (; i < id_len; i++, p += 2) std::memcpy(p, kHexPairs.pair[id[i]], 2);
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
