"""Adversarial review of chunked session cookies (session_cookie ... chunks=N).

Tests that FAIL reproduce findings (see REVIEW_CHUNKS.md); the others are attacks that held.
"""

import re

import pytest

import helpers
from helpers import make_cookie, server_conf, set_cookie_headers
import test_chunks as C
from test_chunks import (NAME, BIG_BUFFERS, LOCATIONS, site, session_lines, values_of,
                         cookie_header, show, split, grow, max_value, names)

INVALID = "status=invalid big= more=\n"


def no_alerts(srv, mark):
    bad = [l for l in srv.log_since(mark) if "[alert]" in l or "[crit]" in l or "[emerg]" in l]
    assert not bad, bad


# ---- malformed heads -------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["99999.abc", "-1.abc", "02.abc", "2x.abc", "2.", "1.abc",
                                  "0.abc", "17.abc", "16.abc", "2..abc", "9", "3.",
                                  "2.abc\x7f"])
def test_malformed_heads_are_invalid(nginx, head):
    srv = nginx(site(16, "session_encrypt off;"))
    mark = srv.log_mark() if hasattr(srv, "log_mark") else 0
    cookies = [(NAME, head), (f"{NAME}_1", "AAAA"), (f"{NAME}_2", "BBBB")]
    r = srv.raw("/show", [("Cookie", "; ".join(f"{n}={v}" for n, v in cookies))])
    assert r.status == 200
    assert r.text.startswith("status=invalid"), r.text
    assert session_lines(r) == ({}, {})


def test_head_claims_16_with_one_present(nginx):
    srv = nginx(site(16, "session_encrypt off;"))
    env = make_cookie(srv.secrets[0], {"big": "z" * 20})
    r = show(srv, {NAME: "16." + env})
    assert r.text == INVALID
    # every chunk present but one
    cut = split(make_cookie(srv.secrets[0], {"big": "z" * 5000}), 16)
    for drop in (1, 8, 15):
        c = {k: v for k, v in cut.items() if k != f"{NAME}_{drop}"}
        assert show(srv, c).text == INVALID
    assert show(srv, cut).text.startswith("status=valid big=zzz")


def test_count_in_head_changed(nginx):
    """The same envelope cut in 3; head says 2 (last chunk ignored) or 4 (extra chunk joined)."""
    srv = nginx(site(4, "session_encrypt off;"))
    env = make_cookie(srv.secrets[0], {"big": "c" * 5000})
    cut = split(env, 3)
    two = dict(cut, **{NAME: "2." + cut[NAME].split(".", 1)[1]})
    assert show(srv, two).text == INVALID
    four = dict(cut, **{NAME: "4." + cut[NAME].split(".", 1)[1], f"{NAME}_3": "AAAA"})
    assert show(srv, four).text == INVALID
    # moving bytes between chunks re-splits the same envelope: that is the same session
    moved = dict(cut)
    moved[f"{NAME}_1"], moved[f"{NAME}_2"] = cut[f"{NAME}_1"][:-5], cut[f"{NAME}_1"][-5:] + cut[f"{NAME}_2"]
    assert show(srv, moved).text.startswith("status=valid big=ccc")


# ---- mixing / tossing --------------------------------------------------------------------------


def test_two_valid_chunked_sessions_interleaved(nginx):
    srv = nginx(site(3, "session_encrypt on;"))
    size = max_value(2, "encrypted") + 100
    _, a, _ = grow(srv, size)
    _, b, _ = grow(srv, size)
    a, b = values_of(a), values_of(b)
    for mix in range(1, 7):
        cookies = {n: (a if mix & (1 << i) else b)[n] for i, n in enumerate(names(3))}
        assert show(srv, cookies).text == INVALID, mix
    # both complete sessions sent (a planted one first): chunk names duplicated -> no session
    both = list(a.items()) + list(b.items())
    assert show(srv, both).text == INVALID


def test_sibling_plants_chunked_head_next_to_plain_session(nginx):
    """Cookie tossing: the user has a one-cookie session; a sibling plants its own valid
    chunked session (head + chunk) for the parent domain. Two valid -> no session."""
    srv = nginx(site(3, "session_encrypt off;"))
    own = make_cookie(srv.secrets[0], {"big": "own"})
    planted = split(make_cookie(srv.secrets[0], {"big": "evil" * 1200}), 2)
    cookies = [(NAME, planted[NAME]), (f"{NAME}_1", planted[f"{NAME}_1"]), (NAME, own)]
    r = show(srv, cookies)
    assert r.text == INVALID
    assert session_lines(r) == ({}, {})
    # with the planted head only (no chunk): the user's own session stands
    r = show(srv, [(NAME, planted[NAME]), (NAME, own)])
    assert r.text == "status=valid big=own more=\n"


def test_planted_chunk_cannot_replace_a_chunk(nginx):
    srv = nginx(site(3, "session_encrypt off;"))
    mine = split(make_cookie(srv.secrets[0], {"big": "m" * 5000}), 2)
    theirs = split(make_cookie(srv.secrets[0], {"big": "t" * 5000}), 2)
    cookies = [(f"{NAME}_1", theirs[f"{NAME}_1"])] + list(mine.items())
    assert show(srv, cookies).text == INVALID
    cookies = list(mine.items()) + [(f"{NAME}_1", theirs[f"{NAME}_1"])]
    assert show(srv, cookies).text == INVALID


def test_chunk_of_another_cookie_name_is_not_accepted(nginx):
    """The cookie name is bound into the MAC: an envelope sealed for `other` cut into chunks of
    `session` is not a session."""
    srv = nginx(site(3, "session_encrypt off;"))
    env = make_cookie(srv.secrets[0], {"big": "o" * 5000}, name="other")
    assert show(srv, split(env, 2)).text == INVALID


# ---- cookie_set / cookie_delete ------------------------------------------------------------------


def test_cookie_set_from_variable_cannot_write_chunks(nginx):
    srv = nginx(site(3, "session_encrypt off;", locations=LOCATIONS + r"""
    location = /cs { cookie_set $arg_n $arg_v; return 200 "cs\n"; }
    location = /cd { cookie_delete $arg_n; return 200 "cd\n"; }
"""))
    for n in (f"{NAME}_1", f"{NAME}_15", f"{NAME}_01", f"{NAME}_99", f"{NAME}_csrf", NAME):
        for path in (f"/cs?n={n}&v=x", f"/cd?n={n}"):
            r = srv.raw(path, [])
            assert r.status == 200
            assert not [l for l in set_cookie_headers(r) if l.startswith(n + "=")], (path, r.set_cookies)


# ---- stale chunks on every kind of write ------------------------------------------------------


def chunked_site(extra_locations=""):
    return site(4, "session_encrypt off;", locations=LOCATIONS + extra_locations)


def test_regenerate_and_shrink_expire_stale_chunks(nginx):
    srv = nginx(chunked_site(r"""
    location = /regen { session_regenerate; session_set big small; return 200 "ok\n"; }
"""))
    _, s, _ = grow(srv, max_value(2, "signed") + 10)
    cookies = values_of(s)
    assert sorted(cookies) == names(3)
    r = srv.raw("/regen", [cookie_header(cookies)])
    st, ex = session_lines(r)
    assert list(st) == [NAME] and sorted(ex) == [f"{NAME}_1", f"{NAME}_2"], (st, ex)


def test_expired_chunked_session_rewritten_expires_chunks(nginx):
    srv = nginx(site(3, "session_encrypt off; session_lifetime 10s;"))
    import time
    old = int(time.time()) - 3600
    env = make_cookie(srv.secrets[0], {"big": "e" * 5000}, created=old, refreshed=old)
    cookies = split(env, 3)
    r = show(srv, cookies)
    assert r.text.startswith("status=expired") and session_lines(r) == ({}, {})
    r = srv.raw("/set?v=tiny", [cookie_header(cookies)])
    st, ex = session_lines(r)
    assert list(st) == [NAME] and sorted(ex) == [f"{NAME}_1", f"{NAME}_2"]


def test_refused_request_writes_no_chunk(nginx):
    srv = nginx(site(3, "session_encrypt off;", locations=LOCATIONS + r"""
    location = /denied { deny all; session_set big $arg_v; session_destroy; }
    location = /req { session_require; session_set big $arg_v; return 200 "x\n"; }
"""))
    _, s, _ = grow(srv, max_value(2, "signed") + 10)
    cookies = values_of(s)
    for path in ("/denied?v=" + "y" * 9000, "/req?v=" + "y" * 9000):
        r = srv.raw(path, [cookie_header(cookies)])
        assert r.status in (401, 403, 302), r.status
        assert session_lines(r) == ({}, {}), path


def test_error_page_does_not_write_half_session(nginx):
    """Too large for N cookies: nothing at all is written (not the head alone)."""
    srv = nginx(site(2, "session_encrypt off;"))
    _, s, _ = grow(srv, max_value(2, "signed"))
    cookies = values_of(s)
    r = srv.raw("/more?v=" + "x" * 3000, [cookie_header(cookies)])
    assert session_lines(r) == ({}, {}), r.set_cookies
    assert show(srv, cookies).text.startswith("status=valid")


# ---- configuration: several N / names sharing cookies -----------------------------------------


def test_lower_n_location_does_not_touch_chunks_on_read(nginx):
    """/a chunks=3 and /b chunks=1 share the cookie name: a read in /b reports invalid and
    writes nothing."""
    srv = nginx(server_conf(r"""
    location = /a { session_cookie session chunks=3; session_set big $arg_v; return 200 "ok\n"; }
    location = /b { session_cookie session; return 200 "status=$session_status big=$session_big\n"; }
""", "session_encrypt off;", BIG_BUFFERS))
    r = srv.raw("/a?v=" + "x" * 5000, [])
    cookies = values_of(session_lines(r)[0])
    assert sorted(cookies) == names(2)
    r = srv.raw("/b", [cookie_header(cookies)])
    assert r.text.startswith("status=invalid") and session_lines(r) == ({}, {})


def test_other_locations_session_cookie_named_like_a_chunk(nginx, nginx_t):
    """FINDING: location /a has `session_cookie session chunks=3`, location /b
    `session_cookie session_1` (a separate, small session). The name session_1 is one of /a's
    chunk names: nginx -t accepts the configuration, and /a's writes expire (or overwrite) /b's
    session cookie - a request to /a logs the user out of /b."""
    conf = server_conf(r"""
    location = /a { session_cookie session chunks=3; session_set big $arg_v; return 200 "ok\n"; }
    location = /b { session_cookie session_1; session_set user $arg_u; return 200 "ok\n"; }
    location = /bshow { session_cookie session_1; return 200 "status=$session_status user=$session_user\n"; }
""", "session_encrypt off;", BIG_BUFFERS)
    rc, out = nginx_t(conf)
    if rc != 0:
        return  # refused at nginx -t: the fix
    srv = nginx(conf)
    r = srv.raw("/b?u=alice", [])
    b = {n: v for n, v in ((l.split("=", 1)[0], helpers.cookie_value(l)) for l in r.set_cookies)}
    assert "session_1" in b
    assert srv.raw("/bshow", [("Cookie", f"session_1={b['session_1']}")]).text.startswith(
        "status=valid user=alice")
    # a plain (one-cookie) write in /a with the browser's cookies
    r = srv.raw("/a?v=small", [("Cookie", f"session_1={b['session_1']}")])
    killed = [l for l in r.set_cookies if l.startswith("session_1=")]
    assert not killed, f"/a's write touched /b's session cookie: {killed}"
    # a chunked write in /a overwrites /b's session cookie with a chunk
    r = srv.raw("/a?v=" + "x" * 5000, [("Cookie", f"session_1={b['session_1']}")])
    killed = [l for l in r.set_cookies if l.startswith("session_1=")]
    assert not killed, f"/a's write replaced /b's session cookie: {killed[0][:80]}"


def test_csrf_cookie_is_not_a_chunk(nginx):
    srv = nginx(site(3, "session_encrypt off;"))
    env = make_cookie(srv.secrets[0], {"big": "k" * 5000})
    cut = split(env, 2)
    cookies = dict(cut, **{f"{NAME}_csrf": "x" * 100})
    assert show(srv, cookies).text.startswith("status=valid big=kkk")
    r = srv.raw("/logout", [cookie_header(cookies)])
    assert not [l for l in r.set_cookies if l.startswith(f"{NAME}_csrf=")]


def test_many_requests_with_full_chunks_no_growth(nginx):
    srv = nginx(site(16, "session_encrypt off;", http_extra="large_client_header_buffers 4 128k;"))
    env = make_cookie(srv.secrets[0], {"big": "g" * 40000})
    cut = split(env, 16)
    heads = [(NAME, f"16.{cut[NAME][3:]}")] * 1
    # eight candidate heads + 15 chunks
    cookies = [(NAME, f"{k}.junk{k}") for k in range(2, 9)] + list(cut.items())
    for _ in range(30):
        r = show(srv, cookies)
        assert r.status == 200
        assert r.text.startswith("status=valid big=ggg"), r.text[:80]


def test_chunks_and_their_expiry_carry_the_cookies_path_and_domain(nginx):
    srv = nginx(server_conf(r"""
    location /app/ {
        location = /app/set { session_set big $arg_v; return 200 "ok\n"; }
        location = /app/out { session_destroy; return 200 "bye\n"; }
    }
""", "session_encrypt off; session_cookie session path=/app domain=example.test max_age=1h chunks=3;",
        BIG_BUFFERS))
    r = srv.raw("/app/set?v=" + "x" * 5000, [])
    lines = [l for l in r.set_cookies if re.match(r"^session(_\d+)?=", l)]
    assert len(lines) == 2, lines
    for l in lines:
        assert len(l) <= 4096
        assert "Path=/app" in l and "Domain=example.test" in l, l
    cookies = {l.split("=", 1)[0]: helpers.cookie_value(l) for l in lines}
    hdr = "; ".join(f"{k}={v}" for k, v in cookies.items())
    r = srv.raw("/app/out", [("Cookie", hdr)])
    exp = [l for l in r.set_cookies if re.match(r"^session(_\d+)?=;", l)]
    assert sorted(l.split("=", 1)[0] for l in exp) == ["session", "session_1"], r.set_cookies
    for l in exp:
        assert "Path=/app" in l and "Domain=example.test" in l, l
    assert any("private" in v.lower() for k, v in r.headers if k.lower() == "cache-control")


def test_chunked_write_is_private_and_varies(nginx):
    srv = nginx(site(3, "session_encrypt off;"))
    r = srv.raw("/set?v=" + "x" * 5000, [])
    h = {k.lower(): v for k, v in r.headers}
    assert "private" in h.get("cache-control", "").lower() or "no-store" in h.get("cache-control", "").lower()
    assert "cookie" in h.get("vary", "").lower()


def test_cookie_set_in_a_location_with_another_session_cookie_writes_chunks(nginx, nginx_t):
    """FINDING (same family): the own-cookie check of cookie_set/cookie_delete only knows the
    location's own session_cookie. A server whose session is `session chunks=3` and a location
    with another session cookie can cookie_set / cookie_delete `session_1` (a chunk of the
    server's session) and `session` itself, from a literal name (nginx -t passes)."""
    conf = server_conf(r"""
    location = /set { session_set big $arg_v; return 200 "ok\n"; }
    location = /show { return 200 "status=$session_status big=$session_big\n"; }
    location = /widget { session_cookie widget; cookie_delete session_1; cookie_set session 1.x; return 200 "w\n"; }
""", "session_encrypt off; session_cookie session chunks=3;", BIG_BUFFERS)
    rc, out = nginx_t(conf)
    if rc != 0:
        return
    srv = nginx(conf)
    r = srv.raw("/widget", [])
    written = [l for l in r.set_cookies if re.match(r"^session(_\d+)?=", l)]
    assert not written, f"cookie_set/cookie_delete wrote the server's session cookies: {written}"


def test_location_redeclaring_session_cookie_without_chunks_replaces_the_session(nginx):
    """Observation (documents current behaviour, passes): a location that redeclares
    `session_cookie session` (e.g. to change one attribute) gets chunks=1; it cannot read the
    server's chunked session (invalid, nothing written on read), and a write there starts a new
    session that replaces the chunked one (its chunks expired). No nginx -t warning."""
    srv = nginx(server_conf(r"""
    location = /set { session_set big $arg_v; session_set user alice; return 200 "ok\n"; }
    location = /show { return 200 "status=$session_status user=$session_user\n"; }
    location = /prefs { session_cookie session samesite=strict; session_set theme $arg_t; return 200 "p\n"; }
""", "session_encrypt off; session_cookie session chunks=3;", BIG_BUFFERS))
    r = srv.raw("/set?v=" + "x" * 5000, [])
    cookies = values_of(session_lines(r)[0])
    assert sorted(cookies) == names(2)
    assert show(srv, cookies).text == "status=valid user=alice\n"
    r = srv.raw("/prefs?t=dark", [cookie_header(cookies)])
    st, ex = session_lines(r)
    assert list(st) == [NAME] and list(ex) == [f"{NAME}_1"]
    new = values_of(st)
    assert show(srv, new).text == "status=valid user=\n"   # the user is logged out


def test_header_buffer_warning_follows_the_server(nginx_t):
    """chunks at http level, buffers per server: warns for the small server only; a location
    that raises chunks= in a server with small buffers warns too."""
    snippet = (
        "session_cookie session chunks=4;\n"
        "server { listen 127.0.0.1:{port}; session_secret_file {secret_file}; server_name big;"
        " large_client_header_buffers 4 32k; location / { return 200; } }\n"
        "server { listen 127.0.0.1:{port}; session_secret_file {secret_file}; server_name small;"
        " location / { return 200; }"
        " location /x { session_cookie session chunks=3; return 200; } }\n")
    rc, out = nginx_t(snippet)
    assert rc == 0, out
    warns = [l for l in out.splitlines() if "large_client_header_buffers" in l and "[warn]" in l]
    assert any('server "small"' in l for l in warns), out
    assert not any('server "big"' in l for l in warns), out


def test_ssi_subrequest_write_is_all_or_nothing(nginx):
    """An SSI subrequest whose location sets a large session: whatever the module does with a
    subrequest's write, the browser is never left with part of a chunked session (a head
    without its chunks or chunks without their head), and nothing is logged at alert."""
    srv = nginx(site(3, "session_encrypt off;", locations=LOCATIONS + r"""
    location = /page { ssi on; default_type text/html;
        return 200 '<!--# include virtual="/set?v=$arg_v" -->|end'; }
"""))
    mark = srv.log_mark()
    r = srv.raw("/page?v=" + "x" * 5000, [])
    assert r.status == 200
    st, ex = session_lines(r)
    if st:
        assert NAME in st and sorted(st) == names(len(st)), st
        head = helpers.cookie_value(st[NAME])
        k = int(head.split(".", 1)[0]) if head[0].isdigit() else 1
        assert len(st) == k, st
        assert show(srv, values_of(st)).text.startswith("status=valid big=xxx")
    no_alerts(srv, mark)
