"""Single sign-on end to end: the console, in production shape (a Payments API of its own, no users file),
signing people in through a real OpenID Connect provider (tests/oidc, `oidc-provider` from npm) in Chromium.

Roles come from the provider's `groups` claim; someone with no mapped group sees only who they are and that
they have no access; a tampered identity cookie means signing in again; logout ends the provider's session
too; a provider that is down gets one sentence.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from sandbox import SandboxSettings, new_test_key, start_sandbox
from sandbox.server import RunningSandbox
from tests.support.browser import free_port, nav_links, screenshot, start_streamlit, wait_for_app
from tests.support.oidc import (OidcProvider, confirm_sign_out_at_provider, secrets_toml, sign_in_at_provider,
                                start_oidc_provider)

ROLES = """
[sign_in.sso]
roles_claim = "groups"
provider_name = "Test IdP"

[sign_in.sso.roles]
support = ["billing-support"]
finance = ["billing-finance"]
admin = ["billing-admin"]
"""
SIGN_IN = "Sign in with Test IdP"


@dataclass
class SsoConsole:
    url: str
    provider: OidcProvider
    api: RunningSandbox
    data_dir: Path
    process: subprocess.Popen

    def audit_rows(self) -> list[tuple[str, str | None, str]]:
        with sqlite3.connect(self.data_dir / "audit.sqlite3") as db:
            return db.execute("SELECT user, subject, action FROM audit_events ORDER BY id").fetchall()


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoConsole]:
    data_dir = tmp_path_factory.mktemp("sso")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    provider = start_oidc_provider(data_dir / "oidc", url)
    api = start_sandbox(SandboxSettings(api_key=new_test_key(), db_path=data_dir / "api.sqlite3"))
    secrets_file = data_dir / "secrets.toml"
    secrets_file.write_text(secrets_toml(provider, url, secrets.token_urlsafe(48)) + ROLES)
    env = {**os.environ, "PAYMENTS_API_URL": api.base_url, "PAYMENTS_API_KEY": api.api_key,
           "BILLING_DESK_DATA_DIR": str(data_dir), "BILLING_DESK_AUDIT_KEY": secrets.token_urlsafe(48),
           "BILLING_DESK_APPROVAL_ACTIONS": "none"}  # finance may cancel unaided here, so may see a portal link
    for name in ("BILLING_DESK_SANDBOX", "BILLING_DESK_USERS"):
        env.pop(name, None)
    server = start_streamlit("app.py", data_dir, env, port=port, args=["--secrets.files", str(secrets_file)])
    yield SsoConsole(url, provider, api, data_dir, server.process)
    server.stop()
    api.stop()
    provider.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()  # each person their own cookies
    yield context
    context.close()


def sign_in(page: Page, sso: SsoConsole, username: str) -> None:
    page.goto(sso.url)
    wait_for_app(page)
    page.get_by_role("button", name=SIGN_IN).click()
    sign_in_at_provider(page, username)
    page.wait_for_url(lambda url: url.startswith(sso.url) and "oauth2callback" not in url)
    wait_for_app(page)


@pytest.mark.parametrize(("username", "role", "pages"), [
    ("fay", "Finance", ["Customer", "Needs attention", "Bulk lookup", "Plans", "Subscription actions", "Revenue",
                        "Approvals", "Audit log"]),
    ("sam", "Support", ["Customer", "Needs attention", "Bulk lookup", "Plans"])])
def test_the_providers_groups_give_the_menu(context: BrowserContext, sso: SsoConsole, username: str, role: str,
                                            pages: list[str]) -> None:
    page = context.new_page()
    sign_in(page, sso, username)
    expect(page.get_by_role("heading", name="Customer")).to_be_visible()
    expect(page.get_by_text(f"Role: {role}")).to_be_visible()
    assert nav_links(page) == pages
    identity = next(cookie for cookie in context.cookies() if cookie["name"] == "_streamlit_user")
    assert identity["httpOnly"], "the SSO identity cookie can't be read by scripts"
    screenshot(page, f"sso-{username}")


def test_the_actor_in_audit_rows_is_the_providers_email_and_subject(context: BrowserContext, sso: SsoConsole) -> None:
    page = context.new_page()
    sign_in(page, sso, "fay")
    page.goto(f"{sso.url}/customer?org=org_abc123")
    wait_for_app(page)
    page.get_by_role("button", name="See portal link").click()
    expect(page.get_by_text("Portal link for org_abc123")).to_be_visible()
    user, subject, action = sso.audit_rows()[-1]
    assert (user, action) == ("fay@example.com", "portal link shown")  # the provider verified fay's address
    assert subject and subject.startswith("http://127.0.0.1:") and subject.endswith("|fay")  # issuer|sub


def test_someone_without_a_mapped_group_sees_only_that_they_have_no_access(context: BrowserContext,
                                                                          sso: SsoConsole) -> None:
    page = context.new_page()
    sign_in(page, sso, "nina")
    expect(page.get_by_text("signed in as nina@example.com")).to_be_visible()
    expect(page.get_by_text("has no Billing Desk role")).to_be_visible()
    expect(page.get_by_text("billing-", exact=False)).to_have_count(0)  # no group names: nothing to aim for
    assert nav_links(page) == []
    for path in ("customer", "audit", "subscription"):
        page.goto(f"{sso.url}/{path}?org=org_abc123")
        wait_for_app(page)
        expect(page.get_by_text("has no Billing Desk role")).to_be_visible()
        expect(page.get_by_text("Acme Analytics")).to_have_count(0)
    screenshot(page, "sso-no-access")


def test_a_tampered_identity_cookie_means_signing_in_again(context: BrowserContext, sso: SsoConsole) -> None:
    page = context.new_page()
    sign_in(page, sso, "fay")
    identity = next(cookie for cookie in context.cookies() if cookie["name"] == "_streamlit_user")
    context.add_cookies([{**identity, "value": identity["value"][:-6] + "AAAAAA"}])
    page.goto(f"{sso.url}/audit")
    wait_for_app(page)
    expect(page.get_by_role("button", name=SIGN_IN)).to_be_visible()
    expect(page.get_by_role("heading", name="Audit log")).to_have_count(0)


def test_logout_ends_the_providers_session_too(context: BrowserContext, sso: SsoConsole) -> None:
    page = context.new_page()
    sign_in(page, sso, "sam")
    page.get_by_role("button", name="Log out").click()
    confirm_sign_out_at_provider(page)
    page.wait_for_url(lambda url: url.startswith(sso.url))
    wait_for_app(page)
    expect(page.get_by_role("button", name=SIGN_IN)).to_be_visible()
    assert not any(cookie["name"] == "_session" for cookie in context.cookies()), "the provider's session ended"
    page.get_by_role("button", name=SIGN_IN).click()
    expect(page.locator("input[name=password]")).to_be_visible()  # the provider asks again


def test_a_provider_that_is_down_gets_one_sentence(context: BrowserContext, sso: SsoConsole) -> None:
    page = context.new_page()
    page.goto(sso.url)
    wait_for_app(page)
    sso.provider.process.send_signal(19)  # SIGSTOP: the provider stops answering (and comes back below)
    try:
        page.get_by_role("button", name=SIGN_IN).click()
        expect(page.get_by_text("The company sign-in service isn't answering")).to_be_visible()
        assert page.url.startswith(sso.url), "the person stays on the console"
        expect(page.get_by_text("Traceback")).to_have_count(0)
        screenshot(page, "sso-provider-down")
    finally:
        sso.provider.process.send_signal(18)  # SIGCONT
