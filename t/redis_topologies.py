"""Redis topologies for the integration tests: TLS material, Sentinel, Cluster.

The processes are conftest.py's RedisServer, in every role (TLS server, master, replica,
sentinel, cluster node): the topologies here are given conftest's redis_factory (`make`), so
every process is started by it, stopped by pid at teardown, and restarted on the same port by
RedisServer.start(). What is here: making the TLS material with `openssl`, the arguments that
put redis-server, redis-py and redis-cli on TLS, and the waits (all bounded, helpers.poll) that
say when a Sentinel set or a Cluster is usable, when a failover is over, when a reshard is done.

Fixtures (conftest.py): tls_material (session), redis_factory(tls=...), redis_sentinel_factory /
redis_sentinel, redis_cluster_factory / redis_cluster.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import helpers

# ---------------------------------------------------------------------------------------------
# TLS material
# ---------------------------------------------------------------------------------------------

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_dns]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[server_ip]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[other]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class RedisTLS:
    """How one redis-server speaks TLS, and how our clients (redis-py admin clients, redis-cli,
    and the server's own outgoing replication / cluster bus / sentinel links) connect to it.

    cert, key: the server's certificate; ca: the CA it verifies client certificates with;
    auth_clients: tls-auth-clients (yes | no | optional); trust: the CA our clients verify the
    server with (default ca); client_cert, client_key: the certificate our clients present."""
    cert: str
    key: str
    ca: str
    auth_clients: str = "no"
    trust: Optional[str] = None
    client_cert: Optional[str] = None
    client_key: Optional[str] = None

    @property
    def trusted_ca(self) -> str:
        return self.trust or self.ca

    def server_args(self) -> list:
        """redis-server arguments besides --tls-port (also right for sentinels: with
        tls-replication a sentinel speaks TLS to the data nodes and to other sentinels)."""
        a = ["--tls-cert-file", self.cert, "--tls-key-file", self.key,
             "--tls-ca-cert-file", self.ca, "--tls-auth-clients", self.auth_clients,
             "--tls-replication", "yes"]
        if self.client_cert:
            a += ["--tls-client-cert-file", self.client_cert,
                  "--tls-client-key-file", self.client_key]
        return a

    def client_kwargs(self) -> dict:
        """redis-py connection arguments (no host name check: our clients dial 127.0.0.1;
        pass ssl_check_hostname=True and a host to test names)."""
        kw = {"ssl": True, "ssl_ca_certs": self.trusted_ca, "ssl_cert_reqs": "required"}
        if self.client_cert:
            kw.update(ssl_certfile=self.client_cert, ssl_keyfile=self.client_key)
        return kw

    def cli_args(self) -> list:
        a = ["--tls", "--cacert", self.trusted_ca]
        if self.client_cert:
            a += ["--cert", self.client_cert, "--key", self.client_key]
        return a


@dataclass(frozen=True)
class TLSMaterial:
    """PEM files made by make_tls_material(). Every key is unencrypted EC P-256, every
    certificate valid for 2 days.

    ca, ca_key       the test CA
    dns_cert/key     server certificate: CN=localhost, SAN DNS:localhost only (no IP SAN)
    ip_cert/key      server certificate: SAN IP:127.0.0.1 only (no DNS name, CN not a name)
    other_ca         another CA, which signed
    other_cert/key   SAN DNS:localhost + IP:127.0.0.1, server and client use ("wrong CA")
    client_cert/key  client certificate (clientAuth) signed by the test CA, for mutual TLS
    """
    dir: str
    ca: str
    ca_key: str
    dns_cert: str
    dns_key: str
    ip_cert: str
    ip_key: str
    other_ca: str
    other_cert: str
    other_key: str
    client_cert: str
    client_key: str

    def redis(self, server: str = "dns", auth_clients: str = "no",
              client_cert: bool = True) -> RedisTLS:
        """A RedisTLS for redis_factory(tls=...): server "dns", "ip" or "other" (the
        certificate of the other CA; our clients then trust other_ca); client certificates are
        verified with the test CA; our clients present client_cert unless client_cert=False."""
        cert, key, trust = {"dns": (self.dns_cert, self.dns_key, None),
                            "ip": (self.ip_cert, self.ip_key, None),
                            "other": (self.other_cert, self.other_key, self.other_ca)}[server]
        return RedisTLS(cert, key, self.ca, auth_clients, trust,
                        self.client_cert if client_cert else None,
                        self.client_key if client_cert else None)


def _openssl(*args, cwd: Path):
    p = subprocess.run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{p.stderr}")


def make_tls_material(d: Path) -> TLSMaterial:
    """Makes a TLSMaterial in directory d with the openssl command line tool."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    cnf = d / "openssl.cnf"
    cnf.write_text(_OPENSSL_CNF)
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def ca(name: str, cn: str):
        _openssl("req", "-x509", *newkey, "-days", "2", "-subj", f"/CN={cn}",
                 "-config", str(cnf), "-extensions", "ca",
                 "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)

    def leaf(name: str, cn: str, section: str, issuer: str, serial: int):
        _openssl("req", "-new", *newkey, "-subj", f"/CN={cn}", "-config", str(cnf),
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem",
                 "-CAkey", f"{issuer}.key", "-set_serial", str(serial), "-days", "2",
                 "-extfile", str(cnf), "-extensions", section, "-out", f"{name}.pem", cwd=d)

    ca("ca", "ngx_http_session test CA")
    ca("other-ca", "ngx_http_session other CA")
    leaf("server-dns", "localhost", "server_dns", "ca", 1001)
    leaf("server-ip", "ip-only test server", "server_ip", "ca", 1002)
    leaf("other", "localhost", "other", "other-ca", 2001)
    leaf("client", "ngx_http_session test client", "client", "ca", 1003)
    f = lambda name: str(d / name)  # noqa: E731
    return TLSMaterial(str(d), f("ca.pem"), f("ca.key"), f("server-dns.pem"),
                       f("server-dns.key"), f("server-ip.pem"), f("server-ip.key"),
                       f("other-ca.pem"), f("other.pem"), f("other.key"), f("client.pem"),
                       f("client.key"))


# ---------------------------------------------------------------------------------------------
# Small reply helpers
# ---------------------------------------------------------------------------------------------


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def _pairs(flat) -> dict:
    """A flat [k1, v1, k2, v2 ...] reply (SENTINEL MASTER/REPLICAS entries) as a str dict."""
    flat = [_s(x) for x in flat]
    return dict(zip(flat[0::2], flat[1::2]))


def _info_fields(text) -> dict:
    """CLUSTER INFO's 'k:v' lines as a dict."""
    out = {}
    for line in _s(text).splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


class TopologyError(AssertionError):
    """A bounded wait ran out; the message says what was last seen."""


def _wait(what: str, fn: Callable, timeout: float, interval: float = 0.05):
    """helpers.poll for fn() -> (done, detail); raises TopologyError with the last detail."""
    done, detail = helpers.poll(fn, timeout, interval, until=lambda v: v[0])
    if not done:
        raise TopologyError(f"{what}: not within {timeout}s; last seen: {detail}")
    return detail


def _quiet(fn: Callable):
    """fn() -> (done, detail), with a redis-py error counted as not done yet."""
    import redis as redis_py

    def call():
        try:
            return fn()
        except (redis_py.exceptions.RedisError, OSError) as e:
            return False, f"{type(e).__name__}: {e}"
    return call


# ---------------------------------------------------------------------------------------------
# Sentinel
# ---------------------------------------------------------------------------------------------


class SentinelTopology:
    """A master, one replica (--replicaof) and `sentinels` sentinels (redis-server <conf>
    --sentinel, one dir each) that monitor the master as `name` with the given quorum. Every
    process is a RedisServer from make (conftest's redis_factory). tls: a RedisTLS for every
    process (data nodes and sentinels); password: data nodes' requirepass/masterauth (the
    sentinels get it as auth-pass); sentinel_password: the sentinels' requirepass (and
    sentinel-pass between them).

    .master, .replica: the RedisServers in those roles now (swapped by failover());
    .sentinels: the sentinel RedisServers; .addresses: "127.0.0.1:port" of each sentinel."""

    def __init__(self, make: Callable, *, name: str = "mymaster", tls: Optional[RedisTLS] = None,
                 password: Optional[str] = None, sentinel_password: Optional[str] = None,
                 sentinels: int = 3, quorum: int = 2, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 3000):
        self.name = name
        self.tls = tls
        self.password = password
        self.sentinel_password = sentinel_password
        # a full sync starts at once, not after the default 5 s wait for more replicas
        fast_sync = ["--repl-diskless-sync-delay", "0"]
        self.master = make(start=False, name="master", tls=tls, password=password,
                           extra=fast_sync)
        self.replica = make(start=False, name="replica", tls=tls, password=password,
                            replicaof=self.master.port, extra=fast_sync)
        conf = (f"sentinel monitor {name} 127.0.0.1 {self.master.port} {quorum}\n"
                f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
                f"sentinel failover-timeout {name} {failover_timeout_ms}\n"
                f"sentinel parallel-syncs {name} 1\n"
                "sentinel announce-ip 127.0.0.1\n")
        if password is not None:
            conf += f"sentinel auth-pass {name} {password}\n"
        if sentinel_password is not None:
            conf += f"sentinel sentinel-pass {sentinel_password}\n"
        self.sentinels = [make(start=False, name=f"sentinel{i}", tls=tls, sentinel=True,
                               conf=conf, password=sentinel_password)
                          for i in range(sentinels)]
        self.last_failover_seconds: Optional[float] = None

    @property
    def data_nodes(self) -> list:
        return [self.master, self.replica]

    @property
    def addresses(self) -> list:
        return [s.address for s in self.sentinels]

    def start(self, timeout: float = 20.0) -> "SentinelTopology":
        """Starts master, replica, sentinels; returns when wait_ready() holds."""
        for srv in self.data_nodes + self.sentinels:
            srv.start()
        self.wait_ready(timeout)
        return self

    # --- what the processes say ------------------------------------------------------------

    def sentinel_cmd(self, sentinel, *args):
        return sentinel.admin(socket_timeout=1.0).execute_command("SENTINEL", *args)

    def reported_master(self, sentinel) -> Optional[tuple]:
        """(ip, port) from SENTINEL get-master-addr-by-name on this sentinel."""
        r = self.sentinel_cmd(sentinel, "get-master-addr-by-name", self.name)
        return None if r is None else (_s(r[0]), int(r[1]))

    def master_state(self, sentinel) -> dict:
        return _pairs(self.sentinel_cmd(sentinel, "MASTER", self.name))

    def replica_states(self, sentinel) -> list:
        return [_pairs(x) for x in self.sentinel_cmd(sentinel, "REPLICAS", self.name)]

    def role(self, node) -> str:
        return _s(node.admin(socket_timeout=1.0).execute_command("ROLE")[0])

    def replica_in_sync(self, master, replica) -> tuple:
        """(done, detail): replica's link to master is up, not syncing, and master lists it
        as online."""
        ri = replica.admin(socket_timeout=1.0).info("replication")
        mi = master.admin(socket_timeout=1.0).info("replication")
        online = [v for k, v in mi.items() if k.startswith("slave") and isinstance(v, dict)
                  and int(v.get("port", 0)) == replica.port and v.get("state") == "online"]
        ok = (ri.get("role") == "slave" and int(ri.get("master_port", 0)) == master.port
              and ri.get("master_link_status") == "up"
              and int(ri.get("master_sync_in_progress", 1)) == 0 and bool(online))
        return ok, {"replica": {k: ri.get(k) for k in ("role", "master_port",
                                                      "master_link_status")},
                    "master_lists": online}

    # --- waits -----------------------------------------------------------------------------

    def wait_ready(self, timeout: float = 20.0):
        """Bounded: every sentinel names self.master as the master, sees it up, knows the
        other sentinels and self.replica (up, link ok), and the replica is in sync."""
        others = len(self.sentinels) - 1

        def check():
            ok, detail = self.replica_in_sync(self.master, self.replica)
            if not ok:
                return False, detail
            for s in self.sentinels:
                m = self.master_state(s)
                reps = self.replica_states(s)
                good = (int(m["port"]) == self.master.port and m["flags"] == "master"
                        and int(m["num-other-sentinels"]) == others
                        and any(int(r["port"]) == self.replica.port and r["flags"] == "slave"
                                and r.get("master-link-status") == "ok" for r in reps))
                if not good:
                    return False, {"sentinel": s.port, "master": m, "replicas": reps}
            return True, None

        _wait(f"sentinels ready for {self.name}", _quiet(check), timeout, 0.1)

    def wait_master(self, node, timeout: float = 30.0):
        """Bounded: every live sentinel reports node as the master, and node's ROLE is
        master."""
        def check():
            seen = {s.port: self.reported_master(s) for s in self.sentinels if s.alive()}
            role = self.role(node)
            return (role == "master" and
                    all(v == ("127.0.0.1", node.port) for v in seen.values()),
                    {"reported": seen, "role": role})

        _wait(f"sentinels report 127.0.0.1:{node.port} as master of {self.name}",
              _quiet(check), timeout, 0.05)

    # --- faults ----------------------------------------------------------------------------

    def failover(self, timeout: float = 30.0) -> float:
        """Kills the master (SIGKILL by pid) and waits (bounded) until every live sentinel
        reports the replica as the new master and it says so itself. Swaps .master and
        .replica (the old master is then dead); returns (and keeps in last_failover_seconds)
        the seconds from the kill to that point."""
        old, new = self.master, self.replica
        t0 = time.monotonic()
        old.kill()
        self.wait_master(new, timeout)
        self.last_failover_seconds = time.monotonic() - t0
        self.master, self.replica = new, old
        return self.last_failover_seconds

    def rejoin(self, timeout: float = 20.0):
        """Brings the dead old master (.replica after failover()) back on its port as a replica
        of the new master; waits (bounded) until it is in sync and every sentinel lists it as
        a replica that is up."""
        node = self.replica
        assert not node.alive(), "rejoin() is for the node failover() killed"
        node.replicaof = self.master.port
        node.start()

        def check():
            ok, detail = self.replica_in_sync(self.master, node)
            if not ok:
                return False, detail
            for s in self.sentinels:
                reps = self.replica_states(s)
                if not any(int(r["port"]) == node.port and r["flags"] == "slave"
                           for r in reps):
                    return False, {"sentinel": s.port, "replicas": reps}
            return True, None

        try:
            _wait(f"127.0.0.1:{node.port} back as a replica", _quiet(check), timeout, 0.1)
        except TopologyError as e:
            # (Rare: the restarted node was seen reporting role master. What it and the
            # sentinels logged about it says who made it one.)
            raise TopologyError(f"{e}\n{self.logs_about(node)}") from None

    def logs_about(self, node, lines: int = 25) -> str:
        """The tail of node's log and every sentinel's log lines that name its port."""
        def tail(path, keep=lambda line: True):
            try:
                text = path.read_text(errors="replace").splitlines()
            except OSError as e:
                return [f"({e})"]
            return [x for x in text if keep(x)][-lines:]
        out = [f"--- {node.log_path}"] + tail(node.log_path)
        for s in self.sentinels:
            out += [f"--- {s.log_path} (lines naming {node.port})"]
            out += tail(s.log_path, lambda x: str(node.port) in x)
        return "\n".join(out)

    # --- clients ---------------------------------------------------------------------------

    def client(self, **kw):
        """A redis.sentinel.Sentinel over all sentinels (TLS, passwords as configured);
        .master_for(name) / .discover_master(name) as in redis-py."""
        from redis.sentinel import Sentinel
        from conftest import REDIS_CLIENT_NAME   # here: conftest imports this module
        tls = self.tls.client_kwargs() if self.tls else {}
        skw = dict(tls, socket_timeout=1.0, client_name=REDIS_CLIENT_NAME)
        if self.sentinel_password is not None:
            skw["password"] = self.sentinel_password
        kw = dict(dict(tls, socket_timeout=2.0, client_name=REDIS_CLIENT_NAME), **kw)
        if self.password is not None:
            kw.setdefault("password", self.password)
        return Sentinel([("127.0.0.1", s.port) for s in self.sentinels], sentinel_kwargs=skw,
                        **kw)

    def master_client(self, **kw):
        """A redis-py client that follows the master through the sentinels."""
        return self.client(**kw).master_for(self.name)


# ---------------------------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------------------------

SLOTS = 16384


class ClusterTopology:
    """`masters` cluster nodes without replicas (--cluster-enabled, nodes.conf in each node's
    dir, --cluster-node-timeout node_timeout_ms), on ports whose bus port (+10000) is free too,
    joined by `redis-cli --cluster create`. tls: a RedisTLS for every node (client port and
    bus: tls-cluster yes); password: every node's requirepass/masterauth.

    .nodes: the RedisServers; .create_seconds: how long `start()` took from the first process
    start to cluster_state:ok everywhere."""

    def __init__(self, make: Callable, *, masters: int = 3, tls: Optional[RedisTLS] = None,
                 password: Optional[str] = None, node_timeout_ms: int = 2000):
        self.tls = tls
        self.password = password
        self.node_timeout_ms = node_timeout_ms
        ports: list = []
        for _ in range(masters):
            ports.append(helpers.free_cluster_port(ports))
        self.nodes = []
        for i, port in enumerate(ports):
            d_extra = ["--cluster-enabled", "yes", "--cluster-node-timeout",
                       str(node_timeout_ms)]
            if tls is not None:
                d_extra += ["--tls-cluster", "yes"]
            node = make(start=False, name=f"node{i}", port=port, tls=tls, password=password,
                        extra=d_extra)
            # an absolute path: the node keeps its identity and slots across restarts
            node.extra += ["--cluster-config-file", str(node.workdir / "nodes.conf")]
            self.nodes.append(node)
        self.create_seconds: Optional[float] = None

    @property
    def addresses(self) -> list:
        return [n.address for n in self.nodes]

    def start(self, timeout: float = 30.0) -> "ClusterTopology":
        t0 = time.monotonic()
        for n in self.nodes:
            n.start()
        p = self.nodes[0].cli("--cluster", "create", *self.addresses, "--cluster-replicas", "0",
                              "--cluster-yes", timeout=timeout)
        if p.returncode != 0:
            raise TopologyError(f"redis-cli --cluster create failed ({p.returncode}):\n"
                                f"{p.stdout[-3000:]}\n{p.stderr[-2000:]}")
        self.wait_ok(max(1.0, timeout - (time.monotonic() - t0)))
        self.create_seconds = time.monotonic() - t0
        return self

    # --- what the nodes say ----------------------------------------------------------------

    def node_id(self, node) -> str:
        return _s(node.admin(socket_timeout=1.0).execute_command("CLUSTER", "MYID"))

    def node_by_port(self, port: int):
        return next(n for n in self.nodes if n.port == port)

    def info(self, node) -> dict:
        return _info_fields(node.admin(socket_timeout=1.0).execute_command("CLUSTER", "INFO"))

    def slot_ranges(self, via=None) -> list:
        """[(first, last, port of the owner)] sorted, from CLUSTER SLOTS on via (default: the
        first live node)."""
        via = via or next(n for n in self.nodes if n.alive())
        r = via.admin(socket_timeout=1.0).execute_command("CLUSTER", "SLOTS")
        return sorted((int(e[0]), int(e[1]), int(e[2][1])) for e in r)

    def slots_of(self, node, via=None) -> set:
        return {s for a, b, port in self.slot_ranges(via) if port == node.port
                for s in range(a, b + 1)}

    def keyslot(self, key) -> int:
        """CRC16 slot of key, hash tags included (redis-py's copy of Redis's function)."""
        from redis.crc import key_slot
        return key_slot(key.encode() if isinstance(key, str) else key)

    def node_for_slot(self, slot: int):
        for a, b, port in self.slot_ranges():
            if a <= slot <= b:
                return self.node_by_port(port)
        raise KeyError(f"slot {slot} is not assigned")

    def node_for_key(self, key):
        return self.node_for_slot(self.keyslot(key))

    # --- waits -----------------------------------------------------------------------------

    def _state(self, nodes) -> tuple:
        maps = {}
        for n in nodes:
            i = self.info(n)
            if (i.get("cluster_state") != "ok" or int(i.get("cluster_known_nodes", 0))
                    != len(self.nodes) or int(i.get("cluster_slots_assigned", 0)) != SLOTS
                    or int(i.get("cluster_slots_fail", 0)) or int(i.get("cluster_slots_pfail", 0))):
                return False, {"node": n.port, "info": i}
            maps[n.port] = self.slot_ranges(n)
        if len({tuple(m) for m in maps.values()}) != 1:
            return False, {"slot maps differ": maps}
        return True, None

    def wait_ok(self, timeout: float = 20.0):
        """Bounded: every node says cluster_state:ok, knows every node, has no slot failing,
        and all nodes agree on CLUSTER SLOTS."""
        _wait("cluster_state:ok on every node", _quiet(lambda: self._state(self.nodes)),
              timeout, 0.1)

    # --- changes and faults ----------------------------------------------------------------

    def reshard(self, src, dst, slots: int, timeout: float = 60.0) -> float:
        """`redis-cli --cluster reshard` of `slots` slots (and their keys) from src to dst,
        then wait_ok(); returns the seconds it took."""
        t0 = time.monotonic()
        p = self.nodes[0].cli("--cluster", "reshard", self.nodes[0].address,
                              "--cluster-from", self.node_id(src),
                              "--cluster-to", self.node_id(dst),
                              "--cluster-slots", slots, "--cluster-yes", timeout=timeout)
        if p.returncode != 0:
            raise TopologyError(f"redis-cli --cluster reshard failed ({p.returncode}):\n"
                                f"{p.stdout[-3000:]}\n{p.stderr[-2000:]}")
        self.wait_ok(max(1.0, timeout - (time.monotonic() - t0)))
        return time.monotonic() - t0

    def kill(self, node, timeout: float = 20.0) -> float:
        """SIGKILL by pid; waits (bounded) until every other node says cluster_state:fail (the
        node's slots are uncovered). Returns the seconds that took."""
        t0 = time.monotonic()
        node.kill()
        others = [n for n in self.nodes if n is not node]

        def check():
            states = {n.port: self.info(n).get("cluster_state") for n in others}
            return all(v == "fail" for v in states.values()), states

        _wait(f"cluster notices 127.0.0.1:{node.port} is down", _quiet(check), timeout, 0.1)
        return time.monotonic() - t0

    def restart(self, node, timeout: float = 30.0) -> float:
        """Starts a killed node again on its port with its nodes.conf (same id, same slots, no
        data); waits (bounded) until wait_ok(). Returns the seconds that took."""
        t0 = time.monotonic()
        node.start()
        self.wait_ok(timeout)
        return time.monotonic() - t0

    # --- clients ---------------------------------------------------------------------------

    def client(self, **kw):
        """redis-py's RedisCluster seeded with the first live node (TLS, password as
        configured): follows MOVED/ASK."""
        from redis.cluster import RedisCluster
        from conftest import REDIS_CLIENT_NAME   # here: conftest imports this module
        seed = next(n for n in self.nodes if n.alive())
        kw.setdefault("socket_timeout", 2.0)
        kw.setdefault("client_name", REDIS_CLIENT_NAME)
        if self.tls is not None:
            for k, v in self.tls.client_kwargs().items():
                kw.setdefault(k, v)
        if self.password is not None:
            kw.setdefault("password", self.password)
        return RedisCluster(host="127.0.0.1", port=seed.port, **kw)
