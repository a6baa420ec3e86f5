"""Review: hostile or malformed replies from a (fake) standalone Redis. Each case: the lookup
of a correctly signed id cookie must be answered within session_redis_timeout (300 ms) plus
slack, with 503 (store_fail closed) or the session, the worker must survive, and a later
request must work once the server behaves."""

import os
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fake_redis import FakeRedis, array, bulk, read_command_timeout, _Closed  # noqa: E402
from redis_support import cookie_header, craft_id_cookie, redis_snippet  # noqa: E402

LOC = r"""
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
"""
TIMEOUT = 0.3
SLACK = 1.0

GOOD = array([bulk("user"), bulk('"alice"')])


def hostile(behaviour):
    """A handler: answers every command +OK / a good record, except that the first HGETALL
    gets behaviour(conn) instead (which may write anything and block, bounded)."""
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
            if args[0].upper() == b"HGETALL":
                if not getattr(fake, "used", False):
                    fake.used = True
                    behaviour(conn, fake)
                    return          # close after the hostile act
                conn.sendall(GOOD)
            else:
                conn.sendall(b"+OK\r\n")
    return handler


def slow(data, delay, fake):
    for i in range(len(data)):
        if fake.stopped:
            return
        yield data[i:i + 1]
        time.sleep(delay)


def b_huge_bulk(conn, fake):
    conn.sendall(b"$536870912\r\n" + b"x" * 1000)
    time.sleep(3)


def b_endless_array(conn, fake):
    try:
        conn.sendall(b"*2147483647\r\n")
        for _ in range(2000):
            if fake.stopped:
                return
            conn.sendall(b"*2147483647\r\n" * 100)
            time.sleep(0.001)
    except OSError:
        pass


def b_deep_nesting(conn, fake):
    conn.sendall(b"*1\r\n" * 100000 + b":1\r\n")
    time.sleep(1)


def b_negative_len(conn, fake):
    conn.sendall(b"$-5\r\n")
    time.sleep(1)


def b_resp3_map(conn, fake):
    conn.sendall(b"%1\r\n$4\r\nuser\r\n$7\r\n\"alice\"\r\n")
    time.sleep(1)


def b_slowloris(conn, fake):
    for ch in slow(GOOD, 1.0, fake):
        try:
            conn.sendall(ch)
        except OSError:
            return


def b_never_answers(conn, fake):
    time.sleep(3)


def b_unsolicited_first(conn, fake):
    conn.sendall(b"+PONG\r\n" + GOOD)
    time.sleep(1)


def b_error(conn, fake):
    conn.sendall(b"-ERR something\r\n")
    time.sleep(1)


def b_long_line(conn, fake):
    conn.sendall(b"+" + b"a" * (1 << 20) + b"\r\n")
    time.sleep(1)


CASES = {
    "huge_bulk": b_huge_bulk,
    "endless_array": b_endless_array,
    "deep_nesting": b_deep_nesting,
    "negative_len": b_negative_len,
    "resp3_map": b_resp3_map,
    "slowloris": b_slowloris,
    "never_answers": b_never_answers,
    "unsolicited_first": b_unsolicited_first,
    "error": b_error,
    "long_line": b_long_line,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_reply(nginx, case):
    fake = FakeRedis(hostile(CASES[case]))
    try:
        srv = nginx(redis_snippet(f"{fake.address}", LOC,
                                  f"session_redis_timeout {int(TIMEOUT * 1000)}ms;"))
        workers = set()
        for _ in range(50):
            workers = srv.worker_pids()
            if workers:
                break
            time.sleep(0.05)
        value = craft_id_cookie(srv.secrets[0], os.urandom(16))
        t0 = time.monotonic()
        r = srv.get("/whoami", headers=cookie_header(value), timeout=10)
        took = time.monotonic() - t0
        print(case, r.status_code, repr(r.text), f"{took:.2f}s")
        assert took < TIMEOUT + SLACK, f"{case}: answered after {took:.2f}s"
        assert r.status_code in (200, 503)
        if r.status_code == 200:
            assert "user=alice" in r.text or "status=invalid" in r.text
        # The server behaves from now on: service resumes, the worker is the same one.
        deadline = time.monotonic() + 4
        ok = None
        while time.monotonic() < deadline:
            ok = srv.get("/whoami", headers=cookie_header(value), timeout=5)
            if ok.status_code == 200:
                break
            time.sleep(0.2)
        assert ok.status_code == 200 and "user=alice" in ok.text, ok.text
        assert srv.worker_pids() == workers, "the worker died"
        assert not srv.grep_log("exited on signal")
    finally:
        fake.stop()


def test_byte_by_byte_reply(nginx):
    """A correct reply delivered one byte at a time (5 ms apart) is still parsed right."""
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
            out = GOOD if args[0].upper() == b"HGETALL" else b"+OK\r\n"
            for ch in slow(out, 0.005, fake):
                conn.sendall(ch)
    fake = FakeRedis(handler)
    try:
        srv = nginx(redis_snippet(f"{fake.address}", LOC, "session_redis_timeout 2s;"))
        value = craft_id_cookie(srv.secrets[0], os.urandom(16))
        r = srv.get("/whoami", headers=cookie_header(value), timeout=10)
        assert r.status_code == 200 and "user=alice" in r.text, r.text
    finally:
        fake.stop()
