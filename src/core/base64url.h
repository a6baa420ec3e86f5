// base64url (RFC 4648 section 5) without padding, as used in cookie values.
#pragma once

#include "common.h"

namespace sess {

constexpr size_t base64url_encoded_len(size_t n) noexcept {
  // Every full group of 3 bytes becomes 4 characters; a tail of 1 or 2 bytes becomes 2 or 3.
  return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

// Appends the encoding of in to out.
void base64url_encode(std::string_view in, pstring& out);

// Writes the base64url_encoded_len(n) characters encoding in[0..n) to dst. The ranges must not
// overlap. For callers that build a value in a buffer they already own (envelope_seal encodes
// into the output string's spare room instead of allocating a temporary).
void base64url_encode_to(const unsigned char* in, size_t n, char* dst) noexcept;

// Appends the decoding of in to out. Returns false (out unspecified) on any byte outside the
// alphabet, on '=' padding, or on an impossible length (len % 4 == 1) or non-canonical trailing
// bits.
bool base64url_decode(std::string_view in, pstring& out);

// The same into dst, which has room for base64url_decoded_len(in.size()) bytes (dst unspecified
// on false). base64url_decoded_len: the bytes n characters decode to (n % 4 != 1).
size_t base64url_decoded_len(size_t n) noexcept;
bool base64url_decode_to(std::string_view in, unsigned char* dst) noexcept;

}  // namespace sess
