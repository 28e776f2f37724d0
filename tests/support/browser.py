"""The console in a real browser: start it (or any Streamlit script) and drive it with Playwright.

After Streamlit's own e2e suite: the server runs headless on a free port and is ready once `/_stcore/health`
answers; Debian's Chromium is driven through Playwright with auto-waiting `expect`. Used by the browser tests'
fixtures (tests/e2e/conftest.py) and by `make bench`; nothing here depends on pytest.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from playwright.sync_api import Browser, Page, expect

from sandbox.control_client import SandboxControl
from sandbox.settings import new_test_key

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags a root, offline, headless machine needs (no background calls to Google's hosts).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / ("docs/screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else "test-results/screenshots")
PASSWORDS = {"support": "support-demo", "finance": "finance-demo", "admin": "admin-demo"}
# The Customer page's box (ui/organization.py); a copy from before the directory (a benchmark's "before") and the
# benchmark's bare apps call it "Organization id".
LOOKUP_BOX = re.compile(r"^(Find a customer|Organization id)$")
SANDBOX_FLAG = "BILLING_DESK_SANDBOX"  # services/config.py: the console runs on its embedded sandbox only if asked

expect.set_options(timeout=30_000)  # generous: a slow CI machine is not a failure


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_chromium(playwright, **options) -> Browser:  # type: ignore[no-untyped-def]
    """Debian's Chromium, headless, with the flags above (a sync or an async Playwright)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, **options)


def streamlit_command(script: str, port: int, root: Path = ROOT) -> list[str]:
    """`streamlit run` as the console is started for tests and benchmarks (.streamlit/config.toml applies too):
    the console's app.py through ui/serve.py as `make run` starts it, any other script (the benchmarks' bare
    apps, and a copy of older code without ui/serve.py) by `streamlit run` itself."""
    launcher = script == "app.py" and (root / "ui" / "serve.py").exists()
    start = ["-m", "ui.serve"] if launcher else ["-m", "streamlit", "run", script]
    return [sys.executable, *start, "--server.port", str(port), "--server.address", "127.0.0.1",
            "--server.headless", "true"]


class _Process:
    url: str
    data_dir: Path
    process: subprocess.Popen

    @property
    def log(self) -> Path:
        """What the server printed (its run log, at BILLING_DESK_LOG_LEVEL=DEBUG a line per page run)."""
        return self.data_dir / "console.log"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@dataclass
class Server(_Process):
    """A Streamlit server started by `start_streamlit`."""

    url: str
    data_dir: Path
    process: subprocess.Popen


@dataclass
class Console(_Process):
    """The console, with the controls of its embedded sandbox."""

    url: str
    sandbox: SandboxControl
    data_dir: Path
    process: subprocess.Popen


def start_streamlit(script: str, data_dir: Path, env: dict[str, str] | None = None, root: Path = ROOT,
                    port: int | None = None, args: list[str] | None = None) -> Server:
    """Starts `streamlit run <script>` from the repository's root (or another copy of it, `root`) and waits for
    `/_stcore/health`. `port`: when the address must be known first (an identity provider's redirect URI);
    `args`: more `streamlit run` options."""
    port = port or free_port()
    log = open(data_dir / "console.log", "w")
    process = subprocess.Popen(streamlit_command(script, port, root) + (args or []), cwd=root, env=env or dict(os.environ),
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{script} did not start: {(data_dir / 'console.log').read_text()[-2000:]}")
        time.sleep(0.2)
    return Server(url, data_dir, process)


def start_console(data_dir: Path, extra_env: dict[str, str] | None = None, root: Path = ROOT) -> Console:
    """`streamlit run app.py` on its own data directory and embedded sandbox (unless `extra_env` names an API);
    `root`: another copy of the repository (the benchmarks compare a change with the code before it)."""
    sandbox_port, key = free_port(), new_test_key()
    extra_env = extra_env or {}
    env = {**os.environ, "BILLING_DESK_DATA_DIR": str(data_dir), "SANDBOX_PORT": str(sandbox_port),
           "SANDBOX_API_KEY": key, **extra_env}
    for name in ("PAYMENTS_API_URL", "PAYMENTS_API_KEY"):  # the sandbox, unless a test asks otherwise
        if name not in extra_env:
            env.pop(name, None)
    # The write flows' tests make their cancels and downgrades directly; tests/e2e/test_approvals.py starts its
    # console with the default policy, under which they wait for a second person.
    env.setdefault("BILLING_DESK_APPROVAL_ACTIONS", "none")
    # No daily directory refresh reading every organization behind a test's back (tests/test_directory.py
    # turns it on where it is the subject).
    env.setdefault("BILLING_DESK_REFRESH", "off")
    if "PAYMENTS_API_URL" in extra_env:
        env.pop(SANDBOX_FLAG, None)
    else:
        env.setdefault(SANDBOX_FLAG, "1")  # the embedded sandbox is asked for, as `make run` does
    server = start_streamlit("app.py", data_dir, env, root)
    return Console(server.url, SandboxControl(f"http://127.0.0.1:{sandbox_port}", key), server.data_dir,
                   server.process)


def start_production_console(data_dir: Path, api_url: str, api_key: str, users_file: Path,
                             extra_env: dict[str, str] | None = None) -> Console:
    """The console as production runs it (its own Payments API, a users file, fixed cookie and audit keys, an
    address people open), on `data_dir`; the caller owns the API (a sandbox it started) and its controls."""
    import secrets

    console = start_console(data_dir, {"PAYMENTS_API_URL": api_url, "PAYMENTS_API_KEY": api_key,
                                       "BILLING_DESK_USERS": str(users_file),
                                       "BILLING_DESK_COOKIE_KEY": secrets.token_urlsafe(48),
                                       "BILLING_DESK_AUDIT_KEY": secrets.token_urlsafe(48),
                                       "BILLING_DESK_PUBLIC_URL": "http://127.0.0.1",  # loopback: http allowed
                                       **(extra_env or {})})
    console.sandbox = SandboxControl(api_url.removesuffix("/api/v1"), api_key)
    return console


def warm_up(console: Console, browser: Browser) -> None:
    """The runtime (and its embedded sandbox) starts with the first browser session: open one."""
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(console.url)
    wait_for_app(tab)
    context.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            console.sandbox.stats()
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


IDLE = "document.querySelector(\"[data-testid='stApp']\")?.dataset.testScriptState === 'notRunning'"


def idle_for(settle_ms: int) -> str:
    """A page function that is true once the app's script has stayed idle for `settle_ms` (sync and async use)."""
    return f"""() => {{
        const now = performance.now();
        if (!({IDLE})) {{ window.__busySince = now; return false; }}
        return now - (window.__busySince ?? 0) > {settle_ms};
    }}"""


def wait_for_app(page: Page, settle_ms: int = 400) -> None:
    """Waits until the app is connected and its script has stayed idle for `settle_ms`.

    A click's run can start a moment after the click, and a run can be followed by another (a form
    submitted from a dialog, `st.rerun()`), so one idle moment is not enough.
    """
    expect(page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']")).to_be_attached()
    page.wait_for_function(idle_for(settle_ms), polling=50)


def open_page(page: Page, console: Server, path: str = "") -> None:
    page.goto(f"{console.url}/{path.lstrip('/')}")
    wait_for_app(page)


def login(page: Page, console: Server, username: str, path: str = "", password: str | None = None) -> None:
    open_page(page, console, path)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password or PASSWORDS[username])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    # The page that signs in also writes the re-authentication cookie: wait until the browser holds it.
    deadline = time.monotonic() + 20
    while not any(cookie["name"] == "billing_desk_auth" for cookie in page.context.cookies()):
        assert time.monotonic() < deadline, "the login cookie was never set"
        page.wait_for_timeout(100)
    wait_for_app(page)


def nav_links(page: Page) -> list[str]:
    # Each link reads "<icon ligature>\n\n<title>": the title is the last line.
    return [text.strip().splitlines()[-1] for text in
            page.get_by_test_id("stSidebarNav").get_by_role("link").all_inner_texts()]


def screenshot(page: Page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main area, so the window grows to fit it first."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 1400, "height": 1000}
    height = page.evaluate("document.querySelector(\"[data-testid='stMain']\")?.scrollHeight ?? 0")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 4000))})
    # No tooltip of the last button clicked: the mouse to blank space, the button's focus dropped (only a
    # button's: a text box would commit its value on blur, and rerun the page).
    page.mouse.move(size["width"] - 10, size["height"] // 2)
    page.evaluate("document.activeElement?.tagName === 'BUTTON' && document.activeElement.blur()")
    page.wait_for_timeout(200)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def choose(page: Page, label: str, option: str | None = None) -> str:
    """Picks a select box option (the first if none is named); retries when a rerun closes the list."""
    for _ in range(5):
        wait_for_app(page)
        choice = page.get_by_role("option", name=option, exact=True) if option else page.get_by_role("option").first
        try:
            page.get_by_role("combobox", name=label).last.click(timeout=5000)  # .last: the newest, mid-rerun
            choice.wait_for(state="visible", timeout=3000)
            option = option or choice.inner_text().strip()
            choice.click()
            break
        except Exception:
            page.keyboard.press("Escape")
    wait_for_app(page)
    expect(page.get_by_role("combobox", name=label).last).to_have_value(option or "")
    return option or ""


def open_tab(page: Page, name: str) -> None:
    """Switches tab, clicking again if a rerun swallowed the click."""
    tab = page.get_by_role("tab", name=name)
    for _ in range(5):
        wait_for_app(page)
        tab.click()
        try:
            expect(tab).to_have_attribute("aria-selected", "true", timeout=3000)
            return
        except AssertionError:
            continue
    expect(tab).to_have_attribute("aria-selected", "true")
