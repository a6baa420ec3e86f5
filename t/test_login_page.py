"""The login page an operator ships: examples/html/login.shtml.

Without a browser: the template loads nothing from anywhere (no URLs, scripts, event handlers,
CSS imports), every SSI echo escapes what it prints and sits in text or a double-quoted
attribute, and nginx renders it with a hostile-looking `next` kept intact.

With a real headless Chromium (the fixture of t/test_browser.py), on the page nginx serves: at
phone (375x812) and desktop (1280x800) widths, in the light and the dark color scheme
(prefers-color-scheme emulated through the DevTools protocol): every input has a visible label,
the first field has the focus and Tab goes username -> password -> button, a failed login shows
the error with role="alert" (tied to the username field), text and error text have a contrast
of at least 4.5:1 (WCAG AA) and borders/focus ring 3:1, nothing scrolls sideways, and the browser
asks for nothing but the page itself. The 429 page of session_login_limit is the same template.
With JavaScript disabled the form still logs in and keeps `next`.

Screenshots go to the test's tmp dir and are copied to <repo>/build/screenshots/.
"""

import html.parser
import json
import re
import shutil
import urllib.parse
from pathlib import Path

import login_support as L
from test_browser import APP, UPSTREAM, chromium


def _page_wait(d):
    """A 15 s wait that looks again when the element it read went away: a submitted form
    reloads the page while the wait reads the old page's element (selenium says
    StaleElementReference, or Chromium's "Node with given id does not belong to the document"
    as a plain WebDriverException). A condition that never holds still fails, by timeout."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(d, 15, ignored_exceptions=(WebDriverException,))

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "examples" / "html" / "login.shtml"
SHOTS = REPO / "build" / "screenshots"
PHONE = (375, 812)
DESKTOP = (1280, 800)
LIMITED = "too many failed logins, please try again later"

SSI_RE = re.compile(r"<!--#\s*(\w+)((?:\s+\w+=\"[^\"]*\")*)\s*-->")
SSI_PARAM_RE = re.compile(r"(\w+)=\"([^\"]*)\"")


# ---------------------------------------------------------------------------------------------
# The template, without a browser
# ---------------------------------------------------------------------------------------------

def _directives(text):
    out = []
    for m in SSI_RE.finditer(text):
        out.append((m.group(1), dict(SSI_PARAM_RE.findall(m.group(2))), m.start()))
    return out


def test_template_loads_nothing_and_escapes_every_echo():
    text = TEMPLATE.read_text()
    # Every SSI command is one the parser above understands (nothing slips past the checks).
    assert text.count("<!--#") == len(_directives(text)), "an SSI command the test cannot parse"
    echoes = [(p, pos) for cmd, p, pos in _directives(text) if cmd == "echo"]
    names = {p["var"] for p, _ in echoes}
    assert {"session_csrf_token", "session_login_next", "session_login_error"} <= names, names
    for p, pos in echoes:
        # nginx's default is entity; "none" or "url" would let markup through.
        assert p.get("encoding", "entity") == "entity", p
        # entity encoding escapes < > & " but not ': an echo in a tag must be in "..."
        before = SSI_RE.sub("", text[:pos])
        if before.rfind("<") > before.rfind(">"):
            assert re.search(r'=\s*"[^"]*$', before), f"echo of {p['var']} outside \"...\""
    assert {cmd for cmd, _, _ in _directives(text)} <= {"echo", "if", "endif", "else"}

    bare = SSI_RE.sub("", text)
    low = bare.lower()
    # No external assets or links: no scheme-qualified or protocol-relative URLs, no CSS imports
    # or url(), no scripts or handlers (the page works, and is meant to work, without JS).
    assert "://" not in bare
    assert not re.search(r"""(?:href|src|srcset|action|formaction|poster|data)\s*=\s*["']?\s*//""",
                         low)
    for bad in ("url(", "@import", "<script", "javascript:", "<iframe", "<object", "<embed",
                "<img", "<base"):
        assert bad not in low, bad
    assert not re.search(r"<[^>]*\son\w+\s*=", low), "an inline event handler"
    for attr, value in re.findall(r"""\b(href|src|action)\s*=\s*"([^"]*)\"""", bare):
        assert value == "data:," or (value.startswith("/") and not value.startswith("//")), \
            (attr, value)


class _Form(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.inputs, self.labels, self.error = [], {}, None
        self._label = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("input", "button", "select", "textarea"):
            self.inputs.append((tag, a))
        elif tag == "label":
            self._label = a.get("for")
        elif a.get("id") == "error":
            self.error = a

    def handle_endtag(self, tag):
        if tag == "label":
            self._label = None

    def handle_data(self, data):
        if self._label and data.strip():
            self.labels[self._label] = self.labels.get(self._label, "") + data.strip()


def test_rendered_page_labels_escaping_and_next(nginx):
    """What nginx sends: visible fields labelled, autocomplete hints, the error an alert tied
    to the first field, a `next` full of markup characters kept exactly and escaped."""
    srv = nginx(L.user_file_site(), files=L.files_for({"alice": L.hash_password("sha", "pw")}))
    s = srv.session()
    nxt = "/app/a\"b'c<i>x</i>&amp;?q=\"><b>bold</b>"
    page = L.get_login(srv, s, nxt)
    assert page.next == nxt, page.next
    assert "<b>bold" not in page.resp.text and "<i>x" not in page.resp.text
    assert "Content-Security-Policy" in page.resp.headers
    for r, error in ((page.resp, None),
                     (L.post_login(srv, s, {"username": "alice", "password": "no",
                                            "csrf_token": page.token, "next": nxt}),
                      L.BAD_CREDENTIALS)):
        f = _Form()
        f.feed(r.text)
        visible = [(t, a) for t, a in f.inputs if a.get("type") != "hidden"]
        assert [a.get("id") for _, a in visible] == ["username", "password", "submit"], visible
        for t, a in visible[:2]:
            assert f.labels.get(a["id"]), f"no <label for={a['id']}>"
            assert "required" in a
        assert dict(visible[0][1])["autocomplete"] == "username"
        assert dict(visible[1][1])["autocomplete"] == "current-password"
        assert not any(a.get("tabindex") for _, a in f.inputs)
        assert L.form_inputs(r.text)["next"] == nxt
        if error is None:
            assert f.error is None and "aria-describedby" not in visible[0][1]
        else:
            assert r.status_code == 401
            assert f.error.get("role") == "alert", f.error
            assert L.page_error(r.text) == error
            assert visible[0][1].get("aria-describedby") == "error"


# ---------------------------------------------------------------------------------------------
# In Chromium
# ---------------------------------------------------------------------------------------------

def _rgba(css):
    m = re.fullmatch(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)", css.strip())
    assert m, f"unexpected computed color {css!r}"
    r, g, b = (float(m.group(i)) for i in (1, 2, 3))
    return r, g, b, float(m.group(4)) if m.group(4) is not None else 1.0


def _luminance(rgb):
    def ch(c):
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = rgb[:3]
    return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b)


def contrast(a, b):
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


# The color of an element's text (or border/outline) and the opaque background it is drawn on
# (the nearest ancestor with a background; the page's own is the canvas).
COLORS_JS = r"""
const el = document.querySelector(arguments[0]);
if (!el) return null;
const cs = getComputedStyle(el);
let bg = null;
for (let e = arguments[1] === 'outline' ? el.parentElement : el; e; e = e.parentElement) {
  const b = getComputedStyle(e).backgroundColor;
  if (!/^rgba\(.*,\s*0\)$/.test(b) && b !== 'transparent') { bg = b; break; }
}
const fg = {text: cs.color, border: cs.borderTopColor, outline: cs.outlineColor}[arguments[1]];
return [fg, bg || 'rgb(255, 255, 255)'];
"""


def _pair(d, selector, what="text"):
    got = d.execute_script(COLORS_JS, selector, what)
    assert got, f"{selector} not on the page"
    fg, bg = (_rgba(c) for c in got)
    assert bg[3] == 1.0, f"{selector}: background {got[1]} is not opaque"
    assert fg[3] == 1.0, f"{selector}: {what} {got[0]} is not opaque"
    return fg, bg


def _set_scheme(d, scheme):
    d.execute_cdp_cmd("Emulation.setEmulatedMedia",
                      {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
    assert d.execute_script(
        f"return matchMedia('(prefers-color-scheme: {scheme})').matches") is True


def _set_size(d, size, page=True):
    """The viewport of a phone (a mobile one, which honours <meta name=viewport>) or a desktop.
    page: a page is loaded, whose viewport must now be that wide."""
    w, h = size
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": w < 600})
    if page:
        assert d.execute_script("return window.innerWidth") == w


def _shot(d, tmp_path, name):
    path = tmp_path / name
    assert d.save_screenshot(str(path)), f"screenshot {path} failed"
    assert path.stat().st_size > 2000, path
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, SHOTS / name)
    return path


def _check_layout(d, where, error):
    """Everything the page must be at the current size and color scheme."""
    # Every visible input has a visible label of its own (input.labels: <label for> or around).
    labels = d.execute_script("""
        return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
          .map(i => [i.id, [...i.labels].map(l => [l.textContent.trim(),
                                                   l.getBoundingClientRect().width > 0])]);""")
    assert [i for i, _ in labels] == ["username", "password"], labels
    for i, ls in labels:
        assert ls and all(text and shown for text, shown in ls), (where, i, ls)
    # No sideways scrolling; the button fits the viewport.
    sw, cw = d.execute_script("return [document.documentElement.scrollWidth, "
                              "document.documentElement.clientWidth]")
    assert sw <= cw, f"{where}: scrollWidth {sw} > clientWidth {cw}"
    right = d.execute_script("return document.getElementById('submit')"
                             ".getBoundingClientRect().right")
    assert right <= cw, (where, right, cw)
    # Contrast (WCAG AA): text 4.5:1, the fields' borders and the focus ring 3:1.
    text = ["h1", "p.lead", "label[for=username]", "label[for=password]", "#username",
            "#submit"]
    if error:
        text.append("#error")
    ratios = {}
    for sel in text:
        fg, bg = _pair(d, sel)
        ratios[sel] = round(contrast(fg, bg), 2)
        assert ratios[sel] >= 4.5, f"{where}: {sel} contrast {ratios[sel]} < 4.5 ({fg} on {bg})"
    for sel in ("#username", "#password"):
        fg, bg = _pair(d, sel, "border")
        c = round(contrast(fg, bg), 2)
        assert c >= 3, f"{where}: {sel} border contrast {c} < 3 ({fg} on {bg})"
    # The focus ring, reached with the keyboard (:focus-visible) as a keyboard user would.
    from selenium.webdriver.common.keys import Keys
    d.execute_script("document.getElementById('username').focus()")
    for sel in ("#password", "#submit"):
        d.switch_to.active_element.send_keys(Keys.TAB)
        assert d.switch_to.active_element.get_attribute("id") == sel[1:]
        assert d.execute_script(f"return getComputedStyle(document.querySelector('{sel}'))"
                                ".outlineStyle") != "none", f"{where}: {sel} has no focus ring"
        fg, bg = _pair(d, sel, "outline")
        c = round(contrast(fg, bg), 2)
        assert c >= 3, f"{where}: {sel} focus ring contrast {c} < 3 ({fg} on {bg})"
    d.execute_script("document.getElementById('username').focus()")
    return ratios


def _requests(d, flush=False):
    """URLs the browser asked for since the last call (DevTools Network events). flush: forget
    those of the browser's own start page (chrome://new-tab-page...)."""
    if flush:
        d.get("about:blank")
        d.get_log("performance")
        return []
    urls = []
    for entry in d.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def _only_pages(srv, urls, paths):
    for u in urls:
        p = urllib.parse.urlsplit(u)
        assert (p.scheme, p.netloc) == ("http", f"127.0.0.1:{srv.port}"), f"request to {u}"
        assert p.path in paths, f"the page asked for {u}"


def test_login_page_in_chromium(nginx, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    users = {"alice": L.hash_password("sha", "correct horse")}
    srv = nginx(L.user_file_site(redirect="/", locations=APP, http_extra=UPSTREAM),
                files=L.files_for(users))
    with chromium(tmp_path, performance_log=True) as d:
        wait = _page_wait(d)
        _set_size(d, PHONE, page=False)
        _requests(d, flush=True)
        d.get(srv.url("/app/reports?year=2024"))
        wait.until(EC.presence_of_element_located((By.ID, "username")))
        assert d.find_element(By.NAME, "next").get_attribute("value") == "/app/reports?year=2024"
        assert d.title and d.find_element(By.TAG_NAME, "h1").text
        assert not d.find_elements(By.ID, "error")
        # The first (empty) field has the focus; Tab goes through the form in order.
        assert d.switch_to.active_element.get_attribute("id") == "username"
        order = []
        for _ in range(3):
            order.append(d.switch_to.active_element.get_attribute("id"))
            d.switch_to.active_element.send_keys(Keys.TAB)
        assert order == ["username", "password", "submit"], order
        d.find_element(By.ID, "username").click()
        ratios = {}
        for scheme in ("light", "dark"):
            _set_scheme(d, scheme)
            for name, size in (("phone", PHONE), ("desktop", DESKTOP)):
                _set_size(d, size)
                ratios[(scheme, name)] = _check_layout(d, f"form {scheme} {name}", False)
                _shot(d, tmp_path, f"login-{name}-{scheme}.png")
        # Light and dark really differ.
        bg = "return getComputedStyle(document.body).backgroundColor"
        dark = d.execute_script(bg)
        _set_scheme(d, "light")
        assert d.execute_script(bg) != dark

        # A failed login: the 401 page, the error an alert tied to the first field, next kept.
        _set_size(d, PHONE)
        d.find_element(By.ID, "username").send_keys("alice")
        d.find_element(By.ID, "password").send_keys("wrong")
        d.find_element(By.ID, "submit").click()
        wait.until(EC.presence_of_element_located((By.ID, "error")))
        err = d.find_element(By.ID, "error")
        assert err.get_attribute("role") == "alert"
        assert err.text == L.BAD_CREDENTIALS and err.is_displayed()
        assert d.find_element(By.ID, "username").get_attribute("aria-describedby") == "error"
        assert d.find_element(By.NAME, "next").get_attribute("value") == "/app/reports?year=2024"
        assert d.switch_to.active_element.get_attribute("id") == "username"
        for scheme in ("light", "dark"):
            _set_scheme(d, scheme)
            for name, size in (("phone", PHONE), ("desktop", DESKTOP)):
                _set_size(d, size)
                r = _check_layout(d, f"error {scheme} {name}", True)
                ratios[("error", scheme, name)] = r
                _shot(d, tmp_path, f"login-error-{name}-{scheme}.png")
            _set_size(d, (320, 640))        # the smallest phones: still no sideways scrolling
            _check_layout(d, f"error {scheme} 320px", True)
        print("contrast ratios:", ratios)

        # Nothing but the documents themselves was requested, all from nginx (no favicon either:
        # the page's icon is data:,): the protected page's redirect and the login pages.
        _only_pages(srv, _requests(d), {"/app/reports", "/login"})

        # Then the right password: in, on the page asked for.
        _set_scheme(d, "light")
        d.find_element(By.ID, "username").send_keys("alice")
        d.find_element(By.ID, "password").send_keys("correct horse")
        d.find_element(By.ID, "submit").click()
        wait.until(EC.presence_of_element_located((By.ID, "user")))
        assert d.find_element(By.ID, "user").text == "app: hello alice"


def test_limited_page_in_chromium(nginx, tmp_path):
    """session_login_limit's 429 is the same template: the error is an alert, readable in both
    schemes, at phone width."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    srv = nginx(L.user_file_site(login_extra="session_login_limit zone=lp:64k attempts=1;"),
                files=L.files_for({"alice": L.hash_password("sha", "pw")}))
    with chromium(tmp_path, performance_log=True) as d:
        wait = _page_wait(d)
        _set_size(d, PHONE, page=False)
        _requests(d, flush=True)
        d.get(srv.url("/login?next=%2Fprivate"))
        for expected in (L.BAD_CREDENTIALS, LIMITED):
            wait.until(EC.presence_of_element_located((By.ID, "username")))
            d.find_element(By.ID, "username").send_keys("alice")
            d.find_element(By.ID, "password").send_keys("nope")
            d.find_element(By.ID, "submit").click()
            wait.until(EC.text_to_be_present_in_element((By.ID, "error"), expected))
        err = d.find_element(By.ID, "error")
        assert err.get_attribute("role") == "alert" and err.text == LIMITED
        assert d.find_element(By.NAME, "next").get_attribute("value") == "/private"
        for scheme in ("light", "dark"):
            _set_scheme(d, scheme)
            _check_layout(d, f"429 {scheme}", True)
            _shot(d, tmp_path, f"login-limited-phone-{scheme}.png")
        _only_pages(srv, _requests(d), {"/login"})
    assert srv.count_log("session login limit: client banned", level="info") == 1


def test_login_page_without_javascript(nginx, tmp_path):
    """Scripts disabled in the browser: the form still logs in, through a failed attempt, and
    lands on the page `next` names."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    users = {"alice": L.hash_password("sha", "correct horse")}
    srv = nginx(L.user_file_site(redirect="/", locations=APP, http_extra=UPSTREAM),
                files=L.files_for(users))
    with chromium(tmp_path, javascript=False) as d:
        wait = _page_wait(d)
        # Page scripts really are off.
        d.get("data:text/html,<p id=x>static</p><script>document.getElementById('x')"
              ".textContent='scripted'</script>")
        assert d.find_element(By.ID, "x").text == "static"
        d.get(srv.url("/app/reports?year=2024"))
        wait.until(EC.presence_of_element_located((By.ID, "username")))
        for password, done in (("wrong", (By.ID, "error")), ("correct horse", (By.ID, "user"))):
            d.find_element(By.ID, "username").send_keys("alice")
            d.find_element(By.ID, "password").send_keys(password)
            d.find_element(By.ID, "submit").click()
            wait.until(EC.presence_of_element_located(done))
            if password == "wrong":
                assert d.find_element(By.ID, "error").text == L.BAD_CREDENTIALS
                assert d.find_element(By.NAME, "next").get_attribute("value") == \
                    "/app/reports?year=2024"
        assert d.find_element(By.ID, "user").text == "app: hello alice"
        u = urllib.parse.urlsplit(d.current_url)
        assert (u.path, u.query) == ("/app/reports", "year=2024"), d.current_url
        _shot(d, tmp_path, "login-nojs-done.png")


def style_hash(text=None):
    """CSP source of the template's <style> element: 'sha256-<base64>'."""
    import base64
    import hashlib
    text = TEMPLATE.read_text() if text is None else text
    styles = re.findall(r"<style>(.*?)</style>", text, re.S)
    assert len(styles) == 1, "one <style> element"
    return "'sha256-" + base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode() \
        + "'"


def test_readme_names_the_style_hash():
    """README's strict Content-Security-Policy for the page carries the hash of today's CSS."""
    readme = (REPO / "README.md").read_text()
    assert style_hash() in readme, f"README should name style-src {style_hash()}"


def test_login_page_under_a_strict_csp(nginx, tmp_path):
    """With README's strict policy added on the template's location (default-src 'none', the
    CSS allowed by its hash), the page looks the same and the browser reports no violation."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    csp = (f"default-src 'none'; style-src {style_hash()}; img-src data:; "
           "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    snippet = L.user_file_site().replace(
        "location = /login.shtml { internal; ssi on; }",
        "location = /login.shtml { internal; ssi on; "
        f"add_header Content-Security-Policy \"{csp}\" always; }}")
    assert csp in snippet
    srv = nginx(snippet, files=L.files_for({"alice": L.hash_password("sha", "pw")}))
    r = srv.get("/login")
    assert csp in r.headers["Content-Security-Policy"], r.headers
    with chromium(tmp_path) as d:
        wait = _page_wait(d)
        _set_size(d, PHONE, page=False)
        d.get(srv.url("/login?next=%2Fprivate"))
        wait.until(EC.presence_of_element_located((By.ID, "username")))
        d.find_element(By.ID, "username").send_keys("alice")
        d.find_element(By.ID, "password").send_keys("nope")
        d.find_element(By.ID, "submit").click()
        wait.until(EC.presence_of_element_located((By.ID, "error")))
        _set_scheme(d, "light")
        # The style sheet applied: the button is the accent color, not the browser's grey.
        assert _rgba(d.execute_script(
            "return getComputedStyle(document.getElementById('submit')).backgroundColor"))[:3] \
            == (0x1d, 0x4e, 0xd8)
        _check_layout(d, "strict CSP", True)
        _shot(d, tmp_path, "login-error-phone-strict-csp.png")
        violations = [e for e in d.get_log("browser") if e.get("source") == "security" or
                      "Content Security Policy" in e.get("message", "")]
        assert not violations, violations
