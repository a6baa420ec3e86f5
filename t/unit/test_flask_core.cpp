// Flask bridge core: the cases Python cannot make for us (bounds, bombs, hostile shapes) and the
// small pieces on their own. Agreement with Python itself is test_flask_vectors.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "base64url.h"
#include "flask_json.h"
#include "flask_msgpack.h"
#include "flask_pickle.h"
#include "flask_signer.h"

using sess::FlaskKeys;
using sess::FlaskTokenResult;
using sess::FlaskValue;
using sess::pstring;

namespace {

constexpr uint64_t kT = 1700000000;

FlaskKeys cookie_keys(std::initializer_list<std::string_view> secrets) {
  FlaskKeys k(sess::kFlaskCookieSalt);
  for (auto s : secrets) EXPECT_TRUE(k.add_secret(s));
  return k;
}

// A token itsdangerous would accept, around an arbitrary (already encoded) payload.
std::string sign_payload(const FlaskKeys& k, std::string_view payload, uint64_t ts) {
  pstring v(payload);
  v.push_back('.');
  unsigned char b[8];
  sess::put_be64(b, ts);
  size_t skip = 0;
  while (skip < 8 && b[skip] == 0) skip++;
  sess::base64url_encode(std::string_view(reinterpret_cast<char*>(b + skip), 8 - skip), v);
  unsigned char mac[20];
  EXPECT_TRUE(k.sign(0, v, mac));
  v.push_back('.');
  sess::base64url_encode(std::string_view(reinterpret_cast<char*>(mac), 20), v);
  return std::string(v);
}

FlaskTokenResult open(const FlaskKeys& k, std::string_view tok, uint64_t now, std::string* json,
                      sess::FlaskCookieLimits lim = sess::FlaskCookieLimits()) {
  pstring j = "stale";
  uint64_t ts = 0;
  auto r = sess::flask_cookie_open(k, tok, now, 3600, &j, &ts, lim);
  if (r != FlaskTokenResult::Ok) {
    EXPECT_TRUE(j.empty());
  }
  if (json) *json = std::string(j);
  return r;
}

std::string repr(double d) {
  std::string s;
  sess::flask_float_repr(d, s);
  return s;
}

}  // namespace

TEST(FlaskSigner, SealOpenRotationAndLifetime) {
  auto k = cookie_keys({"new", "old"});
  pstring tok;
  ASSERT_TRUE(sess::flask_cookie_seal(k, R"({"user":"alice"})", kT, tok));
  std::string json;
  EXPECT_EQ(open(k, tok, kT, &json), FlaskTokenResult::Ok);
  EXPECT_EQ(json, R"({"user":"alice"})");
  EXPECT_EQ(open(cookie_keys({"other", "new"}), tok, kT, nullptr), FlaskTokenResult::Ok);
  EXPECT_EQ(open(cookie_keys({"old"}), tok, kT, nullptr), FlaskTokenResult::BadSignature);
  EXPECT_EQ(open(k, tok, kT + 3600, nullptr), FlaskTokenResult::Ok);
  EXPECT_EQ(open(k, tok, kT + 3601, nullptr), FlaskTokenResult::Expired);
  EXPECT_EQ(open(k, tok, kT - 1, nullptr), FlaskTokenResult::Expired);  // from the future
  // A bad signature wins over an expired timestamp (itsdangerous checks the signature first).
  EXPECT_EQ(open(cookie_keys({"x"}), tok, kT + 99999, nullptr), FlaskTokenResult::BadSignature);
  FlaskKeys none(sess::kFlaskCookieSalt);
  pstring out = "keep";
  EXPECT_FALSE(sess::flask_cookie_seal(none, "{}", kT, out));
  EXPECT_EQ(out, "keep");
}

TEST(FlaskSigner, MalformedTokensCostNoCrypto) {
  auto k = cookie_keys({"s"});
  for (std::string_view t : {"", ".", "..", "abc", "a.b", "a+b.AAA.AAAAAAAAAAAAAAAAAAAAAAAAAAA",
                             "a=.AAA.AAAAAAAAAAAAAAAAAAAAAAAAAAA", "a b.c.d", "A.A.A"}) {
    auto r = open(k, t, kT, nullptr);
    EXPECT_TRUE(r == FlaskTokenResult::Malformed || r == FlaskTokenResult::BadSignature) << t;
  }
  sess::FlaskCookieLimits lim;
  lim.max_token = 10;
  EXPECT_EQ(open(k, std::string(11, 'A'), kT, nullptr, lim), FlaskTokenResult::Malformed);
}

TEST(FlaskSigner, TimestampWidthAndPayloadErrorsAfterTheSignature) {
  auto k = cookie_keys({"s"});
  // Nine timestamp bytes: itsdangerous' bytes_to_int refuses them.
  pstring v("e30");  // "{}"
  v.append(".AQAAAAAAAAAA");  // 9 bytes
  unsigned char mac[20];
  ASSERT_TRUE(k.sign(0, v, mac));
  v.push_back('.');
  sess::base64url_encode(std::string_view(reinterpret_cast<char*>(mac), 20), v);
  EXPECT_EQ(open(k, v, kT, nullptr), FlaskTokenResult::Malformed);
  // Signed, but the payload is not zlib.
  EXPECT_EQ(open(k, sign_payload(k, ".e30", kT), kT, nullptr), FlaskTokenResult::Malformed);
  // An empty timestamp is 0 (rjust to 8 bytes): long expired.
  EXPECT_EQ(open(k, sign_payload(k, "e30", 0), kT, nullptr), FlaskTokenResult::Expired);
}

TEST(FlaskSigner, ZlibBombIsBounded) {
  auto k = cookie_keys({"s"});
  const std::string zeros(10 << 20, '0');
  pstring z;
  ASSERT_TRUE(sess::flask_zlib_compress(zeros, z));
  ASSERT_LT(z.size(), 20000u);
  pstring payload(".");
  sess::base64url_encode(z, payload);
  EXPECT_EQ(open(k, sign_payload(k, payload, kT), kT, nullptr, {1 << 20, 65536}),
            FlaskTokenResult::Malformed);

  pstring out;
  EXPECT_FALSE(sess::flask_zlib_decompress(z, 65536, out));
  EXPECT_TRUE(out.empty());
  // Exactly at the bound is fine, one byte more is not.
  pstring z2;
  ASSERT_TRUE(sess::flask_zlib_compress(std::string(5000, 'x'), z2));
  EXPECT_TRUE(sess::flask_zlib_decompress(z2, 5000, out));
  EXPECT_EQ(out.size(), 5000u);
  out.clear();
  EXPECT_FALSE(sess::flask_zlib_decompress(z2, 4999, out));
  // Truncated and trailing bytes.
  EXPECT_FALSE(sess::flask_zlib_decompress(std::string_view(z2).substr(0, z2.size() - 1), 9999,
                                           out));
  EXPECT_FALSE(sess::flask_zlib_decompress(std::string(z2) + "x", 9999, out));
  EXPECT_FALSE(sess::flask_zlib_decompress("", 9999, out));
}

TEST(FlaskSigner, CompressionOnlyWhenTwoBytesShorter) {
  auto k = cookie_keys({"s"});
  for (size_t n = 1; n < 64; n++) {
    const std::string json = "{\"a\":\"" + std::string(n, 'a') + "\"}";
    pstring z;
    ASSERT_TRUE(sess::flask_zlib_compress(json, z));
    pstring tok;
    ASSERT_TRUE(sess::flask_cookie_seal(k, json, kT, tok));
    EXPECT_EQ(tok[0] == '.', z.size() < json.size() - 1) << n;
    std::string back;
    EXPECT_EQ(open(k, tok, kT, &back), FlaskTokenResult::Ok);
    EXPECT_EQ(back, json);
  }
}

TEST(FlaskSigner, SessionIdSigner) {
  FlaskKeys k(sess::kFlaskSessionSignerSalt);
  ASSERT_TRUE(k.add_secret("s"));
  pstring tok;
  ASSERT_TRUE(sess::flask_sid_sign(k, "abc-def", tok));
  pstring sid = "stale";
  EXPECT_EQ(sess::flask_sid_unsign(k, tok, &sid), FlaskTokenResult::Ok);
  EXPECT_EQ(sid, "abc-def");
  // The cookie salt's keys do not verify an id (and the reverse).
  auto ck = cookie_keys({"s"});
  EXPECT_EQ(sess::flask_sid_unsign(ck, tok, &sid), FlaskTokenResult::BadSignature);
  EXPECT_TRUE(sid.empty());
  EXPECT_EQ(sess::flask_sid_unsign(k, "nodot", &sid), FlaskTokenResult::Malformed);
  EXPECT_EQ(sess::flask_sid_unsign(k, ".AAAA", &sid), FlaskTokenResult::Malformed);
  EXPECT_EQ(sess::flask_sid_unsign(k, "a.b=c", &sid), FlaskTokenResult::Malformed);
  EXPECT_EQ(sess::flask_sid_unsign(k, std::string(600, 'a') + ".x", &sid),
            FlaskTokenResult::Malformed);
}

TEST(FlaskValue, FloatReprIsPythons) {
  // Expectations: Python 3.11 repr().
  EXPECT_EQ(repr(0.0), "0.0");
  EXPECT_EQ(repr(-0.0), "-0.0");
  EXPECT_EQ(repr(1.5), "1.5");
  EXPECT_EQ(repr(0.1), "0.1");
  EXPECT_EQ(repr(1e16), "1e+16");
  EXPECT_EQ(repr(1e15), "1000000000000000.0");
  EXPECT_EQ(repr(123456789.0), "123456789.0");
  EXPECT_EQ(repr(0.0001), "0.0001");
  EXPECT_EQ(repr(0.00001), "1e-05");
  EXPECT_EQ(repr(1.5e-7), "1.5e-07");
  EXPECT_EQ(repr(1e300), "1e+300");
  EXPECT_EQ(repr(5e-324), "5e-324");
  EXPECT_EQ(repr(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(repr(std::nan("")), "NaN");
  EXPECT_EQ(repr(-HUGE_VAL), "-Infinity");
}

TEST(FlaskValue, JsonReaderIsPythonsStrictReader) {
  FlaskValue v;
  for (std::string_view bad : std::initializer_list<std::string_view>{"", "{", "{\"a\":1,}", "[1,]", "01", "1.", "1e", "-", "\"\x01\"", "\"\\x\"", "nul",
        "{\"a\" 1}", "\"\\ud80\"", "[1] x", "\"\xc3\"", "\"\xed\xa0\x80\"", "{1:2}", "+1",
        std::string_view("\"a\0\"", 4)}) {
    EXPECT_FALSE(sess::flask_json_parse(bad, v)) << bad;
  }
  for (std::string_view good : {" {} ", "[]", "-0", "1E+5", "NaN", "-Infinity", "\"\x7f\"",
                                "\"\\ud800\"", "[[[[1]]]]", "\"\\/\""}) {
    EXPECT_TRUE(sess::flask_json_parse(good, v)) << good;
  }
  std::string deep(sess::kFlaskMaxDepth, '[');
  deep += std::string(sess::kFlaskMaxDepth, ']');
  EXPECT_TRUE(sess::flask_json_parse(deep, v));
  EXPECT_FALSE(sess::flask_json_parse("[" + deep + "]", v));
}

TEST(FlaskJson, StringsAndValuesInSessionData) {
  sess::SessionData d;
  ASSERT_TRUE(sess::flask_session_from_json(
      R"({"n":1.50,"s":"\u00e9","t":{" t":[1,2]},"x":{"b":1,"a":2},"z":"\ud800"})", d));
  ASSERT_EQ(d.size(), 5u);
  EXPECT_EQ(d.get("n")->text, "1.50");  // numbers verbatim
  EXPECT_FALSE(d.get("n")->is_string);
  EXPECT_TRUE(d.get("s")->is_string);
  EXPECT_EQ(d.get("s")->text, "\xc3\xa9");
  EXPECT_EQ(d.get("x")->text, R"({"a":2,"b":1})");
  // A lone surrogate cannot be a decoded string: it stays JSON text, so it goes back unchanged.
  EXPECT_FALSE(d.get("z")->is_string);
  EXPECT_EQ(d.get("z")->text, R"("\ud800")");
  pstring text;
  ASSERT_TRUE(sess::flask_value_text(*d.get("t"), text));
  EXPECT_EQ(text, "[1,2]");
  // nginx's own writes: strings, and invalid UTF-8 as U+FFFD (Python str cannot hold it).
  d.set_string("user", "bob\n\x7f\xff");
  pstring out;
  ASSERT_TRUE(sess::flask_session_to_json(d, out));
  EXPECT_EQ(out,
            R"({"n":1.50,"s":"\u00e9","t":{" t":[1,2]},"user":"bob\n\u007f\ufffd",)"
            R"("x":{"a":2,"b":1},"z":"\ud800"})");
  EXPECT_FALSE(sess::flask_session_from_json("[1]", d));
  EXPECT_TRUE(d.empty());
  std::string many = "{";
  for (size_t i = 0; i <= sess::SessionData::kMaxKeys; i++) {
    many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":1";
  }
  EXPECT_FALSE(sess::flask_session_from_json(many + "}", d));
}

// Issue 12: an unknown tag makes the session invalid. An unknown tag is an object with exactly
// one key, a space followed by one or more characters, that is none of Flask's tags.
TEST(FlaskJson, UnknownTagIsInvalid) {
  sess::SessionData d;
  for (std::string_view bad :
       {R"({"x":{" zz":1}})", R"({" zz":1})", R"({"x":[1,{" t2":[1]}]})", R"({"x":{" T":1}})",
        R"({"x":{" t":[{" q":null}]}})", R"({"x":{" di":{" t__":{" zz":1}}}})",
        R"({"x":{" di":{" t__":1}},"y":{"a":{"  ":1}}})", R"({"x":{" \u00e9":1}})"}) {
    EXPECT_FALSE(sess::flask_session_from_json(bad, d)) << bad;
    EXPECT_TRUE(d.empty());
  }
  for (std::string_view good :
       {R"({"x":{" t":[1]}})", R"({"x":{" b":"AA=="}})", R"({"x":{" u":"00"}})",
        R"({"x":{" d":"Thu, 01 Jan 1970 00:00:00 GMT"}})", R"({"x":{" m":"<b>"}})",
        R"({"x":{" di":{" t__":1}}})",  // {" t": 1} as Flask's TagDict writes it
        R"({"x":{" ":1}})",             // a lone space: no tag name, a plain dict
        R"({"x":{"zz":1}})", R"({"x":{" zz":1,"a":2}})", R"({"x":{}})", R"({"x":" zz"})"}) {
    EXPECT_TRUE(sess::flask_session_from_json(good, d)) << good;
  }
}

TEST(FlaskJson, PlainJsonRecordsOfFlaskSession07) {
  sess::SessionData d;
  // A dict that looks like a tag is a plain dict in a msgspec JSON record.
  ASSERT_TRUE(sess::flask_session_from_plain_json(R"({"z":{" t":[1]},"a":"x"})", d));
  EXPECT_EQ(d.values()[0].key, "z");
  EXPECT_EQ(d.get("z")->text, R"({" di":{" t__":[1]}})");
  pstring out;
  ASSERT_TRUE(sess::flask_session_to_plain_json(d, out));
  EXPECT_EQ(out, R"({"z":{" t":[1]},"a":"x"})");
  // Tuples and bytes as msgspec writes them; a uuid has no record form here.
  ASSERT_TRUE(sess::flask_session_from_json(R"({"b":{" b":"AAE="},"t":{" t":[1]}})", d));
  out.clear();
  ASSERT_TRUE(sess::flask_session_to_plain_json(d, out));
  EXPECT_EQ(out, R"({"b":"AAE=","t":[1]})");
  ASSERT_TRUE(sess::flask_session_from_json(R"({"u":{" u":"00"}})", d));
  out.clear();
  EXPECT_FALSE(sess::flask_session_to_plain_json(d, out));
  FlaskValue tree;
  EXPECT_TRUE(sess::flask_session_to_tree(d, tree));
  EXPECT_FALSE(sess::flask_pickle_write(tree, out));
  EXPECT_FALSE(sess::flask_msgpack_write(tree, out));
  EXPECT_TRUE(out.empty());
}

TEST(FlaskPickle, IntegersBothWays) {
  for (std::string dec : {"0", "1", "-1", "127", "128", "-128", "-129", "255", "256", "32767",
                          "-32768", "9223372036854775807", "-9223372036854775808",
                          "18446744073709551616", "-1267650600228229401496703205376",
                          "100000000000000000000000000000000000000000000000000"}) {
    std::string le, back;
    ASSERT_TRUE(sess::flask_int_to_le(dec, le));
    ASSERT_TRUE(sess::flask_int_from_le(le, back));
    EXPECT_EQ(back, dec == "0" ? "0" : dec);
  }
  std::string le;
  ASSERT_TRUE(sess::flask_int_to_le("-128", le));
  EXPECT_EQ(le, std::string("\x80", 1));  // encode_long(-128) == b'\x80'
  ASSERT_TRUE(sess::flask_int_to_le("255", le));
  EXPECT_EQ(le, std::string("\xff\x00", 2));
  EXPECT_FALSE(sess::flask_int_to_le("12a", le));
}

TEST(FlaskPickle, StackMisuseAndLimits) {
  FlaskValue v;
  using R = sess::PickleResult;
  auto rd = [&](std::string_view p) { return sess::flask_pickle_read(p, v); };
  EXPECT_EQ(rd(""), R::Invalid);
  EXPECT_EQ(rd("."), R::Invalid);                          // STOP on an empty stack
  EXPECT_EQ(rd("s."), R::Invalid);                         // SETITEM without a dict
  EXPECT_EQ(rd("}(K\x01u."), R::Invalid);                  // odd SETITEMS
  EXPECT_EQ(rd("(}u."), R::Invalid);                       // SETITEMS with the dict inside
  EXPECT_EQ(rd("}\x94h\x01."), R::Invalid);                // BINGET of nothing
  EXPECT_EQ(rd("}K\x01\x8c\x01xs."), R::Invalid);          // int key
  EXPECT_EQ(rd("}\x8c\x01xK\x01s."), R::Ok);
  EXPECT_EQ(rd(std::string("\x80\x06}.", 3)), R::Invalid);  // protocol 6
  EXPECT_EQ(rd("}\x8c\x02\xc3\x28K\x01s."), R::Invalid);   // invalid UTF-8
  EXPECT_EQ(rd("}\x8c\x03\xed\xa0\x80K\x01s."), R::Ok);    // a lone surrogate is a Python str
  EXPECT_EQ(rd("}(\x8c\x01a\x8c\x01b\x85u."), R::Invalid);  // odd after a tuple
  EXPECT_EQ(rd("}\x8c\x01" "ac__builtin__\neval\ns."), R::Forbidden);
  // Billion laughs through DUP: each level doubles the shared list.
  std::string p = "}\x8c\x01x]";
  for (int i = 0; i < 40; i++) p += "2\x86";  // DUP, TUPLE2
  p += "s.";
  EXPECT_EQ(rd(p), R::TooLarge);
  sess::PickleLimits lim;
  lim.max_input = 4;
  EXPECT_EQ(sess::flask_pickle_read("}\x8c\x01xK\x01s.", v, lim), R::TooLarge);
  EXPECT_EQ(v.type, FlaskValue::Type::None);
}

TEST(FlaskMsgpack, IntsAndFloatsBothWays) {
  FlaskValue obj(FlaskValue::Type::Dict);
  const char* ints[] = {"0", "127", "128", "255", "256", "65535", "65536", "4294967295",
                        "4294967296", "18446744073709551615", "-1", "-32", "-33", "-128",
                        "-129", "-32768", "-32769", "-2147483648", "-2147483649",
                        "-9223372036854775808"};
  for (const char* i : ints) {
    obj.keys.emplace_back(i);
    obj.items.emplace_back(FlaskValue::Type::Int);
    obj.items.back().text = i;
  }
  obj.keys.emplace_back("f");
  obj.items.emplace_back(FlaskValue::Type::Float);
  obj.items.back().text = "0.1";
  pstring out;
  ASSERT_TRUE(sess::flask_msgpack_write(obj, out));
  FlaskValue back;
  ASSERT_EQ(sess::flask_msgpack_read(out, back), sess::MsgpackResult::Ok);
  ASSERT_EQ(back.items.size(), obj.items.size());
  for (size_t i = 0; i < obj.items.size(); i++) EXPECT_EQ(back.items[i].text, obj.items[i].text);
  obj.items[0].text = "18446744073709551616";
  EXPECT_FALSE(sess::flask_msgpack_write(obj, out));
  // float32 reads as the double it is.
  ASSERT_EQ(sess::flask_msgpack_read(std::string("\x81\xa1" "f\xca\x3f\xc0\x00\x00", 8), back),
            sess::MsgpackResult::Ok);
  EXPECT_EQ(back.items[0].text, "1.5");
}

// The limits msgpack-c (libmsgpackc) lacks: its unpacker allocates a container's elements as
// soon as it reads the header and has no depth or count limit of its own.
TEST(FlaskMsgpack, LimitsBeforeMsgpackC) {
  using R = sess::MsgpackResult;
  FlaskValue v;
  auto rd = [&](std::string_view p, const sess::MsgpackLimits& lim = sess::MsgpackLimits()) {
    return sess::flask_msgpack_read(p, v, lim);
  };
  // Claims beyond the input (msgpack-c would allocate 4G or 64K elements): refused unread.
  EXPECT_EQ(rd(std::string("\x81\xa1" "a\xdd\xff\xff\xff\xff", 8)), R::Invalid);
  EXPECT_EQ(rd(std::string("\x81\xa1" "a\xdf\x00\x01\x00\x00\x01\x02", 10)), R::Invalid);
  EXPECT_EQ(rd(std::string("\x81\xa1" "a\xc6\xff\xff\xff\xff", 8)), R::Invalid);  // bin32
  // Depth: a value at kFlaskMaxDepth (the top-level map is depth 0) is fine, one deeper is not;
  // both stay within msgpack-c's own stack.
  auto nested = [](size_t lists) {
    std::string p = "\x81\xa1" "d";
    p.append(lists, '\x91');
    p += '\x01';
    return p;
  };
  EXPECT_EQ(rd(nested(sess::kFlaskMaxDepth - 1)), R::Ok);
  EXPECT_EQ(rd(nested(sess::kFlaskMaxDepth)), R::TooLarge);
  EXPECT_EQ(rd(nested(200)), R::TooLarge);
  EXPECT_EQ(v.type, FlaskValue::Type::None);
  // Node budget: map keys count, and a header's claim counts before its elements are read.
  sess::MsgpackLimits lim;
  lim.max_nodes = 5;  // the map, two keys, two values
  EXPECT_EQ(rd("\x82\xa1" "a\x01\xa1" "b\x02", lim), R::Ok);
  lim.max_nodes = 4;
  EXPECT_EQ(rd("\x82\xa1" "a\x01\xa1" "b\x02", lim), R::TooLarge);
  EXPECT_EQ(rd("\x82\xa1" "a\x01\xa1", lim), R::TooLarge);  // truncated: the claim is too much
  lim = sess::MsgpackLimits();
  lim.max_input = 4;
  EXPECT_EQ(rd("\x81\xa1" "a\x01", lim), R::Ok);
  EXPECT_EQ(rd("\x81\xa1" "ab\x01", lim), R::TooLarge);
  // Ext types (fixext, ext8/16/32, msgspec's timestamp), 0xc1, trailing bytes, non-str keys,
  // truncation, a top level that is no map.
  for (std::string bad : {std::string("\x81\xa1" "a\xd4\x01\x00", 5),
                          std::string("\x81\xa1" "a\xc7\x01\x05x", 6),
                          std::string("\x81\xa1" "a\xc8\x00\x01\x05x", 7),
                          std::string("\x81\xa1" "a\xc9\x00\x00\x00\x01\x05x", 9),
                          std::string("\x81\xa1" "t\xd6\xff\x00\x00\x00\x00", 8),
                          std::string("\x81\xa1" "a\xc1", 4), std::string("\x80\xc0", 2),
                          std::string("\x81\x01\x02", 3), std::string("\x81\xc4\x01" "a\x02", 5),
                          std::string("\x81\xa1" "a\xcb\x00", 5), std::string("\x81\xa1", 2),
                          std::string("\x90", 1), std::string("\x01", 1), std::string()}) {
    EXPECT_EQ(rd(bad), R::Invalid) << bad.size();
    EXPECT_EQ(v.type, FlaskValue::Type::None);
  }
  // Every width of every type msgpack-c decodes, and duplicates (the last value, first place).
  static const char dup[] =
      "\x85\xa1" "a\xd0\x85\xa1" "b\xc5\x00\x01z\xa1" "c\xd9\x01y"
      "\xa1" "a\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xa1" "d\xdc\x00\x01\xc3";
  ASSERT_EQ(rd(std::string(dup, sizeof dup - 1)), R::Ok);
  ASSERT_EQ(v.keys.size(), 4u);
  EXPECT_EQ(v.keys[0], "a");
  EXPECT_EQ(v.items[0].text, "18446744073709551615");
  EXPECT_EQ(v.items[1].type, FlaskValue::Type::Bytes);
  EXPECT_EQ(v.items[2].text, "y");
  ASSERT_EQ(v.items[3].items.size(), 1u);
  EXPECT_TRUE(v.items[3].items[0].b);
  // The writer: the smallest forms, as python-msgpack's packb.
  FlaskValue obj(FlaskValue::Type::Dict);
  obj.keys = {"s", "b"};
  obj.items.emplace_back(FlaskValue::Type::Str);
  obj.items.back().text.assign(32, 'x');
  obj.items.emplace_back(FlaskValue::Type::Bytes);
  obj.items.back().text = "z";
  pstring out;
  ASSERT_TRUE(sess::flask_msgpack_write(obj, out));
  EXPECT_EQ(std::string(out.data(), out.size()), std::string("\x82\xa1s\xd9\x20") + std::string(32, 'x') +
                     std::string("\xa1" "b\xc4\x01z", 5));
}

TEST(FlaskValue, TagUntagKeepsTaggedPayloadsTagged) {
  // Found by fuzz_flask_json: a " u" whose payload holds tuples (Flask would fail on it, but
  // nginx must still carry it through untouched).
  FlaskValue json, obj, back;
  ASSERT_TRUE(sess::flask_json_parse(R"({" u":[0,{" t":[2]}]})", json));
  ASSERT_TRUE(sess::flask_untag(json, obj));
  ASSERT_TRUE(sess::flask_tag(obj, back));
  pstring a, b;
  ASSERT_TRUE(sess::flask_json_write(json, true, a));
  ASSERT_TRUE(sess::flask_json_write(back, true, b));
  EXPECT_EQ(a, b);
}
