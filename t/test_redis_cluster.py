"""session_redis cluster (issue 10): three masters (--cluster-enabled yes, joined by redis-cli
--cluster create) started by the suite on 127.0.0.1 (fixtures redis_cluster /
redis_cluster_factory, t/redis_topologies.py).

The module reads the slot map with CLUSTER SLOTS from a seed, sends each command to the node of
its key's slot over one pipelined connection per node, follows MOVED (and refreshes the map, at
most once a second) and ASK (ASKING first), at most five redirections a command.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

import helpers
from redis_support import (REDIS_LOCATIONS, cookie_header, craft_id_cookie, get_json, id_of,
                           redis_snippet, session_cookie_value, statuses_during_reloads)

TIMEOUT_MS = 500


def cluster_site(nginx, topo, seeds=None, extra: str = "", params: str = "", **kw):
    seeds = seeds if seeds is not None else topo.addresses
    directive = "cluster " + " ".join(seeds) + (" " + params if params else "")
    return nginx(redis_snippet(directive, REDIS_LOCATIONS,
                               f"session_redis_timeout {TIMEOUT_MS}ms;\n    " + extra), **kw)


def login(srv, user):
    r = srv.get(f"/login?u={user}")
    assert r.status_code == 200, (r.status_code, r.text, srv.log_text()[-2000:])
    return session_cookie_value(r)


def whoami(srv, value):
    return srv.get("/whoami", headers=cookie_header(value))


def seed_in_slots(srv, topo, slots: set, n: int, user="u"):
    """n sessions written straight into the cluster whose keys hash into `slots`: (cookie,
    key) pairs."""
    c = topo.client()
    out = []
    while len(out) < n:
        sid = os.urandom(16)
        key = "session:" + sid.hex()
        if topo.keyslot(key) not in slots:
            continue
        i = len(out)
        c.hset(key, mapping={"user": json.dumps(f"{user}{i}")})
        c.expire(key, 3600)
        out.append((craft_id_cookie(srv.secrets[0], sid), key))
    return out


def moved_count(node) -> int:
    text = node.admin().execute_command("INFO", "errorstats")
    text = text.decode() if isinstance(text, bytes) else str(text)
    for line in text.splitlines():
        if line.startswith("errorstat_MOVED:count="):
            return int(line.split("=", 1)[1])
    return 0


def test_sessions_spread_over_the_nodes(nginx, redis_cluster):
    topo = redis_cluster
    # one seed is enough: the rest of the cluster comes from CLUSTER SLOTS
    srv = cluster_site(nginx, topo, seeds=[topo.nodes[0].address])
    values = [login(srv, f"user{i}") for i in range(60)]
    per_node = {n.port: 0 for n in topo.nodes}
    for i, value in enumerate(values):
        key = "session:" + id_of(value)
        node = topo.node_for_key(key)
        per_node[node.port] += 1
        assert get_json(node.admin(), key) == {"user": f"user{i}"}
        assert whoami(srv, value).text.startswith(f"status=valid user=user{i} ")
        assert srv.get("/name?v=n%d" % i, headers=cookie_header(value)).status_code == 200
        assert get_json(node.admin(), key) == {"user": f"user{i}", "name": f"n{i}"}
    assert all(v >= 5 for v in per_node.values()), per_node
    # with the map known, commands go to the right node: no MOVED once it has been read
    assert sum(moved_count(n) for n in topo.nodes) <= 3
    # logout deletes on the owning node
    key = "session:" + id_of(values[0])
    assert srv.get("/logout", headers=cookie_header(values[0])).status_code == 200
    assert topo.node_for_key(key).admin().exists(key) == 0


def test_reshard_while_reading_and_writing(nginx, redis_cluster):
    """redis-cli --cluster reshard moves 1000 slots (with their sessions) from one node to
    another while four threads read and change those sessions: no request fails, no change is
    lost; afterwards the map is updated (MOVED stops)."""
    topo = redis_cluster
    src, dst = topo.nodes[0], topo.nodes[1]
    srv = cluster_site(nginx, topo, workers=2)
    moving = set(sorted(topo.slots_of(src))[:1000])    # redis-cli takes the first slots
    sessions = seed_in_slots(srv, topo, moving, 40)
    others = seed_in_slots(srv, topo, topo.slots_of(topo.nodes[2]), 5, user="o")
    for value, _ in sessions:
        assert whoami(srv, value).status_code == 200

    failures, counts = [], {"read": 0, "write": 0}
    last_name = {}
    lock = threading.Lock()
    stop = threading.Event()

    def worker(w):
        s = srv.session()
        n = 0
        while not stop.is_set():
            idx = (w * 10 + n) % len(sessions)
            value, key = sessions[idx]
            if n % 4 == 3:
                v = f"w{w}n{n}"
                r = s.get(srv.url(f"/name?v={v}"), headers=cookie_header(value), timeout=10)
                ok = r.status_code == 200
                with lock:
                    counts["write"] += 1
                    if ok:
                        last_name[(idx, w)] = v
            else:
                r = s.get(srv.url("/whoami"), headers=cookie_header(value), timeout=10)
                ok = r.status_code == 200 and r.text.startswith(f"status=valid user=u{idx} ")
                with lock:
                    counts["read"] += 1
            if not ok:
                failures.append((r.status_code, r.text))
            n += 1

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        seconds = topo.reshard(src, dst, len(moving), timeout=120)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    print(f"cluster reshard of {len(moving)} slots: {seconds:.2f}s; {counts['read']} reads and "
          f"{counts['write']} writes during it, {len(failures)} failed")
    assert not failures, (failures[:5], srv.log_text()[-3000:])
    assert counts["read"] > 100 and counts["write"] > 30
    assert moving <= topo.slots_of(dst)

    # every session moved with its last change
    for idx, (value, key) in enumerate(sessions):
        assert topo.node_for_key(key) is dst
        data = get_json(dst.admin(), key)
        assert data["user"] == f"u{idx}", data
    for (idx, w), v in last_name.items():
        # each worker's own last write to a session; writes of one session by several workers
        # interleave, so check that each session's final name is one that was written
        assert get_json(dst.admin(), sessions[idx][1]).get("name", "").startswith("w")
    for value, _ in others:
        assert whoami(srv, value).status_code == 200

    # the map was refreshed: a second round of reads meets (almost) no MOVED
    time.sleep(1.1)
    before = moved_count(src)
    for value, _ in sessions:
        assert whoami(srv, value).status_code == 200
    assert moved_count(src) - before <= 2, moved_count(src) - before


def test_node_killed_and_brought_back(nginx, redis_cluster):
    """A node dies: its sessions answer 503 within the timeout (nobody let in); once the
    cluster marks it failed the whole cluster refuses (cluster-require-full-coverage), also
    503. Brought back (same id and slots, no data), sessions of the other nodes are valid again
    and new logins land on it."""
    topo = redis_cluster
    victim = topo.nodes[2]
    srv = cluster_site(nginx, topo)
    on_victim = seed_in_slots(srv, topo, topo.slots_of(victim), 3, user="v")
    elsewhere = seed_in_slots(srv, topo, topo.slots_of(topo.nodes[0]), 3, user="e")

    victim.kill()
    for value, _ in on_victim:
        t0 = time.monotonic()
        r = whoami(srv, value)
        assert r.status_code == 503, r.text
        assert time.monotonic() - t0 < TIMEOUT_MS / 1000 + 1.0
    for i, (value, _) in enumerate(elsewhere):
        r = whoami(srv, value)
        assert r.status_code in (200, 503)
        if r.status_code == 200:
            assert r.text.startswith(f"status=valid user=e{i} ")

    topo.restart(victim)

    def all_back():
        return all(whoami(srv, v).text.startswith(f"status=valid user=e{i} ")
                   for i, (v, _) in enumerate(elsewhere))

    assert helpers.poll(all_back, 10.0, 0.2), srv.log_text()[-3000:]
    for value, _ in on_victim:                    # no persistence: those went with the node
        assert whoami(srv, value).text.startswith("status=invalid")
    # a new login whose key hashes to the victim is stored there
    for i in range(200):
        value = login(srv, f"n{i}")
        key = "session:" + id_of(value)
        if topo.node_for_key(key) is victim:
            assert get_json(victim.admin(), key) == {"user": f"n{i}"}
            break
    else:
        pytest.fail("no login hashed to the restarted node")
    # outage logging stays bounded
    errors = [line for line in srv.log_lines() if "[error]" in line]
    assert len(errors) <= 40, errors[-10:]


def test_a_dead_seed_is_skipped(nginx, redis_cluster):
    topo = redis_cluster
    dead = f"127.0.0.1:{helpers.free_port()}"
    srv = cluster_site(nginx, topo, seeds=[dead, topo.nodes[1].address])
    value = helpers.poll(lambda: session_cookie_value(r) if (r := srv.get("/login?u=al"))
                         .status_code == 200 else None, 5.0, 0.1)
    assert value and whoami(srv, value).text.startswith("status=valid user=al")


def test_cluster_with_tls_and_password(nginx, redis_cluster_factory, tls_material, tmp_path):
    """CLUSTER SLOTS hands out IP addresses: verified against the certificate's IP SANs."""
    topo = redis_cluster_factory(tls=tls_material.redis("ip"), password="cluster-pw")
    (tmp_path / "pw").write_text("cluster-pw\n")
    srv = cluster_site(nginx, topo,
                       extra=f"session_redis_tls on;\n    "
                             f"session_redis_tls_trusted_certificate {tls_material.ca};",
                       params=f"password_file={tmp_path / 'pw'}")
    ports = set()
    for i in range(30):
        value = login(srv, f"t{i}")
        key = "session:" + id_of(value)
        node = topo.node_for_key(key)
        ports.add(node.port)
        assert get_json(node.admin(), key) == {"user": f"t{i}"}
        assert whoami(srv, value).text.startswith(f"status=valid user=t{i} ")
    assert len(ports) == 3


def test_cluster_tls_dns_certificate_needs_a_name(nginx, redis_cluster_factory, tls_material):
    """A DNS-name-only certificate does not name the IP addresses CLUSTER SLOTS returns:
    refused (503, an error line) unless session_redis_tls_name names it."""
    topo = redis_cluster_factory(tls=tls_material.redis("dns"))
    tls = f"session_redis_tls on;\n    session_redis_tls_trusted_certificate {tls_material.ca};"
    bad = cluster_site(nginx, topo, extra=tls)
    assert bad.get("/login?u=a").status_code == 503
    assert helpers.poll(lambda: bad.grep_log("does not match", 0, "error"), 3.0)
    good = cluster_site(nginx, topo, extra=tls + "\n    session_redis_tls_name localhost;")
    assert whoami(good, login(good, "a")).text.startswith("status=valid user=a")


@pytest.mark.parametrize("args,message", [
    ("cluster 127.0.0.1:7000 db=1", "db= cannot be used with cluster"),
    ("cluster", "cluster needs the seed nodes' addresses"),
    ("cluster unix:/tmp/r.sock", "unix socket"),
    ("cluster 127.0.0.1:7000 password_file=/nonexistent/pw", "/nonexistent/pw"),
    ("127.0.0.1:7000 cluster", "cluster"),
])
def test_cluster_config_errors(nginx_t, args, message):
    rc, out = nginx_t(redis_snippet(args, REDIS_LOCATIONS))
    assert rc != 0 and message in out, out


def test_requests_during_a_reload(nginx, redis_cluster):
    """New workers have no slot map yet: their first requests go to a seed and follow MOVED,
    none fails."""
    topo = redis_cluster
    srv = cluster_site(nginx, topo, workers=2)
    values = [login(srv, f"u{i}") for i in range(6)]
    results = statuses_during_reloads(srv, values)
    assert len(results) > 50
    assert set(results) == {200}, {x: results.count(x) for x in set(results)}
