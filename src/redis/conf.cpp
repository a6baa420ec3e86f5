// ngx_http_session_module: session_redis and session_redis_tls*, and the endpoints they make.
//
//   session_redis host:port | unix:/path [db=N] [username=U] [password_file=F];
//   session_redis sentinel=NAME host:port [host:port ...] [db=N] [username=U]
//                 [password_file=F] [sentinel_username=U] [sentinel_password_file=F];
//   session_redis cluster host:port [host:port ...] [username=U] [password_file=F];
//
// Addresses are resolved here, when the configuration is read (never in a worker). A location
// that uses the Redis store gets an endpoint - the deployment plus its TLS settings - when it
// is merged; equal endpoints are shared, and each worker keeps one client per endpoint.

#include "redis.h"

#include <cstdio>
#include <string>

extern "C" {
#include <sys/un.h>
}

namespace ngx_session {
namespace {

char* conf_error() { return static_cast<char*>(NGX_CONF_ERROR); }

bool arg_value(const ngx_str_t& arg, std::string_view key, ngx_str_t* val) {
  if (arg.len < key.size() || sv(arg).substr(0, key.size()) != key) return false;
  val->data = arg.data + key.size();
  val->len = arg.len - key.size();
  return true;
}

// The first line of a password file.
bool read_password_file(ngx_conf_t* cf, ngx_str_t* directive, ngx_str_t path, ngx_str_t* out) {
  if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) return false;
  FILE* f = std::fopen(reinterpret_cast<const char*>(path.data), "rb");
  if (f == nullptr) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "\"%V\" cannot open \"%V\"", directive,
                       &path);
    return false;
  }
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0 && text.size() < 65536) text.append(buf, n);
  std::fclose(f);
  size_t end = text.find_first_of("\r\n");
  if (end != std::string::npos) text.resize(end);
  if (text.empty()) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": password file \"%V\" is empty", directive,
                       &path);
    return false;
  }
  return pool_str(cf->pool, text, out);
}

bool is_ip_literal(std::string_view host) {
  if (host.empty() || host.size() > 45) return false;
  char buf[64];
  ngx_memcpy(buf, host.data(), host.size());
  buf[host.size()] = '\0';
  unsigned char tmp[16];
  return inet_pton(AF_INET, buf, tmp) == 1 || inet_pton(AF_INET6, buf, tmp) == 1;
}

// Parses and resolves one address ("host:port", "[v6]:port", "unix:/path").
bool parse_address(ngx_conf_t* cf, ngx_str_t* directive, const ngx_str_t& text, bool unix_ok,
                   redis_addr_t* out) {
  ngx_url_t u;
  ngx_memzero(&u, sizeof(u));
  u.url = text;
  u.default_port = 6379;
  if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
    if (u.err) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s in \"%V\"", directive, u.err, &text);
    }
    return false;
  }
  if (u.naddrs == 0) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": no address for \"%V\"", directive, &text);
    return false;
  }
  out->text = text;
  out->addr = u.addrs[0];
  if (u.addrs[0].sockaddr->sa_family == AF_UNIX) {
    if (!unix_ok) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": \"%V\": a unix socket cannot be used here",
                         directive, &text);
      return false;
    }
    out->host = ngx_null_string;
    out->host_is_ip = false;
    return true;
  }
  // The host as written (without brackets), for TLS names.
  std::string_view host = sv(u.host);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (!pool_str(cf->pool, std::string(host) + '\0', &out->host)) return false;
  out->host.len--;
  out->host_is_ip = is_ip_literal(host);
  return true;
}

}  // namespace

char* session_redis_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  return guard<char*>(cf->log, conf_error(), [&]() -> char* {
    auto* lcf = static_cast<loc_conf_t*>(conf);
    if (lcf->redis_spec != NGX_CONF_UNSET_PTR) return const_cast<char*>("is duplicate");
    auto* value = static_cast<ngx_str_t*>(cf->args->elts);
    auto* spec = static_cast<redis_spec_t*>(ngx_pcalloc(cf->pool, sizeof(redis_spec_t)));
    if (spec == nullptr) return conf_error();
    if (ngx_array_init(&spec->addrs, cf->pool, 3, sizeof(redis_addr_t)) != NGX_OK) {
      return conf_error();
    }
    spec->topology = Topology::Standalone;
    bool has_db = false;

    // The arguments, for logs.
    std::string text;
    for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
      if (sv(value[i]).find("password") != std::string_view::npos) continue;
      if (!text.empty()) text += ' ';
      text.append(sv(value[i]));
    }
    if (!pool_str(cf->pool, text, &spec->text)) return conf_error();

    for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
      const ngx_str_t& a = value[i];
      ngx_str_t v;
      if (i == 1 && sv(a) == "cluster") {
        spec->topology = Topology::Cluster;
      } else if (i == 1 && arg_value(a, "sentinel=", &v)) {
        if (v.len == 0) goto invalid;
        spec->topology = Topology::Sentinel;
        spec->master_name = v;
      } else if (arg_value(a, "db=", &v)) {
        spec->db = ngx_atoi(v.data, v.len);
        if (spec->db == NGX_ERROR || spec->db > 1000000) goto invalid;
        has_db = true;
      } else if (arg_value(a, "password_file=", &v)) {
        if (v.len == 0 || !read_password_file(cf, &cmd->name, v, &spec->password)) {
          return conf_error();
        }
      } else if (arg_value(a, "username=", &v)) {
        if (v.len == 0) goto invalid;
        spec->username = v;
      } else if (arg_value(a, "sentinel_password_file=", &v)) {
        if (v.len == 0 || !read_password_file(cf, &cmd->name, v, &spec->sentinel_password)) {
          return conf_error();
        }
      } else if (arg_value(a, "sentinel_username=", &v)) {
        if (v.len == 0) goto invalid;
        spec->sentinel_username = v;
      } else if (sv(a).find('=') != std::string_view::npos) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": unknown parameter \"%V\"", &cmd->name,
                           &a);
        return conf_error();
      } else {
        auto* addr = static_cast<redis_addr_t*>(ngx_array_push(&spec->addrs));
        if (addr == nullptr) return conf_error();
        if (!parse_address(cf, &cmd->name, a, spec->topology == Topology::Standalone, addr)) {
          return conf_error();
        }
      }
      continue;
    invalid:
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": invalid parameter \"%V\"", &cmd->name, &a);
      return conf_error();
    }

    const char* problem = nullptr;
    if (spec->addrs.nelts == 0) {
      problem = spec->topology == Topology::Sentinel  ? "sentinel= needs the sentinels' addresses"
                : spec->topology == Topology::Cluster ? "cluster needs the seed nodes' addresses"
                                                      : "needs an address";
    } else if (spec->topology == Topology::Standalone && spec->addrs.nelts > 1) {
      problem = "takes one address (use sentinel=NAME or cluster for several)";
    } else if (spec->topology == Topology::Cluster && has_db) {
      problem = "db= cannot be used with cluster (Redis Cluster has one database)";
    } else if (spec->topology != Topology::Sentinel &&
               (spec->sentinel_username.len || spec->sentinel_password.len)) {
      problem = "sentinel_username= and sentinel_password_file= need sentinel=NAME";
    } else if (spec->username.len && !spec->password.len) {
      problem = "username= requires password_file=";
    } else if (spec->sentinel_username.len && !spec->sentinel_password.len) {
      problem = "sentinel_username= requires sentinel_password_file=";
    }
    if (problem != nullptr) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s", &cmd->name, problem);
      return conf_error();
    }
    lcf->redis_spec = spec;
    return NGX_CONF_OK;
  });
}

namespace {

#if (NGX_SSL)
int verify_callback(int, X509_STORE_CTX*) noexcept { return 1; }  // judged after the handshake

// The client SSL context of an endpoint: TLS 1.2 and 1.3, the trusted CAs (or the system's),
// an optional client certificate. Verification happens after the handshake (node.cpp) so that
// IP addresses can be checked against IP SANs.
ngx_ssl_t* make_ssl(ngx_conf_t* cf, const redis_tls_conf_t* tls) {
  auto* ssl = static_cast<ngx_ssl_t*>(ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t)));
  if (ssl == nullptr) return nullptr;
  ssl->log = cf->log;
  if (ngx_ssl_create(ssl, NGX_SSL_TLSv1_2 | NGX_SSL_TLSv1_3, nullptr) != NGX_OK) return nullptr;
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(cf->pool, 0);
  if (cln == nullptr) {
    ngx_ssl_cleanup_ctx(ssl);
    return nullptr;
  }
  cln->handler = ngx_ssl_cleanup_ctx;
  cln->data = ssl;
  // Sessions are kept per node by node.cpp (save_session), not in OpenSSL's internal cache.
  if (ngx_ssl_client_session_cache(cf, ssl, 1) != NGX_OK) return nullptr;
  if (tls->certificate.len) {
    if (tls->certificate_key.len == 0) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"session_redis_tls_certificate\" requires "
                         "\"session_redis_tls_certificate_key\"");
      return nullptr;
    }
    ngx_str_t cert = tls->certificate, key = tls->certificate_key;
    if (ngx_ssl_certificate(cf, ssl, &cert, &key, nullptr) != NGX_OK) return nullptr;
  } else if (tls->certificate_key.len) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_redis_tls_certificate_key\" requires "
                       "\"session_redis_tls_certificate\"");
    return nullptr;
  }
  if (tls->verify) {
    if (tls->trusted_certificate.len) {
      ngx_str_t file = tls->trusted_certificate;
      if (ngx_ssl_trusted_certificate(cf, ssl, &file, 4) != NGX_OK) return nullptr;
    } else if (SSL_CTX_set_default_verify_paths(ssl->ctx) != 1) {
      ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                    const_cast<char*>("SSL_CTX_set_default_verify_paths() failed"));
      return nullptr;
    } else {
      SSL_CTX_set_verify_depth(ssl->ctx, 4);
    }
    // Verify, but judge after the handshake (node.cpp): IP addresses need their IP SANs checked,
    // and the error is logged with the node's address.
    SSL_CTX_set_verify(ssl->ctx, SSL_VERIFY_PEER, verify_callback);
  }
  return ssl;
}
#endif

bool same_str(const ngx_str_t& a, const ngx_str_t& b) { return sv(a) == sv(b); }

// Two session_redis directives that name the same deployment the same way share a client.
bool same_spec(const redis_spec_t* a, const redis_spec_t* b) {
  if (a == b) return true;
  if (a->topology != b->topology || a->db != b->db || !same_str(a->master_name, b->master_name) ||
      !same_str(a->username, b->username) || !same_str(a->password, b->password) ||
      !same_str(a->sentinel_username, b->sentinel_username) ||
      !same_str(a->sentinel_password, b->sentinel_password) ||
      a->addrs.nelts != b->addrs.nelts) {
    return false;
  }
  auto* x = static_cast<redis_addr_t*>(a->addrs.elts);
  auto* y = static_cast<redis_addr_t*>(b->addrs.elts);
  for (ngx_uint_t i = 0; i < a->addrs.nelts; i++) {
    if (ngx_cmp_sockaddr(x[i].addr.sockaddr, x[i].addr.socklen, y[i].addr.sockaddr,
                         y[i].addr.socklen, 1) != NGX_OK ||
        !same_str(x[i].host, y[i].host)) {
      return false;
    }
  }
  return true;
}

bool same_tls(const redis_tls_conf_t& a, const redis_tls_conf_t& b) {
  if (a.enable != b.enable) return false;
  if (!a.enable) return true;
  return a.verify == b.verify && same_str(a.trusted_certificate, b.trusted_certificate) &&
         same_str(a.name, b.name) && same_str(a.certificate, b.certificate) &&
         same_str(a.certificate_key, b.certificate_key);
}

}  // namespace

redis_endpoint_t* redis_endpoint(ngx_conf_t* cf, const redis_spec_t* spec,
                                 const redis_tls_conf_t* tls) {
  auto* mcf = static_cast<main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_session_module));
  auto** eps = static_cast<redis_endpoint_t**>(mcf->endpoints.elts);
  for (ngx_uint_t i = 0; i < mcf->endpoints.nelts; i++) {
    if (same_spec(eps[i]->spec, spec) && same_tls(eps[i]->tls, *tls)) return eps[i];
  }
  auto* ep = static_cast<redis_endpoint_t*>(ngx_pcalloc(cf->pool, sizeof(redis_endpoint_t)));
  auto** slot = static_cast<redis_endpoint_t**>(ngx_array_push(&mcf->endpoints));
  if (ep == nullptr || slot == nullptr) return nullptr;
  ep->spec = const_cast<redis_spec_t*>(spec);
  ep->tls = *tls;
  if (tls->enable) {
#if (NGX_SSL)
    if ((ep->ssl = make_ssl(cf, tls)) == nullptr) return nullptr;
#else
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_redis_tls\" needs nginx built with the SSL module");
    return nullptr;
#endif
  }
  *slot = ep;
  return ep;
}

const ngx_str_t* redis_endpoint_name(const redis_endpoint_t* ep) { return &ep->spec->text; }

}  // namespace ngx_session
