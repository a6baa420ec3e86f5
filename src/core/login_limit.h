// Failed-login regulation (`session_login_limit`): the directive's grammar, the keys a client
// address and a user name are counted under, and what one zone entry decides.
//
// In: the directive's words; a client address (4 or 16 bytes) or a user name; an entry's state
// and the time in milliseconds (a monotonic clock shared by the workers). Out: allow the
// credential check or refuse it with the time left of the ban; what a failure, a success or an
// idle entry does to the state. Nothing here allocates or knows about shared memory: the glue
// (src/ngx_http_session_login_limit.cpp) keeps entries in an nginx slab zone and calls these
// functions under the zone's lock.
//
// The rules:
// - An entry remembers the times of its last `attempts` failures (a ring). A credential check is
//   charged as a failure when it starts, before its outcome is known, so concurrent attempts
//   cannot run more checks than `attempts`; the charge that makes `attempts` failures within
//   `window` starts the ban at once (the check that made it still runs).
// - A ban refuses every attempt until it ends; then the entry starts from nothing.
// - A success refunds its own charge (client entries: one success does not forgive the other
//   failures of an address, or anyone with an account of their own could launder guesses at
//   other accounts), or clears the entry (user entries: only the account's password can do
//   that). A refund that leaves fewer than `attempts` failures lifts a ban the charge started.
// - Evictable when the zone is full: first an entry with nothing to remember (limit_idle, or a
//   ban that has ended); then an entry that is not an active ban, the one with the fewest
//   failures first (limit_evict_class), and among those the least recently updated; only when
//   every entry is an active ban, the oldest ban (a full zone never refuses everyone). Fewest
//   failures first: otherwise one failure each with junk names flushes the partial count of the
//   name being guessed (by=user), and its guesses start over; now flushing a count of k costs k
//   failures per entry of the zone.
#pragma once

#include "common.h"

namespace sess {

enum class LimitBy : uint8_t { Client = 1, User = 2, Both = 3 };

constexpr uint32_t kLimitMaxAttempts = 100;
constexpr uint64_t kLimitMaxTime = 366ull * 86400;  // longest window or ban, in seconds
constexpr size_t kLimitMaxZoneName = 64;
constexpr uint64_t kLimitMaxZoneSize = 0x7fffffffffffffffull;  // ngx_parse_size's bound (64-bit)

struct LimitSpec {
  std::string_view zone;     // view into the arguments
  uint64_t zone_size = 0;    // bytes
  std::string_view zone_size_text;  // SIZE as written (the glue parses it again with nginx's own
                                    // ngx_parse_size)
  uint32_t attempts = 5;
  uint64_t window_ms = 600 * 1000;
  uint64_t ban_ms = 900 * 1000;
  LimitBy by = LimitBy::Client;

  bool same(const LimitSpec& o) const noexcept {
    return zone == o.zone && zone_size == o.zone_size && attempts == o.attempts &&
           window_ms == o.window_ms && ban_ms == o.ban_ms && by == o.by;
  }
};

struct LimitParseError {
  size_t index = 0;          // the offending argument
  const char* message = "";  // static text
};

// Parses the words after the directive name:
//   zone=NAME:SIZE [attempts=N] [window=T] [ban=T] [by=client|user|both]
// NAME: 1..64 bytes of [A-Za-z0-9_-]; SIZE: digits with an optional k/K/m/M/g/G suffix, at most
// 2^63-1 bytes once scaled (a size that overflows is refused; the glue checks the minimum); attempts 1..100; window and ban durations (duration.h) of 1 s to
// 366 days; each parameter at most once, zone= required. False with err filled on error.
bool login_limit_parse(const std::string_view* args, size_t n, LimitSpec* out,
                       LimitParseError* err) noexcept;

// What entries are found by: a keyed hash (HMAC-SHA256 under the zone's random key, truncated),
// so that the zone holds neither addresses nor names and every key has the same size.
constexpr size_t kLimitKeyLen = 32;
constexpr size_t kLimitIdLen = 16;

// A client address: 4 bytes (IPv4) or 16 (IPv6; an IPv4-mapped address counts as the IPv4
// address, any other by its /64, which one host usually has whole). Other lengths (a unix
// socket: 0) count as one client. False if the HMAC fails.
bool limit_client_id(const unsigned char* key, const unsigned char* addr, size_t len,
                     unsigned char* id) noexcept;

// A user name, by its canonical form: a credential service that canonicalises names (Django's
// form strips white space and NFKC-normalises, and lookups often ignore case) must not give
// "alice", " alice", "ALICE" and fullwidth "ａｌｉｃｅ" an allowance each. Whether the user exists
// plays no part. Folding too much only makes two names share one allowance; folding too little
// gives guesses, so the form errs on the side of folding. No ICU: a fixed list (README):
// - white space (Unicode White_Space: ASCII's, U+001C-001F, U+0085, U+00A0, U+1680,
//   U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000) and the invisible U+00AD, U+200B-200D,
//   U+2060, U+FEFF are trimmed from both ends; inside, white space becomes one ASCII space each
//   and the invisible ones are dropped;
// - compatibility forms become the letters they stand for: fullwidth ASCII U+FF01-FF5E,
//   mathematical letters and digits U+1D400-1D6A3 and U+1D7CE-1D7FF, circled letters
//   U+24B6-24E9, the ligatures U+FB00-FB06 and U+0132/0133 (ij), long s U+017F;
// - case: upper to lower in ASCII, Latin-1, Latin Extended-A, Greek (final sigma to sigma) and
//   Cyrillic; U+0130 and U+0131 become i, sharp s (U+00DF, U+1E9E) becomes ss;
// - everything else (other scripts, accents as combining marks vs precomposed, bytes that are
//   not UTF-8) is kept as it is.
bool limit_user_id(const unsigned char* key, std::string_view user, unsigned char* id) noexcept;

// The canonical form itself, into out (room for user.size() bytes: it is never longer);
// returns its length. For tests and tools.
size_t limit_user_canonical(std::string_view user, char* out) noexcept;

// One entry. `stamps` (kept beside it by the caller) has room for `cap` times.
struct LimitEntry {
  uint64_t banned_until = 0;  // ms; 0: no ban
  uint64_t updated = 0;       // ms of the last change (least recently updated goes first)
  uint32_t cap = 0;           // the ring's size: the spec's attempts when the entry was made
  uint32_t count = 0;         // failures in the ring (<= cap)
  uint32_t next = 0;          // where the next failure goes
  uint32_t logged = 0;        // the ban has had its log line
};

// True while a ban is active at now.
inline bool limit_banned(const LimitEntry& e, uint64_t now) noexcept {
  return e.banned_until != 0 && now < e.banned_until;
}

// Resets an entry whose ban has ended (a ban ends with a clean slate). Call before deciding.
void limit_expire(LimitEntry& e, uint64_t now) noexcept;

// Seconds a refused client should wait (Retry-After): the ban's remaining time, rounded up,
// at least 1.
uint64_t limit_retry_after(const LimitEntry& e, uint64_t now) noexcept;

// Counts a credential check that starts at now as a failure; `now` is the charge's token for
// limit_refund. True if this charge started a ban. The entry must not be banned (check first)
// and its cap must be spec.attempts (the glue makes a new entry when the spec changed).
bool limit_charge(LimitEntry& e, uint64_t* stamps, const LimitSpec& spec, uint64_t now) noexcept;

// A charged check failed (nothing to count: the charge was the failure). True if the entry is
// banned and its ban has not been logged yet; it is then marked logged (one line per ban).
bool limit_failed(LimitEntry& e, uint64_t now) noexcept;

// The check charged at `token` succeeded, for an entry counted per client: takes that charge
// back, and lifts a ban if fewer than `attempts` failures remain within the window.
void limit_refund(LimitEntry& e, uint64_t* stamps, const LimitSpec& spec, uint64_t token,
                  uint64_t now) noexcept;

// Success for an entry counted per user: forget everything.
void limit_clear(LimitEntry& e) noexcept;

// Nothing worth keeping: no active ban and no failure within the window.
bool limit_idle(const LimitEntry& e, const uint64_t* stamps, const LimitSpec& spec,
                uint64_t now) noexcept;

// Which eviction class an entry that is not an active ban belongs to when it changes: the
// failures it remembers (0 to kLimitMaxAttempts). Lower classes are evicted first.
inline uint32_t limit_evict_class(const LimitEntry& e) noexcept {
  return e.count < kLimitMaxAttempts ? e.count : kLimitMaxAttempts;
}

// Failures within the window at now.
uint32_t limit_failures(const LimitEntry& e, const uint64_t* stamps, uint64_t window_ms,
                        uint64_t now) noexcept;

}  // namespace sess
