// A per-worker memo of envelope_open: session cookie values that verified recently, so that a
// repeated cookie skips base64url, the MAC/AEAD and (once a request decoded it) the JSON parse.
//
//   In:   the binding a value is verified under - the key ring (by KeyRing::id(), never reused
//         within a process, so a reload's new ring never matches an old entry), the envelope kind
//         and the cookie name - and the cookie value.
//   Out:  a hit gives exactly what envelope_open returned for those same inputs when it said Ok:
//         the times and the payload, plus the decoded data if attach_data stored it.
//   Never: a value that differs in any byte, a value of another length, another cookie name,
//         kind or ring is not a hit (all compared in full, the value in constant time); failures
//         are never stored; values longer than kMaxValue, and payloads/data over their bounds,
//         are not stored (the caller verifies them every time).
//   Not here: expiry. The stored times are what the envelope said; the caller checks lifetime,
//         idle timeout, future dating and renewal against its clock on every request.
//
// Fixed size and bounded memory: kSlots direct-mapped slots chosen by a seeded hash of the
// ring, the kind and the value (its length and last 16 bytes: the MAC or tag); a new value
// evicts whatever its slot held. An entry holds at most
// kMaxValue + kMaxName + kMaxPayload bytes of strings and data of at most kMaxDataBytes
// (see data_bytes), so the table never holds more than kSlots * kMaxEntryBytes plus fixed
// overhead, plus the payload and data that requests in flight still hold after their entry was
// replaced (one of each per request at most). Memory is taken as slots are filled and reused in place.
//
// Not thread-safe: one per nginx worker, used from the event loop only.
#pragma once

#include "envelope.h"
#include "session_data.h"

#include <memory>
#include <vector>

namespace sess {

struct VerifiedBinding {
  uint64_t ring = 0;  // KeyRing::id(); 0 is never a ring
  Kind kind = Kind::Signed;
  std::string_view cookie_name;
};

class VerifiedCache {
 public:
  static constexpr size_t kSlots = 512;
  static constexpr size_t kMaxValue = 1024;     // cookie value bytes
  static constexpr size_t kMaxName = 256;       // cookie name bytes
  static constexpr size_t kMaxPayload = 768;    // a value of kMaxValue decodes to less
  static constexpr size_t kMaxDataBytes = 2048; // decoded data, as counted by data_bytes
  static constexpr size_t kMaxEntryBytes = kMaxValue + kMaxName + kMaxPayload + kMaxDataBytes;

  struct Entry {
    VerifiedBinding binding;  // binding.cookie_name views name
    std::string name;
    std::string value;
    // What envelope_open returned, shared with the requests that use it like data below.
    std::shared_ptr<const std::string> payload;
    Times times;
    // The decoded payload once attach_data stored it (heap memory, shared with the requests
    // that use it: a request keeps its reference after the entry is replaced).
    std::shared_ptr<const SessionData> data;
  };

  // seed: the hash key (the glue passes CSPRNG bytes, tests a fixed value).
  explicit VerifiedCache(uint64_t seed);

  // The entry for exactly this binding and value, or nullptr. The pointer is valid until the next
  // insert, attach_data or clear (entry->data, once copied, stays valid as long as the copy).
  const Entry* find(const VerifiedBinding& b, std::string_view value) const noexcept;

  // Records that envelope_open(ring, kind, name, value) returned Ok with these times and
  // payload. Call it only then. Returns false (nothing stored) for values, names or payloads over
  // the bounds or a ring id of 0; the slot's previous entry is dropped either way.
  bool insert(const VerifiedBinding& b, std::string_view value, const Times& t,
              std::string_view payload);

  // Stores the decoded form of the payload of the entry for (b, value) if that entry is still
  // there and has none yet; data must be SessionData::decode of exactly that payload. Returns
  // false if there is no such entry or the data is larger than kMaxDataBytes.
  bool attach_data(const VerifiedBinding& b, std::string_view value, const SessionData& data);

  void clear() noexcept;
  size_t size() const noexcept;  // entries in use

  // The bytes attach_data counts for data: every key and text, plus a fixed cost per value.
  static size_t data_bytes(const SessionData& data) noexcept;

 private:
  size_t slot_of(const VerifiedBinding& b, std::string_view value) const noexcept;
  Entry* lookup(const VerifiedBinding& b, std::string_view value) const noexcept;

  uint64_t seed_;
  std::unique_ptr<Entry[]> slots_;
};

}  // namespace sess
