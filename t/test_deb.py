"""The Debian package (`make deb` -> build/deb/libnginx-mod-http-session_<version>_<arch>.deb).

Its contents and control fields as Debian's own nginx module packages have them (the .so under
/usr/lib/nginx/modules, the load_module snippet under /usr/share/nginx/modules-available, a
dependency on the nginx ABI that Debian's nginx provides), then the real thing: `dpkg -i` into
Debian's nginx, the snippet enabled in /etc/nginx/modules-enabled, Debian's /usr/sbin/nginx
loading the module through that snippet and serving sessions, and `dpkg --purge` leaving
nothing behind. The install needs root and a machine where the package is not installed
already; the test removes what it installed even when it fails.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import DEBIAN_NGINX, REPO, missing
from helpers import APP_LOCATIONS, cookie_named, server_conf

PACKAGE = "libnginx-mod-http-session"
SO = Path("/usr/lib/nginx/modules/ngx_http_session_module.so")
AVAILABLE = Path("/usr/share/nginx/modules-available/mod-http-session.conf")
ENABLED = Path("/etc/nginx/modules-enabled/50-mod-http-session.conf")
SNIPPET = "load_module modules/ngx_http_session_module.so;\n"


def run(*argv, check=True, **kw):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, **kw)
    if check:
        assert p.returncode == 0, f"{argv}: {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def changelog_version():
    return run("dpkg-parsechangelog", "-l", REPO / "debian" / "changelog", "-S",
               "Version").stdout.strip()


@pytest.fixture(scope="module")
def deb() -> Path:
    arch = run("dpkg", "--print-architecture").stdout.strip()
    path = REPO / "build" / "deb" / f"{PACKAGE}_{changelog_version()}_{arch}.deb"
    if not path.exists():
        missing(f"{path} not found: build it with `make deb`")
    return path


def field(deb, name):
    return run("dpkg-deb", "-f", deb, name).stdout.strip()


def nginx_abi():
    """The nginx ABI that the installed Debian nginx provides (nginx-abi-1.22.1-7 on Debian 12)."""
    provides = run("dpkg-query", "-W", "-f=${Provides}", "nginx").stdout
    abi = re.findall(r"nginx-abi-[0-9A-Za-z.+~-]+", provides)
    assert len(abi) == 1, provides
    return abi[0]


def test_deb_contents_and_fields(deb):
    assert re.fullmatch(rf"{PACKAGE}_[0-9][0-9A-Za-z.+~-]*_[a-z0-9]+\.deb", deb.name), deb.name
    files = run("dpkg-deb", "-c", deb).stdout
    paths = [line.split()[-1] for line in files.splitlines()]
    assert f".{SO}" in paths, files
    assert f".{AVAILABLE}" in paths, files
    assert "./usr/share/doc/libnginx-mod-http-session/README.md.gz" in paths, files
    # Nothing outside the places a module package owns (no /etc: enabling is postinst's job).
    for p in paths:
        assert p.startswith(("./usr/lib/nginx/modules", "./usr/share/nginx/modules-available",
                             "./usr/share/doc/libnginx-mod-http-session")) or \
            p in ("./", "./usr/", "./usr/lib/", "./usr/lib/nginx/", "./usr/share/",
                  "./usr/share/nginx/", "./usr/share/doc/"), p
    snippet = run("sh", "-c", f"dpkg-deb --fsys-tarfile '{deb}' | tar -xOf - '.{AVAILABLE}'")
    assert snippet.stdout == SNIPPET

    info = run("dpkg-deb", "-I", deb).stdout
    for script in ("postinst", "prerm", "postrm"):
        assert re.search(rf"^\s+\d+ bytes,\s+\d+ lines\s+\*?\s*{script}\b", info, re.M), info
    assert field(deb, "Package") == PACKAGE
    assert field(deb, "Version") == changelog_version()
    assert field(deb, "Architecture") == run("dpkg", "--print-architecture").stdout.strip()
    depends = [d.strip() for d in field(deb, "Depends").split(",")]
    # The ABI of the nginx it was built for, which the installed nginx provides.
    assert nginx_abi() in depends, depends
    assert any(d.startswith("libssl3") for d in depends), depends


def test_apt_resolves_the_package(deb):
    """`apt install ./<deb>` (what README says) finds every dependency on this machine."""
    p = run("apt-get", "install", "-s", "-q", f"{deb}", check=False,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(rf"^Inst {PACKAGE} ", p.stdout, re.M), p.stdout


def _installed():
    p = run("dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE, check=False)
    return p.returncode == 0 and p.stdout.strip() not in ("", "not-installed")


@pytest.fixture
def installed(deb):
    if os.geteuid() != 0:
        missing("installing the package needs root")
    if not DEBIAN_NGINX.exists():
        missing(f"{DEBIAN_NGINX} (Debian's nginx) not installed")
    if _installed():
        missing(f"{PACKAGE} is installed on this machine already; the test would replace it "
                f"(dpkg --purge {PACKAGE} first)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        run("dpkg", "-i", deb, env=env)
        yield deb
    finally:
        run("dpkg", "--purge", PACKAGE, env=env, check=False)
    assert not _installed()


def test_dpkg_install_into_debian_nginx_and_purge(installed, nginx, nginx_t):
    # Installed where Debian's module packages go, and enabled the Debian way.
    assert SO.is_file()
    assert AVAILABLE.read_text() == SNIPPET
    assert ENABLED.is_symlink() and os.readlink(ENABLED) == str(AVAILABLE)

    # Debian's nginx loads it through the enabled snippet (its relative path resolves against
    # the prefix: the test prefix links modules/ to Debian's module directory, as
    # /usr/share/nginx/modules does).
    main = f"include {ENABLED};"
    srv = nginx(server_conf(APP_LOCATIONS), binary=DEBIAN_NGINX, main=main, start=False)
    (srv.path / "modules").symlink_to("/usr/lib/nginx/modules")
    t = run(DEBIAN_NGINX, "-p", f"{srv.path}/", "-c", srv.conf, "-t", check=False)
    assert t.returncode == 0, t.stderr
    srv.start()
    s = srv.session()
    assert srv.get("/whoami", s).text == "status=none user= name=\n"
    r = srv.get("/login?u=alice", s)
    assert r.status_code == 200 and cookie_named(r) is not None
    assert srv.get("/whoami", s).text == "status=valid user=alice name=\n"
    srv.stop()

    # Removed and purged: nothing left, and the configuration no longer loads.
    run("dpkg", "--purge", PACKAGE, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    assert not SO.exists()
    assert not AVAILABLE.exists()
    assert not ENABLED.exists() and not ENABLED.is_symlink()
    assert not Path(f"{ENABLED}.removed").is_symlink()
    t = run(DEBIAN_NGINX, "-p", f"{srv.path}/", "-c", srv.conf, "-t", check=False)
    assert t.returncode != 0 and "50-mod-http-session.conf" in t.stderr, t.stderr
