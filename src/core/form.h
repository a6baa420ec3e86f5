// application/x-www-form-urlencoded decoding (login POST bodies).
#pragma once

#include "common.h"

#include <utility>
#include <vector>

namespace sess {

using FormFields = std::pmr::vector<std::pair<pstring, pstring>>;

enum class FormResult : uint8_t { Ok, Malformed, TooManyFields };

// Decodes "a=1&b=2": '+' is a space, %XX is a byte; a '%' not followed by two hex digits is
// Malformed. Empty pairs ("&&") are skipped; a pair without '=' has an empty value. More than
// max_fields pairs is TooManyFields. Decoded bytes are kept as they are (may be binary).
FormResult form_decode(std::string_view body, FormFields& out, size_t max_fields = 64);

// The first field named `name`, or nullptr.
const pstring* form_get(const FormFields& fields, std::string_view name) noexcept;

// Percent-decodes in into out (no '+' handling). Returns false on a bad escape.
bool percent_decode(std::string_view in, pstring& out);

}  // namespace sess
