// Flask-Session <= 0.6 records: pickle.dumps(dict(session)), read by a data-only reader and
// written as Python 3.8+ writes them by default (protocol 4).
//
// Reader: in = the record bytes; out = the object-form tree (flask_value.h) of the top-level
// dict. It runs a small stack machine over a fixed opcode subset - PROTO, FRAME, STOP, MARK,
// POP, POP_MARK, DUP, EMPTY_DICT/LIST/TUPLE, DICT, LIST, TUPLE, TUPLE1-3, SETITEM(S),
// APPEND(S), BINUNICODE/8, SHORT_BINUNICODE, BINBYTES/8, SHORT_BINBYTES, BININT/1/2, LONG1,
// LONG4, BINFLOAT, NEWTRUE, NEWFALSE, NONE, MEMOIZE, BINPUT, LONG_BINPUT, BINGET, LONG_BINGET -
// and builds only dict, list, tuple, str, bytes, int, float, bool and None. Nothing is looked up
// or called: every opcode that names or builds an object (GLOBAL, STACK_GLOBAL, REDUCE, BUILD,
// INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT1/2/4, PERSID, BINPERSID, ...) is Forbidden; the text
// opcodes of protocols 0-1 and bytearray/out-of-band buffers are Invalid. Memo references are
// shared until the end; a value that contains itself (a memo cycle) is Invalid, and copies of
// shared values count against the limits (no "billion laughs").
//
// Writer: the object-form dict as pickle.dumps(obj) (protocol 4) writes it: PROTO 4, one FRAME
// (none under 4 bytes), EMPTY_DICT MEMOIZE, MARK ... SETITEMS (SETITEM for a single item; batches
// of 1000, each with its MARK, as _pickle.c writes them), strings SHORT_BINUNICODE/BINUNICODE, bytes SHORT_BINBYTES/BINBYTES, ints BININT1/
// BININT2/BININT/LONG1, BINFLOAT, NEWTRUE/NEWFALSE, NONE, TUPLE1-3 or MARK TUPLE, MEMOIZE after
// every str, bytes, list, dict and non-empty tuple. CPython shares one object for every empty
// or one-character (latin-1) str and every empty or one-byte bytes, so the second occurrence of
// such a value is a BINGET as in CPython; other equal values are written again (CPython writes
// BINGET only when the very same object occurs twice, which a decoded record cannot tell).
// Records of 64 KiB and more (CPython starts a second frame there) are refused.
// Nothing here throws.
#pragma once

#include "common.h"
#include "flask_value.h"

namespace sess {

enum class PickleResult : uint8_t {
  Ok,
  Invalid,    // truncated, unknown or unsupported opcode, stack misuse, not a dict of str keys,
              // invalid UTF-8, memo cycle, trailing bytes after STOP
  Forbidden,  // an opcode that names or builds an object (see above)
  TooLarge,   // a limit below
  Error,      // allocation failure
};

struct PickleLimits {
  size_t max_input = 1 << 20;     // record bytes
  size_t max_expanded = 1 << 20;  // bytes of str/bytes/int text in the tree, copies included
  size_t max_nodes = kFlaskMaxNodes;  // values in the tree, copies included
  size_t max_depth = kFlaskMaxDepth;
};

PickleResult flask_pickle_read(std::string_view in, FlaskValue& out,
                               const PickleLimits& limits = PickleLimits()) noexcept;

// Appends the pickle of obj (an object-form value; a Dict for a session) to out. False for a
// Tagged value (uuid, datetime, markup need GLOBAL), a Float/Int text that is no number, or a
// record of 64 KiB or more.
bool flask_pickle_write(const FlaskValue& obj, pstring& out) noexcept;

// Decimal text of an integer <-> two's complement little-endian bytes (pickle's LONG1 form:
// encode_long/decode_long). Exposed for the tests.
bool flask_int_to_le(std::string_view decimal, std::string& out);
bool flask_int_from_le(std::string_view bytes, std::string& decimal);

}  // namespace sess
