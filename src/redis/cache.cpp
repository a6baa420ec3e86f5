// ngx_http_session_module: session_redis_cache - the shared-memory zone and its configuration.
//
//   session_redis_cache NAME:SIZE [max_age=T] | off;      (default off; max_age default 60s)
//
// This file holds the directive, the zone (nginx slab, shared by all workers: a hash table of
// entries by key, an LRU list, the flush epoch of the core's CacheCoherence (src/core/
// redis_cache.h), the generation that shuts out workers of a previous configuration, and each
// worker's heartbeat), the zones' attachment to their endpoint, and $session_cache_status. What
// reads and fills the zone, and the invalidation link that keeps it coherent, are in
// cache_link.cpp; README "The session cache" says what is guaranteed.

#include <cstring>
#include <new>
#include "redis.h"

#include "../ngx_http_session_metrics.h"

namespace ngx_session {
namespace {

char* conf_error() { return static_cast<char*>(NGX_CONF_ERROR); }

// The zone's header, first in its slab pool. A reload that keeps the zone starts from an empty
// one all the same (DESIGN.md: "Reload starts from an empty zone"): the epoch moves on, and the
// generation too, so that workers of the previous configuration (still finishing their requests,
// or killed without exiting) neither serve nor store entries from then on.
constexpr ngx_uint_t kMaxWorkers = 256;     // workers with a higher number do not fill
constexpr ngx_msec_t kHeartbeatLimit = 300;  // an entry whose filler's heartbeat is older: dead

struct cache_node_t;

struct cache_shm_t {
  ngx_atomic_t epoch;        // CacheCoherence's SharedEpoch: entries of other epochs are dead
  ngx_atomic_t generation;   // bumped by every configuration (re)load that uses the zone
  // When each worker (ngx_worker) last ran its event loop (redis_cache_heartbeat, every
  // 100 ms): Redis sends a key's invalidation only to the worker whose connection read it, so
  // an entry is served by the others only while that worker is seen running.
  ngx_atomic_t heartbeat[kMaxWorkers];
  // Entries by key: chains by key_hash, a power of two of them, about one per 256 bytes of zone
  // (an entry - key, record and this header - takes a slab chunk of 128 bytes at the very least,
  // usually 256 or more), so a chain holds one or two entries when the zone is full.
  cache_node_t** buckets;
  ngx_uint_t mask;           // buckets - 1
  uint64_t seed[2];          // key_hash's, from the CSPRNG when the zone is made
  ngx_queue_t lru;           // most recently used first
  ngx_atomic_t entries;      // for tests and logs
};

// One entry: its key and record bytes follow the struct.
struct cache_node_t {
  cache_node_t* next;        // its chain
  ngx_queue_t lru;
  uint64_t epoch;            // the fill's ticket epoch
  uint64_t expires_ms;       // ngx_current_msec scale (monotonic, the same in every worker)
  uint32_t hash;             // key_hash(sh, key)
  uint16_t filler;           // the worker whose connection read it (ngx_worker)
  uint32_t key_len;
  uint32_t data_len;
  sess::KeptCookie* cookie;  // the id cookie it keeps (a 64-byte slab chunk), or nullptr
  u_char bytes[1];
};

struct cache_zone_t {
  ngx_slab_pool_t* shpool;
  cache_shm_t* sh;
  ngx_atomic_uint_t generation;  // the zone's generation when this configuration was loaded
  const redis_endpoint_t* endpoint;  // the one Redis deployment whose records it holds
  ngx_msec_t max_age;        // the shortest max_age of the locations naming the zone
  size_t max_record;         // larger records are not stored (an eighth of the zone)
};

// A hash of the key for its chain, keyed by the zone's seed (so which keys share a chain is not
// known outside): a session key ends in 32 hex digits of a random id, so its last 16 bytes are
// mixed; shorter keys (tests) by FNV-1a. Entries are told apart by the whole key.
uint32_t key_hash(const cache_shm_t* sh, std::string_view key) {
  if (key.size() >= 16) {
    uint64_t a = sess::load_u64(key.data() + key.size() - 16);
    uint64_t b = sess::load_u64(key.data() + key.size() - 8);
    uint64_t h = ((a ^ sh->seed[0]) * 0x9e3779b97f4a7c15ull) ^
                 ((b ^ sh->seed[1]) * 0xc2b2ae3d27d4eb4full) ^ key.size();
    h ^= h >> 29;
    return static_cast<uint32_t>(h ^ (h >> 32));
  }
  uint32_t h = 2166136261u ^ static_cast<uint32_t>(sh->seed[0]);
  for (unsigned char c : key) h = (h ^ c) * 16777619u;
  return h;
}

// (Under the zone's lock, as everything that reads or changes the table.)
cache_node_t** chain_of(cache_shm_t* sh, uint32_t hash) { return &sh->buckets[hash & sh->mask]; }

cache_node_t* find(cache_shm_t* sh, std::string_view key, uint32_t hash) {
  for (cache_node_t* n = *chain_of(sh, hash); n != nullptr; n = n->next) {
    if (n->hash == hash && n->key_len == key.size() &&
        std::memcmp(n->bytes, key.data(), key.size()) == 0) {
      return n;
    }
  }
  return nullptr;
}

// (Under the zone's lock.)
void remove_node(cache_zone_t* ctx, cache_node_t* n) {
  cache_node_t** p = chain_of(ctx->sh, n->hash);
  while (*p != n) p = &(*p)->next;
  *p = n->next;
  ngx_queue_remove(&n->lru);
  if (n->cookie != nullptr) ngx_slab_free_locked(ctx->shpool, n->cookie);
  ngx_slab_free_locked(ctx->shpool, n);
  ctx->sh->entries--;
}

bool init_header(cache_zone_t* ctx, size_t zone_size) {
  cache_shm_t* sh = ctx->sh;
  size_t want = zone_size / 256;
  size_t n = 64;
  while (n * 2 <= want) n *= 2;
  void* b = ngx_slab_calloc(ctx->shpool, n * sizeof(cache_node_t*));
  if (b == nullptr || !sess::random_bytes(sh->seed, sizeof(sh->seed))) return false;
  sh->buckets = static_cast<cache_node_t**>(b);
  sh->mask = n - 1;
  ngx_queue_init(&sh->lru);
  sh->entries = 0;
  return true;
}

// Empties a zone kept from the previous configuration (its memory is reused as it is).
void empty_zone(cache_zone_t* ctx) {
  ngx_shmtx_lock(&ctx->shpool->mutex);
  while (!ngx_queue_empty(&ctx->sh->lru)) {
    ngx_queue_t* q = ngx_queue_last(&ctx->sh->lru);
    remove_node(ctx, ngx_queue_data(q, cache_node_t, lru));
  }
  ngx_shmtx_unlock(&ctx->shpool->mutex);
}

ngx_int_t init_zone(ngx_shm_zone_t* zone, void* data) noexcept {
  auto* ctx = static_cast<cache_zone_t*>(zone->data);
  auto* old = static_cast<cache_zone_t*>(data);
  ctx->max_record = zone->shm.size / 8;
  if (old != nullptr) {
    // Kept across a reload: emptied once the new configuration is in place (redis_cache_
    // init_module; a reload that fails leaves the running workers their cache).
    ctx->shpool = old->shpool;
    ctx->sh = old->sh;
    return NGX_OK;
  }
  ctx->shpool = reinterpret_cast<ngx_slab_pool_t*>(zone->shm.addr);
  if (zone->shm.exists) {
    ctx->sh = static_cast<cache_shm_t*>(ctx->shpool->data);
    return NGX_OK;
  }
  ctx->sh = static_cast<cache_shm_t*>(ngx_slab_calloc(ctx->shpool, sizeof(cache_shm_t)));
  if (ctx->sh == nullptr) return NGX_ERROR;
  ctx->shpool->data = ctx->sh;
  ctx->sh->epoch = 1;
  ctx->sh->generation = 1;
  ctx->generation = 1;
  if (!init_header(ctx, zone->shm.size)) return NGX_ERROR;
  static const char kLog[] = " in session_redis_cache zone \"";
  const size_t len = sizeof(kLog) - 1 + zone->shm.name.len + 2;
  auto* p = static_cast<u_char*>(ngx_slab_alloc(ctx->shpool, len));
  if (p == nullptr) return NGX_ERROR;
  ctx->shpool->log_ctx = p;
  ngx_sprintf(p, "%s%V\"%Z", kLog, &zone->shm.name);
  // A full zone evicts (least recently used first) rather than logging "no memory".
  ctx->shpool->log_nomem = 0;
  return NGX_OK;
}

// Whether worker w's heartbeat is at most the limit old at now.
bool beat_fresh(const cache_shm_t* sh, ngx_uint_t w, ngx_msec_t now) {
  auto beat = static_cast<ngx_msec_t>(sh->heartbeat[w]);
  return static_cast<ngx_msec_int_t>(now - beat) <= static_cast<ngx_msec_int_t>(kHeartbeatLimit);
}

// Whether this worker's own heartbeat is recent: others still serve its entries.
bool beat_recent(const cache_shm_t* sh, ngx_msec_t now) { return beat_fresh(sh, ngx_worker, now); }

bool filler_alive(const cache_shm_t* sh, const cache_node_t* n, ngx_msec_t now) {
  if (n->filler == ngx_worker) return true;  // (this worker is running)
  return beat_fresh(sh, n->filler, now);
}

// The binding of cookie c as the zone's entries keep it (with this zone's seed); false if there
// is none or it cannot be kept.
bool binding_of(const cache_shm_t* sh, const cache_cookie_t* c, uint64_t* out) {
  return c != nullptr && sess::kept_cookie_bind(sh->seed, c->ring, c->name, out);
}

// (Under the zone's lock.) n keeps cookie c from now on, in place of what it kept, if there is
// room (no entry is evicted for it).
void keep(cache_zone_t* ctx, cache_node_t* n, const sess::KeptCookie& c) {
  if (n->cookie == nullptr) {
    void* p = ngx_slab_alloc_locked(ctx->shpool, sizeof(sess::KeptCookie));
    if (p == nullptr) return;
    n->cookie = new (p) sess::KeptCookie(c);
  } else {
    *n->cookie = c;
  }
}

cache_zone_t* usable(const ngx_shm_zone_t* zone) {
  auto* ctx = static_cast<cache_zone_t*>(zone->data);
  if (ctx == nullptr || ctx->sh == nullptr || ctx->sh->generation != ctx->generation) {
    return nullptr;
  }
  return ctx;
}

}  // namespace

// The smallest zone: eight pages (as nginx's own zones), room for the slab's own tables.
static size_t min_zone_size() { return 8 * ngx_pagesize; }

char* session_redis_cache_directive(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  return guard<char*>(cf->log, conf_error(), [&]() -> char* {
    if (lcf->redis_cache != NGX_CONF_UNSET_PTR) return const_cast<char*>("is duplicate");
    auto* value = static_cast<ngx_str_t*>(cf->args->elts);
    if (cf->args->nelts == 2 && sv(value[1]) == "off") {
      lcf->redis_cache = nullptr;
      return NGX_CONF_OK;
    }

    // NAME:SIZE
    const ngx_str_t& spec = value[1];
    u_char* colon = static_cast<u_char*>(ngx_strlchr(spec.data, spec.data + spec.len, ':'));
    if (colon == nullptr || colon == spec.data) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "invalid zone \"%V\" in \"session_redis_cache\" (use NAME:SIZE or off)",
                         &spec);
      return conf_error();
    }
    ngx_str_t name = {static_cast<size_t>(colon - spec.data), spec.data};
    ngx_str_t size_text = {static_cast<size_t>(spec.data + spec.len - colon - 1), colon + 1};
    ssize_t size = ngx_parse_size(&size_text);
    if (size == NGX_ERROR) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "invalid zone size \"%V\" in \"session_redis_cache\"", &size_text);
      return conf_error();
    }
    if (static_cast<size_t>(size) < min_zone_size()) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "session_redis_cache zone \"%V\" is too small (%V; at least %uzk)",
                         &name, &size_text, min_zone_size() / 1024);
      return conf_error();
    }

    ngx_msec_t max_age = 60000;
    for (ngx_uint_t i = 2; i < cf->args->nelts; i++) {
      std::string_view arg = sv(value[i]);
      if (arg.substr(0, 8) == "max_age=") {
        ngx_str_t t = {value[i].len - 8, value[i].data + 8};
        ngx_int_t ms = ngx_parse_time(&t, 0);
        if (ms == NGX_ERROR || ms <= 0 || ms > 86400000) {
          ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                             "invalid max_age \"%V\" in \"session_redis_cache\" "
                             "(a time from 1ms to 1d)", &t);
          return conf_error();
        }
        max_age = static_cast<ngx_msec_t>(ms);
        continue;
      }
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "invalid parameter \"%V\" in \"session_redis_cache\"", &value[i]);
      return conf_error();
    }

    auto* cache = static_cast<redis_cache_t*>(ngx_pcalloc(cf->pool, sizeof(redis_cache_t)));
    auto* ctx = static_cast<cache_zone_t*>(ngx_pcalloc(cf->pool, sizeof(cache_zone_t)));
    if (cache == nullptr || ctx == nullptr) return conf_error();
    cache->zone = ngx_shared_memory_add(cf, &name, static_cast<size_t>(size),
                                        &ngx_http_session_module);
    if (cache->zone == nullptr) return conf_error();
    if (cache->zone->data == nullptr) {  // else: named by another location already (same size:
      cache->zone->init = init_zone;     // nginx checked); max_age is each location's own
      cache->zone->data = ctx;
    }
    cache->max_age = max_age;
    lcf->redis_cache = cache;
    return NGX_CONF_OK;
  });
}

bool redis_cache_merge(ngx_conf_t* cf, loc_conf_t* conf) noexcept {
  if (conf->redis_cache == nullptr) return true;
  if (conf->store != STORE_REDIS) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_redis_cache\" requires \"session_store redis\"");
    return false;
  }
  return true;
}

bool redis_cache_attach(ngx_conf_t* cf, loc_conf_t* conf) noexcept {
  if (conf->redis_cache == nullptr || conf->redis == nullptr) return true;
  redis_endpoint_t* ep = conf->redis;
  if (ep->cache_zones == nullptr) {
    ep->cache_zones = ngx_array_create(cf->pool, 2, sizeof(ngx_shm_zone_t*));
    if (ep->cache_zones == nullptr) return false;
    ep->cache_min_max_age = conf->redis_cache->max_age;
  }
  ep->cache_min_max_age = ngx_min(ep->cache_min_max_age, conf->redis_cache->max_age);
  auto* ctx = static_cast<cache_zone_t*>(conf->redis_cache->zone->data);
  if (ctx->endpoint != nullptr && ctx->endpoint != ep) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "session_redis_cache zone \"%V\" is used with two different "
                       "\"session_redis\" configurations (\"%V\" and \"%V\"): give each "
                       "its own zone",
                       &conf->redis_cache->zone->shm.name, redis_endpoint_name(ctx->endpoint),
                       redis_endpoint_name(ep));
    return false;
  }
  ctx->endpoint = ep;
  ctx->max_age = ctx->max_age == 0 ? conf->redis_cache->max_age
                                   : ngx_min(ctx->max_age, conf->redis_cache->max_age);
  auto** zones = static_cast<ngx_shm_zone_t**>(ep->cache_zones->elts);
  for (ngx_uint_t i = 0; i < ep->cache_zones->nelts; i++) {
    if (zones[i] == conf->redis_cache->zone) return true;
  }
  auto** slot = static_cast<ngx_shm_zone_t**>(ngx_array_push(ep->cache_zones));
  if (slot == nullptr) return false;
  *slot = conf->redis_cache->zone;
  return true;
}

uint64_t redis_cache_epoch(const ngx_shm_zone_t* zone) {
  auto* ctx = static_cast<const cache_zone_t*>(zone->data);
  return ctx->sh != nullptr ? static_cast<uint64_t>(ctx->sh->epoch) : 0;
}

void redis_cache_flush(ngx_shm_zone_t* zone) {
  auto* ctx = static_cast<cache_zone_t*>(zone->data);
  if (ctx->sh != nullptr) ngx_atomic_fetch_add(&ctx->sh->epoch, 1);
  metric(sess::Metric::CacheFlushes);
}

bool redis_cache_zone_current(const ngx_shm_zone_t* zone) { return usable(zone) != nullptr; }

ngx_msec_t redis_cache_zone_max_age(const ngx_shm_zone_t* zone) {
  return static_cast<const cache_zone_t*>(zone->data)->max_age;
}

bool redis_cache_heartbeat(ngx_shm_zone_t* zone, bool stalled_ok) {
  cache_zone_t* ctx = usable(zone);
  if (ctx == nullptr || ngx_worker >= kMaxWorkers) return true;
  if (!stalled_ok && !beat_recent(ctx->sh, ngx_current_msec) &&
      ctx->sh->heartbeat[ngx_worker] != 0) {
    return false;  // not before the event loop read what arrived while this worker stood still
  }
  ctx->sh->heartbeat[ngx_worker] = ngx_current_msec;
  return true;
}

void redis_cache_init_module(ngx_cycle_t* cycle) {
  // The configuration is in place (init_module runs once nginx opened everything): its zones
  // start empty (DESIGN.md: "Reload starts from an empty zone"), and workers of the previous
  // configuration (finishing their requests, or killed without exiting) are shut out.
  ngx_list_part_t* part = &cycle->shared_memory.part;
  auto* zones = static_cast<ngx_shm_zone_t*>(part->elts);
  for (ngx_uint_t i = 0;; i++) {
    if (i >= part->nelts) {
      if (part->next == nullptr) break;
      part = part->next;
      zones = static_cast<ngx_shm_zone_t*>(part->elts);
      i = 0;
    }
    if (zones[i].tag != &ngx_http_session_module || zones[i].init != init_zone) continue;
    auto* ctx = static_cast<cache_zone_t*>(zones[i].data);
    if (ctx == nullptr || ctx->sh == nullptr) continue;
    ngx_atomic_fetch_add(&ctx->sh->epoch, 1);
    ctx->generation = ngx_atomic_fetch_add(&ctx->sh->generation, 1) + 1;
    empty_zone(ctx);
  }
}

bool redis_cache_zone_get(ngx_shm_zone_t* zone, std::string_view key, uint64_t epoch,
                          uint64_t now_ms, cache_reader_pt read, void* arg,
                          const cache_cookie_t* cookie, bool keep_cookie) {
  cache_zone_t* ctx = usable(zone);
  if (ctx == nullptr) return false;
  uint32_t hash = key_hash(ctx->sh, key);
  const bool with_cookie = cookie != nullptr;
  uint64_t binding = 0;
  const bool keepable = binding_of(ctx->sh, cookie, &binding);
  bool hit = false;
  ngx_shmtx_lock(&ctx->shpool->mutex);
  cache_node_t* n = find(ctx->sh, key, hash);
  if (n != nullptr) {
    if (n->epoch != epoch || now_ms >= n->expires_ms) {
      remove_node(ctx, n);  // dead: flushed, or ended
    } else if (!filler_alive(ctx->sh, n, static_cast<ngx_msec_t>(now_ms))) {
      // Its invalidations go to a worker that is not running: not served (this worker's read
      // replaces it).
    } else if (with_cookie && !keep_cookie &&
               !(keepable && sess::kept_cookie_holds(n->cookie, binding, cookie->proof))) {
      // Not the cookie it keeps: the caller verifies it (and reads the entry then).
    } else if (read(std::string_view(reinterpret_cast<const char*>(n->bytes) + n->key_len,
                                     n->data_len),
                    arg)) {
      hit = true;
      if (keepable && keep_cookie) keep(ctx, n, sess::kept_cookie_with(binding, cookie->proof));
      ngx_queue_remove(&n->lru);
      ngx_queue_insert_head(&ctx->sh->lru, &n->lru);
    } else {
      remove_node(ctx, n);  // bytes this worker cannot use (or out of memory): read from Redis
    }
  }
  ngx_shmtx_unlock(&ctx->shpool->mutex);
  return hit;
}

void redis_cache_zone_erase(ngx_shm_zone_t* zone, std::string_view key) {
  auto* ctx = static_cast<cache_zone_t*>(zone->data);
  if (ctx == nullptr || ctx->sh == nullptr) return;  // (any generation: erasing is always safe)
  uint32_t hash = key_hash(ctx->sh, key);
  ngx_shmtx_lock(&ctx->shpool->mutex);
  if (cache_node_t* n = find(ctx->sh, key, hash)) remove_node(ctx, n);
  ngx_shmtx_unlock(&ctx->shpool->mutex);
}

bool redis_cache_zone_put(ngx_shm_zone_t* zone, std::string_view key, uint64_t epoch,
                          uint64_t expires_ms, std::string_view record,
                          const cache_cookie_t* cookie) {
  cache_zone_t* ctx = usable(zone);
  if (ctx == nullptr || ngx_worker >= kMaxWorkers) return false;
  size_t size = offsetof(cache_node_t, bytes) + key.size() + record.size();
  uint32_t hash = key_hash(ctx->sh, key);
  ngx_shmtx_lock(&ctx->shpool->mutex);
  // (Renewed only while recent: after a stall, the heartbeat timer renews it once the event loop
  // has read what arrived meanwhile - redis_cache_heartbeat.)
  if (beat_recent(ctx->sh, ngx_current_msec)) ctx->sh->heartbeat[ngx_worker] = ngx_current_msec;
  if (cache_node_t* old = find(ctx->sh, key, hash)) remove_node(ctx, old);
  // A record larger than an eighth of the zone is not stored: it would evict everything else.
  void* p = size <= ctx->max_record ? ngx_slab_alloc_locked(ctx->shpool, size) : nullptr;
  // Full: evict from the least recently used end until it fits, a bounded number of entries
  // (slab pages of other sizes may still be held by live entries).
  for (int evicted = 0; p == nullptr && size <= ctx->max_record && evicted < 64 &&
                        !ngx_queue_empty(&ctx->sh->lru);) {
    for (int i = 0; i < 4 && !ngx_queue_empty(&ctx->sh->lru); i++, evicted++) {
      ngx_queue_t* q = ngx_queue_last(&ctx->sh->lru);
      remove_node(ctx, ngx_queue_data(q, cache_node_t, lru));
      metric(sess::Metric::CacheEvictions);
    }
    p = ngx_slab_alloc_locked(ctx->shpool, size);
  }
  if (p != nullptr) {
    auto* n = static_cast<cache_node_t*>(p);
    n->hash = hash;
    n->epoch = epoch;
    n->expires_ms = expires_ms;
    n->filler = static_cast<uint16_t>(ngx_worker);
    n->key_len = static_cast<uint32_t>(key.size());
    n->data_len = static_cast<uint32_t>(record.size());
    n->cookie = nullptr;
    ngx_memcpy(n->bytes, key.data(), key.size());
    ngx_memcpy(n->bytes + key.size(), record.data(), record.size());
    cache_node_t** chain = chain_of(ctx->sh, hash);
    n->next = *chain;
    *chain = n;
    ngx_queue_insert_head(&ctx->sh->lru, &n->lru);
    ctx->sh->entries++;
    uint64_t binding;
    if (binding_of(ctx->sh, cookie, &binding)) {
      keep(ctx, n, sess::kept_cookie_with(binding, cookie->proof));
    }
  }
  ngx_shmtx_unlock(&ctx->shpool->mutex);
  return p != nullptr;
}

ngx_int_t var_cache_status(ngx_http_request_t* r, ngx_http_variable_value_t* v,
                           uintptr_t) noexcept {
  // The request's own session (a subrequest under another binding has its own; nginx shows the
  // main request's here, as $session_* do for a request that did not load one).
  ctx_t* ctx = get_ctx(r, false);
  auto st = ctx != nullptr ? static_cast<sess::CacheStatus>(ctx->s.cache_status)
                           : sess::CacheStatus::Empty;
  std::string_view name = sess::cache_status_name(st);
  v->len = name.size();
  v->data = const_cast<u_char*>(reinterpret_cast<const u_char*>(name.data()));
  v->valid = 1;
  v->no_cacheable = 1;
  v->not_found = 0;
  return NGX_OK;
}

}  // namespace ngx_session
