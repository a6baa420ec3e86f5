// Unit tests for login_limit.h: the directive grammar, the keys, and what an entry decides
// (window, ban, charge before the check, refund and clear on success, expiry, eviction order).
#include "login_limit.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

using sess::LimitBy;
using sess::LimitEntry;
using sess::LimitParseError;
using sess::LimitSpec;

namespace {

struct ParseCase {
  std::vector<std::string> args;
  bool ok;
  size_t index;         // the offending argument on error
  const char* message;  // a substring of the message on error
};

class LimitParse : public ::testing::TestWithParam<ParseCase> {};

TEST_P(LimitParse, Table) {
  const ParseCase& c = GetParam();
  std::vector<std::string_view> args(c.args.begin(), c.args.end());
  LimitSpec spec;
  LimitParseError err;
  bool ok = sess::login_limit_parse(args.data(), args.size(), &spec, &err);
  EXPECT_EQ(ok, c.ok) << (ok ? "" : err.message);
  if (!c.ok && !ok) {
    EXPECT_EQ(err.index, c.index);
    EXPECT_NE(std::string(err.message).find(c.message), std::string::npos) << err.message;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Grammar, LimitParse,
    ::testing::Values(
        ParseCase{{"zone=login:1m"}, true, 0, ""},
        ParseCase{{"zone=a-b_C9:64k", "attempts=3", "window=1h30m", "ban=1d", "by=both"}, true,
                  0, ""},
        ParseCase{{"ZONE=x:1M", "By=USER"}, true, 0, ""},
        ParseCase{{"attempts=100", "zone=x:1g"}, true, 0, ""},
        ParseCase{{}, false, 0, "needs zone="},
        ParseCase{{"attempts=3"}, false, 1, "needs zone="},
        ParseCase{{"zone=login"}, false, 0, "invalid zone"},
        ParseCase{{"zone=:1m"}, false, 0, "invalid zone"},
        ParseCase{{"zone=a b:1m"}, false, 0, "invalid zone"},
        ParseCase{{"zone=" + std::string(65, 'z') + ":1m"}, false, 0, "invalid zone"},
        ParseCase{{"zone=login:"}, false, 0, "invalid zone size"},
        ParseCase{{"zone=login:0"}, false, 0, "invalid zone size"},
        ParseCase{{"zone=login:1x"}, false, 0, "invalid zone size"},
        ParseCase{{"zone=login:-1m"}, false, 0, "invalid zone size"},
        // Sizes that overflow 64 bits once scaled are refused, not wrapped (2^64 + 1g, 2^64 +
        // 32g), as is anything beyond ngx_parse_size's bound.
        ParseCase{{"zone=login:17179869185g"}, false, 0, "invalid zone size"},
        ParseCase{{"zone=login:17179869216g"}, false, 0, "invalid zone size"},
        ParseCase{{"zone=login:8589934592g"}, false, 0, "invalid zone size"},
        ParseCase{{"zone=login:999999999999g"}, false, 0, "invalid zone size"},
        ParseCase{{"zone=login:999999999999m"}, true, 0, ""},
        ParseCase{{"zone=login:8589934591g"}, true, 0, ""},
        ParseCase{{"zone=login:1m", "zone=other:1m"}, false, 1, "duplicate"},
        ParseCase{{"zone=login:1m", "attempts=0"}, false, 1, "invalid attempts"},
        ParseCase{{"zone=login:1m", "attempts=101"}, false, 1, "invalid attempts"},
        ParseCase{{"zone=login:1m", "attempts=-1"}, false, 1, "invalid attempts"},
        ParseCase{{"zone=login:1m", "attempts=five"}, false, 1, "invalid attempts"},
        ParseCase{{"zone=login:1m", "attempts=99999999999"}, false, 1, "invalid attempts"},
        ParseCase{{"zone=login:1m", "attempts"}, false, 1, "needs a value"},
        ParseCase{{"zone=login:1m", "window=0"}, false, 1, "invalid window"},
        ParseCase{{"zone=login:1m", "window=0s"}, false, 1, "invalid window"},
        ParseCase{{"zone=login:1m", "window=500ms"}, false, 1, "invalid window"},
        ParseCase{{"zone=login:1m", "window=2y"}, false, 1, "invalid window"},
        ParseCase{{"zone=login:1m", "window=soon"}, false, 1, "invalid window"},
        ParseCase{{"zone=login:1m", "ban="}, false, 1, "invalid ban"},
        ParseCase{{"zone=login:1m", "ban=0"}, false, 1, "invalid ban"},
        ParseCase{{"zone=login:1m", "ban=1m", "ban=2m"}, false, 2, "duplicate"},
        ParseCase{{"zone=login:1m", "by=ip"}, false, 1, "invalid by"},
        ParseCase{{"zone=login:1m", "by="}, false, 1, "invalid by"},
        ParseCase{{"zone=login:1m", "rate=1r/s"}, false, 1, "unknown parameter"},
        ParseCase{{"zone=login:1m", "nodelay"}, false, 1, "unknown parameter"}));

TEST(LimitParse, ValuesAndDefaults) {
  std::string_view one[] = {"zone=login:10m"};
  LimitSpec s;
  LimitParseError err;
  ASSERT_TRUE(sess::login_limit_parse(one, 1, &s, &err));
  EXPECT_EQ(s.zone, "login");
  EXPECT_EQ(s.zone_size, 10u << 20);
  EXPECT_EQ(s.attempts, 5u);
  EXPECT_EQ(s.window_ms, 600000u);
  EXPECT_EQ(s.ban_ms, 900000u);
  EXPECT_EQ(s.by, LimitBy::Client);

  std::string_view all[] = {"zone=z:32k", "attempts=3", "window=90s", "ban=2h", "by=user"};
  ASSERT_TRUE(sess::login_limit_parse(all, 5, &s, &err));
  EXPECT_EQ(s.zone, "z");
  EXPECT_EQ(s.zone_size, 32u << 10);
  EXPECT_EQ(s.attempts, 3u);
  EXPECT_EQ(s.window_ms, 90000u);
  EXPECT_EQ(s.ban_ms, 7200000u);
  EXPECT_EQ(s.by, LimitBy::User);
  LimitSpec t = s;
  EXPECT_TRUE(s.same(t));
  t.by = LimitBy::Both;
  EXPECT_FALSE(s.same(t));
}

// ---------------------------------------------------------------------------------------------
// Keys

const unsigned char kKey[sess::kLimitKeyLen] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                                                15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
                                                26, 27, 28, 29, 30, 31, 32};
const unsigned char kOtherKey[sess::kLimitKeyLen] = {9};

std::string client(const unsigned char* key, std::vector<unsigned char> addr) {
  unsigned char id[sess::kLimitIdLen];
  EXPECT_TRUE(sess::limit_client_id(key, addr.data(), addr.size(), id));
  return std::string(reinterpret_cast<char*>(id), sizeof(id));
}

std::string user(const unsigned char* key, std::string_view name) {
  unsigned char id[sess::kLimitIdLen];
  EXPECT_TRUE(sess::limit_user_id(key, name, id));
  return std::string(reinterpret_cast<char*>(id), sizeof(id));
}

TEST(LimitKeys, ClientAddresses) {
  std::vector<unsigned char> v4 = {203, 0, 113, 7};
  std::vector<unsigned char> v4b = {203, 0, 113, 8};
  std::vector<unsigned char> mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7};
  std::vector<unsigned char> v6a = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1};
  std::vector<unsigned char> v6b = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2,
                                    0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 9};  // same /64
  std::vector<unsigned char> v6c = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1};
  EXPECT_EQ(client(kKey, v4), client(kKey, v4));
  EXPECT_NE(client(kKey, v4), client(kKey, v4b));
  EXPECT_EQ(client(kKey, v4), client(kKey, mapped));   // IPv4-mapped is the IPv4 client
  EXPECT_EQ(client(kKey, v6a), client(kKey, v6b));     // one /64, one client
  EXPECT_NE(client(kKey, v6a), client(kKey, v6c));
  EXPECT_EQ(client(kKey, {}), client(kKey, {1, 2}));   // unix sockets: one client
  EXPECT_NE(client(kKey, {}), client(kKey, v4));
  EXPECT_NE(client(kKey, v4), client(kOtherKey, v4));  // keyed
  // A user named like an address's bytes is another key.
  EXPECT_NE(client(kKey, {'a', 'b', 'c', 'd'}), user(kKey, "abcd"));
}

TEST(LimitKeys, UserNames) {
  EXPECT_EQ(user(kKey, "alice"), user(kKey, "alice"));
  EXPECT_EQ(user(kKey, "alice"), user(kKey, "ALICE"));   // ASCII case-folded
  EXPECT_EQ(user(kKey, "Alice"), user(kKey, "aLiCe"));
  EXPECT_EQ(user(kKey, "alice"), user(kKey, "alice "));   // canonical form (below)
  EXPECT_EQ(user(kKey, "caf\xc3\xa9"), user(kKey, "CAF\xc3\x89"));  // Latin-1 case too
  EXPECT_NE(user(kKey, "alice"), user(kKey, "al ice"));
  EXPECT_NE(user(kKey, "alice"), user(kOtherKey, "alice"));
  EXPECT_NE(user(kKey, ""), user(kKey, "a"));
  // Long names: the whole name counts, case-folded too.
  std::string a(300, 'a'), b(300, 'a');
  b[299] = 'b';
  std::string upper(300, 'A');
  EXPECT_EQ(user(kKey, a), user(kKey, upper));
  EXPECT_NE(user(kKey, a), user(kKey, b));
  EXPECT_NE(user(kKey, std::string(256, 'a')), user(kKey, std::string(257, 'a')));
  EXPECT_EQ(user(kKey, std::string(100000, 'x')), user(kKey, std::string(100000, 'X')));
}

std::string canon(const std::string& s) {
  std::string out(s.size(), '\0');
  out.resize(sess::limit_user_canonical(s, &out[0]));
  return out;
}

TEST(LimitKeys, UserNameCanonicalForm) {
  // Every spelling a canonicalising service (strip, NFKC, lower) takes for alice.
  for (const char* v : {"alice", " alice", "alice ", "  alice", "ALICE ", "\tAlice\r\n",
                        "\xef\xbd\x81\xef\xbd\x8c\xef\xbd\x89\xef\xbd\x83\xef\xbd\x85",  // fullwidth
                        "\xef\xbc\xa1lice",                        // fullwidth capital A
                        "alice\xc2\xa0", "\xe2\x80\x80" "alice",          // NBSP, en quad
                        "\xe3\x80\x80" "alice\xe2\x80\xaf",                // ideographic, narrow NBSP
                        "\xe2\x80\x8b alice\xef\xbb\xbf",              // ZWSP, BOM at the ends
                        "al\xc2\xadice",                             // soft hyphen inside
                        "\xf0\x9d\x90\x9a\xf0\x9d\x90\xa5\xf0\x9d\x90\xa2\xf0\x9d\x90\x9c\xf0\x9d\x90\x9e",  // bold
                        "\xe2\x93\x90lice", "\xe2\x92\xb6lice",          // circled a, A
                        "\x1f" "alice\x1c"}) {
    EXPECT_EQ(canon(v), "alice") << v;
    EXPECT_EQ(user(kKey, v), user(kKey, "alice")) << v;
  }
  EXPECT_EQ(canon("a\xc2\xa0" "b\tc"), "a b c");            // inner white space: a space each
  EXPECT_EQ(canon("a  b"), "a  b");                      // not collapsed
  EXPECT_EQ(canon("\xef\xac\x81nn"), "finn");             // fi ligature
  EXPECT_EQ(canon("Stra\xc3\x9f" "e"), "strasse");         // sharp s
  EXPECT_EQ(canon("\xc4\xb0" "DR\xc4\xb0S"), "idris");       // dotted capital I
  EXPECT_EQ(canon("\xc3\x89LODIE"), "\xc3\xa9lodie");        // Latin-1 case
  EXPECT_EQ(canon("\xc5\x81\xc3\x93" "D\xc5\xb9"), "\xc5\x82\xc3\xb3" "d\xc5\xba");  // Latin Ext-A
  EXPECT_EQ(canon("\xc5\xb8"), "\xc3\xbf");                  // Y diaeresis
  EXPECT_EQ(canon("\xce\x9f\xce\x94\xce\xa5\xce\xa3\xce\xa3\xce\x95\xce\xa5\xce\xa3"),
            canon("\xce\xbf\xce\xb4\xcf\x85\xcf\x83\xcf\x83\xce\xb5\xcf\x85\xcf\x82"));  // Greek, final sigma
  EXPECT_EQ(canon("\xd0\x98\xd0\x92\xd0\x90\xd0\x9d \xd0\x81"), "\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd \xd1\x91");  // Cyrillic
  EXPECT_EQ(canon("\xf0\x9d\x9f\x8f\xf0\x9d\x9f\x98"), "10");  // mathematical digits
  // Kept as they are: other scripts, combining marks, bytes that are not UTF-8 (overlong
  // forms included: C1 A1 is not "a"), white space that is only inside.
  EXPECT_EQ(canon("\xe5\xb1\xb1\xe7\x94\xb0"), "\xe5\xb1\xb1\xe7\x94\xb0");
  EXPECT_EQ(canon("e\xcc\x81"), "e\xcc\x81");
  EXPECT_EQ(canon("\xff\xc1\xa1 \xe2\x80"), "\xff\xc1\xa1 \xe2\x80");
  EXPECT_EQ(canon("\xed\xa0\x80"), "\xed\xa0\x80");      // a surrogate
  EXPECT_EQ(canon("   "), "");
  EXPECT_EQ(user(kKey, "   "), user(kKey, ""));
  // Long names: the canonical form of the whole name, however long.
  std::string spaced = "  " + std::string(300, 'A') + "\xc2\xa0";
  EXPECT_EQ(user(kKey, spaced), user(kKey, std::string(300, 'a')));
  std::string wide;
  for (int i = 0; i < 200; i++) wide += "\xef\xbd\x81";   // 600 bytes, 200 once folded
  EXPECT_EQ(user(kKey, wide), user(kKey, std::string(200, 'a')));
  EXPECT_NE(user(kKey, wide), user(kKey, std::string(201, 'a')));
}

// ---------------------------------------------------------------------------------------------
// One entry

LimitSpec spec_of(uint32_t attempts, uint64_t window_s, uint64_t ban_s) {
  LimitSpec s;
  s.zone = "z";
  s.zone_size = 1 << 20;
  s.attempts = attempts;
  s.window_ms = window_s * 1000;
  s.ban_ms = ban_s * 1000;
  return s;
}

struct Entry {
  LimitEntry e;
  std::vector<uint64_t> stamps;
  explicit Entry(uint32_t cap) : stamps(cap, 0) { e.cap = cap; }
  // A whole failed attempt at t: false if refused (banned).
  bool fail(const LimitSpec& s, uint64_t t, bool* logged = nullptr) {
    sess::limit_expire(e, t);
    if (sess::limit_banned(e, t)) return false;
    sess::limit_charge(e, stamps.data(), s, t);
    bool l = sess::limit_failed(e, t);
    if (logged) *logged = l;
    return true;
  }
  uint32_t failures(const LimitSpec& s, uint64_t t) {
    return sess::limit_failures(e, stamps.data(), s.window_ms, t);
  }
};

TEST(LimitEntry, BanAfterAttemptsWithinWindow) {
  LimitSpec s = spec_of(3, 600, 900);
  Entry x(3);
  bool logged = true;
  EXPECT_TRUE(x.fail(s, 1000, &logged));
  EXPECT_FALSE(logged);
  EXPECT_TRUE(x.fail(s, 2000, &logged));
  EXPECT_FALSE(logged);
  EXPECT_FALSE(sess::limit_banned(x.e, 2000));
  EXPECT_TRUE(x.fail(s, 3000, &logged));  // the third failure runs, then the ban starts
  EXPECT_TRUE(logged);                    // one line, for this ban
  EXPECT_TRUE(sess::limit_banned(x.e, 3000));
  EXPECT_EQ(x.e.banned_until, 3000u + 900000u);
  EXPECT_FALSE(x.fail(s, 3001));
  EXPECT_EQ(sess::limit_retry_after(x.e, 3001), 900u);   // 899.999 s rounds up
  EXPECT_EQ(sess::limit_retry_after(x.e, 902999), 1u);
  EXPECT_FALSE(x.fail(s, 902999));
  // The ban ends: a clean slate (the three old failures are forgotten).
  EXPECT_TRUE(x.fail(s, 903000, &logged));
  EXPECT_FALSE(logged);
  EXPECT_EQ(x.failures(s, 903000), 1u);
  EXPECT_EQ(sess::limit_retry_after(x.e, 903000), 0u);
}

TEST(LimitEntry, WindowSlides) {
  LimitSpec s = spec_of(3, 10, 60);
  Entry x(3);
  EXPECT_TRUE(x.fail(s, 0));
  EXPECT_TRUE(x.fail(s, 5000));
  EXPECT_TRUE(x.fail(s, 10000));  // the first one is 10 s old: out of the window
  EXPECT_FALSE(sess::limit_banned(x.e, 10000));
  EXPECT_EQ(x.failures(s, 10000), 2u);
  EXPECT_TRUE(x.fail(s, 14999));  // 5000, 10000, 14999: three within 10 s
  EXPECT_TRUE(sess::limit_banned(x.e, 14999));
}

TEST(LimitEntry, SlowGuessingIsNeverBanned) {
  LimitSpec s = spec_of(3, 10, 60);
  Entry x(3);
  for (uint64_t t = 0; t < 1000000; t += 5001) {  // two per window at most
    EXPECT_TRUE(x.fail(s, t)) << t;
  }
}

TEST(LimitEntry, OneAttempt) {
  LimitSpec s = spec_of(1, 60, 60);
  Entry x(1);
  bool logged = false;
  EXPECT_TRUE(x.fail(s, 100, &logged));
  EXPECT_TRUE(logged);
  EXPECT_FALSE(x.fail(s, 200));
}

TEST(LimitEntry, ConcurrentChecksAreChargedBeforeTheyRun) {
  // Five checks start before any finishes: only `attempts` of them may run.
  LimitSpec s = spec_of(3, 600, 900);
  Entry x(3);
  int ran = 0;
  std::vector<uint64_t> tokens;
  for (uint64_t t = 1000; t < 1005; t++) {
    sess::limit_expire(x.e, t);
    if (sess::limit_banned(x.e, t)) continue;
    sess::limit_charge(x.e, x.stamps.data(), s, t);
    tokens.push_back(t);
    ran++;
  }
  EXPECT_EQ(ran, 3);
  EXPECT_TRUE(sess::limit_banned(x.e, 1005));
  // They all fail: exactly one of them logs the ban.
  int lines = 0;
  for (size_t i = 0; i < tokens.size(); i++) lines += sess::limit_failed(x.e, 2000) ? 1 : 0;
  EXPECT_EQ(lines, 1);
}

TEST(LimitEntry, RefundTakesBackOnlyItsOwnCharge) {
  // Per client: an address with an account of its own cannot launder failures by logging in.
  LimitSpec s = spec_of(3, 600, 900);
  Entry x(3);
  EXPECT_TRUE(x.fail(s, 1000));
  EXPECT_TRUE(x.fail(s, 2000));
  sess::limit_charge(x.e, x.stamps.data(), s, 3000);  // a check that will succeed...
  EXPECT_TRUE(sess::limit_banned(x.e, 3000));          // ...is the third charge: ban
  sess::limit_refund(x.e, x.stamps.data(), s, 3000, 3500);  // it succeeded: ban lifted
  EXPECT_FALSE(sess::limit_banned(x.e, 3500));
  EXPECT_EQ(x.failures(s, 3500), 2u);                  // the two failures stay
  EXPECT_TRUE(x.fail(s, 4000));                        // and the next failure bans
  EXPECT_TRUE(sess::limit_banned(x.e, 4000));
}

TEST(LimitEntry, RefundOfAnEarlierChargeLiftsALaterChargesBan) {
  LimitSpec s = spec_of(3, 600, 900);
  Entry x(3);
  sess::limit_charge(x.e, x.stamps.data(), s, 10);  // will succeed
  sess::limit_charge(x.e, x.stamps.data(), s, 20);
  sess::limit_charge(x.e, x.stamps.data(), s, 30);  // ban
  EXPECT_TRUE(sess::limit_banned(x.e, 30));
  sess::limit_refund(x.e, x.stamps.data(), s, 10, 40);
  EXPECT_FALSE(sess::limit_banned(x.e, 40));
  EXPECT_EQ(x.failures(s, 40), 2u);
  // The remaining stamps are 20 and 30, in order: after the window of 20 passes, one is left.
  EXPECT_EQ(x.failures(s, 600020), 1u);
  EXPECT_EQ(x.failures(s, 600030), 0u);
}

TEST(LimitEntry, RefundOfAnUnknownTokenChangesNothing) {
  LimitSpec s = spec_of(3, 600, 900);
  Entry x(3);
  EXPECT_TRUE(x.fail(s, 10));
  EXPECT_TRUE(x.fail(s, 20));
  EXPECT_TRUE(x.fail(s, 30));
  LimitEntry before = x.e;
  sess::limit_refund(x.e, x.stamps.data(), s, 25, 40);  // the entry was made anew meanwhile
  EXPECT_EQ(x.e.count, before.count);
  EXPECT_EQ(x.e.banned_until, before.banned_until);
  Entry empty(3);
  sess::limit_refund(empty.e, empty.stamps.data(), s, 25, 40);
  EXPECT_EQ(empty.e.count, 0u);
}

TEST(LimitEntry, RefundAfterTheRingWrapped) {
  LimitSpec s = spec_of(4, 600, 900);
  Entry x(4);
  EXPECT_TRUE(x.fail(s, 1));
  EXPECT_TRUE(x.fail(s, 700000));  // the first is out of the window now
  EXPECT_TRUE(x.fail(s, 700001));
  sess::limit_charge(x.e, x.stamps.data(), s, 700002);
  sess::limit_charge(x.e, x.stamps.data(), s, 700003);  // the ring wrapped: 4 within window
  EXPECT_TRUE(sess::limit_banned(x.e, 700003));
  sess::limit_refund(x.e, x.stamps.data(), s, 700002, 700004);
  EXPECT_FALSE(sess::limit_banned(x.e, 700004));
  EXPECT_EQ(x.failures(s, 700004), 3u);
  EXPECT_TRUE(x.fail(s, 700005));
  EXPECT_TRUE(sess::limit_banned(x.e, 700005));
}

TEST(LimitEntry, ClearForgetsEverything) {
  // Per user: the account's password clears its failures and its ban.
  LimitSpec s = spec_of(3, 600, 900);
  Entry x(3);
  EXPECT_TRUE(x.fail(s, 1));
  EXPECT_TRUE(x.fail(s, 2));
  sess::limit_clear(x.e);
  EXPECT_EQ(x.failures(s, 3), 0u);
  EXPECT_TRUE(x.fail(s, 3));
  EXPECT_TRUE(x.fail(s, 4));
  EXPECT_FALSE(sess::limit_banned(x.e, 4));
  EXPECT_TRUE(x.fail(s, 5));
  EXPECT_TRUE(sess::limit_banned(x.e, 5));
  sess::limit_clear(x.e);
  EXPECT_FALSE(sess::limit_banned(x.e, 6));
}

TEST(LimitEntry, IdleAndEvictable) {
  LimitSpec s = spec_of(2, 10, 30);
  Entry x(2);
  EXPECT_TRUE(sess::limit_idle(x.e, x.stamps.data(), s, 0));
  EXPECT_TRUE(x.fail(s, 1000));
  EXPECT_FALSE(sess::limit_idle(x.e, x.stamps.data(), s, 10999));
  EXPECT_TRUE(sess::limit_idle(x.e, x.stamps.data(), s, 11000));
  EXPECT_EQ(sess::limit_evict_class(x.e), 1u);  // one failure: evicted before two
  EXPECT_TRUE(x.fail(s, 2000));  // banned until 32000
  EXPECT_FALSE(sess::limit_idle(x.e, x.stamps.data(), s, 31999));
  EXPECT_TRUE(sess::limit_idle(x.e, x.stamps.data(), s, 32000));  // an ended ban is no ban
}

TEST(LimitEntry, EvictionClassIsTheFailuresRemembered) {
  LimitSpec s = spec_of(5, 10, 30);
  Entry x(5);
  EXPECT_EQ(sess::limit_evict_class(x.e), 0u);
  x.fail(s, 1000);
  x.fail(s, 2000);
  EXPECT_EQ(sess::limit_evict_class(x.e), 2u);
  sess::limit_refund(x.e, x.stamps.data(), s, 2000, 2500);
  EXPECT_EQ(sess::limit_evict_class(x.e), 1u);
  sess::limit_clear(x.e);
  EXPECT_EQ(sess::limit_evict_class(x.e), 0u);
  LimitSpec big = spec_of(100, 10, 30);
  Entry y(100);
  for (uint64_t t = 1; t <= 99; t++) y.fail(big, t);
  EXPECT_EQ(sess::limit_evict_class(y.e), 99u);
  EXPECT_LE(sess::limit_evict_class(y.e), sess::kLimitMaxAttempts);
}

TEST(LimitEntry, ClockReadingsSlightlyAhead) {
  // Another worker's cached clock may be a few ms ahead of this one: its stamps count.
  LimitSpec s = spec_of(2, 10, 30);
  Entry x(2);
  sess::limit_charge(x.e, x.stamps.data(), s, 5005);
  EXPECT_EQ(x.failures(s, 5000), 1u);
  sess::limit_charge(x.e, x.stamps.data(), s, 5000);
  EXPECT_TRUE(sess::limit_banned(x.e, 5000));
}

TEST(LimitEntry, ZeroCapacityNeverBans) {
  LimitSpec s = spec_of(2, 10, 30);
  LimitEntry e;  // cap 0: a caller's mistake, harmless
  uint64_t none[1] = {0};
  EXPECT_FALSE(sess::limit_charge(e, none, s, 1));
  EXPECT_FALSE(sess::limit_banned(e, 1));
  EXPECT_EQ(sess::limit_failures(e, none, s.window_ms, 1), 0u);
}

}  // namespace
