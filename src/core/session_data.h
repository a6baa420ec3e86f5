// The session data model (a flat map of keys to values) and its JSON codec.
//
// The wire form is one JSON object. Values that are JSON strings are kept decoded (what
// $session_<key> shows verbatim); any other JSON value (number, bool, null, array, object) is kept
// as compact JSON text. Keys keep insertion order.
#pragma once

#include "common.h"

#include <vector>

namespace sess {

struct SessionValue {
  pstring key;
  pstring text;          // decoded string, or compact JSON text
  bool is_string = true;

  explicit SessionValue(std::pmr::memory_resource* mr) : key(mr), text(mr) {}
};

class SessionData {
 public:
  static constexpr size_t kMaxDepth = 16;      // nesting limit when decoding
  static constexpr size_t kMaxKeys = 256;

  explicit SessionData(std::pmr::memory_resource* mr = std::pmr::get_default_resource());

  // Replaces the contents with the JSON object in json. Returns false (and leaves the data empty)
  // on malformed JSON, a top-level value that is not an object, nesting deeper than kMaxDepth,
  // more than kMaxKeys keys, invalid UTF-8 escapes or trailing garbage. Duplicate keys: last wins.
  bool decode(std::string_view json);

  // Appends the compact JSON object to out.
  void encode(pstring& out) const;

  const SessionValue* get(std::string_view key) const noexcept;

  // The value whose key equals key without regard to ASCII case (nginx lowercases variable
  // names: $session_userId looks for "userid"). nullptr if none; if two keys differ only in
  // case, nullptr and *ambiguous = true (else *ambiguous = false; ambiguous may be nullptr).
  const SessionValue* get_ci(std::string_view key, bool* ambiguous) const noexcept;
  void set_string(std::string_view key, std::string_view value);
  void set_json(std::string_view key, std::string_view json_text);  // text must be valid JSON
  bool erase(std::string_view key);
  void clear() noexcept;
  bool empty() const noexcept { return values_.empty(); }
  size_t size() const noexcept { return values_.size(); }
  const std::pmr::vector<SessionValue>& values() const noexcept { return values_; }

 private:
  std::pmr::memory_resource* mr_;
  std::pmr::vector<SessionValue> values_;
};

// A session is logged in when its user key holds a non-empty JSON string (a user literally named
// "null" is a user; numbers, booleans, null, arrays and objects log nobody in).
bool session_user_logged_in(const SessionValue* user) noexcept;

// Session keys usable in session_set and $session_<key>: 1-64 bytes of [A-Za-z0-9_].
bool session_key_valid(std::string_view key) noexcept;

}  // namespace sess
