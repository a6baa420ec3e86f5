// ngx_http_session_module: one connection to one Redis node.
//
// An nginx peer connection on the worker's event loop; TLS by nginx's SSL layer (SNI, session
// reuse across reconnects, verification after the handshake against DNS names or IP SANs);
// commands pipelined in one FIFO, written together when the socket is writable; replies parsed
// by the core's bounded RESP2 parser (core/resp.h). Each request's command has its own deadline
// (its operation's timer, client.cpp): one that gives up leaves its reply to be read and dropped,
// so a short timeout never waits behind a long one. The node only watches the oldest command:
// when it has waited longer than the longest timeout of any location using the endpoint, the
// server is stuck, and the connection is closed (every command on it fails at once) and reopened
// after a backoff (50 ms, doubling, at most 1 s).

#include "redis.h"

#include "../ngx_http_session_metrics.h"

#if (NGX_SSL)
#include <openssl/x509v3.h>
#endif

extern "C" {
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/un.h>
}

namespace ngx_session {
namespace {

constexpr ngx_msec_t kBackoffMin = 50;
constexpr ngx_msec_t kBackoffMax = 1000;
constexpr time_t kFailureLogInterval = 10;
constexpr size_t kReadBuffer = 16384;

const sess::RespLimits kDefaultLimits{};

void node_timer_handler(ngx_event_t* ev) noexcept;
void node_reconnect_handler(ngx_event_t* ev) noexcept;
void node_read_handler(ngx_event_t* ev) noexcept;
void node_write_handler(ngx_event_t* ev) noexcept;
void node_connect_handler(ngx_event_t* ev) noexcept;

ngx_log_t* log_of(const redis_node_t* node) { return client_log(node->client); }

// Connection failures are logged once, then at most every kFailureLogInterval while they last.
bool failure_log_now(redis_node_t* node) {
  if (ngx_time() - node->failure_logged < kFailureLogInterval) return false;
  node->failure_logged = ngx_time();
  return true;
}

void arm_timer(redis_node_t* node) {
  if (node->state != NodeState::Ready) return;  // connect timeout armed elsewhere
  if (node->fifo.empty()) {
    if (node->timer.timer_set) ngx_del_timer(&node->timer);
    return;
  }
  const redis_cmd_t& front = node->fifo.front();
  ngx_msec_t stuck = front.queued + client_stall_limit(node->client);
  // The client's own commands may carry a shorter deadline of their own (the cache's PING).
  if (front.purpose != CmdPurpose::User && front.deadline != 0) {
    stuck = ngx_min(stuck, front.deadline);
  }
  ngx_msec_t delay = stuck > ngx_current_msec ? stuck - ngx_current_msec : 1;
  ngx_add_timer(&node->timer, delay);
}

void schedule_flush(redis_node_t* node) {
  if (node->state != NodeState::Ready || node->c == nullptr) return;
  if (!node->c->write->posted) {
    ngx_post_event(node->c->write, &ngx_posted_events);
  }
}

void flush(redis_node_t* node) {
  ngx_connection_t* c = node->c;
  while (node->out_pos < node->out.size()) {
    ssize_t n = c->send(c, reinterpret_cast<u_char*>(node->out.data() + node->out_pos),
                        node->out.size() - node->out_pos);
    if (n > 0) {
      node->out_pos += static_cast<size_t>(n);
      continue;
    }
    if (n == NGX_AGAIN) {
      if (ngx_handle_write_event(c->write, 0) != NGX_OK) node_close(node, "write event failed");
      return;
    }
    node_close(node, "write failed");
    return;
  }
  node->out.clear();
  node->out_pos = 0;
}

// An invalidation node's push: true if it was a message (handled), false for a command's reply
// (the SUBSCRIBE confirmation, PING's ["pong", ""]) or anything else for the FIFO. Invalidation
// payloads are arrays of keys (or nil after FLUSHALL), hence the core's parse_invalidation.
bool invalidation_message(redis_node_t* node, const sess::RespValue& reply) {
  if (reply.type != sess::RespType::Array) return false;
  sess::Invalidation inv = sess::parse_invalidation(reply);
  switch (inv.kind) {
    case sess::Invalidation::Kind::Keys:
    case sess::Invalidation::Kind::All:
      client_node_invalidation(node, inv);
      return true;
    case sess::Invalidation::Kind::Malformed:
      // Invalidations could be lost: closing reports the link lost, which flushes the cache.
      node_close(node, "malformed invalidation message");
      return true;
    case sess::Invalidation::Kind::Other: {
      const auto& e = reply.elements;
      // A message of another channel (never subscribed): dropped.
      return !e.empty() && e[0].type == sess::RespType::Bulk && e[0].str == "message";
    }
    case sess::Invalidation::Kind::Subscribed:
    case sess::Invalidation::Kind::Pong:
      break;
  }
  return false;
}

// A reply for the oldest command (or a pub/sub message).
void dispatch(redis_node_t* node, sess::RespValue* reply, bool too_large) {
  if (node->subscribed && reply != nullptr && node->role == NodeRole::Invalidation) {
    if (invalidation_message(node, *reply)) return;
  } else if (node->subscribed && reply != nullptr) {
    std::string_view channel, payload;
    if (sess::parse_pubsub_message(*reply, &channel, &payload)) {
      client_node_message(node, channel, payload);
      return;
    }
  }
  if (node->fifo.empty()) {
    node_close(node, "a reply that no command asked for");
    return;
  }
  redis_cmd_t cmd = node->fifo.front();
  node->fifo.pop_front();
  arm_timer(node);
  bool error = reply != nullptr && reply->type == sess::RespType::Error;
  // The first good answer after the handshake (AUTH and SELECT answer before a refusal can
  // come): the failure is over. A ROLE that says master, or a subscription, ends a handshake.
  bool handshake = cmd.purpose == CmdPurpose::Handshake ||
                   (cmd.purpose == CmdPurpose::Role &&
                    (reply == nullptr || sess::parse_role(*reply) != sess::Role::Master));
  // (An invalidation connection is healthy once subscribed: a Redis user refused SUBSCRIBE
  // answers CLIENT ID first, and must not reset the backoff on every attempt.)
  if (node->role == NodeRole::Invalidation && cmd.purpose != CmdPurpose::Subscribe) {
    handshake = true;
  }
  if (reply != nullptr && !error && !handshake && !node->healthy) {
    node->healthy = true;
    node->backoff = kBackoffMin;
    if (node->failure_logged) {
      ngx_log_error(NGX_LOG_NOTICE, log_of(node), 0, "session redis \"%V\": connected again",
                    &node->name);
      node->failure_logged = 0;
    }
  }
  switch (cmd.purpose) {
    case CmdPurpose::User:
      if (cmd.op != nullptr) op_reply(cmd.op, node, reply, too_large);
      break;
    case CmdPurpose::Handshake:
      if (error) {
        ngx_str_t msg = ngx_str(std::string_view(reply->str).substr(0, 200));
        if (failure_log_now(node)) {
          ngx_log_error(NGX_LOG_ERR, log_of(node), 0, "session redis \"%V\": %V", &node->name,
                        &msg);
        }
        node_close(node, nullptr);
      }
      break;
    case CmdPurpose::Role:
      if (reply == nullptr || sess::parse_role(*reply) != sess::Role::Master) {
        if (failure_log_now(node)) {
          if (error) {
            ngx_str_t msg = ngx_str(std::string_view(reply->str).substr(0, 200));
            ngx_log_error(NGX_LOG_ERR, log_of(node), 0,
                          "session redis \"%V\": ROLE refused (%V): the Sentinel form needs it "
                          "to confirm the master",
                          &node->name, &msg);
          } else {
            ngx_log_error(NGX_LOG_ERR, log_of(node), 0,
                          "session redis \"%V\": not a master (ROLE), leaving it", &node->name);
          }
        }
        node_close(node, nullptr);
      }
      break;
    case CmdPurpose::Internal:
      if (cmd.internal != nullptr) cmd.internal(node, cmd.data, reply, too_large);
      break;
    case CmdPurpose::Subscribe:
      if (error) {
        if (failure_log_now(node)) {
          ngx_str_t msg = ngx_str(std::string_view(reply->str).substr(0, 200));
          ngx_log_error(NGX_LOG_ERR, log_of(node), 0, "session redis \"%V\": SUBSCRIBE refused "
                        "(%V)%s", &node->name, &msg,
                        node->role == NodeRole::Invalidation
                            ? ", the session cache is bypassed (the Redis user needs the "
                              "channel __redis__:invalidate)"
                            : "");
        }
        node_close(node, nullptr);
      } else if (node->role == NodeRole::Invalidation) {
        if (reply == nullptr ||
            sess::parse_invalidation(*reply).kind != sess::Invalidation::Kind::Subscribed) {
          node_close(node, "unexpected answer to SUBSCRIBE __redis__:invalidate");
        } else {
          client_node_subscribed(node);
        }
      }
      break;
  }
}

void on_ready(redis_node_t* node) {
  ngx_connection_t* c = node->c;
  node->state = NodeState::Ready;
  metric_redis_connected(node->connected_before);
  node->connected_before = true;
  c->read->handler = node_read_handler;
  c->write->handler = node_write_handler;
  if (node->timer.timer_set) ngx_del_timer(&node->timer);
  arm_timer(node);
  if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
    node_close(node, "read event failed");
    return;
  }
  client_node_ready(node);
  if (node->c == c) flush(node);
  if (node->c == c && c->read->ready) node_read_handler(c->read);
}

#if (NGX_SSL)

// The certificate names the node: its DNS name, or for an IP address its IP SAN.
bool tls_verified(redis_node_t* node) {
  ngx_connection_t* c = node->c;
  long rc = SSL_get_verify_result(c->ssl->connection);
  if (rc != X509_V_OK) {
    if (failure_log_now(node)) {
      ngx_log_error(NGX_LOG_ERR, log_of(node), 0,
                    "session redis \"%V\": TLS certificate verify error: (%l:%s)", &node->name,
                    rc, X509_verify_cert_error_string(rc));
    }
    return false;
  }
  X509* cert = SSL_get_peer_certificate(c->ssl->connection);
  if (cert == nullptr) {
    if (failure_log_now(node)) {
      ngx_log_error(NGX_LOG_ERR, log_of(node), 0, "session redis \"%V\": no TLS certificate",
                    &node->name);
    }
    return false;
  }
  std::string name(sv(node->tls_name));
  int ok = node->tls_name_is_ip ? X509_check_ip_asc(cert, name.c_str(), 0)
                                : X509_check_host(cert, name.data(), name.size(),
                                                  X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                                      X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
                                                  nullptr);
  X509_free(cert);
  if (ok != 1) {
    if (failure_log_now(node)) {
      ngx_log_error(NGX_LOG_ERR, log_of(node), 0,
                    "session redis \"%V\": TLS certificate does not match \"%V\"",
                    &node->name, &node->tls_name);
    }
    return false;
  }
  return true;
}

void tls_handshake_done(ngx_connection_t* c) noexcept {
  auto* node = static_cast<redis_node_t*>(c->data);
  guard_void(c->log, [&]() {
    if (!c->ssl->handshaked) {
      node_close(node, c->write->timedout ? "TLS handshake timed out" : "TLS handshake failed");
      return;
    }
    if (client_endpoint(node->client)->tls.verify && !tls_verified(node)) {
      node_close(node, nullptr);
      return;
    }
    // TLS 1.2 announced its session during the handshake; now it is known whom it is with.
    if (node->ssl_pending != nullptr) {
      if (node->ssl_session != nullptr) ngx_ssl_free_session(node->ssl_session);
      node->ssl_session = node->ssl_pending;
      node->ssl_pending = nullptr;
    }
    on_ready(node);
  });
}

// OpenSSL's new-session callback (ngx_ssl_client_session_cache): TLS 1.2 announces the session
// during the handshake, TLS 1.3 in tickets that arrive after it. A session is kept for reuse only
// once the peer has been verified (a resumed session is verified again after its handshake).
void save_session(ngx_connection_t* c) noexcept {
  auto* node = static_cast<redis_node_t*>(c->data);
  if (node == nullptr || node->c != c) return;
  ngx_ssl_session_t* session = ngx_ssl_get_session(c);
  if (session == nullptr) return;
  ngx_ssl_session_t** slot = node->state == NodeState::Tls ? &node->ssl_pending
                                                           : &node->ssl_session;
  if (*slot != nullptr) ngx_ssl_free_session(*slot);
  *slot = session;
}

void start_tls(redis_node_t* node) {
  ngx_connection_t* c = node->c;
  const redis_endpoint_t* ep = client_endpoint(node->client);
  if (ngx_ssl_create_connection(ep->ssl, c, NGX_SSL_BUFFER | NGX_SSL_CLIENT) != NGX_OK) {
    node_close(node, "TLS connection setup failed");
    return;
  }
  if (node->sni) {
    std::string name(sv(node->tls_name));
    if (SSL_set_tlsext_host_name(c->ssl->connection, name.c_str()) != 1) {
      node_close(node, "TLS SNI setup failed");
      return;
    }
  }
  c->ssl->save_session = save_session;
  if (node->ssl_pending != nullptr) {
    ngx_ssl_free_session(node->ssl_pending);
    node->ssl_pending = nullptr;
  }
  if (node->ssl_session != nullptr && ngx_ssl_set_session(c, node->ssl_session) != NGX_OK) {
    node_close(node, "TLS session reuse failed");
    return;
  }
  node->state = NodeState::Tls;
  ngx_int_t rc = ngx_ssl_handshake(c);
  if (rc == NGX_AGAIN) {
    c->ssl->handler = tls_handshake_done;
    return;
  }
  tls_handshake_done(c);
}

#endif

// The TCP connection completed (or failed).
void connected(redis_node_t* node) {
  ngx_connection_t* c = node->c;
  int err = 0;
  socklen_t len = sizeof(err);
  if (c->write->timedout) {
    node_close(node, "connect timed out");
    return;
  }
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, reinterpret_cast<void*>(&err), &len) == -1) {
    err = ngx_socket_errno;
  }
  if (err) {
    if (failure_log_now(node)) {
      ngx_log_error(NGX_LOG_ERR, log_of(node), err, "session redis \"%V\": connect failed",
                    &node->name);
    }
    node_close(node, nullptr);
    return;
  }
#if (NGX_SSL)
  if (client_endpoint(node->client)->ssl != nullptr) {
    start_tls(node);
    return;
  }
#endif
  on_ready(node);
}

void node_connect_handler(ngx_event_t* ev) noexcept {
  auto* c = static_cast<ngx_connection_t*>(ev->data);
  auto* node = static_cast<redis_node_t*>(c->data);
  guard_void(c->log, [&]() { connected(node); });
}

void node_read_handler(ngx_event_t* ev) noexcept {
  auto* c = static_cast<ngx_connection_t*>(ev->data);
  auto* node = static_cast<redis_node_t*>(c->data);
  guard_void(c->log, [&]() {
    u_char buf[kReadBuffer];
    for (;;) {
      ssize_t n = c->recv(c, buf, sizeof(buf));
      if (n == NGX_AGAIN) {
        if (ngx_handle_read_event(c->read, 0) != NGX_OK) node_close(node, "read event failed");
        return;
      }
      if (n == 0) {
        node_close(node, "connection closed by Redis");
        return;
      }
      if (n < 0) {
        node_close(node, "read failed");
        return;
      }
      std::string_view data(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
      while (!data.empty()) {
        const sess::RespLimits* limits =
            node->fifo.empty() || node->fifo.front().limits == nullptr ? &kDefaultLimits
                                                                       : node->fifo.front().limits;
        sess::RespValue value;
        size_t used = 0;
        sess::RespParser::Result res = node->parser.feed(data, *limits, &used, &value);
        data.remove_prefix(used);
        if (res == sess::RespParser::Result::NeedMore) break;
        if (res == sess::RespParser::Result::ProtocolError) {
          node_close(node, "protocol error in a reply");
          return;
        }
        dispatch(node, res == sess::RespParser::Result::Reply ? &value : nullptr,
                 res == sess::RespParser::Result::TooLarge);
        if (node->c != c) return;  // closed by the reply's handler
      }
      // Drained (recv saw EAGAIN, or a short read with EPOLLRDHUP): another recv could only
      // answer NGX_AGAIN - over TLS at the cost of one more SSL_read, its error-queue clearing
      // and a recv(2) per reply. The edge-triggered event reports the next data.
      if (!c->read->ready) {
        if (ngx_handle_read_event(c->read, 0) != NGX_OK) node_close(node, "read event failed");
        return;
      }
    }
  });
}

void node_write_handler(ngx_event_t* ev) noexcept {
  auto* c = static_cast<ngx_connection_t*>(ev->data);
  auto* node = static_cast<redis_node_t*>(c->data);
  guard_void(c->log, [&]() {
    if (node->state == NodeState::Ready) flush(node);
  });
}

void node_timer_handler(ngx_event_t* ev) noexcept {
  auto* node = static_cast<redis_node_t*>(ev->data);
  guard_void(log_of(node), [&]() {
    switch (node->state) {
      case NodeState::Connecting:
      case NodeState::Tls:
        if (failure_log_now(node)) {
          ngx_log_error(NGX_LOG_ERR, log_of(node), 0, "session redis \"%V\": %s", &node->name,
                        node->state == NodeState::Tls ? "TLS handshake timed out"
                                                      : "connect timed out");
        }
        node_close(node, nullptr);
        return;
      case NodeState::Ready:
        if (!node->fifo.empty() &&
            (node->fifo.front().queued + client_stall_limit(node->client) <= ngx_current_msec ||
             (node->fifo.front().purpose != CmdPurpose::User &&
              node->fifo.front().deadline != 0 &&
              node->fifo.front().deadline <= ngx_current_msec))) {
          ngx_log_error(NGX_LOG_ERR, log_of(node), 0,
                        "session redis \"%V\": no answer in time, %uz command(s) failed, "
                        "reconnecting",
                        &node->name, node->fifo.size());
          node_close(node, nullptr);
          return;
        }
        arm_timer(node);
        return;
      case NodeState::Down:
        return;
    }
  });
}

void node_reconnect_handler(ngx_event_t* ev) noexcept {
  auto* node = static_cast<redis_node_t*>(ev->data);
  guard_void(log_of(node), [&]() {
    if (node->state == NodeState::Down && node->keep_connected && !client_exiting(node->client)) {
      node_connect(node);
    }
  });
}

bool parse_ip(const std::string& host, uint16_t port, ngx_sockaddr_t* out, socklen_t* len) {
  ngx_memzero(out, sizeof(*out));
  if (inet_pton(AF_INET, host.c_str(), &out->sockaddr_in.sin_addr) == 1) {
    out->sockaddr_in.sin_family = AF_INET;
    out->sockaddr_in.sin_port = htons(port);
    *len = sizeof(sockaddr_in);
    return true;
  }
#if (NGX_HAVE_INET6)
  if (inet_pton(AF_INET6, host.c_str(), &out->sockaddr_in6.sin6_addr) == 1) {
    out->sockaddr_in6.sin6_family = AF_INET6;
    out->sockaddr_in6.sin6_port = htons(port);
    *len = sizeof(sockaddr_in6);
    return true;
  }
#endif
  return false;
}

struct node_storage_t {
  ngx_sockaddr_t sa;
  std::string name;
  std::string tls_name;
};

}  // namespace

redis_node_t* node_create(redis_client_t* client, NodeRole role, const sess::NodeAddr& addr,
                          const redis_addr_t* configured) {
  auto* node = new (std::nothrow) redis_node_t();
  if (node == nullptr) return nullptr;
  auto* st = new (std::nothrow) node_storage_t();
  if (st == nullptr) {
    delete node;
    return nullptr;
  }
  node->client = client;
  node->role = role;
  node->addr = addr;
  node->backoff = kBackoffMin;
  const redis_endpoint_t* ep = client_endpoint(client);
  if (configured != nullptr) {
    node->sockaddr = configured->addr;
    st->name.assign(sv(configured->text));
    st->tls_name.assign(sv(configured->host));
  } else {
    socklen_t len = 0;
    if (!parse_ip(addr.host, addr.port, &st->sa, &len)) {
      ngx_log_error(NGX_LOG_ERR, client_log(client), 0,
                    "session redis: \"%s\" is not an IP address (host names from Redis are not "
                    "resolved)",
                    addr.host.c_str());
      delete st;
      delete node;
      return nullptr;
    }
    node->sockaddr.sockaddr = &st->sa.sockaddr;
    node->sockaddr.socklen = len;
    bool v6 = addr.host.find(':') != std::string::npos;
    st->name = (v6 ? "[" + addr.host + "]" : addr.host) + ":" + std::to_string(addr.port);
    st->tls_name = addr.host;
  }
  if (ep->tls.name.len) st->tls_name.assign(sv(ep->tls.name));
  node->name = ngx_str(st->name);
  node->sockaddr.name = node->name;
  node->tls_name = ngx_str(st->tls_name);
  ngx_sockaddr_t probe;
  socklen_t probe_len;
  node->tls_name_is_ip = parse_ip(st->tls_name, 0, &probe, &probe_len);
  node->sni = !node->tls_name_is_ip && !st->tls_name.empty();
  node->timer.handler = node_timer_handler;
  node->timer.data = node;
  node->timer.log = client_log(client);
  node->timer.cancelable = 1;
  node->reconnect.handler = node_reconnect_handler;
  node->reconnect.data = node;
  node->reconnect.log = client_log(client);
  node->reconnect.cancelable = 1;
  node->storage = st;  // freed by node_destroy
  return node;
}

void node_destroy(redis_node_t* node) {
  if (node == nullptr) return;
  node->keep_connected = false;
  node_close(node, nullptr);
  if (node->reconnect.timer_set) ngx_del_timer(&node->reconnect);
  if (node->timer.timer_set) ngx_del_timer(&node->timer);
#if (NGX_SSL)
  if (node->ssl_session != nullptr) ngx_ssl_free_session(node->ssl_session);
  if (node->ssl_pending != nullptr) ngx_ssl_free_session(node->ssl_pending);
#endif
  delete static_cast<node_storage_t*>(node->storage);
  delete node;
}

bool node_usable(const redis_node_t* node) { return node->state != NodeState::Down; }

bool node_connect(redis_node_t* node) {
  if (node->state != NodeState::Down) return true;
  if (client_exiting(node->client) || ngx_current_msec < node->retry_at) return false;
  if (node->sockaddr.sockaddr->sa_family == AF_UNIX) {
    // nginx logs a missing socket file at crit; a Redis that is not running is an error.
    auto* sun = reinterpret_cast<sockaddr_un*>(node->sockaddr.sockaddr);
    struct stat st;
    if (stat(sun->sun_path, &st) != 0) {
      if (failure_log_now(node)) {
        ngx_log_error(NGX_LOG_ERR, log_of(node), ngx_errno, "session redis \"%V\": connect failed",
                      &node->name);
      }
      node->retry_at = ngx_current_msec + node->backoff;
      node->backoff = ngx_min(node->backoff * 2, kBackoffMax);
      if (node->keep_connected && !node->reconnect.timer_set) {
        ngx_add_timer(&node->reconnect, node->retry_at - ngx_current_msec);
      }
      return false;
    }
  }
  ngx_memzero(&node->pc, sizeof(node->pc));
  node->pc.sockaddr = node->sockaddr.sockaddr;
  node->pc.socklen = node->sockaddr.socklen;
  node->pc.name = &node->name;
  node->pc.get = ngx_event_get_peer;
  node->pc.log = log_of(node);
  node->pc.log_error = NGX_ERROR_ERR;
  node->closing = false;
  ngx_int_t rc = ngx_event_connect_peer(&node->pc);
  if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED || node->pc.connection == nullptr) {
    if (failure_log_now(node)) {
      ngx_log_error(NGX_LOG_ERR, log_of(node), 0, "session redis \"%V\": connect failed",
                    &node->name);
    }
    if (node->pc.connection != nullptr) ngx_close_connection(node->pc.connection);
    node->pc.connection = nullptr;
    node->retry_at = ngx_current_msec + node->backoff;
    node->backoff = ngx_min(node->backoff * 2, kBackoffMax);
    if (node->keep_connected) ngx_add_timer(&node->reconnect, node->retry_at - ngx_current_msec);
    return false;
  }
  ngx_connection_t* c = node->pc.connection;
  c->data = node;
  c->pool = ngx_create_pool(1024, log_of(node));
  if (c->pool == nullptr) {
    ngx_close_connection(c);
    node->pc.connection = nullptr;
    return false;
  }
  c->log = log_of(node);
  c->read->log = c->log;
  c->write->log = c->log;
  c->read->handler = node_connect_handler;
  c->write->handler = node_connect_handler;
  node->c = c;
  node->state = NodeState::Connecting;
  node->healthy = false;
  node->parser.reset();
  node->out.clear();
  node->out_pos = 0;
  node->subscribed = false;
  // The handshake (AUTH, SELECT, ROLE) goes first; commands sent meanwhile queue behind it.
  client_node_handshake(node);
  ngx_add_timer(&node->timer, client_connect_timeout(node->client));
  if (rc == NGX_OK) connected(node);  // a unix socket connects at once
  return node->state != NodeState::Down;
}

void node_close(redis_node_t* node, const char* why) {
  if (node->closing) return;
  node->closing = true;
  bool was_up = node->state != NodeState::Down;
  if (why != nullptr && was_up && failure_log_now(node)) {
    ngx_log_error(NGX_LOG_ERR, log_of(node), 0, "session redis \"%V\": %s", &node->name, why);
  }
  if (node->c != nullptr) {
    ngx_connection_t* c = node->c;
    node->c = nullptr;
#if (NGX_SSL)
    if (c->ssl != nullptr) {
      c->ssl->no_wait_shutdown = 1;
      c->ssl->no_send_shutdown = 1;
      ngx_ssl_shutdown(c);
    }
#endif
    ngx_pool_t* pool = c->pool;
    ngx_close_connection(c);
    if (pool != nullptr) ngx_destroy_pool(pool);
  }
  node->pc.connection = nullptr;
  if (node->timer.timer_set) ngx_del_timer(&node->timer);
  if (was_up) {
    node->retry_at = ngx_current_msec + node->backoff;
    node->backoff = ngx_min(node->backoff * 2, kBackoffMax);
  }
  node->state = NodeState::Down;
  node->out.clear();
  node->out_pos = 0;
  node->parser.reset();
  node->subscribed = false;
  std::deque<redis_cmd_t> failed;
  failed.swap(node->fifo);
  for (redis_cmd_t& cmd : failed) {
    if (cmd.purpose == CmdPurpose::User && cmd.op != nullptr) op_reply(cmd.op, node, nullptr, false);
    if (cmd.purpose == CmdPurpose::Internal && cmd.internal != nullptr) {
      cmd.internal(node, cmd.data, nullptr, false);
    }
  }
  if (node->keep_connected && !client_exiting(node->client) && !node->reconnect.timer_set) {
    ngx_msec_t delay = node->retry_at > ngx_current_msec ? node->retry_at - ngx_current_msec : 1;
    ngx_add_timer(&node->reconnect, delay);
  }
  node->closing = false;
  if (was_up && !client_exiting(node->client)) client_node_down(node);
}

bool node_send_raw(redis_node_t* node, std::string_view bytes, const redis_cmd_t& cmd) {
  if (node->state == NodeState::Down && !node_connect(node)) return false;
  node->out.append(bytes.data(), bytes.size());
  bool first = node->fifo.empty();
  node->fifo.push_back(cmd);
  node->fifo.back().queued = ngx_current_msec;
  if (node->state == NodeState::Ready) {
    if (first) arm_timer(node);
    schedule_flush(node);
  }
  return true;
}

bool node_send(redis_node_t* node, const sess::RedisArgs& args, const redis_cmd_t& cmd) {
  sess::pstring bytes(std::pmr::new_delete_resource());
  sess::resp_command(args, bytes);
  return node_send_raw(node, bytes, cmd);
}

void node_abandon(redis_node_t* node, redis_op_t* op) {
  for (redis_cmd_t& cmd : node->fifo) {
    if (cmd.op == op) cmd.op = nullptr;
  }
}

}  // namespace ngx_session
