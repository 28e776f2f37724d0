"""The Revenue page in Chromium: a console whose store holds two months of daily snapshots with known movements;
finance reads the figures and downloads a month's ledger (formula-safe, audited); support doesn't see the page."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import delete, insert
from sqlalchemy.engine import Engine

from services.directory import LOOKUP, directory_organizations
from services.revenue import take_snapshot
from ui.revenue import MONTH_TABLE
from services.store import open_store

from .conftest import Console, login, nav_links, screenshot, start_console, wait_for_app, warm_up, choose

HOSTILE = '=HYPERLINK("http://evil.example","Open")'
TODAY = datetime.now(timezone.utc).date()
CHURNED_ON = TODAY - timedelta(days=20)


def _put(engine: Engine, organization_id: str, name: str, mrr: int, day: date, status: str = "active",
         plan: str = "Starter") -> None:
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(delete(directory_organizations).where(
            directory_organizations.c.organization_id == organization_id))
        conn.execute(insert(directory_organizations).values(
            organization_id=organization_id, name=name, plan=plan, price_cents=mrr or None, currency="USD",
            interval_unit="month", interval_count=1, status=status, cancel_at_period_end=False, mrr_cents=mrr,
            first_read_at=moment, last_read_at=moment, last_read_by=LOOKUP, last_used_at=moment,
            search_text=organization_id, name_key=name.lower()))


def seed_history(data_dir: Path) -> None:
    """Sixty days before today: Acme Analytics pays throughout, Quokka Freight too but past due, Harbor Freight
    churns, the hostile name contracts from Scale to Growth, a trial converts."""
    engine = open_store(f"sqlite:///{data_dir / 'audit.sqlite3'}")
    for back in range(60, 0, -1):
        day = TODAY - timedelta(days=back)
        _put(engine, "org_abc123", "Acme Analytics", 17900, day)  # the sandbox has it: its page opens
        _put(engine, "org_rvharb", "Harbor Freight", 39900 if day < CHURNED_ON else 0, day, plan="Growth",
             status="active" if day < CHURNED_ON else "canceled")
        _put(engine, "org_rvhost", HOSTILE, 69900 if back > 10 else 39900, day, plan="Scale" if back > 10 else "Growth")
        _put(engine, "org_rvtrial", "Wombat Logistics", 0 if back > 35 else 17900, day,
             status="trialing" if back > 35 else "active")
        _put(engine, "org_rvdue", "Quokka Freight", 39900, day, status="past_due", plan="Growth")
        assert take_snapshot(engine, day, "test") is not None
    engine.dispose()


@pytest.fixture(scope="module")
def revenue_console(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Console]:
    data_dir = tmp_path_factory.mktemp("revenue")
    seed_history(data_dir)
    running = start_console(data_dir)  # a directory already held: no sandbox fill; today's snapshot at start
    warm_up(running, browser)
    yield running
    running.stop()


def test_finance_reads_mrr_and_downloads_a_month_s_ledger_formula_safe_and_audited(
        page: Page, revenue_console: Console) -> None:
    login(page, revenue_console, "finance", "revenue")
    expect(page.get_by_role("heading", name="Revenue", exact=True)).to_be_visible()
    metric = page.get_by_test_id("stMetric").filter(has_text="MRR").first
    expect(metric).to_contain_text("$1,156.00")  # 179 + 399 + 179 + 399: Acme, the hostile name, Wombat, Quokka
    expect(page.get_by_text("5 organizations in the directory")).to_be_visible()
    month = CHURNED_ON.strftime("%Y-%m")
    choose(page, "Month", month)
    choose(page, "Movement", "Churn")
    expect(page.get_by_text(f"1 movement (churn) in {month}")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Ledger CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "org_rvharb" in text and "Harbor Freight" in text and "org_abc123" not in text
    wait_for_app(page)
    contracted = (TODAY - timedelta(days=10)).strftime("%Y-%m")
    choose(page, "Month", contracted)
    choose(page, "Movement", "Contraction")
    expect(page.get_by_text(f"1 movement (contraction) in {contracted}")).to_be_visible()  # the new run drawn
    with page.expect_download() as download:
        page.get_by_role("button", name="Ledger CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
    wait_for_app(page)
    with sqlite3.connect(revenue_console.data_dir / "audit.sqlite3") as conn:
        exports = conn.execute("SELECT COUNT(*) FROM audit_rows WHERE action = 'export revenue' "
                               "AND user = 'finance'").fetchone()[0]
    assert exports == 2
    screenshot(page, "revenue")


def test_support_has_no_revenue_page(page: Page, revenue_console: Console) -> None:
    login(page, revenue_console, "support", "revenue")
    assert "Revenue" not in nav_links(page)
    expect(page.get_by_text("MRR", exact=True)).to_have_count(0)


def test_support_sees_the_accounts_needing_attention_and_a_customer_s_mrr_history(
        page: Page, revenue_console: Console) -> None:
    login(page, revenue_console, "support", "attention")
    expect(page.get_by_role("heading", name="Needs attention")).to_be_visible()
    expect(page.get_by_test_id("stMetric").filter(has_text="MRR at stake")).to_contain_text("$399.00")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "org_rvdue" in text and "Past due" in text and "org_abc123" not in text
    wait_for_app(page)
    screenshot(page, "needs-attention")

    page.goto(f"{revenue_console.url}/customer?org=org_abc123")
    wait_for_app(page)
    page.get_by_text("History and notes").click()
    expect(page.get_by_text("MRR over the last year")).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(1)
    screenshot(page, "customer-mrr-history")


def test_a_number_in_the_monthly_table_opens_the_movements_behind_it(page: Page, revenue_console: Console) -> None:
    login(page, revenue_console, "finance", "revenue")
    months = sorted({(TODAY - timedelta(days=back)).strftime("%Y-%m") for back in range(0, 61)})
    grid = page.get_by_test_id("stDataFrame").first  # the monthly table
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 30, box["y"] + 52)  # the first month's own cell
    wait_for_app(page)
    for _ in range(list(MONTH_TABLE).index("churn")):  # along the row to its churn
        page.keyboard.press("ArrowRight")
    for _ in range(months.index(CHURNED_ON.strftime("%Y-%m"))):
        page.keyboard.press("ArrowDown")
    wait_for_app(page)
    expect(page.get_by_role("combobox", name="Movement")).to_have_value("Churn")
    expect(page.get_by_role("combobox", name="Month")).to_have_value(CHURNED_ON.strftime("%Y-%m"))
    expect(page.get_by_text(f"1 movement (churn) in {CHURNED_ON:%Y-%m}")).to_be_visible()
