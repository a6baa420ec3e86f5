"""Sessions are trusted only where they were made (issue 9, part 3): the login and logout flow.

- A login starts from an empty session (nothing of a previous user's or a planted session).
- Cross-origin login POSTs (Origin, Sec-Fetch-Site) are refused before credentials are checked;
  cross-site logouts are refused.
- CSRF cookies issued a little in the future (another server's clock) are accepted.
- User lookup costs the same wherever a user sits in the file; with mixed hash formats an
  unknown user costs what a random known user costs (and nginx -t warns).
- Login bodies up to 16 KiB work with nginx's default buffers.
- A login whose cookie cannot be sent, or whose thread pool queue is full, answers 503.
- $session_login_password exists only for the session_login_auth subrequest.
"""

import statistics
import threading
import time
import urllib.parse

import pytest

import helpers
import login_support as L
from helpers import cookie_named, cookie_value

AUTH = L.AUTH_PROXY


def auth_site(nginx, auth, redis=None, **kw):
    extra = ""
    if redis is not None:
        extra = f"session_store redis; session_redis 127.0.0.1:{redis.port};"
    return nginx(L.site("session_login_auth /auth;", locations=AUTH, server_extra=extra),
                 files={"html/login.shtml": L.login_page_bytes()}, aport=auth.port, **kw)


@pytest.fixture
def auth_service():
    svc = L.AuthService({"admin": ("pw", 204, [("X-Session-Role", "admin")]),
                         "bob": ("pw", 204, [])})
    yield svc
    svc.close()


@pytest.mark.parametrize("store", ["cookie", "redis"])
def test_login_starts_from_an_empty_session(nginx, redis_server, auth_service, store):
    srv = auth_site(nginx, auth_service, redis_server if store == "redis" else None)
    s = srv.session()
    r = L.login(srv, s, "admin", "pw")
    assert r.status_code == 303, r.text
    assert "user=[admin]" in L.whoami(srv, s) and "role=[admin]" in L.whoami(srv, s)
    # bob logs in from the same browser without logging out: admin's role does not follow
    r = L.login(srv, s, "bob", "pw")
    assert r.status_code == 303, r.text
    who = L.whoami(srv, s)
    assert "user=[bob]" in who and "role=[]" in who, who


def test_planted_anonymous_data_does_not_survive_login(nginx, redis_server, auth_service):
    """Data planted in a victim's browser before login (an anonymous session_set the attacker
    lured them to) is not part of the logged-in session; the old record is deleted."""
    srv = nginx(L.site("session_login_auth /auth;", locations=AUTH + r"""
    location = /plant { session_set role $arg_r; return 200 "planted"; }""",
                       server_extra=f"session_store redis; "
                                    f"session_redis 127.0.0.1:{redis_server.port};"),
                files={"html/login.shtml": L.login_page_bytes()}, aport=auth_service.port)
    s = srv.session()
    assert srv.get("/plant?r=admin", session=s).text == "planted"
    old_id = L.whoami(srv, s).split("id=[")[1].rstrip("]\n")
    assert len(old_id) == 32
    r = L.login(srv, s, "bob", "pw")
    assert r.status_code == 303
    who = L.whoami(srv, s)
    assert "user=[bob]" in who and "role=[]" in who, who
    admin = redis_server.client()
    assert admin.exists("session:" + old_id) == 0, "the anonymous record outlived the login"


# ---- cross-origin -------------------------------------------------------------------------------

ORIGIN_CASES = [
    # id, headers (besides the CSRF cookie), expected status
    ("no-headers", [], 303),
    ("same-origin", [("Origin", "http://127.0.0.1:{port}")], 303),
    ("same-origin-https", [("Origin", "https://127.0.0.1:{port}")], 303),
    ("fetch-same-origin", [("Sec-Fetch-Site", "same-origin")], 303),
    ("fetch-none", [("Sec-Fetch-Site", "none")], 303),
    ("other-host", [("Origin", "http://evil.example")], 403),
    ("other-port", [("Origin", "http://127.0.0.1:1")], 403),
    ("null", [("Origin", "null")], 403),
    ("garbage", [("Origin", "not a url")], 403),
    ("cross-site", [("Sec-Fetch-Site", "cross-site")], 403),
    ("same-site", [("Sec-Fetch-Site", "same-site")], 403),
    ("same-origin-but-cross-site", [("Origin", "http://127.0.0.1:{port}"),
                                    ("Sec-Fetch-Site", "cross-site")], 403),
]


@pytest.mark.parametrize("headers,status", [c[1:] for c in ORIGIN_CASES],
                         ids=[c[0] for c in ORIGIN_CASES])
def test_cross_origin_login_posts_are_refused(nginx, headers, status):
    srv = nginx(L.user_file_site(), files=L.files_for({"alice": L.hash_password("apr1", "pw")}))
    s = srv.session()
    page = L.get_login(srv, s)
    hdrs = {k: v.replace("{port}", str(srv.port)) for k, v in headers}
    mark = srv.log_mark()
    r = L.post_login(srv, s, {"username": "alice", "password": "pw", "csrf_token": page.token},
                     headers=hdrs)
    assert r.status_code == status, (headers, r.status_code, r.text[:300])
    if status == 403:
        assert cookie_named(r, "session") is None
        assert "cross-site login refused" in L.page_error(r.text)
        # refused before the credentials were checked
        assert srv.count_log("session login", mark) == srv.count_log("cross-origin", mark)


def test_cross_site_logout_is_refused(nginx):
    srv = nginx(L.user_file_site(), files=L.files_for({"alice": L.hash_password("apr1", "pw")}))
    s = srv.session()
    assert L.login(srv, s, "alice", "pw").status_code == 303
    r = srv.get("/logout", session=s, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and cookie_named(r, "session") is None
    assert "user=[alice]" in L.whoami(srv, s)
    # a link from a sibling app (same-site) still logs out
    r = srv.get("/logout", session=s, headers={"Sec-Fetch-Site": "same-site"})
    assert r.status_code == 303
    assert "user=[]" in L.whoami(srv, s)


def test_csrf_cookie_issued_a_little_in_the_future(nginx):
    srv = nginx(L.user_file_site(), files=L.files_for({"alice": L.hash_password("apr1", "pw")}))
    for ahead, status in ((30, 303), (600, 403)):
        raw = L.csrf_raw(issued=int(time.time()) + ahead)
        token = L.csrf_token(srv.secrets[0], raw)
        body = urllib.parse.urlencode({"username": "alice", "password": "pw",
                                       "csrf_token": token}).encode()
        r = L.raw_post(srv.port, body, [("Content-Type", L.FORM_TYPE),
                                        ("Cookie", "session_csrf=" + helpers.b64url_encode(raw))])
        assert r.status == status, (ahead, r.status)


# ---- timing -------------------------------------------------------------------------------------

def login_time(srv, s, token, user, password="wrong"):
    t = time.monotonic()
    r = L.post_login(srv, s, {"username": user, "password": password, "csrf_token": token})
    assert r.status_code == 401, r.status_code
    return time.monotonic() - t


def test_mixed_formats_warn_and_unknown_users_look_like_known_ones(nginx, nginx_t):
    """One bcrypt (cost 10) user among fast $apr1$ users. The old code checked every unknown
    name against the most expensive hash of the file, so an unknown name was slow and a known
    $apr1$ user fast: names could be told apart. Now an unknown name costs what a user of the
    file picked by a keyed hash of the name costs: some unknown names are fast, some slow,
    each consistently."""
    users = {"slow": L.hash_password("2y", "pw", cost=10)}
    apr = L.hash_password("apr1", "pw")
    for i in range(3):
        users[f"fast{i}"] = apr
    files = L.files_for(users)
    rc, out = nginx_t(L.user_file_site(), files=files)
    assert rc == 0 and "mixes 2 hash formats or costs" in out, out
    srv = nginx(L.user_file_site(), files=files)
    s = srv.session()
    token = L.get_login(srv, s).token
    slow = min(login_time(srv, s, token, "slow") for _ in range(2))
    fast = min(login_time(srv, s, token, "fast0") for _ in range(3))
    assert slow > 4 * fast and slow > 0.02, (slow, fast)
    threshold = (slow + fast) / 2
    classes = {}
    for i in range(24):
        name = f"nobody{i}"
        times = [login_time(srv, s, token, name) for _ in range(2)]
        kinds = {t > threshold for t in times}
        assert len(kinds) == 1, f"{name}: inconsistent {times} (threshold {threshold})"
        classes[name] = kinds.pop()
    assert any(classes.values()) and not all(classes.values()), \
        f"every unknown name cost the same: {classes}"


def test_lookup_cost_does_not_depend_on_the_position_in_the_file(nginx):
    """100,000 users: the first, the last and an unknown one cost the same (a hash index built
    when the file changes, not a scan per login)."""
    h = L.hash_password("sha", "pw")
    text = "".join(f"user{i}:{h}\n" for i in range(100000))
    srv = nginx(L.user_file_site(),
                files={"users": text.encode(), "html/login.shtml": L.login_page_bytes()})
    s = srv.session()
    token = L.get_login(srv, s).token

    def median(user):
        login_time(srv, s, token, user)   # warm up
        return statistics.median(login_time(srv, s, token, user) for _ in range(7))

    first, last, unknown = median("user0"), median("user99999"), median("nobody")
    detail = f"first {first * 1000:.1f} ms, last {last * 1000:.1f} ms, unknown {unknown * 1000:.1f} ms"
    print(detail)
    assert max(first, last, unknown) - min(first, last, unknown) < 0.010, detail


def test_user_file_edits_apply_without_reload(nginx):
    srv = nginx(L.user_file_site(), files=L.files_for({"alice": L.hash_password("apr1", "pw")}))
    s = srv.session()
    r = L.login(srv, s, "carol", "pw2")
    assert r.status_code == 401
    with open(srv.path / "users", "a") as f:
        f.write("carol:" + L.hash_password("apr1", "pw2") + "\n")
    s = srv.session()
    assert L.login(srv, s, "carol", "pw2").status_code == 303


# ---- bodies, pools, cookies ---------------------------------------------------------------------

def test_16k_login_body_with_default_buffers(nginx):
    srv = nginx(L.user_file_site(), files=L.files_for({"alice": L.hash_password("apr1", "pw")}))
    s = srv.session()
    page = L.get_login(srv, s)
    body = urllib.parse.urlencode({"username": "alice", "password": "pw",
                                   "csrf_token": page.token}).encode()
    body += b"&pad=" + b"p" * (16 * 1024 - len(body) - 5)
    assert len(body) == 16 * 1024
    r = L.post_login(srv, s, body=body)
    assert r.status_code == 303, r.status_code
    r = L.post_login(srv, srv.session(), body=body + b"p")
    assert r.status_code == 413


def test_login_cookie_too_large_answers_503(nginx):
    big = [(f"X-Session-K{i}", "v" * 200) for i in range(30)]
    svc = L.AuthService({"big": ("pw", 204, big), "small": ("pw", 204, [])})
    try:
        srv = auth_site(nginx, svc)
        s = srv.session()
        r = L.login(srv, s, "big", "pw")
        assert r.status_code == 503 and r.headers.get("Retry-After") == "1", r.status_code
        assert cookie_named(r, "session") is None
        assert srv.count_log("does not fit in one cookie", level="error") == 1
        assert L.login(srv, srv.session(), "small", "pw").status_code == 303
    finally:
        svc.close()


def test_login_thread_pool_of_its_own_and_a_full_queue(nginx):
    users = {"alice": L.hash_password("2y", "pw", cost=10)}
    srv = nginx(L.user_file_site(login_extra="session_login_thread_pool logins;"),
                files=L.files_for(users), main="thread_pool logins threads=1 max_queue=1;")
    s = srv.session()
    page = L.get_login(srv, s)
    results = []

    def post():
        r = L.post_login(srv, s, {"username": "alice", "password": "wrong",
                                  "csrf_token": page.token})
        results.append((r.status_code, r.headers.get("Retry-After")))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = sorted(st for st, _ in results)
    assert len(results) == 8 and set(statuses) <= {401, 503}, results
    assert 503 in statuses and 401 in statuses, results
    assert all(ra == "1" for st, ra in results if st == 503), results
    srv.allowed_bad_log.append(r"queue overflow")   # nginx's own line for a full queue


def test_password_variable_is_only_set_for_the_auth_subrequest(nginx):
    page = L.login_page_bytes().replace(b"<form", b'<p id="pw">[<!--# echo var="session_login_password" -->]</p><form')
    srv = nginx(L.user_file_site(), files=dict(L.files_for({"alice": L.hash_password("apr1", "pw")}),
                                               **{"html/login.shtml": page}))
    s = srv.session()
    token = L.get_login(srv, s).token
    r = L.post_login(srv, s, {"username": "alice", "password": "hunter2", "csrf_token": token})
    assert r.status_code == 401
    assert '<p id="pw">[]</p>' in r.text and "hunter2" not in r.text
