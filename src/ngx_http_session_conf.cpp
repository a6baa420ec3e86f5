// ngx_http_session_module: the directives (handlers and the command table). Creating and merging
// the configuration is in ngx_http_session_merge.cpp.

#include "ngx_http_session.h"
#include "ngx_http_session_metrics.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "core/cookie_attrs.h"
#include "core/redirect.h"
#include "core/secret_file.h"
#include "redis/redis.h"

extern "C" {
#include <sys/stat.h>
}

namespace ngx_session {
namespace {

char* conf_error() { return static_cast<char*>(NGX_CONF_ERROR); }
char* conf_msg(const char* m) { return const_cast<char*>(m); }

constexpr size_t kMaxSecretFile = 1024 * 1024;

ngx_conf_enum_t store_values[] = {
    {ngx_string("cookie"), STORE_COOKIE},
    {ngx_string("redis"), STORE_REDIS},
    {ngx_null_string, 0},
};

ngx_conf_enum_t fail_values[] = {
    {ngx_string("closed"), FAIL_CLOSED},
    {ngx_string("open"), FAIL_OPEN},
    {ngx_null_string, 0},
};

// ngx_conf_set_enum_slot with an error that names the directive and the choices.
char* set_enum(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  auto* e = static_cast<ngx_conf_enum_t*>(cmd->post);
  for (ngx_uint_t i = 0; e[i].name.len != 0; i++) {
    if (e[i].name.len == value[1].len &&
        ngx_strcasecmp(e[i].name.data, value[1].data) == 0) {
      return ngx_conf_set_enum_slot(cf, cmd, conf);
    }
  }
  ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": invalid value \"%V\" (use \"%V\" or \"%V\")",
                     &cmd->name, &value[1], &e[0].name, &e[1].name);
  return conf_error();
}

// Reads a whole (small) file named in the configuration. Logs and returns false on failure.
bool read_conf_file(ngx_conf_t* cf, ngx_str_t* name, const ngx_str_t& path, std::string* out) {
  FILE* f = std::fopen(reinterpret_cast<const char*>(path.data), "rb");
  if (f == nullptr) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "\"%V\" cannot open \"%V\"", name, &path);
    return false;
  }
  char buf[4096];
  size_t n;
  bool ok = true;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    out->append(buf, n);
    if (out->size() > kMaxSecretFile) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" file \"%V\" is too large", name, &path);
      ok = false;
      break;
    }
  }
  if (ok && std::ferror(f)) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "\"%V\" cannot read \"%V\"", name, &path);
    ok = false;
  }
  std::fclose(f);
  return ok;
}

void delete_ring(void* data) noexcept { delete static_cast<sess::KeyRing*>(data); }

char* session_secret_file_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept try {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->secrets != NGX_CONF_UNSET_PTR) return conf_msg("is duplicate");

  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  auto* secrets = static_cast<secrets_t*>(ngx_pcalloc(cf->pool, sizeof(secrets_t)));
  if (secrets == nullptr) return conf_error();
  secrets->path = value[1];
  if (ngx_conf_full_name(cf->cycle, &secrets->path, 1) != NGX_OK) return conf_error();

  std::string text;
  if (!read_conf_file(cf, &cmd->name, secrets->path, &text)) return conf_error();

  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(cf->pool, 0);
  if (cln == nullptr) return conf_error();
  auto* ring = new (std::nothrow) sess::KeyRing();
  if (ring == nullptr) return conf_error();
  cln->handler = delete_ring;
  cln->data = ring;
  secrets->ring = ring;

  sess::SecretFile parsed;
  if (!sess::secret_file_parse(text, sess::KeyRing::kMinSecretLen, true, &parsed)) {
    switch (parsed.error) {
      case sess::SecretFileError::TooShort:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" \"%V\": line %uz is shorter than %uz bytes "
                           "(use e.g. \"openssl rand -base64 48\")",
                           &cmd->name, &secrets->path, parsed.error_line,
                           sess::KeyRing::kMinSecretLen);
        break;
      case sess::SecretFileError::BadBase64:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" \"%V\": line %uz: invalid base64: data",
                           &cmd->name, &secrets->path, parsed.error_line);
        break;
      case sess::SecretFileError::Binary:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" \"%V\": line %uz holds a NUL byte (write binary keys as "
                           "\"base64:<data>\")",
                           &cmd->name, &secrets->path, parsed.error_line);
        break;
      default:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" \"%V\" has no secret", &cmd->name,
                           &secrets->path);
        break;
    }
    return conf_error();
  }
  // Short secrets are Flask's (session_format flask accepts them with a warning, native fails:
  // decided at merge, where the format is known). The ring - which also signs CSRF tokens in
  // flask mode - gets them behind a fixed 32-byte prefix, so that HKDF has its minimum input;
  // they keep only the strength they have.
  static constexpr std::string_view kShortPrefix = "ngx_http_session_module/short-k:";
  static_assert(kShortPrefix.size() == sess::KeyRing::kMinSecretLen);
  for (size_t i = 0; i < parsed.secrets.size(); i++) {
    std::string stretched;
    std::string_view secret = parsed.secrets[i];
    if (secret.size() < sess::KeyRing::kMinSecretLen) {
      if (secrets->short_line == 0) secrets->short_line = parsed.lines[i];
      secrets->short_count++;
      stretched.append(kShortPrefix).append(secret);
      secret = stretched;
    }
    if (!ring->add_secret(secret)) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" \"%V\": line %uz: key derivation failed",
                         &cmd->name, &secrets->path, parsed.lines[i]);
      return conf_error();
    }
  }
  if (!flask_secrets_init(cf, secrets, parsed.secrets)) return conf_error();
  struct stat st;
  if (stat(reinterpret_cast<const char*>(secrets->path.data), &st) == 0 &&
      (st.st_mode & S_IROTH)) {
    ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                       "\"%V\" \"%V\" is readable by every user of this machine (chmod o-r it)",
                       &cmd->name, &secrets->path);
  }
  lcf->secrets = secrets;
  return NGX_CONF_OK;
} catch (const std::exception& e) {
  ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s", &cmd->name, e.what());
  return conf_error();
}

constexpr size_t kMaxCookieNameLen = 256;

// Parses the attribute words of session_cookie / cookie_set / cookie_delete (one grammar: the
// core's cookie_attrs_parse). Logs and returns false on error.
bool parse_attrs(ngx_conf_t* cf, ngx_command_t* cmd, sess::CookieDirective d, ngx_uint_t first,
                 sess::CookieAttrSpec* spec) {
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  size_t n = cf->args->nelts - first;
  std::string_view args[64];
  if (n > 64) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": too many attributes", &cmd->name);
    return false;
  }
  for (size_t i = 0; i < n; i++) args[i] = sv(value[first + i]);
  sess::CookieAttrError err;
  if (!sess::cookie_attrs_parse(d, args, n, spec, &err)) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s \"%V\"", &cmd->name, err.message,
                       &value[first + err.index]);
    return false;
  }
  return true;
}

bool check_cookie_name(ngx_conf_t* cf, ngx_command_t* cmd, const ngx_str_t& name) {
  if (!sess::cookie_name_valid(sv(name)) || name.len > kMaxCookieNameLen) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\": invalid cookie name \"%V\" (an HTTP token of at most %uz bytes)",
                       &cmd->name, &name, kMaxCookieNameLen);
    return false;
  }
  return true;
}

char* session_cookie_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->cookie.name.data != nullptr) return conf_msg("is duplicate");
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  if (!check_cookie_name(cf, cmd, value[1])) return conf_error();

  sess::CookieAttrSpec spec;
  if (!parse_attrs(cf, cmd, sess::CookieDirective::SessionCookie, 2, &spec)) return conf_error();
  // Defaults: path=/ httponly samesite=lax secure=auto.
  if (!spec.has_path) spec.path = "/";
  if (!spec.has_httponly) spec.httponly = true;
  if (!spec.has_samesite) spec.samesite = sess::SameSite::Lax;
  if (!spec.has_secure) spec.secure = sess::Secure::Auto;
  if (const char* why = sess::cookie_attrs_check(sv(value[1]), spec)) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s", &cmd->name, why);
    return conf_error();
  }
  cookie_conf_t c{};
  c.name = value[1];
  c.path = ngx_str(spec.path);
  c.domain = ngx_str(spec.domain);
  c.max_age = spec.has_max_age ? static_cast<time_t>(spec.max_age) : -1;
  c.secure = spec.secure == sess::Secure::On    ? SECURE_ON
             : spec.secure == sess::Secure::Auto ? SECURE_AUTO
                                                 : SECURE_OFF;
  c.httponly = spec.httponly;
  c.samesite = static_cast<ngx_uint_t>(spec.samesite);
  c.partitioned = spec.partitioned;
  c.chunks = spec.chunks;
  c.file = cf->conf_file->file.name;
  c.line = cf->conf_file->line;
  lcf->cookie = c;
  return NGX_CONF_OK;
}

char* session_idle_timeout_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->idle != NGX_CONF_UNSET) return conf_msg("is duplicate");
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  if (sv(value[1]) == "off") {
    lcf->idle = 0;
    return NGX_CONF_OK;
  }
  time_t t = ngx_parse_time(&value[1], 1);
  if (t == static_cast<time_t>(NGX_ERROR) || t == 0) return conf_msg("invalid value");
  lcf->idle = t;
  return NGX_CONF_OK;
}

char* check_positive_time(ngx_conf_t* cf, void* post, void* data) noexcept {
  auto* t = static_cast<time_t*>(data);
  if (*t <= 0) return conf_msg("must be greater than 0");
  return NGX_CONF_OK;
}

ngx_conf_post_t positive_time_post = {check_positive_time};

char* check_prefix(ngx_conf_t* cf, void* post, void* data) noexcept {
  auto* s = static_cast<ngx_str_t*>(data);
  if (s->len > sess::kMaxPrefixLen) return conf_msg("is longer than 256 bytes");
  for (size_t i = 0; i < s->len; i++) {
    if (sess::is_ctl(s->data[i])) return conf_msg("has a control byte");
  }
  return NGX_CONF_OK;
}

ngx_conf_post_t prefix_post = {check_prefix};

char* check_positive_msec(ngx_conf_t* cf, void* post, void* data) noexcept {
  if (*static_cast<ngx_msec_t*>(data) == 0) return conf_msg("must be greater than 0");
  return NGX_CONF_OK;
}

ngx_conf_post_t positive_msec_post = {check_positive_msec};

action_t* push_action(ngx_conf_t* cf, loc_conf_t* lcf, ngx_uint_t type) {
  if (lcf->actions == NGX_CONF_UNSET_PTR) {
    lcf->actions = ngx_array_create(cf->pool, 4, sizeof(action_t));
    if (lcf->actions == nullptr) return nullptr;
  }
  auto* a = static_cast<action_t*>(ngx_array_push(lcf->actions));
  if (a == nullptr) return nullptr;
  ngx_memzero(a, sizeof(action_t));
  a->type = type;
  a->max_age = -1;
  a->expires = -1;
  a->file = cf->conf_file->file.name;
  a->line = cf->conf_file->line;
  return a;
}

ngx_http_complex_value_t* compile(ngx_conf_t* cf, ngx_str_t* v) {
  auto* cv = static_cast<ngx_http_complex_value_t*>(
      ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t)));
  if (cv == nullptr) return nullptr;
  ngx_http_compile_complex_value_t ccv{};
  ccv.cf = cf;
  ccv.value = v;
  ccv.complex_value = cv;
  if (ngx_http_compile_complex_value(&ccv) != NGX_OK) return nullptr;
  return cv;
}

bool check_key(ngx_conf_t* cf, ngx_command_t* cmd, const ngx_str_t& key) {
  if (!sess::session_key_valid(sv(key))) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\": invalid session key \"%V\" (use 1-64 of A-Z a-z 0-9 _)",
                       &cmd->name, &key);
    return false;
  }
  if (is_reserved_key(sv(key))) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\": session key \"%V\" is reserved ($session_%V is a variable of "
                       "the module)",
                       &cmd->name, &key, &key);
    return false;
  }
  return true;
}

char* session_action_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  ngx_uint_t type = cmd->offset;
  action_t* a = push_action(cf, lcf, type);
  if (a == nullptr) return conf_error();

  if (type == ACTION_SET || type == ACTION_UNSET) {
    if (!check_key(cf, cmd, value[1])) return conf_error();
    a->key = value[1];
    if (type == ACTION_SET && (a->value = compile(cf, &value[2])) == nullptr) return conf_error();
  }
  return NGX_CONF_OK;
}

// session_destroy_user value; (one per location: the request ends one user's sessions)
char* session_destroy_user_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  if (lcf->actions != NGX_CONF_UNSET_PTR) {
    auto* a = static_cast<action_t*>(lcf->actions->elts);
    for (ngx_uint_t i = 0; i < lcf->actions->nelts; i++) {
      if (a[i].type == ACTION_DESTROY_USER) return conf_msg("is duplicate");
    }
  }
  action_t* a = push_action(cf, lcf, ACTION_DESTROY_USER);
  if (a == nullptr || (a->value = compile(cf, &value[1])) == nullptr) return conf_error();
  return NGX_CONF_OK;
}

char* cookie_set_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  bool del = cmd->offset == ACTION_COOKIE_DELETE;
  action_t* a = push_action(cf, lcf, cmd->offset);
  if (a == nullptr) return conf_error();

  bool literal = ngx_http_script_variables_count(&value[1]) == 0;
  if (value[1].len == 0 || (literal && !check_cookie_name(cf, cmd, value[1]))) {
    if (value[1].len == 0) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": empty cookie name", &cmd->name);
    }
    return conf_error();
  }
  if (literal) a->literal_name = value[1];  // checked against the session's cookies at merge
  if ((a->name = compile(cf, &value[1])) == nullptr) return conf_error();
  ngx_uint_t first = 2;
  if (!del) {
    if ((a->value = compile(cf, &value[2])) == nullptr) return conf_error();
    first = 3;
  }
  sess::CookieAttrSpec spec;
  if (!parse_attrs(cf, cmd, del ? sess::CookieDirective::CookieDelete
                                : sess::CookieDirective::CookieSet,
                   first, &spec)) {
    return conf_error();
  }
  if (literal) {
    if (const char* why = sess::cookie_attrs_check(sv(value[1]), spec)) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s", &cmd->name, why);
      return conf_error();
    }
  } else if (const char* why = sess::cookie_attrs_check("", spec)) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s", &cmd->name, why);
    return conf_error();
  }
  a->path = ngx_str(spec.path);
  a->domain = ngx_str(spec.domain);
  a->max_age = spec.has_max_age ? static_cast<time_t>(spec.max_age) : -1;
  a->expires = spec.has_expires ? static_cast<time_t>(spec.expires) : -1;
  a->secure = spec.secure == sess::Secure::On;
  a->httponly = spec.httponly;
  a->samesite = static_cast<ngx_uint_t>(spec.samesite);
  a->partitioned = spec.partitioned;
  return NGX_CONF_OK;
}

char* session_require_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->require != NGX_CONF_UNSET) return conf_msg("is duplicate");
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  if (cf->args->nelts == 1) {
    lcf->require = 1;
    return NGX_CONF_OK;
  }
  if (sv(value[1]) == "off") {
    lcf->require = 0;
    return NGX_CONF_OK;
  }
  if (!sess::redirect_is_safe(sv(value[1])) ||
      sv(value[1]).find_first_of("?#") != std::string_view::npos) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\": \"%V\" must be a local path such as /login (not //host, "
                       "/\\host, a URL or a query)",
                       &cmd->name, &value[1]);
    return conf_error();
  }
  lcf->require = 1;
  lcf->require_uri = value[1];
  return NGX_CONF_OK;
}

}  // namespace

#define SESSION_ALL_CONF (NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF)
#define SESSION_ACTION_CONF (NGX_HTTP_LOC_CONF | NGX_HTTP_LIF_CONF)

ngx_command_t commands[] = {
    {ngx_string("session_secret_file"), SESSION_ALL_CONF | NGX_CONF_TAKE1, session_secret_file_directive,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_cookie"), SESSION_ALL_CONF | NGX_CONF_1MORE, session_cookie_directive,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_store"), SESSION_ALL_CONF | NGX_CONF_TAKE1, set_enum,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, store), store_values},
    {ngx_string("session_encrypt"), SESSION_ALL_CONF | NGX_CONF_FLAG, ngx_conf_set_flag_slot,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, encrypt), nullptr},
    {ngx_string("session_lifetime"), SESSION_ALL_CONF | NGX_CONF_TAKE1, ngx_conf_set_sec_slot,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, lifetime), &positive_time_post},
    {ngx_string("session_idle_timeout"), SESSION_ALL_CONF | NGX_CONF_TAKE1, session_idle_timeout_directive,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_renew"), SESSION_ALL_CONF | NGX_CONF_TAKE1, ngx_conf_set_sec_slot,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, renew), nullptr},
    {ngx_string("session_redis"), SESSION_ALL_CONF | NGX_CONF_1MORE, session_redis_directive,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_redis_tls"), SESSION_ALL_CONF | NGX_CONF_FLAG, ngx_conf_set_flag_slot,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, redis_tls.enable), nullptr},
    {ngx_string("session_redis_tls_trusted_certificate"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(loc_conf_t, redis_tls.trusted_certificate), nullptr},
    {ngx_string("session_redis_tls_verify"), SESSION_ALL_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, redis_tls.verify),
     nullptr},
    {ngx_string("session_redis_tls_name"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, redis_tls.name),
     nullptr},
    {ngx_string("session_redis_tls_certificate"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(loc_conf_t, redis_tls.certificate), nullptr},
    {ngx_string("session_redis_tls_certificate_key"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(loc_conf_t, redis_tls.certificate_key), nullptr},
    {ngx_string("session_redis_prefix"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, prefix),
     &prefix_post},
    {ngx_string("session_redis_timeout"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_msec_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, redis_timeout),
     &positive_msec_post},
    {ngx_string("session_redis_cache"), SESSION_ALL_CONF | NGX_CONF_TAKE12,
     session_redis_cache_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_store_fail"), SESSION_ALL_CONF | NGX_CONF_TAKE1, set_enum,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, fail), fail_values},
    {ngx_string("session_set"), SESSION_ACTION_CONF | NGX_CONF_TAKE2, session_action_directive,
     NGX_HTTP_LOC_CONF_OFFSET, ACTION_SET, nullptr},
    {ngx_string("session_unset"), SESSION_ACTION_CONF | NGX_CONF_TAKE1, session_action_directive,
     NGX_HTTP_LOC_CONF_OFFSET, ACTION_UNSET, nullptr},
    {ngx_string("session_clear"), SESSION_ACTION_CONF | NGX_CONF_NOARGS, session_action_directive,
     NGX_HTTP_LOC_CONF_OFFSET, ACTION_CLEAR, nullptr},
    {ngx_string("session_destroy"), SESSION_ACTION_CONF | NGX_CONF_NOARGS, session_action_directive,
     NGX_HTTP_LOC_CONF_OFFSET, ACTION_DESTROY, nullptr},
    {ngx_string("session_regenerate"), SESSION_ACTION_CONF | NGX_CONF_NOARGS, session_action_directive,
     NGX_HTTP_LOC_CONF_OFFSET, ACTION_REGENERATE, nullptr},
    {ngx_string("session_destroy_user"), SESSION_ACTION_CONF | NGX_CONF_TAKE1,
     session_destroy_user_directive, NGX_HTTP_LOC_CONF_OFFSET, ACTION_DESTROY_USER, nullptr},
    {ngx_string("cookie_set"), SESSION_ACTION_CONF | NGX_CONF_2MORE, cookie_set_directive,
     NGX_HTTP_LOC_CONF_OFFSET, ACTION_COOKIE_SET, nullptr},
    {ngx_string("cookie_delete"), SESSION_ACTION_CONF | NGX_CONF_1MORE, cookie_set_directive,
     NGX_HTTP_LOC_CONF_OFFSET, ACTION_COOKIE_DELETE, nullptr},
    {ngx_string("session_require"), SESSION_ALL_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
     session_require_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_login"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, login_directive,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_login_page"), SESSION_ALL_CONF | NGX_CONF_TAKE1, ngx_conf_set_str_slot,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, login_page), nullptr},
    {ngx_string("session_login_user_file"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, login_user_file),
     nullptr},
    {ngx_string("session_login_auth"), SESSION_ALL_CONF | NGX_CONF_TAKE1, ngx_conf_set_str_slot,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, login_auth), nullptr},
    {ngx_string("session_login_redirect"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, login_redirect),
     nullptr},
    {ngx_string("session_logout"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE12,
     logout_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_login_thread_pool"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, login_thread_pool),
     nullptr},
    {ngx_string("session_login_limit"), SESSION_ALL_CONF | NGX_CONF_1MORE,
     login_limit_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_metrics"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
     session_metrics_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_format"), SESSION_ALL_CONF | NGX_CONF_TAKE123,
     session_format_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_user_key"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     session_user_key_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_jwt_key"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     session_jwt_key_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_jwt_claims"), SESSION_ALL_CONF | NGX_CONF_1MORE,
     session_jwt_claims_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("session_jwt_lifetime"), SESSION_ALL_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_sec_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf_t, jwt_lifetime),
     &jwt_lifetime_post},
    {ngx_string("session_jwks"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, session_jwks_directive,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    ngx_null_command,
};

}  // namespace ngx_session
