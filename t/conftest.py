"""pytest harness for ngx_http_session_module: real nginx, real redis-server, loopback only.

Run:  /usr/bin/python3 -m pytest -q t

Environment:
  NGINX_BIN            nginx binary with the module compiled in (default <repo>/build/sbin/nginx)
  SESSION_ALLOW_SKIP=1 skip (instead of fail) when the binary / dynamic module is missing

Rendered prefixes (nginx.conf, error.log, access.log, stderr.txt) stay under pytest's tmp_path
(/tmp/pytest-of-$USER/pytest-N/<test>/nginxK) for post-mortems.

Each test renders a full nginx.conf in its own prefix from an http-level snippet, picks free
loopback ports at run time, starts `nginx -p prefix -c conf` with Popen (daemon off, master
process on), stops it by pid (SIGQUIT, then SIGKILL), and fails if error.log holds [alert],
[crit] or [emerg] lines. redis-server likewise: RedisServer (fixtures redis_factory and
redis_server) on a run-time loopback port or unix socket, stopped by pid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import helpers  # noqa: E402
import redis_topologies  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NGINX_BIN = Path(os.environ.get("NGINX_BIN") or REPO / "build" / "sbin" / "nginx")
DYNAMIC_MODULE = REPO / "build" / "modules" / "ngx_http_session_module.so"
DEBIAN_NGINX = Path("/usr/sbin/nginx")
# Bounds on the worker's RSS cannot hold under AddressSanitizer (its quarantine keeps freed
# memory, its shadow memory grows with the heap); scripts/asan-build.sh --pytest sets
# ASAN_OPTIONS. Those tests run in `make test`, against the normal build.
skip_under_asan = pytest.mark.skipif(
    "ASAN_OPTIONS" in os.environ, reason="an RSS bound: AddressSanitizer inflates the heap")
ALLOW_SKIP = os.environ.get("SESSION_ALLOW_SKIP") == "1"

BAD_LOG_LEVELS = ("[alert]", "[crit]", "[emerg]")
START_TIMEOUT = 5.0
STOP_TIMEOUT = 10.0


def pytest_configure(config):
    # https to the self-signed test certificate is intended
    config.addinivalue_line("filterwarnings",
                            "ignore::urllib3.exceptions.InsecureRequestWarning")


def missing(what: str):
    """A prerequisite is absent: fail (the default) or skip with SESSION_ALLOW_SKIP=1."""
    msg = f"{what} (set SESSION_ALLOW_SKIP=1 to skip instead of failing)"
    if ALLOW_SKIP:
        pytest.skip(msg)
    pytest.fail(msg, pytrace=False)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

CONF_TEMPLATE = """\
# rendered by t/conftest.py
{load_module}{user}daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log {log_level};
{main}
events {{
    worker_connections 1024;
}}

http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body_temp;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;

{snippet}
}}
"""

LISTEN_RE = re.compile(r"^\s*listen\s+127\.0\.0\.1:(\d+)", re.M)
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(text: str, values: dict) -> str:
    """Replaces {name} for the names in values only: nginx's own braces and ${var} stay."""
    return PLACEHOLDER_RE.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values
                              else m.group(0), text)


class Prefix:
    """A prefix directory with a rendered nginx.conf, a secret file and free ports."""

    def __init__(self, path: Path, snippet: str, *, workers=1, log_level="info", main="",
                 load_module: Optional[str] = None, secrets=None, files=None, ports=3,
                 placeholders=None):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        (path / "logs").mkdir(exist_ok=True)   # compiled-in default error log before the conf
        (path / "html").mkdir(exist_ok=True)
        self.ports = [helpers.free_port() for _ in range(ports)]
        self.secret_file = path / "secrets.txt"
        if isinstance(secrets, (bytes, bytearray)):
            self.secrets = helpers.write_secret_file(self.secret_file, raw=bytes(secrets))
        else:
            self.secrets = helpers.write_secret_file(self.secret_file, secrets)
        self.values = {"prefix": str(path), "secret_file": str(self.secret_file)}
        for i, p in enumerate(self.ports):
            self.values["port" if i == 0 else f"port{i + 1}"] = p
        self.values.update(placeholders or {})
        for rel, content in (files or {}).items():
            f = path / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                f.write_bytes(content)
            else:
                f.write_text(substitute(content, self.values))
        self.workers = workers
        self.log_level = log_level
        self.main = main
        self.load_module = load_module
        self.conf = path / "nginx.conf"
        self.render(snippet)

    def render(self, snippet: str):
        self.snippet = snippet
        text = CONF_TEMPLATE.format(
            load_module=f"load_module {self.load_module};\n" if self.load_module else "",
            # As root, workers would run as nobody and could not read pytest's 0700 tmp dirs.
            user="user root;\n" if os.geteuid() == 0 else "",
            workers=self.workers, prefix=self.path, log_level=self.log_level,
            main=substitute(self.main, self.values),
            snippet=substitute(snippet, self.values))
        self.conf.write_text(text)
        return text

    def write_conf(self, text: str):
        """A complete nginx.conf written as it is instead of a rendered snippet (e.g. a shipped
        example with its ports moved to self.ports); its error_log must be {prefix}/error.log."""
        self.snippet = None
        self.conf.write_text(text)

    @property
    def port(self):
        return self.ports[0]

    @property
    def port2(self):
        return self.ports[1]

    @property
    def port3(self):
        return self.ports[2]

    @property
    def error_log(self) -> Path:
        return self.path / "error.log"


# ---------------------------------------------------------------------------------------------
# A running nginx
# ---------------------------------------------------------------------------------------------


def _ppid(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("latin-1")
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen, sig: int, timeout: float = STOP_TIMEOUT):
    """Stops a child of ours by its pid: sig, then SIGKILL if it has not exited within
    timeout seconds. Nothing is done for a process that has exited already."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)


class Nginx(Prefix):
    def __init__(self, binary: Path, path: Path, snippet: str, **kw):
        super().__init__(path, snippet, **kw)
        self.binary = Path(binary)
        self.proc: Optional[subprocess.Popen] = None
        self.allowed_bad_log = []   # regexes excusing [alert]/[crit]/[emerg] lines a test expects
        self._sessions = []

    # --- process control -----------------------------------------------------------------

    def start(self):
        self._stdout = open(self.path / "stdout.txt", "wb")
        self._stderr = open(self.path / "stderr.txt", "wb")
        self.proc = subprocess.Popen(
            [str(self.binary), "-p", str(self.path) + "/", "-c", str(self.conf)],
            stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr)
        rendered = self.conf.read_text()
        wait_ports = sorted({int(p) for p in LISTEN_RE.findall(rendered)})
        for p in wait_ports:
            if not helpers.wait_port(p, START_TIMEOUT, lambda: self.proc.poll() is None):
                self.stop()
                pytest.fail(f"nginx did not start listening on 127.0.0.1:{p}\n"
                            f"--- nginx.conf ---\n{self.conf.read_text()}\n"
                            f"--- stderr ---\n{self.stderr()}\n"
                            f"--- error.log ---\n{self.log_text()}", pytrace=False)
        # The master listens before it forks: tests that read worker pids right away (or count
        # them) find every worker running, within the start timeout.
        if isinstance(self.workers, int) and "master_process off" not in rendered:
            helpers.poll(lambda: len(self.worker_pids()) >= self.workers, START_TIMEOUT)
        return self

    def stop(self):
        if self.proc is None:
            return
        for s in self._sessions:
            s.close()
        children = self.children() if self.proc.poll() is None else set()
        stop_process(self.proc, signal.SIGQUIT)
        # A worker that outlived its master (the master was killed after STOP_TIMEOUT: a worker
        # stuck in a loop) must not go on eating a core for the rest of the run: by its pid.
        for pid in children:
            if _ppid(pid) in (None, self.proc.pid):
                continue
            if _cmdline(pid).startswith("nginx: "):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self._stdout.close()
        self._stderr.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def children(self) -> set:
        """Every process of this nginx's master (workers, cache and helper processes)."""
        return {int(d) for d in os.listdir("/proc") if d.isdigit() and _ppid(int(d)) == self.pid}

    def worker_pids(self) -> set:
        out = set()
        for d in os.listdir("/proc"):
            if d.isdigit() and _ppid(int(d)) == self.pid and "worker process" in _cmdline(int(d)):
                out.add(int(d))
        return out

    def reload(self, snippet: Optional[str] = None, timeout: float = 10.0):
        """SIGHUP to the master (re-rendering the conf first if snippet is given); waits until
        a new generation of workers runs and the old one is gone. Fails on [emerg]."""
        if snippet is not None:
            self.render(snippet)
        for s in self._sessions:      # old workers wait for idle keep-alive connections
            s.close()
        old = self.worker_pids()
        mark = self.log_mark()
        os.kill(self.pid, signal.SIGHUP)

        def replaced():
            emerg = [l for l in self.log_since(mark) if "[emerg]" in l]
            if emerg:
                pytest.fail("reload failed:\n" + "\n".join(emerg), pytrace=False)
            now = self.worker_pids()
            if now and not (now & old) and not any(os.path.exists(f"/proc/{p}") and
                                                   _ppid(p) == self.pid for p in old):
                return now
            return None

        now = helpers.poll(replaced, timeout, interval=0.02)
        if now:
            return now
        pytest.fail(f"reload did not replace workers {old} within {timeout}s; "
                    f"now {self.worker_pids()}", pytrace=False)

    # --- logs ----------------------------------------------------------------------------

    def stderr(self) -> str:
        p = self.path / "stderr.txt"
        return p.read_text(errors="replace") if p.exists() else ""

    def log_text(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def log_lines(self) -> list:
        return self.log_text().splitlines()

    def log_mark(self) -> int:
        return self.error_log.stat().st_size if self.error_log.exists() else 0

    def log_since(self, mark: int) -> list:
        if not self.error_log.exists():
            return []
        with open(self.error_log, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace").splitlines()

    def count_log(self, substring: str, since: int = 0, level: Optional[str] = None) -> int:
        return len(self.grep_log(substring, since, level))

    def grep_log(self, substring: str, since: int = 0, level: Optional[str] = None) -> list:
        return [l for l in self.log_since(since)
                if substring in l and (level is None or f"[{level}]" in l)]

    def access_log_lines(self) -> list:
        p = self.path / "access.log"
        return p.read_text(errors="replace").splitlines() if p.exists() else []

    def bad_log_lines(self) -> list:
        out = []
        for l in self.log_lines():
            if any(b in l for b in BAD_LOG_LEVELS) and \
                    not any(re.search(a, l) for a in self.allowed_bad_log):
                out.append(l)
        return out

    # --- HTTP ----------------------------------------------------------------------------

    def url(self, path: str = "/", port: Optional[int] = None, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{port or self.port}{path}"

    def session(self) -> requests.Session:
        """A requests.Session (real cookie jar), closed at teardown."""
        s = requests.Session()
        self._sessions.append(s)
        return s

    def get(self, path="/", session=None, port=None, scheme="http", **kw) -> requests.Response:
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 10)
        if scheme == "https":
            kw.setdefault("verify", False)
        return (session or requests).get(self.url(path, port, scheme), **kw)

    def raw(self, path="/", headers=(), method="GET", port=None, body=b"") -> helpers.RawResponse:
        """Exact request (duplicate headers, garbage bytes) over a raw socket."""
        return helpers.http_request(port or self.port, path, headers, method, body)


@pytest.fixture(scope="session")
def nginx_bin() -> Path:
    if not NGINX_BIN.exists():
        missing(f"nginx binary {NGINX_BIN} not found: build it with `make` or set NGINX_BIN")
    return NGINX_BIN


NGINX_LOG_LINE_RE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[")


def _crash_details(srv) -> str:
    """For a worker that died by a signal: what it wrote to its stderr (nginx points a worker's
    stderr at error.log, so a glibc heap check's or std::terminate's message lands there as a
    line without nginx's prefix), stderr.txt, and the log's last lines before the crash."""
    lines = srv.log_lines()
    at = next((i for i, l in enumerate(lines) if "exited on signal" in l), None)
    if at is None:
        return ""
    raw = [l for l in lines if l and not NGINX_LOG_LINE_RE.match(l)]
    out = "\n  --- lines without nginx's prefix (a process's own stderr) ---\n  "
    out += "\n  ".join(raw[-40:]) if raw else "(none)"
    err = srv.stderr().strip()
    if err:
        out += "\n  --- stderr.txt ---\n  " + "\n  ".join(err.splitlines()[-40:])
    out += "\n  --- error.log before the crash ---\n  " + "\n  ".join(lines[max(0, at - 60):at + 1])
    return out


def _check_logs(servers, request):
    problems = []
    for srv in servers:
        bad = srv.bad_log_lines()
        if bad:
            problems.append(f"{srv.error_log}:\n  " + "\n  ".join(bad) + _crash_details(srv))
    if problems:
        pytest.fail(f"{request.node.nodeid}: error.log has [alert]/[crit]/[emerg] lines:\n"
                    + "\n".join(problems), pytrace=False)


@pytest.fixture
def nginx_factory(tmp_path, request):
    """nginx_factory(snippet, binary=None, start=True, workers=1, log_level="info", main="",
    load_module=None, secrets=None, files=None, **placeholders) -> Nginx.

    Placeholders in snippet/main/files: {port} {port2} {port3} {prefix} {secret_file} and any
    keyword given. Servers must listen on 127.0.0.1:{port...}."""
    servers = []

    def make(snippet: str, binary=None, start=True, **kw) -> Nginx:
        if binary is None:
            binary = request.getfixturevalue("nginx_bin")
        known = {"workers", "log_level", "main", "load_module", "secrets", "files", "ports"}
        opts = {k: v for k, v in kw.items() if k in known}
        opts["placeholders"] = {k: v for k, v in kw.items() if k not in known}
        srv = Nginx(binary, tmp_path / f"nginx{len(servers)}", snippet, **opts)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in servers:
        srv.stop()
    _check_logs(servers, request)


@pytest.fixture
def nginx(nginx_factory):
    """Shorthand: nginx(snippet, **kw) starts a server with the module's binary."""
    return nginx_factory


@pytest.fixture
def nginx_t(tmp_path, request):
    """nginx_t(snippet, secrets=None, main="", binary=None, **placeholders) -> (rc, output) of
    `nginx -p prefix -c conf -t` for a rendered config (output = stdout + stderr)."""
    count = [0]

    def check(snippet: str, binary=None, **kw):
        if binary is None:
            binary = request.getfixturevalue("nginx_bin")
        known = {"workers", "log_level", "main", "load_module", "secrets", "files", "ports"}
        opts = {k: v for k, v in kw.items() if k in known}
        opts["placeholders"] = {k: v for k, v in kw.items() if k not in known}
        count[0] += 1
        pre = Prefix(tmp_path / f"check{count[0]}", snippet, **opts)
        p = subprocess.run([str(binary), "-p", str(pre.path) + "/", "-c", str(pre.conf), "-t"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        check.last_prefix = pre
        return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")

    return check


# ---------------------------------------------------------------------------------------------
# TLS, upstream echo server, redis-server
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """(cert, key) paths of a self-signed certificate for 127.0.0.1/localhost."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


class LoopbackHTTPServer:
    """The one in-process HTTP server of the suite (upstreams, credential services): HTTP/1.0
    on a free 127.0.0.1 port, a thread per request. answer(handler, body) -> (status,
    [(header, value)], body) is called for every request of a method in METHODS (handler: the
    BaseHTTPRequestHandler, with .command, .path, .headers); the answer gets a Content-Length
    (and no body for HEAD). close() shuts it down."""

    METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE")

    def __init__(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                status, headers, out = owner.answer(self, body)
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            def log_message(self, *a):
                pass

        for method in self.METHODS:
            setattr(Handler, "do_" + method, Handler._handle)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, handler: BaseHTTPRequestHandler, body: bytes):
        raise NotImplementedError

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class EchoUpstream(LoopbackHTTPServer):
    """A tiny HTTP upstream on a free loopback port: records every request (method, path, header
    lines as received) and answers 200 with a JSON body of the same."""

    def __init__(self):
        self.requests = []
        super().__init__()

    def answer(self, handler, body):
        rec = {"method": handler.command, "path": handler.path,
               "headers": [[k, v] for k, v in handler.headers.items()],
               "raw_headers": handler.headers.as_string(),
               "body": body.decode("latin-1")}
        self.requests.append(rec)
        return 200, [("Content-Type", "application/json")], json.dumps(rec).encode()


@pytest.fixture
def echo_upstream():
    up = EchoUpstream()
    yield up
    up.close()


REDIS_CLIENT_NAME = "pytest"    # our own Redis connections are named, so they can be told apart


def redis_binary() -> str:
    return shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """A redis-server of our own (no persistence), in any role: loopback TCP on a run-time port
    (port=0: unix socket only), optional unix socket, requirepass (also used as masterauth),
    extra config arguments (e.g. ACL --user lines); TLS only on that port (tls=RedisTLS, see
    redis_topologies.py); a replica (replicaof=port of a master on 127.0.0.1); a config file
    (conf=text, written before the first start only: a sentinel rewrites its own and keeps it
    across restarts); a sentinel (sentinel=True, with conf). Fault injection: pause()
    (SIGSTOP), resume() (SIGCONT), kill() (SIGKILL, a crash), stop() (SIGTERM), and start()
    again on the same port (with the same conf file). Always by pid. The topologies of
    redis_topologies.py (Sentinel, Cluster) are made of these."""

    def __init__(self, workdir: Path, *, port: Optional[int] = None, unixsocket: bool = False,
                 password: Optional[str] = None, extra=(), admin_user: Optional[tuple] = None,
                 tls: Optional[redis_topologies.RedisTLS] = None,
                 replicaof: Optional[int] = None, conf: Optional[str] = None,
                 sentinel: bool = False):
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
        self.tls = tls
        self.replicaof = replicaof      # may be changed before a restart (a rejoining master)
        self.conf = conf
        self.conf_path = self.workdir / ("sentinel.conf" if sentinel else "redis.conf")
        self.sentinel = sentinel
        assert not sentinel or conf is not None, "a sentinel needs its conf"
        self.proc: Optional[subprocess.Popen] = None
        self.paused = False
        self._log = None

    # --- process control ---------------------------------------------------------------------

    def argv(self) -> list:
        a = [redis_binary()]
        if self.conf is not None:
            a += [str(self.conf_path)]          # the config file comes first
        if self.sentinel:
            a += ["--sentinel"]
        if self.tls is not None:
            a += ["--port", "0", "--tls-port", str(self.port)] + self.tls.server_args()
        else:
            a += ["--port", str(self.port)]
        a += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
              "--dir", str(self.workdir)]
        if self.socket_path:
            a += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        if self.password is not None:
            a += ["--requirepass", self.password]
            if not self.sentinel:
                a += ["--masterauth", self.password]
        if self.replicaof is not None:
            a += ["--replicaof", "127.0.0.1", str(self.replicaof)]
        return a + self.extra

    @property
    def log_path(self) -> Path:
        return self.workdir / f"redis-{self.port}.log"

    def start(self, wait: bool = True) -> "RedisServer":
        """Starts the server (again, on the same port) and, with wait, polls PING (bounded)."""
        import redis as redis_py
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if self.conf is not None and not self.conf_path.exists():
            self.conf_path.write_text(self.conf)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.paused = False
        if not wait:
            return self

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
        log = self.log_path.read_text(errors="replace")
        pytest.fail(f"redis-server {self.argv()} did not answer PING\n{log[-2000:]}",
                    pytrace=False)

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
        if self.paused:
            self.resume()
        stop_process(self.proc, signal.SIGTERM)
        self.paused = False
        self._close_log()

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    # --- clients -----------------------------------------------------------------------------

    def admin(self, db: int = 0, socket_timeout: float = 2.0, **kw):
        """A redis-py client with full rights (the password, if any, as the default user),
        named REDIS_CLIENT_NAME."""
        import redis as redis_py
        if self.admin_user is not None:
            kw.setdefault("username", self.admin_user[0])
            kw.setdefault("password", self.admin_user[1])
        elif self.password is not None:
            kw.setdefault("password", self.password)
        kw.setdefault("client_name", REDIS_CLIENT_NAME)
        if self.tls is not None:
            for k, v in self.tls.client_kwargs().items():
                kw.setdefault(k, v)
        if self.socket_path and self.port == 0:
            return redis_py.Redis(unix_socket_path=self.socket_path, db=db,
                                  socket_timeout=socket_timeout, **kw)
        return redis_py.Redis(host="127.0.0.1", port=self.port, db=db,
                              socket_timeout=socket_timeout, **kw)

    client = admin

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cli(self, *args, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """redis-cli connected to this server (TLS and password as our admin clients) running
        args, bounded by timeout; text output (stdout, stderr) for the caller to check."""
        argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)]
        if self.tls is not None:
            argv += self.tls.cli_args()
        env = dict(os.environ)
        if self.admin_user is not None:
            argv += ["--user", self.admin_user[0]]
            env["REDISCLI_AUTH"] = self.admin_user[1]
        elif self.password is not None:
            env["REDISCLI_AUTH"] = self.password
        return subprocess.run(argv + [str(a) for a in args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def redis_factory(tmp_path):
    """redis_factory(port=None, unixsocket=False, password=None, extra=(), admin_user=None,
    tls=None, replicaof=None, conf=None, sentinel=False, name=None, start=True) -> RedisServer
    (workdir tmp_path/redisN[-name]). Everything started is SIGCONTed and stopped by pid at
    teardown, last made first (sentinels before the nodes they watch)."""
    if not os.path.exists(redis_binary()):
        missing("redis-server not installed")
    procs = []

    def make(start: bool = True, name: Optional[str] = None, **kw) -> RedisServer:
        rp = RedisServer(tmp_path / (f"redis{len(procs)}" + (f"-{name}" if name else "")), **kw)
        procs.append(rp)
        if start:
            rp.start()
        return rp

    yield make
    for rp in reversed(procs):
        try:
            rp.resume()
        finally:
            rp.stop()


@pytest.fixture
def redis_server(redis_factory):
    """A private redis-server on a free loopback port (no persistence), stopped by pid.
    .stop()/.start() simulate an outage on the same port."""
    return redis_factory()


# ---------------------------------------------------------------------------------------------
# Redis topologies: TLS material, Sentinel, Cluster (redis_topologies.py)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory) -> redis_topologies.TLSMaterial:
    """CA, server (DNS-only, IP-only), other-CA and client certificates made with openssl;
    .redis(server="dns"|"ip"|"other", auth_clients="no"|"yes"|"optional") -> RedisTLS for
    redis_factory(tls=...)."""
    if shutil.which("openssl") is None:
        missing("openssl command not installed")
    return redis_topologies.make_tls_material(tmp_path_factory.mktemp("redis-tls"))


@pytest.fixture
def redis_sentinel_factory(redis_factory):
    """redis_sentinel_factory(start=True, name="mymaster", tls=None, password=None,
    sentinel_password=None, sentinels=3, quorum=2, down_after_ms=1000,
    failover_timeout_ms=3000) -> SentinelTopology (started: wait_ready() held)."""
    def make(start: bool = True, **kw) -> redis_topologies.SentinelTopology:
        topo = redis_topologies.SentinelTopology(redis_factory, **kw)
        return topo.start() if start else topo

    return make


@pytest.fixture
def redis_sentinel(redis_sentinel_factory) -> redis_topologies.SentinelTopology:
    """A master, a replica and three sentinels (mymaster, quorum 2, down after 1 s), ready."""
    return redis_sentinel_factory()


@pytest.fixture
def redis_cluster_factory(redis_factory):
    """redis_cluster_factory(start=True, masters=3, tls=None, password=None,
    node_timeout_ms=2000) -> ClusterTopology (started: cluster_state:ok on every node)."""
    def make(start: bool = True, **kw) -> redis_topologies.ClusterTopology:
        topo = redis_topologies.ClusterTopology(redis_factory, **kw)
        return topo.start() if start else topo

    return make


@pytest.fixture
def redis_cluster(redis_cluster_factory) -> redis_topologies.ClusterTopology:
    """Three cluster masters, no replicas, all 16384 slots assigned, cluster_state:ok."""
    return redis_cluster_factory()
