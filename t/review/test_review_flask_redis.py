"""Adversarial review: the Flask bridge's Redis store (session_format flask + session_store redis).

Real nginx, real redis-server, real Flask-Session 0.3.2 (t/flask_session_app.py) under
/usr/bin/python3. Tests that FAIL against the reviewed code are findings (REVIEW_FLASK_REDIS.md);
the others are attacks that held.

Run: /usr/bin/python3 -m pytest -q -p no:cacheprovider t/review/test_review_flask_redis.py
"""

from __future__ import annotations

import json
import math
import pickle
import sys
import threading
import time
from pathlib import Path

import msgpack
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import helpers  # noqa: E402
import login_support as L  # noqa: E402
from conftest import EchoUpstream, LoopbackHTTPServer  # noqa: E402
from redis_support import cmd_calls  # noqa: E402
from test_flask_redis import (KEY, PREFIX, UUID4, FlaskSessionApp, cookie,  # noqa: E402
                              nginx_login, session_value, show, signer_of)

SITE = r"""
proxy_cache_path {prefix}/pcache keys_zone=pc:1m;
server {
    listen 127.0.0.1:{port};
    session_secret_file {secret_file};
    session_store redis;
    session_redis 127.0.0.1:{rport};
    session_redis_prefix session:;
    session_redis_timeout 300ms;
    session_format flask serializer={ser} signer={signer};
    session_user_key username;
    session_lifetime {lifetime}s;
    session_renew {renew};
    session_store_fail {fail};
    root {prefix}/html;
    default_type text/html;
    {extra}

    location /app/ { proxy_pass http://127.0.0.1:{flask}; }
    location = /login {
        session_login;
        session_login_page /login.shtml;
        session_login_user_file {prefix}/users;
        session_login_redirect /whoami;
    }
    location = /login.shtml { internal; ssi on; }
    location = /logout { session_logout /whoami; }
    location /private {
        session_require;
        return 200 "private user=[$session_user]\n";
    }
    location = /whoami {
        return 200 "status=$session_status user=[$session_user] color=[$session_color] id=[$session_id]\n";
    }
    location = /color { session_set color $arg_v; return 200 "set\n"; }

    # requests the access phase refuses (or that are not where a session is made)
    location = /deny-set { deny all; session_set color denied; proxy_pass http://127.0.0.1:{pub}/; }
    location = /require-set { session_require; session_set color required; return 200 "x\n"; }
    location = /require-destroy { session_require; session_destroy; return 200 "x\n"; }
    location = /teapot { error_page 418 /errpage; session_set color teapot; return 418; }
    location = /redirect-set { session_set color redirected; return 302 /whoami; }
    location = /errpage { session_set color errpage; return 200 "err\n"; }
    location = /ssi { ssi on; }
    location = /sub-set { session_set color subrequest; return 200 "sub\n"; }

    # headers and caches
    location = /echo-user {
        proxy_set_header X-User $session_user;
        add_header X-User $session_user;
        proxy_pass http://127.0.0.1:{echo};
    }
    location = /public-set { session_set color public; proxy_pass http://127.0.0.1:{pub}/; }
    location = /public-read { add_header X-User $session_user; proxy_pass http://127.0.0.1:{pub}/; }
    location = /slow-regen { session_regenerate; proxy_pass http://127.0.0.1:{slow}/; }
    location = /slow-color { session_set color $arg_v; proxy_pass http://127.0.0.1:{slow}/; }
    location = /app-and-nginx-set {
        session_set color nginx;
        proxy_pass http://127.0.0.1:{flask}/app/set?k=x&v=flask;
    }
    location = /guarded { auth_request /check; proxy_pass http://127.0.0.1:{pub}/; }
    location = /check { internal; session_require; return 204; }
    location = /ssi-user { ssi on; }
    location = /sub-user { return 200 "sub user=[$session_user]\n"; }
    location = /app-clear-and-nginx-set {
        session_set color nginx;
        proxy_pass http://127.0.0.1:{flask}/app/clear;
    }
    location = /cached {
        proxy_cache pc;
        proxy_cache_valid 200 60s;
        session_set color cached;
        proxy_pass http://127.0.0.1:{pub}/;
    }
}
"""


class PublicUpstream(LoopbackHTTPServer):
    """An upstream that marks every answer as cacheable by shared caches."""

    def answer(self, handler, body):
        return 200, [("Content-Type", "text/plain"),
                     ("Cache-Control", "public, max-age=60, s-maxage=60")], b"public page\n"


class SlowUpstream(LoopbackHTTPServer):
    def answer(self, handler, body):
        time.sleep(0.8)
        return 200, [("Content-Type", "text/plain")], b"slow\n"


@pytest.fixture
def rstack(nginx, redis_server, tmp_path):
    """rstack(signer=False, ser="pickle", flask=True, fail="closed", lifetime=3600, renew="1m",
    rport=None) -> (nginx, redis client, flask app or None, echo upstream)."""
    apps = []
    echo = EchoUpstream()
    pub = PublicUpstream()
    slow = SlowUpstream()

    def make(signer=False, ser="pickle", flask=True, fail="closed", lifetime=3600, renew="1m",
             rport=None, extra=""):
        app = None
        if flask:
            app = FlaskSessionApp(tmp_path, redis_server.port, signer, lifetime)
            apps.append(app)
        files = L.files_for({"alice": L.hash_password("sha", "secret")},
                            {"html/ssi": "before <!--# include virtual=\"/sub-set\" --> after\n",
                             "html/ssi-user": "<!--# include virtual=\"/sub-user\" -->"})
        srv = nginx(SITE, secrets=[KEY], files=files, flask=app.port if app else 1,
                    rport=rport or redis_server.port, ser=ser,
                    signer="on" if signer else "off", lifetime=lifetime, fail=fail,
                    renew=renew, echo=echo.port, pub=pub.port, extra=extra,
                    slow=slow.port)
        return srv, redis_server.client(), app, echo

    yield make
    for a in apps:
        a.stop()
    echo.close()
    pub.close()
    slow.close()


def whoami(srv, value):
    r = srv.get("/whoami", headers=cookie(value))
    assert r.status_code == 200, r.text
    return r.text


def put(rd, sid, record, ttl=3600):
    rd.set(PREFIX + sid, record, ex=ttl)


# A dict pickle (protocol 4 opcodes) holding username=alice and one more key whose value is
# made by `value`: if the value's opcodes were accepted, alice would be logged in.
def dict_pickle(value: bytes) -> bytes:
    return (b"\x80\x04}\x94(\x8c\x0a_permanent\x88\x8c\x08username\x8c\x05alice\x8c\x01x"
            + value + b"u.")


OBJECT_OPCODES = {
    "GLOBAL": b"cbuiltins\nstr\n",
    "STACK_GLOBAL": b"\x8c\x08builtins\x8c\x03str\x93",
    "REDUCE": b"])R",
    "BUILD": b"}}b",
    "INST": b"(ibuiltins\nstr\n",
    "OBJ": b"(])o",
    "NEWOBJ": b"])\x81",
    "NEWOBJ_EX": b"])}\x92",
    "EXT1": b"\x82\x01",
    "EXT2": b"\x83\x01\x00",
    "EXT4": b"\x84\x01\x00\x00\x00",
    "PERSID": b"Pfoo\n",
    "BINPERSID": b"\x8c\x03fooQ",
    # not object-building, but outside the data subset: refused too
    "EMPTY_SET": b"\x8f",
    "FROZENSET": b"(\x91",
    "BYTEARRAY8": b"\x96\x00\x00\x00\x00\x00\x00\x00\x00",
    "NEXT_BUFFER": b"\x97",
    "STRING": b"S'x'\n",
    "INT": b"I1\n",
}


# ---------------------------------------------------------------------------------------------
# Pickle records: objects, bombs, cycles (held)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(OBJECT_OPCODES), ids=list(OBJECT_OPCODES))
def test_pickle_object_opcodes_are_refused_and_never_overwritten(rstack, name):
    srv, rd, _, _ = rstack(flask=False)
    sid = "0" * 8 + "-aaaa-4aaa-8aaa-" + "a" * 12
    rec = dict_pickle(OBJECT_OPCODES[name])
    put(rd, sid, rec)
    assert "status=invalid user=[]" in whoami(srv, sid)
    assert srv.get("/private", headers=cookie(sid)).status_code == 401
    r = srv.get("/color?v=red", headers=cookie(sid))
    assert r.status_code == 200
    assert session_value(r) != sid            # a new session, the record left as it is
    assert rd.get(PREFIX + sid) == rec


def test_pickle_memo_expansion_bombs_are_bounded(rstack):
    srv, rd, _, _ = rstack(flask=False)
    # deep: level i = [level i-1, level i-1] through the memo: 2^40 nodes if expanded
    # (memo 0 is the top dict: the first list is memo 1)
    deep = b"]\x8c\x04AAAAa\x94"
    for i in range(2, 41):
        deep += b"(h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"l\x94"
    # wide: one 1000-byte string referenced 30000 times (30 MB if expanded)
    wide = b"\x8c\x01s" + b"X\xe8\x03\x00\x00" + b"B" * 1000 + b"\x94]\x94("
    wide += b"h\x01" * 30000 + b"e"
    records = {"deep": dict_pickle(deep), "wide": b"\x80\x04}\x94(\x8c\x08username\x8c\x05alice"
               + wide + b"u."}
    for name, rec in records.items():
        sid = name * (36 // len(name)) + "a" * (36 % len(name))
        put(rd, sid, rec)
        t0 = time.monotonic()
        assert "status=invalid user=[]" in whoami(srv, sid), name
        assert time.monotonic() - t0 < 1.0, name
        srv.get("/color?v=red", headers=cookie(sid))
        assert rd.get(PREFIX + sid) == rec, name
    assert srv.bad_log_lines() == []


def test_pickle_memo_cycle_is_invalid(rstack):
    srv, rd, _, _ = rstack(flask=False)
    cyc = pickle.loads(dict_pickle(b"]\x94h\x01a"))   # Python takes it: x is a list inside itself
    assert cyc["x"][0] is cyc["x"]
    for sid, rec in [("c" * 36, dict_pickle(b"]\x94h\x01a")),
                     # the top dict inside itself
                     ("d" * 36, b"\x80\x04}\x94(\x8c\x08username\x8c\x05alice\x8c\x01xh\x00u.")]:
        put(rd, sid, rec)
        assert "status=invalid user=[]" in whoami(srv, sid)
        srv.get("/color?v=red", headers=cookie(sid))
        assert rd.get(PREFIX + sid) == rec


def test_msgpack_claimed_counts_and_ext_types_are_refused(rstack):
    srv, rd, _, _ = rstack(ser="msgpack", flask=False)
    recs = [b"\xdf\xff\xff\xff\xff",                          # a map claiming 4G entries
            b"\x81\xa8username\xdd\xff\xff\xff\xff",          # an array claiming 4G elements
            msgpack.packb({"username": "alice", "x": msgpack.ExtType(5, b"xx")}),
            msgpack.packb({b"username": "alice"}),            # a bytes key
            b"\x81\xa8username\xa5alice\x00"]                 # trailing bytes
    for i, rec in enumerate(recs):
        sid = str(i) * 43
        put(rd, sid, rec)
        assert "status=invalid user=[]" in whoami(srv, sid), rec
        srv.get("/color?v=red", headers=cookie(sid))
        assert rd.get(PREFIX + sid) == rec


# ---------------------------------------------------------------------------------------------
# Who is logged in (held)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("user", [b"alice", 1, True, ["alice"], ("alice",), {"n": "alice"}, "",
                                  None],
                         ids=["bytes", "int", "bool", "list", "tuple", "dict", "empty", "none"])
def test_a_user_key_that_is_not_a_non_empty_string_logs_nobody_in(rstack, user):
    srv, rd, _, _ = rstack(flask=False)
    sid = "e" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": user}))
    assert srv.get("/private", headers=cookie(sid)).status_code == 401


USER_NOT_A_STRING = [b"alice", 1, True, ["alice"], None]


@pytest.mark.parametrize("user", USER_NOT_A_STRING, ids=["bytes", "int", "bool", "list", "none"])
def test_session_user_is_empty_when_session_require_says_nobody_is_logged_in(rstack, user):
    """FINDING: $session_user (proxy_set_header X-User, `if ($session_user)`, logs) shows a user
    for a record session_require refuses: None -> "null" (the same text as a real user named
    null, and `session['username'] = None` is a common Flask logout), True -> "true", 1 -> "1",
    b"alice" -> "YWxpY2U=". An upstream trusting X-User sees a user for a logged-out session."""
    srv, rd, _, echo = rstack(flask=False)
    sid = "e" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": user}))
    assert srv.get("/private", headers=cookie(sid)).status_code == 401
    assert "user=[]" in whoami(srv, sid)
    srv.get("/echo-user", headers=cookie(sid))
    sent = {k.lower(): v for k, v in echo.requests[-1]["headers"]} \
        if isinstance(echo.requests[-1].get("headers"), list) else {}
    assert sent.get("x-user", "") == "", sent


def test_an_ambiguous_user_key_logs_nobody_in(rstack):
    srv, rd, _, _ = rstack(flask=False)
    for i, rec in enumerate([{"username": "alice", "Username": "bob"},
                             {"USERNAME": "bob"}]):
        sid = str(i) * 36
        put(rd, sid, pickle.dumps(rec))
        r = srv.get("/private", headers=cookie(sid))
        assert r.status_code == 401, (rec, r.text)


def test_a_duplicated_user_key_in_a_pickle_dict_is_read_as_python_does(rstack):
    """SETITEMS with `username` twice: Python keeps the last value; nginx must agree."""
    srv, rd, _, _ = rstack(flask=False)
    rec = (b"\x80\x04}\x94(\x8c\x08username\x8c\x05alice\x8c\x08username\x8c\x03bobu.")
    assert pickle.loads(rec) == {"username": "bob"}
    sid = "f" * 36
    put(rd, sid, rec)
    assert "user=[bob]" in whoami(srv, sid)


def test_control_bytes_in_a_flask_user_never_reach_a_header(rstack):
    srv, rd, app, echo = rstack()
    s = srv.session()
    assert srv.get("/app/login?u=alice%0d%0aX-Evil:%201", s).status_code == 200
    r = srv.get("/echo-user", s)
    assert r.status_code == 200
    assert "X-Evil" not in r.headers
    assert "x-evil" not in json.dumps(echo.requests[-1]).lower()


# ---------------------------------------------------------------------------------------------
# Ids (held)
# ---------------------------------------------------------------------------------------------

def test_ids_cost_no_redis_io_before_their_checks(rstack):
    srv, rd, _, _ = rstack(signer=True, flask=False)
    sid = "0d5a9023-55c9-43ee-82b5-023db7cf0f3a"
    good = signer_of().sign(sid.encode()).decode()
    rd.config_resetstat()
    bad = [sid, "session:" + sid, good.replace(".", ".."), good + " x", sid + "." + "A" * 27,
           signer_of().sign(b"a b c d e f g h i j k l m n").decode(),   # signed, bad charset
           signer_of().sign(b"user:alice-aaaaaaaaaaaaaaa").decode()]   # signed, bad charset
    for value in bad:
        r = srv.raw("/whoami", headers=[("Cookie", f"session={value}")])
        assert b"status=invalid" in r.body, value
    assert cmd_calls(rd, "get") == 0 and cmd_calls(rd, "eval") == 0


def test_two_ids_are_no_session_and_the_cookie_is_left_alone(rstack):
    srv, rd, _, _ = rstack(flask=False)
    a, b = "a" * 36, "b" * 36
    put(rd, a, pickle.dumps({"username": "alice"}))
    put(rd, b, pickle.dumps({"username": "mallory"}))
    rd.config_resetstat()
    r = srv.get("/private", headers={"Cookie": f"session={a}; session={b}"})
    assert r.status_code == 401
    assert helpers.cookie_named(r, "session") is None
    assert cmd_calls(rd, "get") == 0


# ---------------------------------------------------------------------------------------------
# Login and logout
# ---------------------------------------------------------------------------------------------

def test_login_never_keeps_the_pre_login_flask_sid(rstack):
    srv, rd, app, _ = rstack()
    s = srv.session()
    srv.get("/app/set?k=color&v=planted", s)       # an anonymous Flask session (a planted one)
    old = s.cookies.get("session")
    assert rd.exists(PREFIX + old)
    r = nginx_login(srv, s)
    new = session_value(r)
    assert new != old and UUID4.match(new)
    assert rd.exists(PREFIX + old) == 0
    assert pickle.loads(rd.get(PREFIX + new)) == {"_permanent": True, "username": "alice"}
    # a planted id with no record is not adopted either
    s2 = srv.session()
    planted = "1" * 8 + "-2222-4333-8444-" + "5" * 12
    s2.cookies.set("session", planted, domain="127.0.0.1", path="/")
    new2 = session_value(nginx_login(srv, s2))
    assert new2 != planted and rd.exists(PREFIX + planted) == 0


def test_logout_with_the_store_down_still_expires_the_cookie(rstack):
    srv, rd, _, _ = rstack(flask=False, rport=helpers.free_port())
    sid = "c" * 36
    r = srv.get("/logout", headers=cookie(sid), allow_redirects=False)
    assert r.status_code == 303, r.text
    sc = helpers.cookie_named(r, "session")
    assert sc is not None and ("max-age=0" in sc.lower() or "1970" in sc), sc
    assert srv.grep_log("could not be deleted")


def test_nginx_renewal_after_a_logout_does_not_resurrect_the_record(rstack):
    """A read-only request that loaded the session before a logout: its TTL refresh (if any)
    must not bring the record back (PEXPIRE on a missing key creates nothing)."""
    srv, rd, _, _ = rstack(flask=False, renew="1s", lifetime=60)
    sid = "9" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}), ttl=50)
    time.sleep(1.2)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=srv.get("/whoami", headers=cookie(sid))))
    t.start()
    rd.delete(PREFIX + sid)
    t.join(10)
    time.sleep(0.2)
    assert rd.exists(PREFIX + sid) == 0


# ---------------------------------------------------------------------------------------------
# No write for a request that was refused or is not where a session is made (held)
# ---------------------------------------------------------------------------------------------

def test_refused_and_redirected_requests_write_nothing(rstack):
    srv, rd, _, _ = rstack(flask=False)
    sid = "7" * 36
    rec = pickle.dumps({"_permanent": True, "color": "blue"})   # a session without a user
    put(rd, sid, rec)
    rd.config_resetstat()
    for path, status in [("/deny-set", 403), ("/require-set", 401), ("/require-destroy", 401),
                         ("/teapot", 418), ("/ssi", 200)]:
        r = srv.get(path, headers=cookie(sid))
        assert r.status_code == status, (path, r.status_code, r.text)
        assert helpers.cookie_named(r, "session") is None, path
    assert rd.get(PREFIX + sid) == rec
    # (every EVAL is a lookup - GET and PTTL in one script - none is a write)
    assert cmd_calls(rd, "eval") == cmd_calls(rd, "pttl") and cmd_calls(rd, "set") == 0
    assert cmd_calls(rd, "del") == 0 and cmd_calls(rd, "pexpire") == 0


# ---------------------------------------------------------------------------------------------
# Caches (held)
# ---------------------------------------------------------------------------------------------

def test_responses_that_write_or_read_the_session_are_private(rstack):
    srv, rd, _, _ = rstack(flask=False)
    sid = "8" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}))
    r = srv.get("/public-set", headers=cookie(sid))
    assert r.status_code == 200 and helpers.cookie_named(r, "session") is not None
    cc = r.headers.get("Cache-Control", "").lower()
    assert "private" in cc and "public" not in cc and "s-maxage" not in cc, cc
    r = srv.get("/public-read", headers=cookie(sid))
    assert "cookie" in r.headers.get("Vary", "").lower(), r.headers


def test_proxy_cache_hit_never_replays_another_users_cookie(rstack):
    srv, rd, _, _ = rstack(flask=False)
    sid = "6" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}))
    r = srv.get("/cached", headers=cookie(sid))
    assert r.status_code == 200
    r2 = srv.get("/cached")        # anonymous
    assert r2.status_code == 200
    for sc in helpers.set_cookie_headers(r2):
        assert sid not in sc, sc


# ---------------------------------------------------------------------------------------------
# TTL
# ---------------------------------------------------------------------------------------------

def test_a_read_only_visit_refreshes_the_records_ttl_after_session_renew(rstack):
    """FINDING: session_renew ("refresh the Redis TTL when the last refresh is older than T") is
    dead for Flask-Session records: flask_redis_load stamps times.refreshed = now, so renewal
    is never due. Flask-Session itself rewrites the record (SETEX) on every request: a user who
    only visits nginx-served pages is logged out session_lifetime after the last write."""
    srv, rd, _, _ = rstack(flask=False, lifetime=30, renew="1s")
    sid = "5" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}), ttl=30)
    time.sleep(3)
    assert srv.get("/private", headers=cookie(sid)).status_code == 200
    time.sleep(0.2)
    ttl = rd.pttl(PREFIX + sid)
    assert ttl > 29000, f"the record's TTL was not refreshed by the visit: {ttl} ms left"


def test_an_active_nginx_only_user_stays_logged_in(rstack):
    """FINDING (same root cause, end to end): logged in via nginx, active every second through
    a session_require location for longer than session_lifetime, logged out mid-activity."""
    srv, rd, _, _ = rstack(flask=False, lifetime=4, renew="1s")
    s = srv.session()
    nginx_login(srv, s)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        r = srv.get("/private", s)
        assert r.status_code == 200, "logged out while active"
        time.sleep(1)


def test_a_record_without_ttl_gets_one_on_nginx_write_and_a_huge_ttl_is_capped(rstack):
    srv, rd, _, _ = rstack(flask=False, lifetime=60)
    sid = "4" * 36
    rd.set(PREFIX + sid, pickle.dumps({"_permanent": True, "username": "alice"}))  # no TTL
    assert "user=[alice]" in whoami(srv, sid)
    assert srv.get("/color?v=red", headers=cookie(sid)).status_code == 200
    assert 0 < rd.pttl(PREFIX + sid) <= 60000
    sid2 = "3" * 36
    put(rd, sid2, pickle.dumps({"_permanent": True, "username": "alice"}), ttl=10 ** 9)
    assert srv.get("/color?v=red", headers=cookie(sid2)).status_code == 200
    assert 0 < rd.pttl(PREFIX + sid2) <= 60000


# ---------------------------------------------------------------------------------------------
# Redis misbehaving (held)
# ---------------------------------------------------------------------------------------------

def test_wrong_types_under_the_key(rstack):
    srv, rd, _, _ = rstack(flask=False)
    for i, make in enumerate([lambda k: rd.hset(k, "username", "alice"),
                              lambda k: rd.rpush(k, "alice"),
                              lambda k: rd.sadd(k, "alice"),
                              lambda k: rd.zadd(k, {"alice": 1})]):
        sid = str(i) * 36
        make(PREFIX + sid)
        typ = rd.type(PREFIX + sid)
        assert "status=invalid user=[]" in whoami(srv, sid)
        r = srv.get("/color?v=red", headers=cookie(sid))
        assert r.status_code == 200 and session_value(r) != sid
        assert rd.type(PREFIX + sid) == typ
    assert srv.bad_log_lines() == []


def test_a_paused_redis_is_a_bounded_503(rstack, redis_server):
    srv, rd, _, _ = rstack(flask=False)
    sid = "2" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}))
    assert "user=[alice]" in whoami(srv, sid)
    redis_server.pause()
    try:
        t0 = time.monotonic()
        r = srv.get("/private", headers=cookie(sid), timeout=10)
        assert r.status_code == 503 and time.monotonic() - t0 < 3
    finally:
        redis_server.resume()
    assert helpers.wait_for(lambda: "user=[alice]" in whoami(srv, sid), 5, "recovery")


# ---------------------------------------------------------------------------------------------
# Round trips of untouched values
# ---------------------------------------------------------------------------------------------

ROUND_TRIP = {
    "inf": float("inf"),
    "nan": float("nan"),
    "neg-zero": -0.0,
    "tiny": 5e-324,
    "big-int": 2 ** 100,
    "neg-int": -(2 ** 70),
    "lone-surrogate": "\ud800",
    "nul-text": "a\x00b",
    "bytes": b"\x00\xff",
    "tuple": (1, "a", None),
    "tag-like-dict": {" t": [1, 2]},
    "nested-empty": {"a": [], "b": {}, "c": ()},
}


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) ==
                                                      math.copysign(1, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("name", list(ROUND_TRIP), ids=list(ROUND_TRIP))
def test_untouched_values_round_trip_through_an_nginx_change(rstack, name):
    srv, rd, _, _ = rstack(flask=False)
    sid = "1" * 36
    value = ROUND_TRIP[name]
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice", "v": value}))
    assert "status=valid user=[alice]" in whoami(srv, sid)
    r = srv.get("/color?v=red", headers=cookie(sid))
    assert r.status_code == 200, r.text
    got = pickle.loads(rd.get(PREFIX + sid))
    assert got["color"] == "red" and got["username"] == "alice"
    assert same(got["v"], value), (got["v"], value)


# ---------------------------------------------------------------------------------------------
# A server-level error_page (any code) silently disables login, logout and redirects' writes
# ---------------------------------------------------------------------------------------------

ERROR_PAGE = "error_page 404 /404.html;"   # a stock nginx config line: never triggered here


def test_login_with_a_server_level_error_page_sets_the_session_cookie(rstack):
    """FINDING: nginx sets r->error_page = 1 in ngx_http_special_response_handler for every
    special response (the 303 of the login) whenever error_page is configured - even for
    codes that have no error page. The header filter takes that for an error page and drops
    the login's Set-Cookie: 303 "success", the Flask-Session record of the new sid is created
    (orphaned), the browser never gets the id; the pre-login record is not deleted."""
    srv, rd, _, _ = rstack(extra=ERROR_PAGE)
    s = srv.session()
    r = nginx_login(srv, s)
    assert r.status_code == 303
    assert helpers.cookie_named(r, "session") is not None, helpers.set_cookie_headers(r)
    assert srv.get("/private", s).status_code == 200


def test_logout_with_a_server_level_error_page_ends_the_session(rstack):
    """FINDING (same root cause): the logout's 303 keeps the cookie and the record: the user who
    clicked "log out" is still logged in, in nginx and in the Flask app."""
    srv, rd, app, _ = rstack(extra=ERROR_PAGE)
    s = srv.session()
    srv.get("/app/login?u=bob", s)
    sid = s.cookies.get("session")
    assert srv.get("/private", s).status_code == 200
    r = srv.get("/logout", s, allow_redirects=False)
    assert r.status_code == 303
    assert rd.exists(PREFIX + sid) == 0, "the record survived the logout"
    assert srv.get("/private", headers=cookie(sid)).status_code == 401
    assert show(srv, s)["username"] is None


def test_session_set_with_return_302_and_a_server_level_error_page_is_written(rstack):
    """FINDING (same root cause): `session_set ...; return 302 /x;` (the Flask idiom
    session[...] = ...; return redirect(...)) writes nothing when error_page is configured."""
    srv, rd, _, _ = rstack(flask=False, extra=ERROR_PAGE)
    sid = "8" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}))
    r = srv.get("/redirect-set", headers=cookie(sid), allow_redirects=False)
    assert r.status_code == 302
    assert pickle.loads(rd.get(PREFIX + sid)).get("color") == "redirected"


def test_session_set_with_return_302_without_error_page_is_written(rstack):
    srv, rd, _, _ = rstack(flask=False)
    sid = "8" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}))
    r = srv.get("/redirect-set", headers=cookie(sid), allow_redirects=False)
    assert r.status_code == 302
    assert pickle.loads(rd.get(PREFIX + sid)).get("color") == "redirected"


# ---------------------------------------------------------------------------------------------
# Races on the update / regenerate paths
# ---------------------------------------------------------------------------------------------

def _in_background(fn):
    out = {}
    t = threading.Thread(target=lambda: out.update(r=fn()))
    t.start()
    time.sleep(0.3)     # the slow request has loaded the record
    return t, out


def test_a_regenerate_racing_a_logout_leaves_no_session(rstack):
    srv, rd, _, _ = rstack(flask=False)
    sid = "5" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}))
    keys_before = set(rd.keys("*"))
    t, out = _in_background(lambda: srv.get("/slow-regen", headers=cookie(sid), timeout=10))
    assert srv.get("/logout", headers=cookie(sid), allow_redirects=False).status_code == 303
    t.join(10)
    r = out["r"]
    assert rd.exists(PREFIX + sid) == 0
    new_keys = set(rd.keys("*")) - keys_before
    assert new_keys == set(), new_keys              # the new record was taken back
    sc = helpers.cookie_named(r, "session")
    if sc is not None:                               # no cookie for a session that is not there
        assert srv.get("/private", headers=cookie(helpers.cookie_value(sc))).status_code == 401


def test_an_update_racing_an_unreadable_flask_write_does_not_overwrite_it(rstack):
    srv, rd, _, _ = rstack(flask=False)
    sid = "4" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}))
    import datetime
    unreadable = pickle.dumps({"_permanent": True, "username": "alice",
                               "seen": datetime.datetime(2024, 1, 1)})
    t, out = _in_background(lambda: srv.get("/slow-color?v=red", headers=cookie(sid), timeout=10))
    put(rd, sid, unreadable)                         # Flask wrote a datetime meanwhile
    t.join(10)
    assert rd.get(PREFIX + sid) == unreadable
    assert out["r"].status_code == 503               # no success for a write that did not happen


def test_an_nginx_action_in_front_of_a_flask_write_yields_one_session_id(rstack):
    """A location with both an nginx action and a proxied Flask view that writes the session,
    for a client without a session: the response must not carry two different session ids
    (the browser keeps one, the other write is lost)."""
    srv, rd, _, _ = rstack()
    r = srv.get("/app-and-nginx-set")
    assert r.status_code == 200, r.text
    values = {helpers.cookie_value(c) for c in helpers.cookies_named(r, "session")}
    assert len(values) <= 1, helpers.set_cookie_headers(r)
    (sid,) = values
    rec = pickle.loads(rd.get(PREFIX + sid))
    assert rec.get("x") == "flask" and rec.get("color") == "nginx", rec


def test_a_record_over_64k_is_invalid_and_left_alone(rstack):
    srv, rd, _, _ = rstack(flask=False)
    sid = "6" * 36
    rec = pickle.dumps({"_permanent": True, "username": "alice", "blob": "x" * 70000})
    put(rd, sid, rec)
    assert "status=invalid user=[]" in whoami(srv, sid)
    r = srv.get("/color?v=red", headers=cookie(sid))
    assert r.status_code == 200 and session_value(r) != sid
    assert rd.get(PREFIX + sid) == rec
    assert srv.bad_log_lines() == []


def test_an_acl_refused_get_is_a_store_error_not_a_logout(rstack):
    srv, rd, _, _ = rstack(flask=False)
    sid = "7" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}))
    rd.execute_command("ACL", "SETUSER", "default", "-get")
    try:
        r = srv.get("/private", headers=cookie(sid))
        assert r.status_code == 503, r.status_code
        assert helpers.cookie_named(r, "session") is None
    finally:
        rd.execute_command("ACL", "SETUSER", "default", "+get")
    assert rd.exists(PREFIX + sid)


@pytest.mark.parametrize("ser", ["json", "msgpack"])
def test_deeply_nested_records_are_refused_without_a_crash(rstack, ser):
    srv, rd, _, _ = rstack(ser=ser, flask=False)
    n = 30000
    recs = [b'{"username":"alice","x":' + b"[" * n + b"]" * n + b"}",
            b"\x82\xa8username\xa5alice\xa1x" + b"\x91" * n + b"\xc0"]
    for i, rec in enumerate(recs):
        sid = str(i) * 43
        put(rd, sid, rec)
        assert "status=invalid user=[]" in whoami(srv, sid)
        srv.get("/color?v=red", headers=cookie(sid))
        assert rd.get(PREFIX + sid) == rec
    assert srv.bad_log_lines() == []


def test_auth_request_and_ssi_subrequests_load_the_flask_record(rstack):
    srv, rd, _, _ = rstack(flask=False)
    sid = "3" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}))
    assert srv.get("/guarded", headers=cookie(sid)).status_code == 200
    assert srv.get("/guarded").status_code == 401
    assert srv.get("/guarded", headers=cookie("4" * 36)).status_code == 401   # no record
    assert "sub user=[alice]" in srv.get("/ssi-user", headers=cookie(sid)).text
    assert srv.bad_log_lines() == []


def test_concurrent_nginx_changes_are_all_kept(rstack):
    srv, rd, _, _ = rstack(flask=False)
    sid = "2" * 36
    put(rd, sid, pickle.dumps({"_permanent": True, "username": "alice"}))
    threads = []
    results = []
    for i in range(6):
        t = threading.Thread(target=lambda i=i: results.append(
            srv.get(f"/slow-color?v=c{i}", headers=cookie(sid), timeout=15).status_code))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(20)
    rec = pickle.loads(rd.get(PREFIX + sid))
    assert rec["username"] == "alice" and rec["color"] in {f"c{i}" for i in range(6)}
    # every request either wrote (200) or said it did not (503): none claims a lost write
    assert set(results) <= {200, 503}, results


def test_a_flask_logout_behind_an_nginx_action_stays_final(rstack):
    """Flask's session.clear() (DEL + delete_cookie) in a location where nginx also has an
    action: the record stays gone and nginx does not hand the dead id back to the browser."""
    srv, rd, _, _ = rstack()
    s = srv.session()
    srv.get("/app/login?u=bob", s)
    sid = s.cookies.get("session")
    r = srv.get("/app-clear-and-nginx-set", headers=cookie(sid))
    assert r.status_code < 500, (r.status_code, r.text)
    assert rd.exists(PREFIX + sid) == 0
    for sc in helpers.cookies_named(r, "session"):
        if helpers.cookie_value(sc) == sid:
            assert False, f"the logged-out id is set again: {helpers.set_cookie_headers(r)}"
    assert srv.get("/private", headers=cookie(sid)).status_code == 401


# ---------------------------------------------------------------------------------------------
# Differential: mutated pickles, nginx's reading against Python's (objects refused on both sides)
# ---------------------------------------------------------------------------------------------

class _DataOnly(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError("global")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persid")


def _python_user(b: bytes):
    import io
    try:
        d = _DataOnly(io.BytesIO(b)).load()
    except Exception:
        return None, False
    if not isinstance(d, dict):
        return None, False
    u = d.get("username")
    return (u if isinstance(u, str) else None), True


def test_mutated_pickles_never_log_in_someone_python_would_not(rstack):
    import random
    srv, rd, _, _ = rstack(flask=False)
    rnd = random.Random(20261201)
    seeds = [pickle.dumps({"_permanent": True, "username": "alice",
                           "x": [1, (2, 3), {"a": b"b"}]}, protocol=p) for p in (2, 3, 4, 5)]
    seeds.append(pickle.dumps({"username": "alice", "l": ["s"] * 3, "d": {"k": "v"}}))
    sid = "f" * 36
    diverged = []
    for _ in range(600):
        b = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 3)):
            pos = rnd.randrange(len(b))
            op = rnd.random()
            if op < 0.4:
                b[pos] = rnd.randrange(256)
            elif op < 0.6:
                del b[pos]
            elif op < 0.8:
                b.insert(pos, rnd.randrange(256))
            else:
                j = rnd.randrange(len(b))
                b[pos:pos] = b[j:j + rnd.randint(1, 6)]
        b = bytes(b)
        py_user, py_ok = _python_user(b)
        put(rd, sid, b, ttl=100)
        text = whoami(srv, sid)
        if "status=valid" not in text:
            continue
        ng_user = text.split("user=[", 1)[1].split("]", 1)[0]
        if py_user is not None and any(ord(c) < 32 or ord(c) == 127 for c in py_user):
            continue      # $session_user is empty for control bytes (by design)
        if not py_ok or (py_user or "") != ng_user:
            diverged.append((b, py_user, text))
    assert diverged == []
    assert srv.bad_log_lines() == []
