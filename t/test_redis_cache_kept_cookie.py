"""session_redis_cache: the id cookie an entry keeps as verified (README "The session cache").

A worker's table of verified cookies holds 512 values; with more sessions than that in turn, each
request used to verify its id cookie's HMAC again. An entry of the zone now also keeps the id
cookie of its session that a worker verified (when the read that filled it was made, or when a
request verified another of the session's cookies and hit it), and a cookie equal to it in full -
ring, cookie name and value - is valid without its HMAC, its expiry checked as always.

What is tested here: that this path serves sessions the worker's table cannot hold (nginx's debug
log names it; Redis is not asked), and that it accepts nothing the HMAC would refuse: the kept
cookie with other times, another MAC, under another cookie name, another secret, after its idle
timeout, after a logout or a deletion behind nginx's back.
"""
import os
import subprocess
import time

import pytest

import helpers
from conftest import NGINX_BIN
from redis_support import cmd_calls, cookie_header, id_of, redis_snippet, seed

KEPT = "session: cookie is the one the cache entry keeps as verified"
SESSIONS = 600  # more than the worker's table of verified cookies (512 slots)

LOCATIONS = r"""
    location = /whoami {
        return 200 "status=$session_status user=$session_user id=$session_id\n";
    }
    location = /logout { session_destroy; return 200 "bye\n"; }
    location = /other/whoami {
        # the same zone, prefix and secrets, another cookie name
        session_cookie other;
        return 200 "status=$session_status user=$session_user\n";
    }
    location = /idle/whoami {
        # the same zone, secrets and cookie name, an idle timeout
        session_idle_timeout 3s;
        return 200 "status=$session_status user=$session_user\n";
    }
    location = /third/whoami {
        # the same zone, prefix and cookie name, other secrets
        session_secret_file {prefix}/third.txt;
        return 200 "status=$session_status user=$session_user\n";
    }
"""
EXTRA = ("session_redis_cache sessions:4m max_age=30s; "
         "add_header X-Cache-Status \"[$session_cache_status]\" always;")


def _status(r):
    return r.headers.get("X-Cache-Status", "")[1:-1]


@pytest.fixture
def site(nginx, redis_factory):
    version = subprocess.run([str(NGINX_BIN), "-V"], capture_output=True, text=True).stderr
    if "--with-debug" not in version:
        pytest.skip("nginx built without --with-debug: the debug log cannot show the path")
    rd = redis_factory()
    third = helpers.random_secret()
    srv = nginx(redis_snippet("127.0.0.1:{rport}", LOCATIONS, EXTRA), rport=rd.port,
                log_level="debug", files={"third.txt": third + "\n"})
    os.chmod(srv.path / "third.txt", 0o600)
    srv.third_secret = third
    srv.admin = rd.admin()

    def active():
        value, _, _ = seed(srv.admin, {"user": "probe"}, srv.secrets[0])
        statuses = {_status(srv.get("/whoami", headers=cookie_header(value))) for _ in range(3)}
        return "hit" in statuses
    helpers.wait_for(active, 8.0, "the cache active")
    return srv


def _sessions(srv, n):
    """n sessions seeded into Redis: (cookie value, user, key) each."""
    out = []
    for i in range(n):
        value, _, key = seed(srv.admin, {"user": f"u{i}"}, srv.secrets[0])
        out.append((value, f"u{i}", key))
    return out


def _kept_lines(srv, mark):
    return [line for line in srv.log_since(mark) if KEPT in line]


def _whoami(srv, value, path="/whoami", name="session"):
    return srv.get(path, headers=cookie_header(value, name))


def test_more_sessions_than_the_worker_table_are_served_by_the_kept_cookie(site):
    sessions = _sessions(site, SESSIONS)
    # First pass: every one a miss, read from Redis; the read's entry keeps the cookie.
    for value, user, _ in sessions:
        r = _whoami(site, value)
        assert f"status=valid user={user} " in r.text, r.text
    reads = cmd_calls(site.admin, "hgetall")
    mark = site.log_mark()
    # Second pass: all hits; the worker's table (512 slots) lost at least 88 of the 600, and those
    # were checked against the cookie their entry keeps, not by their HMAC.
    for value, user, _ in sessions:
        r = _whoami(site, value)
        assert f"status=valid user={user} " in r.text and _status(r) == "hit", r.text
    assert cmd_calls(site.admin, "hgetall") == reads
    assert len(_kept_lines(site, mark)) >= SESSIONS - 512


def _kept_session(site):
    """One session whose entry keeps its cookie and which the worker's table does not hold (the
    debug log shows the kept cookie checked): (value, user, key)."""
    sessions = _sessions(site, SESSIONS)
    for value, _, _ in sessions:
        _whoami(site, value)
    for value, user, key in sessions:
        mark = site.log_mark()
        r = _whoami(site, value)
        assert f"status=valid user={user} " in r.text, r.text
        if _kept_lines(site, mark):
            return value, user, key
    pytest.fail("no session was served by its kept cookie")


def _reheader(value, **change):
    """value with header fields changed, its MAC as it was."""
    env = helpers.decode_envelope(value)
    fields = dict(created=env.created, refreshed=env.refreshed, kind=env.kind, hint=env.hint,
                  version=env.version)
    fields.update(change)
    header = helpers.build_header(**fields)
    return helpers.b64url_encode(header + env.body)


def test_kept_cookie_with_other_times_or_mac_is_refused(site):
    value, user, _ = _kept_session(site)
    env = helpers.decode_envelope(value)
    forged = [
        _reheader(value, refreshed=env.refreshed + 1),
        _reheader(value, created=env.created - 1),
        _reheader(value, hint=(env.hint + 1) % 256),
        value[:-1] + ("A" if value[-1] != "A" else "B"),      # the MAC's last bits
        value[:60] + ("A" if value[60] != "A" else "B") + value[61:],  # past the id, in the MAC
        helpers.sign_envelope(helpers.random_secret(), "session", bytes.fromhex(id_of(value)),
                              created=env.created, refreshed=env.refreshed,
                              kind=helpers.KIND_ID),  # another secret, the same id and times
    ]
    for f in forged:
        assert f != value
        mark = site.log_mark()
        r = _whoami(site, f)
        assert f"user={user} " not in r.text and "status=invalid" in r.text, (f, r.text)
        assert not _kept_lines(site, mark), f
    # The genuine cookie still is (the forgeries did not replace what the entry keeps).
    mark = site.log_mark()
    r = _whoami(site, value)
    assert f"status=valid user={user} " in r.text, r.text
    assert _kept_lines(site, mark)


def test_kept_cookie_under_another_name_or_secret_is_refused(site):
    value, user, _ = _kept_session(site)
    r = _whoami(site, value, "/other/whoami", name="other")
    assert f"user={user} " not in r.text and "status=invalid" in r.text, r.text
    r = _whoami(site, value, "/third/whoami")
    assert f"user={user} " not in r.text and "status=invalid" in r.text, r.text
    # A cookie the third location's secret signed for the same session is valid there, and the
    # kept one (the first secret's) is not valid there even after it (entries keep one cookie,
    # with the secrets it was verified under).
    env = helpers.decode_envelope(value)
    third = helpers.sign_envelope(site.third_secret, "session", bytes.fromhex(id_of(value)),
                                  created=env.created, refreshed=env.refreshed,
                                  kind=helpers.KIND_ID)
    for _ in range(2):
        r = _whoami(site, third, "/third/whoami")
        assert f"status=valid user={user}" in r.text, r.text
        r = _whoami(site, value, "/third/whoami")
        assert "status=invalid" in r.text, r.text
        r = _whoami(site, third)
        assert "status=invalid" in r.text, r.text
    r = _whoami(site, value)
    assert f"status=valid user={user} " in r.text, r.text


def test_kept_cookie_expires_by_its_idle_timeout(site):
    """/idle shares the binding (secrets, cookie name) and the zone, with an idle timeout: the
    kept cookie serves it until then, and is expired there after it (the server's own load, with
    no idle timeout, still takes it: the debug log cannot tell the two apart)."""
    value, user, _ = _kept_session(site)
    r = _whoami(site, value, "/idle/whoami")
    assert f"status=valid user={user}" in r.text, r.text
    time.sleep(4.2)  # /idle's session_idle_timeout 3s; the entry's max_age is 30s
    mark = site.log_mark()
    r = _whoami(site, value, "/idle/whoami")
    assert f"user={user}" not in r.text and "status=expired" in r.text, r.text
    assert any('rejected: expired' in line for line in site.log_since(mark))
    r = _whoami(site, value)  # (no idle timeout here)
    assert f"status=valid user={user} " in r.text, r.text


def test_kept_cookie_after_logout_or_delete_is_refused(site):
    value, user, key = _kept_session(site)
    r = _whoami(site, value, "/logout")
    assert r.status_code == 200, r.text
    r = _whoami(site, value)
    assert f"user={user} " not in r.text, r.text
    value, user, key = _kept_session(site)
    site.admin.delete(key)
    site.admin.ping()  # (its invalidation is on its way: t/test_redis_cache_coherence.py)
    r = _whoami(site, value)
    assert f"user={user} " not in r.text and "status=invalid" in r.text, r.text


def test_zone_capacity_with_kept_cookies(nginx, redis_factory):
    """README's sizing: each entry also keeps its session's id cookie (a 64-byte chunk), and a 1m
    zone still holds more than 4,500 sessions of one short field (about 5,200 measured), the
    most recently used ones."""
    rd = redis_factory()
    srv = nginx(redis_snippet("127.0.0.1:{rport}", LOCATIONS.replace("{prefix}/third.txt",
                                                                    "{secret_file}"),
                              "session_redis_cache sessions:1m max_age=60s; "
                              "add_header X-Cache-Status \"[$session_cache_status]\" always;"),
                rport=rd.port)
    admin = rd.admin()
    sessions = [seed(admin, {"user": f"u{i}"}, srv.secrets[0])[0] for i in range(6000)]
    for value in sessions:
        assert "status=valid" in _whoami(srv, value).text
    held = 0
    for value in reversed(sessions):
        if _status(_whoami(srv, value)) != "hit":
            break
        held += 1
    assert 4500 < held < 6000, held
