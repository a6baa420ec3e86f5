// nginx-style durations in seconds ("30", "30s", "10m", "2h", "31d", "1w", "1M", "1y", "1h30m").
//
// Same grammar as nginx's ngx_parse_time(is_sec=1): one or more <digits><unit> groups, units in
// strictly decreasing order (y M w d h m s; a bare number means seconds and may only come last),
// no spaces, no sign. y = 365 days, M = 30 days, w = 7 days. Overflow, an empty string, a unit
// repeated or out of order, "ms" and unknown units are refused. Where nginx is lax ("1h 30m",
// "1hm", "1s30") this parser refuses. The result can be as large as INT64_MAX: a caller that
// adds it to a time clamps.
#pragma once

#include "common.h"

namespace sess {

// True and *out = seconds, or false (out untouched).
bool parse_duration(std::string_view text, int64_t* out) noexcept;

}  // namespace sess
