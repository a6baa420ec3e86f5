"""Signed identity for upstreams: session_jwt_key, session_jwt_claims, session_jwt_lifetime,
$session_jwt and session_jwks, against a real nginx.

Keys are made at test time with `openssl genpkey` (EC P-256 and Ed25519; RSA, P-384, an
encrypted key and garbage for the refusals). Tokens are verified the way an upstream would: the
JWKS is fetched from the session_jwks location with requests, each key built with jwt.PyJWK and
the token checked with jwt.decode (python3-jwt), and once more without PyJWT, with
python3-cryptography straight from the JWKS coordinates (ES256's raw r||s converted to DER). The
kid is recomputed in Python as the RFC 7638 thumbprint.

One worker per nginx: tokens are cached per worker, so with one worker a repeated request must
get exactly the same token while less than half of the lifetime has passed. The ES256 tests of
the cache rely on ECDSA signatures being randomized: a token signed again, even within the same
second, differs.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

import helpers
from helpers import make_cookie, server_conf

jwt = pytest.importorskip("jwt")
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402

SERVER_NAME = "app.example.test"


# ---------------------------------------------------------------------------------------------
# Keys and verification
# ---------------------------------------------------------------------------------------------


def genpkey(path: Path, *args):
    subprocess.run(["openssl", "genpkey", *args, "-out", str(path)], check=True,
                   capture_output=True, timeout=60)
    os.chmod(path, 0o600)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("openssl command not installed", pytrace=False)
    d = tmp_path_factory.mktemp("jwt-keys")
    k = {
        "ec": genpkey(d / "ec.pem", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
        "ec2": genpkey(d / "ec2.pem", "-algorithm", "EC", "-pkeyopt",
                       "ec_paramgen_curve:P-256"),
        "ed": genpkey(d / "ed.pem", "-algorithm", "ed25519"),
        "ed2": genpkey(d / "ed2.pem", "-algorithm", "ed25519"),
        "rsa": genpkey(d / "rsa.pem", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
        "p384": genpkey(d / "p384.pem", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-384"),
        "encrypted": genpkey(d / "enc.pem", "-algorithm", "ed25519", "-aes-256-cbc", "-pass",
                             "pass:test-passphrase"),
    }
    garbage = d / "garbage.pem"
    garbage.write_text("MARKER-NOT-A-KEY this is not a private key\n")
    k["garbage"] = garbage
    pub = d / "public.pem"
    subprocess.run(["openssl", "pkey", "-in", str(k["ec"]), "-pubout", "-out", str(pub)],
                   check=True, capture_output=True, timeout=60)
    k["public"] = pub
    k["dir"] = d / "a-directory"
    k["dir"].mkdir()
    return {name: str(p) for name, p in k.items()}


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def parts(token: str):
    h, p, s = token.split(".")
    return json.loads(b64d(h)), json.loads(b64d(p)), b64d(s)


def thumbprint(jwk: dict) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, no whitespace."""
    required = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, sort_keys=True,
                           separators=(",", ":"))
    return b64e(hashlib.sha256(canonical.encode()).digest())


def fetch_jwks(srv, path="/jwks") -> dict:
    r = srv.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    return r.json()


def verify(token: str, jwks: dict, iss: str = SERVER_NAME, **kw) -> dict:
    """What an upstream does: pick the JWKS key by kid, check signature, iss, exp, iat."""
    header = jwt.get_unverified_header(token)
    by_kid = {k["kid"]: k for k in jwks["keys"]}
    jwk = jwt.PyJWK(by_kid[header["kid"]])
    claims = jwt.decode(token, jwk.key, algorithms=[header["alg"]], issuer=iss,
                        options={"require": ["iss", "sub", "iat", "exp"]}, **kw)
    verify_with_cryptography(token, by_kid[header["kid"]])
    return claims


def verify_with_cryptography(token: str, jwk: dict):
    """The same check without PyJWT: the public key from the JWKS coordinates."""
    h, p, s = token.split(".")
    data = f"{h}.{p}".encode()
    sig = b64d(s)
    assert len(sig) == 64
    if jwk["kty"] == "EC":
        x, y = b64d(jwk["x"]), b64d(jwk["y"])
        assert len(x) == 32 and len(y) == 32
        pub = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                            ec.SECP256R1()).public_key()
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                   int.from_bytes(sig[32:], "big"))
        pub.verify(der, data, ec.ECDSA(hashes.SHA256()))
    else:
        ed25519.Ed25519PublicKey.from_public_bytes(b64d(jwk["x"])).verify(sig, data)


def public_of_pem(path: str):
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    return key.public_key()


# ---------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------

def site(key: str, extra: str = "", locations: str = "", server_extra: str = "",
         http_extra: str = "") -> str:
    locs = r"""
    location = /login   { session_set user $arg_u; session_set role $arg_role; return 200 "in\n"; }
    location = /anon    { session_set name x; return 200 "anon\n"; }
    location = /jwt     { return 200 "$session_jwt"; }
    location = /jwt-br  { return 200 "[$session_jwt]"; }
    location = /jwks    { session_jwks; }
""" + locations
    return server_conf(locs, f"server_name {SERVER_NAME};\n    session_encrypt off;\n    "
                       f"session_jwt_key {key};\n    {extra}\n    {server_extra}", http_extra)


def login(srv, user="alice", role="admin"):
    s = srv.session()
    r = srv.get(f"/login?u={user}&role={role}", session=s)
    assert r.status_code == 200, r.text
    return s


def token_of(srv, s, path="/jwt") -> str:
    r = srv.get(path, session=s)
    assert r.status_code == 200, r.text
    return r.text


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,alg,kty", [("ec", "ES256", "EC"), ("ed", "EdDSA", "OKP")])
def test_token_verifies_with_the_jwks(nginx, keys, kind, alg, kty):
    srv = nginx(site(keys[kind], "session_jwt_claims user role;"))
    s = login(srv, "alice", "admin")
    before = int(time.time())
    token = token_of(srv, s)
    after = int(time.time())
    assert token.count(".") == 2 and "=" not in token

    doc = fetch_jwks(srv)
    assert len(doc["keys"]) == 1
    jwk = doc["keys"][0]
    assert jwk["kty"] == kty and jwk["alg"] == alg and jwk["use"] == "sig"
    assert jwk["crv"] == ("P-256" if kind == "ec" else "Ed25519")
    assert "d" not in jwk                                  # never the private part
    assert jwk["kid"] == thumbprint(jwk)                   # RFC 7638, recomputed here

    header, payload, sig = parts(token)
    assert header == {"alg": alg, "typ": "JWT", "kid": jwk["kid"]}
    assert len(sig) == 64                                  # ES256: raw r||s, not DER

    claims = verify(token, doc)
    assert claims["iss"] == SERVER_NAME
    assert claims["sub"] == "alice"
    assert claims["role"] == "admin"
    assert before <= claims["iat"] <= after
    assert claims["exp"] - claims["iat"] == 60             # session_jwt_lifetime's default
    assert set(claims) == {"iss", "sub", "iat", "exp", "role"}
    assert list(payload) == ["iss", "sub", "iat", "exp", "role"]


@pytest.mark.parametrize("kind", ["ec", "ed"])
def test_jwks_matches_the_key_file(nginx, keys, kind):
    srv = nginx(site(keys[kind]))
    jwk = fetch_jwks(srv)["keys"][0]
    pub = public_of_pem(keys[kind])
    if kind == "ec":
        n = pub.public_numbers()
        assert b64d(jwk["x"]) == n.x.to_bytes(32, "big")   # left-padded to 32 bytes
        assert b64d(jwk["y"]) == n.y.to_bytes(32, "big")
    else:
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert b64d(jwk["x"]) == raw
    r = srv.get("/jwks")
    assert r.headers.get("Cache-Control") == "max-age=300"
    # the document is exactly the one key, compact
    assert r.text == json.dumps(r.json(), separators=(",", ":"))


def test_jwks_methods(nginx, keys):
    srv = nginx(site(keys["ed"]))
    head = requests.head(srv.url("/jwks"), timeout=10)
    assert head.status_code == 200 and head.headers["Content-Type"] == "application/json"
    post = requests.post(srv.url("/jwks"), data="x", timeout=10)
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"


def test_non_string_claims_keep_their_json(nginx, keys):
    srv = nginx(site(keys["ec"], "session_jwt_claims user n flag obj nothing missing name;"))
    now = int(time.time())
    cookie = make_cookie(srv.secrets[0], {"user": "alice", "n": 42, "flag": True,
                                          "obj": {"a": [1, "x"]}, "nothing": None,
                                          "name": 'say "hi" café'},
                         created=now, refreshed=now)
    r = srv.get("/jwt", headers={"Cookie": "session=" + cookie})
    claims = verify(r.text, fetch_jwks(srv))
    assert claims["sub"] == "alice"
    assert claims["n"] == 42 and claims["flag"] is True and claims["nothing"] is None
    assert claims["obj"] == {"a": [1, "x"]}
    assert claims["name"] == 'say "hi" café'
    assert "missing" not in claims


def test_same_token_within_half_the_lifetime_then_a_new_one(nginx, keys):
    """ES256 signatures are randomized: an identical token means it was not signed again."""
    lifetime = 4
    srv = nginx(site(keys["ec"], f"session_jwt_lifetime {lifetime}s;"))
    doc = fetch_jwks(srv)
    s = login(srv)
    first = token_of(srv, s)
    iat0 = parts(first)[1]["iat"]
    seen = [first]

    def changed():
        t = token_of(srv, s)
        seen.append(t)
        return t if t != first else None

    second = helpers.wait_for(changed, timeout=lifetime + 4, what="a re-signed token",
                              interval=0.05)
    assert seen[1] == first                       # the immediate repeat was the cached token
    c1, c2 = verify(first, doc), verify(second, doc)
    assert c1["exp"] - c1["iat"] == lifetime and c2["exp"] - c2["iat"] == lifetime
    # reused while less than half the lifetime had passed, re-signed once it had
    assert c2["iat"] - iat0 >= lifetime // 2
    assert c2["iat"] - iat0 <= lifetime // 2 + 1
    assert all(t == first for t in seen[:-1])
    assert token_of(srv, s) == second             # and the new one is cached in turn


def test_users_get_their_own_tokens(nginx, keys):
    srv = nginx(site(keys["ec"], "session_jwt_claims user role;"))
    doc = fetch_jwks(srv)
    alice, bob = login(srv, "alice", "admin"), login(srv, "bob", "viewer")
    ta, tb = token_of(srv, alice), token_of(srv, bob)
    assert ta != tb
    assert verify(ta, doc)["sub"] == "alice" and verify(ta, doc)["role"] == "admin"
    assert verify(tb, doc)["sub"] == "bob" and verify(tb, doc)["role"] == "viewer"
    # cached per user: each gets their own token back
    assert token_of(srv, alice) == ta and token_of(srv, bob) == tb
    # another session of the same user with the same claims shares the cached token
    assert token_of(srv, login(srv, "alice", "admin")) == ta
    # ... a change of a claim gives another token
    tc = token_of(srv, login(srv, "alice", "editor"))
    assert tc != ta and verify(tc, doc)["role"] == "editor"


def test_empty_without_a_logged_in_session(nginx, keys):
    srv = nginx(site(keys["ed"], locations="""
    location = /other { session_user_key nobody; return 200 "[$session_jwt]"; }
"""))
    assert srv.get("/jwt-br").text == "[]"                              # no cookie
    assert srv.get("/jwt-br", headers={"Cookie": "session=garbage"}).text == "[]"
    s = srv.session()
    assert srv.get("/anon", session=s).status_code == 200              # a session, no user
    assert srv.get("/jwt-br", session=s).text == "[]"
    s = login(srv, "alice")
    assert srv.get("/other", session=s).text == "[]"                   # not its user key
    assert srv.get("/jwt-br", session=s).text.startswith("[ey")
    # a user that is not a non-empty string logs nobody in
    now = int(time.time())
    for user in ("", 42, None, ["alice"]):
        cookie = make_cookie(srv.secrets[0], {"user": user}, created=now, refreshed=now)
        r = srv.get("/jwt-br", headers={"Cookie": "session=" + cookie})
        assert r.text == "[]", user


def test_no_token_for_a_user_with_a_control_byte(nginx, keys):
    """$session_jwt names exactly the user $session_user shows: a stored user with a control
    byte (NUL, CR/LF, ESC, TAB, DEL) reads as empty there, and gets no token (an upstream that
    hands sub to C strings would read "admin\\0evil" as "admin")."""
    srv = nginx(site(keys["ec"], locations=r"""
    location = /who { return 200 "[$session_user]"; }
"""))
    now = int(time.time())
    for user in ("admin\u0000evil", "admin\nX-Role: root", "a\rb", "a\u001b[31m", "a\tb",
                 "a\u007f"):
        hdr = {"Cookie": "session=" + make_cookie(srv.secrets[0], {"user": user},
                                                  created=now, refreshed=now)}
        assert srv.get("/who", headers=hdr).text == "[]", repr(user)
        assert srv.get("/jwt-br", headers=hdr).text == "[]", repr(user)
    assert 'session key "user" holds a control byte, $session_jwt is empty' in srv.error_log.read_text()
    ok = {"Cookie": "session=" + make_cookie(srv.secrets[0], {"user": "caf\u00e9 \u2028"},
                                             created=now, refreshed=now)}
    assert verify(srv.get("/jwt", headers=ok).text, fetch_jwks(srv))["sub"] == "caf\u00e9 \u2028"


def test_claims_with_control_bytes_or_duplicate_members_are_left_out(nginx, keys):
    """A claim whose value holds a control byte in any string (as $session_<key> would read it
    as empty), or an object with two members of one name (parsers disagree which one counts),
    is left out of the token, with an info line; the token and the other claims are kept."""
    srv = nginx(site(keys["ed"], "session_jwt_claims user a b c d e;"))
    now = int(time.time())
    raw = (b'{"user":"alice","a":"x\\u0000y","b":["ok","x\\ny"],'
           b'"c":{"admin":false,"admin":true},"d":{"k":{"l":1},"m":{"l":2}},"e":"fine"}')
    hdr = {"Cookie": "session=" + make_cookie(srv.secrets[0], raw, created=now, refreshed=now)}
    c = verify(srv.get("/jwt", headers=hdr).text, fetch_jwks(srv))
    assert c["sub"] == "alice"
    assert c["d"] == {"k": {"l": 1}, "m": {"l": 2}} and c["e"] == "fine"
    assert not {"a", "b", "c"} & set(c), c
    log = srv.error_log.read_text()
    assert 'session key "a" holds a control byte: left out of $session_jwt' in log, log


def test_empty_without_a_key(nginx, keys):
    srv = nginx(server_conf(r"""
    location = /login { session_set user $arg_u; return 200 "in\n"; }
    location = /jwt   { return 200 "[$session_jwt]"; }
    location = /keyed { session_jwt_key """ + keys["ed"] + r"""; return 200 "[$session_jwt]"; }
""", "session_encrypt off;"))
    s = srv.session()
    srv.get("/login?u=alice", session=s)
    assert srv.get("/jwt", session=s).text == "[]"
    assert srv.get("/keyed", session=s).text.startswith("[ey")


def test_no_session_config_means_empty(nginx, keys):
    srv = nginx(server_conf(r"""
    location = /jwt  { return 200 "[$session_jwt]"; }
    location = /jwks { session_jwks; }
""", f"session_jwt_key {keys['ed']};", secret=False))
    assert srv.get("/jwt").text == "[]"
    assert fetch_jwks(srv)["keys"][0]["kty"] == "OKP"   # a JWKS server needs no sessions


def test_proxy_set_header_reaches_the_upstream(nginx, keys, echo_upstream):
    srv = nginx(site(keys["ec"], locations="""
    location /app/ {
        proxy_set_header X-Session-Jwt $session_jwt;
        proxy_pass http://127.0.0.1:{up}/;
    }
""", server_extra=""), up=echo_upstream.port)
    doc = fetch_jwks(srv)
    s = login(srv, "alice")
    r = srv.get("/app/hello", session=s)
    assert r.status_code == 200
    got = dict((k.lower(), v) for k, v in r.json()["headers"])
    assert verify(got["x-session-jwt"], doc)["sub"] == "alice"
    r = srv.get("/app/hello")                        # anonymous: no header at all
    assert "x-session-jwt" not in {k.lower() for k, _ in r.json()["headers"]}


def test_iss_is_the_server_name(nginx, keys):
    srv = nginx(site(keys["ed"]) + """
server {
    listen 127.0.0.1:{port2};
    server_name other.example.test alias.example.test;
    session_secret_file {secret_file};
    session_encrypt off;
    session_jwt_key """ + keys["ed"] + r""";
    location = /login { session_set user $arg_u; return 200 "in\n"; }
    location = /jwt   { return 200 "$session_jwt"; }
}
""")
    doc = fetch_jwks(srv)
    a = verify(token_of(srv, login(srv, "alice")), doc)
    s = srv.session()
    srv.get("/login?u=alice", session=s, port=srv.port2)
    t = srv.get("/jwt", session=s, port=srv.port2).text
    b = verify(t, doc, iss="other.example.test")
    assert a["iss"] == SERVER_NAME and b["iss"] == "other.example.test"


def test_user_key_becomes_sub(nginx, keys):
    """session_user_key names the user: its value is sub, as $session_user reads it."""
    srv = nginx(site(keys["ec"], "session_user_key uid;\n    session_jwt_claims user uid role;",
                     locations=r"""
    location = /login-uid { session_set uid $arg_u; session_set user decoy;
                            return 200 "in\n"; }
    location = /who { return 200 "$session_user"; }
"""))
    s = srv.session()
    srv.get("/login-uid?u=carol", session=s)
    assert srv.get("/who", session=s).text == "carol"
    claims = verify(token_of(srv, s), fetch_jwks(srv))
    assert claims["sub"] == "carol" and claims["uid"] == "carol"
    assert "user" not in claims and "role" not in claims


def test_flask_format_user_key(nginx, keys):
    """session_format flask with session_user_key: a Flask app's session logs in for the token;
    a Flask float NaN (not JSON) is left out, a tuple keeps Flask's tagged JSON."""
    pytest.importorskip("flask")
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    secret = "flask-secret-key-for-jwt-tests"
    srv = nginx(server_conf(r"""
    location = /jwt  { return 200 "[$session_jwt]"; }
    location = /jwks { session_jwks; }
""", f"server_name {SERVER_NAME};\n    session_format flask;\n    session_user_key username;\n"
     f"    session_jwt_key {keys['ed']};\n    session_jwt_claims user level ratio pair;"),
        secrets=[secret])
    app = Flask("t")
    app.secret_key = secret
    ser = SecureCookieSessionInterface().get_signing_serializer(app)
    cookie = ser.dumps({"username": "dave", "level": 3, "ratio": float("nan"), "pair": (1, 2)})
    r = srv.get("/jwt", headers={"Cookie": "session=" + cookie})
    token = r.text[1:-1]
    claims = verify(token, fetch_jwks(srv))
    assert claims["sub"] == "dave" and claims["level"] == 3
    assert "ratio" not in claims
    assert claims["pair"] == {" t": [1, 2]}
    anon = ser.dumps({"level": 3})
    assert srv.get("/jwt", headers={"Cookie": "session=" + anon}).text == "[]"


def test_redis_store(nginx, keys, redis_server):
    from redis_support import redis_snippet
    srv = nginx(redis_snippet("127.0.0.1:{rport}", r"""
    server_name """ + SERVER_NAME + r""";
    location = /login { session_set user $arg_u; session_set role $arg_role;
                        return 200 "in\n"; }
    location = /jwt   { return 200 "[$session_jwt]"; }
    location = /jwks  { session_jwks; }
""", f"session_jwt_key {keys['ec']};\n    session_jwt_claims user role;"),
        rport=redis_server.port)
    doc = fetch_jwks(srv)
    s = login(srv, "erin", "ops")
    t = srv.get("/jwt", session=s).text[1:-1]
    claims = verify(t, doc)
    assert claims["sub"] == "erin" and claims["role"] == "ops"
    assert srv.get("/jwt", session=s).text[1:-1] == t   # cached
    assert srv.get("/jwt").text == "[]"


def test_tampered_tokens_fail_verification(nginx, keys):
    for kind in ("ec", "ed"):
        srv = nginx(site(keys[kind]))
        doc = fetch_jwks(srv)
        token = token_of(srv, login(srv, "alice"))
        verify(token, doc)
        h, p, sig = token.split(".")
        payload = json.loads(b64d(p))
        payload["sub"] = "mallory"
        forged = f"{h}.{b64e(json.dumps(payload, separators=(',', ':')).encode())}.{sig}"
        with pytest.raises(jwt.InvalidSignatureError):
            verify(forged, doc)
        with pytest.raises(InvalidSignature):
            verify_with_cryptography(forged, doc["keys"][0])
        bad_sig = b64d(sig)
        bad_sig = bad_sig[:5] + bytes([bad_sig[5] ^ 1]) + bad_sig[6:]
        with pytest.raises(jwt.InvalidSignatureError):
            verify(f"{h}.{p}.{b64e(bad_sig)}", doc)
        # another key of the same type does not verify it either
        other = nginx(site(keys[kind + "2"]))
        other_doc = fetch_jwks(other)
        assert other_doc["keys"][0]["kid"] != doc["keys"][0]["kid"]
        jwk = jwt.PyJWK(other_doc["keys"][0])
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, jwk.key, algorithms=[parts(token)[0]["alg"]], issuer=SERVER_NAME)


def test_jwks_serves_the_locations_key(nginx, keys):
    srv = nginx(site(keys["ec"], locations=f"""
    location /ed/ {{
        session_jwt_key {keys['ed']};
        location = /ed/jwks {{ session_jwks; }}
        location = /ed/jwt  {{ return 200 "$session_jwt"; }}
    }}
"""))
    ec_doc, ed_doc = fetch_jwks(srv), fetch_jwks(srv, "/ed/jwks")
    assert ec_doc["keys"][0]["alg"] == "ES256" and ed_doc["keys"][0]["alg"] == "EdDSA"
    s = login(srv)
    assert parts(token_of(srv, s, "/ed/jwt"))[0]["alg"] == "EdDSA"
    verify(token_of(srv, s, "/ed/jwt"), ed_doc)
    verify(token_of(srv, s), ec_doc)


def test_one_key_per_upstream_refuses_replayed_tokens(nginx, keys):
    """README "One key per upstream": a token has no audience, so apps that must not accept
    each other's tokens get a key each (location-level session_jwt_key) and their own
    session_jwks; a token made for one does not verify against the other's JWKS."""
    srv = nginx(site(keys["ec"], locations=f"""
    location /wiki/ {{
        session_jwt_key {keys['ec']};
        location = /wiki/jwks.json {{ session_jwks; }}
        location = /wiki/jwt {{ return 200 "$session_jwt"; }}
    }}
    location /payroll/ {{
        session_jwt_key {keys['ec2']};
        location = /payroll/jwks.json {{ session_jwks; }}
        location = /payroll/jwt {{ return 200 "$session_jwt"; }}
    }}
"""))
    wiki_doc, payroll_doc = fetch_jwks(srv, "/wiki/jwks.json"), fetch_jwks(srv, "/payroll/jwks.json")
    s = login(srv)
    wiki_t, payroll_t = token_of(srv, s, "/wiki/jwt"), token_of(srv, s, "/payroll/jwt")
    assert verify(wiki_t, wiki_doc)["sub"] == "alice"
    assert verify(payroll_t, payroll_doc)["sub"] == "alice"
    with pytest.raises(KeyError):                      # no key with the wiki token's kid
        verify(wiki_t, payroll_doc)
    with pytest.raises(KeyError):
        verify(payroll_t, wiki_doc)


def test_jwks_is_public_under_session_require(nginx, keys):
    """session_jwks answers without a session under an inherited session_require (upstreams
    fetch it server-to-server), as the login endpoints do; its siblings stay protected."""
    srv = nginx(server_conf(r"""
    location = /login { session_set user $arg_u; return 200 "in\n"; }
    location = /jwks  { session_jwks; }
    location /p/      { location = /p/jwks { session_jwks; } return 200 "[$session_jwt]"; }
""", f"server_name {SERVER_NAME};\n    session_encrypt off;\n    session_require;\n"
     f"    session_jwt_key {keys['ed']};"))
    for path in ("/jwks", "/p/jwks"):
        r = requests.get(srv.url(path), timeout=5)
        assert r.status_code == 200 and r.json()["keys"][0]["alg"] == "EdDSA", (path, r.text)
    assert requests.get(srv.url("/p/x"), timeout=5).status_code == 401


def test_jwks_answers_when_the_store_is_down_and_fail_closed(nginx, keys):
    """The public key needs no store: with session_store_fail closed and Redis unreachable,
    session_jwks still answers (and a cookie does not change that)."""
    from redis_support import craft_id_cookie, redis_snippet
    srv = nginx(redis_snippet("127.0.0.1:{rport}", r"""
    session_store_fail closed;
    session_redis_timeout 200ms;
    location = /jwks { session_jwks; }
    location = /x    { return 200 "x"; }
""", f"session_jwt_key {keys['ed']};"), rport=helpers.free_port())
    hdr = {"Cookie": "session=" + craft_id_cookie(srv.secrets[0], os.urandom(16))}
    assert srv.get("/x", headers=hdr).status_code == 503      # the store is down: refused
    for h in (hdr, {}):
        r = srv.get("/jwks", headers=h)
        assert r.status_code == 200 and r.json()["keys"][0]["alg"] == "EdDSA", r.text


def test_reload_reads_the_key_again(nginx, keys, tmp_path):
    key = tmp_path / "rotating.pem"
    shutil.copy(keys["ec"], key)
    os.chmod(key, 0o600)
    srv = nginx(site(str(key)))
    s = login(srv)
    doc1 = fetch_jwks(srv)
    t1 = token_of(srv, s)
    shutil.copy(keys["ed"], key)
    srv.reload()
    doc2 = fetch_jwks(srv)
    assert doc2["keys"][0]["alg"] == "EdDSA" and doc2["keys"][0]["kid"] != doc1["keys"][0]["kid"]
    t2 = token_of(srv, s)
    verify(t2, doc2)
    with pytest.raises(KeyError):        # the old token's kid is no longer published
        verify(t1, doc2)


def test_key_is_never_logged_or_served(nginx, keys):
    srv = nginx(site(keys["ec"]), log_level="debug")
    s = login(srv)
    token_of(srv, s)
    body = srv.get("/jwks").text
    pem = Path(keys["ec"]).read_text()
    secret_lines = [l for l in pem.splitlines() if l and not l.startswith("-----")]
    priv = serialization.load_pem_private_key(pem.encode(), password=None)
    d = priv.private_numbers().private_value.to_bytes(32, "big")
    for text in (body, srv.log_text()):
        for line in secret_lines:
            assert line not in text
        assert b64e(d) not in text


# ---------------------------------------------------------------------------------------------
# nginx -t
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which,message", [
    ("rsa", '"session_jwt_key" "{path}": RSA keys are not supported (use an EC P-256 key for '
            'ES256 or an Ed25519 key for EdDSA)'),
    ("p384", '"session_jwt_key" "{path}": EC curve secp384r1 is not supported'),
    ("garbage", '"session_jwt_key" "{path}" holds no PEM private key'),
    ("public", '"session_jwt_key" "{path}" holds no PEM private key'),
    ("encrypted", '"session_jwt_key" "{path}" is encrypted'),
    ("missing", '"session_jwt_key" cannot open "{path}"'),
    ("dir", '"session_jwt_key" cannot read "{path}"'),
])
def test_refused_keys(nginx_t, keys, which, message):
    path = keys.get(which) or str(Path(keys["ec"]).parent / "no-such-key.pem")
    rc, out = nginx_t(server_conf('location / { return 200 "$session_jwt"; }',
                                  f"session_jwt_key {path};"))
    assert rc != 0, out
    assert message.format(path=path) in out, out
    assert "MARKER-NOT-A-KEY" not in out


def test_unreadable_key(nginx_t, keys, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads a mode-000 file (the directory case covers read errors)")
    key = tmp_path / "locked.pem"
    shutil.copy(keys["ec"], key)
    os.chmod(key, 0)
    rc, out = nginx_t(server_conf("", f"session_jwt_key {key};"))
    assert rc != 0 and f'"session_jwt_key" cannot open "{key}"' in out and "Permission" in out


@pytest.mark.parametrize("snippet,message", [
    ("location = /k { session_jwks; }", '"session_jwks" requires "session_jwt_key"'),
    ("session_jwt_claims user sub;", '"session_jwt_claims": "sub" is a claim the module sets'),
    ("session_jwt_claims exp;", '"session_jwt_claims": "exp" is a claim the module sets'),
    ("session_jwt_claims role role;", '"session_jwt_claims": "role" is listed twice'),
    ("session_jwt_claims ro-le;", '"session_jwt_claims": invalid session key "ro-le"'),
    ("session_jwt_lifetime 0;", '"session_jwt_lifetime" directive must be greater than 0'),
    ("session_jwt_lifetime 1x;", '"session_jwt_lifetime" directive invalid value'),
    ("session_jwt_lifetime 1s;", '"session_jwt_lifetime" directive must be at least 2s (iat and '
                                 'exp are whole seconds'),
    ("session_jwt_lifetime 366d;", '"session_jwt_lifetime" directive must be at most 365d '
                                   '(1 year): a token cannot be revoked before its exp'),
    ("session_jwt_lifetime 9223372036854775807s;",
     '"session_jwt_lifetime" directive must be at most 365d (1 year)'),
    ("session_jwt_claims a; session_jwt_claims b;", '"session_jwt_claims" directive is duplicate'),
    ("location = /k { session_jwt_key {k}; session_jwks; session_jwks; }",
     '"session_jwks" directive is duplicate'),
])
def test_bad_directives(nginx_t, keys, snippet, message):
    rc, out = nginx_t(server_conf(snippet.replace("{k}", keys["ed"]), ""))
    assert rc != 0 and message in out, out


def test_good_configuration_passes(nginx_t, keys):
    rc, out = nginx_t(server_conf(f"""
    location = /jwks {{ session_jwks; }}
    location /b/ {{ session_jwt_lifetime 2s; return 200 "$session_jwt"; }}
    location /c/ {{ session_jwt_lifetime 365d; return 200 "$session_jwt"; }}
    location /a/ {{ session_jwt_key {keys['ed']}; session_jwt_lifetime 5m;
                    session_jwt_claims user role n; return 200 "$session_jwt"; }}
""", f"session_jwt_key {keys['ec']};"))
    assert rc == 0, out
