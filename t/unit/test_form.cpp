// Unit tests for form.h: application/x-www-form-urlencoded decoding and percent_decode.
#include "form.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

using sess::FormFields;
using sess::FormResult;
using sess::pstring;

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs to_pairs(const FormFields& f) {
  Pairs p;
  for (const auto& kv : f) p.emplace_back(std::string(kv.first), std::string(kv.second));
  return p;
}

Pairs decode_ok(std::string_view body) {
  FormFields f;
  EXPECT_EQ(sess::form_decode(body, f), FormResult::Ok) << body;
  return to_pairs(f);
}

FormResult decode_result(std::string_view body, size_t max_fields = 64) {
  FormFields f;
  return sess::form_decode(body, f, max_fields);
}

}  // namespace

TEST(FormDecode, Simple) {
  EXPECT_EQ(decode_ok("a=1&b=2"), (Pairs{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(decode_ok("username=alice&password=s3cret&next=%2Fapp&csrf_token=abc"),
            (Pairs{{"username", "alice"}, {"password", "s3cret"}, {"next", "/app"},
                   {"csrf_token", "abc"}}));
}

TEST(FormDecode, Empty) {
  EXPECT_EQ(decode_ok(""), Pairs{});
  EXPECT_EQ(decode_ok("&"), Pairs{});
  EXPECT_EQ(decode_ok("&&&"), Pairs{});
}

TEST(FormDecode, PlusIsSpace) {
  EXPECT_EQ(decode_ok("q=a+b++c+"), (Pairs{{"q", "a b  c "}}));
  EXPECT_EQ(decode_ok("a+b=c"), (Pairs{{"a b", "c"}}));
  EXPECT_EQ(decode_ok("q=%2B"), (Pairs{{"q", "+"}}));  // an encoded '+' stays '+'
}

TEST(FormDecode, PercentEscapes) {
  EXPECT_EQ(decode_ok("q=%41%42%43"), (Pairs{{"q", "ABC"}}));
  EXPECT_EQ(decode_ok("q=%2f%2F"), (Pairs{{"q", "//"}}));  // either case
  EXPECT_EQ(decode_ok("q=%26%3D"), (Pairs{{"q", "&="}}));   // encoded separators are data
  EXPECT_EQ(decode_ok("%3D=%3D"), (Pairs{{"=", "="}}));
  EXPECT_EQ(decode_ok("q=%25"), (Pairs{{"q", "%"}}));
  EXPECT_EQ(decode_ok("q=%2541"), (Pairs{{"q", "%41"}}));  // decoded only once
  EXPECT_EQ(decode_ok("q=caf%C3%A9"), (Pairs{{"q", "caf\xc3\xa9"}}));
}

TEST(FormDecode, BinaryBytes) {
  auto p = decode_ok("b=%00%01%0D%0A%7F%80%FF");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].second, std::string("\x00\x01\r\n\x7f\x80\xff", 7));
  // Raw (unencoded) bytes are passed through as they are.
  p = decode_ok(std::string("r=\xff\x01x", 5));
  EXPECT_EQ(p[0].second, "\xff\x01x");
}

TEST(FormDecode, BadEscapesAreMalformed) {
  for (const char* b : {"q=%", "q=%4", "q=%G1", "q=%1G", "q=%%41", "q=a%", "q=%zz", "%=1", "a%2=1",
                        "q=% 1", "q=%-1", "ok=1&q=%4"}) {
    EXPECT_EQ(decode_result(b), FormResult::Malformed) << b;
  }
}

TEST(FormDecode, MissingEqualsGivesEmptyValue) {
  EXPECT_EQ(decode_ok("flag"), (Pairs{{"flag", ""}}));
  EXPECT_EQ(decode_ok("a&b=1&c"), (Pairs{{"a", ""}, {"b", "1"}, {"c", ""}}));
  EXPECT_EQ(decode_ok("a="), (Pairs{{"a", ""}}));
  EXPECT_EQ(decode_ok("=v"), (Pairs{{"", "v"}}));
  EXPECT_EQ(decode_ok("="), (Pairs{{"", ""}}));
}

TEST(FormDecode, EqualsInValue) {
  EXPECT_EQ(decode_ok("a=b=c"), (Pairs{{"a", "b=c"}}));
  EXPECT_EQ(decode_ok("t=abc=="), (Pairs{{"t", "abc=="}}));
}

TEST(FormDecode, EmptyPairsSkipped) {
  EXPECT_EQ(decode_ok("&&a=1&&b=2&"), (Pairs{{"a", "1"}, {"b", "2"}}));
}

TEST(FormDecode, DuplicatesKeptInOrder) {
  EXPECT_EQ(decode_ok("a=1&a=2"), (Pairs{{"a", "1"}, {"a", "2"}}));
}

TEST(FormDecode, TooManyFields) {
  std::string body;
  for (int i = 0; i < 64; i++) body += (i ? "&f" : "f") + std::to_string(i) + "=v";
  EXPECT_EQ(decode_result(body), FormResult::Ok);
  EXPECT_EQ(decode_result(body + "&x=1"), FormResult::TooManyFields);
  EXPECT_EQ(decode_result(body + "&x"), FormResult::TooManyFields);
  EXPECT_EQ(decode_result(body + "&&&"), FormResult::Ok);  // empty pairs do not count
  EXPECT_EQ(decode_result("a=1&b=2&c=3", 2), FormResult::TooManyFields);
  EXPECT_EQ(decode_result("a=1&b=2", 2), FormResult::Ok);
  EXPECT_EQ(decode_result("a=1", 0), FormResult::TooManyFields);
  EXPECT_EQ(decode_result("", 0), FormResult::Ok);
}

TEST(FormDecode, FailureLeavesOutputUnchanged) {
  FormFields f;
  ASSERT_EQ(sess::form_decode("keep=1", f), FormResult::Ok);
  EXPECT_EQ(sess::form_decode("a=1&b=%zz", f), FormResult::Malformed);
  EXPECT_EQ(to_pairs(f), (Pairs{{"keep", "1"}}));
  EXPECT_EQ(sess::form_decode("a=1&b=2&c=3", f, 2), FormResult::TooManyFields);
  EXPECT_EQ(to_pairs(f), (Pairs{{"keep", "1"}}));
  ASSERT_EQ(sess::form_decode("x=2", f), FormResult::Ok);  // appends
  EXPECT_EQ(to_pairs(f), (Pairs{{"keep", "1"}, {"x", "2"}}));
}

TEST(FormGet, FirstMatch) {
  FormFields f;
  ASSERT_EQ(sess::form_decode("user=a&next=%2Fx&user=b", f), FormResult::Ok);
  ASSERT_NE(sess::form_get(f, "user"), nullptr);
  EXPECT_EQ(*sess::form_get(f, "user"), "a");
  EXPECT_EQ(*sess::form_get(f, "next"), "/x");
  EXPECT_EQ(sess::form_get(f, "User"), nullptr);
  EXPECT_EQ(sess::form_get(f, "use"), nullptr);
  EXPECT_EQ(sess::form_get(f, ""), nullptr);
}

TEST(FormDecode, UsesTheVectorsResource) {
  std::pmr::monotonic_buffer_resource pool;
  FormFields f(&pool);
  ASSERT_EQ(sess::form_decode("a_long_field_name_beyond_sso_size=a_long_field_value_beyond_sso", f),
            FormResult::Ok);
  EXPECT_EQ(f[0].first.get_allocator().resource(), &pool);
  EXPECT_EQ(f[0].second.get_allocator().resource(), &pool);
}

TEST(PercentDecode, Basics) {
  pstring out;
  EXPECT_TRUE(sess::percent_decode("a%20b+c%2B", out));
  EXPECT_EQ(out, "a b+c+");  // no '+' handling
  out.clear();
  EXPECT_TRUE(sess::percent_decode("", out));
  EXPECT_EQ(out, "");
  EXPECT_TRUE(sess::percent_decode("%00%ff", out));
  EXPECT_EQ(std::string(out), std::string("\0\xff", 2));
}

TEST(PercentDecode, BadEscapes) {
  for (const char* in : {"%", "%1", "a%", "%xy", "%1x", "%%", "/%2", "%\xff\xff"}) {
    pstring out = "pre";
    EXPECT_FALSE(sess::percent_decode(in, out)) << in;
    EXPECT_EQ(out, "pre") << in;  // output untouched on failure
  }
}

TEST(PercentDecode, Appends) {
  pstring out = "x:";
  EXPECT_TRUE(sess::percent_decode("%41", out));
  EXPECT_EQ(out, "x:A");
}
