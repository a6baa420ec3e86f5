// nginx-style durations (see duration.h). Follows ngx_parse_time(is_sec=1) in nginx's
// src/core/ngx_parse.c, and is stricter where nginx is lax by accident:
//   - nginx skips spaces after a unit and takes a space after digits as an end ("1h 30m", "30 ");
//     here any byte other than a digit or a unit letter is refused;
//   - nginx accepts a unit without digits once some digits were seen ("1hm" = 1h); here every
//     unit needs its own digits;
//   - nginx adds a bare number after 's' ("1s30" = 31 s); here a bare number must follow a unit
//     larger than seconds (or stand alone).
#include "duration.h"

#include <limits>

namespace sess {

namespace {

// Units in nginx's order, largest first; the index is the "step" (a unit's step must be larger
// than the previous one's).
struct Unit {
  char letter;
  int64_t seconds;
};

constexpr Unit kUnits[] = {
    {'y', 60LL * 60 * 24 * 365}, {'M', 60LL * 60 * 24 * 30}, {'w', 60LL * 60 * 24 * 7},
    {'d', 60LL * 60 * 24},       {'h', 60LL * 60},           {'m', 60},
    {'s', 1},
};
constexpr int kUnitCount = static_cast<int>(sizeof(kUnits) / sizeof(kUnits[0]));

}  // namespace

bool parse_duration(std::string_view text, int64_t* out) noexcept {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t total = 0;
  int step = -1;  // index in kUnits of the last unit seen
  size_t i = 0;
  const size_t n = text.size();
  if (n == 0) return false;

  while (i < n) {
    // <digits>
    int64_t value = 0;
    const size_t start = i;
    for (; i < n && text[i] >= '0' && text[i] <= '9'; i++) {
      const int d = text[i] - '0';
      if (value > (kMax - d) / 10) return false;
      value = value * 10 + d;
    }
    if (i == start) return false;  // a unit (or anything else) without digits

    // <unit>, or the end: a bare number is seconds and must come last, after larger units.
    int64_t scale = 1;
    if (i == n) {
      if (step >= kUnitCount - 1) return false;  // "1s30"
      step = kUnitCount;
    } else {
      const char c = text[i++];
      if (c == 'm' && i < n && text[i] == 's') return false;  // milliseconds are not seconds
      int u = 0;
      while (u < kUnitCount && kUnits[u].letter != c) u++;
      if (u == kUnitCount) return false;  // unknown unit, sign, space, ...
      if (u <= step) return false;        // repeated or out of order
      step = u;
      scale = kUnits[u].seconds;
    }

    if (value > kMax / scale) return false;
    value *= scale;
    if (total > kMax - value) return false;
    total += value;
  }

  *out = total;
  return true;
}

}  // namespace sess
