"""The Redis topology fixtures themselves (TLS, Sentinel, Cluster), checked with redis-py only:
no nginx here. The integration tests of session_redis sentinel= / cluster / session_redis_tls*
stand on these, so each promise a fixture makes is a test here."""

from __future__ import annotations

import ssl
import threading

import pytest
import redis as redis_py

import helpers

# ---------------------------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------------------------


def _sans(cert_path):
    return ssl._ssl._test_decode_cert(cert_path).get("subjectAltName", ())


def test_tls_material_names(tls_material):
    """The DNS certificate names localhost only, the IP one 127.0.0.1 only; both chain to the
    test CA, the other one does not."""
    m = tls_material
    assert _sans(m.dns_cert) == (("DNS", "localhost"),)
    assert _sans(m.ip_cert) == (("IP Address", "127.0.0.1"),)
    assert dict(x[0] for x in ssl._ssl._test_decode_cert(m.ip_cert)["subject"])[
        "commonName"] == "ip-only test server"
    assert _sans(m.other_cert) == (("DNS", "localhost"), ("IP Address", "127.0.0.1"))
    for cert, issuer in ((m.dns_cert, m.ca), (m.ip_cert, m.ca), (m.client_cert, m.ca),
                         (m.other_cert, m.other_ca)):
        assert ssl._ssl._test_decode_cert(cert)["issuer"] == \
            ssl._ssl._test_decode_cert(issuer)["subject"]


def test_tls_connect_plaintext_refused_and_restart(redis_factory, tls_material):
    rd = redis_factory(tls=tls_material.redis("dns"))
    r = rd.admin()
    assert r.set("k", "v") and r.get("k") == b"v"
    assert r.connection_pool.connection_kwargs.get("ssl_ca_certs") == tls_material.ca
    # the port speaks TLS only
    with pytest.raises(redis_py.exceptions.ConnectionError):
        redis_py.Redis(host="127.0.0.1", port=rd.port, socket_timeout=1).ping()
    # restart on the same port (reconnect tests)
    port = rd.port
    rd.stop()
    assert not helpers.port_accepts(port)
    rd.start()
    assert rd.port == port and rd.admin().ping()


def test_tls_wrong_ca_refused(redis_factory, tls_material):
    rd = redis_factory(tls=tls_material.redis("other"))    # admin trusts other_ca
    assert rd.admin().ping()
    with pytest.raises(redis_py.exceptions.ConnectionError, match="certificate verify failed"):
        rd.admin(ssl_ca_certs=tls_material.ca).ping()


@pytest.mark.parametrize("server,good_host,bad_host", [("dns", "localhost", "127.0.0.1"),
                                                       ("ip", "127.0.0.1", "localhost")])
def test_tls_names(redis_factory, tls_material, server, good_host, bad_host):
    """A DNS-name-only certificate verifies for localhost and not for 127.0.0.1; an IP-only one
    the other way round (what session_redis_tls_name / IP addresses from Sentinel and CLUSTER
    SLOTS will be tested against)."""
    rd = redis_factory(tls=tls_material.redis(server))
    ok = redis_py.Redis(host=good_host, port=rd.port, ssl_check_hostname=True, socket_timeout=2,
                        **rd.tls.client_kwargs())
    assert ok.ping()
    bad = redis_py.Redis(host=bad_host, port=rd.port, ssl_check_hostname=True,
                         socket_timeout=2, **rd.tls.client_kwargs())
    with pytest.raises(redis_py.exceptions.ConnectionError, match="match|mismatch"):
        bad.ping()


def test_tls_client_certificate_required(redis_factory, tls_material):
    rd = redis_factory(tls=tls_material.redis("dns", auth_clients="yes"))
    assert rd.admin().ping()                                   # presents client.pem
    with pytest.raises(redis_py.exceptions.ConnectionError):
        rd.admin(ssl_certfile=None, ssl_keyfile=None).ping()  # no certificate
    with pytest.raises(redis_py.exceptions.ConnectionError):    # certificate of another CA
        rd.admin(ssl_certfile=tls_material.other_cert, ssl_keyfile=tls_material.other_key).ping()
    assert rd.cli("PING").stdout.strip() == "PONG"


# ---------------------------------------------------------------------------------------------
# Sentinel
# ---------------------------------------------------------------------------------------------


def test_sentinel_reports_master(redis_sentinel):
    topo = redis_sentinel
    for s in topo.sentinels:
        assert topo.reported_master(s) == ("127.0.0.1", topo.master.port)
    client = topo.client()
    assert client.discover_master("mymaster") == ("127.0.0.1", topo.master.port)
    assert client.discover_slaves("mymaster") == [("127.0.0.1", topo.replica.port)]
    m = topo.master_client()
    m.set("k", "v")
    assert m.execute_command("WAIT", 1, 2000) == 1
    assert topo.replica.admin().get("k") == b"v"


def test_sentinel_failover_promotes_replica(redis_sentinel):
    topo = redis_sentinel
    old, replica = topo.master, topo.replica
    m = topo.master_client()
    m.set("before", "kept")
    assert m.execute_command("WAIT", 1, 2000) == 1

    seconds = topo.failover(timeout=20)
    print(f"sentinel failover: {seconds:.2f}s")
    assert seconds < 15
    assert topo.master is replica and topo.replica is old and not old.alive()
    assert replica.admin().get("before") == b"kept"
    assert topo.client().discover_master("mymaster") == ("127.0.0.1", replica.port)
    topo.master_client().set("after", "1")       # the client follows the new master

    topo.rejoin()
    assert old.admin().get("before") == b"kept" and old.admin().get("after") == b"1"
    assert topo.role(old) == "slave"


def test_sentinel_tls_and_passwords(redis_sentinel_factory, tls_material):
    """TLS everywhere (data nodes, sentinels, replication, sentinel links) with a data password
    and a sentinel password."""
    topo = redis_sentinel_factory(tls=tls_material.redis("ip"), password="data-pw",
                                  sentinel_password="sentinel-pw")
    s = topo.sentinels[0]
    with pytest.raises(redis_py.exceptions.AuthenticationError):
        s.admin(password=None).execute_command("SENTINEL", "MASTERS")
    assert topo.reported_master(s) == ("127.0.0.1", topo.master.port)
    m = topo.master_client()
    m.set("k", "v")
    assert m.execute_command("WAIT", 1, 2000) == 1
    assert topo.replica.admin().get("k") == b"v"
    with pytest.raises(redis_py.exceptions.ConnectionError):   # the data nodes: TLS only
        redis_py.Redis(host="127.0.0.1", port=topo.master.port, socket_timeout=1).ping()


# ---------------------------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------------------------


def _keys_by_node(topo):
    return {n.port: {k.decode() for k in n.admin().keys("*")} for n in topo.nodes}


def test_cluster_keys_spread_by_slot(redis_cluster):
    topo = redis_cluster
    print(f"cluster create: {topo.create_seconds:.2f}s")
    ranges = topo.slot_ranges()
    assert sum(b - a + 1 for a, b, _ in ranges) == 16384
    assert {port for _, _, port in ranges} == {n.port for n in topo.nodes}

    c = topo.client()
    keys = [f"session:{i:04d}" for i in range(300)]
    for k in keys:
        c.set(k, k)
    by_node = _keys_by_node(topo)
    assert set().union(*by_node.values()) == set(keys)
    for n in topo.nodes:
        assert len(by_node[n.port]) > 50, by_node        # about 100 each
        owned = topo.slots_of(n)
        assert all(topo.keyslot(k) in owned for k in by_node[n.port])
    assert topo.keyslot("session:0001") == int(
        topo.nodes[0].admin().execute_command("CLUSTER", "KEYSLOT", "session:0001"))
    k = keys[7]
    assert topo.node_for_key(k).admin().get(k) == k.encode()


def test_cluster_reshard_keeps_keys_readable(redis_cluster):
    topo = redis_cluster
    src, dst = topo.nodes[0], topo.nodes[1]
    c = topo.client()
    before_src = topo.slots_of(src)
    moving = sorted(before_src)[:300]          # redis-cli takes the source's first slots
    keys = [f"k{i}" for i in range(3000)]
    for k in keys:
        c.set(k, k)
    moved_keys = [k for k in keys if topo.keyslot(k) in set(moving)]
    assert len(moved_keys) > 20

    errors, reads = [], [0]
    stop = threading.Event()

    def reader():
        rc = topo.client()
        while not stop.is_set():
            for k in moved_keys:
                try:
                    if rc.get(k) != k.encode():
                        errors.append((k, "wrong value"))
                except redis_py.exceptions.RedisError as e:
                    errors.append((k, repr(e)))
                reads[0] += 1

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        seconds = topo.reshard(src, dst, 300, timeout=60)
    finally:
        stop.set()
        t.join(10)
    print(f"cluster reshard of 300 slots: {seconds:.2f}s, {reads[0]} reads during it")
    assert not errors, errors[:5]
    assert reads[0] > 0
    assert topo.slots_of(src) == before_src - set(moving)
    assert set(moving) <= topo.slots_of(dst)
    on_dst = _keys_by_node(topo)[dst.port]
    assert set(moved_keys) <= on_dst
    assert all(c.get(k) == k.encode() for k in keys)


def test_cluster_killed_node_comes_back(redis_cluster):
    topo = redis_cluster
    victim = topo.nodes[2]
    node_id, slots = topo.node_id(victim), topo.slots_of(victim)
    c = topo.client()
    key = next(f"x{i}" for i in range(1000) if topo.keyslot(f"x{i}") in slots)
    c.set(key, "lost on restart")

    down = topo.kill(victim)
    back = topo.restart(victim)
    print(f"cluster node kill noticed in {down:.2f}s, ok again {back:.2f}s after restart")
    assert victim.port in {n.port for n in topo.nodes if n.alive()}
    assert topo.node_id(victim) == node_id and topo.slots_of(victim) == slots
    c2 = topo.client()
    assert c2.get(key) is None                  # no persistence: the data went with it
    c2.set(key, "again")
    assert victim.admin().get(key) == b"again"


def test_cluster_tls_with_password(redis_cluster_factory, tls_material):
    topo = redis_cluster_factory(tls=tls_material.redis("ip"), password="cluster-pw")
    ports = {port for _, _, port in topo.slot_ranges()}
    assert ports == {n.port for n in topo.nodes}      # CLUSTER SLOTS names the TLS ports
    c = topo.client()
    for i in range(30):
        c.set(f"t{i}", i)
    assert all(int(c.get(f"t{i}")) == i for i in range(30))
    with pytest.raises(redis_py.exceptions.AuthenticationError):
        topo.nodes[0].admin(password=None).get("t1")
