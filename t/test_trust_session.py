"""Sessions are trusted only where they were made (issue 9, part 2): which session a request
has, what a response may write, and configuration limits.

- A session is bound to the configuration that made it (secret ring, cookie name, store): after
  an internal redirect into a location with another one it is loaded again, never re-sealed.
- Duplicate cookies: every candidate is tried; two different valid ones are no session.
- Requests that only read the session never expire the cookie.
- Responses that write the session are private; responses that read it say Vary: Cookie.
- Secret files: blanks are trimmed, indented comments are comments.
- $session_<key> ignores ASCII case; reserved names come from the variables table.
- cookie_set / cookie_delete never write the module's own cookies.
- Every redirect target and length limit is checked at nginx -t.
"""

import os
import stat
import time

import pytest

import helpers
from helpers import cookie_named, cookie_value, make_cookie, payload_of, server_conf

A, B = "a" * 40, "b" * 40


def two_secret_files(tmp_dir):
    for name, secret in (("a.key", A), ("b.key", B)):
        p = tmp_dir / name
        p.write_text(secret + "\n")
        p.chmod(0o600)


# ---- binding ------------------------------------------------------------------------------------

BINDING = r"""
server {
    listen 127.0.0.1:{port};
    root {prefix}/html;
    session_encrypt off;
    location /a/ {
        session_secret_file {prefix}/a.key;
        try_files /nothing @b;
    }
    location /err/ {
        session_secret_file {prefix}/a.key;
        error_page 404 = @b;
    }
    location /rw/ {
        session_secret_file {prefix}/a.key;
        rewrite ^ /bapp last;
    }
    location @b {
        session_secret_file {prefix}/b.key;
        session_set seen yes;
        return 200 "user=[$session_user] status=$session_status";
    }
    location = /bapp {
        session_secret_file {prefix}/b.key;
        session_set seen yes;
        return 200 "user=[$session_user] status=$session_status";
    }
    location = /cookie-a {
        session_secret_file {prefix}/a.key;
        session_cookie other;
        try_files /nothing /bapp;
    }
}
"""


@pytest.mark.parametrize("path", ["/a/x", "/err/x", "/rw/x", "/cookie-a"])
def test_internal_redirect_loads_the_session_again(nginx, tmp_path, path):
    """A session of app A (secret a.key) reaching app B's location through try_files,
    error_page, rewrite ... last or another cookie name is not a session of B, and B's actions
    start a session of B's own, never A's data sealed under B's secret."""
    srv = nginx(BINDING, start=False)
    two_secret_files(srv.path)
    srv.start()
    name = "other" if path == "/cookie-a" else "session"
    a_cookie = make_cookie(A, {"user": "alice-of-a", "role": "admin"}, name=name)
    r = srv.raw(path, headers=[("Cookie", f"{name}={a_cookie}")])
    assert r.status == 200, r.raw[:300]
    if name == "session":
        assert r.text == "user=[] status=invalid", r.text
    else:
        assert r.text == "user=[] status=none", r.text
    sc = cookie_named(r, "session")
    if path == "/err/x":
        # an error page is not where a session is made: nothing is written at all
        assert sc is None, sc
        return
    assert sc is not None
    # what B sealed is B's own new session, verifiable only with B's secret
    assert helpers.verify_signed([B], "session", cookie_value(sc)) is not None
    assert helpers.verify_signed([A], "session", cookie_value(sc)) is None
    assert payload_of(sc) == {"seen": "yes"}
    # a session of B is B's in the same places
    b_cookie = make_cookie(B, {"user": "bob-of-b"})
    r = srv.raw(path, headers=[("Cookie", f"session={b_cookie}")])
    assert r.text == "user=[bob-of-b] status=valid", r.text


# ---- duplicates ---------------------------------------------------------------------------------

WHOAMI = server_conf(r"""
    location = /whoami { return 200 "user=[$session_user] status=$session_status"; }
    location = /set { session_set x 1; return 200 "set"; }
""", "session_encrypt off;")


def test_duplicate_garbage_beside_the_real_cookie(nginx):
    srv = nginx(WHOAMI)
    good = make_cookie(srv.secrets[0], {"user": "alice"})
    for header in (f"session={good}; session=x", f"session=planted; session={good}"):
        r = srv.raw("/whoami", headers=[("Cookie", header)])
        assert r.text == "user=[alice] status=valid", (header, r.text)
        assert r.set_cookies == [], "a duplicate expired the real cookie"
    r = srv.raw("/whoami", headers=[("Cookie", "session=x"), ("Cookie", f"session={good}")])
    assert r.text == "user=[alice] status=valid"


def test_two_valid_cookies_are_no_session(nginx):
    """Cookie tossing: a sibling subdomain plants its own valid session for the parent domain.
    Neither is picked, the response expires nothing, and one info line says why."""
    srv = nginx(WHOAMI)
    mine = make_cookie(srv.secrets[0], {"user": "alice"})
    planted = make_cookie(srv.secrets[0], {"user": "mallory"})
    mark = srv.log_mark()
    r = srv.raw("/whoami", headers=[("Cookie", f"session={planted}; session={mine}")])
    assert r.text == "user=[] status=invalid"
    assert r.set_cookies == []
    assert srv.count_log("two different valid session cookies", mark, "info") == 1


# ---- read-only requests -------------------------------------------------------------------------

@pytest.mark.parametrize("cookie", ["garbage", "expired", "wrong-key"])
def test_read_only_requests_never_expire_the_cookie(nginx, cookie):
    srv = nginx(WHOAMI)
    now = int(time.time())
    value = {"garbage": "garbage",
             "expired": make_cookie(srv.secrets[0], {"user": "a"}, created=now - 40 * 86400,
                                    refreshed=now - 40 * 86400),
             "wrong-key": make_cookie("z" * 40, {"user": "a"})}[cookie]
    r = srv.raw("/whoami", headers=[("Cookie", f"session={value}")])
    assert r.status == 200
    assert r.set_cookies == []
    # an action does replace it
    r = srv.raw("/set", headers=[("Cookie", f"session={value}")])
    assert payload_of(cookie_named(r, "session")) == {"x": "1"}


# ---- caches -------------------------------------------------------------------------------------

CACHE = r"""
    location /static/ { expires 1h; }
    location = /upstream-public {
        session_set visited 1;
        proxy_pass http://127.0.0.1:{port2}/public;
    }
    location = /no-store {
        add_header Cache-Control "no-store";
        session_set visited 1;
        return 200 "x";
    }
    location = /reads { add_header X-User $session_user; return 200 "r"; }
    location = /reads-body { return 200 "$session_user"; }
    location = /plain { return 200 "p"; }
"""


UPSTREAM = r"""
server {
    listen 127.0.0.1:{port2};
    location = /public {
        add_header Cache-Control "public, s-maxage=600, max-age=60";
        return 200 "from upstream";
    }
}
"""


def cache_control(r) -> list:
    """All Cache-Control directives of a response (several lines are one list, RFC 9111)."""
    return [d.strip() for v in r.header_all("Cache-Control") for d in v.split(",") if d.strip()]


def test_renewed_session_on_a_cached_static_file_is_private(nginx):
    srv = nginx(server_conf(CACHE, "session_encrypt off; root {prefix}/html;"),
                files={"html/static/app.js": "js"})
    now = int(time.time())
    old = make_cookie(srv.secrets[0], {"user": "alice"}, created=now - 600, refreshed=now - 600)
    r = srv.raw("/static/app.js", headers=[("Cookie", f"session={old}")])
    assert r.status == 200 and cookie_named(r, "session"), r.raw[:400]
    cc = cache_control(r)
    assert "private" in cc and "max-age=3600" in cc and "public" not in cc, cc
    assert r.header("Vary") == "Cookie"
    # without a session to renew, the static file stays publicly cacheable
    r = srv.raw("/static/app.js")
    assert cache_control(r) == ["max-age=3600"] and r.header("Vary") is None


def test_upstream_public_and_s_maxage_are_removed_no_store_is_kept(nginx):
    srv = nginx(server_conf(CACHE, "session_encrypt off;") + UPSTREAM)
    r = srv.raw("/upstream-public")
    assert r.text == "from upstream" and cookie_named(r, "session")
    cc = cache_control(r)
    assert "public" not in cc and not any(d.startswith("s-maxage") for d in cc), cc
    assert "private" in cc and "max-age=60" in cc
    r = srv.raw("/no-store")
    assert cookie_named(r, "session") and "no-store" in cache_control(r)


@pytest.mark.parametrize("path,vary", [("/reads", True), ("/reads-body", True),
                                       ("/plain", False)])
def test_responses_that_read_the_session_vary_on_cookie(nginx, path, vary):
    srv = nginx(server_conf(CACHE, "session_encrypt off;"))
    cookie = make_cookie(srv.secrets[0], {"user": "alice"})
    r = srv.raw(path, headers=[("Cookie", f"session={cookie}")])
    assert r.status == 200
    assert (r.header("Vary") == "Cookie") is vary, r.headers


# ---- secret files -------------------------------------------------------------------------------

def test_indented_comment_is_not_a_key(nginx):
    comment = "   # retired key 2024-01-01, do not use any more please"
    real = helpers.random_secret()
    srv = nginx(WHOAMI, secrets=f"{comment}\n\t{real}  \n".encode())
    forged = make_cookie(comment.strip(), {"user": "mallory"})
    r = srv.raw("/whoami", headers=[("Cookie", f"session={forged}")])
    assert r.text == "user=[] status=invalid"
    good = make_cookie(real, {"user": "alice"})
    r = srv.raw("/whoami", headers=[("Cookie", f"session={good}")])
    assert r.text == "user=[alice] status=valid"


def test_base64_secret_line(nginx):
    raw = os.urandom(32)
    import base64
    srv = nginx(WHOAMI, secrets=b"base64:" + base64.b64encode(raw) + b"\n")
    good = make_cookie(raw, {"user": "alice"})
    r = srv.raw("/whoami", headers=[("Cookie", f"session={good}")])
    assert r.text == "user=[alice] status=valid"


def test_world_readable_secret_file_warns(nginx):
    import subprocess
    srv = nginx(WHOAMI, start=False)

    def check():
        p = subprocess.run([str(srv.binary), "-p", str(srv.path) + "/", "-c", str(srv.conf), "-t"],
                           capture_output=True, timeout=30)
        return p.returncode, (p.stdout + p.stderr).decode()

    srv.secret_file.chmod(0o644)
    rc, out = check()
    assert rc == 0 and "is readable by every user" in out, out
    srv.secret_file.chmod(0o640)
    rc, out = check()
    assert rc == 0 and "readable by every user" not in out, out


# ---- variables ----------------------------------------------------------------------------------

def test_capital_keys_are_readable(nginx):
    srv = nginx(server_conf(r"""
        location = /ban { session_set isBanned yes; return 200 "ok"; }
        location = /app {
            if ($session_isBanned) { return 403 "banned"; }
            return 200 "welcome";
        }
        location = /id { return 200 "[$session_userid]"; }
    """, "session_encrypt off;"))
    s = srv.session()
    assert srv.get("/app", session=s).text == "welcome"
    srv.get("/ban", session=s)
    r = srv.get("/app", session=s)
    assert r.status_code == 403 and r.text == "banned"
    # an app writes userId: $session_userid finds it
    cookie = make_cookie(srv.secrets[0], {"userId": "42"})
    assert srv.raw("/id", headers=[("Cookie", f"session={cookie}")]).text == "[42]"
    # two keys that differ only in case: empty, and one warn line
    cookie = make_cookie(srv.secrets[0], {"userId": "42", "USERID": "43"})
    mark = srv.log_mark()
    assert srv.raw("/id", headers=[("Cookie", f"session={cookie}")]).text == "[]"
    assert srv.count_log("differ only in case", mark, "warn") == 1


@pytest.mark.parametrize("key", ["status", "id", "expires", "csrf_token", "login_error",
                                 "login_next", "login_username", "login_password", "Status",
                                 "CSRF_TOKEN"])
def test_reserved_keys_come_from_the_variables_table(nginx_t, key):
    rc, out = nginx_t(server_conf(f'location = /x {{ session_set {key} v; return 200; }}'))
    assert rc != 0 and "is reserved" in out, out


def test_user_named_null_is_a_user(nginx):
    srv = nginx(server_conf(r"""
        location = /p { session_require; return 200 "[$session_user]"; }
    """, "session_encrypt off;"))
    cookie = make_cookie(srv.secrets[0], {"user": "null"})
    r = srv.raw("/p", headers=[("Cookie", f"session={cookie}")])
    assert r.status == 200 and r.text == "[null]"
    for data in ({"user": None}, {"user": 1}, {"user": False}, {"user": ""}, {"user": ["a"]}):
        cookie = make_cookie(srv.secrets[0], data)
        assert srv.raw("/p", headers=[("Cookie", f"session={cookie}")]).status == 401, data


def test_log_format_shows_the_session_as_loaded(nginx):
    """A logout is logged with the user who logged out (variables never see the actions)."""
    srv = nginx(server_conf(r"""
        location = /logout { session_logout /; }
        location = /drop { session_destroy; return 200 "[$session_user]"; }
    """, "session_encrypt off; access_log {prefix}/sess.log sess;",
        http_extra="log_format sess '$uri user=[$session_user]';"))
    cookie = make_cookie(srv.secrets[0], {"user": "alice"})
    r = srv.raw("/drop", headers=[("Cookie", f"session={cookie}")])
    assert r.text == "[alice]" and cookie_named(r, "session").startswith("session=;")
    srv.raw("/logout", headers=[("Cookie", f"session={cookie}")])
    log = (srv.path / "sess.log").read_text()
    assert "/drop user=[alice]" in log and "/logout user=[alice]" in log, log


def test_oversized_cookie_error_is_rate_limited(nginx):
    srv = nginx(server_conf('location = /big { session_set blob $arg_v; return 200 "x"; }',
                            "session_encrypt off;"))
    mark = srv.log_mark()
    for _ in range(20):
        r = srv.raw("/big?v=" + "x" * 5000)
        assert r.status == 200 and cookie_named(r, "session") is None
    lines = srv.grep_log("too large", mark, "error")
    assert 1 <= len(lines) <= 3, lines


# ---- cookie_set / cookie_delete and the module's own cookies ------------------------------------

OWN = server_conf(r"""
    location = /set { cookie_set $arg_n $arg_v; return 200 "ok"; }
    location = /del { cookie_delete $arg_n; return 200 "ok"; }
""", "session_encrypt off;")


@pytest.mark.parametrize("name", ["session", "session_csrf", "session_1", "session_12"])
def test_cookie_set_from_a_variable_never_writes_the_session_cookies(nginx, name):
    srv = nginx(OWN)
    good = make_cookie(srv.secrets[0], {"user": "alice"})
    mark = srv.log_mark()
    r = srv.raw(f"/set?n={name}&v=planted")
    assert r.status == 200 and r.set_cookies == [], r.set_cookies
    r = srv.raw(f"/del?n={name}", headers=[("Cookie", f"session={good}")])
    assert r.status == 200 and r.set_cookies == [], r.set_cookies
    assert srv.count_log("refused to write the session's own cookie", mark, "warn") >= 1
    # other names are fine
    r = srv.raw("/set?n=session_x&v=1")
    assert r.set_cookies == ["session_x=1"]


@pytest.mark.parametrize("directive", ["cookie_set session x;", "cookie_delete session;",
                                       "cookie_set session_csrf x;", "cookie_delete session_3;"])
def test_cookie_set_of_an_own_cookie_fails_nginx_t(nginx_t, directive):
    rc, out = nginx_t(server_conf(f'location = /x {{ {directive} return 200; }}'))
    assert rc != 0 and "the session's own cookie" in out, out


def test_own_cookie_check_follows_the_cookie_name(nginx_t):
    rc, out = nginx_t(server_conf('location = /x { cookie_set sid x; return 200; }',
                                  "session_cookie sid;"))
    assert rc != 0 and "the session's own cookie" in out, out
    rc, out = nginx_t(server_conf('location = /x { cookie_set session x; return 200; }',
                                  "session_cookie sid;"))
    assert rc == 0, out


# ---- configuration limits -----------------------------------------------------------------------

BAD_CONFIGS = [
    ("login_redirect-//", 'session_login_redirect //evil.example/x;', "must be a local path"),
    ("login_redirect-/\\", 'session_login_redirect "/\\\\evil.example";', "must be a local path"),
    ("login_redirect-url", 'session_login_redirect https://evil.example/;', "must be a local path"),
    ("logout-//", None, "must be a local path"),
    ("require-//", 'session_require //evil.example;', "must be a local path"),
    ("prefix-257", "session_redis_prefix " + "p" * 257 + ";", "longer than 256"),
    ("cookie-name-257", "session_cookie " + "c" * 257 + ";", "invalid cookie name"),
    ("thread-pool-unknown", None, "unknown thread pool"),
]


@pytest.mark.parametrize("directive,message", [c[1:] for c in BAD_CONFIGS],
                         ids=[c[0] for c in BAD_CONFIGS])
def test_limits_and_redirect_targets_fail_nginx_t(nginx_t, directive, message):
    if directive is None and message == "must be a local path":
        conf = server_conf("location = /logout { session_logout //evil.example; }")
    elif directive is None:
        conf = server_conf("location = /login { session_login; session_login_page /p; "
                           "session_login_user_file {prefix}/users; "
                           "session_login_thread_pool nosuchpool; }")
        rc, out = nginx_t(conf, files={"users": "a:{SHA}x\n"})
        assert rc != 0 and message in out, out
        return
    else:
        conf = server_conf("location = /x { return 200; }", directive)
    rc, out = nginx_t(conf)
    assert rc != 0 and message in out, out


def test_prefix_of_256_bytes_works(nginx_t):
    rc, out = nginx_t(server_conf("location = /x { return 200; }",
                                  "session_redis_prefix " + "p" * 256 + ";"))
    assert rc == 0, out
