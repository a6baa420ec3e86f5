// Large sessions in several cookies: `session_cookie NAME ... chunks=N` (cookie store).
//
// The session cookie's value is one envelope (envelope.h). When the Set-Cookie line of NAME with
// that value would be longer than a browser keeps (kMaxSetCookieLen, name, value and attributes
// counted), the value is cut into k slices, 2 <= k <= N, written as k cookies:
//
//   NAME     = "<k>." slice[0]     the head: the number of cookies, then the first slice
//   NAME_1   = slice[1]
//   ...
//   NAME_k-1 = slice[k-1]
//
// Reading joins slice[0] | slice[1] | ... | slice[k-1] and verifies the result as one envelope,
// exactly as a single cookie: the MAC (or the AEAD tag) covers every byte of every slice and the
// total length. So a missing chunk, a chunk from another session or from an earlier state of
// this one (a stale or replayed chunk next to a new head), chunks swapped, a chunk cut or
// extended, or a wrong count in the head all give a value that does not verify: the session is
// invalid, never a mix of two. Nothing but the joined value is trusted; the count only says how
// many cookies to join.
//
// A value that fits in one cookie is written as before chunks existed: NAME = the envelope, no
// head (an envelope's base64url starts with 'A', its version byte; a head starts with a digit).
// Chunk names are NAME_1 .. NAME_15: canonical decimal, no leading zero. Any NAME_<digits>
// counts as the session's own (cookie_is_session_own), so cookie_set never writes one.
//
// Duplicates: a browser may send a name twice (another path, a parent-domain cookie planted by a
// sibling site). Equal values count once; two different values of one chunk name make every
// chunked candidate invalid (ChunkJoin::Duplicate) - trying every combination could take
// exponential work, and a planted chunk can only deny the session, never replace it.
#pragma once

#include "common.h"
#include "cookie.h"

namespace sess {

// The largest chunks= (NAME .. NAME_15). 16 full cookies are 64 KiB in one Cookie header line.
constexpr size_t kMaxChunks = 16;

// Bound on a joined value: kMaxChunks Set-Cookie lines of at most kMaxSetCookieLen each.
constexpr size_t kMaxChunkedValueLen = kMaxChunks * kMaxSetCookieLen;

// chunks= of session_cookie: decimal 1..kMaxChunks, no sign, no leading zero.
bool chunks_parse(std::string_view text, size_t* n) noexcept;

// The head of the cookie NAME's value.
struct ChunkHead {
  size_t count = 1;          // 1: not chunked (slice is the whole value)
  std::string_view slice;    // the value, or the first slice after "<k>."
};

// True if value starts like a head (a digit): the only values chunk_head_parse looks into, so a
// plain envelope costs one comparison.
inline bool chunk_head_like(std::string_view value) noexcept {
  return !value.empty() && value[0] >= '0' && value[0] <= '9';
}

// Parses NAME's value. A value that is not head-like is count 1 with slice = value. A head-like
// one must be "<k>.<slice>" with k in 2..kMaxChunks (no leading zero) and a non-empty slice;
// anything else returns false (the cookie is malformed).
bool chunk_head_parse(std::string_view value, ChunkHead* out) noexcept;

// The index of a chunk cookie: cookie_name is session_name "_" i, i canonical decimal in
// 1..kMaxChunks-1. 0 if it is not one.
size_t chunk_index(std::string_view session_name, std::string_view cookie_name) noexcept;

// The chunk cookies NAME_1 .. NAME_15 of a request: call chunk_cookies_collect for each Cookie
// header line. Values are views into the headers, DQUOTEs stripped.
struct ChunkCookies {
  std::string_view value[kMaxChunks];  // the first value of NAME_i ([0] unused)
  uint8_t distinct[kMaxChunks] = {};   // distinct values of NAME_i, saturating at 2
  uint32_t present = 0;                // bit i: NAME_i was sent
};
void chunk_cookies_collect(std::string_view header, std::string_view session_name,
                           ChunkCookies& acc) noexcept;

enum class ChunkJoin : uint8_t {
  Ok,
  Missing,    // NAME_i (i < count) was not sent, or sent empty
  Duplicate,  // NAME_i (i < count) was sent with two different values
};

// Replaces out with head.slice | NAME_1 | ... | NAME_{count-1}. On failure out is empty.
ChunkJoin chunk_join(const ChunkHead& head, const ChunkCookies& chunks, pstring& out);

// Reading NAME's value under chunks=max_chunks: chunk_assemble joins a head-like value
// (chunk_head_like) with its chunks into joined, or says why it cannot be a session.
enum class ChunkRead : uint8_t {
  Ok,         // joined holds the value to verify as one envelope
  BadHead,    // head-like but not "<k>.<slice>" with 2 <= k <= kMaxChunks
  TooMany,    // k > max_chunks (chunks= lowered, or forged): not read
  Missing,    // ChunkJoin::Missing
  Duplicate,  // ChunkJoin::Duplicate
};
ChunkRead chunk_assemble(std::string_view value, size_t max_chunks, const ChunkCookies& chunks,
                         pstring& joined);
// A static text for the log ("a chunk cookie is missing", ...); nullptr for Ok.
const char* chunk_read_text(ChunkRead r) noexcept;

// How a value of value_len bytes is written in at most max_chunks cookies whose Set-Cookie line
// may be at most line_max bytes. line_overhead is the length of NAME's line without its value
// (cookie_build(NAME, "", attrs)); NAME_i's line is 1 + digits(i) longer, the head's value
// digits(k) + 1 longer. The fewest cookies are used; all but the last are filled up.
struct ChunkSplit {
  size_t count = 0;             // cookies; 0: the value does not fit in max_chunks of them
  size_t len[kMaxChunks] = {};  // slice lengths (len[0] without the head)
  size_t capacity = 0;          // count 0: the most value bytes max_chunks cookies can hold
};
ChunkSplit chunk_split(size_t value_len, size_t line_overhead, size_t max_chunks,
                       size_t line_max = kMaxSetCookieLen) noexcept;

// The name of chunk i (i >= 1): NAME "_" i, appended to out.
void chunk_name(std::string_view session_name, size_t i, pstring& out);

// The value of cookie i of a split of value, appended to out: the whole value for count 1, the
// head "<k>." and slice 0 for i = 0, else slice i.
void chunk_value(const ChunkSplit& split, std::string_view value, size_t i, pstring& out);

// The chunk cookies a response that writes count cookies (0: it expires the session cookie)
// expires: every chunk the request sent that is not rewritten. Bit i: expire NAME_i.
inline uint32_t chunk_stale(uint32_t present, size_t count) noexcept {
  uint32_t keep = count >= 32 ? ~0u : (1u << count) - 1;  // bits 0 .. count-1
  return present & ~keep & ~1u;
}

}  // namespace sess
