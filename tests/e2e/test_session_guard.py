"""Every kind of run checks the session (ui/guard.py), in the browser: a confirmation dialog, a note's callback
and a polling fragment after the session ended elsewhere, after a demotion and after the idle limit write
nothing, stream nothing more, and show the sign-in page with its reason."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, Page, expect

from sandbox import SandboxSettings, new_test_key, start_sandbox
from sandbox.control_client import SandboxControl
from services.auth.users import add_user

from tests.support.browser import start_production_console

from .conftest import Console, choose, login, open_page, wait_for_app

PASSWORD = "guarded-session-password"


def _spare_active(control: SandboxControl, index: int) -> str:
    """An active organization; the tests compare its writes before and after, as another test may write it too."""
    return [row["id"] for row in control.organizations("active", canceling=False)
            if row["id"] not in ("org_abc123", "org_markup")][-1 - index]  # compared before and after: shared


def _open_change_dialog(page: Page, console: Console, organization_id: str) -> None:
    open_page(page, console, f"subscription?org={organization_id}")
    choose(page, "Move to")
    page.get_by_role("button", name="Change plan…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("textbox", name="Reason").fill("Customer asked by phone")
    dialog.get_by_role("textbox", name="Reason").press("Tab")
    wait_for_app(page)


def _confirm_and_expect_sign_in(page: Page, reason: str) -> None:
    page.get_by_role("dialog").get_by_role("button", name=re.compile("^Confirm")).click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_text(reason)).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)


def _updates(control: SandboxControl, organization_id: str) -> list[dict]:  # type: ignore[type-arg]
    return [m for m in control.mutations("update") if m["organization_id"] == organization_id]


def _notes(console: Console, organization_id: str) -> int:
    with sqlite3.connect(console.data_dir / "audit.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM audit_rows WHERE organization_id = ? AND action = 'add note'",
                          (organization_id,)).fetchone()[0]


def _age_sessions(data_dir: Path, username: str, hours: float) -> None:
    """Moves the person's stored sessions' last activity back, as if they had left the tab alone that long."""
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        rows = db.execute("SELECT token_hash, last_seen_at FROM sign_in_sessions WHERE username = ? AND "
                          "ended_at IS NULL", (username,)).fetchall()
        assert rows
        for token_hash, last_seen in rows:
            moved = datetime.fromisoformat(last_seen) - timedelta(hours=hours)
            db.execute("UPDATE sign_in_sessions SET last_seen_at = ? WHERE token_hash = ?",
                       (moved.isoformat(sep=" "), token_hash))


def test_a_dialog_confirmed_after_a_logout_elsewhere_writes_nothing(browser: Browser, console: Console) -> None:
    organization_id = _spare_active(console.sandbox, 0)
    laptop, phone = browser.new_context(), browser.new_context()
    try:
        page, other = laptop.new_page(), phone.new_page()
        login(page, console, "finance")
        _open_change_dialog(page, console, organization_id)
        before = _updates(console.sandbox, organization_id)
        login(other, console, "finance")
        other.get_by_role("button", name="Log out").click()  # ends every finance session, this dialog's too
        expect(other.get_by_role("button", name="Log in")).to_be_visible()
        _confirm_and_expect_sign_in(page, "You were signed out")
        assert _updates(console.sandbox, organization_id) == before
    finally:
        laptop.close()
        phone.close()


def test_a_dialog_confirmed_after_the_idle_limit_writes_nothing(browser: Browser, console: Console) -> None:
    organization_id = _spare_active(console.sandbox, 1)
    context = browser.new_context()
    try:
        page = context.new_page()
        login(page, console, "finance")
        _open_change_dialog(page, console, organization_id)
        before = _updates(console.sandbox, organization_id)
        _age_sessions(console.data_dir, "finance", hours=2)  # longer than the 30 minutes' idle limit
        _confirm_and_expect_sign_in(page, "after a period without activity")
        assert _updates(console.sandbox, organization_id) == before
    finally:
        context.close()


def test_a_note_added_after_a_logout_elsewhere_is_not_stored(browser: Browser, console: Console) -> None:
    organization_id = _spare_active(console.sandbox, 2)
    laptop, phone = browser.new_context(), browser.new_context()
    try:
        page, other = laptop.new_page(), phone.new_page()
        login(page, console, "support", f"customer?org={organization_id}")
        page.get_by_text("History and notes").click()
        page.get_by_role("textbox", name="Internal note").fill("Typed before the logout elsewhere")
        before = _notes(console, organization_id)
        login(other, console, "support")
        other.get_by_role("button", name="Log out").click()
        expect(other.get_by_role("button", name="Log in")).to_be_visible()
        page.get_by_role("button", name="Add note").click()
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        expect(page.get_by_text("You were signed out")).to_be_visible()
        assert _notes(console, organization_id) == before
    finally:
        laptop.close()
        phone.close()


def test_a_polling_bulk_page_stops_at_its_next_refresh_after_a_logout(browser: Browser, console: Console) -> None:
    laptop, phone = browser.new_context(), browser.new_context()
    try:
        page, other = laptop.new_page(), phone.new_page()
        login(page, console, "admin", "bulk")
        expect(page.get_by_role("heading", name="Everyone's jobs")).to_be_visible()
        login(other, console, "admin")
        other.get_by_role("button", name="Log out").click()
        # No click in the first browser: its job list refreshes every 2 s, and the first refresh finds the
        # session ended and shows the sign-in page instead of the jobs.
        expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=15_000)
        expect(page.get_by_role("heading", name="Everyone's jobs")).to_have_count(0)
        expect(page.get_by_text("You were signed out")).to_be_visible()
    finally:
        laptop.close()
        phone.close()


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[tuple[Console, Path]]:
    """The console on a users file (not the demo users), so a test can change a person's role in it."""
    data_dir = tmp_path_factory.mktemp("guarded")
    api = start_sandbox(SandboxSettings(api_key=new_test_key(), db_path=data_dir / "api.sqlite3"))
    users = data_dir / "users.yaml"
    add_user(users, "fay", "finance", PASSWORD, name="Fay Finance")
    console = start_production_console(data_dir, api.base_url, api.api_key, users)
    warm_up_context: BrowserContext = browser.new_context()
    warm_up_context.new_page().goto(console.url)
    warm_up_context.close()
    yield console, users
    console.stop()
    api.stop()


def test_a_dialog_confirmed_after_a_demotion_writes_nothing(browser: Browser,
                                                            production: tuple[Console, Path]) -> None:
    console, users = production
    organization_id = _spare_active(console.sandbox, 0)
    context = browser.new_context()
    try:
        page = context.new_page()
        login(page, console, "fay", password=PASSWORD)
        _open_change_dialog(page, console, organization_id)
        document = yaml.safe_load(users.read_text())
        document["users"]["fay"]["role"] = "support"  # the same password: only the role changes
        users.write_text(yaml.safe_dump(document))
        _confirm_and_expect_sign_in(page, "Your account changed")
        assert _updates(console.sandbox, organization_id) == []
        with sqlite3.connect(console.data_dir / "audit.sqlite3") as db:
            writes = db.execute("SELECT COUNT(*) FROM audit_rows WHERE organization_id = ? AND action = "
                                "'change plan'", (organization_id,)).fetchone()[0]
        assert writes == 0
    finally:
        context.close()
