// libFuzzer target: Redis Cluster and Sentinel parsing (src/core/cluster.h, src/core/sentinel.h).
//
// Input: any bytes, read four ways: as text (an error reply, a +switch-master payload, a key),
// as a RESP2 stream whose first reply goes to the reply parsers, and as records of five bytes
// (first, last big-endian; a node byte) for slot ranges, then moves.
// Properties:
//   parse_redirect      - agrees with a reference (split on spaces, numbers checked by
//                         to_string round trip); an accepted one prints back to the input.
//   parse_switch_master - agrees with a reference; an accepted one prints back to the input;
//                         *out unchanged on false.
//   key_slot            - agrees with a bitwise CRC16 and a loop-based hash-tag rule.
//   parse_cluster_slots - never accepts a slot outside 0..16383, first > last, port 0 or a host
//                         that is not host_valid; agrees with a reference on acceptance and
//                         on every range; *out unchanged on false.
//   SlotMap             - assign agrees with a model (overlaps, at most kMaxNodes distinct
//                         nodes, first > last or past 16383 refused; nodes in order of first
//                         appearance); a refused assign leaves the map as it was; move agrees
//                         with the model; node_of and covers_all agree after every step.
//   sentinel replies    - parse_master_addr / parse_role / parse_pubsub_message are total and
//                         their results point into (or agree with) the reply.
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "cluster.h"
#include "resp.h"
#include "sentinel.h"

#include "fuzz_check.h"

namespace {

using sess::NodeAddr;
using sess::RedirectKind;
using sess::RespType;
using sess::RespValue;
using sess::SlotMap;
using sess::SlotRange;

std::vector<std::string_view> split_spaces(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); i++) {
    if (i == s.size() || s[i] == ' ') {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

// A canonical unsigned decimal below limit (no sign, no leading zero).
bool ref_uint(std::string_view s, unsigned long limit, unsigned long* out) {
  if (s.empty() || s.size() > 6) return false;
  unsigned long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned long>(c - '0');
  }
  if (std::to_string(v) != s || v >= limit) return false;
  *out = v;
  return true;
}

bool ref_port(std::string_view s, unsigned long* out) { return ref_uint(s, 65536, out) && *out; }

bool ref_host(std::string_view h) {
  static const std::string_view kAllowed =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%";
  if (h.empty() || h.size() > 255) return false;
  for (char c : h) {
    if (kAllowed.find(c) == std::string_view::npos) return false;
  }
  return true;
}

void check_redirect(std::string_view in) {
  const sess::Redirect r = sess::parse_redirect(in);
  const auto t = split_spaces(in);
  bool ok = t.size() == 3 && (t[0] == "MOVED" || t[0] == "ASK");
  unsigned long slot = 0;
  unsigned long port = 0;
  std::string_view host;
  if (ok) ok = ref_uint(t[1], 16384, &slot);
  if (ok) {
    const size_t colon = t[2].rfind(':');
    ok = colon != std::string_view::npos && ref_port(t[2].substr(colon + 1), &port);
    if (ok) host = t[2].substr(0, colon);
    ok = ok && (host.empty() || ref_host(host));
  }
  FUZZ_CHECK((r.kind != RedirectKind::None) == ok);
  if (!ok) {
    FUZZ_CHECK(r.slot == 0 && r.node.host.empty() && r.node.port == 0);
    return;
  }
  FUZZ_CHECK(r.kind == (t[0] == "MOVED" ? RedirectKind::Moved : RedirectKind::Ask));
  FUZZ_CHECK(r.slot == slot && r.node.port == port && r.node.host == host);
  const std::string back = std::string(t[0]) + " " + std::to_string(r.slot) + " " + r.node.host +
                           ":" + std::to_string(r.node.port);
  FUZZ_CHECK(back == in);
}

void check_switch_master(std::string_view in) {
  sess::SwitchMaster s;
  s.name = "untouched";
  const bool ok = sess::parse_switch_master(in, &s);
  const auto t = split_spaces(in);
  bool ref = t.size() == 5 && !t[0].empty();
  for (size_t i = 0; ref && i < t[0].size(); i++) {
    const auto c = static_cast<unsigned char>(t[0][i]);
    ref = c >= 0x20 && c != 0x7f;
  }
  unsigned long p1 = 0;
  unsigned long p2 = 0;
  ref = ref && ref_host(t[1]) && ref_port(t[2], &p1) && ref_host(t[3]) && ref_port(t[4], &p2);
  FUZZ_CHECK(ok == ref);
  if (!ok) {
    FUZZ_CHECK(s.name == "untouched" && s.from.host.empty() && s.to.port == 0);
    return;
  }
  FUZZ_CHECK(s.name == t[0] && s.from.host == t[1] && s.from.port == p1 && s.to.host == t[3] &&
             s.to.port == p2);
  FUZZ_CHECK(s.name + " " + s.from.host + " " + std::to_string(s.from.port) + " " + s.to.host +
                 " " + std::to_string(s.to.port) ==
             in);
}

uint16_t ref_crc16(std::string_view s) {
  uint32_t crc = 0;
  for (unsigned char c : s) {
    for (int i = 7; i >= 0; i--) {
      const bool bit = ((crc >> 15) & 1) ^ ((c >> i) & 1);
      crc = (crc << 1) & 0xffff;
      if (bit) crc ^= 0x1021;
    }
  }
  return static_cast<uint16_t>(crc);
}

uint16_t ref_slot(std::string_view key) {
  size_t open = 0;
  while (open < key.size() && key[open] != '{') open++;
  if (open < key.size()) {
    size_t close = open + 1;
    while (close < key.size() && key[close] != '}') close++;
    if (close < key.size() && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return ref_crc16(key) % 16384;
}

// parse_cluster_slots, the reference: the same shape rules written out flat.
bool ref_cluster_slots(const RespValue& v, const NodeAddr& self, std::vector<SlotRange>* out) {
  if (v.type != RespType::Array) return false;
  for (const RespValue& e : v.elements) {
    if (e.type != RespType::Array || e.elements.size() < 3) return false;
    const RespValue& a = e.elements[0];
    const RespValue& b = e.elements[1];
    const RespValue& n = e.elements[2];
    if (a.type != RespType::Integer || b.type != RespType::Integer) return false;
    if (!(0 <= a.integer && a.integer <= b.integer && b.integer <= 16383)) return false;
    if (n.type != RespType::Array || n.elements.size() < 2) return false;
    std::string host;
    if (n.elements[0].type == RespType::Bulk) {
      host = n.elements[0].str;
    } else if (n.elements[0].type != RespType::Nil) {
      return false;
    }
    if (host.empty()) host = self.host;
    if (!ref_host(host)) return false;
    if (n.elements[1].type != RespType::Integer || n.elements[1].integer <= 0 ||
        n.elements[1].integer > 65535) {
      return false;
    }
    SlotRange r;
    r.first = static_cast<uint16_t>(a.integer);
    r.last = static_cast<uint16_t>(b.integer);
    r.master.host = host;
    r.master.port = static_cast<uint16_t>(n.elements[1].integer);
    out->push_back(r);
  }
  return true;
}

bool same_node(const NodeAddr& a, const NodeAddr& b) {
  return a.port == b.port && a.host == b.host;
}

// The slot map as a model: a node list and an owner per slot.
struct Model {
  std::vector<NodeAddr> nodes;
  std::array<uint16_t, sess::kClusterSlots> slots;
  Model() { slots.fill(SlotMap::kNone); }

  bool assign(const std::vector<SlotRange>& ranges) {
    Model m;
    for (const SlotRange& r : ranges) {
      if (r.first > r.last || r.last > 16383) return false;
      size_t i = 0;
      while (i < m.nodes.size() && !same_node(m.nodes[i], r.master)) i++;
      if (i == m.nodes.size()) {
        if (m.nodes.size() == SlotMap::kMaxNodes) return false;
        m.nodes.push_back(r.master);
      }
      for (size_t s = r.first; s <= r.last; s++) {
        if (m.slots[s] != SlotMap::kNone) return false;
        m.slots[s] = static_cast<uint16_t>(i);
      }
    }
    *this = m;
    return true;
  }

  bool move(uint16_t slot, const NodeAddr& n) {
    if (slot > 16383) return false;
    size_t i = 0;
    while (i < nodes.size() && !same_node(nodes[i], n)) i++;
    if (i == nodes.size()) {
      if (nodes.size() == SlotMap::kMaxNodes) return false;
      nodes.push_back(n);
    }
    slots[slot] = static_cast<uint16_t>(i);
    return true;
  }
};

// The map agrees with the model: on every slot (full), or on the slots around each range's ends
// and a stride of others (cheaper: the full check runs once per input).
void check_same(const SlotMap& m, const Model& model, bool full,
                const std::vector<SlotRange>& ranges = {}) {
  FUZZ_CHECK(m.nodes() == model.nodes);
  bool all = true;
  for (uint16_t s : model.slots) all = all && s != SlotMap::kNone;
  FUZZ_CHECK(m.covers_all() == all);
  FUZZ_CHECK(m.node_of(16384) == SlotMap::kNone && m.node_of(0xffff) == SlotMap::kNone);
  const auto same = [&](uint32_t s) {
    return s >= sess::kClusterSlots || m.node_of(static_cast<uint16_t>(s)) == model.slots[s];
  };
  bool ok = true;
  for (uint32_t s = 0; s < sess::kClusterSlots; s += full ? 1 : 61) ok = ok && same(s);
  for (const SlotRange& r : ranges) {
    ok = ok && same(r.first) && same(r.last) && same(r.last + 1u) &&
         (r.first == 0 || same(r.first - 1u));
  }
  FUZZ_CHECK(ok);
}

bool within(const std::string& outer, std::string_view inner) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

void check_replies(const RespValue& v) {
  NodeAddr addr;
  addr.host = "untouched";
  if (sess::parse_master_addr(v, &addr)) {
    FUZZ_CHECK(v.type == RespType::Array && v.elements.size() == 2);
    FUZZ_CHECK(addr.host == v.elements[0].str && ref_host(addr.host));
    FUZZ_CHECK(std::to_string(addr.port) == v.elements[1].str && addr.port > 0);
  } else {
    FUZZ_CHECK(addr.host == "untouched" && addr.port == 0);
  }
  const sess::Role role = sess::parse_role(v);
  if (role != sess::Role::Unknown) {
    FUZZ_CHECK(v.type == RespType::Array && !v.elements.empty() &&
               v.elements[0].type == RespType::Bulk);
    const std::string& name = v.elements[0].str;
    FUZZ_CHECK(role == sess::Role::Master     ? name == "master"
               : role == sess::Role::Replica  ? name == "slave" || name == "replica"
                                              : name == "sentinel");
  }
  std::string_view channel;
  std::string_view payload;
  if (sess::parse_pubsub_message(v, &channel, &payload)) {
    const size_t n = v.elements.size();
    FUZZ_CHECK(n == 3 || n == 4);
    FUZZ_CHECK(within(v.elements[n - 2].str, channel) && channel == v.elements[n - 2].str);
    FUZZ_CHECK(within(v.elements[n - 1].str, payload) && payload == v.elements[n - 1].str);
    check_switch_master(payload);
  } else {
    FUZZ_CHECK(channel.data() == nullptr && payload.data() == nullptr);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  // --- text -----------------------------------------------------------------------------------
  check_redirect(in);
  check_switch_master(in);
  FUZZ_CHECK(sess::key_slot(in) == ref_slot(in));
  FUZZ_CHECK(sess::crc16_xmodem(in) == ref_crc16(in));
  FUZZ_CHECK(sess::key_slot(in) < sess::kClusterSlots);

  // --- the first reply of the input as a RESP2 stream -----------------------------------------
  sess::RespParser parser;
  RespValue reply;
  size_t used = 0;
  const bool have_reply = parser.feed(in, sess::RespLimits(), &used, &reply) ==
                          sess::RespParser::Result::Reply;
  Model model;
  SlotMap map;
  if (have_reply) {
    check_replies(reply);
    NodeAddr self;
    self.host = size % 3 == 0 ? "" : "10.1.2.3";
    self.port = 7000;
    std::vector<SlotRange> ranges = {SlotRange()};
    const bool ok = sess::parse_cluster_slots(reply, self, &ranges);
    std::vector<SlotRange> ref;
    FUZZ_CHECK(ok == ref_cluster_slots(reply, self, &ref));
    if (ok) {
      FUZZ_CHECK(ranges.size() == ref.size());
      for (size_t i = 0; i < ranges.size(); i++) {
        const SlotRange& r = ranges[i];
        FUZZ_CHECK(r.first <= r.last && r.last < sess::kClusterSlots);
        FUZZ_CHECK(r.master.port > 0 && ref_host(r.master.host));
        FUZZ_CHECK(r.first == ref[i].first && r.last == ref[i].last && r.master == ref[i].master);
      }
      FUZZ_CHECK(map.assign(ranges) == model.assign(ranges));
      check_same(map, model, false, ranges);
    } else {
      FUZZ_CHECK(ranges.size() == 1 && ranges[0].master.host.empty());  // unchanged
    }
  }

  // --- slot ranges and moves from five-byte records --------------------------------------------
  std::vector<SlotRange> ranges;
  size_t at = 0;
  const size_t count = size > 0 ? data[0] % 64 : 0;
  for (at = 1; at + 5 <= size && ranges.size() < count; at += 5) {
    SlotRange r;
    r.first = static_cast<uint16_t>(data[at] << 8 | data[at + 1]);
    r.last = static_cast<uint16_t>(data[at + 2] << 8 | data[at + 3]);
    if (data[at] & 0x80) {  // mostly valid ranges
      r.first &= 0x3fff;
      r.last = static_cast<uint16_t>(r.first + (r.last & 0x3ff));
    }
    r.master.host = "n" + std::to_string(data[at + 4] >> 1);
    r.master.port = static_cast<uint16_t>(1 + (data[at + 4] & 1));
    ranges.push_back(r);
  }
  FUZZ_CHECK(map.assign(ranges) == model.assign(ranges));
  check_same(map, model, false, ranges);
  for (; at + 3 <= size; at += 3) {
    NodeAddr n;
    n.host = "m" + std::to_string(data[at + 2] % 8);
    n.port = 1;
    const auto slot = static_cast<uint16_t>(data[at] << 8 | data[at + 1]);
    FUZZ_CHECK(map.move(slot, n) == model.move(slot, n));
    const uint16_t want = slot < sess::kClusterSlots ? model.slots[slot] : SlotMap::kNone;
    FUZZ_CHECK(map.node_of(slot) == want);
  }
  check_same(map, model, true);

  // A full node table: moves to new nodes are refused, known ones still work.
  if (size > 0 && data[0] == 0xff) {
    std::vector<SlotRange> many;
    for (uint16_t i = 0; i < SlotMap::kMaxNodes; i++) {
      SlotRange r;
      r.first = r.last = i;
      r.master.host = "h";
      r.master.port = static_cast<uint16_t>(i + 1);
      many.push_back(r);
    }
    FUZZ_CHECK(map.assign(many) && model.assign(many));
    NodeAddr fresh;
    fresh.host = "fresh";
    fresh.port = 1;
    FUZZ_CHECK(!map.move(5000, fresh) && !model.move(5000, fresh));
    check_same(map, model, false, many);
    many.push_back(many.back());
    many.back().master.port = 2000;
    many.back().first = many.back().last = 2000;
    FUZZ_CHECK(!map.assign(many) && !model.assign(many));
    check_same(map, model, false, many);
  }
  return 0;
}
