"""Review of 89df64f (src/redis/node.cpp node_read_handler): after the bytes of a successful
recv are handled, the read loop now stops when c->read->ready is 0 instead of calling recv once
more for NGX_AGAIN; it relies on the edge-triggered event (or nginx's posted "next" event that
ngx_ssl_recv adds when OpenSSL may hold more) to report the rest.

These reproductions try to make a reply, an invalidation push, an EOF or an error wait for a
timeout (or be lost) with that change: real nginx, real redis-server (standalone, TLS), every
server on 127.0.0.1 on ports picked at run time. Between nginx and Redis some tests put a
byte-shaping TCP proxy (ShapingProxy): it forwards Redis's bytes coalesced (many replies or TLS
records in one segment: OpenSSL's read-ahead buffer holds several records), dribbled (many
short segments: short reads, ready cleared after each), or followed at once by a FIN (the reply
and the close in one epoll event: the EPOLLRDHUP pending_eof path). (A `use poll;` variant was tried: this build has no poll
module, `nginx -t` refuses it, so everything here is epoll, as in production.)

Result of the review: all of these pass against 89df64f and against its parent's loop (the
hunk reverted); none broke the change. A debug log of the TLS pipelined case shows the path
that matters taken (ngx_ssl_recv filling the buffer twice, "SSL_read: avail:0", the read event
posted to ngx_posted_next_events, the handler stopping and resuming on the next cycle).

Bounded: session_redis_timeout 5s so that a reply left unread shows as a request slower than
2 s; every thread is joined with a deadline; processes are stopped by the fixtures (by pid).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import conftest  # noqa: E402
import helpers  # noqa: E402
from redis_support import (REDIS_LOCATIONS, cookie_header, id_of, redis_snippet,  # noqa: E402
                           session_cookie_value)

SLOW = 3.0          # a request slower than this waited for something (timeout is 5 s)

BIG_LOCATIONS = REDIS_LOCATIONS + """
    location = /big { return 200 "$session_user|$session_k0|$session_k1|$session_k2|$session_k3|$session_k4"; }
"""


# ---------------------------------------------------------------------------------------------
# A byte-shaping TCP proxy in front of a real redis-server
# ---------------------------------------------------------------------------------------------

class ShapingProxy:
    """127.0.0.1:port -> 127.0.0.1:upstream. nginx's bytes go through as they come; Redis's
    are shaped by mode:
      "direct":   as they come;
      "coalesce": gathered for `hold` seconds after the first byte, then written in one send;
      "dribble":  written in pieces of 1..`piece` bytes with `gap` seconds between them.
    fin_on: bytes; after a forwarded chunk that contains it, shutdown(SHUT_WR) of the nginx
    side at once (the FIN right behind the reply). arm_fin(): the same after the next chunk.
    For each connection the proxy records when it sent the FIN and when nginx closed its side
    (fin_sent / nginx_closed, monotonic times)."""

    def __init__(self, upstream: int, mode: str = "direct", hold: float = 0.01,
                 piece: int = 1500, gap: float = 0.0005, fin_on: bytes | None = None):
        self.upstream, self.mode, self.hold, self.piece, self.gap = upstream, mode, hold, piece, gap
        self.fin_on = fin_on
        self.armed = False
        self.lock = threading.Lock()
        self.conns = []     # dicts: fin_sent, nginx_closed
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm_fin(self):
        self.armed = True

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rec = {"fin_sent": None, "nginx_closed": None}
            with self.lock:
                self.socks += [c, u]
                self.conns.append(rec)
            threading.Thread(target=self._up, args=(c, u, rec), daemon=True).start()
            threading.Thread(target=self._down, args=(u, c, rec), daemon=True).start()

    def _up(self, c, u, rec):
        """nginx -> Redis, unshaped; notes when nginx closed its side."""
        try:
            while not self.stopped:
                d = c.recv(65536)
                if not d:
                    break
                u.sendall(d)
        except OSError:
            pass
        rec["nginx_closed"] = time.monotonic()
        try:
            u.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _down(self, u, c, rec):
        """Redis -> nginx, shaped."""
        import random
        rnd = random.Random(7)
        try:
            while not self.stopped:
                d = u.recv(65536)
                if not d:
                    break
                if self.mode == "coalesce":
                    end = time.monotonic() + self.hold
                    u.settimeout(0.002)
                    while time.monotonic() < end:
                        try:
                            more = u.recv(65536)
                        except socket.timeout:
                            continue
                        if not more:
                            break
                        d += more
                    u.settimeout(None)
                    c.sendall(d)
                elif self.mode == "dribble":
                    pos = 0
                    while pos < len(d):
                        n = rnd.randint(1, self.piece)
                        c.sendall(d[pos:pos + n])
                        pos += n
                        time.sleep(self.gap)
                else:
                    c.sendall(d)
                if (self.fin_on is not None and self.fin_on in d) or self.armed:
                    self.armed = False
                    c.shutdown(socket.SHUT_WR)
                    rec["fin_sent"] = time.monotonic()
                    return
        except OSError:
            pass
        try:
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self):
        self.stopped = True
        self.sock.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass


@pytest.fixture
def proxies():
    made = []

    def make(*a, **kw):
        p = ShapingProxy(*a, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


def tls_lines(tls_material) -> str:
    return ("session_redis_tls on;\n    "
            f"session_redis_tls_trusted_certificate {tls_material.ca};\n    ")


def proxied_site(nginx, redis_factory, tls_material, proxies, tls, locations=None,
                 extra="", redis_extra=None, **proxy):
    """redis-server (TLS or not), a ShapingProxy in front of it (proxy: its mode and shape) and
    nginx using Redis through the proxy with session_redis_timeout 5s. Returns (rd, px, srv)."""
    rd = redis_factory(tls=tls_material.redis("ip") if tls else None,
                       **({"extra": redis_extra} if redis_extra else {}))
    px = proxies(rd.port, **proxy)
    srv = nginx(redis_snippet(f"127.0.0.1:{px.port}", locations or BIG_LOCATIONS,
                              (tls_lines(tls_material) if tls else "")
                              + "session_redis_timeout 5s;" + extra))
    return rd, px, srv


def set_values(admin, cookie: str, values: list):
    """The record's k0..k4 written behind nginx's back (a v2 record: a hash of JSON values)."""
    key = f"session:{id_of(cookie)}"
    admin.hset(key, mapping={f"k{i}": json.dumps(v) for i, v in enumerate(values)})


def run_readers(srv, cookie, expected, threads=16, rounds=10, path="/big"):
    """threads x rounds GETs; returns (failures, slow): wrong answers and answers slower than
    SLOW seconds."""
    failures, slow = [], []

    def reader():
        for _ in range(rounds):
            t0 = time.monotonic()
            try:
                r = srv.get(path, headers=cookie_header(cookie), timeout=15)
                st, text = r.status_code, r.text
            except Exception as e:  # noqa: BLE001 - any client error is a failure
                st, text = repr(e), ""
            dt = time.monotonic() - t0
            if st != 200 or text != expected:
                failures.append((st, len(text), text[:80]))
            if dt > SLOW:
                slow.append(round(dt, 2))

    ts = [threading.Thread(target=reader, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts), "readers hung"
    return failures, slow


# Sizes around the 16 KiB read buffer and the 16 KiB TLS record: a reply of several buffers
# (the record is at most 64 KiB, kMaxRecordLen), tiny fields behind the long ones.
SIZES = [16384 - 200, 3, 16384 + 17, 20000, 1]


# ---------------------------------------------------------------------------------------------
# 1. Pipelined replies of many sizes, many at once: plain/TLS x direct/coalesced/dribbled
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("mode", ["direct", "coalesce", "dribble"])
def test_pipelined_replies_of_every_size(nginx, redis_factory, tls_material, proxies,
                                         tls, mode):
    rd, px, srv = proxied_site(nginx, redis_factory, tls_material, proxies, tls, mode=mode)
    r = srv.get("/login?u=alice")
    assert r.status_code == 200, r.text
    cookie = session_cookie_value(r)
    values = [chr(ord("a") + i) * n for i, n in enumerate(SIZES)]
    set_values(rd.admin(), cookie, values)
    expected = "|".join(["alice"] + values)
    r = srv.get("/big", headers=cookie_header(cookie), timeout=15)
    assert r.status_code == 200 and r.text == expected, (r.status_code, len(r.text))
    failures, slow = run_readers(srv, cookie, expected, threads=6 if mode == "dribble" else 16,
                                 rounds=3 if mode == "dribble" else 10)
    assert failures == [] and slow == [], (failures[:5], slow[:10])
    assert not srv.grep_log("no answer in time"), srv.grep_log("no answer in time")[:3]


# ---------------------------------------------------------------------------------------------
# 2. A reply with the FIN right behind it (Redis closing after a reply: CLIENT KILL, timeout,
#    restart): the reply is served, and the close is seen at once (nginx closes its side
#    without waiting for another request or a timeout)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("mode", ["direct", "coalesce"])
def test_reply_then_fin_is_served_and_close_seen(nginx, redis_factory, tls_material, proxies,
                                                 tls, mode):
    rd, px, srv = proxied_site(nginx, redis_factory, tls_material, proxies, tls, mode=mode)
    admin = rd.admin()
    r = srv.get("/login?u=alice")
    assert r.status_code == 200, r.text
    cookie = session_cookie_value(r)
    # direct: a reply small enough for one segment (the FIN goes right behind all of it);
    # coalesced: several buffers of it, gathered into one write before the FIN
    sizes = (10, 20000, 5, 16384, 3) if mode == "coalesce" else (10, 200, 5, 100, 3)
    values = ["FINMARK" + "x" * n for n in sizes]
    set_values(admin, cookie, values)
    expected = "|".join(["alice"] + values)
    problems = []
    for i in range(12):
        # a connection up and idle first (a request that gets its answer)
        ok = helpers.poll(lambda: srv.get("/whoami", headers=cookie_header(cookie),
                                          timeout=10).status_code == 200, 5.0)
        assert ok, f"round {i}: nginx did not get a working connection back"
        time.sleep(0.05)
        t0 = time.monotonic()
        px.arm_fin()
        r = srv.get("/big", headers=cookie_header(cookie), timeout=15)
        dt = time.monotonic() - t0
        if r.status_code != 200 or r.text != expected or dt > SLOW:
            problems.append((i, "reply", r.status_code, len(r.text), round(dt, 2)))

        # the connection that got the FIN: nginx must close it promptly, by itself. The proxy
        # notes fin_sent just after its send and shutdown, so under load the answer can reach
        # this client before the note is written: the connections are read again while polling.
        def fin_conns():
            return [c for c in list(px.conns)
                    if c["fin_sent"] is not None and c["fin_sent"] >= t0]
        # (an unread FIN would be seen only by the next request's write: never, here)
        closed = helpers.poll(lambda: fin_conns() and all(c["nginx_closed"] for c in fin_conns()),
                              3.0)
        if not closed:
            problems.append((i, "close not seen within 3 s", fin_conns()))
        time.sleep(0.15)    # past the 50 ms reconnect backoff
    assert problems == [], problems


# ---------------------------------------------------------------------------------------------
# 3. Real Redis: CLIENT KILL of nginx's connections while many pipelined requests are in flight
#    and Redis's idle timeout closing them: no request waits for a timeout, no wrong answer
# ---------------------------------------------------------------------------------------------

def nginx_client_ids(admin) -> list:
    return [c["id"] for c in admin.client_list() if c.get("name") != conftest.REDIS_CLIENT_NAME]


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_client_kill_storm_under_pipelined_load(nginx, redis_factory, tls_material,
                                                tls):
    rd = redis_factory(tls=tls_material.redis("ip") if tls else None)
    srv = nginx(redis_snippet("127.0.0.1:{rport}", BIG_LOCATIONS,
                              (tls_lines(tls_material) if tls else "")
                              + "session_redis_timeout 5s;"), rport=rd.port)
    admin = rd.admin()
    r = srv.get("/login?u=alice")
    cookie = session_cookie_value(r)
    values = [chr(ord("a") + i) * n for i, n in enumerate(SIZES)]
    set_values(admin, cookie, values)
    expected = "|".join(["alice"] + values)
    stop = threading.Event()
    results = []

    def reader():
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                r = srv.get("/big", headers=cookie_header(cookie), timeout=15)
                results.append((r.status_code, r.text == expected, time.monotonic() - t0))
            except Exception as e:  # noqa: BLE001
                results.append((repr(e), False, time.monotonic() - t0))

    ts = [threading.Thread(target=reader, daemon=True) for _ in range(12)]
    for t in ts:
        t.start()
    kills = 0
    try:
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            time.sleep(0.15)
            for cid in nginx_client_ids(admin):
                try:
                    admin.client_kill_filter(_id=cid)
                    kills += 1
                except Exception:  # noqa: BLE001 - already gone
                    pass
    finally:
        stop.set()
        for t in ts:
            t.join(30)
    assert not any(t.is_alive() for t in ts), "readers hung"
    wrong = [x for x in results if x[0] == 200 and not x[1]]
    slow = [round(x[2], 2) for x in results if x[2] > SLOW]
    oks = sum(1 for x in results if x[0] == 200 and x[1])
    assert kills > 5 and oks > 20, (kills, oks, len(results))
    assert wrong == [] and slow == [], (wrong[:3], slow[:10])
    # and afterwards it works at once
    assert helpers.poll(lambda: srv.get("/big", headers=cookie_header(cookie)).text == expected,
                        2.0)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_redis_idle_timeout_close_is_noticed(nginx, redis_factory, tls_material, proxies,
                                             tls):
    """Redis's `timeout 1` closes nginx's idle connection (a FIN with no data): nginx notices
    by itself (it closes its side), and the next request is answered at once."""
    rd, px, srv = proxied_site(nginx, redis_factory, tls_material, proxies, tls,
                               redis_extra=["--timeout", "1"], mode="direct")
    cookie = session_cookie_value(srv.get("/login?u=alice"))
    for i in range(2):
        r = srv.get("/whoami", headers=cookie_header(cookie))
        assert "user=alice" in r.text, r.text
        first = len(px.conns) - 1
        # Redis closes within 1-2 s; the proxy passes the FIN on; nginx must close its side.
        closed = helpers.poll(lambda: px.conns[first]["nginx_closed"] is not None, 4.0)
        assert closed, f"round {i}: nginx never noticed Redis's idle close"
        time.sleep(0.1)
        t0 = time.monotonic()
        r = srv.get("/whoami", headers=cookie_header(cookie), timeout=10)
        assert "user=alice" in r.text and time.monotonic() - t0 < SLOW, (r.status_code, r.text)


# ---------------------------------------------------------------------------------------------
# 4. The invalidation connection (RESP2 pub/sub): bursts of pushes, together with PING replies,
#    coalesced or dribbled: every change is seen at once (within the PING interval a lost push
#    would be found by the next PING's read; 1 s with max_age=30s)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("mode", ["direct", "coalesce", "dribble"])
def test_invalidation_bursts_are_seen_at_once(nginx, redis_factory, tls_material, proxies,
                                              tls, mode):
    from test_redis_cache_coherence import EXTRA, _status
    rd, px, srv = proxied_site(nginx, redis_factory, tls_material, proxies, tls,
                               locations=REDIS_LOCATIONS, extra=" " + EXTRA, mode=mode,
                               piece=40, gap=0.0002)
    admin = rd.admin()

    def whoami(v):
        return srv.get("/whoami", headers=cookie_header(v), timeout=10)

    cookies = []
    for k in range(8):
        r = srv.get(f"/login?u=u{k}")
        assert r.status_code == 200, r.text
        cookies.append(session_cookie_value(r))
    keys = [f"session:{id_of(v)}" for v in cookies]

    def warm(expect):
        for v, e in zip(cookies, expect):
            helpers.wait_for(lambda: (lambda r: f"user={e} " in r.text and _status(r) == "hit")(
                whoami(v)), 5.0, f"a cache hit for {e}")

    warm([f"u{k}" for k in range(8)])
    stale = []
    # PINGs go every second on the invalidation connection: 5 s of bursts mix with them.
    for rnd in range(8):
        p = admin.pipeline(transaction=False)
        for k, key in enumerate(keys):
            p.hset(key, "user", json.dumps(f"r{rnd}u{k}"))
        p.execute()
        admin.ping()    # barrier: the invalidations are written to the proxy
        t0 = time.monotonic()
        for k, v in enumerate(cookies):
            want = f"user=r{rnd}u{k} "
            # a short grace, below the 1 s PING interval that would pick up a push left
            # unread: a request can race Redis's push (README, The session cache), and through
            # a proxy the push also has to pass it
            seen = helpers.poll(lambda: want in whoami(v).text, 0.3)
            if not seen:
                stale.append((rnd, k, round(time.monotonic() - t0, 2), whoami(v).text))
        # fill the cache again (misses, then hits) for the next round
        warm([f"r{rnd}u{k}" for k in range(8)])
        time.sleep(0.17)    # the rounds drift across the PING times
    assert stale == [], stale[:5]
    bad = [l for l in srv.log_lines() if "invalidation" in l and "[error]" in l
           or "no answer in time" in l]
    assert bad == [], bad[:5]


# ---------------------------------------------------------------------------------------------
# 5. Too-large replies (over kMaxRecordLen: the parser skips the rest of the reply) pipelined
#    with good ones, coalesced: the skip runs across several buffers, the good reply behind it
#    is answered, nothing waits
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_too_large_replies_between_good_ones(nginx, redis_factory, tls_material, proxies, tls):
    rd, px, srv = proxied_site(nginx, redis_factory, tls_material, proxies, tls,
                               mode="coalesce", hold=0.005)
    admin = rd.admin()
    good = session_cookie_value(srv.get("/login?u=good"))
    huge = session_cookie_value(srv.get("/login?u=huge"))
    gvalues = [chr(ord("a") + i) * n for i, n in enumerate(SIZES)]
    set_values(admin, good, gvalues)
    set_values(admin, huge, ["z" * 30000] * 5)     # 150 KB: over the 64 KiB record limit
    expected = "|".join(["good"] + gvalues)
    r = srv.get("/big", headers=cookie_header(huge), timeout=15)
    huge_answer = (r.status_code, r.text)
    assert "zzz" not in r.text, r.text[:80]
    failures, slow = [], []

    def reader(cookie, want):
        for _ in range(10):
            t0 = time.monotonic()
            try:
                r = srv.get("/big", headers=cookie_header(cookie), timeout=15)
                got = (r.status_code, r.text)
            except Exception as e:  # noqa: BLE001
                got = (repr(e), "")
            if got != want:
                failures.append((got[0], got[1][:60]))
            if time.monotonic() - t0 > SLOW:
                slow.append(round(time.monotonic() - t0, 2))

    ts = [threading.Thread(target=reader, args=(good, (200, expected)) if k % 2 else
                           (huge, huge_answer), daemon=True) for k in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts), "readers hung"
    assert failures == [] and slow == [], (failures[:5], slow[:10])
