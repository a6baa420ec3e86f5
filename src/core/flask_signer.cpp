// itsdangerous' URLSafeTimedSerializer and Signer as Flask and Flask-Session use them
// (OpenSSL HMAC-SHA1, zlib).
#include "flask_signer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <new>

#include "base64url.h"

namespace sess {

namespace {

constexpr size_t kSigB64Len = 27;  // base64url of 20 bytes, unpadded

bool hmac_sha1(const unsigned char* key, size_t key_len, std::string_view data,
               unsigned char* out) noexcept {
  if (key_len > INT_MAX) return false;
  unsigned int len = 0;
  // A zero-length key still needs a valid pointer.
  static const unsigned char kEmpty = 0;
  const unsigned char* k = key_len == 0 ? &kEmpty : key;
  return HMAC(EVP_sha1(), k, static_cast<int>(key_len),
              reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
              &len) != nullptr &&
         len == FlaskKeys::kKeyLen;
}

// The signature (base64url text) of value under any key: true if one matches.
bool verify(const FlaskKeys& keys, std::string_view value, std::string_view sig_b64) noexcept {
  if (sig_b64.size() != kSigB64Len) return false;
  char want[kSigB64Len];
  bool ok = false;
  for (size_t k = 0; k < keys.size(); k++) {
    unsigned char mac[FlaskKeys::kKeyLen];
    if (!keys.sign(k, value, mac)) return false;
    base64url_encode_to(mac, sizeof(mac), want);
    // Comparing the canonical encodings is comparing the bytes: base64url_decode refuses
    // non-canonical text, and a 27-character text has one canonical form per 20 bytes.
    ok = ct_equal(std::string_view(want, sizeof(want)), sig_b64) || ok;
  }
  return ok;
}

bool is_b64url(std::string_view s) noexcept {
  for (unsigned char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool FlaskKeys::add_secret(std::string_view secret) noexcept {
  try {
    std::array<unsigned char, kKeyLen> key{};
    if (!hmac_sha1(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), salt_,
                   key.data())) {
      return false;
    }
    keys_.push_back(key);
    OPENSSL_cleanse(key.data(), key.size());
    return true;
  } catch (...) {
    return false;
  }
}

bool FlaskKeys::sign(size_t k, std::string_view data, unsigned char* out) const noexcept {
  if (k >= keys_.size()) return false;
  return hmac_sha1(keys_[k].data(), kKeyLen, data, out);
}

bool flask_zlib_compress(std::string_view in, pstring& out) noexcept {
  const size_t base = out.size();
  try {
    const uLong bound = compressBound(static_cast<uLong>(in.size()));
    if (in.size() > UINT_MAX) return false;
    out.resize(base + bound);
    uLongf len = bound;
    if (compress2(reinterpret_cast<Bytef*>(out.data() + base), &len,
                  reinterpret_cast<const Bytef*>(in.data()), static_cast<uLong>(in.size()),
                  6) != Z_OK) {
      out.resize(base);
      return false;
    }
    out.resize(base + len);
    return true;
  } catch (...) {
    if (out.size() > base) out.resize(base);
    return false;
  }
}

bool flask_zlib_decompress(std::string_view in, size_t max_out, pstring& out) noexcept {
  const size_t base = out.size();
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (in.size() > UINT_MAX || inflateInit(&zs) != Z_OK) return false;
  bool ok = false;
  try {
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    size_t chunk = 4096;
    const size_t limit = max_out < SIZE_MAX ? max_out + 1 : max_out;  // one byte past the bound
    for (;;) {
      const size_t have = out.size() - base;
      if (have > max_out) break;  // the bound: refused
      size_t room = limit - have;
      if (room > chunk) room = chunk;
      if (room > UINT_MAX) room = UINT_MAX;
      const size_t pos = out.size();
      out.resize(pos + room);
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + pos);
      zs.avail_out = static_cast<uInt>(room);
      const int rc = inflate(&zs, Z_NO_FLUSH);
      out.resize(pos + (room - zs.avail_out));
      if (rc == Z_STREAM_END) {
        ok = out.size() - base <= max_out && zs.avail_in == 0;  // no trailing bytes
        break;
      }
      if (rc != Z_OK) break;                             // corrupt, or truncated (Z_BUF_ERROR)
      if (zs.avail_in == 0 && zs.avail_out != 0) break;  // the input ended inside the stream
      if (chunk < 65536) chunk *= 2;
    }
  } catch (...) {
    ok = false;
  }
  inflateEnd(&zs);
  if (!ok) out.resize(base);
  return ok;
}

FlaskTokenResult flask_cookie_open(const FlaskKeys& keys, std::string_view token, uint64_t now,
                                   uint64_t max_age, pstring* json, uint64_t* signed_at,
                                   const FlaskCookieLimits& limits, bool* authentic) noexcept {
  json->clear();
  if (authentic != nullptr) *authentic = false;
  if (token.empty() || token.size() > limits.max_token) return FlaskTokenResult::Malformed;
  const size_t sig_dot = token.rfind('.');
  if (sig_dot == std::string_view::npos || sig_dot == 0) return FlaskTokenResult::Malformed;
  const std::string_view signed_value = token.substr(0, sig_dot);
  const std::string_view sig = token.substr(sig_dot + 1);
  const size_t ts_dot = signed_value.rfind('.');
  if (ts_dot == std::string_view::npos) return FlaskTokenResult::Malformed;
  std::string_view payload = signed_value.substr(0, ts_dot);
  const std::string_view ts = signed_value.substr(ts_dot + 1);
  const bool compressed = !payload.empty() && payload[0] == '.';
  if (compressed) payload.remove_prefix(1);
  if (!is_b64url(payload) || !is_b64url(ts) || !is_b64url(sig) || payload.size() % 4 == 1 ||
      ts.size() % 4 == 1) {
    return FlaskTokenResult::Malformed;
  }

  if (!verify(keys, signed_value, sig)) return FlaskTokenResult::BadSignature;
  if (authentic != nullptr) *authentic = true;

  try {
    // Timestamp: 0-8 big-endian bytes (itsdangerous: rjust(8, b"\0") then ">Q").
    pstring raw(json->get_allocator());
    if (!base64url_decode(ts, raw) || raw.size() > 8) return FlaskTokenResult::Malformed;
    uint64_t t = 0;
    for (unsigned char c : raw) t = t << 8 | c;
    if (signed_at != nullptr) *signed_at = t;
    if (t > now || now - t > max_age) return FlaskTokenResult::Expired;

    raw.clear();
    if (!base64url_decode(payload, raw)) return FlaskTokenResult::Malformed;
    if (compressed) {
      if (!flask_zlib_decompress(raw, limits.max_json, *json)) {
        json->clear();
        return FlaskTokenResult::Malformed;
      }
    } else {
      if (raw.size() > limits.max_json) return FlaskTokenResult::Malformed;
      json->swap(raw);
    }
    return FlaskTokenResult::Ok;
  } catch (...) {
    json->clear();
    return FlaskTokenResult::Error;
  }
}

bool flask_cookie_seal(const FlaskKeys& keys, std::string_view json, uint64_t now,
                       pstring& out) noexcept {
  if (keys.size() == 0) return false;
  const size_t base = out.size();
  try {
    pstring z(out.get_allocator());
    if (!flask_zlib_compress(json, z)) return false;
    const bool compressed = z.size() + 1 < json.size();  // itsdangerous: < len(json) - 1
    const std::string_view body = compressed ? std::string_view(z) : json;
    unsigned char ts[8];
    put_be64(ts, now);
    size_t skip = 0;
    while (skip < 8 && ts[skip] == 0) skip++;

    out.reserve(base + 1 + base64url_encoded_len(body.size()) + 1 + 11 + 1 + kSigB64Len);
    if (compressed) out.push_back('.');
    base64url_encode(body, out);
    out.push_back('.');
    base64url_encode(std::string_view(reinterpret_cast<const char*>(ts + skip), 8 - skip), out);
    unsigned char mac[FlaskKeys::kKeyLen];
    if (!keys.sign(0, std::string_view(out).substr(base), mac)) {
      out.resize(base);
      return false;
    }
    out.push_back('.');
    base64url_encode(std::string_view(reinterpret_cast<const char*>(mac), sizeof(mac)), out);
    return true;
  } catch (...) {
    if (out.size() > base) out.resize(base);
    return false;
  }
}

bool flask_sid_sign(const FlaskKeys& keys, std::string_view sid, pstring& out) noexcept {
  if (keys.size() == 0) return false;
  const size_t base = out.size();
  try {
    unsigned char mac[FlaskKeys::kKeyLen];
    if (!keys.sign(0, sid, mac)) return false;
    out.reserve(base + sid.size() + 1 + kSigB64Len);
    out.append(sid);
    out.push_back('.');
    base64url_encode(std::string_view(reinterpret_cast<const char*>(mac), sizeof(mac)), out);
    return true;
  } catch (...) {
    if (out.size() > base) out.resize(base);
    return false;
  }
}

FlaskTokenResult flask_sid_unsign(const FlaskKeys& keys, std::string_view token, pstring* sid,
                                  size_t max_len) noexcept {
  sid->clear();
  if (token.size() > max_len) return FlaskTokenResult::Malformed;
  const size_t dot = token.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return FlaskTokenResult::Malformed;
  const std::string_view value = token.substr(0, dot);
  const std::string_view sig = token.substr(dot + 1);
  if (!is_b64url(sig) || sig.size() % 4 == 1) return FlaskTokenResult::Malformed;
  if (!verify(keys, value, sig)) return FlaskTokenResult::BadSignature;
  try {
    sid->assign(value.data(), value.size());
  } catch (...) {
    sid->clear();
    return FlaskTokenResult::Error;
  }
  return FlaskTokenResult::Ok;
}

}  // namespace sess
