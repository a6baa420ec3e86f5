"""Logout everywhere (issue 12): `session_logout [uri] all` and `session_destroy_user`, and the
per-user index they read (src/core/user_index.h).

Each test runs its own redis-server(s) and nginx. Devices are separate cookie jars
(requests.Session) that log in through the real login form (session_login with an htpasswd
file); the index is read straight from Redis (<prefix>user:<name>, a set of record-key suffixes).

Contract:
- the index holds the ids of the user's live sessions: added at login (and session_set of the
  user key, session_regenerate's new id), removed at logout / session_destroy / regenerate (old
  id); its TTL is at least the newest session's and at most session_lifetime;
- `session_logout ... all` ends every session of the user on every device (their records are
  deleted, their next request is not logged in), other users untouched; its own cookie is
  expired; 303 to the uri; stale ids are pruned; Redis down: 503, nothing claimed;
- `session_destroy_user value` does the same for the named user from an operator's location,
  only for requests that passed the access phase, never cross-site, never from a subrequest;
- with the cookie store both fail `nginx -t`;
- every nginx's session_redis_cache drops the ended sessions (Redis's invalidations);
- Redis Cluster: the index and the records live on different nodes.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse

import pytest
import requests

import helpers
import login_support as L
from helpers import cookie_named, poll
from redis_support import cookie_header, id_of, seed, session_cookie_value

PASSWORD = "correct horse"
USERS = ("alice", "bob", "carol", "émile x")
LIFETIME = 3600

SITE = r"""
server {
    listen 127.0.0.1:{port};
    session_secret_file {secret_file};
    session_store redis;
    session_redis {redis};
    session_redis_timeout {timeout};
    session_lifetime 1h;
    root {prefix}/html;
    default_type text/html;
    {extra}

    location = /login {
        session_login;
        session_login_page /login.shtml;
        session_login_user_file {prefix}/users;
        session_login_redirect /whoami;
    }
    location = /login.shtml { internal; ssi on; }
    location = /whoami {
        return 200 "user=[$session_user] status=$session_status id=[$session_id]\n";
    }
    location = /setuser { session_set user $arg_u; return 200 "set\n"; }
    location = /unsetuser { session_unset user; return 200 "unset\n"; }
    location = /name { session_set name $arg_v; return 200 "named\n"; }
    location = /regen { session_regenerate; return 200 "regenerated\n"; }
    location = /destroy { session_destroy; return 200 "destroyed\n"; }
    location = /logout { session_logout /bye; }
    location = /logout-all { session_logout /bye all; }
    # An operator's locations: the access checks run before the content (a static file here;
    # a `return` would answer in the rewrite phase, before allow/deny ever ran).
    location = /admin/end {
        allow 127.0.0.1;
        deny all;
        session_destroy_user $arg_user;
        alias {prefix}/html/ended.txt;
    }
    location = /admin/denied { deny all; session_destroy_user $arg_user; alias {prefix}/html/ended.txt; }
    location = /admin/require {
        session_require;
        session_destroy_user $arg_user;
        return 200 "ended [$arg_user]\n";
    }
    location = /admin/page.shtml { ssi on; }
    {locations}
}
"""

SSI_PAGE = '<p><!--# include virtual="/admin/end?user=alice" --></p>\n'


def site_files():
    users = {u: L.hash_password("sha", PASSWORD) for u in USERS}
    return L.files_for(users, {"html/admin/page.shtml": SSI_PAGE, "html/ended.txt": "ended\n"})


def start(nginx, redis: str, extra: str = "", locations: str = "", timeout: str = "1s", **kw):
    snippet = SITE.replace("{extra}", extra).replace("{locations}", locations)
    return nginx(snippet, redis=redis, timeout=timeout, files=site_files(), **kw)


def index_key(user, prefix="session:"):
    return f"{prefix}user:{user}"


class Device:
    """One browser (its own cookie jar) of one user."""

    def __init__(self, srv, user=None, port=None):
        self.srv = srv
        self.port = port
        self.s = requests.Session()
        srv._sessions.append(self.s)
        self.user = user
        if user is not None:
            self.login(user)

    def url(self, path):
        return self.srv.url(path, self.port)

    def login(self, user):
        page = self.s.get(self.url("/login"), timeout=10)
        assert page.status_code == 200, page.text
        token = L.form_inputs(page.text)["csrf_token"]
        r = self.s.post(self.url("/login"), data={"username": user, "password": PASSWORD,
                                                  "csrf_token": token},
                        allow_redirects=False, timeout=10)
        assert r.status_code == 303, (r.status_code, r.text, self.srv.log_text()[-2000:])
        self.user = user
        return r

    @property
    def value(self):
        return self.s.cookies.get("session")

    @property
    def sid(self):
        return id_of(self.value)

    def get(self, path, **kw):
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 10)
        return self.s.get(self.url(path), **kw)

    def whoami(self):
        """What a copy of this device's cookie gets now (the jar is left as it is)."""
        r = requests.get(self.url("/whoami"), headers=cookie_header(self.value), timeout=10)
        assert r.status_code == 200, r.text
        return r.text

    def logged_in(self):
        return self.whoami().startswith(f"user=[{self.user}] status=valid ")


def members(admin, user, prefix="session:"):
    return {m.decode() for m in admin.smembers(index_key(user, prefix))}


def record(sid, prefix="session:"):
    return prefix + sid


# ---- the index ----------------------------------------------------------------------------------


def test_logins_fill_the_index(nginx, redis_server):
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    alice = [Device(srv, "alice") for _ in range(3)]
    bob = Device(srv, "bob")
    assert members(admin, "alice") == {d.sid for d in alice}
    assert members(admin, "bob") == {bob.sid}
    for user in ("alice", "bob"):
        ttl = admin.ttl(index_key(user))
        assert LIFETIME - 10 <= ttl <= LIFETIME, ttl
    # the records are what they always were, with a TTL no longer than the index's
    for d in alice:
        assert admin.hgetall(record(d.sid)) == {b"user": b'"alice"'}
        assert admin.ttl(record(d.sid)) <= admin.ttl(index_key("alice"))
    # a user name is taken byte for byte (UTF-8, a space, a colon)
    odd = Device(srv, "émile x")
    assert members(admin, "émile x") == {odd.sid}
    colon = Device(srv)
    assert colon.get("/setuser?u=al:ice").status_code == 200
    assert members(admin, "al:ice") == {colon.sid}


def test_index_ttl_is_raised_never_lowered(nginx, redis_server):
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    first = Device(srv, "alice")
    admin.expire(index_key("alice"), 100)        # as if alice's last login was long ago
    second = Device(srv, "alice")
    assert admin.ttl(index_key("alice")) >= LIFETIME - 10
    admin.expire(index_key("alice"), LIFETIME * 5)   # longer than any session can live
    Device(srv, "alice")
    assert admin.ttl(index_key("alice")) > LIFETIME * 4
    assert {first.sid, second.sid} <= members(admin, "alice")
    # compared in milliseconds: an index a few hundred ms short of a new session's end (whole
    # seconds would round it up to the same TTL) is raised too
    admin.pexpire(index_key("alice"), LIFETIME * 1000 - 400)
    third = Device(srv, "alice")
    index_ms = admin.pttl(index_key("alice"))
    assert admin.pttl(record(third.sid)) <= index_ms
    assert index_ms > LIFETIME * 1000 - 200, index_ms


def test_a_key_of_another_type_at_the_index_is_replaced(nginx, redis_server):
    """nginx only ever writes a set at <prefix>user:<name>. Anything else there was written by
    another program (a Flask app can be made to write its record under a sid the client chose,
    "user:alice": REVIEW_LOGOUT_ALL.md finding 1) and lists no session: a login replaces it
    (never a 503: nobody can lock an account out that way), and a logout-all that finds one
    reads an empty index (303, a warning) - what it lists is what a missing index lists."""
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    admin.set(index_key("alice"), "a pickle", ex=LIFETIME * 24)
    a = Device(srv, "alice")                            # (Device asserts the 303)
    assert admin.type(index_key("alice")) == b"set"
    assert members(admin, "alice") == {a.sid}
    assert 0 < admin.ttl(index_key("alice")) <= LIFETIME
    b = Device(srv, "alice")
    assert b.get("/logout-all").status_code == 303
    assert not a.logged_in()
    # written over behind nginx while a session lives: that session left the index then
    c, d = Device(srv, "alice"), Device(srv, "alice")
    admin.delete(index_key("alice"))
    admin.hset(index_key("alice"), "not", "an index")
    assert c.get("/logout-all").status_code == 303
    assert srv.grep_log('the index of user "alice" is not a set', level="warn")
    assert d.logged_in()                                # (as after a DEL of the index)
    assert admin.type(index_key("alice")) == b"hash"    # left alone: the next add replaces it
    assert Device(srv, "alice").get("/logout-all").status_code == 303


def test_logout_regenerate_and_destroy_keep_the_index(nginx, redis_server):
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    a, b, c = (Device(srv, "alice") for _ in range(3))
    # session_regenerate: the new id joins, the old one leaves
    old = a.sid
    r = a.get("/regen")
    assert r.status_code == 200 and a.sid != old
    assert members(admin, "alice") == {a.sid, b.sid, c.sid}
    # an ordinary logout: only that id leaves
    r = b.get("/logout")
    assert r.status_code == 303 and b.value is None
    assert members(admin, "alice") == {a.sid, c.sid}
    # session_destroy
    c_sid = c.sid
    assert c.get("/destroy").status_code == 200
    assert not admin.exists(record(c_sid))
    assert members(admin, "alice") == {a.sid}
    # a change of another key leaves the index alone
    assert a.get("/name?v=x").status_code == 200
    assert members(admin, "alice") == {a.sid}
    # the last one out: the index key is gone with its last member
    assert a.get("/logout").status_code == 303
    assert not admin.exists(index_key("alice"))


def test_session_set_of_the_user_key_moves_the_entry(nginx, redis_server):
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    d = Device(srv)
    r = d.get("/setuser?u=dave")                  # a session made by session_set
    assert r.status_code == 200
    d.user = "dave"
    assert members(admin, "dave") == {d.sid}
    assert 0 < admin.ttl(index_key("dave")) <= LIFETIME
    assert d.get("/setuser?u=erin").status_code == 200   # same id, another user
    assert members(admin, "erin") == {d.sid}
    assert not admin.exists(index_key("dave"))
    assert d.get("/name?v=kept").status_code == 200    # (so that the session is not emptied)
    assert d.get("/unsetuser").status_code == 200      # no user: in no index
    assert not admin.exists(index_key("erin"))
    assert admin.exists(record(d.sid))


def test_a_session_set_user_session_ends_with_logout_all(nginx, redis_server):
    srv = start(nginx, redis_server.address)
    made = Device(srv)
    assert made.get("/setuser?u=alice").status_code == 200
    made.user = "alice"
    form = Device(srv, "alice")
    r = form.get("/logout-all")
    assert r.status_code == 303
    assert not made.logged_in()


def test_renewal_indexes_sessions_from_before_the_index(nginx, redis_server):
    """A session made before the index was kept (seeded into Redis as nginx writes records)
    joins it at its next renewal; logout-all then ends it."""
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address, "session_renew 1s;")
    value, sid, key = seed(admin, {"user": "alice"}, srv.secrets[0], ttl=LIFETIME,
                           created=int(time.time()) - 10, refreshed=int(time.time()) - 10)
    assert not admin.exists(index_key("alice"))
    r = srv.get("/whoami", headers=cookie_header(value))
    assert r.text.startswith("user=[alice] status=valid "), r.text
    assert cookie_named(r, "session") is not None     # renewed
    assert members(admin, "alice") == {sid}
    Device(srv, "alice").get("/logout-all")
    assert not admin.exists(key)


def test_stale_entries_are_pruned(nginx, redis_server):
    """Ids whose record is gone (expired, deleted behind nginx) leave the index: a logout-all
    removes them, and so does the next login, which checks a sample of the others."""
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    a = Device(srv, "alice")
    b = Device(srv, "alice")
    admin.delete(record(b.sid))                 # deleted behind nginx's back
    admin.sadd(index_key("alice"), "0" * 32)    # an id whose record expired long ago
    c = Device(srv, "alice")                    # a login prunes what its sample finds dead
    # (the sample is 4 members, the new one included: here every other member was checked)
    assert members(admin, "alice") == {a.sid, c.sid}
    admin.sadd(index_key("alice"), "1" * 32, "not a member!")
    r = a.get("/logout-all")
    assert r.status_code == 303
    assert not admin.exists(index_key("alice")), members(admin, "alice")
    assert srv.grep_log('session logout all: user "alice": 1 other sessions ended, '
                        '2 stale index entries removed', level="info")


def test_an_entry_naming_another_users_session_does_not_end_it(nginx, redis_server):
    """The index is checked against the record: an entry of alice's that names bob's session
    (planted, or left by a failure) is pruned, bob stays logged in."""
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    alice = Device(srv, "alice")
    bob = Device(srv, "bob")
    admin.sadd(index_key("alice"), bob.sid)
    assert alice.get("/logout-all").status_code == 303
    assert bob.logged_in()
    assert not admin.exists(index_key("alice"))


def test_the_end_check_compares_decoded_users(nginx, redis_server):
    """The end script compares the user field as a decoded JSON value, not as text: a record
    that spells the name another way (json.dumps' "\\u00e9", a migration tool's) is the
    user's and is ended. A record that holds no user (no field, not JSON, JSON null) is not
    ended and KEEPS its entry: a session_set of the user key adds the entry before the record
    takes the user, so the next logout-all must still find it. Another user's record is
    pruned."""
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    me = Device(srv, "émile x")
    bob = Device(srv, "bob")
    now = int(time.time())
    spelled, sid, key = seed(admin, {"user": "émile x"}, srv.secrets[0], ttl=LIFETIME,
                             created=now - 10, refreshed=now - 10)
    assert admin.hget(key, "user") == b'"\\u00e9mile x"'
    assert srv.get("/whoami", headers=cookie_header(spelled)).content.decode().startswith(
        "user=[émile x] status=valid ")
    anon, anon_sid, anon_key = seed(admin, {"name": "x"}, srv.secrets[0], ttl=LIFETIME)
    odd = {"7" * 32: "émile x", "8" * 32: "null", "9" * 32: "[\"émile x\"]"}
    for m, v in odd.items():
        admin.hset(record(m), "user", v)
        admin.expire(record(m), LIFETIME)
    admin.sadd(index_key("émile x"), sid, anon_sid, bob.sid, *odd)
    assert me.get("/logout-all").status_code == 303
    assert not admin.exists(key)
    assert " status=valid " not in srv.get("/whoami", headers=cookie_header(spelled)).text
    assert bob.logged_in()
    assert all(admin.exists(record(m)) for m in [anon_sid, *odd])
    assert members(admin, "émile x") == {anon_sid, *odd}
    assert srv.grep_log(': 1 other sessions ended, 1 stale index entries removed',
                        level="info")


def test_an_entry_of_a_regenerated_session_is_followed(nginx, redis_server):
    """An entry whose record is session_regenerate's marker: the session moved to a new id,
    which joined the index before the old id was retired. The walk takes the old entry out
    (the marker is left to expire), reads the index again and ends the new id - the marker is
    never counted as an ended session (REVIEW_LOGOUT_ALL.md finding 6; t/review has the race
    itself)."""
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    a, b = Device(srv, "alice"), Device(srv, "alice")
    old = b.sid
    assert b.get("/regen").status_code == 200 and b.sid != old
    assert admin.get(record(old)) == b"#session-regenerated"
    admin.sadd(index_key("alice"), old)      # as a walk that read the index before the move
    assert a.get("/logout-all").status_code == 303
    assert not b.logged_in()
    assert admin.get(record(old)) == b"#session-regenerated"
    assert not admin.exists(index_key("alice"))
    assert srv.grep_log('session logout all: user "alice": 1 other sessions ended, '
                        '1 stale index entries removed', level="info")


# ---- logout everywhere ----------------------------------------------------------------------------


def test_logout_all_ends_every_session_of_the_user(nginx, redis_server):
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    alice = [Device(srv, "alice") for _ in range(3)]
    bob = Device(srv, "bob")
    sids = [d.sid for d in alice]
    copy = alice[1].value                       # a stolen copy of a cookie
    assert all(d.logged_in() for d in alice) and bob.logged_in()

    r = alice[0].get("/logout-all")
    assert r.status_code == 303
    assert r.headers["Location"].endswith("/bye")
    assert cookie_named(r, "session") == helpers.session_deletion()
    assert "no-store" in r.headers.get("Cache-Control", "")
    assert alice[0].value is None               # this device's cookie is expired
    for d in alice[1:]:
        assert d.whoami().startswith("user=[] status=invalid "), d.whoami()
    r = requests.get(srv.url("/whoami"), headers=cookie_header(copy), timeout=10)
    assert r.text.startswith("user=[] status=invalid ")
    for sid in sids:
        assert not admin.exists(record(sid))
    assert not admin.exists(index_key("alice"))
    assert bob.logged_in()
    assert members(admin, "bob") == {bob.sid}
    assert srv.grep_log('session logout all: user "alice": 2 other sessions ended', level="info")
    # the other devices log in again as usual
    alice[1].login("alice")
    assert alice[1].logged_in() and members(admin, "alice") == {alice[1].sid}


def test_logout_all_without_a_session_is_a_logout(nginx, redis_server):
    srv = start(nginx, redis_server.address)
    alice = Device(srv, "alice")
    r = srv.get("/logout-all")
    assert r.status_code == 303 and r.headers["Location"].endswith("/bye")
    anon = Device(srv)
    assert anon.get("/name?v=x").status_code == 200      # a session without a user
    r = anon.get("/logout-all")
    assert r.status_code == 303
    assert alice.logged_in()


def test_logout_all_refused_cross_site(nginx, redis_server):
    srv = start(nginx, redis_server.address)
    a, b = Device(srv, "alice"), Device(srv, "alice")
    r = a.get("/logout-all", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert a.logged_in() and b.logged_in()
    r = a.get("/logout-all", headers={"Sec-Fetch-Site": "same-site"})
    assert r.status_code == 303
    assert not b.logged_in()


def copy_logged_in(srv, value, user="alice"):
    """Whether a copy of a cookie value (one the device's jar no longer has) is still a session."""
    r = requests.get(srv.url("/whoami"), headers=cookie_header(value), timeout=10)
    return r.status_code == 200 and r.text.startswith(f"user=[{user}] status=valid ")


def test_logout_all_with_redis_down_is_503_not_a_false_success(nginx, redis_server):
    """Redis stops answering: the logout cannot even read the session (whose user it needs), so
    it answers 503 - not its usual 303, which would claim that every session ended - and, as
    every logout, expires this device's cookie."""
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address, timeout="300ms")
    a, b = Device(srv, "alice"), Device(srv, "alice")
    value = a.value
    redis_server.pause()
    try:
        mark = srv.log_mark()
        r = a.get("/logout-all")
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.headers.get("Retry-After") == "1"
        expired = cookie_named(r, "session")
        assert expired is not None and expired.startswith("session=;") and "Max-Age=0" in expired
        assert a.value is None                           # this device is logged out
        assert "no-store" in r.headers.get("Cache-Control", "") or \
            "private" in r.headers.get("Cache-Control", ""), r.headers
        assert srv.grep_log("session logout all: the session could not be read", mark, "error")
    finally:
        redis_server.resume()
    # nothing was ended: the record (and so a stolen copy of the cookie) and the other device
    # live on until a logout-all that works, from any of the user's devices
    assert poll(lambda: copy_logged_in(srv, value), 3.0) and b.logged_in()
    r = b.get("/logout-all")
    assert r.status_code == 303
    assert not copy_logged_in(srv, value) and not admin.exists(index_key("alice"))


@pytest.mark.parametrize("rules", [
    ["~*", "+@all", "-sscan"],                               # the index cannot be read
    ["resetkeys", "~session:user:*", "%R~session:*", "+@all"],   # records cannot be deleted
], ids=["index-unreadable", "records-undeletable"])
def test_logout_all_refused_by_redis_is_503(nginx, redis_factory, rules):
    """Redis refuses part of the work (here through an ACL changed while nginx runs): the
    logout-all answers 503 and says so at error - never a 303 that claims every session ended -
    and this device's cookie is expired all the same (its record deleted where Redis allows)."""
    apw = helpers.random_secret(24)
    rd = redis_factory(extra=["--user", "admin", "on", ">" + apw, "~*", "&*", "+@all"],
                       admin_user=("admin", apw))
    admin = rd.admin()
    srv = start(nginx, rd.address)
    a, b = Device(srv, "alice"), Device(srv, "alice")
    value, a_sid = a.value, a.sid
    admin.execute_command("ACL", "SETUSER", "default", "reset", "on", "nopass", "&*", *rules)
    mark = srv.log_mark()
    r = a.get("/logout-all")
    assert r.status_code == 503, r.status_code
    expired = cookie_named(r, "session")
    assert expired is not None and expired.startswith("session=;"), expired
    assert b.logged_in()
    if "-sscan" in rules:   # this session's own record could be deleted, and its entry removed
        assert not copy_logged_in(srv, value)
        assert members(admin, "alice") == {b.sid}
    else:                   # not even this one: kept, and indexed, for the next try
        assert copy_logged_in(srv, value)
        assert members(admin, "alice") == {a_sid, b.sid}
    assert srv.grep_log('session logout all: user "alice": not every session could be ended',
                        mark, "error")
    assert srv.grep_log("NOPERM", mark, "error") or srv.grep_log("permission", mark, "error"), \
        srv.log_since(mark)
    admin.execute_command("ACL", "SETUSER", "default", "reset", "on", "nopass", "~*", "&*",
                          "+@all")
    assert b.get("/logout-all").status_code == 303
    assert not copy_logged_in(srv, value)


def test_concurrent_logins_during_logout_all(nginx, redis_server):
    """Logins of the same user while a logout-all runs (bounded: 4 threads, at most 3 s): no
    error, and every session that existed before the logout-all started is gone; those made
    meanwhile may survive, and stay indexed for the next logout-all."""
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address, workers=2)
    before = [Device(srv, "alice") for _ in range(40)]
    sids = {d.sid for d in before}
    stop = threading.Event()
    made, errors = [], []

    def churn():
        while not stop.is_set() and len(made) < 60:
            try:
                made.append(Device(srv, "alice"))
            except AssertionError as e:
                errors.append(repr(e))

    threads = [threading.Thread(target=churn, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.05)
        r = before[0].get("/logout-all")
        assert r.status_code == 303, r.status_code
        gone = [sid for sid in sids if admin.exists(record(sid))]
        assert gone == [], gone
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors, errors[:3]
    # what survived is indexed: the next logout-all ends it too
    survivors = [d for d in made if d.logged_in()]
    assert {d.sid for d in survivors} <= members(admin, "alice")
    if survivors:
        assert survivors[0].get("/logout-all").status_code == 303
        assert not any(d.logged_in() for d in made)
    assert not admin.exists(index_key("alice"))


def test_many_sessions_are_ended_in_rounds(nginx, redis_server):
    """More sessions than one SSCAN round (256): all of them end."""
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    me = Device(srv, "alice")
    pipe = admin.pipeline()
    sids = []
    for _ in range(700):
        sid = os.urandom(16).hex()
        sids.append(sid)
        pipe.hset(record(sid), "user", '"alice"')
        pipe.expire(record(sid), 600)
        pipe.sadd(index_key("alice"), sid)
    pipe.execute()
    r = me.get("/logout-all")
    assert r.status_code == 303
    assert sum(admin.exists(record(s)) for s in sids) == 0
    assert not admin.exists(index_key("alice"))
    assert srv.grep_log('user "alice": 700 other sessions ended', level="info")


# ---- session_destroy_user ---------------------------------------------------------------------------


def test_destroy_user_from_an_admin_location(nginx, redis_server):
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    alice = [Device(srv, "alice") for _ in range(3)]
    bob = Device(srv, "bob")
    r = srv.get("/admin/end?user=alice")
    assert r.status_code == 200 and r.text == "ended\n"
    assert not any(d.logged_in() for d in alice)
    assert bob.logged_in()
    assert not admin.exists(index_key("alice"))
    assert srv.grep_log('session_destroy_user: user "alice": 3 sessions ended', level="info")
    # an admin who is logged in keeps their own session (another user's sessions end)
    r = bob.get("/admin/end?user=carol")
    assert r.status_code == 200 and bob.logged_in()


def test_destroy_user_with_an_empty_name_does_nothing(nginx, redis_server):
    srv = start(nginx, redis_server.address)
    a = Device(srv, "alice")
    mark = srv.log_mark()
    r = srv.get("/admin/end?user=")
    assert r.status_code == 200
    assert a.logged_in()
    assert srv.grep_log("session_destroy_user: the user name is empty", mark, "info")
    r = srv.get("/admin/end?user=nobody")       # nobody's index: nothing to end, 200
    assert r.status_code == 200 and a.logged_in()


@pytest.mark.parametrize("path,headers,status", [
    ("/admin/denied?user=alice", {}, 403),                                  # deny all
    ("/admin/require?user=alice", {}, 401),                                 # session_require
    ("/admin/end?user=alice", {"Sec-Fetch-Site": "cross-site"}, 403),       # a link elsewhere
], ids=["deny-all", "session_require", "cross-site"])
def test_destroy_user_refused(nginx, redis_server, path, headers, status):
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address)
    a, b = Device(srv, "alice"), Device(srv, "alice")
    r = srv.get(path, headers=headers)
    assert r.status_code == status, (r.status_code, r.text)
    assert a.logged_in() and b.logged_in()
    assert members(admin, "alice") == {a.sid, b.sid}


def test_destroy_user_same_site_and_logged_in_admin(nginx, redis_server):
    srv = start(nginx, redis_server.address)
    a = Device(srv, "alice")
    r = srv.get("/admin/end?user=alice", headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200 and not a.logged_in()
    a.login("alice")
    admin_dev = Device(srv, "bob")
    r = admin_dev.get("/admin/require?user=alice")   # passes session_require: applied
    assert r.status_code == 200 and not a.logged_in()


def test_destroy_user_not_applied_in_a_subrequest(nginx, redis_server):
    """An SSI include of the admin location is a subrequest: its actions are not applied (one
    warn line), as for every action."""
    srv = start(nginx, redis_server.address)
    a = Device(srv, "alice")
    r = srv.get("/admin/page.shtml")
    assert r.status_code == 200 and "ended" in r.text
    assert a.logged_in()
    assert srv.grep_log("session actions are not applied in subrequests", level="warn")


def test_destroy_user_with_redis_down_is_503(nginx, redis_server):
    srv = start(nginx, redis_server.address, timeout="300ms")
    a = Device(srv, "alice")
    redis_server.pause()
    try:
        r = srv.get("/admin/end?user=alice")
        assert r.status_code == 503, (r.status_code, r.text)
        assert "ended" not in r.text
        assert srv.grep_log('session_destroy_user: user "alice": not every session could be '
                            'ended', level="error")
    finally:
        redis_server.resume()
    assert a.logged_in()
    assert srv.get("/admin/end?user=alice").status_code == 200
    assert not a.logged_in()


def test_destroy_user_with_store_fail_open(nginx, redis_server):
    """session_store_fail open lets requests through without a session, but a
    session_destroy_user that could not be done is still a 503."""
    srv = start(nginx, redis_server.address, "session_store_fail open;", timeout="300ms")
    Device(srv, "alice")
    redis_server.stop()
    r = srv.get("/admin/end?user=alice")
    assert r.status_code == 503
    redis_server.start()


# ---- Redis permissions ---------------------------------------------------------------------------

# README's least-privilege user (t/test_redis.py) plus what the user index needs.
from test_redis import LEAST_PRIVILEGE   # noqa: E402
INDEX_COMMANDS = ["+sscan", "+srem", "+exists", "+sadd", "+srandmember"]   # (+pttl +pexpire: v1's)


def acl_site(nginx, redis_factory, tmp_path, rules, extra=""):
    npw, apw = helpers.random_secret(24), helpers.random_secret(24)
    rd = redis_factory(extra=["--user", "default", "off",
                              "--user", "admin", "on", ">" + apw, "~*", "&*", "+@all",
                              "--user", "ngx", "on", ">" + npw] + rules,
                       admin_user=("admin", apw))
    pwfile = tmp_path / "ngx.pw"
    pwfile.write_text(npw + "\n")
    srv = start(nginx, f"{rd.address} username=ngx password_file={pwfile}", extra)
    return rd, srv


def test_least_privilege_acl_with_the_index(nginx, redis_factory, tmp_path):
    """Every path that touches the index works for README's least-privilege user with the index
    commands added: login (and its sample check), session_set of the user, regenerate,
    renewal, logout, logout-all, session_destroy_user."""
    rd, srv = acl_site(nginx, redis_factory, tmp_path, LEAST_PRIVILEGE + INDEX_COMMANDS,
                       "session_renew 1s;")
    admin = rd.admin()
    mark = srv.log_mark()
    a = Device(srv, "alice")
    admin.sadd(index_key("alice"), "3" * 32)           # a dead one: b's sample finds it
    b = Device(srv, "alice")
    assert members(admin, "alice") == {a.sid, b.sid}
    c, d = Device(srv, "alice"), Device(srv, "alice")
    assert a.get("/regen").status_code == 200
    assert b.get("/logout").status_code == 303
    time.sleep(1.1)
    assert c.get("/whoami").status_code == 200         # renewal
    e = Device(srv)
    assert e.get("/setuser?u=alice").status_code == 200
    assert members(admin, "alice") == {a.sid, c.sid, d.sid, e.sid}
    assert a.get("/logout-all").status_code == 303
    assert not c.logged_in() and not admin.exists(index_key("alice"))
    f = Device(srv, "alice")
    assert srv.get("/admin/end?user=alice").status_code == 200
    assert not f.logged_in()
    assert not [l for l in srv.log_since(mark) if "NOPERM" in l or "[error]" in l]


def test_acl_without_the_index_commands_is_refused_visibly(nginx, redis_factory, tmp_path):
    """The list of v1 (no index commands) and a configuration that keeps the index: a login
    answers 503 with Redis's refusal in the log - not a session the index would miss."""
    rd, srv = acl_site(nginx, redis_factory, tmp_path, LEAST_PRIVILEGE)
    d = Device(srv)
    page = d.s.get(d.url("/login"), timeout=10)
    token = L.form_inputs(page.text)["csrf_token"]
    r = d.s.post(d.url("/login"), data={"username": "alice", "password": PASSWORD,
                                         "csrf_token": token}, allow_redirects=False, timeout=10)
    assert r.status_code == 503 and d.value is None
    assert poll(lambda: srv.grep_log("can't run this command", level="error") or
                srv.grep_log("NOPERM", level="error"), 2.0)
    assert srv.grep_log("the new session could not be added to its user's index",
                        level="error")
    assert rd.admin().keys("session:*") == []            # the record was deleted again


# ---- configuration ------------------------------------------------------------------------------


COOKIE_SITE = """
server {{
    listen 127.0.0.1:{{port}};
    session_secret_file {{secret_file}};
    {store}
    location = /x {{ {body} }}
}}
"""


@pytest.mark.parametrize("store,body,message", [
    ("", "session_logout all;", '"session_logout ... all" requires "session_store redis"'),
    ("session_store cookie;", "session_logout /bye all;",
     '"session_logout ... all" requires "session_store redis"'),
    ("", "session_destroy_user $arg_u; return 200;",
     '"session_destroy_user" requires "session_store redis"'),
    ("session_store redis; session_redis 127.0.0.1:1;",
     "session_logout /bye all all;", 'invalid number of arguments'),
    ("session_store redis; session_redis 127.0.0.1:1;",
     "session_logout all all;", 'must be a local path'),
    ("session_store redis; session_redis 127.0.0.1:1;",
     "session_logout all /bye;", 'must be a local path'),
    ("session_store redis; session_redis 127.0.0.1:1;",
     "session_destroy_user a; session_destroy_user b;", 'is duplicate'),
    ("session_store redis; session_redis 127.0.0.1:1;",
     "session_logout; session_destroy_user $arg_u;", 'cannot be used in a "session_logout"'),
], ids=["cookie-default", "cookie", "destroy-user-cookie", "three-args", "all-twice", "all-first",
        "destroy-user-twice", "destroy-user-in-logout"])
def test_config_errors(nginx_t, store, body, message):
    rc, out = nginx_t(COOKIE_SITE.format(store=store, body=body))
    assert rc != 0 and message in out, out


def test_config_accepts(nginx_t):
    snippet = COOKIE_SITE.format(
        store="session_store redis; session_redis 127.0.0.1:1;",
        body="session_logout all;") + """
server {
    listen 127.0.0.1:{port2};
    session_secret_file {secret_file};
    session_store redis; session_redis 127.0.0.1:1;
    location = /a { session_logout /bye all; }
    location = /b { session_logout /bye; }
    location = /c { if ($arg_x) { session_destroy_user $arg_x; } return 200; }
}
"""
    rc, out = nginx_t(snippet)
    assert rc == 0, out


# ---- several nginx, caches, Cluster -------------------------------------------------------------


def test_two_nginx_with_caches_see_the_logout_all(nginx, redis_server):
    """Two nginx instances (each with session_redis_cache) share one Redis: a logout-all on one
    ends the sessions on the other at once - the deletes go through Redis, whose invalidations
    empty the other nginx's cache."""
    extra = ("session_redis_cache sessions:1m max_age=60s; "
             "add_header X-Cache-Status \"[$session_cache_status]\" always;")
    one = start(nginx, redis_server.address, extra)
    two = start(nginx, redis_server.address, extra, secrets=one.secrets)
    admin = redis_server.admin()

    def cache_status(srv, value):
        r = srv.get("/whoami", headers=cookie_header(value))
        return r, r.headers.get("X-Cache-Status", "")[1:-1]

    devices = [Device(one, "alice"), Device(two, "alice"), Device(two, "alice")]
    bob = Device(two, "bob")
    # every session is served from both caches
    for d in devices + [bob]:
        for srv in (one, two):
            def hit():
                r, st = cache_status(srv, d.value)
                assert r.text.startswith(f"user=[{d.user}] status=valid "), r.text
                return st == "hit"
            helpers.wait_for(hit, 5.0, "a cache hit")
    r = devices[0].get("/logout-all")
    assert r.status_code == 303
    admin.ping()    # (the invalidations Redis sent for the deletes are on their way)
    for d in devices[1:]:
        for srv in (one, two):
            helpers.wait_for(lambda: cache_status(srv, d.value)[0].text.startswith(
                "user=[] status=invalid "), 2.0, "the ended session to be gone")
            for _ in range(5):
                assert cache_status(srv, d.value)[0].text.startswith("user=[] status=invalid ")
    for srv in (one, two):
        assert cache_status(srv, bob.value)[0].text.startswith("user=[bob] status=valid ")
    # and the other nginx can end them too
    devices = [Device(one, "alice"), Device(two, "alice")]
    for d in devices:
        for srv in (one, two):
            helpers.wait_for(lambda: cache_status(srv, d.value)[1] == "hit", 5.0, "a hit")
    assert two.get("/admin/end?user=alice").status_code == 200
    admin.ping()
    for d in devices:
        for srv in (one, two):
            helpers.wait_for(lambda: cache_status(srv, d.value)[0].text.startswith(
                "user=[] status=invalid "), 2.0, "the ended session to be gone")


def test_cluster_index_and_sessions_on_different_nodes(nginx, redis_cluster):
    topo = redis_cluster
    srv = start(nginx, "cluster " + " ".join(topo.addresses))
    alice = [Device(srv, "alice") for _ in range(12)]
    # (Session ids are random: twelve records miss one of the three nodes about 2% of the time,
    # so log in more devices until every node has one; at most 60, which miss one 1e-10 of it.)
    while len({topo.node_for_key(record(d.sid)).port for d in alice}) < 3 and len(alice) < 60:
        alice.append(Device(srv, "alice"))
    bob = Device(srv, "bob")
    c = topo.client()
    idx_node = topo.node_for_key(index_key("alice"))
    record_nodes = {topo.node_for_key(record(d.sid)).port for d in alice}
    # the index is on one node, the records spread over all three: most of them elsewhere
    assert len(record_nodes) == 3, record_nodes
    assert {m.decode() for m in idx_node.admin().smembers(index_key("alice"))} == \
        {d.sid for d in alice}
    r = alice[0].get("/regen")                  # the index follows a regenerate across nodes
    assert r.status_code == 200
    assert alice[0].sid in {m.decode() for m in c.smembers(index_key("alice"))}
    c.sadd(index_key("alice"), "2" * 32)        # a stale entry, its record on some node
    sids = [d.sid for d in alice]
    r = alice[1].get("/logout-all")
    assert r.status_code == 303, (r.status_code, srv.log_text()[-2000:])
    for sid in sids:
        assert not c.exists(record(sid))
    assert not any(d.logged_in() for d in alice)
    assert not c.exists(index_key("alice"))
    assert bob.logged_in()
    alice = [Device(srv, "alice") for _ in range(5)]
    assert srv.get("/admin/end?user=alice").status_code == 200
    assert not any(d.logged_in() for d in alice)
    assert bob.logged_in()


def test_cluster_node_down_during_logout_all_is_503(nginx, redis_cluster):
    """A node holding some of the records stops answering: the records elsewhere end, the
    answer is 503 (not every session is known to have ended), this device is logged out all the
    same, and the next try (another device), with the node back, ends the rest."""
    topo = redis_cluster
    srv = start(nginx, "cluster " + " ".join(topo.addresses), timeout="300ms")
    alice = [Device(srv, "alice") for _ in range(24)]   # (none on the stopped node: 1 in 10^4)
    me = alice[0]
    idx_node = topo.node_for_key(index_key("alice"))
    keep = {idx_node.port, topo.node_for_key(record(me.sid)).port}
    down = [n for n in topo.nodes if n.port not in keep]
    victims = [d for d in alice if topo.node_for_key(record(d.sid)).port in
               {n.port for n in down}]
    if not down or not victims:
        pytest.skip("every record landed on the index's node (random ids)")
    node = down[0]
    victims = [d for d in victims if topo.node_for_key(record(d.sid)).port == node.port]
    value = me.value
    node.pause()
    try:
        r = me.get("/logout-all")
        assert r.status_code == 503, r.status_code
        expired = cookie_named(r, "session")
        assert expired is not None and expired.startswith("session=;"), expired
    finally:
        node.resume()
    assert not copy_logged_in(srv, value)   # this session ended all the same (a live node)
    others = [d for d in alice[1:] if d not in victims]
    assert not any(d.logged_in() for d in others)
    # (the victims' deletes were written to the stopped node: it runs them when it resumes -
    # "no answer" means "not known", which is why the answer was 503 and not 303)
    topo.wait_ok()
    assert poll(lambda: victims[0].get("/logout-all").status_code == 303, 5.0)
    assert not any(d.logged_in() for d in alice[1:])


# ---- flask mode ---------------------------------------------------------------------------------


def test_flask_mode_sessions_nginx_makes_are_indexed(nginx, redis_server):
    """In flask mode the members are Flask-Session ids; sessions nginx makes (its login) are
    indexed and ended; a record the Flask app made itself is not in the index."""
    admin = redis_server.admin()
    srv = start(nginx, redis_server.address,
                "session_format flask serializer=json; session_user_key username;")
    a, b = Device(srv, "alice"), Device(srv, "alice")
    sids = members(admin, "alice")
    assert sids == {a.value, b.value}, sids
    assert admin.ttl(index_key("alice")) > LIFETIME - 10
    # a record the Flask app wrote itself (same prefix, its own sid) is not indexed
    admin.set("session:flaskmade", '{"username": "alice", "_permanent": true}', ex=600)
    r = a.get("/logout-all")
    assert r.status_code == 303
    assert not b.whoami().startswith("user=[alice] status=valid ")
    for sid in sids:
        assert not admin.exists("session:" + sid)
    assert admin.exists("session:flaskmade")      # README: not indexed, not ended


# ---- metrics ------------------------------------------------------------------------------------


def test_metrics_count_user_logouts(nginx, redis_server):
    srv = start(nginx, redis_server.address,
                locations="location = /metrics { session_metrics; }")
    for _ in range(2):
        Device(srv, "alice")
    d = Device(srv, "alice")
    assert d.get("/logout-all").status_code == 303
    Device(srv, "bob")
    assert srv.get("/admin/end?user=bob").status_code == 200
    text = srv.get("/metrics").text
    assert 'nginx_session_user_logouts_total{source="logout_all",result="ok"} 1' in text
    assert 'nginx_session_user_logouts_total{source="destroy_user",result="ok"} 1' in text
    assert "nginx_session_user_sessions_ended_total 3" in text
