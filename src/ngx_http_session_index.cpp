// ngx_http_session_module: the per-user session index (core/user_index.h) - keeping it while
// sessions are written (the login handler and the header filter call index_add / index_remove at
// the points the core's IndexPlan names), and ending every session of a user (session_logout ...
// all, session_destroy_user: index_end_user).
//
// Ending a user's sessions walks the index with SSCAN, a round of at most kIndexScanCount
// members at a time: every member's record is ended by its own command (the end script on the
// record's key, routed to the record's node - the index and the records are on different Redis
// Cluster slots), all of a round in flight together; the members whose record is gone then leave
// the index with one SREM. The index key itself goes when its last member does; members added
// meanwhile (a login while this runs) stay, and the next logout-all finds them. A session that
// moved (session_regenerate) during the walk makes it read the index once more from the start
// (index_walk_next). The request waits for all of it: its response says whether it worked.
//
// Everything here belongs to a request (its pool; operations cancelled by the pool's cleanup).
// A walk's round has a pool of its own (its members, commands and their cleanups), destroyed
// when the round is done: a walk's memory is one round's, however large the index.

#include "ngx_http_session.h"
#include "ngx_http_session_metrics.h"

#include "core/user_index.h"

namespace ngx_session {

namespace {

sess::LogLimiter index_log_limit(1, 10);

// The index could not be changed: one error line (rate-limited), with Redis's own words.
void log_index_failure(ngx_http_request_t* r, const loc_conf_t* lcf, const char* what,
                       const sess::RespValue* reply) {
  uint64_t more = 0;
  if (!index_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) return;
  std::string_view why = reply == nullptr                         ? std::string_view("no answer")
                         : reply->type == sess::RespType::Error    ? std::string_view(reply->str)
                                                                   : std::string_view("an unexpected reply");
  ngx_str_t msg = log_safe(r, why, 240);
  ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                "session redis \"%V\": %s: %V (%uL more since the last such line)",
                redis_name(lcf), what, &msg, more);
}

// A C++ object in the request's pool, destroyed with it.
template <typename T>
void destroy_cleanup(void* data) noexcept {
  static_cast<T*>(data)->~T();
}

template <typename T, typename... Args>
T* pool_new(ngx_http_request_t* r, Args&&... args) {
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(T));
  if (cln == nullptr) throw std::bad_alloc();
  T* obj = new (cln->data) T(std::forward<Args>(args)...);
  cln->handler = destroy_cleanup<T>;
  return obj;
}

ctx_t* main_ctx(ngx_http_request_t* r) {
  ctx_t* ctx = get_ctx(r, true);
  if (ctx == nullptr) throw std::bad_alloc();
  return ctx;
}

// ---------------------------------------------------------------------------------------------
// Adding and removing one member

// One add (and the check of its sample) or one remove.
struct index_op_t {
  ngx_http_request_t* r;
  const loc_conf_t* lcf;
  sess::pstring key;                      // the index
  sess::pstring member;
  bool prune;
  index_done_pt done;
  void* data;
  std::pmr::vector<sess::pstring> sample;  // other members to check (prune)
  std::pmr::vector<char> dead;             // ... whose record is gone
  unsigned outstanding = 0;

  index_op_t(ngx_http_request_t* req, const loc_conf_t* l, std::pmr::memory_resource* mr)
      : r(req), lcf(l), key(mr), member(mr), prune(false), done(nullptr), data(nullptr),
        sample(mr), dead(mr) {}
};

struct sample_slot_t {
  index_op_t* op;
  size_t i;
};

void answer(index_op_t* op, bool ok) { op->done(op->r, op->data, ok); }

void pruned(ngx_http_request_t* r, void* data, const sess::RespValue* reply, bool) {
  auto* op = static_cast<index_op_t*>(data);
  if (sess::index_remove_reply(reply) != sess::IndexReply::Done) {
    log_index_failure(r, op->lcf, "pruning the user index", reply);
  }
  answer(op, true);  // the add itself was confirmed
}

// Every sampled member has been checked: the dead ones leave the index (then the add answers).
void sample_checked(index_op_t* op) {
  std::vector<std::string_view> gone;
  for (size_t i = 0; i < op->sample.size(); i++) {
    if (op->dead[i]) gone.push_back(op->sample[i]);
  }
  if (!gone.empty()) {
    metric_add(sess::metric_slot(sess::Metric::UserIndexPruned), gone.size());
    sess::RedisArgs args(op->sample.get_allocator().resource());
    sess::index_cmd_remove(op->key, gone.data(), gone.size(), args);
    if (redis_send(op->r, op->lcf, args, op->key, pruned, op) != nullptr) return;
  }
  answer(op, true);
}

void exists_done(ngx_http_request_t* r, void* data, const sess::RespValue* reply, bool) {
  auto* slot = static_cast<sample_slot_t*>(data);
  index_op_t* op = slot->op;
  bool exists = true;
  sess::index_exists_reply(reply, &exists);  // (a failure keeps the member: nothing on a doubt)
  op->dead[slot->i] = !exists;
  if (--op->outstanding == 0) guard_void(r->connection->log, [&]() { sample_checked(op); });
}

void added(ngx_http_request_t* r, void* data, const sess::RespValue* reply, bool) {
  auto* op = static_cast<index_op_t*>(data);
  guard_void(r->connection->log, [&]() {
    std::vector<std::string> sample;
    sess::IndexReply res = sess::index_add_reply(reply, &sample);
    if (res != sess::IndexReply::Done) {
      log_index_failure(r, op->lcf, "adding the session to its user's index", reply);
      answer(op, false);
      return;
    }
    if (op->prune) {
      for (const std::string& m : sample) {
        if (m != std::string_view(op->member)) op->sample.emplace_back(m);
      }
    }
    op->dead.assign(op->sample.size(), 0);
    for (size_t i = 0; i < op->sample.size(); i++) {
      sess::pstring record(op->key.get_allocator().resource());
      record.append(sv(op->lcf->prefix)).append(op->sample[i]);
      sess::RedisArgs args(op->key.get_allocator().resource());
      sess::index_cmd_exists(record, args);
      auto* slot = static_cast<sample_slot_t*>(ngx_palloc(r->pool, sizeof(sample_slot_t)));
      if (slot == nullptr) break;
      slot->op = op;
      slot->i = i;
      if (redis_send(r, op->lcf, args, record, exists_done, slot) != nullptr) op->outstanding++;
    }
    if (op->outstanding == 0) answer(op, true);  // nothing to check (or nothing could be)
  });
}

void removed(ngx_http_request_t* r, void* data, const sess::RespValue* reply, bool) {
  auto* op = static_cast<index_op_t*>(data);
  bool ok = sess::index_remove_reply(reply) == sess::IndexReply::Done;
  if (!ok) log_index_failure(r, op->lcf, "removing the session from its user's index", reply);
  answer(op, ok);
}

index_op_t* make_op(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view user,
                    std::string_view member, index_done_pt done, void* data) {
  ctx_t* ctx = main_ctx(r);
  auto* op = pool_new<index_op_t>(r, r, lcf, &ctx->mr);
  sess::user_index_key(sv(lcf->prefix), user, op->key);
  op->member.assign(member.data(), member.size());
  op->done = done;
  op->data = data;
  return op;
}

}  // namespace

bool index_enabled(ngx_http_request_t* r, const loc_conf_t* lcf) {
  if (lcf->store != STORE_REDIS) return false;
  auto* mcf = static_cast<main_conf_t*>(ngx_http_get_module_main_conf(r, ngx_http_session_module));
  return mcf != nullptr && mcf->user_index;
}

uint64_t index_ttl(const loc_conf_t* lcf, const sess::Times& t) {
  if (lcf->format == FORMAT_FLASK) return static_cast<uint64_t>(lcf->lifetime);
  // The longest the record can live: renewals never take it past created + lifetime.
  sess::ExpiryPolicy p = policy_of(lcf);
  p.idle = 0;
  uint64_t ttl = sess::expiry_ttl(p, t, ngx_clock());
  return ttl > 0 ? ttl : 1;
}

bool index_member_of(ngx_http_request_t* r, const loc_conf_t* lcf, const unsigned char* id,
                     const ngx_str_t& flask_sid, ngx_str_t* out) {
  if (lcf->format == FORMAT_FLASK) {
    *out = flask_sid;
    return out->len != 0;
  }
  out->len = 2 * sess::kSessionIdLen;
  out->data = static_cast<u_char*>(ngx_pnalloc(r->pool, out->len));
  if (out->data == nullptr) return false;
  id_hex(id, out->data);
  return true;
}

bool index_add(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view user,
               std::string_view member, uint64_t ttl, bool prune, index_done_pt done,
               void* data) {
  return guard<bool>(r->connection->log, false, [&]() {
    index_op_t* op = make_op(r, lcf, user, member, done, data);
    op->prune = prune;
    sess::RedisArgs args(op->key.get_allocator().resource());
    sess::index_cmd_add(op->key, op->member, ttl, prune ? sess::kIndexSample : 0, args);
    return redis_send(r, lcf, args, op->key, added, op) != nullptr;
  });
}

bool index_remove(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view user,
                  std::string_view member, index_done_pt done, void* data) {
  return guard<bool>(r->connection->log, false, [&]() {
    index_op_t* op = make_op(r, lcf, user, member, done, data);
    sess::RedisArgs args(op->key.get_allocator().resource());
    std::string_view m = op->member;
    sess::index_cmd_remove(op->key, &m, 1, args);
    return redis_send(r, lcf, args, op->key, removed, op) != nullptr;
  });
}

// ---------------------------------------------------------------------------------------------
// Ending every session of a user

namespace {

// At most this many SSCAN rounds (kIndexScanCount members each): an index that keeps growing
// faster than it is walked is not walked forever.
constexpr unsigned kMaxRounds = 4096;
// One round's memory (its members, the arguments of its commands, the slots of their replies,
// the cleanups that cancel its Redis operations): in a pool of its own, destroyed once the round
// is done (every operation answered: their cleanups are inert), so that a walk holds one round at
// a time, however large the index.
struct round_t {
  ngx_pool_t* pool;
  pool_resource mr;
  std::pmr::vector<sess::pstring> members;     // this round's members being ended
  std::pmr::vector<std::string_view> leave;    // ... that leave the index after this round

  explicit round_t(ngx_pool_t* p) : pool(p), mr(p), members(&mr), leave(&mr) {}
};

struct end_user_t {
  ngx_http_request_t* r;
  const loc_conf_t* lcf;
  sess::pstring key;                       // the index
  sess::pstring user;
  sess::pstring user_json;                 // as native records hold it
  sess::pstring except;                    // a member left alone (logout-all: the logout's own)
  sess::pstring cursor;
  sess::RedisArgs end_cmd;                 // the end command, pointed at each record in turn
  round_t* round = nullptr;
  unsigned outstanding = 0;
  unsigned rounds = 0;
  unsigned passes = 1;
  bool moved = false;                      // this pass met a session that moved
  end_user_result_t result{true, 0, 0};
  end_user_done_pt done;
  void* data;

  end_user_t(ngx_http_request_t* req, const loc_conf_t* l, std::pmr::memory_resource* mr)
      : r(req), lcf(l), key(mr), user(mr), user_json(mr), except(mr), cursor(mr), end_cmd(mr),
        done(nullptr), data(nullptr) {}
  ~end_user_t() { end_round(); }
  end_user_t(const end_user_t&) = delete;
  end_user_t& operator=(const end_user_t&) = delete;

  // (The request's pool cleanup destroys this, and the round's pool with it: its cleanups cancel
  // the round's operations still in flight, so no reply arrives into a destroyed round. A
  // completed operation clears its cleanup before its reply is handled, so a round may end in
  // the handler of its last reply.)
  void end_round() noexcept {
    if (round == nullptr) return;
    ngx_pool_t* p = round->pool;
    round->~round_t();
    round = nullptr;
    ngx_destroy_pool(p);
  }
  round_t* begin_round() {
    end_round();
    ngx_pool_t* p = ngx_create_pool(16384, r->connection->log);
    if (p == nullptr) throw std::bad_alloc();
    void* mem = ngx_palloc(p, sizeof(round_t));
    if (mem == nullptr) {
      ngx_destroy_pool(p);
      throw std::bad_alloc();
    }
    round = new (mem) round_t(p);
    return round;
  }
};

struct end_slot_t {
  end_user_t* e;
  size_t i;
};

void scan(end_user_t* e);
bool send_scan(end_user_t* e);

void finish_end(end_user_t* e) {
  e->end_round();
  metric_add(sess::metric_slot(sess::Metric::UserSessionsEnded), e->result.ended);
  metric_add(sess::metric_slot(sess::Metric::UserIndexPruned), e->result.pruned);
  e->done(e->r, e->data, e->result);
}

void failed(end_user_t* e, const char* what, const sess::RespValue* reply) {
  e->result.ok = false;
  log_index_failure(e->r, e->lcf, what, reply);
}

// The round is over (its ended entries left the index, or could not): the next round, another
// pass when a session moved during this one, or the answer.
void next_round(end_user_t* e) {
  e->end_round();
  switch (sess::index_walk_next(e->cursor == "0", e->moved, e->passes)) {
    case sess::WalkNext::Round:
      scan(e);
      return;
    case sess::WalkNext::Pass:  // (from cursor 0: the moved sessions' new ids are in the index)
      e->moved = false;
      e->passes++;
      scan(e);
      return;
    case sess::WalkNext::Moving: {
      e->result.ok = false;
      ngx_str_t u = log_safe(e->r, e->user);
      ngx_log_error(NGX_LOG_ERR, e->r->connection->log, 0,
                    "session: sessions of user \"%V\" kept moving to new ids "
                    "(session_regenerate) while they were ended: stopped after %ud passes over "
                    "the index",
                    &u, sess::kIndexMaxPasses);
      break;
    }
    case sess::WalkNext::Done:
      break;
  }
  finish_end(e);
}

void round_removed(ngx_http_request_t* r, void* data, const sess::RespValue* reply, bool) {
  auto* e = static_cast<end_user_t*>(data);
  guard_void(r->connection->log, [&]() {
    // The sessions are ended: an entry left behind is pruned by a later pass.
    if (sess::index_remove_reply(reply) != sess::IndexReply::Done) {
      log_index_failure(r, e->lcf, "removing ended sessions from the user index", reply);
    }
    next_round(e);
  });
}

// Every record of the round has answered: the ended ones leave the index, then the next round
// (also after a failure in this one: as many sessions as can be are ended, and the answer says
// that not all of them were).
void round_done(end_user_t* e) {
  round_t* rd = e->round;
  bool sent = false;
  if (!rd->leave.empty()) {
    // (args lives in the round's pool: gone before next_round destroys it)
    sess::RedisArgs args(&rd->mr);
    sess::index_cmd_remove(e->key, rd->leave.data(), rd->leave.size(), args);
    sent = redis_send(e->r, e->lcf, args, e->key, round_removed, e, nullptr, rd->pool) != nullptr;
  }
  if (!sent) next_round(e);
}

void ended(ngx_http_request_t* r, void* data, const sess::RespValue* reply, bool) {
  auto* slot = static_cast<end_slot_t*>(data);
  end_user_t* e = slot->e;
  guard_void(r->connection->log, [&]() {
    sess::EndOutcome o = sess::index_end_outcome(reply);
    switch (o) {
      case sess::EndOutcome::Ended:
        e->result.ended++;
        break;
      case sess::EndOutcome::Missing:
      case sess::EndOutcome::NotUsers:
        e->result.pruned++;
        break;
      case sess::EndOutcome::Moved:  // (its new id is ended by the next pass)
        e->moved = true;
        e->result.pruned++;
        break;
      case sess::EndOutcome::NoUser:  // not the user's (yet): stays
        break;
      default:
        failed(e, "ending a session of the user", reply);
        break;
    }
    if (sess::end_outcome_final(o)) e->round->leave.push_back(e->round->members[slot->i]);
    if (--e->outstanding == 0) round_done(e);
  });
}

void scanned(ngx_http_request_t* r, void* data, const sess::RespValue* reply, bool too_large) {
  auto* e = static_cast<end_user_t*>(data);
  guard_void(r->connection->log, [&]() {
    std::string cursor;
    std::vector<std::string> members, junk;
    sess::IndexReply res = too_large ? sess::IndexReply::Failed
                                     : sess::index_scan_reply(reply, &cursor, &members, &junk);
    if (res == sess::IndexReply::WrongType) {
      // Not a set: nginx did not write that key (a Flask app can be made to, under a sid the
      // client chose). It lists no session: the index is empty (the next add replaces it).
      ngx_str_t u = log_safe(r, e->user);
      ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                    "session: the index of user \"%V\" is not a set (another program wrote that "
                    "key): it lists no session, read as empty",
                    &u);
      finish_end(e);
      return;
    }
    if (res != sess::IndexReply::Done) {
      failed(e, "reading the user's session index", reply);
      finish_end(e);
      return;
    }
    e->cursor.assign(cursor);
    round_t* rd = e->round;
    rd->members.reserve(members.size() + junk.size());
    rd->leave.reserve(members.size() + junk.size());
    for (const std::string& m : junk) {  // not a session: just removed
      rd->members.emplace_back(m);
      rd->leave.push_back(rd->members.back());
    }
    e->result.pruned += junk.size();
    const size_t first = rd->members.size();
    for (const std::string& m : members) {
      if (m == std::string_view(e->except)) continue;
      rd->members.emplace_back(m);
    }
    // (A failure here still leads to round_done: once the commands sent have answered.)
    bool sent_all = guard<bool>(r->connection->log, false, [&]() {
      for (size_t i = first; i < rd->members.size(); i++) {
        sess::index_cmd_end_key(sv(e->lcf->prefix), rd->members[i], e->end_cmd);
        auto* slot = static_cast<end_slot_t*>(ngx_palloc(rd->pool, sizeof(end_slot_t)));
        if (slot == nullptr) return false;
        slot->e = e;
        slot->i = i;
        if (redis_send(r, e->lcf, e->end_cmd, e->end_cmd[3], ended, slot, nullptr, rd->pool) ==
            nullptr) {
          return false;
        }
        e->outstanding++;
      }
      return true;
    });
    if (!sent_all) failed(e, "ending a session of the user", nullptr);
    if (e->outstanding == 0) round_done(e);
  });
}

// Starts a round: its pool, and the SSCAN from e->cursor.
bool send_scan(end_user_t* e) {
  round_t* rd = e->begin_round();
  bool sent;
  {
    // (args lives in the round's pool: gone before end_round destroys it)
    sess::RedisArgs args(&rd->mr);
    sess::index_cmd_scan(e->key, e->cursor, sess::kIndexScanCount, args);
    sent = redis_send(e->r, e->lcf, args, e->key, scanned, e, nullptr, rd->pool) != nullptr;
  }
  if (!sent) e->end_round();
  return sent;
}

void scan(end_user_t* e) {
  if (++e->rounds > kMaxRounds) {
    e->result.ok = false;
    ngx_str_t u = log_safe(e->r, e->user);
    ngx_log_error(NGX_LOG_ERR, e->r->connection->log, 0,
                  "session: the index of user \"%V\" kept growing while its sessions were "
                  "ended: stopped after %ud rounds",
                  &u, kMaxRounds);
    finish_end(e);
    return;
  }
  if (!send_scan(e)) {
    failed(e, "reading the user's session index", nullptr);
    finish_end(e);
  }
}

}  // namespace

bool index_end_user(ngx_http_request_t* r, const loc_conf_t* lcf, std::string_view user,
                    std::string_view except, end_user_done_pt done, void* data) {
  return guard<bool>(r->connection->log, false, [&]() {
    ctx_t* ctx = main_ctx(r);
    auto* e = pool_new<end_user_t>(r, r, lcf, &ctx->mr);
    sess::user_index_key(sv(lcf->prefix), user, e->key);
    e->user.assign(user.data(), user.size());
    sess::append_json_string(user, e->user_json);
    e->except.assign(except.data(), except.size());
    e->cursor.assign("0");
    e->result.ok = true;
    e->done = done;
    e->data = data;
    e->rounds = 1;
    // Flask-Session records cannot be read in Redis: they are ended as they are.
    bool flask = lcf->format == FORMAT_FLASK;
    sess::index_cmd_end("", flask ? std::string_view() : sv(lcf->user_key),
                        flask ? std::string_view() : std::string_view(e->user_json), e->end_cmd);
    return send_scan(e);
  });
}

}  // namespace ngx_session
