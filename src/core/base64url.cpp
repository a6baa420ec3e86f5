#include "base64url.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SESS_BASE64URL_SSSE3 1
#endif

namespace sess {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr unsigned char kInvalid = 0xff;

// Reverse of kAlphabet: the 6-bit value of each character, kInvalid elsewhere ('=', '+', '/',
// whitespace and all non-ASCII bytes included).
constexpr std::array<unsigned char, 256> make_decode_table() {
  std::array<unsigned char, 256> t{};
  for (auto& v : t) v = kInvalid;
  for (unsigned i = 0; i < 64; i++) {
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<unsigned char>(i);
  }
  return t;
}

constexpr std::array<unsigned char, 256> kDecode = make_decode_table();

// The same, per position in a group of four characters: the character's 6 bits already shifted
// to where they go in the group's 24 bits (18, 12, 6, 0), and kBadChar (a bit above those 24)
// for a character outside the alphabet. OR-ing the four gives the group's bytes and, in one
// test, whether any character was bad (about a third fewer instructions a group than looking
// the values up, testing them and shifting them).
constexpr uint32_t kBadChar = 1u << 24;
constexpr std::array<uint32_t, 256> make_shifted_table(unsigned shift) {
  std::array<uint32_t, 256> t{};
  for (unsigned c = 0; c < 256; c++) {
    t[c] = kDecode[c] == kInvalid ? kBadChar : uint32_t{kDecode[c]} << shift;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kAt18 = make_shifted_table(18);
constexpr std::array<uint32_t, 256> kAt12 = make_shifted_table(12);
constexpr std::array<uint32_t, 256> kAt6 = make_shifted_table(6);
constexpr std::array<uint32_t, 256> kAt0 = make_shifted_table(0);

#if SESS_BASE64URL_SSSE3
// 16 characters to 12 bytes at once, on CPUs with SSSE3 (every x86-64 since 2006-2011; asked once,
// the scalar loop below otherwise): false if one of them is outside the alphabet (d then
// unspecified). Writes exactly 12 bytes. Byte shuffles as table lookups by nibble (the way of
// W. Mula's base64 decoders, with tables for the URL alphabet):
// - valid: each high nibble has a class bit (kHighClass), and each low nibble the classes it is
//   invalid in (kLowInvalid); a character is in the alphabet iff the two share no bit.
//   '-' is 2D; '0'-'9' 30-39; 'A'-'O' 41-4F, 'a'-'o' 61-6F; 'P'-'Z' 50-5A and '_' 5F;
//   'p'-'z' 70-7A; every other high nibble (bytes >= 0x80 too) has the class valid nowhere.
// - value: the character plus an offset by high nibble (kOffset), '_' taking slot 13 (5 + 8).
// Then four 6-bit values to 24 bits (multiply-adds) and each group's three bytes in order.
__attribute__((target("ssse3"), always_inline)) inline bool decode16(const unsigned char* s,
                                                                    unsigned char* d) noexcept {
  const __m128i kHighClass = _mm_setr_epi8(32, 32, 1, 2, 4, 8, 4, 16, 32, 32, 32, 32, 32, 32, 32,
                                           32);
  const __m128i kLowInvalid = _mm_setr_epi8(37, 33, 33, 33, 33, 33, 33, 33, 33, 33, 35, 59, 59, 58,
                                            59, 51);
  const __m128i kOffset = _mm_setr_epi8(0, 0, 62 - '-', 52 - '0', -'A', -'A', 26 - 'a', 26 - 'a', 0,
                                        0, 0, 0, 0, 63 - '_', 0, 0);
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
  const __m128i nibble = _mm_set1_epi8(0x0f);
  const __m128i high = _mm_and_si128(_mm_srli_epi32(v, 4), nibble);
  const __m128i low = _mm_and_si128(v, nibble);
  const __m128i bad = _mm_and_si128(_mm_shuffle_epi8(kLowInvalid, low),
                                    _mm_shuffle_epi8(kHighClass, high));
  if (_mm_movemask_epi8(_mm_cmpeq_epi8(bad, _mm_setzero_si128())) != 0xffff) return false;
  const __m128i under = _mm_and_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('_')), _mm_set1_epi8(8));
  const __m128i values = _mm_add_epi8(v, _mm_shuffle_epi8(kOffset, _mm_add_epi8(high, under)));
  // (a, b) -> a * 64 + b in each 16-bit lane; (x, y) -> x * 4096 + y in each 32-bit lane.
  const __m128i pairs = _mm_maddubs_epi16(values, _mm_set1_epi32(0x01400140));
  const __m128i groups = _mm_madd_epi16(pairs, _mm_set1_epi32(0x00011000));
  // Each lane holds its group's 24 bits low byte first: bytes 2, 1, 0 of every lane.
  const __m128i out = _mm_shuffle_epi8(
      groups, _mm_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(d), out);
  const uint32_t last = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_srli_si128(out, 8)));
  std::memcpy(d + 8, &last, 4);
  return true;
}

// The whole blocks of 16 characters of s[0..n) into d (their constants loaded once): the
// characters done, or n + 1 if one of them is outside the alphabet.
__attribute__((target("ssse3"))) size_t decode_blocks(const unsigned char* s, size_t n,
                                                       unsigned char* d) noexcept {
  size_t i = 0;
  for (; i + 16 <= n; i += 16, d += 12) {
    if (!decode16(s + i, d)) return n + 1;
  }
  return i;
}

bool cpu_has_ssse3() noexcept {
  __builtin_cpu_init();
  return __builtin_cpu_supports("ssse3");
}

const bool kHaveSsse3 = cpu_has_ssse3();
#endif

}  // namespace

void base64url_encode_to(const unsigned char* in, size_t n, char* dst) noexcept {
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = uint32_t{in[i]} << 16 | uint32_t{in[i + 1]} << 8 | in[i + 2];
    *dst++ = kAlphabet[v >> 18];
    *dst++ = kAlphabet[(v >> 12) & 63];
    *dst++ = kAlphabet[(v >> 6) & 63];
    *dst++ = kAlphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = uint32_t{in[i]} << 16;
    *dst++ = kAlphabet[v >> 18];
    *dst++ = kAlphabet[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = uint32_t{in[i]} << 16 | uint32_t{in[i + 1]} << 8;
    *dst++ = kAlphabet[v >> 18];
    *dst++ = kAlphabet[(v >> 12) & 63];
    *dst++ = kAlphabet[(v >> 6) & 63];
  }
}

void base64url_encode(std::string_view in, pstring& out) {
  size_t old = out.size();
  out.resize(old + base64url_encoded_len(in.size()));
  base64url_encode_to(reinterpret_cast<const unsigned char*>(in.data()), in.size(),
                      out.data() + old);
}

size_t base64url_decoded_len(size_t n) noexcept {
  return n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
}

bool base64url_decode(std::string_view in, pstring& out) {
  if (in.size() % 4 == 1) return false;  // a single trailing character carries only 6 bits
  size_t old = out.size();
  out.resize(old + base64url_decoded_len(in.size()));
  return base64url_decode_to(in, reinterpret_cast<unsigned char*>(out.data() + old));
}

bool base64url_decode_to(std::string_view in, unsigned char* d) noexcept {
  const size_t n = in.size();
  if (n % 4 == 1) return false;  // a single trailing character carries only 6 bits
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  size_t i = 0;
#if SESS_BASE64URL_SSSE3
  if (kHaveSsse3 && n >= 16) {
    i = decode_blocks(s, n, d);
    if (i > n) return false;
    d += i / 16 * 12;
  }
#endif
  for (; i + 4 <= n; i += 4, d += 3) {
    const uint32_t v = kAt18[s[i]] | kAt12[s[i + 1]] | kAt6[s[i + 2]] | kAt0[s[i + 3]];
    if (v & kBadChar) return false;
    d[0] = static_cast<unsigned char>(v >> 16);
    d[1] = static_cast<unsigned char>(v >> 8);
    d[2] = static_cast<unsigned char>(v);
  }
  if (n - i == 2) {
    unsigned a = kDecode[s[i]], b = kDecode[s[i + 1]];
    if ((a | b) & 0xc0) return false;
    if (b & 0x0f) return false;  // non-canonical: the 4 unused low bits must be zero
    *d++ = static_cast<unsigned char>(a << 2 | b >> 4);
  } else if (n - i == 3) {
    unsigned a = kDecode[s[i]], b = kDecode[s[i + 1]], c = kDecode[s[i + 2]];
    if ((a | b | c) & 0xc0) return false;
    if (c & 0x03) return false;  // non-canonical: the 2 unused low bits must be zero
    uint32_t v = a << 10 | b << 4 | c >> 2;
    *d++ = static_cast<unsigned char>(v >> 8);
    *d++ = static_cast<unsigned char>(v);
  }
  return true;
}

}  // namespace sess
