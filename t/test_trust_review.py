"""Sessions are trusted only where they were made (issue 9, part 5): what an adversarial review
of the new request path found, one test each.

- A response held while Redis confirms a write keeps its HTTP framing: HEAD and 304 get no
  body, a Range request is answered whole.
- More session cookies than are tried make no session (cookie tossing hidden among junk).
- session_regenerate in a request that outlives a logout does not revive the session.
- HTML pages that may read the session through SSI vary on Cookie.
- With session_store_fail open, a change that cannot be made during an outage is a 503.
- A subrequest waiting for another subrequest's Redis lookup is resumed.
- Nested locations keep their own session_require under a login/logout location.
- With recursive_error_pages, refused requests still get no session writes.
- Rejected-cookie log lines are rate-limited.
"""

import os
import signal
import socket
import threading
import time

import pytest

import helpers
import login_support as L
from conftest import LoopbackHTTPServer
from helpers import cookie_named, make_cookie, server_conf
from redis_support import (REDIS_LOCATIONS, cookie_header, craft_id_cookie, id_of,
                           redis_snippet, seed, session_cookie_value)


def raw_exchange(port, request: bytes, wait: float = 1.5) -> bytes:
    """Everything the server sends on one connection within `wait` seconds (framing checks)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        s.settimeout(wait)
        data = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
        return data


# ---- held responses keep their framing ----------------------------------------------------------

HELD = REDIS_LOCATIONS + r"""
    location /files/ { root {prefix}; }
    location = /pref { session_set theme $arg_t; return 200 "body-of-pref\n"; }
"""


@pytest.fixture
def held_site(nginx, redis_server):
    srv = nginx(redis_snippet("127.0.0.1:{rport}", HELD, "session_renew 1s;"),
                rport=redis_server.port,
                files={"files/evil.txt": "HTTP/1.1 200 OK\r\nX-Smuggled: yes\r\n"
                                         "Content-Length: 3\r\n\r\nhi\n"})
    r = srv.get("/login?u=alice")
    value = session_cookie_value(r)
    time.sleep(1.1)   # every request with this cookie now renews: a held EXPIRE
    return srv, value


def test_held_head_response_has_no_body(held_site):
    srv, value = held_site
    data = raw_exchange(srv.port, b"HEAD /pref?t=dark HTTP/1.1\r\nHost: x\r\n\r\n"
                                  b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200"), data[:200]
    assert b"Set-Cookie: session=" in first   # a new anonymous session: held Create
    assert rest.startswith(b"HTTP/1.1 "), f"bytes after the HEAD response: {rest[:120]!r}"
    assert b"body-of-pref" not in data


def test_held_not_modified_response_has_no_body(held_site):
    srv, value = held_site
    r = srv.get("/files/evil.txt")
    etag = r.headers["ETag"]
    req = (f"GET /files/evil.txt HTTP/1.1\r\nHost: x\r\nCookie: session={value}\r\n"
           f"If-None-Match: {etag}\r\n\r\n"
           f"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode()
    data = raw_exchange(srv.port, req)
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 304"), data[:200]
    assert b"Set-Cookie: session=" in first   # the renewal was held and confirmed
    assert rest.startswith(b"HTTP/1.1 200"), f"bytes after the 304: {rest[:120]!r}"
    assert b"X-Smuggled" not in data


def test_held_range_request_is_answered_whole(held_site):
    srv, value = held_site
    for rng in ("bytes=99999-", "bytes=0-3"):
        r = srv.raw("/files/evil.txt", headers=[("Cookie", f"session={value}"), ("Range", rng)])
        assert r.status == 200, (rng, r.raw[:300])
        assert r.body == (srv.path / "files/evil.txt").read_bytes()
        time.sleep(1.1)


# ---- cookie tossing among junk ------------------------------------------------------------------

def test_more_cookies_than_are_tried_make_no_session(nginx):
    srv = nginx(server_conf('location = /who { return 200 "[$session_user] $session_status"; }',
                            "session_encrypt off;"))
    bob = make_cookie(srv.secrets[0], {"user": "bob"})
    alice = make_cookie(srv.secrets[0], {"user": "alice"})
    junk = "; ".join(f"session=junk{i}" for i in range(7))
    r = srv.raw("/who", headers=[("Cookie", f"session={bob}; {junk}; session={alice}")])
    assert r.text == "[] invalid", r.text
    r = srv.raw("/who", headers=[("Cookie", f"session={bob}; {junk}")])
    assert r.text == "[bob] valid", r.text


# ---- regenerate vs logout -----------------------------------------------------------------------

class SlowUpstream(LoopbackHTTPServer):
    def __init__(self, delay):
        self.delay = delay
        super().__init__()

    def answer(self, handler, body):
        time.sleep(self.delay)
        return 200, [("Content-Type", "text/plain")], b"slow\n"


def test_regenerate_after_a_logout_does_not_revive_the_session(nginx, redis_server):
    up = SlowUpstream(1.0)
    try:
        locs = REDIS_LOCATIONS + ("location = /slowregen { session_regenerate; "
                                  "proxy_pass http://127.0.0.1:{uport}/; }")
        srv = nginx(redis_snippet("127.0.0.1:{rport}", locs), rport=redis_server.port,
                    uport=up.port)
        admin = redis_server.client()
        r = srv.get("/login?u=alice")
        value = session_cookie_value(r)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", srv.get("/slowregen", headers=cookie_header(value), timeout=10)))
        t.start()
        time.sleep(0.3)
        assert srv.get("/signout", headers=cookie_header(value)).status_code == 303
        t.join(10)
        r = out["r"]
        assert r.status_code == 200
        assert cookie_named(r, "session") is None, "a new cookie for a logged-out session"
        assert admin.dbsize() == 0, admin.keys("*")
    finally:
        up.close()


# ---- Vary for SSI pages -------------------------------------------------------------------------

def test_html_with_a_session_cookie_varies_on_cookie(nginx):
    srv = nginx(server_conf('location = /index.shtml { ssi on; default_type text/html; '
                            'expires 10m; }\nlocation = /app.js { default_type text/javascript; }',
                            "session_encrypt off; root {prefix}/html;"),
                files={"html/index.shtml": 'Hello <!--# echo var="session_user" -->',
                       "html/app.js": "js"})
    cookie = make_cookie(srv.secrets[0], {"user": "alice"})
    r = srv.raw("/index.shtml", headers=[("Cookie", f"session={cookie}")])
    assert b"Hello alice" in r.body and r.header("Vary") == "Cookie", r.headers
    # without a session cookie, or for non-HTML, nothing to vary on
    assert srv.raw("/index.shtml").header("Vary") is None
    assert srv.raw("/app.js", headers=[("Cookie", f"session={cookie}")]).header("Vary") is None


# ---- fail open during an outage -----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/logout", "/name?v=x", "/regen"])
def test_changes_during_an_outage_with_fail_open_are_503(nginx, redis_server, path):
    srv = nginx(redis_snippet("127.0.0.1:{rport}", REDIS_LOCATIONS,
                              "session_store_fail open; session_redis_timeout 300ms;"),
                rport=redis_server.port)
    value = session_cookie_value(srv.get("/login?u=alice"))
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        r = srv.get(path, headers=cookie_header(value))
        assert r.status_code == 503 and cookie_named(r, "session") is None, r.status_code
        assert r.headers.get("Retry-After") == "1"
        # reads go on without the session
        assert srv.get("/whoami", headers=cookie_header(value)).text.startswith("status=error")
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    # the session is still there once the store is back (reconnect after a short backoff)
    assert helpers.poll(lambda: "user=alice" in srv.get("/whoami",
                                                        headers=cookie_header(value)).text, 5)


# ---- a subrequest waiting for another's lookup --------------------------------------------------

def test_subrequests_sharing_a_lookup_are_all_resumed(nginx, redis_server):
    snippet = f"""
server {{
    listen 127.0.0.1:{{port}};
    root {{prefix}}/html;
    location = /page.shtml {{ ssi on; default_type text/html; mirror /api/audit; }}
    location /api/ {{
        session_secret_file {{secret_file}};
        session_store redis;
        session_redis 127.0.0.1:{{rport}};
        return 200 "api:$session_user;";
    }}
}}"""
    srv = nginx(snippet, rport=redis_server.port,
                files={"html/page.shtml": '<!--# include virtual="/api/a" -->'
                                          '<!--# include virtual="/api/b" -->'})
    admin = redis_server.client()
    value, _, _ = seed(admin, {"user": "alice"}, srv.secrets[0])
    t = time.monotonic()
    r = srv.get("/page.shtml", headers=cookie_header(value), timeout=10)
    assert r.status_code == 200 and r.text == "api:alice;api:alice;", r.text
    assert time.monotonic() - t < 3


# ---- nested locations under login/logout ---------------------------------------------------------

def test_nested_locations_keep_their_own_session_require(nginx):
    srv = nginx(L.user_file_site(locations=r"""
    location /account/ {
        session_logout /;
        location /account/admin/ { session_require; return 200 "admin area"; }
    }"""), files=L.files_for({"alice": L.hash_password("apr1", "pw")}))
    assert srv.raw("/account/admin/x").status == 401
    assert srv.raw("/account/").status == 303   # the logout endpoint itself


# ---- recursive error pages ----------------------------------------------------------------------

def test_recursive_error_pages_after_a_refusal_write_nothing(nginx):
    srv = nginx(server_conf(r"""
        location = /admin { deny all; recursive_error_pages on; error_page 403 /denied; }
        location = /guarded { session_require; recursive_error_pages on; error_page 401 /denied; }
        location = /denied { session_set flag 1; cookie_set flag 1; return 403 "denied"; }
    """, "session_encrypt off;"))
    for path in ("/admin", "/guarded"):
        r = srv.raw(path)
        assert r.status in (401, 403) and r.set_cookies == [], (path, r.set_cookies)


# ---- log lines ----------------------------------------------------------------------------------

def test_rejected_cookie_lines_are_rate_limited(nginx):
    srv = nginx(server_conf('location = /w { return 200 "$session_status"; }'))
    mark = srv.log_mark()
    t0 = time.time()
    for i in range(300):
        srv.raw("/w", headers=[("Cookie", f"session=garbage{i}")])
    t1 = time.time()
    lines = srv.grep_log("rejected", mark, "info")
    # at most 100 lines per wall-clock second (nginx's ngx_time()), plus the summary line of
    # each: count the seconds the run touched, not its length (300 requests in 0.3 s can
    # straddle a second boundary)
    seconds = int(t1) - int(t0) + 1
    assert len(lines) <= 101 * seconds, (len(lines), seconds)
    if seconds <= 2:
        assert len(lines) < 300, "not limited at all"


@pytest.mark.parametrize("directive,message", [
    ("session_redis_timeout 0;", "must be greater than 0"),
    ("session_require /login#frag;", "must be a local path"),
])
def test_more_values_fail_nginx_t(nginx_t, directive, message):
    rc, out = nginx_t(server_conf("location = /x { return 200; }", directive))
    assert rc != 0 and message in out, out
