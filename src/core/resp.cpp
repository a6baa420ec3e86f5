// RESP2 parser with limits, and command formatting (see resp.h).
#include "resp.h"

#include <algorithm>
#include <charconv>
#include <limits>

namespace sess {

namespace {

constexpr int64_t kMaxBulkLen = 512 * 1024 * 1024;  // Redis's own ceiling (proto-max-bulk-len)
constexpr int64_t kMaxArrayLen = std::numeric_limits<int32_t>::max();
// Announced sizes are not trusted up front: what has not arrived is not allocated beyond these.
constexpr size_t kReserveElements = 64;
constexpr size_t kReserveBytes = 64 * 1024;

// A decimal as Redis writes one: "0", or an optional '-' then digits without a leading zero,
// within int64_t ("-0", "+1", "01", " 1" and "" are not).
bool parse_i64(std::string_view s, int64_t* out) noexcept {
  const bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  if (s.empty() || s.size() > 19 || (s[0] == '0' && (s.size() > 1 || neg))) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');  // 19 digits fit in uint64_t
  }
  const uint64_t max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (v > max + (neg ? 1 : 0)) return false;
  *out = neg ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

void append_header(char type, size_t n, pstring& out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), n);
  out.push_back(type);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
  out.append("\r\n", 2);
}

size_t decimal_len(size_t n) noexcept {
  size_t d = 1;
  for (; n >= 10; n /= 10) d++;
  return d;
}

}  // namespace

RespParser::Result RespParser::feed(std::string_view data, const RespLimits& limits, size_t* used,
                                    RespValue* out) {
  size_t pos = 0;
  const size_t n = data.size();
  if (state_ == State::Failed) {
    *used = 0;
    return Result::ProtocolError;
  }

  const auto fail = [&]() {
    state_ = State::Failed;
    *used = pos;
    return Result::ProtocolError;
  };
  // The reply no longer fits: drop what was kept, and from now on only count the values still to
  // read (one frame; an array adds its elements, each complete value takes one away). Every
  // frame but the innermost counts the open array inside it, which its own frame replaces.
  const auto overflow = [&]() {
    int64_t pending = 1;
    if (!stack_.empty()) {
      pending = 1 - static_cast<int64_t>(stack_.size());
      for (const Frame& f : stack_) pending += f.remaining;
    }
    stack_.clear();
    stack_.push_back(Frame{nullptr, pending});
    root_ = RespValue();
    total_ = 0;
    too_large_ = true;
  };
  // String bytes the reply may still keep.
  const auto room = [&]() { return limits.max_total - std::min(total_, limits.max_total); };
  // The slot of the next value: the root or a new element of the innermost array (none when
  // skipping).
  const auto open = [&]() -> RespValue* {
    if (too_large_) return nullptr;
    if (stack_.empty()) {
      root_ = RespValue();
      return &root_;
    }
    return &stack_.back().value->elements.emplace_back();
  };
  // A value is complete; true when that completes the reply.
  const auto complete = [&]() {
    while (!stack_.empty()) {
      if (--stack_.back().remaining > 0) return false;
      if (too_large_) return true;
      stack_.pop_back();
    }
    return true;
  };

  try {
    while (pos < n) {
      bool done = false;
      switch (state_) {
        case State::Type: {
          const char c = data[pos++];
          if (c != '+' && c != '-' && c != ':' && c != '$' && c != '*') return fail();
          type_ = c;
          line_.clear();
          state_ = State::Line;
          break;
        }

        case State::Line: {
          size_t end = pos;
          while (end < n && data[end] != '\r' && data[end] != '\n') end++;
          if (line_.size() + (end - pos) > limits.max_line) return fail();
          line_.append(data.data() + pos, end - pos);
          pos = end;
          if (pos < n) {
            if (data[pos] != '\r') return fail();  // a bare LF
            pos++;
            state_ = State::LineLf;
          }
          break;
        }

        case State::LineLf: {
          if (data[pos++] != '\n') return fail();
          state_ = State::Type;
          if (type_ == '+' || type_ == '-') {
            if (!too_large_ && line_.size() > room()) overflow();
            if (RespValue* v = open()) {
              v->type = type_ == '+' ? RespType::Status : RespType::Error;
              v->str = line_;
              total_ += line_.size();
            }
            done = complete();
            break;
          }
          int64_t num = 0;
          if (!parse_i64(line_, &num)) return fail();
          if (type_ == ':') {
            if (RespValue* v = open()) {
              v->type = RespType::Integer;
              v->integer = num;
            }
            done = complete();
          } else if (num == -1) {
            if (RespValue* v = open()) v->type = type_ == '$' ? RespType::Nil : RespType::NilArray;
            done = complete();
          } else if (num < 0) {
            return fail();
          } else if (type_ == '$') {
            if (num > kMaxBulkLen) return fail();
            const auto len = static_cast<size_t>(num);
            if (!too_large_ && (len > limits.max_bulk || len > room())) overflow();
            if (RespValue* v = open()) {
              v->type = RespType::Bulk;
              v->str.reserve(std::min(len, kReserveBytes));
              total_ += len;
            }
            bulk_left_ = num;
            state_ = num == 0 ? State::BulkCr : too_large_ ? State::Skip : State::Bulk;
          } else {  // '*'
            if (num > kMaxArrayLen) return fail();
            if (!too_large_ && (static_cast<uint64_t>(num) > limits.max_elements ||
                                stack_.size() + 1 > limits.max_depth)) {
              overflow();
            }
            if (too_large_) {
              Frame& f = stack_.back();
              if (f.remaining > std::numeric_limits<int64_t>::max() - num) return fail();
              f.remaining += num;  // the array is replaced by its elements
              done = complete();
            } else {
              RespValue* v = open();
              v->type = RespType::Array;
              if (num == 0) {
                done = complete();
              } else {
                v->elements.reserve(std::min(static_cast<size_t>(num), kReserveElements));
                stack_.push_back(Frame{v, num});
              }
            }
          }
          break;
        }

        case State::Bulk:
        case State::Skip: {
          const auto take = static_cast<size_t>(
              std::min(static_cast<uint64_t>(bulk_left_), static_cast<uint64_t>(n - pos)));
          if (state_ == State::Bulk) {
            RespValue& v = stack_.empty() ? root_ : stack_.back().value->elements.back();
            v.str.append(data.data() + pos, take);
          }
          pos += take;
          bulk_left_ -= static_cast<int64_t>(take);
          if (bulk_left_ == 0) state_ = State::BulkCr;
          break;
        }

        case State::BulkCr:
          if (data[pos++] != '\r') return fail();
          state_ = State::BulkLf;
          break;

        case State::BulkLf:
          if (data[pos++] != '\n') return fail();
          state_ = State::Type;
          done = complete();
          break;

        case State::Failed:
          return fail();
      }

      if (done) {
        *used = pos;
        const bool too_large = too_large_;
        if (too_large) {
          *out = RespValue();
        } else {
          *out = std::move(root_);
        }
        root_ = RespValue();
        stack_.clear();
        too_large_ = false;
        total_ = 0;
        return too_large ? Result::TooLarge : Result::Reply;
      }
    }
  } catch (...) {
    state_ = State::Failed;  // half-built: only reset() makes the parser usable again
    throw;
  }
  *used = n;
  return Result::NeedMore;
}

void RespParser::reset() {
  state_ = State::Type;
  type_ = 0;
  line_ = std::string();
  bulk_left_ = 0;
  too_large_ = false;
  total_ = 0;
  root_ = RespValue();
  stack_.clear();
}

void resp_command(const std::pmr::vector<pstring>& args, pstring& out) {
  size_t len = 3 + decimal_len(args.size());
  for (const pstring& a : args) len += 5 + decimal_len(a.size()) + a.size();
  out.reserve(out.size() + len);
  append_header('*', args.size(), out);
  for (const pstring& a : args) {
    append_header('$', a.size(), out);
    out.append(a);
    out.append("\r\n", 2);
  }
}

}  // namespace sess
