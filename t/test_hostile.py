"""Hostile input at the HTTP level (issue 6): it never costs more than the request.

* Thousands of seeded random mutations of valid session cookies (cookie store with
  session_encrypt on and off, Redis store id cookies): none is accepted, none answers 5xx, no
  worker dies, and with Redis none costs a Redis command.
* Random bytes as login POST bodies (form and other content types, Content-Length and chunked,
  up to 20 KiB): always 4xx, never 5xx.
* Header injection through every directive that writes a header (session_set read back through
  add_header / return / proxy_set_header, cookie_set, cookie_delete, session_require's Location,
  session_login's 303, session_login_auth's X-Session-* headers): no injected header line in the
  raw response nor in what the upstream received, no control byte in any header line.

Reproduce a failure with the same seed: HARDENING_SEED=<n> (the default is fixed).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import time
import urllib.parse

import pytest

import helpers
import hardening_support as H
from helpers import cookie_named, cookie_value, server_conf

SEED = int(os.environ.get("HARDENING_SEED", "20240606"))
N_MUTATIONS = int(os.environ.get("HARDENING_MUTATIONS", "3000"))

OTHER_SECRET = "other-" + "q" * 44   # a different server's secret (>= 32 bytes)

# ---------------------------------------------------------------------------------------------
# Mutated session cookies
# ---------------------------------------------------------------------------------------------

MUTATION_LOCATIONS = r"""
    location = /login  { session_set user $arg_u; session_set pad $arg_p; return 200 "ok\n"; }
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
"""


def mutation_conf(store: str) -> str:
    if store == "redis":
        extra = "session_store redis; session_redis 127.0.0.1:{rport};"
    else:
        extra = f"session_encrypt {store};"
    main = server_conf(MUTATION_LOCATIONS, extra, "large_client_header_buffers 4 32k;")
    # The same secret under another cookie name, and another secret under the same name: their
    # valid cookies must not be accepted by the main server.
    alt = (
        "server {\n    listen 127.0.0.1:{port2};\n    session_secret_file {secret_file};\n"
        "    session_cookie alt;\n    " + extra + "\n" + MUTATION_LOCATIONS + "}\n")
    other = (
        "server {\n    listen 127.0.0.1:{port3};\n    session_secret_file {prefix}/other.txt;\n"
        "    " + extra + "\n" + MUTATION_LOCATIONS + "}\n")
    return main + alt + other


def issue(port: int, user: str, pad: str = "", name: str = "session") -> str:
    r = helpers.http_request(port, f"/login?u={user}&p={pad}")
    assert r.status == 200, r.raw[:300]
    sc = cookie_named(r, name)
    assert sc is not None, r.set_cookies
    return cookie_value(sc)


WHOAMI_RE = re.compile(r"^status=(\w*) user=(.*)\n$", re.S)


@pytest.mark.parametrize("store", ["on", "off", "redis"],
                         ids=["encrypt-on", "encrypt-off", "redis"])
def test_mutated_cookies_are_never_accepted(nginx, redis_server, store):
    srv = nginx(mutation_conf(store), rport=redis_server.port,
                files={"other.txt": OTHER_SECRET + "\n"})
    seed = SEED + {"on": 1, "off": 2, "redis": 3}[store]
    rng = random.Random(seed)

    # Valid cookies of different lengths (pad key), plus valid cookies from elsewhere.
    pool = [issue(srv.port, u, "x" * n) for u, n in
            (("alice", 0), ("bob", 5), ("carol", 40), ("dave", 1), ("eve", 200))]
    foreign = [issue(srv.port2, "alice", name="alt"), issue(srv.port2, "bob", "zz", name="alt"),
               issue(srv.port3, "alice"), issue(srv.port3, "bob", "zz")]
    for v in pool:   # positive control
        r = helpers.http_request(srv.port, "/whoami", [("Cookie", "session=" + v)])
        assert r.text.startswith("status=valid user="), r.text
    for v in foreign:   # negative control: valid elsewhere, not here
        r = helpers.http_request(srv.port, "/whoami", [("Cookie", "session=" + v)])
        assert r.text == "status=invalid user=\n", (v, r.text)

    master = srv.pid
    workers = H.workers_of(master)
    assert workers, "no worker process"
    rclient = redis_server.client()
    cmds_before = H.commands_processed(rclient) if store == "redis" else 0

    mut = H.Mutator(rng, pool, foreign)
    client = H.KeepAlive(srv.port)
    failures, kinds = [], {}
    started = time.monotonic()
    try:
        for i in range(N_MUTATIONS):
            kind, value, header = mut.one()
            kinds[kind] = kinds.get(kind, 0) + 1
            r = client.request("/whoami", [("Cookie", header)])
            m = WHOAMI_RE.match(r.text)
            if r.status != 200 or not m or m.group(1) == "valid" or m.group(2) != "":
                failures.append((i, kind, header, r.status, r.text[:200]))
                if len(failures) >= 20:
                    break
    finally:
        client.close()
    elapsed = time.monotonic() - started

    assert not failures, (
        f"seed {seed}: {len(failures)} mutated cookies not refused cleanly "
        f"(index, kind, Cookie header, status, body):\n" +
        "\n".join(repr(f) for f in failures))
    # every mutation kind was exercised
    assert set(kinds) == set(H.Mutator.KINDS), kinds
    if store == "redis":
        # A forged or tampered id is refused before any I/O: the only commands Redis processed
        # are our own INFO calls.
        delta = H.commands_processed(rclient) - cmds_before
        assert delta <= 1, f"{delta - 1} Redis commands for {N_MUTATIONS} refused cookies"
    assert H.workers_of(master) == workers, "a worker was replaced"
    assert not H.crash_lines(srv), H.crash_lines(srv)
    assert not srv.grep_log("[error]"), srv.grep_log("[error]")[:5]
    # still serving the valid cookie
    r = helpers.http_request(srv.port, "/whoami", [("Cookie", "session=" + pool[0])])
    assert r.text == "status=valid user=alice\n", r.text
    print(f"{N_MUTATIONS} mutations ({store}) in {elapsed:.1f}s: {sorted(kinds.items())}")


# ---------------------------------------------------------------------------------------------
# Random login bodies
# ---------------------------------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"
LOGIN_PAGE = (
    '<form action="/login" method="POST">'
    '<input type="hidden" name="csrf_token" value="<!--# echo var="session_csrf_token" -->">'
    '<input type="hidden" name="next" value="<!--# echo var="session_login_next" -->">'
    '<p id="error"><!--# echo var="session_login_error" default="" --></p></form>\n')
ALICE_SHA = "{SHA}" + base64.b64encode(hashlib.sha1(b"password").digest()).decode()

LOGIN_SITE = r"""
server {
    listen 127.0.0.1:{port};
    session_secret_file {secret_file};
    root {prefix}/html;
    default_type text/html;
    location = /login {
        session_login;
        session_login_page /login.shtml;
        session_login_user_file {prefix}/users;
        session_login_redirect /home;
    }
    location = /login.shtml { internal; ssi on; }
    location = /ping { return 200 "pong\n"; }
    location = /whoami { return 200 "user=[$session_user] v=[$session_v]\n"; }
    %s
}
"""

TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]*)"')


def login_files(extra=None):
    f = {"users": f"alice:{ALICE_SHA}\n", "html/login.shtml": LOGIN_PAGE}
    f.update(extra or {})
    return f


def csrf(srv):
    """(Cookie header value, token) from GET /login."""
    r = helpers.http_request(srv.port, "/login")
    assert r.status == 200, r.raw[:300]
    sc = cookie_named(r, "session_csrf")
    assert sc, r.set_cookies
    m = TOKEN_RE.search(r.text)
    assert m and m.group(1), r.text
    return "session_csrf=" + cookie_value(sc), m.group(1)


def random_body(rng: random.Random) -> bytes:
    kind = rng.random()
    n = rng.choice((rng.randint(0, 64), rng.randint(0, 2048), rng.randint(0, 20 * 1024)))
    if kind < 0.5:
        return rng.randbytes(n)
    if kind < 0.8:   # form-ish garbage
        alphabet = b"abcdefghijklmnopqrstuvwxyz=&%+0123456789ABCDEF_\x00\xff"
        return bytes(rng.choice(alphabet) for _ in range(n))
    # field names the module reads, with garbage values
    fields = [b"username", b"password", b"next", b"csrf_token", b"x"]
    parts = []
    while sum(len(p) for p in parts) < n:
        parts.append(rng.choice(fields) + b"=" + rng.randbytes(rng.randint(0, 40)))
    return b"&".join(parts)[:max(n, 1)]


def test_random_login_bodies_are_4xx(nginx):
    srv = nginx(LOGIN_SITE % "", files=login_files())
    rng = random.Random(SEED + 10)
    cookie, token = csrf(srv)
    workers = H.workers_of(srv.pid)
    seen, failures = {}, []

    def check(what, ex):
        seen[ex.status] = seen.get(ex.status, 0) + 1
        if not 400 <= ex.status < 500:
            failures.append((what, ex.status, ex.data[:200]))
        # never a session from garbage
        for line in ex.header_values("Set-Cookie"):
            if line.startswith(b"session="):
                failures.append((what, "session cookie issued", line))

    for i in range(300):
        body = random_body(rng)
        if i % 3 == 2:   # a valid token somewhere in the garbage: reaches the credential check
            body = body[:rng.randint(0, 100)] + b"&csrf_token=" + token.encode() + b"&" + body
        if rng.random() < 0.65:
            ctype = rng.choice((FORM, FORM + "; charset=utf-8", "Application/X-WWW-Form-URLEncoded"))
        else:
            ctype = rng.choice((None, "application/octet-stream", "text/plain",
                                "multipart/form-data; boundary=x", FORM + "x", ""))
        headers = [("Cookie", cookie)] if rng.random() < 0.8 else []
        if ctype is not None:
            headers.append(("Content-Type", ctype))
        if i % 5 == 4:
            req = helpers.build_request("POST", "/login",
                                        headers + [("Transfer-Encoding", "chunked")],
                                        H.chunked(body, rng), content_length=False)
            what = ("chunked", i, ctype, len(body))
        else:
            req = helpers.build_request("POST", "/login", headers, body)
            what = ("length", i, ctype, len(body))
        # closing is test_failed_login_finishes_the_request's business: do not wait for it
        check(what, helpers.raw_exchange(srv.port, req, close_wait=0.02))
        if len(failures) >= 20:
            break

    # malformed chunked framing
    for i, framing in enumerate([
            b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n", b"-1\r\nx\r\n0\r\n\r\n",
            b"ffffffffffffffffff\r\nx\r\n0\r\n\r\n", b"4;ext=\x01\r\nabcd\r\n0\r\n\r\n",
            b"5000\r\n" + b"a" * 0x5000 + b"\r\n0\r\n\r\n",
            b"1\r\n\xff\r\n0\r\nTrailer: x\r\n\r\n"]):
        req = helpers.build_request("POST", "/login",
                                    [("Cookie", cookie), ("Content-Type", FORM),
                                     ("Transfer-Encoding", "chunked")],
                                    framing, content_length=False)
        check(("bad-chunked", i), helpers.raw_exchange(srv.port, req, close_wait=0.02))

    assert not failures, f"seed {SEED + 10}:\n" + "\n".join(repr(f) for f in failures[:20])
    assert H.workers_of(srv.pid) == workers
    assert not H.crash_lines(srv)
    assert helpers.http_request(srv.port, "/ping").status == 200
    # the form still works after all that
    body = urllib.parse.urlencode({"username": "alice", "password": "password",
                                   "csrf_token": token}).encode()
    ex = helpers.raw_exchange(srv.port, helpers.build_request(
        "POST", "/login", [("Cookie", cookie), ("Content-Type", FORM)], body))
    assert ex.status == 303, ex.data[:300]
    print("statuses:", sorted(seen.items()))


def test_failed_login_finishes_the_request(nginx):
    """A login POST answered with the page (403 bad CSRF, 401 missing fields or wrong password)
    must finish the request like any other response: with Connection: close (and HTTP/1.0) the
    server closes the connection, with keep-alive the next request is served, and no
    connection or file descriptor stays behind in the worker."""
    srv = nginx(LOGIN_SITE % "", files=login_files())
    cookie, token = csrf(srv)
    worker = H.workers_of(srv.pid)[0]
    fds = H.fd_count(worker)
    cases = {
        "403 no csrf": b"username=alice&password=password",
        "401 missing fields": b"csrf_token=" + token.encode(),
        "401 wrong password": b"username=alice&password=nope&csrf_token=" + token.encode(),
    }
    problems = []
    for what, body in cases.items():
        hdrs = [("Cookie", cookie), ("Content-Type", FORM)]
        ex = helpers.raw_exchange(srv.port, helpers.build_request("POST", "/login", hdrs, body),
                                  close_wait=1.0)
        if not ex.closed:
            problems.append(f"{what}: HTTP/1.1 Connection: close -> {ex.status}, complete "
                            f"response, connection left open")
        req = (b"POST /login HTTP/1.0\r\nCookie: " + cookie.encode() +
               b"\r\nContent-Type: " + FORM.encode() +
               b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        ex = helpers.raw_exchange(srv.port, req, timeout=1.0, close_wait=1.0)
        if not ex.closed:
            problems.append(f"{what}: HTTP/1.0 -> {ex.status}, the response (delimited by "
                            f"the close) never ends: connection left open")
        c = H.KeepAlive(srv.port, timeout=1.0)
        try:
            r = c.request("/login", hdrs, "POST", body)
            try:
                r2 = c.request("/ping")
                if r2.status != 200:
                    problems.append(f"{what}: keep-alive follow-up got {r2.status}")
            except OSError as e:
                problems.append(f"{what}: keep-alive follow-up after {r.status}: {e!r}")
        finally:
            c.close()
    time.sleep(0.2)
    grown = H.fd_count(worker) - fds
    if grown > 0:
        problems.append(f"worker {worker} holds {grown} more fds after the client closed: "
                        + "; ".join(H.fd_listing(worker)[-grown:]))
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# Header injection
# ---------------------------------------------------------------------------------------------

INJECT_LOCATIONS = r"""
    location ~ "(?s)^/set/(.*)$" { session_set v $1; return 200 "set\n"; }
    location = /seta { session_set v $arg_v; return 200 "set\n"; }
    location = /read/header   { add_header X-V $session_v always; return 200 "ok\n"; }
    location = /read/body     { return 200 "v=[$session_v]\n"; }
    location = /read/location { return 302 "/r/$session_v"; }
    location = /read/proxy {
        proxy_set_header X-V $session_v;
        proxy_set_header X-W "w-$session_v-w";
        proxy_pass http://127.0.0.1:{port2}/echo;
    }
    location = /read/proxy_py {
        proxy_set_header X-V $session_v;
        proxy_pass http://127.0.0.1:{echo}/py;
    }
    location = /read/cookie { cookie_set c $session_v; return 200 "ok\n"; }
    location ~ "(?s)^/cs/([^/]*)/(.*)$" { cookie_set $1 $2 path=/p; return 200 "ok\n"; }
    location = /csa { cookie_set $arg_n $arg_v path=/p; return 200 "ok\n"; }
    location ~ "(?s)^/cd/(.*)$" { cookie_delete $1 path=/p; return 200 "ok\n"; }
    location /private { session_require /login; return 200 "private\n"; }
    location = /auth {
        internal;
        add_header X-Session-V $session_login_password always;
        add_header X-Session-User $session_login_username always;
        return 204;
    }
"""

UPSTREAM = r"""
server {
    listen 127.0.0.1:{port2};
    location = /echo {
        return 200 "injected=[$http_x_injected] v=[$http_x_v] w=[$http_x_w]\n";
    }
}
"""

# Values as percent-encoded path segments (decoded by nginx into $1) and their intent.
PAYLOADS = [
    "a%0d%0aX-Injected:%20yes",
    "a%0aX-Injected:%20yes",
    "a%0dX-Injected:%20yes",
    "%0d%0aX-Injected:%20yes%0d%0a%0d%0a<html>split",
    "a%0d%0a%20X-Injected:%20folded",
    "a%00X-Injected:%20yes",
    "a%0bX-Injected",
    "a%0cX-Injected",
    "a%7fX-Injected",
    "a%09X-Injected:%20tab",
    "%1bX-Injected",
    "%c3%a9t%c3%a9%e2%80%a8X-Injected:%20yes",       # U+2028 line separator
    "%c2%85X-Injected:%20yes",                        # U+0085 NEL
    "%e5%98%8a%e5%98%8dX-Injected:%20yes",           # U+560A U+560D (low bytes 0a 0d)
    "%ef%bc%8d%0d%0aX-Injected:%20yes",
    "plain%20value",                                  # a control: stored and read back
]


def decoded(p: str) -> bytes:
    return urllib.parse.unquote_to_bytes(p)


def has_ctl(b: bytes) -> bool:
    return any(c < 0x20 or c == 0x7f for c in b)


def assert_clean(ex: helpers.RawResponse, what):
    problems = H.head_problems(ex)
    assert not problems, f"{what}: {problems}\n{ex.data[:600]!r}"
    assert ex.status < 500, f"{what}: {ex.status}\n{ex.data[:300]!r}"


def get(srv, path, headers=()):
    return helpers.raw_exchange(srv.port, helpers.build_request("GET", path, headers))


@pytest.fixture
def inject_srv(nginx, echo_upstream):
    srv = nginx(server_conf(INJECT_LOCATIONS, "session_encrypt off;") + UPSTREAM,
                echo=echo_upstream.port)
    srv.echo = echo_upstream
    return srv


def read_back(srv, cookie: str, what):
    """Every read-back location with the session cookie: nothing injected anywhere."""
    h = [("Cookie", cookie)]
    for loc in ("/read/header", "/read/body", "/read/location", "/read/cookie"):
        assert_clean(get(srv, loc, h), (what, loc))
    ex = get(srv, "/read/proxy", h)
    assert_clean(ex, (what, "/read/proxy"))
    assert ex.status == 200, (what, ex.data[:300])
    assert ex.body.startswith(b"injected=[] "), (what, ex.body)
    n = len(srv.echo.requests)
    ex = get(srv, "/read/proxy_py", h)
    assert_clean(ex, (what, "/read/proxy_py"))
    assert ex.status == 200, (what, ex.data[:300])
    assert len(srv.echo.requests) == n + 1
    rec = srv.echo.requests[-1]
    names = [k.lower() for k, _ in rec["headers"]]
    assert "x-injected" not in names, (what, rec["raw_headers"])
    for k, v in rec["headers"]:
        assert not has_ctl(v.encode("latin-1", "replace")), (what, k, v)
    return ex


def test_session_set_values_cannot_inject_headers(inject_srv):
    srv = inject_srv
    for p in PAYLOADS:
        value = decoded(p)
        for path in (f"/set/{p}", f"/seta?v={p}"):
            mark = srv.log_mark()
            ex = get(srv, path)
            assert_clean(ex, path)
            if path.startswith("/set/") and b"\0" in value:
                # nginx's own URI parser refuses a decoded NUL before any module runs
                assert ex.status == 400, (path, ex.data[:300])
                continue
            assert ex.status == 200, (path, ex.data[:300])
            sc = [v for v in ex.header_values("Set-Cookie") if v.startswith(b"session=")]
            refused = srv.grep_log("value has a control byte, refused", mark)
            if path.startswith("/set/") and has_ctl(value):
                # a control byte is refused (logged at warn), never stored
                assert refused and "[warn]" in refused[0], (path, srv.log_since(mark))
                assert not sc, (path, sc)
                continue
            assert not refused, (path, refused)
            assert len(sc) == 1, (path, ex.data[:400])
            cookie = sc[0].split(b";", 1)[0].decode("latin-1")
            stored = helpers.payload_of(cookie.split("=", 1)[1])["v"].encode("utf-8")
            assert stored == (value if path.startswith("/set/") else p.encode()), (path, stored)
            read_back(srv, cookie, path)
            # the value reaches the upstream intact (not silently altered) when it is clean
            ex = get(srv, "/read/proxy", [("Cookie", cookie)])
            assert b"v=[" + stored + b"]" in ex.body, (path, ex.body)
    assert not H.forged_log_lines(srv), H.forged_log_lines(srv)[:5]


def test_stored_control_bytes_read_as_empty(inject_srv):
    """A session written by something else (an older app, a crafted cookie signed with the
    server's key) holding CR/LF/NUL: the variable reads as empty, nothing reaches a header."""
    srv = inject_srv
    secret = srv.secrets[0]
    for p in PAYLOADS:
        value = decoded(p).decode("utf-8", "surrogateescape")
        try:
            data = helpers.session_json({"user": "alice", "v": value})
        except UnicodeEncodeError:
            continue
        cookie = "session=" + helpers.make_cookie(secret, data)
        ex = get(srv, "/read/body", [("Cookie", cookie)])
        assert ex.status == 200, ex.data[:300]
        if has_ctl(decoded(p)):
            assert ex.body == b"v=[]\n", (p, ex.body)
        read_back(srv, cookie, ("crafted", p))
    assert not H.forged_log_lines(srv), H.forged_log_lines(srv)[:5]


def test_redis_stored_control_bytes_read_as_empty(nginx, redis_server, echo_upstream):
    """The same with a record written into Redis by an app (Flask-Session shares the keys)."""
    srv = nginx(server_conf(INJECT_LOCATIONS,
                            "session_store redis; session_redis 127.0.0.1:{rport};") + UPSTREAM,
                echo=echo_upstream.port, rport=redis_server.port)
    srv.echo = echo_upstream
    r = redis_server.client()
    for p in PAYLOADS:
        sid = os.urandom(16)
        r.set("session:" + sid.hex(),
              helpers.session_json({"user": "alice", "v": decoded(p).decode("latin-1")}), ex=600)
        cookie = "session=" + helpers.sign_envelope(srv.secrets[0], "session", sid,
                                                    kind=helpers.KIND_ID)
        ex = get(srv, "/read/body", [("Cookie", cookie)])
        assert ex.status == 200, ex.data[:300]
        if has_ctl(decoded(p)):
            assert ex.body == b"v=[]\n", (p, ex.body)
        read_back(srv, cookie, ("redis", p))
    assert not H.forged_log_lines(srv), H.forged_log_lines(srv)[:5]


COOKIE_OCTET = re.compile(rb"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$")
TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

COOKIE_NAMES = ["c", "a%0d%0aX-Injected:%20yes", "a;b", "a,b", "a%20b", "a=b", "a%00b",
                "a%7f", "%c3%a9", "a%22b", "a:b", "a%09b", "X-Injected:%20yes%0d%0aZ"]
COOKIE_VALUES = ["v", "v%0d%0aX-Injected:%20yes", "v;%20Path=/evil;%20Domain=evil.example",
                 "v,%20x=y", "v%20w", "%22quoted%22", "v%00x", "%7f", "%c3%a9%e2%80%a8",
                 "v%5cw", "%25%30%64", "", "v%0aSet-Cookie:%20evil=1", "v%09w"]


SET_TAILS = (b"; Path=/p", b"; Path=/p; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT")


def check_set_cookie_lines(ex, what):
    """Every Set-Cookie is name=value with a token name, a cookie-octet value and exactly the
    attributes the directive configured: nothing smuggled in through the name or the value."""
    for sc in ex.header_values("Set-Cookie"):
        pair, sep, rest = sc.partition(b";")
        name, eq, val = pair.partition(b"=")
        assert eq and TOKEN.match(name), (what, sc)
        assert COOKIE_OCTET.match(val), (what, sc)
        if name not in (b"session", b"session_csrf"):
            assert sep + rest in SET_TAILS, (what, sc)


def test_cookie_set_and_delete_cannot_inject(inject_srv):
    srv = inject_srv
    sent = 0
    for n in COOKIE_NAMES:
        for v in COOKIE_VALUES:
            for path in (f"/cs/{n}/{v}", f"/csa?n={n}&v={v}"):
                if not v and path.startswith("/cs/"):
                    continue
                ex = get(srv, path)
                assert_clean(ex, path)
                assert ex.status in (200, 400), (path, ex.data[:300])
                check_set_cookie_lines(ex, path)
                sent += len(ex.header_values("Set-Cookie"))
                if ex.status == 200 and path.startswith("/cs/c/"):
                    # a valid name with any value is sent, value encoded
                    assert len(ex.header_values("Set-Cookie")) == 1, (path, ex.data[:300])
        for path in (f"/cd/{n}",):
            ex = get(srv, path)
            assert_clean(ex, path)
            check_set_cookie_lines(ex, path)
    assert sent > 50, sent
    # a name that is not a token is not sent, and that is logged (what the log line may hold:
    # test_hostile_cookie_names_cannot_forge_log_lines)
    assert srv.grep_log("invalid cookie name"), "refused names are not logged"

FAIL2BAN = re.compile(r'session login failed: user ".*", client: (\S+)')
FORGED = ("x%0a2026/01/01%2000:00:00%20[info]%201#1:%20*1%20session%20login%20failed:%20user%20"
          "%22admin%22,%20client:%20203.0.113.9")
FORGED_1LINE = ("x%20session%20login%20failed:%20user%20%22admin%22,%20client:%20203.0.113.9"
                "%20%22")


def test_hostile_cookie_names_cannot_forge_log_lines(inject_srv):
    """cookie_set/cookie_delete log a refused name at warn. A name from the request must not
    forge error.log lines: no raw CR/LF (a line of its own), no text fail2ban's documented
    failregex (README's, here in a looser unanchored form: `session login failed: user ".*",
    client: <HOST>`) would take for a failed login from another address."""
    srv = inject_srv
    mark = srv.log_mark()
    for name in (FORGED, FORGED_1LINE, "a%0d%0aX-Injected:%20yes", "a%0dB"):
        for path in (f"/cs/{name}/v", f"/cd/{name}"):
            ex = get(srv, path)
            assert_clean(ex, path)
    assert srv.grep_log("invalid cookie name", mark), "refused names are not logged"
    problems = [f"forged line: {l!r}" for l in H.forged_log_lines(srv, mark)]
    for l in srv.log_since(mark):
        m = FAIL2BAN.search(l)
        if m:
            problems.append(f"fail2ban would ban {m.group(1)} for: {l!r}")
    assert not problems, "\n".join(problems)


REQUIRE_PATHS = [
    b"/private/%0d%0aX-Injected:%20yes",
    b"/private/x?q=%0d%0aX-Injected:%20yes",
    b"/private/%0aX-Injected:yes?next=%0d%0a%0d%0a",
    b'/private/"quoted"?a="b"&c=\'d\'',
    b"/private/%22%27%3c%3e",
    b"/private/%e5%98%8a%e5%98%8dX-Injected:%20yes",
    b"/private/%00x",
    b"/private/%7f%1b%0b",
    b"/private/x?%0d%0aSet-Cookie:%20evil=1",
    b"/private//evil.example/%2e%2e",
    b"/private/\xc3\xa9?\xff",
]


def test_session_require_location_cannot_inject(inject_srv):
    srv = inject_srv
    for p in REQUIRE_PATHS:
        ex = get(srv, p, [("Accept", "text/html")])
        assert_clean(ex, p)
        if ex.status == 400:   # refused by nginx's own parser
            continue
        assert ex.status == 302, (p, ex.data[:300])
        loc = ex.header_values("Location")
        assert len(loc) == 1, (p, ex.data[:300])
        m = re.match(rb"^(?:http://[^/]+)?/login\?next=([\x21-\x7e]*)$", loc[0])
        assert m, (p, loc)
        nxt = urllib.parse.unquote_to_bytes(m.group(1).decode("latin-1"))
        # the original request comes back intact (escaped on the wire, not altered)
        assert nxt.startswith(b"/private/"), (p, loc, nxt)
        for ch in b"\"'<> ":
            assert bytes([ch]) not in m.group(1), (p, loc)
    assert not H.forged_log_lines(srv), H.forged_log_lines(srv)[:5]


NEXT_VALUES = [
    "/ok\r\nX-Injected: yes", "/ok\nX-Injected: yes", "/ok\rX-Injected: yes",
    "\r\n/ok", "/ok\x00X-Injected: yes", "/ok\x0bx", "/ok\x7fx", "/ok\tx",
    "/ok%0d%0aX-Injected:%20yes", "/ok%250d%250aX-Injected", "/ok\u2028X-Injected: yes",
    "/ok\u560a\u560dX-Injected: yes", "/ok?a=\r\nX-Injected: yes", "/ok#\r\nX-Injected",
    "/ok \"quoted\" 'x' <y>", "/ok/é", "//evil.example/\r\n", "/\\evil.example",
]


def test_login_redirect_cannot_inject(nginx):
    srv = nginx(LOGIN_SITE % "", files=login_files())
    cookie, token = csrf(srv)
    for nxt in NEXT_VALUES:
        body = urllib.parse.urlencode({"username": "alice", "password": "password",
                                       "csrf_token": token, "next": nxt}).encode()
        ex = helpers.raw_exchange(srv.port, helpers.build_request(
            "POST", "/login", [("Cookie", cookie), ("Content-Type", FORM)], body))
        assert_clean(ex, nxt)
        assert ex.status == 303, (nxt, ex.data[:300])
        loc = ex.header_values("Location")
        assert len(loc) == 1, (nxt, ex.data[:300])
        m = re.match(rb"^(?:http://localhost:\d+)?(/[\x21-\x7e]*)$", loc[0])
        assert m, (nxt, loc)
        assert not m.group(1).startswith((b"//", b"/\\")), (nxt, loc)
        dec = urllib.parse.unquote_to_bytes(m.group(1).decode("latin-1"))
        if has_ctl(nxt.encode()):
            # not a safe path: replaced by session_login_redirect
            assert m.group(1) == b"/home", (nxt, loc)
        assert not has_ctl(dec) or m.group(1) == b"/home", (nxt, loc)
        # GET /login?next=... renders the page: no header carries it
        ex = get(srv, "/login?next=" + urllib.parse.quote(nxt, safe=""))
        assert_clean(ex, ("GET", nxt))
        assert ex.status == 200
    assert not H.forged_log_lines(srv), H.forged_log_lines(srv)[:5]


def test_login_auth_headers_cannot_inject(nginx, echo_upstream):
    """session_login_auth: X-Session-* response headers of the auth location become session
    keys. Here they echo the submitted password/username, so a client controls them fully."""
    extra = r"""
    location = /login2 {
        session_login;
        session_login_page /login.shtml;
        session_login_auth /auth;
        session_login_redirect /home;
    }
    location = /read/header   { add_header X-V $session_v always; return 200 "ok\n"; }
    location = /read/body     { return 200 "v=[$session_v]\n"; }
    location = /read/location { return 302 "/r/$session_v"; }
    location = /read/proxy {
        proxy_set_header X-V $session_v;
        proxy_set_header X-U $session_user;
        proxy_pass http://127.0.0.1:{port2}/echo;
    }
    location = /read/proxy_py {
        proxy_set_header X-V $session_v;
        proxy_set_header X-U $session_user;
        proxy_pass http://127.0.0.1:{echo}/py;
    }
    location = /read/cookie { cookie_set c $session_v; return 200 "ok\n"; }
    location = /auth {
        internal;
        add_header X-Session-V $session_login_password always;
        add_header X-Session-User $session_login_username always;
        return 204;
    }
"""
    srv = nginx(LOGIN_SITE % extra + UPSTREAM, files=login_files(), echo=echo_upstream.port)
    srv.echo = echo_upstream
    cookie, token = csrf(srv)
    logged_in = 0
    for p in PAYLOADS:
        val = decoded(p).decode("latin-1")
        for user, password in (("alice", val), ("alice" + val, "pw")):
            body = urllib.parse.urlencode({"username": user, "password": password,
                                           "csrf_token": token}, encoding="latin-1").encode()
            ex = helpers.raw_exchange(srv.port, helpers.build_request(
                "POST", "/login2", [("Cookie", cookie), ("Content-Type", FORM)], body),
                close_wait=0.05)   # closing: test_failed_login_finishes_the_request
            assert_clean(ex, (p, user))
            assert ex.status in (303, 400, 401), (p, ex.data[:300])
            if any(b < 0x20 or b == 0x7f for b in (user + password).encode("latin-1")):
                # Credentials with control bytes never reach the auth location.
                assert ex.status == 401, (p, user, ex.status)
            sc = [v for v in ex.header_values("Set-Cookie") if v.startswith(b"session=")]
            if ex.status != 303 or not sc:
                continue
            logged_in += 1
            sess = sc[0].split(b";", 1)[0].decode("latin-1")
            ex2 = get(srv, "/read/body", [("Cookie", sess)])
            if has_ctl(decoded(p)):
                assert ex2.body == b"v=[]\n", (p, ex2.body)
            read_back(srv, sess + "; " + cookie, ("auth", p, user))
            who = get(srv, "/whoami", [("Cookie", sess)])
            assert not has_ctl(who.body[:-1]), (p, who.body)
    assert logged_in >= 1, "no login succeeded: nothing read back"
    assert not H.forged_log_lines(srv), H.forged_log_lines(srv)[:5]
