#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

#include "envelope.h"
#include "verified_cache.h"

using sess::Kind;
using sess::KeyRing;
using sess::SessionData;
using sess::Times;
using sess::VerifiedBinding;
using sess::VerifiedCache;

namespace {

const Times kTimes{1700000000, 1700000100};
const std::string kValue =
    "AQIvAAAAAGVTkIAAAAAAZVOQ5NjL0x2K3d9kq0Yw2u3zO2FvQm1lbm9uY2V0YWd0YWd0YWd0YWd0YWd4eXo";

VerifiedBinding binding(uint64_t ring = 7, Kind kind = Kind::Sealed,
                        std::string_view name = "session") {
  return VerifiedBinding{ring, kind, name};
}

TEST(VerifiedCache, MissWhenEmptyThenHitWithWhatWasStored) {
  VerifiedCache c(1);
  EXPECT_EQ(c.find(binding(), kValue), nullptr);
  ASSERT_TRUE(c.insert(binding(), kValue, kTimes, "{\"user\":\"alice\"}"));
  const auto* e = c.find(binding(), kValue);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->times.created, kTimes.created);
  EXPECT_EQ(e->times.refreshed, kTimes.refreshed);
  ASSERT_NE(e->shared.get(), nullptr);
  EXPECT_EQ(e->payload(), "{\"user\":\"alice\"}");
  EXPECT_EQ(e->data(), nullptr);
  EXPECT_EQ(e->shared.use_count(), 1u);  // the entry's own
  EXPECT_EQ(c.size(), 1u);
}

TEST(VerifiedCache, EveryOneByteChangeIsAMiss) {
  VerifiedCache c(2);
  ASSERT_TRUE(c.insert(binding(), kValue, kTimes, "{}"));
  for (size_t i = 0; i < kValue.size(); i++) {
    for (char repl : {'A', 'B', '_', '-', '0', '\0'}) {
      std::string v = kValue;
      if (v[i] == repl) continue;
      v[i] = repl;
      EXPECT_EQ(c.find(binding(), v), nullptr) << "position " << i;
    }
  }
  EXPECT_NE(c.find(binding(), kValue), nullptr);
}

TEST(VerifiedCache, EveryLengthEveryPosition) {
  VerifiedCache c(11);
  for (size_t n = 1; n <= 48; n++) {
    std::string v(n, 'q');
    for (size_t i = 0; i < n; i++) v[i] = static_cast<char>('A' + (i * 7 + n) % 26);
    ASSERT_TRUE(c.insert(binding(), v, kTimes, "{}"));
    ASSERT_NE(c.find(binding(), v), nullptr) << n;
    for (size_t i = 0; i < n; i++) {
      std::string w = v;
      w[i] ^= 0x01;
      EXPECT_EQ(c.find(binding(), w), nullptr) << n << " " << i;
    }
  }
}

TEST(VerifiedCache, PrefixesAndExtensionsAreMisses) {
  VerifiedCache c(3);
  ASSERT_TRUE(c.insert(binding(), kValue, kTimes, "{}"));
  for (size_t n = 0; n < kValue.size(); n++) {
    EXPECT_EQ(c.find(binding(), std::string_view(kValue).substr(0, n)), nullptr) << n;
    EXPECT_EQ(c.find(binding(), std::string_view(kValue).substr(kValue.size() - n)), nullptr)
        << n;
  }
  EXPECT_EQ(c.find(binding(), kValue + "A"), nullptr);
  EXPECT_EQ(c.find(binding(), "A" + kValue), nullptr);
}

TEST(VerifiedCache, OtherBindingIsAMiss) {
  VerifiedCache c(4);
  ASSERT_TRUE(c.insert(binding(7, Kind::Sealed, "session"), kValue, kTimes, "{}"));
  EXPECT_EQ(c.find(binding(8, Kind::Sealed, "session"), kValue), nullptr);    // other ring
  EXPECT_EQ(c.find(binding(7, Kind::Signed, "session"), kValue), nullptr);    // other kind
  EXPECT_EQ(c.find(binding(7, Kind::Id, "session"), kValue), nullptr);
  EXPECT_EQ(c.find(binding(7, Kind::Sealed, "Session"), kValue), nullptr);    // other name
  EXPECT_EQ(c.find(binding(7, Kind::Sealed, "session2"), kValue), nullptr);
  EXPECT_EQ(c.find(binding(7, Kind::Sealed, "sessio"), kValue), nullptr);
  EXPECT_EQ(c.find(binding(7, Kind::Sealed, ""), kValue), nullptr);
  EXPECT_NE(c.find(binding(7, Kind::Sealed, "session"), kValue), nullptr);
}

TEST(VerifiedCache, RingZeroIsNeverStoredOrFound) {
  VerifiedCache c(5);
  EXPECT_FALSE(c.insert(binding(0), kValue, kTimes, "{}"));
  EXPECT_EQ(c.find(binding(0), kValue), nullptr);
  EXPECT_EQ(c.size(), 0u);
}

TEST(VerifiedCache, OverBoundsAreNotStoredAndDropTheSlot) {
  VerifiedCache c(6);
  std::string big(VerifiedCache::kMaxValue + 1, 'A');
  EXPECT_FALSE(c.insert(binding(), big, kTimes, "{}"));
  EXPECT_EQ(c.find(binding(), big), nullptr);
  std::string at_limit(VerifiedCache::kMaxValue, 'A');
  EXPECT_TRUE(c.insert(binding(), at_limit, kTimes, "{}"));
  EXPECT_NE(c.find(binding(), at_limit), nullptr);

  // The same slot (same binding and value) refused for a too large payload: the old entry goes.
  ASSERT_TRUE(c.insert(binding(), kValue, kTimes, "{}"));
  EXPECT_FALSE(
      c.insert(binding(), kValue, kTimes, std::string(VerifiedCache::kMaxPayload + 1, 'x')));
  EXPECT_EQ(c.find(binding(), kValue), nullptr);
  std::string long_name(VerifiedCache::kMaxName + 1, 'n');
  EXPECT_FALSE(c.insert(binding(7, Kind::Sealed, long_name), kValue, kTimes, "{}"));
  EXPECT_EQ(c.find(binding(7, Kind::Sealed, long_name), kValue), nullptr);
}

TEST(VerifiedCache, FixedNumberOfEntriesAndNewestWins) {
  VerifiedCache c(7);
  std::mt19937_64 rng(42);
  std::string last;
  for (size_t i = 0; i < VerifiedCache::kSlots * 8; i++) {
    std::string v(120, 'a');
    for (auto& ch : v) ch = static_cast<char>('A' + rng() % 26);
    ASSERT_TRUE(c.insert(binding(), v, Times{i, i}, "{}"));
    last = v;
    ASSERT_LE(c.size(), VerifiedCache::kSlots);
  }
  const auto* e = c.find(binding(), last);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->times.created, VerifiedCache::kSlots * 8 - 1);
  // The slots are used: the hash spreads values over most of the table.
  EXPECT_GT(c.size(), VerifiedCache::kSlots * 9 / 10);
  c.clear();
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.find(binding(), last), nullptr);
}

TEST(VerifiedCache, AttachDataOnlyToThePresentEntryOnce) {
  VerifiedCache c(8);
  SessionData d;
  ASSERT_TRUE(d.decode("{\"user\":\"alice\",\"n\":[1,2]}"));
  EXPECT_FALSE(c.attach_data(binding(), kValue, d));  // nothing there
  ASSERT_TRUE(c.insert(binding(), kValue, kTimes, "{\"user\":\"alice\",\"n\":[1,2]}"));
  EXPECT_FALSE(c.attach_data(binding(8), kValue, d));  // other binding
  EXPECT_TRUE(c.attach_data(binding(), kValue, d));
  EXPECT_FALSE(c.attach_data(binding(), kValue, d));  // already there
  d.set_string("user", "mallory");                     // the caller's copy changes: not the entry
  const auto* e = c.find(binding(), kValue);
  ASSERT_NE(e, nullptr);
  ASSERT_NE(e->data(), nullptr);
  ASSERT_NE(e->data()->get("user"), nullptr);
  EXPECT_EQ(e->data()->get("user")->text, "alice");
  EXPECT_EQ(e->data()->get("n")->text, "[1,2]");
  EXPECT_FALSE(e->data()->get("n")->is_string);
  VerifiedCache::Hold held = e->shared.share();  // a request in flight
  EXPECT_EQ(held.use_count(), 2u);
  VerifiedCache::Hold moved(std::move(held));    // (moving keeps the one reference)
  EXPECT_EQ(held.get(), nullptr);
  EXPECT_EQ(moved.use_count(), 2u);

  // A new insert for the slot drops the data from the entry; the holder keeps its copy.
  ASSERT_TRUE(c.insert(binding(), kValue, kTimes, "{}"));
  e = c.find(binding(), kValue);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->data(), nullptr);
  EXPECT_NE(e->shared.get(), moved.get());
  EXPECT_EQ(moved.use_count(), 1u);
  EXPECT_EQ(moved.get()->payload(), "{\"user\":\"alice\",\"n\":[1,2]}");
  EXPECT_EQ(moved.get()->data()->get("user")->text, "alice");
  moved.reset();  // the last reference: freed (ASan/LSan builds check it)
  EXPECT_EQ(moved.get(), nullptr);
  EXPECT_EQ(moved.use_count(), 0u);
}

TEST(VerifiedCache, AttachDataIsBounded) {
  VerifiedCache c(9);
  ASSERT_TRUE(c.insert(binding(), kValue, kTimes, "{}"));
  SessionData d;
  d.set_string("big", std::string(VerifiedCache::kMaxDataBytes, 'x'));
  EXPECT_GT(VerifiedCache::data_bytes(d), VerifiedCache::kMaxDataBytes);
  EXPECT_FALSE(c.attach_data(binding(), kValue, d));
  EXPECT_EQ(c.find(binding(), kValue)->data(), nullptr);
}

TEST(SessionData, AssignCopiesIntoItsOwnResource) {
  std::pmr::monotonic_buffer_resource mr;
  SessionData a;
  ASSERT_TRUE(a.decode("{\"a\":\"1\",\"b\":true,\"c\":\"a long string beyond the SSO size\"}"));
  SessionData b(&mr);
  b.set_string("old", "x");
  b.assign(a);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b.get("old"), nullptr);
  EXPECT_EQ(b.get("c")->text, "a long string beyond the SSO size");
  EXPECT_EQ(b.get("c")->text.get_allocator().resource(), &mr);
  EXPECT_FALSE(b.get("b")->is_string);
  sess::pstring ea, eb;
  a.encode(ea);
  b.encode(eb);
  EXPECT_EQ(ea, eb);
}

TEST(KeyRing, IdsAreUniqueAndNotZero) {
  std::set<uint64_t> ids;
  for (int i = 0; i < 100; i++) {
    KeyRing r;
    EXPECT_NE(r.id(), 0u);
    ids.insert(r.id());
  }
  EXPECT_EQ(ids.size(), 100u);
}

// The property the glue relies on: a hit gives exactly what envelope_open gives for the same
// inputs. Real envelopes under two rings, two names and every kind, mutated at random; only Ok
// results are inserted; every find that hits must match a fresh envelope_open.
TEST(VerifiedCache, HitsAgreeWithEnvelopeOpen) {
  const std::string secrets[] = {"secret-A-0123456789abcdefghijklmnopqrstuvwxyz",
                                 "secret-B-0123456789abcdefghijklmnopqrstuvwxyz"};
  KeyRing rings[2];
  ASSERT_TRUE(rings[0].add_secret(secrets[0]));
  ASSERT_TRUE(rings[1].add_secret(secrets[1]));
  const std::string names[] = {"session", "other"};
  const Kind kinds[] = {Kind::Signed, Kind::Sealed, Kind::Id};
  std::vector<std::string> values;
  for (auto& ring : rings) {
    for (const auto& name : names) {
      for (Kind k : kinds) {
        for (int i = 0; i < 3; i++) {
          sess::pstring out;
          std::string payload = k == Kind::Id ? std::string(16, static_cast<char>('a' + i))
                                              : "{\"user\":\"u" + std::to_string(i) + "\"}";
          ASSERT_TRUE(sess::envelope_seal(ring, k, name, kTimes, payload, out));
          values.emplace_back(out);
        }
      }
    }
  }
  VerifiedCache c(10);
  std::mt19937_64 rng(7);
  size_t hits = 0;
  for (int round = 0; round < 20000; round++) {
    std::string v = values[rng() % values.size()];
    if (rng() % 3 == 0) v[rng() % v.size()] = "AZaz09-_"[rng() % 8];
    size_t ri = rng() % 2;
    VerifiedBinding b{rings[ri].id(), kinds[rng() % 3], names[rng() % 2]};
    Times t;
    sess::pstring payload;
    auto res = sess::envelope_open(rings[ri], b.kind, b.cookie_name, v, &t, &payload);
    const auto* e = c.find(b, v);
    if (e != nullptr) {
      hits++;
      ASSERT_EQ(res, sess::OpenResult::Ok);
      EXPECT_EQ(e->payload(), std::string_view(payload));
      EXPECT_EQ(e->times.created, t.created);
      EXPECT_EQ(e->times.refreshed, t.refreshed);
    } else if (res == sess::OpenResult::Ok) {
      ASSERT_TRUE(c.insert(b, v, t, payload));
    }
  }
  EXPECT_GT(hits, 100u);
}

}  // namespace

namespace {

// A value that takes the slot of `taken` (found by inserting candidates until taken is evicted),
// inserted with payload; "" if none of many did.
std::string evict_with(VerifiedCache& c, const std::string& taken, std::string_view payload) {
  for (int i = 0; i < 100000; i++) {
    std::string v = kValue + "x" + std::to_string(i);
    if (!c.insert(binding(), v, kTimes, payload)) return "";
    if (c.find(binding(), taken) == nullptr) return v;
  }
  return "";
}

}  // namespace

// A slot's shared block is reused by the next value when nothing else holds it: emptied first,
// so the new entry never shows the old payload's decoded data (a Redis id cookie's entry is
// replaced this way on every miss); one a request holds is never reused.
TEST(VerifiedCache, ReusedBlockStartsEmpty) {
  VerifiedCache c(11);
  ASSERT_TRUE(c.insert(binding(), kValue, kTimes, "{\"user\":\"alice\"}"));
  SessionData alice;
  ASSERT_TRUE(alice.decode("{\"user\":\"alice\"}"));
  ASSERT_TRUE(c.attach_data(binding(), kValue, alice));
  const VerifiedCache::Shared* block = c.find(binding(), kValue)->shared.get();

  const std::string b = evict_with(c, kValue, "{\"user\":\"bob\"}");
  ASSERT_FALSE(b.empty());
  const auto* e = c.find(binding(), b);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->shared.get(), block);  // reused: nothing held it
  EXPECT_EQ(e->shared.use_count(), 1u);
  EXPECT_EQ(e->payload(), "{\"user\":\"bob\"}");
  EXPECT_EQ(e->data(), nullptr);      // alice's decoded data went with her payload
  SessionData bob;
  ASSERT_TRUE(bob.decode("{\"user\":\"bob\"}"));
  ASSERT_TRUE(c.attach_data(binding(), b, bob));
  ASSERT_NE(c.find(binding(), b)->data(), nullptr);
  EXPECT_EQ(c.find(binding(), b)->data()->get("user")->text, "bob");

  // Held by a request: the next value of the slot gets a block of its own.
  VerifiedCache::Hold held = c.find(binding(), b)->shared.share();
  const std::string d = evict_with(c, b, "{\"user\":\"dave\"}");
  ASSERT_FALSE(d.empty());
  e = c.find(binding(), d);
  ASSERT_NE(e, nullptr);
  EXPECT_NE(e->shared.get(), held.get());
  EXPECT_EQ(e->payload(), "{\"user\":\"dave\"}");
  EXPECT_EQ(e->data(), nullptr);
  EXPECT_EQ(held.use_count(), 1u);
  EXPECT_EQ(held.get()->payload(), "{\"user\":\"bob\"}");
  EXPECT_EQ(held.get()->data()->get("user")->text, "bob");

  // A refused insert (payload over its bound) leaves the slot empty, the block freed.
  ASSERT_FALSE(c.insert(binding(), d, kTimes, std::string(VerifiedCache::kMaxPayload + 1, 'x')));
  EXPECT_EQ(c.find(binding(), d), nullptr);
}
