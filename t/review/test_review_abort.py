"""Review: clients that go away while their Redis command is in flight (lookup, held write,
SSI subrequests waiting on one lookup, a timed-out command whose reply arrives later). Run with
the ASan build to catch use-after-free:

  NGINX_BIN=build/asan/sbin/nginx ASAN_OPTIONS=detect_leaks=0:log_path=/tmp/rv-asan/asan \\
    /usr/bin/python3 -m pytest -q -p no:cacheprovider t/review/test_review_abort.py

With any binary: the worker must survive, and the next requests work."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from fake_redis import FakeRedis, array, bulk, read_command_timeout, _Closed  # noqa: E402
from redis_support import cookie_header, craft_id_cookie, redis_snippet  # noqa: E402

GOOD = array([bulk("user"), bulk('"alice"')])

LOC = r"""
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
    location = /name   { session_set name $arg_v; return 200 "set\n"; }
    location = /regen  { session_regenerate; return 200 "regen\n"; }
    location = /page   { ssi on; default_type text/html;
                         return 200 '<!--# include virtual="/part1" --><!--# include virtual="/part2" --><!--# echo var="session_user" -->'; }
    location = /part1  { return 200 "[$session_user]"; }
    location = /part2  { return 200 "{$session_user}"; }
"""


def delayed(delays):
    """Answers after delays[cmd] seconds (per command, in order on the connection)."""
    def handler(conn, fake):
        conn.settimeout(0.05)
        buf = b""
        pending = []
        while not fake.stopped:
            try:
                args, buf = read_command_timeout(conn, buf, fake)
            except _Closed:
                return
            now = time.monotonic()
            if args is not None:
                fake.commands.append(args)
                cmd = args[0].upper()
                out = GOOD if cmd == b"HGETALL" else (b":1\r\n" if cmd in (b"EVAL", b"DEL", b"EXPIRE")
                                                       else b"+OK\r\n")
                due = max([now + delays.get(cmd, 0.0)] + [p[0] for p in pending])
                pending.append((due, out))
            while pending and pending[0][0] <= time.monotonic():
                conn.sendall(pending.pop(0)[1])
    return handler


def abort_after(port, path, cookie, delay):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nCookie: session={cookie}\r\n\r\n".encode())
    time.sleep(delay)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()   # RST


def check_alive(srv, value, workers):
    r = srv.get("/whoami", headers=cookie_header(value), timeout=10)
    assert r.status_code in (200, 503), r.status_code
    assert srv.worker_pids() == workers, "a worker died"
    assert not srv.grep_log("exited on signal")


def workers_of(srv):
    for _ in range(100):
        w = srv.worker_pids()
        if w:
            return w
        time.sleep(0.05)


def run(nginx, delays, paths, timeout="2s", rounds=20):
    fake = FakeRedis(delayed(delays))
    try:
        srv = nginx(redis_snippet(fake.address, LOC, f"session_redis_timeout {timeout};"),
                    workers=1)
        workers = workers_of(srv)
        value = craft_id_cookie(srv.secrets[0], os.urandom(16))
        threads = []
        for i in range(rounds):
            for p in paths:
                t = threading.Thread(target=abort_after,
                                     args=(srv.port, p, value, 0.02 + 0.01 * (i % 5)))
                t.start()
                threads.append(t)
        for t in threads:
            t.join(10)
        time.sleep(max(delays.values()) + 0.5)   # the replies of the cancelled commands arrive
        check_alive(srv, value, workers)
    finally:
        fake.stop()


def test_abort_during_lookup(nginx):
    run(nginx, {b"HGETALL": 0.3}, ["/whoami", "/page"])


def test_abort_during_held_write(nginx):
    run(nginx, {b"EVAL": 0.3, b"DEL": 0.3}, ["/name?v=1", "/regen"])


def test_abort_after_timeout_reply_later(nginx):
    # the command times out (100 ms), the client goes away, the reply arrives at 400 ms
    run(nginx, {b"HGETALL": 0.4, b"EVAL": 0.4}, ["/whoami", "/name?v=2", "/page"],
        timeout="100ms")
