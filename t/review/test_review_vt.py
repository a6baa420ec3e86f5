"""Review of 55fa35e (verified-cookie table: a slot's shared block reused in place when only the
entry holds it; load() takes the fast path's lookup of the first cookie).

Attacks, each a running reproduction (one worker, so every request shares one table):
  - slot churn with decoded data attached on every insert: every response, hit or miss, shows
    its own cookie's data (never another's, never a stale decoded block);
  - requests holding a hit (and requests that missed and decode late) waiting on a slow upstream
    while every slot is reused, then reading the session late (add_header, log, SSI echo after a
    slow include, regex capture + error_page to another binding, auth_request);
  - the Redis store: an id cookie's hit copies the id (nothing held), its lookup waits on a
    stopped redis-server while every slot is reused;
  - the fast path's lookup reused by the loop: an expired table hit, two cookies of one name,
    tampered values of a table entry, other cookie names.
Run with NGINX_BIN=build/asan/sbin/nginx (ASAN_OPTIONS as scripts/asan-build.sh) for UAF checks.
"""
import os
import re
import signal
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import helpers  # noqa: E402
from conftest import LoopbackHTTPServer  # noqa: E402
from helpers import APP_LOCATIONS, server_conf  # noqa: E402

LONG = "x" * 40  # user names longer than the small-string buffer


class SlowUpstream(LoopbackHTTPServer):
    def __init__(self, delay, status=200):
        self.delay, self.status = delay, status
        super().__init__()

    def answer(self, handler, body):
        time.sleep(self.delay)
        return self.status, [], b"upstream\n"


def pipelined(port, reqs, batch=150):
    """reqs: list of (path, cookie header or None). Pipelined on keep-alive connections; returns
    the bodies in order (Content-Length framed)."""
    out = []
    for start in range(0, len(reqs), batch):
        chunk = reqs[start:start + batch]
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        data = b"".join(
            (f"GET {p} HTTP/1.1\r\nHost: x\r\n" + (f"Cookie: {c}\r\n" if c else "") +
             ("Connection: close\r\n" if i == len(chunk) - 1 else "") + "\r\n").encode()
            for i, (p, c) in enumerate(chunk))
        s.sendall(data)
        buf = b""
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            buf += d
        s.close()
        pos = 0
        for _ in chunk:
            he = buf.index(b"\r\n\r\n", pos)
            head = buf[pos:he].decode("latin1")
            m = re.search(r"(?im)^content-length:\s*(\d+)", head)
            n = int(m.group(1)) if m else 0
            out.append((head.split(" ", 2)[1], buf[he + 4:he + 4 + n].decode("utf-8", "replace")))
            pos = he + 4 + n
    return out


def storm(port, cookies, path="/whoami", name="session"):
    """Each cookie in turn (a miss and an insert, decoded and attached); every response checked
    against its own user."""
    res = pipelined(port, [(path, f"{name}={v}") for v, _ in cookies])
    bad = [(u, body) for (v, u), (st, body) in zip(cookies, res)
           if body != f"status=valid user={u} name=\n"]
    assert not bad, f"{len(bad)} responses with another session: {bad[:5]}"


def mint(secret, n, tag, name="session"):
    return [(helpers.make_cookie(secret, {"user": f"{tag}{i}-{LONG}"}, name=name),
             f"{tag}{i}-{LONG}") for i in range(n)]


def held_through_storm(srv, secret, mine, tag, path_of):
    """Each of mine's cookies on its own request to path_of(i) (a slow upstream holds them),
    while 3,000 new cookies take every slot of the table; {i: response or exception}."""
    results = {}

    def go(i, v):
        try:
            results[i] = srv.raw(path_of(i), [("Cookie", f"session={v}")])
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=go, args=(i, v)) for i, (v, _) in enumerate(mine)]
    for t in threads:
        t.start()
    time.sleep(0.8)
    storm(srv.port, mint(secret, 3000, tag))
    for t in threads:
        t.join(30)
    return results


def test_slot_churn_never_shows_another_cookies_data(nginx):
    """3 rounds of 2,000 cookies (every slot reused ~4x a round, decoded data attached each time),
    then the same cookies again (hits, or misses where evicted): every body is its own user's."""
    srv = nginx(server_conf(APP_LOCATIONS, "session_encrypt off;"))
    secret = srv.secrets[0]
    sets = [mint(secret, 2000, f"r{k}u") for k in range(3)]
    for cookies in sets:
        storm(srv.port, cookies)
        storm(srv.port, cookies[-300:])   # recent ones: table hits with data attached
    for cookies in sets:
        storm(srv.port, cookies)
    # encrypted kind too
    srv2 = nginx(server_conf(APP_LOCATIONS, "session_encrypt on;"))
    values = []
    for i in range(1500):
        r = srv2.get(f"/login?u=e{i}-{LONG}")
        values.append((helpers.cookie_value(helpers.cookie_named(r)), f"e{i}-{LONG}"))
    storm(srv2.port, values)
    storm(srv2.port, values)


@pytest.mark.parametrize("first_sight", ["hit", "miss"])
def test_slow_requests_keep_their_own_data_through_slot_reuse(nginx, first_sight):
    """20 requests, each its own cookie, wait on a slow upstream (hits sharing the table's block,
    or misses that decode late); 3,000 other cookies reuse every slot meanwhile; each then shows
    its own user in add_header and the access log; afterwards every one is still itself."""
    up = SlowUpstream(delay=3.0)
    try:
        srv = nginx(server_conf(APP_LOCATIONS + f"""
    location = /slow {{
        proxy_pass http://127.0.0.1:{up.port};
        add_header X-User "$session_user";
        access_log {{prefix}}/late.log late;
    }}
    location = /slowfirst {{
        set $u $session_user;
        proxy_pass http://127.0.0.1:{up.port};
        add_header X-User "$u|$session_user";
        access_log {{prefix}}/late.log late;
    }}
""", "session_encrypt off;", http_extra="log_format late '$session_user $session_status';"))
        secret = srv.secrets[0]
        mine = mint(secret, 20, "slow")
        if first_sight == "hit":
            storm(srv.port, mine)   # in the table, data attached
        results = held_through_storm(srv, secret, mine, "ev",
                                     lambda i: "/slowfirst" if i % 2 else "/slow")
        for i, (v, u) in enumerate(mine):
            r = results[i]
            assert not isinstance(r, Exception), r
            want = f"{u}|{u}" if i % 2 else u
            assert r.status == 200 and r.header("X-User") == want, (i, r.header("X-User"))
        time.sleep(0.3)
        lines = sorted((srv.path / "late.log").read_text().splitlines())
        assert lines == sorted(f"{u} valid" for _, u in mine), lines
        storm(srv.port, mine)
        storm(srv.port, mine)
    finally:
        up.close()


def test_ssi_subrequests_two_bindings_around_a_slow_include(nginx):
    """An SSI page reads the session (binding A), includes /b (binding B, another cookie name, its
    own table entry) and a slow upstream, during which every slot is reused, then reads both
    again; an auth_request reads it as well."""
    up = SlowUpstream(delay=2.5)
    try:
        srv = nginx(server_conf(APP_LOCATIONS + f"""
    location = /page {{
        ssi on;
        default_type text/html;
        auth_request /auth;
        return 200 'A1=<!--# echo var="session_user" --> B1=<!--# include virtual="/b" --> S=<!--# include virtual="/up" --> A2=<!--# echo var="session_user" --> B2=<!--# include virtual="/b" --> C=<!--# include virtual="/a" -->';
    }}
    location = /auth {{
        if ($session_user = "") {{ return 401; }}
        return 204;
    }}
    location = /a {{ return 200 "$session_user"; }}
    location = /b {{ session_cookie other; return 200 "$session_user"; }}
    location = /up {{ proxy_pass http://127.0.0.1:{up.port}; }}
""", "session_encrypt off;"))
        secret = srv.secrets[0]
        ua, ub = "alice-" + LONG, "bob-" + LONG
        va = helpers.make_cookie(secret, {"user": ua})
        vb = helpers.make_cookie(secret, {"user": ub}, name="other")
        hdr = f"session={va}; other={vb}"
        want = f"A1={ua} B1={ub} S=upstream\n A2={ua} B2={ub} C={ua}"
        r = srv.raw("/page", [("Cookie", hdr)])
        assert r.status == 200 and r.text == want, r.text       # fills the table
        res = {}
        t = threading.Thread(target=lambda: res.setdefault("r", srv.raw("/page",
                                                                         [("Cookie", hdr)])))
        t.start()
        time.sleep(0.8)
        storm(srv.port, mint(secret, 2500, "ssi"))
        t.join(30)
        assert res["r"].status == 200 and res["r"].text == want, res["r"].text
    finally:
        up.close()


def test_capture_then_error_page_to_other_binding_after_reuse(nginx):
    """$1 captured from a table hit's $session_user, slow upstream 404, every slot reused, then
    error_page to a location with another cookie name: $1 still the user."""
    up = SlowUpstream(delay=3.0, status=404)
    try:
        srv = nginx(server_conf(APP_LOCATIONS + f"""
    location = /a {{
        if ($session_user ~ "^(.+)$") {{ }}
        proxy_pass http://127.0.0.1:{up.port};
        proxy_intercept_errors on;
        error_page 404 = /b;
    }}
    location = /b {{
        session_cookie sid;
        set $probe $session_status;
        return 200 "cap=[$1] b=[$session_user]\\n";
    }}
""", "session_encrypt off;"))
        secret = srv.secrets[0]
        u = "carol-" + LONG
        v = helpers.make_cookie(secret, {"user": u})
        vs = helpers.make_cookie(secret, {"user": "sid-" + LONG}, name="sid")
        storm(srv.port, [(v, u)])
        res = {}
        t = threading.Thread(target=lambda: res.setdefault("r", srv.raw(
            "/a", [("Cookie", f"session={v}; sid={vs}")])))
        t.start()
        time.sleep(0.8)
        storm(srv.port, mint(secret, 2500, "cap"))
        t.join(30)
        assert res["r"].text == f"cap=[{u}] b=[sid-{LONG}]\n", res["r"].data
    finally:
        up.close()


def test_redis_id_hit_waits_on_stopped_redis_while_slots_are_reused(nginx, redis_server):
    """Redis store: the id is copied out of the table (no hold). A hit's lookup waits on a
    SIGSTOPped redis-server while a cookie-store server in the same worker reuses every slot;
    the answer is still the right session."""
    from redis_support import REDIS_LOCATIONS, session_cookie_value
    snippet = helpers.server_conf(
        REDIS_LOCATIONS,
        server_extra="session_store redis;\n    session_redis 127.0.0.1:{rport};\n"
                     "    session_redis_timeout 10s;") + """
server {
    listen 127.0.0.1:{port2};
    session_secret_file {secret_file};
    session_encrypt off;
""" + APP_LOCATIONS + "\n}\n"
    srv = nginx(snippet, rport=redis_server.port)
    port2 = srv.port2
    users = [f"red{i}-{LONG}" for i in range(10)]
    values = [session_cookie_value(srv.get(f"/login?u={u}")) for u in users]
    for v, u in zip(values, users):
        for _ in range(2):   # miss then hit
            r = srv.get("/whoami", headers={"Cookie": f"session={v}"})
            assert f"user={u} " in r.text, r.text
    pid = redis_server.proc.pid if hasattr(redis_server, "proc") else redis_server.pid
    os.kill(pid, signal.SIGSTOP)
    res = {}
    try:
        def go(i, v):
            try:
                res[i] = srv.raw("/whoami", [("Cookie", f"session={v}")])
            except Exception as e:
                res[i] = e
        ts = [threading.Thread(target=go, args=(i, v)) for i, v in enumerate(values)]
        for t in ts:
            t.start()
        time.sleep(0.5)
        secret = srv.secrets[0]
        storm(port2, mint(secret, 2500, "rs"))
    finally:
        os.kill(pid, signal.SIGCONT)
    for t in ts:
        t.join(30)
    for i, u in enumerate(users):
        assert not isinstance(res[i], Exception), res[i]
        assert f"status=valid user={u} " in res[i].text, (u, res[i].text)


def test_fast_path_lookup_reused_by_the_loop(nginx):
    """The loop takes the fast path's entry for the first cookie: an expired table hit stays
    expired; tampered/other-name variants of a table entry are rejected; two cookies of one name
    (one in the table) are tossing; a cached cookie then a garbage second one is still judged."""
    srv = nginx(server_conf(APP_LOCATIONS, "session_encrypt off; session_lifetime 3s;"))
    secret = srv.secrets[0]
    v = helpers.make_cookie(secret, {"user": "al"})
    w = helpers.make_cookie(secret, {"user": "bo"})
    conn = srv.session()
    for _ in range(3):
        assert srv.get("/whoami", session=conn, headers={"Cookie": f"session={v}"}).text == \
            "status=valid user=al name=\n"
    # other name, tampered, truncated: all rejected although v is in the table
    for hdr in (f"other={v}", f"session={helpers.flip_byte(v, -1)}", f"session={v[:-1]}",
                f"session={v}A"):
        assert srv.get("/whoami", session=conn, headers={"Cookie": hdr}).text.startswith(
            "status=") and "user=al" not in srv.get("/whoami", session=conn,
                                                     headers={"Cookie": hdr}).text, hdr
    # two valid cookies of one name (both in the table): tossing, not valid
    srv.get("/whoami", session=conn, headers={"Cookie": f"session={w}"})
    r = srv.get("/whoami", session=conn, headers={"Cookie": f"session={v}; session={w}"})
    assert r.text == "status=invalid user= name=\n", r.text
    # cached first, junk second: valid (junk ignored) as on a full verification
    r = srv.get("/whoami", session=conn, headers={"Cookie": f"session={v}; session=junk"})
    assert r.text == "status=valid user=al name=\n", r.text
    time.sleep(4.2)
    r = srv.get("/whoami", session=conn, headers={"Cookie": f"session={v}"})
    assert r.text == "status=expired user= name=\n", r.text
    r = srv.get("/whoami", session=conn, headers={"Cookie": f"session={v}"})
    assert r.text == "status=expired user= name=\n", r.text
    # a fresh cookie into the expired one's slot region still works
    x = helpers.make_cookie(secret, {"user": "cy"})
    assert srv.get("/whoami", session=conn, headers={"Cookie": f"session={x}"}).text == \
        "status=valid user=cy name=\n"


def test_renewal_after_slot_reuse_reseals_the_requests_own_payload(nginx):
    """session_renew re-seals the payload as received (payload_view, the table's block for a hit)
    in the header filter, after a slow upstream during which every slot is reused: the new
    cookie carries the request's own payload, for 10 concurrent sessions."""
    up = SlowUpstream(delay=3.0)
    try:
        srv = nginx(server_conf(APP_LOCATIONS + f"""
    location = /slow {{ proxy_pass http://127.0.0.1:{up.port}; }}
""", "session_encrypt off; session_idle_timeout 1h; session_renew 1s;"))
        secret = srv.secrets[0]
        old = int(time.time()) - 120
        mine = [(helpers.make_cookie(secret, {"user": f"ren{i}-{LONG}", "n": i}, created=old,
                                     refreshed=old), f"ren{i}-{LONG}") for i in range(10)]
        storm(srv.port, mine)   # in the table, data attached
        res = held_through_storm(srv, secret, mine, "rn", lambda i: "/slow")
        for i, (v, u) in enumerate(mine):
            r = res[i]
            assert not isinstance(r, Exception), r
            assert r.status == 200
            newv = None
            for line in r.header_all("Set-Cookie"):
                if line and line.startswith("session="):
                    newv = line.split(";", 1)[0][len("session="):]
            assert newv, f"no renewal for {u}: {r.data[:300]!r}"
            assert helpers.payload_of(newv) == {"user": u, "n": i}, (u, helpers.payload_of(newv))
    finally:
        up.close()
