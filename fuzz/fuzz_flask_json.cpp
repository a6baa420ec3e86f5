// libFuzzer target: Flask's tagged JSON and the session model built from it
// (src/core/flask_value.h, src/core/flask_json.h).
//
// Input: any bytes, parsed as one JSON value and as a Flask session.
// Properties:
//   flask_json_parse ok   => writing it (sorted and unsorted) succeeds, is printable ASCII, and
//                            parses again to a tree that writes identically (fixed point).
//   from_json fails       => the data is empty.
//   from_json ok          => to_json succeeds; from_json(to_json) gives the same keys, texts and
//                            kinds; to_json of that is byte-identical; every value has a
//                            variable text; untag/tag of each value's JSON form round-trips
//                            where untag succeeds; the plain-JSON (msgspec) writer's output
//                            reads back.
#include <string>

#include "flask_json.h"

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

void printable(std::string_view s) {
  for (unsigned char c : s) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  sess::FlaskValue v;
  if (sess::flask_json_parse(in, v)) {
    for (bool sorted : {true, false}) {
      sess::pstring a;
      FUZZ_CHECK(sess::flask_json_write(v, sorted, a));
      printable(a);
      sess::FlaskValue v2;
      FUZZ_CHECK(sess::flask_json_parse(a, v2));
      sess::pstring b;
      FUZZ_CHECK(sess::flask_json_write(v2, sorted, b));
      FUZZ_CHECK(a == b);
    }
    sess::FlaskValue obj, back;
    if (sess::flask_untag(v, obj)) {
      FUZZ_CHECK(sess::flask_tag(obj, back));
      sess::FlaskValue obj2;
      FUZZ_CHECK(sess::flask_untag(back, obj2));  // tag(untag(x)) untags again
    }
  }

  sess::SessionData d;
  d.set_string("stale", "x");
  if (!sess::flask_session_from_json(in, d)) {
    FUZZ_CHECK(d.empty());
    return 0;
  }
  sess::pstring e1;
  FUZZ_CHECK(sess::flask_session_to_json(d, e1));
  printable(e1);
  sess::SessionData d2;
  FUZZ_CHECK(sess::flask_session_from_json(e1, d2));
  sess::pstring e2;
  FUZZ_CHECK(sess::flask_session_to_json(d2, e2));
  FUZZ_CHECK(e1 == e2);
  // Keys come back sorted, so compare after one normalisation.
  sess::SessionData d3;
  FUZZ_CHECK(sess::flask_session_from_json(e2, d3));
  FUZZ_CHECK(same(d2, d3));
  for (const auto& val : d.values()) {
    sess::pstring t;
    FUZZ_CHECK(sess::flask_value_text(val, t));
  }
  sess::pstring plain;
  if (sess::flask_session_to_plain_json(d, plain)) {
    sess::SessionData p;
    FUZZ_CHECK(sess::flask_session_from_plain_json(plain, p));
    FUZZ_CHECK(p.size() == d.size());
  }
  return 0;
}
