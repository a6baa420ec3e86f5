// The Redis session cache's decisions (session_redis_cache, DESIGN.md "Redis session cache with
// server-assisted invalidation"): whether a cached record may be served, whether a read's reply
// may be stored, and what every link event does to that. No memory layout here: the glue keeps
// the entries in a shared-memory zone and asks this code what to do with them.
//
//   In:   link events of one worker (its invalidation subscriber up/lost, each data connection
//         up / tracking confirmed for a redirect id / lost, a Sentinel switch or cluster MOVED),
//         invalidation pushes (parse_invalidation), this worker's own writes, and fills (a
//         tracked read: begin_fill before the command is sent, end_fill when its reply arrives).
//   Out:  begin_fill: a ticket or none (bypassing); end_fill: store the reply (with the ticket's
//         epoch) or not; cache_lookup: Hit, Miss or Bypass for an entry; cache_expiry: when an
//         entry ends (min(max_age, the record's TTL)) or that it must not be stored.
//   Never: a Hit while this worker is not Active (its subscriber subscribed with a known client
//         id, and every data connection confirmed CLIENT TRACKING on REDIRECT <that id>); a Hit
//         on an entry stored before the last flush (any worker's: the epoch is shared); a fill
//         stored when an invalidation of its key, or any flush, came between begin_fill and
//         end_fill; a fill from anything but a read (there is no API for storing a written value:
//         own_write only cancels).
//
// Flushes are an epoch bump (SharedEpoch, one counter in the zone for all workers): an entry
// carries the epoch its fill began under and is dead once the counter moved on. Everything that
// can lose an invalidation bumps it: this worker starting (whatever a predecessor filled is
// tracked by nobody), its subscriber lost, any data connection lost, a topology change, a
// key-less invalidation (FLUSHALL, FLUSHDB), and the worker exiting.
//
// Not thread-safe: one CacheCoherence per nginx worker, used from the event loop only.
#pragma once

#include "envelope.h"
#include "resp.h"
#include "session_data.h"

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace sess {

// $session_cache_status.
enum class CacheStatus : uint8_t { Empty, Hit, Miss, Bypass };
std::string_view cache_status_name(CacheStatus s) noexcept;  // "", "hit", "miss", "bypass"

// ---------------------------------------------------------------------------------------------
// The invalidation push (RESP2, on a connection subscribed to __redis__:invalidate)

inline constexpr std::string_view kInvalidateChannel = "__redis__:invalidate";

struct Invalidation {
  enum class Kind : uint8_t {
    Keys,        // ["message", channel, [key, ...]]: keys holds them (views into the reply)
    All,         // ["message", channel, nil]: every key (FLUSHALL, FLUSHDB): flush
    Subscribed,  // ["subscribe", channel, n]: the subscription is confirmed
    Pong,        // ["pong", payload]: a PING's answer in subscribed mode
    Other,       // a message or confirmation of another channel, or another kind of push
    Malformed,   // a "message" of our channel whose keys are not an array of bulk strings (or
                 // empty), or a non-array: the link cannot be trusted (close it: that flushes)
  };
  Kind kind = Kind::Other;
  std::vector<std::string_view> keys;
};

// Classifies one reply read on the subscriber connection. A nil bulk ($-1, what Redis 7 sends)
// and a nil array (*-1) both mean "every key".
Invalidation parse_invalidation(const RespValue& reply);

// ---------------------------------------------------------------------------------------------
// Entries

// What a stored entry carries for these decisions (the record itself is the glue's).
struct CacheEntryMeta {
  uint64_t epoch = 0;       // the fill's ticket epoch
  uint64_t expires_ms = 0;  // cache_expiry
};

// When an entry filled at now_ms ends: now + min(max_age, pttl). pttl_ms is the record's PTTL
// as Redis answers it: -1 (no TTL) gives max_age, -2 (no such key), 0 or any other negative
// value: not to be stored (nullopt). max_age_ms 0: not to be stored.
std::optional<uint64_t> cache_expiry(uint64_t now_ms, uint64_t max_age_ms, int64_t pttl_ms) noexcept;

// An entry's record as the zone keeps it: the decoded session (what record_read gave), in a
// flat form that is copied out under the zone's lock and decoded without parsing JSON:
//   u16 count, then per value: u8 is_string, u8 key length, u32 text length (little endian),
//   the key bytes, the text bytes.
// cache_record_encode: false if the data cannot be kept (more than 65535 values, a key longer
// than 255 bytes, a text longer than 4 GiB; none of which record_read gives). decode: false on
// anything malformed (truncated, trailing bytes, an empty key, a flag other than 0 or 1),
// leaving *out empty.
bool cache_record_encode(const SessionData& data, std::string& out);
bool cache_record_decode(std::string_view bytes, SessionData* out);

// The id cookie an entry keeps (the glue stores one with each entry, in a chunk of its own):
// what it was verified under - its binding, a hash of the key ring's id and the cookie's name
// keyed by the zone's random seed - and its proof (envelope_peek_id: the envelope's header and
// MAC, which with the entry's id are every byte of the cookie). A cookie whose id names an entry
// is that verified cookie when its KeptCookie matches the entry's (kept_cookie_matches).
struct KeptCookie {
  uint64_t binding = 0;
  unsigned char proof[kIdProofLen] = {};
};
static_assert(sizeof(KeptCookie) <= 64, "a kept cookie fits a 64-byte slab chunk");

// The binding of a cookie verified under ring (KeyRing::id(), never 0) and cookie name, with the
// zone's seed (from the CSPRNG). Two bindings of one configuration that meet would be a 2^-64
// accident of the names chosen; nothing in it comes from a client.
uint64_t kept_cookie_binding(const uint64_t seed[2], uint64_t ring,
                             std::string_view name) noexcept;
// The binding of a cookie verified (or presented) under ring and name into *out; false
// (nothing to keep or look for) for ring 0, which no key ring has.
bool kept_cookie_bind(const uint64_t seed[2], uint64_t ring, std::string_view name,
                      uint64_t* out) noexcept;
// The KeptCookie of a binding and a proof (kIdProofLen bytes).
KeptCookie kept_cookie_with(uint64_t binding, const unsigned char* proof) noexcept;
// Both at once: the KeptCookie of a cookie under ring and name, with its proof; false for ring 0.
bool kept_cookie_make(const uint64_t seed[2], uint64_t ring, std::string_view name,
                      const unsigned char* proof, KeptCookie* out) noexcept;
// Whether presented is the cookie kept: the same binding, and the same proof compared in
// constant time. False when the entry keeps none (kept nullptr) or the cookie cannot be kept
// (presented nullptr: kept_cookie_make refused it).
bool kept_cookie_matches(const KeptCookie* kept, const KeptCookie* presented) noexcept;
// The same for a presented cookie given by its binding and proof (kIdProofLen bytes), without
// making its KeptCookie: what a lookup asks.
bool kept_cookie_holds(const KeptCookie* kept, uint64_t binding,
                       const unsigned char* proof) noexcept;

// The flush counter shared by all workers (the glue: an atomic in the shared zone).
class SharedEpoch {
 public:
  virtual ~SharedEpoch() = default;
  virtual uint64_t load() const noexcept = 0;
  virtual void bump() noexcept = 0;  // a flush of every worker's entries
};

// ---------------------------------------------------------------------------------------------
// One worker's coherence state

class CacheCoherence {
 public:
  struct FillTicket {
    std::string key;
    uint64_t seq = 0;    // this worker's event sequence when the fill began
    uint64_t epoch = 0;  // the shared epoch when the fill began (stored with the entry)
  };

  // Starts bypassing, and bumps the epoch (entries of a predecessor are tracked by nobody).
  explicit CacheCoherence(SharedEpoch& epoch);

  // True when lookups may hit and fills may begin.
  bool active() const noexcept;

  // The subscriber connection is subscribed (Subscribed confirmation) and CLIENT ID said id
  // (> 0). Every data connection must now confirm tracking for this id.
  void subscriber_up(int64_t client_id);
  // Closed, PING unanswered in time, Malformed push, a reconnect: flush, bypass.
  void subscriber_lost();

  // A data connection (the glue's number for it) connected: bypass until it confirms tracking.
  void data_up(uint32_t conn);
  // Its CLIENT TRACKING on REDIRECT <redirect_id> answered +OK (ok) or not. A confirmation for
  // another id than the subscriber's current one changes nothing.
  void data_tracking(uint32_t conn, int64_t redirect_id, bool ok);
  // Lost (or closed for any reason): flush; bypass until it is back and confirms again (a
  // connection that is not coming back is data_removed).
  void data_lost(uint32_t conn);
  void data_removed(uint32_t conn);

  // A Sentinel master switch, a cluster MOVED (or map change): flush (stay active: the data
  // connections that change report data_lost/data_up themselves).
  void topology_changed();

  // An invalidation push: Keys cancels pending fills of each key (the glue also erases the
  // entries); All flushes. Returns true if the glue must erase those keys' entries (Keys), false
  // otherwise (All/flush needs no erasing: the epoch did it).
  bool on_invalidation(const Invalidation& inv);
  // This nginx is writing key (any command that changes it): pending fills of the key are
  // cancelled; the glue erases the entry. A later read refills it (tracked again).
  void own_write(std::string_view key);

  // A tracked read of key is about to be sent: nullopt while bypassing (do not store its reply).
  std::optional<FillTicket> begin_fill(std::string_view key);
  // Its reply arrived: true if it may be stored (with ticket.epoch). Ends the ticket.
  bool end_fill(const FillTicket& t);
  // It will not complete (timed out, request gone, connection lost). Ends the ticket.
  void abandon_fill(const FillTicket& t);

  // Hit, Miss or Bypass for a lookup: e is the entry found (nullptr: none), now_ms the clock.
  CacheStatus lookup(const CacheEntryMeta* e, uint64_t now_ms) const noexcept;

  // The worker exits: flush (nobody will receive invalidations for what it filled).
  void shutdown();

  uint64_t flushes() const noexcept { return flushes_; }        // for logs and tests
  size_t pending_keys() const noexcept { return pending_.size(); }

 private:
  struct Pending {
    uint32_t fills = 0;        // tickets of this key not ended
    uint64_t cancelled = 0;    // the seq of the last invalidation/own write of the key
  };
  struct Data {
    int64_t tracking_for = 0;  // the redirect id confirmed on the current connection; 0: none
    bool up = false;
  };

  void flush();
  void end(const FillTicket& t);

  SharedEpoch& epoch_;
  int64_t subscriber_id_ = 0;  // 0: not subscribed
  std::unordered_map<uint32_t, Data> data_;
  std::unordered_map<std::string, Pending> pending_;
  uint64_t seq_ = 0;
  uint64_t flushes_ = 0;
  bool shut_down_ = false;
};

}  // namespace sess
