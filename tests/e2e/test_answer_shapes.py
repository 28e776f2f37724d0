"""The console in Chromium on a sandbox answering Stripe-style (`SANDBOX_DIALECT=stripe`, sandbox/dialects.py):
snake_case, list objects, features as objects, epoch times, the price under items.data[].price, and no
current-plan marker in the plans answer. The Customer and Plans pages must read as they do on the default."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from .conftest import Console, login, open_page, screenshot, start_console, warm_up


def cell(page: Page, text: str) -> Locator:
    """A grid cell holding exactly `text` (to find its row with `has=`, so not bound to the grid)."""
    return page.locator("td[role='gridcell']").filter(has_text=re.compile(f"^{re.escape(text)}$"))


@pytest.fixture(scope="module")
def stripe_console(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Console]:
    running = start_console(tmp_path_factory.mktemp("stripe_console"),
                            {"BILLING_DESK_SANDBOX": "1", "SANDBOX_DIALECT": "stripe"})
    warm_up(running, browser)
    yield running
    running.stop()


def test_customer_and_plans_pages_read_stripe_answers(page: Page, stripe_console: Console) -> None:
    login(page, stripe_console, "support", "customer?org=org_abc123")
    main = page.get_by_test_id("stMain")
    expect(main.get_by_role("heading", name="Acme Analytics")).to_be_visible()
    for shown in (re.compile(r"Plan\s*Growth"), re.compile(r"Price\s*\$399\.00 per month"), "Current period ends",
                  "Visa •••• 4242", "Active"):  # labels over values, whatever the elements
        expect(main).to_contain_text(shown)
    screenshot(page, "answer-shapes-customer")

    open_page(page, stripe_console, "plans?org=org_abc123")
    expect(main.get_by_text("Current plan: Growth", exact=True)).to_be_visible()  # marked from the customer
    grid = main.get_by_test_id("stDataFrame")
    expect(grid).to_be_visible()
    # The grid draws on a canvas; a hidden accessible table holds the cells' text, row by row.
    growth = grid.locator("tr", has=cell(page, "Growth"))
    expect(growth).to_have_count(2)
    expect(growth.first).to_contain_text("15,000 credits per month · 10 seats · Priority email support · "
                                         "Integrations")  # features sent as objects, shown as text
    marked = grid.locator("tr", has=cell(page, "✓"))
    expect(marked).to_have_count(1)  # the customer's price, not both intervals of the plan
    expect(marked.locator("td").nth(1)).to_have_text("Growth")
    expect(marked.locator("td").nth(2)).to_have_text("month")
    screenshot(page, "answer-shapes-plans")
