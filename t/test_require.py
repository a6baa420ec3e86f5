"""session_require [uri|off]: browsers (GET/HEAD accepting text/html) without a logged-in session
are sent to uri?next=<escaped request uri>, everything else gets 401; the check runs before the
location's rewrite directives, so `return`, `rewrite` and `if` cannot bypass it.
"""

import time
import urllib.parse

import pytest

import helpers
from helpers import make_cookie

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

CONF = r'''
    location = /login { return 200 "login page\n"; }
    location /private {
        session_require /login;
        return 200 "hello $session_user\n";
    }
    location /api {
        session_require;
        return 200 "api $session_user\n";
    }
    location /open {
        session_require off;
        return 200 "open\n";
    }
    location /rw {
        session_require;
        rewrite ^ /open last;
    }
    location /iff {
        session_require;
        if ($arg_x) { return 200 "bypassed\n"; }
        return 200 "iff $session_user\n";
    }
    location /proxied {
        session_require /login;
        proxy_pass http://127.0.0.1:{port2};
    }
'''

UPSTREAM = r'''
server {
    listen 127.0.0.1:{port2};
    location / { return 200 "upstream\n"; }
}
'''


def server_conf(locations, server_extra="", http_extra=""):
    """The protected server plus the upstream on {port2}."""
    return helpers.server_conf(locations, server_extra, http_extra) + UPSTREAM



def escape_next(uri: str) -> str:
    return urllib.parse.quote(uri, safe="/-._~")


CASES = [
    # id, method, path, Accept, session data (None: no cookie), status, Location (path?query)
    ("html-get-redirects", "GET", "/private/page", HTML, None, 302,
     "/login?next=/private/page"),
    ("html-head-redirects", "HEAD", "/private/page", "text/html", None, 302,
     "/login?next=/private/page"),
    ("html-query-escaped", "GET", "/private/p?x=1&y=a b", HTML, None, 302, None),
    ("html-percent-escaped", "GET", "/private/a%20b?q=%3Cx%3E", HTML, None, 302, None),
    ("html-unicode-escaped", "GET", "/private/caf%C3%A9", HTML, None, 302, None),
    ("post-html-401", "POST", "/private/page", HTML, None, 401, None),
    ("put-html-401", "PUT", "/private/page", HTML, None, 401, None),
    ("json-401", "GET", "/private/page", "application/json", None, 401, None),
    ("no-accept-401", "GET", "/private/page", None, None, 401, None),
    ("star-accept-401", "GET", "/private/page", "*/*", None, 401, None),
    ("no-uri-html-401", "GET", "/api/x", HTML, None, 401, None),
    ("logged-in-200", "GET", "/private/page", HTML, {"user": "alice"}, 200, None),
    ("logged-in-post-200", "POST", "/private/page", "application/json", {"user": "alice"}, 200,
     None),
    ("logged-in-api-200", "GET", "/api/x", None, {"user": "alice"}, 200, None),
    ("empty-user-not-logged-in", "GET", "/api/x", None, {"user": ""}, 401, None),
    ("no-user-key-not-logged-in", "GET", "/private/page", HTML, {"name": "waws"}, 302,
     "/login?next=/private/page"),
    ("non-string-user-false", "GET", "/api/x", None, {"user": False}, None, None),
    ("off-open", "GET", "/open", HTML, None, 200, None),
    ("rewrite-cannot-bypass", "GET", "/rw", None, None, 401, None),
    ("rewrite-logged-in", "GET", "/rw", None, {"user": "alice"}, 200, None),
    ("if-return-cannot-bypass", "GET", "/iff?x=1", None, None, 401, None),
    ("if-logged-in", "GET", "/iff", None, {"user": "alice"}, 200, None),
    ("proxy-protected", "GET", "/proxied/x", HTML, None, 302, "/login?next=/proxied/x"),
    ("proxy-logged-in", "GET", "/proxied/x", HTML, {"user": "alice"}, 200, None),
    ("login-page-reachable", "GET", "/login", HTML, None, 200, None),
]

BODIES = {
    "logged-in-200": "hello alice\n", "logged-in-post-200": "hello alice\n",
    "logged-in-api-200": "api alice\n", "off-open": "open\n", "rewrite-logged-in": "open\n",
    "if-logged-in": "iff alice\n", "proxy-logged-in": "upstream\n",
    "login-page-reachable": "login page\n",
}


@pytest.mark.parametrize("method,path,accept,data,status,location",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_require(nginx, request, method, path, accept, data, status, location):
    srv = nginx(server_conf(CONF, "session_encrypt off;"))
    headers = []
    if accept:
        headers.append(("Accept", accept))
    if data is not None:
        headers.append(("Cookie", "session=" + make_cookie(srv.secrets[0], data)))
    r = srv.raw(path.replace(" ", "%20"), headers, method=method)
    if status is None:      # implementation-defined, but never an error
        assert r.status in (200, 401), r.raw[:300]
        return
    assert r.status == status, r.raw[:400]
    if status == 302:
        loc = r.header("Location")
        split = urllib.parse.urlsplit(loc)
        if split.scheme:     # absolute_redirect made it absolute: same origin only
            assert split.netloc in (f"localhost", f"localhost:{srv.port}",
                                    f"127.0.0.1:{srv.port}"), loc
        target = split.path + ("?" + split.query if split.query else "")
        want = location or "/login?next=" + escape_next(path.replace(" ", "%20"))
        assert target == want, loc
    if status == 200 and method != "HEAD":
        assert r.text == BODIES[request.node.callspec.id]
    if status in (302, 401):
        assert "hello" not in r.text and "bypassed" not in r.text and "api" not in r.text


def test_next_escaping_exact(nginx):
    """The escape set is exactly RFC 3986 unreserved plus '/': everything else %XX (upper)."""
    srv = nginx(server_conf(CONF))
    r = srv.raw("/private/a-b.c_d~e/f%2Fg?h=i&j=k+l;m", [("Accept", "text/html")])
    loc = r.header("Location")
    assert loc.endswith("/login?next=/private/a-b.c_d~e/f%252Fg%3Fh%3Di%26j%3Dk%2Bl%3Bm"), loc


def test_require_inherited_from_server(nginx):
    srv = nginx(server_conf(r'''
        location / { return 200 "in $session_user\n"; }
        location = /login { session_require off; return 200 "login\n"; }
    ''', "session_require /login; session_encrypt off;"))
    r = srv.raw("/anything", [("Accept", "text/html")])
    assert r.status == 302 and "/login?next=/anything" in r.header("Location")
    assert srv.raw("/login", [("Accept", "text/html")]).status == 200
    r = srv.raw("/x", [("Cookie", "session=" + make_cookie(srv.secrets[0], {"user": "a"}))])
    assert r.status == 200 and r.text == "in a\n"


@pytest.mark.parametrize("cookie", ["garbage", "", "AAAA"], ids=["garbage", "empty", "short"])
def test_bad_cookie_is_not_logged_in(nginx, cookie):
    srv = nginx(server_conf(CONF))
    r = srv.raw("/api/x", [("Cookie", "session=" + cookie)])
    assert r.status == 401


def test_expired_session_is_not_logged_in(nginx):
    srv = nginx(server_conf(CONF, "session_encrypt off; session_lifetime 1h;"))
    now = int(time.time())
    cookie = make_cookie(srv.secrets[0], {"user": "alice"}, created=now - 4000, refreshed=now)
    r = srv.raw("/private/x", [("Accept", "text/html"), ("Cookie", "session=" + cookie)])
    assert r.status == 302 and r.header("Location").endswith("/login?next=/private/x")


def test_browser_flow_with_jar(nginx):
    """requests follows nothing: 302 to login, log in, the protected page shows the user."""
    srv = nginx(server_conf(CONF + r'''
        location = /do-login { session_set user $arg_u; return 302 /private/page; }
        location = /do-logout { session_destroy; return 302 /login; }
    '''))
    s = srv.session()
    s.headers["Accept"] = HTML
    r = srv.get("/private/page", s)
    assert r.status_code == 302 and r.headers["Location"].endswith("/login?next=/private/page")
    r = srv.get("/do-login?u=alice", s)
    assert r.status_code == 302
    r = srv.get("/private/page", s)
    assert r.status_code == 200 and r.text == "hello alice\n"
    srv.get("/do-logout", s)
    assert srv.get("/private/page", s).status_code == 302
