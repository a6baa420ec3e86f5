"""A Flask app written the way the seeds write theirs (../shared/seeds/), run behind the test
nginx by t/test_flask_bridge.py under Debian's /usr/bin/python3 (python3-flask 2.2).

Usage: flask_app.py PORT CONFIG_JSON
CONFIG_JSON: {"secret_key": str | [str, ...] | {"b64": ...}, "lifetime": seconds}
(a list is itsdangerous' rotation form, newest LAST, as Flask <= 3.0 passes SECRET_KEY on).

Routes (all under /app/): login?u= (session.permanent, session['username']), logout (pop),
clear, set?k=&v= (a str), rich (tuple, bytes, uuid, datetime, Markup, nested dict, Flask-Login's
keys, _flashes), loginmanager?id= (what Flask-Login's login_user stores), show (the session as
JSON: each key's type and repr, plus permanent).
"""

import base64
import datetime
import json
import sys
import uuid

from flask import Flask, jsonify, request, session
from markupsafe import Markup

port = int(sys.argv[1])
cfg = json.loads(sys.argv[2])

app = Flask(__name__)
key = cfg["secret_key"]
if isinstance(key, dict):
    key = base64.b64decode(key["b64"])
app.config["SECRET_KEY"] = key
app.config["PERMANENT_SESSION_LIFETIME"] = datetime.timedelta(seconds=cfg.get("lifetime", 3600))

RICH = {
    "t": (1, "two", 3.5),
    "b": b"\x00\xffbytes",
    "u": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    # (aware: Flask gives a naive datetime back as an aware one, unequal to it)
    "d": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
    "m": Markup("<b>bold</b>"),
    "nested": {"z": 1, "a": [1, 2, {"k": "v"}], " t": "looks like a tag"},
    "text": "caf\u00e9 \U0001F600 \u2028",
    "big": 12345678901234567890123,
    "f": 0.1,
    "none": None,
    "yes": True,
}


@app.route("/app/login")
def login():
    session.permanent = True
    session["username"] = request.args["u"]
    return "logged in as %s\n" % request.args["u"]


@app.route("/app/logout")
def logout():
    session.pop("username", None)
    return "logged out\n"


@app.route("/app/clear")
def clear():
    session.clear()
    return "cleared\n"


@app.route("/app/set")
def set_key():
    session[request.args["k"]] = request.args["v"]
    return "set\n"


@app.route("/app/rich")
def rich():
    session.permanent = True
    session.update(RICH)
    session["_flashes"] = [("message", "hello")]
    return "rich\n"


@app.route("/app/loginmanager")
def loginmanager():
    # What flask_login.login_user(user) leaves in the session.
    session["_user_id"] = request.args["id"]
    session["_fresh"] = True
    session["_id"] = "a" * 128
    return "flask-login\n"


@app.route("/app/show")
def show():
    return jsonify({
        "permanent": session.permanent,
        "keys": sorted(session.keys()),
        "types": {k: type(v).__name__ for k, v in session.items()},
        "repr": {k: repr(v) for k, v in session.items()},
        "rich_equal": {k: session.get(k) == v for k, v in RICH.items() if k in session},
        "username": session.get("username"),
    })


if __name__ == "__main__":
    from werkzeug.serving import make_server
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()
