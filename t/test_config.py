"""Configuration: every directive accepted where and how DESIGN.md says, and rejected by
`nginx -t` (rc != 0, an [emerg] naming the directive) when it is wrong.

Each case: where the directive goes (http / server / location / if), the directive text, and the
expectation — None for "accepted", or a list of substrings the failing output must contain.
"""

import re

import pytest

from helpers import random_secret, write_secret_file

OK = None


def render(level: str, directives: str) -> str:
    http = server = location = iff = ""
    if level == "http":
        http = directives
    elif level == "server":
        server = directives
    elif level == "location":
        location = directives
    elif level == "if":
        iff = directives
    else:
        raise ValueError(level)
    return f"""
    {http}
    server {{
        listen 127.0.0.1:{{port}};
        session_secret_file {{secret_file}};
        {server}
        location / {{
            {location}
            if ($arg_x) {{
                {iff}
                return 200 "if";
            }}
            return 200 "ok";
        }}
    }}
    """


CASES = [
    # ---- session_secret_file ----------------------------------------------------------------
    ("secret_file/http", "http", "session_secret_file {secret_file};", OK),
    ("secret_file/location", "location", "session_secret_file {secret_file};", OK),
    ("secret_file/missing", "location", "session_secret_file {prefix}/nope.txt;",
     ["session_secret_file", "nope.txt"]),
    ("secret_file/no-arg", "server", "session_secret_file;", ["session_secret_file"]),
    # ---- session_cookie ---------------------------------------------------------------------
    ("cookie/name-only", "server", "session_cookie sid;", OK),
    ("cookie/all-attrs", "server",
     "session_cookie sid path=/app domain=example.com max_age=1h secure httponly "
     "samesite=strict partitioned;", OK),
    ("cookie/secure=auto", "server", "session_cookie sid secure=auto;", OK),
    ("cookie/secure=off", "server", "session_cookie sid secure=off;", OK),
    ("cookie/httponly=off", "server", "session_cookie sid httponly=off;", OK),
    ("cookie/samesite=lax", "server", "session_cookie sid samesite=lax;", OK),
    ("cookie/samesite=off", "server", "session_cookie sid samesite=off;", OK),
    ("cookie/samesite=none+secure", "server", "session_cookie sid samesite=none secure;", OK),
    ("cookie/__Host-+secure", "server", "session_cookie __Host-sid secure;", OK),
    ("cookie/__Host-+secure+path=/", "server", "session_cookie __Host-sid secure path=/;", OK),
    ("cookie/__Secure-+secure+domain", "server",
     "session_cookie __Secure-sid secure domain=example.com;", OK),
    ("cookie/http-level", "http", "session_cookie sid samesite=strict;", OK),
    ("cookie/location-level", "location", "session_cookie sid;", OK),
    ("cookie/unknown-attr", "server", "session_cookie sid foo=bar;", ["session_cookie", "foo"]),
    ("cookie/unknown-flag", "server", "session_cookie sid hostonly;", ["session_cookie"]),
    ("cookie/samesite=bogus", "server", "session_cookie sid samesite=bogus;", ["session_cookie"]),
    ("cookie/max_age=bogus", "server", "session_cookie sid max_age=soon;", ["session_cookie"]),
    ("cookie/samesite=none-no-secure", "server", "session_cookie sid samesite=none;",
     ["session_cookie"]),
    ("cookie/samesite=none+secure=auto", "server",
     "session_cookie sid samesite=none secure=auto;", ["session_cookie"]),
    ("cookie/samesite=none+secure=off", "server",
     "session_cookie sid samesite=none secure=off;", ["session_cookie"]),
    ("cookie/__Host-no-secure", "server", "session_cookie __Host-sid;", ["session_cookie"]),
    ("cookie/__Host-secure=auto", "server", "session_cookie __Host-sid secure=auto;",
     ["session_cookie"]),
    ("cookie/__Host-domain", "server", "session_cookie __Host-sid secure domain=example.com;",
     ["session_cookie"]),
    ("cookie/__Host-path", "server", "session_cookie __Host-sid secure path=/app;",
     ["session_cookie"]),
    ("cookie/__Secure-no-secure", "server", "session_cookie __Secure-sid;", ["session_cookie"]),
    ("cookie/__Secure-secure=auto", "server", "session_cookie __Secure-sid secure=auto;",
     ["session_cookie"]),
    ("cookie/name-space", "server", 'session_cookie "a b";', ["session_cookie"]),
    ("cookie/name-semicolon", "server", 'session_cookie "a;b";', ["session_cookie"]),
    ("cookie/name-equals", "server", 'session_cookie "a=b";', ["session_cookie"]),
    ("cookie/name-empty", "server", 'session_cookie "";', ["session_cookie"]),
    ("cookie/name-comma", "server", 'session_cookie "a,b";', ["session_cookie"]),
    ("cookie/duplicate", "server", "session_cookie a; session_cookie b;", ["session_cookie"]),
    # ---- session_store / session_encrypt -------------------------------------------------------
    ("store/cookie", "server", "session_store cookie;", OK),
    # nginx's stock enum setter says `invalid value "memcached"` without the directive name
    ("store/bogus", "server", "session_store memcached;", [("session_store", '"memcached"')]),
    ("store/redis-without-server", "server", "session_store redis;",
     ["session_store", "session_redis"]),
    ("store/duplicate", "server", "session_store cookie; session_store cookie;",
     ["session_store"]),
    ("encrypt/on", "server", "session_encrypt on;", OK),
    ("encrypt/off-location", "location", "session_encrypt off;", OK),
    ("encrypt/bogus", "server", "session_encrypt maybe;", ["session_encrypt"]),
    # ---- times ------------------------------------------------------------------------------
    ("lifetime/2h", "server", "session_lifetime 2h;", OK),
    ("lifetime/bogus", "server", "session_lifetime forever;", ["session_lifetime"]),
    ("lifetime/two-args", "server", "session_lifetime 1h 2h;", ["session_lifetime"]),
    ("idle/30m", "server", "session_idle_timeout 30m;", OK),
    ("idle/off", "server", "session_idle_timeout off;", OK),
    ("idle/bogus", "server", "session_idle_timeout sometimes;", ["session_idle_timeout"]),
    ("renew/5m", "server", "session_renew 5m;", OK),
    ("renew/bogus", "server", "session_renew often;", ["session_renew"]),
    # ---- actions ----------------------------------------------------------------------------
    ("set/location", "location", "session_set user $arg_u;", OK),
    ("set/if", "if", "session_set user $arg_u;", OK),
    ("set/literal-value", "location", 'session_set role "admin user";', OK),
    ("set/key-64", "location", "session_set " + "k" * 64 + " v;", OK),
    ("set/key-65", "location", "session_set " + "k" * 65 + " v;", ["session_set"]),
    ("set/key-hyphen", "location", "session_set bad-key v;", ["session_set"]),
    ("set/key-dot", "location", "session_set a.b v;", ["session_set"]),
    ("set/key-empty", "location", 'session_set "" v;', ["session_set"]),
    ("set/key-variable", "location", "session_set $arg_k v;", ["session_set"]),
    ("set/one-arg", "location", "session_set user;", ["session_set"]),
    ("set/server-level", "server", "session_set user x;", ["session_set"]),
    ("set/http-level", "http", "session_set user x;", ["session_set"]),
    ("unset/location", "location", "session_unset user;", OK),
    ("unset/if", "if", "session_unset user;", OK),
    ("unset/bad-key", "location", "session_unset bad-key;", ["session_unset"]),
    ("unset/no-arg", "location", "session_unset;", ["session_unset"]),
    ("unset/server-level", "server", "session_unset user;", ["session_unset"]),
    ("clear/location", "location", "session_clear;", OK),
    ("clear/if", "if", "session_clear;", OK),
    ("clear/arg", "location", "session_clear user;", ["session_clear"]),
    ("destroy/location", "location", "session_destroy;", OK),
    ("destroy/if", "if", "session_destroy;", OK),
    ("destroy/arg", "location", "session_destroy now;", ["session_destroy"]),
    ("regenerate/location", "location", "session_regenerate;", OK),
    ("regenerate/if", "if", "session_regenerate;", OK),
    ("regenerate/server-level", "server", "session_regenerate;", ["session_regenerate"]),
    ("cookie_set/plain", "location", "cookie_set theme dark;", OK),
    ("cookie_set/all-options", "location",
     "cookie_set theme $arg_t max_age=1h expires=2h path=/p domain=example.com secure "
     "httponly samesite=none partitioned;", OK),
    ("cookie_set/samesite=lax", "if", "cookie_set theme dark samesite=lax;", OK),
    ("cookie_set/variable-name", "location", "cookie_set $arg_n $arg_v;", OK),
    ("cookie_set/unknown-option", "location", "cookie_set theme dark colour=blue;",
     ["cookie_set"]),
    ("cookie_set/samesite=bogus", "location", "cookie_set theme dark samesite=bogus;",
     ["cookie_set"]),
    ("cookie_set/max_age=bogus", "location", "cookie_set theme dark max_age=later;",
     ["cookie_set"]),
    ("cookie_set/no-value", "location", "cookie_set theme;", ["cookie_set"]),
    ("cookie_set/bad-literal-name", "location", 'cookie_set "the me" dark;', ["cookie_set"]),
    ("cookie_set/server-level", "server", "cookie_set theme dark;", ["cookie_set"]),
    ("cookie_delete/plain", "location", "cookie_delete theme;", OK),
    ("cookie_delete/path-domain", "if", "cookie_delete theme path=/p domain=example.com;", OK),
    ("cookie_delete/unknown-option", "location", "cookie_delete theme httponly;",
     ["cookie_delete"]),
    ("cookie_delete/no-name", "location", "cookie_delete;", ["cookie_delete"]),
    # ---- session_require --------------------------------------------------------------------
    ("require/plain", "location", "session_require;", OK),
    ("require/uri", "location", "session_require /login;", OK),
    ("require/off", "location", "session_require off;", OK),
    ("require/server", "server", "session_require /login;", OK),
    ("require/two-args", "location", "session_require /a /b;", ["session_require"]),
]


@pytest.mark.parametrize("level,directives,expect", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_nginx_t(nginx_t, level, directives, expect):
    rc, out = nginx_t(render(level, directives))
    if expect is OK:
        assert rc == 0, f"config should be accepted:\n{directives}\n{out}"
        assert "[emerg]" not in out and "[alert]" not in out, out
    else:
        assert rc != 0, f"config should be rejected:\n{directives}\n{out}"
        assert "[emerg]" in out, out
        for needle in expect:   # a tuple: any one of them
            alts = needle if isinstance(needle, tuple) else (needle,)
            assert any(a in out for a in alts), f"{needle!r} not in nginx -t output:\n{out}"


# ---- secret files ------------------------------------------------------------------------------

S32 = "s" * 32
S31 = "s" * 31

SECRET_FILES = [
    # id, file bytes, expectation: OK or regex the output must match
    ("two-lines", (random_secret() + "\n" + random_secret() + "\n").encode(), OK),
    ("exactly-32", (S32 + "\n").encode(), OK),
    ("no-trailing-newline", S32.encode(), OK),
    ("comments-blank-crlf", ("# rotated 2024-01-01\r\n\r\n" + S32 + "\r\n\n# old\n" + "t" * 40
                             + "\r\n").encode(), OK),
    ("short-first", (S31 + "\n").encode(), r"session_secret_file"),
    ("short-line-2-says-line", (S32 + "\n" + S31 + "\n").encode(), r"line\D{0,3}2\b"),
    ("short-after-comment-says-line", ("# c\n" + S32 + "\nshort\n").encode(),
     r"line\D{0,3}3\b"),
    # 31 bytes + CR: the CR is stripped, so the secret is short.
    ("short-because-cr-stripped", (S31 + "\r\n").encode(), r"session_secret_file"),
    ("empty", b"", r"session_secret_file"),
    ("only-comments", b"# nothing here\n\n#\n", r"session_secret_file"),
]


@pytest.mark.parametrize("content,expect", [c[1:] for c in SECRET_FILES],
                         ids=[c[0] for c in SECRET_FILES])
def test_secret_file(nginx_t, content, expect):
    rc, out = nginx_t(render("server", ""), secrets=content)
    if expect is OK:
        assert rc == 0, out
    else:
        assert rc != 0, f"secret file {content!r} should be rejected:\n{out}"
        assert "[emerg]" in out and "session_secret_file" in out, out
        assert re.search(expect, out), f"{expect!r} not in:\n{out}"


def test_secret_file_unreadable(nginx_t, tmp_path):
    """A directory where a file is expected cannot be read as secrets."""
    d = tmp_path / "secret_dir"
    d.mkdir()
    rc, out = nginx_t(render("server", f"session_secret_file {d};").replace(
        "session_secret_file {secret_file};", ""))
    assert rc != 0 and "session_secret_file" in out, out


def test_actions_without_secret_are_harmless_or_rejected(nginx_t):
    """A location with actions but no session_secret_file anywhere: either nginx -t says so
    (naming a directive) or it is accepted — never a crash."""
    rc, out = nginx_t("""
    server {
        listen 127.0.0.1:{port};
        location / { session_set user x; return 200; }
    }""")
    assert rc == 0 or ("[emerg]" in out and "session_" in out), out
    assert "[alert]" not in out and "[crit]" not in out, out
