// ngx_http_session_module: signed identity tokens for upstreams - session_jwt_key,
// session_jwt_claims, session_jwt_lifetime, $session_jwt, and the session_jwks location handler.
//
//   session_jwt_key /etc/nginx/jwt.pem;                   # EC P-256 (ES256) or Ed25519 (EdDSA)
//   location /app/ { proxy_set_header X-Session-Jwt $session_jwt; proxy_pass ...; }
//   location = /.well-known/jwks.json { session_jwks; }
//
// The key is read and checked at configuration time (nginx -t; again on every reload) by the
// core (core/jwt.h), which also builds the tokens and decides when one may be reused: each worker
// keeps the tokens it signed, by what they say (issuer, user, claims, key, lifetime), and hands a
// token out again until half its lifetime has passed - signing is never done per request. The
// private key is never logged or served: error messages name the file only, and the file's bytes
// are wiped once parsed.

#include "ngx_http_session.h"

#include "core/jwt.h"
#include "core/rate_limit.h"

#include <openssl/crypto.h>

#include <cstdio>
#include <memory>

extern "C" {
#include <sys/stat.h>
}

namespace ngx_session {

struct jwt_key_t {
  sess::JwtKey* key;
  ngx_str_t path;
};

namespace {

char* conf_error() { return static_cast<char*>(NGX_CONF_ERROR); }
char* conf_msg(const char* m) { return const_cast<char*>(m); }

constexpr size_t kMaxKeyFile = 64 * 1024;  // a PEM key is well under 1 KiB
constexpr ngx_uint_t kMaxClaims = 64;

void delete_key(void* data) noexcept { delete static_cast<sess::JwtKey*>(data); }

// The key file's bytes, in a buffer of its own that is wiped when it goes (the private key must
// not linger in freed memory).
struct key_file_buf_t {
  std::unique_ptr<char[]> data{new char[kMaxKeyFile + 1]};
  size_t len = 0;
  ~key_file_buf_t() { OPENSSL_cleanse(data.get(), kMaxKeyFile + 1); }
};

// Reads path into buf. Logs (naming the directive and the file) and returns false on failure.
bool read_key_file(ngx_conf_t* cf, ngx_command_t* cmd, const ngx_str_t& path,
                   key_file_buf_t* buf) {
  FILE* f = std::fopen(reinterpret_cast<const char*>(path.data), "rb");
  if (f == nullptr) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "\"%V\" cannot open \"%V\"", &cmd->name,
                       &path);
    return false;
  }
  buf->len = std::fread(buf->data.get(), 1, kMaxKeyFile + 1, f);
  bool ok = true;
  if (std::ferror(f)) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "\"%V\" cannot read \"%V\"", &cmd->name,
                       &path);
    ok = false;
  } else if (buf->len > kMaxKeyFile) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" \"%V\" is larger than %uz bytes (not a private key)", &cmd->name,
                       &path, kMaxKeyFile);
    ok = false;
  }
  std::fclose(f);
  return ok;
}

}  // namespace

// session_jwt_key file;
char* session_jwt_key_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept try {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->jwt_key != NGX_CONF_UNSET_PTR) return conf_msg("is duplicate");
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  auto* k = static_cast<jwt_key_t*>(ngx_pcalloc(cf->pool, sizeof(jwt_key_t)));
  if (k == nullptr) return conf_error();
  k->path = value[1];
  if (ngx_conf_full_name(cf->cycle, &k->path, 1) != NGX_OK) return conf_error();

  key_file_buf_t buf;
  if (!read_key_file(cf, cmd, k->path, &buf)) return conf_error();
  sess::JwtKeyError err = sess::JwtKeyError::None;
  std::string detail;
  std::unique_ptr<sess::JwtKey> key =
      sess::JwtKey::from_pem(std::string_view(buf.data.get(), buf.len), &err, &detail);
  if (key == nullptr) {
    switch (err) {
      case sess::JwtKeyError::Encrypted:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" \"%V\" is encrypted (nginx cannot ask for a passphrase: "
                           "store the key unencrypted, readable by root only)",
                           &cmd->name, &k->path);
        break;
      case sess::JwtKeyError::UnsupportedType:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" \"%V\": %s keys are not supported (use an EC P-256 key for "
                           "ES256 or an Ed25519 key for EdDSA)",
                           &cmd->name, &k->path, detail.c_str());
        break;
      case sess::JwtKeyError::UnsupportedCurve:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" \"%V\": EC curve %s is not supported (use an EC P-256 key "
                           "for ES256 or an Ed25519 key for EdDSA)",
                           &cmd->name, &k->path, detail.c_str());
        break;
      case sess::JwtKeyError::NotPrivateKey:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" \"%V\" holds no PEM private key (make one with "
                           "\"openssl genpkey -algorithm ed25519\" or \"openssl genpkey "
                           "-algorithm EC -pkeyopt ec_paramgen_curve:P-256\")",
                           &cmd->name, &k->path);
        break;
      default:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" \"%V\": the key cannot be used (OpenSSL failed)", &cmd->name,
                           &k->path);
        break;
    }
    return conf_error();
  }
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(cf->pool, 0);
  if (cln == nullptr) return conf_error();
  cln->handler = delete_key;
  cln->data = key.get();
  k->key = key.release();

  struct stat st;
  if (stat(reinterpret_cast<const char*>(k->path.data), &st) == 0 && (st.st_mode & S_IROTH)) {
    ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                       "\"%V\" \"%V\" is readable by every user of this machine (chmod o-r it)",
                       &cmd->name, &k->path);
  }
  lcf->jwt_key = k;
  return NGX_CONF_OK;
} catch (const std::exception& e) {
  ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s", &cmd->name, e.what());
  return conf_error();
}

// session_jwt_claims key ...;  ("user": the session_user_key, which is always the token's sub)
char* session_jwt_claims_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->jwt_claims != NGX_CONF_UNSET_PTR) return conf_msg("is duplicate");
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  if (cf->args->nelts - 1 > kMaxClaims) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": more than %ui claims", &cmd->name,
                       kMaxClaims);
    return conf_error();
  }
  ngx_array_t* claims = ngx_array_create(cf->pool, cf->args->nelts, sizeof(ngx_str_t));
  if (claims == nullptr) return conf_error();
  for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
    std::string_view name = sv(value[i]);
    if (!sess::session_key_valid(name)) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"%V\": invalid session key \"%V\" (use 1-64 of A-Z a-z 0-9 _)",
                         &cmd->name, &value[i]);
      return conf_error();
    }
    if (name == "iss" || name == "sub" || name == "iat" || name == "exp") {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"%V\": \"%V\" is a claim the module sets itself (the user is \"sub\": "
                         "list it as \"user\")",
                         &cmd->name, &value[i]);
      return conf_error();
    }
    for (ngx_uint_t j = 1; j < i; j++) {
      if (sv(value[j]) == name) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": \"%V\" is listed twice", &cmd->name,
                           &value[i]);
        return conf_error();
      }
    }
    if (name == "user") continue;  // the user is the token's sub, always
    auto* slot = static_cast<ngx_str_t*>(ngx_array_push(claims));
    if (slot == nullptr) return conf_error();
    *slot = value[i];
  }
  lcf->jwt_claims = claims;
  return NGX_CONF_OK;
}

// (Not in an anonymous namespace: is_jwks_endpoint compares a content handler with it.)
ngx_int_t jwks_handler(ngx_http_request_t* r) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_HTTP_INTERNAL_SERVER_ERROR, [&]() -> ngx_int_t {
    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
      if (push_header(r, "Allow", "GET, HEAD") == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
      return NGX_HTTP_NOT_ALLOWED;
    }
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) return rc;
    const loc_conf_t* lcf = loc_conf(r);
    if (lcf->jwt_key == nullptr) return NGX_HTTP_NOT_FOUND;  // (nginx -t refuses this)
    std::string_view doc = lcf->jwt_key->key->jwks();

    static const char kType[] = "application/json";
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type.data = reinterpret_cast<u_char*>(const_cast<char*>(kType));
    r->headers_out.content_type.len = sizeof(kType) - 1;
    r->headers_out.content_type_len = sizeof(kType) - 1;
    r->headers_out.content_type_lowcase = nullptr;
    r->headers_out.content_length_n = static_cast<off_t>(doc.size());
    // Verifiers may keep it a few minutes; a new key (reload) is found by its new kid.
    if (push_header(r, "Cache-Control", "max-age=300") == nullptr) {
      return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) return rc;

    auto* b = static_cast<ngx_buf_t*>(ngx_pcalloc(r->pool, sizeof(ngx_buf_t)));
    if (b == nullptr) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    // (The key lives with the configuration, which outlives the worker's requests.)
    b->pos = reinterpret_cast<u_char*>(const_cast<char*>(doc.data()));
    b->last = b->pos + doc.size();
    b->memory = 1;
    b->last_buf = r == r->main ? 1 : 0;
    b->last_in_chain = 1;
    ngx_chain_t out = {b, nullptr};
    return ngx_http_output_filter(r, &out);
  });
}

namespace {

// session_jwt_lifetime's bounds (after ngx_conf_set_sec_slot).
char* check_jwt_lifetime(ngx_conf_t*, void*, void* data) noexcept {
  const time_t t = *static_cast<time_t*>(data);
  if (t <= 0) return conf_msg("must be greater than 0");
  switch (sess::jwt_lifetime_check(static_cast<uint64_t>(t))) {
    case sess::JwtLifetime::TooShort:
      return conf_msg("must be at least 2s (iat and exp are whole seconds: a shorter token "
                      "could reach the upstream with less than half of its lifetime left)");
    case sess::JwtLifetime::TooLong:
      return conf_msg("must be at most 365d (1 year): a token cannot be revoked before its exp");
    default:
      return NGX_CONF_OK;
  }
}

}  // namespace

ngx_conf_post_t jwt_lifetime_post = {check_jwt_lifetime};

// session_jwks;
char* session_jwks_directive(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
      ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
  if (lcf->jwks == 1 || clcf->handler == jwks_handler) return conf_msg("is duplicate");
  clcf->handler = jwks_handler;
  lcf->jwks = 1;
  return NGX_CONF_OK;
}

bool jwt_merge(ngx_conf_t* cf, loc_conf_t* conf, const loc_conf_t* prev) noexcept {
  ngx_conf_merge_ptr_value(conf->jwt_key, prev->jwt_key, nullptr);
  ngx_conf_merge_ptr_value(conf->jwt_claims, prev->jwt_claims, nullptr);
  ngx_conf_merge_sec_value(conf->jwt_lifetime, prev->jwt_lifetime, 60);
  if (conf->jwks == NGX_CONF_UNSET) conf->jwks = 0;  // belongs to its location
  if (conf->jwks && conf->jwt_key == nullptr) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_jwks\" requires \"session_jwt_key\" (in its location or "
                       "inherited)");
    return false;
  }
  return true;
}

namespace {

sess::LogLimiter sign_log_limit(60);
sess::LogLimiter omit_log_limit(60);

// nginx's cached time in unix milliseconds (what the reuse check and iat are measured with).
uint64_t now_ms() {
  const ngx_time_t* tp = ngx_timeofday();
  return static_cast<uint64_t>(tp->sec) * 1000 + static_cast<uint64_t>(tp->msec);
}

const char* omit_reason(sess::JwtClaimOmit why) {
  switch (why) {
    case sess::JwtClaimOmit::NotJson: return "is not strict JSON";
    case sess::JwtClaimOmit::ControlByte: return "holds a control byte";
    case sess::JwtClaimOmit::DuplicateMember: return "has an object with two members of one name";
    default: return "cannot be signed";
  }
}

// This worker's tokens (made on first use, with a hash seed of its own).
sess::JwtCache* token_cache() {
  static std::unique_ptr<sess::JwtCache> cache;
  if (!cache) {
    uint64_t seed = 0;
    if (!sess::random_bytes(&seed, sizeof(seed))) seed = static_cast<uint64_t>(ngx_pid);
    cache = std::make_unique<sess::JwtCache>(seed);
  }
  return cache.get();
}

}  // namespace

// $session_jwt: empty without a key or a logged-in session.
ngx_int_t var_session_jwt(ngx_http_request_t* r, ngx_http_variable_value_t* v,
                          uintptr_t) noexcept {
  return guard<ngx_int_t>(r->connection->log, NGX_ERROR, [&]() -> ngx_int_t {
    set_var(v, reinterpret_cast<const u_char*>(""), 0);
    const loc_conf_t* lcf = loc_conf(r);
    if (lcf->jwt_key == nullptr) return NGX_OK;
    loaded_t* s = current_session(r);
    // The user exactly as $session_user shows it (session_user_key; empty for a value with a
    // control byte, which no upstream should be told is a user).
    if (!logged_in(r, s)) return NGX_OK;
    const sess::SessionData& data = s->view();
    const sess::SessionValue* user = sess::session_user(data, sv(lcf->user_key));
    if (!sess::jwt_subject_ok(user)) {
      ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                    "session key \"%V\" holds a control byte, $session_jwt is empty",
                    &lcf->user_key);
      return NGX_OK;
    }

    sess::JwtClaim claims[kMaxClaims];
    size_t n = 0;
    if (lcf->jwt_claims != nullptr) {
      auto* names = static_cast<ngx_str_t*>(lcf->jwt_claims->elts);
      for (ngx_uint_t i = 0; i < lcf->jwt_claims->nelts && n < kMaxClaims; i++) {
        claims[n].name = sv(names[i]);
        claims[n].value = data.get(sv(names[i]));
        n++;
      }
    }
    auto* cscf = static_cast<ngx_http_core_srv_conf_t*>(
        ngx_http_get_module_srv_conf(r, ngx_http_core_module));
    sess::JwtRequest req;
    req.key = lcf->jwt_key->key;
    req.lifetime = static_cast<uint64_t>(lcf->jwt_lifetime);
    req.iss = sv(cscf->server_name);
    req.sub = user->text;
    req.claims = claims;
    req.nclaims = n;

    pool_resource mr(r->pool);
    sess::pstring token(&mr);
    sess::JwtOmitted omitted;
    const sess::JwtIssue how = sess::jwt_issue(*token_cache(), req, now_ms(), token, &omitted);
    if (omitted.count != 0) {
      uint64_t more = 0;
      if (omit_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
        ngx_str_t name = {omitted.name.size(),
                          reinterpret_cast<u_char*>(const_cast<char*>(omitted.name.data()))};
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "session key \"%V\" %s: left out of $session_jwt (%uL more such lines "
                      "since the last)",
                      &name, omit_reason(omitted.reason), more);
      }
    }
    if (how == sess::JwtIssue::NoSubject) return NGX_OK;  // (jwt_subject_ok said so already)
    if (how == sess::JwtIssue::Failed) {
      uint64_t more = 0;
      if (sign_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "session: signing the token with \"%V\" failed, $session_jwt is empty "
                      "(%uL more since the last such line)",
                      &lcf->jwt_key->path, more);
      }
      return NGX_OK;
    }
    ngx_str_t copy;
    if (!pool_str(r->pool, token, &copy)) return NGX_ERROR;
    set_var(v, copy.data, copy.len);
    return NGX_OK;
  });
}

}  // namespace ngx_session
