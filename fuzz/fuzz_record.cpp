// libFuzzer target: v2 session records (src/core/record.h).
//
// Input: MODE PAYLOAD. The payload is split at 0xff bytes into elements; an element that starts
// with 0xfe becomes a reply of another type, picked by its next byte (i integer, n nil, a an
// empty array, s status, e error; anything else nil array), the rest being its text. MODE:
//   bits 0-1  the HGETALL reply: 0/1 an array of the elements, 2 an error with the payload as
//             text, 3 the first element on its own (any type)
//   bit 2     the parser reported TooLarge          bit 3  no reply at all (nullptr)
// Properties:
//   record_read   - never crashes; TooLarge exactly when the parser said so; no reply is Failed;
//                   *out is empty unless Found; Found only for an array of an even number of bulk
//                   strings, at most kMaxKeys pairs, every key session_key_valid and unique, and
//                   then the data equals SessionData::decode of the same pairs written as one v1
//                   JSON object (the reference codec); WRONGTYPE is V1; an empty array Missing.
//   round trip    - found data goes through record_cmd_create's and record_cmd_migrate's field
//                   encoding and record_read back to the same keys, texts and kinds.
//   record_read_v1 - the payload as a v1 string: Found exactly when SessionData::decode accepts
//                   it with at least one key, all of them session_key_valid, within
//                   kMaxRecordLen; then the data is decode's and *json the payload; migrating it
//                   reads back as the same data.
//   set_string    - a valid key with any bytes as a string value is Found after a create; the
//                   value comes back verbatim when it is well-formed UTF-8.
//   SessionChanges - the elements as a sequence of set_string / set_json / unset / clear: the
//                   update command's arguments, applied as its script applies them (clear, HSET,
//                   HDEL), leave a hash equal to the operations applied one by one.
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "record.h"

#include "fuzz_check.h"

namespace {

using sess::RecordRead;
using sess::RespType;
using sess::RespValue;
using sess::SessionData;

std::vector<std::string> split(std::string_view payload) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t end = payload.find('\xff', start);
    out.emplace_back(payload.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

RespValue element(const std::string& e) {
  RespValue r;
  if (e.empty() || e[0] != '\xfe') {
    r.type = RespType::Bulk;
    r.str = e;
    return r;
  }
  const char t = e.size() > 1 ? e[1] : 0;
  const std::string rest = e.size() > 2 ? e.substr(2) : std::string();
  switch (t) {
    case 'i':
      r.type = RespType::Integer;
      r.integer = static_cast<int64_t>(rest.size()) - 1;
      break;
    case 'n': r.type = RespType::Nil; break;
    case 'a': r.type = RespType::Array; break;
    case 's': r.type = RespType::Status; r.str = rest; break;
    case 'e': r.type = RespType::Error; r.str = rest; break;
    default: r.type = RespType::NilArray; break;
  }
  return r;
}

bool same(const SessionData& a, const SessionData& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    const auto& x = a.values()[i];
    const auto& y = b.values()[i];
    if (x.key != y.key || x.text != y.text || x.is_string != y.is_string) return false;
  }
  return true;
}

// The field/value arguments of a create (from index 5) or migrate (from index 5) as HGETALL.
RespValue fields(const sess::RedisArgs& a) {
  RespValue r;
  r.type = RespType::Array;
  for (size_t i = 5; i < a.size(); i++) {
    RespValue b;
    b.type = RespType::Bulk;
    b.str.assign(a[i].data(), a[i].size());
    r.elements.push_back(std::move(b));
  }
  return r;
}

void check_round_trip(const SessionData& d) {
  sess::RedisArgs a;
  sess::record_cmd_create("k", d, 1, a);
  FUZZ_CHECK(a.size() == 5 + 2 * d.size());
  RespValue r = fields(a);
  SessionData back;
  FUZZ_CHECK(sess::record_read(&r, false, &back) == RecordRead::Found);
  FUZZ_CHECK(same(d, back));

  sess::pstring v1;
  d.encode(v1);
  sess::record_cmd_migrate("k", v1, d, a);
  FUZZ_CHECK(a.size() == 5 + 2 * d.size() && a[4] == v1);
  r = fields(a);
  FUZZ_CHECK(sess::record_read(&r, false, &back) == RecordRead::Found);
  FUZZ_CHECK(same(d, back));
}

void check_read(const RespValue* reply, bool too_large) {
  SessionData d;
  d.set_string("stale", "x");
  const RecordRead o = sess::record_read(reply, too_large, &d);
  if (o != RecordRead::Found) FUZZ_CHECK(d.empty());
  if (too_large) {
    FUZZ_CHECK(o == RecordRead::TooLarge);
    return;
  }
  FUZZ_CHECK(o != RecordRead::TooLarge);
  if (reply == nullptr) {
    FUZZ_CHECK(o == RecordRead::Failed);
    return;
  }
  if (reply->type == RespType::Error) {
    FUZZ_CHECK((o == RecordRead::V1) == (reply->str.compare(0, 9, "WRONGTYPE") == 0));
  }
  if (reply->type == RespType::Array && reply->elements.empty()) {
    FUZZ_CHECK(o == RecordRead::Missing);
  }
  if (o != RecordRead::Found) return;

  const auto& e = reply->elements;
  FUZZ_CHECK(reply->type == RespType::Array && !e.empty() && e.size() % 2 == 0);
  FUZZ_CHECK(d.size() == e.size() / 2 && d.size() <= SessionData::kMaxKeys);
  sess::pstring object("{");
  for (size_t i = 0; i < e.size(); i += 2) {
    FUZZ_CHECK(e[i].type == RespType::Bulk && e[i + 1].type == RespType::Bulk);
    FUZZ_CHECK(sess::session_key_valid(e[i].str));
    FUZZ_CHECK(std::string_view(d.values()[i / 2].key) == e[i].str);
    FUZZ_CHECK(d.get(e[i].str) == &d.values()[i / 2]);  // unique
    if (i != 0) object.push_back(',');
    sess::append_json_string(e[i].str, object);
    object.push_back(':');
    object.append(e[i + 1].str);
  }
  object.push_back('}');
  SessionData ref;
  FUZZ_CHECK(ref.decode(object));
  FUZZ_CHECK(same(d, ref));
  check_round_trip(d);
}

void check_read_v1(std::string_view payload) {
  RespValue r;
  r.type = RespType::Bulk;
  r.str.assign(payload.data(), payload.size());
  SessionData d;
  sess::pstring json("stale");
  const RecordRead o = sess::record_read_v1(&r, false, &d, &json);

  SessionData ref;
  bool want = !payload.empty() && payload.size() <= sess::kMaxRecordLen && ref.decode(payload) &&
              !ref.empty();
  for (const auto& v : ref.values()) want = want && sess::session_key_valid(v.key);
  FUZZ_CHECK((o == RecordRead::Found) == want);
  if (payload.empty()) FUZZ_CHECK(o == RecordRead::Missing);
  if (o != RecordRead::Found) {
    FUZZ_CHECK(d.empty() && json.empty());
    return;
  }
  FUZZ_CHECK(same(d, ref) && json == payload);
  check_round_trip(d);
}

void check_set_string(const std::vector<std::string>& e) {
  if (e.size() < 2 || !sess::session_key_valid(e[0])) return;
  SessionData d;
  d.set_string(e[0], e[1]);
  sess::RedisArgs a;
  sess::record_cmd_create("k", d, 1, a);
  RespValue r = fields(a);
  SessionData back;
  FUZZ_CHECK(sess::record_read(&r, false, &back) == RecordRead::Found);
  FUZZ_CHECK(back.size() == 1 && back.values()[0].is_string && std::string_view(back.values()[0].key) == e[0]);
  sess::SessionValue v(std::pmr::get_default_resource());
  sess::pstring lit;
  sess::append_json_string(e[1], lit);
  FUZZ_CHECK(sess::decode_session_value(lit, v) && v.text == back.values()[0].text);
  // Well-formed UTF-8 comes back verbatim (append_json_string only replaces ill-formed bytes).
  if (lit.find("\\ufffd") == std::string::npos) FUZZ_CHECK(std::string_view(back.values()[0].text) == e[1]);
}

void check_changes(const std::vector<std::string>& e) {
  using Hash = std::map<std::string, std::string>;
  Hash ref = {{"pre", "\"x\""}, {"b", "1"}};  // what the record held before
  Hash hash = ref;
  sess::SessionChanges c;
  for (size_t i = 0; i < e.size(); i++) {
    const std::string& op = e[i];
    const std::string key = op.empty() ? std::string() : op.substr(1, 3);  // few distinct keys
    const std::string value = i + 1 < e.size() ? e[i + 1] : std::string();
    switch (op.empty() ? 0 : static_cast<unsigned char>(op[0]) % 4) {
      case 0: {
        c.set_string(key, value);
        sess::pstring lit;
        sess::append_json_string(value, lit);
        ref[key] = std::string(lit);
        break;
      }
      case 1: {
        sess::SessionValue v(std::pmr::get_default_resource());
        if (!sess::decode_session_value(value, v)) break;
        sess::pstring text;
        sess::encode_session_value(v, text);
        c.set_json(key, text);
        ref[key] = std::string(text);
        break;
      }
      case 2:
        c.unset(key);
        ref.erase(key);
        break;
      case 3:
        c.clear();
        ref.clear();
        break;
    }
  }
  FUZZ_CHECK(c.empty() == (!c.cleared() && c.sets().empty() && c.unsets().empty()));

  sess::RedisArgs a;
  sess::record_cmd_update("k", c, 7, a);
  FUZZ_CHECK(a.size() >= 7 && a[0] == "EVAL" && a[2] == "1" && a[3] == "k" && a[4] == "7");
  FUZZ_CHECK(a[5] == (c.cleared() ? "1" : "0"));
  const size_t n = std::stoul(std::string(a[6]));
  FUZZ_CHECK(n == c.unsets().size() && (a.size() - 7 - n) % 2 == 0);
  // As the script does: clear, HSET the pairs, HDEL the keys.
  if (a[5] == "1") hash.clear();
  for (size_t i = 7 + n; i < a.size(); i += 2) hash[std::string(a[i])] = std::string(a[i + 1]);
  for (size_t i = 7; i < 7 + n; i++) hash.erase(std::string(a[i]));
  FUZZ_CHECK(hash == ref);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::vector<std::string> elements = split(payload);

  RespValue reply;
  switch (mode & 3) {
    case 0:
    case 1:
      reply.type = RespType::Array;
      if (!payload.empty()) {
        for (const auto& e : elements) reply.elements.push_back(element(e));
      }
      break;
    case 2:
      reply.type = RespType::Error;
      reply.str.assign(payload.data(), payload.size());
      break;
    case 3:
      reply = element(elements[0]);
      break;
  }
  check_read((mode & 8) ? nullptr : &reply, (mode & 4) != 0);
  if ((mode & 12) != 0) check_read(&reply, false);  // the same reply, delivered in full

  check_read_v1(payload);
  check_set_string(elements);
  check_changes(elements);
  return 0;
}
