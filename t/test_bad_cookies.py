"""Bad input never costs more than the request: tampered, truncated, garbage, empty, oversized,
duplicated, wrong-key, wrong-name, wrong-kind, expired, future-dated and badly encoded session
cookies are a request without a session — status 200, $session_status invalid/expired, the
deletion Set-Cookie, exactly one [info] line `session cookie "<name>" rejected:` — never a 5xx.

Hostile cookies are built from a real cookie the server issued, or crafted with the server's own
secret (helpers.make_cookie) so that only the one property under test is wrong.
"""

import os
import time

import pytest

import helpers
from helpers import (b64url_decode, b64url_encode, cookie_named, cookie_value, flip_byte,
                     make_cookie, server_conf, session_deletion)

CONF = server_conf(r'''
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
    location = /login  { session_set user $arg_u; return 200 "ok\n"; }
''', "session_lifetime 1h; session_encrypt {encrypt};", "large_client_header_buffers 4 64k;") + r'''
server {
    listen 127.0.0.1:{port2};
    session_secret_file {secret_file};
    session_cookie alt;
    session_encrypt {encrypt};
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
}
'''

REJECTED = 'session cookie "session" rejected:'


def start(nginx, encrypt="off"):
    srv = nginx(CONF, encrypt=encrypt)
    good = cookie_value(cookie_named(srv.raw("/login?u=alice")))
    other = cookie_value(cookie_named(srv.raw("/login?u=mallory")))
    # positive control: the good cookie is accepted by this very server
    r = srv.raw("/whoami", [("Cookie", "session=" + good)])
    assert r.text == "status=valid user=alice\n", r.text
    return srv, good, other


def assert_rejected(srv, headers, status="invalid", name="session", path="/whoami", port=None,
                    limited=False):
    """limited: the caller sends more bad cookies than the 100 lines a second a worker logs, so
    a line may be left out (it is counted in the next one)."""
    mark = srv.log_mark()
    r = srv.raw(path, headers, port=port)
    assert r.status == 200, f"{headers!r} -> {r.status}\n{r.raw[:300]!r}"
    assert r.text == f"status={status} user=\n", f"{headers!r} -> {r.text!r}"
    lines = srv.grep_log(f'session cookie "{name}" rejected:', mark)
    if limited and not lines:
        return None
    assert len(lines) == 1, f"{headers!r}: want one rejection line, got {srv.log_since(mark)}"
    assert "[info]" in lines[0], lines
    if status == "expired":
        assert f'session cookie "{name}" rejected: expired' in lines[0], lines
    # Requests that only read the session never expire the cookie (DESIGN v2): a duplicate or a
    # cookie planted by someone else must not log the user out.
    assert r.set_cookies == [], r.set_cookies
    return lines[0]


def now():
    return int(time.time())


def sc(value):
    return "session=" + value


def craft(secret, data=None, **kw):
    return sc(make_cookie(secret, {"user": "x"} if data is None else data, **kw))


# id, Cookie header lines built from (secret, good, other), expected status
CASES = [
    ("tamper-version", lambda s, g, o: [sc(flip_byte(g, 0))], "invalid"),
    ("tamper-kind", lambda s, g, o: [sc(flip_byte(g, 1))], "invalid"),
    ("tamper-hint", lambda s, g, o: [sc(flip_byte(g, 2))], "invalid"),
    ("tamper-created", lambda s, g, o: [sc(flip_byte(g, 10))], "invalid"),
    ("tamper-refreshed", lambda s, g, o: [sc(flip_byte(g, 18))], "invalid"),
    ("tamper-payload", lambda s, g, o: [sc(flip_byte(g, 19))], "invalid"),
    ("tamper-middle", lambda s, g, o: [sc(flip_byte(g, len(b64url_decode(g)) // 2))],
     "invalid"),
    ("tamper-last-byte", lambda s, g, o: [sc(flip_byte(g, -1, 0x80))], "invalid"),
    ("truncated-1-char", lambda s, g, o: [sc(g[:-1])], "invalid"),
    ("truncated-4-chars", lambda s, g, o: [sc(g[:-4])], "invalid"),
    ("truncated-half", lambda s, g, o: [sc(g[:len(g) // 2])], "invalid"),
    ("truncated-to-header", lambda s, g, o: [sc(b64url_encode(b64url_decode(g)[:19]))],
     "invalid"),
    ("appended-bytes", lambda s, g, o: [sc(g + "AAAA")], "invalid"),
    ("garbage-word", lambda s, g, o: [sc("garbage")], "invalid"),
    ("garbage-punctuation", lambda s, g, o: [sc("!!!!$$$$****")], "invalid"),
    ("garbage-std-base64-chars", lambda s, g, o: [sc("+/" + g[2:40] + "==")], "invalid"),
    ("garbage-random-b64", lambda s, g, o: [sc(b64url_encode(os.urandom(120)))], "invalid"),
    ("garbage-binary", lambda s, g, o: [b"session=\x01\x02\x7f\xff\xfe"], "invalid"),
    ("empty-value", lambda s, g, o: [sc("")], "invalid"),
    ("empty-quoted", lambda s, g, o: [sc('""')], "invalid"),
    ("oversized-9000", lambda s, g, o: [sc("A" * 9000)], "invalid"),
    ("oversized-8193", lambda s, g, o: [sc("A" * 8193)], "invalid"),
    ("oversized-valid-prefix", lambda s, g, o: [sc(g + "A" * 8200)], "invalid"),
    ("duplicate-two-valid", lambda s, g, o: [f"session={g}; session={o}"], "invalid"),
    # two different valid cookies (cookie tossing): no session; one valid among garbage is the
    # session (test_valid_cookie_among_others)
    ("duplicate-two-headers", lambda s, g, o: [sc(g), sc(o)], "invalid"),
    ("wrong-key", lambda s, g, o: [craft(helpers.random_secret())], "invalid"),
    ("wrong-name-in-mac", lambda s, g, o: [craft(s, name="alt")], "invalid"),
    ("wrong-version", lambda s, g, o: [craft(s, version=2)], "invalid"),
    ("kind-sealed-but-signed", lambda s, g, o: [craft(s, kind=helpers.KIND_SEALED)],
     "invalid"),
    ("kind-redis-id", lambda s, g, o: [craft(s, os.urandom(16), kind=helpers.KIND_ID)],
     "invalid"),
    ("expired", lambda s, g, o: [craft(s, created=now() - 7200, refreshed=now() - 10)],
     "expired"),
    ("future-dated", lambda s, g, o: [craft(s, created=now() + 3600)], "invalid"),
    ("future-refreshed", lambda s, g, o: [craft(s, created=now(), refreshed=now() + 3600)],
     "invalid"),
    ("refreshed-before-created",
     lambda s, g, o: [craft(s, created=now(), refreshed=now() - 600)], "invalid"),
    ("json-truncated", lambda s, g, o: [craft(s, b'{"user":')], "invalid"),
    ("json-array", lambda s, g, o: [craft(s, b'["user","x"]')], "invalid"),
    ("json-string", lambda s, g, o: [craft(s, b'"user"')], "invalid"),
    ("json-trailing-garbage", lambda s, g, o: [craft(s, b'{"user":"x"}x')], "invalid"),
    ("json-too-deep", lambda s, g, o: [craft(s, b'{"a":' + b"[" * 100 + b"]" * 100 + b"}")],
     "invalid"),
    ("json-too-many-keys", lambda s, g, o: [craft(s, {f"k{i}": "" for i in range(300)})],
     "invalid"),
    ("json-lone-surrogate", lambda s, g, o: [craft(s, b'{"user":"\\ud800"}')], "invalid"),
]

SIGNED_ONLY = {"wrong-key", "wrong-name-in-mac", "wrong-version", "kind-sealed-but-signed",
               "kind-redis-id", "expired", "future-dated", "future-refreshed",
               "refreshed-before-created", "json-truncated", "json-array", "json-string",
               "json-trailing-garbage", "json-too-deep", "json-too-many-keys",
               "json-lone-surrogate"}

PARAMS = []
for cid, build, status in CASES:
    PARAMS.append(pytest.param("off", build, status, id=f"signed-{cid}"))
    if cid not in SIGNED_ONLY:
        PARAMS.append(pytest.param("on", build, status, id=f"encrypted-{cid}"))


@pytest.mark.parametrize("encrypt,build,status", PARAMS)
def test_bad_cookie(nginx, encrypt, build, status):
    srv, good, other = start(nginx, encrypt)
    headers = [("Cookie", c) for c in build(srv.secrets[0], good, other)]
    assert_rejected(srv, headers, status)


@pytest.mark.parametrize("encrypt", ["off", "on"])
def test_every_byte_flipped(nginx, encrypt):
    """Exhaustive: each byte of a real cookie, changed, is rejected (one log line each)."""
    srv, good, _ = start(nginx, encrypt)
    n = len(b64url_decode(good))
    logged = 0
    for i in range(n):
        for mask in (0x01, 0x80):
            logged += assert_rejected(srv, [("Cookie", f"session={flip_byte(good, i, mask)}")],
                                      limited=True) is not None
    assert logged >= min(2 * n, 100)


@pytest.mark.parametrize("encrypt", ["off", "on"])
def test_every_truncation(nginx, encrypt):
    srv, good, _ = start(nginx, encrypt)
    logged = 0
    for k in range(1, len(good)):
        logged += assert_rejected(srv, [("Cookie", f"session={good[:k]}")],
                                  limited=True) is not None
    assert logged >= min(len(good) - 1, 100)


def test_value_moved_to_another_cookie_name(nginx):
    """A value issued for "session" is not valid as "alt" (the name is inside the MAC)."""
    srv, good, _ = start(nginx)
    line = assert_rejected(srv, [("Cookie", f"alt={good}")], name="alt", port=srv.port2)
    assert 'session cookie "alt" rejected:' in line


def test_encrypted_cookie_on_signed_server_and_back(nginx):
    srv_off, good_off, _ = start(nginx, "off")
    srv_on, good_on, _ = start(nginx, "on")
    assert_rejected(srv_off, [("Cookie", f"session={good_on}")])
    assert_rejected(srv_on, [("Cookie", f"session={good_off}")])


def test_cookie_from_another_server_secret(nginx):
    a, good_a, _ = start(nginx)
    b, good_b, _ = start(nginx)
    assert_rejected(a, [("Cookie", f"session={good_b}")])
    assert_rejected(b, [("Cookie", f"session={good_a}")])


@pytest.mark.parametrize("header", [
    "a=1; session={g}; b=2",
    "a=1;session={g};b=2",
    "xsession=garbage; session={g}; sessionx=junk",
    "  session={g}  ",
    "session={g}; session={g}",
    "session=garbage; session={g}",
    "session={g}; a=1; session=x",
], ids=["among-others", "no-spaces", "similar-names", "whitespace", "identical-duplicate",
        "duplicate-garbage-first", "duplicate-garbage-after"])
def test_valid_cookie_among_others(nginx, header):
    """Parsing is exact about the name and tolerant about separators. Every duplicate is tried:
    one valid cookie among garbage ones (planted for a parent domain, say) is the session, and
    the response expires nothing."""
    srv, good, _ = start(nginx)
    mark = srv.log_mark()
    r = srv.raw("/whoami", [("Cookie", header.replace("{g}", good))])
    assert r.status == 200 and r.text == "status=valid user=alice\n"
    assert srv.count_log("rejected", mark) == 0
    assert r.set_cookies == []


def test_bad_cookie_then_login_replaces_it(nginx):
    """A rejected cookie plus an action: the new session is sent, no deletion."""
    srv, _, _ = start(nginx)
    r = srv.raw("/login?u=bob", [("Cookie", "session=garbage")])
    assert r.status == 200
    sc = cookie_named(r)
    assert sc is not None and sc != session_deletion()
    assert helpers.payload_of(sc) == {"user": "bob"}


def test_rejected_cookie_is_left_alone_until_an_action_replaces_it(nginx):
    srv, _, _ = start(nginx)
    s = srv.session()
    s.cookies.set("session", "garbage", domain="127.0.0.1", path="/")
    r = srv.get("/whoami", s)
    assert r.status_code == 200 and r.text == "status=invalid user=\n"
    assert "Set-Cookie" not in r.headers
    assert srv.get("/whoami", s).text == "status=invalid user=\n"
    srv.get("/login?u=alice", s)
    assert srv.get("/whoami", s).text == "status=valid user=alice\n"


def test_expired_on_server_clock(nginx):
    """The one sleeping test here: a real cookie outlives a 2 s lifetime."""
    srv = nginx(server_conf(r'''
        location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
        location = /login  { session_set user $arg_u; return 200 "ok\n"; }
    ''', "session_lifetime 2s;"))
    good = cookie_value(cookie_named(srv.raw("/login?u=alice")))
    time.sleep(3.1)
    assert_rejected(srv, [("Cookie", f"session={good}")], "expired")


SEALED_CASES = [
    # id, (secret, now) -> Cookie header, expected status
    ("wrong-key", lambda s, n: sc(helpers.seal_envelope(helpers.random_secret(), "session",
                                                         b'{"user":"x"}')), "invalid"),
    ("expired", lambda s, n: sc(helpers.seal_envelope(s, "session", b'{"user":"x"}',
                                                      created=n - 7200, refreshed=n - 5)),
     "expired"),
    ("future-dated", lambda s, n: sc(helpers.seal_envelope(s, "session", b'{"user":"x"}',
                                                           created=n + 3600)), "invalid"),
    ("wrong-name-in-aad", lambda s, n: sc(helpers.seal_envelope(s, "alt", b'{"user":"x"}')),
     "invalid"),
    ("signed-kind-with-valid-gcm",
     lambda s, n: sc(helpers.seal_envelope(s, "session", b'{"user":"x"}',
                                           kind=helpers.KIND_SIGNED)), "invalid"),
]


@pytest.mark.parametrize("build,status", [c[1:] for c in SEALED_CASES],
                         ids=[c[0] for c in SEALED_CASES])
def test_bad_encrypted_cookie_crafted(nginx, build, status):
    """Encrypted store, cookies crafted with AES-256-GCM so only one property is wrong."""
    if helpers.AESGCM is None:
        pytest.skip("python3-cryptography not available")
    srv, _, _ = start(nginx, "on")
    ok = sc(helpers.seal_envelope(srv.secrets[0], "session", b'{"user":"alice"}'))
    assert srv.raw("/whoami", [("Cookie", ok)]).text == "status=valid user=alice\n"
    assert_rejected(srv, [("Cookie", build(srv.secrets[0], now()))], status)
