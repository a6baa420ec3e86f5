// Data-only pickle reader and protocol-4 writer for Flask-Session records.
#include "flask_pickle.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <unordered_map>

namespace sess {

namespace {

using Type = FlaskValue::Type;

// Opcodes (Lib/pickle.py).
enum : unsigned char {
  MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', BININT = 'J', BININT1 = 'K',
  BININT2 = 'M', NONE = 'N', PERSID = 'P', BINPERSID = 'Q', REDUCE = 'R', BINUNICODE = 'X',
  APPEND = 'a', BUILD = 'b', GLOBAL = 'c', DICT = 'd', EMPTY_DICT = '}', APPENDS = 'e',
  BINGET = 'h', INST = 'i', LONG_BINGET = 'j', LIST = 'l', EMPTY_LIST = ']', OBJ = 'o',
  BINPUT = 'q', LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')',
  SETITEMS = 'u', BINFLOAT = 'G', PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83,
  EXT4 = 0x84, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89,
  LONG1 = 0x8a, LONG4 = 0x8b, BINBYTES = 'B', SHORT_BINBYTES = 'C', SHORT_BINUNICODE = 0x8c,
  BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e, NEWOBJ_EX = 0x92, STACK_GLOBAL = 0x93, MEMOIZE = 0x94,
  FRAME = 0x95,
};

constexpr size_t kFrameTarget = 64 * 1024;  // CPython's _FRAME_SIZE_TARGET
constexpr size_t kFrameMin = 4;             // _FRAME_SIZE_MIN
constexpr size_t kBatch = 1000;             // _BATCHSIZE
constexpr size_t kMaxIntBytes = 256;        // LONG1's range; larger LONG4 ints are TooLarge

// ---------------------------------------------------------------------------------------------
// Integers

// Little-endian two's complement -> decimal (pickle.decode_long).
void le_to_decimal(std::string_view b, std::string& out) {
  if (b.empty()) {
    out.assign("0");
    return;
  }
  std::string mag(b);  // magnitude, little-endian
  const bool neg = (static_cast<unsigned char>(b.back()) & 0x80) != 0;
  if (neg) {  // negate: invert and add one
    unsigned carry = 1;
    for (auto& c : mag) {
      const unsigned v = (~static_cast<unsigned char>(c) & 0xffu) + carry;
      c = static_cast<char>(v & 0xff);
      carry = v >> 8;
    }
  }
  std::string digits;  // reversed
  for (;;) {
    while (!mag.empty() && mag.back() == 0) mag.pop_back();
    if (mag.empty()) break;
    uint64_t rem = 0;
    for (size_t i = mag.size(); i-- > 0;) {
      const uint64_t cur = rem << 8 | static_cast<unsigned char>(mag[i]);
      mag[i] = static_cast<char>(cur / 1000000000u);
      rem = cur % 1000000000u;
    }
    bool more = false;
    for (char c : mag) more = more || c != 0;
    for (int k = 0; k < 9; k++) {
      if (!more && rem == 0) break;
      digits.push_back(static_cast<char>('0' + rem % 10));
      rem /= 10;
    }
  }
  if (digits.empty()) digits.push_back('0');
  out.clear();
  if (neg) out.push_back('-');
  out.append(digits.rbegin(), digits.rend());
}

// Decimal -> little-endian two's complement, as pickle.encode_long (x != 0).
bool decimal_to_le(std::string_view d, std::string& out) {
  bool neg = false;
  if (!d.empty() && d[0] == '-') {
    neg = true;
    d.remove_prefix(1);
  }
  if (d.empty() || d.size() > 2 * kMaxIntBytes * 3) return false;
  std::string mag;  // little-endian magnitude
  for (char ch : d) {
    if (ch < '0' || ch > '9') return false;
    unsigned carry = static_cast<unsigned>(ch - '0');
    for (auto& c : mag) {
      const unsigned v = static_cast<unsigned char>(c) * 10u + carry;
      c = static_cast<char>(v & 0xff);
      carry = v >> 8;
    }
    if (carry != 0) mag.push_back(static_cast<char>(carry));
  }
  while (!mag.empty() && mag.back() == 0) mag.pop_back();
  out.clear();
  if (mag.empty()) return true;  // 0: b""
  // nbytes = (bit_length >> 3) + 1
  unsigned top = static_cast<unsigned char>(mag.back());
  size_t bits = (mag.size() - 1) * 8;
  while (top != 0) {
    bits++;
    top >>= 1;
  }
  const size_t nbytes = (bits >> 3) + 1;
  mag.resize(nbytes, 0);
  if (neg) {
    unsigned carry = 1;
    for (auto& c : mag) {
      const unsigned v = (~static_cast<unsigned char>(c) & 0xffu) + carry;
      c = static_cast<char>(v & 0xff);
      carry = v >> 8;
    }
    if (nbytes > 1 && static_cast<unsigned char>(mag[nbytes - 1]) == 0xff &&
        (static_cast<unsigned char>(mag[nbytes - 2]) & 0x80) != 0) {
      mag.pop_back();
    }
  }
  out.swap(mag);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Reader

struct Node {
  Type type = Type::None;
  bool b = false;
  std::string text;
  std::vector<uint32_t> items;  // List/Tuple items, Dict values
  std::vector<uint32_t> keys;   // Dict keys (Str nodes)
};

class Reader {
 public:
  Reader(std::string_view in, const PickleLimits& lim)
      : p_(reinterpret_cast<const unsigned char*>(in.data())), end_(p_ + in.size()), lim_(lim) {}

  PickleResult run(FlaskValue& out) {
    for (;;) {
      if (p_ == end_) return PickleResult::Invalid;
      const unsigned char op = *p_++;
      PickleResult r = step(op);
      if (r != PickleResult::Ok) return r;
      if (op == STOP) break;
    }
    if (p_ != end_) return PickleResult::Invalid;  // trailing bytes
    if (result_ >= nodes_.size() || nodes_[result_].type != Type::Dict) {
      return PickleResult::Invalid;
    }
    on_path_.assign(nodes_.size(), false);
    return convert(result_, out, 0);
  }

 private:
  bool need(size_t n) const { return static_cast<size_t>(end_ - p_) >= n; }
  uint64_t le(size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = v << 8 | p_[i];
    p_ += n;
    return v;
  }

  PickleResult push_node(Node&& n) {
    if (nodes_.size() >= lim_.max_nodes) return PickleResult::TooLarge;
    if (stack_.size() >= lim_.max_nodes) return PickleResult::TooLarge;
    text_bytes_ += n.text.size();
    if (text_bytes_ > lim_.max_expanded) return PickleResult::TooLarge;
    nodes_.push_back(std::move(n));
    stack_.push_back(static_cast<uint32_t>(nodes_.size() - 1));
    return PickleResult::Ok;
  }

  PickleResult scalar(Type t, std::string text = std::string(), bool b = false) {
    Node n;
    n.type = t;
    n.text = std::move(text);
    n.b = b;
    return push_node(std::move(n));
  }

  PickleResult counted(Type t, size_t len_bytes) {
    if (!need(len_bytes)) return PickleResult::Invalid;
    const uint64_t n = le(len_bytes);
    if (n > lim_.max_expanded) return PickleResult::TooLarge;
    if (!need(static_cast<size_t>(n))) return PickleResult::Invalid;
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
    p_ += n;
    if (t == Type::Str && !flask_wtf8_valid(s)) return PickleResult::Invalid;
    return scalar(t, std::move(s));
  }

  // Items above the topmost mark, and the mark removed.
  bool pop_mark(size_t* at) {
    if (marks_.empty()) return false;
    *at = marks_.back();
    marks_.pop_back();
    return *at <= stack_.size();
  }

  // The first stack position of the current mark's frame.
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }

  bool set_item(uint32_t dict, uint32_t key, uint32_t value) {
    Node& d = nodes_[dict];
    if (d.type != Type::Dict || nodes_[key].type != Type::Str) return false;
    for (size_t i = 0; i < d.keys.size(); i++) {
      if (nodes_[d.keys[i]].text == nodes_[key].text) {
        d.items[i] = value;  // a dict: the first key stays, the last value wins
        return true;
      }
    }
    d.keys.push_back(key);
    d.items.push_back(value);
    return true;
  }

  PickleResult memo_put(uint64_t idx) {
    if (stack_.empty()) return PickleResult::Invalid;
    if (memo_.size() >= lim_.max_nodes && memo_.find(idx) == memo_.end()) {
      return PickleResult::TooLarge;
    }
    memo_[idx] = stack_.back();
    return PickleResult::Ok;
  }

  PickleResult memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) return PickleResult::Invalid;
    if (stack_.size() >= lim_.max_nodes) return PickleResult::TooLarge;
    stack_.push_back(it->second);
    return PickleResult::Ok;
  }

  PickleResult make_seq(Type t, size_t from) {
    Node n;
    n.type = t;
    n.items.assign(stack_.begin() + static_cast<std::ptrdiff_t>(from), stack_.end());
    stack_.resize(from);
    return push_node(std::move(n));
  }

  PickleResult step(unsigned char op) {
    switch (op) {
      case PROTO:
        if (!need(1) || *p_ > 5) return PickleResult::Invalid;
        p_++;
        return PickleResult::Ok;
      case FRAME: {
        if (!need(8)) return PickleResult::Invalid;
        const uint64_t n = le(8);
        return need(static_cast<size_t>(n)) && n <= static_cast<uint64_t>(end_ - p_)
                   ? PickleResult::Ok
                   : PickleResult::Invalid;
      }
      case STOP:
        if (stack_.empty()) return PickleResult::Invalid;
        result_ = stack_.back();
        return PickleResult::Ok;
      case MARK:
        if (marks_.size() >= lim_.max_nodes) return PickleResult::TooLarge;
        marks_.push_back(stack_.size());
        return PickleResult::Ok;
      case POP:
        if (!stack_.empty() && (marks_.empty() || marks_.back() < stack_.size())) {
          stack_.pop_back();
          return PickleResult::Ok;
        }
        if (!marks_.empty() && marks_.back() == stack_.size()) {  // POP of a bare mark
          marks_.pop_back();
          return PickleResult::Ok;
        }
        return PickleResult::Invalid;
      case POP_MARK: {
        size_t at;
        if (!pop_mark(&at)) return PickleResult::Invalid;
        stack_.resize(at);
        return PickleResult::Ok;
      }
      case DUP:
        if (stack_.empty() || stack_.size() >= lim_.max_nodes) return PickleResult::Invalid;
        stack_.push_back(stack_.back());
        return PickleResult::Ok;
      case NONE: return scalar(Type::None);
      case NEWTRUE: return scalar(Type::Bool, std::string(), true);
      case NEWFALSE: return scalar(Type::Bool, std::string(), false);
      case BININT1:
        if (!need(1)) return PickleResult::Invalid;
        return scalar(Type::Int, std::to_string(le(1)));
      case BININT2:
        if (!need(2)) return PickleResult::Invalid;
        return scalar(Type::Int, std::to_string(le(2)));
      case BININT:
        if (!need(4)) return PickleResult::Invalid;
        return scalar(Type::Int, std::to_string(static_cast<int32_t>(le(4))));
      case LONG1:
      case LONG4: {
        const size_t w = op == LONG1 ? 1 : 4;
        if (!need(w)) return PickleResult::Invalid;
        const uint64_t n = le(w);
        if (n > kMaxIntBytes) return PickleResult::TooLarge;
        if (!need(static_cast<size_t>(n))) return PickleResult::Invalid;
        std::string dec;
        le_to_decimal(std::string_view(reinterpret_cast<const char*>(p_), n), dec);
        p_ += n;
        return scalar(Type::Int, std::move(dec));
      }
      case BINFLOAT: {
        if (!need(8)) return PickleResult::Invalid;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits = bits << 8 | *p_++;
        double d;
        std::memcpy(&d, &bits, sizeof(d));
        std::string text;
        flask_float_repr(d, text);
        return scalar(Type::Float, std::move(text));
      }
      case SHORT_BINUNICODE: return counted(Type::Str, 1);
      case BINUNICODE: return counted(Type::Str, 4);
      case BINUNICODE8: return counted(Type::Str, 8);
      case SHORT_BINBYTES: return counted(Type::Bytes, 1);
      case BINBYTES: return counted(Type::Bytes, 4);
      case BINBYTES8: return counted(Type::Bytes, 8);
      case EMPTY_DICT: return scalar(Type::Dict);
      case EMPTY_LIST: return scalar(Type::List);
      case EMPTY_TUPLE: return scalar(Type::Tuple);
      case TUPLE1:
      case TUPLE2:
      case TUPLE3: {
        const size_t n = static_cast<size_t>(op - TUPLE1 + 1);
        if (stack_.size() < n || (!marks_.empty() && marks_.back() > stack_.size() - n)) {
          return PickleResult::Invalid;
        }
        return make_seq(Type::Tuple, stack_.size() - n);
      }
      case TUPLE:
      case LIST: {
        size_t at;
        if (!pop_mark(&at)) return PickleResult::Invalid;
        return make_seq(op == TUPLE ? Type::Tuple : Type::List, at);
      }
      case DICT: {
        size_t at;
        if (!pop_mark(&at) || (stack_.size() - at) % 2 != 0) return PickleResult::Invalid;
        Node n;
        n.type = Type::Dict;
        if (nodes_.size() >= lim_.max_nodes) return PickleResult::TooLarge;
        nodes_.push_back(std::move(n));
        const auto d = static_cast<uint32_t>(nodes_.size() - 1);
        for (size_t i = at; i < stack_.size(); i += 2) {
          if (!set_item(d, stack_[i], stack_[i + 1])) return PickleResult::Invalid;
        }
        stack_.resize(at);
        stack_.push_back(d);
        return PickleResult::Ok;
      }
      case SETITEM: {
        if (stack_.size() < floor() + 3) return PickleResult::Invalid;
        const size_t s = stack_.size();
        if (!set_item(stack_[s - 3], stack_[s - 2], stack_[s - 1])) return PickleResult::Invalid;
        stack_.resize(s - 2);
        return PickleResult::Ok;
      }
      case SETITEMS: {
        size_t at;
        if (!pop_mark(&at) || at <= floor() || (stack_.size() - at) % 2 != 0) {
          return PickleResult::Invalid;
        }
        const uint32_t d = stack_[at - 1];
        for (size_t i = at; i < stack_.size(); i += 2) {
          if (!set_item(d, stack_[i], stack_[i + 1])) return PickleResult::Invalid;
        }
        stack_.resize(at);
        return PickleResult::Ok;
      }
      case APPEND: {
        if (stack_.size() < floor() + 2) return PickleResult::Invalid;
        Node& l = nodes_[stack_[stack_.size() - 2]];
        if (l.type != Type::List) return PickleResult::Invalid;
        l.items.push_back(stack_.back());
        stack_.pop_back();
        return PickleResult::Ok;
      }
      case APPENDS: {
        size_t at;
        if (!pop_mark(&at) || at <= floor()) return PickleResult::Invalid;
        Node& l = nodes_[stack_[at - 1]];
        if (l.type != Type::List) return PickleResult::Invalid;
        l.items.insert(l.items.end(), stack_.begin() + static_cast<std::ptrdiff_t>(at),
                       stack_.end());
        stack_.resize(at);
        return PickleResult::Ok;
      }
      case MEMOIZE: return memo_put(memo_.size());
      case BINPUT:
        if (!need(1)) return PickleResult::Invalid;
        return memo_put(le(1));
      case LONG_BINPUT:
        if (!need(4)) return PickleResult::Invalid;
        return memo_put(le(4));
      case BINGET:
        if (!need(1)) return PickleResult::Invalid;
        return memo_get(le(1));
      case LONG_BINGET:
        if (!need(4)) return PickleResult::Invalid;
        return memo_get(le(4));
      case GLOBAL: case STACK_GLOBAL: case REDUCE: case BUILD: case INST: case OBJ:
      case NEWOBJ: case NEWOBJ_EX: case EXT1: case EXT2: case EXT4: case PERSID:
      case BINPERSID:
        return PickleResult::Forbidden;
      default:
        return PickleResult::Invalid;
    }
  }

  // The tree of node idx; shared nodes are copied (counted), a node inside itself is a cycle.
  PickleResult convert(uint32_t idx, FlaskValue& out, size_t depth) {
    if (depth > lim_.max_depth) return PickleResult::TooLarge;
    if (on_path_[idx]) return PickleResult::Invalid;  // memo cycle
    if (++out_nodes_ > lim_.max_nodes) return PickleResult::TooLarge;
    const Node& n = nodes_[idx];
    out_bytes_ += n.text.size();
    if (out_bytes_ > lim_.max_expanded) return PickleResult::TooLarge;
    out.type = n.type;
    out.b = n.b;
    out.text = n.text;
    on_path_[idx] = true;
    out.items.resize(n.items.size());
    for (size_t i = 0; i < n.items.size(); i++) {
      PickleResult r = convert(n.items[i], out.items[i], depth + 1);
      if (r != PickleResult::Ok) return r;
    }
    for (uint32_t k : n.keys) {
      out_bytes_ += nodes_[k].text.size();
      if (out_bytes_ > lim_.max_expanded) return PickleResult::TooLarge;
      out.keys.push_back(nodes_[k].text);
    }
    on_path_[idx] = false;
    return PickleResult::Ok;
  }

  const unsigned char* p_;
  const unsigned char* end_;
  const PickleLimits& lim_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, uint32_t> memo_;
  std::vector<bool> on_path_;
  uint32_t result_ = UINT32_MAX;
  size_t text_bytes_ = 0;
  size_t out_nodes_ = 0;
  size_t out_bytes_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Writer

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  bool save(const FlaskValue& v, size_t depth) {
    if (depth > kFlaskMaxDepth + 2) return false;
    switch (v.type) {
      case Type::None: out_.push_back(static_cast<char>(NONE)); return true;
      case Type::Bool: out_.push_back(static_cast<char>(v.b ? NEWTRUE : NEWFALSE)); return true;
      case Type::Int: return save_int(v.text);
      case Type::Float: return save_float(v.text);
      case Type::Str: return save_counted(v.text, true);
      case Type::Bytes: return save_counted(v.text, false);
      case Type::List: {
        op(EMPTY_LIST);
        memoize();
        return batch(v, depth);
      }
      case Type::Dict: {
        if (v.keys.size() != v.items.size()) return false;
        op(EMPTY_DICT);
        memoize();
        return batch(v, depth);
      }
      case Type::Tuple: {
        const size_t n = v.items.size();
        if (n == 0) {
          op(EMPTY_TUPLE);  // the empty tuple is not memoized
          return true;
        }
        if (n > 3) op(MARK);
        for (const auto& item : v.items) {
          if (!save(item, depth + 1)) return false;
        }
        op(n > 3 ? static_cast<unsigned char>(TUPLE) : static_cast<unsigned char>(TUPLE1 + n - 1));
        memoize();
        return true;
      }
      case Type::Tagged:
        return false;
    }
    return false;
  }

 private:
  void op(unsigned char c) { out_.push_back(static_cast<char>(c)); }
  void le(uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++) {
      out_.push_back(static_cast<char>(v & 0xff));
      v >>= 8;
    }
  }
  void memoize() {
    op(MEMOIZE);
    memo_count_++;
  }

  // Lists and dicts as CPython's batch_list_exact / batch_dict_exact: one item with
  // APPEND/SETITEM; more in batches of 1000, each MARK ... APPENDS/SETITEMS (a last batch of one
  // included; pickle.py's _batch_appends would write APPEND there, _pickle.c does not).
  bool batch(const FlaskValue& v, size_t depth) {
    const bool dict = v.type == Type::Dict;
    const size_t n = v.items.size();
    if (n == 1) {
      if (dict && !save_counted(v.keys[0], true)) return false;
      if (!save(v.items[0], depth + 1)) return false;
      op(dict ? SETITEM : APPEND);
      return true;
    }
    for (size_t at = 0; at < n; at += kBatch) {
      const size_t k = std::min(kBatch, n - at);
      op(MARK);
      for (size_t i = at; i < at + k; i++) {
        if (dict && !save_counted(v.keys[i], true)) return false;
        if (!save(v.items[i], depth + 1)) return false;
      }
      op(dict ? SETITEMS : APPENDS);
    }
    return true;
  }

  bool save_counted(const std::string& s, bool str) {
    // CPython's shared empty and one-character objects: a second occurrence is a BINGET.
    bool shared = false;
    if (str) {
      shared = s.empty() || s.size() == 1 ||
               (s.size() == 2 && (static_cast<unsigned char>(s[0]) == 0xc2 ||
                                  static_cast<unsigned char>(s[0]) == 0xc3));
    } else {
      shared = s.size() <= 1;
    }
    std::string key;
    if (shared) {
      key.push_back(str ? 's' : 'b');
      key.append(s);
      auto it = singletons_.find(key);
      if (it != singletons_.end()) {
        const size_t idx = it->second;
        if (idx < 256) {
          op(BINGET);
          le(idx, 1);
        } else {
          op(LONG_BINGET);
          le(idx, 4);
        }
        return true;
      }
    }
    const size_t n = s.size();
    if (n >= kFrameTarget) return false;
    if (n < 256) {
      op(str ? SHORT_BINUNICODE : SHORT_BINBYTES);
      le(n, 1);
    } else {
      op(str ? BINUNICODE : BINBYTES);
      le(n, 4);
    }
    out_.append(s);
    if (shared) singletons_.emplace(std::move(key), memo_count_);
    memoize();
    return true;
  }

  bool save_int(const std::string& text) {
    int64_t v = 0;
    const char* b = text.data();
    const char* e = b + text.size();
    const auto r = std::from_chars(b, e, v);
    if (r.ec == std::errc() && r.ptr == e) {
      if (v >= 0 && v <= 0xff) {
        op(BININT1);
        le(static_cast<uint64_t>(v), 1);
        return true;
      }
      if (v >= 0 && v <= 0xffff) {
        op(BININT2);
        le(static_cast<uint64_t>(v), 2);
        return true;
      }
      if (v >= INT32_MIN && v <= INT32_MAX) {
        op(BININT);
        le(static_cast<uint64_t>(static_cast<uint32_t>(static_cast<int32_t>(v))), 4);
        return true;
      }
    } else if (r.ec != std::errc::result_out_of_range || r.ptr != e) {
      return false;
    }
    std::string bytes;
    if (!decimal_to_le(text, bytes)) return false;
    if (bytes.size() < 256) {
      op(LONG1);
      le(bytes.size(), 1);
    } else {
      op(LONG4);
      le(bytes.size(), 4);
    }
    out_.append(bytes);
    return true;
  }

  bool save_float(const std::string& text) {
    double d = 0;
    if (!flask_float_parse(text, &d)) return false;
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof(bits));
    op(BINFLOAT);
    for (int i = 7; i >= 0; i--) out_.push_back(static_cast<char>(bits >> (i * 8) & 0xff));
    return true;
  }

  std::string& out_;
  size_t memo_count_ = 0;
  std::unordered_map<std::string, size_t> singletons_;
};

}  // namespace

bool flask_int_to_le(std::string_view decimal, std::string& out) {
  return decimal_to_le(decimal, out);
}

bool flask_int_from_le(std::string_view bytes, std::string& decimal) {
  le_to_decimal(bytes, decimal);
  return true;
}

PickleResult flask_pickle_read(std::string_view in, FlaskValue& out,
                               const PickleLimits& limits) noexcept {
  out = FlaskValue();
  if (in.size() > limits.max_input) return PickleResult::TooLarge;
  PickleResult r;
  try {
    Reader reader(in, limits);
    r = reader.run(out);
  } catch (...) {
    r = PickleResult::Error;
  }
  if (r != PickleResult::Ok) out = FlaskValue();
  return r;
}

bool flask_pickle_write(const FlaskValue& obj, pstring& out) noexcept {
  const size_t base = out.size();
  try {
    std::string body;
    Writer w(body);
    if (!w.save(obj, 0)) return false;
    body.push_back(static_cast<char>(STOP));
    if (body.size() >= kFrameTarget) return false;
    out.push_back(static_cast<char>(PROTO));
    out.push_back(4);
    if (body.size() >= kFrameMin) {
      out.push_back(static_cast<char>(FRAME));
      uint64_t n = body.size();
      for (int i = 0; i < 8; i++) {
        out.push_back(static_cast<char>(n & 0xff));
        n >>= 8;
      }
    }
    out.append(body);
    return true;
  } catch (...) {
    if (out.size() > base) out.resize(base);
    return false;
  }
}

}  // namespace sess
