// ngx_http_session_module: the Redis client's topologies beyond one node - Sentinel and Cluster.
//
// In: the client's sentinels or seeds (client.cpp, init_process), node events and replies. Out:
// the master (Sentinel) and the slot map (Cluster) that route() (redis.h, inline: every command
// takes it) reads, and the data nodes kept connected.
//
// Sentinel: the sentinels are asked for the master (SENTINEL get-master-addr-by-name), the master
//   is confirmed with ROLE on every connect, a pub/sub connection to a sentinel follows
//   +switch-master, and a poll every few seconds catches a missed announcement. A master that
//   says READONLY or that ROLE shows to be a replica is left at once and the sentinels are asked
//   again.
// Cluster: the slot map comes from CLUSTER SLOTS of a seed (or any known node); each command goes
//   to the node of its key's slot over one pipelined connection per node; MOVED updates the map
//   and retries, ASK sends ASKING and retries, at most kMaxRedirects times (client.cpp, op_reply);
//   the whole map is refreshed after a MOVED or a lost node, at most once a second.

#include "redis.h"

#include "../ngx_http_session_metrics.h"

#include <algorithm>

namespace ngx_session {

// ---------------------------------------------------------------------------------------------
// Sentinel

namespace {

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

}  // namespace

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

void client_node_message(redis_node_t* node, std::string_view channel, std::string_view payload) {
  redis_client_t* cl = node->client;
  if (channel != "+switch-master") return;
  sess::SwitchMaster sw;
  if (!sess::parse_switch_master(payload, &sw) || sw.name != sv(cl->ep->spec->master_name)) {
    return;
  }
  set_master(cl, sw.to);
}

// ---------------------------------------------------------------------------------------------
// Cluster

namespace {

constexpr ngx_msec_t kRefreshInterval = 1000;

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

}  // namespace


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

namespace {

bool in(const std::vector<redis_node_t*>& v, const redis_node_t* n) {
  return std::find(v.begin(), v.end(), n) != v.end();
}

}  // namespace

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

}  // namespace ngx_session
