"""The Flask side of `make demo DEMO=flask`: a small app written the way the seeds write theirs
(../shared/seeds/: session['username'] set at login, read on the index page), sharing its
session cookie with nginx (`session_format flask`).

It runs under Debian's /usr/bin/python3 (python3-flask) on 127.0.0.1:PORT behind the demo nginx,
with the SECRET_KEY read from the same file nginx reads (its first line).

  /app/            "Logged in as <username>" or "You are not logged in" (reads Flask's session)
  /app/flask-login?u=NAME   logs in the Flask way (session['username'] = NAME)
  /app/flask-logout         session.pop('username')
  /app/visits      counts visits in session['visits'] (nginx shows it as $session_visits)
"""
import datetime
import sys

from flask import Flask, redirect, request, session

port = int(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    secret = f.readline().rstrip(b"\r\n")

app = Flask(__name__)
app.config["SECRET_KEY"] = secret
app.config["PERMANENT_SESSION_LIFETIME"] = datetime.timedelta(days=7)


@app.route("/app/")
def index():
    if "username" in session:
        return "Logged in as %s (read by Flask from its own session cookie)\n" % session["username"]
    return "You are not logged in (Flask sees no session['username'])\n"


@app.route("/app/flask-login")
def flask_login():
    session.permanent = True
    session["username"] = request.args.get("u", "carol")
    return redirect("/app/")


@app.route("/app/flask-logout")
def flask_logout():
    session.pop("username", None)
    return redirect("/app/")


@app.route("/app/visits")
def visits():
    session["visits"] = session.get("visits", 0) + 1
    return "visits: %d\n" % session["visits"]


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=port)
