"""Review: session_login_limit (failed-login regulation) under attack.

Failing tests demonstrate a bug or a gap between README/DESIGN and what nginx does; passing
tests are attacks that held. Other clients are made by binding the client socket to other
loopback addresses (all of 127/8 is local on Linux).

  timeout 900 /usr/bin/python3 -m pytest -q -p no:cacheprovider t/review/test_review_login_limit.py
"""

import os
import socket
import sys
import threading
import time
import urllib.parse

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import helpers  # noqa: E402
import login_support as L  # noqa: E402
from test_login_limit import Browser, LIMITED, assert_limited, limit_site  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Raw attempts from any loopback address, with one CSRF cookie + token (not bound to an address)
# ---------------------------------------------------------------------------------------------

class Form:
    """A CSRF cookie and its token, fetched once; attempts from any source address."""

    def __init__(self, srv, port=None):
        self.srv = srv
        self.port = port or srv.port
        b = Browser(srv)
        self.cookie = "session_csrf=" + b.s.cookies.get("session_csrf")
        self.token = b.page.token

    def request(self, user, password, extra_headers=()):
        body = urllib.parse.urlencode({"username": user, "password": password,
                                       "csrf_token": self.token}).encode()
        head = (f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Cookie: {self.cookie}\r\nContent-Type: {L.FORM_TYPE}\r\n"
                f"Content-Length: {len(body)}\r\n")
        for k, v in extra_headers:
            head += f"{k}: {v}\r\n"
        return head.encode(), body

    def post(self, user, password, src="127.0.0.1", headers=(), family=socket.AF_INET,
             dst="127.0.0.1"):
        """One attempt on its own connection; returns (status, headers dict, body)."""
        head, body = self.request(user, password, headers)
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.settimeout(30)
            s.bind((src, 0))
            s.connect((dst, self.port))
            s.sendall(head + b"Connection: close\r\n\r\n" + body)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        return parse(data)


def parse(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs.setdefault(k.strip().lower(), v.strip())
    return status, hdrs, body


# ---------------------------------------------------------------------------------------------
# Findings
# ---------------------------------------------------------------------------------------------


def test_by_both_zone_full_of_bans_counts_no_client(nginx):
    """by=both, zone full of active bans (a busy site under a spray from many addresses, or an
    attacker with an IPv6 /48): every new attempt makes the client's entry first, then the user
    name's entry - and making room for the user entry evicts the client entry just made (the only
    non-ban left, so pass 0 of create() takes it). login_limit_begin re-finds the client entry,
    gets nullptr, and charges the user name only ("has no room for an entry", a [warn] per
    request). Result: one address spraying distinct names is never banned - by=both silently
    degrades to by=user for every new address, and each such request also evicts a victim's
    ban."""
    srv = limit_site(nginx, "zone=tiny:32k attempts=1 window=10m ban=10m by=both")
    f = Form(srv)
    # Fill the zone with bans: one failure each from 300 addresses, each naming its own user
    # (attempts=1: two bans per request, far more than a 32k zone holds).
    for i in range(300):
        st, _, _ = f.post(f"fill{i}", "x", src=f"127.0.{1 + i // 250}.{1 + i % 250}")
        assert st == 401, (i, st)
    mark = srv.log_mark()
    # The attacker: one new address, names never seen. attempts=1: its second attempt must be
    # refused.
    statuses = [f.post(f"spray{i}", "x", src="127.0.9.9")[0] for i in range(10)]
    no_room = srv.count_log("has no room for an entry", mark)
    print("attacker statuses:", statuses, "no-room warnings:", no_room)
    assert statuses[0] == 401
    assert statuses[1:] == [429] * 9, \
        f"one address got {statuses.count(401)} checks with attempts=1 ({no_room} no-room lines)"


def test_by_user_names_an_auth_service_canonicalises_get_an_allowance_each(nginx):
    """session_login_auth with a typical credential service that canonicalises the name as
    Django's AuthenticationForm does (CharField strips whitespace, UsernameField NFKC-normalises)
    and then looks it up case-insensitively. The limit folds ASCII case only, so " alice",
    "alice ", "ａｌｉｃｅ" (fullwidth), "alice\u00a0"... are new names, each with `attempts`
    guesses at alice's password: by=user (and the user half of by=both, the mode meant for a
    botnet guessing one account) does not bound the guesses at one account."""
    import unicodedata

    guesses = []

    def decide(h):
        user = unicodedata.normalize("NFKC", h.get("X-User", "").encode("latin-1")
                                     .decode("utf-8")).strip().lower()
        pw = h.get("X-Pass", "")
        if user == "alice":
            guesses.append(pw)
        return (204, []) if (user, pw) == ("alice", "letmein") else (401, [])

    svc = L.AuthService(decide=decide)
    try:
        srv = limit_site(nginx, "zone=login:1m attempts=3 window=10m ban=10m by=user",
                         credentials="session_login_auth /auth;", locations=L.AUTH_PROXY,
                         aport=svc.port)
        b = Browser(srv)
        variants = ["alice", " alice", "alice ", "  alice", "ALICE ",
                    "\uff41\uff4c\uff49\uff43\uff45", "alice\u00a0", "\u2000alice"]
        for v in variants:
            for i in range(3):
                b.post(v, f"guess-{v!r}-{i}")
        print(f"{len(guesses)} password guesses at alice reached the credential service")
        assert len(guesses) <= 3, \
            f"{len(guesses)} guesses at alice's password with attempts=3 by=user"
    finally:
        svc.close()


def test_by_user_partial_counts_evicted_by_junk_names_give_unbounded_guesses(nginx):
    """by=user, one address: guess alice attempts-1 times, then fail once each with a few
    hundred junk names: the zone is full, the least recently updated non-ban (alice's entry,
    two failures) is evicted (DESIGN's eviction order), and alice starts from zero again. Repeat:
    more than `attempts` guesses at alice within `window`, no ban ever. (The cost is one junk
    failure per zone entry per round: about 4,000 per round in a 1m zone; by=both stops it by
    banning the address. README's "after `attempts` failures within `window` ... the user
    name is refused" does not say that partial counts are evictable.)"""
    srv = limit_site(nginx, "zone=tiny:32k attempts=3 window=10m ban=10m by=user")
    b = Browser(srv)
    guesses = 0
    refused = False
    for rnd in range(3):
        for i in range(2):
            st = b.status("alice", f"guess{rnd}-{i}")
            if st == 429:   # banned: the attack is over (a fixed zone gets here in round 1)
                refused = True
                break
            assert st == 401
            guesses += 1
        if refused:
            break
        for i in range(400):
            r = b.post(f"junk{rnd}-{i}", "x", keepalive=True)
            assert r.status_code == 401
    r = b.post("alice", "one-more")
    print(f"{guesses} checked guesses at alice, then: {r.status_code}")
    assert guesses <= 3 and r.status_code == 429, \
        f"{guesses} guesses at alice within the window, attempts=3, by=user: no ban"


def test_no_room_warning_is_not_rate_limited(nginx):
    """Client-triggered log line without a limit (DESIGN: "log lines caused by client input ...
    are rate-limited"): in the by=both full-of-bans state every attempt writes a [warn]
    "has no room for an entry" - and its comment says this only happens for "an entry larger
    than the zone"."""
    srv = limit_site(nginx, "zone=tiny:32k attempts=1 window=10m ban=10m by=both")
    f = Form(srv)
    for i in range(300):
        f.post(f"fill{i}", "x", src=f"127.0.{1 + i // 250}.{1 + i % 250}")
    mark = srv.log_mark()
    for i in range(30):
        f.post(f"spray{i}", "x", src="127.0.9.10")
    n = srv.count_log("has no room for an entry", mark)
    print("no-room warnings for 30 attempts:", n)
    assert n <= 2, f"{n} [warn] lines for 30 client attempts in under a few seconds"


@pytest.mark.parametrize("size", ["17179869185g", "17179869216g"])
def test_nginx_t_rejects_zone_size_that_overflows(nginx_t, size):
    """parse_size() multiplies a 12-digit number by the suffix's scale in uint64 without an
    overflow check: 17179869185g is (2^34 + 1) GiB = 2^64 + 1 GiB, taken as a 1 GiB zone
    (17179869216g as 32 GiB). nginx's own ngx_parse_size refuses such sizes."""
    rc, out = nginx_t(L.user_file_site(login_extra=f"session_login_limit zone=z:{size};"),
                      files={"users": b"alice:{SHA}x\n"})
    print(out)
    assert rc != 0 and "invalid zone size" in out, f"accepted zone=z:{size}: {out}"


# ---------------------------------------------------------------------------------------------
# Attacks that held
# ---------------------------------------------------------------------------------------------


def test_pipelined_attempts_on_one_connection_get_attempts_checks(nginx):
    """Ten POSTs written in one send on one keep-alive connection: three checks, then 429s,
    and the connection stays usable to the end."""
    srv = limit_site(nginx, "zone=login:1m attempts=3 ban=1m")
    f = Form(srv)
    reqs = b""
    for i in range(10):
        head, body = f.request("alice", f"g{i}")
        reqs += head + (b"Connection: close\r\n" if i == 9 else b"") + b"\r\n" + body
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(reqs)
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    statuses = [int(line.split()[1]) for line in data.split(b"\r\n")
                if line.startswith(b"HTTP/1.1 ")]
    assert statuses == [401] * 3 + [429] * 7, statuses


def test_aborted_attempts_stay_counted(nginx):
    """Clients that send the form and close at once (before the cost-12 bcrypt check ends) are
    counted: the fourth attempt is refused."""
    users = {"alice": L.hash_password("2y", "secret", cost=12)}
    srv = limit_site(nginx, "zone=login:1m attempts=3 ban=1m", users=users)
    f = Form(srv)
    for i in range(3):
        head, body = f.request("alice", f"g{i}")
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(head + b"\r\n" + body)
        time.sleep(0.02)
        s.close()
    time.sleep(1.5)   # let the checks finish
    st, _, _ = f.post("alice", "secret")
    assert st == 429, st


def test_x_forwarded_for_is_not_the_client(nginx):
    """Without realip, X-Forwarded-For / X-Real-IP / Forwarded change nothing: the address is
    banned whatever they say, and they cannot frame another address."""
    srv = limit_site(nginx, "zone=login:1m attempts=2 ban=1m")
    f = Form(srv)
    for i, h in enumerate((("X-Forwarded-For", "127.0.0.7"), ("X-Real-IP", "127.0.0.7"))):
        assert f.post("alice", "x", src="127.0.0.2", headers=[h])[0] == 401
    st, _, _ = f.post("alice", "secret", src="127.0.0.2",
                      headers=[("X-Forwarded-For", "203.0.113.1"), ("Forwarded", "for=1.2.3.4")])
    assert st == 429
    assert f.post("alice", "secret", src="127.0.0.7")[0] == 303


def test_ipv4_mapped_connections_count_as_the_ipv4_address(nginx):
    """A ban made over IPv4 holds for the same address arriving IPv4-mapped on a dual-stack
    listener; ::1 is another client."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    site = L.user_file_site(login_extra="session_login_limit zone=login:1m attempts=2 ban=1m;")
    site = site.replace("listen 127.0.0.1:{port};",
                        "listen 127.0.0.1:{port};\n    listen [::]:{port2} ipv6only=off;")
    srv = nginx(site, files=L.files_for({"alice": L.hash_password("sha", "secret")}))
    f = Form(srv)
    assert [f.post("alice", "x", src="127.0.0.5")[0] for _ in range(2)] == [401, 401]
    f6 = Form(srv)
    f6.port = srv.port2
    st, _, _ = f6.post("alice", "secret", src="::ffff:127.0.0.5", family=socket.AF_INET6,
                       dst="::ffff:127.0.0.1")
    assert st == 429, st
    st, _, _ = f6.post("alice", "secret", src="::1", family=socket.AF_INET6, dst="::1")
    assert st == 303, st


def test_429_page_has_the_login_pages_anti_caching_and_framing_headers(nginx):
    srv = limit_site(nginx, "zone=login:1m attempts=1 ban=1m")
    b = Browser(srv)
    page = b.page.resp
    assert b.status("alice", "x") == 401
    r = b.post("alice", "secret")
    assert_limited(r)
    for h in ("Cache-Control", "X-Frame-Options", "Content-Security-Policy", "Content-Type"):
        assert r.headers.get(h) == page.headers.get(h), (h, r.headers.get(h), page.headers.get(h))
    assert "secret" not in r.text


def test_zone_churn_from_many_addresses_and_two_workers(nginx):
    """Eight threads, two workers, a 32k zone, by=both attempts=1: thousands of evictions of
    bans and non-bans while others charge and refund. No crash, no [alert]/[crit], the site
    still answers and a fresh address can still log in with a name nobody failed."""
    snippet = L.user_file_site(
        login_extra="session_login_limit zone=tiny:32k attempts=1 ban=1m by=both;").replace(
            "listen 127.0.0.1:{port};", "listen 127.0.0.1:{port} reuseport;")
    srv = nginx(snippet, files=L.files_for({"alice": L.hash_password("sha", "secret"),
                                            "carol": L.hash_password("sha", "pw")}),
                workers=2)
    assert helpers.poll(lambda: len(srv.worker_pids()) == 2, 5)
    pids = srv.worker_pids()
    f = Form(srv)
    errors = []

    def run(t):
        try:
            for i in range(150):
                user = "alice" if i % 7 == 0 else f"t{t}n{i}"
                pw = "secret" if i % 14 == 0 else "x"
                st, _, _ = f.post(user, pw, src=f"127.{10 + t}.{i // 200}.{1 + i % 200}")
                if st not in (303, 401, 429):
                    errors.append(st)
        except Exception as e:   # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors[:5]
    assert srv.worker_pids() == pids, "a worker was replaced (crash?)"
    assert srv.count_log("exited on signal") == 0
    # (alice may be banned by name now: by=both; carol never failed.)
    assert f.post("carol", "pw", src="127.200.0.1")[0] == 303


def test_nginx_t_says_when_the_limit_applies_to_no_login(nginx_t):
    """A session_login_limit in a location without session_login (here the template's
    location, a common slip; likewise `location /app/`) regulates nothing: README says it
    "applies to locations with session_login only", yet nginx -t accepts it without a word and
    the login location runs unlimited. Expected at least a [warn] naming the directive."""
    site = L.user_file_site().replace(
        "location = /login.shtml { internal; ssi on; }",
        "location = /login.shtml { internal; ssi on; session_login_limit zone=z:1m; }")
    rc, out = nginx_t(site, files={"users": b"alice:{SHA}x\n"})
    print(out)
    assert rc != 0 or ("session_login_limit" in out and "[warn]" in out), out
