// The per-user session index (see user_index.h): commands, scripts, replies and the plan.
#include "user_index.h"

#include <charconv>

namespace sess {

namespace {

// ARGV[1] member, ARGV[2] ttl (milliseconds), ARGV[3] how many random members to return. A key
// of another type at the index's name is garbage, not an index (nginx only ever makes a set there:
// e.g. a Flask-Session record that an app wrote under a sid chosen by the client, "user:alice"):
// it can list no session, so it is deleted and the set starts afresh - a login is never refused
// because of it. Then adds the member, raises the TTL to at least ttl (PTTL/PEXPIRE: never lowers
// it, other members may live longer; PTTL answers -1 for a key without one), and returns a sample
// of the members for the caller to check (SRANDMEMBER with a positive count: distinct members, at
// most that many). SADD is the first write that can be refused at maxmemory (DEL never is): the
// script then adds nothing.
constexpr std::string_view kAddScript =
    "local k = KEYS[1] "
    "local t = redis.call('TYPE', k).ok "
    "if t ~= 'set' and t ~= 'none' then redis.call('DEL', k) end "
    "redis.call('SADD', k, ARGV[1]) "
    "local ttl = tonumber(ARGV[2]) "
    "if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end "
    "return redis.call('SRANDMEMBER', k, tonumber(ARGV[3]))";

// KEYS[1] a session record, ARGV[1] the user key's hash field ('' : do not check), ARGV[2] the
// user's JSON text as nginx writes it. The user field is compared as a decoded value (cjson, under
// pcall), never as text: every JSON spelling of the name ("\u00e9" or "é") is the same user.
//   1 deleted;
//   0 no such key;
//  -1 another user's session, or a key that is no session record (a hash holds v2 records, a
//     string v1 records and Flask-Session records): the entry can go;
//  -2 a record that holds no user (no field, not JSON, not a string): not the user's now, but a
//     session_set of the user key may be about to give it this user (its entry is added before
//     the record changes), so the entry stays (it goes with its record);
//   2 session_regenerate's marker: the session moved to a new id, which joined the index before
//     the old one was retired (the marker is left to expire; the entry can go).
constexpr std::string_view kEndScript =
    "local k = KEYS[1] "
    "local t = redis.call('TYPE', k).ok "
    "if t == 'none' then return 0 end "
    "if t == 'string' then "
    "if redis.call('GET', k) == '#session-regenerated' then return 2 end "
    "elseif t ~= 'hash' then return -1 "
    "elseif ARGV[1] ~= '' then "
    "local v = redis.call('HGET', k, ARGV[1]) "
    "if not v then return -2 end "
    "local ok, u = pcall(cjson.decode, v) "
    "if not ok or type(u) ~= 'string' then return -2 end "
    "if u ~= cjson.decode(ARGV[2]) then return -1 end "
    "end "
    "return redis.call('DEL', k)";

void push(RedisArgs& out, std::string_view s) { out.emplace_back(s.data(), s.size()); }

void push_uint(RedisArgs& out, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.emplace_back(buf, static_cast<size_t>(r.ptr - buf));
}

bool member_char(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

IndexReply classify(const RespValue* reply, RespType want) noexcept {
  if (reply == nullptr) return IndexReply::Failed;
  if (reply->type == RespType::Error) {
    return std::string_view(reply->str).substr(0, 10) == "WRONGTYPE " ? IndexReply::WrongType
                                                                      : IndexReply::Refused;
  }
  return reply->type == want ? IndexReply::Done : IndexReply::Failed;
}

}  // namespace

void user_index_key(std::string_view prefix, std::string_view user, pstring& out) {
  out.append(prefix);
  out.append(kUserIndexInfix);
  out.append(user);
}

bool index_member_valid(std::string_view m) noexcept {
  if (m.empty() || m.size() > kIndexMemberMaxLen) return false;
  for (char c : m) {
    if (!member_char(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

void index_cmd_add(std::string_view key, std::string_view member, uint64_t ttl, size_t sample,
                   RedisArgs& out) {
  out.clear();
  out.reserve(7);
  push(out, "EVAL");
  push(out, kAddScript);
  push(out, "1");
  push(out, key);
  push(out, member);
  push_uint(out, (ttl > 0 ? ttl : 1) * 1000);
  push_uint(out, sample);
}

void index_cmd_remove(std::string_view key, const std::string_view* members, size_t n,
                      RedisArgs& out) {
  out.clear();
  out.reserve(2 + n);
  push(out, "SREM");
  push(out, key);
  for (size_t i = 0; i < n; i++) push(out, members[i]);
}

void index_cmd_scan(std::string_view key, std::string_view cursor, size_t count, RedisArgs& out) {
  out.clear();
  out.reserve(5);
  push(out, "SSCAN");
  push(out, key);
  push(out, cursor);
  push(out, "COUNT");
  push_uint(out, count);
}

void index_cmd_exists(std::string_view record_key, RedisArgs& out) {
  out.clear();
  out.reserve(2);
  push(out, "EXISTS");
  push(out, record_key);
}

void index_cmd_end(std::string_view record_key, std::string_view field, std::string_view user_json,
                   RedisArgs& out) {
  out.clear();
  out.reserve(6);
  push(out, "EVAL");
  push(out, kEndScript);
  push(out, "1");
  push(out, record_key);
  push(out, field);
  push(out, user_json);
}

void index_cmd_end_key(std::string_view prefix, std::string_view member, RedisArgs& cmd) {
  pstring& key = cmd.at(3);
  key.assign(prefix);
  key.append(member);
}

IndexReply index_add_reply(const RespValue* reply, std::vector<std::string>* sample) {
  sample->clear();
  IndexReply c = classify(reply, RespType::Array);
  if (c != IndexReply::Done) return c;
  for (const RespValue& e : reply->elements) {
    if (e.type != RespType::Bulk) return IndexReply::Failed;
    if (index_member_valid(e.str)) sample->push_back(e.str);
  }
  return IndexReply::Done;
}

IndexReply index_scan_reply(const RespValue* reply, std::string* cursor,
                            std::vector<std::string>* members, std::vector<std::string>* junk) {
  cursor->clear();
  members->clear();
  junk->clear();
  IndexReply c = classify(reply, RespType::Array);
  if (c != IndexReply::Done) return c;
  const std::vector<RespValue>& e = reply->elements;
  if (e.size() != 2 || e[0].type != RespType::Bulk || e[1].type != RespType::Array ||
      e[0].str.empty() || e[0].str.size() > 20 ||
      e[0].str.find_first_not_of("0123456789") != std::string::npos) {
    return IndexReply::Failed;
  }
  for (const RespValue& m : e[1].elements) {
    if (m.type != RespType::Bulk) {
      members->clear();
      junk->clear();
      return IndexReply::Failed;
    }
    (index_member_valid(m.str) ? members : junk)->push_back(m.str);
  }
  *cursor = e[0].str;
  return IndexReply::Done;
}

IndexReply index_exists_reply(const RespValue* reply, bool* exists) {
  *exists = true;  // (unknown counts as existing: nothing is removed on a doubt)
  IndexReply c = classify(reply, RespType::Integer);
  if (c == IndexReply::Done) *exists = reply->integer != 0;
  return c;
}

IndexReply index_remove_reply(const RespValue* reply) {
  return classify(reply, RespType::Integer);
}

EndOutcome index_end_outcome(const RespValue* reply) noexcept {
  if (reply == nullptr) return EndOutcome::Failed;
  if (reply->type == RespType::Error) return EndOutcome::Refused;
  if (reply->type != RespType::Integer) return EndOutcome::Failed;
  switch (reply->integer) {
    case 1: return EndOutcome::Ended;
    case 0: return EndOutcome::Missing;
    case -1: return EndOutcome::NotUsers;
    case -2: return EndOutcome::NoUser;
    case 2: return EndOutcome::Moved;
    default: return EndOutcome::Failed;
  }
}

WalkNext index_walk_next(bool cursor_done, bool moved, unsigned passes) noexcept {
  if (!cursor_done) return WalkNext::Round;
  if (!moved) return WalkNext::Done;
  return passes < kIndexMaxPasses ? WalkNext::Pass : WalkNext::Moving;
}

IndexPlan index_plan(const IndexInputs& in) noexcept {
  IndexPlan p;
  const bool changed_user = in.user_after && !(in.user_before && in.same_user);
  const bool lost_user = in.user_before && !(in.user_after && in.same_user);
  switch (in.record) {
    case RecordWrite::Create:
      p.add_new = in.user_after;
      break;
    case RecordWrite::Move:
      p.add_new = in.user_after;
      p.remove_old = in.user_before;
      break;
    case RecordWrite::Update:
      p.add_before = changed_user;
      // (after a change of user: again, once the record holds it - a logout-all of the new user
      // that ran in between found a record of another user and took the entry out)
      p.refresh = in.user_after && (changed_user || in.flask);
      p.remove_old = lost_user;
      break;
    case RecordWrite::Touch:
      p.refresh = in.user_before;
      break;
    case RecordWrite::Delete:
      p.remove_old = in.user_before;
      break;
    case RecordWrite::None:
      p.remove_old = in.login_stored && in.delete_old && in.user_before;
      break;
  }
  return p;
}

LogoutAll logout_all_decision(LoadStatus status, bool store_error, bool logged_in) noexcept {
  if (store_error || status == LoadStatus::Error) return LogoutAll::Refuse;
  if (status == LoadStatus::Valid && logged_in) return LogoutAll::End;
  return LogoutAll::Plain;
}

}  // namespace sess
