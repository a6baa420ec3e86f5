// Failed-login regulation (see login_limit.h).
#include "login_limit.h"

#include "duration.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>  // HMAC(): the one-shot form, not deprecated in OpenSSL 3

#include <algorithm>
#include <cstring>

namespace sess {

namespace {

bool lower_equal(std::string_view a, std::string_view lower) noexcept {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

bool zone_name_valid(std::string_view s) noexcept {
  if (s.empty() || s.size() > kLimitMaxZoneName) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// nginx's size syntax: digits with an optional k/K/m/M/g/G suffix.
bool parse_size(std::string_view s, uint64_t* out) noexcept {
  if (s.empty()) return false;
  uint64_t scale = 1;
  switch (s.back()) {
    case 'k': case 'K': scale = 1ull << 10; s.remove_suffix(1); break;
    case 'm': case 'M': scale = 1ull << 20; s.remove_suffix(1); break;
    case 'g': case 'G': scale = 1ull << 30; s.remove_suffix(1); break;
    default: break;
  }
  if (s.empty() || s.size() > 12) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  // ngx_parse_size's bound (the largest ssize_t): a size that overflows is refused, not wrapped.
  if (v > kLimitMaxZoneSize / scale) return false;
  *out = v * scale;
  return true;
}

bool parse_uint(std::string_view s, uint64_t max, uint64_t* out) noexcept {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

bool parse_time_ms(std::string_view s, uint64_t* out) noexcept {
  int64_t sec = 0;
  if (!parse_duration(s, &sec) || sec < 1 || static_cast<uint64_t>(sec) > kLimitMaxTime) {
    return false;
  }
  *out = static_cast<uint64_t>(sec) * 1000;
  return true;
}

bool keyed_id(const unsigned char* key, unsigned char tag, const unsigned char* data, size_t len,
              unsigned char* id) noexcept {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  // tag | data: the kinds can never produce the same input.
  unsigned char buf[1 + 256];
  if (len > sizeof(buf) - 1) return false;
  buf[0] = tag;
  if (len) std::memcpy(buf + 1, data, len);
  if (HMAC(EVP_sha256(), key, static_cast<int>(kLimitKeyLen), buf, len + 1, mac, &mac_len) ==
          nullptr ||
      mac_len < kLimitIdLen) {
    return false;
  }
  std::memcpy(id, mac, kLimitIdLen);
  return true;
}

// --- User names: the canonical form (see login_limit.h) ---

constexpr uint32_t kInvalid = 0x80000000u;  // | the byte: not UTF-8, kept as that byte

// The code point at s[i] and its length; a byte that does not start a well-formed sequence
// (overlong forms, surrogates and values above U+10FFFF included) is kInvalid | byte, length 1.
uint32_t decode(std::string_view s, size_t i, size_t* len) noexcept {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  *len = 1;
  if (c < 0x80) return c;
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
  if (n == 0 || c > 0xF4 || i + n > s.size()) return kInvalid | c;
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; k++) {
    if ((b(i + k) & 0xC0) != 0x80) return kInvalid | c;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid | c;
  *len = n;
  return cp;
}

// Unicode White_Space (what Python's str.strip() removes, as Django's CharField does).
bool is_space(uint32_t cp) noexcept {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Invisible format characters, dropped wherever they are: soft hyphen, zero-width space,
// non-joiner and joiner, word joiner, byte order mark.
bool is_ignorable(uint32_t cp) noexcept {
  return cp == 0xAD || (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || cp == 0xFEFF;
}

// Emits the canonical form of one code point (not a blank at either end of the name).
template <typename Emit>
void emit_folded(uint32_t cp, Emit& emit) noexcept {
  if (cp & kInvalid) {
    emit(static_cast<unsigned char>(cp & 0xFF));
    return;
  }
  if (is_ignorable(cp)) return;
  if (is_space(cp)) cp = ' ';
  // Compatibility forms of ASCII and Latin letters (as NFKC maps them), then case.
  if (cp >= 0xFF01 && cp <= 0xFF5E) {  // fullwidth ASCII
    cp -= 0xFEE0;
  } else if (cp >= 0x1D400 && cp <= 0x1D6A3) {  // mathematical bold, italic, script... A-Z a-z
    uint32_t k = (cp - 0x1D400) % 52;
    cp = k < 26 ? 'a' + k : 'a' + (k - 26);
  } else if (cp >= 0x1D7CE && cp <= 0x1D7FF) {  // mathematical digits
    cp = '0' + (cp - 0x1D7CE) % 10;
  } else if (cp >= 0x24B6 && cp <= 0x24E9) {  // circled letters
    cp = 'a' + (cp - 0x24B6) % 26;
  } else if (cp >= 0xFB00 && cp <= 0xFB06) {  // ligatures ff fi fl ffi ffl st st
    static const char* const kLig[7] = {"ff", "fi", "fl", "ffi", "ffl", "st", "st"};
    for (const char* p = kLig[cp - 0xFB00]; *p; p++) emit(static_cast<unsigned char>(*p));
    return;
  } else if (cp == 0xDF || cp == 0x1E9E) {  // sharp s (case folding: ss)
    emit('s');
    emit('s');
    return;
  } else if (cp == 0x132 || cp == 0x133) {  // ij ligature
    emit('i');
    emit('j');
    return;
  } else if (cp == 0x130 || cp == 0x131) {  // dotted capital I, dotless i
    cp = 'i';
  } else if (cp == 0x17F) {  // long s
    cp = 's';
  }
  // Case: ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic (upper to lower).
  if (cp >= 'A' && cp <= 'Z') {
    cp += 0x20;
  } else if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) {
    cp += 0x20;
  } else if (cp >= 0x100 && cp <= 0x17F) {
    if (cp == 0x178) {
      cp = 0xFF;
    } else if ((cp <= 0x137 || (cp >= 0x14A && cp <= 0x177)) && cp % 2 == 0) {
      cp += 1;
    } else if (((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) && cp % 2 == 1) {
      cp += 1;
    }
  } else if ((cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) || (cp >= 0x410 && cp <= 0x42F)) {
    cp += 0x20;
  } else if (cp >= 0x400 && cp <= 0x40F) {
    cp += 0x50;
  } else if (cp == 0x386) {
    cp = 0x3AC;
  } else if (cp >= 0x388 && cp <= 0x38A) {
    cp += 0x25;
  } else if (cp == 0x38C) {
    cp = 0x3CC;
  } else if (cp == 0x38E || cp == 0x38F) {
    cp += 0x3F;
  } else if (cp == 0x3C2) {  // final sigma
    cp = 0x3C3;
  }
  if (cp < 0x80) {
    emit(static_cast<unsigned char>(cp));
  } else if (cp < 0x800) {
    emit(static_cast<unsigned char>(0xC0 | (cp >> 6)));
    emit(static_cast<unsigned char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    emit(static_cast<unsigned char>(0xE0 | (cp >> 12)));
    emit(static_cast<unsigned char>(0x80 | ((cp >> 6) & 0x3F)));
    emit(static_cast<unsigned char>(0x80 | (cp & 0x3F)));
  } else {
    emit(static_cast<unsigned char>(0xF0 | (cp >> 18)));
    emit(static_cast<unsigned char>(0x80 | ((cp >> 12) & 0x3F)));
    emit(static_cast<unsigned char>(0x80 | ((cp >> 6) & 0x3F)));
    emit(static_cast<unsigned char>(0x80 | (cp & 0x3F)));
  }
}

// The canonical form of a user name, byte by byte (never longer than the name).
template <typename Emit>
void canonical(std::string_view user, Emit& emit) noexcept {
  // The name without blanks (white space, ignorables) at either end.
  size_t start = user.size(), end = 0, len = 0;
  for (size_t i = 0; i < user.size(); i += len) {
    uint32_t cp = decode(user, i, &len);
    if ((cp & kInvalid) || !(is_space(cp) || is_ignorable(cp))) {
      if (start == user.size()) start = i;
      end = i + len;
    }
  }
  for (size_t i = start; i < end; i += len) emit_folded(decode(user, i, &len), emit);
}

}  // namespace

bool login_limit_parse(const std::string_view* args, size_t n, LimitSpec* out,
                       LimitParseError* err) noexcept {
  LimitSpec spec;
  bool has_zone = false, has_attempts = false, has_window = false, has_ban = false,
       has_by = false;
  for (size_t i = 0; i < n; i++) {
    std::string_view a = args[i];
    size_t eq = a.find('=');
    std::string_view name = a.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : a.substr(eq + 1);
    err->index = i;
    bool* seen = nullptr;
    if (lower_equal(name, "zone")) {
      seen = &has_zone;
    } else if (lower_equal(name, "attempts")) {
      seen = &has_attempts;
    } else if (lower_equal(name, "window")) {
      seen = &has_window;
    } else if (lower_equal(name, "ban")) {
      seen = &has_ban;
    } else if (lower_equal(name, "by")) {
      seen = &has_by;
    } else {
      err->message = "unknown parameter (use zone=, attempts=, window=, ban=, by=)";
      return false;
    }
    if (*seen) {
      err->message = "duplicate parameter";
      return false;
    }
    *seen = true;
    if (eq == std::string_view::npos) {
      err->message = "parameter needs a value";
      return false;
    }
    if (seen == &has_zone) {
      size_t colon = value.rfind(':');
      if (colon == std::string_view::npos || !zone_name_valid(value.substr(0, colon))) {
        err->message = "invalid zone (use zone=NAME:SIZE, NAME of 1-64 of A-Z a-z 0-9 _ -)";
        return false;
      }
      if (!parse_size(value.substr(colon + 1), &spec.zone_size) || spec.zone_size == 0) {
        err->message = "invalid zone size (use e.g. zone=NAME:1m)";
        return false;
      }
      spec.zone = value.substr(0, colon);
      spec.zone_size_text = value.substr(colon + 1);
    } else if (seen == &has_attempts) {
      uint64_t v = 0;
      if (!parse_uint(value, kLimitMaxAttempts, &v) || v == 0) {
        err->message = "invalid attempts (a number from 1 to 100)";
        return false;
      }
      spec.attempts = static_cast<uint32_t>(v);
    } else if (seen == &has_window) {
      if (!parse_time_ms(value, &spec.window_ms)) {
        err->message = "invalid window (a time from 1s to 366d, e.g. 10m)";
        return false;
      }
    } else if (seen == &has_ban) {
      if (!parse_time_ms(value, &spec.ban_ms)) {
        err->message = "invalid ban (a time from 1s to 366d, e.g. 15m)";
        return false;
      }
    } else {
      if (lower_equal(value, "client")) {
        spec.by = LimitBy::Client;
      } else if (lower_equal(value, "user")) {
        spec.by = LimitBy::User;
      } else if (lower_equal(value, "both")) {
        spec.by = LimitBy::Both;
      } else {
        err->message = "invalid by (client, user or both)";
        return false;
      }
    }
  }
  if (!has_zone) {
    err->index = n;
    err->message = "needs zone=NAME:SIZE";
    return false;
  }
  *out = spec;
  return true;
}

bool limit_client_id(const unsigned char* key, const unsigned char* addr, size_t len,
                     unsigned char* id) noexcept {
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (len == 16 && std::memcmp(addr, kMapped, sizeof(kMapped)) == 0) {
    return keyed_id(key, '4', addr + 12, 4, id);
  }
  if (len == 4) return keyed_id(key, '4', addr, 4, id);
  if (len == 16) return keyed_id(key, '6', addr, 8, id);
  return keyed_id(key, 'x', nullptr, 0, id);
}

size_t limit_user_canonical(std::string_view user, char* out) noexcept {
  size_t n = 0;
  auto emit = [&](unsigned char c) { out[n++] = static_cast<char>(c); };
  canonical(user, emit);
  return n;
}

bool limit_user_id(const unsigned char* key, std::string_view user, unsigned char* id) noexcept {
  // The canonical form; longer than the buffer, it is digested as it comes: the id stays a
  // function of the whole canonical name.
  unsigned char buf[256];
  size_t n = 0;
  EVP_MD_CTX* ctx = nullptr;
  bool ok = true;
  auto emit = [&](unsigned char c) {
    if (n == sizeof(buf)) {
      if (ctx == nullptr) {
        ctx = EVP_MD_CTX_new();
        ok = ok && ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
      }
      ok = ok && EVP_DigestUpdate(ctx, buf, n) == 1;
      n = 0;
    }
    buf[n++] = c;
  };
  canonical(user, emit);
  if (ctx == nullptr && ok) return keyed_id(key, 'u', buf, n, id);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  ok = ok && EVP_DigestUpdate(ctx, buf, n) == 1 && EVP_DigestFinal_ex(ctx, digest, &dlen) == 1;
  EVP_MD_CTX_free(ctx);
  return ok && keyed_id(key, 'L', digest, dlen, id);
}

void limit_expire(LimitEntry& e, uint64_t now) noexcept {
  if (e.banned_until != 0 && now >= e.banned_until) {
    e.banned_until = 0;
    e.count = 0;
    e.next = 0;
    e.logged = 0;
    e.updated = now;
  }
}

uint64_t limit_retry_after(const LimitEntry& e, uint64_t now) noexcept {
  if (!limit_banned(e, now)) return 0;
  uint64_t left = e.banned_until - now;
  uint64_t sec = (left + 999) / 1000;
  return sec ? sec : 1;
}

uint32_t limit_failures(const LimitEntry& e, const uint64_t* stamps, uint64_t window_ms,
                        uint64_t now) noexcept {
  if (e.cap == 0) return 0;
  uint32_t count = e.count < e.cap ? e.count : e.cap;
  uint32_t first = (e.next + e.cap - count) % e.cap;
  uint32_t n = 0;
  for (uint32_t k = 0; k < count; k++) {
    uint64_t t = stamps[(first + k) % e.cap];
    // A stamp after now (another worker's clock reading, a moment ahead) is within the window.
    if (t >= now || now - t < window_ms) n++;
  }
  return n;
}

bool limit_charge(LimitEntry& e, uint64_t* stamps, const LimitSpec& spec, uint64_t now) noexcept {
  if (e.cap == 0) return false;
  stamps[e.next] = now;
  e.next = (e.next + 1) % e.cap;
  if (e.count < e.cap) e.count++;
  e.updated = now;
  if (limit_banned(e, now)) return false;
  if (limit_failures(e, stamps, spec.window_ms, now) >= spec.attempts) {
    e.banned_until = now + spec.ban_ms;
    e.logged = 0;
    return true;
  }
  return false;
}

bool limit_failed(LimitEntry& e, uint64_t now) noexcept {
  if (!limit_banned(e, now) || e.logged) return false;
  e.logged = 1;
  return true;
}

void limit_refund(LimitEntry& e, uint64_t* stamps, const LimitSpec& spec, uint64_t token,
                  uint64_t now) noexcept {
  if (e.cap == 0 || e.count == 0) return;
  // The ring's stamps in order, oldest first: find the newest equal to token, close the gap.
  uint32_t n = e.count;
  uint32_t first = (e.next + e.cap - n) % e.cap;
  int64_t hit = -1;
  for (uint32_t k = n; k-- > 0;) {
    if (stamps[(first + k) % e.cap] == token) {
      hit = k;
      break;
    }
  }
  if (hit < 0) return;
  for (uint32_t k = static_cast<uint32_t>(hit); k + 1 < n; k++) {
    stamps[(first + k) % e.cap] = stamps[(first + k + 1) % e.cap];
  }
  e.count = n - 1;
  e.next = (e.next + e.cap - 1) % e.cap;
  e.updated = now;
  if (e.banned_until != 0 && limit_failures(e, stamps, spec.window_ms, now) < spec.attempts) {
    e.banned_until = 0;
    e.logged = 0;
  }
}

void limit_clear(LimitEntry& e) noexcept {
  e.banned_until = 0;
  e.count = 0;
  e.next = 0;
  e.logged = 0;
}

bool limit_idle(const LimitEntry& e, const uint64_t* stamps, const LimitSpec& spec,
                uint64_t now) noexcept {
  return !limit_banned(e, now) && limit_failures(e, stamps, spec.window_ms, now) == 0;
}

}  // namespace sess
