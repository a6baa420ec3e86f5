// ngx_http_session_module: the Redis client of one endpoint in one worker - its nodes, the
// operations requests send through it, and the node callbacks that dispatch to the topology
// (topology.cpp) and the session cache's links (cache_link.cpp).
//
// In: an endpoint (conf.cpp) per client, made in init_process; requests' commands (redis_send).
// Out: each command's reply (or failure) to its request, from a posted event.
//
// Standalone: one data node, kept connected. Sentinel and Cluster: topology.cpp.
//
// Operations: one per request command, owned by the request (its pool cleanup cancels it), with
// a timer of the location's session_redis_timeout: a command never waits longer than that,
// whatever is ahead of it on the connection (its reply is then read and dropped). Results reach
// the request from a posted event.

#include "redis.h"

#include "../ngx_http_session_metrics.h"

namespace ngx_session {

namespace {

constexpr ngx_msec_t kConnectTimeout = 1000;
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

redis_node_t* find_node(redis_client_t* cl, NodeRole role, const sess::NodeAddr& addr) {
  for (redis_node_t* n : cl->all) {
    if (n->role == role && n->addr == addr) return n;
  }
  return nullptr;
}

}  // namespace

redis_cmd_t internal_cmd(node_reply_pt handler, void* data, CmdPurpose purpose) {
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

redis_node_t* node_for(redis_client_t* cl, NodeRole role, const sess::NodeAddr& addr,
                       const redis_addr_t* configured) {
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
// Operations

namespace {

void op_post_handler(ngx_event_t* ev) noexcept;
void op_timeout_handler(ngx_event_t* ev) noexcept;

}  // namespace

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

namespace {

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

namespace {

// The commands the module reads records with; anything else may change its key.
bool is_read(const sess::RedisArgs& args) {
  std::string_view cmd = args[0];
  return cmd == "HGETALL" || cmd == "GETRANGE" || cmd == "PTTL" || cmd == "GET" ||
         cmd == "EXISTS" || cmd == "SSCAN";  // (the user index: core/user_index.h)
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