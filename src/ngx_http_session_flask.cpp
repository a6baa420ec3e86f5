// ngx_http_session_module: the Flask bridge glue - session_format, session_user_key, and the
// cookie store in flask mode (Flask's own signed session cookie, read and written by nginx).
//
// The bytes are the core's (src/core/flask_signer.h, flask_json.h): this file only gathers the
// inputs and applies the results. What flask mode changes against the native format:
//   - the cookie is itsdangerous' URLSafeTimedSerializer token (salt "cookie-session", HMAC-SHA1)
//     over Flask's tagged JSON: signed, not encrypted, the cookie name not bound into it;
//   - the first secret line signs, every line verifies (Flask's SECRET_KEY and its fallbacks);
//     secrets shorter than 32 bytes are accepted with a warning;
//   - the cookie carries one timestamp, reset by every write: session_lifetime counts from the
//     last write (PERMANENT_SESSION_LIFETIME), a future timestamp is expired as in itsdangerous;
//   - sessions nginx creates are permanent (`_permanent: true`) and their cookie gets
//     Expires = now + session_lifetime, as Flask sends it;
//   - values keep their Flask types: untouched keys are written back as they came.
// With the Redis store (the second half of this file) the cookie carries Flask-Session's id and
// the record is Flask-Session's (src/core/flask_record.h says what it holds and how it is written).

#include "ngx_http_session.h"
#include "ngx_http_session_metrics.h"

#include "core/flask_json.h"
#include "core/flask_record.h"
#include "core/flask_signer.h"
#include "core/flask_value.h"
#include "core/session_data.h"

namespace ngx_session {

struct flask_keys_t {
  sess::FlaskKeys cookie{sess::kFlaskCookieSalt};         // Flask's session cookie
  sess::FlaskKeys sid{sess::kFlaskSessionSignerSalt};     // Flask-Session's SESSION_USE_SIGNER
};

namespace {

char* conf_error() { return static_cast<char*>(NGX_CONF_ERROR); }
char* conf_msg(const char* m) { return const_cast<char*>(m); }

void delete_flask_keys(void* data) noexcept { delete static_cast<flask_keys_t*>(data); }

}  // namespace

bool flask_secrets_init(ngx_conf_t* cf, secrets_t* secrets, const std::vector<std::string>& raw) {
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(cf->pool, 0);
  if (cln == nullptr) return false;
  auto* keys = new (std::nothrow) flask_keys_t();
  if (keys == nullptr) return false;
  cln->handler = delete_flask_keys;
  cln->data = keys;
  secrets->flask = keys;
  for (const std::string& s : raw) {
    // In file order: the first line signs, as the first key added to FlaskKeys does.
    if (!keys->cookie.add_secret(s) || !keys->sid.add_secret(s)) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"session_secret_file\" \"%V\": Flask key derivation failed",
                         &secrets->path);
      return false;
    }
  }
  return true;
}

// session_format native | flask [serializer=msgpack|json|pickle] [signer=on|off];
char* session_format_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->format != NGX_CONF_UNSET_UINT) return conf_msg("is duplicate");
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  std::string_view fmt = sv(value[1]);
  ngx_uint_t format;
  if (fmt == "native") {
    format = FORMAT_NATIVE;
  } else if (fmt == "flask") {
    format = FORMAT_FLASK;
  } else {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\": invalid value \"%V\" (use \"native\" or \"flask\")", &cmd->name,
                       &value[1]);
    return conf_error();
  }
  ngx_uint_t serializer = FLASK_SER_NONE;
  ngx_int_t signer = -1;
  for (ngx_uint_t i = 2; i < cf->args->nelts; i++) {
    std::string_view a = sv(value[i]);
    if (format != FORMAT_FLASK) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": \"%V\" applies to \"flask\" only",
                         &cmd->name, &value[i]);
      return conf_error();
    }
    if (a.substr(0, 11) == "serializer=" && serializer == FLASK_SER_NONE) {
      std::string_view v = a.substr(11);
      serializer = v == "msgpack" ? FLASK_SER_MSGPACK
                   : v == "json"  ? FLASK_SER_JSON
                   : v == "pickle" ? FLASK_SER_PICKLE
                                   : FLASK_SER_NONE;
      if (serializer != FLASK_SER_NONE) continue;
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"%V\": invalid \"%V\" (use serializer=msgpack, json or pickle)",
                         &cmd->name, &value[i]);
      return conf_error();
    }
    if (a.substr(0, 7) == "signer=" && signer == -1) {
      std::string_view v = a.substr(7);
      if (v == "on" || v == "off") {
        signer = v == "on";
        continue;
      }
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": invalid \"%V\" (use signer=on or off)",
                         &cmd->name, &value[i]);
      return conf_error();
    }
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": invalid or duplicate parameter \"%V\"",
                       &cmd->name, &value[i]);
    return conf_error();
  }
  lcf->format = format;
  lcf->flask_serializer = serializer;
  lcf->flask_signer = signer == 1;
  return NGX_CONF_OK;
}

// session_user_key key;
char* session_user_key_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  auto* lcf = static_cast<loc_conf_t*>(conf);
  if (lcf->user_key.data != nullptr) return conf_msg("is duplicate");
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  if (!sess::session_key_valid(sv(value[1]))) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\": invalid session key \"%V\" (use 1-64 of A-Z a-z 0-9 _)",
                       &cmd->name, &value[1]);
    return conf_error();
  }
  if (is_reserved_key(sv(value[1]))) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\": session key \"%V\" is reserved ($session_%V is a variable of the "
                       "module)",
                       &cmd->name, &value[1], &value[1]);
    return conf_error();
  }
  lcf->user_key = value[1];
  return NGX_CONF_OK;
}

bool flask_merge(ngx_conf_t* cf, loc_conf_t* conf, loc_conf_t* prev) noexcept {
  if (conf->format == NGX_CONF_UNSET_UINT) {  // the directive sets all three together
    conf->format = prev->format;
    conf->flask_serializer = prev->flask_serializer;
    conf->flask_signer = prev->flask_signer;
  }
  if (conf->format == NGX_CONF_UNSET_UINT) {
    conf->format = FORMAT_NATIVE;
    conf->flask_serializer = FLASK_SER_NONE;
    conf->flask_signer = 0;
  }
  ngx_conf_merge_str_value(conf->user_key, prev->user_key, "user");
  bool flask = conf->format == FORMAT_FLASK;
  // Flask's cookies are signed: encryption is off in flask mode unless asked for (which fails).
  ngx_conf_merge_value(conf->encrypt, prev->encrypt, flask ? 0 : 1);

  secrets_t* secrets = conf->secrets;
  if (!flask) {
    if (secrets != nullptr && secrets->short_line != 0) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"session_secret_file\" \"%V\": line %uz is shorter than %uz bytes "
                         "(use e.g. \"openssl rand -base64 48\"; Flask's shorter keys are "
                         "accepted with \"session_format flask\" only)",
                         &secrets->path, secrets->short_line, sess::KeyRing::kMinSecretLen);
      return false;
    }
    return true;
  }

  if (conf->encrypt == 1) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_encrypt on\" cannot be used with \"session_format flask\" "
                       "(Flask's session cookie is signed, not encrypted)");
    return false;
  }
  if (conf->idle != 0) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_idle_timeout\" cannot be used with \"session_format flask\" "
                       "(a Flask session has one timestamp, reset by every write: "
                       "\"session_lifetime\" already counts from the last write)");
    return false;
  }
  if (conf->store == STORE_REDIS) {
    if (conf->flask_serializer == FLASK_SER_NONE) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"session_format flask\" with \"session_store redis\" needs "
                         "\"serializer=\": pickle for Flask-Session 0.6 and older (Debian 12), "
                         "msgpack for 0.7 and newer");
      return false;
    }
    // (session_redis_cache is merged after this: its value as it will be.)
    redis_cache_t* cache = conf->redis_cache != NGX_CONF_UNSET_PTR ? conf->redis_cache
                                                                   : prev->redis_cache;
    if (cache != nullptr && cache != NGX_CONF_UNSET_PTR) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                         "\"session_redis_cache\" cannot be used with \"session_format flask\" "
                         "(the cache holds native hash records; Flask-Session records are read "
                         "with GET on every request)");
      return false;
    }
  } else if (conf->flask_serializer != FLASK_SER_NONE || conf->flask_signer) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"session_format flask\": serializer= and signer= apply to "
                       "\"session_store redis\" (Flask-Session records); Flask's cookie session "
                       "is always signed tagged JSON");
    return false;
  }
  if (secrets != nullptr && secrets->short_count != 0 && !secrets->short_reported) {
    secrets->short_reported = 1;
    ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                       "\"session_secret_file\" \"%V\": %uz secret(s) shorter than %uz bytes "
                       "(first on line %uz): accepted as Flask's SECRET_KEY, but anyone who "
                       "guesses one can sign sessions; rotate to a longer key",
                       &secrets->path, secrets->short_count, sess::KeyRing::kMinSecretLen,
                       secrets->short_line);
  }
  return true;
}


// ---------------------------------------------------------------------------------------------
// The Redis store in flask mode: Flask-Session's records (src/core/flask_record.h)

namespace {

sess::FlaskSerializer serializer_of(const loc_conf_t* lcf) {
  switch (lcf->flask_serializer) {
    case FLASK_SER_MSGPACK: return sess::FlaskSerializer::Msgpack;
    case FLASK_SER_JSON: return sess::FlaskSerializer::Json;
    default: return sess::FlaskSerializer::Pickle;
  }
}

const char* serializer_name(const loc_conf_t* lcf) {
  switch (lcf->flask_serializer) {
    case FLASK_SER_MSGPACK: return "msgpack";
    case FLASK_SER_JSON: return "json";
    default: return "pickle";
  }
}

sess::RespLimits make_get_limits() {
  sess::RespLimits l;
  l.max_bulk = sess::kMaxRecordLen;
  l.max_total = sess::kMaxRecordLen;
  l.max_depth = 1;
  l.max_elements = 4;
  return l;
}
const sess::RespLimits kGetLimits = make_get_limits();

sess::LogLimiter flask_lookup_log_limit;
sess::LogLimiter flask_write_log_limit(1, 10);

void record_key(const loc_conf_t* lcf, std::string_view sid, sess::pstring& key) {
  key.clear();
  key.append(sv(lcf->prefix));
  key.append(sid);
}

void flask_lookup_done(ngx_http_request_t* r, void* data, const sess::RespValue* answer,
                       bool too_large) {
  auto* s = static_cast<loaded_t*>(data);
  const sess::RespValue* reply = answer;
  int64_t pttl_ms = -1;
  if (answer != nullptr) sess::flask_read_reply(*answer, &reply, &pttl_ms);
  s->op = nullptr;
  s->loading = 0;
  s->decoded = 1;  // the record is the data
  s->status = sess::LoadStatus::Invalid;
  s->payload.clear();
  s->data.clear();
  const loc_conf_t* lcf = s->conf;
  if (too_large) {
    reject_cookie(r, lcf, "the Flask-Session record is larger than 64 KiB");
  } else if (reply != nullptr && reply->type == sess::RespType::Nil) {
    reject_cookie(r, lcf, "no such session in the store");
  } else if (reply != nullptr && reply->type == sess::RespType::Bulk) {
    switch (sess::flask_record_decode(serializer_of(lcf), reply->str, s->data)) {
      case sess::FlaskRecordRead::Ok:
        s->status = sess::LoadStatus::Valid;
        s->payload.assign(reply->str);  // the bytes read: what a write may replace
        // Its last write, from its TTL: session_renew refreshes the TTL of a session that is
        // only read here (the app's own requests rewrite it each time).
        s->times.refreshed = sess::flask_record_written_at(
            static_cast<uint64_t>(ngx_time()), static_cast<uint64_t>(lcf->lifetime), pttl_ms);
        break;
      case sess::FlaskRecordRead::Forbidden:
        reject_cookie(r, lcf, "the Flask-Session record is a pickle that names or builds an "
                              "object (refused, nothing executed; it is left as it is)");
        break;
      case sess::FlaskRecordRead::TooLarge:
        reject_cookie(r, lcf, "the Flask-Session record is over the decoder's limits (left as "
                              "it is)");
        break;
      case sess::FlaskRecordRead::Error:
        s->status = sess::LoadStatus::Error;
        s->store_error = 1;
        break;
      case sess::FlaskRecordRead::Invalid:
        reject_cookie(r, lcf, "the Flask-Session record is not a session nginx can read (left "
                              "as it is)");
        break;
    }
  } else if (reply != nullptr && reply->type == sess::RespType::Error &&
             reply->str.compare(0, 9, "WRONGTYPE") == 0) {
    reject_cookie(r, lcf, "the key of this session id is not a Flask-Session record");
  } else {
    lookup_failed(r, s, reply, flask_lookup_log_limit);
  }
  if (s->status != sess::LoadStatus::Valid) s->data.clear();
  lookup_resume(r, s);
}

// The id a Flask-Session cookie carries, checked before any I/O: Ok (*sid set), Malformed, or
// BadSignature (signer=on).
sess::FlaskTokenResult cookie_sid(const loc_conf_t* lcf, std::string_view value,
                                  sess::pstring* sid) {
  std::string_view id = value;
  if (lcf->flask_signer) {
    size_t dot = value.rfind('.');
    if (dot == std::string_view::npos || !sess::flask_sid_valid(value.substr(0, dot))) {
      return sess::FlaskTokenResult::Malformed;
    }
    sess::FlaskTokenResult res = sess::flask_sid_unsign(lcf->secrets->flask->sid, value, sid);
    if (res != sess::FlaskTokenResult::Ok) return res;
    id = *sid;
  }
  if (!sess::flask_sid_valid(id)) return sess::FlaskTokenResult::Malformed;
  if (!lcf->flask_signer) sid->assign(id);
  return sess::FlaskTokenResult::Ok;
}

ngx_int_t flask_redis_load(ngx_http_request_t* r, loaded_t* s, const loc_conf_t* lcf) {
  s->reset(lcf);
  sess::CookieCandidates acc;
  collect_cookie(r, sv(lcf->cookie.name), acc);
  if (acc.count == 0) return NGX_OK;
  s->had_cookie = 1;
  if (acc.overflow) {
    s->status = sess::LoadStatus::Invalid;
    reject_cookie(r, lcf, "too many session cookies of this name (a cookie tossing attempt?)");
    return NGX_OK;
  }
  sess::CandidateVerdict verdicts[sess::CookieCandidates::kMax];
  sess::FlaskTokenResult first = sess::FlaskTokenResult::Ok;
  sess::pstring chosen(s->payload.get_allocator().resource());
  size_t valid = 0;
  for (size_t i = 0; i < acc.count; i++) {
    sess::pstring sid(s->payload.get_allocator().resource());
    sess::FlaskTokenResult res = cookie_sid(lcf, acc.values[i], &sid);
    if (res == sess::FlaskTokenResult::Error) return NGX_ERROR;
    verdicts[i] = res == sess::FlaskTokenResult::Ok          ? sess::CandidateVerdict::Valid
                  : res == sess::FlaskTokenResult::BadSignature ? sess::CandidateVerdict::BadMac
                                                                : sess::CandidateVerdict::Malformed;
    if (res == sess::FlaskTokenResult::Ok && valid++ == 0) chosen.swap(sid);
    if (i == 0) first = res;
  }
  sess::Selection sel = sess::select_candidate(verdicts, acc.count);
  s->status = sel.status;
  if (sel.status != sess::LoadStatus::Valid) {
    // (Unsigned ids are not verified: two of them cannot be told apart without a GET each.)
    reject_cookie(r, lcf, sel.tossing ? "two different Flask-Session ids (a cookie planted for a "
                                        "parent domain?)"
                          : first == sess::FlaskTokenResult::BadSignature
                              ? "bad signature or unknown key (Flask-Session id)"
                              : "malformed Flask-Session id (not 22-128 of A-Z a-z 0-9 _ -)");
    return NGX_OK;
  }
  if (!pool_str(r->pool, chosen, &s->flask_sid)) return NGX_ERROR;
  s->has_id = 1;
  // A Flask-Session record has no timestamps: its TTL is session_lifetime from its last write.
  s->times.created = s->times.refreshed = static_cast<uint64_t>(ngx_time());
  sess::pstring key(s->payload.get_allocator().resource());
  record_key(lcf, chosen, key);
  sess::RedisArgs args(s->payload.get_allocator().resource());
  sess::flask_cmd_read(key, args);
  s->op = redis_send(r, lcf, args, key, flask_lookup_done, s, &kGetLimits);
  return read_sent(r, s, s->op != nullptr);
}

// An update that found the record changed by another writer (Flask rewrites it on every
// response): read it again, apply this request's changes to it, and try once more.
struct flask_update_t {
  ctx_t* ctx;
  const loc_conf_t* lcf;
  redis_done_pt done;
  void* done_data;
  sess::pstring key;
  sess::RespValue answer;   // a reply made here for done
  unsigned tries;
  explicit flask_update_t(std::pmr::memory_resource* mr) : key(mr) {}
};

void flask_update_cleanup(void* data) noexcept {
  static_cast<flask_update_t*>(data)->~flask_update_t();
}

constexpr unsigned kUpdateTries = 4;

void update_answer_error(ngx_http_request_t* r, flask_update_t* u, const char* msg) {
  u->answer = sess::RespValue();
  u->answer.type = sess::RespType::Error;
  u->answer.str = msg;
  u->done(r, u->done_data, &u->answer, false);
}

void update_reread_done(ngx_http_request_t* r, void* data, const sess::RespValue* reply,
                        bool too_large);

void update_done(ngx_http_request_t* r, void* data, const sess::RespValue* reply,
                 bool too_large) {
  auto* u = static_cast<flask_update_t*>(data);
  if (reply == nullptr || reply->type != sess::RespType::Integer || reply->integer != -2) {
    u->done(r, u->done_data, reply, too_large);
    return;
  }
  if (++u->tries >= kUpdateTries) {
    update_answer_error(r, u, "the Flask-Session record kept changing under this write");
    return;
  }
  sess::RedisArgs args(&u->ctx->mr);
  sess::flask_cmd_get(u->key, args);
  if (redis_send(r, u->lcf, args, u->key, update_reread_done, u, &kGetLimits) == nullptr) {
    u->done(r, u->done_data, nullptr, false);
  }
}

void update_reread_done(ngx_http_request_t* r, void* data, const sess::RespValue* reply,
                        bool too_large) {
  auto* u = static_cast<flask_update_t*>(data);
  if (reply == nullptr || reply->type == sess::RespType::Error) {
    u->done(r, u->done_data, reply, false);  // failed or refused: unknown / not written
    return;
  }
  if (reply->type == sess::RespType::Nil) {  // a logout came first: it is final
    u->answer = sess::RespValue();
    u->answer.type = sess::RespType::Integer;
    u->answer.integer = 0;
    u->done(r, u->done_data, &u->answer, false);
    return;
  }
  sess::SessionData d(&u->ctx->mr);
  sess::pstring value(&u->ctx->mr);
  if (too_large || reply->type != sess::RespType::Bulk ||
      sess::flask_record_decode(serializer_of(u->lcf), reply->str, d) !=
          sess::FlaskRecordRead::Ok) {
    update_answer_error(r, u, "the Flask-Session record was replaced by one nginx cannot read: "
                              "not written over");
    return;
  }
  if (u->ctx->changes == nullptr || !sess::flask_apply_changes(*u->ctx->changes, d) ||
      !sess::flask_record_encode(serializer_of(u->lcf), d, false, value)) {
    update_answer_error(r, u, "the session cannot be written in the serializer's format");
    return;
  }
  sess::RedisArgs args(&u->ctx->mr);
  sess::flask_cmd_update(u->key, reply->str, value, static_cast<uint64_t>(u->lcf->lifetime) * 1000,
                         args);
  if (redis_send(r, u->lcf, args, u->key, update_done, u) == nullptr) {
    u->done(r, u->done_data, nullptr, false);
  }
}

}  // namespace

bool flask_record_send(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf,
                       sess::RecordWriteKind kind, bool new_key, const sess::SessionData* data,
                       redis_done_pt done, void* done_data) {
  sess::FlaskSerializer ser = serializer_of(lcf);
  std::string_view sid = sv(ctx->s.flask_sid);
  if (new_key) {
    if (ctx->flask_new_sid.len == 0) {
      sess::pstring fresh(&ctx->mr);
      if (!sess::flask_sid_new(ser, fresh)) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "session: RAND_bytes() failed");
        return false;
      }
      if (!pool_str(r->pool, fresh, &ctx->flask_new_sid)) return false;
    }
    sid = sv(ctx->flask_new_sid);
  }
  if (sid.empty()) return false;
  auto ttl_ms = static_cast<uint64_t>(lcf->lifetime) * 1000;  // PERMANENT_SESSION_LIFETIME
  sess::pstring key(&ctx->mr);
  record_key(lcf, sid, key);
  sess::RedisArgs args(&ctx->mr);
  sess::pstring value(&ctx->mr);
  auto unwritable = [&]() {
    uint64_t more = 0;
    if (flask_write_log_limit.allow(static_cast<uint64_t>(ngx_time()), &more)) {
      ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                    "session: the session cannot be written as a Flask-Session %s record (a "
                    "value that format cannot hold) (%uL more since the last such line)",
                    serializer_name(lcf), more);
    }
    return false;
  };
  switch (kind) {
    case sess::RecordWriteKind::Create:
      // A session nginx creates is permanent, as Flask-Session makes its new ones.
      if (data == nullptr || !sess::flask_record_encode(ser, *data, true, value)) {
        return unwritable();
      }
      sess::flask_cmd_create(key, value, ttl_ms, args);
      break;
    case sess::RecordWriteKind::Update: {
      if (ctx->changes == nullptr) {
        sess::flask_cmd_touch(key, ttl_ms, args);
        break;
      }
      if (data == nullptr || !sess::flask_record_encode(ser, *data, false, value)) {
        return unwritable();
      }
      ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(flask_update_t));
      if (cln == nullptr) return false;
      auto* u = new (cln->data) flask_update_t(&ctx->mr);
      cln->handler = flask_update_cleanup;
      u->ctx = ctx;
      u->lcf = lcf;
      u->done = done;
      u->done_data = done_data;
      u->key = key;
      u->tries = 0;
      // Only while the record still holds the bytes this request read.
      sess::flask_cmd_update(key, ctx->s.payload, value, ttl_ms, args);
      return redis_send(r, lcf, args, key, update_done, u) != nullptr;
    }
    case sess::RecordWriteKind::Touch:
      sess::flask_cmd_touch(key, ttl_ms, args);
      break;
    case sess::RecordWriteKind::Claim:
      sess::flask_cmd_claim(key, ctx->s.payload, args);
      break;
    case sess::RecordWriteKind::Delete:
      sess::redis_cmd_delete(key, args);
      break;
    default:
      return false;
  }
  return redis_send(r, lcf, args, key, done, done_data) != nullptr;
}

// ---------------------------------------------------------------------------------------------
// The cookie store in flask mode

ngx_int_t flask_load(ngx_http_request_t* r, loaded_t* s, const loc_conf_t* lcf) {
  if (lcf->store == STORE_REDIS) return flask_redis_load(r, s, lcf);
  s->reset(lcf);
  sess::CookieCandidates acc;
  collect_cookie(r, sv(lcf->cookie.name), acc);
  if (acc.count == 0) return NGX_OK;
  s->had_cookie = 1;
  if (acc.overflow) {
    s->status = sess::LoadStatus::Invalid;
    metric(sess::Metric::CookiesRejected, sess::RejectReason::TooManyCookies);
    reject_cookie(r, lcf, "too many session cookies of this name (a cookie tossing attempt?)");
    return NGX_OK;
  }
  const sess::FlaskKeys& keys = lcf->secrets->flask->cookie;
  auto now = static_cast<uint64_t>(ngx_time());
  auto max_age = static_cast<uint64_t>(lcf->lifetime);
  sess::CandidateVerdict verdicts[sess::CookieCandidates::kMax];
  bool authentic[sess::CookieCandidates::kMax];
  sess::FlaskTokenResult first_bad = sess::FlaskTokenResult::Ok;
  size_t valid = 0;
  for (size_t i = 0; i < acc.count; i++) {
    sess::pstring json(s->payload.get_allocator().resource());
    uint64_t signed_at = 0;
    sess::FlaskTokenResult res =
        sess::flask_cookie_open(keys, acc.values[i], now, max_age, &json, &signed_at,
                                sess::FlaskCookieLimits(), &authentic[i]);
    switch (res) {
      case sess::FlaskTokenResult::Ok:
        verdicts[i] = sess::CandidateVerdict::Valid;
        if (valid++ == 0) {
          s->payload.swap(json);
          s->times.created = s->times.refreshed = signed_at;
        }
        break;
      case sess::FlaskTokenResult::Expired:
        verdicts[i] = sess::CandidateVerdict::Expired;
        break;
      case sess::FlaskTokenResult::BadSignature:
        verdicts[i] = sess::CandidateVerdict::BadMac;
        break;
      case sess::FlaskTokenResult::Malformed:
        verdicts[i] = sess::CandidateVerdict::Malformed;
        break;
      case sess::FlaskTokenResult::Error:
        return NGX_ERROR;
    }
    if (i == 0) first_bad = res;
  }
  // Flask reads the first cookie of the name: every cookie the app would accept counts.
  sess::Selection sel = sess::select_candidate_shared(verdicts, authentic, acc.count);
  s->status = sel.status;
  if (sel.status != sess::LoadStatus::Valid) {
    s->payload.clear();
    s->times = sess::Times();
    if (sel.tossing) {
      metric(sess::Metric::CookiesRejected, sess::RejectReason::CookieTossing);
      reject_cookie(r, lcf,
                    "two different valid session cookies (a cookie planted for a parent "
                    "domain?)");
    } else if (sel.status == sess::LoadStatus::Expired) {
      metric(sess::Metric::CookiesRejected, sess::RejectReason::Expired);
      reject_cookie(r, lcf, "expired (Flask cookie older than session_lifetime, or dated in "
                            "the future)");
    } else {
      metric(sess::Metric::CookiesRejected, first_bad == sess::FlaskTokenResult::Malformed
                                                ? sess::RejectReason::Malformed
                                                : sess::RejectReason::Signature);
      reject_cookie(r, lcf, first_bad == sess::FlaskTokenResult::Malformed
                                ? "malformed Flask session cookie"
                                : "bad signature or unknown key (Flask session cookie)");
    }
    return NGX_OK;
  }
  // Decoded now: the tags are checked once (a " b" that is no base64 or a " t" that is no list
  // is what Flask itself fails on), and ensure_decoded finds the data ready.
  s->decoded = 1;
  sess::FlaskValue tree, obj;
  if (!sess::flask_json_parse(s->payload_view(), tree) || !sess::flask_untag(tree, obj) ||
      !sess::flask_session_from_json(s->payload_view(), s->data)) {
    s->status = sess::LoadStatus::Invalid;
    s->decode_failed = 1;
    s->payload.clear();
    s->data.clear();
    metric(sess::Metric::CookiesRejected, sess::RejectReason::BadData);
    reject_cookie(r, lcf, "the Flask session is not a JSON object of known tags");
  }
  return NGX_OK;
}

namespace {

bool is_permanent(const sess::SessionData& d) {
  const sess::SessionValue* p = d.get("_permanent");
  return p != nullptr && !p->is_string && p->text == "true";
}

}  // namespace

bool flask_seal_cookie(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf,
                       sess::pstring& value) {
  if (lcf->store == STORE_REDIS) {
    // Flask-Session's cookie: the id (new if this write made one), signed with signer=on.
    const ngx_str_t& sid = ctx->flask_new_sid.len ? ctx->flask_new_sid : ctx->s.flask_sid;
    if (sid.len == 0) return false;
    if (!lcf->flask_signer) {
      value.append(sv(sid));
      return true;
    }
    return sess::flask_sid_sign(lcf->secrets->flask->sid, sv(sid), value);
  }
  const sess::FlaskKeys& keys = lcf->secrets->flask->cookie;
  auto now = static_cast<uint64_t>(ngx_time());
  if (ctx->next == nullptr) {
    // Renewal: the JSON received is signed again as it is (Flask's SESSION_REFRESH_EACH_REQUEST).
    return sess::flask_cookie_seal(keys, ctx->s.payload_view(), now, value);
  }
  // A session nginx creates (a login, or a change without a session) is permanent, as the
  // seeds' apps make theirs (session.permanent = True). (A login's data is sealed once before
  // it succeeds, to check that it fits: ctx->login counts already.)
  bool fresh = ctx->s.status != sess::LoadStatus::Valid || ctx->login != nullptr;
  if (fresh && ctx->next->get("_permanent") == nullptr) ctx->next->set_json("_permanent", "true");
  sess::pstring json(&ctx->mr);
  if (!sess::flask_session_to_json(*ctx->next, json)) return false;
  return sess::flask_cookie_seal(keys, json, now, value);
}

void flask_cookie_attrs(ngx_http_request_t* r, ctx_t* ctx, const loc_conf_t* lcf,
                        sess::CookieAttrs* attrs) {
  if (attrs->max_age >= 0) return;
  const sess::SessionData& d = ctx->next != nullptr ? *ctx->next : ctx->s.view();
  // (A record nginx creates is permanent: its `_permanent` is in the record, not in the data.)
  bool created = lcf->store == STORE_REDIS && ctx->flask_new_sid.len != 0;
  if (is_permanent(d) || created) attrs->expires = static_cast<int64_t>(ngx_time()) + lcf->lifetime;
}

bool flask_upstream_set_cookie(ngx_http_request_t* r, const loc_conf_t* lcf) {
  std::string_view name = sv(lcf->cookie.name);
  return find_header(&r->headers_out.headers, [&](const ngx_table_elt_t& h) {
    if (h.hash == 0 || h.key.len != 10 ||
        ngx_strncasecmp(h.key.data, (u_char*)"set-cookie", 10) != 0) {
      return false;
    }
    std::string_view v = sess::trim_wsp(sv(h.value));
    return v.size() > name.size() && v.substr(0, name.size()) == name && v[name.size()] == '=';
  });
}

UpstreamSession flask_adopt_upstream_session(ngx_http_request_t* r, ctx_t* ctx,
                                             const loc_conf_t* lcf) {
  std::string_view name = sv(lcf->cookie.name);
  ngx_table_elt_t* found = nullptr;
  size_t count = 0;
  find_header(&r->headers_out.headers, [&](const ngx_table_elt_t& h) {
    if (h.hash == 0 || h.key.len != 10 ||
        ngx_strncasecmp(h.key.data, (u_char*)"set-cookie", 10) != 0) {
      return false;
    }
    std::string_view v = sess::trim_wsp(sv(h.value));
    if (v.size() > name.size() && v.substr(0, name.size()) == name && v[name.size()] == '=') {
      found = const_cast<ngx_table_elt_t*>(&h);
      count++;
    }
    return false;
  });
  if (found == nullptr) return UpstreamSession::None;
  std::string_view v = sess::trim_wsp(sv(found->value)).substr(name.size() + 1);
  v = sess::trim_wsp(v.substr(0, v.find(';')));
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v.empty()) return UpstreamSession::Ended;  // Flask's delete_cookie
  if (count != 1) return UpstreamSession::None;
  loaded_t* s = &ctx->s;
  if (lcf->store == STORE_REDIS) {
    sess::pstring sid(&ctx->mr);
    if (cookie_sid(lcf, v, &sid) != sess::FlaskTokenResult::Ok) return UpstreamSession::None;
    if (!pool_str(r->pool, sid, &s->flask_sid)) return UpstreamSession::None;
    // The record the app just wrote is not the bytes this request read (none, or an older
    // one): the compare-and-set fails, reads the app's record and applies nginx's changes to it.
    s->payload.clear();
    s->shared_payload = nullptr;
    s->status = sess::LoadStatus::Valid;
    s->has_id = 1;
    s->decoded = 1;
    s->times.created = s->times.refreshed = static_cast<uint64_t>(ngx_time());  // just written
    return UpstreamSession::Adopted;
  }
  sess::pstring json(&ctx->mr);
  uint64_t signed_at = 0;
  if (ctx->changes == nullptr ||
      sess::flask_cookie_open(lcf->secrets->flask->cookie, v, static_cast<uint64_t>(ngx_time()),
                              static_cast<uint64_t>(lcf->lifetime), &json,
                              &signed_at) != sess::FlaskTokenResult::Ok) {
    return UpstreamSession::None;
  }
  void* mem = ngx_palloc(r->pool, sizeof(sess::SessionData));
  if (mem == nullptr) return UpstreamSession::None;
  auto* data = new (mem) sess::SessionData(&ctx->mr);
  if (!sess::flask_session_from_json(json, *data) ||
      !sess::flask_apply_changes(*ctx->changes, *data)) {
    return UpstreamSession::None;
  }
  ctx->next = data;
  s->payload.swap(json);
  s->shared_payload = nullptr;
  s->status = sess::LoadStatus::Valid;
  s->times.created = s->times.refreshed = signed_at;
  s->decoded = 1;
  found->hash = 0;  // the one cookie nginx writes replaces the app's
  return UpstreamSession::Adopted;
}

bool flask_var_text(const sess::SessionValue& v, sess::pstring& out) {
  return sess::flask_value_text(v, out);
}

}  // namespace ngx_session
