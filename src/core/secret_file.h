// session_secret_file: one secret per line.
//
//   - a UTF-8 byte order mark at the start of the file is ignored (so that "# ..." on the first
//     line of a file saved by a Windows editor is still a comment);
//   - lines are split on '\n'; leading and trailing blanks (space, tab, \v, \f, \r: so CRLF files
//     work) are trimmed, so an indented comment is still a comment;
//   - an empty line, or one whose first non-blank byte is '#', is skipped;
//   - "base64:<data>" is the decoded bytes of <data> (standard or URL-safe alphabet, padding
//     optional, no blanks inside; empty data is BadBase64): for keys with bytes that the trimming
//     would lose or that are control bytes;
//   - every other line is the secret as written (after trimming); a control byte (0x00-0x1f,
//     0x7f) left inside it is Binary.
// Each secret must be at least min_len bytes (after decoding) unless allow_short is set, in which
// case short secrets are kept and counted in `short_lines` (flask mode warns about them).
// Parsing stops at the first error; secrets and lines are then empty.
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

// Binary: a control byte (NUL, ESC, ...) in a line that is not base64: (a key file written by
// mistake with `head -c 32 /dev/urandom` should use base64:; 32 random bytes hold a control
// byte 99% of the time, a NUL only 12%). Returns false with out->error set.
bool secret_file_parse(std::string_view text, size_t min_len, bool allow_short,
                       SecretFile* out);

// *out = the decoding of standard or URL-safe base64 (one alphabet per value) with optional '='
// padding. False on any other byte (blanks included), a mix of both alphabets, a bad length, bad
// padding (more than two '=', '=' inside, padding that does not complete a group of four) or
// non-canonical trailing bits.
bool base64_decode_any(std::string_view in, std::string* out);

}  // namespace sess
