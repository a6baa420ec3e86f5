"""Review: concurrency rules of DESIGN.md ("Concurrent requests lose nothing", "Logout is
final", "No success for a write that did not happen") around session_regenerate."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from test_redis_records import SlowUpstream, login, start  # noqa: E402
from helpers import cookie_named  # noqa: E402
from redis_support import cookie_header, id_of, session_cookie_value  # noqa: E402


def test_regenerate_during_a_slow_set_loses_the_set(nginx, redis_server):
    """Tab 1: a slow request that sets a=1 (loaded the session before). Tab 2: session_regenerate
    (new id, same data). Expected: a=1 kept (the session lives on under the new id), or the slow
    request told so (503). Observed: the slow request's update finds the old id gone (claimed by
    the regenerate), is treated like a logout (after_write: Update + Gone -> DropCookie) and the
    response is 200 "slow" - while a=1 is in no record."""
    up = SlowUpstream(0.8)
    try:
        srv = start(nginx, redis_server, uport=up.port)
        admin = redis_server.client()
        value = login(srv)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", srv.get("/slow-a?v=1", headers=cookie_header(value), timeout=10)))
        t.start()
        time.sleep(0.2)
        rg = srv.get("/regen", headers=cookie_header(value))
        assert rg.status_code == 200
        new_value = session_cookie_value(rg)
        t.join(10)
        slow = out["r"]
        ab = srv.get("/ab", headers=cookie_header(new_value)).text
        print("slow:", slow.status_code, slow.headers.get("Set-Cookie"), "| after:", ab)
        assert slow.status_code == 503 or "a=[1]" in ab, \
            f"the slow request answered {slow.status_code} but its change is lost: {ab!r}"
        # The change did not follow the session to its new id (whoever holds the old id must
        # not write into the regenerated session): refused with 503, nothing written.
        assert slow.status_code == 503 and "a=[]" in ab
        assert slow.headers.get("Retry-After") is not None
        old_key = "session:" + id_of(value)
        assert admin.get(old_key) == b"#session-regenerated"
        assert 0 < admin.pttl(old_key) <= 3600 * 1000
        # The old id is no session any more: not logged in, and a change through it is refused.
        assert "user=[]" in srv.get("/ab", headers=cookie_header(value)).text
        assert srv.get("/set-b?v=9", headers=cookie_header(value)).status_code in (200, 503)
        assert "b=[]" in srv.get("/ab", headers=cookie_header(new_value)).text
        assert admin.get(old_key) == b"#session-regenerated"
    finally:
        up.close()
