"""Helpers for the ngx_http_session_module integration suite.

Everything here is plain Python (stdlib + requests, optionally python3-cryptography): rendering
and running nginx lives in conftest.py, this file holds

* the bounded poll, free-port picking, secret files, the raw-socket HTTP client for
  exact/garbage requests;
* a Python model of the cookie envelope (DESIGN.md / src/core/envelope.h), so tests can decode
  what the module sends and craft cookies it must accept or reject (expired, future-dated,
  wrong key, wrong kind, bad JSON ...) precisely, without sleeping;
* small parsers for Set-Cookie headers.
"""

from __future__ import annotations

import base64
import calendar
import email.utils
import hashlib
import hmac
import json
import os
import re
import secrets as _secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

# ---------------------------------------------------------------------------------------------
# Ports, files
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port that was free a moment ago (bind 127.0.0.1:0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLUSTER_BUS_OFFSET = 10000     # a Redis Cluster node's bus listens on its port + 10000


def free_cluster_port(taken=()) -> int:
    """A free_port() p for a Redis Cluster node: p + CLUSTER_BUS_OFFSET was free a moment ago
    too, and neither p nor its bus port is in taken or is the bus port of a port in taken (pass
    the ports already picked for the other nodes)."""
    busy = set(taken) | {p + CLUSTER_BUS_OFFSET for p in taken}
    for _ in range(200):
        p = free_port()
        bus = p + CLUSTER_BUS_OFFSET
        if bus > 65535 or p in busy or bus in busy:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", bus))
            except OSError:
                continue
        return p
    raise RuntimeError("no loopback port with a free cluster bus port (+10000) in 200 tries")


def poll(fn: Callable, timeout: float, interval: float = 0.05, until: Callable = bool):
    """The one bounded wait of the suite: calls fn until until(value) holds (by default: until
    fn returns a true value) or timeout seconds pass; returns fn's last value. fn is always
    called at least once, and once more at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if until(v) or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def wait_for(cond: Callable, timeout: float = 8.0, what: str = "condition",
             interval: float = 0.02):
    """poll() that fails the test when cond never held: returns cond's first true value."""
    v = poll(cond, timeout, interval)
    if not v:
        raise AssertionError(f"timed out waiting for {what}: {v!r}")
    return v


def port_accepts(port: int, timeout: float = 0.2) -> bool:
    """Whether 127.0.0.1:port accepts a TCP connection right now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 5.0, alive=lambda: True) -> bool:
    """Waits (bounded) until 127.0.0.1:port accepts a connection. alive() is polled so that a
    process that died on startup is noticed at once."""
    def state():
        if not alive():
            return "dead"
        return "open" if port_accepts(port) else None

    return poll(state, timeout, interval=0.02) == "open"


def random_secret(n: int = 48) -> str:
    """n random URL-safe characters (n must be a multiple of 4 for an exact length)."""
    s = _secrets.token_urlsafe(n)
    return s[:n]


def write_secret_file(path, lines: Optional[Sequence[str]] = None, raw: Optional[bytes] = None):
    """Writes a session_secret_file, readable by its owner only (as README says to keep it).
    Default: two lines of 48 random URL-safe characters. Returns the list of secret lines
    written (raw=... writes bytes verbatim and returns [])."""
    if raw is not None:
        with open(path, "wb") as f:
            f.write(raw)
        os.chmod(path, 0o600)
        return []
    if lines is None:
        lines = [random_secret(), random_secret()]
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    os.chmod(path, 0o600)
    return list(lines)


# ---------------------------------------------------------------------------------------------
# Raw HTTP client: exact bytes out, every header line back (duplicates kept, order kept)
# ---------------------------------------------------------------------------------------------


@dataclass
class RawResponse:
    """One response as it came off the wire (raw_exchange) or from KeepAlive."""
    status: int
    reason: str
    headers: list  # [(name, value)] in wire order, names as sent
    body: bytes    # de-chunked when the response was complete and chunked
    raw: bytes = b""                            # every byte the server sent
    lines: list = field(default_factory=list)   # header lines (bytes) after the status line
    closed: bool = True    # the server closed the connection after the response

    @property
    def data(self) -> bytes:
        """The same bytes as raw (the hardening tests' name)."""
        return self.raw

    def header_all(self, name: str) -> list:
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header(self, name: str) -> Optional[str]:
        v = self.header_all(name)
        assert len(v) <= 1, f"header {name} appears {len(v)} times: {v}"
        return v[0] if v else None

    def header_values(self, name: str) -> list:
        """Values (bytes, as sent) of the header lines named name."""
        n = name.lower().encode()
        out = []
        for line in self.lines:
            k, sep, v = line.partition(b":")
            if sep and k.strip().lower() == n:
                out.append(v.strip())
        return out

    @property
    def set_cookies(self) -> list:
        return self.header_all("Set-Cookie")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        line, _, rest = body.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def _complete(data: bytes, method_head: bool = False) -> bool:
    """Whether data holds one complete HTTP response (Content-Length or chunked framing)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    if method_head:
        return True
    h = head.lower()
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", h)
    if re.search(rb"\r\ntransfer-encoding:\s*chunked", h):
        return body.endswith(b"0\r\n\r\n")
    if m:
        return len(body) >= int(m.group(1))
    status = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return bool(status) and (status.group(1) in (b"204", b"304") or
                             status.group(1).startswith(b"1"))


def build_request(method: str, path, headers: Iterable = (), body: bytes = b"",
                  host: str = "localhost", content_length: bool = True) -> bytes:
    """Request bytes with exact header lines. headers: iterable of (name, value) (str or
    bytes), sent in order after Host and `Connection: close`, duplicates allowed (e.g. two
    Cookie lines). Content-Length is added for a body or a POST/PUT unless content_length is
    False (e.g. for a chunked body)."""
    if isinstance(path, str):
        path = path.encode("latin-1")
    req = (method.encode() + b" " + path + b" HTTP/1.1\r\nHost: " + host.encode("latin-1")
           + b"\r\nConnection: close\r\n")
    for k, v in headers:
        k = k.encode("latin-1") if isinstance(k, str) else k
        v = v.encode("latin-1") if isinstance(v, str) else v
        req += k + b": " + v + b"\r\n"
    if content_length and (body or method in ("POST", "PUT")):
        req += b"Content-Length: %d\r\n" % len(body)
    return req + b"\r\n" + body


def raw_exchange(port: int, request: bytes, timeout: float = 10.0,
                 close_wait: float = 1.0) -> RawResponse:
    """The one raw-socket HTTP client: sends request bytes as they are (send 'Connection:
    close' or HTTP/1.0) to 127.0.0.1:port and reads until the server closes. A server that
    answers (and closes) before reading the whole body is fine: send errors are ignored and
    whatever arrived is returned. A complete response whose connection is not closed within
    close_wait seconds is returned with closed=False (the server did not finish the request).
    timeout bounds every read."""
    chunks = []
    closed = True
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = None
        while True:
            if deadline is None and _complete(b"".join(chunks), request.startswith(b"HEAD ")):
                deadline = time.monotonic() + close_wait
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    closed = False
                    break
                s.settimeout(left)
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                if deadline is not None or b"\r\n\r\n" in b"".join(chunks):
                    # complete (or close-delimited) response, connection still open
                    closed = False
                    break
                raise
            if not b:
                break
            chunks.append(b)
    data = b"".join(chunks)
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response header: {data[:500]!r}"
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    assert m, f"bad status line {lines[0]!r}"
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
    resp = RawResponse(int(m.group(1)), m.group(2).decode("latin-1"), headers, body, data,
                       lines[1:], closed)
    te = resp.header_all("Transfer-Encoding")
    if te and te[0].lower() == "chunked" and _complete(data):
        resp.body = _dechunk(body)
    return resp


def http_request(port: int, path: str = "/", headers: Iterable = (), method: str = "GET",
                 body: bytes = b"", host: str = "localhost", timeout: float = 5.0) -> RawResponse:
    """build_request + raw_exchange, for a server that must close the connection after its
    answer: TimeoutError (an OSError, as a socket timeout) if it does not within timeout
    seconds."""
    resp = raw_exchange(port, build_request(method, path, headers, body, host), timeout,
                        close_wait=timeout)
    if not resp.closed:
        raise TimeoutError(f"127.0.0.1:{port} kept the connection open {timeout}s after "
                           f"answering: {resp.raw[:300]!r}")
    return resp


def set_cookie_headers(resp) -> list:
    """Every Set-Cookie header line of a requests.Response or RawResponse, unmerged."""
    if isinstance(resp, RawResponse):
        return resp.set_cookies
    return list(resp.raw.headers.getlist("Set-Cookie"))


def cookies_named(resp, name: str) -> list:
    return [h for h in set_cookie_headers(resp) if h.split("=", 1)[0] == name]


def cookie_named(resp, name: str = "session") -> Optional[str]:
    """The one Set-Cookie header for name (None if absent; fails if sent twice)."""
    c = cookies_named(resp, name)
    assert len(c) <= 1, f"Set-Cookie for {name} sent {len(c)} times: {c}"
    return c[0] if c else None


def cookie_value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def value_pattern(name: str = "session") -> str:
    """Regex for the name=value part of a session Set-Cookie (base64url value)."""
    return re.escape(name) + r"=[A-Za-z0-9_-]{20,}"


DELETED = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"


def session_deletion(name="session", tail="; HttpOnly; SameSite=Lax", path="/") -> str:
    """The exact Set-Cookie the module sends to expire the session cookie (default attrs)."""
    p = f"; Path={path}" if path else ""
    return f"{name}={p}; {DELETED}{tail}"


def parse_http_date(s: str) -> int:
    t = email.utils.parsedate_tz(s)
    assert t is not None, f"not an HTTP date: {s!r}"
    assert s.endswith(" GMT") and re.fullmatch(
        r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
        r"\d{4} \d\d:\d\d:\d\d GMT", s), f"not an IMF-fixdate: {s!r}"
    return int(email.utils.mktime_tz(t))


# ---------------------------------------------------------------------------------------------
# The cookie envelope (see src/core/envelope.h)
# ---------------------------------------------------------------------------------------------

HKDF_SALT = b"ngx_http_session_module/v1"
VERSION = 1
KIND_SIGNED, KIND_SEALED, KIND_ID = 1, 2, 3
HEADER_LEN = 19
MAC_LEN, NONCE_LEN, TAG_LEN = 32, 12, 16


def b64url_encode(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hkdf_sha256(ikm: bytes, info: bytes, length: int, salt: bytes = HKDF_SALT) -> bytes:
    """RFC 5869 HKDF with SHA-256."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    return okm[:length]


def _secret_bytes(secret) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def key_hint(secret) -> int:
    return hkdf_sha256(_secret_bytes(secret), b"hint", 1)[0]


def mac_key(secret) -> bytes:
    return hkdf_sha256(_secret_bytes(secret), b"mac", 32)


def enc_key(secret) -> bytes:
    return hkdf_sha256(_secret_bytes(secret), b"enc", 32)


@dataclass
class Envelope:
    version: int
    kind: int
    hint: int
    created: int
    refreshed: int
    body: bytes        # everything after the 19-byte header
    raw: bytes = field(repr=False, default=b"")

    @property
    def header(self) -> bytes:
        return self.raw[:HEADER_LEN]

    @property
    def signed_payload(self) -> bytes:
        """Payload of a signed (or id) envelope: body minus the 32-byte MAC."""
        return self.body[:-MAC_LEN]


def decode_envelope(value: str) -> Envelope:
    raw = b64url_decode(value)
    assert len(raw) >= HEADER_LEN, f"cookie value too short for an envelope: {value!r}"
    version, kind, hint, created, refreshed = struct.unpack(">BBBQQ", raw[:HEADER_LEN])
    return Envelope(version, kind, hint, created, refreshed, raw[HEADER_LEN:], raw)


def build_header(created: int, refreshed: int, kind: int = KIND_SIGNED, hint: Optional[int] = None,
                 secret=None, version: int = VERSION) -> bytes:
    if hint is None:
        hint = key_hint(secret)
    return struct.pack(">BBBQQ", version, kind, hint, created, refreshed)


def sign_envelope(secret, name: str, payload: bytes, created: Optional[int] = None,
                  refreshed: Optional[int] = None, kind: int = KIND_SIGNED,
                  version: int = VERSION, hint: Optional[int] = None) -> str:
    """A signed cookie value exactly as the module would make it with this secret."""
    now = int(time.time())
    created = now if created is None else created
    refreshed = created if refreshed is None else refreshed
    header = build_header(created, refreshed, kind, hint, secret, version)
    tag = hmac.new(mac_key(secret), name.encode() + b"\x00" + header + payload,
                   hashlib.sha256).digest()
    return b64url_encode(header + payload + tag)


def session_json(data: dict) -> bytes:
    """Compact JSON as the module writes it (insertion order kept, UTF-8 unescaped)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def make_cookie(secret, data, name: str = "session", **kw) -> str:
    """Signed session cookie (session_encrypt off) for a dict (or raw JSON bytes/str)."""
    if isinstance(data, dict):
        payload = session_json(data)
    else:
        payload = data.encode() if isinstance(data, str) else data
    return sign_envelope(secret, name, payload, **kw)


def verify_signed(secrets: Sequence, name: str, value: str) -> Optional[bytes]:
    """Payload if some secret's MAC verifies the signed value (hint ignored), else None."""
    env = decode_envelope(value)
    if len(env.body) < MAC_LEN:
        return None
    for s in secrets:
        tag = hmac.new(mac_key(s), name.encode() + b"\x00" + env.header + env.signed_payload,
                       hashlib.sha256).digest()
        if hmac.compare_digest(tag, env.body[-MAC_LEN:]):
            return env.signed_payload
    return None


def signing_secret(secrets: Sequence, name: str, value: str):
    """Which of secrets verifies the signed value (None if none)."""
    for s in secrets:
        if verify_signed([s], name, value) is not None:
            return s
    return None


try:  # python3-cryptography (Debian) — optional, only for the encrypted kind
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # type: ignore
except Exception:  # pragma: no cover
    AESGCM = None


def open_sealed(secret, name: str, value: str) -> Optional[bytes]:
    """Plaintext of an encrypted envelope, or None if the tag does not verify."""
    assert AESGCM is not None
    env = decode_envelope(value)
    nonce, ct = env.body[:NONCE_LEN], env.body[NONCE_LEN:]
    try:
        return AESGCM(enc_key(secret)).decrypt(nonce, ct, name.encode() + b"\x00" + env.header)
    except Exception:
        return None


def seal_envelope(secret, name: str, payload: bytes, created: Optional[int] = None,
                  refreshed: Optional[int] = None, kind: int = KIND_SEALED) -> str:
    assert AESGCM is not None
    now = int(time.time())
    created = now if created is None else created
    refreshed = created if refreshed is None else refreshed
    header = build_header(created, refreshed, kind, None, secret)
    nonce = os.urandom(NONCE_LEN)
    ct = AESGCM(enc_key(secret)).encrypt(nonce, payload, name.encode() + b"\x00" + header)
    return b64url_encode(header + nonce + ct)


def flip_byte(value: str, index: int, mask: int = 0x01) -> str:
    """The cookie value with one decoded byte changed (index may be negative)."""
    raw = bytearray(b64url_decode(value))
    raw[index] ^= mask
    return b64url_encode(bytes(raw))


def imf_now_plus(seconds: int) -> int:
    return int(time.time()) + seconds


def utc_ts(s: str) -> int:
    return calendar.timegm(time.strptime(s, "%a, %d %b %Y %H:%M:%S GMT"))


# ---------------------------------------------------------------------------------------------
# Config snippets
# ---------------------------------------------------------------------------------------------


def server_conf(locations: str, server_extra: str = "", http_extra: str = "",
                secret: bool = True, listen: str = "listen 127.0.0.1:{port};") -> str:
    """An http-level snippet: one server on {port} with session_secret_file {secret_file}
    (unless secret=False), server_extra directives and the given locations."""
    return (http_extra + "\n"
            "server {\n"
            "    " + listen + "\n"
            + ("    session_secret_file {secret_file};\n" if secret else "")
            + "    " + server_extra + "\n"
            + locations + "\n"
            "}\n")


# Locations most tests share. /login stores user, /name stores name, /whoami shows the session
# as it arrived, /logout destroys it.
APP_LOCATIONS = r"""
    location = /login  { session_set user $arg_u; return 200 "logged in\n"; }
    location = /name   { session_set name $arg_v; return 200 "set\n"; }
    location = /whoami { return 200 "status=$session_status user=$session_user name=$session_name\n"; }
    location = /logout { session_destroy; return 200 "bye\n"; }
"""


def payload_of(set_cookie_or_value: str) -> dict:
    """Session data inside a signed (session_encrypt off) cookie: Set-Cookie line or value."""
    v = set_cookie_or_value
    if "=" in v.split(";", 1)[0]:
        v = cookie_value(v)
    env = decode_envelope(v)
    assert env.kind == KIND_SIGNED, f"not a signed envelope (kind {env.kind})"
    return json.loads(env.signed_payload)


def cookie_regex(expected: str) -> str:
    """Expected Set-Cookie with {v} for the base64url value and {expires?} for an optional
    '; Expires=<date>' -> anchored regex."""
    rx = re.escape(expected)
    rx = rx.replace(re.escape("{v}"), r"[A-Za-z0-9_-]{20,}")
    rx = rx.replace(re.escape("{expires?}"), r"(?:; Expires=[A-Za-z]{3}, \d\d [A-Za-z]{3} \d{4} "
                                               r"\d\d:\d\d:\d\d GMT)?")
    return rx


def match_cookie(expected: str, actual: Optional[str]) -> bool:
    return actual is not None and re.fullmatch(cookie_regex(expected), actual) is not None
