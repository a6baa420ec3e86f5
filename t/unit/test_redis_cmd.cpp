// Unit tests for redis_cmd.h: keys, command argument vectors and reply classification.
#include "redis_cmd.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using sess::LookupOutcome;
using sess::pstring;
using sess::RedisArgs;
using sess::RedisReplyView;
using sess::ReplyType;
using sess::WriteKind;
using sess::WriteOutcome;

namespace {

std::vector<std::string> args(const RedisArgs& a) { return {a.begin(), a.end()}; }

using V = std::vector<std::string>;

RedisReplyView reply(ReplyType t, std::string_view s = {}, int64_t i = 0) {
  RedisReplyView r;
  r.type = t;
  r.str = s;
  r.integer = i;
  return r;
}

RedisReplyView str(std::string_view s) { return reply(ReplyType::String, s); }
RedisReplyView status(std::string_view s) { return reply(ReplyType::Status, s); }
RedisReplyView error(std::string_view s) { return reply(ReplyType::Error, s); }
RedisReplyView integer(int64_t i) { return reply(ReplyType::Integer, {}, i); }
RedisReplyView nil() { return reply(ReplyType::Nil); }
RedisReplyView none() { return reply(ReplyType::None); }
RedisReplyView array() { return reply(ReplyType::Array); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// redis_key

TEST(RedisKey, PrefixAndLowercaseHex) {
  const unsigned char id[16] = {0x00, 0x01, 0x0a, 0x0f, 0x10, 0x7f, 0x80, 0x9a,
                                0xab, 0xbc, 0xcd, 0xde, 0xef, 0xf0, 0xfe, 0xff};
  pstring k;
  sess::redis_key("session:", id, sizeof(id), k);
  EXPECT_EQ(k, "session:00010a0f107f809aabbccddeeff0feff");
  EXPECT_EQ(k.size(), 8u + 32u);
}

TEST(RedisKey, Appends) {
  const unsigned char id[2] = {0xde, 0xad};
  pstring k("x|");
  sess::redis_key("p:", id, sizeof(id), k);
  EXPECT_EQ(k, "x|p:dead");
}

TEST(RedisKey, EmptyPrefixAndEmptyId) {
  const unsigned char id[1] = {0xc3};
  pstring k;
  sess::redis_key("", id, 1, k);
  EXPECT_EQ(k, "c3");
  pstring e;
  sess::redis_key("session:", id, 0, e);
  EXPECT_EQ(e, "session:");
}

TEST(RedisKey, PrefixIsVerbatim) {
  const unsigned char id[1] = {0x01};
  pstring k;
  sess::redis_key(std::string_view("a b\0:", 5), id, 1, k);
  EXPECT_EQ(std::string(k), std::string("a b\0:01", 7));
}

// ---------------------------------------------------------------------------------------------
// commands

TEST(RedisCmd, Lookup) {
  RedisArgs a;
  sess::redis_cmd_lookup("session:ab", a);
  EXPECT_EQ(args(a), (V{"GETRANGE", "session:ab", "0", "65536"}));
  EXPECT_EQ(std::to_string(sess::kMaxRecordLen), std::string(a[3]));  // inclusive end: one byte too many
}

TEST(RedisCmd, CreateIsNx) {
  RedisArgs a;
  sess::redis_cmd_create("k", "{\"user\":\"alice\"}", 3600, a);
  EXPECT_EQ(args(a), (V{"SET", "k", "{\"user\":\"alice\"}", "EX", "3600", "NX"}));
}

TEST(RedisCmd, UpdateIsXx) {
  RedisArgs a;
  sess::redis_cmd_update("k", "v", 1, a);
  EXPECT_EQ(args(a), (V{"SET", "k", "v", "EX", "1", "XX"}));
}

TEST(RedisCmd, Touch) {
  RedisArgs a;
  sess::redis_cmd_touch("k", 2678400, a);
  EXPECT_EQ(args(a), (V{"EXPIRE", "k", "2678400"}));
}

TEST(RedisCmd, Delete) {
  RedisArgs a;
  sess::redis_cmd_delete("k", a);
  EXPECT_EQ(args(a), (V{"DEL", "k"}));
}

TEST(RedisCmd, LargeTtlAndBinaryValue) {
  RedisArgs a;
  const std::string v("a\0\r\n b", 6);
  sess::redis_cmd_update("k", v, UINT64_MAX, a);
  ASSERT_EQ(a.size(), 6u);
  EXPECT_EQ(std::string(a[2]), v);  // values are arguments, never inlined text
  EXPECT_EQ(a[4], "18446744073709551615");
}

TEST(RedisCmd, ReplacesPreviousArguments) {
  RedisArgs a;
  sess::redis_cmd_create("k", "v", 10, a);
  sess::redis_cmd_delete("k2", a);
  EXPECT_EQ(args(a), (V{"DEL", "k2"}));
  sess::redis_cmd_lookup("k3", a);
  EXPECT_EQ(args(a), (V{"GETRANGE", "k3", "0", "65536"}));
}

TEST(RedisCmd, ArgumentsUseTheVectorsMemoryResource) {
  std::pmr::monotonic_buffer_resource pool;
  RedisArgs a(&pool);
  sess::redis_cmd_create("a-key-long-enough-to-leave-the-small-string-buffer", "value", 5, a);
  ASSERT_EQ(a.size(), 6u);
  for (const auto& s : a) EXPECT_EQ(s.get_allocator().resource(), &pool);
}

// ---------------------------------------------------------------------------------------------
// lookup replies

TEST(RedisLookup, Table) {
  const std::string max(sess::kMaxRecordLen, 'x');
  const std::string over(sess::kMaxRecordLen + 1, 'x');
  struct Row {
    const char* what;
    RedisReplyView reply;
    LookupOutcome want;
  } rows[] = {
      {"a record", str("{\"user\":\"a\"}"), LookupOutcome::Found},
      {"one byte", str("x"), LookupOutcome::Found},
      {"exactly the limit", str(max), LookupOutcome::Found},
      {"one byte more: the record is larger", str(over), LookupOutcome::TooLarge},
      {"missing key (GETRANGE gives \"\")", str(""), LookupOutcome::Missing},
      {"nil", nil(), LookupOutcome::Missing},
      {"WRONGTYPE", error("WRONGTYPE Operation against a key holding the wrong kind of value"),
       LookupOutcome::WrongType},
      {"WRONGTYPE alone", error("WRONGTYPE"), LookupOutcome::WrongType},
      {"wrongtype in lower case is another error", error("wrongtype x"), LookupOutcome::Failed},
      {"WRONGTYPE not at the start", error("ERR WRONGTYPE"), LookupOutcome::Failed},
      {"WRONGTYPE as a string value", str("WRONGTYPE"), LookupOutcome::Found},
      {"LOADING", error("LOADING Redis is loading the dataset in memory"), LookupOutcome::Failed},
      {"NOAUTH", error("NOAUTH Authentication required."), LookupOutcome::Failed},
      {"empty error", error(""), LookupOutcome::Failed},
      {"no reply", none(), LookupOutcome::Failed},
      {"status", status("OK"), LookupOutcome::Failed},
      {"integer", integer(1), LookupOutcome::Failed},
      {"array", array(), LookupOutcome::Failed},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(sess::redis_lookup_outcome(r.reply), r.want) << r.what;
  }
}

// ---------------------------------------------------------------------------------------------
// write replies

TEST(RedisWrite, Table) {
  struct Row {
    const char* what;
    WriteKind kind;
    RedisReplyView reply;
    WriteOutcome want;
  } rows[] = {
      // create: SET NX
      {"create OK", WriteKind::Create, status("OK"), WriteOutcome::Done},
      {"create of an existing id", WriteKind::Create, nil(), WriteOutcome::Exists},
      {"create OOM", WriteKind::Create, error("OOM command not allowed when used memory > "
                                              "'maxmemory'."), WriteOutcome::Refused},
      {"create READONLY", WriteKind::Create,
       error("READONLY You can't write against a read only replica."), WriteOutcome::Refused},
      {"create MISCONF", WriteKind::Create, error("MISCONF Redis is configured to save RDB"),
       WriteOutcome::Refused},
      {"create NOPERM", WriteKind::Create, error("NOPERM this user has no permissions"),
       WriteOutcome::Refused},
      {"create without reply", WriteKind::Create, none(), WriteOutcome::Failed},
      {"create: other status", WriteKind::Create, status("QUEUED"), WriteOutcome::Failed},
      {"create: integer", WriteKind::Create, integer(1), WriteOutcome::Failed},
      {"create: string OK is no status", WriteKind::Create, str("OK"), WriteOutcome::Failed},
      // update: SET XX
      {"update OK", WriteKind::Update, status("OK"), WriteOutcome::Done},
      {"update of a deleted record (logout was first)", WriteKind::Update, nil(),
       WriteOutcome::Gone},
      {"update OOM", WriteKind::Update, error("OOM"), WriteOutcome::Refused},
      {"update READONLY", WriteKind::Update, error("READONLY"), WriteOutcome::Refused},
      {"update without reply", WriteKind::Update, none(), WriteOutcome::Failed},
      {"update: array", WriteKind::Update, array(), WriteOutcome::Failed},
      // touch: EXPIRE
      {"touch 1", WriteKind::Touch, integer(1), WriteOutcome::Done},
      {"touch 0: the record is gone", WriteKind::Touch, integer(0), WriteOutcome::Gone},
      {"touch 2 is no EXPIRE answer", WriteKind::Touch, integer(2), WriteOutcome::Failed},
      {"touch -1", WriteKind::Touch, integer(-1), WriteOutcome::Failed},
      {"touch: status OK", WriteKind::Touch, status("OK"), WriteOutcome::Failed},
      {"touch: nil", WriteKind::Touch, nil(), WriteOutcome::Failed},
      {"touch READONLY", WriteKind::Touch, error("READONLY"), WriteOutcome::Refused},
      {"touch without reply", WriteKind::Touch, none(), WriteOutcome::Failed},
      // delete: DEL
      {"delete 1", WriteKind::Delete, integer(1), WriteOutcome::Done},
      {"delete 0: gone either way", WriteKind::Delete, integer(0), WriteOutcome::Done},
      {"delete -1", WriteKind::Delete, integer(-1), WriteOutcome::Failed},
      {"delete: nil", WriteKind::Delete, nil(), WriteOutcome::Failed},
      {"delete: status", WriteKind::Delete, status("OK"), WriteOutcome::Failed},
      {"delete MISCONF", WriteKind::Delete, error("MISCONF"), WriteOutcome::Refused},
      {"delete without reply", WriteKind::Delete, none(), WriteOutcome::Failed},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(sess::redis_write_outcome(r.kind, r.reply), r.want) << r.what;
  }
}

TEST(RedisCmd, MoveIsOneAtomicScriptOverBothKeys) {
  sess::RedisArgs a;
  sess::redis_cmd_move("session:old", "session:new", "{\"user\":\"a\"}", 60, a);
  ASSERT_EQ(a.size(), 7u);
  EXPECT_EQ(a[0], "EVAL");
  EXPECT_NE(a[1].find("EXISTS"), std::string::npos);
  EXPECT_NE(a[1].find("'NX'"), std::string::npos);
  EXPECT_EQ(a[2], "2");
  EXPECT_EQ(a[3], "session:old");
  EXPECT_EQ(a[4], "session:new");
  EXPECT_EQ(a[5], "{\"user\":\"a\"}");
  EXPECT_EQ(a[6], "60");
  using sess::ReplyType;
  using sess::WriteOutcome;
  auto out = [](ReplyType t, int64_t i) {
    sess::RedisReplyView r;
    r.type = t;
    r.integer = i;
    return sess::redis_write_outcome(sess::WriteKind::Move, r);
  };
  EXPECT_EQ(out(ReplyType::Integer, 1), WriteOutcome::Done);
  EXPECT_EQ(out(ReplyType::Integer, 0), WriteOutcome::Gone);   // logged out meanwhile
  EXPECT_EQ(out(ReplyType::Error, 0), WriteOutcome::Refused);
  EXPECT_EQ(out(ReplyType::None, 0), WriteOutcome::Failed);
  EXPECT_EQ(out(ReplyType::Nil, 0), WriteOutcome::Failed);
}
