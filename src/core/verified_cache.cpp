#include "verified_cache.h"

#include <cstring>

namespace sess {

namespace {

inline uint64_t load64(const char* p) noexcept {
  uint64_t w;
  std::memcpy(&w, p, sizeof(w));
  return w;
}

inline uint64_t rotl(uint64_t x, int r) noexcept { return x << r | x >> (64 - r); }

// A seeded multiply-rotate mix over 8-byte words: it only spreads values over the slots (a
// collision evicts, it never makes a hit: entries are compared in full).
uint64_t mix(uint64_t h, std::string_view s) noexcept {
  constexpr uint64_t kMul = 0x9e3779b97f4a7c15ULL;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) h = rotl((h ^ load64(s.data() + i)) * kMul, 29);
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  h = rotl((h ^ tail ^ (static_cast<uint64_t>(s.size()) << 56)) * kMul, 29);
  return h;
}

// Equality in time that depends only on the lengths (8 bytes at a time): a client must not
// learn how much of a cached cookie its guess shares.
bool ct_equal_words(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  uint64_t d = 0;
  size_t i = 0;
  for (; i + 8 <= a.size(); i += 8) d |= load64(a.data() + i) ^ load64(b.data() + i);
  for (; i < a.size(); i++) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

constexpr size_t kValueOverhead = sizeof(SessionValue);

}  // namespace

VerifiedCache::VerifiedCache(uint64_t seed) : seed_(seed), slots_(new Entry[kSlots]) {}

size_t VerifiedCache::slot_of(const VerifiedBinding& b, std::string_view value) const noexcept {
  uint64_t h = seed_ ^ (b.ring * 0xff51afd7ed558ccdULL) ^ static_cast<uint64_t>(b.kind);
  h = mix(h, b.cookie_name);
  h = mix(h, value);
  h ^= h >> 32;
  return static_cast<size_t>(h % kSlots);
}

VerifiedCache::Entry* VerifiedCache::lookup(const VerifiedBinding& b,
                                            std::string_view value) const noexcept {
  if (b.ring == 0 || value.size() > kMaxValue) return nullptr;
  Entry* e = &slots_[slot_of(b, value)];
  // Non-secret parts first; the value last and in constant time.
  if (e->binding.ring != b.ring || e->binding.kind != b.kind ||
      std::string_view(e->name) != b.cookie_name || !ct_equal_words(e->value, value)) {
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
  Entry* e = &slots_[slot_of(b, value)];
  // Drop the previous entry first: a failed copy below must not leave a mix of two entries.
  e->binding.ring = 0;
  e->has_data = false;
  e->data.clear();
  if (b.cookie_name.size() > kMaxName || payload.size() > kMaxPayload) return false;
  e->name.assign(b.cookie_name.data(), b.cookie_name.size());
  e->value.assign(value.data(), value.size());
  e->payload.assign(payload.data(), payload.size());
  e->times = t;
  e->binding.kind = b.kind;
  e->binding.cookie_name = e->name;
  e->binding.ring = b.ring;  // last: the entry is complete
  return true;
}

bool VerifiedCache::attach_data(const VerifiedBinding& b, std::string_view value,
                                const SessionData& data) {
  Entry* e = lookup(b, value);
  if (e == nullptr || e->has_data || data_bytes(data) > kMaxDataBytes) return false;
  e->data.assign(data);
  e->has_data = true;
  return true;
}

void VerifiedCache::clear() noexcept {
  for (size_t i = 0; i < kSlots; i++) {
    slots_[i].binding.ring = 0;
    slots_[i].has_data = false;
    slots_[i].data.clear();
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
