"""The dynamic module (`make dynamic` -> build/modules/ngx_http_session_module.so) loads into
Debian's packaged nginx (/usr/sbin/nginx) with load_module and does a cookie-store round trip.

Debian's compiled-in paths point to /var/lib/nginx and /var/log/nginx; the rendered config puts
the pid file, error log and every temp path inside the test prefix instead.
"""

import pytest

from conftest import DEBIAN_NGINX, DYNAMIC_MODULE, missing
from helpers import (APP_LOCATIONS, cookie_named, match_cookie, payload_of, server_conf,
                     session_deletion)


@pytest.fixture
def dynamic_module():
    if not DEBIAN_NGINX.exists():
        missing(f"{DEBIAN_NGINX} (Debian's nginx) not installed")
    if not DYNAMIC_MODULE.exists():
        missing(f"dynamic module {DYNAMIC_MODULE} not found: build it with `make dynamic`")
    return str(DYNAMIC_MODULE.resolve())


def test_dynamic_config_test(nginx_t, dynamic_module):
    rc, out = nginx_t(server_conf(APP_LOCATIONS, "session_cookie sid samesite=strict;"),
                      binary=DEBIAN_NGINX, load_module=dynamic_module)
    assert rc == 0, out
    rc, out = nginx_t(server_conf(APP_LOCATIONS, "session_cookie sid samesite=none;"),
                      binary=DEBIAN_NGINX, load_module=dynamic_module)
    assert rc != 0 and "session_cookie" in out, out


def test_dynamic_without_load_module_is_unknown(nginx_t, dynamic_module):
    """Control: without load_module Debian's nginx does not know the directives."""
    rc, out = nginx_t(server_conf(APP_LOCATIONS), binary=DEBIAN_NGINX)
    assert rc != 0 and "unknown directive" in out and "session_" in out, out


@pytest.mark.parametrize("encrypt", ["on", "off"])
def test_dynamic_round_trip(nginx, dynamic_module, encrypt):
    srv = nginx(server_conf(APP_LOCATIONS, f"session_encrypt {encrypt};"),
                binary=DEBIAN_NGINX, load_module=dynamic_module)
    s = srv.session()
    assert srv.get("/whoami", s).text == "status=none user= name=\n"
    r = srv.get("/login?u=alice", s)
    assert r.status_code == 200 and r.text == "logged in\n"
    sc = cookie_named(r)
    assert match_cookie("session={v}; Path=/; HttpOnly; SameSite=Lax", sc), sc
    if encrypt == "off":
        assert payload_of(sc) == {"user": "alice"}
    srv.get("/name?v=waws", s)
    assert srv.get("/whoami", s).text == "status=valid user=alice name=waws\n"
    mark = srv.log_mark()
    r = srv.raw("/whoami", [("Cookie", "session=garbage")])
    assert r.status == 200 and r.text == "status=invalid user= name=\n"
    assert srv.count_log('session cookie "session" rejected:', mark, "info") == 1
    assert cookie_named(srv.get("/logout", s)) == session_deletion()
    assert srv.get("/whoami", s).text == "status=none user= name=\n"


def test_dynamic_reload(nginx, dynamic_module):
    """A reload re-reads the secret file with the module loaded dynamically."""
    srv = nginx(server_conf(APP_LOCATIONS), binary=DEBIAN_NGINX, load_module=dynamic_module)
    s = srv.session()
    srv.get("/login?u=alice", s)
    srv.reload()
    assert srv.get("/whoami", s).text == "status=valid user=alice name=\n"


def test_dynamic_redis_over_tls(nginx, dynamic_module, redis_factory, tls_material):
    """Debian's nginx with the module: the Redis store over verified TLS (nginx's own SSL layer
    of the packaged binary)."""
    from redis_support import REDIS_LOCATIONS, cookie_header, redis_snippet, session_cookie_value
    rd = redis_factory(tls=tls_material.redis("ip"))
    srv = nginx(redis_snippet("127.0.0.1:{rport}", REDIS_LOCATIONS,
                              "session_redis_tls on;\n    "
                              f"session_redis_tls_trusted_certificate {tls_material.ca};"),
                rport=rd.port, binary=DEBIAN_NGINX, load_module=dynamic_module)
    value = session_cookie_value(srv.get("/login?u=alice"))
    assert srv.get("/whoami", headers=cookie_header(value)).text.startswith(
        "status=valid user=alice")
    assert len(rd.admin().keys("session:*")) == 1
