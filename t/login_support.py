"""Helpers for the login/logout tests (t/test_login*.py, t/test_browser.py).

* htpasswd lines in every format the module verifies, made at test time with Debian's own tools
  (`htpasswd` from apache2-utils, `openssl passwd`) and hashlib for {SHA}/{SSHA};
* the nginx snippet of a login site (login, template, logout, a protected location, /whoami);
* a small client: fetch the login page (CSRF cookie + token + the page's `next`), post the form.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Optional

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_LOGIN_PAGE = REPO / "examples" / "html" / "login.shtml"
FORM_TYPE = "application/x-www-form-urlencoded"
BAD_CREDENTIALS = "invalid username or password"
FORM_EXPIRED = "the form has expired, please try again"


# ---------------------------------------------------------------------------------------------
# Password hashes
# ---------------------------------------------------------------------------------------------

def _run(cmd, what):
    exe = shutil.which(cmd[0])
    if exe is None:
        pytest.fail(f"{cmd[0]} not installed ({what})", pytrace=False)
    p = subprocess.run(cmd, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{cmd} failed: {p.stderr!r}"
    return p.stdout.decode().strip()


def hash_password(fmt: str, password: str, cost: int = 5) -> str:
    """The hash field of an htpasswd line.

    fmt: 2y (htpasswd -B), 2b (the same bcrypt with the $2b$ prefix), apr1 (htpasswd -m),
    sha (htpasswd -s, {SHA}), ssha ({SSHA}, hashlib, 8-byte salt), 5 / 6 (openssl passwd -5/-6).
    cost: bcrypt cost (4..31)."""
    if fmt in ("2y", "2b"):
        line = _run(["htpasswd", "-nbB", "-C", str(cost), "u", password], "bcrypt")
        h = line.split(":", 1)[1]
        assert h.startswith("$2y$"), h
        return "$2b$" + h[4:] if fmt == "2b" else h
    if fmt == "apr1":
        h = _run(["htpasswd", "-nbm", "u", password], "apr1").split(":", 1)[1]
        assert h.startswith("$apr1$"), h
        return h
    if fmt == "sha":
        h = _run(["htpasswd", "-nbs", "u", password], "{SHA}").split(":", 1)[1]
        assert h.startswith("{SHA}"), h
        # Cross-check against hashlib, so a wrong tool cannot make the test vacuous.
        assert h == "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        return h
    if fmt == "ssha":
        salt = os.urandom(8)
        digest = hashlib.sha1(password.encode() + salt).digest()
        return "{SSHA}" + base64.b64encode(digest + salt).decode()
    if fmt in ("5", "6"):
        h = _run(["openssl", "passwd", f"-{fmt}", password], f"sha-crypt ${fmt}$")
        assert h.startswith(f"${fmt}$"), h
        return h
    raise ValueError(fmt)


def htpasswd_text(users: dict) -> str:
    """users: {name: hash} -> file text."""
    return "".join(f"{u}:{h}\n" for u, h in users.items())


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

def login_page_bytes() -> bytes:
    return EXAMPLE_LOGIN_PAGE.read_bytes()


# The protected page and /whoami show what the session holds.
SITE = r"""
server {
    listen 127.0.0.1:{port};
    session_secret_file {secret_file};
    root {prefix}/html;
    default_type text/html;
    {server_extra}

    location = /login {
        session_login;
        {page}
        {credentials}
        {login_extra}
    }
    location = /login.shtml { internal; ssi on; }
    location = /logout { session_logout {logout_to}; }
    location = /whoami {
        return 200 "user=[$session_user] status=$session_status role=[$session_role] id=[$session_id]\n";
    }
    location = /ping { return 200 "pong\n"; }
    location /private {
        session_require /login;
        return 200 "private user=[$session_user] uri=[$request_uri]\n";
    }
    {locations}
}
{http_extra}
"""


def site(credentials: str, *, server_extra: str = "", login_extra: str = "",
         logout_to: str = "", locations: str = "", http_extra: str = "",
         page: str = "session_login_page /login.shtml;") -> str:
    """An http-level snippet with a complete login site on {port}. Literal braces in the
    arguments are kept (only the SITE template's own {name} fields are filled here)."""
    text = SITE
    for k, v in (("server_extra", server_extra), ("credentials", credentials), ("page", page),
                 ("login_extra", login_extra), ("logout_to", logout_to),
                 ("locations", locations), ("http_extra", http_extra)):
        text = text.replace("{" + k + "}", v)
    return text


def user_file_site(redirect: Optional[str] = "/home", **kw) -> str:
    extra = kw.pop("login_extra", "")
    if redirect is not None:
        extra = f"session_login_redirect {redirect};\n        " + extra
    return site("session_login_user_file {prefix}/users;", login_extra=extra, **kw)


def files_for(users: dict, extra: Optional[dict] = None) -> dict:
    f = {"users": htpasswd_text(users).encode(), "html/login.shtml": login_page_bytes()}
    f.update(extra or {})
    return f


# ---------------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------------

_INPUT_RE = re.compile(r'<input\b[^>]*\bname="([^"]*)"[^>]*\bvalue="([^"]*)"', re.S)


def form_inputs(page: str) -> dict:
    """Hidden inputs of the login page, HTML-unescaped (name -> value)."""
    return {n: html.unescape(v) for n, v in _INPUT_RE.findall(page)}


def page_error(page: str) -> Optional[str]:
    m = re.search(r'<p\b[^>]*\bid="error"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(m.group(1)) if m else None


class LoginPage:
    def __init__(self, resp: requests.Response):
        self.resp = resp
        self.inputs = form_inputs(resp.text)
        self.token = self.inputs.get("csrf_token", "")
        self.next = self.inputs.get("next")


def get_login(srv, session: requests.Session, next_: Optional[str] = None,
              raw_query: Optional[str] = None) -> LoginPage:
    """GET /login (next_ is percent-encoded into ?next=; raw_query is sent verbatim)."""
    path = "/login"
    if raw_query is not None:
        path += "?" + raw_query
    elif next_ is not None:
        path += "?next=" + urllib.parse.quote(next_, safe="")
    r = srv.get(path, session=session)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:300]}"
    page = LoginPage(r)
    assert page.token, f"no csrf_token in the login page:\n{r.text}"
    return page


def post_login(srv, session: Optional[requests.Session], fields=None, *, body=None,
               content_type: str = FORM_TYPE, headers=None, timeout=10,
               keepalive: bool = False) -> requests.Response:
    """POST /login with fields (dict or list of pairs, form-encoded) or a raw body.

    By default the request says `Connection: close` and the response is read by its
    Content-Length, so a connection the server fails to finish cannot stall other checks
    (test_failure_responses_finish_the_request tests keep-alive on its own)."""
    if body is None:
        body = urllib.parse.urlencode(fields or {}).encode()
    h = {"Content-Type": content_type} if content_type is not None else {}
    if not keepalive:
        h["Connection"] = "close"
    h.update(headers or {})
    return (session or requests).post(srv.url("/login"), data=body, headers=h,
                                      allow_redirects=False, timeout=timeout)


def login(srv, session: requests.Session, user: str, password: str,
          next_: Optional[str] = None, get_next: Optional[str] = None) -> requests.Response:
    """The browser flow: GET the page (CSRF cookie + token), POST the form."""
    page = get_login(srv, session, get_next)
    fields = {"username": user, "password": password, "csrf_token": page.token}
    if next_ is not None:
        fields["next"] = next_
    elif page.next:
        fields["next"] = page.next
    return post_login(srv, session, fields)


def whoami(srv, session: requests.Session) -> str:
    r = srv.get("/whoami", session=session)
    assert r.status_code == 200, r.text
    return r.text


def location_path(srv, resp) -> str:
    """Location of a redirect, as path?query, asserting it is on the test server."""
    loc = resp.headers.get("Location")
    assert loc is not None, f"no Location ({resp.status_code})"
    u = urllib.parse.urlsplit(loc)
    if u.scheme or u.netloc:
        assert (u.scheme, u.netloc) == ("http", f"127.0.0.1:{srv.port}"), f"off-site: {loc!r}"
    return u.path + (("?" + u.query) if u.query else "")


# ---------------------------------------------------------------------------------------------
# A model of the CSRF double-submit cookie (src/ngx_http_session_login.cpp), so tests can make
# cookies of any age precisely instead of sleeping an hour. The model is anchored by a test that
# recomputes the token of a page the module served.
#   cookie <name>_csrf = base64url(nonce[16] | issued[8, big-endian unix time])
#   token = base64url(HMAC-SHA256(HKDF(secret, info "csrf"), "login\0" <cookie name> "\0" raw))
# ---------------------------------------------------------------------------------------------

import hmac as _hmac   # noqa: E402
import struct as _struct   # noqa: E402
import time as _time   # noqa: E402

import helpers as _helpers   # noqa: E402


def csrf_raw(issued: Optional[int] = None, nonce: Optional[bytes] = None) -> bytes:
    issued = int(_time.time()) if issued is None else issued
    return (nonce or os.urandom(16)) + _struct.pack(">Q", issued)


def csrf_token(secret, raw: bytes, cookie_name: str = "session_csrf") -> str:
    key = _helpers.hkdf_sha256(secret.encode() if isinstance(secret, str) else secret,
                               b"csrf", 32)
    mac = _hmac.new(key, b"login\0" + cookie_name.encode() + b"\0" + raw, hashlib.sha256)
    return _helpers.b64url_encode(mac.digest())


# The auth location of a session_login_auth site: proxies the check to a credential service on
# {aport} (an AuthService), passing the submitted credentials as X-User / X-Pass.
AUTH_PROXY = r"""
    location = /auth {
        internal;
        proxy_pass http://127.0.0.1:{aport}/check;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-User $session_login_username;
        proxy_set_header X-Pass $session_login_password;
        proxy_set_header X-Original-URI $request_uri;
        proxy_buffer_size 16k;
        proxy_buffers 4 16k;
    }
"""


# ---------------------------------------------------------------------------------------------
# A credential service for session_login_auth, on a free loopback port
# ---------------------------------------------------------------------------------------------

from conftest import LoopbackHTTPServer as _LoopbackHTTPServer   # noqa: E402


class AuthService(_LoopbackHTTPServer):
    """A credential service for session_login_auth on a free loopback port.

    decide(headers) -> (status, [(header, value), ...]); headers is the request's
    http.client.HTTPMessage. The default decides by the X-User / X-Pass headers the auth
    location forwards, from accounts {user: (password, status, extra headers)}: a known user
    with the right password gets that status and those headers, anything else 401.
    Every request is recorded: method, path, header lines as received, body."""

    METHODS = ("GET", "POST", "HEAD")

    def __init__(self, accounts=None, decide=None):
        self.accounts = accounts or {}
        self.decide = decide or self._by_account
        self.requests = []
        super().__init__()

    def answer(self, handler, body):
        self.requests.append({"method": handler.command, "path": handler.path,
                              "headers": list(handler.headers.items()),
                              "body": body})
        status, hdrs = self.decide(handler.headers)
        return status, hdrs, b""

    def _by_account(self, headers):
        acct = self.accounts.get(headers.get("X-User", ""))
        if acct is None or headers.get_all("X-Pass") != [acct[0]]:
            return 401, []
        return acct[1], list(acct[2])

    @staticmethod
    def header_values(req, name):
        return [v for k, v in req["headers"] if k.lower() == name.lower()]


# ---------------------------------------------------------------------------------------------
# A raw login POST (helpers.raw_exchange): exact header lines, and whether the server closed
# the connection after its answer
# ---------------------------------------------------------------------------------------------


def raw_post(port: int, body: bytes, headers=(), path: str = "/login",
             method: str = "POST") -> "_helpers.RawResponse":
    """POST body with `Connection: close` over a raw socket; the response's .closed tells
    whether the server closed the connection within 2 s after the response (it should)."""
    req = _helpers.build_request(method, path, headers, body, host="127.0.0.1")
    return _helpers.raw_exchange(port, req, timeout=5.0, close_wait=2.0)
