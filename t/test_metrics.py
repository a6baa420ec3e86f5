"""session_metrics: the Prometheus exposition, and exact counts after driven traffic.

The output is parsed with the Prometheus client's own parser (python3-prometheus-client). Traffic
goes to two workers (reuseport spreads the test's connections over both; the access log's $pid
shows that both served some), and every count is checked exactly: the metrics must be the sum
over all workers. The Redis test takes its expectations from what the requests themselves
reported ($session_cache_status) and from Redis (its tracking table), and counts deltas between
two scrapes taken after the cache's links are up. The metrics server has no session
configuration, so scrapes count nothing themselves.
"""
from __future__ import annotations

import collections
import re
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

import helpers
import login_support as ls
from redis_support import REDIS_LOCATIONS, cookie_header, id_of, session_cookie_value

parser = pytest.importorskip("prometheus_client.parser")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_SERVER = """
server {
    listen 127.0.0.1:{port2};
    location = /metrics { session_metrics; }
    location / { return 404; }
}
"""

# Every family, its type and its labels (README "Metrics" lists the same).
FAMILIES = {
    "nginx_session_requests_total": ("counter", {"status": ["none", "valid", "expired",
                                                            "invalid", "error"]}),
    "nginx_session_cookies_rejected_total": ("counter", {"reason": [
        "malformed", "signature", "unknown_key", "expired", "future_dated", "cookie_tossing",
        "too_many_cookies", "bad_id", "bad_data", "not_in_store", "bad_record"]}),
    "nginx_session_events_total": ("counter", {"event": ["created", "renewed", "updated",
                                                         "regenerated", "destroyed"]}),
    "nginx_session_require_denials_total": ("counter", {"answer": ["redirect", "unauthorized"]}),
    "nginx_session_store_refusals_total": ("counter", {}),
    "nginx_session_logins_total": ("counter", {"result": [
        "success", "failure", "csrf", "limited", "cross_origin", "store_error", "bad_form",
        "error"]}),
    "nginx_session_login_duration_seconds": ("histogram", {}),
    "nginx_session_redis_commands_total": ("counter", {
        "command": ["read", "ttl", "write", "delete", "other"],
        "result": ["ok", "error", "timeout"]}),
    "nginx_session_redis_command_duration_seconds": ("histogram", {}),
    "nginx_session_redis_connections_total": ("counter", {}),
    "nginx_session_redis_reconnects_total": ("counter", {}),
    "nginx_session_redis_failovers_total": ("counter", {}),
    "nginx_session_redis_cluster_redirects_total": ("counter", {"type": ["moved", "ask"]}),
    "nginx_session_cache_lookups_total": ("counter", {"result": ["hit", "miss", "bypass"]}),
    "nginx_session_cache_stores_total": ("counter", {}),
    "nginx_session_cache_invalidations_total": ("counter", {}),
    "nginx_session_cache_evictions_total": ("counter", {}),
    "nginx_session_cache_flushes_total": ("counter", {}),
    "nginx_session_user_logouts_total": ("counter", {
        "source": ["logout_all", "destroy_user"], "result": ["ok", "failed"]}),
    "nginx_session_user_sessions_ended_total": ("counter", {}),
    "nginx_session_user_index_pruned_total": ("counter", {}),
}


class Metrics:
    """One scrape: sample name + labels -> value."""

    def __init__(self, text: str):
        self.text = text
        self.families = {f.name: f for f in parser.text_string_to_metric_families(text)}
        self.values = {}
        for f in self.families.values():
            for s in f.samples:
                self.values[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def __call__(self, name: str, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        assert key in self.values, f"no sample {key}"
        return self.values[key]

    def delta(self, before: "Metrics") -> dict:
        """The samples that changed since before (value differences)."""
        return {k: v - before.values.get(k, 0) for k, v in self.values.items()
                if v != before.values.get(k, 0)}


def scrape(srv, port=None) -> Metrics:
    r = requests.get(srv.url("/metrics", port or srv.port2), timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == CONTENT_TYPE
    return Metrics(r.text)


def key(name, **labels):
    return (name, tuple(sorted(labels.items())))


def expect_exactly(delta: dict, expected: dict, ignore=()):
    """delta (from Metrics.delta) holds exactly the expected samples (histogram buckets and sums,
    and the names in ignore, are left out: checked separately)."""
    got = {k: v for k, v in delta.items()
           if not k[0].endswith(("_bucket", "_sum")) and k[0] not in ignore}
    want = {k: v for k, v in expected.items() if v}
    assert got == want, "\n".join(
        f"{k}: got {got.get(k, 0)}, want {want.get(k, 0)}" for k in sorted(set(got) | set(want))
        if got.get(k, 0) != want.get(k, 0))


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

REJECTED = [
    ("argument", "location = /m { session_metrics on; }",
     r'invalid number of arguments in "session_metrics" directive'),
    ("server-level", "session_metrics; location = /m { return 200; }",
     r'"session_metrics" directive is not allowed here'),
    ("if-in-location", "location = /m { if ($arg_x) { session_metrics; } }",
     r'"session_metrics" directive is not allowed here'),
    ("duplicate", "location = /m { session_metrics; session_metrics; }",
     r'"session_metrics" directive is duplicate'),
]


@pytest.mark.parametrize("conf, message", [c[1:] for c in REJECTED],
                         ids=[c[0] for c in REJECTED])
def test_nginx_t_rejects(nginx_t, conf, message):
    rc, out = nginx_t(helpers.server_conf(conf))
    assert rc != 0, out
    assert re.search(message, out), out


def test_nginx_t_rejects_http_level(nginx_t):
    rc, out = nginx_t("session_metrics;\n" + helpers.server_conf("location / { return 200; }"))
    assert rc != 0 and '"session_metrics" directive is not allowed here' in out, out


def test_nginx_t_accepts_several_locations(nginx_t):
    rc, out = nginx_t(helpers.server_conf(
        "location = /m { session_metrics; } location = /metrics { allow 127.0.0.1; deny all; "
        "session_metrics; }", secret=False))
    assert rc == 0, out


# ---------------------------------------------------------------------------------------------
# The exposition
# ---------------------------------------------------------------------------------------------


def test_output_without_traffic_is_complete_and_zero(nginx):
    srv = nginx(helpers.server_conf("location = /whoami { return 200 $session_status; }")
                + METRICS_SERVER, workers=2)
    m = scrape(srv)
    assert m.text.endswith("\n")
    want = {n[:-len("_total")] if t == "counter" else n: (t, labels)
            for n, (t, labels) in FAMILIES.items()}
    assert set(m.families) == set(want)
    for name, (typ, labels) in want.items():
        f = m.families[name]
        assert f.type == typ, name
        assert f.documentation, name
        if typ == "counter":
            combos = [{}]
            for lname, values in labels.items():
                combos = [dict(c, **{lname: v}) for c in combos for v in values]
            got = sorted(tuple(sorted(s.labels.items())) for s in f.samples)
            assert got == sorted(tuple(sorted(c.items())) for c in combos), name
        else:
            les = [s.labels["le"] for s in f.samples if s.name.endswith("_bucket")]
            assert les[-1] == "+Inf" and len(les) >= 8, name
            bounds = [float(x) for x in les[:-1]]
            assert bounds == sorted(bounds), name
            assert {s.name for s in f.samples} == {name + "_bucket", name + "_sum",
                                                   name + "_count"}
        assert all(s.value == 0 for s in f.samples), name
    # HELP and TYPE once per family.
    assert m.text.count("# HELP ") == len(want) == m.text.count("# TYPE ")
    assert "# TYPE nginx_session_requests_total counter\n" in m.text


def test_head_post_and_other_methods(nginx):
    srv = nginx(METRICS_SERVER.replace("{port2}", "{port}"))
    get = srv.raw("/metrics")
    assert get.status == 200
    head = srv.raw("/metrics", method="HEAD")
    assert head.status == 200
    assert head.header("Content-Type") == CONTENT_TYPE
    assert head.header("Content-Length") == get.header("Content-Length") == str(len(get.body))
    assert head.body == b""
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        r = srv.raw("/metrics", method=method, body=b"x=1" if method == "POST" else b"",
                    headers=[("Content-Type", "application/x-www-form-urlencoded")]
                    if method == "POST" else [])
        assert r.status == 405, (method, r.status)
        assert r.header("Allow") == "GET, HEAD", method
    # The connection is still usable after a POST's body (discarded).
    s = requests.Session()
    assert s.post(srv.url("/metrics"), data=b"a" * 5000, timeout=5).status_code == 405
    assert s.get(srv.url("/metrics"), timeout=5).status_code == 200
    s.close()


def test_readme_lists_every_metric():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
    for name in FAMILIES:
        assert f"`{name}`" in section, name


# ---------------------------------------------------------------------------------------------
# Exact counts, cookie store, two workers
# ---------------------------------------------------------------------------------------------

PASSWORD = "correct horse"


def other_secret(secret: str) -> str:
    """A secret whose key hint differs from secret's (a cookie no key of the ring made)."""
    while True:
        s = helpers.random_secret()
        if helpers.key_hint(s) != helpers.key_hint(secret):
            return s


def cookie_site(nginx, workers=2):
    locations = r"""
    location = /name { session_set name $arg_v; return 200 "set\n"; }
    location = /regen { session_regenerate; return 200 "regenerated\n"; }
    location = /bye { session_destroy; return 200 "bye\n"; }
    location /api { session_require; return 200 "api\n"; }
    """
    snippet = ls.user_file_site(
        server_extra="session_encrypt off; session_lifetime 1h; add_header X-Worker $pid always;",
        locations=locations, http_extra=METRICS_SERVER)
    snippet = snippet.replace("listen 127.0.0.1:{port};", "listen 127.0.0.1:{port} reuseport;")
    return nginx(snippet, workers=workers,
                 files=ls.files_for({"alice": ls.hash_password("apr1", PASSWORD)}))


def test_exact_counts_cookie_store(nginx):
    srv = cookie_site(nginx)
    secret = srv.secrets[0]
    before = scrape(srv)
    status = collections.Counter()
    workers = set()

    def get(path, cookie=None, expect=200, st="none", headers=None):
        h = dict(headers or {})
        if cookie is not None:
            h["Cookie"] = f"session={cookie}"
        h["Connection"] = "close"   # a new connection each: both workers take some
        r = srv.get(path, headers=h)
        assert r.status_code == expect, (path, r.status_code, r.text)
        status[st] += 1
        workers.add(r.headers["X-Worker"])
        return r

    def valid(**kw):
        return helpers.make_cookie(secret, {"user": "alice"}, **kw)

    now = int(time.time())
    for _ in range(6):
        assert "status=valid" in get("/whoami", valid(), st="valid").text
    for _ in range(3):
        get("/whoami", helpers.flip_byte(valid(), -1), st="invalid")          # signature
    for _ in range(2):
        get("/whoami", "garbage!", st="invalid")                              # malformed
    stranger = other_secret(secret)
    for _ in range(2):
        get("/whoami", helpers.make_cookie(stranger, {"user": "alice"}), st="invalid")
    get("/whoami", valid(created=now - 3 * 86400), st="expired")
    get("/whoami", valid(created=now + 3600), st="invalid")                   # future_dated
    for _ in range(2):
        get("/whoami", st="none")
    # session_require: a browser is redirected, anything else gets 401.
    get("/private", expect=302, headers={"Accept": "text/html"})
    get("/api", expect=401)
    get("/private", valid(), st="valid")
    # Session events.
    get("/name?v=1", st="none")                                               # created
    get("/name?v=2", valid(), st="valid")                                     # updated
    get("/regen", valid(), st="valid")                                        # regenerated
    get("/bye", valid(), st="valid")                                          # destroyed
    get("/logout", valid(), expect=303, st="valid")                           # destroyed
    r = get("/whoami", valid(created=now - 600), st="valid")                  # renewed
    assert helpers.cookie_named(r, "session") is not None

    # Logins: 3 wrong passwords, a stale CSRF token, a cross-origin POST, an empty user name,
    # then one success. Each is a GET of the page and a POST, without a session cookie.
    def attempt(fields, expect, headers=None):
        s = requests.Session()
        page = ls.get_login(srv, s)
        status["none"] += 1
        body = dict({"csrf_token": page.token}, **fields)
        r = ls.post_login(srv, s, body, headers=headers)
        status["none"] += 1
        assert r.status_code == expect, (fields, r.status_code, r.text[:200])
        s.close()

    for _ in range(3):
        attempt({"username": "alice", "password": "wrong"}, 401)
    attempt({"username": "alice", "password": PASSWORD, "csrf_token": "x"}, 403)
    attempt({"username": "alice", "password": PASSWORD}, 403,
            headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    attempt({"username": "", "password": PASSWORD}, 401)
    attempt({"username": "alice", "password": PASSWORD}, 303)

    # Requests are counted in the log phase, after the response reached the client (another
    # worker may still be logging the last one): wait, bounded, until all of them are counted.
    def counted(m):
        return sum(v for k, v in m.delta(before).items()
                   if k[0] == "nginx_session_requests_total")
    after = helpers.poll(lambda: scrape(srv), 3.0,
                         until=lambda m: counted(m) >= sum(status.values()))
    R, E, L = ("nginx_session_requests_total", "nginx_session_events_total",
               "nginx_session_logins_total")
    C = "nginx_session_cookies_rejected_total"
    expected = {key(R, status=k): v for k, v in status.items()}
    expected.update({
        key(C, reason="signature"): 3, key(C, reason="malformed"): 2,
        key(C, reason="unknown_key"): 2, key(C, reason="expired"): 1,
        key(C, reason="future_dated"): 1,
        key("nginx_session_require_denials_total", answer="redirect"): 1,
        key("nginx_session_require_denials_total", answer="unauthorized"): 1,
        key(E, event="created"): 2, key(E, event="updated"): 1,
        key(E, event="regenerated"): 1, key(E, event="destroyed"): 2,
        key(E, event="renewed"): 1,
        key(L, result="failure"): 3, key(L, result="csrf"): 1,
        key(L, result="cross_origin"): 1, key(L, result="bad_form"): 1,
        key(L, result="success"): 1,
        key("nginx_session_login_duration_seconds_count"): 4,
    })
    d = after.delta(before)
    expect_exactly(d, expected)
    assert after("nginx_session_login_duration_seconds_bucket", le="+Inf") == 4
    assert after("nginx_session_login_duration_seconds_sum") >= 0

    # Both workers served the traffic (the counts above are their sum).
    assert len(workers) == 2, workers


def test_reload_keeps_the_counters(nginx):
    srv = cookie_site(nginx)
    cookie = {"Cookie": "session=" + helpers.make_cookie(srv.secrets[0], {"user": "alice"})}

    def valid_requests(n):
        for _ in range(n):
            assert srv.get("/whoami", headers=dict(cookie, Connection="close")).status_code == 200

    def count(want):
        # Requests are counted at their log phase, which can run just after the client has read
        # the response: a scrape served by the other worker may come first. Wait (bounded) for
        # the count to settle; it must then be exactly want.
        got = helpers.poll(lambda: scrape(srv)("nginx_session_requests_total", status="valid"),
                           3.0, until=lambda v: v >= want)
        time.sleep(0.05)
        return scrape(srv)("nginx_session_requests_total", status="valid") if got == want else got

    valid_requests(5)
    assert count(5) == 5
    srv.reload()
    assert count(5) == 5
    valid_requests(3)
    assert count(8) == 8
    # Another worker count: the zone (same name and size) is kept all the same.
    srv.workers = 3
    srv.reload(srv.snippet)
    valid_requests(2)
    assert count(10) == 10


# ---------------------------------------------------------------------------------------------
# Exact counts, Redis store with session_redis_cache, two workers
# ---------------------------------------------------------------------------------------------

CACHE_EXTRA = ("session_redis_cache sessions:1m max_age=30s; session_redis_timeout 300ms; "
               "add_header X-Cache-Status \"[$session_cache_status]\" always;")


_wait = helpers.wait_for


def _cache_status(r):
    return r.headers.get("X-Cache-Status", "")[1:-1]


def redis_site(nginx, rd, workers=2):
    snippet = helpers.server_conf(
        REDIS_LOCATIONS, server_extra=(f"session_store redis;\n    session_redis "
                                       f"127.0.0.1:{{rport}};\n    {CACHE_EXTRA}"),
        http_extra=METRICS_SERVER, listen="listen 127.0.0.1:{port} reuseport;")
    srv = nginx(snippet, rport=rd.port, workers=workers)

    def login(user):
        r = srv.get(f"/login?u={user}", headers={"Connection": "close"})
        return session_cookie_value(r) if r.status_code == 200 else None

    def whoami(value):
        return srv.get("/whoami", headers=dict(cookie_header(value), Connection="close"))

    # Until a fresh session is served from the cache by every worker (their links are up).
    probe = _wait(lambda: login("probe"), what="a login")

    def active():
        seen = {_cache_status(whoami(probe)) for _ in range(4 * workers + 4)}
        return "hit" in seen and "bypass" not in seen
    _wait(active, what="the cache's links")
    return srv, login, whoami


def test_exact_counts_redis_cache(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    srv, login, whoami = redis_site(nginx, rd)
    before = scrape(srv)

    value = login("bob")                       # no cookie: status none; created; one write
    key_name = f"session:{id_of(value)}"
    seen = collections.Counter()
    for _ in range(12):
        r = whoami(value)
        assert "user=bob " in r.text and "status=valid" in r.text, r.text
        seen[_cache_status(r)] += 1
    assert seen["miss"] >= 1 and seen["hit"] >= 1, seen
    fills = seen["miss"]
    # Deleted behind nginx's back: Redis tells every worker whose connection read the key.
    tracked = admin.info("stats")["tracking_total_items"]
    admin.delete(key_name)
    admin.ping()
    told = tracked - admin.info("stats")["tracking_total_items"]
    assert told >= 1
    # (Plus one: the login's own record script read the key it wrote, so Redis tracked it for
    # that worker's connection and invalidated it at once.)
    told += 1
    _wait(lambda: scrape(srv).delta(before).get(
        key("nginx_session_cache_invalidations_total"), 0) >= told, what="the invalidations")
    gone = collections.Counter()
    for _ in range(3):
        r = whoami(value)
        assert "status=invalid" in r.text, r.text
        gone[_cache_status(r)] += 1
    assert gone["hit"] == 0, gone

    after = scrape(srv)
    lookups = seen + gone
    reads = lookups["miss"] + lookups["bypass"]
    CMD, LK = "nginx_session_redis_commands_total", "nginx_session_cache_lookups_total"
    expected = {
        key("nginx_session_requests_total", status="none"): 1,
        key("nginx_session_requests_total", status="valid"): 12,
        key("nginx_session_requests_total", status="invalid"): 3,
        key("nginx_session_events_total", event="created"): 1,
        key("nginx_session_cookies_rejected_total", reason="not_in_store"): 3,
        key(LK, result="hit"): lookups["hit"], key(LK, result="miss"): lookups["miss"],
        key(LK, result="bypass"): lookups["bypass"],
        key(CMD, command="write", result="ok"): 1,
        key(CMD, command="read", result="ok"): reads,
        key(CMD, command="ttl", result="ok"): lookups["miss"],
        key("nginx_session_redis_command_duration_seconds_count"): 1 + reads + lookups["miss"],
        key("nginx_session_cache_stores_total"): fills,
        key("nginx_session_cache_invalidations_total"): told,
    }
    expect_exactly(after.delta(before), expected)

    # FLUSHALL: every worker's link is told, each empties the zone once.
    mid = scrape(srv)
    admin.flushall()
    admin.ping()
    _wait(lambda: scrape(srv).delta(mid).get(key("nginx_session_cache_flushes_total"), 0) >= 2,
          what="the flushes")
    time.sleep(0.3)
    assert scrape(srv).delta(mid) == {key("nginx_session_cache_flushes_total"): 2}


def test_redis_timeouts_and_reconnects(nginx, redis_factory):
    rd = redis_factory()
    admin = rd.admin()
    snippet = helpers.server_conf(
        REDIS_LOCATIONS, server_extra="session_store redis; session_redis 127.0.0.1:{rport}; "
                                      "session_redis_timeout 300ms;", http_extra=METRICS_SERVER)
    srv = nginx(snippet, rport=rd.port, workers=2)
    value = session_cookie_value(_wait(lambda: (lambda r: r if r.status_code == 200 else None)(
        srv.get("/login?u=carol")), what="a login"))
    # Both workers have their connection (each connects at start, on its own time).
    _wait(lambda: scrape(srv)("nginx_session_redis_connections_total") >= 2,
          what="both workers' connections")
    before = scrape(srv)
    # Every normal connection of nginx's workers is killed: each reconnects once.
    killed = admin.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    _wait(lambda: scrape(srv).delta(before).get(key("nginx_session_redis_reconnects_total"), 0)
          >= killed, what="the reconnects")
    d = scrape(srv).delta(before)
    assert d[key("nginx_session_redis_reconnects_total")] == killed
    assert d[key("nginx_session_redis_connections_total")] == killed
    # A Redis that does not answer: the read times out (session_redis_timeout).
    mid = scrape(srv)
    rd.pause()
    try:
        r = srv.get("/whoami", headers=cookie_header(value), timeout=10)
    finally:
        rd.resume()
    assert r.status_code == 503 or "status=error" in r.text, r.text
    # (Requests are counted at their log phase, which may run just after the client has the
    # response: a scrape served by the other worker can come first. Bounded wait.)
    d = helpers.poll(lambda: scrape(srv).delta(mid), 3.0, until=lambda d: d.get(
        key("nginx_session_requests_total", status="error"), 0) >= 1)
    assert d.get(key("nginx_session_redis_commands_total", command="read", result="timeout")) \
        == 1, d
    assert d.get(key("nginx_session_requests_total", status="error")) == 1, d


def test_cache_evictions(nginx, redis_factory):
    """A zone too small for the sessions read: entries are evicted, and every one counted."""
    rd = redis_factory()
    global CACHE_EXTRA
    saved, CACHE_EXTRA = CACHE_EXTRA, CACHE_EXTRA.replace("sessions:1m", "sessions:32k")
    try:
        srv, login, whoami = redis_site(nginx, rd, workers=1)
    finally:
        CACHE_EXTRA = saved
    before = scrape(srv)
    statuses = collections.Counter()
    for i in range(400):
        value = login(f"user{i}")
        statuses[_cache_status(whoami(value))] += 1
    d = scrape(srv).delta(before)
    evicted = d.get(key("nginx_session_cache_evictions_total"), 0)
    stored = d.get(key("nginx_session_cache_stores_total"), 0)
    assert statuses["miss"] == 400, statuses
    assert stored == 400, d
    assert 0 < evicted < stored, d
