// Unit tests for redis_cache.h: the invalidation push parser, expiry, the coherence state
// machine event by event, and a model of Redis client-side caching (tracking table, redirect,
// invalidations racing replies on another socket, quiet link death, reconnects) driven by random
// event sequences (the model is cache_model.h, shared with fuzz/fuzz_cache.cpp): a Hit is never
// stale once the invalidation could have arrived.
#include "redis_cache.h"

#include "cache_model.h"

#include <gtest/gtest.h>

#include <optional>
#include <cstring>
#include <random>
#include <set>
#include <string>

using sess::CacheCoherence;
using sess::CacheEntryMeta;
using sess::CacheStatus;
using sess::Invalidation;
using sess::RespType;
using sess::RespValue;
using Kind = sess::Invalidation::Kind;

namespace {

RespValue bulk(std::string s) {
  RespValue v;
  v.type = RespType::Bulk;
  v.str = std::move(s);
  return v;
}
RespValue integer(int64_t i) {
  RespValue v;
  v.type = RespType::Integer;
  v.integer = i;
  return v;
}
RespValue of(RespType t) {
  RespValue v;
  v.type = t;
  return v;
}
RespValue array(std::vector<RespValue> e) {
  RespValue v;
  v.type = RespType::Array;
  v.elements = std::move(e);
  return v;
}
RespValue message(RespValue keys, std::string channel = "__redis__:invalidate") {
  return array({bulk("message"), bulk(std::move(channel)), std::move(keys)});
}

using cache_model::Epoch;

// ---------------------------------------------------------------------------------------------
// parse_invalidation

struct PushCase {
  const char* name;
  RespValue reply;
  Kind kind;
  std::vector<std::string> keys;
};

TEST(RedisCacheParse, Table) {
  const std::vector<PushCase> cases = {
      {"one key", message(array({bulk("s:1")})), Kind::Keys, {"s:1"}},
      {"two keys", message(array({bulk("s:1"), bulk("s:2")})), Kind::Keys, {"s:1", "s:2"}},
      {"binary key", message(array({bulk(std::string("a\0\r\n", 4))})), Kind::Keys,
       {std::string("a\0\r\n", 4)}},
      {"flushall: nil bulk", message(of(RespType::Nil)), Kind::All, {}},
      {"flushall: nil array", message(of(RespType::NilArray)), Kind::All, {}},
      {"empty key array", message(array({})), Kind::Malformed, {}},
      {"key not bulk", message(array({bulk("a"), integer(1)})), Kind::Malformed, {}},
      {"nested array", message(array({array({bulk("a")})})), Kind::Malformed, {}},
      {"keys as a bulk", message(bulk("s:1")), Kind::Malformed, {}},
      {"keys as a status", message(of(RespType::Status)), Kind::Malformed, {}},
      {"other channel", message(array({bulk("s:1")}), "news"), Kind::Other, {}},
      {"channel prefix only", message(array({bulk("s:1")}), "__redis__:invalidat"), Kind::Other,
       {}},
      {"subscribed", array({bulk("subscribe"), bulk("__redis__:invalidate"), integer(1)}),
       Kind::Subscribed, {}},
      {"subscribed elsewhere", array({bulk("subscribe"), bulk("x"), integer(1)}), Kind::Other, {}},
      {"pong", array({bulk("pong"), bulk("")}), Kind::Pong, {}},
      {"pmessage", array({bulk("pmessage"), bulk("*"), bulk("__redis__:invalidate"),
                          array({bulk("k")})}),
       Kind::Other, {}},
      {"not an array", bulk("message"), Kind::Malformed, {}},
      {"empty array", array({}), Kind::Malformed, {}},
      {"status", of(RespType::Status), Kind::Malformed, {}},
      {"short message", array({bulk("message"), bulk("__redis__:invalidate")}), Kind::Malformed,
       {}},
      {"long message", array({bulk("message"), bulk("__redis__:invalidate"), array({bulk("k")}),
                              bulk("x")}), Kind::Malformed, {}},
      {"message without a channel", array({bulk("message"), integer(1), array({bulk("k")})}),
       Kind::Malformed, {}},
  };
  for (const PushCase& c : cases) {
    SCOPED_TRACE(c.name);
    Invalidation inv = sess::parse_invalidation(c.reply);
    EXPECT_EQ(inv.kind, c.kind);
    std::vector<std::string> keys(inv.keys.begin(), inv.keys.end());
    EXPECT_EQ(keys, c.keys);
  }
}

// ---------------------------------------------------------------------------------------------
// cache_expiry and names

TEST(RedisCacheExpiry, MinOfMaxAgeAndTtl) {
  EXPECT_EQ(sess::cache_expiry(1000, 60000, -1), 61000u);     // no TTL: max_age
  EXPECT_EQ(sess::cache_expiry(1000, 60000, 5000), 6000u);    // TTL shorter
  EXPECT_EQ(sess::cache_expiry(1000, 60000, 600000), 61000u); // max_age shorter
  EXPECT_EQ(sess::cache_expiry(1000, 60000, 60000), 61000u);
  EXPECT_EQ(sess::cache_expiry(1000, 60000, 1), 1001u);
  EXPECT_EQ(sess::cache_expiry(1000, 60000, -2), std::nullopt);  // no such key
  EXPECT_EQ(sess::cache_expiry(1000, 60000, 0), std::nullopt);
  EXPECT_EQ(sess::cache_expiry(1000, 60000, -3), std::nullopt);
  EXPECT_EQ(sess::cache_expiry(1000, 0, 5000), std::nullopt);   // max_age 0: never stored
  EXPECT_EQ(sess::cache_expiry(UINT64_MAX - 10, 60000, -1), std::nullopt);
}

TEST(RedisCacheStatus, Names) {
  EXPECT_EQ(sess::cache_status_name(CacheStatus::Empty), "");
  EXPECT_EQ(sess::cache_status_name(CacheStatus::Hit), "hit");
  EXPECT_EQ(sess::cache_status_name(CacheStatus::Miss), "miss");
  EXPECT_EQ(sess::cache_status_name(CacheStatus::Bypass), "bypass");
}

// ---------------------------------------------------------------------------------------------
// The state machine, event by event

// A worker brought up: subscriber id 7, data connections 1 and 2 tracking for it.
struct Up {
  Epoch epoch;
  CacheCoherence c{epoch};
  Up() {
    c.subscriber_up(7);
    c.data_up(1);
    c.data_up(2);
    c.data_tracking(1, 7, true);
    c.data_tracking(2, 7, true);
  }
  CacheEntryMeta fill(const std::string& key) {
    auto t = c.begin_fill(key);
    EXPECT_TRUE(t.has_value());
    EXPECT_TRUE(c.end_fill(*t));
    return {t->epoch, 10000};
  }
};

TEST(RedisCacheCoherence, StartsBypassingAndFlushes) {
  Epoch e;
  CacheCoherence c(e);
  EXPECT_EQ(e.n, 101u);  // a predecessor's entries are dead
  EXPECT_FALSE(c.active());
  EXPECT_EQ(c.lookup(nullptr, 0), CacheStatus::Bypass);
  EXPECT_FALSE(c.begin_fill("k").has_value());
}

TEST(RedisCacheCoherence, ActiveOnlyWhenEveryDataConnectionTracksForTheSubscriber) {
  Epoch e;
  CacheCoherence c(e);
  c.data_up(1);
  c.data_tracking(1, 7, true);  // before the subscriber: an id nobody has yet
  EXPECT_FALSE(c.active());
  c.subscriber_up(7);
  EXPECT_FALSE(c.active());
  c.data_tracking(1, 7, true);
  EXPECT_TRUE(c.active());
  c.data_up(2);
  EXPECT_FALSE(c.active());
  c.data_tracking(2, 8, true);  // another redirect id
  EXPECT_FALSE(c.active());
  c.data_tracking(2, 7, false);  // refused
  EXPECT_FALSE(c.active());
  c.data_tracking(2, 7, true);
  EXPECT_TRUE(c.active());
  c.data_tracking(3, 7, true);  // a connection never announced: ignored
  EXPECT_TRUE(c.active());
}

TEST(RedisCacheCoherence, HitMissExpiry) {
  Up u;
  EXPECT_TRUE(u.c.active());
  EXPECT_EQ(u.c.lookup(nullptr, 0), CacheStatus::Miss);
  CacheEntryMeta m = u.fill("k");
  EXPECT_EQ(u.c.lookup(&m, 9999), CacheStatus::Hit);
  EXPECT_EQ(u.c.lookup(&m, 10000), CacheStatus::Miss);  // expired
}

TEST(RedisCacheCoherence, InvalidationBetweenSendAndReplyCancelsTheFill) {
  Up u;
  auto t = u.c.begin_fill("k");
  ASSERT_TRUE(t);
  Invalidation inv;
  inv.kind = Kind::Keys;
  inv.keys = {"k"};
  EXPECT_TRUE(u.c.on_invalidation(inv));
  EXPECT_FALSE(u.c.end_fill(*t));
  EXPECT_EQ(u.c.pending_keys(), 0u);
  // A fill begun after the invalidation is good (the read is tracked again).
  auto t2 = u.c.begin_fill("k");
  ASSERT_TRUE(t2);
  EXPECT_TRUE(u.c.end_fill(*t2));
}

TEST(RedisCacheCoherence, InvalidationOfAnotherKeyDoesNotCancel) {
  Up u;
  auto t = u.c.begin_fill("k");
  Invalidation inv;
  inv.kind = Kind::Keys;
  inv.keys = {"other"};
  u.c.on_invalidation(inv);
  EXPECT_TRUE(u.c.end_fill(*t));
}

TEST(RedisCacheCoherence, ConcurrentFillsOfOneKeyAllCancelled) {
  Up u;
  auto a = u.c.begin_fill("k");
  auto b = u.c.begin_fill("k");
  u.c.own_write("k");
  auto c = u.c.begin_fill("k");  // after the write: its read is tracked
  EXPECT_FALSE(u.c.end_fill(*b));
  EXPECT_FALSE(u.c.end_fill(*a));
  EXPECT_TRUE(u.c.end_fill(*c));
  EXPECT_EQ(u.c.pending_keys(), 0u);
}

TEST(RedisCacheCoherence, AbandonedTicketsLeaveNothingBehind) {
  Up u;
  auto a = u.c.begin_fill("k");
  auto b = u.c.begin_fill("j");
  u.c.abandon_fill(*a);
  u.c.abandon_fill(*b);
  EXPECT_EQ(u.c.pending_keys(), 0u);
}

// Every event that can lose an invalidation flushes (the entry dies) and cancels fills in flight.
TEST(RedisCacheCoherence, EveryLossFlushes) {
  struct Event {
    const char* name;
    void (*apply)(CacheCoherence&);
    bool active_after;  // before anything is re-established
  };
  const Event events[] = {
      {"subscriber lost", [](CacheCoherence& c) { c.subscriber_lost(); }, false},
      {"subscriber up again", [](CacheCoherence& c) { c.subscriber_up(9); }, false},
      {"data lost", [](CacheCoherence& c) { c.data_lost(1); }, false},
      {"data up again", [](CacheCoherence& c) { c.data_up(1); }, false},
      {"data removed", [](CacheCoherence& c) { c.data_removed(2); }, true},
      {"topology", [](CacheCoherence& c) { c.topology_changed(); }, true},
      {"flushall",
       [](CacheCoherence& c) {
         Invalidation inv;
         inv.kind = Kind::All;
         EXPECT_FALSE(c.on_invalidation(inv));
       },
       true},
      {"malformed push",
       [](CacheCoherence& c) {
         Invalidation inv;
         inv.kind = Kind::Malformed;
         c.on_invalidation(inv);
       },
       true},
      {"shutdown", [](CacheCoherence& c) { c.shutdown(); }, false},
  };
  for (const Event& ev : events) {
    SCOPED_TRACE(ev.name);
    Up u;
    CacheEntryMeta m = u.fill("k");
    auto pending = u.c.begin_fill("j");
    ASSERT_TRUE(pending);
    const uint64_t before = u.c.flushes();
    ev.apply(u.c);
    EXPECT_EQ(u.c.flushes(), before + 1);
    EXPECT_EQ(u.c.active(), ev.active_after);
    EXPECT_NE(u.c.lookup(&m, 0), CacheStatus::Hit);
    EXPECT_FALSE(u.c.end_fill(*pending));
    EXPECT_EQ(u.c.pending_keys(), 0u);
  }
}

TEST(RedisCacheCoherence, ReconnectNeedsTrackingAgainForTheNewId) {
  Up u;
  u.c.subscriber_lost();
  u.c.subscriber_up(9);
  EXPECT_FALSE(u.c.active());  // both data connections still redirect to 7
  u.c.data_tracking(1, 9, true);
  EXPECT_FALSE(u.c.active());
  u.c.data_tracking(2, 9, true);
  EXPECT_TRUE(u.c.active());
}

TEST(RedisCacheCoherence, FillThatStartedBeforeABypassIsNotStoredAfterRecovery) {
  Up u;
  auto t = u.c.begin_fill("k");
  u.c.data_lost(1);
  u.c.data_up(1);
  u.c.data_tracking(1, 7, true);
  ASSERT_TRUE(u.c.active());
  EXPECT_FALSE(u.c.end_fill(*t));
}

TEST(RedisCacheCoherence, AnotherWorkersFlushKillsThisWorkersEntriesAndFills) {
  Epoch shared;
  CacheCoherence a(shared), b(shared);
  for (CacheCoherence* c : {&a, &b}) {
    c->subscriber_up(3);
    c->data_up(0);
    c->data_tracking(0, 3, true);
  }
  auto ta = a.begin_fill("k");
  ASSERT_TRUE(ta);
  ASSERT_TRUE(a.end_fill(*ta));
  CacheEntryMeta m{ta->epoch, 1000};
  EXPECT_EQ(b.lookup(&m, 0), CacheStatus::Hit);  // the zone is shared
  auto pending = a.begin_fill("j");
  b.subscriber_lost();
  EXPECT_EQ(a.lookup(&m, 0), CacheStatus::Miss);
  EXPECT_FALSE(a.end_fill(*pending));
}

// ---------------------------------------------------------------------------------------------
// Model (cache_model.h): one worker, one data connection, a Redis with client tracking, random
// event orders.

class Rng final : public cache_model::Choices {
 public:
  explicit Rng(uint64_t seed) : rng(seed) {}
  uint64_t pick(uint64_t n) override { return rng() % n; }
  std::mt19937_64 rng;
};

TEST(RedisCacheModel, NoStaleHitOnceTheInvalidationCouldHaveArrived) {
  uint64_t hits = 0;
  for (uint64_t seed = 1; seed <= 300; seed++) {
    Rng rng(seed);
    cache_model::Model m(rng);
    m.via_resp = seed % 2 == 0;  // half of the runs: pushes through RespParser
    for (int i = 0; i < 3000; i++) {
      if (!m.step()) {
        ADD_FAILURE() << m.failure << " (seed " << seed << " step " << i << ")";
        return;
      }
    }
    hits += m.hits;
  }
  EXPECT_GT(hits, 1000u);  // the model does reach the interesting states
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entries' records

TEST(RedisCacheRecord, RoundTripKeepsOrderAndKinds) {
  sess::SessionData d;
  ASSERT_TRUE(d.decode(R"({"user":"alice","n":3,"o":{"a":[1,2]},"s":"","u":"\u00e9\n"})"));
  std::string bytes;
  ASSERT_TRUE(sess::cache_record_encode(d, bytes));
  sess::SessionData back;
  ASSERT_TRUE(sess::cache_record_decode(bytes, &back));
  sess::pstring a, b;
  d.encode(a);
  back.encode(b);
  EXPECT_EQ(a, b);
  ASSERT_NE(back.get("n"), nullptr);
  EXPECT_FALSE(back.get("n")->is_string);
  EXPECT_TRUE(back.get("user")->is_string);
  EXPECT_EQ(back.size(), d.size());
}

TEST(RedisCacheRecord, EmptyData) {
  sess::SessionData d, back;
  std::string bytes;
  ASSERT_TRUE(sess::cache_record_encode(d, bytes));
  EXPECT_EQ(bytes.size(), 2u);
  EXPECT_TRUE(sess::cache_record_decode(bytes, &back));
  EXPECT_TRUE(back.empty());
}

TEST(RedisCacheRecord, MalformedIsRefusedAndLeavesNothing) {
  sess::SessionData d;
  ASSERT_TRUE(d.decode(R"({"user":"alice","n":3})"));
  std::string bytes;
  ASSERT_TRUE(sess::cache_record_encode(d, bytes));
  sess::SessionData back;
  // Every truncation, and a trailing byte.
  for (size_t n = 0; n < bytes.size(); n++) {
    EXPECT_FALSE(sess::cache_record_decode(std::string_view(bytes).substr(0, n), &back)) << n;
    EXPECT_TRUE(back.empty());
  }
  EXPECT_FALSE(sess::cache_record_decode(bytes + "x", &back));
  EXPECT_TRUE(back.empty());
  // A flag other than 0/1, an empty key, a length past the end.
  std::string bad = bytes;
  bad[2] = 2;
  EXPECT_FALSE(sess::cache_record_decode(bad, &back));
  bad = bytes;
  bad[3] = 0;
  EXPECT_FALSE(sess::cache_record_decode(bad, &back));
  bad = bytes;
  bad[7] = static_cast<char>(0xff);
  EXPECT_FALSE(sess::cache_record_decode(bad, &back));
  EXPECT_TRUE(back.empty());
}

// ---------------------------------------------------------------------------------------------
// The id cookie an entry keeps: who is let in without an HMAC check

namespace {

using Proof = unsigned char[sess::kIdProofLen];

void fill_proof(Proof& p, unsigned char base) {
  for (size_t i = 0; i < sess::kIdProofLen; i++) p[i] = static_cast<unsigned char>(base + i * 7);
}

sess::KeptCookie make_kept(const uint64_t seed[2], uint64_t ring, std::string_view name,
                           const Proof& proof) {
  sess::KeptCookie k;
  EXPECT_TRUE(sess::kept_cookie_make(seed, ring, name, proof, &k));
  return k;
}

}  // namespace

TEST(RedisCacheKeptCookie, Table) {
  const uint64_t seed[2] = {0x0123456789abcdefull, 0xfedcba9876543210ull};
  const uint64_t other_seed[2] = {0x0123456789abcdefull, 0xfedcba9876543211ull};
  Proof proof;
  fill_proof(proof, 3);
  const sess::KeptCookie kept = make_kept(seed, 11, "sid", proof);
  struct Row {
    const char* what;
    sess::KeptCookie presented;
    bool matches;
  };
  Proof other_proof;
  fill_proof(other_proof, 4);
  const Row rows[] = {
      {"the same cookie", make_kept(seed, 11, "sid", proof), true},
      {"another proof", make_kept(seed, 11, "sid", other_proof), false},
      {"another ring", make_kept(seed, 12, "sid", proof), false},
      {"another cookie name", make_kept(seed, 11, "sie", proof), false},
      {"a name with a byte more", make_kept(seed, 11, std::string_view("sid\0", 4), proof), false},
      {"a shorter name", make_kept(seed, 11, "si", proof), false},
      {"an empty name", make_kept(seed, 11, "", proof), false},
      {"another zone's seed", make_kept(other_seed, 11, "sid", proof), false},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(sess::kept_cookie_matches(&kept, &r.presented), r.matches) << r.what;
    // (A lookup asks by binding and proof: the same answers.)
    EXPECT_EQ(sess::kept_cookie_holds(&kept, r.presented.binding, r.presented.proof), r.matches)
        << r.what;
  }
  EXPECT_FALSE(sess::kept_cookie_holds(nullptr, kept.binding, kept.proof));
  // Nothing kept, or a cookie that cannot be kept: no match.
  EXPECT_FALSE(sess::kept_cookie_matches(nullptr, &kept));
  EXPECT_FALSE(sess::kept_cookie_matches(&kept, nullptr));
  // Ring 0 (no key ring has it) makes nothing, and binds nothing.
  sess::KeptCookie none;
  EXPECT_FALSE(sess::kept_cookie_make(seed, 0, "sid", proof, &none));
  uint64_t binding = 0;
  EXPECT_FALSE(sess::kept_cookie_bind(seed, 0, "sid", &binding));
  // The parts make what kept_cookie_make makes.
  ASSERT_TRUE(sess::kept_cookie_bind(seed, 11, "sid", &binding));
  EXPECT_EQ(binding, kept.binding);
  const sess::KeptCookie parts = sess::kept_cookie_with(binding, proof);
  EXPECT_TRUE(sess::kept_cookie_matches(&kept, &parts));
  EXPECT_EQ(std::memcmp(parts.proof, kept.proof, sess::kIdProofLen), 0);
}

// One bit changed anywhere in the proof: refused.
TEST(RedisCacheKeptCookie, EveryProofBitCounts) {
  const uint64_t seed[2] = {1, 2};
  Proof proof;
  fill_proof(proof, 9);
  const sess::KeptCookie kept = make_kept(seed, 5, "session", proof);
  for (size_t at = 0; at < sess::kIdProofLen; at++) {
    for (int bit = 0; bit < 8; bit++) {
      Proof changed;
      std::memcpy(changed, proof, sizeof(changed));
      changed[at] = static_cast<unsigned char>(changed[at] ^ (1u << bit));
      const sess::KeptCookie presented = make_kept(seed, 5, "session", changed);
      EXPECT_FALSE(sess::kept_cookie_matches(&kept, &presented)) << at << ":" << bit;
      EXPECT_FALSE(sess::kept_cookie_holds(&kept, presented.binding, changed)) << at << ":" << bit;
    }
  }
}

// Bindings of many (ring, name) pairs under one seed, names that meet after one step of the hash
// included (a byte and its xor partner, names one byte apart in length): all distinct; and a
// binding depends on both seed words.
TEST(RedisCacheKeptCookie, BindingsOfAConfigurationAreDistinct) {
  const uint64_t seed[2] = {0x9f3c1d2e4b5a6978ull, 0x1234fedc5678ba90ull};
  std::set<uint64_t> seen;
  size_t made = 0;
  for (uint64_t ring = 1; ring <= 40; ring++) {
    for (int a = 0; a < 64; a++) {
      for (int len = 0; len < 4; len++) {
        std::string name(static_cast<size_t>(len), static_cast<char>('0' + a));
        if (len > 1) name[0] = static_cast<char>(a ^ 0x20);
        seen.insert(sess::kept_cookie_binding(seed, ring, name));
        made++;
      }
    }
  }
  // (len 0 gives one name per ring whatever a: 63 repeats per ring)
  EXPECT_EQ(seen.size(), made - 40 * 63);
  // Names of every length to 24 (bytes, two overlapping halves, overlapping words), every byte
  // value at every position, and the prefixes of each other: all distinct.
  const std::string base = "session_cookie_name_abcd";
  std::set<uint64_t> names;
  size_t tried = 0;
  for (size_t len = 0; len <= base.size(); len++) {
    const std::string clean = base.substr(0, len);
    names.insert(sess::kept_cookie_binding(seed, 3, clean));
    tried++;
    for (size_t pos = 0; pos < len; pos++) {
      for (int c = 0; c < 256; c++) {
        if (static_cast<char>(c) == clean[pos]) continue;
        std::string name = clean;
        name[pos] = static_cast<char>(c);
        names.insert(sess::kept_cookie_binding(seed, 3, name));
        tried++;
      }
    }
  }
  EXPECT_EQ(names.size(), tried);
  for (int w = 0; w < 2; w++) {
    uint64_t other[2] = {seed[0], seed[1]};
    other[w] ^= 1;
    EXPECT_NE(sess::kept_cookie_binding(seed, 7, "sid"), sess::kept_cookie_binding(other, 7, "sid"))
        << w;
  }
}
