// Unit tests for resp.h: the streaming RESP2 parser (every reply type, every split of a stream,
// limits at their boundaries, protocol errors) and resp_command.
#include "resp.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "redis_replies.h"

using sess::pstring;
using sess::RespLimits;
using sess::RespParser;
using sess::RespType;
using sess::RespValue;
using Result = sess::RespParser::Result;

namespace {

// A reply as text, independent of the parser: +status -error :int $"bulk" nil [a, b] nil[].
std::string dump(const RespValue& v) {
  switch (v.type) {
    case RespType::Status: return "+" + v.str;
    case RespType::Error: return "-" + v.str;
    case RespType::Integer: return ":" + std::to_string(v.integer);
    case RespType::Bulk: return "$\"" + v.str + "\"";
    case RespType::Nil: return "nil";
    case RespType::NilArray: return "nil[]";
    case RespType::Array: {
      std::string s = "[";
      for (size_t i = 0; i < v.elements.size(); i++) s += (i ? ", " : "") + dump(v.elements[i]);
      return s + "]";
    }
  }
  return "?";
}

using Outcomes = std::vector<std::string>;

// Feeds stream in pieces that end at the given offsets (and at its end), feeding the unused rest
// of each piece again as the glue does. Each reply is dumped, TooLarge is "TooLarge", a protocol
// error "ProtocolError" (and ends the run); a reply left incomplete adds nothing.
Outcomes parse_split(std::string_view stream, const std::vector<size_t>& cuts,
                     const RespLimits& limits = {}) {
  RespParser p;
  Outcomes out;
  size_t start = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    std::string_view piece = stream.substr(start, end - start);
    start = end;
    for (;;) {
      RespValue v;
      v.type = RespType::Status;
      v.str = "untouched";
      size_t used = 12345;
      const Result r = p.feed(piece, limits, &used, &v);
      EXPECT_LE(used, piece.size());
      if (r == Result::NeedMore) {
        EXPECT_EQ(used, piece.size());
        EXPECT_EQ(dump(v), "+untouched");
        break;
      }
      if (r == Result::ProtocolError) {
        out.push_back("ProtocolError");
        return out;
      }
      if (r == Result::TooLarge) {
        EXPECT_EQ(dump(v), "nil");  // *out is empty
        out.push_back("TooLarge");
      } else {
        out.push_back(dump(v));
      }
      piece.remove_prefix(used);
      if (piece.empty()) break;
    }
  }
  return out;
}

Outcomes parse(std::string_view stream, const RespLimits& limits = {}) {
  return parse_split(stream, {}, limits);
}

// Outcomes of a stream that must end on a reply boundary (no trailing incomplete reply).
Outcomes parse_bytewise(std::string_view stream, const RespLimits& limits = {}) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < stream.size(); i++) cuts.push_back(i);
  return parse_split(stream, cuts, limits);
}

std::string command(std::initializer_list<std::string_view> args) {
  std::pmr::vector<pstring> a;
  for (std::string_view s : args) a.emplace_back(s);
  pstring out;
  sess::resp_command(a, out);
  return std::string(out);
}

using redis_replies::kClusterSlots;
using redis_replies::kPmessage;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reply types

struct TypeCase {
  const char* in;
  const char* want;
};

TEST(RespParser, EveryReplyType) {
  const TypeCase cases[] = {
      {"+OK\r\n", "+OK"},
      {"+\r\n", "+"},
      {"+with spaces and \x01 bytes\r\n", "+with spaces and \x01 bytes"},
      {"-ERR unknown command 'FOO'\r\n", "-ERR unknown command 'FOO'"},
      {"-MOVED 12182 127.0.0.1:27605\r\n", "-MOVED 12182 127.0.0.1:27605"},
      {":0\r\n", ":0"},
      {":1\r\n", ":1"},
      {":-1\r\n", ":-1"},
      {":9223372036854775807\r\n", ":9223372036854775807"},
      {":-9223372036854775808\r\n", ":-9223372036854775808"},
      {"$5\r\nhello\r\n", "$\"hello\""},
      {"$0\r\n\r\n", "$\"\""},
      {"$4\r\na\r\nb\r\n", "$\"a\r\nb\""},  // binary safe: CR LF inside a bulk string
      {"$-1\r\n", "nil"},
      {"*0\r\n", "[]"},
      {"*-1\r\n", "nil[]"},
      {"*3\r\n:1\r\n$-1\r\n+x\r\n", "[:1, nil, +x]"},
      {"*2\r\n*1\r\n*0\r\n*-1\r\n", "[[[]], nil[]]"},
      // ROLE from a master with one replica, redis-server 7.0.15
      {"*3\r\n$6\r\nmaster\r\n:14\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$5\r\n27607\r\n$2\r\n14\r\n",
       "[$\"master\", :14, [[$\"127.0.0.1\", $\"27607\", $\"14\"]]]"},
      // PING on a subscribed connection
      {"*2\r\n$4\r\npong\r\n$0\r\n\r\n", "[$\"pong\", $\"\"]"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(parse(c.in), Outcomes{c.want}) << c.in;
    EXPECT_EQ(parse_bytewise(c.in), Outcomes{c.want}) << c.in;
  }
}

TEST(RespParser, NulBytesInStatusAndBulk) {
  const std::string status("+a\0b\r\n", 6);
  const auto r = parse(status);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], std::string("+a\0b", 4));
  const std::string bulk("$3\r\n\0\0\0\r\n", 9);
  EXPECT_EQ(parse(bulk), Outcomes{std::string("$\"\0\0\0\"", 6)});
}

TEST(RespParser, CapturedClusterSlots) {
  EXPECT_EQ(parse(kClusterSlots),
            Outcomes{"[[:0, :5460, [$\"127.0.0.1\", :39510, "
                     "$\"16d2daae922d3386f462da5f17a419d427f1a424\", []], "
                     "[$\"127.0.0.1\", :39513, "
                     "$\"7657e4db755b8340f82330b84f8be5fecd5152ea\", []]], "
                     "[:5461, :10922, [$\"127.0.0.1\", :39511, "
                     "$\"efda05e80e1fc5c293752e3f7b8142332757cddf\", []], "
                     "[$\"127.0.0.1\", :39514, "
                     "$\"05c0630f905a0a44d949ff2bf2bfe2f0d01071d5\", []]], "
                     "[:10923, :16383, [$\"127.0.0.1\", :39512, "
                     "$\"a122e5ea65ce28f7106328cd661a66def4898d9c\", []], "
                     "[$\"127.0.0.1\", :39515, "
                     "$\"d268e5cfabfbfa6300231f120703758839675735\", []]]]"});
}

// ---------------------------------------------------------------------------------------------
// Streams: one reply per feed at most, the rest fed again; every split gives the same replies

TEST(RespParser, OneReplyPerFeedAndUsed) {
  RespParser p;
  RespLimits lim;
  RespValue v;
  size_t used = 0;
  const std::string_view s = "+OK\r\n:42\r\n$-1\r\n+part";
  ASSERT_EQ(p.feed(s, lim, &used, &v), Result::Reply);
  EXPECT_EQ(used, 5u);
  EXPECT_EQ(dump(v), "+OK");
  ASSERT_EQ(p.feed(s.substr(5), lim, &used, &v), Result::Reply);
  EXPECT_EQ(used, 5u);
  EXPECT_EQ(dump(v), ":42");
  ASSERT_EQ(p.feed(s.substr(10), lim, &used, &v), Result::Reply);
  EXPECT_EQ(used, 5u);
  EXPECT_EQ(dump(v), "nil");
  ASSERT_EQ(p.feed(s.substr(15), lim, &used, &v), Result::NeedMore);
  EXPECT_EQ(used, 5u);
  EXPECT_EQ(dump(v), "nil");  // untouched
  ASSERT_EQ(p.feed("ial\r\n", lim, &used, &v), Result::Reply);
  EXPECT_EQ(dump(v), "+partial");
  ASSERT_EQ(p.feed("", lim, &used, &v), Result::NeedMore);
  EXPECT_EQ(used, 0u);
}

TEST(RespParser, EverySplitGivesTheSameReplies) {
  const std::string stream =
      std::string("+OK\r\n-ERR x\r\n:-7\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n$0\r\n\r\n") + kPmessage +
      "*2\r\n*2\r\n:1\r\n*0\r\n$2\r\n\r\n\r\n" + kClusterSlots;
  const Outcomes whole = parse(stream);
  ASSERT_EQ(whole.size(), 10u);
  EXPECT_EQ(whole[7], "[$\"pmessage\", $\"+switch*\", $\"+switch-master\", "
                      "$\"mymaster 127.0.0.1 26424 127.0.0.1 26425\"]");
  EXPECT_EQ(whole[8], "[[:1, []], $\"\r\n\"]");
  for (size_t cut = 0; cut <= stream.size(); cut++) {
    ASSERT_EQ(parse_split(stream, {cut}), whole) << "cut at " << cut;
  }
  EXPECT_EQ(parse_bytewise(stream), whole);
  // Three pieces, at every pair of cuts (a shorter stream: quadratic).
  const std::string small = "*2\r\n$3\r\nabc\r\n:1\r\n+OK\r\n";
  const Outcomes want = parse(small);
  for (size_t a = 0; a <= small.size(); a++) {
    for (size_t b = a; b <= small.size(); b++) ASSERT_EQ(parse_split(small, {a, b}), want);
  }
}

TEST(RespParser, EverySplitWithLimitsAndErrors) {
  RespLimits lim;
  lim.max_bulk = 3;
  lim.max_elements = 2;
  const std::string stream =
      "$4\r\nabcd\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n$9\r\n123456789\r\n*1\r\n:1\r\n"
      "$3\r\nxyz\r\n+after\r\n$2\r\nab!!";
  const Outcomes whole = parse(stream, lim);
  EXPECT_EQ(whole, (Outcomes{"TooLarge", "TooLarge", "TooLarge", "$\"xyz\"", "+after",
                             "ProtocolError"}));
  for (size_t cut = 0; cut <= stream.size(); cut++) {
    ASSERT_EQ(parse_split(stream, {cut}, lim), whole) << "cut at " << cut;
  }
  EXPECT_EQ(parse_bytewise(stream, lim), whole);
}

TEST(RespParser, IncompleteReplyIsNeedMore) {
  const char* partial[] = {"+OK", "+OK\r", ":1", "$3\r\nab", "$3\r\nabc", "$3\r\nabc\r",
                           "*2\r\n:1\r\n", "*1\r\n*1\r\n", "$", "*", "-"};
  for (const char* in : partial) EXPECT_EQ(parse(in), Outcomes{}) << in;
}

// ---------------------------------------------------------------------------------------------
// Limits at their boundaries

struct LimitCase {
  const char* name;
  RespLimits limits;
  std::string in;
  const char* want;
};

RespLimits limits_with(size_t bulk, size_t elements, size_t depth, size_t total, size_t line) {
  RespLimits l;
  l.max_bulk = bulk;
  l.max_elements = elements;
  l.max_depth = depth;
  l.max_total = total;
  l.max_line = line;
  return l;
}

TEST(RespParser, LimitsAtTheirBoundaries) {
  const RespLimits d;
  const LimitCase cases[] = {
      {"bulk at max_bulk", limits_with(5, 9, 9, 99, 99), "$5\r\nhello\r\n", "$\"hello\""},
      {"bulk over max_bulk", limits_with(4, 9, 9, 99, 99), "$5\r\nhello\r\n", "TooLarge"},
      {"empty bulk, max_bulk 0", limits_with(0, 9, 9, 99, 99), "$0\r\n\r\n", "$\"\""},
      {"nil is no string", limits_with(0, 9, 9, 0, 99), "$-1\r\n", "nil"},
      {"elements at max", limits_with(9, 3, 9, 99, 99), "*3\r\n:1\r\n:2\r\n:3\r\n", "[:1, :2, :3]"},
      {"elements over max", limits_with(9, 2, 9, 99, 99), "*3\r\n:1\r\n:2\r\n:3\r\n", "TooLarge"},
      {"nested elements over max", limits_with(9, 2, 9, 99, 99),
       "*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n:4\r\n", "TooLarge"},
      {"max_elements 0: empty array", limits_with(9, 0, 9, 99, 99), "*0\r\n", "[]"},
      {"depth at max", limits_with(9, 9, 3, 99, 99), "*1\r\n*1\r\n*1\r\n:1\r\n", "[[[:1]]]"},
      {"depth over max", limits_with(9, 9, 3, 99, 99), "*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
       "TooLarge"},
      {"empty array counts as depth", limits_with(9, 9, 2, 99, 99), "*1\r\n*1\r\n*0\r\n",
       "TooLarge"},
      {"nil array is no depth", limits_with(9, 9, 2, 99, 99), "*1\r\n*1\r\n*-1\r\n", "[[nil[]]]"},
      {"max_depth 0: no arrays", limits_with(9, 9, 0, 99, 99), "*0\r\n", "TooLarge"},
      {"max_depth 0: scalars", limits_with(9, 9, 0, 99, 99), ":5\r\n", ":5"},
      {"total at max", limits_with(9, 9, 9, 10, 99), "*3\r\n$4\r\nabcd\r\n+abc\r\n-abc\r\n",
       "[$\"abcd\", +abc, -abc]"},
      {"total over max by a bulk", limits_with(9, 9, 9, 10, 99),
       "*3\r\n$4\r\nabcd\r\n+abc\r\n$4\r\nabcd\r\n", "TooLarge"},
      {"total over max by a status", limits_with(9, 9, 9, 10, 99),
       "*3\r\n$4\r\nabcd\r\n+abc\r\n+abcd\r\n", "TooLarge"},
      {"total over max by an error", limits_with(9, 9, 9, 3, 99), "-ERROR\r\n", "TooLarge"},
      {"integers are not string bytes", limits_with(9, 9, 9, 0, 99), "*2\r\n:123456\r\n:7\r\n",
       "[:123456, :7]"},
      {"line at max_line", limits_with(9, 9, 9, 99, 5), "+hello\r\n", "+hello"},
      {"line over max_line", limits_with(9, 9, 9, 99, 5), "+hello!\r\n", "ProtocolError"},
      {"length line at max_line", limits_with(99, 9, 9, 99, 2), "$10\r\n0123456789\r\n",
       "$\"0123456789\""},
      {"length line over max_line", limits_with(999, 9, 9, 999, 2), "$100\r\n", "ProtocolError"},
      {"integer line over max_line", limits_with(9, 9, 9, 99, 2), ":123\r\n", "ProtocolError"},
      {"bulk data is no line", limits_with(99, 9, 9, 99, 2), "$10\r\n0123456789\r\n",
       "$\"0123456789\""},
      {"defaults: 64 KiB bulk", d, "$65536\r\n" + std::string(65536, 'x') + "\r\n", nullptr},
      {"defaults: 64 KiB + 1 bulk", d, "$65537\r\n" + std::string(65537, 'x') + "\r\n",
       "TooLarge"},
  };
  for (const auto& c : cases) {
    const Outcomes got = parse(c.in, c.limits);
    if (c.want == nullptr) {
      ASSERT_EQ(got.size(), 1u) << c.name;
      EXPECT_EQ(got[0].size(), 65536u + 3) << c.name;
    } else {
      EXPECT_EQ(got, Outcomes{c.want}) << c.name;
      EXPECT_EQ(parse_bytewise(c.in, c.limits), Outcomes{c.want}) << c.name;
    }
  }
}

TEST(RespParser, TooLargeReplyIsConsumedWholeAndTheNextParses) {
  RespLimits lim;
  lim.max_bulk = 2;
  lim.max_depth = 2;
  // A too-long bulk in the middle of nested arrays, then further elements (some arrays deeper
  // than max_depth, which must still be parsed to find the end), then the next reply.
  const std::string s =
      "*3\r\n*2\r\n$3\r\nabc\r\n*2\r\n*1\r\n:1\r\n$-1\r\n*-1\r\n*1\r\n*0\r\n"
      "+next\r\n";
  EXPECT_EQ(parse(s, lim), (Outcomes{"TooLarge", "+next"}));
  EXPECT_EQ(parse_bytewise(s, lim), (Outcomes{"TooLarge", "+next"}));
  // The first element over the limit; the array's later elements are skipped.
  const std::string t = "*3\r\n$5\r\nhello\r\n:1\r\n*2\r\n+a\r\n-b\r\n:99\r\n";
  EXPECT_EQ(parse(t, lim), (Outcomes{"TooLarge", ":99"}));
  // Too many elements: counted, not kept.
  lim = RespLimits();
  lim.max_elements = 1;
  const std::string u = "*2\r\n*1\r\n$1\r\na\r\n*1\r\n*1\r\n$2\r\nbc\r\n$1\r\nz\r\n";
  EXPECT_EQ(parse(u, lim), (Outcomes{"TooLarge", "$\"z\""}));
}

TEST(RespParser, OversizedBulkIsSkippedAcrossFeeds) {
  RespLimits lim;
  lim.max_bulk = 10;
  RespParser p;
  RespValue v;
  size_t used = 0;
  ASSERT_EQ(p.feed("*2\r\n$1000000\r\n", lim, &used, &v), Result::NeedMore);
  const std::string chunk(4096, 'x');
  size_t fed = 0;
  while (fed + chunk.size() <= 1000000) {
    ASSERT_EQ(p.feed(chunk, lim, &used, &v), Result::NeedMore);
    ASSERT_EQ(used, chunk.size());
    fed += chunk.size();
  }
  const std::string last = std::string(1000000 - fed, 'y') + "\r\n:5\r\n+next\r\n";
  ASSERT_EQ(p.feed(last, lim, &used, &v), Result::TooLarge);
  EXPECT_EQ(used, last.size() - 7);
  EXPECT_EQ(dump(v), "nil");
  ASSERT_EQ(p.feed(std::string_view(last).substr(used), lim, &used, &v), Result::Reply);
  EXPECT_EQ(dump(v), "+next");
  // The bytes skipped may be anything, CR LF and type bytes included.
  const std::string noisy = "$12\r\n*1\r\n$-1\r\n\r\n+\r\n+ok\r\n";
  EXPECT_EQ(parse(noisy, lim), (Outcomes{"TooLarge", "+ok"}));
  EXPECT_EQ(parse_bytewise(noisy, lim), (Outcomes{"TooLarge", "+ok"}));
}

TEST(RespParser, BulkAtLimitIsKeptAcrossFeeds) {
  RespLimits lim;
  lim.max_bulk = 100000;
  lim.max_total = 100000;
  RespParser p;
  RespValue v;
  size_t used = 0;
  ASSERT_EQ(p.feed("$100000\r\n", lim, &used, &v), Result::NeedMore);
  std::string want;
  for (int i = 0; i < 100; i++) {
    const std::string piece(1000, static_cast<char>('a' + i % 26));
    want += piece;
    ASSERT_EQ(p.feed(piece, lim, &used, &v), Result::NeedMore);
  }
  ASSERT_EQ(p.feed("\r", lim, &used, &v), Result::NeedMore);
  ASSERT_EQ(p.feed("\n", lim, &used, &v), Result::Reply);
  ASSERT_EQ(v.type, RespType::Bulk);
  EXPECT_EQ(v.str, want);
}

TEST(RespParser, DeepNestingBeyondTheLimitIsBoundedAndConsumed) {
  RespLimits lim;
  std::string s;
  for (int i = 0; i < 100000; i++) s += "*1\r\n";
  s += ":1\r\n+after\r\n";
  EXPECT_EQ(parse(s, lim), (Outcomes{"TooLarge", "+after"}));
}

// ---------------------------------------------------------------------------------------------
// Protocol errors

TEST(RespParser, ProtocolErrors) {
  const char* cases[] = {
      "x",                         // bad type byte
      "\r\n",                      // empty line is no reply
      " +OK\r\n",                  //
      "%1\r\n",                    // RESP3 types are not RESP2
      "_\r\n",                     //
      "+OK\n",                     // bare LF
      "+OK\rX\r\n",                // lone CR
      "+a\nb\r\n",                 //
      ":\r\n",                     // not a number
      ":abc\r\n",                  //
      ":1a\r\n",                   //
      ": 1\r\n",                   //
      ":+1\r\n",                   //
      ":01\r\n",                   // leading zero
      ":-0\r\n",                   //
      ":1.5\r\n",                  //
      ":9223372036854775808\r\n",  // out of range
      ":-9223372036854775809\r\n", //
      ":99999999999999999999\r\n", //
      "$\r\n",                     // bad lengths
      "$-2\r\n",                   //
      "$-01\r\n",                  //
      "$x\r\n",                    //
      "$1 \r\n",                   //
      "$536870913\r\n",            // over 512 MiB
      "$3\r\nabcd\r\n",            // no CRLF after the data
      "$3\r\nabc\n",               //
      "$3\r\nabc\r\r",             //
      "$0\r\nX",                   //
      "*-2\r\n",                   //
      "*2147483648\r\n",           // over 2^31 - 1
      "*1\r\n?\r\n",               // a bad element
      "*2\r\n:1\r\n$2\r\nabX",     //
  };
  for (const char* in : cases) {
    EXPECT_EQ(parse(in), Outcomes{"ProtocolError"}) << in;
    EXPECT_EQ(parse_bytewise(in), Outcomes{"ProtocolError"}) << in;
  }
  // In range: the largest lengths are not protocol errors (but too large for any limit).
  EXPECT_EQ(parse("$536870912\r\n"), Outcomes{});
  EXPECT_EQ(parse("*2147483647\r\n"), Outcomes{});
}

TEST(RespParser, ProtocolErrorIsStickyUntilReset) {
  RespParser p;
  RespLimits lim;
  RespValue v;
  size_t used = 99;
  ASSERT_EQ(p.feed("+OK\r\n!junk", lim, &used, &v), Result::Reply);
  ASSERT_EQ(p.feed("!junk", lim, &used, &v), Result::ProtocolError);
  EXPECT_EQ(p.feed("+OK\r\n", lim, &used, &v), Result::ProtocolError);
  EXPECT_EQ(used, 0u);
  p.reset();
  ASSERT_EQ(p.feed("+OK\r\n", lim, &used, &v), Result::Reply);
  EXPECT_EQ(dump(v), "+OK");
}

TEST(RespParser, ResetDropsAHalfReadReply) {
  RespParser p;
  RespLimits lim;
  RespValue v;
  size_t used = 0;
  ASSERT_EQ(p.feed("*3\r\n$5\r\nhel", lim, &used, &v), Result::NeedMore);
  p.reset();
  ASSERT_EQ(p.feed(":7\r\n", lim, &used, &v), Result::Reply);
  EXPECT_EQ(dump(v), ":7");
  lim.max_bulk = 1;
  ASSERT_EQ(p.feed("*3\r\n$5\r\nhel", lim, &used, &v), Result::NeedMore);  // skipping
  p.reset();
  ASSERT_EQ(p.feed("$1\r\nx\r\n", lim, &used, &v), Result::Reply);
  EXPECT_EQ(dump(v), "$\"x\"");
}

// ---------------------------------------------------------------------------------------------
// resp_command

TEST(RespCommand, ArrayOfBulkStrings) {
  EXPECT_EQ(command({"PING"}), "*1\r\n$4\r\nPING\r\n");
  EXPECT_EQ(command({"SET", "k", "v", "EX", "60"}),
            "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nEX\r\n$2\r\n60\r\n");
  EXPECT_EQ(command({"SENTINEL", "get-master-addr-by-name", "mymaster"}),
            "*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$8\r\nmymaster\r\n");
  EXPECT_EQ(command({"GET", ""}), "*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
  EXPECT_EQ(command({}), "*0\r\n");
  EXPECT_EQ(command({"SET", "a\r\nb", std::string_view("\0\xff", 2)}),
            std::string("*3\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n$2\r\n\0\xff\r\n", 31));
}

TEST(RespCommand, AppendsAndParsesBack) {
  std::pmr::vector<pstring> args;
  args.emplace_back("HSET");
  args.emplace_back(std::string(300, 'k'));
  args.emplace_back(std::string(70000, 'v'));
  pstring out("prefix");
  sess::resp_command(args, out);
  ASSERT_EQ(out.compare(0, 6, "prefix"), 0);
  RespLimits lim;
  lim.max_bulk = 100000;
  const Outcomes got = parse(std::string_view(out).substr(6), lim);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], "[$\"HSET\", $\"" + std::string(300, 'k') + "\", $\"" +
                        std::string(70000, 'v') + "\"]");
}
