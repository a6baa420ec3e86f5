// Python values as Flask's codecs carry them: JSON reader/writer in the manner of Python's json
// module, float repr, Flask's tags.
#include "flask_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

namespace sess {

namespace {

using Type = FlaskValue::Type;

constexpr char kHex[] = "0123456789abcdef";

// Length of the generalized UTF-8 sequence at p[0..n) (RFC 3629, but with the UTF-16 surrogates
// U+D800-DFFF allowed) and its code point, or 0.
size_t wtf8_seq(const unsigned char* p, size_t n, uint32_t* cp) noexcept {
  const unsigned char c = p[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  auto cont = [&](size_t i, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
    return i < n && p[i] >= lo && p[i] <= hi;
  };
  if (c >= 0xc2 && c <= 0xdf && cont(1)) {
    *cp = (c & 0x1fu) << 6 | (p[1] & 0x3fu);
    return 2;
  }
  if (c >= 0xe0 && c <= 0xef && cont(1, c == 0xe0 ? 0xa0 : 0x80) && cont(2)) {
    *cp = (c & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu);
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4 && cont(1, c == 0xf0 ? 0x90 : 0x80, c == 0xf4 ? 0x8f : 0xbf) &&
      cont(2) && cont(3)) {
    *cp = (c & 0x07u) << 18 | (p[1] & 0x3fu) << 12 | (p[2] & 0x3fu) << 6 | (p[3] & 0x3fu);
    return 4;
  }
  return 0;
}

void put_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | cp >> 6));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | cp >> 12));
    out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | cp >> 18));
    out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// ---------------------------------------------------------------------------------------------
// Reading (json.scanner / json.decoder, strict=True)

class Parser {
 public:
  explicit Parser(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}

  bool document(FlaskValue& out) {
    ws();
    if (!value(out, 0)) return false;
    ws();
    return p_ == end_;
  }

 private:
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) p_++;
  }
  bool lit(std::string_view s) {
    if (static_cast<size_t>(end_ - p_) < s.size() || std::memcmp(p_, s.data(), s.size()) != 0) {
      return false;
    }
    p_ += s.size();
    return true;
  }
  bool count() { return ++nodes_ <= kFlaskMaxNodes; }

  bool value(FlaskValue& out, size_t depth) {
    if (p_ == end_ || !count()) return false;
    switch (*p_) {
      case '{':
        return object(out, depth + 1);
      case '[':
        return array(out, depth + 1);
      case '"':
        out.type = Type::Str;
        return string(out.text);
      case 'n':
        out.type = Type::None;
        return lit("null");
      case 't':
        out.type = Type::Bool;
        out.b = true;
        return lit("true");
      case 'f':
        out.type = Type::Bool;
        out.b = false;
        return lit("false");
      case 'N':
        out.type = Type::Float;
        out.text = "NaN";
        return lit("NaN");
      case 'I':
        out.type = Type::Float;
        out.text = "Infinity";
        return lit("Infinity");
      default:
        return number(out);
    }
  }

  bool number(FlaskValue& out) {
    const char* s = p_;
    if (lit("-Infinity")) {
      out.type = Type::Float;
      out.text = "-Infinity";
      return true;
    }
    auto digit = [&] { return p_ < end_ && *p_ >= '0' && *p_ <= '9'; };
    if (p_ < end_ && *p_ == '-') p_++;
    if (!digit()) return false;
    if (*p_ == '0') {
      p_++;
    } else {
      while (digit()) p_++;
    }
    bool is_float = false;
    // Python's NUMBER_RE: a fraction or exponent without digits is not part of the number
    // (and then trailing text that makes the document malformed).
    if (p_ + 1 < end_ && *p_ == '.' && p_[1] >= '0' && p_[1] <= '9') {
      is_float = true;
      p_++;
      while (digit()) p_++;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      const char* q = p_ + 1;
      if (q < end_ && (*q == '+' || *q == '-')) q++;
      if (q < end_ && *q >= '0' && *q <= '9') {
        is_float = true;
        p_ = q;
        while (digit()) p_++;
      }
    }
    out.type = is_float ? Type::Float : Type::Int;
    out.text.assign(s, static_cast<size_t>(p_ - s));
    return true;
  }

  bool hex4(uint32_t* v) {
    if (end_ - p_ < 4) return false;
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
      const int h = hex_value(p_[i]);
      if (h < 0) return false;
      r = r << 4 | static_cast<uint32_t>(h);
    }
    p_ += 4;
    *v = r;
    return true;
  }

  bool string(std::string& out) {
    p_++;  // '"'
    out.clear();
    for (;;) {
      const char* run = p_;
      while (p_ < end_) {
        const auto c = static_cast<unsigned char>(*p_);
        if (c == '"' || c == '\\' || c < 0x20) break;
        if (c < 0x80) {
          p_++;
          continue;
        }
        uint32_t cp;
        const size_t l = wtf8_seq(reinterpret_cast<const unsigned char*>(p_),
                                  static_cast<size_t>(end_ - p_), &cp);
        if (l == 0 || (cp >= 0xd800 && cp <= 0xdfff)) return false;  // raw bytes: strict UTF-8
        p_ += l;
      }
      out.append(run, static_cast<size_t>(p_ - run));
      if (p_ == end_) return false;
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        p_++;
        return true;
      }
      if (c < 0x20) return false;  // strict: no raw control characters
      p_++;                        // '\\'
      if (p_ == end_) return false;
      const char e = *p_++;
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t u;
          if (!hex4(&u)) return false;
          if (u >= 0xd800 && u <= 0xdbff && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
            const char* save = p_;
            p_ += 2;
            uint32_t lo;
            if (!hex4(&lo)) return false;
            if (lo >= 0xdc00 && lo <= 0xdfff) {
              u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            } else {
              p_ = save;  // a lone high surrogate; the next escape stands on its own
            }
          }
          put_utf8(u, out);  // lone surrogates: generalized UTF-8
          break;
        }
        default:
          return false;
      }
    }
  }

  bool array(FlaskValue& out, size_t depth) {
    if (depth > kFlaskMaxDepth) return false;
    out.type = Type::List;
    p_++;
    ws();
    if (p_ < end_ && *p_ == ']') {
      p_++;
      return true;
    }
    for (;;) {
      out.items.emplace_back();
      if (!value(out.items.back(), depth)) return false;
      ws();
      if (p_ == end_) return false;
      if (*p_ == ']') {
        p_++;
        return true;
      }
      if (*p_ != ',') return false;
      p_++;
      ws();
    }
  }

  bool object(FlaskValue& out, size_t depth) {
    if (depth > kFlaskMaxDepth) return false;
    out.type = Type::Dict;
    p_++;
    ws();
    if (p_ < end_ && *p_ == '}') {
      p_++;
      return true;
    }
    std::string key;
    for (;;) {
      if (p_ == end_ || *p_ != '"' || !string(key)) return false;
      ws();
      if (p_ == end_ || *p_ != ':') return false;
      p_++;
      ws();
      FlaskValue v;
      if (!value(v, depth)) return false;
      // Duplicate key: the last value, at the first key's position (a Python dict).
      auto it = std::find(out.keys.begin(), out.keys.end(), key);
      if (it != out.keys.end()) {
        out.items[static_cast<size_t>(it - out.keys.begin())] = std::move(v);
      } else {
        out.keys.push_back(key);
        out.items.push_back(std::move(v));
      }
      ws();
      if (p_ == end_) return false;
      if (*p_ == '}') {
        p_++;
        return true;
      }
      if (*p_ != ',') return false;
      p_++;
      ws();
    }
  }

  const char* p_;
  const char* end_;
  size_t nodes_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Writing (json.encoder with ensure_ascii=True)

void put_u(uint32_t u, pstring& out) {
  const char esc[6] = {'\\', 'u', kHex[u >> 12 & 15], kHex[u >> 8 & 15], kHex[u >> 4 & 15],
                       kHex[u & 15]};
  out.append(esc, sizeof(esc));
}

// py_encode_basestring_ascii: '"' '\\' and \b \f \n \r \t by name, everything outside
// ' '..'~' (DEL included) as \uXXXX, above U+FFFF as a surrogate pair.
bool write_string(std::string_view s, pstring& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  out.push_back('"');
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      size_t j = i + 1;
      while (j < n && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '"' && p[j] != '\\') j++;
      out.append(s.data() + i, j - i);
      i = j;
      continue;
    }
    switch (c) {
      case '"': out.append("\\\""); i++; continue;
      case '\\': out.append("\\\\"); i++; continue;
      case '\b': out.append("\\b"); i++; continue;
      case '\f': out.append("\\f"); i++; continue;
      case '\n': out.append("\\n"); i++; continue;
      case '\r': out.append("\\r"); i++; continue;
      case '\t': out.append("\\t"); i++; continue;
      default: break;
    }
    uint32_t cp;
    const size_t l = wtf8_seq(p + i, n - i, &cp);
    if (l == 0) {  // not UTF-8 (only a string nginx was given can hold such bytes)
      put_u(0xfffd, out);
      i++;
      continue;
    }
    if (cp >= 0x10000) {
      const uint32_t v = cp - 0x10000;
      put_u(0xd800 | v >> 10, out);
      put_u(0xdc00 | (v & 0x3ff), out);
    } else {
      put_u(cp, out);
    }
    i += l;
  }
  out.push_back('"');
  return true;
}

bool write_value(const FlaskValue& v, bool sorted, pstring& out) {
  switch (v.type) {
    case Type::None: out.append("null"); return true;
    case Type::Bool: out.append(v.b ? "true" : "false"); return true;
    case Type::Int:
    case Type::Float: out.append(v.text); return !v.text.empty();
    case Type::Str: return write_string(v.text, out);
    case Type::List: {
      out.push_back('[');
      for (size_t i = 0; i < v.items.size(); i++) {
        if (i != 0) out.push_back(',');
        if (!write_value(v.items[i], sorted, out)) return false;
      }
      out.push_back(']');
      return true;
    }
    case Type::Dict: {
      if (v.keys.size() != v.items.size()) return false;
      std::vector<size_t> order(v.keys.size());
      for (size_t i = 0; i < order.size(); i++) order[i] = i;
      if (sorted) {
        // UTF-8 (also generalized) byte order is code point order: Python's str order.
        std::sort(order.begin(), order.end(),
                  [&](size_t a, size_t b) { return v.keys[a] < v.keys[b]; });
      }
      out.push_back('{');
      for (size_t i = 0; i < order.size(); i++) {
        if (i != 0) out.push_back(',');
        if (!write_string(v.keys[order[i]], out)) return false;
        out.push_back(':');
        if (!write_value(v.items[order[i]], sorted, out)) return false;
      }
      out.push_back('}');
      return true;
    }
    case Type::Bytes:
    case Type::Tuple:
    case Type::Tagged:
      return false;  // object form only
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Tags

bool is_tag(std::string_view k) noexcept {
  return k == " di" || k == " t" || k == " b" || k == " m" || k == " u" || k == " d";
}

bool tag_value(const FlaskValue& in, FlaskValue& out, size_t depth) {
  if (depth > kFlaskMaxDepth + 2) return false;
  switch (in.type) {
    case Type::Dict: {
      if (in.keys.size() != in.items.size()) return false;
      if (in.keys.size() == 1 && is_tag(in.keys[0])) {  // TagDict
        out = FlaskValue(Type::Dict);
        out.keys.emplace_back(" di");
        out.items.emplace_back(Type::Dict);
        FlaskValue& inner = out.items.back();
        inner.keys.push_back(in.keys[0] + "__");
        inner.items.emplace_back();
        return tag_value(in.items[0], inner.items.back(), depth + 1);
      }
      out = FlaskValue(Type::Dict);
      out.keys = in.keys;
      out.items.resize(in.items.size());
      for (size_t i = 0; i < in.items.size(); i++) {
        if (!tag_value(in.items[i], out.items[i], depth + 1)) return false;
      }
      return true;
    }
    case Type::Tuple:
    case Type::List: {
      FlaskValue list(Type::List);
      list.items.resize(in.items.size());
      for (size_t i = 0; i < in.items.size(); i++) {
        if (!tag_value(in.items[i], list.items[i], depth + 1)) return false;
      }
      if (in.type == Type::List) {
        out = std::move(list);
        return true;
      }
      out = FlaskValue(Type::Dict);
      out.keys.emplace_back(" t");
      out.items.push_back(std::move(list));
      return true;
    }
    case Type::Bytes: {
      out = FlaskValue(Type::Dict);
      out.keys.emplace_back(" b");
      out.items.emplace_back(Type::Str);
      flask_b64std_encode(in.text, out.items.back().text);
      return true;
    }
    case Type::Tagged: {
      if (in.items.size() != 1 || !(in.text == " u" || in.text == " d" || in.text == " m")) {
        return false;
      }
      // The payload was untagged like any value (a " u" of a list of tuples, say): tag it back.
      out = FlaskValue(Type::Dict);
      out.keys.push_back(in.text);
      out.items.emplace_back();
      return tag_value(in.items[0], out.items.back(), depth + 1);
    }
    default:
      out = in;
      return true;
  }
}

// key[:-2] on code points.
std::string drop_two_code_points(const std::string& k) {
  size_t end = k.size();
  for (int n = 0; n < 2 && end > 0; n++) {
    end--;
    while (end > 0 && (static_cast<unsigned char>(k[end]) & 0xc0) == 0x80) end--;
  }
  return k.substr(0, end);
}

bool untag_value(const FlaskValue& in, FlaskValue& out, size_t depth) {
  if (depth > kFlaskMaxDepth + 2) return false;
  if (in.type == Type::List) {
    out = FlaskValue(Type::List);
    out.items.resize(in.items.size());
    for (size_t i = 0; i < in.items.size(); i++) {
      if (!untag_value(in.items[i], out.items[i], depth + 1)) return false;
    }
    return true;
  }
  if (in.type != Type::Dict) {
    if (in.type == Type::Bytes || in.type == Type::Tuple || in.type == Type::Tagged) return false;
    out = in;
    return true;
  }
  if (in.keys.size() != in.items.size()) return false;
  FlaskValue d(Type::Dict);
  d.keys = in.keys;
  d.items.resize(in.items.size());
  for (size_t i = 0; i < in.items.size(); i++) {
    if (!untag_value(in.items[i], d.items[i], depth + 1)) return false;
  }
  if (d.keys.size() != 1 || !is_tag(d.keys[0])) {
    out = std::move(d);
    return true;
  }
  const std::string tag = d.keys[0];
  FlaskValue& v = d.items[0];
  if (tag == " di") {
    // TagDict.to_python: {key[:-2]: value[key]} for the (first) key of the inner dict.
    if (v.type != Type::Dict || v.keys.empty()) return false;
    out = FlaskValue(Type::Dict);
    out.keys.push_back(drop_two_code_points(v.keys[0]));
    out.items.push_back(std::move(v.items[0]));
    return true;
  }
  if (tag == " t") {
    if (v.type != Type::List) return false;
    v.type = Type::Tuple;
    out = std::move(v);
    return true;
  }
  if (tag == " b") {
    if (v.type != Type::Str) return false;
    out = FlaskValue(Type::Bytes);
    return flask_b64std_decode(v.text, out.text);
  }
  out = FlaskValue(Type::Tagged);  // " u", " d", " m"
  out.text = tag;
  out.items.push_back(std::move(v));
  return true;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(unsigned char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

bool flask_wtf8_valid(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp;
    const size_t l = wtf8_seq(p + i, s.size() - i, &cp);
    if (l == 0) return false;
    i += l;
  }
  return true;
}

bool flask_utf8_valid(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    auto cont = [&](size_t k, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
      return i + k < n && p[i + k] >= lo && p[i + k] <= hi;
    };
    size_t l = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      l = cont(1) ? 2 : 0;
    } else if (c == 0xe0) {
      l = cont(1, 0xa0) && cont(2) ? 3 : 0;
    } else if (c == 0xed) {
      l = cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
    } else if (c >= 0xe1 && c <= 0xef) {
      l = cont(1) && cont(2) ? 3 : 0;
    } else if (c == 0xf0) {
      l = cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
    } else if (c >= 0xf1 && c <= 0xf3) {
      l = cont(1) && cont(2) && cont(3) ? 4 : 0;
    } else if (c == 0xf4) {
      l = cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
    }
    if (l == 0) return false;
    i += l;
  }
  return true;
}

bool flask_float_parse(std::string_view text, double* out) noexcept {
  if (text == "NaN") {
    *out = std::nan("");
    return true;
  }
  if (text == "Infinity" || text == "-Infinity") {
    *out = text[0] == '-' ? -HUGE_VAL : HUGE_VAL;
    return true;
  }
  const char* b = text.data();
  const char* e = b + text.size();
  const auto r = std::from_chars(b, e, *out);
  if (r.ptr != e || text.empty()) return false;
  if (r.ec == std::errc::result_out_of_range) {
    const size_t ep = text.find_first_of("eE");
    const bool big = ep != std::string_view::npos && ep + 1 < text.size() && text[ep + 1] != '-';
    const bool neg = text[0] == '-';
    *out = big ? (neg ? -HUGE_VAL : HUGE_VAL) : (neg ? -0.0 : 0.0);
    return true;
  }
  return r.ec == std::errc();
}

bool flask_json_parse(std::string_view json, FlaskValue& out) noexcept {
  try {
    out = FlaskValue();
    Parser p(json);
    if (p.document(out)) return true;
  } catch (...) {
  }
  out = FlaskValue();
  return false;
}

bool flask_json_write(const FlaskValue& v, bool sorted, pstring& out) noexcept {
  const size_t base = out.size();
  try {
    if (write_value(v, sorted, out)) return true;
  } catch (...) {
  }
  if (out.size() > base) out.resize(base);
  return false;
}

void flask_float_repr(double d, std::string& out) {
  if (std::isnan(d)) {
    out.append("NaN");
    return;
  }
  if (std::isinf(d)) {
    out.append(d < 0 ? "-Infinity" : "Infinity");
    return;
  }
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view s(buf, static_cast<size_t>(r.ptr - buf));  // "-d.ddde+XX"
  if (!s.empty() && s[0] == '-') {
    out.push_back('-');
    s.remove_prefix(1);
  }
  const size_t e = s.find('e');
  std::string digits;
  for (char c : s.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exp = 0;
  std::from_chars(s.data() + e + 1 + (s[e + 1] == '+' ? 1 : 0), s.data() + s.size(), exp);
  const int decpt = exp + 1;  // digits are 0.d1d2... x 10^decpt
  const int nd = static_cast<int>(digits.size());
  if (decpt <= -4 || decpt > 16) {  // float_repr_style "short", format code 'r'
    out.push_back(digits[0]);
    if (nd > 1) {
      out.push_back('.');
      out.append(digits, 1, std::string::npos);
    }
    out.push_back('e');
    out.push_back(exp < 0 ? '-' : '+');
    const int ax = exp < 0 ? -exp : exp;
    if (ax < 10) out.push_back('0');
    out.append(std::to_string(ax));
  } else if (decpt <= 0) {
    out.append("0.");
    out.append(static_cast<size_t>(-decpt), '0');
    out.append(digits);
  } else if (decpt >= nd) {
    out.append(digits);
    out.append(static_cast<size_t>(decpt - nd), '0');
    out.append(".0");
  } else {
    out.append(digits, 0, static_cast<size_t>(decpt));
    out.push_back('.');
    out.append(digits, static_cast<size_t>(decpt), std::string::npos);
  }
}

bool flask_tag(const FlaskValue& obj, FlaskValue& out) noexcept {
  try {
    if (tag_value(obj, out, 0)) return true;
  } catch (...) {
  }
  out = FlaskValue();
  return false;
}

bool flask_untag(const FlaskValue& json, FlaskValue& out) noexcept {
  try {
    if (untag_value(json, out, 0)) return true;
  } catch (...) {
  }
  out = FlaskValue();
  return false;
}

void flask_b64std_encode(std::string_view in, std::string& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = uint32_t{p[i]} << 16 | uint32_t{p[i + 1]} << 8 | p[i + 2];
    out.push_back(kB64[v >> 18]);
    out.push_back(kB64[v >> 12 & 63]);
    out.push_back(kB64[v >> 6 & 63]);
    out.push_back(kB64[v & 63]);
  }
  if (in.size() - i == 1) {
    const uint32_t v = uint32_t{p[i]} << 16;
    out.push_back(kB64[v >> 18]);
    out.push_back(kB64[v >> 12 & 63]);
    out.append("==");
  } else if (in.size() - i == 2) {
    const uint32_t v = uint32_t{p[i]} << 16 | uint32_t{p[i + 1]} << 8;
    out.push_back(kB64[v >> 18]);
    out.push_back(kB64[v >> 12 & 63]);
    out.push_back(kB64[v >> 6 & 63]);
    out.push_back('=');
  }
}

bool flask_b64std_decode(std::string_view in, std::string& out) {
  if (in.size() % 4 != 0) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const int a = b64_value(p[i]), b = b64_value(p[i + 1]);
    int c = b64_value(p[i + 2]), d = b64_value(p[i + 3]);
    int pad = 0;
    if (last && p[i + 3] == '=') {
      pad = 1;
      d = 0;
      if (p[i + 2] == '=') {
        pad = 2;
        c = 0;
      }
    }
    if (a < 0 || b < 0 || c < 0 || d < 0) return false;
    const uint32_t v = static_cast<uint32_t>(a << 18 | b << 12 | c << 6 | d);
    if ((pad == 2 && (v & 0xffff) != 0) || (pad == 1 && (v & 0xff) != 0)) return false;
    out.push_back(static_cast<char>(v >> 16));
    if (pad < 2) out.push_back(static_cast<char>(v >> 8 & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(v & 0xff));
  }
  return true;
}

}  // namespace sess
