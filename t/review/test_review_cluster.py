"""Review: Redis Cluster client against fake cluster nodes.

1. A node that leaves the slot map stays keep_connected forever (client.cpp on_slots()/op_reply()
   set keep_connected = true and nothing ever clears it): after a scale-in, every worker keeps
   reconnecting to the removed node (about once a second, an error line every 10 s) until reload.
2. MOVED to any address makes a permanent node (op_reply: node_for + keep_connected = true,
   SlotMap::move adds it to the map): a node answering MOVED to ever new ports makes the worker
   keep ever more peers, each reconnected forever.
3. MOVED ping-pong between two nodes is bounded (kMaxRedirects) and answered in time."""

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
GOOD = array([bulk("user"), bulk('"alice"')])


def slots_reply(ranges):
    """ranges: [(first, last, port)] on 127.0.0.1."""
    return array([array([b":%d\r\n" % f, b":%d\r\n" % l,
                         array([bulk("127.0.0.1"), b":%d\r\n" % p, bulk("id%d" % p)])])
                  for f, l, p in ranges])


def node(answer):
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
            out = answer(args, fake)
            if out is None:
                return
            conn.sendall(out)
    return handler


def test_node_removed_from_map_is_reconnected_forever(nginx):
    state = {"with_b": True}

    def closer(conn, fake):  # B: accepts and closes at once (a node being taken down)
        return

    b = FakeRedis(closer)

    def a_answer(args, fake):
        if args[0].upper() == b"CLUSTER":
            if state["with_b"]:
                return slots_reply([(0, 8191, fake.port), (8192, 16383, b.port)])
            return slots_reply([(0, 16383, fake.port)])
        if args[0].upper() == b"HGETALL":
            return GOOD
        return b"+OK\r\n"

    a = FakeRedis(node(a_answer))
    try:
        srv = nginx(redis_snippet(f"cluster {a.address}", LOC))
        time.sleep(1.0)
        state["with_b"] = False          # B leaves the cluster: the map no longer names it
        time.sleep(3.0)                  # refreshes (on B's loss, at most 1/s) see the new map
        assert any(c[0].upper() == b"CLUSTER" for c in a.commands)
        before = b.connections
        time.sleep(5.0)
        extra = b.connections - before
        print(f"connections to the removed node in 5 s after it left the map: {extra}")
        assert extra == 0, f"a node outside the slot map is reconnected forever ({extra} in 5 s)"
    finally:
        a.stop()
        b.stop()


def test_moved_to_ever_new_addresses_makes_permanent_peers(nginx):
    """Each lookup gets MOVED to a new port on 127.0.0.1 where a counting listener accepts;
    the worker keeps a connection to every one of them after the requests are over."""
    listeners = [FakeRedis(node(lambda args, fake: b"-MOVED 1 127.0.0.1:1\r\n"))
                 for _ in range(40)]
    it = iter(listeners)

    def seed_answer(args, fake):
        if args[0].upper() == b"CLUSTER":
            return slots_reply([(0, 16383, fake.port)])
        if args[0].upper() == b"HGETALL":
            try:
                nxt = next(it)
            except StopIteration:
                return GOOD
            return b"-MOVED %d 127.0.0.1:%d\r\n" % (0, nxt.port)
        return b"+OK\r\n"

    seed = FakeRedis(node(seed_answer))
    try:
        srv = nginx(redis_snippet(f"cluster {seed.address}", LOC, "session_redis_timeout 1s;"))
        time.sleep(0.5)
        for i in range(8):
            value = craft_id_cookie(srv.secrets[0], os.urandom(16))
            srv.get("/whoami", headers=cookie_header(value), timeout=10)
        time.sleep(2.5)   # map refreshes: the seed says it alone serves every slot
        (worker,) = srv.worker_pids()
        socks = 0
        ports = {l.port for l in listeners}
        peers = set()
        for line in open(f"/proc/{worker}/net/tcp").read().splitlines()[1:]:
            f = line.split()
            rport = int(f[2].split(":")[1], 16)
            if rport in ports and f[3] == "01":
                peers.add(rport)
        print(f"worker holds connections to {len(peers)} MOVED-only peers")
        assert len(peers) <= 1, f"{len(peers)} peers named only by MOVED kept open"
    finally:
        seed.stop()
        for l in listeners:
            l.stop()


def test_moved_ping_pong_bounded(nginx):
    holder = {}

    def a_answer(args, fake):
        if args[0].upper() == b"CLUSTER":
            return slots_reply([(0, 16383, fake.port)])
        if args[0].upper() == b"HGETALL":
            return b"-MOVED 0 127.0.0.1:%d\r\n" % holder["b"].port
        return b"+OK\r\n"

    def b_answer(args, fake):
        if args[0].upper() == b"HGETALL":
            return b"-MOVED 0 127.0.0.1:%d\r\n" % holder["a"].port
        return b"+OK\r\n"

    holder["a"] = FakeRedis(node(a_answer))
    holder["b"] = FakeRedis(node(b_answer))
    try:
        srv = nginx(redis_snippet(f"cluster {holder['a'].address}", LOC,
                                  "session_redis_timeout 2s;"))
        time.sleep(0.5)
        value = craft_id_cookie(srv.secrets[0], os.urandom(16))
        t0 = time.monotonic()
        r = srv.get("/whoami", headers=cookie_header(value), timeout=10)
        took = time.monotonic() - t0
        print(r.status_code, r.text, took)
        assert r.status_code == 503 and took < 1.5
    finally:
        holder["a"].stop()
        holder["b"].stop()
