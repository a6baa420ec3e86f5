"""Redis records v2 and the connection layer's promises (issue 10), with a standalone Redis.

- A record is a hash updated key by key: two requests of one session that change different keys
  at the same time both keep their change.
- v1 records (one JSON string) are read as they are and converted to v2 on read; a mix of both
  works.
- Every command honours its own location's session_redis_timeout, also behind a slower one.
- During a Redis stall, per-request failure lines are rate-limited.
"""

import json
import os
import signal
import threading
import time

import pytest

import helpers
from conftest import LoopbackHTTPServer
from helpers import cookie_named
from redis_support import (REDIS_LOCATIONS, cookie_header, craft_id_cookie, id_of,
                           redis_snippet, session_cookie_value)

LOCS = REDIS_LOCATIONS + r"""
    location = /slow-a { session_set a $arg_v; proxy_pass http://127.0.0.1:{uport}/; }
    location = /set-b { session_set b $arg_v; return 200 "b set\n"; }
    location = /ab { return 200 "a=[$session_a] b=[$session_b] user=[$session_user]\n"; }
    location = /fast { session_redis_timeout 150ms; return 200 "fast [$session_user]\n"; }
    location = /patient { session_redis_timeout 3s; return 200 "patient [$session_user]\n"; }
"""


class SlowUpstream(LoopbackHTTPServer):
    def __init__(self, delay):
        self.delay = delay
        super().__init__()

    def answer(self, handler, body):
        time.sleep(self.delay)
        return 200, [("Content-Type", "text/plain")], b"slow\n"


def start(nginx, rd, extra="", uport=1, **kw):
    return nginx(redis_snippet("127.0.0.1:{rport}", LOCS, extra), rport=rd.port, uport=uport,
                 **kw)


def login(srv, user="alice"):
    r = srv.get(f"/login?u={user}")
    assert r.status_code == 200, r.text
    return session_cookie_value(r)


def test_record_is_a_hash_of_json_values(nginx, redis_server):
    srv = start(nginx, redis_server)
    admin = redis_server.client()
    value = login(srv)
    key = "session:" + id_of(value)
    assert admin.type(key) == b"hash"
    assert admin.hgetall(key) == {b"user": b'"alice"'}
    srv.get("/name?v=waws", headers=cookie_header(value))
    assert admin.hgetall(key) == {b"user": b'"alice"', b"name": b'"waws"'}
    srv.get("/pop", headers=cookie_header(value))
    assert admin.hgetall(key) == {b"user": b'"alice"'}
    assert 0 < admin.ttl(key) <= 31 * 86400


def test_concurrent_changes_of_different_keys_both_survive(nginx, redis_server):
    up = SlowUpstream(0.8)
    try:
        srv = start(nginx, redis_server, uport=up.port)
        value = login(srv)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", srv.get("/slow-a?v=1", headers=cookie_header(value), timeout=10)))
        t.start()
        time.sleep(0.2)   # the slow request has loaded the session (without b)
        assert srv.get("/set-b?v=2", headers=cookie_header(value)).status_code == 200
        t.join(10)
        assert out["r"].status_code == 200
        assert srv.get("/ab", headers=cookie_header(value)).text == "a=[1] b=[2] user=[alice]\n"
    finally:
        up.close()


def test_v1_records_are_read_and_converted(nginx, redis_server):
    srv = start(nginx, redis_server)
    admin = redis_server.client()
    sid = os.urandom(16)
    key = "session:" + sid.hex()
    admin.set(key, json.dumps({"user": "bob", "n": 3, "tags": ["x"]}), ex=900)
    value = craft_id_cookie(srv.secrets[0], sid)
    r = srv.get("/whoami", headers=cookie_header(value))
    assert r.text.startswith("status=valid user=bob"), r.text
    assert helpers.poll(lambda: admin.type(key) == b"hash", 2.0), admin.type(key)
    assert admin.hgetall(key) == {b"user": b'"bob"', b"n": b"3", b"tags": b'["x"]'}
    assert 880 <= admin.ttl(key) <= 900   # the TTL is kept
    # and it goes on working as v2
    srv.get("/name?v=w", headers=cookie_header(value))
    assert admin.hget(key, "name") == b'"w"'
    # a v1 record next to v2 ones
    other = os.urandom(16)
    admin.set("session:" + other.hex(), json.dumps({"user": "carol"}), ex=900)
    r = srv.get("/whoami", headers=cookie_header(craft_id_cookie(srv.secrets[0], other)))
    assert r.text.startswith("status=valid user=carol")


def test_every_command_honours_its_own_timeout(nginx, redis_server):
    """A 150 ms location is answered in about 150 ms even when a 3 s command of another
    location is ahead of it on the same connection."""
    srv = start(nginx, redis_server)
    value = login(srv)
    pid = redis_server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", srv.get("/patient", headers=cookie_header(value), timeout=10)))
        t.start()
        time.sleep(0.1)   # the 3 s lookup is now first on the connection
        t0 = time.monotonic()
        r = srv.get("/fast", headers=cookie_header(value), timeout=10)
        took = time.monotonic() - t0
        assert r.status_code == 503 and took < 1.0, (r.status_code, took)
    finally:
        os.kill(pid, signal.SIGCONT)
    t.join(10)
    assert out["r"].status_code == 200 and out["r"].text == "patient [alice]\n", out["r"].text


def test_a_stall_logs_one_failure_line_a_second(nginx, redis_server):
    srv = start(nginx, redis_server, "session_redis_timeout 100ms;")
    value = login(srv)
    pid = redis_server.proc.pid
    mark = srv.log_mark()
    os.kill(pid, signal.SIGSTOP)
    try:
        from concurrent.futures import ThreadPoolExecutor
        t0 = time.monotonic()
        with ThreadPoolExecutor(20) as ex:
            codes = list(ex.map(lambda _: srv.get("/whoami", headers=cookie_header(value),
                                                  timeout=10).status_code, range(200)))
        elapsed = time.monotonic() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert set(codes) == {503}
    lines = [l for l in srv.log_since(mark) if "[error]" in l and "lookup failed" in l]
    assert len(lines) <= int(elapsed) + 2, (len(lines), elapsed, lines[:5])


def test_a_lookup_that_failed_under_the_servers_timeout_is_retried(nginx, redis_server):
    """The server-level lookup runs with the server's timeout (200 ms); a location that allows
    3 s reads the session again with its own, instead of inheriting the failure."""
    srv = start(nginx, redis_server)
    value = login(srv)
    pid = redis_server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    threading.Timer(0.8, lambda: os.kill(pid, signal.SIGCONT)).start()
    r = srv.get("/patient", headers=cookie_header(value), timeout=10)
    assert r.status_code == 200 and r.text == "patient [alice]\n", (r.status_code, r.text)
