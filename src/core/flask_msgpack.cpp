// Flask-Session msgpack records through msgpack-c (Debian's libmsgpack-dev, C API, libmsgpackc):
// msgpack_unpack_next decodes, msgpack_packer encodes. What msgpack-c does not do is here: the
// limits, the refusals, and the conversion to and from FlaskValue.
//
// msgpack-c's C unpacker has no limits of its own: on reading an array or map header it
// allocates count * sizeof(msgpack_object) from its zone before any element is read (a 9-byte
// input can claim 4G elements), and its container stack is MSGPACK_EMBED_STACK_SIZE deep (past
// it: NOMEM_ERROR). So the input is first walked header by header (bounded()): every claimed
// count is checked against the bytes left and against the node budget, the depth against
// max_depth, ext types and 0xc1 are refused, and exactly one value must fill the input. Only
// then does msgpack-c see the bytes, and what it allocates is bounded by the node budget.
#include "flask_msgpack.h"

#include <msgpack.h>
#include <msgpack/unpack_define.h>  // MSGPACK_EMBED_STACK_SIZE, as libmsgpackc was built

#include <charconv>
#include <string>

namespace sess {

namespace {

using Type = FlaskValue::Type;

// Containers msgpack-c can hold open at once. A value at depth d sits in d open containers, so a
// depth limit up to this size never reaches msgpack-c's stack limit.
constexpr size_t kStack = MSGPACK_EMBED_STACK_SIZE;
static_assert(kFlaskMaxDepth <= kStack, "msgpack-c's unpack stack is shallower than the limit");

uint64_t be(const unsigned char* p, size_t n) {
  uint64_t r = 0;
  for (size_t i = 0; i < n; i++) r = r << 8 | p[i];
  return r;
}

// The header walk: Ok if in is exactly one msgpack value within the limits, with no ext type.
// No value is decoded here.
MsgpackResult bounded(std::string_view in, const MsgpackLimits& lim) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  const size_t max_depth = lim.max_depth < kStack ? lim.max_depth : kStack;
  uint64_t open[kStack + 1];  // elements still to come in each open container
  size_t top = 0;
  size_t pos = 0;
  uint64_t claimed = 1;  // the top-level value, then every element a header announces
  if (claimed > lim.max_nodes) return MsgpackResult::TooLarge;
  for (;;) {
    if (top > max_depth) return MsgpackResult::TooLarge;
    if (pos == n) return MsgpackResult::Invalid;
    const unsigned c = p[pos++];
    uint64_t payload = 0;    // bytes of a scalar after its header
    uint64_t elements = 0;   // elements of a container (a map's keys and values)
    bool container = false;
    size_t len_bytes = 0;    // width of the length field that follows c
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
      // fixint, nil, bool
    } else if (c <= 0x8f) {
      container = true;
      elements = uint64_t{c & 0x0fu} * 2;
    } else if (c <= 0x9f) {
      container = true;
      elements = c & 0x0fu;
    } else if (c <= 0xbf) {
      payload = c & 0x1fu;
    } else {
      switch (c) {
        case 0xc4: case 0xd9: len_bytes = 1; break;  // bin8, str8
        case 0xc5: case 0xda: len_bytes = 2; break;
        case 0xc6: case 0xdb: len_bytes = 4; break;
        case 0xca: payload = 4; break;  // float32
        case 0xcb: payload = 8; break;  // float64
        case 0xcc: case 0xd0: payload = 1; break;
        case 0xcd: case 0xd1: payload = 2; break;
        case 0xce: case 0xd2: payload = 4; break;
        case 0xcf: case 0xd3: payload = 8; break;
        case 0xdc: case 0xde: container = true; len_bytes = 2; break;
        case 0xdd: case 0xdf: container = true; len_bytes = 4; break;
        default: return MsgpackResult::Invalid;  // 0xc1, ext (0xc7-0xc9, 0xd4-0xd8)
      }
      if (len_bytes != 0) {
        if (n - pos < len_bytes) return MsgpackResult::Invalid;
        const uint64_t len = be(p + pos, len_bytes);
        pos += len_bytes;
        if (!container) {
          payload = len;
        } else {
          elements = c >= 0xde ? len * 2 : len;
        }
      }
    }
    if (container && elements != 0) {
      // Every element takes a byte at least: a claim beyond the input is a lie, found before
      // msgpack-c allocates for it.
      if (elements > n - pos) return MsgpackResult::Invalid;
      claimed += elements;
      if (claimed > lim.max_nodes) return MsgpackResult::TooLarge;
      open[top++] = elements;
      continue;
    }
    if (payload > n - pos) return MsgpackResult::Invalid;
    pos += static_cast<size_t>(payload);
    // One value done: close every container it completes.
    while (top > 0 && --open[top - 1] == 0) top--;
    if (top == 0) break;
  }
  return pos == n ? MsgpackResult::Ok : MsgpackResult::Invalid;
}

// msgpack_object -> object form. Throws only std::bad_alloc.
MsgpackResult convert(const msgpack_object& o, FlaskValue& out, size_t depth,
                      const MsgpackLimits& lim) {
  if (depth > lim.max_depth) return MsgpackResult::TooLarge;
  switch (o.type) {
    case MSGPACK_OBJECT_NIL:
      out.type = Type::None;
      return MsgpackResult::Ok;
    case MSGPACK_OBJECT_BOOLEAN:
      out.type = Type::Bool;
      out.b = o.via.boolean;
      return MsgpackResult::Ok;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      out.type = Type::Int;
      out.text = std::to_string(o.via.u64);
      return MsgpackResult::Ok;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      out.type = Type::Int;
      out.text = std::to_string(o.via.i64);
      return MsgpackResult::Ok;
    case MSGPACK_OBJECT_FLOAT32:  // held widened to double: the float32's exact value
    case MSGPACK_OBJECT_FLOAT64:
      out.type = Type::Float;
      flask_float_repr(o.via.f64, out.text);
      return MsgpackResult::Ok;
    case MSGPACK_OBJECT_STR:
      out.type = Type::Str;
      out.text.assign(o.via.str.ptr, o.via.str.size);
      return flask_utf8_valid(out.text) ? MsgpackResult::Ok : MsgpackResult::Invalid;
    case MSGPACK_OBJECT_BIN:
      out.type = Type::Bytes;
      out.text.assign(o.via.bin.ptr, o.via.bin.size);
      return MsgpackResult::Ok;
    case MSGPACK_OBJECT_ARRAY: {
      out.type = Type::List;
      out.items.resize(o.via.array.size);
      for (uint32_t i = 0; i < o.via.array.size; i++) {
        const MsgpackResult r = convert(o.via.array.ptr[i], out.items[i], depth + 1, lim);
        if (r != MsgpackResult::Ok) return r;
      }
      return MsgpackResult::Ok;
    }
    case MSGPACK_OBJECT_MAP: {
      out.type = Type::Dict;
      out.keys.reserve(o.via.map.size);
      out.items.reserve(o.via.map.size);
      for (uint32_t i = 0; i < o.via.map.size; i++) {
        const msgpack_object_kv& kv = o.via.map.ptr[i];
        if (kv.key.type != MSGPACK_OBJECT_STR) return MsgpackResult::Invalid;
        FlaskValue k;
        MsgpackResult r = convert(kv.key, k, depth + 1, lim);
        if (r != MsgpackResult::Ok) return r;
        FlaskValue v;
        r = convert(kv.val, v, depth + 1, lim);
        if (r != MsgpackResult::Ok) return r;
        // Duplicates: the last value at the first key's position (msgspec's dict).
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
    default:
      return MsgpackResult::Invalid;  // MSGPACK_OBJECT_EXT (bounded() refuses it already)
  }
}

// msgpack_packer's write callback: appends to the pstring; -1 (the packer's error) on
// allocation failure, which never leaves this C callback as an exception.
int append(void* data, const char* buf, size_t len) noexcept {
  try {
    static_cast<pstring*>(data)->append(buf, len);
    return 0;
  } catch (...) {
    return -1;
  }
}

class Writer {
 public:
  explicit Writer(pstring& out) { msgpack_packer_init(&pk_, &out, append); }

  bool save(const FlaskValue& v, size_t depth) {
    if (depth > kFlaskMaxDepth + 2) return false;
    switch (v.type) {
      case Type::None: return msgpack_pack_nil(&pk_) == 0;
      case Type::Bool: return (v.b ? msgpack_pack_true(&pk_) : msgpack_pack_false(&pk_)) == 0;
      case Type::Int: return save_int(v.text);
      case Type::Float: {
        double d = 0;
        return flask_float_parse(v.text, &d) && msgpack_pack_double(&pk_, d) == 0;
      }
      case Type::Str: return save_raw(v.text, true);
      case Type::Bytes: return save_raw(v.text, false);
      case Type::List:
      case Type::Tuple:  // msgpack has no tuple: an array, as msgspec writes it
        if (v.items.size() > 0xffffffffu || msgpack_pack_array(&pk_, v.items.size()) != 0) {
          return false;
        }
        for (const auto& item : v.items) {
          if (!save(item, depth + 1)) return false;
        }
        return true;
      case Type::Dict:
        if (v.keys.size() != v.items.size() || v.items.size() > 0xffffffffu ||
            msgpack_pack_map(&pk_, v.items.size()) != 0) {
          return false;
        }
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
  bool save_raw(const std::string& s, bool str) {
    if (s.size() > 0xffffffffu) return false;  // msgpack-c would cut the length to 32 bits
    if (str) return msgpack_pack_str_with_body(&pk_, s.data(), s.size()) == 0;
    return msgpack_pack_bin_with_body(&pk_, s.data(), s.size()) == 0;
  }

  // Decimal text -> the smallest encoding (msgpack-c's choice, python-msgpack's too). False
  // beyond 64 bits: msgpack has no wider integer.
  bool save_int(const std::string& text) {
    const char* b = text.data();
    const char* e = b + text.size();
    if (!text.empty() && text[0] != '-') {
      uint64_t u = 0;
      const auto r = std::from_chars(b, e, u);
      if (r.ec != std::errc() || r.ptr != e) return false;
      return msgpack_pack_uint64(&pk_, u) == 0;
    }
    int64_t v = 0;
    const auto r = std::from_chars(b, e, v);
    if (r.ec != std::errc() || r.ptr != e) return false;
    return msgpack_pack_int64(&pk_, v) == 0;  // "-0" is 0
  }

  msgpack_packer pk_;
};

}  // namespace

MsgpackResult flask_msgpack_read(std::string_view in, FlaskValue& out,
                                 const MsgpackLimits& limits) noexcept {
  out = FlaskValue();
  if (in.size() > limits.max_input) return MsgpackResult::TooLarge;
  MsgpackResult r = bounded(in, limits);
  if (r != MsgpackResult::Ok) return r;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  switch (msgpack_unpack_next(&u, in.data(), in.size(), &off)) {
    case MSGPACK_UNPACK_SUCCESS:
      if (off != in.size()) {
        r = MsgpackResult::Invalid;  // trailing bytes (bounded() refuses them already)
      } else if (u.data.type != MSGPACK_OBJECT_MAP) {
        r = MsgpackResult::Invalid;  // a record is a dict
      } else {
        try {
          r = convert(u.data, out, 0, limits);
        } catch (...) {
          r = MsgpackResult::Error;
        }
      }
      break;
    case MSGPACK_UNPACK_NOMEM_ERROR:
      r = MsgpackResult::Error;
      break;
    default:  // PARSE_ERROR, CONTINUE (truncated), EXTRA_BYTES
      r = MsgpackResult::Invalid;
      break;
  }
  msgpack_unpacked_destroy(&u);
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
