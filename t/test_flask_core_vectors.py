"""The Flask bridge core (src/core/flask_*) against vectors regenerated now by the installed
Flask, itsdangerous, Flask-Session, pickle and msgpack (t/unit/gen_flask_vectors.py), so that a
library update that changes the wire format is caught; plus what only Python can check: Flask
loads the cookies nginx writes, pickle.loads the records nginx writes, and a hostile record runs
nothing.

The core is built here into a small CLI (t/flask_core_cli.cpp) with the flags of `make unit`.
No nginx, no Redis.
"""

from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "t" / "unit"))
import gen_flask_vectors as gen  # noqa: E402

CXXFLAGS = ["-std=c++17", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    srcs = [str(REPO / "src" / "core" / s) for s in
            (REPO / "src" / "core" / "SOURCES").read_text().split() if s.strip()]
    out = tmp_path_factory.mktemp("flask_cli") / "flask_core_cli"
    cmd = [os.environ.get("CXX", "g++"), *CXXFLAGS, "-I" + str(REPO / "src" / "core"),
           "-I" + str(REPO / "t"), "-o", str(out), str(REPO / "t" / "flask_core_cli.cpp"), *srcs,
           "-lssl", "-lcrypto", "-lcrypt", "-lz", "-lmsgpackc"]
    subprocess.run(cmd, check=True)

    def run(lines):
        r = subprocess.run([str(out)], input="\n".join(lines) + "\n", capture_output=True,
                           text=True, check=True, timeout=120)
        return r.stdout.splitlines()

    return run


def test_regenerated_vectors(cli):
    vs = gen.vectors()
    got = cli([op for op, _ in vs])
    assert len(got) == len(vs)
    bad = [(op[:120], want[:120], g[:120]) for (op, want), g in zip(vs, got) if g != want]
    assert not bad, bad


def test_checked_in_header_is_current():
    """flask_vectors.h is what the generator makes with the libraries installed here."""
    r = subprocess.run([sys.executable, str(REPO / "t" / "unit" / "gen_flask_vectors.py")],
                       capture_output=True, text=True, check=True)
    assert r.stdout == (REPO / "t" / "unit" / "flask_vectors.h").read_text(), (
        "regenerate: /usr/bin/python3 t/unit/gen_flask_vectors.py > t/unit/flask_vectors.h")


def test_flask_loads_nginx_cookies(cli):
    app = gen.make_app()
    for d in gen.SESSIONS:
        j = gen.tagged_dumps(app, d)
        now = int(datetime.datetime.now().timestamp())
        (line,) = cli(["cookie_seal %s %d %s" % (gen.secrets(gen.S1), now, gen.h(j))])
        token = bytes.fromhex(line.split()[1]).decode()
        with app.test_request_context():
            s = app.session_interface.get_signing_serializer(app)
            got = s.loads(token, max_age=gen.LIFETIME)
        assert gen.tagged_dumps(app, got) == j
        # Rotation: Flask with [old, new] (newest last) verifies what nginx signs with new.
        rot = gen.make_app([b"old-key", gen.S1])
        with rot.test_request_context():
            rot.session_interface.get_signing_serializer(rot).loads(token, max_age=60)


def test_python_loads_nginx_records(cli):
    app = gen.make_app()
    for d in gen.RECORDS:
        j = gen.tagged_dumps(app, d)
        (p,) = cli(["json_pickle " + gen.h(j)])
        assert pickle.loads(bytes.fromhex(p.split()[1])) == gen.tagged_loads(app, j)
        (m,) = cli(["json_msgpack " + gen.h(j)])
        got = gen.msgpack.unpackb(bytes.fromhex(m.split()[1]))
        assert got == gen.msgpack.unpackb(gen.msgpack.packb(gen.tagged_loads(app, j)))


def test_hostile_pickle_runs_nothing(cli, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(marker),))

    for proto in range(0, 6):
        (r,) = cli(["pickle_roundtrip " + pickle.dumps({"x": Evil()}, protocol=proto).hex()])
        assert r in ("forbidden", "invalid")
    assert not marker.exists()
