"""session_format flask with the Redis store: Flask-Session records, end to end.

A Flask 2.2 app with Debian's python3-flask-session 0.3.2 (SESSION_TYPE = "redis", pickle
records, uuid4 ids; t/flask_session_app.py) runs under /usr/bin/python3 behind the test nginx,
both on one real redis-server: Flask logs in -> nginx sees the user; nginx logs in -> Flask sees
it; changes both ways; a logout on either side is seen by the other; SESSION_USE_SIGNER both
ways. Hostile input: forged and unsigned ids with signer=on, ids of a bad charset or length
(no Redis command sent: INFO commandstats), a pickle record with GLOBAL/REDUCE (refused, not
executed, not written over), garbage, the store down.

Flask-Session >= 0.7 (msgpack and json records, token_urlsafe(32) ids) is not packaged in
Debian 12: those records are made here the way 0.7 writes them (msgspec's msgpack/JSON of the
dict, which python3-msgpack and json produce byte for byte for these types) and nginx's own
records are read back with python3-msgpack / json.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import itsdangerous
import msgpack
import pytest

import helpers
import login_support as L
from conftest import LoopbackHTTPServer, stop_process
from redis_support import cmd_calls

APP = Path(__file__).resolve().parent / "flask_session_app.py"
PYTHON = "/usr/bin/python3"
KEY = "flask-session-app-secret"      # a short key, as Flask apps have them
PREFIX = "session:"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TOKEN32 = re.compile(r"^[A-Za-z0-9_-]{43}$")


class FlaskSessionApp:
    def __init__(self, tmp_path: Path, redis_port: int, use_signer: bool, lifetime: int):
        self.port = helpers.free_port()
        cfg = json.dumps({"secret_key": KEY, "redis_port": redis_port, "use_signer": use_signer,
                          "prefix": PREFIX, "lifetime": lifetime})
        self.logpath = tmp_path / f"flask-session-{self.port}.log"
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen([PYTHON, str(APP), str(self.port), cfg],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if not helpers.wait_port(self.port, 15, lambda: self.proc.poll() is None):
            self.stop()
            raise RuntimeError("the Flask app did not start: " + self.logpath.read_text())

    def stop(self):
        stop_process(self.proc, signal.SIGTERM)
        self.log.close()


SITE = r"""
server {
    listen 127.0.0.1:{port};
    session_secret_file {secret_file};
    session_store redis;
    session_redis 127.0.0.1:{rport};
    session_redis_prefix session:;
    session_format flask serializer={ser} signer={signer};
    session_user_key username;
    session_lifetime {lifetime}s;
    session_store_fail {fail};
    root {prefix}/html;
    default_type text/html;

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
    location = /clear { session_clear; return 200 "cleared\n"; }
    location /both/ {
        session_set color $arg_c;
        proxy_pass http://127.0.0.1:{flask}/app/;
    }
    location = /regen { session_regenerate; return 200 "regenerated\n"; }
    location = /slow-color { session_set color $arg_v; proxy_pass http://127.0.0.1:{uport}/; }
}
"""


@pytest.fixture
def stack(nginx, redis_server, tmp_path):
    """stack(signer=False, ser="pickle", flask=True, fail="closed", lifetime=3600, rport=None)
    -> (nginx, redis client, flask app or None)."""
    apps = []

    def make(signer=False, ser="pickle", flask=True, fail="closed", lifetime=3600, rport=None,
             uport=1):
        app = None
        if flask:
            app = FlaskSessionApp(tmp_path, redis_server.port, signer, lifetime)
            apps.append(app)
        files = L.files_for({"alice": L.hash_password("sha", "secret")})
        srv = nginx(SITE, secrets=[KEY], files=files, flask=app.port if app else 1,
                    rport=rport or redis_server.port, ser=ser,
                    signer="on" if signer else "off", lifetime=lifetime, fail=fail,
                    uport=uport)
        return srv, redis_server.client(), app

    yield make
    for a in apps:
        a.stop()


def signer_of(key=KEY):
    return itsdangerous.Signer(key, salt="flask-session", key_derivation="hmac")


def unsign(value: str) -> str:
    return signer_of().unsign(value).decode()


def cookie(value: str) -> dict:
    return {"Cookie": f"session={value}"}


def whoami(srv, value: str | None = None) -> str:
    r = srv.get("/whoami", headers=cookie(value) if value is not None else {})
    assert r.status_code == 200, r.text
    return r.text


def session_value(r) -> str:
    sc = helpers.cookie_named(r, "session")
    assert sc is not None, helpers.set_cookie_headers(r)
    return helpers.cookie_value(sc)


def nginx_login(srv, s, user="alice"):
    page = L.get_login(srv, s)
    r = L.post_login(srv, s, {"username": user, "password": "secret", "csrf_token": page.token})
    assert r.status_code == 303, r.text
    return r


def sid_of(value: str, signer: bool) -> str:
    return unsign(value) if signer else value


def show(srv, s) -> dict:
    r = srv.get("/app/show", s)
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------------------------------------
# Both directions, with and without SESSION_USE_SIGNER
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signer", [False, True], ids=["unsigned", "signer"])
def test_flask_logs_in_nginx_sees_the_user(stack, signer):
    srv, rd, _ = stack(signer=signer)
    s = srv.session()
    r = srv.get("/app/login?u=bob", s)
    assert r.status_code == 200, r.text
    value = s.cookies.get("session")
    sid = sid_of(value, signer)
    assert UUID4.match(sid), sid
    if signer:
        assert value != sid
    assert f"status=valid user=[bob]" in whoami(srv, value)
    assert f"id=[{sid}]" in whoami(srv, value)
    assert srv.get("/private", s).text == "private user=[bob]\n"
    assert srv.get("/private").status_code == 401


@pytest.mark.parametrize("signer", [False, True], ids=["unsigned", "signer"])
def test_an_action_in_front_of_a_flask_write_updates_the_apps_record(stack, signer):
    """session_set in front of a Flask view that writes the session: nginx's change goes into
    the record the app wrote (merged), under the app's id and cookie - one Set-Cookie, no
    second session; when the app ends the session, nginx's change does not bring it back."""
    srv, rd, _ = stack(signer=signer)
    s = srv.session()
    r = srv.get("/both/login?u=bob&c=red", s)            # no session before: Flask makes one
    assert r.status_code == 200, r.text
    assert len(helpers.cookies_named(r, "session")) == 1, helpers.set_cookie_headers(r)
    sid = sid_of(s.cookies.get("session"), signer)
    assert pickle.loads(rd.get(PREFIX + sid)) == {"_permanent": True, "username": "bob",
                                                  "color": "red"}
    assert rd.keys(PREFIX + "*") == [(PREFIX + sid).encode()]
    r = srv.get("/both/set?k=x&v=1&c=blue", s)            # an existing session
    assert len(helpers.cookies_named(r, "session")) == 1, helpers.set_cookie_headers(r)
    assert sid_of(s.cookies.get("session"), signer) == sid
    assert pickle.loads(rd.get(PREFIX + sid)) == {"_permanent": True, "username": "bob",
                                                  "color": "blue", "x": "1"}
    assert srv.get("/private", s).text == "private user=[bob]\n"
    r = srv.get("/both/clear?c=green", s)                 # Flask deletes record and cookie
    assert r.status_code == 200
    assert not rd.exists(PREFIX + sid) and rd.keys(PREFIX + "*") == []
    assert s.cookies.get("session") is None


def test_read_only_visits_renew_the_records_ttl(stack):
    """A user who only visits nginx-protected locations keeps the Flask-Session record alive:
    the lookup reads its TTL with it, and once session_renew (1m) has passed since the last
    write, nginx refreshes the TTL to session_lifetime - never more often, never shortening it,
    never giving a TTL to a record that has none."""
    srv, rd, _ = stack(lifetime=3600)
    s = srv.session()
    assert srv.get("/app/login?u=bob", s).status_code == 200
    key = "session:" + s.cookies.get("session")
    assert 3590_000 < rd.pttl(key) <= 3600_000
    # Written ten minutes ago: renewed to the lifetime.
    rd.pexpire(key, 3000_000)
    assert srv.get("/private", s).text == "private user=[bob]\n"
    assert rd.pttl(key) > 3590_000, rd.pttl(key)
    # Written 30 s ago (under session_renew): left alone.
    rd.pexpire(key, 3570_000)
    assert srv.get("/private", s).text == "private user=[bob]\n"
    assert rd.pttl(key) <= 3570_000, rd.pttl(key)
    # A TTL longer than the lifetime is not shortened, a record without one gets none.
    rd.pexpire(key, 7200_000)
    assert srv.get("/private", s).status_code == 200
    assert rd.pttl(key) > 7000_000, rd.pttl(key)
    rd.persist(key)
    assert srv.get("/private", s).status_code == 200
    assert rd.pttl(key) == -1
    # The record itself is untouched by the renewals.
    assert srv.get("/app/show", s).json()["username"] == "bob"


@pytest.mark.parametrize("signer", [False, True], ids=["unsigned", "signer"])
def test_nginx_logs_in_flask_sees_the_user(stack, signer):
    srv, rd, _ = stack(signer=signer)
    s = srv.session()
    r = nginx_login(srv, s)
    value = session_value(r)
    sid = sid_of(value, signer)
    assert UUID4.match(sid), sid          # Flask-Session 0.3's str(uuid4())
    sc = helpers.cookie_named(r, "session")
    assert "expires=" in sc.lower(), sc   # permanent, as Flask-Session sends it
    raw = rd.get(PREFIX + sid)
    # (our own record: safe to unpickle) `_permanent` first, as Flask-Session's new sessions
    assert list(pickle.loads(raw).items()) == [("_permanent", True), ("username", "alice")]
    assert 3500 < rd.ttl(PREFIX + sid) <= 3600
    info = show(srv, s)
    assert info["username"] == "alice" and info["sid"] == sid and info["permanent"] is True
    assert info["types"] == {"_permanent": "bool", "username": "str"}


@pytest.mark.parametrize("signer", [False, True], ids=["unsigned", "signer"])
def test_each_side_changes_the_session_and_the_other_sees_it(stack, signer):
    srv, rd, _ = stack(signer=signer)
    s = srv.session()
    srv.get("/app/login?u=bob", s)
    assert srv.get("/color?v=red", s).status_code == 200
    info = show(srv, s)
    assert info["username"] == "bob" and info["color"] == "red"
    srv.get("/app/set?k=color&v=blue", s)
    assert "user=[bob] color=[blue]" in srv.get("/whoami", s).text
    # nginx's change keeps Flask's keys and their order
    srv.get("/color?v=green", s)
    sid = sid_of(s.cookies.get("session"), signer)
    assert list(pickle.loads(rd.get(PREFIX + sid)).keys()) == ["_permanent", "username", "color"]


@pytest.mark.parametrize("signer", [False, True], ids=["unsigned", "signer"])
def test_logout_on_either_side(stack, signer):
    srv, rd, _ = stack(signer=signer)
    # nginx logs out a Flask login: the record is gone, Flask sees no user
    s = srv.session()
    srv.get("/app/login?u=bob", s)
    value = s.cookies.get("session")
    sid = sid_of(value, signer)
    r = srv.get("/logout", s, allow_redirects=False)
    assert r.status_code == 303
    assert rd.exists(PREFIX + sid) == 0
    assert show(srv, s)["username"] is None
    # even with the old cookie replayed (Flask-Session 0.3 makes a new empty session under it)
    s2 = srv.session()
    s2.cookies.set("session", value)
    assert show(srv, s2)["username"] is None
    assert "user=[]" in whoami(srv, value)
    # a change through the old id does not bring the old record back
    rd.delete(PREFIX + sid)
    srv.get("/color?v=red", headers=cookie(value))
    assert rd.exists(PREFIX + sid) == 0

    # Flask logs out (session.clear: Flask-Session deletes the record) an nginx login
    s = srv.session()
    nginx_login(srv, s)
    assert "user=[alice]" in srv.get("/whoami", s).text
    srv.get("/app/clear", s)
    assert "user=[]" in srv.get("/whoami", s).text
    assert srv.get("/private", s).status_code == 401


def test_regenerate_and_clear(stack):
    srv, rd, _ = stack()
    s = srv.session()
    nginx_login(srv, s)
    old = s.cookies.get("session")
    assert srv.get("/regen", s).status_code == 200
    new = s.cookies.get("session")
    assert new != old and UUID4.match(new)
    assert rd.exists(PREFIX + old) == 0
    assert "user=[alice]" in srv.get("/whoami", s).text
    assert show(srv, s)["username"] == "alice"
    srv.get("/clear", s)
    assert rd.exists(PREFIX + new) == 0


class SlowUpstream(LoopbackHTTPServer):
    def answer(self, handler, body):
        time.sleep(0.8)
        return 200, [("Content-Type", "text/plain")], b"slow\n"


def test_a_change_merges_with_a_concurrent_flask_write(stack):
    """nginx read the record, Flask rewrote it meanwhile: nginx's change is applied to what is
    there now (compare-and-set, read again), not written over it; a logout meanwhile is final."""
    up = SlowUpstream()
    try:
        srv, rd, _ = stack(uport=up.port)
        s = srv.session()
        srv.get("/app/login?u=bob", s)
        sid = s.cookies.get("session")
        out = {}
        rd.config_resetstat()

        def slow():
            out["r"] = srv.get("/slow-color?v=red", headers=cookie(sid), timeout=10)

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)   # the slow request has read the record
        assert srv.get("/app/set?k=x&v=1", s).status_code == 200
        t.join(10)
        assert out["r"].status_code == 200
        assert pickle.loads(rd.get(PREFIX + sid)) == {"_permanent": True, "username": "bob",
                                                      "x": "1", "color": "red"}
        # the first compare-and-set found Flask's write (every other EVAL is a lookup, which
        # calls PTTL once)
        assert cmd_calls(rd, "eval") - cmd_calls(rd, "pttl") == 2
        info = show(srv, s)
        assert info["color"] == "red" and info["keys"] == ["_permanent", "username", "x", "color"]

        # a logout while the change is on its way: the record stays gone
        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)
        assert srv.get("/logout", headers=cookie(sid), allow_redirects=False).status_code == 303
        t.join(10)
        assert helpers.cookie_named(out["r"], "session") is None
        assert rd.exists(PREFIX + sid) == 0
    finally:
        up.close()


# ---------------------------------------------------------------------------------------------
# Hostile input
# ---------------------------------------------------------------------------------------------

def test_signer_refuses_forged_and_unsigned_ids_without_redis_io(stack):
    srv, rd, _ = stack(signer=True, flask=False)
    sid = "0d5a9023-55c9-43ee-82b5-023db7cf0f3a"
    rd.set(PREFIX + sid, pickle.dumps({"_permanent": True, "username": "eve"}), ex=3600)
    good = signer_of().sign(sid.encode()).decode()
    assert "status=valid user=[eve]" in whoami(srv, good)
    rd.config_resetstat()
    for value in [sid,                                            # unsigned
                  sid + ".AAAAAAAAAAAAAAAAAAAAAAAAAAA",          # forged
                  signer_of("another-key").sign(sid.encode()).decode(),
                  good[:-2],                                      # truncated signature
                  good + "x", "." + good.split(".")[1], "..", "a.b.c"]:
        assert "status=invalid user=[]" in whoami(srv, value), value
    assert cmd_calls(rd, "get") == 0 and cmd_calls(rd, "eval") == 0
    assert "no such session" not in srv.log_text()


@pytest.mark.parametrize("signer", [False, True], ids=["unsigned", "signer"])
def test_ids_of_a_bad_charset_or_length_cost_no_redis_command(stack, signer):
    srv, rd, _ = stack(signer=signer, flask=False)
    rd.config_resetstat()
    bad = ["a" * 21, "a" * 129, "../../etc/passwd-aaaaaaaaaaaa", "abc def" * 5,
           "a*" * 20, "\\x00" * 10, "%41" * 12, "a:b" * 10, "*" * 30]
    for sid in bad:
        value = signer_of().sign(sid.encode()).decode() if signer else sid
        r = srv.raw("/whoami", headers=[("Cookie", f"session={value}")])
        assert r.status == 200
        assert b"status=invalid user=[]" in r.body, (sid, r.body)
    assert cmd_calls(rd, "get") == 0 and cmd_calls(rd, "eval") == 0
    # the bounds themselves are accepted (and cost one lookup each)
    for sid in ["a" * 22, "Z" * 128]:
        value = signer_of().sign(sid.encode()).decode() if signer else sid
        assert "status=invalid" in whoami(srv, value)
    assert cmd_calls(rd, "get") == 2


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_global_reduce_is_refused_not_executed_not_overwritten(stack, tmp_path):
    srv, rd, _ = stack(flask=False)
    marker = tmp_path / "pwned"
    sid = "11111111-2222-4333-8444-555555555555"
    evil = pickle.dumps({"_permanent": True, "username": "alice", "x": Evil(marker)})
    assert b"system" in evil
    rd.set(PREFIX + sid, evil, ex=3600)
    mark = srv.log_mark()
    assert "status=invalid user=[]" in whoami(srv, sid)
    assert srv.get("/private", headers=cookie(sid)).status_code == 401
    assert srv.grep_log("names or builds an object", since=mark)
    # a change on it starts a new session under a new id; the record stays as it is
    r = srv.get("/color?v=red", headers=cookie(sid))
    new = session_value(r)
    assert new != sid and UUID4.match(new)
    # a login replaces the session, without touching the record it could not read
    s = srv.session()
    s.cookies.set("session", sid, domain="127.0.0.1", path="/")
    nginx_login(srv, s)
    assert s.cookies.get("session") != sid
    assert rd.get(PREFIX + sid) == evil
    assert not marker.exists()


@pytest.mark.parametrize("record", [b"garbage", b"\x80\x04N.", b"", pickle.dumps({}),
                                    pickle.dumps([1, 2]), pickle.dumps({1: "x"}),
                                    b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c"],
                         ids=["text", "none", "empty", "empty-dict", "list", "int-key",
                              "truncated"])
def test_garbage_records_are_invalid_and_left_alone(stack, record):
    srv, rd, _ = stack(flask=False)
    sid = "a" * 36
    rd.set(PREFIX + sid, record, ex=3600)
    assert "status=invalid user=[]" in whoami(srv, sid)
    srv.get("/color?v=red", headers=cookie(sid))
    assert rd.get(PREFIX + sid) == record


def test_hash_under_the_key_is_invalid(stack):
    srv, rd, _ = stack(flask=False)
    sid = "b" * 36
    rd.hset(PREFIX + sid, "username", '"alice"')
    assert "status=invalid user=[]" in whoami(srv, sid)


@pytest.mark.parametrize("fail", ["closed", "open"])
def test_store_down(stack, fail):
    srv, rd, _ = stack(flask=False, fail=fail, rport=helpers.free_port())
    sid = "c" * 36
    r = srv.get("/whoami", headers=cookie(sid))
    if fail == "closed":
        assert r.status_code == 503
    else:
        assert r.status_code == 200 and "status=error" in r.text
    assert srv.get("/private", headers=cookie(sid)).status_code in (401, 503)
    # a change cannot be made: 503, no cookie
    r = srv.get("/color?v=red", headers=cookie(sid))
    assert r.status_code == 503 and helpers.cookie_named(r, "session") is None


# ---------------------------------------------------------------------------------------------
# Flask-Session >= 0.7 formats (not in Debian 12: records made as 0.7 writes them)
# ---------------------------------------------------------------------------------------------

def test_msgpack_records(stack):
    srv, rd, _ = stack(ser="msgpack", flask=False)
    sid = "T" * 43
    rd.set(PREFIX + sid, msgpack.packb({"_permanent": True, "username": "carol", "n": 3}),
           ex=3600)
    assert "status=valid user=[carol]" in whoami(srv, sid)
    s = srv.session()
    r = nginx_login(srv, s)
    new = session_value(r)
    assert TOKEN32.match(new), new       # secrets.token_urlsafe(32)
    assert msgpack.unpackb(rd.get(PREFIX + new)) == {"_permanent": True, "username": "alice"}
    srv.get("/color?v=red", s)
    assert list(msgpack.unpackb(rd.get(PREFIX + new)).items()) == [
        ("_permanent", True), ("username", "alice"), ("color", "red")]
    # >= 0.7 reads fall back msgpack -> json -> pickle; a change writes msgpack
    for i, rec in enumerate([json.dumps({"username": "dave"}).encode(),
                             pickle.dumps({"username": "erin"})]):
        sid = f"{i}" * 43
        rd.set(PREFIX + sid, rec, ex=3600)
        assert "status=valid" in whoami(srv, sid)
        srv.get("/color?v=blue", headers=cookie(sid))
        assert msgpack.unpackb(rd.get(PREFIX + sid))["color"] == "blue"
    # msgspec's datetime is an extension type: invalid, never overwritten
    sid = "D" * 43
    rec = msgpack.packb({"username": "carol", "at": msgpack.Timestamp(1700000000, 0)})
    rd.set(PREFIX + sid, rec, ex=3600)
    assert "status=invalid" in whoami(srv, sid)
    srv.get("/color?v=red", headers=cookie(sid))
    assert rd.get(PREFIX + sid) == rec


def test_json_records(stack):
    srv, rd, _ = stack(ser="json", flask=False)
    sid = "J" * 43
    rd.set(PREFIX + sid, json.dumps({"_permanent": True, "username": "carol"}).encode(), ex=3600)
    assert "status=valid user=[carol]" in whoami(srv, sid)
    s = srv.session()
    new = session_value(nginx_login(srv, s))
    assert TOKEN32.match(new)
    assert json.loads(rd.get(PREFIX + new)) == {"_permanent": True, "username": "alice"}
    # json -> msgpack fallback
    sid = "M" * 43
    rd.set(PREFIX + sid, msgpack.packb({"username": "dave"}), ex=3600)
    assert "status=valid user=[dave]" in whoami(srv, sid)


# ---------------------------------------------------------------------------------------------
# nginx -t
# ---------------------------------------------------------------------------------------------

CONF_CASES = [
    ("pickle", "session_format flask serializer=pickle;", "ok"),
    ("msgpack-signer", "session_format flask serializer=msgpack signer=on;", "ok"),
    ("no-serializer", "session_format flask;", "emerg:needs \"serializer=\""),
    ("cache", "session_format flask serializer=pickle; "
              "session_redis_cache c:1m;",
     "emerg:\"session_redis_cache\" cannot be used with \"session_format flask\""),
]


@pytest.mark.parametrize("case,directives,expect", CONF_CASES, ids=[c[0] for c in CONF_CASES])
def test_config(nginx_t, case, directives, expect):
    conf = helpers.server_conf('location / { return 200 "$session_user\\n"; }',
                               "session_store redis; session_redis 127.0.0.1:1; " + directives)
    rc, out = nginx_t(conf, secrets=["x" * 40])
    if expect == "ok":
        assert rc == 0 and "[emerg]" not in out, out
    else:
        assert rc != 0 and "[emerg]" in out and expect[6:] in out, out
