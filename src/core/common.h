// Shared helpers for the pure C++17 core. No nginx headers here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <string>
#include <string_view>

namespace sess {

// All request-lifetime strings in the core are std::pmr::string so that the nginx glue can back
// them with the request pool (see src/ngx_http_session_pool.h); unit tests use the default heap.
using pstring = std::pmr::string;

// True for bytes 0x00-0x1f and 0x7f.
inline bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// True if any byte of s is a control byte (CR, LF, NUL, TAB, DEL, ...).
bool has_ctl(std::string_view s) noexcept;

// Constant-time comparison: time depends only on the lengths.
bool ct_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace sess
