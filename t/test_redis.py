"""Redis store (session_store redis): what lands in Redis and what the client sees.

Every test runs its own redis-server on a loopback port (or unix socket) chosen at run time and
its own nginx. Records are inspected with redis-py; cookies are decoded with the envelope model
in helpers.py and, to test lookups, records are seeded straight into Redis and a correctly
signed id cookie is crafted for them (redis_support.seed).

Contract (DESIGN.md, issue 3): the cookie holds a signed 16-byte random id (envelope kind 3);
the record is <prefix><32 lowercase hex chars> -> session JSON, TTL = remaining lifetime (idle
timeout bounds it); lookups finish before the location's rewrite directives; forged ids never
reach Redis; writes are visible to the next request; destroy/logout/regenerate delete keys.
Faults (timeouts, restarts, concurrency) are in test_redis_faults.py.
"""

import json
import os
import re
import time
from pathlib import Path

import pytest
import requests

import helpers
from helpers import cookie_named, match_cookie, poll, session_deletion
from redis_support import (REDIS_LOCATIONS, cmd_calls, cookie_header, craft_id_cookie, get_json,
                           id_of, other_clients, redis_snippet, seed, session_cookie_value)

REPO = Path(__file__).resolve().parent.parent
NO_SUCH_SESSION = 'session cookie "session" rejected: no such session in the store'
HEX32 = re.compile(r"[0-9a-f]{32}")


def start(nginx, rd, extra="", locations=REDIS_LOCATIONS, directive="127.0.0.1:{rport}",
          **kw):
    """nginx with the Redis store pointing at rd (placeholders: {rport}, {rsock})."""
    return nginx(redis_snippet(directive, locations, extra), rport=rd.port,
                 rsock=rd.socket_path or "", **kw)


def whoami(srv, value, name="session"):
    return srv.get("/whoami", headers=cookie_header(value, name))


def login(srv, user="alice"):
    r = srv.get(f"/login?u={user}")
    assert r.status_code == 200, r.text
    return session_cookie_value(r)


def gone(admin, key, timeout=2.0):
    """True once key no longer exists (bounded poll: our own client is not on nginx's
    connection, so its view is ordered only by time)."""
    return poll(lambda: not admin.exists(key), timeout)


# ---- what is written ---------------------------------------------------------------------------


def test_login_writes_json_record_under_prefixed_hex_id(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd, "session_lifetime 1h;")

    r = srv.get("/login?u=alice")
    assert r.status_code == 200
    sc = cookie_named(r, "session")
    assert match_cookie("session={v}; Path=/; HttpOnly; SameSite=Lax", sc), sc
    value = helpers.cookie_value(sc)

    env = helpers.decode_envelope(value)
    assert env.kind == helpers.KIND_ID
    sid = helpers.verify_signed(srv.secrets, "session", value)
    assert sid is not None and len(sid) == 16, "the id must be signed with the first secret"
    assert helpers.signing_secret(srv.secrets, "session", value) == srv.secrets[0]
    hexid = sid.hex()
    assert HEX32.fullmatch(hexid)

    # Only the id is in the cookie: the user name is nowhere in it.
    assert b"alice" not in helpers.b64url_decode(value)

    key = "session:" + hexid
    assert poll(lambda: admin.exists(key), 2.0)
    assert [k.decode() for k in admin.keys("*")] == [key]
    # v2 record: a hash of JSON values, written key by key
    assert admin.type(key) == b"hash"
    assert admin.hgetall(key) == {b"user": b'"alice"'}
    assert get_json(admin, key) == {"user": "alice"}
    assert 3600 - 10 <= admin.ttl(key) <= 3600

    r = whoami(srv, value)
    assert r.text == f"status=valid user=alice name= id={hexid}\n"
    # Ids are random: a second login gets another one.
    assert id_of(login(srv, "bob")) != hexid


@pytest.mark.parametrize("extra, ttl", [
    ("", 31 * 86400),
    ("session_lifetime 2h;", 7200),
    ("session_lifetime 2h; session_idle_timeout 10m;", 600),
    ("session_lifetime 5m; session_idle_timeout 1h;", 300),
], ids=["default-31d", "lifetime", "idle-bounds", "lifetime-bounds"])
def test_ttl_is_remaining_lifetime(nginx, redis_factory, extra, ttl):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd, extra)
    key = "session:" + id_of(login(srv))
    assert poll(lambda: admin.exists(key), 2.0)
    assert ttl - 10 <= admin.ttl(key) <= ttl


def test_second_key_updates_same_record(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    value = login(srv)
    hexid = id_of(value)

    r = srv.get("/name?v=waws", headers=cookie_header(value))
    assert r.status_code == 200
    new = cookie_named(r, "session")
    if new is not None:   # re-issued with a fresh refresh time: still the same id
        assert id_of(helpers.cookie_value(new)) == hexid
    assert whoami(srv, value).text == f"status=valid user=alice name=waws id={hexid}\n"
    assert get_json(admin, "session:" + hexid) == {"user": "alice", "name": "waws"}
    assert len(admin.keys("*")) == 1

    r = srv.get("/pop", headers=cookie_header(value))
    assert whoami(srv, value).text == f"status=valid user=alice name= id={hexid}\n"
    assert get_json(admin, "session:" + hexid) == {"user": "alice"}


def test_record_is_valid_json_for_awkward_values(nginx, redis_factory):
    """Quotes, backslashes, UTF-8 and JSON-looking text survive as JSON strings."""
    rd = redis_factory()
    admin = rd.admin()
    locs = REDIS_LOCATIONS + r"""
    location = /setx { session_set note $http_x_note; return 200 "ok\n"; }
    location = /note { return 200 "[$session_note]"; }
"""
    srv = start(nginx, rd, locations=locs)
    for note in ['he said "hi" \\ bye', "caf\u00e9 \u65e5\u672c", '{"user":"mallory"}', "[1,2]",
                 "a/b<c>&d", "tab-free but ; , = chars"]:
        r = srv.raw("/setx", headers=[("X-Note", note.encode("utf-8"))])
        assert r.status == 200
        value = helpers.cookie_value(cookie_named(r, "session"))
        rec = get_json(admin, "session:" + id_of(value))
        assert rec == {"note": note}, rec
        back = srv.raw("/note", headers=[("Cookie", f"session={value}")])
        assert back.body.decode("utf-8") == f"[{note}]"


def test_large_records_are_read_whole(nginx, redis_factory):
    """Replies larger than hiredis' 16 KB read size, many pipelined at once, arrive whole (no
    reply stranded in the socket buffer), up to the 64 KiB record limit; larger records are an
    invalid session, never read whole."""
    rd = redis_factory()
    admin = rd.admin()
    locs = REDIS_LOCATIONS + 'location = /blob { return 200 "$session_blob"; }\n'
    srv = start(nginx, rd, locations=locs)
    cookies = []
    for i in range(12):
        blob = chr(ord("a") + i) * (20000 + 3900 * i)   # up to 62,900 bytes of JSON string
        value, _, _ = seed(admin, {"user": f"u{i}", "blob": blob}, srv.secrets[0])
        cookies.append((value, blob))
    from concurrent.futures import ThreadPoolExecutor

    def fetch(item):
        value, blob = item
        r = srv.get("/blob", headers=cookie_header(value), timeout=10)
        return r.status_code == 200 and r.text == blob

    with ThreadPoolExecutor(12) as ex:
        for _ in range(3):
            assert all(ex.map(fetch, cookies))
    big, _, _ = seed(admin, {"user": "big", "blob": "z" * 65536}, srv.secrets[0])
    r = srv.get("/whoami", headers=cookie_header(big))
    assert r.text == "status=invalid user= name= id=\n"


@pytest.mark.parametrize("raw", [b"\x80\x04\x95pickled", b"[1,2]", b'"text"', b"{bad json"],
                         ids=["pickle", "array", "string", "broken"])
def test_foreign_record_is_rejected(nginx, redis_factory, raw):
    """A record that is not a JSON object (e.g. Flask-Session's pickle under the same key)
    means no session: status invalid, cookie left alone, one info line; never a 500."""
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    sid = os.urandom(16)
    admin.set("session:" + sid.hex(), raw)
    value = craft_id_cookie(srv.secrets[0], sid)
    mark = srv.log_mark()
    r = whoami(srv, value)
    assert (r.status_code, r.text) == (200, "status=invalid user= name= id=\n")
    assert cookie_named(r, "session") is None
    assert srv.get("/private", headers=cookie_header(value)).status_code == 401
    assert poll(lambda: srv.grep_log('session cookie "session" rejected', mark, "info"), 2.0)


def test_session_id_variable_empty_without_session(nginx, redis_factory):
    rd = redis_factory()
    srv = start(nginx, rd)
    assert srv.get("/whoami").text == "status=none user= name= id=\n"


# ---- lookups -----------------------------------------------------------------------------------


def test_lookup_finishes_before_rewrite_directives(nginx, redis_factory):
    """`if ($session_user = "")` and `return 200 $session_user` see the Redis record."""
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    value, hexid, key = seed(admin, {"user": "bob", "role": "admin"}, srv.secrets[0])

    r = srv.get("/private", headers=cookie_header(value))
    assert (r.status_code, r.text) == (200, "bob\n")
    r = srv.get("/private")
    assert (r.status_code, r.text) == (401, "anonymous\n")
    # A validly signed id whose record does not exist: anonymous.
    ghost = craft_id_cookie(srv.secrets[0], os.urandom(16))
    r = srv.get("/private", headers=cookie_header(ghost))
    assert (r.status_code, r.text) == (401, "anonymous\n")


def test_id_signed_with_older_secret_is_looked_up(nginx, redis_factory):
    """Key rotation: an id cookie signed with the second line of the secret file still works;
    when it is re-issued, it is signed with the first."""
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    value, hexid, key = seed(admin, {"user": "old"}, srv.secrets[1])
    assert whoami(srv, value).text == f"status=valid user=old name= id={hexid}\n"
    r = srv.get("/name?v=x", headers=cookie_header(value))
    new = helpers.cookie_value(cookie_named(r, "session"))
    assert id_of(new) == hexid
    assert helpers.signing_secret(srv.secrets, "session", new) == srv.secrets[0]


def test_session_require_with_redis(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    locs = REDIS_LOCATIONS + r"""
    location = /app { session_require; return 200 "app for $session_user\n"; }
    location = /page { session_require /login; return 200 "page for $session_user\n"; }
"""
    srv = start(nginx, rd, locations=locs)
    value, _, key = seed(admin, {"user": "carol"}, srv.secrets[0])
    nouser, _, _ = seed(admin, {"name": "x"}, srv.secrets[0])

    assert srv.get("/app").status_code == 401
    assert srv.get("/app", headers=cookie_header(nouser)).status_code == 401
    r = srv.get("/app", headers=cookie_header(value))
    assert (r.status_code, r.text) == (200, "app for carol\n")
    r = srv.get("/page", headers={"Accept": "text/html"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/login?next=/page"), r.headers
    r = srv.get("/page", headers={"Accept": "text/html", **cookie_header(value)})
    assert (r.status_code, r.text) == (200, "page for carol\n")
    # Revoked in Redis (e.g. "log out everywhere" by an admin script): locked out at once.
    admin.delete(key)
    assert srv.get("/app", headers=cookie_header(value)).status_code == 401


def test_variables_reach_upstream(nginx, redis_factory, echo_upstream):
    rd = redis_factory()
    admin = rd.admin()
    locs = REDIS_LOCATIONS + r"""
    location /up/ {
        proxy_set_header X-User $session_user;
        proxy_set_header X-Session-Id $session_id;
        proxy_set_header X-Status $session_status;
        proxy_pass http://127.0.0.1:{up}/;
    }
"""
    srv = start(nginx, rd, locations=locs, up=echo_upstream.port)
    value, hexid, _ = seed(admin, {"user": "dave"}, srv.secrets[0])
    r = srv.get("/up/x", headers=cookie_header(value))
    assert r.status_code == 200
    hdrs = {k.lower(): v for k, v in r.json()["headers"]}
    assert hdrs["x-user"] == "dave"
    assert hdrs["x-session-id"] == hexid
    assert hdrs["x-status"] == "valid"
    # Without a session: the empty headers are not sent at all (proxy_set_header semantics).
    anon = {k.lower(): v for k, v in srv.get("/up/x").json()["headers"]}
    assert "x-user" not in anon and "x-session-id" not in anon
    assert anon["x-status"] == "none"


def test_forged_ids_never_reach_redis(nginx, redis_factory):
    """Tampered, wrong-key, wrong-kind, truncated, garbage and expired cookies are rejected
    without a single Redis command; only a correctly signed id is looked up."""
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd, "session_lifetime 1h;")
    good, hexid, key = seed(admin, {"user": "alice"}, srv.secrets[0])
    other_secret = helpers.random_secret()
    sid = bytes.fromhex(hexid)
    now = int(time.time())
    bad = {
        "mac-bit": helpers.flip_byte(good, -1),
        "id-bit": helpers.flip_byte(good, helpers.HEADER_LEN),
        "header-bit": helpers.flip_byte(good, 5),
        "wrong-key": craft_id_cookie(other_secret, sid),
        "kind-signed": helpers.sign_envelope(srv.secrets[0], "session", sid,
                                             kind=helpers.KIND_SIGNED),
        "other-cookie-name": craft_id_cookie(srv.secrets[0], sid, name="sid"),
        "short-id": craft_id_cookie(srv.secrets[0], sid[:8]),
        "long-id": craft_id_cookie(srv.secrets[0], sid + b"\x00"),
        "truncated": good[:-6],
        "garbage": "not-a-cookie",
        "empty": "",
        "expired": craft_id_cookie(srv.secrets[0], sid, created=now - 7200),
        "future": craft_id_cookie(srv.secrets[0], sid, created=now + 86400),
    }
    admin.config_resetstat()
    for what, value in bad.items():
        r = whoami(srv, value)
        assert r.status_code == 200, what
        assert re.fullmatch(r"status=(invalid|expired) user= name= id=\n", r.text), (what, r.text)
    assert cmd_calls(admin, "hgetall") == 0, "a forged/expired cookie caused a Redis lookup"
    assert sum(int(v["calls"]) for k, v in admin.info("commandstats").items()
               if k not in ("cmdstat_info", "cmdstat_config|resetstat")) == 0
    # The genuine cookie: exactly one GET.
    assert whoami(srv, good).text == f"status=valid user=alice name= id={hexid}\n"
    assert cmd_calls(admin, "hgetall") == 1
    assert get_json(admin, key) == {"user": "alice"}, "a rejected cookie touched the record"


def test_unknown_id_is_invalid_and_logged(nginx, redis_factory):
    rd = redis_factory()
    srv = start(nginx, rd)
    ghost = craft_id_cookie(srv.secrets[0], os.urandom(16))
    mark = srv.log_mark()
    r = whoami(srv, ghost)
    assert r.text == "status=invalid user= name= id=\n"
    # Read-only: the stale cookie is left alone (a request racing a login must not delete the
    # new cookie in the browser).
    assert cookie_named(r, "session") is None
    assert poll(lambda: srv.grep_log(NO_SUCH_SESSION, mark, "info"), 2.0)


def test_expired_record_is_invalid(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    value = login(srv)
    key = "session:" + id_of(value)
    assert whoami(srv, value).text.startswith("status=valid user=alice")
    assert admin.expire(key, 1)
    assert gone(admin, key, 5.0), "redis did not expire the key"
    r = whoami(srv, value)
    assert r.text == "status=invalid user= name= id=\n"
    assert cookie_named(r, "session") is None
    assert srv.get("/private", headers=cookie_header(value)).status_code == 401


def test_renew_refreshes_ttl_without_rewriting(nginx, redis_factory):
    """A session last refreshed longer ago than session_renew gets EXPIRE (remaining lifetime)
    and a re-issued cookie with the same id; a fresh one causes no write at all."""
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd, "session_lifetime 1h; session_renew 1m;")
    now = int(time.time())
    stale, hexid, key = seed(admin, {"user": "erin"}, srv.secrets[0], ttl=100,
                             created=now - 600, refreshed=now - 120)
    admin.config_resetstat()
    r = whoami(srv, stale)
    assert r.text == f"status=valid user=erin name= id={hexid}\n"
    sc = cookie_named(r, "session")
    assert sc is not None, "stale session not re-issued"
    fresh_value = helpers.cookie_value(sc)
    assert id_of(fresh_value) == hexid
    env = helpers.decode_envelope(fresh_value)
    assert env.created == now - 600 and env.refreshed >= now
    assert poll(lambda: admin.ttl(key) > 100, 2.0)
    assert 3000 - 10 <= admin.ttl(key) <= 3000
    assert get_json(admin, key) == {"user": "erin"}
    assert cmd_calls(admin, "set") == 0

    fresh, hexid2, key2 = seed(admin, {"user": "fred"}, srv.secrets[0], ttl=100)
    admin.config_resetstat()
    r = whoami(srv, fresh)
    assert r.text == f"status=valid user=fred name= id={hexid2}\n"
    assert cookie_named(r, "session") is None
    assert cmd_calls(admin, "expire") == 0 and cmd_calls(admin, "set") == 0
    assert admin.ttl(key2) <= 100


# ---- writes are visible to the next request ----------------------------------------------------


def test_write_visible_to_next_request_after_return_302(nginx, redis_factory):
    rd = redis_factory()
    srv = start(nginx, rd)
    value = None
    for i in range(30):
        # Alternate a brand-new session and an update of the existing one.
        hdrs = cookie_header(value) if (value and i % 2) else {}
        r = srv.get(f"/login302?u=user{i}", headers=hdrs)
        assert r.status_code == 302 and r.headers["Location"].endswith("/whoami")
        value = helpers.cookie_value(cookie_named(r, "session"))
        # Next request at once, on a new connection.
        nxt = srv.raw("/whoami", headers=[("Cookie", f"session={value}")])
        assert nxt.text.startswith(f"status=valid user=user{i} "), (i, nxt.text)


def test_write_visible_with_keepalive_session(nginx, redis_factory):
    rd = redis_factory()
    srv = start(nginx, rd)
    s = srv.session()
    for i in range(20):
        assert srv.get(f"/name?v=n{i}", session=s).status_code == 200
        if i == 0:
            assert srv.get("/login?u=gina", session=s).status_code == 200
        assert srv.get("/whoami", session=s).text.startswith(f"status=valid user=gina name=n{i} ")


# ---- destroy, logout, regenerate, unset, clear --------------------------------------------------


def test_destroy_revokes_copied_cookie(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    value = login(srv)
    key = "session:" + id_of(value)
    copy = value   # e.g. stolen, or another browser tab

    r = srv.get("/logout", headers=cookie_header(value))
    assert r.status_code == 200
    assert cookie_named(r, "session") == session_deletion()
    mark = srv.log_mark()
    r = whoami(srv, copy)
    assert r.text == "status=invalid user= name= id=\n", "copied cookie still works after destroy"
    assert srv.get("/private", headers=cookie_header(copy)).status_code == 401
    assert gone(admin, key)
    assert admin.keys("*") == []
    assert poll(lambda: srv.grep_log(NO_SUCH_SESSION, mark, "info"), 2.0)


def test_session_logout_deletes_key(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    value = login(srv)
    key = "session:" + id_of(value)
    r = srv.get("/signout", headers=cookie_header(value))
    assert r.status_code == 303
    assert r.headers["Location"].endswith("/bye")
    assert cookie_named(r, "session") == session_deletion()
    assert whoami(srv, value).text == "status=invalid user= name= id=\n"
    assert gone(admin, key)


def test_regenerate_moves_data_and_retires_old_key(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd, "session_lifetime 1h;")
    old = login(srv)
    assert srv.get("/name?v=waws", headers=cookie_header(old)).status_code == 200
    old_id = id_of(old)

    r = srv.get("/regen", headers=cookie_header(old))
    assert r.status_code == 200
    new = helpers.cookie_value(cookie_named(r, "session"))
    new_id = id_of(new)
    assert new_id != old_id
    assert whoami(srv, new).text == f"status=valid user=alice name=waws id={new_id}\n"
    assert whoami(srv, old).text == "status=invalid user= name= id=\n"
    assert get_json(admin, "session:" + new_id) == {"user": "alice", "name": "waws"}
    # the old id holds no session any more, only the marker that refuses late changes through it
    assert poll(lambda: admin.get("session:" + old_id) == b"#session-regenerated", 2.0)
    assert 3600 - 10 <= admin.ttl("session:" + new_id) <= 3600
    assert sorted(k.decode() for k in admin.keys("*")) == sorted(["session:" + new_id,
                                                                  "session:" + old_id])
    assert 0 < admin.ttl("session:" + old_id) <= 3600


def test_unset_last_key_deletes_session(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    value = login(srv)
    key = "session:" + id_of(value)
    r = srv.get("/popuser", headers=cookie_header(value))
    assert r.status_code == 200
    assert cookie_named(r, "session") == session_deletion()
    assert gone(admin, key)
    assert whoami(srv, value).text == "status=invalid user= name= id=\n"


def test_clear_deletes_session(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    value = login(srv)
    assert srv.get("/name?v=x", headers=cookie_header(value)).status_code == 200
    key = "session:" + id_of(value)
    r = srv.get("/clear", headers=cookie_header(value))
    assert cookie_named(r, "session") == session_deletion()
    assert gone(admin, key)
    assert whoami(srv, value).text == "status=invalid user= name= id=\n"


def test_actions_without_session_do_not_touch_redis(nginx, redis_factory):
    """Logout/unset/clear with no session: no record is created, no Set-Cookie."""
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    admin.config_resetstat()
    for path in ("/logout", "/popuser", "/clear", "/whoami", "/private"):
        r = srv.get(path)
        assert cookie_named(r, "session") is None, path
    assert admin.keys("*") == []
    assert cmd_calls(admin, "set") == 0 and cmd_calls(admin, "hgetall") == 0


# ---- connection parameters ---------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["flask", "app:sess:", "s"])
def test_prefix(nginx, redis_factory, prefix):
    """session_redis_prefix: Flask-Session's SESSION_KEY_PREFIX (key = prefix + hex id)."""
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd, f'session_redis_prefix "{prefix}";')
    value = login(srv)
    hexid = id_of(value)
    assert poll(lambda: admin.exists(prefix + hexid), 2.0)
    assert [k.decode() for k in admin.keys("*")] == [prefix + hexid]
    assert get_json(admin, prefix + hexid) == {"user": "alice"}
    # Lookups use the prefix too.
    seeded, hexid2, _ = seed(admin, {"user": "flaskuser"}, srv.secrets[0], prefix=prefix)
    assert whoami(srv, seeded).text.startswith("status=valid user=flaskuser ")
    # A record under the default prefix is not found.
    other, _, _ = seed(admin, {"user": "x"}, srv.secrets[0], prefix="session:")
    assert whoami(srv, other).text.startswith("status=invalid ")


def test_db_select(nginx, redis_factory):
    rd = redis_factory()
    db0, db5 = rd.admin(db=0), rd.admin(db=5)
    srv = start(nginx, rd, directive="127.0.0.1:{rport} db=5")
    value = login(srv)
    key = "session:" + id_of(value)
    assert poll(lambda: db5.exists(key), 2.0)
    assert get_json(db5, key) == {"user": "alice"}
    assert db0.keys("*") == []
    seeded, _, _ = seed(db5, {"user": "in5"}, srv.secrets[0])
    assert whoami(srv, seeded).text.startswith("status=valid user=in5 ")
    wrongdb, _, _ = seed(db0, {"user": "in0"}, srv.secrets[0])
    assert whoami(srv, wrongdb).text.startswith("status=invalid ")
    # nginx's connection really is on db 5.
    dbs = {c["db"] for c in other_clients(db0)}
    assert dbs == {"5"}, dbs


def test_password_file_auth(nginx, redis_factory, tmp_path):
    rd = redis_factory(password="pw-" + helpers.random_secret(24))
    admin = rd.admin()
    pwfile = tmp_path / "redis.pw"
    pwfile.write_text(rd.password + "\n")
    admin.config_resetstat()  # workers connect (and AUTH) as soon as they start
    srv = start(nginx, rd, directive=f"127.0.0.1:{{rport}} password_file={pwfile}")
    value = login(srv)
    assert whoami(srv, value).text.startswith("status=valid user=alice ")
    assert get_json(admin, "session:" + id_of(value)) == {"user": "alice"}
    assert cmd_calls(admin, "auth") >= 1
    assert all(c.get("user") == "default" for c in other_clients(admin))


def test_acl_username(nginx, redis_factory, tmp_path):
    """username= sends AUTH user pass: an ACL user limited to session:* keys works, with the
    default user disabled."""
    npw, apw = helpers.random_secret(24), helpers.random_secret(24)
    rd = redis_factory(extra=["--user", "default", "off",
                              "--user", "admin", "on", ">" + apw, "~*", "&*", "+@all",
                              "--user", "ngx", "on", ">" + npw, "~session:*", "+@all"],
                         admin_user=("admin", apw))
    admin = rd.admin()
    pwfile = tmp_path / "ngx.pw"
    pwfile.write_text(npw + "\n")
    srv = start(nginx, rd, directive=f"127.0.0.1:{{rport}} username=ngx password_file={pwfile}")
    value = login(srv)
    assert whoami(srv, value).text.startswith("status=valid user=alice ")
    assert get_json(admin, "session:" + id_of(value)) == {"user": "alice"}
    users = {c.get("user") for c in other_clients(admin)}
    assert users == {"ngx"}, users


# The least-privilege ACL user that README's "Redis permissions" lists for the standalone form.
LEAST_PRIVILEGE = ["~session:*", "resetchannels", "-@all", "+hgetall", "+getrange", "+eval",
                   "+del", "+select", "+exists", "+type", "+get", "+set", "+hset", "+hdel",
                   "+expire", "+pexpire", "+pttl", "+hlen", "+hget"]


def acl_server(redis_factory, ngx_rules):
    npw, apw = helpers.random_secret(24), helpers.random_secret(24)
    rd = redis_factory(extra=["--user", "default", "off",
                              "--user", "admin", "on", ">" + apw, "~*", "&*", "+@all",
                              "--user", "ngx", "on", ">" + npw] + ngx_rules,
                       admin_user=("admin", apw))
    return rd, npw


def test_least_privilege_acl_user_is_enough(nginx, redis_factory, tmp_path):
    """Every path of the store (create, update, unset, renew, regenerate, v1 conversion, logout)
    works for a user allowed only the commands README lists, on session:* keys only."""
    rd, npw = acl_server(redis_factory, LEAST_PRIVILEGE)
    admin = rd.admin()
    pwfile = tmp_path / "ngx.pw"
    pwfile.write_text(npw + "\n")
    srv = start(nginx, rd, extra="session_renew 1s;",
                directive=f"127.0.0.1:{{rport}} username=ngx password_file={pwfile} db=0")
    mark = srv.log_mark()
    value = login(srv)
    assert srv.get("/name?v=w", headers=cookie_header(value)).status_code == 200
    assert srv.get("/pop", headers=cookie_header(value)).status_code == 200
    key = "session:" + id_of(value)
    assert get_json(admin, key) == {"user": "alice"}
    admin.expire(key, 100)
    time.sleep(1.2)
    r = whoami(srv, value)                       # renewal: the touch script
    assert r.text.startswith("status=valid user=alice "), r.text
    assert poll(lambda: admin.ttl(key) > 1000, 2.0), admin.ttl(key)
    r = srv.get("/regen", headers=cookie_header(value))
    assert r.status_code == 200
    new = session_cookie_value(r)
    assert poll(lambda: admin.get(key) == b"#session-regenerated", 2.0)
    assert whoami(srv, new).text.startswith("status=valid user=alice ")
    sid = os.urandom(16)
    admin.set("session:" + sid.hex(), json.dumps({"user": "bob"}), ex=900)
    r = whoami(srv, craft_id_cookie(srv.secrets[0], sid))
    assert r.text.startswith("status=valid user=bob "), r.text
    assert poll(lambda: admin.type("session:" + sid.hex()) == b"hash", 2.0)
    assert srv.get("/logout", headers=cookie_header(new)).status_code == 200
    assert gone(admin, "session:" + id_of(new))
    assert not [l for l in srv.log_since(mark) if "NOPERM" in l or "[error]" in l]


@pytest.mark.parametrize("missing", ["+eval", "+hgetall", "+expire"])
def test_an_acl_without_a_listed_command_is_refused_visibly(nginx, redis_factory, tmp_path,
                                                            missing):
    """Control for the test above: each command is really needed, and its absence is a clear
    NOPERM error in the log and a 503, not a silent logout."""
    rd, npw = acl_server(redis_factory, [r for r in LEAST_PRIVILEGE if r != missing])
    admin = rd.admin()
    pwfile = tmp_path / "ngx.pw"
    pwfile.write_text(npw + "\n")
    srv = start(nginx, rd, directive=f"127.0.0.1:{{rport}} username=ngx password_file={pwfile}")
    mark = srv.log_mark()
    sid = os.urandom(16)
    admin.hset("session:" + sid.hex(), mapping={"user": '"bob"'})
    admin.expire("session:" + sid.hex(), 900)
    value = craft_id_cookie(srv.secrets[0], sid)
    if missing == "+hgetall":
        r = whoami(srv, value)
        assert r.status_code == 503 or not r.text.startswith("status=valid"), r.text
    elif missing == "+eval":
        r = srv.get("/login?u=alice")
        assert r.status_code == 503 and cookie_named(r, "session") is None
    else:  # EXPIRE inside the update script
        r = srv.get("/name?v=x", headers=cookie_header(value))
        # (a script stops at the refused command: what it did before stays, as Redis does)
        assert r.status_code == 503
    # Redis's own refusal, whole enough to name what is missing (NOPERM for a command,
    # "can't run this command" from inside a script)
    assert poll(lambda: any("[error]" in l and ("NOPERM" in l or "can't run this command" in l)
                            for l in srv.log_since(mark)), 2.0), srv.log_since(mark)


def test_unix_socket(nginx, redis_factory):
    rd = redis_factory(port=0, unixsocket=True)
    admin = rd.admin()
    srv = start(nginx, rd, directive="unix:{rsock}")
    value = login(srv)
    assert whoami(srv, value).text.startswith("status=valid user=alice ")
    assert get_json(admin, "session:" + id_of(value)) == {"user": "alice"}
    assert len(other_clients(admin)) == 1


def test_two_servers_two_redis(nginx, redis_factory):
    """Different servers may use different Redis instances (and prefixes)."""
    ra, rb = redis_factory(), redis_factory()
    snippet = ("server {\n listen 127.0.0.1:{port};\n session_secret_file {secret_file};\n"
               " session_store redis; session_redis 127.0.0.1:{ra};\n" + REDIS_LOCATIONS + "}\n"
               "server {\n listen 127.0.0.1:{port2};\n session_secret_file {secret_file};\n"
               " session_store redis; session_redis 127.0.0.1:{rb}; session_redis_prefix b:;\n"
               + REDIS_LOCATIONS + "}\n")
    srv = nginx(snippet, ra=ra.port, rb=rb.port)
    va = login(srv)
    r = srv.get("/login?u=bee", port=srv.port2)
    vb = session_cookie_value(r)
    assert poll(lambda: ra.admin().exists("session:" + id_of(va)), 2.0)
    assert poll(lambda: rb.admin().exists("b:" + id_of(vb)), 2.0)
    assert ra.admin().keys("b:*") == [] and rb.admin().keys("session:*") == []
    assert srv.get("/whoami", headers=cookie_header(vb), port=srv.port2).text.startswith(
        "status=valid user=bee ")


def test_servers_sharing_a_redis_share_the_connection(nginx, redis_factory):
    """Two servers (and a location override of the prefix) with the same session_redis
    parameters use one connection per worker, not one per server block."""
    rd = redis_factory()
    admin = rd.admin()
    snippet = ("server {\n listen 127.0.0.1:{port};\n session_secret_file {secret_file};\n"
               " session_store redis; session_redis 127.0.0.1:{rport};\n" + REDIS_LOCATIONS +
               " location = /other { session_redis_prefix other:; session_set user $arg_u;"
               " return 200 ok; }\n}\n"
               "server {\n listen 127.0.0.1:{port2};\n session_secret_file {secret_file};\n"
               " session_store redis; session_redis 127.0.0.1:{rport};\n" + REDIS_LOCATIONS +
               "}\n")
    srv = nginx(snippet, rport=rd.port)
    va = login(srv)
    vb = session_cookie_value(srv.get("/login?u=bee", port=srv.port2))
    vc = session_cookie_value(srv.get("/other?u=cee"))
    assert srv.get("/whoami", headers=cookie_header(vb), port=srv.port2).text.startswith(
        "status=valid user=bee ")
    assert whoami(srv, va).text.startswith("status=valid user=alice ")
    assert poll(lambda: admin.exists("other:" + id_of(vc)), 2.0)
    assert len(other_clients(admin)) == 1, other_clients(admin)


# ---- one persistent connection -----------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_one_persistent_connection_per_worker(nginx, redis_factory, workers):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd, workers=workers)
    value, _, _ = seed(admin, {"user": "alice"}, srv.secrets[0])
    s = srv.session()
    for i in range(60):
        assert srv.get("/private", headers=cookie_header(value)).status_code == 200
        assert srv.get("/private", headers=cookie_header(value), session=s).status_code == 200
        if i % 10 == 0:
            login(srv, f"u{i}")
    first = {c["id"] for c in other_clients(admin)}
    assert 1 <= len(first) <= workers, other_clients(admin)
    for i in range(60):
        assert srv.get("/private", headers=cookie_header(value)).status_code == 200
    second = {c["id"] for c in other_clients(admin)}
    assert len(second) <= workers
    assert first <= second, "connections were replaced: not persistent"
    if workers == 1:
        assert first == second
        info = admin.info("clients")
        assert info["connected_clients"] == 2   # nginx's worker + us


# ---- nginx -t ----------------------------------------------------------------------------------


T_CASES = [
    ("no-session_redis", "session_store redis;",
     r'"session_store redis" requires "session_redis"'),
    ("unknown-param", "session_store redis; session_redis 127.0.0.1:6379 foo=bar;",
     r'"session_redis": unknown parameter "foo=bar"'),
    ("bad-db", "session_store redis; session_redis 127.0.0.1:6379 db=x;",
     r'"session_redis": invalid parameter "db=x"'),
    ("negative-db", "session_store redis; session_redis 127.0.0.1:6379 db=-1;",
     r'"session_redis": invalid parameter "db=-1"'),
    ("empty-username", "session_store redis; session_redis 127.0.0.1:6379 username=;",
     r'"session_redis": invalid parameter "username="'),
    ("missing-password-file",
     "session_store redis; session_redis 127.0.0.1:6379 password_file={prefix}/nope.pw;",
     r'session_redis.*nope\.pw'),
    ("empty-password-file",
     "session_store redis; session_redis 127.0.0.1:6379 password_file={prefix}/empty.pw;",
     r'session_redis.*empty\.pw.*empty'),
    ("username-without-password",
     "session_store redis; session_redis 127.0.0.1:6379 username=bob;",
     r'"session_redis": username= requires password_file='),
    ("bad-port", "session_store redis; session_redis 127.0.0.1:99999;",
     r'"session_redis".*invalid port'),
    ("duplicate", "session_store redis; session_redis 127.0.0.1:6379; "
                  "session_redis 127.0.0.1:6380;", r'"session_redis" directive is duplicate'),
    ("no-args", "session_store redis; session_redis;",
     r'invalid number of arguments in "session_redis"'),
    ("bad-timeout", "session_store redis; session_redis 127.0.0.1:6379; "
                    "session_redis_timeout soon;", r'session_redis_timeout'),
    ("bad-fail", "session_store redis; session_redis 127.0.0.1:6379; session_store_fail maybe;",
     r'invalid value "maybe"'),
]


@pytest.mark.parametrize("conf, message", [c[1:] for c in T_CASES], ids=[c[0] for c in T_CASES])
def test_nginx_t_rejects(nginx_t, conf, message):
    rc, out = nginx_t(helpers.server_conf('location / { return 200; }', server_extra=conf),
                      files={"empty.pw": "\n"})
    assert rc != 0, out
    assert "[emerg]" in out
    assert re.search(message, out), out


def test_nginx_t_accepts_without_running_redis(nginx_t, tmp_path):
    """The address is resolved at config time, but Redis is only contacted by workers."""
    pw = tmp_path / "pw"
    pw.write_text("secret-password\n")
    conf = ("session_store redis; session_redis localhost:1 db=3 "
            f"password_file={pw} username=u; session_redis_prefix flask; "
            "session_redis_timeout 150ms; session_store_fail open;")
    rc, out = nginx_t(helpers.server_conf(REDIS_LOCATIONS, server_extra=conf))
    assert rc == 0, out
    rc, out = nginx_t(helpers.server_conf(
        REDIS_LOCATIONS, server_extra="session_store redis; session_redis unix:/nonexistent.sock;"))
    assert rc == 0, out


# ---- the Redis demo ----------------------------------------------------------------------------


def test_demo_redis_conf(nginx, redis_factory):
    """examples/demo-redis.conf as scripts/demo.sh runs it (ports moved to free ones): Flask-
    Session's tutorial, log in through the form, keys under the "flask" prefix, logout."""
    conf_in = (REPO / "examples" / "demo-redis.conf").read_text()
    srv = nginx("", start=False, ports=2)
    prefix = srv.path
    (prefix / "tmp").mkdir(parents=True)
    rd = redis_factory(port=0, unixsocket=True)
    assert "session_redis unix:@PREFIX@/redis.sock;" in conf_in
    assert "session_redis_prefix flask;" in conf_in
    p1, p2 = srv.port, srv.port2
    conf = (conf_in.replace("@PREFIX@/redis.sock", rd.socket_path)
            .replace("@PREFIX@", str(prefix)).replace("@EXAMPLES@", str(REPO / "examples"))
            .replace("127.0.0.1:8080", f"127.0.0.1:{p1}")
            .replace("127.0.0.1:8081", f"127.0.0.1:{p2}"))
    if os.geteuid() == 0:
        conf = "user root;\n" + conf
    srv.write_conf(conf)
    helpers.write_secret_file(prefix / "secret")
    import base64
    import hashlib
    sha = base64.b64encode(hashlib.sha1(b"secret").digest()).decode()
    (prefix / "users").write_text(f"alice:{{SHA}}{sha}\n")

    srv.start()    # the one nginx process manager: waits for p1 and p2, stops by pid
    try:
        assert helpers.wait_port(p1, 5.0, lambda: srv.proc.poll() is None), \
            (prefix / "error.log").read_text() if (prefix / "error.log").exists() else ""
        base = f"http://127.0.0.1:{p1}"
        s = requests.Session()
        page = s.get(base + "/login", timeout=10)
        assert page.status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = s.post(base + "/login", data={"username": "alice", "password": "secret",
                                          "csrf_token": token},
                   allow_redirects=False, timeout=10)
        assert r.status_code == 303, (r.status_code, r.text)
        assert "session" in s.cookies
        assert "hello alice" in s.get(base + "/", timeout=10).text
        s.get(base + "/session", timeout=10)
        assert "session name: waws" in s.get(base + "/getValue", timeout=10).text
        assert s.get(base + "/app/x", timeout=10, allow_redirects=False).text.startswith(
            "app: hello alice")

        admin = rd.admin()
        keys = [k.decode() for k in admin.keys("flask*")]
        assert len(keys) == 1 and re.fullmatch(r"flask[0-9a-f]{32}", keys[0]), keys
        assert keys[0] == "flask" + id_of(s.cookies["session"])
        assert get_json(admin, keys[0]) == {"user": "alice", "name": "waws"}
        assert 7 * 86400 - 10 <= admin.ttl(keys[0]) <= 7 * 86400

        r = s.get(base + "/logout", allow_redirects=False, timeout=10)
        assert r.status_code == 303
        assert gone(admin, keys[0])
        assert "hello alice" not in s.get(base + "/", timeout=10).text
    finally:
        srv.stop()
    log = (prefix / "error.log").read_text(errors="replace")
    bad = [l for l in log.splitlines() if any(x in l for x in ("[alert]", "[crit]", "[emerg]"))]
    assert not bad, bad
