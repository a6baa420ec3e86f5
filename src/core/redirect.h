// Safe post-login redirects and the `next` parameter.
#pragma once

#include "common.h"

namespace sess {

// True if next (already form-decoded) is a same-origin path that every browser resolves on this
// site: starts with a single '/', is followed by neither '/' nor '\', contains only printable
// ASCII (0x21-0x7e; no space, no control bytes, no backslash anywhere), and after one more round
// of percent-decoding still starts with a single '/' not followed by '/' or '\' and has no
// control bytes and no backslash (so "/%2F%2Fevil", "/%5Cevil", "/%0d%0a" are rejected). After
// that decoding a space inside the path and bytes >= 0x80 are allowed: the redirect sends the
// encoded form, which browsers keep as a path ("/a%20b", "/caf%C3%A9"). At most 2048 bytes.
bool redirect_is_safe(std::string_view next) noexcept;

// Appends in to out percent-encoded for use as a query-string value (everything except
// unreserved characters and '/' is escaped).
void query_escape(std::string_view in, pstring& out);

}  // namespace sess
