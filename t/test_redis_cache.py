"""session_redis_cache: configuration (nginx -t) and the zone, before the cache serves anything.

What is tested here: the directive's syntax (NAME:SIZE, max_age=, off) with a passing case and a
hostile case for each part; that it requires the Redis store; that a running nginx with a cache
zone still reads every session from Redis ($session_cache_status stays empty: the cache is not in
the request path yet, see CACHE_NOTES.md), across a reload that keeps the zone.
"""
import re

import pytest

import helpers
from redis_support import REDIS_LOCATIONS, cookie_header, redis_snippet, session_cookie_value

REDIS = "session_store redis; session_redis 127.0.0.1:6379; "

# name, server-level directives, expected nginx -t error (regex)
REJECTED = [
    ("no-size", REDIS + "session_redis_cache sessions;",
     r'invalid zone "sessions" in "session_redis_cache" \(use NAME:SIZE or off\)'),
    ("no-name", REDIS + "session_redis_cache :10m;",
     r'invalid zone ":10m" in "session_redis_cache"'),
    ("bad-size", REDIS + "session_redis_cache sessions:ten;",
     r'invalid zone size "ten" in "session_redis_cache"'),
    ("empty-size", REDIS + "session_redis_cache sessions:;",
     r'invalid zone size "" in "session_redis_cache"'),
    ("too-small", REDIS + "session_redis_cache sessions:4k;",
     r'session_redis_cache zone "sessions" is too small \(4k; at least \d+k\)'),
    ("zero-max-age", REDIS + "session_redis_cache sessions:1m max_age=0;",
     r'invalid max_age "0" in "session_redis_cache"'),
    ("bad-max-age", REDIS + "session_redis_cache sessions:1m max_age=soon;",
     r'invalid max_age "soon" in "session_redis_cache"'),
    ("empty-max-age", REDIS + "session_redis_cache sessions:1m max_age=;",
     r'invalid max_age "" in "session_redis_cache"'),
    ("huge-max-age", REDIS + "session_redis_cache sessions:1m max_age=2d;",
     r'invalid max_age "2d" in "session_redis_cache" \(a time from 1ms to 1d\)'),
    ("unknown-parameter", REDIS + "session_redis_cache sessions:1m ttl=5s;",
     r'invalid parameter "ttl=5s" in "session_redis_cache"'),
    ("off-with-parameter", REDIS + "session_redis_cache off max_age=5s;",
     r'invalid zone "off" in "session_redis_cache"'),
    ("too-many", REDIS + "session_redis_cache sessions:1m max_age=5s max_age=6s x;",
     r'invalid number of arguments in "session_redis_cache"'),
    ("duplicate", REDIS + "session_redis_cache a:1m; session_redis_cache b:1m;",
     r'"session_redis_cache" directive is duplicate'),
    ("cookie-store", "session_redis_cache sessions:1m;",
     r'"session_redis_cache" requires "session_store redis"'),
    ("explicit-cookie-store", "session_store cookie; session_redis_cache sessions:1m;",
     r'"session_redis_cache" requires "session_store redis"'),
    ("size-conflict", REDIS + "session_redis_cache sessions:1m; "
     "location /other { session_redis_cache sessions:2m; }",
     r'shared memory zone "sessions" conflicts'),
]


@pytest.mark.parametrize("conf, message", [c[1:] for c in REJECTED],
                         ids=[c[0] for c in REJECTED])
def test_nginx_t_rejects(nginx_t, conf, message):
    rc, out = nginx_t(helpers.server_conf("location / { return 200; }", server_extra=conf))
    assert rc != 0, out
    assert "[emerg]" in out, out
    assert re.search(message, out), out


ACCEPTED = [
    ("zone", REDIS + "session_redis_cache sessions:1m;"),
    ("max-age", REDIS + "session_redis_cache sessions:10m max_age=30s;"),
    ("max-age-ms", REDIS + "session_redis_cache sessions:10m max_age=500ms;"),
    ("max-age-1d", REDIS + "session_redis_cache sessions:10m max_age=1d;"),
    ("off", REDIS + "session_redis_cache off;"),
    ("off-without-redis", "session_redis_cache off;"),
    ("one-zone-two-locations", REDIS + "session_redis_cache sessions:1m; "
     "location /a { session_redis_cache sessions:1m max_age=5s; }"),
    ("off-in-a-location", REDIS + "session_redis_cache sessions:1m; "
     "location /a { session_redis_cache off; }"),
    ("cookie-location-turns-it-off", REDIS + "session_redis_cache sessions:1m; "
     "location /a { session_store cookie; session_redis_cache off; }"),
]


@pytest.mark.parametrize("conf", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_nginx_t_accepts(nginx_t, conf):
    rc, out = nginx_t(helpers.server_conf("location / { return 200; }", server_extra=conf))
    assert rc == 0, out


def test_cookie_store_location_inheriting_a_cache_is_refused(nginx_t):
    """A location that switches to the cookie store must also say `session_redis_cache off`."""
    conf = REDIS + "session_redis_cache sessions:1m;"
    rc, out = nginx_t(helpers.server_conf(
        "location / { return 200; } location /a { session_store cookie; }", server_extra=conf))
    assert rc != 0, out
    assert '"session_redis_cache" requires "session_store redis"' in out, out


def test_cache_status_is_reserved_session_key(nginx_t):
    """$session_cache_status is the module's: session_set of that key is refused like the others."""
    conf = REDIS + "session_redis_cache sessions:1m;"
    rc, out = nginx_t(helpers.server_conf(
        "location / { session_set cache_status x; return 200; }", server_extra=conf))
    # Whatever the module says about reserved keys for the existing variables, it says here too.
    rc2, out2 = nginx_t(helpers.server_conf(
        "location / { session_set csrf_token x; return 200; }", server_extra=conf))
    assert (rc == 0) == (rc2 == 0), (out, out2)


def test_sessions_still_come_from_redis_with_a_zone(nginx, redis_factory):
    """With a zone configured nothing is served from it yet: a record deleted behind nginx's back
    is gone on the next request, $session_cache_status is empty, and a reload that keeps the zone
    starts cleanly."""
    rd = redis_factory()
    admin = rd.admin()
    extra = ("session_redis_cache sessions:1m max_age=10s; "
             "add_header X-Cache-Status \"[$session_cache_status]\" always;")
    srv = nginx(redis_snippet("127.0.0.1:{rport}", REDIS_LOCATIONS, extra), rport=rd.port,
                workers=2)
    r = srv.get("/login?u=alice")
    assert r.status_code == 200, r.text
    value = session_cookie_value(r)
    for _ in range(3):
        r = srv.get("/whoami", headers=cookie_header(value))
        assert r.status_code == 200 and "alice" in r.text, r.text
        assert r.headers.get("X-Cache-Status") == "[]"
    keys = admin.keys("session:*")
    assert len(keys) == 1
    admin.delete(*keys)
    r = srv.get("/whoami", headers=cookie_header(value))
    assert "alice" not in r.text, r.text
    srv.reload()
    r = srv.get("/login?u=bob")
    assert r.status_code == 200, r.text
    r = srv.get("/whoami", headers=cookie_header(session_cookie_value(r)))
    assert "bob" in r.text, r.text
