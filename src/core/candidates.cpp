#include "candidates.h"

namespace sess {

Selection select_candidate(const CandidateVerdict* v, size_t n) noexcept {
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

Selection select_candidate_shared(const CandidateVerdict* v, const bool* authentic,
                                  size_t n) noexcept {
  size_t signed_ok = 0;
  for (size_t i = 0; i < n; i++) {
    if (authentic[i] || v[i] == CandidateVerdict::Valid) signed_ok++;
  }
  if (signed_ok > 1) {
    Selection s;
    s.status = LoadStatus::Invalid;
    s.tossing = true;
    return s;
  }
  return select_candidate(v, n);
}

}  // namespace sess
