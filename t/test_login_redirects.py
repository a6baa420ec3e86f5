"""Open redirects after login: a corpus of hostile `next` values, submitted as the form's next
on a successful login and as the login page's ?next=, must never send the browser off site.

Every Location is parsed with urllib.parse (and once more the way browsers read it: TAB/CR/LF
removed, backslashes as slashes, one more percent-decoding) and must name the test server. On
top of that, each payload is classified by DESIGN.md's rule ("a same-origin path: /..., not //,
not /\\, no scheme, no control characters after decoding"):

* MUST_FALL_BACK: the rule forbids it -> exactly session_login_redirect (/after-login);
* MUST_KEEP: plain printable same-origin paths -> exactly that path;
* EITHER: the rule is silent (raw non-ASCII, spaces, invalid %-escapes) -> one of the two.
"""

import re
import urllib.parse

import pytest

import helpers
import login_support as L

FALLBACK = "/after-login"

# --- The corpus: (payload as the form value, after form decoding) -----------------------------
HOSTS = ["evil.com", "evil.com:443", "127.0.0.1.evil.com", "0x7f000001"]

CORPUS = [
    # scheme-relative
    "//evil.com", "//evil.com/", "//evil.com/path", "///evil.com", "////evil.com",
    "//evil.com:80@127.0.0.1/", "//127.0.0.1@evil.com", "//user:pass@evil.com/",
    "//evil%2Ecom", "//%65vil.com", "// evil.com", "//\tevil.com", "//evil.com\\@good",
    # backslashes
    "/\\evil.com", "\\\\evil.com", "\\/evil.com", "/\\/evil.com", "\\evil.com",
    "/a\\b", "/\\\\evil.com", "/.\\evil.com", "/..\\evil.com",
    # encoded slashes and backslashes
    "/%2Fevil.com", "/%2f%2fevil.com", "%2F%2Fevil.com", "%2f/evil.com", "/%5Cevil.com",
    "/%5cevil.com", "%5C%5Cevil.com", "/%5C%5Cevil.com", "/%2F/evil.com", "/%2F%5Cevil.com",
    "/%09/evil.com", "/%0d/evil.com", "/%0a/evil.com", "/%00/evil.com", "/%20/evil.com",
    # double encoding
    "/%252F%252Fevil.com", "/%252Fevil.com", "/%255Cevil.com", "%252F%252Fevil.com",
    "/%25252F%25252Fevil.com", "/%%32%46evil.com", "/%2%46evil.com",
    # whitespace and control characters, raw and encoded
    "/\t/evil.com", "/\r/evil.com", "/\n/evil.com", "\t//evil.com", " //evil.com",
    "/ /evil.com", "/\x0b/evil.com", "/\x0c/evil.com", "/\x00/evil.com", "/\x7f/evil.com",
    "//\nevil.com", "/x\r\nLocation: http://evil.com", "/x\r\nSet-Cookie: pwn=1",
    "/x%0d%0aLocation:%20http://evil.com", "/x%0D%0ASet-Cookie:%20pwn=1", "/%0d%0a//evil.com",
    "/\u0085/evil.com", "/\u2028/evil.com", "/%E2%80%A8/evil.com", "/%C2%85/evil.com",
    "\x00//evil.com", "/\x1b//evil.com",
    # userinfo
    "//user@evil.com", "//@evil.com", "/@evil.com", "@evil.com", "//127.0.0.1:1@evil.com",
    "/%40evil.com", "//evil.com%40127.0.0.1",
    # schemes
    "javascript:alert(1)", "JavaScript:alert(1)", "javascript://%0aalert(1)",
    "/javascript:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "vbscript:msgbox(1)",
    "http://evil.com", "https://evil.com", "HTTP://evil.com", "https:evil.com", "http:/evil.com",
    "http:\\\\evil.com", "ftp://evil.com", "//evil.com/http://127.0.0.1/",
    "http://127.0.0.1@evil.com", "http%3A%2F%2Fevil.com", "/http://evil.com",
    "/https:evil.com", ":evil.com", "evil.com", "evil.com/path", "./evil.com", "../evil.com",
    "?next=//evil.com", "#//evil.com",
    # full-width and other look-alike dots and slashes, raw UTF-8 and encoded
    "/\uff0f\uff0fevil.com", "\uff0f\uff0fevil.com", "/%EF%BC%8F%EF%BC%8Fevil.com",
    "%EF%BC%8F%EF%BC%8Fevil.com", "/\uff3cevil.com", "/%EF%BC%BCevil.com",
    "/\uff0e\uff0e/evil.com", "/%EF%BC%8E%EF%BC%8E/evil.com", "//evil\uff0ecom",
    "//evil%EF%BC%8Ecom", "/\u3002evil.com", "/%E3%80%82evil.com", "/\u2215\u2215evil.com",
    "/%E2%88%95%E2%88%95evil.com", "/\u2044\u2044evil.com", "/%C0%AF%C0%AFevil.com",
    "/%C0%AE%C0%AE/evil.com", "/\u00a0//evil.com",
    # dot segments that resolve within the site
    "/..//evil.com", "/./evil.com", "/.//evil.com", "/a/../..//evil.com", "/%2e%2e//evil.com",
    # long and odd
    "/" + "a" * 3000, "//" + "a" * 3000, "/%", "/%zz", "/%2", "/x%", "/" + "%2F" * 50,
    # ordinary same-site paths (must be kept)
    "/", "/home", "/private/doc?x=1&y=2", "/a/b/c.html#frag", "/search?q=//evil.com",
    "/search?q=http://evil.com", "/a//b", "/a/%2F/b", "/~user/", "/a;b=c", "/a:b",
    "/@user", "/x?next=/y", "/%41%42", "/%2e%2e/x",
    '/"><script>alert(1)</script>', "/'onmouseover='alert(1)",
]

RAW_BYTES = [b"/\xff/evil.com", b"/\xc0\xaf/evil.com", b"\xc0\xaf\xc0\xafevil.com",
             b"/\x80", b"\xff//evil.com"]


def strict_unquote(b: bytes):
    """One round of %XX decoding (no '+'), None on a malformed escape."""
    out = bytearray()
    i = 0
    while i < len(b):
        if b[i:i + 1] == b"%":
            h = b[i + 1:i + 3]
            if len(h) < 2 or not re.fullmatch(rb"[0-9A-Fa-f]{2}", h):
                return None
            out.append(int(h, 16))
            i += 3
        else:
            out.append(b[i])
            i += 1
    return bytes(out)


def _printable(b: bytes) -> bool:
    return all(0x21 <= c <= 0x7e and c != 0x5c for c in b)


MUST_FALL_BACK, MUST_KEEP, EITHER = "fallback", "keep", "either"


def classify(payload: bytes) -> str:
    if not payload.startswith(b"/") or payload[1:2] in (b"/", b"\\"):
        return MUST_FALL_BACK
    if any(c < 0x20 or c == 0x7f or c == 0x5c for c in payload):
        return MUST_FALL_BACK
    if len(payload) > 2048:
        return EITHER
    dec = strict_unquote(payload)
    if dec is None:
        return EITHER
    if dec[1:2] in (b"/", b"\\") or any(c < 0x20 or c == 0x7f or c == 0x5c for c in dec):
        return MUST_FALL_BACK
    if _printable(payload) and _printable(dec):
        return MUST_KEEP
    return EITHER


def as_bytes(p) -> bytes:
    return p.encode("utf-8") if isinstance(p, str) else p


ALL = [as_bytes(p) for p in CORPUS] + RAW_BYTES


def test_corpus_is_big_and_varied():
    assert len(ALL) >= 100, len(ALL)
    assert len(set(ALL)) == len(ALL), [p for p in ALL if ALL.count(p) > 1]
    kinds = [classify(p) for p in ALL]
    assert kinds.count(MUST_FALL_BACK) >= 80, kinds.count(MUST_FALL_BACK)
    assert kinds.count(MUST_KEEP) >= 15, kinds.count(MUST_KEEP)


SPECIAL = ("http", "https", "ftp", "ws", "wss", "file")


def browser_resolve(base: str, ref: str) -> str:
    """Resolves ref against base roughly as WHATWG URL parsing does for http(s) bases: leading
    and trailing C0/space stripped, TAB/CR/LF removed, '\\' read as '/', any run of two or more
    slashes starts an authority, and "http:x" (same scheme, no slash) is relative."""
    ref = re.sub(r"[\t\r\n]", "", ref).strip("".join(map(chr, range(0x21))))
    ref = ref.replace("\\", "/")
    base_scheme = urllib.parse.urlsplit(base).scheme
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", ref, re.S)
    if m and m.group(1).lower() in SPECIAL:
        scheme, rest = m.group(1).lower(), m.group(2)
        if scheme != base_scheme:
            return f"{scheme}://" + rest.lstrip("/")
        ref = rest if not rest.startswith("/") else "//" + rest.lstrip("/")
        if not ref.startswith("//"):
            return urllib.parse.urljoin(base, ref)
    if ref.startswith("//"):
        return base_scheme + "://" + ref.lstrip("/")
    return urllib.parse.urljoin(base, ref)


def browser_views(location: str):
    """The ways a browser (or a lenient proxy that decodes once more) might read a Location."""
    yield location
    yield urllib.parse.unquote(location)


def assert_on_site(srv, location: str, payload: bytes):
    base = srv.url("/")
    for view in browser_views(location):
        u = urllib.parse.urlsplit(browser_resolve(base, view))
        assert (u.scheme, u.netloc) == ("http", f"127.0.0.1:{srv.port}"), \
            f"next={payload!r} sent the browser to {location!r} (read as {view!r})"


@pytest.fixture(params=["absolute", "relative"])
def redirect_site(nginx, request):
    """With nginx's default absolute_redirect on, a Location of "//evil.com" would still be
    prefixed with this server's origin; with absolute_redirect off it goes out as it is, and
    the browser resolves it: both are tested."""
    users = {"alice": L.hash_password("apr1", "secret")}
    relative = request.param == "relative"
    srv = nginx(L.user_file_site(redirect=FALLBACK,
                                 server_extra="absolute_redirect off;" if relative else ""),
                files=L.files_for(users))
    srv.expect_location = (lambda p: p) if relative else srv.url
    return srv


def test_form_next_corpus_lands_on_site(redirect_site):
    srv = redirect_site
    s = srv.session()
    page = L.get_login(srv, s)
    cookie = s.cookies.get("session_csrf")
    problems = []
    for payload in ALL:
        body = (b"username=alice&password=secret&csrf_token=" + page.token.encode()
                + b"&next=" + urllib.parse.quote_from_bytes(payload, safe="").encode())
        r = L.raw_post(srv.port, body, [
            ("Content-Type", L.FORM_TYPE), ("Cookie", f"session_csrf={cookie}")])
        status, headers = r.status, r.headers
        if status != 303:
            problems.append(f"{payload!r}: status {status}")
            continue
        locs = [v for k, v in headers if k.lower() == "location"]
        if len(locs) != 1:
            problems.append(f"{payload!r}: {len(locs)} Location headers: {headers}")
            continue
        loc = locs[0]
        names = [k.lower() for k, _ in headers]
        if names.count("set-cookie") != 2 or any(k in ("x-evil", "pwn") for k in names):
            problems.append(f"{payload!r}: unexpected headers {headers}")
        try:
            assert_on_site(srv, loc, payload)
        except AssertionError as e:
            problems.append(str(e))
            continue
        want = classify(payload)
        keep = srv.expect_location(payload.decode("latin-1"))
        fall = srv.expect_location(FALLBACK)
        if want == MUST_FALL_BACK and loc != fall:
            problems.append(f"{payload!r}: Location {loc!r}, expected the fallback {fall!r}")
        elif want == MUST_KEEP and loc != keep:
            problems.append(f"{payload!r}: Location {loc!r}, expected {keep!r} (a plain "
                            f"same-site path)")
        elif want == EITHER and loc not in (keep, fall):
            problems.append(f"{payload!r}: Location {loc!r} is neither the path nor the fallback")
    assert not problems, f"{len(problems)} of {len(ALL)} payloads:\n" + "\n".join(problems)


def test_get_next_corpus_never_echoes_unsafe_values(redirect_site):
    """GET /login?next=<payload, percent-encoded>: the page's hidden `next` is the payload when
    it is safe and empty otherwise; it is HTML-escaped in the page."""
    srv = redirect_site
    s = srv.session()
    problems = []
    for payload in ALL:
        q = "next=" + urllib.parse.quote_from_bytes(payload, safe="")
        r = srv.get("/login?" + q, session=s)
        if r.status_code != 200:
            problems.append(f"{payload!r}: GET status {r.status_code}")
            continue
        nxt = L.form_inputs(r.text).get("next")
        want = classify(payload)
        text = payload.decode("latin-1")
        if nxt is None:
            problems.append(f"{payload!r}: no next input in the page")
        elif want == MUST_FALL_BACK and nxt != "":
            problems.append(f"{payload!r}: the page echoes unsafe next {nxt!r}")
        elif want == MUST_KEEP and nxt != text:
            problems.append(f"{payload!r}: the page has next {nxt!r}, expected {text!r}")
        elif want == EITHER and nxt not in ("", text):
            problems.append(f"{payload!r}: the page has next {nxt!r}")
        if "<script>" in r.text:
            problems.append(f"{payload!r}: unescaped markup in the page")
        if nxt:
            try:
                assert_on_site(srv, nxt, payload)
            except AssertionError as e:
                problems.append("page next: " + str(e))
    assert not problems, f"{len(problems)} of {len(ALL)} payloads:\n" + "\n".join(problems)


@pytest.mark.parametrize("query", [
    "next=//evil.com", "next=%2F%2Fevil.com", "next=%2f%5cevil.com", "next=http://evil.com",
    "next=%252F%252Fevil.com", "next=/%0d%0aSet-Cookie:x=1", "next=%2F%0D%0ALocation:x",
    "next=javascript:alert(1)", "next=%", "next=%zz", "next", "next=",
    "next=/ok&next=//evil.com", "next=//evil.com&next=/ok", "NEXT=//evil.com",
])
def test_get_next_raw_queries(redirect_site, query):
    """Raw query strings as an attacker would link them: the page never carries an off-site
    next, and logging in through it lands on site."""
    srv = redirect_site
    s = srv.session()
    page = L.get_login(srv, s, raw_query=query)
    assert page.next is not None
    if page.next:
        assert classify(page.next.encode("latin-1")) != MUST_FALL_BACK, (query, page.next)
    r = L.post_login(srv, s, {"username": "alice", "password": "secret",
                              "csrf_token": page.token, "next": page.next})
    assert r.status_code == 303
    assert_on_site(srv, r.headers["Location"], query.encode())


def test_session_require_next_survives_the_round_trip(redirect_site):
    """What session_require puts into ?next= is accepted by the login page for ordinary paths
    with queries (the escaped form decodes to the original request URI)."""
    srv = redirect_site
    s = srv.session()
    for path in ("/private/a", "/private/a/b?c=d&e=f", "/private/x?redirect=//evil.com",
                 "/private/%7Euser"):
        r = srv.get(path, session=s, headers={"Accept": "text/html"})
        assert r.status_code == 302
        loc = L.location_path(srv, r)
        page = L.LoginPage(srv.get(loc, session=s))
        # session_require may pass the normalised URI (%7E -> ~): the same resource.
        assert page.next in (path, urllib.parse.unquote(path)), (path, loc, page.next)


@pytest.mark.parametrize("location", ["//evil.com", "/\\evil.com", "http://evil.com/",
                                      "/\t/evil.com", "\\\\evil.com", "/%2F%2Fevil.com/..",
                                      "https://127.0.0.1:1/", "///evil.com", " //evil.com",
                                      "http:/\\evil.com", "https:evil.com", "/%5Cevil.com",
                                      "javascript:alert(1)"])
def test_on_site_check_itself_catches_off_site_locations(location):
    """The checker used above must fail for Locations a browser would follow off site."""
    class Fake:
        port = 8080

        @staticmethod
        def url(p="/"):
            return "http://127.0.0.1:8080" + p
    with pytest.raises(AssertionError):
        assert_on_site(Fake, location, b"x")
    assert_on_site(Fake, "/ok/path?x=//evil.com", b"x")
    assert_on_site(Fake, "http://127.0.0.1:8080/ok", b"x")
