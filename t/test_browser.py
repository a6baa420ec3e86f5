"""A real browser (Debian's chromium + chromium-driver, driven by python3-selenium) goes through
the login flow: a protected page sends it to the login form, logging in lands it back on the page it asked for with the user shown (the upstream app
receives X-User), logout ends the session. Screenshots go to <repo>/build/browser/.

Missing chromium / chromedriver / selenium fail the test unless SESSION_ALLOW_SKIP=1.
"""

import contextlib
import os
import signal
import urllib.parse
from pathlib import Path

import pytest

import login_support as L

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "build" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

APP = r"""
    location = / {
        return 200 "<html><head><title>home</title></head><body>
<p id=\"home\">home user=[$session_user]</p></body></html>\n";
    }
    location /app/ {
        session_require /login;
        proxy_set_header X-User $session_user;
        proxy_pass http://127.0.0.1:{port2};
    }
"""

UPSTREAM = r"""
server {
    listen 127.0.0.1:{port2};
    default_type text/html;
    location / {
        return 200 "<html><head><title>app</title></head><body>
<p id=\"user\">app: hello $http_x_user</p><p id=\"uri\">$request_uri</p>
<a id=\"logout\" href=\"/logout\">logout</a></body></html>\n";
    }
}
"""


def _missing(what):
    msg = f"{what} (install chromium chromium-driver python3-selenium, or set " \
          f"SESSION_ALLOW_SKIP=1 to skip)"
    if os.environ.get("SESSION_ALLOW_SKIP") == "1":
        pytest.skip(msg)
    pytest.fail(msg, pytrace=False)


def _descendants(pid: int) -> list:
    """Pids of every process below pid (from /proc), children first found last."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def _kill_pids(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextlib.contextmanager
def chromium(tmp_path, *, performance_log=False, javascript=True):
    """A headless Chromium under chromedriver; every process it started is gone afterwards.

    performance_log: DevTools network events readable with driver.get_log("performance").
    javascript: False disables scripts in pages (the browser's content setting; WebDriver's own
    commands still work)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) and os.access(path, os.X_OK)):
            _missing(f"{path} not found")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.remote.remote_connection import RemoteConnection
    except ImportError as e:
        _missing(f"python3-selenium not importable ({e})")
    # Every WebDriver command is bounded: a page that never finishes loading makes a command
    # fail after 30 s instead of hanging the suite.
    RemoteConnection.set_timeout(30)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tmp_path / "chrome-profile"
    profile.mkdir()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--disable-dev-shm-usage", "--disable-breakpad",
              "--disable-crash-reporter", "--window-size=1000,700",
              f"--user-data-dir={profile}"):
        opts.add_argument(a)
    if performance_log:
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    if not javascript:
        opts.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    service = Service(CHROMEDRIVER, log_path=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver_pid = service.process.pid
    started = _descendants(driver_pid)      # chromium and its helpers, by pid
    try:
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(10)
        yield driver
    finally:
        leftovers = set(started) | set(_descendants(driver_pid))
        try:
            driver.quit()
        except Exception:
            pass
        finally:
            RemoteConnection.reset_timeout()
            # Whatever chromedriver started and is still there (e.g. after a hung page).
            _kill_pids(sorted(p for p in leftovers if os.path.exists(f"/proc/{p}")))
            if service.process is not None and service.process.poll() is None:
                _kill_pids([driver_pid])


@pytest.fixture
def browser(tmp_path):
    with chromium(tmp_path) as driver:
        yield driver


def shot(driver, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    assert driver.save_screenshot(str(path)), f"screenshot {path} failed"
    assert path.stat().st_size > 1000
    return path


def test_browser_login_flow(browser, nginx):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    users = {"alice": L.hash_password("2y", "correct horse", cost=5)}
    srv = nginx(L.user_file_site(redirect="/", locations=APP, http_extra=UPSTREAM),
                files=L.files_for(users))
    d = browser
    wait = WebDriverWait(d, 15)

    def path_of(url):
        u = urllib.parse.urlsplit(url)
        assert u.netloc == f"127.0.0.1:{srv.port}", url
        return u.path + ("?" + u.query if u.query else "")

    # 1. A protected page: sent to the login form, next set.
    d.get(srv.url("/app/reports?year=2024"))
    wait.until(EC.presence_of_element_located((By.ID, "username")))
    assert path_of(d.current_url).startswith("/login?next="), d.current_url
    nxt = d.find_element(By.NAME, "next").get_attribute("value")
    assert nxt == "/app/reports?year=2024", nxt
    assert d.find_element(By.NAME, "csrf_token").get_attribute("value")
    csrf = d.get_cookie("session_csrf")
    assert csrf and csrf["httpOnly"] and csrf.get("sameSite") == "Strict", csrf

    # 2. Log in: back on the page asked for, the app sees the user.
    d.find_element(By.ID, "username").send_keys("alice")
    d.find_element(By.ID, "password").send_keys("correct horse")
    shot(d, "login.png")
    d.find_element(By.ID, "submit").click()
    wait.until(EC.presence_of_element_located((By.ID, "user")))
    assert path_of(d.current_url) == "/app/reports?year=2024", d.current_url
    assert d.find_element(By.ID, "user").text == "app: hello alice"
    assert d.find_element(By.ID, "uri").text == "/app/reports?year=2024"
    cookie = d.get_cookie("session")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Lax", cookie
    assert d.get_cookie("session_csrf") is None     # deleted after login
    shot(d, "app.png")
    assert srv.count_log('session login: user "alice" logged in', level="info") == 1

    # 3. Logout: session gone, the app is protected again.
    d.find_element(By.ID, "logout").click()
    wait.until(EC.presence_of_element_located((By.ID, "home")))
    assert path_of(d.current_url) == "/"
    assert d.find_element(By.ID, "home").text == "home user=[]"
    assert d.get_cookie("session") is None
    shot(d, "logout.png")
    d.get(srv.url("/app/reports?year=2024"))
    wait.until(EC.presence_of_element_located((By.ID, "username")))
    assert path_of(d.current_url).startswith("/login?next=")


def test_browser_back_button_after_logout(browser, nginx):
    """After logout, going back does not show the protected page from cache: the app
    response goes through nginx again, and the login page is never cached (no-store)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    users = {"bob": L.hash_password("apr1", "pw")}
    srv = nginx(L.user_file_site(redirect="/", locations=APP, http_extra=UPSTREAM),
                files=L.files_for(users))
    d = browser
    wait = WebDriverWait(d, 15)
    d.get(srv.url("/login?next=%2Fapp%2Fx"))
    wait.until(EC.presence_of_element_located((By.ID, "username")))
    d.find_element(By.ID, "username").send_keys("bob")
    d.find_element(By.ID, "password").send_keys("pw")
    d.find_element(By.ID, "submit").click()
    wait.until(EC.presence_of_element_located((By.ID, "user")))
    assert d.find_element(By.ID, "user").text == "app: hello bob"
    d.get(srv.url("/logout"))
    wait.until(EC.presence_of_element_located((By.ID, "home")))
    d.get(srv.url("/app/x"))
    wait.until(EC.presence_of_element_located((By.ID, "username")))
    assert "/login" in d.current_url


def test_browser_wrong_password_then_retry(browser, nginx):
    """A typo first: the 401 page shows the error and keeps next; the retry (which the browser
    sends on the same keep-alive connection) lands on the page asked for."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    users = {"alice": L.hash_password("apr1", "correct horse")}
    srv = nginx(L.user_file_site(redirect="/", locations=APP, http_extra=UPSTREAM),
                files=L.files_for(users))
    d = browser
    d.set_page_load_timeout(10)
    wait = WebDriverWait(d, 10)
    d.get(srv.url("/app/reports?year=2024"))
    wait.until(EC.presence_of_element_located((By.ID, "username")))
    d.find_element(By.ID, "username").send_keys("alice")
    d.find_element(By.ID, "password").send_keys("wrong")
    d.find_element(By.ID, "submit").click()
    wait.until(EC.presence_of_element_located((By.ID, "error")))
    assert d.find_element(By.ID, "error").text == L.BAD_CREDENTIALS
    assert d.find_element(By.NAME, "next").get_attribute("value") == "/app/reports?year=2024"
    assert d.get_cookie("session") is None
    shot(d, "login-error.png")
    d.find_element(By.ID, "username").clear()
    d.find_element(By.ID, "username").send_keys("alice")
    d.find_element(By.ID, "password").send_keys("correct horse")
    d.find_element(By.ID, "submit").click()
    wait.until(EC.presence_of_element_located((By.ID, "user")))
    assert d.find_element(By.ID, "user").text == "app: hello alice"
    assert urllib.parse.urlsplit(d.current_url).path == "/app/reports"
