// ngx_http_session_module: session_redis_cache - the shared-memory zone and its configuration.
//
//   session_redis_cache NAME:SIZE [max_age=T] | off;      (default off; max_age default 60s)
//
// This file holds what is configured and allocated so far: the directive, the zone (nginx slab,
// shared by all workers) and its header with the flush epoch of the core's CacheCoherence
// (src/core/redis_cache.h), and the zones' attachment to their endpoint: a caching endpoint's
// client keeps the invalidation link in each worker (client.cpp: CLIENT TRACKING REDIRECT
// towards a SUBSCRIBE __redis__:invalidate connection per node). Nothing reads or fills the zone
// yet: lookups and writes do not use it, and $session_cache_status is empty, until entries are
// stored (CACHE_NOTES.md).

#include "redis.h"

namespace ngx_session {
namespace {

char* conf_error() { return static_cast<char*>(NGX_CONF_ERROR); }

// The zone's header, first in its slab pool. A reload that keeps the zone starts from an empty
// one all the same (DESIGN.md: "Reload starts from an empty zone"): the epoch moves on.
struct cache_shm_t {
  ngx_atomic_t epoch;        // CacheCoherence's SharedEpoch: entries of other epochs are dead
};

struct cache_zone_t {
  ngx_slab_pool_t* shpool;
  cache_shm_t* sh;
};

ngx_int_t init_zone(ngx_shm_zone_t* zone, void* data) noexcept {
  auto* ctx = static_cast<cache_zone_t*>(zone->data);
  auto* old = static_cast<cache_zone_t*>(data);
  if (old != nullptr) {
    // Kept across a reload: the entries are dead from now on.
    ctx->shpool = old->shpool;
    ctx->sh = old->sh;
    ngx_atomic_fetch_add(&ctx->sh->epoch, 1);
    return NGX_OK;
  }
  ctx->shpool = reinterpret_cast<ngx_slab_pool_t*>(zone->shm.addr);
  if (zone->shm.exists) {
    ctx->sh = static_cast<cache_shm_t*>(ctx->shpool->data);
    ngx_atomic_fetch_add(&ctx->sh->epoch, 1);
    return NGX_OK;
  }
  ctx->sh = static_cast<cache_shm_t*>(ngx_slab_calloc(ctx->shpool, sizeof(cache_shm_t)));
  if (ctx->sh == nullptr) return NGX_ERROR;
  ctx->shpool->data = ctx->sh;
  ctx->sh->epoch = 1;
  static const char kLog[] = " in session_redis_cache zone \"";
  const size_t len = sizeof(kLog) - 1 + zone->shm.name.len + 2;
  auto* p = static_cast<u_char*>(ngx_slab_alloc(ctx->shpool, len));
  if (p == nullptr) return NGX_ERROR;
  ctx->shpool->log_ctx = p;
  ngx_sprintf(p, "%s%V\"%Z", kLog, &zone->shm.name);
  return NGX_OK;
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
}

ngx_int_t var_cache_status(ngx_http_request_t*, ngx_http_variable_value_t* v, uintptr_t) noexcept {
  // Nothing is served from the cache yet: the status is empty (see the top of this file).
  v->len = 0;
  v->data = const_cast<u_char*>(reinterpret_cast<const u_char*>(""));
  v->valid = 1;
  v->no_cacheable = 1;
  v->not_found = 0;
  return NGX_OK;
}

}  // namespace ngx_session
