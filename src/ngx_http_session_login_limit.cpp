// ngx_http_session_module: session_login_limit - failed-login regulation in a shared memory zone.
//
//   session_login_limit zone=NAME:SIZE [attempts=5] [window=10m] [ban=15m] [by=client|user|both];
//
// The decisions are the core's (core/login_limit.h); this file keeps the entries in an nginx
// slab zone shared by every worker, found through a red-black tree by their keyed id, and makes
// the core's calls under the zone's lock. Entries without an active ban live on `queue[k]`, k
// the failures they remember (LimitEntry::count), most recently updated first; active bans on
// `bans`. When the zone is full (core/login_limit.h, "Evictable"): first an entry that holds
// nothing worth keeping (the tail of a queue whose failures have all left the window, or whose
// ban has ended), then the least recently updated entry of the lowest non-empty `queue[k]`
// (fewest failures first, so junk names with one failure each cannot flush a name's partial
// count), and an active ban only when no other entry is left: a full zone never refuses
// everyone, and never forgets a ban while it can forget something else. The entry the same
// request made or uses for its other key is never evicted. The zone keeps its entries across
// reloads (same name and size).
//
// The login flow (ngx_http_session_login.cpp) calls login_limit_begin() once the form and its
// CSRF token are good, before any password hash, and login_limit_finish() with the outcome. A
// check that never reports an outcome (the client went away during a subrequest) stays counted
// as a failure.

#include "ngx_http_session.h"

#include "core/login_limit.h"

namespace ngx_session {

namespace {

struct limit_sh_t {
  ngx_rbtree_t rbtree;
  ngx_rbtree_node_t sentinel;
  // entries without an active ban, by the failures they remember, most recently updated first
  ngx_queue_t queue[sess::kLimitMaxAttempts + 1];
  ngx_queue_t bans;   // active bans, most recently started first
  unsigned char key[sess::kLimitKeyLen];  // the zone's own key for the ids
};

// One entry; its ring of failure times (LimitEntry::cap of them) follows it in the allocation.
struct limit_node_t {
  ngx_rbtree_node_t rb;  // rb.key: the id's first bytes
  ngx_queue_t q;
  unsigned char id[sess::kLimitIdLen];
  sess::LimitEntry e;
};

static_assert(sizeof(limit_node_t) % alignof(uint64_t) == 0, "the ring follows the node");
static_assert(sizeof(login_limit_ticket_t::client) == sess::kLimitIdLen &&
                  sizeof(login_limit_ticket_t::user) == sess::kLimitIdLen,
              "ticket ids are core ids");
static_assert(std::is_trivially_copyable<sess::LimitEntry>::value, "lives in shared memory");

uint64_t* stamps_of(limit_node_t* n) {
  return reinterpret_cast<uint64_t*>(reinterpret_cast<u_char*>(n) + sizeof(limit_node_t));
}

size_t node_size(uint32_t cap) { return sizeof(limit_node_t) + cap * sizeof(uint64_t); }

ngx_rbtree_key_t rb_key(const unsigned char* id) {
  ngx_rbtree_key_t k;
  ngx_memcpy(&k, id, sizeof(k));
  return k;
}

void rbtree_insert(ngx_rbtree_node_t* temp, ngx_rbtree_node_t* node,
                   ngx_rbtree_node_t* sentinel) {
  ngx_rbtree_node_t** p;
  for (;;) {
    if (node->key != temp->key) {
      p = node->key < temp->key ? &temp->left : &temp->right;
    } else {
      auto* a = reinterpret_cast<limit_node_t*>(node);
      auto* b = reinterpret_cast<limit_node_t*>(temp);
      p = ngx_memcmp(a->id, b->id, sess::kLimitIdLen) < 0 ? &temp->left : &temp->right;
    }
    if (*p == sentinel) break;
    temp = *p;
  }
  *p = node;
  node->parent = temp;
  node->left = sentinel;
  node->right = sentinel;
  ngx_rbt_red(node);
}

uint64_t now_ms() { return static_cast<uint64_t>(ngx_current_msec); }

sess::LogLimiter refused_log_limit;
sess::LogLimiter no_room_log_limit;

}  // namespace

// One zone: its parameters and its shared memory (shared by every directive naming it).
struct limit_zone_t {
  sess::LimitSpec spec;
  ngx_str_t name;
  ngx_shm_zone_t* shm;
  limit_sh_t* sh;
  ngx_slab_pool_t* shpool;
};

// One session_login_limit directive: its zone, and where it was written (for nginx -t).
struct login_limit_t {
  limit_zone_t* zone;
  ngx_str_t file;
  ngx_uint_t line;
  bool in_location;  // written in a location block itself (not http, server or an `if`)
};

namespace {

ngx_int_t init_zone(ngx_shm_zone_t* shm_zone, void* data) noexcept {
  auto* z = static_cast<limit_zone_t*>(shm_zone->data);
  auto* old = static_cast<limit_zone_t*>(data);
  if (old != nullptr) {  // a reload keeps the zone (same name and size): and its entries
    z->sh = old->sh;
    z->shpool = old->shpool;
    return NGX_OK;
  }
  z->shpool = reinterpret_cast<ngx_slab_pool_t*>(shm_zone->shm.addr);
  if (shm_zone->shm.exists) {
    z->sh = static_cast<limit_sh_t*>(z->shpool->data);
    return NGX_OK;
  }
  z->sh = static_cast<limit_sh_t*>(ngx_slab_alloc(z->shpool, sizeof(limit_sh_t)));
  if (z->sh == nullptr) return NGX_ERROR;
  z->shpool->data = z->sh;
  ngx_rbtree_init(&z->sh->rbtree, &z->sh->sentinel, rbtree_insert);
  for (ngx_queue_t& q : z->sh->queue) {
    ngx_queue_init(&q);
  }
  ngx_queue_init(&z->sh->bans);
  if (!sess::random_bytes(z->sh->key, sizeof(z->sh->key))) return NGX_ERROR;
  static const char ctx_fmt[] = " in session_login_limit zone \"\"";
  size_t len = sizeof(ctx_fmt) + shm_zone->shm.name.len;
  z->shpool->log_ctx = static_cast<u_char*>(ngx_slab_alloc(z->shpool, len));
  if (z->shpool->log_ctx == nullptr) return NGX_ERROR;
  ngx_sprintf(z->shpool->log_ctx, " in session_login_limit zone \"%V\"%Z", &shm_zone->shm.name);
  // A full zone is handled here (eviction), not worth a [crit] line from the slab allocator.
  z->shpool->log_nomem = 0;
  return NGX_OK;
}

limit_node_t* find(limit_sh_t* sh, const unsigned char* id) {
  ngx_rbtree_key_t key = rb_key(id);
  ngx_rbtree_node_t* node = sh->rbtree.root;
  ngx_rbtree_node_t* sentinel = sh->rbtree.sentinel;
  while (node != sentinel) {
    if (key != node->key) {
      node = key < node->key ? node->left : node->right;
      continue;
    }
    auto* n = reinterpret_cast<limit_node_t*>(node);
    int rc = ngx_memcmp(id, n->id, sess::kLimitIdLen);
    if (rc == 0) return n;
    node = rc < 0 ? node->left : node->right;
  }
  return nullptr;
}

void drop(limit_zone_t* z, limit_node_t* n) {
  ngx_queue_remove(&n->q);
  ngx_rbtree_delete(&z->sh->rbtree, &n->rb);
  ngx_slab_free_locked(z->shpool, n);
}

limit_node_t* node_of(ngx_queue_t* q) {
  return reinterpret_cast<limit_node_t*>(reinterpret_cast<u_char*>(q) -
                                         offsetof(limit_node_t, q));
}

// The queue for an entry that is not an active ban.
ngx_queue_t* queue_of(limit_zone_t* z, const limit_node_t* n) {
  return &z->sh->queue[sess::limit_evict_class(n->e)];
}

// After a change: to the head of the queue that matches its state.
void touch(limit_zone_t* z, limit_node_t* n, uint64_t now) {
  ngx_queue_remove(&n->q);
  ngx_queue_insert_head(sess::limit_banned(n->e, now) ? &z->sh->bans : queue_of(z, n), &n->q);
}

// The least recently updated entry of list other than keep; nullptr if none.
limit_node_t* lru(ngx_queue_t* list, const limit_node_t* keep) {
  for (ngx_queue_t* q = ngx_queue_last(list); q != ngx_queue_sentinel(list);
       q = ngx_queue_prev(q)) {
    limit_node_t* n = node_of(q);
    if (n != keep) return n;
  }
  return nullptr;
}

// Nothing left to remember: no active ban, and no failure within the window (or an entry of
// another `attempts`, which would be made anew, keeping only a ban).
bool forgettable(limit_zone_t* z, limit_node_t* n, uint64_t now) {
  if (sess::limit_banned(n->e, now)) return false;
  return n->e.cap != z->spec.attempts || sess::limit_idle(n->e, stamps_of(n), z->spec, now);
}

// Frees up to `max` entries with nothing left to remember from the queues' tails (as limit_req
// does on every new entry); true if it freed one.
bool expire(limit_zone_t* z, uint64_t now, int max, const limit_node_t* keep) {
  int freed = 0;
  for (ngx_queue_t& q : z->sh->queue) {
    if (freed == max) return true;
    limit_node_t* n = ngx_queue_empty(&q) ? nullptr : lru(&q, keep);
    if (n != nullptr && forgettable(z, n, now)) {
      drop(z, n);
      freed++;
    }
  }
  while (freed < max) {
    limit_node_t* n = lru(&z->sh->bans, keep);
    if (n == nullptr || sess::limit_banned(n->e, now)) break;
    drop(z, n);  // the ban has ended: a clean slate is an empty entry
    freed++;
  }
  return freed != 0;
}

// Frees one entry, in the eviction order: one with nothing to remember, then the one with the
// fewest failures (least recently updated first), then the oldest ban. Never keep. False when
// nothing but keep is left.
bool evict_one(limit_zone_t* z, uint64_t now, const limit_node_t* keep) {
  if (expire(z, now, 1, keep)) return true;
  for (ngx_queue_t& q : z->sh->queue) {
    limit_node_t* n;
    while ((n = lru(&q, keep)) != nullptr) {
      if (sess::limit_banned(n->e, now)) {
        // A ban on a non-ban queue (its ban started with no later change): move it.
        touch(z, n, now);
        continue;
      }
      drop(z, n);
      return true;
    }
  }
  limit_node_t* n = lru(&z->sh->bans, keep);
  if (n == nullptr) return false;
  drop(z, n);
  return true;
}

// A new entry; when the zone is full, evict_one() makes room. `keep` (the other entry of the
// same request, by=both) is never evicted: its request is about to charge it.
limit_node_t* create(limit_zone_t* z, const unsigned char* id, uint64_t now,
                     const limit_node_t* keep) {
  size_t size = node_size(z->spec.attempts);
  auto* n = static_cast<limit_node_t*>(ngx_slab_alloc_locked(z->shpool, size));
  while (n == nullptr && evict_one(z, now, keep)) {
    n = static_cast<limit_node_t*>(ngx_slab_alloc_locked(z->shpool, size));
  }
  if (n == nullptr) return nullptr;
  ngx_memcpy(n->id, id, sess::kLimitIdLen);
  n->rb.key = rb_key(id);
  n->e = sess::LimitEntry();
  n->e.cap = z->spec.attempts;
  n->e.updated = now;
  ngx_rbtree_insert(&z->sh->rbtree, &n->rb);
  ngx_queue_insert_head(queue_of(z, n), &n->q);
  return n;
}

// The entry of id, made if absent (or made anew, keeping an active ban, when a reload changed
// `attempts`), never evicting `keep`. nullptr when the zone cannot hold it.
limit_node_t* entry(limit_zone_t* z, const unsigned char* id, uint64_t now,
                    const limit_node_t* keep) {
  limit_node_t* n = find(z->sh, id);
  if (n != nullptr && n->e.cap != z->spec.attempts) {
    uint64_t banned_until = n->e.banned_until;
    uint32_t logged = n->e.logged;
    drop(z, n);
    n = create(z, id, now, keep);
    if (n != nullptr) {
      n->e.banned_until = banned_until;
      n->e.logged = logged;
      touch(z, n, now);
    }
    return n;
  }
  if (n == nullptr) n = create(z, id, now, keep);
  if (n != nullptr) sess::limit_expire(n->e, now);
  return n;
}

bool client_id(ngx_http_request_t* r, const unsigned char* key, unsigned char* id) {
  const sockaddr* sa = r->connection->sockaddr;
  switch (sa->sa_family) {
    case AF_INET: {
      auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
      return sess::limit_client_id(key, reinterpret_cast<const unsigned char*>(&sin->sin_addr),
                                   4, id);
    }
#if (NGX_HAVE_INET6)
    case AF_INET6: {
      auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
      return sess::limit_client_id(key, sin6->sin6_addr.s6_addr, 16, id);
    }
#endif
    default:
      return sess::limit_client_id(key, nullptr, 0, id);
  }
}

bool by_client(const limit_zone_t* z) {
  return (static_cast<unsigned>(z->spec.by) & static_cast<unsigned>(sess::LimitBy::Client)) != 0;
}

bool by_user(const limit_zone_t* z) {
  return (static_cast<unsigned>(z->spec.by) & static_cast<unsigned>(sess::LimitBy::User)) != 0;
}

}  // namespace

ngx_int_t login_limit_begin(ngx_http_request_t* r, const loc_conf_t* lcf, ngx_str_t user,
                            login_limit_ticket_t* t, uint64_t* retry_after) {
  ngx_memzero(t, sizeof(*t));
  *retry_after = 0;
  if (lcf->login_limit == nullptr) return NGX_OK;
  limit_zone_t* z = lcf->login_limit->zone;
  if (by_client(z) && !client_id(r, z->sh->key, t->client)) return NGX_ERROR;
  if (by_user(z) && !sess::limit_user_id(z->sh->key, sv(user), t->user)) return NGX_ERROR;
  uint64_t now = now_ms();

  ngx_shmtx_lock(&z->shpool->mutex);
  expire(z, now, 2, nullptr);
  // by=both: making room for one of the attempt's two entries never evicts the other (the name's
  // count, or the address's entry just made, which is charged below).
  limit_node_t* u = by_user(z) ? find(z->sh, t->user) : nullptr;
  limit_node_t* c = by_client(z) ? entry(z, t->client, now, u) : nullptr;
  uint64_t wait = 0;
  if (c != nullptr) wait = sess::limit_retry_after(c->e, now);
  if (by_user(z)) {
    // An address already refused makes no entry for the name: a refused attempt evicts nothing.
    if (wait == 0) {
      u = entry(z, t->user, now, c);
    } else if (u != nullptr) {
      sess::limit_expire(u->e, now);
    }
  }
  if (u != nullptr) wait = ngx_max(wait, sess::limit_retry_after(u->e, now));
  if (wait == 0) {
    if (c != nullptr) {
      sess::limit_charge(c->e, stamps_of(c), z->spec, now);
      touch(z, c, now);
      t->charged_client = 1;
    }
    if (u != nullptr) {
      sess::limit_charge(u->e, stamps_of(u), z->spec, now);
      touch(z, u, now);
      t->charged_user = 1;
    }
  }
  ngx_shmtx_unlock(&z->shpool->mutex);

  if ((by_client(z) && c == nullptr) || (by_user(z) && u == nullptr && wait == 0)) {
    // Eviction freed every entry it could (all but this request's other one) and the slab
    // still had no block of the size (its pages held by entries of another size, e.g. made
    // before a reload changed `attempts`): the attempt is not counted for that key.
    uint64_t more = 0;
    if (no_room_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
      ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                    "session_login_limit zone \"%V\" has no room for an entry (%uL more "
                    "since the last such line)",
                    &z->name, more);
    }
  }
  if (wait != 0) {
    *retry_after = wait;
    uint64_t more = 0;
    if (refused_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
      ngx_str_t safe = log_safe(r, sv(user));
      ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                    "session login refused: banned, user \"%V\" (%uL more since the last such "
                    "line)",
                    &safe, more);
    }
    return NGX_DECLINED;
  }
  t->zone = lcf->login_limit;
  t->token = now;
  return NGX_OK;
}

void login_limit_finish(ngx_http_request_t* r, login_limit_ticket_t* t, login_outcome_e outcome,
                        ngx_str_t user) {
  if (t->zone == nullptr) return;
  limit_zone_t* z = t->zone->zone;
  t->zone = nullptr;  // once
  uint64_t now = now_ms();
  bool log_client = false, log_user = false;

  ngx_shmtx_lock(&z->shpool->mutex);
  limit_node_t* c = t->charged_client ? find(z->sh, t->client) : nullptr;
  limit_node_t* u = t->charged_user ? find(z->sh, t->user) : nullptr;
  switch (outcome) {
    case LOGIN_FAILED:
      if (c != nullptr) log_client = sess::limit_failed(c->e, now);
      if (u != nullptr) log_user = sess::limit_failed(u->e, now);
      break;
    case LOGIN_SUCCEEDED:
      // The address keeps its other failures; the account's password clears the account's.
      if (c != nullptr) {
        sess::limit_refund(c->e, stamps_of(c), z->spec, t->token, now);
        touch(z, c, now);
      }
      if (u != nullptr) {
        sess::limit_clear(u->e);
        touch(z, u, now);
      }
      break;
    case LOGIN_NO_VERDICT:  // the check could not run: it was no failure
      if (c != nullptr) {
        sess::limit_refund(c->e, stamps_of(c), z->spec, t->token, now);
        touch(z, c, now);
      }
      if (u != nullptr) {
        sess::limit_refund(u->e, stamps_of(u), z->spec, t->token, now);
        touch(z, u, now);
      }
      break;
  }
  ngx_shmtx_unlock(&z->shpool->mutex);

  // One line per ban, for fail2ban (nginx appends ", client: <address>, server: ...").
  time_t ban = static_cast<time_t>(z->spec.ban_ms / 1000);
  time_t window = static_cast<time_t>(z->spec.window_ms / 1000);
  char* action = r->connection->log->action;
  r->connection->log->action = nullptr;
  if (log_client) {
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "session login limit: client banned for %Ts after %uD failed logins within "
                  "%Ts",
                  ban, z->spec.attempts, window);
  }
  if (log_user) {
    ngx_str_t safe = log_safe(r, sv(user));
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "session login limit: user \"%V\" banned for %Ts after %uD failed logins "
                  "within %Ts",
                  &safe, ban, z->spec.attempts, window);
  }
  r->connection->log->action = action;
}

char* login_limit_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  return guard<char*>(cf->log, static_cast<char*>(NGX_CONF_ERROR), [&]() -> char* {
    auto* lcf = static_cast<loc_conf_t*>(conf);
    if (lcf->login_limit != NGX_CONF_UNSET_PTR) return const_cast<char*>("is duplicate");
    auto* value = static_cast<ngx_str_t*>(cf->args->elts);
    size_t n = cf->args->nelts - 1;
    std::string_view args[8];
    if (n > 8) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": too many parameters", &cmd->name);
      return static_cast<char*>(NGX_CONF_ERROR);
    }
    for (size_t i = 0; i < n; i++) args[i] = sv(value[i + 1]);
    sess::LimitSpec spec;
    sess::LimitParseError err;
    if (!sess::login_limit_parse(args, n, &spec, &err)) {
      if (err.index < n) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s: \"%V\"", &cmd->name, err.message,
                           &value[err.index + 1]);
      } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" %s", &cmd->name, err.message);
      }
      return static_cast<char*>(NGX_CONF_ERROR);
    }
    // The size again through nginx's own parser (its bound is size_t's on this platform): the
    // zone is as large as nginx would make it for limit_req, or the directive fails.
    ngx_str_t size_text{spec.zone_size_text.size(),
                        reinterpret_cast<u_char*>(const_cast<char*>(spec.zone_size_text.data()))};
    ssize_t parsed = ngx_parse_size(&size_text);
    if (parsed == NGX_ERROR || parsed <= 0) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"%V\": invalid zone size (use e.g. zone=NAME:1m): \"%V\"",
                         &cmd->name, &size_text);
      return static_cast<char*>(NGX_CONF_ERROR);
    }
    spec.zone_size = static_cast<uint64_t>(parsed);
    size_t min = 8 * ngx_pagesize;
    if (spec.zone_size < min) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"%V\": zone \"%*s\" is too small (%uL bytes; at least %uz, e.g. 1m "
                         "for about 4000 entries)",
                         &cmd->name, spec.zone.size(), spec.zone.data(), spec.zone_size, min);
      return static_cast<char*>(NGX_CONF_ERROR);
    }
    auto* use = static_cast<login_limit_t*>(ngx_pcalloc(cf->pool, sizeof(login_limit_t)));
    if (use == nullptr) return static_cast<char*>(NGX_CONF_ERROR);
    use->file = cf->conf_file->file.name;
    use->line = cf->conf_file->line;
    use->in_location = cf->cmd_type == NGX_HTTP_LOC_CONF;
    lcf->login_limit = use;
    auto* z = static_cast<limit_zone_t*>(ngx_pcalloc(cf->pool, sizeof(limit_zone_t)));
    if (z == nullptr) return static_cast<char*>(NGX_CONF_ERROR);
    if (!pool_str(cf->pool, spec.zone, &z->name)) return static_cast<char*>(NGX_CONF_ERROR);
    spec.zone = sv(z->name);
    z->spec = spec;
    z->shm = ngx_shared_memory_add(cf, &z->name, static_cast<size_t>(spec.zone_size),
                                   &ngx_http_session_module);
    if (z->shm == nullptr) return static_cast<char*>(NGX_CONF_ERROR);
    if (z->shm->data != nullptr) {
      // Another session_login_limit declared this zone: it must say the same.
      auto* other = static_cast<limit_zone_t*>(z->shm->data);
      if (!other->spec.same(spec)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": zone \"%V\" is already declared with other parameters",
                           &cmd->name, &z->name);
        return static_cast<char*>(NGX_CONF_ERROR);
      }
      use->zone = other;
      return NGX_CONF_OK;
    }
    z->shm->init = init_zone;
    z->shm->data = z;
    use->zone = z;
    return NGX_CONF_OK;
  });
}

void login_limit_merge(ngx_conf_t* cf, loc_conf_t* conf, const loc_conf_t* prev) {
  login_limit_t* own = conf->login_limit;  // written at this level: not yet merged
  ngx_conf_merge_ptr_value(conf->login_limit, prev->login_limit, nullptr);
  if (own == NGX_CONF_UNSET_PTR || own == nullptr || !own->in_location || conf->login == 1) {
    return;
  }
  // While locations merge, the context's core configuration is the location's own.
  auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
      ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
  if (clcf->locations != nullptr && !ngx_queue_empty(clcf->locations)) {
    return;  // a nested location may have session_login and inherit the limit
  }
  ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                "\"session_login_limit\" in %V:%ui applies to no login: location \"%V\" has "
                "no \"session_login\" (set the limit in the location that has it, or in its "
                "server)",
                &own->file, own->line, &clcf->name);
}

}  // namespace ngx_session
