// Flask-Session >= 0.7 records in msgpack: msgspec.msgpack.Encoder().encode(dict(session)).
// Encoded and decoded by msgpack-c (Debian's libmsgpack-dev, linked as -lmsgpackc); this layer
// adds the limits msgpack-c lacks and the conversion to the object-form tree.
//
// Reader: in = the record bytes; out = the object-form tree (flask_value.h) of the top-level
// map. Accepted: nil, bool, ints (all widths; uint64 above int64 too), float32/64, str (UTF-8,
// as msgspec checks it), bin (-> bytes), array (-> list: msgspec gives lists back), map with str
// keys (duplicates: the last value at the first key's position). Refused: ext types (msgspec's
// datetime is ext -1: such a record is Invalid and never rewritten), the never-used byte 0xc1,
// non-str map keys, truncation, trailing bytes, the limits (max_input bytes; max_depth, at most
// msgpack-c's MSGPACK_EMBED_STACK_SIZE; max_nodes values, map keys included). Container lengths
// are checked against the bytes left and the node budget before msgpack-c allocates anything for
// them. Allocation failure is Error.
//
// Writer: the smallest encoding of each value, as msgspec and python-msgpack write them
// (fixint/uint8-64/int8-64, float64, fixstr/str8/16/32, bin8/16/32, fixarray/array16/32,
// fixmap/map16/32), maps in the tree's order, tuples as arrays. False for a Tagged value, an
// int beyond 64 bits, a float text that is no number. Nothing here throws.
#pragma once

#include "common.h"
#include "flask_value.h"

namespace sess {

enum class MsgpackResult : uint8_t { Ok, Invalid, TooLarge, Error };

struct MsgpackLimits {
  size_t max_input = 1 << 20;
  size_t max_nodes = kFlaskMaxNodes;
  size_t max_depth = kFlaskMaxDepth;
};

MsgpackResult flask_msgpack_read(std::string_view in, FlaskValue& out,
                                 const MsgpackLimits& limits = MsgpackLimits()) noexcept;
bool flask_msgpack_write(const FlaskValue& obj, pstring& out) noexcept;

}  // namespace sess
