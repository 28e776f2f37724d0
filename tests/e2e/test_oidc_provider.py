"""The test suite's OpenID Connect provider (tests/oidc, tests/support/oidc.py) against Streamlit's own `st.login`.

A throwaway app (st.login / st.user / st.logout) signs people in through the real provider in Chromium: the ID
token's email and groups reach `st.user`, sign-out ends the provider's session too, and a provider that is down
shows up as Streamlit's bare "Authentication error" page.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import free_port, wait_for_app
from tests.support.oidc import (OidcProvider, confirm_sign_out_at_provider, secrets_toml, sign_in_at_provider,
                                start_oidc_provider)

APP = '''
import streamlit as st

if st.user.is_logged_in:
    st.text(f"email={st.user.email}")
    st.text("groups=" + ",".join(st.user.get("groups") or []))
    st.button("Sign out", on_click=st.logout)
else:
    st.text("Signed out")
    st.button("Sign in", on_click=st.login)
'''


@dataclass
class OidcApp:
    url: str
    provider: OidcProvider
    log: Path


@contextmanager
def oidc_app(tmp_dir: Path) -> Iterator[OidcApp]:
    """The provider, and the app signing in through it (`--secrets.files`, run from a folder of its own)."""
    url = f"http://127.0.0.1:{free_port()}"
    provider = start_oidc_provider(tmp_dir, url)
    try:
        (tmp_dir / "secrets.toml").write_text(secrets_toml(provider, url, secrets.token_hex(32)))
        (tmp_dir / "app.py").write_text(APP)
        log = tmp_dir / "streamlit.log"
        with open(log, "w") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                 "--server.port", url.rsplit(":", 1)[1], "--server.address", "127.0.0.1",
                 "--secrets.files", str(tmp_dir / "secrets.toml"), "--browser.gatherUsageStats", "false"],
                cwd=tmp_dir, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                        if answer.read() == b"ok":
                            break
                except OSError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.1)
            yield OidcApp(url, provider, log)
        finally:
            server.terminate()
            server.wait(timeout=15)
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcApp]:
    with oidc_app(tmp_path_factory.mktemp("oidc")) as running:
        yield running


def open_app(page: Page, app: OidcApp) -> None:
    page.goto(app.url)
    wait_for_app(page)


def sign_in(page: Page, username: str) -> None:
    page.get_by_role("button", name="Sign in").click()
    sign_in_at_provider(page, username)
    wait_for_app(page)


def cookie_names(page: Page) -> set[str]:
    return {cookie["name"] for cookie in page.context.cookies()}


def test_sign_in_then_sign_out_ends_both_sessions(page: Page, app: OidcApp) -> None:
    open_app(page, app)
    expect(page.get_by_text("Signed out", exact=True)).to_be_visible()

    sign_in(page, "fay")
    expect(page.get_by_text("email=fay@example.com", exact=True)).to_be_visible()
    expect(page.get_by_text("groups=billing-finance", exact=True)).to_be_visible()
    assert {"_streamlit_user", "_session"} <= cookie_names(page)  # the app's and the provider's session

    page.get_by_role("button", name="Sign out").click()
    assert confirm_sign_out_at_provider(page), "the provider asked no sign-out confirmation"
    assert page.url == f"{app.url}/"
    wait_for_app(page)
    expect(page.get_by_text("Signed out", exact=True)).to_be_visible()
    assert not {"_streamlit_user", "_streamlit_user_tokens", "_session"} & cookie_names(page)

    # Signing in again asks for the password again (prompt=login, and the provider's session is gone anyway).
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("input[name=password]")).to_be_visible()
    assert page.url.startswith(f"{app.provider.issuer}/interaction/")
    sign_in_at_provider(page, "nina")
    wait_for_app(page)
    expect(page.get_by_text("email=nina@example.com", exact=True)).to_be_visible()
    expect(page.get_by_text("groups=", exact=True)).to_be_visible()  # an empty list, not a missing claim


def test_wrong_password_stays_at_the_provider(page: Page, app: OidcApp) -> None:
    open_app(page, app)
    page.get_by_role("button", name="Sign in").click()
    page.locator("input[name=login]").fill("ada")
    page.locator("input[name=password]").fill("not-the-password")
    page.locator("button[type=submit]").click()
    expect(page.get_by_role("alert")).to_have_text("Unknown username or wrong password.")
    assert page.url.startswith(f"{app.provider.issuer}/interaction/")

    sign_in_at_provider(page, "ada")
    wait_for_app(page)
    expect(page.get_by_text("groups=billing-admin,billing-support", exact=True)).to_be_visible()


def test_provider_down(page: Page, tmp_path: Path) -> None:
    """Who is signed in stays signed in (the cookie is all Streamlit reads); sign-out is local only; sign-in ends
    on Streamlit's bare "Authentication error" page (HTTP 400), outside the app."""
    with oidc_app(tmp_path) as down:
        open_app(page, down)
        sign_in(page, "sam")
        expect(page.get_by_text("email=sam@example.com", exact=True)).to_be_visible()
        down.provider.stop()

        open_app(page, down)
        expect(page.get_by_text("email=sam@example.com", exact=True)).to_be_visible()

        page.get_by_role("button", name="Sign out").click()
        wait_for_app(page)
        expect(page.get_by_text("Signed out", exact=True)).to_be_visible()
        assert "/session/end" not in page.url

        with page.expect_response(lambda response: "/auth/login" in response.url) as login:
            page.get_by_role("button", name="Sign in").click()
        assert login.value.status == 400
        expect(page.locator("body")).to_have_text("Authentication error")
        assert "Error during OAuth authorization redirect" in down.log.read_text()


@pytest.mark.parametrize("client_secret", ["-secret-starting-with-a-dash", "--looks-like-an-option"])
def test_any_random_secret_starts_the_provider_and_authenticates_the_client(tmp_path: Path,
                                                                            client_secret: str) -> None:
    """`secrets.token_urlsafe` begins with "-" once in 64 runs: the provider must start and take it whole. A bogus
    code answered `invalid_grant` (not `invalid_client`) means the client's secret was accepted."""
    provider = start_oidc_provider(tmp_path, "http://127.0.0.1:9", client_secret=client_secret)
    try:
        with urllib.request.urlopen(provider.metadata_url, timeout=10) as answer:
            token_endpoint = json.load(answer)["token_endpoint"]
        basic = base64.b64encode(f"{provider.client_id}:{client_secret}".encode()).decode()
        form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": "not-a-code",
                                       "redirect_uri": "http://127.0.0.1:9/oauth2callback"}).encode()
        request = urllib.request.Request(token_endpoint, data=form, headers={"Authorization": f"Basic {basic}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert json.load(refused.value)["error"] == "invalid_grant"
    finally:
        provider.stop()
