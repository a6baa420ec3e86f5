"""Support code for the Redis store tests (t/test_redis.py, t/test_redis_faults.py).

conftest.py's `redis_server` fixture starts a plain redis-server on a loopback TCP port. The
Redis tests also need servers with a password, ACL users, a unix socket, a port chosen before
the server starts (Redis down when nginx starts), and fault injection (SIGSTOP/SIGCONT,
SIGKILL and restart on the same port). That is `RedisProc` here, handed out by the
`redis_factory` fixture, which always SIGCONTs and stops (by pid) what it started.

Also here: Redis-flavoured nginx snippets, the session id inside a cookie, crafting an id
cookie for a record seeded directly into Redis, INFO commandstats / CLIENT LIST counters.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import pytest
import redis as redis_py

import helpers

START_TIMEOUT = 5.0
STOP_TIMEOUT = 10.0
CLIENT_NAME = "pytest"          # our own connections are named, so they can be told apart


def redis_binary() -> str:
    return shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisProc:
    """A redis-server of our own: loopback TCP on a run-time port (port=0: unix socket only),
    optional unix socket, requirepass, extra config arguments (e.g. ACL --user lines)."""

    def __init__(self, workdir: Path, *, port: Optional[int] = None, unixsocket: bool = False,
                 password: Optional[str] = None, extra: Sequence[str] = (),
                 admin_user: Optional[tuple] = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = helpers.free_port() if port is None else port
        # sun_path is limited to 107 bytes: pytest's tmp paths can be longer.
        self.socket_path = None
        if unixsocket:
            sock = self.workdir / "redis.sock"
            if len(str(sock)) > 100:
                import tempfile
                sock = Path(tempfile.mkdtemp(prefix="rsock")) / "redis.sock"
            self.socket_path = str(sock)
        self.password = password
        self.extra = list(extra)
        self.admin_user = admin_user    # (username, password) for our own clients (ACL tests)
        self.proc: Optional[subprocess.Popen] = None
        self.paused = False
        self._log = None

    # --- process control ---------------------------------------------------------------------

    def argv(self) -> list:
        a = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)]
        if self.socket_path:
            a += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        if self.password is not None:
            a += ["--requirepass", self.password]
        return a + self.extra

    def start(self, wait: bool = True) -> "RedisProc":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log = open(self.workdir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.paused = False
        if wait:
            def answers():
                if self.proc.poll() is not None:
                    return "dead"
                try:
                    return self.admin(socket_timeout=0.5).ping()
                except (redis_py.exceptions.ConnectionError, redis_py.exceptions.TimeoutError,
                        FileNotFoundError):
                    return None

            if helpers.poll(answers, START_TIMEOUT, interval=0.02) is True:
                return self
            self.stop()
            log = (self.workdir / f"redis-{self.port}.log").read_text(errors="replace")
            pytest.fail(f"redis-server {self.argv()} did not answer PING\n{log[-2000:]}",
                        pytrace=False)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pause(self):
        """SIGSTOP: the listening socket stays open, nothing is answered."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def kill(self):
        """SIGKILL (a crash): the data is gone (no persistence)."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
        self.paused = False
        self._close_log()

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.paused:
                self.resume()
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        self.paused = False
        self._close_log()

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    # --- clients -----------------------------------------------------------------------------

    def admin(self, db: int = 0, socket_timeout: float = 2.0, **kw) -> redis_py.Redis:
        """A redis-py client with full rights (the password, if any, as the default user)."""
        if self.admin_user is not None:
            kw.setdefault("username", self.admin_user[0])
            kw.setdefault("password", self.admin_user[1])
        elif self.password is not None:
            kw.setdefault("password", self.password)
        kw.setdefault("client_name", CLIENT_NAME)
        if self.socket_path and self.port == 0:
            return redis_py.Redis(unix_socket_path=self.socket_path, db=db,
                                  socket_timeout=socket_timeout, **kw)
        return redis_py.Redis(host="127.0.0.1", port=self.port, db=db,
                              socket_timeout=socket_timeout, **kw)

    client = admin

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def redis_factory(tmp_path):
    """redis_factory(port=None, unixsocket=False, password=None, extra=(), start=True) ->
    RedisProc. Everything started is SIGCONTed and stopped by pid at teardown."""
    procs = []

    def make(start: bool = True, **kw) -> RedisProc:
        rp = RedisProc(tmp_path / f"redis{len(procs)}", **kw)
        procs.append(rp)
        if start:
            rp.start()
        return rp

    yield make
    for rp in procs:
        try:
            rp.resume()
        finally:
            rp.stop()


# ---------------------------------------------------------------------------------------------
# nginx snippets
# ---------------------------------------------------------------------------------------------

# Locations for most Redis tests. /whoami shows the session as it arrived.
REDIS_LOCATIONS = r"""
    location = /login  { session_set user $arg_u; return 200 "logged in\n"; }
    location = /login302 { session_set user $arg_u; return 302 /whoami; }
    location = /name   { session_set name $arg_v; return 200 "set\n"; }
    location = /pop    { session_unset name; return 200 "popped\n"; }
    location = /popuser { session_unset user; return 200 "popped\n"; }
    location = /clear  { session_clear; return 200 "cleared\n"; }
    location = /regen  { session_regenerate; return 200 "regenerated\n"; }
    location = /whoami {
        return 200 "status=$session_status user=$session_user name=$session_name id=$session_id\n";
    }
    location = /logout { session_destroy; return 200 "bye\n"; }
    location = /signout { session_logout /bye; }
    location = /private {
        if ($session_user = "") { return 401 "anonymous\n"; }
        return 200 "$session_user\n";
    }
"""


def redis_snippet(redis_directive: str, locations: str = REDIS_LOCATIONS, extra: str = "",
                  http_extra: str = "") -> str:
    """One server on {port} with the Redis store. redis_directive: the session_redis arguments,
    e.g. "127.0.0.1:{rport}" (placeholders are filled in by nginx_factory)."""
    return helpers.server_conf(
        locations,
        server_extra=f"session_store redis;\n    session_redis {redis_directive};\n    {extra}",
        http_extra=http_extra)


# ---------------------------------------------------------------------------------------------
# Cookies and keys
# ---------------------------------------------------------------------------------------------


def session_cookie_value(resp, name: str = "session") -> str:
    sc = helpers.cookie_named(resp, name)
    assert sc is not None, f"no Set-Cookie for {name}: {helpers.set_cookie_headers(resp)}"
    return helpers.cookie_value(sc)


def id_of(value: str) -> str:
    """The 32 lowercase hex chars of the session id inside an id (kind 3) cookie value."""
    env = helpers.decode_envelope(value)
    assert env.kind == helpers.KIND_ID, f"not an id envelope (kind {env.kind})"
    sid = env.signed_payload
    assert len(sid) == 16, f"session id is {len(sid)} bytes, not 16"
    return sid.hex()


def craft_id_cookie(secret, sid: bytes, name: str = "session", **kw) -> str:
    """A correctly signed id cookie for the 16-byte id sid (created/refreshed default: now)."""
    return helpers.sign_envelope(secret, name, sid, kind=helpers.KIND_ID, **kw)


def seed(r: redis_py.Redis, data: dict, secret, prefix: str = "session:", ttl: int = 3600,
         name: str = "session", **kw):
    """Stores data under a fresh random id; returns (cookie value, hex id, key)."""
    sid = os.urandom(16)
    key = prefix + sid.hex()
    r.set(key, helpers.session_json(data), ex=ttl)
    return craft_id_cookie(secret, sid, name, **kw), sid.hex(), key


def cookie_header(value: str, name: str = "session"):
    return {"Cookie": f"{name}={value}"}


def get_json(r: redis_py.Redis, key: str):
    v = r.get(key)
    return None if v is None else json.loads(v)


# ---------------------------------------------------------------------------------------------
# Redis-side counters
# ---------------------------------------------------------------------------------------------


def cmd_calls(r: redis_py.Redis, cmd: str) -> int:
    """calls= of INFO commandstats for cmd (0 if never called since CONFIG RESETSTAT)."""
    stats = r.info("commandstats")
    entry = stats.get(f"cmdstat_{cmd.lower()}")
    return int(entry["calls"]) if entry else 0


def other_clients(r: redis_py.Redis) -> list:
    """CLIENT LIST entries of connections that are not ours (ours are named CLIENT_NAME)."""
    return [c for c in r.client_list() if c.get("name") != CLIENT_NAME]


def worker_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def timed(fn: Callable):
    t0 = time.monotonic()
    v = fn()
    return v, time.monotonic() - t0
