"""The Redis topology fixtures themselves (TLS, Sentinel, Cluster), checked with redis-py only:
no nginx here. The integration tests of session_redis sentinel= / cluster / session_redis_tls*
stand on these, so each promise a fixture makes is a test here."""

from __future__ import annotations

import ssl

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
