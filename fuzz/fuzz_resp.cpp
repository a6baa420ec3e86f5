// libFuzzer target: the streaming RESP2 parser and resp_command (src/core/resp.h).
//
// Input: L0 L1 L2 L3 STREAM. The four bytes choose the limits (small, so that every boundary is
// reached within -max_len; L0 = 0xff: the defaults): max_bulk = L0 * 4, max_elements = L1 & 15,
// max_depth = L1 >> 4, max_total = L2 * 8, max_line = L3 & 63. STREAM is fed to a parser.
// Properties:
//   splits    - the stream fed whole, byte by byte, and in pseudo-random pieces (seeded by the
//               input) gives the same sequence of outcomes (each reply, TooLarge, and how it
//               ends: NeedMore or ProtocolError); each feed consumes at most what it is given,
//               all of it on NeedMore; after ProtocolError the parser keeps saying so (used 0).
//   reference - a recursive-descent parser over the whole buffer (numbers checked against
//               strtoll and to_string, limits applied to the finished tree) agrees on every
//               outcome: the same replies, TooLarge exactly for complete replies over a limit,
//               the same end.
//   command   - resp_command of arguments cut from the stream (binary, CR LF included) parses
//               back to one array of exactly those bulk strings, appended after what out held.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "resp.h"

#include "fuzz_check.h"

namespace {

using sess::RespLimits;
using sess::RespParser;
using sess::RespType;
using sess::RespValue;

// Unambiguous text of a reply: strings length-prefixed.
void dump(const RespValue& v, std::string& out) {
  switch (v.type) {
    case RespType::Status: out += "+" + std::to_string(v.str.size()) + ":" + v.str; return;
    case RespType::Error: out += "-" + std::to_string(v.str.size()) + ":" + v.str; return;
    case RespType::Integer: out += ":" + std::to_string(v.integer); return;
    case RespType::Bulk: out += "$" + std::to_string(v.str.size()) + ":" + v.str; return;
    case RespType::Nil: out += "nil"; return;
    case RespType::NilArray: out += "nil[]"; return;
    case RespType::Array:
      out += "[" + std::to_string(v.elements.size());
      for (const RespValue& e : v.elements) {
        out += ",";
        dump(e, out);
      }
      out += "]";
      return;
  }
  FUZZ_CHECK(false);
}

struct Run {
  std::vector<std::string> outcomes;  // dumped replies and "TooLarge"
  std::string end;                    // "NeedMore" or "ProtocolError"
  bool operator==(const Run& o) const { return outcomes == o.outcomes && end == o.end; }
};

// Feeds stream in pieces ending at cuts (ascending, then the end of the stream).
Run run(std::string_view stream, const RespLimits& limits, const std::vector<size_t>& cuts) {
  RespParser p;
  Run r;
  size_t start = 0;
  for (size_t i = 0; i <= cuts.size(); i++) {
    const size_t end = i < cuts.size() ? cuts[i] : stream.size();
    std::string_view piece = stream.substr(start, end - start);
    start = end;
    for (;;) {
      RespValue v;
      v.type = RespType::Integer;
      v.integer = 4242;
      size_t used = ~size_t(0);
      const RespParser::Result res = p.feed(piece, limits, &used, &v);
      FUZZ_CHECK(used <= piece.size());
      if (res == RespParser::Result::ProtocolError) {
        size_t again = 1;
        FUZZ_CHECK(p.feed(piece.substr(used), limits, &again, &v) ==
                   RespParser::Result::ProtocolError);
        FUZZ_CHECK(again == 0);
        r.end = "ProtocolError";
        return r;
      }
      if (res == RespParser::Result::NeedMore) {
        FUZZ_CHECK(used == piece.size());
        FUZZ_CHECK(v.type == RespType::Integer && v.integer == 4242);  // untouched
        break;
      }
      FUZZ_CHECK(used > 0);
      if (res == RespParser::Result::TooLarge) {
        FUZZ_CHECK(v.type == RespType::Nil && v.str.empty() && v.elements.empty());
        r.outcomes.push_back("TooLarge");
      } else {
        std::string d;
        dump(v, d);
        r.outcomes.push_back(d);
      }
      piece.remove_prefix(used);
      if (piece.empty()) break;
    }
  }
  r.end = "NeedMore";
  return r;
}

// --- reference: recursive descent over the whole buffer -------------------------------------

enum class Ref { Ok, Incomplete, Error };

// A number as Redis writes it: exactly what to_string prints for the value strtoll reads.
bool ref_number(const std::string& s, long long* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size() || std::to_string(v) != s) return false;
  *out = v;
  return true;
}

struct RefParser {
  std::string_view in;
  size_t pos = 0;
  size_t max_line = 0;

  // A line after the type byte, without CRLF.
  Ref line(std::string* out) {
    size_t i = pos;
    while (i < in.size() && in[i] != '\r' && in[i] != '\n') i++;
    if (i - pos > max_line) return Ref::Error;
    if (i == in.size()) return Ref::Incomplete;
    if (in[i] == '\n') return Ref::Error;
    if (i + 1 == in.size()) return Ref::Incomplete;
    if (in[i + 1] != '\n') return Ref::Error;
    out->assign(in.substr(pos, i - pos));
    pos = i + 2;
    return Ref::Ok;
  }

  Ref value(RespValue* v) {
    if (pos == in.size()) return Ref::Incomplete;
    const char type = in[pos++];
    std::string text;
    if (std::strchr("+-:$*", type) == nullptr || type == '\0') return Ref::Error;
    const Ref l = line(&text);
    if (l != Ref::Ok) return l;
    if (type == '+' || type == '-') {
      v->type = type == '+' ? RespType::Status : RespType::Error;
      v->str = text;
      return Ref::Ok;
    }
    long long n = 0;
    if (!ref_number(text, &n)) return Ref::Error;
    if (type == ':') {
      v->type = RespType::Integer;
      v->integer = n;
      return Ref::Ok;
    }
    if (type == '$') {
      if (n == -1) {
        v->type = RespType::Nil;
        return Ref::Ok;
      }
      if (n < -1 || n > 512LL * 1024 * 1024) return Ref::Error;
      const auto len = static_cast<size_t>(n);
      if (in.size() - pos < len) return Ref::Incomplete;
      v->type = RespType::Bulk;
      v->str.assign(in.substr(pos, len));
      pos += len;
      if (pos == in.size()) return Ref::Incomplete;
      if (in[pos] != '\r') return Ref::Error;
      if (pos + 1 == in.size()) return Ref::Incomplete;
      if (in[pos + 1] != '\n') return Ref::Error;
      pos += 2;
      return Ref::Ok;
    }
    if (n == -1) {
      v->type = RespType::NilArray;
      return Ref::Ok;
    }
    if (n < -1 || n > 2147483647LL) return Ref::Error;
    v->type = RespType::Array;
    for (long long i = 0; i < n; i++) {
      RespValue e;
      const Ref r = value(&e);
      if (r != Ref::Ok) return r;
      v->elements.push_back(std::move(e));
    }
    return Ref::Ok;
  }
};

// Within the limits: every bulk, every array, the nesting and the string bytes of the tree.
bool fits(const RespValue& v, const RespLimits& l, size_t depth, size_t* total) {
  switch (v.type) {
    case RespType::Status:
    case RespType::Error:
      *total += v.str.size();
      return *total <= l.max_total;
    case RespType::Bulk:
      *total += v.str.size();
      return v.str.size() <= l.max_bulk && *total <= l.max_total;
    case RespType::Array:
      if (depth + 1 > l.max_depth || v.elements.size() > l.max_elements) return false;
      for (const RespValue& e : v.elements) {
        if (!fits(e, l, depth + 1, total)) return false;
      }
      return true;
    default:
      return true;
  }
}

Run reference(std::string_view stream, const RespLimits& limits) {
  RefParser p;
  p.in = stream;
  p.max_line = limits.max_line;
  Run r;
  while (p.pos < stream.size()) {
    RespValue v;
    const Ref res = p.value(&v);
    if (res == Ref::Error) {
      r.end = "ProtocolError";
      return r;
    }
    if (res == Ref::Incomplete) break;
    size_t total = 0;
    if (fits(v, limits, 0, &total)) {
      std::string d;
      dump(v, d);
      r.outcomes.push_back(d);
    } else {
      r.outcomes.push_back("TooLarge");
    }
  }
  r.end = "NeedMore";
  return r;
}

uint64_t next(uint64_t& s) {  // xorshift64*
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 2685821657736338717ULL;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint8_t h[4] = {0, 0, 0, 0};
  std::memcpy(h, data, size < 4 ? size : 4);
  const std::string_view stream(reinterpret_cast<const char*>(data) + (size < 4 ? size : 4),
                                size < 4 ? 0 : size - 4);
  RespLimits limits;
  if (h[0] != 0xff) {
    limits.max_bulk = size_t(h[0]) * 4;
    limits.max_elements = h[1] & 15;
    limits.max_depth = h[1] >> 4;
    limits.max_total = size_t(h[2]) * 8;
    limits.max_line = h[3] & 63;
  }
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < size; i++) seed = (seed ^ data[i]) * 0x100000001b3ULL;
  seed |= 1;

  // --- splits ---------------------------------------------------------------------------------
  const Run whole = run(stream, limits, {});
  std::vector<size_t> bytewise;
  for (size_t i = 1; i < stream.size(); i++) bytewise.push_back(i);
  FUZZ_CHECK(run(stream, limits, bytewise) == whole);
  for (int round = 0; round < 3; round++) {
    std::vector<size_t> cuts;
    size_t at = 0;
    for (;;) {
      at += 1 + next(seed) % (round == 0 ? 4 : round == 1 ? 32 : 512);
      if (at >= stream.size()) break;
      cuts.push_back(at);
    }
    FUZZ_CHECK(run(stream, limits, cuts) == whole);
  }
  if (!stream.empty()) FUZZ_CHECK(run(stream, limits, {next(seed) % stream.size()}) == whole);

  // --- reference ------------------------------------------------------------------------------
  FUZZ_CHECK(reference(stream, limits) == whole);

  // --- resp_command ---------------------------------------------------------------------------
  std::pmr::vector<sess::pstring> args;
  for (size_t at = 0; at < stream.size() && args.size() < 64;) {
    const size_t len = next(seed) % 64 % (stream.size() - at + 1);
    args.emplace_back(stream.substr(at, len));
    at += len;
    if (len == 0 && next(seed) % 4 == 0) at++;
  }
  sess::pstring out("prefix");
  sess::resp_command(args, out);
  FUZZ_CHECK(out.compare(0, 6, "prefix") == 0);
  const std::string_view cmd = std::string_view(out).substr(6);
  RespParser p;
  RespValue v;
  size_t used = 0;
  RespLimits big;
  big.max_bulk = big.max_total = 1 << 20;
  FUZZ_CHECK(p.feed(cmd, big, &used, &v) == RespParser::Result::Reply);
  FUZZ_CHECK(used == cmd.size());
  FUZZ_CHECK(v.type == RespType::Array && v.elements.size() == args.size());
  for (size_t i = 0; i < args.size(); i++) {
    FUZZ_CHECK(v.elements[i].type == RespType::Bulk);
    FUZZ_CHECK(std::string_view(v.elements[i].str) == std::string_view(args[i]));
  }
  return 0;
}
