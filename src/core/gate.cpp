#include "gate.h"

namespace sess {

PhaseLayout phase_layout(const size_t* counts) noexcept {
  PhaseLayout l;
  size_t pos = counts[kPostRead];
  l.server_rewrite = pos;
  pos += counts[kServerRewrite];
  l.find_config = pos;
  pos += 1;
  l.rewrite = pos;
  pos += counts[kRewrite];
  if (counts[kRewrite] != 0) pos += 1;  // post-rewrite
  l.preaccess = pos;
  pos += counts[kPreaccess] + counts[kAccess];
  if (counts[kAccess] != 0) pos += 1;   // post-access
  l.precontent = pos;
  return l;
}

Stage stage_of(const PhaseLayout& l, size_t h) noexcept {
  if (h >= l.precontent) return Stage::Passed;
  if (h >= l.preaccess) return Stage::Access;
  if (h >= l.rewrite) return Stage::Rewrite;
  if (h >= l.server_rewrite && h < l.find_config) return Stage::ServerRewrite;
  return Stage::BeforeLocation;
}

bool writes_allowed(Stage s, bool refused, bool subrequest, bool public_key) noexcept {
  if (subrequest || public_key) return false;
  switch (s) {
    case Stage::Rewrite:
      return !refused;
    case Stage::Passed:
      return !refused;
    default:
      return false;
  }
}

}  // namespace sess
