"""Review: session_store_fail open / closed with every topology while nothing answers (a port
where nothing listens, and a server that accepts and never answers)."""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import helpers  # noqa: E402
from fake_redis import FakeRedis  # noqa: E402
from redis_support import cookie_header, craft_id_cookie, redis_snippet  # noqa: E402

LOC = r"""
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
    location = /name   { session_set name $arg_v; return 200 "set\n"; }
    location = /signout { session_logout /bye; }
"""


def silent(conn, fake):
    while not fake.stopped:
        time.sleep(0.1)


@pytest.mark.parametrize("topology", ["standalone", "sentinel", "cluster"])
@pytest.mark.parametrize("outage", ["refused", "silent"])
@pytest.mark.parametrize("mode", ["open", "closed"])
def test_store_fail(nginx, topology, outage, mode):
    fake = FakeRedis(silent) if outage == "silent" else None
    addr = fake.address if fake else f"127.0.0.1:{helpers.free_port()}"
    directive = {"standalone": addr, "sentinel": f"sentinel=m {addr}",
                 "cluster": f"cluster {addr}"}[topology]
    try:
        srv = nginx(redis_snippet(directive, LOC,
                                  f"session_redis_timeout 200ms;\n    session_store_fail {mode};"))
        value = craft_id_cookie(srv.secrets[0], os.urandom(16))
        for _ in range(3):
            t0 = time.monotonic()
            r = srv.get("/whoami", headers=cookie_header(value))
            took = time.monotonic() - t0
            assert took < 0.9, f"answered after {took:.2f}s"
            if mode == "closed":
                assert r.status_code == 503 and r.headers.get("Retry-After") == "1"
            else:
                assert r.status_code == 200 and r.text == "status=error user=\n", r.text
            w = srv.get("/name?v=x", headers=cookie_header(value))
            assert w.status_code == 503 and "Set-Cookie" not in w.headers
            lo = srv.get("/signout", headers=cookie_header(value))
            assert lo.status_code == 303, lo.status_code
            assert "session=;" in lo.headers.get("Set-Cookie", ""), lo.headers
    finally:
        if fake:
            fake.stop()
