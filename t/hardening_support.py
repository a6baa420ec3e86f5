"""Support code for the hardening tests (t/test_hostile.py, t/test_faults_load.py).

Only the standard library, helpers.py and conftest.py's fixtures are used:

* a keep-alive HTTP client (http.client) that reconnects when the server closes (raw requests
  are helpers.raw_exchange);
* chunked request bodies and checks of raw response heads for injected header lines and
  control bytes;
* a seeded cookie mutator (bit flips, substitutions, truncations, extensions, alphabet swaps,
  splices ...) with a model of what a cookie parser may legitimately treat as the same value;
* process helpers: worker pids by `ps --ppid`, fd counts from /proc, "exited on signal" lines;
* a bounded wrk runner with a parser for its summary;
* Redis helpers: INFO counters, id-cookie records.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Tuple

import helpers
from helpers import b64url_decode, b64url_encode

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Characters a hostile client may put in a cookie value besides the alphabet (no CR/LF/NUL:
# those are rejected by nginx's own header parser before any module runs).
HOSTILE_CHARS = "+/=.~!$%&'()*,:<>?@[]^`{|}\\\"" + "\x80\xa0\xe9\xff"


# ---------------------------------------------------------------------------------------------
# HTTP clients
# ---------------------------------------------------------------------------------------------


class KeepAlive:
    """One persistent HTTP/1.1 connection to 127.0.0.1:port; reconnects (and re-sends once)
    when the server has closed it. Header values are sent as latin-1."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.port = port
        self.timeout = timeout
        self.conn: Optional[http.client.HTTPConnection] = None
        self.connects = 0

    def _connect(self):
        self.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        self.connects += 1

    def request(self, path: str, headers: Sequence[Tuple[str, str]] = (), method: str = "GET",
                body: Optional[bytes] = None) -> helpers.RawResponse:
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            try:
                self.conn.putrequest(method, path, skip_accept_encoding=True)
                for k, v in headers:
                    self.conn.putheader(k, v)
                if body is not None:
                    self.conn.putheader("Content-Length", str(len(body)))
                self.conn.endheaders(body)
                r = self.conn.getresponse()
                data = r.read()
                got = list(r.getheaders())
                resp = helpers.RawResponse(
                    r.status, r.reason, got, data,
                    lines=[f"{k}: {v}".encode("latin-1") for k, v in got],
                    closed=bool(r.will_close))
                if r.will_close:
                    self.close()
                return resp
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def chunked(body: bytes, rng: random.Random, max_chunk: int = 4096) -> bytes:
    out = b""
    i = 0
    while i < len(body):
        n = rng.randint(1, max_chunk)
        piece = body[i:i + n]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        i += n
    return out + b"0\r\n\r\n"


INJECTED = "X-Injected"
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def head_problems(ex: helpers.RawResponse, marker: str = INJECTED) -> list:
    """What is wrong with a raw response head: an injected header line (a line whose name is
    the marker, or a folded/continuation line), stray CR/LF/NUL or other control bytes inside a
    header line, a Content-Length that does not match the body."""
    problems = []
    m = marker.lower().encode()
    for line in ex.lines:
        name = line.partition(b":")[0].strip().lower()
        if name == m or line.lower().lstrip().startswith(m):
            problems.append(f"injected header line {line!r}")
        if line[:1] in (b" ", b"\t"):
            problems.append(f"continuation line {line!r}")
        if b":" not in line:
            problems.append(f"header line without a colon {line!r}")
        if _CTL.search(line):
            problems.append(f"control byte in header line {line!r}")
    cl = ex.header_values("Content-Length")
    te = ex.header_values("Transfer-Encoding")
    if len(cl) > 1:
        problems.append(f"Content-Length sent {len(cl)} times")
    elif cl and not te and int(cl[0]) != len(ex.body):
        problems.append(f"Content-Length {cl[0]!r} but {len(ex.body)} body bytes "
                        f"(response split?): {ex.body[:200]!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# Cookie mutation
# ---------------------------------------------------------------------------------------------


def cookie_equivalent(mutated: str, original: str) -> bool:
    """True when a correct RFC 6265 cookie parser may read mutated as the very same value as
    original (the pair ends at ';', surrounding SP/HTAB are trimmed, one pair of DQUOTEs is
    stripped): such a mutation is not tampering."""
    v = mutated.split(";", 1)[0].strip(" \t")
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        v = v[1:-1]
    return v == original


def _rand_b64(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(B64URL) for _ in range(n))


def _decoded(v: str) -> Optional[bytes]:
    try:
        return b64url_decode(v)
    except Exception:
        return None


class Mutator:
    """Seeded mutations of valid cookie values. pool: valid values of the target cookie (the
    first is "the" cookie); foreign: values that are valid elsewhere (another cookie name,
    another secret) and must be refused here as they are."""

    KINDS = ("bitflip", "byteflip", "substitute", "hostile_char", "truncate", "chop_front",
             "extend", "extend_bytes", "insert", "delete", "alphabet_swap", "padding",
             "splice", "splice_bytes", "redate", "case_flip", "block_swap", "random",
             "foreign", "foreign_mutated", "duplicate", "kind_byte", "repeat")

    def __init__(self, rng: random.Random, pool: Sequence[str], foreign: Sequence[str] = ()):
        assert pool, "need at least one valid cookie"
        self.rng = rng
        self.pool = list(pool)
        self.foreign = list(foreign)

    # Each returns (value, cookie header override or None).
    def bitflip(self, v):
        raw = bytearray(b64url_decode(v))
        for _ in range(self.rng.randint(1, 3)):
            i = self.rng.randrange(len(raw))
            raw[i] ^= 1 << self.rng.randrange(8)
        return b64url_encode(bytes(raw))

    def byteflip(self, v):
        raw = bytearray(b64url_decode(v))
        # header, body start, last bytes (tag) weighted like the envelope's regions
        region = self.rng.choice(("header", "body", "tail", "any"))
        if region == "header":
            i = self.rng.randrange(min(helpers.HEADER_LEN, len(raw)))
        elif region == "tail":
            i = len(raw) - 1 - self.rng.randrange(min(16, len(raw)))
        elif region == "body":
            i = min(len(raw) - 1, helpers.HEADER_LEN + self.rng.randrange(8))
        else:
            i = self.rng.randrange(len(raw))
        raw[i] = (raw[i] + self.rng.randint(1, 255)) & 0xff
        return b64url_encode(bytes(raw))

    def substitute(self, v):
        s = list(v)
        for _ in range(self.rng.randint(1, 3)):
            s[self.rng.randrange(len(s))] = self.rng.choice(B64URL)
        return "".join(s)

    def hostile_char(self, v):
        s = list(v)
        s[self.rng.randrange(len(s))] = self.rng.choice(HOSTILE_CHARS)
        return "".join(s)

    def truncate(self, v):
        return v[:self.rng.randrange(len(v))]

    def chop_front(self, v):
        return v[self.rng.randint(1, len(v)):]

    def extend(self, v):
        return v + _rand_b64(self.rng, self.rng.randint(1, 40))

    def extend_bytes(self, v):
        return b64url_encode(b64url_decode(v) + os.urandom(self.rng.randint(1, 64)))

    def insert(self, v):
        i = self.rng.randrange(len(v) + 1)
        return v[:i] + self.rng.choice(B64URL + HOSTILE_CHARS) + v[i:]

    def delete(self, v):
        i = self.rng.randrange(len(v))
        return v[:i] + v[i + 1:]

    def alphabet_swap(self, v):
        swapped = v.replace("-", "+").replace("_", "/")
        if swapped == v or self.rng.random() < 0.3:
            s = list(v)
            s[self.rng.randrange(len(s))] = self.rng.choice("+/")
            swapped = "".join(s)
        return swapped

    def padding(self, v):
        return v + "=" * self.rng.randint(1, 3)

    def splice(self, v):
        other = self.rng.choice([p for p in self.pool if p != v] or self.pool)
        k = self.rng.randrange(1, max(2, min(len(v), len(other))))
        return v[:k] + other[k:] if self.rng.random() < 0.5 else other[:k] + v[k:]

    def splice_bytes(self, v):
        a = b64url_decode(v)
        b = b64url_decode(self.rng.choice([p for p in self.pool if p != v] or self.pool))
        k = self.rng.randrange(1, max(2, min(len(a), len(b))))
        return b64url_encode(a[:k] + b[k:])

    def redate(self, v):
        """The same body and tag under a header with other times (extend a lifetime, undo an
        idle timeout, future-date): the header is authenticated, so this must fail."""
        raw = b64url_decode(v)
        env = helpers.decode_envelope(v)
        now = int(time.time())
        created = self.rng.choice((env.created - self.rng.randint(1, 10**6), now + 3600,
                                   env.created + self.rng.randint(1, 30), 0, 2**63 - 1))
        refreshed = self.rng.choice((env.refreshed, created, now, env.refreshed + 1))
        header = helpers.build_header(created, refreshed, env.kind, env.hint,
                                      version=env.version)
        return b64url_encode(header + raw[helpers.HEADER_LEN:])

    def case_flip(self, v):
        s = list(v)
        letters = [i for i, c in enumerate(s) if c.isalpha()]
        for i in self.rng.sample(letters, min(len(letters), self.rng.randint(1, 4))):
            s[i] = s[i].swapcase()
        return "".join(s)

    def block_swap(self, v):
        raw = b64url_decode(v)
        n = len(raw)
        a, b = sorted(self.rng.sample(range(n), 2))
        ln = self.rng.randint(1, max(1, min(8, b - a, n - b)))
        raw = raw[:a] + raw[b:b + ln] + raw[a + ln:b] + raw[a:a + ln] + raw[b + ln:]
        return b64url_encode(raw)

    def random(self, v):
        return _rand_b64(self.rng, max(2, len(v) + self.rng.randint(-8, 8)))

    def foreign_value(self, v):
        return self.rng.choice(self.foreign) if self.foreign else self.bitflip(v)

    def foreign_mutated(self, v):
        return self.bitflip(self.foreign_value(v))

    def kind_byte(self, v):
        raw = bytearray(b64url_decode(v))
        raw[1] = self.rng.choice([k for k in range(0, 6) if k != raw[1]])
        return b64url_encode(bytes(raw))

    def repeat(self, v):
        return v + v[:self.rng.randint(1, len(v))]

    def one(self, name: str = "session") -> Tuple[str, str, str]:
        """(kind, mutated value, Cookie header). Never a value equivalent to a valid one."""
        while True:
            kind = self.rng.choice(self.KINDS)
            base = self.rng.choice(self.pool)
            if kind == "duplicate" and len(self.pool) < 2:
                continue
            if kind == "foreign":
                val = self.foreign_value(base)
            elif kind == "duplicate":
                # two different valid cookies in one header (cookie tossing: a sibling planted
                # its own valid session): neither may be picked. (A valid cookie beside a
                # tampered copy is the valid session: test_valid_cookie_among_others.)
                other = self.rng.choice([p for p in self.pool if p != base])
                first, second = (base, other) if self.rng.random() < 0.5 else (other, base)
                return kind, other, f"{name}={first}; {name}={second}"
            else:
                val = getattr(self, kind)(base)
            if any(cookie_equivalent(val, p) for p in self.pool):
                continue
            return kind, val, f"{name}={val}"


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def workers_of(master: int) -> list:
    """Worker pids of an nginx master, from `ps --ppid` (cache manager/loader excluded)."""
    p = subprocess.run(["ps", "--ppid", str(master), "-o", "pid=,args="], capture_output=True,
                       text=True, timeout=10)
    out = []
    for line in p.stdout.splitlines():
        pid, _, args = line.strip().partition(" ")
        if "worker process" in args and "shutting down" not in args:
            out.append(int(pid))
    return sorted(out)


def children_of(master: int) -> list:
    p = subprocess.run(["ps", "--ppid", str(master), "-o", "pid="], capture_output=True,
                       text=True, timeout=10)
    return sorted(int(x) for x in p.stdout.split())


def wait_workers(master: int, n: int, timeout: float = 5.0, exclude: Iterable[int] = ()) -> list:
    """Polls (bounded) until master has exactly n workers, none of them in exclude, and no
    old generation shutting down."""
    exclude = set(exclude)
    w = []

    def settled():
        w[:] = workers_of(master)
        return len(w) == n and not (set(w) & exclude) and len(children_of(master)) == n

    if helpers.poll(settled, timeout, interval=0.02):
        return w
    raise AssertionError(f"master {master}: wanted {n} workers (not {sorted(exclude)}), "
                         f"have {w}, children {children_of(master)}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_listing(pid: int) -> list:
    out = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            out.append(f"{fd} -> {os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return out


LOG_LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(debug|info|notice|warn|error|crit|"
                      r"alert|emerg)\] \d+#\d+: ")


def forged_log_lines(srv, since: int = 0) -> list:
    """error.log lines that nginx did not start: a CR/LF from the request was written raw into
    a log message, so the rest of it reads as a line of its own (log forging: e.g. a fake
    "session login failed ... client: <victim>" line for fail2ban)."""
    with open(srv.error_log, "rb") as f:
        f.seek(since)
        data = f.read()
    out = []
    for line in re.split(rb"\r\n|\n|\r", data):
        text = line.decode("utf-8", "replace")
        if text and not LOG_LINE.match(text):
            out.append(text)
    return out


def crash_lines(srv, since: int = 0) -> list:
    return [l for l in srv.log_since(since)
            if "exited on signal" in l or "core dumped" in l]


# ---------------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int = 0
    connect: int = 0
    read: int = 0
    write: int = 0
    timeout: int = 0
    non2xx3xx: int = 0
    output: str = ""
    statuses: dict = field(default_factory=dict)

    @property
    def socket_errors(self) -> int:
        return self.connect + self.read + self.write + self.timeout


WRK_STATUS_SCRIPT = r"""
-- counts every status code per thread; summary prints "status <code> <count>" lines
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for code, n in pairs(s) do total[code] = (total[code] or 0) + n end
  end
  for code, n in pairs(total) do io.write(string.format("status %d %d\n", code, n)) end
end
"""


def wrk_binary() -> Optional[str]:
    return shutil.which("wrk") or ("/usr/bin/wrk" if os.path.exists("/usr/bin/wrk") else None)


class Wrk:
    """wrk in the background for a bounded time; result() waits and parses the summary."""

    def __init__(self, url: str, duration: float = 3.0, threads: int = 2, connections: int = 8,
                 headers: Sequence[str] = (), workdir=None, timeout_s: int = 2,
                 count_statuses: bool = True):
        assert duration <= 5.0, "keep each wrk run <= 5 s"
        binary = wrk_binary()
        assert binary, "wrk not installed"
        assert float(duration).is_integer(), "wrk takes whole seconds"
        argv = [binary, "-t", str(threads), "-c", str(connections), "-d", f"{int(duration)}s",
                "--timeout", f"{timeout_s}s"]
        for h in headers:
            argv += ["-H", h]
        if count_statuses:
            script = os.path.join(str(workdir or "/tmp"), f"wrk-status-{os.getpid()}.lua")
            with open(script, "w") as f:
                f.write(WRK_STATUS_SCRIPT)
            argv += ["-s", script]
        argv.append(url)
        self.argv = argv
        self.duration = duration
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.started = time.monotonic()

    def result(self) -> WrkResult:
        try:
            out, _ = self.proc.communicate(timeout=self.duration + 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=5)
            raise AssertionError(f"wrk did not finish: {out!r}")
        return parse_wrk(out.decode("utf-8", "replace"))

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def parse_wrk(out: str) -> WrkResult:
    r = WrkResult(output=out)
    m = re.search(r"(\d+) requests in", out)
    assert m, f"unexpected wrk output:\n{out}"
    r.requests = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r.connect, r.read, r.write, r.timeout = map(int, m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r.non2xx3xx = int(m.group(1))
    for code, n in re.findall(r"^status (\d+) (\d+)$", out, re.M):
        r.statuses[int(code)] = int(n)
    return r


# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------


def redis_info(client, section: str) -> dict:
    return client.info(section)


def commands_processed(client) -> int:
    return int(client.info("stats")["total_commands_processed"])


def connected_clients(client) -> int:
    return int(client.info("clients")["connected_clients"])


def id_hex(cookie_value: str) -> str:
    env = helpers.decode_envelope(cookie_value)
    assert env.kind == helpers.KIND_ID, f"not an id cookie (kind {env.kind})"
    return env.signed_payload.hex()
