"""Review of the perf commits 56e3bcc..f207061 (cookie scanner, bytes_equal, raw pointers into the
verified-cookie table kept alive by the request's hold, ctx + cleanup in one allocation, lazy
refusal exemptions). Each test asserts the contract (DESIGN.md) on the changed path.

Outcome of the review: every test here PASSES on f207061 (no defect found); they stay as
guards. The lifetime tests were checked to be sensitive: with hold_until_request_ends turned
into a no-op (a local mutant, not committed), the ASan build reports heap-use-after-free in
ngx_http_script_copy_capture_code / ngx_http_headers_filter and three of them fail.

Run against build/sbin/nginx, and against the ASan build for the lifetime tests:
  NGINX_BIN=build/asan/sbin/nginx ASAN_OPTIONS=detect_leaks=0:log_path=... pytest t/review/...
"""

import threading
import time

import pytest

import helpers
from helpers import server_conf
from test_review_verified_cache import LONG_USER, SlowUpstream

LONG_OTHER = "bob-" + "y" * 44   # heap-allocated text, like LONG_USER


def evict_table(srv, secret, n=2500, names=("session",)):
    """n requests on one keep-alive connection, each with a new valid cookie of every name in
    one Cookie header: every slot of the worker's verified-cookie table is replaced (bounded:
    n requests)."""
    conn = srv.session()
    for i in range(n):
        cookie = "; ".join(
            f"{name}={helpers.make_cookie(secret, {'user': f'evict{i}'}, name=name)}"
            for name in names)
        r = srv.get("/whoami", session=conn, headers={"Cookie": cookie})
        assert r.status_code == 200


def run_in_thread(fn):
    result = {}

    def body():
        try:
            result["r"] = fn()
        except Exception as e:  # the worker may die under ASan
            result["e"] = e
    t = threading.Thread(target=body)
    t.start()
    return t, result


# ---------------------------------------------------------------------------------------------
# The cookie scanner in nginx: odd but legal (and illegal) Cookie header shapes give the same
# session as the generic pair scan (trimmed name == the cookie name, first '=' splits).

VALID = "status=valid user=alice name=\n"
INVALID = "status=invalid user= name=\n"
NONE = "status=none user= name=\n"

SHAPES = [
    ("session={v}", VALID),
    ("  session  =  {v}  ", VALID),
    ('session="{v}"', VALID),
    ('\tsession\t=\t"{v}"\t;', VALID),
    (";;session={v};;", VALID),
    ("; ;session={v}; ;", VALID),
    ("xsession=junk; session_x=junk; session={v}; sessionx=junk", VALID),
    ("session={v}; session={v}", VALID),
    ('session={v}; session = "{v}"', VALID),           # equal after unquoting: one candidate
    ("a=b; " * 300 + "session={v}", VALID),           # a long header
    ("session {v}", NONE),                             # no '=': not a pair
    ("session x={v}", NONE),                           # the name is "session x"
    ("se=ssion={v}", NONE),                            # the name is "se"
    ("=session={v}", NONE),                            # the name is empty
    ("session;={v}", NONE),
    ("session", NONE),
    ("session=", INVALID),                             # empty value: a (bad) session cookie
    ("session=={v}", INVALID),                         # value "={v}"
    ("session={v}=", INVALID),
    ('session="{v}', INVALID),                         # unbalanced quote kept
    ("session={v}; session=junk", VALID),              # one valid candidate of two
]


@pytest.mark.parametrize("shape,expect", SHAPES, ids=[f"shape{i}" for i in range(len(SHAPES))])
@pytest.mark.parametrize("kind", ["session_encrypt on;", "session_encrypt off;"],
                         ids=["sealed", "signed"])
def test_cookie_header_shapes(nginx, shape, expect, kind):
    srv = nginx(server_conf(helpers.APP_LOCATIONS, kind))
    value = helpers.cookie_value(helpers.cookie_named(srv.get("/login?u=alice")))
    for _ in range(3):  # first sight (verify + insert), then table hits
        r = srv.raw("/whoami", [("Cookie", shape.replace("{v}", value))])
        assert r.status == 200 and r.text == expect, (shape, r.text)


def test_cookie_split_over_header_lines_and_candidate_limits(nginx):
    """Several Cookie header lines; 8 distinct candidates with the valid one last are tried;
    a 9th distinct value is refused (overflow), not read past the array."""
    srv = nginx(server_conf(helpers.APP_LOCATIONS, "session_encrypt off;"))
    secret = srv.secrets[0]
    value = helpers.make_cookie(secret, {"user": "alice"})
    junk = [f"junk{i}" for i in range(9)]
    r = srv.raw("/whoami", [("Cookie", "a=1"), ("Cookie", f"session={value}")])
    assert r.text == VALID
    hdrs = [("Cookie", f"session={j}") for j in junk[:7]] + [("Cookie", f"session={value}")]
    for _ in range(2):
        assert srv.raw("/whoami", hdrs).text == VALID
    hdrs = [("Cookie", f"session={j}") for j in junk[:8]] + [("Cookie", f"session={value}")]
    for _ in range(2):
        assert srv.raw("/whoami", hdrs).text == INVALID
    # duplicates of one value count once
    hdrs = [("Cookie", f"session={junk[0]}")] * 20 + [("Cookie", f"session={value}")]
    assert srv.raw("/whoami", hdrs).text == VALID
    # two different valid ones: cookie tossing, no session
    other = helpers.make_cookie(secret, {"user": "mallory"})
    assert srv.raw("/whoami", [("Cookie", f"session={value}; session={other}")]).text == INVALID


def test_cookie_names_sharing_a_prefix_and_word_boundaries(nginx):
    """Cookie names of 1..17 bytes (every branch of bytes_equal) beside decoys that differ in
    one byte at each position: only the exact name is read."""
    for n in (1, 3, 4, 5, 7, 8, 9, 15, 16, 17):
        name = ("s" + "abcdefghijklmnopq")[:n]
        srv = nginx(server_conf(helpers.APP_LOCATIONS, f"session_cookie {name}; "
                                "session_encrypt off;"))
        secret = srv.secrets[0]
        good = helpers.make_cookie(secret, {"user": "alice"}, name=name)
        decoys = []
        for i in range(n):
            d = name[:i] + ("Z" if name[i] != "Z" else "Y") + name[i + 1:]
            decoys.append(f"{d}={helpers.make_cookie(secret, {'user': 'x'}, name=d)}")
        hdr = "; ".join(decoys + [f"{name}={good}", f"{name}x=1", f"{name[:-1]}=2"])
        for _ in range(2):
            assert srv.raw("/whoami", [("Cookie", hdr)]).text == VALID, name
        hdr = "; ".join(decoys)
        assert srv.raw("/whoami", [("Cookie", hdr)]).text == NONE, name
        srv.stop()


# ---------------------------------------------------------------------------------------------
# Raw pointers into the table: what a request took stays alive until it ends.

def test_two_bindings_in_one_request_survive_eviction(nginx):
    """Main request: table hit under cookie "session" (a regex capture points into the shared
    data); an auth_request subrequest loads a second session under cookie "sid" (a table hit:
    a second hold); the upstream is slow while every slot is replaced; the upstream's 404 goes
    (error_page) to a location under "sid" that loads it a third time and answers the capture
    and both users."""
    up = SlowUpstream(delay=3.0, status=404)
    try:
        snippet = server_conf(helpers.APP_LOCATIONS + f"""
    location = /a {{
        if ($session_user ~ "^(.+)$") {{ }}
        auth_request /auth;
        auth_request_set $subuser $upstream_http_x_none;
        proxy_pass http://127.0.0.1:{up.port};
        proxy_intercept_errors on;
        error_page 404 = /b;
    }}
    location = /auth {{
        internal;
        session_cookie sid;
        if ($session_user = "") {{ return 401; }}
        return 204;
    }}
    location = /b {{
        session_cookie sid;
        add_header X-Late "$session_user";
        return 200 "cap=[$1] sid=[$session_user]\\n";
    }}
""", "session_encrypt off;")
        srv = nginx(snippet)
        secret = srv.secrets[0]
        v1 = helpers.make_cookie(secret, {"user": LONG_USER}, name="session")
        v2 = helpers.make_cookie(secret, {"user": LONG_OTHER}, name="sid")
        cookie = f"session={v1}; sid={v2}"
        # first sights: verified, inserted, decoded data attached to the entries
        for _ in range(2):
            srv.raw("/whoami", [("Cookie", cookie)])
            srv.raw("/b", [("Cookie", cookie)])
        t, result = run_in_thread(lambda: srv.raw("/a", [("Cookie", cookie)]))
        time.sleep(0.7)
        evict_table(srv, secret, n=1500, names=("session", "sid"))
        t.join(30)
        assert "e" not in result, f"request failed: {result.get('e')!r}"
        r = result["r"]
        assert r.status == 200, r.data
        assert r.text == f"cap=[{LONG_USER}] sid=[{LONG_OTHER}]\n", repr(r.data)
        assert r.header("X-Late") == LONG_OTHER
    finally:
        up.close()


def test_server_and_location_bindings_loaded_twice_survive_eviction(nginx):
    """The session is loaded in SERVER_REWRITE under the server's cookie (a hit: the ctx's
    hold) and again in the location under another cookie (a hit: a pool-cleanup hold); both
    values, read late by add_header and the access log after every slot was replaced, are
    the users sent."""
    up = SlowUpstream(delay=3.0, status=200)
    try:
        snippet = server_conf(helpers.APP_LOCATIONS + f"""
    location = /slow {{
        session_cookie sid;
        proxy_pass http://127.0.0.1:{up.port};
        add_header X-Cap "$1";
        add_header X-User "$session_user";
        access_log {{prefix}}/late2.log late2;
    }}
""", "session_encrypt off; session_require; "
     'if ($session_user ~ "^(.+)$") { set $srvuser $1; }',
            http_extra="log_format late2 '$srvuser|$session_user';")
        # /whoami etc. need the server-level require satisfied: send a valid "session".
        srv = nginx(snippet)
        secret = srv.secrets[0]
        v1 = helpers.make_cookie(secret, {"user": LONG_USER}, name="session")
        v2 = helpers.make_cookie(secret, {"user": LONG_OTHER}, name="sid")
        cookie = f"session={v1}; sid={v2}"
        for _ in range(2):
            srv.raw("/whoami", [("Cookie", cookie)])
            srv.raw("/slow?warm", [("Cookie", cookie)])
        t, result = run_in_thread(lambda: srv.raw("/slow", [("Cookie", cookie)]))
        time.sleep(0.7)
        evict_table(srv, secret, n=1500, names=("session", "sid"))
        t.join(30)
        assert "e" not in result, f"request failed: {result.get('e')!r}"
        r = result["r"]
        assert r.status == 200, r.data
        assert r.header("X-Cap") == LONG_USER
        assert r.header("X-User") == LONG_OTHER
        time.sleep(0.3)
        lines = (srv.path / "late2.log").read_text().splitlines()
        assert lines[-1] == f"{LONG_USER}|{LONG_OTHER}", lines[-3:]
    finally:
        up.close()


def test_many_requests_one_worker_sharing_entries_under_churn(nginx):
    """Concurrent slow requests in one worker, half of them on one cookie, half on cookies
    whose entries are replaced meanwhile: each answers its own user."""
    up = SlowUpstream(delay=1.5, status=200)
    try:
        snippet = server_conf(helpers.APP_LOCATIONS + f"""
    location = /slow {{
        if ($session_user ~ "^(.+)$") {{ }}
        proxy_pass http://127.0.0.1:{up.port};
        add_header X-Cap "$1";
        add_header X-User "$session_user";
    }}
""", "session_encrypt on;")
        srv = nginx(snippet)
        users = [f"user{i}-" + "z" * 40 for i in range(12)]
        # sealed cookies made by nginx itself (helpers.make_cookie signs): log in through nginx
        values = [helpers.cookie_value(helpers.cookie_named(srv.get(f"/login?u={u}")))
                  for u in users]
        for v in values:
            srv.raw("/whoami", [("Cookie", f"session={v}")])
        threads = []
        for i in range(24):
            u, v = users[i % 12], values[i % 12]
            t, res = run_in_thread(lambda v=v: srv.raw("/slow", [("Cookie", f"session={v}")]))
            threads.append((t, res, u))
        time.sleep(0.3)
        conn = srv.session()
        for i in range(800):
            v = helpers.cookie_value(helpers.cookie_named(srv.get(f"/login?u=e{i}",
                                                                  session=conn)))
            srv.get("/whoami", session=conn, headers={"Cookie": f"session={v}"})
        for t, res, u in threads:
            t.join(30)
            assert "e" not in res, res.get("e")
            r = res["r"]
            assert r.status == 200 and r.header("X-Cap") == u and r.header("X-User") == u
    finally:
        up.close()


def test_nginx_reload_with_requests_in_flight(nginx):
    """A request holding a table entry while nginx reloads (old worker drains, new worker
    gets a new table): the old request still answers its own user."""
    up = SlowUpstream(delay=2.0, status=200)
    try:
        snippet = server_conf(helpers.APP_LOCATIONS + f"""
    location = /slow {{
        if ($session_user ~ "^(.+)$") {{ }}
        proxy_pass http://127.0.0.1:{up.port};
        add_header X-Cap "$1";
        add_header X-User "$session_user";
    }}
""", "session_encrypt off;")
        srv = nginx(snippet)
        secret = srv.secrets[0]
        v = helpers.make_cookie(secret, {"user": LONG_USER})
        srv.raw("/whoami", [("Cookie", f"session={v}")])
        t, res = run_in_thread(lambda: srv.raw("/slow", [("Cookie", f"session={v}")]))
        time.sleep(0.5)
        srv.reload()
        t.join(30)
        assert "e" not in res, res.get("e")
        r = res["r"]
        assert r.status == 200 and r.header("X-Cap") == LONG_USER
        assert r.header("X-User") == LONG_USER
        assert helpers.poll(lambda: srv.raw("/whoami", [("Cookie", f"session={v}")]).text
                            == f"status=valid user={LONG_USER} name=\n", 10)
    finally:
        up.close()
