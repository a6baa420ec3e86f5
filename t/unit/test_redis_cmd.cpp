// Unit tests for redis_cmd.h: keys and command argument vectors.
#include "redis_cmd.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using sess::pstring;
using sess::RedisArgs;

namespace {

std::vector<std::string> args(const RedisArgs& a) { return {a.begin(), a.end()}; }

using V = std::vector<std::string>;

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

TEST(RedisKey, EveryByteInEveryPositionAndLength) {
  const char* digits = "0123456789abcdef";
  // (lengths past 32: the 16-byte blocks of the vector path and the bytes after them)
  for (size_t len = 0; len <= 40; len++) {
    for (size_t pos = 0; pos < len; pos++) {
      for (int b = 0; b < 256; b++) {
        unsigned char id[40];
        for (size_t i = 0; i < len; i++) id[i] = static_cast<unsigned char>(0x5a + 31 * i);
        id[pos] = static_cast<unsigned char>(b);
        std::string want = "k:";
        for (size_t i = 0; i < len; i++) {
          want += digits[id[i] >> 4];
          want += digits[id[i] & 15];
        }
        pstring k;
        sess::redis_key("k:", id, len, k);
        ASSERT_EQ(std::string(k), want) << len << " " << pos << " " << b;
      }
    }
  }
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

TEST(RedisCmd, Delete) {
  RedisArgs a;
  sess::redis_cmd_delete("k", a);
  EXPECT_EQ(args(a), (V{"DEL", "k"}));
}

TEST(RedisCmd, ReplacesPreviousArguments) {
  RedisArgs a;
  sess::redis_cmd_lookup("k", a);
  sess::redis_cmd_delete("k2", a);
  EXPECT_EQ(args(a), (V{"DEL", "k2"}));
  sess::redis_cmd_lookup("k3", a);
  EXPECT_EQ(args(a), (V{"GETRANGE", "k3", "0", "65536"}));
}

TEST(RedisCmd, ArgumentsUseTheVectorsMemoryResource) {
  std::pmr::monotonic_buffer_resource pool;
  RedisArgs a(&pool);
  sess::redis_cmd_lookup("a-key-long-enough-to-leave-the-small-string-buffer", a);
  ASSERT_EQ(a.size(), 4u);
  for (const auto& s : a) EXPECT_EQ(s.get_allocator().resource(), &pool);
}
