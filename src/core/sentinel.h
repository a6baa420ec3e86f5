// Redis Sentinel and roles, the pure parts: the master's address from the sentinels, a node's
// ROLE, and +switch-master announcements. Replies come from the network: every parser is
// bounded and total.
#pragma once

#include "cluster.h"
#include "common.h"
#include "resp.h"

#include <string>

namespace sess {

// SENTINEL get-master-addr-by-name: [host, port] as bulk strings (host_valid, parse_port). False
// (*out unchanged) for nil (the sentinel does not know the name) and anything malformed.
bool parse_master_addr(const RespValue& reply, NodeAddr* out);

enum class Role : uint8_t { Unknown, Master, Replica, Sentinel };

// ROLE: ["master", offset, replicas], ["slave", host, port, state, offset] (Redis 7 still says
// "slave"; "replica" is accepted too), ["sentinel", masters], with those element types (role,
// host and state bulk strings, offset and port integers, replicas and masters arrays); elements
// after these are allowed. Unknown for anything else.
Role parse_role(const RespValue& reply) noexcept;

// A pub/sub message in RESP2: ["message", channel, payload] (or ["pmessage", pattern, channel,
// payload]), all bulk strings; the views point into reply. False (nothing written) for subscribe
// confirmations, pongs and anything else.
bool parse_pubsub_message(const RespValue& reply, std::string_view* channel,
                          std::string_view* payload) noexcept;

struct SwitchMaster {
  std::string name;
  NodeAddr from;
  NodeAddr to;
};

// The payload of +switch-master: "<name> <old-host> <old-port> <new-host> <new-port>", single
// spaces, hosts host_valid, ports parse_port, a name without control bytes. False (*out
// unchanged) for anything else.
bool parse_switch_master(std::string_view payload, SwitchMaster* out);

}  // namespace sess
