// ngx_http_session_module: the Redis client - its own room (src/redis/).
//
//   conf.cpp    session_redis (standalone, sentinel=NAME, cluster) and session_redis_tls*;
//               endpoints (one per distinct configuration) built when locations are merged
//   node.cpp    one connection to one Redis node: an nginx peer connection on the worker's event
//               loop, TLS by nginx's own SSL layer, RESP2 by the core's bounded parser
//               (core/resp.h), pipelined commands, a deadline per command, reconnect backoff
//   client.cpp  the topologies (standalone, Sentinel, Cluster) and the request-facing API
//               declared in ngx_http_session.h (redis_send and friends)
//
// Pitfalls this design avoids (they were the hiredis-async adapter's): one event model (nginx's),
// no library that closes our fd or calls getaddrinfo; a reply never reaches a request that went
// away (operations are cancelled by the request's pool cleanup); requests are resumed from posted
// events, never from inside the read handler; a command never waits longer than its own
// location's session_redis_timeout, whatever is ahead of it on the connection.
#pragma once

#include "../ngx_http_session.h"

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "../core/cluster.h"
#include "../core/redis_cache.h"
#include "../core/resp.h"
#include "../core/sentinel.h"

namespace ngx_session {

enum class Topology : uint8_t { Standalone, Sentinel, Cluster };

// An address written in the configuration, resolved when it was read.
struct redis_addr_t {
  ngx_str_t text;        // as written, for logs
  ngx_str_t host;        // the host part (NUL-terminated; empty for unix sockets)
  bool host_is_ip;
  ngx_addr_t addr;       // sockaddr, socklen, name
};

// What session_redis said.
struct redis_spec_t {
  Topology topology;
  ngx_str_t text;                 // the directive's arguments, for logs
  ngx_str_t master_name;          // sentinel=NAME
  ngx_array_t addrs;              // of redis_addr_t: the server, the sentinels or the seeds
  ngx_int_t db;
  ngx_str_t username;
  ngx_str_t password;
  ngx_str_t sentinel_username;
  ngx_str_t sentinel_password;
};

struct redis_client_t;

// One Redis deployment as the configuration names it (spec + TLS): deduplicated in the main
// conf, one client per worker.
struct redis_endpoint_t {
  redis_spec_t* spec;
  redis_tls_conf_t tls;
#if (NGX_SSL)
  ngx_ssl_t* ssl;                 // nullptr without TLS
#endif
  redis_client_t* client;         // this worker's (init_process)
  ngx_msec_t max_timeout;         // the longest session_redis_timeout of its locations
  // session_redis_cache zones of its locations (ngx_shm_zone_t*); nullptr: no location caches,
  // and the client makes no invalidation connections and sends no CLIENT TRACKING.
  ngx_array_t* cache_zones;
  ngx_msec_t cache_min_max_age;   // the shortest max_age of those locations
};

// The cache's zones (cache.cpp): their flush epochs (CacheCoherence's SharedEpoch).
uint64_t redis_cache_epoch(const ngx_shm_zone_t* zone);
void redis_cache_flush(ngx_shm_zone_t* zone);
// Entries. A zone is usable by this worker only while its configuration is the zone's latest
// (a reload shuts the previous generation's workers out). get: a live entry of key (its epoch
// equal to epoch, not ended at now_ms) is read (below); a dead one is removed. put:
// stores (evicting least recently used entries when full); false if it could not.
bool redis_cache_zone_current(const ngx_shm_zone_t* zone);
// The zone's max_age (the shortest of its locations'); this worker's heartbeat (a timer).
ngx_msec_t redis_cache_zone_max_age(const ngx_shm_zone_t* zone);
void redis_cache_heartbeat(ngx_shm_zone_t* zone);
// get reads the record in place, under the zone's lock: read(record, arg) decodes it (it must
// not throw, and returns false for bytes it cannot use: the entry is then removed); true if a
// live entry was read.
using cache_reader_pt = bool (*)(std::string_view record, void* arg) noexcept;
bool redis_cache_zone_get(ngx_shm_zone_t* zone, std::string_view key, uint64_t epoch,
                          uint64_t now_ms, cache_reader_pt read, void* arg);
bool redis_cache_zone_put(ngx_shm_zone_t* zone, std::string_view key, uint64_t epoch,
                          uint64_t expires_ms, std::string_view record);
void redis_cache_zone_erase(ngx_shm_zone_t* zone, std::string_view key);

// Configuration (conf.cpp).
char* session_redis_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
// Builds (or finds) the endpoint of a merged location that uses the Redis store.
redis_endpoint_t* redis_endpoint(ngx_conf_t* cf, const redis_spec_t* spec,
                                 const redis_tls_conf_t* tls);
// A log name for an endpoint ("127.0.0.1:6379", "sentinel=mymaster", "cluster 127.0.0.1:7000").
const ngx_str_t* redis_endpoint_name(const redis_endpoint_t* ep);

// ---------------------------------------------------------------------------------------------
// Nodes (node.cpp)

struct redis_node_t;

// Why a command is on a connection.
enum class CmdPurpose : uint8_t {
  User,          // a request's command (redis_op_t)
  Handshake,     // AUTH, SELECT: an error closes the connection
  Role,          // ROLE on a Sentinel master: anything but master closes it
  Internal,      // the client's own (sentinel query, CLUSTER SLOTS, ASKING): result to the client
  Subscribe,     // SUBSCRIBE on a pub/sub connection
};

// Subscriber: a Sentinel's +switch-master. Invalidation: the session cache's link to one data
// node (CLIENT ID, SUBSCRIBE __redis__:invalidate; the data node's CLIENT TRACKING redirects to
// it); its messages are routed through the core's parse_invalidation.
enum class NodeRole : uint8_t { Data, Sentinel, Subscriber, Invalidation };

struct redis_node_t;
using node_reply_pt = void (*)(redis_node_t* node, void* data, const sess::RespValue* reply,
                               bool too_large);

struct redis_cmd_t {
  CmdPurpose purpose;
  struct redis_op_t* op;          // User: nullptr once abandoned (timed out, cancelled, failed)
  node_reply_pt internal;         // Internal: the client's handler
  void* data;
  ngx_msec_t deadline;            // (a user command's own deadline is its operation's timer)
  ngx_msec_t queued;              // when it was queued
  const sess::RespLimits* limits;
};

enum class NodeState : uint8_t { Down, Connecting, Tls, Ready };

struct redis_node_t {
  redis_client_t* client;
  NodeRole role;
  sess::NodeAddr addr;            // host (IP text or configured name) and port; port 0: unix
  ngx_str_t name;                 // "host:port" for logs
  ngx_addr_t sockaddr;
  ngx_str_t tls_name;             // verification name ("" : none configured, use the host)
  bool tls_name_is_ip;
  bool sni;                       // send the name as SNI (not for IP addresses)

  NodeState state = NodeState::Down;
  ngx_peer_connection_t pc;
  ngx_connection_t* c = nullptr;
  std::string out;                // bytes not written yet
  size_t out_pos = 0;
  std::deque<redis_cmd_t> fifo;   // commands written or to be written, oldest first
  sess::RespParser parser;
  bool subscribed = false;        // pub/sub mode: unsolicited arrays are messages

  ngx_event_t timer;              // connect/handshake timeout, then the oldest command's deadline
  ngx_event_t reconnect;          // a data node is kept connected
  ngx_msec_t backoff;
  ngx_msec_t retry_at = 0;
  time_t failure_logged = 0;
  bool keep_connected = false;
  bool closing = false;
  bool healthy = false;           // a good answer arrived on this connection
  bool connected_before = false;  // for the metrics: the next connection is a reconnect
#if (NGX_SSL)
  ngx_ssl_session_t* ssl_session = nullptr;  // reused across reconnects (a verified peer's)
  ngx_ssl_session_t* ssl_pending = nullptr;  // announced during a handshake not yet verified
#endif
  void* storage = nullptr;        // the strings behind name and tls_name (node.cpp)
  struct cache_link_t* link = nullptr;  // the session cache's link (client.cpp): data and
                                        // invalidation nodes of a caching endpoint
};

// Creates a node (not connected). nullptr on failure (logged).
redis_node_t* node_create(redis_client_t* client, NodeRole role, const sess::NodeAddr& addr,
                          const redis_addr_t* configured);
void node_destroy(redis_node_t* node);

// Queues a command (args formatted by the core) with a deadline. The node connects if needed.
// False if the node cannot take commands now (in reconnect backoff, or out of memory).
bool node_send(redis_node_t* node, const sess::RedisArgs& args, const redis_cmd_t& cmd);
bool node_send_raw(redis_node_t* node, std::string_view bytes, const redis_cmd_t& cmd);

// Starts connecting if down and not in backoff. False if in backoff.
bool node_connect(redis_node_t* node);
// Closes the connection, failing every command on it; `why` is logged at error (nullptr: quietly).
void node_close(redis_node_t* node, const char* why);
// Gives up a user command (timed out, cancelled): its reply will be read and dropped.
void node_abandon(redis_node_t* node, struct redis_op_t* op);
bool node_usable(const redis_node_t* node);  // connected or connecting

// ---------------------------------------------------------------------------------------------
// Operations and clients (client.cpp)

// One request's command, owned by the request through a pool cleanup that cancels it.
struct redis_op_t {
  ngx_http_request_t* r;          // nullptr once the request is gone (or a detached operation)
  void (*detached)(redis_op_t* op);  // a detached operation's handler (no request: the
                                     // session cache's reads); called once, then deleted
  ngx_pool_cleanup_t* cln;
  redis_done_pt done;
  void* data;
  redis_client_t* client;
  redis_node_t* node;             // where it waits for its reply (nullptr: not queued)
  bool waiting;                   // queued in its client until a Sentinel master is known
  ngx_queue_t wait_link;
  std::string command;            // the RESP bytes (resent on MOVED / ASK)
  int slot;                       // cluster slot, -1 elsewhere
  uint8_t redirects;
  const sess::RespLimits* limits;
  ngx_msec_t deadline;
  ngx_event_t timeout;            // the location's session_redis_timeout
  ngx_event_t post;               // calls done from a posted event
  sess::RespValue reply;
  bool has_reply;
  bool too_large;
  uint64_t started_us;            // when it was made (metric_now_us; 0: not counting)
};

// Called by nodes: a reply (or failure: reply == nullptr) for a user command.
void op_reply(redis_op_t* op, redis_node_t* node, sess::RespValue* reply, bool too_large);

// Called by nodes: connecting (queue the handshake: AUTH, SELECT, ROLE, SUBSCRIBE), established
// (TCP and TLS), lost, and a pub/sub message.
void client_node_handshake(redis_node_t* node);
void client_node_ready(redis_node_t* node);
void client_node_down(redis_node_t* node);
void client_node_message(redis_node_t* node, std::string_view channel, std::string_view payload);
// An invalidation node: its SUBSCRIBE __redis__:invalidate is confirmed; an invalidation
// message (Keys or All) arrived.
void client_node_subscribed(redis_node_t* node);
void client_node_invalidation(redis_node_t* node, const sess::Invalidation& inv);

ngx_msec_t client_connect_timeout(const redis_client_t* client);
// How long the oldest command may wait before the connection counts as stuck: the longest
// timeout of any location using it (shorter ones gave up on their own by then).
ngx_msec_t client_stall_limit(const redis_client_t* client);
const redis_endpoint_t* client_endpoint(const redis_client_t* client);
ngx_log_t* client_log(const redis_client_t* client);
bool client_exiting(const redis_client_t* client);

}  // namespace ngx_session
