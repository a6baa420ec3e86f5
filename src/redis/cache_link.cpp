// ngx_http_session_module: the session cache's side of the Redis client - the invalidation link
// of each data node, and the reads that fill the zone.
//
// In: a caching endpoint's data nodes (client.cpp), their invalidation connections' events
// (node.cpp), and requests' lookups and reads (redis_cache_lookup, redis_cache_read). Out: the
// zones' entries (cache.cpp) stored, served and erased as the links' CacheCoherence allows.
//
// Session cache (an endpoint with session_redis_cache zones): every data node gets a link, an
// invalidation connection to the same node (CLIENT ID, SUBSCRIBE __redis__:invalidate, PING at
// min(1 s, max_age / 2) answered within the stall limit or the connection is replaced), and the
// data connection sends CLIENT TRACKING on REDIRECT <that id> in its handshake and again for
// each new id. Link events feed a CacheCoherence per link; all links share the zones' epoch.

#include "redis.h"

#include "../ngx_http_session_metrics.h"

#include <algorithm>
#include <cstring>

#include "../core/record.h"

namespace ngx_session {

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
  // The id cookie the entry keeps (redis_cache_read's cookie): ring 0 for none.
  uint64_t cookie_ring = 0;
  std::string cookie_name;
  unsigned char cookie_proof[sess::kIdProofLen];
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

// ---------------------------------------------------------------------------------------------
// Session cache links (only for an endpoint with cache zones)

namespace {

constexpr ngx_msec_t kPingMax = 1000;
constexpr ngx_msec_t kPingMin = 100;

// Shorter than max_age (half of the shortest), at most 1 s. A PING unanswered for the stall
// limit (client_stall_limit, at least 1 s) closes the connection: that is the deadline.
ngx_msec_t ping_interval(const redis_client_t* cl) {
  return ngx_max(kPingMin, ngx_min(kPingMax, cl->ep->cache_min_max_age / 2));
}

constexpr ngx_msec_t kHeartbeat = 100;

}  // namespace

void heartbeat_handler(ngx_event_t* ev) noexcept {
  auto* cl = static_cast<redis_client_t*>(ev->data);
  if (cl->exiting) return;
  auto** zones = static_cast<ngx_shm_zone_t**>(cl->ep->cache_zones->elts);
  bool renewed = true;
  for (ngx_uint_t i = 0; i < cl->ep->cache_zones->nelts; i++) {
    renewed = redis_cache_heartbeat(zones[i], cl->heartbeat_deferred) && renewed;
  }
  // After a stall: once more in a millisecond, after the event loop read the sockets (their
  // invalidations are already there), and then whatever the heartbeat says.
  cl->heartbeat_deferred = !renewed && !cl->heartbeat_deferred;
  ngx_add_timer(ev, cl->heartbeat_deferred ? 1 : kHeartbeat);
}

// A Sentinel switch, a cluster MOVED: every zone of the endpoint is emptied.
void cache_topology_changed(redis_client_t* cl) {
  if (!cl->links.empty()) {
    cl->links.front()->coherence->topology_changed();
  } else if (cl->epoch != nullptr) {
    cl->epoch->bump();
  }
}

namespace {

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

}  // namespace

void on_client_id(redis_node_t* node, void*, const sess::RespValue* reply, bool) {
  cache_link_t* link = node->link;
  if (link == nullptr || reply == nullptr) return;
  if (reply->type != sess::RespType::Integer || reply->integer <= 0) {
    node_close(node, "CLIENT ID refused on the invalidation connection");
    return;
  }
  link->id = reply->integer;
}

namespace {

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

}  // namespace

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

// ---------------------------------------------------------------------------------------------
// The request path: lookups and fills

// This nginx changes key: its entry goes, and fills of it in flight are not stored (Redis
// stops tracking a key once a write to it was invalidated: only a later read tracks it again).
void cache_own_write(redis_client_t* cl, std::string_view key) {
  for (cache_link_t* l : cl->links) l->coherence->own_write(key);
  auto** zones = static_cast<ngx_shm_zone_t**>(cl->ep->cache_zones->elts);
  for (ngx_uint_t i = 0; i < cl->ep->cache_zones->nelts; i++) {
    redis_cache_zone_erase(zones[i], key);
  }
}

namespace {

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
      cache_cookie_t cookie;
      cookie.ring = f->cookie_ring;
      cookie.name = f->cookie_name;
      cookie.proof = f->cookie_proof;
      if (redis_cache_zone_put(f->zone, f->key, f->ticket->epoch, *expires, bytes,
                               f->cookie_ring != 0 ? &cookie : nullptr)) {
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

uint8_t redis_cache_lookup(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view key,
                           sess::SessionData* out, const cache_cookie_t* cookie,
                           bool keep) noexcept {
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
                              read, out, cookie, keep)) {
      return static_cast<uint8_t>(sess::CacheStatus::Miss);
    }
    return static_cast<uint8_t>(sess::CacheStatus::Hit);
  });
}

bool redis_cache_read(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view key,
                      redis_done_pt done, void* data, const sess::RespLimits* limits,
                      const cache_cookie_t* cookie) noexcept {
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
    if (cookie != nullptr) {
      f->cookie_ring = cookie->ring;
      f->cookie_name = cookie->name;
      std::memcpy(f->cookie_proof, cookie->proof, sizeof(f->cookie_proof));
    }
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

}  // namespace ngx_session
