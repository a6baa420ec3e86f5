// Unit tests for csrf.h: the login form's CSRF cookie (freshness, format) and token (binding,
// rotation, duplicates).
#include "csrf.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base64url.h"

using sess::KeyRing;
using sess::pstring;

namespace {

const std::string kSecretA = "secret-A-0123456789abcdefghijklmnopqrstuvwxyz";
const std::string kSecretB = "secret-B-0123456789abcdefghijklmnopqrstuvwxyz";
const std::string kSecretC = "secret-C-0123456789abcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kName = "session_csrf";
constexpr uint64_t kNow = 1700000000;

std::string b64(std::string_view raw) {
  pstring out;
  sess::base64url_encode(raw, out);
  return std::string(out);
}

// The raw bytes of a cookie: nonce bytes `fill` | issued (big-endian), built here, not by csrf.
std::string raw_cookie(uint64_t issued, char fill = 'n') {
  std::string raw(sess::kCsrfNonceLen, fill);
  for (int shift = 56; shift >= 0; shift -= 8) raw.push_back(static_cast<char>(issued >> shift));
  return raw;
}

std::string cookie(uint64_t issued, char fill = 'n') { return b64(raw_cookie(issued, fill)); }

void add(KeyRing& ring, const std::string& secret) { ASSERT_TRUE(ring.add_secret(secret)); }

std::string token(const KeyRing& ring, size_t key, std::string_view name, std::string_view raw) {
  pstring out;
  EXPECT_TRUE(sess::csrf_token(ring, key, name, raw, out));
  return std::string(out);
}

bool verify(const KeyRing& ring, std::string_view name, const std::vector<std::string>& cookies,
            std::string_view tok, uint64_t now = kNow) {
  std::vector<std::string_view> views(cookies.begin(), cookies.end());
  return sess::csrf_verify(ring, name, views.data(), views.size(), tok, now);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// csrf_cookie_fresh

struct FreshCase {
  const char* what;
  uint64_t now;
  uint64_t issued;
  bool fresh;
};

TEST(CsrfCookieFresh, IssuedTimeWindow) {
  const FreshCase cases[] = {
      {"issued now", kNow, kNow, true},
      {"a second old", kNow, kNow - 1, true},
      {"last second of the lifetime", kNow, kNow - sess::kCsrfLifetime + 1, true},
      {"exactly the lifetime old", kNow, kNow - sess::kCsrfLifetime, false},
      {"a day old", kNow, kNow - 86400, false},
      {"issued at 0", kNow, 0, false},
      {"a second ahead", kNow, kNow + 1, true},
      {"ahead by the skew", kNow, kNow + sess::kCsrfSkew, true},
      {"ahead by more than the skew", kNow, kNow + sess::kCsrfSkew + 1, false},
      {"an hour ahead", kNow, kNow + 3600, false},
      {"far future", kNow, UINT64_MAX, false},
      {"clock at 0, issued at 0", 0, 0, true},
      {"clock at 0, issued within the skew", 0, sess::kCsrfSkew, true},
      {"clock at 0, issued beyond the skew", 0, sess::kCsrfSkew + 1, false},
      {"clock at its end, issued then", UINT64_MAX, UINT64_MAX, true},
      {"clock at its end, issued at 0", UINT64_MAX, 0, false},
  };
  for (const FreshCase& c : cases) {
    SCOPED_TRACE(c.what);
    pstring raw("junk");
    EXPECT_EQ(sess::csrf_cookie_fresh(cookie(c.issued), c.now, raw), c.fresh);
    if (c.fresh) {
      EXPECT_EQ(std::string(raw), raw_cookie(c.issued));
    } else {
      EXPECT_TRUE(raw.empty());
    }
  }
}

TEST(CsrfCookieFresh, MalformedValues) {
  const std::string good = cookie(kNow);
  ASSERT_EQ(good.size(), 32u);
  const std::string raw = raw_cookie(kNow);
  const std::pair<const char*, std::string> cases[] = {
      {"empty", ""},
      {"not base64url", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"},
      {"standard base64 '+'", "+" + good.substr(1)},
      {"standard base64 '/'", "/" + good.substr(1)},
      {"padding", good + "=="},
      {"one character short", good.substr(1)},
      {"one character long", good + "A"},
      {"23 bytes", b64(raw.substr(1))},
      {"25 bytes", b64(raw + "x")},
      {"48 bytes", b64(raw + raw)},
      {"longer than kCsrfMaxCookieLen", std::string(sess::kCsrfMaxCookieLen + 1, 'A')},
      {"DQUOTEd", "\"" + good + "\""},
      {"trailing space", good + " "},
      {"embedded NUL", good.substr(0, 10) + std::string(1, '\0') + good.substr(11)},
  };
  for (const auto& [what, value] : cases) {
    SCOPED_TRACE(what);
    pstring out("junk");
    EXPECT_FALSE(sess::csrf_cookie_fresh(value, kNow, out));
    EXPECT_TRUE(out.empty());
  }
}

// ---------------------------------------------------------------------------------------------
// csrf_new_cookie

TEST(CsrfNewCookie, FreshRandomAndWellFormed) {
  pstring a("prefix:");
  pstring b;
  ASSERT_TRUE(sess::csrf_new_cookie(kNow, a));
  ASSERT_TRUE(sess::csrf_new_cookie(kNow, b));
  ASSERT_EQ(a.compare(0, 7, "prefix:"), 0);  // appends
  const std::string va = std::string(a).substr(7);
  EXPECT_EQ(va.size(), sess::base64url_encoded_len(sess::kCsrfRawLen));
  EXPECT_LE(va.size(), sess::kCsrfMaxCookieLen);
  EXPECT_NE(va, std::string(b));  // random nonce
  pstring raw;
  ASSERT_TRUE(sess::csrf_cookie_fresh(va, kNow, raw));
  ASSERT_EQ(raw.size(), sess::kCsrfRawLen);
  EXPECT_EQ(std::string(raw).substr(sess::kCsrfNonceLen),
            raw_cookie(kNow).substr(sess::kCsrfNonceLen));  // issued = now, big-endian
  EXPECT_TRUE(sess::csrf_cookie_fresh(va, kNow + sess::kCsrfLifetime - 1, raw));
  EXPECT_FALSE(sess::csrf_cookie_fresh(va, kNow + sess::kCsrfLifetime, raw));
}

// ---------------------------------------------------------------------------------------------
// csrf_token

// Known answer, computed with Python (hashlib/hmac) from the format in csrf.h - the token of the
// v1 glue, so forms served before the switch still verify:
//   key   = HKDF-SHA256(salt "ngx_http_session_module/v1", kSecretA, info "csrf", 32)
//   raw   = bytes 0..15 | be64(1700000000)
//   token = base64url(HMAC-SHA256(key, "login\0session_csrf\0" + raw))
TEST(CsrfToken, KnownAnswer) {
  KeyRing ring;
  add(ring, kSecretA);
  std::string raw;
  for (int i = 0; i < 16; i++) raw.push_back(static_cast<char>(i));
  raw += raw_cookie(1700000000).substr(sess::kCsrfNonceLen);
  EXPECT_EQ(b64(raw), "AAECAwQFBgcICQoLDA0ODwAAAABlU_EA");
  pstring out("t=");
  ASSERT_TRUE(sess::csrf_token(ring, 0, kName, raw, out));
  EXPECT_EQ(std::string(out), "t=-1bwFKMKfup9uBk5lI6DIt24vy_HEpsJPLvp0zgktUM");  // appends
  EXPECT_TRUE(verify(ring, kName, {"AAECAwQFBgcICQoLDA0ODwAAAABlU_EA"},
                     "-1bwFKMKfup9uBk5lI6DIt24vy_HEpsJPLvp0zgktUM", 1700000000));
}

TEST(CsrfToken, BoundToKeyNameAndCookie) {
  KeyRing ring;
  add(ring, kSecretA);
  add(ring, kSecretB);
  const std::string raw = raw_cookie(kNow);
  const std::string t = token(ring, 0, kName, raw);
  EXPECT_EQ(t.size(), sess::base64url_encoded_len(KeyRing::kMacLen));
  EXPECT_EQ(t, token(ring, 0, kName, raw));
  EXPECT_NE(t, token(ring, 1, kName, raw));
  EXPECT_NE(t, token(ring, 0, "other_csrf", raw));
  EXPECT_NE(t, token(ring, 0, kName, raw_cookie(kNow, 'm')));
  EXPECT_NE(t, token(ring, 0, kName, raw_cookie(kNow + 1)));
  // The separators keep name and raw apart: moving a byte across the boundary changes the MAC.
  EXPECT_NE(token(ring, 0, "ab", "c" + raw), token(ring, 0, "abc", raw));
  pstring out;
  EXPECT_FALSE(sess::csrf_token(ring, 2, kName, raw, out));  // no such key
  KeyRing empty;
  EXPECT_FALSE(sess::csrf_token(empty, 0, kName, raw, out));
}

// ---------------------------------------------------------------------------------------------
// csrf_verify

struct VerifyCase {
  const char* what;
  std::vector<std::string> cookies;
  std::string token;
  uint64_t now;
  bool ok;
};

TEST(CsrfVerify, Table) {
  KeyRing ring;
  add(ring, kSecretA);
  const std::string fresh = cookie(kNow - 10);
  const std::string raw = raw_cookie(kNow - 10);
  const std::string t = token(ring, 0, kName, raw);
  const std::string other = cookie(kNow - 10, 'x');
  const std::string future = cookie(kNow + 30);
  const std::string t_future = token(ring, 0, kName, raw_cookie(kNow + 30));
  const std::string beyond = cookie(kNow + sess::kCsrfSkew + 1);
  const std::string t_beyond = token(ring, 0, kName, raw_cookie(kNow + sess::kCsrfSkew + 1));
  const std::string stale = cookie(kNow - sess::kCsrfLifetime);
  const std::string t_stale = token(ring, 0, kName, raw_cookie(kNow - sess::kCsrfLifetime));
  std::string flipped = t;
  flipped[5] = flipped[5] == 'A' ? 'B' : 'A';

  const VerifyCase cases[] = {
      {"matching cookie and token", {fresh}, t, kNow, true},
      {"cookie issued within the skew ahead", {future}, t_future, kNow, true},
      {"cookie issued beyond the skew ahead", {beyond}, t_beyond, kNow, false},
      {"stale cookie", {stale}, t_stale, kNow, false},
      {"the same cookie, later stale", {fresh}, t, kNow - 10 + sess::kCsrfLifetime, false},
      {"no cookie", {}, t, kNow, false},
      {"token of another cookie", {other}, t, kNow, false},
      {"empty token", {fresh}, "", kNow, false},
      {"one character changed", {fresh}, flipped, kNow, false},
      {"token truncated", {fresh}, t.substr(0, t.size() - 1), kNow, false},
      {"token extended", {fresh}, t + "A", kNow, false},
      {"the cookie value as token", {fresh}, fresh, kNow, false},
      {"malformed cookie", {"!" + fresh.substr(1)}, t, kNow, false},
      {"duplicates: the match is first", {fresh, other, stale}, t, kNow, true},
      {"duplicates: the match is last", {other, "junk", stale, fresh}, t, kNow, true},
      {"duplicates: the match is stale", {other, stale}, t_stale, kNow, false},
      {"duplicates: none matches", {other, future, "junk"}, t, kNow, false},
  };
  for (const VerifyCase& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_EQ(verify(ring, kName, c.cookies, c.token, c.now), c.ok);
  }
}

TEST(CsrfVerify, AnotherCookieNameFails) {
  KeyRing ring;
  add(ring, kSecretA);
  const std::string raw = raw_cookie(kNow);
  EXPECT_TRUE(verify(ring, kName, {cookie(kNow)}, token(ring, 0, kName, raw)));
  EXPECT_FALSE(verify(ring, "app_csrf", {cookie(kNow)}, token(ring, 0, kName, raw)));
  EXPECT_FALSE(verify(ring, kName, {cookie(kNow)}, token(ring, 0, "app_csrf", raw)));
}

TEST(CsrfVerify, RotationKeepsOldTokens) {
  // A form served before the rotation: made with key 0 of the old ring [A].
  KeyRing old_ring;
  add(old_ring, kSecretA);
  const std::string raw = raw_cookie(kNow);
  const std::string t_old = token(old_ring, 0, kName, raw);

  // After the rotation the ring is [C, B, A]: A is no longer first but still verifies.
  KeyRing ring;
  add(ring, kSecretC);
  add(ring, kSecretB);
  add(ring, kSecretA);
  EXPECT_EQ(token(ring, 2, kName, raw), t_old);
  EXPECT_NE(token(ring, 0, kName, raw), t_old);
  EXPECT_TRUE(verify(ring, kName, {cookie(kNow)}, t_old));
  EXPECT_TRUE(verify(ring, kName, {cookie(kNow)}, token(ring, 0, kName, raw)));

  // Once A is dropped, its tokens no longer verify.
  KeyRing dropped;
  add(dropped, kSecretC);
  add(dropped, kSecretB);
  EXPECT_FALSE(verify(dropped, kName, {cookie(kNow)}, t_old));

  KeyRing empty;
  EXPECT_FALSE(verify(empty, kName, {cookie(kNow)}, t_old));
}

TEST(CsrfVerify, RoundTripThroughNewCookie) {
  KeyRing ring;
  add(ring, kSecretA);
  for (int i = 0; i < 20; i++) {
    pstring value;
    ASSERT_TRUE(sess::csrf_new_cookie(kNow, value));
    pstring raw;
    ASSERT_TRUE(sess::csrf_cookie_fresh(value, kNow, raw));
    const std::string t = token(ring, 0, kName, raw);
    EXPECT_TRUE(verify(ring, kName, {std::string(value)}, t, kNow + 100));
    EXPECT_FALSE(verify(ring, kName, {std::string(value)}, t, kNow + sess::kCsrfLifetime));
  }
}
