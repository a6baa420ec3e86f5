// libFuzzer target: Redis reply classification, keys and commands (src/core/redis_cmd.h).
//
// Input: MODE PAYLOAD. The payload is the reply's text; MODE's low two bits pick its length:
// 0 = the payload as it is, 1/2/3 = the payload repeated to kMaxRecordLen - 1, kMaxRecordLen or
// kMaxRecordLen + 1 bytes (the boundary of the lookup limit, far above -max_len). MODE bit 2:
// the reply's integer is the payload's first byte as a signed byte (-1, 0, 1, 2 are easy to
// reach), else its first eight bytes big-endian. Every reply type is built from the same text
// and integer and classified as a lookup and as each kind of write.
// Properties:
//   redis_lookup_outcome - Found only for a non-empty String of at most kMaxRecordLen bytes,
//                   TooLarge only for a longer String, Missing only for "" or nil, WrongType only
//                   for an Error starting with "WRONGTYPE"; no reply is Failed.
//   redis_write_outcome - Done only for +OK (SET), :1 (EXPIRE) or :n >= 0 (DEL); Refused
//                   exactly for errors; Gone only for a nil SET XX or :0 EXPIRE; Exists only for
//                   a nil SET NX; no reply is Failed.
//   redis_key / redis_cmd_* - the key is the prefix then lowercase hex that decodes to the id;
//                   commands carry key and value verbatim as whole arguments.
#include <algorithm>
#include <cstring>
#include <string>

#include "redis_cmd.h"

#include "fuzz_check.h"

namespace {

using sess::LookupOutcome;
using sess::RedisReplyView;
using sess::ReplyType;
using sess::WriteKind;
using sess::WriteOutcome;

constexpr ReplyType kTypes[] = {ReplyType::None,    ReplyType::Status, ReplyType::Error,
                                ReplyType::Integer, ReplyType::String, ReplyType::Nil,
                                ReplyType::Array};
constexpr WriteKind kKinds[] = {WriteKind::Create, WriteKind::Update, WriteKind::Touch,
                                WriteKind::Delete};

void check_lookup(const RedisReplyView& r) {
  const LookupOutcome o = sess::redis_lookup_outcome(r);
  const bool is_string = r.type == ReplyType::String;
  switch (o) {
    case LookupOutcome::Found:
      FUZZ_CHECK(is_string && !r.str.empty() && r.str.size() <= sess::kMaxRecordLen);
      break;
    case LookupOutcome::TooLarge:
      FUZZ_CHECK(is_string && r.str.size() > sess::kMaxRecordLen);
      break;
    case LookupOutcome::Missing:
      FUZZ_CHECK((is_string && r.str.empty()) || r.type == ReplyType::Nil);
      break;
    case LookupOutcome::WrongType:
      FUZZ_CHECK(r.type == ReplyType::Error && r.str.substr(0, 9) == "WRONGTYPE");
      break;
    case LookupOutcome::Failed:
      FUZZ_CHECK(!is_string);
      break;
  }
  if (r.type == ReplyType::None) FUZZ_CHECK(o == LookupOutcome::Failed);
  if (is_string && !r.str.empty() && r.str.size() <= sess::kMaxRecordLen) {
    FUZZ_CHECK(o == LookupOutcome::Found);
  }
}

void check_write(WriteKind k, const RedisReplyView& r) {
  const WriteOutcome o = sess::redis_write_outcome(k, r);
  const bool set = k == WriteKind::Create || k == WriteKind::Update;
  FUZZ_CHECK((o == WriteOutcome::Refused) == (r.type == ReplyType::Error));
  if (r.type == ReplyType::None) FUZZ_CHECK(o == WriteOutcome::Failed);
  switch (o) {
    case WriteOutcome::Done:
      if (set) FUZZ_CHECK(r.type == ReplyType::Status && r.str == "OK");
      if (k == WriteKind::Touch) FUZZ_CHECK(r.type == ReplyType::Integer && r.integer == 1);
      if (k == WriteKind::Delete) FUZZ_CHECK(r.type == ReplyType::Integer && r.integer >= 0);
      break;
    case WriteOutcome::Gone:
      FUZZ_CHECK((k == WriteKind::Update && r.type == ReplyType::Nil) ||
                 (k == WriteKind::Touch && r.type == ReplyType::Integer && r.integer == 0));
      break;
    case WriteOutcome::Exists:
      FUZZ_CHECK(k == WriteKind::Create && r.type == ReplyType::Nil);
      break;
    case WriteOutcome::Refused:
    case WriteOutcome::Failed:
      break;
  }
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not what redis_key writes
}

void check_commands(std::string_view payload) {
  // The first half is the prefix, the rest the id (any bytes) and the value.
  const size_t half = payload.size() / 2;
  const std::string_view prefix = payload.substr(0, std::min(half, sess::kMaxPrefixLen));
  const std::string_view id = payload.substr(half);
  sess::pstring key("k|");
  sess::redis_key(prefix, reinterpret_cast<const unsigned char*>(id.data()), id.size(), key);
  FUZZ_CHECK(key.size() == 2 + prefix.size() + 2 * id.size());
  FUZZ_CHECK(std::string_view(key).substr(2, prefix.size()) == prefix);
  for (size_t i = 0; i < id.size(); i++) {
    const int hi = hex_digit(key[2 + prefix.size() + 2 * i]);
    const int lo = hex_digit(key[2 + prefix.size() + 2 * i + 1]);
    FUZZ_CHECK(hi >= 0 && lo >= 0);
    FUZZ_CHECK(static_cast<unsigned char>(id[i]) == (hi << 4 | lo));
  }
  const std::string_view k = std::string_view(key).substr(2);
  const uint64_t ttl = payload.size() + 1;
  sess::RedisArgs a;
  sess::redis_cmd_create(k, payload, ttl, a);
  FUZZ_CHECK(a.size() == 6 && a[0] == "SET" && a[1] == k && a[2] == payload && a[3] == "EX" &&
             std::string_view(a[4]) == std::to_string(ttl) && a[5] == "NX");
  sess::redis_cmd_update(k, payload, ttl, a);
  FUZZ_CHECK(a.size() == 6 && a[1] == k && a[2] == payload && a[5] == "XX");
  sess::redis_cmd_touch(k, ttl, a);
  FUZZ_CHECK(a.size() == 3 && a[0] == "EXPIRE" && a[1] == k && std::string_view(a[2]) == std::to_string(ttl));
  sess::redis_cmd_lookup(k, a);
  FUZZ_CHECK(a.size() == 4 && a[0] == "GETRANGE" && a[1] == k && a[2] == "0" &&
             std::string_view(a[3]) == std::to_string(sess::kMaxRecordLen));
  sess::redis_cmd_delete(k, a);
  FUZZ_CHECK(a.size() == 2 && a[0] == "DEL" && a[1] == k);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);

  std::string text(payload);
  if ((mode & 3) != 0) {
    const size_t want = sess::kMaxRecordLen - 2 + (mode & 3);
    const std::string unit = payload.empty() ? std::string("x") : std::string(payload);
    text.clear();
    text.reserve(want);
    while (text.size() < want) text.append(unit, 0, std::min(unit.size(), want - text.size()));
  }

  int64_t integer = 0;
  if (mode & 4) {
    integer = payload.empty() ? 0 : static_cast<int8_t>(payload[0]);
  } else {
    uint64_t v = 0;
    for (size_t i = 0; i < 8 && i < payload.size(); i++) {
      v = v << 8 | static_cast<unsigned char>(payload[i]);
    }
    std::memcpy(&integer, &v, sizeof integer);
  }

  for (ReplyType t : kTypes) {
    RedisReplyView r;
    r.type = t;
    r.str = text;
    r.integer = integer;
    check_lookup(r);
    for (WriteKind k : kKinds) check_write(k, r);
  }

  check_commands(payload);
  return 0;
}
