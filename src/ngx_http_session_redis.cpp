// ngx_http_session_module: the Redis adapter.
//
// One hiredis async context per worker per server, driven by nginx's event loop: its socket is
// wrapped in an nginx connection (level-triggered read/write events, so hiredis' 16 KB reads
// never strand data), and nginx timers bound connects and commands (hiredis 0.14 has no timer
// hook). Commands of many requests are pipelined on that connection; replies come back in order,
// so one FIFO of deadlines covers them all. A command that misses its deadline means the server
// is stuck: the context is freed (every pending command fails at once) and the next use
// reconnects after a short backoff.
//
// Pitfalls avoided: hiredis closes its fd itself, so the nginx connection is released without
// closing it; the reply callback gets a cancellable token, never the request (the client may go
// away first); addresses were resolved at config time, so hiredis' getaddrinfo() only ever sees
// numeric addresses; requests are resumed from a posted event, never inside a hiredis callback.

#include "ngx_http_session.h"

#include <deque>

extern "C" {
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
}

namespace ngx_session {

struct redis_conn_t {
  redis_server_t* server;
  redisAsyncContext* ac;
  ngx_connection_t* c;
  ngx_log_t* log;
  std::deque<ngx_msec_t> deadlines;  // one per command in flight, oldest first
  ngx_event_t timer;
  ngx_event_t reconnect;             // keeps a connection ready for writes
  time_t failure_logged;             // rate-limits "connect failed" lines
  ngx_msec_t backoff;
  ngx_msec_t retry_at;
  bool connected;
  bool exiting;
};

// One command of one request. The request owns it through a pool cleanup that cancels it
// (r = nullptr); hiredis owns it while the command is in flight. The reply is copied into the
// request's pool and handed to `done` from a posted event, never from inside hiredis.
struct redis_op_t {
  ngx_http_request_t* r;  // nullptr once the request is gone
  redis_conn_t* conn;
  ngx_pool_cleanup_t* cln;
  redis_done_pt done;
  void* data;
  sess::RedisReplyView reply;
  ngx_event_t ev;         // posted to call done
  bool in_flight;
};

namespace {

constexpr ngx_msec_t kBackoffMin = 50;
constexpr ngx_msec_t kBackoffMax = 500;
constexpr ngx_msec_t kConnectTimeout = 1000;  // for connections opened without a request
constexpr time_t kFailureLogInterval = 10;

void schedule_reconnect(redis_conn_t* conn) {
  if (conn->exiting || conn->reconnect.timer_set) return;
  ngx_msec_t delay = conn->retry_at > ngx_current_msec ? conn->retry_at - ngx_current_msec : 1;
  ngx_add_timer(&conn->reconnect, delay);
}

void note_failure(redis_conn_t* conn) {
  conn->retry_at = ngx_current_msec + conn->backoff;
  conn->backoff = ngx_min(conn->backoff * 2, kBackoffMax);
  schedule_reconnect(conn);
}

// Connect failures are logged once, then at most every kFailureLogInterval while they last.
bool log_failure_now(redis_conn_t* conn) {
  if (ngx_time() - conn->failure_logged < kFailureLogInterval) return false;
  conn->failure_logged = ngx_time();
  return true;
}

main_conf_t* main_conf(ngx_cycle_t* cycle) {
  if (cycle->conf_ctx[ngx_http_module.index] == nullptr) return nullptr;
  return static_cast<main_conf_t*>(
      ngx_http_cycle_get_module_main_conf(cycle, ngx_http_session_module));
}

void rearm(redis_conn_t* conn) {
  if (conn->deadlines.empty()) {
    if (conn->timer.timer_set) ngx_del_timer(&conn->timer);
    return;
  }
  ngx_msec_t front = conn->deadlines.front();
  ngx_msec_t delay = front > ngx_current_msec ? front - ngx_current_msec : 1;
  ngx_add_timer(&conn->timer, delay);
}

void reply_arrived(redis_conn_t* conn) {
  if (!conn->deadlines.empty()) conn->deadlines.pop_front();
  rearm(conn);
}

// hiredis is about to close the fd: release the nginx connection without closing it.
void ev_cleanup(void* data) {
  auto* conn = static_cast<redis_conn_t*>(data);
  ngx_connection_t* c = conn->c;
  if (c != nullptr) {
    if (c->read->timer_set) ngx_del_timer(c->read);
    if (c->write->timer_set) ngx_del_timer(c->write);
    if (c->read->posted) {
      ngx_delete_posted_event(c->read);
    }
    if (c->write->posted) {
      ngx_delete_posted_event(c->write);
    }
    if (c->read->active) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    if (c->write->active) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    ngx_free_connection(c);
    c->fd = static_cast<ngx_socket_t>(-1);
    conn->c = nullptr;
  }
  conn->ac = nullptr;
  conn->deadlines.clear();
  if (conn->timer.timer_set) ngx_del_timer(&conn->timer);
  conn->connected = false;
  if (!conn->exiting) note_failure(conn);
}

void ev_add_read(void* data) {
  auto* conn = static_cast<redis_conn_t*>(data);
  if (conn->c && !conn->c->read->active) ngx_add_event(conn->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
}

void ev_del_read(void* data) {
  auto* conn = static_cast<redis_conn_t*>(data);
  if (conn->c && conn->c->read->active) ngx_del_event(conn->c->read, NGX_READ_EVENT, 0);
}

void ev_add_write(void* data) {
  auto* conn = static_cast<redis_conn_t*>(data);
  if (conn->c && !conn->c->write->active) {
    ngx_add_event(conn->c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
  }
}

void ev_del_write(void* data) {
  auto* conn = static_cast<redis_conn_t*>(data);
  if (conn->c && conn->c->write->active) ngx_del_event(conn->c->write, NGX_WRITE_EVENT, 0);
}

void read_handler(ngx_event_t* ev) noexcept {
  auto* c = static_cast<ngx_connection_t*>(ev->data);
  auto* conn = static_cast<redis_conn_t*>(c->data);
  // May free the context and with it c: nothing may touch c afterwards.
  if (conn->ac != nullptr) redisAsyncHandleRead(conn->ac);
}

void write_handler(ngx_event_t* ev) noexcept {
  auto* c = static_cast<ngx_connection_t*>(ev->data);
  auto* conn = static_cast<redis_conn_t*>(c->data);
  if (conn->ac != nullptr) redisAsyncHandleWrite(conn->ac);
}

void timer_handler(ngx_event_t* ev) noexcept {
  auto* conn = static_cast<redis_conn_t*>(ev->data);
  if (conn->ac == nullptr || conn->deadlines.empty()) return;
  if (conn->deadlines.front() > ngx_current_msec) {
    rearm(conn);
    return;
  }
  ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                "session redis \"%V\": no answer in time, %uz command(s) failed, reconnecting",
                &conn->server->name, conn->deadlines.size());
  redisAsyncFree(conn->ac);  // fails every pending command, then ev_cleanup
}

void on_connect(const redisAsyncContext* ac, int status) {
  auto* conn = static_cast<redis_conn_t*>(ac->ev.data);
  if (status != REDIS_OK) {
    if (log_failure_now(conn)) {
      ngx_log_error(NGX_LOG_ERR, conn->log, 0, "session redis \"%V\": connect failed: %s",
                    &conn->server->name, ac->errstr);
    }
    return;
  }
  if (conn->failure_logged) {
    ngx_log_error(NGX_LOG_NOTICE, conn->log, 0, "session redis \"%V\": connected again",
                  &conn->server->name);
  }
  conn->connected = true;
  conn->failure_logged = 0;
  conn->backoff = kBackoffMin;
  ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->log, 0, "session redis \"%V\": connected",
                 &conn->server->name);
}

void on_disconnect(const redisAsyncContext* ac, int status) {
  auto* conn = static_cast<redis_conn_t*>(ac->ev.data);
  if (status != REDIS_OK && !conn->exiting) {
    ngx_log_error(NGX_LOG_ERR, conn->log, 0, "session redis \"%V\": connection lost: %s",
                  &conn->server->name, ac->errstr);
  }
}

// Replies to AUTH and SELECT: a connection that cannot authenticate is dropped and retried
// after the backoff (so fixing the password in Redis needs no reload).
void handshake_reply(redisAsyncContext* ac, void* r, void* privdata) {
  auto* conn = static_cast<redis_conn_t*>(privdata);
  auto* reply = static_cast<redisReply*>(r);
  if (reply == nullptr) return;
  reply_arrived(conn);
  if (reply->type != REDIS_REPLY_ERROR) return;
  if (log_failure_now(conn)) {
    ngx_log_error(NGX_LOG_ERR, conn->log, 0, "session redis \"%V\": %*s",
                  &conn->server->name, static_cast<size_t>(reply->len), reply->str);
  }
  conn->connected = false;  // no writes on it
  redisAsyncDisconnect(ac);
}

bool send(redis_conn_t* conn, redisCallbackFn* fn, void* privdata, ngx_msec_t timeout, int argc,
          const char** argv, const size_t* lens) {
  if (redisAsyncCommandArgv(conn->ac, fn, privdata, argc, argv, lens) != REDIS_OK) return false;
  conn->deadlines.push_back(ngx_current_msec + timeout);
  if (!conn->timer.timer_set) rearm(conn);
  return true;
}

bool ensure_connected(redis_conn_t* conn, ngx_msec_t timeout) {
  if (conn->ac != nullptr) return true;
  if (conn->exiting || ngx_current_msec < conn->retry_at) return false;
  redis_server_t* s = conn->server;
  redisAsyncContext* ac =
      s->unix_path.len ? redisAsyncConnectUnix(reinterpret_cast<const char*>(s->unix_path.data))
                       : redisAsyncConnect(reinterpret_cast<const char*>(s->host.data), s->port);
  if (ac == nullptr) {
    ngx_log_error(NGX_LOG_ERR, conn->log, 0, "session redis \"%V\": out of memory", &s->name);
    return false;
  }
  if (ac->err) {
    if (log_failure_now(conn)) {
      ngx_log_error(NGX_LOG_ERR, conn->log, 0, "session redis \"%V\": connect failed: %s",
                    &s->name, ac->errstr);
    }
    redisAsyncFree(ac);
    note_failure(conn);
    return false;
  }
  ngx_connection_t* c = ngx_get_connection(ac->c.fd, conn->log);
  if (c == nullptr) {
    redisAsyncFree(ac);  // closes the fd
    return false;
  }
  c->data = conn;
  c->read->handler = read_handler;
  c->write->handler = write_handler;
  c->read->log = conn->log;
  c->write->log = conn->log;
  conn->c = c;
  conn->ac = ac;
  conn->connected = false;

  ac->ev.data = conn;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  ev_add_write(conn);  // connect completion is signalled as writability

  if (s->password.len) {
    const char* argv[3] = {"AUTH", nullptr, nullptr};
    size_t lens[3] = {4, 0, 0};
    int argc = 1;
    if (s->username.len) {
      argv[argc] = reinterpret_cast<const char*>(s->username.data);
      lens[argc++] = s->username.len;
    }
    argv[argc] = reinterpret_cast<const char*>(s->password.data);
    lens[argc++] = s->password.len;
    if (!send(conn, handshake_reply, conn, timeout, argc, argv, lens)) return false;
  }
  if (s->db != 0 && conn->ac != nullptr) {
    u_char db[NGX_INT_T_LEN];
    size_t n = ngx_sprintf(db, "%i", s->db) - db;
    const char* argv[2] = {"SELECT", reinterpret_cast<const char*>(db)};
    size_t lens[2] = {6, n};
    if (!send(conn, handshake_reply, conn, timeout, 2, argv, lens)) return false;
  }
  return conn->ac != nullptr;
}

void reconnect_handler(ngx_event_t* ev) noexcept {
  auto* conn = static_cast<redis_conn_t*>(ev->data);
  if (conn->ac == nullptr && !conn->exiting) ensure_connected(conn, kConnectTimeout);
}

void op_cancel(void* data) noexcept;

void op_free(redis_op_t* op) {
  if (op->cln != nullptr) op->cln->handler = nullptr;  // the request's pool no longer knows it
  delete op;
}

void op_event(ngx_event_t* ev) noexcept {
  auto* op = static_cast<redis_op_t*>(ev->data);
  ngx_http_request_t* r = op->r;
  redis_done_pt done = op->done;
  void* data = op->data;
  sess::RedisReplyView reply = op->reply;
  op_free(op);
  if (r == nullptr) return;
  ngx_connection_t* c = r->connection;
  guard_void(c->log, [&]() { done(r, data, reply); });
  ngx_http_run_posted_requests(c);
}

sess::ReplyType reply_type(const redisReply* reply) {
  if (reply == nullptr) return sess::ReplyType::None;
  switch (reply->type) {
    case REDIS_REPLY_STATUS: return sess::ReplyType::Status;
    case REDIS_REPLY_ERROR: return sess::ReplyType::Error;
    case REDIS_REPLY_INTEGER: return sess::ReplyType::Integer;
    case REDIS_REPLY_STRING: return sess::ReplyType::String;
    case REDIS_REPLY_NIL: return sess::ReplyType::Nil;
    case REDIS_REPLY_ARRAY: return sess::ReplyType::Array;
    default: return sess::ReplyType::Error;
  }
}

// hiredis' callback: copies what the request needs and posts the event.
void op_reply(redisAsyncContext*, void* rep, void* privdata) {
  auto* op = static_cast<redis_op_t*>(privdata);
  auto* reply = static_cast<redisReply*>(rep);
  if (reply != nullptr) reply_arrived(op->conn);
  op->in_flight = false;
  if (op->r == nullptr) {  // the request went away meanwhile
    op_free(op);
    return;
  }
  op->reply.type = reply_type(reply);
  if (reply != nullptr) {
    op->reply.integer = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
        reply->type == REDIS_REPLY_ERROR) {
      // GETRANGE bounds values to kMaxRecordLen + 1 bytes.
      size_t n = ngx_min(static_cast<size_t>(reply->len), sess::kMaxRecordLen + 1);
      auto* p = static_cast<char*>(ngx_pnalloc(op->r->pool, n ? n : 1));
      if (p == nullptr) {
        op->reply.type = sess::ReplyType::None;
      } else {
        if (n) ngx_memcpy(p, reply->str, n);
        op->reply.str = std::string_view(p, n);
      }
    }
  }
  ngx_post_event(&op->ev, &ngx_posted_events);
}

// The request's pool is being destroyed: the reply must not touch it any more.
void op_cancel(void* data) noexcept {
  auto* op = static_cast<redis_op_t*>(data);
  op->r = nullptr;
  op->cln = nullptr;
  if (op->ev.posted) {
    ngx_delete_posted_event(&op->ev);
  }
  if (!op->in_flight) delete op;
}

sess::LogLimiter unavailable_log_limit;

}  // namespace

bool redis_key_of(ngx_http_request_t*, const loc_conf_t* lcf, const unsigned char* id,
                  sess::pstring& out) {
  out.clear();
  sess::redis_key(sv(lcf->prefix), id, sess::kSessionIdLen, out);
  return true;
}

redis_op_t* redis_send(ngx_http_request_t* r, const loc_conf_t* lcf, const sess::RedisArgs& args,
                       redis_done_pt done, void* data) noexcept {
  redis_conn_t* conn = lcf->redis ? lcf->redis->conn : nullptr;
  auto unavailable = [&]() -> redis_op_t* {
    uint64_t more = 0;
    if (unavailable_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
      ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                    "session redis \"%V\": unavailable, %s not sent (%uL more since the last "
                    "such line)",
                    lcf->redis ? &lcf->redis->name : &lcf->cookie.name,
                    args.empty() ? "command" : args[0].c_str(), more);
    }
    return nullptr;
  };
  if (conn == nullptr || args.empty() || args.size() > 8) return unavailable();
  // Writes need an established connection: a write queued on a connection that then fails
  // could not be confirmed.
  if (!ensure_connected(conn, lcf->redis_timeout) || (!conn->connected && args[0] != "GETRANGE")) {
    return unavailable();
  }
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, 0);
  if (cln == nullptr) return unavailable();
  auto* op = new (std::nothrow) redis_op_t();
  if (op == nullptr) return unavailable();
  op->r = r;
  op->conn = conn;
  op->cln = cln;
  op->done = done;
  op->data = data;
  op->ev.handler = op_event;
  op->ev.data = op;
  op->ev.log = r->connection->log;
  const char* argv[8];
  size_t lens[8];
  for (size_t i = 0; i < args.size(); i++) {
    argv[i] = args[i].data();
    lens[i] = args[i].size();
  }
  if (!send(conn, op_reply, op, lcf->redis_timeout, static_cast<int>(args.size()), argv, lens)) {
    delete op;
    return unavailable();
  }
  op->in_flight = true;
  cln->handler = op_cancel;
  cln->data = op;
  // Written when the socket is writable: commands of many requests go out in one write. (Every
  // write is confirmed before its response leaves nginx, so no write needs to be flushed ahead.)
  return op;
}

ngx_int_t redis_init_process(ngx_cycle_t* cycle) noexcept {
  main_conf_t* mcf = main_conf(cycle);
  if (mcf == nullptr) return NGX_OK;
  auto** servers = static_cast<redis_server_t**>(mcf->servers.elts);
  for (ngx_uint_t i = 0; i < mcf->servers.nelts; i++) {
    auto* conn = new (std::nothrow) redis_conn_t();
    if (conn == nullptr) return NGX_ERROR;
    conn->server = servers[i];
    conn->log = cycle->log;
    conn->backoff = kBackoffMin;
    conn->timer.handler = timer_handler;
    conn->timer.data = conn;
    conn->timer.log = cycle->log;
    // Not cancelable: a worker that shuts down gracefully waits for the commands in flight
    // (bounded by the timeout) so their requests get an answer. The timer only exists while
    // commands are in flight.
    conn->timer.cancelable = 0;
    conn->reconnect.handler = reconnect_handler;
    conn->reconnect.data = conn;
    conn->reconnect.log = cycle->log;
    conn->reconnect.cancelable = 1;
    servers[i]->conn = conn;
    ensure_connected(conn, kConnectTimeout);  // ready before the first request
  }
  return NGX_OK;
}

void redis_exit_process(ngx_cycle_t* cycle) noexcept {
  main_conf_t* mcf = main_conf(cycle);
  if (mcf == nullptr) return;
  auto** servers = static_cast<redis_server_t**>(mcf->servers.elts);
  for (ngx_uint_t i = 0; i < mcf->servers.nelts; i++) {
    redis_conn_t* conn = servers[i]->conn;
    if (conn == nullptr) continue;
    conn->exiting = true;
    if (conn->reconnect.timer_set) ngx_del_timer(&conn->reconnect);
    if (conn->ac != nullptr) redisAsyncFree(conn->ac);
  }
}

}  // namespace ngx_session
