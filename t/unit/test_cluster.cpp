// Unit tests for cluster.h: CRC16 and key slots, CLUSTER SLOTS, the slot map and redirections.
// The replies and slots are what redis-server 7.0.15 sent and computed (CLUSTER KEYSLOT).
#include "cluster.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "redis_replies.h"

using redis_replies::reply;
using sess::NodeAddr;
using sess::Redirect;
using sess::RedirectKind;
using sess::RespValue;
using sess::SlotMap;
using sess::SlotRange;

namespace {


NodeAddr node(std::string host, uint16_t port) {
  NodeAddr n;
  n.host = std::move(host);
  n.port = port;
  return n;
}

SlotRange range(uint16_t first, uint16_t last, std::string host, uint16_t port) {
  SlotRange r;
  r.first = first;
  r.last = last;
  r.master = node(std::move(host), port);
  return r;
}

// "first-last host:port" per range.
std::vector<std::string> show(const std::vector<SlotRange>& ranges) {
  std::vector<std::string> out;
  for (const auto& r : ranges) {
    out.push_back(std::to_string(r.first) + "-" + std::to_string(r.last) + " " + r.master.host +
                  ":" + std::to_string(r.master.port));
  }
  return out;
}

using Lines = std::vector<std::string>;

// Bit by bit, the textbook definition (polynomial 0x1021, initial value 0, no reflection).
uint16_t ref_crc16(std::string_view s) {
  uint16_t crc = 0;
  for (unsigned char c : s) {
    crc ^= static_cast<uint16_t>(c << 8);
    for (int i = 0; i < 8; i++) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

// A single node given every slot before it met any other: its own address is "".
const char kSlotsSelf[] =
    "*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$0\r\n\r\n:39510\r\n$40\r\n"
    "6726d14d9ecd4fae736440aeb539ed695ea7e82b\r\n*0\r\n";

// cluster-preferred-endpoint-type unknown-endpoint: nil hosts, metadata with ip and hostname.
const char kSlotsUnknownEndpoint[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$-1\r\n:27603\r\n$40\r\n"
    "022b73d27ba2412971b1e9edec2f36c8b35e22ff\r\n*4\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\n"
    "hostname\r\n$14\r\nnode-a.example\r\n*4\r\n$-1\r\n:27607\r\n$40\r\n"
    "ebc5cfd544e7755669bc569cd9ce2fe7bd4945db\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    ":5461\r\n:10922\r\n*4\r\n$-1\r\n:27604\r\n$40\r\n"
    "a59f1f04a50a349c80bfafe3eba8211711e56a3d\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$-1\r\n:27608\r\n$40\r\nf7022ce667207fe30ef99d451def5a903b977095\r\n*2\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n*4\r\n:10923\r\n:16383\r\n*4\r\n$-1\r\n:27605\r\n$40\r\n"
    "d6e2a0a7cd99d26a1ee79e4f9ca544b53734f918\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$-1\r\n:27606\r\n$40\r\n65064d3a45500e0f30a415a3b1d29bbe21ca1907\r\n*2\r\n$2\r\nip\r\n$9\r\n"
    "127.0.0.1\r\n";

// cluster-preferred-endpoint-type hostname with one node announcing a hostname: the others are
// "?" (and cannot be reached by name).
const char kSlotsHostname[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$14\r\nnode-a.example\r\n:27603\r\n$40\r\n"
    "022b73d27ba2412971b1e9edec2f36c8b35e22ff\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$1\r\n?\r\n:27607\r\n$40\r\nebc5cfd544e7755669bc569cd9ce2fe7bd4945db\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$1\r\n?\r\n:27604\r\n$40\r\n"
    "a59f1f04a50a349c80bfafe3eba8211711e56a3d\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$1\r\n?\r\n:27608\r\n$40\r\nf7022ce667207fe30ef99d451def5a903b977095\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n:10923\r\n:16383\r\n*4\r\n$1\r\n?\r\n:27605\r\n$40\r\n"
    "d6e2a0a7cd99d26a1ee79e4f9ca544b53734f918\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n"
    "$1\r\n?\r\n:27606\r\n$40\r\n65064d3a45500e0f30a415a3b1d29bbe21ca1907\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n";

}  // namespace

// ---------------------------------------------------------------------------------------------
// crc16_xmodem / key_slot

TEST(Crc16, CheckValueAndReference) {
  EXPECT_EQ(sess::crc16_xmodem("123456789"), 0x31C3);
  EXPECT_EQ(sess::crc16_xmodem(""), 0);
  EXPECT_EQ(sess::crc16_xmodem("A"), 0x58E5);
  std::mt19937 rng(7);
  for (int i = 0; i < 500; i++) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    ASSERT_EQ(sess::crc16_xmodem(s), ref_crc16(s));
  }
}

struct SlotCase {
  std::string key;
  uint16_t slot;  // CLUSTER KEYSLOT, redis-server 7.0.15
};

TEST(KeySlot, AgreesWithRedis) {
  const SlotCase cases[] = {
      {"", 0},
      {"foo", 12182},
      {"bar", 5061},
      {"hello", 866},
      {"123456789", 12739},
      {"{123456789}", 12739},
      {"{user1000}.following", 3443},
      {"{user1000}.followers", 3443},
      {"foo{}{bar}", 8363},      // empty tag: the whole key
      {"foo{{bar}}zap", 4015},   // the tag is "{bar"
      {"{bar", 4015},
      {"foo{bar}{zap}", 5061},   // the first tag: "bar"
      {"{}", 15257},
      {"}{", 12793},
      {"{", 4092},
      {"{{}}", 4092},            // the tag is "{"
      {"}", 12090},
      {"a{b", 13340},            // no closing brace: the whole key
      {"a}b{c}", 7365},
      {"{a}", 15495},
      {"a", 15495},
      {"x{}y{z}", 15453},        // the first '{' has an empty tag: the whole key
      {"user:{42}:profile", 8000},
      {"session:0123456789abcdef0123456789abcdef", 15307},
      {std::string("\x00\xff", 2), 7920},
  };
  for (const auto& c : cases) EXPECT_EQ(sess::key_slot(c.key), c.slot) << c.key;
}

// ---------------------------------------------------------------------------------------------
// host_valid / parse_port

TEST(HostAndPort, Validity) {
  for (const char* h : {"127.0.0.1", "::1", "fe80::1%eth0", "redis-1.example.com", "node_a", "a"}) {
    EXPECT_TRUE(sess::host_valid(h)) << h;
  }
  for (const char* h : {"", "?", "a b", "[::1]", "a/b", "host\r\n", "x,y", "a@b"}) {
    EXPECT_FALSE(sess::host_valid(h)) << h;
  }
  EXPECT_FALSE(sess::host_valid(std::string_view("a\0b", 3)));
  EXPECT_TRUE(sess::host_valid(std::string(255, 'a')));
  EXPECT_FALSE(sess::host_valid(std::string(256, 'a')));

  const std::pair<const char*, int> ports[] = {
      {"1", 1},   {"6379", 6379}, {"65535", 65535}, {"0", -1},   {"65536", -1}, {"06379", -1},
      {"", -1},   {"-1", -1},     {"+1", -1},       {"1x", -1},  {" 1", -1},    {"100000", -1},
      {"99999", -1}};
  for (const auto& [text, want] : ports) {
    uint16_t p = 7;
    const bool ok = sess::parse_port(text, &p);
    EXPECT_EQ(ok, want >= 0) << text;
    EXPECT_EQ(p, ok ? want : 7) << text;
  }
}

// ---------------------------------------------------------------------------------------------
// parse_cluster_slots

TEST(ClusterSlots, CapturedReplies) {
  std::vector<SlotRange> out;
  const NodeAddr self = node("10.0.0.9", 7000);
  ASSERT_TRUE(sess::parse_cluster_slots(reply(redis_replies::kClusterSlots), self, &out));
  EXPECT_EQ(show(out), (Lines{"0-5460 127.0.0.1:39510", "5461-10922 127.0.0.1:39511",
                              "10923-16383 127.0.0.1:39512"}));
  ASSERT_TRUE(sess::parse_cluster_slots(reply(kSlotsSelf), self, &out));
  EXPECT_EQ(show(out), (Lines{"0-16383 10.0.0.9:39510"}));  // "": the host that answered
  ASSERT_TRUE(sess::parse_cluster_slots(reply(kSlotsUnknownEndpoint), self, &out));
  EXPECT_EQ(show(out), (Lines{"0-5460 10.0.0.9:27603", "5461-10922 10.0.0.9:27604",
                              "10923-16383 10.0.0.9:27605"}));
  out = {range(1, 2, "kept", 1)};
  EXPECT_FALSE(sess::parse_cluster_slots(reply(kSlotsHostname), self, &out));  // "?" masters
  EXPECT_EQ(show(out), (Lines{"1-2 kept:1"}));  // unchanged
  // The answering node's host unknown too: refused.
  EXPECT_FALSE(sess::parse_cluster_slots(reply(kSlotsSelf), node("", 7000), &out));
  ASSERT_TRUE(sess::parse_cluster_slots(reply("*0\r\n"), self, &out));  // no slots assigned yet
  EXPECT_TRUE(out.empty());
}

struct SlotsCase {
  const char* name;
  const char* reply;
  bool ok;
  Lines want;
};

TEST(ClusterSlots, Shapes) {
  const SlotsCase cases[] = {
      {"two-element node, no replicas", "*1\r\n*3\r\n:5\r\n:9\r\n*2\r\n$1\r\nh\r\n:1\r\n",
       true, {"5-9 h:1"}},
      {"one slot, IPv6 host, last port",
       "*1\r\n*3\r\n:16383\r\n:16383\r\n*2\r\n$3\r\n::1\r\n:65535\r\n", true,
       {"16383-16383 ::1:65535"}},
      {"replicas of any shape are not read",
       "*1\r\n*5\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:2\r\n:7\r\n$-1\r\n", true, {"0-1 h:2"}},
      {"reply order kept, gaps allowed",
       "*2\r\n*3\r\n:100\r\n:200\r\n*2\r\n$1\r\nb\r\n:2\r\n"
       "*3\r\n:0\r\n:10\r\n*2\r\n$1\r\na\r\n:1\r\n",
       true, {"100-200 b:2", "0-10 a:1"}},
      {"not an array", "+OK\r\n", false, {}},
      {"nil array", "*-1\r\n", false, {}},
      {"error", "-CLUSTERDOWN Hash slot not served\r\n", false, {}},
      {"entry not an array", "*1\r\n:1\r\n", false, {}},
      {"entry too short", "*1\r\n*2\r\n:0\r\n:1\r\n", false, {}},
      {"node too short", "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n", false, {}},
      {"node not an array", "*1\r\n*3\r\n:0\r\n:1\r\n$1\r\nh\r\n", false, {}},
      {"slot as text", "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n", false, {}},
      {"negative first", "*1\r\n*3\r\n:-1\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n", false, {}},
      {"last past 16383", "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", false, {}},
      {"first > last", "*1\r\n*3\r\n:9\r\n:8\r\n*2\r\n$1\r\nh\r\n:1\r\n", false, {}},
      {"huge slot", "*1\r\n*3\r\n:0\r\n:9223372036854775807\r\n*2\r\n$1\r\nh\r\n:1\r\n", false, {}},
      {"port 0", "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n", false, {}},
      {"port 65536", "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:65536\r\n", false, {}},
      {"port as text", "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n$4\r\n6379\r\n", false, {}},
      {"host as integer", "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n", false, {}},
      {"host as status", "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n+h\r\n:1\r\n", false, {}},
      {"host with a space", "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na b\r\n:1\r\n", false, {}},
      {"host in brackets", "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$5\r\n[::1]\r\n:1\r\n", false, {}},
      {"one bad entry spoils all",
       "*2\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:1\r\n*3\r\n:2\r\n:3\r\n*2\r\n$1\r\nb\r\n:0\r\n",
       false, {}},
  };
  for (const auto& c : cases) {
    std::vector<SlotRange> out;
    EXPECT_EQ(sess::parse_cluster_slots(reply(c.reply), node("self", 1), &out), c.ok) << c.name;
    EXPECT_EQ(show(out), c.want) << c.name;
  }
}

// ---------------------------------------------------------------------------------------------
// SlotMap

TEST(SlotMap, AssignAndLookUp) {
  SlotMap m;
  EXPECT_FALSE(m.covers_all());
  EXPECT_EQ(m.node_of(0), SlotMap::kNone);
  std::vector<SlotRange> out;
  ASSERT_TRUE(sess::parse_cluster_slots(reply(redis_replies::kClusterSlots), node("x", 1), &out));
  ASSERT_TRUE(m.assign(out));
  EXPECT_TRUE(m.covers_all());
  ASSERT_EQ(m.nodes().size(), 3u);
  EXPECT_EQ(m.nodes()[0], node("127.0.0.1", 39510));
  EXPECT_EQ(m.nodes()[2], node("127.0.0.1", 39512));
  EXPECT_EQ(m.node_of(0), 0);
  EXPECT_EQ(m.node_of(5460), 0);
  EXPECT_EQ(m.node_of(5461), 1);
  EXPECT_EQ(m.node_of(sess::key_slot("foo")), 2);  // -MOVED 12182 127.0.0.1:<third master>
  EXPECT_EQ(m.node_of(16383), 2);
  EXPECT_EQ(m.node_of(16384), SlotMap::kNone);
  EXPECT_EQ(m.node_of(0xffff), SlotMap::kNone);
}

TEST(SlotMap, GapsSharedNodesAndEmpty) {
  SlotMap m;
  ASSERT_TRUE(m.assign({range(0, 99, "a", 1), range(200, 299, "b", 1), range(100, 150, "a", 1)}));
  EXPECT_EQ(m.nodes().size(), 2u);  // distinct: "a":1 twice is one node
  EXPECT_EQ(m.node_of(100), 0);
  EXPECT_EQ(m.node_of(151), SlotMap::kNone);
  EXPECT_EQ(m.node_of(299), 1);
  EXPECT_FALSE(m.covers_all());
  ASSERT_TRUE(m.assign({range(0, 10, "a", 1), range(11, 20, "a", 2)}));  // same host, other port
  EXPECT_EQ(m.nodes().size(), 2u);
  ASSERT_TRUE(m.assign({}));
  EXPECT_TRUE(m.nodes().empty());
  EXPECT_EQ(m.node_of(0), SlotMap::kNone);
}

TEST(SlotMap, RefusedAssignLeavesTheMapUnchanged) {
  SlotMap m;
  ASSERT_TRUE(m.assign({range(0, 16383, "a", 1)}));
  const std::vector<std::vector<SlotRange>> bad = {
      {range(0, 10, "b", 1), range(10, 20, "c", 1)},       // overlap by one slot
      {range(0, 10, "b", 1), range(0, 10, "b", 1)},        // the same range twice
      {range(5, 4, "b", 1)},                               // first > last
      {range(0, 16384, "b", 1)},                           // past the last slot
      {range(16384, 16384, "b", 1)},
  };
  for (const auto& ranges : bad) {
    EXPECT_FALSE(m.assign(ranges));
    ASSERT_EQ(m.nodes().size(), 1u);
    EXPECT_EQ(m.nodes()[0], node("a", 1));
    EXPECT_EQ(m.node_of(0), 0);
    EXPECT_EQ(m.node_of(20), 0);
    EXPECT_TRUE(m.covers_all());
  }
}

TEST(SlotMap, AtMost1024Nodes) {
  std::vector<SlotRange> ranges;
  for (uint16_t i = 0; i < SlotMap::kMaxNodes; i++) ranges.push_back(range(i, i, "n", i + 1));
  SlotMap m;
  ASSERT_TRUE(m.assign(ranges));
  EXPECT_EQ(m.nodes().size(), 1024u);
  EXPECT_EQ(m.node_of(1023), 1023);
  EXPECT_FALSE(m.move(5000, node("new", 1)));  // the table is full
  EXPECT_EQ(m.node_of(5000), SlotMap::kNone);
  EXPECT_TRUE(m.move(5000, node("n", 7)));     // a known node still works
  EXPECT_EQ(m.node_of(5000), 6);
  ranges.push_back(range(1024, 1024, "n", 1025));
  EXPECT_FALSE(m.assign(ranges));
  EXPECT_EQ(m.nodes().size(), 1024u);
}

TEST(SlotMap, Move) {
  SlotMap m;
  ASSERT_TRUE(m.assign({range(0, 16383, "a", 1)}));
  const Redirect r = sess::parse_redirect("MOVED 12182 127.0.0.1:27605");
  ASSERT_EQ(r.kind, RedirectKind::Moved);
  ASSERT_TRUE(m.move(r.slot, r.node));
  EXPECT_EQ(m.nodes().size(), 2u);
  EXPECT_EQ(m.node_of(12182), 1);
  EXPECT_EQ(m.node_of(12181), 0);
  ASSERT_TRUE(m.move(12181, r.node));  // the same node again: no new entry
  EXPECT_EQ(m.nodes().size(), 2u);
  EXPECT_EQ(m.node_of(12181), 1);
  EXPECT_FALSE(m.move(16384, node("b", 1)));
  EXPECT_EQ(m.nodes().size(), 2u);
  SlotMap empty;
  ASSERT_TRUE(empty.move(3, node("c", 1)));
  EXPECT_EQ(empty.node_of(3), 0);
  EXPECT_FALSE(empty.covers_all());
}

// ---------------------------------------------------------------------------------------------
// parse_redirect

struct RedirectCase {
  const char* error;
  RedirectKind kind;
  uint16_t slot;
  const char* host;
  uint16_t port;
};

TEST(ParseRedirect, Table) {
  const auto None = RedirectKind::None;
  const auto Moved = RedirectKind::Moved;
  const auto Ask = RedirectKind::Ask;
  const RedirectCase cases[] = {
      // redis-server 7.0.15
      {"MOVED 12182 127.0.0.1:27605", Moved, 12182, "127.0.0.1", 27605},
      {"ASK 12182 127.0.0.1:39510", Ask, 12182, "127.0.0.1", 39510},
      {"MOVED 12182 :27605", Moved, 12182, "", 27605},  // unknown endpoint: the same host
      {"MOVED 12182 ?:27605", None, 0, "", 0},          // hostname not announced
      {"MOVED 3999 redis-2.example.com:6380", Moved, 3999, "redis-2.example.com", 6380},
      {"MOVED 0 ::1:6379", Moved, 0, "::1", 6379},
      {"ASK 16383 2001:db8::7:7000", Ask, 16383, "2001:db8::7", 7000},
      {"MOVED 16384 h:1", None, 0, "", 0},
      {"MOVED 01 h:1", None, 0, "", 0},
      {"MOVED -1 h:1", None, 0, "", 0},
      {"MOVED  1 h:1", None, 0, "", 0},
      {"MOVED 1  h:1", None, 0, "", 0},
      {"MOVED 1 h:0", None, 0, "", 0},
      {"MOVED 1 h:65536", None, 0, "", 0},
      {"MOVED 1 h:", None, 0, "", 0},
      {"MOVED 1 h", None, 0, "", 0},
      {"MOVED 1 h:1 ", None, 0, "", 0},
      {"MOVED 1 h:1 extra", None, 0, "", 0},
      {"MOVED 1 [::1]:1", None, 0, "", 0},
      {"MOVED 1", None, 0, "", 0},
      {"MOVED", None, 0, "", 0},
      {"moved 1 h:1", None, 0, "", 0},
      {"-MOVED 1 h:1", None, 0, "", 0},
      {"ASKING", None, 0, "", 0},
      {"ERR unknown command", None, 0, "", 0},
      {"TRYAGAIN Multiple keys request during rehashing of slot", None, 0, "", 0},
      {"", None, 0, "", 0},
  };
  for (const auto& c : cases) {
    const Redirect r = sess::parse_redirect(c.error);
    EXPECT_EQ(r.kind, c.kind) << c.error;
    EXPECT_EQ(r.slot, c.slot) << c.error;
    EXPECT_EQ(r.node.host, c.host) << c.error;
    EXPECT_EQ(r.node.port, c.port) << c.error;
  }
  EXPECT_EQ(sess::parse_redirect("MOVED 1 " + std::string(255, 'h') + ":1").kind, Moved);
  EXPECT_EQ(sess::parse_redirect("MOVED 1 " + std::string(256, 'h') + ":1").kind, None);
  EXPECT_EQ(sess::parse_redirect(std::string("MOVED 1 h\0:1", 12)).kind, None);
}
