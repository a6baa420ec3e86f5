// Shared helpers for the pure C++17 core. No nginx headers here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <string>
#include <cstring>
#include <string_view>

namespace sess {

// All request-lifetime strings in the core are std::pmr::string so that the nginx glue can back
// them with the request pool (see src/ngx_http_session_pool.h); unit tests use the default heap.
using pstring = std::pmr::string;

// True for bytes 0x00-0x1f and 0x7f.
constexpr bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// The value of one hex digit, or -1.
inline int hex_value(char ch) noexcept {
  const auto c = static_cast<unsigned char>(ch);
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// s without leading and trailing SP and HTAB (the blanks around HTTP header values and cookies).
inline std::string_view trim_wsp(std::string_view s) noexcept {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) b++;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) e--;
  return s.substr(b, e - b);
}

// Big-endian 64-bit integers in byte buffers (timestamps in envelopes and CSRF cookies).
inline void put_be64(unsigned char* p, uint64_t v) noexcept {
  for (int i = 7; i >= 0; i--) {
    p[i] = static_cast<unsigned char>(v);
    v >>= 8;
  }
}

inline uint64_t get_be64(const unsigned char* p) noexcept {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

// Unaligned native-order loads (memcpy: no alignment or aliasing assumptions), for the word-wise
// scans and compares below.
inline uint64_t load_u64(const char* p) noexcept {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint32_t load_u32(const char* p) noexcept {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// True if any byte of s is a control byte (CR, LF, NUL, TAB, DEL, ...): bytes below 0x20 and
// 0x7f. Inline and without a branch per byte (variables check their value on every read): words
// at a time, the last one overlapping, with the exact "some byte is below 0x20" and "some byte is
// 0x7f" word tests (no false positives: a borrow only crosses a byte that is itself below).
namespace common_detail {
template <typename W>
constexpr W ctl_in_word(W w) noexcept {
  constexpr W kOnes = static_cast<W>(~W(0)) / 0xff;  // 0x0101...
  constexpr W kHigh = kOnes * 0x80;
  const W del = w ^ (kOnes * 0x7f);
  return ((w - kOnes * 0x20) & ~w & kHigh) | ((del - kOnes) & ~del & kHigh);
}
}  // namespace common_detail

inline bool has_ctl(std::string_view s) noexcept {
  const char* p = s.data();
  const size_t n = s.size();
  if (n >= 8) {
    uint64_t bad = common_detail::ctl_in_word(load_u64(p + n - 8));
    for (size_t i = 0; i + 8 < n; i += 8) bad |= common_detail::ctl_in_word(load_u64(p + i));
    return bad != 0;
  }
  if (n >= 4) {
    using common_detail::ctl_in_word;
    return (ctl_in_word(load_u32(p)) | ctl_in_word(load_u32(p + n - 4))) != 0;
  }
  bool bad = false;
  for (size_t i = 0; i < n; i++) bad |= is_ctl(static_cast<unsigned char>(p[i]));
  return bad;
}

// True if s has a byte equal to c: the word test of has_ctl (a zero byte in s ^ c repeated),
// exact too, for short strings checked per request (a cookie name's '=').
namespace common_detail {
template <typename W>
constexpr W byte_in_word(W w, unsigned char c) noexcept {
  constexpr W kOnes = static_cast<W>(~W(0)) / 0xff;
  const W x = w ^ (kOnes * c);
  return (x - kOnes) & ~x & (kOnes * 0x80);
}
}  // namespace common_detail

inline bool has_byte(std::string_view s, unsigned char c) noexcept {
  using common_detail::byte_in_word;
  const char* p = s.data();
  const size_t n = s.size();
  if (n >= 8) {
    uint64_t hit = byte_in_word(load_u64(p + n - 8), c);
    for (size_t i = 0; i + 8 < n; i += 8) hit |= byte_in_word(load_u64(p + i), c);
    return hit != 0;
  }
  if (n >= 4) return (byte_in_word(load_u32(p), c) | byte_in_word(load_u32(p + n - 4), c)) != 0;
  bool hit = false;
  for (size_t i = 0; i < n; i++) hit |= static_cast<unsigned char>(p[i]) == c;
  return hit;
}

// a[0..n) == b[0..n), for the short strings of the request path (cookie names, session keys):
// overlapping word loads instead of a call to memcmp. Not constant-time.
inline bool bytes_equal(const char* a, const char* b, size_t n) noexcept {
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (load_u64(a + i) != load_u64(b + i)) return false;
    }
    return load_u64(a + n - 8) == load_u64(b + n - 8);
  }
  if (n >= 4) return load_u32(a) == load_u32(b) && load_u32(a + n - 4) == load_u32(b + n - 4);
  for (size_t i = 0; i < n; i++) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

inline bool bytes_equal(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && bytes_equal(a.data(), b.data(), a.size());
}

// Constant-time comparison: time depends only on the lengths (32 bytes a round as two 16-byte
// vectors, the last round overlapping; words, the last one overlapping, below 32 bytes; bytes
// below 8), so a client does not learn how much of a MAC, tag or cached cookie its guess shares.
inline bool ct_equal(std::string_view a, std::string_view b) noexcept {
  const size_t n = a.size();
  if (n != b.size()) return false;
  const char* p = a.data();
  const char* q = b.data();
  if (n < 8) {
    unsigned d = 0;
    for (size_t i = 0; i < n; i++) d |= static_cast<unsigned char>(p[i] ^ q[i]);
    return d == 0;
  }
  if (n < 32) {
    uint64_t d = load_u64(p + n - 8) ^ load_u64(q + n - 8);
    for (size_t i = 0; i + 8 < n; i += 8) d |= load_u64(p + i) ^ load_u64(q + i);
    return d == 0;
  }
  // (A GCC/Clang vector type: SSE2 on x86-64, NEON on arm64, plain words elsewhere.)
  typedef uint64_t v2u64 __attribute__((vector_size(16)));
  auto xor32 = [](const char* x, const char* y) noexcept {
    v2u64 x0, x1, y0, y1;
    std::memcpy(&x0, x, 16);
    std::memcpy(&x1, x + 16, 16);
    std::memcpy(&y0, y, 16);
    std::memcpy(&y1, y + 16, 16);
    return (x0 ^ y0) | (x1 ^ y1);
  };
  v2u64 d = xor32(p + n - 32, q + n - 32);
  for (size_t i = 0; i + 32 < n; i += 32) d |= xor32(p + i, q + i);
  return (d[0] | d[1]) == 0;
}

}  // namespace sess
