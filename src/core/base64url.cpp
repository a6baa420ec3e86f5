#include "base64url.h"

#include <array>

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

}  // namespace

size_t base64url_encoded_len(size_t n) noexcept {
  // Every full group of 3 bytes becomes 4 characters; a tail of 1 or 2 bytes becomes 2 or 3.
  return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

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
