"""Review: a connection whose handshake fails after a first good answer resets the reconnect
backoff, so nginx reconnects every 50-100 ms forever and logs two lines per attempt.

node.cpp dispatch(): the first non-error reply on a connection (AUTH's +OK, or the ROLE array
of a replica) sets node->healthy, backoff = 50 ms and clears failure_logged (logging "connected
again"); the handshake's next command (SELECT refused, ROLE not master) then closes the
connection, which is retried 50 ms later. Expected (DESIGN "Redis in production", backoff to at
most 1 s, outage lines at most about one a second): a few attempts a second at most."""

import time

import pytest

from redis_support import redis_snippet

LOC = r"""
    location = /whoami { return 200 "status=$session_status user=$session_user\n"; }
"""


def test_select_refused_after_auth_reconnect_storm(nginx, redis_factory, tmp_path):
    rd = redis_factory(password="sekrit-pass")
    pw = tmp_path / "pw"
    pw.write_text("sekrit-pass\n")
    # db=20 passes nginx -t (any 0..1000000) but redis-server has 16 databases by default:
    # AUTH answers +OK, SELECT answers -ERR DB index is out of range.
    srv = nginx(redis_snippet(f"127.0.0.1:{{rport}} db=20 password_file={pw}", LOC),
                rport=rd.port)
    admin = rd.admin()
    before = int(admin.info("stats")["total_connections_received"])
    mark = srv.log_mark()
    time.sleep(3.0)
    after = int(admin.info("stats")["total_connections_received"])
    attempts = after - before
    lines = [l for l in srv.log_since(mark) if "session redis" in l]
    print(f"{attempts} connections in 3 s, {len(lines)} log lines; first: {lines[:4]}")
    assert attempts <= 10, f"reconnect storm: {attempts} connections in 3 s"
    assert len(lines) <= 6, f"log flood: {len(lines)} lines in 3 s"


def test_sentinel_names_a_replica_reconnect_storm(nginx, redis_factory):
    """A sentinel that (still, or wrongly) names a replica as master: ROLE answers a replica
    array - a good answer - so the backoff is reset each time and the master connection is
    reopened every ~50 ms, with an unthrottled "not a master (ROLE)" error line each time."""
    import sys
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from fake_redis import FakeRedis, array, bulk, serve_commands

    master = redis_factory()
    replica = redis_factory(replicaof=master.port)

    def answer(args, fake, state):
        cmd = args[0].upper()
        if cmd == b"SENTINEL":
            return array([bulk("127.0.0.1"), bulk(str(replica.port))])
        if cmd == b"SUBSCRIBE":
            return array([bulk("subscribe"), bulk(args[1]), b":1\r\n"])
        return b"+OK\r\n"

    sentinel = FakeRedis(serve_commands(answer))
    try:
        srv = nginx(redis_snippet(f"sentinel=mymaster {sentinel.address}", LOC))
        time.sleep(0.5)
        admin = replica.admin()
        before = int(admin.info("stats")["total_connections_received"])
        mark = srv.log_mark()
        time.sleep(3.0)
        after = int(admin.info("stats")["total_connections_received"])
        attempts = after - before
        lines = [l for l in srv.log_since(mark) if "not a master" in l]
        print(f"{attempts} connections to the replica in 3 s, {len(lines)} 'not a master' lines")
        assert attempts <= 10, f"reconnect storm: {attempts} connections in 3 s"
        assert len(lines) <= 6, f"log flood: {len(lines)} lines in 3 s"
    finally:
        sentinel.stop()


def test_sentinel_master_user_without_role_permission(nginx, redis_factory, tmp_path):
    """A least-privilege ACL user (session keys and commands, no ROLE): every connect to the
    master is refused by our own ROLE check with the misleading "not a master (ROLE)" line, AUTH's
    +OK resets the backoff, and Sentinel mode never serves a request. README does not say that
    ROLE must be allowed."""
    import sys
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from fake_redis import FakeRedis, array, bulk, serve_commands

    master = redis_factory(extra=["--user", "default", "off",
                                  "--user", "admin", "on", ">adminpw", "~*", "&*", "+@all",
                                  "--user", "ngx", "on", ">ngxpw", "~session:*", "+@all",
                                  "-role"],
                           admin_user=("admin", "adminpw"))
    pw = tmp_path / "pw"
    pw.write_text("ngxpw\n")

    def answer(args, fake, state):
        cmd = args[0].upper()
        if cmd == b"SENTINEL":
            return array([bulk("127.0.0.1"), bulk(str(master.port))])
        if cmd == b"SUBSCRIBE":
            return array([bulk("subscribe"), bulk(args[1]), b":1\r\n"])
        return b"+OK\r\n"

    sentinel = FakeRedis(serve_commands(answer))
    try:
        srv = nginx(redis_snippet(f"sentinel=mymaster {sentinel.address} username=ngx "
                                  f"password_file={pw}", LOC))
        time.sleep(0.5)
        admin = master.admin()
        before = int(admin.info("stats")["total_connections_received"])
        time.sleep(2.0)
        attempts = int(admin.info("stats")["total_connections_received"]) - before
        r = srv.get("/whoami", headers={"Cookie": "x=1"})
        print(f"{attempts} connections in 2 s; not-a-master lines: "
              f"{srv.count_log('not a master')}")
        assert attempts <= 6, f"reconnect storm: {attempts} connections in 2 s"
    finally:
        sentinel.stop()
