"""Review of the verified-cookie table (src/core/verified_cache.*, README "The verified-cookie
table"): attacks on what a table hit shares with the request that uses it.

Run against build/sbin/nginx or the ASan build (NGINX_BIN=build/asan/sbin/nginx with the
ASAN_OPTIONS of scripts/asan-build.sh). The capture test failed either way before the fix
(garbage in the response, or the worker died on the ASan report); fixed by holding what a
request takes from the table until the request's pool is destroyed (hold_until_request_ends).
"""

import threading
import time

import helpers
from conftest import LoopbackHTTPServer
from helpers import server_conf

# A user name longer than the small-string buffer, so that its text lives in its own heap block
# (a freed block's first 16 bytes are overwritten by the allocator).
LONG_USER = "alice-" + "x" * 42


class SlowUpstream(LoopbackHTTPServer):
    """Answers every request after `delay` seconds with `status` (and optional headers)."""

    def __init__(self, delay, status=200, headers=()):
        self.delay, self.status, self.headers = delay, status, list(headers)
        super().__init__()

    def answer(self, handler, body):
        time.sleep(self.delay)
        return self.status, self.headers, b"upstream\n"


def evict_table(srv, secret, n=2500, name="session"):
    """n distinct valid cookies on one keep-alive connection: every one a miss and an insert, so
    (512 direct-mapped slots) every slot of the worker's table is replaced with near certainty."""
    conn = srv.session()
    for i in range(n):
        v = helpers.make_cookie(secret, {"user": f"evict{i}"}, name=name)
        r = srv.get("/whoami", session=conn, headers={"Cookie": f"{name}={v}"})
        assert r.status_code == 200


def test_capture_of_shared_session_value_dangles_after_redirect_to_other_binding(nginx):
    """FAILS. A regex capture ($1 of `if ($session_user ~ ...)`) of a table hit points into the
    decoded data the table shares. The request is held by a slow upstream while other cookies
    evict its table entry; the upstream's 404 goes (error_page 404 = /b) to a location with
    another binding (another cookie name), whose load resets the session and drops the
    request's reference - now the last one - so the decoded data is freed while
    r->captures_data still points into it.

    Expected: /b answers cap=[<the user name>] (as on a table miss, and as before the table,
    when the decoded data lived in the request's pool until the request ended).
    Observed: the first 16 bytes of $1 are the allocator's free-list pointer and key
    (cap=[k>(\x8dFV\x00\x00...xxxx]): freed heap memory sent to the client, which also leaks
    heap addresses. Under ASan: heap-use-after-free READ in ngx_http_script_copy_capture_code
    (freed by ~SessionData via loaded_t::reset in load()); the worker aborts.
    Severity: medium - a use-after-free read reachable from ordinary configuration (regex
    captures over $session_<key> plus error_page / X-Accel-Redirect into another binding) and
    client-timed eviction; discloses heap contents/addresses (possibly other sessions' data) in
    responses or logs, or crashes the worker."""
    up = SlowUpstream(delay=4.0, status=404)
    try:
        snippet = server_conf(
            helpers.APP_LOCATIONS + f"""
    location = /a {{
        if ($session_user ~ "^(.+)$") {{ }}
        proxy_pass http://127.0.0.1:{up.port};
        proxy_intercept_errors on;
        error_page 404 = /b;
    }}
    location = /b {{
        session_cookie sid;
        set $probe $session_status;
        return 200 "cap=[$1]\\n";
    }}
""", "session_encrypt off;")
        srv = nginx(snippet)
        secret = srv.secrets[0]
        value = helpers.make_cookie(secret, {"user": LONG_USER})
        # first sight: verified, inserted, decoded data attached to the entry
        r = srv.get("/whoami", headers={"Cookie": f"session={value}"})
        assert r.text == f"status=valid user={LONG_USER} name=\n"

        result = {}

        def slow():
            try:
                result["r"] = srv.raw("/a", [("Cookie", f"session={value}")])
            except Exception as e:  # the worker may die under ASan
                result["e"] = e

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.5)          # /a is now a table hit sharing the data, waiting upstream
        evict_table(srv, secret)
        t.join(30)
        assert "e" not in result, f"request failed: {result.get('e')!r}"
        r = result["r"]
        assert r.status == 200
        assert r.text == f"cap=[{LONG_USER}]\n", repr(r.data)
    finally:
        up.close()


def test_guard_slow_request_keeps_shared_data_through_eviction(nginx):
    """PASSING GUARD. A table hit waiting on a slow upstream while 2,500 other cookies replace
    every slot, then $session_user read late (add_header in the header filter, log_format at
    the log phase): the request's own reference keeps the data (no stale pointer, right user)."""
    up = SlowUpstream(delay=3.0, status=200)
    try:
        snippet = server_conf(
            helpers.APP_LOCATIONS + f"""
    location = /slow {{
        proxy_pass http://127.0.0.1:{up.port};
        add_header X-User "$session_user";
        access_log {{prefix}}/late.log late;
    }}
""", "session_encrypt off;", http_extra="log_format late '$session_user $session_status';")
        srv = nginx(snippet)
        secret = srv.secrets[0]
        value = helpers.make_cookie(secret, {"user": LONG_USER})
        assert srv.get("/whoami", headers={"Cookie": f"session={value}"}).text == \
            f"status=valid user={LONG_USER} name=\n"
        result = {}
        t = threading.Thread(target=lambda: result.setdefault(
            "r", srv.raw("/slow", [("Cookie", f"session={value}")])))
        t.start()
        time.sleep(0.5)
        evict_table(srv, secret)
        t.join(30)
        r = result["r"]
        assert r.status == 200 and r.header("X-User") == LONG_USER
        time.sleep(0.3)
        lines = (srv.path / "late.log").read_text().splitlines()
        assert lines[-1] == f"{LONG_USER} valid", lines[-3:]
    finally:
        up.close()
