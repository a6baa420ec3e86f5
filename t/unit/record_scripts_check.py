#!/usr/bin/python3
"""The v2 record commands (src/core/record.h) against a real redis-server.

    /usr/bin/python3 t/unit/record_scripts_check.py build/unit/session_unit_tests
    make record-scripts-check

The commands are exactly what the C++ builds: the unit-test binary's RecordScripts.Dump test
writes them (one line per command, arguments in hex), and its RecordScripts.ReadBack test
classifies the real replies collected here with record_read. Each check runs them on real keys
of a redis-server started on 127.0.0.1 at a free port in a temporary directory, and says what
it expected. Exit status 1 if any check failed.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import redis

REDIS_SERVER = "/usr/bin/redis-server"

failures = []


def check(what, cond, detail=""):
    if cond:
        print(f"ok   - {what}")
    else:
        print(f"FAIL - {what}" + (f": {detail}" if detail else ""))
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


class RedisServer:
    def __init__(self, tmp):
        self.port = free_port()
        self.log = os.path.join(tmp, "redis.log")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", tmp,
             "--save", "", "--appendonly", "no", "--logfile", self.log],
            stdin=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                return self.client().ping()
            except redis.exceptions.ConnectionError:
                return False

        wait_until(up, 10, "redis-server to answer PING")

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5,
                           socket_connect_timeout=5)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def run_unit(unit_bin, test, env):
    out = subprocess.run([unit_bin, f"--gtest_filter=RecordScripts.{test}"],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        sys.exit(f"{unit_bin} RecordScripts.{test} failed:\n{out.stdout}{out.stderr}")


def dump_commands(unit_bin, tmp):
    path = os.path.join(tmp, "commands.txt")
    run_unit(unit_bin, "Dump", {"RECORD_SCRIPTS_DUMP": path})
    cmds = {}
    with open(path) as f:
        for line in f:
            name, *args = line.split()
            cmds[name] = [bytes.fromhex(a) for a in args]
    return cmds


def read_back(unit_bin, tmp, replies):
    """replies: [(name, list of bytes) | (name, ResponseError)] -> {name: (outcome, data)}"""
    src = os.path.join(tmp, "replies.txt")
    dst = os.path.join(tmp, "read.txt")
    with open(src, "w") as f:
        for name, reply in replies:
            if isinstance(reply, Exception):
                f.write(f"{name} E {str(reply).encode().hex()}\n")
            else:
                f.write(" ".join([name, "A"] + [b.hex() for b in reply]) + "\n")
    run_unit(unit_bin, "ReadBack", {"RECORD_SCRIPTS_READ": src, "RECORD_SCRIPTS_READ_OUT": dst})
    result = {}
    with open(dst) as f:
        for line in f:
            name, outcome, data = line.split()
            result[name] = (outcome, json.loads(bytes.fromhex(data)))
    return result


def key_of(cmd):
    return cmd[3] if cmd[0] == b"EVAL" else cmd[1]


def hash_values(r, key):
    """HGETALL key with every value parsed as JSON (field values are JSON text)."""
    return {k.decode(): json.loads(v) for k, v in r.hgetall(key).items()}


def flat_hgetall(r, key):
    out = []
    for k, v in r.hgetall(key).items():
        out += [k, v]
    return out


CREATED = {
    "user": "alice",
    "n": 3,
    "obj": {"a": [1, None, "x"]},
    "tricky": "q\"b\\ \x01\n \u00e9 \U0001F600 \ufffd",  # an invalid UTF-8 byte became U+FFFD
    "nullish": "null",
}
V1_TEXT = '{"user":"erin","n":7,"o":{"k":[true]},"s":"\\u00e9\\n"}'


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: record_scripts_check.py <unit test binary>")
    unit_bin = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="record-scripts-") as tmp:
        cmds = dump_commands(unit_bin, tmp)
        server = RedisServer(tmp)
        try:
            run_checks(server, cmds, unit_bin, tmp)
        finally:
            server.stop()
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


def run_checks(server, cmds, unit_bin, tmp):
    r = server.client()
    run = lambda name: r.execute_command(*cmds[name])  # noqa: E731
    a = key_of(cmds["create"])
    v1 = key_of(cmds["migrate"])
    replies = []

    def fresh():
        r.delete(a)
        check("fresh create answers 1", run("create") == 1)

    # --- reads
    check("HGETALL of a missing key is an empty hash", run("read") == [])
    replies.append(("missing", []))
    check("GETRANGE of a missing key is empty", run("read_v1") == b"")

    # --- create
    check("create on a missing key answers 1", run("create") == 1)
    check("create wrote every key as JSON text", hash_values(r, a) == CREATED,
          repr(r.hgetall(a)))
    raw = r.hgetall(a)
    check("string values are JSON strings, others JSON text",
          raw[b"user"] == b'"alice"' and raw[b"n"] == b"3" and raw[b"nullish"] == b'"null"',
          repr(raw))
    check("create set the TTL", 90 <= r.ttl(a) <= 100, r.ttl(a))
    replies.append(("created", flat_hgetall(r, a)))
    check("create on an existing hash answers 0", run("create") == 0)
    check("... and leaves it as it was", hash_values(r, a) == CREATED)
    r.delete(a)
    r.set(a, "v1 record", ex=1000)
    check("create on an existing string answers 0", run("create") == 0)
    check("... and leaves it as it was", r.get(a) == b"v1 record" and r.ttl(a) > 900)

    # --- reads of the other type
    try:
        run("read")
        check("HGETALL of a v1 string record is WRONGTYPE", False, "no error")
    except redis.exceptions.ResponseError as e:
        check("HGETALL of a v1 string record is WRONGTYPE", str(e).startswith("WRONGTYPE"), e)
        replies.append(("wrongtype", e))
    check("GETRANGE reads the v1 string record", run("read_v1") == b"v1 record")
    fresh()
    try:
        run("read_v1")
        check("GETRANGE of a hash is WRONGTYPE", False, "no error")
    except redis.exceptions.ResponseError as e:
        check("GETRANGE of a hash is WRONGTYPE", str(e).startswith("WRONGTYPE"), e)

    # --- update
    fresh()
    check("update of a hash answers 1", run("update") == 1)
    want = dict(CREATED, user="carol", list=[1, 2])
    del want["n"]
    check("update set, replaced and removed keys, left the others",
          hash_values(r, a) == want, repr(hash_values(r, a)))
    check("update set the TTL", 190 <= r.ttl(a) <= 200, r.ttl(a))
    replies.append(("updated", flat_hgetall(r, a)))

    r.delete(a)
    check("update of a missing key answers 0 (logout is final)", run("update") == 0)
    check("... and does not re-create it", r.exists(a) == 0)
    r.set(a, "v1 record", ex=1000)
    check("update of a v1 string answers 0", run("update") == 0)
    check("... and leaves it as it was", r.get(a) == b"v1 record" and r.ttl(a) > 900)
    r.delete(a)
    r.rpush(a, "x")
    check("update of a list answers 0", run("update") == 0)
    check("... and leaves it as it was", r.type(a) == b"list" and r.lrange(a, 0, -1) == [b"x"])

    fresh()
    check("update with clear answers 1", run("update_clear") == 1)
    check("clear removed every key, then set the new one", hash_values(r, a) == {"user": "dave"},
          repr(hash_values(r, a)))
    check("clear kept a TTL", 40 <= r.ttl(a) <= 50, r.ttl(a))
    fresh()
    check("update with only clear answers 1", run("update_clear_only") == 1)
    check("... and leaves no key (Redis keeps no empty hash)", r.exists(a) == 0)
    fresh()
    check("update without changes answers 1", run("update_nothing") == 1)
    check("... renews the TTL only", 60 <= r.ttl(a) <= 70 and hash_values(r, a) == CREATED,
          r.ttl(a))
    r.delete(a)
    check("update without changes of a missing key answers 0", run("update_nothing") == 0)
    check("... and does not create it", r.exists(a) == 0)

    # --- concurrent requests that change different keys both keep their change
    fresh()
    rounds = 300
    start = threading.Barrier(2)
    results = {}

    def worker(name):
        c = server.client()
        start.wait(timeout=10)
        results[name] = [c.execute_command(*cmds[name]) for _ in range(rounds)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("update_x", "update_y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    check("concurrent updates all answered 1",
          all(results.get(n) == [1] * rounds for n in ("update_x", "update_y")))
    check("concurrent updates of different keys both survive",
          hash_values(r, a) == dict(CREATED, x="from request x", y=2), repr(hash_values(r, a)))
    r.delete(a)
    check("update_x after a logout answers 0", run("update_x") == 0 and r.exists(a) == 0)

    # --- claim
    fresh()
    check("touch of a record answers 1", run("touch") == 1)
    check("... and sets its TTL", 80 <= r.ttl(a) <= 90 and hash_values(r, a) == CREATED, r.ttl(a))
    check("claim of an existing record answers 1", run("claim") == 1)
    check("... and leaves the marker, not the session",
          r.type(a) == b"string" and r.get(a) == b"#session-regenerated", repr(r.get(a)))
    check("... for the rest of the record's TTL", 80000 <= r.pttl(a) <= 90000, r.pttl(a))
    check("update through the old id answers -1 (moved)", run("update_moved") == -1)
    check("... and writes nothing", r.get(a) == b"#session-regenerated")
    check("touch through the old id answers -1 (moved)", run("touch_moved") == -1)
    check("... and leaves the marker's TTL", r.pttl(a) <= 90000, r.pttl(a))
    check("a v1 read of the old id reads the marker", run("read_marker") == b"#session-regenerated")
    check("destroy of the marker answers -1 and keeps it", run("destroy") == -1 and
          r.get(a) == b"#session-regenerated")
    check("claim of a marker answers -1 (moved already) and keeps it",
          run("claim_again") == -1 and r.get(a) == b"#session-regenerated")
    r.delete(a)
    fresh()
    check("claim with a field fewer than the record answers -2", run("claim_fewer") == -2)
    check("... and leaves the record", hash_values(r, a) == CREATED)
    check("claim with another value answers -2", run("claim_other") == -2)
    check("... and leaves the record", hash_values(r, a) == CREATED)
    r.hset(a, "extra", '"x"')
    check("claim of a record with a field more answers -2", run("claim") == -2)
    check("... and leaves it", r.hget(a, "extra") == b'"x"')
    check("destroy of a record answers 1", run("destroy") == 1 and r.exists(a) == 0)
    check("destroy of a missing record answers 0", run("destroy") == 0)
    r.set(a, "v1 record", ex=1000)
    check("claim of a v1 string answers -2 (not what was loaded)", run("claim") == -2 and
          r.get(a) == b"v1 record")
    check("destroy of a v1 string deletes it", run("destroy") == 1 and r.exists(a) == 0)
    check("claim of a missing record answers 0", run("claim") == 0 and r.exists(a) == 0)
    check("touch of a missing record answers 0", run("touch_gone") == 0)
    fresh()
    r.persist(a)
    check("claim of a record without TTL answers 1", run("claim") == 1)
    check("... and its marker lasts at most an hour", 3590000 <= r.pttl(a) <= 3600000, r.pttl(a))
    r.delete(a)
    r.set(a, "v1 record", ex=1000)
    check("touch of a v1 string record answers 1 (EXPIRE takes any type)", run("touch") == 1 and
          r.ttl(a) <= 90)
    r.delete(a)

    # --- migrate
    r.delete(v1)
    r.set(v1, V1_TEXT, px=500000)
    check("migrate of the v1 record answers 1", run("migrate") == 1)
    check("... into a hash", r.type(v1) == b"hash")
    check("... with the same data", hash_values(r, v1) == json.loads(V1_TEXT),
          repr(r.hgetall(v1)))
    check("... and its TTL", 490000 < r.pttl(v1) <= 500000, r.pttl(v1))
    replies.append(("migrated", flat_hgetall(r, v1)))
    check("migrate of an already converted record answers 0", run("migrate") == 0)
    check("... and leaves it as it was", hash_values(r, v1) == json.loads(V1_TEXT))
    r.delete(v1)
    other = V1_TEXT.replace("erin", "mallory")
    r.set(v1, other, ex=1000)
    check("migrate of a changed v1 record answers 0", run("migrate") == 0)
    check("... and leaves it as it was", r.get(v1) == other.encode() and r.ttl(v1) > 900)
    r.delete(v1)
    r.set(v1, V1_TEXT)
    check("migrate of a v1 record without TTL answers 1", run("migrate") == 1)
    check("... and it keeps no TTL", r.pttl(v1) == -1 and hash_values(r, v1) == json.loads(V1_TEXT))
    r.delete(v1)
    check("migrate of a missing record answers 0", run("migrate") == 0 and r.exists(v1) == 0)
    r.rpush(v1, V1_TEXT)
    check("migrate of a list answers 0", run("migrate") == 0 and r.type(v1) == b"list")
    r.delete(v1)

    # --- at maxmemory: Redis refuses a script whose first write may grow memory (HSET) before
    # it wrote anything; one whose first write cannot (DEL, HDEL, EXPIRE) runs to the end.
    fresh()
    r.set(v1, V1_TEXT, ex=1000)
    r.config_set("maxmemory", "1")
    try:
        try:
            run("update")
            check("update (sets a key) at OOM is refused", False, "no error")
        except redis.exceptions.ResponseError as e:
            check("update (sets a key) at OOM is refused", str(e).startswith("OOM"), e)
            check("... and wrote nothing", hash_values(r, a) == CREATED and r.ttl(a) > 90)
        check("update without changes (EXPIRE) still works at OOM",
              run("update_nothing") == 1 and 60 <= r.ttl(a) <= 70)
        check("claim (DEL first) still works at OOM",
              run("claim") == 1 and r.get(a) == b"#session-regenerated")
        r.delete(a)
        r.config_set("maxmemory", "0")
        fresh()
        r.config_set("maxmemory", "1")
        check("update with clear (DEL first) runs to the end at OOM",
              run("update_clear") == 1 and hash_values(r, a) == {"user": "dave"})
        r.delete(a)
        try:
            run("create")
            check("create at OOM is refused", False, "no error")
        except redis.exceptions.ResponseError as e:
            check("create at OOM is refused", str(e).startswith("OOM"), e)
            check("... and wrote nothing", r.exists(a) == 0)
        try:
            run("migrate")
            check("migrate (DEL first) runs to the end at OOM", r.type(v1) == b"hash" and
                  hash_values(r, v1) == json.loads(V1_TEXT))
        except redis.exceptions.ResponseError as e:
            check("migrate (DEL first) runs to the end at OOM", False, e)
        r.delete(v1)
    finally:
        r.config_set("maxmemory", "0")

    # --- the real replies, read back by record_read
    got = read_back(unit_bin, tmp, replies)
    check("record_read: HGETALL of a missing key is Missing", got["missing"][0] == "Missing")
    check("record_read: WRONGTYPE is V1", got["wrongtype"][0] == "V1")
    check("record_read: the created hash is the created data",
          got["created"] == ("Found", CREATED), repr(got["created"]))
    want = dict(CREATED, user="carol", list=[1, 2])
    del want["n"]
    check("record_read: the updated hash", got["updated"] == ("Found", want), repr(got["updated"]))
    check("record_read: the migrated hash is the v1 data",
          got["migrated"] == ("Found", json.loads(V1_TEXT)), repr(got["migrated"]))


if __name__ == "__main__":
    sys.exit(main())
