"""A real OpenID Connect provider for the tests: start it, point Streamlit's `st.login` at it, sign in through it.

The provider is the npm package oidc-provider, run by tests/oidc/provider.mjs on plain http loopback (its README
says what it knows: the client, the people, the password, the pages). `start_oidc_provider` installs its
packages from the lock file the first time (`npm ci`), starts it on a port of its own choosing and waits for its
discovery document; `secrets_toml` writes the `[auth]` section Streamlit 1.67 reads; `sign_in_at_provider` and
`confirm_sign_out_at_provider` drive its pages with Playwright. Nothing here depends on pytest.
"""

from __future__ import annotations

import fcntl
import json
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
OIDC_DIR = ROOT / "tests" / "oidc"
PASSWORD = "oidc-demo"  # every account's password (provider.mjs --password)
# username -> (email, groups), as provider.mjs knows them; name claims: "Fay Finance", "Sam Support", …
ACCOUNTS: dict[str, tuple[str, list[str]]] = {
    "fay": ("fay@example.com", ["billing-finance"]),
    "sam": ("sam@example.com", ["billing-support"]),
    "ada": ("ada@example.com", ["billing-admin", "billing-support"]),
    "nina": ("nina@example.com", []),
}
_LISTENING = re.compile(r"oidc-provider listening on (http://\S+)")


@dataclass
class OidcProvider:
    """A running provider: its issuer, its discovery document, the one client registered with it."""

    issuer: str
    metadata_url: str
    client_id: str
    client_secret: str
    process: subprocess.Popen
    log: Path  # what the provider printed (its errors among them)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ensure_node_modules() -> None:
    """`npm ci` in tests/oidc when node_modules is missing or older than the lock file (one process at a time)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("the OIDC provider of the tests needs Node.js (18 or newer) and npm on PATH")
    with open(Path(tempfile.gettempdir()) / "billing-desk-oidc-npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        installed = OIDC_DIR / "node_modules" / ".package-lock.json"  # written by npm ci
        lock_file = OIDC_DIR / "package-lock.json"
        if installed.exists() and installed.stat().st_mtime >= lock_file.stat().st_mtime:
            return
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"npm ci in {OIDC_DIR} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def start_oidc_provider(tmp_dir: Path, client_redirect_base: str | Sequence[str], *, client_id: str = "billing-desk",
                        client_secret: str | None = None, timeout: float = 30) -> OidcProvider:
    """Starts tests/oidc/provider.mjs on a free loopback port and waits until its discovery document answers.

    `client_redirect_base` is the app's URL (e.g. `http://127.0.0.1:8501`), or several: the client may send people
    back to `<base>/oauth2callback`, and after sign-out to `<base>/oauth2callback` (what Streamlit 1.67 sends) or
    `<base>/`.
    """
    ensure_node_modules()
    bases = [client_redirect_base] if isinstance(client_redirect_base, str) else list(client_redirect_base)
    client_secret = client_secret or secrets.token_urlsafe(24)
    # Every value rides in `--name=value` form: a random secret may begin with "-", which node's parseArgs
    # would otherwise refuse as an ambiguous option (it did once in CI, 1 run in 64).
    command = [shutil.which("node") or "node", str(OIDC_DIR / "provider.mjs"), "--host=127.0.0.1", "--port=0",
               f"--client-id={client_id}", f"--client-secret={client_secret}", f"--password={PASSWORD}"]
    for base in bases:
        command.append(f"--app-url={base.rstrip('/')}")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    log = tmp_dir / "oidc-provider.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=OIDC_DIR, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    issuer = None
    while True:
        if issuer is None and (found := _LISTENING.search(log.read_text())):
            issuer = found.group(1)
        if issuer is not None:
            try:
                with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=2) as answer:
                    if json.load(answer).get("issuer") == issuer:
                        break
            except (urllib.error.URLError, OSError, ValueError):
                pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the OIDC provider did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    return OidcProvider(issuer, f"{issuer}/.well-known/openid-configuration", client_id, client_secret, process, log)


def secrets_toml(provider: OidcProvider, app_url: str, cookie_secret: str) -> str:
    """The `[auth]` section of Streamlit 1.67's secrets.toml for `st.login()` (the default provider) against it.

    `prompt = "login"`: Streamlit asks for `select_account` unless told otherwise, which oidc-provider refuses.
    """
    values = {
        "redirect_uri": f"{app_url.rstrip('/')}/oauth2callback",
        "cookie_secret": cookie_secret,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "server_metadata_url": provider.metadata_url,
    }
    lines = ["[auth]"] + [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    lines.append('client_kwargs = { prompt = "login" }')
    return "\n".join(lines) + "\n"


def sign_in_at_provider(page: Page, username: str, password: str | None = None, timeout_ms: float = 30_000) -> None:
    """Fills in the provider's sign-in form (the page must be on it, or on its way there) and waits to leave it."""
    page.locator("input[name=login]").fill(username, timeout=timeout_ms)
    page.locator("input[name=password]").fill(password or PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "/interaction/" not in url, timeout=timeout_ms)


def confirm_sign_out_at_provider(page: Page, timeout_ms: float = 15_000) -> bool:
    """After `st.logout()`: answers the provider's sign-out page ("Do you want to sign out from 127.0.0.1:PORT?")
    with "Yes, sign me out" and waits to be sent on (to the app). True if it answered one.

    False if no such page came within `timeout_ms` (when the provider cannot be reached Streamlit signs out
    locally and goes straight back to the app), or if the provider had no session for this browser (it then asks
    nothing and sends the browser on by itself).
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_url(lambda url: "/session/end" in url, timeout=timeout_ms)
    except PlaywrightTimeoutError:
        return False
    confirm = page.locator("button[name=logout]")
    deadline = time.monotonic() + timeout_ms / 1000
    while "/session/end" in page.url:
        try:
            confirm.click(timeout=250)
        except PlaywrightTimeoutError:
            if time.monotonic() > deadline:
                raise
            continue
        page.wait_for_url(lambda url: "/session/end" not in url, timeout=timeout_ms)
        return True
    return False
