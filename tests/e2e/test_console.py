"""Each role's whole job in a real browser, on the console `make run` starts."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import LOOKUP_BOX

from .conftest import (PASSWORDS, Console, choose, login, nav_links, open_page, open_tab, screenshot, start_console,
                       wait_for_app)

ROLE_PAGES = {
    "support": ["Customer", "Needs attention", "Bulk lookup", "Plans"],
    "finance": ["Customer", "Needs attention", "Bulk lookup", "Plans", "Subscription actions", "Revenue", "Approvals",
                "Audit log"],
    "admin": ["Customer", "Needs attention", "Bulk lookup", "Plans", "Subscription actions", "Revenue", "Approvals",
              "Audit log"],
}


@pytest.mark.parametrize("path", ["", "login", "customer", "plans", "subscription", "audit",
                                  "customer?org=org_abc123", "audit?org=org_abc123"])
def test_unauthenticated_visits_show_only_the_login_form(page: Page, console: Console, path: str) -> None:
    open_page(page, console, path)
    expect(page.get_by_label("Username")).to_be_visible()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    expect(page.get_by_text("Acme Analytics")).to_have_count(0)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.get_by_text("TEST · SANDBOX")).to_be_visible()


def test_first_request_of_a_fresh_server_to_a_page_url_shows_only_the_login_form(
        page: Page, tmp_path_factory: pytest.TempPathFactory) -> None:
    # Streamlit runs a pages/ file directly on a fresh server's first request; the router must still decide.
    fresh = start_console(tmp_path_factory.mktemp("fresh"))
    try:
        page.goto(f"{fresh.url}/audit?org=org_abc123")
        wait_for_app(page)
        expect(page.get_by_label("Username")).to_be_visible()
        expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
        expect(page.get_by_text("You don't have access")).to_have_count(0)
    finally:
        fresh.stop()


def test_wrong_password_is_refused(page: Page, console: Console) -> None:
    open_page(page, console)
    page.get_by_label("Username").fill("finance")
    page.get_by_label("Password", exact=True).fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Wrong username or password.")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    screenshot(page, "login-refused")


@pytest.mark.parametrize("role", list(ROLE_PAGES))
def test_each_role_sees_exactly_its_pages(page: Page, console: Console, role: str) -> None:
    login(page, console, role)
    assert nav_links(page) == ROLE_PAGES[role]
    expect(page.get_by_test_id("stSidebar").get_by_text(f"Role: {role.capitalize()}")).to_be_visible()
    expect(page.get_by_test_id("stSidebar").get_by_text("TEST · SANDBOX")).to_be_visible()
    if role == "support":  # a forbidden page's address says so, and shows nothing of it
        open_page(page, console, "audit")
        expect(page.get_by_text("can't use this page")).to_be_visible()
        expect(page.get_by_role("heading", name="Audit log")).to_have_count(0)
        open_page(page, console, "subscription?org=org_abc123")
        expect(page.get_by_text("can't use this page")).to_be_visible()


def test_deep_link_survives_login(page: Page, console: Console) -> None:
    login(page, console, "support", "customer?org=org_abc123")
    expect(page.get_by_role("heading", name="Acme Analytics")).to_be_visible()
    assert "org=org_abc123" in page.url


def test_support_looks_up_a_customer_and_e_mails_the_portal_link(page: Page, console: Console) -> None:
    login(page, console, "support")
    page.get_by_role("textbox", name=LOOKUP_BOX).fill("org_abc123")
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("heading", name="Acme Analytics")).to_be_visible()
    expect(page.get_by_text("Visa •••• 4242")).to_be_visible()
    expect(page.get_by_text("$399.00 per month")).to_be_visible()
    expect(page.get_by_role("button", name="Subscription actions")).to_have_count(0)  # not support's
    screenshot(page, "customer")
    other = console.sandbox.organizations("canceled")[0]
    page.get_by_role("textbox", name=LOOKUP_BOX).fill(other["id"])
    page.get_by_role("button", name="Look up").click()  # a second lookup replaces the first
    expect(page.get_by_role("heading", name=other["name"], exact=True)).to_be_visible()
    expect(page.get_by_text("Canceled", exact=True)).to_be_visible()
    assert f"org={other['id']}" in page.url
    page.get_by_text("org_abc123", exact=True).click()  # back through the recent lookups
    expect(page.get_by_role("heading", name="Acme Analytics")).to_be_visible()
    wait_for_app(page)
    expect(page.get_by_role("button", name="See portal link")).to_have_count(0)  # a portal link can cancel
    before = len(console.sandbox.mailbox())
    page.get_by_role("button", name="E-mail portal link").click()
    send = page.get_by_role("button", name=re.compile(r"^Send to "))
    expect(send).to_be_visible()
    recipient = send.inner_text().split("Send to ", 1)[1].strip()
    screenshot(page, "customer-portal-send")
    send.click()
    expect(page.get_by_text(f"Portal link queued for {recipient}")).to_be_visible()
    expect(page.get_by_role("link", name="Open portal page")).to_have_count(0)  # nothing shown to support
    deadline = time.monotonic() + 20
    while len(console.sandbox.mailbox()) == before:
        assert time.monotonic() < deadline, "the e-mail never reached the sandbox's mailbox"
        time.sleep(0.2)
    assert console.sandbox.mailbox()[0]["rcpt_to"] == recipient
    mailbox = page.context.new_page()  # the customer's side: the sandbox's mailbox, then the link in it
    mailbox.goto(console.sandbox.root_url + "/sandbox/mailbox")
    expect(mailbox.get_by_role("heading", name="Your billing portal link").first).to_be_visible()
    mailbox.screenshot(path=str(_shot_path("sandbox-mailbox")), full_page=True)
    mailbox.locator("a[href*='/sandbox/portal/bps_']").first.click()
    expect(mailbox.get_by_role("heading", name="Billing")).to_be_visible()
    expect(mailbox.get_by_text("Visa •••• 4242")).to_be_visible()
    mailbox.screenshot(path=str(_shot_path("sandbox-portal")), full_page=True)
    mailbox.close()


def _shot_path(name: str):
    from .conftest import SCREENSHOTS
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def _confirm_in_dialog(page: Page, button: str, reason: str, typed: str | None = None,
                       shot: str | None = None) -> None:
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("textbox", name="Reason").fill(reason)
    if typed is not None:
        dialog.get_by_label(re.compile("^Type ")).fill(typed)
    if shot:
        dialog.get_by_role("textbox", name="Reason").press("Tab")  # commit the text so the screenshot shows it
        screenshot(page, shot)
    dialog.get_by_role("button", name=button).click()
    expect(dialog).to_have_count(0)
    wait_for_app(page)


def test_finance_sells_changes_and_cancels_a_subscription(page: Page, console: Console) -> None:
    organization_id = console.sandbox.organizations("none")[0]["id"]
    login(page, console, "finance", f"plans?org={organization_id}")
    expect(page.get_by_text(f"Plans for {organization_id}")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    choose(page, "Plan", "Starter · $179.00 per month")
    screenshot(page, "plans")
    page.get_by_role("button", name="Create checkout link").click()
    link = page.get_by_role("link", name="Open checkout page")
    expect(link).to_be_visible()
    checkout_url = link.get_attribute("href")
    assert checkout_url and "/sandbox/checkout/cs_test_" in checkout_url

    customer_tab = page.context.new_page()  # the customer pays on the hosted page
    customer_tab.goto(checkout_url)
    expect(customer_tab.get_by_role("button", name="Pay $179.00")).to_be_visible()
    customer_tab.screenshot(path=str(_shot_path("sandbox-checkout")), full_page=True)
    customer_tab.get_by_label("Card number").fill("4242 4242 4242 4242")
    customer_tab.get_by_label("Expiry (MM / YY)").fill("12 / 34")
    customer_tab.get_by_label("CVC").fill("123")
    customer_tab.get_by_role("button", name=re.compile("^Pay")).click()
    expect(customer_tab.get_by_role("heading", name="Payment received")).to_be_visible()
    session_id = customer_tab.locator("#session-id").inner_text()
    customer_tab.close()

    page.get_by_role("link", name="Subscription actions").click()
    wait_for_app(page)
    open_tab(page, "Process a checkout")
    page.get_by_role("textbox", name="Checkout session id").fill(session_id)
    page.get_by_role("button", name="Process checkout…").click()
    _confirm_in_dialog(page, "Process checkout", "Customer paid the Starter checkout link")
    expect(page.get_by_text("Checkout processed: the subscription is active.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Now: Starter · active"))).to_be_visible()

    open_tab(page, "Change plan")  # the page keeps the tab the person was on
    choose(page, "Move to", "Scale · $699.00 per month")
    expect(page.get_by_text(re.compile("takes effect immediately"))).to_be_visible()
    page.get_by_role("button", name="Change plan…").click()
    _confirm_in_dialog(page, "Confirm upgrade", "Customer needs more seats", shot="subscription-confirm-upgrade")
    expect(page.get_by_text(re.compile(r"Upgraded to Scale .* effective immediately"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Now: Scale · active"))).to_be_visible()

    choose(page, "Move to", "Growth · $399.00 per month")
    expect(page.get_by_text(re.compile("takes effect at the end of the current period"))).to_be_visible()
    page.get_by_role("button", name="Change plan…").click()
    _confirm_in_dialog(page, "Confirm downgrade", "Customer asked to reduce cost")
    expect(page.get_by_text(re.compile(r"Downgrade to Growth .* scheduled for"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Downgrade scheduled: moves to Growth")).first).to_be_visible()

    open_tab(page, "Cancel")
    page.get_by_role("button", name="Cancel subscription…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("textbox", name="Reason").fill("Customer is closing the account")
    dialog.get_by_label(re.compile("^Type ")).fill(organization_id)
    screenshot(page, "subscription-confirm-cancel")  # as the person sees it before confirming
    dialog.get_by_label(re.compile("^Type ")).fill("org_wrong")
    dialog.get_by_role("button", name="Cancel subscription").click()
    expect(dialog.get_by_text(f"Type the organization id ({organization_id}) exactly")).to_be_visible()
    _confirm_in_dialog(page, "Cancel subscription", "Customer is closing the account", typed=organization_id)
    expect(page.get_by_text(re.compile(r"Subscription set to cancel on"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Cancels at period end")).first).to_be_visible()
    screenshot(page, "subscription")

    assert len(console.sandbox.mutations("update")) >= 2
    assert [m["organization_id"] for m in console.sandbox.mutations("cancel")].count(organization_id) == 1

    page.get_by_role("link", name="Audit log").click()
    wait_for_app(page)
    page.get_by_role("textbox", name="Organization").fill(organization_id)
    page.keyboard.press("Enter")
    wait_for_app(page)
    expect(page.get_by_text(re.compile(r"^\*?\*?5\*?\*? events"))).to_be_visible()
    grid = page.get_by_test_id("stDataFrame")
    expect(grid).to_be_visible()
    screenshot(page, "audit-log")
    events = page.get_by_text(re.compile(r"5 succeeded"))
    expect(events).to_be_visible()
    with page.expect_download() as started:  # the file is made on the click, every matching event in it
        page.get_by_role("button", name="Download CSV").click()
    exported = Path(started.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert exported[0].startswith('"id","at"') and len(exported) == 1 + 5
    assert all(organization_id in line for line in exported[1:])


def test_logout_ends_the_session(page: Page, console: Console) -> None:
    login(page, console, "admin")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Username")).to_be_visible()
    wait_for_app(page)
    open_page(page, console, "customer?org=org_abc123")  # a reload: the cookie is gone too
    expect(page.get_by_label("Username")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)


def most_seen(page: Page, selector: str, seconds: float = 3.0) -> int:
    """The largest number of elements matching `selector` at any moment over `seconds` (sampled in-page)."""
    return page.evaluate("""([selector, ms]) => new Promise(resolve => {
        let most = 0;
        const sample = () => { most = Math.max(most, document.querySelectorAll(selector).length); };
        const timer = setInterval(sample, 5);
        setTimeout(() => { clearInterval(timer); sample(); resolve(most); }, ms);
    })""", [selector, int(seconds * 1000)])


def test_login_and_logout_draw_the_page_once(page: Page, console: Console) -> None:
    """Login and logout write the cookie without an extra run; nothing may be drawn twice meanwhile."""
    open_page(page, console)
    page.get_by_role("textbox", name="Username").fill("admin")
    page.get_by_role("textbox", name="Password").fill(PASSWORDS["admin"])
    page.get_by_role("button", name="Log in").click()
    assert most_seen(page, "[data-testid='stMain'] h1") == 1
    page.get_by_role("button", name="Log out").click()
    assert most_seen(page, "input[aria-label='Username']") == 1


def test_a_reload_keeps_a_signed_in_person_signed_in(page: Page, console: Console) -> None:
    login(page, console, "finance")  # returns once the browser holds the cookie
    open_page(page, console, "customer?org=org_abc123")
    expect(page.get_by_role("heading", name="Acme Analytics")).to_be_visible()


def test_bulk_lookup_of_fifty_organizations(page: Page, console: Console) -> None:
    ids = [row["id"] for row in console.sandbox.organizations()][:49] + ["org_nobody"]
    login(page, console, "support", "bulk")
    page.get_by_role("textbox", name="Organization ids").fill("\n".join(ids))
    page.get_by_role("textbox", name="Organization ids").press("Control+Enter")
    wait_for_app(page)
    expect(page.get_by_text("50 to look up")).to_be_visible()
    page.get_by_role("button", name="Look up 50 organizations").click()
    expect(page.get_by_text(re.compile(r"50 of 50 looked up · 1 not found · 0 failed"))).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Download results CSV")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame")).to_have_count(2)  # the results, and the jobs list
    wait_for_app(page)
    screenshot(page, "bulk-lookup")
