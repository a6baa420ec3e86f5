"""Cookie store: the Set-Cookie the module writes (name, attributes, order), the envelope inside
it (signed and encrypted), round trips through a real cookie jar, key rotation with reload,
lifetime / idle timeout / renewal, and cookies too large to send.

Cookies are decoded and crafted with the Python model of the envelope in helpers.py, so the
timestamps, key hints and MACs are checked exactly, and expiry is tested without sleeping
(except one end-to-end check of the server's own clock).
"""

import json
import time

import pytest

import helpers
from helpers import (APP_LOCATIONS, AESGCM, DELETED, cookie_named, cookie_value, decode_envelope,
                     key_hint, make_cookie, match_cookie, payload_of, server_conf,
                     session_deletion, verify_signed)

SET_LOCATION = 'location = /s { session_set name waws; return 200 "ok\\n"; }'


def tls_listen():
    return ("listen 127.0.0.1:{port};\n    listen 127.0.0.1:{port2} ssl;\n"
            "    ssl_certificate {cert};\n    ssl_certificate_key {key};")


# ---- Set-Cookie attributes ---------------------------------------------------------------------

ATTR_CASES = [
    # id, session_cookie directive (server level), scheme, exact Set-Cookie ({v} = value)
    ("default-http", "", "http", "session={v}; Path=/; HttpOnly; SameSite=Lax"),
    ("default-https", "", "https", "session={v}; Path=/; Secure; HttpOnly; SameSite=Lax"),
    ("name-only", "session_cookie sid;", "http", "sid={v}; Path=/; HttpOnly; SameSite=Lax"),
    ("path-domain-strict", "session_cookie sid path=/app domain=example.com samesite=strict;",
     "http", "sid={v}; Path=/app; Domain=example.com; HttpOnly; SameSite=Strict"),
    ("max_age", "session_cookie session max_age=1h;", "http",
     "session={v}; Path=/; Max-Age=3600{expires?}; HttpOnly; SameSite=Lax"),
    ("secure-explicit-on-http", "session_cookie session secure;", "http",
     "session={v}; Path=/; Secure; HttpOnly; SameSite=Lax"),
    ("secure=auto-http", "session_cookie session secure=auto;", "http",
     "session={v}; Path=/; HttpOnly; SameSite=Lax"),
    ("secure=auto-https", "session_cookie session secure=auto;", "https",
     "session={v}; Path=/; Secure; HttpOnly; SameSite=Lax"),
    ("secure=off-https", "session_cookie session secure=off;", "https",
     "session={v}; Path=/; HttpOnly; SameSite=Lax"),
    ("httponly-explicit", "session_cookie session httponly;", "http",
     "session={v}; Path=/; HttpOnly; SameSite=Lax"),
    ("httponly=off", "session_cookie session httponly=off;", "http",
     "session={v}; Path=/; SameSite=Lax"),
    ("samesite=off", "session_cookie session samesite=off;", "http",
     "session={v}; Path=/; HttpOnly"),
    ("samesite=none-partitioned", "session_cookie session samesite=none secure partitioned;",
     "https", "session={v}; Path=/; Secure; HttpOnly; SameSite=None; Partitioned"),
    ("__Host-", "session_cookie __Host-sid secure;", "https",
     "__Host-sid={v}; Path=/; Secure; HttpOnly; SameSite=Lax"),
    ("__Secure-domain", "session_cookie __Secure-sid secure domain=example.com;", "http",
     "__Secure-sid={v}; Path=/; Domain=example.com; Secure; HttpOnly; SameSite=Lax"),
    ("all", "session_cookie sid path=/a domain=example.com max_age=90s secure httponly "
            "samesite=strict partitioned;", "http",
     "sid={v}; Path=/a; Domain=example.com; Max-Age=90{expires?}; Secure; HttpOnly; "
     "SameSite=Strict; Partitioned"),
]


@pytest.mark.parametrize("directive,scheme,expected", [c[1:] for c in ATTR_CASES],
                         ids=[c[0] for c in ATTR_CASES])
def test_set_cookie_attributes(nginx, tls_cert, directive, scheme, expected):
    srv = nginx(server_conf(SET_LOCATION, directive, listen=tls_listen()),
                cert=tls_cert[0], key=tls_cert[1])
    r = srv.get("/s", scheme=scheme, port=srv.port2 if scheme == "https" else srv.port)
    assert r.status_code == 200 and r.text == "ok\n"
    sc = helpers.set_cookie_headers(r)
    assert len(sc) == 1 and match_cookie(expected, sc[0]), f"expected {expected!r}, got {sc}"
    if "Expires=" in sc[0]:
        exp = helpers.parse_http_date(sc[0].split("Expires=")[1].split(";")[0])
        max_age = int(sc[0].split("Max-Age=")[1].split(";")[0])
        assert abs(exp - (time.time() + max_age)) < 30, sc[0]


def test_cookie_directive_inheritance(nginx):
    """http-level session_cookie applies to servers/locations; a location may override it."""
    srv = nginx("""
    session_cookie outer samesite=strict;
    server {
        listen 127.0.0.1:{port};
        session_secret_file {secret_file};
        location /a { session_set k a; return 200 "a"; }
        location /b { session_cookie inner path=/b; session_set k b; return 200 "b"; }
    }""")
    a = helpers.set_cookie_headers(srv.get("/a"))
    b = helpers.set_cookie_headers(srv.get("/b"))
    assert len(a) == 1 and match_cookie("outer={v}; Path=/; HttpOnly; SameSite=Strict", a[0]), a
    assert len(b) == 1 and match_cookie("inner={v}; Path=/b; HttpOnly; SameSite=Lax", b[0]), b


# ---- the envelope ------------------------------------------------------------------------------

def test_signed_envelope_layout(nginx):
    """session_encrypt off: version 1, kind 1, hint of the first secret, created == refreshed ==
    now, the JSON in clear at offset 19, then a 32-byte HMAC that verifies with secret 1 only."""
    srv = nginx(server_conf(SET_LOCATION, "session_encrypt off;"))
    before = int(time.time())
    r = srv.get("/s")
    after = int(time.time())
    value = cookie_value(cookie_named(r))
    env = decode_envelope(value)
    assert (env.version, env.kind) == (1, 1)
    assert env.hint == key_hint(srv.secrets[0])
    assert env.created == env.refreshed and before - 1 <= env.created <= after + 1
    assert env.raw[19:19 + 15] == b'{"name":"waws"}'
    assert len(env.raw) == 19 + 15 + 32
    assert verify_signed([srv.secrets[0]], "session", value) == b'{"name":"waws"}'
    assert verify_signed([srv.secrets[1]], "session", value) is None
    assert verify_signed([srv.secrets[0]], "other", value) is None  # name bound into the MAC


def test_encrypted_envelope_layout(nginx):
    """session_encrypt on (default): kind 2, nonce 12 + ciphertext + tag 16, JSON not visible;
    AES-256-GCM with the HKDF 'enc' key and AAD name|0|header opens it."""
    srv = nginx(server_conf(SET_LOCATION))
    value = cookie_value(cookie_named(srv.get("/s")))
    env = decode_envelope(value)
    assert (env.version, env.kind) == (1, 2)
    assert env.hint == key_hint(srv.secrets[0])
    assert len(env.raw) == 19 + 12 + 15 + 16
    assert b"waws" not in env.raw and b"name" not in env.raw
    if AESGCM is None:
        pytest.skip("python3-cryptography not available: layout checked, not decryption")
    assert helpers.open_sealed(srv.secrets[0], "session", value) == b'{"name":"waws"}'
    assert helpers.open_sealed(srv.secrets[1], "session", value) is None


def test_nonces_differ(nginx):
    srv = nginx(server_conf(SET_LOCATION))
    values = {cookie_value(cookie_named(srv.get("/s"))) for _ in range(5)}
    assert len(values) == 5
    nonces = {decode_envelope(v).body[:12] for v in values}
    assert len(nonces) == 5


@pytest.mark.parametrize("encrypt", ["on", "off"])
def test_round_trip_cookie_jar(nginx, encrypt):
    """A browser-like jar: set user, then name, read both back, log out."""
    srv = nginx(server_conf(APP_LOCATIONS, f"session_encrypt {encrypt};"))
    s = srv.session()
    assert srv.get("/whoami", s).text == "status=none user= name=\n"
    r = srv.get("/login?u=alice", s)
    assert r.status_code == 200 and r.text == "logged in\n"
    assert srv.get("/whoami", s).text == "status=valid user=alice name=\n"
    srv.get("/name?v=waws", s)
    assert srv.get("/whoami", s).text == "status=valid user=alice name=waws\n"
    r = srv.get("/logout", s)
    assert cookie_named(r) == session_deletion()
    assert srv.get("/whoami", s).text == "status=none user= name=\n"


@pytest.mark.parametrize("encrypt", ["on", "off"])
def test_crafted_cookie_accepted(nginx, encrypt):
    """The Python model of the envelope is exact: a cookie made with secret 2 (any line
    verifies) is accepted."""
    srv = nginx(server_conf(APP_LOCATIONS, f"session_encrypt {encrypt};"))
    data = {"user": "bob", "name": "crafted"}
    if encrypt == "on":
        if AESGCM is None:
            pytest.skip("python3-cryptography not available")
        value = helpers.seal_envelope(srv.secrets[1], "session", helpers.session_json(data))
    else:
        value = make_cookie(srv.secrets[1], data)
    r = srv.raw("/whoami", [("Cookie", f"session={value}")])
    assert r.status == 200 and r.text == "status=valid user=bob name=crafted\n"
    assert r.set_cookies == []   # fresh, valid, unchanged: nothing to send


def test_secret_file_comments_blank_lines_crlf(nginx):
    """'#' lines and blank lines are skipped, a trailing CR is stripped: the first real line
    signs, the second verifies; the comment is not a key."""
    a, b = helpers.random_secret(), helpers.random_secret()
    comment = "# " + helpers.random_secret()
    raw = f"{comment}\r\n\r\n\n{a}\r\n# another comment\n{b}\r\n".encode()
    srv = nginx(server_conf(APP_LOCATIONS, "session_encrypt off;"), secrets=raw)
    value = cookie_value(cookie_named(srv.get("/login?u=alice")))
    assert decode_envelope(value).hint == key_hint(a)
    assert verify_signed([a], "session", value) is not None
    assert verify_signed([a + "\r"], "session", value) is None
    for secret, status in ((b, "valid"), (comment, "invalid"), (b + "\r", "invalid")):
        r = srv.raw("/whoami", [("Cookie", f"session={make_cookie(secret, {'user': 'x'})}")])
        assert r.status == 200 and r.text.startswith(f"status={status} "), (secret, r.text)


def test_key_rotation(nginx):
    """Prepend a new secret + reload: old cookies still valid, new cookies use the new key.
    Drop the old secret + reload: old cookies invalid."""
    old, new = helpers.random_secret(), helpers.random_secret()
    srv = nginx(server_conf(APP_LOCATIONS, "session_encrypt off;"), secrets=[old])
    c_old = cookie_value(cookie_named(srv.get("/login?u=alice")))
    assert helpers.signing_secret([old], "session", c_old) == old

    helpers.write_secret_file(srv.secret_file, [new, old])
    srv.reload()
    r = srv.raw("/whoami", [("Cookie", f"session={c_old}")])
    assert r.text == "status=valid user=alice name=\n"
    c_new = cookie_value(cookie_named(srv.get("/login?u=carol")))
    assert decode_envelope(c_new).hint == key_hint(new)
    assert helpers.signing_secret([old, new], "session", c_new) == new

    helpers.write_secret_file(srv.secret_file, [new])
    srv.reload()
    mark = srv.log_mark()
    r = srv.raw("/whoami", [("Cookie", f"session={c_old}")])
    assert r.status == 200 and r.text == "status=invalid user= name=\n"
    assert srv.count_log('session cookie "session" rejected:', mark, "info") == 1
    r = srv.raw("/whoami", [("Cookie", f"session={c_new}")])
    assert r.text == "status=valid user=carol name=\n"


# ---- lifetime, idle timeout, renewal ------------------------------------------------------------

WHOAMI = r'''
    location = /whoami {
        return 200 "status=$session_status user=$session_user expires=$session_expires\n";
    }
'''

NOW = int(time.time())   # crafted offsets are relative; each test re-reads the clock

EXPIRY_CASES = [
    # id, server directives, created offset, refreshed offset, status, expires (offset from
    # created / "refreshed+N" / None for empty)
    ("lifetime-valid", "session_lifetime 1h;", -3000, -3000, "valid", ("created", 3600)),
    ("lifetime-elapsed", "session_lifetime 1h;", -3700, -10, "expired", None),
    ("default-lifetime-31d-valid", "", -30 * 86400, -30 * 86400, "valid",
     ("created", 31 * 86400)),
    ("default-lifetime-elapsed", "", -32 * 86400, -5, "expired", None),
    ("idle-off-old-refresh-valid", "session_lifetime 31d; session_idle_timeout off;",
     -10 * 86400, -9 * 86400, "valid", ("created", 31 * 86400)),
    ("idle-valid", "session_lifetime 1h; session_idle_timeout 30s;", -100, -5, "valid",
     ("refreshed", 30)),
    ("idle-elapsed", "session_lifetime 1h; session_idle_timeout 30s;", -100, -40, "expired",
     None),
    ("idle-longer-than-lifetime", "session_lifetime 1m; session_idle_timeout 1h;", -30, -30,
     "valid", ("created", 60)),
    ("future-created", "", +3600, +3600, "invalid", None),
    ("future-refreshed", "", -10, +3600, "invalid", None),
    ("refreshed-before-created", "", -10, -100, "invalid", None),
]


@pytest.mark.parametrize("directives,c_off,r_off,status,expires",
                         [c[1:] for c in EXPIRY_CASES], ids=[c[0] for c in EXPIRY_CASES])
def test_expiry_policy(nginx, directives, c_off, r_off, status, expires):
    srv = nginx(server_conf(WHOAMI, "session_encrypt off; " + directives))
    now = int(time.time())
    created, refreshed = now + c_off, now + r_off
    value = make_cookie(srv.secrets[0], {"user": "alice"}, created=created, refreshed=refreshed)
    mark = srv.log_mark()
    r = srv.raw("/whoami", [("Cookie", f"session={value}")])
    assert r.status == 200
    if status == "valid":
        base = created if expires[0] == "created" else refreshed
        assert r.text == f"status=valid user=alice expires={base + expires[1]}\n"
        assert srv.count_log("rejected", mark) == 0
    else:
        assert r.text == f"status={status} user= expires=\n"
        lines = srv.grep_log('session cookie "session" rejected:', mark, "info")
        assert len(lines) == 1, srv.log_since(mark)
        if status == "expired":
            assert 'rejected: expired' in lines[0], lines
        assert r.set_cookies == []   # read-only requests never expire the cookie


def test_lifetime_elapses_on_server_clock(nginx):
    """End to end with the server's own clock: a 2 s lifetime, wait 3 s."""
    srv = nginx(server_conf(APP_LOCATIONS, "session_lifetime 2s;"))
    s = srv.session()
    srv.get("/login?u=alice", s)
    assert srv.get("/whoami", s).text == "status=valid user=alice name=\n"
    time.sleep(3.1)
    mark = srv.log_mark()
    r = srv.get("/whoami", s)
    assert r.status_code == 200 and r.text == "status=expired user= name=\n"
    assert cookie_named(r) is None   # read-only: the expired cookie is left alone
    lines = srv.grep_log('session cookie "session" rejected: expired', mark, "info")
    assert len(lines) == 1, srv.log_since(mark)
    assert srv.get("/whoami", s).text == "status=expired user= name=\n"  # left alone


RENEW_CASES = [
    # id, directives, refreshed offset, expect re-issue
    ("default-1m-fresh", "", -10, False),
    ("default-1m-stale", "", -120, True),
    ("renew-10s-stale", "session_renew 10s;", -30, True),
    ("renew-1h-fresh", "session_renew 1h;", -1800, False),
]


@pytest.mark.parametrize("directives,r_off,reissue", [c[1:] for c in RENEW_CASES],
                         ids=[c[0] for c in RENEW_CASES])
def test_renew(nginx, directives, r_off, reissue):
    """A cookie whose refreshed time is older than session_renew is re-issued with refreshed =
    now, created and data unchanged; a fresher one is not re-sent."""
    srv = nginx(server_conf(WHOAMI, "session_encrypt off; " + directives))
    now = int(time.time())
    created = now - 2000
    data = {"user": "alice", "n": "1"}
    value = make_cookie(srv.secrets[0], data, created=created, refreshed=now + r_off)
    r = srv.raw("/whoami", [("Cookie", f"session={value}")])
    assert r.status == 200 and r.text.startswith("status=valid user=alice ")
    sc = cookie_named(r)
    if not reissue:
        assert sc is None, sc
        return
    assert match_cookie("session={v}; Path=/; HttpOnly; SameSite=Lax", sc), sc
    env = decode_envelope(cookie_value(sc))
    assert env.created == created
    assert now - 5 <= env.refreshed <= int(time.time()) + 5
    assert payload_of(sc) == data


def test_idle_timeout_kept_alive_by_renewal(nginx):
    """With an idle timeout the re-issued cookie moves $session_expires forward."""
    srv = nginx(server_conf(WHOAMI, "session_encrypt off; session_lifetime 1h; "
                                    "session_idle_timeout 60s; session_renew 10s;"))
    now = int(time.time())
    value = make_cookie(srv.secrets[0], {"user": "alice"}, created=now - 100, refreshed=now - 50)
    r = srv.raw("/whoami", [("Cookie", f"session={value}")])
    assert r.text == f"status=valid user=alice expires={now - 50 + 60}\n"
    env = decode_envelope(cookie_value(cookie_named(r)))
    r2 = srv.raw("/whoami", [("Cookie", f"session={cookie_value(cookie_named(r))}")])
    assert r2.text == f"status=valid user=alice expires={env.refreshed + 60}\n"


# ---- sizes -------------------------------------------------------------------------------------

BIG = r'''
    location = /big { session_set big $arg_v; return 200 "ok\n"; }
    location = /len { return 200 "status=$session_status"; }
'''


def test_large_value_that_fits(nginx):
    srv = nginx(server_conf(BIG, "session_encrypt off;"))
    s = srv.session()
    v = "x" * 2500
    r = srv.get("/big?v=" + v, s)
    assert r.status_code == 200
    sc = cookie_named(r)
    assert sc is not None and len(sc) < 4096
    assert payload_of(sc) == {"big": v}
    assert srv.get("/len", s).text == "status=valid"


@pytest.mark.parametrize("with_existing", [False, True])
def test_cookie_too_large_is_not_sent(nginx, with_existing):
    """The module refuses to send a Set-Cookie browsers would drop (> 4096): the response is
    still 200, one [error] line says 'too large'; an existing session cookie is left alone."""
    srv = nginx(server_conf(BIG, "session_encrypt off;", "large_client_header_buffers 4 16k;"))
    headers = []
    if with_existing:
        headers = [("Cookie", "session=" + make_cookie(srv.secrets[0], {"user": "alice"}))]
    mark = srv.log_mark()
    r = srv.raw("/big?v=" + "y" * 5000, headers)
    assert r.status == 200 and r.text == "ok\n"
    assert cookie_named(r) is None, r.set_cookies
    lines = srv.grep_log("too large", mark)
    assert len(lines) == 1 and "[error]" in lines[0], srv.log_since(mark)


def test_two_workers_share_keys(nginx):
    """Keys derive identically in every worker: a cookie from one is valid in all (20 fresh
    connections spread over 2 workers; $pid logged to show who answered)."""
    srv = nginx(server_conf(APP_LOCATIONS, "access_log {prefix}/pid.log pidlog;",
                            "log_format pidlog '$pid $session_status';"), workers=2)
    value = cookie_value(cookie_named(srv.raw("/login?u=alice")))
    for _ in range(20):
        r = srv.raw("/whoami", [("Cookie", f"session={value}")])
        assert r.text == "status=valid user=alice name=\n"
    lines = (srv.path / "pid.log").read_text().splitlines()[1:]   # [0] is /login
    assert len(lines) == 20 and all(l.endswith(" valid") for l in lines), lines
