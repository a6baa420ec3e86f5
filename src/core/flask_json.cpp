// Flask sessions as SessionData: tagged JSON (cookies), plain JSON (Flask-Session >= 0.7).
#include "flask_json.h"

namespace sess {

namespace {

using Type = FlaskValue::Type;

// Fills out from an object-form Dict; throws on allocation failure.
bool from_tree(const FlaskValue& obj, bool sorted, SessionData& out) {
  if (obj.type != Type::Dict || obj.keys.size() != obj.items.size() ||
      obj.keys.size() > SessionData::kMaxKeys) {
    return false;
  }
  pstring text;
  for (size_t i = 0; i < obj.keys.size(); i++) {
    const FlaskValue& v = obj.items[i];
    if (v.type == Type::Str && flask_utf8_valid(v.text)) {
      out.set_string(obj.keys[i], v.text);
      continue;
    }
    FlaskValue tagged;
    text.clear();
    if (!flask_tag(v, tagged) || !flask_json_write(tagged, sorted, text)) return false;
    out.set_json(obj.keys[i], text);
  }
  return true;
}

// The object-form Dict of data; throws on allocation failure.
bool to_tree(const SessionData& data, FlaskValue& out) {
  out = FlaskValue(Type::Dict);
  out.keys.reserve(data.size());
  out.items.reserve(data.size());
  for (const auto& v : data.values()) {
    out.keys.emplace_back(v.key);
    if (v.is_string) {
      out.items.emplace_back(Type::Str);
      out.items.back().text.assign(v.text);
      continue;
    }
    FlaskValue json;
    out.items.emplace_back();
    if (!flask_json_parse(v.text, json) || !flask_untag(json, out.items.back())) return false;
  }
  return true;
}

// Object form -> msgspec's plain JSON form: tuples as lists, bytes as base64 text.
bool to_plain(FlaskValue& v, size_t depth) {
  if (depth > kFlaskMaxDepth + 2) return false;
  switch (v.type) {
    case Type::Tagged:
      return false;
    case Type::Bytes: {
      std::string b64;
      flask_b64std_encode(v.text, b64);
      v.type = Type::Str;
      v.text.swap(b64);
      return true;
    }
    case Type::Tuple:
      v.type = Type::List;
      [[fallthrough]];
    case Type::List:
    case Type::Dict:
      for (auto& item : v.items) {
        if (!to_plain(item, depth + 1)) return false;
      }
      return true;
    default:
      return true;
  }
}

// True if the JSON-form tree holds a dict shaped like a tag whose tag Flask does not have:
// exactly one key, that key a space followed by one or more characters, and not one of " t",
// " b", " u", " d", " m", " di". The payload of a " di" is exempt: it is Flask's {"<tag>__": v}.
bool has_unknown_tag(const FlaskValue& v, bool di_payload, size_t depth) {
  if (depth > kFlaskMaxDepth + 2) return true;
  if (v.type == Type::Dict && v.keys.size() == 1 && !di_payload) {
    const std::string& k = v.keys[0];
    if (k.size() >= 2 && k[0] == ' ' && k != " t" && k != " b" && k != " u" && k != " d" &&
        k != " m" && k != " di") {
      return true;
    }
  }
  const bool di = v.type == Type::Dict && v.keys.size() == 1 && v.keys[0] == " di";
  for (const auto& item : v.items) {
    if (has_unknown_tag(item, di, depth + 1)) return true;
  }
  return false;
}

}  // namespace

bool flask_session_from_json(std::string_view json, SessionData& out) noexcept {
  try {
    out.clear();
    FlaskValue doc;
    // The JSON form of a cookie is also a valid object form: from_tree's tagging would wrap
    // tag-like dicts, so store each value's JSON form directly instead.
    if (!flask_json_parse(json, doc) || doc.type != Type::Dict ||
        doc.keys.size() > SessionData::kMaxKeys || has_unknown_tag(doc, false, 0)) {
      out.clear();
      return false;
    }
    pstring text;
    for (size_t i = 0; i < doc.keys.size(); i++) {
      const FlaskValue& v = doc.items[i];
      if (v.type == Type::Str && flask_utf8_valid(v.text)) {
        out.set_string(doc.keys[i], v.text);
        continue;
      }
      text.clear();
      if (!flask_json_write(v, true, text)) {
        out.clear();
        return false;
      }
      out.set_json(doc.keys[i], text);
    }
    return true;
  } catch (...) {
    out.clear();
    return false;
  }
}

bool flask_session_to_json(const SessionData& data, pstring& out) noexcept {
  const size_t base = out.size();
  try {
    // JSON form, not object form: the texts already are tagged JSON.
    FlaskValue doc(Type::Dict);
    for (const auto& v : data.values()) {
      doc.keys.emplace_back(v.key);
      doc.items.emplace_back();
      if (v.is_string) {
        doc.items.back().type = Type::Str;
        doc.items.back().text.assign(v.text);
      } else if (!flask_json_parse(v.text, doc.items.back())) {
        return false;
      }
    }
    return flask_json_write(doc, true, out);
  } catch (...) {
    if (out.size() > base) out.resize(base);
    return false;
  }
}

bool flask_json_canonical(std::string_view json, pstring& out) noexcept {
  FlaskValue v;
  return flask_json_parse(json, v) && flask_json_write(v, true, out);
}

bool flask_value_text(const SessionValue& v, pstring& out) noexcept {
  const size_t base = out.size();
  try {
    if (v.is_string) {
      out.append(v.text);
      return true;
    }
    FlaskValue json;
    if (!flask_json_parse(v.text, json)) return false;
    if (json.type == Type::Dict && json.keys.size() == 1) {
      const std::string& tag = json.keys[0];
      const FlaskValue& p = json.items[0];
      if (tag == " t" || tag == " b" || tag == " u" || tag == " d" || tag == " m") {
        if (p.type == Type::Str) {
          out.append(p.text);
          return true;
        }
        return flask_json_write(p, true, out);
      }
      if (tag == " di") {
        FlaskValue plain;
        if (flask_untag(json, plain) && plain.type == Type::Dict) {
          // Only the outer level is untagged: the inner value is shown as its tagged JSON.
          FlaskValue shown(Type::Dict);
          shown.keys = plain.keys;
          shown.items.push_back(p.items.empty() ? FlaskValue() : p.items[0]);
          return flask_json_write(shown, true, out);
        }
      }
    }
    out.append(v.text);
    return true;
  } catch (...) {
    if (out.size() > base) out.resize(base);
    return false;
  }
}

bool flask_session_from_tree(const FlaskValue& obj, bool sorted, SessionData& out) noexcept {
  try {
    out.clear();
    if (from_tree(obj, sorted, out)) return true;
  } catch (...) {
  }
  out.clear();
  return false;
}

bool flask_session_to_tree(const SessionData& data, FlaskValue& out) noexcept {
  try {
    if (to_tree(data, out)) return true;
  } catch (...) {
  }
  out = FlaskValue();
  return false;
}

bool flask_session_from_plain_json(std::string_view json, SessionData& out) noexcept {
  FlaskValue doc;
  if (!flask_json_parse(json, doc)) {
    out.clear();
    return false;
  }
  return flask_session_from_tree(doc, false, out);
}

bool flask_session_to_plain_json(const SessionData& data, pstring& out) noexcept {
  FlaskValue doc;
  try {
    if (!flask_session_to_tree(data, doc) || !to_plain(doc, 0)) return false;
  } catch (...) {
    return false;
  }
  return flask_json_write(doc, false, out);
}

}  // namespace sess
