// Shared by the Redis unit tests: replies captured from redis-server 7.0.15 (raw bytes), and one
// whole reply parsed from its bytes (the parser itself is tested in test_resp.cpp).
#pragma once

#include "resp.h"

#include <gtest/gtest.h>

namespace redis_replies {

// CLUSTER SLOTS of three masters with one replica each (redis-cli --cluster create).
inline constexpr char kClusterSlots[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:39510\r\n$40\r\n"
    "16d2daae922d3386f462da5f17a419d427f1a424\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:39513\r\n$40\r\n"
    "7657e4db755b8340f82330b84f8be5fecd5152ea\r\n*0\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$9\r\n"
    "127.0.0.1\r\n:39511\r\n$40\r\nefda05e80e1fc5c293752e3f7b8142332757cddf\r\n*0\r\n*4\r\n$9\r\n"
    "127.0.0.1\r\n:39514\r\n$40\r\n05c0630f905a0a44d949ff2bf2bfe2f0d01071d5\r\n*0\r\n*4\r\n"
    ":10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:39512\r\n$40\r\n"
    "a122e5ea65ce28f7106328cd661a66def4898d9c\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:39515\r\n$40\r\n"
    "d268e5cfabfbfa6300231f120703758839675735\r\n*0\r\n";

// A +switch-master announcement to a PSUBSCRIBE +switch* connection of a sentinel.
inline constexpr char kPmessage[] =
    "*4\r\n$8\r\npmessage\r\n$8\r\n+switch*\r\n$14\r\n+switch-master\r\n$40\r\n"
    "mymaster 127.0.0.1 26424 127.0.0.1 26425\r\n";

// The one reply in bytes (a test failure if it is not exactly one whole reply).
inline sess::RespValue reply(std::string_view bytes) {
  sess::RespParser p;
  sess::RespValue v;
  size_t used = 0;
  EXPECT_EQ(p.feed(bytes, sess::RespLimits(), &used, &v), sess::RespParser::Result::Reply)
      << bytes;
  EXPECT_EQ(used, bytes.size()) << bytes;
  return v;
}

}  // namespace redis_replies
