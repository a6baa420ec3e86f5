"""The verified-cookie table (README "Performance"): a cookie value a worker verified before is
accepted again without the crypto. These tests hold it to what full verification would say:
repeats stay valid, any other bytes are rejected, expiry still applies, a reload's new secrets,
another cookie name, another server's secret or another envelope kind never match, and the
session data a hit shares is never changed by actions.

Every test sends the cookie on one keep-alive connection to one worker (workers 1) unless it says
otherwise, so the repeats are table hits.
"""

import time

import pytest

import helpers
from helpers import APP_LOCATIONS, cookie_named, cookie_value, flip_byte, server_conf

WHOAMI_VALID = "status=valid user=alice name=\n"
WHOAMI_INVALID = "status=invalid user= name=\n"

PROTECTED = 'location = /private { session_require; return 200 "hi $session_user\\n"; }'

KINDS = [("encrypted", "session_encrypt on;"), ("signed", "session_encrypt off;")]


def whoami(srv, value, name="session", session=None, port=None, path="/whoami"):
    return srv.get(path, session=session, port=port, headers={"Cookie": f"{name}={value}"})


def login(srv, user="alice", port=None):
    return cookie_value(cookie_named(srv.get(f"/login?u={user}", port=port)))


@pytest.mark.parametrize("directive", [k[1] for k in KINDS], ids=[k[0] for k in KINDS])
def test_repeated_cookie_stays_valid(nginx, directive):
    srv = nginx(server_conf(APP_LOCATIONS + PROTECTED, directive))
    value = login(srv)
    conn = srv.session()
    for _ in range(30):
        r = whoami(srv, value, session=conn)
        assert r.status_code == 200 and r.text == WHOAMI_VALID
        r = whoami(srv, value, session=conn, path="/private")
        assert r.status_code == 200 and r.text == "hi alice\n"
        assert "Set-Cookie" not in r.headers


@pytest.mark.parametrize("directive", [k[1] for k in KINDS], ids=[k[0] for k in KINDS])
def test_tampered_variants_of_a_cached_cookie_are_rejected(nginx, directive):
    """Every one-byte change, a truncation and an extension of a cookie the worker holds as
    verified: each rejected (and logged as rejected), the original still valid afterwards."""
    srv = nginx(server_conf(APP_LOCATIONS + PROTECTED, directive))
    value = login(srv)
    conn = srv.session()
    assert whoami(srv, value, session=conn).text == WHOAMI_VALID    # now in the table
    raw_len = len(helpers.b64url_decode(value))
    variants = [flip_byte(value, i) for i in range(raw_len)]
    # character substitutions too (not the last character, whose low bits may be padding)
    variants += [value[:i] + ("B" if value[i] == "A" else "A") + value[i + 1:]
                 for i in range(len(value) - 1)]
    variants += [value[:-1], value + "A", "A" + value, value[1:]]
    mark = srv.log_mark()
    for v in variants:
        if v == value:
            continue
        r = whoami(srv, v, session=conn)
        assert r.status_code == 200 and r.text == WHOAMI_INVALID, v
        r = whoami(srv, v, session=conn, path="/private")
        assert r.status_code == 401, v
    rejected = srv.count_log('session cookie "session" rejected:', mark, "info")
    assert rejected >= 1, srv.log_since(mark)
    r = whoami(srv, value, session=conn)
    assert r.text == WHOAMI_VALID


@pytest.mark.parametrize("policy,wait", [
    ("session_lifetime 2s;", 3.0),
    ("session_idle_timeout 2s; session_renew 1h;", 3.0),
], ids=["lifetime", "idle"])
def test_expired_cookie_rejected_even_when_cached(nginx, policy, wait):
    """The table keeps the times the envelope said; expiry is checked against the clock on every
    request, so a cookie in the table expires on time."""
    srv = nginx(server_conf(APP_LOCATIONS + PROTECTED, policy))
    value = login(srv)
    conn = srv.session()
    for _ in range(5):
        assert whoami(srv, value, session=conn).text == WHOAMI_VALID
    time.sleep(wait)
    r = whoami(srv, value, session=conn)
    assert r.text == "status=expired user= name=\n"
    assert whoami(srv, value, session=conn, path="/private").status_code == 401


def test_reload_with_new_secret_rejects_cookies_cached_under_the_old(nginx):
    """The table is keyed by the key ring's id: after a reload that drops the old secret, the old
    cookie is verified again and rejected; with the old secret kept it stays valid."""
    old, new = helpers.random_secret(), helpers.random_secret()
    srv = nginx(server_conf(APP_LOCATIONS), secrets=[old])
    value = login(srv)
    conn = srv.session()
    for _ in range(5):
        assert whoami(srv, value, session=conn).text == WHOAMI_VALID

    helpers.write_secret_file(srv.secret_file, [new, old])
    srv.reload()
    conn = srv.session()
    for _ in range(3):
        assert whoami(srv, value, session=conn).text == WHOAMI_VALID

    helpers.write_secret_file(srv.secret_file, [new])
    srv.reload()
    conn = srv.session()
    mark = srv.log_mark()
    for _ in range(3):
        assert whoami(srv, value, session=conn).text == WHOAMI_INVALID
    assert srv.count_log("bad signature or unknown key", mark, "info") == 3


def test_cached_value_is_bound_to_name_secret_and_kind(nginx, tmp_path):
    """One worker, four servers: the same value, verified and cached on the first, is refused
    under another cookie name (same secret), by a server with another secret (same name), and by
    a server with the same secret and name but signed cookies; the first still accepts it."""
    other = tmp_path / "other-secret.txt"
    helpers.write_secret_file(other, [helpers.random_secret()])
    whoami_loc = ('location = /whoami { return 200 '
                  '"status=$session_status user=$session_user name=$session_name\\n"; }')
    snippet = (server_conf(APP_LOCATIONS)
               + server_conf(whoami_loc, "session_cookie sid;",
                             listen="listen 127.0.0.1:{port2};")
               + server_conf(whoami_loc, f"session_secret_file {other};", secret=False,
                             listen="listen 127.0.0.1:{port3};")
               + server_conf(whoami_loc, "session_encrypt off;",
                             listen="listen 127.0.0.1:{port4};"))
    srv = nginx(snippet, ports=4)
    value = login(srv)
    conn = srv.session()
    for _ in range(3):
        assert whoami(srv, value, session=conn).text == WHOAMI_VALID
    for _ in range(3):
        r = whoami(srv, value, name="sid", port=srv.ports[1])
        assert r.text == WHOAMI_INVALID, "other cookie name"
        r = whoami(srv, value, port=srv.ports[2])
        assert r.text == WHOAMI_INVALID, "other secret"
        r = whoami(srv, value, port=srv.ports[3])
        assert r.text == WHOAMI_INVALID, "other envelope kind"
        assert whoami(srv, value, session=conn).text == WHOAMI_VALID


def test_actions_on_a_cached_session_leave_the_shared_data_alone(nginx):
    """A hit shares the decoded data with the table: session_set writes a copy. The new cookie
    carries the change; the old cookie still shows the data it was sealed with."""
    srv = nginx(server_conf(APP_LOCATIONS, "session_encrypt on;"))
    value = login(srv)
    conn = srv.session()
    for _ in range(3):
        assert whoami(srv, value, session=conn).text == WHOAMI_VALID
    r = srv.get("/name?v=bob", session=conn, headers={"Cookie": f"session={value}"})
    newer = cookie_value(cookie_named(r))
    assert newer and newer != value
    for _ in range(3):
        assert whoami(srv, newer, session=conn).text == "status=valid user=alice name=bob\n"
        assert whoami(srv, value, session=conn).text == WHOAMI_VALID


def test_two_workers(nginx):
    """Workers keep tables of their own: fresh connections spread over both; every repeat valid,
    every tampered variant invalid, in whichever worker."""
    srv = nginx(server_conf(APP_LOCATIONS + PROTECTED,
                            "access_log {prefix}/pid.log pidlog;",
                            "log_format pidlog '$pid $session_status';"), workers=2)
    value = login(srv)
    bad = flip_byte(value, len(value) // 2)
    for _ in range(30):
        r = srv.raw("/whoami", [("Cookie", f"session={value}")])
        assert r.text == WHOAMI_VALID
        r = srv.raw("/whoami", [("Cookie", f"session={bad}")])
        assert r.text == WHOAMI_INVALID
        r = srv.raw("/private", [("Cookie", f"session={value}")])
        assert r.status == 200 and r.text == "hi alice\n"
    lines = (srv.path / "pid.log").read_text().splitlines()[1:]
    assert len(lines) == 90
    assert all(l.endswith(" valid") or l.endswith(" invalid") for l in lines)
