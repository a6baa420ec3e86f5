#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory_resource>
#include <random>
#include <set>
#include <string>

#include "base64url.h"
#include "envelope.h"

using sess::envelope_open;
using sess::envelope_seal;
using sess::KeyRing;
using sess::Kind;
using sess::OpenResult;
using sess::pstring;
using sess::Times;

namespace {

const std::string kA = "secret-A-0123456789abcdefghijklmnopqrstuvwxyz";
const std::string kB = "secret-B-0123456789abcdefghijklmnopqrstuvwxyz";
const std::string kC = "secret-C-0123456789abcdefghijklmnopqrstuvwxyz";
const std::string kD = "secret-D-0123456789abcdefghijklmnopqrstuvwxyz";
const Kind kKinds[] = {Kind::Signed, Kind::Sealed, Kind::Id};
const Times kTimes{1700000000, 1700000100};

std::unique_ptr<KeyRing> make_ring(std::initializer_list<std::string> secrets) {
  auto ring = std::make_unique<KeyRing>();
  for (const auto& s : secrets) EXPECT_TRUE(ring->add_secret(s));
  return ring;
}

std::string seal(const KeyRing& ring, Kind kind, std::string_view name, std::string_view payload,
                 const Times& t = kTimes) {
  pstring out;
  EXPECT_TRUE(envelope_seal(ring, kind, name, t, payload, out));
  return std::string(out);
}

OpenResult open(const KeyRing& ring, Kind kind, std::string_view name, std::string_view value,
                std::string* payload = nullptr, Times* t = nullptr, size_t max_len = 8192) {
  Times tt{};
  pstring p = "junk that must be replaced";
  OpenResult r = envelope_open(ring, kind, name, value, &tt, &p, max_len);
  if (r != OpenResult::Ok) {
    EXPECT_TRUE(p.empty()) << "failed open left bytes in payload";
  }
  if (payload) *payload = std::string(p);
  if (t) *t = tt;
  return r;
}

std::string decode(std::string_view v) {
  pstring out;
  EXPECT_TRUE(sess::base64url_decode(v, out));
  return std::string(out);
}

std::string encode(std::string_view raw) {
  pstring out;
  sess::base64url_encode(raw, out);
  return std::string(out);
}

size_t overhead(Kind kind) {
  return kind == Kind::Sealed ? sess::kEnvelopeHeaderLen + 12 + 16 : sess::kEnvelopeHeaderLen + 32;
}

std::string payload_for(Kind kind) {
  if (kind == Kind::Id) {
    return std::string("\x00\x01\x02\xff\xfe\x80id-bytes-16", sess::kSessionIdLen);
  }
  return "{\"user\":\"alice\",\"role\":\"admin\"}";
}

// Counts allocations made through a pstring's memory resource.
class CountingResource : public std::pmr::memory_resource {
 public:
  size_t allocs = 0;

 private:
  void* do_allocate(size_t bytes, size_t align) override {
    allocs++;
    return std::pmr::new_delete_resource()->allocate(bytes, align);
  }
  void do_deallocate(void* p, size_t bytes, size_t align) override {
    std::pmr::new_delete_resource()->deallocate(p, bytes, align);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
};

}  // namespace

TEST(Envelope, RoundTripAllKinds) {
  auto ring = make_ring({kA});
  for (Kind kind : kKinds) {
    const std::string payload = payload_for(kind);
    const std::string v = seal(*ring, kind, "session", payload);
    EXPECT_EQ(v.size(), sess::envelope_sealed_len(kind, payload.size()));
    std::string got;
    Times t;
    ASSERT_EQ(open(*ring, kind, "session", v, &got, &t), OpenResult::Ok);
    EXPECT_EQ(got, payload);
    EXPECT_EQ(t.created, kTimes.created);
    EXPECT_EQ(t.refreshed, kTimes.refreshed);
  }
}

TEST(Envelope, LayoutMatchesHeaderComment) {
  auto ring = make_ring({kA});
  const Times t{0x0102030405060708ull, 0x1112131415161718ull};
  for (Kind kind : kKinds) {
    const std::string raw = decode(seal(*ring, kind, "session", "PAYLOAD", t));
    ASSERT_EQ(raw.size(), overhead(kind) + 7);
    EXPECT_EQ(raw[0], 1);
    EXPECT_EQ(raw[1], static_cast<char>(kind));
    EXPECT_EQ(static_cast<uint8_t>(raw[2]), ring->hint(0));
    EXPECT_EQ(raw.substr(3, 8), "\x01\x02\x03\x04\x05\x06\x07\x08");
    EXPECT_EQ(raw.substr(11, 8), "\x11\x12\x13\x14\x15\x16\x17\x18");
    if (kind != Kind::Sealed) {
      EXPECT_EQ(raw.substr(19, 7), "PAYLOAD");
      // MAC over name | 0x00 | header | payload with the cookie MAC key.
      std::string signed_part = std::string("session") + '\0' + raw.substr(0, 26);
      std::string_view part(signed_part);
      unsigned char mac[32];
      ASSERT_TRUE(ring->mac(0, sess::KeyUse::Cookie, &part, 1, mac));
      EXPECT_EQ(raw.substr(26), std::string(reinterpret_cast<char*>(mac), 32));
    } else {
      // AES-GCM with aad = name | 0x00 | header: decrypt by hand.
      std::string aad = std::string("session") + '\0' + raw.substr(0, 19);
      std::string ct = raw.substr(31, 7), pt(7, '\0');
      ASSERT_TRUE(ring->open(0, reinterpret_cast<const unsigned char*>(raw.data() + 19), aad, ct,
                             reinterpret_cast<const unsigned char*>(raw.data() + 38),
                             reinterpret_cast<unsigned char*>(pt.data())));
      EXPECT_EQ(pt, "PAYLOAD");
    }
  }
}

TEST(Envelope, PayloadEdgeCases) {
  auto ring = make_ring({kA});
  std::string all;
  for (int c = 0; c < 256; c++) all.push_back(static_cast<char>(c));
  for (Kind kind : kKinds) {
    for (const std::string& payload :
         {std::string(), std::string(1, '\0'), all, std::string(3000, 'z')}) {
      for (const Times& t : {Times{0, 0}, Times{0, ~0ull}, Times{~0ull, ~0ull}}) {
        std::string got;
        Times tt;
        ASSERT_EQ(open(*ring, kind, "s", seal(*ring, kind, "s", payload, t), &got, &tt),
                  OpenResult::Ok);
        EXPECT_EQ(got, payload);
        EXPECT_EQ(tt.created, t.created);
        EXPECT_EQ(tt.refreshed, t.refreshed);
      }
    }
  }
}

TEST(Envelope, SealAppendsToOutput) {
  auto ring = make_ring({kA});
  for (Kind kind : kKinds) {
    pstring out = "session=";
    ASSERT_TRUE(envelope_seal(*ring, kind, "session", kTimes, "v", out));
    ASSERT_EQ(out.substr(0, 8), "session=");
    EXPECT_EQ(open(*ring, kind, "session", std::string_view(out).substr(8)), OpenResult::Ok);
  }
}

TEST(Envelope, SealedPayloadIsEncrypted) {
  auto ring = make_ring({kA});
  const std::string secret = "user=alice;SECRET-MARKER-1234567890";
  const std::string v = seal(*ring, Kind::Sealed, "session", secret);
  const std::string raw = decode(v);
  EXPECT_EQ(raw.find("SECRET"), std::string::npos);
  EXPECT_EQ(raw.find("alice"), std::string::npos);
  // Not visible in any base64 alignment either.
  for (size_t off = 0; off < 3; off++) {
    std::string e = encode(secret.substr(off));
    EXPECT_EQ(v.find(e.substr(4, 12)), std::string::npos);
  }
  // Signed is readable (by design), which shows the check above can fail.
  EXPECT_NE(decode(seal(*ring, Kind::Signed, "session", secret)).find("SECRET"), std::string::npos);
}

TEST(Envelope, SealedNonceIsFreshEachTime) {
  auto ring = make_ring({kA});
  std::set<std::string> values, nonces;
  for (int i = 0; i < 200; i++) {
    std::string v = seal(*ring, Kind::Sealed, "session", "same payload");
    values.insert(v);
    nonces.insert(decode(v).substr(19, 12));
  }
  EXPECT_EQ(values.size(), 200u);
  EXPECT_EQ(nonces.size(), 200u);
  // Signed/Id are deterministic.
  EXPECT_EQ(seal(*ring, Kind::Signed, "s", "p"), seal(*ring, Kind::Signed, "s", "p"));
}

TEST(Envelope, EveryBitFlipIsRejected) {
  auto ring = make_ring({kA});
  for (Kind kind : kKinds) {
    const std::string raw = decode(seal(*ring, kind, "session", payload_for(kind)));
    ASSERT_EQ(open(*ring, kind, "session", encode(raw)), OpenResult::Ok);
    for (size_t i = 0; i < raw.size(); i++) {
      const OpenResult expected = i < 2 ? OpenResult::Malformed : OpenResult::BadMac;
      for (int bit = 0; bit < 8; bit++) {
        std::string t = raw;
        t[i] = static_cast<char>(t[i] ^ (1 << bit));
        ASSERT_EQ(open(*ring, kind, "session", encode(t)), expected)
            << "kind " << int(kind) << " byte " << i << " bit " << bit;
      }
      std::string t = raw;
      t[i] = static_cast<char>(~t[i]);
      ASSERT_EQ(open(*ring, kind, "session", encode(t)), expected) << "byte " << i;
    }
  }
}

TEST(Envelope, EveryCharacterChangeIsRejected) {
  auto ring = make_ring({kA});
  const std::string alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (Kind kind : kKinds) {
    const std::string v = seal(*ring, kind, "session", payload_for(kind));
    for (size_t i = 0; i < v.size(); i++) {
      for (char c : alpha) {
        if (c == v[i]) continue;
        std::string t = v;
        t[i] = c;
        ASSERT_NE(open(*ring, kind, "session", t), OpenResult::Ok) << i << " " << c;
      }
    }
  }
}

TEST(Envelope, TruncationAtEveryLength) {
  auto ring = make_ring({kA});
  for (Kind kind : kKinds) {
    const std::string v = seal(*ring, kind, "session", payload_for(kind));
    const std::string raw = decode(v);
    for (size_t len = 0; len < raw.size(); len++) {
      const OpenResult expected = len < overhead(kind) ? OpenResult::Malformed : OpenResult::BadMac;
      ASSERT_EQ(open(*ring, kind, "session", encode(raw.substr(0, len))), expected) << len;
    }
    for (size_t len = 0; len < v.size(); len++) {
      ASSERT_NE(open(*ring, kind, "session", v.substr(0, len)), OpenResult::Ok) << len;
      ASSERT_NE(open(*ring, kind, "session", v.substr(v.size() - len)), OpenResult::Ok) << len;
    }
  }
}

TEST(Envelope, AppendedBytesAreRejected) {
  auto ring = make_ring({kA});
  for (Kind kind : kKinds) {
    const std::string v = seal(*ring, kind, "session", payload_for(kind));
    const std::string raw = decode(v);
    for (int c = 0; c < 256; c++) {
      ASSERT_EQ(open(*ring, kind, "session", encode(raw + static_cast<char>(c))),
                OpenResult::BadMac)
          << c;
    }
    ASSERT_EQ(open(*ring, kind, "session", encode(raw + raw)), OpenResult::BadMac);
    for (const char* tail : {"A", "AA", "AAA", "AAAA", "=", " ", ";", "\n"}) {
      ASSERT_NE(open(*ring, kind, "session", v + tail), OpenResult::Ok) << tail;
    }
  }
}

TEST(Envelope, ReorderedTimestampsAreRejected) {
  auto ring = make_ring({kA});
  for (Kind kind : kKinds) {
    std::string raw = decode(seal(*ring, kind, "session", payload_for(kind)));
    std::string swapped = raw.substr(0, 3) + raw.substr(11, 8) + raw.substr(3, 8) + raw.substr(19);
    ASSERT_NE(swapped, raw);
    EXPECT_EQ(open(*ring, kind, "session", encode(swapped)), OpenResult::BadMac);
  }
}

TEST(Envelope, CookieNameIsBound) {
  auto ring = make_ring({kA});
  for (Kind kind : kKinds) {
    const std::string v = seal(*ring, kind, "session", payload_for(kind));
    EXPECT_EQ(open(*ring, kind, "session", v), OpenResult::Ok);
    for (const char* other : {"session2", "sessio", "Session", "", "other", "__Host-session"}) {
      EXPECT_EQ(open(*ring, kind, other, v), OpenResult::BadMac) << other;
    }
    EXPECT_EQ(open(*ring, kind, std::string_view("session\0", 8), v), OpenResult::BadMac);
    // The empty name works as a name of its own.
    EXPECT_EQ(open(*ring, kind, "", seal(*ring, kind, "", "x")), OpenResult::Ok);
  }
}

TEST(Envelope, WrongKindIsMalformed) {
  auto ring = make_ring({kA});
  for (Kind sealed_as : kKinds) {
    const std::string v = seal(*ring, sealed_as, "session", payload_for(Kind::Id));
    for (Kind opened_as : kKinds) {
      if (opened_as == sealed_as) continue;
      EXPECT_EQ(open(*ring, opened_as, "session", v), OpenResult::Malformed)
          << int(sealed_as) << " as " << int(opened_as);
    }
    EXPECT_EQ(open(*ring, static_cast<Kind>(0), "session", v), OpenResult::Malformed);
    EXPECT_EQ(open(*ring, static_cast<Kind>(4), "session", v), OpenResult::Malformed);
  }
  pstring out;
  EXPECT_FALSE(envelope_seal(*ring, static_cast<Kind>(9), "s", kTimes, "p", out));
  EXPECT_TRUE(out.empty());
}

TEST(Envelope, WrongVersionIsMalformed) {
  auto ring = make_ring({kA});
  std::string raw = decode(seal(*ring, Kind::Signed, "session", "p"));
  for (int ver : {0, 2, 255}) {
    raw[0] = static_cast<char>(ver);
    EXPECT_EQ(open(*ring, Kind::Signed, "session", encode(raw)), OpenResult::Malformed);
  }
}

TEST(Envelope, EmptyGarbageAndOversized) {
  auto ring = make_ring({kA});
  std::mt19937 rng(7);
  const std::string alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (Kind kind : kKinds) {
    EXPECT_EQ(open(*ring, kind, "session", ""), OpenResult::Malformed);
    EXPECT_EQ(open(*ring, kind, "session", "deleted"), OpenResult::Malformed);
    EXPECT_EQ(open(*ring, kind, "session", "eyJ1c2VyIjoiYWxpY2UifQ.sig"), OpenResult::Malformed);
    EXPECT_EQ(open(*ring, kind, "session", std::string(400, '=')), OpenResult::Malformed);
    for (int i = 0; i < 500; i++) {
      std::string g(rng() % 200, '\0');
      for (auto& c : g) c = i % 2 ? static_cast<char>(rng()) : alpha[rng() % 64];
      ASSERT_NE(open(*ring, kind, "session", g), OpenResult::Ok) << g;
    }
    const std::string v = seal(*ring, kind, "session", std::string(100, 'p'));
    EXPECT_EQ(open(*ring, kind, "session", v, nullptr, nullptr, v.size()), OpenResult::Ok);
    EXPECT_EQ(open(*ring, kind, "session", v, nullptr, nullptr, v.size() - 1),
              OpenResult::Malformed);
    // Oversized values are rejected even when otherwise valid.
    const std::string big = seal(*ring, kind, "session", std::string(9000, 'p'));
    EXPECT_EQ(open(*ring, kind, "session", big), OpenResult::Malformed);
    EXPECT_EQ(open(*ring, kind, "session", big, nullptr, nullptr, 20000), OpenResult::Ok);
  }
}

TEST(Envelope, KeyRotationEveryKeyVerifies) {
  auto abc = make_ring({kA, kB, kC});
  for (Kind kind : kKinds) {
    for (const std::string& first : {kA, kB, kC}) {
      auto signer = make_ring({first, kD});
      const std::string v = seal(*signer, kind, "session", payload_for(kind));
      std::string got;
      EXPECT_EQ(open(*abc, kind, "session", v, &got), OpenResult::Ok);
      EXPECT_EQ(got, payload_for(kind));
      // A ring that lacks this secret rejects it.
      std::vector<std::string> others;
      for (const std::string& s : {kA, kB, kC}) {
        if (s != first) others.push_back(s);
      }
      auto without = make_ring({others[0], others[1], kD + "x"});
      EXPECT_EQ(open(*without, kind, "session", v), OpenResult::BadMac);
    }
    // ABC signs with A; a ring that only knows C (or nothing) rejects that.
    const std::string v = seal(*abc, kind, "session", "p");
    EXPECT_EQ(open(*make_ring({kC}), kind, "session", v), OpenResult::BadMac);
    EXPECT_EQ(open(*make_ring({kA}), kind, "session", v), OpenResult::Ok);
  }
}

TEST(Envelope, EmptyRing) {
  KeyRing empty;
  auto ring = make_ring({kA});
  for (Kind kind : kKinds) {
    pstring out = "keep";
    EXPECT_FALSE(envelope_seal(empty, kind, "s", kTimes, "p", out));
    EXPECT_EQ(out, "keep");
    EXPECT_EQ(open(empty, kind, "s", seal(*ring, kind, "s", "p")), OpenResult::BadMac);
  }
}

// Two secrets whose one-byte hints collide: verification must try both candidates, and a
// failed candidate must not spoil the value for the next (Sealed decrypts before it verifies).
TEST(Envelope, HintCollisionTriesEveryCandidate) {
  std::map<uint8_t, std::string> seen;
  std::string s1, s2;
  for (int i = 0; i < 257 && s2.empty(); i++) {  // pigeonhole: a collision within 257
    std::string s = "collision-candidate-secret-0123456789-" + std::to_string(i);
    KeyRing r;
    ASSERT_TRUE(r.add_secret(s));
    auto [it, inserted] = seen.emplace(r.hint(0), s);
    if (!inserted) {
      s1 = it->second;
      s2 = s;
    }
  }
  ASSERT_FALSE(s2.empty());
  auto both = make_ring({s1, s2});
  ASSERT_EQ(both->hint(0), both->hint(1));
  for (Kind kind : kKinds) {
    for (const std::string& signer_secret : {s1, s2}) {
      auto signer = make_ring({signer_secret});
      std::string got;
      EXPECT_EQ(open(*both, kind, "session", seal(*signer, kind, "session", "payload"), &got),
                OpenResult::Ok);
      EXPECT_EQ(got, "payload");
    }
  }
}

TEST(Envelope, IdKindDoesNotCheckPayloadLength) {
  auto ring = make_ring({kA});
  for (size_t n : {0, 1, 15, 16, 17, 64}) {
    std::string got;
    EXPECT_EQ(open(*ring, Kind::Id, "sid", seal(*ring, Kind::Id, "sid", std::string(n, 'i')), &got),
              OpenResult::Ok);
    EXPECT_EQ(got.size(), n);
  }
}

TEST(Envelope, SealedLenMatches) {
  auto ring = make_ring({kA});
  for (Kind kind : kKinds) {
    for (size_t n = 0; n < 100; n++) {
      EXPECT_EQ(seal(*ring, kind, "session", std::string(n, 'x')).size(),
                sess::envelope_sealed_len(kind, n));
    }
  }
}

// The only allocation per operation is the output string growing once.
TEST(Envelope, OneAllocationPerOperation) {
  auto ring = make_ring({kA});
  for (Kind kind : kKinds) {
    CountingResource res;
    pstring out(&res);
    ASSERT_TRUE(envelope_seal(*ring, kind, "session", kTimes, std::string(200, 'p'), out));
    EXPECT_EQ(res.allocs, 1u);
    res.allocs = 0;
    pstring payload(&res);
    Times t;
    ASSERT_EQ(envelope_open(*ring, kind, "session", out, &t, &payload), OpenResult::Ok);
    EXPECT_EQ(std::string_view(payload), std::string(200, 'p'));
    EXPECT_EQ(res.allocs, 1u);
  }
}

// envelope_peek_id reads what envelope_open would give for a genuine Id envelope of a session
// id, and its proof is the header and the MAC; other values are refused.
TEST(Envelope, PeekIdMatchesOpen) {
  auto ring = make_ring({kA});
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; i++) {
    std::string id(sess::kSessionIdLen, '\0');
    for (char& c : id) c = static_cast<char>(rng());
    const Times t{rng() >> 1, rng() >> 1};
    const std::string v = seal(*ring, Kind::Id, "sid", id, t);
    std::string got;
    Times opened{};
    ASSERT_EQ(open(*ring, Kind::Id, "sid", v, &got, &opened), OpenResult::Ok);
    sess::IdEnvelope e{};
    ASSERT_TRUE(sess::envelope_peek_id(v, &e));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(e.id), sizeof(e.id)), got);
    EXPECT_EQ(e.times.created, opened.created);
    EXPECT_EQ(e.times.refreshed, opened.refreshed);
    const std::string raw = decode(v);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(e.proof), sizeof(e.proof)),
              raw.substr(0, sess::kEnvelopeHeaderLen) +
                  raw.substr(sess::kEnvelopeHeaderLen + sess::kSessionIdLen));
  }
}

// Every byte of an Id envelope is in its id or its proof: two values of one id differ in their
// proofs whatever byte differs.
TEST(Envelope, PeekIdProofCoversEveryByte) {
  auto ring = make_ring({kA});
  const std::string v = seal(*ring, Kind::Id, "sid", std::string(sess::kSessionIdLen, 'i'));
  const std::string raw = decode(v);
  sess::IdEnvelope base{};
  ASSERT_TRUE(sess::envelope_peek_id(v, &base));
  for (size_t at = 0; at < raw.size(); at++) {
    if (at == 0 || at == 1) continue;  // version and kind: refused, below
    std::string changed = raw;
    changed[at] = static_cast<char>(changed[at] ^ 0x01);
    sess::IdEnvelope e{};
    ASSERT_TRUE(sess::envelope_peek_id(encode(changed), &e)) << at;
    const bool in_id = at >= sess::kEnvelopeHeaderLen &&
                       at < sess::kEnvelopeHeaderLen + sess::kSessionIdLen;
    EXPECT_TRUE(std::memcmp(e.proof, base.proof, sizeof(e.proof)) != 0 ||
                std::memcmp(e.id, base.id, sizeof(e.id)) != 0)
        << at;
    EXPECT_EQ(std::memcmp(e.id, base.id, sizeof(e.id)) != 0, in_id) << at;
  }
}

TEST(Envelope, PeekIdRefusesOtherValues) {
  auto ring = make_ring({kA});
  const std::string id(sess::kSessionIdLen, 'i');
  const std::string v = seal(*ring, Kind::Id, "sid", id);
  sess::IdEnvelope e{};
  // other lengths: another payload size, truncated, extended
  EXPECT_FALSE(sess::envelope_peek_id(seal(*ring, Kind::Id, "sid", id + "x"), &e));
  EXPECT_FALSE(sess::envelope_peek_id(seal(*ring, Kind::Id, "sid", id.substr(1)), &e));
  EXPECT_FALSE(sess::envelope_peek_id(v.substr(0, v.size() - 1), &e));
  EXPECT_FALSE(sess::envelope_peek_id(v + "A", &e));
  EXPECT_FALSE(sess::envelope_peek_id("", &e));
  // other kinds of the same length: a Signed envelope of 16 bytes
  const std::string s = seal(*ring, Kind::Signed, "sid", id);
  ASSERT_EQ(s.size(), v.size());
  EXPECT_FALSE(sess::envelope_peek_id(s, &e));
  // another version byte
  std::string raw = decode(v);
  raw[0] = 2;
  EXPECT_FALSE(sess::envelope_peek_id(encode(raw), &e));
  // not base64url anywhere
  for (size_t at : {size_t{0}, size_t{20}, size_t{47}, size_t{60}, v.size() - 1}) {
    std::string bad = v;
    bad[at] = '*';
    EXPECT_FALSE(sess::envelope_peek_id(bad, &e)) << at;
  }
}
