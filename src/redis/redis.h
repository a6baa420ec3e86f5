// ngx_http_session_module: the Redis client - its own room (src/redis/).
//
//   conf.cpp    session_redis (standalone, sentinel=NAME, cluster) and session_redis_tls*;
//               endpoints (one per distinct configuration) built when locations are merged
//   node.cpp    one connection to one Redis node: an nginx peer connection on the worker's event
//               loop, TLS by nginx's own SSL layer, RESP2 by the core's bounded parser
//               (core/resp.h), pipelined commands, a deadline per command, reconnect backoff
//   client.cpp  one client per endpoint and worker: its nodes, the operations of requests
//               (redis_send and friends, declared in ngx_http_session.h), standalone
//   topology.cpp  Sentinel (the master) and Cluster (the slot map) that route() reads
//   cache_link.cpp  the session cache's invalidation links and the reads that fill its zones
//   cache.cpp   session_redis_cache: the shared-memory zones
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
#include <unordered_map>
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
// A worker that stood still for longer than the heartbeat limit (stopped, blocked) may have
// invalidations waiting in its sockets, and nginx runs a woken worker's timers before it reads
// them: its heartbeat is then not renewed (false) unless stalled_ok, which the timer passes on
// its next turn, after the event loop handled what was pending.
bool redis_cache_heartbeat(ngx_shm_zone_t* zone, bool stalled_ok);
// get reads the record in place, under the zone's lock: read(record, arg) decodes it (it must
// not throw, and returns false for bytes it cannot use: the entry is then removed); true if a
// live entry was read.
//   An entry also keeps one id cookie of its session that a worker verified (the last one it
// was given with keep, or put's): with cookie and not keep, the entry is read only if it keeps
// exactly that cookie (sess::kept_cookie_matches: the ring and cookie name it was verified
// under, and its proof - every byte of the cookie but the id, which is key's), else get returns
// false and leaves it; with cookie and keep - only for a cookie that envelope_open verified and
// whose id is key's - a live entry read keeps that cookie from then on, if the zone has room for
// it (64 bytes; nothing is evicted for it).
using cache_reader_pt = bool (*)(std::string_view record, void* arg) noexcept;
bool redis_cache_zone_get(ngx_shm_zone_t* zone, std::string_view key, uint64_t epoch,
                          uint64_t now_ms, cache_reader_pt read, void* arg,
                          const cache_cookie_t* cookie = nullptr, bool keep = false);
bool redis_cache_zone_put(ngx_shm_zone_t* zone, std::string_view key, uint64_t epoch,
                          uint64_t expires_ms, std::string_view record,
                          const cache_cookie_t* cookie = nullptr);  // (kept as by get's keep)
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
  struct cache_link_t* link = nullptr;  // the session cache's link (cache_link.cpp): data and
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

// The flush epoch of every cache zone of the endpoint (one counter per zone, all workers): a
// flush bumps each, and the sum moves whenever any of them does.
class EndpointEpoch final : public sess::SharedEpoch {
 public:
  explicit EndpointEpoch(const redis_endpoint_t* ep) : ep_(ep) {}
  uint64_t load() const noexcept override {
    uint64_t sum = 0;
    auto** zones = static_cast<ngx_shm_zone_t**>(ep_->cache_zones->elts);
    for (ngx_uint_t i = 0; i < ep_->cache_zones->nelts; i++) sum += redis_cache_epoch(zones[i]);
    return sum;
  }
  void bump() noexcept override {
    auto** zones = static_cast<ngx_shm_zone_t**>(ep_->cache_zones->elts);
    for (ngx_uint_t i = 0; i < ep_->cache_zones->nelts; i++) redis_cache_flush(zones[i]);
  }

 private:
  const redis_endpoint_t* ep_;
};

// The session cache's coherence link for one data node of a caching endpoint: an invalidation
// node on the same Redis node (CLIENT ID, then SUBSCRIBE __redis__:invalidate, pinged), and the
// data node's CLIENT TRACKING on REDIRECT <its id>, sent in the data node's handshake and again
// whenever the id changes. Every event goes to the link's CacheCoherence (all links share the
// endpoint's epoch: a flush on any of them empties the zones).
//
// Redis 7.0 as verified against redis-server (raw RESP2): CLIENT TRACKING on REDIRECT <b> on a
// connection already redirecting to <a> is accepted (no OFF first) and takes effect for keys read
// before; a REDIRECT to a client id that does not exist is refused (-ERR ... does not exist) and
// the connection stays usable, untracked; the subscriber's confirmation is [subscribe, channel,
// 1], a key change [message, channel, [key]] (an array of keys), FLUSHALL [message, channel,
// nil]; PING in subscribed mode answers [pong, ""]; when the redirect target dies, the RESP2 data
// connection is told nothing (no tracking-redir-broken: that is RESP3) and later writes are
// reported nowhere: hence the PING with its own deadline. Redis writes a command's reply before
// the invalidations it caused (the same event-loop turn).
struct cache_link_t {
  redis_client_t* cl;
  redis_node_t* data;
  redis_node_t* inval;
  int64_t id = 0;                 // the invalidation node's CLIENT ID on this connection
  int64_t subscribed_id = 0;      // id, once the subscription is confirmed; 0: not subscribed
  bool ping_out = false;
  bool stopped = false;           // its data node is not kept connected (a former Sentinel
                                  // master, a cluster seed outside the map): not counted
  ngx_event_t ping;
  sess::LogLimiter refused_log;   // CLIENT TRACKING refusals
  std::unique_ptr<sess::CacheCoherence> coherence;
  uint64_t invalidations = 0;
};

// One endpoint's client in one worker (client.cpp; topology.cpp and cache_link.cpp keep their
// parts of it).
struct redis_client_t {
  redis_endpoint_t* ep;
  ngx_log_t* log;
  bool exiting = false;
  std::vector<redis_node_t*> all;       // every node this client made (owned)

  redis_node_t* master = nullptr;       // standalone and sentinel: the data node

  std::vector<redis_node_t*> sentinels;  // sentinel: query connections, one per sentinel
  std::vector<redis_node_t*> subs;       // pub/sub connections, one per sentinel (made lazily)
  size_t sub_index = 0;
  size_t query_index = 0;
  size_t query_tries = 0;
  bool discovering = false;
  ngx_event_t poll;
  ngx_queue_t waiting;                   // operations that arrived before the first master

  sess::SlotMap map;                     // cluster
  std::vector<redis_node_t*> by_index;   // node of map.nodes()[i]
  std::vector<redis_node_t*> seeds;
  size_t seed_index = 0;
  bool refreshing = false;
  ngx_msec_t last_refresh = 0;
  ngx_event_t refresh;
  ngx_event_t prune;                     // posted after a new map: drops nodes nobody uses

  sess::LogLimiter unavailable_log;
  sess::LogLimiter node_limit_log;

  std::unique_ptr<EndpointEpoch> epoch;  // the session cache (nullptr: the endpoint has none)
  ngx_event_t heartbeat;                 // this worker's heartbeat in the zones
  bool heartbeat_deferred = false;       // ... put off once after a stall (heartbeat_handler)
  std::vector<cache_link_t*> links;      // one per data node that connected (owned)
  std::unordered_map<std::string, struct cache_fill_t*> fills;  // reads for the zone, by key
};

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
// (TCP and TLS; cache_link.cpp), lost, and a pub/sub message (topology.cpp).
void client_node_handshake(redis_node_t* node);
void client_node_ready(redis_node_t* node);
void client_node_down(redis_node_t* node);
void client_node_message(redis_node_t* node, std::string_view channel, std::string_view payload);
// An invalidation node (cache_link.cpp): its SUBSCRIBE __redis__:invalidate is confirmed; an
// invalidation message (Keys or All) arrived.
void client_node_subscribed(redis_node_t* node);
void client_node_invalidation(redis_node_t* node, const sess::Invalidation& inv);

ngx_msec_t client_connect_timeout(const redis_client_t* client);
// How long the oldest command may wait before the connection counts as stuck: the longest
// timeout of any location using it (shorter ones gave up on their own by then).
ngx_msec_t client_stall_limit(const redis_client_t* client);
const redis_endpoint_t* client_endpoint(const redis_client_t* client);
ngx_log_t* client_log(const redis_client_t* client);
bool client_exiting(const redis_client_t* client);

// Shared by client.cpp, topology.cpp and cache_link.cpp (defined in client.cpp).
// A command of the client's own (topology queries, handshakes), with a connect-long deadline.
redis_cmd_t internal_cmd(node_reply_pt handler, void* data,
                         CmdPurpose purpose = CmdPurpose::Internal);
// The configured address of a node, if it is one (for its name and TLS name).
const redis_addr_t* configured_addr(redis_client_t* cl, const sess::NodeAddr& addr);
// The client's node of role at addr, made if new; nullptr past kMaxClientNodes or on failure.
redis_node_t* node_for(redis_client_t* cl, NodeRole role, const sess::NodeAddr& addr,
                       const redis_addr_t* configured = nullptr);
// The NodeAddr of a configured address (unix sockets: the text as written, port 0).
sess::NodeAddr addr_of(const redis_addr_t& a);
// An operation is done (reply nullptr: failed): its timer stops, done runs from a posted event.
void complete(redis_op_t* op, sess::RespValue* reply, bool too_large);
// Queues op's command on node; false (nothing queued) if node is nullptr or refuses it.
bool send_op(redis_op_t* op, redis_node_t* node);
// A new operation of args for key (not queued yet).
redis_op_t* new_op(redis_client_t* cl, const sess::RedisArgs& args, std::string_view key,
                   ngx_msec_t timeout, const sess::RespLimits* limits, ngx_log_t* log);
// Queues op where its key lives (or to wait for the first Sentinel master), starts its timer.
bool dispatch_op(redis_client_t* cl, redis_op_t* op, ngx_msec_t timeout);

// Topologies (topology.cpp).
constexpr ngx_msec_t kSentinelPoll = 5000;  // the sentinels are asked again this often
// Sentinel: asks the sentinels for the master (unless already asking).
void discover(redis_client_t* cl);
// Sentinel: keeps one pub/sub connection to a sentinel (+switch-master).
void ensure_subscriber(redis_client_t* cl);
// Sentinel: the poll timer (discover, ensure_subscriber, every kSentinelPoll).
void poll_handler(ngx_event_t* ev) noexcept;
// Cluster: sends CLUSTER SLOTS now (unless a refresh is in flight).
void refresh_now(redis_client_t* cl);
// Cluster: the refresh timer.
void refresh_handler(ngx_event_t* ev) noexcept;
// Cluster: refreshes the slot map, at most once a second.
void schedule_refresh(redis_client_t* cl);
// Cluster: the posted event that drops data nodes that left the slot map.
void prune_handler(ngx_event_t* ev) noexcept;

// The data node for a slot (-1 outside Cluster: the master); nullptr: none now. Inline: it is on
// every command's path (dispatch_op) and reads what the topology keeps (the master, the map).
inline redis_node_t* route(redis_client_t* cl, int slot) {
  if (cl->ep->spec->topology != Topology::Cluster) return cl->master;
  uint16_t idx = cl->map.node_of(static_cast<uint16_t>(slot));
  if (idx != sess::SlotMap::kNone && idx < cl->by_index.size() && cl->by_index[idx] != nullptr) {
    return cl->by_index[idx];
  }
  schedule_refresh(cl);
  // No map yet: any seed; a MOVED will say where the key lives.
  for (size_t i = 0; i < cl->seeds.size(); i++) {
    redis_node_t* n = cl->seeds[(cl->seed_index + i) % cl->seeds.size()];
    if (node_usable(n) || ngx_current_msec >= n->retry_at) return n;
  }
  return cl->seeds.empty() ? nullptr : cl->seeds[0];
}

// The session cache's links (cache_link.cpp).
// This worker's heartbeat timer in the endpoint's zones.
void heartbeat_handler(ngx_event_t* ev) noexcept;
// A Sentinel switch, a cluster MOVED: every zone of the endpoint is emptied.
void cache_topology_changed(redis_client_t* cl);
// The reply to CLIENT ID on an invalidation node.
void on_client_id(redis_node_t* node, void*, const sess::RespValue* reply, bool);
// Sends CLIENT TRACKING on REDIRECT <the subscribed id> on the link's data node.
void send_tracking(cache_link_t* link);
// The link of a data node, made when it first connects (or kept connected again).
cache_link_t* link_for(redis_client_t* cl, redis_node_t* data);
// The data node is no longer kept connected (a former Sentinel master): neither is its link.
void link_stop(cache_link_t* link);
// The data node is being destroyed (left the cluster's map).
void link_destroy(redis_client_t* cl, cache_link_t* link);
// This nginx changes key: its entry goes, and fills of it in flight are not stored.
void cache_own_write(redis_client_t* cl, std::string_view key);

}  // namespace ngx_session
