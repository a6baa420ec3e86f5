"""Faults under load (issue 6), with bounded wrk runs (each <= 5 s):

* `nginx -s reload` (SIGHUP to the master) repeatedly while wrk runs with a valid session: no
  request lost (0 socket errors, only 200s);
* a worker killed with SIGKILL is respawned by the master and sessions stay valid;
* Redis killed (SIGKILL) and restarted on the same port, and paused (SIGSTOP/SIGCONT), under
  load: no worker crash, 503 (fail closed) meanwhile, service back without reload;
* file descriptors (workers and master) and Redis connections counted before and after
  thousands of requests, reloads and a Redis restart: no growth.

Everything on 127.0.0.1 with run-time ports; processes are signalled by pid only.
"""

from __future__ import annotations

import os
import random
import signal
import time
import urllib.parse

import pytest

import helpers
import hardening_support as H
from helpers import cookie_named, cookie_value, server_conf

SLACK = 2   # fds / Redis connections allowed above the baseline

LOCATIONS = r"""
    location = /login  { session_set user $arg_u; return 200 "ok\n"; }
    location = /app {
        if ($session_user = "") { return 403 "no session ($session_status)\n"; }
        return 200 "ok $session_user\n";
    }
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
    location = /logout { session_destroy; return 200 "bye\n"; }
    location = /ping   { return 200 "pong\n"; }
"""


def conf(store: str, extra: str = "") -> str:
    if store == "redis":
        s = "session_store redis; session_redis 127.0.0.1:{rport};"
    else:
        s = "session_encrypt on;"
    return server_conf(LOCATIONS, s + " " + extra)


@pytest.fixture
def wrk_bin():
    if not H.wrk_binary():
        pytest.fail("wrk not installed", pytrace=False)


def login(srv, user="alice") -> str:
    r = helpers.http_request(srv.port, f"/login?u={user}")
    assert r.status == 200, r.raw[:300]
    sc = cookie_named(r, "session")
    assert sc, r.set_cookies
    return cookie_value(sc)


def whoami(srv, value: str, timeout: float = 5.0) -> str:
    return helpers.http_request(srv.port, "/whoami", [("Cookie", "session=" + value)]).text


def app_ok(srv, value: str, user: str = "alice") -> bool:
    try:
        r = helpers.http_request(srv.port, "/app", [("Cookie", "session=" + value)])
    except OSError:
        return False
    return r.status == 200 and r.text == f"ok {user}\n"


def start_wrk(srv, value: str, tmp_path, duration: float, connections: int = 8,
              close: bool = False, path: str = "/app") -> H.Wrk:
    headers = ["Cookie: session=" + value]
    if close:
        headers.append("Connection: close")
    return H.Wrk(srv.url(path), duration=duration, threads=2, connections=connections,
                 headers=headers, workdir=tmp_path)


def assert_no_crash(srv, workers_before=None):
    crashes = H.crash_lines(srv)
    assert not crashes, crashes
    if workers_before is not None:
        assert H.workers_of(srv.pid) == workers_before, "workers were replaced (crash?)"


# ---------------------------------------------------------------------------------------------
# Reload under load
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["cookie", "redis"])
@pytest.mark.parametrize("keepalive", [False, True], ids=["close", "keepalive"])
def test_reload_under_load_loses_no_request(nginx, redis_server, wrk_bin, tmp_path, store,
                                            keepalive):
    """Five SIGHUPs 0.5 s apart while wrk runs: every request answered 200 with the user.

    keepalive=False: every request on its own connection (Connection: close). keepalive=True:
    wrk's persistent connections; an old worker closes its idle keep-alive connections when it
    shuts down, and a request the client sent at that very moment meets the close (the
    keep-alive race of HTTP/1.1, RFC 9112 9.6, the same with any nginx module): a client
    retries those, and wrk counts them as read errors. They are the only errors allowed (about
    one per connection per reload), and never a wrong answer."""
    srv = nginx(conf(store), workers=2, rport=redis_server.port)
    value = login(srv)
    assert app_ok(srv, value)
    master = srv.pid
    first = H.wait_workers(master, 2)
    mark = srv.log_mark()
    connections = 8
    w = start_wrk(srv, value, tmp_path, duration=4.0, connections=connections,
                  close=not keepalive)
    try:
        time.sleep(0.5)
        for _ in range(5):
            os.kill(master, signal.SIGHUP)
            time.sleep(0.5)
    finally:
        res = w.result()
    print(res.output)
    assert res.requests > 1000, res.output
    assert res.statuses and set(res.statuses) == {200}, (res.statuses, res.output)
    assert res.non2xx3xx == 0, res.output
    if keepalive:
        assert res.connect == res.timeout == 0, res.output
        # nginx closes each keep-alive connection once per reload: at most one error per wrk
        # connection per reload (5 x 8 = 40; a plain `return 200` location without the module
        # measured 36-40 here). Twice that is allowed; a module that dropped connections would
        # cost thousands.
        assert res.read + res.write <= 2 * 5 * connections, res.output
    else:
        assert res.socket_errors == 0, res.output
    # five new generations came up; the first one is gone
    assert len(srv.grep_log("signal 1 (SIGHUP) received", mark)) == 5, srv.log_since(mark)
    now = H.wait_workers(master, 2, timeout=10, exclude=first)
    assert not set(now) & set(first)
    assert_no_crash(srv)
    assert app_ok(srv, value)
    assert not srv.grep_log("[error]", mark), srv.grep_log("[error]", mark)[:5]


# ---------------------------------------------------------------------------------------------
# A killed worker
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["cookie", "redis"])
def test_killed_worker_is_respawned_and_sessions_stay_valid(nginx, redis_server, store):
    srv = nginx(conf(store), workers=2, rport=redis_server.port)
    values = [login(srv, u) for u in ("alice", "bob", "carol")]
    master = srv.pid
    workers = H.wait_workers(master, 2)
    victim = workers[0]
    # nginx's own report of the kill is expected, exactly this line and only for this pid
    srv.allowed_bad_log.append(rf"\[alert\] \d+#\d+: worker process {victim} exited on "
                               rf"signal 9$")
    os.kill(victim, signal.SIGKILL)
    assert helpers.poll(lambda: srv.grep_log(f"worker process {victim} exited on signal 9"), 5.0), \
        "the master did not notice the killed worker"
    now = H.wait_workers(master, 2, exclude=[victim])
    assert workers[1] in now, (workers, now)
    # the other lines are clean
    assert [l for l in srv.bad_log_lines()] == [], srv.bad_log_lines()
    # the same cookies still carry their users, on new connections (both workers)
    for _ in range(10):
        for v, u in zip(values, ("alice", "bob", "carol")):
            assert whoami(srv, v) == f"status=valid user={u}\n"
    # and new sessions work
    v = login(srv, "dave")
    assert whoami(srv, v) == "status=valid user=dave\n"
    assert srv.pid == master and H.workers_of(master) == now


# ---------------------------------------------------------------------------------------------
# Redis faults under load
# ---------------------------------------------------------------------------------------------


def reseed(rclient, key: str, data: dict, ttl: int = 3600):
    """Writes a v2 record (a hash of JSON values) back after Redis lost it."""
    rclient.hset(key, mapping=data)
    rclient.expire(key, ttl)


@pytest.mark.parametrize("workers", [1, 2])
def test_redis_killed_and_restarted_under_load(nginx, redis_server, wrk_bin, tmp_path, workers):
    srv = nginx(conf("redis"), workers=workers, rport=redis_server.port)
    value = login(srv)
    key = "session:" + H.id_hex(value)
    rc = redis_server.client()
    data = rc.hgetall(key)
    assert data == {b"user": b'"alice"'}, data
    assert app_ok(srv, value)
    master = srv.pid
    before = H.wait_workers(master, workers)
    mark = srv.log_mark()

    w = start_wrk(srv, value, tmp_path, duration=4.0)
    try:
        time.sleep(1.0)
        redis_server.kill()                     # a crash: no persistence, the data is gone
        time.sleep(1.0)                         # outage under load
        redis_server.start()                    # the same port
        reseed(redis_server.client(), key, data)
    finally:
        res = w.result()
    print(res.output)
    # Meanwhile: 200 before and after, 503 (fail closed) during; a request that reached the
    # restarted Redis just before the record was written back may see no session (403).
    assert set(res.statuses) <= {200, 503, 403}, res.statuses
    assert res.statuses.get(503, 0) > 0, f"the outage was not observed: {res.statuses}"
    assert res.statuses.get(200, 0) > 0, res.statuses
    assert res.statuses.get(403, 0) <= 50, res.statuses
    assert res.socket_errors == 0, res.output
    # recovery without reload
    assert helpers.poll(lambda: app_ok(srv, value), 3.0), whoami(srv, value)
    for _ in range(20):
        assert app_ok(srv, value)
    assert_no_crash(srv, before)
    assert srv.grep_log("[error]", mark), "the outage was not logged"


@pytest.mark.parametrize("workers", [1, 2])
def test_redis_paused_under_load(nginx, redis_server, wrk_bin, tmp_path, workers):
    srv = nginx(conf("redis", "session_redis_timeout 200ms;"), workers=workers,
                rport=redis_server.port)
    value = login(srv)
    assert app_ok(srv, value)
    master = srv.pid
    before = H.wait_workers(master, workers)
    w = start_wrk(srv, value, tmp_path, duration=4.0)
    try:
        time.sleep(1.0)
        redis_server.pause()                    # SIGSTOP: connections open, nothing answered
        time.sleep(0.3)
        # fail closed: 503 with Retry-After, and the client's cookie is left alone
        t = time.monotonic()
        r = helpers.http_request(srv.port, "/app", [("Cookie", "session=" + value)])
        took = time.monotonic() - t
        assert r.status == 503, (r.status, r.text)
        assert r.header("Retry-After") == "1", r.headers
        assert cookie_named(r, "session") is None, r.set_cookies
        assert took < 1.5, f"a request waited {took:.2f}s with session_redis_timeout 200ms"
        time.sleep(1.0)
    finally:
        redis_server.resume()
        res = w.result()
    print(res.output)
    assert set(res.statuses) <= {200, 503}, res.statuses
    assert res.statuses.get(503, 0) > 0, res.statuses
    assert res.socket_errors == 0, res.output
    assert helpers.poll(lambda: app_ok(srv, value), 3.0), whoami(srv, value)
    for _ in range(20):
        assert app_ok(srv, value)
    assert_no_crash(srv, before)


# ---------------------------------------------------------------------------------------------
# File descriptors and Redis connections
# ---------------------------------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"
LOGIN_LOCATIONS = LOCATIONS + r"""
    location = /signin {
        session_login;
        session_login_page /login.shtml;
        session_login_user_file {prefix}/users;
        session_login_redirect /app;
    }
    location = /login.shtml { internal; ssi on; default_type text/html; }
    location = /signout { session_logout /; }
"""


def sha_line(user, password):
    import base64
    import hashlib
    return f"{user}:{{SHA}}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def settle(fn, target, timeout=3.0):
    """Polls fn() until it is <= target (connections of finished clients are closed by the
    server when it sees their FIN); returns the last value."""
    return helpers.poll(fn, timeout, until=lambda v: v <= target)


def traffic(srv, value: str, tmp_path, rng: random.Random, n_mut: int = 500):
    """Thousands of requests of every kind: wrk with the session, tampered cookies, session
    writes and deletes, form logins and logouts."""
    w = start_wrk(srv, value, tmp_path, duration=2.0)
    try:
        c = H.KeepAlive(srv.port)
        mut = H.Mutator(rng, [value])
        for _ in range(n_mut):
            _, _, header = mut.one()
            r = c.request("/whoami", [("Cookie", header)])
            assert r.status == 200 and "status=valid" not in r.text, r.text
        for i in range(100):
            r = c.request(f"/login?u=u{i}")
            v = cookie_value(cookie_named(r, "session"))
            r = c.request("/app", [("Cookie", "session=" + v)])
            assert r.status == 200, r.text
            r = c.request("/logout", [("Cookie", "session=" + v)])
            assert r.status == 200
        # session_login form logins (Redis write before the 303) and logouts
        for i in range(20):
            r = c.request("/signin")
            assert r.status == 200, r.text
            csrf = cookie_value(cookie_named(r, "session_csrf"))
            token = r.text.split('value="', 1)[1].split('"', 1)[0]
            body = urllib.parse.urlencode({"username": "alice", "password": "pw",
                                           "csrf_token": token}).encode()
            r = c.request("/signin", [("Cookie", "session_csrf=" + csrf),
                                      ("Content-Type", FORM)], "POST", body)
            assert r.status == 303, (r.status, r.text)
            v = cookie_value(cookie_named(r, "session"))
            r = c.request("/signout", [("Cookie", "session=" + v)])
            assert r.status == 303
        c.close()
    finally:
        res = w.result()
    assert res.requests > 1000 and set(res.statuses) == {200}, res.output
    return res.requests


def test_no_fd_or_redis_connection_growth(nginx, redis_server, wrk_bin, tmp_path):
    srv = nginx(server_conf(LOGIN_LOCATIONS,
                            "session_store redis; session_redis 127.0.0.1:{rport};"),
                workers=1, rport=redis_server.port,
                files={"users": sha_line("alice", "pw"),
                       "html/login.shtml": '<input name="csrf_token" '
                                           'value="<!--# echo var="session_csrf_token" -->">'})
    rng = random.Random(int(os.environ.get("HARDENING_SEED", "20240606")) + 40)
    master = srv.pid
    admin = redis_server.client()     # one connection of our own, kept for the whole test
    value = login(srv)

    def warm():
        for _ in range(20):
            assert app_ok(srv, value)

    def snapshot():
        worker = H.wait_workers(master, 1)[0]
        warm()
        f_w = settle(lambda: H.fd_count(worker), 0, timeout=0.3)
        return worker, f_w, H.fd_count(master), H.connected_clients(admin)

    worker, fd0, mfd0, cl0 = snapshot()
    base_listing = H.fd_listing(worker)
    assert cl0 == 2, f"expected the worker's connection and ours, got {cl0}"
    total = 0

    def check(stage):
        w, f_w, m_fd, clients = snapshot()
        f_w = settle(lambda: H.fd_count(w), fd0 + SLACK)
        clients = settle(lambda: H.connected_clients(admin), cl0 + SLACK)
        problems = []
        if f_w > fd0 + SLACK:
            problems.append(f"worker fds {fd0} -> {f_w}:\n  before " + "\n  ".join(base_listing)
                            + "\n  after " + "\n  ".join(H.fd_listing(w)))
        if m_fd > mfd0 + SLACK:
            problems.append(f"master fds {mfd0} -> {m_fd}: " + "; ".join(H.fd_listing(master)))
        if clients > cl0 + SLACK:
            problems.append(f"redis connected_clients {cl0} -> {clients}: "
                            f"{admin.client_list()}")
        assert not problems, f"after {stage} ({total} requests):\n" + "\n".join(problems)

    # 1. thousands of requests of every kind
    total += traffic(srv, value, tmp_path, rng)
    check("traffic")

    # 2. reloads (each generation opens its own Redis connection; old ones must go away)
    for _ in range(3):
        srv.reload()
        warm()
    total += traffic(srv, value, tmp_path, rng, n_mut=100)
    check("reloads")

    # 3. a Redis restart (SIGKILL, same port): the worker reconnects, nothing piles up
    key = "session:" + H.id_hex(value)
    data = admin.hgetall(key)
    redis_server.kill()
    for _ in range(50):   # requests during the outage (503)
        r = helpers.http_request(srv.port, "/app", [("Cookie", "session=" + value)])
        assert r.status == 503, r.status
    redis_server.start()
    admin = redis_server.client()
    reseed(admin, key, data)
    assert helpers.poll(lambda: app_ok(srv, value), 3.0), whoami(srv, value)
    cl0 = 2   # the new server: the worker's connection and ours
    total += traffic(srv, value, tmp_path, rng, n_mut=100)
    check("redis restart")

    # 4. once more, to see a trend
    total += traffic(srv, value, tmp_path, rng, n_mut=100)
    check("a second round")
    assert_no_crash(srv)
    print(f"{total} requests; worker fds {fd0}, master fds {mfd0}, redis clients {cl0}")
