"""A Flask app with server-side sessions from Debian's python3-flask-session 0.3 in Redis
(SESSION_TYPE = "redis"), run behind the test nginx by t/test_flask_redis.py under
/usr/bin/python3.

Usage: flask_session_app.py PORT CONFIG_JSON
CONFIG_JSON: {"secret_key": str, "redis_port": int, "use_signer": bool, "prefix": str,
              "lifetime": seconds}

Routes (all under /app/): login?u= (session['username']), logout (pop), clear, set?k=&v=,
show (the session as JSON: keys, types, username, permanent, and the sid Flask-Session uses).
"""

import datetime
import json
import sys
import warnings

import redis
from flask import Flask, jsonify, request, session
from flask_session import Session

warnings.simplefilter("ignore", DeprecationWarning)  # session_cookie_name in Flask 2.2

port = int(sys.argv[1])
cfg = json.loads(sys.argv[2])

app = Flask(__name__)
app.config["SECRET_KEY"] = cfg["secret_key"]
app.config["SESSION_TYPE"] = "redis"
app.config["SESSION_REDIS"] = redis.Redis(host="127.0.0.1", port=cfg["redis_port"])
app.config["SESSION_USE_SIGNER"] = cfg.get("use_signer", False)
app.config["SESSION_KEY_PREFIX"] = cfg.get("prefix", "session:")
app.config["PERMANENT_SESSION_LIFETIME"] = datetime.timedelta(seconds=cfg.get("lifetime", 3600))
Session(app)


@app.route("/app/login")
def login():
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


@app.route("/app/show")
def show():
    return jsonify({
        "sid": session.sid,
        "permanent": session.permanent,
        "keys": list(session.keys()),
        "types": {k: type(v).__name__ for k, v in session.items()},
        "username": session.get("username"),
        "color": session.get("color"),
    })


if __name__ == "__main__":
    from werkzeug.serving import make_server
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()
