"""Sessions are trusted only where they were made (issue 9, part 1): which requests may write a
session and which are checked.

- Actions (and every session write) apply only to responses of requests that passed the access
  phase, or that a location-level `return` answered: never to a request that allow/deny,
  auth_basic, auth_request, satisfy, limit_req, limit_conn or session_require refused.
- session_require holds in subrequests (auth_request backends, SSI include virtual): 401.
- A server-level `return` (or `if` + `return`) is covered by a server-level session_require, and
  the login and logout locations are exempt from an inherited one.
"""

import socket
import time

import pytest

import helpers
import login_support as L
from helpers import cookie_named, make_cookie, payload_of, server_conf

SECRET_LINES = ["s" * 40]
STATIC = {"html/grant": "granted\n", "html/page": "page\n", "html/big": "x" * 200000}


def grant_conf(guard: str, extra_server: str = "", http_extra: str = "") -> str:
    """A static location protected by nginx's own access control (`guard`), with actions."""
    return server_conf(f"""
        location = /grant {{
            {guard}
            session_set role admin;
            cookie_set granted yes;
        }}
        location = /open {{ session_set role visitor; cookie_set granted maybe; }}
        location = /whoami {{ return 200 "role=[$session_role] status=$session_status"; }}
        location = /deny204 {{ internal; return 403; }}
        location = /allow204 {{ internal; return 204; }}
        location = /big {{ limit_rate 1k; }}
    """, "session_encrypt off; root {prefix}/html; " + extra_server, http_extra=http_extra)


def assert_no_writes(r):
    assert r.set_cookies == [], f"a refused request wrote cookies: {r.set_cookies}"


REFUSALS = [
    # id, guard, request headers, expected status
    ("deny-all", "deny all;", [], 403),
    ("allow-other", "allow 10.0.0.0/8; deny all;", [], 403),
    ("auth_basic-no-credentials", 'auth_basic "x"; auth_basic_user_file {prefix}/htpasswd;', [],
     401),
    ("auth_basic-wrong-password", 'auth_basic "x"; auth_basic_user_file {prefix}/htpasswd;',
     [("Authorization", "Basic " + "YWRtaW46d3Jvbmc=")], 401),
    ("auth_request-403", "auth_request /deny204;", [], 403),
    ("satisfy-any-both-fail", 'satisfy any; deny all; auth_basic "x"; '
                              "auth_basic_user_file {prefix}/htpasswd;", [], 401),
    ("session_require-401", "session_require;", [], 401),
    ("session_require-302", "session_require /login;", [("Accept", "text/html")], 302),
]


@pytest.mark.parametrize("guard,headers,status", [c[1:] for c in REFUSALS],
                         ids=[c[0] for c in REFUSALS])
def test_refused_requests_get_no_actions(nginx, guard, headers, status):
    htpasswd = L.htpasswd_text({"admin": L.hash_password("sha", "secret")})
    srv = nginx(grant_conf(guard), secrets=SECRET_LINES,
                files=dict(STATIC, htpasswd=htpasswd.encode()))
    r = srv.raw("/grant", headers=headers)
    assert r.status == status, r.raw[:300]
    assert_no_writes(r)
    # the same request with a valid session: refused all the same, session untouched
    cookie = make_cookie(SECRET_LINES[0], {"user": "bob"})
    r = srv.raw("/grant", headers=headers + [("Cookie", f"session={cookie}")])
    if "session_require" not in guard:
        assert r.status == status
        assert_no_writes(r)


PASSES = [
    ("allow", "allow 127.0.0.1; deny all;", []),
    ("auth_basic-ok", 'auth_basic "x"; auth_basic_user_file {prefix}/htpasswd;',
     [("Authorization", "Basic YWRtaW46c2VjcmV0")]),
    ("auth_request-204", "auth_request /allow204;", []),
    ("no-guard", "", []),
]


@pytest.mark.parametrize("guard,headers", [c[1:] for c in PASSES], ids=[c[0] for c in PASSES])
def test_requests_that_pass_access_get_their_actions(nginx, guard, headers):
    htpasswd = L.htpasswd_text({"admin": L.hash_password("sha", "secret")})
    srv = nginx(grant_conf(guard), secrets=SECRET_LINES,
                files=dict(STATIC, htpasswd=htpasswd.encode()))
    r = srv.raw("/grant", headers=headers)
    assert r.status == 200, r.raw[:300]
    assert payload_of(cookie_named(r, "session")) == {"role": "admin"}
    assert cookie_named(r, "granted") is not None


def test_location_return_runs_before_access_and_keeps_its_actions(nginx):
    """`return` ends the request in the rewrite phase, before nginx's access checks: the actions
    apply as in v1 (DESIGN), and README says to protect such a location with session_require."""
    srv = nginx(server_conf('location = /r { deny all; session_set role x; return 200 "r"; }',
                            "session_encrypt off;"), secrets=SECRET_LINES)
    r = srv.raw("/r")
    assert r.status == 200
    assert payload_of(cookie_named(r, "session")) == {"role": "x"}


def test_limit_req_refusal_gets_no_actions(nginx):
    srv = nginx(grant_conf("limit_req zone=one;",
                           http_extra="limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;"),
                secrets=SECRET_LINES, files=STATIC)
    first = srv.raw("/grant")
    assert first.status == 200 and cookie_named(first, "session")
    second = srv.raw("/grant")
    assert second.status == 503, second.raw[:200]
    assert_no_writes(second)


def test_limit_conn_refusal_gets_no_actions(nginx):
    srv = nginx(grant_conf("", extra_server="limit_conn addr 1;",
                           http_extra="limit_conn_zone $binary_remote_addr zone=addr:1m;"),
                secrets=SECRET_LINES, files=STATIC)
    hold = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        hold.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        assert hold.recv(100)  # the slow download is running and holds the connection slot
        r = srv.raw("/grant")
        assert r.status == 503, r.raw[:200]
        assert_no_writes(r)
    finally:
        hold.close()


# ---- subrequests --------------------------------------------------------------------------------

SUB = r"""
    location = /check { internal; session_require /login; return 204; }
    location /guarded/ { auth_request /check; }
    location = /secret { session_require /login; return 200 "SECRET-CONTENT"; }
    location = /index.shtml { ssi on; default_type text/html; }
"""


def test_session_require_in_an_auth_request_backend(nginx):
    srv = nginx(server_conf(SUB, "root {prefix}/html; session_encrypt off;"), secrets=SECRET_LINES,
                files={"html/guarded/doc": "DOC\n", "html/index.shtml": "x"})
    # a browser: the subrequest gets 401 (a 302 would become a 500 under auth_request)
    r = srv.raw("/guarded/doc", headers=[("Accept", "text/html")])
    assert r.status == 401, r.raw[:300]
    assert b"DOC" not in r.body
    cookie = make_cookie(SECRET_LINES[0], {"user": "bob"})
    r = srv.raw("/guarded/doc", headers=[("Cookie", f"session={cookie}")])
    assert r.status == 200 and r.body == b"DOC\n"


def test_session_require_in_an_ssi_include(nginx):
    page = '<p>before</p><!--# include virtual="/secret" --><p>after</p>'
    srv = nginx(server_conf(SUB, "root {prefix}/html; session_encrypt off;"), secrets=SECRET_LINES,
                files={"html/index.shtml": page})
    r = srv.raw("/index.shtml", headers=[("Accept", "text/html")])
    assert r.status == 200
    assert b"SECRET-CONTENT" not in r.body and b"after" in r.body
    cookie = make_cookie(SECRET_LINES[0], {"user": "bob"})
    r = srv.raw("/index.shtml", headers=[("Cookie", f"session={cookie}")])
    assert b"SECRET-CONTENT" in r.body


def test_actions_in_an_ssi_include_are_ignored_and_logged_once(nginx):
    srv = nginx(server_conf('location = /index.shtml { ssi on; default_type text/html; }\n'
                            'location = /act { session_set x 1; return 200 "act"; }',
                            "root {prefix}/html;"),
                secrets=SECRET_LINES, files={"html/index.shtml": '<!--# include virtual="/act" -->'})
    for _ in range(3):
        r = srv.raw("/index.shtml")
        assert r.status == 200 and b"act" in r.body
        assert cookie_named(r, "session") is None
    assert srv.count_log("session actions are not applied in subrequests", level="warn") == 1


# ---- server level -------------------------------------------------------------------------------

def test_server_level_return_is_protected(nginx):
    srv = nginx(f"""
server {{
    listen 127.0.0.1:{{port}};
    session_secret_file {{secret_file}};
    session_encrypt off;
    session_require;
    return 200 "SERVER-SECRET";
}}""", secrets=SECRET_LINES)
    r = srv.raw("/")
    assert r.status == 401 and b"SERVER-SECRET" not in r.body
    cookie = make_cookie(SECRET_LINES[0], {"user": "bob"})
    r = srv.raw("/", headers=[("Cookie", f"session={cookie}")])
    assert r.status == 200 and r.body == b"SERVER-SECRET"


def test_server_level_if_return_is_protected_and_login_is_exempt(nginx):
    users = {"alice": L.hash_password("apr1", "pw")}
    srv = nginx(L.site("session_login_user_file {prefix}/users;",
                       server_extra='session_require /login;\n'
                                    '    if ($arg_leak) { return 200 "SERVER-SECRET"; }',
                       locations='location = /public { session_require off; return 200 "pub"; }'),
                files=L.files_for(users))
    r = srv.raw("/anything?leak=1", headers=[("Accept", "text/html")])
    assert r.status == 302, r.raw[:300]
    assert r.header("Location").endswith("/login?next=/anything%3Fleak%3D1")
    assert b"SERVER-SECRET" not in r.body
    assert srv.raw("/anything?leak=1").status == 401
    # the login page itself (and the page template behind it) is not redirected to itself
    s = srv.session()
    page = L.get_login(srv, s)
    assert page.token
    r = L.post_login(srv, s, {"username": "alice", "password": "pw", "csrf_token": page.token})
    assert r.status_code == 303, r.text
    r = srv.get("/anything?leak=1", session=s)
    assert r.status_code == 200 and r.text == "SERVER-SECRET"
    # logout is exempt too (with and without a session), and a public location stays public
    assert srv.get("/logout", session=s).status_code == 303
    assert srv.get("/logout").status_code == 303
    assert srv.get("/public").text == "pub"
