"""A tiny scriptable fake Redis for the review reproductions: a TCP server on 127.0.0.1 (port
chosen by the kernel) that hands every accepted connection to handler(conn, fake) in a daemon
thread. Counts connections; stop() closes everything. Everything is bounded: the accept loop
polls a stop flag, handlers see fake.stopped."""

from __future__ import annotations

import socket
import threading
import time


def read_command(conn, buf=b""):
    """Reads one RESP array command (of bulk strings) from conn. Returns (args, rest) or
    (None, b"") when the peer closed."""
    while True:
        args, rest = _parse(buf)
        if args is not None:
            return args, rest
        try:
            chunk = conn.recv(65536)
        except OSError:
            return None, b""
        if not chunk:
            return None, b""
        buf += chunk


def _parse(buf):
    if not buf.startswith(b"*"):
        return None, buf
    end = buf.find(b"\r\n")
    if end < 0:
        return None, buf
    n = int(buf[1:end])
    pos = end + 2
    args = []
    for _ in range(n):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None, buf
        ln = int(buf[pos + 1:end])
        pos = end + 2
        if len(buf) < pos + ln + 2:
            return None, buf
        args.append(buf[pos:pos + ln])
        pos += ln + 2
    return args, buf[pos:]


def bulk(s) -> bytes:
    if s is None:
        return b"$-1\r\n"
    if isinstance(s, str):
        s = s.encode()
    return b"$%d\r\n%s\r\n" % (len(s), s)


def array(items) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(items)


class FakeRedis:
    def __init__(self, handler, port=0):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(512)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.commands = []          # every command seen (lists of bytes), all connections
        self.conns = []
        self.stopped = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.conns.append(c)
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            self.handler(c, self)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def stop(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass
        self.thread.join(2)


def serve_commands(answer):
    """A handler that reads commands one by one and sends answer(args, fake, state) (bytes, or
    None to close the connection)."""
    def handler(conn, fake):
        conn.settimeout(0.2)
        buf = b""
        state = {}
        while not fake.stopped:
            try:
                args, buf = read_command_timeout(conn, buf, fake)
            except _Closed:
                return
            if args is None:
                continue
            fake.commands.append(args)
            out = answer(args, fake, state)
            if out is None:
                return
            conn.sendall(out)
    return handler


class _Closed(Exception):
    pass


def read_command_timeout(conn, buf, fake):
    args, rest = _parse(buf)
    if args is not None:
        return args, rest
    try:
        chunk = conn.recv(65536)
    except socket.timeout:
        return None, buf
    except OSError:
        raise _Closed()
    if not chunk:
        raise _Closed()
    return _parse(buf + chunk)[0:2] if _parse(buf + chunk)[0] is not None else (None, buf + chunk)
