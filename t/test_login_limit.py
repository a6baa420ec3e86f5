"""session_login_limit: failed-login regulation in a shared memory zone.

Ban and unban timing, the sliding window, per client vs per user vs both (other clients are
made by binding the client socket to other loopback addresses, 127.0.0.2 ...), the right
password refused while banned, other users unaffected, unknown users indistinguishable from
known ones, what counts as a failure (not CSRF failures, bad forms or cross-origin POSTs), what a
success resets, concurrent attempts, several workers sharing one zone, a reload keeping bans,
a full zone (evicts non-bans first, never refuses everyone), the 429 costing no password hash
(measured in the worker's CPU time), session_login_auth (no subrequest while banned), the
fail2ban line, and `nginx -t` errors.
"""

import os
import re
import threading
import time
import urllib.parse

import pytest
import requests

import helpers
import login_support as L
from helpers import cookie_named

LIMITED = "too many failed logins, please try again later"


class _SourceAdapter(requests.adapters.HTTPAdapter):
    """Connects from a given loopback address (127.0.0.0/8 is all local)."""

    def __init__(self, ip):
        self.ip = ip
        super().__init__()

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self.ip, 0)
        super().init_poolmanager(*args, **kw)


def client(srv, ip="127.0.0.1") -> requests.Session:
    """A browser-like session (cookie jar) whose connections come from ip."""
    s = srv.session()
    s.mount("http://", _SourceAdapter(ip))
    return s


class Browser:
    """One client with a login page fetched (CSRF cookie and token), posting attempts."""

    def __init__(self, srv, ip="127.0.0.1"):
        self.srv = srv
        self.s = client(srv, ip)
        self.page = L.get_login(srv, self.s)

    def post(self, user, password, **kw):
        return L.post_login(self.srv, self.s, {"username": user, "password": password,
                                               "csrf_token": self.page.token}, **kw)

    def status(self, user, password):
        return self.post(user, password).status_code


def limit_site(nginx, limit, users=None, workers=1, server_extra="", credentials=None,
               **kw):
    """A login site (alice/secret, bob/hunter2, {SHA}: fast) with `session_login_limit <limit>;`
    in its login location."""
    users = users or {"alice": L.hash_password("sha", "secret"),
                      "bob": L.hash_password("sha", "hunter2")}
    extra = f"session_login_limit {limit};" if limit else ""
    if credentials is None:
        snippet = L.user_file_site(login_extra=extra, server_extra=server_extra)
    else:
        snippet = L.site(credentials, login_extra=extra, server_extra=server_extra,
                         locations=kw.pop("locations", ""))
    return nginx(snippet, files=L.files_for(users), workers=workers, **kw)


def assert_limited(r, ban=None):
    assert r.status_code == 429, (r.status_code, r.text[:300])
    assert L.page_error(r.text) == LIMITED, r.text
    assert cookie_named(r, "session") is None
    assert r.headers.get("Cache-Control") == "no-store"
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= (ban or 10 ** 9), retry
    return retry


def ban_lines(srv, mark=0):
    return srv.grep_log("session login limit:", since=mark, level="info")


# ---------------------------------------------------------------------------------------------
# Ban, window, unban
# ---------------------------------------------------------------------------------------------


def test_ban_after_attempts_and_unban_after_ban_time(nginx):
    srv = limit_site(nginx, "zone=login:1m attempts=3 window=1m ban=3s")
    b = Browser(srv)
    mark = srv.log_mark()
    assert [b.status("alice", "wrong") for _ in range(3)] == [401, 401, 401]
    # Banned: the right password too, with the page, 429 and Retry-After.
    r = b.post("alice", "secret")
    retry = assert_limited(r, ban=3)
    assert retry in (2, 3), retry
    assert 'name="csrf_token"' in r.text            # the page, with a fresh form
    assert r.headers.get("X-Frame-Options") == "DENY"
    # One line for the ban, in a fixed form for fail2ban; refused attempts are not bans.
    assert_limited(b.post("bob", "hunter2"))
    lines = ban_lines(srv, mark)
    assert len(lines) == 1, lines
    assert ("session login limit: client banned for 3s after 3 failed logins within 60s, "
            "client: 127.0.0.1, server: ") in lines[0], lines[0]
    assert "while" not in lines[0]
    # Three failure lines, and the refused attempts did not add any.
    assert srv.count_log("session login failed", mark) == 3
    # The ban ends: a clean slate.
    time.sleep(3.1)
    r = b.post("alice", "secret")
    assert r.status_code == 303, r.status_code
    assert "Retry-After" not in r.headers


def test_window_slides_and_success_takes_back_only_its_own_attempt(nginx):
    """attempts=2 window=2s per client: failures further apart than the window never ban; a
    success does not forgive the address's other failures (or anyone with an account could
    launder guesses at other accounts)."""
    srv = limit_site(nginx, "zone=login:1m attempts=2 window=2s ban=1m")
    b = Browser(srv)
    assert b.status("alice", "wrong") == 401
    time.sleep(2.2)
    assert b.status("alice", "wrong") == 401    # the first one left the window
    assert b.status("bob", "hunter2") == 303    # a success: not a failure, not a reset
    b = Browser(srv)                            # (a new CSRF cookie after the login)
    assert b.status("alice", "wrong") == 401    # two failures within 2 s: banned now
    assert_limited(b.post("alice", "secret"), ban=60)


def test_success_clears_a_user_name(nginx):
    """Per user: the account's password clears the account's failures."""
    srv = limit_site(nginx, "zone=login:1m attempts=3 window=1m ban=1m by=user")
    b = Browser(srv)
    assert [b.status("alice", "wrong") for _ in range(2)] == [401, 401]
    assert b.status("alice", "secret") == 303
    b = Browser(srv)
    assert [b.status("alice", "wrong") for _ in range(2)] == [401, 401]   # counted from 0
    assert b.status("alice", "wrong") == 401
    assert_limited(b.post("alice", "secret"))


# ---------------------------------------------------------------------------------------------
# Whom a ban refuses
# ---------------------------------------------------------------------------------------------


def test_by_client_refuses_the_address_for_every_name_and_only_it(nginx):
    srv = limit_site(nginx, "zone=login:1m attempts=2 ban=1m")
    mallory = Browser(srv, "127.0.0.2")
    assert [mallory.status(u, "guess") for u in ("alice", "ghost")] == [401, 401]
    for user, pw in (("alice", "secret"), ("bob", "hunter2"), ("nobody", "x")):
        assert_limited(mallory.post(user, pw))
    # Another address is not affected, alice included.
    alice = Browser(srv, "127.0.0.3")
    assert alice.status("alice", "secret") == 303
    assert Browser(srv).status("bob", "wrong") == 401


def test_by_user_refuses_the_name_from_every_address_and_only_it(nginx):
    srv = limit_site(nginx, "zone=login:1m attempts=3 ban=1m by=user")
    mark = srv.log_mark()
    # Three addresses, one failure each, against alice (ALICE is the same name).
    for ip, name in (("127.0.0.2", "alice"), ("127.0.0.3", "ALICE"), ("127.0.0.4", "Alice")):
        assert Browser(srv, ip).status(name, "guess") == 401
    # alice is refused everywhere, with her right password too: the lockout README warns of.
    for ip in ("127.0.0.1", "127.0.0.5"):
        assert_limited(Browser(srv, ip).post("alice", "secret"))
    # bob, from the attacker's own addresses, is not.
    assert Browser(srv, "127.0.0.2").status("bob", "hunter2") == 303
    lines = ban_lines(srv, mark)
    assert len(lines) == 1, lines
    assert 'user "Alice" banned for 60s after 3 failed logins within 600s, client: 127.0.0.4' \
        in lines[0], lines[0]


def test_spellings_of_a_name_share_its_allowance(nginx):
    """by=user: the spellings a canonicalising credential service takes for one name (white
    space at the ends, Unicode spaces, fullwidth letters, case) are one name to the limit."""
    srv = limit_site(nginx, "zone=login:1m attempts=3 ban=1m by=user")
    b = Browser(srv)
    assert [b.status(v, "x") for v in (" alice", "ALICE\u00a0", "\uff41\uff4c\uff49\uff43\uff45")] \
        == [401, 401, 401]
    for v in ("alice", "\u2000Alice", "\u3000alice\t", "\U0001d41alice"):
        assert_limited(b.post(v, "secret"))
    # Other names are not: an inner space, another letter.
    assert b.status("al ice", "x") == 401
    assert b.status("bob", "hunter2") == 303


def test_unknown_users_are_counted_and_refused_like_known_ones(nginx):
    """A 429 must not tell which users exist: same count, same answer."""
    srv = limit_site(nginx, "zone=login:1m attempts=2 ban=1m by=user")
    b = Browser(srv)
    answers = {}
    for user in ("alice", "ghost"):
        assert [b.status(user, "guess") for _ in range(2)] == [401, 401], user
        r = b.post(user, "guess")
        assert_limited(r)
        answers[user] = r
    a, g = answers["alice"], answers["ghost"]
    assert a.text == g.text
    drop = {"Date", "Retry-After"}
    assert {k: v for k, v in a.headers.items() if k not in drop} == \
           {k: v for k, v in g.headers.items() if k not in drop}
    assert abs(int(a.headers["Retry-After"]) - int(g.headers["Retry-After"])) <= 1


def test_by_both(nginx):
    srv = limit_site(nginx, "zone=login:1m attempts=2 ban=1m by=both")
    # One address guessing many names: the address is banned.
    m = Browser(srv, "127.0.0.2")
    assert [m.status(u, "x") for u in ("u1", "u2")] == [401, 401]
    assert_limited(m.post("bob", "hunter2"))
    # Many addresses guessing one name: the name is banned.
    for ip in ("127.0.0.3", "127.0.0.4"):
        assert Browser(srv, ip).status("alice", "x") == 401
    assert_limited(Browser(srv, "127.0.0.5").post("alice", "secret"))
    # Neither: fine.
    assert Browser(srv, "127.0.0.6").status("bob", "hunter2") == 303


# ---------------------------------------------------------------------------------------------
# What counts
# ---------------------------------------------------------------------------------------------


def test_only_credential_checks_count(nginx):
    """CSRF failures (a forged cross-site POST must not lock out the name it names), bad forms,
    missing fields and cross-origin POSTs check no password and are not counted."""
    srv = limit_site(nginx, "zone=login:1m attempts=2 ban=1m by=both")
    b = Browser(srv)
    for _ in range(4):
        r = L.post_login(srv, b.s, {"username": "alice", "password": "x", "csrf_token": "bad"})
        assert r.status_code == 403
        r = L.post_login(srv, b.s, body=b"username=alice&password=%zz&csrf_token=" +
                         b.page.token.encode())
        assert r.status_code == 400
        r = L.post_login(srv, b.s, {"username": "alice", "csrf_token": b.page.token})
        assert r.status_code == 401
        r = b.post("alice", "x", headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
    assert b.status("alice", "wrong") == 401     # the first failure that counts
    assert b.status("alice", "secret") == 303


def test_concurrent_attempts_cannot_exceed_attempts(nginx):
    """Attempts are counted when their check starts: 12 guesses sent at once, each a bcrypt
    check that takes a while, get exactly `attempts` checks."""
    users = {"alice": L.hash_password("2y", "secret", cost=10)}
    srv = limit_site(nginx, "zone=login:1m attempts=3 ban=1m", users=users)
    b = Browser(srv)
    results = []
    lock = threading.Lock()

    def guess(i):
        s = requests.Session()
        s.cookies.update(b.s.cookies)
        try:
            r = L.post_login(srv, s, {"username": "alice", "password": f"guess{i}",
                                      "csrf_token": b.page.token}, timeout=30)
            with lock:
                results.append(r.status_code)
        finally:
            s.close()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [401] * 3 + [429] * 9, results
    assert srv.count_log("session login failed") == 3


def test_the_429_costs_no_password_hash(nginx):
    """Measured: a banned attempt answers without bcrypt, in wall time and in the worker's CPU
    time (the thread pool's threads are the worker's)."""
    users = {"slow": L.hash_password("2y", "pw", cost=12)}
    srv = limit_site(nginx, "zone=login:1m attempts=1 ban=1m", users=users)
    helpers.poll(lambda: len(srv.worker_pids()) == 1, 5)
    (worker,) = srv.worker_pids()
    b = Browser(srv)

    def cpu():
        with open(f"/proc/{worker}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    c0, t0 = cpu(), time.monotonic()
    assert b.status("slow", "wrong") == 401        # the one failure: a cost-12 bcrypt
    fail_cpu, fail_wall = cpu() - c0, time.monotonic() - t0
    n = 10
    c1, t1 = cpu(), time.monotonic()
    for i in range(n):
        assert_limited(b.post("slow", "pw" if i % 2 else "wrong"))
    banned_cpu, banned_wall = cpu() - c1, time.monotonic() - t1
    detail = (f"one failure: {fail_wall * 1000:.0f} ms, {fail_cpu * 1000:.0f} ms CPU; "
              f"{n} refused: {banned_wall * 1000:.0f} ms, {banned_cpu * 1000:.0f} ms CPU")
    print(detail)
    assert fail_cpu >= 0.1, detail                 # bcrypt cost 12 really ran for the failure
    assert banned_cpu < fail_cpu / 2, detail       # ten refusals cost less than half a hash
    assert banned_wall / n < fail_wall / 4, detail


# ---------------------------------------------------------------------------------------------
# The zone: workers, reload, full
# ---------------------------------------------------------------------------------------------


def test_workers_share_the_zone(nginx):
    """Two workers (reuseport spreads the connections over both) count into one zone."""
    snippet = L.user_file_site(
        login_extra="session_login_limit zone=login:1m attempts=12 ban=1m;",
        server_extra="add_header X-Worker $pid always;").replace(
            "listen 127.0.0.1:{port};", "listen 127.0.0.1:{port} reuseport;")
    srv = nginx(snippet, files=L.files_for({"alice": L.hash_password("sha", "secret")}),
                workers=2)
    assert helpers.poll(lambda: len(srv.worker_pids()) == 2, 5)
    b = Browser(srv)
    seen = set()
    for _ in range(12):
        r = b.post("alice", "wrong")     # a new connection each (Connection: close)
        assert r.status_code == 401
        seen.add(r.headers["X-Worker"])
    assert len(seen) == 2, f"all failures were answered by worker(s) {seen}"
    for _ in range(8):
        assert_limited(b.post("alice", "secret"))
    assert srv.count_log("session login limit: client banned") == 1


def test_reload_keeps_bans(nginx):
    srv = limit_site(nginx, "zone=login:1m attempts=2 ban=1m")
    b = Browser(srv)
    assert [b.status("alice", "x") for _ in range(2)] == [401, 401]
    assert_limited(b.post("alice", "secret"))
    srv.reload()
    assert_limited(Browser(srv).post("alice", "secret"))
    # Another attempts= (the zone's entries are remade): the ban stays.
    srv.reload(srv.snippet.replace("attempts=2", "attempts=4"))
    assert_limited(Browser(srv).post("alice", "secret"))


def _flood(srv, names, password="x"):
    """One failed login per name, on one keep-alive connection (fast)."""
    b = Browser(srv)
    out = []
    for name in names:
        r = b.post(name, password, keepalive=True)
        out.append(r.status_code)
    return out


def test_full_zone_evicts_non_bans_first(nginx):
    """A 32k zone holds a few hundred entries: 600 names later, the ban is still there (the
    one-failure entries went first), and new names are still counted, not refused."""
    srv = limit_site(nginx, "zone=tiny:32k attempts=2 ban=1m by=user")
    b = Browser(srv)
    assert [b.status("victim", "x") for _ in range(2)] == [401, 401]
    assert _flood(srv, [f"name{i}" for i in range(600)]) == [401] * 600
    assert_limited(b.post("victim", "x"))
    assert b.status("fresh", "x") == 401
    assert b.status("alice", "secret") == 303


def test_full_zone_evicts_fewest_failures_first(nginx):
    """by=user: two guesses at a name, then one failure each with 600 junk names (a 32k zone
    holds a few hundred): the junk goes, not the name's partial count - its third guess within
    the window is the last one checked."""
    srv = limit_site(nginx, "zone=tiny:32k attempts=3 window=10m ban=1m by=user")
    b = Browser(srv)
    assert [b.status("alice", "x") for _ in range(2)] == [401, 401]
    assert _flood(srv, [f"junk{i}" for i in range(600)]) == [401] * 600
    assert b.status("alice", "x") == 401
    assert_limited(b.post("alice", "secret"))
    assert b.status("fresh", "x") == 401


def test_zone_full_of_bans_never_refuses_everyone(nginx):
    """attempts=1: every failure is a ban. When the zone holds nothing but bans, the oldest
    ban goes: new names are still checked, the most recent bans hold."""
    srv = limit_site(nginx, "zone=tiny:32k attempts=1 ban=1m by=user")
    names = [f"name{i}" for i in range(600)]
    assert _flood(srv, names) == [401] * 600
    b = Browser(srv)
    assert b.status("alice", "secret") == 303
    b = Browser(srv)
    assert_limited(b.post(names[-1], "x"))       # recent bans hold
    assert b.status(names[0], "x") == 401        # the oldest was evicted
    assert srv.count_log("session login limit: user") == 601


def _post_from(srv, b, ip, user, password):
    """One attempt from address ip with b's CSRF cookie and token (not bound to an address)."""
    s = client(srv, ip)
    s.cookies.update(b.s.cookies)
    return L.post_login(srv, s, {"username": user, "password": password,
                                 "csrf_token": b.page.token}).status_code


def test_by_both_zone_full_of_bans_still_counts_new_addresses(nginx):
    """by=both, a zone full of bans: making room for a new name's entry never evicts the
    address's entry the same attempt just made, so an address spraying new names is banned
    after `attempts` like any other; and nothing says "no room"."""
    srv = limit_site(nginx, "zone=tiny:32k attempts=1 ban=1m by=both")
    b = Browser(srv)
    for i in range(300):   # two bans per attempt: far more than a 32k zone holds
        assert _post_from(srv, b, f"127.0.{1 + i // 250}.{1 + i % 250}", f"fill{i}", "x") == 401
    mark = srv.log_mark()
    statuses = [_post_from(srv, b, "127.0.9.9", f"spray{i}", "x") for i in range(5)]
    assert statuses == [401] + [429] * 4, statuses
    assert srv.count_log("has no room for an entry", mark) == 0
    assert srv.count_log("session login limit: client banned", mark) == 1


# ---------------------------------------------------------------------------------------------
# session_login_auth
# ---------------------------------------------------------------------------------------------


def test_login_auth_is_not_asked_while_banned(nginx):
    svc = L.AuthService({"alice": ("letmein", 204, [])})
    try:
        srv = limit_site(nginx, "zone=login:1m attempts=2 ban=1m",
                         credentials="session_login_auth /auth;", locations=L.AUTH_PROXY,
                         aport=svc.port)
        b = Browser(srv)
        assert [b.status("alice", "x") for _ in range(2)] == [401, 401]
        assert len(svc.requests) == 2
        assert_limited(b.post("alice", "letmein"))
        assert len(svc.requests) == 2
        # Another address: alice's password works (by=client), and counts no failure.
        assert Browser(srv, "127.0.0.2").status("alice", "letmein") == 303
    finally:
        svc.close()


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def _conf(limit, extra=""):
    return L.user_file_site(login_extra=f"session_login_limit {limit};", server_extra=extra)


@pytest.mark.parametrize("limit", [
    "zone=login:1m",
    "zone=login:10m attempts=10 window=1h ban=1d by=both",
    "zone=login:64k attempts=1 window=1s ban=1s by=user",
    "ZONE=login:1M BY=CLIENT",
])
def test_nginx_t_accepts(nginx_t, limit):
    rc, out = nginx_t(_conf(limit), files={"users": b"alice:{SHA}x\n"})
    assert rc == 0, out


@pytest.mark.parametrize("limit,expect", [
    ("", 'invalid number of arguments in "session_login_limit"'),
    ("attempts=3", '"session_login_limit" needs zone=NAME:SIZE'),
    ("zone=login", 'invalid zone (use zone=NAME:SIZE'),
    ("zone=:1m", "invalid zone"),
    ("zone=login:", "invalid zone size"),
    ("zone=login:1q", 'invalid zone size (use e.g. zone=NAME:1m): "zone=login:1q"'),
    ("zone=login:4k", 'zone "login" is too small'),
    # 2^64 + 1g would wrap to 1g in 64 bits: refused, as nginx's own size parser refuses it.
    ("zone=login:17179869185g", 'invalid zone size (use e.g. zone=NAME:1m): "zone=login:'),
    ("zone=login:1m attempts=0", 'invalid attempts (a number from 1 to 100): "attempts=0"'),
    ("zone=login:1m attempts=101", "invalid attempts"),
    ("zone=login:1m attempts=many", "invalid attempts"),
    ("zone=login:1m window=0", "invalid window"),
    ("zone=login:1m window=100ms", "invalid window"),
    ("zone=login:1m ban=forever", 'invalid ban (a time from 1s to 366d, e.g. 15m): "ban=forever"'),
    ("zone=login:1m by=ip", 'invalid by (client, user or both): "by=ip"'),
    ("zone=login:1m rate=1r/s", 'unknown parameter (use zone=, attempts=, window=, ban=, by=)'),
    ("zone=login:1m attempts=3 attempts=4", 'duplicate parameter: "attempts=4"'),
])
def test_nginx_t_rejects(nginx_t, limit, expect):
    rc, out = nginx_t(_conf(limit), files={"users": b"alice:{SHA}x\n"})
    assert rc != 0, out
    assert "[emerg]" in out and expect in out, out
    assert "session_login_limit" in out, out


@pytest.mark.parametrize("extra,expect", [
    # Twice in one location.
    ("session_login_limit zone=other:1m;", '"session_login_limit" directive is duplicate'),
    # One zone, two sets of parameters (server level and the login location).
    ("session_login_limit zone=login:1m attempts=9;",
     'zone "login" is already declared with other parameters'),
    # One name, two sizes.
    ("session_login_limit zone=login:2m;", 'conflicts with already declared size'),
    # A limit_req zone of the same name.
    ("limit_req_zone $binary_remote_addr zone=login:1m rate=1r/s;",
     "is already declared for a different use"),
])
def test_nginx_t_rejects_zone_conflicts(nginx_t, extra, expect):
    if extra.startswith("session_login_limit zone=other"):
        snippet = L.user_file_site(login_extra="session_login_limit zone=login:1m;\n        "
                                   + extra)
        rc, out = nginx_t(snippet, files={"users": b"alice:{SHA}x\n"})
    elif extra.startswith("limit_req_zone"):
        snippet = L.user_file_site(login_extra="session_login_limit zone=login:1m;",
                                   http_extra=extra)
        rc, out = nginx_t(snippet, files={"users": b"alice:{SHA}x\n"})
    else:
        rc, out = nginx_t(_conf("zone=login:1m", extra), files={"users": b"alice:{SHA}x\n"})
    assert rc != 0, out
    assert expect in out, out


def test_nginx_t_warns_about_a_limit_that_applies_to_no_login(nginx_t):
    """A limit written in a location without session_login (and without nested locations) is
    a slip that leaves the login unlimited: nginx -t warns, naming the file and line; a limit in
    the login location, at server level, or in a location around the login location does
    not."""
    files = {"users": b"alice:{SHA}x\n"}
    site = L.user_file_site().replace(
        "location = /login.shtml { internal; ssi on; }",
        "location = /login.shtml { internal; ssi on; session_login_limit zone=z:1m; }")
    rc, out = nginx_t(site, files=files)
    assert rc == 0, out
    assert re.search(r'\[warn\] "session_login_limit" in \S+nginx\.conf:\d+ applies to no login: '
                     r'location "/login.shtml" has no "session_login"', out), out
    quiet = [
        _conf("zone=z:1m"),                                       # the login location
        L.user_file_site(server_extra="session_login_limit zone=z:1m;"),   # its server
        L.site("session_login_user_file {prefix}/users;", locations="""
    location /app/ {
        session_login_limit zone=z:1m;
        location = /app/login {
            session_login;
            session_login_page /login.shtml;
            session_login_user_file {prefix}/users;
        }
    }"""),
    ]
    for conf in quiet:
        rc, out = nginx_t(conf, files=files)
        assert rc == 0 and "[warn]" not in out, out


def test_one_zone_for_several_servers(nginx):
    """The same declaration in two servers is one zone: a ban on one is a ban on the other."""
    site = L.user_file_site(login_extra="session_login_limit zone=shared:1m attempts=2 ban=1m;")
    second = site.replace("{port}", "{port2}")
    srv = nginx(site + second, files=L.files_for({"alice": L.hash_password("sha", "secret")}))
    b = Browser(srv)
    assert [b.status("alice", "x") for _ in range(2)] == [401, 401]
    s = client(srv)
    r = s.get(srv.url("/login", port=srv.port2), allow_redirects=False, timeout=10)
    token = L.form_inputs(r.text)["csrf_token"]
    r = s.post(srv.url("/login", port=srv.port2),
               data=urllib.parse.urlencode({"username": "alice", "password": "secret",
                                            "csrf_token": token}),
               headers={"Content-Type": L.FORM_TYPE}, allow_redirects=False, timeout=10)
    assert_limited(r)


# ---------------------------------------------------------------------------------------------
# fail2ban
# ---------------------------------------------------------------------------------------------

# README's failregexes, as fail2ban applies them: to the line after its date.
FAIL2BAN_BANS = re.compile(r'^\s*\[info\] \d+#\d+: \*\d+ session login limit: '
                           r'(?:client|user "[^"]*") banned for \d+s after \d+ failed logins '
                           r'within \d+s, client: (\S+?), ')
FAIL2BAN_FAILURES = re.compile(r'^\s*\[info\] \d+#\d+: \*\d+ session login failed: '
                               r'user "[^"]*", client: (\S+?), ')
FAKE = "session login limit: client banned for 1s after 1 failed logins within 1s, " \
       "client: 203.0.113.9, "
FAKE_FAILURE = 'session login failed: user "x", client: 203.0.113.9, '


def test_fail2ban_lines_cannot_be_forged(nginx):
    """Names and request lines that carry the text of a ban or failure line for another
    address: README's failregexes find only the real client."""
    srv = limit_site(nginx, "zone=login:1m attempts=1 ban=1m by=user")
    b = Browser(srv)
    mark = srv.log_mark()
    names = [FAKE, FAKE_FAILURE, 'x" banned for 1s after 1 failed logins within 1s, '
             'client: 203.0.113.9, ', 'x", client: 203.0.113.9, ']
    for name in names:
        assert b.status(name, "x") == 401
    failed = len(names)   # attempts=1: every failure is a ban of its name
    cookie = "session_csrf=" + b.s.cookies.get("session_csrf")
    for i, query in enumerate((FAKE, '"' + FAKE, '", client: 203.0.113.9, "',
                               FAKE_FAILURE, '"' + FAKE_FAILURE)):
        # Percent-encoded, and raw (nginx takes spaces and quotes in a request target).
        for target in ("/login?" + urllib.parse.quote(query), "/login?" + query):
            body = urllib.parse.urlencode({"username": f"u{i}{len(target)}", "password": "x",
                                           "csrf_token": b.page.token}).encode()
            r = L.raw_post(srv.port, body, [("Cookie", cookie), ("Content-Type", L.FORM_TYPE)],
                           path=target)
            assert r.status in (400, 401), (target, r.status)
            failed += r.status == 401
    lines = srv.log_since(mark)
    bans = [m.group(1) for l in lines if (m := FAIL2BAN_BANS.search(l[19:]))]
    failures = [m.group(1) for l in lines if (m := FAIL2BAN_FAILURES.search(l[19:]))]
    assert len(bans) == len(failures) == failed, lines
    assert set(bans) == set(failures) == {"127.0.0.1"}, (bans, failures)
