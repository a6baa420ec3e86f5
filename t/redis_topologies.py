"""Redis topologies for the integration tests: TLS material (Sentinel and Cluster to come).

The processes are conftest.py's RedisServer, in every role (TLS server, master, replica,
sentinel, cluster node): the topologies here are given conftest's redis_factory (`make`), so
every process is started by it, stopped by pid at teardown, and restarted on the same port by
RedisServer.start(). What is here: making the TLS material with `openssl`, the arguments that
put redis-server, redis-py and redis-cli on TLS, and the waits (all bounded, helpers.poll) that
say when a Sentinel set or a Cluster is usable, when a failover is over, when a reshard is done.

Fixtures (conftest.py): tls_material (session), redis_factory(tls=...).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

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
