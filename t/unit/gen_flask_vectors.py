#!/usr/bin/python3
"""Test vectors for the Flask bridge core, made by the real Flask, itsdangerous, Flask-Session,
pickle and msgpack (Debian 12: python3-flask 2.2, python3-flask-session 0.3, python3-msgpack).

Each vector is one operation line for the core (t/unit/flask_ops.h runs it) and the answer Python
gives for it. Arguments are hex; answers are "ok <hex>...", "expired", "invalid", "forbidden",
"too_large" or "refused" (see flask_ops.h).

  /usr/bin/python3 t/unit/gen_flask_vectors.py > t/unit/flask_vectors.h   # regenerate
  t/test_flask_core_vectors.py imports vectors() and runs them fresh against the core.
"""

import datetime
import json
import os
import pickle
import sys
import uuid
from unittest import mock

import msgpack
from flask import Flask, session
from flask.sessions import session_json_serializer
from itsdangerous import BadSignature, SignatureExpired, Signer
from markupsafe import Markup

T0 = 1700000000
LIFETIME = 3600
S1 = b"flask-secret-key-number-one"
S2 = bytes(range(256))[::7]  # a binary key, as os.urandom(24) keys are
S3 = b"k"  # short keys are accepted too


def h(b):
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogatepass")
    return b.hex()


def secrets(*keys):
    return ",".join(k.hex() for k in keys)


def make_app(secret=S1):
    app = Flask("vectors")
    app.secret_key = secret
    app.permanent_session_lifetime = datetime.timedelta(seconds=LIFETIME)
    return app


def tagged_dumps(app, value):
    with app.app_context():  # app.json: sort_keys=True, ensure_ascii=True
        return session_json_serializer.dumps(value)


def tagged_loads(app, text):
    with app.app_context():
        return session_json_serializer.loads(text)


def cookie(app, data, ts=T0):
    with app.test_request_context():
        s = app.session_interface.get_signing_serializer(app)
        with mock.patch("time.time", return_value=ts + 0.25):
            return s.dumps(data)


def flask_result(app, token, now):
    """What Flask's open_session makes of a cookie: ("ok", json) / "expired" / "invalid"."""
    with app.test_request_context():
        s = app.session_interface.get_signing_serializer(app)
        with mock.patch("time.time", return_value=now + 0.25):
            try:
                data = s.loads(token, max_age=LIFETIME)
            except SignatureExpired:
                return "expired"
            except BadSignature:
                return "invalid"
            except Exception:  # BadPayload (not caught by Flask: a 500 there)
                return "invalid"
    return "ok " + h(tagged_dumps(app, data))


UTC = datetime.timezone.utc

SESSIONS = [
    {"user": "alice", "_permanent": True},
    {"_fresh": True, "_id": "ab" * 64, "_user_id": "42", "csrf_token": "f" * 40,
     "_permanent": True},
    {"t": (1, "a", (2, 3), ()), "b": b"\x00\x01bytes\xff", "u": uuid.UUID(int=0x1234567890),
     "d": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "m": Markup("<b>hi</b>"),
     "di": {" t": 5}, "dd": {" di": {"x": 1}},
     "nested": {"z": 1, "a": [1.5, 1e-7, 1e16, 123456789.0, -0.0, 12345678901234567890],
                "\u00e9": "\u00fc", "n": None}},
    {"s": "\x7f\x00\x1f\n\r\t\b\f\"\\/\u00e9\u20ac\U0001f600", "emoji\U0001f600": 1,
     "\u00e9": 2, "z": 3, "A": 4, "": 5},
    {"data": "x" * 500, "user": "bob"},
    {"f": float("inf"), "g": float("-inf"), "h": float("nan"), "big": 2**70},
    {"lone": "\ud800x\udfff", "pair": "\ud83d\ude00"},
    {},
    {"list": [[[]], {}, [{"b": 2, "a": 1}]], "bools": [True, False, None]},
]

# Values pickle and msgpack can carry (no uuid, datetime, markup).
RECORDS = [
    {"_permanent": True, "user": "alice"},
    {"_fresh": True, "_id": "ab" * 64, "_user_id": "42", "csrf_token": "f" * 40},
    {"i": [0, 1, 255, 256, 65535, 65536, -1, -2**31, 2**31 - 1, 2**31, -2**31 - 1, 2**62],
     "f": [0.0, -0.0, 1.5, 1e-7, 1e300, 0.1, float("inf")],
     "t": (1, (2,), (), ("a", "b", "c", "d")), "by": [b"", b"yy", b"z" * 300],
     "n": None, "bo": [True, False], "s": ["", "ab", "\u20ac", "x" * 300],
     "d": {"z": 1, "a": 2}, "tagish": {" t": 1}},
    {"a": "a", "b": "a", "c": "\u00e9", "d": "\u00e9", "e": "", "f": "", "g": b"q", "h": b"q"},
    {"w": "\u00e9t\u00e9 \U0001f600"},
]
# More than one batch (1000) of SETITEMS / APPENDS: round trips only (they are long). A session
# has at most SessionData::kMaxKeys (256) keys: more is refused, the nested dict is fine.
BIG_RECORDS = [{"d": {"k%d" % i: i for i in range(1001)}}, {"l": list(range(1001))},
               {"l": list(range(2001))}, {"l": [1]}, {"d": {"a": 1}}]
TOO_MANY_KEYS = {"k%d" % i: i for i in range(257)}
BIG_INTS = {"i": [2**64, -2**63 - 1, 2**100, -2**100, 10**50]}


def pickle_cases(app, out):
    for d in BIG_RECORDS:
        out.append(("pickle_roundtrip " + pickle.dumps(d).hex(), "ok " + pickle.dumps(d).hex()))
    for d in RECORDS + [BIG_INTS]:
        p = pickle.dumps(d)
        out.append(("pickle_roundtrip " + p.hex(), "ok " + p.hex()))
        out.append(("pickle_json " + p.hex(), "ok " + h(tagged_dumps(app, d))))
        j = tagged_dumps(app, d)
        out.append(("json_pickle " + h(j), "ok " + pickle.dumps(tagged_loads(app, j)).hex()))
    # Hostile and broken records: what pickle.loads would do is irrelevant, nothing may run.
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned >&2",))

    hostile = [
        (pickle.dumps({"x": Evil()}), "forbidden"),
        (pickle.dumps({"x": Evil()}, protocol=2), "forbidden"),
        (pickle.dumps({"x": Evil()}, protocol=0), "invalid"),  # text opcodes come first
        (pickle.dumps({"d": datetime.datetime(2024, 1, 1)}), "forbidden"),
        (pickle.dumps({"u": uuid.UUID(int=1)}), "forbidden"),
        (b"\x80\x04\x8c\x02os\x8c\x06system\x93.", "forbidden"),
        (pickle.dumps({"s": {1, 2}}), "invalid"),  # sets: not session data
        (pickle.dumps(["not", "a", "dict"]), "invalid"),
        (pickle.dumps({1: "int key"}), "invalid"),
        (pickle.dumps({"a": 1})[:-1], "invalid"),  # truncated: no STOP
        (pickle.dumps({"a": 1}) + b"x", "invalid"),  # trailing bytes
        (b"\x80\x04X\xff\xff\xff\x7f", "too_large"),  # a 2 GiB string claimed
        (b"\x80\x04X\x10\x00\x00\x00abc", "invalid"),  # truncated string
        (pickle.dumps(TOO_MANY_KEYS), "invalid"),
        (b"\x80\x04X\xff\xff\xff\xffabc", "too_large"),
    ]
    cyc = []
    cyc.append(cyc)
    hostile.append((pickle.dumps({"l": cyc}), "invalid"))
    cd = {}
    cd["self"] = cd
    hostile.append((pickle.dumps(cd), "invalid"))
    deep = []
    cur = deep
    for _ in range(100):
        nxt = []
        cur.append(nxt)
        cur = nxt
    hostile.append((pickle.dumps({"deep": deep}), "too_large"))
    lol = ["lol" * 10]
    for _ in range(30):
        lol = [lol, lol]  # shared: 2**30 copies when expanded
    hostile.append((pickle.dumps({"laughs": lol}), "too_large"))
    for p, want in hostile:
        out.append(("pickle_roundtrip " + p.hex(), want))


def msgpack_cases(app, out):
    deep = [1]
    for _ in range(40):
        deep = [deep]
    for d in BIG_RECORDS:
        out.append(("msgpack_roundtrip " + msgpack.packb(d).hex(), "ok " + msgpack.packb(d).hex()))
    for d in RECORDS:
        p = msgpack.packb(d)
        plain = msgpack.unpackb(p)  # tuples come back as lists, as from msgspec
        out.append(("msgpack_roundtrip " + p.hex(), "ok " + p.hex()))
        out.append(("msgpack_json " + p.hex(), "ok " + h(tagged_dumps(app, plain))))
        j = tagged_dumps(app, d)
        out.append(("json_msgpack " + h(j), "ok " + msgpack.packb(tagged_loads(app, j)).hex()))
    hostile = [
        (b"\x81\xa1t\xd6\xff" + b"\x00" * 4, "invalid"),  # msgspec datetime: ext -1
        (msgpack.packb({"t": msgpack.ExtType(5, b"x")}), "invalid"),
        (msgpack.packb([1, 2]), "invalid"),
        (msgpack.packb({1: 2}), "invalid"),
        (msgpack.packb({"a": 1})[:-1], "invalid"),
        (msgpack.packb({"a": 1}) + b"\xc0", "invalid"),
        (b"\x81\xa1a\xdd\xff\xff\xff\xff", "invalid"),  # a 4G-item array claimed
        (b"\x81\xa1a\xc1", "invalid"),
        (msgpack.packb(TOO_MANY_KEYS), "invalid"),
        (b"\x81\xa1a\xa2\xc3\x28", "invalid"),  # invalid UTF-8
        (msgpack.packb({"d": deep}), "too_large"),
    ]
    for p, want in hostile:
        out.append(("msgpack_roundtrip " + p.hex(), want))


def flask_session_cases(out):
    """What Flask-Session 0.3 (Debian 12) really stores: a Redis SETEX of pickle.dumps(dict)."""
    from flask_session import Session

    class FakeRedis:
        def __init__(self):
            self.data = {}

        def get(self, k):
            return self.data.get(k)

        def setex(self, name, value, time):
            self.data[name] = value

        def delete(self, k):
            self.data.pop(k, None)

    app = make_app()
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=FakeRedis(), SESSION_USE_SIGNER=True,
                      SESSION_KEY_PREFIX="session:")
    Session(app)

    @app.route("/login")
    def login():
        session["user"] = "alice"
        session["n"] = 3
        session["t"] = (1, 2)
        session["b"] = b"\x00"
        return "ok"

    c = app.test_client()
    with mock.patch("flask_session.sessions.uuid4", return_value=uuid.UUID(int=0xc0ffee)):
        r = c.get("/login")
    value = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    sid = Signer(S1, salt="flask-session", key_derivation="hmac").unsign(value).decode()
    record = app.config["SESSION_REDIS"].data["session:" + sid]
    assert record == pickle.dumps(pickle.loads(record))
    out.append(("sid_unsign %s %s" % (secrets(S1), h(value)), "ok " + h(sid)))
    out.append(("pickle_roundtrip " + record.hex(), "ok " + record.hex()))
    out.append(("pickle_json " + record.hex(),
                "ok " + h(tagged_dumps(app, pickle.loads(record)))))


def vectors():
    out = []
    app = make_app()
    # Cookies: Flask-made tokens open; nginx-made tokens equal Flask's.
    for d in SESSIONS:
        j = tagged_dumps(app, d)
        tok = cookie(app, d)
        out.append(("cookie_open %s %d %d %s" % (secrets(S1), T0 + 5, LIFETIME, h(tok)),
                    flask_result(app, tok, T0 + 5)))
        out.append(("cookie_seal %s %d %s" % (secrets(S1), T0, h(j)), "ok " + h(tok)))
        out.append(("cookie_roundtrip " + h(j), "ok " + h(j)))
    for key, app_k in ((S2, make_app(S2)), (S3, make_app(S3))):
        d = SESSIONS[1]
        tok = cookie(app_k, d)
        out.append(("cookie_open %s %d %d %s" % (secrets(S1, key), T0, LIFETIME, h(tok)),
                    flask_result(app_k, tok, T0)))
        out.append(("cookie_seal %s %d %s" % (secrets(key), T0, h(tagged_dumps(app, d))),
                    "ok " + h(tok)))
    # Lifetime, keys and tampering, each as Flask judges it.
    tok = cookie(app, SESSIONS[0])
    big = cookie(app, SESSIONS[4])  # compressed ('.' prefix)
    assert big.startswith(".")
    payload, ts, sig = tok.split(".")
    def flip(s, i):
        return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
    hostile = [
        (tok, T0 + LIFETIME), (tok, T0 + LIFETIME + 1), (tok, T0 - 1), (tok, T0),
        (big, T0 + 1), (big[:-1], T0), (big[1:], T0), (flip(big, 5), T0),
        (flip(tok, 3), T0), (".".join([payload, flip(ts, 2), sig]), T0),
        (".".join([payload, ts, flip(sig, 4)]), T0), (tok + "x", T0), (tok[:-1], T0),
        (payload + "." + sig, T0), ("", T0), ("..", T0),
    ]
    for t, now in hostile:
        out.append(("cookie_open %s %d %d %s" % (secrets(S1), now, LIFETIME, h(t)),
                    flask_result(app, t, now)))
    out.append(("cookie_open %s %d %d %s" % (secrets(S2), T0, LIFETIME, h(tok)),
                flask_result(make_app(S2), tok, T0)))
    # Non-canonical JSON (whitespace, unsorted keys, escapes): Python writes it back sorted.
    for j in ['{ "b" : 1 , "a" : [ 1 , { "y" : 2 , "x" : "\\u00e9\\/" } ] }',
              '{"user":"\u00e9\u20ac"}', '{"a":1,"a":2}', '{"x":{" t":[1,2]}}',
              '{"s":"\\ud83d\\ude00\\ud800"}', '  {"k": NaN, "m": -Infinity}  ']:
        out.append(("cookie_roundtrip " + h(j), "ok " + h(tagged_dumps(app, tagged_loads(app, j)))))
    # Variable text of tagged values.
    d = SESSIONS[2]
    j = tagged_dumps(app, d)
    with app.app_context():
        tags = session_json_serializer
        texts = {
            "t": json.dumps(tags.tag(d["t"])[" t"], sort_keys=True, separators=(",", ":")),
            "b": tags.tag(d["b"])[" b"],
            "u": d["u"].hex,
            "d": tags.tag(d["d"])[" d"],
            "m": str(d["m"]),
            "di": json.dumps(d["di"], sort_keys=True, separators=(",", ":")),
            "nested": json.dumps(tags.tag(d["nested"]), sort_keys=True, separators=(",", ":")),
        }
    for k, want in texts.items():
        out.append(("value_text %s %s" % (h(j), h(k)), "ok " + h(want)))
    # Flask-Session's signed id.
    for key in (S1, S2, S3):
        signer = Signer(key, salt="flask-session", key_derivation="hmac")
        sid = str(uuid.UUID(int=0xfeedface))
        signed = signer.sign(sid.encode()).decode()
        out.append(("sid_sign %s %s" % (secrets(key), h(sid)), "ok " + h(signed)))
        out.append(("sid_unsign %s %s" % (secrets(S3, key), h(signed)), "ok " + h(sid)))
        out.append(("sid_unsign %s %s" % (secrets(b"other"), h(signed)), "invalid"))
    pickle_cases(app, out)
    msgpack_cases(app, out)
    flask_session_cases(out)
    return out


def main():
    vs = vectors()
    print("// Generated by t/unit/gen_flask_vectors.py with Debian 12's Python 3.11, Flask 2.2,")
    print("// itsdangerous 2.1, Flask-Session 0.3 and msgpack 1.0. Do not edit: regenerate with")
    print("//   /usr/bin/python3 t/unit/gen_flask_vectors.py > t/unit/flask_vectors.h")
    print("#pragma once\n")
    print("struct FlaskVector {\n  const char* op;\n  const char* want;\n};\n")
    print("static const FlaskVector kFlaskVectors[] = {")
    for op, want in vs:
        print("    {%s,\n     %s}," % (json.dumps(op), json.dumps(want)))
    print("};")


if __name__ == "__main__":
    sys.exit(main())
