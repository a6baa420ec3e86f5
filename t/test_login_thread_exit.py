"""A worker that shut down after logins: the login thread pool's threads leave no OpenSSL state
for their exit.

The password check (src/ngx_http_session_users.cpp) runs in an nginx thread pool and calls
OpenSSL there (the HMAC of the decoy pick, the digests), which registers an error queue and
thread-stop handlers under OpenSSL's per-thread key. nginx ends a pool's threads only when the
worker exits and does not wait for them to finish ending: the main thread goes on to exit(0),
whose atexit handler OPENSSL_cleanup frees every thread's handlers (without the lock) while a
pool thread's key destructor may be freeing its own - a double free that killed a worker with
SIGABRT (or SIGSEGV) at teardown in CI, once. The check frees that state at the end of every
task (OPENSSL_thread_stop), so no pool thread has anything of OpenSSL's left to free at exit.

The race itself is rare; the probe (t/openssl_thread_exit_probe.c, LD_PRELOADed into nginx)
reports any run of OpenSSL's key destructor in a thread other than the main one, which is
deterministic.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import login_support as L
from conftest import missing

PROBE_SRC = Path(__file__).resolve().parent / "openssl_thread_exit_probe.c"
WATCHING = "openssl-thread-exit-probe: watching"
LEFT = "openssl-thread-exit-probe: a thread ended with OpenSSL thread state to free"


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        missing("no C compiler for the LD_PRELOAD probe")
    out = tmp_path_factory.mktemp("probe") / "openssl_thread_exit_probe.so"
    subprocess.run([cc, "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-o", str(out),
                    str(PROBE_SRC), "-ldl"], check=True, timeout=120)
    return out


@pytest.mark.parametrize("pool", ["default", "own"])
def test_login_threads_leave_no_openssl_state_for_the_worker_exit(nginx, probe, monkeypatch,
                                                                  pool):
    monkeypatch.setenv("LD_PRELOAD", str(probe))
    # (an ASan build wants its runtime first in the library list)
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                       ":verify_asan_link_order=0")
    own = pool == "own"
    users = {"alice": L.hash_password("sha", "pw"), "bob": L.hash_password("2y", "pw", cost=4)}
    srv = nginx(L.user_file_site(login_extra="session_login_thread_pool logins;" if own else ""),
                files=L.files_for(users), main="thread_pool logins threads=2;" if own else "")
    monkeypatch.delenv("LD_PRELOAD")
    # known and unknown users, right and wrong passwords: every path of the check
    for user, password, status in (("alice", "pw", 303), ("bob", "pw", 303),
                                   ("alice", "wrong", 401), ("nobody", "pw", 401)):
        r = L.login(srv, srv.session(), user, password)
        assert r.status_code == status, (user, r.status_code)
    srv.stop()
    log = srv.log_text() + srv.stderr()
    assert WATCHING in log, "the probe was not loaded:\n" + log[-2000:]
    assert LEFT not in log, "\n".join(l for l in log.splitlines() if "probe" in l)
