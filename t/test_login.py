"""session_login / session_logout with session_login_user_file: the login page (SSI template,
CSRF cookie, no-store / no-framing headers), the POST (CSRF, form decoding, body limits, every
htpasswd hash format, failures and their log lines), the session it starts (both stores, new id),
logout, `nginx -t` errors, and that password hashing does not block the worker.
"""

import os
import random
import re
import statistics
import threading
import time
import urllib.parse

import pytest
import requests

import helpers
import login_support as L
from helpers import cookie_named, cookie_value, match_cookie, set_cookie_headers

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CSRF_COOKIE = "session_csrf={v}; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict"
CSRF_DELETED = "session_csrf=; Path=/; " + helpers.DELETED + "; HttpOnly; SameSite=Strict"
SESSION_DELETED = helpers.session_deletion()


@pytest.fixture(scope="module")
def hashes():
    """One user per hash format; made once per module (bcrypt at cost 5 to stay fast)."""
    return {
        "u2y": ("pw-2y", L.hash_password("2y", "pw-2y")),
        "u2b": ("pw-2b", L.hash_password("2b", "pw-2b")),
        "uapr1": ("pw-apr1", L.hash_password("apr1", "pw-apr1")),
        "usha": ("pw-sha", L.hash_password("sha", "pw-sha")),
        "ussha": ("pw-ssha", L.hash_password("ssha", "pw-ssha")),
        "u5": ("pw-5", L.hash_password("5", "pw-5")),
        "u6": ("pw-6", L.hash_password("6", "pw-6")),
    }


@pytest.fixture(scope="module")
def alice_hash():
    return L.hash_password("apr1", "secret")


@pytest.fixture
def site(nginx, alice_hash):
    """A login site with users alice/secret and bob/hunter2 (apr1), redirect /home."""
    def make(users=None, snippet=None, **kw):
        users = users or {"alice": alice_hash, "bob": L.hash_password("apr1", "hunter2")}
        return nginx(snippet or L.user_file_site(**kw), files=L.files_for(users))
    return make


def assert_no_store(resp):
    assert resp.headers.get("Cache-Control") == "no-store", resp.headers
    assert resp.headers.get("X-Frame-Options") == "DENY", resp.headers
    assert resp.headers.get("Content-Security-Policy") == "frame-ancestors 'none'", resp.headers


def assert_no_session_cookie(resp):
    assert cookie_named(resp, "session") is None, set_cookie_headers(resp)


# ---------------------------------------------------------------------------------------------
# GET: the page
# ---------------------------------------------------------------------------------------------


def test_get_renders_template_with_csrf_cookie_and_token(site):
    srv = site()
    s = srv.session()
    r = srv.get("/login?next=%2Fprivate%2Fdoc%3Fa%3D1", session=s)
    assert r.status_code == 200
    assert_no_store(r)
    assert "<form action=\"/login\" method=\"POST\">" in r.text, r.text
    csrf = cookie_named(r, "session_csrf")
    assert match_cookie(CSRF_COOKIE, csrf), csrf
    assert_no_session_cookie(r)
    inputs = L.form_inputs(r.text)
    assert inputs["next"] == "/private/doc?a=1"
    token = inputs["csrf_token"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token), token
    # The token is an HMAC of the cookie, not the cookie itself (the model in login_support
    # recomputes it: this anchors the crafted-cookie tests below).
    raw = helpers.b64url_decode(cookie_value(csrf))
    assert token != cookie_value(csrf)
    assert token == L.csrf_token(srv.secrets[0], raw)
    assert abs(int.from_bytes(raw[16:], "big") - time.time()) < 5
    assert L.page_error(r.text) is None


def test_get_keeps_a_valid_csrf_cookie(site):
    srv = site()
    s = srv.session()
    first = L.get_login(srv, s)
    r = srv.get("/login", session=s)
    assert r.status_code == 200
    assert cookie_named(r, "session_csrf") is None, set_cookie_headers(r)
    assert L.form_inputs(r.text)["csrf_token"] == first.token


def test_get_replaces_expired_or_garbage_csrf_cookie(site):
    srv = site()
    old = helpers.b64url_encode(L.csrf_raw(int(time.time()) - 3601))
    for value in (old, "garbage", "A" * 200, helpers.b64url_encode(b"x" * 10)):
        r = srv.raw("/login", [("Cookie", f"session_csrf={value}")])
        assert r.status == 200, (value, r.status)
        new = cookie_named(r, "session_csrf")
        assert match_cookie(CSRF_COOKIE, new), (value, new)
        assert cookie_value(new) != value


def test_head_and_other_methods(site):
    srv = site()
    r = srv.raw("/login", method="HEAD")
    assert r.status == 200 and r.body == b""
    assert r.header("Cache-Control") == "no-store"
    for m in ("PUT", "DELETE", "PATCH"):
        r = srv.raw("/login", method=m, headers=[("Content-Type", L.FORM_TYPE)], body=b"a=b")
        assert r.status == 405, (m, r.status)


def test_csrf_cookie_follows_the_session_cookie_name(nginx, alice_hash):
    srv = nginx(L.user_file_site(server_extra="session_cookie sid path=/ httponly samesite=lax;"),
                files=L.files_for({"alice": alice_hash}))
    s = srv.session()
    page = L.get_login(srv, s)
    assert match_cookie(CSRF_COOKIE.replace("session_csrf", "sid_csrf"),
                        cookie_named(page.resp, "sid_csrf"))
    raw = helpers.b64url_decode(cookie_value(cookie_named(page.resp, "sid_csrf")))
    assert page.token == L.csrf_token(srv.secrets[0], raw, "sid_csrf")
    r = L.post_login(srv, s, {"username": "alice", "password": "secret",
                              "csrf_token": page.token})
    assert r.status_code == 303
    assert cookie_named(r, "sid") is not None
    assert L.whoami(srv, s).startswith("user=[alice]")


# ---------------------------------------------------------------------------------------------
# The whole flow, both stores
# ---------------------------------------------------------------------------------------------


VISIT = 'location = /visit { session_set visit yes; return 200 "ok\\n"; }'


@pytest.fixture(params=["cookie", "redis"])
def store_site(request, nginx, alice_hash):
    users = {"alice": alice_hash}
    if request.param == "cookie":
        srv = nginx(L.user_file_site(locations=VISIT), files=L.files_for(users))
        srv.redis = None
    else:
        rs = request.getfixturevalue("redis_server")
        srv = nginx(L.user_file_site(server_extra="session_store redis;\n"
                                     "    session_redis 127.0.0.1:{rport};", locations=VISIT),
                    files=L.files_for(users), rport=rs.port)
        srv.redis = rs.client()
    srv.store = request.param
    return srv


def session_id(srv, s) -> str:
    m = re.search(r"id=\[([^\]]*)\]", L.whoami(srv, s))
    return m.group(1)


def test_full_flow(store_site):
    srv = store_site
    s = srv.session()
    # 1. A protected page sends the browser to the login page, with next.
    r = srv.get("/private/doc?x=1&y=b", session=s, headers={"Accept": HTML})
    assert r.status_code == 302, r.text
    to = L.location_path(srv, r)
    assert to.startswith("/login?next="), to
    # 2. The login page carries that next.
    r = srv.get(to, session=s)
    assert r.status_code == 200
    page = L.LoginPage(r)
    assert page.next == "/private/doc?x=1&y=b", page.next
    # 3. The form post logs in and goes back there.
    r = L.post_login(srv, s, {"username": "alice", "password": "secret",
                              "csrf_token": page.token, "next": page.next})
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == srv.url("/private/doc?x=1&y=b")
    assert_no_store(r)
    assert cookie_named(r, "session_csrf") == CSRF_DELETED
    sc = cookie_named(r, "session")
    assert match_cookie("session={v}; Path=/; HttpOnly; SameSite=Lax", sc), sc
    assert srv.count_log('session login: user "alice" logged in, client: 127.0.0.1',
                         level="info") == 1
    # 4. The session holds the user.
    r = srv.get("/private/doc?x=1&y=b", session=s, headers={"Accept": HTML})
    assert r.status_code == 200
    assert r.text == "private user=[alice] uri=[/private/doc?x=1&y=b]\n"
    sid = session_id(srv, s)
    if srv.store == "redis":
        assert re.fullmatch(r"[0-9a-f]{32}", sid), sid
        assert srv.redis.exists("session:" + sid) == 1
        assert srv.redis.hget("session:" + sid, "user") == b'"alice"'

    else:
        assert sid == ""
    old_cookie = s.cookies.get("session")
    # 5. Logout destroys it.
    r = srv.get("/logout", session=s)
    assert r.status_code == 303
    assert r.headers["Location"] == srv.url("/")
    assert r.headers.get("Cache-Control") == "no-store"
    assert cookie_named(r, "session") == SESSION_DELETED
    assert srv.count_log('session logout: user "alice"', level="info") == 1
    assert L.whoami(srv, s).startswith("user=[] status=none")
    r = srv.get("/private/doc", session=s, headers={"Accept": HTML})
    assert r.status_code == 302
    if srv.store == "redis":
        assert srv.redis.exists("session:" + sid) == 0
        # The old cookie is dead server-side too.
        r = srv.get("/whoami", headers={"Cookie": f"session={old_cookie}"})
        assert "user=[]" in r.text, r.text


@pytest.mark.parametrize("path", [
    "/private/plain", "/private/q?a=1&b=two", "/private/x?q=%3Cb%3E", "/private/a+b",
    "/private/a%20b", "/private/caf%C3%A9", "/private/s?q=a%20b", "/private/x?u=%2Fetc",
])
def test_require_round_trip_lands_where_it_started(site, path):
    """session_require -> login page -> POST -> back on the very same URI (the issue: "after
    login they land where they started"). Percent-encoded spaces and UTF-8 are ordinary URIs:
    they decode to no '/' or '\\' prefix, no scheme and no control character (DESIGN.md's rule
    for a safe next)."""
    srv = site()
    s = srv.session()
    r = srv.get(path, session=s, headers={"Accept": HTML})
    assert r.status_code == 302
    page = L.LoginPage(srv.get(L.location_path(srv, r), session=s))
    assert page.next == path, f"the login page dropped next={path!r} (got {page.next!r})"
    r = L.post_login(srv, s, {"username": "alice", "password": "secret",
                              "csrf_token": page.token, "next": page.next})
    assert r.status_code == 303
    assert r.headers["Location"] == srv.url(path)
    r = srv.get(path, session=s)
    assert r.status_code == 200 and "user=[alice]" in r.text


def test_login_does_not_fixate_a_planted_session(store_site):
    """An anonymous session that existed before login (planted by an attacker, say) is not the
    one that carries the user afterwards; with Redis its record is gone."""
    srv = store_site
    s = srv.session()
    r = srv.get("/visit", session=s)
    assert r.status_code == 200
    planted = s.cookies.get("session")
    assert planted
    sid_planted = session_id(srv, s)
    r = L.login(srv, s, "alice", "secret")
    assert r.status_code == 303
    after = cookie_value(cookie_named(r, "session"))
    assert after != planted
    assert L.whoami(srv, s).startswith("user=[alice] status=valid")
    r = srv.get("/whoami", headers={"Cookie": f"session={planted}"})
    assert "user=[alice]" not in r.text, r.text
    if srv.store == "redis":
        assert session_id(srv, s) != sid_planted
        assert srv.redis.exists("session:" + sid_planted) == 0


def test_login_regenerates_the_session(store_site):
    """Logging in again (already logged in) also gets a new id; the old one is dropped."""
    srv = store_site
    s = srv.session()
    r = L.login(srv, s, "alice", "secret")
    assert r.status_code == 303
    before = s.cookies.get("session")
    sid_before = session_id(srv, s)
    r = L.login(srv, s, "alice", "secret")
    assert r.status_code == 303
    after = cookie_value(cookie_named(r, "session"))
    assert after != before
    sid_after = session_id(srv, s)
    assert L.whoami(srv, s).startswith("user=[alice] status=valid")
    if srv.store == "redis":
        assert sid_after != sid_before
        assert srv.redis.exists("session:" + sid_after) == 1
        # The old id no longer names a logged-in session.
        r = srv.get("/whoami", headers={"Cookie": f"session={before}"})
        assert "user=[alice]" not in r.text, r.text


def test_failed_login_does_not_touch_the_session(store_site):
    srv = store_site
    s = srv.session()
    assert L.login(srv, s, "alice", "secret").status_code == 303
    r = L.login(srv, s, "alice", "wrong")
    assert r.status_code == 401
    assert_no_session_cookie(r)
    assert L.whoami(srv, s).startswith("user=[alice] status=valid")


# ---------------------------------------------------------------------------------------------
# Hash formats
# ---------------------------------------------------------------------------------------------

FORMATS = ["u2y", "u2b", "uapr1", "usha", "ussha", "u5", "u6"]


@pytest.fixture
def all_formats_site(nginx, hashes):
    users = {u: h for u, (pw, h) in hashes.items()}
    return nginx(L.user_file_site(), files=L.files_for(users))


@pytest.mark.parametrize("user", FORMATS)
def test_hash_format_accepts_right_password(all_formats_site, hashes, user):
    srv = all_formats_site
    s = srv.session()
    r = L.login(srv, s, user, hashes[user][0])
    assert r.status_code == 303, (hashes[user][1], r.status_code, r.text)
    assert r.headers["Location"] == srv.url("/home")
    assert L.whoami(srv, s).startswith(f"user=[{user}] status=valid")


@pytest.mark.parametrize("user", FORMATS)
def test_hash_format_rejects_wrong_password(all_formats_site, hashes, user):
    srv = all_formats_site
    s = srv.session()
    pw = hashes[user][0]
    for wrong in (pw + "x", pw[:-1], pw.upper(), "", "pw-apr1" if user != "uapr1" else "pw-6"):
        r = L.login(srv, s, user, wrong)
        assert r.status_code == 401, (user, wrong, r.status_code)
        assert_no_session_cookie(r)
    assert L.whoami(srv, s).startswith("user=[] ")


def test_htpasswd_file_details(nginx, hashes):
    """Comments, CRLF line ends, an extra ':field' after the hash, a user listed twice (the
    first line counts, like nginx's auth_basic), names that are prefixes of others."""
    text = ("# comment:$apr1$x$y\r\n"
            f"al:{hashes['u5'][1]}\r\n"
            f"alice:{hashes['uapr1'][1]}:comment field\r\n"
            f"alice:{hashes['usha'][1]}\r\n"
            f"bob:{hashes['ussha'][1]}")      # no final newline
    srv = nginx(L.user_file_site(),
                files={"users": text.encode(), "html/login.shtml": L.login_page_bytes()})
    s = srv.session()
    assert L.login(srv, s, "alice", "pw-apr1").status_code == 303
    assert L.login(srv, s, "alice", "pw-sha").status_code == 401
    assert L.login(srv, s, "al", "pw-5").status_code == 303
    assert L.login(srv, s, "alic", "pw-apr1").status_code == 401
    assert L.login(srv, s, "bob", "pw-ssha").status_code == 303
    assert L.login(srv, s, "# comment", "x").status_code == 401


def test_user_file_is_read_per_login(site, tmp_path):
    """Editing the htpasswd file takes effect without a reload (like auth_basic_user_file)."""
    srv = site()
    s = srv.session()
    assert L.login(srv, s, "carol", "pw").status_code == 401
    with open(srv.path / "users", "a") as f:
        f.write("carol:" + L.hash_password("apr1", "pw") + "\n")
    assert L.login(srv, s, "carol", "pw").status_code == 303


def test_unreadable_user_file_at_run_time_is_an_error_not_a_login(site):
    srv = site()
    s = srv.session()
    page = L.get_login(srv, s)
    os.rename(srv.path / "users", srv.path / "users.gone")
    r = L.post_login(srv, s, {"username": "alice", "password": "secret",
                              "csrf_token": page.token})
    assert r.status_code >= 500 and r.status_code != 303, r.status_code
    assert_no_session_cookie(r)
    assert srv.grep_log("cannot be read", level="error")


# ---------------------------------------------------------------------------------------------
# Redirect after login
# ---------------------------------------------------------------------------------------------


def test_redirect_defaults(nginx, alice_hash):
    srv = nginx(L.user_file_site(redirect=None), files=L.files_for({"alice": alice_hash}))
    s = srv.session()
    r = L.login(srv, s, "alice", "secret")
    assert r.status_code == 303
    assert r.headers["Location"] == srv.url("/")


def test_redirect_to_configured_uri_and_safe_next(site):
    srv = site()
    s = srv.session()
    r = L.login(srv, s, "alice", "secret")
    assert r.headers["Location"] == srv.url("/home")
    r = L.login(srv, s, "alice", "secret", next_="/docs/a.html?q=1#frag")
    assert r.headers["Location"] == srv.url("/docs/a.html?q=1#frag")
    r = L.login(srv, s, "alice", "secret", next_="//evil.example/")
    assert r.headers["Location"] == srv.url("/home")
    # next from the GET page (session_require's ?next=) is carried by the form.
    r = L.login(srv, s, "alice", "secret", get_next="/private/x")
    assert r.headers["Location"] == srv.url("/private/x")


def test_logout_uri_and_methods(nginx, alice_hash, redis_server):
    srv = nginx(L.user_file_site(logout_to="/bye",
                                 server_extra="session_store redis;\n"
                                 "    session_redis 127.0.0.1:{rport};"),
                files=L.files_for({"alice": alice_hash}), rport=redis_server.port)
    rc = redis_server.client()
    # Without a session: still 303; a stale cookie is expired.
    r = srv.get("/logout")
    assert r.status_code == 303 and r.headers["Location"] == srv.url("/bye")
    r = srv.get("/logout", headers={"Cookie": "session=stale-garbage"})
    assert r.status_code == 303 and r.headers["Location"] == srv.url("/bye")
    assert cookie_named(r, "session") == SESSION_DELETED
    # POST works (a logout button in a form).
    s = srv.session()
    assert L.login(srv, s, "alice", "secret").status_code == 303
    sid = session_id(srv, s)
    assert rc.exists("session:" + sid) == 1
    r = s.post(srv.url("/logout"), allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == srv.url("/bye")
    assert cookie_named(r, "session") == SESSION_DELETED
    assert rc.exists("session:" + sid) == 0
    r = srv.raw("/logout", method="DELETE")
    assert r.status == 405


# ---------------------------------------------------------------------------------------------
# CSRF failures
# ---------------------------------------------------------------------------------------------


def assert_form_expired(srv, r):
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert_no_store(r)
    assert L.page_error(r.text) == L.FORM_EXPIRED, r.text
    assert_no_session_cookie(r)
    assert "csrf_token" in L.form_inputs(r.text)


def test_csrf_missing_token(site):
    srv = site()
    s = srv.session()
    L.get_login(srv, s)
    r = L.post_login(srv, s, {"username": "alice", "password": "secret"})
    assert_form_expired(srv, r)
    assert srv.count_log("missing or mismatched CSRF token", level="info") == 1
    r = L.post_login(srv, s, {"username": "alice", "password": "secret", "csrf_token": ""})
    assert_form_expired(srv, r)


def test_csrf_wrong_token(site):
    srv = site()
    s = srv.session()
    page = L.get_login(srv, s)
    for bad in (helpers.b64url_encode(os.urandom(32)), page.token[:-1], page.token + "A",
                page.token.swapcase(), "x" * 500, page.token + "\0"):
        r = L.post_login(srv, s, {"username": "alice", "password": "secret",
                                  "csrf_token": bad})
        assert_form_expired(srv, r)
    # The page after a 403 still works.
    r = L.post_login(srv, s, {"username": "alice", "password": "secret",
                              "csrf_token": page.token})
    assert r.status_code == 303


def test_csrf_token_from_another_cookie(site):
    srv = site()
    a, b = srv.session(), srv.session()
    pa, pb = L.get_login(srv, a), L.get_login(srv, b)
    assert pa.token != pb.token
    r = L.post_login(srv, a, {"username": "alice", "password": "secret",
                              "csrf_token": pb.token})
    assert_form_expired(srv, r)
    # An attacker's own valid cookie+token pair, with the victim's... token only: no cookie.
    r = L.post_login(srv, None, {"username": "alice", "password": "secret",
                                 "csrf_token": pa.token})
    assert_form_expired(srv, r)


def test_csrf_cookie_from_another_server_secret(site, nginx, alice_hash):
    """A pair (cookie, token) made under another secret is refused."""
    srv = site()
    raw = L.csrf_raw()
    cookie = helpers.b64url_encode(raw)
    r = L.post_login(srv, None, {"username": "alice", "password": "secret",
                                 "csrf_token": L.csrf_token(helpers.random_secret(), raw)},
                     headers={"Cookie": f"session_csrf={cookie}"})
    assert_form_expired(srv, r)
    # The same pair under the server's secret is accepted (the model is right).
    r = L.post_login(srv, None, {"username": "alice", "password": "secret",
                                 "csrf_token": L.csrf_token(srv.secrets[0], raw)},
                     headers={"Cookie": f"session_csrf={cookie}"})
    assert r.status_code == 303


@pytest.mark.parametrize("age,ok", [(0, True), (3500, True), (3601, False),
                                    (86400 * 400, False), (-3600, False)])
def test_csrf_cookie_age(site, age, ok):
    """Cookies older than an hour (or from the future) are refused even with the right token."""
    srv = site()
    raw = L.csrf_raw(int(time.time()) - age)
    r = L.post_login(srv, None, {"username": "alice", "password": "secret",
                                 "csrf_token": L.csrf_token(srv.secrets[0], raw)},
                     headers={"Cookie": f"session_csrf={helpers.b64url_encode(raw)}"})
    if ok:
        assert r.status_code == 303, r.status_code
    else:
        assert_form_expired(srv, r)


def test_csrf_rotated_secret_still_verifies(site):
    """A token made with the second (older) secret of the file still verifies."""
    srv = site()
    raw = L.csrf_raw()
    r = L.post_login(srv, None, {"username": "alice", "password": "secret",
                                 "csrf_token": L.csrf_token(srv.secrets[1], raw)},
                     headers={"Cookie": f"session_csrf={helpers.b64url_encode(raw)}"})
    assert r.status_code == 303


def test_csrf_duplicate_cookies_are_each_tried(site):
    """A second CSRF cookie (planted for a parent domain, say) neither breaks the login nor
    lets a token through that matches no fresh cookie; planting a cookie and its token from
    another site is what the Origin / Sec-Fetch-Site refusal is for (test_trust_login)."""
    srv = site()
    s = srv.session()
    page = L.get_login(srv, s)
    mine = s.cookies.get("session_csrf")
    other = helpers.b64url_encode(L.csrf_raw())
    body = urllib.parse.urlencode({"username": "alice", "password": "secret",
                                   "csrf_token": page.token}).encode()
    status = L.raw_post(srv.port, body, [
        ("Content-Type", L.FORM_TYPE),
        ("Cookie", f"session_csrf={other}; session_csrf={mine}")]).status
    assert status == 303, status
    status = L.raw_post(srv.port, body, [
        ("Content-Type", L.FORM_TYPE),
        ("Cookie", f"session_csrf={other}; session_csrf={other}")]).status
    assert status == 403, status


# ---------------------------------------------------------------------------------------------
# Credential failures and their log lines
# ---------------------------------------------------------------------------------------------


def test_wrong_password_and_unknown_user_look_the_same(site):
    srv = site()
    s = srv.session()
    page = L.get_login(srv, s)
    bodies = []
    for user, pw in (("alice", "wrong"), ("mallory", "secret"), ("alice", "SECRET")):
        mark = srv.log_mark()
        r = L.post_login(srv, s, {"username": user, "password": pw, "csrf_token": page.token})
        assert r.status_code == 401, r.status_code
        assert_no_store(r)
        assert_no_session_cookie(r)
        assert L.page_error(r.text) == L.BAD_CREDENTIALS
        assert cookie_named(r, "session_csrf") is None     # the form can be retried
        bodies.append(r.text)
        lines = srv.grep_log("session login failed", since=mark)
        assert len(lines) == 1, lines
        assert "[info]" in lines[0]
        assert f'session login failed: user "{user}", client: 127.0.0.1,' in lines[0], lines
        assert pw not in lines[0]
    assert bodies[0] == bodies[1] == bodies[2]
    # Same token still works after failures.
    r = L.post_login(srv, s, {"username": "alice", "password": "secret",
                              "csrf_token": page.token})
    assert r.status_code == 303


def test_password_never_logged(site):
    srv = site()
    s = srv.session()
    secret_pw = "Pw-" + helpers.random_secret(16)
    L.login(srv, s, "alice", secret_pw)
    L.login(srv, s, "nobody", secret_pw)
    L.login(srv, s, secret_pw, secret_pw)   # typed into the wrong field: that one is the name
    everything = srv.log_text() + "\n".join(srv.access_log_lines())
    assert everything.count(secret_pw) == 1, [l for l in everything.splitlines()
                                              if secret_pw in l]


def test_fail2ban_line_for_hostile_names(site):
    """Names with quotes, backslashes, non-ASCII and control bytes are logged on one line, in
    a form a fail2ban regex anchored on `user "..."` and `client: <HOST>` matches."""
    srv = site()
    s = srv.session()
    rx = re.compile(r'\[info\] \d+#\d+: \*\d+ session login failed: user "(?P<u>[^"]*)", '
                    r'client: (?P<host>127\.0\.0\.1), ')
    cases = [('a"b', r'a\x22b'), ("a\\b", r"a\x5cb"), ("café", r"caf\xc3\xa9"),
             ('x", client 10.9.9.9, y', r"x\x22, client 10.9.9.9, y")]
    for name, logged in cases:
        mark = srv.log_mark()
        assert L.login(srv, s, name, "pw").status_code == 401
        lines = srv.grep_log("session login failed", since=mark)
        assert len(lines) == 1, lines
        m = rx.search(lines[0])
        assert m, lines[0]
        assert m.group("u") == logged, (name, lines[0])
    # Names that cannot be user names (control bytes, ':') still give one matching line.
    for name in ("a\nb", "a\rb", "a\tb", "\x1b[31m", "a\x00b", 'x", client: 10.9.9.9'):
        mark = srv.log_mark()
        assert L.login(srv, s, name, "pw").status_code == 401
        new = srv.log_since(mark)
        lines = [l for l in new if "session login failed" in l]
        assert len(lines) == 1, new
        m = rx.search(lines[0])
        assert m, lines[0]
        assert "10.9.9.9" not in m.group("u") or "\\x22" in m.group("u"), lines[0]
        assert "\x1b" not in lines[0] and "\x00" not in lines[0] and "\t" not in lines[0]
        # No line of its own for what followed the newline.
        assert not any(l.startswith("b") for l in new), new


def test_missing_fields(site):
    srv = site()
    s = srv.session()
    page = L.get_login(srv, s)
    for fields in ({"password": "secret"}, {"username": "alice"}, {"username": "", "password": "x"},
                   {}):
        fields = dict(fields, csrf_token=page.token)
        r = L.post_login(srv, s, fields)
        assert r.status_code == 401, (fields, r.status_code)
        assert_no_session_cookie(r)
        assert L.page_error(r.text), r.text


def test_names_that_cannot_be_users(nginx):
    """A user name with ':' / control bytes / huge length never matches, even if the file has
    a line that would look like it."""
    users = {"alice": L.hash_password("apr1", "secret")}
    text = L.htpasswd_text(users) + "a:b:" + L.hash_password("apr1", "secret") + "\n"
    srv = nginx(L.user_file_site(), files={"users": text.encode(),
                                           "html/login.shtml": L.login_page_bytes()})
    s = srv.session()
    for name in ("a:b", "alice\x00", "alice\n", "alice:", "a" * 300, "alice "):
        r = L.login(srv, s, name, "secret")
        assert r.status_code == 401, (name, r.status_code)
    r = L.login(srv, s, "alice", "secret" + "x" * 2000)
    assert r.status_code == 401


def test_failure_responses_finish_the_request(site):
    """Every kind of answer to a POST completes the request: on a keep-alive connection the
    next request is served, with `Connection: close` the server closes the connection, and
    at shutdown no connection is left open ([alert] "open socket ... left in connection")."""
    srv = site()
    s = srv.session()
    page = L.get_login(srv, s)
    cookie = "session_csrf=" + s.cookies.get("session_csrf")
    ok = f"username=alice&password=secret&csrf_token={page.token}".encode()
    cases = [
        ("csrf-403", 403, b"username=alice&password=secret&csrf_token=bad", L.FORM_TYPE),
        ("missing-fields-401", 401, f"csrf_token={page.token}".encode(), L.FORM_TYPE),
        ("wrong-password-401", 401,
         f"username=alice&password=no&csrf_token={page.token}".encode(), L.FORM_TYPE),
        ("unknown-user-401", 401,
         f"username=zed&password=no&csrf_token={page.token}".encode(), L.FORM_TYPE),
        ("content-type-415", 415, ok, "text/plain"),
        ("malformed-400", 400, b"username=%zz", L.FORM_TYPE),
        ("too-big-413", 413, ok + b"&pad=" + b"x" * 17000, L.FORM_TYPE),
        ("success-303", 303, ok, L.FORM_TYPE),
    ]
    problems = []
    for name, status, body, ctype in cases:
        r = L.raw_post(srv.port, body, [("Content-Type", ctype), ("Cookie", cookie)])
        got, closed = r.status, r.closed
        if got != status:
            problems.append(f"{name}: status {got}, expected {status}")
        if not closed:
            problems.append(f"{name}: with Connection: close the connection stayed open")
        # Keep-alive: the same connection must serve the next request.
        ks = requests.Session()
        try:
            # As a browser does: the form's GET, then the POST, then the next page, all on
            # one keep-alive connection.
            ks.get(srv.url("/ping"), timeout=3)
            r = ks.post(srv.url("/login"), data=body, allow_redirects=False, timeout=5,
                        headers={"Content-Type": ctype, "Cookie": cookie})
            try:
                r2 = ks.get(srv.url("/ping"), timeout=3)
                if r2.status_code != 200:
                    problems.append(f"{name}: next request on the connection: {r2.status_code}")
            except requests.exceptions.RequestException as e:
                problems.append(f"{name}: next request on the keep-alive connection hung ({e})")
        finally:
            ks.close()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# Request body handling: content type, size, encoding, garbage
# ---------------------------------------------------------------------------------------------


def good_body(token, **extra) -> bytes:
    return urllib.parse.urlencode(dict({"username": "alice", "password": "secret",
                                        "csrf_token": token}, **extra)).encode()


@pytest.mark.parametrize("ctype,status", [
    (None, 415), ("text/plain", 415), ("application/json", 415),
    ("multipart/form-data; boundary=x", 415), ("application/x-www-form-urlencodedx", 415),
    ("application/x-www-form", 415), ("", 415),
    ("application/x-www-form-urlencoded", 303),
    ("application/x-www-form-urlencoded; charset=UTF-8", 303),
    ("Application/X-WWW-Form-URLEncoded", 303),
])
def test_content_type(site, ctype, status):
    srv = site()
    s = srv.session()
    page = L.get_login(srv, s)
    r = L.post_login(srv, s, body=good_body(page.token), content_type=ctype)
    assert r.status_code == status, r.status_code
    if status != 303:
        assert_no_session_cookie(r)


def test_body_limits(nginx, alice_hash):
    snippet = L.user_file_site(login_extra="client_max_body_size 64k;\n"
                                           "        client_body_buffer_size 32k;",
                               locations="""
    location = /login2 {
        session_login; session_login_page /login.shtml;
        session_login_user_file {prefix}/users;
        client_max_body_size 4k;
    }
    location = /login3 {
        session_login; session_login_page /login.shtml;
        session_login_user_file {prefix}/users;
        client_body_buffer_size 1k;
    }
""")
    srv = nginx(snippet, files=L.files_for({"alice": alice_hash}))
    s = srv.session()
    page = L.get_login(srv, s)
    # Just under the module's 16 KiB form limit: fine.
    body = good_body(page.token)
    pad = 16 * 1024 - len(body) - len("&pad=")
    r = L.post_login(srv, s, body=body + b"&pad=" + b"p" * pad)
    assert r.status_code == 303, r.status_code
    # Over 16 KiB (but within client_max_body_size): 413.
    page = L.get_login(srv, s)
    r = L.post_login(srv, s, body=good_body(page.token) + b"&pad=" + b"p" * 17000)
    assert r.status_code == 413
    assert_no_session_cookie(r)
    # Over client_max_body_size: nginx's 413.
    url2 = srv.url("/login2")
    r = s.post(url2, data=good_body(page.token) + b"&pad=" + b"p" * 5000,
               headers={"Content-Type": L.FORM_TYPE}, allow_redirects=False, timeout=10)
    assert r.status_code == 413
    # Under it: fine.
    r = s.post(url2, data=good_body(page.token), headers={"Content-Type": L.FORM_TYPE},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303
    # A body nginx buffered to a temporary file is read from there (bodies up to 16 KiB work
    # with nginx's default client_body_buffer_size).
    page = L.get_login(srv, s)
    r = s.post(srv.url("/login3"), data=good_body(page.token) + b"&pad=" + b"p" * 3000,
               headers={"Content-Type": L.FORM_TYPE}, allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.status_code


def test_chunked_body(site):
    srv = site()
    s = srv.session()
    page = L.get_login(srv, s)
    body = good_body(page.token)
    chunks = [body[i:i + 7] for i in range(0, len(body), 7)]
    r = s.post(srv.url("/login"), data=iter(chunks), headers={"Content-Type": L.FORM_TYPE},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.status_code


def test_slow_body(site):
    """The body arrives in pieces with pauses: read without blocking, then processed."""
    srv = site()
    s = srv.session()
    page = L.get_login(srv, s)
    cookie = "session_csrf=" + s.cookies.get("session_csrf")
    body = good_body(page.token)
    import socket
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        c.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\n"
                  + f"Cookie: {cookie}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        for i in range(0, len(body), 20):
            c.sendall(body[i:i + 20])
            time.sleep(0.01)
            if i == 0:
                # Meanwhile the worker answers others.
                t = time.monotonic()
                assert srv.get("/ping").status_code == 200
                assert time.monotonic() - t < 0.5
        data = b""
        while True:
            b = c.recv(65536)
            if not b:
                break
            data += b
    assert data.startswith(b"HTTP/1.1 303"), data[:200]


@pytest.mark.parametrize("body", [
    b"username=%zz&password=secret",
    b"username=alice&password=%4",
    b"username=alice&password=%",
    b"username=al%GGice&password=x",
    b"user%2name=alice",
    b"username=alice&password=secret&csrf_token=%E",
])
def test_malformed_percent_encoding(site, body):
    srv = site()
    s = srv.session()
    page = L.get_login(srv, s)
    r = L.post_login(srv, s, body=body + b"&csrf_token=" + page.token.encode())
    assert r.status_code == 400, r.status_code
    assert_no_session_cookie(r)


def test_binary_garbage_is_4xx_never_5xx(site):
    srv = site()
    s = srv.session()
    page = L.get_login(srv, s)
    rng = random.Random(4)
    bodies = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600))) for _ in range(40)]
    bodies += [b"\0" * 100, b"&&&&====&&", b"=" * 50, b"%" * 30, b"+" * 30, b"\xff\xfe" * 50,
               b"a" * 16000, b"&".join([b"k=v"] * 3000)[:16000]]
    # Garbage that still carries a valid token (reaches the credential check).
    tok = b"&csrf_token=" + page.token.encode()
    bodies += [b"username=" + bytes(rng.randrange(256) for _ in range(50)).replace(b"%", b"")
               .replace(b"&", b"") + b"&password=\xff\x00" + tok for _ in range(10)]
    bodies += [b"username=%00%01%ff&password=%00" + tok, b"username=%C3%28&password=x" + tok]
    for body in bodies:
        for ctype in (L.FORM_TYPE, "application/octet-stream"):
            r = L.post_login(srv, s, body=body, content_type=ctype)
            assert 400 <= r.status_code < 500, (body[:80], ctype, r.status_code)
            assert_no_session_cookie(r)
    assert srv.get("/ping").status_code == 200
    assert not srv.grep_log("[error]"), srv.grep_log("[error]")


def test_garbage_headers_with_garbage_body(site):
    srv = site()
    rng = random.Random(7)
    for i in range(20):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        cookie = b"session_csrf=" + bytes(rng.choice(b"ABCxyz09-_=;%\xff") for _ in range(40))
        status = L.raw_post(srv.port, body, [("Content-Type", L.FORM_TYPE),
                                             ("Cookie", cookie)]).status
        assert 400 <= status < 500, (i, status)


# ---------------------------------------------------------------------------------------------
# nginx -t
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("directives,expect", [
    ("session_login_user_file {prefix}/users;", ["session_login_page"]),
    ("session_login_page /login.shtml; session_login_user_file {prefix}/users; "
     "session_login_auth /auth;", ["exactly one", "session_login_user_file",
                                   "session_login_auth"]),
    ("session_login_page /login.shtml;", ["exactly one"]),
    ("session_login_page /login.shtml; session_login_user_file {prefix}/nope;",
     ["session_login_user_file", "nope", "cannot be read"]),
    ("session_login_page /login.shtml; session_login_user_file {prefix}/users; "
     "session_login_redirect https://evil.example/;", ["session_login_redirect"]),
    ("session_login_page /login.shtml; session_login_user_file {prefix}/users; "
     "session_login_redirect home;", ["session_login_redirect"]),
    ("session_login_page login.shtml; session_login_user_file {prefix}/users;",
     ["session_login_page"]),
    ("session_login_page /login.shtml; session_login_auth http://127.0.0.1/auth;",
     ["session_login_auth"]),
])
def test_nginx_t_rejects(nginx_t, directives, expect):
    rc, out = nginx_t(L.site(directives, page=""), files={"users": b"alice:{SHA}x\n"})
    assert rc != 0, out
    assert "[emerg]" in out, out
    for e in expect:
        assert e in out, (e, out)


def test_nginx_t_accepts_good_configs(nginx_t):
    for d in ("session_login_page /login.shtml; session_login_user_file {prefix}/users;",
              "session_login_page /login.shtml; session_login_user_file users; "
              "session_login_redirect /welcome?x=1;",
              "session_login_page /login.shtml; session_login_auth /auth;"):
        rc, out = nginx_t(L.site(d, page=""), files={"users": b"alice:{SHA}x\n"})
        assert rc == 0, (d, out)


@pytest.mark.parametrize("logout", ["session_logout http://evil.example/;",
                                    "session_logout evil;", "session_logout / /x;"])
def test_nginx_t_rejects_bad_logout(nginx_t, logout):
    snippet = L.user_file_site().replace("session_logout ;", logout)
    rc, out = nginx_t(snippet, files={"users": b"alice:{SHA}x\n"})
    assert rc != 0 and "session_logout" in out, out


# ---------------------------------------------------------------------------------------------
# Password hashing runs off the event loop
# ---------------------------------------------------------------------------------------------


def _time_login(srv, user, password, out, key):
    s = requests.Session()
    try:
        page = L.get_login(srv, s)
        t = time.monotonic()
        r = L.post_login(srv, s, {"username": user, "password": password,
                                  "csrf_token": page.token})
        out[key] = (time.monotonic() - t, r.status_code)
    finally:
        s.close()


def test_bcrypt_login_does_not_block_the_worker(nginx):
    users = {"slow": L.hash_password("2y", "pw", cost=12)}
    srv = nginx(L.user_file_site(), files=L.files_for(users), workers=1)
    # a slow (sanitizer) build may not have its worker yet
    helpers.poll(lambda: len(srv.worker_pids()) == 1, 5)
    assert len(srv.worker_pids()) == 1
    srv.get("/ping")   # warm up
    results = {}
    for attempt in range(3):
        th = threading.Thread(target=_time_login, args=(srv, "slow", "pw", results, "login"))
        th.start()
        time.sleep(0.05)
        t = time.monotonic()
        r = srv.get("/ping")
        ping = time.monotonic() - t
        th.join(30)
        assert not th.is_alive()
        assert r.status_code == 200
        login_time, status = results["login"]
        assert status == 303
        assert login_time > 0.15, f"cost-12 bcrypt took only {login_time:.3f}s: not bcrypt?"
        if ping < 0.1:
            break
    assert ping < 0.1, f"/ping took {ping * 1000:.0f} ms while a bcrypt login ran " \
                       f"({login_time * 1000:.0f} ms)"


@pytest.mark.parametrize("fmt,cost,extra", [
    ("2y", 10, ""), ("6", None, ""),
    # With failed-login regulation counting both (t/test_login_limit.py): no difference either.
    ("2y", 10, "session_login_limit zone=limit:1m attempts=100 by=both;"),
])
def test_unknown_user_costs_like_a_wrong_password(nginx, fmt, cost, extra):
    users = {"real": L.hash_password(fmt, "pw", cost=cost or 5),
             "other": L.hash_password(fmt, "pw2", cost=cost or 5)}
    srv = nginx(L.user_file_site(login_extra=extra), files=L.files_for(users), workers=1)
    s = srv.session()
    page = L.get_login(srv, s)

    def once(user):
        t = time.monotonic()
        r = L.post_login(srv, s, {"username": user, "password": "wrong",
                                  "csrf_token": page.token})
        assert r.status_code == 401
        return time.monotonic() - t

    once("real"), once("ghost")   # warm up
    # The issue asks for the same cost; 0.5..2 would let a doubled cost pass, so the bound is
    # tighter. Medians of 5 interleaved samples of 2..60 ms are stable to a few percent on a quiet
    # machine; a busy one (a parallel build) can skew one set of samples, so up to three sets
    # are taken and one must be within the bound. A cheaper path for unknown users (no hash:
    # ratio ~0.1) fails all three.
    details = []
    for attempt in range(3):
        wrong, unknown = [], []
        for i in range(5):
            wrong.append(once("real"))
            unknown.append(once("ghost"))
        ratio = statistics.median(unknown) / statistics.median(wrong)
        detail = (f"unknown user {[round(x * 1000, 1) for x in unknown]} ms vs wrong password "
                  f"{[round(x * 1000, 1) for x in wrong]} ms: ratio {ratio:.2f}")
        print(detail)
        details.append(detail)
        if 0.67 <= ratio <= 1.5:
            break
    assert 0.67 <= ratio <= 1.5, "; ".join(details)
    if fmt == "2y":
        assert statistics.median(wrong) > 0.02, detail   # bcrypt cost 10 really ran
