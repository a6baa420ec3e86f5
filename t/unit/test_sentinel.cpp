// Unit tests for sentinel.h: the master's address, ROLE, pub/sub messages and +switch-master.
// The replies are what redis-server 7.0.15 (and its sentinel mode) sent.
#include "sentinel.h"

#include <gtest/gtest.h>

#include <string>

#include "redis_replies.h"

using redis_replies::reply;
using sess::NodeAddr;
using sess::RespValue;
using sess::Role;
using sess::SwitchMaster;

namespace {

std::string addr(const NodeAddr& n) { return n.host + ":" + std::to_string(n.port); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// parse_master_addr

struct AddrCase {
  const char* name;
  const char* reply;
  const char* want;  // nullptr: false
};

TEST(MasterAddr, Table) {
  const AddrCase cases[] = {
      {"redis 7.0.15", "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n26424\r\n", "127.0.0.1:26424"},
      {"after a failover", "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n26425\r\n", "127.0.0.1:26425"},
      {"IPv6", "*2\r\n$7\r\n2001::1\r\n$4\r\n6379\r\n", "2001::1:6379"},
      {"hostname", "*2\r\n$15\r\nredis.internal.\r\n$4\r\n6379\r\n", "redis.internal.:6379"},
      {"unknown name (redis 7.0.15)", "*-1\r\n", nullptr},
      {"nil bulk", "$-1\r\n", nullptr},
      {"error", "-IDONTKNOW No such master with that name\r\n", nullptr},
      {"empty array", "*0\r\n", nullptr},
      {"one element", "*1\r\n$9\r\n127.0.0.1\r\n", nullptr},
      {"three elements", "*3\r\n$1\r\nh\r\n$1\r\n1\r\n$1\r\nx\r\n", nullptr},
      {"port as integer", "*2\r\n$1\r\nh\r\n:6379\r\n", nullptr},
      {"port 0", "*2\r\n$1\r\nh\r\n$1\r\n0\r\n", nullptr},
      {"port 65536", "*2\r\n$1\r\nh\r\n$5\r\n65536\r\n", nullptr},
      {"port with a sign", "*2\r\n$1\r\nh\r\n$2\r\n+1\r\n", nullptr},
      {"empty host", "*2\r\n$0\r\n\r\n$4\r\n6379\r\n", nullptr},
      {"host with a space", "*2\r\n$3\r\na b\r\n$4\r\n6379\r\n", nullptr},
      {"host as status", "*2\r\n+h\r\n$4\r\n6379\r\n", nullptr},
  };
  for (const auto& c : cases) {
    NodeAddr n;
    n.host = "kept";
    n.port = 1;
    const bool ok = sess::parse_master_addr(reply(c.reply), &n);
    EXPECT_EQ(ok, c.want != nullptr) << c.name;
    EXPECT_EQ(addr(n), c.want ? c.want : "kept:1") << c.name;
  }
}

// ---------------------------------------------------------------------------------------------
// parse_role

struct RoleCase {
  const char* name;
  const char* reply;
  Role want;
};

TEST(Role, Table) {
  const RoleCase cases[] = {
      {"master, no replicas", "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n", Role::Master},
      {"master, one replica",
       "*3\r\n$6\r\nmaster\r\n:14\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$5\r\n27607\r\n$2\r\n14\r\n",
       Role::Master},
      {"replica in handshake",
       "*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:26424\r\n$9\r\nhandshake\r\n:-1\r\n",
       Role::Replica},
      {"replica connected",
       "*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:27604\r\n$9\r\nconnected\r\n:14\r\n",
       Role::Replica},
      {"\"replica\"", "*5\r\n$7\r\nreplica\r\n$1\r\nh\r\n:1\r\n$9\r\nconnected\r\n:14\r\n",
       Role::Replica},
      {"sentinel", "*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n", Role::Sentinel},
      {"sentinel, no masters", "*2\r\n$8\r\nsentinel\r\n*0\r\n", Role::Sentinel},
      {"master with a later element", "*4\r\n$6\r\nmaster\r\n:0\r\n*0\r\n$3\r\nnew\r\n",
       Role::Master},
      {"master too short", "*2\r\n$6\r\nmaster\r\n:0\r\n", Role::Unknown},
      {"master offset as text", "*3\r\n$6\r\nmaster\r\n$1\r\n0\r\n*0\r\n", Role::Unknown},
      {"master replicas not an array", "*3\r\n$6\r\nmaster\r\n:0\r\n$-1\r\n", Role::Unknown},
      {"replica too short", "*4\r\n$5\r\nslave\r\n$1\r\nh\r\n:1\r\n$9\r\nconnected\r\n",
       Role::Unknown},
      {"replica port as text",
       "*5\r\n$5\r\nslave\r\n$1\r\nh\r\n$1\r\n1\r\n$9\r\nconnected\r\n:14\r\n", Role::Unknown},
      {"sentinel masters not an array", "*2\r\n$8\r\nsentinel\r\n$8\r\nmymaster\r\n",
       Role::Unknown},
      {"role as status", "*3\r\n+master\r\n:0\r\n*0\r\n", Role::Unknown},
      {"role in capitals", "*3\r\n$6\r\nMASTER\r\n:0\r\n*0\r\n", Role::Unknown},
      {"other role", "*1\r\n$7\r\nunknown\r\n", Role::Unknown},
      {"empty array", "*0\r\n", Role::Unknown},
      {"nil array", "*-1\r\n", Role::Unknown},
      {"error", "-NOPERM this user has no permissions to run the 'role' command\r\n",
       Role::Unknown},
      {"bulk", "$6\r\nmaster\r\n", Role::Unknown},
  };
  for (const auto& c : cases) EXPECT_EQ(sess::parse_role(reply(c.reply)), c.want) << c.name;
}

// ---------------------------------------------------------------------------------------------
// parse_pubsub_message

struct PubsubCase {
  const char* name;
  const char* reply;
  bool ok;
  const char* channel;
  const char* payload;
};

TEST(PubsubMessage, Table) {
  const PubsubCase cases[] = {
      {"message (redis 7.0.15)",
       "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$40\r\n"
       "mymaster 127.0.0.1 26424 127.0.0.1 26425\r\n",
       true, "+switch-master", "mymaster 127.0.0.1 26424 127.0.0.1 26425"},
      {"pmessage (redis 7.0.15)",
       "*4\r\n$8\r\npmessage\r\n$8\r\n+switch*\r\n$14\r\n+switch-master\r\n$40\r\n"
       "mymaster 127.0.0.1 26424 127.0.0.1 26425\r\n",
       true, "+switch-master", "mymaster 127.0.0.1 26424 127.0.0.1 26425"},
      {"empty payload", "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$0\r\n\r\n", true, "c", ""},
      {"subscribe confirmation (redis 7.0.15)",
       "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n", false, "-", "-"},
      {"psubscribe confirmation (redis 7.0.15)",
       "*3\r\n$10\r\npsubscribe\r\n$8\r\n+switch*\r\n:1\r\n", false, "-", "-"},
      {"pong (redis 7.0.15)", "*2\r\n$4\r\npong\r\n$0\r\n\r\n", false, "-", "-"},
      {"message of 4", "*4\r\n$7\r\nmessage\r\n$1\r\np\r\n$1\r\nc\r\n$1\r\nx\r\n", false, "-", "-"},
      {"pmessage of 3", "*3\r\n$8\r\npmessage\r\n$1\r\nc\r\n$1\r\nx\r\n", false, "-", "-"},
      {"payload not bulk", "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n:1\r\n", false, "-", "-"},
      {"channel nil", "*3\r\n$7\r\nmessage\r\n$-1\r\n$1\r\nx\r\n", false, "-", "-"},
      {"pattern not bulk", "*4\r\n$8\r\npmessage\r\n:1\r\n$1\r\nc\r\n$1\r\nx\r\n", false, "-", "-"},
      {"kind as status", "*3\r\n+message\r\n$1\r\nc\r\n$1\r\nx\r\n", false, "-", "-"},
      {"not an array", "+OK\r\n", false, "-", "-"},
  };
  for (const auto& c : cases) {
    const RespValue v = reply(c.reply);
    std::string_view channel = "-";
    std::string_view payload = "-";
    EXPECT_EQ(sess::parse_pubsub_message(v, &channel, &payload), c.ok) << c.name;
    EXPECT_EQ(channel, c.channel) << c.name;
    EXPECT_EQ(payload, c.payload) << c.name;
  }
}

// ---------------------------------------------------------------------------------------------
// parse_switch_master

struct SwitchCase {
  std::string payload;
  const char* want;  // "name from to", nullptr: false
};

TEST(SwitchMaster, Table) {
  const SwitchCase cases[] = {
      {"mymaster 127.0.0.1 26424 127.0.0.1 26425", "mymaster 127.0.0.1:26424 127.0.0.1:26425"},
      {"m ::1 6379 2001:db8::2 6380", "m ::1:6379 2001:db8::2:6380"},
      {"sessions redis-a.internal 6379 redis-b.internal 6379",
       "sessions redis-a.internal:6379 redis-b.internal:6379"},
      {"mymaster 127.0.0.1 26424 127.0.0.1", nullptr},
      {"mymaster 127.0.0.1 26424 127.0.0.1 26425 extra", nullptr},
      {"mymaster 127.0.0.1 26424 127.0.0.1 26425 ", nullptr},
      {" mymaster 127.0.0.1 26424 127.0.0.1 26425", nullptr},
      {"mymaster  127.0.0.1 26424 127.0.0.1 26425", nullptr},
      {"mymaster 127.0.0.1 26424 127.0.0.1 0", nullptr},
      {"mymaster 127.0.0.1 26424 127.0.0.1 65536", nullptr},
      {"mymaster 127.0.0.1 x 127.0.0.1 26425", nullptr},
      {"mymaster ? 26424 127.0.0.1 26425", nullptr},
      {"mymaster 127.0.0.1 26424 [::1] 26425", nullptr},
      {"my\tmaster 127.0.0.1 26424 127.0.0.1 26425", nullptr},
      {std::string("m\0 h 1 h 2", 10), nullptr},
      {"", nullptr},
  };
  for (const auto& c : cases) {
    SwitchMaster s;
    s.name = "kept";
    const bool ok = sess::parse_switch_master(c.payload, &s);
    EXPECT_EQ(ok, c.want != nullptr) << c.payload;
    if (ok) {
      EXPECT_EQ(s.name + " " + addr(s.from) + " " + addr(s.to), c.want) << c.payload;
    } else {
      EXPECT_EQ(s.name, "kept") << c.payload;
    }
  }
}
