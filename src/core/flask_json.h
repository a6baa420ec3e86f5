// A Flask session as the module's SessionData, and its JSON (Flask's tagged JSON in the cookie,
// msgspec's plain JSON in Flask-Session >= 0.7 records).
//
// SessionData holds the session's top-level keys in their order. A value that is a Python str
// of well-formed UTF-8 is held decoded (is_string: what $session_<key> shows verbatim); any other
// value is held as its Flask tagged-JSON text (is_string false): numbers with their original
// text, tuples as {" t":[...]}, bytes as {" b":"<base64>"}, and so on, exactly as Flask's
// TaggedJSONSerializer writes them. Values nginx does not touch therefore go back unchanged.
//
//   cookie JSON -> SessionData    flask_session_from_json: nested keys sorted (Flask writes them
//                                 sorted; Python would sort them on its next write anyway)
//   SessionData -> cookie JSON    flask_session_to_json: byte for byte what Flask writes, i.e.
//                                 json.dumps(tagged, sort_keys=True, separators=(",", ":")),
//                                 ensure_ascii (\uXXXX lowercase, surrogate pairs, DEL as \u007f)
//   value -> variable text        flask_value_text: tuple -> JSON array text, bytes -> base64,
//                                 uuid -> hex, datetime -> HTTP date, markup -> the string
//   record tree <-> SessionData   flask_session_from_tree / flask_session_to_tree: the object-
//                                 form dict pickle and msgpack records decode to (nested dicts
//                                 keep their order in the JSON text, so a record written back
//                                 keeps it too)
//
// Refused (false, data left empty): malformed JSON, a top-level value that is not an object,
// keys beyond SessionData::kMaxKeys, the limits of flask_value.h. Nothing here throws.
// flask_session_from_json also refuses an unknown tag: anywhere in the session (the session
// itself included), an object with exactly one key that is a space followed by one or more
// characters but none of Flask's tags " t", " b", " u", " d", " m", " di" (the {"<tag>__": v}
// payload of a " di" excepted). Flask would keep such an object as a plain dict; the bridge
// takes it for a tag it does not know (a newer Flask's, or the app's own) and the session for
// invalid rather than carry a value it may misread.
#pragma once

#include "common.h"
#include "flask_value.h"
#include "session_data.h"

namespace sess {

bool flask_session_from_json(std::string_view json, SessionData& out) noexcept;
bool flask_session_to_json(const SessionData& data, pstring& out) noexcept;

// Canonical (sorted, ASCII) tagged-JSON text of one JSON value, for a value the glue sets as
// JSON (session_set of a non-string). False if json is not one JSON value.
bool flask_json_canonical(std::string_view json, pstring& out) noexcept;

// The text a variable shows for v (see above); strings verbatim, other JSON as its text.
bool flask_value_text(const SessionValue& v, pstring& out) noexcept;

// obj: an object-form Dict (flask_value.h). sorted: nested dicts' JSON text sorted (cookie) or
// in their order (records).
bool flask_session_from_tree(const FlaskValue& obj, bool sorted, SessionData& out) noexcept;
// The object-form Dict of data, in data's order (values parsed from their JSON text, untagged).
bool flask_session_to_tree(const SessionData& data, FlaskValue& out) noexcept;

// Flask-Session >= 0.7 "json" records: msgspec.json of dict(session), plain JSON (no tags):
// decoded as plain JSON (a dict that looks like a tag stays a dict), written in the session's
// order with bytes as base64 text and tuples as arrays, as msgspec writes them (ASCII escapes,
// where msgspec writes UTF-8: both decode to the same session). Refused on write: uuid,
// datetime and markup values (a Flask cookie's tags, which no record decoder gives back).
bool flask_session_from_plain_json(std::string_view json, SessionData& out) noexcept;
bool flask_session_to_plain_json(const SessionData& data, pstring& out) noexcept;

}  // namespace sess
