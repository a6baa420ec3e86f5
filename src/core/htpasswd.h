// htpasswd users and password verification, same formats as auth_basic_user_file:
// bcrypt ($2y$, $2b$, $2a$), $apr1$ (Apache MD5-crypt), {SHA}, {SSHA}, crypt $5$ / $6$.
//
// verify is thread-safe (crypt_r, no shared state): the glue runs it in nginx's thread pool.
#pragma once

#include "common.h"

namespace sess {

enum class HashKind : uint8_t { Bcrypt, Apr1, Sha1, Ssha, Sha256Crypt, Sha512Crypt, Unknown };

HashKind htpasswd_hash_kind(std::string_view hash) noexcept;

// Splits one line "user:hash" (a trailing CR/LF and anything after a second ':' is ignored, as
// Apache does). Returns false for blank lines, comments ('#') and lines without ':' or with an
// empty user.
bool htpasswd_parse_line(std::string_view line, std::string_view* user,
                         std::string_view* hash) noexcept;

// Finds user in the contents of an htpasswd file (first match). Returns false if absent.
bool htpasswd_find(std::string_view file, std::string_view user, std::string_view* hash) noexcept;

// True if password matches hash. Comparison of the computed and stored hash is constant time.
// Unknown formats never match.
bool htpasswd_verify(std::string_view password, std::string_view hash) noexcept;

// A syntactically valid hash of the same kind and cost as `like` that no password matches in
// practice; verifying against it costs the same time (used for unknown users).
std::string htpasswd_dummy_hash(std::string_view like);

}  // namespace sess
