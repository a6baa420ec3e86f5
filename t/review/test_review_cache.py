"""Review of session_redis_cache (DESIGN.md "Redis session cache with server-assisted
invalidation"): reproductions of what an adversarial review found, each fixed since and kept as a
regression test (the docstrings describe the failure as it was found):

  test_entry_outlives_a_stopped_filler_worker       only the filling worker hears a key's
        invalidation: entries now carry their filler and are served by others only while its
        heartbeat in the zone (every 100 ms) is fresh (300 ms)
  test_quiet_subscriber_death_window[8s]            the PING now has its own deadline (the ping
        interval), not the longest session_redis_timeout
  test_sentinel_cache_active_again_after_failover   a stopped link (old master) no longer counts
  test_cluster_seed_by_host_name_cache_hits         ... nor a seed's outside the slot map
  test_failed_reload_does_not_turn_the_cache_off    the zone's generation moves in init_module,
        once a new configuration is in place
  test_acl_without_channels_bypasses_quietly        the invalidation connection counts as
        healthy only once subscribed (backoff), refusals logged once per 10 s
  test_shared_read_waiter_waits_longer_than_its_own_timeout
        every waiter has its own timer; a read begun under a shorter timeout is not joined
  test_unstorable_record_does_not_empty_the_zone    records over an eighth of the zone are not
        stored; eviction is bounded

Also: shared read failing early is retried; aborts, reload and graceful stop with shared reads
in flight; quiet subscriber death with the default 200ms timeout."""
import os
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from redis_support import (REDIS_LOCATIONS, cmd_calls, cookie_header, redis_snippet,  # noqa
                           session_cookie_value, id_of)
from test_redis_cache_coherence import EXTRA, Site, _status, _wait, barrier  # noqa: E402


def _statuses(get, n=12):
    return [_status(get()) for _ in range(n)]


class TopoSite:
    """A Site on a Sentinel or cluster directive."""

    def __init__(self, nginx, directive, extra=EXTRA, workers=1, locations=REDIS_LOCATIONS):
        self.srv = nginx(redis_snippet(directive, locations, extra), workers=workers)

    def login(self, user):
        r = self.srv.get(f"/login?u={user}")
        assert r.status_code == 200, r.text
        return session_cookie_value(r)

    def whoami(self, value):
        return self.srv.get("/whoami", headers=cookie_header(value))

    def becomes_hit(self, value, user, timeout=10.0):
        def hit():
            r = self.whoami(value)
            assert f"user={user} " in r.text, r.text
            return _status(r) == "hit"
        try:
            _wait(hit, timeout, "a hit")
            return True
        except AssertionError:
            return False


# ---------------------------------------------------------------------------------------------
# Topologies: links that stop but stay in cl->links keep cache_active() false forever

def test_sentinel_cache_active_again_after_failover(nginx, redis_sentinel):
    """After a Sentinel failover the new master's link comes up, but the old master's link is
    only stopped (link_stop) and stays in cl->links with a coherence that is not active:
    cache_active() (every link active) is false forever, every request is `bypass`."""
    topo = redis_sentinel
    site = TopoSite(nginx, f"sentinel={topo.name} " + " ".join(topo.addresses))
    value = _wait(lambda: site.srv.get("/login?u=erin").status_code == 200 and
                  site.login("erin"), 10, "login")
    assert site.becomes_hit(value, "erin"), "cache never active before the failover"
    topo.failover(timeout=30)
    value = _wait(lambda: site.srv.get("/login?u=frank").status_code == 200 and
                  site.login("frank"), 20, "login after failover")
    ok = site.becomes_hit(value, "frank", timeout=15)
    seen = _statuses(lambda: site.whoami(value), 6)
    assert ok, f"cache bypassed for good after a Sentinel failover: {seen}"


def test_cluster_cache_hits(nginx, redis_cluster):
    """Cluster with the nodes' own addresses as seeds: the cache must become active."""
    topo = redis_cluster
    site = TopoSite(nginx, "cluster " + " ".join(topo.addresses))
    value = _wait(lambda: site.srv.get("/login?u=dave").status_code == 200 and
                  site.login("dave"), 10, "login")
    ok = site.becomes_hit(value, "dave")
    assert ok, _statuses(lambda: site.whoami(value), 6)


def test_cluster_seed_by_host_name_cache_hits(nginx, redis_cluster):
    """A seed written as localhost:PORT is another Data node than the map's 127.0.0.1:PORT: it
    is kept (a seed) but not in the map, so prune_handler stops its link (link_stop) while the
    link stays in cl->links: cache_active() is never true, the cache is bypassed for good."""
    topo = redis_cluster
    seeds = " ".join(a.replace("127.0.0.1", "localhost") for a in topo.addresses[:1])
    site = TopoSite(nginx, "cluster " + seeds)
    value = _wait(lambda: site.srv.get("/login?u=dave").status_code == 200 and
                  site.login("dave"), 10, "login")
    ok = site.becomes_hit(value, "dave")
    n0 = topo.nodes[0].admin()
    subs = [c for c in n0.client_list() if c.get("flags", "").find("P") >= 0]
    tracking = [c for c in n0.client_list() if "t" in c.get("flags", "")]
    assert ok, ("never a hit with a host-name seed: " + str(_statuses(lambda: site.whoami(value), 6))
                + f"; node0 subscribers={len(subs)} tracking data connections={len(tracking)}")


# ---------------------------------------------------------------------------------------------
# Shared reads: a waiter has no timer of its own (the first requester's timeout rules)

TIMEOUT_LOCATIONS = REDIS_LOCATIONS + r"""
    location = /fast { session_redis_timeout 200ms;
        return 200 "status=$session_status user=$session_user\n"; }
    location = /slow { session_redis_timeout 4s;
        return 200 "status=$session_status user=$session_user\n"; }
"""


def _timed_get(site, path, value, out, key):
    t0 = time.monotonic()
    r = site.srv.get(path, headers=cookie_header(value), timeout=15)
    out[key] = (time.monotonic() - t0, r.status_code, r.text)


def test_shared_read_waiter_waits_longer_than_its_own_timeout(nginx, redis_factory):
    """redis.h: 'a command never waits longer than its own location's session_redis_timeout'.
    A /fast miss (200ms) that joins a fill begun by a /slow miss (4s) waits for the 4s read:
    with Redis stalled for 1.5s it is answered after ~1.5s instead of ~0.2s."""
    site = Site(nginx, redis_factory(), locations=TIMEOUT_LOCATIONS)
    value = site.login("alice")
    site.rd.pause()
    out = {}
    try:
        ts = threading.Thread(target=_timed_get, args=(site, "/slow", value, out, "slow"))
        ts.start()
        time.sleep(0.2)
        tf = threading.Thread(target=_timed_get, args=(site, "/fast", value, out, "fast"))
        tf.start()
        time.sleep(1.3)
    finally:
        site.rd.resume()
    ts.join(10)
    tf.join(10)
    assert out["slow"][1] == 200 and "user=alice" in out["slow"][2], {k: v[:2] for k, v in out.items()}
    fast_s = out["fast"][0]
    assert fast_s < 0.8, f"/fast (session_redis_timeout 200ms) answered after {fast_s:.2f}s: {out}"


def test_shared_read_waiter_fails_before_its_own_timeout(nginx, redis_factory):
    """The converse (passes: not a bug as seen from the client): a /slow miss (4s) that joins a
    fill begun by a /fast miss (200ms) gets the fill's failure at 200ms, but the load is tried
    again under the location's longer timeout (store_error retry), so /slow is served."""
    site = Site(nginx, redis_factory(), locations=TIMEOUT_LOCATIONS)
    value = site.login("alice")
    site.rd.pause()
    out = {}
    try:
        tf = threading.Thread(target=_timed_get, args=(site, "/fast", value, out, "fast"))
        tf.start()
        time.sleep(0.05)
        ts = threading.Thread(target=_timed_get, args=(site, "/slow", value, out, "slow"))
        ts.start()
        time.sleep(0.8)
    finally:
        site.rd.resume()
    ts.join(10)
    tf.join(10)
    # /fast gave up (store error); /slow had 4s and Redis answered after ~0.8s.
    assert "user=alice" in out["slow"][2] and out["slow"][1] == 200, \
        f"/slow (4s) failed with the first requester's 200ms: {out}"


# ---------------------------------------------------------------------------------------------
# A quietly dead invalidation connection (a TCP proxy that black-holes it)

class Proxy:
    """TCP proxy to Redis. freeze_subscribers(): connections that sent SUBSCRIBE stop
    forwarding in both directions (what a dropped NAT entry or a half-dead path looks like:
    no FIN, no RST, nothing)."""

    def __init__(self, port):
        self.target = port
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.conns = []
        self.frozen = False
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            st = {"sub": False, "frozen": False}
            self.conns.append((c, u, st))
            threading.Thread(target=self._pump, args=(c, u, st, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, st, False), daemon=True).start()

    def _pump(self, a, b, st, upstream):
        while True:
            try:
                d = a.recv(65536)
            except OSError:
                return
            if not d:
                try:
                    b.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if upstream and b"SUBSCRIBE" in d.upper():
                st["sub"] = True
            if st["frozen"]:
                continue  # black hole
            try:
                b.sendall(d)
            except OSError:
                return

    def freeze_subscribers(self):
        for _, _, st in self.conns:
            if st["sub"]:
                st["frozen"] = True

    def close(self):
        self.stopped = True
        self.ls.close()
        for c, u, _ in self.conns:
            for s in (c, u):
                try:
                    s.close()
                except OSError:
                    pass


def _stale_window(site, value, user, limit=30.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        r = site.whoami(value)
        if f"user={user} " not in r.text:
            return time.monotonic() - t0
        time.sleep(0.05)
    return limit


@pytest.mark.parametrize("timeout", ["200ms", "8s"])
def test_quiet_subscriber_death_window(nginx, redis_factory, timeout):
    """A subscriber that dies without FIN is found by the PING only after ping interval +
    client_stall_limit = max(1s, the longest session_redis_timeout of the endpoint). Until then
    a record deleted in Redis is served from the cache. The window must not depend on a
    request timeout (DESIGN: pinged 'with a timeout'): with session_redis_timeout 8s somewhere,
    a logout elsewhere is ignored for ~9s (bounded only by max_age, 30s here)."""
    rd = redis_factory()
    px = Proxy(rd.port)
    try:
        extra = EXTRA + f" session_redis_timeout {timeout};"
        site = Site.__new__(Site)
        site.rd = rd
        site.admin = rd.admin()
        site.srv = nginx(redis_snippet("127.0.0.1:{pport}", REDIS_LOCATIONS, extra),
                         pport=px.port, workers=1)
        site.workers = 1
        site.wait_active()
        value = site.login("alice")
        site.warm(value, "alice")
        px.freeze_subscribers()
        time.sleep(0.05)
        site.admin.delete(site.key_of(value))
        barrier(site.admin)
        window = _stale_window(site, value, "alice")
        assert window < 2.5, f"deleted record served for {window:.1f}s after a quiet subscriber loss"
    finally:
        px.close()


# ---------------------------------------------------------------------------------------------
# Zone full: a record that can never fit empties the whole zone first

def test_unstorable_record_does_not_empty_the_zone(nginx, redis_factory):
    """redis_cache_zone_put evicts LRU entries 'until it fits' and only gives up when the LRU is
    empty: one record larger than the zone can hold (a legal 40 KB session in a legal 32k zone)
    evicts every entry, on every miss of that session. Any client holding such a session turns
    the cache off for everyone."""
    from redis_support import seed
    site = Site(nginx, redis_factory(), extra=EXTRA.replace("sessions:1m", "sessions:32k"))
    small = [site.login(f"s{i}") for i in range(5)]
    for i, v in enumerate(small):
        site.warm(v, f"s{i}")
    assert all(_status(site.whoami(v)) == "hit" for v in small)
    big, _, _ = seed(site.admin, {"user": "big", "blob": "x" * 40000}, site.srv.secrets[0])
    r = site.whoami(big)
    assert "user=big " in r.text and _status(r) == "miss", r.text
    after = [_status(site.whoami(v)) for v in small]
    assert after == ["hit"] * 5, f"one unstorable record evicted the zone: {after}"


# ---------------------------------------------------------------------------------------------
# The shared zone trusts the one worker that tracks a key

PID_EXTRA = EXTRA + " add_header X-Pid $pid always;"


def test_entry_outlives_a_stopped_filler_worker(nginx, redis_factory):
    """Entries are shared by all workers but only the worker whose data connection read the
    record receives its invalidation. If that worker does not run its event loop for a while
    (stopped here; in real life blocked on a slow disk, a long regex, a debugger, a cgroup
    freeze), the other workers go on serving a record that was deleted in Redis, until max_age
    (30s here) - nothing notices, since that worker's PING is not due either."""
    import signal
    site = Site(nginx, redis_factory(), workers=2, extra=PID_EXTRA)
    value = site.login("alice")
    # A miss: this worker fills the entry (its connection tracks the key).
    r = site.whoami(value)
    for _ in range(20):
        if _status(r) == "miss":
            break
        value = site.login("alice")
        r = site.whoami(value)
    assert _status(r) == "miss", r.text
    filler = int(r.headers["X-Pid"])
    other = [p for p in site.srv.worker_pids() if p != filler]
    assert other, site.srv.worker_pids()
    os.kill(filler, signal.SIGSTOP)
    try:
        site.admin.delete(site.key_of(value))
        barrier(site.admin)
        time.sleep(0.3)
        served = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.0:
            try:
                r = site.srv.get("/whoami", headers=cookie_header(value), timeout=1.0)
            except Exception:
                continue  # a connection the stopped worker took
            if r.headers.get("X-Pid") and int(r.headers["X-Pid"]) != filler:
                served.append("user=alice " in r.text)
            time.sleep(0.05)
    finally:
        os.kill(filler, signal.SIGCONT)
    assert served, "no answer from the running worker"
    assert not any(served), \
        f"deleted record served by the other worker {sum(served)}/{len(served)} times over 3s"


# ---------------------------------------------------------------------------------------------
# Requests that go away while waiting on a shared read; reload with reads in flight

def _fire_and_abort(port, value, n, path="/whoami"):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nCookie: session={value}\r\n\r\n".encode())
        socks.append(s)
    return socks


def _no_crash(srv):
    log = srv.error_log.read_text(errors="replace")
    bad = [l for l in log.splitlines()
           if "exited on signal" in l or "[alert]" in l or "[crit]" in l or "[emerg]" in l]
    return bad


def test_abort_and_reload_with_shared_reads_in_flight(nginx, redis_factory):
    extra = EXTRA + " session_redis_timeout 2s;"
    site = Site(nginx, redis_factory(), workers=2, extra=extra)
    values = [site.login(f"a{i}") for i in range(4)]
    port = site.srv.port
    site.rd.pause()
    try:
        socks = []
        for v in values:
            socks += _fire_and_abort(port, v, 5)
        time.sleep(0.2)
        for s in socks[::2]:          # half of the waiters go away (RST)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        time.sleep(0.1)
        threading.Thread(target=site.srv.reload, daemon=True).start()
        time.sleep(0.5)
    finally:
        site.rd.resume()
    for s in socks[1::2]:
        s.settimeout(5)
        try:
            s.recv(4096)
        except OSError:
            pass
        s.close()
    time.sleep(2.5)
    site.wait_active()
    for i, v in enumerate(values):
        assert f"user=a{i} " in site.whoami(v).text
    assert _no_crash(site.srv) == []


def test_graceful_stop_with_shared_reads_in_flight(nginx, redis_factory):
    import signal
    extra = EXTRA + " session_redis_timeout 2s;"
    site = Site(nginx, redis_factory(), workers=1, extra=extra,
                )
    v = site.login("q")
    port = site.srv.port
    site.rd.pause()
    try:
        socks = _fire_and_abort(port, v, 4)
        time.sleep(0.2)
        os.kill(site.srv.pid, signal.SIGQUIT)
        time.sleep(0.3)
    finally:
        site.rd.resume()
    for s in socks:
        s.settimeout(5)
        try:
            s.recv(4096)
        except OSError:
            pass
        s.close()
    time.sleep(3)
    assert _no_crash(site.srv) == []


# ---------------------------------------------------------------------------------------------
# A reload that fails after the zones were initialised

def test_failed_reload_does_not_turn_the_cache_off(nginx, redis_factory):
    """init_zone bumps the zone's generation as soon as the new cycle initialises its shared
    memory, before nginx opens the listening sockets. When the reload then fails (here: a new
    `listen` on a busy port; also any later init failure), the old workers keep running - but
    their generation is no longer the zone's: usable() refuses them, every request is `bypass`
    until the next successful reload."""
    import signal
    site = Site(nginx, redis_factory(), workers=1)
    value = site.login("alice")
    site.warm(value, "alice")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    bport = busy.getsockname()[1]
    site.srv.allowed_bad_log.append(r"bind\(\) to 127\.0\.0\.1:%d failed" % bport)
    try:
        site.srv.render(redis_snippet("127.0.0.1:{rport}", REDIS_LOCATIONS, EXTRA,
                                      http_extra=f"server {{ listen 127.0.0.1:{bport}; }}"))
        mark = site.srv.log_mark()
        old = site.srv.worker_pids()
        os.kill(site.srv.pid, signal.SIGHUP)
        _wait(lambda: any("bind()" in l for l in site.srv.log_since(mark)), 15, "bind failure")
        time.sleep(0.5)
        assert site.srv.worker_pids() == old  # the old generation goes on serving
        seen = _statuses(lambda: site.whoami(value), 10)
        assert "hit" in seen, f"cache off after a failed reload: {seen}"
    finally:
        busy.close()


# ---------------------------------------------------------------------------------------------
# A Redis user that may run CLIENT but not subscribe (Redis 7: acl-pubsub-default resetchannels)

def test_acl_without_channels_bypasses_quietly(nginx, redis_factory, tmp_path):
    """A user created as `+@all ~session:*` gets no channel under Redis 7's default
    (resetchannels): SUBSCRIBE __redis__:invalidate is refused. The cache must bypass (it does)
    without a reconnect storm: CLIENT ID's good answer marks the connection healthy and resets
    the backoff to 50ms before SUBSCRIBE is refused, so each worker reconnects and logs
    "SUBSCRIBE refused" ~20 times a second, forever."""
    rd = redis_factory()
    admin = rd.admin()
    admin.acl_setuser("web", enabled=True, passwords=["+pw"], keys=["session:*"],
                      commands=["+@all"])
    pw = tmp_path / "redis.pass"
    pw.write_text("pw\n")
    srv = nginx(redis_snippet(f"127.0.0.1:{{rport}} username=web password_file={pw}",
                              REDIS_LOCATIONS, EXTRA), rport=rd.port, workers=2)
    r = srv.get("/login?u=alice")
    value = session_cookie_value(r)
    mark = srv.log_mark()
    for _ in range(5):
        r = srv.get("/whoami", headers=cookie_header(value))
        assert "user=alice " in r.text and _status(r) == "bypass", r.text
    time.sleep(6)
    errors = [l for l in srv.log_since(mark) if "[error]" in l]
    conns = int(admin.info("stats")["total_connections_received"])
    assert len(errors) <= 4, f"{len(errors)} error lines in 6s, {conns} connections: {errors[:3]}"
