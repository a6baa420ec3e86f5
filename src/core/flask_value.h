// Python session values, as Flask's tagged JSON, pickle and msgpack carry them: the tree the
// three codecs share, its JSON text (Python's json module), and Flask's tagging.
//
// Two forms of one tree:
//   JSON form   - what the JSON text holds: None, Bool, Int, Float, Str, List, Dict. Tagged
//                 values are plain dicts ({" t": [...]}, {" b": "..."}, {" di": {...}}, ...).
//   object form - what Python holds: also Tuple, Bytes, and Tagged (a " u", " d" or " m"
//                 value, kept as its tag and JSON payload: pickle and msgpack cannot hold it).
// flask_tag / flask_untag convert as flask.json.tag.TaggedJSONSerializer does.
//
// Limits (every reader): nesting deeper than kFlaskMaxDepth or more than kFlaskMaxNodes values in
// one document are refused. Strings are UTF-8, except that a lone UTF-16 surrogate (Python str
// allows them, JSON escapes them) is held as its 3-byte generalized UTF-8 form (ED A0..BF xx).
// Nothing here throws: failures (allocation included) return false.
#pragma once

#include "common.h"

#include <string>
#include <vector>

namespace sess {

constexpr size_t kFlaskMaxDepth = 32;
constexpr size_t kFlaskMaxNodes = 20000;

struct FlaskValue {
  enum class Type : uint8_t { None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict, Tagged };
  Type type = Type::None;
  bool b = false;
  // Int: decimal text ("-12", any size); Float: the number's text (Python repr / JSON text,
  // "NaN", "Infinity", "-Infinity" included); Str: the string; Bytes: the bytes;
  // Tagged: the tag (" u", " d" or " m").
  std::string text;
  std::vector<FlaskValue> items;  // List, Tuple, Dict values, Tagged payload (one)
  std::vector<std::string> keys;  // Dict keys (str), keys[i] belongs to items[i]

  FlaskValue() = default;
  explicit FlaskValue(Type t) : type(t) {}
};

// Parses one JSON value as Python's json.loads does (NaN, Infinity, -Infinity accepted;
// duplicate keys: the last value at the first key's position; surrounding whitespace allowed).
// Numbers keep their text. Refused: malformed JSON, control bytes in strings, invalid UTF-8,
// a NUL anywhere outside a \u0000 escape, the limits above. The result is in JSON form.
bool flask_json_parse(std::string_view json, FlaskValue& out) noexcept;

// Appends the JSON text of a JSON-form tree as Python's json.dumps(v, separators=(",", ":"),
// ensure_ascii=True) writes it, with sort_keys=True if sorted (keys ordered by code point)
// else in the tree's order. False for a tree that is not in JSON form.
bool flask_json_write(const FlaskValue& v, bool sorted, pstring& out) noexcept;

// True if s is UTF-8 in which UTF-16 surrogates are allowed (a Python str, as pickle's
// BINUNICODE carries it with "surrogatepass").
bool flask_wtf8_valid(std::string_view s) noexcept;

// True if s is well-formed UTF-8 (RFC 3629: no surrogates).
bool flask_utf8_valid(std::string_view s) noexcept;

// The double of a Float's text as Python's float() reads it: NaN, Infinity, -Infinity, and
// decimal text whose overflow is +-inf and underflow +-0.0. False for other text.
bool flask_float_parse(std::string_view text, double* out) noexcept;

// Python's repr() of a double as json.dumps writes floats (float.__repr__; NaN, Infinity,
// -Infinity for the special values). Throws only std::bad_alloc.
void flask_float_repr(double d, std::string& out);

// Object form -> JSON form (TaggedJSONSerializer.tag) and back (its object_hook, bottom-up).
// flask_untag fails on a " t" that holds no list or a " b" that holds no base64 text.
bool flask_tag(const FlaskValue& obj, FlaskValue& out) noexcept;
bool flask_untag(const FlaskValue& json, FlaskValue& out) noexcept;

// Standard base64 with padding (Python's b64encode / a strict b64decode), for " b".
void flask_b64std_encode(std::string_view in, std::string& out);
bool flask_b64std_decode(std::string_view in, std::string& out);

}  // namespace sess
