"""Four-eyes approvals in Chromium, on a console with the default policy (cancel and downgrade wait for a second
person): finance asks for a cancellation in the confirmation dialog and nothing is sent; the requester can't
approve it; support has no Approvals page; two admins' browsers click Approve at once and exactly one write
reaches the API; the customer's page shows the request while it waits, then its history, with a note added."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import Console, login, open_tab, screenshot, start_console, wait_for_app, warm_up


@pytest.fixture(scope="module")
def approvals_console(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Console]:
    running = start_console(tmp_path_factory.mktemp("approvals"),
                            {"BILLING_DESK_APPROVAL_ACTIONS": "cancel,downgrade"})  # the default policy
    warm_up(running, browser)
    yield running
    running.stop()


def _active(console: Console) -> str:
    return next(row["id"] for row in console.sandbox.organizations()
                if row["status"] == "active" and not row.get("canceling"))


def _request_cancellation(page: Page, console: Console, organization_id: str) -> None:
    login(page, console, "finance", f"subscription?org={organization_id}")
    open_tab(page, "Cancel")
    expect(page.get_by_text("It waits for a second person's approval (admin or finance).")).to_be_visible()
    page.get_by_role("button", name="Request cancellation…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Request a cancellation")).to_be_visible()
    expect(dialog.get_by_text("This needs a second person's approval")).to_be_visible()
    dialog.get_by_role("textbox", name="Reason").fill("The customer asked by email to stop at period end")
    dialog.get_by_label(re.compile("^Type ")).fill(organization_id)
    dialog.get_by_label(re.compile("^Type ")).press("Tab")
    screenshot(page, "approval-request")
    dialog.get_by_role("button", name="Request cancellation").click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_text("Waiting for a second approver", exact=True)).to_be_visible()
    wait_for_app(page)


def test_a_cancellation_waits_for_a_second_person_and_two_approvers_at_once_write_once(
        page: Page, browser: Browser, approvals_console: Console) -> None:
    console = approvals_console
    organization_id = _active(console)
    _request_cancellation(page, console, organization_id)
    screenshot(page, "approval-waiting")
    assert not [row for row in console.sandbox.mutations("cancel") if row["organization_id"] == organization_id]

    # The requester opens their own request: no way to approve it.
    page.goto(f"{console.url}/approvals?request=" + _waiting_request_id(console))
    wait_for_app(page)
    expect(page.get_by_text("You asked for this change, so a second person must decide it.")).to_be_visible()
    expect(page.get_by_role("button", name="Approve and make the change")).to_have_count(0)
    request_url = page.url

    support = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    login(support, console, "support", "approvals")
    expect(support.get_by_text("can't use this page")).to_be_visible()
    support.context.close()

    admins = [browser.new_context(viewport={"width": 1400, "height": 1000}).new_page() for _ in range(2)]
    for index, admin in enumerate(admins):
        login(admin, console, "admin", request_url.split("/", 3)[3])
        expect(admin.get_by_role("link", name="1 request waiting for you")).to_be_visible()
        expect(admin.get_by_text("The customer now")).to_be_visible()
        admin.get_by_role("textbox", name="Your reason").fill(f"Confirmed with the customer (admin tab {index + 1})")
        admin.get_by_role("textbox", name="Your reason").press("Tab")
        wait_for_app(admin)
    screenshot(admins[0], "approvals")
    # Both clicks land within a few milliseconds (Playwright's sync API drives one page at a time; a click doesn't
    # wait for the run it starts), and the API answers the approvals' re-reads slowly, so both runs are past their
    # checks before either decides: only the store's guarded update can keep the write single.
    console.sandbox.add_fault("customer-info", latencyMs=800)
    for admin in admins:
        admin.get_by_role("button", name="Approve and make the change").click(no_wait_after=True)
    for admin in admins:
        expect(admin.get_by_text(re.compile(r"Approved: Cancel|already approved by admin")
                                 ).first).to_be_visible(timeout=20_000)
    console.sandbox.clear_faults()
    approved = [admin for admin in admins if admin.get_by_text("Approved: Cancel").count()]
    assert len(approved) == 1
    expect(approved[0].get_by_text("cancelling at period end")).to_be_visible()
    expect(approved[0].get_by_text("The write succeeded.")).to_be_visible()  # the request's own record of it
    wait_for_app(approved[0])
    screenshot(approved[0], "approval-approved")
    sent = [row for row in console.sandbox.mutations("cancel") if row["organization_id"] == organization_id]
    assert len(sent) == 1, sent  # one write, whoever won
    for admin in admins:
        admin.context.close()

    page.goto(f"{console.url}/customer?org={organization_id}")
    wait_for_app(page)
    expect(page.get_by_text("Waiting for a second approver", exact=True)).to_have_count(0)
    page.get_by_text("History and notes").click()
    note = page.get_by_role("textbox", name="Internal note")
    expect(note).to_be_visible()
    note.fill("Called the customer: they confirmed the cancellation and asked for an invoice copy.")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_text("Note added to the customer's history.")).to_be_visible()
    expect(note).to_have_value("")
    expect(page.get_by_text(re.compile(r"^4 console actions on this organization, newest first"))).to_be_visible()
    expect(page.get_by_role("link", name="Open this organization in the Audit log")).to_be_visible()
    wait_for_app(page)
    screenshot(page, "customer-history")
    page.get_by_role("link", name="Open this organization in the Audit log").click()
    wait_for_app(page)
    expect(page.get_by_role("textbox", name="Organization")).to_have_value(organization_id)


def _waiting_request_id(console: Console) -> str:
    """The request's id, from the store the console shares with this test (its data folder)."""
    import sqlite3

    with sqlite3.connect(console.data_dir / "audit.sqlite3") as db:
        return db.execute("SELECT id FROM approval_requests WHERE status = 'waiting'").fetchone()[0]
