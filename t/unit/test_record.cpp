// Unit tests for record.h: v2 session records (a Redis hash per session), the per-key changes,
// the commands and scripts' argument layout, and what replies mean. The scripts themselves run
// against a real redis-server in t/unit/record_scripts_check.py (make record-scripts-check),
// which takes the commands from the RecordScripts tests at the end of this file.
#include "record.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <memory_resource>
#include <sstream>
#include <string>
#include <vector>

using sess::pstring;
using sess::RecordRead;
using sess::RecordWriteKind;
using sess::RedisArgs;
using sess::RespType;
using sess::RespValue;
using sess::SessionChanges;
using sess::SessionData;
using sess::WriteOutcome;

namespace {

using V = std::vector<std::string>;

std::vector<std::string> args(const RedisArgs& a) { return {a.begin(), a.end()}; }

RespValue bulk(std::string s) {
  RespValue r;
  r.type = RespType::Bulk;
  r.str = std::move(s);
  return r;
}

RespValue error(std::string s) {
  RespValue r;
  r.type = RespType::Error;
  r.str = std::move(s);
  return r;
}

RespValue status(std::string s) {
  RespValue r;
  r.type = RespType::Status;
  r.str = std::move(s);
  return r;
}

RespValue integer(int64_t i) {
  RespValue r;
  r.type = RespType::Integer;
  r.integer = i;
  return r;
}

RespValue of_type(RespType t) {
  RespValue r;
  r.type = t;
  return r;
}

// An HGETALL reply: field, value, field, value, ...
RespValue hash(const V& flat) {
  RespValue r;
  r.type = RespType::Array;
  for (const auto& s : flat) r.elements.push_back(bulk(s));
  return r;
}

std::string enc(const SessionData& d) {
  pstring out;
  d.encode(out);
  return std::string(out);
}

// The hash a create command writes (its field/value arguments) as the HGETALL reply.
RespValue fields_of_create(const RedisArgs& a) {
  RespValue r;
  r.type = RespType::Array;
  for (size_t i = 5; i < a.size(); i++) r.elements.push_back(bulk(std::string(a[i])));
  return r;
}

::testing::AssertionResult same(const SessionData& a, const SessionData& b) {
  if (a.size() != b.size()) {
    return ::testing::AssertionFailure() << "size " << a.size() << " != " << b.size();
  }
  for (size_t i = 0; i < a.size(); i++) {
    const auto& x = a.values()[i];
    const auto& y = b.values()[i];
    if (x.key != y.key || x.text != y.text || x.is_string != y.is_string) {
      return ::testing::AssertionFailure() << "entry " << i << " differs: " << x.key << "="
                                           << x.text << " vs " << y.key << "=" << y.text;
    }
  }
  return ::testing::AssertionSuccess();
}

using Sets = std::vector<std::pair<std::string, std::string>>;

}  // namespace

// ---------------------------------------------------------------------------------------------
// SessionChanges

TEST(SessionChanges, StartsEmpty) {
  SessionChanges c;
  EXPECT_TRUE(c.empty());
  EXPECT_FALSE(c.cleared());
  EXPECT_TRUE(c.sets().empty());
  EXPECT_TRUE(c.unsets().empty());
}

TEST(SessionChanges, SetStringIsJsonTextEscapedAsEncodeDoes) {
  SessionChanges c;
  const std::string tricky = std::string("a\"b\\c\x01\x7f\xc3\xa9\xff", 10);
  c.set_string("user", "alice");
  c.set_string("t", tricky);
  c.set_json("n", "3");
  EXPECT_FALSE(c.empty());
  SessionData d;
  d.set_string("t", tricky);
  const std::string e = enc(d);  // {"t":<literal>}
  EXPECT_EQ(c.sets(), (Sets{{"user", "\"alice\""}, {"t", e.substr(5, e.size() - 6)}, {"n", "3"}}));
  EXPECT_EQ(c.sets()[1].second, "\"a\\\"b\\\\c\\u0001\\u007f\xc3\xa9\\ufffd\"");
}

TEST(SessionChanges, LastChangeOfAKeyWinsInFirstChangeOrder) {
  SessionChanges c;
  c.set_string("a", "1");
  c.set_string("b", "2");
  c.set_json("a", "[1]");  // replaces in place
  EXPECT_EQ(c.sets(), (Sets{{"a", "[1]"}, {"b", "\"2\""}}));
  c.unset("a");  // set -> unset
  EXPECT_EQ(c.sets(), (Sets{{"b", "\"2\""}}));
  EXPECT_EQ(c.unsets(), (V{"a"}));
  c.unset("a");  // once
  c.unset("z");
  EXPECT_EQ(c.unsets(), (V{"a", "z"}));
  c.set_string("a", "back");  // unset -> set
  EXPECT_EQ(c.sets(), (Sets{{"b", "\"2\""}, {"a", "\"back\""}}));
  EXPECT_EQ(c.unsets(), (V{"z"}));
  EXPECT_FALSE(c.cleared());
}

TEST(SessionChanges, ClearForgetsEarlierChanges) {
  SessionChanges c;
  c.set_string("a", "1");
  c.unset("b");
  c.clear();
  EXPECT_TRUE(c.cleared());
  EXPECT_FALSE(c.empty());  // clearing is a change
  EXPECT_TRUE(c.sets().empty());
  EXPECT_TRUE(c.unsets().empty());
  c.set_string("c", "3");
  c.set_string("d", "4");
  EXPECT_EQ(c.sets(), (Sets{{"c", "\"3\""}, {"d", "\"4\""}}));
  c.unset("c");  // after clear: drops the pending set, nothing to remove
  c.unset("x");
  EXPECT_EQ(c.sets(), (Sets{{"d", "\"4\""}}));
  EXPECT_TRUE(c.unsets().empty());
  EXPECT_TRUE(c.cleared());
}

TEST(SessionChanges, ClearTwice) {
  SessionChanges c;
  c.clear();
  c.set_string("a", "1");
  c.clear();
  EXPECT_TRUE(c.cleared());
  EXPECT_TRUE(c.sets().empty());
}

TEST(SessionChanges, UnsetOnlyIsNotEmpty) {
  SessionChanges c;
  c.unset("a");
  EXPECT_FALSE(c.empty());
  EXPECT_FALSE(c.cleared());
}

// ---------------------------------------------------------------------------------------------
// commands

TEST(RecordCmd, Read) {
  RedisArgs a;
  sess::record_cmd_read("session:ab", a);
  EXPECT_EQ(args(a), (V{"HGETALL", "session:ab"}));
  sess::record_cmd_read_v1("session:ab", a);
  EXPECT_EQ(args(a), (V{"GETRANGE", "session:ab", "0", std::to_string(sess::kMaxRecordLen)}));
}

TEST(RecordCmd, CreateLayout) {
  SessionData d;
  d.set_string("user", "alice");
  d.set_json("n", "3");
  d.set_json("o", "{\"a\":[1,null]}");
  d.set_string("s", "say \"hi\"\n");
  RedisArgs a;
  sess::record_cmd_create("session:k", d, 3600, a);
  ASSERT_EQ(a.size(), 13u);
  EXPECT_EQ(a[0], "EVAL");
  EXPECT_EQ(a[2], "1");
  EXPECT_EQ(a[3], "session:k");
  EXPECT_EQ(a[4], "3600");
  EXPECT_EQ(V(a.begin() + 5, a.end()),
            (V{"user", "\"alice\"", "n", "3", "o", "{\"a\":[1,null]}", "s", "\"say \\\"hi\\\"\\u000a\""}));
}

TEST(RecordCmd, CreateValuesAreWhatEncodeWrites) {
  SessionData d;
  d.set_string("bad_utf8", "\xff\xfe");
  d.set_string("ctl", std::string("\0\x1f", 2));
  d.set_string("empty", "");
  RedisArgs a;
  sess::record_cmd_create("k", d, 1, a);
  ASSERT_EQ(a.size(), 11u);
  EXPECT_EQ(a[6], "\"\\ufffd\\ufffd\"");
  EXPECT_EQ(a[8], "\"\\u0000\\u001f\"");
  EXPECT_EQ(a[10], "\"\"");
  EXPECT_EQ(enc(d), "{\"bad_utf8\":" + std::string(a[6]) + ",\"ctl\":" + std::string(a[8]) +
                        ",\"empty\":" + std::string(a[10]) + "}");
}

TEST(RecordCmd, UpdateLayout) {
  SessionChanges c;
  c.set_string("user", "carol");
  c.unset("n");
  c.unset("m");
  c.set_json("list", "[1,2]");
  RedisArgs a;
  sess::record_cmd_update("session:k", c, 86400, a);
  ASSERT_GE(a.size(), 4u);
  EXPECT_EQ(a[0], "EVAL");
  EXPECT_EQ(V(a.begin() + 2, a.end()),
            (V{"1", "session:k", "86400", "0", "2", "n", "m", "user", "\"carol\"", "list", "[1,2]"}));
}

TEST(RecordCmd, UpdateCleared) {
  SessionChanges c;
  c.clear();
  c.set_string("user", "dave");
  RedisArgs a;
  sess::record_cmd_update("k", c, 5, a);
  EXPECT_EQ(V(a.begin() + 2, a.end()), (V{"1", "k", "5", "1", "0", "user", "\"dave\""}));
  SessionChanges none;
  sess::record_cmd_update("k", none, 7, a);
  EXPECT_EQ(V(a.begin() + 2, a.end()), (V{"1", "k", "7", "0", "0"}));
}

TEST(RecordCmd, ClaimLeavesAMarkerForAtMostAnHourIfTheRecordIsUnchanged) {
  SessionData d;
  d.set_string("user", "alice");
  d.set_json("n", "3");
  RedisArgs a;
  sess::record_cmd_claim("session:old", d, a);
  ASSERT_EQ(a.size(), 10u);
  EXPECT_EQ(a[0], "EVAL");
  EXPECT_EQ(V(a.begin() + 2, a.end()),
            (V{"1", "session:old", "3600000", "2", "user", "\"alice\"", "n", "3"}));
  EXPECT_NE(std::string(a[1]).find(std::string(sess::kRegeneratedMarker)), std::string::npos);
}

TEST(RecordCmd, DestroyKnowsTheMarker) {
  RedisArgs a;
  sess::record_cmd_destroy("session:k", a);
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a[0], "EVAL");
  EXPECT_EQ(V(a.begin() + 2, a.end()), (V{"1", "session:k"}));
  EXPECT_NE(std::string(a[1]).find(std::string(sess::kRegeneratedMarker)), std::string::npos);
}

TEST(RecordCmd, TouchIsAScriptThatKnowsTheMarker) {
  RedisArgs a;
  sess::record_cmd_touch("session:k", 1800, a);
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a[0], "EVAL");
  EXPECT_EQ(V(a.begin() + 2, a.end()), (V{"1", "session:k", "1800"}));
  EXPECT_NE(std::string(a[1]).find(std::string(sess::kRegeneratedMarker)), std::string::npos);
}

TEST(RecordRead, MarkerIsNoSession) {
  RespValue v = bulk(std::string(sess::kRegeneratedMarker));
  SessionData d;
  EXPECT_EQ(sess::record_read_v1(&v, false, &d, nullptr), RecordRead::Missing);
  EXPECT_TRUE(d.empty());
}

TEST(RecordCmd, MigrateLayout) {
  const std::string v1 = "{ \"user\" : \"alice\", \"n\" : 3 }";
  SessionData d;
  ASSERT_TRUE(d.decode(v1));
  RedisArgs a;
  sess::record_cmd_migrate("session:k", v1, d, a);
  ASSERT_GE(a.size(), 4u);
  EXPECT_EQ(a[0], "EVAL");
  EXPECT_EQ(V(a.begin() + 2, a.end()), (V{"1", "session:k", v1, "user", "\"alice\"", "n", "3"}));
}

TEST(RecordCmd, ScriptsAreDistinctAndTouchOnlyTheirKey) {
  SessionData d;
  d.set_string("a", "b");
  SessionChanges c;
  RedisArgs create, update, migrate, touch, claim, destroy;
  sess::record_cmd_create("k", d, 1, create);
  sess::record_cmd_update("k", c, 1, update);
  sess::record_cmd_migrate("k", "{\"a\":\"b\"}", d, migrate);
  sess::record_cmd_touch("k", 1, touch);
  sess::record_cmd_claim("k", d, claim);
  sess::record_cmd_destroy("k", destroy);
  const std::string scripts[] = {std::string(create[1]), std::string(update[1]),
                                 std::string(migrate[1]), std::string(touch[1]),
                                 std::string(claim[1]),   std::string(destroy[1])};
  for (size_t i = 0; i < std::size(scripts); i++) {
    for (size_t j = i + 1; j < std::size(scripts); j++) EXPECT_NE(scripts[i], scripts[j]);
  }
  for (const auto& s : scripts) {
    EXPECT_NE(s.find("KEYS[1]"), std::string::npos);
    EXPECT_EQ(s.find("KEYS[2]"), std::string::npos) << s;  // one key: any cluster slot
    EXPECT_EQ(s.find('\n'), std::string::npos);
  }
}

TEST(RecordCmd, LargeTtlAndBinaryKey) {
  SessionData d;
  d.set_string("u", "v");
  const std::string key("p\0\r\n:", 5);
  RedisArgs a;
  sess::record_cmd_create(key, d, UINT64_MAX, a);
  EXPECT_EQ(std::string(a[3]), key);
  EXPECT_EQ(a[4], "18446744073709551615");
}

TEST(RecordCmd, ReplacesPreviousArgumentsAndUsesTheVectorsResource) {
  std::pmr::monotonic_buffer_resource pool;
  RedisArgs a(&pool);
  sess::record_cmd_destroy("x", a);
  SessionData d;
  d.set_string("user", std::string(100, 'u'));  // past the small-string buffer
  sess::record_cmd_create("a-key-long-enough-to-leave-the-small-string-buffer", d, 5, a);
  ASSERT_EQ(a.size(), 7u);
  for (const auto& s : a) EXPECT_EQ(s.get_allocator().resource(), &pool);
  SessionChanges c;
  c.set_string("user", std::string(100, 'v'));
  sess::record_cmd_update("k", c, 5, a);
  ASSERT_EQ(a.size(), 9u);
  for (const auto& s : a) EXPECT_EQ(s.get_allocator().resource(), &pool);
}

// ---------------------------------------------------------------------------------------------
// write replies

TEST(RecordWrite, ClaimFailure) {
  using O = WriteOutcome;
  EXPECT_EQ(sess::claim_failure_outcome(O::Gone), O::Gone);
  EXPECT_EQ(sess::claim_failure_outcome(O::Moved), O::Moved);
  EXPECT_EQ(sess::claim_failure_outcome(O::Changed), O::Changed);
  for (O o : {O::Refused, O::Failed, O::Exists, O::Done}) {
    EXPECT_EQ(sess::claim_failure_outcome(o), O::Failed);
  }
}

TEST(RecordWrite, Table) {
  using K = RecordWriteKind;
  using O = WriteOutcome;
  struct Row {
    K kind;
    RespValue reply;
    O want;
  };
  const RespValue oom = error("OOM command not allowed when used memory > 'maxmemory'.");
  const RespValue readonly = error("READONLY You can't write against a read only replica.");
  const RespValue script_error = error("ERR user_script:1: Script attempted to access ...");
  const Row rows[] = {
      {K::Create, integer(1), O::Done},
      {K::Create, integer(0), O::Exists},
      {K::Update, integer(1), O::Done},
      {K::Update, integer(0), O::Gone},  // logout was first: nothing re-created
      {K::Claim, integer(1), O::Done},
      {K::Claim, integer(0), O::Gone},
      {K::Touch, integer(1), O::Done},
      {K::Touch, integer(0), O::Gone},
      {K::Update, integer(-1), O::Moved},  // session_regenerate was first: refused, not lost
      {K::Touch, integer(-1), O::Moved},
      {K::Migrate, integer(1), O::Done},
      {K::Migrate, integer(0), O::Gone},
      {K::Delete, integer(1), O::Done},
      {K::Delete, integer(0), O::Done},  // gone either way
      // answers the commands cannot give
      {K::Create, integer(2), O::Failed},
      {K::Create, integer(-1), O::Failed},
      {K::Claim, integer(-1), O::Moved},    // another session_regenerate was first
      {K::Claim, integer(-2), O::Changed},  // a change was first: the new id would miss it
      {K::Delete, integer(-1), O::Moved},   // destroy of a regenerated id: the marker stays
      {K::Migrate, integer(-1), O::Failed},
      {K::Update, integer(2), O::Failed},
      {K::Claim, integer(2), O::Failed},
      {K::Touch, integer(-2), O::Failed},
      {K::Migrate, integer(INT64_MAX), O::Failed},
      {K::Delete, integer(-2), O::Failed},
      {K::Update, integer(-2), O::Failed},
      {K::Touch, integer(-3), O::Failed},
      {K::Claim, integer(-3), O::Failed},
      {K::Create, status("OK"), O::Failed},
      {K::Update, status("OK"), O::Failed},
      {K::Update, bulk("1"), O::Failed},
      {K::Update, of_type(RespType::Nil), O::Failed},
      {K::Create, of_type(RespType::Nil), O::Failed},
      {K::Claim, of_type(RespType::NilArray), O::Failed},
      {K::Migrate, of_type(RespType::Array), O::Failed},
      {K::Delete, status("OK"), O::Failed},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(sess::record_write_outcome(r.kind, &r.reply), r.want)
        << static_cast<int>(r.kind) << " " << static_cast<int>(r.reply.type) << " "
        << r.reply.integer;
  }
  for (K k : {K::Create, K::Update, K::Claim, K::Touch, K::Delete, K::Migrate}) {
    EXPECT_EQ(sess::record_write_outcome(k, nullptr), O::Failed);
    EXPECT_EQ(sess::record_write_outcome(k, &oom), O::Refused);
    EXPECT_EQ(sess::record_write_outcome(k, &readonly), O::Refused);
    EXPECT_EQ(sess::record_write_outcome(k, &script_error), O::Refused);
    const RespValue empty_error = error("");
    EXPECT_EQ(sess::record_write_outcome(k, &empty_error), O::Refused);
  }
}

// ---------------------------------------------------------------------------------------------
// record_read (HGETALL)

TEST(RecordRead, Found) {
  const RespValue r = hash({"user", "\"alice\"", "n", " 3 ", "o", "{ \"a\" : [1, \"x\"] }", "b",
                            "true", "z", "null", "s", "\"null\"", "e", "\"\"", "u",
                            "\"\\u00e9\\ud83d\\ude00\""});
  SessionData d;
  ASSERT_EQ(sess::record_read(&r, false, &d), RecordRead::Found);
  EXPECT_EQ(enc(d),
            "{\"user\":\"alice\",\"n\":3,\"o\":{\"a\":[1,\"x\"]},\"b\":true,\"z\":null,"
            "\"s\":\"null\",\"e\":\"\",\"u\":\"\xc3\xa9\xf0\x9f\x98\x80\"}");
  ASSERT_NE(d.get("user"), nullptr);
  EXPECT_TRUE(d.get("user")->is_string);
  EXPECT_EQ(d.get("user")->text, "alice");
  EXPECT_FALSE(d.get("n")->is_string);
  EXPECT_EQ(d.get("n")->text, "3");
  EXPECT_TRUE(d.get("s")->is_string);
  EXPECT_FALSE(d.get("z")->is_string);
  EXPECT_TRUE(sess::session_user_logged_in(d.get("user")));
}

TEST(RecordRead, Outcomes) {
  struct Row {
    const char* what;
    RespValue reply;
    RecordRead want;
  };
  const Row rows[] = {
      {"empty array: no such key", hash({}), RecordRead::Missing},
      {"nil", of_type(RespType::Nil), RecordRead::Missing},
      {"nil array", of_type(RespType::NilArray), RecordRead::Missing},
      {"WRONGTYPE: a v1 string record",
       error("WRONGTYPE Operation against a key holding the wrong kind of value"), RecordRead::V1},
      {"WRONGTYPE alone", error("WRONGTYPE"), RecordRead::V1},
      {"wrongtype in lower case", error("wrongtype"), RecordRead::Failed},
      {"WRONGTYPE not at the start", error("ERR WRONGTYPE"), RecordRead::Failed},
      {"LOADING", error("LOADING Redis is loading the dataset in memory"), RecordRead::Failed},
      {"NOAUTH", error("NOAUTH Authentication required."), RecordRead::Failed},
      {"MOVED", error("MOVED 3999 127.0.0.1:6381"), RecordRead::Failed},
      {"status", status("OK"), RecordRead::Failed},
      {"integer", integer(0), RecordRead::Failed},
      {"bulk", bulk("{\"user\":\"alice\"}"), RecordRead::Failed},
      {"one field", hash({"user", "\"alice\""}), RecordRead::Found},
  };
  for (const auto& r : rows) {
    SessionData d;
    d.set_string("stale", "x");
    EXPECT_EQ(sess::record_read(&r.reply, false, &d), r.want) << r.what;
    if (r.want != RecordRead::Found) {
      EXPECT_TRUE(d.empty()) << r.what;
    }
  }
}

TEST(RecordRead, NoReplyAndTooLarge) {
  SessionData d;
  d.set_string("stale", "x");
  EXPECT_EQ(sess::record_read(nullptr, false, &d), RecordRead::Failed);
  EXPECT_TRUE(d.empty());
  const RespValue ok = hash({"user", "\"alice\""});
  d.set_string("stale", "x");
  EXPECT_EQ(sess::record_read(&ok, true, &d), RecordRead::TooLarge);  // the parser said so
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(sess::record_read(nullptr, true, &d), RecordRead::TooLarge);
}

TEST(RecordRead, HostileRecordsAreInvalid) {
  std::vector<std::pair<const char*, RespValue>> rows = {
      {"odd length", hash({"user"})},
      {"odd length after a pair", hash({"user", "\"alice\"", "n"})},
      {"value is not JSON", hash({"user", "alice"})},
      {"empty value", hash({"user", ""})},
      {"unterminated string", hash({"user", "\"alice"})},
      {"two values", hash({"user", "1 2"})},
      {"object member smuggled in", hash({"user", "1,\"admin\":true"})},
      {"trailing garbage", hash({"user", "\"a\"x"})},
      {"lone surrogate", hash({"user", "\"\\udc00\""})},
      {"invalid UTF-8 in a string", hash({"user", "\"\xff\""})},
      {"raw control byte in a string", hash({"user", "\"a\nb\""})},
      {"NUL in a value", hash({"user", std::string("\"a\"\0", 4)})},
      {"empty key", hash({"", "1"})},
      {"key with a dash", hash({"user-name", "1"})},
      {"key with a NUL", hash({std::string("user\0", 5), "1"})},
      {"key with CRLF", hash({"user\r\n", "1"})},
      {"key too long", hash({std::string(65, 'k'), "1"})},
      {"non-ASCII key", hash({"caf\xc3\xa9", "1"})},
      {"duplicate key", hash({"user", "\"a\"", "user", "\"b\""})},
      {"nesting too deep", hash({"a", std::string(16, '[') + std::string(16, ']')})},
  };
  {
    RespValue r = hash({"user", "\"alice\"", "n", "1"});
    r.elements[2] = integer(1);  // a field name that is no bulk string
    rows.emplace_back("integer field", r);
    r = hash({"user", "\"alice\""});
    r.elements[1] = of_type(RespType::Nil);
    rows.emplace_back("nil value", r);
    r = hash({"user", "\"alice\""});
    r.elements[1] = hash({"\"x\""});
    rows.emplace_back("nested array value", r);
    r = hash({"user", "\"alice\""});
    r.elements[0] = status("user");
    rows.emplace_back("status field", r);
    r = hash({"user", "\"alice\""});
    r.elements[1] = error("ERR");
    rows.emplace_back("error value", r);
  }
  for (const auto& [what, reply] : rows) {
    SessionData d;
    d.set_string("stale", "x");
    EXPECT_EQ(sess::record_read(&reply, false, &d), RecordRead::Invalid) << what;
    EXPECT_TRUE(d.empty()) << what;
  }
}

TEST(RecordRead, AtMostMaxKeys) {
  V flat;
  for (size_t i = 0; i < SessionData::kMaxKeys; i++) {
    flat.push_back("k" + std::to_string(i));
    flat.push_back(std::to_string(i));
  }
  SessionData d;
  RespValue r = hash(flat);
  EXPECT_EQ(sess::record_read(&r, false, &d), RecordRead::Found);
  EXPECT_EQ(d.size(), SessionData::kMaxKeys);
  r.elements.push_back(bulk("one_more"));
  r.elements.push_back(bulk("1"));
  EXPECT_EQ(sess::record_read(&r, false, &d), RecordRead::Invalid);
  EXPECT_TRUE(d.empty());
}

TEST(RecordRead, DeepestValueAsInV1) {
  // A value may nest as deep as a value of a v1 JSON object.
  const std::string deepest = std::string(SessionData::kMaxDepth - 1, '[') +
                              std::string(SessionData::kMaxDepth - 1, ']');
  SessionData v1;
  ASSERT_TRUE(v1.decode("{\"a\":" + deepest + "}"));
  const RespValue r = hash({"a", deepest});
  SessionData d;
  ASSERT_EQ(sess::record_read(&r, false, &d), RecordRead::Found);
  EXPECT_TRUE(same(d, v1));
}

TEST(RecordRead, UsesTheDatasResource) {
  std::pmr::monotonic_buffer_resource pool;
  SessionData d(&pool);
  const RespValue r = hash({"user", "\"" + std::string(100, 'a') + "\""});
  ASSERT_EQ(sess::record_read(&r, false, &d), RecordRead::Found);
  EXPECT_EQ(d.values()[0].text.get_allocator().resource(), &pool);
}

// ---------------------------------------------------------------------------------------------
// record_read_v1 (GETRANGE of a v1 string record)

TEST(RecordReadV1, Outcomes) {
  const std::string rec = "{\"user\":\"alice\",\"n\":3}";
  const std::string spaced = "{\"user\":\"" + std::string(sess::kMaxRecordLen - 11, ' ') + "\"}";
  ASSERT_EQ(spaced.size(), sess::kMaxRecordLen);
  struct Row {
    const char* what;
    RespValue reply;
    RecordRead want;
  };
  const Row rows[] = {
      {"a record", bulk(rec), RecordRead::Found},
      {"exactly the limit", bulk(spaced), RecordRead::Found},
      {"one byte more", bulk(spaced + " "), RecordRead::TooLarge},
      {"missing key (GETRANGE gives \"\")", bulk(""), RecordRead::Missing},
      {"nil", of_type(RespType::Nil), RecordRead::Missing},
      {"empty object: an empty record", bulk("{}"), RecordRead::Invalid},
      {"not JSON", bulk("alice"), RecordRead::Invalid},
      {"an array", bulk("[1]"), RecordRead::Invalid},
      {"a string", bulk("\"alice\""), RecordRead::Invalid},
      {"truncated", bulk("{\"user\":\"al"), RecordRead::Invalid},
      {"key nginx cannot write", bulk("{\"user-name\":\"a\"}"), RecordRead::Invalid},
      {"empty key", bulk("{\"\":\"a\"}"), RecordRead::Invalid},
      {"WRONGTYPE: neither hash nor string",
       error("WRONGTYPE Operation against a key holding the wrong kind of value"),
       RecordRead::Invalid},
      {"other error", error("LOADING"), RecordRead::Failed},
      {"status", status("OK"), RecordRead::Failed},
      {"integer", integer(1), RecordRead::Failed},
      {"array", hash({"user", "\"alice\""}), RecordRead::Failed},
  };
  for (const auto& r : rows) {
    SessionData d;
    d.set_string("stale", "x");
    pstring json("stale");
    EXPECT_EQ(sess::record_read_v1(&r.reply, false, &d, &json), r.want) << r.what;
    if (r.want == RecordRead::Found) {
      EXPECT_EQ(std::string(json), r.reply.str) << r.what;
      EXPECT_FALSE(d.empty());
    } else {
      EXPECT_TRUE(json.empty()) << r.what;
      EXPECT_TRUE(d.empty()) << r.what;
    }
  }
  SessionData d;
  EXPECT_EQ(sess::record_read_v1(nullptr, false, &d, nullptr), RecordRead::Failed);
  const RespValue ok = bulk(rec);
  EXPECT_EQ(sess::record_read_v1(&ok, true, &d, nullptr), RecordRead::TooLarge);
  EXPECT_EQ(sess::record_read_v1(&ok, false, &d, nullptr), RecordRead::Found);  // json optional
  EXPECT_EQ(enc(d), rec);
}

// ---------------------------------------------------------------------------------------------
// round trips

TEST(RecordRoundTrip, CreateFieldsReadBack) {
  SessionData d;
  d.set_string("user", "alice");
  d.set_string("quote", "say \"hi\"\\ \x01\x7f \xc3\xa9 \xf0\x9f\x98\x80");
  d.set_string("empty", "");
  d.set_string("nullish", "null");
  d.set_json("n", "-1.5e3");
  d.set_json("list", "[1,\"a\",{\"b\":null}]");
  d.set_json("f", "false");
  RedisArgs a;
  sess::record_cmd_create("k", d, 10, a);
  const RespValue r = fields_of_create(a);
  SessionData back;
  ASSERT_EQ(sess::record_read(&r, false, &back), RecordRead::Found);
  EXPECT_TRUE(same(d, back));
}

TEST(RecordRoundTrip, V1MigratesToTheSameData) {
  const std::string v1 =
      "{\"user\":\"alice\",\"n\":3,\"o\":{\"x\":[true,null]},\"s\":\"\\u0001\\\"\","
      "\"csrf\":\"abc\"}";
  const RespValue r1 = bulk(v1);
  SessionData d;
  pstring json;
  ASSERT_EQ(sess::record_read_v1(&r1, false, &d, &json), RecordRead::Found);
  RedisArgs a;
  sess::record_cmd_migrate("k", json, d, a);
  RespValue r2;
  r2.type = RespType::Array;
  for (size_t i = 5; i < a.size(); i++) r2.elements.push_back(bulk(std::string(a[i])));
  SessionData back;
  ASSERT_EQ(sess::record_read(&r2, false, &back), RecordRead::Found);
  EXPECT_TRUE(same(d, back));
  EXPECT_EQ(enc(back), v1);
}

// ---------------------------------------------------------------------------------------------
// The commands that t/unit/record_scripts_check.py runs against a real redis-server.
//
// Dump: one line per command, "<name> <hex arg> <hex arg> ...", written to the file named by
// RECORD_SCRIPTS_DUMP when it is set (the check script sets it); always built and checked here.
// ReadBack: the file named by RECORD_SCRIPTS_READ holds one real reply per line ("A <hex> ..."
// for an array of bulk strings, "E <hex>" for an error); each is classified by record_read and
// written to RECORD_SCRIPTS_READ_OUT as "<name> <outcome> <hex of the data's JSON>".

namespace {

std::string hex(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0x0f]);
  }
  return out;
}

bool unhex(std::string_view h, std::string* out) {
  if (h.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < h.size(); i += 2) {
    const int hi = sess::hex_value(h[i]);
    const int lo = sess::hex_value(h[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

const char* outcome_name(RecordRead r) {
  switch (r) {
    case RecordRead::Found: return "Found";
    case RecordRead::Missing: return "Missing";
    case RecordRead::V1: return "V1";
    case RecordRead::Invalid: return "Invalid";
    case RecordRead::TooLarge: return "TooLarge";
    case RecordRead::Failed: return "Failed";
  }
  return "?";
}

// The scenario's commands. The check script knows the keys and what each should leave behind.
std::vector<std::pair<std::string, RedisArgs>> script_commands() {
  std::vector<std::pair<std::string, RedisArgs>> cmds;
  auto add = [&](const char* name) -> RedisArgs& {
    cmds.emplace_back(name, RedisArgs());
    return cmds.back().second;
  };

  sess::record_cmd_read("t:a", add("read"));
  sess::record_cmd_read_v1("t:a", add("read_v1"));

  SessionData d;
  d.set_string("user", "alice");
  d.set_json("n", "3");
  d.set_json("obj", "{\"a\":[1,null,\"x\"]}");
  d.set_string("tricky", "q\"b\\ \x01\n \xc3\xa9 \xf0\x9f\x98\x80 \xff");
  d.set_string("nullish", "null");
  sess::record_cmd_create("t:a", d, 100, add("create"));

  SessionChanges c;
  c.set_string("user", "carol");
  c.unset("n");
  c.set_json("list", "[1,2]");
  c.unset("absent");
  sess::record_cmd_update("t:a", c, 200, add("update"));

  SessionChanges x;
  x.set_string("x", "from request x");
  sess::record_cmd_update("t:a", x, 300, add("update_x"));
  SessionChanges y;
  y.set_json("y", "2");
  sess::record_cmd_update("t:a", y, 300, add("update_y"));

  SessionChanges cl;
  cl.set_string("gone", "1");
  cl.clear();
  cl.set_string("user", "dave");
  sess::record_cmd_update("t:a", cl, 50, add("update_clear"));
  SessionChanges clear_only;
  clear_only.clear();
  sess::record_cmd_update("t:a", clear_only, 50, add("update_clear_only"));
  sess::record_cmd_update("t:a", SessionChanges(), 70, add("update_nothing"));

  sess::record_cmd_touch("t:a", 90, add("touch"));
  sess::record_cmd_claim("t:a", d, add("claim"));
  sess::record_cmd_update("t:a", x, 300, add("update_moved"));
  sess::record_cmd_touch("t:a", 90, add("touch_moved"));
  sess::record_cmd_destroy("t:a", add("destroy"));
  sess::record_cmd_read_v1("t:a", add("read_marker"));
  sess::record_cmd_claim("t:a", d, add("claim_again"));
  sess::record_cmd_touch("t:none", 90, add("touch_gone"));
  SessionData fewer;
  fewer.set_string("user", "alice");
  sess::record_cmd_claim("t:a", fewer, add("claim_fewer"));
  SessionData other(d);
  other.set_string("user", "mallory");
  sess::record_cmd_claim("t:a", other, add("claim_other"));

  const std::string v1 = "{\"user\":\"erin\",\"n\":7,\"o\":{\"k\":[true]},\"s\":\"\\u00e9\\n\"}";
  SessionData dv1;
  if (dv1.decode(v1)) sess::record_cmd_migrate("t:v1", v1, dv1, add("migrate"));
  return cmds;
}

const char* const kReadBackSample[] = {
    // what HGETALL of "create" gives (values as the create command wrote them)
    "create A 75736572 22616c69636522 6e 33",
    "wrongtype E 57524f4e4754595045204f7065726174696f6e",  // WRONGTYPE Operation
    "missing A",
    "hostile A 75736572 616c696365",  // user = alice (not JSON)
};

}  // namespace

TEST(RecordScripts, Dump) {
  const auto cmds = script_commands();
  ASSERT_EQ(cmds.size(), 20u);
  std::ostringstream out;
  for (const auto& [name, a] : cmds) {
    ASSERT_FALSE(a.empty()) << name;
    out << name;
    for (const auto& arg : a) out << ' ' << hex(arg);
    out << '\n';
  }
  const char* path = std::getenv("RECORD_SCRIPTS_DUMP");
  if (path != nullptr) {
    std::ofstream f(path, std::ios::binary);
    f << out.str();
    ASSERT_TRUE(f.good()) << path;
  }
}

TEST(RecordScripts, ReadBack) {
  std::vector<std::string> lines;
  const char* in_path = std::getenv("RECORD_SCRIPTS_READ");
  const char* out_path = std::getenv("RECORD_SCRIPTS_READ_OUT");
  if (in_path != nullptr && out_path != nullptr) {
    std::ifstream f(in_path, std::ios::binary);
    ASSERT_TRUE(f.good()) << in_path;
    for (std::string line; std::getline(f, line);) lines.push_back(line);
  } else {
    lines.assign(std::begin(kReadBackSample), std::end(kReadBackSample));
  }

  std::ostringstream out;
  std::vector<std::string> outcomes;
  for (const auto& line : lines) {
    std::istringstream words(line);
    std::string name, kind, word, bytes;
    ASSERT_TRUE(words >> name >> kind) << line;
    RespValue reply;
    reply.type = kind == "E" ? RespType::Error : RespType::Array;
    while (words >> word) {
      ASSERT_TRUE(unhex(word, &bytes)) << line;
      if (kind == "E") {
        reply.str = bytes;
      } else {
        reply.elements.push_back(bulk(bytes));
      }
    }
    SessionData d;
    const RecordRead r = sess::record_read(&reply, false, &d);
    outcomes.push_back(outcome_name(r));
    out << name << ' ' << outcome_name(r) << ' ' << hex(enc(d)) << '\n';
  }
  if (in_path != nullptr && out_path != nullptr) {
    std::ofstream f(out_path, std::ios::binary);
    f << out.str();
    ASSERT_TRUE(f.good()) << out_path;
  } else {
    EXPECT_EQ(outcomes, (V{"Found", "V1", "Missing", "Invalid"}));
  }
}
