"""Large sessions in chunked cookies (session_cookie ... chunks=N, src/core/chunks.h).

A session cookie value (one envelope) whose Set-Cookie line would pass 4096 bytes is cut into
cookies session ("<k>." + slice 0), session_1, ..., session_{k-1}, each line at most 4096 bytes;
the joined value is verified as one envelope. These tests drive a real nginx:

* sizes around every boundary (just under / over 1, 2, 3 cookies; exactly chunks=N; one byte
  more is refused with one error line and nothing sent), for signed and encrypted sessions,
  computed with an independent Python model of the split;
* tampering with any one chunk, an old chunk replayed next to a new head, a chunk missing, two
  chunks swapped, a chunk name sent twice: invalid, never a mix of two sessions;
* shrinking and growing one session (the chunks no longer needed are expired in the same
  response), destroy and logout (every chunk the request carried is expired), renewal and the
  idle timeout, the login flow with its CSRF cookie;
* configuration: chunks=0/abc/17 and flask mode refused, the nginx -t warning when N x 4096 does
  not fit large_client_header_buffers (and none when it does), the Redis store (accepted: the
  cookie holds only the id);
* a real Chromium keeping a 3-cookie session across requests.
"""

import re
import time
import urllib.parse

import pytest

import helpers
from helpers import (DELETED, cookie_value, make_cookie, payload_of, seal_envelope,
                     server_conf, set_cookie_headers)

NAME = "session"
TAIL = "; Path=/; HttpOnly; SameSite=Lax"
LINE_MAX = 4096
BIG_BUFFERS = "large_client_header_buffers 4 64k;"

LOCATIONS = r"""
    location = /set   { session_set big $arg_v; return 200 "ok\n"; }
    location = /more  { session_set more $arg_v; return 200 "ok\n"; }
    location = /unset { session_unset big; return 200 "ok\n"; }
    location = /show  { return 200 "status=$session_status big=$session_big more=$session_more\n"; }
    location = /logout { session_destroy; return 200 "bye\n"; }
    location = /clear { session_clear; return 200 "cleared\n"; }
"""

KINDS = [("signed", "session_encrypt off;"), ("encrypted", "session_encrypt on;")]


def site(chunks=3, extra="", http_extra=BIG_BUFFERS, locations=LOCATIONS, cookie=None):
    directive = cookie if cookie is not None else f"session_cookie {NAME} chunks={chunks};"
    return server_conf(locations, f"{directive} {extra}", http_extra)


# ---- an independent model of the split -----------------------------------------------------------

OVERHEAD = len(f"{NAME}={TAIL}")   # the Set-Cookie line of NAME without its value


def b64len(n: int) -> int:
    return (4 * n + 2) // 3


def envelope_len(vlen: int, kind: str) -> int:
    payload = len('{"big":""}') + vlen
    body = 19 + payload + (32 if kind == "signed" else 12 + 16)
    return b64len(body)


def capacity(k: int) -> int:
    """Value bytes k cookies hold (k = 1: NAME alone, no head)."""
    if k == 1:
        return LINE_MAX - OVERHEAD
    return (LINE_MAX - OVERHEAD - len(f"{k}.")) + sum(
        LINE_MAX - OVERHEAD - len(f"_{i}") for i in range(1, k))


def max_value(k: int, kind: str) -> int:
    """The longest $arg_v whose session fits in k cookies."""
    v = 0
    while envelope_len(v + 1, kind) <= capacity(k):
        v += 1
    return v


# ---- reading responses -----------------------------------------------------------------------------

CHUNK_RE = re.compile(rf"^{NAME}(?:_([1-9][0-9]?))?$")


def session_lines(resp):
    """(set, expired): the session's own Set-Cookie lines, name -> line. Fails on a line over
    4096 bytes or a cookie sent twice."""
    set_, expired = {}, {}
    for line in set_cookie_headers(resp):
        name = line.split("=", 1)[0]
        if not CHUNK_RE.match(name):
            continue
        assert len(line) <= LINE_MAX, f"{name}: a {len(line)}-byte Set-Cookie line"
        target = expired if "Max-Age=0" in line else set_
        assert name not in set_ and name not in expired, f"{name} sent twice"
        target[name] = line
    return set_, expired


def names(k: int):
    return [NAME] + [f"{NAME}_{i}" for i in range(1, k)]


def joined_value(cookies: dict) -> str:
    """The envelope a set of cookies {name: value} carries (what the module joins)."""
    head = cookies[NAME]
    m = re.match(r"^([0-9]+)\.(.*)$", head)
    if not m:
        return head
    k = int(m.group(1))
    return m.group(2) + "".join(cookies[f"{NAME}_{i}"] for i in range(1, k))


def values_of(lines: dict) -> dict:
    return {n: cookie_value(l) for n, l in lines.items()}


def cookie_header(cookies) -> tuple:
    """A Cookie header for [(name, value), ...] or {name: value} (order kept)."""
    items = cookies.items() if isinstance(cookies, dict) else cookies
    return ("Cookie", "; ".join(f"{n}={v}" for n, v in items))


def show(srv, cookies, **kw):
    return srv.raw("/show", [cookie_header(cookies)], **kw)


def split(value: str, k: int) -> dict:
    """Any split of an envelope into k cookies (the module joins, whatever the cut)."""
    n = len(value)
    cuts = [n * i // k for i in range(k + 1)]
    parts = [value[cuts[i]:cuts[i + 1]] for i in range(k)]
    out = {NAME: f"{k}." + parts[0]}
    for i in range(1, k):
        out[f"{NAME}_{i}"] = parts[i]
    return out


def grow(srv, size: int, cookies=None):
    """/set?v=<size x's> with the given cookies; returns (response, set lines, expired lines)."""
    headers = [cookie_header(cookies)] if cookies else []
    r = srv.raw("/set?v=" + "x" * size, headers)
    assert r.status == 200 and r.text == "ok\n", (r.status, r.text[:200])
    s, e = session_lines(r)
    return r, s, e


def flip(value: str, at: int) -> str:
    """value with one base64url character changed at index at."""
    c = value[at]
    return value[:at] + ("B" if c == "A" else "A") + value[at + 1:]


def rejected(srv, mark, what):
    return [l for l in srv.log_since(mark) if "rejected" in l and what in l]


# ---- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,directive", KINDS, ids=[k[0] for k in KINDS])
def test_sizes_around_every_boundary(nginx, kind, directive):
    """Just under and just over one, two and three cookies with chunks=3: the fewest cookies,
    every line <= 4096 bytes, NAME alone has no head; the cookies read back give the value.
    One byte over three cookies: not sent at all, one [error] line."""
    srv = nginx(site(3, directive))
    cases = []
    for k in (1, 2, 3):
        cases.append((max_value(k, kind), k))
        if k < 3:
            cases.append((max_value(k, kind) + 1, k + 1))
    for size, k in cases:
        r, s, e = grow(srv, size)
        assert sorted(s) == sorted(names(k)), f"{size} bytes: {sorted(s)}, expected {k} cookies"
        assert not e, e
        values = values_of(s)
        if k == 1:
            assert re.fullmatch(r"[A-Za-z0-9_-]+", values[NAME]), "no head on a single cookie"
        else:
            assert values[NAME].startswith(f"{k}."), values[NAME][:10]
        # The tightest case of each count fills its lines to the byte.
        if size == max_value(k, kind):
            assert sum(len(l) for l in s.values()) > k * LINE_MAX - 10 - 2 * k
        env = joined_value(values)
        assert len(env) == envelope_len(size, kind)
        if kind == "signed":
            assert payload_of(env) == {"big": "x" * size}
        back = show(srv, values)
        assert back.text == f"status=valid big={'x' * size} more=\n", back.text[:100]
        assert not session_lines(back)[0], "a read-only request wrote the session"

    # Exactly chunks=3 cookies fit; one byte more is refused as a single cookie was before.
    mark = srv.log_mark()
    r, s, e = grow(srv, max_value(3, kind) + 1)
    assert not s and not e, (s, e)
    lines = srv.grep_log("too large", mark)
    assert len(lines) == 1 and "[error]" in lines[0], srv.log_since(mark)
    assert 'cookie "session" too large' in lines[0] and "chunks=" in lines[0]


def test_long_attributes_and_https_stay_within_4096(nginx, tls_cert):
    """The room per cookie is what the attributes leave: a long path, a domain, Max-Age and
    Secure (https) are counted in every line, the head's and each chunk's."""
    cookie = (f"session_cookie {NAME} path=/{'p' * 600} domain=example.com max_age=7d "
              "secure samesite=strict chunks=4;")
    listen = ("listen 127.0.0.1:{port};\n    listen 127.0.0.1:{port2} ssl;\n"
              "    ssl_certificate {cert};\n    ssl_certificate_key {key};")
    # (The Cookie header is sent by hand: the cookie's path need not be the request's.)
    srv = nginx(server_conf(LOCATIONS, cookie + " session_encrypt off;", BIG_BUFFERS,
                            listen=listen), cert=tls_cert[0], key=tls_cert[1])
    base = ""
    for size in (2000, 3200, 6000, 9000):
        r = srv.get(f"{base}/set?v=" + "x" * size, scheme="https", port=srv.port2)
        assert r.status_code == 200
        s, e = session_lines(r)     # (asserts every line <= 4096)
        assert s and not e
        longest = max(len(l) for l in s.values())
        assert all("; Domain=example.com; Max-Age=604800; Secure; HttpOnly; SameSite=Strict"
                   in l for l in s.values())
        back = srv.get(f"{base}/show", scheme="https", port=srv.port2,
                       headers={"Cookie": cookie_header(values_of(s))[1]})
        assert back.text == f"status=valid big={'x' * size} more=\n", (size, longest)
    assert len(s) == 4


def test_refused_growth_leaves_the_session_as_it_was(nginx):
    """A session that would need more than chunks= cookies: nothing is sent, not even the
    expiry of a chunk, so the browser keeps the previous session whole."""
    srv = nginx(site(2, "session_encrypt off;"))
    _, s, _ = grow(srv, max_value(2, "signed"))
    old = values_of(s)
    mark = srv.log_mark()
    r, s2, e2 = grow(srv, max_value(2, "signed") + 50, old)
    assert not s2 and not e2
    assert srv.count_log("too large", mark, level="error") == 1
    assert show(srv, old).text.startswith("status=valid big=xxx")


def test_one_chunk_by_default(nginx):
    """Without chunks= nothing changes: a session over one cookie is refused (as ever), and no
    chunk cookie is ever written or expired."""
    srv = nginx(server_conf(LOCATIONS, "session_encrypt off;", BIG_BUFFERS))
    _, s, e = grow(srv, max_value(1, "signed"))
    assert list(s) == [NAME] and not e
    mark = srv.log_mark()
    r, s, e = grow(srv, max_value(1, "signed") + 1)
    assert not s and not e
    assert srv.count_log("too large", mark, level="error") == 1
    # A chunked session (made under chunks=3 elsewhere) is not read here: invalid.
    env = make_cookie(srv.secrets[0], {"big": "y" * 5000})
    mark = srv.log_mark()
    assert show(srv, split(env, 2)).text.startswith("status=invalid")
    assert rejected(srv, mark, "more cookies than chunks= allows")


def test_cookie_header_over_the_buffer_is_refused_by_nginx(nginx):
    """Why nginx -t warns: three full chunks do not fit in one 8k header buffer (the default),
    and nginx refuses the request before the module sees it."""
    srv = nginx(site(3, "session_encrypt off;", http_extra=""))
    env = make_cookie(srv.secrets[0], {"big": "z" * (max_value(3, "signed") - 100)})
    r = show(srv, split(env, 3))
    assert r.status == 400, r.status
    # With the buffers raised the same request is served.
    srv2 = nginx(site(3, "session_encrypt off;"))
    env = make_cookie(srv2.secrets[0], {"big": "z" * (max_value(3, "signed") - 100)})
    assert show(srv2, split(env, 3)).text.startswith("status=valid")


# ---- tampering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,directive", KINDS, ids=[k[0] for k in KINDS])
def test_any_changed_chunk_is_invalid(nginx, kind, directive):
    """A byte changed in any one of the three cookies (the head's slice included) makes the
    session invalid, also after the untouched session was served (and cached) on the same
    connection."""
    srv = nginx(site(3, directive))
    _, s, _ = grow(srv, max_value(2, kind) + 500)
    good = values_of(s)
    assert len(good) == 3
    sess = srv.session()
    for _ in range(3):
        r = srv.get("/show", sess, headers={"Cookie": cookie_header(good)[1]})
        assert r.text.startswith("status=valid")
    for name in names(3):
        for at in (2 if name == NAME else 0, len(good[name]) // 2, len(good[name]) - 1):
            bad = dict(good)
            bad[name] = flip(good[name], at)
            r = srv.get("/show", sess, headers={"Cookie": cookie_header(bad)[1]})
            assert r.text == "status=invalid big= more=\n", (name, at, r.text)
            assert not session_lines(r)[0] and not session_lines(r)[1], "an invalid read wrote"
    assert srv.get("/show", sess, headers={"Cookie": cookie_header(good)[1]}).text.startswith(
        "status=valid")


def test_verified_cookie_table_and_chunks(nginx):
    """A one-cookie session goes through the verified-cookie table; the same envelope sent cut
    in two is that session (the joined value is verified in full, not looked up), and a byte
    changed in either part is invalid even right after the cached original was served."""
    srv = nginx(site(3, "session_encrypt off;"))
    _, s, _ = grow(srv, 300)
    value = values_of(s)[NAME]
    sess = srv.session()
    for _ in range(3):
        r = srv.get("/show", sess, headers={"Cookie": f"{NAME}={value}"})
        assert r.text.startswith("status=valid big=xxx")
    cut = split(value, 2)
    r = srv.get("/show", sess, headers={"Cookie": cookie_header(cut)[1]})
    assert r.text.startswith("status=valid big=xxx")
    for name in names(2):
        bad = dict(cut, **{name: flip(cut[name], len(cut[name]) - 3)})
        r = srv.get("/show", sess, headers={"Cookie": cookie_header(bad)[1]})
        assert r.text == "status=invalid big= more=\n", name
        r = srv.get("/show", sess, headers={"Cookie": f"{NAME}={value}"})
        assert r.text.startswith("status=valid big=xxx")


def test_old_chunk_with_a_new_head_is_invalid(nginx):
    """The session changes (same size, so the same three cookies): the old value of any chunk
    next to the new others is invalid, whichever chunk it is - never a mix of two states."""
    srv = nginx(site(3, "session_encrypt on;"))
    size = max_value(2, "encrypted") + 700
    _, s1, _ = grow(srv, size)
    old = values_of(s1)
    r = srv.raw("/set?v=" + "w" * size, [cookie_header(old)])
    s2, e2 = session_lines(r)
    new = values_of(s2)
    assert sorted(new) == names(3) and not e2
    assert show(srv, new).text.startswith("status=valid big=www")
    assert show(srv, old).text.startswith("status=valid big=xxx")  # (still within its lifetime)
    for mix in range(1, 7):   # every mix of old and new, head included
        cookies = {n: (old if mix & (1 << i) else new)[n] for i, n in enumerate(names(3))}
        assert show(srv, cookies).text == "status=invalid big= more=\n", mix


def test_old_last_chunk_of_a_signed_session_is_invalid(nginx):
    """Signed: the MAC is in the last chunk; a stale last chunk next to a new head fails."""
    srv = nginx(site(3, "session_encrypt off;"))
    size = max_value(2, "signed") + 700
    _, s1, _ = grow(srv, size)
    old = values_of(s1)
    time.sleep(1.1)   # a new refreshed time: the new envelope differs from the old one
    r = srv.raw("/more?v=1", [cookie_header(old)])
    new = values_of(session_lines(r)[0])
    assert sorted(new) == names(3)
    mark = srv.log_mark()
    replay = dict(new, **{f"{NAME}_2": old[f"{NAME}_2"]})
    assert show(srv, replay).text == "status=invalid big= more=\n"
    replay = dict(old, **{NAME: new[NAME]})
    assert show(srv, replay).text == "status=invalid big= more=\n"
    assert rejected(srv, mark, "")


def test_missing_reordered_and_duplicated_chunks(nginx):
    srv = nginx(site(4, "session_encrypt on;"))
    _, s, _ = grow(srv, max_value(3, "encrypted") + 10)
    good = values_of(s)
    assert sorted(good) == names(4)
    invalid = "status=invalid big= more=\n"

    # A chunk missing (each one in turn): invalid, logged as such.
    for n in names(4)[1:]:
        mark = srv.log_mark()
        cookies = {k: v for k, v in good.items() if k != n}
        assert show(srv, cookies).text == invalid, n
        assert rejected(srv, mark, "a chunk cookie is missing"), srv.log_since(mark)

    # Two chunks' values swapped.
    for a, b in ((1, 2), (2, 3), (1, 3)):
        cookies = dict(good)
        cookies[f"{NAME}_{a}"], cookies[f"{NAME}_{b}"] = good[f"{NAME}_{b}"], good[f"{NAME}_{a}"]
        assert show(srv, cookies).text == invalid, (a, b)

    # The cookies in another order in the header are the same session.
    assert show(srv, list(reversed(list(good.items())))).text.startswith("status=valid")

    # A chunk name twice: with the same value it is one chunk; with two values, invalid (a
    # planted parent-domain chunk can deny the session, never replace it).
    same = list(good.items()) + [(f"{NAME}_2", good[f"{NAME}_2"])]
    assert show(srv, same).text.startswith("status=valid")
    mark = srv.log_mark()
    planted = list(good.items()) + [(f"{NAME}_2", flip(good[f"{NAME}_2"], 5))]
    assert show(srv, planted).text == invalid
    assert rejected(srv, mark, "sent twice with different values")
    planted = [(f"{NAME}_1", "AAAA")] + list(good.items())   # the planted one first
    assert show(srv, planted).text == invalid

    # A head whose count was changed.
    for k in (2, 3, 5):
        cookies = dict(good)
        cookies[NAME] = f"{k}." + good[NAME].split(".", 1)[1]
        cookies[f"{NAME}_4"] = good[f"{NAME}_1"]
        assert show(srv, cookies).text == invalid, k
    for head in ("1." + good[NAME][2:], "04." + good[NAME][2:], "4.", "4"):
        assert show(srv, dict(good, **{NAME: head})).text == invalid, head[:5]

    # Chunks the head does not count are not part of the session (and cost nothing).
    extra = dict(good, **{f"{NAME}_7": "junk", f"{NAME}_csrf": "x"})
    assert show(srv, extra).text.startswith("status=valid")


# ---- shrink, grow, destroy -----------------------------------------------------------------------


def test_shrink_and_grow_in_one_session(nginx):
    """Through a real cookie jar: 3 cookies -> 1 (session_1, session_2 expired in the same
    response, with the session cookie's path) -> 3 -> 2 (session_2 expired) -> 3."""
    srv = nginx(site(3, "session_encrypt off;"))
    jar = srv.session()

    def step(path, want, gone):
        r = srv.get(path, jar)
        assert r.status_code == 200
        s, e = session_lines(r)
        assert sorted(s) == sorted(names(want)), (path[:20], sorted(s))
        assert sorted(e) == sorted(gone), (path[:20], sorted(e))
        for n, line in e.items():
            assert line == f"{n}=; Path=/; {DELETED}{TAIL.replace('; Path=/', '')}", line
        assert sorted(c.name for c in jar.cookies) == sorted(names(want)), list(jar.cookies)
        return r

    three = max_value(2, "signed") + 100
    two = max_value(1, "signed") + 100
    step("/set?v=" + "a" * three, 3, [])
    step("/set?v=small", 1, [f"{NAME}_1", f"{NAME}_2"])
    assert srv.get("/show", jar).text == "status=valid big=small more=\n"
    step("/set?v=" + "b" * three, 3, [])
    assert srv.get("/show", jar).text == f"status=valid big={'b' * three} more=\n"
    step("/set?v=" + "c" * two, 2, [f"{NAME}_2"])
    assert srv.get("/show", jar).text == f"status=valid big={'c' * two} more=\n"
    # Growing by another key.
    step("/more?v=" + "d" * (three - two), 3, [])
    assert srv.get("/show", jar).text == \
        f"status=valid big={'c' * two} more={'d' * (three - two)}\n"
    step("/unset", 2, [f"{NAME}_2"])   # `more` alone is two cookies
    step("/set?v=tiny", 2, [])
    assert srv.get("/show", jar).text == f"status=valid big=tiny more={'d' * (three - two)}\n"


def test_stale_chunks_beyond_the_count_are_expired_on_the_next_write(nginx):
    """A chunk left over from a larger session (a lost response) does not count; the next
    response that writes the session expires it."""
    srv = nginx(site(4, "session_encrypt off;"))
    _, s, _ = grow(srv, max_value(1, "signed") + 10)
    cookies = dict(values_of(s), **{f"{NAME}_2": "leftover", f"{NAME}_3": "leftover"})
    r = show(srv, cookies)
    assert r.text.startswith("status=valid") and session_lines(r) == ({}, {})
    r = srv.raw("/more?v=1", [cookie_header(cookies)])
    s, e = session_lines(r)
    assert sorted(s) == names(2) and sorted(e) == [f"{NAME}_2", f"{NAME}_3"]


@pytest.mark.parametrize("path", ["/logout", "/clear"])
def test_destroy_expires_every_chunk(nginx, path):
    """session_destroy (and session_clear, which leaves the session empty) expires the session
    cookie and every chunk the request carried, also ones past the head's count."""
    srv = nginx(site(3, "session_encrypt off;"))
    _, s, _ = grow(srv, max_value(2, "signed") + 10)
    cookies = dict(values_of(s), **{f"{NAME}_5": "stale", f"{NAME}_csrf": "kept"})
    r = srv.raw(path, [cookie_header(cookies)])
    assert r.status == 200
    s, e = session_lines(r)
    assert not s
    assert sorted(e) == sorted(names(3) + [f"{NAME}_5"]), sorted(e)
    assert not [l for l in set_cookie_headers(r) if l.startswith(f"{NAME}_csrf=")]
    assert e[NAME] == helpers.session_deletion()


def test_destroy_of_an_invalid_chunked_session_expires_its_chunks(nginx):
    srv = nginx(site(3, "session_encrypt off;"))
    cookies = {NAME: "3.garbage", f"{NAME}_1": "x", f"{NAME}_2": "y"}
    r = srv.raw("/logout", [cookie_header(cookies)])
    s, e = session_lines(r)
    assert not s and sorted(e) == names(3)


def test_lowered_chunks_still_expires_old_chunks(nginx):
    """chunks= lowered to 1: a session written under chunks=3 is invalid, and the next session
    written (here: a new one) expires the old chunks."""
    srv = nginx(site(1, "session_encrypt off;"))
    env = make_cookie(srv.secrets[0], {"big": "y" * 6000})
    cookies = split(env, 3)
    assert show(srv, cookies).text.startswith("status=invalid")
    r = srv.raw("/set?v=small", [cookie_header(cookies)])
    s, e = session_lines(r)
    assert list(s) == [NAME] and sorted(e) == [f"{NAME}_1", f"{NAME}_2"]


# ---- renewal, idle timeout, login -----------------------------------------------------------------


def test_renewal_reissues_every_chunk(nginx):
    srv = nginx(site(3, "session_encrypt off; session_renew 60s;"))
    now = int(time.time())
    size = max_value(1, "signed") + 200       # two cookies as the module cuts it
    data = {"big": "r" * size}
    env = make_cookie(srv.secrets[0], data, created=now - 300, refreshed=now - 120)
    r = show(srv, split(env, 3))               # ... sent cut in three
    assert r.text == f"status=valid big={'r' * size} more=\n"
    s, e = session_lines(r)
    assert sorted(s) == names(2) and sorted(e) == [f"{NAME}_2"], (sorted(s), sorted(e))
    renewed = helpers.decode_envelope(joined_value(values_of(s)))
    assert renewed.created == now - 300 and abs(renewed.refreshed - now) <= 2
    assert payload_of(joined_value(values_of(s))) == data
    assert "private" in r.header_all("Cache-Control")
    # Not due: nothing written.
    r = show(srv, values_of(s))
    assert r.text.startswith("status=valid") and session_lines(r) == ({}, {})


def test_idle_timeout_applies_to_chunked_sessions(nginx):
    srv = nginx(site(3, "session_encrypt on; session_idle_timeout 10m;"))
    now = int(time.time())
    payload = helpers.session_json({"big": "i" * 7000})
    idle = seal_envelope(srv.secrets[0], NAME, payload, created=now - 3600, refreshed=now - 3600)
    fresh = seal_envelope(srv.secrets[0], NAME, payload, created=now - 3600, refreshed=now - 60)
    assert show(srv, split(idle, 3)).text == "status=expired big= more=\n"
    assert show(srv, split(fresh, 3)).text.startswith("status=valid big=iii")


def test_login_flow_with_chunks_and_csrf_cookie(nginx):
    """The login page's CSRF cookie (session_csrf) is not a chunk; logging in over a large
    session replaces it (its chunks expired); the session grows into chunks and logout ends it
    with every chunk."""
    import login_support as L
    users = {"alice": L.hash_password("apr1", "pw")}
    srv = nginx(L.user_file_site(
        redirect="/whoami", server_extra=f"session_cookie {NAME} chunks=3;",
        locations=LOCATIONS.replace("/logout", "/destroy"), http_extra=BIG_BUFFERS),
        files=L.files_for(users))
    jar = srv.session()
    big = max_value(2, "encrypted") + 50
    assert srv.get("/set?v=" + "p" * big, jar).status_code == 200
    assert len([c for c in jar.cookies if CHUNK_RE.match(c.name)]) == 3

    page = L.get_login(srv, jar)
    assert jar.cookies.get(f"{NAME}_csrf")
    r = L.post_login(srv, jar, {"username": "alice", "password": "pw",
                                "csrf_token": page.token})
    assert r.status_code == 303, r.text
    s, e = session_lines(r)
    assert list(s) == [NAME] and sorted(e) == [f"{NAME}_1", f"{NAME}_2"], (s, e)
    assert any(l.startswith(f"{NAME}_csrf=;") and "Max-Age=0" in l
               for l in set_cookie_headers(r))
    assert "user=[alice] status=valid" in L.whoami(srv, jar)

    r = srv.get("/set?v=" + "q" * big, jar)
    assert sorted(session_lines(r)[0]) == names(3)
    assert srv.get("/private", jar).text == "private user=[alice] uri=[/private]\n"
    r = srv.get("/logout", jar)
    s, e = session_lines(r)
    assert not s and sorted(e) == names(3)
    assert not [c for c in jar.cookies if CHUNK_RE.match(c.name)]


def test_login_refused_when_the_new_session_cannot_fit(nginx):
    """The login's own check uses the same split (chunks=2): a new session that fits in two
    cookies logs in."""
    import login_support as L
    users = {"bob": L.hash_password("apr1", "pw")}
    srv = nginx(L.user_file_site(redirect="/whoami",
                                 server_extra=f"session_cookie {NAME} chunks=2;",
                                 http_extra=BIG_BUFFERS),
                files=L.files_for(users))
    jar = srv.session()
    r = L.login(srv, jar, "bob", "pw")
    assert r.status_code == 303
    assert "user=[bob] status=valid" in L.whoami(srv, jar)


# ---- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "abc", "17", "99", "", "-1", "03", "2.5"])
def test_invalid_chunks_values_are_refused(nginx_t, value):
    rc, out = nginx_t(site(cookie=f"session_cookie {NAME} chunks={value};"))
    assert rc != 0, out
    assert "invalid chunks value (a number of cookies, 1 to 16)" in out, out


def test_chunks_only_for_session_cookie(nginx_t):
    rc, out = nginx_t(server_conf('location / { cookie_set a b chunks=2; return 200; }'))
    assert rc != 0 and "chunks= is only for session_cookie" in out, out


def test_chunk_names_stay_reserved(nginx_t):
    for name in (f"{NAME}_1", f"{NAME}_15", f"{NAME}_csrf"):
        rc, out = nginx_t(site(3, locations=f"location / {{ cookie_set {name} v; return 200; }}"))
        assert rc != 0 and "it is the session's own cookie" in out, (name, out)


@pytest.mark.parametrize("other,why", [(f"{NAME}_1", "a chunk name"),
                                       (f"{NAME}_12", "a chunk name"),
                                       (f"{NAME}_csrf", "the CSRF cookie")])
def test_another_session_cookie_named_like_a_chunk_fails_nginx_t(nginx_t, other, why):
    """A write of the chunked session expires or overwrites its chunk names: another location's
    session cookie of that name would be logged out by it (and break it in turn)."""
    locs = (f"location = /a {{ session_set big $arg_v; return 200; }}\n"
            f"location = /b {{ session_cookie {other}; session_set u $arg_u; return 200; }}\n")
    rc, out = nginx_t(site(3, locations=locs))
    assert rc != 0, out
    assert f'session cookie "{other}" in ' in out and f"is {why} of session cookie " \
        f'"{NAME}" in ' in out and "nginx.conf:" in out, out


def test_chunk_names_are_reserved_beside_an_unchunked_cookie_too(nginx_t):
    """A write of an unchunked "session" still expires the chunks a request carries (left from a
    larger chunks= before, or planted): session_1 is refused beside it too; names that are never
    chunk names (session_x, session_16, session_01) are fine."""
    locs = ("location = /a { session_set big $arg_v; return 200; }\n"
            "location = /b { session_cookie session_1; session_set u $arg_u; return 200; }\n")
    rc, out = nginx_t(site(1, locations=locs))
    assert rc != 0 and 'is a chunk name of session cookie "session"' in out, out
    locs = ("location = /a { session_set big $arg_v; return 200; }\n"
            "location = /c { session_cookie session_x; session_set u $arg_u; return 200; }\n"
            "location = /d { session_cookie session_16; session_set u $arg_u; return 200; }\n"
            "location = /e { session_cookie session_01; session_set u $arg_u; return 200; }\n")
    rc, out = nginx_t(site(1, locations=locs))
    assert rc == 0, out
    assert "[warn]" not in out, out


def test_cookie_set_of_another_locations_session_cookies_fails_nginx_t(nginx_t):
    """cookie_set / cookie_delete in a location with its own session cookie still never write
    the server's session cookie, its chunks or its CSRF cookie."""
    for directive in (f"cookie_delete {NAME}_1;", f"cookie_set {NAME} 1.x;",
                      f"cookie_set {NAME}_csrf x;"):
        locs = f"location = /w {{ session_cookie widget; {directive} return 200; }}\n"
        rc, out = nginx_t(site(3, locations=locs))
        assert rc != 0, (directive, out)
        assert "it is the session's own cookie" in out and f'session cookie "{NAME}"' in out \
            and "nginx.conf:" in out, (directive, out)


def test_cookie_set_with_a_variable_never_writes_another_locations_chunks(nginx):
    locs = ("location = /w { session_cookie widget; cookie_set $arg_n $arg_v; "
            "cookie_delete $arg_d; return 200; }\n")
    srv = nginx(site(3, locations=locs))
    mark = srv.log_mark()
    for q in (f"n={NAME}_2&v=x", f"n={NAME}&v=2.x", f"d={NAME}_1", f"d={NAME}", f"n=widget_3&v=1",
              f"d={NAME}_csrf"):
        r = srv.raw("/w?" + q)
        assert r.status == 200 and r.set_cookies == [], (q, r.set_cookies)
    assert srv.count_log("refused to write the session's own cookie", mark, "warn") >= 1
    r = srv.raw("/w?n=other&v=1")
    assert r.set_cookies == ["other=1"], r.set_cookies


def test_one_name_with_different_chunks_warns(nginx_t):
    """A location that redeclares the cookie without chunks= reads a longer session as invalid
    and replaces it: nginx -t says so."""
    locs = ("location = /a { session_set big $arg_v; return 200; }\n"
            f"location = /b {{ session_cookie {NAME} max_age=60; session_set u $arg_u; "
            "return 200; }\n")
    rc, out = nginx_t(site(2, locations=locs))
    assert rc == 0, out
    w = [l for l in out.splitlines() if "[warn]" in l and "same chunks=" in l]
    assert len(w) == 1 and "up to 2 cookies" in w[0] and " but 1 in " in w[0], out
    locs = ("location = /a { session_set big $arg_v; return 200; }\n"
            f"location = /b {{ session_cookie {NAME} chunks=2 max_age=60; return 200; }}\n")
    rc, out = nginx_t(site(2, locations=locs))
    assert rc == 0 and "same chunks=" not in out, out


def test_flask_mode_refuses_chunks(nginx_t):
    rc, out = nginx_t(site(3, "session_format flask;"))
    assert rc != 0, out
    assert 'cannot be used with "session_format flask"' in out and "chunks=3" in out, out
    rc, out = nginx_t(site(1, "session_format flask;"))   # chunks=1 is what flask does anyway
    assert rc == 0, out


def warnings_of(out):
    return [l for l in out.splitlines() if "[warn]" in l and "large_client_header_buffers" in l]


@pytest.mark.parametrize("chunks,buffers,warn", [
    (2, "", False),                                          # 2 x 4096 = 8k: fits the default
    (3, "", True),                                           # 12k > 8k
    (16, "", True),
    (3, "large_client_header_buffers 4 12k;", False),
    (4, "large_client_header_buffers 4 12k;", True),
    (16, "large_client_header_buffers 4 64k;", False),
    (1, "large_client_header_buffers 2 1k;", False),
])
def test_header_buffer_warning(nginx_t, chunks, buffers, warn):
    rc, out = nginx_t(site(chunks, http_extra=buffers))
    assert rc == 0, out
    w = warnings_of(out)
    if not warn:
        assert not w, out
        return
    assert len(w) == 1, out
    need = chunks * 4096
    assert f'"session_cookie session ... chunks={chunks}"' in w[0], w[0]
    assert f"up to {need} bytes" in w[0] and "nginx.conf:" in w[0], w[0]


def test_header_buffer_warning_per_server(nginx_t):
    """Once per server and session_cookie directive (not per location); a server whose buffers
    are large enough is not named."""
    conf = (f"session_cookie {NAME} chunks=4;\n"
            "server { listen 127.0.0.1:{port}; server_name small;\n"
            "  session_secret_file {secret_file};\n"
            "  location /a { return 200; } location /b { return 200; } }\n"
            "server { listen 127.0.0.1:{port2}; server_name big; " + BIG_BUFFERS + "\n"
            "  session_secret_file {secret_file};\n"
            "  location /a { return 200; } }\n")
    rc, out = nginx_t(conf)
    assert rc == 0, out
    w = warnings_of(out)
    assert len(w) == 1 and 'server "small"' in w[0], out


def test_redis_store_accepts_chunks(nginx, nginx_t, redis_server):
    """The Redis store keeps the data in Redis and only the id in the cookie: chunks= is accepted
    and has no effect (no warning either); a large session is still one small cookie."""
    from redis_support import redis_snippet
    locs = LOCATIONS
    conf = redis_snippet("127.0.0.1:{rport}", locs,
                         extra=f"session_cookie {NAME} chunks=3;", http_extra=BIG_BUFFERS)
    rc, out = nginx_t(redis_snippet("127.0.0.1:{rport}", locs,
                                    extra=f"session_cookie {NAME} chunks=3;"),
                      rport=redis_server.port)
    assert rc == 0 and not warnings_of(out), out
    srv = nginx(conf, rport=redis_server.port)
    jar = srv.session()
    r = srv.get("/set?v=" + "R" * 20000, jar)
    s, e = session_lines(r)
    assert list(s) == [NAME] and not e and len(s[NAME]) < 200
    assert srv.get("/show", jar).text == f"status=valid big={'R' * 20000} more=\n"


# ---- a real browser -----------------------------------------------------------------------------


BROWSER_LOCATIONS = r"""
    location = /grow {
        session_set big $arg_v;
        default_type text/html;
        return 200 "<html><body><p id=\"done\">stored</p></body></html>\n";
    }
    location = /page {
        default_type text/html;
        return 200 "<html><body><p id=\"status\">$session_status</p><p id=\"big\">$session_big</p></body></html>\n";
    }
    location = /logout {
        session_destroy;
        default_type text/html;
        return 200 "<html><body><p id=\"done\">bye</p></body></html>\n";
    }
"""


def test_browser_keeps_a_three_cookie_session(nginx, tmp_path):
    """Chromium stores the three cookies of one large session and sends them back together,
    request after request; shrinking it leaves one cookie; logout removes them all."""
    from test_browser import chromium
    from selenium.webdriver.common.by import By

    srv = nginx(site(3, locations=BROWSER_LOCATIONS))
    size = max_value(2, "encrypted") + 1000          # three cookies, well within chunks=3
    value = "".join("abcdefghij"[i % 10] for i in range(size))
    with chromium(tmp_path) as d:
        d.get(srv.url("/grow?v=" + urllib.parse.quote(value)))
        assert d.find_element(By.ID, "done").text == "stored"
        cookies = {c["name"]: c for c in d.get_cookies()}
        assert sorted(cookies) == names(3), sorted(cookies)
        for c in cookies.values():
            assert c["httpOnly"] and c["path"] == "/" and c.get("sameSite") == "Lax", c
            assert len(c["name"]) + len(c["value"]) < LINE_MAX
        assert cookies[NAME]["value"].startswith("3.")
        for _ in range(3):   # kept across requests
            d.get(srv.url("/page"))
            assert d.find_element(By.ID, "status").text == "valid"
            assert d.find_element(By.ID, "big").text == value
        d.get(srv.url("/grow?v=short"))
        assert sorted(c["name"] for c in d.get_cookies()) == [NAME]
        d.get(srv.url("/page"))
        assert d.find_element(By.ID, "big").text == "short"
        d.get(srv.url("/grow?v=" + urllib.parse.quote(value)))
        assert sorted(c["name"] for c in d.get_cookies()) == names(3)
        d.get(srv.url("/logout"))
        assert d.get_cookies() == []
        d.get(srv.url("/page"))
        assert d.find_element(By.ID, "status").text == "none"
