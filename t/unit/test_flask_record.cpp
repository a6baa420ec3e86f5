// Flask-Session records (src/core/flask_record.h): ids, the serializers' read order, what nginx
// writes, the commands. The records of the real Flask-Session 0.3 are t/test_flask_redis.py's.
#include <gtest/gtest.h>

#include <string>

#include "flask_msgpack.h"
#include "flask_pickle.h"
#include "flask_record.h"

using sess::FlaskRecordRead;
using sess::FlaskSerializer;
using sess::pstring;
using sess::SessionData;

namespace {

std::string keys_of(const SessionData& d) {
  std::string out;
  for (const auto& v : d.values()) {
    if (!out.empty()) out += ",";
    out += std::string(v.key);
  }
  return out;
}

// pickle.dumps({"_permanent": True, "username": "bob"}) (Python 3.11, protocol 4).
const std::string kPickleRecord(
    "\x80\x04\x95$\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\n_permanent\x94\x88\x8c\x08username"
    "\x94\x8c\x03" "bob\x94u.",
    47);

}  // namespace

TEST(FlaskRecord, SessionIdsAreCheckedForLengthAndCharset) {
  EXPECT_TRUE(sess::flask_sid_valid("0d5a9023-55c9-43ee-82b5-023db7cf0f3a"));
  EXPECT_TRUE(sess::flask_sid_valid(std::string(43, 'A')));
  EXPECT_TRUE(sess::flask_sid_valid(std::string(22, '_')));
  EXPECT_TRUE(sess::flask_sid_valid(std::string(128, 'z')));
  EXPECT_FALSE(sess::flask_sid_valid(std::string(21, 'a')));
  EXPECT_FALSE(sess::flask_sid_valid(std::string(129, 'a')));
  EXPECT_FALSE(sess::flask_sid_valid(""));
  // (The characters by the array's size: the literal holds a NUL of its own.)
  static const char kBad[] = " .:/*?%\"\\'\x00\x7f\xff{}";
  for (char c : std::string(kBad, sizeof(kBad) - 1)) {
    std::string sid(30, 'a');
    sid[7] = c;
    EXPECT_FALSE(sess::flask_sid_valid(sid)) << int(c);
  }
}

TEST(FlaskRecord, NewIdsFollowEachFlaskSession) {
  unsigned char rnd[32];
  for (int i = 0; i < 32; i++) rnd[i] = 0xff;
  pstring sid;
  sess::flask_sid_from_random(FlaskSerializer::Pickle, rnd, sid);
  EXPECT_EQ(std::string_view(sid), "ffffffff-ffff-4fff-bfff-ffffffffffff");  // version 4, RFC 4122 variant
  for (int i = 0; i < 32; i++) rnd[i] = 0;
  sess::flask_sid_from_random(FlaskSerializer::Pickle, rnd, sid);
  EXPECT_EQ(std::string_view(sid), "00000000-0000-4000-8000-000000000000");
  sess::flask_sid_from_random(FlaskSerializer::Msgpack, rnd, sid);
  EXPECT_EQ(std::string_view(sid), std::string(43, 'A'));  // token_urlsafe(32)
  for (auto ser : {FlaskSerializer::Pickle, FlaskSerializer::Msgpack, FlaskSerializer::Json}) {
    pstring a, b;
    ASSERT_TRUE(sess::flask_sid_new(ser, a));
    ASSERT_TRUE(sess::flask_sid_new(ser, b));
    EXPECT_NE(a, b);
    EXPECT_TRUE(sess::flask_sid_valid(a));
    EXPECT_EQ(a.size(), ser == FlaskSerializer::Pickle ? 36u : 43u);
  }
}

TEST(FlaskRecord, ReadOrderOfEachSerializer) {
  SessionData d;
  // pickle reads pickle only
  ASSERT_EQ(sess::flask_record_decode(FlaskSerializer::Pickle, kPickleRecord, d),
            FlaskRecordRead::Ok);
  EXPECT_EQ(keys_of(d), "_permanent,username");
  EXPECT_EQ(std::string_view(d.get("username")->text), "bob");
  EXPECT_EQ(sess::flask_record_decode(FlaskSerializer::Pickle, "{\"a\":1}", d),
            FlaskRecordRead::Invalid);
  EXPECT_TRUE(d.empty());
  // msgpack: msgpack, json, pickle; json: json, msgpack, pickle
  const std::string mp("\x81\xa8username\xa5" "carol", 16);
  for (auto ser : {FlaskSerializer::Msgpack, FlaskSerializer::Json}) {
    for (const std::string& rec : {mp, std::string("{\"username\":\"carol\"}"), kPickleRecord}) {
      ASSERT_EQ(sess::flask_record_decode(ser, rec, d), FlaskRecordRead::Ok) << rec;
      EXPECT_TRUE(d.get("username") != nullptr);
    }
  }
  // msgspec's datetime (ext -1), garbage, empty dicts, non-dicts
  // (its first byte is pickle's NEWOBJ: a fallback to pickle reports only records that start as
  // Python's pickles do, with PROTO)
  const std::string ts("\x81\xa2" "at\xd6\xff\x65\x53\xf1\x00", 10);
  EXPECT_EQ(sess::flask_record_decode(FlaskSerializer::Msgpack, ts, d), FlaskRecordRead::Invalid);
  for (std::string bad : {std::string("garbage"), std::string(), std::string("{}"),
                          std::string("\x80", 1), std::string("[1,2]"), std::string("\x90", 1)}) {
    for (auto ser : {FlaskSerializer::Pickle, FlaskSerializer::Msgpack, FlaskSerializer::Json}) {
      EXPECT_EQ(sess::flask_record_decode(ser, bad, d), FlaskRecordRead::Invalid) << bad;
      EXPECT_TRUE(d.empty());
    }
  }
}

TEST(FlaskRecord, PickleObjectsAreForbiddenInEveryReadOrder) {
  // {"x": os.system} via GLOBAL, and a REDUCE of it
  const std::string global("\x80\x02}q\x00X\x01\x00\x00\x00xq\x01" "cposix\nsystem\nq\x02s.", 31);
  const std::string reduce(
      "\x80\x04\x95$\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01x\x94\x8c\x05posix\x94\x8c\x06"
      "system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94s.",
      47);
  SessionData d;
  for (auto ser : {FlaskSerializer::Pickle, FlaskSerializer::Msgpack, FlaskSerializer::Json}) {
    EXPECT_EQ(sess::flask_record_decode(ser, global, d), FlaskRecordRead::Forbidden);
    EXPECT_EQ(sess::flask_record_decode(ser, reduce, d), FlaskRecordRead::Forbidden);
    EXPECT_TRUE(d.empty());
  }
}

TEST(FlaskRecord, NewRecordsArePermanentFirstAndRoundTrip) {
  SessionData d;
  d.set_string("username", "alice");
  for (auto ser : {FlaskSerializer::Pickle, FlaskSerializer::Msgpack, FlaskSerializer::Json}) {
    pstring rec;
    ASSERT_TRUE(sess::flask_record_encode(ser, d, true, rec));
    SessionData back;
    ASSERT_EQ(sess::flask_record_decode(ser, rec, back), FlaskRecordRead::Ok);
    EXPECT_EQ(keys_of(back), "_permanent,username");
    EXPECT_EQ(std::string_view(back.get("_permanent")->text), "true");
    pstring again;
    ASSERT_TRUE(sess::flask_record_encode(ser, back, true, again));
    EXPECT_EQ(std::string_view(again), std::string_view(rec));  // an existing _permanent is kept where it is
    pstring plain;
    ASSERT_TRUE(sess::flask_record_encode(ser, d, false, plain));
    ASSERT_EQ(sess::flask_record_decode(ser, plain, back), FlaskRecordRead::Ok);
    EXPECT_EQ(keys_of(back), "username");
  }
  // nginx writes what Python's pickle.dumps writes for the same dict
  SessionData bob;
  ASSERT_EQ(sess::flask_record_decode(FlaskSerializer::Pickle, kPickleRecord, bob),
            FlaskRecordRead::Ok);
  pstring rec;
  ASSERT_TRUE(sess::flask_record_encode(FlaskSerializer::Pickle, bob, false, rec));
  EXPECT_EQ(std::string_view(rec), kPickleRecord);
}

TEST(FlaskRecord, ChangesApplyToTheRecordReadAgain) {
  SessionData d;
  d.set_string("_permanent", "x");
  d.set_json("_permanent", "true");
  d.set_string("username", "bob");
  d.set_string("x", "1");
  sess::SessionChanges c;
  c.set_string("color", "red");
  c.unset("x");
  ASSERT_TRUE(sess::flask_apply_changes(c, d));
  EXPECT_EQ(keys_of(d), "_permanent,username,color");
  EXPECT_TRUE(d.get("color")->is_string);
  EXPECT_EQ(std::string_view(d.get("color")->text), "red");
  sess::SessionChanges cl;
  cl.clear();
  cl.set_string("a", "b");
  ASSERT_TRUE(sess::flask_apply_changes(cl, d));
  EXPECT_EQ(keys_of(d), "a");
}

TEST(FlaskRecord, Commands) {
  sess::RedisArgs a;
  sess::flask_cmd_read("session:abc", a);
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(std::string_view(a[0]), "EVAL");
  EXPECT_NE(a[1].find("'PTTL'"), std::string::npos);
  EXPECT_EQ(std::string_view(a[3]), "session:abc");
  sess::flask_cmd_get("session:abc", a);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(std::string_view(a[0]), "GET");
  sess::flask_cmd_create("k", "v", 3600000, a);
  ASSERT_EQ(a.size(), 6u);
  EXPECT_EQ(std::string_view(a[0]), "EVAL");
  EXPECT_NE(a[1].find("'NX'"), std::string::npos);
  EXPECT_EQ(std::string_view(a[3]), "k");
  EXPECT_EQ(std::string_view(a[5]), "3600000");
  sess::flask_cmd_update("k", "old", "new", 5000, a);
  ASSERT_EQ(a.size(), 7u);
  EXPECT_EQ(std::string_view(a[4]), "old");
  EXPECT_EQ(std::string_view(a[5]), "new");
  EXPECT_EQ(std::string_view(a[6]), "5000");
  sess::flask_cmd_touch("k", 5000, a);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(std::string_view(a[0]), "PEXPIRE");
  sess::flask_cmd_claim("k", "old", a);
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(std::string_view(a[4]), "old");
}

TEST(FlaskRecord, ReadReplyAndLastWrite) {
  sess::RespValue reply;
  reply.type = sess::RespType::Array;
  reply.elements.resize(2);
  reply.elements[0].type = sess::RespType::Bulk;
  reply.elements[0].str = "rec";
  reply.elements[1].type = sess::RespType::Integer;
  reply.elements[1].integer = 1234;
  const sess::RespValue* v = nullptr;
  int64_t pttl = 0;
  sess::flask_read_reply(reply, &v, &pttl);
  EXPECT_EQ(v, &reply.elements[0]);
  EXPECT_EQ(pttl, 1234);
  sess::RespValue err;
  err.type = sess::RespType::Error;
  err.str = "WRONGTYPE x";
  sess::flask_read_reply(err, &v, &pttl);
  EXPECT_EQ(v, &err);
  EXPECT_EQ(pttl, -1);
  // Written lifetime - pttl ago; never "older" for no TTL or a TTL over the lifetime.
  EXPECT_EQ(sess::flask_record_written_at(10000, 600, 300000), 10000u - 300u);
  EXPECT_EQ(sess::flask_record_written_at(10000, 600, 600000), 10000u);
  EXPECT_EQ(sess::flask_record_written_at(10000, 600, 900000), 10000u);
  EXPECT_EQ(sess::flask_record_written_at(10000, 600, -1), 10000u);
  EXPECT_EQ(sess::flask_record_written_at(10000, 600, -2), 10000u);
  EXPECT_EQ(sess::flask_record_written_at(10000, 600, 599500), 10000u);  // under a second
  EXPECT_EQ(sess::flask_record_written_at(100, 600, 1000), 0u);
}
