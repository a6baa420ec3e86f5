// Redis Cluster, the pure parts: key slots, the slot map from CLUSTER SLOTS, and MOVED/ASK
// redirections. Replies come from the network: every parser is bounded and total.
#pragma once

#include "common.h"
#include "resp.h"

#include <string>
#include <vector>

namespace sess {

constexpr uint16_t kClusterSlots = 16384;

// CRC16-CCITT (XMODEM), the function Redis Cluster uses.
uint16_t crc16_xmodem(std::string_view data) noexcept;

// The slot of a key: CRC16 of the key, or of the hash tag - the part between the first '{' and
// the next '}' when that part is not empty - modulo 16384.
uint16_t key_slot(std::string_view key) noexcept;

struct NodeAddr {
  std::string host;   // as Redis gives it: an IP address (v4, or v6 without brackets) or a name
  uint16_t port = 0;
  bool operator==(const NodeAddr& o) const noexcept { return host == o.host && port == o.port; }
};

constexpr size_t kMaxHostLen = 255;

// A host as the parsers here accept one from the network: 1 to kMaxHostLen bytes of letters,
// digits and ". - _ : %" (names, IPv4, IPv6 without brackets, a zone id). Not "?", which Redis
// gives for a node without the hostname it was asked to announce.
bool host_valid(std::string_view host) noexcept;

// A port as text: 1 to 5 digits without a leading zero, 1..65535.
bool parse_port(std::string_view s, uint16_t* out) noexcept;

struct SlotRange {
  uint16_t first = 0;
  uint16_t last = 0;  // inclusive
  NodeAddr master;
};

// CLUSTER SLOTS: [[first, last, [host, port, id?, ...], replicas...], ...] (Redis 7 adds a
// fourth node element, a map of hostname/ip; replicas are not read). Returns false for anything
// else (types, ranges outside 0..16383, first > last, ports outside 1..65535, a host that is not
// host_valid), leaving *out unchanged. A host "" (a node that has not learnt its own address) or
// nil (cluster-preferred-endpoint-type unknown-endpoint) means the node that answered: it is
// replaced with self.host, the port is the reply's. Ranges are returned in reply order.
bool parse_cluster_slots(const RespValue& reply, const NodeAddr& self,
                         std::vector<SlotRange>* out);

// Which node serves each slot. Built from ranges; slots no range names are unassigned.
class SlotMap {
 public:
  static constexpr uint16_t kNone = 0xffff;
  static constexpr size_t kMaxNodes = 1024;

  // Replaces the map; nodes() are then the distinct masters in order of first appearance. False
  // (map unchanged) if ranges overlap, a range is not within 0..16383 with first <= last, or
  // there are more than kMaxNodes distinct nodes.
  bool assign(const std::vector<SlotRange>& ranges);
  // A MOVED redirection: slot now lives at node (added if new). False if slot is out of range
  // or the node table is full.
  bool move(uint16_t slot, const NodeAddr& node);
  // The node index for slot, or kNone.
  uint16_t node_of(uint16_t slot) const noexcept;
  const std::vector<NodeAddr>& nodes() const noexcept { return nodes_; }
  bool covers_all() const noexcept;  // every slot is assigned

 private:
  uint16_t node_index(const NodeAddr& node);  // kNone when full
  std::vector<NodeAddr> nodes_;
  std::vector<uint16_t> slots_ = std::vector<uint16_t>(kClusterSlots, kNone);
};

enum class RedirectKind : uint8_t { None, Moved, Ask };

struct Redirect {
  RedirectKind kind = RedirectKind::None;
  uint16_t slot = 0;
  NodeAddr node;
};

// An error reply's text (without its '-'): "MOVED <slot> <host>:<port>" or
// "ASK <slot> <host>:<port>" (the port follows the last ':', so IPv6 hosts work). An empty host
// ("MOVED 3999 :6381", Redis 7 with an unknown endpoint) means the host of the node that
// answered: the caller substitutes it. Anything else, a malformed one (a host that is not
// host_valid, such as "?"), or no memory for the host is kind None.
Redirect parse_redirect(std::string_view error) noexcept;

}  // namespace sess
