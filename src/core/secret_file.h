// session_secret_file: one secret per line.
//
//   - lines are split on '\n'; a trailing '\r' and leading/trailing blanks (space, tab, \v, \f)
//     are trimmed, so an indented comment is still a comment;
//   - an empty line, or one whose first non-blank byte is '#', is skipped;
//   - "base64:<data>" is the decoded bytes of <data> (standard or URL-safe alphabet, padding
//     optional, no blanks inside): for keys with bytes that the trimming would lose;
//   - every other line is the secret as written (after trimming).
// Each secret must be at least min_len bytes (after decoding) unless allow_short is set, in which
// case short secrets are kept and counted in `short_lines` (flask mode warns about them).
#pragma once

#include "common.h"

#include <string>
#include <vector>

namespace sess {

enum class SecretFileError : uint8_t { None, TooShort, BadBase64, NoSecret, Binary };

struct SecretFile {
  std::vector<std::string> secrets;       // in file order; the first signs
  std::vector<size_t> lines;              // the line number (1-based) of each secret
  size_t short_lines = 0;                 // with allow_short: secrets shorter than min_len
  SecretFileError error = SecretFileError::None;
  size_t error_line = 0;                  // 1-based line of the error (0 for NoSecret)
};

// Binary: a NUL byte in a line that is not base64: (a key file written by mistake with
// `head -c 32 /dev/urandom` should use base64:). Returns false with out->error set.
bool secret_file_parse(std::string_view text, size_t min_len, bool allow_short,
                       SecretFile* out);

// Decodes standard or URL-safe base64 with optional '=' padding. False on any other byte, a bad
// length or bad padding.
bool base64_decode_any(std::string_view in, std::string* out);

}  // namespace sess
