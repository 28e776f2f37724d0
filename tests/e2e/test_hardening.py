"""Double submits, a rerun during a write, a crash mid-write, and secrets that must not leak."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import (Console, choose, login, open_page, open_tab, start_console, wait_for_app,
                       warm_up)


def _active_organization(console: Console, skip: int = 0) -> str:
    return [row["id"] for row in console.sandbox.organizations("active", canceling=False)
            if row["id"] not in ("org_abc123", "org_markup")][skip]


def _open_cancel_dialog(page: Page, organization_id: str) -> None:
    open_tab(page, "Cancel")
    page.get_by_role("button", name="Cancel subscription…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("textbox", name="Reason").fill("Customer asked to cancel")
    dialog.get_by_label(re.compile("^Type ")).fill(organization_id)
    dialog.get_by_label(re.compile("^Type ")).press("Tab")
    wait_for_app(page)


def _open_change_dialog(page: Page, reason: str):  # type: ignore[no-untyped-def]
    choose(page, "Move to")
    page.get_by_role("button", name="Change plan…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("textbox", name="Reason").fill(reason)
    dialog.get_by_role("textbox", name="Reason").press("Tab")
    wait_for_app(page)
    return dialog


def test_a_double_click_on_confirm_cancels_once(page: Page, console: Console) -> None:
    organization_id = _active_organization(console, 0)
    login(page, console, "finance", f"subscription?org={organization_id}")
    _open_cancel_dialog(page, organization_id)
    page.get_by_role("dialog").get_by_role("button", name="Cancel subscription").dblclick()
    expect(page.get_by_text(re.compile("Subscription set to cancel on"))).to_be_visible()
    wait_for_app(page)
    cancels = [m for m in console.sandbox.mutations("cancel") if m["organization_id"] == organization_id]
    assert len(cancels) == 1


def test_a_rerun_during_a_write_changes_the_plan_once(page: Page, console: Console) -> None:
    organization_id = _active_organization(console, 1)
    console.sandbox.add_fault("subscription-update", latencyMs=1500, count=1)
    login(page, console, "finance", f"subscription?org={organization_id}")
    dialog = _open_change_dialog(page, "Testing a rerun mid-write")
    dialog.get_by_role("button", name=re.compile("^Confirm")).click()
    page.wait_for_timeout(400)
    page.keyboard.press("r")  # Streamlit's rerun shortcut, while the write is in flight
    expect(page.get_by_text(re.compile(r"(effective immediately|scheduled for \d)"))).to_be_visible(timeout=20_000)
    wait_for_app(page)
    updates = [m for m in console.sandbox.mutations("update") if m["organization_id"] == organization_id]
    assert len(updates) == 1


def test_a_console_killed_mid_write_leaves_an_unknown_outcome_to_settle(
        page: Page, browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("crash")
    first = start_console(data_dir)
    try:
        warm_up(first, browser)
        organization_id = _active_organization(first, 2)
        first.sandbox.add_fault("subscription-cancel", hangSeconds=60, count=1)
        login(page, first, "finance", f"subscription?org={organization_id}")
        _open_cancel_dialog(page, organization_id)
        page.get_by_role("dialog").get_by_role("button", name="Cancel subscription").click()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the intent is stored before the call
            with sqlite3.connect(data_dir / "audit.sqlite3") as db:
                if db.execute("SELECT count(*) FROM audit_events WHERE outcome = 'pending'").fetchone()[0]:
                    break
            time.sleep(0.1)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        first.stop()
    second = start_console(data_dir)  # same data: audit log and sandbox state survive
    try:
        warm_up(second, browser)
        login(page, second, "finance", f"subscription?org={organization_id}")
        expect(page.get_by_text(re.compile("Outcome unknown: cancel subscription by finance"))).to_be_visible()
        page.get_by_role("button", name="Re-read the customer to settle it").click()
        wait_for_app(page)
        expect(page.get_by_text(re.compile("Outcome unknown"))).to_have_count(0)
        with sqlite3.connect(data_dir / "audit.sqlite3") as db:
            outcome, error = db.execute("SELECT outcome, error FROM audit_events WHERE action = "
                                        "'cancel subscription'").fetchone()
        assert outcome == "unknown" and error.startswith("Re-read by finance: status active")
    finally:
        second.stop()


def test_secrets_do_not_leak(page: Page, console: Console) -> None:
    frames: list[bytes] = []

    def record(websocket) -> None:  # type: ignore[no-untyped-def]
        websocket.on("framereceived", lambda payload: frames.append(
            payload if isinstance(payload, bytes) else payload.encode()))
        websocket.on("framesent", lambda payload: frames.append(
            payload if isinstance(payload, bytes) else payload.encode()))

    page.on("websocket", record)
    key = console.sandbox.session.headers["X-API-Key"]
    login(page, console, "finance", "customer?org=org_abc123")  # this console's policy lets finance cancel unaided
    page.get_by_role("button", name="See portal link").click()
    link = page.get_by_role("link", name="Open portal page")
    expect(link).to_be_visible()
    url = link.get_attribute("href") or ""
    assert "/sandbox/portal/bps_" in url
    page.get_by_role("button", name="Done, hide it").click()
    wait_for_app(page)
    shown_until = len(frames)
    for path in ("customer?org=org_abc123", "bulk", "plans?org=org_abc123"):
        open_page(page, console, path)
        assert url not in page.content() and key not in page.content()
    after = b"".join(frames[shown_until:])
    assert url.encode() not in after, "the portal URL came back after it was hidden"
    assert key.encode() not in b"".join(frames), "the API key reached the browser"
    log = (console.data_dir / "console.log").read_text()
    assert key not in log and url not in log and "/sandbox/portal/bps_" not in log
    with sqlite3.connect(console.data_dir / "audit.sqlite3") as db:
        rows = "\n".join(str(row) for row in db.execute("SELECT * FROM audit_events"))
    assert rows and key not in rows and url not in rows and "bps_" not in rows


def test_a_failed_plan_change_says_so_and_the_same_confirm_works_after(page: Page, console: Console) -> None:
    organization_id = _active_organization(console, 3)
    login(page, console, "finance", f"subscription?org={organization_id}")
    dialog = _open_change_dialog(page, "Customer asked for a change")
    console.sandbox.add_fault("subscription-update", status=503)  # until cleared: outlasts every retry
    dialog.get_by_role("button", name=re.compile("^Confirm")).click()
    expect(dialog.get_by_text(re.compile("Couldn't change the plan. The Payments API had an internal error"))) \
        .to_be_visible()
    expect(page.get_by_text("Traceback")).to_have_count(0)
    assert not [m for m in console.sandbox.mutations("update") if m["organization_id"] == organization_id]
    console.sandbox.clear_faults()
    dialog.get_by_role("button", name=re.compile("^Confirm")).click()  # the same intent, once the fault clears
    expect(page.get_by_text(re.compile(r"(effective immediately|scheduled for \d)"))).to_be_visible()
    assert len([m for m in console.sandbox.mutations("update") if m["organization_id"] == organization_id]) == 1
