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

struct SlotRange {
  uint16_t first = 0;
  uint16_t last = 0;  // inclusive
  NodeAddr master;
};

// CLUSTER SLOTS: [[first, last, [host, port, id?, ...], replicas...], ...]. Returns false for
// anything else (types, ranges outside 0..16383, first > last, ports outside 1..65535, an
// empty host). An empty host "" means the node that answered; the caller substitutes it
// beforehand with `self`. Ranges are returned in reply order.
bool parse_cluster_slots(const RespValue& reply, const NodeAddr& self,
                         std::vector<SlotRange>* out);

// Which node serves each slot. Built from ranges; slots no range names are unassigned.
class SlotMap {
 public:
  static constexpr uint16_t kNone = 0xffff;

  // Replaces the map. False (map unchanged) if ranges overlap or more than 1024 distinct nodes.
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

// An error reply "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (the port follows the
// last ':', so IPv6 hosts work). Anything else, or a malformed one, is kind None.
Redirect parse_redirect(std::string_view error) noexcept;

}  // namespace sess
