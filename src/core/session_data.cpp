// The session data model and its JSON codec (rapidjson SAX reader, hand-written compact writer).
#include "session_data.h"

#include <cstring>
#include <limits>

#include <rapidjson/reader.h>

namespace sess {

namespace {

// ---------------------------------------------------------------------------------------------
// UTF-8

// Length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, no surrogates, at most
// U+10FFFF) at p[0..n), or 0 if there is none.
size_t utf8_seq_len(const unsigned char* p, size_t n) noexcept {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  auto cont = [&](size_t i, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
    return i < n && p[i] >= lo && p[i] <= hi;
  };
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c == 0xe0) return cont(1, 0xa0, 0xbf) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;  // no UTF-16 surrogates
  if (c == 0xf0) return cont(1, 0x90, 0xbf) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

bool utf8_valid(const char* s, size_t n) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s);
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    const size_t l = utf8_seq_len(p + i, n - i);
    if (l == 0) return false;
    i += l;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Writing

constexpr char kHex[] = "0123456789abcdef";

bool needs_escape(unsigned char c) noexcept { return c < 0x20 || c == 0x7f || c == '"' || c == '\\'; }

// ---------------------------------------------------------------------------------------------
// Reading

// SAX handler: the top-level object fills values; anything nested below a top-level key is
// re-serialised compactly into that value's text. In value mode the document is one value that
// fills *value exactly as a value of the top-level object would be filled (same depth limit).
class DecodeHandler {
 public:
  using SizeType = rapidjson::SizeType;

  DecodeHandler(std::pmr::vector<SessionValue>& values, std::pmr::memory_resource* mr) noexcept
      : values_(&values), mr_(mr) {}
  explicit DecodeHandler(SessionValue* value) noexcept
      : current_(value), depth_(1), started_(true), value_mode_(true) {}

  bool Null() { return Scalar("null", 4); }
  bool Bool(bool b) { return b ? Scalar("true", 4) : Scalar("false", 5); }
  // With kParseNumbersAsStringsFlag every number arrives through RawNumber (original text).
  bool Int(int) { return false; }
  bool Uint(unsigned) { return false; }
  bool Int64(int64_t) { return false; }
  bool Uint64(uint64_t) { return false; }
  bool Double(double) { return false; }
  bool RawNumber(const char* s, SizeType len, bool) { return Scalar(s, len); }

  bool String(const char* s, SizeType len, bool) {
    if (!utf8_valid(s, len)) return false;  // e.g. a lone low surrogate escape "\udc00"
    if (depth_ == 1) {
      if (current_ == nullptr) return false;
      current_->text.assign(s, len);
      current_->is_string = true;
      current_ = nullptr;
      return true;
    }
    if (!BeginNested()) return false;
    append_json_string(std::string_view(s, len), current_->text);
    return true;
  }

  bool Key(const char* s, SizeType len, bool) {
    if (!utf8_valid(s, len)) return false;
    const std::string_view key(s, len);
    if (depth_ == 1) {
      if (values_ == nullptr || ++keys_ > SessionData::kMaxKeys) return false;
      current_ = nullptr;
      for (auto& v : *values_) {
        if (std::string_view(v.key) == key) {  // duplicate: last value wins, first position kept
          current_ = &v;
          break;
        }
      }
      if (current_ == nullptr) {
        values_->emplace_back(mr_);
        current_ = &values_->back();
        current_->key.assign(key.data(), key.size());
      }
      current_->text.clear();
      return true;
    }
    if (!BeginNested()) return false;
    pstring& t = current_->text;
    append_json_string(key, t);
    t.push_back(':');
    after_key_ = true;
    return true;
  }

  bool StartObject() { return Start('{'); }
  bool EndObject(SizeType) { return End('}'); }
  bool StartArray() { return Start('['); }
  bool EndArray(SizeType) { return End(']'); }

  bool done() const noexcept {
    return value_mode_ ? depth_ == 1 && current_ == nullptr : depth_ == 0 && started_;
  }

 private:
  // Called before every value or key below the top-level object: writes the separator.
  bool BeginNested() {
    if (depth_ == 0 || current_ == nullptr) return false;  // top-level value that is no object
    if (after_key_) {
      after_key_ = false;
    } else {
      if (!first_[depth_]) current_->text.push_back(',');
      first_[depth_] = false;
    }
    return true;
  }

  bool Scalar(const char* s, size_t len) {
    if (depth_ == 1) {
      if (current_ == nullptr) return false;
      current_->text.assign(s, len);
      current_->is_string = false;
      current_ = nullptr;
      return true;
    }
    if (!BeginNested()) return false;
    current_->text.append(s, len);
    return true;
  }

  bool Start(char open) {
    if (depth_ == 0) {
      if (started_ || open != '{') return false;  // the document must be one object
      started_ = true;
      depth_ = 1;
      return true;
    }
    if (depth_ >= SessionData::kMaxDepth) return false;
    if (depth_ == 1) {
      if (current_ == nullptr) return false;
      current_->is_string = false;
    } else if (!BeginNested()) {
      return false;
    }
    current_->text.push_back(open);
    depth_++;
    first_[depth_] = true;
    return true;
  }

  bool End(char close) {
    if (depth_ == 0) return false;
    depth_--;
    if (depth_ == 0) return true;  // end of the top-level object
    current_->text.push_back(close);
    if (depth_ == 1) current_ = nullptr;  // the top-level value is complete
    return true;
  }

  std::pmr::vector<SessionValue>* values_ = nullptr;  // nullptr in value mode
  std::pmr::memory_resource* mr_ = nullptr;
  SessionValue* current_ = nullptr;  // the top-level value being filled
  size_t depth_ = 0;                 // 1 inside the top-level object
  size_t keys_ = 0;                  // top-level members seen (duplicates included)
  bool started_ = false;
  bool after_key_ = false;           // a nested key was just written: no separator before its value
  bool value_mode_ = false;          // the document is one value (decode_session_value)
  bool first_[SessionData::kMaxDepth + 1] = {};  // per nested level: nothing written yet
};

// Scratch copy of the input for in-situ parsing: on the C stack for typical cookie payloads,
// otherwise from the memory resource, released on return.
class ScratchCopy {
 public:
  ScratchCopy(std::string_view in, std::pmr::memory_resource* mr) : mr_(mr), size_(in.size() + 1) {
    data_ = size_ <= sizeof(local_) ? local_ : static_cast<char*>(mr_->allocate(size_, 1));
    std::memcpy(data_, in.data(), in.size());
    data_[in.size()] = '\0';
  }
  ~ScratchCopy() {
    if (data_ != local_) mr_->deallocate(data_, size_, 1);
  }
  ScratchCopy(const ScratchCopy&) = delete;
  ScratchCopy& operator=(const ScratchCopy&) = delete;
  char* data() noexcept { return data_; }

 private:
  std::pmr::memory_resource* mr_;
  size_t size_;
  char* data_;
  char local_[2048];
};

// Runs the reader over json with handler. False on malformed JSON, a NUL byte or an input too
// long for rapidjson's sizes; exceptions (allocation) pass through.
bool parse_json(std::string_view json, DecodeHandler& handler, std::pmr::memory_resource* mr) {
  // rapidjson's in-situ stream stops at the first NUL; a raw NUL is never valid JSON anyway.
  if (json.empty() || json.size() >= std::numeric_limits<rapidjson::SizeType>::max() ||
      std::memchr(json.data(), '\0', json.size()) != nullptr) {
    return false;
  }
  // In-situ parsing decodes strings (and delimits numbers) inside the scratch copy, so the
  // reader never needs its own stack: no allocation besides the copy and the stored values.
  ScratchCopy copy(json, mr);
  rapidjson::InsituStringStream stream(copy.data());
  rapidjson::Reader reader(nullptr, 0);
  constexpr unsigned kFlags = rapidjson::kParseInsituFlag | rapidjson::kParseValidateEncodingFlag |
                              rapidjson::kParseNumbersAsStringsFlag;
  const rapidjson::ParseResult r = reader.Parse<kFlags>(stream, handler);
  return !r.IsError() && handler.done();
}

bool ascii_iequal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    unsigned char x = static_cast<unsigned char>(a[i]);
    unsigned char y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

bool utf8_well_formed(std::string_view s) noexcept { return utf8_valid(s.data(), s.size()); }

std::string_view utf8_as_stored(std::string_view s, pstring& out) {
  if (utf8_valid(s.data(), s.size())) return s;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  out.clear();
  size_t i = 0;
  while (i < s.size()) {
    const size_t l = utf8_seq_len(p + i, s.size() - i);
    if (l == 0) {
      out.append("\xef\xbf\xbd");
      i++;
    } else {
      out.append(s.data() + i, l);
      i += l;
    }
  }
  return out;
}

void append_json_string(std::string_view s, pstring& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  out.push_back('"');
  size_t run = 0;
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c >= 0x80) {
      const size_t l = utf8_seq_len(p + i, n - i);
      if (l != 0) {
        i += l;
        continue;
      }
      out.append(s.data() + run, i - run);
      out.append("\\ufffd");
      run = ++i;
      continue;
    }
    if (!needs_escape(c)) {
      i++;
      continue;
    }
    out.append(s.data() + run, i - run);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else {
      const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0x0f]};
      out.append(esc, sizeof(esc));
    }
    run = ++i;
  }
  out.append(s.data() + run, n - run);
  out.push_back('"');
}

bool SessionData::decode(std::string_view json) {
  clear();  // (forgets the user; nothing asks for it until decode returns)
  DecodeHandler handler(values_, mr_);
  bool ok = false;
  try {
    ok = parse_json(json, handler, mr_);
  } catch (...) {
    clear();
    throw;
  }
  if (!ok) clear();
  return ok;
}

void SessionData::encode(pstring& out) const {
  size_t len = 2;
  for (const auto& v : values_) len += v.key.size() + v.text.size() + 6;
  out.reserve(out.size() + len);

  out.push_back('{');
  bool first = true;
  for (const auto& v : values_) {
    if (!first) out.push_back(',');
    first = false;
    append_json_string(v.key, out);
    out.push_back(':');
    encode_session_value(v, out);
  }
  out.push_back('}');
}

bool decode_session_value(std::string_view json, SessionValue& out) {
  out.text.clear();
  out.is_string = true;
  DecodeHandler handler(&out);
  bool ok = false;
  try {
    ok = parse_json(json, handler, out.text.get_allocator().resource());
  } catch (...) {
    out.text.clear();
    throw;
  }
  if (!ok) out.text.clear();
  return ok;
}

void encode_session_value(const SessionValue& v, pstring& out) {
  if (v.is_string) {
    append_json_string(v.text, out);
  } else {
    out.append(v.text);
  }
}

const SessionValue* SessionData::get(std::string_view key) const noexcept {
  for (const auto& v : values_) {
    if (std::string_view(v.key) == key) return &v;
  }
  return nullptr;
}

const SessionValue* SessionData::get_ci(std::string_view key, bool* ambiguous) const noexcept {
  const SessionValue* found = nullptr;
  for (const auto& v : values_) {
    if (!ascii_iequal(v.key, key)) continue;
    if (found != nullptr) {
      if (ambiguous != nullptr) *ambiguous = true;
      return nullptr;
    }
    found = &v;
  }
  if (ambiguous != nullptr) *ambiguous = false;
  return found;
}

void SessionData::set_string(std::string_view key, std::string_view value) {
  forget_user();
  for (auto& v : values_) {
    if (std::string_view(v.key) == key) {
      v.text.assign(value.data(), value.size());
      v.is_string = true;
      return;
    }
  }
  SessionValue nv(mr_);
  nv.key.assign(key.data(), key.size());
  nv.text.assign(value.data(), value.size());
  nv.is_string = true;
  values_.push_back(std::move(nv));
}

void SessionData::append(std::string_view key, std::string_view text, bool is_string) {
  forget_user();
  values_.emplace_back(mr_, key, text, is_string);
}

void SessionData::set_json(std::string_view key, std::string_view json_text) {
  forget_user();
  for (auto& v : values_) {
    if (std::string_view(v.key) == key) {
      v.text.assign(json_text.data(), json_text.size());
      v.is_string = false;
      return;
    }
  }
  SessionValue nv(mr_);
  nv.key.assign(key.data(), key.size());
  nv.text.assign(json_text.data(), json_text.size());
  nv.is_string = false;
  values_.push_back(std::move(nv));
}

bool SessionData::erase(std::string_view key) {
  forget_user();
  for (auto it = values_.begin(); it != values_.end(); ++it) {
    if (std::string_view(it->key) == key) {
      values_.erase(it);
      return true;
    }
  }
  return false;
}

void SessionData::assign(const SessionData& other) {
  if (&other == this) return;
  forget_user();
  values_.clear();
  values_.reserve(other.values_.size());
  for (const auto& v : other.values_) {
    SessionValue nv(mr_);
    nv.key.assign(v.key.data(), v.key.size());
    nv.text.assign(v.text.data(), v.text.size());
    nv.is_string = v.is_string;
    values_.push_back(std::move(nv));
  }
}

void SessionData::clear() noexcept {
  forget_user();
  values_.clear();
}

const SessionValue* session_user_lookup(const SessionData& data,
                                        std::string_view user_key) noexcept {
  SessionData::UserMemo& memo = data.user_memo_;
  const SessionValue* found = nullptr;
  for (const auto& v : data.values()) {
    if (bytes_equal(v.key, user_key)) {
      found = &v;
    } else if (ascii_iequal(v.key, user_key)) {
      found = nullptr;  // ambiguous
      break;
    }
  }
  if (user_key.size() <= SessionData::UserMemo::kMaxKey) {
    std::memcpy(memo.key, user_key.data(), user_key.size());
    memo.key_len = static_cast<uint8_t>(user_key.size());
    memo.user = found;
  }
  return found;
}

void set_session_user(SessionData& data, std::string_view user_key, std::string_view user) {
  for (;;) {
    const SessionValue* other = nullptr;
    for (const auto& v : data.values()) {
      if (std::string_view(v.key) != user_key && ascii_iequal(v.key, user_key)) other = &v;
    }
    if (other == nullptr) break;
    pstring key(other->key);
    data.erase(key);
  }
  data.set_string(user_key, user);
}

bool session_key_valid(std::string_view key) noexcept {
  if (key.empty() || key.size() > 64) return false;
  for (unsigned char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace sess
