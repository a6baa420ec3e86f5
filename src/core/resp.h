// RESP2, the Redis protocol: commands out, replies in, parsed as they arrive and within limits
// (replies are input from the network).
//
// Why not hiredis' reader: it buffers every reply whole and has no limit on a bulk string's
// length, while DESIGN.md requires a record larger than a fixed limit to be refused without
// being buffered whole. This parser skips the bytes of an oversized bulk string as they arrive
// and reports the reply as TooLarge; everything else is an ordinary, bounded RESP2 parser.
//
// Grammar (RESP2): "+text\r\n" status, "-text\r\n" error, ":int\r\n" integer,
// "$len\r\n<len bytes>\r\n" bulk ($-1: nil), "*n\r\n<n replies>" array (*-1: nil array).
// Anything else, a length or integer that is not a decimal number in range (as Redis writes them:
// no sign but '-', no leading zero; integers within int64_t, bulk lengths -1..512 MiB, array
// sizes -1..2^31-1), a line holding a lone CR or LF, or a missing CRLF is a protocol error: the
// connection is out of step and must be closed.
#pragma once

#include "common.h"

#include <string>
#include <vector>

namespace sess {

enum class RespType : uint8_t { Status, Error, Integer, Bulk, Nil, Array, NilArray };

struct RespValue {
  RespType type = RespType::Nil;
  std::string str;                  // Status, Error, Bulk
  int64_t integer = 0;              // Integer
  std::vector<RespValue> elements;  // Array
};

// A reply over a limit is read to its end (nested array headers included) without being kept.
struct RespLimits {
  size_t max_bulk = 64 * 1024;      // longer bulk strings make the reply TooLarge
  size_t max_elements = 65536;      // per array; more: TooLarge
  size_t max_depth = 8;             // nested arrays (a top-level array is 1; *-1 is no array);
                                    // deeper: TooLarge
  size_t max_total = 1024 * 1024;   // status, error and bulk bytes kept per reply; more: TooLarge
  size_t max_line = 64 * 1024;      // a status/error/integer/length line without its CRLF;
                                    // longer: ProtocolError
};

class RespParser {
 public:
  enum class Result : uint8_t {
    Reply,          // *out holds one complete reply
    TooLarge,       // one complete reply was consumed but exceeded the limits; *out is empty
    NeedMore,       // every byte given was consumed; no complete reply yet
    ProtocolError,  // the stream is not RESP2: close the connection
  };

  // Consumes bytes of data from the start, up to the end of one reply at most; *used says how
  // many (the caller feeds the rest again). limits apply to the reply being parsed (pass the same
  // limits until it completes). *out is written only for Reply and TooLarge. After
  // ProtocolError (which it then keeps returning, *used = 0) or an exception (std::bad_alloc)
  // the parser must be reset().
  Result feed(std::string_view data, const RespLimits& limits, size_t* used, RespValue* out);

  void reset();

 private:
  struct Frame {
    RespValue* value;   // nullptr while a TooLarge reply is skipped (then the only frame)
    int64_t remaining;  // elements still to complete (skipping: values of the whole reply)
  };
  enum class State : uint8_t { Type, Line, LineLf, Bulk, BulkCr, BulkLf, Skip, Failed };
  State state_ = State::Type;
  char type_ = 0;
  std::string line_;         // the current line, without CRLF
  int64_t bulk_left_ = 0;    // bytes of the current bulk string still to read (or skip)
  bool too_large_ = false;   // the reply being parsed exceeded the limits (being skipped)
  size_t total_ = 0;         // string bytes kept for the reply so far
  RespValue root_;
  std::vector<Frame> stack_;
};

// Appends args as one RESP2 command (an array of bulk strings) to out.
void resp_command(const std::pmr::vector<pstring>& args, pstring& out);

}  // namespace sess
