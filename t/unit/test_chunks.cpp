// Unit tests for chunks.h: large sessions split over several cookies (session_cookie chunks=N),
// and joined back into the one envelope that is verified as a whole.
#include "chunks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cookie.h"
#include "envelope.h"

using sess::ChunkCookies;
using sess::ChunkHead;
using sess::ChunkJoin;
using sess::ChunkRead;
using sess::ChunkSplit;
using sess::kMaxChunks;
using sess::kMaxSetCookieLen;
using sess::pstring;

namespace {

ChunkCookies collect(std::initializer_list<std::string_view> headers,
                     std::string_view name = "s") {
  ChunkCookies c;
  for (std::string_view h : headers) sess::chunk_cookies_collect(h, name, c);
  return c;
}

std::string assemble(std::string_view head, const ChunkCookies& c, ChunkRead* r,
                     size_t max = kMaxChunks) {
  pstring out = "junk";
  *r = sess::chunk_assemble(head, max, c, out);
  return std::string(out);
}

// The Set-Cookie lines a split writes, as the filter builds them.
std::vector<std::string> lines_of(std::string_view name, std::string_view value,
                                  const sess::CookieAttrs& attrs, const ChunkSplit& split) {
  std::vector<std::string> out;
  for (size_t i = 0; i < split.count; i++) {
    pstring n, v, line;
    if (i == 0) {
      n = name;
    } else {
      sess::chunk_name(name, i, n);
    }
    sess::chunk_value(split, value, i, v);
    sess::cookie_build(n, v, attrs, line);
    out.emplace_back(line);
  }
  return out;
}

// The Cookie header a browser sends back for those lines (name=value pairs, in some order).
std::string cookie_header(const std::vector<std::string>& lines, bool reverse = false) {
  std::vector<std::string> pairs;
  for (const auto& l : lines) pairs.push_back(l.substr(0, l.find(';')));
  if (reverse) std::reverse(pairs.begin(), pairs.end());
  std::string h = "theme=dark";
  for (const auto& p : pairs) h += "; " + p;
  return h + "; lang=en";
}

size_t overhead_of(std::string_view name, const sess::CookieAttrs& a) {
  pstring line;
  sess::cookie_build(name, "", a, line);
  return line.size();
}

sess::CookieAttrs default_attrs() {
  sess::CookieAttrs a;
  a.path = "/";
  a.httponly = true;
  a.samesite = sess::SameSite::Lax;
  return a;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// chunks= and the names

TEST(Chunks, ParseChunksValue) {
  for (size_t n = 1; n <= kMaxChunks; n++) {
    size_t got = 0;
    ASSERT_TRUE(sess::chunks_parse(std::to_string(n), &got)) << n;
    EXPECT_EQ(got, n);
  }
  for (const char* bad : {"", "0", "17", "99", "100", "abc", "01", "+3", "-1", "3 ", " 3", "3k",
                          "1.5", "0x3"}) {
    size_t got = 42;
    EXPECT_FALSE(sess::chunks_parse(bad, &got)) << bad;
    EXPECT_EQ(got, 42u) << bad;
  }
}

TEST(Chunks, Index) {
  const struct {
    const char* session;
    const char* name;
    size_t index;
  } rows[] = {
      {"s", "s_1", 1},        {"s", "s_9", 9},         {"s", "s_10", 10},
      {"s", "s_15", 15},      {"s", "s_16", 0},        {"s", "s_0", 0},
      {"s", "s_01", 0},       {"s", "s_csrf", 0},      {"s", "s", 0},
      {"s", "s_", 0},         {"s", "sx_1", 0},        {"s", "s_1a", 0},
      {"s", "S_1", 0},        {"s", "x_1", 0},         {"", "_1", 0},
      {"session", "session_2", 2}, {"session", "session_1_2", 0}, {"__Host-s", "__Host-s_3", 3},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(sess::chunk_index(r.session, r.name), r.index) << r.session << " " << r.name;
    if (r.index != 0) {
      EXPECT_TRUE(sess::cookie_is_session_own(r.session, r.name)) << r.name;
    }
  }
  pstring n;
  for (size_t i = 1; i < kMaxChunks; i++) {
    n.clear();
    sess::chunk_name("sid", i, n);
    EXPECT_EQ(std::string(n), "sid_" + std::to_string(i));
    EXPECT_EQ(sess::chunk_index("sid", n), i);
    EXPECT_TRUE(sess::cookie_name_valid(n));
    EXPECT_TRUE(sess::cookie_is_session_own("sid", n));  // cookie_set refuses them
  }
}

// ---------------------------------------------------------------------------------------------
// The head

TEST(Chunks, HeadParse) {
  ChunkHead h;
  ASSERT_TRUE(sess::chunk_head_parse("AQEBAAAAAGVT", &h));  // a plain envelope: not chunked
  EXPECT_EQ(h.count, 1u);
  EXPECT_EQ(h.slice, "AQEBAAAAAGVT");
  EXPECT_FALSE(sess::chunk_head_like("AQEBAAAAAGVT"));
  EXPECT_FALSE(sess::chunk_head_like(""));

  ASSERT_TRUE(sess::chunk_head_parse("3.abc", &h));
  EXPECT_EQ(h.count, 3u);
  EXPECT_EQ(h.slice, "abc");
  ASSERT_TRUE(sess::chunk_head_parse("16.x", &h));
  EXPECT_EQ(h.count, 16u);
  ASSERT_TRUE(sess::chunk_head_parse("2.a.b", &h));  // the slice is whatever follows
  EXPECT_EQ(h.slice, "a.b");

  for (const char* bad : {"1.abc", "0.abc", "17.abc", "02.abc", "3.", "3", "3abc", "123.x",
                          "9999999999999999999999.x"}) {
    EXPECT_TRUE(sess::chunk_head_like(bad)) << bad;
    EXPECT_FALSE(sess::chunk_head_parse(bad, &h)) << bad;
  }
}

// An envelope never looks like a head: its first base64url character encodes the version byte.
TEST(Chunks, EnvelopeIsNeverHeadLike) {
  sess::KeyRing ring;
  ASSERT_TRUE(ring.add_secret("secret-A-0123456789abcdefghijklmnopqrstuvwxyz"));
  for (sess::Kind k : {sess::Kind::Signed, sess::Kind::Sealed, sess::Kind::Id}) {
    pstring v;
    ASSERT_TRUE(sess::envelope_seal(ring, k, "s", sess::Times{1, 2}, "{}", v));
    EXPECT_FALSE(sess::chunk_head_like(v)) << v;
  }
}

// ---------------------------------------------------------------------------------------------
// Collecting and joining

TEST(Chunks, Collect) {
  ChunkCookies c = collect({"a=1; s=3.xx; s_1=B; s_2=\"C\"; s_csrf=t; s_01=z; s_16=y; s_1=B"});
  EXPECT_EQ(c.present, (1u << 1) | (1u << 2));
  EXPECT_EQ(c.value[1], "B");
  EXPECT_EQ(c.value[2], "C");  // DQUOTEs stripped
  EXPECT_EQ(c.distinct[1], 1);  // the same value twice counts once
  EXPECT_EQ(c.distinct[2], 1);

  // Across header lines, and a conflicting duplicate.
  c = collect({"s_1=B", " s_3 = D ;x", "s_1=E"});
  EXPECT_EQ(c.present, (1u << 1) | (1u << 3));
  EXPECT_EQ(c.value[1], "B");
  EXPECT_EQ(c.value[3], "D");
  EXPECT_EQ(c.distinct[1], 2);

  c = collect({"session_1=x; s1=y; s_=z; s=w"});
  EXPECT_EQ(c.present, 0u);
}

TEST(Chunks, Assemble) {
  ChunkRead r;
  ChunkCookies c = collect({"s_1=BBB; s_2=CC; s_4=stale"});
  EXPECT_EQ(assemble("3.AAAA", c, &r), "AAAABBBCC");
  EXPECT_EQ(r, ChunkRead::Ok);
  EXPECT_EQ(assemble("2.AAAA", c, &r), "AAAABBB");  // chunks after the count are not read
  EXPECT_EQ(r, ChunkRead::Ok);

  EXPECT_EQ(assemble("4.AAAA", c, &r), "");  // s_3 missing
  EXPECT_EQ(r, ChunkRead::Missing);
  EXPECT_EQ(assemble("3.AAAA", c, &r, 2), "");  // chunks=2: a 3-cookie head is not read
  EXPECT_EQ(r, ChunkRead::TooMany);
  EXPECT_EQ(assemble("1.AAAA", c, &r), "");
  EXPECT_EQ(r, ChunkRead::BadHead);
  EXPECT_EQ(assemble("3.", c, &r), "");
  EXPECT_EQ(r, ChunkRead::BadHead);

  c = collect({"s_1=BBB; s_2=CC", "s_2=XX"});  // a planted second value of s_2
  EXPECT_EQ(assemble("3.AAAA", c, &r), "");
  EXPECT_EQ(r, ChunkRead::Duplicate);
  EXPECT_EQ(assemble("2.AAAA", c, &r), "AAAABBB");  // ... is not one of this session's
  EXPECT_EQ(r, ChunkRead::Ok);

  c = collect({"s_1=; s_2=CC"});  // sent empty (an expired cookie some client still sends)
  EXPECT_EQ(assemble("3.AAAA", c, &r), "");
  EXPECT_EQ(r, ChunkRead::Missing);

  for (ChunkRead v : {ChunkRead::BadHead, ChunkRead::TooMany, ChunkRead::Missing,
                      ChunkRead::Duplicate}) {
    ASSERT_NE(sess::chunk_read_text(v), nullptr);
  }
  EXPECT_EQ(sess::chunk_read_text(ChunkRead::Ok), nullptr);
}

// ---------------------------------------------------------------------------------------------
// Splitting

TEST(Chunks, SplitOneCookieIsUnchanged) {
  const size_t over = 40;
  ChunkSplit s = sess::chunk_split(kMaxSetCookieLen - over, over, 1);
  EXPECT_EQ(s.count, 1u);
  EXPECT_EQ(s.len[0], kMaxSetCookieLen - over);
  pstring v;
  sess::chunk_value(s, "whole value", 0, v);
  EXPECT_EQ(v, "whole value");  // no head
  s = sess::chunk_split(kMaxSetCookieLen - over + 1, over, 1);
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.capacity, kMaxSetCookieLen - over);
  // chunks=3, a value that fits in one: still one cookie, no head.
  s = sess::chunk_split(100, over, 3);
  EXPECT_EQ(s.count, 1u);
}

TEST(Chunks, SplitBoundaries) {
  const size_t over = 40;
  const size_t one = kMaxSetCookieLen - over;      // NAME alone
  const size_t head2 = kMaxSetCookieLen - over - 2;  // "2." + slice
  const size_t c1 = kMaxSetCookieLen - over - 2;     // "_1" + slice
  ChunkSplit s = sess::chunk_split(one + 1, over, 3);
  ASSERT_EQ(s.count, 2u);
  EXPECT_EQ(s.len[0], head2);
  EXPECT_EQ(s.len[1], one + 1 - head2);
  s = sess::chunk_split(head2 + c1, over, 3);  // exactly two full cookies
  ASSERT_EQ(s.count, 2u);
  EXPECT_EQ(s.len[1], c1);
  s = sess::chunk_split(head2 + c1 + 1, over, 3);
  ASSERT_EQ(s.count, 3u);
  EXPECT_EQ(s.len[0], head2);
  EXPECT_EQ(s.len[1], c1);
  EXPECT_EQ(s.len[2], 1u);  // "3." takes the same room as "2."
  const size_t cap3 = head2 + c1 + c1;  // c2 has the same room as c1
  s = sess::chunk_split(cap3, over, 3);
  EXPECT_EQ(s.count, 3u);
  s = sess::chunk_split(cap3 + 1, over, 3);
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.capacity, cap3);
  s = sess::chunk_split(cap3 + 1, over, 4);
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(s.len[3], 1u);
}

// Every line within the limit, the fewest cookies, slices non-empty and the whole value covered,
// for many lengths, attribute sizes and chunk limits; and the lines read back join to the value.
TEST(Chunks, SplitProperties) {
  std::mt19937 rng(7);
  const std::string name = "session";
  for (const char* path : {"/", "/some/longer/path/for/the/cookie"}) {
    for (size_t max = 1; max <= kMaxChunks; max++) {
      sess::CookieAttrs a = default_attrs();
      a.path = path;
      a.max_age = 86400;
      const size_t over = overhead_of(name, a);
      std::vector<size_t> lens = {0, 1, 100};
      for (size_t k = 1; k <= max + 1; k++) {
        for (int d = -3; d <= 3; d++) lens.push_back(k * (kMaxSetCookieLen - over) + d);
      }
      for (int i = 0; i < 20; i++) lens.push_back(rng() % (max * kMaxSetCookieLen + 100));
      for (size_t len : lens) {
        if (static_cast<ptrdiff_t>(len) < 0) continue;
        std::string value(len, 'A');
        for (size_t i = 0; i < len; i++) value[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_"[rng() % 28];
        ChunkSplit s = sess::chunk_split(len, over, max);
        if (s.count == 0) {
          EXPECT_GT(len, s.capacity) << len << " " << max;
          EXPECT_GT(max * kMaxSetCookieLen, s.capacity);
          continue;
        }
        ASSERT_LE(s.count, max);
        size_t sum = 0;
        for (size_t i = 0; i < s.count; i++) {
          sum += s.len[i];
          if (s.count > 1) {
            EXPECT_GT(s.len[i], 0u) << "empty slice " << i;
          }
        }
        EXPECT_EQ(sum, len);
        if (s.count > 1) {  // the fewest: one cookie less would not do
          EXPECT_EQ(sess::chunk_split(len, over, s.count - 1).count, 0u) << len << " " << max;
        }
        std::vector<std::string> lines = lines_of(name, value, a, s);
        for (const auto& l : lines) EXPECT_LE(l.size(), kMaxSetCookieLen) << l.substr(0, 30);
        // Back from the browser, in any order: joined to exactly the value.
        for (bool reverse : {false, true}) {
          std::string header = cookie_header(lines, reverse);
          sess::CookieCandidates first;
          sess::cookie_collect(header, name, first);
          ASSERT_EQ(first.count, 1u);
          if (s.count == 1) {
            EXPECT_EQ(first.values[0], value);
            continue;
          }
          ChunkCookies c;
          sess::chunk_cookies_collect(header, name, c);
          pstring joined;
          ASSERT_EQ(sess::chunk_assemble(first.values[0], max, c, joined), ChunkRead::Ok);
          EXPECT_EQ(std::string(joined), value);
        }
      }
    }
  }
}

TEST(Chunks, Stale) {
  const uint32_t sent = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 7);
  EXPECT_EQ(sess::chunk_stale(sent, 0), sent);  // expiring: all of them
  EXPECT_EQ(sess::chunk_stale(sent, 1), sent);  // one cookie now: every chunk is stale
  EXPECT_EQ(sess::chunk_stale(sent, 2), (1u << 2) | (1u << 3) | (1u << 7));
  EXPECT_EQ(sess::chunk_stale(sent, 4), 1u << 7);
  EXPECT_EQ(sess::chunk_stale(sent, 8), 0u);
  EXPECT_EQ(sess::chunk_stale(sent, kMaxChunks), 0u);
  EXPECT_EQ(sess::chunk_stale(1u, 0), 0u);  // bit 0 is NAME itself, never a chunk
}

// ---------------------------------------------------------------------------------------------
// With real envelopes: any chunk not of this one envelope fails verification.

namespace {

struct Chunked {
  std::string head;                 // NAME's value
  std::vector<std::string> chunks;  // NAME_1 ...
};

Chunked split_value(const std::string& value, size_t over, size_t max) {
  ChunkSplit s = sess::chunk_split(value.size(), over, max);
  EXPECT_GE(s.count, 2u);
  Chunked c;
  for (size_t i = 0; i < s.count; i++) {
    pstring v;
    sess::chunk_value(s, value, i, v);
    if (i == 0) {
      c.head = std::string(v);
    } else {
      c.chunks.emplace_back(v);
    }
  }
  return c;
}

std::string header_of(const Chunked& c) {
  std::string h = "s=" + c.head;
  for (size_t i = 0; i < c.chunks.size(); i++) {
    h += "; s_" + std::to_string(i + 1) + "=" + c.chunks[i];
  }
  return h;
}

// What a request with this Cookie header loads: Ok with the payload, or why not.
sess::OpenResult load(const sess::KeyRing& ring, sess::Kind kind, const std::string& header,
                      std::string* payload, ChunkRead* read) {
  sess::CookieCandidates first;
  sess::cookie_collect(header, "s", first);
  EXPECT_EQ(first.count, 1u);
  ChunkCookies c;
  sess::chunk_cookies_collect(header, "s", c);
  pstring joined;
  *read = sess::chunk_assemble(first.values[0], kMaxChunks, c, joined);
  if (*read != ChunkRead::Ok) return sess::OpenResult::Malformed;
  sess::Times t;
  pstring p;
  sess::OpenResult r =
      sess::envelope_open(ring, kind, "s", joined, &t, &p, sess::kMaxChunkedValueLen);
  *payload = std::string(p);
  return r;
}

}  // namespace

TEST(Chunks, EnvelopeBoundToEveryChunk) {
  sess::KeyRing ring;
  ASSERT_TRUE(ring.add_secret("secret-A-0123456789abcdefghijklmnopqrstuvwxyz"));
  const size_t over = overhead_of("s", default_attrs());
  for (sess::Kind kind : {sess::Kind::Signed, sess::Kind::Sealed}) {
    const std::string data = "{\"big\":\"" + std::string(9000, 'x') + "\"}";
    pstring v1, v2;
    ASSERT_TRUE(sess::envelope_seal(ring, kind, "s", sess::Times{100, 100}, data, v1));
    // The same session re-issued a second later (renewal): same data, same length.
    ASSERT_TRUE(sess::envelope_seal(ring, kind, "s", sess::Times{100, 101}, data, v2));
    ASSERT_EQ(v1.size(), v2.size());
    Chunked a = split_value(std::string(v1), over, 4);
    Chunked b = split_value(std::string(v2), over, 4);
    ASSERT_EQ(a.chunks.size(), 2u);  // three cookies
    std::string payload;
    ChunkRead read;

    ASSERT_EQ(load(ring, kind, header_of(a), &payload, &read), sess::OpenResult::Ok);
    EXPECT_EQ(payload, data);
    ASSERT_EQ(load(ring, kind, header_of(b), &payload, &read), sess::OpenResult::Ok);

    // A byte changed in any cookie.
    for (size_t k = 0; k <= a.chunks.size(); k++) {
      Chunked t = a;
      std::string& part = k == 0 ? t.head : t.chunks[k - 1];
      size_t at = part.size() / 2;
      part[at] = part[at] == 'A' ? 'B' : 'A';
      EXPECT_NE(load(ring, kind, header_of(t), &payload, &read), sess::OpenResult::Ok) << k;
    }
    // An old chunk next to a new head (and every other mix of the two states): it fails, or
    // (signed, a middle chunk of payload bytes only) it is byte for byte the chunk it replaces.
    EXPECT_NE(a.head, b.head);               // the times
    EXPECT_NE(a.chunks[1], b.chunks[1]);     // the MAC or tag
    EXPECT_EQ(a.chunks[0] == b.chunks[0], kind == sess::Kind::Signed);
    for (unsigned mask = 1; mask < 7; mask++) {
      Chunked t = b;
      if (mask & 1) t.head = a.head;
      if (mask & 2) t.chunks[0] = a.chunks[0];
      if (mask & 4) t.chunks[1] = a.chunks[1];
      const std::string h = header_of(t);
      if (h == header_of(a) || h == header_of(b)) continue;
      EXPECT_NE(load(ring, kind, h, &payload, &read), sess::OpenResult::Ok) << mask;
    }
    // Chunks swapped.
    Chunked t = a;
    std::swap(t.chunks[0], t.chunks[1]);
    EXPECT_NE(load(ring, kind, header_of(t), &payload, &read), sess::OpenResult::Ok);
    // A chunk missing, or a count that leaves one out.
    t = a;
    t.chunks.pop_back();
    EXPECT_EQ(load(ring, kind, header_of(t), &payload, &read), sess::OpenResult::Malformed);
    EXPECT_EQ(read, ChunkRead::Missing);
    t = a;
    t.head[0] = '2';
    EXPECT_NE(load(ring, kind, header_of(t), &payload, &read), sess::OpenResult::Ok);
    // A count that takes in one more (a stale chunk left from a larger session).
    t = a;
    t.head[0] = '4';
    t.chunks.push_back(b.chunks[1]);
    EXPECT_NE(load(ring, kind, header_of(t), &payload, &read), sess::OpenResult::Ok);
    // Both values of a chunk sent: not tried one by one.
    EXPECT_EQ(load(ring, kind, header_of(a) + "; s_2=" + b.chunks[1], &payload, &read),
              sess::OpenResult::Malformed);
    EXPECT_EQ(read, ChunkRead::Duplicate);
    // The same split differently (a client re-cutting the one envelope) is that envelope.
    t = a;
    t.chunks[0] = t.chunks[0] + t.chunks[1].substr(0, 10);
    t.chunks[1] = t.chunks[1].substr(10);
    ASSERT_EQ(load(ring, kind, header_of(t), &payload, &read), sess::OpenResult::Ok);
    EXPECT_EQ(payload, data);
  }
}

TEST(Chunks, OpenBoundAllowsJoinedValues) {
  // envelope_open's default bound is one cookie; a joined value needs kMaxChunkedValueLen.
  sess::KeyRing ring;
  ASSERT_TRUE(ring.add_secret("secret-A-0123456789abcdefghijklmnopqrstuvwxyz"));
  pstring v;
  ASSERT_TRUE(sess::envelope_seal(ring, sess::Kind::Signed, "s", sess::Times{1, 1},
                                  std::string(40000, 'y'), v));
  ASSERT_LT(v.size(), sess::kMaxChunkedValueLen);
  sess::Times t;
  pstring p;
  EXPECT_EQ(sess::envelope_open(ring, sess::Kind::Signed, "s", v, &t, &p),
            sess::OpenResult::Malformed);
  EXPECT_EQ(sess::envelope_open(ring, sess::Kind::Signed, "s", v, &t, &p,
                                sess::kMaxChunkedValueLen),
            sess::OpenResult::Ok);
}
