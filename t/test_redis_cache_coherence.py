"""session_redis_cache serving sessions, and never a stale one (DESIGN.md "Redis session cache
with server-assisted invalidation"; issue 11's fault list).

Each test changes Redis behind nginx's back (redis-cli/redis-py on another connection, another
nginx instance, a killed invalidation connection, a restart, a FLUSHALL) and then asks at once:
the first request after the change must not see the old record. "After the change" is after a
PING that follows it on the test's connection (barrier()): Redis writes a command's reply and the
invalidations it caused in the same event loop turn, the reply first, so only once a later
command was answered is the invalidation surely on its way to nginx. (Without the barrier a
loaded machine shows the window: the reply is read and the next request is served before Redis
wrote the invalidation.) Redis's commandstats show that hits do not touch Redis.
"""
import threading
import time

import pytest

import helpers
from redis_support import (REDIS_LOCATIONS, cmd_calls, cookie_header, redis_snippet,
                           session_cookie_value)

EXTRA = ("session_redis_cache sessions:1m max_age=30s; "
         "add_header X-Cache-Status \"[$session_cache_status]\" always;")


_wait = helpers.wait_for


def barrier(admin):
    """After this, every invalidation caused by admin's earlier commands was written to nginx."""
    admin.ping()


def gone_for_good(requests, stale, bound=2.0, after=5):
    """With more than one worker the invalidation reaches the worker whose connection read the
    record, and another worker may serve the shared entry until that one has run (scheduling
    latency: microseconds, on a loaded 2-core machine some milliseconds). So: the record stops
    being served within `bound` seconds, and once it is not served it never is again."""
    _wait(lambda: all(not stale(q()) for q in requests), bound, "the stale record to go")
    for _ in range(after):
        for q in requests:
            r = q()
            assert not stale(r), r.text


def _status(r):
    return r.headers.get("X-Cache-Status", "")[1:-1]


class Site:
    def __init__(self, nginx, rd, extra=EXTRA, workers=1, locations=REDIS_LOCATIONS,
                 secrets=None):
        self.rd = rd
        self.admin = rd.admin()
        self.srv = nginx(redis_snippet("127.0.0.1:{rport}", locations, extra), rport=rd.port,
                         workers=workers, secrets=secrets)
        self.workers = workers
        self.wait_active()

    def wait_active(self, timeout=8.0):
        """Until a fresh session is served from the cache (every worker's link is up)."""
        value = _wait(lambda: self.try_login("probe"), timeout, "a login")

        def hits():
            seen = set()
            for _ in range(4 * self.workers + 4):
                seen.add(_status(self.whoami(value)))
            return "hit" in seen and "bypass" not in seen
        _wait(hits, timeout, "cache active")

    def try_login(self, user):
        r = self.srv.get(f"/login?u={user}")
        return session_cookie_value(r) if r.status_code == 200 else None

    def login(self, user):
        r = self.srv.get(f"/login?u={user}")
        assert r.status_code == 200, r.text
        return session_cookie_value(r)

    def whoami(self, value):
        return self.srv.get("/whoami", headers=cookie_header(value))

    def warm(self, value, user):
        """Requests until every worker served value from the cache at least once (a hit)."""
        def hit():
            r = self.whoami(value)
            assert f"user={user} " in r.text, r.text
            return _status(r) == "hit"
        for _ in range(self.workers):
            _wait(hit, 5.0, "a hit")

    def key_of(self, value):
        from redis_support import id_of
        return f"session:{id_of(value)}"


def test_hit_miss_and_no_redis_command_on_hits(nginx, redis_factory):
    site = Site(nginx, redis_factory())
    value = site.login("alice")
    r = site.whoami(value)
    assert _status(r) == "miss" and "user=alice " in r.text, r.text
    before = cmd_calls(site.admin, "hgetall")
    for _ in range(50):
        r = site.whoami(value)
        assert _status(r) == "hit" and "user=alice " in r.text, r.text
    assert cmd_calls(site.admin, "hgetall") == before
    # A request without a session has no cache status; the variable is empty.
    r = site.srv.get("/whoami")
    assert _status(r) == "", r.headers


def test_deleted_behind_nginx_is_never_served(nginx, redis_factory):
    site = Site(nginx, redis_factory())
    for i in range(int(__import__("os").environ.get("CACHE_TRIALS", "20"))):
        value = site.login(f"u{i}")
        site.warm(value, f"u{i}")
        site.admin.delete(site.key_of(value))
        barrier(site.admin)
        r = site.whoami(value)
        assert f"user=u{i} " not in r.text and "status=invalid" in r.text, (i, _status(r), r.text)


def test_changed_behind_nginx_is_never_served(nginx, redis_factory):
    site = Site(nginx, redis_factory())
    value = site.login("alice")
    for i in range(20):
        site.warm(value, "alice" if i == 0 else f"m{i - 1}")
        site.admin.hset(site.key_of(value), "user", f'"m{i}"')
        barrier(site.admin)
        r = site.whoami(value)
        assert f"user=m{i} " in r.text, (i, r.text)


def test_expire_behind_nginx_ends_the_entry(nginx, redis_factory):
    """An EXPIRE is a write (invalidated); the record then ends in Redis and the cache with it."""
    site = Site(nginx, redis_factory())
    value = site.login("alice")
    site.warm(value, "alice")
    site.admin.pexpire(site.key_of(value), 300)
    barrier(site.admin)
    r = site.whoami(value)
    assert "user=alice " in r.text and _status(r) == "miss", r.text
    time.sleep(0.5)
    r = site.whoami(value)
    assert "user=alice " not in r.text, r.text


def test_entry_never_outlives_the_record_ttl(nginx, redis_factory):
    """Redis expires keys lazily (an expired key nobody touches sends no invalidation at once):
    the entry ends at the record's PTTL as read with it."""
    site = Site(nginx, redis_factory())
    value = site.login("alice")
    key = site.key_of(value)
    site.admin.pexpire(key, 700)
    r = site.whoami(value)
    assert _status(r) == "miss" and "user=alice " in r.text
    r = site.whoami(value)
    assert _status(r) == "hit" and "user=alice " in r.text
    time.sleep(0.9)
    r = site.whoami(value)
    assert "user=alice " not in r.text, r.text


def test_max_age_ends_entries(nginx, redis_factory):
    extra = EXTRA.replace("max_age=30s", "max_age=300ms")
    site = Site(nginx, redis_factory(), extra=extra)
    value = site.login("alice")
    site.warm(value, "alice")
    time.sleep(0.4)
    r = site.whoami(value)
    assert _status(r) == "miss" and "user=alice " in r.text, r.text


def test_own_writes_drop_the_entry_and_refill_from_a_read(nginx, redis_factory):
    site = Site(nginx, redis_factory())
    value = site.login("alice")
    site.warm(value, "alice")
    r = site.srv.get("/name?v=first", headers=cookie_header(value))
    assert r.status_code == 200
    r = site.whoami(value)
    assert "name=first" in r.text and _status(r) == "miss", r.text
    r = site.whoami(value)
    assert "name=first" in r.text and _status(r) == "hit", r.text
    # Redis still tracks the key for nginx after the refill: a change behind its back is seen.
    site.admin.hset(site.key_of(value), "name", '"second"')
    barrier(site.admin)
    r = site.whoami(value)
    assert "name=second" in r.text, r.text
    # Logout through nginx: gone at once.
    site.warm(value, "alice")
    r = site.srv.get("/logout", headers=cookie_header(value))
    assert r.status_code == 200
    r = site.whoami(value)
    assert "user=alice " not in r.text, r.text


def test_killed_invalidation_connection_then_delete(nginx, redis_factory):
    site = Site(nginx, redis_factory())
    for i in range(10):
        value = site.login(f"k{i}")
        site.warm(value, f"k{i}")
        site.admin.client_kill_filter(_type="pubsub")
        site.admin.delete(site.key_of(value))
        barrier(site.admin)
        r = site.whoami(value)
        assert f"user=k{i} " not in r.text, (i, r.text)
        site.wait_active()


def test_flushall_empties_the_cache(nginx, redis_factory):
    site = Site(nginx, redis_factory())
    value = site.login("alice")
    site.warm(value, "alice")
    site.admin.flushall()
    barrier(site.admin)
    r = site.whoami(value)
    assert "user=alice " not in r.text, r.text


def test_redis_restart(nginx, redis_factory):
    """Records survive a restart here (an RDB save); the cache still starts again from reads."""
    rd = redis_factory()
    site = Site(nginx, rd)
    value = site.login("alice")
    site.warm(value, "alice")
    rd.stop()
    r = site.whoami(value)
    assert r.status_code in (200, 503) and "user=alice " not in r.text or _status(r) != "hit", \
        r.text
    rd.start()
    site.admin = rd.admin()
    # The restarted Redis has no record (no persistence): nothing is served from before.
    r = site.whoami(value)
    assert "user=alice " not in r.text, r.text
    site.wait_active()
    value = site.login("bob")
    site.warm(value, "bob")
    site.admin.delete(site.key_of(value))
    barrier(site.admin)
    r = site.whoami(value)
    assert "user=bob " not in r.text, r.text


def test_zone_full_evicts_without_errors(nginx, redis_factory):
    extra = EXTRA.replace("sessions:1m", "sessions:32k")
    site = Site(nginx, redis_factory(), extra=extra)
    long = "x" * 200
    values = []
    for i in range(300):
        r = site.srv.get(f"/login?u=user{i}")
        v = session_cookie_value(r)
        site.srv.get(f"/name?v={long}{i}", headers=cookie_header(v))
        values.append(v)
    statuses = []
    for rnd in range(2):
        for i, v in enumerate(values):
            r = site.whoami(v)
            assert r.status_code == 200 and f"user=user{i} " in r.text, r.text
            statuses.append(_status(r))
    assert "miss" in statuses
    # Records deleted behind nginx's back are never served, whatever else shares their entry's
    # chain in the zone's table (about 100 entries in 128 chains here); the others still are.
    for i in range(0, 300, 7):
        site.admin.delete(site.key_of(values[i]))
    barrier(site.admin)
    for i, v in enumerate(values):
        r = site.whoami(v)
        if i % 7 == 0:
            assert f"user=user{i} " not in r.text, r.text
        else:
            assert r.status_code == 200 and f"user=user{i} " in r.text, r.text
    # The most recent ones are hits (LRU), and a deleted one is still never served.
    r = site.whoami(values[-1])
    assert _status(r) == "hit", r.text
    site.admin.delete(site.key_of(values[-1]))
    barrier(site.admin)
    r = site.whoami(values[-1])
    assert "user=user299 " not in r.text
    log = site.srv.error_log.read_text()
    assert "[crit]" not in log and "[alert]" not in log and "no memory" not in log, log[-2000:]


def test_reload_starts_from_an_empty_zone(nginx, redis_factory):
    site = Site(nginx, redis_factory(), workers=2)
    value = site.login("alice")
    site.warm(value, "alice")
    site.srv.reload()
    site.wait_active()
    r = site.whoami(value)
    assert "user=alice " in r.text
    seen = {_status(site.whoami(value)) for _ in range(6)}
    assert "hit" in seen
    site.admin.delete(site.key_of(value))
    barrier(site.admin)
    gone_for_good([lambda: site.whoami(value)], lambda r: "user=alice " in r.text)


def test_reload_entry_not_kept(nginx, redis_factory):
    """The first read after a reload is a miss: the previous generation's entries are gone."""
    site = Site(nginx, redis_factory(), workers=1)
    value = site.login("alice")
    site.warm(value, "alice")
    site.srv.reload()
    _wait(lambda: _status(site.whoami(value)) != "bypass", 8.0, "active after reload")
    # (the loop above may have hit once active; a fresh session shows the first status plainly)
    v2 = site.login("bob")
    r = site.whoami(v2)
    assert _status(r) in ("miss", "bypass"), r.text


def test_two_nginx_instances_share_one_redis(nginx, redis_factory):
    rd = redis_factory()
    a = Site(nginx, rd, workers=2)
    b = Site(nginx, rd, workers=2, secrets=a.srv.secrets)
    for i in range(10):
        value = a.login(f"t{i}")
        a.warm(value, f"t{i}")
        b.warm(value, f"t{i}")
        r = b.srv.get("/logout", headers=cookie_header(value))
        assert r.status_code == 200
        barrier(a.admin)
        gone_for_good([lambda: a.whoami(value), lambda: b.whoami(value)],
                      lambda r: f"user=t{i} " in r.text)


def test_workers_share_the_zone(nginx, redis_factory):
    site = Site(nginx, redis_factory(), workers=2)
    value = site.login("alice")
    site.warm(value, "alice")
    before = cmd_calls(site.admin, "hgetall")
    for _ in range(40):
        r = site.whoami(value)
        assert _status(r) == "hit" and "user=alice " in r.text, r.text
    assert cmd_calls(site.admin, "hgetall") == before
    site.admin.delete(site.key_of(value))
    barrier(site.admin)
    gone_for_good([lambda: site.whoami(value)], lambda r: "user=alice " in r.text)


def test_concurrent_misses_share_one_read(nginx, redis_factory):
    extra = EXTRA + " session_redis_timeout 3s;"
    site = Site(nginx, redis_factory(), workers=1, extra=extra)
    value = site.login("alice")
    key = site.key_of(value)
    before = cmd_calls(site.admin, "hgetall")
    site.rd.pause()  # replies wait: the misses pile up behind the first read
    results = []

    def one():
        r = site.whoami(value)
        results.append((_status(r), r.text))
    threads = [threading.Thread(target=one) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.3)
    finally:
        site.rd.resume()
    for t in threads:
        t.join(10)
    assert len(results) == 8 and all("user=alice " in t for _, t in results), results
    assert cmd_calls(site.admin, "hgetall") == before + 1
    assert sorted(s for s, _ in results) == ["miss"] * 8, results
    assert site.admin.exists(key)


def test_bypass_when_tracking_is_refused(nginx, redis_factory, tmp_path):
    """A Redis user without the `client` commands: no tracking, so no cache (bypass), and
    sessions still work from Redis."""
    rd = redis_factory()
    admin = rd.admin()
    admin.acl_setuser("web", enabled=True, passwords=["+pw"], keys=["session:*"],
                      commands=["+@all", "-client"], channels=["*"])
    pw = tmp_path / "redis.pass"
    pw.write_text("pw\n")
    snippet = redis_snippet(f"127.0.0.1:{{rport}} username=web password_file={pw}",
                            REDIS_LOCATIONS, EXTRA)
    srv = nginx(snippet, rport=rd.port, workers=1)
    r = srv.get("/login?u=alice")
    value = session_cookie_value(r)
    for _ in range(5):
        r = srv.get("/whoami", headers=cookie_header(value))
        assert "user=alice " in r.text and _status(r) == "bypass", r.text
    admin.delete(*admin.keys("session:*"))
    r = srv.get("/whoami", headers=cookie_header(value))
    assert "user=alice " not in r.text
    log = srv.error_log.read_text()
    assert "session cache is bypassed" in log or "CLIENT ID refused" in log, log[-3000:]


def test_least_privilege_user_with_the_cache(nginx, redis_factory, tmp_path):
    """README's least-privilege user plus what the cache needs (+client|id +client|tracking
    +subscribe +ping, channel &__redis__:invalidate): hits, and coherence."""
    rd = redis_factory()
    admin = rd.admin()
    admin.execute_command(
        "ACL", "SETUSER", "nginx", "on", ">pw", "~session:*", "resetchannels",
        "&__redis__:invalidate", "-@all", "+select", "+hgetall", "+getrange", "+eval", "+del",
        "+exists", "+type", "+get", "+set", "+hset", "+hdel", "+hget", "+hlen", "+expire",
        "+pexpire", "+pttl", "+client|id", "+client|tracking", "+subscribe", "+ping")
    pw = tmp_path / "redis.pass"
    pw.write_text("pw\n")
    srv = nginx(redis_snippet(f"127.0.0.1:{{rport}} username=nginx password_file={pw}",
                              REDIS_LOCATIONS, EXTRA), rport=rd.port, workers=1)
    value = _wait(lambda: session_cookie_value(r) if (r := srv.get("/login?u=alice")).status_code
                  == 200 else None, 8.0, "a login")
    _wait(lambda: _status(srv.get("/whoami", headers=cookie_header(value))) == "hit", 8.0,
          "a hit")
    admin.delete(*admin.keys("session:*"))
    barrier(admin)
    r = srv.get("/whoami", headers=cookie_header(value))
    assert "user=alice " not in r.text, r.text
    log = srv.error_log.read_text()
    assert "NOPERM" not in log and "refused" not in log, log[-2000:]
