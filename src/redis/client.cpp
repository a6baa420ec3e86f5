// ngx_http_session_module: the Redis client of one endpoint in one worker - the topology - and
// the operations requests send through it.
//
// Standalone: one data node, kept connected.
// Sentinel: the sentinels are asked for the master (SENTINEL get-master-addr-by-name), the master
//   is confirmed with ROLE on every connect, a pub/sub connection to a sentinel follows
//   +switch-master, and a poll every few seconds catches a missed announcement. A master that
//   says READONLY or that ROLE shows to be a replica is left at once and the sentinels are asked
//   again.
// Cluster: the slot map comes from CLUSTER SLOTS of a seed (or any known node); each command goes
//   to the node of its key's slot over one pipelined connection per node; MOVED updates the map
//   and retries, ASK sends ASKING and retries, at most kMaxRedirects times; the whole map is
//   refreshed after a MOVED or a lost node, at most once a second.
//
// Session cache (an endpoint with session_redis_cache zones): every data node gets a link, an
// invalidation connection to the same node (CLIENT ID, SUBSCRIBE __redis__:invalidate, PING at
// min(1 s, max_age / 2) answered within the stall limit or the connection is replaced), and the
// data connection sends CLIENT TRACKING on REDIRECT <that id> in its handshake and again for
// each new id. Link events feed a CacheCoherence per link; all links share the zones' epoch.
//
// Operations: one per request command, owned by the request (its pool cleanup cancels it), with
// a timer of the location's session_redis_timeout: a command never waits longer than that,
// whatever is ahead of it on the connection (its reply is then read and dropped). Results reach
// the request from a posted event.

#include "redis.h"

#include "../ngx_http_session_metrics.h"

#include <algorithm>
#include <unordered_map>

#include "../core/record.h"

namespace ngx_session {

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
  std::vector<cache_link_t*> links;      // one per data node that connected (owned)
  std::unordered_map<std::string, struct cache_fill_t*> fills;  // reads for the zone, by key
};

// A request waiting for a read of the zone (its first requester included); lives in the
// request's pool, removed from its fill by the pool's cleanup if the request goes first.
struct cache_waiter_t {
  ngx_http_request_t* r;
  redis_done_pt done;
  void* data;
  struct cache_fill_t* fill;
  ngx_queue_t q;
  ngx_event_t timeout;            // its own location's session_redis_timeout
};

// One read of a record for the zone (HGETALL and PTTL pipelined on the node the key lives on,
// which tracks it), shared by every request of this worker that missed the key meanwhile. Not
// owned by a request: its operations are detached and end within the first requester's
// session_redis_timeout; a fill nobody waits for any more still stores what it read.
struct cache_fill_t {
  redis_client_t* cl;
  cache_link_t* link;             // whose coherence holds the ticket (nullptr: link destroyed)
  std::optional<sess::CacheCoherence::FillTicket> ticket;
  std::string key;
  ngx_shm_zone_t* zone;
  ngx_msec_t max_age;
  ngx_msec_t timeout;             // its operations' (the first requester's session_redis_timeout)
  redis_op_t* get = nullptr;
  int outstanding = 0;
  sess::RespValue reply;
  bool has_reply = false;
  bool too_large = false;
  bool redirected = false;        // MOVED/ASK: the read was answered by another node's link
  bool has_pttl = false;
  int64_t pttl = 0;
  ngx_queue_t waiters;
};

namespace {

constexpr ngx_msec_t kConnectTimeout = 1000;
constexpr ngx_msec_t kSentinelPoll = 5000;
constexpr ngx_msec_t kRefreshInterval = 1000;
constexpr uint8_t kMaxRedirects = 5;
constexpr size_t kMaxClientNodes = sess::SlotMap::kMaxNodes + 64;

sess::RespLimits make_topology_limits() {
  sess::RespLimits l;
  l.max_total = 4 * 1024 * 1024;  // CLUSTER SLOTS of a large cluster
  l.max_depth = 4;                 // [[first, last, [host, port, id, {...}], ...], ...]
  l.max_elements = 16384;
  return l;
}
const sess::RespLimits kTopologyLimits = make_topology_limits();

main_conf_t* main_conf(ngx_cycle_t* cycle) {
  if (cycle->conf_ctx[ngx_http_module.index] == nullptr) return nullptr;
  return static_cast<main_conf_t*>(
      ngx_http_cycle_get_module_main_conf(cycle, ngx_http_session_module));
}

redis_cmd_t internal_cmd(node_reply_pt handler, void* data, CmdPurpose purpose = CmdPurpose::Internal) {
  redis_cmd_t cmd{};
  cmd.purpose = purpose;
  cmd.internal = handler;
  cmd.data = data;
  cmd.deadline = ngx_current_msec + kConnectTimeout;
  cmd.limits = &kTopologyLimits;
  return cmd;
}

// The configured address of a node, if it is one (for its name and TLS name).
const redis_addr_t* configured_addr(redis_client_t* cl, const sess::NodeAddr& addr) {
  auto* a = static_cast<redis_addr_t*>(cl->ep->spec->addrs.elts);
  for (ngx_uint_t i = 0; i < cl->ep->spec->addrs.nelts; i++) {
    if (sv(a[i].host) == addr.host && ngx_inet_get_port(a[i].addr.sockaddr) == addr.port) {
      return &a[i];
    }
  }
  return nullptr;
}

redis_node_t* find_node(redis_client_t* cl, NodeRole role, const sess::NodeAddr& addr) {
  for (redis_node_t* n : cl->all) {
    if (n->role == role && n->addr == addr) return n;
  }
  return nullptr;
}

redis_node_t* node_for(redis_client_t* cl, NodeRole role, const sess::NodeAddr& addr,
                       const redis_addr_t* configured = nullptr) {
  if (redis_node_t* n = find_node(cl, role, addr)) return n;
  if (cl->all.size() >= kMaxClientNodes) {
    // Redirections to ever new addresses (a broken or hostile node): refuse, do not grow.
    uint64_t more = 0;
    if (cl->node_limit_log.allow(static_cast<uint64_t>(ngx_time()), &more)) {
      ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                    "session redis \"%V\": more than %uz nodes, %s:%d not used (%uL more since "
                    "the last such line)",
                    redis_endpoint_name(cl->ep), kMaxClientNodes, addr.host.c_str(),
                    static_cast<int>(addr.port), more);
    }
    return nullptr;
  }
  redis_node_t* n = node_create(cl, role, addr, configured ? configured : configured_addr(cl, addr));
  if (n == nullptr) return nullptr;
  cl->all.push_back(n);
  return n;
}

sess::NodeAddr addr_of(const redis_addr_t& a) {
  sess::NodeAddr out;
  if (a.addr.sockaddr->sa_family == AF_UNIX) {
    out.host.assign(sv(a.text));
    out.port = 0;
  } else {
    out.host.assign(sv(a.host));
    out.port = static_cast<uint16_t>(ngx_inet_get_port(a.addr.sockaddr));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Session cache links (only for an endpoint with cache zones)

constexpr ngx_msec_t kPingMax = 1000;
constexpr ngx_msec_t kPingMin = 100;

// Shorter than max_age (half of the shortest), at most 1 s. A PING unanswered for the stall
// limit (client_stall_limit, at least 1 s) closes the connection: that is the deadline.
ngx_msec_t ping_interval(const redis_client_t* cl) {
  return ngx_max(kPingMin, ngx_min(kPingMax, cl->ep->cache_min_max_age / 2));
}

// A Sentinel switch, a cluster MOVED: every zone of the endpoint is emptied.
constexpr ngx_msec_t kHeartbeat = 100;

void heartbeat_handler(ngx_event_t* ev) noexcept {
  auto* cl = static_cast<redis_client_t*>(ev->data);
  if (cl->exiting) return;
  auto** zones = static_cast<ngx_shm_zone_t**>(cl->ep->cache_zones->elts);
  for (ngx_uint_t i = 0; i < cl->ep->cache_zones->nelts; i++) redis_cache_heartbeat(zones[i]);
  ngx_add_timer(ev, kHeartbeat);
}

void cache_topology_changed(redis_client_t* cl) {
  if (!cl->links.empty()) {
    cl->links.front()->coherence->topology_changed();
  } else if (cl->epoch != nullptr) {
    cl->epoch->bump();
  }
}

// The configured address of a node (unix sockets included), for an invalidation node's name and
// TLS name.
const redis_addr_t* configured_for(redis_client_t* cl, const sess::NodeAddr& addr) {
  auto* a = static_cast<redis_addr_t*>(cl->ep->spec->addrs.elts);
  for (ngx_uint_t i = 0; i < cl->ep->spec->addrs.nelts; i++) {
    if (addr_of(a[i]) == addr) return &a[i];
  }
  return nullptr;
}

void on_pong(redis_node_t* node, void*, const sess::RespValue* reply, bool) {
  cache_link_t* link = node->link;
  if (link == nullptr) return;
  link->ping_out = false;
  if (reply == nullptr ||
      sess::parse_invalidation(*reply).kind != sess::Invalidation::Kind::Pong) {
    node_close(node, "unexpected answer to PING on the invalidation connection");
  }
}

void ping_handler(ngx_event_t* ev) noexcept {
  auto* link = static_cast<cache_link_t*>(ev->data);
  guard_void(link->cl->log, [&]() {
    if (link->cl->exiting) return;
    redis_node_t* n = link->inval;
    if (n->state == NodeState::Ready && link->subscribed_id > 0 && !link->ping_out) {
      sess::RedisArgs args(std::pmr::new_delete_resource());
      args.emplace_back("PING");
      // Its own deadline (not the stall limit, which follows the longest
      // session_redis_timeout): a quietly dead link is found within two intervals.
      redis_cmd_t cmd = internal_cmd(on_pong, link);
      cmd.deadline = ngx_current_msec + ping_interval(link->cl);
      if (node_send(n, args, cmd)) link->ping_out = true;
    }
    ngx_add_timer(&link->ping, ping_interval(link->cl));
  });
}

void on_client_id(redis_node_t* node, void*, const sess::RespValue* reply, bool) {
  cache_link_t* link = node->link;
  if (link == nullptr || reply == nullptr) return;
  if (reply->type != sess::RespType::Integer || reply->integer <= 0) {
    node_close(node, "CLIENT ID refused on the invalidation connection");
    return;
  }
  link->id = reply->integer;
}

void on_tracking(redis_node_t* node, void* data, const sess::RespValue* reply, bool) {
  cache_link_t* link = node->link;
  if (link == nullptr || reply == nullptr) return;  // closed: the loss is reported by down
  auto id = static_cast<int64_t>(reinterpret_cast<intptr_t>(data));
  bool ok = reply->type == sess::RespType::Status && reply->str == "OK";
  uint64_t more = 0;
  if (!ok && link->refused_log.allow(static_cast<uint64_t>(ngx_time()), &more)) {
    ngx_str_t msg = ngx_str(std::string_view(reply->str).substr(0, 200));
    ngx_log_error(NGX_LOG_ERR, link->cl->log, 0,
                  "session redis \"%V\": CLIENT TRACKING on REDIRECT %L refused (%V), the "
                  "session cache is bypassed (%uL more since the last such line)",
                  &node->name, id, &msg, more);
  }
  link->coherence->data_tracking(0, id, ok);
}

// CLIENT TRACKING on REDIRECT <the subscribed id> on the data node (in its handshake, or when
// the id changed; Redis 7 accepts a new REDIRECT while tracking, no OFF first).
void send_tracking(cache_link_t* link) {
  if (link->subscribed_id <= 0) return;
  sess::RedisArgs args(std::pmr::new_delete_resource());
  args.emplace_back("CLIENT");
  args.emplace_back("TRACKING");
  args.emplace_back("on");
  args.emplace_back("REDIRECT");
  args.emplace_back(std::to_string(link->subscribed_id));
  node_send(link->data, args,
            internal_cmd(on_tracking,
                         reinterpret_cast<void*>(static_cast<intptr_t>(link->subscribed_id))));
}

// The link of a data node, made when it first connects (or kept connected again).
cache_link_t* link_for(redis_client_t* cl, redis_node_t* data) {
  if (data->link != nullptr) {
    redis_node_t* inval = data->link->inval;
    inval->keep_connected = true;
    data->link->stopped = false;
    // Stopped before (link_stop schedules no reconnect): in backoff, retry when it ends.
    if (!node_connect(inval) && !inval->reconnect.timer_set) {
      ngx_add_timer(&inval->reconnect,
                    inval->retry_at > ngx_current_msec ? inval->retry_at - ngx_current_msec : 1);
    }
    return data->link;
  }
  redis_node_t* inval = node_create(cl, NodeRole::Invalidation, data->addr,
                                    configured_for(cl, data->addr));
  if (inval == nullptr) return nullptr;
  cl->all.push_back(inval);
  auto* link = new cache_link_t();
  link->cl = cl;
  link->data = data;
  link->inval = inval;
  link->coherence = std::make_unique<sess::CacheCoherence>(*cl->epoch);
  link->ping.handler = ping_handler;
  link->ping.data = link;
  link->ping.log = cl->log;
  link->ping.cancelable = 1;
  data->link = link;
  inval->link = link;
  cl->links.push_back(link);
  inval->keep_connected = true;
  node_connect(inval);
  ngx_add_timer(&link->ping, ping_interval(cl));
  return link;
}

// The data node is no longer kept connected (a former Sentinel master): neither is its link.
void link_stop(cache_link_t* link) {
  link->stopped = true;
  link->inval->keep_connected = false;
  node_close(link->inval, nullptr);
}

// The data node is being destroyed (left the cluster's map).
void link_destroy(redis_client_t* cl, cache_link_t* link) {
  if (link->ping.timer_set) ngx_del_timer(&link->ping);
  cl->links.erase(std::remove(cl->links.begin(), cl->links.end(), link), cl->links.end());
  cl->all.erase(std::remove(cl->all.begin(), cl->all.end(), link->inval), cl->all.end());
  link->data->link = nullptr;
  link->inval->link = nullptr;
  for (auto& f : cl->fills) {
    if (f.second->link == link) f.second->link = nullptr;  // (its ticket dies with the link)
  }
  node_destroy(link->inval);
  link->coherence->data_removed(0);
  link->coherence->topology_changed();
  delete link;
}

// ---------------------------------------------------------------------------------------------
// Sentinel

void discover(redis_client_t* cl);
bool send_op(redis_op_t* op, redis_node_t* node);
void complete(redis_op_t* op, sess::RespValue* reply, bool too_large);

// Operations that waited for a master: sent to it now (node), or failed (nullptr).
void release_waiting(redis_client_t* cl, redis_node_t* node) {
  while (!ngx_queue_empty(&cl->waiting)) {
    ngx_queue_t* q = ngx_queue_head(&cl->waiting);
    auto* op = ngx_queue_data(q, redis_op_t, wait_link);
    ngx_queue_remove(q);
    op->waiting = false;
    if (!send_op(op, node)) complete(op, nullptr, false);
  }
}

void set_master(redis_client_t* cl, const sess::NodeAddr& addr) {
  if (cl->master != nullptr && cl->master->addr == addr) {
    cl->master->keep_connected = true;
    node_connect(cl->master);
    return;
  }
  redis_node_t* old = cl->master;
  redis_node_t* n = node_for(cl, NodeRole::Data, addr);
  if (n == nullptr) return;
  cl->master = n;
  n->keep_connected = true;
  ngx_log_error(NGX_LOG_NOTICE, cl->log, 0, "session redis \"%V\": master is %V",
                redis_endpoint_name(cl->ep), &n->name);
  if (old != nullptr) {
    metric(sess::Metric::RedisFailovers);
    old->keep_connected = false;
    node_close(old, nullptr);  // its commands fail now; new ones go to the new master
    if (old->link != nullptr) link_stop(old->link);
    cache_topology_changed(cl);
  }
  node_connect(n);
  release_waiting(cl, n);
}

void query_next(redis_client_t* cl);

void on_master_addr(redis_node_t* node, void* data, const sess::RespValue* reply, bool) {
  auto* cl = static_cast<redis_client_t*>(data);
  sess::NodeAddr addr;
  if (reply != nullptr && sess::parse_master_addr(*reply, &addr)) {
    cl->discovering = false;
    // Ask this sentinel first next time: sentinels that disagree for a while (one is stale
    // after a partition) must not make the master flip at every poll.
    for (size_t i = 0; i < cl->sentinels.size(); i++) {
      if (cl->sentinels[i] == node) cl->query_index = i;
    }
    set_master(cl, addr);
    return;
  }
  if (reply != nullptr) {
    ngx_log_error(NGX_LOG_WARN, cl->log, 0,
                  "session redis \"%V\": sentinel %V does not know master \"%V\"",
                  redis_endpoint_name(cl->ep), &node->name, &cl->ep->spec->master_name);
  }
  query_next(cl);
}

void query_next(redis_client_t* cl) {
  while (cl->query_tries < cl->sentinels.size()) {
    redis_node_t* s = cl->sentinels[cl->query_index++ % cl->sentinels.size()];
    cl->query_tries++;
    sess::RedisArgs args(std::pmr::new_delete_resource());
    args.emplace_back("SENTINEL");
    args.emplace_back("get-master-addr-by-name");
    args.emplace_back(sv(cl->ep->spec->master_name));
    if (node_send(s, args, internal_cmd(on_master_addr, cl))) return;
  }
  // No sentinel answered: try again at the next poll; whoever waited for a master fails now.
  cl->discovering = false;
  release_waiting(cl, nullptr);
}

void discover(redis_client_t* cl) {
  if (cl->discovering || cl->exiting || cl->sentinels.empty()) return;
  cl->discovering = true;
  cl->query_tries = 0;
  query_next(cl);
}

// Keeps one pub/sub connection to a sentinel, moving to the next sentinel when it fails.
void ensure_subscriber(redis_client_t* cl) {
  if (cl->sentinels.empty() || cl->exiting) return;
  if (cl->subs.empty()) {
    for (redis_node_t* s : cl->sentinels) {
      redis_node_t* n = node_create(cl, NodeRole::Subscriber, s->addr,
                                    configured_addr(cl, s->addr));
      if (n == nullptr) return;
      cl->all.push_back(n);
      cl->subs.push_back(n);
    }
  }
  redis_node_t* sub = cl->subs[cl->sub_index % cl->subs.size()];
  if (node_usable(sub)) return;
  if (!node_connect(sub)) {
    cl->sub_index++;
    node_connect(cl->subs[cl->sub_index % cl->subs.size()]);
  }
}

void poll_handler(ngx_event_t* ev) noexcept {
  auto* cl = static_cast<redis_client_t*>(ev->data);
  guard_void(cl->log, [&]() {
    if (cl->exiting) return;
    discover(cl);
    ensure_subscriber(cl);
    ngx_add_timer(&cl->poll, kSentinelPoll);
  });
}

// ---------------------------------------------------------------------------------------------
// Cluster

void schedule_refresh(redis_client_t* cl);

void on_slots(redis_node_t* node, void* data, const sess::RespValue* reply, bool) {
  auto* cl = static_cast<redis_client_t*>(data);
  cl->refreshing = false;
  std::vector<sess::SlotRange> ranges;
  if (reply == nullptr || !sess::parse_cluster_slots(*reply, node->addr, &ranges) ||
      !cl->map.assign(ranges)) {
    if (reply != nullptr) {
      ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                    "session redis \"%V\": CLUSTER SLOTS from %V could not be used",
                    redis_endpoint_name(cl->ep), &node->name);
    }
    schedule_refresh(cl);
    return;
  }
  cl->by_index.assign(cl->map.nodes().size(), nullptr);
  for (size_t i = 0; i < cl->map.nodes().size(); i++) {
    redis_node_t* n = node_for(cl, NodeRole::Data, cl->map.nodes()[i]);
    if (n != nullptr) n->keep_connected = true;
    cl->by_index[i] = n;
    if (n != nullptr) node_connect(n);
  }
  if (!cl->prune.posted) {
    ngx_post_event(&cl->prune, &ngx_posted_events);
  }
  if (!cl->map.covers_all()) {
    ngx_log_error(NGX_LOG_WARN, cl->log, 0, "session redis \"%V\": not every slot is served",
                  redis_endpoint_name(cl->ep));
  }
}

void refresh_now(redis_client_t* cl) {
  if (cl->refreshing || cl->exiting) return;
  cl->refreshing = true;
  cl->last_refresh = ngx_current_msec;
  sess::RedisArgs args(std::pmr::new_delete_resource());
  args.emplace_back("CLUSTER");
  args.emplace_back("SLOTS");
  // A node of the map that is up, else the seeds in turn.
  std::vector<redis_node_t*> order;
  for (redis_node_t* n : cl->by_index) {
    if (n != nullptr && n->state == NodeState::Ready) order.push_back(n);
  }
  for (size_t i = 0; i < cl->seeds.size(); i++) {
    order.push_back(cl->seeds[(cl->seed_index + i) % cl->seeds.size()]);
  }
  cl->seed_index++;
  for (redis_node_t* n : order) {
    if (node_send(n, args, internal_cmd(on_slots, cl))) return;
  }
  cl->refreshing = false;
  schedule_refresh(cl);
}

void refresh_handler(ngx_event_t* ev) noexcept {
  auto* cl = static_cast<redis_client_t*>(ev->data);
  guard_void(cl->log, [&]() { refresh_now(cl); });
}

// At most one refresh a second.
void schedule_refresh(redis_client_t* cl) {
  if (cl->exiting || cl->refresh.timer_set || cl->refreshing) return;
  ngx_msec_t since = ngx_current_msec - cl->last_refresh;
  if (since >= kRefreshInterval) {
    refresh_now(cl);
    return;
  }
  ngx_add_timer(&cl->refresh, kRefreshInterval - since);
}

bool in(const std::vector<redis_node_t*>& v, const redis_node_t* n) {
  return std::find(v.begin(), v.end(), n) != v.end();
}

// Data nodes that left the slot map (scale-in, a MOVED or ASK target that is not an owner) are
// no longer kept connected, and are freed once nothing waits on them. A posted event: never
// inside a node's own reply handling.
void prune_handler(ngx_event_t* ev) noexcept {
  auto* cl = static_cast<redis_client_t*>(ev->data);
  guard_void(cl->log, [&]() {
    if (cl->exiting) return;
    std::vector<redis_node_t*> kept;
    kept.reserve(cl->all.size());
    std::vector<redis_node_t*> gone;
    for (redis_node_t* n : cl->all) {
      // (An invalidation node goes with its data node's link.)
      bool used = n->role != NodeRole::Data || n == cl->master || in(cl->seeds, n) ||
                  in(cl->by_index, n);
      if (!used) n->keep_connected = false;
      if (!used && n->fifo.empty()) {
        gone.push_back(n);
      } else {
        kept.push_back(n);
      }
    }
    cl->all.swap(kept);
    for (redis_node_t* n : gone) {
      if (n->link != nullptr) link_destroy(cl, n->link);
      node_destroy(n);
    }
    for (redis_node_t* n : cl->all) {
      if (n->role == NodeRole::Data && !n->keep_connected && n->link != nullptr &&
          n->link->inval->keep_connected) {
        link_stop(n->link);
      }
    }
  });
}

redis_node_t* route(redis_client_t* cl, int slot) {
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

// ---------------------------------------------------------------------------------------------
// Operations

void op_post_handler(ngx_event_t* ev) noexcept;
void op_timeout_handler(ngx_event_t* ev) noexcept;

void complete(redis_op_t* op, sess::RespValue* reply, bool too_large) {
  if (op->timeout.timer_set) ngx_del_timer(&op->timeout);
  op->node = nullptr;
  if (reply != nullptr) {
    op->reply = std::move(*reply);
    op->has_reply = true;
  }
  op->too_large = too_large;
  if (op->post.posted) return;
  ngx_post_event(&op->post, &ngx_posted_events);
}

bool send_op(redis_op_t* op, redis_node_t* node) {
  redis_cmd_t cmd{};
  cmd.purpose = CmdPurpose::User;
  cmd.op = op;
  cmd.deadline = op->deadline;
  cmd.limits = op->limits;
  if (node == nullptr || !node_send_raw(node, op->command, cmd)) return false;
  op->node = node;
  return true;
}

void op_cancel(void* data) noexcept {
  auto* op = static_cast<redis_op_t*>(data);
  op->r = nullptr;
  if (op->post.posted) {
    ngx_delete_posted_event(&op->post);
  }
  if (op->timeout.timer_set) ngx_del_timer(&op->timeout);
  if (op->node != nullptr) node_abandon(op->node, op);
  if (op->waiting) {
    ngx_queue_remove(&op->wait_link);
  }
  delete op;
}

void op_post_handler(ngx_event_t* ev) noexcept {
  auto* op = static_cast<redis_op_t*>(ev->data);
  metric_redis_op(op);
  if (op->detached != nullptr) {
    guard_void(op->client->log, [&]() { op->detached(op); });
    delete op;
    return;
  }
  ngx_http_request_t* r = op->r;
  if (op->cln != nullptr) op->cln->handler = nullptr;  // the request's pool no longer knows it
  ngx_connection_t* c = r->connection;
  guard_void(c->log, [&]() {
    op->done(r, op->data, op->has_reply ? &op->reply : nullptr, op->too_large);
  });
  delete op;
  ngx_http_run_posted_requests(c);
}

void op_timeout_handler(ngx_event_t* ev) noexcept {
  auto* op = static_cast<redis_op_t*>(ev->data);
  guard_void(ev->log, [&]() {
    if (op->node != nullptr) node_abandon(op->node, op);  // its reply will be read and dropped
    if (op->waiting) {
      ngx_queue_remove(&op->wait_link);
      op->waiting = false;
    }
    complete(op, nullptr, false);
  });
}

}  // namespace

void op_reply(redis_op_t* op, redis_node_t* node, sess::RespValue* reply, bool too_large) {
  redis_client_t* cl = op->client;
  op->node = nullptr;
  if (reply != nullptr && reply->type == sess::RespType::Error) {
    std::string_view err = reply->str;
    if (cl->ep->spec->topology == Topology::Cluster && op->redirects < kMaxRedirects) {
      sess::Redirect rd = sess::parse_redirect(err);
      if (rd.kind != sess::RedirectKind::None && rd.node.host.empty()) {
        rd.node.host = node->addr.host;  // "MOVED 12182 :7001": the node that answered
      }
      if (rd.kind != sess::RedirectKind::None) {
        op->redirects++;
        metric(sess::Metric::RedisRedirects, rd.kind == sess::RedirectKind::Moved ? 0 : 1);
        redis_node_t* target = node_for(cl, NodeRole::Data, rd.node);
        if (rd.kind == sess::RedirectKind::Moved) {
          if (target != nullptr) target->keep_connected = true;  // an owner now
          cache_topology_changed(cl);
          if (cl->map.move(rd.slot, rd.node)) {
            cl->by_index.resize(cl->map.nodes().size(), nullptr);
            for (size_t i = 0; i < cl->map.nodes().size(); i++) {
              if (cl->map.nodes()[i] == rd.node) cl->by_index[i] = target;
            }
          }
          schedule_refresh(cl);
        } else if (target != nullptr) {
          redis_cmd_t asking = internal_cmd(nullptr, nullptr);
          asking.deadline = op->deadline;
          static const char kAsking[] = "*1\r\n$6\r\nASKING\r\n";
          node_send_raw(target, kAsking, asking);
        }
        if (send_op(op, target)) return;  // still in flight
      }
    }
    if (cl->ep->spec->topology == Topology::Sentinel && node == cl->master &&
        err.substr(0, 8) == "READONLY") {
      ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                    "session redis \"%V\": %V is a replica now (READONLY), asking the sentinels",
                    redis_endpoint_name(cl->ep), &node->name);
      complete(op, reply, too_large);
      node_close(node, nullptr);
      return;
    }
  }
  complete(op, reply, too_large);
}

void client_node_handshake(redis_node_t* node) {
  redis_client_t* cl = node->client;
  const redis_spec_t* spec = cl->ep->spec;
  sess::RedisArgs args(std::pmr::new_delete_resource());
  bool sentinel_side = node->role == NodeRole::Sentinel || node->role == NodeRole::Subscriber;
  cache_link_t* link = nullptr;
  if (node->role == NodeRole::Data && cl->epoch != nullptr) link = link_for(cl, node);
  const ngx_str_t& user = sentinel_side ? spec->sentinel_username : spec->username;
  const ngx_str_t& pass = sentinel_side ? spec->sentinel_password : spec->password;
  if (pass.len) {
    args.emplace_back("AUTH");
    if (user.len) args.emplace_back(sv(user));
    args.emplace_back(sv(pass));
    node_send(node, args, internal_cmd(nullptr, nullptr, CmdPurpose::Handshake));
  }
  if (node->role == NodeRole::Data && spec->topology != Topology::Cluster && spec->db != 0) {
    args.clear();
    args.emplace_back("SELECT");
    args.emplace_back(std::to_string(spec->db));
    node_send(node, args, internal_cmd(nullptr, nullptr, CmdPurpose::Handshake));
  }
  if (node->role == NodeRole::Data && spec->topology == Topology::Sentinel) {
    args.clear();
    args.emplace_back("ROLE");
    node_send(node, args, internal_cmd(nullptr, nullptr, CmdPurpose::Role));
  }
  if (link != nullptr) send_tracking(link);  // before any request's command
  if (node->role == NodeRole::Subscriber) {
    args.clear();
    args.emplace_back("SUBSCRIBE");
    args.emplace_back("+switch-master");
    node_send(node, args, internal_cmd(nullptr, nullptr, CmdPurpose::Subscribe));
    node->subscribed = true;
  }
  if (node->role == NodeRole::Invalidation && node->link != nullptr) {
    node->link->id = 0;
    node->link->subscribed_id = 0;
    node->link->ping_out = false;
    args.clear();
    args.emplace_back("CLIENT");
    args.emplace_back("ID");
    node_send(node, args, internal_cmd(on_client_id, nullptr));
    args.clear();
    args.emplace_back("SUBSCRIBE");
    args.emplace_back(sess::kInvalidateChannel);
    node_send(node, args, internal_cmd(nullptr, nullptr, CmdPurpose::Subscribe));
    node->subscribed = true;
  }
}

void client_node_ready(redis_node_t* node) {
  if (node->role == NodeRole::Data && node->link != nullptr) node->link->coherence->data_up(0);
}

void client_node_subscribed(redis_node_t* node) {
  cache_link_t* link = node->link;
  if (link == nullptr) return;
  if (link->id <= 0) {
    node_close(node, "no CLIENT ID before the invalidation subscription");
    return;
  }
  link->subscribed_id = link->id;
  link->coherence->subscriber_up(link->id);
  ngx_log_error(NGX_LOG_INFO, node->client->log, 0,
                "session redis \"%V\": invalidation connection subscribed (client id %L)",
                &node->name, link->id);
  if (node_usable(link->data)) send_tracking(link);
}

void client_node_invalidation(redis_node_t* node, const sess::Invalidation& inv) {
  cache_link_t* link = node->link;
  if (link == nullptr) return;
  link->invalidations++;
  metric_add(sess::metric_slot(sess::Metric::CacheInvalidations), inv.keys.size());
  redis_client_t* cl = link->cl;
  if (inv.kind != sess::Invalidation::Kind::Keys) {
    link->coherence->on_invalidation(inv);  // a flush (the epoch moves for every worker)
    return;
  }
  // A read redirected by ASK is tracked by another node's link: every link cancels its fills
  // of these keys (only this node's link had them tracked, but cancelling more is harmless).
  for (cache_link_t* l : cl->links) l->coherence->on_invalidation(inv);
  auto** zones = static_cast<ngx_shm_zone_t**>(cl->ep->cache_zones->elts);
  for (std::string_view key : inv.keys) {
    for (ngx_uint_t i = 0; i < cl->ep->cache_zones->nelts; i++) {
      redis_cache_zone_erase(zones[i], key);
    }
  }
}

void client_node_down(redis_node_t* node) {
  redis_client_t* cl = node->client;
  if (cl->exiting) return;
  if (cache_link_t* link = node->link) {
    if (node->role == NodeRole::Invalidation) {
      link->id = 0;
      link->subscribed_id = 0;
      link->ping_out = false;
      link->coherence->subscriber_lost();
    } else if (node->role == NodeRole::Data) {
      link->coherence->data_lost(0);
    }
  }
  switch (cl->ep->spec->topology) {
    case Topology::Sentinel:
      if (node == cl->master) discover(cl);
      if (node->role == NodeRole::Subscriber) {
        cl->sub_index++;
        ensure_subscriber(cl);
      }
      break;
    case Topology::Cluster:
      if (node->role == NodeRole::Data) schedule_refresh(cl);
      break;
    case Topology::Standalone:
      break;
  }
}

void client_node_message(redis_node_t* node, std::string_view channel, std::string_view payload) {
  redis_client_t* cl = node->client;
  if (channel != "+switch-master") return;
  sess::SwitchMaster sw;
  if (!sess::parse_switch_master(payload, &sw) || sw.name != sv(cl->ep->spec->master_name)) {
    return;
  }
  set_master(cl, sw.to);
}

// At least 1 s, and as long as the longest session_redis_timeout: a slow link (a TLS handshake
// across regions) can connect, while each request still waits only its own timeout.
ngx_msec_t client_connect_timeout(const redis_client_t* cl) {
  return ngx_max(cl->ep->max_timeout, kConnectTimeout);
}
ngx_msec_t client_stall_limit(const redis_client_t* cl) {
  return ngx_max(cl->ep->max_timeout, kConnectTimeout);
}
const redis_endpoint_t* client_endpoint(const redis_client_t* cl) { return cl->ep; }
ngx_log_t* client_log(const redis_client_t* cl) { return cl->log; }
bool client_exiting(const redis_client_t* cl) { return cl->exiting; }

// ---------------------------------------------------------------------------------------------
// The request-facing API (ngx_http_session.h)

namespace {

const sess::RespLimits kDefaultLimits{};

}  // namespace

namespace {

// A new operation of args for key (not queued yet).
redis_op_t* new_op(redis_client_t* cl, const sess::RedisArgs& args, std::string_view key,
                   ngx_msec_t timeout, const sess::RespLimits* limits, ngx_log_t* log) {
  auto* op = new redis_op_t();
  op->r = nullptr;
  op->detached = nullptr;
  op->cln = nullptr;
  op->client = cl;
  op->node = nullptr;
  op->redirects = 0;
  op->limits = limits != nullptr ? limits : &kDefaultLimits;
  op->has_reply = false;
  op->too_large = false;
  op->started_us = metric_now_us();
  sess::pstring bytes(std::pmr::new_delete_resource());
  sess::resp_command(args, bytes);
  op->command.assign(bytes.data(), bytes.size());
  op->slot = cl->ep->spec->topology == Topology::Cluster ? sess::key_slot(key) : -1;
  op->deadline = ngx_current_msec + timeout;
  op->post.handler = op_post_handler;
  op->post.data = op;
  op->post.log = log;
  op->timeout.handler = op_timeout_handler;
  op->timeout.data = op;
  op->timeout.log = log;
  // Not cancelable: a worker that shuts down gracefully still answers the requests waiting.
  op->timeout.cancelable = 0;
  return op;
}

// Queues op on the node its key lives on (or waits for the first Sentinel master) and starts its
// timer. False (op not queued, not deleted) when there is nowhere to send it.
bool dispatch_op(redis_client_t* cl, redis_op_t* op, ngx_msec_t timeout) {
  redis_node_t* node = route(cl, op->slot);
  if (node == nullptr && cl->ep->spec->topology == Topology::Sentinel && cl->discovering) {
    // A worker just started (or reloaded): the sentinels are being asked for the master.
    op->waiting = true;
    ngx_queue_insert_tail(&cl->waiting, &op->wait_link);
  } else if (!send_op(op, node)) {
    return false;
  }
  ngx_add_timer(&op->timeout, timeout);
  return true;
}

// The commands the module reads records with; anything else may change its key.
bool is_read(const sess::RedisArgs& args) {
  std::string_view cmd = args[0];
  return cmd == "HGETALL" || cmd == "GETRANGE" || cmd == "PTTL" || cmd == "GET" ||
         cmd == "EXISTS" || cmd == "SSCAN";  // (the user index: core/user_index.h)
}

// This nginx changes key: its entry goes, and fills of it in flight are not stored (Redis
// stops tracking a key once a write to it was invalidated: only a later read tracks it again).
void cache_own_write(redis_client_t* cl, std::string_view key) {
  for (cache_link_t* l : cl->links) l->coherence->own_write(key);
  auto** zones = static_cast<ngx_shm_zone_t**>(cl->ep->cache_zones->elts);
  for (ngx_uint_t i = 0; i < cl->ep->cache_zones->nelts; i++) {
    redis_cache_zone_erase(zones[i], key);
  }
}

// Every link of the client is active (its subscriber subscribed, its data connection tracking
// for it): only then may an entry be served or a fill begin.
bool cache_active(const redis_client_t* cl) {
  if (cl->epoch == nullptr) return false;
  bool any = false;
  for (const cache_link_t* l : cl->links) {
    if (l->stopped) continue;
    if (!l->coherence->active()) return false;
    any = true;
  }
  return any;
}

void waiter_cleanup(void* data) noexcept {
  auto* w = static_cast<cache_waiter_t*>(data);
  if (w->timeout.timer_set) ngx_del_timer(&w->timeout);
  if (w->fill != nullptr) {
    ngx_queue_remove(&w->q);
    w->fill = nullptr;
  }
}

// A waiter's own timeout: it leaves the shared read (which goes on, and may still store) and
// is answered "no reply", as its own command would have been.
void waiter_timeout_handler(ngx_event_t* ev) noexcept {
  auto* w = static_cast<cache_waiter_t*>(ev->data);
  if (w->fill == nullptr) return;
  ngx_queue_remove(&w->q);
  w->fill = nullptr;
  ngx_connection_t* c = w->r->connection;
  guard_void(c->log, [&]() { w->done(w->r, w->data, nullptr, false); });
  ngx_http_run_posted_requests(c);
}

// Both replies are in: store the record if its ticket still allows it, then answer the waiters.
void fill_finish(cache_fill_t* f) {
  redis_client_t* cl = f->cl;
  auto it = cl->fills.find(f->key);
  if (it != cl->fills.end() && it->second == f) cl->fills.erase(it);
  if (f->ticket && f->link != nullptr) {
    bool storable = false;
    std::string bytes;
    std::optional<uint64_t> expires;
    if (f->has_reply && !f->too_large && !f->redirected && f->has_pttl) {
      sess::SessionData d(std::pmr::new_delete_resource());
      if (sess::record_read(&f->reply, false, &d) == sess::RecordRead::Found) {
        expires = sess::cache_expiry(ngx_current_msec, f->max_age, f->pttl);
        storable = expires.has_value() && sess::cache_record_encode(d, bytes);
      }
    }
    if (!storable) {
      f->link->coherence->abandon_fill(*f->ticket);
    } else if (f->link->coherence->end_fill(*f->ticket)) {
      if (redis_cache_zone_put(f->zone, f->key, f->ticket->epoch, *expires, bytes)) {
        metric(sess::Metric::CacheStores);
      }
    }
  }
  // Answer every waiter (each resumes from a posted request), then run each connection's posted
  // requests once.
  std::vector<ngx_connection_t*> conns;
  while (!ngx_queue_empty(&f->waiters)) {
    ngx_queue_t* q = ngx_queue_head(&f->waiters);
    ngx_queue_remove(q);
    cache_waiter_t* w = ngx_queue_data(q, cache_waiter_t, q);
    w->fill = nullptr;
    if (w->timeout.timer_set) ngx_del_timer(&w->timeout);
    ngx_connection_t* c = w->r->connection;
    guard_void(c->log, [&]() {
      w->done(w->r, w->data, f->has_reply ? &f->reply : nullptr, f->too_large);
    });
    if (std::find(conns.begin(), conns.end(), c) == conns.end()) conns.push_back(c);
  }
  delete f;
  for (ngx_connection_t* c : conns) ngx_http_run_posted_requests(c);
}

void fill_op_done(redis_op_t* op) {
  auto* f = static_cast<cache_fill_t*>(op->data);
  if (op->redirects > 0) f->redirected = true;
  if (op == f->get) {
    f->get = nullptr;
    if (op->has_reply) {
      f->reply = std::move(op->reply);
      f->has_reply = true;
    }
    f->too_large = op->too_large;
  } else if (op->has_reply && op->reply.type == sess::RespType::Integer) {
    f->pttl = op->reply.integer;
    f->has_pttl = true;
  }
  if (--f->outstanding == 0) fill_finish(f);
}

}  // namespace

redis_op_t* redis_send(ngx_http_request_t* r, const loc_conf_t* lcf, const sess::RedisArgs& args,
                       std::string_view key, redis_done_pt done, void* data,
                       const sess::RespLimits* limits, ngx_pool_t* pool) noexcept {
  redis_client_t* cl = lcf->redis != nullptr ? lcf->redis->client : nullptr;
  auto unavailable = [&]() -> redis_op_t* {
    uint64_t more = 0;
    if (cl != nullptr && cl->unavailable_log.allow(static_cast<uint64_t>(ngx_time()), &more)) {
      ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                    "session redis \"%V\": unavailable, %s not sent (%uL more since the last "
                    "such line)",
                    redis_endpoint_name(lcf->redis),
                    args.empty() ? "command" : args[0].c_str(), more);
    }
    return nullptr;
  };
  if (cl == nullptr || args.empty() || cl->exiting) return unavailable();
  return guard<redis_op_t*>(r->connection->log, nullptr, [&]() -> redis_op_t* {
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(pool != nullptr ? pool : r->pool, 0);
    if (cln == nullptr) return unavailable();
    // (Before the command is queued: a fill of the key read after it would be fine, one read
    // before it must not be stored.)
    if (cl->epoch != nullptr && !is_read(args)) cache_own_write(cl, key);
    redis_op_t* op = new_op(cl, args, key, lcf->redis_timeout, limits, r->connection->log);
    op->r = r;
    op->cln = cln;
    op->done = done;
    op->data = data;
    if (!dispatch_op(cl, op, lcf->redis_timeout)) {
      delete op;
      return unavailable();
    }
    cln->handler = op_cancel;
    cln->data = op;
    return op;
  });
}

uint8_t redis_cache_lookup(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view key,
                           sess::SessionData* out) noexcept {
  const auto bypass = static_cast<uint8_t>(sess::CacheStatus::Bypass);
  redis_client_t* cl = lcf->redis != nullptr ? lcf->redis->client : nullptr;
  if (cl == nullptr || lcf->redis_cache == nullptr || cl->exiting || !cache_active(cl) ||
      !redis_cache_zone_current(lcf->redis_cache->zone)) {
    return bypass;
  }
  return guard<uint8_t>(r->connection->log, bypass, [&]() -> uint8_t {
    // Decoded straight out of the zone (under its lock: no copy in between).
    auto read = [](std::string_view record, void* arg) noexcept -> bool {
      auto* data = static_cast<sess::SessionData*>(arg);
      try {
        if (sess::cache_record_decode(record, data) && !data->empty()) return true;
      } catch (...) {
      }
      data->clear();
      return false;
    };
    if (!redis_cache_zone_get(lcf->redis_cache->zone, key, cl->epoch->load(), ngx_current_msec,
                              read, out)) {
      return static_cast<uint8_t>(sess::CacheStatus::Miss);
    }
    return static_cast<uint8_t>(sess::CacheStatus::Hit);
  });
}

bool redis_cache_read(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view key,
                      redis_done_pt done, void* data, const sess::RespLimits* limits) noexcept {
  redis_client_t* cl = lcf->redis != nullptr ? lcf->redis->client : nullptr;
  if (cl == nullptr || cl->epoch == nullptr || lcf->redis_cache == nullptr || cl->exiting) {
    return false;
  }
  return guard<bool>(r->connection->log, false, [&]() -> bool {
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(cache_waiter_t));
    if (cln == nullptr) return false;
    auto* w = static_cast<cache_waiter_t*>(cln->data);
    ngx_memzero(w, sizeof(*w));
    w->r = r;
    w->done = done;
    w->data = data;
    w->timeout.handler = waiter_timeout_handler;
    w->timeout.data = w;
    w->timeout.log = r->connection->log;
    std::string k(key);
    auto it = cl->fills.find(k);
    // Joined only if it was begun under a timeout at least as long as this request's (a read
    // that gives up sooner is left to its own waiters: a new one takes its place).
    if (it != cl->fills.end() && it->second->timeout >= lcf->redis_timeout) {
      // Another request of this worker is reading the key: wait for its answer.
      w->fill = it->second;
      ngx_queue_insert_tail(&w->fill->waiters, &w->q);
      ngx_add_timer(&w->timeout, lcf->redis_timeout);
      cln->handler = waiter_cleanup;
      cln->data = w;
      return true;
    }
    int slot = cl->ep->spec->topology == Topology::Cluster ? sess::key_slot(key) : -1;
    redis_node_t* node = route(cl, slot);
    cache_link_t* link = node != nullptr ? node->link : nullptr;
    auto f = std::make_unique<cache_fill_t>();
    f->cl = cl;
    f->link = link;
    f->key = k;
    f->zone = lcf->redis_cache->zone;
    f->max_age = redis_cache_zone_max_age(f->zone);
    f->timeout = lcf->redis_timeout;
    ngx_queue_init(&f->waiters);
    if (link != nullptr && cache_active(cl)) f->ticket = link->coherence->begin_fill(key);
    if (!f->ticket) {
      // Not trackable now: an ordinary read, nothing stored.
      cln->handler = nullptr;
      return redis_send(r, lcf, [&] {
        sess::RedisArgs a(std::pmr::new_delete_resource());
        sess::record_cmd_read(key, a);
        return a;
      }(), key, done, data, limits) != nullptr;
    }
    sess::RedisArgs args(std::pmr::new_delete_resource());
    sess::record_cmd_read(key, args);
    redis_op_t* get = new_op(cl, args, key, lcf->redis_timeout, limits, cl->log);
    get->detached = fill_op_done;
    get->data = f.get();
    if (!dispatch_op(cl, get, lcf->redis_timeout)) {
      delete get;
      link->coherence->abandon_fill(*f->ticket);
      cln->handler = nullptr;
      return false;
    }
    f->get = get;
    f->outstanding = 1;
    args.clear();
    args.emplace_back("PTTL");
    args.emplace_back(key);
    redis_op_t* ttl = new_op(cl, args, key, lcf->redis_timeout, nullptr, cl->log);
    ttl->detached = fill_op_done;
    ttl->data = f.get();
    if (dispatch_op(cl, ttl, lcf->redis_timeout)) {
      f->outstanding++;
    } else {
      delete ttl;  // (without the TTL the record is not stored; the read still answers)
    }
    w->fill = f.get();
    ngx_queue_insert_tail(&w->fill->waiters, &w->q);
    ngx_add_timer(&w->timeout, lcf->redis_timeout);
    cln->handler = waiter_cleanup;
    cln->data = w;
    cl->fills[std::move(k)] = f.release();
    return true;
  });
}

void redis_note_timeout(redis_endpoint_t* ep, ngx_msec_t timeout) {
  ep->max_timeout = ngx_max(ep->max_timeout, timeout);
}

const ngx_str_t* redis_name(const loc_conf_t* lcf) {
  static ngx_str_t none = ngx_string("(none)");
  return lcf->redis != nullptr ? redis_endpoint_name(lcf->redis) : &none;
}

bool redis_key_of(ngx_http_request_t*, const loc_conf_t* lcf, const unsigned char* id,
                  sess::pstring& out) {
  out.clear();
  sess::redis_key(sv(lcf->prefix), id, sess::kSessionIdLen, out);
  return true;
}

ngx_int_t redis_init_process(ngx_cycle_t* cycle) noexcept {
  return guard<ngx_int_t>(cycle->log, NGX_ERROR, [&]() -> ngx_int_t {
    main_conf_t* mcf = main_conf(cycle);
    if (mcf == nullptr) return NGX_OK;
    auto** eps = static_cast<redis_endpoint_t**>(mcf->endpoints.elts);
    for (ngx_uint_t i = 0; i < mcf->endpoints.nelts; i++) {
      auto* cl = new redis_client_t();
      cl->ep = eps[i];
      cl->log = cycle->log;
      eps[i]->client = cl;
      ngx_queue_init(&cl->waiting);
      cl->poll.handler = poll_handler;
      cl->poll.data = cl;
      cl->poll.log = cycle->log;
      cl->poll.cancelable = 1;
      cl->refresh.handler = refresh_handler;
      cl->refresh.data = cl;
      cl->refresh.log = cycle->log;
      cl->refresh.cancelable = 1;
      cl->prune.handler = prune_handler;
      cl->prune.data = cl;
      cl->prune.log = cycle->log;
      if (eps[i]->cache_zones != nullptr) {
        cl->epoch = std::make_unique<EndpointEpoch>(eps[i]);
        cl->heartbeat.handler = heartbeat_handler;
        cl->heartbeat.data = cl;
        cl->heartbeat.log = cycle->log;
        cl->heartbeat.cancelable = 1;
        heartbeat_handler(&cl->heartbeat);
      }
      const redis_spec_t* spec = eps[i]->spec;
      auto* addrs = static_cast<redis_addr_t*>(spec->addrs.elts);
      switch (spec->topology) {
        case Topology::Standalone: {
          cl->master = node_for(cl, NodeRole::Data, addr_of(addrs[0]), &addrs[0]);
          if (cl->master == nullptr) return NGX_ERROR;
          cl->master->keep_connected = true;
          node_connect(cl->master);  // ready before the first request
          break;
        }
        case Topology::Sentinel:
          for (ngx_uint_t a = 0; a < spec->addrs.nelts; a++) {
            redis_node_t* n = node_for(cl, NodeRole::Sentinel, addr_of(addrs[a]), &addrs[a]);
            if (n == nullptr) return NGX_ERROR;
            cl->sentinels.push_back(n);
          }
          discover(cl);
          ensure_subscriber(cl);
          ngx_add_timer(&cl->poll, kSentinelPoll);
          break;
        case Topology::Cluster:
          for (ngx_uint_t a = 0; a < spec->addrs.nelts; a++) {
            redis_node_t* n = node_for(cl, NodeRole::Data, addr_of(addrs[a]), &addrs[a]);
            if (n == nullptr) return NGX_ERROR;
            cl->seeds.push_back(n);
          }
          refresh_now(cl);
          break;
      }
    }
    return NGX_OK;
  });
}

void redis_exit_process(ngx_cycle_t* cycle) noexcept {
  guard_void(cycle->log, [&]() {
    main_conf_t* mcf = main_conf(cycle);
    if (mcf == nullptr) return;
    auto** eps = static_cast<redis_endpoint_t**>(mcf->endpoints.elts);
    for (ngx_uint_t i = 0; i < mcf->endpoints.nelts; i++) {
      redis_client_t* cl = eps[i]->client;
      if (cl == nullptr) continue;
      cl->exiting = true;
      if (cl->poll.timer_set) ngx_del_timer(&cl->poll);
      if (cl->refresh.timer_set) ngx_del_timer(&cl->refresh);
      if (cl->heartbeat.timer_set) ngx_del_timer(&cl->heartbeat);
      if (cl->prune.posted) {
        ngx_delete_posted_event(&cl->prune);
      }
      for (cache_link_t* link : cl->links) {
        if (link->ping.timer_set) ngx_del_timer(&link->ping);
        link->coherence->shutdown();  // nobody receives invalidations for this worker now
        link->data->link = nullptr;
        link->inval->link = nullptr;
        delete link;
      }
      cl->links.clear();
      for (redis_node_t* n : cl->all) node_destroy(n);
      cl->all.clear();
      eps[i]->client = nullptr;
      delete cl;
    }
  });
}

}  // namespace ngx_session
