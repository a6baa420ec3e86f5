// One line of a Flask vector (t/unit/gen_flask_vectors.py) run through the core: shared by the
// unit test (test_flask_vectors.cpp) and the CLI the pytest builds (t/flask_core_cli.cpp).
//
//   cookie_open <secrets> <now> <max_age> <token>  -> ok <json> | expired | invalid
//   cookie_seal <secrets> <now> <json>              -> ok <token>
//   cookie_roundtrip <json>                         -> ok <json>  (tagged JSON -> data -> JSON)
//   value_text <json> <key>                         -> ok <text>
//   sid_sign <secrets> <sid> / sid_unsign <secrets> <token>
//   pickle_roundtrip|pickle_json|json_pickle <in>   -> ok <out> | invalid | forbidden | too_large
//   msgpack_roundtrip|msgpack_json|json_msgpack <in>
// Every argument and result is hex; <secrets> is a comma-separated list (the first signs).
// "refused" is a write the core declined.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "flask_json.h"
#include "flask_msgpack.h"
#include "flask_pickle.h"
#include "flask_signer.h"

namespace flask_ops {

inline std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string o;
  for (unsigned char c : s) {
    o.push_back(d[c >> 4]);
    o.push_back(d[c & 15]);
  }
  return o;
}

inline std::string unhex(std::string_view s) {
  std::string o;
  for (size_t i = 0; i + 1 < s.size(); i += 2) {
    o.push_back(static_cast<char>(sess::hex_value(s[i]) << 4 | sess::hex_value(s[i + 1])));
  }
  return o;
}

inline void add_keys(sess::FlaskKeys& keys, const std::string& list) {
  std::stringstream ss(list);
  std::string one;
  while (std::getline(ss, one, ',')) keys.add_secret(unhex(one));
}

inline std::string pickle_status(sess::PickleResult r) {
  switch (r) {
    case sess::PickleResult::Ok: return "ok";
    case sess::PickleResult::Forbidden: return "forbidden";
    case sess::PickleResult::TooLarge: return "too_large";
    case sess::PickleResult::Error: return "error";
    default: return "invalid";
  }
}

inline std::string msgpack_status(sess::MsgpackResult r) {
  switch (r) {
    case sess::MsgpackResult::Ok: return "ok";
    case sess::MsgpackResult::TooLarge: return "too_large";
    case sess::MsgpackResult::Error: return "error";
    default: return "invalid";
  }
}

// A record -> SessionData (record order) -> its JSON / a record again.
inline std::string run(const std::string& line) {
  std::istringstream in(line);
  std::string op;
  in >> op;
  std::vector<std::string> a;
  for (std::string w; in >> w;) a.push_back(w);
  auto arg = [&](size_t i) { return i < a.size() ? unhex(a[i]) : std::string(); };

  if (op == "cookie_open") {
    sess::FlaskKeys keys(sess::kFlaskCookieSalt);
    add_keys(keys, a.at(0));
    sess::pstring json;
    uint64_t ts = 0;
    auto r = sess::flask_cookie_open(keys, arg(3), std::stoull(a.at(1)), std::stoull(a.at(2)),
                                     &json, &ts);
    if (r == sess::FlaskTokenResult::Expired) return "expired";
    if (r != sess::FlaskTokenResult::Ok) return "invalid";
    // Flask then loads the JSON: what it would write back is what the data gives.
    sess::SessionData d;
    sess::pstring back;
    if (!sess::flask_session_from_json(json, d) || !sess::flask_session_to_json(d, back)) {
      return "invalid";
    }
    return "ok " + hex(back);
  }
  if (op == "cookie_seal") {
    sess::FlaskKeys keys(sess::kFlaskCookieSalt);
    add_keys(keys, a.at(0));
    sess::pstring tok;
    if (!sess::flask_cookie_seal(keys, arg(2), std::stoull(a.at(1)), tok)) return "refused";
    return "ok " + hex(tok);
  }
  if (op == "cookie_roundtrip") {
    sess::SessionData d;
    sess::pstring out;
    if (!sess::flask_session_from_json(arg(0), d)) return "invalid";
    if (!sess::flask_session_to_json(d, out)) return "refused";
    return "ok " + hex(out);
  }
  if (op == "value_text") {
    sess::SessionData d;
    if (!sess::flask_session_from_json(arg(0), d)) return "invalid";
    const sess::SessionValue* v = d.get(arg(1));
    sess::pstring out;
    if (v == nullptr || !sess::flask_value_text(*v, out)) return "refused";
    return "ok " + hex(out);
  }
  if (op == "sid_sign" || op == "sid_unsign") {
    sess::FlaskKeys keys(sess::kFlaskSessionSignerSalt);
    add_keys(keys, a.at(0));
    sess::pstring out;
    if (op == "sid_sign") {
      if (!sess::flask_sid_sign(keys, arg(1), out)) return "refused";
    } else if (sess::flask_sid_unsign(keys, arg(1), &out) != sess::FlaskTokenResult::Ok) {
      return "invalid";
    }
    return "ok " + hex(out);
  }

  const bool from_pickle = op == "pickle_roundtrip" || op == "pickle_json";
  const bool from_msgpack = op == "msgpack_roundtrip" || op == "msgpack_json";
  sess::SessionData d;
  if (from_pickle || from_msgpack) {
    sess::FlaskValue tree;
    if (from_pickle) {
      auto r = sess::flask_pickle_read(arg(0), tree);
      if (r != sess::PickleResult::Ok) return pickle_status(r);
    } else {
      auto r = sess::flask_msgpack_read(arg(0), tree);
      if (r != sess::MsgpackResult::Ok) return msgpack_status(r);
    }
    if (!sess::flask_session_from_tree(tree, false, d)) return "invalid";
  } else if (op == "json_pickle" || op == "json_msgpack") {
    if (!sess::flask_session_from_json(arg(0), d)) return "invalid";
  } else {
    return "unknown op";
  }
  sess::pstring out;
  if (op == "pickle_json" || op == "msgpack_json") {
    if (!sess::flask_session_to_json(d, out)) return "refused";
    return "ok " + hex(out);
  }
  sess::FlaskValue tree;
  if (!sess::flask_session_to_tree(d, tree)) return "refused";
  const bool ok = (op == "pickle_roundtrip" || op == "json_pickle")
                      ? sess::flask_pickle_write(tree, out)
                      : sess::flask_msgpack_write(tree, out);
  return ok ? "ok " + hex(out) : "refused";
}

}  // namespace flask_ops
