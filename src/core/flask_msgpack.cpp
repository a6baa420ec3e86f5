// Bounded msgpack reader and writer for Flask-Session records.
#include "flask_msgpack.h"

#include <charconv>
#include <cmath>
#include <cstring>

namespace sess {

namespace {

using Type = FlaskValue::Type;

class Reader {
 public:
  Reader(std::string_view in, const MsgpackLimits& lim)
      : p_(reinterpret_cast<const unsigned char*>(in.data())), end_(p_ + in.size()), lim_(lim) {}

  MsgpackResult run(FlaskValue& out) {
    MsgpackResult r = value(out, 0);
    if (r != MsgpackResult::Ok) return r;
    if (p_ != end_ || out.type != Type::Dict) return MsgpackResult::Invalid;
    return MsgpackResult::Ok;
  }

 private:
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  bool be(size_t n, uint64_t* v) {
    if (left() < n) return false;
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++) r = r << 8 | p_[i];
    p_ += n;
    *v = r;
    return true;
  }

  MsgpackResult raw(Type t, uint64_t n, FlaskValue& out) {
    if (n > left()) return MsgpackResult::Invalid;
    out.type = t;
    out.text.assign(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
    p_ += n;
    if (t == Type::Str && !flask_utf8_valid(out.text)) return MsgpackResult::Invalid;
    return MsgpackResult::Ok;
  }

  MsgpackResult array(uint64_t n, FlaskValue& out, size_t depth) {
    if (n > left()) return MsgpackResult::Invalid;  // every element takes a byte at least
    out.type = Type::List;
    out.items.resize(static_cast<size_t>(n));
    for (auto& item : out.items) {
      MsgpackResult r = value(item, depth + 1);
      if (r != MsgpackResult::Ok) return r;
    }
    return MsgpackResult::Ok;
  }

  MsgpackResult map(uint64_t n, FlaskValue& out, size_t depth) {
    if (n > left() / 2) return MsgpackResult::Invalid;
    out.type = Type::Dict;
    out.keys.reserve(static_cast<size_t>(n));
    out.items.reserve(static_cast<size_t>(n));
    for (uint64_t i = 0; i < n; i++) {
      FlaskValue k;
      MsgpackResult r = value(k, depth + 1);
      if (r != MsgpackResult::Ok) return r;
      if (k.type != Type::Str) return MsgpackResult::Invalid;
      FlaskValue v;
      r = value(v, depth + 1);
      if (r != MsgpackResult::Ok) return r;
      size_t at = 0;
      while (at < out.keys.size() && out.keys[at] != k.text) at++;
      if (at < out.keys.size()) {
        out.items[at] = std::move(v);
      } else {
        out.keys.push_back(std::move(k.text));
        out.items.push_back(std::move(v));
      }
    }
    return MsgpackResult::Ok;
  }

  MsgpackResult value(FlaskValue& out, size_t depth) {
    if (depth > lim_.max_depth || ++nodes_ > lim_.max_nodes) return MsgpackResult::TooLarge;
    if (p_ == end_) return MsgpackResult::Invalid;
    const unsigned char c = *p_++;
    uint64_t n = 0;
    if (c <= 0x7f) return integer(c, false, out);
    if (c >= 0xe0) return integer(static_cast<uint64_t>(static_cast<int8_t>(c)), true, out);
    if (c >= 0x80 && c <= 0x8f) return map(c & 0x0f, out, depth);
    if (c >= 0x90 && c <= 0x9f) return array(c & 0x0f, out, depth);
    if (c >= 0xa0 && c <= 0xbf) return raw(Type::Str, c & 0x1f, out);
    switch (c) {
      case 0xc0: out.type = Type::None; return MsgpackResult::Ok;
      case 0xc2: out.type = Type::Bool; out.b = false; return MsgpackResult::Ok;
      case 0xc3: out.type = Type::Bool; out.b = true; return MsgpackResult::Ok;
      case 0xc4: case 0xc5: case 0xc6:
        if (!be(size_t{1} << (c - 0xc4), &n)) return MsgpackResult::Invalid;
        return raw(Type::Bytes, n, out);
      case 0xd9: case 0xda: case 0xdb:
        if (!be(size_t{1} << (c - 0xd9), &n)) return MsgpackResult::Invalid;
        return raw(Type::Str, n, out);
      case 0xdc: case 0xdd:
        if (!be(c == 0xdc ? 2 : 4, &n)) return MsgpackResult::Invalid;
        return array(n, out, depth);
      case 0xde: case 0xdf:
        if (!be(c == 0xde ? 2 : 4, &n)) return MsgpackResult::Invalid;
        return map(n, out, depth);
      case 0xca: {
        if (!be(4, &n)) return MsgpackResult::Invalid;
        const auto bits = static_cast<uint32_t>(n);
        float f;
        std::memcpy(&f, &bits, sizeof(f));
        out.type = Type::Float;
        flask_float_repr(static_cast<double>(f), out.text);
        return MsgpackResult::Ok;
      }
      case 0xcb: {
        if (!be(8, &n)) return MsgpackResult::Invalid;
        double d;
        std::memcpy(&d, &n, sizeof(d));
        out.type = Type::Float;
        flask_float_repr(d, out.text);
        return MsgpackResult::Ok;
      }
      case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (!be(size_t{1} << (c - 0xcc), &n)) return MsgpackResult::Invalid;
        return integer(n, false, out);
      case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        const size_t w = size_t{1} << (c - 0xd0);
        if (!be(w, &n)) return MsgpackResult::Invalid;
        if (w < 8 && (n >> (w * 8 - 1)) != 0) n |= ~uint64_t{0} << (w * 8);  // sign-extend
        return integer(n, true, out);
      }
      default:
        return MsgpackResult::Invalid;  // 0xc1, ext types
    }
  }

  MsgpackResult integer(uint64_t v, bool is_signed, FlaskValue& out) {
    out.type = Type::Int;
    out.text = is_signed ? std::to_string(static_cast<int64_t>(v)) : std::to_string(v);
    return MsgpackResult::Ok;
  }

  const unsigned char* p_;
  const unsigned char* end_;
  const MsgpackLimits& lim_;
  size_t nodes_ = 0;
};

class Writer {
 public:
  explicit Writer(pstring& out) : out_(out) {}

  bool save(const FlaskValue& v, size_t depth) {
    if (depth > kFlaskMaxDepth + 2) return false;
    switch (v.type) {
      case Type::None: byte(0xc0); return true;
      case Type::Bool: byte(v.b ? 0xc3 : 0xc2); return true;
      case Type::Int: return save_int(v.text);
      case Type::Float: return save_float(v.text);
      case Type::Str: return save_raw(v.text, true);
      case Type::Bytes: return save_raw(v.text, false);
      case Type::List:
      case Type::Tuple:
        header(v.items.size(), 0x90, 0xdc);
        for (const auto& item : v.items) {
          if (!save(item, depth + 1)) return false;
        }
        return true;
      case Type::Dict:
        if (v.keys.size() != v.items.size()) return false;
        header(v.items.size(), 0x80, 0xde);
        for (size_t i = 0; i < v.items.size(); i++) {
          if (!save_raw(v.keys[i], true) || !save(v.items[i], depth + 1)) return false;
        }
        return true;
      case Type::Tagged:
        return false;
    }
    return false;
  }

 private:
  void byte(unsigned v) { out_.push_back(static_cast<char>(v)); }
  void be(uint64_t v, size_t n) {
    for (size_t i = n; i-- > 0;) byte(static_cast<unsigned>(v >> (i * 8) & 0xff));
  }
  // fix (fixarray/fixmap) below 16 entries, then the 16- and 32-bit forms.
  void header(size_t n, unsigned fix, unsigned w16) {
    if (n < 16) {
      byte(fix | static_cast<unsigned>(n));
    } else if (n <= 0xffff) {
      byte(w16);
      be(n, 2);
    } else {
      byte(w16 + 1);
      be(n, 4);
    }
  }

  bool save_raw(const std::string& s, bool str) {
    const size_t n = s.size();
    if (n > 0xffffffffu) return false;
    if (str && n < 32) {
      byte(0xa0 | static_cast<unsigned>(n));
    } else if (n <= 0xff) {
      byte(str ? 0xd9 : 0xc4);
      be(n, 1);
    } else if (n <= 0xffff) {
      byte(str ? 0xda : 0xc5);
      be(n, 2);
    } else {
      byte(str ? 0xdb : 0xc6);
      be(n, 4);
    }
    out_.append(s);
    return true;
  }

  bool save_int(const std::string& text) {
    const char* b = text.data();
    const char* e = b + text.size();
    if (!text.empty() && text[0] != '-') {
      uint64_t u = 0;
      const auto r = std::from_chars(b, e, u);
      if (r.ec != std::errc() || r.ptr != e) return false;
      if (u <= 0x7f) {
        byte(static_cast<unsigned>(u));
      } else if (u <= 0xff) {
        byte(0xcc);
        be(u, 1);
      } else if (u <= 0xffff) {
        byte(0xcd);
        be(u, 2);
      } else if (u <= 0xffffffffu) {
        byte(0xce);
        be(u, 4);
      } else {
        byte(0xcf);
        be(u, 8);
      }
      return true;
    }
    int64_t v = 0;
    const auto r = std::from_chars(b, e, v);
    if (r.ec != std::errc() || r.ptr != e) return false;
    const auto u = static_cast<uint64_t>(v);
    if (v >= 0) {  // "-0"
      byte(0);
    } else if (v >= -32) {
      byte(static_cast<unsigned>(u & 0xff));
    } else if (v >= INT8_MIN) {
      byte(0xd0);
      be(u, 1);
    } else if (v >= INT16_MIN) {
      byte(0xd1);
      be(u, 2);
    } else if (v >= INT32_MIN) {
      byte(0xd2);
      be(u, 4);
    } else {
      byte(0xd3);
      be(u, 8);
    }
    return true;
  }

  bool save_float(const std::string& text) {
    double d = 0;
    if (!flask_float_parse(text, &d)) return false;
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof(bits));
    byte(0xcb);
    be(bits, 8);
    return true;
  }

  pstring& out_;
};

}  // namespace

MsgpackResult flask_msgpack_read(std::string_view in, FlaskValue& out,
                                 const MsgpackLimits& limits) noexcept {
  out = FlaskValue();
  if (in.size() > limits.max_input) return MsgpackResult::TooLarge;
  MsgpackResult r;
  try {
    Reader reader(in, limits);
    r = reader.run(out);
  } catch (...) {
    r = MsgpackResult::Error;
  }
  if (r != MsgpackResult::Ok) out = FlaskValue();
  return r;
}

bool flask_msgpack_write(const FlaskValue& obj, pstring& out) noexcept {
  const size_t base = out.size();
  try {
    Writer w(out);
    if (w.save(obj, 0)) return true;
  } catch (...) {
  }
  if (out.size() > base) out.resize(base);
  return false;
}

}  // namespace sess
