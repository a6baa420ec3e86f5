"""Actions: session_set / session_unset / session_clear / session_destroy / session_regenerate /
cookie_set / cookie_delete.

They apply once, when the response header goes out, for the final location (after `if`), with
`return 200`, `return 302`, inside `if` and before `proxy_pass`; variables in the same request
still show the session as it arrived. The session cookie store runs with session_encrypt off
here so the resulting data can be read out of the Set-Cookie exactly.
"""

import json
import re
import time
import urllib.parse

import pytest

import helpers
from helpers import (DELETED, cookie_named, cookie_value, decode_envelope, make_cookie,
                     match_cookie, payload_of, server_conf, session_deletion)

SESSION_SC = "session={v}; Path=/; HttpOnly; SameSite=Lax"


def one_location(body: str, path: str = "/a", extra: str = "") -> str:
    if path.startswith("~"):
        loc = f"location {path} {{ {body} }}"
    else:
        loc = f"location = {path} {{ {body} }}"
    return server_conf(loc, "session_encrypt off; " + extra)


# ---- which Set-Cookie headers a location produces ------------------------------------------------

HEADER_CASES = [
    # id, location body, request target, status, body (None: any), Set-Cookie list (sorted;
    # {v} = session value, {expires?} = optional Expires)
    ("set+return200", 'session_set name waws; return 200 "ok";', "/a", 200, "ok",
     [SESSION_SC]),
    ("set+return302", "session_set name waws; return 302 /next;", "/a", 302, None,
     [SESSION_SC]),
    ("set-in-if-matched", 'if ($arg_x) { session_set name waws; } return 200 "ok";', "/a?x=1",
     200, "ok", [SESSION_SC]),
    ("set-in-if-not-matched", 'if ($arg_x) { session_set name waws; } return 200 "ok";', "/a",
     200, "ok", []),
    ("set-in-if-with-302", 'if ($arg_u) { session_set user $arg_u; return 302 /; } '
                           'return 200 "form";', "/a?u=al", 302, None, [SESSION_SC]),
    ("set-in-if-with-302-form", 'if ($arg_u) { session_set user $arg_u; return 302 /; } '
                                'return 200 "form";', "/a", 200, "form", []),
    ("cookie_set-plain", 'cookie_set theme dark; return 200 "ok";', "/a", 200, "ok",
     ["theme=dark"]),
    ("cookie_set-all-attrs", "cookie_set theme dark path=/p domain=example.com secure httponly "
                             'samesite=strict partitioned; return 200 "ok";', "/a", 200, "ok",
     ["theme=dark; Path=/p; Domain=example.com; Secure; HttpOnly; SameSite=Strict; "
      "Partitioned"]),
    ("cookie_set-max_age", 'cookie_set theme dark max_age=1h; return 200 "ok";', "/a", 200,
     "ok", ["theme=dark; Max-Age=3600"]),
    ("cookie_set-samesite=none", 'cookie_set t v secure samesite=none; return 200 "ok";', "/a",
     200, "ok", ["t=v; Secure; SameSite=None"]),
    ("cookie_set-samesite=lax-httponly", 'cookie_set t v httponly samesite=lax; return 200 "";',
     "/a", 200, "", ["t=v; HttpOnly; SameSite=Lax"]),
    ("cookie_set-variable-value", 'cookie_set theme $arg_v; return 200 "ok";', "/a?v=blue",
     200, "ok", ["theme=blue"]),
    ("cookie_set-variable-name", 'cookie_set $arg_n x; return 200 "ok";', "/a?n=lang", 200,
     "ok", ["lang=x"]),
    ("cookie_set-in-if", 'if ($arg_x) { cookie_set theme dark; } return 200 "ok";', "/a?x=1",
     200, "ok", ["theme=dark"]),
    ("cookie_set-302", "cookie_set theme dark; return 302 /;", "/a", 302, None, ["theme=dark"]),
    ("two-cookie_set", 'cookie_set a 1; cookie_set b 2; return 200 "ok";', "/a", 200, "ok",
     ["a=1", "b=2"]),
    ("cookie_set+session_set", 'cookie_set theme dark; session_set name waws; return 200 "ok";',
     "/a", 200, "ok", [SESSION_SC, "theme=dark"]),
    ("cookie_delete", 'cookie_delete theme; return 200 "ok";', "/a", 200, "ok",
     ["theme=; " + DELETED]),
    ("cookie_delete-path-domain", 'cookie_delete theme path=/p domain=example.com; '
                                  'return 200 "ok";', "/a", 200, "ok",
     ["theme=; Path=/p; Domain=example.com; " + DELETED]),
    ("cookie_delete-302", "cookie_delete theme; return 302 /;", "/a", 302, None,
     ["theme=; " + DELETED]),
    # `if` with actions of its own replaces the location's actions (add_header-like) ...
    ("if-own-actions-replace", 'cookie_set loc 1; if ($arg_x) { cookie_set iff 1; } '
                               'return 200 "ok";', "/a?x=1", 200, "ok", ["iff=1"]),
    ("if-not-matched-location-actions", 'cookie_set loc 1; if ($arg_x) { cookie_set iff 1; } '
                                        'return 200 "ok";', "/a", 200, "ok", ["loc=1"]),
    # ... an `if` without actions inherits them.
    ("if-without-actions-inherits", 'cookie_set loc 1; if ($arg_x) { set $y 1; } '
                                    'return 200 "ok";', "/a?x=1", 200, "ok", ["loc=1"]),
    ("if-return-inherits", 'cookie_set loc 1; if ($arg_x) { return 200 "if"; } '
                           'return 200 "ok";', "/a?x=1", 200, "if", ["loc=1"]),
]


@pytest.mark.parametrize("body,target,status,resp_body,cookies", [c[1:] for c in HEADER_CASES],
                         ids=[c[0] for c in HEADER_CASES])
def test_action_headers(nginx, body, target, status, resp_body, cookies):
    srv = nginx(one_location(body))
    r = srv.raw(target)
    assert r.status == status, r.raw[:300]
    if resp_body is not None:
        assert r.text == resp_body
    if status == 302:
        assert r.header("Location") is not None
    got = sorted(r.set_cookies)
    assert len(got) == len(cookies) and all(match_cookie(e, g) for e, g in
                                            zip(sorted(cookies), got)), \
        f"expected {cookies}, got {r.set_cookies}"


def test_cookie_set_expires(nginx):
    srv = nginx(one_location('cookie_set theme dark expires=1h; return 200 "ok";'))
    r = srv.raw("/a")
    [sc] = r.set_cookies
    m = re.fullmatch(r"theme=dark; Expires=(.+ GMT)", sc)
    assert m, sc
    assert abs(helpers.parse_http_date(m.group(1)) - (time.time() + 3600)) < 30, sc


# ---- cookie_set values are encoded, never break the header --------------------------------------

# The regex capture $1 holds the *decoded* URI, so %0D%0A in the request becomes a real CR LF.
ENCODE_CASES = [
    # id, request path suffix (raw), exact Set-Cookie
    ("plain", "abc", "t=abc"),
    ("semicolon", "a;b", "t=a%3Bb"),
    ("space-quote-comma-backslash", "a%20b%22c%2Cd%5Ce", "t=a%20b%22c%2Cd%5Ce"),
    ("crlf-injection", "a%0D%0AX-Injected:%201", "t=a%0D%0AX-Injected:%201"),
    ("lf", "a%0Ab", "t=a%0Ab"),
    ("tab-del", "a%09b%7F", "t=a%09b%7F"),
    ("ctl-01-1f", "%01%1F", "t=%01%1F"),
    ("percent", "100%25", "t=100%25"),
    ("utf8", "caf%C3%A9", "t=caf%C3%A9"),
    ("allowed-punctuation", urllib.parse.quote("!#$&'()*+-./:<=>?@[]^_`{|}~", safe=""),
     "t=!#$&'()*+-./:<=>?@[]^_`{|}~"),
]


@pytest.mark.parametrize("suffix,expected", [c[1:] for c in ENCODE_CASES],
                         ids=[c[0] for c in ENCODE_CASES])
def test_cookie_set_value_encoding(nginx, suffix, expected):
    srv = nginx(one_location('cookie_set t $1; return 200 "ok";', '~ "(?s)^/cs/(.*)$"'))
    r = srv.raw("/cs/" + suffix)
    assert r.status == 200 and r.text == "ok"
    assert r.set_cookies == [expected]
    assert not any(k.lower() == "x-injected" for k, _ in r.headers), r.headers
    assert b"\r\nX-Injected" not in r.raw


@pytest.mark.parametrize("suffix", ["a%0D%0AX-Injected:%201", "a%20b", "a;b", "a=b", "%01", ""],
                         ids=["crlf", "space", "semicolon", "equals", "ctl", "empty"])
def test_cookie_set_hostile_name_from_variable(nginx, suffix):
    """A cookie name from a variable that is not an RFC 6265 token: the response is still sent,
    no header is injected, and any Set-Cookie sent has a valid token as its name."""
    srv = nginx(one_location('cookie_set $1 v; return 200 "ok";', '~ "(?s)^/cn/(.*)$"'))
    r = srv.raw("/cn/" + suffix)
    assert r.status == 200 and r.text == "ok"
    assert not any(k.lower() == "x-injected" for k, _ in r.headers), r.headers
    for c in r.set_cookies:
        assert re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+=v", c), r.set_cookies


# ---- what happens to the session data --------------------------------------------------------------

NOCHANGE = "unchanged"     # no Set-Cookie, or one with the same data
ENDED = "ended"            # deletion cookie, or nothing (there was no session to end)

DATA_CASES = [
    # id, location actions, incoming session (None: no cookie), expected result:
    #     dict = new session data, DELETED = deletion cookie, None = no Set-Cookie
    ("set-new", "session_set name waws;", None, {"name": "waws"}),
    ("set-adds", "session_set b 2;", {"a": "1"}, {"a": "1", "b": "2"}),
    ("set-overwrites", "session_set a 9;", {"a": "1", "b": "2"}, {"a": "9", "b": "2"}),
    ("set-variables", 'session_set u "$arg_u-$request_method";', None, {"u": "al-GET"}),
    ("set-two", "session_set a 1; session_set b 2;", None, {"a": "1", "b": "2"}),
    ("set-json-escaping", "session_set q $arg_q;", None, {"q": 'x"y\\z'}),
    ("unset-one", "session_unset a;", {"a": "1", "b": "2"}, {"b": "2"}),
    ("unset-last", "session_unset a;", {"a": "1"}, DELETED),
    ("unset-missing-key", "session_unset zz;", {"a": "1"}, NOCHANGE),
    ("unset-no-session", "session_unset a;", None, ENDED),
    ("clear", "session_clear;", {"a": "1", "b": "2"}, DELETED),
    ("clear-no-session", "session_clear;", None, ENDED),
    ("clear-then-set", "session_clear; session_set c 3;", {"a": "1"}, {"c": "3"}),
    ("destroy", "session_destroy;", {"a": "1"}, DELETED),
    ("destroy-no-session", "session_destroy;", None, ENDED),
    ("regenerate", "session_regenerate;", {"a": "1", "user": "al"}, {"a": "1", "user": "al"}),
    ("keeps-non-string-values", "session_set b 2;", {"n": 42, "o": {"x": [1, True, None]}},
     {"n": 42, "o": {"x": [1, True, None]}, "b": "2"}),
]


@pytest.mark.parametrize("actions,incoming,expected", [c[1:] for c in DATA_CASES],
                         ids=[c[0] for c in DATA_CASES])
def test_session_data(nginx, actions, incoming, expected):
    srv = nginx(one_location(actions + ' return 200 "ok";'))
    headers = []
    if incoming is not None:
        headers = [("Cookie", "session=" + make_cookie(srv.secrets[0], incoming))]
    r = srv.raw('/a?u=al&q=x"y\\z', headers)
    assert r.status == 200 and r.text == "ok"
    sc = cookie_named(r)
    if expected is None:
        assert sc is None, sc
    elif expected == DELETED:
        assert sc == session_deletion()
    elif expected == ENDED:
        assert sc in (None, session_deletion()), sc
    elif expected == NOCHANGE:
        assert sc is None or payload_of(sc) == incoming, sc
    else:
        assert match_cookie(SESSION_SC, sc), sc
        assert payload_of(sc) == expected
        assert list(payload_of(sc)) == list(expected)  # insertion order kept


def test_regenerate_issues_cookie_even_when_fresh(nginx):
    """Cookie store: session_regenerate re-issues the cookie (same data) even when nothing else
    would; with encryption the value is new (fresh nonce)."""
    srv = nginx(one_location('session_regenerate; return 200 "ok";'))
    old = make_cookie(srv.secrets[0], {"user": "al"})
    r = srv.raw("/a", [("Cookie", "session=" + old)])
    sc = cookie_named(r)
    assert match_cookie(SESSION_SC, sc), sc
    assert payload_of(sc) == {"user": "al"}


def test_variables_show_arriving_session(nginx):
    """Same request: $session_name is the old value; the next request sees the new one."""
    srv = nginx(server_conf(r'''
        location = /a { session_set name new; return 200 "[$session_name]"; }
        location = /read { return 200 "[$session_name]"; }
    ''', "session_encrypt off;"))
    s = srv.session()
    s.cookies.set("session", make_cookie(srv.secrets[0], {"name": "old"}), domain="127.0.0.1",
                  path="/")
    r = srv.get("/a", s)
    assert r.text == "[old]"
    assert payload_of(cookie_named(r)) == {"name": "new"}
    assert srv.get("/read", s).text == "[new]"


def test_if_own_session_actions_replace_location_actions(nginx):
    srv = nginx(one_location('session_set a 1; if ($arg_x) { session_set b 2; } '
                             'return 200 "ok";'))
    assert payload_of(cookie_named(srv.raw("/a?x=1"))) == {"b": "2"}
    assert payload_of(cookie_named(srv.raw("/a"))) == {"a": "1"}


def test_flask_style_login_redirect(nginx):
    """The Flask tutorial login: POST-less GET form, ?u= logs in with a 302, index shows user."""
    srv = nginx(server_conf(r'''
        location = /login {
            if ($arg_u) { session_set user $arg_u; return 302 /; }
            return 200 "form\n";
        }
        location = / { return 200 "user=$session_user\n"; }
    '''))
    s = srv.session()
    assert srv.get("/login", s).text == "form\n"
    r = srv.get("/login?u=alice", s)
    assert r.status_code == 302 and r.headers["Location"].endswith("/")
    assert srv.get("/", s).text == "user=alice\n"


# ---- proxy_pass ------------------------------------------------------------------------------------

def test_actions_before_proxy_pass(nginx, echo_upstream):
    srv = nginx(server_conf(r'''
        location /app {
            session_set name waws;
            cookie_set theme dark;
            proxy_set_header X-Session-Name $session_name;
            proxy_pass http://127.0.0.1:{up};
        }
    ''', "session_encrypt off;"), up=echo_upstream.port)
    s = srv.session()
    r = srv.get("/app/x", s)
    assert r.status_code == 200 and json.loads(r.text)["path"] == "/app/x"
    sc = helpers.set_cookie_headers(r)
    assert sorted(c.split("=")[0] for c in sc) == ["session", "theme"], sc
    assert payload_of(cookie_named(r)) == {"name": "waws"}
    assert "X-Session-Name" not in dict(echo_upstream.requests[-1]["headers"])  # arrived empty
    srv.get("/app/y", s)
    assert dict(echo_upstream.requests[-1]["headers"])["X-Session-Name"] == "waws"


# ---- session_set refuses control bytes ---------------------------------------------------------

CONTROL_CASES = [
    ("crlf", "a%0D%0AX-Injected:%201"),
    ("lf", "a%0AX-Injected:%201"),
    ("cr", "a%0Db"),
    ("tab", "a%09b"),
    ("del", "a%7Fb"),
    ("soh", "%01"),
    ("us", "a%1F"),
]


@pytest.mark.parametrize("suffix", [c[1] for c in CONTROL_CASES],
                         ids=[c[0] for c in CONTROL_CASES])
@pytest.mark.parametrize("existing", [False, True], ids=["no-session", "with-session"])
def test_session_set_refuses_control_bytes(nginx, echo_upstream, suffix, existing):
    srv = nginx(server_conf(r'''
        location ~ "(?s)^/note/(.*)$" { session_set note $1; return 200 "ok"; }
        location /up {
            proxy_set_header X-Note $session_note;
            proxy_pass http://127.0.0.1:{up};
        }
        location = /show { add_header X-Note $session_note always; return 200 "[$session_note]"; }
    ''', "session_encrypt off;"), up=echo_upstream.port)
    headers = []
    if existing:
        headers = [("Cookie", "session=" + make_cookie(srv.secrets[0], {"a": "1"}))]
    mark = srv.log_mark()
    r = srv.raw("/note/" + suffix, headers)
    assert r.status == 200 and r.text == "ok"
    sc = cookie_named(r)
    assert sc is None or payload_of(sc) == {"a": "1"}, sc   # nothing set
    lines = [l for l in srv.log_since(mark) if "session_set" in l and "control" in l]
    assert len(lines) == 1 and "[warn]" in lines[0], srv.log_since(mark)
    assert not any(k.lower() == "x-injected" for k, _ in r.headers)
    # and the value is not in the session afterwards, neither upstream nor in add_header
    r = srv.raw("/up/x", headers)
    up = echo_upstream.requests[-1]
    assert "X-Injected" not in up["raw_headers"] and "X-Note" not in dict(up["headers"]), up
    r = srv.raw("/show", headers)
    assert r.text == "[]" and not any(k.lower() == "x-injected" for k, _ in r.headers)


def test_session_set_percent_text_is_stored_verbatim(nginx, echo_upstream):
    """$arg_v is not URL-decoded by nginx: '%0d%0a' stays text, is stored verbatim and is
    harmless in an upstream header. (Raw requests: requests/urllib3 would upper-case %xx.)"""
    srv = nginx(server_conf(r'''
        location = /set { session_set note $arg_v; return 200 "ok"; }
        location /up { proxy_set_header X-Note $session_note; proxy_pass http://127.0.0.1:{up}; }
    ''', "session_encrypt off;"), up=echo_upstream.port)
    r = srv.raw("/set?v=a%0d%0aX-Injected:%201")
    sc = cookie_named(r)
    assert payload_of(sc) == {"note": "a%0d%0aX-Injected:%201"}
    srv.raw("/up/x", [("Cookie", "session=" + cookie_value(sc))])
    up = echo_upstream.requests[-1]
    assert dict(up["headers"])["X-Note"] == "a%0d%0aX-Injected:%201"
    assert "X-Injected" not in [h[0] for h in up["headers"]]


def test_utf8_value_round_trip(nginx):
    srv = nginx(server_conf(r'''
        location ~ "^/set/(.*)$" { session_set name $1; return 200 "ok"; }
        location = /get { return 200 "[$session_name]"; }
    ''', "session_encrypt off;"))
    s = srv.session()
    r = srv.get("/set/caf%C3%A9%20%E2%9C%93", s)
    assert payload_of(cookie_named(r)) == {"name": "café ✓"}
    assert srv.get("/get", s).content == "[café ✓]".encode()


def test_actions_applied_once_with_ssi_subrequests(nginx):
    """SSI includes are subrequests: the main response carries exactly one session cookie and
    one cookie_set, whatever the included locations do."""
    srv = nginx(server_conf(r'''
        location = /page.html {
            ssi on;
            session_set page 1;
            cookie_set seen 1;
            root {prefix}/html;
        }
        location = /inc { session_set inc 1; cookie_set inc 1; return 200 "inc"; }
    ''', "session_encrypt off;"), files={"html/page.html":
                                         'A<!--# include virtual="/inc" -->B'})
    r = srv.raw("/page.html")
    assert r.status == 200 and r.text == "AincB"
    assert len(helpers.cookies_named(r, "session")) == 1
    assert helpers.cookies_named(r, "seen") == ["seen=1"]
    assert helpers.cookies_named(r, "inc") == []
    assert payload_of(cookie_named(r)) == {"page": "1"}
