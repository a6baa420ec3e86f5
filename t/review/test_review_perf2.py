"""Review of fa71098..83e421a (HMAC from SHA-256 midstates, word-wise ct_equal, the cache zone's
hash table, VerifiedCache::Hold, the header filter's read-only fast path). (The reviewer also
compared every response with the binary of fa71098 - cookies of either version verify in the
other; the read-only fast path answers as the full write decision did, for fresh, renewal-due,
expired, idle, future-dated, tampered, garbage and doubled cookies across require, error_page,
internal redirects, auth_request, SSI, logout and the Redis store with and without the cache
or Redis - which needs that second binary and is not kept here.)
"""

from pathlib import Path

import pytest

import helpers
from helpers import server_conf

WHOAMI = r"""
    location = /login  { session_set user $arg_u; return 200 "logged in\n"; }
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
"""


def _user_of_len(n, tag="u"):
    return (tag + "x" * n)[:n] if n > 0 else ""


@pytest.mark.parametrize("name", ["s", "session", "c" * 55, "n" * 64])
def test_mac_at_sha256_block_boundaries_and_old_key(nginx, name):
    """Python's hmac (the reference) and the module agree on every message length around the
    SHA-256 block boundaries (55/56/63/64/119/120/... bytes), under the newest key and under the
    older key of the ring; one flipped bit is refused."""
    srv = nginx(server_conf(WHOAMI, f"session_cookie {name}; session_encrypt off;"))
    new, old = srv.secrets[0], srv.secrets[1]
    conn = srv.session()
    # message = name | 0 | header(19) | payload; payload = {"user":"<u>"} (11 + len(u) bytes)
    base = len(name) + 1 + 19 + 11
    lengths = set()
    for block in (64, 128, 192, 256):
        for d in (-10, -9, -8, -1, 0, 1, 8, 9):
            n = block + d - base
            if 1 <= n <= 300:
                lengths.add(n)
    for n in sorted(lengths):
        user = _user_of_len(n)
        for secret in (new, old):
            v = helpers.make_cookie(secret, {"user": user}, name=name)
            r = srv.get("/whoami", session=conn, headers={"Cookie": f"{name}={v}"})
            assert r.text == f"status=valid user={user}\n", (n, r.text)
            bad = helpers.flip_byte(v, len(helpers.b64url_decode(v)) - 1)
            r = srv.get("/whoami", session=conn, headers={"Cookie": f"{name}={bad}"})
            assert "status=invalid" in r.text, (n, r.text)
        # The module's own cookie (signed with the newest key) verifies in Python.
        r = srv.get(f"/login?u={user}", session=conn, headers={"Cookie": ""})
        sc = helpers.cookie_named(r, name)
        assert sc is not None, r.headers
        value = helpers.cookie_value(sc)
        assert helpers.signing_secret([new, old], name, value) == new, n


DIFF_LOCATIONS = r"""
    location = /login   { session_set user $arg_u; return 200 "in\n"; }
    location = /whoami  { return 200 "status=$session_status user=$session_user\n"; }
    location = /req     { session_require; return 200 "req $session_user\n"; }
    location = /reqb    { session_require /signin; return 200 "reqb\n"; }
    location = /nf      { return 404; }
    location = /nfpage  { error_page 404 /errpage; return 404; }
    location = /errpage { return 404 "err $session_status\n"; }
    location = /toerr   { session_set a 1; error_page 418 = /whoami; return 418; }
    location = /tologin { rewrite ^ /login?u=redir last; }
    location = /tologout { rewrite ^ /destroy last; }
    location = /destroy { session_destroy; return 200 "bye\n"; }
    location = /logout  { session_logout /; }
    location = /other   { session_cookie other; return 200 "other $session_status\n"; }
    location = /auth    { auth_request /whoami; return 200 "auth $session_user\n"; }
    location = /page.html { ssi on; root {prefix}/html; }
    location = /inc     { return 200 "[$session_user]"; }
    location = /regen   { session_regenerate; return 200 "regen\n"; }
    location = /unset   { session_unset user; return 200 "unset\n"; }
    location = /vary    { add_header X-U $session_user; return 200 "v\n"; }
"""


def test_fast_path_still_renews(nginx):
    """A read-only request on a session due for renewal is re-issued
    (a new cookie, Cache-Control private), a fresh one is not."""
    import time as _t
    srv = nginx(server_conf(DIFF_LOCATIONS, "session_encrypt off; session_renew 10s;"))
    now = int(_t.time())
    old = helpers.make_cookie(srv.secrets[0], {"user": "alice"}, created=now - 100,
                              refreshed=now - 100)
    r = srv.raw("/whoami", headers=[("Cookie", f"session={old}")])
    assert r.text == "status=valid user=alice\n"
    sc = helpers.cookies_named(r, "session")
    assert len(sc) == 1, r.headers
    env = helpers.decode_envelope(helpers.cookie_value(sc[0]))
    assert env.created == now - 100 and env.refreshed >= now
    fresh = helpers.make_cookie(srv.secrets[0], {"user": "alice"})
    r = srv.raw("/whoami", headers=[("Cookie", f"session={fresh}")])
    assert helpers.cookies_named(r, "session") == []


# ---------------------------------------------------------------------------------------------
# The cache zone's hash table: chains under eviction, erase by invalidation, updates, FLUSHALL and
# reloads (the zone kept and emptied), in the smallest zone (64 chains) and a larger one.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("zone,workers", [("32k", 1), ("32k", 2), ("2m", 2)])
def test_cache_chains_never_serve_a_wrong_or_stale_record(nginx, redis_factory, zone, workers):
    import random
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from test_redis_cache_coherence import Site, barrier, _status
    extra = (f"session_redis_cache sessions:{zone} max_age=30s; "
             "add_header X-Cache-Status \"[$session_cache_status]\" always;")
    site = Site(nginx, redis_factory(), extra=extra, workers=workers)
    rnd = random.Random(7)
    truth = {}   # cookie value -> user name or None (deleted)
    values = []
    for i in range(250):
        v = site.login(f"user{i}")
        values.append(v)
        truth[v] = f"user{i}"
    statuses = set()

    def check(v):
        r = site.whoami(v)
        statuses.add(_status(r))
        want = truth[v]
        if want is None:
            assert "status=invalid" in r.text and "user= " in r.text, (want, r.text)
        else:
            assert r.status_code == 200 and f"user={want} " in r.text, (want, r.text)

    def settle(v):
        # with several workers, another worker may serve an entry until the filler ran
        if workers > 1:
            time.sleep(0.05)
        check(v)

    import time
    for rounds in range(3):
        for _ in range(600):
            v = rnd.choice(values)
            op = rnd.random()
            if op < 0.08 and truth[v] is not None:
                site.admin.delete(site.key_of(v))
                barrier(site.admin)
                truth[v] = None
                settle(v)
            elif op < 0.16 and truth[v] is not None:
                # an update behind nginx's back, with a record size that moves slab classes
                new = f"{truth[v].split('-')[0]}-{rnd.randrange(10**6)}" + "y" * rnd.choice(
                    [0, 50, 300, 900])
                site.admin.hset(site.key_of(v), "user", '"' + new + '"')
                barrier(site.admin)
                truth[v] = new
                settle(v)
            else:
                check(v)
        if rounds == 0:
            site.admin.flushall()
            barrier(site.admin)
            for v in values:
                truth[v] = None
            values = []
            for i in range(250):
                v = site.login(f"again{i}")
                values.append(v)
                truth[v] = f"again{i}"
        elif rounds == 1:
            site.srv.reload()
            site.wait_active()
    assert "hit" in statuses and "miss" in statuses, statuses


@pytest.mark.parametrize("zone", ["32k", "33001", "3m", "512m"])
def test_cache_zone_sizes_serve_hits(nginx, redis_factory, zone):
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from test_redis_cache_coherence import Site, _status
    extra = (f"session_redis_cache sessions:{zone} max_age=30s; "
             "add_header X-Cache-Status \"[$session_cache_status]\" always;")
    site = Site(nginx, redis_factory(), extra=extra)
    values = [site.login(f"u{i}") for i in range(40)]
    for i, v in enumerate(values):
        site.warm(v, f"u{i}")
    r = site.whoami(values[-1])
    assert _status(r) == "hit" and "user=u39 " in r.text, r.text
