"""session_login_auth: credentials checked by a subrequest (like auth_request). The auth
location reads the submitted credentials from $session_login_username / $session_login_password;
2xx accepts, 401/403 reject (401 login page), anything else is a 503; X-Session-<Key> response
headers of an accepted check become session keys, X-Session-User canonicalises the user name.
"""

import time
import urllib.parse

import pytest

import helpers
import login_support as L
from helpers import cookie_named, set_cookie_headers

AUTH_PROXY = L.AUTH_PROXY

# No upstream at all: nginx itself checks the password. (add_header cannot set X-Session-*
# here: nginx's headers filter skips subrequests, so keys need a real response: see
# AUTH_LOOPBACK.)
AUTH_INLINE = r"""
    location = /auth {
        internal;
        if ($session_login_password = "letmein") {
            return 204;
        }
        return 401;
    }
"""

# The auth "service" is another nginx server block, which can use add_header.
AUTH_LOOPBACK = r"""
    location = /auth {
        internal;
        proxy_pass http://127.0.0.1:{port2}/check;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Pass $session_login_password;
    }
"""
LOOPBACK_SERVER = r"""
server {
    listen 127.0.0.1:{port2};
    location = /check {
        if ($http_x_pass = "letmein") {
            add_header X-Session-Role admin always;
            return 204;
        }
        return 401;
    }
}
"""

AUTH_CREDENTIALS = "session_login_auth /auth;\n        session_login_redirect /home;"
LOCATIONS_EXTRA = r"""
    location = /team { return 200 "team=[$session_team_name] level=[$session_level]\n"; }
"""


def accounts():
    return {
        "alice": ("letmein", 204, [("X-Session-Role", "admin")]),
        "bob": ("pw", 200, [("X-Session-Role", "viewer"), ("X-Session-Team-Name", "blue"),
                            ("X-Session-LEVEL", "3"), ("X-Other", "ignored")]),
        "Carol@Example.COM": ("pw", 204, [("X-Session-User", "carol"),
                                          ("X-Session-Role", "editor")]),
        "forbidden": ("pw", 403, [("X-Session-Role", "admin")]),
        "unauth": ("pw", 401, [("X-Session-Role", "admin")]),
        "broken": ("pw", 500, [("X-Session-Role", "admin")]),
        "moved": ("pw", 302, [("Location", "/elsewhere"), ("X-Session-Role", "admin")]),
        "teapot": ("pw", 418, []),
        "unicode": ("pässwörd & %41=1".encode().decode("latin-1"), 204, []),
    }


@pytest.fixture
def auth_service():
    svc = L.AuthService(accounts())
    yield svc
    svc.close()


@pytest.fixture
def auth_site(nginx, auth_service):
    def make(server_extra="", **kw):
        return nginx(L.site(AUTH_CREDENTIALS, locations=AUTH_PROXY + LOCATIONS_EXTRA,
                            server_extra=server_extra),
                     files={"html/login.shtml": L.login_page_bytes()},
                     aport=auth_service.port, **kw)
    return make


def role(srv, s):
    t = L.whoami(srv, s)
    return t.split("role=[", 1)[1].split("]", 1)[0]


def test_accept_stores_user_and_role(auth_site, auth_service):
    srv = auth_site()
    s = srv.session()
    r = L.login(srv, s, "alice", "letmein")
    assert r.status_code == 303, (r.status_code, r.text)
    assert r.headers["Location"] == srv.url("/home")
    assert cookie_named(r, "session") is not None
    assert L.whoami(srv, s).startswith("user=[alice] status=valid role=[admin]")
    assert srv.count_log('session login: user "alice" logged in', level="info") == 1
    # The auth location saw the credentials, no body.
    assert len(auth_service.requests) == 1
    req = auth_service.requests[0]
    assert req["path"] == "/check"
    assert req["method"] == "GET"      # README: "a GET subrequest without body"
    assert L.AuthService.header_values(req, "X-User") == ["alice"]
    assert L.AuthService.header_values(req, "X-Pass") == ["letmein"]
    assert L.AuthService.header_values(req, "X-Original-URI") == ["/login"]
    assert req["body"] == b""
    assert L.AuthService.header_values(req, "Content-Length") in ([], ["0"])


def test_accept_with_several_session_headers(auth_site):
    srv = auth_site()
    s = srv.session()
    r = L.login(srv, s, "bob", "pw", next_="/team")
    assert r.status_code == 303
    assert r.headers["Location"] == srv.url("/team")
    assert role(srv, s) == "viewer"
    assert srv.get("/team", session=s).text == "team=[blue] level=[3]\n"


def test_x_session_user_canonicalises_the_name(auth_site):
    srv = auth_site()
    s = srv.session()
    r = L.login(srv, s, "Carol@Example.COM", "pw")
    assert r.status_code == 303
    assert L.whoami(srv, s).startswith("user=[carol] status=valid role=[editor]")


@pytest.mark.parametrize("user,password", [
    ("alice", "wrong"), ("unauth", "pw"), ("forbidden", "pw"), ("nobody", "x"),
    ("alice", ""), ("alice", "letmein "),
])
def test_reject_is_a_401_page(auth_site, user, password):
    srv = auth_site()
    s = srv.session()
    mark = srv.log_mark()
    r = L.login(srv, s, user, password)
    assert r.status_code == 401, r.status_code
    assert L.page_error(r.text) == L.BAD_CREDENTIALS
    assert r.headers.get("Cache-Control") == "no-store"
    assert cookie_named(r, "session") is None, set_cookie_headers(r)
    assert L.whoami(srv, s).startswith("user=[] status=none role=[]")
    lines = srv.grep_log("session login failed", since=mark, level="info")
    assert len(lines) == 1 and f'user "{user}"' in lines[0], lines
    assert ", client: 127.0.0.1, " in lines[0], lines


def test_failure_log_line_has_the_same_form_as_with_a_user_file(auth_site):
    """One fail2ban filter for both credential sources: `session login failed: user "<name>",
    client: <addr>` exactly as the user-file path writes it (nothing between the name and
    nginx's ", client: ")."""
    import re
    srv = auth_site()
    s = srv.session()
    for user, pw in (("alice", "wrong"), ("forbidden", "pw"), ('q"x', "pw")):
        mark = srv.log_mark()
        assert L.login(srv, s, user, pw).status_code == 401
        lines = srv.grep_log("session login failed", since=mark, level="info")
        assert len(lines) == 1, lines
        assert re.search(r'\[info\] \d+#\d+: \*\d+ session login failed: user "[^"]*", '
                         r'client: 127\.0\.0\.1, server: ', lines[0]), lines[0]


@pytest.mark.parametrize("user", ["broken", "moved", "teapot"])
def test_other_statuses_are_503(auth_site, user):
    srv = auth_site()
    s = srv.session()
    r = L.login(srv, s, user, "pw")
    assert r.status_code == 503, r.status_code
    assert cookie_named(r, "session") is None
    assert L.whoami(srv, s).startswith("user=[] status=none role=[]")
    assert srv.grep_log("credential check failed", level="error")


def test_auth_service_down_is_503(nginx):
    dead = helpers.free_port()
    srv = nginx(L.site(AUTH_CREDENTIALS, locations=AUTH_PROXY),
                files={"html/login.shtml": L.login_page_bytes()}, aport=dead)
    s = srv.session()
    r = L.login(srv, s, "alice", "letmein")
    assert r.status_code == 503
    assert cookie_named(r, "session") is None
    assert L.whoami(srv, s).startswith("user=[] ")


def test_csrf_is_checked_before_the_subrequest(auth_site, auth_service):
    srv = auth_site()
    s = srv.session()
    L.get_login(srv, s)
    r = L.post_login(srv, s, {"username": "alice", "password": "letmein",
                              "csrf_token": "forged"})
    assert r.status_code == 403
    assert auth_service.requests == []


def test_auth_location_is_internal(auth_site, auth_service):
    srv = auth_site()
    assert srv.get("/auth").status_code == 404
    assert auth_service.requests == []


def test_credentials_with_special_characters_arrive_intact(auth_site, auth_service):
    srv = auth_site()
    s = srv.session()
    r = L.login(srv, s, "unicode", "pässwörd & %41=1")
    assert r.status_code == 303, r.status_code
    req = auth_service.requests[-1]
    assert L.AuthService.header_values(req, "X-Pass") == [
        "pässwörd & %41=1".encode().decode("latin-1")]


@pytest.mark.parametrize("password", [
    "wrong\r\nX-Pass: letmein", "wrong\nX-Pass: letmein", "wrong\rX-Pass: letmein",
    "wrong\r\n\r\nGET /admin HTTP/1.1", "x\x00y",
])
def test_control_bytes_in_the_password_cannot_forge_auth_headers(auth_site, auth_service,
                                                                 password):
    """$session_login_password goes into a header of the auth request (proxy_set_header does
    not escape): a CR/LF in the submitted password must not add header lines there (DESIGN.md:
    nothing can break a header). Either the module refuses such a password (401, maybe without
    asking the service) or it reaches the service as one header line."""
    srv = auth_site()
    s = srv.session()
    r = L.login(srv, s, "alice", password)
    assert r.status_code == 401, (password, r.status_code)
    assert L.whoami(srv, s).startswith("user=[] ")
    for req in auth_service.requests:
        passes = L.AuthService.header_values(req, "X-Pass")
        assert len(passes) <= 1, req["headers"]
        assert not any("\r" in v or "\n" in v for _, v in req["headers"]), req["headers"]
        assert req["path"] == "/check", req


def test_names_that_cannot_be_users_are_refused_without_asking(auth_site, auth_service):
    srv = auth_site()
    s = srv.session()
    for name in ("alice\r\nX-Pass: letmein", "alice\x00", "a:b", "x" * 300):
        r = L.login(srv, s, name, "letmein")
        assert r.status_code == 401, (name, r.status_code)
        assert cookie_named(r, "session") is None
    for req in auth_service.requests:
        assert L.AuthService.header_values(req, "X-User") in (["alice"], ["a:b"],
                                                               ["x" * 300]), req
        assert len(L.AuthService.header_values(req, "X-Pass")) == 1


def test_inline_auth_location(nginx):
    srv = nginx(L.site(AUTH_CREDENTIALS, locations=AUTH_INLINE),
                files={"html/login.shtml": L.login_page_bytes()})
    s = srv.session()
    assert L.login(srv, s, "anyone", "nope").status_code == 401
    assert L.whoami(srv, s).startswith("user=[] ")
    r = L.login(srv, s, "dave", "letmein")
    assert r.status_code == 303
    assert L.whoami(srv, s).startswith("user=[dave] status=valid role=[]")


def test_nginx_server_block_as_auth_service_sets_role(nginx):
    srv = nginx(L.site(AUTH_CREDENTIALS, locations=AUTH_LOOPBACK, http_extra=LOOPBACK_SERVER),
                files={"html/login.shtml": L.login_page_bytes()})
    s = srv.session()
    assert L.login(srv, s, "erin", "nope").status_code == 401
    r = L.login(srv, s, "erin", "letmein")
    assert r.status_code == 303
    assert L.whoami(srv, s).startswith("user=[erin] status=valid role=[admin]")


def test_rejected_check_headers_are_not_stored(auth_site):
    """A 401/403 answer's X-Session-* headers must not leak into a session."""
    srv = auth_site()
    s = srv.session()
    assert L.login(srv, s, "alice", "letmein").status_code == 303
    assert role(srv, s) == "admin"
    # A failed login on top of a valid session changes nothing.
    assert L.login(srv, s, "forbidden", "pw").status_code == 401
    assert L.whoami(srv, s).startswith("user=[alice] status=valid role=[admin]")


def test_auth_with_redis_store(nginx, auth_service, redis_server):
    srv = nginx(L.site(AUTH_CREDENTIALS, locations=AUTH_PROXY,
                       server_extra="session_store redis;\n    session_redis 127.0.0.1:{rport};"),
                files={"html/login.shtml": L.login_page_bytes()},
                aport=auth_service.port, rport=redis_server.port)
    s = srv.session()
    r = L.login(srv, s, "alice", "letmein")
    assert r.status_code == 303
    text = L.whoami(srv, s)
    assert text.startswith("user=[alice] status=valid role=[admin]"), text
    sid = text.split("id=[", 1)[1].split("]", 1)[0]
    rc = redis_server.client()
    rec = rc.hgetall("session:" + sid)
    assert rec == {b"user": b'"alice"', b"role": b'"admin"'}, rec
    r = srv.get("/logout", session=s)
    assert r.status_code == 303
    assert rc.exists("session:" + sid) == 0


def test_slow_auth_service_does_not_block(nginx):
    """The subrequest is asynchronous: a slow credential service does not hold the worker."""
    def slow(headers):
        time.sleep(0.5)
        return 204, []
    svc = L.AuthService(decide=slow)
    try:
        srv = nginx(L.site(AUTH_CREDENTIALS, locations=AUTH_PROXY),
                    files={"html/login.shtml": L.login_page_bytes()}, aport=svc.port)
        import threading
        out = {}

        def run():
            s = srv.session()
            t = time.monotonic()
            out["r"] = L.login(srv, s, "x", "y")
            out["t"] = time.monotonic() - t
        th = threading.Thread(target=run)
        th.start()
        time.sleep(0.15)
        t = time.monotonic()
        assert srv.get("/ping").status_code == 200
        ping = time.monotonic() - t
        th.join(10)
        assert out["r"].status_code == 303 and out["t"] > 0.4
        assert ping < 0.1, ping
    finally:
        svc.close()


def test_every_outcome_finishes_the_request(auth_site):
    """Accept, reject (401, 403), service error (503) and a CSRF failure all complete the
    request: `Connection: close` closes the connection, keep-alive serves the next request."""
    srv = auth_site()
    s = srv.session()
    page = L.get_login(srv, s)
    cookie = "session_csrf=" + s.cookies.get("session_csrf")

    def body(user, pw, token=page.token):
        return urllib.parse.urlencode({"username": user, "password": pw,
                                       "csrf_token": token}).encode()
    cases = [("accept-303", 303, body("alice", "letmein")),
             ("reject-401", 401, body("alice", "nope")),
             ("forbidden-401", 401, body("forbidden", "pw")),
             ("error-503", 503, body("broken", "pw")),
             ("bad-name-401", 401, body("a\x01b", "pw")),
             ("csrf-403", 403, body("alice", "letmein", "forged"))]
    import requests
    problems = []
    for name, status, b in cases:
        r = L.raw_post(srv.port, b, [("Content-Type", L.FORM_TYPE), ("Cookie", cookie)])
        got, closed = r.status, r.closed
        if got != status:
            problems.append(f"{name}: status {got}, expected {status}")
        if not closed:
            problems.append(f"{name}: with Connection: close the connection stayed open")
        ks = requests.Session()
        try:
            ks.get(srv.url("/ping"), timeout=3)    # a browser's earlier request (the form)
            ks.post(srv.url("/login"), data=b, allow_redirects=False, timeout=5,
                    headers={"Content-Type": L.FORM_TYPE, "Cookie": cookie})
            try:
                if ks.get(srv.url("/ping"), timeout=3).status_code != 200:
                    problems.append(f"{name}: next request on the connection failed")
            except requests.exceptions.RequestException as e:
                problems.append(f"{name}: next request on the keep-alive connection hung ({e})")
        finally:
            ks.close()
    assert not problems, "\n".join(problems)
