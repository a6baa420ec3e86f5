// Which of several session cookies of the same name is the session (cookie tossing defence).
//
// A browser sends every cookie whose domain and path match, so a sibling subdomain can plant a
// second cookie of our name for the parent domain. Every candidate is verified; then
//   - exactly one verifies and is within its lifetime  -> that one is the session;
//   - two or more (different values) verify            -> no session: Invalid, `tossing` set
//     (a sibling planted its own valid session; picking either could log the user in as
//     someone else);
//   - none verifies: Expired if one verified but has expired, else Invalid; None if there was
//     no candidate at all.
// The caller never expires a cookie because of a duplicate (read-only requests never write).
#pragma once

#include "common.h"

namespace sess {

enum class LoadStatus : uint8_t { None, Valid, Expired, Invalid, Error };

enum class CandidateVerdict : uint8_t { Malformed, BadMac, FutureDated, Expired, Valid };

struct Selection {
  LoadStatus status = LoadStatus::None;
  size_t index = 0;       // the chosen candidate (Valid), or the expired one (Expired)
  bool tossing = false;   // two or more candidates verified
};

// (Inline: on every request.)
inline Selection select_candidate(const CandidateVerdict* v, size_t n) noexcept {
  Selection s;
  if (n == 0) return s;
  size_t valid = 0;
  bool expired = false;
  for (size_t i = 0; i < n; i++) {
    if (v[i] == CandidateVerdict::Valid) {
      if (valid++ == 0) s.index = i;
    }
  }
  if (valid == 1) {
    s.status = LoadStatus::Valid;
    return s;
  }
  if (valid > 1) {
    s.status = LoadStatus::Invalid;
    s.tossing = true;
    s.index = 0;
    return s;
  }
  for (size_t i = 0; i < n; i++) {
    if (v[i] == CandidateVerdict::Expired) {
      expired = true;
      s.index = i;
      break;
    }
  }
  s.status = expired ? LoadStatus::Expired : LoadStatus::Invalid;
  return s;
}

// The same choice when another reader shares the cookie and picks by position, not by validity
// (Flask takes the first cookie of the name): authentic[i] says that candidate i's signature
// verified, whatever came after (expired, or a payload that does not decode here). Two or more
// authentic candidates are tossing even if only one is Valid here, since the app may act on the
// other one while nginx approves this one.
Selection select_candidate_shared(const CandidateVerdict* v, const bool* authentic,
                                  size_t n) noexcept;

}  // namespace sess
