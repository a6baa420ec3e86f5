#include "common.h"

namespace sess {

bool ct_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); i++) {
    d |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return d == 0;
}

}  // namespace sess
