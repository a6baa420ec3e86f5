"""Support code for the Redis store tests (t/test_redis.py, t/test_redis_faults.py).

The redis-server processes themselves (password, ACL users, unix socket, a port chosen before
the server starts, SIGSTOP/SIGCONT, SIGKILL and restart on the same port) are conftest.py's
`RedisServer`, handed out by the `redis_factory` and `redis_server` fixtures.

Here: Redis-flavoured nginx snippets, the session id inside a cookie, crafting an id cookie
for a record seeded directly into Redis, INFO commandstats / CLIENT LIST counters.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Callable

import redis as redis_py

import helpers
from conftest import REDIS_CLIENT_NAME

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
         name: str = "session", v1: bool = False, **kw):
    """Stores data under a fresh random id - a v2 record (a hash of JSON values) as nginx writes
    it, or with v1=True the v1 format (one JSON string) - and returns (cookie value, hex id,
    key)."""
    sid = os.urandom(16)
    key = prefix + sid.hex()
    if v1:
        r.set(key, helpers.session_json(data), ex=ttl)
    else:
        r.hset(key, mapping={k: json.dumps(v, separators=(",", ":")) for k, v in data.items()})
        r.expire(key, ttl)
    return craft_id_cookie(secret, sid, name, **kw), sid.hex(), key


def cookie_header(value: str, name: str = "session"):
    return {"Cookie": f"{name}={value}"}


def get_json(r: redis_py.Redis, key: str):
    """A session record as a dict: v2 (a hash of JSON values) or v1 (one JSON string)."""
    t = r.type(key)
    if t == b"hash":
        return {k.decode(): json.loads(v) for k, v in r.hgetall(key).items()}
    v = r.get(key) if t == b"string" else None
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
    """CLIENT LIST entries of connections that are not ours (ours are named
    REDIS_CLIENT_NAME)."""
    return [c for c in r.client_list() if c.get("name") != REDIS_CLIENT_NAME]


def worker_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def timed(fn: Callable):
    t0 = time.monotonic()
    v = fn()
    return v, time.monotonic() - t0


def statuses_during_reloads(srv, values, reloads: int = 5, clients: int = 3) -> list:
    """Three clients send /whoami with the session cookies `values` (a new connection each
    time: the first requests of the new workers) while nginx reloads `reloads` times; returns
    every status (or the repr of a client error)."""
    import requests as requests_lib
    results = []
    stop = threading.Event()

    def hammer(k):
        n = 0
        while not stop.is_set():
            value = values[(k + n) % len(values)]
            n += 1
            try:
                r = requests_lib.get(srv.url("/whoami"), headers={
                    **cookie_header(value), "Connection": "close"}, timeout=5)
                results.append(r.status_code)
            except requests_lib.RequestException as e:
                results.append(repr(e))

    threads = [threading.Thread(target=hammer, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    try:
        for _ in range(reloads):
            srv.reload()
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    return results
