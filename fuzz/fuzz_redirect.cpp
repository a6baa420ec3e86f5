// libFuzzer target: the post-login redirect check (src/core/redirect.h).
//
// Input: a `next` value (already form-decoded), any bytes.
// Properties:
//   redirect_is_safe(next) => next starts with '/', its second byte is neither '/' nor '\', every
//                     byte is in 0x21..0x7e and none is '\', it is at most 2048 bytes, and one more
//                     round of percent-decoding succeeds and yields a value that starts the same
//                     way and has no control byte and no '\' (so "/%2F%2Fevil", "/%5Cevil",
//                     "/%0d%0a" are refused). Decoded, a space after the second byte ("/a%20b")
//                     and bytes >= 0x80 ("/caf%C3%A9") are allowed: the Location header carries
//                     the encoded form, which browsers keep as a path.
//   It agrees with a reference implementation of exactly that rule (both directions).
//   query_escape    => only unreserved characters, '/' and %XX; percent_decode gives the input.
//   The same for "/" + next; and query_escape(safe next) is itself safe (when <= 2048 bytes).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "form.h"
#include "redirect.h"

#include "fuzz_check.h"

namespace {

bool printable_no_backslash(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7e || c == '\\') return false;
  }
  return true;
}

bool path_shape(std::string_view s) {
  if (s.empty() || s[0] != '/') return false;
  if (s.size() >= 2 && (s[1] == '/' || s[1] == '\\')) return false;
  return printable_no_backslash(s);
}

// After one round of percent-decoding: same start, no control byte, no backslash; a space is
// fine after the second byte, bytes >= 0x80 anywhere after the first.
bool decoded_shape(std::string_view s) {
  if (s.empty() || s[0] != '/') return false;
  if (s.size() >= 2 && (s[1] == '/' || s[1] == '\\' || s[1] == ' ')) return false;
  for (size_t i = 0; i < s.size(); i++) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c == '\\') return false;
  }
  return true;
}

// The documented rule, spelled out with the library's own percent decoder.
bool ref_safe(std::string_view next) {
  if (next.size() > 2048 || !path_shape(next)) return false;
  sess::pstring dec;
  if (!sess::percent_decode(next, dec)) return false;
  return decoded_shape(dec);
}

void check(std::string_view next) {
  const bool safe = sess::redirect_is_safe(next);
  FUZZ_CHECK(safe == ref_safe(next));
  if (safe) {
    // The properties the login handler relies on, stated without reference to the reference.
    FUZZ_CHECK(!next.empty() && next.size() <= 2048 && next[0] == '/');
    FUZZ_CHECK(next.size() < 2 || (next[1] != '/' && next[1] != '\\'));
    for (unsigned char c : next) FUZZ_CHECK(c >= 0x21 && c <= 0x7e && c != '\\');
    sess::pstring dec;
    FUZZ_CHECK(sess::percent_decode(next, dec));
    FUZZ_CHECK(!dec.empty() && dec[0] == '/');
    FUZZ_CHECK(dec.size() < 2 || (dec[1] != '/' && dec[1] != '\\'));
    for (unsigned char c : dec) FUZZ_CHECK(c >= 0x20 && c != 0x7f && c != '\\');
  }
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~' || c == '/';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view next(reinterpret_cast<const char*>(data), size);
  check(next);
  check("/" + std::string(next));

  sess::pstring q("p");
  sess::query_escape(next, q);
  FUZZ_CHECK(q[0] == 'p');
  for (size_t i = 1; i < q.size(); i++) {
    const auto c = static_cast<unsigned char>(q[i]);
    if (c == '%') {
      FUZZ_CHECK(i + 2 < q.size());
      i += 2;
    } else {
      FUZZ_CHECK(unreserved(c));
    }
  }
  sess::pstring back;
  FUZZ_CHECK(sess::percent_decode(std::string_view(q).substr(1), back));
  FUZZ_CHECK(std::string_view(back) == next);
  // The escaped form of a safe path prefixed with '/' is itself safe (used for ?next=...).
  if (sess::redirect_is_safe(next)) {
    sess::pstring esc;
    sess::query_escape(next, esc);
    if (esc.size() <= 2048) FUZZ_CHECK(sess::redirect_is_safe(esc));
  }
  return 0;
}
