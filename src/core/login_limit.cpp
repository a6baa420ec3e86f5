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

unsigned char fold(char ch) noexcept {
  auto c = static_cast<unsigned char>(ch);
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c - 'A' + 'a') : c;
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

bool limit_user_id(const unsigned char* key, std::string_view user, unsigned char* id) noexcept {
  // Names longer than the buffer are digested first: the id stays a function of the whole
  // folded name.
  unsigned char folded[256];
  if (user.size() > sizeof(folded)) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    if (ctx == nullptr) return false;
    bool ok = EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
    for (size_t off = 0; ok && off < user.size(); off += sizeof(folded)) {
      size_t m = std::min(sizeof(folded), user.size() - off);
      for (size_t i = 0; i < m; i++) folded[i] = fold(user[off + i]);
      ok = EVP_DigestUpdate(ctx, folded, m) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, digest, &dlen) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) return false;
    return keyed_id(key, 'L', digest, dlen, id);
  }
  for (size_t i = 0; i < user.size(); i++) folded[i] = fold(user[i]);
  return keyed_id(key, 'u', folded, user.size(), id);
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
