// Redis Cluster: key slots, CLUSTER SLOTS, the slot map and redirections (see cluster.h).
#include "cluster.h"

#include <map>
#include <new>
#include <utility>

namespace sess {

namespace {

struct Crc16Table {
  uint16_t t[256];
};

constexpr Crc16Table make_crc16_table() {
  Crc16Table tab{};
  for (unsigned i = 0; i < 256; i++) {
    unsigned c = i << 8;
    for (int b = 0; b < 8; b++) c = (c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1;
    tab.t[i] = static_cast<uint16_t>(c);
  }
  return tab;
}

constexpr Crc16Table kCrc16 = make_crc16_table();

bool starts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.substr(0, prefix.size()) == prefix;
}

// A slot as Redis writes it: 1 to 5 digits without a leading zero, below kClusterSlots.
bool parse_slot(std::string_view s, uint16_t* out) noexcept {
  if (s.empty() || s.size() > 5 || (s[0] == '0' && s.size() > 1)) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v >= kClusterSlots) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

}  // namespace

uint16_t crc16_xmodem(std::string_view data) noexcept {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc = static_cast<uint16_t>((crc << 8) ^ kCrc16.t[((crc >> 8) ^ c) & 0xff]);
  }
  return crc;
}

uint16_t key_slot(std::string_view key) noexcept {
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return crc16_xmodem(key) & (kClusterSlots - 1);
}

bool parse_port(std::string_view s, uint16_t* out) noexcept {
  if (s.empty() || s.size() > 5 || s[0] == '0') return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

bool host_valid(std::string_view host) noexcept {
  if (host.empty() || host.size() > kMaxHostLen) return false;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':' || c == '%';
    if (!ok) return false;
  }
  return true;
}

bool parse_cluster_slots(const RespValue& reply, const NodeAddr& self,
                         std::vector<SlotRange>* out) {
  if (reply.type != RespType::Array) return false;
  std::vector<SlotRange> ranges;
  ranges.reserve(reply.elements.size());
  for (const RespValue& e : reply.elements) {
    if (e.type != RespType::Array || e.elements.size() < 3) return false;
    const RespValue& first = e.elements[0];
    const RespValue& last = e.elements[1];
    const RespValue& node = e.elements[2];
    if (first.type != RespType::Integer || last.type != RespType::Integer || first.integer < 0 ||
        first.integer > last.integer || last.integer >= kClusterSlots) {
      return false;
    }
    if (node.type != RespType::Array || node.elements.size() < 2) return false;
    const RespValue& h = node.elements[0];
    const RespValue& p = node.elements[1];
    std::string_view host;
    if (h.type == RespType::Bulk) {
      host = h.str;
    } else if (h.type != RespType::Nil) {
      return false;
    }
    if (host.empty()) host = self.host;  // "" or nil: the node that answered
    if (!host_valid(host)) return false;
    if (p.type != RespType::Integer || p.integer < 1 || p.integer > 65535) return false;
    SlotRange r;
    r.first = static_cast<uint16_t>(first.integer);
    r.last = static_cast<uint16_t>(last.integer);
    r.master.host.assign(host.data(), host.size());
    r.master.port = static_cast<uint16_t>(p.integer);
    ranges.push_back(std::move(r));
  }
  *out = std::move(ranges);
  return true;
}

bool SlotMap::assign(const std::vector<SlotRange>& ranges) {
  std::vector<NodeAddr> nodes;
  std::vector<uint16_t> slots(kClusterSlots, kNone);
  std::map<std::pair<std::string_view, uint16_t>, uint16_t> index;  // views into ranges
  for (const SlotRange& r : ranges) {
    if (r.first > r.last || r.last >= kClusterSlots) return false;
    const auto found =
        index.try_emplace({r.master.host, r.master.port}, static_cast<uint16_t>(nodes.size()));
    if (found.second) {
      if (nodes.size() >= kMaxNodes) return false;
      nodes.push_back(r.master);
    }
    // Overlaps end the loop early: at most kClusterSlots assignments in all.
    for (uint32_t s = r.first; s <= r.last; s++) {
      if (slots[s] != kNone) return false;
      slots[s] = found.first->second;
    }
  }
  nodes_.swap(nodes);
  slots_.swap(slots);
  return true;
}

bool SlotMap::move(uint16_t slot, const NodeAddr& node) {
  if (slot >= kClusterSlots) return false;
  const uint16_t i = node_index(node);
  if (i == kNone) return false;
  slots_[slot] = i;
  return true;
}

uint16_t SlotMap::node_of(uint16_t slot) const noexcept {
  return slot < kClusterSlots ? slots_[slot] : kNone;
}

bool SlotMap::covers_all() const noexcept {
  for (uint16_t i : slots_) {
    if (i == kNone) return false;
  }
  return true;
}

uint16_t SlotMap::node_index(const NodeAddr& node) {
  for (size_t i = 0; i < nodes_.size(); i++) {
    if (nodes_[i] == node) return static_cast<uint16_t>(i);
  }
  if (nodes_.size() >= kMaxNodes) return kNone;
  nodes_.push_back(node);
  return static_cast<uint16_t>(nodes_.size() - 1);
}

Redirect parse_redirect(std::string_view error) noexcept {
  RedirectKind kind;
  if (starts_with(error, "MOVED ")) {
    kind = RedirectKind::Moved;
    error.remove_prefix(6);
  } else if (starts_with(error, "ASK ")) {
    kind = RedirectKind::Ask;
    error.remove_prefix(4);
  } else {
    return Redirect();
  }
  const size_t space = error.find(' ');
  if (space == std::string_view::npos) return Redirect();
  uint16_t slot = 0;
  if (!parse_slot(error.substr(0, space), &slot)) return Redirect();
  const std::string_view endpoint = error.substr(space + 1);
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string_view::npos) return Redirect();
  const std::string_view host = endpoint.substr(0, colon);
  uint16_t port = 0;
  if (!parse_port(endpoint.substr(colon + 1), &port)) return Redirect();
  if (!host.empty() && !host_valid(host)) return Redirect();
  Redirect r;
  try {
    r.node.host.assign(host.data(), host.size());
  } catch (const std::bad_alloc&) {
    return Redirect();
  }
  r.kind = kind;
  r.slot = slot;
  r.node.port = port;
  return r;
}

}  // namespace sess
