"""Each of the seven operations under each fault, in the browser.

The console drives a sandbox started here (as it would a real API: URL, key, users file, cookie key), so a
test can also take the API away entirely (connection refused) and bring it back on the same port. For every
operation and fault: the page names what failed and what to do, shows no traceback, repeats no write (the
sandbox counts writes by idempotency key), records the failure in the audit log, and the same action works
once the fault clears.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from sandbox import SandboxSettings, new_test_key, start_sandbox
from sandbox.control_client import SandboxControl
from sandbox.server import RunningSandbox
from services.audit import AuditLog
from services.payments.client import PaymentsClient
from services.auth.users import add_user

from tests.support.browser import start_production_console

from .conftest import Console, choose, login, open_page, open_tab, wait_for_app

PASSWORD = "fault-matrix-password"
READ_TIMEOUT = 1.5  # the console's PAYMENTS_API_TIMEOUT here, so that a hang costs seconds, not minutes
FAULTS: dict[str, dict[str, Any]] = {  # each lasts until cleared: it outlasts every retry
    "hang": {"hangSeconds": READ_TIMEOUT + 1.5},
    "500": {"status": 500},
    "503": {"status": 503},
    "429 storm": {"status": 429},
    "malformed JSON": {"malformed": True},
    "key revoked": {"status": 401, "code": "api_key_revoked", "message": "This API key was revoked."},
    "connection refused": {},
}
# What the person is told, after "Couldn't <operation>.": the cause and what to do about it.
ADVICE = {
    "hang": r"didn't answer in time\. Try again|Re-read the customer",
    "500": r"internal error\. Try again in a few minutes",
    "503": r"internal error\. Try again in a few minutes",
    "429 storm": r"rate-limiting Billing Desk\. Wait a minute and try again",
    "malformed JSON": r"can't read\. Try again|Re-read the customer",
    "key revoked": r"refused Billing Desk's API key\. An administrator must",
    "connection refused": r"Couldn't reach the Payments API\. Check the network or the API URL, then try again",
}
AUDITED = {"subscription-checkout": "create checkout link", "customer-portal": "portal link shown",
           "subscription-update": "change plan", "subscription-cancel": "cancel subscription",
           "subscription-process": "process checkout"}
MUTATION_KIND = {"subscription-checkout": "checkout", "customer-portal": "portal", "subscription-update": "update",
                 "subscription-cancel": "cancel", "subscription-process": "process"}


@dataclass
class FaultBench:
    console: Console
    api: RunningSandbox
    control: SandboxControl
    client: PaymentsClient
    audit: AuditLog
    cookies: list[Any]
    spare: dict[str, list[str]]  # organizations not yet used, by the state a test needs

    def take(self, kind: str) -> str:
        return self.spare[kind].pop(0)

    def break_api(self, fault: str, operation: str) -> None:
        if fault == "connection refused":
            self.api.stop()
        else:
            self.control.add_fault(operation, **FAULTS[fault])

    def mend_api(self, fault: str) -> None:
        if fault == "connection refused":
            self.api = start_sandbox(self.api.settings, port=self.api.port)
        else:
            self.control.clear_faults()


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[FaultBench]:
    data_dir = tmp_path_factory.mktemp("faults")
    api = start_sandbox(SandboxSettings(api_key=new_test_key(), db_path=data_dir / "api.sqlite3"))
    users = data_dir / "users.yaml"
    add_user(users, "ops", "admin", PASSWORD, name="Ops admin")
    console = start_production_console(data_dir, api.base_url, api.api_key, users,
                                       {"PAYMENTS_API_TIMEOUT": str(READ_TIMEOUT)})
    control = SandboxControl(api.root_url, api.api_key)
    context = browser.new_context()
    tab = context.new_page()
    login(tab, console, "ops", password=PASSWORD)
    cookies = context.cookies()
    context.close()
    organizations = control.organizations()
    spare = {"active": [row["id"] for row in organizations if row["status"] == "active" and not row["canceling"]
                        and row["id"] not in ("org_abc123", "org_markup")],
             "unsubscribed": [row["id"] for row in organizations if row["status"] in ("none", "canceled")],
             "any": [row["id"] for row in organizations if row["id"] != "org_markup"]}
    fault_bench = FaultBench(console, api, control, PaymentsClient(api.base_url, api.api_key),
                             AuditLog(f"sqlite:///{data_dir / 'audit.sqlite3'}"), cookies, spare)
    yield fault_bench
    console.stop()
    fault_bench.api.stop()


@dataclass
class Step:
    """One operation in the browser: open its page, then `act` (the action under test, repeatable), and the
    text that proves it worked."""

    organization_id: str
    path: str
    act: Callable[[Page], Any]
    done: str | re.Pattern[str]
    doing: str  # how the console names the operation in "Couldn't <doing>."
    prepare: Callable[[Page], Any] = lambda page: None


def _confirm_in_dialog(label: str) -> Callable[[Page], Any]:
    return lambda page: page.get_by_role("dialog").get_by_role("button", name=re.compile(label)).click()


def _fill_reason(page: Page, reason: str = "Fault matrix") -> None:
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("textbox", name="Reason").fill(reason)
    dialog.get_by_role("textbox", name="Reason").press("Tab")


def _step(bench: FaultBench, operation: str) -> Step:
    if operation == "customer-info":
        org = bench.take("any")
        return Step(org, f"customer?org={org}", lambda page: page.get_by_role("button", name="Try again").click(),
                    "Billing email", f"look up {org}")
    if operation == "subscription-plans":
        org = bench.take("any")
        return Step(org, f"plans?org={org}", lambda page: page.get_by_role("button", name="Try again").click(),
                    "Select a row (or pick below)", f"load the plans for {org}")
    if operation == "customer-portal":
        org = bench.take("active")
        return Step(org, f"customer?org={org}",
                    lambda page: page.get_by_role("button", name="See portal link").click(),
                    f"Portal link for {org}", "show a portal link")
    if operation == "subscription-checkout":
        org = bench.take("unsubscribed")

        def pick_plan(page: Page) -> None:
            choose(page, "Plan", "Starter · $179.00 per month")
        return Step(org, f"plans?org={org}", lambda page: page.get_by_role("button", name="Create checkout link").click(),
                    f"Checkout link for {org}", "create a checkout link", pick_plan)
    if operation == "subscription-update":
        org = bench.take("active")

        def open_change(page: Page) -> None:
            choose(page, "Move to")
            page.get_by_role("button", name="Change plan…").click()
            _fill_reason(page)
            wait_for_app(page)
        return Step(org, f"subscription?org={org}", _confirm_in_dialog("^Confirm"),
                    re.compile(r"(effective immediately|scheduled for \d)"), "change the plan", open_change)
    if operation == "subscription-cancel":
        org = bench.take("active")

        def open_cancel(page: Page) -> None:
            open_tab(page, "Cancel")
            page.get_by_role("button", name="Cancel subscription…").click()
            _fill_reason(page)
            page.get_by_role("dialog").get_by_label(re.compile("^Type ")).fill(org)
            page.get_by_role("dialog").get_by_label(re.compile("^Type ")).press("Tab")
            wait_for_app(page)
        return Step(org, f"subscription?org={org}", _confirm_in_dialog("^Cancel subscription$"),
                    "Subscription set to cancel on", "cancel the subscription", open_cancel)
    # subscription-process: a checkout the customer has paid, waiting to be processed
    org = bench.take("unsubscribed")
    link = bench.client.create_checkout(org, "price_StarterMonthly01", "prod_Starter0001")
    bench.control.pay(link.url)

    def open_process(page: Page) -> None:
        open_tab(page, "Process a checkout")
        page.get_by_role("textbox", name="Checkout session id").fill(link.checkout_session_id or "")
        page.get_by_role("button", name="Process checkout…").click()
        _fill_reason(page)
        wait_for_app(page)
    return Step(org, f"subscription?org={org}", _confirm_in_dialog("^Process checkout$"),
                "Checkout processed: the subscription is active.", "process the checkout", open_process)


def _writes(bench: FaultBench, operation: str, organization_id: str) -> list[dict[str, Any]]:
    if operation not in MUTATION_KIND:
        return []
    return [row for row in bench.control.mutations(MUTATION_KIND[operation])
            if row["organization_id"] == organization_id]


def _error_on(page: Page) -> Locator:
    return page.get_by_test_id("stAlertContentError")


OPERATIONS = ["subscription-plans", "customer-info", "subscription-checkout", "subscription-process",
              "subscription-update", "subscription-cancel", "customer-portal"]


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("operation", OPERATIONS)
def test_operation_under_fault_in_the_browser(page: Page, bench: FaultBench, operation: str, fault: str) -> None:
    step = _step(bench, operation)
    page.context.add_cookies(bench.cookies)  # signed in as the admin, as after a reload
    reads = operation in ("customer-info", "subscription-plans")
    if reads:
        bench.break_api(fault, operation)  # the page's first read is the action under test
        open_page(page, bench.console, step.path)
    else:
        open_page(page, bench.console, step.path)
        step.prepare(page)
        bench.break_api(fault, operation)
        step.act(page)
    try:
        error = _error_on(page).last
        expect(error).to_contain_text(f"Couldn't {step.doing}.", timeout=30_000)
        expect(error).to_contain_text(re.compile(ADVICE[fault]))
        expect(page.get_by_text("Traceback")).to_have_count(0)
        assert bench.api.api_key not in page.content()
    finally:
        bench.mend_api(fault)
    assert len({row["idempotency_key"] for row in _writes(bench, operation, step.organization_id)}) <= 1
    if operation in AUDITED:
        row = bench.audit.events().iloc[0]
        assert (row.action, row.organization_id) == (AUDITED[operation], step.organization_id)
        assert row.outcome in ("failed", "unknown") and row.error, row.to_dict()

    step.act(page)  # the same action, the same intent, once the fault has cleared
    expect(page.get_by_text(step.done).first).to_be_visible(timeout=30_000)
    wait_for_app(page)
    if operation in MUTATION_KIND:
        assert len(_writes(bench, operation, step.organization_id)) == 1
    if operation in AUDITED:
        row = bench.audit.events().iloc[0]
        assert (row.action, row.organization_id, row.outcome) == (AUDITED[operation], step.organization_id,
                                                                  "succeeded")
