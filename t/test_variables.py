"""Variables: $session_<key>, $session_user, $session_id, $session_status, $session_expires in
every place DESIGN.md lists: return, if, set, map, SSI echo/if, proxy_set_header, add_header,
log_format. The incoming session is crafted with the server's secret (session_encrypt off), so
every expected value is exact.
"""

import json
import time

import pytest

import helpers
from helpers import make_cookie, server_conf

DATA = {"user": "alice", "name": "waws", "n": 42, "flag": True, "nothing": None,
        "obj": {"x": [1, 2]}, "quote": 'say "hi"\\', "utf8": "café"}

LIFETIME = 3600

# id, http-level extra, location body, files, expected body (with {expires} / {created})
CASES = [
    ("return-user", "", 'return 200 "$session_user";', None, "alice"),
    ("return-key", "", 'return 200 "$session_name";', None, "waws"),
    ("missing-key-empty", "", 'return 200 "[$session_missing]";', None, "[]"),
    ("number-as-json", "", 'return 200 "$session_n";', None, "42"),
    ("bool-as-json", "", 'return 200 "$session_flag";', None, "true"),
    ("null-as-json", "", 'return 200 "$session_nothing";', None, "null"),
    ("object-as-json", "", 'return 200 "$session_obj";', None, '{"x":[1,2]}'),
    ("string-verbatim", "", 'return 200 "$session_quote";', None, 'say "hi"\\'),
    ("utf8-verbatim", "", 'return 200 "$session_utf8";', None, "café"),
    ("status-valid", "", 'return 200 "$session_status";', None, "valid"),
    ("id-empty-for-cookie-store", "", 'return 200 "[$session_id]";', None, "[]"),
    ("expires", "", 'return 200 "$session_expires";', None, "{expires}"),
    ("if-equals", "", 'if ($session_user = alice) { return 200 "admin"; } return 200 "guest";',
     None, "admin"),
    ("if-not-equals", "", 'if ($session_user = bob) { return 200 "admin"; } return 200 "guest";',
     None, "guest"),
    ("if-nonempty", "", 'if ($session_user) { return 200 "in"; } return 200 "out";', None, "in"),
    ("if-regex", "", 'if ($session_name ~ ^w(.)ws$) { return 200 "m=$1"; } return 200 "no";',
     None, "m=a"),
    ("if-status", "", 'if ($session_status = valid) { return 200 "ok"; } return 200 "no";', None,
     "ok"),
    ("set", "", 'set $greet "hi $session_user/$session_name"; return 200 $greet;', None,
     "hi alice/waws"),
    ("map", "map $session_user $role { alice admin; default guest; }",
     'return 200 "$role";', None, "admin"),
    ("map-status", "map $session_status $st { valid V; default other; }",
     'return 200 "$st";', None, "V"),
    ("ssi-echo", "", "ssi on; root {prefix}/html;",
     {"html/v/ssi-echo.html": '[<!--# echo var="session_name" -->]'}, "[waws]"),
    ("ssi-echo-user", "", "ssi on; root {prefix}/html;",
     {"html/v/ssi-echo-user.html": '<!--# echo var="session_user" default="anon" -->'},
     "alice"),
    ("ssi-if", "", "ssi on; root {prefix}/html;",
     {"html/v/ssi-if.html": '<!--# if expr="$session_user = alice" -->A<!--# else -->B'
                            '<!--# endif -->'}, "A"),
    ("ssi-if-status", "", "ssi on; root {prefix}/html;",
     {"html/v/ssi-if-status.html": '<!--# if expr="$session_status = valid" -->V'
                                   '<!--# else -->X<!--# endif -->'}, "V"),
]


def case_conf(http_extra, body):
    return server_conf("location /v/ { " + body + " }",
                       f"session_encrypt off; session_lifetime {LIFETIME}s;", http_extra)


@pytest.mark.parametrize("http_extra,body,files,expected", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_variable(nginx, http_extra, body, files, expected, request):
    name = request.node.callspec.id
    srv = nginx(case_conf(http_extra, body), files=files)
    created = int(time.time()) - 100
    cookie = make_cookie(srv.secrets[0], DATA, created=created, refreshed=int(time.time()))
    path = f"/v/{name}.html" if files else "/v/x"
    r = srv.raw(path, [("Cookie", "session=" + cookie)])
    assert r.status == 200, r.raw[:300]
    assert r.body.decode() == expected.replace("{expires}", str(created + LIFETIME))
    assert r.set_cookies == []   # reading never writes


NO_SESSION_CASES = [
    ("user", 'return 200 "[$session_user]";', "[]"),
    ("key", 'return 200 "[$session_name]";', "[]"),
    ("status", 'return 200 "$session_status";', "none"),
    ("expires", 'return 200 "[$session_expires]";', "[]"),
    ("id", 'return 200 "[$session_id]";', "[]"),
    ("if-empty", 'if ($session_user = "") { return 200 "anon"; } return 200 "in";', "anon"),
]


@pytest.mark.parametrize("body,expected", [c[1:] for c in NO_SESSION_CASES],
                         ids=[c[0] for c in NO_SESSION_CASES])
@pytest.mark.parametrize("cookie", [None, "other=1"], ids=["no-cookie", "unrelated-cookie"])
def test_variable_without_session(nginx, body, expected, cookie):
    srv = nginx(case_conf("", body))
    r = srv.raw("/v/x", [("Cookie", cookie)] if cookie else [])
    assert r.status == 200 and r.text == expected
    assert r.set_cookies == []


def test_reserved_names_win_over_keys(nginx):
    """Keys named status/id/expires cannot spoof the reserved variables; user is a plain key."""
    srv = nginx(case_conf("", 'return 200 "$session_status|$session_id|$session_expires|'
                              '$session_user";'))
    created = int(time.time()) - 10
    cookie = make_cookie(srv.secrets[0], {"status": "spoofed", "id": "spoofed",
                                          "expires": "1", "user": "u"}, created=created)
    r = srv.raw("/v/x", [("Cookie", "session=" + cookie)])
    assert r.text == f"valid||{created + LIFETIME}|u"


@pytest.mark.parametrize("value,status", [("garbage", "invalid"), ("", "invalid")])
def test_status_invalid_hides_data(nginx, value, status):
    srv = nginx(case_conf("", 'return 200 "$session_status|$session_user|$session_expires";'))
    r = srv.raw("/v/x", [("Cookie", "session=" + value)])
    assert r.status == 200 and r.text == f"{status}||"


def test_status_expired(nginx):
    srv = nginx(case_conf("", 'return 200 "$session_status|$session_user";'))
    now = int(time.time())
    cookie = make_cookie(srv.secrets[0], {"user": "alice"}, created=now - LIFETIME - 5,
                         refreshed=now - 5)
    r = srv.raw("/v/x", [("Cookie", "session=" + cookie)])
    assert r.text == "expired|"


def test_proxy_set_header_and_add_header(nginx, echo_upstream):
    srv = nginx(server_conf(r'''
        location /app {
            proxy_set_header X-User $session_user;
            proxy_set_header X-Session-Status $session_status;
            proxy_set_header X-Obj $session_obj;
            add_header X-User $session_user always;
            add_header X-Status $session_status always;
            proxy_pass http://127.0.0.1:{up};
        }
    ''', "session_encrypt off;"), up=echo_upstream.port)
    cookie = make_cookie(srv.secrets[0], DATA)
    r = srv.raw("/app/x", [("Cookie", "session=" + cookie)])
    assert r.status == 200
    assert r.header("X-User") == "alice" and r.header("X-Status") == "valid"
    got = dict(echo_upstream.requests[-1]["headers"])
    assert got["X-User"] == "alice" and got["X-Session-Status"] == "valid"
    assert got["X-Obj"] == '{"x":[1,2]}'
    # without a session the headers are simply absent (empty values)
    r = srv.raw("/app/y")
    assert r.header("X-User") is None and r.header("X-Status") == "none"
    got = dict(echo_upstream.requests[-1]["headers"])
    assert "X-User" not in got and got["X-Session-Status"] == "none"


def test_log_format(nginx):
    srv = nginx(server_conf(r'''
        location / {
            access_log {prefix}/session.log sess;
            return 200 "ok";
        }
    ''', "session_encrypt off;",
        "log_format sess 'user=[$session_user] status=$session_status name=[$session_name] "
        "exp=[$session_expires]';"))
    created = int(time.time()) - 10
    srv.raw("/", [("Cookie", "session=" + make_cookie(srv.secrets[0], DATA, created=created))])
    srv.raw("/")
    srv.raw("/", [("Cookie", "session=garbage")])
    lines = (srv.path / "session.log").read_text().splitlines()
    assert lines == [
        f"user=[alice] status=valid name=[waws] exp=[{created + 31 * 86400}]",
        # the log module writes "-" for empty values
        "user=[-] status=none name=[-] exp=[-]",
        "user=[-] status=invalid name=[-] exp=[-]",
    ]


def test_variables_after_login_round_trip_encrypted(nginx):
    """Default (encrypted) store: values set by session_set come back verbatim, also through
    `map` and `if`."""
    srv = nginx(server_conf(r'''
        location ~ "^/set/(.*)$" { session_set name $1; session_set user $arg_u; return 204; }
        location = /get {
            if ($session_user = "") { return 200 "anonymous"; }
            return 200 "$role:$session_user:[$session_name]";
        }
    ''', http_extra="map $session_user $role { alice admin; default guest; }"))
    s = srv.session()
    assert srv.get("/get", s).text == "anonymous"
    assert srv.get("/set/a%20%22b%22%5C?u=alice", s).status_code == 204
    assert srv.get("/get", s).text == 'admin:alice:[a "b"\\]'
    srv.get("/set/x?u=bob", s)
    assert srv.get("/get", s).text == "guest:bob:[x]"


def test_module_off_without_secret(nginx):
    """A server without session_secret_file does not process session cookies."""
    srv = nginx(server_conf('location / { return 200 "$session_status|$session_user"; }',
                            secret=False))
    cookie = make_cookie(helpers.random_secret(), {"user": "alice"})
    r = srv.raw("/", [("Cookie", "session=" + cookie)])
    assert r.status == 200 and r.text in ("none|", "|")
    assert r.set_cookies == []
