#include "verified_cache.h"

#include <cstring>

namespace sess {

namespace {

inline uint64_t rotl(uint64_t x, int r) noexcept { return x << r | x >> (64 - r); }

constexpr uint64_t kMul = 0x9e3779b97f4a7c15ULL;

inline uint64_t step(uint64_t h, uint64_t w) noexcept { return rotl((h ^ w) * kMul, 29); }

// A seeded multiply-rotate mix of the value's length and its last 16 bytes. It only spreads
// values over the slots: a collision evicts, it never makes a hit (entries are compared in
// full), and only values that verified are ever inserted. The end of every envelope is its MAC
// or GCM tag, which nobody without the key can choose; the seed is secret as well.
uint64_t mix_value(uint64_t h, std::string_view s) noexcept {
  const size_t n = s.size();
  h = step(h, static_cast<uint64_t>(n));
  if (n >= 16) {
    h = step(h, load_u64(s.data() + n - 16));
    return step(h, load_u64(s.data() + n - 8));
  }
  unsigned char buf[16] = {};
  std::memcpy(buf, s.data(), n);
  h = step(h, load_u64(reinterpret_cast<const char*>(buf)));
  return step(h, load_u64(reinterpret_cast<const char*>(buf) + 8));
}

constexpr size_t kValueOverhead = sizeof(SessionValue);

}  // namespace

VerifiedCache::VerifiedCache(uint64_t seed) : seed_(seed), slots_(new Entry[kSlots]) {}

// (Inline: lookup asks it on every request with a cookie.)
inline uint64_t VerifiedCache::mix_of(const VerifiedBinding& b,
                                      std::string_view value) const noexcept {
  // The name is left out (it is compared in full; one value under two names is rare).
  uint64_t h = seed_ ^ (b.ring * 0xff51afd7ed558ccdULL) ^ static_cast<uint64_t>(b.kind);
  h = mix_value(h, value);
  return h ^ (h >> 32);
}

VerifiedCache::Entry* VerifiedCache::lookup(const VerifiedBinding& b,
                                            std::string_view value) const noexcept {
  if (b.ring == 0 || value.size() > kMaxValue) return nullptr;
  const uint64_t mix = mix_of(b, value);
  Entry* e = &slots_[mix % kSlots];
  // Non-secret parts first (the mix depends only on the length and the MAC or tag at the end,
  // which the caller sent: a mismatch says nothing about the stored value's bytes); the value
  // last, in full and in constant time.
  if (e->mix != mix || e->binding.ring != b.ring || e->binding.kind != b.kind ||
      !bytes_equal(e->name, b.cookie_name) || !ct_equal(e->value, value)) {
    return nullptr;
  }
  return e;
}

const VerifiedCache::Entry* VerifiedCache::find(const VerifiedBinding& b,
                                                std::string_view value) const noexcept {
  return lookup(b, value);
}

bool VerifiedCache::insert(const VerifiedBinding& b, std::string_view value, const Times& t,
                           std::string_view payload) {
  if (b.ring == 0 || value.size() > kMaxValue) return false;
  const uint64_t mix = mix_of(b, value);
  Entry* e = &slots_[mix % kSlots];
  // Drop the previous entry first: a failed copy below must not leave a mix of two entries.
  e->binding.ring = 0;
  // Its shared block is reused when nothing else holds it (no request in flight took it: a
  // Redis id is copied out, not held), emptied first - its decoded data belonged to the old
  // payload; one a request still holds stays that request's, and the entry gets a new one.
  Shared* reuse = e->shared.use_count() == 1 ? e->shared.s_ : nullptr;
  if (reuse != nullptr) {
    reuse->data_.reset();
    reuse->payload_.clear();
  } else {
    e->shared.reset();
  }
  if (b.cookie_name.size() > kMaxName || payload.size() > kMaxPayload) {
    e->shared.reset();
    return false;
  }
  e->name.assign(b.cookie_name.data(), b.cookie_name.size());
  e->value.assign(value.data(), value.size());
  if (reuse != nullptr) {
    reuse->payload_.assign(payload.data(), payload.size());
  } else {
    e->shared = Hold(new Shared(payload));
  }
  e->times = t;
  e->binding.kind = b.kind;
  e->binding.cookie_name = e->name;
  e->mix = mix;
  e->binding.ring = b.ring;  // last: the entry is complete
  return true;
}

bool VerifiedCache::attach_data(const VerifiedBinding& b, std::string_view value,
                                const SessionData& data) {
  Entry* e = lookup(b, value);
  if (e == nullptr || e->data() != nullptr || data_bytes(data) > kMaxDataBytes) return false;
  auto copy = std::make_unique<SessionData>(std::pmr::new_delete_resource());
  copy->assign(data);
  // (Requests holding this Shared took no data from it: they decoded their own.)
  e->shared.s_->data_ = std::move(copy);
  return true;
}

void VerifiedCache::clear() noexcept {
  for (size_t i = 0; i < kSlots; i++) {
    slots_[i].binding.ring = 0;
    slots_[i].shared.reset();
  }
}

size_t VerifiedCache::size() const noexcept {
  size_t n = 0;
  for (size_t i = 0; i < kSlots; i++) n += slots_[i].binding.ring != 0;
  return n;
}

size_t VerifiedCache::data_bytes(const SessionData& data) noexcept {
  size_t n = 0;
  for (const auto& v : data.values()) n += kValueOverhead + v.key.size() + v.text.size();
  return n;
}

}  // namespace sess
