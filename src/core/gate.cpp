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

}  // namespace sess
