"""Review: Sentinel client against fake sentinels (a real redis-server as the master).

1. Before the first discovery answer (worker start, every reload) cl->master is nullptr and
   redis_send() fails at once (route() -> nullptr -> "unavailable"): requests get 503 although
   the master would be known well within their session_redis_timeout. (Cluster, by contrast,
   queues on a seed and follows MOVED.)
2. Hostile +switch-master messages (other names, malformed, host names, port 0) are ignored
   and the session keeps being served; an IPv6 master works."""

import os
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fake_redis import FakeRedis, array, bulk, read_command_timeout, _Closed  # noqa: E402
from redis_support import cookie_header, redis_snippet, seed  # noqa: E402

LOC = r"""
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
"""


def fake_sentinel(master_addr, delay=0.0, pushes=None):
    """master_addr() -> (host, port). pushes: list of payloads published on +switch-master once
    the subscriber is there."""
    def handler(conn, fake):
        conn.settimeout(0.2)
        buf = b""
        while not fake.stopped:
            try:
                args, buf = read_command_timeout(conn, buf, fake)
            except _Closed:
                return
            if args is None:
                continue
            fake.commands.append(args)
            cmd = args[0].upper()
            if cmd == b"SENTINEL":
                time.sleep(delay)
                h, p = master_addr()
                conn.sendall(array([bulk(h), bulk(str(p))]))
            elif cmd == b"SUBSCRIBE":
                conn.sendall(array([bulk("subscribe"), bulk(args[1]), b":1\r\n"]))
                for p in pushes or []:
                    time.sleep(0.05)
                    conn.sendall(array([bulk("message"), bulk("+switch-master"), bulk(p)]))
            else:
                conn.sendall(b"+OK\r\n")
    return handler


def test_requests_right_after_start_are_refused_before_discovery(nginx, redis_server):
    # A sentinel that takes 150 ms to answer (remote, busy); the location allows 1 s.
    sentinel = FakeRedis(fake_sentinel(lambda: ("127.0.0.1", redis_server.port), delay=0.15))
    try:
        srv = nginx(redis_snippet(f"sentinel=mymaster {sentinel.address}", LOC,
                                  "session_redis_timeout 1s;"))
        value, _, _ = seed(redis_server.admin(), {"user": "alice"}, srv.secrets[0])
        r = srv.get("/whoami", headers=cookie_header(value))
        print("first request after start:", r.status_code, r.text.strip())
        assert r.status_code == 200 and "user=alice" in r.text, \
            f"refused while discovery was under way: {r.status_code}"
    finally:
        sentinel.stop()


@pytest.mark.parametrize("payload", [
    "othermaster 127.0.0.1 1 127.0.0.1 2",           # another master name
    "mymaster 127.0.0.1 1 localhost 6379",           # a host name
    "mymaster 127.0.0.1 1 127.0.0.1 0",              # port 0
    "mymaster 127.0.0.1 1 127.0.0.1 99999",          # port out of range
    "mymaster 127.0.0.1 1 127.0.0.1",                # too short
    "mymaster  127.0.0.1 1 127.0.0.1 2",             # empty field
    "mymaster 127.0.0.1 1 127.0.0.1 2 extra",        # too long
    "mymaster 127.0.0.1 1 1.2.3.4\r\n 2",            # control bytes
])
def test_hostile_switch_master_ignored(nginx, redis_server, payload):
    sentinel = FakeRedis(fake_sentinel(lambda: ("127.0.0.1", redis_server.port), pushes=[payload]))
    try:
        srv = nginx(redis_snippet(f"sentinel=mymaster {sentinel.address}", LOC,
                                  "session_redis_timeout 1s;"))
        value, _, _ = seed(redis_server.admin(), {"user": "alice"}, srv.secrets[0])
        time.sleep(1.0)
        r = srv.get("/whoami", headers=cookie_header(value))
        assert r.status_code == 200 and "user=alice" in r.text, r.text
        assert not srv.grep_log("master is 127.0.0.1:2")
    finally:
        sentinel.stop()


def test_ipv6_master(nginx, redis_factory):
    rd = redis_factory(extra=["--bind", "127.0.0.1", "::1"])
    sentinel = FakeRedis(fake_sentinel(lambda: ("::1", rd.port)))
    try:
        srv = nginx(redis_snippet(f"sentinel=mymaster {sentinel.address}", LOC,
                                  "session_redis_timeout 1s;"))
        import redis as redis_py
        admin = redis_py.Redis(host="::1", port=rd.port)
        value, _, _ = seed(admin, {"user": "alice"}, srv.secrets[0])
        time.sleep(0.5)
        r = srv.get("/whoami", headers=cookie_header(value))
        print(r.status_code, r.text, srv.grep_log("master is"))
        assert r.status_code == 200 and "user=alice" in r.text, r.text
    finally:
        sentinel.stop()



def test_disagreeing_sentinels_make_the_master_flap(nginx, redis_factory):
    """Two sentinels that disagree (one stale, or one watching another deployment under the same
    name): the poll asks them in turn every 5 s and set_master() follows each answer, so the
    master flips between the two every poll and sessions come and go. (Observation: no quorum
    or ROLE-epoch check decides between them; each flip also fails the commands in flight.)"""
    a = redis_factory()
    b = redis_factory()
    s1 = FakeRedis(fake_sentinel(lambda: ("127.0.0.1", a.port)))
    s2 = FakeRedis(fake_sentinel(lambda: ("127.0.0.1", b.port)))
    try:
        srv = nginx(redis_snippet(f"sentinel=mymaster {s1.address} {s2.address}", LOC,
                                  "session_redis_timeout 1s;"))
        value, _, _ = seed(a.admin(), {"user": "alice"}, srv.secrets[0])
        seen = []
        t_end = time.monotonic() + 12
        while time.monotonic() < t_end:
            r = srv.get("/whoami", headers=cookie_header(value))
            v = "alice" if "user=alice" in r.text else r.text.split()[0]
            if not seen or seen[-1] != v:
                seen.append(v)
            time.sleep(0.2)
        flips = srv.grep_log("master is")
        print("answers:", seen, "| master lines:", len(flips))
        assert len(flips) <= 1, f"master flipped {len(flips)} times in 12 s: {seen}"
    finally:
        s1.stop()
        s2.stop()
