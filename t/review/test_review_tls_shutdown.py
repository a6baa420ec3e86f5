"""Review: TLS handshake stalls and failures, fds under repeated TLS failures, graceful
shutdown and reload with Redis hanging and commands in flight."""

import os
import signal
import socket
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fake_redis import FakeRedis  # noqa: E402
from redis_support import cookie_header, craft_id_cookie, redis_snippet, seed, worker_fds  # noqa: E402

LOC = r"""
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
    location = /name   { session_set name $arg_v; return 200 "set\n"; }
"""


def silent(conn, fake):
    """Accepts and never answers (a TLS handshake that stalls)."""
    while not fake.stopped:
        time.sleep(0.1)


def garbage(conn, fake):
    """Answers the ClientHello with bytes that are not TLS, then closes."""
    try:
        conn.recv(4096)
        conn.sendall(b"-ERR not tls\r\n" * 10)
    except OSError:
        pass


def one_worker(srv):
    for _ in range(100):
        w = srv.worker_pids()
        if w:
            return next(iter(w))
        time.sleep(0.05)
    raise AssertionError("no worker")


@pytest.mark.parametrize("timeout_ms", [150, 300])
def test_tls_handshake_stall_answered_within_timeout(nginx, timeout_ms):
    fake = FakeRedis(silent)
    try:
        srv = nginx(redis_snippet(fake.address, LOC,
                                  f"session_redis_timeout {timeout_ms}ms;\n"
                                  "    session_redis_tls on;\n    session_redis_tls_verify off;"))
        value = craft_id_cookie(srv.secrets[0], os.urandom(16))
        for i in range(3):
            t0 = time.monotonic()
            r = srv.get("/whoami", headers=cookie_header(value), timeout=10)
            took = time.monotonic() - t0
            print(i, r.status_code, f"{took:.3f}s")
            assert r.status_code == 503
            assert took < timeout_ms / 1000 + 0.5, f"answered after {took:.2f}s"
    finally:
        fake.stop()


def test_fds_stable_under_tls_failures(nginx):
    fake = FakeRedis(garbage)
    try:
        srv = nginx(redis_snippet(fake.address, LOC,
                                  "session_redis_timeout 200ms;\n"
                                  "    session_redis_tls on;\n    session_redis_tls_verify off;"),
                    log_level="error")
        srv.allowed_bad_log.append(r"SSL_do_handshake\(\) failed")
        w = one_worker(srv)
        value = craft_id_cookie(srv.secrets[0], os.urandom(16))
        time.sleep(1.0)
        fds0 = worker_fds(w)
        for _ in range(60):
            srv.get("/whoami", headers=cookie_header(value), timeout=10)
            time.sleep(0.05)
        time.sleep(1.0)
        fds1 = worker_fds(w)
        print("attempts", fake.connections, "fds", fds0, fds1)
        assert fake.connections >= 3
        assert fds1 <= fds0 + 2, f"fd leak: {fds0} -> {fds1}"
    finally:
        fake.stop()


def test_quit_and_reload_with_redis_hanging(nginx, redis_server):
    admin = redis_server.admin()
    srv = nginx(redis_snippet("127.0.0.1:{rport}", LOC, "session_redis_timeout 500ms;"),
                rport=redis_server.port)
    value, _, _ = seed(admin, {"user": "alice"}, srv.secrets[0])
    assert "user=alice" in srv.get("/whoami", headers=cookie_header(value)).text
    old = srv.worker_pids()
    redis_server.pause()
    try:
        with ThreadPoolExecutor(8) as ex:
            futs = [ex.submit(srv.get, "/whoami" if i % 2 else "/name?v=x",
                              headers=cookie_header(value), timeout=10) for i in range(8)]
            time.sleep(0.1)
            t0 = time.monotonic()
            srv.reload()
            took = time.monotonic() - t0
            codes = [f.result().status_code for f in futs]
        print("reload took", took, codes)
        assert took < 3, f"old workers took {took:.1f}s to exit"
        assert set(codes) <= {503}, codes
    finally:
        redis_server.resume()
    # quit with a request in flight and Redis hanging
    redis_server.pause()
    try:
        with ThreadPoolExecutor(2) as ex:
            fut = ex.submit(srv.get, "/whoami", headers=cookie_header(value), timeout=10)
            time.sleep(0.1)
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGQUIT)
            srv.proc.wait(10)
            took = time.monotonic() - t0
            code = fut.result().status_code
        print("quit took", took, code)
        assert code == 503 and took < 3
    finally:
        redis_server.resume()
