// Writes the seed corpora in fuzz/corpus/<target>/ (not a fuzz target: no LLVMFuzzerTestOneInput).
// Built and run by `scripts/fuzz.sh --gen-seeds`; the output is committed, so this only needs
// re-running when an input format of a target changes. Valid cookies are sealed with the same
// constant secrets as fuzz_envelope.cpp (keep them identical).
//
//   gen_seeds OUTDIR      (OUTDIR = fuzz/corpus)
#include <sys/stat.h>

#include <openssl/evp.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "base64url.h"
#include "crypto.h"
#include "envelope.h"
#include "flask_signer.h"

// Python-made Flask cookies, pickles and msgpack records: seeds for the fuzz_flask_* targets.
#include "../t/unit/flask_vectors.h"

namespace {

constexpr std::string_view kSecret1 = "fuzz-secret-1-0123456789abcdefghijklmnopqrstuvwx";
constexpr std::string_view kSecret2 = "fuzz-secret-2-ABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&*+/";

std::string g_out;

void put(const std::string& target, const std::string& name, std::string_view content) {
  const std::string dir = g_out + "/" + target;
  mkdir(dir.c_str(), 0755);
  const std::string path = dir + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(content.data(), 1, content.size(), f) != content.size() ||
      std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
}

std::string seal(const sess::KeyRing& ring, sess::Kind kind, std::string_view name,
                 std::string_view payload, uint64_t created = 1700000000,
                 uint64_t refreshed = 1700000600) {
  sess::pstring out;
  if (!sess::envelope_seal(ring, kind, name, sess::Times{created, refreshed}, payload, out)) {
    std::fprintf(stderr, "gen_seeds: envelope_seal failed\n");
    std::exit(1);
  }
  return std::string(out);
}

std::string raw_of(std::string_view value) {
  sess::pstring raw;
  sess::base64url_decode(value, raw);
  return std::string(raw);
}

std::string b64std(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string sha1(std::string_view in) {
  unsigned char d[20];
  unsigned int len = 0;
  EVP_Digest(in.data(), in.size(), d, &len, EVP_sha1(), nullptr);
  return std::string(reinterpret_cast<const char*>(d), 20);
}

std::string byte(unsigned v) { return std::string(1, static_cast<char>(v)); }

std::string unhex(std::string_view s) {
  std::string o;
  for (size_t i = 0; i + 1 < s.size(); i += 2) {
    o.push_back(static_cast<char>(sess::hex_value(s[i]) << 4 | sess::hex_value(s[i + 1])));
  }
  return o;
}

// The fuzz_flask_* corpora: each vector's input (its last hex argument) goes to the target that
// parses it.
void flask_seeds() {
  size_t n = 0;
  for (const auto& v : kFlaskVectors) {
    const std::string_view line(v.op);
    const std::string_view op = line.substr(0, line.find(' '));
    const std::string_view last = line.substr(line.rfind(' ') + 1);
    std::string target;
    if (op == "cookie_open") target = "flask_token";
    if (op == "sid_unsign") target = "flask_token";
    if (op == "cookie_roundtrip" || op == "json_pickle" || op == "json_msgpack") target = "flask_json";
    if (op == "pickle_roundtrip") target = "flask_pickle";
    if (op == "msgpack_roundtrip") target = "flask_msgpack";
    if (target.empty()) continue;
    put(target, "vector-" + std::to_string(n++), unhex(last));
  }
  sess::FlaskKeys keys(sess::kFlaskCookieSalt);
  keys.add_secret("flask-secret-key-number-one");
  sess::pstring tok;
  sess::flask_cookie_seal(keys, std::string(300, 'a'), 1700000000, tok);
  put("flask_token", "sealed-compressed", tok);
  sess::pstring z;
  sess::flask_zlib_compress(std::string(100000, '0'), z);
  put("flask_token", "zlib-bomb", z);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gen_seeds OUTDIR\n");
    return 2;
  }
  g_out = argv[1];
  mkdir(g_out.c_str(), 0755);

  sess::KeyRing ring;
  sess::KeyRing other;
  if (!ring.add_secret(kSecret1) || !other.add_secret(kSecret2)) return 1;

  const std::string json_login = R"({"user":"alice","csrf":"q1w2e3"})";
  const std::string json_rich =
      R"({"user":"bob","n":42,"f":-1.5e3,"ok":true,"nil":null,"list":[1,"two",{"three":3}],)"
      R"("obj":{"a":{"b":[]}},"esc":"\"\\\/\b\f\n\r\t\u0000\u00e9\ud83d\ude00"})";

  // --- envelope: FLAGS | value. kind = FLAGS & 3, name = (FLAGS >> 2) & 3, raw = 16, rotated = 32
  const std::string_view names[4] = {"session", "s", "__Host-session", ""};
  const sess::Kind kinds[3] = {sess::Kind::Signed, sess::Kind::Sealed, sess::Kind::Id};
  const char* kind_names[3] = {"signed", "sealed", "id"};
  for (unsigned k = 0; k < 3; k++) {
    for (unsigned n = 0; n < 4; n += 2) {
      const std::string payload = k == 2 ? std::string(16, '\x5a') : json_login;
      const std::string v = seal(ring, kinds[k], names[n], payload);
      const std::string tag = std::string(kind_names[k]) + (n == 0 ? "-session" : "-host");
      put("envelope", tag, byte(k | n << 2) + v);
      put("envelope", tag + "-rotated", byte(k | n << 2 | 32) + v);
      put("envelope", tag + "-raw", byte(k | n << 2 | 16) + raw_of(v));
      put("envelope", tag + "-wrongkey", byte(k | n << 2) + seal(other, kinds[k], names[n], payload));
    }
  }
  put("envelope", "sealed-rich", byte(1) + seal(ring, sess::Kind::Sealed, "session", json_rich));
  put("envelope", "signed-empty", byte(0) + seal(ring, sess::Kind::Signed, "session", ""));
  put("envelope", "signed-expired", byte(0) + seal(ring, sess::Kind::Signed, "session", json_login, 1000, 2000));
  put("envelope", "signed-future", byte(0) + seal(ring, sess::Kind::Signed, "session", json_login, 4000000000, 4000000000));
  put("envelope", "signed-big", byte(0) + seal(ring, sess::Kind::Signed, "session", std::string(3000, 'x')));
  put("envelope", "invalid-kind", byte(3) + seal(ring, sess::Kind::Signed, "session", json_login));
  put("envelope", "garbage", byte(0) + "AQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");

  // --- base64url
  put("base64url", "empty", "");
  put("base64url", "one", "QQ");
  put("base64url", "two", "QUI");
  put("base64url", "three", "QUJD");
  put("base64url", "alphabet", "-_0123456789abcdefABCDEF");
  put("base64url", "noncanonical", "QR");
  put("base64url", "padding", "QQ==");
  put("base64url", "envelope", seal(ring, sess::Kind::Signed, "session", json_login));

  // --- cookie: NAME \n HEADER
  const std::string sv = seal(ring, sess::Kind::Sealed, "session", json_login);
  put("cookie", "simple", "session\nsession=" + sv);
  put("cookie", "among-others", "session\ntheme=dark; session=" + sv + "; lang=en");
  put("cookie", "quoted", "session\n a=1;session=\"abc\" ; b");
  put("cookie", "duplicate-same", "session\nsession=abc; session=abc");
  put("cookie", "duplicate-conflict", "session\nsession=abc;session=abd");
  put("cookie", "odd-spacing", "__Host-session\n\t;;=x; noequals ;__Host-session =\tv1 ;");
  put("cookie", "no-name-line", "session=abc; other=\"q\"");
  put("cookie", "binary-value", std::string("name\nname=\x01\x7f\xff%;\"\\ ,x", 20));

  // --- session_data: JSON
  put("session_data", "login", json_login);
  put("session_data", "rich", json_rich);
  put("session_data", "empty-object", "{}");
  put("session_data", "duplicates", R"({"a":1,"b":2,"a":"three"})");
  put("session_data", "whitespace", " \t\n{ \"k\" : [ 1 , 2 ] , \"e\" : { } }\r\n");
  std::string deep = "{\"d\":";
  for (int i = 0; i < 14; i++) deep += "[";
  deep += "0";
  for (int i = 0; i < 14; i++) deep += "]";
  deep += "}";
  put("session_data", "deep", deep);
  put("session_data", "lone-surrogate", R"({"x":"\udc00"})");
  put("session_data", "trailing", R"({"a":1} x)");
  put("session_data", "not-object", R"(["a",1])");
  put("session_data", "key-and-value", std::string("user\0al\xc3\xa9" "ce", 11));

  // --- form: MAX | BODY
  put("form", "login", byte(64) + "username=alice&password=s%C3%A9cret+1&next=%2Fapp%2F%3Fx%3D1&csrf_token=q1w2e3");
  put("form", "empty-pairs", byte(64) + "&&a&=&b=&&=c&");
  put("form", "bad-escape", byte(64) + "a=%zz&b=1");
  put("form", "short-escape", byte(64) + "a=%4");
  put("form", "too-many", byte(3) + "a=1&b=2&c=3&d=4");
  put("form", "binary", byte(64) + std::string("k%00=v%FF&x=\x01\x02", 16));

  // --- redirect: next
  int i = 0;
  for (const char* s : {"/", "/app/", "/app/?x=1&y=%20", "//evil.example", "/\\evil.example",
                        "/%2F%2Fevil", "/%5Cevil", "/%0d%0aSet-Cookie:x=1", "https://evil.example/",
                        "/a%zz", "/caf%C3%A9", "/%2e%2e/admin", "javascript:alert(1)", "/a b"}) {
    std::string name = std::to_string(i++);
    for (const char* p = s; *p; p++) name += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
    put("redirect", "next" + name, s);
  }

  // --- htpasswd: MODE | DATA
  const std::string apr1 = "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/";  // "secret"
  const std::string sha = "{SHA}" + b64std(sha1("secret"));
  const std::string ssha = "{SSHA}" + b64std(sha1("secretNaCl1234") + "NaCl1234");
  const std::string bcrypt = "$2y$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui";
  const std::string file = "# users\nalice:" + apr1 + "\r\nbob:" + sha + ":extra\ncarol:" + ssha +
                           "\n\n:nouser\ndave:" + bcrypt + "\nalice:duplicate\n";
  put("htpasswd", "line-apr1", byte(0) + "alice:" + apr1 + "\n");
  put("htpasswd", "line-sha-crlf", byte(0) + "bob:" + sha + "\r\n");
  put("htpasswd", "line-comment", byte(0) + "#alice:" + apr1);
  put("htpasswd", "line-extra-field", byte(0) + "carol:" + ssha + ":Carol Example");
  put("htpasswd", "find-alice", byte(1) + "alice" + std::string(1, '\0') + file);
  put("htpasswd", "find-carol", byte(1) + "carol" + std::string(1, '\0') + file);
  put("htpasswd", "find-missing", byte(1) + "mallory" + std::string(1, '\0') + file);
  // mode 2: PASSWORD \0 HASH-REST, prefix (mode >> 2) % 3: 0 {SHA}, 1 {SSHA}, 2 $apr1$
  put("htpasswd", "verify-sha", byte(2 | 0 << 2) + "secret" + std::string(1, '\0') + sha.substr(5));
  put("htpasswd", "verify-ssha", byte(2 | 1 << 2) + "secret" + std::string(1, '\0') + ssha.substr(6));
  put("htpasswd", "verify-apr1", byte(2 | 2 << 2) + "secret" + std::string(1, '\0') + apr1.substr(6));
  put("htpasswd", "verify-apr1-wrong", byte(2 | 2 << 2) + "Secret" + std::string(1, '\0') + apr1.substr(6));
  // mode 3: like-hash for htpasswd_dummy_hash
  put("htpasswd", "dummy-apr1", byte(3 | 2 << 2) + apr1.substr(6));
  put("htpasswd", "dummy-ssha", byte(3 | 1 << 2) + ssha.substr(6));
  put("htpasswd", "dummy-unknown", byte(3 | 3 << 2) + "plaintext");

  // --- cache: MODE | REST. MODE 0: a RESP2 stream read on the invalidation subscriber (as Redis
  // 7.0 writes it, src/redis/redis.h); MODE 1 (3: pushes as RESP): the model's choices, one byte
  // each (an event is its byte % 14, see t/unit/cache_model.h).
  const std::string chan = "$20\r\n__redis__:invalidate\r\n";
  const std::string subscribed = "*3\r\n$9\r\nsubscribe\r\n" + chan + ":1\r\n";
  const std::string msg = "*3\r\n$7\r\nmessage\r\n" + chan;
  const std::string key1 = msg + "*1\r\n$1\r\nk\r\n";
  const std::string keys3 =
      msg + "*3\r\n$4\r\ns:ab\r\n$0\r\n\r\n$4\r\n" + std::string("a\0\r\n", 4) + "\r\n";
  const std::string flushall = msg + "$-1\r\n";
  const std::string pong = "*2\r\n$4\r\npong\r\n$0\r\n\r\n";
  put("cache", "subscribed", byte(0) + subscribed);
  put("cache", "key", byte(0) + key1);
  put("cache", "keys", byte(0) + keys3);
  put("cache", "flushall-nil-bulk", byte(0) + flushall);
  put("cache", "flushall-nil-array", byte(0) + msg + "*-1\r\n");
  put("cache", "pong", byte(0) + pong);
  put("cache", "pong-payload", byte(0) + "*2\r\n$4\r\npong\r\n$1\r\nx\r\n");
  put("cache", "other-channel", byte(0) + "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n*1\r\n$1\r\nk\r\n");
  put("cache", "subscribed-elsewhere", byte(0) + "*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:2\r\n");
  put("cache", "pmessage", byte(0) + "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n" + chan + "*1\r\n$1\r\nk\r\n");
  put("cache", "short-message", byte(0) + "*2\r\n$7\r\nmessage\r\n" + chan);
  put("cache", "malformed-empty-keys", byte(0) + msg + "*0\r\n");
  put("cache", "malformed-int-key", byte(0) + msg + "*2\r\n$1\r\na\r\n:1\r\n");
  put("cache", "malformed-nested", byte(0) + msg + "*1\r\n*1\r\n$1\r\na\r\n");
  put("cache", "malformed-bulk-keys", byte(0) + msg + "$1\r\nk\r\n");
  put("cache", "not-arrays", byte(0) + "+OK\r\n-ERR x\r\n:1\r\n$1\r\nk\r\n$-1\r\n*-1\r\n*0\r\n");
  put("cache", "session", byte(0) + subscribed + key1 + pong + keys3 + flushall + pong + key1);
  // Scripted: subscriber up (10), data up (11), tracking (11, 1), fill k0 (6, 0, pttl 50),
  // reply (7), hit (13, 0), another client writes k0 (0, 0), stale hit in the window (13, 0),
  // delivery (4), miss (13, 0), refill and hit, quiet subscriber death (9, 0), write (1, 0),
  // stale hit undetected (13, 0), PING detects (10), reconnect (10), tracking again (11, 1),
  // time (12, 9), FLUSHALL (3, 0) ...
  const std::string script = std::string(
      "\x0a\x0b\x0b\x01\x06\x00\x32\x07\x0d\x00\x00\x00\x0d\x00\x04\x0d\x00"
      "\x06\x00\x32\x08\x0d\x00\x09\x00\x01\x00\x0d\x00\x0a\x0a\x0b\x01\x0c\x09"
      "\x06\x01\x05\x07\x0d\x01\x03\x00\x05\x0d\x01\x02\x01\x0b\x00\x0b\x0b\x01", 53);
  put("cache", "model-script", byte(1) + script);
  put("cache", "model-script-resp", byte(3) + script);
  uint64_t x = 0x2545f4914f6cdd1dULL;
  for (int i = 0; i < 4; i++) {
    std::string choices;
    for (int j = 0; j < 3000; j++) {
      x ^= x >> 12;
      x ^= x << 25;
      x ^= x >> 27;
      choices += static_cast<char>((x * 2685821657736338717ULL) >> 56);
    }
    put("cache", "model-random-" + std::to_string(i), byte(i % 2 == 0 ? 1 : 3) + choices);
  }

  flask_seeds();
  return 0;
}
