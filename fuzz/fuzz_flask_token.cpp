// libFuzzer target: Flask's signed cookie and Flask-Session's signed id (src/core/flask_signer.h).
//
// Input: any bytes, opened as a Flask cookie value (keys: the vectors' secret
// "flask-secret-key-number-one" and a second one, so seeds from t/unit/flask_vectors.h verify),
// as a signed session id, and inflated as zlib.
// Properties:
//   open not Ok           => *json is empty.
//   open Ok               => the JSON is at most max_json bytes; sealing it again at the same
//                            timestamp gives a token that opens to the same JSON; the token's
//                            payload part is exactly what seal writes when the input came from
//                            seal (same compression decision).
//   Expired/Ok            => only after the signature verified: with an unrelated key the same
//                            token is BadSignature or Malformed, never Ok or Expired.
//   sid_unsign Ok         => sid_sign of the id gives the input back.
//   seal(input as JSON)   => opens to the input (any bytes), at any lifetime >= 0.
//   zlib_decompress       => never more than the bound; false leaves out as it was.
#include <cstring>
#include <string>

#include "flask_signer.h"

#include "fuzz_check.h"

namespace {

constexpr uint64_t kNow = 1700000005;

const sess::FlaskKeys& keys() {
  static sess::FlaskKeys* k = [] {
    auto* r = new sess::FlaskKeys(sess::kFlaskCookieSalt);
    r->add_secret("flask-secret-key-number-one");
    r->add_secret("fuzz-second-key");
    return r;
  }();
  return *k;
}

const sess::FlaskKeys& other_keys() {
  static sess::FlaskKeys* k = [] {
    auto* r = new sess::FlaskKeys(sess::kFlaskCookieSalt);
    r->add_secret("unrelated");
    return r;
  }();
  return *k;
}

const sess::FlaskKeys& sid_keys() {
  static sess::FlaskKeys* k = [] {
    auto* r = new sess::FlaskKeys(sess::kFlaskSessionSignerSalt);
    r->add_secret("flask-secret-key-number-one");
    return r;
  }();
  return *k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  sess::FlaskCookieLimits lim;
  lim.max_json = 4096;

  sess::pstring json = "stale";
  uint64_t ts = 0;
  const auto r = sess::flask_cookie_open(keys(), in, kNow, 1u << 30, &json, &ts, lim);
  if (r != sess::FlaskTokenResult::Ok) FUZZ_CHECK(json.empty());
  if (r == sess::FlaskTokenResult::Ok) {
    FUZZ_CHECK(json.size() <= lim.max_json);
    sess::pstring tok;
    FUZZ_CHECK(sess::flask_cookie_seal(keys(), json, ts, tok));
    sess::pstring back;
    uint64_t ts2 = 0;
    FUZZ_CHECK(sess::flask_cookie_open(keys(), tok, kNow, 1u << 30, &back, &ts2, lim) ==
               sess::FlaskTokenResult::Ok);
    FUZZ_CHECK(back == json && ts2 == ts);
  }
  if (r == sess::FlaskTokenResult::Ok || r == sess::FlaskTokenResult::Expired) {
    sess::pstring j2;
    const auto o = sess::flask_cookie_open(other_keys(), in, kNow, 1u << 30, &j2, &ts, lim);
    FUZZ_CHECK(o == sess::FlaskTokenResult::BadSignature);
  }

  sess::pstring sid = "stale";
  if (sess::flask_sid_unsign(sid_keys(), in, &sid) == sess::FlaskTokenResult::Ok) {
    sess::pstring again;
    FUZZ_CHECK(sess::flask_sid_sign(sid_keys(), sid, again));
    FUZZ_CHECK(std::string_view(again) == in);
  } else {
    FUZZ_CHECK(sid.empty());
  }

  // Any bytes as the JSON text: seal/open is the identity.
  if (size <= lim.max_json) {
    sess::pstring tok;
    FUZZ_CHECK(sess::flask_cookie_seal(keys(), in, kNow, tok));
    sess::pstring back;
    FUZZ_CHECK(sess::flask_cookie_open(keys(), tok, kNow, 0, &back, &ts, lim) ==
               sess::FlaskTokenResult::Ok);
    FUZZ_CHECK(std::string_view(back) == in);
  }

  sess::pstring z = "x";
  const bool ok = sess::flask_zlib_decompress(in, 1000, z);
  FUZZ_CHECK(ok ? z.size() <= 1001 : z == "x");
  return 0;
}
