// libFuzzer target: the session cookie envelope (src/core/envelope.h) for the Signed, Sealed and
// Id kinds, with a fixed key ring, plus the expiry policy (src/core/expiry.h) on the timestamps.
//
// Input: FLAGS(1) | DATA
//   FLAGS & 3         kind: 0 Signed, 1 Sealed, 2 Id, 3 an invalid kind value (must be refused),
//                     then Signed for the rest
//   (FLAGS >> 2) & 3  cookie name: "session", "s", "__Host-session", "" (empty)
//   FLAGS & 16        DATA is a raw envelope: version and kind bytes are fixed up and it is
//                     base64url-encoded before envelope_open, so the MAC/AEAD paths are reached
//                     with arbitrary lengths and hints; otherwise DATA is the cookie value as is
//   FLAGS & 32        open with the rotated ring {secret2, secret1} instead of {secret1}
// Properties:
//   open (fuzz value)  - never Ok for anything but a genuine value (seeds made by
//                        fuzz/gen_seeds.cpp are genuine); not Ok => payload empty; Ok => the
//                        payload re-seals and re-opens to the same payload and times.
//   seal(DATA) round trip, for each kind - length is envelope_sealed_len; only base64url
//                        characters; open gives back DATA and the times; the rotated ring opens
//                        it; a ring without the key, another cookie name or another kind does
//                        not; any one changed character, a truncation or an extension is refused;
//                        values over max_len are Malformed.
//   expiry             - Valid <=> now < expires_at and no future-dating; ttl and needs_renew
//                        agree with their definitions.
//
// The secrets are constants shared with fuzz/gen_seeds.cpp (keep them identical).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "base64url.h"
#include "crypto.h"
#include "envelope.h"
#include "expiry.h"

#include "fuzz_check.h"

namespace {

// 48 bytes each.
constexpr std::string_view kSecret1 = "fuzz-secret-1-0123456789abcdefghijklmnopqrstuvwx";
constexpr std::string_view kSecret2 = "fuzz-secret-2-ABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&*+/";
static_assert(kSecret1.size() == 48 && kSecret2.size() == 48, "48-byte secrets");

constexpr std::string_view kNames[4] = {"session", "s", "__Host-session", ""};
constexpr sess::Kind kKinds[3] = {sess::Kind::Signed, sess::Kind::Sealed, sess::Kind::Id};

struct Rings {
  sess::KeyRing primary;  // {secret1}: what the server signs with
  sess::KeyRing rotated;  // {secret2, secret1}: after a rotation, secret1 still verifies
  sess::KeyRing other;    // {secret2}: a server that never had secret1
  Rings() {
    if (!primary.add_secret(kSecret1) || !rotated.add_secret(kSecret2) ||
        !rotated.add_secret(kSecret1) || !other.add_secret(kSecret2)) {
      std::fprintf(stderr, "fuzz_envelope: cannot build the key rings\n");
      std::abort();
    }
  }
};

const Rings& rings() {
  static const Rings* r = new Rings();  // never destroyed: no exit-time ordering issues
  return *r;
}

class FixedClock : public sess::Clock {
 public:
  explicit FixedClock(uint64_t now) : now_(now) {}
  uint64_t now() const noexcept override { return now_; }

 private:
  uint64_t now_;
};

uint64_t read_u64(std::string_view s, size_t off) {
  uint64_t v = 0;
  for (size_t i = off; i < off + 8 && i < s.size(); i++) v = v << 8 | static_cast<unsigned char>(s[i]);
  return v;
}

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool is_b64url(char c) { return c != '\0' && std::strchr(kAlphabet, c) != nullptr; }

void check_expiry(const sess::Times& t, std::string_view data) {
  sess::ExpiryPolicy p;
  p.lifetime = read_u64(data, 0) % (uint64_t{1} << 40);
  p.idle = data.size() > 8 ? read_u64(data, 8) : 0;  // full range: exercises saturation
  p.renew = data.size() > 16 ? read_u64(data, 16) % 100000 : 60;
  const uint64_t now = t.created + read_u64(data, 24) % 200000 - 100000;  // around created
  const FixedClock clock(now);

  const sess::Verdict v = sess::expiry_check(p, t, clock);
  const uint64_t at = sess::expiry_expires_at(p, t);
  const uint64_t ttl = sess::expiry_ttl(p, t, clock);
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  const uint64_t horizon = now > max - p.max_skew ? max : now + p.max_skew;
  const bool future = t.created > horizon || t.refreshed > horizon || t.refreshed < t.created;
  FUZZ_CHECK((v == sess::Verdict::FutureDated) == future);
  if (!future) FUZZ_CHECK((v == sess::Verdict::Valid) == (now < at));
  FUZZ_CHECK(ttl == (at > now ? at - now : 0));
  const uint64_t life_end = t.created > max - p.lifetime ? max : t.created + p.lifetime;
  FUZZ_CHECK(at <= life_end);
  FUZZ_CHECK(sess::expiry_needs_renew(p, t, clock) == (now >= t.refreshed && now - t.refreshed >= p.renew));
}

void check_round_trip(sess::Kind kind, std::string_view name, std::string_view other_name,
                      std::string_view payload, const sess::Times& times, uint64_t salt) {
  const Rings& r = rings();
  sess::pstring sealed("pre;");
  FUZZ_CHECK(sess::envelope_seal(r.primary, kind, name, times, payload, sealed));
  FUZZ_CHECK(sealed.compare(0, 4, "pre;") == 0);
  const std::string value(sealed.substr(4));
  FUZZ_CHECK(value.size() == sess::envelope_sealed_len(kind, payload.size()));
  for (char c : value) FUZZ_CHECK(is_b64url(c));
  constexpr size_t kNoLimit = std::numeric_limits<size_t>::max();

  sess::Times t;
  sess::pstring out;
  FUZZ_CHECK(sess::envelope_open(r.primary, kind, name, value, &t, &out, kNoLimit) ==
             sess::OpenResult::Ok);
  FUZZ_CHECK(std::string_view(out) == payload);
  FUZZ_CHECK(t.created == times.created && t.refreshed == times.refreshed);

  // Rotation: a ring that has the key further down still opens it.
  out.assign("junk");
  FUZZ_CHECK(sess::envelope_open(r.rotated, kind, name, value, &t, &out, kNoLimit) ==
             sess::OpenResult::Ok);
  FUZZ_CHECK(std::string_view(out) == payload);

  // Not without the key, not under another cookie name, not as another kind.
  out.assign("junk");
  FUZZ_CHECK(sess::envelope_open(r.other, kind, name, value, &t, &out, kNoLimit) ==
             sess::OpenResult::BadMac);
  FUZZ_CHECK(out.empty());
  out.assign("junk");
  FUZZ_CHECK(sess::envelope_open(r.primary, kind, other_name, value, &t, &out, kNoLimit) ==
             sess::OpenResult::BadMac);
  FUZZ_CHECK(out.empty());
  for (sess::Kind k : kKinds) {
    if (k == kind) continue;
    out.assign("junk");
    FUZZ_CHECK(sess::envelope_open(r.primary, k, name, value, &t, &out, kNoLimit) !=
               sess::OpenResult::Ok);
    FUZZ_CHECK(out.empty());
  }

  // The default size bound.
  out.assign("junk");
  const sess::OpenResult bounded = sess::envelope_open(r.primary, kind, name, value, &t, &out);
  FUZZ_CHECK(bounded == (value.size() > 8192 ? sess::OpenResult::Malformed : sess::OpenResult::Ok));

  // One changed character anywhere is refused (the alphabet is a bijection and the decoder
  // rejects non-canonical tails, so the raw envelope changes or does not decode).
  std::string mutated = value;
  const size_t pos = static_cast<size_t>(salt % mutated.size());
  const char* cur = std::strchr(kAlphabet, mutated[pos]);
  mutated[pos] = kAlphabet[(static_cast<size_t>(cur - kAlphabet) + 1 + (salt >> 32) % 63) % 64];
  out.assign("junk");
  FUZZ_CHECK(sess::envelope_open(r.primary, kind, name, mutated, &t, &out, kNoLimit) !=
             sess::OpenResult::Ok);
  FUZZ_CHECK(out.empty());

  // Truncated or extended.
  const size_t cut = 1 + static_cast<size_t>(salt % 7);
  if (cut < value.size()) {
    FUZZ_CHECK(sess::envelope_open(r.primary, kind, name, value.substr(0, value.size() - cut), &t,
                                   &out, kNoLimit) != sess::OpenResult::Ok);
    FUZZ_CHECK(out.empty());
  }
  FUZZ_CHECK(sess::envelope_open(r.primary, kind, name, value + "A", &t, &out, kNoLimit) !=
             sess::OpenResult::Ok);
  FUZZ_CHECK(sess::envelope_open(r.primary, kind, name, value + "AAAA", &t, &out, kNoLimit) !=
             sess::OpenResult::Ok);
  FUZZ_CHECK(out.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  const Rings& r = rings();
  const unsigned flags = bytes[0];
  const std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);
  const std::string_view name = kNames[(flags >> 2) & 3];
  const std::string_view other_name = kNames[((flags >> 2) + 1) & 3];
  sess::Kind kind = sess::Kind::Signed;
  if ((flags & 3) == 3) {
    // An invalid kind is refused by both directions without touching anything.
    const auto bad = static_cast<sess::Kind>(flags >> 6 == 0 ? 0 : 3 + (flags >> 6));
    sess::Times t;
    sess::pstring out("junk");
    FUZZ_CHECK(sess::envelope_open(r.primary, bad, name, data, &t, &out) ==
               sess::OpenResult::Malformed);
    FUZZ_CHECK(out.empty());
    out.assign("keep");
    FUZZ_CHECK(!sess::envelope_seal(r.primary, bad, name, t, data, out));
    FUZZ_CHECK(out == "keep");
  } else {
    kind = kKinds[flags & 3];
  }
  const sess::KeyRing& ring = (flags & 32) ? r.rotated : r.primary;

  // --- open a hostile value -------------------------------------------------------------------
  sess::pstring value;
  if (flags & 16) {
    std::string raw(data);
    if (raw.size() > 0) raw[0] = 1;  // version
    if (raw.size() > 1) raw[1] = static_cast<char>(kind);
    sess::base64url_encode(raw, value);
  } else {
    value.assign(data.data(), data.size());
  }
  sess::Times t{12345, 67890};
  sess::pstring payload("junk");
  const sess::OpenResult res = sess::envelope_open(ring, kind, name, value, &t, &payload);
  if (res != sess::OpenResult::Ok) {
    FUZZ_CHECK(payload.empty());
  } else {
    // Only genuine values get here (the seeds); the content must survive a re-seal.
    const std::string p(payload);
    check_round_trip(kind, name, other_name, p, t, size);
    check_expiry(t, data);
  }

  // --- seal the fuzz data, then open it -------------------------------------------------------
  sess::Times times;
  times.created = read_u64(data, 0);
  times.refreshed = data.size() > 8 ? read_u64(data, 8) : times.created;
  uint64_t salt = 0x9e3779b97f4a7c15ULL;
  for (unsigned char c : data) salt = (salt ^ c) * 0x100000001b3ULL;
  check_round_trip(kind, name, other_name, data, times, salt);
  check_expiry(times, data);
  return 0;
}
