"""Sessions are trusted only where they were made (issue 9, part 4): the Redis store's writes.

- Logout always expires the cookie, also when the store is down (and logs that the record could
  not be deleted).
- Logout is final: a request that loaded the session before the logout cannot write it back
  (updates are SET ... XX / EXPIRE, never a re-creating SET).
- Records without a logged-in user get a short TTL.
- No success for a write that did not happen: a write Redis refuses becomes 503 with no
  Set-Cookie; session_regenerate keeps the old id until the new one is confirmed; a refused
  renewal sends no cookie.
"""

import threading
import time

import pytest

from conftest import LoopbackHTTPServer
from helpers import cookie_named, poll, session_deletion
from redis_support import (REDIS_LOCATIONS, cookie_header, get_json, id_of, redis_snippet,
                           session_cookie_value)

LOCS = REDIS_LOCATIONS + r"""
    location = /slow { session_set note $arg_n; proxy_pass http://127.0.0.1:{uport}/slow; }
    location = /destroy { session_destroy; return 200 "destroyed\n"; }
"""


class SlowUpstream(LoopbackHTTPServer):
    """Answers after a delay (a slow upload or a long-polling upstream)."""

    def __init__(self, delay: float):
        self.delay = delay
        super().__init__()

    def answer(self, handler, body):
        time.sleep(self.delay)
        return 200, [("Content-Type", "text/plain")], b"slow done\n"


def start(nginx, rd, extra="", upstream_port=1, **kw):
    return nginx(redis_snippet("127.0.0.1:{rport}", LOCS, extra), rport=rd.port,
                 uport=upstream_port, **kw)


def login(srv, user="alice"):
    r = srv.get(f"/login?u={user}")
    assert r.status_code == 200, r.text
    return session_cookie_value(r)


@pytest.mark.parametrize("policy", ["closed", "open"])
def test_logout_during_an_outage_still_expires_the_cookie(nginx, redis_factory, policy):
    rd = redis_factory()
    srv = start(nginx, rd, f"session_store_fail {policy};")
    value = login(srv)
    rd.stop()
    mark = srv.log_mark()
    r = srv.get("/signout", headers=cookie_header(value))
    assert r.status_code == 303, (r.status_code, r.text)
    assert cookie_named(r, "session") == session_deletion()
    assert srv.grep_log("logout: the session record could not be deleted", mark, "error")
    # other requests follow the policy as before
    status = srv.get("/whoami", headers=cookie_header(value)).status_code
    assert status == (503 if policy == "closed" else 200)


def test_logout_is_final_for_requests_already_running(nginx, redis_factory):
    """A slow request loaded the session before the logout; when it finishes it must not
    revive the record with a fresh TTL."""
    rd = redis_factory()
    admin = rd.admin()
    up = SlowUpstream(1.0)
    try:
        srv = start(nginx, rd, upstream_port=up.port)
        value = login(srv)
        key = "session:" + id_of(value)
        result = {}

        def slow():
            result["r"] = srv.get("/slow?n=late", headers=cookie_header(value), timeout=10)

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)   # the slow request has loaded the session and waits for its upstream
        r = srv.get("/signout", headers=cookie_header(value))
        assert r.status_code == 303
        assert not admin.exists(key)
        t.join(10)
        r = result["r"]
        assert r.status_code == 200 and r.text == "slow done\n"
        assert not admin.exists(key), "the record came back after the logout"
        assert cookie_named(r, "session") is None, "a cookie for an ended session"
        assert srv.get("/whoami", headers=cookie_header(value)).text.startswith("status=invalid")
    finally:
        up.close()


@pytest.mark.parametrize("extra,limit", [("", 600), ("session_idle_timeout 5m;", 300),
                                         ("session_renew 10s;", 600),
                                         ("session_renew 5m;", 3000)])
def test_anonymous_records_get_a_short_ttl(nginx, redis_factory, extra, limit):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd, "session_lifetime 30d; " + extra)
    r = srv.get("/name?v=anonymous")
    key = "session:" + id_of(session_cookie_value(r))
    assert limit - 10 <= admin.ttl(key) <= limit, admin.ttl(key)
    # a logged-in session gets the lifetime (or the idle timeout)
    value = login(srv)
    ttl = admin.ttl("session:" + id_of(value))
    assert ttl > 300 * 0.9 if "idle" in extra else ttl > 29 * 86400, ttl


# ---- refused writes -----------------------------------------------------------------------------

def refuse_writes(admin):
    """Redis refuses every write from now on (NOREPLICAS: as READONLY after a failover or OOM
    under maxmemory noeviction would)."""
    admin.config_set("min-replicas-to-write", 1)


def allow_writes(admin):
    admin.config_set("min-replicas-to-write", 0)


def test_refused_update_is_a_503_without_cookie(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    value = login(srv)
    key = "session:" + id_of(value)
    refuse_writes(admin)
    mark = srv.log_mark()
    r = srv.get("/name?v=never", headers=cookie_header(value))
    assert r.status_code == 503 and r.headers.get("Retry-After") == "1", r.status_code
    assert cookie_named(r, "session") is None
    assert srv.grep_log("updating the session record refused", mark, "error")
    allow_writes(admin)
    assert get_json(admin, key) == {"user": "alice"}
    r = srv.get("/name?v=now", headers=cookie_header(value))
    assert r.status_code == 200 and get_json(admin, key) == {"user": "alice", "name": "now"}


def test_refused_create_is_a_503(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    refuse_writes(admin)
    r = srv.get("/login?u=alice")
    assert r.status_code == 503 and cookie_named(r, "session") is None
    assert admin.dbsize() == 0


def test_regenerate_keeps_the_old_id_until_the_new_one_is_stored(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    value = login(srv)
    key = "session:" + id_of(value)
    refuse_writes(admin)
    r = srv.get("/regen", headers=cookie_header(value))
    assert r.status_code == 503 and cookie_named(r, "session") is None
    allow_writes(admin)
    assert admin.exists(key), "the old record was deleted behind a refused SET"
    assert "user=alice" in srv.get("/whoami", headers=cookie_header(value)).text
    # and when Redis takes it: new id, the old one holds no session any more
    r = srv.get("/regen", headers=cookie_header(value))
    new = session_cookie_value(r)
    assert id_of(new) != id_of(value) and admin.exists("session:" + id_of(new))
    assert poll(lambda: admin.get(key) == b"#session-regenerated", 2.0)
    assert "user=alice" not in srv.get("/whoami", headers=cookie_header(value)).text


def test_refused_destroy_is_a_503_and_the_session_stays(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd)
    value = login(srv)
    refuse_writes(admin)
    # DEL is a write too
    r = srv.get("/destroy", headers=cookie_header(value))
    assert r.status_code == 503 and cookie_named(r, "session") is None
    allow_writes(admin)
    assert "user=alice" in srv.get("/whoami", headers=cookie_header(value)).text


def test_refused_renewal_sends_no_cookie(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv = start(nginx, rd, "session_renew 1s;")
    value = login(srv)
    time.sleep(1.1)
    refuse_writes(admin)
    r = srv.get("/whoami", headers=cookie_header(value))
    assert r.status_code == 200 and "user=alice" in r.text
    assert cookie_named(r, "session") is None
    allow_writes(admin)
    r = srv.get("/whoami", headers=cookie_header(value))
    assert cookie_named(r, "session") is not None


def test_form_login_with_refused_writes_is_a_503(nginx, redis_factory):
    import login_support as L
    rd = redis_factory()
    admin = rd.admin()
    srv = nginx(L.user_file_site(server_extra="session_store redis; "
                                              "session_redis 127.0.0.1:{rport};"),
                files=L.files_for({"alice": L.hash_password("apr1", "pw")}), rport=rd.port)
    refuse_writes(admin)
    s = srv.session()
    r = L.login(srv, s, "alice", "pw")
    assert r.status_code == 503 and cookie_named(r, "session") is None
    allow_writes(admin)
    assert L.login(srv, s, "alice", "pw").status_code == 303
