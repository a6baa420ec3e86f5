// Unit tests for session_data.h: the data model, the JSON codec and session_key_valid.
#include "session_data.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory_resource>
#include <random>
#include <string>
#include <vector>

using sess::pstring;
using sess::SessionData;

namespace {

std::string enc(const SessionData& d) {
  pstring out;
  d.encode(out);
  return std::string(out);
}

// Compares two SessionData objects field by field (keys in order, text and kind).
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

std::string nested(size_t depth) {  // depth containers in total, the outermost one an object
  std::string s = "{\"a\":";
  for (size_t i = 1; i < depth; i++) s += "[";
  s += "1";
  for (size_t i = 1; i < depth; i++) s += "]";
  s += "}";
  return s;
}

std::string with_keys(size_t n) {
  std::string s = "{";
  for (size_t i = 0; i < n; i++) {
    if (i) s += ",";
    s += "\"k" + std::to_string(i) + "\":" + std::to_string(i);
  }
  return s + "}";
}

// A memory resource that counts its outstanding allocations (to prove strings use it).
class CountingResource : public std::pmr::memory_resource {
 public:
  size_t live = 0;
  size_t total = 0;

 private:
  void* do_allocate(size_t bytes, size_t align) override {
    live++;
    total++;
    return std::pmr::new_delete_resource()->allocate(bytes, align);
  }
  void do_deallocate(void* p, size_t bytes, size_t align) override {
    live--;
    std::pmr::new_delete_resource()->deallocate(p, bytes, align);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Model

TEST(SessionData, SetGetEraseClear) {
  SessionData d;
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(d.get("user"), nullptr);
  d.set_string("user", "alice");
  d.set_json("n", "42");
  ASSERT_NE(d.get("user"), nullptr);
  EXPECT_EQ(d.get("user")->text, "alice");
  EXPECT_TRUE(d.get("user")->is_string);
  EXPECT_EQ(d.get("n")->text, "42");
  EXPECT_FALSE(d.get("n")->is_string);
  EXPECT_EQ(d.size(), 2u);
  EXPECT_TRUE(d.erase("user"));
  EXPECT_FALSE(d.erase("user"));
  EXPECT_EQ(d.get("user"), nullptr);
  EXPECT_EQ(d.size(), 1u);
  d.clear();
  EXPECT_TRUE(d.empty());
}

TEST(SessionData, SetReplacesInPlaceAndKeepsOrder) {
  SessionData d;
  d.set_string("a", "1");
  d.set_string("b", "2");
  d.set_string("c", "3");
  d.set_json("a", "[1]");
  EXPECT_EQ(enc(d), R"({"a":[1],"b":"2","c":"3"})");
  d.set_string("a", "x");
  EXPECT_EQ(enc(d), R"({"a":"x","b":"2","c":"3"})");
  d.erase("b");
  d.set_string("b", "again");
  EXPECT_EQ(enc(d), R"({"a":"x","c":"3","b":"again"})");
}

TEST(SessionData, KeyLookupIsExact) {
  SessionData d;
  d.set_string("user", "a");
  EXPECT_EQ(d.get("User"), nullptr);
  EXPECT_EQ(d.get("use"), nullptr);
  EXPECT_EQ(d.get("user2"), nullptr);
}

TEST(SessionData, CaseInsensitiveLookup) {
  SessionData d;
  d.set_string("userId", "42");
  d.set_string("theme", "dark");
  bool ambiguous = true;
  const sess::SessionValue* v = d.get_ci("userid", &ambiguous);  // nginx lowercases $session_userId
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->key, "userId");
  EXPECT_EQ(v->text, "42");
  EXPECT_FALSE(ambiguous);
  EXPECT_EQ(d.get_ci("USERID", &ambiguous), v);
  EXPECT_EQ(d.get_ci("userId", &ambiguous), v);
  EXPECT_EQ(d.get_ci("theme", &ambiguous)->text, "dark");
  EXPECT_FALSE(ambiguous);
  EXPECT_EQ(d.get_ci("user", &ambiguous), nullptr);  // no prefix matches
  EXPECT_EQ(d.get_ci("userid2", &ambiguous), nullptr);
  EXPECT_EQ(d.get_ci("", &ambiguous), nullptr);
  EXPECT_FALSE(ambiguous);
  EXPECT_EQ(SessionData().get_ci("x", &ambiguous), nullptr);
  EXPECT_FALSE(ambiguous);
  EXPECT_EQ(d.get_ci("userid", nullptr), v);  // the flag is optional
}

TEST(SessionData, CaseInsensitiveLookupOnlyFoldsAscii) {
  SessionData d;
  d.set_string("\xc3\x84pfel", "1");  // "Äpfel": U+00C4 is not folded
  d.set_string("k_1", "2");
  bool ambiguous = false;
  EXPECT_EQ(d.get_ci("\xc3\xa4pfel", &ambiguous), nullptr);
  EXPECT_NE(d.get_ci("\xc3\x84PFEL", &ambiguous), nullptr);
  EXPECT_EQ(d.get_ci("K_1", &ambiguous)->text, "2");
  EXPECT_EQ(d.get_ci("k\x7f" "1", &ambiguous), nullptr);  // '_' | 0x20 is DEL: no bit tricks
  EXPECT_FALSE(ambiguous);
}

TEST(SessionData, KeysDifferingOnlyInCaseAreAmbiguous) {
  SessionData d;
  d.set_string("userId", "1");
  d.set_string("other", "x");
  d.set_string("userid", "2");
  bool ambiguous = false;
  EXPECT_EQ(d.get_ci("userid", &ambiguous), nullptr);  // an exact match does not win either
  EXPECT_TRUE(ambiguous);
  ambiguous = false;
  EXPECT_EQ(d.get_ci("USERID", &ambiguous), nullptr);
  EXPECT_TRUE(ambiguous);
  EXPECT_EQ(d.get_ci("userid", nullptr), nullptr);
  EXPECT_EQ(d.get_ci("other", &ambiguous)->text, "x");  // other keys are unaffected
  EXPECT_FALSE(ambiguous);
  // The exact lookup still tells them apart.
  EXPECT_EQ(d.get("userId")->text, "1");
  EXPECT_EQ(d.get("userid")->text, "2");
  // Decoded data behaves the same.
  SessionData j;
  ASSERT_TRUE(j.decode(R"({"A":1,"a":2,"b":3})"));
  EXPECT_EQ(j.get_ci("a", &ambiguous), nullptr);
  EXPECT_TRUE(ambiguous);
  EXPECT_EQ(j.get_ci("B", &ambiguous)->text, "3");
  EXPECT_FALSE(ambiguous);
}

TEST(SessionData, UserLoggedIn) {
  SessionData d;
  ASSERT_TRUE(d.decode(R"({"s":"alice","null_name":"null","e":"","n":null,"z":0,"f":false,)"
                       R"("t":true,"a":["alice"],"o":{"user":"alice"},"q":"\"\"","sp":" "})"));
  struct Row {
    const char* key;
    bool logged_in;
  } rows[] = {
      {"s", true},          {"null_name", true},  // a user literally named "null" is a user
      {"sp", true},         {"q", true},          // any non-empty string
      {"e", false},         {"n", false},         {"z", false}, {"f", false},
      {"t", false},         {"a", false},         {"o", false}, {"missing", false},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(sess::session_user_logged_in(d.get(r.key)), r.logged_in) << r.key;
  }
  EXPECT_FALSE(sess::session_user_logged_in(nullptr));
  SessionData m;
  m.set_string("user", "null");
  EXPECT_TRUE(sess::session_user_logged_in(m.get("user")));
  m.set_json("user", "null");
  EXPECT_FALSE(sess::session_user_logged_in(m.get("user")));
  m.set_json("user", "\"alice\"");  // JSON text, not a string value: as the codec would not keep it
  EXPECT_FALSE(sess::session_user_logged_in(m.get("user")));
}

TEST(SessionData, UsesTheGivenMemoryResource) {
  CountingResource res;
  {
    SessionData d(&res);
    d.set_string("a_rather_long_key_name_that_does_not_fit_sso", std::string(100, 'x'));
    EXPECT_GT(res.live, 0u);
    const size_t before = res.total;
    ASSERT_TRUE(d.decode(R"({"user":"a long value that does not fit in the small string buffer",)"
                         R"("list":[1,2,3,{"k":"v"},"a longer string inside nested json text"]})"));
    EXPECT_GT(res.total, before);
    EXPECT_EQ(d.values()[0].key.get_allocator().resource(), &res);
    EXPECT_EQ(d.values()[0].text.get_allocator().resource(), &res);
    // Long documents make the parser's scratch copy come from the resource too.
    const size_t before_long = res.total;
    ASSERT_TRUE(d.decode("{\"big\":\"" + std::string(5000, 'y') + "\"}"));
    EXPECT_GE(res.total, before_long + 2);
    EXPECT_EQ(d.get("big")->text.size(), 5000u);
  }
  EXPECT_EQ(res.live, 0u);
}

// ---------------------------------------------------------------------------------------------
// Encoding

TEST(SessionEncode, Empty) {
  SessionData d;
  EXPECT_EQ(enc(d), "{}");
}

TEST(SessionEncode, CompactAndOrdered) {
  SessionData d;
  d.set_string("user", "alice");
  d.set_json("roles", "[\"a\",\"b\"]");
  d.set_json("n", "1.5");
  d.set_json("ok", "true");
  d.set_json("none", "null");
  EXPECT_EQ(enc(d), R"({"user":"alice","roles":["a","b"],"n":1.5,"ok":true,"none":null})");
}

TEST(SessionEncode, Escaping) {
  SessionData d;
  d.set_string("q", "say \"hi\"");
  d.set_string("b", "back\\slash");
  d.set_string("c", std::string("\r\n\t\b\f\x01\x1f\x7f", 8));
  d.set_string("nul", std::string("a\0b", 3));
  d.set_string("u", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  d.set_string("k\"ey", "/</script>");
  EXPECT_EQ(enc(d),
            "{\"q\":\"say \\\"hi\\\"\",\"b\":\"back\\\\slash\","
            "\"c\":\"\\u000d\\u000a\\u0009\\u0008\\u000c\\u0001\\u001f\\u007f\","
            "\"nul\":\"a\\u0000b\",\"u\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\","
            "\"k\\\"ey\":\"/</script>\"}");
}

TEST(SessionEncode, InvalidUtf8BecomesReplacementCharacter) {
  SessionData d;
  d.set_string("x", "a\xff" "b\xc3" "\xed\xa0\x80");
  EXPECT_EQ(enc(d), "{\"x\":\"a\\ufffdb\\ufffd\\ufffd\\ufffd\\ufffd\"}");
  SessionData back;
  ASSERT_TRUE(back.decode(enc(d)));  // the output is always decodable
  EXPECT_EQ(back.get("x")->text, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

TEST(SessionEncode, Appends) {
  SessionData d;
  d.set_string("a", "b");
  pstring out = "v1.";
  d.encode(out);
  EXPECT_EQ(out, "v1.{\"a\":\"b\"}");
}

// ---------------------------------------------------------------------------------------------
// Decoding

TEST(SessionDecode, StringsAreStoredDecoded) {
  SessionData d;
  ASSERT_TRUE(d.decode(R"({"user":"alice","q":"a\"b\\c\/d\n\u00e9\ud83d\ude00"})"));
  EXPECT_EQ(d.get("user")->text, "alice");
  EXPECT_TRUE(d.get("user")->is_string);
  EXPECT_EQ(d.get("q")->text, "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80");
}

TEST(SessionDecode, NonStringsAreStoredAsCompactJson) {
  SessionData d;
  ASSERT_TRUE(d.decode(
      " { \"n\" : 42 , \"f\" : -1.5e+3, \"t\":true, \"z\" : false, \"nil\": null,\n"
      "   \"arr\" : [ 1 , \"two\" , [ ] , { } , {\"k\" : [null]} ],\n"
      "   \"obj\" : { \"a\" : { \"b\" : \"c\\u0001\\\"\" } , \"d\" : [ true ] } } \n"));
  ASSERT_EQ(d.size(), 7u);
  EXPECT_EQ(d.get("n")->text, "42");
  EXPECT_FALSE(d.get("n")->is_string);
  EXPECT_EQ(d.get("f")->text, "-1.5e+3");  // numbers keep their original spelling
  EXPECT_EQ(d.get("t")->text, "true");
  EXPECT_EQ(d.get("z")->text, "false");
  EXPECT_EQ(d.get("nil")->text, "null");
  EXPECT_EQ(d.get("arr")->text, R"([1,"two",[],{},{"k":[null]}])");
  EXPECT_FALSE(d.get("arr")->is_string);
  EXPECT_EQ(d.get("obj")->text, R"({"a":{"b":"c\u0001\""},"d":[true]})");
  EXPECT_FALSE(d.get("obj")->is_string);
  // Insertion order is the document order.
  const char* order[] = {"n", "f", "t", "z", "nil", "arr", "obj"};
  for (size_t i = 0; i < 7; i++) EXPECT_EQ(d.values()[i].key, order[i]);
}

TEST(SessionDecode, BigNumbersKeepTheirDigits) {
  SessionData d;
  ASSERT_TRUE(d.decode(R"({"big":123456789012345678901234567890,"neg":-0,"e":1E-7})"));
  EXPECT_EQ(d.get("big")->text, "123456789012345678901234567890");
  EXPECT_EQ(d.get("neg")->text, "-0");
  EXPECT_EQ(d.get("e")->text, "1E-7");
}

TEST(SessionDecode, EmptyObject) {
  SessionData d;
  d.set_string("old", "x");
  ASSERT_TRUE(d.decode("{}"));
  EXPECT_TRUE(d.empty());
  ASSERT_TRUE(d.decode(" \t\r\n{ }\n"));
  EXPECT_TRUE(d.empty());
}

TEST(SessionDecode, DuplicateKeysLastWins) {
  SessionData d;
  ASSERT_TRUE(d.decode(R"({"a":1,"b":"x","a":"two","a":[3]})"));
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d.values()[0].key, "a");
  EXPECT_EQ(d.values()[0].text, "[3]");
  EXPECT_FALSE(d.values()[0].is_string);
  EXPECT_EQ(d.values()[1].key, "b");
  ASSERT_TRUE(d.decode(R"({"a":{"x":1},"a":"s"})"));
  EXPECT_EQ(d.get("a")->text, "s");
  EXPECT_TRUE(d.get("a")->is_string);
}

TEST(SessionDecode, DecodedNulAndEmptyStrings) {
  SessionData d;
  ASSERT_TRUE(d.decode(R"({"":"","z":"a\u0000b"})"));
  EXPECT_EQ(d.get("")->text, "");
  EXPECT_EQ(std::string(d.get("z")->text), std::string("a\0b", 3));
}

TEST(SessionDecode, DepthLimit) {
  SessionData d;
  ASSERT_EQ(SessionData::kMaxDepth, 16u);
  EXPECT_TRUE(d.decode(nested(1)));
  EXPECT_TRUE(d.decode(nested(2)));
  EXPECT_TRUE(d.decode(nested(16)));
  EXPECT_EQ(std::string(d.get("a")->text), std::string(15, '[') + "1" + std::string(15, ']'));
  EXPECT_FALSE(d.decode(nested(17)));
  EXPECT_TRUE(d.empty());
  EXPECT_FALSE(d.decode(nested(100000)));  // no stack overflow on absurd nesting
  // Objects count as well as arrays.
  std::string objs = "{";
  for (int i = 0; i < 16; i++) objs += "\"k\":{";
  objs += "}";
  for (int i = 0; i < 16; i++) objs += "}";
  EXPECT_FALSE(d.decode(objs));  // 17 levels
  objs = "{";
  for (int i = 0; i < 15; i++) objs += "\"k\":{";
  objs += "}";
  for (int i = 0; i < 15; i++) objs += "}";
  EXPECT_TRUE(d.decode(objs));  // 16 levels
}

TEST(SessionDecode, KeyLimit) {
  SessionData d;
  ASSERT_EQ(SessionData::kMaxKeys, 256u);
  EXPECT_TRUE(d.decode(with_keys(256)));
  EXPECT_EQ(d.size(), 256u);
  EXPECT_EQ(d.values()[255].text, "255");
  EXPECT_FALSE(d.decode(with_keys(257)));
  EXPECT_TRUE(d.empty());
  // Keys inside nested values do not count against the top-level limit.
  std::string s = "{\"o\":" + with_keys(300) + "}";
  EXPECT_TRUE(d.decode(s));
}

TEST(SessionDecode, Rejections) {
  const std::vector<std::string> bad = {
      "",                          // empty input
      " ",                         // only whitespace
      "[]",                        // not an object
      "[{\"a\":1}]",               // not an object
      "\"str\"",                   // not an object
      "42",                        // not an object
      "null",                      // not an object
      "true",                      // not an object
      "{",                         // truncated
      "{\"a\"",                    // truncated
      "{\"a\":",                   // truncated
      "{\"a\":\"b",                // truncated
      "{\"a\":\"b\"",              // truncated
      "{\"a\":[1,2}",              // mismatched bracket
      "{\"a\":1,}",                // trailing comma
      "{,}",                       // stray comma
      "{\"a\" 1}",                 // missing colon
      "{a:1}",                     // unquoted key
      "{'a':1}",                   // single quotes
      "{\"a\":1} x",               // trailing garbage
      "{\"a\":1}{}",               // two documents
      "{\"a\":1}}",                // extra bracket
      "{} []",                     // trailing garbage
      "{\"a\":01}",                // leading zero
      "{\"a\":1.}",                // bad number
      "{\"a\":.5}",                // bad number
      "{\"a\":+1}",                // bad number
      "{\"a\":NaN}",               // NaN not allowed
      "{\"a\":Infinity}",          // Infinity not allowed
      "{\"a\":tru}",               // bad literal
      "{\"a\":nul}",               // bad literal
      "{\"a\":\"\\x41\"}",         // bad escape
      "{\"a\":\"\\u12\"}",         // short \u escape
      "{\"a\":\"\\ud800\"}",       // lone high surrogate
      "{\"a\":\"\\udc00\"}",       // lone low surrogate
      "{\"a\":\"\\ud800\\u0041\"}",  // high surrogate followed by non-surrogate
      "{\"\\udfff\":1}",           // lone low surrogate in a key
      "{\"a\":\"tab\there\"}",     // raw control byte inside a string
      "{\"a\":\"new\nline\"}",     // raw newline inside a string
      "{\"a\":1 /* c */}",         // comments not allowed
      "{\"a\":1}//",               // comments not allowed
      "\xef\xbb\xbf{}",            // BOM
  };
  for (const auto& s : bad) {
    SessionData d;
    d.set_string("keep", "me");
    EXPECT_FALSE(d.decode(s)) << "accepted: " << s;
    EXPECT_TRUE(d.empty()) << s;
  }
}

TEST(SessionDecode, RejectsInvalidUtf8) {
  const std::vector<std::string> bad = {
      "{\"a\":\"\xff\"}",                  // invalid byte
      "{\"a\":\"\xc3\"}",                  // truncated sequence
      "{\"a\":\"\xc3(\"}",                 // bad continuation
      "{\"a\":\"\xc0\xaf\"}",              // overlong '/'
      "{\"a\":\"\xe0\x80\xaf\"}",          // overlong
      "{\"a\":\"\xed\xa0\x80\"}",          // UTF-16 surrogate encoded in UTF-8
      "{\"a\":\"\xf4\x90\x80\x80\"}",      // beyond U+10FFFF
      "{\"a\":\"\xf8\x88\x80\x80\x80\"}",  // 5-byte form
      "{\"a\":\"\x80\"}",                  // lone continuation byte
      "{\"\xfe\":1}",                      // in a key
      "{\"a\":[\"\xff\"]}",                // nested
      "{\"a\":1}\xff",                     // after the document
  };
  for (const auto& s : bad) {
    SessionData d;
    EXPECT_FALSE(d.decode(s)) << "accepted: " << s;
    EXPECT_TRUE(d.empty());
  }
}

TEST(SessionDecode, RejectsEmbeddedNul) {
  SessionData d;
  EXPECT_FALSE(d.decode(std::string("{\"a\":1}\0garbage", 15)));
  EXPECT_FALSE(d.decode(std::string("{\"a\":\"x\0y\"}", 11)));
  EXPECT_FALSE(d.decode(std::string("\0", 1)));
  EXPECT_TRUE(d.empty());
}

TEST(SessionDecode, EveryTruncationOfAValidDocumentIsRejected) {
  const std::string doc =
      R"({"user":"alice","n":12,"list":[1,{"a":"b"},null],"s":"\u00e9\ud83d\ude00"})";
  SessionData d;
  ASSERT_TRUE(d.decode(doc));
  for (size_t n = 0; n < doc.size(); n++) {
    EXPECT_FALSE(d.decode(std::string_view(doc).substr(0, n))) << n;
  }
}

TEST(SessionDecode, FailureLeavesDataEmptyAndObjectReusable) {
  SessionData d;
  ASSERT_TRUE(d.decode(R"({"a":"1"})"));
  EXPECT_FALSE(d.decode(R"({"a":"1","b":)"));
  EXPECT_TRUE(d.empty());
  ASSERT_TRUE(d.decode(R"({"c":"3"})"));
  EXPECT_EQ(d.size(), 1u);
  EXPECT_EQ(d.get("c")->text, "3");
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(SessionRoundTrip, Fixed) {
  SessionData d;
  d.set_string("user", "alice");
  d.set_string("empty", "");
  d.set_string("ctl", std::string("\0\x01\r\n\t\x1f\x7f \"\\/", 11));
  d.set_string("utf8", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf");
  d.set_string("", "empty key");
  d.set_json("num", "-12.5e3");
  // Nested JSON in the canonical form that decode() produces (compact, \u00XX escapes).
  d.set_json("arr", R"([1,"x\u000a",{"k":[true,false,null]}])");
  d.set_json("obj", R"({"a":{"b":{"c":"\u0000"}}})");
  const std::string json = enc(d);
  SessionData back;
  ASSERT_TRUE(back.decode(json)) << json;
  EXPECT_TRUE(same(d, back));
  EXPECT_EQ(enc(back), json);
}

TEST(SessionRoundTrip, DecodeEncodeIsCanonical) {
  SessionData d;
  ASSERT_TRUE(d.decode(" {\"a\" : [ 1 , 2 ] , \"b\" : \"\\u0041\\/\" , \"c\" : { } } "));
  EXPECT_EQ(enc(d), R"({"a":[1,2],"b":"A/","c":{}})");
}

TEST(SessionRoundTrip, RandomStrings) {
  std::mt19937 rng(42);
  // Random well-formed UTF-8 from a mix of ASCII (including every control byte) and multibyte
  // code points.
  auto rand_string = [&](size_t max_len) {
    std::string s;
    const size_t len = rng() % (max_len + 1);
    while (s.size() < len) {
      const unsigned kind = rng() % 4;
      uint32_t cp;
      if (kind == 0) cp = rng() % 0x80;
      else if (kind == 1) cp = 0x80 + rng() % (0x800 - 0x80);
      else if (kind == 2) {
        do cp = 0x800 + rng() % (0x10000 - 0x800); while (cp >= 0xd800 && cp <= 0xdfff);
      } else cp = 0x10000 + rng() % (0x110000 - 0x10000);
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        s.push_back(static_cast<char>(0xc0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      } else if (cp < 0x10000) {
        s.push_back(static_cast<char>(0xe0 | (cp >> 12)));
        s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      } else {
        s.push_back(static_cast<char>(0xf0 | (cp >> 18)));
        s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
        s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      }
    }
    return s;
  };
  for (int iter = 0; iter < 500; iter++) {
    SessionData d;
    const size_t keys = rng() % 20;
    for (size_t k = 0; k < keys; k++) {
      d.set_string(rand_string(10), rand_string(60));
    }
    const std::string json = enc(d);
    SessionData back;
    ASSERT_TRUE(back.decode(json)) << json;
    ASSERT_TRUE(same(d, back));
  }
}

TEST(SessionRoundTrip, RandomNestedDocumentsAreStable) {
  // Random documents with nested values in arbitrary (non-compact) layout: decoding, encoding
  // and decoding again must give the same data, and encoding is then a fixed point.
  std::mt19937 rng(7);
  const char* scalars[] = {"0", "-1", "2.5e-3", "true", "false", "null", "\"s\"", "\"\\n\\u00e9\\/\""};
  std::function<std::string(int)> value = [&](int depth) -> std::string {
    const unsigned kind = depth >= 15 ? 0 : rng() % 3;
    const char* ws = (rng() % 2) ? " " : "";
    if (kind == 0) return scalars[rng() % 8];
    std::string s = kind == 1 ? "[" : "{";
    const unsigned n = rng() % 4;
    for (unsigned i = 0; i < n; i++) {
      if (i) s += std::string(ws) + "," + ws;
      if (kind == 2) s += "\"k" + std::to_string(i) + "\"" + ws + ":" + ws;
      s += value(depth + 1);
    }
    return s + (kind == 1 ? "]" : "}");
  };
  for (int iter = 0; iter < 300; iter++) {
    std::string doc = "{";
    const unsigned n = rng() % 10;
    for (unsigned i = 0; i < n; i++) {
      if (i) doc += ", ";
      doc += "\"key" + std::to_string(i) + "\" : " + value(1);
    }
    doc += "}";
    SessionData a;
    ASSERT_TRUE(a.decode(doc)) << doc;
    const std::string e1 = enc(a);
    SessionData b;
    ASSERT_TRUE(b.decode(e1)) << e1;
    ASSERT_TRUE(same(a, b)) << doc;
    ASSERT_EQ(enc(b), e1);
    ASSERT_EQ(e1.find(' '), std::string::npos) << e1;  // compact (no space in this corpus)
  }
}

TEST(SessionRoundTrip, MaximalDocument) {
  SessionData d;
  for (size_t i = 0; i < SessionData::kMaxKeys; i++) {
    d.set_string("key_" + std::to_string(i), std::string(i % 7, 'v'));
  }
  d.set_json("key_0", nested(16).substr(5, nested(16).size() - 6));  // 15 levels below the top
  const std::string json = enc(d);
  SessionData back;
  ASSERT_TRUE(back.decode(json));
  EXPECT_TRUE(same(d, back));
}

// ---------------------------------------------------------------------------------------------
// session_key_valid

TEST(SessionKey, Valid) {
  for (std::string k : std::vector<std::string>{"user", "a", "Z", "_", "user_id", "ABC_def_123", std::string(64, 'k')}) {
    EXPECT_TRUE(sess::session_key_valid(k)) << k;
  }
}

TEST(SessionKey, Invalid) {
  for (std::string k : std::vector<std::string>{"", std::string(65, 'k'), "a-b", "a.b", "a b", "a$", "user\n", "caf\xc3\xa9",
                        "a/b", "a:b", "{}", "\"", "a\\b"}) {
    EXPECT_FALSE(sess::session_key_valid(k)) << k;
  }
  EXPECT_FALSE(sess::session_key_valid(std::string_view("a\0", 2)));
  for (int c = 0; c < 256; c++) {
    const bool expected = std::isalnum(c) != 0 || c == '_';
    const char ch = static_cast<char>(c);
    EXPECT_EQ(sess::session_key_valid(std::string_view(&ch, 1)), expected && c < 128) << c;
  }
}

// ---------------------------------------------------------------------------------------------
// decode_session_value / encode_session_value / append_json_string (one value on its own)

namespace {

struct ValueCase {
  std::string json;
  bool ok;
  std::string text;  // when ok
  bool is_string;    // when ok
};

}  // namespace

TEST(SessionValueCodec, Table) {
  const std::vector<ValueCase> cases = {
      {"\"alice\"", true, "alice", true},
      {"\"\"", true, "", true},
      {"\"a\\\"b\\\\c\\/d\"", true, "a\"b\\c/d", true},
      {"\"\\u00e9\\ud83d\\ude00\\n\"", true, "\xc3\xa9\xf0\x9f\x98\x80\n", true},
      {"\"null\"", true, "null", true},
      {"3", true, "3", false},
      {"-1.5e+10", true, "-1.5e+10", false},
      {" 3 ", true, "3", false},
      {"true", true, "true", false},
      {"false", true, "false", false},
      {"null", true, "null", false},
      {"[ 1 , \"x\" , {} ]", true, "[1,\"x\",{}]", false},
      {"{ \"a\" : [ ] , \"b\" : { \"c\" : null } }", true, "{\"a\":[],\"b\":{\"c\":null}}", false},
      {"{\"a\":1,\"a\":2}", true, "{\"a\":1,\"a\":2}", false},  // nested: kept as written
      {"", false, "", false},
      {" ", false, "", false},
      {"alice", false, "", false},
      {"\"alice", false, "", false},
      {"1 2", false, "", false},
      {"\"a\" \"b\"", false, "", false},
      {"1,\"x\":2", false, "", false},
      {"{", false, "", false},
      {"[1,]", false, "", false},
      {"01", false, "", false},
      {"'a'", false, "", false},
      {"\"\\udc00\"", false, "", false},         // lone low surrogate
      {"\"\\ud800\"", false, "", false},         // lone high surrogate
      {"\"\xff\"", false, "", false},            // invalid UTF-8
      {"\"\xc0\xaf\"", false, "", false},        // overlong
      {"\"a\nb\"", false, "", false},            // raw control byte in a string
      {std::string("1\0", 2), false, "", false},  // NUL
      {std::string("\"a\0\"", 4), false, "", false},
  };
  for (const auto& c : cases) {
    sess::SessionValue v(std::pmr::get_default_resource());
    v.key = "kept";
    v.text = "stale";
    EXPECT_EQ(sess::decode_session_value(c.json, v), c.ok) << c.json;
    EXPECT_EQ(v.key, "kept");
    if (c.ok) {
      EXPECT_EQ(std::string(v.text), c.text) << c.json;
      EXPECT_EQ(v.is_string, c.is_string) << c.json;
    } else {
      EXPECT_TRUE(v.text.empty()) << c.json;
    }
  }
}

// A value decodes exactly as the same text does as a value of a top-level object (the v1 record
// form), including the nesting limit: the object is one level, so a value may nest one less.
TEST(SessionValueCodec, AgreesWithObjectDecode) {
  std::vector<std::string> values = {"\"x\"", "1", "[1,[2,[3]]]", "{\"a\":{\"b\":\"\\u0001\"}}",
                                     "\"\\ud83d\\ude00\"", "tru", "[", "\"\\udc00\""};
  for (size_t depth = 1; depth <= SessionData::kMaxDepth + 2; depth++) {
    values.push_back(std::string(depth, '[') + "0" + std::string(depth, ']'));
  }
  for (const auto& v : values) {
    SessionData d;
    const bool object_ok = d.decode("{\"k\":" + v + "}");
    sess::SessionValue sv(std::pmr::get_default_resource());
    EXPECT_EQ(sess::decode_session_value(v, sv), object_ok) << v;
    if (object_ok) {
      ASSERT_EQ(d.size(), 1u);
      EXPECT_EQ(sv.text, d.values()[0].text) << v;
      EXPECT_EQ(sv.is_string, d.values()[0].is_string) << v;
    }
  }
  const std::string deepest = std::string(SessionData::kMaxDepth - 1, '[') + "0" +
                              std::string(SessionData::kMaxDepth - 1, ']');
  sess::SessionValue sv(std::pmr::get_default_resource());
  EXPECT_TRUE(sess::decode_session_value(deepest, sv));
  EXPECT_FALSE(sess::decode_session_value("[" + deepest + "]", sv));
  EXPECT_FALSE(sess::decode_session_value(std::string(100000, '['), sv));  // no stack overflow
}

TEST(SessionValueCodec, EncodeRoundTrips) {
  const std::vector<std::pair<std::string, bool>> values = {
      {"alice", true}, {"", true}, {"a\"b\\c", true}, {std::string("\x01\x1f\x7f\t\r\n", 6), true},
      {"\xc3\xa9\xf0\x9f\x98\x80", true}, {"null", true}, {"3", false}, {"[1,{\"a\":\"b\"}]", false},
      {"null", false}, {"{}", false}};
  for (const auto& [text, is_string] : values) {
    sess::SessionValue v(std::pmr::get_default_resource());
    v.text = text;
    v.is_string = is_string;
    pstring json("|");
    sess::encode_session_value(v, json);
    ASSERT_EQ(json[0], '|');  // appends
    json.erase(0, 1);
    if (is_string) {
      EXPECT_EQ(json.front(), '"');
    } else {
      EXPECT_EQ(std::string(json), text);
    }
    sess::SessionValue back(std::pmr::get_default_resource());
    ASSERT_TRUE(sess::decode_session_value(json, back)) << json;
    EXPECT_EQ(std::string(back.text), text);
    EXPECT_EQ(back.is_string, is_string);
  }
}

TEST(SessionValueCodec, AppendJsonStringIsWhatEncodeWrites) {
  const std::string s = std::string("a\"\\\x01\x7f\xc3\xa9\xff", 8) + "z";
  pstring lit;
  sess::append_json_string(s, lit);
  EXPECT_EQ(lit, "\"a\\\"\\\\\\u0001\\u007f\xc3\xa9\\ufffdz\"");
  SessionData d;
  d.set_string("k", s);
  EXPECT_EQ(enc(d), "{\"k\":" + std::string(lit) + "}");
}

// A user name as every later request reads it back: what utf8_as_stored gives is what the JSON
// that append_json_string writes decodes to, and well-formed names are not copied.
TEST(SessionValueCodec, Utf8AsStoredIsWhatReadsBack) {
  const std::string cases[] = {"alice", "\xc3\xa9mile x", "j\xf6rg", "\xff\xfe", "a\xed\xa0\x80" "b",
                               "\xf0\x9f\x98", "x\xc3", ""};
  for (const std::string& name : cases) {
    pstring scratch;
    std::string_view got = sess::utf8_as_stored(name, scratch);
    EXPECT_EQ(sess::utf8_well_formed(name), got.data() == name.data()) << name;
    pstring lit;
    sess::append_json_string(name, lit);
    sess::SessionValue back(std::pmr::get_default_resource());
    ASSERT_TRUE(sess::decode_session_value(lit, back)) << lit;
    EXPECT_EQ(std::string(back.text), std::string(got)) << name;
    EXPECT_TRUE(sess::utf8_well_formed(got));
  }
  pstring scratch;
  EXPECT_EQ(std::string(sess::utf8_as_stored("j\xf6rg", scratch)), "j\xef\xbf\xbdrg");
}

TEST(SessionValueCodec, UsesTheValuesResource) {
  CountingResource counting;
  {
    sess::SessionValue v(&counting);
    const std::string big = "\"" + std::string(4096, 'x') + "\"";  // past the scratch buffer
    ASSERT_TRUE(sess::decode_session_value(big, v));
    EXPECT_EQ(v.text.size(), 4096u);
    EXPECT_GT(counting.live, 0u);
  }
  EXPECT_EQ(counting.live, 0u);
}

// The user: the exact key, and nobody when another key differs from it only in case (the app
// reads session['username'] exactly, $session_user without regard to case).
TEST(SessionUser, ExactKeyAndNoCaseVariants) {
  sess::SessionData d;
  EXPECT_EQ(sess::session_user(d, "username"), nullptr);
  d.set_string("username", "alice");
  ASSERT_NE(sess::session_user(d, "username"), nullptr);
  EXPECT_EQ(sess::session_user(d, "username")->text, "alice");
  EXPECT_EQ(sess::session_user(d, "Username"), nullptr);  // not the exact key
  d.set_string("USERNAME", "admin");
  EXPECT_EQ(sess::session_user(d, "username"), nullptr);  // ambiguous: nobody
  EXPECT_EQ(sess::session_user(d, "USERNAME"), nullptr);
  EXPECT_FALSE(sess::session_user_logged_in(sess::session_user(d, "username")));
  // A login sets the user and drops the variants.
  d.set_string("UserName", "eve");
  d.set_string("theme", "dark");
  sess::set_session_user(d, "username", "bob");
  ASSERT_NE(sess::session_user(d, "username"), nullptr);
  EXPECT_EQ(sess::session_user(d, "username")->text, "bob");
  EXPECT_EQ(d.size(), 2u);
  EXPECT_EQ(d.get("theme")->text, "dark");
}

// session_user remembers its answer (the data it was asked about, per key): every change of the
// values must give the answer for the new values, a copy or move must answer for its own values
// (never point into the other object's), and another key is asked anew. Each step below is
// asked twice (the second answer comes from the memo) and compared with a fresh lookup on a copy.
TEST(SessionUser, RememberedAnswerFollowsEveryChange) {
  auto expect_user = [](const sess::SessionData& d, std::string_view key, const char* want) {
    for (int pass = 0; pass < 2; pass++) {
      const sess::SessionValue* u = sess::session_user(d, key);
      if (want == nullptr) {
        EXPECT_EQ(u, nullptr) << key << " pass " << pass;
        continue;
      }
      ASSERT_NE(u, nullptr) << key << " pass " << pass;
      EXPECT_EQ(u->text, want) << key << " pass " << pass;
      // The pointer is into d's own values.
      bool own = false;
      for (const auto& v : d.values()) own = own || &v == u;
      EXPECT_TRUE(own) << key << " pass " << pass;
    }
  };
  sess::SessionData d;
  expect_user(d, "user", nullptr);
  d.set_string("user", "alice");
  expect_user(d, "user", "alice");
  d.set_string("user", "bob");  // same key, new text
  expect_user(d, "user", "bob");
  d.set_json("user", "7");  // not a string: still the value, but nobody is logged in
  ASSERT_NE(sess::session_user(d, "user"), nullptr);
  EXPECT_FALSE(sess::session_user_logged_in(sess::session_user(d, "user")));
  d.set_string("user", "carol");
  expect_user(d, "user", "carol");
  d.set_string("USER", "x");  // a case variant: nobody
  expect_user(d, "user", nullptr);
  EXPECT_TRUE(d.erase("USER"));
  expect_user(d, "user", "carol");
  expect_user(d, "name", nullptr);  // another key, asked anew
  d.set_string("name", "n");
  expect_user(d, "name", "n");
  expect_user(d, "user", "carol");
  // Enough appends to move the values to new memory.
  for (int i = 0; i < 64; i++) d.append("k" + std::to_string(i), "v", true);
  expect_user(d, "user", "carol");
  d.reserve(1024);
  expect_user(d, "user", "carol");
  // Copies and moves answer for themselves.
  sess::SessionData copy(d);
  expect_user(copy, "user", "carol");
  sess::SessionData other;
  other.set_string("user", "dave");
  expect_user(other, "user", "dave");
  other = d;
  expect_user(other, "user", "carol");
  sess::SessionData moved(std::move(copy));
  expect_user(moved, "user", "carol");
  sess::SessionData assigned;
  expect_user(assigned, "user", nullptr);
  assigned.assign(d);
  expect_user(assigned, "user", "carol");
  ASSERT_TRUE(d.decode(R"({"user":"erin"})"));
  expect_user(d, "user", "erin");
  EXPECT_FALSE(d.decode("not json"));
  expect_user(d, "user", nullptr);
  d.set_string("user", "frank");
  expect_user(d, "user", "frank");
  d.clear();
  expect_user(d, "user", nullptr);
  sess::set_session_user(d, "user", "gina");
  expect_user(d, "user", "gina");
  // A key longer than what is remembered is looked up every time.
  const std::string long_key(40, 'u');
  d.set_string(long_key, "hank");
  expect_user(d, long_key, "hank");
  d.set_string(long_key, "ivan");
  expect_user(d, long_key, "ivan");
}

// The object moved from forgets too: its values went with the move, and a remembered answer
// would point into the new owner's values (a use after free once that owner changes or goes).
TEST(SessionUser, MovedFromForgets) {
  sess::SessionData a;
  a.set_string("user", "alice");
  ASSERT_NE(sess::session_user(a, "user"), nullptr);  // remembered
  sess::SessionData b(std::move(a));
  EXPECT_EQ(sess::session_user(a, "user"), nullptr);  // NOLINT(bugprone-use-after-move)
  ASSERT_NE(sess::session_user(b, "user"), nullptr);
  sess::SessionData c;
  c.set_string("user", "carol");
  ASSERT_NE(sess::session_user(c, "user"), nullptr);
  sess::SessionData d;
  d = std::move(c);
  EXPECT_EQ(sess::session_user(c, "user"), nullptr);  // NOLINT(bugprone-use-after-move)
  ASSERT_NE(sess::session_user(d, "user"), nullptr);
  EXPECT_EQ(sess::session_user(d, "user")->text, "carol");
  d.clear();
  EXPECT_EQ(sess::session_user(d, "user"), nullptr);
}
