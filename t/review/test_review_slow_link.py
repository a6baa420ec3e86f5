"""Review: the connect + TLS handshake limit is a fixed 1 s (client.cpp kConnectTimeout,
node.cpp node_connect/node_timer_handler), whatever session_redis_timeout says. Over a link
where the TLS handshake takes 1.2 s (a remote Redis, a loaded TLS terminator) and with
session_redis_timeout 5s, nginx never gets a connection: every attempt ends with "TLS handshake
timed out" and every request is refused, although each would be answered in about 1.3 s.
DESIGN: session_redis_timeout is "Connect + command timeout for one lookup"."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from redis_support import REDIS_LOCATIONS, cookie_header, redis_snippet, session_cookie_value  # noqa: E402


class DelayProxy:
    """TCP proxy to 127.0.0.1:upstream that holds the server's first bytes for `delay` s."""

    def __init__(self, upstream, delay):
        self.upstream, self.delay = upstream, delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.socks = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            self.socks += [c, u]
            threading.Thread(target=self.pipe, args=(c, u, 0), daemon=True).start()
            threading.Thread(target=self.pipe, args=(u, c, self.delay), daemon=True).start()

    def pipe(self, a, b, delay):
        first = True
        try:
            while not self.stopped:
                d = a.recv(65536)
                if not d:
                    break
                if first and delay:
                    time.sleep(delay)
                first = False
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.stopped = True
        self.sock.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


def test_tls_handshake_slower_than_1s_never_connects(nginx, redis_factory, tls_material):
    rd = redis_factory(tls=tls_material.redis("ip"))
    proxy = DelayProxy(rd.port, 1.2)
    try:
        srv = nginx(redis_snippet(f"127.0.0.1:{proxy.port}", REDIS_LOCATIONS,
                                  "session_redis_tls on;\n"
                                  f"    session_redis_tls_trusted_certificate {tls_material.ca};\n"
                                  "    session_redis_timeout 5s;"))
        codes = []
        for _ in range(6):
            t0 = time.monotonic()
            r = srv.get("/login?u=alice", timeout=15)
            codes.append((r.status_code, round(time.monotonic() - t0, 2)))
            time.sleep(1.0)
        print("login answers:", codes, srv.grep_log("TLS handshake timed out")[:1])
        assert any(c == 200 for c, _ in codes), \
            f"never connected although session_redis_timeout is 5s: {codes}"
    finally:
        proxy.stop()
