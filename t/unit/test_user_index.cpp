// Unit tests for user_index.h: the per-user session index - keys, commands, replies (captured
// from redis-server 7.0.15), what each session write does to the index, and the logout-all
// decision. The scripts themselves run against a real Redis in t/test_logout_all.py.
#include "user_index.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "redis_replies.h"

using sess::EndOutcome;
using sess::IndexInputs;
using sess::IndexPlan;
using sess::IndexReply;
using sess::LoadStatus;
using sess::LogoutAll;
using sess::pstring;
using sess::RecordWrite;
using sess::RedisArgs;
using sess::RespType;
using sess::RespValue;
using redis_replies::reply;

namespace {

using V = std::vector<std::string>;

V args(const RedisArgs& a) { return {a.begin(), a.end()}; }

RespValue integer(int64_t n) {
  RespValue v;
  v.type = RespType::Integer;
  v.integer = n;
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Keys and members

TEST(UserIndex, KeyIsPrefixUserColonName) {
  pstring k;
  sess::user_index_key("session:", "alice", k);
  EXPECT_EQ(k, "session:user:alice");
  pstring odd;
  sess::user_index_key("p", std::string_view("a:b c\xc3\xa9\0x", 9), odd);
  EXPECT_EQ(std::string(odd), std::string("puser:a:b c\xc3\xa9\0x", 15));  // byte for byte
}

TEST(UserIndex, MembersAreRecordKeySuffixes) {
  EXPECT_TRUE(sess::index_member_valid("0123456789abcdef0123456789abcdef"));  // a native id
  EXPECT_TRUE(sess::index_member_valid("Kx7_-9"));                            // a Flask sid
  EXPECT_TRUE(sess::index_member_valid(std::string(128, 'a')));
  EXPECT_FALSE(sess::index_member_valid(std::string(129, 'a')));
  EXPECT_FALSE(sess::index_member_valid(""));
  // never an index key (':'), never anything odd
  for (const char* bad : {"user:bob", "a b", "a\nb", "a/b", "..", "\xc3\xa9"}) {
    EXPECT_FALSE(sess::index_member_valid(bad)) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Commands: each on one key

TEST(UserIndex, Commands) {
  RedisArgs a;
  sess::index_cmd_add("session:user:alice", "00ff", 3600, 4, a);
  ASSERT_EQ(a.size(), 7u);
  EXPECT_EQ(a[0], "EVAL");
  EXPECT_NE(a[1].find("SADD"), pstring::npos);
  EXPECT_NE(a[1].find("SRANDMEMBER"), pstring::npos);
  // the TTL in milliseconds (PTTL/PEXPIRE: never a bound rounded to whole seconds)
  EXPECT_NE(a[1].find("PTTL"), pstring::npos);
  EXPECT_NE(a[1].find("PEXPIRE"), pstring::npos);
  // a key of another type at the index's name is garbage: replaced, never a refused login
  EXPECT_LT(a[1].find("TYPE"), a[1].find("SADD"));
  EXPECT_EQ(V(a.begin() + 2, a.end()), (V{"1", "session:user:alice", "00ff", "3600000", "4"}));
  sess::index_cmd_add("k", "m", 0, 0, a);
  EXPECT_EQ(a[5], "1000");  // a TTL is at least one second

  const std::string_view members[] = {"a", "b"};
  sess::index_cmd_remove("session:user:alice", members, 2, a);
  EXPECT_EQ(args(a), (V{"SREM", "session:user:alice", "a", "b"}));
  sess::index_cmd_scan("session:user:alice", "17", 256, a);
  EXPECT_EQ(args(a), (V{"SSCAN", "session:user:alice", "17", "COUNT", "256"}));
  sess::index_cmd_exists("session:00ff", a);
  EXPECT_EQ(args(a), (V{"EXISTS", "session:00ff"}));
  sess::index_cmd_end("session:00ff", "user", "\"alice\"", a);
  ASSERT_EQ(a.size(), 6u);
  EXPECT_EQ(a[0], "EVAL");
  EXPECT_EQ(V(a.begin() + 2, a.end()), (V{"1", "session:00ff", "user", "\"alice\""}));
  // the user compared as a decoded value, not as JSON text
  EXPECT_NE(a[1].find("cjson.decode"), pstring::npos);
  EXPECT_NE(a[1].find("pcall"), pstring::npos);
  // one command for the whole walk, pointed at each record in place
  const std::string script(a[1]);
  sess::index_cmd_end_key("session:", "0123", a);
  EXPECT_EQ(V(a.begin() + 2, a.end()), (V{"1", "session:0123", "user", "\"alice\""}));
  EXPECT_EQ(std::string_view(a[1]), script);
  sess::index_cmd_end_key("p:", "ab", a);
  EXPECT_EQ(a[3], "p:ab");
  sess::index_cmd_end("session:sid", "", "", a);  // Flask-Session records: not checked
  EXPECT_EQ(V(a.begin() + 2, a.end()), (V{"1", "session:sid", "", ""}));
}

// ---------------------------------------------------------------------------------------------
// Replies

TEST(UserIndex, ScanReply) {
  std::string cursor;
  std::vector<std::string> members, junk;
  RespValue r = reply(
      "*2\r\n$1\r\n0\r\n*2\r\n$32\r\nfedcba9876543210fedcba9876543210\r\n$32\r\n"
      "0123456789abcdef0123456789abcdef\r\n");
  ASSERT_EQ(sess::index_scan_reply(&r, &cursor, &members, &junk), IndexReply::Done);
  EXPECT_EQ(cursor, "0");
  EXPECT_EQ(members, (V{"fedcba9876543210fedcba9876543210", "0123456789abcdef0123456789abcdef"}));
  EXPECT_TRUE(junk.empty());

  r = reply("*2\r\n$1\r\n0\r\n*0\r\n");  // no index: an empty set
  ASSERT_EQ(sess::index_scan_reply(&r, &cursor, &members, &junk), IndexReply::Done);
  EXPECT_EQ(cursor, "0");
  EXPECT_TRUE(members.empty());

  r = reply("*2\r\n$4\r\n1536\r\n*2\r\n$2\r\nab\r\n$8\r\nuser:bob\r\n");
  ASSERT_EQ(sess::index_scan_reply(&r, &cursor, &members, &junk), IndexReply::Done);
  EXPECT_EQ(cursor, "1536");
  EXPECT_EQ(members, V{"ab"});
  EXPECT_EQ(junk, V{"user:bob"});  // removed from the index, never ended

  // the index key holds something else than a set (nginx never writes one): told apart
  r = reply("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  EXPECT_EQ(sess::index_scan_reply(&r, &cursor, &members, &junk), IndexReply::WrongType);
  r = reply("-NOPERM this user has no permissions to run the 'sscan' command\r\n");
  EXPECT_EQ(sess::index_scan_reply(&r, &cursor, &members, &junk), IndexReply::Refused);
  r = reply("-WRONGTYPEX\r\n");
  EXPECT_EQ(sess::index_scan_reply(&r, &cursor, &members, &junk), IndexReply::Refused);
  EXPECT_EQ(sess::index_scan_reply(nullptr, &cursor, &members, &junk), IndexReply::Failed);
  for (const char* bad : {"*2\r\n$1\r\nx\r\n*0\r\n", "*2\r\n$0\r\n\r\n*0\r\n", "*1\r\n$1\r\n0\r\n",
                          "*2\r\n$1\r\n0\r\n*1\r\n:1\r\n", ":1\r\n", "*2\r\n*0\r\n*0\r\n"}) {
    r = reply(bad);
    EXPECT_EQ(sess::index_scan_reply(&r, &cursor, &members, &junk), IndexReply::Failed) << bad;
    EXPECT_TRUE(members.empty() && junk.empty() && cursor.empty()) << bad;
  }
}

TEST(UserIndex, AddReply) {
  std::vector<std::string> sample;
  RespValue r = reply("*2\r\n$32\r\n0123456789abcdef0123456789abcdef\r\n$3\r\nx:y\r\n");
  ASSERT_EQ(sess::index_add_reply(&r, &sample), IndexReply::Done);
  EXPECT_EQ(sample, V{"0123456789abcdef0123456789abcdef"});  // only members to check
  r = reply("-OOM command not allowed when used memory > 'maxmemory'.\r\n");
  EXPECT_EQ(sess::index_add_reply(&r, &sample), IndexReply::Refused);
  EXPECT_EQ(sess::index_add_reply(nullptr, &sample), IndexReply::Failed);
  r = integer(1);
  EXPECT_EQ(sess::index_add_reply(&r, &sample), IndexReply::Failed);
}

TEST(UserIndex, ExistsAndRemoveReplies) {
  bool exists = false;
  RespValue r = reply(":0\r\n");
  EXPECT_EQ(sess::index_exists_reply(&r, &exists), IndexReply::Done);
  EXPECT_FALSE(exists);
  r = reply(":1\r\n");
  EXPECT_EQ(sess::index_exists_reply(&r, &exists), IndexReply::Done);
  EXPECT_TRUE(exists);
  // a doubt keeps the member
  EXPECT_EQ(sess::index_exists_reply(nullptr, &exists), IndexReply::Failed);
  EXPECT_TRUE(exists);
  r = reply("-NOPERM this user has no permissions to run the 'exists' command\r\n");
  EXPECT_EQ(sess::index_exists_reply(&r, &exists), IndexReply::Refused);
  EXPECT_TRUE(exists);
  r = reply(":0\r\n");
  EXPECT_EQ(sess::index_remove_reply(&r), IndexReply::Done);
  r = reply("+OK\r\n");
  EXPECT_EQ(sess::index_remove_reply(&r), IndexReply::Failed);
}

TEST(UserIndex, EndOutcomes) {
  RespValue r = integer(1);
  EXPECT_EQ(sess::index_end_outcome(&r), EndOutcome::Ended);
  r = integer(0);
  EXPECT_EQ(sess::index_end_outcome(&r), EndOutcome::Missing);
  r = integer(-1);
  EXPECT_EQ(sess::index_end_outcome(&r), EndOutcome::NotUsers);
  r = integer(-2);
  EXPECT_EQ(sess::index_end_outcome(&r), EndOutcome::NoUser);
  r = integer(2);
  EXPECT_EQ(sess::index_end_outcome(&r), EndOutcome::Moved);
  for (int64_t n : {3, -3, 100}) {
    r = integer(n);
    EXPECT_EQ(sess::index_end_outcome(&r), EndOutcome::Failed) << n;
  }
  r = reply("-NOPERM this user has no permissions to access one of the keys\r\n");
  EXPECT_EQ(sess::index_end_outcome(&r), EndOutcome::Refused);
  EXPECT_EQ(sess::index_end_outcome(nullptr), EndOutcome::Failed);
  // only a known end lets the entry go
  EXPECT_TRUE(sess::end_outcome_final(EndOutcome::Ended));
  EXPECT_TRUE(sess::end_outcome_final(EndOutcome::Missing));
  EXPECT_TRUE(sess::end_outcome_final(EndOutcome::NotUsers));
  // a regenerated session's old id: its new id is in the index already
  EXPECT_TRUE(sess::end_outcome_final(EndOutcome::Moved));
  // a record with no user may be taking one (session_set of the user key): the entry stays
  EXPECT_FALSE(sess::end_outcome_final(EndOutcome::NoUser));
  EXPECT_FALSE(sess::end_outcome_final(EndOutcome::Refused));
  EXPECT_FALSE(sess::end_outcome_final(EndOutcome::Failed));
}

TEST(UserIndex, WalkNext) {
  using sess::WalkNext;
  // the cursor decides while the pass runs, moved or not
  EXPECT_EQ(sess::index_walk_next(false, false, 1), WalkNext::Round);
  EXPECT_EQ(sess::index_walk_next(false, true, 1), WalkNext::Round);
  EXPECT_EQ(sess::index_walk_next(false, true, sess::kIndexMaxPasses), WalkNext::Round);
  // through: done, unless a session moved (its new id may be behind the cursor)
  EXPECT_EQ(sess::index_walk_next(true, false, 1), WalkNext::Done);
  EXPECT_EQ(sess::index_walk_next(true, false, sess::kIndexMaxPasses), WalkNext::Done);
  EXPECT_EQ(sess::index_walk_next(true, true, 1), WalkNext::Pass);
  EXPECT_EQ(sess::index_walk_next(true, true, sess::kIndexMaxPasses - 1), WalkNext::Pass);
  // bounded: still moving in the last pass is a failure, never a claim
  EXPECT_EQ(sess::index_walk_next(true, true, sess::kIndexMaxPasses), WalkNext::Moving);
  EXPECT_EQ(sess::index_walk_next(true, true, sess::kIndexMaxPasses + 5), WalkNext::Moving);
}

// ---------------------------------------------------------------------------------------------
// index_plan: one row per write. Inputs are words:
//   create|update|touch|delete|move|none   the record write
//   stored      a login whose record (and index entry) the login handler made
//   delete_old  the previous id is deleted after       flask   Flask-Session records
//   before      the loaded session has a user          after   the data written has one
//   same        ... the same user
// The plan: add_before add_new refresh remove_old, or "-".

namespace {

IndexInputs index_inputs(const std::string& words) {
  IndexInputs in;
  std::istringstream ss(words);
  std::string w;
  while (ss >> w) {
    if (w == "create") in.record = RecordWrite::Create;
    else if (w == "update") in.record = RecordWrite::Update;
    else if (w == "touch") in.record = RecordWrite::Touch;
    else if (w == "delete") in.record = RecordWrite::Delete;
    else if (w == "move") in.record = RecordWrite::Move;
    else if (w == "none") in.record = RecordWrite::None;
    else if (w == "stored") in.login_stored = true;
    else if (w == "delete_old") in.delete_old = true;
    else if (w == "flask") in.flask = true;
    else if (w == "before") in.user_before = true;
    else if (w == "after") in.user_after = true;
    else if (w == "same") in.same_user = true;
    else ADD_FAILURE() << "unknown input word: " << w;
  }
  return in;
}

std::string describe(const IndexPlan& p) {
  std::string s;
  if (p.add_before) s += " add_before";
  if (p.add_new) s += " add_new";
  if (p.refresh) s += " refresh";
  if (p.remove_old) s += " remove_old";
  return s.empty() ? "-" : s.substr(1);
}

}  // namespace

TEST(UserIndex, Plan) {
  const struct {
    const char* rule;
    const char* in;
    const char* plan;
  } rows[] = {
      // New ids join after their record is confirmed (a logout-all running meanwhile either
      // misses both or sees both), with a sample of the others checked.
      {"session_set of the user on no session", "create after", "add_new"},
      {"a new anonymous session", "create", "-"},
      {"regenerate: the new id joins, the old leaves", "move before after same",
       "add_new remove_old"},
      {"regenerate of an anonymous session", "move", "-"},
      // An existing record taking a user: the entry first (an entry without its record is
      // pruned; a record without its entry would be missed).
      // ... and again once the record holds the user: a logout-all of that user that ran in
      // between saw a record of another user and took the entry out.
      {"session_set of the user key on an anonymous session", "update after",
       "add_before refresh"},
      {"session_set of the user key to another user", "update before after",
       "add_before refresh remove_old"},
      {"session_unset of the user key", "update before", "remove_old"},
      {"another key changed", "update before after same", "-"},
      {"flask mode: every write resets the record's TTL", "flask update before after same",
       "refresh"},
      {"flask mode, another user", "flask update before after",
       "add_before refresh remove_old"},
      {"flask mode, a user on an anonymous session", "flask update after", "add_before refresh"},
      // Renewal re-adds (indexes sessions from before the index; a flask TTL moves on).
      {"renewal", "touch before after same", "refresh"},
      {"renewal of an anonymous session", "touch", "-"},
      {"destroy, logout, emptied", "delete before", "remove_old"},
      {"destroy of an anonymous session", "delete", "-"},
      // A login: the handler made the new record and its entry; the filter deletes the old id.
      {"login over a logged-in session", "none stored delete_old before", "remove_old"},
      {"login over an anonymous session", "none stored delete_old", "-"},
      {"login without a session", "none stored", "-"},
      {"nothing written", "none before after same", "-"},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(describe(sess::index_plan(index_inputs(r.in))), r.plan)
        << r.rule << "\n  inputs: " << r.in;
  }
}

TEST(UserIndex, LogoutAllDecision) {
  EXPECT_EQ(sess::logout_all_decision(LoadStatus::Valid, false, true), LogoutAll::End);
  // no user, or no session: an ordinary logout
  EXPECT_EQ(sess::logout_all_decision(LoadStatus::Valid, false, false), LogoutAll::Plain);
  for (LoadStatus st : {LoadStatus::None, LoadStatus::Invalid, LoadStatus::Expired}) {
    EXPECT_EQ(sess::logout_all_decision(st, false, false), LogoutAll::Plain);
  }
  // the store could not be asked: whose sessions to end is unknown - 503, never a 303
  EXPECT_EQ(sess::logout_all_decision(LoadStatus::Error, true, false), LogoutAll::Refuse);
  EXPECT_EQ(sess::logout_all_decision(LoadStatus::Error, false, false), LogoutAll::Refuse);
  EXPECT_EQ(sess::logout_all_decision(LoadStatus::None, true, false), LogoutAll::Refuse);
}
