"""Review: error-log volume during an outage under load (DESIGN: outage lines about one a
second; per-request failure lines rate-limited like them)."""

import os
import sys
import threading
import time
from collections import Counter

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import helpers  # noqa: E402
from fake_redis import FakeRedis  # noqa: E402
from redis_support import cookie_header, craft_id_cookie, redis_snippet  # noqa: E402

LOC = r"""
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
    location = /name   { session_set name $arg_v; return 200 "set\n"; }
"""


def silent(conn, fake):
    while not fake.stopped:
        time.sleep(0.1)


@pytest.mark.parametrize("topology", ["standalone", "cluster3", "sentinel"])
@pytest.mark.parametrize("outage", ["refused", "silent"])
def test_log_volume_during_outage(nginx, topology, outage):
    fakes = [FakeRedis(silent) for _ in range(3)] if outage == "silent" else []
    addrs = [f.address for f in fakes] or [f"127.0.0.1:{helpers.free_port()}" for _ in range(3)]
    directive = {"standalone": addrs[0], "cluster3": "cluster " + " ".join(addrs),
                 "sentinel": "sentinel=m " + " ".join(addrs)}[topology]
    try:
        srv = nginx(redis_snippet(directive, LOC, "session_redis_timeout 100ms;"),
                    log_level="notice")
        value = craft_id_cookie(srv.secrets[0], os.urandom(16))
        time.sleep(1.5)
        mark = srv.log_mark()
        stop = time.monotonic() + 5
        n = [0]

        def hammer(i):
            s = srv.session()
            while time.monotonic() < stop:
                s.get(srv.url("/name?v=1" if i % 2 else "/whoami"),
                      headers=cookie_header(value), timeout=5)
                n[0] += 1

        ts = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        lines = [l for l in srv.log_since(mark) if "[error]" in l or "[warn]" in l
                 or "[crit]" in l]
        kinds = Counter(l.split("]", 1)[1].split(":", 1)[0] if "]" in l else l for l in lines)
        per_msg = Counter()
        for l in lines:
            msg = l.split(": ", 1)[-1]
            msg = msg.split(", client:")[0]
            per_msg[msg[:70]] += 1
        print(f"\n{topology}/{outage}: {n[0]} requests, {len(lines)} lines in 5 s")
        for m, c in per_msg.most_common(8):
            print(f"  {c:5d}  {m}")
        assert len(lines) <= 5 * 4, f"{len(lines)} error lines in 5 s"
    finally:
        for f in fakes:
            f.stop()
