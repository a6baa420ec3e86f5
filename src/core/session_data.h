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
  // (Made with its bytes: a copy construction, cheaper than assigning to empty strings.)
  SessionValue(std::pmr::memory_resource* mr, std::string_view k, std::string_view t, bool s)
      : key(k.data(), k.size(), mr), text(t.data(), t.size(), mr), is_string(s) {}
};

class SessionData {
 public:
  static constexpr size_t kMaxDepth = 16;      // nesting limit when decoding
  static constexpr size_t kMaxKeys = 256;

  // (Inline: every request with a session constructs one, and an out-of-line constructor in
  // another translation unit was a cold call of its own.)
  explicit SessionData(std::pmr::memory_resource* mr = std::pmr::get_default_resource())
      : mr_(mr), values_(mr) {}

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
  // Replaces the contents with a copy of other's values, allocated from this object's resource.
  void assign(const SessionData& other);
  void clear() noexcept;
  void reserve(size_t n) {
    forget_user();  // (the values may move)
    values_.reserve(n);
  }
  // Appends a value whose key is not in the data yet (the caller knows: no search).
  void append(std::string_view key, std::string_view text, bool is_string);
  bool empty() const noexcept { return values_.empty(); }
  size_t size() const noexcept { return values_.size(); }
  const std::pmr::vector<SessionValue>& values() const noexcept { return values_; }

  // session_user's answer for user_key if it is remembered (see user_memo_ below).
  bool user_known(std::string_view user_key, const SessionValue** user) const noexcept {
    if (user_key.size() > UserMemo::kMaxKey || user_memo_.key_len != user_key.size() ||
        !bytes_equal(user_memo_.key, user_key.data(), user_key.size())) {
      return false;
    }
    *user = user_memo_.user;
    return true;
  }

 private:
  friend const SessionValue* session_user_lookup(const SessionData& data,
                                                 std::string_view user_key) noexcept;

  // session_user's last answer for these values (it is asked by session_require and again by
  // $session_user, and a verified cookie's decoded data outlives the request): a function of the
  // values and the key only, so every change forgets it, and a copy or move starts without one
  // (its pointer would be into the other object's values), as does the object moved from (its
  // values went with the move). Keys over kMaxKey are not kept.
  struct UserMemo {
    static constexpr size_t kMaxKey = 23;  // (32 bytes in all: every ctx has one)
    static constexpr uint8_t kNone = 0xff;
    uint8_t key_len = kNone;
    char key[kMaxKey];
    const SessionValue* user = nullptr;
    UserMemo() noexcept = default;
    UserMemo(const UserMemo&) noexcept {}
    UserMemo(UserMemo&& from) noexcept { from.key_len = kNone; }  // (its values went too)
    UserMemo& operator=(const UserMemo&) noexcept {
      key_len = kNone;
      return *this;
    }
    UserMemo& operator=(UserMemo&& from) noexcept {
      key_len = kNone;
      from.key_len = kNone;
      return *this;
    }
  };
  void forget_user() noexcept { user_memo_.key_len = UserMemo::kNone; }

  std::pmr::memory_resource* mr_;
  std::pmr::vector<SessionValue> values_;
  mutable UserMemo user_memo_;
};

// One value of the session JSON object on its own (a v2 record keeps each value in its own hash
// field). decode_session_value parses json as one JSON value of any type and fills out.text and
// out.is_string exactly as decode fills a top-level value (a string decoded, anything else as
// compact JSON text; the same nesting limit counted from the value; the same refusals: malformed
// JSON, invalid UTF-8 or escapes, a NUL byte, trailing garbage). out.key is left alone; on
// failure out.text is empty. encode_session_value appends the value's JSON text as encode writes
// it, so decode_session_value of that text gives the value back (for well-formed UTF-8 strings).
bool decode_session_value(std::string_view json, SessionValue& out);
void encode_session_value(const SessionValue& v, pstring& out);

// Appends s as a JSON string literal, as encode writes keys and string values: '"' and '\' are
// backslash-escaped, control bytes (and DEL) become \u00XX, well-formed UTF-8 is copied as is,
// and bytes that are not part of well-formed UTF-8 become \ufffd, so that the output is always
// valid JSON.
void append_json_string(std::string_view s, pstring& out);

// True if s is well-formed UTF-8 (RFC 3629).
bool utf8_well_formed(std::string_view s) noexcept;

// A string as it reads back from a session: s with every byte that does not start a well-formed
// UTF-8 sequence replaced by U+FFFD, as append_json_string writes it. s itself when it is
// well-formed (nothing copied), else a view of out. A user name that an action sets is indexed,
// compared and ended under this form, the one every later request sees.
std::string_view utf8_as_stored(std::string_view s, pstring& out);

// A session is logged in when its user key holds a non-empty JSON string (a user literally named
// "null" is a user; numbers, booleans, null, arrays and objects log nobody in).
inline bool session_user_logged_in(const SessionValue* user) noexcept {
  return user != nullptr && user->is_string && !user->text.empty();
}

// The user of a session: the value whose key is exactly user_key, or nullptr when there is none
// or when another key differs from it only in ASCII case ({"username":"alice","USERNAME":"x"}):
// $session_user is looked up without regard to case, session_require and the login flow by the
// exact key, and an app (Flask's session['username']) by the exact key too, so a session where
// these could disagree has no user at all. Every user check goes through here.
// (Inline: asked on every request, and remembered by the data until it changes.)
const SessionValue* session_user_lookup(const SessionData& data, std::string_view user_key) noexcept;
inline const SessionValue* session_user(const SessionData& data,
                                        std::string_view user_key) noexcept {
  const SessionValue* user;
  return data.user_known(user_key, &user) ? user : session_user_lookup(data, user_key);
}
// Sets the user (a login): user_key = user, and every key that differs from it only in case is
// removed, so that session_user finds it.
void set_session_user(SessionData& data, std::string_view user_key, std::string_view user);

// Session keys usable in session_set and $session_<key>: 1-64 bytes of [A-Za-z0-9_].
bool session_key_valid(std::string_view key) noexcept;

}  // namespace sess
