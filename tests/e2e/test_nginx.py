"""The console behind nginx, as operators install it (deploy/nginx.py renders the site), in Chromium under its
Content-Security-Policy.

Two console replicas on loopback behind one nginx (Debian's, started by tests/support/nginx.py): the security
headers, the route cookie pinning a browser to one replica, the WebSocket, an upload, password sign-in surviving
a full page load of every page with nothing refused by the policy and no request leaving 127.0.0.1, the same
over TLS, and single sign-on through nginx against the test suite's OpenID provider. Each replica here has a store
of its own, so a browser that strayed to the other replica would be signed out: the sign-in tests prove stickiness
too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import requests
import urllib3
from playwright.sync_api import Browser, BrowserContext, Page, expect

from deploy.nginx import content_security_policy, replica_name
from sandbox import SandboxSettings, new_test_key, start_sandbox
from services.auth.roles import pages_for
from tests.support.browser import (LOOKUP_BOX, Console, free_port, login, open_page, screenshot, start_console,
                                   start_streamlit, wait_for_app, warm_up)
from tests.support.nginx import RunningNginx, start_nginx
from tests.support.oidc import secrets_toml, sign_in_at_provider, start_oidc_provider

from .test_sso import ROLES, SIGN_IN

HEADINGS = {"customer": "Customer", "bulk": "Bulk lookup", "plans": "Plans", "subscription": "Subscription actions",
            "audit": "Audit log", "approvals": "Approvals", "revenue": "Revenue", "attention": "Needs attention"}
CSP_WORDS = ("Content Security Policy", "Content-Security-Policy", "Refused to", "CSP violation")
# Chromium reports each violation as a DOM event too; this puts them in the console whatever its wording.
REPORT_VIOLATIONS = """document.addEventListener('securitypolicyviolation', (event) =>
    console.error(`CSP violation: ${event.effectiveDirective} ${event.blockedURI}`));"""


@dataclass
class Address:
    """What the browser helpers need of a server: its URL (here nginx's)."""

    url: str


@dataclass
class Front:
    nginx: RunningNginx
    replicas: list[Console]

    @property
    def url(self) -> str:
        return self.nginx.url


@dataclass
class Watch:
    """Everything the policy refused on the console's pages (those under `origin`; with single sign-on the
    browser also visits the provider's), and every request to a host not in `hosts`."""

    hosts: set[str]
    origin: str = ""
    problems: list[str] = field(default_factory=list)

    def on(self, page: Page) -> Page:
        page.add_init_script(REPORT_VIOLATIONS)
        page.on("console", lambda message: self.problems.append(f"{page.url}: {message.text}")
                if page.url.startswith(self.origin) and any(word in message.text for word in CSP_WORDS) else None)
        page.on("request", self._request)
        page.on("requestfailed", lambda request: self.problems.append(f"blocked: {request.url} {request.failure}")
                if "csp" in (request.failure or "").lower() else None)
        return page

    def _request(self, request) -> None:  # type: ignore[no-untyped-def]
        address = urlsplit(request.url)
        if address.scheme not in ("data", "blob") and address.hostname not in self.hosts:
            self.problems.append(f"request to {request.url}")


def _route_for(front: Front, wanted: str) -> str:
    """A route cookie value that nginx sends to replica `wanted` (found by asking: the hash is nginx's)."""
    for _ in range(200):
        route = secrets.token_hex(16)
        answer = requests.get(f"{front.url}/_stcore/health", cookies={"billing_desk_route": route}, timeout=10)
        if answer.headers.get("X-Billing-Desk-Replica") == wanted:
            return route
    raise AssertionError(f"no route reached {wanted}")


def _route_of(context: BrowserContext) -> str:
    return next(cookie["value"] for cookie in context.cookies() if cookie["name"] == "billing_desk_route")


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Front]:
    with ThreadPoolExecutor(2) as pool:
        replicas = list(pool.map(lambda index: start_console(tmp_path_factory.mktemp(f"replica-{index}")), range(2)))
    try:
        for replica in replicas:
            warm_up(replica, browser)
        nginx = start_nginx(tmp_path_factory.mktemp("nginx"),
                            replicas=[replica.url.removeprefix("http://") for replica in replicas])
    except BaseException:
        for replica in replicas:
            replica.stop()
        raise
    yield Front(nginx, replicas)
    nginx.stop()
    for replica in replicas:
        replica.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context
    context.close()


def test_nginx_sends_the_security_headers_and_names_the_replica(front: Front) -> None:
    answer = requests.get(front.url, timeout=10)
    assert answer.status_code == 200
    headers = answer.headers
    policy = headers["Content-Security-Policy"]
    assert policy == content_security_policy()
    for directive in ("default-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "object-src 'none'",
                      "base-uri 'self'", "form-action 'self'"):
        assert directive in policy
    assert "'unsafe-eval'" not in policy and "'unsafe-inline'" not in policy.split("; ")[1]
    # The one inline script of the page nginx actually served is allowed by its hash.
    inline = re.findall(r"<script>(.*?)</script>", answer.text, re.DOTALL)
    assert inline, "Streamlit's index.html has its inline script"
    for body in inline:
        assert f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" in policy
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers  # plain http: HSTS only over TLS
    assert headers["X-Billing-Desk-Replica"] in (replica_name(0), replica_name(1))
    assert headers["Server"] == "nginx"  # no version
    cookies = headers["Set-Cookie"]
    assert re.search(r"billing_desk_route=[0-9a-f]{32}; Path=/; HttpOnly; SameSite=Lax", cookies)
    health = requests.get(f"{front.url}/_stcore/health", timeout=10)
    assert health.text == "ok"
    # Streamlit sets its XSRF cookie with its health answer (the page asks for it first); nginx marks it Secure.
    assert re.search(r"_streamlit_xsrf=[^,]*; Secure", health.headers["Set-Cookie"], re.IGNORECASE)
    script = requests.get(f"{front.url}/app/static/sign-in-cookie.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    # A route nginx didn't make is not echoed back: a new one is issued.
    forged = requests.get(f"{front.url}/_stcore/health", cookies={"billing_desk_route": "x; Secure"}, timeout=10)
    assert re.search(r"billing_desk_route=[0-9a-f]{32}; Path=/", forged.headers["Set-Cookie"])


def test_new_visitors_spread_and_a_route_cookie_pins_a_browser_to_one_replica(front: Front,
                                                                              browser: Browser) -> None:
    seen = {requests.get(f"{front.url}/_stcore/health", timeout=10).headers["X-Billing-Desk-Replica"]
            for _ in range(24)}
    assert seen == {replica_name(0), replica_name(1)}, "visitors without a route land on both replicas"
    for wanted in (replica_name(0), replica_name(1)):
        route = _route_for(front, wanted)
        context = browser.new_context()
        context.add_cookies([{"name": "billing_desk_route", "value": route, "url": front.url}])
        answered: list[str] = []
        page = context.new_page()
        page.on("response", lambda response: answered.append(response.headers.get("x-billing-desk-replica", "-")))
        for path in ("", "plans", "customer?org=org_abc123"):
            open_page(page, Address(front.url), path)
        context.close()
        assert set(answered) == {wanted}, f"every answer from {wanted}"
    # And a browser without one keeps the route nginx gives it on its first answer.
    context = browser.new_context()
    page = context.new_page()
    answered = []
    page.on("response", lambda response: answered.append(response.headers.get("x-billing-desk-replica", "-")))
    for _ in range(3):
        open_page(page, Address(front.url))
    routes = [cookie for cookie in context.cookies() if cookie["name"] == "billing_desk_route"]
    context.close()
    assert len(set(answered)) == 1 and len(routes) == 1 and routes[0]["httpOnly"]


def test_a_lookup_works_over_the_websocket_through_nginx(front: Front, context: BrowserContext) -> None:
    watch = Watch({"127.0.0.1"})
    page = watch.on(context.new_page())
    login(page, Address(front.url), "support")
    page.get_by_role("textbox", name=LOOKUP_BOX).fill("org_abc123")
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("heading", name="Acme Analytics")).to_be_visible()
    expect(page.get_by_text("$399.00 per month")).to_be_visible()
    screenshot(page, "nginx-customer")
    assert watch.problems == []


def test_password_sign_in_survives_a_full_load_of_every_page_under_the_policy(front: Front,
                                                                              context: BrowserContext) -> None:
    watch = Watch({"127.0.0.1"})
    page = watch.on(context.new_page())
    login(page, Address(front.url), "finance")  # on "/": returns once the browser holds the sign-in cookie
    for path in [page_.value for page_ in pages_for("finance")]:
        open_page(page, Address(front.url), f"{path}?org=org_abc123")  # a full page load: a new session
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        expect(page.get_by_role("heading", name=HEADINGS[path], exact=True)).to_be_visible()
        expect(page.get_by_label("Username")).to_have_count(0)
        if path == "plans":  # the Vega-Lite chart draws without 'unsafe-eval'
            expect(page.get_by_test_id("stVegaLiteChart").locator("canvas, svg").first).to_be_visible()
            screenshot(page, "nginx-plans")
    icon = page.evaluate("[...document.querySelectorAll('link[rel~=icon]')].map(link => link.href)")
    assert icon and all(href.startswith(f"{front.url}/") for href in icon), "the shipped icon, from the console"
    assert requests.get(icon[-1], cookies={"billing_desk_route": _route_of(context)}, timeout=10).headers[
        "Content-Type"] == "image/png"
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert cookies["billing_desk_auth"]["sameSite"] == "Strict"
    # Chromium keeps a Secure cookie from plain http on 127.0.0.1 (a potentially trustworthy origin), so the
    # flag nginx adds costs nothing on loopback.
    assert cookies["_streamlit_xsrf"]["secure"]
    assert not cookies["billing_desk_auth"]["secure"], "http: the sign-in cookie is Secure only over https"
    assert watch.problems == []


def test_an_upload_goes_through_nginx(front: Front, context: BrowserContext) -> None:
    """5,000 ids (about 70 KB): larger than nginx keeps in memory, so it passes through its temp folder; the
    upload carries Streamlit's XSRF token from the cookie nginx marked Secure."""
    page = context.new_page()
    login(page, Address(front.url), "support", "bulk")
    rows = "organization_id\n" + "".join(f"org_upload{index:05d}\n" for index in range(5000))
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        files=[{"name": "ids.csv", "mimeType": "text/csv", "buffer": rows.encode()}])
    expect(page.get_by_text("5,000 to look up")).to_be_visible()


@pytest.fixture(scope="module")
def tls_front(front: Front, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningNginx, int]]:
    folder = tmp_path_factory.mktemp("nginx-tls")
    certificate, key = folder / "desk.pem", folder / "desk.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
                   check=True, capture_output=True, timeout=60)
    redirect_port = free_port()
    nginx = start_nginx(folder / "nginx", replicas=front.nginx.replicas, tls_cert=certificate, tls_key=key,
                        http_redirect_port=redirect_port)
    yield nginx, redirect_port
    nginx.stop()


def test_over_tls_hsts_a_secure_route_and_a_secure_sign_in_cookie(tls_front: tuple[RunningNginx, int],
                                                                   browser: Browser) -> None:
    nginx, redirect_port = tls_front
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    answer = requests.get(nginx.url, verify=False, timeout=10)
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert re.search(r"billing_desk_route=[0-9a-f]{32}; Path=/; HttpOnly; SameSite=Lax; Secure",
                     answer.headers["Set-Cookie"])
    plain = requests.get(f"http://127.0.0.1:{redirect_port}/plans?org=org_abc123", allow_redirects=False, timeout=10)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{nginx.port}/plans?org=org_abc123"
    context = browser.new_context(ignore_https_errors=True)
    try:
        watch = Watch({"127.0.0.1"})
        page = watch.on(context.new_page())
        login(page, Address(nginx.url), "admin")
        open_page(page, Address(nginx.url), "audit")
        expect(page.get_by_role("heading", name="Audit log", exact=True)).to_be_visible()
        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        assert cookies["billing_desk_auth"]["secure"] and cookies["billing_desk_auth"]["sameSite"] == "Strict"
        assert cookies["billing_desk_route"]["secure"] and cookies["_streamlit_xsrf"]["secure"]
        assert watch.problems == []
    finally:
        context.close()


@dataclass
class SsoFront:
    url: str  # nginx, as people open it: http://localhost:PORT (the provider is on 127.0.0.1: another site)


@pytest.fixture(scope="module")
def sso_front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoFront]:
    """Single sign-on behind nginx. The console is opened as http://localhost:PORT and the provider answers on
    127.0.0.1, so coming back from the provider is a cross-site navigation, as with a real provider: the
    sign-in's state cookie must be SameSite=Lax, not Strict, to come along."""
    data_dir = tmp_path_factory.mktemp("sso-nginx")
    nginx_port = free_port()
    url = f"http://localhost:{nginx_port}"
    stop: list = []
    try:
        provider = start_oidc_provider(data_dir / "oidc", url)
        stop.append(provider.stop)
        api = start_sandbox(SandboxSettings(api_key=new_test_key(), db_path=data_dir / "api.sqlite3"))
        stop.append(api.stop)
        secrets_file = data_dir / "secrets.toml"
        secrets_file.write_text(secrets_toml(provider, url, secrets.token_urlsafe(48)) + ROLES)
        env = {**os.environ, "PAYMENTS_API_URL": api.base_url, "PAYMENTS_API_KEY": api.api_key,
               "BILLING_DESK_DATA_DIR": str(data_dir), "BILLING_DESK_AUDIT_KEY": secrets.token_urlsafe(48)}
        for name in ("BILLING_DESK_SANDBOX", "BILLING_DESK_USERS"):
            env.pop(name, None)
        console = start_streamlit("app.py", data_dir, env, args=["--secrets.files", str(secrets_file)])
        stop.append(console.stop)
        nginx = start_nginx(data_dir / "nginx", replicas=[console.url.removeprefix("http://")], port=nginx_port)
        stop.append(nginx.stop)
        yield SsoFront(url)
    finally:
        for stopping in reversed(stop):
            stopping()


def test_single_sign_on_through_nginx_under_the_policy(sso_front: SsoFront, context: BrowserContext) -> None:
    watch = Watch({"localhost", "127.0.0.1"}, origin=sso_front.url)
    page = watch.on(context.new_page())
    page.goto(sso_front.url)
    wait_for_app(page)
    page.get_by_role("button", name=SIGN_IN).click()
    sign_in_at_provider(page, "fay")
    page.wait_for_url(lambda url: url.startswith(sso_front.url) and "oauth2callback" not in url)
    wait_for_app(page)
    expect(page.get_by_text("Role: Finance")).to_be_visible()
    open_page(page, Address(sso_front.url), "plans?org=org_abc123")  # a full page load: still signed in
    expect(page.get_by_role("heading", name="Plans", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    identity = cookies["_streamlit_user"]
    assert identity["secure"] and identity["httpOnly"] and identity["sameSite"] == "Lax"
    assert watch.problems == []
