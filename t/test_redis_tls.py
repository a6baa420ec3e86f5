"""Redis over TLS (issue 10): nginx's own SSL layer on the module's Redis connections.

A test CA is made with openssl at test time (tls_material); redis-server speaks TLS only
(--port 0 --tls-port P). Verification is on by default: against the trusted CA, and the name is
the configured address's host, or session_redis_tls_name; an IP address is checked against the
certificate's IP SANs (no SNI), a name against its DNS names (sent as SNI).
"""

import socket
import ssl
import threading

import pytest

import helpers
from helpers import cookie_named
from redis_support import REDIS_LOCATIONS, cookie_header, redis_snippet, session_cookie_value


def tls_site(nginx, rd, tls_lines: str, directive="127.0.0.1:{rport}", **kw):
    return nginx(redis_snippet(directive, REDIS_LOCATIONS, "session_redis_tls on;\n    " + tls_lines),
                 rport=rd.port, **kw)


def works(srv):
    r = srv.get("/login?u=alice")
    if r.status_code != 200:
        return False
    value = session_cookie_value(r)
    return srv.get("/whoami", headers=cookie_header(value)).text.startswith(
        "status=valid user=alice")


def test_verified_ip_san(nginx, redis_factory, tls_material):
    rd = redis_factory(tls=tls_material.redis("ip"))
    srv = tls_site(nginx, rd, f"session_redis_tls_trusted_certificate {tls_material.ca};")
    assert works(srv)
    rd.admin().ping()
    assert any(c.get("name") != "pytest" for c in rd.admin().client_list())


def test_verified_dns_name_with_tls_name(nginx, redis_factory, tls_material):
    rd = redis_factory(tls=tls_material.redis("dns"))
    srv = tls_site(nginx, rd, f"session_redis_tls_trusted_certificate {tls_material.ca};\n"
                              "    session_redis_tls_name localhost;")
    assert works(srv)


def test_name_mismatch_is_refused(nginx, redis_factory, tls_material):
    """A certificate for "localhost" only does not name 127.0.0.1: nobody is let in, one clear
    error line."""
    rd = redis_factory(tls=tls_material.redis("dns"))
    srv = tls_site(nginx, rd, f"session_redis_tls_trusted_certificate {tls_material.ca};")
    r = srv.get("/login?u=alice")
    assert r.status_code == 503 and cookie_named(r, "session") is None
    assert helpers.poll(lambda: srv.grep_log('does not match "127.0.0.1"', 0, "error"), 3.0), \
        srv.log_text()[-2000:]


def test_wrong_ca_is_refused(nginx, redis_factory, tls_material):
    rd = redis_factory(tls=tls_material.redis("other"))
    srv = tls_site(nginx, rd, f"session_redis_tls_trusted_certificate {tls_material.ca};")
    value = helpers.random_secret()
    r = srv.get("/login?u=alice")
    assert r.status_code == 503, r.status_code
    assert helpers.poll(lambda: srv.grep_log("TLS certificate verify error", 0, "error"), 3.0), \
        srv.log_text()[-2000:]
    # an existing cookie is not let in either (fail closed)
    assert srv.get("/private", headers={"Cookie": f"session={value}"}).status_code in (401, 503)


def test_verify_off_accepts_any_certificate(nginx, redis_factory, tls_material):
    rd = redis_factory(tls=tls_material.redis("other"))
    srv = tls_site(nginx, rd, "session_redis_tls_verify off;")
    assert works(srv)


def test_system_ca_store_does_not_know_the_test_ca(nginx, redis_factory, tls_material):
    rd = redis_factory(tls=tls_material.redis("ip"))
    srv = tls_site(nginx, rd, "")
    assert srv.get("/login?u=alice").status_code == 503
    assert helpers.poll(lambda: srv.grep_log("TLS certificate verify error", 0, "error"), 3.0)


def test_mutual_tls(nginx, redis_factory, tls_material):
    rd = redis_factory(tls=tls_material.redis("ip", auth_clients="yes"))
    without = tls_site(nginx, rd, f"session_redis_tls_trusted_certificate {tls_material.ca};")
    # TLS 1.3 reports the missing client certificate at the first read; nginx's SSL layer logs
    # that alert at crit (DESIGN.md: refused handshakes may log exactly those).
    without.allowed_bad_log.append(r"SSL_read\(\) failed .*certificate required")
    assert without.get("/login?u=alice").status_code == 503
    with_cert = tls_site(nginx, rd, f"session_redis_tls_trusted_certificate {tls_material.ca};\n"
                                    f"    session_redis_tls_certificate {tls_material.client_cert};\n"
                                    f"    session_redis_tls_certificate_key {tls_material.client_key};")
    assert works(with_cert)


def test_tls_reconnects_after_a_restart(nginx, redis_factory, tls_material):
    rd = redis_factory(tls=tls_material.redis("ip"))
    srv = tls_site(nginx, rd, f"session_redis_tls_trusted_certificate {tls_material.ca};")
    value = session_cookie_value(srv.get("/login?u=alice"))
    rd.stop()
    assert srv.get("/whoami", headers=cookie_header(value)).status_code == 503
    rd.start()
    # the data went with the restart: a new login over the new TLS connection works
    assert helpers.poll(lambda: works(srv), 5.0)


class SniRecorder:
    """A TLS server on a free loopback port that records the SNI name of each handshake."""

    def __init__(self, cert, key):
        self.names = []
        self.reused = []     # per handshake: was a TLS session resumed
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.sni_callback = lambda sock, name, c: self.names.append(name)
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.stopped = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    self.reused.append(tls.session_reused)
                    tls.settimeout(1)
                    tls.recv(100)
            except OSError:
                pass

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


@pytest.mark.parametrize("lines,expected", [
    ("session_redis_tls_name localhost;", "localhost"),
    ("", None),   # an IP address: no SNI
])
def test_sni(nginx, tls_material, lines, expected):
    rec = SniRecorder(tls_material.dns_cert, tls_material.dns_key)
    try:
        srv = nginx(redis_snippet("127.0.0.1:{rport}", REDIS_LOCATIONS,
                                  "session_redis_tls on; session_redis_tls_verify off; " + lines),
                    rport=rec.port)
        srv.get("/login?u=alice")
        assert helpers.poll(lambda: rec.names, 3.0), "no TLS handshake reached the recorder"
        assert rec.names[0] == expected, rec.names
    finally:
        rec.close()


@pytest.mark.parametrize("protocol", ["TLSv1_2", "TLSv1_3"])
def test_tls_session_is_resumed_on_reconnect(nginx, tls_material, protocol):
    """The recorder closes every connection after the first command: the next connection
    resumes the TLS session (TLS 1.3: from the ticket that arrives after the handshake)."""
    rec = SniRecorder(tls_material.ip_cert, tls_material.ip_key)
    rec.ctx.maximum_version = getattr(ssl.TLSVersion, protocol)
    try:
        srv = nginx(redis_snippet("127.0.0.1:{rport}", REDIS_LOCATIONS,
                                  "session_redis_tls on;\n    "
                                  f"session_redis_tls_trusted_certificate {tls_material.ca};"),
                    rport=rec.port)
        helpers.poll(lambda: srv.get("/login?u=a").status_code and len(rec.reused) >= 3, 5.0,
                     0.1)
        assert len(rec.reused) >= 3, rec.reused
        assert rec.reused[0] is False and all(rec.reused[1:]), rec.reused
    finally:
        rec.close()


@pytest.mark.parametrize("lines,message", [
    ("session_redis_tls_trusted_certificate /nonexistent/ca.pem;", "ca.pem"),
    ("session_redis_tls_certificate {prefix}/nothing.pem;\n"
     "    session_redis_tls_certificate_key {prefix}/nothing.key;", "nothing.pem"),
    ("session_redis_tls_certificate {prefix}/c.pem;", "requires \"session_redis_tls_certificate_key\""),
])
def test_tls_config_errors(nginx_t, lines, message):
    rc, out = nginx_t(redis_snippet("127.0.0.1:6379", REDIS_LOCATIONS,
                                    "session_redis_tls on;\n    " + lines))
    assert rc != 0 and message in out, out


BIG_LOCATIONS = REDIS_LOCATIONS + "".join(
    f"    location = /set{i} {{ session_set k{i} $arg_v; return 200 \"set\\n\"; }}\n"
    for i in range(5)) + """
    location = /big { return 200 "$session_k0|$session_k1|$session_k2|$session_k3|$session_k4"; }
"""


def test_large_records_over_tls_under_concurrency(nginx, redis_factory, tls_material):
    """A 30 KB record spans several TLS records and fills the read buffer (16 KiB) more than
    once; with 16 requests at a time, replies also arrive back to back on one connection. Every
    response carries every value whole (the read loop continues while the layer has data and
    stops only when it is drained)."""
    rd = redis_factory(tls=tls_material.redis("ip"))
    srv = nginx(redis_snippet("127.0.0.1:{rport}", BIG_LOCATIONS,
                              "session_redis_tls on;\n    "
                              f"session_redis_tls_trusted_certificate {tls_material.ca};"),
                rport=rd.port)
    values = [chr(ord("a") + i) * 6000 + str(i) for i in range(5)]
    cookie = session_cookie_value(srv.get("/login?u=alice"))
    for i, v in enumerate(values):
        r = srv.get(f"/set{i}", params={"v": v}, headers=cookie_header(cookie))
        assert r.status_code == 200, r.text
        cookie = session_cookie_value(r) if helpers.cookie_named(r, "session") else cookie
    expected = "|".join(values)
    assert srv.get("/big", headers=cookie_header(cookie)).text == expected

    failures = []

    def reader():
        for _ in range(10):
            r = srv.get("/big", headers=cookie_header(cookie))
            if r.status_code != 200 or r.text != expected:
                failures.append((r.status_code, len(r.text)))

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "requests hung"
    assert failures == []
