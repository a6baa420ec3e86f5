// libFuzzer target: the bounded msgpack reader and writer (src/core/flask_msgpack.h).
//
// Input: any bytes, read as a Flask-Session >= 0.7 record.
// Properties:
//   not Ok  => the tree is empty (None).
//   Ok      => a Dict; the writer takes the tree itself (no tuples, tags or wide ints can come
//              out of the reader) and its output reads back and writes byte-identically (fixed
//              point); if SessionData takes the tree, the record written from the data reads
//              back to the same SessionData.
#include <string>

#include "flask_json.h"
#include "flask_msgpack.h"

#include "fuzz_check.h"

namespace {

bool same(const sess::SessionData& a, const sess::SessionData& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    const auto& x = a.values()[i];
    const auto& y = b.values()[i];
    if (x.key != y.key || x.text != y.text || x.is_string != y.is_string) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  sess::FlaskValue tree;
  const auto r = sess::flask_msgpack_read(in, tree);
  if (r != sess::MsgpackResult::Ok) {
    FUZZ_CHECK(tree.type == sess::FlaskValue::Type::None && tree.items.empty());
    return 0;
  }
  FUZZ_CHECK(tree.type == sess::FlaskValue::Type::Dict);
  sess::pstring direct;
  FUZZ_CHECK(sess::flask_msgpack_write(tree, direct));
  sess::FlaskValue again;
  FUZZ_CHECK(sess::flask_msgpack_read(direct, again) == sess::MsgpackResult::Ok);
  sess::pstring direct2;
  FUZZ_CHECK(sess::flask_msgpack_write(again, direct2));
  FUZZ_CHECK(direct == direct2);

  sess::SessionData d;
  if (!sess::flask_session_from_tree(tree, false, d)) {
    FUZZ_CHECK(d.empty());
    return 0;
  }
  sess::FlaskValue t2;
  FUZZ_CHECK(sess::flask_session_to_tree(d, t2));
  sess::pstring p1;
  if (!sess::flask_msgpack_write(t2, p1)) return 0;
  sess::FlaskValue t3;
  FUZZ_CHECK(sess::flask_msgpack_read(p1, t3) == sess::MsgpackResult::Ok);
  sess::SessionData d3;
  FUZZ_CHECK(sess::flask_session_from_tree(t3, false, d3));
  FUZZ_CHECK(same(d, d3));
  return 0;
}
