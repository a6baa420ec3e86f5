// From the review of the verified-cookie table's slot-hash compare (mix): same tail other prefix,
// failed inserts, clear and reuse, random inserts with attach_data.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "session_data.h"
#include "verified_cache.h"

using sess::Kind;
using sess::Times;
using sess::VerifiedBinding;
using sess::VerifiedCache;

namespace {

const Times kT{1700000000, 1700000100};
VerifiedBinding B(uint64_t ring = 7, Kind kind = Kind::Sealed, std::string_view name = "session") {
  return VerifiedBinding{ring, kind, name};
}

std::string rnd(std::mt19937_64& g, size_t n) {
  std::string s(n, 'a');
  for (auto& c : s) c = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[g() % 64];
  return s;
}

// Same length and last 16 bytes (same mix, same slot), other prefix: never a hit.
TEST(ReviewMix, SameTailOtherPrefixIsAMiss) {
  VerifiedCache c(99);
  std::mt19937_64 g(1);
  for (size_t n = 17; n < 300; n += 7) {
    std::string v = rnd(g, n);
    ASSERT_TRUE(c.insert(B(), v, kT, "{}"));
    for (size_t i = 0; i + 16 < n; i++) {
      std::string w = v;
      w[i] = w[i] == 'x' ? 'y' : 'x';
      EXPECT_EQ(c.find(B(), w), nullptr) << n << " " << i;
    }
    EXPECT_NE(c.find(B(), v), nullptr);
  }
}

// A failed insert (name or payload over bounds) in the slot of a stored entry: the old value is
// gone, and the new value is no hit, nor is the old one, under any binding.
TEST(ReviewMix, FailedInsertLeavesNoHit) {
  VerifiedCache c(5);
  std::mt19937_64 g(2);
  std::string v = rnd(g, 80);
  ASSERT_TRUE(c.insert(B(), v, kT, "{}"));
  // Another value, same slot: search for one.
  std::string w;
  for (;;) {
    w = rnd(g, 80);
    VerifiedCache probe(5);
    ASSERT_TRUE(probe.insert(B(), w, kT, "{}"));
    // Same slot iff inserting w into a copy with v evicts v.
    VerifiedCache probe2(5);
    ASSERT_TRUE(probe2.insert(B(), v, kT, "{}"));
    ASSERT_TRUE(probe2.insert(B(), w, kT, "{}"));
    if (probe2.find(B(), v) == nullptr) break;
  }
  EXPECT_FALSE(c.insert(B(), w, kT, std::string(VerifiedCache::kMaxPayload + 1, 'x')));
  EXPECT_EQ(c.find(B(), v), nullptr);
  EXPECT_EQ(c.find(B(), w), nullptr);
  EXPECT_EQ(c.size(), 0u);
  // Same value, failed insert (long name), then the value under the short name: a miss.
  ASSERT_TRUE(c.insert(B(), v, kT, "{}"));
  std::string longname(VerifiedCache::kMaxName + 1, 'n');
  EXPECT_FALSE(c.insert(B(7, Kind::Sealed, longname), v, kT, "{}"));
  EXPECT_EQ(c.find(B(), v), nullptr);
  EXPECT_EQ(c.find(B(7, Kind::Sealed, longname), v), nullptr);
  // Reinsert: a hit again.
  ASSERT_TRUE(c.insert(B(), v, kT, "{}"));
  EXPECT_NE(c.find(B(), v), nullptr);
}

TEST(ReviewMix, ClearThenReuse) {
  VerifiedCache c(6);
  std::mt19937_64 g(3);
  std::vector<std::string> vs;
  for (int i = 0; i < 2000; i++) {
    vs.push_back(rnd(g, 20 + i % 100));
    ASSERT_TRUE(c.insert(B(), vs.back(), kT, "{}"));
  }
  c.clear();
  EXPECT_EQ(c.size(), 0u);
  for (auto& v : vs) ASSERT_EQ(c.find(B(), v), nullptr);
  // Reinsert half under another ring; only those hit, only under that ring.
  for (size_t i = 0; i < vs.size(); i += 2) ASSERT_TRUE(c.insert(B(8), vs[i], kT, "{}"));
  for (size_t i = 0; i < vs.size(); i++) {
    EXPECT_EQ(c.find(B(7), vs[i]), nullptr);
    const auto* e = c.find(B(8), vs[i]);
    if (e != nullptr) { EXPECT_EQ(i % 2, 0u); }
  }
  // The last inserted is always found.
  EXPECT_NE(c.find(B(8), vs[vs.size() - 2]), nullptr);
}

// Every insert is found right after, whatever it evicted; attach_data goes with the entry.
TEST(ReviewMix, InsertThenFindAlwaysAndAttach) {
  VerifiedCache c(7);
  std::mt19937_64 g(4);
  sess::SessionData d(std::pmr::new_delete_resource());
  ASSERT_TRUE(d.decode("{\"user\":\"bob\"}"));
  for (int i = 0; i < 20000; i++) {
    std::string v = rnd(g, 1 + g() % 200);
    Kind k = (g() & 1) ? Kind::Sealed : Kind::Signed;
    ASSERT_TRUE(c.insert(B(7 + g() % 3, k), v, kT, "{\"user\":\"bob\"}"));
    ASSERT_NE(c.find(B(7 + 0, k), v) == nullptr && c.find(B(8, k), v) == nullptr &&
                  c.find(B(9, k), v) == nullptr, true);
  }
  std::string v = rnd(g, 90);
  ASSERT_TRUE(c.insert(B(), v, kT, "{\"user\":\"bob\"}"));
  EXPECT_TRUE(c.attach_data(B(), v, d));
  EXPECT_FALSE(c.attach_data(B(), v, d));
  ASSERT_NE(c.find(B(), v)->data(), nullptr);
  // Same value, other kind (mix differs): its own entry, no data attached yet.
  ASSERT_TRUE(c.insert(B(7, Kind::Signed), v, kT, "{\"user\":\"bob\"}"));
  const auto* e = c.find(B(7, Kind::Signed), v);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->data(), nullptr);
}

}  // namespace
