"""session_redis_cache: configuration (nginx -t) and the invalidation link seen from Redis.

What is tested here: the directive's syntax (NAME:SIZE, max_age=, off) with a passing case and a
hostile case for each part; that it requires the Redis store and one Redis configuration per zone;
the tracking and invalidation connections (from CLIENT LIST) in every topology. What the cache
serves, and that it never serves a stale session, is t/test_redis_cache_coherence.py.
"""
import re
import time

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
    ("two-redis", REDIS + "session_redis_cache sessions:1m; "
     "location /other { session_redis 127.0.0.1:6380; }",
     r'session_redis_cache zone "sessions" is used with two different "session_redis" '
     r'configurations \("127.0.0.1:63(79|80)" and "127.0.0.1:63(80|79)"\): give each its own '
     r'zone'),
    ("two-db", REDIS + "session_redis_cache sessions:1m; "
     "location /other { session_redis 127.0.0.1:6379 db=2; }",
     r'session_redis_cache zone "sessions" is used with two different "session_redis"'),
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
    ("two-redis-two-zones", REDIS + "session_redis_cache sessions:1m; "
     "location /a { session_redis 127.0.0.1:6380; session_redis_cache other:1m; }"),
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


# ---------------------------------------------------------------------------------------------
# The invalidation link, seen from Redis's CLIENT LIST: the connections the cache relies on.
# ---------------------------------------------------------------------------------------------

_wait = helpers.wait_for


def _links(admin, me):
    """(tracking data connections, invalidation subscribers) of nginx, from CLIENT LIST."""
    clients = [c for c in admin.client_list()
               if int(c["id"]) != me and not c["name"].startswith("sentinel-")]
    data = [c for c in clients if "t" in c["flags"]]
    subs = [c for c in clients if int(c["sub"]) == 1 and "P" in c["flags"]]
    return data, subs


def _linked(admin, me, workers):
    """The link is complete: one subscriber and one data connection tracking to it per worker."""
    data, subs = _links(admin, me)
    if len(data) != workers or len(subs) != workers:
        return None
    ids = {int(s["id"]) for s in subs}
    if {int(d["redir"]) for d in data} != ids or any("R" in d["flags"] for d in data):
        return None
    if admin.pubsub_numsub("__redis__:invalidate")[0][1] != workers:
        return None
    return data, subs


CACHE_EXTRA = ("session_redis_cache sessions:1m max_age=10s; "
               "add_header X-Cache-Status \"[$session_cache_status]\" always;")


@pytest.mark.parametrize("workers", [1, 2])
def test_cache_makes_tracking_and_invalidation_connections(nginx, redis_factory, workers):
    rd = redis_factory()
    admin = rd.admin()
    me = admin.client_id()
    srv = nginx(redis_snippet("127.0.0.1:{rport}", REDIS_LOCATIONS, CACHE_EXTRA), rport=rd.port,
                workers=workers)
    data, subs = _wait(lambda: _linked(admin, me, workers), what="tracking + subscriber")
    # Requests still work and read Redis; invalidations of keys nginx read (a DEL behind its
    # back, then FLUSHALL: a nil message) are understood: the subscriber stays connected.
    r = srv.get("/login?u=alice")
    value = session_cookie_value(r)
    r = srv.get("/whoami", headers=cookie_header(value))
    assert "alice" in r.text and r.headers.get("X-Cache-Status") in ("[miss]", "[hit]"), r.text
    admin.delete(*admin.keys("session:*"))
    admin.ping()  # (the invalidation is written after the DEL's reply: see barrier())
    r = srv.get("/whoami", headers=cookie_header(value))
    assert "alice" not in r.text, r.text
    admin.flushall()
    # The subscriber is pinged (its last command becomes "ping") and stays the same connection.
    _wait(lambda: all(c["cmd"] == "ping" for c in _links(admin, me)[1]), what="PING")
    data2, subs2 = _wait(lambda: _linked(admin, me, workers), what="link after invalidations")
    assert {s["id"] for s in subs2} == {s["id"] for s in subs}
    assert {d["id"] for d in data2} == {d["id"] for d in data}


def test_killed_invalidation_connection_is_replaced_and_tracking_redirected(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    me = admin.client_id()
    srv = nginx(redis_snippet("127.0.0.1:{rport}", REDIS_LOCATIONS, CACHE_EXTRA), rport=rd.port)
    data, subs = _wait(lambda: _linked(admin, me, 1), what="tracking + subscriber")
    old_sub, old_data = subs[0]["id"], data[0]["id"]
    assert admin.execute_command("CLIENT KILL TYPE pubsub") == 1

    def relinked():
        got = _linked(admin, me, 1)
        return got if got and got[1][0]["id"] != old_sub else None

    data, subs = _wait(relinked, what="a new subscriber with tracking redirected to it")
    assert data[0]["id"] == old_data  # the same data connection, redirected (no OFF, no reconnect)
    assert int(data[0]["redir"]) == int(subs[0]["id"])
    r = srv.get("/login?u=bob")
    r = srv.get("/whoami", headers=cookie_header(session_cookie_value(r)))
    assert "bob" in r.text, r.text


def test_unanswered_ping_replaces_the_invalidation_connection(nginx, redis_factory):
    """A Redis that stops answering (SIGSTOP): the subscriber's PING misses its deadline, the
    connection is replaced once Redis answers again, and tracking follows the new id."""
    rd = redis_factory()
    admin = rd.admin()
    me = admin.client_id()
    nginx(redis_snippet("127.0.0.1:{rport}", REDIS_LOCATIONS, CACHE_EXTRA), rport=rd.port)
    data, subs = _wait(lambda: _linked(admin, me, 1), what="tracking + subscriber")
    old_sub = subs[0]["id"]
    rd.pause()
    try:
        time.sleep(3.0)
    finally:
        rd.resume()
    admin = rd.admin()
    me = admin.client_id()

    def relinked():
        got = _linked(admin, me, 1)
        return got if got and got[1][0]["id"] != old_sub else None

    _wait(relinked, timeout=10, what="a new subscriber after the missed PING")


@pytest.mark.parametrize("directive", ["", "session_redis_cache off;"], ids=["absent", "off"])
def test_no_link_without_the_cache(nginx, redis_factory, directive):
    rd = redis_factory()
    admin = rd.admin()
    me = admin.client_id()
    srv = nginx(redis_snippet("127.0.0.1:{rport}", REDIS_LOCATIONS, directive), rport=rd.port,
                workers=2)
    r = srv.get("/login?u=carol")
    r = srv.get("/whoami", headers=cookie_header(session_cookie_value(r)))
    assert "carol" in r.text, r.text
    time.sleep(1.5)  # a ping interval: nothing else appears
    data, subs = _links(admin, me)
    assert data == [] and subs == [], (data, subs)
    assert admin.pubsub_numsub("__redis__:invalidate")[0][1] == 0
    assert len(admin.client_list()) >= 2  # nginx's data connections are there, untracked


def test_cluster_link_per_node(nginx, redis_cluster):
    """Cluster: every node gets its own subscriber, and the data connection to a node redirects
    its tracking to the subscriber on that same node (Redis only redirects within a node)."""
    topo = redis_cluster
    directive = "cluster " + " ".join(topo.addresses)
    srv = nginx(redis_snippet(directive, REDIS_LOCATIONS, CACHE_EXTRA))
    for node in topo.nodes:
        admin = node.admin()
        me = admin.client_id()
        _wait(lambda: _linked(admin, me, 1), what=f"link on node {node.port}")
    r = srv.get("/login?u=dave")
    r = srv.get("/whoami", headers=cookie_header(session_cookie_value(r)))
    assert "dave" in r.text, r.text


def test_sentinel_link_follows_the_master(nginx, redis_sentinel):
    """Sentinel: the link is on the master only, and moves to the new master after a failover."""
    topo = redis_sentinel
    directive = f"sentinel={topo.name} " + " ".join(topo.addresses)
    srv = nginx(redis_snippet(directive, REDIS_LOCATIONS, CACHE_EXTRA))
    old, new = topo.master, topo.replica
    admin = old.admin()
    me = admin.client_id()
    _wait(lambda: _linked(admin, me, 1), what="link on the master")
    radmin = new.admin()
    assert _links(radmin, radmin.client_id()) == ([], [])
    r = srv.get("/login?u=erin")
    assert r.status_code == 200, r.text
    topo.failover(timeout=30)
    radmin = new.admin()
    me = radmin.client_id()
    _wait(lambda: _linked(radmin, me, 1), timeout=20, what="link on the new master")
    r = srv.get("/login?u=frank")
    r = srv.get("/whoami", headers=cookie_header(session_cookie_value(r)))
    assert "frank" in r.text, r.text
