"""`make demo DEMO=flask`: examples/demo-flask.conf and examples/flask/app.py as scripts/demo.sh
runs them (ports moved to free ones): nginx and a Flask app (Debian's python3-flask) share one
login through the Flask app's own session cookie."""
import os
import re
import signal
import subprocess
from pathlib import Path

import requests

import helpers
from conftest import stop_process

REPO = Path(__file__).resolve().parent.parent


def test_demo_flask(nginx, tmp_path):
    conf_in = (REPO / "examples" / "demo-flask.conf").read_text()
    assert "session_format flask;" in conf_in and "session_user_key username;" in conf_in
    srv = nginx("", start=False, ports=2)
    prefix = srv.path
    (prefix / "tmp").mkdir(parents=True)
    p1, p2, pf = srv.port, srv.port2, helpers.free_port()
    conf = (conf_in.replace("@PREFIX@", str(prefix))
            .replace("@EXAMPLES@", str(REPO / "examples"))
            .replace("@FLASK_PORT@", str(pf))
            .replace("127.0.0.1:8080", f"127.0.0.1:{p1}")
            .replace("127.0.0.1:8081", f"127.0.0.1:{p2}"))
    if os.geteuid() == 0:
        conf = "user root;\n" + conf
    srv.write_conf(conf)
    helpers.write_secret_file(prefix / "secret")      # one line: the Flask app's SECRET_KEY too
    import base64
    import hashlib
    sha = base64.b64encode(hashlib.sha1(b"secret").digest()).decode()
    (prefix / "users").write_text(f"alice:{{SHA}}{sha}\n")

    log = open(tmp_path / "flask.log", "wb")
    app = subprocess.Popen(["/usr/bin/python3", str(REPO / "examples" / "flask" / "app.py"),
                            str(pf), str(prefix / "secret")],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert helpers.wait_port(pf, 15, lambda: app.poll() is None), \
            (tmp_path / "flask.log").read_text()
        srv.start()
        base = f"http://127.0.0.1:{p1}"

        # Flask logs carol in; nginx protects another upstream with that session.
        s = requests.Session()
        assert "not logged in" in s.get(base + "/app/", timeout=10).text
        r = s.get(base + "/private/", allow_redirects=False, timeout=10)
        assert r.status_code in (302, 401), r.status_code
        assert "Logged in as carol" in s.get(base + "/app/flask-login?u=carol", timeout=10).text
        assert s.get(base + "/private/", timeout=10).text.startswith("private app: hello carol")
        # Flask's own keys survive nginx: visits counted by Flask, read by Flask again.
        assert s.get(base + "/app/visits", timeout=10).text == "visits: 1\n"
        assert s.get(base + "/app/visits", timeout=10).text == "visits: 2\n"

        # nginx logs alice in with its form; Flask reads session['username'].
        s = requests.Session()
        page = s.get(base + "/login?next=/app/", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = s.post(base + "/login", data={"username": "alice", "password": "secret",
                                          "csrf_token": token, "next": "/app/"},
                   allow_redirects=False, timeout=10)
        assert r.status_code == 303 and r.headers["Location"].endswith("/app/"), r.text
        assert "Logged in as alice" in s.get(base + "/app/", timeout=10).text
        assert s.get(base + "/private/", timeout=10).text.startswith("private app: hello alice")
        r = s.get(base + "/logout", allow_redirects=False, timeout=10)
        assert r.status_code == 303
        assert "not logged in" in s.get(base + "/app/", timeout=10).text
    finally:
        srv.stop()
        stop_process(app, signal.SIGTERM)
        log.close()
