#include "candidates.h"

namespace sess {

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
