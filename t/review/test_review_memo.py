"""Review of the session_user memo / verified-table fast path / $session_user variable change
(e755abc..75d94df). Each scenario runs against the binary under test and, when REV_BASE_NGINX
names the binary built from e755abc, against that one too: transcripts must be equal (the
change is meant to be behaviour-neutral), and explicit DESIGN.md expectations are asserted.

Every scenario uses one worker and one keep-alive connection, so repeated cookies are hits in
the per-worker verified-cookie table (and share its decoded data and its memo).
"""

import os
import time
from pathlib import Path

import pytest

import helpers
from helpers import cookie_named, make_cookie, payload_of, server_conf

BASE = os.environ.get("REV_BASE_NGINX", "")


def binaries(nginx_bin):
    out = [("new", nginx_bin)]
    if BASE and Path(BASE).exists():
        out.append(("base", Path(BASE)))
    return out


def run(nginx, nginx_bin, snippet, scenario, **kw):
    """scenario(srv) -> transcript, for every binary; the transcripts must agree."""
    results = {}
    for label, binary in binaries(nginx_bin):
        srv = nginx(snippet, binary=binary, **kw)
        results[label] = scenario(srv)
        srv.stop()
    if os.environ.get("REV_DUMP"):
        for line in results["new"]:
            print(line)
    if "base" in results:
        assert results["new"] == results["base"], (results["new"], results["base"])
    return results["new"]


def req(srv, conn, path, cookie=None, headers=None):
    h = dict(headers or {})
    if cookie is not None:
        h["Cookie"] = cookie
    r = srv.get(path, session=conn, headers=h)
    sc = cookie_named(r)
    written = None
    if sc is not None:
        v = helpers.cookie_value(sc)
        if not v:
            written = "<expired>"
        elif helpers.decode_envelope(v).kind == helpers.KIND_SIGNED:
            written = payload_of(sc)
        else:
            written = "<set>"
    return (path, r.status_code, r.text, written)


KEYS_LOC = r"""
    location = /a   { session_user_key user;     return 200 "a=$session_user\n"; }
    location = /b   { session_user_key username; return 200 "b=$session_user\n"; }
    location = /ra  { session_user_key user;     session_require; return 200 "ra=$session_user\n"; }
    location = /rb  { session_user_key username; session_require; return 200 "rb=$session_user\n"; }
    location = /ci  { session_user_key User;     return 200 "ci=$session_user\n"; }
    location = /rci { session_user_key User;     session_require; return 200 "rci\n"; }
    location = /k23 { session_user_key abcdefghijklmnopqrstuvw;  session_require; return 200 "k23=$session_user\n"; }
    location = /k23b { session_user_key abcdefghijklmnopqrstuvX; session_require; return 200 "k23b=$session_user\n"; }
    location = /k24 { session_user_key abcdefghijklmnopqrstuvwx; session_require; return 200 "k24=$session_user\n"; }
    location = /k24b { session_user_key abcdefghijklmnopqrstuvwX; session_require; return 200 "k24b=$session_user\n"; }
    location = /caps { session_user_key user; return 200 "U=$session_User V=$SESSION_USER raw=$session_username\n"; }
"""


def test_two_user_keys_share_one_decoded_data(nginx, nginx_bin):
    """Locations with different session_user_key values read the same table entry's data: each
    must get its own answer, alternating, many times (a memo kept for the wrong key would show)."""
    paths = ["/a", "/b", "/ra", "/rb", "/ci", "/rci", "/k23", "/k23b", "/k24", "/k24b", "/caps"]

    def scenario(srv):
        sec = srv.secrets[0]
        cookies = {
            "both": make_cookie(sec, {"user": "alice", "username": "bob",
                                      "abcdefghijklmnopqrstuvw": "l23",
                                      "abcdefghijklmnopqrstuvwx": "l24"}),
            "only_username": make_cookie(sec, {"username": "bob"}),
            "ambig": make_cookie(sec, {"user": "alice", "USER": "x", "username": "bob"}),
            "ci": make_cookie(sec, {"User": "carol"}),
            "empty": make_cookie(sec, {"user": "", "username": 5}),
            "ambig23": make_cookie(sec, {"abcdefghijklmnopqrstuvw": "l",
                                         "ABCDEFGHIJKLMNOPQRSTUVW": "m", "user": "u"}),
        }
        conn = srv.session()
        out = []
        for _ in range(4):
            for name, c in cookies.items():
                for p in paths:
                    out.append((name,) + req(srv, conn, p, "session=" + c))
        return out

    t = run(nginx, nginx_bin, server_conf(KEYS_LOC, "session_encrypt off;"), scenario)
    got = {}
    for name, path, status, body, _ in t:
        got.setdefault((name, path), set()).add((status, body))
    # DESIGN: each location's own key; stable over repeats.
    assert got[("both", "/a")] == {(200, "a=alice\n")}
    assert got[("both", "/b")] == {(200, "b=bob\n")}
    assert got[("both", "/k23")] == {(200, "k23=l23\n")}
    assert got[("both", "/k23b")] == {(401, got[("both", "/k23b")].copy().pop()[1])}
    assert got[("both", "/k24")] == {(200, "k24=l24\n")}
    assert {s for s, _ in got[("both", "/k24b")]} == {401}
    assert {s for s, _ in got[("both", "/rci")]} == {401}   # "User" absent; "user" differs by case
    assert got[("only_username", "/a")] == {(200, "a=\n")}
    assert {s for s, _ in got[("only_username", "/ra")]} == {401}
    assert got[("only_username", "/rb")] == {(200, "rb=bob\n")}
    assert {s for s, _ in got[("ambig", "/ra")]} == {401}
    assert got[("ambig", "/rb")] == {(200, "rb=bob\n")}
    assert got[("ci", "/rci")] == {(200, "rci\n")}
    assert got[("ci", "/ci")] == {(200, "ci=carol\n")}
    assert {s for s, _ in got[("ci", "/ra")]} == {401}
    assert {s for s, _ in got[("empty", "/ra")]} == {401}
    assert {s for s, _ in got[("empty", "/rb")]} == {401}
    assert {s for s, _ in got[("ambig23", "/k23")]} == {401}
    assert got[("ambig23", "/ra")] == {(200, "ra=u\n")}
    assert got[("both", "/caps")] == {(200, "U=alice V=alice raw=bob\n")}
    for k, v in got.items():
        assert len(v) == 1, (k, v)


ACTIONS_LOC = r"""
    location = /show   { session_require; return 200 "show=$session_user st=$session_status\n"; }
    location = /whoami { return 200 "who=$session_user st=$session_status\n"; }
    location = /set_show   { session_set user bob; return 200 "u=$session_user\n"; }
    location = /req_unset  { session_require; session_unset user; return 200 "u=$session_user\n"; }
    location = /req_clear  { session_require; session_clear; return 200 "u=$session_user\n"; }
    location = /redir_set  { session_set user bob; rewrite ^ /show last; }
    location = /redir_unset { session_unset user; rewrite ^ /show last; }
    location = /redir_destroy { session_destroy; rewrite ^ /show last; }
    location = /ep_unset { session_unset user; error_page 404 = /show; return 404; }
    location = /ep_set   { session_set user zed; error_page 404 = /whoami; return 404; }
    location = /ssi { ssi on; session_set user carol; default_type text/html;
                      return 200 '<!--# include virtual="/show" -->|<!--# echo var="session_user" -->'; }
    location = /ssi2 { ssi on; default_type text/html; alias {prefix}/html/page.html; session_unset user; }
    location = /ar { auth_request /check; session_unset user; return 200 "ar=$session_user\n"; }
    location = /ar2 { session_unset user; auth_request /check; return 200 "ar2=$session_user\n"; }
    location = /check { internal; session_require; return 204; }
    location = /logout { session_logout /whoami; }
"""


def test_in_request_changes(nginx, nginx_bin):
    """Actions that change the session in the same request, internal redirects, error_page, SSI
    and auth_request subrequests: the new binary must decide exactly as the old one did."""
    files = {"html/page.html": '<!--# include virtual="/show" -->|'
                               '<!--# include virtual="/check" -->|'
                               '<!--# echo var="session_user" default="-" -->\n'}
    paths = ["/whoami", "/show", "/set_show", "/req_unset", "/req_clear", "/redir_set",
             "/redir_unset", "/redir_destroy", "/ep_unset", "/ep_set", "/ssi", "/ssi2", "/ar",
             "/ar2", "/whoami", "/show"]

    def scenario(srv):
        sec = srv.secrets[0]
        cookies = [make_cookie(sec, {"user": "alice"}), make_cookie(sec, {"name": "x"}), None]
        conn = srv.session()
        out = []
        for _ in range(3):
            for c in cookies:
                for p in paths:
                    out.append(req(srv, conn, p, None if c is None else "session=" + c))
        # logout then the same (cached) cookie again: the cookie is still cryptographically
        # valid (cookie store), so it is still a session - as before.
        c = cookies[0]
        out.append(req(srv, conn, "/logout", "session=" + c))
        out.append(req(srv, conn, "/show", "session=" + c))
        return out

    t = run(nginx, nginx_bin, server_conf(ACTIONS_LOC, "session_encrypt off;"), scenario,
            files=files)
    by = {}
    for path, status, body, written in t:
        by.setdefault(path, []).append((status, body, written))
    # A few DESIGN anchors: require holds for a logged-out cookie; auth_request backend gives 401.
    assert ("/show", 401) in {(p, s) for p, s, _, _ in t}


TOSS_LOC = r"""
    location = /show { session_require; return 200 "show=$session_user\n"; }
    location = /st   { return 200 "st=$session_status u=$session_user\n"; }
"""


def test_tossing_chunks_and_times(nginx, nginx_bin):
    """One cached valid cookie plus another of the same name (garbage, an expired one, a
    future-dated one, another valid one); expired / future-dated cookies that are in the table."""
    def scenario(srv):
        sec = srv.secrets[0]
        now = int(time.time())
        good = make_cookie(sec, {"user": "alice"})
        other = make_cookie(sec, {"user": "mallory"})
        expired = make_cookie(sec, {"user": "old"}, created=now - 7200, refreshed=now - 7200)
        future = make_cookie(sec, {"user": "fut"}, created=now + 600, refreshed=now + 600)
        tampered = helpers.flip_byte(good, -1)
        conn = srv.session()
        out = []
        seqs = [
            [good], [good, "garbage"], ["garbage", good], [good, good], [good, other],
            [other, good], [good, expired], [expired], [expired], [future], [future],
            [good, future], [tampered], [good, tampered], [good],
            ["1." + good], ["2." + good], [good + "."],
        ]
        for _ in range(3):
            for seq in seqs:
                cookie = "; ".join("session=" + v for v in seq)
                out.append(req(srv, conn, "/st", cookie))
                out.append(req(srv, conn, "/show", cookie))
        return out

    t = run(nginx, nginx_bin,
            server_conf(TOSS_LOC, "session_encrypt off; session_lifetime 1h;"), scenario)
    bodies = [b for p, s, b, _ in t if p == "/st"]
    assert bodies[0] == "st=valid u=alice\n"
    assert bodies[4] == "st=invalid u=\n"    # two different valid ones: tossing
    assert bodies[7] == "st=expired u=\n"
    assert bodies[9] == "st=invalid u=\n"    # future-dated


def test_reserved_keys_and_user(nginx_t):
    for key, ok in [("user", True), ("User", True), ("USER", True), ("username", True),
                    ("status", False), ("Status", False), ("id", False), ("expires", False),
                    ("csrf_token", False), ("login_error", False)]:
        rc, out = nginx_t(server_conf(f'location = /s {{ session_set {key} 1; return 204; }}'))
        assert (rc == 0) == ok, (key, out)


SET_USER_LOC = r"""
    location = /setx  { set $session_user "x"; return 200 "setx=$session_user\n"; }
    location = /plain { return 200 "plain=$session_user\n"; }
    location = /req   { session_require; return 200 "req=$session_user\n"; }
"""


def test_set_session_user_still_accepted(nginx_t, nginx, nginx_bin):
    """FINDING (b13207f): `set $session_user ...` was accepted by e755abc (the prefix variable
    $session_<key> is WEAK for `set`: a per-location override, the session's user elsewhere), as
    `set $session_name ...` still is. DESIGN.md: $session_user is the one $session_ name that is
    not reserved. Now that session_user is an exact, non-changeable variable, nginx -t fails with
    'the duplicate "session_user" variable', so such a config no longer starts (or reloads)."""
    rc_name, out_name = nginx_t(server_conf('location = /s { set $session_name "x"; return 204; }'))
    assert rc_name == 0, out_name
    rc, out = nginx_t(server_conf(SET_USER_LOC, "session_encrypt off;"))
    assert rc == 0, out
    srv = nginx(server_conf(SET_USER_LOC, "session_encrypt off;"))
    c = make_cookie(srv.secrets[0], {"user": "alice"})
    got = [srv.get(p, headers={"Cookie": "session=" + c}).text for p in ("/setx", "/plain", "/req")]
    assert got == ["setx=x\n", "plain=alice\n", "req=alice\n"]   # what e755abc answers


def test_map_to_session_user(nginx_t, nginx_bin):
    """Same change: `map ... $session_user` (accepted by e755abc) now fails nginx -t."""
    snippet = ('map $uri $session_user { default "x"; }\n'
               + server_conf('location = /s { return 200 "$session_user"; }'))
    results = []
    for label, binary in binaries(nginx_bin):
        rc, out = nginx_t(snippet, binary=binary)
        results.append((label, rc, out.strip().splitlines()[-1:] if rc else ""))
    if len(results) == 2:
        assert results[0][1:] == results[1][1:], results
    assert results[0][1] == 0, results   # e755abc accepts it

REDIS_LOC = r"""
    location = /a   { session_user_key user;     return 200 "a=$session_user\n"; }
    location = /b   { session_user_key username; return 200 "b=$session_user\n"; }
    location = /ra  { session_user_key user;     session_require; return 200 "ra=$session_user\n"; }
    location = /rb  { session_user_key username; session_require; return 200 "rb=$session_user\n"; }
    location = /popuser { session_unset user; return 200 "popped u=$session_user\n"; }
    location = /setuser { session_set user $arg_u; return 200 "set u=$session_user\n"; }
    location = /logout { session_logout /a; }
"""


@pytest.mark.parametrize("cache", ["", "session_redis_cache rc:1m;"], ids=["nocache", "cache"])
def test_redis_id_cookie_in_table(nginx, nginx_bin, redis_factory, cache):
    import redis_support
    rd = redis_factory()

    def scenario(srv):
        r = rd.client() if hasattr(rd, "client") else None
        import redis as redis_py
        r = redis_py.Redis(port=rd.port)
        sec = srv.secrets[0]
        c1, _, _ = redis_support.seed(r, {"user": "alice", "username": "bob"}, sec)
        c2, _, _ = redis_support.seed(r, {"username": "bob"}, sec)
        conn = srv.session()
        out = []
        for _ in range(3):
            for c in (c1, c2):
                for p in ("/a", "/b", "/ra", "/rb"):
                    t = req(srv, conn, p, "session=" + c)
                    out.append(t[:3])
        out.append(req(srv, conn, "/popuser", "session=" + c1)[:3])
        for p in ("/a", "/ra", "/rb"):
            out.append(req(srv, conn, p, "session=" + c1)[:3])
        out.append(req(srv, conn, "/setuser?u=zed", "session=" + c1)[:3])
        for p in ("/a", "/ra"):
            out.append(req(srv, conn, p, "session=" + c1)[:3])
        out.append(req(srv, conn, "/logout", "session=" + c1)[:2])
        for p in ("/a", "/ra", "/rb"):
            t = req(srv, conn, p, "session=" + c1)
            out.append(t[:2])
        r.flushall()
        return out

    t = run(nginx, nginx_bin,
            server_conf(REDIS_LOC, "session_store redis; session_redis 127.0.0.1:{rport}; "
                        + cache, http_extra=""), scenario, rport=rd.port)
    for line in t:
        print(line)
    assert ("/ra", 200, "ra=alice\n") in t
    assert t[-3:] == [("/a", 200), ("/ra", 401), ("/rb", 401)]


FLASK_LOC = r"""
    location = /a   { session_user_key user;     return 200 "a=$session_user\n"; }
    location = /b   { session_user_key _user_id; return 200 "b=$session_user\n"; }
    location = /ra  { session_user_key user;     session_require; return 200 "ra=$session_user\n"; }
    location = /rb  { session_user_key _user_id; session_require; return 200 "rb=$session_user\n"; }
    location = /set { session_user_key user; session_set user $arg_u; return 200 "set=$session_user\n"; }
"""


def test_flask_format_user_keys(nginx, nginx_bin):
    from test_flask_bridge import flask_cookie
    key = "review-flask-key"

    def scenario(srv):
        c1 = flask_cookie(key, {"user": "alice", "_user_id": "7"})
        c2 = flask_cookie(key, {"_user_id": "7", "USER": "x", "user": "alice"})
        c3 = flask_cookie(key, {"user": 5, "_user_id": ["a"]})
        conn = srv.session()
        out = []
        for _ in range(3):
            for c in (c1, c2, c3):
                for p in ("/a", "/b", "/ra", "/rb", "/set?u=q"):
                    r = srv.get(p, session=conn, headers={"Cookie": "session=" + c})
                    out.append((p, r.status_code, r.text if r.status_code == 200 else ""))
        return out

    t = run(nginx, nginx_bin, server_conf(FLASK_LOC, "session_format flask;"), scenario,
            secrets=[key])
    assert t[:5] == [("/a", 200, "a=alice\n"), ("/b", 200, "b=7\n"), ("/ra", 200, "ra=alice\n"),
                     ("/rb", 200, "rb=7\n"), ("/set?u=q", 200, "set=alice\n")]
    assert t[5:10] == [("/a", 200, "a=\n"), ("/b", 200, "b=7\n"), ("/ra", 401, ""),
                       ("/rb", 200, "rb=7\n"), ("/set?u=q", 200, "set=\n")]
    assert [s for _, s, _ in t[10:14]] == [200, 200, 401, 401]
    assert t[:15] == t[15:30] == t[30:45]


EVICT_LOC = r"""
    location = /page { ssi on; default_type text/html; session_user_key user;
        return 200 '<!--# echo var="session_user" -->|<!--# include virtual="/other" -->|<!--# include virtual="/u2" -->|<!--# echo var="session_user" -->'; }
    location = /other { session_cookie other; session_user_key user; session_require; return 200 "o=$session_user"; }
    location = /u2 { session_user_key name; session_require; return 200 "n=$session_user"; }
"""


def test_eviction_while_held_with_subrequests(nginx, nginx_bin):
    """Many distinct cookies (more than the table's 512 slots) for two cookie names, each request
    reading the user under two keys in the main request and in SSI subrequests, which load the
    other cookie and may evict the main request's entry while it holds it (run under ASan)."""
    def scenario(srv):
        sec = srv.secrets[0]
        conn = srv.session()
        out = []
        vals = [(make_cookie(sec, {"user": f"u{i}", "name": f"n{i}"}),
                 make_cookie(sec, {"user": f"o{i}"}, name="other")) for i in range(300)]
        for rnd in range(3):
            for i, (a, b) in enumerate(vals):
                r = srv.get("/page", session=conn, headers={"Cookie": f"session={a}; other={b}"})
                out.append(r.text)
                assert r.text == f"u{i}|o=o{i}|n=n{i}|u{i}", (rnd, i, r.text)
        return len(out)

    run(nginx, nginx_bin, server_conf(EVICT_LOC, "session_encrypt off;"), scenario)
