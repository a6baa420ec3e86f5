// libFuzzer target: the data-only pickle reader and the protocol-4 writer
// (src/core/flask_pickle.h).
//
// Input: any bytes, read as a Flask-Session record.
// Properties:
//   not Ok       => the tree is empty (None).
//   Ok           => a Dict; SessionData from it succeeds or is refused as a whole (empty);
//                   when it succeeds and the writer takes it, the written record reads back
//                   (Ok) to the same SessionData, and writing that again is byte-identical
//                   (the writer's output is a fixed point); it starts with PROTO 4 and ends
//                   with STOP.
//   small limits => never Ok with more nodes than allowed.
#include <string>

#include "flask_json.h"
#include "flask_pickle.h"

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

size_t count(const sess::FlaskValue& v) {
  size_t n = 1;
  for (const auto& i : v.items) n += count(i);
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  sess::FlaskValue tree;
  const auto r = sess::flask_pickle_read(in, tree);
  if (r != sess::PickleResult::Ok) {
    FUZZ_CHECK(tree.type == sess::FlaskValue::Type::None && tree.items.empty());
  } else {
    FUZZ_CHECK(tree.type == sess::FlaskValue::Type::Dict);
    sess::SessionData d;
    if (sess::flask_session_from_tree(tree, false, d)) {
      sess::FlaskValue t2;
      FUZZ_CHECK(sess::flask_session_to_tree(d, t2));
      sess::pstring p1;
      if (sess::flask_pickle_write(t2, p1)) {
        FUZZ_CHECK(p1.size() >= 3 && static_cast<unsigned char>(p1[0]) == 0x80 && p1[1] == 4 &&
                   p1.back() == '.');
        sess::FlaskValue t3;
        FUZZ_CHECK(sess::flask_pickle_read(p1, t3) == sess::PickleResult::Ok);
        sess::SessionData d3;
        FUZZ_CHECK(sess::flask_session_from_tree(t3, false, d3));
        FUZZ_CHECK(same(d, d3));
        sess::FlaskValue t4;
        FUZZ_CHECK(sess::flask_session_to_tree(d3, t4));
        sess::pstring p2;
        FUZZ_CHECK(sess::flask_pickle_write(t4, p2));
        FUZZ_CHECK(p1 == p2);
      }
    } else {
      FUZZ_CHECK(d.empty());
    }
  }

  sess::PickleLimits lim;
  lim.max_nodes = 16;
  lim.max_expanded = 64;
  sess::FlaskValue small;
  if (sess::flask_pickle_read(in, small, lim) == sess::PickleResult::Ok) {
    FUZZ_CHECK(count(small) <= 16);
  }
  return 0;
}
