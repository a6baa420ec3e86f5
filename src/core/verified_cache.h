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
// replaced (one of each per request at most). Memory is taken as slots are filled and reused in
// place: an entry's strings, and its shared block when no request holds it any more.
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

  // What an entry shares with the requests that use it: the payload envelope_open returned and,
  // once attach_data stored it, its decoded form. Reference-counted by Holds, not atomically
  // (one table per worker, see below); freed when the last Hold - the entry's own or a
  // request's - lets go, so a request keeps it after its entry was replaced.
  class Shared {
   public:
    const std::string& payload() const noexcept { return payload_; }
    const SessionData* data() const noexcept { return data_.get(); }

   private:
    friend class Hold;
    friend class VerifiedCache;
    explicit Shared(std::string_view payload) : payload_(payload) {}
    uint32_t refs_ = 0;
    std::string payload_;
    std::unique_ptr<const SessionData> data_;
  };

  // One reference to a Shared (move-only). Default: none.
  class Hold {
   public:
    Hold() noexcept = default;
    Hold(Hold&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
    Hold& operator=(Hold&& o) noexcept {
      if (this != &o) {
        reset();
        s_ = o.s_;
        o.s_ = nullptr;
      }
      return *this;
    }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold() { reset(); }
    void reset() noexcept {
      if (s_ != nullptr && --s_->refs_ == 0) delete s_;
      s_ = nullptr;
    }
    const Shared* get() const noexcept { return s_; }
    uint32_t use_count() const noexcept { return s_ != nullptr ? s_->refs_ : 0; }
    Hold share() const noexcept { return Hold(s_); }  // another reference to the same

   private:
    friend class VerifiedCache;
    explicit Hold(Shared* s) noexcept : s_(s) {
      if (s_ != nullptr) s_->refs_++;
    }
    Shared* s_ = nullptr;
  };

  struct Entry {
    VerifiedBinding binding;  // binding.cookie_name views name
    uint64_t mix = 0;         // the slot hash of (binding, value) before the modulo: a value
                              // that does not match it is told apart without reading value's
                              // bytes (elsewhere in memory); a match is compared in full
    std::string name;
    std::string value;
    Times times;               // what envelope_open returned, with shared->payload()
    Hold shared;               // set while the entry is in use (binding.ring != 0)
    const std::string& payload() const noexcept { return shared.get()->payload(); }
    // The decoded payload once attach_data stored it, or nullptr.
    const SessionData* data() const noexcept { return shared.get()->data(); }
  };

  // seed: the hash key (the glue passes CSPRNG bytes, tests a fixed value).
  explicit VerifiedCache(uint64_t seed);

  // The entry for exactly this binding and value, or nullptr. The pointer is valid until the next
  // insert or clear; what entry->shared points to stays valid as long as a Hold of it.
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
  uint64_t mix_of(const VerifiedBinding& b, std::string_view value) const noexcept;
  Entry* lookup(const VerifiedBinding& b, std::string_view value) const noexcept;

  uint64_t seed_;
  std::unique_ptr<Entry[]> slots_;
};

}  // namespace sess
