#include "envelope.h"

#include <cstring>

#include "base64url.h"

namespace sess {

namespace {

constexpr uint8_t kVersion = 1;

// Offsets inside the header.
constexpr size_t kOffVersion = 0;
constexpr size_t kOffKind = 1;
constexpr size_t kOffHint = 2;
constexpr size_t kOffCreated = 3;
constexpr size_t kOffRefreshed = 11;

// Bytes an envelope of this kind adds around the payload; 0 for an unknown kind.
size_t overhead(Kind kind) noexcept {
  switch (kind) {
    case Kind::Signed:
    case Kind::Id:
      return kEnvelopeHeaderLen + KeyRing::kMacLen;
    case Kind::Sealed:
      return kEnvelopeHeaderLen + KeyRing::kNonceLen + KeyRing::kTagLen;
  }
  return 0;
}

inline unsigned char* uc(char* p) noexcept { return reinterpret_cast<unsigned char*>(p); }

}  // namespace

size_t envelope_sealed_len(Kind kind, size_t n) noexcept {
  return base64url_encoded_len(overhead(kind) + n);
}

// The envelope is built inside out's own buffer, so the only allocation is out growing:
//
//   out: [existing][name | 0x00 | raw envelope][base64url of raw envelope]
//                  ^ base                       ^ base + pre + raw_len
//
// name | 0x00 | header is exactly the MAC prefix / GCM AAD, so no parts need concatenating.
// Finally the encoding is moved down to base and out is cut to base + its length.
// payload must not point into out.
bool envelope_seal(const KeyRing& ring, Kind kind, std::string_view cookie_name, const Times& t,
                   std::string_view payload, pstring& out) {
  const size_t over = overhead(kind);
  if (over == 0 || ring.size() == 0) return false;

  const size_t base = out.size();
  const size_t pre = cookie_name.size() + 1;
  const size_t raw_len = over + payload.size();
  const size_t enc_len = base64url_encoded_len(raw_len);
  out.resize(base + pre + raw_len + enc_len);

  char* p = out.data() + base;
  std::memcpy(p, cookie_name.data(), cookie_name.size());
  p[cookie_name.size()] = '\0';
  unsigned char* raw = uc(p + pre);

  raw[kOffVersion] = kVersion;
  raw[kOffKind] = static_cast<unsigned char>(kind);
  raw[kOffHint] = ring.hint(0);
  put_be64(raw + kOffCreated, t.created);
  put_be64(raw + kOffRefreshed, t.refreshed);
  unsigned char* body = raw + kEnvelopeHeaderLen;

  bool ok;
  if (kind == Kind::Sealed) {
    unsigned char* nonce = body;
    unsigned char* ct = nonce + KeyRing::kNonceLen;
    ok = random_bytes(nonce, KeyRing::kNonceLen) &&
         ring.seal(0, nonce, std::string_view(p, pre + kEnvelopeHeaderLen), payload, ct,
                   ct + payload.size());
  } else {
    if (!payload.empty()) std::memcpy(body, payload.data(), payload.size());
    std::string_view signed_part(p, pre + kEnvelopeHeaderLen + payload.size());
    ok = ring.mac(0, KeyUse::Cookie, &signed_part, 1, body + payload.size());
  }
  if (!ok) {
    out.resize(base);
    return false;
  }

  char* enc = p + pre + raw_len;
  base64url_encode_to(raw, raw_len, enc);
  std::memmove(p, enc, enc_len);
  out.resize(base + enc_len);
  return true;
}

// Mirror image of envelope_seal, built inside *payload:
//
//   payload: [name | 0x00 | raw envelope][plaintext (Sealed only)]
//
// On Ok the payload bytes are moved to the front and the rest cut off; on failure *payload is
// left empty (no unauthenticated bytes are handed back).
OpenResult envelope_open(const KeyRing& ring, Kind kind, std::string_view cookie_name,
                         std::string_view value, Times* t, pstring* payload, size_t max_len) {
  payload->clear();

  // Cheap structural checks first: bounded work, no crypto.
  const size_t over = overhead(kind);
  if (over == 0 || value.empty() || value.size() > max_len ||
      value.size() < base64url_encoded_len(over)) {
    return OpenResult::Malformed;
  }

  const size_t pre = cookie_name.size() + 1;
  const size_t raw_max = value.size() / 4 * 3 + 2;  // bound on the decoded length
  payload->reserve(pre + raw_max + (kind == Kind::Sealed ? raw_max : 0));
  payload->append(cookie_name);
  payload->push_back('\0');
  if (!base64url_decode(value, *payload)) {
    payload->clear();
    return OpenResult::Malformed;
  }

  const size_t raw_len = payload->size() - pre;
  const unsigned char* raw = uc(payload->data() + pre);
  if (raw_len < over || raw[kOffVersion] != kVersion ||
      raw[kOffKind] != static_cast<unsigned char>(kind)) {
    payload->clear();
    return OpenResult::Malformed;
  }
  const uint8_t hint = raw[kOffHint];
  const size_t body_len = raw_len - over;

  size_t body_off = 0;  // where the verified payload bytes are inside *payload
  bool ok = false;
  if (kind == Kind::Sealed) {
    // Decrypt out of place, after the raw envelope: a key whose hint collides but which does not
    // verify must not destroy the ciphertext for the next candidate.
    body_off = pre + raw_len;
    payload->resize(body_off + body_len);  // within the reserved capacity
    char* p = payload->data();
    raw = uc(p + pre);
    const unsigned char* nonce = raw + kEnvelopeHeaderLen;
    const unsigned char* ct = nonce + KeyRing::kNonceLen;
    std::string_view aad(p, pre + kEnvelopeHeaderLen);
    std::string_view ct_view(reinterpret_cast<const char*>(ct), body_len);
    for (size_t k = 0; k < ring.size() && !ok; k++) {
      if (ring.hint(k) != hint) continue;
      ok = ring.open(k, nonce, aad, ct_view, ct + body_len, uc(p + body_off));
    }
  } else {
    body_off = pre + kEnvelopeHeaderLen;
    std::string_view signed_part(payload->data(), body_off + body_len);
    std::string_view tag(payload->data() + body_off + body_len, KeyRing::kMacLen);
    unsigned char mac[KeyRing::kMacLen];
    for (size_t k = 0; k < ring.size() && !ok; k++) {
      if (ring.hint(k) != hint) continue;
      ok = ring.mac(k, KeyUse::Cookie, &signed_part, 1, mac) &&
           ct_equal(std::string_view(reinterpret_cast<const char*>(mac), sizeof(mac)), tag);
    }
  }
  if (!ok) {
    payload->clear();
    return OpenResult::BadMac;
  }

  t->created = get_be64(raw + kOffCreated);
  t->refreshed = get_be64(raw + kOffRefreshed);
  char* p = payload->data();
  std::memmove(p, p + body_off, body_len);
  payload->resize(body_len);
  return OpenResult::Ok;
}

bool envelope_key_hint(std::string_view value, uint8_t* hint) noexcept {
  if (value.size() < 4) return false;
  char buf[8];
  std::pmr::monotonic_buffer_resource mr(buf, sizeof(buf), std::pmr::null_memory_resource());
  pstring raw(&mr);
  try {
    if (!base64url_decode(value.substr(0, 4), raw) || raw.size() != 3) return false;
  } catch (...) {
    return false;
  }
  *hint = static_cast<uint8_t>(raw[kOffHint]);
  return true;
}

bool envelope_peek_id(std::string_view value, IdEnvelope* out) noexcept {
  constexpr size_t kRawLen = kEnvelopeHeaderLen + kSessionIdLen + KeyRing::kMacLen;
  if (value.size() != base64url_encoded_len(kRawLen)) return false;
  static_assert(kRawLen % 3 == 1, "90 characters: 22 groups and 2 more");
  unsigned char p[kRawLen];
  if (!base64url_decode_to(value, p) || p[kOffVersion] != kVersion ||
      p[kOffKind] != static_cast<unsigned char>(Kind::Id)) {
    return false;
  }
  out->times.created = get_be64(p + kOffCreated);
  out->times.refreshed = get_be64(p + kOffRefreshed);
  std::memcpy(out->id, p + kEnvelopeHeaderLen, kSessionIdLen);
  std::memcpy(out->proof, p, kEnvelopeHeaderLen);
  std::memcpy(out->proof + kEnvelopeHeaderLen, p + kEnvelopeHeaderLen + kSessionIdLen,
              KeyRing::kMacLen);
  return true;
}

}  // namespace sess
